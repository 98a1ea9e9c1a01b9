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
#include "dtrain/output_files.h"
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
    r->nan_steps = env_long("DTRAIN_TEST_NAN_COUNT", 1);
    r->step_delay_us = env_long("DTRAIN_TEST_STEP_DELAY_MS", 0) * 1000;
    r->test_stop_epoch = env_long("DTRAIN_TEST_STOP_AT_EPOCH_END", -1);
    return dt_watchdog_start(t->comm, t->cfg->runtime.timeout_s, &r->watchdog, err);
}

int dt_rel_claim_output_dir(dt_trainer *t, dt_error *err) {
    dt_reliability *r = &t->rel;
    if (!t->is_root) return 0;
    if (dt_run_dir_prepare(t->cfg->output.dir, r->resume, r->resume_path, r->overwrite, &r->lock_fd,
                           err))
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
        else
            for (size_t k = 0; k < entries[i].count && rc == 0; k++)
                if (!isfinite(host[entries[i].offset + k]))
                    rc = dt_fail_usage(err,
                                       "%s: the momentum of %s holds NaN or infinite values "
                                       "(element %zu): not a usable state",
                                       path, entries[i].name, k);
    }
    dt_safetensors_free(&st);
    return rc;
}

/* Rank 0: the checkpoint, its checks against this run, and the weights loaded; 1 (state->epoch
 * 0) when output.dir has no complete checkpoint, so the run starts over there. */
