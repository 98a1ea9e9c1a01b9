/* The backend op tests, in the shape of ggml's tests/test-backend-ops.cpp: one table, one row per
 * op case (family, precision, shapes and parameters), each checked by its family's functions in
 * tests/backend_ops/<family>.c. Two modes:
 *
 *   test_backend_ops [BACKEND] [--op OP] [--precision P]
 *       every row with a check on BACKEND (cpu, or cuda in builds with it) against its
 *       reference; rows at bf16 only with --precision bf16 (the CPU's bf16 convolutions:
 *       SKIPPED where oneDNN has no bf16 kernels);
 *   test_backend_ops --compare cuda [--op OP] [--precision P]
 *       every row with a compare on the CUDA backend against the CPU backend at fp32, within
 *       testlib's tolerance table; `--compare cpu` runs the same rows with the CPU backend (at
 *       each precision it has here) in the CUDA backend's place, so that the comparison code
 *       itself runs in every CI run, without a GPU.
 *
 * A backend that cannot run here (no GPU, no CUDA backend in this build) makes the program print
 * SKIPPED with the reason and exit DT_TEST_SKIP (ctest's skip), never pass. ctest runs one
 * family per test: test_backend_OP (cpu), test_backend_OP_cuda, test_backend_OP_avx2,
 * test_backend_conv_bf16, test_backend_ops_compare_cuda and test_backend_ops_compare_cpu
 * (tests/CMakeLists.txt). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend_ops/backend_ops.h"
#include "dtrain/config.h"

enum { FP32 = DT_PRECISION_FP32, TF32 = DT_PRECISION_TF32, BF16 = DT_PRECISION_BF16 };

#define SHAPE(...) (&(const op_shape){__VA_ARGS__})
#define CONV(kind, ...) (&(const op_conv){{__VA_ARGS__, 0}, kind})
/* batch, channels, h, w, momentum, eps, fuse_relu; in place */
#define BN(in_place, ...) (&(const op_batchnorm){{__VA_ARGS__}, in_place})
/* batch, channels, h, w, kernel, stride, padding; global average; input range */
#define MAXPOOL(lo, hi, ...) (&(const op_pool){{__VA_ARGS__}, 0, lo, hi})
#define AVGPOOL(n, c, h, w)                                                                        \
    (&(const op_pool){{.batch = n, .channels = c, .in_height = h, .in_width = w}, 1, -1.0, 1.0})
#define LINEAR(...) (&(const dt_linear_desc){__VA_ARGS__})
#define SGD(...) (&(const op_sgd){{__VA_ARGS__}})

/* The compare rows of one precision: ResNet's shapes (the stem, a 3x3, a stage entry, a 1x1
 * downsample; batch, in, out, h, w, kernel, stride, padding) and its classifier. */
/* clang-format off */
#define COMPARE_ROWS(P)                                                                            \
    {"buffers", P, "upload/download, sgd_step, axpy, sum of squares, fill", NULL, buffers_compare, \
     NULL},                                                                                        \
    {"adamw", P, "adamw_step: 3 steps", NULL, adamw_compare, NULL},                                \
    {"ema", P, "ema_update: 4 updates, guarded skipped and applied", NULL, ema_compare, NULL},     \
    {"tensor", P, "images to NCHW, input_prefetch, upload/download 3x3x17x19", NULL,              \
     tensor_compare_input, NULL},                                                                  \
    {"conv", P, "stem", NULL, conv_compare, CONV(CONV_CHOSEN, 2, 3, 64, 32, 32, 7, 2, 3, 0, 0)},  \
    {"conv", P, "3x3", NULL, conv_compare, CONV(CONV_CHOSEN, 2, 64, 64, 8, 8, 3, 1, 1, 0, 0)},    \
    {"conv", P, "stage entry", NULL, conv_compare,                                                 \
     CONV(CONV_CHOSEN, 2, 64, 128, 8, 8, 3, 2, 1, 0, 0)},                                          \
    {"conv", P, "downsample", NULL, conv_compare,                                                  \
     CONV(CONV_CHOSEN, 2, 64, 128, 8, 8, 1, 2, 0, 0, 0)},                                          \
    {"conv", P, "last stage, 2x2", NULL, conv_compare,                                             \
     CONV(CONV_CHOSEN, 4, 64, 64, 2, 2, 3, 1, 1, 0, 0)},                                           \
    {"batchnorm", P, "+ relu", NULL, batchnorm_compare, BN(0, 4, 64, 6, 6, 0.1f, 1e-5f, 1)},      \
    {"batchnorm", P, "", NULL, batchnorm_compare, BN(0, 4, 64, 6, 6, 0.1f, 1e-5f, 0)},            \
    {"batchnorm", P, "+ relu, odd", NULL, batchnorm_compare, BN(0, 3, 40, 5, 3, 0.1f, 1e-5f, 1)}, \
    {"eltwise", P, "2x64x9x9", NULL, eltwise_compare, SHAPE(2, 64, 9, 9, 0)},                      \
    {"pool", P, "max 3x3 s2 p1, global average", NULL, pool_compare,                              \
     MAXPOOL(-1.0, 1.0, 2, 64, 9, 9, 3, 2, 1)},                                                    \
    {"linear", P, "512 -> 10 and softmax cross-entropy, batch 37", NULL,                          \
     linear_compare_with_loss, NULL}
