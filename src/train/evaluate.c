/* Rank-0 evaluation of the held-out split at each epoch end: loss and accuracy over samples (and
 * of the weights' moving average, train.ema_decay), an eval row in the metrics files, the per-image
 * predictions for the results files and report.html, best.safetensors when accuracy improves (never
 * with non-finite weights). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "dtrain/log.h"
#include "dtrain/platform.h"
#include "train/trainer_internal.h"

/* One pass over the held-out part with the model's current state: the loss statistics into
 * stats, and each image's logits into predictions (NULL: not kept). */
static int evaluate_pass(dt_trainer *t, int epoch, dt_predictions *predictions,
                         double stats[DT_LOSS_STATS], dt_error *err) {
    const dt_config *cfg = t->cfg;
    if (dt_loader_start(t->session.loader, t->session.split.val, t->session.split.n_val, epoch, 0,
                        err))
        return -1;
    int k = t->session.ds.n_classes;
    float *logits = malloc((size_t)cfg->train.batch_size * (size_t)k * sizeof *logits);
    if (!logits) return dt_fail(err, "out of memory");
    int rc = 0;
    for (;;) {
        const dt_batch *batch = NULL;
        if ((rc = dt_loader_next(t->session.loader, &batch, err)) || !batch) break;
        rc = dt_train_forward_loss(t, batch, 0, 0.0f, err) ||
             (predictions && dt_model_logits(t->session.model, logits, err));
        for (int i = 0; predictions && !rc && i < batch->batch_size; i++)
            if (batch->counts[i])
                rc = dt_predictions_add(predictions, batch->file_index[i], batch->labels[i],
                                        logits + (size_t)i * (size_t)k, err);
        dt_error release_err = {{0}, 0};
        if (dt_train_release_batch(t, batch, rc ? &release_err : err)) rc = -1;
        if (rc) break;
    }
    free(logits);
    if (rc || dt_model_loss_stats_read(t->session.model, stats, 1, err))
        return dt_error_prefix(err, "evaluation");
    return 0;
}

/* The weights' average evaluated the same way (swapped into the model for the pass). */
static int evaluate_ema(dt_trainer *t, int epoch, dt_eval_row *row, dt_error *err) {
    double stats[DT_LOSS_STATS];
    dt_model_ema_swap(t->ema);
    int rc = evaluate_pass(t, epoch, NULL, stats, err);
    dt_model_ema_swap(t->ema);
    if (rc) return dt_error_prefix(err, "the weights' moving average");
    double count = stats[DT_LOSS_COUNT];
    row->has_ema = 1;
    row->ema_val_loss = count > 0 ? stats[DT_LOSS_SUM] / count : 0;
    row->ema_val_acc = count > 0 ? stats[DT_LOSS_CORRECT] / count : 0;
    return 0;
}

static int evaluate_on_root(dt_trainer *t, int epoch, long global_step, dt_error *err) {
    const dt_config *cfg = t->cfg;
    double stats[DT_LOSS_STATS];
    /* the training statistics were read (and reset) by the epoch's last log line */
    if (dt_model_loss_stats_read(t->session.model, stats, 1, err)) return -1;
    if (stats[DT_LOSS_COUNT] != 0)
        return dt_fail(err, "internal: training statistics left unread before evaluation");
    dt_predictions predictions;
    if (dt_predictions_init(&predictions, t->session.ds.n_classes, t->session.split.n_val, err))
        return -1;
    dt_eval_row row = {0};
    if (evaluate_pass(t, epoch, &predictions, stats, err) ||
        (t->ema && evaluate_ema(t, epoch, &row, err))) {
        dt_predictions_free(&predictions);
        return -1;
    }
    double loss_sum = stats[DT_LOSS_SUM], correct = stats[DT_LOSS_CORRECT];
    double count = stats[DT_LOSS_COUNT];
    double val_loss = count > 0 ? loss_sum / count : 0, val_acc = count > 0 ? correct / count : 0;
    t->last_val_acc = val_acc;
    row.epoch = epoch;
    row.step = global_step;
    row.val_loss = val_loss;
    row.val_acc = val_acc;
    row.n = (long)count;
    row.elapsed_s = dt_monotonic_seconds() - t->start;
    if (dt_metrics_eval(&t->metrics, &row, err) ||
        dt_run_outputs_eval(t, &row, &predictions, err)) {
        dt_predictions_free(&predictions);
        return -1;
    }
    char ema[96] = "";
    if (row.has_ema)
        snprintf(ema, sizeof ema, "; EMA weights: loss %.4f, accuracy %.4f", row.ema_val_loss,
                 row.ema_val_acc);
    dt_progress_line(&t->progress, "\033[1m",
                     "epoch %d/%d: validation loss %.4f, accuracy %.4f (%ld images)%s", epoch,
                     cfg->train.epochs, val_loss, val_acc, (long)count, ema);
    if (dt_train_early_stop_evaluated(t, epoch, global_step,
                                      row.has_ema ? row.ema_val_acc : val_acc, err))
        return -1;
    int finite = 0;
    if (dt_model_state_finite(t->session.model, &finite, err)) return -1;
    if (!finite || !isfinite(val_loss)) {
        dt_warn("epoch %d: the %s not finite: best.safetensors not updated", epoch,
                finite ? "validation loss is" : "weights are");
        return 0;
    }
    if (val_acc > t->best_val_acc) { /* best_val_acc starts at -1: the first epoch writes */
        t->best_val_acc = val_acc;
        if (dt_train_write_model(t, "best.safetensors", err)) return -1;
    }
    return 0;
}

int dt_train_evaluate(dt_trainer *t, int epoch, long global_step, dt_error *err) {
    dt_watchdog_mark(t->watchdog, t->is_root ? "evaluation" : "waiting for rank 0's evaluation",
                     global_step, 1);
    int rc = t->is_root ? evaluate_on_root(t, epoch, global_step, err) : 0;
    /* A failing rank 0 returns its error and the job is aborted; the others wait here. */
    if (rc) return rc;
    if (t->comm->ops->barrier(t->comm->ctx, err))
        return dt_error_prefix(err, "barrier after evaluation");
    return 0;
}
