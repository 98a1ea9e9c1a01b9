/* The CUDA training backend: its function table and context (the device, one compute stream and
 * one copy stream, cuDNN and cuBLAS handles, the shared workspace and scratch), device memory
 * (cudaMalloc only, at start-up, out of memory reported with the batch size and the memory
 * needed and free), pinned host memory, the flat-buffer ops, the parameter version, phase
 * timing with events and the loss statistics read-back. The ops live in one file per job. */
#include "cuda_internal.h"

#include "../cuda_module.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dtrain/platform.h"

/* ---- errors ------------------------------------------------------------------------------ */

int cuda_check(cudaError_t status, dt_error *err, const char *what) {
    if (status == cudaSuccess) return 0;
    return dt_fail(err, "CUDA %s: %s (%s)", what, cudaGetErrorString(status),
                   cudaGetErrorName(status));
}

int cudnn_check(cudnnStatus_t status, dt_error *err, const char *what) {
    if (status == CUDNN_STATUS_SUCCESS) return 0;
    return dt_fail(err, "cuDNN %s: %s", what, cudnnGetErrorString(status));
}

int cublas_check(cublasStatus_t status, dt_error *err, const char *what) {
    if (status == CUBLAS_STATUS_SUCCESS) return 0;
    return dt_fail(err, "cuBLAS %s: %s (%s)", what, cublasGetStatusString(status),
                   cublasGetStatusName(status));
}

/* ---- device memory ------------------------------------------------------------------------ */

void *cuda_device_alloc(cuda_ctx *ctx, size_t bytes, const char *what, dt_error *err) {
    void *p = NULL;
    cudaError_t status = cudaMalloc(&p, bytes ? bytes : 1);
    ctx->device_allocations++;
    if (status == cudaSuccess) {
        ctx->allocated += bytes;
        return p;
    }
    (void)cudaGetLastError(); /* the failed allocation leaves its error for the next check */
    size_t free_bytes = 0, total_bytes = 0;
    cudaMemGetInfo(&free_bytes, &total_bytes);
    const double mib = 1024.0 * 1024.0;
    char batch[48] = "";
    if (ctx->batch > 0) snprintf(batch, sizeof batch, " at batch size %d", ctx->batch);
    if (status == cudaErrorMemoryAllocation)
        dt_fail(err,
                "out of GPU memory%s: %s needs %.1f MiB more (%.1f MiB already allocated), "
                "%.1f MiB of %.1f MiB are free; lower train.batch_size",
                batch, what, bytes / mib, ctx->allocated / mib, free_bytes / mib,
                total_bytes / mib);
    else
        cuda_check(status, err, what);
    return NULL;
}

void cuda_device_free(cuda_ctx *ctx, void *p) {
    (void)ctx;
    if (p) cudaFree(p);
}

/* ---- host waits ---------------------------------------------------------------------------- */

int cuda_wait_event(cuda_ctx *ctx, cudaEvent_t event, const char *what, dt_error *err) {
    ctx->host_waits++;
    double start = dt_monotonic_seconds();
    for (;;) {
        cudaError_t status = cudaEventQuery(event);
        if (status == cudaSuccess) return 0;
        if (status != cudaErrorNotReady) return cuda_check(status, err, what);
        if (ctx->wait_check &&
            ctx->wait_check(ctx->wait_check_user, dt_monotonic_seconds() - start, err))
            return dt_error_prefix(err, "%s", what);
        struct timespec pause = {0, 50 * 1000};
        nanosleep(&pause, NULL);
    }
}

int cuda_wait_stream(cuda_ctx *ctx, cudaStream_t stream, const char *what, dt_error *err) {
    if (cuda_check(cudaEventRecord(ctx->wait_event, stream), err, what)) return -1;
    return cuda_wait_event(ctx, ctx->wait_event, what, err);
}

