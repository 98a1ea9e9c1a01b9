/* The config key table: one row per key of README's "Config reference", in its order, with its
 * type, default, limits, field in dt_config and a one-line help; and what is derived from the rows
 * alone: lookups, the lists of names and the "did you mean" of unknown keys, the defaults, and
 * freeing a config. */
#include <ctype.h>
#include <limits.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

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
_Static_assert(sizeof(dt_optimizer_kind) == sizeof(int), "enum size");
_Static_assert(sizeof(dt_no_weight_decay) == sizeof(int), "enum size");

/* Names in the order of the C enums of dtrain/config.h. */
static const char *const resize_names[] = {"squash", "center"};
static const char *const augment_names[] = {"none", "flip", "crop_flip"};
static const char *const freeze_names[] = {"none", "backbone"};
static const char *const schedule_names[] = {"constant", "step", "cosine"};
static const char *const device_names[] = {"auto", "cpu", "cuda"};
static const char *const precision_names[] = {"fp32", "tf32", "bf16", "auto", "winograd"};
static const char *const nonfinite_names[] = {"stop", "skip"};
static const char *const optimizer_names[] = {"sgd", "adamw"};
static const char *const no_weight_decay_names[] = {"none", "norm_and_bias"};
/* model.arch is a string restricted to these names */
static const char *const arch_names[] = {"resnet18", "resnet34", "resnet50", "resnet101",
                                         "resnet152"};

static const char *const section_names[] = {"data", "model", "train", "runtime", "output"};

#define COUNT(array) ((int)(sizeof(array) / sizeof((array)[0])))

/* Row flags, short. */
#define REQUIRED DT_KEY_REQUIRED
#define RESUMABLE DT_KEY_RESUMABLE
#define WHEN_SET DT_KEY_WRITTEN_WHEN_SET
#define OPEN true
#define CLOSED false

/* The columns every row has: name, type, field. */
#define KEY(sec, key, kind)                                                                        \
    .section = #sec, .name = #key, .path = #sec "." #key, .type = (kind),                          \
    .offset = offsetof(dt_config, sec.key)

#define STRING_KEY(sec, key, dflt, flag_bits, text)                                                \
    {                                                                                              \
        KEY(sec, key, DT_KEY_STRING), .fallback.string = (dflt), .flags = (flag_bits),             \
                                      .help = (text)                                               \
    }
/* A string that must be one of names. */
#define NAMED_KEY(sec, key, dflt, names, flag_bits, text)                                          \
    {                                                                                              \
        KEY(sec, key, DT_KEY_STRING), .fallback.string = (dflt), .choices = (names),               \
                                      .n_choices = COUNT(names), .flags = (flag_bits),             \
                                      .help = (text)                                               \
    }
#define OPTIONAL_STRING_KEY(sec, key, flag_bits, text)                                             \
    { KEY(sec, key, DT_KEY_OPTIONAL_STRING), .flags = (flag_bits), .help = (text) }
#define INT_KEY(sec, key, dflt, lo, hi, flag_bits, text)                                           \
    {                                                                                              \
        KEY(sec, key, DT_KEY_INT), .fallback.integer = (dflt), .int_min = (lo), .int_max = (hi),   \
                                   .flags = (flag_bits), .help = (text)                            \
    }
#define SEED_KEY(sec, key, dflt, flag_bits, text)                                                  \
    { KEY(sec, key, DT_KEY_SEED), .fallback.integer = (dflt), .flags = (flag_bits), .help = (text) }
#define BOOL_KEY(sec, key, dflt, flag_bits, text)                                                  \
    { KEY(sec, key, DT_KEY_BOOL), .fallback.integer = (dflt), .flags = (flag_bits), .help = (text) }
#define ENUM_KEY(sec, key, dflt, names, flag_bits, text)                                           \
    {                                                                                              \
        KEY(sec, key, DT_KEY_ENUM), .fallback.integer = (dflt), .choices = (names),                \
                                    .n_choices = COUNT(names), .flags = (flag_bits),               \
                                    .help = (text)                                                 \
    }
