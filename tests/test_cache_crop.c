/* The cache's random crops (dt_cache_crop_run): the AVX2 and AVX-512 paths give the scalar
 * path's bytes on crops of every kind (scaling up and down by up to 8/7, mirrored, one-pixel
 * regions, a square too narrow for the vector loads); the taps follow pixel centres exactly (a crop
 * of the output's size is a copy, mirrored a mirror); and a crop is close to the antialiased resize
 * of the same region, which is what the uncached loader computes. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../src/data/resize_internal.h"
#include "../src/data/sample_cache_internal.h"
#include "check.h"

static uint32_t state = 12345;
static uint32_t next_random(void) {
    state = state * 1664525u + 1013904223u;
    return state >> 8;
}

/* A smooth picture with some texture, as photos are. */
static void fill_square(uint8_t *square, int side) {
    for (int y = 0; y < side; y++)
        for (int x = 0; x < side; x++)
            for (int c = 0; c < 3; c++)
                square[((size_t)y * side + x) * 3 + c] =
                    (uint8_t)((x * 255 / side + y * 97 / side + c * 40 + (int)(next_random() % 9)) &
                              0xff);
}

static void random_crop(int side, int out, dt_cache_crop *crop) {
    int width = 1 + (int)(next_random() % (uint32_t)side);
    int height = 1 + (int)(next_random() % (uint32_t)side);
    *crop = (dt_cache_crop){.region_x = (int)(next_random() % (uint32_t)(side - width + 1)),
                            .region_y = (int)(next_random() % (uint32_t)(side - height + 1)),
                            .region_width = width,
                            .region_height = height,
                            .out_size = out,
                            .mirror = (int)(next_random() & 1)};
}

static void test_simd_equals_scalar(void) {
    int sizes[][2] = {{256, 224}, {37, 32}, {9, 8}, {18, 16}, {73, 64}, {5, 4}};
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        int side = sizes[s][0], out = sizes[s][1];
        uint8_t *square = malloc((size_t)side * side * 3);
        uint8_t *a = malloc((size_t)out * out * 3), *b = malloc((size_t)out * out * 3);
        uint8_t *wide = malloc((size_t)out * out * 3);
        uint8_t *scratch = malloc(dt_cache_crop_scratch_bytes(out, side));
        fill_square(square, side);
        int differ = 0, differ_wide = 0;
        for (int t = 0; t < 300; t++) {
            dt_cache_crop crop;
            random_crop(side, out, &crop);
            if (t == 0) crop = (dt_cache_crop){0, 0, side, side, out, 1}; /* the whole square */
            if (t == 1) crop = (dt_cache_crop){side - 1, side - 1, 1, 1, out, 0};
            CHECK(dt_cache_crop_run(square, side, &crop, 1, scratch, a) == 0);
            CHECK(dt_cache_crop_run(square, side, &crop, 0, scratch, b) == 0);
            differ += memcmp(a, b, (size_t)out * out * 3) != 0;
            CHECK(dt_cache_crop_run(square, side, &crop, DT_CACHE_CROP_AVX512, scratch, wide) == 0);
            differ_wide += memcmp(wide, b, (size_t)out * out * 3) != 0;
        }
        CHECK_MSG(differ == 0, "%d -> %d: %d of 300 crops differ between AVX2 and scalar", side,
                  out, differ);
        CHECK_MSG(differ_wide == 0, "%d -> %d: %d of 300 crops differ between AVX-512 and scalar",
                  side, out, differ_wide);
        dt_cache_crop outside = {1, 0, side, side, out, 0};
        CHECK(dt_cache_crop_run(square, side, &outside, 1, scratch, a) != 0);
        free(square);
        free(a);
        free(b);
        free(wide);
        free(scratch);
    }
}

static void test_copy_and_mirror(void) {
    int side = 100, out = 64;
    uint8_t *square = malloc((size_t)side * side * 3), *got = malloc((size_t)out * out * 3);
    uint8_t *scratch = malloc(dt_cache_crop_scratch_bytes(out, side));
    fill_square(square, side);
    for (int mirror = 0; mirror < 2; mirror++) {
        dt_cache_crop crop = {7, 11, out, out, out, mirror};
        CHECK(dt_cache_crop_run(square, side, &crop, 1, scratch, got) == 0);
        int wrong = 0;
        for (int y = 0; y < out; y++)
            for (int x = 0; x < out; x++) {
                int from = mirror ? out - 1 - x : x;
                wrong += memcmp(got + ((size_t)y * out + x) * 3,
                                square + ((size_t)(11 + y) * side + 7 + from) * 3, 3) != 0;
            }
        CHECK_MSG(wrong == 0, "a crop of the output's size, mirror %d: %d pixels moved", mirror,
                  wrong);
    }
    free(square);
    free(got);
    free(scratch);
}

static void test_close_to_antialiased_resize(void) {
    int side = 256, out = 224;
    uint8_t *square = malloc((size_t)side * side * 3);
    uint8_t *fast = malloc((size_t)out * out * 3), *exact = malloc((size_t)out * out * 3);
    uint8_t *scratch = malloc(dt_cache_crop_scratch_bytes(out, side));
    fill_square(square, side);
    dt_image image = {.pixels = square, .width = side, .height = side};
    double worst = 0;
    for (int t = 0; t < 40; t++) {
        dt_cache_crop crop;
        random_crop(side, out, &crop);
        if (crop.region_width < 16 || crop.region_height < 16) continue;
        dt_resize_request req = {.region_x = crop.region_x,
                                 .region_y = crop.region_y,
                                 .region_width = crop.region_width,
                                 .region_height = crop.region_height,
                                 .out_width = out,
                                 .out_height = out,
                                 .window_width = out,
                                 .window_height = out,
                                 .mirror = crop.mirror,
                                 .kernels = DT_RESIZE_KERNELS_AUTO};
        dt_error err = {{0}, 0};
        CHECK(dt_resize_run(&image, &req, exact, &err) == 0);
        CHECK(dt_cache_crop_run(square, side, &crop, 1, scratch, fast) == 0);
        double sum = 0;
        for (size_t i = 0; i < (size_t)out * out * 3; i++) sum += abs((int)fast[i] - exact[i]);
        sum /= (double)out * out * 3;
        if (sum > worst) worst = sum;
    }
    /* the texture is +-4 levels of noise: bilinear and antialiased filters differ by about that */
    CHECK_MSG(worst < 3.0, "mean difference from the antialiased resize %.2f levels", worst);
    free(square);
    free(fast);
    free(exact);
    free(scratch);
}

int main(void) {
    /* without AVX-512 the AVX-512 request runs the AVX2 path: the comparison then covers that */
    printf("cache_crop: AVX-512 path %s on this CPU\n",
           dt_cache_crop_avx512_available() ? "runs" : "is not available");
    test_simd_equals_scalar();
    test_copy_and_mirror();
    test_close_to_antialiased_resize();
    return dt_test_summary("cache_crop");
}
