/* bench_make_photos: writes N photo-like JPEGs (smooth colour gradients, soft blobs, sensor-like
 * noise) of random sizes, an Animals-10-like set for the decode benchmark.
 *
 *   bench_make_photos OUT_DIR [N=300] [MIN_SIDE=60] [MAX_SIDE=300] [QUALITY=90] [SEED=1] */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "dtrain/data.h"
#include "dtrain/rng.h"

static uint8_t to_byte(double v) {
    return (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v + 0.5);
}

static void draw_photo(uint8_t *rgb, int width, int height, dt_rng *rng) {
    double base[3], gx[3], gy[3];
    for (int c = 0; c < 3; c++) {
        base[c] = 30 + 190 * dt_rng_uniform_double(rng);
        gx[c] = (dt_rng_uniform_double(rng) - 0.5) * 180;
        gy[c] = (dt_rng_uniform_double(rng) - 0.5) * 180;
    }
    enum { BLOBS = 4 };
    double bx[BLOBS], by[BLOBS], br[BLOBS], bc[BLOBS][3];
    for (int b = 0; b < BLOBS; b++) {
        bx[b] = dt_rng_uniform_double(rng) * width;
        by[b] = dt_rng_uniform_double(rng) * height;
        br[b] = (0.05 + 0.25 * dt_rng_uniform_double(rng)) * (width + height);
        for (int c = 0; c < 3; c++) bc[b][c] = (dt_rng_uniform_double(rng) - 0.5) * 160;
    }
    for (int y = 0; y < height; y++) {
        for (int x = 0; x < width; x++) {
            double u = (double)x / width - 0.5, v = (double)y / height - 0.5;
            double falloff[BLOBS]; /* the same for every channel */
            for (int b = 0; b < BLOBS; b++) {
                double dx = x - bx[b], dy = y - by[b];
                falloff[b] = exp(-(dx * dx + dy * dy) / (br[b] * br[b]));
            }
            for (int c = 0; c < 3; c++) {
                double value = base[c] + gx[c] * u + gy[c] * v;
                for (int b = 0; b < BLOBS; b++) value += bc[b][c] * falloff[b];
                value += 8 * dt_rng_normal(rng);
                rgb[((size_t)y * width + x) * 3 + c] = to_byte(value);
            }
        }
    }
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: bench_make_photos OUT_DIR [N] [MIN_SIDE] [MAX_SIDE] [QUALITY] "
                        "[SEED]\n");
        return 2;
    }
    const char *out = argv[1];
    int n = argc > 2 ? atoi(argv[2]) : 300, min_side = argc > 3 ? atoi(argv[3]) : 60;
    int max_side = argc > 4 ? atoi(argv[4]) : 300, quality = argc > 5 ? atoi(argv[5]) : 90;
    uint64_t seed = argc > 6 ? strtoull(argv[6], NULL, 10) : 1;
    if (n < 1 || min_side < 1 || max_side < min_side || quality < 1 || quality > 100) {
        fprintf(stderr, "bench_make_photos: bad arguments\n");
        return 2;
    }
    uint8_t *rgb = malloc((size_t)max_side * max_side * 3);
    if (!rgb) return 1;
    dt_rng rng = dt_rng_seeded(seed);
    long pixels = 0;
    for (int i = 0; i < n; i++) {
        int width = min_side + (int)dt_rng_below(&rng, (uint32_t)(max_side - min_side + 1));
        int height = min_side + (int)dt_rng_below(&rng, (uint32_t)(max_side - min_side + 1));
        draw_photo(rgb, width, height, &rng);
        char path[4096];
        snprintf(path, sizeof path, "%s/photo%04d.jpg", out, i);
        dt_error err;
        if (dt_jpeg_write_file(path, rgb, width, height, 3, quality, 0, &err) != 0) {
            fprintf(stderr, "bench_make_photos: %s\n", err.message);
            free(rgb);
            return 1;
        }
        pixels += (long)width * height;
    }
    free(rgb);
    printf("wrote %d JPEGs (quality %d, %d..%d px per side, %.0f pixels on average) to %s\n", n,
           quality, min_side, max_side, (double)pixels / n, out);
    return 0;
}
