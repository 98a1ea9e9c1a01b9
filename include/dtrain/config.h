/* The resolved run configuration (README "Config reference") and the strict YAML reader that fills
 * it. */
#ifndef DTRAIN_CONFIG_H
#define DTRAIN_CONFIG_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "dtrain/backend.h" /* dt_precision_kind */
#include "dtrain/error.h"

typedef enum { DT_RESIZE_SQUASH, DT_RESIZE_CENTER } dt_resize_mode;
typedef enum { DT_AUGMENT_NONE, DT_AUGMENT_FLIP, DT_AUGMENT_CROP_FLIP } dt_augment_mode;
typedef enum { DT_FREEZE_NONE, DT_FREEZE_BACKBONE } dt_freeze_mode;
typedef enum { DT_SCHEDULE_CONSTANT, DT_SCHEDULE_STEP, DT_SCHEDULE_COSINE } dt_schedule_kind;
typedef enum { DT_DEVICE_AUTO, DT_DEVICE_CPU, DT_DEVICE_CUDA } dt_device_kind;
typedef enum { DT_NONFINITE_STOP, DT_NONFINITE_SKIP } dt_nonfinite_policy;
typedef enum { DT_OPTIMIZER_SGD, DT_OPTIMIZER_ADAMW } dt_optimizer_kind;
typedef enum { DT_NO_WEIGHT_DECAY_NONE, DT_NO_WEIGHT_DECAY_NORM_AND_BIAS } dt_no_weight_decay;

typedef struct dt_class_rename {
    char *folder;  /* class folder name, e.g. "cane" */
    char *display; /* name shown in logs and plots, e.g. "dog" */
} dt_class_rename;

typedef struct dt_config {
    struct {
        char *root;          /* required */
        char *val_root;      /* NULL, or the whole validation set (then root is all training) */
        double val_fraction; /* 1: everything is held out (dtrain eval on a whole folder) */
        uint64_t split_seed;
        int image_size;
        dt_resize_mode resize;
        float mean[3];
        float std[3];
        int workers; /* 0 = choose */
        dt_augment_mode augment;
        bool trivial_augment;  /* TrivialAugmentWide after the crop/flip */
        float color_jitter[4]; /* ColorJitter brightness, contrast, saturation, hue; 0 = off */
        double random_erasing; /* RandomErasing probability; 0 = off */
        dt_class_rename *class_names; /* in file order */
        int n_class_names;
        char *cache; /* "none", "memory" or a folder (decoded-sample cache) */
    } data;
    struct {
        char *arch;       /* "resnet18", "resnet34", "resnet50", "resnet101" or "resnet152" */
        char *pretrained; /* NULL when not given */
        dt_freeze_mode freeze;
        bool zero_init_residual; /* each residual block's last BN weight starts at 0 */
    } model;
    struct {
        int epochs;
        int batch_size; /* per rank */
        int accumulate;
        double lr;
        double momentum;
        bool nesterov;
        double weight_decay;
        dt_optimizer_kind optimizer;
        float betas[2];                     /* adamw: torch.optim.AdamW betas */
        double eps;                         /* adamw: torch.optim.AdamW eps */
        dt_no_weight_decay no_weight_decay; /* norm_and_bias: timm's exclusion (ndim <= 1) */
        double clip_grad_norm;              /* 0: off; else max_norm of torch's clip_grad_norm_ */
        dt_schedule_kind schedule;
        int step_size; /* schedule=step: epochs between decays (torch StepLR step_size) */
        double gamma;  /* schedule=step: decay factor (torch StepLR gamma) */
        double warmup_epochs;
        double label_smoothing; /* torch CrossEntropyLoss(label_smoothing=) of the training loss */
        double mixup_alpha;     /* timm Mixup mixup_alpha; 0 = off */
        double cutmix_alpha;    /* timm Mixup cutmix_alpha; 0 = off */
        double mix_prob;        /* timm Mixup prob */
        double mix_switch_prob; /* timm Mixup switch_prob */
        bool shuffle;
        uint64_t seed;
        dt_nonfinite_policy nonfinite; /* what a NaN/Inf gradient does */
        int max_skipped_steps;         /* nonfinite=skip: stop after this many in a row */
        double ema_decay;        /* moving average of the weights (timm ModelEmaV2); 0 = off */
        int early_stop_patience; /* evaluations without improvement before stopping; 0 = off */
    } train;
    struct {
        dt_device_kind device;
        int threads; /* 0 = cores / local ranks */
        dt_precision_kind precision;
        int bucket_mb;      /* gradient all-reduce bucket size in MiB; 0 = dtrain's choice */
        int timeout_s;      /* a rank without progress this long ends the job */
        bool deterministic; /* bitwise-repeatable runs (GPU: deterministic cuDNN engines) */
    } runtime;
    struct {
        char *dir;
        int log_every;
        int checkpoint_every; /* optimizer steps; 0 = epoch ends and stop signals only */
        int keep_checkpoints;
        bool tensorboard; /* event files under dir/tensorboard/ */
    } output;
} dt_config;

/* Fills cfg with the defaults of the key table (README's "Config reference"; data.root NULL).
 * Strings are heap copies. */
void dt_config_defaults(dt_config *cfg);

/* Reads the YAML file at path, then applies overrides ("key.path=value", YAML-style values),
 * then validates. Any problem fails with exit code 2 and a message
 * "FILE:LINE:COL: key.path: what is wrong" (overrides report "override 'arg': key.path: ..."). */
int dt_config_load(const char *path, int n_overrides, char *const *overrides, dt_config *cfg,
                   dt_error *err);

/* Writes the resolved config as YAML that dt_config_load reads back to the same values. */
int dt_config_write_yaml(const dt_config *cfg, FILE *out);

/* 64-bit FNV-1a hash of the resolved YAML text (same config => same hash on every rank). */
uint64_t dt_config_hash(const dt_config *cfg);

/* Display name of a class folder: the class_names mapping if present, else the folder name. */
const char *dt_config_display_name(const dt_config *cfg, const char *folder);

/* The precision a run uses: auto is tf32 (TF32 tensor-core convolutions and matrix products, as
 * PyTorch's default for cuDNN convolutions) on a GPU that has TF32 (gpu_has_tf32: compute
 * capability 8.0 or newer), fp32 elsewhere (the CPU); fp32, tf32 and bf16 are kept. */
dt_precision_kind dt_precision_resolve(dt_precision_kind requested, int gpu_has_tf32);

void dt_config_free(dt_config *cfg);

/* Lists every config key, one line each, in the table's order: "path TAB type TAB limits TAB
 * default TAB help" (limits may be empty; the default as config.yaml writes it, or "required"). */
int dt_config_write_key_list(FILE *out);

/* Keys that a resume may not change (data, model, optimizer and schedule keys; train.epochs,
 * train.batch_size/accumulate (checked through the global batch), the non-finite policy,
 * runtime.* and output.* may change): writes the differing key paths, comma-separated, into out
 * and returns how many differ. */
int dt_config_resume_differences(const dt_config *saved, const dt_config *now, char *out,
                                 size_t size);
/* The keys a resume may change (the table's resumable ones), comma-separated into out. */
void dt_config_resumable_keys(char *out, size_t size);

#endif
