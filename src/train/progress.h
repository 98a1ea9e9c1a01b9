/* Rank 0's console output: a live progress line on a terminal, plain log lines otherwise. */
#ifndef DTRAIN_TRAIN_PROGRESS_H
#define DTRAIN_TRAIN_PROGRESS_H

#include <stdio.h>

typedef struct dt_progress {
    FILE *out;
    int live;      /* stdout is a terminal: redraw one line with \r */
    int color;     /* ANSI colour allowed (terminal, NO_COLOR unset, TERM not dumb) */
    int line_open; /* a live line is on screen without its newline */
} dt_progress;

typedef struct dt_progress_state {
    int epoch, epochs;
    long step_in_epoch, steps_per_epoch, global_step;
    long total_steps; /* of the whole run: the console counts global steps, as every message */
    double loss, acc, img_per_s, eta_s, lr;
    int has_stats; /* loss, acc, img_per_s hold a window's averages (else the live line omits
                      them) */
} dt_progress_state;

/* DTRAIN_VERBOSE set (and not 0): the start-up details (thread counts and why, the OpenMP wait
 * policy, why there is no GPU) get lines of their own instead of one summary line. */
int dt_progress_verbose(void);

/* under_launcher: started by mpirun/srun (see progress.c for the DTRAIN_PROGRESS override). */
void dt_progress_init(dt_progress *p, FILE *out, int under_launcher);
/* Live redraw (terminal only; does nothing otherwise): position and ETA, with the loss, accuracy
 * and speed when has_stats. */
void dt_progress_live(dt_progress *p, const dt_progress_state *s);
/* A permanent log line (train statistics). */
void dt_progress_log(dt_progress *p, const dt_progress_state *s);
/* A permanent free-form line (evaluation results, notices). */
void dt_progress_line(dt_progress *p, const char *highlight, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
