/* The backend interface's functions (src/backend/backend.c) over a table that leaves entries
 * out: optional ones do nothing, required ones fail naming themselves; the argument checks every
 * backend needs are made before the table is called; capabilities come from the table's flags. */
#include <stdlib.h>
#include <string.h>

#include "../src/backend/backend_impl.h" /* stand-in tables: the table is the backends' own */
#include "check.h"
#include "dtrain/backend.h"

static int sgd_calls, guard_calls, phase_calls, tensor_calls, linear_calls;

static int counted_sgd(void *ctx, const dt_sgd_params *p, float *params, const float *grads,
                       float *momentum, size_t count, dt_error *err) {
    sgd_calls++;
    return 0;
}
static int counted_guard_reset(void *ctx, const dt_guard_state *state, int64_t halt_after,
                               dt_error *err) {
    guard_calls++;
    return 0;
}
static int counted_phase_mark(void *ctx, int phase, dt_error *err) {
    phase_calls++;
    return 0;
}
static dt_tensor *counted_tensor_create(void *ctx, int n, int c, int h, int w, dt_error *err) {
    tensor_calls++;
    return NULL;
}
static dt_layer *counted_linear_create(void *ctx, const dt_linear_desc *d, dt_error *err) {
    linear_calls++;
    return NULL;
}

static void check_empty_table(void) {
    static const dt_backend_ops empty = {.name = "empty"};
    dt_backend b = {&empty, NULL};
    dt_error err = {{0}, 0};
    CHECK_STR_EQ(dt_backend_name(&b), "empty");
    CHECK(!dt_backend_has(&b, DT_BACKEND_HOST_MEMORY));
    CHECK(dt_backend_has(&b, 0));
    /* optional entries: nothing to do */
    CHECK(dt_backend_compute_stream(&b) == NULL);
    CHECK(dt_backend_input_wait(&b, &err) == 0);
    CHECK(dt_backend_input_prefetch(&b, NULL, 0, &err) == 0);
    CHECK(dt_backend_phase_mark(&b, DT_PHASE_COMPUTE, &err) == 0);
    double seconds[DT_PHASE_COUNT] = {1.5, 2.5};
    CHECK(dt_backend_phase_read(&b, seconds, 1, &err) == 0);
    CHECK(seconds[0] == 1.5 && seconds[1] == 2.5);
    dt_backend_counters counters;
    memset(&counters, 0xAB, sizeof counters);
    dt_backend_read_counters(&b, &counters);
    CHECK(counters.host_waits == 0 && counters.input_waits == 0 &&
          counters.device_allocations == 0);
    dt_backend_set_wait_check(&b, NULL, NULL);
    dt_backend_params_changed(&b);
    dt_backend_buffer_free(&b, NULL);
    dt_backend_tensor_destroy(&b, NULL);
    dt_backend_layer_destroy(&b, NULL);
    dt_backend_free(&b);
    CHECK_STR_EQ(err.message, "");
    /* required entries: an error naming the backend and the entry */
    dt_sgd_params p = {.lr = 0.1f, .grad_scale = 1.0f};
    float x = 1.0f;
    CHECK(dt_backend_sgd_step(&b, &p, &x, &x, NULL, 1, &err) == -1);
    CHECK_STR_EQ(err.message, "internal: the empty backend has no sgd_step");
    CHECK(dt_backend_tensor_create(&b, 1, 1, 1, 1, &err) == NULL);
    CHECK_STR_EQ(err.message, "internal: the empty backend has no tensor_create");
    CHECK(dt_backend_synchronize(&b, &err) == -1);
    CHECK_STR_EQ(err.message, "internal: the empty backend has no synchronize");
    /* a zeroed handle (never created) frees nothing */
    dt_backend none = {0};
    dt_backend_free(&none);
}

