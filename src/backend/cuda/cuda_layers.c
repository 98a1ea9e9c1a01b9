/* Layers of the CUDA backend other than the convolution: batch norm (own kernels: batch
 * statistics in double, torch's running statistics, fused ReLU, backward with the accumulate
 * flag), max pool (argmax kept for the backward), the linear layer through cuBLAS (fp32 without
 * TF32, TF32, or bf16 inputs with fp32 accumulation) and softmax cross-entropy with the loss
 * statistics kept on the device. Per-layer device memory is allocated at creation. */
#include "cuda_internal.h"

#include <stdlib.h>
#include <string.h>

/* ---- batch norm -------------------------------------------------------------------------------
 */

typedef struct cuda_batchnorm {
    dt_layer base;
    dt_batchnorm_desc d;
    /* device, per channel: [0,C) saved mean, [C,2C) saved inv_std, [2C,4C) backward sums,
     * [4C,5C) inference mean, [5C,6C) inference inv_std */
    float *channel;
    int trained;
} cuda_batchnorm;

static void batchnorm_destroy(cuda_ctx *ctx, dt_layer *layer) {
    cuda_batchnorm *bn = (cuda_batchnorm *)layer;
    dt_error ignored = {{0}, 0};
    cuda_wait_stream(ctx, ctx->compute, "freeing a layer", &ignored);
    cuda_device_free(ctx, bn->channel);
    free(bn);
}

dt_layer *cuda_batchnorm_create(void *opaque, const dt_batchnorm_desc *d, dt_error *err) {
    cuda_ctx *ctx = opaque;
    if (dt_batchnorm_desc_check(d, err)) return NULL;
    cuda_batchnorm *bn = calloc(1, sizeof *bn);
    if (!bn) {
        dt_fail(err, "out of memory creating a batchnorm");
        return NULL;
    }
    bn->base.destroy = batchnorm_destroy;
    bn->d = *d;
    if (d->batch > ctx->batch) ctx->batch = d->batch;
    const size_t rows = (size_t)d->batch * d->height * d->width;
    if (!(bn->channel = cuda_device_alloc(ctx, (size_t)d->channels * 6 * sizeof(float),
                                          "batchnorm statistics", err)) ||
        cuda_reserve_scratch(ctx, cuda_bn_scratch(rows, d->channels), err)) {
        dt_error_prefix(err, "batchnorm_create (%dx%dx%dx%d)", d->batch, d->channels, d->height,
                        d->width);
        batchnorm_destroy(ctx, &bn->base);
        return NULL;
    }
    return &bn->base;
}

static int batchnorm_expect(const cuda_batchnorm *bn, const dt_tensor *t, const char *op,
                            const char *name, dt_error *err) {
    const dt_batchnorm_desc *d = &bn->d;
    return cuda_tensor_expect(t, d->batch, d->channels, d->height, d->width, op, name, err);
}

int cuda_batchnorm_forward(void *opaque, dt_layer *l, const float *gamma, const float *beta,
                           float *running_mean, float *running_var, int training,
                           const dt_tensor *x, dt_tensor *y, dt_error *err) {
    cuda_ctx *ctx = opaque;
    cuda_batchnorm *bn = (cuda_batchnorm *)l;
    const dt_batchnorm_desc *d = &bn->d;
    if (batchnorm_expect(bn, x, "batchnorm_forward", "x", err) ||
        batchnorm_expect(bn, y, "batchnorm_forward", "y", err))
        return -1;
    const size_t rows = (size_t)d->batch * d->height * d->width;
    const int C = d->channels;
    if (!training) {
        if (!running_mean || !running_var)
            return dt_fail(err, "batchnorm_forward: inference needs the running statistics");
        return cuda_launch_bn_forward_inference(
            ctx->compute, x->data, y->data, x->dtype, rows, C, gamma, beta, running_mean,
            running_var, d->epsilon, d->fuse_relu, bn->channel + 4 * C, bn->channel + 5 * C, err);
    }
    if (rows < 2)
        return dt_fail(err, "batchnorm_forward: training needs more than 1 value per channel");
    bn->trained = 0;
    if (cuda_launch_bn_forward_training(ctx->compute, x->data, y->data, x->dtype, rows, C, gamma,
                                        beta, running_mean, running_var, d->momentum, d->epsilon,
                                        d->fuse_relu, bn->channel, bn->channel + C, ctx->scratch,
                                        err))
        return -1;
    bn->trained = 1;
    return 0;
}

