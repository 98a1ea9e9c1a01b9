/* The CPU backend: its function table, its context (oneDNN engine and stream, the shared
 * scratchpad) and the OpenMP thread count. The ops themselves live in one file per job. */
#include "cpu_internal.h"

#include <stdlib.h>

#include <omp.h>

static void cpu_destroy(void *opaque) {
    cpu_ctx *ctx = opaque;
    if (!ctx) return;
    if (ctx->stream) dnnl_stream_destroy(ctx->stream);
    if (ctx->engine) dnnl_engine_destroy(ctx->engine);
    cpu_aligned_free(ctx->scratchpad);
    free(ctx);
}

static int cpu_synchronize(void *opaque, dt_error *err) {
    cpu_ctx *ctx = opaque;
    return cpu_check(dnnl_stream_wait(ctx->stream), err, "waiting for the stream");
}

static void cpu_layer_destroy(void *ctx, dt_layer *layer) {
    (void)ctx;
    if (layer) layer->destroy(layer);
}

static const dt_backend_ops cpu_ops = {
    .name = "cpu",
    .destroy = cpu_destroy,
    .synchronize = cpu_synchronize,
    .buffer_alloc = cpu_buffer_alloc,
    .buffer_free = cpu_buffer_free,
    .buffer_upload = cpu_buffer_upload,
    .buffer_download = cpu_buffer_download,
    .buffer_fill = cpu_buffer_fill,
    .buffer_axpy = cpu_buffer_axpy,
    .sgd_step = cpu_sgd_step,
    .buffer_sum_squares = cpu_buffer_sum_squares,
    .tensor_create = cpu_tensor_create,
    .tensor_destroy = cpu_tensor_destroy,
    .tensor_upload = cpu_tensor_upload,
    .tensor_download = cpu_tensor_download,
    .tensor_from_images = cpu_tensor_from_images,
    .tensor_add = cpu_tensor_add,
    .layer_destroy = cpu_layer_destroy,
    .conv_create = cpu_conv_create,
    .conv_forward = cpu_conv_forward,
    .conv_backward = cpu_conv_backward,
    .batchnorm_create = cpu_batchnorm_create,
    .batchnorm_forward = cpu_batchnorm_forward,
    .batchnorm_backward = cpu_batchnorm_backward,
    .add_relu_forward = cpu_add_relu_forward,
    .relu_backward = cpu_relu_backward,
    .maxpool_create = cpu_maxpool_create,
    .maxpool_forward = cpu_maxpool_forward,
    .maxpool_backward = cpu_maxpool_backward,
    .avgpool_forward = cpu_avgpool_forward,
    .avgpool_backward = cpu_avgpool_backward,
    .linear_create = cpu_linear_create,
    .linear_forward = cpu_linear_forward,
    .linear_backward = cpu_linear_backward,
    .softmax_cross_entropy = cpu_softmax_cross_entropy,
};

int dt_backend_cpu_create(const dt_backend_options *opt, dt_backend *out, dt_error *err) {
    if (opt->threads < 0)
        return dt_fail_usage(err, "runtime.threads: %d is negative", opt->threads);
    /* Set before any primitive exists: oneDNN sizes its work split at creation. Threads = 0
     * keeps the OpenMP default (all cores, or OMP_NUM_THREADS when the user set it). */
    if (opt->threads > 0) omp_set_num_threads(opt->threads);

    cpu_ctx *ctx = calloc(1, sizeof *ctx);
    if (!ctx) return dt_fail(err, "out of memory creating the CPU backend");
    ctx->precision = opt->precision;
    if (cpu_check(dnnl_engine_create(&ctx->engine, dnnl_cpu, 0), err, "creating the CPU engine") !=
            0 ||
        cpu_check(dnnl_stream_create(&ctx->stream, ctx->engine, dnnl_stream_default_flags), err,
                  "creating the CPU stream") != 0) {
        cpu_destroy(ctx);
        return -1;
    }
    out->ops = &cpu_ops;
    out->ctx = ctx;
    return 0;
}
