/* One config value into its field, checked against its row of the key table (type, range,
 * choices), without YAML 1.1 implicit typing: a plain scalar is read as whatever the key expects
 * (integer, number, true/false, string), a quoted scalar is always a string, null is only accepted
 * where the key allows it. Then, in one place, the rules that involve more than one key. */
#include <errno.h>
#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config/config_internal.h"
#include "dtrain/bytes.h"
#include "dtrain/limits.h"
#include "dtrain/platform.h"
#include "dtrain/text_escape.h"

typedef struct assignment {
    const dt_config_key *key;
    const dt_config_origin *origin;
    dt_error *err;
} assignment;

static int fail_on(const assignment *a, const dt_yaml_node *node, const char *path,
                   const char *message) {
    return dt_config_fail_at(a->err, a->origin, node->line, node->column, path, "%s", message);
}

static int type_error(const assignment *a, const dt_yaml_node *node, const char *path,
                      const char *expected) {
    char got[128];
    char message[256];
    snprintf(message, sizeof message, "expected %s, got %s", expected,
             dt_yaml_describe(node, got, sizeof got));
    return fail_on(a, node, path, message);
}

static bool is_plain_text(const dt_yaml_node *node) {
    return node->kind == DT_YAML_SCALAR && !node->quoted && !dt_yaml_is_null(node);
}

static bool all_digits(const char *text) {
    if (*text < '0' || *text > '9') return false;
    while (*text >= '0' && *text <= '9') text++;
    return *text == '\0';
}

/* [-+]?[0-9]+ */
static bool is_integer_text(const char *text) {
    if (*text == '-' || *text == '+') text++;
    return all_digits(text);
}

/* [-+]? (digits (. digits?)? | . digits) ([eE] [-+]? digits)? */
static bool is_number_text(const char *text) {
    if (*text == '-' || *text == '+') text++;
    size_t digits_before = strspn(text, "0123456789");
    text += digits_before;
    size_t digits_after = 0;
    if (*text == '.') {
        text++;
        digits_after = strspn(text, "0123456789");
        text += digits_after;
    }
    if (digits_before == 0 && digits_after == 0) return false;
    if (*text == 'e' || *text == 'E') {
        text++;
        if (*text == '-' || *text == '+') text++;
        return all_digits(text);
    }
    return *text == '\0';
}

static int read_number(const assignment *a, const dt_yaml_node *node, const char *path,
                       double *value) {
    if (!is_plain_text(node) || !is_number_text(node->text))
        return type_error(a, node, path, "a number");
    errno = 0;
    *value = strtod(node->text, NULL);
    if (!isfinite(*value)) {
        char message[256];
        snprintf(message, sizeof message, "number out of range, got %.64s", node->text);
        return fail_on(a, node, path, message);
    }
    return 0;
}

/* Checks the number bounds of the key (for RGB keys, of each item). A value the program uses as
 * a 32-bit float is checked as that float: 1e-50 becomes 0, 0.999999999 becomes 1. */
static int check_number_bounds(const assignment *a, const dt_yaml_node *node, const char *path,
                               double given) {
    const dt_config_key *k = a->key;
    bool as_float =
        k->float32 || k->type == DT_KEY_RGB || k->type == DT_KEY_FLOAT4 || k->type == DT_KEY_PAIR;
    if (as_float && fabs(given) > FLT_MAX) {
        char message[256];
        snprintf(message, sizeof message, "out of range for a 32-bit float, got %.64s", node->text);
        return fail_on(a, node, path, message);
    }
    double value = as_float ? (double)(float)given : given;
    bool below = k->has_min && (k->min_exclusive ? value <= k->min : value < k->min);
    bool above = k->has_max && (k->max_exclusive ? value >= k->max : value > k->max);
    if (!below && !above) return 0;
    char bounds[96];
    if (k->has_min && k->has_max)
        snprintf(bounds, sizeof bounds, "must be in %c%g, %g%c", k->min_exclusive ? '(' : '[',
                 k->min, k->max, k->max_exclusive ? ')' : ']');
    else if (k->has_min)
        snprintf(bounds, sizeof bounds, "must be %s %g", k->min_exclusive ? ">" : ">=", k->min);
    else
        snprintf(bounds, sizeof bounds, "must be %s %g", k->max_exclusive ? "<" : "<=", k->max);
    char message[320];
    bool given_fits = !(k->has_min && (k->min_exclusive ? given <= k->min : given < k->min)) &&
                      !(k->has_max && (k->max_exclusive ? given >= k->max : given > k->max));
    if (given_fits) /* only the conversion puts it out of bounds: say so */
        snprintf(message, sizeof message, "%s, got %.64s (%g as the 32-bit float it is used as)",
                 bounds, node->text, value);
    else
        snprintf(message, sizeof message, "%s, got %.64s", bounds, node->text);
    return fail_on(a, node, path, message);
}

