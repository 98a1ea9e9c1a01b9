/* Backend convolution (every backend compiled in): forward against a double-precision direct
 * convolution, backward (input and weight gradients) against central finite differences of that
 * reference, for the shapes of ResNet-18 (7x7 s2 p3 from RGB, 3x3 s1/s2, 1x1 s2) in both activation
 * layouts, plus the reuse of forward-reordered weights when the weights change between steps, at
 * fp32 (direct convolution) and tf32 (GPUs; the CPU's old name of winograd). On the CPU, every
 * variant its measured choices can pick is also built and checked directly: Winograd where
 * oneDNN has it for this ISA, and at bf16 ("cpu bf16" argument) both backward-weights variants. */
#include <stdlib.h>
#include <string.h>

#include "../src/backend/cpu/cpu_internal.h"
#include "dtrain/config.h"
#include "test_backend_common.h"

/* CPU only: when set, run_case builds this variant instead of asking conv_create to choose */
static const cpu_conv_variant *forced_variant;

typedef struct conv_case {
    dt_backend *b;
    dt_conv_desc d;
    int out_h, out_w;
    double *x, *weight, *r; /* input, OIHW weights, loss coefficients on y */
    double *y;              /* reference output scratch */
} conv_case;

static size_t x_count(const conv_case *c) {
    const dt_conv_desc *d = &c->d;
    return (size_t)d->batch * d->in_channels * d->in_height * d->in_width;
}
static size_t w_count(const conv_case *c) {
    const dt_conv_desc *d = &c->d;
    return (size_t)d->out_channels * d->in_channels * d->kernel * d->kernel;
}
static size_t y_count(const conv_case *c) {
    return (size_t)c->d.batch * c->d.out_channels * c->out_h * c->out_w;
}

static void reference_conv(const conv_case *c, double *y) {
    const dt_conv_desc *d = &c->d;
    const int H = d->in_height, W = d->in_width, K = d->kernel, C = d->in_channels;
    for (int n = 0; n < d->batch; n++)
        for (int o = 0; o < d->out_channels; o++)
            for (int oh = 0; oh < c->out_h; oh++)
                for (int ow = 0; ow < c->out_w; ow++) {
                    double sum = 0.0;
                    for (int ci = 0; ci < C; ci++)
                        for (int kh = 0; kh < K; kh++)
                            for (int kw = 0; kw < K; kw++) {
                                int ih = oh * d->stride - d->padding + kh;
                                int iw = ow * d->stride - d->padding + kw;
                                if (ih < 0 || ih >= H || iw < 0 || iw >= W) continue;
                                sum += c->x[((size_t)(n * C + ci) * H + ih) * W + iw] *
                                       c->weight[((size_t)(o * C + ci) * K + kh) * K + kw];
                            }
                    y[((size_t)(n * d->out_channels + o) * c->out_h + oh) * c->out_w + ow] = sum;
                }
}

static double conv_loss(void *state) {
    conv_case *c = state;
    reference_conv(c, c->y);
    return test_dot(c->r, c->y, y_count(c));
}

/* Compares got (backend gradient, full array) with finite differences at sampled indices. */
static void check_gradient_samples(const char *what, conv_case *c, double *value, size_t count,
                                   const double *got) {
    enum { SAMPLES = 24 };
    double fd[SAMPLES], analytic[SAMPLES];
    uint64_t state = 0x9e3779b97f4a7c15ULL ^ count;
    int samples = count < SAMPLES ? (int)count : SAMPLES;
    for (int s = 0; s < samples; s++) {
        size_t index = (size_t)(test_random(&state, 0.0, 1.0) * (double)count) % count;
        fd[s] = test_finite_difference(value, index, 1e-3, conv_loss, c);
        analytic[s] = got[index];
    }
    CHECK_OP_CLOSE(c->b, "conv", what, analytic, fd, (size_t)samples, 1e-3, 1e-4);
}

