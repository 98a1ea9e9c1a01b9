/* Loads a torchvision/timm ResNet state dict from a safetensors file into a model: every
 * backbone tensor must be present with the right shape and finite values; a classifier of
 * another size may be left as initialised (the tutorial's fc swap). Errors name the file and the
 * tensors at fault. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dtrain/model.h"
#include "dtrain/safetensors.h"

/* Appends "item" to a comma-separated list, eliding past the buffer's end. */
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
    if (e->role == DT_TENSOR_BATCHES_TRACKED)
        return t->ndim == 0 || (t->ndim == 1 && t->shape[0] == 1);
    if (t->ndim != e->ndim) return 0;
    for (int i = 0; i < e->ndim; i++)
        if (t->shape[i] != e->shape[i]) return 0;
    return 1;
}

/* The value of a num_batches_tracked scalar (integer or float dtype); -1 when it is neither. */
static int64_t batches_tracked_value(const dt_st_tensor *t) {
    size_t width = dt_st_dtype_size(t->dtype);
    if (t->end - t->begin != width || !t->data) return -1;
    int64_t value = -1;
    if (t->dtype == DT_ST_I64) {
        memcpy(&value, t->data, sizeof value);
    } else if (t->dtype == DT_ST_I32) {
        int32_t narrow;
        memcpy(&narrow, t->data, sizeof narrow);
        value = narrow;
    } else {
        float f;
        if (dt_st_tensor_to_float(t, &f, 1, NULL) == 0 && isfinite(f) && f >= 0) value = (int64_t)f;
    }
    return value;
}

/* Appends "title: list" to details, after a "; " when details is not empty. */
static void append_section(char *details, size_t size, const char *title, const char *list) {
    if (!list[0]) return;
    size_t len = strlen(details);
    snprintf(details + len, size - len, "%s%s: %s", len ? "; " : "", title, list);
}

static int all_names_prefixed(const dt_safetensors *st, const char *prefix) {
    for (size_t i = 0; i < st->n_tensors; i++)
        if (strncmp(st->tensors[i].name, prefix, strlen(prefix)) != 0) return 0;
    return st->n_tensors > 0;
}

/* A classifier tensor present with another shape: the whole classifier is replaced. */
static int classifier_differs(const dt_model *m, const dt_safetensors *st) {
    size_t n_entries;
    const dt_state_entry *entries = dt_model_state(m, &n_entries);
    for (size_t i = 0; i < n_entries; i++) {
        if (!entries[i].in_classifier) continue;
        const dt_st_tensor *src = dt_safetensors_find(st, entries[i].name);
        if (src && !same_shape(&entries[i], src)) return 1;
    }
    return 0;
}

/* Converts every matching tensor into the host copies; lists what is missing, misshaped or
 * unexpected. Returns -1 (err filled) on a tensor that cannot be used. */
static int gather_tensors(const dt_model *m, const dt_safetensors *st, const char *path,
                          int replace_classifier, float *params, float *stats, int64_t *tracked,
                          char *missing, char *misshaped, char *unexpected, size_t list_size,
                          dt_error *err) {
    size_t n_entries;
    const dt_state_entry *entries = dt_model_state(m, &n_entries);
    for (size_t i = 0; i < n_entries; i++) {
        const dt_state_entry *e = &entries[i];
        if (e->in_classifier && replace_classifier) continue;
        const dt_st_tensor *src = dt_safetensors_find(st, e->name);
        if (!src) {
            if (e->role != DT_TENSOR_BATCHES_TRACKED) list_append(missing, list_size, e->name);
            continue;
        }
        if (!same_shape(e, src)) {
            char item[160], shape[64];
            dt_st_format_shape(src, shape, sizeof shape);
            snprintf(item, sizeof item, "%s %s", e->name, shape);
            list_append(misshaped, list_size, item);
            continue;
        }
        if (e->role == DT_TENSOR_BATCHES_TRACKED) {
            int64_t value = batches_tracked_value(src);
            if (value < 0)
                return dt_fail_usage(err, "%s: tensor '%s': not a non-negative %s scalar", path,
                                     e->name, dt_st_dtype_name(src->dtype));
            if (*tracked < 0) *tracked = value; /* dtrain keeps one counter: bn1's */
            continue;
        }
        float *dst = (e->role == DT_TENSOR_PARAMETER ? params : stats) + e->offset;
        if (dt_st_tensor_to_float(src, dst, e->count, err)) {
            err->exit_code = DT_EXIT_USAGE;
            return dt_error_prefix(err, "%s", path);
        }
        for (size_t k = 0; k < e->count; k++)
            if (!isfinite(dst[k]))
                return dt_fail_usage(err,
                                     "%s: tensor '%s' holds NaN or infinite values (element %zu "
                                     "is %g); refusing to train from it",
                                     path, e->name, k, (double)dst[k]);
    }
    for (size_t i = 0; i < st->n_tensors; i++)
        if (!dt_model_find(m, st->tensors[i].name))
            list_append(unexpected, list_size, st->tensors[i].name);
    return 0;
}

