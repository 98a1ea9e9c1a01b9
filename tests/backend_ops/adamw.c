/* The AdamW update of every backend (dt_adamw_params in backend.h, torch.optim.AdamW): the first
 * step by hand (its size is lr whatever the gradient's scale), four steps with weight decay and a
 * gradient scale on a buffer large enough for the threaded path against a float64 reference of
 * torch's formula, the non-finite guard (a skipped step changes nothing and is left out of the
 * bias correction's step count), and the wrapper's checks. Compare mode: three steps on another
 * backend against the CPU's from the same state. Rows: test_backend_ops.c. */
#include <stdlib.h>
#include <string.h>

#include "backend_ops.h"

/* torch.optim.AdamW's single-tensor update in double. */
static void reference_step(const dt_adamw_params *p, int64_t t, double *param, const double *grad,
                           double *m, double *v, size_t n) {
    double bias1 = 1.0 - pow(p->beta1, (double)t), bias2 = 1.0 - pow(p->beta2, (double)t);
    for (size_t i = 0; i < n; i++) {
        double g = p->grad_scale * grad[i];
        param[i] *= 1.0 - p->lr * p->weight_decay;
        m[i] = p->beta1 * m[i] + (1.0 - p->beta1) * g;
        v[i] = p->beta2 * v[i] + (1.0 - p->beta2) * g * g;
        param[i] -= p->lr / bias1 * m[i] / (sqrt(v[i]) / sqrt(bias2) + p->eps);
    }
}

void adamw_check_first_step_by_hand(dt_backend *b, const backend_op_case *oc) {
    (void)oc;
    const double params[3] = {1.0, -2.0, 0.5}, grads[3] = {0.5, -1e-3, 40.0};
    float *dp = test_buffer(b, params, 3), *dg = test_buffer(b, grads, 3);
    float *dm = test_buffer(b, NULL, 3), *dv = test_buffer(b, NULL, 3);
    dt_adamw_params p = {
        .lr = 0.1, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8, .grad_scale = 1.0f, .step = 1};
    dt_error err = {{0}, 0};
    CHECK_MSG(dt_backend_adamw_step(b, &p, dp, dg, dm, dv, 3, &err) == 0, "%s", err.message);
    double got[3], m[3], v[3];
    test_buffer_read(b, dp, got, 3);
    test_buffer_read(b, dm, m, 3);
    test_buffer_read(b, dv, v, 3);
    /* step 1: exp_avg = 0.1 g, exp_avg_sq = 0.001 g^2, the update lr * sign(g) (eps aside) */
    CHECK_CLOSE(got[0], 0.9, 1e-6, 0);
    CHECK_CLOSE(got[1], -1.9, 1e-5, 0);
    CHECK_CLOSE(got[2], 0.4, 1e-6, 0);
    CHECK_CLOSE(m[2], 4.0, 1e-6, 0);
    CHECK_CLOSE(v[2], 1.6, 1e-6, 0);
    test_buffer_free(b, dp), test_buffer_free(b, dg), test_buffer_free(b, dm);
    test_buffer_free(b, dv);
}

