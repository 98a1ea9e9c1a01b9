/* The CUDA AdamW update (dt_adamw_params in backend.h): one kernel over a flat buffer that reads
 * the non-finite guard's verdict and skipped-step count in stream order, so that a step needs no
 * host wait. The scalars and the per-element math are adamw_math.h's, shared with the CPU. */
#include "backend/adamw_math.h"
#include "cuda_internal.h"
#include "cuda_math.h"

namespace {

#include "cuda_kernels_common.cuh"

/* One thread per block computes the step's scalars (double pow) for the others. */
__global__ void adamw_kernel(float *params, const float *grads, float *exp_avg, float *exp_avg_sq,
                             size_t count, dt_adamw_params p, const dt_guard_state *guard) {
    if (guard && guard->step_skipped) return; /* a non-finite (or halted) step */
    __shared__ dt_adamw_scalars scalars;
    if (threadIdx.x == 0) scalars = dt_adamw_scalars_at(&p, p.step - (guard ? guard->total : 0));
    __syncthreads();
    const dt_adamw_scalars s = scalars;
    GRID_STRIDE(i, count) {
        float m = exp_avg[i], v = exp_avg_sq[i];
        params[i] = dt_adamw_element(params[i], grads[i], &m, &v, &s);
        exp_avg[i] = m;
        exp_avg_sq[i] = v;
    }
}

} // namespace

int cuda_launch_adamw(cudaStream_t s, const dt_adamw_params *p, float *params, const float *grads,
                      float *exp_avg, float *exp_avg_sq, size_t count, const dt_guard_state *guard,
                      dt_error *err) {
    if (!count) return 0;
    adamw_kernel<<<grid_for(count), kThreads, 0, s>>>(params, grads, exp_avg, exp_avg_sq, count, *p,
                                                      guard);
    return launched(err, "adamw_step kernel");
}
