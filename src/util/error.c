/* Error reporting helpers: format messages into a dt_error and return -1. */
#include "dtrain/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static int fail_with_code(dt_error *err, int code, const char *fmt, va_list args) {
    if (err) {
        int n = vsnprintf(err->message, sizeof err->message, fmt, args);
        if (n >= (int)sizeof err->message) /* say that the message was cut */
            memcpy(err->message + sizeof err->message - 4, "...", 4);
        err->exit_code = code;
    }
    return -1;
}

int dt_fail(dt_error *err, const char *fmt, ...) {
    va_list args;
    va_start(args, fmt);
    fail_with_code(err, DT_EXIT_RUNTIME, fmt, args);
    va_end(args);
    return -1;
}

int dt_fail_usage(dt_error *err, const char *fmt, ...) {
    va_list args;
    va_start(args, fmt);
    fail_with_code(err, DT_EXIT_USAGE, fmt, args);
    va_end(args);
    return -1;
}

int dt_error_prefix(dt_error *err, const char *fmt, ...) {
    if (!err) return -1;
    char prefix[512];
    va_list args;
    va_start(args, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, args);
    va_end(args);
    size_t cap = sizeof err->message;
    size_t plen = strlen(prefix) + 2; /* "prefix: " */
    if (plen >= cap) plen = cap - 1;
    size_t mlen = strnlen(err->message, cap - 1);
    if (plen + mlen >= cap) mlen = cap - 1 - plen;
    memmove(err->message + plen, err->message, mlen);
    err->message[plen + mlen] = '\0';
    memcpy(err->message, prefix, plen - 2);
    err->message[plen - 2] = ':';
    err->message[plen - 1] = ' ';
    return -1;
}
