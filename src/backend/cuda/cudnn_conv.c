/* Convolution plans with cuDNN 9's backend API: tensor, convolution, operation and graph
 * descriptors for one pass, engine heuristics against a device-property descriptor (from the
 * handle's GPU, or read from JSON ahead of time), the configurations that finalize within the
 * workspace limit (with a handle, a few of them executed and timed on tensors of the layer's
 * shape, the fastest kept; ahead of time, the first), and execution through a variant pack that
 * the caller may cache. */
#include "cudnn_conv.h"

#include <cuda_runtime_api.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { UID_X = 1, UID_W = 2, UID_Y = 3 }; /* x or dx; w or dw; y or dy */
enum { TENSOR_ALIGNMENT = 16 };

/* One finalized plan for one (alpha, beta) and the descriptors it was made from (kept alive
 * with it: the plan refers to the graph). */
typedef struct conv_variant {
    float beta;
    cudnnBackendDescriptor_t tensors[3], conv, op, graph, config, plan;
    size_t workspace;
    int tensor_cores;     /* the engine has tensor-core or input down-conversion numerics */
    int nondeterministic; /* the engine is noted non-deterministic */
} conv_variant;

struct dt_cudnn_conv_plan {
    dt_conv_pass pass;
    int nvariants;
    conv_variant variants[2];
    size_t workspace; /* largest over the variants */
    char description[640];
};

static const char *pass_name(dt_conv_pass pass) {
    switch (pass) {
    case DT_CONV_FORWARD:
        return "forward";
    case DT_CONV_BACKWARD_DATA:
        return "backward-data";
    case DT_CONV_BACKWARD_FILTER:
        return "backward-filter";
    }
    return "?";
}

static int conv_out_size(int in, int kernel, int stride, int padding) {
    return (in + 2 * padding - kernel) / stride + 1;
}

/* "conv 64x3x224x224 -> 64 k7 s2 p3, forward, fp32" */
static void layer_name(char *buf, size_t size, const dt_conv_desc *d, int precision,
                       dt_conv_pass pass) {
    snprintf(buf, size, "conv %dx%dx%dx%d -> %d k%d s%d p%d, %s, %s", d->batch, d->in_channels,
             d->in_height, d->in_width, d->out_channels, d->kernel, d->stride, d->padding,
             pass_name(pass), dt_precision_name(precision));
}

/* cuDNN's own message for the last failure, appended to ours. */
static int cudnn_fail(dt_error *err, cudnnStatus_t status, const char *what) {
    char detail[512] = "";
    cudnnGetLastErrorString(detail, sizeof detail);
    return dt_fail(err, "%s: %s%s%s", what, cudnnGetErrorString(status), detail[0] ? ": " : "",
                   detail);
}

#define CUDNN_TRY(call, what)                                                                      \
    do {                                                                                           \
        cudnnStatus_t status_ = (call);                                                            \
        if (status_ != CUDNN_STATUS_SUCCESS) return cudnn_fail(err, status_, what);                \
    } while (0)

static void destroy_descriptor(cudnnBackendDescriptor_t *desc) {
    if (*desc) cudnnBackendDestroyDescriptor(*desc);
    *desc = NULL;
}

static int make_tensor(cudnnBackendDescriptor_t *out, int64_t uid, cudnnDataType_t type,
                       const int64_t dims[4], const int64_t strides[4], dt_error *err) {
    int64_t alignment = TENSOR_ALIGNMENT;
    CUDNN_TRY(cudnnBackendCreateDescriptor(CUDNN_BACKEND_TENSOR_DESCRIPTOR, out), "tensor");
    CUDNN_TRY(
        cudnnBackendSetAttribute(*out, CUDNN_ATTR_TENSOR_DATA_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &type),
        "tensor data type");
    CUDNN_TRY(
        cudnnBackendSetAttribute(*out, CUDNN_ATTR_TENSOR_DIMENSIONS, CUDNN_TYPE_INT64, 4, dims),
        "tensor dimensions");
    CUDNN_TRY(
        cudnnBackendSetAttribute(*out, CUDNN_ATTR_TENSOR_STRIDES, CUDNN_TYPE_INT64, 4, strides),
        "tensor strides");
    CUDNN_TRY(
        cudnnBackendSetAttribute(*out, CUDNN_ATTR_TENSOR_UNIQUE_ID, CUDNN_TYPE_INT64, 1, &uid),
        "tensor id");
    CUDNN_TRY(cudnnBackendSetAttribute(*out, CUDNN_ATTR_TENSOR_BYTE_ALIGNMENT, CUDNN_TYPE_INT64, 1,
                                       &alignment),
              "tensor alignment");
    CUDNN_TRY(cudnnBackendFinalize(*out), "tensor finalize");
    return 0;
}

/* Logical dims N,C,H,W with channels-last strides. */
static void nhwc(int64_t dims[4], int64_t strides[4], int n, int c, int h, int w) {
    dims[0] = n, dims[1] = c, dims[2] = h, dims[3] = w;
    strides[0] = (int64_t)h * w * c, strides[1] = 1, strides[2] = (int64_t)w * c, strides[3] = c;
}

