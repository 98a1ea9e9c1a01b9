/* The per-element math of the CUDA kernels (src/backend/cuda/cuda_math.h), run on the host and
 * held to the CPU backend on the same inputs: SGD (plain, weight decay, momentum first and later
 * steps, nesterov, gradient scale) bit for bit; batch-norm statistics, running statistics with
 * the unbiased variance, forward and backward (with and without the fused ReLU); softmax
 * cross-entropy loss, argmax and gradient, and the loss statistics; the input normalisation bit
 * for bit on every byte value; bf16 round-to-nearest-even with ties, NaN, Inf and overflow;
 * max-pool window maxima (torch's rule) and the gather backward; the residual add+ReLU and the
 * ReLU backward; the OIHW/KRSC and NCHW/NHWC index maps. Needs no GPU. */
#include <float.h>
#include <stdlib.h>
#include <string.h>

#include "../src/backend/cuda/cuda_math.h"
#include "test_backend_common.h"

/* ---- bf16 -------------------------------------------------------------------------------- */

static uint16_t bf16_of_bits(uint32_t bits) {
    return dt_float_to_bf16(dt_bits_float(bits));
}

static void check_bf16(void) {
    CHECK_INT_EQ(bf16_of_bits(0x3f800000u), 0x3f80); /* 1 */
    CHECK_INT_EQ(bf16_of_bits(0x3f808000u), 0x3f80); /* tie, even below */
    CHECK_INT_EQ(bf16_of_bits(0x3f818000u), 0x3f82); /* tie, even above */
    CHECK_INT_EQ(bf16_of_bits(0x3f808001u), 0x3f81); /* just above the tie */
    CHECK_INT_EQ(bf16_of_bits(0x3f807fffu), 0x3f80); /* just below the tie */
    CHECK_INT_EQ(bf16_of_bits(0xbf818000u), 0xbf82); /* negative tie */
    CHECK_INT_EQ(bf16_of_bits(0x7f800000u), 0x7f80); /* +Inf */
    CHECK_INT_EQ(bf16_of_bits(0xff800000u), 0xff80); /* -Inf */
    CHECK_INT_EQ(bf16_of_bits(0x7f7fffffu), 0x7f80); /* FLT_MAX rounds to Inf */
    CHECK_INT_EQ(bf16_of_bits(0x7f7f7fffu), 0x7f7f); /* largest that stays finite */
    CHECK_INT_EQ(bf16_of_bits(0x7fc00000u), 0x7fc0); /* quiet NaN */
    CHECK_INT_EQ(bf16_of_bits(0x7f800001u), 0x7fc0); /* signalling NaN stays a NaN */
    CHECK_INT_EQ(bf16_of_bits(0xff800001u), 0xffc0); /* negative NaN */
    CHECK_INT_EQ(bf16_of_bits(0x7fffffffu), 0x7fff); /* NaN payload bits above 16 kept */
    CHECK_INT_EQ(bf16_of_bits(0x00000001u), 0x0000); /* tiny denormal to zero */
    CHECK_INT_EQ(bf16_of_bits(0x00018000u), 0x0002); /* denormal tie to even */
    CHECK_INT_EQ(bf16_of_bits(0x80000000u), 0x8000); /* -0 */
    CHECK(isnan(dt_bf16_to_float(bf16_of_bits(0x7f800001u))));

    /* every non-NaN bf16 value converts back exactly */
    int roundtrip_wrong = 0;
    for (uint32_t h = 0; h < 0x10000u; h++) {
        float f = dt_bf16_to_float((uint16_t)h);
        if (isnan(f)) continue;
        roundtrip_wrong += dt_float_to_bf16(f) != h;
    }
    CHECK_INT_EQ(roundtrip_wrong, 0);

    /* random floats: the result is the nearest bf16, ties to the even one */
    uint64_t state = 12345u;
    int not_nearest = 0;
    for (int i = 0; i < 200000; i++) {
        state ^= state >> 12, state ^= state << 25, state ^= state >> 27;
        uint32_t bits = (uint32_t)((state * 2685821657736338717ULL) >> 32);
        float f = dt_bits_float(bits);
        if (!isfinite(f) || fabsf(f) >= 3.3e38f) continue;
        uint16_t h = dt_float_to_bf16(f);
        uint32_t below = bits & 0xffff0000u;
        double lo = dt_bits_float(below), hi = dt_bits_float(below + 0x10000u);
        double d_lo = fabs((double)f - lo), d_hi = fabs((double)f - hi);
        uint16_t want = (uint16_t)(below >> 16);
        if (d_hi < d_lo || (d_hi == d_lo && (want & 1u))) want++;
        not_nearest += h != want;
    }
    CHECK_INT_EQ(not_nearest, 0);
}

/* ---- SGD --------------------------------------------------------------------------------- */

