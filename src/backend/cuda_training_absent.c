/* The CUDA training backend (cuDNN convolutions, NCCL all-reduce) is not part of this release:
 * runtime.device=cuda reports that clearly, and runtime.device=auto trains on the CPU. The
 * device query in src/backend/cuda/ is built whenever the CUDA toolkit is found. */
#include "dtrain/backend.h"

int dt_backend_cuda_create(const dt_backend_options *opt, dt_backend *out, dt_error *err) {
    (void)opt;
    (void)out;
    return dt_fail_usage(err, "runtime.device: 'cuda' is not available: this dtrain has no CUDA "
                              "training backend yet (it trains on the CPU: runtime.device=cpu)");
}

int dt_backend_cuda_training_available(void) {
    return 0;
}
