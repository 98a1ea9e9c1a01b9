/* ResNet model tests on a backend (the program's argument, as the backend tests: cpu by
 * default; testlib/backends.h): torchvision's state-dict layout and parameter count for each
 * depth, zero_init_residual, the whole network's gradient against finite differences, gradient
 * accumulation, the grads-ready spans of the last micro-batch, the frozen backbone, and the
 * step's bookkeeping through the model. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../src/backend/backend_impl.h" /* the recording backend wraps a table */
#include "backends.h"
#include "check.h"
#include "dtrain/backend.h"
#include "dtrain/model.h"
#include "dtrain/rng.h"

static int test_argc;
static char **test_argv;
static const float mean[3] = {0.5f, 0.5f, 0.5f}, stdev[3] = {0.25f, 0.25f, 0.25f};

static void test_layout(void) {
    dt_backend be;
    dt_error err = {{0}, 0};
    be = dt_test_backend_open(test_argc, test_argv, 0);
    dt_model *m = NULL;
    dt_model_options opt = {.batch = 2, .image_size = 32, .n_classes = 10};
    CHECK_MSG(dt_model_create(&be, &opt, &m, &err) == 0, "%s", err.message);
    if (!m) return;
    size_t n;
    const dt_state_entry *e = dt_model_state(m, &n);
    /* torchvision resnet18(num_classes=10): 122 state-dict entries, 11,181,642 parameters */
    CHECK_INT_EQ(n, 122);
    CHECK_INT_EQ(dt_model_param_count(m), 11181642);
    CHECK_STR_EQ(e[0].name, "conv1.weight");
    CHECK_STR_EQ(e[5].name, "bn1.num_batches_tracked");
    CHECK_STR_EQ(e[6].name, "layer1.0.conv1.weight");
    CHECK_STR_EQ(e[n - 1].name, "fc.bias");
    const dt_state_entry *ds = dt_model_find(m, "layer3.0.downsample.0.weight");
    CHECK(ds != NULL);
    if (ds) {
        CHECK_INT_EQ(ds->shape[0], 256);
        CHECK_INT_EQ(ds->shape[1], 128);
        CHECK_INT_EQ(ds->shape[2], 1);
    }
    CHECK(dt_model_find(m, "layer1.0.downsample.0.weight") == NULL);
    const dt_state_entry *fc = dt_model_find(m, "fc.weight");
    CHECK(fc && fc->shape[0] == 10 && fc->shape[1] == 512 && fc->in_classifier);
    dt_model_destroy(m);
    dt_backend_free(&be);
}

/* The step's bookkeeping through the model (nn/model_step.c), as the trainer uses it: the loss
 * statistics of a forward and loss, the phase timers, the input prefetch, a gradient span set
 * (and one outside the buffer refused), and the non-finite guard skipping a NaN step. */
