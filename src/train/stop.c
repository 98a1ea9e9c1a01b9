/* A stop signal (SIGTERM, SIGINT, SIGHUP, SIGUSR1) during training: the ranks agree at a step or
 * epoch boundary that one arrived anywhere, rank 0 writes the checkpoint and model.safetensors
 * while the others wait for its result, and every rank ends with exit code 75. */
#include <signal.h>
#include <stdio.h>

#include "dtrain/signals.h"
#include "train/trainer_internal.h"

/* Every rank waits for rank 0's stop files, so that no rank exits (and no launcher ends the job)
 * before they are complete, and no rank claims files that rank 0 failed to write. */
static int stop_after_write(dt_trainer *t, int epoch, long global_step, int rc, dt_error *err) {
    if (t->comm->size > 1) {
        dt_watchdog_mark(t->watchdog, "waiting for rank 0's stop checkpoint", global_step, 1);
        int written = rc == 0;
        dt_error comm_err = {{0}, 0};
        if (t->comm->ops->broadcast(t->comm->ctx, &written, sizeof written, 0, &comm_err)) {
            if (rc == 0) { /* rank 0's own error, when it has one, says more */
                *err = comm_err;
                dt_error_prefix(err, "waiting for rank 0's stop checkpoint");
            }
            return -1;
        }
        if (!t->is_root && !written)
            return dt_fail(err,
                           "stopped by a signal after step %ld (epoch %d), but rank 0 did not "
                           "write the stop checkpoint (its error says why)",
                           global_step, epoch);
    }
    if (rc) return -1;
    dt_fail(err,
            "stopped by a signal after step %ld (epoch %d); checkpoint %s/checkpoints/"
            "step-%08ld and model.safetensors written; continue with --resume",
            global_step, epoch, t->cfg->output.dir, global_step);
    err->exit_code = DT_EXIT_STOPPED;
    return -1;
}

int dt_train_agree_on_stop(dt_trainer *t, long global_step, int *stop, dt_error *err) {
    double flag = dt_signals_stop_requested() ? 1 : 0;
    if (t->comm->size > 1) {
        dt_watchdog_mark(t->watchdog, "stop-flag all-reduce", global_step, 0);
        if (t->comm->ops->allreduce_double(t->comm->ctx, &flag, 1, DT_REDUCE_SUM, err))
            return dt_error_prefix(err, "all-reduce of the stop flag");
    }
    *stop = flag > 0;
    int mine = dt_signals_stop_requested();
    /* SIGINT was acknowledged by its handler; the others are announced here, where the
     * checkpoint follows */
    if (*stop && t->is_root && mine != SIGINT)
        dt_progress_line(
            &t->progress, NULL, "%s received: stopping after step %ld with a checkpoint",
            mine ? dt_signals_name(mine) : "a stop signal (on another rank)", global_step);
    return 0;
}

int dt_train_stop_after_step(dt_trainer *t, int epoch, long step_in_epoch, long global_step,
                             dt_error *err) {
    int rc = 0;
    /* the weights so far as model.safetensors too: a job that a time limit ends before it is
     * resumed still leaves a usable model where users look for it (the checkpoint refuses
     * non-finite weights, and then neither is written) */
    if (t->is_root &&
        (dt_train_checkpoint(t, epoch, global_step, step_in_epoch, 0, 1, err) ||
         dt_train_write_model(t, "model.safetensors", err) || dt_train_write_ema(t, err)))
        rc = -1;
    return stop_after_write(t, epoch, global_step, rc, err);
}

int dt_train_stop_after_epoch(dt_trainer *t, int epoch, long global_step, dt_error *err) {
    /* the epoch's checkpoint was just written: it is the stop's, not one more after a step */
    int rc = dt_checkpoints_sync(&t->ckpt, "waiting for the checkpoint writer", err) ||
                     (t->is_root && (dt_train_write_model(t, "model.safetensors", err) ||
                                     dt_train_write_ema(t, err)))
                 ? -1
                 : 0;
    return stop_after_write(t, epoch, global_step, rc, err);
}
