/* How to provide each NVIDIA library the CUDA backend loads: the pip wheel that carries it (for
 * a CUDA major) or a toolkit folder. Used by the start-up check and when the CUDA module cannot be
 * loaded for want of one (src/backend/cuda_module.c). */
#include <stdio.h>
#include <string.h>

#include "dtrain/backend.h"
#include "dtrain/gpu.h"

const char *dt_gpu_library_hint(const char *soname, int major, char *buf, size_t size) {
    /* CUDA 13's cuBLAS and runtime wheels dropped the -cuNN suffix */
    char suffix[16] = "";
    if (major < 13) snprintf(suffix, sizeof suffix, "-cu%d", major);
    if (!soname) return NULL;
    if (strncmp(soname, "libcudnn", 8) == 0)
        snprintf(buf, size,
                 "cuDNN 9 for CUDA %d: `pip install nvidia-cudnn-cu%d` and add its "
                 "nvidia/cudnn/lib folder to LD_LIBRARY_PATH, or a cuDNN install's lib folder",
                 major, major);
    else if (strncmp(soname, "libcublas", 9) == 0)
        snprintf(buf, size,
                 "cuBLAS for CUDA %d: `pip install nvidia-cublas%s` and add its "
                 "nvidia/cublas/lib folder to LD_LIBRARY_PATH, or a CUDA %d toolkit's lib64",
                 major, suffix, major);
    else if (strncmp(soname, "libnccl", 7) == 0)
        snprintf(buf, size,
                 "NCCL 2.18 or newer: `pip install nvidia-nccl-cu%d` and add its "
                 "nvidia/nccl/lib folder to LD_LIBRARY_PATH, or NCCL_ROOT/lib (only several GPU "
                 "ranks need it)",
                 major);
    else if (strncmp(soname, "libcudart", 9) == 0)
        snprintf(buf, size,
                 "the CUDA %d runtime: `pip install nvidia-cuda-runtime%s` or a CUDA %d "
                 "toolkit's lib64 on LD_LIBRARY_PATH",
                 major, suffix, major);
    else
        return NULL;
    return buf;
}
