/* Flat float buffers of the CPU backend (parameters, gradients, momentum, BN statistics):
 * allocation in host memory and the vectorisable OpenMP loops over them (fill, axpy, the SGD
 * and AdamW updates, sum of squares). Every write advances the parameter version
 * (cpu_internal.h). */
#include "cpu_internal.h"

#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "../adamw_math.h"

/* Below this many elements a loop runs on the calling thread only. */
enum { CPU_PARALLEL_MIN = 1 << 15 };

float *cpu_buffer_alloc(void *ctx, size_t count, dt_error *err) {
    (void)ctx;
    float *buffer = NULL;
    if (count <= ((size_t)-1) / sizeof(float)) buffer = cpu_aligned_alloc(count * sizeof(float), 1);
    if (!buffer) dt_fail(err, "out of memory allocating a buffer of %zu floats", count);
    return buffer;
}

void cpu_buffer_free(void *ctx, float *buffer) {
    (void)ctx;
    cpu_aligned_free(buffer);
}

int cpu_buffer_upload(void *ctx, float *dst, const float *host_src, size_t count, dt_error *err) {
    ((cpu_ctx *)ctx)->params_version++;
    (void)err;
    if (count) memmove(dst, host_src, count * sizeof(float));
    return 0;
}

int cpu_buffer_download(void *ctx, float *host_dst, const float *src, size_t count, dt_error *err) {
    (void)ctx;
    (void)err;
    if (count) memmove(host_dst, src, count * sizeof(float));
    return 0;
}

int cpu_buffer_fill(void *ctx, float *dst, float value, size_t count, dt_error *err) {
    ((cpu_ctx *)ctx)->params_version++;
    (void)err;
    const long long n = (long long)count;
#pragma omp parallel for simd if (n >= CPU_PARALLEL_MIN) schedule(static)
    for (long long i = 0; i < n; i++) dst[i] = value;
    return 0;
}

int cpu_buffer_axpy(void *ctx, float *y, float alpha, const float *x, size_t count, dt_error *err) {
    ((cpu_ctx *)ctx)->params_version++;
    (void)err;
    const long long n = (long long)count;
#pragma omp parallel for simd if (n >= CPU_PARALLEL_MIN) schedule(static)
    for (long long i = 0; i < n; i++) y[i] += alpha * x[i];
    return 0;
}

/* torch.optim.SGD with momentum over [begin, end); inlined with constant first and nesterov,
 * so that each copy is a loop without choices in it, which vectorises. */
static inline __attribute__((always_inline)) void
sgd_momentum_range(float *params, const float *grads, float *momentum, long long begin,
                   long long end, const dt_sgd_params *p, const int first, const int nesterov) {
    const float lr = p->lr, mu = p->momentum, wd = p->weight_decay, scale = p->grad_scale;
#pragma omp simd
    for (long long i = begin; i < end; i++) {
        const float g = scale * grads[i] + wd * params[i];
        const float buf = first ? g : mu * momentum[i] + g;
        momentum[i] = buf;
        params[i] -= lr * (nesterov ? g + mu * buf : buf);
    }
}

/* torch.optim.SGD with dampening 0; see dt_sgd_params. */
int cpu_sgd_step(void *ctx, const dt_sgd_params *p, float *params, const float *grads,
                 float *momentum, size_t count, dt_error *err) {
    if (p->guarded && ((cpu_ctx *)ctx)->guard.step_skipped) return 0;
    ((cpu_ctx *)ctx)->params_version++;
    const long long n = (long long)count;
    const float lr = p->lr, mu = p->momentum, wd = p->weight_decay, scale = p->grad_scale;
    if (mu == 0.0f) {
#pragma omp parallel for simd if (n >= CPU_PARALLEL_MIN) schedule(static)
        for (long long i = 0; i < n; i++) params[i] -= lr * (scale * grads[i] + wd * params[i]);
        return 0;
    }
    const int first = p->first_step, nesterov = p->nesterov;
#pragma omp parallel if (n >= CPU_PARALLEL_MIN)
    {
        const long long threads = omp_get_num_threads(), t = omp_get_thread_num();
        const long long begin = n * t / threads, end = n * (t + 1) / threads;
        if (first && nesterov)
            sgd_momentum_range(params, grads, momentum, begin, end, p, 1, 1);
        else if (first)
            sgd_momentum_range(params, grads, momentum, begin, end, p, 1, 0);
        else if (nesterov)
            sgd_momentum_range(params, grads, momentum, begin, end, p, 0, 1);
        else
            sgd_momentum_range(params, grads, momentum, begin, end, p, 0, 0);
    }
    return 0;
}

/* torch.optim.AdamW; see dt_adamw_params. The math is adamw_math.h's, shared with CUDA. */
int cpu_adamw_step(void *ctx, const dt_adamw_params *p, float *params, const float *grads,
                   float *exp_avg, float *exp_avg_sq, size_t count, dt_error *err) {
    (void)err;
    const dt_guard_state *guard = &((cpu_ctx *)ctx)->guard;
    if (p->guarded && guard->step_skipped) return 0;
    ((cpu_ctx *)ctx)->params_version++;
    const dt_adamw_scalars s = dt_adamw_scalars_at(p, p->step - (p->guarded ? guard->total : 0));
    const long long n = (long long)count;
#pragma omp parallel for simd if (n >= CPU_PARALLEL_MIN) schedule(static)
    for (long long i = 0; i < n; i++)
        params[i] = dt_adamw_element(params[i], grads[i], &exp_avg[i], &exp_avg_sq[i], &s);
    return 0;
}

/* Summed in fixed blocks, the block sums then added in order: the same result whatever the
 * number of threads (gradient clipping scales every rank's step by it). */
enum { CPU_SUM_BLOCK = 1 << 16 };

static double sum_squares_block(const float *src, long long n) {
    double sum = 0.0;
#pragma omp simd reduction(+ : sum)
    for (long long i = 0; i < n; i++) sum += (double)src[i] * src[i];
    return sum;
}

int cpu_buffer_sum_squares(void *ctx, const float *src, size_t count, double *out, dt_error *err) {
    (void)ctx;
    const long long n = (long long)count;
    const long long blocks = (n + CPU_SUM_BLOCK - 1) / CPU_SUM_BLOCK;
    if (blocks <= 1) {
        *out = sum_squares_block(src, n);
        return 0;
    }
    double *partial = malloc((size_t)blocks * sizeof *partial);
    if (!partial) return dt_fail(err, "sum of squares: out of memory");
#pragma omp parallel for schedule(static)
    for (long long k = 0; k < blocks; k++) {
        long long first = k * CPU_SUM_BLOCK, rest = n - first;
        partial[k] = sum_squares_block(src + first, rest < CPU_SUM_BLOCK ? rest : CPU_SUM_BLOCK);
    }
    double sum = 0.0;
    for (long long k = 0; k < blocks; k++) sum += partial[k];
    free(partial);
    *out = sum;
    return 0;
}
