/* The console progress (src/train/progress.c): the live line shows position and ETA, the loss,
 * accuracy and speed only once a log window has averaged them; plain mode draws no live line;
 * the live line and the log lines count global steps (as every message does); a warning clears
 * an open live line first. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../src/train/progress.h"
#include "check.h"
#include "dtrain/log.h"

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
    dt_progress_state s = {.epoch = 2,
                           .epochs = 5,
                           .step_in_epoch = 3,
                           .steps_per_epoch = 40,
                           .global_step = 43,
                           .total_steps = 200,
                           .eta_s = 125};
    char *text = render(1, &s, 0);
    CHECK_STR_EQ(text, "\r\033[Kepoch 2/5  step 43/200  ETA 2m05s");
    free(text);

    s.has_stats = 1;
    s.loss = 0.6931;
    s.acc = 0.5;
    s.img_per_s = 812.5;
    text = render(1, &s, 0);
    CHECK_STR_EQ(text,
                 "\r\033[Kepoch 2/5  step 43/200  loss 0.6931  acc 0.500  812.5 img/s  ETA 2m05s");
    free(text);

    text = render(0, &s, 0);
    CHECK_STR_EQ(text, "");
    free(text);

    s.lr = 0.01;
    s.eta_s = 3700;
    text = render(0, &s, 1);
    CHECK_STR_EQ(text,
                 "epoch 2/5 step 43/200: loss 0.6931 acc 0.5000 lr 0.01 812.5 img/s ETA 1h01m\n");
    free(text);

    /* a warning while the live line is open: the line is cleared first, once */
    FILE *console = tmpfile();
    if (console) {
        setenv("DTRAIN_PROGRESS", "live", 1);
        dt_progress p;
        dt_progress_init(&p, console, 0);
        dt_progress_live(&p, &s);
        FILE *saved = stderr;
        stderr = console; /* the warning lands on the same terminal */
        dt_warn("a warning");
        dt_warn("another");
        stderr = saved;
        long size = ftell(console);
        char *all = calloc((size_t)size + 1, 1);
        rewind(console);
        if (all && fread(all, 1, (size_t)size, console) == (size_t)size)
            CHECK_STR_EQ(all,
                         "\r\033[Kepoch 2/5  step 43/200  loss 0.6931  acc 0.500  812.5 img/s  "
                         "ETA 1h01m\r\033[Kdtrain: warning: a warning\ndtrain: warning: another\n");
        free(all);
        fclose(console);
    }
    return dt_test_summary("progress");
}
