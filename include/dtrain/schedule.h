/* Learning-rate schedules per optimizer step: linear warmup, then constant, step or cosine. */
#ifndef DTRAIN_SCHEDULE_H
#define DTRAIN_SCHEDULE_H

#include "dtrain/config.h"

typedef struct dt_lr_schedule {
    dt_schedule_kind kind;
    double base_lr;
    long steps_per_epoch;
    long total_steps;
    long warmup_steps; /* round(warmup_epochs * steps_per_epoch) */
    int step_size;     /* step: epochs between decays */
    double gamma;      /* step: decay factor */
} dt_lr_schedule;

void dt_lr_schedule_from_config(const dt_config *cfg, long steps_per_epoch, dt_lr_schedule *s);

/* Learning rate of optimizer step `step` (0-based over the whole run):
 *  warmup (step < warmup_steps): base_lr * (step + 1) / warmup_steps
 *  constant: base_lr
 *  step:     base_lr * gamma ^ floor(epoch / step_size), epoch = step / steps_per_epoch (0-based),
 *            as torch's StepLR stepped once per epoch
 *  cosine:   base_lr * (1 + cos(pi * t / T)) / 2, t = step - warmup_steps,
 *            T = total_steps - warmup_steps, as CosineAnnealingLR(eta_min=0) stepped per step */
double dt_lr_at(const dt_lr_schedule *s, long step);

#endif
