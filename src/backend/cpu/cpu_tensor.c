/* Activation tensors of the CPU backend: creation in the one layout rule (nChw8c or nChw16c, the
 * context's block, when the channels are a multiple of it, plain nchw otherwise), conversion from
 * and to host NCHW arrays, the fused uint8-image normalisation, and element-wise add. */
#include "cpu_internal.h"

#include <stdlib.h>
#include <string.h>

cpu_layout cpu_layout_for_channels(const cpu_ctx *ctx, int channels) {
    return channels % ctx->block == 0 ? CPU_LAYOUT_BLOCKED : CPU_LAYOUT_NCHW;
}

int cpu_activation_md(const cpu_ctx *ctx, dnnl_memory_desc_t *md, int n, int c, int h, int w,
                      dt_error *err) {
    const dnnl_dims_t dims = {n, c, h, w};
    dnnl_format_tag_t tag = dnnl_nchw;
    if (cpu_layout_for_channels(ctx, c) == CPU_LAYOUT_BLOCKED)
        tag = ctx->block == 16 ? dnnl_nChw16c : dnnl_nChw8c;
    return cpu_check(dnnl_memory_desc_init_by_tag(md, 4, dims, dnnl_f32, tag), err,
                     "describing an activation");
}

dt_tensor *cpu_tensor_create(void *opaque, int n, int c, int h, int w, dt_error *err) {
    cpu_ctx *ctx = opaque;
    size_t count = (size_t)n * (size_t)c * (size_t)h * (size_t)w;
    if (count / (size_t)n / (size_t)c / (size_t)h != (size_t)w ||
        count > ((size_t)-1) / sizeof(float)) {
        dt_fail(err, "tensor_create: shape %dx%dx%dx%d is too large", n, c, h, w);
        return NULL;
    }
    dt_tensor *t = calloc(1, sizeof *t);
    if (!t) {
        dt_fail(err, "out of memory creating a tensor");
        return NULL;
    }
    *t = (dt_tensor){.n = n, .c = c, .h = h, .w = w, .count = count};
    t->layout = cpu_layout_for_channels(ctx, c);
    t->block = ctx->block;
    t->data = cpu_aligned_alloc(count * sizeof(float), 1);
    if (!t->data) {
        dt_fail(err, "out of memory for a %dx%dx%dx%d tensor", n, c, h, w);
        cpu_tensor_destroy(ctx, t);
        return NULL;
    }
    if (cpu_activation_md(ctx, &t->md, n, c, h, w, err) != 0 ||
        cpu_memory_create(ctx, &t->md, t->data, &t->memory, err) != 0) {
        cpu_tensor_destroy(ctx, t);
        return NULL;
    }
    return t;
}

void cpu_tensor_destroy(void *ctx, dt_tensor *t) {
    (void)ctx;
    if (!t) return;
    if (t->memory) dnnl_memory_destroy(t->memory);
    cpu_aligned_free(t->data);
    free(t);
}

int cpu_tensor_upload(void *ctx, dt_tensor *dst, const float *host_nchw, dt_error *err) {
    (void)ctx;
    (void)err;
    if (dst->layout == CPU_LAYOUT_NCHW) {
        memcpy(dst->data, host_nchw, dst->count * sizeof(float));
        return 0;
    }
    const int B = dst->block;
    const long long blocks = (long long)dst->n * (dst->c / B);
    const long long plane = (long long)dst->h * dst->w;
#pragma omp parallel for schedule(static)
    for (long long b = 0; b < blocks; b++) {
        /* block b holds channels B*(b % C/B) .. +B-1 of image b / (C/B): in NCHW these are B
         * consecutive planes starting at b * B * plane */
        const float *src = host_nchw + b * B * plane;
        float *out = dst->data + b * B * plane;
        for (long long p = 0; p < plane; p++)
            for (int k = 0; k < B; k++) out[p * B + k] = src[k * plane + p];
    }
    return 0;
}

int cpu_tensor_download(void *ctx, const dt_tensor *src, float *host_nchw, dt_error *err) {
    (void)ctx;
    (void)err;
    if (src->layout == CPU_LAYOUT_NCHW) {
        memcpy(host_nchw, src->data, src->count * sizeof(float));
        return 0;
    }
    const int B = src->block;
    const long long blocks = (long long)src->n * (src->c / B);
    const long long plane = (long long)src->h * src->w;
#pragma omp parallel for schedule(static)
    for (long long b = 0; b < blocks; b++) {
        const float *in = src->data + b * B * plane;
        float *out = host_nchw + b * B * plane;
        for (int k = 0; k < B; k++)
            for (long long p = 0; p < plane; p++) out[k * plane + p] = in[p * B + k];
    }
    return 0;
}

/* The context's normaliser for mean and std, built on first use and again only when they
 * change (they are constant for a run). One thread per context calls this. */
static const cpu_normalizer *cpu_normalizer_for(cpu_ctx *ctx, const float mean[3],
                                                const float std[3], dt_error *err) {
    cpu_normalizer *nz = &ctx->normalizer;
    if (ctx->have_normalizer && memcmp(nz->mean, mean, sizeof nz->mean) == 0 &&
        memcmp(nz->std, std, sizeof nz->std) == 0)
        return nz;
    ctx->have_normalizer = 0;
    if (cpu_normalizer_init(nz, mean, std, CPU_NORMALIZE_AUTO, err) != 0) return NULL;
    ctx->have_normalizer = 1;
    return nz;
}

int cpu_tensor_from_images(void *opaque, dt_tensor *dst, const uint8_t *pixels_nhwc,
                           const float mean[3], const float std[3], dt_error *err) {
    if (dst->c != 3 || dst->layout != CPU_LAYOUT_NCHW)
        return dt_fail(err, "tensor_from_images: the tensor has %d channels, expected 3 (RGB)",
                       dst->c);
    const cpu_normalizer *normalizer = cpu_normalizer_for(opaque, mean, std, err);
    if (!normalizer) return -1;
    const int h = dst->h, w = dst->w;
    const long long rows = (long long)dst->n * h;
    const size_t plane = (size_t)h * w;
#pragma omp parallel for schedule(static)
    for (long long r = 0; r < rows; r++) {
        const long long n = r / h, y = r % h;
        float *red = dst->data + (size_t)n * 3 * plane + (size_t)y * w;
        cpu_normalize_row(normalizer, pixels_nhwc + (size_t)r * w * 3, w, red, red + plane,
                          red + 2 * plane);
    }
    return 0;
}

int cpu_tensor_add(void *ctx, dt_tensor *dst, const dt_tensor *src, dt_error *err) {
    (void)ctx;
    if (cpu_tensor_same_shape(dst, src, "tensor_add", err) != 0) return -1;
    float *y = dst->data;
    const float *x = src->data;
    const long long n = (long long)dst->count;
    const int one_thread = cpu_one_thread_suits((size_t)n * sizeof(float));
#pragma omp parallel for simd if (!one_thread) schedule(static)
    for (long long i = 0; i < n; i++) y[i] += x[i];
    return 0;
}
