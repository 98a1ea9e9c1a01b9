/* The non-finite guard (train.nonfinite): the backend checks each step's all-reduced gradients
 * in stream order and skips (or halts at) a step holding NaN or Inf, restoring the running
 * statistics it changed; the host reads the guard's state late (log lines, checkpoints, a stop),
 * at the same steps on every rank, so that every rank decides alike without a wait per step.
 * Takes the model and the config, not the trainer. */
#ifndef DTRAIN_TRAIN_NONFINITE_GUARD_H
#define DTRAIN_TRAIN_NONFINITE_GUARD_H

#include <stdint.h>

#include "dtrain/config.h"
#include "dtrain/device_comm.h"
#include "dtrain/model.h"

typedef struct dt_nonfinite_guard {
    const dt_config *cfg;
    int is_root;              /* rank 0 warns about skipped steps */
    long steps_per_epoch;     /* for the epochs in the messages */
    int64_t tracked_backup;   /* batches_tracked before the step */
    int64_t tracked_per_step; /* what a step adds to it (taken back for a skipped step) */
    long skipped_in_row, skipped_total;
} dt_nonfinite_guard;

/* Where the guard halted (halted_step -1: it did not), and why, for the stop's message. */
typedef struct dt_guard_halt {
    long halted_step;
    char what[160]; /* "the gradient of layer1.0.conv1.weight is NaN" */
} dt_guard_halt;

/* Before the first step: the policy and the resumed counts handed to the backend. */
int dt_guard_start(dt_nonfinite_guard *g, const dt_config *cfg, int is_root, long steps_per_epoch,
                   long skipped_in_row, long skipped_total, dt_model *model, dt_error *err);
/* Before a step's first forward pass: keeps the running statistics for a bad step. */
int dt_guard_before_step(dt_nonfinite_guard *g, dt_model *model, dt_error *err);
/* After the step's all-reduce, before the guarded optimizer update: queues the check of grads
 * (count values) and the restore of the running statistics for a skipped step. */
int dt_guard_step(dt_nonfinite_guard *g, dt_model *model, long global_step, const float *grads,
                  size_t count, dt_error *err);
/* Reads the guard's state (after the device comm's pending collectives): warns on rank 0 about
 * skipped steps, adds them to *skipped (may be NULL), takes their batches back from the
 * model's counter, and fills *halt. */
int dt_guard_sync(dt_nonfinite_guard *g, dt_model *model, dt_device_comm *dcomm, long *skipped,
                  dt_guard_halt *halt, dt_error *err);
/* The run's error for a halt (where: "; the last good state ... is in ..." or ""). */
int dt_guard_halt_error(const dt_nonfinite_guard *g, const dt_guard_halt *halt, const char *where,
                        dt_error *err);

#endif
