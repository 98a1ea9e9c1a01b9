/* Writes model.safetensors with torchvision's resnet18 state_dict keys, plus classes.txt and
 * config.yaml (each replaced whole, never rewritten in place). */
#define _GNU_SOURCE
#include "dtrain/export.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dtrain/bytes.h"
#include "dtrain/durable.h"
#include "dtrain/safetensors.h"

/* preprocessing (may be NULL): cfg's data.image_size, resize, mean and std as metadata */
static int export_model(dt_model *model, const char *path, char *const *class_names, int n_classes,
                        uint64_t config_hash, const dt_config *preprocessing, dt_error *err) {
    size_t n_params = dt_model_param_count(model), n_stats = dt_model_stats_count(model);
    float *params = malloc(n_params * sizeof *params);
    float *stats = malloc((n_stats ? n_stats : 1) * sizeof *stats);
    dt_st_writer *w = dt_st_writer_create();
    int rc = -1;
    if (!params || !stats || !w) {
        dt_fail(err, "writing %s: out of memory", path);
        goto done;
    }
    if (dt_model_download_state(model, params, stats, err)) goto done;
    int64_t tracked = dt_model_batches_tracked(model);
    size_t n_entries;
    const dt_state_entry *entries = dt_model_state(model, &n_entries);
    for (size_t i = 0; i < n_entries; i++) {
        const dt_state_entry *e = &entries[i];
        int r;
        if (e->role == DT_TENSOR_BATCHES_TRACKED)
            r = dt_st_writer_add(w, e->name, DT_ST_I64, 0, e->shape, &tracked, err);
        else
            r = dt_st_writer_add(w, e->name, DT_ST_F32, e->ndim, e->shape,
                                 (e->role == DT_TENSOR_PARAMETER ? params : stats) + e->offset,
                                 err);
        if (r) goto done;
    }
    size_t classes_len = 1;
    for (int i = 0; i < n_classes; i++) classes_len += strlen(class_names[i]) + 1;
    char *classes = calloc(classes_len, 1);
    if (!classes) {
        dt_fail(err, "writing %s: out of memory", path);
        goto done;
    }
    for (int i = 0; i < n_classes; i++) {
        if (i) strcat(classes, "\n");
        strcat(classes, class_names[i]);
    }
    char hash[32];
    snprintf(hash, sizeof hash, "%016llx", (unsigned long long)config_hash);
    int meta = dt_st_writer_add_metadata(w, "format", "pt", err) ||
               dt_st_writer_add_metadata(w, "arch", "resnet18", err) ||
               dt_st_writer_add_metadata(w, "classes", classes, err) ||
               dt_st_writer_add_metadata(w, "config_hash", hash, err);
    if (!meta && preprocessing) {
        const dt_config *c = preprocessing;
        char size[16], mean[64], std[64];
        snprintf(size, sizeof size, "%d", c->data.image_size);
        snprintf(mean, sizeof mean, "%.9g,%.9g,%.9g", c->data.mean[0], c->data.mean[1],
                 c->data.mean[2]);
        snprintf(std, sizeof std, "%.9g,%.9g,%.9g", c->data.std[0], c->data.std[1], c->data.std[2]);
        meta = dt_st_writer_add_metadata(w, "image_size", size, err) ||
               dt_st_writer_add_metadata(
                   w, "resize", c->data.resize == DT_RESIZE_CENTER ? "center" : "squash", err) ||
               dt_st_writer_add_metadata(w, "mean", mean, err) ||
               dt_st_writer_add_metadata(w, "std", std, err);
    }
    free(classes);
    if (meta || dt_st_writer_write(w, path, err)) goto done;
    rc = 0;
done:
    if (w) dt_st_writer_destroy(w);
    free(params);
    free(stats);
    return rc;
}

int dt_export_model(dt_model *model, const char *path, char *const *class_names, int n_classes,
                    uint64_t config_hash, dt_error *err) {
    return export_model(model, path, class_names, n_classes, config_hash, NULL, err);
}

int dt_export_trained_model(dt_model *model, const char *path, char *const *class_names,
                            int n_classes, const dt_config *cfg, dt_error *err) {
    return export_model(model, path, class_names, n_classes, dt_config_hash(cfg), cfg, err);
}

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
