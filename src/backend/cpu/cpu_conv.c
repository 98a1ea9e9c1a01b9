/* Convolution layer of the CPU backend (no bias): oneDNN forward, backward-data and
 * backward-weights primitives created once per layer for the activations' layouts, with the
 * weights in oneDNN's preferred format. The caller's weights (OIHW, or with own_weight_layout at
 * fp32 the forward's format where it has OIHW's size, or tap-major for the per-tap layers) are
 * reordered where a primitive wants another format, when the buffer or the backend's parameter
 * version changed since the last reorder; the result is reused by the backward of the same step
 * and by forwards without an update in between (evaluation). Weight gradients are computed in
 * the preferred format and reordered into the caller's layout where it differs (into the
 * backend's gradient scratch, then added, when accumulating). Keeping the weights in the
 * primitives' own format spares the reorders of every step, a few percent of a step over small
 * images; the model converts at its edges (uploads, downloads, files).
 * Algorithm: direct convolution; precision winograd takes Winograd F(4x4, 3x3) for the layers
 * where it measured faster at creation (cpu_conv_choice.c). Layers over the smallest maps are
 * instead one matrix product per kernel tap (cpu_conv_gemm.c), and those over slightly larger
 * ones take their backward-weights that way (cpu_conv_variant.per_tap).
 * bf16 (CPUs with AVX512-BF16 or AMX, as PyTorch's CPU autocast): x, dy and the weights are
 * converted to bf16 in the layouts the bf16 primitives choose (format "any"); outputs, weight
 * gradients and accumulation stay fp32, so the activations, the master weights, batch norm, the
 * loss and SGD are fp32. The bf16 copy of x made by the forward serves the backward of the same
 * step (the saved-tensor contract of conv_backward). oneDNN 2.6's bf16 backward-weights kernel
 * is many times slower than its fp32 one on some shapes (small feature maps, some stride-2
 * layers), so the variant with an fp32 backward-weights is measured against it at creation. */
#include "cpu_internal.h"

#include "dtrain/bytes.h"

#include <stdlib.h>
#include <string.h>

/* Weights in one primitive's format: either the user's OIHW buffer itself (same format) or a
 * private buffer filled by a reorder. */
typedef struct conv_weights {
    int reordered;         /* 0: the primitive reads/writes the OIHW buffer directly */
    float *buffer;         /* private copy when reordered */
    dnnl_memory_t memory;  /* what the primitive gets */
    cpu_primitive reorder; /* OIHW -> format (or format -> OIHW for gradients) */
} conv_weights;

/* An activation in another layout for one primitive: a private buffer filled by a reorder. */
typedef struct conv_activation_copy {
    float *buffer; /* NULL: the primitive takes the activation as it is */
    dnnl_memory_t memory;
    cpu_primitive reorder;
} conv_activation_copy;

typedef struct cpu_conv {
    dt_layer base;
    cpu_ctx *ctx;
    dt_conv_desc d;
    int out_height, out_width;
    dnnl_memory_desc_t oihw_md;
    dnnl_memory_desc_t user_md; /* the caller's weight layout: oihw_md or the layer's own */
    dnnl_memory_t user_weights; /* view of the caller's weights, handle set per call */
    dnnl_memory_t user_grad;    /* view of the caller's gradient, handle set per call */
    cpu_primitive forward, backward_data, backward_weights;
    conv_weights forward_weights, data_weights, grad_weights;
    int data_weights_share_forward; /* backward-data wants the forward format */
    /* backward-weights' own layouts of x and dy, where the blocked ones have no fast kernel
     * (fp32), or their bf16 copies (bf16) */
    conv_activation_copy weights_src, weights_diff_dst;
    /* bf16 only: x for the forward and dy for backward-data, in bf16; backward-weights reuses
     * them when it wants the same layouts (the *_share flags) */
    conv_activation_copy forward_src, data_diff_dst;
    int weights_src_share_forward, weights_diff_dst_share_data;
    const float *forward_src_of; /* x->data whose bf16 copy forward_src holds (NULL: none) */
    /* the OIHW pointer and parameter version whose reorder forward_weights holds (NULL: none) */
    const float *forward_weights_source;
    uint64_t forward_weights_version;
    /* per-tap matrix products: the whole layer, no primitives (CPU_PER_TAP_ALL), or its
     * backward-weights with the forward and backward-data primitives (CPU_PER_TAP_WEIGHTS) */
    cpu_conv_gemm *gemm;
    cpu_per_tap per_tap;
} cpu_conv;

