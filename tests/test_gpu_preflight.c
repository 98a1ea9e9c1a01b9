/* The GPU start-up check (src/backend/gpu_query.c: dt_gpu_query_check) over fake versions: the
 * driver against the CUDA runtime's requirement with both numbers in the message, cuDNN missing,
 * too old or built for another CUDA major (a cu12 libcudnn.so.9 under a CUDA 13 runtime),
 * cuBLAS missing, NCCL missing or too old only when several GPU ranks need it; the hints naming
 * the pip wheels; runtime.device auto falling back with that line and cuda refusing with it. */
#include <stdio.h>
#include <string.h>

#include "../src/train/device_choice.h"
#include "check.h"

/* A machine where everything fits a CUDA 13.0 runtime: driver 580 (CUDA 13.0), cuDNN 9.10 for
 * CUDA 13, cuBLAS 13.0.2, NCCL 2.27.3. */
static dt_gpu_query good(void) {
    dt_gpu_query q = {.count = 1,
                      .status = DT_GPU_AVAILABLE,
                      .driver_version = 13000,
                      .runtime_version = 13000,
                      .cudnn_version = 91000,
                      .cudnn_cudart_version = 13000,
                      .cublas_version = 130002,
                      .nccl_version = 22703};
    return q;
}

/* q checked; its status is expected, and its reason holds every one of the texts. */
static void expect_check(dt_gpu_query q, dt_gpu_status status, const char *texts[], int n) {
    dt_gpu_query_check(&q);
    char reason[1024];
    dt_gpu_query_reason(&q, reason, sizeof reason);
    CHECK_MSG(q.status == status, "status %d, expected %d: %s", (int)q.status, (int)status, reason);
    for (int i = 0; i < n; i++)
        CHECK_MSG(strstr(reason, texts[i]) != NULL, "'%s' not in: %s", texts[i], reason);
    CHECK(strchr(reason, '\n') == NULL);
}

static void test_passes(void) {
    expect_check(good(), DT_GPU_AVAILABLE, NULL, 0);
    dt_gpu_query q = good();
    q.driver_version = 13020; /* a newer driver of the same major, or a newer major */
    expect_check(q, DT_GPU_AVAILABLE, NULL, 0);
    q.driver_version = 14000;
    expect_check(q, DT_GPU_AVAILABLE, NULL, 0);
    q = good();
    q.nccl_version = 0; /* one GPU: NCCL not needed */
    expect_check(q, DT_GPU_AVAILABLE, NULL, 0);
    q = good();
    q.runtime_version = 12040; /* a CUDA 12.4 build with cu12 libraries on a 12.2 driver */
    q.driver_version = 12020;
    q.cudnn_cudart_version = 12080;
    expect_check(q, DT_GPU_AVAILABLE, NULL, 0);
}

static void test_driver_too_old(void) {
    dt_gpu_query q = good();
    q.driver_version = 12080; /* an R570 driver */
    const char *texts[] = {"the NVIDIA driver (CUDA 12.8, cudaDriverGetVersion 12080) is too old",
                           "CUDA runtime 13.0 (13000)", "needs a driver for CUDA 13.0 or newer",
                           "R580"};
    expect_check(q, DT_GPU_DRIVER_TOO_OLD, texts, 4);
}

static void test_cudnn(void) {
    dt_gpu_query q = good();
    q.cudnn_version = 0;
    const char *missing[] = {"libcudnn.so.9 (cuDNN) could not be loaded",
                             "pip install nvidia-cudnn-cu13", "LD_LIBRARY_PATH"};
    expect_check(q, DT_GPU_LIBRARY_MISSING, missing, 3);
    q = good();
    q.cudnn_version = 90002;
    const char *old[] = {"cuDNN 9.0.2 is older than the 9.1.0 dtrain needs", "nvidia-cudnn-cu13"};
    expect_check(q, DT_GPU_LIBRARY_MISMATCH, old, 2);
    q = good();
    q.cudnn_cudart_version = 12090; /* nvidia-cudnn-cu12's libcudnn.so.9 */
    const char *cu12[] = {"libcudnn.so.9 loaded (cuDNN 9.10.0) is built for CUDA 12.9",
                          "not for this dtrain's CUDA 13 runtime", "nvidia-cudnn-cu13"};
    expect_check(q, DT_GPU_LIBRARY_MISMATCH, cu12, 3);
}

