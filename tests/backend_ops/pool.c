/* Backend pooling: max pooling (kernel 3, stride 2, padding 1 as in ResNet-18, padding
 * counting as -inf even when every input is negative) and global average pooling, forward
 * against double-precision references and backward against central finite differences, in
 * both activation layouts. Compare mode: both pools on another backend against the CPU's. Rows:
 * test_backend_ops.c. */
#include <float.h>
#include <stdlib.h>
#include <string.h>

#include "backend_ops.h"

typedef struct pool_case {
    dt_pool_desc d;
    int out_h, out_w;
    int global_average; /* 1: global average pool, else max pool of d */
    double *x, *r, *y;
} pool_case;

static size_t x_count(const pool_case *c) {
    return (size_t)c->d.batch * c->d.channels * c->d.in_height * c->d.in_width;
}
static size_t y_count(const pool_case *c) {
    return (size_t)c->d.batch * c->d.channels * c->out_h * c->out_w;
}

static void reference_pool(const pool_case *c, double *y) {
    const dt_pool_desc *d = &c->d;
    const int H = d->in_height, W = d->in_width;
    for (int nc = 0; nc < d->batch * d->channels; nc++) {
        const double *plane = c->x + (size_t)nc * H * W;
        if (c->global_average) {
            double sum = 0.0;
            for (int i = 0; i < H * W; i++) sum += plane[i];
            y[nc] = sum / (H * W);
            continue;
        }
        for (int oh = 0; oh < c->out_h; oh++)
            for (int ow = 0; ow < c->out_w; ow++) {
                double best = -DBL_MAX;
                for (int kh = 0; kh < d->kernel; kh++)
                    for (int kw = 0; kw < d->kernel; kw++) {
                        int ih = oh * d->stride - d->padding + kh;
                        int iw = ow * d->stride - d->padding + kw;
                        if (ih < 0 || ih >= H || iw < 0 || iw >= W) continue;
                        if (plane[ih * W + iw] > best) best = plane[ih * W + iw];
                    }
                y[((size_t)nc * c->out_h + oh) * c->out_w + ow] = best;
            }
    }
}

static double pool_loss(void *state) {
    pool_case *c = state;
    reference_pool(c, c->y);
    return test_dot(c->r, c->y, y_count(c));
}

void pool_check(dt_backend *b, const backend_op_case *oc) {
    const op_pool *row = oc->params;
    pool_case c = {.d = row->d, .global_average = row->global_average};
    const double lo = row->lo, hi = row->hi;
    dt_error err = {0};
    const dt_pool_desc *d = &c.d;
    if (c.global_average) {
        c.out_h = c.out_w = 1;
    } else {
        c.out_h = (d->in_height + 2 * d->padding - d->kernel) / d->stride + 1;
        c.out_w = (d->in_width + 2 * d->padding - d->kernel) / d->stride + 1;
    }
    size_t xn = x_count(&c), yn = y_count(&c);
    uint64_t state = 4242u + (uint64_t)d->channels * 7u + (uint64_t)c.global_average;
    c.x = test_doubles(xn), c.r = test_doubles(yn), c.y = test_doubles(yn);
    test_random_fill(c.x, xn, lo, hi, &state);
    test_random_fill(c.r, yn, -1.0, 1.0, &state);
    char label[160];
    snprintf(label, sizeof label, "%s %dx%dx%dx%d inputs in [%g,%g)",
             c.global_average ? "avgpool" : "maxpool", d->batch, d->channels, d->in_height,
             d->in_width, lo, hi);

    dt_layer *layer = NULL;
    if (!c.global_average) {
        layer = dt_backend_maxpool_create(b, d, &err);
        CHECK_MSG(layer != NULL, "%s: %s", label, err.message);
        if (!layer) return;
    }
    dt_tensor *x = test_tensor(b, d->batch, d->channels, d->in_height, d->in_width, c.x);
    dt_tensor *y = test_tensor(b, d->batch, d->channels, c.out_h, c.out_w, NULL);
    dt_tensor *dy = test_tensor(b, d->batch, d->channels, c.out_h, c.out_w, c.r);
    dt_tensor *dx = test_tensor(b, d->batch, d->channels, d->in_height, d->in_width, NULL);

    double *want = test_doubles(yn), *got = test_doubles(yn), *dx_got = test_doubles(xn);
    reference_pool(&c, want);
    int rc = c.global_average ? dt_backend_avgpool_forward(b, x, y, &err)
                              : dt_backend_maxpool_forward(b, layer, x, y, &err);
    CHECK_MSG(rc == 0, "%s: %s", label, err.message);
    test_tensor_read(b, y, got, yn);
    char what[200];
    snprintf(what, sizeof what, "%s forward", label);
    CHECK_ARRAY_CLOSE(what, got, want, yn, 1e-5, 1e-6);

    rc = c.global_average ? dt_backend_avgpool_backward(b, dy, dx, &err)
                          : dt_backend_maxpool_backward(b, layer, dy, dx, &err);
    CHECK_MSG(rc == 0, "%s: %s", label, err.message);
    test_tensor_read(b, dx, dx_got, xn);
    double *fd = test_doubles(xn);
    for (size_t i = 0; i < xn; i++) fd[i] = test_finite_difference(c.x, i, 1e-6, pool_loss, &c);
    snprintf(what, sizeof what, "%s dx", label);
    CHECK_ARRAY_CLOSE(what, dx_got, fd, xn, 1e-3, 1e-4);

    if (layer) dt_backend_layer_destroy(b, layer);
    dt_backend_tensor_destroy(b, x);
    dt_backend_tensor_destroy(b, y);
    dt_backend_tensor_destroy(b, dy);
    dt_backend_tensor_destroy(b, dx);
    free(want), free(got), free(dx_got), free(fd), free(c.x), free(c.r), free(c.y);
}

