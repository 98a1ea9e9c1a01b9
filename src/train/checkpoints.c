/* Checkpointing of a training run (checkpoints.h): output.dir's lock, resume, and checkpoints
 * written by a background thread while training goes on. */
#define _GNU_SOURCE
#include "train/checkpoints.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dtrain/log.h"
#include "dtrain/optimizer.h"
#include "dtrain/output_files.h"
#include "dtrain/platform.h"
#include "dtrain/safetensors.h"
#include "dtrain/signals.h"
#include "train/run_dir.h"

void dt_checkpoints_init(dt_checkpoints *c, const dt_config *cfg, dt_comm *comm, dt_progress *log,
                         dt_watchdog *watchdog, int resume, const char *resume_path,
                         int overwrite) {
    memset(c, 0, sizeof *c);
    c->cfg = cfg;
    c->comm = comm;
    c->is_root = comm->rank == 0;
    c->log = log;
    c->watchdog = watchdog;
    c->resume = resume;
    c->resume_path = resume_path;
    c->overwrite = overwrite;
    c->lock_fd = -1;
    c->last_step = -1;
}

int dt_checkpoints_claim_output_dir(dt_checkpoints *c, dt_error *err) {
    if (!c->is_root) return 0;
    if (dt_run_dir_prepare(c->cfg->output.dir, c->resume, c->resume_path, c->overwrite, &c->lock_fd,
                           err))
        return -1;
    return dt_ckpt_writer_create(&c->writer, err);
}

/* The first line of output.dir/.dtrain.lock ("pid N on HOST", written by rank 0), or "". */
static void read_lock_owner(const char *dir, char *out, size_t size) {
    char path[4200];
    snprintf(path, sizeof path, "%s/.dtrain.lock", dir);
    out[0] = '\0';
    FILE *f = fopen(path, "r");
    if (!f) return;
    if (!fgets(out, (int)size, f)) out[0] = '\0';
    fclose(f);
}

int dt_checkpoints_check_output_shared(dt_checkpoints *c, dt_error *err) {
    dt_comm *comm = c->comm;
    if (comm->size == 1) return 0;
    enum { OWNER = 256 };
    char mine[OWNER];
    /* rank 0 wrote its lock before it reached the barrier */
    if (comm->ops->barrier(comm->ctx, err)) return dt_error_prefix(err, "output.dir check");
    read_lock_owner(c->cfg->output.dir, mine, sizeof mine);
    char *all = calloc((size_t)comm->size, OWNER);
    if (!all) return dt_fail(err, "out of memory");
    if (comm->ops->allgather(comm->ctx, mine, all, OWNER, err)) {
        free(all);
        return dt_error_prefix(err, "comparing the ranks' view of output.dir");
    }
    char ranks[256] = "";
    int missing = 0;
    for (int r = 1; r < comm->size && c->is_root; r++) {
        if (strcmp(all + (size_t)r * OWNER, all) == 0) continue;
        size_t used = strlen(ranks);
        snprintf(ranks + used, sizeof ranks - used, "%s%d", used ? "," : "", r);
        missing++;
    }
    free(all);
    if (missing)
        dt_warn(
            "output.dir %s is not shared: rank%s %s do%s not see rank 0's run there (a "
            "node-local disk?); rank 0 alone writes the outputs and checkpoints, so they stay on "
            "its node and a job restarted on other nodes cannot resume",
            c->cfg->output.dir, missing > 1 ? "s" : "", ranks, missing > 1 ? "" : "es");
    return 0;
}

/* ---- resume ---- */

/* One buffer of optimizer.safetensors: every parameter's tensor NAME (suffix "") or
 * NAME.suffix, finite, into host. */
static int load_buffer(dt_model *model, const dt_safetensors *st, const char *path,
                       const char *suffix, const char *what, float *host, dt_error *err) {
    size_t n;
    const dt_state_entry *entries = dt_model_state(model, &n);
    for (size_t i = 0; i < n; i++) {
        if (entries[i].role != DT_TENSOR_PARAMETER) continue;
        char name[sizeof entries[i].name + 16];
        snprintf(name, sizeof name, "%s%s%s", entries[i].name, *suffix ? "." : "", suffix);
        const dt_st_tensor *x = dt_safetensors_find(st, name);
        if (!x) return dt_fail_usage(err, "%s: no %s for %s", path, what, entries[i].name);
        if (dt_st_tensor_to_float(x, host + entries[i].offset, entries[i].count, err))
            return dt_error_prefix(err, "%s", path);
        for (size_t k = 0; k < entries[i].count; k++)
            if (!isfinite(host[entries[i].offset + k]))
                return dt_fail_usage(err,
                                     "%s: the %s of %s holds NaN or infinite values (element "
                                     "%zu): not a usable state",
                                     path, what, entries[i].name, k);
    }
    return 0;
}