static int resume_on_root(dt_trainer *t, dt_ckpt_state *state, float *momentum, dt_error *err) {
    const dt_config *cfg = t->cfg;
    char dir[4300], path[4400];
    int found =
        dt_checkpoint_find(cfg->output.dir, t->rel.resume_path, dir, sizeof dir, state, err);
    if (found == 1) {
        dt_progress_line(&t->progress, NULL, "--resume: %s; starting over in %s", err->message,
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
    /* before the history is cut back to this checkpoint's step: latest names it, newer ones go */
    if (dt_checkpoint_adopt(cfg->output.dir, dir, state->step, err)) return -1;
    if (state->ranks != t->comm->size)
        dt_progress_line(&t->progress, NULL,
                         "resuming on %d ranks a checkpoint written by %d (same global batch %ld)",
                         t->comm->size, state->ranks, state->global_batch);
    dt_progress_line(&t->progress, NULL, "resuming from %s: epoch %d, step %ld", dir, state->epoch,
                     state->step);
    dt_signals_checkpoint_complete();
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
    if (t->is_root && resume_on_root(t, &state, momentum, err) < 0) goto done;
    dt_comm *comm = t->comm;
    if (comm->size > 1 &&
        (comm->ops->broadcast(comm->ctx, &state, sizeof state, 0, err) ||
         comm->ops->broadcast(comm->ctx, momentum, np * sizeof *momentum, 0, err)))
        goto done;
    if (state.epoch == 0) { /* no checkpoint: a new run */
        t->rel.resume = 0;
        rc = 0;
        goto done;
    }
    if (dt_backend_buffer_upload(&t->backend, dt_model_momentum(t->model), momentum, np, err))
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

/* "weights", "running statistics" or "momentum" when that part holds NaN or Inf, else NULL. */
static const char *nonfinite_part(const dt_ckpt_payload *p) {
    for (size_t i = 0; i < p->n_params; i++)
        if (!isfinite(p->params[i])) return "weights";
    for (size_t i = 0; i < p->n_stats; i++)
        if (!isfinite(p->stats[i])) return "running statistics";
    for (size_t i = 0; i < p->n_params; i++)
        if (!isfinite(p->momentum[i])) return "momentum";
    return NULL;
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
        dt_backend_buffer_download(&t->backend, p.momentum, dt_model_momentum(t->model), p.n_params,
                                   err)) {
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
                       t->cfg->train.lr);
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
    size_t ns = dt_model_stats_count(t->model);
    if (!r->stats_backup && !(r->stats_backup = dt_backend_buffer_alloc(&t->backend, ns, err)))
        return -1;
    r->tracked_backup = dt_model_batches_tracked(t->model);
    if (dt_backend_buffer_fill(&t->backend, r->stats_backup, 0.0f, ns, err) ||
        dt_backend_buffer_axpy(&t->backend, r->stats_backup, 1.0f, dt_model_stats(t->model), ns,
                               err))
        return dt_error_prefix(err, "keeping the running statistics");
    return 0;
}

int dt_rel_before_allreduce(dt_trainer *t, long global_step, float *grads, dt_error *err) {
    dt_reliability *r = &t->rel;
    dt_rel_phase(t, "gradient all-reduce", global_step, 0);
    if (r->nan_step < 0 || global_step < r->nan_step || global_step >= r->nan_step + r->nan_steps)
        return 0;
    return dt_backend_buffer_fill(&t->backend, grads, NAN, 1, err);
}

/* ---- the non-finite guard: decided by the backend in stream order, read here late ---- */

int dt_rel_guard_start(dt_trainer *t, dt_error *err) {
    dt_reliability *r = &t->rel;
    const dt_config *cfg = t->cfg;
    dt_guard_state state;
    memset(&state, 0, sizeof state);
    state.in_row = r->skipped_in_row;
    state.total = r->skipped_total;
    state.halted_step = -1;
    int64_t halt_after =
        cfg->train.nonfinite == DT_NONFINITE_SKIP ? cfg->train.max_skipped_steps : 1;
    if (dt_backend_guard_reset(&t->backend, &state, halt_after, err))
        return dt_error_prefix(err, "setting up the non-finite guard");
    return 0;
}

int dt_rel_guard_step(dt_trainer *t, long global_step, const float *grads, size_t count,
                      dt_error *err) {
    dt_reliability *r = &t->rel;
    /* the batches this step counted, taken back for every skipped step when the state is read */
    r->tracked_per_step = dt_model_batches_tracked(t->model) - r->tracked_backup;
    if (dt_backend_guard_check(&t->backend, grads, count, global_step, err) ||
        dt_backend_guard_restore(&t->backend, dt_model_stats(t->model), r->stats_backup,
                                 dt_model_stats_count(t->model), err))
        return dt_error_prefix(err, "non-finite guard of step %ld", global_step + 1);
    return 0;
}

/* "the gradient of layer1.0.conv1.weight is NaN" for a record's first non-finite value. */
static void describe_nonfinite(dt_trainer *t, const dt_guard_record *rec, char *out, size_t size) {
    size_t offset, count, n;
    dt_model_trainable_span(t->model, &offset, &count);
    snprintf(out, size, "a gradient is %s", rec->is_nan ? "NaN" : "infinite");
    const dt_state_entry *e = dt_model_state(t->model, &n);
    size_t at = offset + (size_t)rec->index;
    for (size_t k = 0; k < n; k++)
        if (e[k].role == DT_TENSOR_PARAMETER && at >= e[k].offset &&
            at < e[k].offset + e[k].count) {
            snprintf(out, size, "the gradient of %s is %s", e[k].name,
                     rec->is_nan ? "NaN" : "infinite");
            return;
        }
}

/* The guard halted at step h: the backend kept the state before h (no update applied since,
 * statistics restored), written as the checkpoint of step h; then the run ends. */
static int stop_at_halt(dt_trainer *t, const dt_guard_state *g, dt_error *err) {
    dt_reliability *r = &t->rel;
    const dt_config *cfg = t->cfg;
    long h = (long)g->halted_step;
    int epoch = (int)(h / t->steps_per_epoch) + 1;
    long step_in_epoch = h % t->steps_per_epoch;
    const dt_guard_record *rec = NULL;
    long shown = g->n_records < DT_GUARD_RECORDS ? (long)g->n_records : DT_GUARD_RECORDS;
    for (long i = 0; i < shown; i++)
        if (g->records[i].step == g->halted_step) rec = &g->records[i];
    char what[160] = "a gradient is not finite";
    if (rec) describe_nonfinite(t, rec, what, sizeof what);
    char where[4300] = "";
    if (dt_rel_checkpoint(t, epoch, h, step_in_epoch, 0, 1, err)) return -1;
    /* the others wait until it is written: their error ends the job */
    if (t->comm->ops->barrier(t->comm->ctx, err)) return dt_error_prefix(err, "barrier");
    if (t->is_root)
        snprintf(where, sizeof where, "; the last good state (step %ld) is in %s/checkpoints/", h,
                 cfg->output.dir);
    if (cfg->train.nonfinite == DT_NONFINITE_SKIP)
        return dt_fail(err,
                       "step %ld (epoch %d): %s; %ld non-finite steps in a row reached "
                       "train.max_skipped_steps%s",
                       h + 1, epoch, what, r->skipped_in_row, where);
    return dt_fail(err,
                   "step %ld (epoch %d): %s after the all-reduce (train.nonfinite: stop)%s; try a "
                   "lower train.lr, or train.nonfinite: skip",
                   h + 1, epoch, what, where);
}

int dt_rel_guard_sync(dt_trainer *t, long *skipped, dt_error *err) {
    dt_reliability *r = &t->rel;
    const dt_config *cfg = t->cfg;
    dt_guard_state g;
    /* the device comm first: its wait has the collectives' deadline */
    if (t->dcomm.ops->drain(t->dcomm.ctx, err) || dt_backend_guard_read(&t->backend, &g, err))
        return dt_error_prefix(err, "reading the non-finite guard");
    if (skipped) *skipped += (long)g.skipped;
    dt_model_set_batches_tracked(t->model, dt_model_batches_tracked(t->model) -
                                               (int64_t)g.skipped * r->tracked_per_step);
    int skip_mode = cfg->train.nonfinite == DT_NONFINITE_SKIP;
    if (skip_mode) {
        r->skipped_in_row = (long)g.in_row;
        r->skipped_total = (long)g.total;
    }
    long shown = g.n_records < DT_GUARD_RECORDS ? (long)g.n_records : DT_GUARD_RECORDS;
    for (long i = 0; skip_mode && t->is_root && i < shown; i++) {
        const dt_guard_record *rec = &g.records[i];
        if (i == DT_GUARD_RECORDS - 1 && g.n_records > DT_GUARD_RECORDS)
            dt_warn(
                "%lld more non-finite steps skipped, not listed one by one (train.nonfinite: skip)",
                (long long)(g.n_records - DT_GUARD_RECORDS));
        if (rec->step == g.halted_step) continue; /* the stop's message says it */
        char what[160];
        describe_nonfinite(t, rec, what, sizeof what);
        dt_warn("step %lld (epoch %lld): %s after the all-reduce; step skipped "
                "(train.nonfinite: skip; %lld in a row, %lld in all)",
                (long long)rec->step + 1, (long long)(rec->step / t->steps_per_epoch) + 1, what,
                (long long)rec->in_row, (long long)rec->total);
    }
    if (g.halted_step >= 0) return stop_at_halt(t, &g, err);
    return 0;
}

/* The agreed stop: rank 0 writes the checkpoint and model.safetensors while the others wait
 * for its result, so that no rank exits (and no launcher ends the job) before the files are
 * complete, and no rank claims files that rank 0 failed to write. */
static int stop_after_write(dt_trainer *t, int epoch, long global_step, int rc, dt_error *err) {
    if (t->comm->size > 1) {
        dt_rel_phase(t, "waiting for rank 0's stop checkpoint", global_step, 1);
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

static int stop_with_checkpoint(dt_trainer *t, int epoch, long step_in_epoch, long global_step,
                                dt_error *err) {
    int rc = 0;
    /* the weights so far as model.safetensors too: a job that a time limit ends before it is
     * resumed still leaves a usable model where users look for it (the checkpoint refuses
     * non-finite weights, and then neither is written) */
    if (t->is_root && (dt_rel_checkpoint(t, epoch, global_step, step_in_epoch, 0, 1, err) ||
                       dt_train_write_model(t, "model.safetensors", err)))
        rc = -1;
    return stop_after_write(t, epoch, global_step, rc, err);
}

/* Every rank: whether a stop signal arrived on any rank (*stop). */
static int agree_on_stop(dt_trainer *t, long global_step, int *stop, dt_error *err) {
    double flag = dt_signals_stop_requested() ? 1 : 0;
    if (t->comm->size > 1) {
        dt_rel_phase(t, "stop-flag all-reduce", global_step, 0);
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

void dt_rel_epoch_end_begins(dt_trainer *t, int epoch) {
    /* the test switch: a Ctrl-C while the epoch's evaluation runs */
    if (epoch == t->rel.test_stop_epoch) dt_signals_request_stop(SIGINT);
}

int dt_rel_epoch_end_stop(dt_trainer *t, int epoch, long global_step, dt_error *err) {
    int stop = 0;
    if (epoch >= t->cfg->train.epochs) return 0; /* the run ends here anyway */
    if (agree_on_stop(t, global_step, &stop, err)) return -1;
    if (!stop) return 0;
    /* the epoch's checkpoint was just written: it is the stop's, not one more after a step */
    int rc = dt_rel_sync_writer(t, err) ||
                     (t->is_root && dt_train_write_model(t, "model.safetensors", err))
                 ? -1
                 : 0;
    return stop_after_write(t, epoch, global_step, rc, err);
}

int dt_rel_step_end(dt_trainer *t, int epoch, long step_in_epoch, long global_step, dt_error *err) {
    report_checkpoints(t);
    int stop = 0;
    if (agree_on_stop(t, global_step, &stop, err)) return -1;
    int every = t->cfg->output.checkpoint_every;
    int checkpoint = every > 0 && global_step % every == 0 && step_in_epoch < t->steps_per_epoch;
    /* a checkpoint holds the guard's counts, and never a state past a halt */
    if ((stop > 0 || checkpoint) && dt_rel_guard_sync(t, NULL, err)) return -1;
    if (stop > 0) return stop_with_checkpoint(t, epoch, step_in_epoch, global_step, err);
    if (global_step == (long)t->cfg->train.epochs * t->steps_per_epoch) dt_signals_training_over();
    if (checkpoint) return dt_rel_checkpoint(t, epoch, global_step, step_in_epoch, 0, 0, err);
    return 0;
}

int dt_rel_weights_finite(dt_trainer *t, int *finite, dt_error *err) {
    double a = 0, b = 0;
    if (dt_backend_buffer_sum_squares(&t->backend, dt_model_params(t->model),
                                      dt_model_param_count(t->model), &a, err) ||
        dt_backend_buffer_sum_squares(&t->backend, dt_model_stats(t->model),
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
    if (t->is_root) dt_output_dir_unpin();
    if (r->watchdog) dt_watchdog_stop(r->watchdog);
    if (r->stats_backup && t->have_backend) dt_backend_buffer_free(&t->backend, r->stats_backup);
    r->writer = NULL;
    r->watchdog = NULL;
    r->stats_backup = NULL;
}
