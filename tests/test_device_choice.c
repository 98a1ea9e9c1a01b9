/* Device choice (src/train/device_choice.c) with the GPU list injected: runtime.device auto, cpu
 * and cuda against 0, 1 and several GPUs, ranks per node against GPUs, CUDA_VISIBLE_DEVICES in
 * the messages, the one-line reason for falling back to the CPU; the mapping from the CUDA
 * runtime's error codes to those reasons; two ranks on one GPU found from their PCI bus ids. */
#include <stdlib.h>
#include <string.h>

#include "../src/train/device_choice.h"
#include "check.h"

static dt_gpu_query gpus_with(int count, dt_gpu_status status) {
    dt_gpu_query q = {.count = count, .status = status};
    q.driver_version = status == DT_GPU_NO_DRIVER ? 0 : 12040;
    q.runtime_version = 13000;
    if (status == DT_GPU_QUERY_FAILED) strcpy(q.detail, "unknown error (cudaErrorUnknown)");
    return q;
}

static dt_device_request request(dt_device_kind kind, int local_rank, int local_size) {
    return (dt_device_request){
        .kind = kind, .local_rank = local_rank, .local_size = local_size, .cuda_backend_built = 1};
}

/* The choice and the error of one case. */
static int choose(dt_device_request req, dt_gpu_query gpus, dt_device_choice *out, dt_error *err) {
    memset(err, 0, sizeof *err);
    return dt_device_choose(&req, &gpus, out, err);
}

static void test_cpu(void) {
    dt_device_choice c;
    dt_error err = {{0}, 0};
    dt_device_request req = request(DT_DEVICE_CPU, 0, 1);
    CHECK(dt_device_choose(&req, NULL, &c, &err) == 0); /* no GPU query at all */
    CHECK_INT_EQ(c.kind, DT_DEVICE_CPU);
    CHECK_STR_EQ(c.fallback_reason, "");
}

