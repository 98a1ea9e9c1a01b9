/* report.html's chart axes: ticks at round numbers (a 1, 2 or 5 step times a power of ten, from a
 * multiple of it), never at a quarter of the data's range (0.314, 0.628, 0.942); and the page of
 * an evaluation alone has no curves. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "dtrain/classify.h"
#include "dtrain/report.h"

/* The labels of the ticks of one class ("ytick" or "xtick") of the chart at index chart_index,
 * joined with spaces. */
static void tick_labels(const char *page, const char *kind, int chart_index, char *out,
                        size_t size) {
    out[0] = '\0';
    const char *chart = page;
    for (int i = 0; i <= chart_index && chart; i++) {
        chart = strstr(chart, "<svg");
        if (chart && i < chart_index) chart++;
    }
    if (!chart) return;
    const char *end = strstr(chart, "</svg>");
    char marker[32];
    snprintf(marker, sizeof marker, "class=\"%s\"", kind);
    for (const char *p = strstr(chart, marker); p && p < end; p = strstr(p + 1, marker)) {
        const char *text = strchr(p, '>') + 1, *close = strchr(text, '<');
        size_t used = strlen(out);
        snprintf(out + used, size - used, "%s%.*s", used ? " " : "", (int)(close - text), text);
    }
}

int main(void) {
    CHECK(dt_report_tick_step(1.256, 5) == 0.2);
    CHECK(dt_report_tick_step(564, 5) == 100);
    CHECK(dt_report_tick_step(3.7, 5) == 1);
    CHECK(dt_report_tick_step(0.031, 5) == 0.005);
    CHECK(dt_report_tick_step(1, 5) == 0.2);

    double train_step[] = {20, 40, 300, 564}, train_loss[] = {1.256, 0.9, 0.5, 0.31};
    double train_acc[] = {0.2, 0.5, 0.7, 0.81};
    double val_step[] = {282, 564}, val_loss[] = {0.6, 0.4}, val_acc[] = {0.72, 0.83};
    int32_t labels[] = {0, 1, 1, 0}, predicted[] = {0, 1, 0, 0};
    dt_class_metrics m;
    dt_error err;
    if (dt_class_metrics_compute(labels, predicted, 4, 2, &m, &err)) {
        fprintf(stderr, "%s\n", err.message);
        return 1;
    }
    char *names[] = {"cat", "dog"};
    long count[] = {2, 2};
    dt_report_input in = {.output_dir = "runs/x",
                          .data_root = "data/x",
                          .n_classes = 2,
                          .names = names,
                          .train_count = count,
                          .val_count = count,
                          .device = "cpu",
                          .ranks = 1,
                          .metrics = &m,
                          .train_loss = {train_step, train_loss, 4},
                          .train_acc = {train_step, train_acc, 4},
                          .val_loss_curve = {val_step, val_loss, 2},
                          .val_acc_curve = {val_step, val_acc, 2}};
    dt_text page = {0};
    dt_report_html(&in, &page);
    char labels_text[512];
    tick_labels(page.data, "ytick", 0, labels_text, sizeof labels_text);
    CHECK_STR_EQ(labels_text, "0 0.2 0.4 0.6 0.8 1 1.2 1.4");
    tick_labels(page.data, "xtick", 0, labels_text, sizeof labels_text);
    CHECK_STR_EQ(labels_text, "0 100 200 300 400 500 600");
    tick_labels(page.data, "ytick", 1, labels_text, sizeof labels_text);
    CHECK_STR_EQ(labels_text, "0 0.2 0.4 0.6 0.8 1");
    CHECK(!strstr(page.data, "0.314"));
    CHECK(strstr(page.data, "Validation accuracy"));
    free(page.data);

    /* an evaluation's page: the model, its hash and the split; no curves */
    in.model_path = "runs/x/best.safetensors";
    in.model_config_hash = "0123456789abcdef";
    in.split = "test";
    in.train_count = NULL;
    dt_text eval_page = {0};
    dt_report_html(&in, &eval_page);
    CHECK(strstr(eval_page.data, "<h1>dtrain evaluation: runs/x/best.safetensors</h1>"));
    CHECK(strstr(eval_page.data, "Test accuracy <span id=\"accuracy\">"));
    CHECK(strstr(eval_page.data, "<td>0123456789abcdef</td>"));
    CHECK(!strstr(eval_page.data, "<svg"));
    CHECK(!strstr(eval_page.data, "Validation"));
    free(eval_page.data);
    dt_class_metrics_free(&m);
    return dt_test_summary("test_report_axes");
}
