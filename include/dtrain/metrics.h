/* The metrics files (README "Output files"): metrics.jsonl (one JSON object per line) and
 * metrics.csv (the same train/eval rows), appended and flushed as training goes. */
#ifndef DTRAIN_METRICS_H
#define DTRAIN_METRICS_H

#include <stdio.h>

#include "dtrain/error.h"

typedef struct dt_metrics {
    FILE *jsonl, *csv;
    char jsonl_path[4096], csv_path[4096];
} dt_metrics;

typedef struct dt_train_row {
    int epoch;
    long step;
    double loss, acc, lr, img_per_s, elapsed_s;
    int has_grad_norm; /* train.clip_grad_norm: grad_norm is the window's mean pre-clip norm */
    double grad_norm;
} dt_train_row;

typedef struct dt_eval_row {
    int epoch;
    long step;
    double val_loss, val_acc;
    long n;
    double elapsed_s;
    int has_ema; /* train.ema_decay: the weights' moving average evaluated too */
    double ema_val_loss, ema_val_acc;
} dt_eval_row;

typedef struct dt_done_row {
    int epochs;
    double best_val_acc;
    long skipped_files;
    double elapsed_s;
    const char *precision; /* runtime.precision as resolved ("tf32" for auto on a GPU) */
    const char *arch;      /* model.arch */
    int stopped_early;     /* early stopping ended the run before train.epochs */
    const char *optimizer; /* train.optimizer: "sgd" (also when NULL) or "adamw" */
} dt_done_row;

/* Creates (truncates) dir/metrics.jsonl and dir/metrics.csv. */
int dt_metrics_open(dt_metrics *m, const char *dir, dt_error *err);
/* For a resume from a checkpoint after `step` optimizer steps: keeps the rows up to that step
 * (drops later rows and the done row, rewriting each file durably), then appends. */
int dt_metrics_open_resume(dt_metrics *m, const char *dir, long step, dt_error *err);
int dt_metrics_train(dt_metrics *m, const dt_train_row *row, dt_error *err);
int dt_metrics_eval(dt_metrics *m, const dt_eval_row *row, dt_error *err);
int dt_metrics_done(dt_metrics *m, const dt_done_row *row, dt_error *err);
/* metrics.jsonl only: the evaluation after which early stopping decided to stop, what it
 * monitored ("val_acc" or "ema_val_acc"), its best value and epoch, the count and patience. */
int dt_metrics_early_stop(dt_metrics *m, int epoch, long step, const char *monitor, double best,
                          int best_epoch, long wait, int patience, dt_error *err);
void dt_metrics_close(dt_metrics *m);

#endif
