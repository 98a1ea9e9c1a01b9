/* The ResNet-18 state dict layout: torchvision's tensor names, shapes and order, and where each
 * tensor lives in the model's flat parameter and statistics buffers. */
#include "nn/state_dict.h"

#include <stdio.h>
#include <string.h>

static int add_entry(dt_state_layout *layout, const char *name, dt_tensor_role role, int ndim,
                     const int64_t *shape, int in_classifier, dt_error *err) {
    if (layout->n_entries >= DT_STATE_MAX_ENTRIES)
        return dt_fail(err, "internal: too many state dict entries");
    dt_state_entry *e = &layout->entries[layout->n_entries++];
    memset(e, 0, sizeof *e);
    snprintf(e->name, sizeof e->name, "%s", name);
    e->role = role;
    e->ndim = ndim;
    e->count = 1;
    for (int i = 0; i < ndim; i++) {
        e->shape[i] = shape[i];
        e->count *= (size_t)shape[i];
    }
    e->in_classifier = in_classifier;
    if (role == DT_TENSOR_PARAMETER) {
        e->offset = layout->n_params;
        layout->n_params += e->count;
    } else if (role == DT_TENSOR_RUNNING_MEAN || role == DT_TENSOR_RUNNING_VAR) {
        e->offset = layout->n_stats;
        layout->n_stats += e->count;
    } else {
        e->offset = 0;
        e->count = 1;
    }
    return 0;
}

static int add_conv(dt_state_layout *layout, const char *prefix, int in_c, int out_c, int k,
                    dt_error *err) {
    char name[64];
    int64_t shape[4] = {out_c, in_c, k, k};
    snprintf(name, sizeof name, "%s.weight", prefix);
    return add_entry(layout, name, DT_TENSOR_PARAMETER, 4, shape, 0, err);
}

static int add_batchnorm(dt_state_layout *layout, const char *prefix, int channels, dt_error *err) {
    static const struct {
        const char *suffix;
        dt_tensor_role role;
    } parts[] = {{"weight", DT_TENSOR_PARAMETER},
                 {"bias", DT_TENSOR_PARAMETER},
                 {"running_mean", DT_TENSOR_RUNNING_MEAN},
                 {"running_var", DT_TENSOR_RUNNING_VAR},
                 {"num_batches_tracked", DT_TENSOR_BATCHES_TRACKED}};
    int64_t shape[1] = {channels};
    for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++) {
        char name[64];
        snprintf(name, sizeof name, "%s.%s", prefix, parts[i].suffix);
        int ndim = parts[i].role == DT_TENSOR_BATCHES_TRACKED ? 0 : 1;
        if (add_entry(layout, name, parts[i].role, ndim, shape, 0, err) != 0) return -1;
    }
    return 0;
}

int dt_state_layout_resnet18(int n_classes, dt_state_layout *layout, dt_error *err) {
    memset(layout, 0, sizeof *layout);
    if (add_conv(layout, "conv1", 3, 64, 7, err) || add_batchnorm(layout, "bn1", 64, err))
        return -1;
    int in_c = 64;
    for (int stage = 0; stage < 4; stage++) {
        int out_c = 64 << stage;
        for (int block = 0; block < 2; block++) {
            char prefix[64], name[64];
            snprintf(prefix, sizeof prefix, "layer%d.%d", stage + 1, block);
            int block_in = block == 0 ? in_c : out_c;
            int stride = (block == 0 && stage > 0) ? 2 : 1;
            snprintf(name, sizeof name, "%s.conv1", prefix);
            if (add_conv(layout, name, block_in, out_c, 3, err)) return -1;
            snprintf(name, sizeof name, "%s.bn1", prefix);
            if (add_batchnorm(layout, name, out_c, err)) return -1;
            snprintf(name, sizeof name, "%s.conv2", prefix);
            if (add_conv(layout, name, out_c, out_c, 3, err)) return -1;
            snprintf(name, sizeof name, "%s.bn2", prefix);
            if (add_batchnorm(layout, name, out_c, err)) return -1;
            if (stride != 1 || block_in != out_c) {
                snprintf(name, sizeof name, "%s.downsample.0", prefix);
                if (add_conv(layout, name, block_in, out_c, 1, err)) return -1;
                snprintf(name, sizeof name, "%s.downsample.1", prefix);
                if (add_batchnorm(layout, name, out_c, err)) return -1;
            }
        }
        in_c = out_c;
    }
    int64_t fc_weight[2] = {n_classes, 512}, fc_bias[1] = {n_classes};
    if (add_entry(layout, "fc.weight", DT_TENSOR_PARAMETER, 2, fc_weight, 1, err) ||
        add_entry(layout, "fc.bias", DT_TENSOR_PARAMETER, 1, fc_bias, 1, err))
        return -1;
    return 0;
}

const dt_state_entry *dt_state_layout_find(const dt_state_layout *layout, const char *name) {
    for (size_t i = 0; i < layout->n_entries; i++)
        if (strcmp(layout->entries[i].name, name) == 0) return &layout->entries[i];
    return NULL;
}
