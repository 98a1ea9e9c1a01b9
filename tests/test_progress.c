/* The console progress (src/train/progress.c): the live line shows position and ETA, the loss,
 * accuracy and speed only once a log window has averaged them; plain mode draws no live line. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../src/train/progress.h"
#include "check.h"

/* What one dt_progress_live call (dt_progress_log when log) writes, on a live or plain console. */
static char *render(int live, const dt_progress_state *s, int log) {
    setenv("DTRAIN_PROGRESS", live ? "live" : "plain", 1);
    setenv("NO_COLOR", "1", 1);
    FILE *f = tmpfile();
    if (!f) return NULL;
    dt_progress p;
    dt_progress_init(&p, f, 0);
    if (log)
        dt_progress_log(&p, s);
    else
        dt_progress_live(&p, s);
    long size = ftell(f);
    char *text = calloc((size_t)(size > 0 ? size : 0) + 1, 1);
    rewind(f);
    if (text && size > 0 && fread(text, 1, (size_t)size, f) != (size_t)size) text[0] = 0;
    fclose(f);
    return text;
}

int main(void) {
    dt_progress_state s = {.epoch = 1,
                           .epochs = 5,
                           .step_in_epoch = 3,
                           .steps_per_epoch = 40,
                           .global_step = 3,
                           .eta_s = 125};
    char *text = render(1, &s, 0);
    CHECK_STR_EQ(text, "\r\033[Kepoch 1/5  step 3/40  ETA 2m05s");
    free(text);

    s.has_stats = 1;
    s.loss = 0.6931;
    s.acc = 0.5;
    s.img_per_s = 812.5;
    text = render(1, &s, 0);
    CHECK_STR_EQ(text,
                 "\r\033[Kepoch 1/5  step 3/40  loss 0.6931  acc 0.500  812.5 img/s  ETA 2m05s");
    free(text);

    text = render(0, &s, 0);
    CHECK_STR_EQ(text, "");
    free(text);

    s.lr = 0.01;
    s.eta_s = 3700;
    text = render(0, &s, 1);
    CHECK_STR_EQ(text, "epoch 1/5 step 3/40 (global 3): loss 0.6931 acc 0.5000 lr 0.01 812.5 img/s "
                       "ETA 1h01m\n");
    free(text);
    return dt_test_summary("progress");
}
