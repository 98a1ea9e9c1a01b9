/* Every op of the CUDA backend against the CPU backend (fp32) on the same inputs, forward and
 * backward, at fp32, tf32 and bf16: buffers and the SGD update, tensor transfers, the input
 * normalisation, convolution (forward, backward data, backward filter overwritten and
 * accumulated), batch norm (training with running statistics, inference, backward with and
 * without the fused ReLU), the residual add+ReLU, ReLU backward, tensor add, max and average
 * pooling, the linear layer, softmax cross-entropy with the device-side loss statistics. Each
 * comparison prints its error (max |cuda - cpu| / max |cpu|) next to its tolerance.
 * Without a GPU (or without the CUDA backend) it reports SKIPPED (exit 77), never passed. */
#include <stdlib.h>
#include <string.h>

#include "dtrain/config.h"
#include "test_backend_common.h"

static int current_precision;

/* max |got - want| / max |want|, printed beside the tolerance, one check */
static void compare(const char *what, const float *got, const float *want, size_t n, double tol) {
    size_t at = 0;
    double rel = dt_test_relative_error(got, want, n, &at);
    printf("  %-4s %-44s error %.3g  tolerance %.3g\n", dt_precision_name(current_precision), what,
           rel, tol);
    CHECK_MSG(rel <= tol, "%s %s: error %.3g above %.3g (element %zu: %.9g vs %.9g)",
              dt_precision_name(current_precision), what, rel, tol, at, n ? got[at] : 0.0,
              n ? want[at] : 0.0);
}

typedef struct pair {
    dt_backend *cpu, *gpu;
} pair;

static float *random_floats(size_t n, double lo, double hi, uint64_t *state) {
    float *a = test_floats(n);
    for (size_t i = 0; i < n; i++) a[i] = (float)test_random(state, lo, hi);
    return a;
}

/* a tensor on backend b holding host (NCHW) values, NULL: zeros */
static dt_tensor *tensor_of(dt_backend *b, int n, int c, int h, int w, const float *host) {
    dt_error err = {0};
    dt_tensor *t = dt_backend_tensor_create(b, n, c, h, w, &err);
    if (!t) {
        fprintf(stderr, "%s tensor_create %dx%dx%dx%d: %s\n", dt_backend_name(b), n, c, h, w,
                err.message);
        exit(1);
    }
    if (host) CHECK_MSG(dt_backend_tensor_upload(b, t, host, &err) == 0, "%s", err.message);
    return t;
}

static float *tensor_read(dt_backend *b, const dt_tensor *t, size_t n) {
    dt_error err = {0};
    float *host = test_floats(n);
    CHECK_MSG(dt_backend_tensor_download(b, t, host, &err) == 0, "%s", err.message);
    return host;
}

static float *buffer_of(dt_backend *b, const float *host, size_t n) {
    dt_error err = {0};
    float *buf = dt_backend_buffer_alloc(b, n, &err);
    if (!buf) {
        fprintf(stderr, "%s buffer_alloc: %s\n", dt_backend_name(b), err.message);
        exit(1);
    }
    if (host) CHECK_MSG(dt_backend_buffer_upload(b, buf, host, n, &err) == 0, "%s", err.message);
    return buf;
}

static float *buffer_read(dt_backend *b, const float *buf, size_t n) {
    dt_error err = {0};
    float *host = test_floats(n);
    CHECK_MSG(dt_backend_buffer_download(b, host, buf, n, &err) == 0, "%s", err.message);
    return host;
}

/* ---- buffers -------------------------------------------------------------------------------- */