/* clang-format on */

static const backend_op_case cases[] = {
    /* ---- buffers: flat buffers, SGD, host slots, phase timers ---- */
    {"buffers", FP32, "host slots, input_wait, phase timers", buffers_check_stream_entries, NULL,
     NULL},
    {"buffers", FP32, "fill, axpy, sum of squares", buffers_check_ops, NULL, NULL},
    {"buffers", FP32, "sgd_step by hand", buffers_check_sgd_by_hand, NULL, NULL},
    {"buffers", FP32, "sgd_step 100003, momentum", buffers_check_sgd_large, NULL,
     SGD(.grad_scale = 1.0f, .lr = 0.05f, .momentum = 0.9f, .weight_decay = 1e-4f)},
    {"buffers", FP32, "sgd_step 100003, nesterov", buffers_check_sgd_large, NULL,
     SGD(.grad_scale = 1.0f, .lr = 0.05f, .momentum = 0.9f, .weight_decay = 5e-4f, .nesterov = 1)},
    /* ---- tensor: layouts, round trips, the image conversion ---- */
    {"tensor", FP32, "round trip 2x3x5x7", tensor_check_round_trip, NULL, SHAPE(2, 3, 5, 7, 0)},
    {"tensor", FP32, "round trip 2x16x4x4", tensor_check_round_trip, NULL, SHAPE(2, 16, 4, 4, 0)},
    {"tensor", FP32, "round trip 3x64x3x5", tensor_check_round_trip, NULL, SHAPE(3, 64, 3, 5, 0)},
    {"tensor", FP32, "round trip 2x32x1x1", tensor_check_round_trip, NULL, SHAPE(2, 32, 1, 1, 0)},
    {"tensor", FP32, "round trip 1x24x2x3", tensor_check_round_trip, NULL, SHAPE(1, 24, 2, 3, 0)},
    {"tensor", FP32, "round trip 2x8x3x3 (8-channel blocks, plain with 16)",
     tensor_check_round_trip, NULL, SHAPE(2, 8, 3, 3, 0)},
    {"tensor", FP32, "round trip 4x64x28x28 (threaded)", tensor_check_round_trip, NULL,
     SHAPE(4, 64, 28, 28, 0)},
    {"tensor", FP32, "images to NCHW", tensor_check_from_images, NULL, NULL},
    {"tensor", FP32, "refusals, library version", tensor_check_refusals, NULL, NULL},
    {"tensor", FP32, "small reorders on one thread (CPU)", tensor_check_reorder_threads, NULL,
     NULL},
    /* ---- conv (batch, in, out, h, w, kernel, stride, padding) ---- */
    {"conv", FP32, "stem: RGB -> blocked", conv_check, NULL,
     CONV(CONV_CHOSEN, 2, 3, 16, 8, 8, 7, 2, 3, 0, 0)},
    {"conv", FP32, "blocked -> blocked", conv_check, NULL,
     CONV(CONV_CHOSEN, 2, 16, 16, 8, 8, 3, 1, 1, 0, 0)},
    {"conv", FP32, "stage entry, stride 2", conv_check, NULL,
     CONV(CONV_CHOSEN, 2, 16, 32, 8, 8, 3, 2, 1, 0, 0)},
    {"conv", FP32, "downsample 1x1 s2", conv_check, NULL,
     CONV(CONV_CHOSEN, 2, 16, 32, 8, 8, 1, 2, 0, 0, 0)},
    {"conv", FP32, "odd size, stride 2", conv_check, NULL,
     CONV(CONV_CHOSEN, 3, 32, 16, 7, 7, 3, 2, 1, 0, 0)},
    {"conv", FP32, "plain -> plain", conv_check, NULL,
     CONV(CONV_CHOSEN, 2, 6, 10, 6, 5, 3, 1, 1, 0, 0)},
    {"conv", FP32, "blocked -> plain, no pad", conv_check, NULL,
     CONV(CONV_CHOSEN, 2, 16, 8, 5, 5, 3, 1, 0, 0, 0)},
    {"conv", FP32, "batch 16", conv_check, NULL,
     CONV(CONV_CHOSEN, 16, 16, 16, 8, 8, 3, 1, 1, 0, 0)},
    /* the smallest maps: per-tap matrix products on the CPU (cpu_conv_gemm.c), by the shape
     * rule and forced onto other shapes (row runs, strides, plain layouts, no padding); the same
     * last-stage shape through oneDNN's direct convolution */
    {"conv", FP32, "last stage, 2x2 (per-tap GEMM by shape)", conv_check, NULL,
     CONV(CONV_CHOSEN, 4, 32, 32, 2, 2, 3, 1, 1, 0, 0)},
    {"conv", FP32, "last stage, 2x2, oneDNN direct (CPU)", conv_check, NULL,
     CONV(CONV_DIRECT, 4, 32, 32, 2, 2, 3, 1, 1, 0, 0)},
    {"conv", FP32, "stage entry 4x4 -> 2x2, stride 2 (per-tap GEMM by shape)", conv_check, NULL,
     CONV(CONV_CHOSEN, 3, 16, 32, 4, 4, 3, 2, 1, 0, 0)},
    {"conv", FP32, "1x1 map (per-tap GEMM by shape)", conv_check, NULL,
     CONV(CONV_CHOSEN, 2, 16, 16, 1, 1, 3, 1, 1, 0, 0)},
    {"conv", FP32, "per-tap GEMM: 1x1 kernel, stride 2 (CPU)", conv_check, NULL,
     CONV(CONV_SMALL_MAP_GEMM, 2, 16, 32, 4, 4, 1, 2, 0, 0, 0)},
    {"conv", FP32, "per-tap GEMM: plain layouts, 6x5 (CPU)", conv_check, NULL,
     CONV(CONV_SMALL_MAP_GEMM, 2, 6, 10, 6, 5, 3, 1, 1, 0, 0)},
    {"conv", FP32, "per-tap GEMM: no padding, odd size, stride 2 (CPU)", conv_check, NULL,
     CONV(CONV_SMALL_MAP_GEMM, 3, 16, 8, 7, 7, 3, 2, 0, 0, 0)},
    {"conv", FP32, "per-tap GEMM: 8x8, batch 16 (CPU)", conv_check, NULL,
     CONV(CONV_SMALL_MAP_GEMM, 16, 16, 16, 8, 8, 3, 1, 1, 0, 0)},
    /* the stage before: on the CPU backward-weights per-tap with 16-channel blocks, all passes
     * with 8 (by shape), and backward-weights alone forced onto other shapes */
    {"conv", FP32, "4x4 map (per-tap backward-weights or GEMM by shape)", conv_check, NULL,
     CONV(CONV_CHOSEN, 4, 32, 32, 4, 4, 3, 1, 1, 0, 0)},
    {"conv", FP32, "stage entry 8x8 -> 4x4, stride 2 (per-tap by shape)", conv_check, NULL,
     CONV(CONV_CHOSEN, 3, 16, 32, 8, 8, 3, 2, 1, 0, 0)},
    {"conv", FP32, "per-tap backward-weights: 4x4 map (CPU)", conv_check, NULL,
     CONV(CONV_WEIGHTS_GEMM, 4, 32, 32, 4, 4, 3, 1, 1, 0, 0)},
    {"conv", FP32, "per-tap backward-weights: plain layouts, 6x5 (CPU)", conv_check, NULL,
     CONV(CONV_WEIGHTS_GEMM, 2, 6, 10, 6, 5, 3, 1, 1, 0, 0)},
    {"conv", FP32, "per-tap backward-weights: no padding, odd size, stride 2 (CPU)", conv_check,
     NULL, CONV(CONV_WEIGHTS_GEMM, 3, 16, 8, 7, 7, 3, 2, 0, 0, 0)},
    {"conv", FP32, "which layers are per-tap GEMMs (CPU)", conv_check_small_map_rule, NULL, NULL},
    {"conv", FP32, "refusals", conv_check_refusals, NULL, NULL},
    {"conv", FP32, "new weights after params_changed (CPU)", conv_check_params_changed, NULL, NULL},
    /* tf32: GPUs' TF32; on the CPU the old name of winograd, which measures Winograd against
     * direct for the batch-16 3x3 stride-1 layer and keeps the faster */
    {"conv", TF32, "batch 16, measured choice", conv_check, NULL,
     CONV(CONV_CHOSEN, 16, 16, 16, 8, 8, 3, 1, 1, 0, 0)},
    {"conv", TF32, "stage entry, stride 2", conv_check, NULL,
     CONV(CONV_CHOSEN, 2, 16, 32, 8, 8, 3, 2, 1, 0, 0)},
    {"conv", TF32, "last stage, 2x2", conv_check, NULL,
     CONV(CONV_CHOSEN, 4, 32, 32, 2, 2, 3, 1, 1, 0, 0)},
    {"conv", TF32, "Winograd itself (CPU, where oneDNN has it)", conv_check, NULL,
     CONV(CONV_WINOGRAD, 16, 16, 16, 8, 8, 3, 1, 1, 0, 0)},
    /* bf16 (the CPU's, --precision bf16): the layout shapes, a last-stage shape, and both
     * backward-weights variants the measured choice picks from */
    {"conv", BF16, "stem: RGB -> blocked", conv_check, NULL,
     CONV(CONV_CHOSEN, 2, 3, 16, 8, 8, 7, 2, 3, 0, 0)},
    {"conv", BF16, "blocked -> blocked", conv_check, NULL,
     CONV(CONV_CHOSEN, 2, 16, 16, 8, 8, 3, 1, 1, 0, 0)},
    {"conv", BF16, "stage entry, stride 2", conv_check, NULL,
     CONV(CONV_CHOSEN, 2, 16, 32, 8, 8, 3, 2, 1, 0, 0)},
    {"conv", BF16, "downsample 1x1 s2", conv_check, NULL,
     CONV(CONV_CHOSEN, 2, 16, 32, 8, 8, 1, 2, 0, 0, 0)},
    {"conv", BF16, "odd size, stride 2", conv_check, NULL,
     CONV(CONV_CHOSEN, 3, 32, 16, 7, 7, 3, 2, 1, 0, 0)},
    {"conv", BF16, "plain -> plain", conv_check, NULL,
     CONV(CONV_CHOSEN, 2, 6, 10, 6, 5, 3, 1, 1, 0, 0)},
    {"conv", BF16, "blocked -> plain, no pad", conv_check, NULL,
     CONV(CONV_CHOSEN, 2, 16, 8, 5, 5, 3, 1, 0, 0, 0)},
    {"conv", BF16, "a last-stage shape", conv_check, NULL,
     CONV(CONV_CHOSEN, 4, 64, 64, 4, 4, 3, 1, 1, 0, 0)},
    {"conv", BF16, "stage entry, bf16 backward-weights", conv_check, NULL,
     CONV(CONV_DIRECT_BF16_GRAD, 2, 16, 32, 8, 8, 3, 2, 1, 0, 0)},
    {"conv", BF16, "last stage, bf16 backward-weights", conv_check, NULL,
     CONV(CONV_DIRECT_BF16_GRAD, 4, 64, 64, 4, 4, 3, 1, 1, 0, 0)},
    {"conv", BF16, "stem, bf16 backward-weights", conv_check, NULL,
     CONV(CONV_DIRECT_BF16_GRAD, 2, 3, 16, 8, 8, 7, 2, 3, 0, 0)},
    {"conv", BF16, "stage entry, fp32 backward-weights", conv_check, NULL,
     CONV(CONV_DIRECT_FP32_GRAD, 2, 16, 32, 8, 8, 3, 2, 1, 0, 0)},
    {"conv", BF16, "last stage, fp32 backward-weights", conv_check, NULL,
     CONV(CONV_DIRECT_FP32_GRAD, 4, 64, 64, 4, 4, 3, 1, 1, 0, 0)},
    {"conv", BF16, "stem, fp32 backward-weights", conv_check, NULL,
     CONV(CONV_DIRECT_FP32_GRAD, 2, 3, 16, 8, 8, 7, 2, 3, 0, 0)},
    /* ---- batchnorm (batch, channels, h, w, momentum, eps, fuse_relu) ---- */
    {"batchnorm", FP32, "4x16x5x5", batchnorm_check, NULL, BN(0, 4, 16, 5, 5, 0.1f, 1e-5f, 0)},
    {"batchnorm", FP32, "4x16x5x5 + relu", batchnorm_check, NULL,
     BN(0, 4, 16, 5, 5, 0.1f, 1e-5f, 1)},
    {"batchnorm", FP32, "2x32x3x4 + relu, in place", batchnorm_check, NULL,
     BN(1, 2, 32, 3, 4, 0.1f, 1e-5f, 1)},
    {"batchnorm", FP32, "3x6x4x4, in place", batchnorm_check, NULL,
     BN(1, 3, 6, 4, 4, 0.1f, 1e-5f, 0)},
    {"batchnorm", FP32, "3x6x4x4 + relu", batchnorm_check, NULL, BN(0, 3, 6, 4, 4, 0.1f, 1e-5f, 1)},
    {"batchnorm", FP32, "16x32x17x17 + relu (threaded: over the one-thread size)",
     batchnorm_check_threaded, NULL, NULL},
    {"batchnorm", FP32, "large mean", batchnorm_check_large_mean, NULL, NULL},
    {"batchnorm", FP32, "refusals", batchnorm_check_refusals, NULL, NULL},
    /* ---- eltwise: the residual join, ReLU backward, tensor_add ---- */
    {"eltwise", FP32, "2x16x5x5", eltwise_check, NULL, SHAPE(2, 16, 5, 5, 0)},
    {"eltwise", FP32, "2x16x5x5, in place", eltwise_check, NULL, SHAPE(2, 16, 5, 5, 1)},
    {"eltwise", FP32, "3x5x4x3", eltwise_check, NULL, SHAPE(3, 5, 4, 3, 0)},
    {"eltwise", FP32, "2x64x12x12, in place", eltwise_check, NULL, SHAPE(2, 64, 12, 12, 1)},
    {"eltwise", FP32, "4x64x24x24 (threaded: over the one-thread size)", eltwise_check, NULL,
     SHAPE(4, 64, 24, 24, 0)},
    {"eltwise", FP32, "refusals", eltwise_check_refusals, NULL, NULL},
    /* ---- pool: max 3x3 s2 p1 and global average ---- */
    {"pool", FP32, "max, blocked", pool_check, NULL, MAXPOOL(-1.0, 1.0, 2, 16, 9, 9, 3, 2, 1)},
    /* all negative: zero padding would win, -inf must not */
    {"pool", FP32, "max, blocked, all negative", pool_check, NULL,
     MAXPOOL(-3.0, -1.0, 2, 16, 9, 9, 3, 2, 1)},
    {"pool", FP32, "max, plain", pool_check, NULL, MAXPOOL(-1.0, 1.0, 2, 3, 8, 8, 3, 2, 1)},
    {"pool", FP32, "max, plain, all negative", pool_check, NULL,
     MAXPOOL(-3.0, -1.0, 2, 3, 8, 8, 3, 2, 1)},
    {"pool", FP32, "max, odd size", pool_check, NULL, MAXPOOL(-1.0, 1.0, 1, 32, 7, 6, 3, 2, 1)},
    {"pool", FP32, "average, blocked", pool_check, NULL, AVGPOOL(2, 32, 3, 3)},
    {"pool", FP32, "average, plain", pool_check, NULL, AVGPOOL(2, 5, 4, 4)},
    {"pool", FP32, "average, ResNet's 7x7", pool_check, NULL, AVGPOOL(1, 64, 7, 7)},
    {"pool", FP32, "refusals", pool_check_refusals, NULL, NULL},
    /* ---- linear (batch, in, out) ---- */
    {"linear", FP32, "3x20 -> 7", linear_check, NULL, LINEAR(3, 20, 7)},
    {"linear", FP32, "4x32 -> 10", linear_check, NULL, LINEAR(4, 32, 10)},
    {"linear", FP32, "2x64 -> 16", linear_check, NULL, LINEAR(2, 64, 16)},
    {"linear", FP32, "refusals", linear_check_refusals, NULL, NULL},
    /* ---- loss: softmax cross-entropy and its statistics ---- */
    {"loss", FP32, "softmax cross-entropy 5x4, padding, statistics, extremes", loss_check, NULL,
     NULL},
    {"loss", FP32, "label smoothing and two-label (mixup/cutmix) targets", loss_check_targets, NULL,
     NULL},
    /* against PyTorch (tests/reference/loss_targets.safetensors): one row per fixture case */
    {"loss", FP32, "vs PyTorch: the fixture's cases", loss_check_torch_cases, NULL,
     "smooth,smooth_pad,mixup,cutmix,half"},
    {"loss", FP32, "vs PyTorch: smooth (8x10, eps 0.1)", loss_check_torch, NULL, "smooth"},
    {"loss", FP32, "vs PyTorch: smooth_pad (7x5, eps 0.3, padding)", loss_check_torch, NULL,
     "smooth_pad"},
    {"loss", FP32, "vs PyTorch: mixup (8x10, eps 0.1, lambda 0.35)", loss_check_torch, NULL,
     "mixup"},
    {"loss", FP32, "vs PyTorch: cutmix (6x4, lambda 0.8125, padding)", loss_check_torch, NULL,
     "cutmix"},
    {"loss", FP32, "vs PyTorch: half (6x3, eps 0.2, lambda 0.5)", loss_check_torch, NULL, "half"},
    /* ---- adamw: torch.optim.AdamW's update over a flat buffer ---- */
    {"adamw", FP32, "first step by hand", adamw_check_first_step_by_hand, NULL, NULL},
    {"adamw", FP32, "100003, 4 steps vs float64, weight decay, grad scale", adamw_check_steps_large,
     NULL, NULL},
    {"adamw", FP32, "guard: skipped step unchanged, left out of the step count", adamw_check_guard,
     NULL, NULL},
    {"adamw", FP32, "wrapper checks", adamw_check_wrapper, NULL, NULL},
    /* ---- ema: the weights' moving average (timm's ModelEmaV2 update) ---- */
    {"ema", FP32, "by hand, factors refused, zero elements", ema_check_by_hand, NULL, NULL},
    {"ema", FP32, "100003, 3 steps vs torch's float32 (bitwise) and float64", ema_check_large, NULL,
     NULL},
    {"ema", FP32, "guarded: skipped step unchanged, unguarded and applied steps update",
     ema_check_guarded, NULL, NULL},
    /* ---- guard: the non-finite guard and the step-time counters ---- */
    {"guard", FP32, "skip, halt, counts, records", guard_check, NULL, NULL},
    /* ---- the compare mode: the CUDA backend against the CPU backend ---- */
    COMPARE_ROWS(FP32),
    COMPARE_ROWS(TF32),
    COMPARE_ROWS(BF16),
};
enum { N_CASES = sizeof cases / sizeof cases[0] };

