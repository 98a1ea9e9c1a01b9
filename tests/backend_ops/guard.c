/* The non-finite guard of every backend (dt_guard_state in backend.h): the scan finds the first
 * non-finite gradient (NaN or infinite) on the threaded path too, a skipped step's guarded SGD
 * update changes neither weights nor momentum and guard_restore puts the backup back, finite
 * steps reset the in-row count, the guard halts at halt_after in a row and then skips every
 * step, resumed counts carry on, records keep the newest, reads clear what they return; and
 * the backend's own counters: no host wait and no device allocation in these step-time ops.
 * Rows: test_backend_ops.c. */
#include <string.h>

#include "backend_ops.h"

enum { COUNT = 100003 };

typedef struct guard_fixture {
    dt_backend *b;
    float *params, *grads, *momentum, *stats, *backup;
    float *host;
} guard_fixture;

static void upload_constant(guard_fixture *f, float *dst, float value) {
    dt_error err = {{0}, 0};
    for (size_t i = 0; i < COUNT; i++) f->host[i] = value;
    CHECK(dt_backend_buffer_upload(f->b, dst, f->host, COUNT, &err) == 0);
}

/* grads all `value`, with NaN/Inf at the given indexes (-1: none) */
static void set_grads(guard_fixture *f, float value, long nan_at, long inf_at) {
    dt_error err = {{0}, 0};
    for (size_t i = 0; i < COUNT; i++) f->host[i] = value;
    if (nan_at >= 0) f->host[nan_at] = NAN;
    if (inf_at >= 0) f->host[inf_at] = -INFINITY;
    CHECK(dt_backend_buffer_upload(f->b, f->grads, f->host, COUNT, &err) == 0);
}

/* one guarded step: check, restore, SGD with momentum; returns params[0] afterwards and checks
 * that params, momentum and stats are uniform */
static float step(guard_fixture *f, int64_t index, float *momentum0, float *stats0) {
    dt_error err = {{0}, 0};
    dt_sgd_params p = {.lr = 0.5f, .momentum = 0.9f, .grad_scale = 1.0f, .guarded = 1};
    CHECK_MSG(dt_backend_guard_check(f->b, f->grads, COUNT, index, &err) == 0, "%s", err.message);
    CHECK(dt_backend_guard_restore(f->b, f->stats, f->backup, COUNT, &err) == 0);
    CHECK(dt_backend_sgd_step(f->b, &p, f->params, f->grads, f->momentum, COUNT, &err) == 0);
    float *m = test_floats(COUNT), *s = test_floats(COUNT);
    CHECK(dt_backend_buffer_download(f->b, f->host, f->params, COUNT, &err) == 0 &&
          dt_backend_buffer_download(f->b, m, f->momentum, COUNT, &err) == 0 &&
          dt_backend_buffer_download(f->b, s, f->stats, COUNT, &err) == 0);
    int uniform = 1;
    for (size_t i = 1; i < COUNT; i++)
        uniform &= f->host[i] == f->host[0] && m[i] == m[0] && s[i] == s[0];
    CHECK(uniform);
    *momentum0 = m[0];
    *stats0 = s[0];
    free(m);
    free(s);
    return f->host[0];
}

static dt_guard_state read_guard(guard_fixture *f) {
    dt_guard_state g;
    dt_error err = {{0}, 0};
    memset(&g, 0x55, sizeof g);
    CHECK_MSG(dt_backend_guard_read(f->b, &g, &err) == 0, "%s", err.message);
    return g;
}

static void reset(guard_fixture *f, int64_t in_row, int64_t total, int64_t halt_after) {
    dt_guard_state s;
    memset(&s, 0, sizeof s);
    s.in_row = in_row;
    s.total = total;
    s.halted_step = -1;
    dt_error err = {{0}, 0};
    CHECK_MSG(dt_backend_guard_reset(f->b, &s, halt_after, &err) == 0, "%s", err.message);
}

/* weights 1, momentum 0, running statistics 2 and their backup 7: what a step changes shows */
static void fill_state(guard_fixture *f) {
    upload_constant(f, f->params, 1.0f);
    upload_constant(f, f->momentum, 0.0f);
    upload_constant(f, f->backup, 7.0f);
    upload_constant(f, f->stats, 2.0f);
}

