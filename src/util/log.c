/* Rank-prefixed warnings on stderr (one fprintf per line, so lines from threads and
 * ranks do not interleave mid-line), with names and paths in them escaped (dt_escape_text). */
#include "dtrain/log.h"

#include <stdarg.h>
#include <stdio.h>

#include "dtrain/text_escape.h"

static char log_prefix[48] = "dtrain: ";
static FILE *volatile live_line; /* the stream of an open live progress line, or NULL */

void dt_log_live_line(FILE *out) {
    live_line = out;
}

void dt_log_end_live_line(void) {
    FILE *out = live_line;
    if (!out) return;
    live_line = NULL;
    fputs("\r\033[K", out);
    fflush(out);
}

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
    dt_log_end_live_line();
    fprintf(stderr, "%swarning: %s\n", log_prefix, dt_escape_text(line, shown, sizeof shown));
}
