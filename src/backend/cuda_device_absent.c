/* Device query when dtrain is built without the CUDA toolkit: no GPUs, and that is why. */
#include <string.h>

#include "dtrain/backend.h"
#include "dtrain/gpu.h"

int dt_backend_cuda_device_count(void) {
    return 0;
}

void dt_backend_cuda_query(dt_gpu_query *out) {
    memset(out, 0, sizeof *out);
    out->status = DT_GPU_NOT_BUILT;
}

int dt_backend_cuda_device_info(int device, dt_gpu_info *out, dt_error *err) {
    memset(out, 0, sizeof *out);
    return dt_fail(err, "GPU %d: this dtrain was built without the CUDA toolkit", device);
}
