/* Backend softmax cross-entropy: the loss statistics it accumulates (weighted loss sum,
 * correct count, sample count, non-finite losses) and the argmax predictions against a
 * double-precision reference, the logits gradient against central finite differences of
 * grad_scale * weighted loss, stability with huge logits, and label checking; the same for
 * label-smoothed and two-label (mixup/cutmix) targets against a float64 reference of their
 * definition (torch CrossEntropyLoss(label_smoothing), timm's mixup_target), and against PyTorch
 * itself: the cases of tests/reference/loss_targets.safetensors (make_loss_fixture.py: float32
 * logits, labels, partner labels, weights, eps and lambda, with torch's float64 loss sum, logits
 * gradient and correct count), one row each. Compared across backends with the linear layer
 * (linear.c). Rows: test_backend_ops.c. */
#include <stdlib.h>
#include <string.h>

#include "backend_ops.h"
#include "dtrain/safetensors.h"

enum { N = 5, K = 4 };

typedef struct loss_case {
    double logits[N * K];
    int32_t labels[N];
    float weights[N];
} loss_case;

static double reference_loss(void *state) {
    loss_case *c = state;
    double total = 0.0;
    for (int i = 0; i < N; i++) {
        if (c->weights[i] == 0.0f) continue; /* padding: its label may be out of range */
        const double *z = c->logits + i * K;
        double top = z[0];
        for (int j = 1; j < K; j++)
            if (z[j] > top) top = z[j];
        double sum = 0.0;
        for (int j = 0; j < K; j++) sum += exp(z[j] - top);
        total += c->weights[i] * (log(sum) + top - z[c->labels[i]]);
    }
    return total;
}

/* One softmax_cross_entropy call on freshly reset statistics; returns its rc and leaves the
 * statistics of that call alone in stats. */
static int loss_call(dt_backend *b, const dt_tensor *logits, const int32_t *labels,
                     const float *weights, dt_tensor *dlogits, float grad_scale,
                     int32_t *predictions, double stats[DT_LOSS_STATS], dt_error *err) {
    double discard[DT_LOSS_STATS];
    CHECK(dt_backend_loss_stats_read(b, discard, 1, err) == 0);
    int rc = dt_backend_softmax_cross_entropy(b, logits, labels, weights, dlogits, grad_scale,
                                              predictions, err);
    CHECK(dt_backend_loss_stats_read(b, stats, 1, err) == 0);
    return rc;
}

/* Label-smoothed, two-label targets: the float64 reference of the definition,
 * -sum_j t_j log softmax_j with t = lam s(a) + (1 - lam) s(b), s(y) = (1 - eps) onehot(y) +
 * eps / k, written from log-softmax (not the backend's rearranged form). */
typedef struct target_case {
    double logits[N * K];
    int32_t labels[N], second[N];
    float weights[N];
    double lam, eps;
} target_case;

static double reference_target_loss(void *state) {
    target_case *c = state;
    double total = 0.0;
    for (int i = 0; i < N; i++) {
        if (c->weights[i] == 0.0f) continue;
        const double *z = c->logits + i * K;
        double top = z[0];
        for (int j = 1; j < K; j++)
            if (z[j] > top) top = z[j];
        double sum = 0.0;
        for (int j = 0; j < K; j++) sum += exp(z[j] - top);
        for (int j = 0; j < K; j++) {
            double onehot_a = j == c->labels[i], onehot_b = j == c->second[i];
            double t = c->lam * ((1.0 - c->eps) * onehot_a + c->eps / K) +
                       (1.0 - c->lam) * ((1.0 - c->eps) * onehot_b + c->eps / K);
            total -= c->weights[i] * t * (z[j] - top - log(sum));
        }
    }
    return total;
}