int cuda_batchnorm_backward(void *opaque, dt_layer *l, const float *gamma, const float *beta,
                            const dt_tensor *x, const dt_tensor *y, const dt_tensor *dy,
                            dt_tensor *dx, float *dgamma, float *dbeta, int accumulate,
                            dt_error *err) {
    cuda_ctx *ctx = opaque;
    cuda_batchnorm *bn = (cuda_batchnorm *)l;
    const dt_batchnorm_desc *d = &bn->d;
    (void)beta;
    if (batchnorm_expect(bn, x, "batchnorm_backward", "x", err) ||
        batchnorm_expect(bn, y, "batchnorm_backward", "y", err) ||
        batchnorm_expect(bn, dy, "batchnorm_backward", "dy", err) ||
        batchnorm_expect(bn, dx, "batchnorm_backward", "dx", err))
        return -1;
    if (!bn->trained)
        return dt_fail(err, "batchnorm_backward: no training forward ran on this layer");
    const size_t rows = (size_t)d->batch * d->height * d->width;
    const int C = d->channels;
    return cuda_launch_bn_backward(ctx->compute, x->data, y->data, dy->data, dx->data, x->dtype,
                                   rows, C, gamma, bn->channel, bn->channel + C, d->fuse_relu,
                                   dgamma, dbeta, accumulate, ctx->scratch, bn->channel + 2 * C,
                                   err);
}

/* ---- max pool -----------------------------------------------------------------------------------
 */

typedef struct cuda_maxpool {
    dt_layer base;
    dt_pool_desc d;
    int out_height, out_width;
    int32_t *argmax; /* per output: in-plane index of its maximum */
    int trained;
} cuda_maxpool;

static void maxpool_destroy(cuda_ctx *ctx, dt_layer *layer) {
    cuda_maxpool *pool = (cuda_maxpool *)layer;
    dt_error ignored = {{0}, 0};
    cuda_wait_stream(ctx, ctx->compute, "freeing a layer", &ignored);
    cuda_device_free(ctx, pool->argmax);
    free(pool);
}

dt_layer *cuda_maxpool_create(void *opaque, const dt_pool_desc *d, dt_error *err) {
    cuda_ctx *ctx = opaque;
    int out_height, out_width;
    if (dt_pool_desc_check(d, &out_height, &out_width, err)) return NULL;
    cuda_maxpool *pool = calloc(1, sizeof *pool);
    if (!pool) {
        dt_fail(err, "out of memory creating a max-pool");
        return NULL;
    }
    pool->base.destroy = maxpool_destroy;
    pool->d = *d;
    pool->out_height = out_height;
    pool->out_width = out_width;
    const size_t outputs = (size_t)d->batch * d->channels * pool->out_height * pool->out_width;
    if (!(pool->argmax =
              cuda_device_alloc(ctx, outputs * sizeof(int32_t), "the max-pool argmax", err))) {
        dt_error_prefix(err, "maxpool_create");
        maxpool_destroy(ctx, &pool->base);
        return NULL;
    }
    return &pool->base;
}

static int maxpool_expect(const cuda_maxpool *pool, const dt_tensor *x, const dt_tensor *y,
                          const char *op, const char *x_name, const char *y_name, dt_error *err) {
    const dt_pool_desc *d = &pool->d;
    if (cuda_tensor_expect(x, d->batch, d->channels, d->in_height, d->in_width, op, x_name, err))
        return -1;
    return cuda_tensor_expect(y, d->batch, d->channels, pool->out_height, pool->out_width, op,
                              y_name, err);
}

int cuda_maxpool_forward(void *opaque, dt_layer *l, const dt_tensor *x, dt_tensor *y,
                         dt_error *err) {
    cuda_ctx *ctx = opaque;
    cuda_maxpool *pool = (cuda_maxpool *)l;
    const dt_pool_desc *d = &pool->d;
    if (maxpool_expect(pool, x, y, "maxpool_forward", "x", "y", err)) return -1;
    pool->trained = 0;
    if (cuda_launch_maxpool_forward(ctx->compute, x->data, y->data, pool->argmax, x->dtype,
                                    d->batch, d->channels, d->in_height, d->in_width,
                                    pool->out_height, pool->out_width, d->kernel, d->stride,
                                    d->padding, err))
        return -1;
    pool->trained = 1;
    return 0;
}

