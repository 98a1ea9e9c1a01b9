/* Tests the threaded batch loader end to end on generated folders: exact pixels of known
 * images, undecodable files (skipped, counted, named once, batch count unchanged), filler
 * slots, augmentation determinism across worker counts, restart and destroy mid-epoch, taking
 * a batch only when it is ready (dt_loader_try_next), and the refusal to hang when every buffer
 * is held; mixup/cutmix of the assembled batches (exact pixels against a direct reference,
 * partners among counted slots only, lambda's distribution, the seeding by global batch index
 * across worker counts and a mid-epoch restart). */
#include <fcntl.h>
#include <math.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "dtrain/data.h"
#include "imagegen.h"
#include "process.h"

static char dir[1024];

static const uint8_t blue[3] = {5, 60, 220}, red[3] = {200, 10, 30};

static void write_solid_png(const char *relative, int w, int h, const uint8_t colour[3]) {
    char path[2048], folder[2048];
    snprintf(path, sizeof path, "%s/solid/%s", dir, relative);
    snprintf(folder, sizeof folder, "%s", path);
    *strrchr(folder, '/') = '\0';
    dt_error err;
    dt_make_directories(folder, &err);
    uint16_t *samples = malloc(sizeof(uint16_t) * (size_t)w * h * 3);
    for (int i = 0; i < w * h * 3; i++) samples[i] = colour[i % 3];
    dt_testgen_png png = {w, h, 2, 8, samples, NULL, 0, 0};
    if (dt_testgen_write_png(path, &png, &err) != 0) fprintf(stderr, "%s\n", err.message);
    free(samples);
}

static void write_raw(const char *relative, const void *data, size_t size) {
    char path[2048];
    snprintf(path, sizeof path, "%s/solid/%s", dir, relative);
    dt_error err;
    if (dt_testgen_write_bytes(path, data, size, &err) != 0) fprintf(stderr, "%s\n", err.message);
}

/* solid/blue: 6 PNGs; solid/red: 4 PNGs, a PNG named .jpg, and three undecodable files. */
static void build_solid_folder(void) {
    write_solid_png("blue/a.png", 10, 7, blue);
    write_solid_png("blue/b.png", 31, 40, blue);
    write_solid_png("blue/c.PNG", 64, 64, blue);
    write_solid_png("blue/d.png", 1, 1, blue);
    write_solid_png("blue/e.png", 100, 3, blue);
    write_solid_png("blue/nested/deep/f.png", 9, 9, blue);
    write_solid_png("red/a.png", 12, 12, red);
    write_solid_png("red/b.png", 8, 30, red);
    write_solid_png("red/c.png", 50, 20, red);
    write_solid_png("red/d.png", 16, 16, red);
    write_solid_png("red/png_named.jpg", 5, 5, red);

    uint8_t rgb[32 * 32 * 3];
    dt_testgen_fill_photo_like(rgb, 32, 32, 1);
    char path[2048], truncated[2048];
    snprintf(path, sizeof path, "%s/full.jpg", dir);
    snprintf(truncated, sizeof truncated, "%s/solid/red/truncated.jpg", dir);
    dt_error err;
    dt_testgen_write_jpeg(path, rgb, 32, 32, 3, 90, 0, &err);
    dt_testgen_truncated_copy(path, truncated, 300, &err);
    write_raw("red/empty.jpg", "", 0);
    write_raw("red/text.jpg", "hello, not an image\n", 20);
    write_raw("red/.hidden.jpg", "ignored", 7);
}

static int is_bad_name(const char *path) {
    return strstr(path, "truncated.jpg") || strstr(path, "empty.jpg") || strstr(path, "text.jpg");
}

static int slot_is_solid(const dt_batch *batch, int slot, int pixels, const uint8_t colour[3]) {
    const uint8_t *p = batch->pixels + (size_t)slot * pixels * 3;
    for (int i = 0; i < pixels; i++)
        if (p[3 * i] != colour[0] || p[3 * i + 1] != colour[1] || p[3 * i + 2] != colour[2])
            return 0;
    return 1;
}

static int capture_stderr(const char *path) {
    fflush(stderr);
    int saved = dup(2);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    dup2(fd, 2);
    close(fd);
    return saved;
}

/* Restores stderr and passes on every captured line that is not a loader warning (so check
 * failures reported while capturing still show). */
static void restore_stderr(int saved, const char *path) {
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    FILE *log = fopen(path, "r");
    char line[4096];
    while (log && fgets(line, sizeof line, log))
        if (!strstr(line, "warning: skipping ")) fputs(line, stderr); /* after "dtrain: " */
    if (log) fclose(log);
}

