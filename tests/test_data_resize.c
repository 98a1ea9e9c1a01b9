/* Tests the antialiased bilinear resize: bit-exact against outputs recorded from Pillow 9.4
 * (Image.resize(..., BILINEAR), as torchvision's Resize uses), against a plain double-precision
 * reimplementation of the same filter, and the square modes' geometry (squash, and center:
 * short side round(size * 8 / 7), torchvision's crop offsets). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "dtrain/data.h"
#include "dtrain/rng.h"

/* Fixtures: Pillow's output for the 13x9 image pattern_pixel() describes, recorded with
 *   Image.frombytes("RGB", (13, 9), data).resize(size, Image.BILINEAR)
 * and .crop((2, 1, 11, 8)).resize((4, 4), Image.BILINEAR). */
static const uint8_t pil_down_5x4[60] = {
    106, 131, 143, 120, 135, 146, 126, 124, 134, 115, 130, 137, 119, 144, 118,
    123, 134, 130, 140, 141, 132, 141, 128, 126, 127, 129, 127, 135, 144, 144,
    115, 147, 122, 128, 130, 113, 144, 134, 127, 124, 132, 109, 138, 106, 128,
    131, 105, 146, 132, 117, 138, 122, 121, 128, 128, 124, 132, 129, 100, 153,
};
static const uint8_t pil_up_20x11[660] = {
    0,   53,  106, 18,  71,  124, 42,  95,  148, 66,  119, 172, 90,  143, 196, 114, 167, 220, 138,
    191, 244, 162, 215, 172, 186, 233, 36,  210, 90,  60,  151, 31,  84,  8,   55,  108, 26,  79,
    132, 50,  103, 156, 74,  127, 180, 98,  151, 204, 122, 175, 171, 146, 199, 28,  170, 223, 20,
    188, 241, 38,  66,  119, 172, 86,  139, 192, 114, 167, 197, 141, 194, 103, 169, 142, 88,  182,
    62,  115, 88,  90,  143, 65,  118, 144, 91,  143, 128, 119, 125, 155, 123, 129, 182, 105, 157,
    210, 131, 184, 121, 158, 160, 78,  186, 67,  106, 106, 80,  133, 54,  107, 145, 82,  135, 127,
    109, 162, 145, 129, 182, 165, 141, 194, 107, 163, 150, 130, 177, 108, 146, 117, 139, 102, 117,
    121, 107, 139, 85,  138, 95,  116, 169, 94,  147, 148, 125, 174, 91,  156, 115, 122, 141, 101,
    154, 82,  132, 185, 110, 163, 143, 141, 162, 130, 172, 117, 161, 136, 139, 112, 117, 139, 84,
    149, 80,  115, 106, 93,  146, 63,  116, 169, 122, 175, 65,  147, 123, 91,  162, 72,  125, 91,
    107, 160, 89,  142, 156, 124, 170, 137, 159, 144, 171, 158, 153, 145, 135, 184, 78,  170, 113,
    113, 152, 95,  118, 81,  130, 92,  111, 106, 124, 121, 106, 159, 95,  141, 194, 122, 175, 135,
    157, 174, 100, 193, 103, 136, 141, 117, 121, 90,  143, 103, 34,  87,  140, 62,  115, 146, 100,
    147, 159, 139, 156, 198, 158, 184, 148, 169, 206, 66,  208, 109, 104, 168, 90,  126, 75,  127,
    135, 114, 135, 173, 137, 159, 144, 146, 198, 46,  183, 105, 79,  164, 65,  105, 66,  104, 114,
    89,  115, 148, 117, 134, 187, 126, 173, 226, 158, 211, 154, 186, 239, 83,  108, 161, 214, 139,
    192, 123, 181, 202, 31,  223, 78,  73,  157, 63,  116, 52,  105, 158, 94,  147, 200, 136, 189,
    146, 179, 225, 29,  221, 101, 71,  180, 60,  113, 56,  102, 155, 92,  145, 198, 134, 187, 169,
    176, 229, 45,  218, 124, 68,  203, 58,  111, 79,  100, 153, 89,  142, 195, 120, 173, 226, 182,
    235, 79,  117, 170, 90,  53,  100, 112, 99,  116, 158, 125, 151, 115, 144, 181, 40,  190, 91,
    86,  157, 79,  115, 73,  124, 132, 119, 140, 178, 149, 170, 156, 165, 217, 66,  79,  132, 106,
    46,  99,  140, 93,  146, 155, 138, 164, 77,  174, 144, 34,  189, 53,  80,  119, 73,  126, 54,
    107, 160, 94,  147, 107, 87,  140, 143, 87,  140, 173, 137, 190, 117, 117, 170, 90,  73,  119,
    86,  123, 108, 135, 138, 133, 125, 129, 178, 72,  179, 122, 122, 175, 119, 141, 119, 168, 131,
    107, 160, 76,  122, 130, 65,  171, 74,  114, 127, 111, 110, 108, 140, 121, 157, 129, 170, 158,
    82,  135, 150, 40,  93,  75,  128, 181, 115, 112, 165, 153, 105, 140, 131, 158, 103, 99,  152,
    125, 72,  116, 169, 125, 94,  147, 135, 116, 116, 116, 166, 82,  169, 128, 136, 177, 99,  152,
    140, 76,  129, 117, 127, 92,  127, 142, 94,  181, 104, 147, 153, 80,  133, 122, 84,  137, 99,
    138, 191, 138, 118, 171, 177, 91,  144, 150, 133, 186, 159, 86,  139, 156, 46,  99,  92,  103,
    156, 107, 131, 184, 159, 133, 186, 170, 70,  123, 139, 75,  102, 78,  131, 116, 90,  143, 173,
    124, 117, 170, 181, 53,  106, 122, 105, 115, 90,  143, 146, 102, 155, 203, 153, 99,  152, 169,
    62,  115, 105, 73,  126, 102, 122, 175, 111, 164, 217, 216, 13,  66,  139, 57,  110, 65,  118,
    171, 125, 178, 231, 186, 130, 183, 227, 43,  96,  121, 103, 156, 111, 164, 121, 165, 218, 21,
    59,  112, 82,  36,  89,  142, 97,  150, 203, 157, 210, 103, 147, 200, 68,  41,  94,  128, 82,
    135, 188, 143, 138, 191, 203, 32,  85,  129, 61,  114, 52,  105, 158,
};
static const uint8_t pil_crop_2_1_9x7_to_4x4[48] = {
    125, 118, 115, 113, 129, 136, 127, 143, 152, 138, 132, 117, 145, 145, 140, 146,
    136, 125, 135, 126, 115, 127, 127, 130, 133, 132, 109, 141, 131, 120, 124, 146,
    122, 131, 136, 98,  107, 131, 138, 134, 121, 127, 143, 108, 124, 146, 102, 129,
};
static const uint8_t pil_vertical_13x4[156] = {
    75,  128, 130, 118, 120, 173, 110, 163, 106, 153, 96,  149, 86,  139, 192, 128, 181, 88,
    171, 78,  131, 68,  121, 174, 111, 164, 107, 153, 97,  150, 86,  139, 141, 129, 131, 89,
    121, 174, 132, 91,  144, 122, 142, 126, 123, 130, 127, 161, 131, 165, 106, 169, 110, 163,
    114, 167, 95,  171, 99,  152, 103, 156, 96,  154, 100, 135, 104, 139, 135, 143, 139, 117,
    143, 121, 174, 125, 178, 125, 125, 178, 125, 92,  126, 123, 146, 143, 127, 94,  147, 88,
    167, 89,  142, 109, 162, 90,  182, 110, 163, 130, 165, 105, 78,  125, 110, 145, 130, 126,
    150, 128, 75,  148, 95,  148, 115, 99,  146, 141, 99,  152, 133, 76,  129, 110, 163, 165,
    146, 104, 157, 138, 82,  135, 116, 169, 76,  108, 110, 163, 144, 87,  140, 121, 174, 81,
    114, 115, 168, 150, 93,  146, 127, 85,  138, 119, 121, 174,
};

