/* CUDA kernels of the network ops over NHWC activations (fp32 or bf16 storage, fp32 math):
 * batch norm (statistics in double, deterministic two-pass reductions), the residual add+ReLU
 * and ReLU backward, input normalisation, max pool (argmax saved, gather backward: no atomics)
 * and global average pool, the linear layer's bias fill and bias gradient, and softmax
 * cross-entropy with the loss statistics accumulated on the device. The per-element math is
 * cuda_math.h's, tested on the host against the CPU backend. */
#include "cuda_internal.h"
#include "cuda_math.h"

namespace {

#include "cuda_kernels_common.cuh"

/* batch-norm reduction blocks: 32 channels x 8 row lanes; at most kMaxRowGroups row groups */
const int kChannelTile = 32, kRowLanes = 8, kMaxRowGroups = 512;

int row_groups(size_t rows) {
    size_t groups = (rows + kChannelTile * kRowLanes - 1) / (kChannelTile * kRowLanes);
    return (int)(groups < 1 ? 1 : groups > (size_t)kMaxRowGroups ? kMaxRowGroups : groups);
}

/* ---- batch norm ------------------------------------------------------------------------------ */

/* Per (row group, channel) sums in double of two quantities, written to
 * partials[(group * channels + c) * 2 + {0, 1}]:
 *   forward:  x and x^2
 *   backward: g = masked dy and g * xhat */
template <typename T, bool kBackward>
__global__ void bn_partial_sums(const T *x, const T *y, const T *dy, size_t rows, int channels,
                                const float *mean, const float *inv_std, int relu,
                                double *partials) {
    __shared__ double shared[2][kRowLanes][kChannelTile];
    const int c = blockIdx.x * kChannelTile + threadIdx.x;
    const int group = blockIdx.y, groups = gridDim.y;
    double a = 0.0, b = 0.0;
    if (c < channels) {
        const float m = kBackward ? mean[c] : 0.0f, s = kBackward ? inv_std[c] : 0.0f;
        for (size_t r = (size_t)group * kRowLanes + threadIdx.y; r < rows;
             r += (size_t)groups * kRowLanes) {
            const size_t i = r * channels + c;
            const float v = load(x, i);
            if (kBackward) {
                const float g = dt_bn_masked_grad(load(dy, i), load(y, i), relu);
                a += g;
                b += (double)g * ((v - m) * s);
            } else {
                a += v;
                b += (double)v * v;
            }
        }
    }
    shared[0][threadIdx.y][threadIdx.x] = a;
    shared[1][threadIdx.y][threadIdx.x] = b;
    __syncthreads();
    if (threadIdx.y == 0 && c < channels) {
        for (int lane = 1; lane < kRowLanes; lane++) {
            a += shared[0][lane][threadIdx.x];
            b += shared[1][lane][threadIdx.x];
        }
        partials[((size_t)group * channels + c) * 2] = a;
        partials[((size_t)group * channels + c) * 2 + 1] = b;
    }
}

__global__ void bn_forward_finish(const double *partials, int groups, int channels, double count,
                                  float *running_mean, float *running_var, float momentum,
                                  float epsilon, float *save_mean, float *save_inv_std) {
    const int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= channels) return;
    double sum = 0.0, squares = 0.0;
    for (int g = 0; g < groups; g++) {
        sum += partials[((size_t)g * channels + c) * 2];
        squares += partials[((size_t)g * channels + c) * 2 + 1];
    }
    float mean, var;
    dt_bn_finish_stats(sum, squares, count, &mean, &var);
    save_mean[c] = mean;
    save_inv_std[c] = dt_bn_inv_std(var, epsilon);
    if (running_mean) running_mean[c] = dt_bn_running_mean(running_mean[c], mean, momentum);
    if (running_var)
        running_var[c] = dt_bn_running_var(running_var[c], var, dt_bn_unbias(count), momentum);
}

/* inference: mean and inv_std from the running statistics */
__global__ void bn_inference_stats(const float *running_mean, const float *running_var,
                                   int channels, float epsilon, float *mean, float *inv_std) {
    const int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= channels) return;
    mean[c] = running_mean[c];
    inv_std[c] = dt_bn_inv_std(running_var[c], epsilon);
}

template <typename T>
__global__ void bn_apply(const T *x, T *y, size_t count, int channels, const float *mean,
                         const float *inv_std, const float *gamma, const float *beta, int relu) {
    GRID_STRIDE(i, count) {
        const int c = (int)(i % channels);
        store(y, i, dt_bn_forward(load(x, i), mean[c], inv_std[c], gamma[c], beta[c], relu));
    }
}

