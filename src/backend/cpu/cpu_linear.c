/* Fully connected layer of the CPU backend through oneDNN's sgemm. Its activations are
 * (n, features, 1, 1), which both layouts store as the plain row-major [n][features] matrix. */
#include "cpu_internal.h"

#include <stdlib.h>

typedef struct cpu_linear {
    dt_layer base;
    dt_linear_desc d;
} cpu_linear;

static void linear_destroy(dt_layer *layer) {
    free(layer);
}

dt_layer *cpu_linear_create(void *ctx, const dt_linear_desc *d, dt_error *err) {
    cpu_linear *linear = calloc(1, sizeof *linear);
    if (!linear) {
        dt_fail(err, "out of memory creating a linear layer");
        return NULL;
    }
    linear->base = (dt_layer){linear_destroy};
    linear->d = *d;
    if (cpu_grad_scratch_reserve(ctx, (size_t)d->in_features * d->out_features, err) != 0) {
        free(linear);
        return NULL;
    }
    return &linear->base;
}

int cpu_linear_forward(void *ctx, dt_layer *l, const float *weight, const float *bias,
                       const dt_tensor *x, dt_tensor *y, dt_error *err) {
    const dt_linear_desc *d = &((cpu_linear *)l)->d;
    (void)ctx;
    if (cpu_tensor_expect(x, d->batch, d->in_features, 1, 1, "linear_forward", "x", err) ||
        cpu_tensor_expect(y, d->batch, d->out_features, 1, 1, "linear_forward", "y", err))
        return -1;
    const int n = d->batch, in = d->in_features, out = d->out_features;
    float beta = 0.0f;
    if (bias) {
        for (int i = 0; i < n; i++)
            for (int o = 0; o < out; o++) y->data[(size_t)i * out + o] = bias[o];
        beta = 1.0f;
    }
    /* y[n][out] = x[n][in] * weight[out][in]^T (+ y) */
    return cpu_check(
        dnnl_sgemm('N', 'T', n, out, in, 1.0f, x->data, in, weight, in, beta, y->data, out), err,
        "linear forward sgemm");
}

int cpu_linear_backward(void *ctx, dt_layer *l, const float *weight, const dt_tensor *x,
                        const dt_tensor *dy, dt_tensor *dx, float *weight_grad, float *bias_grad,
                        int accumulate, dt_error *err) {
    const dt_linear_desc *d = &((cpu_linear *)l)->d;
    cpu_ctx *cpu = ctx;
    if (cpu_tensor_expect(x, d->batch, d->in_features, 1, 1, "linear_backward", "x", err) ||
        cpu_tensor_expect(dy, d->batch, d->out_features, 1, 1, "linear_backward", "dy", err) ||
        (dx && cpu_tensor_expect(dx, d->batch, d->in_features, 1, 1, "linear_backward", "dx", err)))
        return -1;
    const int n = d->batch, in = d->in_features, out = d->out_features;
    /* weight_grad[out][in] = dy[n][out]^T * x[n][in]; accumulating: computed in the scratch,
     * then added */
    if (weight_grad) {
        float *target = accumulate ? cpu->grad_scratch : weight_grad;
        if (cpu_check(dnnl_sgemm('T', 'N', out, in, n, 1.0f, dy->data, out, x->data, in, 0.0f,
                                 target, in),
                      err, "linear weight-gradient sgemm"))
            return -1;
        if (accumulate) cpu_add_floats(weight_grad, target, (size_t)out * in);
    }
    if (bias_grad) {
        float *target = accumulate ? cpu->grad_scratch : bias_grad;
        for (int o = 0; o < out; o++) target[o] = 0.0f;
        for (int i = 0; i < n; i++)
            for (int o = 0; o < out; o++) target[o] += dy->data[(size_t)i * out + o];
        if (accumulate) cpu_add_floats(bias_grad, target, (size_t)out);
    }
    /* dx[n][in] = dy[n][out] * weight[out][in] */
    if (dx && cpu_check(dnnl_sgemm('N', 'N', n, in, out, 1.0f, dy->data, out, weight, in, 0.0f,
                                   dx->data, in),
                        err, "linear input-gradient sgemm"))
        return -1;
    return 0;
}