/* optimizer.safetensors: the state of this run's optimizer (written before AdamW existed: SGD),
 * AdamW's step count matching the checkpoint's steps taken. second is NULL for SGD. */
static int load_optimizer(dt_model *model, const char *dir, const dt_config *cfg,
                          const dt_ckpt_state *state, float *momentum, float *second,
                          dt_error *err) {
    char path[4300];
    snprintf(path, sizeof path, "%s/optimizer.safetensors", dir);
    dt_safetensors st;
    if (dt_safetensors_read(path, &st, err)) return -1;
    const char *saved = dt_safetensors_metadata_value(&st, "optimizer");
    const char *mine = cfg->train.optimizer == DT_OPTIMIZER_ADAMW ? "adamw" : "sgd";
    if (!saved) saved = "sgd";
    int rc = 0;
    if (strcmp(saved, mine) != 0) {
        rc = dt_fail_usage(err,
                           "%s holds the state of optimizer %s; this run trains with "
                           "train.optimizer %s: resume with the checkpoint's optimizer",
                           path, saved, mine);
    } else if (!second) {
        rc = load_buffer(model, &st, path, "", "momentum", momentum, err);
    } else {
        const char *step = dt_safetensors_metadata_value(&st, "step");
        long want = dt_optimizer_steps_taken(state->step, state->skipped_total);
        char *end = NULL;
        long got = step ? strtol(step, &end, 10) : -1;
        if (!step || *end || got != want)
            rc = dt_fail_usage(err,
                               "%s: AdamW step count %s, but the checkpoint took %ld steps "
                               "(%ld, %ld of them skipped): not this checkpoint's state",
                               path, step ? step : "missing", want, state->step,
                               state->skipped_total);
        else if (load_buffer(model, &st, path, "exp_avg", "exp_avg", momentum, err) ||
                 load_buffer(model, &st, path, "exp_avg_sq", "exp_avg_sq", second, err))
            rc = -1;
    }
    dt_safetensors_free(&st);
    return rc;
}

/* The weights' average from ema.safetensors (the model's loader, on the average swapped in). */
static int load_ema(dt_model_ema *ema, const char *dir, dt_error *err) {
    if (!ema || !ema->model) return 0;
    char path[4300];
    snprintf(path, sizeof path, "%s/ema.safetensors", dir);
    dt_model_ema_swap(ema);
    int rc = dt_model_load_safetensors(ema->model, path, 0, NULL, err);
    dt_model_ema_swap(ema);
    return rc;
}

/* Rank 0's average to every other rank (after a resume: rank 0 read it). */
static int broadcast_ema(dt_comm *comm, dt_model_ema *ema, dt_error *err) {
    if (!ema || !ema->model || comm->size == 1) return 0;
    size_t np = dt_model_param_count(ema->model), ns = dt_model_stats_count(ema->model);
    float *params = malloc(np * sizeof *params), *stats = malloc((ns ? ns : 1) * sizeof *stats);
    int64_t tracked = ema->batches_tracked;
    int rc = !params || !stats ? dt_fail(err, "out of memory") : 0;
    if (!rc && comm->rank == 0) rc = dt_model_ema_download(ema, params, stats, err);
    if (!rc)
        rc = comm->ops->broadcast(comm->ctx, params, np * sizeof *params, 0, err) ||
             comm->ops->broadcast(comm->ctx, stats, ns * sizeof *stats, 0, err) ||
             comm->ops->broadcast(comm->ctx, &tracked, sizeof tracked, 0, err);
    if (!rc && comm->rank != 0) rc = dt_model_ema_upload(ema, params, stats, tracked, err);
    free(params);
    free(stats);
    return rc ? dt_error_prefix(err, "--resume: the weights' average") : 0;
}

/* Rank 0: the checkpoint, its checks against this run, and the weights loaded; 1 (state->epoch
 * 0) when output.dir has no complete checkpoint, so the run starts over there. */
