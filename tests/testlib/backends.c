/* The test backend registry (see backends.h). */
#include "backends.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dtrain/config.h"
#include "dtrain/gpu.h"

int dt_test_backend_names(const char **names, int max) {
    int n = 0;
    if (n < max) names[n++] = "cpu";
#ifdef DTRAIN_HAVE_CUDA
    if (n < max) names[n++] = "cuda";
#endif
    return n;
}

const char *dt_test_backend_name(int argc, char **argv) {
    return argc > 1 && argv[1] && argv[1][0] ? argv[1] : "cpu";
}

int dt_test_backend_unusable(const char *name, char *reason, size_t size) {
    reason[0] = 0;
    if (strcmp(name, "cpu") == 0) return 0;
    if (strcmp(name, "cuda") != 0) {
        snprintf(reason, size, "unknown backend '%s'", name);
        return 1;
    }
    if (!dt_backend_cuda_training_available()) {
        snprintf(reason, size, "this build has no CUDA training backend");
        return 1;
    }
    dt_gpu_query q;
    dt_backend_cuda_query(&q);
    if (q.count == 0) {
        char text[200];
        snprintf(reason, size, "%s", dt_gpu_query_reason(&q, text, sizeof text));
        return 1;
    }
    return 0;
}

static int opened_precision;

int dt_test_precision(void) {
    return opened_precision;
}

void dt_test_set_precision(int precision) {
    opened_precision = precision;
}

dt_backend dt_test_backend_open(int argc, char **argv, int precision) {
    opened_precision = precision;
    const char *name = dt_test_backend_name(argc, argv);
    const char *names[4];
    int n = dt_test_backend_names(names, 4), known = 0;
    for (int i = 0; i < n; i++) known |= strcmp(names[i], name) == 0;
    if (!known) {
        fprintf(stderr, "backend '%s' is not compiled into this dtrain\n", name);
        exit(1);
    }
    char reason[256];
    if (dt_test_backend_unusable(name, reason, sizeof reason)) {
        printf("SKIPPED: backend %s: %s\n", name, reason);
        fflush(stdout);
        exit(DT_TEST_SKIP);
    }
    dt_backend backend = {0};
    dt_error err = {{0}, 0};
    dt_backend_options opt = {.threads = 2, .device = 0, .precision = precision};
    int rc = strcmp(name, "cpu") == 0 ? dt_backend_cpu_create(&opt, &backend, &err)
                                      : dt_backend_cuda_create(&opt, &backend, &err);
    if (rc != 0) {
        fprintf(stderr, "creating the %s backend: %s\n", name, err.message);
        exit(1);
    }
    return backend;
}

void dt_test_tolerance(const dt_backend *b, int precision, const char *op, double *rtol,
                       double *atol_scale) {
    int product = strcmp(op, "conv") == 0 || strcmp(op, "linear") == 0;
    if (dt_backend_has(b, DT_BACKEND_HOST_MEMORY)) {
        /* the CPU's bf16 convolutions: inputs rounded to bf16 (7 mantissa bits), fp32 sums */
        if (product && precision == DT_PRECISION_BF16) {
            *rtol = *rtol > 2e-2 ? *rtol : 2e-2;
            *atol_scale = *atol_scale > 2e-2 ? *atol_scale : 2e-2;
        }
        return;
    }
    /* fp32 everywhere: the same math summed in another order (cuDNN/cuBLAS/atomics), so what
     * is exact on the CPU (x + x) may not be bit for bit */
    double scale = 4.0, floor = 1e-6;
    if (product) floor = dt_test_tolerances_for(precision)->product_floor;
    *rtol = *rtol * scale > floor ? *rtol * scale : floor;
    *atol_scale = *atol_scale * scale > floor ? *atol_scale * scale : floor;
}

/* TF32 keeps 10 mantissa bits of the products' inputs (about 5e-4 relative each), BF16 7 (about
 * 4e-3); the sums stay fp32. fp32's product floor is the 1e-6 of every other op. */
static const dt_test_tolerances tolerance_fp32 = {0.0, 0.0, 1e-6, 1e-4, 1e-4, 1e-5, 1e-6, 1e-6};
static const dt_test_tolerances tolerance_tf32 = {0.0, 0.0, 1e-6, 5e-3, 1e-4, 5e-3, 1e-6, 2e-3};
static const dt_test_tolerances tolerance_bf16 = {0.0, 8e-3, 8e-3, 3e-2, 5e-2, 3e-2, 2e-2, 2e-2};

const dt_test_tolerances *dt_test_tolerances_for(int precision) {
    return precision == DT_PRECISION_TF32   ? &tolerance_tf32
           : precision == DT_PRECISION_BF16 ? &tolerance_bf16
                                            : &tolerance_fp32;
}

double dt_test_relative_error(const float *got, const float *want, size_t n, size_t *worst_at) {
    double scale = 0.0, worst = 0.0;
    size_t at = 0;
    for (size_t i = 0; i < n; i++) {
        if (fabs(want[i]) > scale) scale = fabs(want[i]);
        double e = fabs((double)got[i] - want[i]);
        if (!(e <= worst)) worst = isnan(e) ? INFINITY : e, at = i;
    }
    if (worst_at) *worst_at = at;
    return scale > 0.0 ? worst / scale : worst;
}