static void check_buffers(pair *p, const dt_test_tolerances *t) {
    enum { N = 100003 };
    dt_error err = {0};
    uint64_t state = 1u;
    float *a = random_floats(N, -1, 1, &state), *g = random_floats(N, -2, 2, &state);
    float *m = random_floats(N, -0.5, 0.5, &state);
    float *ca = buffer_of(p->cpu, a, N), *ga = buffer_of(p->gpu, a, N);
    float *back = buffer_read(p->gpu, ga, N);
    compare("buffer upload/download", back, a, N, t->exact);
    free(back);
    float *cg = buffer_of(p->cpu, g, N), *gg = buffer_of(p->gpu, g, N);
    float *cm = buffer_of(p->cpu, m, N), *gm = buffer_of(p->gpu, m, N);
    const dt_sgd_params variants[] = {
        {.lr = 0.1f, .momentum = 0.9f, .weight_decay = 5e-4f, .grad_scale = 0.5f, .first_step = 1},
        {.lr = 0.1f, .momentum = 0.9f, .weight_decay = 5e-4f, .grad_scale = 0.5f},
        {.lr = 0.05f, .momentum = 0.9f, .weight_decay = 1e-4f, .grad_scale = 1.0f, .nesterov = 1},
        {.lr = 0.05f, .momentum = 0.0f, .weight_decay = 1e-4f, .grad_scale = 0.25f}};
    for (size_t v = 0; v < sizeof variants / sizeof *variants; v++) {
        CHECK(dt_backend_sgd_step(p->cpu, &variants[v], ca, cg, cm, N, &err) == 0);
        CHECK_MSG(dt_backend_sgd_step(p->gpu, &variants[v], ga, gg, gm, N, &err) == 0, "%s",
                  err.message);
    }
    float *want = buffer_read(p->cpu, ca, N), *got = buffer_read(p->gpu, ga, N);
    compare("sgd_step x4 (momentum, nesterov, plain)", got, want, N, t->exact);
    free(want), free(got);
    want = buffer_read(p->cpu, cm, N), got = buffer_read(p->gpu, gm, N);
    compare("sgd_step momentum buffer", got, want, N, t->exact);
    free(want), free(got);
    /* AdamW, three steps from the same state: adamw_math.h on both sides; the per-step scalars
     * come from the device's pow, so within 1e-6 rather than bit for bit */
    float *cv = buffer_of(p->cpu, NULL, N), *gv = buffer_of(p->gpu, NULL, N);
    for (int s = 1; s <= 3; s++) {
        dt_adamw_params adamw = {.lr = 1e-3,
                                 .beta1 = 0.9,
                                 .beta2 = 0.999,
                                 .eps = 1e-8,
                                 .weight_decay = 0.05,
                                 .grad_scale = 0.5f,
                                 .step = s};
        CHECK(dt_backend_adamw_step(p->cpu, &adamw, ca, cg, cm, cv, N, &err) == 0);
        CHECK_MSG(dt_backend_adamw_step(p->gpu, &adamw, ga, gg, gm, gv, N, &err) == 0, "%s",
                  err.message);
    }
    want = buffer_read(p->cpu, ca, N), got = buffer_read(p->gpu, ga, N);
    compare("adamw_step x3 parameters", got, want, N, 1e-6);
    free(want), free(got);
    want = buffer_read(p->cpu, cv, N), got = buffer_read(p->gpu, gv, N);
    compare("adamw_step x3 exp_avg_sq", got, want, N, 1e-6);
    free(want), free(got);
    dt_backend_buffer_free(p->cpu, cv);
    dt_backend_buffer_free(p->gpu, gv);
    /* the exact checks below start again from equal buffers */
    CHECK(dt_backend_buffer_upload(p->cpu, ca, a, N, &err) == 0 &&
          dt_backend_buffer_upload(p->gpu, ga, a, N, &err) == 0);
    CHECK(dt_backend_buffer_axpy(p->cpu, ca, -0.5f, cg, N, &err) == 0);
    CHECK(dt_backend_buffer_axpy(p->gpu, ga, -0.5f, gg, N, &err) == 0);
    want = buffer_read(p->cpu, ca, N), got = buffer_read(p->gpu, ga, N);
    compare("buffer_axpy", got, want, N, t->exact);
    free(want), free(got);
    double cs = 0.0, gs = 0.0;
    CHECK(dt_backend_buffer_sum_squares(p->cpu, ca, N, &cs, &err) == 0);
    CHECK_MSG(dt_backend_buffer_sum_squares(p->gpu, ga, N, &gs, &err) == 0, "%s", err.message);
    printf("  %-4s %-44s error %.3g  tolerance %.3g\n", dt_precision_name(current_precision),
           "buffer_sum_squares", fabs(gs - cs) / cs, 1e-12);
    CHECK_CLOSE(gs, cs, 1e-12, 0.0);
    CHECK(dt_backend_buffer_fill(p->gpu, ga, 0.25f, N, &err) == 0);
    got = buffer_read(p->gpu, ga, N);
    int wrong = 0;
    for (int i = 0; i < N; i++) wrong += got[i] != 0.25f;
    CHECK_INT_EQ(wrong, 0);
    free(got);
    dt_backend_buffer_free(p->cpu, ca), dt_backend_buffer_free(p->gpu, ga);
    dt_backend_buffer_free(p->cpu, cg), dt_backend_buffer_free(p->gpu, gg);
    dt_backend_buffer_free(p->cpu, cm), dt_backend_buffer_free(p->gpu, gm);
    free(a), free(g), free(m);
}

