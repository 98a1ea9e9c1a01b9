/* What every CUDA kernel file shares: the block size, the grid for a count, the launch check,
 * element loads/stores for fp32 and bf16 storage, and the grid-stride loop. Each .cu file
 * includes it inside its own anonymous namespace. */
const int kThreads = 256;

inline unsigned grid_for(size_t count) {
    size_t blocks = (count + kThreads - 1) / kThreads;
    const size_t cap = 65535u * 32u; /* grid-stride loops cover the rest */
    return (unsigned)(blocks < 1 ? 1 : blocks > cap ? cap : blocks);
}

inline int launched(dt_error *err, const char *what) {
    return cuda_check(cudaGetLastError(), err, what);
}

__device__ inline float load(const float *p, size_t i) {
    return p[i];
}
__device__ inline float load(const uint16_t *p, size_t i) {
    return dt_bf16_to_float(p[i]);
}
__device__ inline void store(float *p, size_t i, float v) {
    p[i] = v;
}
__device__ inline void store(uint16_t *p, size_t i, float v) {
    p[i] = dt_float_to_bf16(v);
}

#define GRID_STRIDE(i, count)                                                                      \
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < (count);                    \
         i += (size_t)gridDim.x * blockDim.x)
