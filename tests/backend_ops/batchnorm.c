/* Backend batch normalisation (every backend compiled in): training forward (batch statistics,
 * biased variance in the normalisation, running statistics updated with the unbiased variance and
 * momentum 0.1) and inference forward (running statistics) against double-precision references; the
 * backward (dx, dgamma, dbeta) against central finite differences of the training reference, with
 * and without the fused ReLU, in both activation layouts, in place (dx = dy) and with NULL
 * parameter gradients; statistics of channels with a large mean keep their precision. Compare mode:
 * training and inference forward and backward on another backend against the CPU's. Rows:
 * test_backend_ops.c. */
#include <stdlib.h>
#include <string.h>

#include "backend_ops.h"

typedef struct bn_case {
    dt_backend *b;
    dt_batchnorm_desc d;
    double *x, *gamma, *beta, *r, *y;
} bn_case;

static size_t count_of(const bn_case *c) {
    return (size_t)c->d.batch * c->d.channels * c->d.height * c->d.width;
}

/* x, the upstream gradient r, gamma and beta drawn at random; y allocated */
static void bn_case_fill(bn_case *c, uint64_t *state) {
    const size_t count = count_of(c), C = (size_t)c->d.channels;
    c->x = test_doubles(count), c->r = test_doubles(count), c->y = test_doubles(count);
    c->gamma = test_doubles(C), c->beta = test_doubles(C);
    test_random_fill(c->x, count, -2.0, 3.0, state);
    test_random_fill(c->r, count, -1.0, 1.0, state);
    test_random_fill(c->gamma, C, 0.5, 1.5, state);
    test_random_fill(c->beta, C, -0.5, 0.5, state);
}

/* training: batch statistics into mean/var (biased) when not NULL; else the given stats */
static void reference_bn(const bn_case *c, int training, const double *stat_mean,
                         const double *stat_var, double *y, double *mean_out, double *var_out) {
    const dt_batchnorm_desc *d = &c->d;
    const size_t plane = (size_t)d->height * d->width;
    for (int ch = 0; ch < d->channels; ch++) {
        double mean, var;
        if (training) {
            double sum = 0.0, sq = 0.0;
            for (int n = 0; n < d->batch; n++)
                for (size_t p = 0; p < plane; p++)
                    sum += c->x[((size_t)n * d->channels + ch) * plane + p];
            double count = (double)d->batch * plane;
            mean = sum / count;
            for (int n = 0; n < d->batch; n++)
                for (size_t p = 0; p < plane; p++) {
                    double v = c->x[((size_t)n * d->channels + ch) * plane + p] - mean;
                    sq += v * v;
                }
            var = sq / count;
            if (mean_out) mean_out[ch] = mean;
            if (var_out) var_out[ch] = var;
        } else {
            mean = stat_mean[ch];
            var = stat_var[ch];
        }
        double inv = 1.0 / sqrt(var + d->epsilon);
        for (int n = 0; n < d->batch; n++)
            for (size_t p = 0; p < plane; p++) {
                size_t i = ((size_t)n * d->channels + ch) * plane + p;
                double v = c->gamma[ch] * (c->x[i] - mean) * inv + c->beta[ch];
                y[i] = d->fuse_relu && v < 0.0 ? 0.0 : v;
            }
    }
}

static double bn_loss(void *state) {
    bn_case *c = state;
    reference_bn(c, 1, NULL, NULL, c->y, NULL, NULL);
    return test_dot(c->r, c->y, count_of(c));
}

static void check_fd(const char *label, const char *name, bn_case *c, double *value, size_t count,
                     const double *got) {
    double *fd = test_doubles(count);
    for (size_t i = 0; i < count; i++) fd[i] = test_finite_difference(value, i, 1e-5, bn_loss, c);
    char what[200];
    snprintf(what, sizeof what, "%s %s", label, name);
    CHECK_OP_CLOSE(c->b, "batchnorm", what, got, fd, count, 2e-3, 2e-4);
    free(fd);
}

