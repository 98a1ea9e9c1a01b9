/* The backend interface's functions (include/dtrain/backend.h): each calls its backend's table
 * entry (src/backend/backend_impl.h), turns a missing optional entry into a no-op and a missing
 * required one into an error naming it, and makes the argument checks that every backend needs,
 * once, before the backend sees the call. */
#include <string.h>

#include "backend_impl.h"

static int missing(const dt_backend *b, const char *op, dt_error *err) {
    return dt_fail(err, "internal: the %s backend has no %s", b->ops->name, op);
}

const char *dt_precision_name(dt_precision_kind precision) {
    switch (precision) {
    case DT_PRECISION_FP32:
        return "fp32";
    case DT_PRECISION_TF32:
        return "tf32";
    case DT_PRECISION_BF16:
        return "bf16";
    case DT_PRECISION_AUTO:
        return "auto";
    case DT_PRECISION_WINOGRAD:
        return "winograd";
    }
    return "?";
}

const char *dt_backend_name(const dt_backend *b) {
    return b->ops->name;
}

int dt_backend_has(const dt_backend *b, unsigned flags) {
    return (b->ops->flags & flags) == flags;
}

void dt_backend_free(const dt_backend *b) {
    if (b->ops && b->ops->destroy) b->ops->destroy(b->ctx);
}

int dt_backend_synchronize(const dt_backend *b, dt_error *err) {
    if (!b->ops->synchronize) return missing(b, "synchronize", err);
    return b->ops->synchronize(b->ctx, err);
}

void *dt_backend_compute_stream(const dt_backend *b) {
    return b->ops->compute_stream ? b->ops->compute_stream(b->ctx) : NULL;
}

void *dt_backend_host_alloc(const dt_backend *b, size_t bytes, dt_error *err) {
    if (!b->ops->host_alloc) {
        missing(b, "host_alloc", err);
        return NULL;
    }
    return b->ops->host_alloc(b->ctx, bytes, err);
}

void dt_backend_host_free(const dt_backend *b, void *p) {
    if (b->ops->host_free) b->ops->host_free(b->ctx, p);
}

void *dt_backend_host_alloc_hook(void *backend, size_t bytes, dt_error *err) {
    return dt_backend_host_alloc(backend, bytes, err);
}

void dt_backend_host_free_hook(void *backend, void *p) {
    dt_backend_host_free(backend, p);
}

int dt_backend_input_wait(const dt_backend *b, dt_error *err) {
    if (!b->ops->input_wait) return 0; /* optional */
    return b->ops->input_wait(b->ctx, err);
}

int dt_backend_input_prefetch(const dt_backend *b, const uint8_t *pixels_nhwc, size_t bytes,
                              dt_error *err) {
    if (!b->ops->input_prefetch) return 0; /* optional */
    return b->ops->input_prefetch(b->ctx, pixels_nhwc, bytes, err);
}

void dt_backend_params_changed(const dt_backend *b) {
    if (b->ops->params_changed) b->ops->params_changed(b->ctx);
}

int dt_backend_phase_mark(const dt_backend *b, int phase, dt_error *err) {
    if (phase < 0 || phase >= DT_PHASE_COUNT) return dt_fail(err, "phase_mark: phase %d", phase);
    if (!b->ops->phase_mark) return 0; /* optional */
    return b->ops->phase_mark(b->ctx, phase, err);
}

int dt_backend_phase_read(const dt_backend *b, double seconds[DT_PHASE_COUNT], int reset,
                          dt_error *err) {
    if (!b->ops->phase_read) return 0; /* optional */
    return b->ops->phase_read(b->ctx, seconds, reset, err);
}

float *dt_backend_buffer_alloc(const dt_backend *b, size_t count, dt_error *err) {
    if (!b->ops->buffer_alloc) {
        missing(b, "buffer_alloc", err);
        return NULL;
    }
    return b->ops->buffer_alloc(b->ctx, count, err);
}

void dt_backend_buffer_free(const dt_backend *b, float *buffer) {
    if (b->ops->buffer_free) b->ops->buffer_free(b->ctx, buffer);
}

