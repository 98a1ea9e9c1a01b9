/* Convolution execution plans through cuDNN 9's backend (graph) API: one plan per layer shape,
 * pass and precision, chosen once (the heuristics' candidates timed on the device) and executed
 * every step. Plans can be
 * built without a GPU from a device-property description (cuDNN 9.8+), so every graph the CUDA
 * backend uses is checked on machines without one. */
#ifndef DTRAIN_CUDNN_CONV_H
#define DTRAIN_CUDNN_CONV_H

/* cuDNN's own headers declare legacy functions with deprecated types; only their use in our code
 * must warn (CUDNN_WARN_DEPRECATED), which the attribute still does at each call site. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
#include <cudnn.h>
#pragma GCC diagnostic pop
#include <stddef.h>
#include <stdint.h>

#include "dtrain/backend.h"
#include "dtrain/error.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum { DT_CONV_FORWARD, DT_CONV_BACKWARD_DATA, DT_CONV_BACKWARD_FILTER } dt_conv_pass;

typedef struct dt_cudnn_target {
    cudnnHandle_t handle;                /* NULL: plan ahead of time from deviceprop */
    cudnnBackendDescriptor_t deviceprop; /* used when handle is NULL (finalized) */
    size_t workspace_limit;              /* bytes */
    int verbose;                         /* log the chosen engine per plan on stderr */
    int deterministic;                   /* only engines without the non-deterministic note */
    int candidates; /* with a handle: configurations executed and timed (0: the default) */
} dt_cudnn_target;

/* Configurations a plan build with a handle executes on the layer's shape to keep the fastest. */
#define DT_CUDNN_CANDIDATES_DEFAULT 4

/* A variant pack kept by a layer for one plan: rebuilt only when the pointers change. */
typedef struct dt_cudnn_conv_pack {
    cudnnBackendDescriptor_t pack;
    void *pointers[3];
    void *workspace;
} dt_cudnn_conv_pack;

typedef struct dt_cudnn_conv_plan dt_cudnn_conv_plan;

/* A workspace limit that every ResNet-18 plan fits (checked ahead of time for an H200). */
#define DT_CUDNN_WORKSPACE_LIMIT_DEFAULT ((size_t)256 << 20)

/* Builds the plan of one convolution pass. precision is a dt_precision_kind: fp32 keeps only
 * engines without tensor-core / down-converting numerical notes (true fp32, no TF32); tf32 allows
 * them; bf16 has x, w and y (and dx, dw) in bf16 with fp32 accumulation. t->deterministic drops
 * engines noted non-deterministic.
 * Layouts: activations NHWC (channels-last strides over logical dims N,C,H,W); filters KRSC
 * (logical dims K,C,R,S with strides R*S*C, 1, S*C, C).
 * Takes the heuristics' configurations (mode A, then the fallback list) in order whose plans
 * finalize with a workspace within t->workspace_limit: with a handle, up to t->candidates of
 * them are executed on zero tensors of the layer's shape (temporary device memory) and the
 * fastest that executes is kept, one that fails falls to the next; without a handle, the first.
 * Errors name the layer shape, pass and precision. */
int dt_cudnn_conv_plan_build(const dt_cudnn_target *t, const dt_conv_desc *d, int precision,
                             dt_conv_pass pass, dt_cudnn_conv_plan **out, dt_error *err);

size_t dt_cudnn_conv_plan_workspace(const dt_cudnn_conv_plan *p);

/* Engine id, knobs and workspace of the chosen configuration, for logs. */
const char *dt_cudnn_conv_plan_describe(const dt_cudnn_conv_plan *p);

/* 1 when a chosen engine uses tensor cores or rounds its inputs (never at fp32). */
int dt_cudnn_conv_plan_tensor_cores(const dt_cudnn_conv_plan *p);
/* 1 when the chosen engine is noted non-deterministic (never with t->deterministic). */
int dt_cudnn_conv_plan_nondeterministic(const dt_cudnn_conv_plan *p);

/* Reads back from cuDNN's finalized descriptor what it was given for tensor role 0 (x or dx),
 * 1 (w or dw) or 2 (y or dy): logical dims N,C,H,W (K,C,R,S), strides, data type. */
int dt_cudnn_conv_plan_tensor(const dt_cudnn_conv_plan *p, int role, int64_t dims[4],
                              int64_t strides[4], cudnnDataType_t *type, dt_error *err);

/* Enqueues the pass on the handle's stream. Device pointers, 16-byte aligned, by pass:
 *   DT_CONV_FORWARD:         in = x,  filter_or_dy = w,  out = y:  y  = conv(x, w)
 *   DT_CONV_BACKWARD_DATA:   in = dy, filter_or_dy = w,  out = dx: dx = convT(dy, w)
 *   DT_CONV_BACKWARD_FILTER: in = x,  filter_or_dy = dy, out = dw: dw = dconv
 * alpha and beta are part of a cuDNN graph and plans exist for alpha 1, beta 0 only (the
 * backend accumulates gradients in its layout copy); other values are an error. workspace holds
 * at least dt_cudnn_conv_plan_workspace(p) bytes (may be NULL when that is 0). The _cached form
 * keeps the variant pack in cache (per layer and pass) and reuses it while the pointers stay. */
int dt_cudnn_conv_plan_execute(cudnnHandle_t h, const dt_cudnn_conv_plan *p, const void *in,
                               const void *filter_or_dy, void *out, void *workspace, float alpha,
                               float beta, dt_error *err);
int dt_cudnn_conv_plan_execute_cached(cudnnHandle_t h, const dt_cudnn_conv_plan *p,
                                      dt_cudnn_conv_pack *cache, const void *in,
                                      const void *filter_or_dy, void *out, void *workspace,
                                      float alpha, float beta, dt_error *err);
void dt_cudnn_conv_pack_destroy(dt_cudnn_conv_pack *cache);

void dt_cudnn_conv_plan_destroy(dt_cudnn_conv_plan *p);

/* Reads a device-property description (JSON) into a finalized descriptor (cuDNN 9.8+; no GPU
 * needed). The caller destroys it with cudnnBackendDestroyDescriptor. */
int dt_cudnn_deviceprop_from_json(const char *path, cudnnBackendDescriptor_t *out, dt_error *err);

/* Writes the JSON description of the handle's device (needs the GPU). */
int dt_cudnn_deviceprop_to_json(cudnnHandle_t h, const char *path, dt_error *err);

#ifdef __cplusplus
}
#endif

#endif
