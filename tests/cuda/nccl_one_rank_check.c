/* The real NCCL path on one GPU (src/comm/nccl_api.c and device_comm_nccl.c, not the test double
 * of tests/test_device_comm.c): libnccl.so.2 loaded at run time, a one-rank communicator's init
 * through the device comm, bucketed all-reduces on its comm stream between compute-stream work
 * that writes and then reads the buckets (fill, all-reduce, wait, axpy: any reordering changes
 * the sum), the asynchronous-error poll of drain, and ncclCommAbort of a second communicator
 * within a deadline. Without a usable GPU it reports SKIPPED (exit 77), never passed; without
 * NCCL (or built without its header) it fails with the reason. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backends.h"
#include "check.h"
#include "dtrain/backend.h"
#include "dtrain/comm.h"
#include "dtrain/config.h"
#include "dtrain/device_comm.h"
#include "dtrain/platform.h"

enum { COUNT = 1 << 22, BUCKETS = 4, STEPS = 3 };

static int run_steps(const dt_backend *backend, dt_device_comm *dc, float *grads, float *sum,
                     dt_error *err) {
    const size_t per_bucket = COUNT / BUCKETS;
    for (int step = 0; step < STEPS; step++) {
        /* compute writes the gradients; each bucket's all-reduce must follow its write */
        for (int b = 0; b < BUCKETS; b++) {
            float *bucket = grads + (size_t)b * per_bucket;
            if (dt_backend_buffer_fill(backend, bucket, (float)(step + 1) * (float)(b + 1),
                                       per_bucket, err) ||
                dc->ops->allreduce_sum_float(dc->ctx, bucket, per_bucket, err))
                return -1;
        }
        /* the optimizer's stand-in reads them after every all-reduce */
        if (dc->ops->wait(dc->ctx, err) ||
            dt_backend_buffer_axpy(backend, sum, 1.0f, grads, COUNT, err))
            return -1;
    }
    return dc->ops->drain(dc->ctx, err);
}

int main(void) {
    char reason[256];
    if (dt_test_backend_unusable("cuda", reason, sizeof reason)) {
        printf("SKIPPED: %s\n", reason);
        return DT_TEST_SKIP;
    }
    dt_error err = {{0}, 0};
    const dt_nccl_api *api = dt_nccl_api_load(&err);
    if (!api) {
        printf("FAIL: %s\n", err.message);
        return 1;
    }
    int version = dt_nccl_loaded_version();
    printf("NCCL %d.%d.%d loaded at run time\n", version / 10000, (version % 10000) / 100,
           version % 100);

    dt_backend backend;
    dt_backend_options opt = {.device = 0, .precision = DT_PRECISION_FP32};
    dt_comm host;
    if (dt_backend_cuda_create(&opt, &backend, &err) || dt_comm_single_init(&host)) {
        printf("FAIL: CUDA backend: %s\n", err.message);
        return 1;
    }
    float *grads = dt_backend_buffer_alloc(&backend, COUNT, &err);
    float *sum = grads ? dt_backend_buffer_alloc(&backend, COUNT, &err) : NULL;
    CHECK_MSG(sum != NULL, "buffers: %s", err.message);
    dt_device_comm dc;
    double t0 = dt_monotonic_seconds();
    int rc = dt_device_comm_nccl_create(&host, &backend, 0, api, 60.0, &dc, &err);
    CHECK_MSG(rc == 0, "one-rank NCCL comm: %s", err.message);
    if (rc == 0 && sum) {
        printf("one-rank communicator initialised in %.2f s\n", dt_monotonic_seconds() - t0);
        t0 = dt_monotonic_seconds();
        CHECK_MSG(run_steps(&backend, &dc, grads, sum, &err) == 0, "steps: %s", err.message);
        printf("%d steps of %d bucketed all-reduces (%d floats) in %.3f s\n", STEPS, BUCKETS, COUNT,
               dt_monotonic_seconds() - t0);
        float *host_sum = malloc(COUNT * sizeof *host_sum);
        if (host_sum && dt_backend_buffer_download(&backend, host_sum, sum, COUNT, &err) == 0) {
            long wrong = 0;
            for (size_t i = 0; i < COUNT; i++) {
                /* steps 1+2+3 times the bucket's factor: one rank sums to itself */
                float want = 6.0f * (float)(i / (COUNT / BUCKETS) + 1);
                wrong += host_sum[i] != want;
            }
            CHECK_MSG(wrong == 0, "%ld of %d summed values wrong (compute/comm ordering)", wrong,
                      COUNT);
            printf("ordering: every value as expected\n");
        } else {
            CHECK_MSG(0, "download: %s", err.message);
        }
        free(host_sum);
        dc.ops->destroy(dc.ctx);
    }
    /* a fresh communicator: the asynchronous-error poll says healthy, and ncclCommAbort (the
     * error path of every rank) returns */
    unsigned char id[4096];
    void *comm = NULL;
    CHECK(api->unique_id_bytes <= sizeof id);
    if (api->get_unique_id(id, &err) || api->comm_init_rank(&comm, 1, id, 0, 0, &err)) {
        CHECK_MSG(0, "second communicator: %s", err.message);
    } else {
        int failed = -1;
        CHECK_MSG(api->comm_get_async_error(comm, &failed, &err) == 0 && failed == 0,
                  "async error poll: %s", err.message);
        t0 = dt_monotonic_seconds();
        api->comm_abort(comm);
        double took = dt_monotonic_seconds() - t0;
        printf("ncclCommAbort returned in %.2f s\n", took);
        CHECK_MSG(took < 30.0, "ncclCommAbort took %.1f s", took);
    }
    if (sum) dt_backend_buffer_free(&backend, sum);
    if (grads) dt_backend_buffer_free(&backend, grads);
    dt_backend_free(&backend);
    return dt_test_summary("nccl_one_rank");
}