static int make_conv(cudnnBackendDescriptor_t *out, const dt_conv_desc *d, dt_error *err) {
    cudnnDataType_t compute = CUDNN_DATA_FLOAT;
    cudnnConvolutionMode_t mode = CUDNN_CROSS_CORRELATION;
    int64_t spatial = 2, dilation[2] = {1, 1}, stride[2] = {d->stride, d->stride};
    int64_t padding[2] = {d->padding, d->padding};
    CUDNN_TRY(cudnnBackendCreateDescriptor(CUDNN_BACKEND_CONVOLUTION_DESCRIPTOR, out),
              "convolution");
    CUDNN_TRY(cudnnBackendSetAttribute(*out, CUDNN_ATTR_CONVOLUTION_COMP_TYPE, CUDNN_TYPE_DATA_TYPE,
                                       1, &compute),
              "convolution compute type");
    CUDNN_TRY(cudnnBackendSetAttribute(*out, CUDNN_ATTR_CONVOLUTION_CONV_MODE,
                                       CUDNN_TYPE_CONVOLUTION_MODE, 1, &mode),
              "convolution mode");
    CUDNN_TRY(cudnnBackendSetAttribute(*out, CUDNN_ATTR_CONVOLUTION_SPATIAL_DIMS, CUDNN_TYPE_INT64,
                                       1, &spatial),
              "convolution spatial dims");
    CUDNN_TRY(cudnnBackendSetAttribute(*out, CUDNN_ATTR_CONVOLUTION_DILATIONS, CUDNN_TYPE_INT64, 2,
                                       dilation),
              "convolution dilations");
    CUDNN_TRY(cudnnBackendSetAttribute(*out, CUDNN_ATTR_CONVOLUTION_FILTER_STRIDES,
                                       CUDNN_TYPE_INT64, 2, stride),
              "convolution strides");
    CUDNN_TRY(cudnnBackendSetAttribute(*out, CUDNN_ATTR_CONVOLUTION_PRE_PADDINGS, CUDNN_TYPE_INT64,
                                       2, padding),
              "convolution pre-paddings");
    CUDNN_TRY(cudnnBackendSetAttribute(*out, CUDNN_ATTR_CONVOLUTION_POST_PADDINGS, CUDNN_TYPE_INT64,
                                       2, padding),
              "convolution post-paddings");
    CUDNN_TRY(cudnnBackendFinalize(*out), "convolution finalize");
    return 0;
}

/* The operation of one pass: which tensor plays which role, and alpha/beta. */
static int make_operation(conv_variant *v, dt_conv_pass pass, dt_error *err) {
    static const struct {
        cudnnBackendDescriptorType_t type;
        cudnnBackendAttributeName_t conv, x, w, y, alpha, beta;
    } roles[] = {
        [DT_CONV_FORWARD] = {CUDNN_BACKEND_OPERATION_CONVOLUTION_FORWARD_DESCRIPTOR,
                             CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_CONV_DESC,
                             CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_X,
                             CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_W,
                             CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_Y,
                             CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_ALPHA,
                             CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_BETA},
        [DT_CONV_BACKWARD_DATA] = {CUDNN_BACKEND_OPERATION_CONVOLUTION_BACKWARD_DATA_DESCRIPTOR,
                                   CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_DATA_CONV_DESC,
                                   CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_DATA_DX,
                                   CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_DATA_W,
                                   CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_DATA_DY,
                                   CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_DATA_ALPHA,
                                   CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_DATA_BETA},
        [DT_CONV_BACKWARD_FILTER] = {CUDNN_BACKEND_OPERATION_CONVOLUTION_BACKWARD_FILTER_DESCRIPTOR,
                                     CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_FILTER_CONV_DESC,
                                     CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_FILTER_X,
                                     CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_FILTER_DW,
                                     CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_FILTER_DY,
                                     CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_FILTER_ALPHA,
                                     CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_FILTER_BETA},
    };
    float alpha = 1.0f, beta = v->beta; /* float scalars: the compute type is fp32 */
    CUDNN_TRY(cudnnBackendCreateDescriptor(roles[pass].type, &v->op), "operation");
    CUDNN_TRY(cudnnBackendSetAttribute(v->op, roles[pass].conv, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1,
                                       &v->conv),
              "operation convolution");
    CUDNN_TRY(cudnnBackendSetAttribute(v->op, roles[pass].x, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1,
                                       &v->tensors[0]),
              "operation x");
    CUDNN_TRY(cudnnBackendSetAttribute(v->op, roles[pass].w, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1,
                                       &v->tensors[1]),
              "operation w");
    CUDNN_TRY(cudnnBackendSetAttribute(v->op, roles[pass].y, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1,
                                       &v->tensors[2]),
              "operation y");
    CUDNN_TRY(cudnnBackendSetAttribute(v->op, roles[pass].alpha, CUDNN_TYPE_FLOAT, 1, &alpha),
              "operation alpha");
    CUDNN_TRY(cudnnBackendSetAttribute(v->op, roles[pass].beta, CUDNN_TYPE_FLOAT, 1, &beta),
              "operation beta");
    CUDNN_TRY(cudnnBackendFinalize(v->op), "operation finalize");
    return 0;
}

