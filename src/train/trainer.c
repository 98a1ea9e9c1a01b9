/* The training run: set-up (data, split, backend, model, loader, outputs), the epoch loop with
 * gradient accumulation, all-reduce and the optimizer step, rank-0 evaluation, and the final
 * files. */
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dtrain/backend.h"
#include "dtrain/data.h"
#include "dtrain/export.h"
#include "dtrain/log.h"
#include "dtrain/metrics.h"
#include "dtrain/model.h"
#include "dtrain/platform.h"
#include "dtrain/rng.h"
#include "dtrain/schedule.h"
#include "dtrain/signals.h"
#include "dtrain/threads.h"
#include "dtrain/train.h"
#include "train/progress.h"
#include "train/trainer_internal.h"

/* This rank's samples for the epoch: the global order cut into global batches; inside each,
 * micro-batch j = rank * accumulate + m (a contiguous slice per rank). */
static int plan_epoch(dt_trainer *t, int epoch, dt_error *err) {
    uint32_t *order = NULL;
    size_t n_order;
    if (dt_epoch_order(&t->session.split, t->cfg->train.seed, epoch, t->cfg->train.shuffle,
                       t->global_batch, &order, &n_order, err))
        return -1;
    size_t b = (size_t)t->cfg->train.batch_size, accumulate = (size_t)t->cfg->train.accumulate;
    size_t per_rank = b * accumulate;
    size_t steps = n_order / t->global_batch;
    if ((long)steps != t->steps_per_epoch) {
        free(order);
        return dt_fail(err, "internal: epoch order has %zu steps, expected %ld", steps,
                       t->steps_per_epoch);
    }
    for (size_t s = 0; s < steps; s++)
        memcpy(t->rank_indices + s * per_rank,
               order + s * t->global_batch + (size_t)t->comm->rank * per_rank,
               per_rank * sizeof *t->rank_indices);
    free(order);
    return 0;
}

int dt_train_forward_loss(dt_trainer *t, const dt_batch *batch, int training, float grad_scale,
                          dt_error *err) {
    const dt_config *cfg = t->cfg;
    int b = batch->batch_size;
    for (int i = 0; i < b; i++) t->weights[i] = batch->counts[i] ? 1.0f : 0.0f;
    /* training: the batch's mixup/cutmix labels and label smoothing (timm's mixup_target,
     * torch CrossEntropyLoss); evaluation: plain cross-entropy, as timm's validate */
    const dt_loss_targets targets = {
        .labels = batch->labels,
        .weights = t->weights,
        .mix_labels = training ? batch->mix_labels : NULL,
        .mix_lambda = training && batch->mix_labels ? batch->mix_lambda : 1.0f,
        .label_smoothing = training ? (float)cfg->train.label_smoothing : 0.0f};
    if (dt_model_forward(t->session.model, batch->pixels, cfg->data.mean, cfg->data.std, training,
                         err) ||
        dt_model_loss_targets(t->session.model, &targets, grad_scale, NULL, err))
        return -1;
    return 0;
}

int dt_train_release_batch(dt_trainer *t, const dt_batch *batch, dt_error *err) {
    int rc = dt_model_input_wait(t->session.model, err);
    dt_loader_release(t->session.loader, batch);
    return rc;
}

/* One micro-batch: forward, loss, backward (accumulating after the first). The loss is the
 * mean over this micro-batch; the optimizer step divides the sum over micro-batches and ranks
 * by their number (see optimizer_step). */
static int train_micro_batch(dt_trainer *t, const dt_batch *batch, int micro, dt_error *err) {
    int counted = batch->n_counted > 0 ? batch->n_counted : 1;
    /* the step's last backward hands each bucket to the all-reduce as it completes */
    int report = t->comm->size > 1 && micro + 1 == t->cfg->train.accumulate;
    if (report) dt_bucket_plan_reset(&t->buckets);
    if (dt_train_forward_loss(t, batch, 1, 1.0f / (float)counted, err)) return -1;
    return dt_model_backward(t->session.model, micro > 0, report, err);
}

