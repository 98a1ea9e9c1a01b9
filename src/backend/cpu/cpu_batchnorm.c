/* Batch normalisation layer of the CPU backend (optionally fused with the following ReLU):
 * oneDNN training-forward and inference-forward primitives created once per layer; the backward
 * is the backend's own (cpu_batchnorm_backward.c).
 * The training forward computes the batch mean/variance itself with double accumulation (oneDNN
 * sums in float, which loses digits when a channel's mean is large against its spread) and
 * hands them to oneDNN as given statistics; it keeps them (and the ReLU mask workspace) for the
 * backward and updates the running statistics as torch does, with the unbiased variance. */
#include "cpu_internal.h"

#include <stdlib.h>

typedef struct cpu_batchnorm {
    dt_layer base;
    cpu_ctx *ctx;
    dt_batchnorm_desc d;
    cpu_primitive training, inference;
    /* per-channel vectors; the parameter and running-stat ones point into caller buffers */
    dnnl_memory_t scale, shift, mean_in, variance_in;
    float *batch_mean, *batch_variance; /* saved by the training forward */
    dnnl_memory_t batch_mean_memory, batch_variance_memory;
    float *coefficients;  /* 3 per channel: the backward's scratch */
    double *partial_sums; /* per (image, channel): two sums (forward and backward) */
    void *workspace;      /* ReLU mask of the fused training forward */
    dnnl_memory_t workspace_memory;
    int trained; /* a training forward has run: the backward has what it needs */
} cpu_batchnorm;

static void batchnorm_destroy(dt_layer *layer) {
    cpu_batchnorm *bn = (cpu_batchnorm *)layer;
    cpu_primitive_destroy(&bn->training);
    cpu_primitive_destroy(&bn->inference);
    dnnl_memory_t memories[] = {bn->scale,
                                bn->shift,
                                bn->mean_in,
                                bn->variance_in,
                                bn->batch_mean_memory,
                                bn->batch_variance_memory,
                                bn->workspace_memory};
    for (size_t i = 0; i < sizeof memories / sizeof *memories; i++)
        if (memories[i]) dnnl_memory_destroy(memories[i]);
    cpu_aligned_free(bn->batch_mean);
    cpu_aligned_free(bn->batch_variance);
    cpu_aligned_free(bn->coefficients);
    cpu_aligned_free(bn->workspace);
    cpu_aligned_free(bn->partial_sums);
    free(bn);
}