static int make_graph(conv_variant *v, const dt_conv_desc *d, int precision, dt_conv_pass pass,
                      dt_error *err) {
    cudnnDataType_t type = precision == DT_PRECISION_BF16 ? CUDNN_DATA_BFLOAT16 : CUDNN_DATA_FLOAT;
    int oh = conv_out_size(d->in_height, d->kernel, d->stride, d->padding);
    int ow = conv_out_size(d->in_width, d->kernel, d->stride, d->padding);
    int64_t dims[4], strides[4];
    nhwc(dims, strides, d->batch, d->in_channels, d->in_height, d->in_width);
    if (make_tensor(&v->tensors[0], UID_X, type, dims, strides, err)) return -1;
    /* KRSC: the filter's channels-last layout, logical dims K,C,R,S */
    int64_t fdims[4] = {d->out_channels, d->in_channels, d->kernel, d->kernel};
    int64_t fstrides[4] = {(int64_t)d->kernel * d->kernel * d->in_channels, 1,
                           (int64_t)d->kernel * d->in_channels, d->in_channels};
    if (make_tensor(&v->tensors[1], UID_W, type, fdims, fstrides, err)) return -1;
    nhwc(dims, strides, d->batch, d->out_channels, oh, ow);
    if (make_tensor(&v->tensors[2], UID_Y, type, dims, strides, err)) return -1;
    if (make_conv(&v->conv, d, err) || make_operation(v, pass, err)) return -1;
    CUDNN_TRY(cudnnBackendCreateDescriptor(CUDNN_BACKEND_OPERATIONGRAPH_DESCRIPTOR, &v->graph),
              "operation graph");
    CUDNN_TRY(cudnnBackendSetAttribute(v->graph, CUDNN_ATTR_OPERATIONGRAPH_OPS,
                                       CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &v->op),
              "operation graph ops");
    CUDNN_TRY(cudnnBackendFinalize(v->graph), "operation graph finalize");
    return 0;
}

/* fp32 means no TF32: engines whose numerics round the inputs or use tensor cores are out;
 * deterministic: engines cuDNN notes as non-deterministic (atomics, split reductions) are out. */
static int engine_allowed(cudnnBackendDescriptor_t engine, int precision, int deterministic) {
    if (precision != DT_PRECISION_FP32 && !deterministic) return 1;
    cudnnBackendNumericalNote_t notes[CUDNN_NUMERICAL_NOTE_TYPE_COUNT];
    int64_t count = 0;
    if (cudnnBackendGetAttribute(engine, CUDNN_ATTR_ENGINE_NUMERICAL_NOTE,
                                 CUDNN_TYPE_NUMERICAL_NOTE, CUDNN_NUMERICAL_NOTE_TYPE_COUNT, &count,
                                 notes) != CUDNN_STATUS_SUCCESS)
        return 0;
    for (int64_t i = 0; i < count; i++) {
        if (deterministic && notes[i] == CUDNN_NUMERICAL_NOTE_NONDETERMINISTIC) return 0;
        if (precision == DT_PRECISION_FP32 &&
            (notes[i] == CUDNN_NUMERICAL_NOTE_TENSOR_CORE ||
             notes[i] == CUDNN_NUMERICAL_NOTE_DOWN_CONVERT_INPUTS ||
             notes[i] == CUDNN_NUMERICAL_NOTE_REDUCED_PRECISION_REDUCTION))
            return 0;
    }
    return 1;
}

/* "engine 34 knobs 2=1,3=0" */
static void describe_config(cudnnBackendDescriptor_t config, cudnnBackendDescriptor_t engine,
                            char *buf, size_t size) {
    int64_t index = -1, count = 0;
    cudnnBackendGetAttribute(engine, CUDNN_ATTR_ENGINE_GLOBAL_INDEX, CUDNN_TYPE_INT64, 1, &count,
                             &index);
    size_t used = (size_t)snprintf(buf, size, "engine %lld", (long long)index);
    cudnnBackendDescriptor_t knobs[CUDNN_KNOB_TYPE_COUNTS] = {0};
    int created = 0;
    for (; created < CUDNN_KNOB_TYPE_COUNTS; created++)
        if (cudnnBackendCreateDescriptor(CUDNN_BACKEND_KNOB_CHOICE_DESCRIPTOR, &knobs[created]) !=
            CUDNN_STATUS_SUCCESS)
            break;
    count = 0;
    if (cudnnBackendGetAttribute(config, CUDNN_ATTR_ENGINECFG_KNOB_CHOICES,
                                 CUDNN_TYPE_BACKEND_DESCRIPTOR, created, &count,
                                 knobs) == CUDNN_STATUS_SUCCESS) {
        for (int64_t i = 0; i < count && i < created && used < size; i++) {
            cudnnBackendKnobType_t type = CUDNN_KNOB_TYPE_COUNTS;
            int64_t value = 0, n = 0;
            cudnnBackendGetAttribute(knobs[i], CUDNN_ATTR_KNOB_CHOICE_KNOB_TYPE,
                                     CUDNN_TYPE_KNOB_TYPE, 1, &n, &type);
            cudnnBackendGetAttribute(knobs[i], CUDNN_ATTR_KNOB_CHOICE_KNOB_VALUE, CUDNN_TYPE_INT64,
                                     1, &n, &value);
            used += (size_t)snprintf(buf + used, size - used, "%s%d=%lld", i == 0 ? " knobs " : ",",
                                     (int)type, (long long)value);
        }
    }
    for (int i = 0; i < created; i++) cudnnBackendDestroyDescriptor(knobs[i]);
}

/* A configuration whose plan finalized: what the benchmark executes. */
typedef struct conv_candidate {
    cudnnBackendDescriptor_t config, plan;
    size_t workspace;
    int tensor_cores, nondeterministic;
    char description[200];
} conv_candidate;

static void candidate_destroy(conv_candidate *c) {
    destroy_descriptor(&c->plan);
    destroy_descriptor(&c->config);
}

/* Adds the configurations of one heuristics mode whose plans finalize within the limit to
 * list (up to max, in the heuristics' order); returns how many it added, -1 on an API error. */
