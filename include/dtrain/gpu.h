/* GPU discovery: which GPUs this process sees, why none is usable (driver, libraries), their
 * names and memory, and the library versions for --version. Without the CUDA toolkit, or when
 * the CUDA module (libdtrain_cuda.so) cannot load, every answer says so. Separate from the
 * compute interface (backend.h): device choice happens before any backend exists. */
#ifndef DTRAIN_GPU_H
#define DTRAIN_GPU_H

#include <stddef.h>

#include "dtrain/error.h"

/* GPUs visible to this process (0 without the CUDA toolkit, driver or device). */
int dt_backend_cuda_device_count(void);

/* Why no GPU is usable (dt_gpu_query.status). */
typedef enum {
    DT_GPU_AVAILABLE = 0,   /* count > 0 */
    DT_GPU_NOT_BUILT,       /* this dtrain was built without the CUDA toolkit */
    DT_GPU_NO_DRIVER,       /* no NVIDIA driver (libcuda) found */
    DT_GPU_DRIVER_TOO_OLD,  /* the driver is older than this build's CUDA runtime needs */
    DT_GPU_NO_DEVICE,       /* a driver, but no device visible (CUDA_VISIBLE_DEVICES?) */
    DT_GPU_QUERY_FAILED,    /* another CUDA error: see detail */
    DT_GPU_LIBRARY_MISSING, /* cuDNN, cuBLAS or (several ranks) NCCL not loadable: see detail */
    DT_GPU_LIBRARY_MISMATCH /* a library too old or built for another CUDA major: see detail */
} dt_gpu_status;

typedef struct dt_gpu_query {
    int count; /* visible GPUs (the runtime applies CUDA_VISIBLE_DEVICES) */
    dt_gpu_status status;
    int driver_version, runtime_version; /* CUDA's 1000 * major + 10 * minor; 0: none/unknown */
    char detail[600];                    /* the CUDA error's or the library check's text */
    /* The libraries as loaded (0: not loadable): cudnnGetVersion (90100 = 9.1.0) and the CUDA
     * version cuDNN was built for (cudnnGetCudartVersion), cuBLAS's (cublasGetProperty:
     * 10000 * major + 100 * minor + patch), NCCL's (ncclGetVersion), needed by several GPU
     * ranks only (nccl_needed, set by the caller). */
    int cudnn_version, cudnn_cudart_version, cublas_version, nccl_version, nccl_needed;
} dt_gpu_query;

/* Oldest library versions the CUDA backend runs with (README: versions). */
#define DT_CUDNN_MIN_VERSION 90100
#define DT_NCCL_MIN_VERSION 21800

/* Asks the CUDA runtime (which starts it) for the visible GPUs and, when there are none, why.
 * Without the toolkit: count 0, DT_GPU_NOT_BUILT. */
void dt_backend_cuda_query(dt_gpu_query *out);
/* The status for cudaGetDeviceCount's error code and cudaDriverGetVersion's version (0 when no
 * driver is installed); pure, so that every mapping is tested without a GPU. */
dt_gpu_status dt_gpu_status_from_cuda(int cuda_error, int driver_version);
/* The start-up check, pure so that every case is tested with fake versions: when q says GPUs
 * are visible, the driver against the runtime's CUDA major (a 13.x runtime needs a driver of
 * CUDA 13.0 or newer), then cuDNN (loaded, >= 9.1, built for the runtime's CUDA major: a cu12
 * libcudnn.so.9 is refused), cuBLAS (loaded) and, when nccl_needed, NCCL (loaded, >= 2.18).
 * The first failure sets q->status and q->detail (both numbers, and how to provide the
 * library); otherwise q is unchanged. */
void dt_gpu_query_check(dt_gpu_query *q);
/* How to provide a missing NVIDIA library (pip wheel or toolkit folder) for CUDA major (the
 * runtime's), for a soname such as "libcudnn.so.9", into buf; NULL for a library that is not one
 * of them. */
const char *dt_gpu_library_hint(const char *soname, int major, char *buf, size_t size);
/* One line saying why no GPU is usable ("no NVIDIA driver found", ...), into buf. */
const char *dt_gpu_query_reason(const dt_gpu_query *q, char *buf, size_t size);

typedef struct dt_gpu_info {
    char name[96];
    size_t total_bytes;
    char pci_bus[32];                 /* "0000:17:00.0" */
    int compute_major, compute_minor; /* compute capability, e.g. 9.0 */
} dt_gpu_info;
/* Name, memory and PCI bus id of visible GPU device (DTRAIN_HAVE_CUDA builds; else an error). */
int dt_backend_cuda_device_info(int device, dt_gpu_info *out, dt_error *err);
/* "runtime 13.0, driver ..., cuDNN 9.x.y, NCCL 2.x.y" (DTRAIN_HAVE_CUDA builds only). */
const char *dt_backend_cuda_library_versions(void);

#endif