static int resume_on_root(dt_checkpoints *c, dt_model *model, const dt_ckpt_run *run,
                          dt_ckpt_state *state, float *momentum, float *second, dt_error *err) {
    const dt_config *cfg = c->cfg;
    char dir[4300], path[4400];
    int found = dt_checkpoint_find(cfg->output.dir, c->resume_path, dir, sizeof dir, state, err);
    if (found == 1) {
        dt_progress_line(c->log, NULL, "--resume: %s; starting over in %s", err->message,
                         cfg->output.dir);
        memset(state, 0, sizeof *state);
        return dt_run_dir_clear(cfg->output.dir, err) ? -1 : 1;
    }
    if (found) return -1;
    snprintf(path, sizeof path, "%s/config.yaml", dir);
    dt_config saved;
    if (dt_config_load(path, 0, NULL, &saved, err)) return dt_error_prefix(err, "--resume");
    char keys[1024];
    int differing = dt_config_resume_differences(&saved, cfg, keys, sizeof keys);
    dt_config_free(&saved);
    if (differing) {
        char resumable[1024];
        dt_config_resumable_keys(resumable, sizeof resumable);
        return dt_fail_usage(err,
                             "--resume: %s was written with other values of %s; a resume may "
                             "change only %s",
                             path, keys, resumable);
    }
    if (state->file_list_hash != dt_dataset_hash(run->ds))
        return dt_fail_usage(err,
                             "--resume: the files under %s differ from those of checkpoint %s "
                             "(files added, removed or renamed)",
                             cfg->data.root, dir);
    if (state->global_batch != (long)run->global_batch)
        return dt_fail_usage(err,
                             "--resume: checkpoint %s has global batch %ld (%d ranks); this run "
                             "has %zu (train.batch_size %d x %d ranks x train.accumulate %d); "
                             "resume with the same global batch",
                             dir, state->global_batch, state->ranks, run->global_batch,
                             cfg->train.batch_size, c->comm->size, cfg->train.accumulate);
    if (state->steps_per_epoch != run->steps_per_epoch)
        return dt_fail_usage(err, "--resume: checkpoint %s has %ld steps per epoch, this run %ld",
                             dir, state->steps_per_epoch, run->steps_per_epoch);
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    if (dt_model_load_safetensors(model, path, 0, NULL, err) ||
        load_optimizer(model, dir, cfg, state, momentum, second, err) ||
        load_ema(run->ema, dir, err)) {
        err->exit_code = DT_EXIT_USAGE;
        return -1;
    }
    /* before the history is cut back to this checkpoint's step: latest names it, newer ones go */
    if (dt_checkpoint_adopt(cfg->output.dir, dir, state->step, err)) return -1;
    if (state->ranks != c->comm->size)
        dt_progress_line(c->log, NULL,
                         "resuming on %d ranks a checkpoint written by %d (same global batch %ld)",
                         c->comm->size, state->ranks, state->global_batch);
    dt_progress_line(c->log, NULL, "resuming from %s: epoch %d, step %ld", dir, state->epoch,
                     state->step);
    dt_signals_checkpoint_complete();
    return 0;
}

int dt_checkpoints_resume(dt_checkpoints *c, dt_model *model, const dt_ckpt_run *run,
                          dt_resume_point *at, dt_error *err) {
    memset(at, 0, sizeof *at);
    at->start_epoch = 1;
    at->best_val_acc = -1;
    at->early_stop_best = -1;
    if (!c->resume) return 0;
    size_t np = dt_model_param_count(model);
    int adamw = c->cfg->train.optimizer == DT_OPTIMIZER_ADAMW;
    float *momentum = calloc(np, sizeof *momentum);
    float *second = adamw ? calloc(np, sizeof *second) : NULL;
    if (!momentum || (adamw && !second)) {
        free(momentum);
        free(second);
        return dt_fail(err, "out of memory");
    }
    dt_ckpt_state state;
    memset(&state, 0, sizeof state);
    int rc = -1;
    if (c->is_root && resume_on_root(c, model, run, &state, momentum, second, err) < 0) goto done;
    dt_comm *comm = c->comm;
    if (comm->size > 1 &&
        (comm->ops->broadcast(comm->ctx, &state, sizeof state, 0, err) ||
         comm->ops->broadcast(comm->ctx, momentum, np * sizeof *momentum, 0, err) ||
         (second && comm->ops->broadcast(comm->ctx, second, np * sizeof *second, 0, err))))
        goto done;
    if (state.epoch == 0) { /* no checkpoint: a new run */
        c->resume = 0;
        rc = 0;
        goto done;
    }
    if (dt_model_upload_momentum(model, momentum, err) ||
        (second && dt_model_upload_second_moment(model, second, err)) ||
        broadcast_ema(comm, run->ema, err))
        goto done;
    at->start_epoch = state.evaluated ? state.epoch + 1 : state.epoch;
    at->start_step = state.evaluated ? 0 : state.step_in_epoch;
    at->skipped_in_row = state.skipped_in_row;
    at->skipped_total = state.skipped_total;
    at->best_val_acc = state.best_val_acc;
    at->last_val_acc = state.last_val_acc;
    at->early_stop_best = state.early_stop_best;
    at->early_stop_best_epoch = state.early_stop_best_epoch;
    at->early_stop_wait = state.early_stop_wait;
    c->last_step = state.step;
    c->last_evaluated = state.evaluated;
    dt_model_set_batches_tracked(model, state.batches_tracked);
    rc = 0;
done:
    free(momentum);
    free(second);
    return rc;
}