void loss_check_targets(dt_backend *b, const backend_op_case *oc) {
    (void)oc;
    dt_error err = {0};
    target_case c = {.labels = {0, 3, 2, 1, 9},
                     .second = {2, 3, 0, 3, -4},
                     .weights = {1, 1, 1, 1, 0}}; /* sample 4: padding, labels never read */
    uint64_t state = 4242u;
    test_random_fill(c.logits, N * K, -3.0, 3.0, &state);
    c.logits[0 * K + 2] = 6.0; /* sample 0 predicts its second label */
    dt_tensor *logits = test_tensor(b, N, K, 1, 1, c.logits);
    dt_tensor *dlogits = test_tensor(b, N, K, 1, 1, NULL);
    const double lams[4] = {1.0, 0.7, 0.5, 0.2}, epss[4] = {0.1, 0.0, 0.25, 1.0};
    for (int t = 0; t < 4; t++) {
        c.lam = lams[t], c.eps = epss[t];
        dt_loss_targets targets = {.labels = c.labels,
                                   .weights = c.weights,
                                   .mix_labels = t == 0 ? NULL : c.second,
                                   .mix_lambda = (float)c.lam,
                                   .label_smoothing = (float)c.eps};
        double stats[DT_LOSS_STATS], discard[DT_LOSS_STATS];
        int32_t predictions[N];
        const float grad_scale = 0.5f;
        CHECK(dt_backend_loss_stats_read(b, discard, 1, &err) == 0);
        CHECK_MSG(dt_backend_softmax_cross_entropy_targets(b, logits, &targets, dlogits, grad_scale,
                                                           predictions, &err) == 0,
                  "%s", err.message);
        CHECK(dt_backend_loss_stats_read(b, stats, 1, &err) == 0);
        CHECK_CLOSE(stats[DT_LOSS_SUM], reference_target_loss(&c), 1e-6, 1e-9);
        CHECK_CLOSE(stats[DT_LOSS_COUNT], 4.0, 0.0, 0.0);
        /* accuracy: argmax == the label of larger weight (the first at lam 0.5) */
        int correct = 0;
        for (int i = 0; i < 4; i++)
            correct += predictions[i] == (c.lam >= 0.5 || t == 0 ? c.labels[i] : c.second[i]);
        CHECK_CLOSE(stats[DT_LOSS_CORRECT], (double)correct, 0.0, 0.0);
        CHECK_INT_EQ(predictions[0], 2);
        double got[N * K], fd[N * K];
        test_tensor_read(b, dlogits, got, N * K);
        for (int i = 0; i < N * K; i++)
            fd[i] = grad_scale *
                    test_finite_difference(c.logits, (size_t)i, 1e-5, reference_target_loss, &c);
        CHECK_ARRAY_CLOSE(t == 0 ? "dlogits, smoothed" : "dlogits, mixed", got, fd, N * K, 1e-4,
                          1e-6);
        for (int j = 0; j < K; j++) CHECK(got[4 * K + j] == 0.0);
    }

    /* a counted sample's second label is checked like its first; lambda and eps are checked */
    int32_t bad_second[N] = {2, 3, 0, 5, 0};
    dt_loss_targets bad = {
        .labels = c.labels, .weights = c.weights, .mix_labels = bad_second, .mix_lambda = 0.5f};
    CHECK(dt_backend_softmax_cross_entropy_targets(b, logits, &bad, NULL, 1.0f, NULL, &err) == -1);
    CHECK(strstr(err.message, "second label 5") != NULL);
    bad.mix_labels = c.second;
    bad.mix_lambda = 1.5f;
    CHECK(dt_backend_softmax_cross_entropy_targets(b, logits, &bad, NULL, 1.0f, NULL, &err) == -1);
    CHECK(strstr(err.message, "lambda") != NULL);
    bad.mix_lambda = 0.5f;
    bad.label_smoothing = NAN;
    CHECK(dt_backend_softmax_cross_entropy_targets(b, logits, &bad, NULL, 1.0f, NULL, &err) == -1);
    CHECK(strstr(err.message, "smoothing") != NULL);
    double discard[DT_LOSS_STATS];
    CHECK(dt_backend_loss_stats_read(b, discard, 1, &err) == 0);
    dt_backend_tensor_destroy(b, logits);
    dt_backend_tensor_destroy(b, dlogits);
}