static void run_case(dt_backend *b, dt_conv_desc d) {
    dt_error err = {0};
    conv_case c = {.b = b, .d = d};
    c.out_h = (d.in_height + 2 * d.padding - d.kernel) / d.stride + 1;
    c.out_w = (d.in_width + 2 * d.padding - d.kernel) / d.stride + 1;
    uint64_t state = 12345u + (uint64_t)d.in_channels * 31u + (uint64_t)d.kernel;
    c.x = test_doubles(x_count(&c));
    c.weight = test_doubles(w_count(&c));
    c.r = test_doubles(y_count(&c));
    c.y = test_doubles(y_count(&c));
    test_random_fill(c.x, x_count(&c), -1.0, 1.0, &state);
    test_random_fill(c.weight, w_count(&c), -0.5, 0.5, &state);
    test_random_fill(c.r, y_count(&c), -1.0, 1.0, &state);
    char label[160];
    snprintf(label, sizeof label, "conv %d->%d k%d s%d p%d %dx%d", d.in_channels, d.out_channels,
             d.kernel, d.stride, d.padding, d.in_height, d.in_width);

    dt_layer *layer = forced_variant ? cpu_conv_create_variant(b->ctx, &d, *forced_variant, &err)
                                     : dt_backend_conv_create(b, &d, &err);
    CHECK_MSG(layer != NULL, "%s: conv_create: %s", label, err.message);
    if (!layer) return;
    dt_tensor *x = test_tensor(b, d.batch, d.in_channels, d.in_height, d.in_width, c.x);
    dt_tensor *y = test_tensor(b, d.batch, d.out_channels, c.out_h, c.out_w, NULL);
    dt_tensor *dy = test_tensor(b, d.batch, d.out_channels, c.out_h, c.out_w, c.r);
    dt_tensor *dx = test_tensor(b, d.batch, d.in_channels, d.in_height, d.in_width, NULL);
    float *weight = test_buffer(b, c.weight, w_count(&c));
    float *weight_grad = test_buffer(b, NULL, w_count(&c));

    double *want = test_doubles(y_count(&c)), *got = test_doubles(y_count(&c));
    reference_conv(&c, want);
    CHECK_MSG(dt_backend_conv_forward(b, layer, weight, x, y, &err) == 0, "%s: %s", label,
              err.message);
    test_tensor_read(b, y, got, y_count(&c));
    char what[200];
    snprintf(what, sizeof what, "%s forward", label);
    CHECK_OP_CLOSE(b, "conv", what, got, want, y_count(&c), 1e-4, 1e-5);

    CHECK_MSG(dt_backend_conv_backward(b, layer, weight, x, dy, dx, weight_grad, 0, &err) == 0,
              "%s: %s", label, err.message);
    double *dx_got = test_doubles(x_count(&c)), *dw_got = test_doubles(w_count(&c));
    test_tensor_read(b, dx, dx_got, x_count(&c));
    test_buffer_read(b, weight_grad, dw_got, w_count(&c));
    snprintf(what, sizeof what, "%s dx", label);
    check_gradient_samples(what, &c, c.x, x_count(&c), dx_got);
    snprintf(what, sizeof what, "%s dweight", label);
    check_gradient_samples(what, &c, c.weight, w_count(&c), dw_got);

    /* Next step: new weights in the same buffer. Forward must derive its weights again and the
     * backward must use them, also when only dx (no weight gradient) is asked for. */
    for (size_t i = 0; i < w_count(&c); i++) c.weight[i] = (double)(float)(-0.7 * c.weight[i]);
    test_buffer_write(b, weight, c.weight, w_count(&c));
    reference_conv(&c, want);
    CHECK(dt_backend_conv_forward(b, layer, weight, x, y, &err) == 0);
    test_tensor_read(b, y, got, y_count(&c));
    snprintf(what, sizeof what, "%s forward with new weights", label);
    CHECK_OP_CLOSE(b, "conv", what, got, want, y_count(&c), 1e-4, 1e-5);
    CHECK(dt_backend_conv_backward(b, layer, weight, x, dy, dx, NULL, 0, &err) == 0);
    test_tensor_read(b, dx, dx_got, x_count(&c));
    snprintf(what, sizeof what, "%s dx with new weights", label);
    check_gradient_samples(what, &c, c.x, x_count(&c), dx_got);

    /* weight gradient only (the buffer holds NaN first, so a call that writes nothing fails) */
    test_buffer_fill(b, weight_grad, NAN, w_count(&c));
    CHECK(dt_backend_conv_backward(b, layer, weight, x, dy, NULL, weight_grad, 0, &err) == 0);
    test_buffer_read(b, weight_grad, dw_got, w_count(&c));
    snprintf(what, sizeof what, "%s dweight only", label);
    check_gradient_samples(what, &c, c.weight, w_count(&c), dw_got);

    /* accumulate: added to the buffer's gradient (the same one: twice it, exactly) */
    CHECK(dt_backend_conv_backward(b, layer, weight, x, dy, NULL, weight_grad, 1, &err) == 0);
    double *twice = test_doubles(w_count(&c)), *acc = test_doubles(w_count(&c));
    for (size_t i = 0; i < w_count(&c); i++) twice[i] = 2.0 * dw_got[i];
    test_buffer_read(b, weight_grad, acc, w_count(&c));
    snprintf(what, sizeof what, "%s dweight accumulated", label);
    CHECK_OP_CLOSE(b, "conv", what, acc, twice, w_count(&c), 0.0, 0.0); /* x + x: exact on CPU */
    free(twice);
    free(acc);

    /* a wrongly shaped tensor is refused with a message */
    dt_tensor *wrong = test_tensor(b, d.batch + 1, d.in_channels, d.in_height, d.in_width, NULL);
    err.message[0] = 0;
    CHECK(dt_backend_conv_forward(b, layer, weight, wrong, y, &err) == -1);
    CHECK(strstr(err.message, "conv_forward") != NULL);
    dt_backend_tensor_destroy(b, wrong);

    dt_backend_layer_destroy(b, layer);
    dt_backend_tensor_destroy(b, x);
    dt_backend_tensor_destroy(b, y);
    dt_backend_tensor_destroy(b, dy);
    dt_backend_tensor_destroy(b, dx);
    test_buffer_free(b, weight), test_buffer_free(b, weight_grad), free(want), free(got),
        free(dx_got), free(dw_got);
    free(c.x), free(c.weight), free(c.r), free(c.y);
}

