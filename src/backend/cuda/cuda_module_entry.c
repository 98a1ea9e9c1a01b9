/* The entry table of the CUDA module (src/backend/cuda_module.h): the CUDA backend, the device
 * query and the NCCL calls, as the program reaches them in libdtrain_cuda.so. */
#include "../cuda_module.h"

static const dt_cuda_module table = {
    .abi = DT_CUDA_MODULE_ABI,
    .table_bytes = sizeof(dt_cuda_module),
    .backend_create = cuda_backend_create,
    .device_count = cuda_device_count,
    .query = cuda_query,
    .device_info = cuda_device_info,
    .library_versions = cuda_library_versions,
#ifdef DTRAIN_HAVE_NCCL
    .nccl_api_load = cuda_nccl_api_load,
    .nccl_loaded_version = cuda_nccl_loaded_version,
#endif
};

const dt_cuda_module *dt_cuda_module_entry(void) {
    return &table;
}