static void test_step_bookkeeping(void) {
    dt_error err = {{0}, 0};
    dt_backend be = dt_test_backend_open(test_argc, test_argv, 0);
    dt_model *m = NULL;
    dt_model_options opt = {.batch = 2, .image_size = 32, .n_classes = 10};
    CHECK_MSG(dt_model_create(&be, &opt, &m, &err) == 0, "%s", err.message);
    if (!m) return;
    CHECK(dt_model_init_weights(m, 1, &err) == 0);
    size_t pixels_n = 2 * 32 * 32 * 3;
    uint8_t *pixels = dt_backend_host_alloc(&be, pixels_n, &err);
    CHECK_MSG(pixels != NULL, "%s", err.message);
    if (!pixels) return;
    for (size_t i = 0; i < pixels_n; i++) pixels[i] = (uint8_t)(i * 7);
    int32_t labels[2] = {3, 4};
    float weights[2] = {1.0f, 1.0f};
    double stats[DT_LOSS_STATS], phases[DT_PHASE_COUNT] = {0};
    CHECK(dt_model_loss_stats_read(m, stats, 1, &err) == 0);
    CHECK(dt_model_phase_mark(m, DT_PHASE_COMPUTE, &err) == 0);
    CHECK(dt_model_input_prefetch(m, pixels, pixels_n, &err) == 0);
    CHECK_MSG(dt_model_forward(m, pixels, mean, stdev, 1, &err) == 0 &&
                  dt_model_loss(m, labels, weights, 0.5f, NULL, &err) == 0,
              "%s", err.message);
    CHECK(dt_model_input_wait(m, &err) == 0);
    CHECK(dt_model_loss_stats_read(m, stats, 1, &err) == 0);
    CHECK(stats[DT_LOSS_COUNT] == 2.0 && isfinite(stats[DT_LOSS_SUM]) && stats[DT_LOSS_SUM] > 0);
    CHECK(dt_model_loss_stats_read(m, stats, 1, &err) == 0 && stats[DT_LOSS_COUNT] == 0.0);
    CHECK(dt_model_phase_read(m, phases, 1, &err) == 0);
    CHECK(phases[DT_PHASE_COMPUTE] >= 0.0 && phases[DT_PHASE_ALLREDUCE] == 0.0);

    size_t n = dt_model_param_count(m);
    float *grads = dt_model_grads(m), back[3];
    CHECK(dt_model_grads_fill(m, 0, n, 0.0f, &err) == 0);
    CHECK(dt_model_grads_fill(m, n - 3, 2, 7.0f, &err) == 0);
    CHECK(dt_backend_buffer_download(&be, back, grads + n - 3, 3, &err) == 0);
    CHECK(back[0] == 7.0f && back[1] == 7.0f && back[2] == 0.0f);
    CHECK(dt_model_grads_fill(m, n - 1, 2, 7.0f, &err) == -1);
    CHECK(strstr(err.message, "outside") != NULL);

    dt_guard_state state = {.halted_step = -1};
    CHECK(dt_model_guard_reset(m, &state, 10, &err) == 0);
    CHECK(dt_model_grads_fill(m, 5, 1, NAN, &err) == 0);
    CHECK(dt_model_guard_check(m, grads, n, 0, &err) == 0);
    dt_guard_state read = {0};
    CHECK(dt_model_guard_read(m, &read, &err) == 0);
    CHECK(read.skipped == 1 && read.in_row == 1 && read.halted_step == -1);
    CHECK(read.n_records == 1 && read.records[0].index == 5 && read.records[0].is_nan);
    dt_backend_host_free(&be, pixels);
    dt_model_destroy(m);
    dt_backend_free(&be);
}

/* Each depth against torchvision's resnetNN(num_classes=1000): parameters (sum of numel over
 * parameters()), state_dict() entries, running-statistics floats, Conv2d modules. */
