/* Small operating-system helpers shared across modules: a monotonic clock, the number of
 * online cores, and mkdir -p. */
#ifndef DTRAIN_PLATFORM_H
#define DTRAIN_PLATFORM_H

#include "dtrain/error.h"

/* Seconds on a monotonic clock (for durations only). */
double dt_monotonic_seconds(void);

/* Online processors (at least 1). */
int dt_online_cores(void);

/* Creates path and its missing parents (mkdir -p); fails if path exists and is not a folder. */
int dt_make_directories(const char *path, dt_error *err);

#endif