/* Four steps against the float64 reference: parameters, exp_avg and exp_avg_sq. */
void adamw_check_steps_large(dt_backend *b, const backend_op_case *oc) {
    (void)oc;
    enum { COUNT = 100003, STEPS = 4 };
    uint64_t state = 4242u;
    double *param = test_doubles(COUNT), *grad = test_doubles(COUNT);
    double *m = test_doubles(COUNT), *v = test_doubles(COUNT), *got = test_doubles(COUNT);
    test_random_fill(param, COUNT, -1.0, 1.0, &state);
    float *dp = test_buffer(b, param, COUNT), *dg = test_buffer(b, NULL, COUNT);
    float *dm = test_buffer(b, NULL, COUNT), *dv = test_buffer(b, NULL, COUNT);
    for (size_t i = 0; i < COUNT; i++) param[i] = (float)param[i];
    dt_adamw_params p = {.lr = 2e-3,
                         .beta1 = 0.8,
                         .beta2 = 0.99,
                         .eps = 1e-6,
                         .weight_decay = 0.05,
                         .grad_scale = 0.25f};
    dt_error err = {{0}, 0};
    for (int s = 1; s <= STEPS; s++) {
        test_random_fill(grad, COUNT, -2.0, 2.0, &state);
        for (size_t i = 0; i < COUNT; i++) grad[i] = (float)grad[i];
        test_buffer_write(b, dg, grad, COUNT);
        p.step = s;
        CHECK_MSG(dt_backend_adamw_step(b, &p, dp, dg, dm, dv, COUNT, &err) == 0, "%s",
                  err.message);
        reference_step(&p, s, param, grad, m, v, COUNT);
    }
    test_buffer_read(b, dp, got, COUNT);
    CHECK_ARRAY_CLOSE("adamw parameters, 4 steps", got, param, COUNT, 1e-5, 1e-6);
    test_buffer_read(b, dm, got, COUNT);
    CHECK_ARRAY_CLOSE("adamw exp_avg, 4 steps", got, m, COUNT, 1e-5, 1e-6);
    test_buffer_read(b, dv, got, COUNT);
    CHECK_ARRAY_CLOSE("adamw exp_avg_sq, 4 steps", got, v, COUNT, 1e-5, 1e-6);
    test_buffer_free(b, dp), test_buffer_free(b, dg), test_buffer_free(b, dm);
    test_buffer_free(b, dv);
    free(param), free(grad), free(m), free(v), free(got);
}

/* params, exp_avg and exp_avg_sq of n values read into one array of 3n */
static void read_all(dt_backend *b, float *const bufs[3], double *out, size_t n) {
    for (int k = 0; k < 3; k++) test_buffer_read(b, bufs[k], out + (size_t)k * n, n);
}

/* A guarded step after a skipped one: nothing changed by the skipped step, and the next one is
 * update number 1 of the bias correction although the host counts it as step 2. */
void adamw_check_guard(dt_backend *b, const backend_op_case *oc) {
    (void)oc;
    enum { N = 40000 };
    uint64_t state = 77u;
    double *start = test_doubles(N), *grad = test_doubles(N), *bad = test_doubles(N);
    double *before = test_doubles(3 * N), *after = test_doubles(3 * N), *want = test_doubles(3 * N);
    test_random_fill(start, N, -1.0, 1.0, &state);
    test_random_fill(grad, N, -1.0, 1.0, &state);
    memcpy(bad, grad, N * sizeof *bad);
    bad[N - 3] = NAN;
    float *guarded[3] = {test_buffer(b, start, N), test_buffer(b, NULL, N),
                         test_buffer(b, NULL, N)};
    float *plain[3] = {test_buffer(b, start, N), test_buffer(b, NULL, N), test_buffer(b, NULL, N)};
    float *dg = test_buffer(b, bad, N);
    dt_error err = {{0}, 0};
    dt_guard_state reset;
    memset(&reset, 0, sizeof reset);
    reset.halted_step = -1;
    CHECK(dt_backend_guard_reset(b, &reset, 5, &err) == 0);
    dt_adamw_params p = {.lr = 0.01,
                         .beta1 = 0.9,
                         .beta2 = 0.999,
                         .eps = 1e-8,
                         .weight_decay = 0.1,
                         .grad_scale = 1.0f,
                         .step = 1,
                         .guarded = 1};
    read_all(b, guarded, before, N);
    CHECK(dt_backend_guard_check(b, dg, N, 0, &err) == 0);
    CHECK(dt_backend_adamw_step(b, &p, guarded[0], dg, guarded[1], guarded[2], N, &err) == 0);
    read_all(b, guarded, after, N);
    CHECK_MSG(memcmp(before, after, 3 * N * sizeof *after) == 0,
              "a skipped step changes neither parameters nor moments");
    test_buffer_write(b, dg, grad, N);
    CHECK(dt_backend_guard_check(b, dg, N, 1, &err) == 0);
    p.step = 2;
    CHECK(dt_backend_adamw_step(b, &p, guarded[0], dg, guarded[1], guarded[2], N, &err) == 0);
    p.step = 1;
    p.guarded = 0;
    CHECK(dt_backend_adamw_step(b, &p, plain[0], dg, plain[1], plain[2], N, &err) == 0);
    read_all(b, guarded, after, N);
    read_all(b, plain, want, N);
    CHECK_MSG(memcmp(want, after, 3 * N * sizeof *after) == 0,
              "the step after a skipped one is update 1 of the bias correction");
    dt_guard_state g;
    CHECK(dt_backend_guard_read(b, &g, &err) == 0 && g.total == 1 && g.skipped == 1);
    for (int k = 0; k < 3; k++) test_buffer_free(b, guarded[k]), test_buffer_free(b, plain[k]);
    test_buffer_free(b, dg);
    free(start), free(grad), free(bad), free(before), free(after), free(want);
}