void loss_check(dt_backend *b, const backend_op_case *oc) {
    (void)oc;
    dt_error err = {0};
    loss_case c = {.labels = {0, 3, 2, 1, 7}, .weights = {1, 1, 1, 1, 0}};
    uint64_t state = 31337u;
    test_random_fill(c.logits, N * K, -3.0, 3.0, &state);
    c.logits[1 * K + 2] = 5.0; /* sample 1 predicts class 2 */

    dt_tensor *logits = test_tensor(b, N, K, 1, 1, c.logits);
    dt_tensor *dlogits = test_tensor(b, N, K, 1, 1, NULL);
    double stats[DT_LOSS_STATS];
    int32_t predictions[N];
    const float grad_scale = 0.25f;
    CHECK_MSG(loss_call(b, logits, c.labels, c.weights, dlogits, grad_scale, predictions, stats,
                        &err) == 0,
              "%s", err.message);
    /* sample 4 has weight 0 and an out-of-range label: it is padding and contributes nothing */
    const double loss = stats[DT_LOSS_SUM];
    CHECK_CLOSE(loss, reference_loss(&c), 1e-6, 1e-9);
    int correct = 0;
    for (int i = 0; i < N; i++) {
        int best = 0;
        for (int j = 1; j < K; j++)
            if (c.logits[i * K + j] > c.logits[i * K + best]) best = j;
        CHECK_INT_EQ(predictions[i], best);
        correct += c.weights[i] != 0.0f && best == c.labels[i];
    }
    CHECK_INT_EQ(predictions[1], 2);
    CHECK_CLOSE(stats[DT_LOSS_CORRECT], (double)correct, 0.0, 0.0);
    CHECK_CLOSE(stats[DT_LOSS_COUNT], 4.0, 0.0, 0.0);
    CHECK_CLOSE(stats[DT_LOSS_NONFINITE], 0.0, 0.0, 0.0);

    /* statistics add up over calls until read with reset */
    CHECK(dt_backend_softmax_cross_entropy(b, logits, c.labels, c.weights, NULL, 1.0f, NULL,
                                           &err) == 0);
    CHECK(dt_backend_softmax_cross_entropy(b, logits, c.labels, c.weights, NULL, 1.0f, NULL,
                                           &err) == 0);
    double two[DT_LOSS_STATS], after[DT_LOSS_STATS];
    CHECK(dt_backend_loss_stats_read(b, two, 0, &err) == 0);
    CHECK_CLOSE(two[DT_LOSS_SUM], 2.0 * loss, 1e-12, 0.0);
    CHECK_CLOSE(two[DT_LOSS_COUNT], 8.0, 0.0, 0.0);
    CHECK(dt_backend_loss_stats_read(b, after, 1, &err) == 0); /* not reset by the first read */
    CHECK_CLOSE(after[DT_LOSS_COUNT], 8.0, 0.0, 0.0);
    CHECK(dt_backend_loss_stats_read(b, after, 0, &err) == 0);
    CHECK_CLOSE(after[DT_LOSS_COUNT], 0.0, 0.0, 0.0);

    double got[N * K], fd[N * K];
    test_tensor_read(b, dlogits, got, N * K);
    for (int i = 0; i < N * K; i++)
        fd[i] = grad_scale * test_finite_difference(c.logits, (size_t)i, 1e-5, reference_loss, &c);
    CHECK_ARRAY_CLOSE("dlogits", got, fd, N * K, 1e-4, 1e-6);
    for (int j = 0; j < K; j++) CHECK(got[4 * K + j] == 0.0); /* padding sample */

    /* without dlogits and predictions: loss only */
    CHECK(loss_call(b, logits, c.labels, c.weights, NULL, 1.0f, NULL, stats, &err) == 0);
    CHECK_CLOSE(stats[DT_LOSS_SUM], loss, 0.0, 0.0);

    /* a non-finite logit of a counted sample is counted as such; a padding one is not */
    double with_nan[N * K];
    memcpy(with_nan, c.logits, sizeof with_nan);
    with_nan[2 * K + 1] = NAN;
    with_nan[4 * K + 1] = INFINITY;
    dt_tensor *nan_logits = test_tensor(b, N, K, 1, 1, with_nan);
    CHECK(loss_call(b, nan_logits, c.labels, c.weights, NULL, 1.0f, NULL, stats, &err) == 0);
    CHECK_CLOSE(stats[DT_LOSS_NONFINITE], 1.0, 0.0, 0.0);
    CHECK(!isfinite(stats[DT_LOSS_SUM]));
    dt_backend_tensor_destroy(b, nan_logits);

    /* huge logits: log-sum-exp stays finite. loss = log(1 + e^-10) for the right class */
    double huge[2 * K] = {1000, 990, -1000, 0, 0, 1e4, 0, 0};
    int32_t huge_labels[2] = {0, 1};
    float ones[2] = {1, 1};
    dt_tensor *big = test_tensor(b, 2, K, 1, 1, huge);
    dt_tensor *big_grad = test_tensor(b, 2, K, 1, 1, NULL);
    CHECK(loss_call(b, big, huge_labels, ones, big_grad, 1.0f, predictions, stats, &err) == 0);
    CHECK_CLOSE(stats[DT_LOSS_SUM], log1p(exp(-10.0)), 1e-6, 1e-9);
    double big_got[2 * K];
    test_tensor_read(b, big_grad, big_got, 2 * K);
    for (int i = 0; i < 2 * K; i++) CHECK(isfinite(big_got[i]));
    CHECK_CLOSE(big_got[1], 1.0 / (1.0 + exp(10.0)), 1e-5, 1e-9);

    /* a real (weighted) sample with an out-of-range label is an error */
    int32_t bad_labels[N] = {0, 3, 2, 4, 0};
    CHECK(loss_call(b, logits, bad_labels, c.weights, NULL, 1.0f, NULL, stats, &err) == -1);
    CHECK(strstr(err.message, "label 4") != NULL);

    /* logits with 16 classes are stored blocked; same results as the reference */
    double wide[2 * 16];
    test_random_fill(wide, 2 * 16, -2.0, 2.0, &state);
    int32_t wide_labels[2] = {3, 15};
    dt_tensor *wide_logits = test_tensor(b, 2, 16, 1, 1, wide);
    CHECK(loss_call(b, wide_logits, wide_labels, ones, NULL, 1.0f, predictions, stats, &err) == 0);
    double want = 0.0;
    for (int i = 0; i < 2; i++) {
        double sum = 0.0;
        for (int j = 0; j < 16; j++) sum += exp(wide[i * 16 + j]);
        want += log(sum) - wide[i * 16 + wide_labels[i]];
    }
    CHECK_CLOSE(stats[DT_LOSS_SUM], want, 1e-6, 1e-9);

    dt_backend_tensor_destroy(b, logits);
    dt_backend_tensor_destroy(b, dlogits);
    dt_backend_tensor_destroy(b, big);
    dt_backend_tensor_destroy(b, big_grad);
    dt_backend_tensor_destroy(b, wide_logits);
}

