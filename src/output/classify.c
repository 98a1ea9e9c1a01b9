/* Evaluation results by class and by sample: the confusion matrix and per-class precision,
 * recall, F1 and support, with their two text forms (sklearn's classification_report layout and
 * the confusion_matrix.csv table); and each sample's softmax probabilities, argmax and loss from
 * the logits (at the end of this file). */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dtrain/classify.h"
#include "dtrain/durable.h"

int dt_class_metrics_compute(const int32_t *labels, const int32_t *predicted, size_t n,
                             int n_classes, dt_class_metrics *m, dt_error *err) {
    memset(m, 0, sizeof *m);
    size_t k = n_classes > 0 ? (size_t)n_classes : 1;
    m->n_classes = n_classes;
    m->confusion = calloc(k * k, sizeof *m->confusion);
    m->precision = calloc(k, sizeof *m->precision);
    m->recall = calloc(k, sizeof *m->recall);
    m->f1 = calloc(k, sizeof *m->f1);
    m->support = calloc(k, sizeof *m->support);
    if (!m->confusion || !m->precision || !m->recall || !m->f1 || !m->support) {
        dt_class_metrics_free(m);
        return dt_fail(err, "out of memory for a %d-class confusion matrix", n_classes);
    }
    for (size_t i = 0; i < n; i++) {
        if (labels[i] < 0 || labels[i] >= n_classes || predicted[i] < 0 ||
            predicted[i] >= n_classes) {
            dt_class_metrics_free(m);
            return dt_fail(err, "sample %zu: class %d or %d outside [0, %d)", i, labels[i],
                           predicted[i], n_classes);
        }
        m->confusion[(size_t)labels[i] * k + (size_t)predicted[i]]++;
    }
    m->total = (long)n;
    for (int c = 0; c < n_classes; c++) {
        long tp = m->confusion[(size_t)c * k + (size_t)c], row = 0, column = 0;
        for (int j = 0; j < n_classes; j++) {
            row += m->confusion[(size_t)c * k + (size_t)j];
            column += m->confusion[(size_t)j * k + (size_t)c];
        }
        long fp = column - tp, fn = row - tp;
        m->correct += tp;
        m->support[c] = row;
        m->precision[c] = column ? (double)tp / (double)column : 0.0;
        m->recall[c] = row ? (double)tp / (double)row : 0.0;
        m->f1[c] = (2 * tp + fp + fn) ? 2.0 * (double)tp / (double)(2 * tp + fp + fn) : 0.0;
    }
    m->accuracy = n ? (double)m->correct / (double)n : 0.0;
    /* as numpy's average: the sum, then one division */
    for (int c = 0; c < n_classes; c++) {
        double scores[3] = {m->precision[c], m->recall[c], m->f1[c]};
        for (int s = 0; s < 3; s++) {
            m->macro[s] += scores[s];
            m->weighted[s] += scores[s] * (double)m->support[c];
        }
    }
    for (int s = 0; s < 3; s++) {
        m->macro[s] = n_classes ? m->macro[s] / n_classes : 0.0;
        m->weighted[s] = n ? m->weighted[s] / (double)n : 0.0;
    }
    return 0;
}

void dt_class_metrics_free(dt_class_metrics *m) {
    free(m->confusion);
    free(m->precision);
    free(m->recall);
    free(m->f1);
    free(m->support);
    memset(m, 0, sizeof *m);
}

/* Python's "{:>W}" pads by code points: count UTF-8 lead bytes. */
static int display_width(const char *s) {
    int w = 0;
    for (; *s; s++) w += ((unsigned char)*s & 0xC0) != 0x80;
    return w;
}

static void append_right(dt_text *out, const char *s, int width) {
    for (int pad = width - display_width(s); pad > 0; pad--) dt_text_append(out, " ", 1);
    dt_text_append(out, s, strlen(s));
}

static void append_score_row(dt_text *out, const char *name, int width, const double scores[3],
                             long support, int digits) {
    append_right(out, name, width);
    dt_text_append(out, " ", 1);
    for (int s = 0; s < 3; s++) dt_text_printf(out, " %9.*f", digits, scores[s]);
    dt_text_printf(out, " %9ld\n", support);
}

void dt_class_report_text(const dt_class_metrics *m, char *const *names, int digits, dt_text *out) {
    int width = display_width("weighted avg");
    for (int c = 0; c < m->n_classes; c++)
        if (display_width(names[c]) > width) width = display_width(names[c]);
    if (digits > width) width = digits;
    append_right(out, "", width);
    dt_text_printf(out, "  %9s %9s %9s %9s\n\n", "precision", "recall", "f1-score", "support");
    for (int c = 0; c < m->n_classes; c++) {
        double scores[3] = {m->precision[c], m->recall[c], m->f1[c]};
        append_score_row(out, names[c], width, scores, m->support[c], digits);
    }
    dt_text_append(out, "\n", 1);
    append_right(out, "accuracy", width);
    dt_text_printf(out, "  %9s %9s %9.*f %9ld\n", "", "", digits, m->accuracy, m->total);
    append_score_row(out, "macro avg", width, m->macro, m->total, digits);
    append_score_row(out, "weighted avg", width, m->weighted, m->total, digits);
}

void dt_confusion_csv(const dt_class_metrics *m, char *const *names, dt_text *out) {
    size_t k = (size_t)m->n_classes;
    dt_text_append(out, "true\\pred", 9);
    for (size_t j = 0; j < k; j++) {
        dt_text_append(out, ",", 1);
        dt_text_append_csv_field(out, names[j]);
    }
    dt_text_append(out, "\n", 1);
    for (size_t i = 0; i < k; i++) {
        dt_text_append_csv_field(out, names[i]);
        for (size_t j = 0; j < k; j++) dt_text_printf(out, ",%ld", m->confusion[i * k + j]);
        dt_text_append(out, "\n", 1);
    }
}

int dt_write_file_atomic(const char *path, const char *text, size_t length, dt_error *err) {
    return dt_replace_file_durably(path, text, length, err);
}

/* Per-sample results of an evaluation: softmax probabilities, argmax and loss from the logits. */

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
