/* The backward of the CPU backend's batch normalisation (with its optional fused ReLU), in C with
 * OpenMP rather than oneDNN's primitive: oneDNN 2.6's spins at barriers of its own between its
 * threads for the 64-channel layers, which on a shared machine whose threads get descheduled
 * turns a millisecond into hundreds (OMP_WAIT_POLICY does not reach those barriers). Sums are in
 * double, per (image, channel) in parallel and then per channel, as the forward's statistics. */
#include "cpu_internal.h"

#include <math.h>

#include "cpu_lanes.h"

/* The ReLU's gradient mask (y > 0) applied to dy; y is the fused forward's output. */
static inline float masked(const float *y, const float *dy, long long i) {
    return y && !(y[i] > 0.0f) ? 0.0f : dy[i];
}

/* Pass 1 over one task (B interleaved channels, or one plane when B = 1): per channel the sum of
 * g and of g * (x - mean) into out[2k], out[2k + 1]. */
static inline __attribute__((always_inline)) void task_sums(const float *x, const float *y,
                                                            const float *dy, long long plane,
                                                            const float *mean, double *out,
                                                            const int B) {
    double sum[CPU_BLOCK_MAX] = {0}, dot[CPU_BLOCK_MAX] = {0};
    for (long long p = 0; p < plane; p++)
        for (int k = 0; k < B; k++) {
            const long long i = p * B + k;
            const double g = masked(y, dy, i);
            sum[k] += g;
            dot[k] += g * ((double)x[i] - mean[k]);
        }
    for (int k = 0; k < B; k++) {
        out[2 * k] = sum[k];
        out[2 * k + 1] = dot[k];
    }
}

/* Pass 2: dx = a * (g - b - (x - mean) * c), per channel a, b, c. */
static inline __attribute__((always_inline)) void
task_dx(const float *x, const float *y, const float *dy, float *dx, long long plane,
        const float *mean, const float *a, const float *b, const float *c, const int B) {
    for (long long p = 0; p < plane; p++)
        for (int k = 0; k < B; k++) {
            const long long i = p * B + k;
            dx[i] = a[k] * (masked(y, dy, i) - b[k] - (x[i] - mean[k]) * c[k]);
        }
}

/* The same two passes over one nChw8c / nChw16c block with a vector of B lanes, one per
 * channel (cpu_lanes.h): lane k does task_sums' and task_dx's operations for channel k in their
 * order, so the results are theirs. RELU is a constant of each inlined copy. */
/* Position p's gradient (zeroed where the fused ReLU's output y is not positive) and input,
 * as both passes below read them. */
#define CPU_BN_LOAD_GRAD(g, xv, F, I, B, p)                                                        \
    do {                                                                                           \
        CPU_LANES_LOAD(g, dy + (p) * (B));                                                         \
        CPU_LANES_LOAD(xv, x + (p) * (B));                                                         \
        if (relu) {                                                                                \
            F yv_;                                                                                 \
            CPU_LANES_LOAD(yv_, y + (p) * (B));                                                    \
            g = (F)((I)g & (yv_ > zero));                                                          \
        }                                                                                          \
    } while (0)

#define CPU_BN_BLOCK_TASKS(B, F, D, I)                                                             \
    static inline __attribute__((always_inline)) void block_sums##B##_body(                        \
        const float *x, const float *y, const float *dy, long long plane, const float *mean,       \
        double *out, const int relu) {                                                             \
        F m, zero = {0};                                                                           \
        CPU_LANES_LOAD(m, mean);                                                                   \
        const D mean_d = __builtin_convertvector(m, D);                                            \
        D sum = {0}, dot = {0};                                                                    \
        for (long long p = 0; p < plane; p++) {                                                    \
            F g, xv;                                                                               \
            CPU_BN_LOAD_GRAD(g, xv, F, I, B, p);                                                   \
            const D gd = __builtin_convertvector(g, D);                                            \
            sum += gd;                                                                             \
            dot += gd * (__builtin_convertvector(xv, D) - mean_d);                                 \
        }                                                                                          \
        for (int k = 0; k < B; k++) {                                                              \
            out[2 * k] = sum[k];                                                                   \
            out[2 * k + 1] = dot[k];                                                               \
        }                                                                                          \
    }                                                                                              \
    static inline __attribute__((always_inline)) void block_dx##B##_body(                          \
        const float *x, const float *y, const float *dy, float *dx, long long plane,               \
        const float *mean, const float *a, const float *b, const float *c, const int relu) {       \
        F m, av, bv, cv, zero = {0};                                                               \
        CPU_LANES_LOAD(m, mean);                                                                   \
        CPU_LANES_LOAD(av, a);                                                                     \
        CPU_LANES_LOAD(bv, b);                                                                     \
        CPU_LANES_LOAD(cv, c);                                                                     \
        for (long long p = 0; p < plane; p++) {                                                    \
            F g, xv;                                                                               \
            CPU_BN_LOAD_GRAD(g, xv, F, I, B, p);                                                   \
            const F out = av * (g - bv - (xv - m) * cv);                                           \
            CPU_LANES_STORE(dx + p * B, out);                                                      \
        }                                                                                          \
    }                                                                                              \
    __attribute__((target_clones("avx512f", "avx2", "default"))) static void sums##B(              \
        const float *x, const float *y, const float *dy, long long plane, const float *mean,       \
        double *out) {                                                                             \
        if (y)                                                                                     \
            block_sums##B##_body(x, y, dy, plane, mean, out, 1);                                   \
        else                                                                                       \
            block_sums##B##_body(x, y, dy, plane, mean, out, 0);                                   \
    }                                                                                              \
    __attribute__((target_clones("avx512f", "avx2", "default"))) static void dx##B(                \
        const float *x, const float *y, const float *dy, float *dx, long long plane,               \
        const float *mean, const float *a, const float *b, const float *c) {                       \
        if (y)                                                                                     \
            block_dx##B##_body(x, y, dy, dx, plane, mean, a, b, c, 1);                             \
        else                                                                                       \
            block_dx##B##_body(x, y, dy, dx, plane, mean, a, b, c, 0);                             \
    }