/* Grown between steps only (layer creation): the old buffer is freed after the device is idle. */
static int reserve(cuda_ctx *ctx, void **buffer, size_t *size, size_t bytes, const char *what,
                   dt_error *err) {
    if (bytes <= *size) return 0;
    if (cuda_wait_stream(ctx, ctx->compute, "waiting before growing a buffer", err) ||
        cuda_wait_stream(ctx, ctx->copy, "waiting before growing a buffer", err))
        return -1;
    void *p = cuda_device_alloc(ctx, bytes, what, err);
    if (!p) return -1;
    if (*buffer) {
        cuda_device_free(ctx, *buffer);
        ctx->allocated -= *size;
    }
    *buffer = p;
    *size = bytes;
    return 0;
}

int cuda_reserve_workspace(cuda_ctx *ctx, size_t bytes, dt_error *err) {
    return reserve(ctx, &ctx->workspace, &ctx->workspace_size, bytes, "the cuDNN workspace", err);
}

int cuda_reserve_scratch(cuda_ctx *ctx, size_t bytes, dt_error *err) {
    return reserve(ctx, &ctx->scratch, &ctx->scratch_size, bytes, "the kernel scratch", err);
}

/* ---- context ------------------------------------------------------------------------------ */

static void cuda_destroy(void *opaque) {
    cuda_ctx *ctx = opaque;
    if (!ctx) return;
    /* teardown, also after a failure: the wait check still bounds these waits */
    dt_error ignored = {{0}, 0};
    if (ctx->compute && ctx->wait_event)
        cuda_wait_stream(ctx, ctx->compute, "finishing the compute stream", &ignored);
    if (ctx->copy && ctx->wait_event)
        cuda_wait_stream(ctx, ctx->copy, "finishing the copy stream", &ignored);
    for (int i = 0; i < CUDA_STAGING_SLOTS; i++) {
        if (ctx->staging[i].host) cudaFreeHost(ctx->staging[i].host);
        if (ctx->staging[i].copied) cudaEventDestroy(ctx->staging[i].copied);
    }
    for (int i = 0; i < CUDA_PHASE_MARKS; i++)
        if (ctx->marks[i].event) cudaEventDestroy(ctx->marks[i].event);
    if (ctx->host_stats) cudaFreeHost(ctx->host_stats);
    if (ctx->host_predictions) cudaFreeHost(ctx->host_predictions);
    if (ctx->host_sum) cudaFreeHost(ctx->host_sum);
    if (ctx->host_guard) cudaFreeHost(ctx->host_guard);
    if (ctx->wait_event) cudaEventDestroy(ctx->wait_event);
    void *device[] = {ctx->workspace,  ctx->scratch,          ctx->pixels[0],   ctx->pixels[1],
                      ctx->labels,     ctx->weights,          ctx->predictions, ctx->loss_stats,
                      ctx->sum_result, ctx->cublas_workspace, ctx->guard,       ctx->guard_first};
    for (size_t i = 0; i < sizeof device / sizeof *device; i++) cuda_device_free(ctx, device[i]);
    for (int i = 0; i < CUDA_PIXEL_SLOTS; i++) {
        if (ctx->pixels_ready[i]) cudaEventDestroy(ctx->pixels_ready[i]);
        if (ctx->pixels_free[i]) cudaEventDestroy(ctx->pixels_free[i]);
    }
    for (int i = 0; i < ctx->n_plans; i++) dt_cudnn_conv_plan_destroy(ctx->plans[i].plan);
    free(ctx->plans);
    if (ctx->cublas) cublasDestroy(ctx->cublas);
    if (ctx->cudnn) cudnnDestroy(ctx->cudnn);
    if (ctx->copy) cudaStreamDestroy(ctx->copy);
    if (ctx->compute) cudaStreamDestroy(ctx->compute);
    free(ctx);
}

static int cuda_synchronize(void *opaque, dt_error *err) {
    cuda_ctx *ctx = opaque;
    return cuda_wait_stream(ctx, ctx->compute, "waiting for the compute stream", err);
}

static void *cuda_compute_stream(void *opaque) {
    return (void *)((cuda_ctx *)opaque)->compute;
}

static void *cuda_host_alloc(void *opaque, size_t bytes, dt_error *err) {
    (void)opaque;
    void *p = NULL;
    if (cuda_check(cudaHostAlloc(&p, bytes ? bytes : 1, cudaHostAllocPortable), err,
                   "allocating pinned host memory") != 0)
        return NULL;
    return p;
}

