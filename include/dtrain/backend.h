/* The compute backend interface: a handle (dt_backend) and the functions dt_backend_OP(b, ...)
 * that the model graph, the training loop and the comms call, implemented by the CPU (oneDNN)
 * backend and by the CUDA (cuDNN) backend. The table of functions behind a handle is private to
 * src/backend/ (backend_impl.h); a backend may leave optional entries out, which the functions
 * here turn into a no-op or a clear error, and the checks both backends need (argument ranges)
 * are made here once. What differs between backends is asked through capability flags
 * (dt_backend_has), never by name. C only: no CUDA or oneDNN types appear here.
 *
 * Memory model
 *  - Flat buffers (parameters, gradients, momentum, BN running statistics) are float arrays in
 *    backend memory (host memory on CPU, device memory on CUDA) in PyTorch's logical layouts:
 *    conv weights OIHW, linear weights [out][in]. Layers receive pointers into them (views). A
 *    convolution created with own_weight_layout may keep its weights (and so their gradient and
 *    optimizer state) in a permutation of OIHW of its own instead (conv_weight_layout).
 *  - Activations are opaque dt_tensor objects with a logical NCHW shape; their physical layout
 *    (e.g. oneDNN's blocked nChw16c) is the backend's choice and stays inside the backend.
 *  - Every layer is created for one batch size and always runs with that batch size; the
 *    training loop pads partial batches (padding slots get weight 0 in the loss).
 *
 * Execution model
 *  - Ops may run asynchronously, in the order they are called, on one compute stream (CUDA);
 *    on the CPU every op has finished when it returns. Host pointers given to an op are read
 *    before it returns unless the op says otherwise (tensor_from_images, see input_wait).
 *    synchronize, buffer_download, tensor_download and loss_stats_read wait for queued work.
 *  - Parameter gradients are overwritten (accumulate = 0) or added to (accumulate != 0) by the
 *    backward ops; activation gradients (dx) are always overwritten.
 *  - The loss statistics stay in the backend (loss_stats_read reads them at log time), so a
 *    training step needs no device-to-host transfer.
 *  - Derived copies of the weights (reordered, other precision) are keyed on a parameter
 *    version inside the backend that every write through this interface (buffer_upload,
 *    buffer_fill, buffer_axpy, sgd_step, adamw_step) and every params_changed call advances; memory
 *    written any other way must be followed by params_changed.
 * All functions return 0 on success, -1 with err filled on failure. */
#ifndef DTRAIN_BACKEND_H
#define DTRAIN_BACKEND_H

#include <stddef.h>
#include <stdint.h>

#include "dtrain/error.h"

/* runtime.precision; auto (the default) is resolved per device by dt_precision_resolve
 * (config.h) before a backend is created, which gets one of the other three */
typedef enum {
    DT_PRECISION_FP32,
    DT_PRECISION_TF32,
    DT_PRECISION_BF16,
    DT_PRECISION_AUTO,
    DT_PRECISION_WINOGRAD /* CPU: Winograd convolutions where faster (the CPU's old "tf32") */
} dt_precision_kind;

/* "fp32", "tf32", "bf16", "auto" or "winograd" (the names runtime.precision takes) */
const char *dt_precision_name(dt_precision_kind precision);

typedef struct dt_tensor dt_tensor; /* activation, logical shape n x c x h x w */
typedef struct dt_layer dt_layer;   /* one op instance: its primitives and saved state */