typedef struct options {
    const char *backend; /* check mode: the backend; compare mode: the one compared with cpu */
    int compare;
    const char *op; /* NULL: every family */
    int precision;  /* -1: fp32 and tf32 (check mode), every precision (compare mode) */
} options;

static int usage(void) {
    fprintf(stderr, "usage: test_backend_ops [cpu|cuda] [--op OP] [--precision fp32|tf32|bf16]\n"
                    "       test_backend_ops --compare cuda|cpu [--op OP] [--precision P]\n");
    return 2;
}

static int parse_precision(const char *s) {
    return strcmp(s, "fp32") == 0   ? FP32
           : strcmp(s, "tf32") == 0 ? TF32
           : strcmp(s, "bf16") == 0 ? BF16
                                    : -1;
}

static int selected(const options *o, const backend_op_case *c) {
    if (o->compare ? !c->compare : !c->check) return 0;
    if (o->op && strcmp(o->op, c->op) != 0) return 0;
    if (o->precision >= 0) return c->precision == o->precision;
    return o->compare || c->precision != BF16;
}

/* The CPU backend at bf16, or SKIPPED with the reason where oneDNN has no bf16 kernels (no
 * AVX512-BF16 or AMX, or capped); any other failure is one. */
static int open_cpu_bf16(dt_backend *b) {
    dt_error err = {{0}, 0};
    dt_backend_options opt = {.threads = 2, .precision = BF16};
    dt_test_set_precision(BF16);
    if (dt_backend_cpu_create(&opt, b, &err) == 0) return 0;
    CHECK_MSG(err.exit_code == DT_EXIT_USAGE && strstr(err.message, "AVX512-BF16"), "%s",
              err.message);
    if (dt_test_failed) exit(dt_test_summary("backend_ops bf16"));
    printf("SKIPPED: %s\n", err.message);
    exit(DT_TEST_SKIP);
}

