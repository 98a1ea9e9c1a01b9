/* The files of one evaluation (see dtrain/results.h): scores and tables, the per-image
 * predictions, and report.html with its image grids and the loss/accuracy curves read back from
 * metrics.jsonl (so a resumed run's page shows the whole history). */
#include "dtrain/results.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dtrain/data.h"
#include "dtrain/platform.h"
#include "dtrain/report.h"
#include "dtrain/rng.h"

#define TILE_HTML 200  /* side of a report image */
#define TILE_BOARD 128 /* side of a TensorBoard grid cell, without its frame */
#define FRAME 4

size_t dt_results_grid_choice(size_t n, uint64_t seed, size_t *positions) {
    size_t k = n < DT_REPORT_GRID ? n : DT_REPORT_GRID;
    dt_rng rng = dt_rng_seeded(dt_rng_mix(seed, 0x47524944u)); /* "GRID" */
    for (size_t i = 0; i < k; i++) {
        size_t pick;
        int fresh;
        do { /* distinct positions: k <= 9, so retries are few */
            pick = dt_rng_below(&rng, (uint32_t)n);
            fresh = 1;
            for (size_t j = 0; j < i; j++) fresh &= positions[j] != pick;
        } while (!fresh);
        positions[i] = pick;
    }
    return k;
}

size_t dt_results_confident_mistakes(const dt_predictions *p, size_t max, size_t *positions) {
    size_t found = 0;
    for (size_t i = 0; i < p->n; i++) {
        if (p->label[i] == p->predicted[i]) continue;
        float conf = p->probabilities[i * (size_t)p->n_classes + (size_t)p->predicted[i]];
        size_t at = found < max ? found++ : max;
        /* insertion into the sorted list; a candidate below the last is dropped */
        while (at > 0) {
            size_t q = positions[at - 1];
            float qc = p->probabilities[q * (size_t)p->n_classes + (size_t)p->predicted[q]];
            if (qc >= conf) break;
            if (at < max) positions[at] = q;
            at--;
        }
        if (at < max) positions[at] = i;
    }
    return found;
}

/* ---- files -------------------------------------------------------------------------------- */

/* Where this evaluation's files go. */
static const char *results_dir(const dt_results_context *c) {
    return c->out_dir ? c->out_dir : c->cfg->output.dir;
}

static int write_text(const char *dir, const char *name, const dt_text *text, dt_error *err) {
    char path[4400];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    if (text->failed) return dt_fail(err, "%s: out of memory", path);
    return dt_write_file_atomic(path, text->data ? text->data : "", text->length, err);
}

static int write_predictions_csv(const dt_results_context *c, const dt_predictions *p,
                                 dt_error *err) {
    dt_text csv = {0};
    dt_text_printf(&csv, "path,true,predicted,confidence\n");
    for (size_t i = 0; i < p->n; i++) {
        dt_text_append_csv_field(&csv, c->ds->files[p->file_index[i]].path);
        dt_text_append(&csv, ",", 1);
        dt_text_append_csv_field(&csv, c->names[p->label[i]]);
        dt_text_append(&csv, ",", 1);
        dt_text_append_csv_field(&csv, c->names[p->predicted[i]]);
        dt_text_printf(&csv, ",%.6f\n",
                       p->probabilities[i * (size_t)p->n_classes + (size_t)p->predicted[i]]);
    }
    int rc = write_text(results_dir(c), "predictions.csv", &csv, err);
    free(csv.data);
    return rc;
}

/* ---- curves from metrics.jsonl ------------------------------------------------------------ */

typedef struct curve {
    double *step, *value;
    size_t n, capacity;
} curve;

static void curve_add(curve *c, double step, double value) {
    if (c->n == c->capacity) {
        size_t cap = c->capacity ? 2 * c->capacity : 64;
        double *s = realloc(c->step, cap * sizeof *s);
        if (s) c->step = s;
        double *v = realloc(c->value, cap * sizeof *v);
        if (v) c->value = v;
        if (!s || !v) return; /* the curve just stops: a picture, not a result */
        c->capacity = cap;
    }
    c->step[c->n] = step;
    c->value[c->n++] = value;
}

