/* Backend element-wise ops: the residual join y = relu(y + x) against a reference, and the
 * ReLU backward against central finite differences of relu(y + x) (also in place, dx = dy), in
 * both activation layouts; tensor_add; shape mismatches are refused. Compare mode: the same ops on
 * another backend against the CPU's. Rows: test_backend_ops.c. */
#include <stdlib.h>
#include <string.h>

#include "backend_ops.h"

typedef struct join_case {
    size_t count;
    double *a, *b, *r, *y; /* y = relu(a + b) */
} join_case;

static void reference_join(const join_case *c, double *y) {
    for (size_t i = 0; i < c->count; i++) {
        double s = c->a[i] + c->b[i];
        y[i] = s > 0.0 ? s : 0.0;
    }
}

static double join_loss(void *state) {
    join_case *c = state;
    reference_join(c, c->y);
    return test_dot(c->r, c->y, c->count);
}

void eltwise_check(dt_backend *be, const backend_op_case *oc) {
    const op_shape *shape = oc->params;
    const int n = shape->n, ch = shape->c, h = shape->h, w = shape->w, in_place = shape->in_place;
    dt_error err = {0};
    join_case c = {.count = (size_t)n * ch * h * w};
    uint64_t state = 5150u + (uint64_t)ch;
    c.a = test_doubles(c.count), c.b = test_doubles(c.count);
    c.r = test_doubles(c.count), c.y = test_doubles(c.count);
    test_random_fill(c.a, c.count, -1.0, 1.0, &state);
    test_random_fill(c.b, c.count, -1.0, 1.0, &state);
    test_random_fill(c.r, c.count, -1.0, 1.0, &state);
    char label[120];
    snprintf(label, sizeof label, "eltwise %dx%dx%dx%d%s", n, ch, h, w,
             in_place ? " in-place" : "");

    dt_tensor *y = test_tensor(be, n, ch, h, w, c.a), *x = test_tensor(be, n, ch, h, w, c.b);
    dt_tensor *dy = test_tensor(be, n, ch, h, w, c.r);
    dt_tensor *dx = in_place ? dy : test_tensor(be, n, ch, h, w, NULL);
    double *want = test_doubles(c.count), *got = test_doubles(c.count);
    reference_join(&c, want);
    CHECK_MSG(dt_backend_add_relu_forward(be, y, x, &err) == 0, "%s: %s", label, err.message);
    test_tensor_read(be, y, got, c.count);
    char what[200];
    snprintf(what, sizeof what, "%s add_relu", label);
    CHECK_ARRAY_CLOSE(what, got, want, c.count, 1e-6, 0.0);

    CHECK_MSG(dt_backend_relu_backward(be, y, dy, dx, &err) == 0, "%s: %s", label, err.message);
    test_tensor_read(be, dx, got, c.count);
    /* d loss / d b, where loss = r . relu(a + b) */
    /* at most ~500 sampled elements: each difference re-evaluates the whole reference */
    size_t stride = c.count / 500 + 1, samples = 0;
    double *fd = test_doubles(c.count), *analytic = test_doubles(c.count);
    for (size_t i = 0; i < c.count; i += stride, samples++) {
        fd[samples] = test_finite_difference(c.b, i, 1e-6, join_loss, &c);
        analytic[samples] = got[i];
    }
    snprintf(what, sizeof what, "%s relu_backward", label);
    CHECK_ARRAY_CLOSE(what, analytic, fd, samples, 1e-6, 1e-6);

    /* tensor_add: x += y */
    CHECK(dt_backend_tensor_add(be, x, y, &err) == 0);
    test_tensor_read(be, x, got, c.count);
    for (size_t i = 0; i < c.count; i++) want[i] = (double)(float)(c.b[i] + (double)(float)want[i]);
    snprintf(what, sizeof what, "%s tensor_add", label);
    CHECK_ARRAY_CLOSE(what, got, want, c.count, 1e-6, 0.0);

    dt_backend_tensor_destroy(be, y);
    dt_backend_tensor_destroy(be, x);
    dt_backend_tensor_destroy(be, dy);
    if (!in_place) dt_backend_tensor_destroy(be, dx);
    free(want), free(got), free(fd), free(analytic), free(c.a), free(c.b), free(c.r), free(c.y);
}

/* shape mismatches are refused */
void eltwise_check_refusals(dt_backend *be, const backend_op_case *oc) {
    (void)oc;
    dt_error err = {0};
    dt_tensor *a = test_tensor(be, 2, 16, 4, 4, NULL), *c = test_tensor(be, 2, 16, 4, 5, NULL);
    CHECK(dt_backend_add_relu_forward(be, a, c, &err) == -1);
    CHECK(strstr(err.message, "add_relu_forward") != NULL);
    CHECK(dt_backend_relu_backward(be, a, a, c, &err) == -1);
    CHECK(dt_backend_tensor_add(be, a, c, &err) == -1);
    dt_backend_tensor_destroy(be, a);
    dt_backend_tensor_destroy(be, c);
}

/* tensor_add, the residual add+ReLU and ReLU backward on the other backend against the CPU's */
void eltwise_compare(dt_backend *cpu, dt_backend *other, const backend_op_case *oc) {
    const op_shape *shape = oc->params;
    const int N = shape->n, C = shape->c, H = shape->h, W = shape->w;
    const dt_test_tolerances *t = dt_test_tolerances_for(oc->precision);
    dt_error err = {0};
    const size_t n = (size_t)N * C * H * W;
    uint64_t state = 9u;
    float *a = op_random_floats(n, -1, 1, &state), *c = op_random_floats(n, -1, 1, &state);
    float *d = op_random_floats(n, -1, 1, &state);
    dt_backend *b[2] = {cpu, other};
    float *sum[2], *addrelu[2], *relub[2];
    for (int k = 0; k < 2; k++) {
        dt_tensor *ta = op_tensor_of(b[k], N, C, H, W, a), *tc = op_tensor_of(b[k], N, C, H, W, c);
        dt_tensor *td = op_tensor_of(b[k], N, C, H, W, d);
        dt_tensor *tdx = op_tensor_of(b[k], N, C, H, W, NULL);
        CHECK(dt_backend_tensor_add(b[k], ta, tc, &err) == 0);
        sum[k] = op_tensor_read(b[k], ta, n);
        CHECK(dt_backend_add_relu_forward(b[k], ta, tc, &err) == 0);
        addrelu[k] = op_tensor_read(b[k], ta, n);
        CHECK(dt_backend_relu_backward(b[k], ta, td, tdx, &err) == 0);
        relub[k] = op_tensor_read(b[k], tdx, n);
        dt_tensor *all[] = {ta, tc, td, tdx};
        for (int i = 0; i < 4; i++) dt_backend_tensor_destroy(b[k], all[i]);
    }
    op_compare(oc->precision, "tensor_add", sum[1], sum[0], n, t->eltwise);
    op_compare(oc->precision, "add_relu_forward", addrelu[1], addrelu[0], n, 2 * t->eltwise);
    op_compare(oc->precision, "relu_backward", relub[1], relub[0], n, 2 * t->eltwise);
    for (int k = 0; k < 2; k++) free(sum[k]), free(addrelu[k]), free(relub[k]);
    free(a), free(c), free(d);
}
