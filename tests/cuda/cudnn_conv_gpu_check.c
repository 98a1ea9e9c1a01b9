/* On a GPU: executes cuDNN convolution plans (forward, backward data, backward filter; fp32,
 * tf32, bf16; the fastest of the timed candidates) on random NHWC/KRSC data and compares them with
 * a naive double-precision convolution on the host, for plans built from the device's handle and
 * from its device-property JSON (written to the path given as argument, the file that can replace
 * the synthetic description in tests/cuda/). Without a GPU it reports SKIPPED (exit 77). */
#include <cuda_runtime_api.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/cuda/cudnn_conv.h"
#include "check.h"
#include "dtrain/config.h"
#include "dtrain/rng.h"

enum { SKIPPED = 77 };

static int out_size(int in, int kernel, int stride, int padding) {
    return (in + 2 * padding - kernel) / stride + 1;
}

/* Round to nearest even bf16, as stored on the device. */
static uint16_t to_bf16(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

static float from_bf16(uint16_t b) {
    uint32_t u = (uint32_t)b << 16;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* Naive convolutions over NHWC x/y and KRSC w, in double. */
static void reference(const dt_conv_desc *d, dt_conv_pass pass, const float *x, const float *w,
                      const float *y, double *out) {
    int oh = out_size(d->in_height, d->kernel, d->stride, d->padding);
    int ow = out_size(d->in_width, d->kernel, d->stride, d->padding);
    int C = d->in_channels, K = d->out_channels, R = d->kernel, H = d->in_height, W = d->in_width;
    size_t n_out = pass == DT_CONV_FORWARD         ? (size_t)d->batch * oh * ow * K
                   : pass == DT_CONV_BACKWARD_DATA ? (size_t)d->batch * H * W * C
                                                   : (size_t)K * R * R * C;
    memset(out, 0, n_out * sizeof *out);
    for (int n = 0; n < d->batch; n++)
        for (int p = 0; p < oh; p++)
            for (int q = 0; q < ow; q++)
                for (int r = 0; r < R; r++)
                    for (int s = 0; s < R; s++) {
                        int h = p * d->stride - d->padding + r, v = q * d->stride - d->padding + s;
                        if (h < 0 || h >= H || v < 0 || v >= W) continue;
                        for (int k = 0; k < K; k++)
                            for (int c = 0; c < C; c++) {
                                size_t xi = (((size_t)n * H + h) * W + v) * C + c;
                                size_t wi = (((size_t)k * R + r) * R + s) * C + c;
                                size_t yi = (((size_t)n * oh + p) * ow + q) * K + k;
                                if (pass == DT_CONV_FORWARD)
                                    out[yi] += (double)x[xi] * w[wi];
                                else if (pass == DT_CONV_BACKWARD_DATA)
                                    out[xi] += (double)y[yi] * w[wi];
                                else
                                    out[wi] += (double)x[xi] * y[yi];
                            }
                    }
}

typedef struct device_buffers {
    void *x, *w, *y, *workspace;
    size_t workspace_size;
} device_buffers;

/* Uploads host floats as fp32 or bf16. */
static int upload(void *dst, const float *src, size_t n, int bf16) {
    if (!bf16) return cudaMemcpy(dst, src, n * 4, cudaMemcpyHostToDevice) != cudaSuccess;
    uint16_t *tmp = malloc(n * 2);
    if (!tmp) return 1;
    for (size_t i = 0; i < n; i++) tmp[i] = to_bf16(src[i]);
    int rc = cudaMemcpy(dst, tmp, n * 2, cudaMemcpyHostToDevice) != cudaSuccess;
    free(tmp);
    return rc;
}

static int download(float *dst, const void *src, size_t n, int bf16) {
    if (!bf16) return cudaMemcpy(dst, src, n * 4, cudaMemcpyDeviceToHost) != cudaSuccess;
    uint16_t *tmp = malloc(n * 2);
    if (!tmp) return 1;
    int rc = cudaMemcpy(tmp, src, n * 2, cudaMemcpyDeviceToHost) != cudaSuccess;
    for (size_t i = 0; i < n && !rc; i++) dst[i] = from_bf16(tmp[i]);
    free(tmp);
    return rc;
}

static void fill(float *v, size_t n, dt_rng *rng, int bf16) {
    for (size_t i = 0; i < n; i++) {
        float f = (float)(2.0 * dt_rng_uniform_double(rng) - 1.0);
        v[i] = bf16 ? from_bf16(to_bf16(f)) : f; /* the reference sees the stored values */
    }
}

/* Largest |got - want| over the largest |want|: one number per run, stated against a tolerance
 * per precision (tf32 and bf16 round the inputs' mantissas to 10 and 7 bits). */
static double normalised_error(const float *got, const double *want, size_t n) {
    double worst = 0, scale = 1e-30;
    for (size_t i = 0; i < n; i++) {
        double e = fabs(got[i] - want[i]);
        if (!(e <= worst)) worst = e; /* NaN counts as the worst */
        if (fabs(want[i]) > scale) scale = fabs(want[i]);
    }
    return worst / scale;
}

static void run_case(const dt_cudnn_target *t, const char *target_name, const dt_conv_desc *d,
                     int precision, dt_conv_pass pass, cudnnHandle_t h, device_buffers *b) {
    static const char *pass_names[] = {"forward", "backward-data", "backward-filter"};
    static const char *prec_names[] = {"fp32", "tf32", "bf16"};
    static const double tolerance[] = {1e-4, 5e-3, 2e-2};
    int bf16 = precision == DT_PRECISION_BF16;
    int oh = out_size(d->in_height, d->kernel, d->stride, d->padding);
    int ow = out_size(d->in_width, d->kernel, d->stride, d->padding);
    size_t nx = (size_t)d->batch * d->in_height * d->in_width * d->in_channels;
    size_t nw = (size_t)d->out_channels * d->kernel * d->kernel * d->in_channels;
    size_t ny = (size_t)d->batch * oh * ow * d->out_channels;
    size_t n_out = pass == DT_CONV_FORWARD ? ny : pass == DT_CONV_BACKWARD_DATA ? nx : nw;
    float *x = malloc(nx * 4), *w = malloc(nw * 4), *y = malloc(ny * 4), *got = malloc(n_out * 4);
    float *before = malloc(n_out * 4);
    double *want = malloc(n_out * sizeof *want);
    dt_cudnn_conv_plan *p = NULL;
    dt_error err = {0};
    if (!x || !w || !y || !got || !before || !want) {
        CHECK_MSG(0, "out of host memory");
        goto done;
    }
    dt_rng rng = dt_rng_seeded(0x5eed + (uint64_t)pass * 7 + (uint64_t)precision);
    fill(x, nx, &rng, bf16);
    fill(w, nw, &rng, bf16);
    fill(y, ny, &rng, bf16);
    fill(before, n_out, &rng, bf16);
    char what[200];
    snprintf(what, sizeof what, "conv %dx%dx%dx%d->%d k%d s%d p%d %s %s (%s)", d->batch,
             d->in_channels, d->in_height, d->in_width, d->out_channels, d->kernel, d->stride,
             d->padding, pass_names[pass], prec_names[precision], target_name);
    if (dt_cudnn_conv_plan_build(t, d, precision, pass, &p, &err)) {
        CHECK_MSG(0, "%s: %s", what, err.message);
        goto done;
    }
    size_t ws = dt_cudnn_conv_plan_workspace(p);
    if (ws > b->workspace_size) {
        CHECK_MSG(0, "%s: workspace %zu over the test's %zu", what, ws, b->workspace_size);
        goto done;
    }
    void *out = pass == DT_CONV_FORWARD ? b->y : pass == DT_CONV_BACKWARD_DATA ? b->x : b->w;
    const void *in = pass == DT_CONV_BACKWARD_DATA ? b->y : b->x;
    const void *second = pass == DT_CONV_BACKWARD_FILTER ? b->y : b->w;
    int ok = !upload(b->x, x, nx, bf16) && !upload(b->w, w, nw, bf16) &&
             !upload(b->y, y, ny, bf16) && !upload(out, before, n_out, bf16);
    CHECK_MSG(ok, "%s: upload", what);
    reference(d, pass, x, w, y, want);
    /* beta 0 must ignore what out held before */
    int rc = dt_cudnn_conv_plan_execute(h, p, in, second, out, b->workspace, 1.0f, 0.0f, &err);
    CHECK_MSG(rc == 0, "%s: %s", what, err.message);
    if (rc == 0 && cudaDeviceSynchronize() == cudaSuccess && !download(got, out, n_out, bf16)) {
        double e = normalised_error(got, want, n_out);
        printf("%-70s error %.2e tolerance %.0e\n", what, e, tolerance[precision]);
        CHECK_MSG(e <= tolerance[precision], "%s: error %.3e over %.0e", what, e,
                  tolerance[precision]);
    }
    /* no beta 1 plan: the backend accumulates in its layout copy */
    CHECK_MSG(dt_cudnn_conv_plan_execute(h, p, in, second, out, b->workspace, 1.0f, 1.0f, &err) !=
                  0,
              "%s: beta 1 was accepted", what);
done:
    dt_cudnn_conv_plan_destroy(p);
    free(x), free(w), free(y), free(got), free(before), free(want);
}

int main(int argc, char **argv) {
    int count = 0;
    cudaError_t ce = cudaGetDeviceCount(&count);
    if (ce != cudaSuccess || count == 0) {
        printf("SKIPPED: no GPU (%s)\n", ce != cudaSuccess ? cudaGetErrorString(ce) : "0 devices");
        return SKIPPED;
    }
    cudnnHandle_t h = NULL;
    cudnnStatus_t cs = cudnnCreate(&h);
    if (cs != CUDNN_STATUS_SUCCESS) {
        CHECK_MSG(0, "cudnnCreate: %s", cudnnGetErrorString(cs));
        return dt_test_summary("cudnn_conv_gpu_check");
    }
    dt_error err = {0};
    cudnnBackendDescriptor_t prop = NULL;
    if (argc > 1) {
        CHECK_MSG(dt_cudnn_deviceprop_to_json(h, argv[1], &err) == 0, "%s", err.message);
        CHECK_MSG(dt_cudnn_deviceprop_from_json(argv[1], &prop, &err) == 0, "%s", err.message);
        if (prop) printf("device properties written to %s\n", argv[1]);
    }
    device_buffers b = {.workspace_size = (size_t)64 << 20};
    size_t bytes = (size_t)4 << 20; /* every tensor below is smaller */
    if (cudaMalloc(&b.x, bytes) || cudaMalloc(&b.w, bytes) || cudaMalloc(&b.y, bytes) ||
        cudaMalloc(&b.workspace, b.workspace_size)) {
        CHECK_MSG(0, "cudaMalloc failed");
        return dt_test_summary("cudnn_conv_gpu_check");
    }
    /* the stem's 7x7/2, a 3x3/2 on a non-square input, a 3x3/1 and the 1x1/2 downsample */
    static const dt_conv_desc shapes[] = {{2, 3, 16, 20, 20, 7, 2, 3, 0, 0, 0},
                                          {2, 16, 32, 9, 13, 3, 2, 1, 0, 0, 0},
                                          {3, 32, 32, 8, 8, 3, 1, 1, 0, 0, 0},
                                          {2, 32, 64, 10, 10, 1, 2, 0, 0, 0, 0}};
    dt_cudnn_target from_handle = {.handle = h, .workspace_limit = b.workspace_size};
    dt_cudnn_target ahead = {.deviceprop = prop, .workspace_limit = b.workspace_size};
    for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++)
        for (int precision = DT_PRECISION_FP32; precision <= DT_PRECISION_BF16; precision++)
            for (int pass = DT_CONV_FORWARD; pass <= DT_CONV_BACKWARD_FILTER; pass++) {
                run_case(&from_handle, "handle", &shapes[s], precision, (dt_conv_pass)pass, h, &b);
                if (prop)
                    run_case(&ahead, "device JSON", &shapes[s], precision, (dt_conv_pass)pass, h,
                             &b);
            }
    if (prop) cudnnBackendDestroyDescriptor(prop);
    cudaFree(b.x), cudaFree(b.w), cudaFree(b.y), cudaFree(b.workspace);
    cudnnDestroy(h);
    return dt_test_summary("cudnn_conv_gpu_check");
}