static int try_heuristics(conv_variant *v, cudnnBackendDescriptor_t deviceprop, int precision,
                          int deterministic, size_t limit, cudnnBackendHeurMode_t mode,
                          conv_candidate *list, int *n_list, int max, int *tried, dt_error *err) {
    cudnnBackendDescriptor_t heur = NULL, *configs = NULL;
    int64_t count = 0, created = 0;
    int found = -1;
    cudnnStatus_t s = cudnnBackendCreateDescriptor(CUDNN_BACKEND_ENGINEHEUR_DESCRIPTOR, &heur);
    if (s == CUDNN_STATUS_SUCCESS)
        s = cudnnBackendSetAttribute(heur, CUDNN_ATTR_ENGINEHEUR_OPERATION_GRAPH,
                                     CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &v->graph);
    if (s == CUDNN_STATUS_SUCCESS)
        s = cudnnBackendSetAttribute(heur, CUDNN_ATTR_ENGINEHEUR_MODE, CUDNN_TYPE_HEUR_MODE, 1,
                                     &mode);
    if (s == CUDNN_STATUS_SUCCESS)
        s = cudnnBackendSetAttribute(heur, CUDNN_ATTR_ENGINEHEUR_DEVICEPROP,
                                     CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &deviceprop);
    if (s == CUDNN_STATUS_SUCCESS) s = cudnnBackendFinalize(heur);
    if (s == CUDNN_STATUS_SUCCESS)
        s = cudnnBackendGetAttribute(heur, CUDNN_ATTR_ENGINEHEUR_RESULTS,
                                     CUDNN_TYPE_BACKEND_DESCRIPTOR, 0, &count, NULL);
    if (s != CUDNN_STATUS_SUCCESS) {
        cudnn_fail(err, s, "engine heuristics");
        goto done;
    }
    configs = calloc((size_t)count + 1, sizeof *configs);
    if (!configs) {
        dt_fail(err, "out of memory");
        goto done;
    }
    for (; created < count; created++)
        if ((s = cudnnBackendCreateDescriptor(CUDNN_BACKEND_ENGINECFG_DESCRIPTOR,
                                              &configs[created])) != CUDNN_STATUS_SUCCESS)
            break;
    if (s == CUDNN_STATUS_SUCCESS && count > 0)
        s = cudnnBackendGetAttribute(heur, CUDNN_ATTR_ENGINEHEUR_RESULTS,
                                     CUDNN_TYPE_BACKEND_DESCRIPTOR, created, &count, configs);
    if (s != CUDNN_STATUS_SUCCESS) {
        cudnn_fail(err, s, "engine heuristics results");
        goto free_configs;
    }
    found = 0;
    for (int64_t i = 0; i < count && *n_list < max; i++) {
        cudnnBackendDescriptor_t engine = NULL, plan = NULL;
        int64_t workspace = 0, n = 0;
        if (cudnnBackendCreateDescriptor(CUDNN_BACKEND_ENGINE_DESCRIPTOR, &engine) !=
                CUDNN_STATUS_SUCCESS ||
            cudnnBackendGetAttribute(configs[i], CUDNN_ATTR_ENGINECFG_ENGINE,
                                     CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &n,
                                     &engine) != CUDNN_STATUS_SUCCESS ||
            !engine_allowed(engine, precision, deterministic) ||
            cudnnBackendGetAttribute(configs[i], CUDNN_ATTR_ENGINECFG_WORKSPACE_SIZE,
                                     CUDNN_TYPE_INT64, 1, &n, &workspace) != CUDNN_STATUS_SUCCESS ||
            workspace < 0 || (uint64_t)workspace > limit) {
            destroy_descriptor(&engine);
            continue;
        }
        (*tried)++;
        if (cudnnBackendCreateDescriptor(CUDNN_BACKEND_EXECUTION_PLAN_DESCRIPTOR, &plan) ==
                CUDNN_STATUS_SUCCESS &&
            cudnnBackendSetAttribute(plan, CUDNN_ATTR_EXECUTION_PLAN_ENGINE_CONFIG,
                                     CUDNN_TYPE_BACKEND_DESCRIPTOR, 1,
                                     &configs[i]) == CUDNN_STATUS_SUCCESS &&
            cudnnBackendSetAttribute(plan, CUDNN_ATTR_EXECUTION_PLAN_DEVICEPROP,
                                     CUDNN_TYPE_BACKEND_DESCRIPTOR, 1,
                                     &deviceprop) == CUDNN_STATUS_SUCCESS &&
            cudnnBackendFinalize(plan) == CUDNN_STATUS_SUCCESS &&
            cudnnBackendGetAttribute(plan, CUDNN_ATTR_EXECUTION_PLAN_WORKSPACE_SIZE,
                                     CUDNN_TYPE_INT64, 1, &n, &workspace) == CUDNN_STATUS_SUCCESS &&
            workspace >= 0 && (uint64_t)workspace <= limit) {
            conv_candidate *c = &list[(*n_list)++];
            found++;
            c->plan = plan;
            c->config = configs[i];
            configs[i] = NULL;
            c->workspace = (size_t)workspace;
            c->tensor_cores = !engine_allowed(engine, DT_PRECISION_FP32, 0);
            c->nondeterministic = !engine_allowed(engine, DT_PRECISION_TF32, 1);
            describe_config(c->config, engine, c->description, sizeof c->description);
        } else {
            destroy_descriptor(&plan);
        }
        destroy_descriptor(&engine);
    }
free_configs:
    /* the results can be fewer than first announced: destroy every descriptor created */
    for (int64_t i = 0; i < created; i++) destroy_descriptor(&configs[i]);
    free(configs);
done:
    destroy_descriptor(&heur);
    return found;
}

