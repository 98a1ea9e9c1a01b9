/* Private declarations shared by the files of the CPU backend (oneDNN 2.6, OpenMP): the
 * context, the activation tensor and its memory format, the layer base, and the helpers that
 * wrap oneDNN primitives (one shared user scratchpad, reorders, status messages). */
#ifndef DTRAIN_CPU_INTERNAL_H
#define DTRAIN_CPU_INTERNAL_H

#include <omp.h>
#include <stddef.h>
#include <stdint.h>

#include <oneapi/dnnl/dnnl.h>

#include "../backend_impl.h"

#include "cpu_normalize.h"

/* Channels per block of the blocked activation layout, chosen at start-up from the instruction
 * set oneDNN dispatches to (cpu_isa.c): 16 (nChw16c, one AVX-512 register) where oneDNN runs
 * AVX-512 kernels, 8 (nChw8c) otherwise: oneDNN's AVX2 kernels take 8-channel blocks and fall
 * back to reference code for 16-channel ones. CPU_BLOCK_MAX sizes stack arrays. */
enum { CPU_BLOCK_MAX = 16 };

/* One engine, one in-order stream; primitives run one after another, so they can all share
 * one scratchpad buffer (grown to the largest need when layers are created). */
typedef struct cpu_ctx {
    dnnl_engine_t engine;
    dnnl_stream_t stream;
    int precision;      /* dt_precision_kind */
    int block;          /* channels per block of blocked activations: 8 or 16 (cpu_isa.c) */
    int deterministic;  /* runtime.deterministic: no measured choices (cpu_conv_choice.c) */
    dnnl_cpu_isa_t isa; /* what oneDNN dispatches to (ONEDNN_MAX_CPU_ISA caps it) */
    void *scratchpad;
    size_t scratchpad_size;
    /* The image normaliser of tensor_from_images, kept for the mean and std it holds (built
     * again only when a call passes others); valid once have_normalizer is set. */
    cpu_normalizer normalizer;
    int have_normalizer;
    /* Advanced by every write of the flat buffers through the interface and by
     * params_changed: layers key their reordered weights on it. */
    uint64_t params_version;
    /* Parameter gradients of an accumulating backward land here first, then are added to the
     * caller's buffer (grown to the largest layer when layers are created). */
    float *grad_scratch;
    size_t grad_scratch_count;
    double loss_stats[DT_LOSS_STATS]; /* softmax_cross_entropy's sums, see DT_LOSS_* */
    double phase_seconds[DT_PHASE_COUNT];
    int phase;            /* dt_phase entered by the last phase_mark */
    double phase_since;   /* monotonic seconds of the last phase_mark */
    dt_guard_state guard; /* the non-finite guard (cpu_guard.c) */
    /* precision winograd and bf16: the variant measured faster per convolution shape
     * (cpu_conv_choice.c) */
    struct cpu_conv_choice *conv_choices;
    int conv_choice_count;
    int64_t guard_halt_after;
} cpu_ctx;

/* Physical layout of an activation. One rule for every tensor (cpu_layout_for_channels), so
 * that two tensors of the same shape always share a layout and every primitive of a layer is
 * created for the layouts its tensors will have: no activation reorder in the steady state.
 * Neither layout has padding, so a tensor holds exactly n*c*h*w floats, and element-wise ops
 * can run over the flat buffer. With h = w = 1 both layouts are the plain [n][c] matrix. */
typedef enum {
    CPU_LAYOUT_NCHW,    /* plain, used when channels % block != 0 (e.g. the RGB input) */
    CPU_LAYOUT_BLOCKED, /* oneDNN nChw8c or nChw16c: blocks of `block` channels innermost */
} cpu_layout;

struct dt_tensor {
    int n, c, h, w;
    cpu_layout layout;
    int block;    /* the context's block size: channels per block when layout is blocked */
    size_t count; /* n * c * h * w */
    float *data;  /* 64-byte aligned */
    dnnl_memory_desc_t md;
    dnnl_memory_t memory; /* wraps data; passed straight to primitives */
};