static void test_depths(void) {
    static const struct {
        const char *arch;
        size_t params, entries, stats;
        int convs;
        const char *last_bn; /* the block's last BN, zeroed by zero_init_residual */
    } want[] = {{"resnet18", 11689512, 122, 9600, 20, "bn2"},
                {"resnet34", 21797672, 218, 17024, 36, "bn2"},
                {"resnet50", 25557032, 320, 53120, 53, "bn3"},
                {"resnet101", 44549160, 626, 105344, 104, "bn3"},
                {"resnet152", 60192808, 932, 151424, 155, "bn3"}};
    CHECK_INT_EQ(dt_model_arch_count(), 5);
    for (int a = 0; a < 5; a++) {
        CHECK_STR_EQ(dt_model_arch_name(a), want[a].arch);
        dt_model_options opt = {
            .arch = want[a].arch, .batch = 2, .image_size = 224, .n_classes = 1000};
        dt_model *m = NULL;
        dt_error err = {{0}, 0};
        CHECK_MSG(dt_model_describe(&opt, &m, &err) == 0, "%s: %s", want[a].arch, err.message);
        if (!m) continue;
        size_t n;
        const dt_state_entry *e = dt_model_state(m, &n);
        CHECK_INT_EQ(dt_model_param_count(m), want[a].params);
        CHECK_INT_EQ(n, want[a].entries);
        CHECK_INT_EQ(dt_model_stats_count(m), want[a].stats);
        CHECK_INT_EQ(dt_model_conv_descs(&opt, NULL, 0), want[a].convs);
        CHECK_STR_EQ(dt_model_arch(m), want[a].arch);
        /* the offsets tile both buffers in state-dict order */
        size_t next_param = 0, next_stat = 0, residual = 0;
        char suffix[16];
        snprintf(suffix, sizeof suffix, ".%s.weight", want[a].last_bn);
        for (size_t i = 0; i < n; i++) {
            if (e[i].role == DT_TENSOR_PARAMETER) {
                CHECK_INT_EQ(e[i].offset, next_param);
                next_param += e[i].count;
            } else if (e[i].role != DT_TENSOR_BATCHES_TRACKED) {
                CHECK_INT_EQ(e[i].offset, next_stat);
                next_stat += e[i].count;
            }
            if (e[i].residual_gamma) {
                residual++;
                size_t len = strlen(e[i].name);
                CHECK_MSG(len > strlen(suffix) &&
                              strcmp(e[i].name + len - strlen(suffix), suffix) == 0,
                          "%s: %s marked as a block's last BN", want[a].arch, e[i].name);
            }
        }
        int bottleneck = strcmp(want[a].last_bn, "bn3") == 0;
        /* convolutions: the stem, 2 or 3 per block, a downsample in each stage's first block */
        CHECK_INT_EQ(residual, (size_t)(want[a].convs - 4) / (bottleneck ? 3 : 2));
        const dt_state_entry *fc = dt_model_find(m, "fc.weight");
        CHECK(fc && fc->shape[0] == 1000 && fc->shape[1] == (bottleneck ? 2048 : 512));
        dt_model_destroy(m);
    }
    /* ResNet-50 (v1.5): layer2.0's stride is in its 3x3 conv, between 1x1s; layer1.0 has a
     * downsample (64 -> 256 channels at stride 1). Creation order: 0 the stem; layer1.0: 1..3
     * conv1-3, 4 downsample; layer1.1: 5..7; layer1.2: 8..10; layer2.0: 11..13, 14 downsample */
    dt_model_options opt = {.arch = "resnet50", .batch = 2, .image_size = 224, .n_classes = 10};
    dt_conv_desc convs[53];
    CHECK_INT_EQ(dt_model_conv_descs(&opt, convs, 53), 53);
    CHECK(convs[4].kernel == 1 && convs[4].in_channels == 64 && convs[4].out_channels == 256 &&
          convs[4].stride == 1);
    CHECK(convs[11].kernel == 1 && convs[11].stride == 1 && convs[11].in_channels == 256 &&
          convs[11].out_channels == 128 && convs[11].in_height == 56);
    CHECK(convs[12].kernel == 3 && convs[12].stride == 2 && convs[12].in_height == 56);
    CHECK(convs[13].kernel == 1 && convs[13].stride == 1 && convs[13].in_height == 28 &&
          convs[13].out_channels == 512);
    CHECK(convs[14].kernel == 1 && convs[14].stride == 2 && convs[14].in_channels == 256 &&
          convs[14].out_channels == 512);
    dt_model *m = NULL;
    dt_error err = {{0}, 0};
    opt.arch = "resnet51";
    CHECK(dt_model_describe(&opt, &m, &err) != 0 && m == NULL);
    CHECK(strstr(err.message, "resnet51") != NULL);
    CHECK_INT_EQ(dt_model_conv_descs(&opt, convs, 53), -1);
    CHECK(!dt_model_arch_known("resnet51") && dt_model_arch_known("resnet152"));
}

/* zero_init_residual: each block's last BN weight is 0 and every other BN weight 1, as
 * torchvision's ResNet(zero_init_residual=True); off, all are 1. */
static void test_zero_init_residual(void) {
    const char *archs[] = {"resnet18", "resnet50"};
    for (int a = 0; a < 2; a++)
        for (int zero = 0; zero < 2; zero++) {
            dt_backend be = dt_test_backend_open(test_argc, test_argv, 0);
            dt_model_options opt = {.arch = archs[a],
                                    .batch = 2,
                                    .image_size = 32,
                                    .n_classes = 10,
                                    .zero_init_residual = zero};
            dt_model *m = NULL;
            dt_error err = {{0}, 0};
            CHECK_MSG(dt_model_create(&be, &opt, &m, &err) == 0, "%s", err.message);
            size_t np = m ? dt_model_param_count(m) : 1, ns = m ? dt_model_stats_count(m) : 1, n;
            float *params = malloc(np * sizeof *params), *stats = malloc(ns * sizeof *stats);
            if (m && params && stats) {
                CHECK(dt_model_init_weights(m, 7, &err) == 0 &&
                      dt_model_download_state(m, params, stats, &err) == 0);
                const dt_state_entry *e = dt_model_state(m, &n);
                size_t zeroed = 0, wrong = 0;
                for (size_t i = 0; i < n; i++) {
                    size_t len = strlen(e[i].name);
                    int bn_weight = e[i].ndim == 1 && !e[i].in_classifier &&
                                    e[i].role == DT_TENSOR_PARAMETER && len > 7 &&
                                    strcmp(e[i].name + len - 7, ".weight") == 0;
                    if (!bn_weight) continue;
                    float expect = zero && e[i].residual_gamma ? 0.0f : 1.0f;
                    for (size_t k = 0; k < e[i].count; k++)
                        wrong += params[e[i].offset + k] != expect;
                    zeroed += expect == 0.0f;
                }
                CHECK_MSG(wrong == 0, "%s zero_init_residual %d: %zu BN weights wrong", archs[a],
                          zero, wrong);
                CHECK_INT_EQ(zeroed, zero ? (a == 0 ? 8u : 16u) : 0u);
            }
            free(params);
            free(stats);
            if (m) dt_model_destroy(m);
            be.ops->destroy(be.ctx);
        }
}