static void conv_weights_free(conv_weights *w) {
    cpu_primitive_destroy(&w->reorder);
    if (w->memory) dnnl_memory_destroy(w->memory);
    cpu_aligned_free(w->buffer);
}

static void conv_activation_copy_free(conv_activation_copy *c) {
    cpu_primitive_destroy(&c->reorder);
    if (c->memory) dnnl_memory_destroy(c->memory);
    cpu_aligned_free(c->buffer);
}

/* Prepares a copy of an activation of layout from in layout to (nothing when they are equal). */
static int conv_activation_copy_init(cpu_conv *conv, conv_activation_copy *c,
                                     const dnnl_memory_desc_t *from, const dnnl_memory_desc_t *to,
                                     dt_error *err) {
    if (dnnl_memory_desc_equal(from, to)) return 0;
    c->buffer = cpu_aligned_alloc(dnnl_memory_desc_get_size(to), 1);
    if (!c->buffer) return dt_fail(err, "out of memory for a convolution activation copy");
    return cpu_memory_create(conv->ctx, to, c->buffer, &c->memory, err) ||
                   cpu_reorder_create(conv->ctx, from, to, &c->reorder, err,
                                      "creating an activation reorder")
               ? -1
               : 0;
}

/* The memory to hand the primitive: the activation itself or its reordered copy. */
static int conv_activation_for(cpu_conv *conv, conv_activation_copy *c, dnnl_memory_t activation,
                               dnnl_memory_t *out, dt_error *err) {
    *out = activation;
    if (!c->buffer) return 0;
    dnnl_exec_arg_t args[] = {{DNNL_ARG_FROM, activation}, {DNNL_ARG_TO, c->memory}};
    if (cpu_primitive_execute(conv->ctx, &c->reorder, 2, args, err, "reordering an activation"))
        return -1;
    *out = c->memory;
    return 0;
}

/* oneDNN 2.6 has no AVX2 kernel for some backward-weights shapes in blocked layouts (3x3 over
 * 1x1 or 2x2 inputs, the last stage at small image sizes) and falls back to its reference code,
 * hundreds of times slower. Then x and dy go in the layouts oneDNN prefers for that primitive. */
static int conv_weights_pd_fast(cpu_conv *conv, const dnnl_convolution_desc_t *blocked,
                                const dnnl_memory_desc_t *weights_md,
                                const_dnnl_primitive_desc_t hint, dnnl_primitive_desc_t *pd,
                                dt_error *err) {
    const char *impl = NULL;
    if (dnnl_primitive_desc_query(*pd, dnnl_query_impl_info_str, 0, &impl) != dnnl_success ||
        !impl || strncmp(impl, "ref", 3) != 0)
        return 0;
    dnnl_memory_desc_t any_src = blocked->src_desc, any_dst = blocked->diff_dst_desc;
    dnnl_convolution_desc_t desc;
    dnnl_primitive_desc_t other = NULL;
    if (cpu_check(dnnl_memory_desc_init_by_tag(&any_src, 4, blocked->src_desc.dims, dnnl_f32,
                                               dnnl_format_tag_any),
                  err, "describing convolution activations") ||
        cpu_check(dnnl_memory_desc_init_by_tag(&any_dst, 4, blocked->diff_dst_desc.dims, dnnl_f32,
                                               dnnl_format_tag_any),
                  err, "describing convolution activations") ||
        cpu_check(dnnl_convolution_backward_weights_desc_init(
                      &desc, blocked->alg_kind, &any_src, weights_md, NULL, &any_dst,
                      blocked->strides, blocked->padding[0], blocked->padding[1]),
                  err, "describing the convolution backward-weights") ||
        cpu_primitive_desc_create(conv->ctx, &desc, hint, &other, err,
                                  "convolution backward-weights"))
        return -1;
    const char *other_impl = NULL;
    if (dnnl_primitive_desc_query(other, dnnl_query_impl_info_str, 0, &other_impl) !=
            dnnl_success ||
        !other_impl || strncmp(other_impl, "ref", 3) == 0) {
        dnnl_primitive_desc_destroy(other);
        return 0;
    }
    const dnnl_memory_desc_t *src_md = dnnl_primitive_desc_query_md(other, dnnl_query_src_md, 0);
    const dnnl_memory_desc_t *dst_md =
        dnnl_primitive_desc_query_md(other, dnnl_query_diff_dst_md, 0);
    if (conv_activation_copy_init(conv, &conv->weights_src, &blocked->src_desc, src_md, err) ||
        conv_activation_copy_init(conv, &conv->weights_diff_dst, &blocked->diff_dst_desc, dst_md,
                                  err)) {
        dnnl_primitive_desc_destroy(other);
        return -1;
    }
    dnnl_primitive_desc_destroy(*pd);
    *pd = other;
    return 0;
}