int dt_backend_buffer_upload(const dt_backend *b, float *dst, const float *host_src, size_t count,
                             dt_error *err) {
    if (!b->ops->buffer_upload) return missing(b, "buffer_upload", err);
    return b->ops->buffer_upload(b->ctx, dst, host_src, count, err);
}

int dt_backend_buffer_download(const dt_backend *b, float *host_dst, const float *src, size_t count,
                               dt_error *err) {
    if (!b->ops->buffer_download) return missing(b, "buffer_download", err);
    return b->ops->buffer_download(b->ctx, host_dst, src, count, err);
}

int dt_backend_buffer_fill(const dt_backend *b, float *dst, float value, size_t count,
                           dt_error *err) {
    if (!b->ops->buffer_fill) return missing(b, "buffer_fill", err);
    return b->ops->buffer_fill(b->ctx, dst, value, count, err);
}

int dt_backend_buffer_axpy(const dt_backend *b, float *y, float alpha, const float *x, size_t count,
                           dt_error *err) {
    if (!b->ops->buffer_axpy) return missing(b, "buffer_axpy", err);
    return b->ops->buffer_axpy(b->ctx, y, alpha, x, count, err);
}

int dt_backend_sgd_step(const dt_backend *b, const dt_sgd_params *p, float *params,
                        const float *grads, float *momentum, size_t count, dt_error *err) {
    if (!b->ops->sgd_step) return missing(b, "sgd_step", err);
    if (p->momentum != 0.0f && !momentum)
        return dt_fail(err, "sgd_step: momentum %g needs a momentum buffer", (double)p->momentum);
    return b->ops->sgd_step(b->ctx, p, params, grads, momentum, count, err);
}

int dt_backend_adamw_step(const dt_backend *b, const dt_adamw_params *p, float *params,
                          const float *grads, float *exp_avg, float *exp_avg_sq, size_t count,
                          dt_error *err) {
    if (!b->ops->adamw_step) return missing(b, "adamw_step", err);
    if (!(p->beta1 >= 0.0 && p->beta1 < 1.0) || !(p->beta2 >= 0.0 && p->beta2 < 1.0) ||
        !(p->eps > 0.0) || !(p->lr >= 0.0) || !(p->weight_decay >= 0.0) || p->step < 1)
        return dt_fail(err,
                       "adamw_step: needs betas in [0, 1), eps > 0, lr and weight_decay >= 0 and "
                       "step >= 1 (got betas %g %g, eps %g, lr %g, weight_decay %g, step %lld)",
                       p->beta1, p->beta2, p->eps, p->lr, p->weight_decay, (long long)p->step);
    if (count && (!params || !grads || !exp_avg || !exp_avg_sq))
        return dt_fail(err, "adamw_step: a buffer is NULL");
    return b->ops->adamw_step(b->ctx, p, params, grads, exp_avg, exp_avg_sq, count, err);
}

int dt_backend_buffer_sum_squares(const dt_backend *b, const float *src, size_t count, double *out,
                                  dt_error *err) {
    if (!b->ops->buffer_sum_squares) return missing(b, "buffer_sum_squares", err);
    return b->ops->buffer_sum_squares(b->ctx, src, count, out, err);
}

int dt_backend_guard_reset(const dt_backend *b, const dt_guard_state *state, int64_t halt_after,
                           dt_error *err) {
    if (!b->ops->guard_reset) return missing(b, "guard_reset", err);
    if (halt_after < 1)
        return dt_fail(err, "guard_reset: halt_after %lld is below 1", (long long)halt_after);
    return b->ops->guard_reset(b->ctx, state, halt_after, err);
}

int dt_backend_guard_check(const dt_backend *b, const float *grads, size_t count, int64_t step,
                           dt_error *err) {
    if (!b->ops->guard_check) return missing(b, "guard_check", err);
    return b->ops->guard_check(b->ctx, grads, count, step, err);
}

int dt_backend_guard_restore(const dt_backend *b, float *dst, const float *backup, size_t count,
                             dt_error *err) {
    if (!b->ops->guard_restore) return missing(b, "guard_restore", err);
    return b->ops->guard_restore(b->ctx, dst, backup, count, err);
}