/* ---- checkpoints ---- */

static char *render_config(const dt_config *cfg, size_t *length) {
    char *text = NULL;
    FILE *f = open_memstream(&text, length);
    if (!f) return NULL;
    int rc = dt_config_write_yaml(cfg, f);
    if (fclose(f) != 0 || rc != 0) {
        free(text);
        return NULL;
    }
    return text;
}

static char *join_classes(const dt_ckpt_run *run) {
    size_t n = 1;
    for (int i = 0; i < run->ds->n_classes; i++) n += strlen(run->display_names[i]) + 1;
    char *s = calloc(n, 1);
    if (!s) return NULL;
    for (int i = 0; i < run->ds->n_classes; i++) {
        if (i) strcat(s, "\n");
        strcat(s, run->display_names[i]);
    }
    return s;
}

/* "weights", "running statistics", "momentum" or "AdamW moments" when that part holds NaN or
 * Inf, else NULL. */
static const char *nonfinite_part(const dt_ckpt_payload *p) {
    for (size_t i = 0; i < p->n_params; i++)
        if (!isfinite(p->params[i])) return "weights";
    for (size_t i = 0; i < p->n_stats; i++)
        if (!isfinite(p->stats[i])) return "running statistics";
    for (size_t i = 0; i < p->n_params; i++)
        if (!isfinite(p->momentum[i])) return p->second_moment ? "AdamW moments" : "momentum";
    for (size_t i = 0; p->second_moment && i < p->n_params; i++)
        if (!isfinite(p->second_moment[i])) return "AdamW moments";
    return NULL;
}

/* The weights' average as host copies and its tensor list (ema.safetensors), when kept. */
static int copy_ema(dt_model_ema *ema, dt_ckpt_payload *p, dt_error *err) {
    if (!ema || !ema->model) return 0;
    if (!(p->ema_params = malloc(p->n_params * sizeof(float))) ||
        !(p->ema_stats = malloc((p->n_stats ? p->n_stats : 1) * sizeof(float))))
        return dt_fail(err, "out of memory");
    p->ema_batches_tracked = ema->batches_tracked;
    return dt_model_ema_download(ema, p->ema_params, p->ema_stats, err) ||
                   dt_model_ema_checkpoint_tensors(ema, p, err)
               ? -1
               : 0;
}

void dt_checkpoints_report(dt_checkpoints *c) {
    dt_ckpt_report rep;
    if (c->is_root && c->writer && dt_ckpt_writer_take_report(c->writer, &rep))
        dt_progress_line(c->log, NULL,
                         "checkpoint %s written: %.1f MB in %.2f s on the writer thread "
                         "(training paused %.3f s to copy the buffers)",
                         rep.name, (double)rep.bytes / 1e6, rep.seconds, c->copy_seconds);
}