__global__ void bn_backward_finish(const double *partials, int groups, int channels,
                                   float *channel_sums, float *dgamma, float *dbeta,
                                   int accumulate) {
    const int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= channels) return;
    double sum_g = 0.0, sum_g_xhat = 0.0;
    for (int g = 0; g < groups; g++) {
        sum_g += partials[((size_t)g * channels + c) * 2];
        sum_g_xhat += partials[((size_t)g * channels + c) * 2 + 1];
    }
    channel_sums[c] = (float)sum_g;
    channel_sums[channels + c] = (float)sum_g_xhat;
    if (dbeta) dbeta[c] = accumulate ? dbeta[c] + (float)sum_g : (float)sum_g;
    if (dgamma) dgamma[c] = accumulate ? dgamma[c] + (float)sum_g_xhat : (float)sum_g_xhat;
}

/* dx may alias dy: each element reads its own dy before writing */
template <typename T>
__global__ void bn_backward_dx(const T *x, const T *y, const T *dy, T *dx, size_t count,
                               int channels, const float *mean, const float *inv_std,
                               const float *gamma, const float *channel_sums, int relu,
                               float inv_count) {
    GRID_STRIDE(i, count) {
        const int c = (int)(i % channels);
        const float g = dt_bn_masked_grad(load(dy, i), load(y, i), relu);
        store(dx, i,
              dt_bn_backward_dx(g, load(x, i), mean[c], inv_std[c], gamma[c], channel_sums[c],
                                channel_sums[channels + c], inv_count));
    }
}

/* ---- element-wise -------------------------------------------------------------------------- */

template <typename T> __global__ void add_kernel(T *y, const T *x, size_t count) {
    GRID_STRIDE(i, count) store(y, i, load(y, i) + load(x, i));
}

template <typename T> __global__ void add_relu_kernel(T *y, const T *x, size_t count) {
    GRID_STRIDE(i, count) store(y, i, dt_add_relu(load(y, i), load(x, i)));
}

template <typename T>
__global__ void relu_backward_kernel(const T *y, const T *dy, T *dx, size_t count) {
    GRID_STRIDE(i, count) store(dx, i, dt_relu_grad(load(y, i), load(dy, i)));
}

struct normalize_args {
    float mean[3], std[3];
};

/* NHWC with 3 channels: the pixel bytes and the activations share one index */
template <typename T>
__global__ void normalize_kernel(const uint8_t *pixels, T *dst, size_t count, normalize_args a) {
    GRID_STRIDE(i, count) {
        const int c = (int)(i % 3);
        store(dst, i, dt_normalize_u8(pixels[i], a.mean[c], a.std[c]));
    }
}

/* ---- pooling --------------------------------------------------------------------------------- */

__device__ inline int maxpool_argmax(const float *plane, size_t stride, int h, int w, int oh,
                                     int ow, int k, int s, int p) {
    return dt_maxpool_argmax_f32(plane, stride, h, w, oh, ow, k, s, p);
}
__device__ inline int maxpool_argmax(const uint16_t *plane, size_t stride, int h, int w, int oh,
                                     int ow, int k, int s, int p) {
    return dt_maxpool_argmax_bf16(plane, stride, h, w, oh, ow, k, s, p);
}

template <typename T>
__global__ void maxpool_forward_kernel(const T *x, T *y, int32_t *argmax, int n, int c, int h,
                                       int w, int oh, int ow, int k, int s, int p) {
    const size_t count = (size_t)n * oh * ow * c;
    GRID_STRIDE(i, count) {
        int b, ch, oy, ox;
        dt_nhwc_coords(i, c, oh, ow, &b, &ch, &oy, &ox);
        const T *plane = x + (size_t)b * h * w * c + ch;
        const int best = maxpool_argmax(plane, (size_t)c, h, w, oy, ox, k, s, p);
        y[i] = plane[(size_t)best * c];
        argmax[i] = best;
    }
}

