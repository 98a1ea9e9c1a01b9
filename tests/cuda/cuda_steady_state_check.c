/* On a GPU: the training step as the trainer queues it (statistics backup, forward, loss,
 * backward, input wait, the next batch's input prefetch, non-finite guard, statistics restore,
 * guarded SGD) on the whole model,
 * checking that steady-state steps that do not log neither wait on the host for the device nor
 * allocate device memory (the backend's counters; input waits, the throttle on the input
 * buffers, printed apart); that a NaN gradient step is skipped on the device (weights, momentum
 * and running statistics unchanged) and read back late; and that runtime.deterministic runs are
 * bitwise repeatable. Without a GPU (or the CUDA backend) it reports SKIPPED (exit 77). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backends.h"
#include "check.h"
#include "dtrain/backend.h"
#include "dtrain/config.h"
#include "dtrain/model.h"

enum { BATCH = 8, SIZE = 64, CLASSES = 10, STEPS = 8, WARMUP = 2, NAN_STEP = 5 };

typedef struct run {
    dt_backend backend;
    dt_model *model;
    float *backup;
    uint8_t *pixels; /* host_alloc memory, STEPS batches */
    dt_backend_counters before, after;
    float *params_before_nan, *params_after_nan, *stats_before_nan, *stats_after_nan;
} run;

static int step(run *r, int s, dt_error *err) {
    const float mean[3] = {0.485f, 0.456f, 0.406f}, std[3] = {0.229f, 0.224f, 0.225f};
    float weights[BATCH];
    int32_t labels[BATCH];
    for (int i = 0; i < BATCH; i++) weights[i] = 1.0f, labels[i] = (i * 7 + s) % CLASSES;
    size_t ns = dt_model_stats_count(r->model), offset, count;
    dt_model_trainable_span(r->model, &offset, &count);
    float *grads = dt_model_grads(r->model) + offset;
    const size_t batch_bytes = (size_t)BATCH * SIZE * SIZE * 3;
    const uint8_t *batch = r->pixels + (size_t)s * batch_bytes;
    dt_sgd_params p = {.lr = 0.05f,
                       .momentum = 0.9f,
                       .weight_decay = 5e-4f,
                       .grad_scale = 1.0f,
                       .first_step = s == 0,
                       .guarded = 1};
    return dt_backend_buffer_fill(&r->backend, r->backup, 0.0f, ns, err) ||
                   dt_backend_buffer_axpy(&r->backend, r->backup, 1.0f, dt_model_stats(r->model),
                                          ns, err) ||
                   dt_model_forward(r->model, batch, mean, std, 1, err) ||
                   dt_model_loss(r->model, labels, weights, 1.0f / BATCH, NULL, err) ||
                   dt_model_backward(r->model, 0, 1, err) ||
                   dt_backend_input_wait(&r->backend, err) ||
                   (s + 1 < STEPS && dt_backend_input_prefetch(&r->backend, batch + batch_bytes,
                                                               batch_bytes, err)) ||
                   (s == NAN_STEP &&
                    dt_backend_buffer_fill(&r->backend, grads + 17, NAN, 1, err)) ||
                   dt_backend_guard_check(&r->backend, grads, count, s, err) ||
                   dt_backend_guard_restore(&r->backend, dt_model_stats(r->model), r->backup, ns,
                                            err) ||
                   dt_backend_sgd_step(&r->backend, &p, dt_model_params(r->model) + offset, grads,
                                       dt_model_momentum(r->model) + offset, count, err)
               ? -1
               : 0;
}

static int train(run *r, const float *init_params, const float *init_stats, int deterministic,
                 dt_error *err) {
    dt_backend_options opt = {
        .device = 0, .precision = DT_PRECISION_FP32, .deterministic = deterministic};
    const dt_model_options mopt = {.batch = BATCH, .image_size = SIZE, .n_classes = CLASSES};
    if (dt_backend_cuda_create(&opt, &r->backend, err) ||
        dt_model_create(&r->backend, &mopt, &r->model, err) ||
        dt_model_upload_state(r->model, init_params, init_stats, err))
        return -1;
    size_t pixel_bytes = (size_t)STEPS * BATCH * SIZE * SIZE * 3;
    size_t np = dt_model_param_count(r->model), ns = dt_model_stats_count(r->model);
    if (!(r->backup = dt_backend_buffer_alloc(&r->backend, ns, err)) ||
        !(r->pixels = dt_backend_host_alloc(&r->backend, pixel_bytes, err)))
        return -1;
    uint64_t state = 0x9e3779b9u;
    for (size_t i = 0; i < pixel_bytes; i++) {
        state ^= state << 13, state ^= state >> 7, state ^= state << 17;
        r->pixels[i] = (uint8_t)(state >> 24);
    }
    dt_guard_state never = {.halted_step = -1};
    if (dt_backend_guard_reset(&r->backend, &never, 1000, err)) return -1;
    r->params_before_nan = malloc(np * sizeof(float));
    r->params_after_nan = malloc(np * sizeof(float));
    r->stats_before_nan = malloc(ns * sizeof(float));
    r->stats_after_nan = malloc(ns * sizeof(float));
    for (int s = 0; s < STEPS; s++) {
        if (s == WARMUP) dt_backend_read_counters(&r->backend, &r->before);
        if (s == NAN_STEP)
            dt_backend_read_counters(&r->backend, &r->after); /* before the reads below */
        if (s == NAN_STEP &&
            dt_model_download_state(r->model, r->params_before_nan, r->stats_before_nan, err))
            return -1;
        if (step(r, s, err)) return -1;
        if (s == NAN_STEP &&
            dt_model_download_state(r->model, r->params_after_nan, r->stats_after_nan, err))
            return -1;
    }
    return dt_backend_synchronize(&r->backend, err);
}