/* The number after "key": in line (up to end), or NAN. */
static double json_number(const char *line, const char *end, const char *key) {
    const char *k = strstr(line, key);
    if (!k || k >= end) return NAN;
    return strtod(k + strlen(key), NULL);
}

/* The curves (train loss and accuracy, validation loss and accuracy, the same of the weights'
 * moving average) and, when the run stopped early, the early_stop row's sentence into stop. */
enum { N_CURVES = 6 };
static void read_curves(const char *dir, curve c[N_CURVES], char *stop, size_t stop_size) {
    char path[4400];
    snprintf(path, sizeof path, "%s/metrics.jsonl", dir);
    uint8_t *bytes = NULL;
    size_t size = 0;
    dt_error ignored = {{0}, 0};
    if (dt_read_file(path, (size_t)1 << 30, &bytes, &size, &ignored)) return; /* no curves */
    for (char *line = (char *)bytes; line && *line;) {
        char *end = strchr(line, '\n');
        if (!end) end = line + strlen(line);
        double step = json_number(line, end, "\"step\":");
        if (strstr(line, "\"event\":\"train\"") && strstr(line, "\"event\":\"train\"") < end) {
            curve_add(&c[0], step, json_number(line, end, "\"loss\":"));
            curve_add(&c[1], step, json_number(line, end, "\"acc\":"));
        } else if (strstr(line, "\"event\":\"eval\"") && strstr(line, "\"event\":\"eval\"") < end) {
            curve_add(&c[2], step, json_number(line, end, "\"val_loss\":"));
            curve_add(&c[3], step, json_number(line, end, "\"val_acc\":"));
            if (strstr(line, "\"ema_val_acc\":") && strstr(line, "\"ema_val_acc\":") < end) {
                curve_add(&c[4], step, json_number(line, end, "\"ema_val_loss\":"));
                curve_add(&c[5], step, json_number(line, end, "\"ema_val_acc\":"));
            }
        } else if (strstr(line, "\"event\":\"early_stop\"") &&
                   strstr(line, "\"event\":\"early_stop\"") < end) {
            const char *monitor = strstr(line, "\"monitor\":\"ema_val_acc\"");
            snprintf(stop, stop_size,
                     "Stopped early after epoch %.0f (step %.0f): the validation accuracy%s did "
                     "not improve for %.0f evaluations (best %.4f after epoch %.0f; "
                     "train.early_stop_patience %.0f)",
                     json_number(line, end, "\"epoch\":"), step,
                     monitor && monitor < end ? " of the EMA weights" : "",
                     json_number(line, end, "\"wait\":"), json_number(line, end, "\"best\":"),
                     json_number(line, end, "\"best_epoch\":"),
                     json_number(line, end, "\"patience\":"));
        }
        line = *end ? end + 1 : NULL;
    }
    free(bytes);
}

/* ---- image tiles ------------------------------------------------------------------------- */

typedef struct tile_pixels {
    uint8_t board[TILE_BOARD * TILE_BOARD * 3];
    int ok;
} tile_pixels;

static int make_tile(const dt_results_context *c, const dt_predictions *p, size_t position,
                     dt_report_tile *tile, tile_pixels *pixels) {
    const char *path = c->ds->files[p->file_index[position]].path;
    tile->path = path;
    tile->true_name = c->names[p->label[position]];
    tile->predicted_name = c->names[p->predicted[position]];
    tile->confidence =
        p->probabilities[position * (size_t)p->n_classes + (size_t)p->predicted[position]];
    dt_image img = {0};
    dt_error err = {{0}, 0};
    uint8_t *html = malloc(TILE_HTML * TILE_HTML * 3);
    int rc = -1;
    if (html && dt_image_decode_file(path, &img, &err) == 0 &&
        dt_image_resize_to_square(&img, c->cfg->data.resize, TILE_HTML, html, &err) == 0 &&
        dt_jpeg_encode_memory(html, TILE_HTML, TILE_HTML, 85, &tile->jpeg, &tile->jpeg_size,
                              &err) == 0 &&
        (!pixels || dt_image_resize_to_square(&img, c->cfg->data.resize, TILE_BOARD, pixels->board,
                                              &err) == 0))
        rc = 0;
    if (pixels) pixels->ok = rc == 0;
    dt_image_free(&img);
    free(html);
    return rc; /* a file that no longer decodes leaves a gap, not a failed run */
}