static void check_sgd(dt_backend *b) {
    enum { N = 1000 };
    static const dt_sgd_params variants[] = {
        {.lr = 0.1f, .momentum = 0.0f, .weight_decay = 0.0f, .grad_scale = 1.0f},
        {.lr = 0.05f, .momentum = 0.0f, .weight_decay = 1e-4f, .grad_scale = 0.25f},
        {.lr = 0.1f, .momentum = 0.9f, .weight_decay = 5e-4f, .grad_scale = 1.0f, .first_step = 1},
        {.lr = 0.1f, .momentum = 0.9f, .weight_decay = 5e-4f, .grad_scale = 0.5f},
        {.lr = 0.02f,
         .momentum = 0.9f,
         .weight_decay = 1e-4f,
         .grad_scale = 1.0f,
         .nesterov = 1,
         .first_step = 1},
        {.lr = 0.02f, .momentum = 0.8f, .weight_decay = 0.0f, .grad_scale = 0.125f, .nesterov = 1},
    };
    uint64_t state = 99u;
    double tmp[N];
    float params[N], grads[N], momentum[N];
    for (size_t v = 0; v < sizeof variants / sizeof *variants; v++) {
        const dt_sgd_params *p = &variants[v];
        test_random_fill(tmp, N, -1.0, 1.0, &state);
        test_to_float(params, tmp, N);
        test_random_fill(tmp, N, -3.0, 3.0, &state);
        test_to_float(grads, tmp, N);
        test_random_fill(tmp, N, -0.5, 0.5, &state);
        test_to_float(momentum, tmp, N);
        float mine[N], mine_momentum[N];
        memcpy(mine, params, sizeof mine);
        memcpy(mine_momentum, momentum, sizeof mine_momentum);
        for (int i = 0; i < N; i++)
            mine[i] = dt_sgd_element(mine[i], grads[i], &mine_momentum[i], p->momentum != 0.0f,
                                     p->lr, p->momentum, p->weight_decay, p->grad_scale,
                                     p->nesterov, p->first_step);
        dt_error err = {0};
        float *cpu_params = dt_backend_buffer_alloc(b, N, &err);
        float *cpu_grads = dt_backend_buffer_alloc(b, N, &err);
        float *cpu_momentum = dt_backend_buffer_alloc(b, N, &err);
        CHECK(cpu_params && cpu_grads && cpu_momentum);
        if (!cpu_params || !cpu_grads || !cpu_momentum) return;
        memcpy(cpu_params, params, sizeof params);
        memcpy(cpu_grads, grads, sizeof grads);
        memcpy(cpu_momentum, momentum, sizeof momentum);
        CHECK(dt_backend_sgd_step(b, p, cpu_params, cpu_grads,
                                  p->momentum != 0.0f ? cpu_momentum : NULL, N, &err) == 0);
        CHECK_MSG(memcmp(cpu_params, mine, sizeof mine) == 0,
                  "sgd variant %zu: parameters bit for bit as the CPU backend", v);
        if (p->momentum != 0.0f)
            CHECK_MSG(memcmp(cpu_momentum, mine_momentum, sizeof mine_momentum) == 0,
                      "sgd variant %zu: momentum buffer bit for bit as the CPU backend", v);
        dt_backend_buffer_free(b, cpu_params);
        dt_backend_buffer_free(b, cpu_grads);
        dt_backend_buffer_free(b, cpu_momentum);
    }
}

/* ---- batch normalisation ------------------------------------------------------------------- */

/* The kernels' computation on the host: per-channel sums in double over NCHW data, then the
 * header's formulas. */