template <typename T>
__global__ void maxpool_backward_kernel(const T *dy, T *dx, const int32_t *argmax, int n, int c,
                                        int h, int w, int oh, int ow, int k, int s, int p) {
    const size_t count = (size_t)n * h * w * c;
    GRID_STRIDE(i, count) {
        int b, ch, y, x;
        dt_nhwc_coords(i, c, h, w, &b, &ch, &y, &x);
        int y_lo, y_hi, x_lo, x_hi;
        dt_pool_covering(y, k, s, p, oh, &y_lo, &y_hi);
        dt_pool_covering(x, k, s, p, ow, &x_lo, &x_hi);
        float sum = 0.0f;
        for (int oy = y_lo; oy <= y_hi; oy++)
            for (int ox = x_lo; ox <= x_hi; ox++) {
                const size_t o = dt_nhwc_index(b, ch, oy, ox, c, oh, ow);
                if (argmax[o] == y * w + x) sum += load(dy, o);
            }
        store(dx, i, sum);
    }
}

template <typename T>
__global__ void avgpool_forward_kernel(const T *x, T *y, int n, int c, int plane) {
    const size_t count = (size_t)n * c;
    const float inv_plane = 1.0f / (float)plane;
    GRID_STRIDE(i, count) {
        const int ch = (int)(i % c), b = (int)(i / c);
        float sum = 0.0f;
        for (int q = 0; q < plane; q++) sum += load(x, ((size_t)b * plane + q) * c + ch);
        store(y, i, sum * inv_plane);
    }
}

template <typename T>
__global__ void avgpool_backward_kernel(const T *dy, T *dx, int n, int c, int plane) {
    const size_t count = (size_t)n * plane * c;
    const float inv_plane = 1.0f / (float)plane;
    GRID_STRIDE(i, count) {
        const int ch = (int)(i % c), b = (int)(i / c / plane);
        store(dx, i, load(dy, (size_t)b * c + ch) * inv_plane);
    }
}

/* ---- linear ---------------------------------------------------------------------------------- */

template <typename T> __global__ void bias_fill_kernel(T *y, const float *bias, int n, int out) {
    const size_t count = (size_t)n * out;
    GRID_STRIDE(i, count) store(y, i, bias[i % out]);
}

/* in sample order, in float: the CPU backend's sum */
template <typename T>
__global__ void bias_grad_kernel(const T *dy, float *bias_grad, int n, int out, int accumulate) {
    const int o = blockIdx.x * blockDim.x + threadIdx.x;
    if (o >= out) return;
    float sum = 0.0f;
    for (int i = 0; i < n; i++) sum += load(dy, (size_t)i * out + o);
    bias_grad[o] = accumulate ? bias_grad[o] + sum : sum;
}

/* ---- softmax cross-entropy ---------------------------------------------------------------------
 */

__device__ inline int ce_row(const float *z, int k, const dt_ce_target *t, float w, float scale,
                             float *g, double *loss) {
    return dt_ce_row_f32(z, k, t, w, scale, g, loss);
}
__device__ inline int ce_row(const uint16_t *z, int k, const dt_ce_target *t, float w, float scale,
                             uint16_t *g, double *loss) {
    return dt_ce_row_bf16(z, k, t, w, scale, g, loss);
}

/* One block; each thread takes samples tid, tid + blockDim, ...; the statistics are reduced in
 * a fixed order (deterministic) and added once to the accumulator. */
template <typename T>
__global__ void softmax_cross_entropy_kernel(const T *logits, T *dlogits, int n, int k,
                                             const int32_t *labels, const int32_t *mix_labels,
                                             float mix_lambda, float label_smoothing,
                                             const float *weights, float grad_scale,
                                             int32_t *predictions, double *stats) {
    __shared__ double shared[4][kThreads];
    double mine[4] = {0.0, 0.0, 0.0, 0.0};
    for (int i = threadIdx.x; i < n; i += blockDim.x) {
        double loss, s[4];
        const float w = weights[i];
        dt_ce_target t;
        t.a = labels[i];
        t.b = mix_labels ? mix_labels[i] : t.a;
        t.mix = mix_labels ? (double)mix_lambda : 1.0;
        t.smoothing = label_smoothing;
        const int pred = ce_row(logits + (size_t)i * k, k, &t, w, grad_scale,
                                dlogits ? dlogits + (size_t)i * k : nullptr, &loss);
        if (predictions) predictions[i] = pred;
        dt_ce_stats(loss, pred, dt_ce_hard_label(&t), w, s);
        for (int j = 0; j < 4; j++) mine[j] += s[j];
    }
    for (int j = 0; j < 4; j++) shared[j][threadIdx.x] = mine[j];
    __syncthreads();
    for (int half = blockDim.x / 2; half > 0; half /= 2) {
        if ((int)threadIdx.x < half)
            for (int j = 0; j < 4; j++) shared[j][threadIdx.x] += shared[j][threadIdx.x + half];
        __syncthreads();
    }
    if (threadIdx.x == 0)
        for (int j = 0; j < 4; j++) stats[j] += shared[j][0];
}

} // namespace