static int assign_number(const assignment *a, const dt_yaml_node *node, double *field) {
    double value;
    if (read_number(a, node, a->key->path, &value)) return -1;
    if (check_number_bounds(a, node, a->key->path, value)) return -1;
    *field = value;
    return 0;
}

static int assign_int(const assignment *a, const dt_yaml_node *node, int *field) {
    const dt_config_key *k = a->key;
    if (!is_plain_text(node) || !is_integer_text(node->text))
        return type_error(a, node, k->path, "an integer");
    errno = 0;
    long long value = strtoll(node->text, NULL, 10);
    bool overflow = errno == ERANGE;
    if (overflow || value < k->int_min || value > k->int_max) {
        char message[256];
        if (k->int_max != INT_MAX)
            snprintf(message, sizeof message, "must be in [%lld, %lld], got %.64s", k->int_min,
                     k->int_max, node->text);
        else if (value < k->int_min)
            snprintf(message, sizeof message, "must be >= %lld, got %.64s", k->int_min, node->text);
        else
            snprintf(message, sizeof message, "must be <= %lld, got %.64s", k->int_max, node->text);
        return fail_on(a, node, k->path, message);
    }
    *field = (int)value;
    return 0;
}

static int assign_seed(const assignment *a, const dt_yaml_node *node, uint64_t *field) {
    if (!is_plain_text(node) || !is_integer_text(node->text))
        return type_error(a, node, a->key->path, "a non-negative integer");
    const char *digits = node->text[0] == '+' || node->text[0] == '-' ? node->text + 1 : node->text;
    errno = 0;
    unsigned long long value = strtoull(digits, NULL, 10);
    bool negative = node->text[0] == '-' && value != 0;
    if (negative || errno == ERANGE) {
        char message[256];
        snprintf(message, sizeof message, "must be in [0, %llu], got %.64s",
                 (unsigned long long)UINT64_MAX, node->text);
        return fail_on(a, node, a->key->path, message);
    }
    *field = (uint64_t)value;
    return 0;
}

static int assign_bool(const assignment *a, const dt_yaml_node *node, bool *field) {
    if (is_plain_text(node) && strcasecmp(node->text, "true") == 0) {
        *field = true;
        return 0;
    }
    if (is_plain_text(node) && strcasecmp(node->text, "false") == 0) {
        *field = false;
        return 0;
    }
    return type_error(a, node, a->key->path, "true or false");
}

/* "must be one of a, b, c; got 'x'" (or "must be 'a'" for a single allowed value). */
static int choice_error(const assignment *a, const dt_yaml_node *node) {
    const dt_config_key *k = a->key;
    char allowed[256] = "";
    size_t used = 0;
    for (int i = 0; i < k->n_choices && used < sizeof allowed; i++) {
        int n =
            snprintf(allowed + used, sizeof allowed - used, "%s%s", i ? ", " : "", k->choices[i]);
        if (n < 0) break;
        used += (size_t)n;
    }
    char got[128];
    char message[512];
    dt_yaml_describe(node, got, sizeof got);
    if (k->n_choices == 1)
        snprintf(message, sizeof message, "must be %s (the only supported value), got %s", allowed,
                 got);
    else
        snprintf(message, sizeof message, "must be one of %s; got %s", allowed, got);
    return fail_on(a, node, k->path, message);
}

static int assign_enum(const assignment *a, const dt_yaml_node *node, int *field) {
    if (node->kind == DT_YAML_SCALAR && !dt_yaml_is_null(node))
        for (int i = 0; i < a->key->n_choices; i++)
            if (strcmp(node->text, a->key->choices[i]) == 0) {
                *field = i;
                return 0;
            }
    return choice_error(a, node);
}

