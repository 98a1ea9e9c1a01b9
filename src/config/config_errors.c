/* Config errors located where the user can find them: "FILE:LINE:COL: key.path: message" for the
 * config file and "override 'ARG': key.path: message" for command-line overrides; and the
 * duplicate-key check of YAML mappings. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "config/config_internal.h"

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