/* ---- tensors and input ------------------------------------------------------------------------
 */

static void check_input(pair *p, const dt_test_tolerances *t) {
    enum { N = 3, H = 17, W = 19 };
    dt_error err = {0};
    const size_t count = (size_t)N * 3 * H * W;
    dt_backend *gpu = p->gpu;
    uint8_t *pixels = dt_backend_host_alloc(gpu, count, &err);
    CHECK_MSG(pixels != NULL, "host_alloc: %s", err.message);
    if (!pixels) return;
    for (size_t i = 0; i < count; i++) pixels[i] = (uint8_t)(i * 37 + i / 7);
    const float mean[3] = {0.485f, 0.456f, 0.406f}, std[3] = {0.229f, 0.224f, 0.225f};
    dt_tensor *ct = tensor_of(p->cpu, N, 3, H, W, NULL), *gt = tensor_of(gpu, N, 3, H, W, NULL);
    CHECK(dt_backend_tensor_from_images(p->cpu, ct, pixels, mean, std, &err) == 0);
    CHECK_MSG(dt_backend_tensor_from_images(gpu, gt, pixels, mean, std, &err) == 0, "%s",
              err.message);
    CHECK_MSG(dt_backend_input_wait(gpu, &err) == 0, "%s", err.message);
    memset(pixels, 0, count); /* the copy has been read: the tensor keeps its values */
    float *want = tensor_read(p->cpu, ct, count), *got = tensor_read(gpu, gt, count);
    compare("tensor_from_images", got, want, count, t->eltwise);
    free(got);
    /* the same pixels through input_prefetch (taken from the prefetched device buffer) */
    for (size_t i = 0; i < count; i++) pixels[i] = (uint8_t)(i * 37 + i / 7);
    CHECK_MSG(dt_backend_input_prefetch(gpu, pixels, count, &err) == 0 &&
                  dt_backend_tensor_from_images(gpu, gt, pixels, mean, std, &err) == 0 &&
                  dt_backend_input_wait(gpu, &err) == 0,
              "%s", err.message);
    got = tensor_read(gpu, gt, count);
    compare("input_prefetch + tensor_from_images", got, want, count, t->eltwise);
    free(got);
    /* a prefetch that input_wait passed is forgotten: the host buffer may have been refilled */
    memset(pixels, 0, count);
    CHECK_MSG(dt_backend_input_prefetch(gpu, pixels, count, &err) == 0 &&
                  dt_backend_input_wait(gpu, &err) == 0,
              "%s", err.message);
    for (size_t i = 0; i < count; i++) pixels[i] = (uint8_t)(i * 37 + i / 7);
    CHECK_MSG(dt_backend_tensor_from_images(gpu, gt, pixels, mean, std, &err) == 0 &&
                  dt_backend_input_wait(gpu, &err) == 0,
              "%s", err.message);
    got = tensor_read(gpu, gt, count);
    compare("tensor_from_images after a forgotten prefetch", got, want, count, t->eltwise);
    free(got);
    /* tensor upload/download round trip */
    dt_tensor *gu = tensor_of(gpu, N, 3, H, W, want);
    got = tensor_read(gpu, gu, count);
    compare("tensor_upload/download", got, want, count, t->eltwise);
    free(want), free(got);
    dt_backend_host_free(gpu, pixels);
    dt_backend_tensor_destroy(p->cpu, ct);
    dt_backend_tensor_destroy(gpu, gt), dt_backend_tensor_destroy(gpu, gu);
}

/* ---- convolution ----------------------------------------------------------------------------- */

