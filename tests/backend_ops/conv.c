/* Backend convolution (every backend compiled in): forward against a double-precision direct
 * convolution, backward (input and weight gradients) against central finite differences of that
 * reference, for the shapes of ResNet-18 (7x7 s2 p3 from RGB, 3x3 s1/s2, 1x1 s2) in both activation
 * layouts, plus the reuse of forward-reordered weights when the weights change between steps, at
 * fp32 (direct convolution) and tf32 (GPUs; the CPU's old name of winograd). On the CPU, every
 * variant its choices can pick is also built and checked directly: Winograd where oneDNN has it
 * for this ISA, at bf16 (--precision bf16) both backward-weights variants, and the per-tap matrix
 * products of the smallest maps on other shapes too, with the rule that picks them; every fp32
 * CPU row runs again with the weights in the layer's own layout (converted there and back),
 * which must compute the same floats as with OIHW weights.
 * Compare mode: forward and both backwards on another backend against the CPU's. Rows:
 * test_backend_ops.c. */
#include <stdlib.h>
#include <string.h>

#include "../src/backend/cpu/cpu_internal.h"
#include "backend_ops.h"
#include "dtrain/config.h"

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

/* The CPU variant a row forces (the others: conv_create's choice); NULL: none. */
static const cpu_conv_variant *forced_variant(conv_kind kind) {
    static const cpu_conv_variant winograd = {dnnl_convolution_winograd, 0, 0};
    static const cpu_conv_variant bf16_grad = {dnnl_convolution_direct, 0, 0};
    static const cpu_conv_variant fp32_grad = {dnnl_convolution_direct, 1, 0};
    static const cpu_conv_variant direct = {dnnl_convolution_direct, 0, 0};
    static const cpu_conv_variant small_map_gemm = {dnnl_convolution_direct, 0, CPU_PER_TAP_ALL};
    static const cpu_conv_variant weights_gemm = {dnnl_convolution_direct, 0, CPU_PER_TAP_WEIGHTS};
    return kind == CONV_WINOGRAD           ? &winograd
           : kind == CONV_DIRECT_BF16_GRAD ? &bf16_grad
           : kind == CONV_DIRECT_FP32_GRAD ? &fp32_grad
           : kind == CONV_DIRECT           ? &direct
           : kind == CONV_SMALL_MAP_GEMM   ? &small_map_gemm
           : kind == CONV_WEIGHTS_GEMM     ? &weights_gemm
                                           : NULL;
}

/* The weights as the layer takes them: OIHW, or moved into the layer's own layout. */
static void write_weights(dt_backend *b, dt_layer *layer, float *buffer, const double *oihw,
                          size_t n) {
    if (!dt_backend_conv_weight_layout(b, layer)) {
        test_buffer_write(b, buffer, oihw, n);
        return;
    }
    dt_error err = {0};
    float *plain = calloc(n, sizeof *plain), *own = calloc(n, sizeof *own);
    double *values = test_doubles(n);
    for (size_t i = 0; i < n; i++) plain[i] = (float)oihw[i];
    CHECK_MSG(dt_backend_conv_weights_convert(b, layer, own, plain, 1, &err) == 0, "%s",
              err.message);
    for (size_t i = 0; i < n; i++) values[i] = own[i];
    test_buffer_write(b, buffer, values, n);
    free(plain), free(own), free(values);
}

/* A weight gradient in OIHW order, whatever the layer's layout. */
static void read_weight_grad(dt_backend *b, dt_layer *layer, const float *buffer, double *oihw,
                             size_t n) {
    test_buffer_read(b, buffer, oihw, n);
    if (!dt_backend_conv_weight_layout(b, layer)) return;
    dt_error err = {0};
    float *own = calloc(n, sizeof *own), *plain = calloc(n, sizeof *plain);
    for (size_t i = 0; i < n; i++) own[i] = (float)oihw[i];
    CHECK_MSG(dt_backend_conv_weights_convert(b, layer, plain, own, 0, &err) == 0, "%s",
              err.message);
    for (size_t i = 0; i < n; i++) oihw[i] = plain[i];
    free(own), free(plain);
}