static int batchnorm_build(cpu_batchnorm *bn, dt_error *err) {
    const dt_batchnorm_desc *d = &bn->d;
    cpu_ctx *ctx = bn->ctx;
    dnnl_memory_desc_t data_md, channel_md;
    const dnnl_dims_t channel_dims = {d->channels};
    if (cpu_activation_md(ctx, &data_md, d->batch, d->channels, d->height, d->width, err) ||
        cpu_check(dnnl_memory_desc_init_by_tag(&channel_md, 1, channel_dims, dnnl_f32, dnnl_a), err,
                  "describing per-channel vectors"))
        return -1;
    unsigned flags = dnnl_use_scale | dnnl_use_shift | (d->fuse_relu ? dnnl_fuse_norm_relu : 0);

    dnnl_batch_normalization_desc_t training_desc, inference_desc;
    /* training: the batch statistics come in (computed here); the backward (computed here too)
     * takes the full derivative through them */
    if (cpu_check(dnnl_batch_normalization_forward_desc_init(&training_desc, dnnl_forward_training,
                                                             &data_md, d->epsilon,
                                                             flags | dnnl_use_global_stats),
                  err, "describing the batchnorm training forward") ||
        cpu_check(dnnl_batch_normalization_forward_desc_init(
                      &inference_desc, dnnl_forward_inference, &data_md, d->epsilon,
                      flags | dnnl_use_global_stats),
                  err, "describing the batchnorm inference forward"))
        return -1;

    dnnl_primitive_desc_t training_pd = NULL, inference_pd = NULL;
    int rc = -1;
    /* small tensors: oneDNN's forward made and run on one thread, as the loops here decide */
    const int one_thread = cpu_one_thread_suits(dnnl_memory_desc_get_size(&data_md));
    const int threads = cpu_threads_limit(one_thread);
    if (cpu_primitive_desc_create(ctx, &training_desc, NULL, &training_pd, err,
                                  "batchnorm training forward") ||
        cpu_primitive_desc_create(ctx, &inference_desc, NULL, &inference_pd, err,
                                  "batchnorm inference forward") ||
        cpu_primitive_create(ctx, training_pd, &bn->training, err, "batchnorm training forward") ||
        cpu_primitive_create(ctx, inference_pd, &bn->inference, err, "batchnorm inference forward"))
        goto done;
    bn->training.one_thread = bn->inference.one_thread = one_thread;

    size_t channel_bytes = (size_t)d->channels * sizeof(float);
    bn->batch_mean = cpu_aligned_alloc(channel_bytes, 1);
    bn->batch_variance = cpu_aligned_alloc(channel_bytes, 1);
    bn->coefficients = cpu_aligned_alloc(3 * channel_bytes, 1);
    bn->partial_sums = cpu_aligned_alloc((size_t)d->batch * d->channels * 2 * sizeof(double), 1);
    if (!bn->batch_mean || !bn->batch_variance || !bn->coefficients || !bn->partial_sums) {
        dt_fail(err, "out of memory for batchnorm statistics");
        goto done;
    }
    if (d->fuse_relu) {
        const dnnl_memory_desc_t *workspace_md =
            dnnl_primitive_desc_query_md(training_pd, dnnl_query_workspace_md, 0);
        bn->workspace = cpu_aligned_alloc(dnnl_memory_desc_get_size(workspace_md), 1);
        if (!bn->workspace) {
            dt_fail(err, "out of memory for the batchnorm ReLU workspace");
            goto done;
        }
        if (cpu_memory_create(ctx, workspace_md, bn->workspace, &bn->workspace_memory, err))
            goto done;
    }
    if (cpu_memory_create(ctx, &channel_md, NULL, &bn->scale, err) ||
        cpu_memory_create(ctx, &channel_md, NULL, &bn->shift, err) ||
        cpu_memory_create(ctx, &channel_md, NULL, &bn->mean_in, err) ||
        cpu_memory_create(ctx, &channel_md, NULL, &bn->variance_in, err) ||
        cpu_memory_create(ctx, &channel_md, bn->batch_mean, &bn->batch_mean_memory, err) ||
        cpu_memory_create(ctx, &channel_md, bn->batch_variance, &bn->batch_variance_memory, err))
        goto done;
    rc = 0;
done:
    cpu_threads_restore(one_thread, threads);
    if (training_pd) dnnl_primitive_desc_destroy(training_pd);
    if (inference_pd) dnnl_primitive_desc_destroy(inference_pd);
    return rc;
}

dt_layer *cpu_batchnorm_create(void *ctx, const dt_batchnorm_desc *d, dt_error *err) {
    if (dt_batchnorm_desc_check(d, err)) return NULL;
    cpu_batchnorm *bn = calloc(1, sizeof *bn);
    if (!bn) {
        dt_fail(err, "out of memory creating a batchnorm");
        return NULL;
    }
    bn->base = (dt_layer){batchnorm_destroy};
    bn->ctx = ctx;
    bn->d = *d;
    if (batchnorm_build(bn, err) != 0) {
        dt_error_prefix(err, "batchnorm_create (%dx%dx%dx%d)", d->batch, d->channels, d->height,
                        d->width);
        batchnorm_destroy(&bn->base);
        return NULL;
    }
    return &bn->base;
}

static int batchnorm_expect(const cpu_batchnorm *bn, const dt_tensor *t, const char *op,
                            const char *name, dt_error *err) {
    const dt_batchnorm_desc *d = &bn->d;
    return cpu_tensor_expect(t, d->batch, d->channels, d->height, d->width, op, name, err);
}

