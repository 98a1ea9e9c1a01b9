/* Activation tensors of the CUDA backend (NHWC, fp32 or bf16 as the precision asks): creation
 * (device memory at start-up), transfers from and to host NCHW float arrays (layout and type
 * changed on the host: no device scratch the size of an activation), the input path (pinned
 * pixels copied on the copy stream, normalised on the compute stream after an event), and the
 * element-wise and global-average-pool ops. */
#include "cuda_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cuda_math.h"

dt_tensor *cuda_tensor_create(void *opaque, int n, int c, int h, int w, dt_error *err) {
    cuda_ctx *ctx = opaque;
    size_t count = (size_t)n * (size_t)c * (size_t)h * (size_t)w;
    if (count / (size_t)n / (size_t)c / (size_t)h != (size_t)w || count > ((size_t)-1) / 4) {
        dt_fail(err, "tensor_create: shape %dx%dx%dx%d is too large", n, c, h, w);
        return NULL;
    }
    if (n > ctx->batch) ctx->batch = n;
    if (cuda_reserve_samples(ctx, n, err)) return NULL;
    dt_tensor *t = calloc(1, sizeof *t);
    if (!t) {
        dt_fail(err, "out of memory creating a tensor");
        return NULL;
    }
    *t = (dt_tensor){.n = n, .c = c, .h = h, .w = w, .count = count, .dtype = ctx->act};
    char what[96];
    snprintf(what, sizeof what, "a %dx%dx%dx%d activation", n, c, h, w);
    if (!(t->data = cuda_device_alloc(ctx, count * cuda_dtype_size(t->dtype), what, err)) ||
        cuda_check(cudaMemsetAsync(t->data, 0, count * cuda_dtype_size(t->dtype), ctx->compute),
                   err, "zeroing a tensor")) {
        cuda_tensor_destroy(ctx, t);
        return NULL;
    }
    /* image inputs: the device copies of their pixels */
    const size_t pixel_bytes = (size_t)n * h * w * 3;
    if (c == 3 && pixel_bytes > ctx->pixels_size) {
        if (cuda_wait_stream(ctx, ctx->compute, "waiting before growing the pixel buffers", err) ||
            cuda_wait_stream(ctx, ctx->copy, "waiting before growing the pixel buffers", err)) {
            cuda_tensor_destroy(ctx, t);
            return NULL;
        }
        ctx->pixels_size = 0;
        for (int i = 0; i < CUDA_PIXEL_SLOTS; i++) {
            ctx->pixels_prefetched[i] = NULL; /* the copies go with the buffers */
            cuda_device_free(ctx, ctx->pixels[i]);
            if (!(ctx->pixels[i] = cuda_device_alloc(ctx, pixel_bytes, "the input pixels", err))) {
                cuda_tensor_destroy(ctx, t);
                return NULL;
            }
        }
        ctx->pixels_size = pixel_bytes;
    }
    return t;
}

void cuda_tensor_destroy(void *opaque, dt_tensor *t) {
    cuda_ctx *ctx = opaque;
    if (!t) return;
    if (t->data) {
        dt_error ignored = {{0}, 0};
        cuda_wait_stream(ctx, ctx->compute, "freeing a tensor", &ignored);
        cuda_device_free(ctx, t->data);
    }
    free(t);
}

int cuda_tensor_upload(void *opaque, dt_tensor *dst, const float *host_nchw, dt_error *err) {
    cuda_ctx *ctx = opaque;
    const size_t bytes = dst->count * cuda_dtype_size(dst->dtype);
    void *host = malloc(bytes ? bytes : 1);
    if (!host) return dt_fail(err, "tensor_upload: out of host memory");
    const int N = dst->n, C = dst->c, H = dst->h, W = dst->w;
    for (int n = 0; n < N; n++)
        for (int c = 0; c < C; c++)
            for (int h = 0; h < H; h++)
                for (int w = 0; w < W; w++) {
                    const float v = host_nchw[dt_nchw_index(n, c, h, w, C, H, W)];
                    const size_t i = dt_nhwc_index(n, c, h, w, C, H, W);
                    if (dst->dtype == CUDA_BF16)
                        ((uint16_t *)host)[i] = dt_float_to_bf16(v);
                    else
                        ((float *)host)[i] = v;
                }
    int rc =
        cuda_check(cudaMemcpyAsync(dst->data, host, bytes, cudaMemcpyHostToDevice, ctx->compute),
                   err, "tensor_upload") ||
        cuda_wait_stream(ctx, ctx->compute, "tensor_upload", err);
    free(host);
    return rc ? -1 : 0;
}