void batchnorm_check(dt_backend *b, const backend_op_case *oc) {
    const op_batchnorm *row = oc->params;
    const dt_batchnorm_desc d = row->d;
    const int in_place = row->in_place;
    dt_error err = {0};
    bn_case c = {.b = b, .d = d};
    const size_t count = count_of(&c), C = (size_t)d.channels;
    uint64_t state = 777u + (uint64_t)d.channels * 13u + (uint64_t)d.fuse_relu;
    bn_case_fill(&c, &state);
    char label[160];
    snprintf(label, sizeof label, "batchnorm %dx%dx%dx%d%s%s", d.batch, d.channels, d.height,
             d.width, d.fuse_relu ? " +relu" : "", in_place ? " in-place" : "");

    dt_layer *layer = dt_backend_batchnorm_create(b, &d, &err);
    CHECK_MSG(layer != NULL, "%s: %s", label, err.message);
    if (!layer) return;
    dt_tensor *x = test_tensor(b, d.batch, d.channels, d.height, d.width, c.x);
    dt_tensor *y = test_tensor(b, d.batch, d.channels, d.height, d.width, NULL);
    dt_tensor *dy = test_tensor(b, d.batch, d.channels, d.height, d.width, c.r);
    dt_tensor *dx = in_place ? dy : test_tensor(b, d.batch, d.channels, d.height, d.width, NULL);
    double *start_mean = test_doubles(C), *start_var = test_doubles(C);
    test_random_fill(start_mean, C, -0.2, 0.2, &state);
    test_random_fill(start_var, C, 0.5, 2.0, &state);
    float *gamma = test_buffer(b, c.gamma, C), *beta = test_buffer(b, c.beta, C);
    float *rmean = test_buffer(b, start_mean, C), *rvar = test_buffer(b, start_var, C);
    float *dgamma = test_buffer(b, NULL, C), *dbeta = test_buffer(b, NULL, C);

    /* training forward */
    double *want = test_doubles(count), *got = test_doubles(count);
    double *batch_mean = test_doubles(C), *batch_var = test_doubles(C);
    reference_bn(&c, 1, NULL, NULL, want, batch_mean, batch_var);
    CHECK_MSG(dt_backend_batchnorm_forward(b, layer, gamma, beta, rmean, rvar, 1, x, y, &err) == 0,
              "%s: %s", label, err.message);
    test_tensor_read(b, y, got, count);
    char what[200];
    snprintf(what, sizeof what, "%s training forward", label);
    CHECK_OP_CLOSE(b, "batchnorm", what, got, want, count, 1e-4, 1e-5);

    /* running statistics: momentum 0.1, unbiased variance n/(n-1) */
    double n = (double)d.batch * d.height * d.width;
    double *want_mean = test_doubles(C), *want_var = test_doubles(C);
    double *got_mean = test_doubles(C), *got_var = test_doubles(C);
    for (size_t ch = 0; ch < C; ch++) {
        want_mean[ch] = 0.9 * start_mean[ch] + 0.1 * batch_mean[ch];
        want_var[ch] = 0.9 * start_var[ch] + 0.1 * batch_var[ch] * n / (n - 1.0);
    }
    test_buffer_read(b, rmean, got_mean, C);
    test_buffer_read(b, rvar, got_var, C);
    snprintf(what, sizeof what, "%s running mean", label);
    CHECK_OP_CLOSE(b, "batchnorm", what, got_mean, want_mean, C, 1e-5, 1e-6);
    snprintf(what, sizeof what, "%s running var (unbiased)", label);
    CHECK_OP_CLOSE(b, "batchnorm", what, got_var, want_var, C, 1e-5, 1e-6);

    /* backward after the training forward */
    CHECK_MSG(dt_backend_batchnorm_backward(b, layer, gamma, beta, x, y, dy, dx, dgamma, dbeta, 0,
                                            &err) == 0,
              "%s: %s", label, err.message);
    double *dx_got = test_doubles(count), *dgamma_got = test_doubles(C),
           *dbeta_got = test_doubles(C);
    test_tensor_read(b, dx, dx_got, count);
    test_buffer_read(b, dgamma, dgamma_got, C);
    test_buffer_read(b, dbeta, dbeta_got, C);
    check_fd(label, "dx", &c, c.x, count, dx_got);
    check_fd(label, "dgamma", &c, c.gamma, C, dgamma_got);
    check_fd(label, "dbeta", &c, c.beta, C, dbeta_got);

    /* accumulate: the parameter gradients are added to what the buffers hold (here the same
     * gradients: twice them, exactly), dx is overwritten */
    if (!in_place) {
        CHECK(dt_backend_batchnorm_backward(b, layer, gamma, beta, x, y, dy, dx, dgamma, dbeta, 1,
                                            &err) == 0);
        double *dx_again = test_doubles(count);
        snprintf(what, sizeof what, "%s dgamma accumulated", label);
        CHECK_DOUBLED(b, "batchnorm", what, dgamma, dgamma_got, C);
        snprintf(what, sizeof what, "%s dbeta accumulated", label);
        CHECK_DOUBLED(b, "batchnorm", what, dbeta, dbeta_got, C);
        test_tensor_read(b, dx, dx_again, count);
        snprintf(what, sizeof what, "%s dx when accumulating", label);
        CHECK_OP_CLOSE(b, "batchnorm", what, dx_again, dx_got, count, 0.0, 0.0);
        free(dx_again);
    }

    /* NULL parameter gradients: dx alone, same values */
    if (!in_place) {
        float *junk = test_floats(count);
        for (size_t i = 0; i < count; i++) junk[i] = NAN; /* a call that writes nothing fails */
        CHECK(dt_backend_tensor_upload(b, dx, junk, &err) == 0);
        free(junk);
        CHECK(dt_backend_batchnorm_backward(b, layer, gamma, beta, x, y, dy, dx, NULL, NULL, 0,
                                            &err) == 0);
        double *again = test_doubles(count);
        test_tensor_read(b, dx, again, count);
        snprintf(what, sizeof what, "%s dx without parameter gradients", label);
        CHECK_OP_CLOSE(b, "batchnorm", what, again, dx_got, count, 0.0, 0.0);
        free(again);
    }

    /* inference forward uses the running statistics */
    double *stat_mean = test_doubles(C), *stat_var = test_doubles(C);
    test_buffer_read(b, rmean, stat_mean, C);
    test_buffer_read(b, rvar, stat_var, C);
    reference_bn(&c, 0, stat_mean, stat_var, want, NULL, NULL);
    CHECK(dt_backend_batchnorm_forward(b, layer, gamma, beta, rmean, rvar, 0, x, y, &err) == 0);
    test_tensor_read(b, y, got, count);
    snprintf(what, sizeof what, "%s inference forward", label);
    CHECK_OP_CLOSE(b, "batchnorm", what, got, want, count, 1e-4, 1e-5);
    /* and leaves them unchanged */
    test_buffer_read(b, rvar, got_var, C);
    snprintf(what, sizeof what, "%s running var after inference", label);
    CHECK_ARRAY_CLOSE(what, got_var, stat_var, C, 0.0, 0.0);

    dt_backend_layer_destroy(b, layer);
    dt_backend_tensor_destroy(b, x);
    dt_backend_tensor_destroy(b, y);
    dt_backend_tensor_destroy(b, dy);
    if (!in_place) dt_backend_tensor_destroy(b, dx);
    float *buffers[] = {gamma, beta, rmean, rvar, dgamma, dbeta};
    for (size_t i = 0; i < sizeof buffers / sizeof buffers[0]; i++) test_buffer_free(b, buffers[i]);
    free(start_mean), free(start_var), free(want), free(got), free(batch_mean), free(batch_var);
    free(want_mean), free(want_var), free(got_mean), free(got_var), free(dx_got), free(dgamma_got),
        free(dbeta_got), free(stat_mean), free(stat_var);
    free(c.x), free(c.r), free(c.y), free(c.gamma), free(c.beta);
}