static void check_batchnorm_case(dt_backend *b, dt_batchnorm_desc d, double offset) {
    dt_error err = {0};
    const int N = d.batch, C = d.channels, H = d.height, W = d.width;
    const size_t count = (size_t)N * C * H * W, plane = (size_t)H * W;
    uint64_t state = 31u + (uint64_t)C + (uint64_t)d.fuse_relu;
    double *x = test_doubles(count), *dy = test_doubles(count), *tmp = test_doubles(C);
    test_random_fill(x, count, offset - 2.0, offset + 3.0, &state);
    test_random_fill(dy, count, -1.0, 1.0, &state);
    float *gamma = test_floats(C), *beta = test_floats(C), *rmean = test_floats(C),
          *rvar = test_floats(C), *dgamma = test_floats(C), *dbeta = test_floats(C);
    test_random_fill(tmp, C, 0.5, 1.5, &state), test_to_float(gamma, tmp, C);
    test_random_fill(tmp, C, -0.5, 0.5, &state), test_to_float(beta, tmp, C);
    test_random_fill(tmp, C, -0.2, 0.2, &state), test_to_float(rmean, tmp, C);
    test_random_fill(tmp, C, 0.5, 2.0, &state), test_to_float(rvar, tmp, C);
    float *my_rmean = test_floats(C), *my_rvar = test_floats(C);
    memcpy(my_rmean, rmean, C * sizeof(float));
    memcpy(my_rvar, rvar, C * sizeof(float));

    dt_layer *layer = dt_backend_batchnorm_create(b, &d, &err);
    CHECK_MSG(layer != NULL, "batchnorm_create: %s", err.message);
    if (!layer) return;
    dt_tensor *tx = test_tensor(b, N, C, H, W, x), *ty = test_tensor(b, N, C, H, W, NULL);
    dt_tensor *tdy = test_tensor(b, N, C, H, W, dy), *tdx = test_tensor(b, N, C, H, W, NULL);
    CHECK(dt_backend_batchnorm_forward(b, layer, gamma, beta, rmean, rvar, 1, tx, ty, &err) == 0);
    CHECK(dt_backend_batchnorm_backward(b, layer, gamma, beta, tx, ty, tdy, tdx, dgamma, dbeta, 0,
                                        &err) == 0);
    double *cpu_y = test_doubles(count), *cpu_dx = test_doubles(count);
    test_tensor_read(b, ty, cpu_y, count);
    test_tensor_read(b, tdx, cpu_dx, count);

    double *my_y = test_doubles(count), *my_dx = test_doubles(count);
    double *my_dgamma = test_doubles(C), *my_dbeta = test_doubles(C);
    double *got_dgamma = test_doubles(C), *got_dbeta = test_doubles(C);
    double *got_rm = test_doubles(C), *got_rv = test_doubles(C), *my_rm = test_doubles(C),
           *my_rv = test_doubles(C);
    const double values = (double)N * plane;
    const float unbias = dt_bn_unbias(values);
    for (int c = 0; c < C; c++) {
        double sum = 0.0, squares = 0.0;
        for (int n = 0; n < N; n++)
            for (size_t p = 0; p < plane; p++) {
                double v = (float)x[((size_t)n * C + c) * plane + p];
                sum += v, squares += v * v;
            }
        float mean, var;
        dt_bn_finish_stats(sum, squares, values, &mean, &var);
        my_rmean[c] = dt_bn_running_mean(my_rmean[c], mean, d.momentum);
        my_rvar[c] = dt_bn_running_var(my_rvar[c], var, unbias, d.momentum);
        const float inv_std = dt_bn_inv_std(var, d.epsilon);
        double sum_g = 0.0, sum_g_xhat = 0.0;
        for (int n = 0; n < N; n++)
            for (size_t p = 0; p < plane; p++) {
                size_t i = ((size_t)n * C + c) * plane + p;
                float y = dt_bn_forward((float)x[i], mean, inv_std, gamma[c], beta[c], d.fuse_relu);
                my_y[i] = y;
                float g = dt_bn_masked_grad((float)dy[i], y, d.fuse_relu);
                sum_g += g;
                sum_g_xhat += (double)g * (((float)x[i] - mean) * inv_std);
            }
        my_dgamma[c] = (float)sum_g_xhat, my_dbeta[c] = (float)sum_g;
        for (int n = 0; n < N; n++)
            for (size_t p = 0; p < plane; p++) {
                size_t i = ((size_t)n * C + c) * plane + p;
                float g = dt_bn_masked_grad((float)dy[i], (float)my_y[i], d.fuse_relu);
                my_dx[i] = dt_bn_backward_dx(g, (float)x[i], mean, inv_std, gamma[c], (float)sum_g,
                                             (float)sum_g_xhat, (float)(1.0 / values));
            }
        got_rm[c] = rmean[c], got_rv[c] = rvar[c], my_rm[c] = my_rmean[c], my_rv[c] = my_rvar[c];
        got_dgamma[c] = dgamma[c], got_dbeta[c] = dbeta[c];
    }
    char what[160];
    snprintf(what, sizeof what, "bn %dx%dx%dx%d%s offset %g", N, C, H, W,
             d.fuse_relu ? " +relu" : "", offset);
    char label[220];
    snprintf(label, sizeof label, "%s: training forward", what);
    CHECK_ARRAY_CLOSE(label, my_y, cpu_y, count, 1e-5, 2e-6);
    snprintf(label, sizeof label, "%s: running mean", what);
    CHECK_ARRAY_CLOSE(label, my_rm, got_rm, C, 1e-6, 1e-7);
    snprintf(label, sizeof label, "%s: running var (unbiased)", what);
    CHECK_ARRAY_CLOSE(label, my_rv, got_rv, C, 1e-6, 1e-7);
    snprintf(label, sizeof label, "%s: dgamma", what);
    CHECK_ARRAY_CLOSE(label, my_dgamma, got_dgamma, C, 1e-4, 1e-5);
    snprintf(label, sizeof label, "%s: dbeta", what);
    CHECK_ARRAY_CLOSE(label, my_dbeta, got_dbeta, C, 1e-4, 1e-5);
    snprintf(label, sizeof label, "%s: dx", what);
    CHECK_ARRAY_CLOSE(label, my_dx, cpu_dx, count, 1e-3, 1e-5);

    /* inference with the running statistics */
    CHECK(dt_backend_batchnorm_forward(b, layer, gamma, beta, rmean, rvar, 0, tx, ty, &err) == 0);
    test_tensor_read(b, ty, cpu_y, count);
    for (int c = 0; c < C; c++) {
        const float inv_std = dt_bn_inv_std(rvar[c], d.epsilon);
        for (int n = 0; n < N; n++)
            for (size_t p = 0; p < plane; p++) {
                size_t i = ((size_t)n * C + c) * plane + p;
                my_y[i] =
                    dt_bn_forward((float)x[i], rmean[c], inv_std, gamma[c], beta[c], d.fuse_relu);
            }
    }
    snprintf(label, sizeof label, "%s: inference forward", what);
    CHECK_ARRAY_CLOSE(label, my_y, cpu_y, count, 1e-5, 2e-6);

    dt_backend_layer_destroy(b, layer);
    dt_backend_tensor_destroy(b, tx), dt_backend_tensor_destroy(b, ty);
    dt_backend_tensor_destroy(b, tdy), dt_backend_tensor_destroy(b, tdx);
    free(x), free(dy), free(tmp), free(gamma), free(beta), free(rmean), free(rvar), free(dgamma),
        free(dbeta), free(my_rmean), free(my_rvar), free(cpu_y), free(cpu_dx), free(my_y),
        free(my_dx), free(my_dgamma), free(my_dbeta), free(got_dgamma), free(got_dbeta),
        free(got_rm), free(got_rv), free(my_rm), free(my_rv);
}

