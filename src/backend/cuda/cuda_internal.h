/* Private declarations shared by the CUDA backend's C files and its kernels (.cu): the
 * context (one compute stream, one copy stream, cuDNN and cuBLAS handles, one shared cuDNN
 * workspace and one shared scratch buffer), the activation tensor (NHWC, fp32 or bf16), the
 * layer base, and the kernel launchers. C-compatible (C linkage for the .cu files). Every launcher
 * enqueues on the stream it is given and never synchronises. */
#ifndef DTRAIN_CUDA_INTERNAL_H
#define DTRAIN_CUDA_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include "conv_plan_list.h"
#include "cudnn_conv.h" /* and through it cudnn.h, without its own deprecation warnings */

#include "../backend_impl.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Activation element types. */
typedef enum { CUDA_F32 = 0, CUDA_BF16 = 1 } cuda_dtype;

/* Slots of the small pinned staging rings (labels and weights of the loss): a slot is reused
 * only after the copy issued from it CUDA_STAGING_SLOTS calls earlier has completed. */
enum { CUDA_STAGING_SLOTS = 4 };

typedef struct cuda_staging_slot {
    void *host;         /* pinned: labels (int32) then weights (float) */
    cudaEvent_t copied; /* recorded after the host-to-device copy out of this slot */
    int used;
} cuda_staging_slot;

/* Device pixel buffers of the input path (double buffering). */
enum { CUDA_PIXEL_SLOTS = 2 };

/* Phase marks (events on the compute stream) kept until phase_read folds them. */
enum { CUDA_PHASE_MARKS = 64 };

typedef struct cuda_phase_mark_slot {
    cudaEvent_t event;
    int phase;
} cuda_phase_mark_slot;

/* One cached cuDNN convolution plan (cuda_conv.c): built once per (shape, pass), shared. */
typedef struct cuda_plan_entry {
    dt_conv_plan_key key;
    dt_cudnn_conv_plan *plan;
    int refs; /* layers using it */
} cuda_plan_entry;

/* cuBLAS gets its own workspace at start-up, so it never allocates inside a step. */
enum { CUDA_CUBLAS_WORKSPACE = 4 << 20 };

typedef struct cuda_ctx {
    int device;
    int precision;     /* dt_precision_kind */
    int deterministic; /* runtime.deterministic: deterministic cuDNN engines only */
    /* the plan cache (cuda_conv.c) */
    cuda_plan_entry *plans;
    int n_plans, plans_capacity;
    cuda_dtype act; /* activation type: bf16 in bf16 mode, else fp32 */
    cudaStream_t compute, copy;
    cudnnHandle_t cudnn;
    cublasHandle_t cublas;
    /* one cuDNN workspace for every plan (sized at layer creation to the largest) */
    void *workspace;
    size_t workspace_size;
    /* one scratch for transient kernel data in stream order (reduction partials, the KRSC
     * filter gradient, host transfers), sized at creation to the largest need */
    void *scratch;
    size_t scratch_size;
    /* parameter version: bumped by params_changed and by every sgd_step; derived weight
     * copies (KRSC, bf16) are redone when their stamp differs */
    uint64_t param_version;
    /* input path: two device pixel buffers used in turn (double buffering: batch s+1's copy,
     * issued by input_prefetch before step s's optimizer, only waits for batch s-1's
     * normalisation, so it overlaps step s), filled on the copy stream */
    uint8_t *pixels[CUDA_PIXEL_SLOTS];
    size_t pixels_size;
    cudaEvent_t pixels_ready[CUDA_PIXEL_SLOTS]; /* copy stream: on the device (host buffer read) */
    cudaEvent_t pixels_free[CUDA_PIXEL_SLOTS];  /* compute stream: normalised (device copy free) */
    int pixels_pending[CUDA_PIXEL_SLOTS];       /* ready recorded, not yet seen by input_wait */
    int pixels_next;                            /* the slot the next batch goes to */
    /* input_prefetch: the host pixels (and bytes) a slot holds for a tensor_from_images to
     * come; NULL when it holds none */
    const uint8_t *pixels_prefetched[CUDA_PIXEL_SLOTS];
    size_t pixels_prefetched_bytes[CUDA_PIXEL_SLOTS];
    /* loss: labels and weights on the device, the statistics accumulator, predictions */
    int32_t *labels; /* [2 * loss_capacity]: the labels, then the second (mixed) labels */
    float *weights;
    int32_t *predictions;
    size_t loss_capacity;      /* samples the three arrays above hold */
    double *loss_stats;        /* device [4]: loss sum, correct, count, non-finite */
    double *host_stats;        /* pinned [4] */
    int32_t *host_predictions; /* pinned [loss_capacity] */
    cuda_staging_slot staging[CUDA_STAGING_SLOTS];
    size_t staging_size;
    int staging_next;
    /* buffer_sum_squares: device result and its pinned copy */
    double *sum_result, *host_sum;
    void *cublas_workspace;
    /* phase timing */
    cuda_phase_mark_slot marks[CUDA_PHASE_MARKS];
    int mark_first, mark_count;
    double phase_seconds[DT_PHASE_COUNT];
    /* the non-finite guard: its state (device), a pinned copy for guard_read, the scan's
     * first non-finite index (device; ~0 when none), and the in-row count that halts it */
    dt_guard_state *guard, *host_guard;
    unsigned long long *guard_first;
    int64_t guard_halt_after;
    /* what counters reports: host waits (cuda_wait_*), input waits that blocked, cudaMalloc
     * calls; the check each wait polls (set_wait_check) and the event cuda_wait_stream records */
    uint64_t host_waits, input_waits, device_allocations;
    dt_wait_check_fn wait_check;
    void *wait_check_user;
    cudaEvent_t wait_event;
    /* bookkeeping for the out-of-memory message */
    size_t allocated;
    int batch; /* largest batch size of the tensors created */
} cuda_ctx;

