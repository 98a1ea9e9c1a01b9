/* Helpers shared by the backend op tests (tests/test_backend_ops.c and tests/backend_ops/), which
 * run on every backend compiled in (testlib/backends.h; the backend's name is the program's
 * argument): backend setup, seeded random data rounded to float, tensor and flat-buffer transfer
 * through double arrays, array comparison with one check per array (widened per op for the
 * backend and precision), and central finite differences of a scalar loss. */
#ifndef DTRAIN_TEST_BACKEND_COMMON_H
#define DTRAIN_TEST_BACKEND_COMMON_H

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "backends.h"
#include "check.h"
#include "dtrain/backend.h"

/* The backend named on the command line (cpu by default) at a precision (dt_precision_kind);
 * exits with DT_TEST_SKIP when it cannot run here. */
static inline dt_backend test_backend_open_precision(int argc, char **argv, int precision) {
    return dt_test_backend_open(argc, argv, precision);
}

/* The same at the default precision, fp32. */
static inline dt_backend test_backend_open(int argc, char **argv) {
    return test_backend_open_precision(argc, argv, 0);
}

/* A flat buffer in backend memory holding values (rounded to float); NULL values: zeros. */
static inline float *test_buffer(dt_backend *b, const double *values, size_t n) {
    dt_error err = {{0}, 0};
    float *buffer = dt_backend_buffer_alloc(b, n ? n : 1, &err);
    if (!buffer) {
        fprintf(stderr, "buffer_alloc %zu: %s\n", n, err.message);
        exit(1);
    }
    if (values) {
        float *host = calloc(n ? n : 1, sizeof *host);
        if (!host) exit(1);
        for (size_t i = 0; i < n; i++) host[i] = (float)values[i];
        CHECK(dt_backend_buffer_upload(b, buffer, host, n, &err) == 0);
        free(host);
    }
    return buffer;
}

/* Overwrites a flat buffer with values (rounded to float). */
static inline void test_buffer_write(dt_backend *b, float *buffer, const double *values, size_t n) {
    dt_error err = {{0}, 0};
    float *host = calloc(n ? n : 1, sizeof *host);
    if (!host) exit(1);
    for (size_t i = 0; i < n; i++) host[i] = (float)values[i];
    CHECK(dt_backend_buffer_upload(b, buffer, host, n, &err) == 0);
    free(host);
}

/* Fills a flat buffer with one value (NaN: a call that writes nothing shows). */
static inline void test_buffer_fill(dt_backend *b, float *buffer, float value, size_t n) {
    dt_error err = {{0}, 0};
    CHECK(dt_backend_buffer_fill(b, buffer, value, n, &err) == 0);
}

static inline void test_buffer_read(dt_backend *b, const float *buffer, double *out, size_t n) {
    dt_error err = {{0}, 0};
    float *host = calloc(n ? n : 1, sizeof *host);
    if (!host) exit(1);
    CHECK(dt_backend_buffer_download(b, host, buffer, n, &err) == 0);
    for (size_t i = 0; i < n; i++) out[i] = host[i];
    free(host);
}

static inline void test_buffer_free(dt_backend *b, float *buffer) {
    dt_backend_buffer_free(b, buffer);
}

/* xorshift64*: a deterministic stream of doubles in [lo, hi), rounded to float precision so
 * that the backend (float) and the references (double) see the same values. */
static inline double test_random(uint64_t *state, double lo, double hi) {
    *state ^= *state >> 12;
    *state ^= *state << 25;
    *state ^= *state >> 27;
    uint64_t bits = *state * 2685821657736338717ULL;
    double unit = (double)(bits >> 11) / 9007199254740992.0;
    return (double)(float)(lo + (hi - lo) * unit);
}

static inline void test_random_fill(double *a, size_t n, double lo, double hi, uint64_t *state) {
    for (size_t i = 0; i < n; i++) a[i] = test_random(state, lo, hi);
}

static inline double *test_doubles(size_t n) {
    double *a = calloc(n ? n : 1, sizeof *a);
    if (!a) {
        fprintf(stderr, "out of memory\n");
        exit(1);
    }
    return a;
}

static inline float *test_floats(size_t n) {
    float *a = calloc(n ? n : 1, sizeof *a);
    if (!a) {
        fprintf(stderr, "out of memory\n");
        exit(1);
    }
    return a;
}

static inline void test_to_float(float *dst, const double *src, size_t n) {
    for (size_t i = 0; i < n; i++) dst[i] = (float)src[i];
}

static inline void test_to_double(double *dst, const float *src, size_t n) {
    for (size_t i = 0; i < n; i++) dst[i] = src[i];
}