static void check_batchnorm(dt_backend *b) {
    check_batchnorm_case(b, (dt_batchnorm_desc){4, 16, 5, 5, 0.1f, 1e-5f, 0}, 0.0);
    check_batchnorm_case(b, (dt_batchnorm_desc){4, 16, 5, 5, 0.1f, 1e-5f, 1}, 0.0);
    check_batchnorm_case(b, (dt_batchnorm_desc){3, 5, 4, 3, 0.1f, 1e-5f, 1}, 0.5);
    check_batchnorm_case(b, (dt_batchnorm_desc){2, 32, 3, 3, 0.1f, 1e-5f, 0}, 100.0);
    /* the unbiasing factor of 2 values per channel, and its rounding to float */
    CHECK(dt_bn_unbias(2.0) == 2.0f);
    CHECK(dt_bn_unbias(3.0) == 1.5f);
    float mean, var;
    dt_bn_finish_stats(6.0, 12.0, 3.0, &mean, &var); /* values 2, 2, 2 */
    CHECK(mean == 2.0f && var == 0.0f);
    dt_bn_finish_stats(3.0, 2.9999999999, 3.0, &mean, &var); /* rounding below 0 clamps */
    CHECK(var == 0.0f);
}

/* ---- softmax cross-entropy ------------------------------------------------------------------ */

static void check_softmax_cross_entropy(dt_backend *b) {
    enum { N = 6, K = 7 };
    dt_error err = {0};
    uint64_t state = 555u;
    double z[N * K];
    test_random_fill(z, N * K, -4.0, 4.0, &state);
    z[3 * K + 2] = z[3 * K + 5] = 9.0; /* a tie: the first wins */
    int32_t labels[N] = {0, 6, 3, -1, 2, 1};
    float weights[N] = {1, 1, 1, 0, 1, 1}; /* sample 3 is padding with a bad label */
    const float grad_scale = 0.25f;
    dt_tensor *logits = test_tensor(b, N, K, 1, 1, z), *dlogits = test_tensor(b, N, K, 1, 1, NULL);
    double cpu_stats[DT_LOSS_STATS];
    int32_t cpu_pred[N];
    CHECK(dt_backend_loss_stats_read(b, cpu_stats, 1, &err) == 0);
    CHECK(dt_backend_softmax_cross_entropy(b, logits, labels, weights, dlogits, grad_scale,
                                           cpu_pred, &err) == 0);
    CHECK(dt_backend_loss_stats_read(b, cpu_stats, 1, &err) == 0);
    const double cpu_loss = cpu_stats[DT_LOSS_SUM];
    double cpu_grad[N * K];
    test_tensor_read(b, dlogits, cpu_grad, N * K);

    float zf[N * K], grad[N * K];
    test_to_float(zf, z, N * K);
    double total = 0.0, stats[4] = {0};
    int pred_wrong = 0, grad_wrong = 0;
    for (int i = 0; i < N; i++) {
        double loss, s[4];
        dt_ce_target t = {labels[i], labels[i], 1.0, 0.0};
        int pred = dt_ce_row_f32(zf + i * K, K, &t, weights[i], grad_scale, grad + i * K, &loss);
        pred_wrong += pred != cpu_pred[i];
        total += weights[i] * loss;
        dt_ce_stats(loss, pred, labels[i], weights[i], s);
        for (int j = 0; j < 4; j++) stats[j] += s[j];
        for (int j = 0; j < K; j++) grad_wrong += (double)grad[i * K + j] != cpu_grad[i * K + j];
    }
    CHECK_INT_EQ(pred_wrong, 0);
    CHECK_INT_EQ(cpu_pred[3], 2);
    CHECK_INT_EQ(grad_wrong, 0);
    CHECK_CLOSE(total, cpu_loss, 1e-12, 0.0);
    CHECK_CLOSE(stats[0], cpu_loss, 1e-12, 0.0);
    CHECK(stats[2] == 5.0 && stats[3] == 0.0);
    int correct = 0;
    for (int i = 0; i < N; i++) correct += weights[i] != 0.0f && cpu_pred[i] == labels[i];
    CHECK(stats[1] == correct);
    /* the CPU backend's statistics are the same sums */
    CHECK(cpu_stats[DT_LOSS_CORRECT] == stats[1] && cpu_stats[DT_LOSS_COUNT] == stats[2] &&
          cpu_stats[DT_LOSS_NONFINITE] == stats[3]);

    /* a non-finite logit makes a non-finite loss, counted; padding rows never count */
    float bad[3] = {1.0f, INFINITY, 0.0f};
    double loss, s[4];
    dt_ce_target t0 = {0, 0, 1.0, 0.0}, t_bad = {-7, -7, 1.0, 0.0};
    int pred = dt_ce_row_f32(bad, 3, &t0, 1.0f, 1.0f, NULL, &loss);
    dt_ce_stats(loss, pred, 0, 1.0f, s);
    CHECK(pred == 1 && s[3] == 1.0 && s[2] == 1.0);
    pred = dt_ce_row_f32(bad, 3, &t_bad, 0.0f, 1.0f, NULL, &loss);
    dt_ce_stats(loss, pred, -7, 0.0f, s);
    CHECK(s[0] == 0.0 && s[1] == 0.0 && s[2] == 0.0 && s[3] == 0.0);

    /* the bf16 row is the float row of the bf16-rounded logits, gradient rounded to bf16 */
    uint16_t zb[K], gb[K];
    float zr[K], gr[K];
    for (int j = 0; j < K; j++) zb[j] = dt_float_to_bf16(zf[j]), zr[j] = dt_bf16_to_float(zb[j]);
    double loss_b, loss_r;
    int pb = dt_ce_row_bf16(zb, K, &t0, 1.0f, 0.5f, gb, &loss_b);
    int pr = dt_ce_row_f32(zr, K, &t0, 1.0f, 0.5f, gr, &loss_r);
    int bf16_wrong = pb != pr || loss_b != loss_r;
    for (int j = 0; j < K; j++) bf16_wrong += gb[j] != dt_float_to_bf16(gr[j]);
    CHECK_INT_EQ(bf16_wrong, 0);
    dt_backend_tensor_destroy(b, logits);
    dt_backend_tensor_destroy(b, dlogits);
}

