/* CUDA device discovery and library versions (CUDA runtime, cuDNN, NCCL), compiled when the
 * CUDA toolkit is found. */
#include <cuda_runtime_api.h>
#include <cudnn.h>
#include <nccl.h>
#include <stdio.h>

#include "dtrain/backend.h"

int dt_backend_cuda_device_count(void) {
    int count = 0;
    if (cudaGetDeviceCount(&count) != cudaSuccess) return 0;
    return count;
}

const char *dt_backend_cuda_library_versions(void) {
    static char text[160];
    int runtime = 0, driver = 0, nccl = 0;
    cudaRuntimeGetVersion(&runtime);
    cudaDriverGetVersion(&driver);
    ncclGetVersion(&nccl);
    size_t cudnn = cudnnGetVersion();
    snprintf(text, sizeof text, "runtime %d.%d, driver %d.%d, cuDNN %zu.%zu.%zu, NCCL %d.%d.%d",
             runtime / 1000, (runtime % 1000) / 10, driver / 1000, (driver % 1000) / 10,
             cudnn / 10000, (cudnn % 10000) / 100, cudnn % 100, nccl / 10000, (nccl % 10000) / 100,
             nccl % 100);
    return text;
}