static double loss_of(dt_model *m, const uint8_t *px, const int32_t *labels, const float *w,
                      int32_t *pred, float grad_scale) {
    dt_error err = {{0}, 0};
    const dt_backend *be = dt_model_backend(m);
    double stats[DT_LOSS_STATS];
    if (dt_backend_loss_stats_read(be, stats, 1, &err) ||
        dt_model_forward(m, px, mean, stdev, 1, &err) ||
        dt_model_loss(m, labels, w, grad_scale, pred, &err) ||
        dt_backend_loss_stats_read(be, stats, 1, &err)) {
        fprintf(stderr, "forward failed: %s\n", err.message);
        return NAN;
    }
    return stats[DT_LOSS_SUM];
}

/* Directional derivative of the loss along a random direction over all parameters, by central
 * differences in double, against the analytic gradient from the backward pass. */
static void test_whole_network_gradient(void) {
    enum { B = 4, S = 32, K = 3 };
    dt_backend be;
    dt_error err = {{0}, 0};
    be = dt_test_backend_open(test_argc, test_argv, 0);
    dt_model *m = NULL;
    dt_model_options opt = {.batch = B, .image_size = S, .n_classes = K};
    CHECK_MSG(dt_model_create(&be, &opt, &m, &err) == 0, "%s", err.message);
    if (!m) return;
    CHECK(dt_model_init_weights(m, 7, &err) == 0);
    size_t n = dt_model_param_count(m);
    uint8_t px[B * S * S * 3];
    dt_rng rng = dt_rng_seeded(11);
    for (size_t i = 0; i < sizeof px; i++) px[i] = (uint8_t)dt_rng_below(&rng, 256);
    int32_t labels[B] = {0, 1, 2, 1}, pred[B];
    float w[B] = {1, 1, 1, 1};

    float *params = malloc(n * sizeof *params), *grads = malloc(n * sizeof *grads);
    float *dir = malloc(n * sizeof *dir), *base = malloc(n * sizeof *base);
    size_t ns = dt_model_stats_count(m);
    float *stats = malloc(ns * sizeof *stats);
    CHECK(dt_model_download_state(m, base, stats, &err) == 0);

    double loss0 = loss_of(m, px, labels, w, pred, 1.0f / B);
    CHECK(isfinite(loss0));
    CHECK(dt_model_backward(m, 0, 0, &err) == 0);
    CHECK(dt_model_param_buffer_download(m, grads, dt_model_grads(m), &err) == 0);

    /* Along the gradient itself (the largest signal for float32 forwards): the directional
     * derivative is |g|. BatchNorm over 4 samples makes the loss strongly curved, so the step
     * must be small (measured: the central difference is within 1% of |g| for steps 1e-5 to
     * 4e-5, and 20% off at 4e-4); the best of two steps must be within 2%. */
    double gnorm = 0;
    for (size_t i = 0; i < n; i++) gnorm += (double)grads[i] * grads[i];
    gnorm = sqrt(gnorm);
    double best = INFINITY;
    const double steps[2] = {4e-5, 1.4e-5};
    for (int k = 0; k < 2; k++) {
        double eps = steps[k];
        for (size_t i = 0; i < n; i++) params[i] = base[i] + (float)(eps * grads[i] / gnorm);
        CHECK(dt_model_upload_state(m, params, stats, &err) == 0);
        double plus = loss_of(m, px, labels, w, pred, 0.0f) / B;
        for (size_t i = 0; i < n; i++) params[i] = base[i] - (float)(eps * grads[i] / gnorm);
        CHECK(dt_model_upload_state(m, params, stats, &err) == 0);
        double minus = loss_of(m, px, labels, w, pred, 0.0f) / B;
        double rel = fabs((plus - minus) / (2 * eps) - gnorm) / gnorm;
        if (rel < best) best = rel;
    }
    CHECK_MSG(best < 0.02, "derivative along the gradient: central difference off by %.3g", best);

    /* A random direction over the classifier only (linear in fc: exact up to rounding). */
    const dt_state_entry *fc = dt_model_find(m, "fc.weight");
    size_t fc_begin = fc ? fc->offset : 0;
    double analytic = 0, dir_norm = 0;
    for (size_t i = 0; i < n; i++) dir[i] = 0;
    for (size_t i = fc_begin; i < n; i++) {
        dir[i] = (float)dt_rng_normal(&rng);
        dir_norm += (double)dir[i] * dir[i];
    }
    for (size_t i = fc_begin; i < n; i++) {
        dir[i] = (float)(dir[i] / sqrt(dir_norm));
        analytic += (double)dir[i] * grads[i];
    }
    double eps = 1e-2;
    for (size_t i = 0; i < n; i++) params[i] = base[i] + (float)(eps * dir[i]);
    CHECK(dt_model_upload_state(m, params, stats, &err) == 0);
    double plus = loss_of(m, px, labels, w, pred, 0.0f) / B;
    for (size_t i = 0; i < n; i++) params[i] = base[i] - (float)(eps * dir[i]);
    CHECK(dt_model_upload_state(m, params, stats, &err) == 0);
    double minus = loss_of(m, px, labels, w, pred, 0.0f) / B;
    CHECK_CLOSE((plus - minus) / (2 * eps), analytic, 1e-2, 1e-5);
    CHECK(dt_model_upload_state(m, base, stats, &err) == 0);

    /* accumulation: two backward passes on the same batch give twice the gradient */
    float *twice = malloc(n * sizeof *twice);
    loss_of(m, px, labels, w, pred, 1.0f / B);
    CHECK(dt_model_backward(m, 0, 0, &err) == 0);
    CHECK(dt_backend_buffer_download(&be, grads, dt_model_grads(m), n, &err) == 0);
    loss_of(m, px, labels, w, pred, 1.0f / B);
    CHECK(dt_model_backward(m, 1, 0, &err) == 0);
    CHECK(dt_backend_buffer_download(&be, twice, dt_model_grads(m), n, &err) == 0);
    double worst = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs(twice[i] - 2.0 * grads[i]) / (1e-6 + fabs(2.0 * grads[i]));
        if (isnan(d)) d = INFINITY; /* a NaN gradient is the worst case */
        if (d > worst && !(fabs(grads[i]) <= 1e-6)) worst = d;
    }
    CHECK_MSG(worst < 1e-3, "accumulated gradient differs from 2x by %.3g relative", worst);

    free(params);
    free(grads);
    free(dir);
    free(base);
    free(stats);
    free(twice);
    dt_model_destroy(m);
    dt_backend_free(&be);
}