/* ---- input normalisation ----------------------------------------------------------------------
 */

static void check_normalize(dt_backend *b) {
    enum { N = 2, H = 4, W = 32 }; /* 2 x 128 pixels x 3 channels: every byte value per channel */
    static const float means[][3] = {
        {0.485f, 0.456f, 0.406f}, {0.5f, 0.5f, 0.5f}, {0.0f, 0.1f, 0.9f}};
    static const float stds[][3] = {
        {0.229f, 0.224f, 0.225f}, {0.5f, 0.5f, 0.5f}, {1.0f, 0.3f, 2.0f}};
    uint8_t pixels[N * H * W * 3];
    for (int i = 0; i < N * H * W; i++)
        for (int c = 0; c < 3; c++) pixels[i * 3 + c] = (uint8_t)((i * (2 * c + 1) + 7 * c) % 256);
    dt_tensor *t = test_tensor(b, N, 3, H, W, NULL);
    for (size_t s = 0; s < sizeof means / sizeof *means; s++) {
        dt_error err = {0};
        CHECK(dt_backend_tensor_from_images(b, t, pixels, means[s], stds[s], &err) == 0);
        float got[N * 3 * H * W];
        CHECK(dt_backend_tensor_download(b, t, got, &err) == 0);
        int wrong = 0;
        for (int n = 0; n < N; n++)
            for (int c = 0; c < 3; c++)
                for (int h = 0; h < H; h++)
                    for (int w = 0; w < W; w++) {
                        uint8_t p = pixels[dt_nhwc_index(n, c, h, w, 3, H, W)];
                        float mine = dt_normalize_u8(p, means[s][c], stds[s][c]);
                        float cpu = got[dt_nchw_index(n, c, h, w, 3, H, W)];
                        wrong += memcmp(&mine, &cpu, sizeof mine) != 0;
                    }
        CHECK_MSG(wrong == 0, "normalisation set %zu: %d values differ from the CPU backend", s,
                  wrong);
    }
    dt_backend_tensor_destroy(b, t);
}

/* ---- pooling ------------------------------------------------------------------------------- */

static void check_pool_covering(void) {
    int wrong = 0;
    for (int kernel = 1; kernel <= 4; kernel++)
        for (int stride = 1; stride <= 3; stride++)
            for (int padding = 0; 2 * padding <= kernel; padding++)
                for (int in = kernel; in <= 12; in++) {
                    int out = (in + 2 * padding - kernel) / stride + 1;
                    for (int i = 0; i < in; i++) {
                        int lo, hi;
                        dt_pool_covering(i, kernel, stride, padding, out, &lo, &hi);
                        for (int o = 0; o < out; o++) {
                            int start = o * stride - padding;
                            int covers = i >= start && i < start + kernel;
                            wrong += covers != (o >= lo && o <= hi);
                        }
                    }
                }
    CHECK_INT_EQ(wrong, 0);
}

