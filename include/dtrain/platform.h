/* Small operating-system helpers shared across modules: a monotonic clock, the number of
 * online cores, mkdir -p, and reading a whole file. */
#ifndef DTRAIN_PLATFORM_H
#define DTRAIN_PLATFORM_H

#include <stddef.h>
#include <stdint.h>

#include "dtrain/error.h"

/* Seconds on a monotonic clock (for durations only). */
double dt_monotonic_seconds(void);

/* Online processors (at least 1). */
int dt_online_cores(void);

/* Creates path and its missing parents (mkdir -p); fails if path exists and is not a folder. */
int dt_make_directories(const char *path, dt_error *err);

/* Opens path for reading without blocking (a FIFO does not wait for a writer) and accepts only a
 * regular file (a link to one is fine): its descriptor (close-on-exec) in *fd and its size in
 * *size. Otherwise -1 with "PATH: cannot open: REASON" or "PATH: not a regular file (a FIFO)" in
 * err and the cause in errno (EISDIR a folder, EINVAL anything else that is not a regular file). */
int dt_open_regular_file(const char *path, int *fd, uint64_t *size, dt_error *err);

/* Opens /dev/null onto whichever of descriptors 0, 1, 2 is closed, so that no file opened later
 * takes their place. Called first thing in the dtrain executable's main (src/main.c).
 * Returns -1 if one cannot be filled. (src/util/std_descriptors.c: needs only the C library.) */
int dt_keep_standard_descriptors_open(void);

/* Longest file path dtrain builds (PATH_MAX on Linux, the terminating NUL included). */
#define DT_PATH_BYTES 4096

/* out = dir + "/" + name, or an error naming the path when it does not fit in size bytes. */
int dt_path_join(char *out, size_t size, const char *dir, const char *name, dt_error *err);

/* Reads the whole of a regular file into a malloc'd buffer that the caller frees: *size bytes
 * followed by one zero byte (so text can be used as a C string; never NULL on success). Refuses
 * anything else and files over max_bytes. A file is read to the size it had when opened (fewer
 * bytes if it shrinks meanwhile). Never blocks on a FIFO (see dt_open_regular_file). On failure
 * returns -1 with "PATH: cannot open: REASON" (or "not a regular file", "file too large", "out of
 * memory", "read error") in err, and the cause in errno for callers that word their own messages:
 * EFBIG over max_bytes, EISDIR or EINVAL not a regular file, ENOMEM, else what open, fstat or read
 * set. */
int dt_read_file(const char *path, size_t max_bytes, uint8_t **bytes, size_t *size, dt_error *err);

/* The same, but also reads pipes and character devices (a shell's <(...)) to their end; only a
 * folder is refused. */
int dt_read_file_or_pipe(const char *path, size_t max_bytes, uint8_t **bytes, size_t *size,
                         dt_error *err);

#endif
