/* Learning-rate schedules (see include/dtrain/schedule.h for the exact formulas). */
#include "dtrain/schedule.h"

#include <math.h>

void dt_lr_schedule_from_config(const dt_config *cfg, long steps_per_epoch, dt_lr_schedule *s) {
    s->kind = cfg->train.schedule;
    s->base_lr = cfg->train.lr;
    s->steps_per_epoch = steps_per_epoch;
    s->total_steps = steps_per_epoch * cfg->train.epochs;
    s->warmup_steps = lround(cfg->train.warmup_epochs * (double)steps_per_epoch);
    s->step_size = cfg->train.step_size;
    s->gamma = cfg->train.gamma;
}

double dt_lr_at(const dt_lr_schedule *s, long step) {
    if (step < s->warmup_steps) return s->base_lr * (double)(step + 1) / (double)s->warmup_steps;
    switch (s->kind) {
    case DT_SCHEDULE_STEP: {
        long epoch = s->steps_per_epoch > 0 ? step / s->steps_per_epoch : 0;
        return s->base_lr * pow(s->gamma, (double)(epoch / s->step_size));
    }
    case DT_SCHEDULE_COSINE: {
        long span = s->total_steps - s->warmup_steps;
        if (span <= 0) return s->base_lr;
        double t = (double)(step - s->warmup_steps) / (double)span;
        if (t > 1.0) t = 1.0;
        return s->base_lr * 0.5 * (1.0 + cos(3.14159265358979323846 * t));
    }
    case DT_SCHEDULE_CONSTANT:
    default:
        return s->base_lr;
    }
}
