/* Backend fully connected layer: forward (with bias) against a double-precision reference,
 * backward (dx, weight and bias gradients) against central finite differences, for inputs in
 * both activation layouts (20 features: plain; 32 features: blocked); without dx the parameter
 * gradients are the same, bit for bit. */
#include <stdlib.h>
#include <string.h>

#include "test_backend_common.h"

typedef struct linear_case {
    dt_backend *b;
    dt_linear_desc d;
    double *x, *weight, *bias, *r, *y;
} linear_case;

static void reference_linear(const linear_case *c, double *y) {
    const dt_linear_desc *d = &c->d;
    for (int n = 0; n < d->batch; n++)
        for (int o = 0; o < d->out_features; o++) {
            double sum = c->bias[o];
            for (int i = 0; i < d->in_features; i++)
                sum += c->x[(size_t)n * d->in_features + i] *
                       c->weight[(size_t)o * d->in_features + i];
            y[(size_t)n * d->out_features + o] = sum;
        }
}

static double linear_loss(void *state) {
    linear_case *c = state;
    reference_linear(c, c->y);
    return test_dot(c->r, c->y, (size_t)c->d.batch * c->d.out_features);
}

static void check_fd(const char *label, const char *name, linear_case *c, double *value,
                     size_t count, const double *got) {
    double *fd = test_doubles(count);
    for (size_t i = 0; i < count; i++)
        fd[i] = test_finite_difference(value, i, 1e-3, linear_loss, c);
    char what[200];
    snprintf(what, sizeof what, "%s %s", label, name);
    CHECK_OP_CLOSE(c->b, "linear", what, got, fd, count, 1e-3, 1e-4);
    free(fd);
}

