/* The trainer's state, shared by the training loop, evaluation and pretrained loading. */
#ifndef DTRAIN_TRAIN_TRAINER_INTERNAL_H
#define DTRAIN_TRAIN_TRAINER_INTERNAL_H

#include "dtrain/backend.h"
#include "dtrain/checkpoint.h"
#include "dtrain/classify.h"
#include "dtrain/comm.h"
#include "dtrain/config.h"
#include "dtrain/data.h"
#include "dtrain/device_comm.h"
#include "dtrain/metrics.h"
#include "dtrain/model.h"
#include "dtrain/schedule.h"
#include "dtrain/tensorboard.h"
#include "train/buckets.h"
#include "train/device_choice.h"
#include "train/progress.h"
#include "train/session.h"
#include "train/watchdog.h"

/* Statistics gathered between two log lines (the loss sums and the all-reduce time are kept by
 * the backend and read at log time). */
typedef struct dt_window {
    double start;
    double wait_start; /* the loader's total data-wait seconds at start */
    double lr;
    long steps;
    long skipped; /* non-finite steps skipped in this window */
} dt_window;

/* How the run starts (command line) and the state of checkpoints, resume, the watchdog and the
 * non-finite guard (src/train/reliability.c). */
typedef struct dt_reliability {
    int resume, overwrite;
    const char *resume_path; /* NULL: output.dir/checkpoints/latest */
    int lock_fd;
    dt_watchdog *watchdog;
    dt_ckpt_writer *writer;
    int start_epoch;     /* where training starts: 1, or after the resumed checkpoint */
    long start_step;     /* steps of start_epoch already done */
    int start_evaluated; /* start_epoch's evaluation is done as well */
    long last_checkpoint_step;
    int last_checkpoint_evaluated;
    float *stats_backup;      /* running statistics before the step (restored on a bad step) */
    int64_t tracked_backup;   /* batches_tracked before the step */
    int64_t tracked_per_step; /* what a step adds to it (taken back for a skipped step) */
    long skipped_in_row, skipped_total;
    long nan_step;  /* test-only injected non-finite gradient on this rank, -1 when none */
    long nan_steps; /* ... in that many steps in a row from nan_step */
    int first_step_done;
    long step_delay_us;   /* test-only DTRAIN_TEST_STEP_DELAY_MS */
    long test_stop_epoch; /* test-only DTRAIN_TEST_STOP_AT_EPOCH_END: a stop signal then */
    double copy_seconds;  /* training thread's share of the last checkpoint */
} dt_reliability;

typedef struct dt_trainer {
    const dt_config *cfg;
    dt_comm *comm;
    int is_root;
    double start;
    /* data, split, display names, threads, device, backend, model, loader (train/session.h) */
    dt_session session;
    dt_device_comm dcomm; /* gradients in backend memory (created after the backend) */
    int have_dcomm;
    dt_bucket_plan buckets; /* with more than one rank */
    dt_metrics metrics;
    dt_progress progress;
    dt_progress_state last_progress; /* loss, acc, img/s of the last log line (has_stats) */

    size_t global_batch; /* batch_size x ranks x accumulate */
    long steps_per_epoch;
    dt_lr_schedule schedule;
    uint32_t *rank_indices; /* this rank's share of the epoch's order, in consumption order */
    size_t n_rank_indices;

    float *weights; /* per-sample loss weights of a batch */

    dt_tensorboard *tensorboard;     /* rank 0, output.tensorboard */
    dt_predictions last_predictions; /* rank 0: the latest evaluation (report.html at the end) */
    int last_epoch;
    long last_step;

    long step_in_progress; /* the optimizer step whose micro-batches are running */
    long fault_step;       /* test-only injected failure step of this rank, -1 when none */
    double best_val_acc;   /* -1 until the first evaluation */
    double last_val_acc;
    double step_seconds_avg; /* over the last log window; 0 before the first */
    double allreduce_total_s, data_wait_total_s, window_total_s;
    dt_reliability rel;
} dt_trainer;

/* Forward pass and loss on one batch (BN in training or inference mode): slots that count weigh
 * 1 in the loss, fillers 0; the backend adds the weighted loss sum, the counted samples and the
 * correct predictions to its loss statistics. grad_scale as dt_model_loss (0: no gradient). */
int dt_train_forward_loss(dt_trainer *t, const dt_batch *batch, int training, float grad_scale,
                          dt_error *err);

/* Hands a batch back to the loader once the backend has read its pixels. */
int dt_train_release_batch(dt_trainer *t, const dt_batch *batch, dt_error *err);

/* Rank 0 evaluates the held-out part; the other ranks wait at a barrier. */
int dt_train_evaluate(dt_trainer *t, int epoch, long global_step, dt_error *err);

/* ---- checks of the data and the derived sizes (src/train/data_checks.c) ---- */

/* Right after the scan: at least two classes (exit code 2). */
int dt_train_check_dataset_shape(dt_trainer *t, dt_error *err);

/* batch_size x ranks x accumulate, refused (exit code 2) if it does not fit a size_t. */
int dt_train_global_batch(const dt_config *cfg, int ranks, size_t *global_batch, dt_error *err);

/* Ring depth of the loader: a whole optimizer step ahead, within a bounded memory. */
int dt_train_prefetch_batches(const dt_config *cfg);

/* A log window in which no decodable image was counted (over all ranks): rank 0 says so instead
 * of a loss of 0/0 (and writes no metrics row). */
