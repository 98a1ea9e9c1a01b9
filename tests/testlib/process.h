/* Helpers for tests that run the dtrain binary: run a shell command, read its output files. */
#ifndef DTRAIN_TEST_PROCESS_H
#define DTRAIN_TEST_PROCESS_H

#include <stddef.h>

/* Runs cmd with /bin/sh; returns its exit code, or -1 when it did not exit normally. */
int dt_test_run(const char *cmd);

/* The whole file as a NUL-terminated string (caller frees), or NULL. */
char *dt_test_read_text(const char *path);

/* Writes text to path; 0 on success. */
int dt_test_write_text(const char *path, const char *text);

/* How many times needle occurs in text. */
int dt_test_count(const char *text, const char *needle);

/* The start of a test that runs dtrain: the binary from DTRAIN_BIN (ctest sets it) and a fresh
 * temporary folder named prefix-XXXXXX. 0, or 1 with the reason on stderr. */
int dt_test_dtrain_setup(const char *prefix, const char **dtrain_bin, char *workdir,
                         size_t workdir_size);

/* The text of workdir/NAME.log (caller frees), "" when there is none. */
char *dt_test_read_log(const char *workdir, const char *name);

/* The small run the signal, reliability and state checks share, in a fresh temporary folder
 * prefix-XXXXXX (its path in workdir): workdir/data, 4 classes x 4 = 16 learnable 20x20 images
 * (4 held out, 12 train: 3 steps of global batch 4 per epoch), and workdir/base.yaml training on
 * it on the CPU (image_size 16, val_fraction 0.25, 1 worker and 1 thread, lr 0.02, momentum 0.9,
 * log_every 1, checkpoint_every 2) with the given epochs, batch size and keep_checkpoints.
 * 0, or 1 with the reason on stderr. */
int dt_test_small_run_setup(const char *prefix, int epochs, int batch_size, int keep_checkpoints,
                            char *workdir, size_t workdir_size);

/* Resolves the program path given on the command line to an absolute one (tests change
 * folders). 0, or 2 with the reason on stderr. */
int dt_test_program_path(const char *arg, char *out, size_t size);

#endif