/* First member of every layer struct. */
struct dt_layer {
    void (*destroy)(dt_layer *layer);
};

/* A primitive plus the memory object through which it sees the shared scratchpad. */
typedef struct cpu_primitive {
    dnnl_primitive_t primitive;
    dnnl_memory_t scratchpad; /* NULL when the primitive needs none */
    int one_thread;           /* made and run on the calling thread alone (small data) */
} cpu_primitive;

/* An element-wise pass, batch-norm or reorder over tensors of at most this many bytes runs on
 * the calling thread alone: it takes a few tens of microseconds, no longer than waking the other
 * OpenMP threads and waiting for the last of them (bench/README.md). */
enum { CPU_ONE_THREAD_MAX_BYTES = 1 << 19 };
static inline int cpu_one_thread_suits(size_t bytes) {
    return bytes <= CPU_ONE_THREAD_MAX_BYTES;
}
/* oneDNN takes its thread count from omp_get_max_threads() when it makes a primitive (sizing
 * its scratchpad) and when it runs one: both happen between these two when one_thread is set.
 * cpu_threads_limit returns the count that cpu_threads_restore puts back. */
static inline int cpu_threads_limit(int one_thread) {
    const int threads = omp_get_max_threads();
    if (one_thread) omp_set_num_threads(1);
    return threads;
}
static inline void cpu_threads_restore(int one_thread, int threads) {
    if (one_thread) omp_set_num_threads(threads);
}

/* ---- oneDNN helpers (cpu_primitive.c) ---------------------------------------------------- */

/* 0 on dnnl_success, else -1 with "oneDNN <what>: <status>" in err. */
int cpu_check(dnnl_status_t status, dt_error *err, const char *what);

/* Primitive descriptor for op_desc with the backend's attributes (user scratchpad, fpmath). */
int cpu_primitive_desc_create(cpu_ctx *ctx, const_dnnl_op_desc_t op_desc,
                              const_dnnl_primitive_desc_t hint, dnnl_primitive_desc_t *pd,
                              dt_error *err, const char *what);
/* Creates the primitive of pd (pd stays owned by the caller) and grows the shared scratchpad. */
int cpu_primitive_create(cpu_ctx *ctx, const_dnnl_primitive_desc_t pd, cpu_primitive *out,
                         dt_error *err, const char *what);
/* Reorder primitive from one memory description to another (on one thread when small). */
int cpu_reorder_create(cpu_ctx *ctx, const dnnl_memory_desc_t *from, const dnnl_memory_desc_t *to,
                       cpu_primitive *out, dt_error *err, const char *what);
void cpu_primitive_destroy(cpu_primitive *p);
/* Runs the primitive on the stream (synchronous on the CPU engine); the scratchpad argument is
 * added here. At most 15 arguments. */
int cpu_primitive_execute(cpu_ctx *ctx, const cpu_primitive *p, int nargs,
                          const dnnl_exec_arg_t *args, dt_error *err, const char *what);

/* A memory object over handle (may be NULL and set later with cpu_memory_point). */
int cpu_memory_create(cpu_ctx *ctx, const dnnl_memory_desc_t *md, void *handle, dnnl_memory_t *out,
                      dt_error *err);
int cpu_memory_point(dnnl_memory_t memory, const void *handle, dt_error *err);
/* 64-byte aligned allocation of bytes (rounded up); zero-filled when zero is set. */
void *cpu_aligned_alloc(size_t bytes, int zero);
void cpu_aligned_free(void *p);
/* Grows ctx->grad_scratch to at least count floats (at layer creation, never in a step). */
int cpu_grad_scratch_reserve(cpu_ctx *ctx, size_t count, dt_error *err);
/* dst[i] += src[i]: the accumulating backward's addition (as axpy with alpha 1). */
void cpu_add_floats(float *dst, const float *src, size_t count);

/* ---- the instruction set and what follows from it (cpu_isa.c) ---------------------------- */

