/* Checkpoints (output.dir/checkpoints/step-NNNNNNNN/): model.safetensors (torchvision names),
 * optimizer.safetensors (SGD momentum under the parameters' names; AdamW exp_avg and exp_avg_sq
 * under NAME.exp_avg and NAME.exp_avg_sq, its step count in the metadata), ema.safetensors (the
 * weights' moving average, torchvision names, with train.ema_decay only), config.yaml (the
 * resolved config) and state.json (position, counters, hashes, ranks, global batch and every file's
 * size and FNV-1a checksum, plus a checksum of state.json itself). Written into a temporary folder,
 * each file fsynced, the folder renamed into place and its parent fsynced; only then is
 * checkpoints/latest replaced the same way, and older checkpoints beyond the number to keep
 * removed. */
#ifndef DTRAIN_CHECKPOINT_H
#define DTRAIN_CHECKPOINT_H

#include <dirent.h>
#include <stddef.h>
#include <stdint.h>

#include "dtrain/error.h"
#include "dtrain/safetensors.h"

typedef struct dt_ckpt_state {
    int epoch;          /* the epoch in progress, from 1 */
    long step;          /* optimizer steps done since the run started */
    long step_in_epoch; /* steps of `epoch` done (steps_per_epoch: only evaluation is left) */
    long steps_per_epoch;
    int evaluated;       /* 1 when `epoch`'s evaluation is done (epoch-end checkpoints) */
    double best_val_acc; /* -1 before the first evaluation */
    double last_val_acc;
    int64_t batches_tracked;
    long skipped_in_row, skipped_total; /* non-finite steps skipped */
    uint64_t train_seed; /* data order and augmentation are functions of (seed, epoch, file) */
    uint64_t config_hash, file_list_hash;
    int ranks;
    long global_batch;
    /* early stopping (train.early_stop_patience): the best monitored accuracy (-1: none yet),
     * the epoch it was reached, and the evaluations since without improvement */
    double early_stop_best;
    int early_stop_best_epoch;
    long early_stop_wait;
} dt_ckpt_state;

/* One tensor of model.safetensors or optimizer.safetensors, in the order written. */
typedef struct dt_ckpt_tensor {
    const char *name;  /* not owned: the model's state dict outlives the write */
    dt_st_dtype dtype; /* F32 (data), or I64 for a scalar (ndim 0, the value in `scalar`) */
    int ndim;
    const int64_t *shape; /* not owned, as name */
    const float *data;    /* into the payload's params, stats or momentum */
    int64_t scalar;
} dt_ckpt_tensor;

/* Everything one checkpoint holds, as host copies owned by the payload. The tensor lists are
 * made by the model (dt_model_checkpoint_tensors, dtrain/model.h) once the host copies and the
 * state are filled. */
typedef struct dt_ckpt_payload {
    dt_ckpt_state state;
    const char *arch; /* "arch" metadata of model.safetensors (not owned) */
    dt_ckpt_tensor *model_tensors, *optimizer_tensors;
    size_t n_model_tensors, n_optimizer_tensors;
    float *params, *stats, *momentum;
    float *second_moment;  /* AdamW's exp_avg_sq (momentum holds exp_avg); NULL for SGD */
    const char *optimizer; /* "sgd" or "adamw" (not owned) */
    long optimizer_step;   /* AdamW: steps taken (skipped ones left out), the bias correction's */
    char *optimizer_names; /* storage of the AdamW tensor names */
    size_t n_params, n_stats;
    char *config_yaml;
    size_t config_length;
    char *classes; /* display names joined by '\n', the models' "classes" metadata */
    /* train.ema_decay > 0: ema.safetensors, the weights' moving average as a state dict (NULL /
     * 0 otherwise; dt_model_ema_checkpoint_tensors) */
    float *ema_params, *ema_stats;
    int64_t ema_batches_tracked;
    dt_ckpt_tensor *ema_tensors;
    size_t n_ema_tensors;
} dt_ckpt_payload;

