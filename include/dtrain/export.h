/* Output files besides the metrics and the model (whose writer is dt_model_save_safetensors,
 * dtrain/model.h): classes.txt and the resolved config.yaml. */
#ifndef DTRAIN_EXPORT_H
#define DTRAIN_EXPORT_H

#include "dtrain/config.h"
#include "dtrain/error.h"

int dt_export_classes(const char *path, char *const *class_names, int n_classes, dt_error *err);
int dt_export_config(const char *path, const dt_config *cfg, dt_error *err);

#endif
