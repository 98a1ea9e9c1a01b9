/* The model's state as training keeps it safe: the second optimizer buffer, host copies of the
 * momentum and of it, the running
 * statistics' snapshot before a step and their restore when the non-finite guard skips it, and
 * whether the weights and statistics are finite. */
#include <math.h>

#include "dtrain/model.h"
#include "model_internal.h"

int dt_model_download_momentum(dt_model *m, float *host_momentum, dt_error *err) {
    return dt_model_param_buffer_download(m, host_momentum, m->momentum, err);
}

int dt_model_upload_momentum(dt_model *m, const float *host_momentum, dt_error *err) {
    return dt_model_param_buffer_upload(m, m->momentum, host_momentum, err);
}

int dt_model_use_second_moment(dt_model *m, dt_error *err) {
    if (m->second_moment) return 0;
    m->second_moment = dt_backend_buffer_alloc(&m->backend, dt_model_param_count(m), err);
    return m->second_moment ? 0 : dt_error_prefix(err, "model: allocating the second moment");
}

float *dt_model_second_moment(dt_model *m) {
    return m->second_moment;
}

int dt_model_download_second_moment(dt_model *m, float *host, dt_error *err) {
    if (!m->second_moment) return dt_fail(err, "internal: the model has no second moment");
    return dt_model_param_buffer_download(m, host, m->second_moment, err);
}

int dt_model_upload_second_moment(dt_model *m, const float *host, dt_error *err) {
    if (dt_model_use_second_moment(m, err)) return -1;
    return dt_model_param_buffer_upload(m, m->second_moment, host, err);
}

int dt_model_stats_snapshot(dt_model *m, dt_error *err) {
    size_t ns = dt_model_stats_count(m);
    if (!m->stats_backup && !(m->stats_backup = dt_backend_buffer_alloc(&m->backend, ns, err)))
        return -1;
    if (dt_backend_buffer_fill(&m->backend, m->stats_backup, 0.0f, ns, err) ||
        dt_backend_buffer_axpy(&m->backend, m->stats_backup, 1.0f, m->stats, ns, err))
        return dt_error_prefix(err, "keeping the running statistics");
    return 0;
}

int dt_model_stats_restore_if_skipped(dt_model *m, dt_error *err) {
    if (!m->stats_backup) return dt_fail(err, "internal: no snapshot of the running statistics");
    return dt_backend_guard_restore(&m->backend, m->stats, m->stats_backup, dt_model_stats_count(m),
                                    err);
}

int dt_model_state_finite(dt_model *m, int *finite, dt_error *err) {
    double a = 0, b = 0;
    if (dt_backend_buffer_sum_squares(&m->backend, m->params, dt_model_param_count(m), &a, err) ||
        dt_backend_buffer_sum_squares(&m->backend, m->stats, dt_model_stats_count(m), &b, err))
        return -1;
    *finite = isfinite(a) && isfinite(b);
    return 0;
}