typedef struct dt_conv_desc {
    int batch;
    int in_channels, out_channels;
    int in_height, in_width;
    int kernel, stride, padding; /* square kernel, symmetric padding, no bias, no dilation */
    /* what backward is never asked for, so that a backend prepares nothing for it: dx (the
     * network's first layer), or backward at all (a frozen layer) */
    int no_input_grad, no_backward;
    /* 1: the layer may keep its weights and weight gradients in the parameter buffer in a
     * layout of its own (dt_backend_conv_weight_layout), so that no step reorders them; 0:
     * OIHW */
    int own_weight_layout;
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

/* Every backend's create functions check their description with these (src/backend/
 * layer_descs.c): 0, with the output height and width, or -1 with the reason. */
int dt_conv_desc_check(const dt_conv_desc *d, int *out_height, int *out_width, dt_error *err);
int dt_pool_desc_check(const dt_pool_desc *d, int *out_height, int *out_width, dt_error *err);
int dt_batchnorm_desc_check(const dt_batchnorm_desc *d, dt_error *err);
/* Multiply-adds of one forward pass of a valid d over its batch: with_padding counts every tap
 * of every output position (what FLOP tables such as torchvision's report); otherwise only the
 * taps that fall inside the input, the work a kernel that skips padding does. Backward-data and
 * backward-weights each take as many as the forward. */
double dt_conv_desc_macs(const dt_conv_desc *d, int with_padding);
/* The backends' shape checks of their tensors (also layer_descs.c), so that both word them
 * alike: -1 with "<op>: <name> is ... but the layer expects ..." unless n,c,h,w is the wanted
 * shape; -1 with "<op>: shapes differ (...)" unless the two shapes are equal. */
int dt_shape_expect(int n, int c, int h, int w, int want_n, int want_c, int want_h, int want_w,
                    const char *op, const char *name, dt_error *err);
int dt_shapes_same(int n, int c, int h, int w, int other_n, int other_c, int other_h, int other_w,
                   const char *op, dt_error *err);

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
    int guarded;    /* no update at all when the last guard_check skipped its step */
} dt_sgd_params;

/* One AdamW update over a flat buffer, torch.optim.AdamW semantics (amsgrad off):
 *   g = grad_scale * grad;  param *= 1 - lr * weight_decay
 *   exp_avg = lerp(exp_avg, g, 1 - beta1);  exp_avg_sq = beta2 * exp_avg_sq + (1 - beta2) g^2
 *   param -= lr / (1 - beta1^t) * exp_avg / (sqrt(exp_avg_sq) / sqrt(1 - beta2^t) + eps)
 * Scalars are double, as torch's Python floats, and rounded to float where torch does. t is
 * `step` (the update's number from 1); a guarded update subtracts the guard's count of skipped
 * steps (dt_guard_state.total), as torch's step count leaves out the steps not taken, and
 * changes nothing when the guard skips the step. */
typedef struct dt_adamw_params {
    double lr, beta1, beta2, eps, weight_decay;
    float grad_scale; /* multiplies grads before anything else */
    int64_t step;     /* >= 1 */
    int guarded;
} dt_adamw_params;

/* The non-finite guard (train.nonfinite) keeps its state in backend memory and decides in the
 * stream's order, so that a training step needs no host wait: guard_check scans a step's
 * reduced gradients, and the step is skipped when a value is not finite or the guard has
 * halted; a skipped step's guarded sgd_step changes nothing and guard_restore puts back what it
 * was given. A non-finite step that makes halt_after in a row halts the guard: every later step
 * is skipped too, so the backend keeps the last good state until the host, reading the state
 * late (guard_read, at a log line), stops the run. */
enum { DT_GUARD_RECORDS = 8 };

typedef struct dt_guard_record {
    int64_t step;   /* as given to guard_check */
    int64_t index;  /* of the first non-finite value in the checked span */
    int64_t is_nan; /* that value is NaN (else infinite) */
    int64_t in_row; /* non-finite steps in a row, this one included */
    int64_t total;  /* non-finite steps in all, this one included */
} dt_guard_record;

typedef struct dt_guard_state {
    int64_t in_row, total; /* non-finite steps in a row up to the last checked step; in all */
    int64_t halted_step;   /* -1, or the step at which the guard halted */
    int64_t skipped;       /* steps skipped (non-finite or halted) since the last read */
    int64_t n_records;     /* non-finite steps since the last read: the first ones are in
                            * records, the newest always in the last used slot */
    int64_t step_skipped;  /* the last checked step is skipped */
    dt_guard_record records[DT_GUARD_RECORDS];
} dt_guard_state;

/* What the backend counts about itself (see counters): host waits are the calls that block the
 * host until device work completes; device allocations count cudaMalloc-like calls. The CPU
 * backend waits for nothing and allocates host memory only: both stay 0 there. */
typedef struct dt_backend_counters {
    uint64_t host_waits;         /* synchronisations (reads, downloads, synchronize, ...) */
    uint64_t input_waits;        /* input_wait calls that found the pixel copy still running */
    uint64_t device_allocations; /* device memory allocations */
} dt_backend_counters;

/* Called while a host wait polls for device work (every ~100 us): a non-zero return, with err
 * filled, ends the wait with that error. The device comm installs its check (the collectives'
 * deadline and asynchronous errors), so that no wait hangs on a stuck peer. */
typedef int (*dt_wait_check_fn)(void *user, double waited_seconds, dt_error *err);

