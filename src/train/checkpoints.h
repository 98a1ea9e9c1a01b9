/* Checkpointing of a training run: output.dir's lock and its check from every rank, resume from
 * a checkpoint, and checkpoints handed to a writer thread (rank 0). Takes the model, the comm and
 * the config, and what a checkpoint records of the run (dt_ckpt_run), not the trainer. */
#ifndef DTRAIN_TRAIN_CHECKPOINTS_H
#define DTRAIN_TRAIN_CHECKPOINTS_H

#include "dtrain/checkpoint.h"
#include "dtrain/comm.h"
#include "dtrain/config.h"
#include "dtrain/data.h"
#include "dtrain/model.h"
#include "dtrain/model_ema.h"
#include "train/progress.h"
#include "train/watchdog.h"

typedef struct dt_checkpoints {
    const dt_config *cfg;
    dt_comm *comm;
    int is_root;
    dt_progress *log;      /* rank 0's lines */
    dt_watchdog *watchdog; /* phases marked while writing and waiting */
    int resume, overwrite;
    const char *resume_path; /* NULL: output.dir/checkpoints/latest */
    int lock_fd;
    dt_ckpt_writer *writer; /* rank 0, once output.dir is claimed */
    long last_step;         /* the last checkpoint handed to the writer (or resumed); -1: none */
    int last_evaluated;
    double copy_seconds; /* training thread's share of the last checkpoint */
} dt_checkpoints;

/* What a checkpoint records of the run besides the model, and what a resume checks against. */
typedef struct dt_ckpt_run {
    const dt_dataset *ds;
    char *const *display_names;
    long steps_per_epoch;
    size_t global_batch;
    double best_val_acc, last_val_acc;
    long skipped_in_row, skipped_total; /* the non-finite guard's counts */
    dt_model_ema *ema;                  /* train.ema_decay > 0: the weights' average, else NULL */
    double early_stop_best;             /* early stopping's state (dt_ckpt_state) */
    int early_stop_best_epoch;
    long early_stop_wait;
} dt_ckpt_run;

/* Where a resumed run continues (start_epoch 1, start_step 0 for a new run). */
typedef struct dt_resume_point {
    int start_epoch;     /* 1, or after the resumed checkpoint */
    long start_step;     /* steps of start_epoch already done */
    double best_val_acc; /* -1 until the first evaluation */
    double last_val_acc;
    long skipped_in_row, skipped_total;
    double early_stop_best; /* -1 until the first evaluation */
    int early_stop_best_epoch;
    long early_stop_wait;
} dt_resume_point;

void dt_checkpoints_init(dt_checkpoints *c, const dt_config *cfg, dt_comm *comm, dt_progress *log,
                         dt_watchdog *watchdog, int resume, const char *resume_path, int overwrite);
/* Rank 0: locks output.dir and refuses one that holds another run (unless resuming or
 * overwriting); starts the writer. After every input check, before any output. */
int dt_checkpoints_claim_output_dir(dt_checkpoints *c, dt_error *err);
/* Every rank looks for rank 0's lock in output.dir; rank 0 warns naming those that do not see
 * it (output.dir on a node-local disk). */
int dt_checkpoints_check_output_shared(dt_checkpoints *c, dt_error *err);
/* With --resume, after the model exists and before it is broadcast: rank 0 finds, verifies and
 * loads the checkpoint (weights, momentum and, with run->ema, the weights' average from
 * ema.safetensors), every rank gets the position, momentum and average. A
 * folder without a complete checkpoint starts over (c->resume becomes 0). */
int dt_checkpoints_resume(dt_checkpoints *c, dt_model *model, const dt_ckpt_run *run,
                          dt_resume_point *at, dt_error *err);
/* Rank 0 hands a checkpoint of the model and run to the writer thread (wait: until written);
 * refused when the state is not finite. Other ranks: nothing. */
int dt_checkpoints_write(dt_checkpoints *c, dt_model *model, const dt_ckpt_run *run, int epoch,
                         long step, long step_in_epoch, int evaluated, int wait, dt_error *err);
/* Rank 0: the log line of a checkpoint written since the last call. */
void dt_checkpoints_report(dt_checkpoints *c);
/* Rank 0: waits for the checkpoint being written (phase names the wait for the watchdog). */
int dt_checkpoints_sync(dt_checkpoints *c, const char *phase, dt_error *err);
void dt_checkpoints_close(dt_checkpoints *c);

#endif