int cuda_maxpool_backward(void *opaque, dt_layer *l, const dt_tensor *dy, dt_tensor *dx,
                          dt_error *err) {
    cuda_ctx *ctx = opaque;
    cuda_maxpool *pool = (cuda_maxpool *)l;
    const dt_pool_desc *d = &pool->d;
    if (maxpool_expect(pool, dx, dy, "maxpool_backward", "dx", "dy", err)) return -1;
    if (!pool->trained) return dt_fail(err, "maxpool_backward: no forward ran on this layer");
    return cuda_launch_maxpool_backward(ctx->compute, dy->data, dx->data, pool->argmax, dx->dtype,
                                        d->batch, d->channels, d->in_height, d->in_width,
                                        pool->out_height, pool->out_width, d->kernel, d->stride,
                                        d->padding, err);
}

/* ---- linear (cuBLAS)
 * ------------------------------------------------------------------------------ */

typedef struct cuda_linear {
    dt_layer base;
    dt_linear_desc d;
    uint16_t *weight_bf16; /* bf16 mode: the weight's bf16 copy */
    const float *copied_from;
    uint64_t copied_version;
    int copied;
} cuda_linear;

static void linear_destroy(cuda_ctx *ctx, dt_layer *layer) {
    cuda_linear *linear = (cuda_linear *)layer;
    dt_error ignored = {{0}, 0};
    cuda_wait_stream(ctx, ctx->compute, "freeing a layer", &ignored);
    cuda_device_free(ctx, linear->weight_bf16);
    free(linear);
}

dt_layer *cuda_linear_create(void *opaque, const dt_linear_desc *d, dt_error *err) {
    cuda_ctx *ctx = opaque;
    cuda_linear *linear = calloc(1, sizeof *linear);
    if (!linear) {
        dt_fail(err, "out of memory creating a linear layer");
        return NULL;
    }
    linear->base.destroy = linear_destroy;
    linear->d = *d;
    if (ctx->act == CUDA_BF16 &&
        !(linear->weight_bf16 =
              cuda_device_alloc(ctx, (size_t)d->in_features * d->out_features * sizeof(uint16_t),
                                "the linear layer's bf16 weight", err))) {
        linear_destroy(ctx, &linear->base);
        return NULL;
    }
    return &linear->base;
}

static cudaDataType_t act_type(const cuda_ctx *ctx) {
    return ctx->act == CUDA_BF16 ? CUDA_R_16BF : CUDA_R_32F;
}

static cublasComputeType_t compute_type(const cuda_ctx *ctx) {
    switch (ctx->precision) {
    case DT_PRECISION_TF32:
        return CUBLAS_COMPUTE_32F_FAST_TF32;
    case DT_PRECISION_BF16:
        return CUBLAS_COMPUTE_32F;
    default:
        return CUBLAS_COMPUTE_32F_PEDANTIC; /* fp32 is true fp32 */
    }
}

/* The weight as the GEMM reads it: the fp32 parameters, or their bf16 copy (redone when the
 * parameter version or the weight pointer changed). */
static const void *linear_weight(cuda_ctx *ctx, cuda_linear *linear, const float *weight,
                                 dt_error *err) {
    if (ctx->act != CUDA_BF16) return weight;
    if (!linear->copied || linear->copied_from != weight ||
        linear->copied_version != ctx->param_version) {
        if (cuda_launch_f32_to_bf16(ctx->compute, weight, linear->weight_bf16,
                                    (size_t)linear->d.in_features * linear->d.out_features, err))
            return NULL;
        linear->copied = 1;
        linear->copied_from = weight;
        linear->copied_version = ctx->param_version;
    }
    return linear->weight_bf16;
}

/* Row-major [rows][cols] is column-major cols x rows: y^T = W x^T and so on below. */
int cuda_linear_forward(void *opaque, dt_layer *l, const float *weight, const float *bias,
                        const dt_tensor *x, dt_tensor *y, dt_error *err) {
    cuda_ctx *ctx = opaque;
    cuda_linear *linear = (cuda_linear *)l;
    const dt_linear_desc *d = &linear->d;
    if (cuda_tensor_expect(x, d->batch, d->in_features, 1, 1, "linear_forward", "x", err) ||
        cuda_tensor_expect(y, d->batch, d->out_features, 1, 1, "linear_forward", "y", err))
        return -1;
    const int n = d->batch, in = d->in_features, out = d->out_features;
    const void *w = linear_weight(ctx, linear, weight, err);
    if (!w) return -1;
    float alpha = 1.0f, beta = 0.0f;
    if (bias) {
        if (cuda_launch_bias_fill(ctx->compute, y->data, y->dtype, bias, n, out, err)) return -1;
        beta = 1.0f;
    }
    /* y^T (out x n) = W^T^T (W^T: in x out, ld in) * x^T (in x n, ld in) */
    return cublas_check(cublasGemmEx(ctx->cublas, CUBLAS_OP_T, CUBLAS_OP_N, out, n, in, &alpha, w,
                                     act_type(ctx), in, x->data, act_type(ctx), in, &beta, y->data,
                                     act_type(ctx), out, compute_type(ctx), CUBLAS_GEMM_DEFAULT),
                        err, "linear forward GEMM");
}