static dt_loader_options default_options(void) {
    dt_loader_options opt;
    memset(&opt, 0, sizeof opt);
    opt.batch_size = 4;
    opt.image_size = 8;
    opt.resize = DT_RESIZE_SQUASH;
    opt.augment = DT_AUGMENT_NONE;
    opt.workers = 3;
    opt.prefetch_batches = 2;
    opt.seed = 1;
    return opt;
}

static void test_known_pixels_and_bad_files(const dt_dataset *ds) {
    CHECK_INT_EQ(ds->n_classes, 2);
    CHECK_INT_EQ(ds->n_files, 14);
    int n_bad = 0;
    for (size_t i = 0; i < ds->n_files; i++) n_bad += is_bad_name(ds->files[i].path) != 0;
    CHECK_INT_EQ(n_bad, 3);

    dt_loader_options opt = default_options();
    dt_loader *loader;
    dt_error err = {{0}, 0};
    if (dt_loader_create(ds, &opt, &loader, &err) != 0) {
        CHECK_MSG(0, "create: %s", err.message);
        return;
    }
    uint32_t indices[14];
    for (uint32_t i = 0; i < 14; i++) indices[i] = i;
    char log_path[1200];
    snprintf(log_path, sizeof log_path, "%s/stderr.txt", dir);
    int saved = capture_stderr(log_path);
    int pixels = opt.image_size * opt.image_size;
    for (int epoch = 1; epoch <= 2; epoch++) {
        CHECK(dt_loader_start(loader, indices, 14, epoch, epoch == 1, &err) == 0);
        int n_batches = 0, counted = 0, all_exact = 1, bad_handled = 1;
        const dt_batch *batch;
        while (dt_loader_next(loader, &batch, &err) == 0 && batch) {
            int first_good = -1;
            for (int s = 0; s < 4; s++) {
                size_t position = (size_t)n_batches * 4 + (size_t)s;
                int real = position < 14;
                int good = real && !is_bad_name(ds->files[position].path);
                if (good && first_good < 0) first_good = s;
                if (good) {
                    const uint8_t *colour = ds->files[position].label == 0 ? blue : red;
                    all_exact &= batch->counts[s] == 1 &&
                                 batch->file_index[s] == (uint32_t)position &&
                                 batch->labels[s] == ds->files[position].label &&
                                 slot_is_solid(batch, s, pixels, colour);
                }
                counted += batch->counts[s];
            }
            for (int s = 0; s < 4; s++) {
                size_t position = (size_t)n_batches * 4 + (size_t)s;
                if (position < 14 && !is_bad_name(ds->files[position].path)) continue;
                /* undecodable or filler: a copy of the batch's first decoded image, or zeros
                 * when nothing in the batch decodes (the last batch: text, truncated, 2 fillers) */
                static const uint8_t black[3] = {0, 0, 0};
                if (first_good < 0) {
                    bad_handled &= batch->counts[s] == 0 && slot_is_solid(batch, s, pixels, black);
                    continue;
                }
                bad_handled &= batch->counts[s] == 0 &&
                               batch->labels[s] == batch->labels[first_good] &&
                               batch->file_index[s] == batch->file_index[first_good] &&
                               memcmp(batch->pixels + (size_t)s * pixels * 3,
                                      batch->pixels + (size_t)first_good * pixels * 3,
                                      (size_t)pixels * 3) == 0;
            }
            int slot_count = 0;
            for (int s = 0; s < 4; s++) slot_count += batch->counts[s];
            CHECK_INT_EQ(batch->n_counted, slot_count);
            CHECK_INT_EQ(batch->batch_size, 4);
            dt_loader_release(loader, batch);
            n_batches++;
        }
        CHECK_INT_EQ(n_batches, 4); /* ceil(14 / 4): bad files change nothing */
        CHECK_INT_EQ(counted, 11);
        CHECK_MSG(all_exact, "epoch %d: decodable slots hold their exact colour", epoch);
        CHECK_MSG(bad_handled, "epoch %d: bad and filler slots copy a decoded image", epoch);
        /* each undecodable file flagged once, however often it was met */
        const uint8_t *flags = dt_loader_bad_files(loader);
        int n_flagged = 0;
        for (size_t i = 0; i < ds->n_files; i++) n_flagged += flags[i] != 0;
        CHECK_INT_EQ(n_flagged, 3);
    }
    restore_stderr(saved, log_path);
    const uint8_t *bad_flags = dt_loader_bad_files(loader);
    int flags_right = 1;
    for (size_t i = 0; i < ds->n_files; i++)
        flags_right &= bad_flags[i] == (is_bad_name(ds->files[i].path) != 0);
    CHECK_MSG(flags_right, "dt_loader_bad_files flags exactly the undecodable files");
    CHECK(dt_loader_wait_seconds(loader) >= 0.0);
    dt_loader_destroy(loader);

    char *text = dt_test_read_text(log_path);
    CHECK_MSG(text != NULL, "the captured stderr %s can be read", log_path);
    if (text) {
        const char *names[] = {"truncated.jpg", "empty.jpg", "text.jpg"};
        for (int k = 0; k < 3; k++) {
            char line[2200];
            snprintf(line, sizeof line, "warning: skipping %s/solid/red/%s: ", dir, names[k]);
            CHECK_MSG(dt_test_count(text, line) == 1, "'%s' reported once", names[k]);
        }
        CHECK_INT_EQ(dt_test_count(text, "warning: skipping"), 3);
        free(text);
    }

    /* A batch with nothing decodable: zeros, nothing counted. */
    uint32_t bad_only[3];
    int k = 0;
    for (uint32_t i = 0; i < 14 && k < 3; i++)
        if (is_bad_name(ds->files[i].path)) bad_only[k++] = i;
    CHECK(dt_loader_create(ds, &opt, &loader, &err) == 0);
    saved = capture_stderr(log_path);
    CHECK(dt_loader_start(loader, bad_only, 3, 1, 0, &err) == 0);
    const dt_batch *batch;
    CHECK(dt_loader_next(loader, &batch, &err) == 0);
    if (batch) {
        static const uint8_t black[3] = {0, 0, 0};
        CHECK_INT_EQ(batch->n_counted, 0);
        int zero = 1;
        for (int s = 0; s < 4; s++)
            zero &= batch->counts[s] == 0 && slot_is_solid(batch, s, pixels, black);
        CHECK(zero);
        dt_loader_release(loader, batch);
    }
    CHECK(dt_loader_next(loader, &batch, &err) == 0 && batch == NULL);
    restore_stderr(saved, log_path);
    dt_loader_destroy(loader);
}