static void cuda_host_free(void *opaque, void *p) {
    (void)opaque;
    if (p) cudaFreeHost(p);
}

static void cuda_params_changed(void *opaque) {
    ((cuda_ctx *)opaque)->param_version++;
}

static void cuda_layer_destroy(void *opaque, dt_layer *layer) {
    if (layer) layer->destroy(opaque, layer);
}

/* ---- phase timing: events in stream order, read at log time -----------------------------------
 */

/* Adds the time from each completed mark to the next to the first one's phase, keeping the
 * last mark as the start of the running phase. wait: wait for the marks first; else stop at
 * the first mark not yet reached (cudaEventQuery: the fold never blocks a step). */
static int phases_fold(cuda_ctx *ctx, int wait, dt_error *err) {
    while (ctx->mark_count >= 2) {
        cuda_phase_mark_slot *a = &ctx->marks[ctx->mark_first];
        cuda_phase_mark_slot *b = &ctx->marks[(ctx->mark_first + 1) % CUDA_PHASE_MARKS];
        if (wait) {
            if (cuda_wait_event(ctx, b->event, "waiting for a phase mark", err)) return -1;
        } else {
            cudaError_t reached = cudaEventQuery(b->event);
            if (reached == cudaErrorNotReady) return 0;
            if (cuda_check(reached, err, "querying a phase mark")) return -1;
        }
        float ms = 0.0f;
        if (cuda_check(cudaEventElapsedTime(&ms, a->event, b->event), err, "timing a phase"))
            return -1;
        ctx->phase_seconds[a->phase] += ms / 1000.0;
        ctx->mark_first = (ctx->mark_first + 1) % CUDA_PHASE_MARKS;
        ctx->mark_count--;
    }
    return 0;
}

static int cuda_phase_mark(void *opaque, int phase, dt_error *err) {
    cuda_ctx *ctx = opaque;
    /* a full ring (no read for many steps) folds the marks already reached; when the stream is
     * that far behind, the two oldest merge (their time counts to the older one's phase) */
    if (ctx->mark_count == CUDA_PHASE_MARKS) {
        if (phases_fold(ctx, 0, err)) return -1;
        if (ctx->mark_count == CUDA_PHASE_MARKS) {
            int second = (ctx->mark_first + 1) % CUDA_PHASE_MARKS;
            cudaEvent_t spare = ctx->marks[second].event;
            ctx->marks[second].event = ctx->marks[ctx->mark_first].event;
            ctx->marks[second].phase = ctx->marks[ctx->mark_first].phase;
            ctx->marks[ctx->mark_first].event = spare;
            ctx->mark_first = second;
            ctx->mark_count--;
        }
    }
    cuda_phase_mark_slot *slot =
        &ctx->marks[(ctx->mark_first + ctx->mark_count) % CUDA_PHASE_MARKS];
    if (cuda_check(cudaEventRecord(slot->event, ctx->compute), err, "recording a phase mark"))
        return -1;
    slot->phase = phase;
    ctx->mark_count++;
    return 0;
}

static int cuda_phase_read(void *opaque, double seconds[DT_PHASE_COUNT], int reset, dt_error *err) {
    cuda_ctx *ctx = opaque;
    if (phases_fold(ctx, 1, err)) return -1;
    for (int i = 0; i < DT_PHASE_COUNT; i++) {
        seconds[i] += ctx->phase_seconds[i];
        if (reset) ctx->phase_seconds[i] = 0.0;
    }
    return 0;
}

/* ---- flat buffers ------------------------------------------------------------------------- */

static float *cuda_buffer_alloc(void *opaque, size_t count, dt_error *err) {
    cuda_ctx *ctx = opaque;
    if (count > ((size_t)-1) / sizeof(float)) {
        dt_fail(err, "buffer_alloc: %zu floats is too large", count);
        return NULL;
    }
    float *p = cuda_device_alloc(ctx, count * sizeof(float), "a parameter buffer", err);
    if (!p) return NULL;
    if (cuda_check(cudaMemsetAsync(p, 0, count * sizeof(float), ctx->compute), err,
                   "zeroing a buffer") ||
        cuda_wait_stream(ctx, ctx->compute, "zeroing a buffer", err)) {
        cuda_device_free(ctx, p);
        return NULL;
    }
    return p;
}