/* Phases of a step for phase_mark/phase_read: the time between a mark and the next one, in
 * the compute stream's order, is counted to the first mark's phase. */
typedef enum {
    DT_PHASE_COMPUTE = 0,   /* forward, backward, optimizer */
    DT_PHASE_ALLREDUCE = 1, /* waiting for a gradient all-reduce that backward did not hide */
    DT_PHASE_COUNT
} dt_phase;

/* The loss statistics accumulated by softmax_cross_entropy, as loss_stats_read returns them. */
enum {
    DT_LOSS_SUM = 0,       /* sum_i w_i * loss_i */
    DT_LOSS_CORRECT = 1,   /* sum_i w_i * [argmax_i == label_i] (dt_loss_targets) */
    DT_LOSS_COUNT = 2,     /* sum_i w_i */
    DT_LOSS_NONFINITE = 3, /* samples with w_i != 0 whose loss is not finite */
    DT_LOSS_STATS = 4
};

/* A backend: held by value (two words, copied by the model and the comms); its table is the
 * backend's own (src/backend/backend_impl.h) and is only reached through the functions below. */
typedef struct dt_backend_ops dt_backend_ops;
typedef struct dt_backend {
    const dt_backend_ops *ops;
    void *ctx;
} dt_backend;

/* Capabilities (dt_backend_has). */
enum {
    /* flat buffers and tensors live in host memory: the host may read and write buffers
     * directly (then params_changed), and host collectives (MPI) take them as they are */
    DT_BACKEND_HOST_MEMORY = 1u << 0,
};

/* "cpu", "cuda": for logs and reports */
const char *dt_backend_name(const dt_backend *b);
/* whether b has every capability in flags (DT_BACKEND_*) */
int dt_backend_has(const dt_backend *b, unsigned flags);
/* Releases the backend and everything it holds (b may be a zeroed handle: nothing to do). */
void dt_backend_free(const dt_backend *b);
/* waits until every queued op has finished */
int dt_backend_synchronize(const dt_backend *b, dt_error *err);
/* the compute stream as an opaque handle (cudaStream_t on CUDA, NULL on the CPU): device
 * collectives are queued on it so they run in the ops' order */
void *dt_backend_compute_stream(const dt_backend *b);

/* Host memory the backend can copy from asynchronously (CUDA: pinned; CPU: aligned
 * malloc). Used for the loader's batch slots. */
void *dt_backend_host_alloc(const dt_backend *b, size_t bytes, dt_error *err);
void dt_backend_host_free(const dt_backend *b, void *p);
/* the two above shaped as allocator hooks (user: the dt_backend), for the loader's batch slots */
void *dt_backend_host_alloc_hook(void *backend, size_t bytes, dt_error *err);
void dt_backend_host_free_hook(void *backend, void *p);
/* Blocks until every host pixel buffer handed to tensor_from_images so far has been read,
 * so that the caller may refill it. */
int dt_backend_input_wait(const dt_backend *b, dt_error *err);
/* Starts moving the next batch's pixels (bytes of pixels_nhwc, host_alloc memory) to the
 * device ahead of the tensor_from_images that takes the same pointer and size, so that the
 * copy overlaps the current step (CUDA: into the other device pixel buffer; CPU: nothing to
 * do, tensor_from_images reads the host pixels). The buffer stays untouched until input_wait
 * returns; input_wait forgets a prefetch not used by then, and tensor_from_images with other
 * pixels copies them itself. */
int dt_backend_input_prefetch(const dt_backend *b, const uint8_t *pixels_nhwc, size_t bytes,
                              dt_error *err);

/* The parameters were written other than through this interface (a load, a broadcast into
 * host memory on the CPU): cached derived weights are rebuilt on next use. */
void dt_backend_params_changed(const dt_backend *b);

/* Marks, in stream order, that the compute stream enters phase (dt_phase) from here on.
 * phase_read adds the seconds counted to each phase since the last reset into seconds[]
 * (waiting for the marks to complete) and resets the counters when reset is set. */
int dt_backend_phase_mark(const dt_backend *b, int phase, dt_error *err);
int dt_backend_phase_read(const dt_backend *b, double seconds[DT_PHASE_COUNT], int reset,
                          dt_error *err);

/* flat float buffers in backend memory */
float *dt_backend_buffer_alloc(const dt_backend *b, size_t count, dt_error *err); /* zero-filled */
void dt_backend_buffer_free(const dt_backend *b, float *buffer);
int dt_backend_buffer_upload(const dt_backend *b, float *dst, const float *host_src, size_t count,
                             dt_error *err);