/* Weights in the backend's own layouts (the default) against the same model with OIHW weights:
 * the CPU at fp32 keeps some convolutions in its own layouts (the raw buffer differs from OIHW
 * there), the OIHW host copies are byte-identical after the same initialisation, one training
 * step gives bit-identical gradients (the same kernels read the same formats), and host copies
 * go there and back unchanged. A backend with OIHW layers (CUDA) gets identifier 0 in both. */
static void test_own_weight_layouts(void) {
    enum { B = 4, S = 32, K = 3 };
    dt_backend be = dt_test_backend_open(test_argc, test_argv, 0);
    dt_error err = {{0}, 0};
    dt_model *own = NULL, *oihw = NULL;
    dt_model_options opt = {.batch = B, .image_size = S, .n_classes = K};
    CHECK_MSG(dt_model_create(&be, &opt, &own, &err) == 0, "%s", err.message);
    opt.oihw_weights = 1;
    CHECK_MSG(dt_model_create(&be, &opt, &oihw, &err) == 0, "%s", err.message);
    if (!own || !oihw) return;
    const int cpu = strcmp(dt_backend_name(&be), "cpu") == 0;
    CHECK_MSG((dt_model_weight_layout(own) != 0) == cpu, "own layouts on %s: identifier %llx",
              dt_backend_name(&be), (unsigned long long)dt_model_weight_layout(own));
    CHECK(dt_model_weight_layout(oihw) == 0);
    const size_t n = dt_model_param_count(own), ns = dt_model_stats_count(own);
    float *a = malloc(n * sizeof *a), *b = malloc(n * sizeof *b), *raw = malloc(n * sizeof *raw);
    float *sa = malloc(ns * sizeof *sa), *sb = malloc(ns * sizeof *sb);
    CHECK(dt_model_init_weights(own, 5, &err) == 0 && dt_model_init_weights(oihw, 5, &err) == 0);
    CHECK(dt_model_download_state(own, a, sa, &err) == 0);
    CHECK(dt_model_download_state(oihw, b, sb, &err) == 0);
    CHECK_MSG(memcmp(a, b, n * sizeof *a) == 0, "OIHW copies of the same initialisation differ");
    CHECK(dt_backend_buffer_download(&be, raw, dt_model_params(own), n, &err) == 0);
    CHECK_MSG((memcmp(raw, a, n * sizeof *a) != 0) == cpu,
              "raw parameter buffer %s the OIHW copy on %s", cpu ? "equals" : "differs from",
              dt_backend_name(&be));

    uint8_t px[B * S * S * 3];
    dt_rng rng = dt_rng_seeded(21);
    for (size_t i = 0; i < sizeof px; i++) px[i] = (uint8_t)dt_rng_below(&rng, 256);
    int32_t labels[B] = {0, 1, 2, 1}, pred[B];
    float w[B] = {1, 1, 1, 1};
    dt_model *models[2] = {own, oihw};
    float *grads[2] = {a, b};
    for (int k = 0; k < 2; k++) {
        CHECK(isfinite(loss_of(models[k], px, labels, w, pred, 1.0f / B)));
        CHECK(dt_model_backward(models[k], 0, 0, &err) == 0);
        CHECK(dt_model_param_buffer_download(models[k], grads[k], dt_model_grads(models[k]),
                                             &err) == 0);
    }
    size_t differ = 0;
    for (size_t i = 0; i < n; i++) differ += memcmp(&a[i], &b[i], sizeof *a) != 0;
    CHECK_MSG(differ == 0, "%zu of %zu gradients differ between own and OIHW layouts", differ, n);

    /* there and back: momentum-shaped random values, then the parameters */
    for (size_t i = 0; i < n; i++) a[i] = (float)dt_rng_normal(&rng);
    CHECK(dt_model_upload_momentum(own, a, &err) == 0);
    CHECK(dt_model_download_momentum(own, b, &err) == 0);
    CHECK_MSG(memcmp(a, b, n * sizeof *a) == 0, "momentum changed on the way there and back");
    CHECK(dt_model_upload_state(own, a, sa, &err) == 0);
    CHECK(dt_model_download_state(own, b, sb, &err) == 0);
    CHECK_MSG(memcmp(a, b, n * sizeof *a) == 0, "parameters changed on the way there and back");
    free(a), free(b), free(raw), free(sa), free(sb);
    dt_model_destroy(own);
    dt_model_destroy(oihw);
    dt_backend_free(&be);
}

