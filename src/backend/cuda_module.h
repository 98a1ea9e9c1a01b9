/* The CUDA module's entry table: what the program asks of the CUDA backend, which lives in
 * libdtrain_cuda.so (src/backend/cuda/ and the NCCL calls), loaded on first use by
 * src/backend/cuda_module.c. The module links cuDNN, cuBLAS and the CUDA runtime, so a machine
 * without them still runs dtrain: only the module fails to load, and that failure is the reason
 * given for not using a GPU. Programs that link the CUDA objects in (the tests) use the same
 * table without loading anything. */
#ifndef DTRAIN_CUDA_MODULE_H
#define DTRAIN_CUDA_MODULE_H

#include "dtrain/backend.h"
#include "dtrain/device_comm.h"
#include "dtrain/gpu.h"

/* changes whenever the table or a type it passes changes, so that a stale module is refused */
#define DT_CUDA_MODULE_ABI 1

typedef struct dt_cuda_module {
    int abi;            /* DT_CUDA_MODULE_ABI of the module's build */
    size_t table_bytes; /* sizeof(dt_cuda_module) of the module's build */
    int (*backend_create)(const dt_backend_options *opt, dt_backend *out, dt_error *err);
    int (*device_count)(void);
    void (*query)(dt_gpu_query *out);
    int (*device_info)(int device, dt_gpu_info *out, dt_error *err);
    const char *(*library_versions)(void);
    /* NULL in a build without NCCL's header */
    const dt_nccl_api *(*nccl_api_load)(dt_error *err);
    int (*nccl_loaded_version)(void);
} dt_cuda_module;

/* Inside the module: the functions behind the table (src/backend/cuda/cuda_backend.c,
 * cuda_device.c, src/comm/nccl_api.c). */
int cuda_backend_create(const dt_backend_options *opt, dt_backend *out, dt_error *err);
int cuda_device_count(void);
void cuda_query(dt_gpu_query *out);
int cuda_device_info(int device, dt_gpu_info *out, dt_error *err);
const char *cuda_library_versions(void);
const dt_nccl_api *cuda_nccl_api_load(dt_error *err);
int cuda_nccl_loaded_version(void);

/* The one symbol the module exports by name. */
const dt_cuda_module *dt_cuda_module_entry(void);

/* The module's file name, looked for beside the dtrain executable, then in DTRAIN_MODULE_DIR
 * relative to it; DTRAIN_CUDA_MODULE (a file path) replaces the search. */
#define DT_CUDA_MODULE_FILE "libdtrain_cuda.so"

#endif
