/* The CPU backend: its function table, its context (oneDNN engine and stream, the shared
 * scratchpad), the OpenMP thread count, and the interface's stream-related entries, which on
 * the CPU are immediate (every op has finished when it returns). The ops themselves live in
 * one file per job. */
#include "cpu_internal.h"

#include <stdlib.h>

#include <omp.h>

#include "dtrain/config.h"
#include "dtrain/platform.h"

static void cpu_destroy(void *opaque) {
    cpu_ctx *ctx = opaque;
    if (!ctx) return;
    if (ctx->stream) dnnl_stream_destroy(ctx->stream);
    if (ctx->engine) dnnl_engine_destroy(ctx->engine);
    cpu_aligned_free(ctx->scratchpad);
    cpu_aligned_free(ctx->grad_scratch);
    free(ctx->conv_choices);
    free(ctx);
}

static int cpu_synchronize(void *opaque, dt_error *err) {
    cpu_ctx *ctx = opaque;
    return cpu_check(dnnl_stream_wait(ctx->stream), err, "waiting for the stream");
}

static void *cpu_host_alloc(void *ctx, size_t bytes, dt_error *err) {
    (void)ctx;
    void *p = cpu_aligned_alloc(bytes, 0);
    if (!p) dt_fail(err, "out of memory allocating %zu bytes of host memory", bytes);
    return p;
}

static void cpu_host_free(void *ctx, void *p) {
    (void)ctx;
    cpu_aligned_free(p);
}

static void cpu_params_changed(void *ctx) {
    ((cpu_ctx *)ctx)->params_version++;
}

/* Ops finish when they return, so the host clock at a mark is the stream's time. */
static int cpu_phase_mark(void *opaque, int phase, dt_error *err) {
    cpu_ctx *ctx = opaque;
    double now = dt_monotonic_seconds();
    if (ctx->phase_since > 0) ctx->phase_seconds[ctx->phase] += now - ctx->phase_since;
    ctx->phase = phase;
    ctx->phase_since = now;
    return 0;
}

static int cpu_phase_read(void *opaque, double seconds[DT_PHASE_COUNT], int reset, dt_error *err) {
    cpu_ctx *ctx = opaque;
    (void)err;
    for (int i = 0; i < DT_PHASE_COUNT; i++) {
        seconds[i] += ctx->phase_seconds[i];
        if (reset) ctx->phase_seconds[i] = 0.0;
    }
    return 0;
}

static void cpu_layer_destroy(void *ctx, dt_layer *layer) {
    (void)ctx;
    if (layer) layer->destroy(layer);
}

static const dt_backend_ops cpu_ops = {
    .name = "cpu",
    .flags = DT_BACKEND_HOST_MEMORY,
    /* compute_stream, input_wait, input_prefetch, counters, set_wait_check: left out, every op
     * has finished (and read its inputs) when it returns, in host memory */
    .destroy = cpu_destroy,
    .synchronize = cpu_synchronize,
    .host_alloc = cpu_host_alloc,
    .host_free = cpu_host_free,
    .params_changed = cpu_params_changed,
    .phase_mark = cpu_phase_mark,
    .phase_read = cpu_phase_read,
    .buffer_alloc = cpu_buffer_alloc,
    .buffer_free = cpu_buffer_free,
    .buffer_upload = cpu_buffer_upload,
    .buffer_download = cpu_buffer_download,
    .buffer_fill = cpu_buffer_fill,
    .buffer_axpy = cpu_buffer_axpy,
    .sgd_step = cpu_sgd_step,
    .adamw_step = cpu_adamw_step,
    .buffer_sum_squares = cpu_buffer_sum_squares,
    .guard_reset = cpu_guard_reset,
    .guard_check = cpu_guard_check,
    .guard_restore = cpu_guard_restore,
    .guard_read = cpu_guard_read,
    .ema_update = cpu_ema_update,
    .tensor_create = cpu_tensor_create,
    .tensor_destroy = cpu_tensor_destroy,
    .tensor_upload = cpu_tensor_upload,
    .tensor_download = cpu_tensor_download,
    .tensor_from_images = cpu_tensor_from_images,
    .tensor_add = cpu_tensor_add,
    .layer_destroy = cpu_layer_destroy,
    .conv_create = cpu_conv_create,
    .conv_weight_layout = cpu_conv_weight_layout,
    .conv_weights_convert = cpu_conv_weights_convert,
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
    .loss_stats_read = cpu_loss_stats_read,
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
    ctx->deterministic = opt->deterministic;
    cpu_isa_choose(ctx);
    if (ctx->precision == DT_PRECISION_BF16 && !cpu_isa_has_bf16(ctx->isa)) {
        /* what oneDNN will dispatch to decides, not the CPU's flags: ONEDNN_MAX_CPU_ISA caps it */
        const char *cap = getenv("ONEDNN_MAX_CPU_ISA");
        dt_fail_usage(err,
                      "runtime.precision: 'bf16' on the CPU needs the AVX512-BF16 instruction set "
                      "(or AMX), and oneDNN runs %s kernels here%s%s%s; use fp32 or winograd",
                      cpu_isa_name(ctx->isa), cap ? " (capped by ONEDNN_MAX_CPU_ISA=" : "",
                      cap ? cap : "", cap ? ")" : "");
        free(ctx);
        return -1;
    }
    cpu_guard_init(ctx);
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