static void conv_destroy(dt_layer *layer) {
    cpu_conv *conv = (cpu_conv *)layer;
    cpu_conv_gemm_destroy(conv->gemm);
    conv_activation_copy_free(&conv->weights_src);
    conv_activation_copy_free(&conv->weights_diff_dst);
    conv_activation_copy_free(&conv->forward_src);
    conv_activation_copy_free(&conv->data_diff_dst);
    cpu_primitive_destroy(&conv->forward);
    cpu_primitive_destroy(&conv->backward_data);
    cpu_primitive_destroy(&conv->backward_weights);
    conv_weights_free(&conv->forward_weights);
    conv_weights_free(&conv->data_weights);
    conv_weights_free(&conv->grad_weights);
    if (conv->user_weights) dnnl_memory_destroy(conv->user_weights);
    if (conv->user_grad) dnnl_memory_destroy(conv->user_grad);
    free(conv);
}

/* Sets up w for a primitive whose weights format is md. to_user: gradients (format -> the
 * caller's layout). */
static int conv_weights_init(cpu_conv *conv, conv_weights *w, const dnnl_memory_desc_t *md,
                             int to_user, dt_error *err) {
    if (dnnl_memory_desc_equal(md, &conv->user_md))
        return cpu_memory_create(conv->ctx, md, NULL, &w->memory, err);
    w->reordered = 1;
    w->buffer = cpu_aligned_alloc(dnnl_memory_desc_get_size(md), 1);
    if (!w->buffer) return dt_fail(err, "out of memory for convolution weights");
    if (cpu_memory_create(conv->ctx, md, w->buffer, &w->memory, err) != 0) return -1;
    return to_user ? cpu_reorder_create(conv->ctx, md, &conv->user_md, &w->reorder, err,
                                        "creating the weight-gradient reorder")
                   : cpu_reorder_create(conv->ctx, &conv->user_md, md, &w->reorder, err,
                                        "creating the weight reorder");
}

/* bf16: the copies of x and dy in the layouts the primitives chose, shared between the forward
 * and backward-weights, and between backward-data and backward-weights, where they agree. */
