/* CUDA kernels over flat buffers and layouts: fill, axpy, the SGD update (one kernel for every
 * parameter; it reads the non-finite guard's verdict), the weights' moving average (guarded
 * alike), the guard's scan and verdict, the sum of squares (double, two passes, deterministic),
 * NCHW <-> NHWC transfers, the conv weight OIHW -> KRSC copy and the KRSC filter gradient back
 * into OIHW, and the fp32 -> bf16 copy. The per-element math is cuda_math.h's. */
#include "backend/guard_verdict.h"
#include "cuda_internal.h"
#include "cuda_math.h"

namespace {

#include "cuda_kernels_common.cuh"

/* blocks of the sum-of-squares first pass; its partials fit cuda_sum_squares_scratch() */
const int kSumBlocks = 1024;

__global__ void fill_kernel(float *dst, float value, size_t count) {
    GRID_STRIDE(i, count) dst[i] = value;
}

__global__ void axpy_kernel(float *y, float alpha, const float *x, size_t count) {
    GRID_STRIDE(i, count) y[i] += alpha * x[i];
}

__global__ void sgd_kernel(float *params, const float *grads, float *momentum, size_t count,
                           float lr, float mu, float wd, float scale, int nesterov, int first,
                           const dt_guard_state *guard) {
    if (guard && guard->step_skipped) return; /* a non-finite (or halted) step */
    const int use_momentum = momentum != nullptr;
    GRID_STRIDE(i, count) {
        float buf = use_momentum ? momentum[i] : 0.0f;
        params[i] = dt_sgd_element(params[i], grads[i], &buf, use_momentum, lr, mu, wd, scale,
                                   nesterov, first);
        if (use_momentum) momentum[i] = buf;
    }
}

__global__ void ema_kernel(float *ema, const float *live, float decay, float one_minus_decay,
                           size_t count, const dt_guard_state *guard) {
    if (guard && guard->step_skipped) return; /* a skipped step is no step for the average */
    GRID_STRIDE(i, count) ema[i] = dt_ema_element(ema[i], live[i], decay, one_minus_decay);
}

/* the first non-finite index: each thread's first, then one atomicMin per thread that saw one */
__global__ void guard_scan(const float *grads, size_t count, unsigned long long *first) {
    unsigned long long mine = ~0ull;
    GRID_STRIDE(i, count) {
        if (!isfinite(grads[i])) {
            mine = i;
            break;
        }
    }
    if (mine != ~0ull) atomicMin(first, mine);
}

/* one thread: the verdict, applied as on the CPU; leaves *first at ~0 for the next scan */
__global__ void guard_verdict(const float *grads, unsigned long long *first, int64_t step,
                              int64_t halt_after, dt_guard_state *state) {
    unsigned long long bad = *first;
    int is_nan = bad != ~0ull && isnan(grads[bad]);
    dt_guard_apply(state, halt_after, step, bad == ~0ull ? -1 : (int64_t)bad, is_nan);
    *first = ~0ull;
}

__global__ void guard_restore_kernel(float *dst, const float *backup, size_t count,
                                     const dt_guard_state *state) {
    if (!state->step_skipped) return;
    GRID_STRIDE(i, count) dst[i] = backup[i];
}

__global__ void guard_clear_kernel(dt_guard_state *state) {
    dt_guard_clear_read(state);
}

/* block sums in double (fixed order: deterministic) */
__device__ double block_sum(double v) {
    __shared__ double shared[kThreads];
    shared[threadIdx.x] = v;
    __syncthreads();
    for (int half = blockDim.x / 2; half > 0; half /= 2) {
        if ((int)threadIdx.x < half) shared[threadIdx.x] += shared[threadIdx.x + half];
        __syncthreads();
    }
    double total = shared[0];
    __syncthreads();
    return total;
}

__global__ void sum_squares_partial(const float *src, size_t count, double *partials) {
    double sum = 0.0;
    GRID_STRIDE(i, count) sum += (double)src[i] * src[i];
    double total = block_sum(sum);
    if (threadIdx.x == 0) partials[blockIdx.x] = total;
}

__global__ void sum_squares_final(const double *partials, int blocks, double *result) {
    double sum = 0.0;
    for (int i = threadIdx.x; i < blocks; i += blockDim.x) sum += partials[i];
    double total = block_sum(sum);
    if (threadIdx.x == 0) *result = total;
}

template <typename T>
__global__ void nchw_to_nhwc(const float *src, T *dst, int n, int c, int h, int w) {
    const size_t count = (size_t)n * c * h * w;
    GRID_STRIDE(i, count) {
        /* i indexes the NHWC destination: coalesced writes */
        int b, ch, y, x;
        dt_nhwc_coords(i, c, h, w, &b, &ch, &y, &x);
        store(dst, i, src[dt_nchw_index(b, ch, y, x, c, h, w)]);
    }
}

template <typename T>
__global__ void nhwc_to_nchw(const T *src, float *dst, int n, int c, int h, int w) {
    const size_t count = (size_t)n * c * h * w;
    GRID_STRIDE(i, count) {
        int b, ch, y, x;
        dt_nchw_coords(i, c, h, w, &b, &ch, &y, &x);
        dst[i] = load(src, dt_nhwc_index(b, ch, y, x, c, h, w));
    }
}

template <typename T>
__global__ void oihw_to_krsc(const float *src, T *dst, int k, int c, int r, int s) {
    const size_t count = (size_t)k * c * r * s;
    GRID_STRIDE(i, count) {
        int o, ch, y, x; /* KRSC is laid out as NHWC with K images of R x S pixels */
        dt_nhwc_coords(i, c, r, s, &o, &ch, &y, &x);
        store(dst, i, src[dt_oihw_index(o, ch, y, x, c, r, s)]);
    }
}

template <typename T>
__global__ void krsc_to_oihw(const T *src, float *dst, int k, int c, int r, int s, int accumulate) {
    const size_t count = (size_t)k * c * r * s;
    GRID_STRIDE(i, count) {
        int o, ch, y, x; /* OIHW is laid out as NCHW */
        dt_nchw_coords(i, c, r, s, &o, &ch, &y, &x);
        float v = load(src, dt_krsc_index(o, ch, y, x, c, r, s));
        dst[i] = accumulate ? dst[i] + v : v;
    }
}

__global__ void f32_to_bf16(const float *src, uint16_t *dst, size_t count) {
    GRID_STRIDE(i, count) dst[i] = dt_float_to_bf16(src[i]);
}

} // namespace

