/* The weights' moving average (dt_backend_ema_update, timm's ModelEmaV2 update) on every backend
 * compiled in: hand-computed values; three updates of a large buffer (the threaded path) bit for
 * bit against torch's float32 arithmetic done here (two rounded products, then the sum) and
 * within float32 rounding of a float64 reference; the guard (a skipped step leaves the average
 * unchanged when guarded, not when unguarded); bad factors refused; zero elements. Compare mode:
 * the same updates on another backend against the CPU's, bit for bit. Rows: test_backend_ops.c. */
#include <string.h>

#include "backend_ops.h"

void ema_check_by_hand(dt_backend *b, const backend_op_case *oc) {
    (void)oc;
    dt_error err = {{0}, 0};
    const double ema0[4] = {1.0, -2.0, 0.5, 0.0}, live[4] = {3.0, 2.0, -0.5, 8.0};
    float *e = test_buffer(b, ema0, 4), *l = test_buffer(b, live, 4);
    /* decay 0.75: 0.75 e + 0.25 l, exact in binary */
    CHECK_MSG(dt_backend_ema_update(b, e, l, 0.75f, 0.25f, 4, 0, &err) == 0, "%s", err.message);
    double got[4];
    test_buffer_read(b, e, got, 4);
    const double want[4] = {1.5, -1.0, 0.25, 2.0};
    for (int i = 0; i < 4; i++) CHECK_CLOSE(got[i], want[i], 0, 0);
    /* decay 0 copies live; decay 1 keeps the average */
    CHECK(dt_backend_ema_update(b, e, l, 1.0f, 0.0f, 4, 0, &err) == 0);
    test_buffer_read(b, e, got, 4);
    for (int i = 0; i < 4; i++) CHECK_CLOSE(got[i], want[i], 0, 0);
    CHECK(dt_backend_ema_update(b, e, l, 0.0f, 1.0f, 4, 0, &err) == 0);
    test_buffer_read(b, e, got, 4);
    for (int i = 0; i < 4; i++) CHECK_CLOSE(got[i], live[i], 0, 0);
    /* factors outside [0, 1] are refused, naming the op; zero elements are fine */
    CHECK(dt_backend_ema_update(b, e, l, 1.5f, -0.5f, 4, 0, &err) == -1);
    CHECK(strstr(err.message, "ema_update") != NULL);
    CHECK(dt_backend_ema_update(b, e, l, NAN, 0.5f, 4, 0, &err) == -1);
    CHECK(dt_backend_ema_update(b, e, l, 0.5f, 0.5f, 0, 0, &err) == 0);
    test_buffer_free(b, e);
    test_buffer_free(b, l);
}

/* Three updates with decay 0.9997 (1 - decay rounded from double, as torch rounds Python's
 * 1. - decay) against torch's float32 arithmetic (bit for bit) and float64 (rounding only). */
void ema_check_large(dt_backend *b, const backend_op_case *oc) {
    (void)oc;
    enum { COUNT = 100003 };
    const double decay = 0.9997;
    const float d = (float)decay, omd = (float)(1.0 - decay);
    dt_error err = {{0}, 0};
    uint64_t state = 77u;
    double *ema = test_doubles(COUNT), *live = test_doubles(COUNT), *got = test_doubles(COUNT);
    float *torch32 = test_floats(COUNT);
    test_random_fill(ema, COUNT, -2.0, 2.0, &state);
    for (size_t i = 0; i < COUNT; i++) torch32[i] = (float)ema[i];
    float *dema = test_buffer(b, ema, COUNT), *dlive = test_buffer(b, NULL, COUNT);
    for (int step = 0; step < 3; step++) {
        test_random_fill(live, COUNT, -2.0, 2.0, &state);
        test_buffer_write(b, dlive, live, COUNT);
        CHECK_MSG(dt_backend_ema_update(b, dema, dlive, d, omd, COUNT, 0, &err) == 0, "%s",
                  err.message);
        for (size_t i = 0; i < COUNT; i++) {
            ema[i] = decay * ema[i] + (1.0 - decay) * live[i];
            float kept = d * torch32[i], added = omd * (float)live[i];
            torch32[i] = kept + added;
        }
    }
    test_buffer_read(b, dema, got, COUNT);
    size_t differ = 0;
    for (size_t i = 0; i < COUNT; i++) differ += (float)got[i] != torch32[i];
    CHECK_MSG(differ == 0, "ema_update: %zu of %d values differ from torch's float32 arithmetic",
              differ, COUNT);
    /* three updates of values below 2 in magnitude: a few float32 roundings of 2 */
    CHECK_ARRAY_CLOSE("ema_update, 3 steps, vs float64", got, ema, COUNT, 0, 2e-6);
    test_buffer_free(b, dema);
    test_buffer_free(b, dlive);
    free(ema);
    free(live);
    free(got);
    free(torch32);
}