static void destroy_variant(conv_variant *v) {
    destroy_descriptor(&v->plan);
    destroy_descriptor(&v->config);
    destroy_descriptor(&v->graph);
    destroy_descriptor(&v->op);
    destroy_descriptor(&v->conv);
    for (int i = 0; i < 3; i++) destroy_descriptor(&v->tensors[i]);
}

/* The variant pack of one execution: x (or dx), w (or dw), y (or dy) and the workspace. */
static cudnnStatus_t make_pack(cudnnBackendDescriptor_t *pack, void *const pointers[3],
                               void *workspace) {
    int64_t uids[3] = {UID_X, UID_W, UID_Y};
    cudnnStatus_t s = cudnnBackendCreateDescriptor(CUDNN_BACKEND_VARIANT_PACK_DESCRIPTOR, pack);
    if (s == CUDNN_STATUS_SUCCESS)
        s = cudnnBackendSetAttribute(*pack, CUDNN_ATTR_VARIANT_PACK_UNIQUE_IDS, CUDNN_TYPE_INT64, 3,
                                     uids);
    if (s == CUDNN_STATUS_SUCCESS)
        s = cudnnBackendSetAttribute(*pack, CUDNN_ATTR_VARIANT_PACK_DATA_POINTERS,
                                     CUDNN_TYPE_VOID_PTR, 3, pointers);
    if (s == CUDNN_STATUS_SUCCESS)
        s = cudnnBackendSetAttribute(*pack, CUDNN_ATTR_VARIANT_PACK_WORKSPACE, CUDNN_TYPE_VOID_PTR,
                                     1, &workspace);
    if (s == CUDNN_STATUS_SUCCESS) s = cudnnBackendFinalize(*pack);
    return s;
}

/* Device tensors of the layer's shape for the benchmark (zeros: no NaN or denormal skews the
 * timing); freed by bench_free. */
typedef struct conv_bench {
    void *pointers[3], *workspace;
    cudaEvent_t start, stop;
} conv_bench;

static void bench_free(conv_bench *b) {
    for (int i = 0; i < 3; i++)
        if (b->pointers[i]) cudaFree(b->pointers[i]);
    if (b->workspace) cudaFree(b->workspace);
    if (b->start) cudaEventDestroy(b->start);
    if (b->stop) cudaEventDestroy(b->stop);
    memset(b, 0, sizeof *b);
}

/* The zeroing is queued on the handle's stream, ahead of the executions it is for. */
static int bench_alloc(conv_bench *b, cudnnHandle_t h, const dt_conv_desc *d, int precision,
                       size_t workspace) {
    size_t element = precision == DT_PRECISION_BF16 ? 2 : 4;
    int oh = conv_out_size(d->in_height, d->kernel, d->stride, d->padding);
    int ow = conv_out_size(d->in_width, d->kernel, d->stride, d->padding);
    size_t bytes[3] = {(size_t)d->batch * d->in_channels * d->in_height * d->in_width * element,
                       (size_t)d->out_channels * d->in_channels * d->kernel * d->kernel * element,
                       (size_t)d->batch * d->out_channels * oh * ow * element};
    memset(b, 0, sizeof *b);
    cudaStream_t stream = NULL;
    if (cudnnGetStream(h, &stream) != CUDNN_STATUS_SUCCESS) return -1;
    for (int i = 0; i < 3; i++)
        if (cudaMalloc(&b->pointers[i], bytes[i]) != cudaSuccess ||
            cudaMemsetAsync(b->pointers[i], 0, bytes[i], stream) != cudaSuccess)
            goto fail;
    if ((workspace && cudaMalloc(&b->workspace, workspace) != cudaSuccess) ||
        cudaEventCreate(&b->start) != cudaSuccess || cudaEventCreate(&b->stop) != cudaSuccess)
        goto fail;
    return 0;
fail:
    (void)cudaGetLastError();
    bench_free(b);
    return -1;
}

/* Milliseconds of one execution of the candidate (the mean of a few after a warm-up), or a
 * negative value when it fails to execute. */
static double bench_time(cudnnHandle_t h, const conv_candidate *c, conv_bench *b) {
    enum { RUNS = 3 };
    cudaStream_t stream = NULL;
    cudnnBackendDescriptor_t pack = NULL;
    if (cudnnGetStream(h, &stream) != CUDNN_STATUS_SUCCESS ||
        make_pack(&pack, b->pointers, b->workspace) != CUDNN_STATUS_SUCCESS) {
        destroy_descriptor(&pack);
        return -1.0;
    }
    cudnnStatus_t s = cudnnBackendExecute(h, c->plan, pack);
    if (s == CUDNN_STATUS_SUCCESS && cudaEventRecord(b->start, stream) != cudaSuccess)
        s = CUDNN_STATUS_EXECUTION_FAILED;
    for (int i = 0; i < RUNS && s == CUDNN_STATUS_SUCCESS; i++)
        s = cudnnBackendExecute(h, c->plan, pack);
    float ms = 0.0f;
    if (s == CUDNN_STATUS_SUCCESS && (cudaEventRecord(b->stop, stream) != cudaSuccess ||
                                      cudaEventSynchronize(b->stop) != cudaSuccess ||
                                      cudaEventElapsedTime(&ms, b->start, b->stop) != cudaSuccess))
        s = CUDNN_STATUS_EXECUTION_FAILED;
    destroy_descriptor(&pack);
    if (s != CUDNN_STATUS_SUCCESS) {
        (void)cudaGetLastError();
        return -1.0;
    }
    return ms / RUNS;
}

/* Keeps list[best] in v (the others destroyed): with a handle, the fastest candidate that
 * executes on tensors of the layer's shape (as torch.backends.cudnn.benchmark); without one
 * (planning ahead), the heuristics' first. */
