/* The compute backend interface: a table of functions plus a context, implemented by the CPU
 * (oneDNN) backend and by the CUDA (cuDNN) backend. The model graph and the training loop are
 * written once, above it. C only: no CUDA or oneDNN types appear here.
 *
 * Memory model
 *  - Flat buffers (parameters, gradients, momentum, BN running statistics) are float arrays in
 *    backend memory (host memory on CPU, device memory on CUDA) in PyTorch's logical layouts:
 *    conv weights OIHW, linear weights [out][in]. Layers receive pointers into them (views).
 *  - Activations are opaque dt_tensor objects with a logical NCHW shape; their physical layout
 *    (e.g. oneDNN's blocked nChw16c) is the backend's choice and stays inside the backend.
 *  - Every layer is created for one batch size and always runs with that batch size; the
 *    training loop pads partial batches (padding slots get weight 0 in the loss).
 * All functions return 0 on success, -1 with err filled on failure. */
#ifndef DTRAIN_BACKEND_H
#define DTRAIN_BACKEND_H

#include <stddef.h>
#include <stdint.h>

#include "dtrain/error.h"

typedef struct dt_tensor dt_tensor; /* activation, logical shape n x c x h x w */
typedef struct dt_layer dt_layer;   /* one op instance: its primitives and saved state */

typedef struct dt_conv_desc {
    int batch;
    int in_channels, out_channels;
    int in_height, in_width;
    int kernel, stride, padding; /* square kernel, symmetric padding, no bias, no dilation */
} dt_conv_desc;

typedef struct dt_batchnorm_desc {
    int batch, channels, height, width;
    float momentum; /* running = (1 - momentum) * running + momentum * batch_stat (torch: 0.1) */
    float epsilon;  /* torch: 1e-5 */
    int fuse_relu;  /* y = relu(bn(x)); backward then takes dy w.r.t. the ReLU output */
} dt_batchnorm_desc;

typedef struct dt_pool_desc {
    int batch, channels, in_height, in_width;
    int kernel, stride, padding; /* max pooling; padding counts as -inf (torch semantics) */
} dt_pool_desc;

typedef struct dt_linear_desc {
    int batch, in_features, out_features; /* with bias */
} dt_linear_desc;

/* One SGD update over a flat buffer, torch.optim.SGD semantics (dampening 0):
 *   g = grad_scale * grad + weight_decay * param
 * (grad_scale turns summed gradients into the mean: 1 / (ranks x accumulation steps))
 *   if momentum != 0: buf = first ? g : momentum * buf + g;  g = nesterov ? g + momentum*buf : buf
 *   param -= lr * g */
typedef struct dt_sgd_params {
    float lr, momentum, weight_decay;
    float grad_scale; /* multiplies grads before anything else (1 for plain SGD) */
    int nesterov;
    int first_step; /* momentum buffer not yet initialised: buf = g */
} dt_sgd_params;