/* The grid as one RGB image: 3 columns, a green frame for a right and red for a wrong answer. */
static int board_image(const dt_report_tile *tiles, const tile_pixels *pixels, size_t n,
                       uint8_t **rgb, int *width, int *height) {
    int cell = TILE_BOARD + 2 * FRAME, cols = 3, rows = (int)((n + 2) / 3);
    *width = cols * cell;
    *height = rows * cell;
    if (!(*rgb = calloc((size_t)*width * (size_t)*height * 3, 1))) return -1;
    memset(*rgb, 255, (size_t)*width * (size_t)*height * 3);
    for (size_t i = 0; i < n; i++) {
        int x0 = (int)(i % 3) * cell, y0 = (int)(i / 3) * cell;
        int wrong = strcmp(tiles[i].true_name, tiles[i].predicted_name) != 0;
        uint8_t frame[3] = {42, 157, 58};
        if (wrong) frame[0] = 214, frame[1] = 39, frame[2] = 40;
        for (int y = 0; y < cell; y++)
            for (int x = 0; x < cell; x++) {
                uint8_t *dst = *rgb + ((size_t)(y0 + y) * (size_t)*width + (size_t)(x0 + x)) * 3;
                int inside =
                    x >= FRAME && y >= FRAME && x < FRAME + TILE_BOARD && y < FRAME + TILE_BOARD;
                if (!inside)
                    memcpy(dst, frame, 3);
                else if (pixels[i].ok)
                    memcpy(dst,
                           pixels[i].board +
                               ((size_t)(y - FRAME) * TILE_BOARD + (size_t)(x - FRAME)) * 3,
                           3);
            }
    }
    return 0;
}

static void free_tiles(dt_report_tile *tiles, size_t n) {
    for (size_t i = 0; i < n; i++) free(tiles[i].jpeg);
}

static char *config_text(const dt_config *cfg) {
    char *text = NULL;
    size_t size = 0;
    FILE *f = open_memstream(&text, &size);
    if (!f) return NULL;
    dt_config_write_yaml(cfg, f);
    fclose(f);
    return text;
}

