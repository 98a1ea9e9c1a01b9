/* Convolution layer of the CUDA backend: the cuDNN execution plans of the passes it runs
 * (conv_plan_list.h: no backward-data plan for the first layer, no backward plan for a frozen
 * one), taken from the context's plan cache, which builds each (shape, pass) once and shares it
 * between layers of one shape; a variant pack per pass kept while the layer's pointers stay;
 * one shared workspace sized to the largest plan, the weight copied from the flat OIHW fp32
 * parameters to cuDNN's KRSC filter (bf16 in bf16 mode) whenever the parameter version changed, and
 * the KRSC filter gradient written or added into the flat OIHW fp32 gradient. */
#include "cuda_internal.h"

#include <stdio.h>
#include <stdlib.h>

#include "conv_plan_list.h"
#include "cudnn_conv.h"

enum { CONV_PASSES = 3 };

typedef struct cuda_conv {
    dt_layer base;
    dt_conv_desc d;
    int out_height, out_width;
    dt_cudnn_conv_plan *plans[CONV_PASSES]; /* by dt_conv_pass; NULL: a pass it never runs */
    dt_cudnn_conv_pack packs[CONV_PASSES];
    void *filter;             /* KRSC, activation type */
    const float *filter_from; /* the weight and version it was copied from */
    uint64_t filter_version;
    int have_filter;
} cuda_conv;

static void conv_destroy(cuda_ctx *ctx, dt_layer *layer) {
    cuda_conv *conv = (cuda_conv *)layer;
    dt_error ignored = {{0}, 0};
    cuda_wait_stream(ctx, ctx->compute, "freeing a layer", &ignored);
    for (int i = 0; i < CONV_PASSES; i++) {
        dt_cudnn_conv_pack_destroy(&conv->packs[i]);
        if (conv->plans[i]) cuda_plan_release(ctx, conv->plans[i]);
    }
    cuda_device_free(ctx, conv->filter);
    free(conv);
}

/* The cached plan of (shape, pass) at the context's precision, built on first use. */
static dt_cudnn_conv_plan *plan_acquire(cuda_ctx *ctx, const dt_conv_desc *d, dt_conv_pass pass,
                                        dt_error *err) {
    dt_conv_plan_key key = dt_conv_plan_key_of(d, pass);
    for (int i = 0; i < ctx->n_plans; i++)
        if (dt_conv_plan_key_equal(&ctx->plans[i].key, &key)) {
            ctx->plans[i].refs++;
            return ctx->plans[i].plan;
        }
    if (ctx->n_plans == ctx->plans_capacity) {
        int capacity = ctx->plans_capacity ? 2 * ctx->plans_capacity : 32;
        cuda_plan_entry *grown = realloc(ctx->plans, (size_t)capacity * sizeof *grown);
        if (!grown) {
            dt_fail(err, "out of memory for the plan cache");
            return NULL;
        }
        ctx->plans = grown;
        ctx->plans_capacity = capacity;
    }
    const char *verbose = getenv("DTRAIN_VERBOSE");
    const dt_cudnn_target target = {.handle = ctx->cudnn,
                                    .deviceprop = NULL,
                                    .workspace_limit = DT_CUDNN_WORKSPACE_LIMIT_DEFAULT,
                                    .verbose = verbose && *verbose && *verbose != '0',
                                    .deterministic = ctx->deterministic};
    dt_cudnn_conv_plan *plan = NULL;
    if (dt_cudnn_conv_plan_build(&target, d, ctx->precision, pass, &plan, err)) return NULL;
    ctx->plans[ctx->n_plans++] = (cuda_plan_entry){.key = key, .plan = plan, .refs = 1};
    return plan;
}

void cuda_plan_release(cuda_ctx *ctx, dt_cudnn_conv_plan *plan) {
    for (int i = 0; i < ctx->n_plans; i++)
        if (ctx->plans[i].plan == plan) {
            if (--ctx->plans[i].refs > 0) return;
            dt_cudnn_conv_plan_destroy(plan);
            ctx->plans[i] = ctx->plans[--ctx->n_plans];
            return;
        }
}

static size_t filter_count(const dt_conv_desc *d) {
    return (size_t)d->out_channels * d->in_channels * d->kernel * d->kernel;
}