static int conv_bf16_copies(cpu_conv *conv, const dnnl_memory_desc_t *src_md,
                            const dnnl_memory_desc_t *dst_md,
                            const_dnnl_primitive_desc_t forward_pd,
                            const_dnnl_primitive_desc_t data_pd,
                            const_dnnl_primitive_desc_t weights_pd, dt_error *err) {
    const dnnl_memory_desc_t *forward_src =
        dnnl_primitive_desc_query_md(forward_pd, dnnl_query_src_md, 0);
    const dnnl_memory_desc_t *data_dy =
        dnnl_primitive_desc_query_md(data_pd, dnnl_query_diff_dst_md, 0);
    const dnnl_memory_desc_t *weights_src =
        dnnl_primitive_desc_query_md(weights_pd, dnnl_query_src_md, 0);
    const dnnl_memory_desc_t *weights_dy =
        dnnl_primitive_desc_query_md(weights_pd, dnnl_query_diff_dst_md, 0);
    conv->weights_src_share_forward = dnnl_memory_desc_equal(weights_src, forward_src);
    conv->weights_diff_dst_share_data = dnnl_memory_desc_equal(weights_dy, data_dy);
    return conv_activation_copy_init(conv, &conv->forward_src, src_md, forward_src, err) ||
                   conv_activation_copy_init(conv, &conv->data_diff_dst, dst_md, data_dy, err) ||
                   (!conv->weights_src_share_forward &&
                    conv_activation_copy_init(conv, &conv->weights_src, src_md, weights_src,
                                              err)) ||
                   (!conv->weights_diff_dst_share_data &&
                    conv_activation_copy_init(conv, &conv->weights_diff_dst, dst_md, weights_dy,
                                              err))
               ? -1
               : 0;
}

