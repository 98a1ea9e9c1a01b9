/* The compare mode's helpers (backend_ops.h): host data in and out of either backend, and the
 * one comparison with its printed error beside testlib's tolerance. */
#include <stdlib.h>

#include "backend_ops.h"
#include "dtrain/config.h"

void op_compare(int precision, const char *what, const float *got, const float *want, size_t n,
                double tolerance) {
    size_t at = 0;
    double rel = dt_test_relative_error(got, want, n, &at);
    printf("  %-4s %-44s error %.3g  tolerance %.3g\n", dt_precision_name(precision), what, rel,
           tolerance);
    CHECK_MSG(rel <= tolerance, "%s %s: error %.3g above %.3g (element %zu: %.9g vs %.9g)",
              dt_precision_name(precision), what, rel, tolerance, at, n ? got[at] : 0.0,
              n ? want[at] : 0.0);
}

void op_compare_of(int precision, const char *subject, const char *what, const float *got,
                   const float *want, size_t n, double tolerance) {
    char label[240];
    snprintf(label, sizeof label, "%s %s", subject, what);
    op_compare(precision, label, got, want, n, tolerance);
}

float *op_random_floats(size_t n, double lo, double hi, uint64_t *state) {
    float *a = test_floats(n);
    for (size_t i = 0; i < n; i++) a[i] = (float)test_random(state, lo, hi);
    return a;
}

dt_tensor *op_tensor_of(dt_backend *b, int n, int c, int h, int w, const float *host) {
    dt_error err = {0};
    dt_tensor *t = dt_backend_tensor_create(b, n, c, h, w, &err);
    if (!t) {
        fprintf(stderr, "%s tensor_create %dx%dx%dx%d: %s\n", dt_backend_name(b), n, c, h, w,
                err.message);
        exit(1);
    }
    if (host) CHECK_MSG(dt_backend_tensor_upload(b, t, host, &err) == 0, "%s", err.message);
    return t;
}

float *op_tensor_read(dt_backend *b, const dt_tensor *t, size_t n) {
    dt_error err = {0};
    float *host = test_floats(n);
    CHECK_MSG(dt_backend_tensor_download(b, t, host, &err) == 0, "%s", err.message);
    return host;
}

float *op_buffer_of(dt_backend *b, const float *host, size_t n) {
    dt_error err = {0};
    float *buf = dt_backend_buffer_alloc(b, n, &err);
    if (!buf) {
        fprintf(stderr, "%s buffer_alloc: %s\n", dt_backend_name(b), err.message);
        exit(1);
    }
    if (host) CHECK_MSG(dt_backend_buffer_upload(b, buf, host, n, &err) == 0, "%s", err.message);
    return buf;
}

float *op_buffer_read(dt_backend *b, const float *buf, size_t n) {
    dt_error err = {0};
    float *host = test_floats(n);
    CHECK_MSG(dt_backend_buffer_download(b, host, buf, n, &err) == 0, "%s", err.message);
    return host;
}
