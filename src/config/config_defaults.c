/* The defaults of README's "Config reference", freeing a config, and class display names. */
#include <stdlib.h>
#include <string.h>

#include "config/config_internal.h"

void dt_config_defaults(dt_config *cfg) {
    memset(cfg, 0, sizeof *cfg);
    cfg->data.root = NULL; /* required: no default */
    cfg->data.val_root = NULL;
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
    cfg->data.cache = strdup("none");

    cfg->model.arch = strdup("resnet18");
    cfg->model.pretrained = NULL;
    cfg->model.freeze = DT_FREEZE_NONE;
    cfg->model.zero_init_residual = false;

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
    cfg->train.nonfinite = DT_NONFINITE_STOP;
    cfg->train.max_skipped_steps = 10;

    cfg->runtime.device = DT_DEVICE_AUTO;
    cfg->runtime.threads = 0;
    cfg->runtime.precision = DT_PRECISION_AUTO;
    cfg->runtime.bucket_mb = 0;
    cfg->runtime.timeout_s = 600;
    cfg->runtime.deterministic = false;

    cfg->output.dir = strdup("runs/default");
    cfg->output.log_every = 20;
    cfg->output.checkpoint_every = 500;
    cfg->output.keep_checkpoints = 3;
    cfg->output.tensorboard = true;
}

void dt_config_free(dt_config *cfg) {
    if (!cfg) return;
    free(cfg->data.root);
    free(cfg->data.val_root);
    for (int i = 0; i < cfg->data.n_class_names; i++) {
        free(cfg->data.class_names[i].folder);
        free(cfg->data.class_names[i].display);
    }
    free(cfg->data.class_names);
    free(cfg->data.cache);
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
