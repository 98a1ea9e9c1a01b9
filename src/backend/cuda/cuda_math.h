/* Per-element math of the CUDA backend's kernels, written once as inline functions that compile
 * both for the device (nvcc: __host__ __device__) and as plain C for the host, so that the host
 * test (tests/test_cuda_math.c) holds every formula to the CPU backend without a GPU and only
 * launch and memory errors are left for the GPU tests. Nothing here allocates or synchronises.
 *
 * Layouts: activations are NHWC on the device; flat parameters stay OIHW (conv) and [out][in]
 * (linear); cuDNN's filters are KRSC. bf16 values are stored as uint16_t bit patterns. */
#ifndef DTRAIN_CUDA_MATH_H
#define DTRAIN_CUDA_MATH_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#if defined(__CUDACC__)
#define DT_HD __host__ __device__
#else
#define DT_HD
#endif

/* ---- bf16 -------------------------------------------------------------------------------- */

DT_HD static inline uint32_t dt_float_bits(float f) {
#if defined(__CUDA_ARCH__)
    return __float_as_uint(f);
#else
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
#endif
}

DT_HD static inline float dt_bits_float(uint32_t u) {
#if defined(__CUDA_ARCH__)
    return __uint_as_float(u);
#else
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
#endif
}

/* float -> bf16, rounded to nearest, ties to even (as torch and __float2bfloat16_rn); a NaN
 * stays a NaN of the same sign (quiet bit set, so truncation cannot turn it into an Inf). */