/* Rows [from, to) share a family and precision: one fresh backend for them, as each family's
 * checks expect (the guard's and the loss statistics' state). */
static void check_rows(const options *o, size_t from, size_t to) {
    dt_backend b = {0};
    int precision = cases[from].precision;
    char *argv[] = {"test_backend_ops", (char *)o->backend, NULL};
    if (precision == BF16 && strcmp(o->backend, "cpu") == 0)
        open_cpu_bf16(&b);
    else
        b = dt_test_backend_open(2, argv, precision);
    CHECK_STR_EQ(dt_backend_name(&b), o->backend);
    for (size_t i = from; i < to; i++) {
        printf("%-9s %-4s %s\n", cases[i].op, dt_precision_name(precision), cases[i].what);
        cases[i].check(&b, &cases[i]);
    }
    dt_error err = {0};
    CHECK(dt_backend_synchronize(&b, &err) == 0);
    dt_backend_free(&b);
}

/* Every selected compare row of one precision on one pair of backends (as training keeps them). */
static void compare_rows(const options *o, int precision) {
    dt_backend cpu = dt_test_backend_open(0, NULL, FP32); /* the reference */
    dt_backend other = {0};
    dt_error err = {0};
    dt_backend_options opt = {.threads = 2, .device = 0, .precision = precision};
    int on_cpu = strcmp(o->backend, "cpu") == 0;
    int rc = on_cpu ? dt_backend_cpu_create(&opt, &other, &err)
                    : dt_backend_cuda_create(&opt, &other, &err);
    if (rc != 0 && on_cpu && err.exit_code == DT_EXIT_USAGE && strstr(err.message, "AVX512-BF16")) {
        printf("%s: not on this CPU (%s)\n", dt_precision_name(precision), err.message);
        dt_backend_free(&cpu);
        return;
    }
    if (rc != 0) {
        CHECK_MSG(0, "creating the %s backend (%s): %s", o->backend, dt_precision_name(precision),
                  err.message);
        dt_backend_free(&cpu);
        return;
    }
    for (size_t i = 0; i < N_CASES; i++)
        if (cases[i].precision == precision && selected(o, &cases[i])) {
            printf("%-9s %-4s %s\n", cases[i].op, dt_precision_name(precision), cases[i].what);
            cases[i].compare(&cpu, &other, &cases[i]);
        }
    dt_backend_free(&other);
    dt_backend_free(&cpu);
}