static void cuda_buffer_free(void *opaque, float *buffer) {
    cuda_ctx *ctx = opaque;
    if (!buffer) return;
    dt_error ignored = {{0}, 0};
    cuda_wait_stream(ctx, ctx->compute, "freeing a buffer", &ignored);
    cuda_device_free(ctx, buffer);
}

/* pageable host memory: the copy has read the source when it returns */
static int cuda_buffer_upload(void *opaque, float *dst, const float *host_src, size_t count,
                              dt_error *err) {
    cuda_ctx *ctx = opaque;
    ctx->param_version++;
    if (!count) return 0;
    return cuda_check(cudaMemcpyAsync(dst, host_src, count * sizeof(float), cudaMemcpyHostToDevice,
                                      ctx->compute),
                      err, "buffer_upload") ||
           cuda_wait_stream(ctx, ctx->compute, "buffer_upload", err);
}

static int cuda_buffer_download(void *opaque, float *host_dst, const float *src, size_t count,
                                dt_error *err) {
    cuda_ctx *ctx = opaque;
    if (!count) return 0;
    return cuda_check(cudaMemcpyAsync(host_dst, src, count * sizeof(float), cudaMemcpyDeviceToHost,
                                      ctx->compute),
                      err, "buffer_download") ||
           cuda_wait_stream(ctx, ctx->compute, "buffer_download", err);
}

static int cuda_buffer_fill(void *opaque, float *dst, float value, size_t count, dt_error *err) {
    cuda_ctx *ctx = opaque;
    ctx->param_version++;
    return cuda_launch_fill(ctx->compute, dst, value, count, err);
}

static int cuda_buffer_axpy(void *opaque, float *y, float alpha, const float *x, size_t count,
                            dt_error *err) {
    cuda_ctx *ctx = opaque;
    ctx->param_version++;
    return cuda_launch_axpy(ctx->compute, y, alpha, x, count, err);
}

static int cuda_sgd_step(void *opaque, const dt_sgd_params *p, float *params, const float *grads,
                         float *momentum, size_t count, dt_error *err) {
    cuda_ctx *ctx = opaque;
    ctx->param_version++;
    return cuda_launch_sgd(ctx->compute, p, params, grads, momentum, count,
                           p->guarded ? ctx->guard : NULL, err);
}

static int cuda_adamw_step(void *opaque, const dt_adamw_params *p, float *params,
                           const float *grads, float *exp_avg, float *exp_avg_sq, size_t count,
                           dt_error *err) {
    cuda_ctx *ctx = opaque;
    ctx->param_version++;
    return cuda_launch_adamw(ctx->compute, p, params, grads, exp_avg, exp_avg_sq, count,
                             p->guarded ? ctx->guard : NULL, err);
}

/* a read for logs and checks: waits for the result */
static int cuda_buffer_sum_squares(void *opaque, const float *src, size_t count, double *out,
                                   dt_error *err) {
    cuda_ctx *ctx = opaque;
    if (!count) {
        *out = 0.0;
        return 0;
    }
    if (cuda_launch_sum_squares(ctx->compute, src, count, ctx->scratch, ctx->sum_result, err) ||
        cuda_check(cudaMemcpyAsync(ctx->host_sum, ctx->sum_result, sizeof(double),
                                   cudaMemcpyDeviceToHost, ctx->compute),
                   err, "reading the sum of squares") ||
        cuda_wait_stream(ctx, ctx->compute, "reading the sum of squares", err))
        return -1;
    *out = *ctx->host_sum;
    return 0;
}

/* ---- the non-finite guard (dt_guard_state): state in device memory, decided by kernels ----- */