int dt_backend_guard_read(const dt_backend *b, dt_guard_state *out, dt_error *err) {
    if (!b->ops->guard_read) return missing(b, "guard_read", err);
    return b->ops->guard_read(b->ctx, out, err);
}

int dt_backend_ema_update(const dt_backend *b, float *ema, const float *live, float decay,
                          float one_minus_decay, size_t count, int guarded, dt_error *err) {
    if (!b->ops->ema_update) return missing(b, "ema_update", err);
    if (!(decay >= 0.0f && decay <= 1.0f && one_minus_decay >= 0.0f && one_minus_decay <= 1.0f))
        return dt_fail(err, "ema_update: decay %g and 1 - decay %g must be in [0, 1]",
                       (double)decay, (double)one_minus_decay);
    return b->ops->ema_update(b->ctx, ema, live, decay, one_minus_decay, count, guarded, err);
}

void dt_backend_read_counters(const dt_backend *b, dt_backend_counters *out) {
    memset(out, 0, sizeof *out); /* optional: a backend without it waits and allocates nothing */
    if (b->ops->counters) b->ops->counters(b->ctx, out);
}

void dt_backend_set_wait_check(const dt_backend *b, dt_wait_check_fn check, void *user) {
    if (b->ops->set_wait_check) b->ops->set_wait_check(b->ctx, check, user);
}

dt_tensor *dt_backend_tensor_create(const dt_backend *b, int n, int c, int h, int w,
                                    dt_error *err) {
    if (!b->ops->tensor_create) {
        missing(b, "tensor_create", err);
        return NULL;
    }
    if (n <= 0 || c <= 0 || h <= 0 || w <= 0) {
        dt_fail(err, "tensor_create: shape %dx%dx%dx%d has a non-positive size", n, c, h, w);
        return NULL;
    }
    return b->ops->tensor_create(b->ctx, n, c, h, w, err);
}

void dt_backend_tensor_destroy(const dt_backend *b, dt_tensor *t) {
    if (b->ops->tensor_destroy) b->ops->tensor_destroy(b->ctx, t);
}

int dt_backend_tensor_upload(const dt_backend *b, dt_tensor *dst, const float *host_nchw,
                             dt_error *err) {
    if (!b->ops->tensor_upload) return missing(b, "tensor_upload", err);
    return b->ops->tensor_upload(b->ctx, dst, host_nchw, err);
}

int dt_backend_tensor_download(const dt_backend *b, const dt_tensor *src, float *host_nchw,
                               dt_error *err) {
    if (!b->ops->tensor_download) return missing(b, "tensor_download", err);
    return b->ops->tensor_download(b->ctx, src, host_nchw, err);
}

int dt_backend_tensor_from_images(const dt_backend *b, dt_tensor *dst, const uint8_t *pixels_nhwc,
                                  const float mean[3], const float std[3], dt_error *err) {
    if (!b->ops->tensor_from_images) return missing(b, "tensor_from_images", err);
    return b->ops->tensor_from_images(b->ctx, dst, pixels_nhwc, mean, std, err);
}

int dt_backend_tensor_add(const dt_backend *b, dt_tensor *dst, const dt_tensor *src,
                          dt_error *err) {
    if (!b->ops->tensor_add) return missing(b, "tensor_add", err);
    return b->ops->tensor_add(b->ctx, dst, src, err);
}

void dt_backend_layer_destroy(const dt_backend *b, dt_layer *layer) {
    if (b->ops->layer_destroy) b->ops->layer_destroy(b->ctx, layer);
}

dt_layer *dt_backend_conv_create(const dt_backend *b, const dt_conv_desc *d, dt_error *err) {
    if (!b->ops->conv_create) {
        missing(b, "conv_create", err);
        return NULL;
    }
    return b->ops->conv_create(b->ctx, d, err);
}

uint64_t dt_backend_conv_weight_layout(const dt_backend *b, const dt_layer *l) {
    return b->ops->conv_weight_layout ? b->ops->conv_weight_layout(b->ctx, l) : 0;
}