static int choose_candidate(conv_variant *v, const dt_cudnn_target *t, const dt_conv_desc *d,
                            int precision, conv_candidate *list, int n, char *chosen, size_t size,
                            dt_error *err) {
    int best = t->handle ? -1 : 0;
    double best_ms = 0.0;
    char timings[240] = "";
    size_t used = 0;
    if (t->handle) {
        size_t workspace = 0;
        for (int i = 0; i < n; i++)
            if (list[i].workspace > workspace) workspace = list[i].workspace;
        conv_bench b;
        if (bench_alloc(&b, t->handle, d, precision, workspace)) {
            best = 0; /* no memory to spare for the benchmark: the heuristics' first */
            snprintf(timings, sizeof timings, " (not timed: no memory for the benchmark)");
        } else {
            for (int i = 0; i < n; i++) {
                double ms = bench_time(t->handle, &list[i], &b);
                if (used < sizeof timings)
                    used += (size_t)snprintf(timings + used, sizeof timings - used, "%s%s",
                                             i ? ", " : " (candidates ms: ", "");
                if (used < sizeof timings)
                    used +=
                        (size_t)(ms < 0
                                     ? snprintf(timings + used, sizeof timings - used, "failed")
                                     : snprintf(timings + used, sizeof timings - used, "%.3f", ms));
                if (ms >= 0 && (best < 0 || ms < best_ms)) best = i, best_ms = ms;
            }
            if (used < sizeof timings) snprintf(timings + used, sizeof timings - used, ")");
            bench_free(&b);
        }
    }
    if (best < 0) {
        for (int i = 0; i < n; i++) candidate_destroy(&list[i]);
        return dt_fail(err, "none of the %d cuDNN configurations that finalized executed", n);
    }
    v->plan = list[best].plan;
    v->config = list[best].config;
    v->workspace = list[best].workspace;
    v->tensor_cores = list[best].tensor_cores;
    v->nondeterministic = list[best].nondeterministic;
    snprintf(chosen, size, "%s%s", list[best].description, t->verbose ? timings : "");
    list[best].plan = list[best].config = NULL;
    for (int i = 0; i < n; i++) candidate_destroy(&list[i]);
    return 0;
}

static int build_variant(conv_variant *v, const dt_cudnn_target *t, cudnnBackendDescriptor_t prop,
                         const dt_conv_desc *d, int precision, dt_conv_pass pass, char *chosen,
                         size_t size, dt_error *err) {
    if (make_graph(v, d, precision, pass, err)) return -1;
    enum { MAX_CANDIDATES = 8 };
    conv_candidate list[MAX_CANDIDATES];
    memset(list, 0, sizeof list);
    int max = !t->handle ? 1 : t->candidates > 0 ? t->candidates : DT_CUDNN_CANDIDATES_DEFAULT;
    if (max > MAX_CANDIDATES) max = MAX_CANDIDATES;
    int tried = 0, n = 0;
    int found = try_heuristics(v, prop, precision, t->deterministic, t->workspace_limit,
                               CUDNN_HEUR_MODE_A, list, &n, max, &tried, err);
    if (found == 0)
        found = try_heuristics(v, prop, precision, t->deterministic, t->workspace_limit,
                               CUDNN_HEUR_MODE_FALLBACK, list, &n, max, &tried, err);
    if (found < 0) {
        for (int i = 0; i < n; i++) candidate_destroy(&list[i]);
        return -1;
    }
    if (n == 0)
        return dt_fail(err,
                       "no cuDNN engine for this convolution (%d configurations finalized none "
                       "within the %zu-byte workspace limit%s%s)",
                       tried, t->workspace_limit,
                       precision == DT_PRECISION_FP32 ? ", without TF32 tensor cores" : "",
                       t->deterministic ? ", deterministic only (runtime.deterministic)" : "");
    return choose_candidate(v, t, d, precision, list, n, chosen, size, err);
}

static int check_desc(const dt_conv_desc *d, int precision, dt_conv_pass pass, dt_error *err) {
    if (d->batch < 1 || d->in_channels < 1 || d->out_channels < 1 || d->kernel < 1 ||
        d->stride < 1 || d->padding < 0 || d->in_height + 2 * d->padding < d->kernel ||
        d->in_width + 2 * d->padding < d->kernel)
        return dt_fail(err, "invalid convolution shape");
    if (precision != DT_PRECISION_FP32 && precision != DT_PRECISION_TF32 &&
        precision != DT_PRECISION_BF16)
        return dt_fail(err, "unknown precision %d", precision);
    if (pass != DT_CONV_FORWARD && pass != DT_CONV_BACKWARD_DATA && pass != DT_CONV_BACKWARD_FILTER)
        return dt_fail(err, "unknown convolution pass %d", (int)pass);
    return 0;
}

static int device_properties_from_handle(cudnnHandle_t h, cudnnBackendDescriptor_t *out,
                                         dt_error *err) {
    CUDNN_TRY(cudnnBackendCreateDescriptor(CUDNN_BACKEND_DEVICEPROP_DESCRIPTOR, out),
              "device properties");
    CUDNN_TRY(
        cudnnBackendSetAttribute(*out, CUDNN_ATTR_DEVICEPROP_HANDLE, CUDNN_TYPE_HANDLE, 1, &h),
        "device properties handle");
    CUDNN_TRY(cudnnBackendFinalize(*out), "device properties finalize");
    return 0;
}