int dt_backend_buffer_download(const dt_backend *b, float *host_dst, const float *src, size_t count,
                               dt_error *err);
int dt_backend_buffer_fill(const dt_backend *b, float *dst, float value, size_t count,
                           dt_error *err);
/* y += alpha * x */
int dt_backend_buffer_axpy(const dt_backend *b, float *y, float alpha, const float *x, size_t count,
                           dt_error *err);
/* updates params in place; momentum may be NULL when p->momentum == 0 */
int dt_backend_sgd_step(const dt_backend *b, const dt_sgd_params *p, float *params,
                        const float *grads, float *momentum, size_t count, dt_error *err);
/* updates params, exp_avg and exp_avg_sq in place (see dt_adamw_params) */
int dt_backend_adamw_step(const dt_backend *b, const dt_adamw_params *p, float *params,
                          const float *grads, float *exp_avg, float *exp_avg_sq, size_t count,
                          dt_error *err);
/* sum of squares of count floats (for weight norms and checks outside the step; waits) */
int dt_backend_buffer_sum_squares(const dt_backend *b, const float *src, size_t count, double *out,
                                  dt_error *err);

/* The non-finite guard (see dt_guard_state). guard_reset sets the state (records and
 * step_skipped ignored, halted_step taken as given) and the consecutive non-finite steps
 * that halt the guard (>= 1). guard_check: in stream order, the step's verdict from count
 * gradients at grads. guard_restore: in stream order, dst = backup when the last checked
 * step is skipped. guard_read waits for the queued ops, returns the state and clears its
 * records and skipped count. */
int dt_backend_guard_reset(const dt_backend *b, const dt_guard_state *state, int64_t halt_after,
                           dt_error *err);
int dt_backend_guard_check(const dt_backend *b, const float *grads, size_t count, int64_t step,
                           dt_error *err);
int dt_backend_guard_restore(const dt_backend *b, float *dst, const float *backup, size_t count,
                             dt_error *err);
int dt_backend_guard_read(const dt_backend *b, dt_guard_state *out, dt_error *err);
/* The moving average of a flat buffer, timm's ModelEmaV2 update in torch's float32 arithmetic:
 * ema = decay * ema + one_minus_decay * live, each product rounded and then the sum (never one
 * fused multiply-add), where one_minus_decay is 1 - decay computed in double and rounded, as
 * torch rounds Python's (1. - decay). Both factors in [0, 1]. guarded: nothing changes when the
 * last guard_check skipped its step (as a guarded sgd_step). In stream order, no wait. */
int dt_backend_ema_update(const dt_backend *b, float *ema, const float *live, float decay,
                          float one_minus_decay, size_t count, int guarded, dt_error *err);
/* the backend's own counts since it was created (never fails) */
void dt_backend_read_counters(const dt_backend *b, dt_backend_counters *out);
/* installs (check != NULL) or removes the check every host wait polls (see
 * dt_wait_check_fn); the CPU backend never waits and keeps it unused */
void dt_backend_set_wait_check(const dt_backend *b, dt_wait_check_fn check, void *user);

/* activations */
dt_tensor *dt_backend_tensor_create(const dt_backend *b, int n, int c, int h, int w, dt_error *err);
void dt_backend_tensor_destroy(const dt_backend *b, dt_tensor *t);
/* host arrays are plain NCHW float */
int dt_backend_tensor_upload(const dt_backend *b, dt_tensor *dst, const float *host_nchw,
                             dt_error *err);
int dt_backend_tensor_download(const dt_backend *b, const dt_tensor *src, float *host_nchw,
                               dt_error *err);
/* dst[n][c][h][w] = (pixels[n][h][w][c] / 255 - mean[c]) / std[c]; pixels uint8 NHWC RGB.
 * May return before the pixels are read (CUDA: an asynchronous copy from host_alloc
 * memory); the buffer stays untouched until input_wait returns. */
int dt_backend_tensor_from_images(const dt_backend *b, dt_tensor *dst, const uint8_t *pixels_nhwc,
                                  const float mean[3], const float std[3], dt_error *err);
/* dst += src (same shape) */
int dt_backend_tensor_add(const dt_backend *b, dt_tensor *dst, const dt_tensor *src, dt_error *err);

void dt_backend_layer_destroy(const dt_backend *b, dt_layer *layer);