/* guarded: the non-finite guard's skipped step changes nothing; the next good step updates */
void ema_check_guarded(dt_backend *b, const backend_op_case *oc) {
    (void)oc;
    enum { COUNT = 8 };
    dt_error err = {{0}, 0};
    double ones[COUNT], twos[COUNT], grads[COUNT] = {0}, got[COUNT];
    for (int i = 0; i < COUNT; i++) ones[i] = 1.0, twos[i] = 2.0;
    float *e = test_buffer(b, ones, COUNT), *l = test_buffer(b, twos, COUNT);
    float *g = test_buffer(b, grads, COUNT);
    dt_guard_state fresh;
    memset(&fresh, 0, sizeof fresh);
    fresh.halted_step = -1;
    CHECK(dt_backend_guard_reset(b, &fresh, 1000, &err) == 0);
    grads[3] = NAN;
    test_buffer_write(b, g, grads, COUNT);
    CHECK(dt_backend_guard_check(b, g, COUNT, 0, &err) == 0); /* step 0 skipped */
    CHECK(dt_backend_ema_update(b, e, l, 0.5f, 0.5f, COUNT, 1, &err) == 0);
    test_buffer_read(b, e, got, COUNT);
    for (int i = 0; i < COUNT; i++) CHECK_CLOSE(got[i], 1.0, 0, 0);
    CHECK(dt_backend_ema_update(b, e, l, 0.5f, 0.5f, COUNT, 0, &err) == 0); /* unguarded */
    test_buffer_read(b, e, got, COUNT);
    for (int i = 0; i < COUNT; i++) CHECK_CLOSE(got[i], 1.5, 0, 0);
    grads[3] = 0.0;
    test_buffer_write(b, g, grads, COUNT);
    CHECK(dt_backend_guard_check(b, g, COUNT, 1, &err) == 0); /* step 1 applies */
    CHECK(dt_backend_ema_update(b, e, l, 0.5f, 0.5f, COUNT, 1, &err) == 0);
    test_buffer_read(b, e, got, COUNT);
    for (int i = 0; i < COUNT; i++) CHECK_CLOSE(got[i], 1.75, 0, 0);
    dt_guard_state read;
    CHECK(dt_backend_guard_read(b, &read, &err) == 0);
    CHECK_INT_EQ(read.total, 1);
    test_buffer_free(b, e);
    test_buffer_free(b, l);
    test_buffer_free(b, g);
}

/* One guard_check of count gradients on both backends, all zero but one value at bad (NaN
 * makes the step skipped; 0 applies it). */
static void guard_both(dt_backend *cpu, dt_backend *other, float *cg, float *gg, size_t count,
                       float bad, int64_t step) {
    dt_error err = {0};
    float *grads = test_floats(count);
    grads[count / 2] = bad;
    CHECK(dt_backend_buffer_upload(cpu, cg, grads, count, &err) == 0);
    CHECK(dt_backend_buffer_upload(other, gg, grads, count, &err) == 0);
    CHECK(dt_backend_guard_check(cpu, cg, count, step, &err) == 0);
    CHECK_MSG(dt_backend_guard_check(other, gg, count, step, &err) == 0, "%s", err.message);
    free(grads);
}