int cuda_linear_backward(void *opaque, dt_layer *l, const float *weight, const dt_tensor *x,
                         const dt_tensor *dy, dt_tensor *dx, float *weight_grad, float *bias_grad,
                         int accumulate, dt_error *err) {
    cuda_ctx *ctx = opaque;
    cuda_linear *linear = (cuda_linear *)l;
    const dt_linear_desc *d = &linear->d;
    if (cuda_tensor_expect(x, d->batch, d->in_features, 1, 1, "linear_backward", "x", err) ||
        cuda_tensor_expect(dy, d->batch, d->out_features, 1, 1, "linear_backward", "dy", err) ||
        (dx &&
         cuda_tensor_expect(dx, d->batch, d->in_features, 1, 1, "linear_backward", "dx", err)))
        return -1;
    const int n = d->batch, in = d->in_features, out = d->out_features;
    const float one = 1.0f, zero = 0.0f;
    /* weight_grad^T (in x out, ld in) = x^T (in x n) * dy (n x out: dy^T transposed), fp32 */
    if (weight_grad &&
        cublas_check(cublasGemmEx(ctx->cublas, CUBLAS_OP_N, CUBLAS_OP_T, in, out, n, &one, x->data,
                                  act_type(ctx), in, dy->data, act_type(ctx), out,
                                  accumulate ? &one : &zero, weight_grad, CUDA_R_32F, in,
                                  compute_type(ctx), CUBLAS_GEMM_DEFAULT),
                     err, "linear weight-gradient GEMM"))
        return -1;
    if (bias_grad && cuda_launch_bias_grad(ctx->compute, dy->data, dy->dtype, bias_grad, n, out,
                                           accumulate, err))
        return -1;
    if (!dx) return 0;
    const void *w = linear_weight(ctx, linear, weight, err);
    if (!w) return -1;
    /* dx^T (in x n) = W^T (in x out, ld in) * dy^T (out x n, ld out) */
    return cublas_check(cublasGemmEx(ctx->cublas, CUBLAS_OP_N, CUBLAS_OP_N, in, n, out, &one, w,
                                     act_type(ctx), in, dy->data, act_type(ctx), out, &zero,
                                     dx->data, act_type(ctx), in, compute_type(ctx),
                                     CUBLAS_GEMM_DEFAULT),
                        err, "linear input-gradient GEMM");
}

/* ---- softmax cross-entropy
 * ----------------------------------------------------------------------- */

/* Device and pinned arrays for n samples; grown at start-up (tensor creation). */
int cuda_reserve_samples(cuda_ctx *ctx, int n, dt_error *err) {
    if ((size_t)n <= ctx->loss_capacity) return 0;
    if (cuda_wait_stream(ctx, ctx->compute, "waiting before growing the loss buffers", err))
        return -1;
    cuda_device_free(ctx, ctx->labels);
    cuda_device_free(ctx, ctx->weights);
    cuda_device_free(ctx, ctx->predictions);
    if (ctx->host_predictions) cudaFreeHost(ctx->host_predictions);
    ctx->labels = NULL, ctx->weights = NULL, ctx->predictions = NULL;
    ctx->host_predictions = NULL;
    ctx->loss_capacity = 0;
    const size_t count = (size_t)n;
    if (!(ctx->labels = cuda_device_alloc(ctx, 2 * count * sizeof(int32_t), "the labels", err)) ||
        !(ctx->weights = cuda_device_alloc(ctx, count * sizeof(float), "the weights", err)) ||
        !(ctx->predictions =
              cuda_device_alloc(ctx, count * sizeof(int32_t), "the predictions", err)) ||
        cuda_check(cudaMallocHost((void **)&ctx->host_predictions, count * sizeof(int32_t)), err,
                   "allocating pinned memory"))
        return -1;
    const size_t slot_bytes = count * (2 * sizeof(int32_t) + sizeof(float));
    for (int i = 0; i < CUDA_STAGING_SLOTS; i++) {
        cuda_staging_slot *slot = &ctx->staging[i];
        if (slot->host) cudaFreeHost(slot->host);
        slot->host = NULL;
        slot->used = 0;
        if (cuda_check(cudaMallocHost(&slot->host, slot_bytes), err, "allocating pinned memory"))
            return -1;
    }
    ctx->staging_size = slot_bytes;
    ctx->loss_capacity = count;
    return 0;
}