/* What a row's run with OIHW weights computed (every output its checks read, in order), for the
 * run with the layer's own layout to match float for float: the same kernels read the same
 * weights in the same format, only the copies in between differ. */
enum { CONV_OUTPUTS = 7 };
typedef struct conv_outputs {
    int replay; /* 0: record (the OIHW run), 1: compare (the own-layout run) */
    double *values[CONV_OUTPUTS];
    size_t counts[CONV_OUTPUTS];
} conv_outputs;

/* The OIHW run records got as output `index` and returns 0, so that the caller checks it against
 * the references; the own-layout run checks got equal to the record and returns 1. */
static int same_as_oihw_run(conv_outputs *o, int index, const char *what, const double *got,
                            size_t n) {
    if (!o->replay) {
        o->values[index] = test_doubles(n);
        o->counts[index] = n;
        memcpy(o->values[index], got, n * sizeof *got);
        return 0;
    }
    size_t differ = o->counts[index] == n ? 0 : n;
    for (size_t i = 0; i < n && o->counts[index] == n; i++) differ += got[i] != o->values[index][i];
    CHECK_MSG(differ == 0, "%s: %zu of %zu values differ from the run with OIHW weights", what,
              differ, n);
    return 1;
}

static void conv_outputs_free(conv_outputs *o) {
    for (int i = 0; i < CONV_OUTPUTS; i++) free(o->values[i]);
}

/* d.own_weight_layout: the layer may keep its weights in its own layout; the checks convert, and
 * then compare with the OIHW run's outputs (o->replay) instead of the references. */