/* CPU only (its buffers are host memory): weights written directly, not through the backend,
 * are used by the next forward once params_changed says so; negated weights negate y. */
static void check_params_changed(dt_backend *b) {
    dt_error err = {0};
    dt_conv_desc d = {2, 16, 16, 6, 6, 3, 1, 1, 0, 0};
    size_t wn = 16 * 16 * 9, yn = 2 * 16 * 6 * 6;
    double *values = test_doubles(wn), *x_values = test_doubles(yn);
    uint64_t state = 99u;
    test_random_fill(values, wn, -0.5, 0.5, &state);
    test_random_fill(x_values, yn, -1.0, 1.0, &state);
    dt_layer *layer = dt_backend_conv_create(b, &d, &err);
    dt_tensor *x = test_tensor(b, 2, 16, 6, 6, x_values), *y = test_tensor(b, 2, 16, 6, 6, NULL);
    float *weight = test_buffer(b, values, wn);
    double *first = test_doubles(yn), *second = test_doubles(yn);
    CHECK(dt_backend_conv_forward(b, layer, weight, x, y, &err) == 0);
    test_tensor_read(b, y, first, yn);
    for (size_t i = 0; i < wn; i++) weight[i] = -weight[i];
    dt_backend_params_changed(b);
    CHECK(dt_backend_conv_forward(b, layer, weight, x, y, &err) == 0);
    test_tensor_read(b, y, second, yn);
    for (size_t i = 0; i < yn; i++) first[i] = -first[i];
    CHECK_ARRAY_CLOSE("conv forward after params_changed", second, first, yn, 0.0, 0.0);
    dt_backend_layer_destroy(b, layer);
    dt_backend_tensor_destroy(b, x);
    dt_backend_tensor_destroy(b, y);
    test_buffer_free(b, weight);
    free(values), free(x_values), free(first), free(second);
}

/* The layer shapes every precision runs: each pair of plain and blocked layouts, strides,
 * odd sizes and the 1x1 downsample (batch, in, out, h, w, kernel, stride, padding). */
static void run_layout_cases(dt_backend *b) {
    static const dt_conv_desc cases[] = {
        {2, 3, 16, 8, 8, 7, 2, 3, 0, 0},  /* the stem: RGB -> blocked */
        {2, 16, 16, 8, 8, 3, 1, 1, 0, 0}, /* blocked -> blocked */
        {2, 16, 32, 8, 8, 3, 2, 1, 0, 0}, /* stage entry, stride 2 */
        {2, 16, 32, 8, 8, 1, 2, 0, 0, 0}, /* downsample 1x1 s2 */
        {3, 32, 16, 7, 7, 3, 2, 1, 0, 0}, /* odd size, stride 2 */
        {2, 6, 10, 6, 5, 3, 1, 1, 0, 0},  /* plain -> plain */
        {2, 16, 8, 5, 5, 3, 1, 0, 0, 0},  /* blocked -> plain, no pad */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) run_case(b, cases[i]);
}

/* "test_backend_conv cpu bf16": the CPU's bf16 convolutions against the same references, or
 * SKIPPED with the reason where oneDNN has no bf16 kernels (no AVX512-BF16 or AMX, or capped). */
