/* report.html: the page's text from the run's summary, curves, scores and image tiles. Inline
 * CSS and SVG only, so the file opens from disk with no network and no script. */
#include "dtrain/report.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

static void put(dt_text *out, const char *s) {
    dt_text_append(out, s, strlen(s));
}

void dt_html_escape(dt_text *out, const char *s) {
    for (; *s; s++) {
        switch (*s) {
        case '&':
            put(out, "&amp;");
            break;
        case '<':
            put(out, "&lt;");
            break;
        case '>':
            put(out, "&gt;");
            break;
        case '"':
            put(out, "&quot;");
            break;
        case '\'':
            put(out, "&#39;");
            break;
        default:
            dt_text_append(out, s, 1);
        }
    }
}

void dt_base64(dt_text *out, const uint8_t *bytes, size_t size) {
    static const char digits[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    for (size_t i = 0; i < size; i += 3) {
        uint32_t v = (uint32_t)bytes[i] << 16;
        if (i + 1 < size) v |= (uint32_t)bytes[i + 1] << 8;
        if (i + 2 < size) v |= bytes[i + 2];
        char quad[4] = {digits[v >> 18 & 63], digits[v >> 12 & 63],
                        i + 1 < size ? digits[v >> 6 & 63] : '=',
                        i + 2 < size ? digits[v & 63] : '='};
        dt_text_append(out, quad, 4);
    }
}

static const char page_style[] =
    "body{font-family:sans-serif;margin:24px;color:#222;background:#fff;max-width:1200px}"
    "h1{font-size:22px}h2{font-size:18px;margin-top:28px;border-bottom:1px solid #ccc}"
    "table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ccc;padding:3px 7px;"
    "text-align:right}th{background:#f3f3f3}td.name,th.name{text-align:left}"
    ".summary td{text-align:left}.cm td{min-width:34px;text-align:center}"
    ".curves{display:flex;gap:24px;flex-wrap:wrap}"
    ".grid{display:grid;grid-template-columns:repeat(3,220px);gap:12px}"
    "figure{margin:0;padding:6px;border:3px solid #2a9d3a;border-radius:4px;background:#fafafa}"
    "figure.wrong{border-color:#d62728}figcaption{font-size:13px;white-space:pre-wrap;"
    "overflow-wrap:anywhere}figure.wrong figcaption{color:#d62728;font-weight:bold}"
    "figure img{width:200px;height:200px;display:block;margin-bottom:4px}"
    "pre{background:#f6f6f6;padding:8px;font-size:12px;overflow:auto}"
    ".big{font-size:20px;font-weight:bold}";

static void summary_row(dt_text *out, const char *key, const char *value) {
    dt_text_printf(out, "<tr><th class=\"name\">%s</th><td>", key);
    dt_html_escape(out, value);
    put(out, "</td></tr>\n");
}

static void write_summary(dt_text *out, const dt_report_input *in) {
    char value[256];
    put(out, in->model_path ? "<h2>Evaluation</h2>\n" : "<h2>Run</h2>\n");
    put(out, "<table class=\"summary\">\n");
    if (in->model_path) {
        summary_row(out, "model", in->model_path);
        summary_row(out, "model config hash",
                    in->model_config_hash ? in->model_config_hash : "(not recorded in the file)");
        summary_row(out, "data", in->data_root);
        summary_row(out, "split", in->split ? in->split : "validation");
    }
    summary_row(out, "output", in->output_dir);
    if (!in->model_path) summary_row(out, "data root", in->data_root);
    if (in->epoch > 0) {
        snprintf(value, sizeof value, "epoch %d of %d, optimizer step %ld", in->epoch, in->epochs,
                 in->step);
        summary_row(out, "evaluated after", value);
    }
    if (in->arch) summary_row(out, "architecture", in->arch);
    if (in->augmentation) summary_row(out, "training augmentation", in->augmentation);
    if (in->optimizer) summary_row(out, "optimizer", in->optimizer);
    summary_row(out, "device", in->device);
    snprintf(value, sizeof value, "%d", in->ranks);
    summary_row(out, "ranks", value);
    snprintf(value, sizeof value, "%.1f s", in->elapsed_s);
    summary_row(out, "time", value);
    if (in->img_per_s > 0) {
        snprintf(value, sizeof value, "%.1f images/s (training, all ranks)", in->img_per_s);
        summary_row(out, "throughput", value);
    }
    put(out, "</table>\n");

    put(out, "<h3>Images per class</h3>\n<table>\n<tr><th class=\"name\">class</th>");
    if (in->train_count) put(out, "<th>train</th>");
    dt_text_printf(out, "<th>%s</th></tr>\n", in->split ? in->split : "validation");
    long train_total = 0, val_total = 0;
    for (int c = 0; c < in->n_classes; c++) {
        put(out, "<tr><td class=\"name\">");
        dt_html_escape(out, in->names[c]);
        put(out, "</td>");
        if (in->train_count) dt_text_printf(out, "<td>%ld</td>", in->train_count[c]);
        dt_text_printf(out, "<td>%ld</td></tr>\n", in->val_count[c]);
        train_total += in->train_count ? in->train_count[c] : 0;
        val_total += in->val_count[c];
    }
    put(out, "<tr><th class=\"name\">total</th>");
    if (in->train_count) dt_text_printf(out, "<th>%ld</th>", train_total);
    dt_text_printf(out, "<th>%ld</th></tr>\n</table>\n", val_total);

    dt_text_printf(out, "<h3>Skipped files (%zu)</h3>\n", in->n_skipped);
    if (in->n_skipped) {
        put(out, "<ul class=\"skipped\">\n");
        for (size_t i = 0; i < in->n_skipped; i++) {
            put(out, "<li>");
            dt_html_escape(out, in->skipped[i]);
            put(out, "</li>\n");
        }
        put(out, "</ul>\n");
    } else {
        put(out, "<p>none</p>\n");
    }
    put(out, "<details><summary>config.yaml</summary><pre>");
    dt_html_escape(out, in->config_yaml ? in->config_yaml : "");
    put(out, "</pre></details>\n");
}

/* ---- curves --------------------------------------------------------------------------------- */

static void series_range(const dt_report_series *s, double *x0, double *x1, double *y0,
                         double *y1) {
    for (size_t i = 0; i < s->n; i++) {
        if (!isfinite(s->value[i])) continue;
        if (s->step[i] < *x0) *x0 = s->step[i];
        if (s->step[i] > *x1) *x1 = s->step[i];
        if (s->value[i] < *y0) *y0 = s->value[i];
        if (s->value[i] > *y1) *y1 = s->value[i];
    }
}

static void polyline(dt_text *out, const dt_report_series *s, const char *colour, double x0,
                     double x1, double y0, double y1, int dots) {
    const double left = 58, right = 450, top = 20, bottom = 230;
    double sx = x1 > x0 ? (right - left) / (x1 - x0) : 0, sy = (bottom - top) / (y1 - y0);
    dt_text_printf(out, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"2\" points=\"",
                   colour);
    for (size_t i = 0; i < s->n; i++)
        if (isfinite(s->value[i]))
            dt_text_printf(out, "%.1f,%.1f ", left + (s->step[i] - x0) * sx,
                           bottom - (s->value[i] - y0) * sy);
    put(out, "\"/>\n");
    for (size_t i = 0; dots && i < s->n; i++)
        if (isfinite(s->value[i]))
            dt_text_printf(out, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3.5\" fill=\"%s\"/>\n",
                           left + (s->step[i] - x0) * sx, bottom - (s->value[i] - y0) * sy, colour);
}

double dt_report_tick_step(double span, int parts) {
    if (!(span > 0) || !isfinite(span) || parts < 1) return 1;
    double raw = span / parts, power = pow(10, floor(log10(raw))), f = raw / power;
    return (f < 1.5 ? 1 : f < 3 ? 2 : f < 7 ? 5 : 10) * power;
}

/* Widens [*lo, *hi] to whole multiples of a round step (about parts of them); returns the step. */
static double round_axis(double *lo, double *hi, int parts) {
    double step = dt_report_tick_step(*hi - *lo, parts);
    *lo = floor(*lo / step + 1e-9) * step;
    *hi = ceil(*hi / step - 1e-9) * step;
    if (*hi <= *lo) *hi = *lo + step;
    return step;
}

/* A tick value with as many decimals as its step needs (0.2 -> "0.4", 500 -> "1500"). */
static void tick_label(double value, double step, char *buf, size_t size) {
    int decimals = step >= 1 ? 0 : (int)ceil(-log10(step) - 1e-9);
    if (fabs(value) < step * 1e-6) value = 0; /* no "-0" */
    snprintf(buf, size, "%.*f", decimals, value);
    if (decimals > 0) { /* 1.0 -> 1, 0.50 -> 0.5 */
        size_t n = strlen(buf);
        while (n > 0 && buf[n - 1] == '0') buf[--n] = '\0';
        if (n > 0 && buf[n - 1] == '.') buf[--n] = '\0';
    }
}

static void chart(dt_text *out, const char *title, const dt_report_series *train,
                  const dt_report_series *val, const dt_report_series *ema, int is_accuracy) {
    double x0 = INFINITY, x1 = -INFINITY, y0 = INFINITY, y1 = -INFINITY;
    series_range(train, &x0, &x1, &y0, &y1);
    series_range(val, &x0, &x1, &y0, &y1);
    series_range(ema, &x0, &x1, &y0, &y1);
    if (!isfinite(x0)) x0 = 0, x1 = 1, y0 = 0, y1 = 1;
    if (is_accuracy) y0 = y0 > 0 ? 0 : y0, y1 = y1 < 1 ? 1 : y1;
    if (!is_accuracy) y0 = y0 > 0 ? 0 : y0;
    if (y1 <= y0) y1 = y0 + 1;
    if (x0 > 0) x0 = 0; /* steps count from 0 */
    double y_step = round_axis(&y0, &y1, 5), x_step = round_axis(&x0, &x1, 5);
    dt_text_printf(out,
                   "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"470\" height=\"280\" "
                   "role=\"img\" aria-label=\"%s\">\n<text x=\"250\" y=\"14\" "
                   "text-anchor=\"middle\" font-size=\"13\">%s</text>\n",
                   title, title);
    put(out, "<line x1=\"58\" y1=\"230\" x2=\"450\" y2=\"230\" stroke=\"#888\"/>"
             "<line x1=\"58\" y1=\"20\" x2=\"58\" y2=\"230\" stroke=\"#888\"/>\n");
    char label[48];
    long y_ticks = lround((y1 - y0) / y_step), x_ticks = lround((x1 - x0) / x_step);
    for (long g = 0; g <= y_ticks; g++) {
        double v = y0 + y_step * (double)g, y = 230 - 210.0 * (double)g / (double)y_ticks;
        tick_label(v, y_step, label, sizeof label);
        dt_text_printf(out,
                       "<text class=\"ytick\" x=\"54\" y=\"%.1f\" text-anchor=\"end\" "
                       "font-size=\"10\">%s</text><line x1=\"58\" y1=\"%.1f\" x2=\"450\" "
                       "y2=\"%.1f\" stroke=\"#eee\"/>\n",
                       y + 3, label, y, y);
    }
    for (long g = 0; g <= x_ticks; g++) {
        double x = 58 + (450 - 58) * (double)g / (double)x_ticks;
        tick_label(x0 + x_step * (double)g, x_step, label, sizeof label);
        dt_text_printf(out,
                       "<text class=\"xtick\" x=\"%.1f\" y=\"242\" text-anchor=\"middle\" "
                       "font-size=\"10\">%s</text>\n",
                       x, label);
    }
    put(out, "<text x=\"250\" y=\"258\" text-anchor=\"middle\" font-size=\"10\">optimizer "
             "step</text>\n");
    polyline(out, train, "#1f77b4", x0, x1, y0, y1, 0);
    polyline(out, val, "#ff7f0e", x0, x1, y0, y1, 1);
    if (ema->n) {
        polyline(out, ema, "#2ca02c", x0, x1, y0, y1, 1);
        put(out, "<rect x=\"220\" y=\"266\" width=\"12\" height=\"4\" fill=\"#2ca02c\"/><text "
                 "x=\"236\" y=\"272\" font-size=\"10\">validation (EMA)</text>\n");
    }
    put(out, "<rect x=\"330\" y=\"266\" width=\"12\" height=\"4\" fill=\"#1f77b4\"/><text "
             "x=\"346\" y=\"272\" font-size=\"10\">train</text><rect x=\"385\" y=\"266\" "
             "width=\"12\" height=\"4\" fill=\"#ff7f0e\"/><text x=\"401\" y=\"272\" "
             "font-size=\"10\">validation</text>\n</svg>\n");
}

/* ---- scores --------------------------------------------------------------------------------- */

static void write_confusion(dt_text *out, const dt_report_input *in) {
    const dt_class_metrics *m = in->metrics;
    int k = m->n_classes;
    put(out, "<h2>Confusion matrix</h2>\n<p>Rows: true class; columns: predicted class; "
             "colour: share of the row.</p>\n<table class=\"cm\">\n<tr><th "
             "class=\"name\">true \\ predicted</th>");
    for (int j = 0; j < k; j++) {
        put(out, "<th>");
        dt_html_escape(out, in->names[j]);
        put(out, "</th>");
    }
    put(out, "</tr>\n");
    for (int i = 0; i < k; i++) {
        put(out, "<tr><th class=\"name\">");
        dt_html_escape(out, in->names[i]);
        put(out, "</th>");
        long row = m->support[i];
        for (int j = 0; j < k; j++) {
            long count = m->confusion[(size_t)i * (size_t)k + (size_t)j];
            double share = row ? (double)count / (double)row : 0;
            const char *rgb = i == j ? "42,157,58" : "214,39,40";
            dt_text_printf(out, "<td style=\"background:rgba(%s,%.3f);color:%s\">%ld</td>", rgb,
                           count ? 0.12 + 0.88 * share : 0.0, share > 0.6 ? "#fff" : "#222", count);
        }
        put(out, "</tr>\n");
    }
    put(out, "</table>\n");
}

static void score_row(dt_text *out, const char *name, const double s[3], long support) {
    put(out, "<tr><td class=\"name\">");
    dt_html_escape(out, name);
    dt_text_printf(out, "</td><td>%.4f</td><td>%.4f</td><td>%.4f</td><td>%ld</td></tr>\n", s[0],
                   s[1], s[2], support);
}

static void write_scores(dt_text *out, const dt_report_input *in) {
    const dt_class_metrics *m = in->metrics;
    put(out, "<h2>Per-class scores</h2>\n<table class=\"scores\">\n<tr><th "
             "class=\"name\">class</th><th>precision</th><th>recall</th><th>f1-score</"
             "th><th>support</th></tr>\n");
    for (int c = 0; c < m->n_classes; c++) {
        double s[3] = {m->precision[c], m->recall[c], m->f1[c]};
        score_row(out, in->names[c], s, m->support[c]);
    }
    dt_text_printf(out,
                   "<tr><th class=\"name\">accuracy</th><td></td><td></td><td "
                   "class=\"accuracy\">%.4f</td><td>%ld</td></tr>\n",
                   m->accuracy, m->total);
    score_row(out, "macro avg", m->macro, m->total);
    score_row(out, "weighted avg", m->weighted, m->total);
    put(out, "</table>\n");
}

static void write_tiles(dt_text *out, const dt_report_tile *tiles, size_t n, int show_p) {
    put(out, "<div class=\"grid\">\n");
    for (size_t i = 0; i < n; i++) {
        const dt_report_tile *t = &tiles[i];
        int wrong = strcmp(t->true_name, t->predicted_name) != 0;
        dt_text_printf(out, "<figure class=\"%s\" title=\"", wrong ? "wrong" : "right");
        dt_html_escape(out, t->path);
        put(out, "\"><img alt=\"");
        dt_html_escape(out, t->path);
        put(out, "\" src=\"data:image/jpeg;base64,");
        dt_base64(out, t->jpeg, t->jpeg_size);
        put(out, "\"><figcaption>");
        put(out, "True: ");
        dt_html_escape(out, t->true_name);
        put(out, "  Pred: ");
        dt_html_escape(out, t->predicted_name);
        if (show_p || wrong)
            dt_text_printf(out, " (p=%.2f)%s", t->confidence, wrong ? " \xE2\x9C\x97" : "");
        put(out, "</figcaption></figure>\n");
    }
    put(out, "</div>\n");
}

void dt_report_html(const dt_report_input *in, dt_text *out) {
    put(out, "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">");
    const char *kind = in->model_path ? "dtrain evaluation: " : "dtrain report: ";
    const char *named = in->model_path ? in->model_path : in->output_dir;
    const char *split = in->split ? in->split : "validation";
    put(out, "<title>");
    put(out, kind);
    dt_html_escape(out, named);
    dt_text_printf(out, "</title>\n<style>%s</style></head><body>\n<h1>", page_style);
    put(out, kind);
    dt_html_escape(out, named);
    put(out, "</h1>\n");
    dt_text_printf(out,
                   "<p class=\"big\">%c%s accuracy <span id=\"accuracy\">%.4f</span>, "
                   "loss %.4f (%ld images)</p>\n",
                   split[0] >= 'a' && split[0] <= 'z' ? split[0] - 'a' + 'A' : split[0], split + 1,
                   in->metrics->accuracy, in->val_loss, in->metrics->total);
    const dt_report_series *ema = &in->ema_acc_curve, *ema_loss = &in->ema_loss_curve;
    if (ema->n && ema->step[ema->n - 1] == (double)in->step && ema_loss->n == ema->n)
        dt_text_printf(out,
                       "<p class=\"big\">EMA weights: accuracy <span id=\"ema-accuracy\">%.4f"
                       "</span>, loss %.4f</p>\n",
                       ema->value[ema->n - 1], ema_loss->value[ema->n - 1]);
    if (in->stop_note) {
        put(out, "<p id=\"early-stop\">");
        dt_html_escape(out, in->stop_note);
        put(out, "</p>\n");
    }
    write_summary(out, in);
    if (!in->model_path) { /* an evaluation alone has no training curves */
        put(out, "<h2>Curves</h2>\n<div class=\"curves\">\n");
        chart(out, "loss", &in->train_loss, &in->val_loss_curve, &in->ema_loss_curve, 0);
        chart(out, "accuracy", &in->train_acc, &in->val_acc_curve, &in->ema_acc_curve, 1);
        put(out, "</div>\n");
    }
    write_confusion(out, in);
    write_scores(out, in);
    dt_text_printf(out,
                   "<h2>%c%s images</h2>\n<p>%zu images chosen with a fixed seed; a red "
                   "frame marks a mistake.</p>\n",
                   split[0] >= 'a' && split[0] <= 'z' ? split[0] - 'a' + 'A' : split[0], split + 1,
                   in->n_grid);
    write_tiles(out, in->grid, in->n_grid, 0);
    dt_text_printf(out, "<h2>Most confident mistakes</h2>\n");
    if (in->n_mistakes)
        write_tiles(out, in->mistakes, in->n_mistakes, 1);
    else
        put(out, "<p>none: every image was classified correctly</p>\n");
    put(out, "</body></html>\n");
}