/* Three updates at decay 0.9997, one at 0.5, then a guarded update after a skipped step and one
 * after an applied step on the other backend against the CPU's, bit for bit (both compute two
 * rounded products, then the sum). */
void ema_compare(dt_backend *cpu, dt_backend *other, const backend_op_case *oc) {
    const dt_test_tolerances *t = dt_test_tolerances_for(oc->precision);
    enum { N = 100003 };
    const double decay = 0.9997;
    const float d = (float)decay, omd = (float)(1.0 - decay);
    dt_error err = {0};
    uint64_t state = 5u;
    float *e = op_random_floats(N, -2, 2, &state);
    float *ce = op_buffer_of(cpu, e, N), *ge = op_buffer_of(other, e, N);
    float *cl = op_buffer_of(cpu, NULL, N), *gl = op_buffer_of(other, NULL, N);
    for (int step = 0; step < 4; step++) {
        float *live = op_random_floats(N, -2, 2, &state);
        CHECK(dt_backend_buffer_upload(cpu, cl, live, N, &err) == 0);
        CHECK(dt_backend_buffer_upload(other, gl, live, N, &err) == 0);
        float kd = step < 3 ? d : 0.5f, ko = step < 3 ? omd : 0.5f;
        CHECK(dt_backend_ema_update(cpu, ce, cl, kd, ko, N, 0, &err) == 0);
        CHECK_MSG(dt_backend_ema_update(other, ge, gl, kd, ko, N, 0, &err) == 0, "%s", err.message);
        free(live);
    }
    float *want = op_buffer_read(cpu, ce, N), *got = op_buffer_read(other, ge, N);
    op_compare(oc->precision, "ema_update x4 (decay 0.9997, 0.5)", got, want, N, t->exact);
    free(want), free(got);

    /* guarded: a skipped step changes neither, an applied one updates both alike */
    dt_guard_state fresh;
    memset(&fresh, 0, sizeof fresh);
    fresh.halted_step = -1;
    CHECK(dt_backend_guard_reset(cpu, &fresh, 1000, &err) == 0);
    CHECK_MSG(dt_backend_guard_reset(other, &fresh, 1000, &err) == 0, "%s", err.message);
    float *cg = op_buffer_of(cpu, NULL, N), *gg = op_buffer_of(other, NULL, N);
    float *before = op_buffer_read(other, ge, N);
    guard_both(cpu, other, cg, gg, N, NAN, 0);
    CHECK(dt_backend_ema_update(cpu, ce, cl, d, omd, N, 1, &err) == 0);
    CHECK(dt_backend_ema_update(other, ge, gl, d, omd, N, 1, &err) == 0);
    got = op_buffer_read(other, ge, N);
    op_compare(oc->precision, "ema_update guarded, step skipped", got, before, N, t->exact);
    free(got), free(before);
    guard_both(cpu, other, cg, gg, N, 0.0f, 1);
    CHECK(dt_backend_ema_update(cpu, ce, cl, d, omd, N, 1, &err) == 0);
    CHECK(dt_backend_ema_update(other, ge, gl, d, omd, N, 1, &err) == 0);
    want = op_buffer_read(cpu, ce, N), got = op_buffer_read(other, ge, N);
    op_compare(oc->precision, "ema_update guarded, step applied", got, want, N, t->exact);
    free(want), free(got);
    dt_guard_state read_cpu, read_other;
    CHECK(dt_backend_guard_read(cpu, &read_cpu, &err) == 0);
    CHECK(dt_backend_guard_read(other, &read_other, &err) == 0);
    CHECK_INT_EQ(read_cpu.total, 1);
    CHECK_INT_EQ(read_other.total, 1);
    dt_backend_buffer_free(cpu, ce), dt_backend_buffer_free(other, ge);
    dt_backend_buffer_free(cpu, cl), dt_backend_buffer_free(other, gl);
    dt_backend_buffer_free(cpu, cg), dt_backend_buffer_free(other, gg);
    free(e);
}