/* Creates the three primitives for the layouts of x (in) and y (out) in variant v. */
static int conv_build(cpu_conv *conv, cpu_conv_variant v, dt_error *err) {
    const dt_conv_desc *d = &conv->d;
    const dnnl_alg_kind_t algorithm = v.algorithm;
    const int bf16 = conv->ctx->precision == DT_PRECISION_BF16;
    /* bf16: what the primitives read (x, dy, weights) is bf16 in a layout of their choice */
    const dnnl_data_type_t input_type = bf16 ? dnnl_bf16 : dnnl_f32;
    dnnl_memory_desc_t src_md, dst_md, any_weights_md, any_grad_md, in_md, dy_md;
    const dnnl_dims_t weight_dims = {d->out_channels, d->in_channels, d->kernel, d->kernel};
    const dnnl_dims_t strides = {d->stride, d->stride};
    const dnnl_dims_t padding = {d->padding, d->padding};
    if (cpu_activation_md(conv->ctx, &src_md, d->batch, d->in_channels, d->in_height, d->in_width,
                          err) ||
        cpu_activation_md(conv->ctx, &dst_md, d->batch, d->out_channels, conv->out_height,
                          conv->out_width, err) ||
        cpu_check(dnnl_memory_desc_init_by_tag(&any_weights_md, 4, weight_dims, input_type,
                                               dnnl_format_tag_any),
                  err, "describing convolution weights") ||
        cpu_check(dnnl_memory_desc_init_by_tag(&any_grad_md, 4, weight_dims, dnnl_f32,
                                               dnnl_format_tag_any),
                  err, "describing convolution weights"))
        return -1;
    in_md = src_md;
    dy_md = dst_md;
    if (bf16 && (cpu_check(dnnl_memory_desc_init_by_tag(&in_md, 4, src_md.dims, dnnl_bf16,
                                                        dnnl_format_tag_any),
                           err, "describing convolution activations") ||
                 cpu_check(dnnl_memory_desc_init_by_tag(&dy_md, 4, dst_md.dims, dnnl_bf16,
                                                        dnnl_format_tag_any),
                           err, "describing convolution activations")))
        return -1;

    /* per-tap backward-weights: no primitive for it */
    const int weights_primitive = v.per_tap == CPU_PER_TAP_NONE;
    dnnl_convolution_desc_t forward_desc, data_desc, weights_desc;
    if (cpu_check(dnnl_convolution_forward_desc_init(&forward_desc, dnnl_forward_training,
                                                     algorithm, &in_md, &any_weights_md, NULL,
                                                     &dst_md, strides, padding, padding),
                  err, "describing the convolution forward") ||
        cpu_check(dnnl_convolution_backward_data_desc_init(&data_desc, algorithm, &src_md,
                                                           &any_weights_md, &dy_md, strides,
                                                           padding, padding),
                  err, "describing the convolution backward-data") ||
        (weights_primitive &&
         cpu_check(dnnl_convolution_backward_weights_desc_init(
                       &weights_desc, algorithm, v.weights_grad_fp32 ? &src_md : &in_md,
                       &any_grad_md, NULL, v.weights_grad_fp32 ? &dst_md : &dy_md, strides, padding,
                       padding),
                   err, "describing the convolution backward-weights")))
        return -1;

    dnnl_primitive_desc_t forward_pd = NULL, data_pd = NULL, weights_pd = NULL;
    int rc = -1;
    if (cpu_primitive_desc_create(conv->ctx, &forward_desc, NULL, &forward_pd, err,
                                  "convolution forward") ||
        cpu_primitive_desc_create(conv->ctx, &data_desc, forward_pd, &data_pd, err,
                                  "convolution backward-data") ||
        (weights_primitive &&
         (cpu_primitive_desc_create(conv->ctx, &weights_desc, forward_pd, &weights_pd, err,
                                    "convolution backward-weights") ||
          /* (no AVX2 reference fallback to avoid with bf16: it needs AVX512-BF16 or AMX) */
          (bf16 ? conv_bf16_copies(conv, &src_md, &dst_md, forward_pd, data_pd, weights_pd, err)
                : conv_weights_pd_fast(conv, &weights_desc, &any_weights_md, forward_pd,
                                       &weights_pd, err)))))
        goto done;
    const dnnl_memory_desc_t *forward_md =
        dnnl_primitive_desc_query_md(forward_pd, dnnl_query_weights_md, 0);
    const dnnl_memory_desc_t *data_md =
        dnnl_primitive_desc_query_md(data_pd, dnnl_query_weights_md, 0);
    const dnnl_memory_desc_t *grad_md =
        weights_pd ? dnnl_primitive_desc_query_md(weights_pd, dnnl_query_diff_weights_md, 0) : NULL;
    conv->data_weights_share_forward = dnnl_memory_desc_equal(forward_md, data_md);
    /* the layer's own layout: the forward's, where it is a permutation of OIHW (fp32 only: a
     * bf16 forward reads bf16 weights, and winograd's measured choice may differ by rank) */
    if (conv->d.own_weight_layout && conv->ctx->precision == DT_PRECISION_FP32 &&
        forward_md->format_kind == dnnl_blocked &&
        dnnl_memory_desc_get_size(forward_md) == dnnl_memory_desc_get_size(&conv->oihw_md))
        conv->user_md = *forward_md;
    if (cpu_primitive_create(conv->ctx, forward_pd, &conv->forward, err, "convolution forward") ||
        cpu_primitive_create(conv->ctx, data_pd, &conv->backward_data, err,
                             "convolution backward-data") ||
        (weights_pd && cpu_primitive_create(conv->ctx, weights_pd, &conv->backward_weights, err,
                                            "convolution backward-weights")) ||
        conv_weights_init(conv, &conv->forward_weights, forward_md, 0, err) ||
        (!conv->data_weights_share_forward &&
         conv_weights_init(conv, &conv->data_weights, data_md, 0, err)) ||
        (grad_md && conv_weights_init(conv, &conv->grad_weights, grad_md, 1, err)) ||
        cpu_memory_create(conv->ctx, &conv->user_md, NULL, &conv->user_weights, err) ||
        cpu_memory_create(conv->ctx, &conv->user_md, NULL, &conv->user_grad, err))
        goto done;
    rc = 0;
done:
    if (forward_pd) dnnl_primitive_desc_destroy(forward_pd);
    if (data_pd) dnnl_primitive_desc_destroy(data_pd);
    if (weights_pd) dnnl_primitive_desc_destroy(weights_pd);
    return rc;
}