int dt_checkpoints_write(dt_checkpoints *c, dt_model *model, const dt_ckpt_run *run, int epoch,
                         long step, long step_in_epoch, int evaluated, int wait, dt_error *err) {
    if (!c->is_root) return 0;
    if (step == c->last_step && evaluated == c->last_evaluated)
        return wait ? dt_ckpt_writer_wait(c->writer, err) : 0;
    dt_watchdog_mark(c->watchdog, "checkpoint", step, 1);
    /* one write at a time; its report (or error) first */
    if (dt_ckpt_writer_wait(c->writer, err)) return dt_error_prefix(err, "checkpoint");
    dt_checkpoints_report(c);
    double t0 = dt_monotonic_seconds();
    dt_ckpt_payload p;
    memset(&p, 0, sizeof p);
    p.n_params = dt_model_param_count(model);
    p.n_stats = dt_model_stats_count(model);
    if (!(p.params = malloc(p.n_params * sizeof(float))) ||
        !(p.stats = malloc((p.n_stats ? p.n_stats : 1) * sizeof(float))) ||
        !(p.momentum = malloc(p.n_params * sizeof(float))) ||
        (dt_model_second_moment(model) &&
         !(p.second_moment = malloc(p.n_params * sizeof(float)))) ||
        !(p.config_yaml = render_config(c->cfg, &p.config_length)) ||
        !(p.classes = join_classes(run))) {
        dt_ckpt_payload_free(&p);
        return dt_fail(err, "checkpoint: out of memory");
    }
    if (dt_model_download_state(model, p.params, p.stats, err) ||
        dt_model_download_momentum(model, p.momentum, err) ||
        (p.second_moment && dt_model_download_second_moment(model, p.second_moment, err)) ||
        copy_ema(run->ema, &p, err)) {
        dt_ckpt_payload_free(&p);
        return dt_error_prefix(err, "checkpoint");
    }
    /* a checkpoint is a good state to continue from, or none is written: the gradients were
     * checked, so non-finite values here come from a step that overflowed (its update, or its
     * activations for the running statistics); whether one will cannot be known from train.lr
     * alone (it depends on the gradients) */
    const char *bad = nonfinite_part(&p);
    if (bad) {
        dt_ckpt_payload_free(&p);
        return dt_fail(err,
                       "step %ld (epoch %d): the %s are not finite (NaN or Inf) although the "
                       "gradients were: %s overflowed them (train.lr %g is too high); no "
                       "checkpoint written for this step (the last one written before holds the "
                       "last good state); try a lower train.lr",
                       step, epoch, bad,
                       strcmp(bad, "running statistics") == 0 ? "the activations" : "an update",
                       c->cfg->train.lr);
    }
    dt_ckpt_state *s = &p.state;
    s->epoch = epoch;
    s->step = step;
    s->step_in_epoch = step_in_epoch;
    s->steps_per_epoch = run->steps_per_epoch;
    s->evaluated = evaluated;
    s->best_val_acc = run->best_val_acc;
    s->last_val_acc = run->last_val_acc;
    s->batches_tracked = dt_model_batches_tracked(model);
    s->skipped_in_row = run->skipped_in_row;
    s->skipped_total = run->skipped_total;
    s->train_seed = c->cfg->train.seed;
    s->config_hash = dt_config_hash(c->cfg);
    s->file_list_hash = dt_dataset_hash(run->ds);
    s->ranks = c->comm->size;
    s->global_batch = (long)run->global_batch;
    s->early_stop_best = run->early_stop_best;
    s->early_stop_best_epoch = run->early_stop_best_epoch;
    s->early_stop_wait = run->early_stop_wait;
    p.optimizer = c->cfg->train.optimizer == DT_OPTIMIZER_ADAMW ? "adamw" : "sgd";
    p.optimizer_step = dt_optimizer_steps_taken(step, run->skipped_total);
    if (dt_model_checkpoint_tensors(model, &p, err)) {
        dt_ckpt_payload_free(&p);
        return dt_error_prefix(err, "checkpoint");
    }
    if (dt_ckpt_writer_submit(c->writer, c->cfg->output.dir, c->cfg->output.keep_checkpoints, &p,
                              err))
        return dt_error_prefix(err, "checkpoint");
    c->last_step = step;
    c->last_evaluated = evaluated;
    c->copy_seconds = dt_monotonic_seconds() - t0;
    if (wait && dt_ckpt_writer_wait(c->writer, err)) return dt_error_prefix(err, "checkpoint");
    return 0;
}

int dt_checkpoints_sync(dt_checkpoints *c, const char *phase, dt_error *err) {
    if (c->is_root && c->writer) {
        if (phase) dt_watchdog_mark(c->watchdog, phase, 0, 1);
        if (dt_ckpt_writer_wait(c->writer, err)) return dt_error_prefix(err, "checkpoint");
        dt_checkpoints_report(c);
    }
    return 0;
}

void dt_checkpoints_close(dt_checkpoints *c) {
    if (c->writer) {
        dt_error ignored = {{0}, 0};
        dt_ckpt_writer_wait(c->writer, &ignored);
        dt_ckpt_writer_destroy(c->writer);
    }
    if (c->is_root) dt_output_dir_unpin();
    c->writer = NULL;
}
