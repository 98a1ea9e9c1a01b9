/* The backend op cases (tests/test_backend_ops.c holds their one table, in the shape of ggml's
 * tests/test-backend-ops.cpp): one row per op case (op family, shapes and parameters, precision),
 * with the family's two ways of checking it, defined in tests/backend_ops/<family>.c:
 *  - check: on one backend against a double-precision reference (or exact values), with the
 *    tolerance stated for the CPU backend at fp32 and widened per backend, precision and op
 *    (dt_test_tolerance);
 *  - compare: on another backend (CUDA) against the CPU backend at fp32 on the same inputs,
 *    error max |other - cpu| / max |cpu| within testlib's table (dt_test_tolerances_for). */
#ifndef DTRAIN_TEST_BACKEND_OPS_H
#define DTRAIN_TEST_BACKEND_OPS_H

#include <stddef.h>
#include <stdint.h>

#include "test_backend_common.h"

typedef struct backend_op_case backend_op_case;
typedef void (*backend_op_check_fn)(dt_backend *b, const backend_op_case *c);
typedef void (*backend_op_compare_fn)(dt_backend *cpu, dt_backend *other, const backend_op_case *c);

/* The parameters a family's rows carry (the row's params points at one of these). */
typedef struct op_shape {
    int n, c, h, w;
    int in_place; /* eltwise: dx = dy; batchnorm: y = x */
} op_shape;

/* Which convolution the CPU backend builds (others: conv_create's choice). */
typedef enum {
    CONV_CHOSEN,
    CONV_WINOGRAD,
    CONV_DIRECT_BF16_GRAD,
    CONV_DIRECT_FP32_GRAD,
    CONV_DIRECT,         /* oneDNN's direct convolution, also where the shape rule says GEMM */
    CONV_SMALL_MAP_GEMM, /* the per-tap matrix products, whatever the shape */
    CONV_WEIGHTS_GEMM,   /* backward-weights per-tap, the rest direct, whatever the shape */
} conv_kind;
typedef struct op_conv {
    dt_conv_desc d;
    conv_kind kind;
} op_conv;

typedef struct op_batchnorm {
    dt_batchnorm_desc d;
    int in_place;
} op_batchnorm;

typedef struct op_pool {
    dt_pool_desc d;
    int global_average;
    double lo, hi; /* the input range */
} op_pool;

typedef struct op_sgd {
    dt_sgd_params p;
} op_sgd;

struct backend_op_case {
    const char *op;   /* the family: --op OP, and the ctest names test_backend_OP[_cuda|_avx2] */
    int precision;    /* dt_precision_kind the backend is opened at */
    const char *what; /* the case in words */
    backend_op_check_fn check;
    backend_op_compare_fn compare;
    const void *params; /* op_shape, op_conv, a fixture case's name, ... as the family's functions
                         * expect; may be NULL */
};

/* ---- tests/backend_ops/compare.c: the compare mode's helpers ---------------------------- */

/* Prints "  PREC WHAT error E  tolerance T" and checks E = max |got - want| / max |want| <= T. */
void op_compare(int precision, const char *what, const float *got, const float *want, size_t n,
                double tolerance);
/* op_compare of "SUBJECT WHAT" (e.g. "conv 2x3x32x32->64 k7 s2" "forward"). */
void op_compare_of(int precision, const char *subject, const char *what, const float *got,
                   const float *want, size_t n, double tolerance);
float *op_random_floats(size_t n, double lo, double hi, uint64_t *state);
/* A tensor or flat buffer on b holding host values (NULL: zeros), and host copies back. */
dt_tensor *op_tensor_of(dt_backend *b, int n, int c, int h, int w, const float *host);
float *op_tensor_read(dt_backend *b, const dt_tensor *t, size_t n);
float *op_buffer_of(dt_backend *b, const float *host, size_t n);
float *op_buffer_read(dt_backend *b, const float *buf, size_t n);

/* ---- the families' functions ----------------------------------------------------------- */

void buffers_check_stream_entries(dt_backend *b, const backend_op_case *c);
void buffers_check_ops(dt_backend *b, const backend_op_case *c);
void buffers_check_sgd_by_hand(dt_backend *b, const backend_op_case *c);
void buffers_check_sgd_large(dt_backend *b, const backend_op_case *c);
void buffers_compare(dt_backend *cpu, dt_backend *other, const backend_op_case *c);

void tensor_check_round_trip(dt_backend *b, const backend_op_case *c);
void tensor_check_from_images(dt_backend *b, const backend_op_case *c);
void tensor_check_refusals(dt_backend *b, const backend_op_case *c);
void tensor_check_reorder_threads(dt_backend *b, const backend_op_case *c);
void tensor_compare_input(dt_backend *cpu, dt_backend *other, const backend_op_case *c);

void conv_check(dt_backend *b, const backend_op_case *c);
void conv_check_params_changed(dt_backend *b, const backend_op_case *c);
void conv_check_refusals(dt_backend *b, const backend_op_case *c);
void conv_check_small_map_rule(dt_backend *b, const backend_op_case *c);
void conv_compare(dt_backend *cpu, dt_backend *other, const backend_op_case *c);

void batchnorm_check(dt_backend *b, const backend_op_case *c);
void batchnorm_check_threaded(dt_backend *b, const backend_op_case *c);
void batchnorm_check_large_mean(dt_backend *b, const backend_op_case *c);
void batchnorm_check_refusals(dt_backend *b, const backend_op_case *c);
void batchnorm_compare(dt_backend *cpu, dt_backend *other, const backend_op_case *c);

void eltwise_check(dt_backend *b, const backend_op_case *c);
void eltwise_check_refusals(dt_backend *b, const backend_op_case *c);
void eltwise_compare(dt_backend *cpu, dt_backend *other, const backend_op_case *c);

void pool_check(dt_backend *b, const backend_op_case *c);
void pool_check_refusals(dt_backend *b, const backend_op_case *c);
void pool_compare(dt_backend *cpu, dt_backend *other, const backend_op_case *c);

void linear_check(dt_backend *b, const backend_op_case *c);
void linear_check_refusals(dt_backend *b, const backend_op_case *c);
void linear_compare_with_loss(dt_backend *cpu, dt_backend *other, const backend_op_case *c);

void loss_check(dt_backend *b, const backend_op_case *c);
void loss_check_targets(dt_backend *b, const backend_op_case *c);
void loss_check_torch(dt_backend *b, const backend_op_case *c);
void loss_check_torch_cases(dt_backend *b, const backend_op_case *c);

void adamw_check_first_step_by_hand(dt_backend *b, const backend_op_case *c);
void adamw_check_steps_large(dt_backend *b, const backend_op_case *c);
void adamw_check_guard(dt_backend *b, const backend_op_case *c);
void adamw_check_wrapper(dt_backend *b, const backend_op_case *c);
void adamw_compare(dt_backend *cpu, dt_backend *other, const backend_op_case *c);

void ema_check_by_hand(dt_backend *b, const backend_op_case *c);
void ema_check_large(dt_backend *b, const backend_op_case *c);
void ema_check_guarded(dt_backend *b, const backend_op_case *c);
void ema_compare(dt_backend *cpu, dt_backend *other, const backend_op_case *c);

void guard_check(dt_backend *b, const backend_op_case *c);

#endif