CPU_BN_BLOCK_TASKS(8, cpu_f8, cpu_d8, cpu_i8)
CPU_BN_BLOCK_TASKS(16, cpu_f16, cpu_d16, cpu_i16)

/* One plane of the plain layout (B = 1): a running sum over the plane, kept scalar. */
__attribute__((target_clones("avx512f", "avx2", "default"))) static void
sums1(const float *x, const float *y, const float *dy, long long plane, const float *mean,
      double *out) {
    task_sums(x, y, dy, plane, mean, out, 1);
}
__attribute__((target_clones("avx512f", "avx2", "default"))) static void
dx1(const float *x, const float *y, const float *dy, float *dx, long long plane, const float *mean,
    const float *a, const float *b, const float *c) {
    task_dx(x, y, dy, dx, plane, mean, a, b, c, 1);
}

int cpu_batchnorm_backward_compute(const cpu_batchnorm_grad *g) {
    const dt_tensor *x = g->x;
    const int B = x->layout == CPU_LAYOUT_BLOCKED ? x->block : 1;
    const int channels = x->c, groups = channels / B;
    const long long plane = (long long)x->h * x->w;
    const long long tasks = (long long)x->n * groups;
    const float *y = g->relu ? g->y->data : NULL;
    double *partial = g->partial; /* [image][channel][sum g, sum g (x - mean)] */
    const int one_thread = cpu_one_thread_suits(x->count * sizeof(float));
#pragma omp parallel for if (!one_thread) schedule(static)
    for (long long t = 0; t < tasks; t++) {
        const long long offset = t * plane * B;
        const float *mean = g->mean + (t % groups) * B;
        if (B == 16)
            sums16(x->data + offset, y ? y + offset : NULL, g->dy->data + offset, plane, mean,
                   partial + 2 * t * B);
        else if (B == 8)
            sums8(x->data + offset, y ? y + offset : NULL, g->dy->data + offset, plane, mean,
                  partial + 2 * t * B);
        else
            sums1(x->data + offset, y ? y + offset : NULL, g->dy->data + offset, plane, mean,
                  partial + 2 * t * B);
    }
    const double count = (double)x->n * plane;
    float *a = g->coefficients, *b = a + channels, *c = b + channels;
    for (int ch = 0; ch < channels; ch++) {
        double sum = 0.0, dot = 0.0;
        for (int n = 0; n < x->n; n++) {
            sum += partial[2 * ((size_t)n * channels + ch)];
            dot += partial[2 * ((size_t)n * channels + ch) + 1];
        }
        const double invstd = 1.0 / sqrt((double)g->variance[ch] + g->epsilon);
        const double dgamma = dot * invstd, dbeta = sum;
        /* accumulating adds this batch's float, as summing ranks' floats does */
        if (g->dgamma) g->dgamma[ch] = (g->accumulate ? g->dgamma[ch] : 0.0f) + (float)dgamma;
        if (g->dbeta) g->dbeta[ch] = (g->accumulate ? g->dbeta[ch] : 0.0f) + (float)dbeta;
        a[ch] = (float)(g->gamma[ch] * invstd);
        b[ch] = (float)(dbeta / count);
        c[ch] = (float)(dgamma * invstd / count);
    }
#pragma omp parallel for if (!one_thread) schedule(static)
    for (long long t = 0; t < tasks; t++) {
        const long long offset = t * plane * B, first = (t % groups) * B;
        const float *mean = g->mean + first;
        if (B == 16)
            dx16(x->data + offset, y ? y + offset : NULL, g->dy->data + offset,
                 g->dx->data + offset, plane, mean, a + first, b + first, c + first);
        else if (B == 8)
            dx8(x->data + offset, y ? y + offset : NULL, g->dy->data + offset, g->dx->data + offset,
                plane, mean, a + first, b + first, c + first);
        else
            dx1(x->data + offset, y ? y + offset : NULL, g->dy->data + offset, g->dx->data + offset,
                plane, mean, a + first, b + first, c + first);
    }
    return 0;
}
