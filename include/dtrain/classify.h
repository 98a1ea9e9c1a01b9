/* Classification results of one evaluation: per-sample predictions and probabilities, and what is
 * computed from them (confusion matrix, per-class precision/recall/F1/support with accuracy and
 * macro/weighted averages as sklearn's classification_report computes them), and the files made
 * from them (confusion_matrix.csv, classification_report.txt, predictions.csv). */
#ifndef DTRAIN_CLASSIFY_H
#define DTRAIN_CLASSIFY_H

#include <stddef.h>
#include <stdint.h>

#include "dtrain/bytes.h"
#include "dtrain/error.h"

/* One evaluation's samples, in the order of the evaluated index list. */
typedef struct dt_predictions {
    int n_classes;
    size_t n, capacity;
    uint32_t *file_index; /* into the dataset's files */
    int32_t *label;
    int32_t *predicted;   /* argmax of the logits (first of equal maxima) */
    float *probabilities; /* n x n_classes, softmax of the logits */
    double *loss;         /* -log softmax[label], from the logits in double */
} dt_predictions;

int dt_predictions_init(dt_predictions *p, int n_classes, size_t capacity, dt_error *err);
/* Appends one sample from its logits (softmax, argmax and loss computed here). */
int dt_predictions_add(dt_predictions *p, uint32_t file_index, int32_t label, const float *logits,
                       dt_error *err);
void dt_predictions_free(dt_predictions *p);

/* Softmax of n logits into out (computed in double, max subtracted); returns the argmax (the
 * first of equal maxima). */
int dt_softmax(const float *logits, int n, float *out);

typedef struct dt_class_metrics {
    int n_classes;
    long *confusion; /* n_classes x n_classes, row = true class, column = predicted class */
    double *precision, *recall, *f1;
    long *support;
    long total, correct;
    double accuracy;
    double macro[3], weighted[3]; /* precision, recall, f1 */
} dt_class_metrics;

/* Counts and scores over n samples; labels and predictions must be in [0, n_classes). An
 * undefined precision or recall (no predictions of, or no samples in, a class) is 0, as sklearn's
 * default zero_division gives; F1 is 2tp / (2tp + fp + fn), 0 when that is 0/0. */
int dt_class_metrics_compute(const int32_t *labels, const int32_t *predicted, size_t n,
                             int n_classes, dt_class_metrics *m, dt_error *err);
void dt_class_metrics_free(dt_class_metrics *m);

/* sklearn's classification_report(y_true, y_pred, labels=range(K), target_names=names, digits)
 * text, byte for byte. */
void dt_class_report_text(const dt_class_metrics *m, char *const *names, int digits, dt_text *out);

/* "true\pred,<name>,...", then one row per true class; names quoted as CSV needs. */
void dt_confusion_csv(const dt_class_metrics *m, char *const *names, dt_text *out);

/* Writes text to path through path.tmp (fsynced) + rename + fsync of the folder
 * (dt_replace_file_durably), so readers never see a half-written file, nor a crash an empty one. */
int dt_write_file_atomic(const char *path, const char *text, size_t length, dt_error *err);

#endif