int dt_cudnn_conv_plan_build(const dt_cudnn_target *t, const dt_conv_desc *d, int precision,
                             dt_conv_pass pass, dt_cudnn_conv_plan **out, dt_error *err) {
    char layer[160];
    layer_name(layer, sizeof layer, d, precision, pass);
    *out = NULL;
    if (check_desc(d, precision, pass, err)) return dt_error_prefix(err, "%s", layer);
    if (!t->handle && !t->deviceprop)
        return dt_fail(err, "%s: neither a cuDNN handle nor device properties given", layer);
    cudnnBackendDescriptor_t prop = t->deviceprop, own_prop = NULL;
    if (t->handle) {
        if (device_properties_from_handle(t->handle, &own_prop, err)) {
            destroy_descriptor(&own_prop);
            return dt_error_prefix(err, "%s", layer);
        }
        prop = own_prop;
    }
    dt_cudnn_conv_plan *p = calloc(1, sizeof *p);
    if (!p) {
        destroy_descriptor(&own_prop);
        return dt_fail(err, "%s: out of memory", layer);
    }
    p->pass = pass;
    /* beta 0 only: accumulation into the gradient happens in the layout copy (KRSC -> OIHW) */
    int nvariants = 1;
    size_t used = 0;
    for (int i = 0; i < nvariants; i++) {
        conv_variant *v = &p->variants[i];
        char chosen[480] = "";
        v->beta = (float)i;
        p->nvariants = i + 1;
        if (build_variant(v, t, prop, d, precision, pass, chosen, sizeof chosen, err)) {
            destroy_descriptor(&own_prop);
            dt_cudnn_conv_plan_destroy(p);
            return dt_error_prefix(err, "%s%s", layer, i ? " (beta 1)" : "");
        }
        if (v->workspace > p->workspace) p->workspace = v->workspace;
        if (used < sizeof p->description)
            used += (size_t)snprintf(
                p->description + used, sizeof p->description - used, "%s%s%s%s, workspace %zu B",
                i ? "; accumulate: " : "", chosen, v->tensor_cores ? ", tensor cores" : "",
                v->nondeterministic ? ", non-deterministic" : "", v->workspace);
    }
    destroy_descriptor(&own_prop);
    if (t->verbose) fprintf(stderr, "dtrain: cuDNN plan: %s: %s\n", layer, p->description);
    *out = p;
    return 0;
}

size_t dt_cudnn_conv_plan_workspace(const dt_cudnn_conv_plan *p) {
    return p->workspace;
}

const char *dt_cudnn_conv_plan_describe(const dt_cudnn_conv_plan *p) {
    return p->description;
}

int dt_cudnn_conv_plan_tensor_cores(const dt_cudnn_conv_plan *p) {
    int any = 0;
    for (int i = 0; i < p->nvariants; i++) any |= p->variants[i].tensor_cores;
    return any;
}

int dt_cudnn_conv_plan_nondeterministic(const dt_cudnn_conv_plan *p) {
    int any = 0;
    for (int i = 0; i < p->nvariants; i++) any |= p->variants[i].nondeterministic;
    return any;
}

int dt_cudnn_conv_plan_tensor(const dt_cudnn_conv_plan *p, int role, int64_t dims[4],
                              int64_t strides[4], cudnnDataType_t *type, dt_error *err) {
    if (role < 0 || role > 2)
        return dt_fail(err, "tensor role %d: not 0 (x), 1 (w) or 2 (y)", role);
    cudnnBackendDescriptor_t t = p->variants[0].tensors[role];
    int64_t n = 0;
    CUDNN_TRY(
        cudnnBackendGetAttribute(t, CUDNN_ATTR_TENSOR_DIMENSIONS, CUDNN_TYPE_INT64, 4, &n, dims),
        "reading tensor dimensions");
    if (n != 4) return dt_fail(err, "tensor has %lld dimensions, not 4", (long long)n);
    CUDNN_TRY(
        cudnnBackendGetAttribute(t, CUDNN_ATTR_TENSOR_STRIDES, CUDNN_TYPE_INT64, 4, &n, strides),
        "reading tensor strides");
    CUDNN_TRY(
        cudnnBackendGetAttribute(t, CUDNN_ATTR_TENSOR_DATA_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &n, type),
        "reading tensor data type");
    return 0;
}

int dt_cudnn_conv_plan_execute(cudnnHandle_t h, const dt_cudnn_conv_plan *p, const void *in,
                               const void *filter_or_dy, void *out, void *workspace, float alpha,
                               float beta, dt_error *err) {
    return dt_cudnn_conv_plan_execute_cached(h, p, NULL, in, filter_or_dy, out, workspace, alpha,
                                             beta, err);
}

void dt_cudnn_conv_pack_destroy(dt_cudnn_conv_pack *cache) {
    if (cache && cache->pack) cudnnBackendDestroyDescriptor(cache->pack);
    if (cache) memset(cache, 0, sizeof *cache);
}

