/* Loader benchmark: images/s of dtrain's threaded batch loader on one data source (an
 * ImageFolder, tar shards, pre-resized shards, or any of them through data.cache), and the time
 * to open data.root (the start-up scan). Run by bench/bench_loader.sh, never as a test.
 *
 *   bench_loader load ROOT IMAGE_SIZE AUGMENT WORKERS EPOCHS CACHE [PIXELS]
 *     AUGMENT none|flip|crop_flip; CACHE none|memory|FOLDER; PIXELS off (default), jitter,
 *     erasing, trivial or all (bench_pixel_settings.h). Prints first_epoch_img_per_s (the
 *     epoch that fills the page cache, or data.cache) and steady_img_per_s (the later epochs),
 *     and steady_img_per_cpu_s: images per second of this process's CPU time (all threads), a
 *     per-core rate that the load of other processes on a shared machine moves much less.
 *   bench_loader startup ROOT
 *     Prints open_s (dt_dataset_open: the scan, or the shards' indexes) and n_files.
 *   bench_loader crop SQUARES REPEATS
 *     The cache's crop_flip step alone (dt_cache_crop_run, 224 px out of 256 px squares, crops
 *     drawn as the loader draws them) with each code path the CPU has: microseconds of CPU time
 *     per crop, the best of REPEATS passes, from one square (hot in the CPU's caches) and from
 *     SQUARES different squares (as from a cache far larger than the CPU's caches), into a ring
 *     of 256 batch slots as the loader's. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../src/data/resize_internal.h"
#include "../src/data/sample_cache_internal.h"
#include "bench_pixel_settings.h"
#include "dtrain/data.h"
#include "dtrain/platform.h"

static int parse_augment(const char *text, dt_augment_mode *mode) {
    if (strcmp(text, "none") == 0)
        *mode = DT_AUGMENT_NONE;
    else if (strcmp(text, "flip") == 0)
        *mode = DT_AUGMENT_FLIP;
    else if (strcmp(text, "crop_flip") == 0)
        *mode = DT_AUGMENT_CROP_FLIP;
    else
        return -1;
    return 0;
}

static uint64_t gcd(uint64_t a, uint64_t b) {
    while (b) {
        uint64_t t = a % b;
        a = b;
        b = t;
    }
    return a;
}

/* One epoch in a shuffled order (a multiplicative permutation that changes with the epoch). */
static int run_epoch(dt_loader *loader, size_t n, int epoch, dt_error *err) {
    uint32_t *order = malloc(n * sizeof *order);
    if (!order) return dt_fail(err, "out of memory");
    uint64_t step = 1000003u + 2u * (uint64_t)epoch;
    while (n > 1 && gcd(step, n) != 1) step++; /* coprime: i -> i * step mod n is a permutation */
    for (size_t i = 0; i < n; i++) order[i] = (uint32_t)((i * step + (uint64_t)epoch) % n);
    int rc = dt_loader_start(loader, order, n, epoch, 1, err);
    free(order);
    const dt_batch *batch;
    while (rc == 0 && (rc = dt_loader_next(loader, &batch, err)) == 0 && batch)
        dt_loader_release(loader, batch);
    return rc;
}

