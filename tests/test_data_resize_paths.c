/* Tests that every fast path of the resize (the AVX2 kernels, the skipped identity passes, the
 * per-thread plan cache, the mirrored output) gives byte for byte the output of the scalar
 * reference path, on random sizes up and down (1..400 px, 1-px edges included), random regions
 * and output windows, images of noise and of extreme values, and from several threads at once.
 * The reference path itself is checked against Pillow in test_data_resize.c. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../src/data/resize_internal.h"
#include "check.h"
#include "dtrain/rng.h"

static const dt_resize_kernels fast_kernels[] = {
    DT_RESIZE_KERNELS_AUTO,
    DT_RESIZE_KERNELS_SIMD_REDUCE,
    DT_RESIZE_KERNELS_SIMD_BLOCKS,
    DT_RESIZE_KERNELS_SIMD_PIXELS,
};
static const char *const fast_kernel_names[] = {"auto", "simd-reduce", "simd-blocks",
                                                "simd-pixels"};

static int random_int(dt_rng *rng, int lo, int hi) {
    return lo + (int)(dt_rng_next(rng) % (uint64_t)(hi - lo + 1));
}

/* style 0: noise; 1: only 0 and 255 (clamping and the largest sums); 2: smooth gradient */
static dt_image make_image(int width, int height, int style, dt_rng *rng) {
    dt_image img = {malloc((size_t)width * height * 3), width, height};
    for (int y = 0; y < height; y++) {
        for (int x = 0; x < width; x++) {
            for (int c = 0; c < 3; c++) {
                uint8_t *p = &img.pixels[((size_t)y * width + x) * 3 + c];
                if (style == 0)
                    *p = (uint8_t)dt_rng_next(rng);
                else if (style == 1)
                    *p = dt_rng_next(rng) & 1 ? 255 : 0;
                else
                    *p = (uint8_t)((x * 7 + y * 3 + c * 50) & 255);
            }
        }
    }
    return img;
}

static void mirror_window(const uint8_t *src, int width, int height, uint8_t *dst) {
    for (int y = 0; y < height; y++)
        for (int x = 0; x < width; x++)
            memcpy(dst + ((size_t)y * width + x) * 3,
                   src + ((size_t)y * width + (width - 1 - x)) * 3, 3);
}

/* Runs req with every fast kernel set (and mirrored) and counts the outputs that differ from
 * the scalar reference; describes the first difference in what (if not NULL). */
static int count_mismatches(const dt_image *img, dt_resize_request req, char *what,
                            size_t what_size) {
    size_t bytes = (size_t)req.window_width * req.window_height * 3;
    uint8_t *reference = malloc(bytes), *mirrored = malloc(bytes), *got = malloc(bytes);
    dt_error err;
    int mismatches = 0;
    req.mirror = 0;
    req.kernels = DT_RESIZE_KERNELS_SCALAR;
    if (dt_resize_run(img, &req, reference, &err) != 0) {
        snprintf(what, what_size, "reference failed: %s", err.message);
        mismatches = 1;
        goto done;
    }
    mirror_window(reference, req.window_width, req.window_height, mirrored);
    for (int mirror = 0; mirror < 2; mirror++) {
        for (size_t k = 0; k < sizeof fast_kernels / sizeof fast_kernels[0]; k++) {
            req.mirror = mirror;
            req.kernels = fast_kernels[k];
            memset(got, 0xa5, bytes);
            int rc = dt_resize_run(img, &req, got, &err);
            if (rc == 0 && memcmp(got, mirror ? mirrored : reference, bytes) == 0) continue;
            if (mismatches++ == 0 && what)
                snprintf(what, what_size, "%s%s: %s", fast_kernel_names[k],
                         mirror ? " mirrored" : "", rc == 0 ? "bytes differ" : err.message);
        }
    }
    /* the reference path mirrored too */
    req.mirror = 1;
    req.kernels = DT_RESIZE_KERNELS_SCALAR;
    if (dt_resize_run(img, &req, got, &err) != 0 || memcmp(got, mirrored, bytes) != 0) {
        if (mismatches++ == 0 && what) snprintf(what, what_size, "scalar mirrored differs");
    }
done:
    free(reference);
    free(mirrored);
    free(got);
    return mismatches;
}

