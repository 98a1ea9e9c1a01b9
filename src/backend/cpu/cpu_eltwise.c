/* Element-wise activation ops of the CPU backend: the residual join y = relu(y + x) and the
 * ReLU backward. Tensors of one shape share one layout without padding, so both run as
 * vectorised OpenMP loops over the flat buffers. */
#include "cpu_internal.h"

int cpu_add_relu_forward(void *ctx, dt_tensor *y, const dt_tensor *x, dt_error *err) {
    (void)ctx;
    if (cpu_tensor_same_shape(y, x, "add_relu_forward", err) != 0) return -1;
    float *out = y->data;
    const float *in = x->data;
    const long long n = (long long)y->count;
    const int one_thread = cpu_one_thread_suits((size_t)n * sizeof(float));
#pragma omp parallel for simd if (!one_thread) schedule(static)
    for (long long i = 0; i < n; i++) {
        float sum = out[i] + in[i];
        out[i] = sum > 0.0f ? sum : 0.0f;
    }
    return 0;
}

int cpu_relu_backward(void *ctx, const dt_tensor *y, const dt_tensor *dy, dt_tensor *dx,
                      dt_error *err) {
    (void)ctx;
    if (cpu_tensor_same_shape(y, dy, "relu_backward", err) != 0 ||
        cpu_tensor_same_shape(y, dx, "relu_backward", err) != 0)
        return -1;
    const float *out = y->data, *grad_out = dy->data;
    float *grad_in = dx->data;
    const long long n = (long long)y->count;
    const int one_thread = cpu_one_thread_suits((size_t)n * sizeof(float));
    /* both loads unconditional: a load under the condition keeps the loop scalar and branchy */
#pragma omp parallel for simd if (!one_thread) schedule(static)
    for (long long i = 0; i < n; i++) {
        const float g = grad_out[i];
        grad_in[i] = out[i] > 0.0f ? g : 0.0f;
    }
    return 0;
}
