/* The backend for `dtrain predict` and `dtrain eval`: runtime.device's rule for one process,
 * with the GPU start-up check of training (driver, cuDNN, cuBLAS: dt_gpu_query_check). */
#include <stdio.h>

#include "cli/cli.h"
#include "dtrain/gpu.h"

int dt_cli_create_backend(dt_device_kind device, int threads, int local_rank, dt_backend *backend,
                          dt_error *err) {
    dt_backend_options opt = {.threads = threads, .device = 0, .precision = DT_PRECISION_FP32};
    dt_gpu_query gpus = {0};
    char reason[1024] = ""; /* why no GPU can be used; empty when one can */
    if (device != DT_DEVICE_CPU) {
        dt_backend_cuda_query(&gpus);
        if (!dt_backend_cuda_training_available())
            snprintf(reason, sizeof reason, "this dtrain was built without the CUDA backend");
        else if (gpus.status != DT_GPU_AVAILABLE || gpus.count < 1)
            dt_gpu_query_reason(&gpus, reason, sizeof reason);
    }
    if (device == DT_DEVICE_AUTO) device = reason[0] ? DT_DEVICE_CPU : DT_DEVICE_CUDA;
    if (device == DT_DEVICE_CUDA) {
        if (reason[0]) return dt_fail_usage(err, "runtime.device: 'cuda', but %s", reason);
        opt.device = local_rank % gpus.count;
        return dt_backend_cuda_create(&opt, backend, err);
    }
    return dt_backend_cpu_create(&opt, backend, err);
}