int dt_cudnn_conv_plan_execute_cached(cudnnHandle_t h, const dt_cudnn_conv_plan *p,
                                      dt_cudnn_conv_pack *cache, const void *in,
                                      const void *filter_or_dy, void *out, void *workspace,
                                      float alpha, float beta, dt_error *err) {
    const conv_variant *v = NULL;
    for (int i = 0; i < p->nvariants; i++)
        if (alpha == 1.0f && p->variants[i].beta == beta) v = &p->variants[i];
    if (!v)
        return dt_fail(err, "cuDNN %s plan: no plan for alpha %g, beta %g", pass_name(p->pass),
                       (double)alpha, (double)beta);
    if (v->workspace > 0 && !workspace)
        return dt_fail(err, "cuDNN %s plan: needs a %zu-byte workspace", pass_name(p->pass),
                       v->workspace);
    void *pointers[3];
    switch (p->pass) {
    case DT_CONV_FORWARD:
        pointers[0] = (void *)in, pointers[1] = (void *)filter_or_dy, pointers[2] = out;
        break;
    case DT_CONV_BACKWARD_DATA:
        pointers[0] = out, pointers[1] = (void *)filter_or_dy, pointers[2] = (void *)in;
        break;
    default:
        pointers[0] = (void *)in, pointers[1] = out, pointers[2] = (void *)filter_or_dy;
        break;
    }
    /* a cached pack is reused while the layer passes the same pointers (every step) */
    cudnnBackendDescriptor_t pack = NULL;
    cudnnStatus_t s = CUDNN_STATUS_SUCCESS;
    if (cache && cache->pack && memcmp(cache->pointers, pointers, sizeof pointers) == 0 &&
        cache->workspace == workspace) {
        pack = cache->pack;
    } else {
        if (cache) dt_cudnn_conv_pack_destroy(cache);
        s = make_pack(&pack, pointers, workspace);
        if (s == CUDNN_STATUS_SUCCESS && cache) {
            cache->pack = pack;
            memcpy(cache->pointers, pointers, sizeof pointers);
            cache->workspace = workspace;
        }
    }
    if (s == CUDNN_STATUS_SUCCESS) s = cudnnBackendExecute(h, v->plan, pack);
    if (!cache || cache->pack != pack) destroy_descriptor(&pack);
    if (s != CUDNN_STATUS_SUCCESS) {
        cudnn_fail(err, s, "executing");
        return dt_error_prefix(err, "cuDNN %s plan (%s)", pass_name(p->pass), p->description);
    }
    return 0;
}

void dt_cudnn_conv_plan_destroy(dt_cudnn_conv_plan *p) {
    if (!p) return;
    for (int i = 0; i < p->nvariants; i++) destroy_variant(&p->variants[i]);
    free(p);
}

int dt_cudnn_deviceprop_from_json(const char *path, cudnnBackendDescriptor_t *out, dt_error *err) {
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) return dt_fail(err, "%s: %s", path, strerror(errno));
    char *text = NULL;
    size_t size = 0, cap = 0, n;
    char chunk[4096];
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) {
        if (size + n + 1 > cap) {
            cap = (size + n + 1) * 2;
            char *grown = realloc(text, cap);
            if (!grown) {
                free(text);
                fclose(f);
                return dt_fail(err, "%s: out of memory", path);
            }
            text = grown;
        }
        memcpy(text + size, chunk, n);
        size += n;
    }
    int read_error = ferror(f);
    fclose(f);
    if (read_error || size == 0) {
        free(text);
        return dt_fail(err, "%s: %s", path, read_error ? "read error" : "empty file");
    }
    text[size] = '\0';
    cudnnStatus_t s = cudnnBackendCreateDescriptor(CUDNN_BACKEND_DEVICEPROP_DESCRIPTOR, out);
    if (s == CUDNN_STATUS_SUCCESS)
        s = cudnnBackendSetAttribute(*out, CUDNN_ATTR_DEVICEPROP_JSON_REPRESENTATION,
                                     CUDNN_TYPE_CHAR, (int64_t)size, text);
    if (s == CUDNN_STATUS_SUCCESS) s = cudnnBackendFinalize(*out);
    free(text);
    if (s != CUDNN_STATUS_SUCCESS) {
        destroy_descriptor(out);
        cudnn_fail(err, s, "cuDNN device properties (needs cuDNN 9.8 or newer)");
        return dt_error_prefix(err, "%s", path);
    }
    return 0;
}

int dt_cudnn_deviceprop_to_json(cudnnHandle_t h, const char *path, dt_error *err) {
    cudnnBackendDescriptor_t prop = NULL;
    char *text = NULL;
    int64_t size = 0;
    int rc = device_properties_from_handle(h, &prop, err);
    if (rc == 0) {
        cudnnStatus_t s = cudnnBackendGetAttribute(prop, CUDNN_ATTR_DEVICEPROP_JSON_REPRESENTATION,
                                                   CUDNN_TYPE_CHAR, 0, &size, NULL);
        if (s == CUDNN_STATUS_SUCCESS && size > 0 && (text = malloc((size_t)size)) == NULL)
            rc = dt_fail(err, "out of memory");
        else if (s == CUDNN_STATUS_SUCCESS && size > 0)
            s = cudnnBackendGetAttribute(prop, CUDNN_ATTR_DEVICEPROP_JSON_REPRESENTATION,
                                         CUDNN_TYPE_CHAR, size, &size, text);
        if (rc == 0 && (s != CUDNN_STATUS_SUCCESS || size <= 0))
            rc = s != CUDNN_STATUS_SUCCESS ? cudnn_fail(err, s, "device properties as JSON")
                                           : dt_fail(err, "device properties as JSON: empty");
    }
    destroy_descriptor(&prop);
    if (rc == 0) {
        size_t length = strnlen(text, (size_t)size); /* without a trailing NUL, if any */
        FILE *f = fopen(path, "wb");
        if (!f)
            rc = dt_fail(err, "%s: %s", path, strerror(errno));
        else if (fwrite(text, 1, length, f) != length || fputc('\n', f) == EOF)
            rc = dt_fail(err, "%s: write error", path), fclose(f);
        else if (fclose(f) != 0)
            rc = dt_fail(err, "%s: %s", path, strerror(errno));
    }
    free(text);
    return rc;
}