static int write_report_html(const dt_results_context *c, const dt_predictions *p,
                             const dt_class_metrics *m, double val_loss, dt_error *err) {
    int k = p->n_classes;
    long *train_count = calloc((size_t)k, sizeof *train_count);
    long *val_count = calloc((size_t)k, sizeof *val_count);
    char **skipped = calloc(c->ds->n_files + c->ds->n_skipped_members + 1, sizeof *skipped);
    dt_report_tile grid[DT_REPORT_GRID] = {{0}}, mistakes[DT_REPORT_GRID] = {{0}};
    tile_pixels *pixels = calloc(DT_REPORT_GRID, sizeof *pixels);
    curve curves[N_CURVES] = {{0}};
    char stop[512] = "";
    char *yaml = config_text(c->cfg);
    int rc = -1;
    if (!train_count || !val_count || !skipped || !pixels) {
        dt_fail(err, "out of memory writing report.html");
        goto done;
    }
    for (size_t i = 0; c->train_indices && i < c->n_train; i++)
        train_count[c->ds->files[c->train_indices[i]].label]++;
    for (size_t i = 0; i < p->n; i++) val_count[p->label[i]]++;
    size_t n_skipped = 0;
    for (size_t i = 0; c->bad_files && i < c->ds->n_files; i++)
        if (c->bad_files[i]) skipped[n_skipped++] = c->ds->files[i].path;
    for (size_t i = 0; c->ds->skipped_members && i < c->ds->n_skipped_members; i++)
        skipped[n_skipped++] = c->ds->skipped_members[i]; /* shard members refused at indexing */

    size_t positions[DT_REPORT_GRID], n_grid = 0, n_mistakes = 0;
    size_t chosen = dt_results_grid_choice(p->n, c->cfg->train.seed, positions);
    for (size_t i = 0; i < chosen; i++)
        if (make_tile(c, p, positions[i], &grid[n_grid], &pixels[n_grid]) == 0) n_grid++;
    size_t wrong = dt_results_confident_mistakes(p, DT_REPORT_GRID, positions);
    for (size_t i = 0; i < wrong; i++)
        if (make_tile(c, p, positions[i], &mistakes[n_mistakes], NULL) == 0) n_mistakes++;

    if (c->tensorboard && n_grid) {
        uint8_t *rgb = NULL;
        int width, height;
        if (board_image(grid, pixels, n_grid, &rgb, &width, &height)) {
            dt_fail(err, "out of memory for the prediction grid");
            goto done;
        }
        int image_rc = dt_tensorboard_image(c->tensorboard, "eval/predictions", c->step, rgb, width,
                                            height, err);
        free(rgb);
        if (image_rc || dt_tensorboard_flush(c->tensorboard, err)) goto done;
    }

    if (!c->model_path) /* eval: no training curves */
        read_curves(c->cfg->output.dir, curves, stop, sizeof stop);
    char augmentation[256];
    dt_augment_describe(c->cfg, augmentation, sizeof augmentation);
    dt_report_input in = {
        .output_dir = results_dir(c),
        .data_root = c->data_path ? c->data_path : c->cfg->data.root,
        .n_classes = k,
        .names = c->names,
        .train_count = c->train_indices ? train_count : NULL,
        .val_count = val_count,
        .skipped = skipped,
        .n_skipped = n_skipped,
        .config_yaml = yaml,
        .device = c->device,
        .arch = c->cfg->model.arch,
        .augmentation = c->model_path ? NULL : augmentation,
        .optimizer = c->optimizer,
        .ranks = c->ranks,
        .epoch = c->epoch,
        .epochs = c->epochs,
        .step = c->step,
        .elapsed_s = c->elapsed_s,
        .img_per_s = c->img_per_s,
        .val_loss = val_loss,
        .metrics = m,
        .train_loss = {curves[0].step, curves[0].value, curves[0].n},
        .train_acc = {curves[1].step, curves[1].value, curves[1].n},
        .val_loss_curve = {curves[2].step, curves[2].value, curves[2].n},
        .val_acc_curve = {curves[3].step, curves[3].value, curves[3].n},
        .ema_loss_curve = {curves[4].step, curves[4].value, curves[4].n},
        .ema_acc_curve = {curves[5].step, curves[5].value, curves[5].n},
        .stop_note = stop[0] ? stop : NULL,
        .grid = grid,
        .n_grid = n_grid,
        .mistakes = mistakes,
        .n_mistakes = n_mistakes,
        .model_path = c->model_path,
        .model_config_hash = c->model_config_hash,
        .split = c->split,
    };
    dt_text html = {0};
    dt_report_html(&in, &html);
    rc = write_text(results_dir(c), "report.html", &html, err);
    free(html.data);
done:
    for (int i = 0; i < N_CURVES; i++) {
        free(curves[i].step);
        free(curves[i].value);
    }
    free_tiles(grid, DT_REPORT_GRID);
    free_tiles(mistakes, DT_REPORT_GRID);
    free(pixels);
    free(yaml);
    free(train_count);
    free(val_count);
    free(skipped);
    return rc;
}

int dt_results_write(const dt_results_context *c, const dt_predictions *p, dt_text *report,
                     dt_error *err) {
    dt_class_metrics m;
    if (dt_class_metrics_compute(p->label, p->predicted, p->n, p->n_classes, &m, err)) return -1;
    dt_text text = {0}, csv = {0};
    dt_class_report_text(&m, c->names, 4, &text);
    dt_confusion_csv(&m, c->names, &csv);
    double loss = 0;
    for (size_t i = 0; i < p->n; i++) loss += p->loss[i];
    loss = p->n ? loss / (double)p->n : 0;
    int rc = write_text(results_dir(c), "classification_report.txt", &text, err) ||
             write_text(results_dir(c), "confusion_matrix.csv", &csv, err) ||
             write_predictions_csv(c, p, err) || write_report_html(c, p, &m, loss, err);
    if (!rc && report) dt_text_append(report, text.data, text.length);
    free(text.data);
    free(csv.data);
    dt_class_metrics_free(&m);
    return rc ? -1 : 0;
}