/* Queues the update without waiting for the device: the backend's non-finite guard decides
 * whether it applies (dt_guard_step); the host learns it at the next dt_train_guard_sync. */
static int optimizer_step(dt_trainer *t, long global_step, dt_window *w, dt_error *err) {
    size_t offset, count; /* the update's weight-decay ranges are the optimizer's (optimizer.h) */
    dt_model_trainable_span(t->session.model, &offset, &count);
    float *grads = dt_model_grads(t->session.model) + offset;
    /* the buckets were all-reduced during backward (the test switch's NaN went into the one
     * holding the first trained value); the update waits for the last of them */
    if (t->comm->size == 1 && dt_train_before_allreduce(t, global_step, grads, err)) return -1;
    if (t->comm->size > 1 && (dt_bucket_plan_check_done(&t->buckets, err) ||
                              dt_model_phase_mark(t->session.model, DT_PHASE_ALLREDUCE, err) ||
                              t->dcomm.ops->wait(t->dcomm.ctx, err) ||
                              dt_model_phase_mark(t->session.model, DT_PHASE_COMPUTE, err)))
        return dt_error_prefix(err, "all-reduce of gradients");
    if (dt_guard_step(&t->guard, t->session.model, global_step, grads, count, err)) return -1;
    const dt_config *cfg = t->cfg;
    double lr = dt_lr_at(&t->schedule, global_step);
    /* grads hold the sum of (ranks x accumulate) micro-batch means: average them inside the
     * update, one multiplication for both, so that N ranks and N accumulation steps do the same
     * arithmetic up to the order of the summation */
    float grad_scale = 1.0f / ((float)t->comm->size * (float)cfg->train.accumulate);
    w->lr = lr;
    double norm;
    if (dt_optimizer_step(&t->optimizer, global_step, lr, grad_scale, grads, &norm, err)) return -1;
    if (norm >= 0.0 || isnan(norm)) {
        w->grad_norm_sum += norm;
        w->grad_norms++;
    }
    return 0;
}

static void window_start(dt_trainer *t, dt_window *w, double now) {
    memset(w, 0, sizeof *w);
    w->start = now;
    w->wait_start = dt_loader_wait_seconds(t->session.loader);
}

/* The console state after global_step steps (step_in_epoch of epoch): position, ETA from the
 * remaining steps at step_seconds each, and the last log line's loss, accuracy and speed. */
static dt_progress_state progress_state(const dt_trainer *t, int epoch, long step_in_epoch,
                                        long global_step, double step_seconds) {
    dt_progress_state s = t->last_progress;
    s.epoch = epoch;
    s.epochs = t->cfg->train.epochs;
    s.step_in_epoch = step_in_epoch;
    s.steps_per_epoch = t->steps_per_epoch;
    s.global_step = global_step;
    s.total_steps = t->schedule.total_steps;
    s.eta_s = (double)(t->schedule.total_steps - global_step) * step_seconds;
    return s;
}

/* All ranks: read the window's statistics from the backend (the one wait for the device in a
 * log window) and sum them over ranks, then rank 0 logs them. */
