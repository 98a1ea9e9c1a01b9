/* Config errors located where the user can find them: "FILE:LINE:COL: key.path: message" for the
 * config file and "override 'ARG': key.path: message" for command-line overrides. */
#include <stdarg.h>
#include <stdio.h>

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
