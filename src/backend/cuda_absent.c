/* Stand-in entry points when dtrain is built without the CUDA backend: they report that. */
#include "dtrain/backend.h"

int dt_backend_cuda_create(const dt_backend_options *opt, dt_backend *out, dt_error *err) {
    (void)opt;
    (void)out;
    return dt_fail(err, "runtime.device=cuda: this dtrain was built without the CUDA backend "
                        "(rebuild with the CUDA toolkit and cuDNN installed, -DDTRAIN_CUDA=ON)");
}

int dt_backend_cuda_device_count(void) { return 0; }
