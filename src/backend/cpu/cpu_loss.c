/* Softmax cross-entropy of the CPU backend: per-sample log-sum-exp in double precision over the
 * logits (n, k, 1, 1), i.e. the plain [n][k] matrix, against the targets of dt_loss_targets
 * (hard labels, optionally mixed with second labels and label-smoothed), with per-sample
 * weights, argmax predictions and the optional logits gradient; the loss statistics it adds up,
 * read at log time. The arithmetic is the CUDA kernel's (src/backend/cuda/cuda_math.h), in the
 * same order, so that the two agree bit for bit on the same float logits. */
#include "cpu_internal.h"

#include <math.h>

int cpu_softmax_cross_entropy(void *ctx, const dt_tensor *logits, const dt_loss_targets *targets,
                              dt_tensor *dlogits, float grad_scale, int32_t *predictions,
                              dt_error *err) {
    cpu_ctx *cpu = ctx;
    if (!logits || logits->h != 1 || logits->w != 1)
        return dt_fail(err, "softmax_cross_entropy: logits must be (n, k, 1, 1)");
    if (dlogits && cpu_tensor_same_shape(logits, dlogits, "softmax_cross_entropy", err) != 0)
        return -1;
    const int n = logits->n, k = logits->c;
    const int32_t *labels = targets->labels, *mix_labels = targets->mix_labels;
    const float *weights = targets->weights;
    if (dt_backend_check_loss_labels(targets, n, k, err)) return -1;
    const double mix = mix_labels ? (double)targets->mix_lambda : 1.0;
    const double smoothing = targets->label_smoothing;
    double total = 0.0, correct = 0.0, count = 0.0, nonfinite = 0.0;
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
        const int a = labels[i], b = mix_labels ? mix_labels[i] : labels[i];
        if (w != 0.0) {
            const double lse = top + log_denominator;
            double loss = lse - (double)z[a];
            if (mix != 1.0) loss = mix * loss + (1.0 - mix) * (lse - (double)z[b]);
            if (smoothing != 0.0) {
                double uniform = 0.0;
                for (int j = 0; j < k; j++) uniform += lse - (double)z[j];
                loss = (1.0 - smoothing) * loss + smoothing / k * uniform;
            }
            total += w * loss;
            correct += w * (best == (mix >= 0.5 ? a : b));
            count += w;
            nonfinite += !isfinite(loss);
        }
        if (!dlogits) continue;
        float *g = dlogits->data + (size_t)i * k;
        if (w == 0.0) {
            for (int j = 0; j < k; j++) g[j] = 0.0f;
            continue;
        }
        const double scale = (double)grad_scale * w;
        for (int j = 0; j < k; j++) {
            double softmax = exp((double)z[j] - top - log_denominator);
            double target =
                (1.0 - smoothing) * (mix * (j == a) + (1.0 - mix) * (j == b)) + smoothing / k;
            g[j] = (float)(scale * (softmax - target));
        }
    }
    double *stats = cpu->loss_stats;
    stats[DT_LOSS_SUM] += total;
    stats[DT_LOSS_CORRECT] += correct;
    stats[DT_LOSS_COUNT] += count;
    stats[DT_LOSS_NONFINITE] += nonfinite;
    return 0;
}

int cpu_loss_stats_read(void *ctx, double out[DT_LOSS_STATS], int reset, dt_error *err) {
    cpu_ctx *cpu = ctx;
    (void)err;
    for (int i = 0; i < DT_LOSS_STATS; i++) {
        out[i] = cpu->loss_stats[i];
        if (reset) cpu->loss_stats[i] = 0.0;
    }
    return 0;
}
