/* Error reporting: a message buffer that travels up to main, plus the exit codes (README
 * "Running"). */
#ifndef DTRAIN_ERROR_H
#define DTRAIN_ERROR_H

enum {
    DT_EXIT_OK = 0,
    DT_EXIT_RUNTIME = 1, /* any failure after work started */
    DT_EXIT_USAGE = 2,   /* bad command line or config: nothing was started */
};

typedef struct dt_error {
    char message[1024];
    int exit_code; /* DT_EXIT_USAGE or DT_EXIT_RUNTIME; set by dt_fail* */
} dt_error;

/* Formats a runtime error into err (if not NULL) and returns -1, so callers can write
 * `return dt_fail(err, "reading %s: %s", path, strerror(errno));`. */
int dt_fail(dt_error *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Same, but marks the error as a usage/config error (exit code 2). */
int dt_fail_usage(dt_error *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Prepends "prefix: " to an existing message (adds context on the way up). Returns -1. */
int dt_error_prefix(dt_error *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
