/* The trainer's hooks for long runs: output.dir lock, resume from a checkpoint, checkpoints at
 * step boundaries (written by a background thread), the ranks' agreement on a stop signal,
 * the watchdog's phases and the non-finite guard. The training loop calls these at set-up, step
 * boundaries and the end; the logic lives here. */
#define _GNU_SOURCE
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dtrain/log.h"
#include "dtrain/platform.h"
#include "dtrain/safetensors.h"
#include "dtrain/signals.h"
#include "train/run_dir.h"
#include "train/trainer_internal.h"

static long env_long(const char *name, long fallback) {
    const char *v = getenv(name);
    return v && *v ? atol(v) : fallback;
}

int dt_rel_setup(dt_trainer *t, dt_error *err) {
    dt_reliability *r = &t->rel;
    r->lock_fd = -1;
    r->start_epoch = 1;
    r->last_checkpoint_step = -1;
    const char *nan_rank = getenv("DTRAIN_TEST_NAN_RANK");
    r->nan_step =
        nan_rank && atoi(nan_rank) == t->comm->rank ? env_long("DTRAIN_TEST_NAN_STEP", -1) : -1;
    r->step_delay_us = env_long("DTRAIN_TEST_STEP_DELAY_MS", 0) * 1000;
    return dt_watchdog_start(t->comm, t->cfg->runtime.timeout_s, &r->watchdog, err);
}

int dt_rel_claim_output_dir(dt_trainer *t, dt_error *err) {
    dt_reliability *r = &t->rel;
    if (!t->is_root) return 0;
    if (dt_run_dir_prepare(t->cfg->output.dir, r->resume, r->overwrite, &r->lock_fd, err))
        return -1;
    return dt_ckpt_writer_create(&r->writer, err);
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

int dt_rel_check_output_shared(dt_trainer *t, dt_error *err) {
    dt_comm *comm = t->comm;
    if (comm->size == 1) return 0;
    enum { OWNER = 256 };
    char mine[OWNER];
    /* rank 0 wrote its lock before it reached the barrier */
    if (comm->ops->barrier(comm->ctx, err)) return dt_error_prefix(err, "output.dir check");
    read_lock_owner(t->cfg->output.dir, mine, sizeof mine);
    char *all = calloc((size_t)comm->size, OWNER);
    if (!all) return dt_fail(err, "out of memory");
    if (comm->ops->allgather(comm->ctx, mine, all, OWNER, err)) {
        free(all);
        return dt_error_prefix(err, "comparing the ranks' view of output.dir");
    }
    char ranks[256] = "";
    int missing = 0;
    for (int r = 1; r < comm->size && t->is_root; r++) {
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
            t->cfg->output.dir, missing > 1 ? "s" : "", ranks, missing > 1 ? "" : "es");
    return 0;
}

void dt_rel_phase(dt_trainer *t, const char *phase, long step, int long_allowance) {
    dt_watchdog_mark(t->rel.watchdog, phase, step, long_allowance);
}

/* ---- resume ---- */

static int load_momentum(dt_trainer *t, const char *dir, float *host, dt_error *err) {
    char path[4300];
    snprintf(path, sizeof path, "%s/optimizer.safetensors", dir);
    dt_safetensors st;
    if (dt_safetensors_read(path, &st, err)) return -1;
    size_t n;
    const dt_state_entry *entries = dt_model_state(t->model, &n);
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        if (entries[i].role != DT_TENSOR_PARAMETER) continue;
        const dt_st_tensor *x = dt_safetensors_find(&st, entries[i].name);
        if (!x)
            rc = dt_fail_usage(err, "%s: no momentum for %s", path, entries[i].name);
        else if (dt_st_tensor_to_float(x, host + entries[i].offset, entries[i].count, err))
            rc = dt_error_prefix(err, "%s", path);
    }
    dt_safetensors_free(&st);
    return rc;
}