static int cuda_guard_reset(void *opaque, const dt_guard_state *state, int64_t halt_after,
                            dt_error *err) {
    cuda_ctx *ctx = opaque;
    memset(ctx->host_guard, 0, sizeof *ctx->host_guard);
    ctx->host_guard->in_row = state->in_row;
    ctx->host_guard->total = state->total;
    ctx->host_guard->halted_step = state->halted_step;
    ctx->guard_halt_after = halt_after;
    return cuda_check(cudaMemcpyAsync(ctx->guard, ctx->host_guard, sizeof *ctx->guard,
                                      cudaMemcpyHostToDevice, ctx->compute),
                      err, "guard_reset") ||
           cuda_wait_stream(ctx, ctx->compute, "guard_reset", err);
}

static int cuda_guard_check(void *opaque, const float *grads, size_t count, int64_t step,
                            dt_error *err) {
    cuda_ctx *ctx = opaque;
    return cuda_launch_guard_check(ctx->compute, grads, count, step, ctx->guard_halt_after,
                                   ctx->guard_first, ctx->guard, err);
}

static int cuda_guard_restore(void *opaque, float *dst, const float *backup, size_t count,
                              dt_error *err) {
    cuda_ctx *ctx = opaque;
    ctx->param_version++;
    return cuda_launch_guard_restore(ctx->compute, dst, backup, count, ctx->guard, err);
}

static int cuda_ema_update(void *opaque, float *ema, const float *live, float decay,
                           float one_minus_decay, size_t count, int guarded, dt_error *err) {
    cuda_ctx *ctx = opaque;
    ctx->param_version++;
    return cuda_launch_ema(ctx->compute, ema, live, decay, one_minus_decay, count,
                           guarded ? ctx->guard : NULL, err);
}

/* the clear is queued after the copy: checks queued later count from zero again */
static int cuda_guard_read(void *opaque, dt_guard_state *out, dt_error *err) {
    cuda_ctx *ctx = opaque;
    if (cuda_check(cudaMemcpyAsync(ctx->host_guard, ctx->guard, sizeof *ctx->guard,
                                   cudaMemcpyDeviceToHost, ctx->compute),
                   err, "reading the non-finite guard") ||
        cuda_launch_guard_clear(ctx->compute, ctx->guard, err) ||
        cuda_wait_stream(ctx, ctx->compute, "reading the non-finite guard", err))
        return -1;
    *out = *ctx->host_guard;
    return 0;
}

static void cuda_counters(void *opaque, dt_backend_counters *out) {
    cuda_ctx *ctx = opaque;
    out->host_waits = ctx->host_waits;
    out->input_waits = ctx->input_waits;
    out->device_allocations = ctx->device_allocations;
}

static void cuda_set_wait_check(void *opaque, dt_wait_check_fn check, void *user) {
    cuda_ctx *ctx = opaque;
    ctx->wait_check = check;
    ctx->wait_check_user = user;
}

/* ---- loss statistics ----------------------------------------------------------------------- */

static int cuda_loss_stats_read(void *opaque, double out[DT_LOSS_STATS], int reset, dt_error *err) {
    cuda_ctx *ctx = opaque;
    if (cuda_check(cudaMemcpyAsync(ctx->host_stats, ctx->loss_stats, 4 * sizeof(double),
                                   cudaMemcpyDeviceToHost, ctx->compute),
                   err, "reading the loss statistics") ||
        cuda_wait_stream(ctx, ctx->compute, "reading the loss statistics", err))
        return -1;
    for (int i = 0; i < DT_LOSS_STATS; i++) out[i] = ctx->host_stats[i];
    if (reset)
        return cuda_check(cudaMemsetAsync(ctx->loss_stats, 0, 4 * sizeof(double), ctx->compute),
                          err, "resetting the loss statistics");
    return 0;
}

