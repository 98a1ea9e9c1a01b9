/* Backend activation tensors: the CPU's layout rule (nChw8c or nChw16c, the block chosen for the
 * ISA oneDNN dispatches to, when channels % block == 0, else nchw), exact upload/download round
 * trips with elements at their blocked positions, the fused uint8 NHWC -> normalised NCHW image
 * conversion (exact values, also when mean and std change between calls), argument errors, the
 * library version string, and the CPU's rule that small reorders run on one thread. Compare mode:
 * the input path on another backend against the CPU's.
 * Rows: test_backend_ops.c. */
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "../src/backend/cpu/cpu_internal.h"
#include "backend_ops.h"

void tensor_check_round_trip(dt_backend *b, const backend_op_case *oc) {
    const op_shape *shape = oc->params;
    const int n = shape->n, c = shape->c, h = shape->h, w = shape->w;
    dt_error err = {0};
    size_t count = (size_t)n * c * h * w;
    float *host = test_floats(count), *back = test_floats(count);
    for (size_t i = 0; i < count; i++) host[i] = (float)i * 0.5f - 7.0f;
    dt_tensor *t = dt_backend_tensor_create(b, n, c, h, w, &err);
    CHECK_MSG(t != NULL, "%s", err.message);
    if (!t) return;
    CHECK(dt_backend_tensor_upload(b, t, host, &err) == 0);
    CHECK(dt_backend_tensor_download(b, t, back, &err) == 0);
    CHECK_MSG(memcmp(host, back, count * sizeof(float)) == 0, "round trip %dx%dx%dx%d", n, c, h, w);
    if (!dt_backend_has(b, DT_BACKEND_HOST_MEMORY)) { /* the physical layout is the backend's own */
        dt_backend_tensor_destroy(b, t);
        free(host), free(back);
        return;
    }
    const cpu_ctx *ctx = b->ctx;
    const int B = ctx->block;
    CHECK_MSG(t->block == B, "block of %dx%dx%dx%d", n, c, h, w);
    cpu_layout want = c % B == 0 ? CPU_LAYOUT_BLOCKED : CPU_LAYOUT_NCHW;
    CHECK_MSG(t->layout == want, "layout of %dx%dx%dx%d", n, c, h, w);
    /* element (n-1, c-1, h-1, 0) at its physical place */
    size_t logical = (((size_t)(n - 1) * c + (c - 1)) * h + (h - 1)) * w;
    size_t physical = logical;
    if (want == CPU_LAYOUT_BLOCKED)
        physical = ((((size_t)(n - 1) * (c / B) + (c - 1) / B) * h + (h - 1)) * w) * B +
                   (size_t)(c - 1) % B;
    CHECK_MSG(t->data[physical] == host[logical], "physical position in %dx%dx%dx%d", n, c, h, w);
    dt_backend_tensor_destroy(b, t);
    free(host), free(back);
}

enum { IMG_N = 2, IMG_H = 5, IMG_W = 4 };

/* Converts pixels with mean and std into t; 1 when every value is exactly the reference. */
static int from_images_exact(dt_backend *b, dt_tensor *t, const uint8_t *pixels,
                             const float mean[3], const float std[3], float *got) {
    enum { N = IMG_N, H = IMG_H, W = IMG_W };
    dt_error err = {0};
    CHECK_MSG(dt_backend_tensor_from_images(b, t, pixels, mean, std, &err) == 0, "%s", err.message);
    CHECK(dt_backend_tensor_download(b, t, got, &err) == 0);
    int exact = 1;
    for (int n = 0; n < N; n++)
        for (int c = 0; c < 3; c++)
            for (int y = 0; y < H; y++)
                for (int x = 0; x < W; x++) {
                    float p = pixels[((n * H + y) * W + x) * 3 + c];
                    float want = (p / 255.0f - mean[c]) / std[c];
                    exact &= got[((n * 3 + c) * H + y) * W + x] == want;
                }
    return exact;
}

