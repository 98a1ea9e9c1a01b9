/* Crash-safe file writing: data written and fsynced before it is renamed into place, the folder
 * fsynced after the rename, temporary names removed on failure (and by a second SIGINT). A file
 * written this way is either the old one or the whole new one, never a torn mix. */
#ifndef DTRAIN_DURABLE_H
#define DTRAIN_DURABLE_H

#include <stddef.h>

#include "dtrain/error.h"

/* Creates path (truncating) with exactly these bytes and fsyncs it. Errors name the file and
 * the OS error. */
int dt_write_file_synced(const char *path, const void *data, size_t size, dt_error *err);

/* fsync of a folder, so that renames and new names in it survive a crash. */
int dt_fsync_directory(const char *path, dt_error *err);

/* path.tmp written and fsynced, renamed to path, the parent folder fsynced. */
int dt_replace_file_durably(const char *path, const void *data, size_t size, dt_error *err);

/* rm -rf without following links; 0 when the tree is gone (or never existed). */
int dt_remove_tree(const char *path);

/* Test-only switch DTRAIN_TEST_SLOW_WRITE_MS=ms (read by src/train/test_faults.c, which sets it
 * here): every file write (checkpoint members, model files, reports and CSV files) pauses this
 * long after its data and before its rename, to let tests signal a run while it writes. */
void dt_durable_test_delay_set(long ms);
void dt_test_write_delay(void);

/* The parent folder of path (".", when it has no slash) into out. */
void dt_parent_directory(const char *path, char *out, size_t size);

#endif
