/* Builds, without a GPU, every cuDNN convolution plan ResNet-18 needs (each conv shape of the
 * network at the training and test sizes; fp32, tf32, bf16; forward, backward data and backward
 * filter) for the device described by the JSON given as argument, and checks what cuDNN was given
 * (dims, channels-last strides, data type), that the workspace fits the limit and that fp32
 * plans never use TF32 tensor cores. Prints the engine chosen for each plan. */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "backend/cuda/cudnn_conv.h"
#include "dtrain/config.h"

static int failures;

#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            failures++;                                                                            \
            fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);                                   \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fputc('\n', stderr);                                                                   \
        }                                                                                          \
    } while (0)

static int out_size(int in, int kernel, int stride, int padding) {
    return (in + 2 * padding - kernel) / stride + 1;
}

/* The distinct convolutions of torchvision's ResNet-18 for one batch and input side: the stem,
 * then per stage the 3x3 convolutions (the first of stages 2-4 with stride 2) and the 1x1
 * stride-2 downsample. */
static int resnet18_convs(int batch, int size, dt_conv_desc *out) {
    int n = 0;
    out[n++] = (dt_conv_desc){batch, 3, 64, size, size, 7, 2, 3};
    int side = out_size(out_size(size, 7, 2, 3), 3, 2, 1); /* stem conv, then max pool */
    out[n++] = (dt_conv_desc){batch, 64, 64, side, side, 3, 1, 1};
    for (int channels = 64; channels < 512; channels *= 2) {
        out[n++] = (dt_conv_desc){batch, channels, 2 * channels, side, side, 3, 2, 1};
        out[n++] = (dt_conv_desc){batch, channels, 2 * channels, side, side, 1, 2, 0};
        side = out_size(side, 3, 2, 1);
        out[n++] = (dt_conv_desc){batch, 2 * channels, 2 * channels, side, side, 3, 1, 1};
    }
    return n;
}

/* What the backend's layout contract says cuDNN must see for role 0 (x), 1 (w), 2 (y). */
static void expected_tensor(const dt_conv_desc *d, int role, int64_t dims[4], int64_t strides[4]) {
    int c, h, w;
    if (role == 1) {
        int k = d->kernel;
        dims[0] = d->out_channels, dims[1] = d->in_channels, dims[2] = k, dims[3] = k;
        /* KRSC: channels innermost, then filter columns, rows, output channels */
        strides[1] = 1, strides[3] = d->in_channels, strides[2] = (int64_t)k * d->in_channels;
        strides[0] = (int64_t)k * k * d->in_channels;
        return;
    }
    if (role == 0)
        c = d->in_channels, h = d->in_height, w = d->in_width;
    else
        c = d->out_channels, h = out_size(d->in_height, d->kernel, d->stride, d->padding),
        w = out_size(d->in_width, d->kernel, d->stride, d->padding);
    dims[0] = d->batch, dims[1] = c, dims[2] = h, dims[3] = w;
    /* NHWC: channels innermost, then columns, rows, images */
    strides[1] = 1, strides[3] = c, strides[2] = (int64_t)w * c, strides[0] = (int64_t)h * w * c;
}

static void check_tensors(const dt_cudnn_conv_plan *p, const dt_conv_desc *d, int precision,
                          const char *what) {
    cudnnDataType_t want = precision == DT_PRECISION_BF16 ? CUDNN_DATA_BFLOAT16 : CUDNN_DATA_FLOAT;
    for (int role = 0; role < 3; role++) {
        int64_t dims[4], strides[4], want_dims[4], want_strides[4];
        cudnnDataType_t type;
        dt_error err = {0};
        int rc = dt_cudnn_conv_plan_tensor(p, role, dims, strides, &type, &err);
        CHECK(rc == 0, "%s: reading tensor %d: %s", what, role, err.message);
        if (rc) continue;
        expected_tensor(d, role, want_dims, want_strides);
        CHECK(memcmp(dims, want_dims, sizeof dims) == 0,
              "%s: tensor %d dims %lldx%lldx%lldx%lld, expected %lldx%lldx%lldx%lld", what, role,
              (long long)dims[0], (long long)dims[1], (long long)dims[2], (long long)dims[3],
              (long long)want_dims[0], (long long)want_dims[1], (long long)want_dims[2],
              (long long)want_dims[3]);
        CHECK(memcmp(strides, want_strides, sizeof strides) == 0,
              "%s: tensor %d strides %lld,%lld,%lld,%lld, expected %lld,%lld,%lld,%lld", what, role,
              (long long)strides[0], (long long)strides[1], (long long)strides[2],
              (long long)strides[3], (long long)want_strides[0], (long long)want_strides[1],
              (long long)want_strides[2], (long long)want_strides[3]);
        CHECK(type == want, "%s: tensor %d data type %d, expected %d", what, role, (int)type,
              (int)want);
    }
}