/* Sums and sums of squares, in double, of `plane` pixels of B interleaved channels (one
 * nChw8c or nChw16c block). Inlined with B a constant into one function per block size, each
 * cloned for AVX-512 and AVX2 and chosen at load time by the CPU. */
static inline __attribute__((always_inline)) void block_sums(const float *in, long long plane,
                                                             double *out, const int B) {
    double sum[CPU_BLOCK_MAX] = {0}, squares[CPU_BLOCK_MAX] = {0};
    for (long long p = 0; p < plane; p++)
        for (int k = 0; k < B; k++) {
            double v = in[p * B + k];
            sum[k] += v;
            squares[k] += v * v;
        }
    for (int k = 0; k < B; k++) {
        out[2 * k] = sum[k];
        out[2 * k + 1] = squares[k];
    }
}

__attribute__((target_clones("avx512f", "avx2", "default"))) static void
block_sums8(const float *in, long long plane, double *out) {
    block_sums(in, plane, out, 8);
}

__attribute__((target_clones("avx512f", "avx2", "default"))) static void
block_sums16(const float *in, long long plane, double *out) {
    block_sums(in, plane, out, 16);
}

/* Per-channel mean and biased variance of x into batch_mean/batch_variance: sums and sums of
 * squares in double per (image, channel) in parallel, then per channel. */
static void batchnorm_batch_statistics(cpu_batchnorm *bn, const dt_tensor *x) {
    const int images = x->n, channels = x->c;
    const long long plane = (long long)x->h * x->w;
    const int one_thread = cpu_one_thread_suits(x->count * sizeof(float));
    double *partial = bn->partial_sums; /* [image][channel][sum, sum of squares] */
    if (x->layout == CPU_LAYOUT_BLOCKED) {
        /* task t: image t / (C/B), channels B * (t % (C/B)) .. + B-1 (B = x->block), i.e. the
         * partial sums of [image][channel] from t * B on */
        const int B = x->block;
        const long long tasks = (long long)images * (channels / B);
#pragma omp parallel for if (!one_thread) schedule(static)
        for (long long t = 0; t < tasks; t++) {
            if (B == 16)
                block_sums16(x->data + t * plane * B, plane, partial + 2 * t * B);
            else
                block_sums8(x->data + t * plane * B, plane, partial + 2 * t * B);
        }
    } else {
        const long long tasks = (long long)images * channels;
#pragma omp parallel for if (!one_thread) schedule(static)
        for (long long t = 0; t < tasks; t++) {
            const float *in = x->data + t * plane;
            double sum = 0.0, squares = 0.0;
            for (long long p = 0; p < plane; p++) {
                double v = in[p];
                sum += v;
                squares += v * v;
            }
            partial[2 * t] = sum;
            partial[2 * t + 1] = squares;
        }
    }
    const double count = (double)images * plane;
    for (int c = 0; c < channels; c++) {
        double sum = 0.0, squares = 0.0;
        for (int n = 0; n < images; n++) {
            sum += partial[2 * ((size_t)n * channels + c)];
            squares += partial[2 * ((size_t)n * channels + c) + 1];
        }
        double mean = sum / count, variance = squares / count - mean * mean;
        bn->batch_mean[c] = (float)mean;
        bn->batch_variance[c] = (float)(variance > 0.0 ? variance : 0.0);
    }
}

/* running = (1 - m) * running + m * batch, with the unbiased batch variance (torch). */
static void batchnorm_update_running(cpu_batchnorm *bn, float *running_mean, float *running_var) {
    const dt_batchnorm_desc *d = &bn->d;
    const double count = (double)d->batch * d->height * d->width;
    const float unbias = (float)(count / (count - 1.0));
    const float m = d->momentum;
    for (int c = 0; c < d->channels; c++) {
        if (running_mean) running_mean[c] = (1.0f - m) * running_mean[c] + m * bn->batch_mean[c];
        if (running_var)
            running_var[c] = (1.0f - m) * running_var[c] + m * unbias * bn->batch_variance[c];
    }
}