/* Channels whose mean is large against their spread (100 +- 0.15, std 0.087): the statistics
 * must not lose the digits that float sums lose. The floor is the mean's own rounding to float
 * (half an ulp of 100 is 3.8e-6, 4.4e-5 after dividing by the std); float sums gave 2.3e-4.
 * The running statistics (momentum 1: the batch's own) must match the exact values. */
void batchnorm_check_large_mean(dt_backend *b, const backend_op_case *oc) {
    (void)oc;
    dt_error err = {0};
    bn_case c = {.d = {4, 16, 16, 16, 1.0f, 1e-5f, 0}};
    const size_t count = count_of(&c), C = 16;
    uint64_t state = 4711u;
    c.x = test_doubles(count), c.gamma = test_doubles(C), c.beta = test_doubles(C);
    test_random_fill(c.x, count, 99.85, 100.15, &state);
    for (size_t ch = 0; ch < C; ch++) c.gamma[ch] = 1.0, c.beta[ch] = 0.0;
    dt_layer *layer = dt_backend_batchnorm_create(b, &c.d, &err);
    dt_tensor *x = test_tensor(b, 4, 16, 16, 16, c.x), *y = test_tensor(b, 4, 16, 16, 16, NULL);
    float *gamma = test_buffer(b, c.gamma, C), *beta = test_buffer(b, c.beta, C);
    float *rmean = test_buffer(b, NULL, C), *rvar = test_buffer(b, NULL, C);
    CHECK(dt_backend_batchnorm_forward(b, layer, gamma, beta, rmean, rvar, 1, x, y, &err) == 0);
    double *want = test_doubles(count), *got = test_doubles(count);
    double mean[16], var[16], got_mean[16], got_var[16];
    reference_bn(&c, 1, NULL, NULL, want, mean, var);
    test_tensor_read(b, y, got, count);
    CHECK_OP_CLOSE(b, "batchnorm", "batchnorm mean 100 std 0.087: forward", got, want, count, 0.0,
                   5e-5);
    double n = 4.0 * 16 * 16;
    for (size_t ch = 0; ch < C; ch++) var[ch] *= n / (n - 1.0);
    test_buffer_read(b, rmean, got_mean, C);
    test_buffer_read(b, rvar, got_var, C);
    CHECK_OP_CLOSE(b, "batchnorm", "batchnorm mean 100: running mean", got_mean, mean, C, 1e-7,
                   0.0);
    CHECK_OP_CLOSE(b, "batchnorm", "batchnorm mean 100: running var", got_var, var, C, 1e-4, 0.0);
    test_buffer_free(b, gamma), test_buffer_free(b, beta), test_buffer_free(b, rmean);
    test_buffer_free(b, rvar);
    dt_backend_layer_destroy(b, layer);
    dt_backend_tensor_destroy(b, x);
    dt_backend_tensor_destroy(b, y);
    free(want), free(got), free(c.x), free(c.gamma), free(c.beta);
}