static uint8_t pattern_pixel(int x, int y, int c) {
    return (uint8_t)((x * 37 + y * 91 + c * 53 + x * y * 7) % 256);
}

static dt_image make_pattern_image(void) {
    dt_image img = {malloc(13 * 9 * 3), 13, 9};
    for (int y = 0; y < 9; y++)
        for (int x = 0; x < 13; x++)
            for (int c = 0; c < 3; c++) img.pixels[(y * 13 + x) * 3 + c] = pattern_pixel(x, y, c);
    return img;
}

static void check_against_pil(const dt_image *img, int x, int y, int w, int h, int out_w, int out_h,
                              const uint8_t *expected, const char *what) {
    uint8_t *out = malloc((size_t)out_w * out_h * 3);
    dt_error err;
    CHECK(dt_image_resize_region(img, x, y, w, h, out_w, out_h, out, &err) == 0);
    int mismatches = 0;
    for (int i = 0; i < out_w * out_h * 3; i++) mismatches += out[i] != expected[i];
    CHECK_MSG(mismatches == 0, "%s: bit-identical with Pillow (%d bytes differ)", what, mismatches);
    free(out);
}

static void test_pillow_fixtures(void) {
    dt_image img = make_pattern_image();
    check_against_pil(&img, 0, 0, 13, 9, 5, 4, pil_down_5x4, "13x9 -> 5x4");
    check_against_pil(&img, 0, 0, 13, 9, 20, 11, pil_up_20x11, "13x9 -> 20x11");
    check_against_pil(&img, 2, 1, 9, 7, 4, 4, pil_crop_2_1_9x7_to_4x4, "crop 9x7 -> 4x4");
    check_against_pil(&img, 0, 0, 13, 9, 13, 4, pil_vertical_13x4, "13x9 -> 13x4");
    /* squash mode is the plain resize to size x size */
    uint8_t square[4 * 4 * 3], region[4 * 4 * 3];
    dt_error err;
    CHECK(dt_image_resize_to_square(&img, DT_RESIZE_SQUASH, 4, square, &err) == 0);
    CHECK(dt_image_resize_region(&img, 0, 0, 13, 9, 4, 4, region, &err) == 0);
    CHECK(memcmp(square, region, sizeof square) == 0);
    free(img.pixels);
}