/* A tensor holding values (NCHW doubles, rounded to float); NULL values: zeros. */
static inline dt_tensor *test_tensor(dt_backend *b, int n, int c, int h, int w,
                                     const double *values) {
    dt_error err = {0};
    dt_tensor *t = dt_backend_tensor_create(b, n, c, h, w, &err);
    if (!t) {
        fprintf(stderr, "tensor_create %dx%dx%dx%d: %s\n", n, c, h, w, err.message);
        exit(1);
    }
    if (values) {
        size_t count = (size_t)n * c * h * w;
        float *host = test_floats(count);
        test_to_float(host, values, count);
        CHECK(dt_backend_tensor_upload(b, t, host, &err) == 0);
        free(host);
    }
    return t;
}

/* New values (NCHW doubles, rounded to float) into an existing tensor. */
static inline void test_tensor_write(dt_backend *b, dt_tensor *t, const double *values,
                                     size_t count) {
    dt_error err = {0};
    float *host = test_floats(count);
    test_to_float(host, values, count);
    CHECK(dt_backend_tensor_upload(b, t, host, &err) == 0);
    free(host);
}

static inline void test_tensor_read(dt_backend *b, const dt_tensor *t, double *out, size_t count) {
    dt_error err = {0};
    float *host = test_floats(count);
    CHECK(dt_backend_tensor_download(b, t, host, &err) == 0);
    test_to_double(out, host, count);
    free(host);
}

static inline double test_max_abs(const double *a, size_t n) {
    double m = 0.0;
    for (size_t i = 0; i < n; i++)
        if (fabs(a[i]) > m) m = fabs(a[i]);
    return m;
}

/* One check for a whole array: |got - want| <= rtol * |want| + atol_scale * max|want| for
 * every element (NaN fails); the message names the worst element. */
static inline void test_compare_array(const char *file, int line, const char *what,
                                      const double *got, const double *want, size_t n, double rtol,
                                      double atol_scale) {
    double atol = atol_scale * test_max_abs(want, n);
    size_t worst = 0, bad = 0;
    double worst_excess = -1.0;
    for (size_t i = 0; i < n; i++) {
        double excess = fabs(got[i] - want[i]) - (atol + rtol * fabs(want[i]));
        if (!(excess <= 0.0)) {
            bad++;
            if (isnan(excess) || excess > worst_excess) {
                worst_excess = isnan(excess) ? INFINITY : excess;
                worst = i;
            }
        }
    }
    dt_check_report(bad == 0, file, line, "%s: %zu of %zu elements off, worst [%zu] %.9g vs %.9g",
                    what, bad, n, worst, n ? got[worst] : 0.0, n ? want[worst] : 0.0);
}
#define CHECK_ARRAY_CLOSE(what, got, want, n, rtol, atol_scale)                                    \
    test_compare_array(__FILE__, __LINE__, what, got, want, n, rtol, atol_scale)

/* CHECK_ARRAY_CLOSE with the tolerance stated for the CPU backend at fp32, widened for backend
 * b, the open precision and op (dt_test_tolerance). */
static inline void test_compare_op(const char *file, int line, const dt_backend *b, const char *op,
                                   const char *what, const double *got, const double *want,
                                   size_t n, double rtol, double atol_scale) {
    dt_test_tolerance(b, dt_test_precision(), op, &rtol, &atol_scale);
    test_compare_array(file, line, what, got, want, n, rtol, atol_scale);
}
#define CHECK_OP_CLOSE(b, op, what, got, want, n, rtol, atol_scale)                                \
    test_compare_op(__FILE__, __LINE__, b, op, what, got, want, n, rtol, atol_scale)

/* After a backward that accumulated the same gradients into buffer again: it must hold twice
 * the first result once (n values), exactly on the CPU (x + x), widened per backend and op. */
static inline void test_compare_doubled(const char *file, int line, dt_backend *b, const char *op,
                                        const char *what, const float *buffer, const double *once,
                                        size_t n) {
    double *twice = test_doubles(n), *got = test_doubles(n);
    for (size_t i = 0; i < n; i++) twice[i] = 2.0 * once[i];
    test_buffer_read(b, buffer, got, n);
    test_compare_op(file, line, b, op, what, got, twice, n, 0.0, 0.0);
    free(twice), free(got);
}
#define CHECK_DOUBLED(b, op, what, buffer, once, n)                                                \
    test_compare_doubled(__FILE__, __LINE__, b, op, what, buffer, once, n)

/* d loss / d value[index] by central differences; value is restored. */
static inline double test_finite_difference(double *value, size_t index, double step,
                                            double (*loss)(void *state), void *state) {
    double saved = value[index];
    value[index] = saved + step;
    double up = loss(state);
    value[index] = saved - step;
    double down = loss(state);
    value[index] = saved;
    return (up - down) / (2.0 * step);
}

/* sum_i r_i * y_i: the random linear functional used as the scalar loss. */
static inline double test_dot(const double *r, const double *y, size_t n) {
    double s = 0.0;
    for (size_t i = 0; i < n; i++) s += r[i] * y[i];
    return s;
}

#endif