/* freeze: backbone: only the classifier gets gradients; the rest of the buffer is untouched. */
static void test_frozen_backbone(void) {
    enum { B = 2, S = 32, K = 4 };
    dt_backend be;
    dt_error err = {{0}, 0};
    be = dt_test_backend_open(test_argc, test_argv, 0);
    dt_model *m = NULL;
    dt_model_options opt = {.batch = B, .image_size = S, .n_classes = K, .freeze_backbone = 1};
    CHECK_MSG(dt_model_create(&be, &opt, &m, &err) == 0, "%s", err.message);
    if (!m) return;
    CHECK(dt_model_init_weights(m, 3, &err) == 0);
    size_t offset, count, n = dt_model_param_count(m);
    dt_model_trainable_span(m, &offset, &count);
    CHECK_INT_EQ(count, (size_t)K * 512 + K);
    CHECK_INT_EQ(offset + count, n);
    uint8_t px[B * S * S * 3];
    memset(px, 100, sizeof px);
    px[5] = 250;
    int32_t labels[B] = {0, 3}, pred[B];
    float w[B] = {1, 1};
    CHECK(isfinite(loss_of(m, px, labels, w, pred, 0.5f)));
    CHECK(dt_model_backward(m, 0, 0, &err) == 0);
    float *grads = malloc(n * sizeof *grads);
    CHECK(dt_backend_buffer_download(&be, grads, dt_model_grads(m), n, &err) == 0);
    double backbone = 0, head = 0;
    for (size_t i = 0; i < offset; i++) backbone += fabs(grads[i]);
    for (size_t i = offset; i < n; i++) head += fabs(grads[i]);
    CHECK(backbone == 0.0);
    CHECK(head > 0.0);
    CHECK_INT_EQ(dt_model_batches_tracked(m), 0);
    free(grads);
    dt_model_destroy(m);
    dt_backend_free(&be);
}

static int failing_ready(void *user, size_t offset, size_t count, dt_error *err) {
    (void)user;
    return dt_fail(err, "bucket refused at %zu+%zu", offset, count);
}