int main(int argc, char **argv) {
    options o = {.backend = "cpu", .precision = -1};
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--compare") == 0 && i + 1 < argc) {
            o.compare = 1, o.backend = argv[++i];
        } else if (strcmp(argv[i], "--op") == 0 && i + 1 < argc) {
            o.op = argv[++i];
        } else if (strcmp(argv[i], "--precision") == 0 && i + 1 < argc) {
            if ((o.precision = parse_precision(argv[++i])) < 0) return usage();
        } else if (argv[i][0] != '-' && i == 1) {
            o.backend = argv[i];
        } else {
            return usage();
        }
    }
    size_t n_selected = 0;
    for (size_t i = 0; i < N_CASES; i++) n_selected += selected(&o, &cases[i]);
    if (n_selected == 0) {
        fprintf(stderr, "test_backend_ops: no %s rows for --op %s\n",
                o.compare ? "compare" : "check", o.op ? o.op : "(any)");
        return 2;
    }
    if (o.compare) {
        char reason[256];
        if (dt_test_backend_unusable(o.backend, reason, sizeof reason)) {
            printf("SKIPPED: backend %s: %s\n", o.backend, reason);
            return DT_TEST_SKIP;
        }
        const int precisions[] = {FP32, TF32, BF16};
        for (int p = 0; p < 3; p++) compare_rows(&o, precisions[p]);
        return dt_test_summary("backend_ops compare");
    }
    for (size_t i = 0; i < N_CASES;) {
        if (!selected(&o, &cases[i])) {
            i++;
            continue;
        }
        size_t end = i + 1;
        while (end < N_CASES && selected(&o, &cases[end]) &&
               strcmp(cases[end].op, cases[i].op) == 0 &&
               cases[end].precision == cases[i].precision)
            end++;
        check_rows(&o, i, end);
        i = end;
    }
    return dt_test_summary("backend_ops");
}