int cuda_tensor_download(void *opaque, const dt_tensor *src, float *host_nchw, dt_error *err) {
    cuda_ctx *ctx = opaque;
    const size_t bytes = src->count * cuda_dtype_size(src->dtype);
    void *host = malloc(bytes ? bytes : 1);
    if (!host) return dt_fail(err, "tensor_download: out of host memory");
    if (cuda_check(cudaMemcpyAsync(host, src->data, bytes, cudaMemcpyDeviceToHost, ctx->compute),
                   err, "tensor_download") ||
        cuda_wait_stream(ctx, ctx->compute, "tensor_download", err)) {
        free(host);
        return -1;
    }
    const int N = src->n, C = src->c, H = src->h, W = src->w;
    for (int n = 0; n < N; n++)
        for (int c = 0; c < C; c++)
            for (int h = 0; h < H; h++)
                for (int w = 0; w < W; w++) {
                    const size_t i = dt_nhwc_index(n, c, h, w, C, H, W);
                    host_nchw[dt_nchw_index(n, c, h, w, C, H, W)] =
                        src->dtype == CUDA_BF16 ? dt_bf16_to_float(((const uint16_t *)host)[i])
                                                : ((const float *)host)[i];
                }
    free(host);
    return 0;
}

/* The copy stream reads the (pinned) pixels into device buffer k once the batch that used it
 * before (two batches back) has been normalised. */
static int copy_pixels(cuda_ctx *ctx, int k, const uint8_t *pixels_nhwc, size_t bytes,
                       dt_error *err) {
    ctx->pixels_prefetched[k] = NULL;
    if (cuda_check(cudaStreamWaitEvent(ctx->copy, ctx->pixels_free[k], 0), err,
                   "ordering the pixel copy") ||
        cuda_check(
            cudaMemcpyAsync(ctx->pixels[k], pixels_nhwc, bytes, cudaMemcpyHostToDevice, ctx->copy),
            err, "copying the input pixels") ||
        cuda_check(cudaEventRecord(ctx->pixels_ready[k], ctx->copy), err, "recording the copy"))
        return -1;
    ctx->pixels_pending[k] = 1;
    ctx->pixels_next = (k + 1) % CUDA_PIXEL_SLOTS;
    return 0;
}

/* Pixels that do not fit the buffers are left to tensor_from_images, which reports them. */
int cuda_input_prefetch(void *opaque, const uint8_t *pixels_nhwc, size_t bytes, dt_error *err) {
    cuda_ctx *ctx = opaque;
    if (!pixels_nhwc || bytes == 0 || bytes > ctx->pixels_size) return 0;
    const int k = ctx->pixels_next;
    if (copy_pixels(ctx, k, pixels_nhwc, bytes, err)) return -1;
    ctx->pixels_prefetched[k] = pixels_nhwc;
    ctx->pixels_prefetched_bytes[k] = bytes;
    return 0;
}

/* The pixels come from the slot input_prefetch put them in, or are copied now into the next
 * slot; the compute stream normalises once they have arrived. */
int cuda_tensor_from_images(void *opaque, dt_tensor *dst, const uint8_t *pixels_nhwc,
                            const float mean[3], const float std[3], dt_error *err) {
    cuda_ctx *ctx = opaque;
    if (dst->c != 3)
        return dt_fail(err, "tensor_from_images: the tensor has %d channels, expected 3 (RGB)",
                       dst->c);
    for (int c = 0; c < 3; c++)
        if (!(std[c] != 0.0f) || !isfinite(std[c]) || !isfinite(mean[c]))
            return dt_fail(err, "tensor_from_images: mean %g / std %g of channel %d",
                           (double)mean[c], (double)std[c], c);
    const size_t pixels = (size_t)dst->n * dst->h * dst->w, bytes = pixels * 3;
    if (bytes > ctx->pixels_size)
        return dt_fail(err, "internal: tensor_from_images on a tensor without a pixel buffer");
    int k = -1;
    for (int i = 0; i < CUDA_PIXEL_SLOTS; i++)
        if (ctx->pixels_prefetched[i] == pixels_nhwc && ctx->pixels_prefetched_bytes[i] == bytes)
            k = i;
    if (k >= 0) {
        ctx->pixels_prefetched[k] = NULL;
    } else {
        k = ctx->pixels_next;
        if (copy_pixels(ctx, k, pixels_nhwc, bytes, err)) return -1;
    }
    if (cuda_check(cudaStreamWaitEvent(ctx->compute, ctx->pixels_ready[k], 0), err,
                   "ordering the normalisation") ||
        cuda_launch_normalize(ctx->compute, ctx->pixels[k], dst->data, dst->dtype, pixels, mean,
                              std, err) ||
        cuda_check(cudaEventRecord(ctx->pixels_free[k], ctx->compute), err,
                   "recording the normalisation"))
        return -1;
    return 0;
}