static void check_conv(pair *p, dt_conv_desc d, const dt_test_tolerances *t) {
    dt_error err = {0};
    const int oh = (d.in_height + 2 * d.padding - d.kernel) / d.stride + 1;
    const int ow = (d.in_width + 2 * d.padding - d.kernel) / d.stride + 1;
    const size_t nx = (size_t)d.batch * d.in_channels * d.in_height * d.in_width;
    const size_t ny = (size_t)d.batch * d.out_channels * oh * ow;
    const size_t nw = (size_t)d.out_channels * d.in_channels * d.kernel * d.kernel;
    uint64_t state = 77u + (uint64_t)d.in_channels;
    float *x = random_floats(nx, -1, 1, &state), *w = random_floats(nw, -0.2, 0.2, &state);
    float *dy = random_floats(ny, -1, 1, &state);
    char what[120], label[160];
    snprintf(what, sizeof what, "conv %dx%dx%dx%d->%d k%d s%d", d.batch, d.in_channels, d.in_height,
             d.in_width, d.out_channels, d.kernel, d.stride);
    float *w2 = random_floats(nw, -0.2, 0.2, &state);
    dt_backend *b[2] = {p->cpu, p->gpu};
    float *y[2], *dx[2], *dw[2], *dw2[2], *y2[2];
    for (int k = 0; k < 2; k++) {
        dt_layer *l = dt_backend_conv_create(b[k], &d, &err);
        CHECK_MSG(l != NULL, "%s %s: %s", dt_backend_name(b[k]), what, err.message);
        if (!l) return;
        float *wb = buffer_of(b[k], w, nw), *gb = buffer_of(b[k], NULL, nw);
        dt_tensor *tx = tensor_of(b[k], d.batch, d.in_channels, d.in_height, d.in_width, x);
        dt_tensor *ty = tensor_of(b[k], d.batch, d.out_channels, oh, ow, NULL);
        dt_tensor *tdy = tensor_of(b[k], d.batch, d.out_channels, oh, ow, dy);
        dt_tensor *tdx = tensor_of(b[k], d.batch, d.in_channels, d.in_height, d.in_width, NULL);
        CHECK_MSG(dt_backend_conv_forward(b[k], l, wb, tx, ty, &err) == 0, "%s", err.message);
        CHECK_MSG(dt_backend_conv_backward(b[k], l, wb, tx, tdy, tdx, gb, 0, &err) == 0, "%s",
                  err.message);
        y[k] = tensor_read(b[k], ty, ny);
        dx[k] = tensor_read(b[k], tdx, nx);
        dw[k] = buffer_read(b[k], gb, nw);
        CHECK_MSG(dt_backend_conv_backward(b[k], l, wb, tx, tdy, NULL, gb, 1, &err) == 0, "%s",
                  err.message);
        dw2[k] = buffer_read(b[k], gb, nw);
        /* new weights (a new parameter version): the derived filter must follow */
        CHECK(dt_backend_buffer_upload(b[k], wb, w2, nw, &err) == 0);
        CHECK(dt_backend_conv_forward(b[k], l, wb, tx, ty, &err) == 0);
        y2[k] = tensor_read(b[k], ty, ny);
        dt_backend_layer_destroy(b[k], l);
        dt_backend_tensor_destroy(b[k], tx), dt_backend_tensor_destroy(b[k], ty);
        dt_backend_tensor_destroy(b[k], tdy), dt_backend_tensor_destroy(b[k], tdx);
        dt_backend_buffer_free(b[k], wb), dt_backend_buffer_free(b[k], gb);
    }
    snprintf(label, sizeof label, "%s forward", what);
    compare(label, y[1], y[0], ny, t->conv);
    snprintf(label, sizeof label, "%s backward data", what);
    compare(label, dx[1], dx[0], nx, t->conv);
    snprintf(label, sizeof label, "%s backward filter", what);
    compare(label, dw[1], dw[0], nw, t->conv);
    snprintf(label, sizeof label, "%s backward filter, accumulated", what);
    compare(label, dw2[1], dw2[0], nw, t->conv);
    snprintf(label, sizeof label, "%s forward, weights changed", what);
    compare(label, y2[1], y2[0], ny, t->conv);
    for (int k = 0; k < 2; k++) free(y[k]), free(dx[k]), free(dw[k]), free(dw2[k]), free(y2[k]);
    free(x), free(w), free(w2), free(dy);
}

/* ---- batch norm ------------------------------------------------------------------------------ */

