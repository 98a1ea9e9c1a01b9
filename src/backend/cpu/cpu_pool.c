/* Pooling for the CPU backend: max pooling through oneDNN (primitives created once per layer,
 * the argmax workspace kept between forward and backward; padding acts as -inf, as in torch)
 * and global average pooling as plain OpenMP loops over either activation layout. */
#include "cpu_internal.h"

#include <stdlib.h>

typedef struct cpu_maxpool {
    dt_layer base;
    cpu_ctx *ctx;
    dt_pool_desc d;
    int out_height, out_width;
    cpu_primitive forward, backward;
    void *workspace;
    dnnl_memory_t workspace_memory;
    int trained; /* a forward has filled the workspace */
} cpu_maxpool;

static void maxpool_destroy(dt_layer *layer) {
    cpu_maxpool *pool = (cpu_maxpool *)layer;
    cpu_primitive_destroy(&pool->forward);
    cpu_primitive_destroy(&pool->backward);
    if (pool->workspace_memory) dnnl_memory_destroy(pool->workspace_memory);
    cpu_aligned_free(pool->workspace);
    free(pool);
}

static int maxpool_build(cpu_maxpool *pool, dt_error *err) {
    const dt_pool_desc *d = &pool->d;
    dnnl_memory_desc_t src_md, dst_md;
    const dnnl_dims_t strides = {d->stride, d->stride}, kernel = {d->kernel, d->kernel};
    const dnnl_dims_t padding = {d->padding, d->padding};
    if (cpu_activation_md(pool->ctx, &src_md, d->batch, d->channels, d->in_height, d->in_width,
                          err) ||
        cpu_activation_md(pool->ctx, &dst_md, d->batch, d->channels, pool->out_height,
                          pool->out_width, err))
        return -1;
    dnnl_pooling_desc_t forward_desc, backward_desc;
    if (cpu_check(dnnl_pooling_forward_desc_init(&forward_desc, dnnl_forward_training,
                                                 dnnl_pooling_max, &src_md, &dst_md, strides,
                                                 kernel, padding, padding),
                  err, "describing the max-pool forward") ||
        cpu_check(dnnl_pooling_backward_desc_init(&backward_desc, dnnl_pooling_max, &src_md,
                                                  &dst_md, strides, kernel, padding, padding),
                  err, "describing the max-pool backward"))
        return -1;
    dnnl_primitive_desc_t forward_pd = NULL, backward_pd = NULL;
    int rc = -1;
    if (cpu_primitive_desc_create(pool->ctx, &forward_desc, NULL, &forward_pd, err,
                                  "max-pool forward") ||
        cpu_primitive_desc_create(pool->ctx, &backward_desc, forward_pd, &backward_pd, err,
                                  "max-pool backward") ||
        cpu_primitive_create(pool->ctx, forward_pd, &pool->forward, err, "max-pool forward") ||
        cpu_primitive_create(pool->ctx, backward_pd, &pool->backward, err, "max-pool backward"))
        goto done;
    const dnnl_memory_desc_t *workspace_md =
        dnnl_primitive_desc_query_md(forward_pd, dnnl_query_workspace_md, 0);
    pool->workspace = cpu_aligned_alloc(dnnl_memory_desc_get_size(workspace_md), 1);
    if (!pool->workspace) {
        dt_fail(err, "out of memory for the max-pool workspace");
        goto done;
    }
    if (cpu_memory_create(pool->ctx, workspace_md, pool->workspace, &pool->workspace_memory, err))
        goto done;
    rc = 0;
done:
    if (forward_pd) dnnl_primitive_desc_destroy(forward_pd);
    if (backward_pd) dnnl_primitive_desc_destroy(backward_pd);
    return rc;
}

dt_layer *cpu_maxpool_create(void *ctx, const dt_pool_desc *d, dt_error *err) {
    int out_height, out_width;
    if (dt_pool_desc_check(d, &out_height, &out_width, err)) return NULL;
    cpu_maxpool *pool = calloc(1, sizeof *pool);
    if (!pool) {
        dt_fail(err, "out of memory creating a max-pool");
        return NULL;
    }
    pool->base = (dt_layer){maxpool_destroy};
    pool->ctx = ctx;
    pool->d = *d;
    pool->out_height = out_height;
    pool->out_width = out_width;
    if (maxpool_build(pool, err) != 0) {
        dt_error_prefix(err, "maxpool_create");
        maxpool_destroy(&pool->base);
        return NULL;
    }
    return &pool->base;
}

static int maxpool_expect(const cpu_maxpool *pool, const dt_tensor *x, const dt_tensor *y,
                          const char *op, const char *x_name, const char *y_name, dt_error *err) {
    const dt_pool_desc *d = &pool->d;
    if (cpu_tensor_expect(x, d->batch, d->channels, d->in_height, d->in_width, op, x_name, err))
        return -1;
    return cpu_tensor_expect(y, d->batch, d->channels, pool->out_height, pool->out_width, op,
                             y_name, err);
}