dt_layer *cpu_conv_create_variant(cpu_ctx *ctx, const dt_conv_desc *d, cpu_conv_variant variant,
                                  dt_error *err) {
    int out_height, out_width;
    if (dt_conv_desc_check(d, &out_height, &out_width, err)) return NULL;
    cpu_conv *conv = calloc(1, sizeof *conv);
    if (!conv) {
        dt_fail(err, "out of memory creating a convolution");
        return NULL;
    }
    conv->base = (dt_layer){conv_destroy};
    conv->ctx = ctx;
    conv->d = *d;
    conv->out_height = out_height;
    conv->out_width = out_width;
    size_t weight_count = (size_t)d->out_channels * d->in_channels * d->kernel * d->kernel;
    conv->per_tap = variant.per_tap;
    const dnnl_dims_t weight_dims = {d->out_channels, d->in_channels, d->kernel, d->kernel};
    int rc =
        cpu_check(dnnl_memory_desc_init_by_tag(&conv->oihw_md, 4, weight_dims, dnnl_f32, dnnl_oihw),
                  err, "describing convolution weights");
    conv->user_md = conv->oihw_md;
    /* all passes per tap: the own layout is the products' tap-major one */
    if (!rc && variant.per_tap == CPU_PER_TAP_ALL && d->own_weight_layout &&
        ctx->precision == DT_PRECISION_FP32)
        rc = cpu_conv_taps_md(&conv->user_md, d, err);
    if (!rc && variant.per_tap != CPU_PER_TAP_ALL) rc = conv_build(conv, variant, err);
    if (!rc && variant.per_tap != CPU_PER_TAP_NONE && ctx->precision == DT_PRECISION_BF16)
        rc = dt_fail(err, "per-tap matrix products are fp32 only");
    else if (!rc && variant.per_tap != CPU_PER_TAP_NONE &&
             !(conv->gemm = cpu_conv_gemm_create(ctx, d, out_height, out_width, variant.per_tap,
                                                 &conv->user_md, err)))
        rc = -1;
    if (rc || cpu_grad_scratch_reserve(ctx, weight_count, err) != 0) {
        dt_error_prefix(err, "conv_create (%d->%d, kernel %d, stride %d, %dx%d)", d->in_channels,
                        d->out_channels, d->kernel, d->stride, d->in_height, d->in_width);
        conv_destroy(&conv->base);
        return NULL;
    }
    return &conv->base;
}

static int conv_expect_x(const cpu_conv *conv, const dt_tensor *x, const char *op, dt_error *err) {
    const dt_conv_desc *d = &conv->d;
    return cpu_tensor_expect(x, d->batch, d->in_channels, d->in_height, d->in_width, op, "x", err);
}

static int conv_expect_y(const cpu_conv *conv, const dt_tensor *y, const char *op, const char *name,
                         dt_error *err) {
    const dt_conv_desc *d = &conv->d;
    return cpu_tensor_expect(y, d->batch, d->out_channels, conv->out_height, conv->out_width, op,
                             name, err);
}

/* Brings weights (OIHW) into w's format; the primitive then reads w->memory. */
static int conv_weights_load(cpu_conv *conv, conv_weights *w, const float *weight, dt_error *err) {
    if (!w->reordered) return cpu_memory_point(w->memory, weight, err);
    if (cpu_memory_point(conv->user_weights, weight, err) != 0) return -1;
    dnnl_exec_arg_t args[] = {{DNNL_ARG_FROM, conv->user_weights}, {DNNL_ARG_TO, w->memory}};
    return cpu_primitive_execute(conv->ctx, &w->reorder, 2, args, err, "reordering weights");
}

/* forward_weights up to date for weight at the current parameter version. */
static int conv_forward_weights(cpu_conv *conv, const float *weight, dt_error *err) {
    uint64_t version = conv->ctx->params_version;
    if (conv->forward_weights_source == weight && conv->forward_weights_version == version)
        return 0;
    conv->forward_weights_source = NULL;
    if (conv_weights_load(conv, &conv->forward_weights, weight, err) != 0) return -1;
    conv->forward_weights_source = weight;
    conv->forward_weights_version = version;
    return 0;
}

