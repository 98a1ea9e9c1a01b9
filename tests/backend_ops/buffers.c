/* Backend flat buffers (every backend compiled in): zero-filled allocation, upload/download,
 * fill, axpy, sum of squares and the SGD update (torch.optim.SGD: plain, weight decay, momentum
 * first and later steps, nesterov) against hand-computed values and, on large buffers that take
 * the threaded path, against a double-precision sequential reference; the host memory for input
 * slots, input_wait, and the phase timers. Compare mode: the same ops on another backend against
 * the CPU's. Rows: test_backend_ops.c. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backend_ops.h"
#include "dtrain/config.h"

static float *alloc_buffer(dt_backend *b, size_t count) {
    dt_error err = {0};
    float *buffer = dt_backend_buffer_alloc(b, count, &err);
    if (!buffer) {
        fprintf(stderr, "buffer_alloc: %s\n", err.message);
        exit(1);
    }
    return buffer;
}

/* Runs one SGD step on params (host copy) with grads {0.5, 0.25}, from momentum state buf
 * (host copy), through backend buffers. */
static void sgd_two(dt_backend *b, dt_sgd_params p, float params[2], float buf[2]) {
    dt_error err = {0};
    const float grads[2] = {0.5f, 0.25f};
    float *dp = alloc_buffer(b, 2), *dg = alloc_buffer(b, 2), *dbuf = alloc_buffer(b, 2);
    CHECK(dt_backend_buffer_upload(b, dp, params, 2, &err) == 0 &&
          dt_backend_buffer_upload(b, dg, grads, 2, &err) == 0 &&
          dt_backend_buffer_upload(b, dbuf, buf, 2, &err) == 0);
    CHECK_MSG(dt_backend_sgd_step(b, &p, dp, dg, p.momentum != 0.0f ? dbuf : NULL, 2, &err) == 0,
              "%s", err.message);
    CHECK(dt_backend_buffer_download(b, params, dp, 2, &err) == 0 &&
          dt_backend_buffer_download(b, buf, dbuf, 2, &err) == 0);
    dt_backend_buffer_free(b, dp);
    dt_backend_buffer_free(b, dg);
    dt_backend_buffer_free(b, dbuf);
}

void buffers_check_sgd_by_hand(dt_backend *b, const backend_op_case *oc) {
    (void)oc;
    float p[2], buf[2];
    /* plain: p -= lr * g */
    p[0] = 1.0f, p[1] = -2.0f;
    sgd_two(b, (dt_sgd_params){.grad_scale = 1.0f, .lr = 0.1f}, p, buf);
    CHECK_CLOSE(p[0], 0.95, 1e-6, 0);
    CHECK_CLOSE(p[1], -2.025, 1e-6, 0);
    /* weight decay 0.01: g = {0.51, 0.23} */
    p[0] = 1.0f, p[1] = -2.0f;
    sgd_two(b, (dt_sgd_params){.grad_scale = 1.0f, .lr = 0.1f, .weight_decay = 0.01f}, p, buf);
    CHECK_CLOSE(p[0], 0.949, 1e-6, 0);
    CHECK_CLOSE(p[1], -2.023, 1e-6, 0);
    /* momentum 0.9: first step buf = g; second buf = 0.9 buf + g = {0.95, 0.475} */
    p[0] = 1.0f, p[1] = -2.0f;
    buf[0] = buf[1] = 123.0f; /* garbage: the first step must ignore it */
    sgd_two(b, (dt_sgd_params){.grad_scale = 1.0f, .lr = 0.1f, .momentum = 0.9f, .first_step = 1},
            p, buf);
    CHECK_CLOSE(buf[0], 0.5, 1e-6, 0);
    CHECK_CLOSE(p[0], 0.95, 1e-6, 0);
    CHECK_CLOSE(p[1], -2.025, 1e-6, 0);
    sgd_two(b, (dt_sgd_params){.grad_scale = 1.0f, .lr = 0.1f, .momentum = 0.9f}, p, buf);
    CHECK_CLOSE(buf[0], 0.95, 1e-6, 0);
    CHECK_CLOSE(buf[1], 0.475, 1e-6, 0);
    CHECK_CLOSE(p[0], 0.855, 1e-6, 0);
    CHECK_CLOSE(p[1], -2.0725, 1e-6, 0);
    /* nesterov: step = g + 0.9 buf; first {0.95, 0.475}, then {1.355, 0.6775} */
    p[0] = 1.0f, p[1] = -2.0f;
    sgd_two(b,
            (dt_sgd_params){
                .grad_scale = 1.0f, .lr = 0.1f, .momentum = 0.9f, .nesterov = 1, .first_step = 1},
            p, buf);
    CHECK_CLOSE(p[0], 0.905, 1e-6, 0);
    CHECK_CLOSE(p[1], -2.0475, 1e-6, 0);
    sgd_two(b, (dt_sgd_params){.grad_scale = 1.0f, .lr = 0.1f, .momentum = 0.9f, .nesterov = 1}, p,
            buf);
    CHECK_CLOSE(p[0], 0.7695, 1e-6, 0);
    CHECK_CLOSE(p[1], -2.11525, 1e-6, 0);
    /* grad_scale averages summed gradients: scale 0.5, weight decay 0.01 -> g = {0.26, 0.105} */
    p[0] = 1.0f, p[1] = -2.0f;
    sgd_two(b, (dt_sgd_params){.grad_scale = 0.5f, .lr = 0.1f, .weight_decay = 0.01f}, p, buf);
    CHECK_CLOSE(p[0], 0.974, 1e-6, 0);
    CHECK_CLOSE(p[1], -2.0105, 1e-6, 0);
    /* momentum without a buffer is an error */
    dt_error err = {0};
    dt_sgd_params bad = {.grad_scale = 1.0f, .lr = 0.1f, .momentum = 0.9f};
    float *dp = alloc_buffer(b, 2), *dg = alloc_buffer(b, 2);
    CHECK(dt_backend_sgd_step(b, &bad, dp, dg, NULL, 2, &err) == -1);
    CHECK(strstr(err.message, "momentum") != NULL);
    dt_backend_buffer_free(b, dp);
    dt_backend_buffer_free(b, dg);
}