/* ---- against PyTorch: tests/reference/loss_targets.safetensors ---- */

enum { MAX_N = 16, MAX_K = 16 };

/* The tensor case.name as doubles (count values), or 0 when missing or of another size. */
static int fixture_values(const dt_safetensors *st, const char *c, const char *name, double *out,
                          size_t count) {
    char full[96];
    snprintf(full, sizeof full, "%s.%s", c, name);
    const dt_st_tensor *t = dt_safetensors_find(st, full);
    if (!t || dt_st_tensor_element_count(t) != count) {
        CHECK_MSG(0, "fixture: %s missing or not %zu values", full, count);
        return 0;
    }
    for (size_t i = 0; i < count; i++) {
        const uint8_t *p = t->data + i * dt_st_dtype_size(t->dtype);
        if (t->dtype == DT_ST_F64) {
            memcpy(&out[i], p, sizeof(double));
        } else if (t->dtype == DT_ST_F32) {
            float v;
            memcpy(&v, p, sizeof v);
            out[i] = v;
        } else if (t->dtype == DT_ST_I64) {
            int64_t v;
            memcpy(&v, p, sizeof v);
            out[i] = (double)v;
        } else {
            CHECK_MSG(0, "fixture: %s has dtype %s", full, dt_st_dtype_name(t->dtype));
            return 0;
        }
    }
    return 1;
}

/* tests/reference/loss_targets.safetensors into st; 0, or -1 after a failed check */
static int open_fixture(dt_safetensors *st) {
    const char *src = getenv("DTRAIN_SOURCE_DIR");
    char path[4096];
    snprintf(path, sizeof path, "%s/tests/reference/loss_targets.safetensors", src ? src : ".");
    dt_error err = {0};
    if (dt_safetensors_read(path, st, &err) == 0) return 0;
    CHECK_MSG(0, "fixture: %s (is DTRAIN_SOURCE_DIR set?)", err.message);
    return -1;
}

/* The fixture lists five cases, those of the rows (params: their names, comma-separated), so
 * that none goes unchecked. */
void loss_check_torch_cases(dt_backend *b, const backend_op_case *oc) {
    (void)b;
    dt_safetensors st;
    if (open_fixture(&st) != 0) return;
    const char *cases = dt_safetensors_metadata_value(&st, "cases");
    CHECK(cases != NULL);
    CHECK_STR_EQ(cases ? cases : "", (const char *)oc->params);
    char list[256];
    snprintf(list, sizeof list, "%s", cases ? cases : "");
    int n_cases = 0;
    for (char *save = NULL, *c = strtok_r(list, ",", &save); c; c = strtok_r(NULL, ",", &save))
        n_cases++;
    CHECK_INT_EQ(n_cases, 5);
    dt_safetensors_free(&st);
}

/* One fixture case through softmax_cross_entropy_targets: loss, dlogits and correct count within
 * 1e-6 of torch's float64; prints the errors beside torch's own float32 ones. */