extern "C" {

int cuda_launch_fill(cudaStream_t s, float *dst, float value, size_t count, dt_error *err) {
    if (!count) return 0;
    fill_kernel<<<grid_for(count), kThreads, 0, s>>>(dst, value, count);
    return launched(err, "buffer_fill kernel");
}

int cuda_launch_axpy(cudaStream_t s, float *y, float alpha, const float *x, size_t count,
                     dt_error *err) {
    if (!count) return 0;
    axpy_kernel<<<grid_for(count), kThreads, 0, s>>>(y, alpha, x, count);
    return launched(err, "buffer_axpy kernel");
}

int cuda_launch_sgd(cudaStream_t s, const dt_sgd_params *p, float *params, const float *grads,
                    float *momentum, size_t count, const dt_guard_state *guard, dt_error *err) {
    if (!count) return 0;
    sgd_kernel<<<grid_for(count), kThreads, 0, s>>>(
        params, grads, p->momentum != 0.0f ? momentum : nullptr, count, p->lr, p->momentum,
        p->weight_decay, p->grad_scale, p->nesterov, p->first_step, guard);
    return launched(err, "sgd_step kernel");
}

int cuda_launch_ema(cudaStream_t s, float *ema, const float *live, float decay,
                    float one_minus_decay, size_t count, const dt_guard_state *guard,
                    dt_error *err) {
    if (!count) return 0;
    ema_kernel<<<grid_for(count), kThreads, 0, s>>>(ema, live, decay, one_minus_decay, count,
                                                    guard);
    return launched(err, "ema_update kernel");
}

int cuda_launch_guard_check(cudaStream_t s, const float *grads, size_t count, int64_t step,
                            int64_t halt_after, unsigned long long *first, dt_guard_state *state,
                            dt_error *err) {
    if (count) {
        guard_scan<<<grid_for(count), kThreads, 0, s>>>(grads, count, first);
        if (launched(err, "non-finite scan kernel")) return -1;
    }
    guard_verdict<<<1, 1, 0, s>>>(grads, first, step, halt_after, state);
    return launched(err, "non-finite verdict kernel");
}

int cuda_launch_guard_restore(cudaStream_t s, float *dst, const float *backup, size_t count,
                              const dt_guard_state *state, dt_error *err) {
    if (!count) return 0;
    guard_restore_kernel<<<grid_for(count), kThreads, 0, s>>>(dst, backup, count, state);
    return launched(err, "guard restore kernel");
}

int cuda_launch_guard_clear(cudaStream_t s, dt_guard_state *state, dt_error *err) {
    guard_clear_kernel<<<1, 1, 0, s>>>(state);
    return launched(err, "guard clear kernel");
}

size_t cuda_sum_squares_scratch(void) {
    return kSumBlocks * sizeof(double);
}

int cuda_launch_sum_squares(cudaStream_t s, const float *src, size_t count, double *partials,
                            double *result, dt_error *err) {
    unsigned blocks = grid_for(count);
    if (blocks > (unsigned)kSumBlocks) blocks = kSumBlocks;
    sum_squares_partial<<<blocks, kThreads, 0, s>>>(src, count, partials);
    if (launched(err, "sum of squares kernel")) return -1;
    sum_squares_final<<<1, kThreads, 0, s>>>(partials, (int)blocks, result);
    return launched(err, "sum of squares final kernel");
}

int cuda_launch_nchw_f32_to_nhwc(cudaStream_t s, const float *src, void *dst, cuda_dtype dtype,
                                 int n, int c, int h, int w, dt_error *err) {
    const size_t count = (size_t)n * c * h * w;
    if (dtype == CUDA_BF16)
        nchw_to_nhwc<<<grid_for(count), kThreads, 0, s>>>(src, (uint16_t *)dst, n, c, h, w);
    else
        nchw_to_nhwc<<<grid_for(count), kThreads, 0, s>>>(src, (float *)dst, n, c, h, w);
    return launched(err, "NCHW to NHWC kernel");
}

int cuda_launch_nhwc_to_nchw_f32(cudaStream_t s, const void *src, cuda_dtype dtype, float *dst,
                                 int n, int c, int h, int w, dt_error *err) {
    const size_t count = (size_t)n * c * h * w;
    if (dtype == CUDA_BF16)
        nhwc_to_nchw<<<grid_for(count), kThreads, 0, s>>>((const uint16_t *)src, dst, n, c, h, w);
    else
        nhwc_to_nchw<<<grid_for(count), kThreads, 0, s>>>((const float *)src, dst, n, c, h, w);
    return launched(err, "NHWC to NCHW kernel");
}

int cuda_launch_oihw_to_krsc(cudaStream_t s, const float *src, void *dst, cuda_dtype dtype, int k,
                             int c, int r, int s_, dt_error *err) {
    const size_t count = (size_t)k * c * r * s_;
    if (dtype == CUDA_BF16)
        oihw_to_krsc<<<grid_for(count), kThreads, 0, s>>>(src, (uint16_t *)dst, k, c, r, s_);
    else
        oihw_to_krsc<<<grid_for(count), kThreads, 0, s>>>(src, (float *)dst, k, c, r, s_);
    return launched(err, "OIHW to KRSC weight kernel");
}

int cuda_launch_krsc_to_oihw(cudaStream_t s, const void *src, cuda_dtype dtype, float *dst, int k,
                             int c, int r, int s_, int accumulate, dt_error *err) {
    const size_t count = (size_t)k * c * r * s_;
    if (dtype == CUDA_BF16)
        krsc_to_oihw<<<grid_for(count), kThreads, 0, s>>>((const uint16_t *)src, dst, k, c, r, s_,
                                                          accumulate);
    else
        krsc_to_oihw<<<grid_for(count), kThreads, 0, s>>>((const float *)src, dst, k, c, r, s_,
                                                          accumulate);
    return launched(err, "KRSC to OIHW gradient kernel");
}

int cuda_launch_f32_to_bf16(cudaStream_t s, const float *src, uint16_t *dst, size_t count,
                            dt_error *err) {
    if (!count) return 0;
    f32_to_bf16<<<grid_for(count), kThreads, 0, s>>>(src, dst, count);
    return launched(err, "fp32 to bf16 kernel");
}

} // extern "C"
