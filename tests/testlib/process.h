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

#endif