static void check_batchnorm(pair *p, dt_batchnorm_desc d, const dt_test_tolerances *t) {
    dt_error err = {0};
    const size_t n = (size_t)d.batch * d.channels * d.height * d.width, C = (size_t)d.channels;
    uint64_t state = 5u + C;
    float *x = random_floats(n, -1, 3, &state), *dy = random_floats(n, -1, 1, &state);
    float *gamma = random_floats(C, 0.5, 1.5, &state), *beta = random_floats(C, -0.5, 0.5, &state);
    float *rm = random_floats(C, -0.2, 0.2, &state), *rv = random_floats(C, 0.5, 2, &state);
    dt_backend *b[2] = {p->cpu, p->gpu};
    float *y[2], *dx[2], *dg[2], *db[2], *dg2[2], *rmo[2], *rvo[2], *yi[2];
    for (int k = 0; k < 2; k++) {
        dt_layer *l = dt_backend_batchnorm_create(b[k], &d, &err);
        CHECK_MSG(l != NULL, "%s batchnorm_create: %s", dt_backend_name(b[k]), err.message);
        if (!l) return;
        float *g = buffer_of(b[k], gamma, C), *be = buffer_of(b[k], beta, C);
        float *m = buffer_of(b[k], rm, C), *v = buffer_of(b[k], rv, C);
        float *dgb = buffer_of(b[k], NULL, C), *dbb = buffer_of(b[k], NULL, C);
        dt_tensor *tx = tensor_of(b[k], d.batch, d.channels, d.height, d.width, x);
        dt_tensor *ty = tensor_of(b[k], d.batch, d.channels, d.height, d.width, NULL);
        dt_tensor *tdy = tensor_of(b[k], d.batch, d.channels, d.height, d.width, dy);
        dt_tensor *tdx = tensor_of(b[k], d.batch, d.channels, d.height, d.width, NULL);
        CHECK_MSG(dt_backend_batchnorm_forward(b[k], l, g, be, m, v, 1, tx, ty, &err) == 0, "%s",
                  err.message);
        CHECK_MSG(
            dt_backend_batchnorm_backward(b[k], l, g, be, tx, ty, tdy, tdx, dgb, dbb, 0, &err) == 0,
            "%s", err.message);
        y[k] = tensor_read(b[k], ty, n), dx[k] = tensor_read(b[k], tdx, n);
        dg[k] = buffer_read(b[k], dgb, C), db[k] = buffer_read(b[k], dbb, C);
        rmo[k] = buffer_read(b[k], m, C), rvo[k] = buffer_read(b[k], v, C);
        CHECK(dt_backend_batchnorm_backward(b[k], l, g, be, tx, ty, tdy, tdx, dgb, dbb, 1, &err) ==
              0);
        dg2[k] = buffer_read(b[k], dgb, C);
        CHECK(dt_backend_batchnorm_forward(b[k], l, g, be, m, v, 0, tx, ty, &err) == 0);
        yi[k] = tensor_read(b[k], ty, n);
        dt_backend_layer_destroy(b[k], l);
        dt_backend_tensor_destroy(b[k], tx), dt_backend_tensor_destroy(b[k], ty);
        dt_backend_tensor_destroy(b[k], tdy), dt_backend_tensor_destroy(b[k], tdx);
        float *bufs[] = {g, be, m, v, dgb, dbb};
        for (int i = 0; i < 6; i++) dt_backend_buffer_free(b[k], bufs[i]);
    }
    char what[100], label[160];
    snprintf(what, sizeof what, "batchnorm %dx%dx%dx%d%s", d.batch, d.channels, d.height, d.width,
             d.fuse_relu ? "+relu" : "");
    snprintf(label, sizeof label, "%s training forward", what);
    compare(label, y[1], y[0], n, t->bn);
    snprintf(label, sizeof label, "%s running mean", what);
    compare(label, rmo[1], rmo[0], C, t->bn);
    snprintf(label, sizeof label, "%s running var", what);
    compare(label, rvo[1], rvo[0], C, t->bn);
    snprintf(label, sizeof label, "%s backward dx", what);
    compare(label, dx[1], dx[0], n, t->bn);
    snprintf(label, sizeof label, "%s backward dgamma", what);
    compare(label, dg[1], dg[0], C, t->bn);
    snprintf(label, sizeof label, "%s backward dbeta", what);
    compare(label, db[1], db[0], C, t->bn);
    snprintf(label, sizeof label, "%s backward dgamma, accumulated", what);
    compare(label, dg2[1], dg2[0], C, t->bn);
    snprintf(label, sizeof label, "%s inference forward", what);
    compare(label, yi[1], yi[0], n, t->bn);
    for (int k = 0; k < 2; k++)
        free(y[k]), free(dx[k]), free(dg[k]), free(db[k]), free(dg2[k]), free(rmo[k]), free(rvo[k]),
            free(yi[k]);
    free(x), free(dy), free(gamma), free(beta), free(rm), free(rv);
}

