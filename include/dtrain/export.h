/* Output files besides the metrics: model.safetensors (torchvision state_dict keys), classes.txt
 * and the resolved config.yaml. */
#ifndef DTRAIN_EXPORT_H
#define DTRAIN_EXPORT_H

#include <stdint.h>

#include "dtrain/config.h"
#include "dtrain/error.h"
#include "dtrain/model.h"

/* Writes the model's state dict (F32 tensors; num_batches_tracked as I64 scalars) with
 * metadata {format: pt, arch: resnet18, classes: names joined by '\n', config_hash: hex}. */
int dt_export_model(dt_model *model, const char *path, char *const *class_names, int n_classes,
                    uint64_t config_hash, dt_error *err);

/* The same with config_hash = dt_config_hash(cfg) and the preprocessing that `dtrain predict`
 * defaults to: metadata image_size ("224"), resize ("squash" or "center"), mean and std
 * ("0.485,0.456,0.406", each float exactly). */
int dt_export_trained_model(dt_model *model, const char *path, char *const *class_names,
                            int n_classes, const dt_config *cfg, dt_error *err);

int dt_export_classes(const char *path, char *const *class_names, int n_classes, dt_error *err);
int dt_export_config(const char *path, const dt_config *cfg, dt_error *err);

#endif
