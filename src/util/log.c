/* Rank-prefixed warnings on stderr (one fprintf per line, so lines from threads and
 * ranks do not interleave mid-line), with names and paths in them escaped (dt_escape_text). */
#include "dtrain/log.h"

#include <stdarg.h>
#include <stdio.h>

#include "dtrain/text_escape.h"

static char log_prefix[48] = "dtrain: ";

void dt_log_set_rank(int rank, int world_size) {
    if (world_size > 1)
        snprintf(log_prefix, sizeof log_prefix, "dtrain: rank %d: ", rank);
    else
        snprintf(log_prefix, sizeof log_prefix, "dtrain: ");
}

void dt_warn(const char *fmt, ...) {
    char line[2048];
    va_list args;
    va_start(args, fmt);
    vsnprintf(line, sizeof line, fmt, args);
    va_end(args);
    char shown[4 * sizeof line];
    fprintf(stderr, "%swarning: %s\n", log_prefix, dt_escape_text(line, shown, sizeof shown));
}