static void run_case(dt_backend *b, dt_conv_desc d, const cpu_conv_variant *forced,
                     conv_outputs *o) {
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
    snprintf(label, sizeof label, "conv %d->%d k%d s%d p%d %dx%d%s", d.in_channels, d.out_channels,
             d.kernel, d.stride, d.padding, d.in_height, d.in_width,
             d.own_weight_layout ? " own layout" : "");

    dt_layer *layer = forced ? cpu_conv_create_variant(b->ctx, &d, *forced, &err)
                             : dt_backend_conv_create(b, &d, &err);
    CHECK_MSG(layer != NULL, "%s: conv_create: %s", label, err.message);
    if (!layer) return;
    dt_tensor *x = test_tensor(b, d.batch, d.in_channels, d.in_height, d.in_width, c.x);
    dt_tensor *y = test_tensor(b, d.batch, d.out_channels, c.out_h, c.out_w, NULL);
    dt_tensor *dy = test_tensor(b, d.batch, d.out_channels, c.out_h, c.out_w, c.r);
    dt_tensor *dx = test_tensor(b, d.batch, d.in_channels, d.in_height, d.in_width, NULL);
    float *weight = test_buffer(b, NULL, w_count(&c));
    float *weight_grad = test_buffer(b, NULL, w_count(&c));
    write_weights(b, layer, weight, c.weight, w_count(&c));

    double *want = test_doubles(y_count(&c)), *got = test_doubles(y_count(&c));
    reference_conv(&c, want);
    CHECK_MSG(dt_backend_conv_forward(b, layer, weight, x, y, &err) == 0, "%s: %s", label,
              err.message);
    test_tensor_read(b, y, got, y_count(&c));
    char what[200];
    snprintf(what, sizeof what, "%s forward", label);
    if (!same_as_oihw_run(o, 0, what, got, y_count(&c)))
        CHECK_OP_CLOSE(b, "conv", what, got, want, y_count(&c), 1e-4, 1e-5);

    CHECK_MSG(dt_backend_conv_backward(b, layer, weight, x, dy, dx, weight_grad, 0, &err) == 0,
              "%s: %s", label, err.message);
    double *dx_got = test_doubles(x_count(&c)), *dw_got = test_doubles(w_count(&c));
    double *dw_raw = test_doubles(w_count(&c));
    test_tensor_read(b, dx, dx_got, x_count(&c));
    read_weight_grad(b, layer, weight_grad, dw_got, w_count(&c));
    snprintf(what, sizeof what, "%s dx", label);
    if (!same_as_oihw_run(o, 1, what, dx_got, x_count(&c)))
        check_gradient_samples(what, &c, c.x, x_count(&c), dx_got);
    snprintf(what, sizeof what, "%s dweight", label);
    if (!same_as_oihw_run(o, 2, what, dw_got, w_count(&c)))
        check_gradient_samples(what, &c, c.weight, w_count(&c), dw_got);

    /* Next step: new weights in the same buffer. Forward must derive its weights again and the
     * backward must use them, also when only dx (no weight gradient) is asked for. */
    for (size_t i = 0; i < w_count(&c); i++) c.weight[i] = (double)(float)(-0.7 * c.weight[i]);
    write_weights(b, layer, weight, c.weight, w_count(&c));
    reference_conv(&c, want);
    CHECK(dt_backend_conv_forward(b, layer, weight, x, y, &err) == 0);
    test_tensor_read(b, y, got, y_count(&c));
    snprintf(what, sizeof what, "%s forward with new weights", label);
    if (!same_as_oihw_run(o, 3, what, got, y_count(&c)))
        CHECK_OP_CLOSE(b, "conv", what, got, want, y_count(&c), 1e-4, 1e-5);
    CHECK(dt_backend_conv_backward(b, layer, weight, x, dy, dx, NULL, 0, &err) == 0);
    test_tensor_read(b, dx, dx_got, x_count(&c));
    snprintf(what, sizeof what, "%s dx with new weights", label);
    if (!same_as_oihw_run(o, 4, what, dx_got, x_count(&c)))
        check_gradient_samples(what, &c, c.x, x_count(&c), dx_got);

    /* weight gradient only (the buffer holds NaN first, so a call that writes nothing fails) */
    test_buffer_fill(b, weight_grad, NAN, w_count(&c));
    CHECK(dt_backend_conv_backward(b, layer, weight, x, dy, NULL, weight_grad, 0, &err) == 0);
    test_buffer_read(b, weight_grad, dw_raw, w_count(&c));
    read_weight_grad(b, layer, weight_grad, dw_got, w_count(&c));
    snprintf(what, sizeof what, "%s dweight only", label);
    if (!same_as_oihw_run(o, 5, what, dw_got, w_count(&c)))
        check_gradient_samples(what, &c, c.weight, w_count(&c), dw_got);

    /* accumulate: added to the buffer's gradient (the same one: twice it, exactly, in the
     * buffer's own order) */
    CHECK(dt_backend_conv_backward(b, layer, weight, x, dy, NULL, weight_grad, 1, &err) == 0);
    snprintf(what, sizeof what, "%s dweight accumulated", label);
    CHECK_DOUBLED(b, "conv", what, weight_grad, dw_raw, w_count(&c));

    /* next step: new values in the same x tensor; the weight gradient after the forward must
     * follow them (no copy of x a layer keeps may outlive the values it was made from) */
    for (size_t i = 0; i < x_count(&c); i++) c.x[i] = (double)(float)(0.25 - 0.5 * c.x[i]);
    test_tensor_write(b, x, c.x, x_count(&c));
    CHECK(dt_backend_conv_forward(b, layer, weight, x, y, &err) == 0);
    CHECK(dt_backend_conv_backward(b, layer, weight, x, dy, NULL, weight_grad, 0, &err) == 0);
    read_weight_grad(b, layer, weight_grad, dw_got, w_count(&c));
    snprintf(what, sizeof what, "%s dweight after new x", label);
    if (!same_as_oihw_run(o, 6, what, dw_got, w_count(&c)))
        check_gradient_samples(what, &c, c.weight, w_count(&c), dw_got);

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
        free(dx_got), free(dw_got), free(dw_raw);
    free(c.x), free(c.weight), free(c.r), free(c.y);
}