/* Three steps on a large buffer against a double-precision reference. */
void buffers_check_sgd_large(dt_backend *b, const backend_op_case *oc) {
    dt_sgd_params p = ((const op_sgd *)oc->params)->p;
    enum { COUNT = 100003 };
    dt_error err = {0};
    uint64_t state = 2024u + (uint64_t)p.nesterov;
    double *params = test_doubles(COUNT), *grads = test_doubles(COUNT), *buf = test_doubles(COUNT);
    test_random_fill(params, COUNT, -1.0, 1.0, &state);
    float *dparams = alloc_buffer(b, COUNT), *dgrads = alloc_buffer(b, COUNT),
          *dbuf = alloc_buffer(b, COUNT), *host = test_floats(COUNT);
    test_to_float(host, params, COUNT);
    CHECK(dt_backend_buffer_upload(b, dparams, host, COUNT, &err) == 0);
    for (int step = 0; step < 3; step++) {
        test_random_fill(grads, COUNT, -1.0, 1.0, &state);
        test_to_float(host, grads, COUNT);
        CHECK(dt_backend_buffer_upload(b, dgrads, host, COUNT, &err) == 0);
        p.first_step = step == 0;
        CHECK(dt_backend_sgd_step(b, &p, dparams, dgrads, dbuf, COUNT, &err) == 0);
        for (size_t i = 0; i < COUNT; i++) {
            double g = grads[i] + p.weight_decay * params[i];
            buf[i] = step == 0 ? g : p.momentum * buf[i] + g;
            params[i] -= p.lr * (p.nesterov ? g + p.momentum * buf[i] : buf[i]);
        }
    }
    double *got = test_doubles(COUNT);
    CHECK(dt_backend_buffer_download(b, host, dparams, COUNT, &err) == 0);
    test_to_double(got, host, COUNT);
    CHECK_ARRAY_CLOSE(p.nesterov ? "sgd nesterov, 3 steps" : "sgd momentum, 3 steps", got, params,
                      COUNT, 1e-5, 1e-6);
    dt_backend_buffer_free(b, dparams);
    dt_backend_buffer_free(b, dgrads);
    dt_backend_buffer_free(b, dbuf);
    free(params), free(grads), free(buf), free(got), free(host);
}

