/* Builds, without a GPU, every cuDNN convolution plan a run builds (the model's convolutions,
 * dt_model_conv_descs, through the backend's plan list, conv_plan_list.h: one plan per distinct
 * shape and pass, no backward-data plan for the stem; ResNet-18 at the training and test sizes,
 * fp32, tf32, bf16, also deterministic-only; ResNet-34/50/101/152 at 224 px batch 64 and at
 * their reference fixture's size, the three precisions) for the device described by the JSON given
 * as argument, and checks what cuDNN was given (dims, channels-last strides, data type), that the
 * workspace fits the limit and that fp32 plans never use TF32 tensor cores. Prints the engine
 * chosen for each plan and the plan and distinct-shape counts. */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "backend/cuda/conv_plan_list.h"
#include "backend/cuda/cudnn_conv.h"
#include "dtrain/config.h"
#include "dtrain/model.h"

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
    dt_conv_desc d = {3, 8, 24, 20, 36, 3, 2, 1, 0, 0, 0};
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
    dt_conv_desc too_small = {4, 3, 8, 2, 2, 7, 1, 0, 0, 0, 0};
    dt_cudnn_conv_plan *p = NULL;
    dt_error err = {0};
    CHECK(dt_cudnn_conv_plan_build(t, &too_small, DT_PRECISION_FP32, DT_CONV_FORWARD, &p, &err) !=
                  0 &&
              !p,
          "a 7x7 kernel on a 2x2 input without padding was accepted");
    CHECK(strstr(err.message, "conv 4x3x2x2 -> 8 k7 s1 p0, forward, fp32") != NULL,
          "the error does not name the layer: %s", err.message);

    dt_conv_desc fine = {4, 16, 16, 8, 8, 3, 1, 1, 0, 0, 0};
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

    /* ResNet-18: 11 shapes (11 forward, 11 backward-filter, 10 backward-data, none for the stem);
     * ResNet-34 the same 11; Bottleneck models 23 */
    static const struct {
        const char *arch;
        int batch, size, convs, shapes;
    } sizes[] = {{"resnet18", 64, 224, 20, 11}, {"resnet18", 256, 224, 20, 11},
                 {"resnet18", 2, 32, 20, 11},   {"resnet18", 8, 32, 20, 11},
                 {"resnet18", 16, 32, 20, 11},  {"resnet18", 4, 64, 20, 11},
                 {"resnet18", 16, 64, 20, 11},  {"resnet34", 64, 224, 36, 11},
                 {"resnet34", 4, 64, 36, 11},   {"resnet50", 64, 224, 53, 23},
                 {"resnet50", 4, 64, 53, 23},   {"resnet101", 64, 224, 104, 23},
                 {"resnet101", 2, 64, 104, 23}, {"resnet152", 64, 224, 155, 23},
                 {"resnet152", 2, 64, 155, 23}};
    static const int precisions[] = {DT_PRECISION_FP32, DT_PRECISION_TF32, DT_PRECISION_BF16};
    static const char *pass_names[] = {"fwd", "bwd-data", "bwd-filter"};
    int plans = 0, tensor_core_plans = 0, runs = 0, nondeterministic_plans = 0;
    size_t largest = 0;
    for (size_t si = 0; si < sizeof sizes / sizeof *sizes; si++) {
        dt_model_options opt = {.arch = sizes[si].arch,
                                .batch = sizes[si].batch,
                                .image_size = sizes[si].size,
                                .n_classes = 10};
        dt_conv_desc layers[160];
        int n_layers = dt_model_conv_descs(&opt, layers, 160);
        dt_conv_plan_key keys[480];
        int n_keys = dt_conv_plan_list(layers, n_layers, keys, 480);
        int shapes = dt_conv_plan_list_shapes(keys, n_keys);
        int want_keys = 3 * sizes[si].shapes - 1;
        CHECK(n_layers == sizes[si].convs && n_keys == want_keys && shapes == sizes[si].shapes,
              "%s, batch %d at %d px: %d layers, %d plans for %d shapes (expected %d, %d, %d)",
              sizes[si].arch, sizes[si].batch, sizes[si].size, n_layers, n_keys, shapes,
              sizes[si].convs, want_keys, sizes[si].shapes);
        for (int k = 0; k < n_keys; k++)
            CHECK(!(keys[k].shape.in_channels == 3 && keys[k].pass == DT_CONV_BACKWARD_DATA),
                  "the stem's backward-data plan is listed");
        /* deterministic engines only: at one size, every precision */
        int modes = si == 0 ? 2 : 1;
        for (int pi = 0; pi < 3; pi++)
            for (int deterministic = 0; deterministic < modes; deterministic++) {
                dt_cudnn_target run_target = target;
                run_target.deterministic = deterministic;
                runs++;
                printf("run: %s, batch %d, %d px, %s%s: %d plans for %d distinct shapes\n",
                       sizes[si].arch, sizes[si].batch, sizes[si].size,
                       dt_precision_name(precisions[pi]), deterministic ? ", deterministic" : "",
                       n_keys, shapes);
                for (int k = 0; k < n_keys; k++) {
                    const dt_conv_desc *d = &keys[k].shape;
                    char what[160];
                    snprintf(what, sizeof what, "%dx%dx%dx%d->%d k%d s%d %s %s%s", d->batch,
                             d->in_channels, d->in_height, d->in_width, d->out_channels, d->kernel,
                             d->stride, dt_precision_name(precisions[pi]), pass_names[keys[k].pass],
                             deterministic ? " det" : "");
                    dt_cudnn_conv_plan *p = NULL;
                    memset(&err, 0, sizeof err);
                    if (dt_cudnn_conv_plan_build(&run_target, d, precisions[pi], keys[k].pass, &p,
                                                 &err)) {
                        CHECK(0, "%s: %s", what, err.message);
                        continue;
                    }
                    plans++;
                    size_t workspace = dt_cudnn_conv_plan_workspace(p);
                    CHECK(workspace <= target.workspace_limit, "%s: workspace %zu over %zu", what,
                          workspace, target.workspace_limit);
                    if (workspace > largest) largest = workspace;
                    int nd = dt_cudnn_conv_plan_nondeterministic(p);
                    nondeterministic_plans += nd;
                    CHECK(!(deterministic && nd), "%s: a non-deterministic engine: %s", what,
                          dt_cudnn_conv_plan_describe(p));
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
                    memset(&err, 0, sizeof err);
                    CHECK(dt_cudnn_conv_plan_execute(NULL, p, NULL, NULL, NULL, NULL, 1.0f, 1.0f,
                                                     &err) != 0,
                          "%s: a beta 1 plan exists (accumulation is the layout copy's)", what);
                    printf("%-48s %s\n", what, description);
                    dt_cudnn_conv_plan_destroy(p);
                }
            }
    }
    /* bf16 and tf32 without tensor cores on Hopper would be a wrong data type or layout */
    CHECK(tensor_core_plans > 0, "no plan uses tensor cores");
    cudnnBackendDestroyDescriptor(prop);
    clock_gettime(CLOCK_MONOTONIC, &end);
    double seconds = (double)(end.tv_sec - start.tv_sec) + 1e-9 * (end.tv_nsec - start.tv_nsec);
    printf("%d runs listed, %d plans finalized (%d with tensor cores, %d non-deterministic), "
           "largest workspace %zu B, %.1f s\n",
           runs, plans, tensor_core_plans, nondeterministic_plans, largest, seconds);
    /* the filter has something to do: without it, some engines are non-deterministic */
    CHECK(nondeterministic_plans > 0, "no non-deterministic engine chosen without the filter");
    if (failures) fprintf(stderr, "%d failures\n", failures);
    return failures ? 1 : 0;
}