/* The grads-ready spans of one backward, as the callback reports them. */
typedef struct ready_log {
    size_t offset[16], count[16];
    int n;
    double grads_sum_at_report; /* sum |g| over the span when it was reported */
    const dt_backend *be;
    dt_model *m;
} ready_log;

static int record_ready(void *user, size_t offset, size_t count, dt_error *err) {
    ready_log *log = user;
    if (log->n == 16) return dt_fail(err, "too many spans");
    log->offset[log->n] = offset;
    log->count[log->n] = count;
    log->n++;
    /* the span's gradients are final when reported: they are not all zero any more */
    float *host = malloc(count * sizeof *host);
    if (!host ||
        dt_backend_buffer_download(log->be, host, dt_model_grads(log->m) + offset, count, err)) {
        free(host);
        return -1;
    }
    for (size_t i = 0; i < count; i++) log->grads_sum_at_report += fabs(host[i]);
    free(host);
    return 0;
}

/* The spans reported after each layer group's backward: disjoint, descending, covering the
 * trainable span; none without report_ready; a failing callback fails the backward. */
static void check_grads_ready(int freeze) {
    enum { B = 2, S = 32, K = 3 };
    dt_backend be;
    dt_error err = {{0}, 0};
    be = dt_test_backend_open(test_argc, test_argv, 0);
    dt_model *m = NULL;
    dt_model_options opt = {.batch = B, .image_size = S, .n_classes = K, .freeze_backbone = freeze};
    CHECK_MSG(dt_model_create(&be, &opt, &m, &err) == 0, "%s", err.message);
    if (!m) return;
    CHECK(dt_model_init_weights(m, 5, &err) == 0);
    uint8_t px[B * S * S * 3];
    for (size_t i = 0; i < sizeof px; i++) px[i] = (uint8_t)(i * 37u);
    int32_t labels[B] = {0, 2}, pred[B];
    float w[B] = {1, 1};
    ready_log log = {.be = &be, .m = m};
    dt_model_set_grads_ready(m, record_ready, &log);
    CHECK(isfinite(loss_of(m, px, labels, w, pred, 0.5f)));
    CHECK(dt_model_backward(m, 0, 0, &err) == 0);
    CHECK_INT_EQ(log.n, 0);
    CHECK(dt_model_backward(m, 1, 1, &err) == 0);
    size_t offset, count;
    dt_model_trainable_span(m, &offset, &count);
    CHECK_INT_EQ(log.n, freeze ? 1 : 10); /* fc, 8 blocks, stem */
    size_t expect_end = offset + count;
    for (int i = 0; i < log.n; i++) {
        CHECK_INT_EQ(log.offset[i] + log.count[i], expect_end);
        CHECK(log.count[i] > 0);
        expect_end = log.offset[i];
    }
    CHECK_INT_EQ(expect_end, offset);
    CHECK(log.grads_sum_at_report > 0);
    const dt_state_entry *fc = dt_model_find(m, "fc.weight");
    CHECK(fc && log.offset[0] == fc->offset);
    const dt_state_entry *l41 = dt_model_find(m, "layer4.1.conv1.weight");
    if (!freeze) CHECK(l41 && log.offset[1] == l41->offset);

    /* a failing callback stops the backward with its message */
    dt_model_set_grads_ready(m, failing_ready, NULL);
    CHECK(isfinite(loss_of(m, px, labels, w, pred, 0.5f)));
    CHECK(dt_model_backward(m, 0, 1, &err) == -1);
    CHECK(strstr(err.message, "bucket refused") != NULL);
    dt_model_destroy(m);
    dt_backend_free(&be);
}

/* ---- the convolutions the model creates are the ones dt_model_conv_descs lists ---- */

static const dt_backend_ops *recorded_ops;
static dt_conv_desc recorded[160];
static int n_recorded;

static dt_layer *recording_conv_create(void *ctx, const dt_conv_desc *d, dt_error *err) {
    if (n_recorded < 160) recorded[n_recorded] = *d;
    n_recorded++;
    return recorded_ops->conv_create(ctx, d, err);
}