void buffers_check_ops(dt_backend *b, const backend_op_case *oc) {
    (void)oc;
    enum { COUNT = 70001 };
    dt_error err = {0};
    float *x = alloc_buffer(b, COUNT), *y = alloc_buffer(b, COUNT), *host = test_floats(COUNT);
    CHECK(dt_backend_buffer_download(b, host, x, COUNT, &err) == 0);
    int zero = 1;
    for (size_t i = 0; i < COUNT; i++) zero &= host[i] == 0.0f;
    CHECK_MSG(zero, "buffer_alloc is zero-filled");

    double *xs = test_doubles(COUNT);
    uint64_t state = 17u;
    test_random_fill(xs, COUNT, -2.0, 2.0, &state);
    test_to_float(host, xs, COUNT);
    CHECK(dt_backend_buffer_upload(b, x, host, COUNT, &err) == 0);
    CHECK(dt_backend_buffer_fill(b, y, 0.5f, COUNT, &err) == 0);
    CHECK(dt_backend_buffer_axpy(b, y, -3.0f, x, COUNT, &err) == 0);
    CHECK(dt_backend_buffer_download(b, host, y, COUNT, &err) == 0);
    double *got = test_doubles(COUNT), *want_y = test_doubles(COUNT);
    for (size_t i = 0; i < COUNT; i++) {
        got[i] = host[i];
        want_y[i] = 0.5f + -3.0f * (float)xs[i];
    }
    /* exact on the CPU; a fused multiply-add elsewhere may round once instead of twice */
    CHECK_OP_CLOSE(b, "buffers", "fill 0.5 then axpy -3", got, want_y, COUNT, 0.0, 0.0);
    free(got), free(want_y);

    double sum = 0.0, want = 0.0;
    for (size_t i = 0; i < COUNT; i++) want += xs[i] * xs[i];
    CHECK(dt_backend_buffer_sum_squares(b, x, COUNT, &sum, &err) == 0);
    CHECK_CLOSE(sum, want, dt_backend_has(b, DT_BACKEND_HOST_MEMORY) ? 1e-12 : 1e-6, 0);
    CHECK(dt_backend_buffer_sum_squares(b, x, 0, &sum, &err) == 0);
    CHECK(sum == 0.0);
    /* a NaN shows in the sum of squares */
    host[0] = NAN;
    CHECK(dt_backend_buffer_upload(b, x, host, 1, &err) == 0);
    CHECK(dt_backend_buffer_sum_squares(b, x, COUNT, &sum, &err) == 0);
    CHECK(isnan(sum));
    dt_backend_buffer_free(b, x);
    dt_backend_buffer_free(b, y);
    free(host), free(xs);
}

/* Host memory for input slots, input_wait and the phase timers. */
void buffers_check_stream_entries(dt_backend *b, const backend_op_case *oc) {
    (void)oc;
    dt_error err = {{0}, 0};
    unsigned char *slot = dt_backend_host_alloc(b, 1 << 20, &err);
    CHECK_MSG(slot != NULL, "host_alloc: %s", err.message);
    if (slot) {
        memset(slot, 0xA5, 1 << 20); /* writable host memory */
        CHECK(slot[(1 << 20) - 1] == 0xA5);
        dt_backend_host_free(b, slot);
    }
    CHECK(dt_backend_input_wait(b, &err) == 0);
    if (dt_backend_has(b, DT_BACKEND_HOST_MEMORY))
        CHECK(dt_backend_compute_stream(b) == NULL);
    else
        CHECK(dt_backend_compute_stream(b) != NULL);
    /* the seconds between marks count to the phase entered; reset zeroes them */
    double seconds[DT_PHASE_COUNT] = {0};
    CHECK(dt_backend_phase_read(b, seconds, 1, &err) == 0);
    CHECK(dt_backend_phase_mark(b, DT_PHASE_ALLREDUCE, &err) == 0);
    struct timespec pause = {0, 30 * 1000 * 1000};
    nanosleep(&pause, NULL);
    CHECK(dt_backend_phase_mark(b, DT_PHASE_COMPUTE, &err) == 0);
    double after[DT_PHASE_COUNT] = {0};
    CHECK(dt_backend_phase_read(b, after, 0, &err) == 0);
    /* the CPU's marks are host times; a GPU's are stream times, near 0 for an idle stream */
    if (dt_backend_has(b, DT_BACKEND_HOST_MEMORY))
        CHECK_MSG(after[DT_PHASE_ALLREDUCE] >= 0.025 && after[DT_PHASE_ALLREDUCE] < 10,
                  "all-reduce phase %.3f s", after[DT_PHASE_ALLREDUCE]);
    else
        CHECK(after[DT_PHASE_ALLREDUCE] >= 0 && after[DT_PHASE_ALLREDUCE] < 10);
    double again[DT_PHASE_COUNT] = {0};
    CHECK(dt_backend_phase_read(b, again, 1, &err) == 0); /* not reset by the first read */
    CHECK(again[DT_PHASE_ALLREDUCE] == after[DT_PHASE_ALLREDUCE]);
    double zero[DT_PHASE_COUNT] = {0};
    CHECK(dt_backend_phase_read(b, zero, 0, &err) == 0);
    CHECK(zero[DT_PHASE_ALLREDUCE] == 0.0);
    CHECK(dt_backend_phase_mark(b, DT_PHASE_COUNT, &err) == -1);
}

