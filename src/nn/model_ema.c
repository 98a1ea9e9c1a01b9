/* The moving average of the model's weights (dtrain/model_ema.h): its buffers, the update after
 * each step through the backend's ema_update, the swap that lends it to the model for an
 * evaluation or a file, and the tensor list of a checkpoint's ema.safetensors. */
#include "dtrain/model_ema.h"

#include <stdlib.h>
#include <string.h>

#include "dtrain/checkpoint.h"
#include "nn/model_internal.h"

/* ema's buffers = the model's state now (host round trip: once per run, no device copy op) */
static int copy_model_state(dt_model_ema *ema, dt_error *err) {
    dt_model *m = ema->model;
    size_t np = dt_model_param_count(m), ns = dt_model_stats_count(m);
    float *params = malloc(np * sizeof *params), *stats = malloc((ns ? ns : 1) * sizeof *stats);
    int rc = !params || !stats ? dt_fail(err, "EMA: out of memory")
                               : dt_model_download_state(m, params, stats, err);
    if (!rc) rc = dt_model_ema_upload(ema, params, stats, dt_model_batches_tracked(m), err);
    free(params);
    free(stats);
    return rc;
}

int dt_model_ema_init(dt_model_ema *ema, dt_model *model, double decay, dt_error *err) {
    if (!(decay > 0.0 && decay < 1.0)) return dt_fail(err, "EMA: decay %g is not in (0, 1)", decay);
    if (ema->model != model) {
        dt_model_ema_free(ema);
        ema->model = model;
        const dt_backend *b = dt_model_backend(model);
        size_t np = dt_model_param_count(model), ns = dt_model_stats_count(model);
        if (!(ema->params = dt_backend_buffer_alloc(b, np, err)) ||
            !(ema->stats = dt_backend_buffer_alloc(b, ns, err))) {
            dt_model_ema_free(ema);
            return dt_error_prefix(err, "EMA: allocating %zu parameters", np);
        }
    }
    ema->decay = (float)decay;
    ema->one_minus_decay = (float)(1.0 - decay);
    return copy_model_state(ema, err);
}

int dt_model_ema_update(dt_model_ema *ema, int guarded, dt_error *err) {
    dt_model *m = ema->model;
    if (!m) return 0;
    if (ema->swapped) return dt_fail(err, "internal: EMA update while the average is swapped in");
    const dt_backend *b = dt_model_backend(m);
    if (dt_backend_ema_update(b, ema->params, m->params, ema->decay, ema->one_minus_decay,
                              m->layout.n_params, guarded, err) ||
        dt_backend_ema_update(b, ema->stats, m->stats, ema->decay, ema->one_minus_decay,
                              m->layout.n_stats, guarded, err))
        return dt_error_prefix(err, "EMA update");
    ema->batches_tracked = m->batches_tracked; /* an integer: copied, not averaged */
    return 0;
}

void dt_model_ema_swap(dt_model_ema *ema) {
    dt_model *m = ema->model;
    if (!m) return;
    float *params = m->params, *stats = m->stats;
    int64_t tracked = m->batches_tracked;
    m->params = ema->params;
    m->stats = ema->stats;
    m->batches_tracked = ema->batches_tracked;
    ema->params = params;
    ema->stats = stats;
    ema->batches_tracked = tracked;
    ema->swapped = !ema->swapped;
    /* weights derived from the parameters (reordered, bf16) are redone from the others */
    dt_backend_params_changed(&m->backend);
}

/* Straight from or into the average's buffers (no swap: the model's derived weights stay). */
int dt_model_ema_download(dt_model_ema *ema, float *host_params, float *host_stats, dt_error *err) {
    dt_model *m = ema->model;
    const dt_backend *b = dt_model_backend(m);
    if (ema->swapped) return dt_fail(err, "internal: EMA read while swapped in");
    if (dt_model_param_buffer_download(m, host_params, ema->params, err) ||
        dt_backend_buffer_download(b, host_stats, ema->stats, m->layout.n_stats, err))
        return dt_error_prefix(err, "EMA: reading the average back");
    return 0;
}

int dt_model_ema_upload(dt_model_ema *ema, const float *host_params, const float *host_stats,
                        int64_t batches_tracked, dt_error *err) {
    dt_model *m = ema->model;
    const dt_backend *b = dt_model_backend(m);
    if (ema->swapped) return dt_fail(err, "internal: EMA written while swapped in");
    if (dt_model_param_buffer_upload(m, ema->params, host_params, err) ||
        dt_backend_buffer_upload(b, ema->stats, host_stats, m->layout.n_stats, err))
        return dt_error_prefix(err, "EMA: loading the average");
    ema->batches_tracked = batches_tracked;
    return 0;
}

void dt_model_ema_free(dt_model_ema *ema) {
    if (ema->model) {
        if (ema->swapped) dt_model_ema_swap(ema);
        const dt_backend *b = dt_model_backend(ema->model);
        if (ema->params) dt_backend_buffer_free(b, ema->params);
        if (ema->stats) dt_backend_buffer_free(b, ema->stats);
    }
    memset(ema, 0, sizeof *ema);
}

int dt_model_ema_checkpoint_tensors(const dt_model_ema *ema, dt_ckpt_payload *p, dt_error *err) {
    size_t n_entries;
    const dt_state_entry *entries = dt_model_state(ema->model, &n_entries);
    free(p->ema_tensors);
    p->n_ema_tensors = 0;
    if (!(p->ema_tensors = calloc(n_entries, sizeof *p->ema_tensors)))
        return dt_fail(err, "out of memory");
    for (size_t i = 0; i < n_entries; i++) {
        p->ema_tensors[p->n_ema_tensors++] =
            dt_model_state_tensor(&entries[i], p->ema_params, p->ema_stats, p->ema_batches_tracked);
    }
    return 0;
}
