/* dt_config_load: defaults, then the YAML file (section by section, refusing unknown and
 * duplicate keys), then the command-line overrides, then the checks that involve several keys. */
#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/config_internal.h"
#include "dtrain/limits.h"
#include "dtrain/platform.h"

/* A config is a few hundred bytes; anything this large is the wrong file. */
enum { LARGEST_CONFIG_BYTES = 1 << 20, MAX_KEYS = 64 };

/* Where a key's current value was set, to locate errors found after all values are known. */
typedef struct key_origin {
    bool set;
    dt_config_origin origin;
    int line, column;
} key_origin;

typedef struct loader {
    dt_config *cfg;
    dt_error *err;
    dt_config_origin file;
    key_origin origins[MAX_KEYS];
    int data_line, data_column; /* the "data:" key, where a missing data.root is reported */
} loader;

/* Reads the config file (NUL-terminated), with the config's own messages. */
static int read_config_file(const char *path, char **text, size_t *length, dt_error *err) {
    uint8_t *bytes;
    if (dt_read_file_or_pipe(path, LARGEST_CONFIG_BYTES, &bytes, length, err) == 0) {
        *text = (char *)bytes;
        return 0;
    }
    int cause = errno;
    if (cause == EFBIG)
        return dt_fail_usage(err, "config '%s' is larger than %d bytes; is it the right file?",
                             path, LARGEST_CONFIG_BYTES);
    if (cause == ENOMEM) return dt_fail(err, "out of memory reading config '%s'", path);
    return dt_fail_usage(err, "cannot open config '%s': %s", path, strerror(cause));
}

static int set_key(loader *l, const dt_config_key *key, const dt_yaml_node *value,
                   const dt_config_origin *origin) {
    if (dt_config_assign(l->cfg, key, value, origin, l->err)) return -1;
    key_origin *o = &l->origins[dt_config_key_index(key)];
    o->set = true;
    o->origin = *origin;
    o->line = value->line;
    o->column = value->column;
    return 0;
}

/* Fails unless the mapping's key at index 2*i is a scalar not seen before in that mapping. */
static int check_mapping_key(loader *l, const dt_yaml_node *mapping, int i, const char *parent) {
    const dt_yaml_node *key = &mapping->children[2 * i];
    if (key->kind != DT_YAML_SCALAR) {
        char got[64];
        return dt_config_fail_at(l->err, &l->file, key->line, key->column, parent,
                                 "keys must be plain names, got %s",
                                 dt_yaml_describe(key, got, sizeof got));
    }
    char path[256];
    snprintf(path, sizeof path, "%s%s%.128s", parent ? parent : "", parent ? "." : "", key->text);
    return dt_config_check_duplicate_key(l->err, &l->file, mapping, i, path);
}

static int load_section(loader *l, const char *section, const dt_yaml_node *value) {
    if (value->kind != DT_YAML_MAPPING) {
        char got[128];
        return dt_config_fail_at(l->err, &l->file, value->line, value->column, section,
                                 "expected a mapping of %s keys, got %s", section,
                                 dt_yaml_describe(value, got, sizeof got));
    }
    for (int i = 0; i < value->n_children / 2; i++) {
        if (check_mapping_key(l, value, i, section)) return -1;
        const dt_yaml_node *name = &value->children[2 * i];
        const dt_config_key *key = dt_config_find_key(section, name->text);
        if (!key) {
            char advice[640], path[256];
            dt_config_unknown_key_advice(section, name->text, false, advice, sizeof advice);
            snprintf(path, sizeof path, "%s.%.128s", section, name->text);
            return dt_config_fail_at(l->err, &l->file, name->line, name->column, path,
                                     "unknown key%s", advice);
        }
        if (set_key(l, key, &value->children[2 * i + 1], &l->file)) return -1;
    }
    return 0;
}

static int load_document(loader *l, const dt_yaml_node *root) {
    if (!root) return 0;
    /* A document with nothing in it ("---" alone) reads as empty. */
    if (root->kind == DT_YAML_SCALAR && !root->quoted && root->text[0] == '\0') return 0;
    if (root->kind != DT_YAML_MAPPING) {
        char got[128];
        return dt_config_fail_at(l->err, &l->file, root->line, root->column, NULL,
                                 "the top level must be a mapping of sections (data, model, "
                                 "train, runtime, output), got %s",
                                 dt_yaml_describe(root, got, sizeof got));
    }
    int n_sections = 0;
    const char *const *sections = dt_config_sections(&n_sections);
    for (int i = 0; i < root->n_children / 2; i++) {
        if (check_mapping_key(l, root, i, NULL)) return -1;
        const dt_yaml_node *name = &root->children[2 * i];
        const char *section = NULL;
        for (int s = 0; s < n_sections; s++)
            if (strcmp(sections[s], name->text) == 0) section = sections[s];
        if (!section) {
            char advice[640];
            dt_config_unknown_key_advice(NULL, name->text, false, advice, sizeof advice);
            return dt_config_fail_at(l->err, &l->file, name->line, name->column, name->text,
                                     "unknown section%s", advice);
        }
        if (strcmp(section, "data") == 0) {
            l->data_line = name->line;
            l->data_column = name->column;
        }
        if (load_section(l, section, &root->children[2 * i + 1])) return -1;
    }
    return 0;
}

static int load_text(loader *l, const char *text, size_t length) {
    dt_yaml_node *root = NULL;
    int rc = dt_yaml_parse(text, length, &l->file, NULL, &root, l->err);
    if (!rc) rc = load_document(l, root);
    dt_yaml_free(root);
    return rc;
}

