/* The ResNet-18 state dict layout (torchvision names, shapes, order) and flat-buffer offsets. */
#ifndef DTRAIN_NN_STATE_DICT_H
#define DTRAIN_NN_STATE_DICT_H

#include "dtrain/model.h"

#define DT_STATE_MAX_ENTRIES 128

typedef struct dt_state_layout {
    dt_state_entry entries[DT_STATE_MAX_ENTRIES];
    size_t n_entries;
    size_t n_params; /* floats in the parameter buffer */
    size_t n_stats;  /* floats in the running-statistics buffer */
} dt_state_layout;

int dt_state_layout_resnet18(int n_classes, dt_state_layout *layout, dt_error *err);
const dt_state_entry *dt_state_layout_find(const dt_state_layout *layout, const char *name);

#endif
