/* Early stopping's count (src/train/early_stop.h) as Lightning's EarlyStopping in mode "max" with
 * min_delta 0: the first evaluation sets the best; only a strictly higher accuracy resets the
 * count; an equal one counts as no improvement; the evaluation that makes the count reach the
 * patience is reported once; patience 0 never stops but keeps the state. */
#include "../src/train/early_stop.h"
#include "check.h"

int main(void) {
    dt_early_stop s = {.patience = 2, .best = -1};
    CHECK_INT_EQ(dt_early_stop_update(&s, 0.5, 1), 0); /* the first sets the best */
    CHECK(s.best == 0.5 && s.best_epoch == 1 && s.wait == 0);
    CHECK_INT_EQ(dt_early_stop_update(&s, 0.5, 2), 0); /* equal: no improvement */
    CHECK_INT_EQ(s.wait, 1);
    CHECK(!dt_early_stop_reached(&s));
    CHECK_INT_EQ(dt_early_stop_update(&s, 0.6, 3), 0); /* higher: the count starts again */
    CHECK(s.best == 0.6 && s.best_epoch == 3 && s.wait == 0);
    CHECK_INT_EQ(dt_early_stop_update(&s, 0.55, 4), 0);
    CHECK_INT_EQ(dt_early_stop_update(&s, 0.6, 5), 1); /* the second without: stop here */
    CHECK(dt_early_stop_reached(&s) && s.wait == 2 && s.best_epoch == 3);
    CHECK_INT_EQ(dt_early_stop_update(&s, 0.1, 6), 0); /* said once */
    CHECK(dt_early_stop_reached(&s));

    /* patience 0: never stops, the state is kept (a resume may turn it on) */
    dt_early_stop off = {.patience = 0, .best = -1};
    for (int epoch = 1; epoch <= 5; epoch++) CHECK_INT_EQ(dt_early_stop_update(&off, 0, epoch), 0);
    CHECK(!dt_early_stop_reached(&off) && off.wait == 4 && off.best == 0 && off.best_epoch == 1);
    off.patience = 4; /* a resume that turns it on with a patience already used up */
    CHECK(dt_early_stop_reached(&off));
    return dt_test_summary("early_stop");
}
