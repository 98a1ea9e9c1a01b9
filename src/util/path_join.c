/* Building file paths without silent truncation: a path that does not fit is an error that names
 * it, never a shorter path that points at another file. */
#include "dtrain/platform.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

int dt_path_join(char *out, size_t size, const char *dir, const char *name, dt_error *err) {
    size_t dir_length = strlen(dir), name_length = strlen(name);
    if (size == 0 || dir_length + 1 + name_length >= size) {
        if (size) out[0] = '\0';
        return dt_fail(err, "%.200s%s/%s: path too long (%zu bytes, at most %zu)", dir,
                       dir_length > 200 ? "..." : "", name, dir_length + 1 + name_length,
                       size ? size - 1 : 0);
    }
    memcpy(out, dir, dir_length);
    out[dir_length] = '/';
    memcpy(out + dir_length + 1, name, name_length + 1);
    return 0;
}
