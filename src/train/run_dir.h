/* The output folder of a run: a lock so that two runs never write the same folder, and the rule
 * that a folder holding an earlier run is only reused with --resume or --overwrite. */
#ifndef DTRAIN_TRAIN_RUN_DIR_H
#define DTRAIN_TRAIN_RUN_DIR_H

#include "dtrain/error.h"

/* Creates dir, takes its lock (held until the process ends; *lock_fd keeps it), refuses a second
 * run (exit 2, naming the running one's pid and host), and refuses a folder with an earlier run
 * unless resume (keeps it; removes stale temporary checkpoint folders) or overwrite (removes the
 * earlier run's files first). */
int dt_run_dir_prepare(const char *dir, int resume, int overwrite, int *lock_fd, dt_error *err);

#endif