void tensor_check_from_images(dt_backend *b, const backend_op_case *oc) {
    (void)oc;
    enum { N = IMG_N, H = IMG_H, W = IMG_W };
    dt_error err = {0};
    uint8_t pixels[N * H * W * 3];
    uint64_t state = 8u;
    for (size_t i = 0; i < sizeof pixels; i++)
        pixels[i] = (uint8_t)((int)test_random(&state, 0, 256) & 255);
    pixels[0] = 0, pixels[1] = 255, pixels[2] = 128;
    const float mean[3] = {0.485f, 0.456f, 0.406f}, std[3] = {0.229f, 0.224f, 0.225f};
    dt_tensor *t = dt_backend_tensor_create(b, N, 3, H, W, &err);
    float got[N * 3 * H * W];
    CHECK_MSG(from_images_exact(b, t, pixels, mean, std, got), "tensor_from_images values");
    CHECK_CLOSE(got[0], (0.0 - 0.485) / 0.229, 1e-6, 0);                 /* red of pixel 0 */
    CHECK_CLOSE(got[H * W], (1.0 - 0.456) / 0.224, 1e-6, 0);             /* green of pixel 0 */
    CHECK_CLOSE(got[2 * H * W], (128 / 255.0 - 0.406) / 0.225, 1e-6, 0); /* blue */

    /* the backend keeps its normaliser between calls: other mean/std values must take effect,
     * a rejected std must not leave a stale one behind, and the first values work again */
    const float mean2[3] = {0.5f, 0.25f, 0.0f}, std2[3] = {0.5f, 2.0f, 1.0f};
    CHECK_MSG(from_images_exact(b, t, pixels, mean2, std2, got), "values after new mean/std");
    CHECK_CLOSE(got[0], (0.0 - 0.5) / 0.5, 1e-6, 0);
    const float zero_std[3] = {0.5f, 0.0f, 1.0f};
    CHECK(dt_backend_tensor_from_images(b, t, pixels, mean2, zero_std, &err) == -1);
    CHECK(strstr(err.message, "non-zero") != NULL);
    CHECK(dt_backend_tensor_from_images(b, t, pixels, mean2, zero_std, &err) == -1);
    CHECK_MSG(from_images_exact(b, t, pixels, mean, std, got), "values after the first again");
    CHECK_CLOSE(got[0], (0.0 - 0.485) / 0.229, 1e-6, 0);
    dt_backend_tensor_destroy(b, t);

    dt_tensor *wide = dt_backend_tensor_create(b, N, 16, H, W, &err);
    CHECK(dt_backend_tensor_from_images(b, wide, pixels, mean, std, &err) == -1);
    CHECK(strstr(err.message, "16 channels") != NULL);
    dt_backend_tensor_destroy(b, wide);
}

/* argument errors, and the library version string */
void tensor_check_refusals(dt_backend *b, const backend_op_case *oc) {
    (void)oc;
    dt_error err = {0};
    CHECK(dt_backend_tensor_create(b, 0, 3, 4, 4, &err) == NULL);
    CHECK(strstr(err.message, "tensor_create") != NULL);
    CHECK(dt_backend_tensor_create(b, 1 << 20, 1 << 20, 1 << 20, 1 << 20, &err) == NULL);

    const char *version = dt_backend_cpu_library_version();
    CHECK_MSG(strncmp(version, "oneDNN ", 7) == 0 && strlen(version) > 8, "version \"%s\"",
              version);
}

/* The input path on the other backend: pinned host pixels normalised to NCHW against the CPU's,
 * also through input_prefetch, a forgotten prefetch, and a tensor upload/download round trip. */
void tensor_compare_input(dt_backend *cpu, dt_backend *other, const backend_op_case *oc) {
    const dt_test_tolerances *t = dt_test_tolerances_for(oc->precision);
    enum { N = 3, H = 17, W = 19 };
    dt_error err = {0};
    const size_t count = (size_t)N * 3 * H * W;
    dt_backend *gpu = other;
    uint8_t *pixels = dt_backend_host_alloc(gpu, count, &err);
    CHECK_MSG(pixels != NULL, "host_alloc: %s", err.message);
    if (!pixels) return;
    for (size_t i = 0; i < count; i++) pixels[i] = (uint8_t)(i * 37 + i / 7);
    const float mean[3] = {0.485f, 0.456f, 0.406f}, std[3] = {0.229f, 0.224f, 0.225f};
    dt_tensor *ct = op_tensor_of(cpu, N, 3, H, W, NULL), *gt = op_tensor_of(gpu, N, 3, H, W, NULL);
    CHECK(dt_backend_tensor_from_images(cpu, ct, pixels, mean, std, &err) == 0);
    CHECK_MSG(dt_backend_tensor_from_images(gpu, gt, pixels, mean, std, &err) == 0, "%s",
              err.message);
    CHECK_MSG(dt_backend_input_wait(gpu, &err) == 0, "%s", err.message);
    memset(pixels, 0, count); /* the copy has been read: the tensor keeps its values */
    float *want = op_tensor_read(cpu, ct, count), *got = op_tensor_read(gpu, gt, count);
    op_compare(oc->precision, "tensor_from_images", got, want, count, t->eltwise);
    free(got);
    /* the same pixels through input_prefetch (taken from the prefetched device buffer) */
    for (size_t i = 0; i < count; i++) pixels[i] = (uint8_t)(i * 37 + i / 7);
    CHECK_MSG(dt_backend_input_prefetch(gpu, pixels, count, &err) == 0 &&
                  dt_backend_tensor_from_images(gpu, gt, pixels, mean, std, &err) == 0 &&
                  dt_backend_input_wait(gpu, &err) == 0,
              "%s", err.message);
    got = op_tensor_read(gpu, gt, count);
    op_compare(oc->precision, "input_prefetch + tensor_from_images", got, want, count, t->eltwise);
    free(got);
    /* a prefetch that input_wait passed is forgotten: the host buffer may have been refilled */
    memset(pixels, 0, count);
    CHECK_MSG(dt_backend_input_prefetch(gpu, pixels, count, &err) == 0 &&
                  dt_backend_input_wait(gpu, &err) == 0,
              "%s", err.message);
    for (size_t i = 0; i < count; i++) pixels[i] = (uint8_t)(i * 37 + i / 7);
    CHECK_MSG(dt_backend_tensor_from_images(gpu, gt, pixels, mean, std, &err) == 0 &&
                  dt_backend_input_wait(gpu, &err) == 0,
              "%s", err.message);
    got = op_tensor_read(gpu, gt, count);
    op_compare(oc->precision, "tensor_from_images after a forgotten prefetch", got, want, count,
               t->eltwise);
    free(got);
    /* tensor upload/download round trip */
    dt_tensor *gu = op_tensor_of(gpu, N, 3, H, W, want);
    got = op_tensor_read(gpu, gu, count);
    op_compare(oc->precision, "tensor_upload/download", got, want, count, t->eltwise);
    free(want), free(got);
    dt_backend_host_free(gpu, pixels);
    dt_backend_tensor_destroy(cpu, ct);
    dt_backend_tensor_destroy(gpu, gt), dt_backend_tensor_destroy(gpu, gu);
}

