/* Flat float buffers of the CPU backend (parameters, gradients, momentum, BN statistics):
 * allocation in host memory and the vectorisable OpenMP loops over them (fill, axpy, the SGD
 * update, sum of squares). Every write advances the parameter version (cpu_internal.h). */
#include "cpu_internal.h"

#include <string.h>

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
#pragma omp parallel for simd if (n >= CPU_PARALLEL_MIN) schedule(static)
    for (long long i = 0; i < n; i++) {
        float g = scale * grads[i] + wd * params[i];
        float buf = first ? g : mu * momentum[i] + g;
        momentum[i] = buf;
        params[i] -= lr * (nesterov ? g + mu * buf : buf);
    }
    return 0;
}

int cpu_buffer_sum_squares(void *ctx, const float *src, size_t count, double *out, dt_error *err) {
    (void)ctx;
    (void)err;
    const long long n = (long long)count;
    double sum = 0.0;
#pragma omp parallel for simd if (n >= CPU_PARALLEL_MIN) schedule(static) reduction(+ : sum)
    for (long long i = 0; i < n; i++) sum += (double)src[i] * src[i];
    *out = sum;
    return 0;
}
