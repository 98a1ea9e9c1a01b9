/* The optimizer step of a training run (train.optimizer, train.no_weight_decay,
 * train.clip_grad_norm): torch.optim.SGD or torch.optim.AdamW over the trainable span of the flat
 * parameter buffer, weight decay left out of the ranges timm excludes (every tensor of one
 * dimension: BN weights and biases, fc.bias), and the gradients clipped to a global L2 norm as
 * torch.nn.utils.clip_grad_norm_ after the all-reduce. Takes the model and the config, not the
 * trainer. */
#ifndef DTRAIN_OPTIMIZER_H
#define DTRAIN_OPTIMIZER_H

#include <stddef.h>

#include "dtrain/config.h"
#include "dtrain/model.h"

/* A run of consecutive parameters of the flat buffer with one weight-decay setting. */
typedef struct dt_decay_range {
    size_t offset, count; /* floats of the parameter buffer */
    int decayed;          /* 0: weight decay 0 (train.no_weight_decay) */
} dt_decay_range;

typedef struct dt_optimizer {
    const dt_config *cfg;
    dt_model *model;
    dt_decay_range *ranges; /* cover the trainable span in ascending order */
    int n_ranges;
} dt_optimizer;

/* The ranges of the trainable span's parameters whose weight decay train.no_weight_decay keeps
 * (decayed) or removes: maximal runs, ascending, covering [offset, offset + count). */
int dt_decay_ranges(const dt_model *model, dt_no_weight_decay rule, dt_decay_range **out, int *n,
                    dt_error *err);

/* Before the first step: the ranges, and AdamW's second buffer allocated in the model. */
int dt_optimizer_init(dt_optimizer *o, const dt_config *cfg, dt_model *model, dt_error *err);
void dt_optimizer_free(dt_optimizer *o);

/* One guarded update from grads (the whole trainable span of the gradient buffer, holding the
 * sum that grad_scale turns into the mean) at learning rate lr; global_step counts from 0 and
 * skipped steps included (AdamW's bias correction leaves those out in the backend). With
 * train.clip_grad_norm the global norm of the mean gradient is computed first (a wait for the
 * device) and returned in *norm (before clipping); else *norm is -1. */
int dt_optimizer_step(dt_optimizer *o, long global_step, double lr, float grad_scale,
                      const float *grads, double *norm, dt_error *err);

/* "sgd" or "adamw" (train.optimizer); dt_optimizer_describe: the optimizer and its options for
 * the report ("adamw, no weight decay on norms and biases, gradients clipped to norm 1"). */
const char *dt_optimizer_name(const dt_config *cfg);
void dt_optimizer_describe(const dt_config *cfg, char *out, size_t size);

/* The bias-correction step count of AdamW after `step` steps of which `skipped` were skipped
 * (what optimizer.safetensors records). */
long dt_optimizer_steps_taken(long step, long skipped);

#endif
