/* Cost of the pixel augmentations (data.trivial_augment, data.color_jitter, data.random_erasing)
 * in the decode threads. Run by bench/bench_augment.sh, never as a test.
 *
 *   bench_augment ops SIZE
 *     One thread on a generated SIZE x SIZE picture (the ops' cost hardly depends on the
 *     content): images per CPU second of each setting, of each TrivialAugmentWide op and of
 *     each ColorJitter adjustment alone.
 *   bench_augment load ROOT SIZE WORKERS EPOCHS CACHE SETTING
 *     The loader with crop_flip and SETTING (off, jitter, erasing, trivial or all) on ROOT:
 *     steady_img_per_cpu_s, images per second of the process's CPU time after the first epoch. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../src/data/augment_ops.h"
#include "dtrain/data.h"
#include "dtrain/platform.h"

static double cpu_seconds(void) {
    struct timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static int parse_setting(const char *name, dt_pixel_augment *aug) {
    *aug = (dt_pixel_augment){.erase_fill = {124, 116, 104}};
    int all = strcmp(name, "all") == 0;
    if (all || strcmp(name, "jitter") == 0)
        memcpy(aug->color_jitter, (const float[4]){0.4f, 0.4f, 0.4f, 0.1f}, sizeof(float[4]));
    if (all || strcmp(name, "erasing") == 0) aug->random_erasing = 0.25f;
    if (all || strcmp(name, "trivial") == 0) aug->trivial_augment = 1;
    return all || strcmp(name, "off") == 0 || strcmp(name, "jitter") == 0 ||
                   strcmp(name, "erasing") == 0 || strcmp(name, "trivial") == 0
               ? 0
               : -1;
}

/* A picture with smooth gradients and noise. */
static void fill_picture(uint8_t *img, int size, uint32_t seed) {
    for (int y = 0; y < size; y++)
        for (int x = 0; x < size; x++)
            for (int c = 0; c < 3; c++) {
                seed = seed * 1664525u + 1013904223u;
                img[((size_t)y * size + x) * 3 + c] =
                    (uint8_t)((x * 200 / size + y * 55 / size + c * 30 + (int)(seed >> 28)) & 0xff);
            }
}

#define MIN_SECONDS 1.0

static int bench_ops(int size) {
    size_t bytes = (size_t)size * size * 3;
    uint8_t *source = malloc(bytes), *img = malloc(bytes), *scratch = malloc(bytes);
    if (!source || !img || !scratch) return 1;
    fill_picture(source, size, 7);
    dt_error err = {{0}, 0};
    const char *settings[] = {"jitter", "erasing", "trivial", "all"};
    for (int s = 0; s < 4; s++) {
        dt_pixel_augment aug;
        parse_setting(settings[s], &aug);
        long n = 0;
        double t0 = cpu_seconds(), t1 = t0;
        for (; t1 - t0 < MIN_SECONDS; n++) {
            memcpy(img, source, bytes);
            if (dt_pixel_augment_sample(&aug, size, 1, 0, (uint32_t)n, img, &err)) return 1;
            if ((n & 15) == 15) t1 = cpu_seconds();
        }
        t1 = cpu_seconds();
        printf("setting_%s_img_per_cpu_s=%.0f\n", settings[s], (double)n / (t1 - t0));
    }
    static const char *const names[DT_TRIVIAL_OPS] = {
        "Identity",  "ShearX",     "ShearY",       "TranslateX", "TranslateY",
        "Rotate",    "Brightness", "Color",        "Contrast",   "Sharpness",
        "Posterize", "Solarize",   "AutoContrast", "Equalize"};
    for (int op = 0; op < DT_TRIVIAL_OPS; op++) {
        int has_bins, is_signed;
        double magnitude = dt_trivial_magnitude((dt_trivial_op)op, 15, &has_bins, &is_signed);
        long n = 0;
        double t0 = cpu_seconds(), t1 = t0;
        for (; t1 - t0 < MIN_SECONDS; n++) {
            memcpy(img, source, bytes);
            dt_trivial_apply(img, size, (dt_trivial_op)op, magnitude, scratch);
            if ((n & 15) == 15) t1 = cpu_seconds();
        }
        t1 = cpu_seconds();
        printf("op_%s_img_per_cpu_s=%.0f\n", names[op], (double)n / (t1 - t0));
    }
    const char *jitter_names[] = {"brightness", "contrast", "saturation", "hue"};
    for (int j = 0; j < 4; j++) {
        long n = 0;
        double t0 = cpu_seconds(), t1 = t0;
        for (; t1 - t0 < MIN_SECONDS; n++) {
            memcpy(img, source, bytes);
            if (j == 0) dt_aug_brightness(img, size, 1.2);
            if (j == 1) dt_aug_contrast(img, size, 1.2);
            if (j == 2) dt_aug_saturation(img, size, 1.2);
            if (j == 3) dt_aug_hue(img, size, 0.05);
            if ((n & 15) == 15) t1 = cpu_seconds();
        }
        t1 = cpu_seconds();
        printf("jitter_%s_img_per_cpu_s=%.0f\n", jitter_names[j], (double)n / (t1 - t0));
    }
    free(source);
    free(img);
    free(scratch);
    return 0;
}