static const dt_backend_ops cuda_backend_ops = {
    .name = "cuda",
    .destroy = cuda_destroy,
    .synchronize = cuda_synchronize,
    .compute_stream = cuda_compute_stream,
    .host_alloc = cuda_host_alloc,
    .host_free = cuda_host_free,
    .input_wait = cuda_input_wait,
    .input_prefetch = cuda_input_prefetch,
    .params_changed = cuda_params_changed,
    .phase_mark = cuda_phase_mark,
    .phase_read = cuda_phase_read,
    .buffer_alloc = cuda_buffer_alloc,
    .buffer_free = cuda_buffer_free,
    .buffer_upload = cuda_buffer_upload,
    .buffer_download = cuda_buffer_download,
    .buffer_fill = cuda_buffer_fill,
    .buffer_axpy = cuda_buffer_axpy,
    .sgd_step = cuda_sgd_step,
    .adamw_step = cuda_adamw_step,
    .buffer_sum_squares = cuda_buffer_sum_squares,
    .guard_reset = cuda_guard_reset,
    .guard_check = cuda_guard_check,
    .guard_restore = cuda_guard_restore,
    .guard_read = cuda_guard_read,
    .ema_update = cuda_ema_update,
    .counters = cuda_counters,
    .set_wait_check = cuda_set_wait_check,
    .tensor_create = cuda_tensor_create,
    .tensor_destroy = cuda_tensor_destroy,
    .tensor_upload = cuda_tensor_upload,
    .tensor_download = cuda_tensor_download,
    .tensor_from_images = cuda_tensor_from_images,
    .tensor_add = cuda_tensor_add,
    .layer_destroy = cuda_layer_destroy,
    .conv_create = cuda_conv_create,
    .conv_forward = cuda_conv_forward,
    .conv_backward = cuda_conv_backward,
    .batchnorm_create = cuda_batchnorm_create,
    .batchnorm_forward = cuda_batchnorm_forward,
    .batchnorm_backward = cuda_batchnorm_backward,
    .add_relu_forward = cuda_add_relu_forward,
    .relu_backward = cuda_relu_backward,
    .maxpool_create = cuda_maxpool_create,
    .maxpool_forward = cuda_maxpool_forward,
    .maxpool_backward = cuda_maxpool_backward,
    .avgpool_forward = cuda_avgpool_forward,
    .avgpool_backward = cuda_avgpool_backward,
    .linear_create = cuda_linear_create,
    .linear_forward = cuda_linear_forward,
    .linear_backward = cuda_linear_backward,
    .softmax_cross_entropy = cuda_softmax_cross_entropy,
    .loss_stats_read = cuda_loss_stats_read,
};