int cpu_maxpool_forward(void *ctx, dt_layer *l, const dt_tensor *x, dt_tensor *y, dt_error *err) {
    cpu_maxpool *pool = (cpu_maxpool *)l;
    (void)ctx;
    if (maxpool_expect(pool, x, y, "maxpool_forward", "x", "y", err) != 0) return -1;
    dnnl_exec_arg_t args[] = {{DNNL_ARG_SRC, x->memory},
                              {DNNL_ARG_DST, y->memory},
                              {DNNL_ARG_WORKSPACE, pool->workspace_memory}};
    pool->trained = 0;
    if (cpu_primitive_execute(pool->ctx, &pool->forward, 3, args, err, "max-pool forward") != 0)
        return -1;
    pool->trained = 1;
    return 0;
}

int cpu_maxpool_backward(void *ctx, dt_layer *l, const dt_tensor *dy, dt_tensor *dx,
                         dt_error *err) {
    cpu_maxpool *pool = (cpu_maxpool *)l;
    (void)ctx;
    if (maxpool_expect(pool, dx, dy, "maxpool_backward", "dx", "dy", err) != 0) return -1;
    if (!pool->trained) return dt_fail(err, "maxpool_backward: no forward ran on this layer");
    dnnl_exec_arg_t args[] = {{DNNL_ARG_DIFF_DST, dy->memory},
                              {DNNL_ARG_DIFF_SRC, dx->memory},
                              {DNNL_ARG_WORKSPACE, pool->workspace_memory}};
    return cpu_primitive_execute(pool->ctx, &pool->backward, 3, args, err, "max-pool backward");
}

static int avgpool_expect(const dt_tensor *x, const dt_tensor *y, const char *op, dt_error *err) {
    if (!x || !y) return dt_fail(err, "%s: a tensor is missing", op);
    return cpu_tensor_expect(y, x->n, x->c, 1, 1, op, "the pooled tensor", err);
}

/* The pooled tensor (n,c,1,1) is the plain [n][c] matrix in either layout. */
int cpu_avgpool_forward(void *ctx, const dt_tensor *x, dt_tensor *y, dt_error *err) {
    (void)ctx;
    if (avgpool_expect(x, y, "avgpool_forward", err) != 0) return -1;
    const long long plane = (long long)x->h * x->w;
    const float inv_plane = 1.0f / (float)plane;
    if (x->layout == CPU_LAYOUT_NCHW) {
        const long long planes = (long long)x->n * x->c;
#pragma omp parallel for schedule(static)
        for (long long i = 0; i < planes; i++) {
            const float *in = x->data + i * plane;
            float sum = 0.0f;
            for (long long p = 0; p < plane; p++) sum += in[p];
            y->data[i] = sum * inv_plane;
        }
        return 0;
    }
    const int B = x->block;
    const long long blocks = (long long)x->n * (x->c / B);
#pragma omp parallel for schedule(static)
    for (long long b = 0; b < blocks; b++) {
        const float *in = x->data + b * plane * B;
        float sum[CPU_BLOCK_MAX] = {0};
        for (long long p = 0; p < plane; p++)
            for (int k = 0; k < B; k++) sum[k] += in[p * B + k];
        /* block b covers channels B*(b % C/B).. of image b / (C/B): y offset b * B */
        for (int k = 0; k < B; k++) y->data[b * B + k] = sum[k] * inv_plane;
    }
    return 0;
}

int cpu_avgpool_backward(void *ctx, const dt_tensor *dy, dt_tensor *dx, dt_error *err) {
    (void)ctx;
    if (avgpool_expect(dx, dy, "avgpool_backward", err) != 0) return -1;
    const long long plane = (long long)dx->h * dx->w;
    const float inv_plane = 1.0f / (float)plane;
    if (dx->layout == CPU_LAYOUT_NCHW) {
        const long long planes = (long long)dx->n * dx->c;
#pragma omp parallel for schedule(static)
        for (long long i = 0; i < planes; i++) {
            const float g = dy->data[i] * inv_plane;
            float *out = dx->data + i * plane;
            for (long long p = 0; p < plane; p++) out[p] = g;
        }
        return 0;
    }
    const int B = dx->block;
    const long long blocks = (long long)dx->n * (dx->c / B);
#pragma omp parallel for schedule(static)
    for (long long b = 0; b < blocks; b++) {
        float g[CPU_BLOCK_MAX];
        for (int k = 0; k < B; k++) g[k] = dy->data[b * B + k] * inv_plane;
        float *out = dx->data + b * plane * B;
        for (long long p = 0; p < plane; p++)
            for (int k = 0; k < B; k++) out[p * B + k] = g[k];
    }
    return 0;
}