static void check_skip_and_count(guard_fixture *f) {
    float m, s;
    reset(f, 0, 0, 3);
    fill_state(f);
    /* finite: applied (buf = 0.9 * 0 + 0.5, p = 1 - 0.5 * 0.5), stats left alone */
    set_grads(f, 0.5f, -1, -1);
    CHECK_CLOSE(step(f, 0, &m, &s), 0.75, 1e-6, 0);
    CHECK_CLOSE(m, 0.5, 1e-6, 0);
    CHECK(s == 2.0f);
    dt_guard_state g = read_guard(f);
    CHECK(g.in_row == 0 && g.total == 0 && g.skipped == 0 && g.n_records == 0);
    CHECK(g.halted_step == -1 && g.step_skipped == 0);
    /* NaN at 70000 and -Inf at 90000: skipped, the first (NaN) recorded; stats restored */
    set_grads(f, 0.5f, 70000, 90000);
    CHECK(step(f, 1, &m, &s) == 0.75f);
    CHECK(m == 0.5f);
    CHECK(s == 7.0f);
    /* -Inf before the NaN: infinite */
    upload_constant(f, f->stats, 2.0f);
    set_grads(f, 0.5f, 90000, 4);
    CHECK(step(f, 2, &m, &s) == 0.75f);
    g = read_guard(f);
    CHECK(g.in_row == 2 && g.total == 2 && g.skipped == 2 && g.n_records == 2);
    CHECK(g.halted_step == -1 && g.step_skipped == 1);
    CHECK(g.records[0].step == 1 && g.records[0].index == 70000 && g.records[0].is_nan == 1);
    CHECK(g.records[0].in_row == 1 && g.records[0].total == 1);
    CHECK(g.records[1].step == 2 && g.records[1].index == 4 && g.records[1].is_nan == 0);
    CHECK(g.records[1].in_row == 2 && g.records[1].total == 2);
    /* the read cleared records and skipped, not the counts */
    g = read_guard(f);
    CHECK(g.n_records == 0 && g.skipped == 0 && g.in_row == 2 && g.total == 2);
    /* finite again: applied, the in-row count restarts; stats untouched */
    upload_constant(f, f->stats, 3.0f);
    set_grads(f, 0.5f, -1, -1);
    CHECK_CLOSE(step(f, 3, &m, &s), 0.75 - 0.5 * 0.95, 1e-6, 0);
    CHECK(s == 3.0f);
    g = read_guard(f);
    CHECK(g.in_row == 0 && g.total == 2 && g.step_skipped == 0);
    /* an unguarded update applies whatever the verdict */
    set_grads(f, 0.5f, 3, -1);
    dt_error err = {{0}, 0};
    CHECK(dt_backend_guard_check(f->b, f->grads, COUNT, 4, &err) == 0);
    set_grads(f, 0.5f, -1, -1);
    dt_sgd_params plain = {.lr = 0.5f, .grad_scale = 1.0f};
    CHECK(dt_backend_sgd_step(f->b, &plain, f->params, f->grads, NULL, COUNT, &err) == 0);
    CHECK(dt_backend_buffer_download(f->b, f->host, f->params, 1, &err) == 0);
    CHECK_CLOSE(f->host[0], 0.75 - 0.5 * 0.95 - 0.25, 1e-6, 0);
    CHECK(dt_backend_guard_reset(f->b, &g, 0, &err) == -1);
    CHECK(strstr(err.message, "halt_after") != NULL);
}