/* descriptions every backend refuses alike, a backward before any training forward */
void batchnorm_check_refusals(dt_backend *b, const backend_op_case *oc) {
    (void)oc;
    /* descriptions every backend refuses alike (src/backend/layer_descs.c) */
    dt_error err = {0};
    dt_batchnorm_desc bad_momentum = {2, 16, 2, 2, 1.5f, 1e-5f, 0};
    CHECK(dt_backend_batchnorm_create(b, &bad_momentum, &err) == NULL);
    CHECK(strstr(err.message, "batchnorm_create: invalid description") != NULL);
    dt_batchnorm_desc bad_epsilon = {2, 16, 2, 2, 0.1f, 0.0f, 0};
    CHECK(dt_backend_batchnorm_create(b, &bad_epsilon, &err) == NULL);

    /* a backward before any training forward is refused */
    dt_batchnorm_desc d = {2, 16, 2, 2, 0.1f, 1e-5f, 0};
    dt_layer *layer = dt_backend_batchnorm_create(b, &d, &err);
    dt_tensor *t = test_tensor(b, 2, 16, 2, 2, NULL);
    float *params = test_buffer(b, NULL, 16);
    CHECK(dt_backend_batchnorm_backward(b, layer, params, params, t, t, t, t, NULL, NULL, 0,
                                        &err) == -1);
    test_buffer_free(b, params);
    CHECK(strstr(err.message, "training forward") != NULL);
    dt_backend_layer_destroy(b, layer);
    dt_backend_tensor_destroy(b, t);
}