int cpu_batchnorm_forward(void *ctx, dt_layer *l, const float *gamma, const float *beta,
                          float *running_mean, float *running_var, int training, const dt_tensor *x,
                          dt_tensor *y, dt_error *err) {
    cpu_batchnorm *bn = (cpu_batchnorm *)l;
    (void)ctx;
    if (batchnorm_expect(bn, x, "batchnorm_forward", "x", err) ||
        batchnorm_expect(bn, y, "batchnorm_forward", "y", err))
        return -1;
    if (cpu_memory_point(bn->scale, gamma, err) || cpu_memory_point(bn->shift, beta, err))
        return -1;
    if (!training) {
        if (!running_mean || !running_var)
            return dt_fail(err, "batchnorm_forward: inference needs the running statistics");
        if (cpu_memory_point(bn->mean_in, running_mean, err) ||
            cpu_memory_point(bn->variance_in, running_var, err))
            return -1;
        dnnl_exec_arg_t args[] = {
            {DNNL_ARG_SRC, x->memory},    {DNNL_ARG_DST, y->memory},
            {DNNL_ARG_SCALE, bn->scale},  {DNNL_ARG_SHIFT, bn->shift},
            {DNNL_ARG_MEAN, bn->mean_in}, {DNNL_ARG_VARIANCE, bn->variance_in}};
        return cpu_primitive_execute(bn->ctx, &bn->inference, 6, args, err,
                                     "batchnorm inference forward");
    }
    if ((long long)bn->d.batch * bn->d.height * bn->d.width < 2)
        return dt_fail(err, "batchnorm_forward: training needs more than 1 value per channel");
    dnnl_exec_arg_t args[] = {{DNNL_ARG_SRC, x->memory},
                              {DNNL_ARG_DST, y->memory},
                              {DNNL_ARG_SCALE, bn->scale},
                              {DNNL_ARG_SHIFT, bn->shift},
                              {DNNL_ARG_MEAN, bn->batch_mean_memory},
                              {DNNL_ARG_VARIANCE, bn->batch_variance_memory},
                              {DNNL_ARG_WORKSPACE, bn->workspace_memory}};
    bn->trained = 0;
    batchnorm_batch_statistics(bn, x);
    if (cpu_primitive_execute(bn->ctx, &bn->training, bn->d.fuse_relu ? 7 : 6, args, err,
                              "batchnorm training forward") != 0)
        return -1;
    bn->trained = 1;
    batchnorm_update_running(bn, running_mean, running_var);
    return 0;
}

int cpu_batchnorm_backward(void *ctx, dt_layer *l, const float *gamma, const float *beta,
                           const dt_tensor *x, const dt_tensor *y, const dt_tensor *dy,
                           dt_tensor *dx, float *dgamma, float *dbeta, int accumulate,
                           dt_error *err) {
    cpu_batchnorm *bn = (cpu_batchnorm *)l;
    (void)ctx;
    (void)beta;
    if (batchnorm_expect(bn, x, "batchnorm_backward", "x", err) ||
        batchnorm_expect(bn, dy, "batchnorm_backward", "dy", err) ||
        batchnorm_expect(bn, dx, "batchnorm_backward", "dx", err) ||
        (bn->d.fuse_relu && batchnorm_expect(bn, y, "batchnorm_backward", "y", err)))
        return -1;
    if (!bn->trained)
        return dt_fail(err, "batchnorm_backward: no training forward ran on this layer");
    const cpu_batchnorm_grad g = {.x = x,
                                  .y = y,
                                  .dy = dy,
                                  .dx = dx,
                                  .gamma = gamma,
                                  .mean = bn->batch_mean,
                                  .variance = bn->batch_variance,
                                  .epsilon = bn->d.epsilon,
                                  .relu = bn->d.fuse_relu,
                                  .accumulate = accumulate,
                                  .dgamma = dgamma,
                                  .dbeta = dbeta,
                                  .partial = bn->partial_sums,
                                  .coefficients = bn->coefficients};
    return cpu_batchnorm_backward_compute(&g);
}