static int log_window(dt_trainer *t, int epoch, long step_in_epoch, long global_step, dt_window *w,
                      dt_error *err) {
    double stats[DT_LOSS_STATS], phases[DT_PHASE_COUNT] = {0};
    if (t->dcomm.ops->drain(t->dcomm.ctx, err) ||
        dt_model_loss_stats_read(t->session.model, stats, 1, err) ||
        dt_model_phase_read(t->session.model, phases, 1, err))
        return dt_error_prefix(err, "reading the training statistics");
    double data_wait = dt_loader_wait_seconds(t->session.loader) - w->wait_start;
    double sums[6] = {stats[DT_LOSS_SUM],
                      stats[DT_LOSS_CORRECT],
                      stats[DT_LOSS_COUNT],
                      phases[DT_PHASE_ALLREDUCE],
                      data_wait,
                      stats[DT_LOSS_NONFINITE]};
    dt_watchdog_mark(t->watchdog, "statistics all-reduce", global_step, 0);
    if (t->comm->ops->allreduce_double(t->comm->ctx, sums, 6, DT_REDUCE_SUM, err))
        return dt_error_prefix(err, "all-reduce of training statistics");
    double now = dt_monotonic_seconds();
    double seconds = now - w->start;
    if (sums[2] == 0) { /* every file of the window failed to decode: no loss to report */
        dt_train_report_empty_window(t, w, epoch, global_step);
        window_start(t, w, now);
        return 0;
    }
    double loss = sums[0] / sums[2];
    if (sums[5] > 0 && isfinite(loss)) loss = NAN; /* a non-finite sample loss cancelled out */
    if (!isfinite(loss) && t->cfg->train.nonfinite != DT_NONFINITE_SKIP)
        return dt_fail(err,
                       "training diverged: the loss is %s at epoch %d step %ld (try a lower "
                       "train.lr)",
                       isnan(loss) ? "NaN" : "infinite", epoch, global_step);
    if (t->is_root) {
        double imgs = (double)w->steps * (double)t->global_batch;
        double img_per_s = seconds > 0 ? imgs / seconds : 0;
        t->step_seconds_avg = w->steps > 0 ? seconds / w->steps : t->step_seconds_avg;
        dt_progress_state s =
            progress_state(t, epoch, step_in_epoch, global_step, t->step_seconds_avg);
        s.loss = loss;
        s.acc = sums[1] / sums[2];
        s.img_per_s = img_per_s;
        s.lr = w->lr;
        s.has_stats = 1;
        dt_progress_log(&t->progress, &s);
        t->last_progress = s;
        dt_train_row row = {.epoch = epoch,
                            .step = global_step,
                            .loss = loss,
                            .acc = sums[1] / sums[2],
                            .lr = w->lr,
                            .img_per_s = img_per_s,
                            .elapsed_s = now - t->start,
                            .has_grad_norm = w->grad_norms > 0,
                            .grad_norm = w->grad_norms > 0 ? w->grad_norm_sum / w->grad_norms : 0};
        if (dt_metrics_train(&t->metrics, &row, err) || dt_run_outputs_train(t, &row, err))
            return -1;
        t->allreduce_total_s += sums[3] / t->comm->size;
        t->data_wait_total_s += sums[4] / t->comm->size;
        t->window_total_s += seconds;
    }
    window_start(t, w, now);
    return 0;
}

/* Takes the next micro-batch of the epoch from the loader when it is ready and starts its copy
 * to the device, so that the copy overlaps the rest of this step (the optimizer included)
 * instead of starting at the next forward. A batch still being decoded is not waited for here:
 * the optimizer goes first and the next micro-batch takes it (same batches, same results).
 * Called once the current batch is released: one batch held at a time. */
static int prefetch_batch(dt_trainer *t, const dt_batch **next, dt_error *err) {
    int rc = dt_loader_try_next(t->session.loader, next, err);
    if (rc < 0) return -1;
    if (rc > 0) return 0; /* not decoded yet */
    if (!*next) return dt_fail(err, "internal: the loader ran out of batches early");
    size_t side = (size_t)t->cfg->data.image_size;
    size_t bytes = (size_t)(*next)->batch_size * side * side * 3;
    return dt_model_input_prefetch(t->session.model, (*next)->pixels, bytes, err);
}

int dt_train_before_allreduce(dt_trainer *t, long global_step, float *grads, dt_error *err) {
    dt_watchdog_mark(t->watchdog, "gradient all-reduce", global_step, 0);
    const dt_test_faults *f = &t->faults;
    if (f->nan_step < 0 || global_step < f->nan_step || global_step >= f->nan_step + f->nan_steps)
        return 0;
    return dt_model_grads_fill(t->session.model, (size_t)(grads - dt_model_grads(t->session.model)),
                               1, NAN, err);
}

/* One optimizer step: the test switches, the running statistics kept for a bad step, forward
 * and backward of each micro-batch (the next one's copy started once this one is released),
 * the all-reduce and the guarded SGD update. */