static void check_halt(guard_fixture *f) {
    float m, s;
    /* resumed with 1 in a row: the next non-finite step makes 2 and halts */
    reset(f, 1, 5, 2);
    fill_state(f);
    set_grads(f, 0.5f, 10, -1);
    CHECK(step(f, 20, &m, &s) == 1.0f);
    CHECK(s == 7.0f);
    /* halted: finite steps are skipped too, the last good state stays */
    upload_constant(f, f->stats, 2.0f);
    set_grads(f, 0.5f, -1, -1);
    CHECK(step(f, 21, &m, &s) == 1.0f);
    CHECK(m == 0.0f && s == 7.0f);
    dt_guard_state g = read_guard(f);
    CHECK(g.halted_step == 20 && g.in_row == 2 && g.total == 6 && g.skipped == 2);
    CHECK(g.n_records == 1 && g.records[0].step == 20 && g.records[0].in_row == 2);
    /* a reset lifts the halt */
    reset(f, 0, 0, 100);
    g = read_guard(f);
    CHECK(g.halted_step == -1 && g.in_row == 0 && g.total == 0);
    /* more non-finite steps than records: the newest takes the last slot */
    for (int64_t k = 0; k < 10; k++) {
        set_grads(f, 0.5f, (long)k, -1);
        step(f, 100 + k, &m, &s);
    }
    g = read_guard(f);
    CHECK(g.n_records == 10 && g.skipped == 10 && g.in_row == 10);
    for (int i = 0; i < DT_GUARD_RECORDS - 1; i++)
        CHECK(g.records[i].step == 100 + i && g.records[i].index == i);
    CHECK(g.records[DT_GUARD_RECORDS - 1].step == 109);
    CHECK(g.records[DT_GUARD_RECORDS - 1].index == 9);
}

/* guard ops and updates neither wait for the device nor allocate on it */
static void check_counters(guard_fixture *f) {
    dt_backend_counters before, after;
    dt_error err = {{0}, 0};
    reset(f, 0, 0, 1000);
    CHECK(dt_backend_synchronize(f->b, &err) == 0);
    dt_backend_read_counters(f->b, &before);
    dt_sgd_params p = {.lr = 0.5f, .momentum = 0.9f, .grad_scale = 1.0f, .guarded = 1};
    for (int64_t k = 0; k < 5; k++)
        CHECK(dt_backend_buffer_fill(f->b, f->backup, 1.0f, COUNT, &err) == 0 &&
              dt_backend_buffer_axpy(f->b, f->backup, 1.0f, f->stats, COUNT, &err) == 0 &&
              dt_backend_guard_check(f->b, f->grads, COUNT, k, &err) == 0 &&
              dt_backend_guard_restore(f->b, f->stats, f->backup, COUNT, &err) == 0 &&
              dt_backend_sgd_step(f->b, &p, f->params, f->grads, f->momentum, COUNT, &err) == 0);
    dt_backend_read_counters(f->b, &after);
    CHECK_MSG(after.host_waits == before.host_waits, "%llu host waits in 5 guarded updates",
              (unsigned long long)(after.host_waits - before.host_waits));
    CHECK(after.device_allocations == before.device_allocations);
    /* a read is a host wait (none on the CPU, which never waits) */
    read_guard(f);
    dt_backend_read_counters(f->b, &after);
    int host = dt_backend_has(f->b, DT_BACKEND_HOST_MEMORY);
    CHECK(after.host_waits == before.host_waits + (host ? 0 : 1));
    if (host)
        CHECK(after.host_waits == 0 && after.device_allocations == 0 && after.input_waits == 0);
    else
        CHECK(after.device_allocations > 0); /* the buffers of this test */
}

void guard_check(dt_backend *b, const backend_op_case *oc) {
    (void)oc;
    guard_fixture f = {.b = b};
    f.params = test_buffer(b, NULL, COUNT);
    f.grads = test_buffer(b, NULL, COUNT);
    f.momentum = test_buffer(b, NULL, COUNT);
    f.stats = test_buffer(b, NULL, COUNT);
    f.backup = test_buffer(b, NULL, COUNT);
    f.host = test_floats(COUNT);
    /* a fresh backend's guard skips a non-finite step and never halts */
    float m, s;
    set_grads(&f, 0.0f, 5, -1);
    CHECK(step(&f, 0, &m, &s) == 0.0f);
    dt_guard_state g = read_guard(&f);
    CHECK(g.halted_step == -1 && g.in_row == 1 && g.step_skipped == 1);
    check_skip_and_count(&f);
    check_halt(&f);
    check_counters(&f);
    float *buffers[] = {f.params, f.grads, f.momentum, f.stats, f.backup};
    for (int i = 0; i < 5; i++) dt_backend_buffer_free(b, buffers[i]);
    free(f.host);
}