/* Reads the ISA oneDNN dispatches to and sets ctx->isa and ctx->block. */
void cpu_isa_choose(cpu_ctx *ctx);
/* Lower-case name of an ISA as ONEDNN_MAX_CPU_ISA spells it ("avx512_core_bf16"). */
const char *cpu_isa_name(dnnl_cpu_isa_t isa);
/* 1 when oneDNN has bf16 convolution kernels on this ISA (AVX512-BF16 or AMX). */
int cpu_isa_has_bf16(dnnl_cpu_isa_t isa);

/* ---- activations (cpu_tensor.c) ----------------------------------------------------------- */

cpu_layout cpu_layout_for_channels(const cpu_ctx *ctx, int channels);
/* The oneDNN description of an activation of this shape in its layout. */
int cpu_activation_md(const cpu_ctx *ctx, dnnl_memory_desc_t *md, int n, int c, int h, int w,
                      dt_error *err);
/* -1 with "<op>: <name> is ... but the layer expects ..." unless t has the shape n,c,h,w. */
static inline int cpu_tensor_expect(const dt_tensor *t, int n, int c, int h, int w, const char *op,
                                    const char *name, dt_error *err) {
    if (!t) return dt_fail(err, "%s: tensor %s is missing", op, name);
    return dt_shape_expect(t->n, t->c, t->h, t->w, n, c, h, w, op, name, err);
}
/* -1 unless a and b have the same shape. */
static inline int cpu_tensor_same_shape(const dt_tensor *a, const dt_tensor *b, const char *op,
                                        dt_error *err) {
    if (!a || !b) return dt_fail(err, "%s: a tensor is missing", op);
    return dt_shapes_same(a->n, a->c, a->h, a->w, b->n, b->c, b->h, b->w, op, err);
}

/* ---- the ops (one file each), in the order of dt_backend_ops -------------------------------- */

float *cpu_buffer_alloc(void *ctx, size_t count, dt_error *err);
void cpu_buffer_free(void *ctx, float *buffer);
int cpu_buffer_upload(void *ctx, float *dst, const float *host_src, size_t count, dt_error *err);
int cpu_buffer_download(void *ctx, float *host_dst, const float *src, size_t count, dt_error *err);
int cpu_buffer_fill(void *ctx, float *dst, float value, size_t count, dt_error *err);
int cpu_buffer_axpy(void *ctx, float *y, float alpha, const float *x, size_t count, dt_error *err);
int cpu_sgd_step(void *ctx, const dt_sgd_params *p, float *params, const float *grads,
                 float *momentum, size_t count, dt_error *err);
int cpu_adamw_step(void *ctx, const dt_adamw_params *p, float *params, const float *grads,
                   float *exp_avg, float *exp_avg_sq, size_t count, dt_error *err);
int cpu_buffer_sum_squares(void *ctx, const float *src, size_t count, double *out, dt_error *err);

/* the non-finite guard (cpu_guard.c); cpu_guard_init at creation: not halted, never halts */
void cpu_guard_init(cpu_ctx *ctx);
int cpu_guard_reset(void *ctx, const dt_guard_state *state, int64_t halt_after, dt_error *err);
int cpu_guard_check(void *ctx, const float *grads, size_t count, int64_t step, dt_error *err);
int cpu_guard_restore(void *ctx, float *dst, const float *backup, size_t count, dt_error *err);
int cpu_guard_read(void *ctx, dt_guard_state *out, dt_error *err);
/* the weights' moving average, guarded as the SGD step (cpu_guard.c) */
int cpu_ema_update(void *ctx, float *ema, const float *live, float decay, float one_minus_decay,
                   size_t count, int guarded, dt_error *err);

dt_tensor *cpu_tensor_create(void *ctx, int n, int c, int h, int w, dt_error *err);
void cpu_tensor_destroy(void *ctx, dt_tensor *t);
int cpu_tensor_upload(void *ctx, dt_tensor *dst, const float *host_nchw, dt_error *err);
int cpu_tensor_download(void *ctx, const dt_tensor *src, float *host_nchw, dt_error *err);
int cpu_tensor_from_images(void *ctx, dt_tensor *dst, const uint8_t *pixels_nhwc,
                           const float mean[3], const float std[3], dt_error *err);
