/* Device query when dtrain is built without the CUDA toolkit: no GPUs. */
#include "dtrain/backend.h"

int dt_backend_cuda_device_count(void) {
    return 0;
}