/* Runs one epoch and returns all batch pixels concatenated (caller frees). */
static uint8_t *run_epoch(const dt_dataset *ds, const dt_loader_options *opt,
                          const uint32_t *indices, size_t n, int epoch, int training,
                          size_t *out_bytes) {
    dt_loader *loader;
    dt_error err = {{0}, 0};
    if (dt_loader_create(ds, opt, &loader, &err) != 0) {
        CHECK_MSG(0, "create: %s", err.message);
        return NULL;
    }
    size_t n_batches = (n + (size_t)opt->batch_size - 1) / (size_t)opt->batch_size;
    size_t batch_bytes = (size_t)opt->batch_size * opt->image_size * opt->image_size * 3;
    uint8_t *all = calloc(n_batches, batch_bytes);
    CHECK(dt_loader_start(loader, indices, n, epoch, training, &err) == 0);
    const dt_batch *batch;
    size_t b = 0;
    while (dt_loader_next(loader, &batch, &err) == 0 && batch) {
        if (b < n_batches) memcpy(all + b * batch_bytes, batch->pixels, batch_bytes);
        dt_loader_release(loader, batch);
        b++;
    }
    CHECK_INT_EQ(b, n_batches);
    dt_loader_destroy(loader);
    *out_bytes = n_batches * batch_bytes;
    return all;
}