extern "C" {

size_t cuda_bn_scratch(size_t rows, int channels) {
    return (size_t)row_groups(rows) * (size_t)channels * 2 * sizeof(double);
}

int cuda_launch_bn_forward_training(cudaStream_t s, const void *x, void *y, cuda_dtype dtype,
                                    size_t rows, int channels, const float *gamma,
                                    const float *beta, float *running_mean, float *running_var,
                                    float momentum, float epsilon, int relu, float *save_mean,
                                    float *save_inv_std, double *partials, dt_error *err) {
    const int groups = row_groups(rows);
    const dim3 grid((channels + kChannelTile - 1) / kChannelTile, groups);
    const dim3 block(kChannelTile, kRowLanes);
    if (dtype == CUDA_BF16)
        bn_partial_sums<uint16_t, false><<<grid, block, 0, s>>>(
            (const uint16_t *)x, nullptr, nullptr, rows, channels, nullptr, nullptr, 0, partials);
    else
        bn_partial_sums<float, false><<<grid, block, 0, s>>>(
            (const float *)x, nullptr, nullptr, rows, channels, nullptr, nullptr, 0, partials);
    if (launched(err, "batchnorm statistics kernel")) return -1;
    bn_forward_finish<<<(channels + kThreads - 1) / kThreads, kThreads, 0, s>>>(
        partials, groups, channels, (double)rows, running_mean, running_var, momentum, epsilon,
        save_mean, save_inv_std);
    if (launched(err, "batchnorm statistics final kernel")) return -1;
    const size_t count = rows * (size_t)channels;
    if (dtype == CUDA_BF16)
        bn_apply<<<grid_for(count), kThreads, 0, s>>>((const uint16_t *)x, (uint16_t *)y, count,
                                                      channels, save_mean, save_inv_std, gamma,
                                                      beta, relu);
    else
        bn_apply<<<grid_for(count), kThreads, 0, s>>>((const float *)x, (float *)y, count, channels,
                                                      save_mean, save_inv_std, gamma, beta, relu);
    return launched(err, "batchnorm forward kernel");
}

int cuda_launch_bn_forward_inference(cudaStream_t s, const void *x, void *y, cuda_dtype dtype,
                                     size_t rows, int channels, const float *gamma,
                                     const float *beta, const float *running_mean,
                                     const float *running_var, float epsilon, int relu,
                                     float *mean_out, float *inv_std_out, dt_error *err) {
    bn_inference_stats<<<(channels + kThreads - 1) / kThreads, kThreads, 0, s>>>(
        running_mean, running_var, channels, epsilon, mean_out, inv_std_out);
    if (launched(err, "batchnorm inference statistics kernel")) return -1;
    const size_t count = rows * (size_t)channels;
    if (dtype == CUDA_BF16)
        bn_apply<<<grid_for(count), kThreads, 0, s>>>((const uint16_t *)x, (uint16_t *)y, count,
                                                      channels, mean_out, inv_std_out, gamma, beta,
                                                      relu);
    else
        bn_apply<<<grid_for(count), kThreads, 0, s>>>((const float *)x, (float *)y, count, channels,
                                                      mean_out, inv_std_out, gamma, beta, relu);
    return launched(err, "batchnorm inference kernel");
}

int cuda_launch_bn_backward(cudaStream_t s, const void *x, const void *y, const void *dy, void *dx,
                            cuda_dtype dtype, size_t rows, int channels, const float *gamma,
                            const float *save_mean, const float *save_inv_std, int relu,
                            float *dgamma, float *dbeta, int accumulate, double *partials,
                            float *channel_sums, dt_error *err) {
    const int groups = row_groups(rows);
    const dim3 grid((channels + kChannelTile - 1) / kChannelTile, groups);
    const dim3 block(kChannelTile, kRowLanes);
    if (dtype == CUDA_BF16)
        bn_partial_sums<uint16_t, true>
            <<<grid, block, 0, s>>>((const uint16_t *)x, (const uint16_t *)y, (const uint16_t *)dy,
                                    rows, channels, save_mean, save_inv_std, relu, partials);
    else
        bn_partial_sums<float, true>
            <<<grid, block, 0, s>>>((const float *)x, (const float *)y, (const float *)dy, rows,
                                    channels, save_mean, save_inv_std, relu, partials);
    if (launched(err, "batchnorm backward sums kernel")) return -1;
    bn_backward_finish<<<(channels + kThreads - 1) / kThreads, kThreads, 0, s>>>(
        partials, groups, channels, channel_sums, dgamma, dbeta, accumulate);
    if (launched(err, "batchnorm backward final kernel")) return -1;
    const size_t count = rows * (size_t)channels;
    const float inv_count = (float)(1.0 / (double)rows);
    if (dtype == CUDA_BF16)
        bn_backward_dx<<<grid_for(count), kThreads, 0, s>>>(
            (const uint16_t *)x, (const uint16_t *)y, (const uint16_t *)dy, (uint16_t *)dx, count,
            channels, save_mean, save_inv_std, gamma, channel_sums, relu, inv_count);
    else
        bn_backward_dx<<<grid_for(count), kThreads, 0, s>>>(
            (const float *)x, (const float *)y, (const float *)dy, (float *)dx, count, channels,
            save_mean, save_inv_std, gamma, channel_sums, relu, inv_count);
    return launched(err, "batchnorm backward dx kernel");
}

int cuda_launch_add(cudaStream_t s, void *y, const void *x, cuda_dtype dtype, size_t count,
                    dt_error *err) {
    if (dtype == CUDA_BF16)
        add_kernel<<<grid_for(count), kThreads, 0, s>>>((uint16_t *)y, (const uint16_t *)x, count);
    else
        add_kernel<<<grid_for(count), kThreads, 0, s>>>((float *)y, (const float *)x, count);
    return launched(err, "tensor_add kernel");
}

int cuda_launch_add_relu(cudaStream_t s, void *y, const void *x, cuda_dtype dtype, size_t count,
                         dt_error *err) {
    if (dtype == CUDA_BF16)
        add_relu_kernel<<<grid_for(count), kThreads, 0, s>>>((uint16_t *)y, (const uint16_t *)x,
                                                             count);
    else
        add_relu_kernel<<<grid_for(count), kThreads, 0, s>>>((float *)y, (const float *)x, count);
    return launched(err, "add_relu kernel");
}

int cuda_launch_relu_backward(cudaStream_t s, const void *y, const void *dy, void *dx,
                              cuda_dtype dtype, size_t count, dt_error *err) {
    if (dtype == CUDA_BF16)
        relu_backward_kernel<<<grid_for(count), kThreads, 0, s>>>(
            (const uint16_t *)y, (const uint16_t *)dy, (uint16_t *)dx, count);
    else
        relu_backward_kernel<<<grid_for(count), kThreads, 0, s>>>(
            (const float *)y, (const float *)dy, (float *)dx, count);
    return launched(err, "relu_backward kernel");
}

int cuda_launch_normalize(cudaStream_t s, const uint8_t *pixels, void *dst, cuda_dtype dtype,
                          size_t pixel_count, const float mean[3], const float std[3],
                          dt_error *err) {
    normalize_args a;
    for (int c = 0; c < 3; c++) a.mean[c] = mean[c], a.std[c] = std[c];
    const size_t count = pixel_count * 3;
    if (dtype == CUDA_BF16)
        normalize_kernel<<<grid_for(count), kThreads, 0, s>>>(pixels, (uint16_t *)dst, count, a);
    else
        normalize_kernel<<<grid_for(count), kThreads, 0, s>>>(pixels, (float *)dst, count, a);
    return launched(err, "input normalisation kernel");
}

int cuda_launch_maxpool_forward(cudaStream_t s, const void *x, void *y, int32_t *argmax,
                                cuda_dtype dtype, int n, int c, int h, int w, int oh, int ow,
                                int kernel, int stride, int padding, dt_error *err) {
    const size_t count = (size_t)n * oh * ow * c;
    if (dtype == CUDA_BF16)
        maxpool_forward_kernel<<<grid_for(count), kThreads, 0, s>>>(
            (const uint16_t *)x, (uint16_t *)y, argmax, n, c, h, w, oh, ow, kernel, stride,
            padding);
    else
        maxpool_forward_kernel<<<grid_for(count), kThreads, 0, s>>>(
            (const float *)x, (float *)y, argmax, n, c, h, w, oh, ow, kernel, stride, padding);
    return launched(err, "max-pool forward kernel");
}

int cuda_launch_maxpool_backward(cudaStream_t s, const void *dy, void *dx, const int32_t *argmax,
                                 cuda_dtype dtype, int n, int c, int h, int w, int oh, int ow,
                                 int kernel, int stride, int padding, dt_error *err) {
    const size_t count = (size_t)n * h * w * c;
    if (dtype == CUDA_BF16)
        maxpool_backward_kernel<<<grid_for(count), kThreads, 0, s>>>(
            (const uint16_t *)dy, (uint16_t *)dx, argmax, n, c, h, w, oh, ow, kernel, stride,
            padding);
    else
        maxpool_backward_kernel<<<grid_for(count), kThreads, 0, s>>>(
            (const float *)dy, (float *)dx, argmax, n, c, h, w, oh, ow, kernel, stride, padding);
    return launched(err, "max-pool backward kernel");
}

int cuda_launch_avgpool_forward(cudaStream_t s, const void *x, void *y, cuda_dtype dtype, int n,
                                int c, int plane, dt_error *err) {
    const size_t count = (size_t)n * c;
    if (dtype == CUDA_BF16)
        avgpool_forward_kernel<<<grid_for(count), kThreads, 0, s>>>((const uint16_t *)x,
                                                                    (uint16_t *)y, n, c, plane);
    else
        avgpool_forward_kernel<<<grid_for(count), kThreads, 0, s>>>((const float *)x, (float *)y, n,
                                                                    c, plane);
    return launched(err, "average-pool forward kernel");
}

int cuda_launch_avgpool_backward(cudaStream_t s, const void *dy, void *dx, cuda_dtype dtype, int n,
                                 int c, int plane, dt_error *err) {
    const size_t count = (size_t)n * c * plane;
    if (dtype == CUDA_BF16)
        avgpool_backward_kernel<<<grid_for(count), kThreads, 0, s>>>((const uint16_t *)dy,
                                                                     (uint16_t *)dx, n, c, plane);
    else
        avgpool_backward_kernel<<<grid_for(count), kThreads, 0, s>>>((const float *)dy, (float *)dx,
                                                                     n, c, plane);
    return launched(err, "average-pool backward kernel");
}

int cuda_launch_bias_fill(cudaStream_t s, void *y, cuda_dtype dtype, const float *bias, int n,
                          int out, dt_error *err) {
    const size_t count = (size_t)n * out;
    if (dtype == CUDA_BF16)
        bias_fill_kernel<<<grid_for(count), kThreads, 0, s>>>((uint16_t *)y, bias, n, out);
    else
        bias_fill_kernel<<<grid_for(count), kThreads, 0, s>>>((float *)y, bias, n, out);
    return launched(err, "linear bias kernel");
}

int cuda_launch_bias_grad(cudaStream_t s, const void *dy, cuda_dtype dtype, float *bias_grad, int n,
                          int out, int accumulate, dt_error *err) {
    const unsigned blocks = (unsigned)((out + kThreads - 1) / kThreads);
    if (dtype == CUDA_BF16)
        bias_grad_kernel<<<blocks, kThreads, 0, s>>>((const uint16_t *)dy, bias_grad, n, out,
                                                     accumulate);
    else
        bias_grad_kernel<<<blocks, kThreads, 0, s>>>((const float *)dy, bias_grad, n, out,
                                                     accumulate);
    return launched(err, "linear bias-gradient kernel");
}

int cuda_launch_softmax_cross_entropy(cudaStream_t s, const void *logits, void *dlogits,
                                      cuda_dtype dtype, int n, int k, const int32_t *labels,
                                      const int32_t *mix_labels, float mix_lambda,
                                      float label_smoothing, const float *weights, float grad_scale,
                                      int32_t *predictions, double *stats, dt_error *err) {
    if (dtype == CUDA_BF16)
        softmax_cross_entropy_kernel<<<1, kThreads, 0, s>>>(
            (const uint16_t *)logits, (uint16_t *)dlogits, n, k, labels, mix_labels, mix_lambda,
            label_smoothing, weights, grad_scale, predictions, stats);
    else
        softmax_cross_entropy_kernel<<<1, kThreads, 0, s>>>(
            (const float *)logits, (float *)dlogits, n, k, labels, mix_labels, mix_lambda,
            label_smoothing, weights, grad_scale, predictions, stats);
    return launched(err, "softmax cross-entropy kernel");
}

} // extern "C"