void dt_ckpt_payload_free(dt_ckpt_payload *p);

typedef struct dt_ckpt_report {
    char name[64]; /* "step-00001200" */
    long step;
    double seconds;
    size_t bytes;
} dt_ckpt_report;

/* Test-only switch DTRAIN_TEST_CKPT_CRASH=POINT (DTRAIN_TEST_CKPT_CRASH_STEP=step, -1: any;
 * read by src/train/test_faults.c, which sets it here): the writer kills the process at POINT
 * ("model", "optimizer", "state", "before-rename", "after-rename", "after-latest"). "" : none. */
void dt_checkpoint_test_crash_set(const char *point, long step);

/* Writes one checkpoint under output_dir/checkpoints and keeps the newest `keep`. Errors name
 * the file and the OS error; the previous checkpoints and `latest` are untouched then. */
int dt_checkpoint_write(const char *output_dir, const dt_ckpt_payload *p, int keep,
                        dt_ckpt_report *report, dt_error *err);

/* The same on a background thread: one write at a time. */
typedef struct dt_ckpt_writer dt_ckpt_writer;
int dt_ckpt_writer_create(dt_ckpt_writer **out, dt_error *err);
/* Waits for the previous write (failing with its error, if it failed), then hands p over (the
 * writer frees it) and returns at once. */
int dt_ckpt_writer_submit(dt_ckpt_writer *w, const char *output_dir, int keep, dt_ckpt_payload *p,
                          dt_error *err);
/* Waits until no write is in progress; fails with the last write's error. */
int dt_ckpt_writer_wait(dt_ckpt_writer *w, dt_error *err);
/* Non-blocking: 1 and the report when a write finished since the last call, else 0. */
int dt_ckpt_writer_take_report(dt_ckpt_writer *w, dt_ckpt_report *report);
void dt_ckpt_writer_destroy(dt_ckpt_writer *w);

/* Checks a checkpoint folder: state.json present and intact, every file present with the size
 * and checksum state.json gives. Fails naming the file and what is wrong. */
int dt_checkpoint_verify(const char *dir, dt_ckpt_state *state, dt_error *err);

/* The checkpoint to resume: explicit (when not NULL) must verify; otherwise
 * output_dir/checkpoints/latest, falling back to the newest other complete checkpoint (found
 * without latest too) with a warning when latest is missing, unreadable (never waiting on a
 * FIFO) or damaged. Fills out (the folder) and state and returns 0; returns 1 with the reason in
 * err->message when output_dir has no complete checkpoint (the run may start over), -1 on an
 * error. */
int dt_checkpoint_find(const char *output_dir, const char *explicit_dir, char *out, size_t size,
                       dt_ckpt_state *state, dt_error *err);

/* Makes checkpoint folder dir (step `step`) the newest of output_dir's checkpoints before a
 * resume from it cuts the history back to its step: `latest` names it and step folders after it
 * are removed, so that an interrupted resume is resumed from the same place. Nothing happens when
 * dir is not in output_dir/checkpoints. */
int dt_checkpoint_adopt(const char *output_dir, const char *dir, long step, dt_error *err);

/* 1 and the step when name is a checkpoint folder's (step-N, N >= 0), else 0. */
int dt_checkpoint_folder_step(const char *name, long *step);
/* The steps of the step-N folders read from d (then closed), newest first, at most max of them,
 * leaving out the folder named skip_name (NULL: none). Returns how many. */
int dt_checkpoint_list_steps(DIR *d, const char *skip_name, long *steps, int max);

/* Test-only fault switch DTRAIN_TEST_CKPT_CRASH=<point>: the writer kills its own process
 * (SIGKILL) at that point: model, optimizer, state, before-rename, after-rename, after-latest;
 * DTRAIN_TEST_CKPT_CRASH_STEP=s limits it to the checkpoint of step s. */

#endif
