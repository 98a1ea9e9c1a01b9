/* Backend pooling: max pooling (kernel 3, stride 2, padding 1 as in ResNet-18, padding
 * counting as -inf even when every input is negative) and global average pooling, forward
 * against double-precision references and backward against central finite differences, in
 * both activation layouts. */
#include <float.h>
#include <stdlib.h>
#include <string.h>

#include "test_backend_common.h"

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

static void run_case(dt_backend *b, pool_case c, double lo, double hi) {
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

int main(int argc, char **argv) {
    dt_backend b = test_backend_open(argc, argv);
    /* batch, channels, h, w, kernel, stride, padding */
    pool_case blocked = {.d = {2, 16, 9, 9, 3, 2, 1}};
    pool_case plain = {.d = {2, 3, 8, 8, 3, 2, 1}};
    pool_case odd = {.d = {1, 32, 7, 6, 3, 2, 1}};
    run_case(&b, blocked, -1.0, 1.0);
    run_case(&b, blocked, -3.0, -1.0); /* all negative: zero padding would win, -inf must not */
    run_case(&b, plain, -1.0, 1.0);
    run_case(&b, plain, -3.0, -1.0);
    run_case(&b, odd, -1.0, 1.0);
    pool_case average_blocked = {.d = {.batch = 2, .channels = 32, .in_height = 3, .in_width = 3},
                                 .global_average = 1};
    pool_case average_plain = {.d = {.batch = 2, .channels = 5, .in_height = 4, .in_width = 4},
                               .global_average = 1};
    pool_case average_resnet = {.d = {.batch = 1, .channels = 64, .in_height = 7, .in_width = 7},
                                .global_average = 1};
    run_case(&b, average_blocked, -1.0, 1.0);
    run_case(&b, average_plain, -1.0, 1.0);
    run_case(&b, average_resnet, -1.0, 1.0);

    dt_error err = {0};
    dt_pool_desc bad = {2, 16, 8, 8, 3, 2, 2}; /* padding more than half the kernel */
    CHECK(dt_backend_maxpool_create(&b, &bad, &err) == NULL);
    CHECK(strstr(err.message, "maxpool_create") != NULL);
    dt_pool_desc d = {2, 16, 8, 8, 3, 2, 1};
    dt_layer *layer = dt_backend_maxpool_create(&b, &d, &err);
    dt_tensor *dy = test_tensor(&b, 2, 16, 4, 4, NULL), *dx = test_tensor(&b, 2, 16, 8, 8, NULL);
    CHECK(dt_backend_maxpool_backward(&b, layer, dy, dx, &err) == -1); /* no forward yet */
    CHECK(dt_backend_maxpool_forward(&b, layer, dx, dx, &err) == -1);  /* wrong output shape */
    CHECK(strstr(err.message, "maxpool_forward") != NULL);
    dt_backend_layer_destroy(&b, layer);
    dt_backend_tensor_destroy(&b, dy);
    dt_backend_tensor_destroy(&b, dx);
    dt_backend_free(&b);
    return dt_test_summary("backend_pool");
}
