/* Which variant of a convolution layer to build (cpu_conv_variant), where that depends on the CPU
 * at hand and no rule holds across CPUs, so it is measured: the candidates are built, one
 * forward + backward of each is timed on scratch tensors, the faster is kept and the choice is
 * remembered for the layer shape (a network times each shape once, at creation).
 *  - precision winograd, 3x3 stride-1 layers: oneDNN's Winograd F(4x4, 3x3) against direct
 *    convolution. Winograd is faster on some AVX-512 CPUs and slower on others (and it trades
 *    about ten times the rounding error of direct convolution); where oneDNN has no Winograd
 *    kernel (AVX2, other shapes) the layer is direct.
 *  - precision bf16: backward-weights in bf16 against fp32 (oneDNN 2.6's bf16 one is several
 *    times faster on large feature maps and many times slower on small ones).
 * Not measured but decided by shape and channel block (cpu_conv_per_tap_rule): the layers over
 * the smallest maps are per-tap matrix products at fp32 and winograd, on every CPU, and with
 * 16-channel blocks those over slightly larger ones take their backward-weights that way (in
 * the direct candidate above).
 * fp32 layers are never timed, so fp32 runs repeat bit for bit; the measured choices follow the
 * timing, so two winograd or bf16 runs on a loaded machine may differ in their last digits.
 * runtime.deterministic fixes them instead: Winograd wherever oneDNN has it, fp32
 * backward-weights with bf16. */
#include "cpu_internal.h"

#include <stdlib.h>
#include <string.h>

#include "dtrain/config.h"
#include "dtrain/platform.h"

struct cpu_conv_choice {
    dt_conv_desc desc;
    cpu_conv_variant variant;
};

static int same_shape(const dt_conv_desc *a, const dt_conv_desc *b) {
    return a->batch == b->batch && a->in_channels == b->in_channels &&
           a->out_channels == b->out_channels && a->in_height == b->in_height &&
           a->in_width == b->in_width && a->kernel == b->kernel && a->stride == b->stride &&
           a->padding == b->padding;
}

void cpu_conv_timing_inputs_free(cpu_ctx *ctx, cpu_conv_timing_inputs *in) {
    cpu_tensor_destroy(ctx, in->x);
    cpu_tensor_destroy(ctx, in->y);
    cpu_tensor_destroy(ctx, in->dy);
    cpu_tensor_destroy(ctx, in->dx);
    cpu_aligned_free(in->weight);
    cpu_aligned_free(in->grad);
}

static void fill(float *data, size_t count) {
    for (size_t i = 0; i < count; i++) data[i] = (float)((int)(i % 17) - 8) * 0.0625f;
}

int cpu_conv_timing_inputs_make(cpu_ctx *ctx, const dt_conv_desc *d, cpu_conv_timing_inputs *in,
                                dt_error *err) {
    memset(in, 0, sizeof *in);
    const int oh = (d->in_height + 2 * d->padding - d->kernel) / d->stride + 1;
    const int ow = (d->in_width + 2 * d->padding - d->kernel) / d->stride + 1;
    const size_t weights = (size_t)d->out_channels * d->in_channels * d->kernel * d->kernel;
    in->x = cpu_tensor_create(ctx, d->batch, d->in_channels, d->in_height, d->in_width, err);
    in->dx = in->x
                 ? cpu_tensor_create(ctx, d->batch, d->in_channels, d->in_height, d->in_width, err)
                 : NULL;
    in->y = in->dx ? cpu_tensor_create(ctx, d->batch, d->out_channels, oh, ow, err) : NULL;
    in->dy = in->y ? cpu_tensor_create(ctx, d->batch, d->out_channels, oh, ow, err) : NULL;
    in->weight = cpu_aligned_alloc(weights * sizeof(float), 0);
    in->grad = cpu_aligned_alloc(weights * sizeof(float), 0);
    if (!in->dy) return -1;
    if (!in->weight || !in->grad) return dt_fail(err, "out of memory timing a convolution");
    fill(in->x->data, in->x->count);
    fill(in->dy->data, in->dy->count);
    fill(in->weight, weights);
    return 0;
}

/* Seconds of one forward + backward of layer, after a warm-up pass (page faults, caches). A
 * candidate whose warm-up already took more than three times the best time so far is not timed
 * again: it is slower, and some of oneDNN 2.6's kernels are slower by tens of times. */
