/* Rank 0's outputs besides the metrics files: TensorBoard scalars at the optimizer step of
 * metrics.jsonl (train/loss, train/acc, train/lr, train/img_per_s, eval/loss, eval/acc, and
 * eval/ema_loss, eval/ema_acc with train.ema_decay), and at
 * each evaluation the files of dtrain/results.h with the prediction grid as a TensorBoard image. */
#include <stdio.h>
#include <string.h>

#include "dtrain/platform.h"
#include "dtrain/results.h"
#include "train/trainer_internal.h"

int dt_run_outputs_open(dt_trainer *t, dt_error *err) {
    if (!t->is_root || !t->cfg->output.tensorboard) return 0;
    char dir[4200];
    snprintf(dir, sizeof dir, "%s/tensorboard", t->cfg->output.dir);
    /* A resumed run keeps its own events up to its checkpoint's step. A new run has nothing to
     * drop: a folder with an earlier run's event files was refused or cleared (run_dir.c). */
    if (t->ckpt.resume && dt_tensorboard_drop_after(dir, t->ckpt.last_step, err)) return -1;
    return dt_tensorboard_open(dir, &t->tensorboard, err);
}

int dt_run_outputs_train(dt_trainer *t, const dt_train_row *row, dt_error *err) {
    dt_tensorboard *tb = t->tensorboard;
    if (!tb) return 0;
    if (dt_tensorboard_scalar(tb, "train/loss", row->step, (float)row->loss, err) ||
        dt_tensorboard_scalar(tb, "train/acc", row->step, (float)row->acc, err) ||
        dt_tensorboard_scalar(tb, "train/lr", row->step, (float)row->lr, err) ||
        dt_tensorboard_scalar(tb, "train/img_per_s", row->step, (float)row->img_per_s, err) ||
        (row->has_grad_norm &&
         dt_tensorboard_scalar(tb, "train/grad_norm", row->step, (float)row->grad_norm, err)))
        return -1;
    return dt_tensorboard_flush(tb, err);
}

static int write_results(dt_trainer *t, const uint8_t *bad_files, dt_tensorboard *tb,
                         dt_error *err) {
    char device[256], optimizer[160];
    dt_optimizer_describe(t->cfg, optimizer, sizeof optimizer);
    snprintf(device, sizeof device,
             "%s, precision %s, %d compute threads + %d decode workers per rank",
             dt_backend_name(&t->session.backend), dt_precision_name(t->session.precision),
             t->session.threads, t->session.workers);
    dt_results_context c = {.cfg = t->cfg,
                            .ds = &t->session.ds,
                            .names = t->session.display_names,
                            .train_indices = t->session.split.train,
                            .n_train = t->session.split.n_train,
                            .bad_files = bad_files,
                            .device = device,
                            .optimizer = optimizer,
                            .ranks = t->comm->size,
                            .epoch = t->last_epoch,
                            .epochs = t->cfg->train.epochs,
                            .step = t->last_step,
                            .elapsed_s = dt_monotonic_seconds() - t->start,
                            .img_per_s = t->last_progress.img_per_s,
                            .tensorboard = tb};
    if (dt_results_write(&c, &t->last_predictions, NULL, err))
        return dt_error_prefix(err, "results of the evaluation at step %ld", t->last_step);
    return 0;
}

int dt_run_outputs_eval(dt_trainer *t, const dt_eval_row *row, dt_predictions *predictions,
                        dt_error *err) {
    dt_predictions_free(&t->last_predictions);
    t->last_predictions = *predictions;
    memset(predictions, 0, sizeof *predictions);
    t->last_epoch = row->epoch;
    t->last_step = row->step;
    if (t->tensorboard &&
        (dt_tensorboard_scalar(t->tensorboard, "eval/loss", row->step, (float)row->val_loss, err) ||
         dt_tensorboard_scalar(t->tensorboard, "eval/acc", row->step, (float)row->val_acc, err) ||
         (row->has_ema && (dt_tensorboard_scalar(t->tensorboard, "eval/ema_loss", row->step,
                                                 (float)row->ema_val_loss, err) ||
                           dt_tensorboard_scalar(t->tensorboard, "eval/ema_acc", row->step,
                                                 (float)row->ema_val_acc, err)))))
        return -1;
    return write_results(t, dt_loader_bad_files(t->session.loader), t->tensorboard, err);
}

int dt_run_outputs_done(dt_trainer *t, const uint8_t *bad_files, dt_error *err) {
    if (!t->is_root || t->last_predictions.n == 0) return 0;
    return write_results(t, bad_files, NULL, err);
}

void dt_run_outputs_close(dt_trainer *t) {
    dt_tensorboard_close(t->tensorboard);
    t->tensorboard = NULL;
    dt_predictions_free(&t->last_predictions);
}