static int context_init(cuda_ctx *ctx, const dt_backend_options *opt, dt_error *err) {
    int devices = 0;
    if (cuda_check(cudaGetDeviceCount(&devices), err, "counting GPUs")) return -1;
    if (opt->device < 0 || opt->device >= devices)
        return dt_fail_usage(err, "runtime.device: GPU %d requested, %d visible", opt->device,
                             devices);
    ctx->device = opt->device;
    ctx->precision = opt->precision;
    ctx->deterministic = opt->deterministic;
    ctx->act = opt->precision == DT_PRECISION_BF16 ? CUDA_BF16 : CUDA_F32;
    if (cuda_check(cudaSetDevice(ctx->device), err, "selecting the GPU")) return -1;
    /* host waits poll with a sleep (cuda_wait_event); where the runtime itself waits (a
     * synchronous copy), it yields the core instead of spinning. Refused once the device's
     * context is active (another backend in this process): the polling waits stay. */
    cudaError_t flags = cudaSetDeviceFlags(cudaDeviceScheduleBlockingSync);
    if (flags == cudaErrorSetOnActiveProcess)
        (void)cudaGetLastError();
    else if (cuda_check(flags, err, "setting blocking synchronisation"))
        return -1;
    if (cuda_check(cudaEventCreateWithFlags(&ctx->wait_event, cudaEventDisableTiming), err,
                   "creating an event") ||
        cuda_check(cudaStreamCreateWithFlags(&ctx->compute, cudaStreamNonBlocking), err,
                   "creating the compute stream") ||
        cuda_check(cudaStreamCreateWithFlags(&ctx->copy, cudaStreamNonBlocking), err,
                   "creating the copy stream") ||
        cudnn_check(cudnnCreate(&ctx->cudnn), err, "creating the handle") ||
        cudnn_check(cudnnSetStream(ctx->cudnn, ctx->compute), err, "setting the stream") ||
        cublas_check(cublasCreate(&ctx->cublas), err, "creating the handle") ||
        cublas_check(cublasSetStream(ctx->cublas, ctx->compute), err, "setting the stream"))
        return -1;
    /* fp32 is true fp32: no TF32 tensor cores unless asked (the GEMMs also pass the compute
     * type explicitly) */
    cublasMath_t math = opt->precision == DT_PRECISION_TF32   ? CUBLAS_TF32_TENSOR_OP_MATH
                        : opt->precision == DT_PRECISION_FP32 ? CUBLAS_PEDANTIC_MATH
                                                              : CUBLAS_DEFAULT_MATH;
    if (cublas_check(cublasSetMathMode(ctx->cublas, math), err, "setting the math mode") ||
        !(ctx->cublas_workspace =
              cuda_device_alloc(ctx, CUDA_CUBLAS_WORKSPACE, "the cuBLAS workspace", err)) ||
        cublas_check(cublasSetWorkspace(ctx->cublas, ctx->cublas_workspace, CUDA_CUBLAS_WORKSPACE),
                     err, "setting the workspace"))
        return -1;
    for (int i = 0; i < CUDA_PIXEL_SLOTS; i++)
        if (cuda_check(cudaEventCreateWithFlags(&ctx->pixels_ready[i], cudaEventDisableTiming), err,
                       "creating an event") ||
            cuda_check(cudaEventCreateWithFlags(&ctx->pixels_free[i], cudaEventDisableTiming), err,
                       "creating an event"))
            return -1;
    for (int i = 0; i < CUDA_PHASE_MARKS; i++)
        if (cuda_check(cudaEventCreate(&ctx->marks[i].event), err, "creating a phase event"))
            return -1;
    for (int i = 0; i < CUDA_STAGING_SLOTS; i++)
        if (cuda_check(cudaEventCreateWithFlags(&ctx->staging[i].copied, cudaEventDisableTiming),
                       err, "creating an event"))
            return -1;
    if (!(ctx->guard = cuda_device_alloc(ctx, sizeof *ctx->guard, "the non-finite guard", err)) ||
        !(ctx->guard_first =
              cuda_device_alloc(ctx, sizeof *ctx->guard_first, "the guard scan", err)) ||
        cuda_check(cudaMallocHost((void **)&ctx->host_guard, sizeof *ctx->host_guard), err,
                   "allocating pinned memory") ||
        cuda_check(cudaMemsetAsync(ctx->guard_first, 0xff, sizeof *ctx->guard_first, ctx->compute),
                   err, "clearing the guard scan"))
        return -1;
    dt_guard_state never = {.halted_step = -1};
    if (cuda_guard_reset(ctx, &never, INT64_MAX, err)) return -1;
    if (!(ctx->loss_stats = cuda_device_alloc(ctx, 4 * sizeof(double), "loss statistics", err)) ||
        !(ctx->sum_result = cuda_device_alloc(ctx, sizeof(double), "a reduction result", err)) ||
        cuda_check(cudaMallocHost((void **)&ctx->host_stats, 4 * sizeof(double)), err,
                   "allocating pinned memory") ||
        cuda_check(cudaMallocHost((void **)&ctx->host_sum, sizeof(double)), err,
                   "allocating pinned memory") ||
        cuda_check(cudaMemsetAsync(ctx->loss_stats, 0, 4 * sizeof(double), ctx->compute), err,
                   "zeroing the loss statistics") ||
        cuda_reserve_scratch(ctx, cuda_sum_squares_scratch(), err))
        return -1;
    return cuda_wait_stream(ctx, ctx->compute, "starting the backend", err);
}

int cuda_backend_create(const dt_backend_options *opt, dt_backend *out, dt_error *err) {
    cuda_ctx *ctx = calloc(1, sizeof *ctx);
    if (!ctx) return dt_fail(err, "out of memory creating the CUDA backend");
    if (context_init(ctx, opt, err) != 0) {
        dt_error_prefix(err, "CUDA backend on GPU %d", opt->device);
        cuda_destroy(ctx);
        return -1;
    }
    out->ops = &cuda_backend_ops;
    out->ctx = ctx;
    return 0;
}
