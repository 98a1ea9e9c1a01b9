/* Writes a run's text files beside the model: classes.txt and config.yaml (each replaced whole,
 * never rewritten in place). */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>

#include "dtrain/bytes.h"
#include "dtrain/durable.h"
#include "dtrain/export.h"

int dt_export_classes(const char *path, char *const *class_names, int n_classes, dt_error *err) {
    dt_text text = {0};
    for (int i = 0; i < n_classes; i++) dt_text_printf(&text, "%s\n", class_names[i]);
    int rc = text.failed
                 ? dt_fail(err, "writing %s: out of memory", path)
                 : dt_replace_file_durably(path, text.data ? text.data : "", text.length, err);
    free(text.data);
    return rc;
}

int dt_export_config(const char *path, const dt_config *cfg, dt_error *err) {
    char *text = NULL;
    size_t length = 0;
    FILE *f = open_memstream(&text, &length);
    if (!f) return dt_fail(err, "writing %s: out of memory", path);
    int rc = dt_config_write_yaml(cfg, f);
    if (fclose(f) != 0 || rc != 0) {
        free(text);
        return dt_fail(err, "writing %s: out of memory", path);
    }
    rc = dt_replace_file_durably(path, text, length, err);
    free(text);
    return rc;
}