int cuda_softmax_cross_entropy(void *opaque, const dt_tensor *logits,
                               const dt_loss_targets *targets, dt_tensor *dlogits, float grad_scale,
                               int32_t *predictions, dt_error *err) {
    cuda_ctx *ctx = opaque;
    if (!logits || logits->h != 1 || logits->w != 1)
        return dt_fail(err, "softmax_cross_entropy: logits must be (n, k, 1, 1)");
    if (dlogits && cuda_tensor_same_shape(logits, dlogits, "softmax_cross_entropy", err)) return -1;
    const int n = logits->n, k = logits->c;
    const int32_t *labels = targets->labels, *mix_labels = targets->mix_labels;
    const float *weights = targets->weights;
    if (dt_backend_check_loss_labels(targets, n, k, err)) return -1;
    if ((size_t)n > ctx->loss_capacity)
        return dt_fail(err, "internal: softmax_cross_entropy for %d samples, buffers hold %zu", n,
                       ctx->loss_capacity);
    /* the host arrays go through a pinned slot whose previous copy has completed */
    cuda_staging_slot *slot = &ctx->staging[ctx->staging_next];
    ctx->staging_next = (ctx->staging_next + 1) % CUDA_STAGING_SLOTS;
    if (slot->used) {
        cudaError_t copied = cudaEventQuery(slot->copied);
        if (copied == cudaErrorNotReady
                ? cuda_wait_event(ctx, slot->copied, "waiting for a staging slot", err)
                : cuda_check(copied, err, "querying a staging slot"))
            return -1;
    }
    /* staged as [labels | second labels | weights], the device arrays as ctx->labels says */
    int32_t *staged_labels = slot->host;
    float *staged_weights = (float *)(staged_labels + 2 * (size_t)n);
    memcpy(staged_labels, labels, (size_t)n * sizeof(int32_t));
    if (mix_labels) memcpy(staged_labels + n, mix_labels, (size_t)n * sizeof(int32_t));
    memcpy(staged_weights, weights, (size_t)n * sizeof(float));
    int32_t *device_mix_labels = ctx->labels + ctx->loss_capacity;
    if (cuda_check(cudaMemcpyAsync(ctx->labels, staged_labels, (size_t)n * sizeof(int32_t),
                                   cudaMemcpyHostToDevice, ctx->compute),
                   err, "copying the labels") ||
        (mix_labels && cuda_check(cudaMemcpyAsync(device_mix_labels, staged_labels + n,
                                                  (size_t)n * sizeof(int32_t),
                                                  cudaMemcpyHostToDevice, ctx->compute),
                                  err, "copying the second labels")) ||
        cuda_check(cudaMemcpyAsync(ctx->weights, staged_weights, (size_t)n * sizeof(float),
                                   cudaMemcpyHostToDevice, ctx->compute),
                   err, "copying the sample weights") ||
        cuda_check(cudaEventRecord(slot->copied, ctx->compute), err, "recording the copy"))
        return -1;
    slot->used = 1;
    if (cuda_launch_softmax_cross_entropy(
            ctx->compute, logits->data, dlogits ? dlogits->data : NULL, logits->dtype, n, k,
            ctx->labels, mix_labels ? device_mix_labels : NULL, targets->mix_lambda,
            targets->label_smoothing, ctx->weights, grad_scale,
            predictions ? ctx->predictions : NULL, ctx->loss_stats, err))
        return -1;
    if (!predictions) return 0;
    /* evaluation: the predictions are wanted now */
    if (cuda_check(cudaMemcpyAsync(ctx->host_predictions, ctx->predictions,
                                   (size_t)n * sizeof(int32_t), cudaMemcpyDeviceToHost,
                                   ctx->compute),
                   err, "reading the predictions") ||
        cuda_wait_stream(ctx, ctx->compute, "reading the predictions", err))
        return -1;
    memcpy(predictions, ctx->host_predictions, (size_t)n * sizeof(int32_t));
    return 0;
}