static int train_step(dt_trainer *t, int epoch, long step, int epoch_ends, dt_window *w,
                      dt_error *err) {
    const dt_config *cfg = t->cfg;
    t->step_in_progress = step;
    if (step == t->faults.fail_step)
        return dt_fail(err, "test fault injected at step %ld (DTRAIN_TEST_FAIL_RANK)", step);
    dt_watchdog_mark(t->watchdog, "training step", step, !t->first_step_done);
    t->first_step_done = 1;
    if (t->faults.step_delay_us > 0) usleep((useconds_t)t->faults.step_delay_us);
    if (dt_guard_before_step(&t->guard, t->session.model, err)) return -1;
    for (int m = 0; m < cfg->train.accumulate; m++) {
        const dt_batch *batch = t->pending;
        t->pending = NULL;
        if (!batch && dt_loader_next(t->session.loader, &batch, err)) return -1;
        if (!batch) return dt_fail(err, "internal: the loader ran out of batches early");
        dt_error release_err = {{0}, 0};
        int rc = train_micro_batch(t, batch, m, err);
        if (dt_train_release_batch(t, batch, rc ? &release_err : err)) rc = -1;
        /* forward and backward (with the all-reduce) are queued: the next batch's copy goes
         * before this step's optimizer */
        int more = m + 1 < cfg->train.accumulate || !epoch_ends;
        if (!rc && more && prefetch_batch(t, &t->pending, err)) rc = -1;
        if (rc) return dt_error_prefix(err, "epoch %d step %ld", epoch, step);
    }
    if (optimizer_step(t, step, w, err)) return -1;
    /* the average follows every applied step, in stream order (a skipped step is no step) */
    if (t->ema && dt_model_ema_update(t->ema, 1, err)) return -1;
    w->steps++;
    return 0;
}

/* Rank 0's live line on a terminal between two log lines. */
static void show_live(dt_trainer *t, int epoch, long step_in_epoch, long global_step,
                      const dt_window *w) {
    if (!t->is_root || !t->progress.live) return;
    /* before the first log line: the seconds per step of this window so far */
    double step_seconds = t->step_seconds_avg > 0
                              ? t->step_seconds_avg
                              : (dt_monotonic_seconds() - w->start) / (double)w->steps;
    dt_progress_state live = progress_state(t, epoch, step_in_epoch, global_step, step_seconds);
    dt_progress_live(&t->progress, &live);
}

/* Steps first.. of the epoch (first > 0 after a resume): this rank's order, the loader started
 * on it, a new log window. */
static int epoch_start(dt_trainer *t, int epoch, long first, dt_window *w, dt_error *err) {
    const dt_config *cfg = t->cfg;
    size_t skipped = (size_t)first * (size_t)cfg->train.batch_size * (size_t)cfg->train.accumulate;
    if (plan_epoch(t, epoch, err) ||
        dt_loader_start_at(t->session.loader, t->rank_indices + skipped,
                           t->n_rank_indices - skipped, epoch, 1,
                           (size_t)first * (size_t)cfg->train.accumulate, err))
        return -1;
    window_start(t, w, dt_monotonic_seconds());
    return 0;
}

/* The epoch's batches are all used. */
static int epoch_drained(dt_trainer *t, dt_error *err) {
    const dt_batch *end = NULL;
    if (dt_loader_next(t->session.loader, &end, err)) return -1;
    if (end) return dt_fail(err, "internal: the loader has batches left at the end of the epoch");
    return 0;
}

dt_ckpt_run dt_train_ckpt_run(const dt_trainer *t) {
    return (dt_ckpt_run){.ds = &t->session.ds,
                         .display_names = t->session.display_names,
                         .steps_per_epoch = t->steps_per_epoch,
                         .global_batch = t->global_batch,
                         .best_val_acc = t->best_val_acc,
                         .last_val_acc = t->last_val_acc,
                         .skipped_in_row = t->guard.skipped_in_row,
                         .skipped_total = t->guard.skipped_total,
                         .ema = t->ema,
                         .early_stop_best = t->early_stop.best,
                         .early_stop_best_epoch = t->early_stop.best_epoch,
                         .early_stop_wait = t->early_stop.wait};
}