static void test_augmentation_determinism(const dt_dataset *ds) {
    CHECK_INT_EQ(ds->n_classes, 3);
    CHECK_INT_EQ(ds->n_files, 18);
    CHECK_STR_EQ(ds->class_names[0], "class00");
    CHECK_STR_EQ(ds->class_names[2], "class02");
    uint32_t indices[18];
    for (uint32_t i = 0; i < 18; i++) indices[i] = (i * 7) % 18; /* a shuffled order */
    dt_loader_options opt = default_options();
    opt.batch_size = 5;
    opt.image_size = 16;
    opt.augment = DT_AUGMENT_CROP_FLIP;
    opt.seed = 77;
    size_t bytes_a, bytes_b, bytes_c, bytes_d;
    opt.workers = 1;
    uint8_t *one_worker = run_epoch(ds, &opt, indices, 18, 3, 1, &bytes_a);
    opt.workers = 4;
    opt.prefetch_batches = 3;
    uint8_t *four_workers = run_epoch(ds, &opt, indices, 18, 3, 1, &bytes_b);
    uint8_t *next_epoch = run_epoch(ds, &opt, indices, 18, 4, 1, &bytes_c);
    uint8_t *evaluation = run_epoch(ds, &opt, indices, 18, 3, 0, &bytes_d);
    if (one_worker && four_workers && next_epoch && evaluation) {
        CHECK_MSG(bytes_a == bytes_b && memcmp(one_worker, four_workers, bytes_a) == 0,
                  "crop_flip batches identical with 1 and 4 workers");
        CHECK_MSG(memcmp(one_worker, next_epoch, bytes_a) != 0, "another epoch, other crops");
        /* every slot equals dt_sample_load for its (file, epoch); eval applies no augment */
        size_t slot_bytes = 16 * 16 * 3;
        uint8_t *expected = malloc(slot_bytes);
        int slots_match = 1, eval_match = 1;
        for (size_t i = 0; i < 18; i++) {
            dt_error err;
            dt_sample_load(ds->files[indices[i]].path, &opt, 1, 3, indices[i], expected, &err);
            slots_match &= memcmp(expected, one_worker + i * slot_bytes, slot_bytes) == 0;
            dt_sample_load(ds->files[indices[i]].path, &opt, 0, 3, indices[i], expected, &err);
            eval_match &= memcmp(expected, evaluation + i * slot_bytes, slot_bytes) == 0;
        }
        CHECK(slots_match);
        CHECK(eval_match);
        free(expected);
    }
    free(one_worker);
    free(four_workers);
    free(next_epoch);

    /* flip: each slot is the plain resize or its mirror image, and both happen. */
    opt.augment = DT_AUGMENT_FLIP;
    size_t bytes_f;
    uint8_t *flipped = run_epoch(ds, &opt, indices, 18, 1, 1, &bytes_f);
    int n_plain = 0, n_mirrored = 0, n_other = 0;
    for (size_t i = 0; flipped && evaluation && i < 18; i++) {
        const uint8_t *f = flipped + i * 16 * 16 * 3, *e = evaluation + i * 16 * 16 * 3;
        int plain = memcmp(f, e, 16 * 16 * 3) == 0, mirrored = 1;
        for (int y = 0; y < 16; y++)
            for (int x = 0; x < 16; x++)
                mirrored &= memcmp(f + (y * 16 + x) * 3, e + (y * 16 + 15 - x) * 3, 3) == 0;
        n_plain += plain;
        n_mirrored += mirrored && !plain;
        n_other += !plain && !mirrored;
    }
    CHECK_INT_EQ(n_other, 0);
    CHECK_MSG(n_plain > 0 && n_mirrored > 0, "flip: %d plain, %d mirrored", n_plain, n_mirrored);
    free(flipped);
    free(evaluation);

    /* crop boxes stay inside the image and within torchvision's area and ratio ranges */
    int inside = 1, in_range = 1;
    for (uint32_t f = 0; f < 2000; f++) {
        dt_augment_draw draw;
        dt_augment_draw_for(DT_AUGMENT_CROP_FLIP, 300, 200, 5, 1, f, &draw);
        inside &= draw.crop_x >= 0 && draw.crop_y >= 0 && draw.crop_width >= 1 &&
                  draw.crop_height >= 1 && draw.crop_x + draw.crop_width <= 300 &&
                  draw.crop_y + draw.crop_height <= 200;
        double area = (double)draw.crop_width * draw.crop_height / (300.0 * 200.0);
        double ratio = (double)draw.crop_width / draw.crop_height;
        in_range &= area > 0.07 && area <= 1.0 && ratio > 0.70 && ratio < 1.40;
    }
    CHECK(inside);
    CHECK(in_range);
}