/* A copy already done costs no wait; one still running is waited for (and counted apart from
 * the other host waits: it is what keeps the host at most a step ahead of the device). Once
 * it returns the caller may refill the host buffers, so a prefetch not used by then is
 * forgotten. */
int cuda_input_wait(void *opaque, dt_error *err) {
    cuda_ctx *ctx = opaque;
    for (int k = 0; k < CUDA_PIXEL_SLOTS; k++) {
        ctx->pixels_prefetched[k] = NULL;
        if (!ctx->pixels_pending[k]) continue;
        cudaError_t done = cudaEventQuery(ctx->pixels_ready[k]);
        if (done == cudaErrorNotReady) {
            ctx->input_waits++;
            ctx->host_waits--; /* cuda_wait_event counts it as a host wait too */
            if (cuda_wait_event(ctx, ctx->pixels_ready[k], "waiting for the pixel copy", err))
                return -1;
        } else if (cuda_check(done, err, "querying the pixel copy")) {
            return -1;
        }
        ctx->pixels_pending[k] = 0;
    }
    return 0;
}

int cuda_tensor_add(void *opaque, dt_tensor *dst, const dt_tensor *src, dt_error *err) {
    cuda_ctx *ctx = opaque;
    if (cuda_tensor_same_shape(dst, src, "tensor_add", err)) return -1;
    return cuda_launch_add(ctx->compute, dst->data, src->data, dst->dtype, dst->count, err);
}

int cuda_add_relu_forward(void *opaque, dt_tensor *y, const dt_tensor *x, dt_error *err) {
    cuda_ctx *ctx = opaque;
    if (cuda_tensor_same_shape(y, x, "add_relu_forward", err)) return -1;
    return cuda_launch_add_relu(ctx->compute, y->data, x->data, y->dtype, y->count, err);
}

int cuda_relu_backward(void *opaque, const dt_tensor *y, const dt_tensor *dy, dt_tensor *dx,
                       dt_error *err) {
    cuda_ctx *ctx = opaque;
    if (cuda_tensor_same_shape(y, dy, "relu_backward", err) ||
        cuda_tensor_same_shape(y, dx, "relu_backward", err))
        return -1;
    return cuda_launch_relu_backward(ctx->compute, y->data, dy->data, dx->data, y->dtype, y->count,
                                     err);
}

int cuda_avgpool_forward(void *opaque, const dt_tensor *x, dt_tensor *y, dt_error *err) {
    cuda_ctx *ctx = opaque;
    if (!x || !y) return dt_fail(err, "avgpool_forward: a tensor is missing");
    if (cuda_tensor_expect(y, x->n, x->c, 1, 1, "avgpool_forward", "the pooled tensor", err))
        return -1;
    return cuda_launch_avgpool_forward(ctx->compute, x->data, y->data, x->dtype, x->n, x->c,
                                       x->h * x->w, err);
}

int cuda_avgpool_backward(void *opaque, const dt_tensor *dy, dt_tensor *dx, dt_error *err) {
    cuda_ctx *ctx = opaque;
    if (!dx || !dy) return dt_fail(err, "avgpool_backward: a tensor is missing");
    if (cuda_tensor_expect(dy, dx->n, dx->c, 1, 1, "avgpool_backward", "the pooled tensor", err))
        return -1;
    return cuda_launch_avgpool_backward(ctx->compute, dy->data, dx->data, dx->dtype, dx->n, dx->c,
                                        dx->h * dx->w, err);
}
