/* Helpers shared by the CPU backend tests (tests/test_backend_*.c): backend setup, seeded
 * random data rounded to float, tensor transfer through double arrays, array comparison with
 * one check per array, and central finite differences of a scalar loss. */
#ifndef DTRAIN_TEST_BACKEND_COMMON_H
#define DTRAIN_TEST_BACKEND_COMMON_H

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "check.h"
#include "dtrain/backend.h"

/* Creates the CPU backend with 2 threads at a precision (dt_precision_kind); a test cannot go
 * on without it. */
static inline dt_backend test_backend_open_precision(int precision) {
    dt_backend backend = {0};
    dt_error err = {0};
    dt_backend_options opt = {.threads = 2, .precision = precision};
    if (dt_backend_cpu_create(&opt, &backend, &err) != 0) {
        fprintf(stderr, "creating the CPU backend: %s\n", err.message);
        exit(1);
    }
    return backend;
}

/* The CPU backend at the default precision, fp32. */
static inline dt_backend test_backend_open(void) {
    return test_backend_open_precision(0);
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
    dt_tensor *t = b->ops->tensor_create(b->ctx, n, c, h, w, &err);
    if (!t) {
        fprintf(stderr, "tensor_create %dx%dx%dx%d: %s\n", n, c, h, w, err.message);
        exit(1);
    }
    if (values) {
        size_t count = (size_t)n * c * h * w;
        float *host = test_floats(count);
        test_to_float(host, values, count);
        CHECK(b->ops->tensor_upload(b->ctx, t, host, &err) == 0);
        free(host);
    }
    return t;
}

static inline void test_tensor_read(dt_backend *b, const dt_tensor *t, double *out, size_t count) {
    dt_error err = {0};
    float *host = test_floats(count);
    CHECK(b->ops->tensor_download(b->ctx, t, host, &err) == 0);
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