int dt_train_checkpoint(dt_trainer *t, int epoch, long step, long step_in_epoch, int evaluated,
                        int wait, dt_error *err) {
    dt_ckpt_run run = dt_train_ckpt_run(t);
    return dt_checkpoints_write(&t->ckpt, t->session.model, &run, epoch, step, step_in_epoch,
                                evaluated, wait, err);
}

int dt_train_guard_sync(dt_trainer *t, long *skipped, dt_error *err) {
    dt_guard_halt halt;
    if (dt_guard_sync(&t->guard, t->session.model, &t->dcomm, skipped, &halt, err)) return -1;
    if (halt.halted_step < 0) return 0;
    /* the guard halted at step h: the backend kept the state before h (no update applied since,
     * statistics restored), written as the checkpoint of step h; then the run ends */
    long h = halt.halted_step;
    int epoch = (int)(h / t->steps_per_epoch) + 1;
    if (dt_train_checkpoint(t, epoch, h, h % t->steps_per_epoch, 0, 1, err)) return -1;
    /* the others wait until it is written: their error ends the job */
    if (t->comm->ops->barrier(t->comm->ctx, err)) return dt_error_prefix(err, "barrier");
    char where[4300] = "";
    if (t->is_root)
        snprintf(where, sizeof where, "; the last good state (step %ld) is in %s/checkpoints/", h,
                 t->cfg->output.dir);
    return dt_guard_halt_error(&t->guard, &halt, where, err);
}

static int finish(dt_trainer *t, dt_error *err) {
    /* distinct undecodable files over all ranks */
    size_t n = t->session.ds.n_files;
    double *bad = calloc(n ? n : 1, sizeof *bad);
    if (!bad) return dt_fail(err, "out of memory");
    const uint8_t *flags = dt_loader_bad_files(t->session.loader);
    for (size_t i = 0; i < n; i++) bad[i] = flags[i];
    int rc = t->comm->ops->allreduce_double(t->comm->ctx, bad, n, DT_REDUCE_SUM, err);
    long skipped = 0;
    uint8_t *bad_files = calloc(n ? n : 1, 1);
    for (size_t i = 0; bad_files && i < n; i++) skipped += (bad_files[i] = bad[i] > 0);
    skipped += (long)t->session.ds.n_skipped_members; /* shard members refused while indexing */
    if (!rc)
        rc = bad_files ? dt_run_outputs_done(t, bad_files, err) : dt_fail(err, "out of memory");
    free(bad_files);
    free(bad);
    if (rc) return -1;
    dt_watchdog_mark(t->watchdog, "finish", 0, 1);
    if (dt_checkpoints_sync(&t->ckpt, NULL, err)) return -1;
    if (!t->is_root) return 0;
    int finite = 0;
    if (dt_model_state_finite(t->session.model, &finite, err)) return -1;
    if (!finite)
        return dt_fail(err, "the final weights are not finite (NaN or Inf): model.safetensors "
                            "not written; try a lower train.lr");
    if (dt_train_write_model(t, "model.safetensors", err) || dt_train_write_ema(t, err)) return -1;
    double elapsed = dt_monotonic_seconds() - t->start;
    double best = t->best_val_acc >= 0 ? t->best_val_acc : 0; /* every epoch evaluates */
    dt_done_row done = {.epochs = t->cfg->train.epochs,
                        .best_val_acc = best,
                        .skipped_files = skipped,
                        .elapsed_s = elapsed,
                        .precision = dt_precision_name(t->session.precision),
                        .arch = dt_model_arch(t->session.model),
                        .stopped_early = t->stopped_early_epoch > 0,
                        .optimizer = dt_optimizer_name(t->cfg)};
    if (dt_metrics_done(&t->metrics, &done, err)) return -1;
    double window = t->window_total_s > 0 ? t->window_total_s : 1;
    dt_progress_line(&t->progress, NULL,
                     "time: %.1f s in all; of training steps %.1f%% waiting for data, %.1f%% in "
                     "all-reduce",
                     elapsed, 100.0 * t->data_wait_total_s / window,
                     100.0 * t->allreduce_total_s / window);
    if (skipped)
        dt_progress_line(&t->progress, NULL, "skipped %ld undecodable file%s", skipped,
                         skipped == 1 ? "" : "s");
    if (t->stopped_early_epoch)
        dt_progress_line(
            &t->progress, NULL, "stopped early after epoch %d of %d (train.early_stop_patience %d)",
            t->stopped_early_epoch, t->cfg->train.epochs, t->cfg->train.early_stop_patience);
    dt_progress_line(&t->progress, "\033[1;32m",
                     "done: final validation accuracy %.4f (best %.4f); outputs in %s/",
                     t->last_val_acc, best, t->cfg->output.dir);
    return 0;
}