static void check_maxpool_rules(void) {
    /* one 3x3 plane, kernel 3, stride 2, padding 1; pixel stride 1 */
    float tie[9] = {1, 5, 5, 0, 5, 2, 3, 4, 1};
    CHECK_INT_EQ(dt_maxpool_argmax_f32(tie, 1, 3, 3, 0, 0, 3, 2, 1), 1); /* first max wins */
    float with_nan[9] = {1, NAN, 9, 0, 2, 2, 3, 4, 1};
    CHECK_INT_EQ(dt_maxpool_argmax_f32(with_nan, 1, 3, 3, 0, 0, 3, 2, 1), 1); /* NaN wins */
    float negative[9] = {-5, -4, -3, -2, -1, -6, -7, -8, -9};
    CHECK_INT_EQ(dt_maxpool_argmax_f32(negative, 1, 3, 3, 0, 0, 3, 2, 1), 4); /* pad is -inf */
    CHECK_INT_EQ(dt_maxpool_argmax_f32(negative, 1, 3, 3, 1, 1, 3, 2, 1), 4);
    float all_inf[9];
    for (int i = 0; i < 9; i++) all_inf[i] = -INFINITY;
    CHECK_INT_EQ(dt_maxpool_argmax_f32(all_inf, 1, 3, 3, 1, 1, 3, 2, 1), 4); /* first input */
    uint16_t tie_b[9];
    for (int i = 0; i < 9; i++) tie_b[i] = dt_float_to_bf16(tie[i]);
    CHECK_INT_EQ(dt_maxpool_argmax_bf16(tie_b, 1, 3, 3, 0, 0, 3, 2, 1), 1);
}

/* The CPU backend's max pool against the kernels' NHWC argmax forward and gather backward. */
static void check_maxpool_case(dt_backend *b, dt_pool_desc d) {
    dt_error err = {0};
    const int N = d.batch, C = d.channels, H = d.in_height, W = d.in_width;
    const int OH = (H + 2 * d.padding - d.kernel) / d.stride + 1;
    const int OW = (W + 2 * d.padding - d.kernel) / d.stride + 1;
    const size_t in_count = (size_t)N * C * H * W, out_count = (size_t)N * C * OH * OW;
    uint64_t state = 2024u + (uint64_t)C;
    double *x = test_doubles(in_count), *dy = test_doubles(out_count);
    test_random_fill(x, in_count, -3.0, -1.0, &state); /* all negative: padding must lose */
    test_random_fill(dy, out_count, -1.0, 1.0, &state);
    dt_layer *layer = dt_backend_maxpool_create(b, &d, &err);
    CHECK_MSG(layer != NULL, "maxpool_create: %s", err.message);
    if (!layer) return;
    dt_tensor *tx = test_tensor(b, N, C, H, W, x), *ty = test_tensor(b, N, C, OH, OW, NULL);
    dt_tensor *tdy = test_tensor(b, N, C, OH, OW, dy), *tdx = test_tensor(b, N, C, H, W, NULL);
    CHECK(dt_backend_maxpool_forward(b, layer, tx, ty, &err) == 0);
    CHECK(dt_backend_maxpool_backward(b, layer, tdy, tdx, &err) == 0);
    double *cpu_y = test_doubles(out_count), *cpu_dx = test_doubles(in_count);
    test_tensor_read(b, ty, cpu_y, out_count);
    test_tensor_read(b, tdx, cpu_dx, in_count);

    float *nhwc = test_floats(in_count), *dy_nhwc = test_floats(out_count);
    for (int n = 0; n < N; n++)
        for (int c = 0; c < C; c++) {
            for (int h = 0; h < H; h++)
                for (int w = 0; w < W; w++)
                    nhwc[dt_nhwc_index(n, c, h, w, C, H, W)] =
                        (float)x[dt_nchw_index(n, c, h, w, C, H, W)];
            for (int h = 0; h < OH; h++)
                for (int w = 0; w < OW; w++)
                    dy_nhwc[dt_nhwc_index(n, c, h, w, C, OH, OW)] =
                        (float)dy[dt_nchw_index(n, c, h, w, C, OH, OW)];
        }
    int *argmax = calloc(out_count, sizeof *argmax);
    double *my_y = test_doubles(out_count), *my_dx = test_doubles(in_count);
    for (int n = 0; n < N; n++)
        for (int c = 0; c < C; c++)
            for (int oh = 0; oh < OH; oh++)
                for (int ow = 0; ow < OW; ow++) {
                    const float *plane = nhwc + dt_nhwc_index(n, c, 0, 0, C, H, W);
                    int best = dt_maxpool_argmax_f32(plane, (size_t)C, H, W, oh, ow, d.kernel,
                                                     d.stride, d.padding);
                    size_t o = dt_nhwc_index(n, c, oh, ow, C, OH, OW);
                    argmax[o] = best;
                    my_y[dt_nchw_index(n, c, oh, ow, C, OH, OW)] = plane[(size_t)best * C];
                }
    /* gather: each input sums the outputs that chose it */
    for (int n = 0; n < N; n++)
        for (int c = 0; c < C; c++)
            for (int h = 0; h < H; h++)
                for (int w = 0; w < W; w++) {
                    int h_lo, h_hi, w_lo, w_hi;
                    dt_pool_covering(h, d.kernel, d.stride, d.padding, OH, &h_lo, &h_hi);
                    dt_pool_covering(w, d.kernel, d.stride, d.padding, OW, &w_lo, &w_hi);
                    float sum = 0.0f;
                    for (int oh = h_lo; oh <= h_hi; oh++)
                        for (int ow = w_lo; ow <= w_hi; ow++) {
                            size_t o = dt_nhwc_index(n, c, oh, ow, C, OH, OW);
                            if (argmax[o] == h * W + w) sum += dy_nhwc[o];
                        }
                    my_dx[dt_nchw_index(n, c, h, w, C, H, W)] = sum;
                }
    char what[120];
    snprintf(what, sizeof what, "maxpool %dx%dx%dx%d k%d s%d p%d forward", N, C, H, W, d.kernel,
             d.stride, d.padding);
    CHECK_ARRAY_CLOSE(what, my_y, cpu_y, out_count, 0.0, 0.0);
    snprintf(what, sizeof what, "maxpool %dx%dx%dx%d k%d s%d p%d backward", N, C, H, W, d.kernel,
             d.stride, d.padding);
    CHECK_ARRAY_CLOSE(what, my_dx, cpu_dx, in_count, 1e-6, 1e-7);
    dt_backend_layer_destroy(b, layer);
    dt_backend_tensor_destroy(b, tx), dt_backend_tensor_destroy(b, ty);
    dt_backend_tensor_destroy(b, tdy), dt_backend_tensor_destroy(b, tdx);
    free(x), free(dy), free(cpu_y), free(cpu_dx), free(nhwc), free(dy_nhwc), free(argmax),
        free(my_y), free(my_dx);
}

