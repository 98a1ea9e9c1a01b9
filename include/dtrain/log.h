/* Warnings to stderr with the job's prefix: "dtrain: warning: ..." on a single process,
 * "dtrain: rank R: warning: ..." when several ranks share the output. */
#ifndef DTRAIN_LOG_H
#define DTRAIN_LOG_H

#include <stdio.h>

/* Called once after the comm layer is up (before that: single-process prefix). */
void dt_log_set_rank(int rank, int world_size);

/* The console's live progress line: out is the stream it is drawn on (a terminal), NULL when
 * none is open. Every warning, error and notice clears it first (dt_log_end_live_line), so a
 * message never continues the progress line ("ETA 12sdtrain: ..."). */
void dt_log_live_line(FILE *out);
void dt_log_end_live_line(void);

/* "PREFIX warning: MESSAGE" with control characters and bytes that are not UTF-8 escaped. */
void dt_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
