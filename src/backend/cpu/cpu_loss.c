/* Softmax cross-entropy of the CPU backend: per-sample log-sum-exp in double precision over the
 * logits (n, k, 1, 1), i.e. the plain [n][k] matrix, with per-sample weights, argmax
 * predictions and the optional logits gradient. */
#include "cpu_internal.h"

#include <math.h>

int cpu_softmax_cross_entropy(void *ctx, const dt_tensor *logits, const int32_t *labels,
                              const float *weights, double *loss_sum, int32_t *predictions,
                              dt_tensor *dlogits, float grad_scale, dt_error *err) {
    (void)ctx;
    if (!logits || logits->h != 1 || logits->w != 1)
        return dt_fail(err, "softmax_cross_entropy: logits must be (n, k, 1, 1)");
    if (dlogits && cpu_tensor_same_shape(logits, dlogits, "softmax_cross_entropy", err) != 0)
        return -1;
    const int n = logits->n, k = logits->c;
    for (int i = 0; i < n; i++)
        if (weights[i] != 0.0f && (labels[i] < 0 || labels[i] >= k))
            return dt_fail(err, "softmax_cross_entropy: sample %d has label %d, outside [0, %d)", i,
                           (int)labels[i], k);
    double total = 0.0;
    for (int i = 0; i < n; i++) {
        const float *z = logits->data + (size_t)i * k;
        int best = 0;
        for (int j = 1; j < k; j++)
            if (z[j] > z[best]) best = j;
        if (predictions) predictions[i] = best;
        const double top = z[best];
        double denominator = 0.0;
        for (int j = 0; j < k; j++) denominator += exp((double)z[j] - top);
        const double log_denominator = log(denominator);
        const double w = weights[i];
        if (w != 0.0) total += w * (top + log_denominator - (double)z[labels[i]]);
        if (!dlogits) continue;
        float *g = dlogits->data + (size_t)i * k;
        if (w == 0.0) {
            for (int j = 0; j < k; j++) g[j] = 0.0f;
            continue;
        }
        const double scale = (double)grad_scale * w;
        for (int j = 0; j < k; j++) {
            double softmax = exp((double)z[j] - top - log_denominator);
            g[j] = (float)(scale * (softmax - (j == labels[i] ? 1.0 : 0.0)));
        }
    }
    *loss_sum = total;
    return 0;
}
