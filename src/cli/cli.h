/* The subcommands besides training: `dtrain predict`, `dtrain eval` and `dtrain pack`, and what
 * they share. */
#ifndef DTRAIN_CLI_CLI_H
#define DTRAIN_CLI_CLI_H

#include <stddef.h>

#include "dtrain/backend.h"
#include "dtrain/config.h"
#include "dtrain/error.h"

/* argv[0] is the subcommand's name; returns the process exit code. */
int dt_cli_predict(int argc, char **argv);
int dt_cli_eval(int argc, char **argv);
int dt_cli_pack(int argc, char **argv);

/* The image files under each path: a file is taken as it is; a folder is walked recursively
 * (names starting with '.' skipped, .jpg .jpeg .png in any case, sorted by path as training
 * sorts them). The caller frees each string and the array. */
int dt_cli_image_paths(char *const *paths, int n_paths, char ***out, size_t *n_out, dt_error *err);

#endif