static void test_lifecycle(const dt_dataset *ds) {
    dt_loader_options opt = default_options();
    dt_loader *loader;
    dt_error err = {{0}, 0};
    const dt_batch *batch = NULL, *first = NULL, *second = NULL;
    CHECK(dt_loader_create(ds, &opt, &loader, &err) == 0);
    CHECK(dt_loader_next(loader, &batch, &err) == -1);
    CHECK_MSG(strstr(err.message, "before dt_loader_start") != NULL, "%s", err.message);

    uint32_t many[200];
    for (uint32_t i = 0; i < 200; i++) many[i] = i % 18;
    CHECK(dt_loader_start(loader, many, 200, 1, 1, &err) == 0);
    /* holding every ring buffer: the next request fails instead of blocking forever */
    CHECK(dt_loader_next(loader, &first, &err) == 0 && first);
    CHECK(dt_loader_next(loader, &second, &err) == 0 && second);
    CHECK(dt_loader_next(loader, &batch, &err) == -1);
    CHECK_MSG(strstr(err.message, "held") != NULL, "%s", err.message);
    dt_loader_release(loader, first);
    CHECK(dt_loader_next(loader, &batch, &err) == 0 && batch);
    dt_loader_release(loader, second);
    dt_loader_release(loader, batch);

    /* restart mid-epoch with other indices: the new epoch comes out whole and right */
    uint32_t few[6] = {17, 0, 5, 12, 3, 9};
    CHECK(dt_loader_start(loader, few, 6, 2, 0, &err) == 0);
    int n_batches = 0, labels_ok = 1;
    while (dt_loader_next(loader, &batch, &err) == 0 && batch) {
        for (int s = 0; s < 4; s++) {
            int position = n_batches * 4 + s;
            if (position < 6)
                labels_ok &= batch->file_index[s] == few[position] &&
                             batch->labels[s] == ds->files[few[position]].label;
        }
        if (n_batches == 1) CHECK_INT_EQ(batch->n_counted, 2);
        dt_loader_release(loader, batch);
        n_batches++;
    }
    CHECK_INT_EQ(n_batches, 2);
    CHECK(labels_ok);

    /* dt_loader_try_next: a batch not decoded yet is not taken (1, NULL) and comes next, so
     * polling gives every batch in order, as dt_loader_next does; then 0 and NULL at the end */
    CHECK(dt_loader_start(loader, many, 200, 5, 1, &err) == 0);
    int polled = 0, not_ready = 0, order_ok = 1, misuse = 0;
    for (;;) {
        int rc = dt_loader_try_next(loader, &batch, &err);
        if (rc == 1) {
            misuse |= batch != NULL;
            not_ready++;
            sched_yield();
            continue;
        }
        if (rc != 0 || !batch) break;
        for (int s = 0; s < 4; s++) order_ok &= batch->file_index[s] == many[polled * 4 + s];
        dt_loader_release(loader, batch);
        polled++;
    }
    CHECK_INT_EQ(polled, 50);
    CHECK(order_ok && !misuse);
    CHECK(dt_loader_try_next(loader, &batch, &err) == 0 && batch == NULL);
    fprintf(stderr, "try_next: %d polls found the batch not decoded yet\n", not_ready);
    /* holding every ring buffer: an error, as dt_loader_next */
    CHECK(dt_loader_start(loader, many, 200, 6, 1, &err) == 0);
    CHECK(dt_loader_next(loader, &first, &err) == 0 && first);
    CHECK(dt_loader_next(loader, &second, &err) == 0 && second);
    CHECK(dt_loader_try_next(loader, &batch, &err) == -1);
    dt_loader_release(loader, first);
    dt_loader_release(loader, second);

    /* no indices: no batches */
    CHECK(dt_loader_start(loader, few, 0, 3, 0, &err) == 0);
    CHECK(dt_loader_next(loader, &batch, &err) == 0 && batch == NULL);
    /* out-of-range index */
    uint32_t wrong[1] = {18};
    CHECK(dt_loader_start(loader, wrong, 1, 3, 0, &err) == -1);
    CHECK_MSG(strstr(err.message, "out of range") != NULL, "%s", err.message);

    /* destroy mid-epoch, with work queued and buffers full */
    CHECK(dt_loader_start(loader, many, 200, 4, 1, &err) == 0);
    CHECK(dt_loader_next(loader, &batch, &err) == 0 && batch);
    dt_loader_destroy(loader);

    /* option validation */
    opt.prefetch_batches = 1;
    CHECK(dt_loader_create(ds, &opt, &loader, &err) == -1);
    opt.prefetch_batches = 2;
    opt.workers = 0;
    CHECK(dt_loader_create(ds, &opt, &loader, &err) == -1);
}

static void test_learnable_folder_is_separable(const dt_dataset *ds) {
    /* Mean colour per class: the classes differ clearly. */
    double mean[3][3] = {{0}};
    for (size_t i = 0; i < ds->n_files; i++) {
        dt_image img;
        dt_error err;
        if (dt_image_decode_file(ds->files[i].path, &img, &err) != 0) continue;
        CHECK(img.width == 40 && img.height == 32);
        for (int p = 0; p < img.width * img.height; p++)
            for (int c = 0; c < 3; c++)
                mean[ds->files[i].label][c] += img.pixels[3 * p + c] / (40.0 * 32.0 * 6.0);
        dt_image_free(&img);
    }
    for (int a = 0; a < 3; a++)
        for (int b = a + 1; b < 3; b++) {
            double distance = 0;
            for (int c = 0; c < 3; c++) distance += fabs(mean[a][c] - mean[b][c]);
            CHECK_MSG(distance > 40, "class %d vs %d mean colour distance %.1f", a, b, distance);
        }
}

/* ---- mixup and cutmix ------------------------------------------------------------------- */

enum { MIX_FILES = 18, MIX_BATCH = 5, MIX_SIDE = 16, MIX_BATCHES = 4 };
#define MIX_SLOT_BYTES ((size_t)MIX_SIDE * MIX_SIDE * 3)

typedef struct mixed_epoch {
    uint8_t pixels[MIX_BATCHES][MIX_BATCH * MIX_SLOT_BYTES];
    int32_t labels[MIX_BATCHES][MIX_BATCH], mix_labels[MIX_BATCHES][MIX_BATCH];
    uint8_t counts[MIX_BATCHES][MIX_BATCH];
    int mixed[MIX_BATCHES];
    float lambda[MIX_BATCHES];
} mixed_epoch;