static int run_bf16(int argc, char **argv) {
    dt_backend b = {0};
    dt_error err = {{0}, 0};
    dt_backend_options opt = {.threads = 2, .precision = DT_PRECISION_BF16};
    test_precision = DT_PRECISION_BF16;
    if (dt_backend_cpu_create(&opt, &b, &err) != 0) {
        CHECK_MSG(err.exit_code == DT_EXIT_USAGE && strstr(err.message, "AVX512-BF16"), "%s",
                  err.message);
        if (dt_test_failed) return dt_test_summary("backend_conv bf16");
        printf("SKIPPED: %s\n", err.message);
        return DT_TEST_SKIP;
    }
    (void)argc, (void)argv;
    run_layout_cases(&b);
    run_case(&b, (dt_conv_desc){4, 64, 64, 4, 4, 3, 1, 1, 0, 0}); /* a last-stage shape */
    /* both variants the measured choice picks from, whichever it picked above */
    for (int fp32_grad = 0; fp32_grad < 2; fp32_grad++) {
        const cpu_conv_variant v = {dnnl_convolution_direct, fp32_grad};
        forced_variant = &v;
        run_case(&b, (dt_conv_desc){2, 16, 32, 8, 8, 3, 2, 1, 0, 0});
        run_case(&b, (dt_conv_desc){4, 64, 64, 4, 4, 3, 1, 1, 0, 0});
        run_case(&b, (dt_conv_desc){2, 3, 16, 8, 8, 7, 2, 3, 0, 0});
        forced_variant = NULL;
    }
    dt_backend_free(&b);
    return dt_test_summary("backend_conv bf16");
}

int main(int argc, char **argv) {
    if (argc > 2 && strcmp(argv[2], "bf16") == 0) return run_bf16(argc, argv);
    dt_backend b = test_backend_open(argc, argv);
    run_layout_cases(&b);
    run_case(&b, (dt_conv_desc){16, 16, 16, 8, 8, 3, 1, 1, 0, 0});
    /* descriptions every backend refuses alike (src/backend/layer_descs.c) */
    dt_error bad_err = {0};
    dt_conv_desc too_big = {2, 3, 8, 2, 2, 7, 1, 1, 0, 0}; /* 7x7 kernel over a padded 4x4 input */
    CHECK(dt_backend_conv_create(&b, &too_big, &bad_err) == NULL);
    CHECK(strstr(bad_err.message, "conv_create: kernel 7 is larger than the padded 2x2 input"));
    dt_conv_desc no_stride = {2, 3, 8, 8, 8, 3, 0, 1, 0, 0};
    CHECK(dt_backend_conv_create(&b, &no_stride, &bad_err) == NULL);
    CHECK(strstr(bad_err.message, "conv_create: invalid description") != NULL);
    /* tf32 (GPUs; on the CPU the old name of winograd, which measures Winograd against direct
     * for this batch-16 3x3 stride-1 layer and keeps the faster) */
    dt_backend fast = test_backend_open_precision(argc, argv, DT_PRECISION_TF32);
    run_case(&fast, (dt_conv_desc){16, 16, 16, 8, 8, 3, 1, 1, 0, 0});
    run_case(&fast, (dt_conv_desc){2, 16, 32, 8, 8, 3, 2, 1, 0, 0});
    if (dt_backend_has(&fast, DT_BACKEND_HOST_MEMORY)) {
        /* Winograd itself, whether or not it measured faster here; oneDNN 2.6 has it for
         * AVX-512 only, so under an AVX2 cap the layer cannot be built (and the choice is direct)
         */
        const cpu_conv_variant v = {dnnl_convolution_winograd, 0};
        const dt_conv_desc wd = {16, 16, 16, 8, 8, 3, 1, 1, 0, 0};
        dt_error werr = {{0}, 0};
        dt_layer *probe = cpu_conv_create_variant(fast.ctx, &wd, v, &werr);
        const cpu_ctx *fast_ctx = fast.ctx;
        if (probe) {
            dt_backend_layer_destroy(&fast, probe);
            forced_variant = &v;
            run_case(&fast, wd);
            forced_variant = NULL;
        } else {
            CHECK_MSG((fast_ctx->isa & dnnl_cpu_isa_avx512_core) != dnnl_cpu_isa_avx512_core,
                      "no Winograd on %s: %s", cpu_isa_name(fast_ctx->isa), werr.message);
            printf("Winograd not available on %s: not checked directly\n",
                   cpu_isa_name(fast_ctx->isa));
        }
    }
    dt_backend_free(&fast);

    dt_error err = {0};
    if (dt_backend_has(&b, DT_BACKEND_HOST_MEMORY)) check_params_changed(&b);
    dt_conv_desc bad = {2, 16, 16, 8, 8, 3, 0, 1, 0, 0};
    CHECK(dt_backend_conv_create(&b, &bad, &err) == NULL);
    CHECK(strstr(err.message, "stride 0") != NULL);
    dt_backend_free(&b);
    return dt_test_summary("backend_conv");
}