/* A number with a lower bound only (inclusive unless OPEN). */
#define NUMBER_MIN_KEY(sec, key, dflt, lo, lo_open, flag_bits, text)                               \
    {                                                                                              \
        KEY(sec, key, DT_KEY_NUMBER), .fallback.number = (dflt), .has_min = true, .min = (lo),     \
                                      .min_exclusive = (lo_open), .flags = (flag_bits),            \
                                      .help = (text)                                               \
    }
#define NUMBER_RANGE_KEY(sec, key, dflt, lo, lo_open, hi, hi_open, flag_bits, text)                \
    {                                                                                              \
        KEY(sec, key, DT_KEY_NUMBER), .fallback.number = (dflt), .has_min = true, .min = (lo),     \
                                      .min_exclusive = (lo_open), .has_max = true, .max = (hi),    \
                                      .max_exclusive = (hi_open), .flags = (flag_bits),            \
                                      .help = (text)                                               \
    }
/* The same for a number the program uses as a 32-bit float: the bounds hold after conversion. */
#define FLOAT_MIN_KEY(sec, key, dflt, lo, lo_open, flag_bits, text)                                \
    {                                                                                              \
        KEY(sec, key, DT_KEY_NUMBER), .fallback.number = (dflt), .has_min = true, .min = (lo),     \
                                      .min_exclusive = (lo_open), .float32 = true,                 \
                                      .flags = (flag_bits), .help = (text)                         \
    }
#define FLOAT_RANGE_KEY(sec, key, dflt, lo, lo_open, hi, hi_open, flag_bits, text)                 \
    {                                                                                              \
        KEY(sec, key, DT_KEY_NUMBER), .fallback.number = (dflt), .has_min = true, .min = (lo),     \
                                      .min_exclusive = (lo_open), .has_max = true, .max = (hi),    \
                                      .max_exclusive = (hi_open), .float32 = true,                 \
                                      .flags = (flag_bits), .help = (text)                         \
    }
/* Three 32-bit floats (R, G, B); a lower bound, if any, holds for each. */
#define RGB_KEY(sec, key, r, g, b, text)                                                           \
    { KEY(sec, key, DT_KEY_RGB), .fallback.rgb = {(r), (g), (b)}, .help = (text) }
#define RGB_MIN_KEY(sec, key, r, g, b, lo, lo_open, text)                                          \
    {                                                                                              \
        KEY(sec, key, DT_KEY_RGB), .fallback.rgb = {(r), (g), (b)}, .has_min = true, .min = (lo),  \
                                   .min_exclusive = (lo_open), .help = (text)                      \
    }
/* Four 32-bit floats; a lower bound, if any, holds for each. */
#define FLOAT4_MIN_KEY(sec, key, v0, v1, v2, v3, lo, lo_open, text)                                \
    {                                                                                              \
        KEY(sec, key, DT_KEY_FLOAT4), .fallback.float4 = {(v0), (v1), (v2), (v3)},                 \
                                      .has_min = true, .min = (lo), .min_exclusive = (lo_open),    \
                                      .help = (text)                                               \
    }
/* Two 32-bit floats, each in [lo, hi) or the bounds given. */
#define PAIR_RANGE_KEY(sec, key, a, b, lo, lo_open, hi, hi_open, flag_bits, text)                  \
    {                                                                                              \
        KEY(sec, key, DT_KEY_PAIR), .fallback.pair = {(a), (b)}, .has_min = true, .min = (lo),     \
                                    .min_exclusive = (lo_open), .has_max = true, .max = (hi),      \
                                    .max_exclusive = (hi_open), .flags = (flag_bits),              \
                                    .help = (text)                                                 \
    }
#define NAME_MAP_KEY(sec, key, text)                                                               \
    { KEY(sec, key, DT_KEY_NAME_MAP), .help = (text) }

/* RESUMABLE: only changes how long, where or how fast the run goes, or what it does about a
 * non-finite step. train.batch_size and train.accumulate are compared through the global batch
 * by the trainer (the number of ranks may change). */