/* Rank 0: the checkpoint, its checks against this run, and the weights loaded. */
static int resume_on_root(dt_trainer *t, dt_ckpt_state *state, float *momentum, dt_error *err) {
    const dt_config *cfg = t->cfg;
    char dir[4300], path[4400];
    if (dt_checkpoint_find(cfg->output.dir, t->rel.resume_path, dir, sizeof dir, state, err))
        return -1;
    snprintf(path, sizeof path, "%s/config.yaml", dir);
    dt_config saved;
    if (dt_config_load(path, 0, NULL, &saved, err)) return dt_error_prefix(err, "--resume");
    char keys[1024];
    int differing = dt_config_resume_differences(&saved, cfg, keys, sizeof keys);
    dt_config_free(&saved);
    if (differing)
        return dt_fail_usage(err,
                             "--resume: %s was written with other values of %s; a resume may "
                             "change train.epochs, output.* and runtime.* only",
                             path, keys);
    if (state->file_list_hash != dt_dataset_hash(&t->ds))
        return dt_fail_usage(err,
                             "--resume: the files under %s differ from those of checkpoint %s "
                             "(files added, removed or renamed)",
                             cfg->data.root, dir);
    if (state->global_batch != (long)t->global_batch)
        return dt_fail_usage(err,
                             "--resume: checkpoint %s has global batch %ld (%d ranks); this run "
                             "has %zu (train.batch_size %d x %d ranks x train.accumulate %d); "
                             "resume with the same global batch",
                             dir, state->global_batch, state->ranks, t->global_batch,
                             cfg->train.batch_size, t->comm->size, cfg->train.accumulate);
    if (state->steps_per_epoch != t->steps_per_epoch)
        return dt_fail_usage(err, "--resume: checkpoint %s has %ld steps per epoch, this run %ld",
                             dir, state->steps_per_epoch, t->steps_per_epoch);
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    if (dt_model_load_safetensors(t->model, path, 0, NULL, err) ||
        load_momentum(t, dir, momentum, err)) {
        err->exit_code = DT_EXIT_USAGE;
        return -1;
    }
    if (state->ranks != t->comm->size)
        dt_progress_line(&t->progress, NULL,
                         "resuming on %d ranks a checkpoint written by %d (same global batch %ld)",
                         t->comm->size, state->ranks, state->global_batch);
    dt_progress_line(&t->progress, NULL, "resuming from %s: epoch %d, step %ld", dir, state->epoch,
                     state->step);
    return 0;
}

