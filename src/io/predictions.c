/* Per-sample results of an evaluation: softmax probabilities, argmax and loss from the logits. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "dtrain/classify.h"

int dt_softmax(const float *logits, int n, float *out) {
    int best = 0;
    for (int i = 1; i < n; i++)
        if (logits[i] > logits[best]) best = i;
    double sum = 0;
    for (int i = 0; i < n; i++) sum += exp((double)logits[i] - (double)logits[best]);
    for (int i = 0; i < n; i++) out[i] = (float)(exp((double)logits[i] - logits[best]) / sum);
    return best;
}

int dt_predictions_init(dt_predictions *p, int n_classes, size_t capacity, dt_error *err) {
    memset(p, 0, sizeof *p);
    p->n_classes = n_classes;
    p->capacity = capacity ? capacity : 1;
    p->file_index = malloc(p->capacity * sizeof *p->file_index);
    p->label = malloc(p->capacity * sizeof *p->label);
    p->predicted = malloc(p->capacity * sizeof *p->predicted);
    p->probabilities = malloc(p->capacity * (size_t)n_classes * sizeof *p->probabilities);
    p->loss = malloc(p->capacity * sizeof *p->loss);
    if (!p->file_index || !p->label || !p->predicted || !p->probabilities || !p->loss) {
        dt_predictions_free(p);
        return dt_fail(err, "out of memory for %zu predictions", capacity);
    }
    return 0;
}

int dt_predictions_add(dt_predictions *p, uint32_t file_index, int32_t label, const float *logits,
                       dt_error *err) {
    if (p->n >= p->capacity) return dt_fail(err, "internal: more predictions than samples");
    if (label < 0 || label >= p->n_classes)
        return dt_fail(err, "internal: label %d outside [0, %d)", label, p->n_classes);
    size_t i = p->n++;
    int k = p->n_classes;
    p->file_index[i] = file_index;
    p->label[i] = label;
    p->predicted[i] = dt_softmax(logits, k, p->probabilities + i * (size_t)k);
    double max = logits[p->predicted[i]], sum = 0;
    for (int c = 0; c < k; c++) sum += exp((double)logits[c] - max);
    p->loss[i] = log(sum) - ((double)logits[label] - max);
    return 0;
}

void dt_predictions_free(dt_predictions *p) {
    free(p->file_index);
    free(p->label);
    free(p->predicted);
    free(p->probabilities);
    free(p->loss);
    memset(p, 0, sizeof *p);
}