/* The filter of resize.c's header comment in plain double arithmetic: horizontal pass
 * rounded to 8 bits, then the vertical pass. Only the fixed-point weights differ. */
static void reference_resize(const dt_image *src, int out_w, int out_h, uint8_t *dst) {
    double *temp = malloc(sizeof(double) * (size_t)out_w * src->height * 3);
    for (int pass = 0; pass < 2; pass++) {
        int in_size = pass == 0 ? src->width : src->height;
        int out_size = pass == 0 ? out_w : out_h;
        double scale = (double)in_size / out_size;
        double filterscale = scale < 1 ? 1 : scale;
        for (int o = 0; o < out_size; o++) {
            double center = (o + 0.5) * scale;
            int lo = (int)(center - filterscale + 0.5), hi = (int)(center + filterscale + 0.5);
            if (lo < 0) lo = 0;
            if (hi > in_size) hi = in_size;
            double total = 0, weight[512];
            for (int i = lo; i < hi; i++) {
                double t = fabs((i - center + 0.5) / filterscale);
                weight[i - lo] = t < 1 ? 1 - t : 0;
                total += weight[i - lo];
            }
            int lines = pass == 0 ? src->height : out_w;
            for (int line = 0; line < lines; line++) {
                for (int c = 0; c < 3; c++) {
                    double sum = 0;
                    for (int i = lo; i < hi; i++) {
                        double v = pass == 0 ? src->pixels[((size_t)line * src->width + i) * 3 + c]
                                             : temp[((size_t)i * out_w + line) * 3 + c];
                        sum += v * weight[i - lo] / total;
                    }
                    double rounded = floor(sum + 0.5);
                    rounded = rounded < 0 ? 0 : rounded > 255 ? 255 : rounded;
                    if (pass == 0)
                        temp[((size_t)line * out_w + o) * 3 + c] = rounded;
                    else
                        dst[((size_t)o * out_w + line) * 3 + c] = (uint8_t)rounded;
                }
            }
        }
    }
    free(temp);
}

static void test_against_double_reference(void) {
    static const int sizes[][4] = {{97, 61, 24, 24},    {300, 200, 32, 32}, {31, 47, 64, 64},
                                   {500, 37, 224, 224}, {64, 64, 64, 64},   {1, 1, 5, 5},
                                   {255, 255, 7, 9}};
    dt_rng rng = dt_rng_seeded(99);
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        int w = sizes[s][0], h = sizes[s][1], ow = sizes[s][2], oh = sizes[s][3];
        dt_image img = {malloc((size_t)w * h * 3), w, h};
        for (size_t i = 0; i < (size_t)w * h * 3; i++) img.pixels[i] = (uint8_t)dt_rng_next(&rng);
        uint8_t *got = malloc((size_t)ow * oh * 3), *want = malloc((size_t)ow * oh * 3);
        dt_error err;
        CHECK(dt_image_resize_region(&img, 0, 0, w, h, ow, oh, got, &err) == 0);
        reference_resize(&img, ow, oh, want);
        int worst = 0, differing = 0;
        for (int i = 0; i < ow * oh * 3; i++) {
            int d = abs(got[i] - want[i]);
            worst = d > worst ? d : worst;
            differing += d != 0;
        }
        CHECK_MSG(worst <= 1 && differing * 200 <= ow * oh * 3,
                  "%dx%d -> %dx%d: max diff %d, %d of %d values differ", w, h, ow, oh, worst,
                  differing, ow * oh * 3);
        free(got);
        free(want);
        free(img.pixels);
    }
}