/* CPU only (its buffers are host memory): weights written directly, not through the backend,
 * are used by the next forward once params_changed says so; negated weights negate y. */
void conv_check_params_changed(dt_backend *b, const backend_op_case *oc) {
    (void)oc;
    if (!dt_backend_has(b, DT_BACKEND_HOST_MEMORY)) return; /* the CPU backend's own mechanism */
    dt_error err = {0};
    dt_conv_desc d = {2, 16, 16, 6, 6, 3, 1, 1, 0, 0, 0};
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

/* The row's convolution against the references; a row that forces a CPU variant runs on the
 * CPU backend only, and Winograd, which oneDNN 2.6 has for AVX-512 only, is checked where it can
 * be built (under an AVX2 cap the layer cannot be, and the measured choice is direct). */
void conv_check(dt_backend *b, const backend_op_case *oc) {
    const op_conv *row = oc->params;
    const cpu_conv_variant *forced = forced_variant(row->kind);
    if (forced && !dt_backend_has(b, DT_BACKEND_HOST_MEMORY)) return;
    if (row->kind == CONV_WINOGRAD) {
        dt_error werr = {{0}, 0};
        dt_layer *probe = cpu_conv_create_variant(b->ctx, &row->d, *forced, &werr);
        const cpu_ctx *ctx = b->ctx;
        if (!probe) {
            CHECK_MSG((ctx->isa & dnnl_cpu_isa_avx512_core) != dnnl_cpu_isa_avx512_core,
                      "no Winograd on %s: %s", cpu_isa_name(ctx->isa), werr.message);
            printf("Winograd not available on %s: not checked directly\n", cpu_isa_name(ctx->isa));
            return;
        }
        dt_backend_layer_destroy(b, probe);
    }
    conv_outputs outputs = {0};
    run_case(b, row->d, forced, &outputs);
    /* again with the CPU's own weight layouts (fp32; other precisions keep OIHW) */
    dt_conv_desc own = row->d;
    own.own_weight_layout = 1;
    if (dt_backend_has(b, DT_BACKEND_HOST_MEMORY) &&
        ((const cpu_ctx *)b->ctx)->precision == DT_PRECISION_FP32) {
        outputs.replay = 1;
        run_case(b, own, forced, &outputs);
    }
    conv_outputs_free(&outputs);
}

/* CPU: which passes the shape rule gives the per-tap matrix products (cpu_conv_gemm.c), for
 * both channel blocks whatever the CPU: with 16 (AVX-512) all three for a kernel wider than 1
 * over at most CPU_CONV_GEMM_MAX_POSITIONS output positions and backward-weights alone up to
 * CPU_CONV_GEMM_WEIGHTS_MAX_POSITIONS; with 8 (AVX2) all three up to the latter; none at bf16. */
void conv_check_small_map_rule(dt_backend *b, const backend_op_case *oc) {
    (void)oc;
    if (!dt_backend_has(b, DT_BACKEND_HOST_MEMORY)) return;
    /* the rule's answer for fp32 and winograd with 16- and 8-channel blocks (bf16: none) */
    static const struct {
        const char *name;
        dt_conv_desc d;
        cpu_per_tap block16, block8;
    } rows[] = {
        {"last stage", {64, 512, 512, 2, 2, 3, 1, 1, 0, 0, 0}, CPU_PER_TAP_ALL, CPU_PER_TAP_ALL},
        {"stage entry", {64, 256, 512, 4, 4, 3, 2, 1, 0, 0, 0}, CPU_PER_TAP_ALL, CPU_PER_TAP_ALL},
        {"one position", {8, 16, 16, 1, 1, 3, 1, 1, 0, 0, 0}, CPU_PER_TAP_ALL, CPU_PER_TAP_ALL},
        {"downsample", {64, 256, 512, 4, 4, 1, 2, 0, 0, 0, 0}, CPU_PER_TAP_NONE, CPU_PER_TAP_NONE},
        {"4x4", {64, 256, 256, 4, 4, 3, 1, 1, 0, 0, 0}, CPU_PER_TAP_WEIGHTS, CPU_PER_TAP_ALL},
        {"entry to 4x4",
         {64, 128, 256, 8, 8, 3, 2, 1, 0, 0, 0},
         CPU_PER_TAP_WEIGHTS,
         CPU_PER_TAP_ALL},
        {"4x4 inference",
         {64, 256, 256, 4, 4, 3, 1, 1, 0, 1, 0},
         CPU_PER_TAP_NONE,
         CPU_PER_TAP_ALL},
        {"8x8", {64, 128, 128, 8, 8, 3, 1, 1, 0, 0, 0}, CPU_PER_TAP_NONE, CPU_PER_TAP_NONE},
        {"stride 0", {2, 16, 16, 2, 2, 3, 0, 1, 0, 0, 0}, CPU_PER_TAP_NONE, CPU_PER_TAP_NONE},
    };
    static const int precisions[] = {DT_PRECISION_FP32, DT_PRECISION_WINOGRAD, DT_PRECISION_BF16};
    cpu_ctx *ctx = b->ctx;
    const int precision = ctx->precision, block = ctx->block;
    for (size_t r = 0; r < sizeof rows / sizeof rows[0]; r++)
        for (size_t p = 0; p < sizeof precisions / sizeof precisions[0]; p++)
            for (int blocks = 16; blocks >= 8; blocks -= 8) {
                ctx->precision = precisions[p];
                ctx->block = blocks;
                const cpu_per_tap want = precisions[p] == DT_PRECISION_BF16 ? CPU_PER_TAP_NONE
                                         : blocks == 16                     ? rows[r].block16
                                                                            : rows[r].block8;
                const cpu_per_tap got = cpu_conv_per_tap_rule(ctx, &rows[r].d);
                CHECK_MSG(got == want, "per-tap rule, %s, %s, %d-channel blocks: %d, want %d",
                          rows[r].name, dt_precision_name((dt_precision_kind)precisions[p]), blocks,
                          (int)got, (int)want);
            }
    ctx->precision = precision;
    ctx->block = block;
}

/* descriptions every backend refuses alike (src/backend/layer_descs.c) */
void conv_check_refusals(dt_backend *b, const backend_op_case *oc) {
    (void)oc;
    dt_error bad_err = {0};
    dt_conv_desc too_big = {2, 3, 8, 2, 2, 7,
                            1, 1, 0, 0, 0}; /* 7x7 kernel over a padded 4x4 input */
    CHECK(dt_backend_conv_create(b, &too_big, &bad_err) == NULL);
    CHECK(strstr(bad_err.message, "conv_create: kernel 7 is larger than the padded 2x2 input"));
    dt_conv_desc no_stride = {2, 3, 8, 8, 8, 3, 0, 1, 0, 0, 0};
    CHECK(dt_backend_conv_create(b, &no_stride, &bad_err) == NULL);
    CHECK(strstr(bad_err.message, "conv_create: invalid description") != NULL);
    dt_error err = {0};
    dt_conv_desc bad = {2, 16, 16, 8, 8, 3, 0, 1, 0, 0, 0};
    CHECK(dt_backend_conv_create(b, &bad, &err) == NULL);
    CHECK(strstr(err.message, "stride 0") != NULL);
}

/* Forward, backward data, backward filter (overwritten and accumulated) and a forward after new
 * weights (the derived filter must follow) on the other backend against the CPU's. */
void conv_compare(dt_backend *cpu, dt_backend *other, const backend_op_case *oc) {
    const dt_conv_desc d = ((const op_conv *)oc->params)->d;
    const dt_test_tolerances *t = dt_test_tolerances_for(oc->precision);
    dt_error err = {0};
    const int oh = (d.in_height + 2 * d.padding - d.kernel) / d.stride + 1;
    const int ow = (d.in_width + 2 * d.padding - d.kernel) / d.stride + 1;
    const size_t nx = (size_t)d.batch * d.in_channels * d.in_height * d.in_width;
    const size_t ny = (size_t)d.batch * d.out_channels * oh * ow;
    const size_t nw = (size_t)d.out_channels * d.in_channels * d.kernel * d.kernel;
    uint64_t state = 77u + (uint64_t)d.in_channels;
    float *x = op_random_floats(nx, -1, 1, &state), *w = op_random_floats(nw, -0.2, 0.2, &state);
    float *dy = op_random_floats(ny, -1, 1, &state);
    char what[120];
    snprintf(what, sizeof what, "conv %dx%dx%dx%d->%d k%d s%d", d.batch, d.in_channels, d.in_height,
             d.in_width, d.out_channels, d.kernel, d.stride);
    float *w2 = op_random_floats(nw, -0.2, 0.2, &state);
    dt_backend *b[2] = {cpu, other};
    float *y[2], *dx[2], *dw[2], *dw2[2], *y2[2];
    for (int k = 0; k < 2; k++) {
        dt_layer *l = dt_backend_conv_create(b[k], &d, &err);
        CHECK_MSG(l != NULL, "%s %s: %s", dt_backend_name(b[k]), what, err.message);
        if (!l) return;
        float *wb = op_buffer_of(b[k], w, nw), *gb = op_buffer_of(b[k], NULL, nw);
        dt_tensor *tx = op_tensor_of(b[k], d.batch, d.in_channels, d.in_height, d.in_width, x);
        dt_tensor *ty = op_tensor_of(b[k], d.batch, d.out_channels, oh, ow, NULL);
        dt_tensor *tdy = op_tensor_of(b[k], d.batch, d.out_channels, oh, ow, dy);
        dt_tensor *tdx = op_tensor_of(b[k], d.batch, d.in_channels, d.in_height, d.in_width, NULL);
        CHECK_MSG(dt_backend_conv_forward(b[k], l, wb, tx, ty, &err) == 0, "%s", err.message);
        CHECK_MSG(dt_backend_conv_backward(b[k], l, wb, tx, tdy, tdx, gb, 0, &err) == 0, "%s",
                  err.message);
        y[k] = op_tensor_read(b[k], ty, ny);
        dx[k] = op_tensor_read(b[k], tdx, nx);
        dw[k] = op_buffer_read(b[k], gb, nw);
        CHECK_MSG(dt_backend_conv_backward(b[k], l, wb, tx, tdy, NULL, gb, 1, &err) == 0, "%s",
                  err.message);
        dw2[k] = op_buffer_read(b[k], gb, nw);
        /* new weights (a new parameter version): the derived filter must follow */
        CHECK(dt_backend_buffer_upload(b[k], wb, w2, nw, &err) == 0);
        CHECK(dt_backend_conv_forward(b[k], l, wb, tx, ty, &err) == 0);
        y2[k] = op_tensor_read(b[k], ty, ny);
        dt_backend_layer_destroy(b[k], l);
        dt_backend_tensor_destroy(b[k], tx), dt_backend_tensor_destroy(b[k], ty);
        dt_backend_tensor_destroy(b[k], tdy), dt_backend_tensor_destroy(b[k], tdx);
        dt_backend_buffer_free(b[k], wb), dt_backend_buffer_free(b[k], gb);
    }
    op_compare_of(oc->precision, what, "forward", y[1], y[0], ny, t->conv);
    op_compare_of(oc->precision, what, "backward data", dx[1], dx[0], nx, t->conv);
    op_compare_of(oc->precision, what, "backward filter", dw[1], dw[0], nw, t->conv);
    op_compare_of(oc->precision, what, "backward filter, accumulated", dw2[1], dw2[0], nw, t->conv);
    op_compare_of(oc->precision, what, "forward, weights changed", y2[1], y2[0], ny, t->conv);
    for (int k = 0; k < 2; k++) free(y[k]), free(dx[k]), free(dw[k]), free(dw2[k]), free(y2[k]);
    free(x), free(w), free(w2), free(dy);
}