struct dt_tensor {
    int n, c, h, w;
    size_t count;     /* n * c * h * w */
    cuda_dtype dtype; /* the context's activation type */
    void *data;       /* NHWC */
};

/* First member of every layer struct. */
struct dt_layer {
    void (*destroy)(cuda_ctx *ctx, dt_layer *layer);
};

static inline size_t cuda_dtype_size(cuda_dtype t) {
    return t == CUDA_BF16 ? 2 : 4;
}

/* ---- errors and memory (cuda_backend.c) ---------------------------------------------------- */

/* 0 on cudaSuccess, else -1 with "<what>: <CUDA error string>" in err. */
int cuda_check(cudaError_t status, dt_error *err, const char *what);
int cudnn_check(cudnnStatus_t status, dt_error *err, const char *what);
int cublas_check(cublasStatus_t status, dt_error *err, const char *what);
/* Host waits: poll until the work before event (or everything queued on stream) has
 * completed, sleeping between polls (no core spun) and calling the installed wait check; each
 * call counts one host wait. */
int cuda_wait_event(cuda_ctx *ctx, cudaEvent_t event, const char *what, dt_error *err);
int cuda_wait_stream(cuda_ctx *ctx, cudaStream_t stream, const char *what, dt_error *err);
/* cudaMalloc (never managed memory) of bytes for `what`; out of memory names the batch size and
 * the memory needed and free. Start-up only. */
void *cuda_device_alloc(cuda_ctx *ctx, size_t bytes, const char *what, dt_error *err);
void cuda_device_free(cuda_ctx *ctx, void *p);
/* Grows the shared cuDNN workspace / the shared scratch to at least bytes (start-up only). */
int cuda_reserve_workspace(cuda_ctx *ctx, size_t bytes, dt_error *err);
int cuda_reserve_scratch(cuda_ctx *ctx, size_t bytes, dt_error *err);
/* Grows the loss arrays (labels, weights, predictions, pinned staging) to n samples. */
int cuda_reserve_samples(cuda_ctx *ctx, int n, dt_error *err);
/* -1 with "<op>: <name> is ... but the layer expects ..." unless t has the shape n,c,h,w. */
static inline int cuda_tensor_expect(const dt_tensor *t, int n, int c, int h, int w, const char *op,
                                     const char *name, dt_error *err) {
    if (!t) return dt_fail(err, "%s: tensor %s is missing", op, name);
    return dt_shape_expect(t->n, t->c, t->h, t->w, n, c, h, w, op, name, err);
}
/* -1 unless a and b have the same shape. */
static inline int cuda_tensor_same_shape(const dt_tensor *a, const dt_tensor *b, const char *op,
                                         dt_error *err) {
    if (!a || !b) return dt_fail(err, "%s: a tensor is missing", op);
    return dt_shapes_same(a->n, a->c, a->h, a->w, b->n, b->c, b->h, b->w, op, err);
}

