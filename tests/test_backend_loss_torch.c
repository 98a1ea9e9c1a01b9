/* The backend's softmax cross-entropy with label smoothing and mixup/cutmix targets against
 * PyTorch: tests/reference/loss_targets.safetensors (written by make_loss_fixture.py) holds,
 * per case, float32 logits, labels, partner labels, weights, eps and lambda, and torch's loss
 * sum, logits gradient (float64, CrossEntropyLoss(label_smoothing) or timm's mixup_target
 * with SoftTargetCrossEntropy) and the expected correct count. Prints the largest errors. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dtrain/safetensors.h"
#include "test_backend_common.h"

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

/* worst: dtrain's loss and dlogits errors, then torch float32's */
static void run_case(dt_backend *b, const dt_safetensors *st, const char *c, double worst[4]) {
    double *worst_loss = &worst[0], *worst_grad = &worst[1];
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
    double loss32, grad32[MAX_N * MAX_K];
    if (fixture_values(st, c, "torch_f32.loss", &loss32, 1) &&
        fixture_values(st, c, "torch_f32.dlogits", grad32, (size_t)(n * k))) {
        double e = fabs(loss32 - loss) / fabs(loss);
        if (e > worst[2]) worst[2] = e;
        for (int i = 0; i < n * k; i++)
            if (fabs(grad32[i] - dlogits[i]) / scale > worst[3])
                worst[3] = fabs(grad32[i] - dlogits[i]) / scale;
    }
    if (loss_error > *worst_loss) *worst_loss = loss_error;
    if (grad_error > *worst_grad) *worst_grad = grad_error;
    dt_backend_tensor_destroy(b, x);
    dt_backend_tensor_destroy(b, dx);
}

int main(int argc, char **argv) {
    dt_backend b = test_backend_open(argc, argv);
    const char *src = getenv("DTRAIN_SOURCE_DIR");
    char path[4096];
    snprintf(path, sizeof path, "%s/tests/reference/loss_targets.safetensors", src ? src : ".");
    dt_safetensors st;
    dt_error err = {0};
    if (dt_safetensors_read(path, &st, &err) != 0) {
        CHECK_MSG(0, "fixture: %s (is DTRAIN_SOURCE_DIR set?)", err.message);
        dt_backend_free(&b);
        return dt_test_summary("backend_loss_torch");
    }
    const char *cases = dt_safetensors_metadata_value(&st, "cases");
    CHECK(cases != NULL);
    char list[256];
    snprintf(list, sizeof list, "%s", cases ? cases : "");
    double worst[4] = {0.0, 0.0, 0.0, 0.0};
    int n_cases = 0;
    for (char *save = NULL, *c = strtok_r(list, ",", &save); c; c = strtok_r(NULL, ",", &save)) {
        run_case(&b, &st, c, worst);
        n_cases++;
    }
    CHECK_INT_EQ(n_cases, 5);
    printf("vs torch float64 over %d cases: loss relative error %.3g, dlogits %.3g of the largest "
           "(torch float32: %.3g, %.3g)\n",
           n_cases, worst[0], worst[1], worst[2], worst[3]);
    dt_safetensors_free(&st);
    dt_backend_free(&b);
    return dt_test_summary("backend_loss_torch");
}