static void check_conv_list(const char *arch, int expect, int freeze) {
    enum { B = 2, S = 64, K = 3 };
    dt_backend be = dt_test_backend_open(test_argc, test_argv, 0);
    dt_backend_ops recording = *be.ops;
    recorded_ops = be.ops;
    recording.conv_create = recording_conv_create;
    dt_backend wrapped = {&recording, be.ctx};
    n_recorded = 0;
    dt_model *m = NULL;
    dt_error err = {{0}, 0};
    dt_model_options opt = {
        .arch = arch, .batch = B, .image_size = S, .n_classes = K, .freeze_backbone = freeze};
    CHECK_MSG(dt_model_create(&wrapped, &opt, &m, &err) == 0, "%s", err.message);
    dt_conv_desc listed[160];
    int n = dt_model_conv_descs(&opt, listed, 160);
    /* resnet18: the stem, 16 3x3 and 3 downsample convolutions */
    CHECK_INT_EQ(n, expect);
    CHECK_INT_EQ(n_recorded, n);
    for (int i = 0; i < n && i < n_recorded; i++)
        CHECK_MSG(memcmp(&listed[i], &recorded[i], sizeof listed[i]) == 0, "conv %d differs", i);
    /* only the stem skips dx; a frozen backbone skips backward everywhere */
    for (int i = 0; i < n; i++) {
        CHECK_INT_EQ(listed[i].no_input_grad, i == 0);
        CHECK_INT_EQ(listed[i].no_backward, freeze);
    }
    CHECK_INT_EQ(dt_model_conv_descs(&opt, listed, 1), n); /* counts past max */
    if (m) dt_model_destroy(m);
    dt_backend_free(&be);
}

/* Multiply-adds of the convolutions: with padding, torchvision's published figures for
 * ResNet-18 and ResNet-50 at 224 px (1.81 and 4.09 G, which also count the classifier's 0.5 and
 * 2 M); without, counted by hand for the small maps (per axis, 3x3 padding 1 over 2 positions
 * sees 2 + 2 taps, over 4 positions 2 + 3 + 3 + 2, at stride 2 over 4 positions 2 + 3), and for
 * the whole networks as summed tap by tap by an independent count. */
static void test_conv_macs(void) {
    const struct {
        const char *arch;
        int convs;
        double padded, inside;
    } nets[] = {{"resnet18", 20, 1813561344.0, 1679878912.0},
                {"resnet50", 53, 4087136256.0, 3946203904.0}};
    for (int a = 0; a < 2; a++) {
        dt_model_options opt = {
            .arch = nets[a].arch, .batch = 1, .image_size = 224, .n_classes = 10};
        dt_conv_desc convs[53];
        CHECK_INT_EQ(dt_model_conv_descs(&opt, convs, 53), nets[a].convs);
        double padded = 0, inside = 0;
        for (int i = 0; i < nets[a].convs; i++) {
            padded += dt_conv_desc_macs(&convs[i], 1);
            inside += dt_conv_desc_macs(&convs[i], 0);
        }
        CHECK_MSG(padded == nets[a].padded && inside == nets[a].inside,
                  "%s: %.0f and %.0f multiply-adds", nets[a].arch, padded, inside);
    }
    const struct {
        int size, stride, taps;
    } maps[] = {{2, 1, 4 * 4}, {4, 1, 10 * 10}, {4, 2, 5 * 5}, {1, 1, 1}};
    for (int i = 0; i < 4; i++) {
        dt_conv_desc d = {.batch = 3,
                          .in_channels = 5,
                          .out_channels = 7,
                          .in_height = maps[i].size,
                          .in_width = maps[i].size,
                          .kernel = 3,
                          .stride = maps[i].stride,
                          .padding = 1};
        const int out = (maps[i].size + 2 - 3) / maps[i].stride + 1;
        CHECK_MSG(dt_conv_desc_macs(&d, 0) == 3.0 * 5 * 7 * maps[i].taps &&
                      dt_conv_desc_macs(&d, 1) == 3.0 * 5 * 7 * out * out * 9,
                  "%dx%d stride %d: %.0f and %.0f", maps[i].size, maps[i].size, maps[i].stride,
                  dt_conv_desc_macs(&d, 0), dt_conv_desc_macs(&d, 1));
    }
}

int main(int argc, char **argv) {
    test_argc = argc;
    test_argv = argv;
    check_grads_ready(0);
    check_grads_ready(1);
    test_layout();
    test_step_bookkeeping();
    test_whole_network_gradient();
    test_frozen_backbone();
    test_own_weight_layouts();
    test_depths();
    test_zero_init_residual();
    test_conv_macs();
    check_conv_list("resnet18", 20, 0);
    check_conv_list("resnet18", 20, 1);
    check_conv_list("resnet50", 53, 0);
    check_conv_list("resnet152", 155, 1);
    return dt_test_summary("model");
}
