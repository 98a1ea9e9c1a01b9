/* Confusion matrix, precision/recall/F1 and the classification_report text against sklearn's
 * output on the same predictions (tests/results/class_report_cases.txt, written by
 * tests/results/make_class_report_fixture.py), plus the softmax/loss of dt_predictions. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "dtrain/classify.h"
#include "process.h"

/* The next line of *cursor (without its newline), advancing it; NULL at the end. */
static char *next_line(char **cursor) {
    char *line = *cursor;
    if (!line || !*line) return NULL;
    char *nl = strchr(line, '\n');
    if (nl) {
        *nl = '\0';
        *cursor = nl + 1;
    } else {
        *cursor = line + strlen(line);
    }
    return line;
}

static int read_ints(const char *line, const char *prefix, int32_t *out, int n) {
    size_t len = strlen(prefix);
    if (strncmp(line, prefix, len) != 0) return -1;
    const char *p = line + len;
    for (int i = 0; i < n; i++) {
        char *end;
        out[i] = (int32_t)strtol(p, &end, 10);
        if (end == p) return -1;
        p = end;
    }
    return 0;
}

/* "report L" / "confusion L" then L lines joined with '\n' into out. */
static int read_block(char **cursor, const char *word, dt_text *out) {
    char *head = next_line(cursor);
    int lines = 0;
    if (!head || sscanf(head, "%*s %d", &lines) != 1 || strncmp(head, word, strlen(word)) != 0)
        return -1;
    for (int i = 0; i < lines; i++) {
        char *line = next_line(cursor);
        if (!line) return -1;
        if (i) dt_text_append(out, "\n", 1);
        dt_text_append(out, line, strlen(line));
    }
    return 0;
}

static void test_against_sklearn(void) {
    char path[1024];
    snprintf(path, sizeof path, "%s/tests/results/class_report_cases.txt",
             getenv("DTRAIN_SOURCE_DIR") ? getenv("DTRAIN_SOURCE_DIR") : "..");
    char *text = dt_test_read_text(path);
    CHECK_MSG(text != NULL, "cannot read %s", path);
    if (!text) return;
    char *cursor = text, *line;
    int cases = 0;
    while ((line = next_line(&cursor))) {
        int k, n;
        if (line[0] == '#') continue;
        if (sscanf(line, "case %d %d", &k, &n) != 2) {
            CHECK_MSG(0, "bad fixture line '%s'", line);
            break;
        }
        char *names_line = next_line(&cursor);
        char **names = calloc((size_t)k, sizeof *names);
        int32_t *labels = calloc((size_t)n, sizeof *labels), *pred = calloc((size_t)n, 4);
        char *tab = names_line ? strchr(names_line, '\t') : NULL;
        for (int i = 0; i < k && tab; i++) {
            names[i] = tab + 1;
            tab = strchr(tab + 1, '\t');
            if (tab) *tab = '\0';
        }
        CHECK(read_ints(next_line(&cursor), "labels", labels, n) == 0);
        CHECK(read_ints(next_line(&cursor), "predicted", pred, n) == 0);
        dt_text want_report = {0}, want_csv = {0}, report = {0}, csv = {0};
        CHECK(read_block(&cursor, "report", &want_report) == 0);
        CHECK(read_block(&cursor, "confusion", &want_csv) == 0);
        dt_text_append(&want_csv, "\n", 1);

        dt_class_metrics m;
        dt_error err = {{0}, 0};
        CHECK(dt_class_metrics_compute(labels, pred, (size_t)n, k, &m, &err) == 0);
        dt_class_report_text(&m, names, 4, &report);
        dt_confusion_csv(&m, names, &csv);
        CHECK_MSG(report.data && strcmp(report.data, want_report.data) == 0,
                  "case %d report:\n%s\nsklearn:\n%s", cases, report.data, want_report.data);
        CHECK_MSG(csv.data && strcmp(csv.data, want_csv.data) == 0,
                  "case %d confusion:\n%s\nsklearn:\n%s", cases, csv.data, want_csv.data);
        long sum = 0;
        for (int i = 0; i < k * k; i++) sum += m.confusion[i];
        CHECK_INT_EQ(sum, n);
        dt_class_metrics_free(&m);
        free(want_report.data);
        free(want_csv.data);
        free(report.data);
        free(csv.data);
        free(names);
        free(labels);
        free(pred);
        cases++;
    }
    CHECK_INT_EQ(cases, 4);
    free(text);
}

static void test_metrics_by_hand(void) {
    /* 3 classes: true 0 0 0 1 1 2, predicted 0 0 1 1 2 2 */
    int32_t y[] = {0, 0, 0, 1, 1, 2}, p[] = {0, 0, 1, 1, 2, 2};
    dt_class_metrics m;
    dt_error err = {{0}, 0};
    CHECK(dt_class_metrics_compute(y, p, 6, 3, &m, &err) == 0);
    CHECK_INT_EQ(m.confusion[0 * 3 + 1], 1);
    CHECK_INT_EQ(m.confusion[1 * 3 + 2], 1);
    CHECK_INT_EQ(m.correct, 4);
    CHECK_CLOSE(m.precision[1], 0.5, 0, 1e-15);
    CHECK_CLOSE(m.recall[0], 2.0 / 3, 0, 1e-15);
    CHECK_CLOSE(m.f1[2], 2.0 / 3, 0, 1e-15);
    CHECK_CLOSE(m.accuracy, 4.0 / 6, 0, 1e-15);
    dt_class_metrics_free(&m);
    int32_t bad[] = {3};
    CHECK(dt_class_metrics_compute(bad, bad, 1, 3, &m, &err) != 0);
    CHECK(strstr(err.message, "outside") != NULL);
}

static void test_predictions(void) {
    dt_predictions p;
    dt_error err = {{0}, 0};
    CHECK(dt_predictions_init(&p, 3, 2, &err) == 0);
    float logits[3] = {1.0f, 3.0f, 3.0f}; /* tie: the first maximum wins */
    CHECK(dt_predictions_add(&p, 7, 0, logits, &err) == 0);
    double z = exp(1.0) + 2 * exp(3.0);
    CHECK_INT_EQ(p.predicted[0], 1);
    CHECK_CLOSE(p.probabilities[0], exp(1.0) / z, 1e-6, 0);
    CHECK_CLOSE(p.probabilities[1], exp(3.0) / z, 1e-6, 0);
    CHECK_CLOSE(p.loss[0], -log(exp(1.0) / z), 1e-12, 0);
    float big[3] = {1000.0f, 0.0f, -1000.0f}; /* no overflow */
    CHECK(dt_predictions_add(&p, 8, 2, big, &err) == 0);
    CHECK_CLOSE(p.probabilities[3], 1.0, 0, 1e-7);
    CHECK_CLOSE(p.loss[1], 2000.0, 1e-9, 0);
    CHECK(dt_predictions_add(&p, 9, 0, big, &err) != 0); /* capacity 2 */
    dt_predictions_free(&p);
}

int main(void) {
    test_against_sklearn();
    test_metrics_by_hand();
    test_predictions();
    return dt_test_summary("class_report");
}