static void run_case(dt_backend *b, dt_linear_desc d) {
    dt_error err = {0};
    linear_case c = {.b = b, .d = d};
    const size_t xn = (size_t)d.batch * d.in_features, yn = (size_t)d.batch * d.out_features;
    const size_t wn = (size_t)d.out_features * d.in_features, bn = (size_t)d.out_features;
    uint64_t state = 99u + (uint64_t)d.in_features;
    c.x = test_doubles(xn), c.weight = test_doubles(wn), c.bias = test_doubles(bn);
    c.r = test_doubles(yn), c.y = test_doubles(yn);
    test_random_fill(c.x, xn, -1.0, 1.0, &state);
    test_random_fill(c.weight, wn, -0.5, 0.5, &state);
    test_random_fill(c.bias, bn, -0.5, 0.5, &state);
    test_random_fill(c.r, yn, -1.0, 1.0, &state);
    char label[120];
    snprintf(label, sizeof label, "linear %d: %d -> %d", d.batch, d.in_features, d.out_features);

    dt_layer *layer = dt_backend_linear_create(b, &d, &err);
    CHECK_MSG(layer != NULL, "%s: %s", label, err.message);
    if (!layer) return;
    dt_tensor *x = test_tensor(b, d.batch, d.in_features, 1, 1, c.x);
    dt_tensor *y = test_tensor(b, d.batch, d.out_features, 1, 1, NULL);
    dt_tensor *dy = test_tensor(b, d.batch, d.out_features, 1, 1, c.r);
    dt_tensor *dx = test_tensor(b, d.batch, d.in_features, 1, 1, NULL);
    float *weight = test_buffer(b, c.weight, wn), *bias = test_buffer(b, c.bias, bn);
    float *weight_grad = test_buffer(b, NULL, wn), *bias_grad = test_buffer(b, NULL, bn);

    double *want = test_doubles(yn), *got = test_doubles(yn);
    reference_linear(&c, want);
    CHECK_MSG(dt_backend_linear_forward(b, layer, weight, bias, x, y, &err) == 0, "%s: %s", label,
              err.message);
    test_tensor_read(b, y, got, yn);
    char what[200];
    snprintf(what, sizeof what, "%s forward", label);
    CHECK_OP_CLOSE(b, "linear", what, got, want, yn, 1e-4, 1e-5);

    /* stale values in the gradient buffers must be overwritten, not accumulated */
    test_buffer_fill(b, weight_grad, 100.0f, wn);
    test_buffer_fill(b, bias_grad, 100.0f, bn);
    CHECK_MSG(dt_backend_linear_backward(b, layer, weight, x, dy, dx, weight_grad, bias_grad, 0,
                                         &err) == 0,
              "%s: %s", label, err.message);
    double *dx_got = test_doubles(xn), *dw_got = test_doubles(wn), *db_got = test_doubles(bn);
    test_tensor_read(b, dx, dx_got, xn);
    test_buffer_read(b, weight_grad, dw_got, wn);
    test_buffer_read(b, bias_grad, db_got, bn);
    check_fd(label, "dx", &c, c.x, xn, dx_got);
    check_fd(label, "dweight", &c, c.weight, wn, dw_got);
    check_fd(label, "dbias", &c, c.bias, bn, db_got);

    /* no dx (first layer): only the parameter gradients, the same values as with dx (the
     * buffers hold junk first, so a call that writes nothing fails) */
    test_buffer_fill(b, weight_grad, NAN, wn);
    test_buffer_fill(b, bias_grad, NAN, bn);
    CHECK(dt_backend_linear_backward(b, layer, weight, x, dy, NULL, weight_grad, bias_grad, 0,
                                     &err) == 0);
    double *again = test_doubles(wn > bn ? wn : bn);
    test_buffer_read(b, weight_grad, again, wn);
    snprintf(what, sizeof what, "%s dweight without dx", label);
    CHECK_OP_CLOSE(b, "linear", what, again, dw_got, wn, 0.0, 0.0);
    test_buffer_read(b, bias_grad, again, bn);
    snprintf(what, sizeof what, "%s dbias without dx", label);
    CHECK_OP_CLOSE(b, "linear", what, again, db_got, bn, 0.0, 0.0);

    /* accumulate: added to the buffers' gradients (the same ones: twice them, exactly) */
    CHECK(dt_backend_linear_backward(b, layer, weight, x, dy, NULL, weight_grad, bias_grad, 1,
                                     &err) == 0);
    double *twice = test_doubles(wn > bn ? wn : bn);
    for (size_t i = 0; i < wn; i++) twice[i] = 2.0 * dw_got[i];
    test_buffer_read(b, weight_grad, again, wn);
    snprintf(what, sizeof what, "%s dweight accumulated", label);
    CHECK_OP_CLOSE(b, "linear", what, again, twice, wn, 0.0, 0.0);
    for (size_t i = 0; i < bn; i++) twice[i] = 2.0 * db_got[i];
    test_buffer_read(b, bias_grad, again, bn);
    snprintf(what, sizeof what, "%s dbias accumulated", label);
    CHECK_OP_CLOSE(b, "linear", what, again, twice, bn, 0.0, 0.0);
    free(twice);
    free(again);

    dt_backend_layer_destroy(b, layer);
    dt_backend_tensor_destroy(b, x);
    dt_backend_tensor_destroy(b, y);
    dt_backend_tensor_destroy(b, dy);
    dt_backend_tensor_destroy(b, dx);
    test_buffer_free(b, weight), test_buffer_free(b, bias), test_buffer_free(b, weight_grad);
    test_buffer_free(b, bias_grad), free(want), free(got);
    free(dx_got), free(dw_got), free(db_got);
    free(c.x), free(c.weight), free(c.bias), free(c.r), free(c.y);
}

int main(int argc, char **argv) {
    dt_backend b = test_backend_open(argc, argv);
    run_case(&b, (dt_linear_desc){3, 20, 7});
    run_case(&b, (dt_linear_desc){4, 32, 10});
    run_case(&b, (dt_linear_desc){2, 64, 16});

    dt_error err = {0};
    dt_linear_desc d = {3, 20, 7};
    dt_layer *layer = dt_backend_linear_create(&b, &d, &err);
    dt_tensor *wrong = test_tensor(&b, 3, 20, 2, 2, NULL), *y = test_tensor(&b, 3, 7, 1, 1, NULL);
    float *weight = test_buffer(&b, NULL, 140), *bias = test_buffer(&b, NULL, 7);
    CHECK(dt_backend_linear_forward(&b, layer, weight, bias, wrong, y, &err) == -1);
    test_buffer_free(&b, weight);
    test_buffer_free(&b, bias);
    CHECK(strstr(err.message, "linear_forward") != NULL);
    dt_backend_layer_destroy(&b, layer);
    dt_backend_tensor_destroy(&b, wrong);
    dt_backend_tensor_destroy(&b, y);
    dt_backend_free(&b);
    return dt_test_summary("backend_linear");
}