/* The batches of one training epoch started at batch first (indices from there on). */
static void collect_mixed(const dt_dataset *ds, const dt_loader_options *opt,
                          const uint32_t *indices, size_t first, mixed_epoch *out) {
    memset(out, 0, sizeof *out);
    dt_loader *loader;
    dt_error err = {{0}, 0};
    if (dt_loader_create(ds, opt, &loader, &err) != 0) {
        CHECK_MSG(0, "create: %s", err.message);
        return;
    }
    size_t skip = first * MIX_BATCH;
    CHECK(dt_loader_start_at(loader, indices + skip, MIX_FILES - skip, 2, 1, first, &err) == 0);
    const dt_batch *batch;
    size_t b = first;
    while (dt_loader_next(loader, &batch, &err) == 0 && batch) {
        if (b < MIX_BATCHES) {
            memcpy(out->pixels[b], batch->pixels, sizeof out->pixels[b]);
            memcpy(out->labels[b], batch->labels, sizeof out->labels[b]);
            memcpy(out->counts[b], batch->counts, sizeof out->counts[b]);
            out->mixed[b] = batch->mix_labels != NULL;
            if (batch->mix_labels)
                memcpy(out->mix_labels[b], batch->mix_labels, sizeof out->mix_labels[b]);
            out->lambda[b] = batch->mix_lambda;
        }
        dt_loader_release(loader, batch);
        b++;
    }
    CHECK_INT_EQ(b, MIX_BATCHES);
    dt_loader_destroy(loader);
}

/* The mixed epoch against the unmixed one, slot by slot, written directly from the definition:
 * the k-th counted slot's partner is the k-th counted slot from the end; mixup pixels are
 * rint(lam * own + (1 - lam) * partner) in float32, cutmix pixels the partner's inside the box. */
static int mix_matches_reference(const dt_loader_options *opt, const mixed_epoch *plain,
                                 const mixed_epoch *mixed, uint64_t global_of_batch_1) {
    int wrong = 0;
    for (int b = 0; b < MIX_BATCHES; b++) {
        uint64_t global = b == 1 ? global_of_batch_1 : (uint64_t)b * opt->mix_ranks + opt->mix_rank;
        dt_mix_draw draw;
        dt_mix_draw_for(&opt->mix, MIX_SIDE, MIX_SIDE, opt->seed, 2, global, &draw);
        wrong += mixed->mixed[b] != draw.mixed;
        if (!draw.mixed) {
            wrong += memcmp(mixed->pixels[b], plain->pixels[b], sizeof plain->pixels[b]) != 0;
            continue;
        }
        wrong += mixed->lambda[b] != (float)draw.lambda;
        int counted[MIX_BATCH], r = 0, partner[MIX_BATCH];
        for (int s = 0; s < MIX_BATCH; s++) {
            partner[s] = s;
            if (plain->counts[b][s]) counted[r++] = s;
        }
        for (int k = 0; k < r; k++) partner[counted[k]] = counted[r - 1 - k];
        for (int s = 0; s < MIX_BATCH; s++) {
            wrong += mixed->mix_labels[b][s] != plain->labels[b][partner[s]];
            const uint8_t *own = plain->pixels[b] + s * MIX_SLOT_BYTES;
            const uint8_t *other = plain->pixels[b] + partner[s] * MIX_SLOT_BYTES;
            const uint8_t *got = mixed->pixels[b] + s * MIX_SLOT_BYTES;
            for (int y = 0; y < MIX_SIDE; y++)
                for (int x = 0; x < MIX_SIDE; x++)
                    for (int c = 0; c < 3; c++) {
                        size_t i = ((size_t)y * MIX_SIDE + (size_t)x) * 3 + (size_t)c;
                        int want;
                        if (draw.cutmix) {
                            int inside = y >= draw.y0 && y < draw.y1 && x >= draw.x0 && x < draw.x1;
                            want = inside ? other[i] : own[i];
                        } else {
                            float v = (float)own[i] * (float)draw.lambda +
                                      (float)other[i] * (float)(1.0 - draw.lambda);
                            want = (int)rintf(v);
                        }
                        wrong += got[i] != want;
                    }
        }
    }
    return wrong;
}