/* descriptions every backend refuses, a backward before a forward, a wrong output shape */
void pool_check_refusals(dt_backend *b, const backend_op_case *oc) {
    (void)oc;
    dt_error err = {0};
    dt_pool_desc bad = {2, 16, 8, 8, 3, 2, 2}; /* padding more than half the kernel */
    CHECK(dt_backend_maxpool_create(b, &bad, &err) == NULL);
    CHECK(strstr(err.message, "maxpool_create") != NULL);
    dt_pool_desc d = {2, 16, 8, 8, 3, 2, 1};
    dt_layer *layer = dt_backend_maxpool_create(b, &d, &err);
    dt_tensor *dy = test_tensor(b, 2, 16, 4, 4, NULL), *dx = test_tensor(b, 2, 16, 8, 8, NULL);
    CHECK(dt_backend_maxpool_backward(b, layer, dy, dx, &err) == -1); /* no forward yet */
    CHECK(dt_backend_maxpool_forward(b, layer, dx, dx, &err) == -1);  /* wrong output shape */
    CHECK(strstr(err.message, "maxpool_forward") != NULL);
    dt_backend_layer_destroy(b, layer);
    dt_backend_tensor_destroy(b, dy);
    dt_backend_tensor_destroy(b, dx);
}

/* max pooling of the row's description and global average pooling, forward and backward, on
 * the other backend against the CPU's */
void pool_compare(dt_backend *cpu, dt_backend *other, const backend_op_case *oc) {
    const dt_pool_desc pd = ((const op_pool *)oc->params)->d;
    const int N = pd.batch, C = pd.channels, H = pd.in_height, W = pd.in_width;
    const int OH = (H + 2 * pd.padding - pd.kernel) / pd.stride + 1;
    const int OW = (W + 2 * pd.padding - pd.kernel) / pd.stride + 1;
    const dt_test_tolerances *t = dt_test_tolerances_for(oc->precision);
    dt_error err = {0};
    const size_t n = (size_t)N * C * H * W, no = (size_t)N * C * OH * OW;
    uint64_t state = 9u; /* the eltwise row's inputs: a, c, d, then the pools' gradients */
    float *a = op_random_floats(n, -1, 1, &state), *c = op_random_floats(n, -1, 1, &state);
    float *d = op_random_floats(n, -1, 1, &state);
    float *dpool = op_random_floats(no, -1, 1, &state);
    float *dglobal = op_random_floats((size_t)N * C, -1, 1, &state);
    dt_backend *b[2] = {cpu, other};
    float *mp[2], *mpb[2], *ap[2], *apb[2];
    for (int k = 0; k < 2; k++) {
        dt_tensor *tc = op_tensor_of(b[k], N, C, H, W, c);
        dt_tensor *tdx = op_tensor_of(b[k], N, C, H, W, NULL);
        dt_layer *l = dt_backend_maxpool_create(b[k], &pd, &err);
        CHECK_MSG(l != NULL, "%s", err.message);
        if (!l) return;
        dt_tensor *ty = op_tensor_of(b[k], N, C, OH, OW, NULL);
        dt_tensor *tdy = op_tensor_of(b[k], N, C, OH, OW, dpool);
        CHECK(dt_backend_maxpool_forward(b[k], l, tc, ty, &err) == 0);
        CHECK(dt_backend_maxpool_backward(b[k], l, tdy, tdx, &err) == 0);
        mp[k] = op_tensor_read(b[k], ty, no), mpb[k] = op_tensor_read(b[k], tdx, n);
        dt_tensor *tg = op_tensor_of(b[k], N, C, 1, 1, NULL);
        dt_tensor *tdg = op_tensor_of(b[k], N, C, 1, 1, dglobal);
        CHECK(dt_backend_avgpool_forward(b[k], tc, tg, &err) == 0);
        CHECK(dt_backend_avgpool_backward(b[k], tdg, tdx, &err) == 0);
        ap[k] = op_tensor_read(b[k], tg, (size_t)N * C), apb[k] = op_tensor_read(b[k], tdx, n);
        dt_backend_layer_destroy(b[k], l);
        dt_tensor *all[] = {tc, tdx, ty, tdy, tg, tdg};
        for (int i = 0; i < 6; i++) dt_backend_tensor_destroy(b[k], all[i]);
    }
    char what[80];
    snprintf(what, sizeof what, "maxpool %dx%d s%d p%d", pd.kernel, pd.kernel, pd.stride,
             pd.padding);
    op_compare_of(oc->precision, what, "forward", mp[1], mp[0], no, t->pool);
    op_compare_of(oc->precision, what, "backward", mpb[1], mpb[0], n, t->pool);
    op_compare(oc->precision, "avgpool forward", ap[1], ap[0], (size_t)N * C, t->pool);
    op_compare(oc->precision, "avgpool backward", apb[1], apb[0], n, t->pool);
    for (int k = 0; k < 2; k++) free(mp[k]), free(mpb[k]), free(ap[k]), free(apb[k]);
    free(a), free(c), free(d), free(dpool), free(dglobal);
}
