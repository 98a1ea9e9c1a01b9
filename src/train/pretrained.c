/* model.pretrained: loads torchvision/timm ResNet-18 weights from safetensors into the model.
 * Every backbone tensor must be present with the right shape; a classifier of another size is
 * left freshly initialised for this dataset's classes (the tutorial's fc swap). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dtrain/safetensors.h"
#include "train/trainer_internal.h"

/* Appends "name" to a comma-separated list, eliding past the buffer's end. */
static void list_append(char *list, size_t size, const char *item) {
    size_t len = strlen(list);
    if (len + strlen(item) + 8 >= size) {
        if (!strstr(list, ", ...")) strncat(list, ", ...", size - len - 1);
        return;
    }
    if (len) strcat(list, ", ");
    strcat(list, item);
}

static int same_shape(const dt_state_entry *e, const dt_st_tensor *t) {
    if (e->role == DT_TENSOR_BATCHES_TRACKED) return t->ndim == 0 || (t->ndim == 1 && t->shape[0] == 1);
    if (t->ndim != e->ndim) return 0;
    for (int i = 0; i < e->ndim; i++)
        if (t->shape[i] != e->shape[i]) return 0;
    return 1;
}

static void shape_text(const dt_st_tensor *t, char *buf, size_t size) {
    size_t at = (size_t)snprintf(buf, size, "[");
    for (int i = 0; i < t->ndim && at < size; i++)
        at += (size_t)snprintf(buf + at, size - at, "%s%lld", i ? ", " : "", (long long)t->shape[i]);
    if (at < size) snprintf(buf + at, size - at, "]");
}

int dt_train_load_pretrained(dt_trainer *t, dt_error *err) {
    const char *path = t->cfg->model.pretrained;
    dt_safetensors st;
    if (dt_safetensors_read(path, &st, err)) {
        err->exit_code = DT_EXIT_USAGE;
        return dt_error_prefix(err, "model.pretrained");
    }
    size_t n_params = dt_model_param_count(t->model), n_stats = dt_model_stats_count(t->model);
    float *params = malloc(n_params * sizeof *params), *stats = malloc(n_stats * sizeof *stats);
    char missing[768] = "", misshaped[768] = "", unexpected[768] = "";
    int rc = -1, classifier_replaced = 0;
    if (!params || !stats) {
        dt_fail(err, "out of memory");
        goto done;
    }
    if (dt_model_download_state(t->model, params, stats, err)) goto done;
    size_t n_entries;
    const dt_state_entry *entries = dt_model_state(t->model, &n_entries);
    for (size_t i = 0; i < n_entries; i++) {
        const dt_state_entry *e = &entries[i];
        const dt_st_tensor *src = dt_safetensors_find(&st, e->name);
        if (!src) {
            if (e->role != DT_TENSOR_BATCHES_TRACKED) list_append(missing, sizeof missing, e->name);
            continue;
        }
        if (!same_shape(e, src)) {
            if (e->in_classifier) {
                classifier_replaced = 1;
                continue;
            }
            char item[160], shape[64];
            shape_text(src, shape, sizeof shape);
            snprintf(item, sizeof item, "%s %s", e->name, shape);
            list_append(misshaped, sizeof misshaped, item);
            continue;
        }
        if (e->role == DT_TENSOR_BATCHES_TRACKED) continue;
        float *dst = (e->role == DT_TENSOR_PARAMETER ? params : stats) + e->offset;
        if (dt_st_tensor_to_float(src, dst, e->count, err)) {
            dt_error_prefix(err, "model.pretrained: %s", path);
            goto done;
        }
        for (size_t k = 0; k < e->count; k++)
            if (!isfinite(dst[k])) {
                dt_fail_usage(err, "model.pretrained: %s: tensor '%s' holds NaN or infinite "
                                   "values; refusing to train from it",
                              path, e->name);
                goto done;
            }
    }
    for (size_t i = 0; i < st.n_tensors; i++)
        if (!dt_model_find(t->model, st.tensors[i].name))
            list_append(unexpected, sizeof unexpected, st.tensors[i].name);
    if (missing[0] || misshaped[0] || unexpected[0]) {
        dt_fail_usage(err,
                      "model.pretrained: %s is not a torchvision/timm ResNet-18 state dict:%s%s%s%s%s%s",
                      path, missing[0] ? " missing: " : "", missing,
                      misshaped[0] ? "; wrong shape: " : "", misshaped,
                      unexpected[0] ? "; unexpected: " : "", unexpected);
        goto done;
    }
    if (dt_model_upload_state(t->model, params, stats, err)) goto done;
    if (t->is_root)
        dt_progress_line(&t->progress, NULL, "loaded pretrained weights from %s%s", path,
                         classifier_replaced ? " (classifier re-initialised for this dataset's "
                                               "classes)"
                                             : "");
    rc = 0;
done:
    free(params);
    free(stats);
    dt_safetensors_free(&st);
    return rc;
}