int dt_train_write_model(dt_trainer *t, const char *name, dt_error *err) {
    char path[DT_PATH_BYTES];
    if (dt_path_join(path, sizeof path, t->cfg->output.dir, name, err)) return -1;
    const dt_config *c = t->cfg;
    dt_model_preprocessing pre = {.image_size = c->data.image_size,
                                  .resize =
                                      c->data.resize == DT_RESIZE_CENTER ? "center" : "squash",
                                  .mean = {c->data.mean[0], c->data.mean[1], c->data.mean[2]},
                                  .std = {c->data.std[0], c->data.std[1], c->data.std[2]}};
    return dt_model_save_safetensors(t->session.model, path, t->session.display_names,
                                     t->session.ds.n_classes, dt_config_hash(c), &pre, err);
}

int dt_train_write_ema(dt_trainer *t, dt_error *err) {
    if (!t->ema) return 0;
    dt_model_ema_swap(t->ema);
    int finite = 0;
    int rc = dt_model_state_finite(t->session.model, &finite, err);
    if (!rc && !finite)
        rc = dt_fail(err, "the weights' moving average is not finite (NaN or Inf): "
                          "ema.safetensors not written");
    if (!rc) rc = dt_train_write_model(t, "ema.safetensors", err);
    dt_model_ema_swap(t->ema);
    return rc;
}

/* The run, as a sequence: every step, every log_every steps, every checkpoint_every steps,
 * every epoch end. */