static void test_cublas_and_nccl(void) {
    dt_gpu_query q = good();
    q.cublas_version = 0;
    const char *cublas[] = {"libcublas.so (cuBLAS and cuBLASLt) could not be loaded",
                            "pip install nvidia-cublas`"};
    expect_check(q, DT_GPU_LIBRARY_MISSING, cublas, 2);
    q = good();
    q.nccl_needed = 1;
    expect_check(q, DT_GPU_AVAILABLE, NULL, 0);
    q.nccl_version = 0;
    const char *nccl[] = {"libnccl.so.2 (NCCL, for several GPU ranks) could not be loaded",
                          "pip install nvidia-nccl-cu13", "NCCL_ROOT/lib"};
    expect_check(q, DT_GPU_LIBRARY_MISSING, nccl, 3);
    q.nccl_version = 21703;
    const char *old[] = {"NCCL 2.17.3 is older than the 2.18"};
    expect_check(q, DT_GPU_LIBRARY_MISMATCH, old, 1);
    /* a query that already failed is left as it is */
    q = good();
    q.status = DT_GPU_NO_DEVICE;
    q.count = 0;
    q.cudnn_version = 0;
    expect_check(q, DT_GPU_NO_DEVICE, NULL, 0);
}

static void test_hints(void) {
    char buf[512];
    CHECK(dt_gpu_library_hint("libcublasLt.so.13", 13, buf, sizeof buf) != NULL &&
          strstr(buf, "`pip install nvidia-cublas`") != NULL);
    /* CUDA 12's wheels carry the -cu12 suffix */
    CHECK(dt_gpu_library_hint("libcublas.so.12", 12, buf, sizeof buf) != NULL &&
          strstr(buf, "`pip install nvidia-cublas-cu12`") != NULL);
    CHECK(dt_gpu_library_hint("libcudnn.so.9", 12, buf, sizeof buf) != NULL &&
          strstr(buf, "nvidia-cudnn-cu12") != NULL);
    CHECK(dt_gpu_library_hint("libcudart.so.13", 13, buf, sizeof buf) != NULL);
    CHECK(dt_gpu_library_hint("libdnnl.so.2", 13, buf, sizeof buf) == NULL);
    CHECK(dt_gpu_library_hint("", 13, buf, sizeof buf) == NULL);
}

/* auto trains on the CPU with the check's line; cuda is a usage error with it. */
static void test_device_choice(void) {
    dt_gpu_query q = good();
    q.cudnn_cudart_version = 12090;
    dt_gpu_query_check(&q);
    dt_device_request req = {.kind = DT_DEVICE_AUTO, .local_size = 1, .cuda_backend_built = 1};
    dt_device_choice choice;
    dt_error err = {{0}, 0};
    CHECK(dt_device_choose(&req, &q, &choice, &err) == 0);
    CHECK_INT_EQ(choice.kind, DT_DEVICE_CPU);
    CHECK_MSG(strstr(choice.fallback_reason, "runtime.device=auto: training on the CPU: the "
                                             "libcudnn.so.9 loaded") != NULL &&
                  strstr(choice.fallback_reason, "nvidia-cudnn-cu13") != NULL,
              "%s", choice.fallback_reason);
    req.kind = DT_DEVICE_CUDA;
    CHECK(dt_device_choose(&req, &q, &choice, &err) == -1);
    CHECK_INT_EQ(err.exit_code, DT_EXIT_USAGE);
    CHECK_MSG(strstr(err.message, "runtime.device: 'cuda', but the libcudnn.so.9 loaded") != NULL &&
                  strstr(err.message, "nvidia-cudnn-cu13") != NULL,
              "%s", err.message);
}

int main(void) {
    test_passes();
    test_driver_too_old();
    test_cudnn();
    test_cublas_and_nccl();
    test_hints();
    test_device_choice();
    return dt_test_summary("gpu_preflight");
}