/* CPU: a reorder small enough to copy in tens of microseconds runs on the calling thread alone
 * (cpu_primitive.c); the OpenMP thread count is the same after it is made and after it runs, and
 * the copy is exact. */
void tensor_check_reorder_threads(dt_backend *b, const backend_op_case *oc) {
    (void)oc;
    if (!dt_backend_has(b, DT_BACKEND_HOST_MEMORY)) return;
    cpu_ctx *ctx = b->ctx;
    dt_error err = {0};
    const int threads = omp_get_max_threads();
    dnnl_memory_desc_t small_plain, small_blocked, big_plain, big_blocked;
    const dnnl_dims_t small = {64, 64, 3, 3}, big = {512, 512, 3, 3};
    CHECK(dnnl_memory_desc_init_by_tag(&small_plain, 4, small, dnnl_f32, dnnl_oihw) == 0);
    CHECK(dnnl_memory_desc_init_by_tag(&small_blocked, 4, small, dnnl_f32, dnnl_OIhw16i16o) == 0);
    CHECK(dnnl_memory_desc_init_by_tag(&big_plain, 4, big, dnnl_f32, dnnl_oihw) == 0);
    CHECK(dnnl_memory_desc_init_by_tag(&big_blocked, 4, big, dnnl_f32, dnnl_OIhw16i16o) == 0);
    cpu_primitive small_reorder, big_reorder;
    CHECK_MSG(
        cpu_reorder_create(ctx, &small_plain, &small_blocked, &small_reorder, &err, "small") == 0,
        "%s", err.message);
    CHECK(omp_get_max_threads() == threads);
    CHECK_MSG(cpu_reorder_create(ctx, &big_plain, &big_blocked, &big_reorder, &err, "big") == 0,
              "%s", err.message);
    CHECK(small_reorder.one_thread == 1);
    CHECK(big_reorder.one_thread == 0);
    const size_t count = 64 * 64 * 9;
    float *from = test_floats(count), *to = test_floats(count);
    for (size_t i = 0; i < count; i++) from[i] = (float)i;
    dnnl_memory_t from_memory = NULL, to_memory = NULL;
    CHECK(cpu_memory_create(ctx, &small_plain, from, &from_memory, &err) == 0);
    CHECK(cpu_memory_create(ctx, &small_blocked, to, &to_memory, &err) == 0);
    dnnl_exec_arg_t args[] = {{DNNL_ARG_FROM, from_memory}, {DNNL_ARG_TO, to_memory}};
    CHECK_MSG(cpu_primitive_execute(ctx, &small_reorder, 2, args, &err, "small reorder") == 0, "%s",
              err.message);
    CHECK(omp_get_max_threads() == threads);
    /* element (o, i, h, w) of OIhw16i16o: block (o / 16, i / 16), then h, w, i % 16, o % 16 */
    int wrong = 0;
    for (int o = 0; o < 64; o++)
        for (int i = 0; i < 64; i++)
            for (int k = 0; k < 9; k++) {
                size_t blocked =
                    ((((size_t)(o / 16) * 4 + i / 16) * 9 + k) * 16 + i % 16) * 16 + o % 16;
                wrong += to[blocked] != from[((size_t)o * 64 + i) * 9 + k];
            }
    CHECK_MSG(wrong == 0, "%d elements of the one-thread reorder misplaced", wrong);
    dnnl_memory_destroy(from_memory);
    dnnl_memory_destroy(to_memory);
    cpu_primitive_destroy(&small_reorder);
    cpu_primitive_destroy(&big_reorder);
    free(from), free(to);
}