static dt_resize_request whole_request(int in_w, int in_h, int out_w, int out_h) {
    dt_resize_request req = {.region_width = in_w,
                             .region_height = in_h,
                             .out_width = out_w,
                             .out_height = out_h,
                             .window_width = out_w,
                             .window_height = out_h};
    return req;
}

static void check_case(const dt_image *img, dt_resize_request req) {
    char what[256] = "";
    int mismatches = count_mismatches(img, req, what, sizeof what);
    CHECK_MSG(mismatches == 0,
              "%dx%d image, region %dx%d at (%d,%d) -> %dx%d, window %dx%d at (%d,%d): %d "
              "paths differ from the reference (%s)",
              img->width, img->height, req.region_width, req.region_height, req.region_x,
              req.region_y, req.out_width, req.out_height, req.window_width, req.window_height,
              req.window_x, req.window_y, mismatches, what);
}

static void test_edge_sizes(void) {
    static const int sizes[][4] = {
        {1, 1, 1, 1},         {1, 1, 400, 1},       {1, 1, 1, 400},       {400, 1, 1, 1},
        {1, 400, 1, 1},       {2, 3, 1, 400},       {400, 3, 1, 1},       {5, 5, 6, 6},
        {5, 4, 3, 2},         {6, 1, 11, 1},        {224, 224, 224, 224}, {400, 400, 400, 400},
        {60, 60, 224, 224},   {300, 225, 224, 224}, {225, 300, 224, 224}, {299, 301, 149, 151},
        {250, 250, 124, 124}, {400, 400, 133, 133}, {400, 400, 100, 100}, {400, 11, 12, 400},
        {37, 400, 37, 12},    {400, 37, 12, 37},    {11, 11, 10, 12},     {3, 200, 400, 5},
    };
    dt_rng rng = dt_rng_seeded(7);
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        for (int style = 0; style < 3; style++) {
            dt_image img = make_image(sizes[s][0], sizes[s][1], style, &rng);
            check_case(&img, whole_request(sizes[s][0], sizes[s][1], sizes[s][2], sizes[s][3]));
            free(img.pixels);
        }
    }
}

/* A random request: the whole image or a region, the whole output or a window of it. */
static dt_resize_request random_request(int width, int height, dt_rng *rng) {
    dt_resize_request req =
        whole_request(width, height, random_int(rng, 1, 400), random_int(rng, 1, 400));
    if (random_int(rng, 0, 1)) {
        req.region_width = random_int(rng, 1, width);
        req.region_height = random_int(rng, 1, height);
        req.region_x = random_int(rng, 0, width - req.region_width);
        req.region_y = random_int(rng, 0, height - req.region_height);
    }
    if (random_int(rng, 0, 7) == 0) req.out_width = req.region_width; /* identity passes */
    if (random_int(rng, 0, 7) == 0) req.out_height = req.region_height;
    if (random_int(rng, 0, 2) == 0) {
        req.window_width = random_int(rng, 1, req.out_width);
        req.window_height = random_int(rng, 1, req.out_height);
        req.window_x = random_int(rng, 0, req.out_width - req.window_width);
        req.window_y = random_int(rng, 0, req.out_height - req.window_height);
    } else {
        req.window_width = req.out_width;
        req.window_height = req.out_height;
    }
    return req;
}

static void test_random_sizes(void) {
    dt_rng rng = dt_rng_seeded(2024);
    int cases = 0, failed = 0;
    for (int i = 0; i < 240; i++) {
        /* small images most of the time, so that the run stays short under sanitizers */
        int max_side = i % 4 == 0 ? 400 : 96;
        int width = random_int(&rng, 1, max_side), height = random_int(&rng, 1, max_side);
        dt_image img = make_image(width, height, i % 3, &rng);
        dt_resize_request req = random_request(width, height, &rng);
        char what[256] = "";
        int mismatches = count_mismatches(&img, req, what, sizeof what);
        cases++;
        if (mismatches) {
            failed++;
            check_case(&img, req); /* reports the details */
        }
        free(img.pixels);
    }
    CHECK_MSG(failed == 0, "%d of %d random cases differ from the reference", failed, cases);
}