/* ---- element-wise and pooling ------------------------------------------------------------------
 */

static void check_eltwise_and_pools(pair *p, const dt_test_tolerances *t) {
    enum { N = 2, C = 64, H = 9, W = 9 };
    dt_error err = {0};
    const size_t n = (size_t)N * C * H * W;
    uint64_t state = 9u;
    float *a = random_floats(n, -1, 1, &state), *c = random_floats(n, -1, 1, &state);
    float *d = random_floats(n, -1, 1, &state);
    const dt_pool_desc pd = {.batch = N,
                             .channels = C,
                             .in_height = H,
                             .in_width = W,
                             .kernel = 3,
                             .stride = 2,
                             .padding = 1};
    const int OH = 5, OW = 5;
    const size_t no = (size_t)N * C * OH * OW;
    float *dpool = random_floats(no, -1, 1, &state), *dglobal = random_floats(N * C, -1, 1, &state);
    dt_backend *b[2] = {p->cpu, p->gpu};
    float *sum[2], *addrelu[2], *relub[2], *mp[2], *mpb[2], *ap[2], *apb[2];
    for (int k = 0; k < 2; k++) {
        dt_tensor *ta = tensor_of(b[k], N, C, H, W, a), *tc = tensor_of(b[k], N, C, H, W, c);
        dt_tensor *td = tensor_of(b[k], N, C, H, W, d), *tdx = tensor_of(b[k], N, C, H, W, NULL);
        CHECK(dt_backend_tensor_add(b[k], ta, tc, &err) == 0);
        sum[k] = tensor_read(b[k], ta, n);
        CHECK(dt_backend_add_relu_forward(b[k], ta, tc, &err) == 0);
        addrelu[k] = tensor_read(b[k], ta, n);
        CHECK(dt_backend_relu_backward(b[k], ta, td, tdx, &err) == 0);
        relub[k] = tensor_read(b[k], tdx, n);
        dt_layer *l = dt_backend_maxpool_create(b[k], &pd, &err);
        CHECK_MSG(l != NULL, "%s", err.message);
        if (!l) return;
        dt_tensor *ty = tensor_of(b[k], N, C, OH, OW, NULL);
        dt_tensor *tdy = tensor_of(b[k], N, C, OH, OW, dpool);
        CHECK(dt_backend_maxpool_forward(b[k], l, tc, ty, &err) == 0);
        CHECK(dt_backend_maxpool_backward(b[k], l, tdy, tdx, &err) == 0);
        mp[k] = tensor_read(b[k], ty, no), mpb[k] = tensor_read(b[k], tdx, n);
        dt_tensor *tg = tensor_of(b[k], N, C, 1, 1, NULL);
        dt_tensor *tdg = tensor_of(b[k], N, C, 1, 1, dglobal);
        CHECK(dt_backend_avgpool_forward(b[k], tc, tg, &err) == 0);
        CHECK(dt_backend_avgpool_backward(b[k], tdg, tdx, &err) == 0);
        ap[k] = tensor_read(b[k], tg, (size_t)N * C), apb[k] = tensor_read(b[k], tdx, n);
        dt_backend_layer_destroy(b[k], l);
        dt_tensor *all[] = {ta, tc, td, tdx, ty, tdy, tg, tdg};
        for (int i = 0; i < 8; i++) dt_backend_tensor_destroy(b[k], all[i]);
    }
    compare("tensor_add", sum[1], sum[0], n, t->eltwise);
    compare("add_relu_forward", addrelu[1], addrelu[0], n, 2 * t->eltwise);
    compare("relu_backward", relub[1], relub[0], n, 2 * t->eltwise);
    compare("maxpool 3x3 s2 p1 forward", mp[1], mp[0], no, t->pool);
    compare("maxpool 3x3 s2 p1 backward", mpb[1], mpb[0], n, t->pool);
    compare("avgpool forward", ap[1], ap[0], (size_t)N * C, t->pool);
    compare("avgpool backward", apb[1], apb[0], n, t->pool);
    for (int k = 0; k < 2; k++)
        free(sum[k]), free(addrelu[k]), free(relub[k]), free(mp[k]), free(mpb[k]), free(ap[k]),
            free(apb[k]);
    free(a), free(c), free(d), free(dpool), free(dglobal);
}

