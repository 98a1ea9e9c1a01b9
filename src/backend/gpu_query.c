/* Reading the CUDA runtime's answer about GPUs: cudaGetDeviceCount's error code (with the driver
 * version) mapped to a reason, and that reason as one line for the log or an error. Pure C, built
 * with or without the toolkit: the CUDA error codes are CUDA's documented numbers. */
#include <stdio.h>

#include "dtrain/backend.h"

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
                 "the NVIDIA driver (CUDA %s) is too old for this build's CUDA runtime %s", driver,
                 runtime);
        break;
    case DT_GPU_NO_DEVICE:
        snprintf(buf, size, "no GPU visible (NVIDIA driver CUDA %s)", driver);
        break;
    default:
        snprintf(buf, size, "the CUDA runtime could not list the GPUs: %s", q->detail);
        break;
    }
    return buf;
}
