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
#include "dtrain/model_ema.h"
#include "dtrain/optimizer.h"
#include "dtrain/schedule.h"
#include "dtrain/tensorboard.h"
#include "dtrain/train.h"
#include "train/buckets.h"
#include "train/checkpoints.h"
#include "train/device_choice.h"
#include "train/early_stop.h"
#include "train/nonfinite_guard.h"
#include "train/progress.h"
#include "train/session.h"
#include "train/test_faults.h"
#include "train/watchdog.h"

/* Statistics gathered between two log lines (the loss sums and the all-reduce time are kept by
 * the backend and read at log time). */
typedef struct dt_window {
    double start;
    double wait_start; /* the loader's total data-wait seconds at start */
    double lr;
    long steps;
    long skipped;         /* non-finite steps skipped in this window */
    double grad_norm_sum; /* train.clip_grad_norm: pre-clip gradient norms of the window's steps */
    long grad_norms;
} dt_window;

typedef struct dt_trainer {
    const dt_config *cfg;
    dt_train_options options; /* --resume [PATH], --overwrite */
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

    long step_in_progress;   /* the optimizer step whose micro-batches are running */
    const dt_batch *pending; /* the next micro-batch, its copy to the device started */
    int first_step_done;
    double best_val_acc; /* -1 until the first evaluation */
    double last_val_acc;
    double step_seconds_avg; /* over the last log window; 0 before the first */
    double allreduce_total_s, data_wait_total_s, window_total_s;
    dt_test_faults faults; /* the DTRAIN_TEST_* switches, read once */
    dt_watchdog *watchdog;
    dt_checkpoints ckpt;     /* output.dir's lock, resume, the checkpoint writer */
    dt_resume_point resumed; /* where the epochs start */
    dt_nonfinite_guard guard;
    dt_model_ema *ema;        /* train.ema_decay > 0: the weights' moving average, else NULL */
    dt_early_stop early_stop; /* rank 0's count (every rank's after a resume) */
    int stopped_early_epoch;  /* 0, or the epoch after which early stopping ended the run */
    dt_optimizer optimizer;   /* train.optimizer, no_weight_decay, clip_grad_norm */
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
/* Rank 0's outputs besides the metrics files (src/output/run_outputs.c): the TensorBoard event
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
/* Rank 0, with train.ema_decay: the weights' moving average as output.dir/ema.safetensors (the
 * same format; refused, with the reason, when it is not finite); nothing without it. */
int dt_train_write_ema(dt_trainer *t, dt_error *err);

/* Rank 0: loads model.pretrained into the model (see src/train/pretrained.c). */
int dt_train_load_pretrained(dt_trainer *t, dt_error *err);

/* ---- set-up and teardown (src/train/trainer_setup.c) ---- */

/* Everything before the first step, in order: threads, watchdog, data and its checks, device,
 * backend, model (initialised or pretrained), output.dir claimed, resume, weights broadcast,
 * gradient all-reduce, non-finite guard, loader, outputs. */
int dt_train_setup(dt_trainer *t, dt_error *err);
/* failed: the collectives are aborted first (the caller's host-comm abort follows). */
void dt_train_teardown(dt_trainer *t, int failed);
/* Rank 0's start-up lines: one summary, then the classes. */
void dt_train_print_summary(dt_trainer *t);
void dt_train_print_classes(dt_trainer *t);
/* The test switch's NaN (DTRAIN_TEST_NAN_*) in grads before the step's all-reduce, and the
 * watchdog's phase. */
int dt_train_before_allreduce(dt_trainer *t, long global_step, float *grads, dt_error *err);

/* What a checkpoint records of the run now (checkpoints.h). */
dt_ckpt_run dt_train_ckpt_run(const dt_trainer *t);
/* Rank 0 hands a checkpoint of the current state to the writer (wait: until written). */
int dt_train_checkpoint(dt_trainer *t, int epoch, long step, long step_in_epoch, int evaluated,
                        int wait, dt_error *err);
/* Reads the non-finite guard (adds the skipped steps to *skipped, may be NULL); when it halted,
 * writes the checkpoint of the last good state and fails. */
int dt_train_guard_sync(dt_trainer *t, long *skipped, dt_error *err);

/* ---- early stopping (src/train/early_stop.c) ---- */

/* Rank 0, after an evaluation: counts the monitored accuracy; when that makes the count reach the
 * patience, says so in the log and in metrics.jsonl (an early_stop row). */
int dt_train_early_stop_evaluated(dt_trainer *t, int epoch, long global_step, double accuracy,
                                  dt_error *err);
/* Every rank, after an epoch's checkpoint: rank 0's decision (broadcast) whether the run ends
 * here (*stop); nothing to agree on without train.early_stop_patience. */
int dt_train_agree_on_early_stop(dt_trainer *t, int epoch, int *stop, dt_error *err);

/* ---- stop signals (src/train/stop.c) ---- */

/* Every rank: whether a stop signal arrived on any rank (*stop). */
int dt_train_agree_on_stop(dt_trainer *t, long global_step, int *stop, dt_error *err);
/* The agreed stop after a step: the checkpoint and model.safetensors (rank 0, the others wait
 * for its result), then the exit-75 error. */
int dt_train_stop_after_step(dt_trainer *t, int epoch, long step_in_epoch, long global_step,
                             dt_error *err);
/* The agreed stop after an epoch's evaluation and checkpoint: that checkpoint is the stop's. */
int dt_train_stop_after_epoch(dt_trainer *t, int epoch, long global_step, dt_error *err);

#endif
