/* model.pretrained: rank 0 loads torchvision/timm ResNet-18 weights from safetensors into the
 * model (dt_model_load_safetensors; the trainer broadcasts them); a classifier of another size is
 * left freshly initialised for this dataset's classes (the tutorial's fc swap). */
#include "dtrain/model.h"
#include "train/trainer_internal.h"

int dt_train_load_pretrained(dt_trainer *t, dt_error *err) {
    const char *path = t->cfg->model.pretrained;
    int classifier_replaced = 0;
    if (dt_model_load_safetensors(t->session.model, path, 1, &classifier_replaced, err))
        return dt_error_prefix(err, "model.pretrained");
    dt_progress_line(&t->progress, NULL, "loaded pretrained weights from %s%s", path,
                     classifier_replaced ? " (classifier re-initialised for this dataset's "
                                           "classes)"
                                         : "");
    return 0;
}