/* ---- element-wise ------------------------------------------------------------------------- */

static void check_eltwise(dt_backend *b) {
    enum { N = 64 };
    dt_error err = {0};
    uint64_t state = 4u;
    double a[N], c[N];
    test_random_fill(a, N, -2.0, 2.0, &state);
    test_random_fill(c, N, -2.0, 2.0, &state);
    a[0] = NAN, a[1] = INFINITY, c[1] = -1.0, a[2] = -INFINITY, a[3] = 0.0, c[3] = 0.0;
    dt_tensor *ty = test_tensor(b, 1, N, 1, 1, a), *tx = test_tensor(b, 1, N, 1, 1, c);
    CHECK(dt_backend_add_relu_forward(b, ty, tx, &err) == 0);
    float got[N];
    CHECK(dt_backend_tensor_download(b, ty, got, &err) == 0);
    int wrong = 0;
    for (int i = 0; i < N; i++) {
        float mine = dt_add_relu((float)a[i], (float)c[i]);
        wrong += memcmp(&mine, &got[i], sizeof mine) != 0;
    }
    CHECK_INT_EQ(wrong, 0);
    /* relu backward through the output just computed, dy = c */
    dt_tensor *tdy = test_tensor(b, 1, N, 1, 1, c), *tdx = test_tensor(b, 1, N, 1, 1, NULL);
    CHECK(dt_backend_relu_backward(b, ty, tdy, tdx, &err) == 0);
    float dx[N];
    CHECK(dt_backend_tensor_download(b, tdx, dx, &err) == 0);
    wrong = 0;
    for (int i = 0; i < N; i++) {
        float mine = dt_relu_grad(got[i], (float)c[i]);
        wrong += memcmp(&mine, &dx[i], sizeof mine) != 0;
    }
    CHECK_INT_EQ(wrong, 0);
    dt_backend_tensor_destroy(b, ty), dt_backend_tensor_destroy(b, tx);
    dt_backend_tensor_destroy(b, tdy), dt_backend_tensor_destroy(b, tdx);
}

/* ---- index maps ---------------------------------------------------------------------------- */

static void check_index_maps(void) {
    enum { K = 3, C = 5, R = 3, S = 2 };
    int seen[K * C * R * S] = {0}, stride_wrong = 0;
    for (int o = 0; o < K; o++)
        for (int i = 0; i < C; i++)
            for (int r = 0; r < R; r++)
                for (int s = 0; s < S; s++) {
                    size_t krsc = dt_krsc_index(o, i, r, s, C, R, S);
                    seen[krsc]++;
                    /* cuDNN's KRSC strides: K: R*S*C, C: 1, R: S*C, S: C */
                    stride_wrong +=
                        krsc != (size_t)o * R * S * C + i + (size_t)r * S * C + (size_t)s * C;
                    stride_wrong += dt_oihw_index(o, i, r, s, C, R, S) !=
                                    (size_t)o * C * R * S + (size_t)i * R * S + (size_t)r * S + s;
                }
    int not_once = 0;
    for (int j = 0; j < K * C * R * S; j++) not_once += seen[j] != 1;
    CHECK_INT_EQ(not_once, 0);
    CHECK_INT_EQ(stride_wrong, 0);
    /* the coordinate decoders invert the index maps over a whole odd-sized tensor */
    enum { TN = 2, TC = 5, TH = 3, TW = 7 };
    int decode_wrong = 0;
    for (size_t i = 0; i < (size_t)TN * TC * TH * TW; i++) {
        int n, c, h, w;
        dt_nhwc_coords(i, TC, TH, TW, &n, &c, &h, &w);
        decode_wrong += dt_nhwc_index(n, c, h, w, TC, TH, TW) != i || n >= TN;
        dt_nchw_coords(i, TC, TH, TW, &n, &c, &h, &w);
        decode_wrong += dt_nchw_index(n, c, h, w, TC, TH, TW) != i || n >= TN;
        /* KRSC decodes as NHWC over (K, R, S, C), OIHW as NCHW over (O, I, H, W) */
        dt_nhwc_coords(i, TC, TH, TW, &n, &c, &h, &w);
        decode_wrong += dt_krsc_index(n, c, h, w, TC, TH, TW) != i;
        dt_nchw_coords(i, TC, TH, TW, &n, &c, &h, &w);
        decode_wrong += dt_oihw_index(n, c, h, w, TC, TH, TW) != i;
    }
    CHECK_INT_EQ(decode_wrong, 0);
    CHECK(dt_nhwc_index(1, 2, 3, 4, 5, 6, 7) == (((size_t)1 * 6 + 3) * 7 + 4) * 5 + 2);
    CHECK(dt_nchw_index(1, 2, 3, 4, 5, 6, 7) == (((size_t)1 * 5 + 2) * 6 + 3) * 7 + 4);
}

