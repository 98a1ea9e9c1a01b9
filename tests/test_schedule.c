/* Learning-rate schedules against values computed by hand: warmup, constant, step, cosine. */
#include <math.h>

#include "check.h"
#include "dtrain/schedule.h"

static dt_lr_schedule make(dt_schedule_kind kind, long warmup) {
    dt_lr_schedule s = {.kind = kind,
                        .base_lr = 0.1,
                        .steps_per_epoch = 10,
                        .total_steps = 50,
                        .warmup_steps = warmup,
                        .step_size = 2,
                        .gamma = 0.5};
    return s;
}

int main(void) {
    dt_lr_schedule s = make(DT_SCHEDULE_CONSTANT, 0);
    CHECK_CLOSE(dt_lr_at(&s, 0), 0.1, 1e-12, 0);
    CHECK_CLOSE(dt_lr_at(&s, 49), 0.1, 1e-12, 0);

    /* warmup over 4 steps: 0.025, 0.05, 0.075, 0.1, then the schedule */
    s = make(DT_SCHEDULE_CONSTANT, 4);
    CHECK_CLOSE(dt_lr_at(&s, 0), 0.025, 1e-12, 0);
    CHECK_CLOSE(dt_lr_at(&s, 2), 0.075, 1e-12, 0);
    CHECK_CLOSE(dt_lr_at(&s, 3), 0.1, 1e-12, 0);
    CHECK_CLOSE(dt_lr_at(&s, 4), 0.1, 1e-12, 0);

    /* step: x0.5 every 2 epochs of 10 steps (torch StepLR stepped per epoch) */
    s = make(DT_SCHEDULE_STEP, 0);
    CHECK_CLOSE(dt_lr_at(&s, 0), 0.1, 1e-12, 0);
    CHECK_CLOSE(dt_lr_at(&s, 19), 0.1, 1e-12, 0);
    CHECK_CLOSE(dt_lr_at(&s, 20), 0.05, 1e-12, 0);
    CHECK_CLOSE(dt_lr_at(&s, 39), 0.05, 1e-12, 0);
    CHECK_CLOSE(dt_lr_at(&s, 40), 0.025, 1e-12, 0);

    /* cosine over 50 steps: half way 0.05, a quarter 0.1 * (1 + cos(pi/4)) / 2 */
    s = make(DT_SCHEDULE_COSINE, 0);
    CHECK_CLOSE(dt_lr_at(&s, 0), 0.1, 1e-12, 0);
    CHECK_CLOSE(dt_lr_at(&s, 25), 0.05, 1e-12, 1e-15);
    CHECK_CLOSE(dt_lr_at(&s, 12), 0.1 * (1 + cos(3.14159265358979323846 * 12 / 50)) / 2, 1e-12, 0);
    CHECK_CLOSE(dt_lr_at(&s, 50), 0.0, 0, 1e-15);

    /* cosine after a warmup of 10: counts from the end of the warmup over the other 40 */
    s = make(DT_SCHEDULE_COSINE, 10);
    CHECK_CLOSE(dt_lr_at(&s, 9), 0.1, 1e-12, 0);
    CHECK_CLOSE(dt_lr_at(&s, 10), 0.1, 1e-12, 0);
    CHECK_CLOSE(dt_lr_at(&s, 30), 0.05, 1e-12, 1e-15);

    /* from a config: warmup_epochs 0.5 of 10 steps = 5 steps */
    dt_config cfg;
    dt_config_defaults(&cfg);
    cfg.train.warmup_epochs = 0.5;
    cfg.train.schedule = DT_SCHEDULE_COSINE;
    cfg.train.epochs = 3;
    dt_lr_schedule from_cfg;
    dt_lr_schedule_from_config(&cfg, 10, &from_cfg);
    CHECK_INT_EQ(from_cfg.warmup_steps, 5);
    CHECK_INT_EQ(from_cfg.total_steps, 30);
    CHECK_CLOSE(dt_lr_at(&from_cfg, 0), 0.01 / 5, 1e-12, 0);
    dt_config_free(&cfg);
    return dt_test_summary("schedule");
}