int cpu_conv_forward(void *ctx, dt_layer *l, const float *weight, const dt_tensor *x, dt_tensor *y,
                     dt_error *err) {
    cpu_conv *conv = (cpu_conv *)l;
    (void)ctx;
    if (conv_expect_x(conv, x, "conv_forward", err) ||
        conv_expect_y(conv, y, "conv_forward", "y", err))
        return -1;
    if (conv->per_tap == CPU_PER_TAP_ALL)
        return cpu_conv_gemm_forward(conv->gemm, weight, x, y, err);
    if (conv_forward_weights(conv, weight, err) != 0) return -1;
    dnnl_memory_t src;
    conv->forward_src_of = NULL;
    if (conv_activation_for(conv, &conv->forward_src, x->memory, &src, err) != 0) return -1;
    conv->forward_src_of = x->data;
    dnnl_exec_arg_t args[] = {{DNNL_ARG_SRC, src},
                              {DNNL_ARG_WEIGHTS, conv->forward_weights.memory},
                              {DNNL_ARG_DST, y->memory}};
    return cpu_primitive_execute(conv->ctx, &conv->forward, 3, args, err, "convolution forward");
}

/* Weights for backward-data: the forward's reorder when it was made from the same buffer at
 * the same parameter version, else a new one. */
static int conv_data_weights(cpu_conv *conv, const float *weight, dnnl_memory_t *out,
                             dt_error *err) {
    if (conv->data_weights_share_forward) {
        if (conv_forward_weights(conv, weight, err) != 0) return -1;
        *out = conv->forward_weights.memory;
        return 0;
    }
    if (conv_weights_load(conv, &conv->data_weights, weight, err) != 0) return -1;
    *out = conv->data_weights.memory;
    return 0;
}

int cpu_conv_backward(void *ctx, dt_layer *l, const float *weight, const dt_tensor *x,
                      const dt_tensor *dy, dt_tensor *dx, float *weight_grad, int accumulate,
                      dt_error *err) {
    cpu_conv *conv = (cpu_conv *)l;
    (void)ctx;
    const dt_conv_desc *d = &conv->d;
    const size_t weight_count = (size_t)d->out_channels * d->in_channels * d->kernel * d->kernel;
    if (conv_expect_x(conv, x, "conv_backward", err) ||
        conv_expect_y(conv, dy, "conv_backward", "dy", err) ||
        (dx && conv_expect_x(conv, dx, "conv_backward", err)))
        return -1;
    if (conv->per_tap == CPU_PER_TAP_ALL)
        return cpu_conv_gemm_backward(conv->gemm, weight, x, dy, dx, weight_grad, accumulate, err);
    if (conv->per_tap == CPU_PER_TAP_WEIGHTS && weight_grad) {
        if (cpu_conv_gemm_backward(conv->gemm, weight, x, dy, NULL, weight_grad, accumulate, err))
            return -1;
        weight_grad = NULL; /* done; dx below by the primitive */
    }
    /* bf16: dy once for backward-data and, when it wants the same layout, backward-weights */
    dnnl_memory_t data_dy = dy->memory;
    if ((dx || conv->weights_diff_dst_share_data) &&
        conv_activation_for(conv, &conv->data_diff_dst, dy->memory, &data_dy, err) != 0)
        return -1;
    if (weight_grad) {
        conv_weights *g = &conv->grad_weights;
        float *target = accumulate ? conv->ctx->grad_scratch : weight_grad;
        if (cpu_memory_point(g->reordered ? conv->user_grad : g->memory, target, err) != 0)
            return -1;
        dnnl_memory_t src, diff_dst = data_dy;
        if (conv->weights_src_share_forward && conv->forward_src_of == x->data)
            src = conv->forward_src.memory; /* the forward's bf16 x (saved tensor) */
        else if (conv_activation_for(conv,
                                     conv->weights_src_share_forward ? &conv->forward_src
                                                                     : &conv->weights_src,
                                     x->memory, &src, err) != 0)
            return -1;
        if (!conv->weights_diff_dst_share_data &&
            conv_activation_for(conv, &conv->weights_diff_dst, dy->memory, &diff_dst, err) != 0)
            return -1;
        dnnl_exec_arg_t args[] = {
            {DNNL_ARG_SRC, src}, {DNNL_ARG_DIFF_DST, diff_dst}, {DNNL_ARG_DIFF_WEIGHTS, g->memory}};
        if (cpu_primitive_execute(conv->ctx, &conv->backward_weights, 3, args, err,
                                  "convolution backward-weights") != 0)
            return -1;
        if (g->reordered) {
            dnnl_exec_arg_t to_user[] = {{DNNL_ARG_FROM, g->memory},
                                         {DNNL_ARG_TO, conv->user_grad}};
            if (cpu_primitive_execute(conv->ctx, &g->reorder, 2, to_user, err,
                                      "reordering the weight gradient") != 0)
                return -1;
        }
        if (accumulate) cpu_add_floats(weight_grad, target, weight_count);
    }
    if (dx) {
        dnnl_memory_t weights_memory;
        if (conv_data_weights(conv, weight, &weights_memory, err) != 0) return -1;
        dnnl_exec_arg_t args[] = {{DNNL_ARG_DIFF_DST, data_dy},
                                  {DNNL_ARG_WEIGHTS, weights_memory},
                                  {DNNL_ARG_DIFF_SRC, dx->memory}};
        if (cpu_primitive_execute(conv->ctx, &conv->backward_data, 3, args, err,
                                  "convolution backward-data") != 0)
            return -1;
    }
    return 0;
}