/* Upload/download, four SGD updates (momentum first and later, nesterov, plain), axpy, the sum
 * of squares and fill on the other backend against the CPU's. */
void buffers_compare(dt_backend *cpu, dt_backend *other, const backend_op_case *oc) {
    const dt_test_tolerances *t = dt_test_tolerances_for(oc->precision);
    enum { N = 100003 };
    dt_error err = {0};
    uint64_t state = 1u;
    float *a = op_random_floats(N, -1, 1, &state), *g = op_random_floats(N, -2, 2, &state);
    float *m = op_random_floats(N, -0.5, 0.5, &state);
    float *ca = op_buffer_of(cpu, a, N), *ga = op_buffer_of(other, a, N);
    float *back = op_buffer_read(other, ga, N);
    op_compare(oc->precision, "buffer upload/download", back, a, N, t->exact);
    free(back);
    float *cg = op_buffer_of(cpu, g, N), *gg = op_buffer_of(other, g, N);
    float *cm = op_buffer_of(cpu, m, N), *gm = op_buffer_of(other, m, N);
    const dt_sgd_params variants[] = {
        {.lr = 0.1f, .momentum = 0.9f, .weight_decay = 5e-4f, .grad_scale = 0.5f, .first_step = 1},
        {.lr = 0.1f, .momentum = 0.9f, .weight_decay = 5e-4f, .grad_scale = 0.5f},
        {.lr = 0.05f, .momentum = 0.9f, .weight_decay = 1e-4f, .grad_scale = 1.0f, .nesterov = 1},
        {.lr = 0.05f, .momentum = 0.0f, .weight_decay = 1e-4f, .grad_scale = 0.25f}};
    for (size_t v = 0; v < sizeof variants / sizeof *variants; v++) {
        CHECK(dt_backend_sgd_step(cpu, &variants[v], ca, cg, cm, N, &err) == 0);
        CHECK_MSG(dt_backend_sgd_step(other, &variants[v], ga, gg, gm, N, &err) == 0, "%s",
                  err.message);
    }
    float *want = op_buffer_read(cpu, ca, N), *got = op_buffer_read(other, ga, N);
    op_compare(oc->precision, "sgd_step x4 (momentum, nesterov, plain)", got, want, N, t->exact);
    free(want), free(got);
    want = op_buffer_read(cpu, cm, N), got = op_buffer_read(other, gm, N);
    op_compare(oc->precision, "sgd_step momentum buffer", got, want, N, t->exact);
    free(want), free(got);
    CHECK(dt_backend_buffer_axpy(cpu, ca, -0.5f, cg, N, &err) == 0);
    CHECK(dt_backend_buffer_axpy(other, ga, -0.5f, gg, N, &err) == 0);
    want = op_buffer_read(cpu, ca, N), got = op_buffer_read(other, ga, N);
    op_compare(oc->precision, "buffer_axpy", got, want, N, t->exact);
    free(want), free(got);
    double cs = 0.0, gs = 0.0;
    CHECK(dt_backend_buffer_sum_squares(cpu, ca, N, &cs, &err) == 0);
    CHECK_MSG(dt_backend_buffer_sum_squares(other, ga, N, &gs, &err) == 0, "%s", err.message);
    printf("  %-4s %-44s error %.3g  tolerance %.3g\n", dt_precision_name(oc->precision),
           "buffer_sum_squares", fabs(gs - cs) / cs, 1e-12);
    CHECK_CLOSE(gs, cs, 1e-12, 0.0);
    CHECK(dt_backend_buffer_fill(other, ga, 0.25f, N, &err) == 0);
    got = op_buffer_read(other, ga, N);
    int wrong = 0;
    for (int i = 0; i < N; i++) wrong += got[i] != 0.25f;
    CHECK_INT_EQ(wrong, 0);
    free(got);
    dt_backend_buffer_free(cpu, ca), dt_backend_buffer_free(other, ga);
    dt_backend_buffer_free(cpu, cg), dt_backend_buffer_free(other, gg);
    dt_backend_buffer_free(cpu, cm), dt_backend_buffer_free(other, gm);
    free(a), free(g), free(m);
}
