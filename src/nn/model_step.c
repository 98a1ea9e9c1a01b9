/* The device-side bookkeeping of a training step, reached through the model so that the
 * training loop talks to the model, the comms and the loader only: the loss statistics, the
 * step's phase timing, the next batch's pixel copy, and the non-finite guard's reset, check and
 * read (all in the model's backend stream order). */
#include "dtrain/model.h"
#include "model_internal.h"

int dt_model_loss_stats_read(dt_model *m, double stats[DT_LOSS_STATS], int reset, dt_error *err) {
    return dt_backend_loss_stats_read(&m->backend, stats, reset, err);
}

int dt_model_phase_mark(dt_model *m, int phase, dt_error *err) {
    return dt_backend_phase_mark(&m->backend, phase, err);
}

int dt_model_phase_read(dt_model *m, double seconds[DT_PHASE_COUNT], int reset, dt_error *err) {
    return dt_backend_phase_read(&m->backend, seconds, reset, err);
}

int dt_model_input_prefetch(dt_model *m, const uint8_t *pixels_nhwc, size_t bytes, dt_error *err) {
    return dt_backend_input_prefetch(&m->backend, pixels_nhwc, bytes, err);
}

int dt_model_input_wait(dt_model *m, dt_error *err) {
    return dt_backend_input_wait(&m->backend, err);
}

int dt_model_grads_fill(dt_model *m, size_t offset, size_t count, float value, dt_error *err) {
    size_t n = dt_model_param_count(m);
    if (offset > n || count > n - offset)
        return dt_fail(err, "internal: gradient span [%zu, %zu) outside the %zu parameters", offset,
                       offset + count, n);
    return dt_backend_buffer_fill(&m->backend, m->grads + offset, value, count, err);
}

int dt_model_guard_reset(dt_model *m, const dt_guard_state *state, int64_t halt_after,
                         dt_error *err) {
    return dt_backend_guard_reset(&m->backend, state, halt_after, err);
}

int dt_model_guard_check(dt_model *m, const float *grads, size_t count, int64_t step,
                         dt_error *err) {
    return dt_backend_guard_check(&m->backend, grads, count, step, err);
}

int dt_model_guard_read(dt_model *m, dt_guard_state *out, dt_error *err) {
    return dt_backend_guard_read(&m->backend, out, err);
}