typedef struct dt_backend_ops {
    const char *name; /* "cpu", "cuda" */

    void (*destroy)(void *ctx);
    int (*synchronize)(void *ctx, dt_error *err);

    /* flat float buffers in backend memory */
    float *(*buffer_alloc)(void *ctx, size_t count, dt_error *err); /* zero-filled */
    void (*buffer_free)(void *ctx, float *buffer);
    int (*buffer_upload)(void *ctx, float *dst, const float *host_src, size_t count, dt_error *err);
    int (*buffer_download)(void *ctx, float *host_dst, const float *src, size_t count,
                           dt_error *err);
    int (*buffer_fill)(void *ctx, float *dst, float value, size_t count, dt_error *err);
    /* y += alpha * x */
    int (*buffer_axpy)(void *ctx, float *y, float alpha, const float *x, size_t count,
                       dt_error *err);
    /* updates params in place; momentum may be NULL when p->momentum == 0 */
    int (*sgd_step)(void *ctx, const dt_sgd_params *p, float *params, const float *grads,
                    float *momentum, size_t count, dt_error *err);
    /* sum of squares of count floats (for gradient/weight norms and NaN checks) */
    int (*buffer_sum_squares)(void *ctx, const float *src, size_t count, double *out,
                              dt_error *err);

    /* activations */
    dt_tensor *(*tensor_create)(void *ctx, int n, int c, int h, int w, dt_error *err);
    void (*tensor_destroy)(void *ctx, dt_tensor *t);
    /* host arrays are plain NCHW float */
    int (*tensor_upload)(void *ctx, dt_tensor *dst, const float *host_nchw, dt_error *err);
    int (*tensor_download)(void *ctx, const dt_tensor *src, float *host_nchw, dt_error *err);
    /* dst[n][c][h][w] = (pixels[n][h][w][c] / 255 - mean[c]) / std[c]; pixels uint8 NHWC RGB */
    int (*tensor_from_images)(void *ctx, dt_tensor *dst, const uint8_t *pixels_nhwc,
                              const float mean[3], const float std[3], dt_error *err);
    /* dst += src (same shape) */
    int (*tensor_add)(void *ctx, dt_tensor *dst, const dt_tensor *src, dt_error *err);

    void (*layer_destroy)(void *ctx, dt_layer *layer);

    /* convolution, no bias. weight: OIHW view into the parameter buffer. */
    dt_layer *(*conv_create)(void *ctx, const dt_conv_desc *d, dt_error *err);
    int (*conv_forward)(void *ctx, dt_layer *l, const float *weight, const dt_tensor *x,
                        dt_tensor *y, dt_error *err);
    /* writes (overwrites) weight_grad when not NULL and dx when not NULL. Follows this layer's
     * conv_forward of the same step with the same weight values (as autograd's saved tensors):
     * the backend may reuse what that forward derived from the weights. */
    int (*conv_backward)(void *ctx, dt_layer *l, const float *weight, const dt_tensor *x,
                         const dt_tensor *dy, dt_tensor *dx, float *weight_grad, dt_error *err);

    /* batch normalisation (+ optional fused ReLU). training: batch statistics, saved for
     * backward, running statistics updated (unbiased variance, as torch); else running stats. */
    dt_layer *(*batchnorm_create)(void *ctx, const dt_batchnorm_desc *d, dt_error *err);
    int (*batchnorm_forward)(void *ctx, dt_layer *l, const float *gamma, const float *beta,
                             float *running_mean, float *running_var, int training,
                             const dt_tensor *x, dt_tensor *y, dt_error *err);
    /* after a training forward; y is that forward's output (needed for the fused ReLU mask).
     * Overwrites dgamma/dbeta (when not NULL) and dx. dx may be the same tensor as dy. */
    int (*batchnorm_backward)(void *ctx, dt_layer *l, const float *gamma, const float *beta,
                              const dt_tensor *x, const dt_tensor *y, const dt_tensor *dy,
                              dt_tensor *dx, float *dgamma, float *dbeta, dt_error *err);

    /* y = relu(y + x), in place on y (the residual join) */
    int (*add_relu_forward)(void *ctx, dt_tensor *y, const dt_tensor *x, dt_error *err);
    /* dx = dy * (y > 0); dx may be the same tensor as dy */
    int (*relu_backward)(void *ctx, const dt_tensor *y, const dt_tensor *dy, dt_tensor *dx,
                         dt_error *err);

    dt_layer *(*maxpool_create)(void *ctx, const dt_pool_desc *d, dt_error *err);
    int (*maxpool_forward)(void *ctx, dt_layer *l, const dt_tensor *x, dt_tensor *y, dt_error *err);
    int (*maxpool_backward)(void *ctx, dt_layer *l, const dt_tensor *dy, dt_tensor *dx,
                            dt_error *err);

    /* global average pool: x (n,c,h,w) -> y (n,c,1,1) */
    int (*avgpool_forward)(void *ctx, const dt_tensor *x, dt_tensor *y, dt_error *err);
    int (*avgpool_backward)(void *ctx, const dt_tensor *dy, dt_tensor *dx, dt_error *err);

    /* fully connected: x (n,in,1,1) -> y (n,out,1,1); weight [out][in], bias [out] */
    dt_layer *(*linear_create)(void *ctx, const dt_linear_desc *d, dt_error *err);
    int (*linear_forward)(void *ctx, dt_layer *l, const float *weight, const float *bias,
                          const dt_tensor *x, dt_tensor *y, dt_error *err);
    /* overwrites weight_grad/bias_grad (when not NULL) and dx (when not NULL) */
    int (*linear_backward)(void *ctx, dt_layer *l, const float *weight, const dt_tensor *x,
                           const dt_tensor *dy, dt_tensor *dx, float *weight_grad, float *bias_grad,
                           dt_error *err);

    /* Softmax cross-entropy over logits (n,k,1,1) with host labels and host per-sample weights
     * (0 or 1). Outputs on the host: *loss_sum = sum_i w_i * loss_i, predictions[i] = argmax.
     * When dlogits is not NULL: dlogits_i = grad_scale * w_i * (softmax_i - onehot_i). */
    int (*softmax_cross_entropy)(void *ctx, const dt_tensor *logits, const int32_t *labels,
                                 const float *weights, double *loss_sum, int32_t *predictions,
                                 dt_tensor *dlogits, float grad_scale, dt_error *err);
} dt_backend_ops;

typedef struct dt_backend {
    const dt_backend_ops *ops;
    void *ctx;
} dt_backend;

typedef struct dt_backend_options {
    int threads;   /* compute threads (CPU); 0 = all cores */
    int device;    /* GPU ordinal (CUDA) */
    int precision; /* dt_precision_kind */
} dt_backend_options;

/* CPU backend (oneDNN). Always compiled in. */
int dt_backend_cpu_create(const dt_backend_options *opt, dt_backend *out, dt_error *err);

/* CUDA training backend: fails with a clear message while it is not built in. */
int dt_backend_cuda_create(const dt_backend_options *opt, dt_backend *out, dt_error *err);
int dt_backend_cuda_training_available(void);
/* GPUs visible to this process (0 without the CUDA toolkit, driver or device). */
int dt_backend_cuda_device_count(void);
/* "runtime 13.0, driver ..., cuDNN 9.x.y, NCCL 2.x.y" (DTRAIN_HAVE_CUDA builds only). */
const char *dt_backend_cuda_library_versions(void);

/* Library version strings for --version ("oneDNN 2.6.3", ...). */
const char *dt_backend_cpu_library_version(void);

#endif