int cpu_tensor_add(void *ctx, dt_tensor *dst, const dt_tensor *src, dt_error *err);

dt_layer *cpu_conv_create(void *ctx, const dt_conv_desc *d, dt_error *err);
/* Which passes of a convolution are per-tap matrix products (cpu_conv_gemm.c) instead of oneDNN
 * primitives. */
typedef enum cpu_per_tap {
    CPU_PER_TAP_NONE,
    CPU_PER_TAP_WEIGHTS, /* backward-weights only; forward and backward-data by oneDNN */
    CPU_PER_TAP_ALL,
} cpu_per_tap;
/* How a convolution layer is built: oneDNN's algorithm (direct or Winograd) for its passes,
 * with precision bf16 whether backward-weights reads the fp32 x and dy instead, and (fp32)
 * which passes are per-tap matrix products. */
typedef struct cpu_conv_variant {
    dnnl_alg_kind_t algorithm;
    int weights_grad_fp32;
    cpu_per_tap per_tap;
} cpu_conv_variant;
/* Scratch tensors and buffers for timing one layer shape, filled with small non-zero values
 * (cpu_conv_choice.c; also bench/bench_conv_layers.c). */
typedef struct cpu_conv_timing_inputs {
    dt_tensor *x, *y, *dy, *dx;
    float *weight, *grad;
} cpu_conv_timing_inputs;
int cpu_conv_timing_inputs_make(cpu_ctx *ctx, const dt_conv_desc *d, cpu_conv_timing_inputs *in,
                                dt_error *err);
void cpu_conv_timing_inputs_free(cpu_ctx *ctx, cpu_conv_timing_inputs *in);
dt_layer *cpu_conv_create_variant(cpu_ctx *ctx, const dt_conv_desc *d, cpu_conv_variant variant,
                                  dt_error *err);
int cpu_conv_forward(void *ctx, dt_layer *l, const float *weight, const dt_tensor *x, dt_tensor *y,
                     dt_error *err);
int cpu_conv_backward(void *ctx, dt_layer *l, const float *weight, const dt_tensor *x,
                      const dt_tensor *dy, dt_tensor *dx, float *weight_grad, int accumulate,
                      dt_error *err);
uint64_t cpu_conv_weight_layout(void *ctx, const dt_layer *l);
int cpu_conv_weights_convert(void *ctx, dt_layer *l, float *dst, const float *src, int to_layer,
                             dt_error *err);

/* Convolutions over small output maps as one matrix product per kernel tap (cpu_conv_gemm.c):
 * fp32 (and winograd) layers with a kernel wider than 1 and at most CPU_CONV_GEMM_MAX_POSITIONS
 * output positions (a 2x2 map: the last stage of ResNet at 64 px) in all three passes, and with
 * at most CPU_CONV_GEMM_WEIGHTS_MAX_POSITIONS (4x4: the stage before) in backward-weights with
 * 16-channel blocks, in all passes with 8 (cpu_conv_per_tap_rule). */
enum { CPU_CONV_GEMM_MAX_POSITIONS = 4, CPU_CONV_GEMM_WEIGHTS_MAX_POSITIONS = 16 };
typedef struct cpu_conv_gemm cpu_conv_gemm;
cpu_per_tap cpu_conv_per_tap_rule(const cpu_ctx *ctx, const dt_conv_desc *d);
/* passes: CPU_PER_TAP_ALL, or CPU_PER_TAP_WEIGHTS (then only backward without dx works);
 * weights_md: the layout of the weights and gradient the layer is handed (f32, OIHW's size) */
cpu_conv_gemm *cpu_conv_gemm_create(cpu_ctx *ctx, const dt_conv_desc *d, int out_height,
                                    int out_width, cpu_per_tap passes,
                                    const dnnl_memory_desc_t *weights_md, dt_error *err);