static char *copy_text(const assignment *a, const char *text) {
    char *copy = strdup(text);
    if (!copy) dt_fail(a->err, "out of memory reading the config");
    return copy;
}

/* A non-null, non-empty scalar, as a string. A YAML file is UTF-8; an override's plain value is
 * not decoded, so its bytes are checked here: config.yaml must be able to hold every value. */
static int read_string(const assignment *a, const dt_yaml_node *node, const char *path) {
    if (node->kind != DT_YAML_SCALAR || dt_yaml_is_null(node))
        return type_error(a, node, path, "a string");
    if (node->text[0] == '\0') return fail_on(a, node, path, "must not be an empty string");
    size_t bad = 0;
    if (dt_utf8_validate((const uint8_t *)node->text, strlen(node->text), &bad) != 0) {
        char message[256], shown[96];
        snprintf(message, sizeof message, "must be valid UTF-8 text (byte %zu is not), got '%s'",
                 bad, dt_escape_text(node->text, shown, sizeof shown));
        return fail_on(a, node, path, message);
    }
    return 0;
}

/* Class names end up one per line in classes.txt and in the models' metadata: no control
 * characters (a newline would split a name in two). */
static int read_class_name(const assignment *a, const dt_yaml_node *node, const char *path) {
    if (read_string(a, node, path)) return -1;
    if (dt_text_is_printable(node->text)) return 0;
    char message[256], shown[96];
    snprintf(message, sizeof message,
             "a class name must not contain control characters (newline, tab, escape...), got "
             "'%s'",
             dt_escape_text(node->text, shown, sizeof shown));
    return fail_on(a, node, path, message);
}

static int assign_string(const assignment *a, const dt_yaml_node *node, char **field,
                         bool null_allowed) {
    if (null_allowed && dt_yaml_is_null(node)) {
        free(*field);
        *field = NULL;
        return 0;
    }
    if (read_string(a, node, a->key->path)) return -1;
    if (a->key->choices) {
        bool allowed = false;
        for (int i = 0; i < a->key->n_choices; i++)
            if (strcmp(node->text, a->key->choices[i]) == 0) allowed = true;
        if (!allowed) return choice_error(a, node);
    }
    char *copy = copy_text(a, node->text);
    if (!copy) return -1;
    free(*field);
    *field = copy;
    return 0;
}

/* A list of count numbers (named in the message by items, e.g. "R, G, B"). */
static int assign_floats(const assignment *a, const dt_yaml_node *node, float *field, int count,
                         const char *items) {
    const char *path = a->key->path;
    if (node->kind != DT_YAML_SEQUENCE) {
        char expected[32];
        snprintf(expected, sizeof expected, "a list of %d numbers", count);
        return type_error(a, node, path, expected);
    }
    if (node->n_children != count) {
        char message[160];
        snprintf(message, sizeof message, "expected a list of %d numbers (%s), got %d %s", count,
                 items, node->n_children, node->n_children == 1 ? "item" : "items");
        return fail_on(a, node, path, message);
    }
    float values[4];
    for (int i = 0; i < count; i++) {
        const dt_yaml_node *item = &node->children[i];
        char item_path[64];
        snprintf(item_path, sizeof item_path, "%s[%d]", path, i);
        double value;
        if (read_number(a, item, item_path, &value)) return -1;
        if (check_number_bounds(a, item, item_path, value)) return -1;
        values[i] = (float)value;
    }
    memcpy(field, values, sizeof values[0] * (size_t)count);
    return 0;
}

static void free_renames(dt_class_rename *renames, int count) {
    for (int i = 0; i < count; i++) {
        free(renames[i].folder);
        free(renames[i].display);
    }
    free(renames);
}

