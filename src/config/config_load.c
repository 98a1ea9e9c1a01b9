/* dt_config_load: defaults, then the YAML file (section by section, refusing unknown and
 * duplicate keys), then the command-line overrides, then the cross-key rules; every error located
 * at "FILE:LINE:COL: key.path: message" or "override 'ARG': key.path: message". */
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/config_internal.h"
#include "dtrain/bytes.h"
#include "dtrain/platform.h"

/* A config is a few hundred bytes; anything this large is the wrong file. */
enum { LARGEST_CONFIG_BYTES = 1 << 20, MAX_KEYS = 64, MAX_SECTIONS = 8 };

/* ---- located errors ---- */

int dt_config_fail_at(dt_error *err, const dt_config_origin *origin, int line, int column,
                      const char *key_path, const char *fmt, ...) {
    char message[768];
    va_list args;
    va_start(args, fmt);
    vsnprintf(message, sizeof message, fmt, args);
    va_end(args);

    char where[512];
    if (origin->file)
        snprintf(where, sizeof where, "%s:%d:%d", origin->file, line, column);
    else
        snprintf(where, sizeof where, "override '%s'", origin->override_arg);
    if (key_path) return dt_fail_usage(err, "%s: %s: %s", where, key_path, message);
    return dt_fail_usage(err, "%s: %s", where, message);
}

int dt_config_check_duplicate_key(dt_error *err, const dt_config_origin *origin,
                                  const dt_yaml_node *mapping, int i, const char *key_path) {
    const dt_yaml_node *key = &mapping->children[2 * i];
    for (int j = 0; j < i; j++) {
        const dt_yaml_node *earlier = &mapping->children[2 * j];
        if (strcmp(earlier->text, key->text) != 0) continue;
        if (!origin->file)
            return dt_config_fail_at(err, origin, key->line, key->column, key_path,
                                     "duplicate key");
        return dt_config_fail_at(err, origin, key->line, key->column, key_path,
                                 "duplicate key (first given at line %d)", earlier->line);
    }
    return 0;
}

/* ---- the file ---- */

typedef struct loader {
    dt_config *cfg;
    dt_error *err;
    dt_config_origin file;
    dt_config_place keys[MAX_KEYS];         /* where each key's value was set */
    dt_config_place sections[MAX_SECTIONS]; /* where each section's name was */
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
    l->keys[dt_config_key_index(key)] = (dt_config_place){
        .set = true, .origin = *origin, .line = value->line, .column = value->column};
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
        int section = -1;
        for (int s = 0; s < n_sections; s++)
            if (strcmp(sections[s], name->text) == 0) section = s;
        if (section < 0) {
            char advice[640];
            dt_config_unknown_key_advice(NULL, name->text, false, advice, sizeof advice);
            return dt_config_fail_at(l->err, &l->file, name->line, name->column, name->text,
                                     "unknown section%s", advice);
        }
        l->sections[section] = (dt_config_place){
            .set = true, .origin = l->file, .line = name->line, .column = name->column};
        if (load_section(l, sections[section], &root->children[2 * i + 1])) return -1;
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

/* ---- overrides "section.key=value": a known key (with did-you-mean advice otherwise); the value
 * is a YAML flow node when it starts with [ { " or ' (lists, maps, quoted strings) and otherwise
 * the literal text as a plain scalar, so paths need no quoting ---- */

static int find_override_key(const dt_config_origin *origin, const char *key_text,
                             const dt_config_key **key, dt_error *err) {
    char advice[640];
    const char *dot = strchr(key_text, '.');
    if (!dot) {
        int count = 0;
        const dt_config_key *keys = dt_config_keys(&count);
        for (int i = 0; i < count; i++)
            if (strcmp(keys[i].name, key_text) == 0)
                return dt_config_fail_at(err, origin, 1, 1, key_text,
                                         "expected section.key=value, did you mean '%s'?",
                                         keys[i].path);
        return dt_config_fail_at(err, origin, 1, 1, key_text,
                                 "expected section.key=value, e.g. train.epochs=10");
    }
    char section[64];
    size_t section_length = (size_t)(dot - key_text);
    if (section_length >= sizeof section) section_length = sizeof section - 1;
    memcpy(section, key_text, section_length);
    section[section_length] = '\0';

    int n_sections = 0;
    const char *const *sections = dt_config_sections(&n_sections);
    bool known_section = false;
    for (int i = 0; i < n_sections; i++)
        if (strcmp(sections[i], section) == 0) known_section = true;
    if (!known_section) {
        dt_config_unknown_key_advice(NULL, section, true, advice, sizeof advice);
        return dt_config_fail_at(err, origin, 1, 1, section, "unknown section%s", advice);
    }
    *key = dt_config_find_key(section, dot + 1);
    if (*key) return 0;
    dt_config_unknown_key_advice(section, dot + 1, true, advice, sizeof advice);
    char path[256];
    snprintf(path, sizeof path, "%.200s", key_text);
    return dt_config_fail_at(err, origin, 1, 1, path, "unknown key%s", advice);
}

static int parse_override(const char *arg, const dt_config_origin *origin,
                          const dt_config_key **key, dt_yaml_node **value, dt_error *err) {
    *key = NULL;
    *value = NULL;
    const char *equals = strchr(arg, '=');
    if (!equals) return dt_config_fail_at(err, origin, 1, 1, NULL, "expected key.path=value");
    size_t key_length = (size_t)(equals - arg);
    char *key_text = malloc(key_length + 1);
    if (!key_text) return dt_fail(err, "out of memory reading overrides");
    memcpy(key_text, arg, key_length);
    key_text[key_length] = '\0';
    int rc = find_override_key(origin, key_text, key, err);
    free(key_text);
    if (rc) return -1;

    const char *text = equals + 1;
    if (text[0] == '[' || text[0] == '{' || text[0] == '"' || text[0] == '\'') {
        if (dt_yaml_parse(text, strlen(text), origin, (*key)->path, value, err)) return -1;
        if (!*value) *value = dt_yaml_new_plain_scalar(""); /* only comments: null */
    } else {
        if (dt_utf8_validate((const uint8_t *)text, strlen(text), NULL) != 0)
            return dt_config_fail_at(err, origin, 1, 1, (*key)->path, "value is not valid UTF-8");
        *value = dt_yaml_new_plain_scalar(text);
    }
    if (!*value) return dt_fail(err, "out of memory reading overrides");
    return 0;
}

static int apply_override(loader *l, const char *arg) {
    dt_config_origin origin = {.file = NULL, .override_arg = arg};
    const dt_config_key *key = NULL;
    dt_yaml_node *value = NULL;
    int rc = parse_override(arg, &origin, &key, &value, l->err);
    if (!rc) rc = set_key(l, key, value, &origin);
    dt_yaml_free(value);
    return rc;
}

int dt_config_load_text(const char *name, const char *text, size_t length, int n_overrides,
                        char *const *overrides, dt_config *cfg, dt_error *err) {
    dt_config_defaults(cfg);
    loader l = {.cfg = cfg, .err = err, .file = {.file = name, .override_arg = NULL}};
    int n_keys = 0, n_sections = 0;
    dt_config_keys(&n_keys);
    dt_config_sections(&n_sections);
    int rc = n_keys <= MAX_KEYS && n_sections <= MAX_SECTIONS
                 ? 0
                 : dt_fail(err, "internal error: too many config keys");
    if (!rc) rc = load_text(&l, text, length);
    for (int i = 0; i < n_overrides && !rc; i++) rc = apply_override(&l, overrides[i]);
    if (!rc) rc = dt_config_check_rules(cfg, l.keys, l.sections, &l.file, err);
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
