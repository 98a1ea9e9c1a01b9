/* CPU backend softmax cross-entropy: weighted loss sum and argmax predictions against a
 * double-precision reference, the logits gradient against central finite differences of
 * grad_scale * weighted loss, stability with huge logits, and label checking. */
#include <stdlib.h>
#include <string.h>

#include "test_backend_common.h"

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

int main(void) {
    dt_backend b = test_backend_open();
    dt_error err = {0};
    loss_case c = {.labels = {0, 3, 2, 1, 7}, .weights = {1, 1, 1, 1, 0}};
    uint64_t state = 31337u;
    test_random_fill(c.logits, N * K, -3.0, 3.0, &state);
    c.logits[1 * K + 2] = 5.0; /* sample 1 predicts class 2 */

    dt_tensor *logits = test_tensor(&b, N, K, 1, 1, c.logits);
    dt_tensor *dlogits = test_tensor(&b, N, K, 1, 1, NULL);
    double loss = 0.0;
    int32_t predictions[N];
    const float grad_scale = 0.25f;
    CHECK_MSG(b.ops->softmax_cross_entropy(b.ctx, logits, c.labels, c.weights, &loss, predictions,
                                           dlogits, grad_scale, &err) == 0,
              "%s", err.message);
    /* sample 4 has weight 0 and an out-of-range label: it is padding and contributes nothing */
    CHECK_CLOSE(loss, reference_loss(&c), 1e-6, 1e-9);
    for (int i = 0; i < N; i++) {
        int best = 0;
        for (int j = 1; j < K; j++)
            if (c.logits[i * K + j] > c.logits[i * K + best]) best = j;
        CHECK_INT_EQ(predictions[i], best);
    }
    CHECK_INT_EQ(predictions[1], 2);

    double got[N * K], fd[N * K];
    test_tensor_read(&b, dlogits, got, N * K);
    for (int i = 0; i < N * K; i++)
        fd[i] = grad_scale * test_finite_difference(c.logits, (size_t)i, 1e-5, reference_loss, &c);
    CHECK_ARRAY_CLOSE("dlogits", got, fd, N * K, 1e-4, 1e-6);
    for (int j = 0; j < K; j++) CHECK(got[4 * K + j] == 0.0); /* padding sample */

    /* without dlogits and predictions: loss only */
    double loss_only = 0.0;
    CHECK(b.ops->softmax_cross_entropy(b.ctx, logits, c.labels, c.weights, &loss_only, NULL, NULL,
                                       1.0f, &err) == 0);
    CHECK_CLOSE(loss_only, loss, 0.0, 0.0);

    /* huge logits: log-sum-exp stays finite. loss = log(1 + e^-10) for the right class */
    double huge[2 * K] = {1000, 990, -1000, 0, 0, 1e4, 0, 0};
    int32_t huge_labels[2] = {0, 1};
    float ones[2] = {1, 1};
    dt_tensor *big = test_tensor(&b, 2, K, 1, 1, huge);
    dt_tensor *big_grad = test_tensor(&b, 2, K, 1, 1, NULL);
    CHECK(b.ops->softmax_cross_entropy(b.ctx, big, huge_labels, ones, &loss, predictions, big_grad,
                                       1.0f, &err) == 0);
    CHECK_CLOSE(loss, log1p(exp(-10.0)), 1e-6, 1e-9);
    double big_got[2 * K];
    test_tensor_read(&b, big_grad, big_got, 2 * K);
    for (int i = 0; i < 2 * K; i++) CHECK(isfinite(big_got[i]));
    CHECK_CLOSE(big_got[1], 1.0 / (1.0 + exp(10.0)), 1e-5, 1e-9);

    /* a real (weighted) sample with an out-of-range label is an error */
    int32_t bad_labels[N] = {0, 3, 2, 4, 0};
    CHECK(b.ops->softmax_cross_entropy(b.ctx, logits, bad_labels, c.weights, &loss, NULL, NULL,
                                       1.0f, &err) == -1);
    CHECK(strstr(err.message, "label 4") != NULL);

    /* logits with 16 classes are stored blocked; same results as the reference */
    double wide[2 * 16];
    test_random_fill(wide, 2 * 16, -2.0, 2.0, &state);
    int32_t wide_labels[2] = {3, 15};
    dt_tensor *wide_logits = test_tensor(&b, 2, 16, 1, 1, wide);
    CHECK(b.ops->softmax_cross_entropy(b.ctx, wide_logits, wide_labels, ones, &loss, predictions,
                                       NULL, 1.0f, &err) == 0);
    double want = 0.0;
    for (int i = 0; i < 2; i++) {
        double sum = 0.0;
        for (int j = 0; j < 16; j++) sum += exp(wide[i * 16 + j]);
        want += log(sum) - wide[i * 16 + wide_labels[i]];
    }
    CHECK_CLOSE(loss, want, 1e-6, 1e-9);

    b.ops->tensor_destroy(b.ctx, logits);
    b.ops->tensor_destroy(b.ctx, dlogits);
    b.ops->tensor_destroy(b.ctx, big);
    b.ops->tensor_destroy(b.ctx, big_grad);
    b.ops->tensor_destroy(b.ctx, wide_logits);
    b.ops->destroy(b.ctx);
    return dt_test_summary("backend_loss");
}