static int assign_name_map(const assignment *a, const dt_yaml_node *node, dt_config *cfg) {
    const char *path = a->key->path;
    if (node->kind != DT_YAML_MAPPING)
        return type_error(a, node, path, "a mapping of class folder names to display names");
    int count = node->n_children / 2;
    dt_class_rename *renames = calloc(count ? (size_t)count : 1, sizeof *renames);
    if (!renames) return dt_fail(a->err, "out of memory reading the config");
    for (int i = 0; i < count; i++) {
        const dt_yaml_node *folder = &node->children[2 * i], *display = &node->children[2 * i + 1];
        char entry_path[256], shown[160];
        snprintf(entry_path, sizeof entry_path, "%s.%s", path,
                 folder->kind == DT_YAML_SCALAR ? dt_escape_text(folder->text, shown, sizeof shown)
                                                : "?");
        int rc = 0;
        if (folder->kind != DT_YAML_SCALAR || folder->text[0] == '\0') {
            rc = type_error(a, folder, path, "class folder names as keys");
        } else {
            rc = dt_config_check_duplicate_key(a->err, a->origin, node, i, entry_path);
        }
        if (!rc) rc = read_class_name(a, folder, entry_path);
        if (!rc) rc = read_class_name(a, display, entry_path);
        if (!rc) {
            renames[i].folder = copy_text(a, folder->text);
            renames[i].display = renames[i].folder ? copy_text(a, display->text) : NULL;
            if (!renames[i].display) rc = -1;
        }
        if (rc) {
            free_renames(renames, count);
            return -1;
        }
    }
    free_renames(cfg->data.class_names, cfg->data.n_class_names);
    cfg->data.class_names = count ? renames : NULL;
    cfg->data.n_class_names = count;
    if (!count) free(renames);
    return 0;
}

int dt_config_assign(dt_config *cfg, const dt_config_key *key, const dt_yaml_node *value,
                     const dt_config_origin *origin, dt_error *err) {
    assignment a = {.key = key, .origin = origin, .err = err};
    void *field = (char *)cfg + key->offset;
    switch (key->type) {
    case DT_KEY_STRING:
        return assign_string(&a, value, field, false);
    case DT_KEY_OPTIONAL_STRING:
        return assign_string(&a, value, field, true);
    case DT_KEY_INT:
        return assign_int(&a, value, field);
    case DT_KEY_SEED:
        return assign_seed(&a, value, field);
    case DT_KEY_NUMBER:
        return assign_number(&a, value, field);
    case DT_KEY_BOOL:
        return assign_bool(&a, value, field);
    case DT_KEY_ENUM:
        return assign_enum(&a, value, field);
    case DT_KEY_RGB:
        return assign_floats(&a, value, field, 3, "R, G, B");
    case DT_KEY_FLOAT4:
        return assign_floats(&a, value, field, 4, "brightness, contrast, saturation, hue");
    case DT_KEY_PAIR:
        return assign_floats(&a, value, field, 2, "beta1, beta2");
    case DT_KEY_NAME_MAP:
        return assign_name_map(&a, value, cfg);
    }
    return dt_fail(err, "%s: internal error: unknown key type", key->path);
}

/* ---- rules that involve more than one key ---- */

typedef struct rule_check {
    const dt_config_place *places;
    const dt_config_origin *file;
    dt_error *err;
} rule_check;

static const dt_config_place *place_of(const rule_check *r, const char *section, const char *name) {
    return &r->places[dt_config_key_index(dt_config_find_key(section, name))];
}

/* Fails at where the key was set (the file position or the override), else at the file's top. */
static int fail_at_key(const rule_check *r, const char *section, const char *name,
                       const char *message) {
    char path[128];
    snprintf(path, sizeof path, "%s.%s", section, name);
    const dt_config_place *p = place_of(r, section, name);
    if (p->set)
        return dt_config_fail_at(r->err, &p->origin, p->line, p->column, path, "%s", message);
    return dt_config_fail_at(r->err, r->file, 1, 1, path, "%s", message);
}

/* A required key never set is reported at its section (or the file's top). */
static int check_required(const rule_check *r, const dt_config *cfg,
                          const dt_config_place *sections) {
    int n_keys = 0, n_sections = 0;
    const dt_config_key *keys = dt_config_keys(&n_keys);
    const char *const *section_names = dt_config_sections(&n_sections);
    for (int i = 0; i < n_keys; i++) {
        if (!(keys[i].flags & DT_KEY_REQUIRED) ||
            *(char *const *)((const char *)cfg + keys[i].offset))
            continue;
        int line = 1, column = 1;
        for (int s = 0; s < n_sections; s++)
            if (strcmp(section_names[s], keys[i].section) == 0 && sections[s].set) {
                line = sections[s].line;
                column = sections[s].column;
            }
        return dt_config_fail_at(r->err, r->file, line, column, keys[i].path,
                                 "required: %s; set it in the file or override %s=PATH",
                                 keys[i].help, keys[i].path);
    }
    return 0;
}

