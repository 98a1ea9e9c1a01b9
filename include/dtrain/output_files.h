/* Every file dtrain writes goes through here, so that nothing outside output.dir is ever written:
 * new files are created with O_CREAT|O_EXCL|O_NOFOLLOW after removing a stale entry of the same
 * name (a planted symlink is removed, never followed), appends refuse anything but a regular
 * file, and folders dtrain writes into are refused when they are symlinks.
 *
 * A training run pins its output.dir: from then on every file created under it first checks that
 * the folder is still the one the run started in (same device and inode), so a folder moved or
 * deleted mid-run ends the run (exit 1) instead of splitting its outputs, and every name created
 * there is recorded in output.dir/.dtrain-manifest, which tells --overwrite what dtrain wrote. */
#ifndef DTRAIN_OUTPUT_FILES_H
#define DTRAIN_OUTPUT_FILES_H

#include <stdio.h>

#include "dtrain/error.h"

/* The manifest's file name inside output.dir. */
#define DT_OUTPUT_MANIFEST ".dtrain-manifest"

/* Pins dir (already created and locked): remembers its device and inode and loads its
 * manifest. */
int dt_output_dir_pin(const char *dir, dt_error *err);
void dt_output_dir_unpin(void);

/* 0 when nothing is pinned or the pinned folder is still in place; else a runtime error naming
 * the folder. */
int dt_output_dir_check(dt_error *err);

/* 1 when name (relative to the pinned output.dir, e.g. "metrics.csv" or
 * "tensorboard/events.out...") is in the manifest. */
int dt_output_manifest_has(const char *name);

/* 1 when nothing is pinned, or path is outside the pinned folder, or dtrain wrote it. */
int dt_output_owned(const char *path);

/* A new file at path for writing (fd, -1 with err set): a stale entry there that is not a folder
 * is removed first, unless keep_existing (then an existing name fails). */
int dt_output_create(const char *path, int keep_existing, dt_error *err);

/* fopen through the rules above: how is "w" (new file, stale entry removed), "x" (new file, an
 * existing name fails) or "a" (append to a regular file, created when missing). */
FILE *dt_output_fopen(const char *path, const char *how, dt_error *err);

/* Fails (exit 2) when path exists and is not a real folder (a symlink, a file). */
int dt_output_refuse_link(const char *path, dt_error *err);

#endif