/* Mixed and label-smoothed targets: the device row gives the CPU backend's loss sum, gradient
 * (bit for bit), predictions and statistics, the accuracy counting the label of larger weight. */
static void check_softmax_cross_entropy_targets(dt_backend *b) {
    enum { N = 6, K = 5 };
    dt_error err = {0};
    uint64_t state = 777u;
    double z[N * K];
    test_random_fill(z, N * K, -3.0, 3.0, &state);
    int32_t labels[N] = {0, 4, 3, -1, 2, 1}, second[N] = {2, 4, 0, 9, 1, 3};
    float weights[N] = {1, 1, 1, 0, 1, 1};
    const float lambdas[3] = {0.3f, 0.5f, 1.0f};
    dt_tensor *logits = test_tensor(b, N, K, 1, 1, z), *dlogits = test_tensor(b, N, K, 1, 1, NULL);
    float zf[N * K];
    test_to_float(zf, z, N * K);
    for (int c = 0; c < 3; c++) {
        dt_loss_targets targets = {.labels = labels,
                                   .weights = weights,
                                   .mix_labels = second,
                                   .mix_lambda = lambdas[c],
                                   .label_smoothing = 0.1f * (float)c};
        double cpu_stats[DT_LOSS_STATS], cpu_grad[N * K];
        int32_t cpu_pred[N];
        CHECK(dt_backend_loss_stats_read(b, cpu_stats, 1, &err) == 0);
        CHECK_MSG(dt_backend_softmax_cross_entropy_targets(b, logits, &targets, dlogits, 0.5f,
                                                           cpu_pred, &err) == 0,
                  "%s", err.message);
        CHECK(dt_backend_loss_stats_read(b, cpu_stats, 1, &err) == 0);
        test_tensor_read(b, dlogits, cpu_grad, N * K);
        double stats[4] = {0};
        float grad[N * K];
        int wrong = 0;
        for (int i = 0; i < N; i++) {
            dt_ce_target t = {labels[i], second[i], (double)targets.mix_lambda,
                              (double)targets.label_smoothing};
            double loss, s[4];
            int pred = dt_ce_row_f32(zf + i * K, K, &t, weights[i], 0.5f, grad + i * K, &loss);
            wrong += pred != cpu_pred[i];
            dt_ce_stats(loss, pred, dt_ce_hard_label(&t), weights[i], s);
            for (int j = 0; j < 4; j++) stats[j] += s[j];
            for (int j = 0; j < K; j++) wrong += (double)grad[i * K + j] != cpu_grad[i * K + j];
        }
        CHECK_INT_EQ(wrong, 0);
        for (int j = 0; j < 4; j++) CHECK_CLOSE(stats[j], cpu_stats[j], 1e-12, 0.0);
    }
    /* lambda 0.5 counts the first label, below it the second */
    dt_ce_target half = {1, 2, 0.5, 0.0}, below = {1, 2, 0.49, 0.0};
    CHECK(dt_ce_hard_label(&half) == 1 && dt_ce_hard_label(&below) == 2);
    dt_backend_tensor_destroy(b, logits);
    dt_backend_tensor_destroy(b, dlogits);
}

int main(void) {
    dt_backend b = test_backend_open(0, NULL); /* the CPU backend: the reference */
    check_bf16();
    check_sgd(&b);
    check_batchnorm(&b);
    check_softmax_cross_entropy(&b);
    check_softmax_cross_entropy_targets(&b);
    check_normalize(&b);
    check_pool_covering();
    check_maxpool_rules();
    check_maxpool_case(&b, (dt_pool_desc){.batch = 2,
                                          .channels = 16,
                                          .in_height = 9,
                                          .in_width = 9,
                                          .kernel = 3,
                                          .stride = 2,
                                          .padding = 1});
    check_maxpool_case(&b, (dt_pool_desc){.batch = 1,
                                          .channels = 3,
                                          .in_height = 8,
                                          .in_width = 7,
                                          .kernel = 3,
                                          .stride = 2,
                                          .padding = 1});
    check_maxpool_case(&b, (dt_pool_desc){.batch = 1,
                                          .channels = 16,
                                          .in_height = 6,
                                          .in_width = 6,
                                          .kernel = 2,
                                          .stride = 2,
                                          .padding = 0});
    check_eltwise(&b);
    check_index_maps();
    dt_backend_free(&b);
    return dt_test_summary("cuda_math");
}