int dt_model_load_safetensors(dt_model *m, const char *path, int allow_classifier_mismatch,
                              int *classifier_replaced, dt_error *err) {
    if (classifier_replaced) *classifier_replaced = 0;
    dt_safetensors st;
    if (dt_safetensors_read(path, &st, err)) {
        err->exit_code = DT_EXIT_USAGE;
        return -1;
    }
    size_t n_params = dt_model_param_count(m), n_stats = dt_model_stats_count(m);
    float *params = malloc(n_params * sizeof *params), *stats = malloc(n_stats * sizeof *stats);
    enum { LIST_SIZE = 768 };
    char missing[LIST_SIZE] = "", misshaped[LIST_SIZE] = "", unexpected[LIST_SIZE] = "";
    int rc = -1;
    int64_t tracked = -1;
    int replace = allow_classifier_mismatch && classifier_differs(m, &st);
    if (!params || !stats) {
        dt_fail(err, "%s: out of memory", path);
        goto done;
    }
    /* start from the model's own weights: a replaced classifier keeps its initialisation */
    if (dt_model_download_state(m, params, stats, err)) goto done;
    if (gather_tensors(m, &st, path, replace, params, stats, &tracked, missing, misshaped,
                       unexpected, LIST_SIZE, err))
        goto done;
    if (missing[0] || misshaped[0] || unexpected[0]) {
        char details[3 * LIST_SIZE + 64] = "";
        append_section(details, sizeof details, "missing", missing);
        append_section(details, sizeof details, "wrong shape", misshaped);
        append_section(details, sizeof details, "unexpected", unexpected);
        const char *hint = all_names_prefixed(&st, "module.")
                               ? " (every name starts with 'module.', as saved from a "
                                 "DataParallel model: save model.module.state_dict() instead)"
                               : "";
        dt_fail_usage(err, "%s is not a torchvision/timm ResNet-%s state dict%s: %s", path,
                      dt_model_arch(m) + strlen("resnet"), hint, details);
        goto done;
    }
    if (dt_model_upload_state(m, params, stats, err)) goto done;
    if (tracked >= 0) dt_model_set_batches_tracked(m, tracked);
    if (classifier_replaced) *classifier_replaced = replace;
    rc = 0;
done:
    free(params);
    free(stats);
    dt_safetensors_free(&st);
    return rc;
}

const char *dt_model_arch_of_state_dict(const dt_safetensors *st) {
    for (int a = 0; a < dt_model_arch_count(); a++) {
        const char *name = dt_model_arch_name(a);
        dt_model_options opt = {.arch = name, .batch = 1, .image_size = 32, .n_classes = 2};
        dt_model *m;
        dt_error err = {{0}, 0};
        if (dt_model_describe(&opt, &m, &err)) return NULL;
        /* every backbone tensor name present, and no other layerN.* name */
        size_t n_entries, wanted = 0, found = 0;
        const dt_state_entry *entries = dt_model_state(m, &n_entries);
        for (size_t i = 0; i < n_entries; i++) {
            if (entries[i].in_classifier || entries[i].role == DT_TENSOR_BATCHES_TRACKED) continue;
            wanted++;
            found += dt_safetensors_find(st, entries[i].name) != NULL;
        }
        int foreign = 0;
        for (size_t i = 0; i < st->n_tensors && !foreign; i++)
            foreign = strncmp(st->tensors[i].name, "layer", 5) == 0 &&
                      !dt_model_find(m, st->tensors[i].name);
        dt_model_destroy(m);
        if (found == wanted && !foreign) return name;
    }
    return NULL;
}