static int run_epoch(dt_loader *loader, size_t n, int epoch, dt_error *err) {
    uint32_t *order = malloc(n * sizeof *order);
    if (!order) return dt_fail(err, "out of memory");
    for (size_t i = 0; i < n; i++) order[i] = (uint32_t)((i * 7919u + (size_t)epoch) % n);
    int rc = dt_loader_start(loader, order, n, epoch, 1, err);
    free(order);
    const dt_batch *batch;
    while (rc == 0 && (rc = dt_loader_next(loader, &batch, err)) == 0 && batch)
        dt_loader_release(loader, batch);
    return rc;
}

static int bench_load(char **argv) {
    dt_pixel_augment aug;
    if (parse_setting(argv[6], &aug)) return 2;
    int size = atoi(argv[2]), workers = atoi(argv[3]), epochs = atoi(argv[4]);
    dt_error err = {{0}, 0};
    dt_dataset ds;
    if (dt_dataset_open(argv[1], &ds, &err)) {
        fprintf(stderr, "bench_augment: %s\n", err.message);
        return 1;
    }
    if (ds.n_files % 7919 == 0) return 2; /* the order above must be a permutation */
    dt_loader_options lo = {.batch_size = 64,
                            .image_size = size,
                            .resize = DT_RESIZE_SQUASH,
                            .augment = DT_AUGMENT_CROP_FLIP,
                            .workers = workers,
                            .prefetch_batches = 4,
                            .seed = 1,
                            .cache = argv[5],
                            .pixel_augment = aug};
    dt_loader *loader;
    if (dt_loader_create(&ds, &lo, &loader, &err)) {
        fprintf(stderr, "bench_augment: %s\n", err.message);
        dt_dataset_free(&ds);
        return 1;
    }
    double c1 = 0, t1 = 0;
    int rc = 0;
    for (int e = 1; rc == 0 && e <= epochs; e++) {
        rc = run_epoch(loader, ds.n_files, e, &err);
        if (e == 1) {
            c1 = cpu_seconds();
            t1 = dt_monotonic_seconds();
        }
    }
    double c2 = cpu_seconds(), t2 = dt_monotonic_seconds();
    if (rc == 0 && epochs > 1) {
        printf("steady_img_per_s=%.1f\n", (double)ds.n_files * (epochs - 1) / (t2 - t1));
        printf("steady_img_per_cpu_s=%.1f\n", (double)ds.n_files * (epochs - 1) / (c2 - c1));
    } else if (rc) {
        fprintf(stderr, "bench_augment: %s\n", err.message);
    }
    dt_loader_destroy(loader);
    dt_dataset_free(&ds);
    return rc ? 1 : 0;
}

int main(int argc, char **argv) {
    if (argc == 3 && strcmp(argv[1], "ops") == 0) return bench_ops(atoi(argv[2]));
    if (argc == 8 && strcmp(argv[1], "load") == 0) return bench_load(argv + 1);
    fputs("usage: bench_augment ops SIZE\n"
          "       bench_augment load ROOT SIZE WORKERS EPOCHS none|memory|FOLDER "
          "off|jitter|erasing|trivial|all\n",
          stderr);
    return 2;
}