int dt_rel_resume(dt_trainer *t, dt_error *err) {
    if (!t->rel.resume) return 0;
    size_t np = dt_model_param_count(t->model);
    float *momentum = calloc(np, sizeof *momentum);
    if (!momentum) return dt_fail(err, "out of memory");
    dt_ckpt_state state;
    memset(&state, 0, sizeof state);
    int rc = -1;
    if (t->is_root && resume_on_root(t, &state, momentum, err)) goto done;
    dt_comm *comm = t->comm;
    if (comm->size > 1 &&
        (comm->ops->broadcast(comm->ctx, &state, sizeof state, 0, err) ||
         comm->ops->broadcast(comm->ctx, momentum, np * sizeof *momentum, 0, err)))
        goto done;
    if (t->backend.ops->buffer_upload(t->backend.ctx, dt_model_momentum(t->model), momentum, np,
                                      err))
        goto done;
    dt_reliability *r = &t->rel;
    r->start_epoch = state.evaluated ? state.epoch + 1 : state.epoch;
    r->start_step = state.evaluated ? 0 : state.step_in_epoch;
    r->skipped_in_row = state.skipped_in_row;
    r->skipped_total = state.skipped_total;
    r->last_checkpoint_step = state.step;
    r->last_checkpoint_evaluated = state.evaluated;
    t->best_val_acc = state.best_val_acc;
    t->last_val_acc = state.last_val_acc;
    dt_model_set_batches_tracked(t->model, state.batches_tracked);
    rc = 0;
done:
    free(momentum);
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

static char *join_classes(dt_trainer *t) {
    size_t n = 1;
    for (int i = 0; i < t->ds.n_classes; i++) n += strlen(t->display_names[i]) + 1;
    char *s = calloc(n, 1);
    if (!s) return NULL;
    for (int i = 0; i < t->ds.n_classes; i++) {
        if (i) strcat(s, "\n");
        strcat(s, t->display_names[i]);
    }
    return s;
}

static void report_checkpoints(dt_trainer *t) {
    dt_ckpt_report rep;
    if (t->is_root && t->rel.writer && dt_ckpt_writer_take_report(t->rel.writer, &rep))
        dt_progress_line(&t->progress, NULL,
                         "checkpoint %s written: %.1f MB in %.2f s on the writer thread "
                         "(training paused %.3f s to copy the buffers)",
                         rep.name, (double)rep.bytes / 1e6, rep.seconds, t->rel.copy_seconds);
}

int dt_rel_checkpoint(dt_trainer *t, int epoch, long step, long step_in_epoch, int evaluated,
                      int wait, dt_error *err) {
    dt_reliability *r = &t->rel;
    if (!t->is_root) return 0;
    if (step == r->last_checkpoint_step && evaluated == r->last_checkpoint_evaluated)
        return wait ? dt_ckpt_writer_wait(r->writer, err) : 0;
    dt_rel_phase(t, "checkpoint", step, 1);
    /* one write at a time; its report (or error) first */
    if (dt_ckpt_writer_wait(r->writer, err)) return dt_error_prefix(err, "checkpoint");
    report_checkpoints(t);
    double t0 = dt_monotonic_seconds();
    dt_ckpt_payload p;
    memset(&p, 0, sizeof p);
    const dt_backend_ops *ops = t->backend.ops;
    void *ctx = t->backend.ctx;
    p.n_params = dt_model_param_count(t->model);
    p.n_stats = dt_model_stats_count(t->model);
    p.entries = dt_model_state(t->model, &p.n_entries);
    if (!(p.params = malloc(p.n_params * sizeof(float))) ||
        !(p.stats = malloc((p.n_stats ? p.n_stats : 1) * sizeof(float))) ||
        !(p.momentum = malloc(p.n_params * sizeof(float))) ||
        !(p.config_yaml = render_config(t->cfg, &p.config_length)) ||
        !(p.classes = join_classes(t))) {
        dt_ckpt_payload_free(&p);
        return dt_fail(err, "checkpoint: out of memory");
    }
    if (dt_model_download_state(t->model, p.params, p.stats, err) ||
        ops->buffer_download(ctx, p.momentum, dt_model_momentum(t->model), p.n_params, err)) {
        dt_ckpt_payload_free(&p);
        return dt_error_prefix(err, "checkpoint");
    }
    dt_ckpt_state *s = &p.state;
    s->epoch = epoch;
    s->step = step;
    s->step_in_epoch = step_in_epoch;
    s->steps_per_epoch = t->steps_per_epoch;
    s->evaluated = evaluated;
    s->best_val_acc = t->best_val_acc;
    s->last_val_acc = t->last_val_acc;
    s->batches_tracked = dt_model_batches_tracked(t->model);
    s->skipped_in_row = r->skipped_in_row;
    s->skipped_total = r->skipped_total;
    s->train_seed = t->cfg->train.seed;
    s->config_hash = dt_config_hash(t->cfg);
    s->file_list_hash = dt_dataset_hash(&t->ds);
    s->ranks = t->comm->size;
    s->global_batch = (long)t->global_batch;
    if (dt_ckpt_writer_submit(r->writer, t->cfg->output.dir, t->cfg->output.keep_checkpoints, &p,
                              err))
        return dt_error_prefix(err, "checkpoint");
    r->last_checkpoint_step = step;
    r->last_checkpoint_evaluated = evaluated;
    r->copy_seconds = dt_monotonic_seconds() - t0;
    if (wait && dt_ckpt_writer_wait(r->writer, err)) return dt_error_prefix(err, "checkpoint");
    return 0;
}

/* ---- the step ---- */

int dt_rel_before_step(dt_trainer *t, long global_step, dt_error *err) {
    dt_reliability *r = &t->rel;
    dt_rel_phase(t, "training step", global_step, !r->first_step_done);
    r->first_step_done = 1;
    if (r->step_delay_us > 0) usleep((useconds_t)r->step_delay_us);
    const dt_backend_ops *ops = t->backend.ops;
    size_t ns = dt_model_stats_count(t->model);
    if (!r->stats_backup && !(r->stats_backup = ops->buffer_alloc(t->backend.ctx, ns, err)))
        return -1;
    r->tracked_backup = dt_model_batches_tracked(t->model);
    if (ops->buffer_fill(t->backend.ctx, r->stats_backup, 0.0f, ns, err) ||
        ops->buffer_axpy(t->backend.ctx, r->stats_backup, 1.0f, dt_model_stats(t->model), ns, err))
        return dt_error_prefix(err, "keeping the running statistics");
    return 0;
}

int dt_rel_before_allreduce(dt_trainer *t, long global_step, float *grads, dt_error *err) {
    dt_rel_phase(t, "gradient all-reduce", global_step, 0);
    if (global_step != t->rel.nan_step) return 0;
    return t->backend.ops->buffer_fill(t->backend.ctx, grads, NAN, 1, err);
}

static int restore_statistics(dt_trainer *t, dt_error *err) {
    const dt_backend_ops *ops = t->backend.ops;
    size_t ns = dt_model_stats_count(t->model);
    float *stats = dt_model_stats(t->model);
    dt_model_set_batches_tracked(t->model, t->rel.tracked_backup);
    if (ops->buffer_fill(t->backend.ctx, stats, 0.0f, ns, err) ||
        ops->buffer_axpy(t->backend.ctx, stats, 1.0f, t->rel.stats_backup, ns, err))
        return -1;
    return 0;
}

/* "layer1.0.conv1.weight is NaN" for the first non-finite gradient value. */
static void describe_nonfinite(dt_trainer *t, const float *grads, size_t count, size_t offset,
                               char *out, size_t size) {
    snprintf(out, size, "a gradient is not finite");
    float *host = malloc(count * sizeof *host);
    dt_error ignored = {{0}, 0};
    if (!host || t->backend.ops->buffer_download(t->backend.ctx, host, grads, count, &ignored)) {
        free(host);
        return;
    }
    size_t i = 0;
    while (i < count && isfinite(host[i])) i++;
    if (i < count) {
        size_t n;
        const dt_state_entry *e = dt_model_state(t->model, &n);
        for (size_t k = 0; k < n; k++)
            if (e[k].role == DT_TENSOR_PARAMETER && offset + i >= e[k].offset &&
                offset + i < e[k].offset + e[k].count) {
                snprintf(out, size, "the gradient of %s is %s", e[k].name,
                         isnan(host[i]) ? "NaN" : "infinite");
                break;
            }
    }
    free(host);
}

int dt_rel_check_gradients(dt_trainer *t, int epoch, long step_in_epoch, long global_step,
                           float *grads, size_t count, size_t offset, int *skip, dt_error *err) {
    dt_reliability *r = &t->rel;
    *skip = 0;
    double sum = 0;
    if (t->backend.ops->buffer_sum_squares(t->backend.ctx, grads, count, &sum, err))
        return dt_error_prefix(err, "checking the gradients");
    if (isfinite(sum)) {
        r->skipped_in_row = 0;
        return 0;
    }
    char what[160];
    describe_nonfinite(t, grads, count, offset, what, sizeof what);
    if (restore_statistics(t, err)) return -1;
    const dt_config *cfg = t->cfg;
    if (cfg->train.nonfinite == DT_NONFINITE_SKIP) {
        r->skipped_in_row++;
        r->skipped_total++;
        *skip = 1;
        if (r->skipped_in_row < cfg->train.max_skipped_steps) {
            if (t->is_root)
                dt_warn("step %ld (epoch %d): %s after the all-reduce; step skipped "
                        "(train.nonfinite: skip; %ld in a row, %ld in all)",
                        global_step + 1, epoch, what, r->skipped_in_row, r->skipped_total);
            return 0;
        }
    }
    /* stop: the weights are those before this step, the last good state */
    char where[4300] = "";
    if (dt_rel_checkpoint(t, epoch, global_step, step_in_epoch, 0, 1, err)) return -1;
    /* the others wait until it is written: their error ends the job */
    if (t->comm->ops->barrier(t->comm->ctx, err)) return dt_error_prefix(err, "barrier");
    if (t->is_root)
        snprintf(where, sizeof where, "; the last good state (step %ld) is in %s/checkpoints/",
                 global_step, cfg->output.dir);
    if (cfg->train.nonfinite == DT_NONFINITE_SKIP)
        return dt_fail(err,
                       "step %ld (epoch %d): %s; %ld non-finite steps in a row reached "
                       "train.max_skipped_steps%s",
                       global_step + 1, epoch, what, r->skipped_in_row, where);
    return dt_fail(err,
                   "step %ld (epoch %d): %s after the all-reduce (train.nonfinite: stop)%s; try a "
                   "lower train.lr, or train.nonfinite: skip",
                   global_step + 1, epoch, what, where);
}

int dt_rel_step_end(dt_trainer *t, int epoch, long step_in_epoch, long global_step, dt_error *err) {
    report_checkpoints(t);
    double stop = dt_signals_stop_requested() ? 1 : 0;
    if (t->comm->size > 1) {
        dt_rel_phase(t, "stop-flag all-reduce", global_step, 0);
        if (t->comm->ops->allreduce_double(t->comm->ctx, &stop, 1, DT_REDUCE_SUM, err))
            return dt_error_prefix(err, "all-reduce of the stop flag");
    }
    if (stop > 0) {
        int mine = dt_signals_stop_requested();
        if (t->is_root)
            dt_progress_line(
                &t->progress, NULL, "%s received: stopping after step %ld with a checkpoint",
                mine ? dt_signals_name(mine) : "a stop signal (on another rank)", global_step);
        if (dt_rel_checkpoint(t, epoch, global_step, step_in_epoch, 0, 1, err)) return -1;
        /* the weights so far as model.safetensors too: a job that a time limit ends before it
         * is resumed still leaves a usable model where users look for it */
        if (t->is_root && dt_train_write_model(t, "model.safetensors", err)) return -1;
        dt_fail(err,
                "stopped by a signal after step %ld (epoch %d); checkpoint %s/checkpoints/"
                "step-%08ld and model.safetensors written; continue with --resume",
                global_step, epoch, t->cfg->output.dir, global_step);
        err->exit_code = DT_EXIT_STOPPED;
        return -1;
    }
    int every = t->cfg->output.checkpoint_every;
    if (every > 0 && global_step % every == 0 && step_in_epoch < t->steps_per_epoch)
        return dt_rel_checkpoint(t, epoch, global_step, step_in_epoch, 0, 0, err);
    return 0;
}

int dt_rel_weights_finite(dt_trainer *t, int *finite, dt_error *err) {
    double a = 0, b = 0;
    if (t->backend.ops->buffer_sum_squares(t->backend.ctx, dt_model_params(t->model),
                                           dt_model_param_count(t->model), &a, err) ||
        t->backend.ops->buffer_sum_squares(t->backend.ctx, dt_model_stats(t->model),
                                           dt_model_stats_count(t->model), &b, err))
        return -1;
    *finite = isfinite(a) && isfinite(b);
    return 0;
}

int dt_rel_sync_writer(dt_trainer *t, dt_error *err) {
    if (t->is_root && t->rel.writer) {
        dt_rel_phase(t, "waiting for the checkpoint writer", 0, 1);
        if (dt_ckpt_writer_wait(t->rel.writer, err)) return dt_error_prefix(err, "checkpoint");
        report_checkpoints(t);
    }
    return 0;
}

int dt_rel_finish(dt_trainer *t, dt_error *err) {
    dt_rel_phase(t, "finish", 0, 1);
    if (t->is_root && t->rel.writer) {
        if (dt_ckpt_writer_wait(t->rel.writer, err)) return dt_error_prefix(err, "checkpoint");
        report_checkpoints(t);
    }
    return 0;
}

void dt_rel_teardown(dt_trainer *t) {
    dt_reliability *r = &t->rel;
    if (r->writer) {
        dt_error ignored = {{0}, 0};
        dt_ckpt_writer_wait(r->writer, &ignored);
        dt_ckpt_writer_destroy(r->writer);
    }
    if (r->watchdog) dt_watchdog_stop(r->watchdog);
    if (r->stats_backup && t->have_backend)
        t->backend.ops->buffer_free(t->backend.ctx, r->stats_backup);
    r->writer = NULL;
    r->watchdog = NULL;
    r->stats_backup = NULL;
}
