/* The backends the backend and model tests run on, in one place (as ggml's test-backend-ops):
 * cpu always, cuda in builds with the CUDA toolkit. A test program takes the backend's name as
 * its first argument (none: cpu); ctest registers one variant per compiled-in backend, the cuda
 * ones labelled gpu (tests/CMakeLists.txt, section backends). A backend that is compiled in but
 * cannot run here (no GPU, no driver, no CUDA training backend yet) makes the test report SKIPPED
 * with the reason and exit with DT_TEST_SKIP, never pass. The CPU backend is the reference the
 * others are compared with, on the same inputs, within per-op tolerances. */
#ifndef DTRAIN_TEST_BACKENDS_H
#define DTRAIN_TEST_BACKENDS_H

#include <stddef.h>

#include "dtrain/backend.h"

/* ctest's SKIP_RETURN_CODE for the backend variants */
#define DT_TEST_SKIP 77

/* The backends compiled in, cpu first; returns how many (at most max names). */
int dt_test_backend_names(const char **names, int max);

/* The backend named by argv[1] ("cpu" when absent) at a precision (dt_precision_kind), with 2
 * compute threads on the CPU. Unusable here: prints "SKIPPED: ..." and exits DT_TEST_SKIP; an
 * unknown name or a failed creation exits 1. */
dt_backend dt_test_backend_open(int argc, char **argv, int precision);
/* The precision of the backend opened last, for the per-op tolerances; set by
 * dt_test_backend_open, and by a test that creates its backend itself. */
int dt_test_precision(void);
void dt_test_set_precision(int precision);
/* The name dt_test_backend_open uses for these arguments. */
const char *dt_test_backend_name(int argc, char **argv);

/* Why the named backend cannot run here, into reason; 0 when it can. */
int dt_test_backend_unusable(const char *name, char *reason, size_t size);

/* Per-op tolerance for a backend and precision: widens (rtol, atol_scale), the tolerance a test
 * states for the CPU backend at fp32, to what the backend and precision promise for that op
 * ("conv", "linear": matrix products, TF32/BF16 inputs; anything else: fp32 arithmetic in
 * another order). The CPU backend's tf32 (oneDNN Winograd) is the test's own business. */
void dt_test_tolerance(const dt_backend *b, int precision, const char *op, double *rtol,
                       double *atol_scale);

/* The tolerances of one precision, the one table of what a device backend may differ from the
 * CPU backend at fp32 by, per kind of op:
 *  - max |device - cpu| / max |cpu| over a whole op's output (test_backend_ops --compare):
 *    exact (buffers, SGD), eltwise, pool, conv, bn, linear, loss;
 *  - product_floor: the smallest per-element rtol and atol scale dt_test_tolerance allows conv and
 *    linear (their inputs rounded to TF32 or BF16), beside the 4x widening of fp32 ops.
 * bf16: every activation is rounded to 8 significant bits (2^-8 relative) at each op. */
typedef struct dt_test_tolerances {
    double exact, eltwise, pool, conv, bn, linear, loss;
    double product_floor;
} dt_test_tolerances;

const dt_test_tolerances *dt_test_tolerances_for(int precision);

/* max |got - want| / max |want| over n values (a NaN is an infinite error); the index of the
 * largest difference in *worst_at when not NULL. */
double dt_test_relative_error(const float *got, const float *want, size_t n, size_t *worst_at);

#endif
