/* The defaults of SPEC.md's "Config" section, freeing a config, class display names, and the
 * YAML names of the config enums. */
#include <stdlib.h>
#include <string.h>

#include "config/config_internal.h"

static char *copy_string(const char *text) {
    size_t length = strlen(text) + 1;
    char *copy = malloc(length);
    if (copy) memcpy(copy, text, length);
    return copy;
}

void dt_config_defaults(dt_config *cfg) {
    memset(cfg, 0, sizeof *cfg);
    cfg->data.root = NULL; /* required: no default */
    cfg->data.val_fraction = 0.2;
    cfg->data.split_seed = 42;
    cfg->data.image_size = 224;
    cfg->data.resize = DT_RESIZE_SQUASH;
    const float mean[3] = {0.485f, 0.456f, 0.406f}, std[3] = {0.229f, 0.224f, 0.225f};
    memcpy(cfg->data.mean, mean, sizeof mean);
    memcpy(cfg->data.std, std, sizeof std);
    cfg->data.workers = 0;
    cfg->data.augment = DT_AUGMENT_NONE;
    cfg->data.class_names = NULL;
    cfg->data.n_class_names = 0;

    cfg->model.arch = copy_string("resnet18");
    cfg->model.pretrained = NULL;
    cfg->model.freeze = DT_FREEZE_NONE;

    cfg->train.epochs = 5;
    cfg->train.batch_size = 64;
    cfg->train.accumulate = 1;
    cfg->train.lr = 0.01;
    cfg->train.momentum = 0.0;
    cfg->train.nesterov = false;
    cfg->train.weight_decay = 0.0;
    cfg->train.schedule = DT_SCHEDULE_CONSTANT;
    cfg->train.step_size = 2;
    cfg->train.gamma = 0.1;
    cfg->train.warmup_epochs = 0.0;
    cfg->train.shuffle = true;
    cfg->train.seed = 0;

    cfg->runtime.device = DT_DEVICE_AUTO;
    cfg->runtime.threads = 0;
    cfg->runtime.precision = DT_PRECISION_FP32;

    cfg->output.dir = copy_string("runs/default");
    cfg->output.log_every = 20;
}

void dt_config_free(dt_config *cfg) {
    if (!cfg) return;
    free(cfg->data.root);
    for (int i = 0; i < cfg->data.n_class_names; i++) {
        free(cfg->data.class_names[i].folder);
        free(cfg->data.class_names[i].display);
    }
    free(cfg->data.class_names);
    free(cfg->model.arch);
    free(cfg->model.pretrained);
    free(cfg->output.dir);
    memset(cfg, 0, sizeof *cfg);
}

const char *dt_config_display_name(const dt_config *cfg, const char *folder) {
    for (int i = 0; i < cfg->data.n_class_names; i++)
        if (strcmp(cfg->data.class_names[i].folder, folder) == 0)
            return cfg->data.class_names[i].display;
    return folder;
}

/* Looks an enum value up in the choices of its key, so names live in one place (the table). */
static const char *enum_name(const char *path, int value) {
    int count = 0;
    const dt_config_key *keys = dt_config_keys(&count);
    for (int i = 0; i < count; i++)
        if (strcmp(keys[i].path, path) == 0)
            return value >= 0 && value < keys[i].n_choices ? keys[i].choices[value] : "?";
    return "?";
}

const char *dt_resize_mode_name(dt_resize_mode v) {
    return enum_name("data.resize", (int)v);
}
const char *dt_augment_mode_name(dt_augment_mode v) {
    return enum_name("data.augment", (int)v);
}
const char *dt_freeze_mode_name(dt_freeze_mode v) {
    return enum_name("model.freeze", (int)v);
}
const char *dt_schedule_kind_name(dt_schedule_kind v) {
    return enum_name("train.schedule", (int)v);
}
const char *dt_device_kind_name(dt_device_kind v) {
    return enum_name("runtime.device", (int)v);
}
const char *dt_precision_kind_name(dt_precision_kind v) {
    return enum_name("runtime.precision", (int)v);
}