int dt_backend_conv_weights_convert(const dt_backend *b, dt_layer *l, float *dst, const float *src,
                                    int to_layer, dt_error *err) {
    if (b->ops->conv_weights_convert)
        return b->ops->conv_weights_convert(b->ctx, l, dst, src, to_layer, err);
    return dt_fail(err,
                   "internal: the %s backend keeps convolution weights in OIHW; nothing to "
                   "convert",
                   dt_backend_name(b));
}

int dt_backend_conv_forward(const dt_backend *b, dt_layer *l, const float *weight,
                            const dt_tensor *x, dt_tensor *y, dt_error *err) {
    if (!b->ops->conv_forward) return missing(b, "conv_forward", err);
    return b->ops->conv_forward(b->ctx, l, weight, x, y, err);
}

int dt_backend_conv_backward(const dt_backend *b, dt_layer *l, const float *weight,
                             const dt_tensor *x, const dt_tensor *dy, dt_tensor *dx,
                             float *weight_grad, int accumulate, dt_error *err) {
    if (!b->ops->conv_backward) return missing(b, "conv_backward", err);
    return b->ops->conv_backward(b->ctx, l, weight, x, dy, dx, weight_grad, accumulate, err);
}

dt_layer *dt_backend_batchnorm_create(const dt_backend *b, const dt_batchnorm_desc *d,
                                      dt_error *err) {
    if (!b->ops->batchnorm_create) {
        missing(b, "batchnorm_create", err);
        return NULL;
    }
    return b->ops->batchnorm_create(b->ctx, d, err);
}

int dt_backend_batchnorm_forward(const dt_backend *b, dt_layer *l, const float *gamma,
                                 const float *beta, float *running_mean, float *running_var,
                                 int training, const dt_tensor *x, dt_tensor *y, dt_error *err) {
    if (!b->ops->batchnorm_forward) return missing(b, "batchnorm_forward", err);
    return b->ops->batchnorm_forward(b->ctx, l, gamma, beta, running_mean, running_var, training, x,
                                     y, err);
}

int dt_backend_batchnorm_backward(const dt_backend *b, dt_layer *l, const float *gamma,
                                  const float *beta, const dt_tensor *x, const dt_tensor *y,
                                  const dt_tensor *dy, dt_tensor *dx, float *dgamma, float *dbeta,
                                  int accumulate, dt_error *err) {
    if (!b->ops->batchnorm_backward) return missing(b, "batchnorm_backward", err);
    return b->ops->batchnorm_backward(b->ctx, l, gamma, beta, x, y, dy, dx, dgamma, dbeta,
                                      accumulate, err);
}

int dt_backend_add_relu_forward(const dt_backend *b, dt_tensor *y, const dt_tensor *x,
                                dt_error *err) {
    if (!b->ops->add_relu_forward) return missing(b, "add_relu_forward", err);
    return b->ops->add_relu_forward(b->ctx, y, x, err);
}

int dt_backend_relu_backward(const dt_backend *b, const dt_tensor *y, const dt_tensor *dy,
                             dt_tensor *dx, dt_error *err) {
    if (!b->ops->relu_backward) return missing(b, "relu_backward", err);
    return b->ops->relu_backward(b->ctx, y, dy, dx, err);
}

dt_layer *dt_backend_maxpool_create(const dt_backend *b, const dt_pool_desc *d, dt_error *err) {
    if (!b->ops->maxpool_create) {
        missing(b, "maxpool_create", err);
        return NULL;
    }
    return b->ops->maxpool_create(b->ctx, d, err);
}

int dt_backend_maxpool_forward(const dt_backend *b, dt_layer *l, const dt_tensor *x, dt_tensor *y,
                               dt_error *err) {
    if (!b->ops->maxpool_forward) return missing(b, "maxpool_forward", err);
    return b->ops->maxpool_forward(b->ctx, l, x, y, err);
}

