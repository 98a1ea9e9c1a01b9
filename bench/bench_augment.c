/* Cost of the pixel augmentations (data.trivial_augment, data.color_jitter, data.random_erasing)
 * in the decode threads. Run by bench/bench_augment.sh, never as a test.
 *
 *   bench_augment ops SIZE
 *     One thread on a generated SIZE x SIZE picture (the ops' cost hardly depends on the
 *     content): images per CPU second of each setting, of each TrivialAugmentWide op and of
 *     each ColorJitter adjustment alone.
 *       (the settings: bench_pixel_settings.h; the loader with each setting is bench_loader's
 *       load mode) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../src/data/augment_ops.h"
#include "bench_pixel_settings.h"
#include "dtrain/data.h"
#include "dtrain/platform.h"

static double cpu_seconds(void) {
    struct timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
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
        bench_pixel_setting(settings[s], &aug);
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

int main(int argc, char **argv) {
    if (argc == 3 && strcmp(argv[1], "ops") == 0) return bench_ops(atoi(argv[2]));
    fputs("usage: bench_augment ops SIZE\n", stderr);
    return 2;
}