/* convolution, no bias. weight: view into the parameter buffer, OIHW or (own_weight_layout)
 * in the layer's layout; weight_grad in the same layout. */
dt_layer *dt_backend_conv_create(const dt_backend *b, const dt_conv_desc *d, dt_error *err);
/* The layout of the layer's weights and weight gradient: 0 for OIHW, else an identifier of the
 * layer's own layout (same float count as OIHW; a permutation of it). Layers with the same
 * description and identifier, in any process, place every weight at the same index. */
uint64_t dt_backend_conv_weight_layout(const dt_backend *b, const dt_layer *l);
/* Host arrays of one layer's weight count: dst = src moved from OIHW into the layer's layout
 * (to_layer) or back; for a layer whose layout is not 0. dst and src do not overlap. */
int dt_backend_conv_weights_convert(const dt_backend *b, dt_layer *l, float *dst, const float *src,
                                    int to_layer, dt_error *err);
int dt_backend_conv_forward(const dt_backend *b, dt_layer *l, const float *weight,
                            const dt_tensor *x, dt_tensor *y, dt_error *err);
/* writes weight_grad when not NULL (overwrites, or adds when accumulate is set) and dx when
 * not NULL (overwrites). Follows this layer's conv_forward of the same step with the same
 * weight values (as autograd's saved tensors): the backend may reuse what that forward
 * derived from the weights. */
int dt_backend_conv_backward(const dt_backend *b, dt_layer *l, const float *weight,
                             const dt_tensor *x, const dt_tensor *dy, dt_tensor *dx,
                             float *weight_grad, int accumulate, dt_error *err);

/* batch normalisation (+ optional fused ReLU). training: batch statistics, saved for
 * backward, running statistics updated (unbiased variance, as torch); else running stats. */
dt_layer *dt_backend_batchnorm_create(const dt_backend *b, const dt_batchnorm_desc *d,
                                      dt_error *err);
int dt_backend_batchnorm_forward(const dt_backend *b, dt_layer *l, const float *gamma,
                                 const float *beta, float *running_mean, float *running_var,
                                 int training, const dt_tensor *x, dt_tensor *y, dt_error *err);
/* after a training forward; y is that forward's output (needed for the fused ReLU mask).
 * Writes dgamma/dbeta (when not NULL; overwritten, or added to when accumulate is set) and
 * overwrites dx. dx may be the same tensor as dy. */
int dt_backend_batchnorm_backward(const dt_backend *b, dt_layer *l, const float *gamma,
                                  const float *beta, const dt_tensor *x, const dt_tensor *y,
                                  const dt_tensor *dy, dt_tensor *dx, float *dgamma, float *dbeta,
                                  int accumulate, dt_error *err);

/* y = relu(y + x), in place on y (the residual join) */
int dt_backend_add_relu_forward(const dt_backend *b, dt_tensor *y, const dt_tensor *x,
                                dt_error *err);
/* dx = dy * (y > 0); dx may be the same tensor as dy */
int dt_backend_relu_backward(const dt_backend *b, const dt_tensor *y, const dt_tensor *dy,
                             dt_tensor *dx, dt_error *err);

dt_layer *dt_backend_maxpool_create(const dt_backend *b, const dt_pool_desc *d, dt_error *err);
int dt_backend_maxpool_forward(const dt_backend *b, dt_layer *l, const dt_tensor *x, dt_tensor *y,
                               dt_error *err);
int dt_backend_maxpool_backward(const dt_backend *b, dt_layer *l, const dt_tensor *dy,
                                dt_tensor *dx, dt_error *err);

/* global average pool: x (n,c,h,w) -> y (n,c,1,1) */
int dt_backend_avgpool_forward(const dt_backend *b, const dt_tensor *x, dt_tensor *y,
                               dt_error *err);
int dt_backend_avgpool_backward(const dt_backend *b, const dt_tensor *dy, dt_tensor *dx,
                                dt_error *err);

/* fully connected: x (n,in,1,1) -> y (n,out,1,1); weight [out][in], bias [out] */
dt_layer *dt_backend_linear_create(const dt_backend *b, const dt_linear_desc *d, dt_error *err);
int dt_backend_linear_forward(const dt_backend *b, dt_layer *l, const float *weight,
                              const float *bias, const dt_tensor *x, dt_tensor *y, dt_error *err);
/* writes weight_grad/bias_grad (when not NULL; overwritten, or added to when accumulate is
 * set) and overwrites dx (when not NULL) */