/* The square modes through the public API equal the same request on the reference path. */
static void test_square_modes(void) {
    dt_rng rng = dt_rng_seeded(99);
    for (int i = 0; i < 40; i++) {
        int width = random_int(&rng, 1, i % 5 == 0 ? 400 : 120);
        int height = random_int(&rng, 1, i % 5 == 0 ? 400 : 120);
        int size = random_int(&rng, 1, 256);
        dt_image img = make_image(width, height, i % 3, &rng);
        for (int mode = 0; mode < 2; mode++) {
            dt_resize_mode resize = mode ? DT_RESIZE_CENTER : DT_RESIZE_SQUASH;
            dt_resize_request req;
            dt_error err;
            uint8_t *fast = malloc((size_t)size * size * 3),
                    *slow = malloc((size_t)size * size * 3);
            int rc = dt_resize_square_request(&img, resize, size, &req, &err);
            CHECK_MSG(rc == 0, "square request %dx%d -> %d: %s", width, height, size, err.message);
            if (rc == 0) {
                req.kernels = DT_RESIZE_KERNELS_SCALAR;
                CHECK(dt_resize_run(&img, &req, slow, &err) == 0);
                CHECK(dt_image_resize_to_square(&img, resize, size, fast, &err) == 0);
                CHECK_MSG(memcmp(fast, slow, (size_t)size * size * 3) == 0,
                          "%dx%d -> %d mode %d equals the reference", width, height, size, mode);
            }
            free(fast);
            free(slow);
        }
        free(img.pixels);
    }
}

/* The same sizes again (plans now come from the cache) give the same bytes. */
static void test_cached_plans(void) {
    dt_rng rng = dt_rng_seeded(5);
    dt_image a = make_image(173, 129, 0, &rng), b = make_image(129, 173, 0, &rng);
    uint8_t *first = malloc(224 * 224 * 3), *again = malloc(224 * 224 * 3);
    dt_error err;
    CHECK(dt_image_resize_to_square(&a, DT_RESIZE_SQUASH, 224, first, &err) == 0);
    CHECK(dt_image_resize_to_square(&b, DT_RESIZE_SQUASH, 224, again, &err) == 0);
    CHECK(dt_image_resize_to_square(&a, DT_RESIZE_SQUASH, 224, again, &err) == 0);
    CHECK(memcmp(first, again, 224 * 224 * 3) == 0);
    free(first);
    free(again);
    free(a.pixels);
    free(b.pixels);
}

typedef struct thread_job {
    uint64_t seed;
    int cases, failed;
} thread_job;

static void *resize_in_thread(void *arg) {
    thread_job *job = arg;
    dt_rng rng = dt_rng_seeded(job->seed);
    for (int i = 0; i < job->cases; i++) {
        int width = random_int(&rng, 1, 120), height = random_int(&rng, 1, 120);
        dt_image img = make_image(width, height, 0, &rng);
        if (count_mismatches(&img, random_request(width, height, &rng), NULL, 0)) job->failed++;
        free(img.pixels);
    }
    return NULL;
}

/* Each thread has its own plan cache (freed when it exits; the sanitizer build checks that). */
static void test_threads(void) {
    enum { THREADS = 3 };
    pthread_t threads[THREADS];
    thread_job jobs[THREADS];
    for (int t = 0; t < THREADS; t++) {
        jobs[t] = (thread_job){.seed = 100 + (uint64_t)t, .cases = 12};
        CHECK(pthread_create(&threads[t], NULL, resize_in_thread, &jobs[t]) == 0);
    }
    for (int t = 0; t < THREADS; t++) {
        pthread_join(threads[t], NULL);
        CHECK_MSG(jobs[t].failed == 0, "thread %d: %d of %d cases differ", t, jobs[t].failed,
                  jobs[t].cases);
    }
}

int main(void) {
    if (!dt_resize_simd_available())
        printf("note: this CPU has no AVX2; the fast paths run the scalar passes\n");
    test_edge_sizes();
    test_random_sizes();
    test_square_modes();
    test_cached_plans();
    test_threads();
    return dt_test_summary("data_resize_paths");
}
