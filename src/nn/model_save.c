/* Saving the model as torchvision saves it: model.safetensors with the architecture's
 * state_dict keys and metadata, and the tensor lists of a checkpoint's model.safetensors and
 * optimizer.safetensors (the checkpoint folder itself is io/'s format). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dtrain/checkpoint.h"
#include "dtrain/model.h"
#include "dtrain/safetensors.h"
#include "nn/model_internal.h"

int dt_model_save_safetensors(dt_model *model, const char *path, char *const *class_names,
                              int n_classes, uint64_t config_hash,
                              const dt_model_preprocessing *preprocessing, dt_error *err) {
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
               dt_st_writer_add_metadata(w, "arch", dt_model_arch(model), err) ||
               dt_st_writer_add_metadata(w, "classes", classes, err) ||
               dt_st_writer_add_metadata(w, "config_hash", hash, err);
    if (!meta && preprocessing) {
        const dt_model_preprocessing *c = preprocessing;
        char size[16], mean[64], std[64];
        snprintf(size, sizeof size, "%d", c->image_size);
        snprintf(mean, sizeof mean, "%.9g,%.9g,%.9g", c->mean[0], c->mean[1], c->mean[2]);
        snprintf(std, sizeof std, "%.9g,%.9g,%.9g", c->std[0], c->std[1], c->std[2]);
        meta = dt_st_writer_add_metadata(w, "image_size", size, err) ||
               dt_st_writer_add_metadata(w, "resize", c->resize, err) ||
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

dt_ckpt_tensor dt_model_state_tensor(const dt_state_entry *e, const float *params,
                                     const float *stats, int64_t batches_tracked) {
    dt_ckpt_tensor t = {.name = e->name, .dtype = DT_ST_F32, .ndim = e->ndim, .shape = e->shape};
    if (e->role == DT_TENSOR_BATCHES_TRACKED) {
        t.dtype = DT_ST_I64;
        t.scalar = batches_tracked;
    } else {
        t.data = (e->role == DT_TENSOR_PARAMETER ? params : stats) + e->offset;
    }
    return t;
}

int dt_model_checkpoint_tensors(const dt_model *model, dt_ckpt_payload *p, dt_error *err) {
    size_t n_entries, n_params = 0;
    const dt_state_entry *entries = dt_model_state(model, &n_entries);
    for (size_t i = 0; i < n_entries; i++) n_params += entries[i].role == DT_TENSOR_PARAMETER;
    free(p->model_tensors);
    free(p->optimizer_tensors);
    free(p->optimizer_names);
    /* AdamW: NAME.exp_avg and NAME.exp_avg_sq, names kept in the payload */
    enum { NAME = sizeof entries[0].name + 16 };
    size_t per_param = p->second_moment ? 2 : 1;
    p->model_tensors = calloc(n_entries, sizeof *p->model_tensors);
    p->optimizer_tensors =
        calloc(n_params ? n_params * per_param : 1, sizeof *p->optimizer_tensors);
    p->optimizer_names = p->second_moment ? calloc(n_params ? n_params * 2 : 1, NAME) : NULL;
    p->n_model_tensors = p->n_optimizer_tensors = 0;
    if (!p->model_tensors || !p->optimizer_tensors || (p->second_moment && !p->optimizer_names))
        return dt_fail(err, "out of memory");
    p->arch = dt_model_arch(model);
    for (size_t i = 0; i < n_entries; i++) {
        const dt_state_entry *e = &entries[i];
        dt_ckpt_tensor t = dt_model_state_tensor(e, p->params, p->stats, p->state.batches_tracked);
        p->model_tensors[p->n_model_tensors++] = t;
        if (e->role != DT_TENSOR_PARAMETER) continue;
        t.data = p->momentum + e->offset;
        if (!p->second_moment) {
            p->optimizer_tensors[p->n_optimizer_tensors++] = t;
            continue;
        }
        const char *suffix[2] = {"exp_avg", "exp_avg_sq"};
        const float *data[2] = {p->momentum + e->offset, p->second_moment + e->offset};
        for (int k = 0; k < 2; k++) {
            char *name = p->optimizer_names + p->n_optimizer_tensors * NAME;
            snprintf(name, NAME, "%s.%s", e->name, suffix[k]);
            t.name = name;
            t.data = data[k];
            p->optimizer_tensors[p->n_optimizer_tensors++] = t;
        }
    }
    return 0;
}