static void run_case(dt_backend *b, const dt_safetensors *st, const char *c) {
    char full[96];
    snprintf(full, sizeof full, "%s.logits", c);
    const dt_st_tensor *shape = dt_safetensors_find(st, full);
    CHECK_MSG(shape && shape->ndim == 2, "fixture: %s", full);
    if (!shape || shape->ndim != 2) return;
    const int n = (int)shape->shape[0], k = (int)shape->shape[1];
    CHECK(n <= MAX_N && k <= MAX_K);
    if (n > MAX_N || k > MAX_K) return;
    double logits[MAX_N * MAX_K], labels_d[MAX_N], second_d[MAX_N], weights_d[MAX_N], params[2];
    double loss, correct, dlogits[MAX_N * MAX_K];
    if (!fixture_values(st, c, "logits", logits, (size_t)(n * k)) ||
        !fixture_values(st, c, "labels", labels_d, (size_t)n) ||
        !fixture_values(st, c, "second", second_d, (size_t)n) ||
        !fixture_values(st, c, "weights", weights_d, (size_t)n) ||
        !fixture_values(st, c, "params", params, 2) || !fixture_values(st, c, "loss", &loss, 1) ||
        !fixture_values(st, c, "correct", &correct, 1) ||
        !fixture_values(st, c, "dlogits", dlogits, (size_t)(n * k)))
        return;
    int32_t labels[MAX_N], second[MAX_N];
    float weights[MAX_N];
    for (int i = 0; i < n; i++) {
        labels[i] = (int32_t)labels_d[i], second[i] = (int32_t)second_d[i];
        weights[i] = (float)weights_d[i];
    }
    const int mixed = params[1] != 1.0;
    dt_loss_targets targets = {.labels = labels,
                               .weights = weights,
                               .mix_labels = mixed ? second : NULL,
                               .mix_lambda = (float)params[1],
                               .label_smoothing = (float)params[0]};
    dt_tensor *x = test_tensor(b, n, k, 1, 1, logits), *dx = test_tensor(b, n, k, 1, 1, NULL);
    dt_error err = {0};
    double stats[DT_LOSS_STATS];
    CHECK(dt_backend_loss_stats_read(b, stats, 1, &err) == 0);
    CHECK_MSG(dt_backend_softmax_cross_entropy_targets(b, x, &targets, dx, 1.0f, NULL, &err) == 0,
              "%s: %s", c, err.message);
    CHECK(dt_backend_loss_stats_read(b, stats, 1, &err) == 0);
    double got[MAX_N * MAX_K];
    test_tensor_read(b, dx, got, (size_t)(n * k));
    /* eps and lambda reach the backend as float32 (0.1 is 1.5e-9 off): within the tolerance */
    double loss_error = fabs(stats[DT_LOSS_SUM] - loss) / fabs(loss);
    double grad_error = 0.0, scale = test_max_abs(dlogits, (size_t)(n * k));
    for (int i = 0; i < n * k; i++)
        if (fabs(got[i] - dlogits[i]) / scale > grad_error)
            grad_error = fabs(got[i] - dlogits[i]) / scale;
    CHECK_MSG(loss_error < 1e-6, "%s: loss %.9g, torch %.9g", c, stats[DT_LOSS_SUM], loss);
    CHECK_MSG(grad_error < 1e-6, "%s: dlogits off by %.3g of their largest", c, grad_error);
    CHECK_MSG(stats[DT_LOSS_CORRECT] == correct, "%s: correct %g, torch %g", c,
              stats[DT_LOSS_CORRECT], correct);
    double counted = 0.0;
    for (int i = 0; i < n; i++) counted += weights[i];
    CHECK(stats[DT_LOSS_COUNT] == counted);
    /* torch's own float32 error, for scale */
    double loss32, grad32[MAX_N * MAX_K], loss32_error = 0.0, grad32_error = 0.0;
    if (fixture_values(st, c, "torch_f32.loss", &loss32, 1) &&
        fixture_values(st, c, "torch_f32.dlogits", grad32, (size_t)(n * k))) {
        loss32_error = fabs(loss32 - loss) / fabs(loss);
        for (int i = 0; i < n * k; i++)
            if (fabs(grad32[i] - dlogits[i]) / scale > grad32_error)
                grad32_error = fabs(grad32[i] - dlogits[i]) / scale;
    }
    printf("  vs torch float64: loss relative error %.3g, dlogits %.3g of the largest (torch "
           "float32: %.3g, %.3g)\n",
           loss_error, grad_error, loss32_error, grad32_error);
    dt_backend_tensor_destroy(b, x);
    dt_backend_tensor_destroy(b, dx);
}

/* The row's fixture case (params: its name). */
void loss_check_torch(dt_backend *b, const backend_op_case *oc) {
    dt_safetensors st;
    if (open_fixture(&st) != 0) return;
    run_case(b, &st, oc->params);
    dt_safetensors_free(&st);
}