static void test_mixing(const dt_dataset *ds) {
    uint32_t indices[MIX_FILES];
    for (uint32_t i = 0; i < MIX_FILES; i++) indices[i] = (i * 5) % MIX_FILES;
    dt_loader_options opt = default_options();
    opt.batch_size = MIX_BATCH; /* 18 files: the last batch has 3 counted slots and 2 fillers */
    opt.image_size = MIX_SIDE;
    opt.augment = DT_AUGMENT_FLIP;
    opt.seed = 99;
    opt.workers = 2;
    static mixed_epoch plain, one, four, resumed;
    collect_mixed(ds, &opt, indices, 0, &plain);
    for (int b = 0; b < MIX_BATCHES; b++) CHECK(!plain.mixed[b] && plain.lambda[b] == 1.0f);
    CHECK_INT_EQ(plain.counts[3][2] + plain.counts[3][3] + plain.counts[3][4], 1);

    const dt_mix_params modes[3] = {
        {.mixup_alpha = 0.4, .prob = 1.0},
        {.cutmix_alpha = 1.0, .prob = 1.0},
        {.mixup_alpha = 0.8, .cutmix_alpha = 1.0, .prob = 0.7, .switch_prob = 0.5}};
    for (int m = 0; m < 3; m++) {
        opt.mix = modes[m];
        opt.mix_ranks = 2, opt.mix_rank = 1; /* global batch of local b: 2b + 1 */
        opt.workers = 1;
        collect_mixed(ds, &opt, indices, 0, &one);
        opt.workers = 4;
        collect_mixed(ds, &opt, indices, 0, &four);
        CHECK_MSG(memcmp(&one, &four, sizeof one) == 0, "mode %d: 1 and 4 workers differ", m);
        CHECK_INT_EQ(mix_matches_reference(&opt, &plain, &one, 3), 0);
        if (m < 2) /* prob 1: every batch mixed, pixels changed */
            CHECK(one.mixed[0] && one.mixed[3] &&
                  memcmp(one.pixels, plain.pixels, sizeof one.pixels) != 0);
        /* started at batch 2 (a resume mid-epoch): those batches are the same */
        collect_mixed(ds, &opt, indices, 2, &resumed);
        CHECK_MSG(memcmp(resumed.pixels[2], one.pixels[2], 2 * sizeof one.pixels[2]) == 0 &&
                      memcmp(resumed.mix_labels[2], one.mix_labels[2],
                             2 * sizeof one.mix_labels[2]) == 0 &&
                      resumed.lambda[2] == one.lambda[2] && resumed.lambda[3] == one.lambda[3],
                  "mode %d: batches 2 and 3 differ when the epoch starts at batch 2", m);
        /* the last batch's fillers are neither mixed nor partners */
        for (int s = 0; s < MIX_BATCH; s++)
            if (!plain.counts[3][s] && one.mixed[3]) {
                CHECK(memcmp(one.pixels[3] + s * MIX_SLOT_BYTES,
                             plain.pixels[3] + s * MIX_SLOT_BYTES, MIX_SLOT_BYTES) == 0);
                CHECK_INT_EQ(one.mix_labels[3][s], plain.labels[3][s]);
            }
    }
    /* another accumulation layout maps batch 1 elsewhere: accumulate 2 of 2 ranks, rank 1 ->
     * local 1 is step 0, micro-batch 1: global 0 * 4 + 1 * 2 + 1 = 3 (as above by chance), and
     * local 2 is global 1 * 4 + 2 + 0 = 6 */
    opt.mix = modes[0];
    opt.mix_accumulate = 2;
    collect_mixed(ds, &opt, indices, 0, &one);
    dt_mix_draw want;
    dt_mix_draw_for(&opt.mix, MIX_SIDE, MIX_SIDE, opt.seed, 2, 6, &want);
    CHECK(one.lambda[2] == (float)want.lambda);
    /* evaluation batches are never mixed */
    size_t bytes;
    uint8_t *evaluation = run_epoch(ds, &opt, indices, MIX_FILES, 2, 0, &bytes);
    opt.mix = (dt_mix_params){0};
    uint8_t *eval_plain = run_epoch(ds, &opt, indices, MIX_FILES, 2, 0, &bytes);
    CHECK(evaluation && eval_plain && memcmp(evaluation, eval_plain, bytes) == 0);
    free(evaluation);
    free(eval_plain);
}

/* lambda ~ Beta(alpha, alpha): mean 1/2 and variance 1 / (4 (2 alpha + 1)); prob and
 * switch_prob as shares; the cutmix box is timm's rand_bbox and lambda its real area. */