/* ---- the ops (cuda_tensor.c, cuda_layers.c, cuda_conv.c), as in dt_backend_ops ------------- */

int cuda_input_wait(void *ctx, dt_error *err);
int cuda_input_prefetch(void *ctx, const uint8_t *pixels_nhwc, size_t bytes, dt_error *err);
dt_tensor *cuda_tensor_create(void *ctx, int n, int c, int h, int w, dt_error *err);
void cuda_tensor_destroy(void *ctx, dt_tensor *t);
int cuda_tensor_upload(void *ctx, dt_tensor *dst, const float *host_nchw, dt_error *err);
int cuda_tensor_download(void *ctx, const dt_tensor *src, float *host_nchw, dt_error *err);
int cuda_tensor_from_images(void *ctx, dt_tensor *dst, const uint8_t *pixels_nhwc,
                            const float mean[3], const float std[3], dt_error *err);
int cuda_tensor_add(void *ctx, dt_tensor *dst, const dt_tensor *src, dt_error *err);
int cuda_add_relu_forward(void *ctx, dt_tensor *y, const dt_tensor *x, dt_error *err);
int cuda_relu_backward(void *ctx, const dt_tensor *y, const dt_tensor *dy, dt_tensor *dx,
                       dt_error *err);
int cuda_avgpool_forward(void *ctx, const dt_tensor *x, dt_tensor *y, dt_error *err);
int cuda_avgpool_backward(void *ctx, const dt_tensor *dy, dt_tensor *dx, dt_error *err);

dt_layer *cuda_conv_create(void *ctx, const dt_conv_desc *d, dt_error *err);
/* drops a layer's use of a cached plan (destroyed with its last user) */
void cuda_plan_release(cuda_ctx *ctx, dt_cudnn_conv_plan *plan);
int cuda_conv_forward(void *ctx, dt_layer *l, const float *weight, const dt_tensor *x, dt_tensor *y,
                      dt_error *err);
int cuda_conv_backward(void *ctx, dt_layer *l, const float *weight, const dt_tensor *x,
                       const dt_tensor *dy, dt_tensor *dx, float *weight_grad, int accumulate,
                       dt_error *err);

dt_layer *cuda_batchnorm_create(void *ctx, const dt_batchnorm_desc *d, dt_error *err);
int cuda_batchnorm_forward(void *ctx, dt_layer *l, const float *gamma, const float *beta,
                           float *running_mean, float *running_var, int training,
                           const dt_tensor *x, dt_tensor *y, dt_error *err);
int cuda_batchnorm_backward(void *ctx, dt_layer *l, const float *gamma, const float *beta,
                            const dt_tensor *x, const dt_tensor *y, const dt_tensor *dy,
                            dt_tensor *dx, float *dgamma, float *dbeta, int accumulate,
                            dt_error *err);

dt_layer *cuda_maxpool_create(void *ctx, const dt_pool_desc *d, dt_error *err);
int cuda_maxpool_forward(void *ctx, dt_layer *l, const dt_tensor *x, dt_tensor *y, dt_error *err);
int cuda_maxpool_backward(void *ctx, dt_layer *l, const dt_tensor *dy, dt_tensor *dx,
                          dt_error *err);

dt_layer *cuda_linear_create(void *ctx, const dt_linear_desc *d, dt_error *err);
int cuda_linear_forward(void *ctx, dt_layer *l, const float *weight, const float *bias,
                        const dt_tensor *x, dt_tensor *y, dt_error *err);
