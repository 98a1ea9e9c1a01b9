/* Minimal assertion helpers for dtrain's C tests: count failures, print file:line, and end with
 * the "N passed, N failed" line that CI reads. */
#ifndef DTRAIN_TEST_CHECK_H
#define DTRAIN_TEST_CHECK_H

#include <math.h>
#include <stdio.h>

extern int dt_test_passed, dt_test_failed;

void dt_check_report(int ok, const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Prints the summary line and returns the process exit code (0 when nothing failed). */
int dt_test_summary(const char *suite);

#define CHECK(cond) dt_check_report(!!(cond), __FILE__, __LINE__, "%s", #cond)
#define CHECK_MSG(cond, ...) dt_check_report(!!(cond), __FILE__, __LINE__, __VA_ARGS__)
#define CHECK_INT_EQ(a, b)                                                                         \
    do {                                                                                           \
        long long check_a_ = (long long)(a), check_b_ = (long long)(b);                            \
        dt_check_report(check_a_ == check_b_, __FILE__, __LINE__, "%s == %s (%lld vs %lld)", #a,   \
                        #b, check_a_, check_b_);                                                   \
    } while (0)
#define CHECK_STR_EQ(a, b)                                                                         \
    do {                                                                                           \
        const char *check_a_ = (a), *check_b_ = (b);                                               \
        int check_ok_ = check_a_ && check_b_ && strcmp(check_a_, check_b_) == 0;                   \
        dt_check_report(check_ok_, __FILE__, __LINE__, "%s == %s (\"%s\" vs \"%s\")", #a, #b,      \
                        check_a_ ? check_a_ : "(null)", check_b_ ? check_b_ : "(null)");           \
    } while (0)
/* |a - b| <= atol + rtol * |b| */
#define CHECK_CLOSE(a, b, rtol, atol)                                                              \
    do {                                                                                           \
        double check_a_ = (double)(a), check_b_ = (double)(b);                                     \
        int check_ok_ = fabs(check_a_ - check_b_) <= (atol) + (rtol)*fabs(check_b_);               \
        dt_check_report(check_ok_, __FILE__, __LINE__, "%s ~= %s (%.9g vs %.9g)", #a, #b,          \
                        check_a_, check_b_);                                                       \
    } while (0)

#endif
