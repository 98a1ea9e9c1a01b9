/* The state dict registry: the model builder (nn/resnet.c) registers each tensor as it creates
 * the layer that uses it, so names, shapes, order and flat-buffer offsets have one source. */
#include "nn/state_dict.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static dt_state_entry *add_entry(dt_state_layout *layout, const char *prefix, const char *suffix,
                                 dt_tensor_role role, int ndim, const int64_t *shape,
                                 dt_error *err) {
    if (layout->n_entries == layout->capacity) {
        size_t capacity = layout->capacity ? 2 * layout->capacity : 128;
        dt_state_entry *grown = realloc(layout->entries, capacity * sizeof *grown);
        if (!grown) {
            dt_fail(err, "model: out of memory registering %s.%s", prefix, suffix);
            return NULL;
        }
        layout->entries = grown;
        layout->capacity = capacity;
    }
    dt_state_entry *e = &layout->entries[layout->n_entries];
    memset(e, 0, sizeof *e);
    if (snprintf(e->name, sizeof e->name, "%s.%s", prefix, suffix) >= (int)sizeof e->name) {
        dt_fail(err, "internal: state dict name %s.%s too long", prefix, suffix);
        return NULL;
    }
    layout->n_entries++;
    e->role = role;
    e->ndim = ndim;
    e->count = 1;
    for (int i = 0; i < ndim; i++) {
        e->shape[i] = shape[i];
        e->count *= (size_t)shape[i];
    }
    if (role == DT_TENSOR_PARAMETER) {
        e->offset = layout->n_params;
        layout->n_params += e->count;
    } else if (role == DT_TENSOR_RUNNING_MEAN || role == DT_TENSOR_RUNNING_VAR) {
        e->offset = layout->n_stats;
        layout->n_stats += e->count;
    }
    return e;
}

int dt_state_add_conv(dt_state_layout *layout, const char *prefix, int in_c, int out_c, int kernel,
                      size_t *weight, dt_error *err) {
    int64_t shape[4] = {out_c, in_c, kernel, kernel};
    dt_state_entry *e = add_entry(layout, prefix, "weight", DT_TENSOR_PARAMETER, 4, shape, err);
    if (!e) return -1;
    *weight = e->offset;
    return 0;
}

int dt_state_add_batchnorm(dt_state_layout *layout, const char *prefix, int channels,
                           int residual_gamma, size_t *gamma, size_t *beta, size_t *running_mean,
                           size_t *running_var, dt_error *err) {
    static const struct {
        const char *suffix;
        dt_tensor_role role;
    } parts[] = {{"weight", DT_TENSOR_PARAMETER},
                 {"bias", DT_TENSOR_PARAMETER},
                 {"running_mean", DT_TENSOR_RUNNING_MEAN},
                 {"running_var", DT_TENSOR_RUNNING_VAR},
                 {"num_batches_tracked", DT_TENSOR_BATCHES_TRACKED}};
    size_t *offsets[] = {gamma, beta, running_mean, running_var, NULL};
    int64_t shape[1] = {channels};
    for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++) {
        int ndim = parts[i].role == DT_TENSOR_BATCHES_TRACKED ? 0 : 1;
        dt_state_entry *e =
            add_entry(layout, prefix, parts[i].suffix, parts[i].role, ndim, shape, err);
        if (!e) return -1;
        if (i == 0) e->residual_gamma = residual_gamma;
        if (offsets[i]) *offsets[i] = e->offset;
    }
    return 0;
}

int dt_state_add_linear(dt_state_layout *layout, const char *prefix, int in_features,
                        int out_features, size_t *weight, size_t *bias, dt_error *err) {
    int64_t weight_shape[2] = {out_features, in_features}, bias_shape[1] = {out_features};
    dt_state_entry *w =
        add_entry(layout, prefix, "weight", DT_TENSOR_PARAMETER, 2, weight_shape, err);
    if (!w) return -1;
    w->in_classifier = 1;
    *weight = w->offset;
    dt_state_entry *b = add_entry(layout, prefix, "bias", DT_TENSOR_PARAMETER, 1, bias_shape, err);
    if (!b) return -1;
    b->in_classifier = 1;
    *bias = b->offset;
    return 0;
}

const dt_state_entry *dt_state_layout_find(const dt_state_layout *layout, const char *name) {
    for (size_t i = 0; i < layout->n_entries; i++)
        if (strcmp(layout->entries[i].name, name) == 0) return &layout->entries[i];
    return NULL;
}

void dt_state_layout_free(dt_state_layout *layout) {
    free(layout->entries);
    memset(layout, 0, sizeof *layout);
}