static int run(dt_trainer *t, dt_error *err) {
    const dt_config *cfg = t->cfg;
    if (dt_train_setup(t, err)) return -1;
    if (t->is_root) dt_train_print_summary(t);
    if (t->is_root) dt_train_print_classes(t);
    long steps_per_epoch = t->steps_per_epoch, total_steps = cfg->train.epochs * steps_per_epoch;
    int log_every = cfg->output.log_every, checkpoint_every = cfg->output.checkpoint_every;
    int classes_checked = 0;
    if (t->ckpt.resume && dt_early_stop_reached(&t->early_stop) &&
        t->resumed.start_epoch <= cfg->train.epochs) {
        /* the checkpoint is of a run that early stopping ended: it stays ended */
        t->stopped_early_epoch = t->resumed.start_epoch - 1;
        if (t->is_root)
            dt_progress_line(&t->progress, NULL,
                             "early stopping: the checkpoint's count has reached "
                             "train.early_stop_patience %d (%ld evaluations without a better "
                             "accuracy than %.4f after epoch %d): nothing to train (a larger "
                             "patience continues the run)",
                             t->early_stop.patience, t->early_stop.wait, t->early_stop.best,
                             t->early_stop.best_epoch);
        dt_signals_training_over();
        return finish(t, err);
    }
    for (int epoch = t->resumed.start_epoch; epoch <= cfg->train.epochs; epoch++) {
        long first = epoch == t->resumed.start_epoch ? t->resumed.start_step : 0;
        dt_window w = {0};
        if (first < steps_per_epoch && epoch_start(t, epoch, first, &w, err)) return -1;
        for (long s = first; s < steps_per_epoch; s++) {
            long step = (long)(epoch - 1) * steps_per_epoch + s, done = step + 1;
            int epoch_ends = s + 1 == steps_per_epoch;
            /* every step: micro-batches, gradient all-reduce, guarded SGD update */
            if (train_step(t, epoch, step, epoch_ends, &w, err)) return -1;
            /* every log_every steps and at the epoch's end: statistics over all ranks */
            if (done % log_every == 0 || epoch_ends) {
                if (dt_train_guard_sync(t, &w.skipped, err) ||
                    log_window(t, epoch, s + 1, done, &w, err))
                    return -1;
            } else {
                show_live(t, epoch, s + 1, done, &w);
            }
            /* every step: a stop signal on any rank stops every rank here, with a checkpoint */
            dt_checkpoints_report(&t->ckpt);
            int stop = 0;
            if (dt_train_agree_on_stop(t, done, &stop, err)) return -1;
            int checkpoint = checkpoint_every > 0 && done % checkpoint_every == 0 && !epoch_ends;
            /* a checkpoint holds the guard's counts, and never a state past a halt */
            if ((stop || checkpoint) && dt_train_guard_sync(t, NULL, err)) return -1;
            if (stop) return dt_train_stop_after_step(t, epoch, s + 1, done, err);
            if (done == total_steps) dt_signals_training_over();
            /* every checkpoint_every steps (an epoch's end has its own, after the evaluation) */
            if (checkpoint && dt_train_checkpoint(t, epoch, done, s + 1, 0, 0, err)) return -1;
        }
        if (first < steps_per_epoch && epoch_drained(t, err)) return -1;
        /* every epoch end: after the first whole pass every training file has been tried once;
         * rank 0 evaluates; the checkpoint of the evaluated epoch; an agreed stop */
        long end_step = (long)epoch * steps_per_epoch;
        if (first == 0 && !classes_checked++ && dt_train_check_decodable_classes(t, err)) return -1;
        /* the test switch: a Ctrl-C while the epoch's evaluation runs */
        if (epoch == t->faults.stop_at_epoch_end) dt_signals_request_stop(SIGINT);
        if (dt_checkpoints_sync(&t->ckpt, "waiting for the checkpoint writer", err) ||
            dt_train_evaluate(t, epoch, end_step, err) ||
            dt_train_checkpoint(t, epoch, end_step, steps_per_epoch, 1, 0, err))
            return -1;
        /* early stopping ends the run here on every rank, as its last epoch would */
        int early = 0;
        if (epoch < cfg->train.epochs && dt_train_agree_on_early_stop(t, epoch, &early, err))
            return -1;
        if (early) break;
        int stop = 0; /* after the last epoch the run ends here anyway */
        if (epoch < cfg->train.epochs && dt_train_agree_on_stop(t, end_step, &stop, err)) return -1;
        if (stop) return dt_train_stop_after_epoch(t, epoch, end_step, err);
    }
    return finish(t, err);
}

int dt_train_run(const dt_config *cfg, dt_comm *comm, dt_error *err) {
    dt_train_options defaults = {0};
    return dt_train_run_with(cfg, &defaults, comm, err);
}

int dt_train_run_with(const dt_config *cfg, const dt_train_options *opt, dt_comm *comm,
                      dt_error *err) {
    dt_trainer t;
    memset(&t, 0, sizeof t);
    t.options = *opt;
    t.cfg = cfg;
    t.comm = comm;
    t.is_root = comm->rank == 0;
    t.start = dt_monotonic_seconds();
    dt_test_faults_read(comm->rank, &t.faults);
    dt_log_set_rank(comm->rank, comm->size);
    dt_signals_set_rank(comm->rank);
    t.best_val_acc = -1;
    dt_progress_init(&t.progress, stdout, dt_comm_launched_by_mpi());
    int rc = run(&t, err);
    dt_train_teardown(&t, rc != 0);
    return rc;
}
