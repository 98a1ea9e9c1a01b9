/* Backend fully connected layer: forward (with bias) against a double-precision reference,
 * backward (dx, weight and bias gradients) against central finite differences, for inputs in
 * both activation layouts (20 features: plain; 32 features: blocked); without dx the parameter
 * gradients are the same, bit for bit. Compare mode: the classifier (linear and loss) on another
 * backend against the CPU's. Rows: test_backend_ops.c. */
#include <stdlib.h>
#include <string.h>

#include "backend_ops.h"
#include "dtrain/config.h"

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

void linear_check(dt_backend *b, const backend_op_case *oc) {
    const dt_linear_desc d = *(const dt_linear_desc *)oc->params;
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
    snprintf(what, sizeof what, "%s dweight accumulated", label);
    CHECK_DOUBLED(b, "linear", what, weight_grad, dw_got, wn);
    snprintf(what, sizeof what, "%s dbias accumulated", label);
    CHECK_DOUBLED(b, "linear", what, bias_grad, db_got, bn);
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

/* a wrong input shape is refused */
void linear_check_refusals(dt_backend *b, const backend_op_case *oc) {
    (void)oc;
    dt_error err = {0};
    dt_linear_desc d = {3, 20, 7};
    dt_layer *layer = dt_backend_linear_create(b, &d, &err);
    dt_tensor *wrong = test_tensor(b, 3, 20, 2, 2, NULL), *y = test_tensor(b, 3, 7, 1, 1, NULL);
    float *weight = test_buffer(b, NULL, 140), *bias = test_buffer(b, NULL, 7);
    CHECK(dt_backend_linear_forward(b, layer, weight, bias, wrong, y, &err) == -1);
    test_buffer_free(b, weight);
    test_buffer_free(b, bias);
    CHECK(strstr(err.message, "linear_forward") != NULL);
    dt_backend_layer_destroy(b, layer);
    dt_backend_tensor_destroy(b, wrong);
    dt_backend_tensor_destroy(b, y);
}

/* The classifier as training runs it, on the other backend against the CPU's: the linear layer
 * 512 -> 10 forward and backward (overwritten and accumulated), softmax cross-entropy with
 * padding samples, its predictions and device-side statistics, and a forward after an SGD step
 * (the bf16 copy of the weights must follow). */
void linear_compare_with_loss(dt_backend *cpu, dt_backend *other, const backend_op_case *oc) {
    enum { N = 37, IN = 512, OUT = 10 };
    const dt_test_tolerances *t = dt_test_tolerances_for(oc->precision);
    dt_error err = {0};
    uint64_t state = 11u;
    float *x = op_random_floats((size_t)N * IN, 0, 2, &state);
    float *w = op_random_floats((size_t)OUT * IN, -0.05, 0.05, &state);
    float *bias = op_random_floats(OUT, -0.1, 0.1, &state);
    int32_t labels[N];
    float weights[N];
    for (int i = 0; i < N; i++) labels[i] = (i * 7) % OUT, weights[i] = i % 5 == 4 ? 0.0f : 1.0f;
    labels[4] = -1; /* padding */
    const dt_linear_desc d = {.batch = N, .in_features = IN, .out_features = OUT};
    dt_backend *b[2] = {cpu, other};
    float *y[2], *dl[2], *dx[2], *gw[2], *gb[2], *gw2[2], *y2[2];
    int32_t pred[2][N];
    double stats[2][DT_LOSS_STATS];
    for (int k = 0; k < 2; k++) {
        dt_layer *l = dt_backend_linear_create(b[k], &d, &err);
        CHECK_MSG(l != NULL, "%s", err.message);
        if (!l) return;
        float *wb = op_buffer_of(b[k], w, (size_t)OUT * IN), *bb = op_buffer_of(b[k], bias, OUT);
        float *gwb = op_buffer_of(b[k], NULL, (size_t)OUT * IN),
              *gbb = op_buffer_of(b[k], NULL, OUT);
        dt_tensor *tx = op_tensor_of(b[k], N, IN, 1, 1, x),
                  *ty = op_tensor_of(b[k], N, OUT, 1, 1, NULL);
        dt_tensor *tdl = op_tensor_of(b[k], N, OUT, 1, 1, NULL);
        dt_tensor *tdx = op_tensor_of(b[k], N, IN, 1, 1, NULL);
        double discard[DT_LOSS_STATS];
        CHECK(dt_backend_loss_stats_read(b[k], discard, 1, &err) == 0);
        CHECK_MSG(dt_backend_linear_forward(b[k], l, wb, bb, tx, ty, &err) == 0, "%s", err.message);
        CHECK_MSG(dt_backend_softmax_cross_entropy(b[k], ty, labels, weights, tdl, 0.5f, pred[k],
                                                   &err) == 0,
                  "%s", err.message);
        CHECK_MSG(dt_backend_linear_backward(b[k], l, wb, tx, tdl, tdx, gwb, gbb, 0, &err) == 0,
                  "%s", err.message);
        y[k] = op_tensor_read(b[k], ty, (size_t)N * OUT),
        dl[k] = op_tensor_read(b[k], tdl, N * OUT);
        dx[k] = op_tensor_read(b[k], tdx, (size_t)N * IN);
        gw[k] = op_buffer_read(b[k], gwb, (size_t)OUT * IN), gb[k] = op_buffer_read(b[k], gbb, OUT);
        CHECK(dt_backend_linear_backward(b[k], l, wb, tx, tdl, NULL, gwb, gbb, 1, &err) == 0);
        gw2[k] = op_buffer_read(b[k], gwb, (size_t)OUT * IN);
        /* an SGD step changes the weights: the bf16 copy must follow */
        const dt_sgd_params sgd = {.lr = 0.5f, .grad_scale = 1.0f};
        CHECK(dt_backend_sgd_step(b[k], &sgd, wb, gwb, NULL, (size_t)OUT * IN, &err) == 0);
        CHECK(dt_backend_linear_forward(b[k], l, wb, bb, tx, ty, &err) == 0);
        y2[k] = op_tensor_read(b[k], ty, (size_t)N * OUT);
        /* a second loss call without predictions accumulates into the statistics */
        CHECK(dt_backend_softmax_cross_entropy(b[k], ty, labels, weights, NULL, 1.0f, NULL, &err) ==
              0);
        CHECK(dt_backend_loss_stats_read(b[k], stats[k], 1, &err) == 0);
        dt_backend_layer_destroy(b[k], l);
        dt_tensor *all[] = {tx, ty, tdl, tdx};
        for (int i = 0; i < 4; i++) dt_backend_tensor_destroy(b[k], all[i]);
        float *bufs[] = {wb, bb, gwb, gbb};
        for (int i = 0; i < 4; i++) dt_backend_buffer_free(b[k], bufs[i]);
    }
    op_compare(oc->precision, "linear 512->10 forward", y[1], y[0], (size_t)N * OUT, t->linear);
    op_compare(oc->precision, "softmax_cross_entropy dlogits", dl[1], dl[0], (size_t)N * OUT,
               t->loss + t->linear);
    op_compare(oc->precision, "linear backward dx", dx[1], dx[0], (size_t)N * IN,
               t->linear + t->loss);
    op_compare(oc->precision, "linear backward weight", gw[1], gw[0], (size_t)OUT * IN,
               t->linear + t->loss);
    op_compare(oc->precision, "linear backward bias", gb[1], gb[0], OUT, t->linear + t->loss);
    op_compare(oc->precision, "linear backward weight, accumulated", gw2[1], gw2[0],
               (size_t)OUT * IN, t->linear + t->loss);
    op_compare(oc->precision, "linear forward after an SGD step", y2[1], y2[0], (size_t)N * OUT,
               2 * (t->linear + t->loss));
    int pred_diff = 0;
    for (int i = 0; i < N; i++) pred_diff += weights[i] != 0.0f && pred[0][i] != pred[1][i];
    printf("  %-4s %-44s %d of %d differ (ties within the tolerance may)\n",
           dt_precision_name(oc->precision), "softmax_cross_entropy predictions", pred_diff, N);
    if (oc->precision == DT_PRECISION_FP32) CHECK_INT_EQ(pred_diff, 0);
    const float loss_stats_tol = (float)(t->linear + t->loss);
    float got[3] = {(float)stats[1][0], (float)stats[1][2], (float)stats[1][3]};
    float want[3] = {(float)stats[0][0], (float)stats[0][2], (float)stats[0][3]};
    op_compare(oc->precision, "loss statistics (sum, count, non-finite)", got, want, 3,
               loss_stats_tol);
    CHECK(stats[1][DT_LOSS_COUNT] == 2.0 * (N - N / 5));
    CHECK(stats[1][DT_LOSS_NONFINITE] == 0.0);
    for (int k = 0; k < 2; k++)
        free(y[k]), free(dl[k]), free(dx[k]), free(gw[k]), free(gb[k]), free(gw2[k]), free(y2[k]);
    free(x), free(w), free(bias);
}
