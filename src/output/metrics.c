/* Writers for metrics.jsonl and metrics.csv (README "Output files"), and their continuation
 * after a resume (at the end of this file). */
#include "dtrain/metrics.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dtrain/durable.h"
#include "dtrain/output_files.h"
#include "dtrain/platform.h"

static const char csv_header[] =
    "event,epoch,step,loss,acc,lr,img_per_s,val_loss,val_acc,n,elapsed_s,ema_val_loss,"
    "ema_val_acc\n";

/* JSON has no NaN/Infinity: such values are written as null. */
static void json_number(char *buf, size_t size, const char *fmt, double v) {
    if (isfinite(v))
        snprintf(buf, size, fmt, v);
    else
        snprintf(buf, size, "null");
}

static int flush_both(dt_metrics *m, dt_error *err) {
    if (fflush(m->jsonl) != 0 || ferror(m->jsonl))
        return dt_fail(err, "writing %s: %s", m->jsonl_path, strerror(errno));
    if (fflush(m->csv) != 0 || ferror(m->csv))
        return dt_fail(err, "writing %s: %s", m->csv_path, strerror(errno));
    return 0;
}

int dt_metrics_open(dt_metrics *m, const char *dir, dt_error *err) {
    memset(m, 0, sizeof *m);
    if (dt_path_join(m->jsonl_path, sizeof m->jsonl_path, dir, "metrics.jsonl", err) ||
        dt_path_join(m->csv_path, sizeof m->csv_path, dir, "metrics.csv", err))
        return -1;
    if (!(m->jsonl = dt_output_fopen(m->jsonl_path, "w", err))) return -1;
    if (!(m->csv = dt_output_fopen(m->csv_path, "w", err))) {
        dt_metrics_close(m);
        return -1;
    }
    fputs(csv_header, m->csv);
    return flush_both(m, err);
}

int dt_metrics_train(dt_metrics *m, const dt_train_row *r, dt_error *err) {
    char loss[32], acc[32], lr[32], ips[32], norm[48] = "", value[32];
    json_number(loss, sizeof loss, "%.6g", r->loss);
    json_number(acc, sizeof acc, "%.6g", r->acc);
    json_number(lr, sizeof lr, "%.8g", r->lr);
    json_number(ips, sizeof ips, "%.1f", r->img_per_s);
    if (r->has_grad_norm) {
        json_number(value, sizeof value, "%.6g", r->grad_norm);
        snprintf(norm, sizeof norm, ",\"grad_norm\":%s", value);
    }
    fprintf(m->jsonl,
            "{\"event\":\"train\",\"epoch\":%d,\"step\":%ld,\"loss\":%s,\"acc\":%s,\"lr\":%s,"
            "\"img_per_s\":%s%s,\"elapsed_s\":%.3f}\n",
            r->epoch, r->step, loss, acc, lr, ips, norm, r->elapsed_s);
    fprintf(m->csv, "train,%d,%ld,%.6g,%.6g,%.8g,%.1f,,,,%.3f,,\n", r->epoch, r->step, r->loss,
            r->acc, r->lr, r->img_per_s, r->elapsed_s);
    return flush_both(m, err);
}

int dt_metrics_eval(dt_metrics *m, const dt_eval_row *r, dt_error *err) {
    char loss[32], acc[32];
    json_number(loss, sizeof loss, "%.6g", r->val_loss);
    json_number(acc, sizeof acc, "%.6g", r->val_acc);
    char ema_json[96] = "", ema_csv[64] = ",";
    if (r->has_ema) {
        char ema_loss[32], ema_acc[32];
        json_number(ema_loss, sizeof ema_loss, "%.6g", r->ema_val_loss);
        json_number(ema_acc, sizeof ema_acc, "%.6g", r->ema_val_acc);
        snprintf(ema_json, sizeof ema_json, ",\"ema_val_loss\":%s,\"ema_val_acc\":%s", ema_loss,
                 ema_acc);
        snprintf(ema_csv, sizeof ema_csv, "%.6g,%.6g", r->ema_val_loss, r->ema_val_acc);
    }
    fprintf(m->jsonl,
            "{\"event\":\"eval\",\"epoch\":%d,\"step\":%ld,\"val_loss\":%s,\"val_acc\":%s,"
            "\"n\":%ld,\"elapsed_s\":%.3f%s}\n",
            r->epoch, r->step, loss, acc, r->n, r->elapsed_s, ema_json);
    fprintf(m->csv, "eval,%d,%ld,,,,,%.6g,%.6g,%ld,%.3f,%s\n", r->epoch, r->step, r->val_loss,
            r->val_acc, r->n, r->elapsed_s, ema_csv);
    return flush_both(m, err);
}