dt_layer *cuda_conv_create(void *opaque, const dt_conv_desc *d, dt_error *err) {
    cuda_ctx *ctx = opaque;
    int out_height, out_width;
    if (dt_conv_desc_check(d, &out_height, &out_width, err)) return NULL;
    cuda_conv *conv = calloc(1, sizeof *conv);
    if (!conv) {
        dt_fail(err, "out of memory creating a convolution");
        return NULL;
    }
    conv->base.destroy = conv_destroy;
    conv->d = *d;
    conv->out_height = out_height;
    conv->out_width = out_width;
    if (d->batch > ctx->batch) ctx->batch = d->batch;
    const size_t filter_bytes = filter_count(d) * cuda_dtype_size(ctx->act);
    size_t workspace = 0;
    dt_conv_pass passes[CONV_PASSES];
    int n_passes = dt_conv_layer_passes(d, passes);
    for (int i = 0; i < n_passes; i++) {
        if (!(conv->plans[passes[i]] = plan_acquire(ctx, d, passes[i], err))) goto fail;
        size_t need = dt_cudnn_conv_plan_workspace(conv->plans[passes[i]]);
        if (need > workspace) workspace = need;
    }
    /* the filter gradient lands in the scratch (KRSC) before it is added into OIHW */
    if (cuda_reserve_workspace(ctx, workspace, err) ||
        cuda_reserve_scratch(ctx, filter_bytes, err) ||
        !(conv->filter = cuda_device_alloc(ctx, filter_bytes, "a convolution filter", err)))
        goto fail;
    return &conv->base;
fail:
    dt_error_prefix(err, "conv_create");
    conv_destroy(ctx, &conv->base);
    return NULL;
}

static int conv_expect(const cuda_conv *conv, const dt_tensor *x, const dt_tensor *y,
                       const char *op, const char *x_name, const char *y_name, dt_error *err) {
    const dt_conv_desc *d = &conv->d;
    if (cuda_tensor_expect(x, d->batch, d->in_channels, d->in_height, d->in_width, op, x_name, err))
        return -1;
    return cuda_tensor_expect(y, d->batch, d->out_channels, conv->out_height, conv->out_width, op,
                              y_name, err);
}

/* The KRSC filter of the current weights: copied again only when the parameters changed. */
static int conv_filter(cuda_ctx *ctx, cuda_conv *conv, const float *weight, dt_error *err) {
    if (conv->have_filter && conv->filter_from == weight &&
        conv->filter_version == ctx->param_version)
        return 0;
    const dt_conv_desc *d = &conv->d;
    if (cuda_launch_oihw_to_krsc(ctx->compute, weight, conv->filter, ctx->act, d->out_channels,
                                 d->in_channels, d->kernel, d->kernel, err))
        return -1;
    conv->have_filter = 1;
    conv->filter_from = weight;
    conv->filter_version = ctx->param_version;
    return 0;
}

int cuda_conv_forward(void *opaque, dt_layer *l, const float *weight, const dt_tensor *x,
                      dt_tensor *y, dt_error *err) {
    cuda_ctx *ctx = opaque;
    cuda_conv *conv = (cuda_conv *)l;
    if (conv_expect(conv, x, y, "conv_forward", "x", "y", err) ||
        conv_filter(ctx, conv, weight, err))
        return -1;
    return dt_cudnn_conv_plan_execute_cached(ctx->cudnn, conv->plans[DT_CONV_FORWARD],
                                             &conv->packs[DT_CONV_FORWARD], x->data, conv->filter,
                                             y->data, ctx->workspace, 1.0f, 0.0f, err);
}

int cuda_conv_backward(void *opaque, dt_layer *l, const float *weight, const dt_tensor *x,
                       const dt_tensor *dy, dt_tensor *dx, float *weight_grad, int accumulate,
                       dt_error *err) {
    cuda_ctx *ctx = opaque;
    cuda_conv *conv = (cuda_conv *)l;
    const dt_conv_desc *d = &conv->d;
    if (conv_expect(conv, x, dy, "conv_backward", "x", "dy", err) ||
        (dx && conv_expect(conv, dx, dy, "conv_backward", "dx", "dy", err)))
        return -1;
    if ((weight_grad && !conv->plans[DT_CONV_BACKWARD_FILTER]) ||
        (dx && !conv->plans[DT_CONV_BACKWARD_DATA]))
        return dt_fail(err,
                       "conv_backward: the layer was created without %s (no_backward / "
                       "no_input_grad)",
                       dx ? "its input gradient" : "backward");
    if (weight_grad &&
        (dt_cudnn_conv_plan_execute_cached(ctx->cudnn, conv->plans[DT_CONV_BACKWARD_FILTER],
                                           &conv->packs[DT_CONV_BACKWARD_FILTER], x->data, dy->data,
                                           ctx->scratch, ctx->workspace, 1.0f, 0.0f, err) ||
         cuda_launch_krsc_to_oihw(ctx->compute, ctx->scratch, ctx->act, weight_grad,
                                  d->out_channels, d->in_channels, d->kernel, d->kernel, accumulate,
                                  err)))
        return -1;
    if (!dx) return 0;
    if (conv_filter(ctx, conv, weight, err)) return -1;
    return dt_cudnn_conv_plan_execute_cached(
        ctx->cudnn, conv->plans[DT_CONV_BACKWARD_DATA], &conv->packs[DT_CONV_BACKWARD_DATA],
        dy->data, conv->filter, dx->data, ctx->workspace, 1.0f, 0.0f, err);
}
