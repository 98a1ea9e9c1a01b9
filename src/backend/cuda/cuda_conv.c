/* Convolution layer of the CUDA backend: three cuDNN execution plans (forward, backward data,
 * backward filter) built once at creation (cudnn_conv.h), one shared workspace sized to the
 * largest plan, the weight copied from the flat OIHW fp32 parameters to cuDNN's KRSC filter (bf16
 * in bf16 mode) whenever the parameter version changed, and the KRSC filter gradient written or
 * added into the flat OIHW fp32 gradient. */
#include "cuda_internal.h"

#include <stdio.h>
#include <stdlib.h>

#include "cudnn_conv.h"

enum { CONV_PASSES = 3 };

typedef struct cuda_conv {
    dt_layer base;
    dt_conv_desc d;
    int out_height, out_width;
    dt_cudnn_conv_plan *plans[CONV_PASSES]; /* by dt_conv_pass */
    void *filter;                           /* KRSC, activation type */
    const float *filter_from;               /* the weight and version it was copied from */
    uint64_t filter_version;
    int have_filter;
} cuda_conv;

static void conv_destroy(cuda_ctx *ctx, dt_layer *layer) {
    cuda_conv *conv = (cuda_conv *)layer;
    dt_error ignored = {{0}, 0};
    cuda_wait_stream(ctx, ctx->compute, "freeing a layer", &ignored);
    for (int i = 0; i < CONV_PASSES; i++)
        if (conv->plans[i]) dt_cudnn_conv_plan_destroy(conv->plans[i]);
    cuda_device_free(ctx, conv->filter);
    free(conv);
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
    const char *verbose = getenv("DTRAIN_VERBOSE");
    const dt_cudnn_target target = {.handle = ctx->cudnn,
                                    .deviceprop = NULL,
                                    .workspace_limit = DT_CUDNN_WORKSPACE_LIMIT_DEFAULT,
                                    .verbose = verbose && *verbose && *verbose != '0'};
    const size_t filter_bytes = filter_count(d) * cuda_dtype_size(ctx->act);
    size_t workspace = 0;
    for (int pass = 0; pass < CONV_PASSES; pass++) {
        if (dt_cudnn_conv_plan_build(&target, d, ctx->precision, (dt_conv_pass)pass,
                                     &conv->plans[pass], err))
            goto fail;
        size_t need = dt_cudnn_conv_plan_workspace(conv->plans[pass]);
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
    return dt_cudnn_conv_plan_execute(ctx->cudnn, conv->plans[DT_CONV_FORWARD], x->data,
                                      conv->filter, y->data, ctx->workspace, 1.0f, 0.0f, err);
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
    if (weight_grad &&
        (dt_cudnn_conv_plan_execute(ctx->cudnn, conv->plans[DT_CONV_BACKWARD_FILTER], x->data,
                                    dy->data, ctx->scratch, ctx->workspace, 1.0f, 0.0f, err) ||
         cuda_launch_krsc_to_oihw(ctx->compute, ctx->scratch, ctx->act, weight_grad,
                                  d->out_channels, d->in_channels, d->kernel, d->kernel, accumulate,
                                  err)))
        return -1;
    if (!dx) return 0;
    if (conv_filter(ctx, conv, weight, err)) return -1;
    return dt_cudnn_conv_plan_execute(ctx->cudnn, conv->plans[DT_CONV_BACKWARD_DATA], dy->data,
                                      conv->filter, dx->data, ctx->workspace, 1.0f, 0.0f, err);
}