static void test_mix_draws(void) {
    const double alphas[3] = {0.2, 1.0, 4.0};
    enum { DRAWS = 40000 };
    for (int a = 0; a < 3; a++) {
        dt_mix_params p = {.mixup_alpha = alphas[a], .prob = 1.0};
        double sum = 0.0, squares = 0.0;
        int in_range = 1;
        for (uint64_t g = 0; g < DRAWS; g++) {
            dt_mix_draw d;
            dt_mix_draw_for(&p, 224, 224, 7, 1, g, &d);
            in_range &= d.mixed && !d.cutmix && d.lambda >= 0.0 && d.lambda <= 1.0;
            sum += d.lambda, squares += d.lambda * d.lambda;
        }
        double mean = sum / DRAWS, var = squares / DRAWS - mean * mean;
        double want_var = 1.0 / (4.0 * (2.0 * alphas[a] + 1.0));
        CHECK(in_range);
        /* 4 standard errors of the mean (sqrt(var / n)) and about 3% of the variance */
        CHECK_MSG(fabs(mean - 0.5) < 4.0 * sqrt(want_var / DRAWS), "alpha %g: mean %.4f", alphas[a],
                  mean);
        CHECK_MSG(fabs(var / want_var - 1.0) < 0.03, "alpha %g: variance %.5f, Beta's %.5f",
                  alphas[a], var, want_var);
    }
    dt_mix_params both = {
        .mixup_alpha = 0.2, .cutmix_alpha = 1.0, .prob = 0.3, .switch_prob = 0.25};
    int mixed = 0, cutmix = 0, area_ok = 1;
    for (uint64_t g = 0; g < DRAWS; g++) {
        dt_mix_draw d;
        dt_mix_draw_for(&both, 40, 30, 7, 3, g, &d);
        mixed += d.mixed, cutmix += d.cutmix;
        if (d.cutmix)
            area_ok &= d.y0 >= 0 && d.y1 <= 40 && d.x0 >= 0 && d.x1 <= 30 && d.y0 <= d.y1 &&
                       d.x0 <= d.x1 &&
                       d.lambda == 1.0 - (double)(d.y1 - d.y0) * (d.x1 - d.x0) / (40.0 * 30.0);
    }
    CHECK(area_ok);
    CHECK_MSG(fabs((double)mixed / DRAWS - 0.3) < 0.01, "mixed share %d", mixed);
    CHECK_MSG(fabs((double)cutmix / mixed - 0.25) < 0.02, "cutmix share %d of %d", cutmix, mixed);
    dt_mix_params off = {.prob = 1.0};
    dt_mix_draw d;
    dt_mix_draw_for(&off, 8, 8, 1, 1, 1, &d);
    CHECK(!dt_mix_enabled(&off) && !d.mixed && d.lambda == 1.0);
    /* rand_bbox by hand: lambda 0.75 on 16 x 16: cut int(16 * 0.5) = 8, half 4 */
    int y0, y1, x0, x1;
    dt_mix_cutmix_box(0.75, 16, 16, 0, 15, &y0, &y1, &x0, &x1);
    CHECK(y0 == 0 && y1 == 4 && x0 == 11 && x1 == 16);
    dt_mix_cutmix_box(0.75, 16, 16, 8, 8, &y0, &y1, &x0, &x1);
    CHECK(y0 == 4 && y1 == 12 && x0 == 4 && x1 == 12);
    /* odd cut (int(10 * sqrt(0.19)) = 4 rows, int(7 * sqrt(0.19)) = 3 columns: 3 // 2 = 1 each
     * side, so the box is 2 wide as in timm) */
    dt_mix_cutmix_box(0.81, 10, 7, 5, 3, &y0, &y1, &x0, &x1);
    CHECK(y0 == 3 && y1 == 7 && x0 == 2 && x1 == 4);
    /* lambda 0 on a side: the whole image */
    dt_mix_cutmix_box(0.0, 10, 10, 5, 5, &y0, &y1, &x0, &x1);
    CHECK(y0 == 0 && y1 == 10 && x0 == 0 && x1 == 10);
}

int main(void) {
    dt_error err;
    if (dt_testgen_make_temp_dir("dtrain-loader", dir, sizeof dir, &err) != 0) {
        fprintf(stderr, "%s\n", err.message);
        return 1;
    }
    build_solid_folder();
    char root[1200];
    snprintf(root, sizeof root, "%s/solid", dir);
    dt_dataset solid;
    if (dt_dataset_scan(root, &solid, &err) == 0) {
        test_known_pixels_and_bad_files(&solid);
        dt_dataset_free(&solid);
    } else {
        CHECK_MSG(0, "scan: %s", err.message);
    }

    snprintf(root, sizeof root, "%s/learnable", dir);
    dt_dataset learnable;
    if (dt_testgen_learnable_imagefolder(root, 3, 6, 40, 32, 2024, &err) == 0 &&
        dt_dataset_scan(root, &learnable, &err) == 0) {
        test_augmentation_determinism(&learnable);
        test_lifecycle(&learnable);
        test_learnable_folder_is_separable(&learnable);
        test_mixing(&learnable);
        dt_dataset_free(&learnable);
    } else {
        CHECK_MSG(0, "learnable folder: %s", err.message);
    }
    test_mix_draws();
    dt_testgen_finish_temp_dir(dir);
    return dt_test_summary("data_loader");
}
