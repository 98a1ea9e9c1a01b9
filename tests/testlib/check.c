/* Assertion bookkeeping for the C tests: prints failures as file:line and a summary line. */
#include "check.h"

#include <stdarg.h>
#include <stdio.h>

int dt_test_passed, dt_test_failed;

void dt_check_report(int ok, const char *file, int line, const char *fmt, ...) {
    if (ok) {
        dt_test_passed++;
        return;
    }
    dt_test_failed++;
    va_list args;
    va_start(args, fmt);
    fprintf(stderr, "%s:%d: check failed: ", file, line);
    vfprintf(stderr, fmt, args);
    fputc('\n', stderr);
    va_end(args);
}

int dt_test_summary(const char *suite) {
    printf("%s: %d passed, %d failed\n", suite, dt_test_passed, dt_test_failed);
    return dt_test_failed == 0 ? 0 : 1;
}
