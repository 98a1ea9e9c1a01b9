/* runtime.precision winograd on the CPU: each 3x3 stride-1 convolution runs oneDNN's Winograd
 * F(4x4, 3x3) only where it is faster on the CPU at hand. Whether it is depends on the CPU
 * (AVX-512 width, caches), the layer shape and the batch, so the layer is built both ways and one
 * forward + backward of each is timed (after a warm-up pass) on scratch tensors; the faster one
 * is kept and the choice is remembered for the shape, so a network times each shape once.
 * Winograd trades about ten times the rounding error of direct convolution for its speed; where
 * oneDNN has no Winograd kernel (AVX2, other shapes) the layer is direct. The choice follows the
 * timing, so two runs on a loaded machine may choose differently. */
#include "cpu_internal.h"

#include <stdlib.h>
#include <string.h>

#include "dtrain/platform.h"

struct cpu_algorithm_choice {
    dt_conv_desc desc;
    dnnl_alg_kind_t algorithm;
};

static int same_shape(const dt_conv_desc *a, const dt_conv_desc *b) {
    return a->batch == b->batch && a->in_channels == b->in_channels &&
           a->out_channels == b->out_channels && a->in_height == b->in_height &&
           a->in_width == b->in_width && a->kernel == b->kernel && a->stride == b->stride &&
           a->padding == b->padding;
}

/* Scratch tensors and buffers for one layer's timing, filled with small non-zero values. */
typedef struct timing_inputs {
    dt_tensor *x, *y, *dy, *dx;
    float *weight, *grad;
} timing_inputs;

static void timing_inputs_free(cpu_ctx *ctx, timing_inputs *in) {
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

static int timing_inputs_make(cpu_ctx *ctx, const dt_conv_desc *d, timing_inputs *in,
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

/* Seconds of one forward + backward of layer (the faster of two, after a warm-up). */
static int time_layer(cpu_ctx *ctx, dt_layer *layer, const timing_inputs *in, double *seconds,
                      dt_error *err) {
    *seconds = 1e30;
    for (int round = 0; round < 3; round++) {
        ctx->params_version++; /* the weights are reordered every time, as after an update */
        double start = dt_monotonic_seconds();
        if (cpu_conv_forward(ctx, layer, in->weight, in->x, in->y, err) ||
            cpu_conv_backward(ctx, layer, in->weight, in->x, in->dy, in->dx, in->grad, 0, err))
            return -1;
        double took = dt_monotonic_seconds() - start;
        if (round > 0 && took < *seconds) *seconds = took;
    }
    return 0;
}

static dnnl_alg_kind_t *remembered(cpu_ctx *ctx, const dt_conv_desc *d) {
    for (int i = 0; i < ctx->algorithm_choice_count; i++)
        if (same_shape(&ctx->algorithm_choices[i].desc, d))
            return &ctx->algorithm_choices[i].algorithm;
    return NULL;
}

static int remember(cpu_ctx *ctx, const dt_conv_desc *d, dnnl_alg_kind_t algorithm, dt_error *err) {
    struct cpu_algorithm_choice *grown =
        realloc(ctx->algorithm_choices,
                (size_t)(ctx->algorithm_choice_count + 1) * sizeof *ctx->algorithm_choices);
    if (!grown) return dt_fail(err, "out of memory for the convolution algorithm choices");
    ctx->algorithm_choices = grown;
    grown[ctx->algorithm_choice_count++] = (struct cpu_algorithm_choice){*d, algorithm};
    return 0;
}

dt_layer *cpu_winograd_conv_create(cpu_ctx *ctx, const dt_conv_desc *d, dt_error *err) {
    if (d->kernel != 3 || d->stride != 1)
        return cpu_conv_create_algorithm(ctx, d, dnnl_convolution_direct, err);
    const dnnl_alg_kind_t *known = remembered(ctx, d);
    if (known) return cpu_conv_create_algorithm(ctx, d, *known, err);

    dt_layer *direct = cpu_conv_create_algorithm(ctx, d, dnnl_convolution_direct, err);
    if (!direct) return NULL;
    dt_error unused = {{0}, 0};
    /* fails where oneDNN has no Winograd kernel for this ISA or shape: then direct it is */
    dt_layer *winograd = cpu_conv_create_algorithm(ctx, d, dnnl_convolution_winograd, &unused);
    dt_layer *chosen = direct;
    if (winograd) {
        timing_inputs in;
        double direct_s, winograd_s;
        if (timing_inputs_make(ctx, d, &in, err) || time_layer(ctx, direct, &in, &direct_s, err) ||
            time_layer(ctx, winograd, &in, &winograd_s, err)) {
            timing_inputs_free(ctx, &in);
            direct->destroy(direct);
            winograd->destroy(winograd);
            return NULL;
        }
        timing_inputs_free(ctx, &in);
        chosen = winograd_s < direct_s ? winograd : direct;
        (chosen == winograd ? direct : winograd)->destroy(chosen == winograd ? direct : winograd);
    }
    if (remember(ctx, d, chosen == direct ? dnnl_convolution_direct : dnnl_convolution_winograd,
                 err)) {
        chosen->destroy(chosen);
        return NULL;
    }
    return chosen;
}
