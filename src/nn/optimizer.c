/* The optimizer step (dtrain/optimizer.h): weight-decay ranges, gradient clipping, and the
 * backend's SGD or AdamW update over each range. */
#include "dtrain/optimizer.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* timm's rule (param_groups_weight_decay): no decay for a tensor of one dimension or less (BN
 * weights and biases, every bias of a ResNet) */
static int decayed(const dt_state_entry *e, dt_no_weight_decay rule) {
    return rule == DT_NO_WEIGHT_DECAY_NONE || e->ndim > 1;
}

int dt_decay_ranges(const dt_model *model, dt_no_weight_decay rule, dt_decay_range **out, int *n,
                    dt_error *err) {
    size_t span_offset, span_count, n_entries;
    dt_model_trainable_span(model, &span_offset, &span_count);
    const dt_state_entry *entries = dt_model_state(model, &n_entries);
    *out = NULL;
    *n = 0;
    dt_decay_range *ranges = calloc(n_entries ? n_entries : 1, sizeof *ranges);
    if (!ranges) return dt_fail(err, "optimizer: out of memory");
    size_t at = span_offset, end = span_offset + span_count;
    int used = 0;
    /* walk the span in offset order; parameters are laid out back to back */
    while (at < end) {
        const dt_state_entry *e = NULL;
        for (size_t i = 0; i < n_entries && !e; i++)
            if (entries[i].role == DT_TENSOR_PARAMETER && entries[i].offset == at) e = &entries[i];
        if (!e || e->count == 0 || e->offset + e->count > end) {
            free(ranges);
            return dt_fail(err, "internal: no parameter tensor starts at offset %zu of the span",
                           at);
        }
        int d = decayed(e, rule);
        if (used > 0 && ranges[used - 1].decayed == d)
            ranges[used - 1].count += e->count;
        else
            ranges[used++] = (dt_decay_range){.offset = at, .count = e->count, .decayed = d};
        at += e->count;
    }
    *out = ranges;
    *n = used;
    return 0;
}

int dt_optimizer_init(dt_optimizer *o, const dt_config *cfg, dt_model *model, dt_error *err) {
    memset(o, 0, sizeof *o);
    o->cfg = cfg;
    o->model = model;
    dt_no_weight_decay rule =
        cfg->train.weight_decay > 0.0 ? cfg->train.no_weight_decay : DT_NO_WEIGHT_DECAY_NONE;
    if (dt_decay_ranges(model, rule, &o->ranges, &o->n_ranges, err)) return -1;
    if (cfg->train.optimizer == DT_OPTIMIZER_ADAMW && dt_model_use_second_moment(model, err))
        return -1;
    return 0;
}

void dt_optimizer_free(dt_optimizer *o) {
    free(o->ranges);
    o->ranges = NULL;
    o->n_ranges = 0;
}

const char *dt_optimizer_name(const dt_config *cfg) {
    return cfg->train.optimizer == DT_OPTIMIZER_ADAMW ? "adamw" : "sgd";
}

void dt_optimizer_describe(const dt_config *cfg, char *out, size_t size) {
    const char *no_decay = cfg->train.no_weight_decay == DT_NO_WEIGHT_DECAY_NORM_AND_BIAS &&
                                   cfg->train.weight_decay > 0
                               ? ", no weight decay on norms and biases"
                               : "";
    char clip[64] = "";
    if (cfg->train.clip_grad_norm > 0)
        snprintf(clip, sizeof clip, ", gradients clipped to norm %g", cfg->train.clip_grad_norm);
    snprintf(out, size, "%s, weight decay %g%s%s", dt_optimizer_name(cfg), cfg->train.weight_decay,
             no_decay, clip);
}

long dt_optimizer_steps_taken(long step, long skipped) {
    return step - skipped;
}

/* torch.nn.utils.clip_grad_norm_: the norm of the mean gradient, and the factor that brings it
 * down to max_norm (1 when it is within, or not finite: the guard skips such a step). */
static int clip_factor(dt_optimizer *o, float grad_scale, const float *grads, size_t count,
                       double *norm, double *factor, dt_error *err) {
    double squares;
    if (dt_backend_buffer_sum_squares(dt_model_backend(o->model), grads, count, &squares, err))
        return dt_error_prefix(err, "gradient norm");
    *norm = (double)grad_scale * sqrt(squares);
    *factor = 1.0;
    double coef = o->cfg->train.clip_grad_norm / (*norm + 1e-6);
    if (isfinite(*norm) && coef < 1.0) *factor = coef;
    return 0;
}

int dt_optimizer_step(dt_optimizer *o, long global_step, double lr, float grad_scale,
                      const float *grads, double *norm, dt_error *err) {
    const dt_config *cfg = o->cfg;
    const dt_backend *b = dt_model_backend(o->model);
    size_t span_offset, span_count;
    dt_model_trainable_span(o->model, &span_offset, &span_count);
    *norm = -1.0;
    if (cfg->train.clip_grad_norm > 0.0) {
        double factor = 1.0;
        if (clip_factor(o, grad_scale, grads, span_count, norm, &factor, err)) return -1;
        grad_scale = (float)((double)grad_scale * factor);
    }
    float *params = dt_model_params(o->model), *momentum = dt_model_momentum(o->model);
    float *second = dt_model_second_moment(o->model);
    for (int r = 0; r < o->n_ranges; r++) {
        const dt_decay_range *range = &o->ranges[r];
        const float *g = grads + (range->offset - span_offset);
        double wd = range->decayed ? cfg->train.weight_decay : 0.0;
        int rc;
        if (cfg->train.optimizer == DT_OPTIMIZER_ADAMW) {
            dt_adamw_params p = {.lr = lr,
                                 .beta1 = cfg->train.betas[0],
                                 .beta2 = cfg->train.betas[1],
                                 .eps = cfg->train.eps,
                                 .weight_decay = wd,
                                 .grad_scale = grad_scale,
                                 .step = (int64_t)global_step + 1,
                                 .guarded = 1};
            rc = dt_backend_adamw_step(b, &p, params + range->offset, g, momentum + range->offset,
                                       second + range->offset, range->count, err);
        } else {
            dt_sgd_params p = {.grad_scale = grad_scale,
                               .lr = (float)lr,
                               .momentum = (float)cfg->train.momentum,
                               .weight_decay = (float)wd,
                               .nesterov = cfg->train.nesterov,
                               .first_step = global_step == 0,
                               .guarded = 1};
            rc = dt_backend_sgd_step(b, &p, params + range->offset, g, momentum + range->offset,
                                     range->count, err);
        }
        if (rc) return dt_error_prefix(err, "optimizer step %ld", global_step + 1);
    }
    return 0;
}