void adamw_check_wrapper(dt_backend *b, const backend_op_case *oc) {
    (void)oc;
    float *d = test_buffer(b, NULL, 4);
    dt_error err = {{0}, 0};
    dt_adamw_params p = {
        .lr = 0.1, .beta1 = 1.0, .beta2 = 0.999, .eps = 1e-8, .grad_scale = 1.0f, .step = 1};
    CHECK(dt_backend_adamw_step(b, &p, d, d, d, d, 4, &err) == -1);
    CHECK_MSG(strstr(err.message, "betas 1 0.999") != NULL, "%s", err.message);
    p.beta1 = 0.9;
    p.step = 0;
    CHECK(dt_backend_adamw_step(b, &p, d, d, d, d, 4, &err) == -1);
    p.step = 1;
    CHECK(dt_backend_adamw_step(b, &p, d, d, NULL, d, 4, &err) == -1);
    CHECK_MSG(strstr(err.message, "NULL") != NULL, "%s", err.message);
    test_buffer_free(b, d);
}

void adamw_compare(dt_backend *cpu, dt_backend *other, const backend_op_case *oc) {
    enum { N = 100003 };
    dt_error err = {0};
    uint64_t state = 23u;
    float *a = op_random_floats(N, -1, 1, &state), *g = op_random_floats(N, -3, 3, &state);
    float *ca = op_buffer_of(cpu, a, N), *ga = op_buffer_of(other, a, N);
    float *cg = op_buffer_of(cpu, g, N), *gg = op_buffer_of(other, g, N);
    float *cm = op_buffer_of(cpu, NULL, N), *gm = op_buffer_of(other, NULL, N);
    float *cv = op_buffer_of(cpu, NULL, N), *gv = op_buffer_of(other, NULL, N);
    /* adamw_math.h on both sides; the per-step scalars come from each side's pow, so within
     * 1e-6 rather than bit for bit */
    for (int s = 1; s <= 3; s++) {
        dt_adamw_params adamw = {.lr = 1e-3,
                                 .beta1 = 0.9,
                                 .beta2 = 0.999,
                                 .eps = 1e-8,
                                 .weight_decay = 0.05,
                                 .grad_scale = 0.5f,
                                 .step = s};
        CHECK(dt_backend_adamw_step(cpu, &adamw, ca, cg, cm, cv, N, &err) == 0);
        CHECK_MSG(dt_backend_adamw_step(other, &adamw, ga, gg, gm, gv, N, &err) == 0, "%s",
                  err.message);
    }
    float *want = op_buffer_read(cpu, ca, N), *got = op_buffer_read(other, ga, N);
    op_compare(oc->precision, "adamw_step x3 parameters", got, want, N, 1e-6);
    free(want), free(got);
    want = op_buffer_read(cpu, cm, N), got = op_buffer_read(other, gm, N);
    op_compare(oc->precision, "adamw_step x3 exp_avg", got, want, N, 1e-6);
    free(want), free(got);
    want = op_buffer_read(cpu, cv, N), got = op_buffer_read(other, gv, N);
    op_compare(oc->precision, "adamw_step x3 exp_avg_sq", got, want, N, 1e-6);
    free(want), free(got);
    dt_backend_buffer_free(cpu, ca), dt_backend_buffer_free(other, ga);
    dt_backend_buffer_free(cpu, cg), dt_backend_buffer_free(other, gg);
    dt_backend_buffer_free(cpu, cm), dt_backend_buffer_free(other, gm);
    dt_backend_buffer_free(cpu, cv), dt_backend_buffer_free(other, gv);
    free(a), free(g);
}
