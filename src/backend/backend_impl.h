/* The backend table: what a backend implements, private to src/backend/. Callers use the
 * functions of include/dtrain/backend.h, which document each entry; here, what a backend must
 * provide. Entries marked optional may be NULL: the wrapper then does nothing (or returns NULL /
 * zeros): compute_stream, input_wait, input_prefetch, params_changed, phase_mark, phase_read,
 * counters, set_wait_check, host_free, buffer_free, tensor_destroy, layer_destroy,
 * conv_weight_layout (0: OIHW; then conv_weights_convert is never called). Any other
 * entry left NULL makes its wrapper fail with an error naming it. */
#ifndef DTRAIN_BACKEND_IMPL_H
#define DTRAIN_BACKEND_IMPL_H

#include "dtrain/backend.h"
#include "dtrain/error.h"

typedef struct dt_backend_ops {
    const char *name; /* "cpu", "cuda" */
    unsigned flags;   /* DT_BACKEND_* capabilities */

    void (*destroy)(void *ctx);
    /* waits until every queued op has finished */
    int (*synchronize)(void *ctx, dt_error *err);
    /* the compute stream as an opaque handle (cudaStream_t on CUDA, NULL on the CPU): device
     * collectives are queued on it so they run in the ops' order */
    void *(*compute_stream)(void *ctx);

    /* Host memory the backend can copy from asynchronously (CUDA: pinned; CPU: aligned
     * malloc). Used for the loader's batch slots. */
    void *(*host_alloc)(void *ctx, size_t bytes, dt_error *err);
    void (*host_free)(void *ctx, void *p);
    /* Blocks until every host pixel buffer handed to tensor_from_images so far has been read,
     * so that the caller may refill it. */
    int (*input_wait)(void *ctx, dt_error *err);
    /* Starts moving the next batch's pixels (bytes of pixels_nhwc, host_alloc memory) to the
     * device ahead of the tensor_from_images that takes the same pointer and size, so that the
     * copy overlaps the current step (CUDA: into the other device pixel buffer; CPU: nothing to
     * do, tensor_from_images reads the host pixels). The buffer stays untouched until input_wait
     * returns; input_wait forgets a prefetch not used by then, and tensor_from_images with other
     * pixels copies them itself. */
    int (*input_prefetch)(void *ctx, const uint8_t *pixels_nhwc, size_t bytes, dt_error *err);

    /* The parameters were written other than through this interface (a load, a broadcast into
     * host memory on the CPU): cached derived weights are rebuilt on next use. */
    void (*params_changed)(void *ctx);

    /* Marks, in stream order, that the compute stream enters phase (dt_phase) from here on.
     * phase_read adds the seconds counted to each phase since the last reset into seconds[]
     * (waiting for the marks to complete) and resets the counters when reset is set. */
    int (*phase_mark)(void *ctx, int phase, dt_error *err);
    int (*phase_read)(void *ctx, double seconds[DT_PHASE_COUNT], int reset, dt_error *err);

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
    /* updates params, exp_avg and exp_avg_sq in place (dt_adamw_params); the wrapper checked
     * the parameters and that no buffer is NULL */
    int (*adamw_step)(void *ctx, const dt_adamw_params *p, float *params, const float *grads,
                      float *exp_avg, float *exp_avg_sq, size_t count, dt_error *err);
    /* sum of squares of count floats (for weight norms and checks outside the step; waits) */
    int (*buffer_sum_squares)(void *ctx, const float *src, size_t count, double *out,
                              dt_error *err);

    /* The non-finite guard (see dt_guard_state). guard_reset sets the state (records and
     * step_skipped ignored, halted_step taken as given) and the consecutive non-finite steps
     * that halt the guard (>= 1). guard_check: in stream order, the step's verdict from count
     * gradients at grads. guard_restore: in stream order, dst = backup when the last checked
     * step is skipped. guard_read waits for the queued ops, returns the state and clears its
     * records and skipped count. */
    int (*guard_reset)(void *ctx, const dt_guard_state *state, int64_t halt_after, dt_error *err);
    int (*guard_check)(void *ctx, const float *grads, size_t count, int64_t step, dt_error *err);
    int (*guard_restore)(void *ctx, float *dst, const float *backup, size_t count, dt_error *err);
    int (*guard_read)(void *ctx, dt_guard_state *out, dt_error *err);
    /* ema = decay * ema + one_minus_decay * live (two rounded products, then the sum); nothing
     * when guarded and the last guard_check skipped its step */
    int (*ema_update)(void *ctx, float *ema, const float *live, float decay, float one_minus_decay,
                      size_t count, int guarded, dt_error *err);
    /* the backend's own counts since it was created (never fails) */
    void (*counters)(void *ctx, dt_backend_counters *out);
    /* installs (check != NULL) or removes the check every host wait polls (see
     * dt_wait_check_fn); the CPU backend never waits and keeps it unused */
    void (*set_wait_check)(void *ctx, dt_wait_check_fn check, void *user);

    /* activations */
    dt_tensor *(*tensor_create)(void *ctx, int n, int c, int h, int w, dt_error *err);
    void (*tensor_destroy)(void *ctx, dt_tensor *t);
    /* host arrays are plain NCHW float */
    int (*tensor_upload)(void *ctx, dt_tensor *dst, const float *host_nchw, dt_error *err);
    int (*tensor_download)(void *ctx, const dt_tensor *src, float *host_nchw, dt_error *err);
    /* dst[n][c][h][w] = (pixels[n][h][w][c] / 255 - mean[c]) / std[c]; pixels uint8 NHWC RGB.
     * May return before the pixels are read (CUDA: an asynchronous copy from host_alloc
     * memory); the buffer stays untouched until input_wait returns. */
    int (*tensor_from_images)(void *ctx, dt_tensor *dst, const uint8_t *pixels_nhwc,
                              const float mean[3], const float std[3], dt_error *err);
    /* dst += src (same shape) */
    int (*tensor_add)(void *ctx, dt_tensor *dst, const dt_tensor *src, dt_error *err);

    void (*layer_destroy)(void *ctx, dt_layer *layer);

    /* convolution, no bias. weight: OIHW view into the parameter buffer, or in the layer's own
     * layout (d->own_weight_layout; the two below, which a backend without layouts of its own
     * leaves NULL) */
    dt_layer *(*conv_create)(void *ctx, const dt_conv_desc *d, dt_error *err);
    uint64_t (*conv_weight_layout)(void *ctx, const dt_layer *l);
    int (*conv_weights_convert)(void *ctx, dt_layer *l, float *dst, const float *src, int to_layer,
                                dt_error *err);
    int (*conv_forward)(void *ctx, dt_layer *l, const float *weight, const dt_tensor *x,
                        dt_tensor *y, dt_error *err);
    /* writes weight_grad when not NULL (overwrites, or adds when accumulate is set) and dx when
     * not NULL (overwrites). Follows this layer's conv_forward of the same step with the same
     * weight values (as autograd's saved tensors): the backend may reuse what that forward
     * derived from the weights. */
    int (*conv_backward)(void *ctx, dt_layer *l, const float *weight, const dt_tensor *x,
                         const dt_tensor *dy, dt_tensor *dx, float *weight_grad, int accumulate,
                         dt_error *err);

    /* batch normalisation (+ optional fused ReLU). training: batch statistics, saved for
     * backward, running statistics updated (unbiased variance, as torch); else running stats. */
    dt_layer *(*batchnorm_create)(void *ctx, const dt_batchnorm_desc *d, dt_error *err);
    int (*batchnorm_forward)(void *ctx, dt_layer *l, const float *gamma, const float *beta,
                             float *running_mean, float *running_var, int training,
                             const dt_tensor *x, dt_tensor *y, dt_error *err);
    /* after a training forward; y is that forward's output (needed for the fused ReLU mask).
     * Writes dgamma/dbeta (when not NULL; overwritten, or added to when accumulate is set) and
     * overwrites dx. dx may be the same tensor as dy. */
    int (*batchnorm_backward)(void *ctx, dt_layer *l, const float *gamma, const float *beta,
                              const dt_tensor *x, const dt_tensor *y, const dt_tensor *dy,
                              dt_tensor *dx, float *dgamma, float *dbeta, int accumulate,
                              dt_error *err);

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
    /* writes weight_grad/bias_grad (when not NULL; overwritten, or added to when accumulate is
     * set) and overwrites dx (when not NULL) */
    int (*linear_backward)(void *ctx, dt_layer *l, const float *weight, const dt_tensor *x,
                           const dt_tensor *dy, dt_tensor *dx, float *weight_grad, float *bias_grad,
                           int accumulate, dt_error *err);

    /* Softmax cross-entropy over logits (n,k,1,1) with host targets (dt_loss_targets: labels,
     * per-sample weights 0 or 1, optional second labels and label smoothing), read before the
     * call returns. Adds sum_i w_i * loss_i, the weighted count of correct argmax predictions,
     * sum_i w_i and the number of weighted samples whose loss is not finite to the backend's
     * loss statistics (see DT_LOSS_*). When dlogits is not NULL:
     * dlogits_i = grad_scale * w_i * (softmax_i - target_i). predictions (host, may be NULL):
     * argmax per sample, for which the backend may wait (evaluation and tests only). */
    int (*softmax_cross_entropy)(void *ctx, const dt_tensor *logits, const dt_loss_targets *targets,
                                 dt_tensor *dlogits, float grad_scale, int32_t *predictions,
                                 dt_error *err);
    /* Waits for the queued ops and reads the loss statistics (out[DT_LOSS_*]); reset: zero them
     * afterwards. */
    int (*loss_stats_read)(void *ctx, double out[DT_LOSS_STATS], int reset, dt_error *err);
} dt_backend_ops;

/* softmax_cross_entropy's label check, shared by the backends (whose tensors alone know the
 * class count): a counted sample's labels (and second labels when mixed) must be in [0, k);
 * padding slots (weight 0) may hold anything. */
static inline int dt_backend_check_loss_labels(const dt_loss_targets *targets, int n, int k,
                                               dt_error *err) {
    for (int pass = 0; pass < 2; pass++) {
        const int32_t *labels = pass == 0 ? targets->labels : targets->mix_labels;
        if (!labels) continue;
        for (int i = 0; i < n; i++)
            if (targets->weights[i] != 0.0f && (labels[i] < 0 || labels[i] >= k))
                return dt_fail(err, "softmax_cross_entropy: sample %d has %s %d, outside [0, %d)",
                               i, pass == 0 ? "label" : "second label", (int)labels[i], k);
    }
    return 0;
}

#endif