/* A non-square input, so that swapped row and column strides cannot pass unnoticed. */
static int check_non_square(const dt_cudnn_target *t) {
    dt_conv_desc d = {3, 8, 24, 20, 36, 3, 2, 1};
    int plans = 0;
    for (int pass = DT_CONV_FORWARD; pass <= DT_CONV_BACKWARD_FILTER; pass++) {
        dt_cudnn_conv_plan *p = NULL;
        dt_error err = {0};
        int rc = dt_cudnn_conv_plan_build(t, &d, DT_PRECISION_FP32, (dt_conv_pass)pass, &p, &err);
        CHECK(rc == 0, "non-square input, pass %d: %s", pass, err.message);
        if (rc) continue;
        check_tensors(p, &d, DT_PRECISION_FP32, "non-square input");
        plans++;
        dt_cudnn_conv_plan_destroy(p);
    }
    return plans;
}

/* Shapes and arguments the module must refuse, with the layer named in the message. */
static void check_refusals(const dt_cudnn_target *t) {
    dt_conv_desc too_small = {4, 3, 8, 2, 2, 7, 1, 0};
    dt_cudnn_conv_plan *p = NULL;
    dt_error err = {0};
    CHECK(dt_cudnn_conv_plan_build(t, &too_small, DT_PRECISION_FP32, DT_CONV_FORWARD, &p, &err) !=
                  0 &&
              !p,
          "a 7x7 kernel on a 2x2 input without padding was accepted");
    CHECK(strstr(err.message, "conv 4x3x2x2 -> 8 k7 s1 p0, forward, fp32") != NULL,
          "the error does not name the layer: %s", err.message);

    dt_conv_desc fine = {4, 16, 16, 8, 8, 3, 1, 1};
    dt_cudnn_target tiny = *t;
    tiny.workspace_limit = 0;
    memset(&err, 0, sizeof err);
    int rc = dt_cudnn_conv_plan_build(&tiny, &fine, DT_PRECISION_BF16, DT_CONV_BACKWARD_FILTER, &p,
                                      &err);
    if (rc == 0) {
        CHECK(dt_cudnn_conv_plan_workspace(p) == 0, "a zero workspace limit gave a %zu-byte plan",
              dt_cudnn_conv_plan_workspace(p));
        dt_cudnn_conv_plan_destroy(p);
    } else {
        CHECK(strstr(err.message, "backward-filter, bf16") != NULL, "unnamed failure: %s",
              err.message);
    }

    dt_cudnn_target nothing = {.workspace_limit = t->workspace_limit};
    memset(&err, 0, sizeof err);
    CHECK(dt_cudnn_conv_plan_build(&nothing, &fine, DT_PRECISION_FP32, DT_CONV_FORWARD, &p, &err) !=
              0,
          "a target without handle and device properties was accepted");

    cudnnBackendDescriptor_t prop = NULL;
    memset(&err, 0, sizeof err);
    CHECK(dt_cudnn_deviceprop_from_json("/nonexistent/deviceprop.json", &prop, &err) != 0 &&
              strstr(err.message, "/nonexistent/deviceprop.json") != NULL,
          "a missing device-property file was not reported by name: %s", err.message);
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s DEVICEPROP.json\n", argv[0]);
        return 2;
    }
    struct timespec start, end;
    clock_gettime(CLOCK_MONOTONIC, &start);
    dt_error err = {0};
    cudnnBackendDescriptor_t prop = NULL;
    if (dt_cudnn_deviceprop_from_json(argv[1], &prop, &err)) {
        fprintf(stderr, "FAIL: %s\n", err.message);
        return 1;
    }
    dt_cudnn_target target = {.deviceprop = prop,
                              .workspace_limit = DT_CUDNN_WORKSPACE_LIMIT_DEFAULT};
    check_refusals(&target);
    CHECK(check_non_square(&target) == 3, "non-square plans missing");

    static const struct {
        int batch, size;
    } sizes[] = {{64, 224}, {256, 224}, {2, 32}, {8, 32}, {16, 32}, {4, 64}, {16, 64}};
    static const int precisions[] = {DT_PRECISION_FP32, DT_PRECISION_TF32, DT_PRECISION_BF16};
    static const char *precision_names[] = {"fp32", "tf32", "bf16"};
    static const char *pass_names[] = {"fwd", "bwd-data", "bwd-filter"};
    int plans = 0, graphs = 0, tensor_core_plans = 0;
    size_t largest = 0;
    for (size_t si = 0; si < sizeof sizes / sizeof *sizes; si++) {
        dt_conv_desc convs[16];
        int n = resnet18_convs(sizes[si].batch, sizes[si].size, convs);
        CHECK(n == 11, "ResNet-18 has 11 distinct convolutions per size, listed %d", n);
        for (int ci = 0; ci < n; ci++) {
            for (int pi = 0; pi < 3; pi++) {
                for (int pass = DT_CONV_FORWARD; pass <= DT_CONV_BACKWARD_FILTER; pass++) {
                    const dt_conv_desc *d = &convs[ci];
                    char what[160];
                    snprintf(what, sizeof what, "%dx%dx%dx%d->%d k%d s%d %s %s", d->batch,
                             d->in_channels, d->in_height, d->in_width, d->out_channels, d->kernel,
                             d->stride, precision_names[pi], pass_names[pass]);
                    dt_cudnn_conv_plan *p = NULL;
                    memset(&err, 0, sizeof err);
                    graphs++;
                    if (dt_cudnn_conv_plan_build(&target, d, precisions[pi], (dt_conv_pass)pass, &p,
                                                 &err)) {
                        CHECK(0, "%s: %s", what, err.message);
                        continue;
                    }
                    plans += pass == DT_CONV_BACKWARD_FILTER ? 2 : 1;
                    size_t workspace = dt_cudnn_conv_plan_workspace(p);
                    CHECK(workspace <= target.workspace_limit, "%s: workspace %zu over %zu", what,
                          workspace, target.workspace_limit);
                    if (workspace > largest) largest = workspace;
                    int tc = dt_cudnn_conv_plan_tensor_cores(p);
                    tensor_core_plans += tc;
                    CHECK(!(precisions[pi] == DT_PRECISION_FP32 && tc),
                          "%s: an fp32 plan uses TF32 tensor cores: %s", what,
                          dt_cudnn_conv_plan_describe(p));
                    const char *description = dt_cudnn_conv_plan_describe(p);
                    CHECK(strncmp(description, "engine ", 7) == 0, "%s: description '%s'", what,
                          description);
                    check_tensors(p, d, precisions[pi], what);
                    memset(&err, 0, sizeof err);
                    CHECK(dt_cudnn_conv_plan_execute(NULL, p, NULL, NULL, NULL, NULL, 1.0f, 0.5f,
                                                     &err) != 0,
                          "%s: beta 0.5 was accepted", what);
                    printf("%-40s %s\n", what, description);
                    dt_cudnn_conv_plan_destroy(p);
                }
            }
        }
    }
    /* bf16 and tf32 without tensor cores on Hopper would be a wrong data type or layout */
    CHECK(tensor_core_plans > 0, "no plan uses tensor cores");
    cudnnBackendDestroyDescriptor(prop);
    clock_gettime(CLOCK_MONOTONIC, &end);
    double seconds = (double)(end.tv_sec - start.tv_sec) + 1e-9 * (end.tv_nsec - start.tv_nsec);
    printf("%d graphs, %d plans finalized (%d with tensor cores), largest workspace %zu B, "
           "%.1f s\n",
           graphs, plans, tensor_core_plans, largest, seconds);
    if (failures) fprintf(stderr, "%d failures\n", failures);
    return failures ? 1 : 0;
}
