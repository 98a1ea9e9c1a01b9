/* What an evaluation leaves in output.dir besides metrics: confusion_matrix.csv,
 * classification_report.txt, predictions.csv and report.html (with image grids decoded again at
 * display size), plus the prediction grid as a TensorBoard image. Used by the training run's
 * evaluations and by `dtrain eval`. Rank 0 only. */
#ifndef DTRAIN_RESULTS_H
#define DTRAIN_RESULTS_H

#include <stddef.h>
#include <stdint.h>

#include "dtrain/bytes.h"
#include "dtrain/classify.h"
#include "dtrain/config.h"
#include "dtrain/data.h"
#include "dtrain/error.h"
#include "dtrain/tensorboard.h"

#define DT_REPORT_GRID 9 /* the tutorial's 3 x 3 grid */

typedef struct dt_results_context {
    const dt_config *cfg;
    const dt_dataset *ds;
    char *const *names;            /* display names per label */
    const uint32_t *train_indices; /* the training part (class counts), NULL for dtrain eval */
    size_t n_train;
    const uint8_t *bad_files; /* per dataset file: 1 = undecodable; may be NULL */
    const char *device;       /* e.g. "cpu, 2 threads per rank" */
    const char *optimizer;    /* training: the optimizer and its options (NULL: not shown) */
    int ranks;
    int epoch, epochs; /* 0 for dtrain eval */
    long step;
    double elapsed_s, img_per_s;
    dt_tensorboard *tensorboard; /* NULL: no image summary */
    /* dtrain eval: the folder written (NULL: cfg->output.dir), the model evaluated, its
     * config_hash metadata, the data folder and the split's name; a training run's page (curves
     * from metrics.jsonl) when model_path is NULL */
    const char *out_dir, *model_path, *model_config_hash, *data_path, *split;
} dt_results_context;

/* Writes the files for one evaluation's predictions; report (may be NULL) receives the
 * classification_report text. */
int dt_results_write(const dt_results_context *c, const dt_predictions *p, dt_text *report,
                     dt_error *err);

/* Positions (into the predictions) of the grid: DT_REPORT_GRID samples chosen with a generator
 * seeded by seed, the same at every evaluation; returns how many (fewer when n is smaller). */
size_t dt_results_grid_choice(size_t n, uint64_t seed, size_t *positions);

/* Positions of up to max mistakes, the most confident first (ties: earlier first). */
size_t dt_results_confident_mistakes(const dt_predictions *p, size_t max, size_t *positions);

#endif