DT_HD static inline uint16_t dt_float_to_bf16(float f) {
    uint32_t u = dt_float_bits(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x0040u);
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

DT_HD static inline float dt_bf16_to_float(uint16_t h) {
    return dt_bits_float((uint32_t)h << 16);
}

/* Element loads/stores for the two activation types; the kernels are written over these. */
DT_HD static inline float dt_load_f32(const float *p) {
    return *p;
}
DT_HD static inline float dt_load_bf16(const uint16_t *p) {
    return dt_bf16_to_float(*p);
}
DT_HD static inline void dt_store_f32(float *p, float v) {
    *p = v;
}
DT_HD static inline void dt_store_bf16(uint16_t *p, float v) {
    *p = dt_float_to_bf16(v);
}

/* ---- layouts ------------------------------------------------------------------------------ */

DT_HD static inline size_t dt_nchw_index(int n, int c, int h, int w, int C, int H, int W) {
    return (((size_t)n * C + c) * H + h) * W + w;
}

DT_HD static inline size_t dt_nhwc_index(int n, int c, int h, int w, int C, int H, int W) {
    return (((size_t)n * H + h) * W + w) * C + c;
}

/* conv weight [o][i][r][s] (flat parameters) and cuDNN's filter [o][r][s][i] */
DT_HD static inline size_t dt_oihw_index(int o, int i, int r, int s, int C, int R, int S) {
    return (((size_t)o * C + i) * R + r) * S + s;
}

DT_HD static inline size_t dt_krsc_index(int o, int i, int r, int s, int C, int R, int S) {
    return (((size_t)o * R + r) * S + s) * C + i;
}

/* The inverse maps: the coordinates of flat index i (the kernels run one thread per element
 * of their output and decode its coordinates with these). */
DT_HD static inline void dt_nhwc_coords(size_t i, int C, int H, int W, int *n, int *c, int *h,
                                        int *w) {
    *c = (int)(i % (size_t)C);
    size_t pixel = i / (size_t)C;
    *w = (int)(pixel % (size_t)W);
    *h = (int)(pixel / (size_t)W % (size_t)H);
    *n = (int)(pixel / (size_t)W / (size_t)H);
}

DT_HD static inline void dt_nchw_coords(size_t i, int C, int H, int W, int *n, int *c, int *h,
                                        int *w) {
    *w = (int)(i % (size_t)W);
    *h = (int)(i / (size_t)W % (size_t)H);
    *c = (int)(i / (size_t)W / (size_t)H % (size_t)C);
    *n = (int)(i / (size_t)W / (size_t)H / (size_t)C);
}

/* ---- input normalisation -------------------------------------------------------------------- */

/* (p / 255 - mean) / std in float, correctly rounded divisions: the CPU backend's table value
 * (torchvision's ToTensor + Normalize) bit for bit. */
DT_HD static inline float dt_normalize_u8(uint8_t p, float mean, float std) {
    return ((float)p / 255.0f - mean) / std;
}

/* ---- element-wise activations ---------------------------------------------------------------- */

/* relu(a + b); a NaN sum gives 0, as the CPU backend's (sum > 0 ? sum : 0) */
DT_HD static inline float dt_add_relu(float a, float b) {
    float sum = a + b;
    return sum > 0.0f ? sum : 0.0f;
}

/* the ReLU backward through its output y: dy where y > 0 */
DT_HD static inline float dt_relu_grad(float y, float dy) {
    return y > 0.0f ? dy : 0.0f;
}

/* ---- SGD (torch.optim.SGD, dampening 0; see dt_sgd_params in backend.h) --------------------- */

/* The new parameter value; *momentum (when use_momentum) is read and updated. The operation
 * order is the CPU backend's, so without contracted multiply-adds the result is bit for bit. */
DT_HD static inline float dt_sgd_element(float param, float grad, float *momentum, int use_momentum,
                                         float lr, float mu, float weight_decay, float grad_scale,
                                         int nesterov, int first_step) {
    if (!use_momentum) return param - lr * (grad_scale * grad + weight_decay * param);
    float g = grad_scale * grad + weight_decay * param;
    float buf = first_step ? g : mu * *momentum + g;
    *momentum = buf;
    return param - lr * (nesterov ? g + mu * buf : buf);
}

/* ---- the weights' moving average (dt_backend_ema_update) ------------------------------------ */

/* timm's decay * ema + (1 - decay) * live as torch computes it in float32: each product rounded,
 * then the sum (the kernels are built without fused multiply-adds, as the CPU backend). */
DT_HD static inline float dt_ema_element(float ema, float live, float decay,
                                         float one_minus_decay) {
    float kept = decay * ema;
    float added = one_minus_decay * live;
    return kept + added;
}

/* ---- batch normalisation --------------------------------------------------------------------- */

/* Mean and biased variance of a channel from its sum and sum of squares (double), as the CPU
 * backend: var = E[x^2] - mean^2, clamped at 0. */
DT_HD static inline void dt_bn_finish_stats(double sum, double squares, double count, float *mean,
                                            float *variance) {
    double m = sum / count, v = squares / count - m * m;
    *mean = (float)m;
    *variance = (float)(v > 0.0 ? v : 0.0);
}

/* torch's running statistics: (1 - m) * running + m * batch, the variance unbiased with
 * count / (count - 1) (computed in double, then rounded, as the CPU backend). */
DT_HD static inline float dt_bn_unbias(double count) {
    return (float)(count / (count - 1.0));
}
DT_HD static inline float dt_bn_running_mean(float running, float batch_mean, float momentum) {
    return (1.0f - momentum) * running + momentum * batch_mean;
}
DT_HD static inline float dt_bn_running_var(float running, float batch_var, float unbias,
                                            float momentum) {
    return (1.0f - momentum) * running + momentum * unbias * batch_var;
}

DT_HD static inline float dt_bn_inv_std(float variance, float epsilon) {
    return 1.0f / sqrtf(variance + epsilon);
}

/* y = gamma * (x - mean) * inv_std + beta, then the fused ReLU when relu is set */
DT_HD static inline float dt_bn_forward(float x, float mean, float inv_std, float gamma, float beta,
                                        int relu) {
    float v = gamma * inv_std * (x - mean) + beta;
    return relu && !(v > 0.0f) ? 0.0f : v;
}

/* The gradient reaching the normalisation: dy, masked by the fused ReLU's output y. */
DT_HD static inline float dt_bn_masked_grad(float dy, float y, int relu) {
    return relu ? dt_relu_grad(y, dy) : dy;
}

/* dx from the channel's sums over its count values of the masked gradient g:
 *   sum_g = sum g (= dbeta), sum_g_xhat = sum g * xhat (= dgamma), xhat = (x - mean) * inv_std
 *   dx = gamma * inv_std * (g - sum_g / count - xhat * sum_g_xhat / count) */
DT_HD static inline float dt_bn_backward_dx(float g, float x, float mean, float inv_std,
                                            float gamma, float sum_g, float sum_g_xhat,
                                            float inv_count) {
    float xhat = (x - mean) * inv_std;
    return gamma * inv_std * (g - sum_g * inv_count - xhat * sum_g_xhat * inv_count);
}

/* ---- pooling --------------------------------------------------------------------------------- */

/* Outputs o in [*lo, *hi] (empty when lo > hi) whose window (o * stride - padding, + kernel)
 * covers input position i: the gather form of the max-pool backward. */
DT_HD static inline void dt_pool_covering(int i, int kernel, int stride, int padding, int outputs,
                                          int *lo, int *hi) {
    int first = i + padding - kernel + 1;
    *lo = first <= 0 ? 0 : (first + stride - 1) / stride;
    int last = (i + padding) / stride;
    *hi = last < outputs - 1 ? last : outputs - 1;
}

/* The in-plane index (ih * W + iw) of a max-pool window's maximum, torch's rule: padding never
 * wins (as -inf), the first maximum wins ties, a NaN wins (the last NaN), and a window of only
 * -inf answers its first input. `plane` points at element (n, 0, 0, c) of an NHWC tensor whose
 * pixels are `pixel_stride` elements apart. Defined for float and bf16 storage. */
#define DT_DEFINE_MAXPOOL_ARGMAX(NAME, TYPE, LOAD)                                                 \
    DT_HD static inline int NAME(const TYPE *plane, size_t pixel_stride, int H, int W, int oh,     \
                                 int ow, int kernel, int stride, int padding) {                    \
        int h0 = oh * stride - padding, w0 = ow * stride - padding;                                \
        int h1 = h0 + kernel < H ? h0 + kernel : H, w1 = w0 + kernel < W ? w0 + kernel : W;        \
        if (h0 < 0) h0 = 0;                                                                        \
        if (w0 < 0) w0 = 0;                                                                        \
        int best = h0 * W + w0;                                                                    \
        float best_value = -INFINITY;                                                              \
        for (int h = h0; h < h1; h++)                                                              \
            for (int w = w0; w < w1; w++) {                                                        \
                float v = LOAD(plane + (size_t)(h * W + w) * pixel_stride);                        \
                if (v > best_value || isnan(v)) {                                                  \
                    best_value = v;                                                                \
                    best = h * W + w;                                                              \
                }                                                                                  \
            }                                                                                      \
        return best;                                                                               \
    }
DT_DEFINE_MAXPOOL_ARGMAX(dt_maxpool_argmax_f32, float, dt_load_f32)
DT_DEFINE_MAXPOOL_ARGMAX(dt_maxpool_argmax_bf16, uint16_t, dt_load_bf16)

/* ---- softmax cross-entropy --------------------------------------------------------------------
 */

/* The targets of one sample (dt_loss_targets): label a with weight mix, label b with 1 - mix,
 * smoothed by smoothing (1 mix and b == a: the hard label). */
typedef struct dt_ce_target {
    int a, b;
    double mix, smoothing;
} dt_ce_target;

/* The label the accuracy statistic compares the argmax with: the one of larger weight. */
DT_HD static inline int dt_ce_hard_label(const dt_ce_target *t) {
    return t->mix >= 0.5 ? t->a : t->b;
}

/* One sample's row of k logits, in double as the CPU backend (same operations in the same
 * order): returns the argmax (first maximum); *loss = -sum_j target_j log softmax_j (only when
 * weight != 0, else 0); when grad is not NULL, grad[j] = grad_scale * weight * (softmax_j -
 * target_j) (zeros when weight == 0). The labels are only read when weight != 0 (the caller has
 * checked they are in [0, k)). */
#define DT_DEFINE_CE_ROW(NAME, TYPE, LOAD, STORE)                                                  \
    DT_HD static inline int NAME(const TYPE *z, int k, const dt_ce_target *t, float weight,        \
                                 float grad_scale, TYPE *grad, double *loss) {                     \
        int best = 0;                                                                              \
        float best_value = LOAD(z);                                                                \
        for (int j = 1; j < k; j++) {                                                              \
            float v = LOAD(z + j);                                                                 \
            if (v > best_value) {                                                                  \
                best = j;                                                                          \
                best_value = v;                                                                    \
            }                                                                                      \
        }                                                                                          \
        const double top = best_value;                                                             \
        double denominator = 0.0;                                                                  \
        for (int j = 0; j < k; j++) denominator += exp((double)LOAD(z + j) - top);                 \
        const double log_denominator = log(denominator);                                           \
        const double w = weight, mix = t->mix, smoothing = t->smoothing;                           \
        *loss = 0.0;                                                                               \
        if (w != 0.0) {                                                                            \
            const double lse = top + log_denominator;                                              \
            double value = lse - (double)LOAD(z + t->a);                                           \
            if (mix != 1.0) value = mix * value + (1.0 - mix) * (lse - (double)LOAD(z + t->b));    \
            if (smoothing != 0.0) {                                                                \
                double uniform = 0.0;                                                              \
                for (int j = 0; j < k; j++) uniform += lse - (double)LOAD(z + j);                  \
                value = (1.0 - smoothing) * value + smoothing / k * uniform;                       \
            }                                                                                      \
            *loss = value;                                                                         \
        }                                                                                          \
        if (grad) {                                                                                \
            const double scale = (double)grad_scale * w;                                           \
            for (int j = 0; j < k; j++) {                                                          \
                double value = 0.0;                                                                \
                if (w != 0.0) {                                                                    \
                    double softmax = exp((double)LOAD(z + j) - top - log_denominator);             \
                    double target =                                                                \
                        (1.0 - smoothing) * (mix * (j == t->a) + (1.0 - mix) * (j == t->b)) +      \
                        smoothing / k;                                                             \
                    value = scale * (softmax - target);                                            \
                }                                                                                  \
                STORE(grad + j, (float)value);                                                     \
            }                                                                                      \
        }                                                                                          \
        return best;                                                                               \
    }
DT_DEFINE_CE_ROW(dt_ce_row_f32, float, dt_load_f32, dt_store_f32)
DT_DEFINE_CE_ROW(dt_ce_row_bf16, uint16_t, dt_load_bf16, dt_store_bf16)

/* The loss statistics one sample adds (IFACE: loss_stats_read):
 *   out[0] += w * loss, out[1] += w * [prediction == label], out[2] += w,
 *   out[3] += 1 when w != 0 and the loss is not finite. Samples with w == 0 add nothing. */
DT_HD static inline void dt_ce_stats(double loss, int prediction, int label, float weight,
                                     double out[4]) {
    out[0] = out[1] = out[2] = out[3] = 0.0;
    if (weight == 0.0f) return;
    out[0] = (double)weight * loss;
    out[1] = prediction == label ? (double)weight : 0.0;
    out[2] = weight;
    out[3] = isfinite(loss) ? 0.0 : 1.0;
}

#endif