static int apply_override(loader *l, const char *arg) {
    dt_config_origin origin = {.file = NULL, .override_arg = arg};
    const dt_config_key *key = NULL;
    dt_yaml_node *value = NULL;
    int rc = dt_config_parse_override(arg, &origin, &key, &value, l->err);
    if (!rc) rc = set_key(l, key, value, &origin);
    dt_yaml_free(value);
    return rc;
}

/* Fails at where the key was set (the file position or the override). */
static int fail_at_key(loader *l, const char *path, const char *message) {
    int count = 0;
    const dt_config_key *keys = dt_config_keys(&count);
    for (int i = 0; i < count; i++) {
        if (strcmp(keys[i].path, path) != 0 || !l->origins[i].set) continue;
        const key_origin *o = &l->origins[i];
        return dt_config_fail_at(l->err, &o->origin, o->line, o->column, path, "%s", message);
    }
    return dt_config_fail_at(l->err, &l->file, 1, 1, path, "%s", message);
}

/* Limits of what the run derives from the values: the normalised pixels, the paths of the output
 * files, batch-norm statistics over a batch. */
static int check_values_in_use(loader *l) {
    const dt_config *cfg = l->cfg;
    char message[320];
    for (int c = 0; c < 3; c++) {
        /* (x - mean) / std for x in [0, 1], and 1 / std, must be finite 32-bit floats */
        double std = cfg->data.std[c], largest = (fabs((double)cfg->data.mean[c]) + 1.0) / std;
        if (std >= FLT_MIN && largest <= FLT_MAX) continue;
        snprintf(message, sizeof message,
                 "data.std[%d] = %g with data.mean[%d] = %g makes the normalised pixels "
                 "(x - mean) / std overflow a 32-bit float (up to %g)",
                 c, std, c, (double)cfg->data.mean[c], largest);
        /* located where the user set one of the two */
        const dt_config_key *std_key = dt_config_find_key("data", "std");
        bool std_set = l->origins[dt_config_key_index(std_key)].set;
        return fail_at_key(l, std_set ? "data.std" : "data.mean", message);
    }
    size_t dir_length = strlen(cfg->output.dir);
    if (dir_length + DT_OUTPUT_NAME_RESERVE >= DT_PATH_BYTES) {
        snprintf(message, sizeof message,
                 "too long (%zu bytes): the paths of the files written in it must stay under "
                 "%d bytes, so at most %d",
                 dir_length, DT_PATH_BYTES, DT_PATH_BYTES - DT_OUTPUT_NAME_RESERVE - 1);
        return fail_at_key(l, "output.dir", message);
    }
    /* Training-mode batch norm needs more than one value per channel: at the last stage of
     * ResNet-18 a channel has batch_size x ceil(image_size/32)^2 of them (PyTorch refuses 1). */
    long side = (cfg->data.image_size + 31) / 32;
    if (cfg->model.freeze == DT_FREEZE_NONE && (long)cfg->train.batch_size * side * side < 2) {
        snprintf(message, sizeof message,
                 "must be at least 2 with data.image_size %d: training-mode batch norm needs more "
                 "than one value per channel (or set model.freeze: backbone)",
                 cfg->data.image_size);
        return fail_at_key(l, "train.batch_size", message);
    }
    return 0;
}

/* Rules that involve more than one key, checked once every value is known. */
static int check_whole_config(loader *l) {
    const dt_config *cfg = l->cfg;
    char message[256];
    if (!cfg->data.root)
        return dt_config_fail_at(l->err, &l->file, l->data_line, l->data_column, "data.root",
                                 "required: the ImageFolder directory (one sub-folder per class); "
                                 "set it in the file or override data.root=PATH");
    const dt_config_key *fraction = dt_config_find_key("data", "val_fraction");
    if (cfg->data.val_root && l->origins[dt_config_key_index(fraction)].set)
        return fail_at_key(l, "data.val_fraction",
                           "not used with data.val_root (the whole of data.val_root is the "
                           "validation set and data.root all training data): remove one of them");
    if (cfg->train.warmup_epochs >= cfg->train.epochs) {
        snprintf(message, sizeof message, "must be less than train.epochs (%d), got %g",
                 cfg->train.epochs, cfg->train.warmup_epochs);
        return fail_at_key(l, "train.warmup_epochs", message);
    }
    if (cfg->train.nesterov && cfg->train.momentum <= 0.0)
        return fail_at_key(l, "train.nesterov",
                           "true requires train.momentum > 0 (as torch.optim.SGD)");
    return check_values_in_use(l);
}

int dt_config_load_text(const char *name, const char *text, size_t length, int n_overrides,
                        char *const *overrides, dt_config *cfg, dt_error *err) {
    dt_config_defaults(cfg);
    loader l = {.cfg = cfg,
                .err = err,
                .file = {.file = name, .override_arg = NULL},
                .data_line = 1,
                .data_column = 1};
    int n_keys = 0;
    dt_config_keys(&n_keys);
    int rc = n_keys <= MAX_KEYS ? 0 : dt_fail(err, "internal error: too many config keys");
    if (!rc) rc = load_text(&l, text, length);
    for (int i = 0; i < n_overrides && !rc; i++) rc = apply_override(&l, overrides[i]);
    if (!rc) rc = check_whole_config(&l);
    if (rc) dt_config_free(cfg); /* leaves nothing allocated and all fields zero */
    return rc;
}

int dt_config_load(const char *path, int n_overrides, char *const *overrides, dt_config *cfg,
                   dt_error *err) {
    char *text = NULL;
    size_t length = 0;
    if (read_config_file(path, &text, &length, err)) {
        dt_config_defaults(cfg);
        dt_config_free(cfg);
        return -1;
    }
    int rc = dt_config_load_text(path, text, length, n_overrides, overrides, cfg, err);
    free(text);
    return rc;
}