/* Weights or their gradient tap-major, [kh][kw][O][I], for OIHW dimensions: each tap's O x I
 * matrix dense, as sgemm reads and writes it. */
int cpu_conv_taps_md(dnnl_memory_desc_t *md, const dt_conv_desc *d, dt_error *err);
void cpu_conv_gemm_destroy(cpu_conv_gemm *g);
int cpu_conv_gemm_forward(cpu_conv_gemm *g, const float *weight, const dt_tensor *x, dt_tensor *y,
                          dt_error *err);
int cpu_conv_gemm_backward(cpu_conv_gemm *g, const float *weight, const dt_tensor *x,
                           const dt_tensor *dy, dt_tensor *dx, float *weight_grad, int accumulate,
                           dt_error *err);

dt_layer *cpu_batchnorm_create(void *ctx, const dt_batchnorm_desc *d, dt_error *err);
int cpu_batchnorm_forward(void *ctx, dt_layer *l, const float *gamma, const float *beta,
                          float *running_mean, float *running_var, int training, const dt_tensor *x,
                          dt_tensor *y, dt_error *err);
int cpu_batchnorm_backward(void *ctx, dt_layer *l, const float *gamma, const float *beta,
                           const dt_tensor *x, const dt_tensor *y, const dt_tensor *dy,
                           dt_tensor *dx, float *dgamma, float *dbeta, int accumulate,
                           dt_error *err);

/* The batch-norm backward (cpu_batchnorm_backward.c): dx, and dgamma/dbeta when not NULL
 * (overwritten, or added to with accumulate), from the forward's batch statistics. */
typedef struct cpu_batchnorm_grad {
    const dt_tensor *x, *y, *dy; /* y: the fused ReLU's output (its mask), read when relu */
    dt_tensor *dx;
    const float *gamma, *mean, *variance;
    float epsilon;
    int relu, accumulate;
    float *dgamma, *dbeta;
    double *partial;     /* n * c * 2 doubles of scratch */
    float *coefficients; /* 3 * c floats of scratch */
} cpu_batchnorm_grad;
int cpu_batchnorm_backward_compute(const cpu_batchnorm_grad *g);

int cpu_add_relu_forward(void *ctx, dt_tensor *y, const dt_tensor *x, dt_error *err);
int cpu_relu_backward(void *ctx, const dt_tensor *y, const dt_tensor *dy, dt_tensor *dx,
                      dt_error *err);

dt_layer *cpu_maxpool_create(void *ctx, const dt_pool_desc *d, dt_error *err);
int cpu_maxpool_forward(void *ctx, dt_layer *l, const dt_tensor *x, dt_tensor *y, dt_error *err);
int cpu_maxpool_backward(void *ctx, dt_layer *l, const dt_tensor *dy, dt_tensor *dx, dt_error *err);
int cpu_avgpool_forward(void *ctx, const dt_tensor *x, dt_tensor *y, dt_error *err);
int cpu_avgpool_backward(void *ctx, const dt_tensor *dy, dt_tensor *dx, dt_error *err);

dt_layer *cpu_linear_create(void *ctx, const dt_linear_desc *d, dt_error *err);
int cpu_linear_forward(void *ctx, dt_layer *l, const float *weight, const float *bias,
                       const dt_tensor *x, dt_tensor *y, dt_error *err);
int cpu_linear_backward(void *ctx, dt_layer *l, const float *weight, const dt_tensor *x,
                        const dt_tensor *dy, dt_tensor *dx, float *weight_grad, float *bias_grad,
                        int accumulate, dt_error *err);

int cpu_softmax_cross_entropy(void *ctx, const dt_tensor *logits, const dt_loss_targets *targets,
                              dt_tensor *dlogits, float grad_scale, int32_t *predictions,
                              dt_error *err);
int cpu_loss_stats_read(void *ctx, double out[DT_LOSS_STATS], int reset, dt_error *err);

#endif
