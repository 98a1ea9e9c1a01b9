/* Command-line overrides "section.key=value": the key must be a known one (with did-you-mean
 * advice otherwise); the value is a YAML flow node when it starts with [ { " or ' (lists, maps,
 * quoted strings) and otherwise the literal text as a plain scalar, so paths need no quoting. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/config_internal.h"
#include "dtrain/bytes.h"

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

int dt_config_parse_override(const char *arg, const dt_config_origin *origin,
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