/* 0 for OIHW, else FNV-1a over the layout's description (dimensions, blocking), never 0: equal
 * for equal layouts in any process with this oneDNN. */
uint64_t cpu_conv_weight_layout(void *ctx, const dt_layer *l) {
    (void)ctx;
    const cpu_conv *conv = (const cpu_conv *)l;
    const dnnl_memory_desc_t *md = &conv->user_md;
    if (dnnl_memory_desc_equal(md, &conv->oihw_md)) return 0;
    const dnnl_blocking_desc_t *blk = &md->format_desc.blocking;
    int64_t fields[4 + 5 * DNNL_MAX_NDIMS] = {md->ndims, md->format_kind, md->data_type,
                                              blk->inner_nblks};
    size_t n = 4;
    for (int i = 0; i < md->ndims; i++) {
        fields[n++] = md->dims[i];
        fields[n++] = md->padded_dims[i];
        fields[n++] = blk->strides[i];
    }
    for (int i = 0; i < blk->inner_nblks; i++) {
        fields[n++] = blk->inner_blks[i];
        fields[n++] = blk->inner_idxs[i];
    }
    const uint64_t hash = dt_fnv1a64(DT_FNV1A64_INIT, fields, n * sizeof *fields);
    return hash ? hash : 1;
}

/* One reorder made for the call: conversions happen at loads, saves and checkpoints, not in
 * steps. */
int cpu_conv_weights_convert(void *ctx, dt_layer *l, float *dst, const float *src, int to_layer,
                             dt_error *err) {
    cpu_conv *conv = (cpu_conv *)l;
    (void)ctx;
    const dnnl_memory_desc_t *from = to_layer ? &conv->oihw_md : &conv->user_md;
    const dnnl_memory_desc_t *to = to_layer ? &conv->user_md : &conv->oihw_md;
    cpu_primitive reorder = {0};
    dnnl_memory_t from_memory = NULL, to_memory = NULL;
    int rc = cpu_memory_create(conv->ctx, from, (void *)src, &from_memory, err) ||
                     cpu_memory_create(conv->ctx, to, dst, &to_memory, err) ||
                     cpu_reorder_create(conv->ctx, from, to, &reorder, err,
                                        "creating a weight layout conversion")
                 ? -1
                 : 0;
    if (!rc) {
        dnnl_exec_arg_t args[] = {{DNNL_ARG_FROM, from_memory}, {DNNL_ARG_TO, to_memory}};
        rc = cpu_primitive_execute(conv->ctx, &reorder, 2, args, err, "converting a weight layout");
    }
    cpu_primitive_destroy(&reorder);
    if (from_memory) dnnl_memory_destroy(from_memory);
    if (to_memory) dnnl_memory_destroy(to_memory);
    return rc;
}