static double cpu_seconds(void) {
    struct timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static int bench_load(char **argv, const char *pixels) {
    dt_augment_mode augment;
    dt_pixel_augment pixel_augment;
    if (parse_augment(argv[3], &augment) || bench_pixel_setting(pixels, &pixel_augment)) return 2;
    int image_size = atoi(argv[2]), workers = atoi(argv[4]), epochs = atoi(argv[5]);
    dt_error err = {{0}, 0};
    dt_dataset ds;
    if (dt_dataset_open(argv[1], &ds, &err)) {
        fprintf(stderr, "bench_loader: %s\n", err.message);
        return 1;
    }
    dt_loader_options lo = {.batch_size = 64,
                            .image_size = image_size,
                            .resize = DT_RESIZE_SQUASH,
                            .augment = augment,
                            .workers = workers,
                            .prefetch_batches = 4,
                            .seed = 1,
                            .cache = argv[6],
                            .pixel_augment = pixel_augment};
    dt_loader *loader;
    if (dt_loader_create(&ds, &lo, &loader, &err)) {
        fprintf(stderr, "bench_loader: %s\n", err.message);
        dt_dataset_free(&ds);
        return 1;
    }
    double t0 = dt_monotonic_seconds(), t1 = t0, c1 = 0;
    int rc = 0;
    for (int e = 1; rc == 0 && e <= epochs; e++) {
        rc = run_epoch(loader, ds.n_files, e, &err);
        if (e == 1) {
            t1 = dt_monotonic_seconds();
            c1 = cpu_seconds();
        }
    }
    double t2 = dt_monotonic_seconds(), c2 = cpu_seconds();
    if (rc == 0) {
        printf("n_files=%zu\n", ds.n_files);
        printf("first_epoch_img_per_s=%.1f\n", (double)ds.n_files / (t1 - t0));
        if (epochs > 1) {
            printf("steady_img_per_s=%.1f\n", (double)ds.n_files * (epochs - 1) / (t2 - t1));
            printf("steady_img_per_cpu_s=%.1f\n", (double)ds.n_files * (epochs - 1) / (c2 - c1));
        }
    } else {
        fprintf(stderr, "bench_loader: %s\n", err.message);
    }
    dt_loader_destroy(loader);
    dt_dataset_free(&ds);
    return rc ? 1 : 0;
}

static int bench_startup(const char *root) {
    dt_error err = {{0}, 0};
    dt_dataset ds;
    double t0 = dt_monotonic_seconds();
    if (dt_dataset_open(root, &ds, &err)) {
        fprintf(stderr, "bench_loader: %s\n", err.message);
        return 1;
    }
    double t1 = dt_monotonic_seconds();
    printf("n_files=%zu\nopen_s=%.4f\n", ds.n_files, t1 - t0);
    dt_dataset_free(&ds);
    return 0;
}

/* Microseconds of CPU time per crop over n crops, square k % n_squares for crop k. */
static double time_crops(const uint8_t *squares, int n_squares, const dt_cache_crop *crops, int n,
                         int kernels, uint8_t *scratch, uint8_t *slots, int n_slots) {
    const int side = 256, out = 224;
    size_t square_bytes = (size_t)side * side * 3, slot_bytes = (size_t)out * out * 3;
    double start = cpu_seconds();
    for (int k = 0; k < n; k++)
        if (dt_cache_crop_run(squares + (size_t)(k % n_squares) * square_bytes, side, &crops[k],
                              kernels, scratch, slots + (size_t)(k % n_slots) * slot_bytes))
            return -1;
    return (cpu_seconds() - start) / n * 1e6;
}

static int bench_crop(int n_squares, int repeats) {
    const int side = 256, out = 224, n_slots = 256;
    size_t square_bytes = (size_t)side * side * 3, slot_bytes = (size_t)out * out * 3;
    if (n_squares < 1 || repeats < 1) return 2;
    uint8_t *squares = malloc(square_bytes * (size_t)n_squares);
    uint8_t *slots = malloc(slot_bytes * n_slots);
    uint8_t *scratch = malloc(dt_cache_crop_scratch_bytes(out, side));
    dt_cache_crop *crops = malloc((size_t)n_squares * sizeof *crops);
    if (!squares || !slots || !scratch || !crops) {
        fputs("bench_loader: out of memory\n", stderr);
        return 1;
    }
    for (size_t i = 0; i < square_bytes * (size_t)n_squares; i++) /* gradients and texture */
        squares[i] = (uint8_t)(i % 768 / 3 + i / 768 % 256 + (i * 2654435761u >> 28));
    memset(slots, 0, slot_bytes * n_slots);
    const char *names[] = {"scalar", "avx2", "avx512"};
    int available[] = {1, dt_resize_simd_available(), dt_cache_crop_avx512_available()};
    for (int kernels = DT_CACHE_CROP_SCALAR; kernels <= DT_CACHE_CROP_AVX512; kernels++) {
        if (!available[kernels]) {
            printf("crop_us_%s=n/a\n", names[kernels]);
            continue;
        }
        double best[2] = {1e30, 1e30}; /* hot, cold */
        for (int r = 0; r < repeats; r++) {
            for (int k = 0; k < n_squares; k++) {
                dt_augment_draw draw;
                dt_augment_draw_for(DT_AUGMENT_CROP_FLIP, side, side, 1, r, (uint32_t)k, &draw);
                crops[k] = (dt_cache_crop){draw.crop_x,      draw.crop_y, draw.crop_width,
                                           draw.crop_height, out,         draw.flip};
            }
            for (int cold = 0; cold < 2; cold++) {
                double us = time_crops(squares, cold ? n_squares : 1, crops, n_squares, kernels,
                                       scratch, slots, n_slots);
                if (us < 0) {
                    fputs("bench_loader: a crop fell outside its square\n", stderr);
                    return 1;
                }
                if (us < best[cold]) best[cold] = us;
            }
        }
        printf("crop_us_%s_hot=%.2f\ncrop_us_%s_cold=%.2f\n", names[kernels], best[0],
               names[kernels], best[1]);
    }
    free(squares);
    free(slots);
    free(scratch);
    free(crops);
    return 0;
}

int main(int argc, char **argv) {
    if ((argc == 8 || argc == 9) && strcmp(argv[1], "load") == 0)
        return bench_load(argv + 1, argc == 9 ? argv[8] : "off");
    if (argc == 3 && strcmp(argv[1], "startup") == 0) return bench_startup(argv[2]);
    if (argc == 4 && strcmp(argv[1], "crop") == 0) return bench_crop(atoi(argv[2]), atoi(argv[3]));
    fputs("usage: bench_loader load ROOT IMAGE_SIZE none|flip|crop_flip WORKERS EPOCHS "
          "none|memory|FOLDER [off|jitter|erasing|trivial|all]\n"
          "       bench_loader startup ROOT\n"
          "       bench_loader crop SQUARES REPEATS\n",
          stderr);
    return 2;
}