/* The checks run in the wrappers, once: the backend never sees the call. */
static void check_shared_checks(void) {
    static const dt_backend_ops counted = {.name = "counted",
                                           .flags = DT_BACKEND_HOST_MEMORY,
                                           .sgd_step = counted_sgd,
                                           .guard_reset = counted_guard_reset,
                                           .phase_mark = counted_phase_mark,
                                           .tensor_create = counted_tensor_create,
                                           .linear_create = counted_linear_create};
    dt_backend b = {&counted, NULL};
    dt_error err = {{0}, 0};
    CHECK(dt_backend_has(&b, DT_BACKEND_HOST_MEMORY));
    CHECK(dt_backend_phase_mark(&b, DT_PHASE_COUNT, &err) == -1);
    CHECK_STR_EQ(err.message, "phase_mark: phase 2");
    CHECK(dt_backend_phase_mark(&b, -1, &err) == -1);
    CHECK(dt_backend_phase_mark(&b, DT_PHASE_ALLREDUCE, &err) == 0);
    CHECK_INT_EQ(phase_calls, 1);

    float x = 1.0f;
    dt_sgd_params p = {.lr = 0.1f, .momentum = 0.9f, .grad_scale = 1.0f};
    CHECK(dt_backend_sgd_step(&b, &p, &x, &x, NULL, 1, &err) == -1);
    CHECK_STR_EQ(err.message, "sgd_step: momentum 0.9 needs a momentum buffer");
    CHECK(dt_backend_sgd_step(&b, &p, &x, &x, &x, 1, &err) == 0);
    p.momentum = 0.0f;
    CHECK(dt_backend_sgd_step(&b, &p, &x, &x, NULL, 1, &err) == 0);
    CHECK_INT_EQ(sgd_calls, 2);

    dt_guard_state state = {.halted_step = -1};
    CHECK(dt_backend_guard_reset(&b, &state, 0, &err) == -1);
    CHECK_STR_EQ(err.message, "guard_reset: halt_after 0 is below 1");
    CHECK(dt_backend_guard_reset(&b, &state, 1, &err) == 0);
    CHECK_INT_EQ(guard_calls, 1);

    CHECK(dt_backend_tensor_create(&b, 2, 0, 4, 4, &err) == NULL);
    CHECK_STR_EQ(err.message, "tensor_create: shape 2x0x4x4 has a non-positive size");
    dt_backend_tensor_create(&b, 2, 3, 4, 4, &err);
    CHECK_INT_EQ(tensor_calls, 1);

    dt_linear_desc bad = {.batch = 2, .in_features = 0, .out_features = 10};
    CHECK(dt_backend_linear_create(&b, &bad, &err) == NULL);
    CHECK_STR_EQ(err.message, "linear_create: invalid description (batch 2, 0 -> 10 features)");
    CHECK_INT_EQ(linear_calls, 0);
}

/* The CPU backend leaves the entries it has no use for out, and says its buffers are host
 * memory; the allocator hooks the loader takes are its host_alloc/host_free. */
static void check_cpu_backend(void) {
    dt_backend_options opt = {.threads = 1, .precision = DT_PRECISION_FP32};
    dt_backend b;
    dt_error err = {{0}, 0};
    if (dt_backend_cpu_create(&opt, &b, &err) != 0) {
        CHECK_MSG(0, "cpu backend: %s", err.message);
        return;
    }
    CHECK_STR_EQ(dt_backend_name(&b), "cpu");
    CHECK(dt_backend_has(&b, DT_BACKEND_HOST_MEMORY));
    CHECK(dt_backend_compute_stream(&b) == NULL);
    CHECK(dt_backend_input_prefetch(&b, NULL, 0, &err) == 0);
    unsigned char *slot = dt_backend_host_alloc_hook(&b, 256, &err);
    CHECK(slot != NULL);
    if (slot) memset(slot, 1, 256);
    dt_backend_host_free_hook(&b, slot);
    dt_backend_free(&b);
}

int main(void) {
    check_empty_table();
    check_shared_checks();
    check_cpu_backend();
    return dt_test_summary("seam_wrappers");
}