/* Training forward (with the running statistics), inference forward and backward (overwritten
 * and accumulated) on the other backend against the CPU's. */
void batchnorm_compare(dt_backend *cpu, dt_backend *other, const backend_op_case *oc) {
    const dt_batchnorm_desc d = ((const op_batchnorm *)oc->params)->d;
    const dt_test_tolerances *t = dt_test_tolerances_for(oc->precision);
    dt_error err = {0};
    const size_t n = (size_t)d.batch * d.channels * d.height * d.width, C = (size_t)d.channels;
    uint64_t state = 5u + C;
    float *x = op_random_floats(n, -1, 3, &state), *dy = op_random_floats(n, -1, 1, &state);
    float *gamma = op_random_floats(C, 0.5, 1.5, &state),
          *beta = op_random_floats(C, -0.5, 0.5, &state);
    float *rm = op_random_floats(C, -0.2, 0.2, &state), *rv = op_random_floats(C, 0.5, 2, &state);
    dt_backend *b[2] = {cpu, other};
    float *y[2], *dx[2], *dg[2], *db[2], *dg2[2], *rmo[2], *rvo[2], *yi[2];
    for (int k = 0; k < 2; k++) {
        dt_layer *l = dt_backend_batchnorm_create(b[k], &d, &err);
        CHECK_MSG(l != NULL, "%s batchnorm_create: %s", dt_backend_name(b[k]), err.message);
        if (!l) return;
        float *g = op_buffer_of(b[k], gamma, C), *be = op_buffer_of(b[k], beta, C);
        float *m = op_buffer_of(b[k], rm, C), *v = op_buffer_of(b[k], rv, C);
        float *dgb = op_buffer_of(b[k], NULL, C), *dbb = op_buffer_of(b[k], NULL, C);
        dt_tensor *tx = op_tensor_of(b[k], d.batch, d.channels, d.height, d.width, x);
        dt_tensor *ty = op_tensor_of(b[k], d.batch, d.channels, d.height, d.width, NULL);
        dt_tensor *tdy = op_tensor_of(b[k], d.batch, d.channels, d.height, d.width, dy);
        dt_tensor *tdx = op_tensor_of(b[k], d.batch, d.channels, d.height, d.width, NULL);
        CHECK_MSG(dt_backend_batchnorm_forward(b[k], l, g, be, m, v, 1, tx, ty, &err) == 0, "%s",
                  err.message);
        CHECK_MSG(
            dt_backend_batchnorm_backward(b[k], l, g, be, tx, ty, tdy, tdx, dgb, dbb, 0, &err) == 0,
            "%s", err.message);
        y[k] = op_tensor_read(b[k], ty, n), dx[k] = op_tensor_read(b[k], tdx, n);
        dg[k] = op_buffer_read(b[k], dgb, C), db[k] = op_buffer_read(b[k], dbb, C);
        rmo[k] = op_buffer_read(b[k], m, C), rvo[k] = op_buffer_read(b[k], v, C);
        CHECK(dt_backend_batchnorm_backward(b[k], l, g, be, tx, ty, tdy, tdx, dgb, dbb, 1, &err) ==
              0);
        dg2[k] = op_buffer_read(b[k], dgb, C);
        CHECK(dt_backend_batchnorm_forward(b[k], l, g, be, m, v, 0, tx, ty, &err) == 0);
        yi[k] = op_tensor_read(b[k], ty, n);
        dt_backend_layer_destroy(b[k], l);
        dt_backend_tensor_destroy(b[k], tx), dt_backend_tensor_destroy(b[k], ty);
        dt_backend_tensor_destroy(b[k], tdy), dt_backend_tensor_destroy(b[k], tdx);
        float *bufs[] = {g, be, m, v, dgb, dbb};
        for (int i = 0; i < 6; i++) dt_backend_buffer_free(b[k], bufs[i]);
    }
    char what[100];
    snprintf(what, sizeof what, "batchnorm %dx%dx%dx%d%s", d.batch, d.channels, d.height, d.width,
             d.fuse_relu ? "+relu" : "");
    op_compare_of(oc->precision, what, "training forward", y[1], y[0], n, t->bn);
    op_compare_of(oc->precision, what, "running mean", rmo[1], rmo[0], C, t->bn);
    op_compare_of(oc->precision, what, "running var", rvo[1], rvo[0], C, t->bn);
    op_compare_of(oc->precision, what, "backward dx", dx[1], dx[0], n, t->bn);
    op_compare_of(oc->precision, what, "backward dgamma", dg[1], dg[0], C, t->bn);
    op_compare_of(oc->precision, what, "backward dbeta", db[1], db[0], C, t->bn);
    op_compare_of(oc->precision, what, "backward dgamma, accumulated", dg2[1], dg2[0], C, t->bn);
    op_compare_of(oc->precision, what, "inference forward", yi[1], yi[0], n, t->bn);
    for (int k = 0; k < 2; k++)
        free(y[k]), free(dx[k]), free(dg[k]), free(db[k]), free(dg2[k]), free(rmo[k]), free(rvo[k]),
            free(yi[k]);
    free(x), free(dy), free(gamma), free(beta), free(rm), free(rv);
}

