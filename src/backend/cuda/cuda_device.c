/* CUDA device discovery (how many GPUs, or why none), one GPU's name, memory and PCI bus id,
 * and the library versions (CUDA runtime and driver, cuDNN, NCCL); compiled when the CUDA
 * toolkit is found. The cuDNN and NCCL versions are those of the libraries loaded at run time,
 * which may differ from the headers built against. */
#include <cublas_api.h>
#include <cuda_runtime_api.h>
#include <stdio.h>
#include <string.h>

#include "../cuda_module.h"
#include "cudnn_conv.h" /* cudnn.h without the warnings its own declarations raise */
#include "dtrain/backend.h"
#include "dtrain/device_comm.h"
#include "dtrain/gpu.h"

int cuda_device_count(void) {
    int count = 0;
    if (cudaGetDeviceCount(&count) != cudaSuccess) return 0;
    return count;
}

void cuda_query(dt_gpu_query *out) {
    memset(out, 0, sizeof *out);
    cudaDriverGetVersion(&out->driver_version);
    cudaRuntimeGetVersion(&out->runtime_version);
    int count = 0;
    cudaError_t status = cudaGetDeviceCount(&count);
    out->status = dt_gpu_status_from_cuda((int)status, out->driver_version);
    if (status != cudaSuccess) {
        snprintf(out->detail, sizeof out->detail, "%s (%s)", cudaGetErrorString(status),
                 cudaGetErrorName(status));
        return;
    }
    out->count = count;
    if (count == 0) {
        out->status = DT_GPU_NO_DEVICE;
        return;
    }
    /* the libraries as loaded, which may not be those built against */
    out->cudnn_version = (int)cudnnGetVersion();
    out->cudnn_cudart_version = (int)cudnnGetCudartVersion();
    int major = 0, minor = 0, patch = 0;
    if (cublasGetProperty(MAJOR_VERSION, &major) == CUBLAS_STATUS_SUCCESS &&
        cublasGetProperty(MINOR_VERSION, &minor) == CUBLAS_STATUS_SUCCESS &&
        cublasGetProperty(PATCH_LEVEL, &patch) == CUBLAS_STATUS_SUCCESS)
        out->cublas_version = major * 10000 + minor * 100 + patch;
    dt_gpu_query_check(out);
}

int cuda_device_info(int device, dt_gpu_info *out, dt_error *err) {
    memset(out, 0, sizeof *out);
    struct cudaDeviceProp prop;
    cudaError_t status = cudaGetDeviceProperties(&prop, device);
    if (status == cudaSuccess)
        status = cudaDeviceGetPCIBusId(out->pci_bus, (int)sizeof out->pci_bus, device);
    if (status != cudaSuccess)
        return dt_fail(err, "querying GPU %d: %s", device, cudaGetErrorString(status));
    snprintf(out->name, sizeof out->name, "%s", prop.name);
    out->total_bytes = prop.totalGlobalMem;
    out->compute_major = prop.major;
    out->compute_minor = prop.minor;
    return 0;
}

const char *cuda_library_versions(void) {
    static char text[256];
    int runtime = 0, driver = 0;
    cudaRuntimeGetVersion(&runtime);
    cudaDriverGetVersion(&driver); /* 0 without a driver */
    size_t cudnn = cudnnGetVersion();
    char driver_text[32] = "none", nccl_text[96] = "not built in (single GPU only)";
    if (driver > 0)
        snprintf(driver_text, sizeof driver_text, "%d.%d", driver / 1000, (driver % 1000) / 10);
#ifdef DTRAIN_HAVE_NCCL
    int nccl = cuda_nccl_loaded_version();
    if (nccl > 0)
        snprintf(nccl_text, sizeof nccl_text, "%d.%d.%d", nccl / 10000, (nccl % 10000) / 100,
                 nccl % 100);
    else
        snprintf(nccl_text, sizeof nccl_text,
                 "not loadable (libnccl.so.2: needed only by several GPU ranks)");
#endif
    snprintf(text, sizeof text, "cuda runtime %d.%d, driver %s, cudnn %zu.%zu.%zu, nccl %s",
             runtime / 1000, (runtime % 1000) / 10, driver_text, cudnn / 10000,
             (cudnn % 10000) / 100, cudnn % 100, nccl_text);
    return text;
}
