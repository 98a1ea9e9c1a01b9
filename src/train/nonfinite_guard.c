/* The non-finite guard (nonfinite_guard.h): decided by the backend in stream order, read here
 * late. */
#include "train/nonfinite_guard.h"

#include <stdio.h>
#include <string.h>

#include "dtrain/log.h"

int dt_guard_start(dt_nonfinite_guard *g, const dt_config *cfg, int is_root, long steps_per_epoch,
                   long skipped_in_row, long skipped_total, dt_model *model, dt_error *err) {
    memset(g, 0, sizeof *g);
    g->cfg = cfg;
    g->is_root = is_root;
    g->steps_per_epoch = steps_per_epoch;
    g->skipped_in_row = skipped_in_row;
    g->skipped_total = skipped_total;
    dt_guard_state state;
    memset(&state, 0, sizeof state);
    state.in_row = skipped_in_row;
    state.total = skipped_total;
    state.halted_step = -1;
    int64_t halt_after =
        cfg->train.nonfinite == DT_NONFINITE_SKIP ? cfg->train.max_skipped_steps : 1;
    if (dt_model_guard_reset(model, &state, halt_after, err))
        return dt_error_prefix(err, "setting up the non-finite guard");
    return 0;
}

int dt_guard_before_step(dt_nonfinite_guard *g, dt_model *model, dt_error *err) {
    g->tracked_backup = dt_model_batches_tracked(model);
    return dt_model_stats_snapshot(model, err);
}

int dt_guard_step(dt_nonfinite_guard *g, dt_model *model, long global_step, const float *grads,
                  size_t count, dt_error *err) {
    /* the batches this step counted, taken back for every skipped step when the state is read */
    g->tracked_per_step = dt_model_batches_tracked(model) - g->tracked_backup;
    if (dt_model_guard_check(model, grads, count, global_step, err) ||
        dt_model_stats_restore_if_skipped(model, err))
        return dt_error_prefix(err, "non-finite guard of step %ld", global_step + 1);
    return 0;
}

/* "the gradient of layer1.0.conv1.weight is NaN" for a record's first non-finite value. */
static void describe_nonfinite(dt_model *model, const dt_guard_record *rec, char *out,
                               size_t size) {
    size_t offset, count, n;
    dt_model_trainable_span(model, &offset, &count);
    snprintf(out, size, "a gradient is %s", rec->is_nan ? "NaN" : "infinite");
    const dt_state_entry *e = dt_model_state(model, &n);
    size_t at = offset + (size_t)rec->index;
    for (size_t k = 0; k < n; k++)
        if (e[k].role == DT_TENSOR_PARAMETER && at >= e[k].offset &&
            at < e[k].offset + e[k].count) {
            snprintf(out, size, "the gradient of %s is %s", e[k].name,
                     rec->is_nan ? "NaN" : "infinite");
            return;
        }
}

int dt_guard_sync(dt_nonfinite_guard *g, dt_model *model, dt_device_comm *dcomm, long *skipped,
                  dt_guard_halt *halt, dt_error *err) {
    const dt_config *cfg = g->cfg;
    dt_guard_state s;
    halt->halted_step = -1;
    snprintf(halt->what, sizeof halt->what, "a gradient is not finite");
    /* the device comm first: its wait has the collectives' deadline */
    if (dcomm->ops->drain(dcomm->ctx, err) || dt_model_guard_read(model, &s, err))
        return dt_error_prefix(err, "reading the non-finite guard");
    if (skipped) *skipped += (long)s.skipped;
    dt_model_set_batches_tracked(model, dt_model_batches_tracked(model) -
                                            (int64_t)s.skipped * g->tracked_per_step);
    int skip_mode = cfg->train.nonfinite == DT_NONFINITE_SKIP;
    if (skip_mode) {
        g->skipped_in_row = (long)s.in_row;
        g->skipped_total = (long)s.total;
    }
    long shown = s.n_records < DT_GUARD_RECORDS ? (long)s.n_records : DT_GUARD_RECORDS;
    for (long i = 0; skip_mode && g->is_root && i < shown; i++) {
        const dt_guard_record *rec = &s.records[i];
        if (i == DT_GUARD_RECORDS - 1 && s.n_records > DT_GUARD_RECORDS)
            dt_warn(
                "%lld more non-finite steps skipped, not listed one by one (train.nonfinite: skip)",
                (long long)(s.n_records - DT_GUARD_RECORDS));
        if (rec->step == s.halted_step) continue; /* the stop's message says it */
        char what[160];
        describe_nonfinite(model, rec, what, sizeof what);
        dt_warn("step %lld (epoch %lld): %s after the all-reduce; step skipped "
                "(train.nonfinite: skip; %lld in a row, %lld in all)",
                (long long)rec->step + 1, (long long)(rec->step / g->steps_per_epoch) + 1, what,
                (long long)rec->in_row, (long long)rec->total);
    }
    if (s.halted_step < 0) return 0;
    halt->halted_step = (long)s.halted_step;
    for (long i = 0; i < shown; i++)
        if (s.records[i].step == s.halted_step)
            describe_nonfinite(model, &s.records[i], halt->what, sizeof halt->what);
    return 0;
}

int dt_guard_halt_error(const dt_nonfinite_guard *g, const dt_guard_halt *halt, const char *where,
                        dt_error *err) {
    long h = halt->halted_step;
    int epoch = (int)(h / g->steps_per_epoch) + 1;
    if (g->cfg->train.nonfinite == DT_NONFINITE_SKIP)
        return dt_fail(err,
                       "step %ld (epoch %d): %s; %ld non-finite steps in a row reached "
                       "train.max_skipped_steps%s",
                       h + 1, epoch, halt->what, g->skipped_in_row, where);
    return dt_fail(err,
                   "step %ld (epoch %d): %s after the all-reduce (train.nonfinite: stop)%s; try a "
                   "lower train.lr, or train.nonfinite: skip",
                   h + 1, epoch, halt->what, where);
}