void dt_train_report_empty_window(const dt_trainer *t, const dt_window *w, int epoch,
                                  long global_step);

/* All ranks, after the first training epoch: fails when every training file of a class failed
 * to decode (such a class cannot be learnt). */
int dt_train_check_decodable_classes(dt_trainer *t, dt_error *err);
/* Rank 0's outputs besides the metrics files (src/train/run_outputs.c): the TensorBoard event
 * file, its train and eval scalars, and the files of each evaluation (dtrain/results.h). */
int dt_run_outputs_open(dt_trainer *t, dt_error *err);
int dt_run_outputs_train(dt_trainer *t, const dt_train_row *row, dt_error *err);
/* Takes over *predictions (left empty). */
int dt_run_outputs_eval(dt_trainer *t, const dt_eval_row *row, dt_predictions *predictions,
                        dt_error *err);
/* report.html once more at the end, naming every rank's undecodable files (bad_files: per file). */
int dt_run_outputs_done(dt_trainer *t, const uint8_t *bad_files, dt_error *err);
void dt_run_outputs_close(dt_trainer *t);

/* Rank 0: the current weights as output.dir/NAME (model.safetensors, best.safetensors), in
 * torchvision names with the run's classes and preprocessing (dtrain/export.h). */
int dt_train_write_model(dt_trainer *t, const char *name, dt_error *err);

/* Rank 0: loads model.pretrained into the model (see src/train/pretrained.c). */
int dt_train_load_pretrained(dt_trainer *t, dt_error *err);

/* ---- checkpoints, resume, signals, watchdog, non-finite guard (src/train/reliability.c) ---- */

/* At the start of set-up: the watchdog and the test fault switches. */
int dt_rel_setup(dt_trainer *t, dt_error *err);
/* Rank 0: locks output.dir and refuses one that holds another run (unless resuming or
 * overwriting); starts the checkpoint writer. After every input check, before any output. */
int dt_rel_claim_output_dir(dt_trainer *t, dt_error *err);
/* Every rank looks for rank 0's lock in output.dir; rank 0 warns naming those that do not see
 * it (output.dir on a node-local disk). */
int dt_rel_check_output_shared(dt_trainer *t, dt_error *err);
/* With --resume, after the model exists and before it is broadcast: rank 0 finds, verifies and
 * loads the checkpoint (weights and momentum), every rank gets the position and momentum. */
int dt_rel_resume(dt_trainer *t, dt_error *err);
/* Rank 0 hands a checkpoint of the current state to the writer thread (wait: until written). */
int dt_rel_checkpoint(dt_trainer *t, int epoch, long step, long step_in_epoch, int evaluated,
                      int wait, dt_error *err);
/* Marks the watchdog's phase. */
void dt_rel_phase(dt_trainer *t, const char *phase, long step, int long_allowance);
/* Before a step's first forward pass: keeps the running statistics for a bad step. */
int dt_rel_before_step(dt_trainer *t, long global_step, dt_error *err);
/* Just before the gradient all-reduce: the watchdog's phase, and the test-only injected NaN
 * (DTRAIN_TEST_NAN_RANK / DTRAIN_TEST_NAN_STEP). */
int dt_rel_before_allreduce(dt_trainer *t, long global_step, float *grads, dt_error *err);
/* The non-finite guard (train.nonfinite), decided by the backend without a host wait:
 * guard_start hands it the policy and the resumed counts (before the first step); guard_step
 * queues the check of the step's all-reduced gradients (identical on every rank, so every rank
 * decides alike) and the restore of the running statistics for a skipped step, before the
 * guarded optimizer update; guard_sync reads the state late (log lines, checkpoints, a stop),
 * at the same steps on every rank: warns about skipped steps, adds them to *skipped (may be
 * NULL), and when the guard halted writes the checkpoint of the last good state and fails. */
int dt_rel_guard_start(dt_trainer *t, dt_error *err);
int dt_rel_guard_step(dt_trainer *t, long global_step, const float *grads, size_t count,
                      dt_error *err);
int dt_rel_guard_sync(dt_trainer *t, long *skipped, dt_error *err);
/* At a step boundary: all ranks agree whether a stop signal arrived anywhere; then a checkpoint
 * and the exit-75 error. Also the periodic checkpoint and its log line. */
int dt_rel_step_end(dt_trainer *t, int epoch, long step_in_epoch, long global_step, dt_error *err);
/* Before an epoch's evaluation (the test switch DTRAIN_TEST_STOP_AT_EPOCH_END=EPOCH). */
void dt_rel_epoch_end_begins(dt_trainer *t, int epoch);
/* After an epoch's evaluation and checkpoint (not the last epoch's): all ranks agree whether a
 * stop signal arrived; then that checkpoint is the stop's (no second one a step later), and
 * the exit-75 error. */
int dt_rel_epoch_end_stop(dt_trainer *t, int epoch, long global_step, dt_error *err);
/* True when every value of the model's weights and statistics is finite. */
int dt_rel_weights_finite(dt_trainer *t, int *finite, dt_error *err);
/* Rank 0: waits for the checkpoint being written (before evaluation writes best.safetensors). */
int dt_rel_sync_writer(dt_trainer *t, dt_error *err);
/* The end of the run: waits for the writer (its error, if any), stops the threads. */
int dt_rel_finish(dt_trainer *t, dt_error *err);
void dt_rel_teardown(dt_trainer *t);

#endif
