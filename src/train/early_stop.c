/* Early stopping (train/early_stop.h): the count of evaluations without improvement, and the
 * trainer's side: rank 0 decides after each evaluation, says why in the log and metrics.jsonl,
 * and every rank learns the decision from rank 0's broadcast, so all stop after the same step. */
#include "train/early_stop.h"

#include "dtrain/signals.h"
#include "train/trainer_internal.h"

int dt_early_stop_update(dt_early_stop *s, double accuracy, int epoch) {
    if (accuracy > s->best) { /* Lightning: current - min_delta > best, min_delta 0 */
        s->best = accuracy;
        s->best_epoch = epoch;
        s->wait = 0;
        return 0;
    }
    s->wait++;
    return s->patience > 0 && s->wait == s->patience;
}

int dt_early_stop_reached(const dt_early_stop *s) {
    return s->patience > 0 && s->wait >= s->patience;
}

int dt_train_early_stop_evaluated(dt_trainer *t, int epoch, long global_step, double accuracy,
                                  dt_error *err) {
    if (!dt_early_stop_update(&t->early_stop, accuracy, epoch)) return 0;
    const dt_early_stop *s = &t->early_stop;
    const char *monitor = t->ema ? "ema_val_acc" : "val_acc";
    dt_progress_line(&t->progress, NULL,
                     "early stopping: the validation accuracy%s has not improved for %ld "
                     "evaluations (best %.4f after epoch %d; train.early_stop_patience %d)%s",
                     t->ema ? " of the EMA weights" : "", s->wait, s->best, s->best_epoch,
                     s->patience,
                     epoch < t->cfg->train.epochs ? ": the run stops after this epoch" : "");
    /* before the epoch's checkpoint: a resume from an earlier one drops the row again */
    return dt_metrics_early_stop(&t->metrics, epoch, global_step, monitor, s->best, s->best_epoch,
                                 s->wait, s->patience, err);
}

int dt_train_agree_on_early_stop(dt_trainer *t, int epoch, int *stop, dt_error *err) {
    *stop = 0;
    if (t->cfg->train.early_stop_patience == 0) return 0;
    int reached = t->is_root && dt_early_stop_reached(&t->early_stop);
    if (t->comm->size > 1 &&
        t->comm->ops->broadcast(t->comm->ctx, &reached, sizeof reached, 0, err))
        return dt_error_prefix(err, "early stopping: rank 0's decision");
    if (!reached) return 0;
    *stop = 1;
    t->stopped_early_epoch = epoch;
    dt_signals_training_over(); /* a stop signal from now on only finishes the outputs */
    return 0;
}