int cuda_linear_backward(void *ctx, dt_layer *l, const float *weight, const dt_tensor *x,
                         const dt_tensor *dy, dt_tensor *dx, float *weight_grad, float *bias_grad,
                         int accumulate, dt_error *err);

int cuda_softmax_cross_entropy(void *ctx, const dt_tensor *logits, const dt_loss_targets *targets,
                               dt_tensor *dlogits, float grad_scale, int32_t *predictions,
                               dt_error *err);

/* ---- kernel launchers (cuda_kernels_*.cu) --------------------------------------------------- */

/* flat fp32 buffers */
int cuda_launch_fill(cudaStream_t s, float *dst, float value, size_t count, dt_error *err);
int cuda_launch_axpy(cudaStream_t s, float *y, float alpha, const float *x, size_t count,
                     dt_error *err);
/* guard: NULL, or the guard state whose step_skipped turns the update off */
int cuda_launch_sgd(cudaStream_t s, const dt_sgd_params *p, float *params, const float *grads,
                    float *momentum, size_t count, const dt_guard_state *guard, dt_error *err);
/* guard as for cuda_launch_sgd; its count of skipped steps is taken from p->step as well
 * (cuda_kernels_adamw.cu) */
int cuda_launch_adamw(cudaStream_t s, const dt_adamw_params *p, float *params, const float *grads,
                      float *exp_avg, float *exp_avg_sq, size_t count, const dt_guard_state *guard,
                      dt_error *err);
/* the non-finite guard (dt_guard_state): the scan of count gradients and the verdict that
 * applies it to state (first: device scratch, ~0 on entry and left so); the copy of backup
 * into dst when the checked step is skipped; the clear after a read */
int cuda_launch_guard_check(cudaStream_t s, const float *grads, size_t count, int64_t step,
                            int64_t halt_after, unsigned long long *first, dt_guard_state *state,
                            dt_error *err);
int cuda_launch_guard_restore(cudaStream_t s, float *dst, const float *backup, size_t count,
                              const dt_guard_state *state, dt_error *err);
int cuda_launch_guard_clear(cudaStream_t s, dt_guard_state *state, dt_error *err);
/* ema = decay * ema + one_minus_decay * live (dt_ema_element); guard as cuda_launch_sgd's */
int cuda_launch_ema(cudaStream_t s, float *ema, const float *live, float decay,
                    float one_minus_decay, size_t count, const dt_guard_state *guard,
                    dt_error *err);
/* sum of squares in double into *result (device); partials: scratch of
 * cuda_sum_squares_scratch() bytes */
size_t cuda_sum_squares_scratch(void);
int cuda_launch_sum_squares(cudaStream_t s, const float *src, size_t count, double *partials,
                            double *result, dt_error *err);

/* layout and type conversions */
int cuda_launch_nchw_f32_to_nhwc(cudaStream_t s, const float *src, void *dst, cuda_dtype dtype,
                                 int n, int c, int h, int w, dt_error *err);
int cuda_launch_nhwc_to_nchw_f32(cudaStream_t s, const void *src, cuda_dtype dtype, float *dst,
                                 int n, int c, int h, int w, dt_error *err);
/* conv weight OIHW fp32 -> KRSC of dtype */
int cuda_launch_oihw_to_krsc(cudaStream_t s, const float *src, void *dst, cuda_dtype dtype, int k,
                             int c, int r, int s_, dt_error *err);
/* KRSC gradient of dtype -> OIHW fp32, added to dst when accumulate, else written */
int cuda_launch_krsc_to_oihw(cudaStream_t s, const void *src, cuda_dtype dtype, float *dst, int k,
                             int c, int r, int s_, int accumulate, dt_error *err);
/* fp32 -> bf16 copy of count values (linear weights in bf16 mode) */
int cuda_launch_f32_to_bf16(cudaStream_t s, const float *src, uint16_t *dst, size_t count,
                            dt_error *err);

/* element-wise activations (count elements of dtype) */
int cuda_launch_add(cudaStream_t s, void *y, const void *x, cuda_dtype dtype, size_t count,
                    dt_error *err);
int cuda_launch_add_relu(cudaStream_t s, void *y, const void *x, cuda_dtype dtype, size_t count,
                         dt_error *err);