static void run_free(run *r) {
    if (r->model) dt_model_destroy(r->model);
    if (r->backup) dt_backend_buffer_free(&r->backend, r->backup);
    if (r->pixels) dt_backend_host_free(&r->backend, r->pixels);
    if (r->backend.ops) dt_backend_free(&r->backend);
    free(r->params_before_nan), free(r->params_after_nan), free(r->stats_before_nan),
        free(r->stats_after_nan);
}

int main(void) {
    char reason[256];
    if (dt_test_backend_unusable("cuda", reason, sizeof reason)) {
        printf("SKIPPED: %s\n", reason);
        return DT_TEST_SKIP;
    }
    dt_error err = {0};
    dt_backend cpu;
    dt_model *init = NULL;
    dt_backend_options copt = {.threads = 2};
    const dt_model_options mopt = {.batch = BATCH, .image_size = SIZE, .n_classes = CLASSES};
    if (dt_backend_cpu_create(&copt, &cpu, &err) || dt_model_create(&cpu, &mopt, &init, &err) ||
        dt_model_init_weights(init, 11, &err)) {
        fprintf(stderr, "initial weights: %s\n", err.message);
        return 1;
    }
    size_t np = dt_model_param_count(init), ns = dt_model_stats_count(init);
    float *params = malloc(np * sizeof(float)), *stats = malloc(ns * sizeof(float));
    CHECK(params && stats && dt_model_download_state(init, params, stats, &err) == 0);

    run a = {0}, b = {0};
    CHECK_MSG(train(&a, params, stats, 1, &err) == 0, "first run: %s", err.message);
    CHECK_MSG(train(&b, params, stats, 1, &err) == 0, "second run: %s", err.message);
    /* steady state: steps WARMUP..NAN_STEP-1 queued without a host wait or an allocation */
    printf("steady-state steps %d..%d: %llu host waits, %llu device allocations, %llu input "
           "waits\n",
           WARMUP, NAN_STEP - 1, (unsigned long long)(a.after.host_waits - a.before.host_waits),
           (unsigned long long)(a.after.device_allocations - a.before.device_allocations),
           (unsigned long long)(a.after.input_waits - a.before.input_waits));
    CHECK(a.after.host_waits == a.before.host_waits);
    CHECK(a.after.device_allocations == a.before.device_allocations);
    /* the NaN step changed nothing on the device; the late read names it */
    if (a.params_before_nan && a.params_after_nan) {
        CHECK(memcmp(a.params_before_nan, a.params_after_nan, np * sizeof(float)) == 0);
        CHECK(memcmp(a.stats_before_nan, a.stats_after_nan, ns * sizeof(float)) == 0);
    }
    dt_guard_state g;
    CHECK(dt_backend_guard_read(&a.backend, &g, &err) == 0);
    CHECK(g.total == 1 && g.n_records == 1 && g.records[0].step == NAN_STEP &&
          g.records[0].index == 17 && g.records[0].is_nan == 1 && g.halted_step == -1);
    printf("NaN gradient at step %d: %s on the device, read late (%lld skipped step(s) counted)\n",
           NAN_STEP,
           a.params_before_nan && a.params_after_nan &&
                   memcmp(a.params_before_nan, a.params_after_nan, np * sizeof(float)) == 0
               ? "skipped"
               : "NOT skipped",
           (long long)g.total);
    /* deterministic engines: the two runs agree bit for bit */
    float *pa = malloc(np * sizeof(float)), *pb = malloc(np * sizeof(float));
    CHECK(pa && pb && dt_model_download_state(a.model, pa, stats, &err) == 0 &&
          dt_model_download_state(b.model, pb, stats, &err) == 0);
    int same = pa && pb && memcmp(pa, pb, np * sizeof(float)) == 0;
    printf("runtime.deterministic: two %d-step runs %s\n", STEPS,
           same ? "bitwise equal" : "DIFFER");
    CHECK_MSG(same, "runtime.deterministic: two runs differ");
    free(pa), free(pb), free(params), free(stats);
    run_free(&a);
    run_free(&b);
    dt_model_destroy(init);
    dt_backend_free(&cpu);
    return dt_test_summary("cuda_steady_state");
}
