/* The weights' moving average (dt_backend_ema_update, timm's ModelEmaV2 update) on every backend
 * compiled in: hand-computed values; three updates of a large buffer (the threaded path) bit for
 * bit against torch's float32 arithmetic done here (two rounded products, then the sum) and
 * within float32 rounding of a float64 reference; the guard (a skipped step leaves the average
 * unchanged when guarded, not when unguarded); bad factors refused; zero elements. */
#include <string.h>

#include "test_backend_common.h"

static void check_by_hand(dt_backend *b) {
    dt_error err = {{0}, 0};
    const double ema0[4] = {1.0, -2.0, 0.5, 0.0}, live[4] = {3.0, 2.0, -0.5, 8.0};
    float *e = test_buffer(b, ema0, 4), *l = test_buffer(b, live, 4);
    /* decay 0.75: 0.75 e + 0.25 l, exact in binary */
    CHECK_MSG(dt_backend_ema_update(b, e, l, 0.75f, 0.25f, 4, 0, &err) == 0, "%s", err.message);
    double got[4];
    test_buffer_read(b, e, got, 4);
    const double want[4] = {1.5, -1.0, 0.25, 2.0};
    for (int i = 0; i < 4; i++) CHECK_CLOSE(got[i], want[i], 0, 0);
    /* decay 0 copies live; decay 1 keeps the average */
    CHECK(dt_backend_ema_update(b, e, l, 1.0f, 0.0f, 4, 0, &err) == 0);
    test_buffer_read(b, e, got, 4);
    for (int i = 0; i < 4; i++) CHECK_CLOSE(got[i], want[i], 0, 0);
    CHECK(dt_backend_ema_update(b, e, l, 0.0f, 1.0f, 4, 0, &err) == 0);
    test_buffer_read(b, e, got, 4);
    for (int i = 0; i < 4; i++) CHECK_CLOSE(got[i], live[i], 0, 0);
    /* factors outside [0, 1] are refused, naming the op; zero elements are fine */
    CHECK(dt_backend_ema_update(b, e, l, 1.5f, -0.5f, 4, 0, &err) == -1);
    CHECK(strstr(err.message, "ema_update") != NULL);
    CHECK(dt_backend_ema_update(b, e, l, NAN, 0.5f, 4, 0, &err) == -1);
    CHECK(dt_backend_ema_update(b, e, l, 0.5f, 0.5f, 0, 0, &err) == 0);
    test_buffer_free(b, e);
    test_buffer_free(b, l);
}

/* Three updates with decay 0.9997 (1 - decay rounded from double, as torch rounds Python's
 * 1. - decay) against torch's float32 arithmetic (bit for bit) and float64 (rounding only). */
static void check_large(dt_backend *b) {
    enum { COUNT = 100003 };
    const double decay = 0.9997;
    const float d = (float)decay, omd = (float)(1.0 - decay);
    dt_error err = {{0}, 0};
    uint64_t state = 77u;
    double *ema = test_doubles(COUNT), *live = test_doubles(COUNT), *got = test_doubles(COUNT);
    float *torch32 = test_floats(COUNT);
    test_random_fill(ema, COUNT, -2.0, 2.0, &state);
    for (size_t i = 0; i < COUNT; i++) torch32[i] = (float)ema[i];
    float *dema = test_buffer(b, ema, COUNT), *dlive = test_buffer(b, NULL, COUNT);
    for (int step = 0; step < 3; step++) {
        test_random_fill(live, COUNT, -2.0, 2.0, &state);
        test_buffer_write(b, dlive, live, COUNT);
        CHECK_MSG(dt_backend_ema_update(b, dema, dlive, d, omd, COUNT, 0, &err) == 0, "%s",
                  err.message);
        for (size_t i = 0; i < COUNT; i++) {
            ema[i] = decay * ema[i] + (1.0 - decay) * live[i];
            float kept = d * torch32[i], added = omd * (float)live[i];
            torch32[i] = kept + added;
        }
    }
    test_buffer_read(b, dema, got, COUNT);
    size_t differ = 0;
    for (size_t i = 0; i < COUNT; i++) differ += (float)got[i] != torch32[i];
    CHECK_MSG(differ == 0, "ema_update: %zu of %d values differ from torch's float32 arithmetic",
              differ, COUNT);
    /* three updates of values below 2 in magnitude: a few float32 roundings of 2 */
    CHECK_ARRAY_CLOSE("ema_update, 3 steps, vs float64", got, ema, COUNT, 0, 2e-6);
    test_buffer_free(b, dema);
    test_buffer_free(b, dlive);
    free(ema);
    free(live);
    free(got);
    free(torch32);
}

/* guarded: the non-finite guard's skipped step changes nothing; the next good step updates */
static void check_guarded(dt_backend *b) {
    enum { COUNT = 8 };
    dt_error err = {{0}, 0};
    double ones[COUNT], twos[COUNT], grads[COUNT] = {0}, got[COUNT];
    for (int i = 0; i < COUNT; i++) ones[i] = 1.0, twos[i] = 2.0;
    float *e = test_buffer(b, ones, COUNT), *l = test_buffer(b, twos, COUNT);
    float *g = test_buffer(b, grads, COUNT);
    dt_guard_state fresh;
    memset(&fresh, 0, sizeof fresh);
    fresh.halted_step = -1;
    CHECK(dt_backend_guard_reset(b, &fresh, 1000, &err) == 0);
    grads[3] = NAN;
    test_buffer_write(b, g, grads, COUNT);
    CHECK(dt_backend_guard_check(b, g, COUNT, 0, &err) == 0); /* step 0 skipped */
    CHECK(dt_backend_ema_update(b, e, l, 0.5f, 0.5f, COUNT, 1, &err) == 0);
    test_buffer_read(b, e, got, COUNT);
    for (int i = 0; i < COUNT; i++) CHECK_CLOSE(got[i], 1.0, 0, 0);
    CHECK(dt_backend_ema_update(b, e, l, 0.5f, 0.5f, COUNT, 0, &err) == 0); /* unguarded */
    test_buffer_read(b, e, got, COUNT);
    for (int i = 0; i < COUNT; i++) CHECK_CLOSE(got[i], 1.5, 0, 0);
    grads[3] = 0.0;
    test_buffer_write(b, g, grads, COUNT);
    CHECK(dt_backend_guard_check(b, g, COUNT, 1, &err) == 0); /* step 1 applies */
    CHECK(dt_backend_ema_update(b, e, l, 0.5f, 0.5f, COUNT, 1, &err) == 0);
    test_buffer_read(b, e, got, COUNT);
    for (int i = 0; i < COUNT; i++) CHECK_CLOSE(got[i], 1.75, 0, 0);
    dt_guard_state read;
    CHECK(dt_backend_guard_read(b, &read, &err) == 0);
    CHECK_INT_EQ(read.total, 1);
    test_buffer_free(b, e);
    test_buffer_free(b, l);
    test_buffer_free(b, g);
}

int main(int argc, char **argv) {
    dt_backend b = test_backend_open(argc, argv);
    check_by_hand(&b);
    check_large(&b);
    check_guarded(&b);
    dt_error err = {{0}, 0};
    CHECK(dt_backend_synchronize(&b, &err) == 0);
    dt_backend_free(&b);
    return dt_test_summary("backend_ema");
}
