/* report.html: one self-contained page (inline CSS and SVG, images as base64 JPEG data, no script,
 * no network) with the run summary, loss/accuracy curves, the confusion matrix, the per-class
 * scores and grids of validation images titled "True: X  Pred: Y". */
#ifndef DTRAIN_REPORT_H
#define DTRAIN_REPORT_H

#include <stddef.h>
#include <stdint.h>

#include "dtrain/bytes.h"
#include "dtrain/classify.h"
#include "dtrain/error.h"

typedef struct dt_report_tile {
    const char *path; /* the image file (shown as a tooltip) */
    const char *true_name, *predicted_name;
    float confidence; /* probability of the predicted class */
    uint8_t *jpeg;    /* display-size JPEG */
    size_t jpeg_size;
} dt_report_tile;

typedef struct dt_report_series {
    const double *step, *value;
    size_t n;
} dt_report_series;

typedef struct dt_report_input {
    const char *output_dir, *data_root;
    int n_classes;
    char *const *names;      /* display names per label */
    const long *train_count; /* images per class in the training part (NULL: not shown) */
    const long *val_count;   /* per class in the evaluated part */
    char *const *skipped;    /* undecodable files by path */
    size_t n_skipped;
    const char *config_yaml; /* the resolved config */
    const char *device;      /* backend and threads, e.g. "cpu (oneDNN), 2 threads" */
    const char *arch;        /* the model's architecture, e.g. "resnet50" (NULL: not shown) */
    /* the training augmentations in torchvision's names (NULL: not shown) */
    const char *augmentation;
    const char *optimizer; /* "adamw, weight decay 0.05, ..." (NULL: not shown) */
    int ranks;
    int epoch, epochs; /* evaluation after epoch (0 for dtrain eval) */
    long step;
    double elapsed_s, img_per_s; /* img_per_s <= 0: not shown */
    double val_loss;
    const dt_class_metrics *metrics;
    dt_report_series train_loss, train_acc, val_loss_curve, val_acc_curve;
    /* the weights' moving average (train.ema_decay; n 0: none): its validation curves, the
     * last point at `step` shown beside the accuracy at the top */
    dt_report_series ema_loss_curve, ema_acc_curve;
    const char *stop_note;      /* why the run stopped early (early stopping), or NULL */
    const dt_report_tile *grid; /* the seeded validation images */
    size_t n_grid;
    const dt_report_tile *mistakes; /* the most confident mistakes, most confident first */
    size_t n_mistakes;
    /* dtrain eval's page (model_path not NULL): names the model, its config hash and the split
     * ("validation" or "test"), and has no training curves */
    const char *model_path, *model_config_hash, *split;
} dt_report_input;

/* A round tick step (1, 2 or 5 times a power of ten) cutting span into about parts pieces. */
double dt_report_tick_step(double span, int parts);

/* The page as text. */
void dt_report_html(const dt_report_input *in, dt_text *out);

/* Appends s with & < > " ' escaped for HTML text and attribute values. */
void dt_html_escape(dt_text *out, const char *s);
void dt_base64(dt_text *out, const uint8_t *bytes, size_t size);

#endif
