/* The config key table: every key of README's "Config reference", in its order, with its type,
 * its field in dt_config and its allowed range or values. */
#include <limits.h>
#include <stddef.h>
#include <string.h>

#include "config/config_internal.h"
#include "dtrain/limits.h"

/* Enum keys are stored through an int pointer; the enums must be int-sized for that. */
_Static_assert(sizeof(dt_resize_mode) == sizeof(int), "enum size");
_Static_assert(sizeof(dt_augment_mode) == sizeof(int), "enum size");
_Static_assert(sizeof(dt_freeze_mode) == sizeof(int), "enum size");
_Static_assert(sizeof(dt_schedule_kind) == sizeof(int), "enum size");
_Static_assert(sizeof(dt_device_kind) == sizeof(int), "enum size");
_Static_assert(sizeof(dt_precision_kind) == sizeof(int), "enum size");
_Static_assert(sizeof(dt_nonfinite_policy) == sizeof(int), "enum size");

/* Names in the order of the C enums of dtrain/config.h. */
static const char *const resize_names[] = {"squash", "center"};
static const char *const augment_names[] = {"none", "flip", "crop_flip"};
static const char *const freeze_names[] = {"none", "backbone"};
static const char *const schedule_names[] = {"constant", "step", "cosine"};
static const char *const device_names[] = {"auto", "cpu", "cuda"};
static const char *const precision_names[] = {"fp32", "tf32", "bf16", "auto", "winograd"};
static const char *const arch_names[] = {"resnet18"};
static const char *const nonfinite_names[] = {"stop", "skip"};

static const char *const section_names[] = {"data", "model", "train", "runtime", "output"};

#define FIELD(member) offsetof(dt_config, member)
#define COUNT(array) ((int)(sizeof(array) / sizeof((array)[0])))

#define STRING_KEY(sec, key)                                                                       \
    {                                                                                              \
        .section = #sec, .name = #key, .path = #sec "." #key, .type = DT_KEY_STRING,               \
        .offset = FIELD(sec.key)                                                                   \
    }
#define INT_KEY(sec, key, lo, hi)                                                                  \
    {                                                                                              \
        .section = #sec, .name = #key, .path = #sec "." #key, .type = DT_KEY_INT,                  \
        .offset = FIELD(sec.key), .int_min = (lo), .int_max = (hi)                                 \
    }
#define SEED_KEY(sec, key)                                                                         \
    {                                                                                              \
        .section = #sec, .name = #key, .path = #sec "." #key, .type = DT_KEY_SEED,                 \
        .offset = FIELD(sec.key)                                                                   \
    }
#define BOOL_KEY(sec, key)                                                                         \
    {                                                                                              \
        .section = #sec, .name = #key, .path = #sec "." #key, .type = DT_KEY_BOOL,                 \
        .offset = FIELD(sec.key)                                                                   \
    }
#define ENUM_KEY(sec, key, names)                                                                  \
    {                                                                                              \
        .section = #sec, .name = #key, .path = #sec "." #key, .type = DT_KEY_ENUM,                 \
        .offset = FIELD(sec.key), .choices = (names), .n_choices = COUNT(names)                    \
    }
/* The same for a number the program uses as a 32-bit float: the bounds hold after conversion. */
#define FLOAT_MIN_KEY(sec, key, lo, open)                                                          \
    {                                                                                              \
        .section = #sec, .name = #key, .path = #sec "." #key, .type = DT_KEY_NUMBER,               \
        .offset = FIELD(sec.key), .has_min = true, .min = (lo), .min_exclusive = (open),           \
        .float32 = true                                                                            \
    }
#define FLOAT_RANGE_KEY(sec, key, lo, lo_open, hi, hi_open)                                        \
    {                                                                                              \
        .section = #sec, .name = #key, .path = #sec "." #key, .type = DT_KEY_NUMBER,               \
        .offset = FIELD(sec.key), .has_min = true, .min = (lo), .min_exclusive = (lo_open),        \
        .has_max = true, .max = (hi), .max_exclusive = (hi_open), .float32 = true                  \
    }
/* A number with a lower bound only (lo, inclusive unless open). */
#define NUMBER_MIN_KEY(sec, key, lo, open)                                                         \
    {                                                                                              \
        .section = #sec, .name = #key, .path = #sec "." #key, .type = DT_KEY_NUMBER,               \
        .offset = FIELD(sec.key), .has_min = true, .min = (lo), .min_exclusive = (open)            \
    }
#define NUMBER_RANGE_KEY(sec, key, lo, lo_open, hi, hi_open)                                       \
    {                                                                                              \
        .section = #sec, .name = #key, .path = #sec "." #key, .type = DT_KEY_NUMBER,               \
        .offset = FIELD(sec.key), .has_min = true, .min = (lo), .min_exclusive = (lo_open),        \
        .has_max = true, .max = (hi), .max_exclusive = (hi_open)                                   \
    }