int dt_backend_linear_backward(const dt_backend *b, dt_layer *l, const float *weight,
                               const dt_tensor *x, const dt_tensor *dy, dt_tensor *dx,
                               float *weight_grad, float *bias_grad, int accumulate, dt_error *err);

/* Softmax cross-entropy over logits (n,k,1,1) with host labels and host per-sample weights
 * (0 or 1), both read before the call returns. Adds sum_i w_i * loss_i, the weighted count
 * of correct argmax predictions, sum_i w_i and the number of weighted samples whose loss is
 * not finite to the backend's loss statistics (see DT_LOSS_*). When dlogits is not NULL:
 * dlogits_i = grad_scale * w_i * (softmax_i - onehot_i). predictions (host, may be NULL):
 * argmax per sample, for which the backend may wait (evaluation and tests only). */
int dt_backend_softmax_cross_entropy(const dt_backend *b, const dt_tensor *logits,
                                     const int32_t *labels, const float *weights,
                                     dt_tensor *dlogits, float grad_scale, int32_t *predictions,
                                     dt_error *err);

/* The targets of the training loss: hard labels, optionally mixed with a second label per sample
 * (mixup/cutmix: timm's Mixup targets) and label-smoothed (torch CrossEntropyLoss's
 * label_smoothing). Sample i's target distribution over k classes is
 *   t_i = mix_lambda * s(labels_i) + (1 - mix_lambda) * s(mix_labels_i),
 *   s(y) = (1 - label_smoothing) * onehot(y) + label_smoothing / k,
 * (mix_labels NULL: t_i = s(labels_i)), its loss -sum_j t_ij log softmax_ij and its logits
 * gradient grad_scale * w_i * (softmax_i - t_i). DT_LOSS_CORRECT counts argmax == the label of
 * larger weight (labels_i when mix_lambda >= 0.5, else mix_labels_i). */
typedef struct dt_loss_targets {
    const int32_t *labels;     /* n hard labels */
    const float *weights;      /* n sample weights: 1 counted, 0 padding (label not read) */
    const int32_t *mix_labels; /* NULL, or n second labels */
    float mix_lambda;          /* [0, 1]: weight of labels when mix_labels is set */
    float label_smoothing;     /* [0, 1] */
} dt_loss_targets;

/* dt_backend_softmax_cross_entropy with these targets; the arrays are read before it returns. */
int dt_backend_softmax_cross_entropy_targets(const dt_backend *b, const dt_tensor *logits,
                                             const dt_loss_targets *targets, dt_tensor *dlogits,
                                             float grad_scale, int32_t *predictions, dt_error *err);
/* Waits for the queued ops and reads the loss statistics (out[DT_LOSS_*]); reset: zero them
 * afterwards. */
int dt_backend_loss_stats_read(const dt_backend *b, double out[DT_LOSS_STATS], int reset,
                               dt_error *err);

typedef struct dt_backend_options {
    int threads;   /* compute threads (CPU); 0 = all cores */
    int device;    /* GPU ordinal (CUDA) */
    int precision; /* dt_precision_kind */
    /* runtime.deterministic: bitwise-repeatable runs (CUDA: deterministic cuDNN engines only;
     * the CPU backend is deterministic already) */
    int deterministic;
} dt_backend_options;

/* CPU backend (oneDNN). Always compiled in. */
int dt_backend_cpu_create(const dt_backend_options *opt, dt_backend *out, dt_error *err);

/* CUDA backend (cuDNN, cuBLAS, own kernels), in the module libdtrain_cuda.so that the program
 * loads on first use (src/backend/cuda_module.c): a build without the toolkit, or a machine
 * where the module cannot load (libcudnn.so.9 or libcublas missing), fails with the reason
 * (dt_gpu_query's, include/dtrain/gpu.h). */
int dt_backend_cuda_create(const dt_backend_options *opt, dt_backend *out, dt_error *err);
/* this dtrain was built with the CUDA backend (whether or not it can load here) */
int dt_backend_cuda_training_available(void);
/* Library version strings for --version ("oneDNN 2.6.3", ...). */
const char *dt_backend_cpu_library_version(void);
/* One line for the start-up log of a CPU backend: the ISA oneDNN dispatches to, the activation
 * layout chosen for it, the precision. snprintf's return value. */
int dt_backend_cpu_describe(const dt_backend *backend, char *text, size_t size);

#endif
