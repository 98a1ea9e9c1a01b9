/* The model's state as training keeps it safe: host copies of the momentum, the running
 * statistics' snapshot before a step and their restore when the non-finite guard skips it, and
 * whether the weights and statistics are finite. */
#include <math.h>

#include "dtrain/model.h"
#include "model_internal.h"

int dt_model_download_momentum(dt_model *m, float *host_momentum, dt_error *err) {
    return m->backend.ops->buffer_download(m->backend.ctx, host_momentum, m->momentum,
                                           dt_model_param_count(m), err);
}

int dt_model_upload_momentum(dt_model *m, const float *host_momentum, dt_error *err) {
    return m->backend.ops->buffer_upload(m->backend.ctx, m->momentum, host_momentum,
                                         dt_model_param_count(m), err);
}

int dt_model_stats_snapshot(dt_model *m, dt_error *err) {
    const dt_backend_ops *ops = m->backend.ops;
    size_t ns = dt_model_stats_count(m);
    if (!m->stats_backup && !(m->stats_backup = ops->buffer_alloc(m->backend.ctx, ns, err)))
        return -1;
    if (ops->buffer_fill(m->backend.ctx, m->stats_backup, 0.0f, ns, err) ||
        ops->buffer_axpy(m->backend.ctx, m->stats_backup, 1.0f, m->stats, ns, err))
        return dt_error_prefix(err, "keeping the running statistics");
    return 0;
}

int dt_model_stats_restore_if_skipped(dt_model *m, dt_error *err) {
    if (!m->stats_backup) return dt_fail(err, "internal: no snapshot of the running statistics");
    return m->backend.ops->guard_restore(m->backend.ctx, m->stats, m->stats_backup,
                                         dt_model_stats_count(m), err);
}

int dt_model_state_finite(dt_model *m, int *finite, dt_error *err) {
    double a = 0, b = 0;
    if (m->backend.ops->buffer_sum_squares(m->backend.ctx, m->params, dt_model_param_count(m), &a,
                                           err) ||
        m->backend.ops->buffer_sum_squares(m->backend.ctx, m->stats, dt_model_stats_count(m), &b,
                                           err))
        return -1;
    *finite = isfinite(a) && isfinite(b);
    return 0;
}