/* A tensor above the CPU's one-thread size (the threaded passes), with the fused ReLU: forward
 * against reference_bn, backward against the closed form in double (no finite differences,
 * which would cost a forward per element here): with g = dy where the backend's y > 0,
 * dbeta = sum g, dgamma = sum g * xhat, dx = gamma * invstd * (g - dbeta / n - xhat * dgamma / n).
 */
void batchnorm_check_threaded(dt_backend *b, const backend_op_case *oc) {
    (void)oc;
    dt_error err = {0};
    bn_case c = {.b = b, .d = {16, 32, 17, 17, 0.1f, 1e-5f, 1}};
    const dt_batchnorm_desc d = c.d;
    const size_t count = count_of(&c), C = (size_t)d.channels, plane = (size_t)d.height * d.width;
    uint64_t state = 9001u;
    bn_case_fill(&c, &state);
    dt_layer *layer = dt_backend_batchnorm_create(b, &d, &err);
    CHECK_MSG(layer != NULL, "%s", err.message);
    if (!layer) return;
    dt_tensor *x = test_tensor(b, d.batch, d.channels, d.height, d.width, c.x);
    dt_tensor *y = test_tensor(b, d.batch, d.channels, d.height, d.width, NULL);
    dt_tensor *dy = test_tensor(b, d.batch, d.channels, d.height, d.width, c.r);
    dt_tensor *dx = test_tensor(b, d.batch, d.channels, d.height, d.width, NULL);
    float *gamma = test_buffer(b, c.gamma, C), *beta = test_buffer(b, c.beta, C);
    float *rmean = test_buffer(b, NULL, C), *rvar = test_buffer(b, NULL, C);
    float *dgamma = test_buffer(b, NULL, C), *dbeta = test_buffer(b, NULL, C);
    double *want = test_doubles(count), *got = test_doubles(count), *mean = test_doubles(C),
           *var = test_doubles(C);
    reference_bn(&c, 1, NULL, NULL, want, mean, var);
    CHECK(dt_backend_batchnorm_forward(b, layer, gamma, beta, rmean, rvar, 1, x, y, &err) == 0);
    test_tensor_read(b, y, got, count);
    CHECK_OP_CLOSE(b, "batchnorm", "batchnorm 16x32x17x17 +relu (threaded) forward", got, want,
                   count, 1e-4, 1e-5);
    CHECK(dt_backend_batchnorm_backward(b, layer, gamma, beta, x, y, dy, dx, dgamma, dbeta, 0,
                                        &err) == 0);
    double *want_dx = test_doubles(count), *want_dgamma = test_doubles(C),
           *want_dbeta = test_doubles(C), *got_dx = test_doubles(count),
           *got_dgamma = test_doubles(C), *got_dbeta = test_doubles(C);
    const double n = (double)d.batch * plane;
    for (size_t ch = 0; ch < C; ch++) {
        const double invstd = 1.0 / sqrt(var[ch] + d.epsilon);
        double sum = 0.0, dot = 0.0;
        for (int k = 0; k < d.batch; k++)
            for (size_t p = 0; p < plane; p++) {
                const size_t i = ((size_t)k * C + ch) * plane + p;
                const double g = got[i] > 0.0 ? c.r[i] : 0.0;
                sum += g;
                dot += g * (c.x[i] - mean[ch]) * invstd;
            }
        want_dbeta[ch] = sum, want_dgamma[ch] = dot;
        for (int k = 0; k < d.batch; k++)
            for (size_t p = 0; p < plane; p++) {
                const size_t i = ((size_t)k * C + ch) * plane + p;
                const double g = got[i] > 0.0 ? c.r[i] : 0.0;
                const double xhat = (c.x[i] - mean[ch]) * invstd;
                want_dx[i] = c.gamma[ch] * invstd * (g - sum / n - xhat * dot / n);
            }
    }
    test_tensor_read(b, dx, got_dx, count);
    test_buffer_read(b, dgamma, got_dgamma, C);
    test_buffer_read(b, dbeta, got_dbeta, C);
    CHECK_OP_CLOSE(b, "batchnorm", "batchnorm 16x32x17x17 +relu (threaded) dx", got_dx, want_dx,
                   count, 1e-4, 1e-5);
    CHECK_OP_CLOSE(b, "batchnorm", "batchnorm 16x32x17x17 +relu (threaded) dgamma", got_dgamma,
                   want_dgamma, C, 1e-4, 1e-4);
    CHECK_OP_CLOSE(b, "batchnorm", "batchnorm 16x32x17x17 +relu (threaded) dbeta", got_dbeta,
                   want_dbeta, C, 1e-4, 1e-4);
    test_buffer_free(b, gamma), test_buffer_free(b, beta), test_buffer_free(b, rmean);
    test_buffer_free(b, rvar), test_buffer_free(b, dgamma), test_buffer_free(b, dbeta);
    dt_backend_layer_destroy(b, layer);
    dt_backend_tensor_destroy(b, x), dt_backend_tensor_destroy(b, y);
    dt_backend_tensor_destroy(b, dy), dt_backend_tensor_destroy(b, dx);
    free(want), free(got), free(mean), free(var), free(want_dx), free(want_dgamma);
    free(want_dbeta), free(got_dx), free(got_dgamma), free(got_dbeta);
    free(c.x), free(c.r), free(c.y), free(c.gamma), free(c.beta);
}
