/* The model's state dict as the builder registers it: torchvision's names, shapes and order, and
 * where each tensor lives in the flat parameter and statistics buffers. */
#ifndef DTRAIN_NN_STATE_DICT_H
#define DTRAIN_NN_STATE_DICT_H

#include "dtrain/model.h"

typedef struct dt_state_layout {
    dt_state_entry *entries; /* in registration order: torchvision's state_dict() order */
    size_t n_entries, capacity;
    size_t n_params; /* floats in the parameter buffer */
    size_t n_stats;  /* floats in the running-statistics buffer */
} dt_state_layout;

/* Register "<prefix>.weight" of a conv (out_c, in_c, k, k); its offset in *weight. */
int dt_state_add_conv(dt_state_layout *layout, const char *prefix, int in_c, int out_c, int kernel,
                      size_t *weight, dt_error *err);
/* Register a BatchNorm's weight, bias, running_mean, running_var and num_batches_tracked; the
 * offsets of the first four (params, params, stats, stats). */
int dt_state_add_batchnorm(dt_state_layout *layout, const char *prefix, int channels,
                           int residual_gamma, size_t *gamma, size_t *beta, size_t *running_mean,
                           size_t *running_var, dt_error *err);
/* Register "<prefix>.weight" (out, in) and "<prefix>.bias" (out) of the classifier. */
int dt_state_add_linear(dt_state_layout *layout, const char *prefix, int in_features,
                        int out_features, size_t *weight, size_t *bias, dt_error *err);
const dt_state_entry *dt_state_layout_find(const dt_state_layout *layout, const char *name);
void dt_state_layout_free(dt_state_layout *layout);

#endif