/* Limits of what the run derives from the values: the normalised pixels, the paths of the output
 * files, batch-norm statistics over a batch. */
static int check_values_in_use(const rule_check *r, const dt_config *cfg) {
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
        bool std_set = place_of(r, "data", "std")->set;
        return fail_at_key(r, "data", std_set ? "std" : "mean", message);
    }
    if (cfg->data.color_jitter[3] > 0.5f) { /* torchvision's hue range: [-0.5, 0.5] */
        snprintf(message, sizeof message,
                 "the hue jitter data.color_jitter[3] must be in [0, 0.5], got %g",
                 (double)cfg->data.color_jitter[3]);
        return fail_at_key(r, "data", "color_jitter", message);
    }
    size_t dir_length = strlen(cfg->output.dir);
    if (dir_length + DT_OUTPUT_NAME_RESERVE >= DT_PATH_BYTES) {
        snprintf(message, sizeof message,
                 "too long (%zu bytes): the paths of the files written in it must stay under "
                 "%d bytes, so at most %d",
                 dir_length, DT_PATH_BYTES, DT_PATH_BYTES - DT_OUTPUT_NAME_RESERVE - 1);
        return fail_at_key(r, "output", "dir", message);
    }
    /* Training-mode batch norm needs more than one value per channel: at the last stage of
     * ResNet-18 a channel has batch_size x ceil(image_size/32)^2 of them (PyTorch refuses 1). */
    long side = (cfg->data.image_size + 31) / 32;
    if (cfg->model.freeze == DT_FREEZE_NONE && (long)cfg->train.batch_size * side * side < 2) {
        snprintf(message, sizeof message,
                 "must be at least 2 with data.image_size %d: training-mode batch norm needs more "
                 "than one value per channel (or set model.freeze: backbone)",
                 cfg->data.image_size);
        return fail_at_key(r, "train", "batch_size", message);
    }
    return 0;
}

int dt_config_check_rules(const dt_config *cfg, const dt_config_place *places,
                          const dt_config_place *sections, const dt_config_origin *file_origin,
                          dt_error *err) {
    rule_check r = {.places = places, .file = file_origin, .err = err};
    char message[256];
    if (check_required(&r, cfg, sections)) return -1;
    if (cfg->data.val_root && place_of(&r, "data", "val_fraction")->set)
        return fail_at_key(&r, "data", "val_fraction",
                           "not used with data.val_root (the whole of data.val_root is the "
                           "validation set and data.root all training data): remove one of them");
    if (cfg->train.warmup_epochs >= cfg->train.epochs) {
        snprintf(message, sizeof message, "must be less than train.epochs (%d), got %g",
                 cfg->train.epochs, cfg->train.warmup_epochs);
        return fail_at_key(&r, "train", "warmup_epochs", message);
    }
    if (cfg->train.nesterov && cfg->train.momentum <= 0.0)
        return fail_at_key(&r, "train", "nesterov",
                           "true requires train.momentum > 0 (as torch.optim.SGD)");
    bool adamw = cfg->train.optimizer == DT_OPTIMIZER_ADAMW;
    if (adamw && cfg->train.momentum > 0.0)
        return fail_at_key(&r, "train", "momentum",
                           "is SGD's: train.optimizer adamw takes train.betas instead");
    const char *adamw_only[] = {"betas", "eps"};
    for (int i = 0; i < 2 && !adamw; i++)
        if (place_of(&r, "train", adamw_only[i])->set)
            return fail_at_key(&r, "train", adamw_only[i],
                               "is used by train.optimizer adamw only (this config trains with "
                               "sgd)");
    return check_values_in_use(&r, cfg);
}

bool dt_config_key_in_use(const dt_config *cfg, const dt_config_key *key) {
    if (key == dt_config_find_key("data", "val_fraction")) return cfg->data.val_root == NULL;
    if (key == dt_config_find_key("train", "betas") || key == dt_config_find_key("train", "eps"))
        return cfg->train.optimizer == DT_OPTIMIZER_ADAMW;
    return true;
}