static const dt_config_key config_keys[] = {
    STRING_KEY(data, root, NULL, REQUIRED, "the ImageFolder directory (one sub-folder per class)"),
    OPTIONAL_STRING_KEY(data, val_root, WHEN_SET,
                        "a separate validation ImageFolder (then all of data.root trains)"),
    NUMBER_RANGE_KEY(data, val_fraction, 0.2, 0.0, OPEN, 1.0, CLOSED, 0,
                     "held-out share of data.root, evaluated after every epoch"),
    SEED_KEY(data, split_seed, 42, 0, "seed of the train/validation split"),
    INT_KEY(data, image_size, 224, 16, 1024, 0, "side of the square network input"),
    ENUM_KEY(data, resize, DT_RESIZE_SQUASH, resize_names, 0,
             "squash: whole image to size x size; center: shorter side to size*8/7, then crop"),
    RGB_KEY(data, mean, 0.485f, 0.456f, 0.406f, "per-channel mean of pixels scaled to [0,1]"),
    RGB_MIN_KEY(data, std, 0.229f, 0.224f, 0.225f, 0.0, OPEN,
                "per-channel standard deviation: (x - mean) / std"),
    INT_KEY(data, workers, 0, 0, DT_MAX_WORKERS, RESUMABLE,
            "decode threads per rank; 0 = this rank's share of the cores"),
    ENUM_KEY(data, augment, DT_AUGMENT_NONE, augment_names, 0, "training-time augmentation"),
    BOOL_KEY(data, trivial_augment, false, 0,
             "TrivialAugmentWide on training images (after the crop/flip)"),
    FLOAT4_MIN_KEY(data, color_jitter, 0.0f, 0.0f, 0.0f, 0.0f, 0.0, CLOSED,
                   "ColorJitter [brightness, contrast, saturation, hue] (hue <= 0.5); 0 = off"),
    FLOAT_RANGE_KEY(data, random_erasing, 0.0, 0.0, CLOSED, 1.0, CLOSED, 0,
                    "RandomErasing probability on training images; 0 = off"),
    NAME_MAP_KEY(data, class_names, "class folder -> display name, e.g. {cane: dog}"),
    STRING_KEY(data, cache, "none", 0, "decoded-sample cache: none, memory or a folder"),

    NAMED_KEY(model, arch, "resnet18", arch_names, 0, "the network: resnet18/34/50/101/152"),
    OPTIONAL_STRING_KEY(model, pretrained, 0, "safetensors file of torchvision/timm weights"),
    ENUM_KEY(model, freeze, DT_FREEZE_NONE, freeze_names, 0, "backbone: train the classifier only"),
    BOOL_KEY(model, zero_init_residual, false, 0,
             "each residual block's last BN weight starts at 0 (torchvision's zero_init_residual)"),

    INT_KEY(train, epochs, 5, 1, DT_MAX_EPOCHS, RESUMABLE, "passes over the training set"),
    INT_KEY(train, batch_size, 64, 1, DT_MAX_BATCH_SIZE, RESUMABLE,
            "images per micro-batch and rank"),
    INT_KEY(train, accumulate, 1, 1, DT_MAX_ACCUMULATE, RESUMABLE,
            "micro-batches per optimizer step"),
    FLOAT_MIN_KEY(train, lr, 0.01, 0.0, OPEN, 0, "learning rate"),
    FLOAT_RANGE_KEY(train, momentum, 0.0, 0.0, CLOSED, 1.0, OPEN, 0, "SGD momentum"),
    BOOL_KEY(train, nesterov, false, 0, "Nesterov momentum"),
    FLOAT_MIN_KEY(train, weight_decay, 0.0, 0.0, CLOSED, 0,
                  "sgd: L2 weight decay; adamw: decoupled (param *= 1 - lr * weight_decay)"),
    ENUM_KEY(train, optimizer, DT_OPTIMIZER_SGD, optimizer_names, 0,
             "sgd (torch.optim.SGD) or adamw (torch.optim.AdamW)"),
    PAIR_RANGE_KEY(train, betas, 0.9f, 0.999f, 0.0, CLOSED, 1.0, OPEN, 0,
                   "adamw: coefficients of the running averages of the gradient and its square"),
    FLOAT_MIN_KEY(train, eps, 1e-8, 0.0, OPEN, 0, "adamw: added to the denominator"),
    ENUM_KEY(train, no_weight_decay, DT_NO_WEIGHT_DECAY_NONE, no_weight_decay_names, 0,
             "norm_and_bias: no weight decay for BN weights and biases and every bias (timm)"),
    FLOAT_MIN_KEY(train, clip_grad_norm, 0.0, 0.0, CLOSED, 0,
                  "max global L2 norm of the averaged gradients (clip_grad_norm_); 0 = off"),
    ENUM_KEY(train, schedule, DT_SCHEDULE_CONSTANT, schedule_names, 0, "learning-rate schedule"),
    INT_KEY(train, step_size, 2, 1, INT_MAX, 0, "schedule step: epochs between decays"),
    NUMBER_RANGE_KEY(train, gamma, 0.1, 0.0, OPEN, 1.0, CLOSED, 0, "schedule step: decay factor"),
    NUMBER_MIN_KEY(train, warmup_epochs, 0.0, 0.0, CLOSED, 0,
                   "linear learning-rate warmup, may be fractional"),
    FLOAT_RANGE_KEY(train, label_smoothing, 0.0, 0.0, CLOSED, 1.0, CLOSED, 0,
                    "training targets (1 - eps) onehot + eps / classes"),
    FLOAT_MIN_KEY(train, mixup_alpha, 0.0, 0.0, CLOSED, 0,
                  "mixup: lambda ~ Beta(alpha, alpha) per batch; 0 = off"),
    FLOAT_MIN_KEY(train, cutmix_alpha, 0.0, 0.0, CLOSED, 0,
                  "cutmix: lambda ~ Beta(alpha, alpha) per batch; 0 = off"),
    FLOAT_RANGE_KEY(train, mix_prob, 1.0, 0.0, CLOSED, 1.0, CLOSED, 0,
                    "share of batches mixed when mixup or cutmix is on"),
    FLOAT_RANGE_KEY(train, mix_switch_prob, 0.5, 0.0, CLOSED, 1.0, CLOSED, 0,
                    "both on: share of mixed batches that use cutmix"),
    BOOL_KEY(train, shuffle, true, 0, "seeded per-epoch permutation"),
    SEED_KEY(train, seed, 0, 0, "initial weights, data order, augmentation"),
    ENUM_KEY(train, nonfinite, DT_NONFINITE_STOP, nonfinite_names, RESUMABLE,
             "what a NaN/Inf gradient does"),
    INT_KEY(train, max_skipped_steps, 10, 1, 1000000, RESUMABLE,
            "nonfinite skip: stop after this many in a row"),
    FLOAT_RANGE_KEY(train, ema_decay, 0.0, 0.0, CLOSED, 1.0, OPEN, 0,
                    "moving average of the weights (timm ModelEmaV2 decay); 0 = off"),
    INT_KEY(train, early_stop_patience, 0, 0, DT_MAX_EPOCHS, RESUMABLE,
            "stop after this many evaluations without a better accuracy; 0 = off"),

    ENUM_KEY(runtime, device, DT_DEVICE_AUTO, device_names, RESUMABLE,
             "auto: a GPU when one is usable, else the CPU"),
    INT_KEY(runtime, threads, 0, 0, DT_MAX_THREADS, RESUMABLE,
            "compute threads per rank; 0 = OMP_NUM_THREADS or this rank's share"),
    ENUM_KEY(runtime, precision, DT_PRECISION_AUTO, precision_names, RESUMABLE,
             "auto: tf32 on GPUs that have it, fp32 on the CPU"),
    INT_KEY(runtime, bucket_mb, 0, 0, 1024, RESUMABLE, "gradient all-reduce bucket MiB; 0 = 25"),
    INT_KEY(runtime, timeout_s, 600, 1, 7 * 24 * 3600, RESUMABLE,
            "a rank without progress this long ends the job"),
    BOOL_KEY(runtime, deterministic, false, RESUMABLE, "bitwise-repeatable runs"),

    STRING_KEY(output, dir, "runs/default", RESUMABLE, "where the run's files go"),
    INT_KEY(output, log_every, 20, 1, INT_MAX, RESUMABLE, "log line every N optimizer steps"),
    INT_KEY(output, checkpoint_every, 500, 0, INT_MAX, RESUMABLE,
            "optimizer steps between checkpoints; 0 = epoch ends only"),
    INT_KEY(output, keep_checkpoints, 3, 1, 1000000, RESUMABLE, "complete checkpoints kept"),
    BOOL_KEY(output, tensorboard, true, RESUMABLE, "TensorBoard event files"),
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

/* ---- defaults and freeing, from the rows ---- */

void dt_config_defaults(dt_config *cfg) {
    memset(cfg, 0, sizeof *cfg);
    for (int i = 0; i < COUNT(config_keys); i++) {
        const dt_config_key *k = &config_keys[i];
        void *field = (char *)cfg + k->offset;
        switch (k->type) {
        case DT_KEY_STRING:
        case DT_KEY_OPTIONAL_STRING:
            *(char **)field = k->fallback.string ? strdup(k->fallback.string) : NULL;
            break;
        case DT_KEY_INT:
        case DT_KEY_ENUM:
            *(int *)field = (int)k->fallback.integer;
            break;
        case DT_KEY_SEED:
            *(uint64_t *)field = (uint64_t)k->fallback.integer;
            break;
        case DT_KEY_NUMBER:
            *(double *)field = k->fallback.number;
            break;
        case DT_KEY_BOOL:
            *(bool *)field = k->fallback.integer != 0;
            break;
        case DT_KEY_RGB:
            memcpy(field, k->fallback.rgb, sizeof k->fallback.rgb);
            break;
        case DT_KEY_FLOAT4:
            memcpy(field, k->fallback.float4, sizeof k->fallback.float4);
            break;
        case DT_KEY_PAIR:
            memcpy(field, k->fallback.pair, sizeof k->fallback.pair);
            break;
        case DT_KEY_NAME_MAP: /* empty: cleared above */
            break;
        }
    }
}

void dt_config_free(dt_config *cfg) {
    if (!cfg) return;
    for (int i = 0; i < COUNT(config_keys); i++) {
        const dt_config_key *k = &config_keys[i];
        if (k->type == DT_KEY_STRING || k->type == DT_KEY_OPTIONAL_STRING)
            free(*(char **)((char *)cfg + k->offset));
    }
    for (int i = 0; i < cfg->data.n_class_names; i++) {
        free(cfg->data.class_names[i].folder);
        free(cfg->data.class_names[i].display);
    }
    free(cfg->data.class_names);
    memset(cfg, 0, sizeof *cfg);
}

const char *dt_config_display_name(const dt_config *cfg, const char *folder) {
    for (int i = 0; i < cfg->data.n_class_names; i++)
        if (strcmp(cfg->data.class_names[i].folder, folder) == 0)
            return cfg->data.class_names[i].display;
    return folder;
}

dt_precision_kind dt_precision_resolve(dt_precision_kind requested, int gpu_has_tf32) {
    if (requested != DT_PRECISION_AUTO) return requested;
    return gpu_has_tf32 ? DT_PRECISION_TF32 : DT_PRECISION_FP32;
}

/* ---- "did you mean": the closest name of the table ---- */

/* Names longer than this are never close to a config key. */
enum { LONGEST_COMPARED = 64 };

/* Optimal-string-alignment distance, ignoring letter case. Both lengths <= LONGEST_COMPARED. */
static int edit_distance(const char *a, const char *b) {
    size_t n = strlen(a), m = strlen(b);
    int before_previous[LONGEST_COMPARED + 1], previous[LONGEST_COMPARED + 1],
        current[LONGEST_COMPARED + 1];
    for (size_t j = 0; j <= m; j++) previous[j] = (int)j;
    for (size_t i = 1; i <= n; i++) {
        current[0] = (int)i;
        for (size_t j = 1; j <= m; j++) {
            int ca = tolower((unsigned char)a[i - 1]), cb = tolower((unsigned char)b[j - 1]);
            int cost = ca != cb;
            int best = previous[j] + 1;
            if (current[j - 1] + 1 < best) best = current[j - 1] + 1;
            if (previous[j - 1] + cost < best) best = previous[j - 1] + cost;
            if (i > 1 && j > 1 && ca == tolower((unsigned char)b[j - 2]) &&
                tolower((unsigned char)a[i - 2]) == cb && before_previous[j - 2] + 1 < best)
                best = before_previous[j - 2] + 1;
            current[j] = best;
        }
        memcpy(before_previous, previous, sizeof previous);
        memcpy(previous, current, sizeof current);
    }
    return previous[m];
}

static int starts_with_ignoring_case(const char *text, const char *prefix) {
    size_t length = strlen(prefix);
    return strlen(text) >= length && strncasecmp(text, prefix, length) == 0;
}

const char *dt_config_suggest(const char *given, const char *const *candidates, int n_candidates) {
    size_t given_length = strlen(given);
    if (given_length == 0 || given_length > LONGEST_COMPARED) return NULL;
    const char *best = NULL;
    int best_distance = 3;
    for (int i = 0; i < n_candidates; i++) {
        size_t length = strlen(candidates[i]);
        if (length > LONGEST_COMPARED) continue;
        /* Short names allow fewer edits, so "xy" does not suggest "lr". */
        int allowed = (int)(length / 2);
        if (allowed < 1) allowed = 1;
        if (allowed > 2) allowed = 2;
        int distance = edit_distance(given, candidates[i]);
        if (distance <= allowed && distance < best_distance) {
            best = candidates[i];
            best_distance = distance;
        }
    }
    if (best) return best;
    for (int i = 0; i < n_candidates; i++) {
        size_t length = strlen(candidates[i]);
        if ((given_length >= 3 && starts_with_ignoring_case(candidates[i], given)) ||
            (length >= 3 && starts_with_ignoring_case(given, candidates[i])))
            return candidates[i];
    }
    return NULL;
}

/* The key of another section named exactly given (ignoring case), or NULL. */
static const dt_config_key *same_name_elsewhere(const char *section, const char *given) {
    for (int i = 0; i < COUNT(config_keys); i++)
        if ((!section || strcmp(config_keys[i].section, section) != 0) &&
            strcasecmp(config_keys[i].name, given) == 0)
            return &config_keys[i];
    return NULL;
}

static void join_names(const char *const *names, int count, char *buffer, size_t size) {
    size_t used = 0;
    buffer[0] = '\0';
    for (int i = 0; i < count && used < size; i++) {
        int n = snprintf(buffer + used, size - used, "%s%s", i ? ", " : "", names[i]);
        if (n < 0) break;
        used += (size_t)n;
    }
}

void dt_config_unknown_key_advice(const char *section, const char *given, bool full_paths,
                                  char *buffer, size_t size) {
    const char *names[COUNT(config_keys)];
    int n_names = 0;
    for (int i = 0; section && i < COUNT(config_keys); i++)
        if (strcmp(config_keys[i].section, section) == 0) names[n_names++] = config_keys[i].name;
    if (!section) {
        /* "data.root: x" at the top level: a dotted path written where nesting was meant. */
        const char *dot = strchr(given, '.');
        if (dot) {
            char head[64];
            size_t head_length = (size_t)(dot - given);
            if (head_length < sizeof head) {
                memcpy(head, given, head_length);
                head[head_length] = '\0';
                if (dt_config_find_key(head, dot + 1)) {
                    snprintf(buffer, size, "; in a file keys are nested: write '%s:' under '%s:'",
                             dot + 1, head);
                    return;
                }
            }
        }
    }
    const char *close = section ? dt_config_suggest(given, names, n_names)
                                : dt_config_suggest(given, section_names, COUNT(section_names));
    if (close) {
        if (section && full_paths)
            snprintf(buffer, size, ", did you mean '%s.%s'?", section, close);
        else
            snprintf(buffer, size, ", did you mean '%s'?", close);
        return;
    }
    const dt_config_key *elsewhere = same_name_elsewhere(section, given);
    if (elsewhere) {
        snprintf(buffer, size, ", did you mean '%s'?", elsewhere->path);
        return;
    }
    char list[512];
    if (section) {
        join_names(names, n_names, list, sizeof list);
        snprintf(buffer, size, " (%s keys: %s)", section, list);
    } else {
        join_names(section_names, COUNT(section_names), list, sizeof list);
        snprintf(buffer, size, " (sections: %s)", list);
    }
}