static void test_no_usable_gpu(void) {
    struct {
        dt_gpu_status status;
        const char *reason;
    } cases[] = {
        {DT_GPU_NOT_BUILT, "built without the CUDA toolkit"},
        {DT_GPU_NO_DRIVER, "no NVIDIA driver found"},
        {DT_GPU_DRIVER_TOO_OLD, "the NVIDIA driver (CUDA 12.4, cudaDriverGetVersion 12040) is too "
                                "old for this build's CUDA runtime 13.0 (13000)"},
        {DT_GPU_NO_DEVICE, "no GPU visible"},
        {DT_GPU_QUERY_FAILED, "could not list the GPUs: unknown error (cudaErrorUnknown)"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        dt_device_choice c;
        dt_error err;
        dt_gpu_query q = gpus_with(0, cases[i].status);
        CHECK(choose(request(DT_DEVICE_AUTO, 0, 1), q, &c, &err) == 0);
        CHECK_INT_EQ(c.kind, DT_DEVICE_CPU);
        CHECK_MSG(strstr(c.fallback_reason, "runtime.device=auto: training on the CPU: ") ==
                          c.fallback_reason &&
                      strstr(c.fallback_reason, cases[i].reason) != NULL,
                  "auto, status %d: '%s'", (int)cases[i].status, c.fallback_reason);
        CHECK(strchr(c.fallback_reason, '\n') == NULL); /* one line */
        CHECK(choose(request(DT_DEVICE_CUDA, 0, 1), q, &c, &err) == -1);
        CHECK_INT_EQ(err.exit_code, DT_EXIT_USAGE);
        CHECK_MSG(strstr(err.message, "runtime.device: 'cuda', but ") != NULL &&
                      strstr(err.message, cases[i].reason) != NULL,
                  "cuda, status %d: '%s'", (int)cases[i].status, err.message);
    }
    /* GPUs present but no CUDA backend in this build */
    dt_device_request req = request(DT_DEVICE_AUTO, 0, 1);
    req.cuda_backend_built = 0;
    dt_device_choice c;
    dt_error err;
    CHECK(choose(req, gpus_with(2, DT_GPU_AVAILABLE), &c, &err) == 0);
    CHECK_INT_EQ(c.kind, DT_DEVICE_CPU);
    CHECK(strstr(c.fallback_reason, "built without the CUDA backend") != NULL);
    req.kind = DT_DEVICE_CUDA;
    CHECK(choose(req, gpus_with(2, DT_GPU_AVAILABLE), &c, &err) == -1);
    CHECK_INT_EQ(err.exit_code, DT_EXIT_USAGE);
    /* CUDA_VISIBLE_DEVICES hiding every GPU is named */
    req = request(DT_DEVICE_CUDA, 0, 1);
    req.cuda_visible_devices = "";
    CHECK(choose(req, gpus_with(0, DT_GPU_NO_DEVICE), &c, &err) == -1);
    CHECK_MSG(strstr(err.message, "no GPU visible (NVIDIA driver CUDA 12.4) "
                                  "(CUDA_VISIBLE_DEVICES=)") != NULL,
              "%s", err.message);
}

static void test_gpu_per_rank(void) {
    dt_device_choice c;
    dt_error err;
    const dt_device_kind kinds[2] = {DT_DEVICE_AUTO, DT_DEVICE_CUDA};
    for (int k = 0; k < 2; k++) {
        /* one rank, one GPU; one rank of eight GPUs takes GPU 0 */
        CHECK(choose(request(kinds[k], 0, 1), gpus_with(1, DT_GPU_AVAILABLE), &c, &err) == 0);
        CHECK(c.kind == DT_DEVICE_CUDA && c.device == 0);
        CHECK_STR_EQ(c.fallback_reason, "");
        CHECK(choose(request(kinds[k], 0, 1), gpus_with(8, DT_GPU_AVAILABLE), &c, &err) == 0);
        CHECK(c.kind == DT_DEVICE_CUDA && c.device == 0);
        /* several ranks: rank r of the node takes GPU r, never r % gpus */
        for (int r = 0; r < 4; r++) {
            CHECK(choose(request(kinds[k], r, 4), gpus_with(4, DT_GPU_AVAILABLE), &c, &err) == 0);
            CHECK(c.kind == DT_DEVICE_CUDA && c.device == r);
            CHECK(choose(request(kinds[k], r, 4), gpus_with(8, DT_GPU_AVAILABLE), &c, &err) == 0);
            CHECK_INT_EQ(c.device, r);
        }
        /* one GPU visible to each of 2 ranks (per-rank binding): GPU 0 each */
        CHECK(choose(request(kinds[k], 1, 2), gpus_with(1, DT_GPU_AVAILABLE), &c, &err) == 0);
        CHECK(c.kind == DT_DEVICE_CUDA && c.device == 0);
        /* more ranks than GPUs (and more than one GPU): an error naming both counts */
        CHECK(choose(request(kinds[k], 2, 3), gpus_with(2, DT_GPU_AVAILABLE), &c, &err) == -1);
        CHECK_INT_EQ(err.exit_code, DT_EXIT_USAGE);
        CHECK_MSG(strstr(err.message, "3 ranks on this node but 2 GPUs visible") != NULL, "%s",
                  err.message);
    }
    dt_device_request req = request(DT_DEVICE_CUDA, 0, 4);
    req.cuda_visible_devices = "1,3";
    CHECK(choose(req, gpus_with(2, DT_GPU_AVAILABLE), &c, &err) == -1);
    CHECK_MSG(strstr(err.message, "4 ranks on this node but 2 GPUs visible to each "
                                  "(CUDA_VISIBLE_DEVICES=1,3)") != NULL,
              "%s", err.message);
}

static void test_cuda_error_mapping(void) {
    CHECK_INT_EQ(dt_gpu_status_from_cuda(0, 13000), DT_GPU_AVAILABLE);
    CHECK_INT_EQ(dt_gpu_status_from_cuda(35, 0), DT_GPU_NO_DRIVER); /* no libcuda at all */
    CHECK_INT_EQ(dt_gpu_status_from_cuda(35, 12020), DT_GPU_DRIVER_TOO_OLD);
    CHECK_INT_EQ(dt_gpu_status_from_cuda(803, 12020), DT_GPU_DRIVER_TOO_OLD);
    CHECK_INT_EQ(dt_gpu_status_from_cuda(804, 12020), DT_GPU_DRIVER_TOO_OLD);
    CHECK_INT_EQ(dt_gpu_status_from_cuda(100, 13000), DT_GPU_NO_DEVICE);
    CHECK_INT_EQ(dt_gpu_status_from_cuda(999, 13000), DT_GPU_QUERY_FAILED);
    /* this build's own query is consistent: GPUs exactly when available */
    dt_gpu_query q;
    dt_backend_cuda_query(&q);
    CHECK((q.count > 0) == (q.status == DT_GPU_AVAILABLE));
    char reason[200];
    CHECK(strlen(dt_gpu_query_reason(&q, reason, sizeof reason)) > 0);
#ifndef DTRAIN_HAVE_CUDA
    CHECK_INT_EQ(q.status, DT_GPU_NOT_BUILT);
#endif
}

static void test_distinct_gpus(void) {
    dt_error err = {{0}, 0};
    dt_rank_gpu ranks[4] = {{"node-a", "0000:17:00.0", 0},
                            {"node-a", "0000:65:00.0", 0},
                            {"node-b", "0000:17:00.0", 2},
                            {"node-b", "0000:65:00.0", 2}};
    CHECK(dt_device_check_distinct(ranks, 4, 2, &err) == 0);
    /* Two nodes with one host name: the node from MPI tells them apart. */
    dt_rank_gpu same_name[2] = {{"node", "0000:17:00.0", 0}, {"node", "0000:17:00.0", 1}};
    CHECK(dt_device_check_distinct(same_name, 2, 1, &err) == 0);
    strcpy(ranks[3].pci_bus, "0000:17:00.0"); /* ranks 2 and 3 on one GPU of node-b */
    CHECK(dt_device_check_distinct(ranks, 4, 2, &err) == -1);
    CHECK_INT_EQ(err.exit_code, DT_EXIT_USAGE);
    CHECK_MSG(strstr(err.message, "ranks 2 and 3 on node-b would share GPU 0000:17:00.0") != NULL,
              "%s", err.message);
}

int main(void) {
    test_cpu();
    test_no_usable_gpu();
    test_gpu_per_rank();
    test_cuda_error_mapping();
    test_distinct_gpus();
    return dt_test_summary("device_choice");
}