static const dt_config_key config_keys[] = {
    STRING_KEY(data, root),
    {.section = "data",
     .name = "val_root",
     .path = "data.val_root",
     .type = DT_KEY_OPTIONAL_STRING,
     .offset = FIELD(data.val_root)},
    NUMBER_RANGE_KEY(data, val_fraction, 0.0, true, 1.0, false),
    SEED_KEY(data, split_seed),
    INT_KEY(data, image_size, 16, 1024),
    ENUM_KEY(data, resize, resize_names),
    {.section = "data",
     .name = "mean",
     .path = "data.mean",
     .type = DT_KEY_RGB,
     .offset = FIELD(data.mean)},
    {.section = "data",
     .name = "std",
     .path = "data.std",
     .type = DT_KEY_RGB,
     .offset = FIELD(data.std),
     .has_min = true,
     .min = 0.0,
     .min_exclusive = true},
    INT_KEY(data, workers, 0, DT_MAX_WORKERS),
    ENUM_KEY(data, augment, augment_names),
    {.section = "data",
     .name = "class_names",
     .path = "data.class_names",
     .type = DT_KEY_NAME_MAP,
     .offset = FIELD(data.class_names)},
    STRING_KEY(data, cache),

    {.section = "model",
     .name = "arch",
     .path = "model.arch",
     .type = DT_KEY_STRING,
     .offset = FIELD(model.arch),
     .choices = arch_names,
     .n_choices = COUNT(arch_names)},
    {.section = "model",
     .name = "pretrained",
     .path = "model.pretrained",
     .type = DT_KEY_OPTIONAL_STRING,
     .offset = FIELD(model.pretrained)},
    ENUM_KEY(model, freeze, freeze_names),

    INT_KEY(train, epochs, 1, DT_MAX_EPOCHS),
    INT_KEY(train, batch_size, 1, DT_MAX_BATCH_SIZE),
    INT_KEY(train, accumulate, 1, DT_MAX_ACCUMULATE),
    FLOAT_MIN_KEY(train, lr, 0.0, true),
    FLOAT_RANGE_KEY(train, momentum, 0.0, false, 1.0, true),
    BOOL_KEY(train, nesterov),
    FLOAT_MIN_KEY(train, weight_decay, 0.0, false),
    ENUM_KEY(train, schedule, schedule_names),
    INT_KEY(train, step_size, 1, INT_MAX),
    NUMBER_RANGE_KEY(train, gamma, 0.0, true, 1.0, false),
    NUMBER_MIN_KEY(train, warmup_epochs, 0.0, false),
    BOOL_KEY(train, shuffle),
    SEED_KEY(train, seed),
    ENUM_KEY(train, nonfinite, nonfinite_names),
    INT_KEY(train, max_skipped_steps, 1, 1000000),

    ENUM_KEY(runtime, device, device_names),
    INT_KEY(runtime, threads, 0, DT_MAX_THREADS),
    ENUM_KEY(runtime, precision, precision_names),
    INT_KEY(runtime, bucket_mb, 0, 1024),
    INT_KEY(runtime, timeout_s, 1, 7 * 24 * 3600),
    BOOL_KEY(runtime, deterministic),

    STRING_KEY(output, dir),
    INT_KEY(output, log_every, 1, INT_MAX),
    INT_KEY(output, checkpoint_every, 0, INT_MAX),
    INT_KEY(output, keep_checkpoints, 1, 1000000),
    BOOL_KEY(output, tensorboard),
};

const dt_config_key *dt_config_keys(int *count) {
    *count = COUNT(config_keys);
    return config_keys;
}

const char *const *dt_config_sections(int *count) {
    *count = COUNT(section_names);
    return section_names;
}

const dt_config_key *dt_config_find_key(const char *section, const char *name) {
    for (int i = 0; i < COUNT(config_keys); i++)
        if (strcmp(config_keys[i].section, section) == 0 && strcmp(config_keys[i].name, name) == 0)
            return &config_keys[i];
    return NULL;
}

int dt_config_key_index(const dt_config_key *key) {
    return (int)(key - config_keys);
}

int dt_config_section_key_names(const char *section, const char **names, int max) {
    int n = 0;
    for (int i = 0; i < COUNT(config_keys) && n < max; i++)
        if (strcmp(config_keys[i].section, section) == 0) names[n++] = config_keys[i].name;
    return n;
}

dt_precision_kind dt_precision_resolve(dt_precision_kind requested, int gpu_has_tf32) {
    if (requested != DT_PRECISION_AUTO) return requested;
    return gpu_has_tf32 ? DT_PRECISION_TF32 : DT_PRECISION_FP32;
}

const char *dt_precision_name(dt_precision_kind precision) {
    if ((int)precision < 0 || (size_t)precision >= sizeof precision_names / sizeof *precision_names)
        return "?";
    return precision_names[precision];
}
