/* The test-only fault switches (DTRAIN_TEST_* environment variables), read once at start-up into
 * one struct that the trainer hands to the parts that act on them. Unset, none acts. */
#ifndef DTRAIN_TRAIN_TEST_FAULTS_H
#define DTRAIN_TRAIN_TEST_FAULTS_H

typedef struct dt_test_faults {
    /* DTRAIN_TEST_FAIL_RANK=r DTRAIN_TEST_FAIL_STEP=s: rank r fails at optimizer step s */
    long fail_step; /* this rank's, -1 when none */
    /* DTRAIN_TEST_NAN_RANK=r DTRAIN_TEST_NAN_STEP=s DTRAIN_TEST_NAN_COUNT=n: rank r's first
     * trained gradient is NaN before the all-reduce of steps s .. s+n-1 */
    long nan_step; /* this rank's, -1 when none */
    long nan_steps;
    long step_delay_us;     /* DTRAIN_TEST_STEP_DELAY_MS: a sleep before every step */
    long stop_at_epoch_end; /* DTRAIN_TEST_STOP_AT_EPOCH_END=E: a SIGINT as epoch E ends */
    int salt_config_hash;   /* DTRAIN_TEST_HASH_SALT_RANK names this rank: its config differs */
    /* DTRAIN_TEST_CKPT_CRASH=POINT [DTRAIN_TEST_CKPT_CRASH_STEP=s]: the checkpoint writer kills
     * the process at POINT (of step s); DTRAIN_TEST_SLOW_WRITE_MS: every durable file write
     * sleeps first. Handed to the writer and the file writes at start-up. */
    char ckpt_crash_point[32]; /* "" when none */
    long ckpt_crash_step;      /* -1: any step */
    long slow_write_ms;
} dt_test_faults;

/* Reads the switches for this rank and hands the checkpoint and file-write ones to their code. */
void dt_test_faults_read(int rank, dt_test_faults *out);

#endif