static void test_solid_stays_solid(void) {
    dt_image img = {malloc(123 * 77 * 3), 123, 77};
    for (int i = 0; i < 123 * 77; i++) {
        img.pixels[3 * i] = 255;
        img.pixels[3 * i + 1] = 0;
        img.pixels[3 * i + 2] = 77;
    }
    static const int sizes[] = {1, 16, 77, 224};
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        int n = sizes[s];
        uint8_t *out = malloc((size_t)n * n * 3);
        dt_error err;
        for (int mode = 0; mode < 2; mode++) {
            CHECK(dt_image_resize_to_square(&img, mode ? DT_RESIZE_CENTER : DT_RESIZE_SQUASH, n,
                                            out, &err) == 0);
            int exact = 1;
            for (int i = 0; i < n * n; i++)
                exact &= out[3 * i] == 255 && out[3 * i + 1] == 0 && out[3 * i + 2] == 77;
            CHECK_MSG(exact, "solid colour exact at size %d mode %d", n, mode);
        }
        free(out);
    }
    free(img.pixels);
}

/* resize=center equals the full torchvision Resize(round(size*8/7)) followed by CenterCrop. */
static void check_center(int w, int h, int size, int expect_resized_w, int expect_resized_h,
                         int expect_x, int expect_y) {
    dt_rng rng = dt_rng_seeded((uint64_t)w * 1000 + h);
    dt_image img = {malloc((size_t)w * h * 3), w, h};
    for (size_t i = 0; i < (size_t)w * h * 3; i++) img.pixels[i] = (uint8_t)dt_rng_next(&rng);
    uint8_t *full = malloc((size_t)expect_resized_w * expect_resized_h * 3);
    uint8_t *center = malloc((size_t)size * size * 3);
    dt_error err;
    CHECK(dt_image_resize_region(&img, 0, 0, w, h, expect_resized_w, expect_resized_h, full,
                                 &err) == 0);
    CHECK(dt_image_resize_to_square(&img, DT_RESIZE_CENTER, size, center, &err) == 0);
    int same = 1;
    for (int y = 0; y < size; y++)
        same &= memcmp(center + (size_t)y * size * 3,
                       full + ((size_t)(y + expect_y) * expect_resized_w + expect_x) * 3,
                       (size_t)size * 3) == 0;
    CHECK_MSG(same, "center %dx%d -> %d: crop of %dx%d at (%d, %d)", w, h, size, expect_resized_w,
              expect_resized_h, expect_x, expect_y);
    free(full);
    free(center);
    free(img.pixels);
}

static void test_center_geometry(void) {
    CHECK_INT_EQ(dt_center_resize_short_side(224), 256);
    CHECK_INT_EQ(dt_center_resize_short_side(32), 37); /* 36.57 rounds up */
    CHECK_INT_EQ(dt_center_resize_short_side(64), 73); /* 73.14 */
    check_center(300, 200, 224, 384, 256, 80, 16);
    /* long side int(256 * 301 / 200) = 385; offset round(161 / 2) = round(80.5) = 80 (even) */
    check_center(301, 200, 224, 385, 256, 80, 16);
    /* int(256 * 303 / 200) = 387; round(163 / 2) = round(81.5) = 82 */
    check_center(303, 200, 224, 387, 256, 82, 16);
    /* portrait, upscaling: 37 x int(37 * 50 / 20) = 37 x 92; offsets round(2.5) = 2, 30 */
    check_center(20, 50, 32, 37, 92, 2, 30);
}

static void test_bad_arguments(void) {
    dt_image img = make_pattern_image();
    uint8_t out[16 * 3];
    dt_error err;
    CHECK(dt_image_resize_region(&img, 5, 0, 9, 9, 4, 4, out, &err) == -1);
    CHECK_MSG(strstr(err.message, "outside") != NULL, "%s", err.message);
    CHECK(dt_image_resize_region(&img, 0, 0, 13, 9, 0, 4, out, &err) == -1);
    CHECK(dt_image_resize_to_square(&img, DT_RESIZE_SQUASH, 0, out, &err) == -1);
    dt_image empty = {NULL, 0, 0};
    CHECK(dt_image_resize_to_square(&empty, DT_RESIZE_SQUASH, 4, out, &err) == -1);
    free(img.pixels);
}

int main(void) {
    test_pillow_fixtures();
    test_against_double_reference();
    test_solid_stays_solid();
    test_center_geometry();
    test_bad_arguments();
    return dt_test_summary("data_resize");
}
