/* Early stopping (train.early_stop_patience) with Lightning's EarlyStopping semantics in mode
 * "max", min_delta 0: an evaluation whose monitored accuracy is above the best so far resets the
 * count, any other adds one, and the run stops once the count reaches the patience. The monitored
 * accuracy is the validation accuracy of the live weights, or of the weights' moving average when
 * train.ema_decay keeps one (as timm's train.py replaces its evaluation metrics by the EMA's). */
#ifndef DTRAIN_TRAIN_EARLY_STOP_H
#define DTRAIN_TRAIN_EARLY_STOP_H

typedef struct dt_early_stop {
    int patience;   /* 0: never stops (the state is kept all the same) */
    double best;    /* -1 before the first evaluation (accuracies are >= 0) */
    int best_epoch; /* the epoch whose evaluation gave best */
    long wait;      /* evaluations since then without improvement */
} dt_early_stop;

/* One evaluation's monitored accuracy after epoch; returns 1 when this evaluation makes the count
 * reach the patience (once: the evaluation that decides the stop), else 0. */
int dt_early_stop_update(dt_early_stop *s, double accuracy, int epoch);
/* The count has reached the patience (patience > 0): the run is over. */
int dt_early_stop_reached(const dt_early_stop *s);

#endif
