/* The one place that reads the DTRAIN_TEST_* fault switches (test_faults.h). */
#include "train/test_faults.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dtrain/checkpoint.h"
#include "dtrain/durable.h"

static long env_long(const char *name, long fallback) {
    const char *v = getenv(name);
    return v && *v ? atol(v) : fallback;
}

/* True when the variable is set and names this rank. */
static int names_rank(const char *name, int rank) {
    const char *v = getenv(name);
    return v && atoi(v) == rank;
}

void dt_test_faults_read(int rank, dt_test_faults *f) {
    memset(f, 0, sizeof *f);
    const char *fail_step = getenv("DTRAIN_TEST_FAIL_STEP");
    f->fail_step = fail_step && names_rank("DTRAIN_TEST_FAIL_RANK", rank) ? atol(fail_step) : -1;
    f->nan_step =
        names_rank("DTRAIN_TEST_NAN_RANK", rank) ? env_long("DTRAIN_TEST_NAN_STEP", -1) : -1;
    f->nan_steps = env_long("DTRAIN_TEST_NAN_COUNT", 1);
    f->step_delay_us = env_long("DTRAIN_TEST_STEP_DELAY_MS", 0) * 1000;
    f->stop_at_epoch_end = env_long("DTRAIN_TEST_STOP_AT_EPOCH_END", -1);
    f->salt_config_hash = names_rank("DTRAIN_TEST_HASH_SALT_RANK", rank);
    const char *crash = getenv("DTRAIN_TEST_CKPT_CRASH");
    snprintf(f->ckpt_crash_point, sizeof f->ckpt_crash_point, "%s", crash ? crash : "");
    f->ckpt_crash_step = env_long("DTRAIN_TEST_CKPT_CRASH_STEP", -1);
    f->slow_write_ms = env_long("DTRAIN_TEST_SLOW_WRITE_MS", 0);
    dt_checkpoint_test_crash_set(f->ckpt_crash_point, f->ckpt_crash_step);
    dt_durable_test_delay_set(f->slow_write_ms);
}
