/* The output folder of a run: a lock so that two runs never write the same folder, the rule
 * that a folder holding an earlier run is only reused with --resume or --overwrite, and
 * --overwrite's clearing, which removes only what dtrain wrote (output.dir/.dtrain-manifest). */
#ifndef DTRAIN_TRAIN_RUN_DIR_H
#define DTRAIN_TRAIN_RUN_DIR_H

#include "dtrain/error.h"

/* Creates dir, takes its lock (a regular file, held until the process ends; *lock_fd keeps it),
 * refuses a second run (exit 2, naming the running one's pid and host), refuses symlinked
 * checkpoints/ and tensorboard/ folders, pins dir (dtrain/output_files.h), and refuses a folder
 * with an earlier run unless resume (keeps it; removes stale temporary checkpoint folders; with
 * resume_path, only when dir holds no run or resume_path is one of dir's own checkpoints) or
 * overwrite (dt_run_dir_clear first). */
int dt_run_dir_prepare(const char *dir, int resume, const char *resume_path, int overwrite,
                       int *lock_fd, dt_error *err);

/* Removes what dtrain wrote in dir (the manifest's files, checkpoints and event files) and
 * starts a new manifest; refuses (exit 2, removing nothing) when dtrain's names hold files it did
 * not write, naming them. */
int dt_run_dir_clear(const char *dir, dt_error *err);

#endif