int dt_backend_maxpool_backward(const dt_backend *b, dt_layer *l, const dt_tensor *dy,
                                dt_tensor *dx, dt_error *err) {
    if (!b->ops->maxpool_backward) return missing(b, "maxpool_backward", err);
    return b->ops->maxpool_backward(b->ctx, l, dy, dx, err);
}

int dt_backend_avgpool_forward(const dt_backend *b, const dt_tensor *x, dt_tensor *y,
                               dt_error *err) {
    if (!b->ops->avgpool_forward) return missing(b, "avgpool_forward", err);
    return b->ops->avgpool_forward(b->ctx, x, y, err);
}

int dt_backend_avgpool_backward(const dt_backend *b, const dt_tensor *dy, dt_tensor *dx,
                                dt_error *err) {
    if (!b->ops->avgpool_backward) return missing(b, "avgpool_backward", err);
    return b->ops->avgpool_backward(b->ctx, dy, dx, err);
}

dt_layer *dt_backend_linear_create(const dt_backend *b, const dt_linear_desc *d, dt_error *err) {
    if (!b->ops->linear_create) {
        missing(b, "linear_create", err);
        return NULL;
    }
    if (d->batch <= 0 || d->in_features <= 0 || d->out_features <= 0) {
        dt_fail(err, "linear_create: invalid description (batch %d, %d -> %d features)", d->batch,
                d->in_features, d->out_features);
        return NULL;
    }
    return b->ops->linear_create(b->ctx, d, err);
}

int dt_backend_linear_forward(const dt_backend *b, dt_layer *l, const float *weight,
                              const float *bias, const dt_tensor *x, dt_tensor *y, dt_error *err) {
    if (!b->ops->linear_forward) return missing(b, "linear_forward", err);
    return b->ops->linear_forward(b->ctx, l, weight, bias, x, y, err);
}

int dt_backend_linear_backward(const dt_backend *b, dt_layer *l, const float *weight,
                               const dt_tensor *x, const dt_tensor *dy, dt_tensor *dx,
                               float *weight_grad, float *bias_grad, int accumulate,
                               dt_error *err) {
    if (!b->ops->linear_backward) return missing(b, "linear_backward", err);
    return b->ops->linear_backward(b->ctx, l, weight, x, dy, dx, weight_grad, bias_grad, accumulate,
                                   err);
}

int dt_backend_softmax_cross_entropy(const dt_backend *b, const dt_tensor *logits,
                                     const int32_t *labels, const float *weights,
                                     dt_tensor *dlogits, float grad_scale, int32_t *predictions,
                                     dt_error *err) {
    const dt_loss_targets targets = {.labels = labels, .weights = weights, .mix_lambda = 1.0f};
    return dt_backend_softmax_cross_entropy_targets(b, logits, &targets, dlogits, grad_scale,
                                                    predictions, err);
}

int dt_backend_softmax_cross_entropy_targets(const dt_backend *b, const dt_tensor *logits,
                                             const dt_loss_targets *targets, dt_tensor *dlogits,
                                             float grad_scale, int32_t *predictions,
                                             dt_error *err) {
    if (!b->ops->softmax_cross_entropy) return missing(b, "softmax_cross_entropy", err);
    /* NaN fails these comparisons too */
    if (!(targets->label_smoothing >= 0.0f && targets->label_smoothing <= 1.0f))
        return dt_fail(err, "softmax_cross_entropy: label smoothing %g outside [0, 1]",
                       (double)targets->label_smoothing);
    if (targets->mix_labels && !(targets->mix_lambda >= 0.0f && targets->mix_lambda <= 1.0f))
        return dt_fail(err, "softmax_cross_entropy: mix lambda %g outside [0, 1]",
                       (double)targets->mix_lambda);
    return b->ops->softmax_cross_entropy(b->ctx, logits, targets, dlogits, grad_scale, predictions,
                                         err);
}

int dt_backend_loss_stats_read(const dt_backend *b, double out[DT_LOSS_STATS], int reset,
                               dt_error *err) {
    if (!b->ops->loss_stats_read) return missing(b, "loss_stats_read", err);
    return b->ops->loss_stats_read(b->ctx, out, reset, err);
}
