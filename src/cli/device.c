/* The backend for `dtrain predict` and `dtrain eval`: runtime.device's rule for one process. */
#include "cli/cli.h"

int dt_cli_create_backend(dt_device_kind device, int threads, int local_rank, dt_backend *backend,
                          dt_error *err) {
    dt_backend_options opt = {.threads = threads, .device = 0, .precision = DT_PRECISION_FP32};
    int gpus = device == DT_DEVICE_CPU ? 0 : dt_backend_cuda_device_count();
    if (device == DT_DEVICE_AUTO)
        device = gpus > 0 && dt_backend_cuda_training_available() ? DT_DEVICE_CUDA : DT_DEVICE_CPU;
    if (device == DT_DEVICE_CUDA) {
        if (gpus > 0) opt.device = local_rank % gpus;
        return dt_backend_cuda_create(&opt, backend, err);
    }
    return dt_backend_cpu_create(&opt, backend, err);
}