int dt_metrics_done(dt_metrics *m, const dt_done_row *r, dt_error *err) {
    char best[32];
    json_number(best, sizeof best, "%.6g", r->best_val_acc);
    fprintf(m->jsonl,
            "{\"event\":\"done\",\"epochs\":%d,\"best_val_acc\":%s,\"skipped_files\":%ld,"
            "\"stopped_early\":%s,\"elapsed_s\":%.3f,\"optimizer\":\"%s\",\"arch\":\"%s\","
            "\"precision\":\"%s\"}\n",
            r->epochs, best, r->skipped_files, r->stopped_early ? "true" : "false", r->elapsed_s,
            r->optimizer ? r->optimizer : "sgd", r->arch ? r->arch : "resnet18",
            r->precision ? r->precision : "fp32");
    return flush_both(m, err);
}

int dt_metrics_early_stop(dt_metrics *m, int epoch, long step, const char *monitor, double best,
                          int best_epoch, long wait, int patience, dt_error *err) {
    fprintf(m->jsonl,
            "{\"event\":\"early_stop\",\"epoch\":%d,\"step\":%ld,\"monitor\":\"%s\","
            "\"best\":%.6g,\"best_epoch\":%d,\"wait\":%ld,\"patience\":%d}\n",
            epoch, step, monitor, best, best_epoch, wait, patience);
    return flush_both(m, err);
}

void dt_metrics_close(dt_metrics *m) {
    if (m->jsonl) fclose(m->jsonl);
    if (m->csv) fclose(m->csv);
    m->jsonl = m->csv = NULL;
}

/* Continuing metrics.jsonl and metrics.csv after a resume: rows written after the checkpoint's
 * step (and the done row) are dropped, so that no step appears twice, then the files are opened
 * for appending. */

/* The step of a metrics.jsonl line, or -1 for lines without one (the done row). */
static long jsonl_step(const char *line) {
    const char *at = strstr(line, "\"step\":");
    return at ? strtol(at + 7, NULL, 10) : -1;
}

/* The step of a metrics.csv row (third column), or -1 for the header. */
static long csv_step(const char *line) {
    const char *comma = strchr(line, ',');
    if (!comma || !(comma = strchr(comma + 1, ','))) return -1;
    char *end = NULL;
    long v = strtol(comma + 1, &end, 10);
    return end == comma + 1 ? -1 : v;
}

/* Rewrites path keeping the lines that `keep` accepts; a missing file is left missing. */
static int filter_file(const char *path, long step, int csv, dt_error *err) {
    uint8_t *bytes = NULL;
    size_t size = 0;
    dt_error ignored = {{0}, 0};
    if (dt_read_file(path, (size_t)1 << 32, &bytes, &size, &ignored)) {
        if (errno == ENOENT) return 0;
        return dt_fail(err, "%s", ignored.message);
    }
    char *out = malloc(size + 1);
    if (!out) {
        free(bytes);
        return dt_fail(err, "reading %s: out of memory", path);
    }
    size_t used = 0;
    char *text = (char *)bytes;
    for (char *line = text; line < text + size;) {
        char *nl = memchr(line, '\n', (size_t)(text + size - line));
        size_t len = nl ? (size_t)(nl - line) + 1 : (size_t)(text + size - line);
        if (!nl) break; /* a torn last line (killed while writing) is dropped */
        *nl = '\0';
        long s = csv ? csv_step(line) : jsonl_step(line);
        int keep = csv ? (s < 0 && line == text) || (s >= 0 && s <= step) : s >= 0 && s <= step;
        *nl = '\n';
        if (keep) {
            memcpy(out + used, line, len);
            used += len;
        }
        line += len;
    }
    int rc = dt_replace_file_durably(path, out, used, err);
    free(out);
    free(bytes);
    return rc;
}

int dt_metrics_open_resume(dt_metrics *m, const char *dir, long step, dt_error *err) {
    memset(m, 0, sizeof *m);
    snprintf(m->jsonl_path, sizeof m->jsonl_path, "%s/metrics.jsonl", dir);
    snprintf(m->csv_path, sizeof m->csv_path, "%s/metrics.csv", dir);
    if (filter_file(m->jsonl_path, step, 0, err) || filter_file(m->csv_path, step, 1, err))
        return -1;
    if (!(m->jsonl = dt_output_fopen(m->jsonl_path, "a", err))) return -1;
    if (!(m->csv = dt_output_fopen(m->csv_path, "a", err))) {
        dt_metrics_close(m);
        return -1;
    }
    if (ftell(m->csv) == 0) fputs(csv_header, m->csv);
    if (fflush(m->jsonl) || fflush(m->csv))
        return dt_fail(err, "writing %s: %s", m->csv_path, strerror(errno));
    return 0;
}