static int time_layer(cpu_ctx *ctx, dt_layer *layer, const cpu_conv_timing_inputs *in, double best,
                      double *seconds, dt_error *err) {
    for (int round = 0; round < 2; round++) {
        ctx->params_version++; /* the weights are reordered every time, as after an update */
        double start = dt_monotonic_seconds();
        if (cpu_conv_forward(ctx, layer, in->weight, in->x, in->y, err) ||
            cpu_conv_backward(ctx, layer, in->weight, in->x, in->dy, in->dx, in->grad, 0, err))
            return -1;
        *seconds = dt_monotonic_seconds() - start;
        if (round == 0 && *seconds > 3.0 * best) return 0;
    }
    return 0;
}

static const struct cpu_conv_choice *remembered(cpu_ctx *ctx, const dt_conv_desc *d) {
    for (int i = 0; i < ctx->conv_choice_count; i++)
        if (same_shape(&ctx->conv_choices[i].desc, d)) return &ctx->conv_choices[i];
    return NULL;
}

static int remember(cpu_ctx *ctx, const dt_conv_desc *d, cpu_conv_variant variant, dt_error *err) {
    struct cpu_conv_choice *grown = realloc(
        ctx->conv_choices, (size_t)(ctx->conv_choice_count + 1) * sizeof *ctx->conv_choices);
    if (!grown) return dt_fail(err, "out of memory for the convolution choices");
    ctx->conv_choices = grown;
    grown[ctx->conv_choice_count++] = (struct cpu_conv_choice){*d, variant};
    return 0;
}

/* The faster of two candidate variants (b may fail to build: then a). */
static dt_layer *conv_create_faster(cpu_ctx *ctx, const dt_conv_desc *d, cpu_conv_variant a,
                                    cpu_conv_variant b, dt_error *err) {
    const struct cpu_conv_choice *known = remembered(ctx, d);
    if (known) return cpu_conv_create_variant(ctx, d, known->variant, err);
    dt_layer *first = cpu_conv_create_variant(ctx, d, a, err);
    if (!first) return NULL;
    dt_error unused = {{0}, 0};
    /* fails where oneDNN has no kernel for it (Winograd on AVX2): then a it is */
    dt_layer *second = cpu_conv_create_variant(ctx, d, b, &unused);
    dt_layer *chosen = first;
    if (second) {
        cpu_conv_timing_inputs in;
        double first_s = 0, second_s = 0;
        int rc = cpu_conv_timing_inputs_make(ctx, d, &in, err) ||
                 time_layer(ctx, first, &in, 1e30, &first_s, err) ||
                 time_layer(ctx, second, &in, first_s, &second_s, err);
        cpu_conv_timing_inputs_free(ctx, &in);
        if (rc) {
            first->destroy(first);
            second->destroy(second);
            return NULL;
        }
        chosen = second_s < first_s ? second : first;
        dt_layer *other = chosen == first ? second : first;
        other->destroy(other);
    }
    if (remember(ctx, d, chosen == first ? a : b, err)) {
        chosen->destroy(chosen);
        return NULL;
    }
    return chosen;
}

dt_layer *cpu_conv_create(void *opaque, const dt_conv_desc *d, dt_error *err) {
    cpu_ctx *ctx = opaque;
    /* by shape and channel block, never timed, so fp32 runs still repeat bit for bit */
    const cpu_per_tap per_tap = cpu_conv_per_tap_rule(ctx, d);
    const cpu_conv_variant direct = {dnnl_convolution_direct, 0, per_tap};
    const int winograd = ctx->precision == DT_PRECISION_WINOGRAD ||
                         ctx->precision == DT_PRECISION_TF32; /* the old name of winograd */
    if (per_tap == CPU_PER_TAP_ALL) return cpu_conv_create_variant(ctx, d, direct, err);
    if (ctx->deterministic) {
        /* runtime.deterministic: no timing, so that every run builds the same layers */
        if (winograd && d->kernel == 3 && d->stride == 1) {
            dt_error unused = {{0}, 0};
            dt_layer *layer = cpu_conv_create_variant(
                ctx, d, (cpu_conv_variant){dnnl_convolution_winograd, 0, 0}, &unused);
            if (layer) return layer;
        }
        if (ctx->precision == DT_PRECISION_BF16)
            return cpu_conv_create_variant(ctx, d,
                                           (cpu_conv_variant){dnnl_convolution_direct, 1, 0}, err);
        return cpu_conv_create_variant(ctx, d, direct, err);
    }
    if (winograd && d->kernel == 3 && d->stride == 1)
        return conv_create_faster(ctx, d, direct,
                                  (cpu_conv_variant){dnnl_convolution_winograd, 0, 0}, err);
    if (ctx->precision == DT_PRECISION_BF16 && !d->no_backward)
        /* the fp32 backward-weights first: it is never the one far slower */
        return conv_create_faster(ctx, d, (cpu_conv_variant){dnnl_convolution_direct, 1, 0}, direct,
                                  err);
    return cpu_conv_create_variant(ctx, d, direct, err);
}