int cuda_launch_relu_backward(cudaStream_t s, const void *y, const void *dy, void *dx,
                              cuda_dtype dtype, size_t count, dt_error *err);

/* uint8 NHWC RGB -> normalised NHWC activations of dtype */
int cuda_launch_normalize(cudaStream_t s, const uint8_t *pixels, void *dst, cuda_dtype dtype,
                          size_t pixel_count, const float mean[3], const float std[3],
                          dt_error *err);

/* batch norm over NHWC rows of `channels` values (rows = n * h * w). The statistics kernels
 * write per-channel sums in double through partials (scratch of cuda_bn_scratch() bytes). */
size_t cuda_bn_scratch(size_t rows, int channels);
/* training forward: batch mean, inv_std, biased variance saved per channel; running stats
 * updated (either may be NULL); y written */
int cuda_launch_bn_forward_training(cudaStream_t s, const void *x, void *y, cuda_dtype dtype,
                                    size_t rows, int channels, const float *gamma,
                                    const float *beta, float *running_mean, float *running_var,
                                    float momentum, float epsilon, int relu, float *save_mean,
                                    float *save_inv_std, double *partials, dt_error *err);
/* inference: mean_out/inv_std_out (per channel) derived from the running statistics */
int cuda_launch_bn_forward_inference(cudaStream_t s, const void *x, void *y, cuda_dtype dtype,
                                     size_t rows, int channels, const float *gamma,
                                     const float *beta, const float *running_mean,
                                     const float *running_var, float epsilon, int relu,
                                     float *mean_out, float *inv_std_out, dt_error *err);
/* backward: dgamma/dbeta (may be NULL) written or accumulated; dx (may alias dy) written */
int cuda_launch_bn_backward(cudaStream_t s, const void *x, const void *y, const void *dy, void *dx,
                            cuda_dtype dtype, size_t rows, int channels, const float *gamma,
                            const float *save_mean, const float *save_inv_std, int relu,
                            float *dgamma, float *dbeta, int accumulate, double *partials,
                            float *channel_sums, dt_error *err);

/* max pool (torch semantics) with the argmax saved per output; backward gathers */
int cuda_launch_maxpool_forward(cudaStream_t s, const void *x, void *y, int32_t *argmax,
                                cuda_dtype dtype, int n, int c, int h, int w, int oh, int ow,
                                int kernel, int stride, int padding, dt_error *err);
int cuda_launch_maxpool_backward(cudaStream_t s, const void *dy, void *dx, const int32_t *argmax,
                                 cuda_dtype dtype, int n, int c, int h, int w, int oh, int ow,
                                 int kernel, int stride, int padding, dt_error *err);
int cuda_launch_avgpool_forward(cudaStream_t s, const void *x, void *y, cuda_dtype dtype, int n,
                                int c, int plane, dt_error *err);
int cuda_launch_avgpool_backward(cudaStream_t s, const void *dy, void *dx, cuda_dtype dtype, int n,
                                 int c, int plane, dt_error *err);

/* linear helpers: y[i][o] = bias[o]; bias_grad[o] (+)= sum_i dy[i][o] */
int cuda_launch_bias_fill(cudaStream_t s, void *y, cuda_dtype dtype, const float *bias, int n,
                          int out, dt_error *err);
int cuda_launch_bias_grad(cudaStream_t s, const void *dy, cuda_dtype dtype, float *bias_grad, int n,
                          int out, int accumulate, dt_error *err);

/* softmax cross-entropy of logits [n][k] (targets as dt_loss_targets; mix_labels: device array
 * or NULL): dlogits (may be NULL) written, predictions (may be NULL) written, the four
 * statistics added to stats (device double[4]); one block */
int cuda_launch_softmax_cross_entropy(cudaStream_t s, const void *logits, void *dlogits,
                                      cuda_dtype dtype, int n, int k, const int32_t *labels,
                                      const int32_t *mix_labels, float mix_lambda,
                                      float label_smoothing, const float *weights, float grad_scale,
                                      int32_t *predictions, double *stats, dt_error *err);

#ifdef __cplusplus
}
#endif

#endif