/* ---- linear and loss --------------------------------------------------------------------------
 */

static void check_linear_and_loss(pair *p, const dt_test_tolerances *t) {
    enum { N = 37, IN = 512, OUT = 10 };
    dt_error err = {0};
    uint64_t state = 11u;
    float *x = random_floats((size_t)N * IN, 0, 2, &state);
    float *w = random_floats((size_t)OUT * IN, -0.05, 0.05, &state);
    float *bias = random_floats(OUT, -0.1, 0.1, &state);
    int32_t labels[N];
    float weights[N];
    for (int i = 0; i < N; i++) labels[i] = (i * 7) % OUT, weights[i] = i % 5 == 4 ? 0.0f : 1.0f;
    labels[4] = -1; /* padding */
    const dt_linear_desc d = {.batch = N, .in_features = IN, .out_features = OUT};
    dt_backend *b[2] = {p->cpu, p->gpu};
    float *y[2], *dl[2], *dx[2], *gw[2], *gb[2], *gw2[2], *y2[2];
    int32_t pred[2][N];
    double stats[2][DT_LOSS_STATS];
    for (int k = 0; k < 2; k++) {
        dt_layer *l = dt_backend_linear_create(b[k], &d, &err);
        CHECK_MSG(l != NULL, "%s", err.message);
        if (!l) return;
        float *wb = buffer_of(b[k], w, (size_t)OUT * IN), *bb = buffer_of(b[k], bias, OUT);
        float *gwb = buffer_of(b[k], NULL, (size_t)OUT * IN), *gbb = buffer_of(b[k], NULL, OUT);
        dt_tensor *tx = tensor_of(b[k], N, IN, 1, 1, x), *ty = tensor_of(b[k], N, OUT, 1, 1, NULL);
        dt_tensor *tdl = tensor_of(b[k], N, OUT, 1, 1, NULL);
        dt_tensor *tdx = tensor_of(b[k], N, IN, 1, 1, NULL);
        double discard[DT_LOSS_STATS];
        CHECK(dt_backend_loss_stats_read(b[k], discard, 1, &err) == 0);
        CHECK_MSG(dt_backend_linear_forward(b[k], l, wb, bb, tx, ty, &err) == 0, "%s", err.message);
        CHECK_MSG(dt_backend_softmax_cross_entropy(b[k], ty, labels, weights, tdl, 0.5f, pred[k],
                                                   &err) == 0,
                  "%s", err.message);
        CHECK_MSG(dt_backend_linear_backward(b[k], l, wb, tx, tdl, tdx, gwb, gbb, 0, &err) == 0,
                  "%s", err.message);
        y[k] = tensor_read(b[k], ty, (size_t)N * OUT), dl[k] = tensor_read(b[k], tdl, N * OUT);
        dx[k] = tensor_read(b[k], tdx, (size_t)N * IN);
        gw[k] = buffer_read(b[k], gwb, (size_t)OUT * IN), gb[k] = buffer_read(b[k], gbb, OUT);
        CHECK(dt_backend_linear_backward(b[k], l, wb, tx, tdl, NULL, gwb, gbb, 1, &err) == 0);
        gw2[k] = buffer_read(b[k], gwb, (size_t)OUT * IN);
        /* an SGD step changes the weights: the bf16 copy must follow */
        const dt_sgd_params sgd = {.lr = 0.5f, .grad_scale = 1.0f};
        CHECK(dt_backend_sgd_step(b[k], &sgd, wb, gwb, NULL, (size_t)OUT * IN, &err) == 0);
        CHECK(dt_backend_linear_forward(b[k], l, wb, bb, tx, ty, &err) == 0);
        y2[k] = tensor_read(b[k], ty, (size_t)N * OUT);
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
    compare("linear 512->10 forward", y[1], y[0], (size_t)N * OUT, t->linear);
    compare("softmax_cross_entropy dlogits", dl[1], dl[0], (size_t)N * OUT, t->loss + t->linear);
    compare("linear backward dx", dx[1], dx[0], (size_t)N * IN, t->linear + t->loss);
    compare("linear backward weight", gw[1], gw[0], (size_t)OUT * IN, t->linear + t->loss);
    compare("linear backward bias", gb[1], gb[0], OUT, t->linear + t->loss);
    compare("linear backward weight, accumulated", gw2[1], gw2[0], (size_t)OUT * IN,
            t->linear + t->loss);
    compare("linear forward after an SGD step", y2[1], y2[0], (size_t)N * OUT,
            2 * (t->linear + t->loss));
    int pred_diff = 0;
    for (int i = 0; i < N; i++) pred_diff += weights[i] != 0.0f && pred[0][i] != pred[1][i];
    printf("  %-4s %-44s %d of %d differ (ties within the tolerance may)\n",
           dt_precision_name(current_precision), "softmax_cross_entropy predictions", pred_diff, N);
    if (current_precision == DT_PRECISION_FP32) CHECK_INT_EQ(pred_diff, 0);
    const float loss_stats_tol = (float)(t->linear + t->loss);
    float got[3] = {(float)stats[1][0], (float)stats[1][2], (float)stats[1][3]};
    float want[3] = {(float)stats[0][0], (float)stats[0][2], (float)stats[0][3]};
    compare("loss statistics (sum, count, non-finite)", got, want, 3, loss_stats_tol);
    CHECK(stats[1][DT_LOSS_COUNT] == 2.0 * (N - N / 5));
    CHECK(stats[1][DT_LOSS_NONFINITE] == 0.0);
    for (int k = 0; k < 2; k++)
        free(y[k]), free(dl[k]), free(dx[k]), free(gw[k]), free(gb[k]), free(gw2[k]), free(y2[k]);
    free(x), free(w), free(bias);
}

int main(void) {
    char reason[256];
    if (dt_test_backend_unusable("cuda", reason, sizeof reason)) {
        printf("SKIPPED: %s\n", reason);
        return DT_TEST_SKIP;
    }
    dt_backend cpu = test_backend_open(0, NULL); /* the CPU backend: the reference */
    const int precisions[] = {DT_PRECISION_FP32, DT_PRECISION_TF32, DT_PRECISION_BF16};
    for (int i = 0; i < 3; i++) {
        current_precision = precisions[i];
        dt_backend gpu = {0};
        dt_error err = {0};
        dt_backend_options opt = {.device = 0, .precision = precisions[i]};
        if (dt_backend_cuda_create(&opt, &gpu, &err) != 0) {
            CHECK_MSG(0, "creating the CUDA backend (%s): %s", dt_precision_name(precisions[i]),
                      err.message);
            continue;
        }
        const dt_test_tolerances *t = dt_test_tolerances_for(precisions[i]);
        pair p = {&cpu, &gpu};
        check_buffers(&p, t);
        check_input(&p, t);
        /* batch, in, out, h, w, kernel, stride, padding: the stem, a 3x3, a stage entry,
         * a 1x1 downsample */
        const dt_conv_desc convs[] = {{2, 3, 64, 32, 32, 7, 2, 3, 0, 0},
                                      {2, 64, 64, 8, 8, 3, 1, 1, 0, 0},
                                      {2, 64, 128, 8, 8, 3, 2, 1, 0, 0},
                                      {2, 64, 128, 8, 8, 1, 2, 0, 0, 0}};
        for (size_t c = 0; c < sizeof convs / sizeof *convs; c++) check_conv(&p, convs[c], t);
        check_batchnorm(&p, (dt_batchnorm_desc){4, 64, 6, 6, 0.1f, 1e-5f, 1}, t);
        check_batchnorm(&p, (dt_batchnorm_desc){4, 64, 6, 6, 0.1f, 1e-5f, 0}, t);
        check_batchnorm(&p, (dt_batchnorm_desc){3, 40, 5, 3, 0.1f, 1e-5f, 1}, t);
        check_eltwise_and_pools(&p, t);
        check_linear_and_loss(&p, t);
        dt_backend_free(&gpu);
    }
    dt_backend_free(&cpu);
    return dt_test_summary("cuda_ops");
}
