/* Reading the CUDA runtime's answer about GPUs: cudaGetDeviceCount's error code (with the driver
 * version) mapped to a reason, and that reason as one line for the log or an error. Pure C, built
 * with or without the toolkit: the CUDA error codes are CUDA's documented numbers. */
#include <stdio.h>

#include "dtrain/backend.h"
#include "dtrain/gpu.h"

enum {
    CUDA_SUCCESS_CODE = 0,
    CUDA_ERROR_INSUFFICIENT_DRIVER = 35, /* cudaErrorInsufficientDriver */
    CUDA_ERROR_NO_DEVICE = 100,          /* cudaErrorNoDevice */
    CUDA_ERROR_SYSTEM_DRIVER_MISMATCH = 803,
    CUDA_ERROR_COMPAT_NOT_SUPPORTED = 804,
};

dt_gpu_status dt_gpu_status_from_cuda(int cuda_error, int driver_version) {
    switch (cuda_error) {
    case CUDA_SUCCESS_CODE:
        return DT_GPU_AVAILABLE;
    case CUDA_ERROR_INSUFFICIENT_DRIVER:
        /* also what the runtime says when there is no driver at all: the version tells */
        return driver_version == 0 ? DT_GPU_NO_DRIVER : DT_GPU_DRIVER_TOO_OLD;
    case CUDA_ERROR_SYSTEM_DRIVER_MISMATCH:
    case CUDA_ERROR_COMPAT_NOT_SUPPORTED:
        return DT_GPU_DRIVER_TOO_OLD;
    case CUDA_ERROR_NO_DEVICE:
        return DT_GPU_NO_DEVICE;
    default:
        return DT_GPU_QUERY_FAILED;
    }
}

static void version_text(int version, char *buf, size_t size) {
    snprintf(buf, size, "%d.%d", version / 1000, (version % 1000) / 10);
}

/* "9.1.0" for 90100 (cuDNN 9's and cuBLAS's 10000 * major + 100 * minor + patch) */
static void library_version_text(int version, char *buf, size_t size) {
    snprintf(buf, size, "%d.%d.%d", version / 10000, (version % 10000) / 100, version % 100);
}

static void missing(dt_gpu_query *q, const char *soname, const char *what) {
    char hint[320];
    q->status = DT_GPU_LIBRARY_MISSING;
    snprintf(q->detail, sizeof q->detail, "%s (%s) could not be loaded; provide %s", soname, what,
             dt_gpu_library_hint(soname, q->runtime_version / 1000, hint, sizeof hint));
}

void dt_gpu_query_check(dt_gpu_query *q) {
    if (q->status != DT_GPU_AVAILABLE) return;
    char have[16], need[16], hint[320];
    int runtime_major = q->runtime_version / 1000;
    /* minor-version compatibility: any driver of the runtime's CUDA major or newer will do */
    if (q->driver_version < runtime_major * 1000) {
        q->status = DT_GPU_DRIVER_TOO_OLD;
        return;
    }
    if (q->cudnn_version <= 0) {
        missing(q, "libcudnn.so.9", "cuDNN");
        return;
    }
    library_version_text(q->cudnn_version, have, sizeof have);
    if (q->cudnn_version < DT_CUDNN_MIN_VERSION) {
        library_version_text(DT_CUDNN_MIN_VERSION, need, sizeof need);
        q->status = DT_GPU_LIBRARY_MISMATCH;
        snprintf(q->detail, sizeof q->detail, "cuDNN %s is older than the %s dtrain needs; use %s",
                 have, need,
                 dt_gpu_library_hint("libcudnn.so.9", runtime_major, hint, sizeof hint));
        return;
    }
    if (q->cudnn_cudart_version / 1000 != runtime_major) {
        version_text(q->cudnn_cudart_version, need, sizeof need);
        q->status = DT_GPU_LIBRARY_MISMATCH;
        snprintf(q->detail, sizeof q->detail,
                 "the libcudnn.so.9 loaded (cuDNN %s) is built for CUDA %s, not for this "
                 "dtrain's CUDA %d runtime; use %s",
                 have, need, runtime_major,
                 dt_gpu_library_hint("libcudnn.so.9", runtime_major, hint, sizeof hint));
        return;
    }
    if (q->cublas_version <= 0) {
        missing(q, "libcublas.so", "cuBLAS and cuBLASLt");
        return;
    }
    if (q->nccl_needed && q->nccl_version <= 0) {
        missing(q, "libnccl.so.2", "NCCL, for several GPU ranks");
        return;
    }
    if (q->nccl_needed && q->nccl_version < DT_NCCL_MIN_VERSION) {
        library_version_text(q->nccl_version, have, sizeof have);
        q->status = DT_GPU_LIBRARY_MISMATCH;
        snprintf(q->detail, sizeof q->detail, "NCCL %s is older than the 2.18 dtrain needs; use %s",
                 have, dt_gpu_library_hint("libnccl.so.2", runtime_major, hint, sizeof hint));
    }
}

const char *dt_gpu_query_reason(const dt_gpu_query *q, char *buf, size_t size) {
    char driver[16], runtime[16];
    version_text(q->driver_version, driver, sizeof driver);
    version_text(q->runtime_version, runtime, sizeof runtime);
    switch (q->status) {
    case DT_GPU_AVAILABLE:
        snprintf(buf, size, "%d GPU%s visible", q->count, q->count == 1 ? "" : "s");
        break;
    case DT_GPU_NOT_BUILT:
        snprintf(buf, size, "this dtrain was built without the CUDA toolkit");
        break;
    case DT_GPU_NO_DRIVER:
        snprintf(buf, size, "no NVIDIA driver found");
        break;
    case DT_GPU_DRIVER_TOO_OLD:
        snprintf(buf, size,
                 "the NVIDIA driver (CUDA %s, cudaDriverGetVersion %d) is too old for this "
                 "build's CUDA runtime %s (%d), which needs a driver for CUDA %d.0 or newer%s",
                 driver, q->driver_version, runtime, q->runtime_version, q->runtime_version / 1000,
                 q->runtime_version / 1000 >= 13 ? " (R580+)" : "");
        break;
    case DT_GPU_NO_DEVICE:
        snprintf(buf, size, "no GPU visible (NVIDIA driver CUDA %s)", driver);
        break;
    case DT_GPU_LIBRARY_MISSING:
    case DT_GPU_LIBRARY_MISMATCH:
        snprintf(buf, size, "%s", q->detail);
        break;
    default:
        snprintf(buf, size, "the CUDA runtime could not list the GPUs: %s", q->detail);
        break;
    }
    return buf;
}
