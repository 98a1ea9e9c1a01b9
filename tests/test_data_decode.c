/* Tests JPEG and PNG decoding: exact pixels for lossless cases, colour conversions (gray,
 * CMYK, YCCK, palette, alpha, 16-bit, low bit depths, interlace), format sniffing, broken
 * files, the pixel limit, DCT-scaled decoding, and a small mutation fuzz. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <zlib.h>

#include "check.h"
#include "dtrain/data.h"
#include "dtrain/rng.h"
#include "imagegen.h"

static char dir[1024];

static const char *path_of(const char *name) {
    static char path[2048];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    return path;
}

static int decode(const char *name, dt_image *img, dt_error *err) {
    return dt_image_decode_file(path_of(name), img, err);
}

/* Largest |decoded - expected| over all pixels of a solid expected colour. */
static int max_error_to_solid(const dt_image *img, int r, int g, int b) {
    int worst = 0;
    for (size_t i = 0; i < (size_t)img->width * img->height; i++) {
        int want[3] = {r, g, b};
        for (int c = 0; c < 3; c++) {
            int d = abs((int)img->pixels[3 * i + c] - want[c]);
            if (d > worst) worst = d;
        }
    }
    return worst;
}

static double mean_abs_difference(const uint8_t *a, const uint8_t *b, size_t n) {
    double total = 0;
    for (size_t i = 0; i < n; i++) total += abs((int)a[i] - (int)b[i]);
    return n ? total / n : 0;
}

static void test_jpeg_variants(void) {
    dt_error err = {{0}, 0};
    enum { W = 40, H = 24 };
    uint8_t rgb[W * H * 3], gray[W * H], cmyk[W * H * 4];
    dt_testgen_fill_solid(rgb, W, H, 200, 40, 90);
    CHECK(dt_testgen_write_jpeg(path_of("solid.jpg"), rgb, W, H, 3, 100, 0, &err) == 0);
    dt_image img;
    CHECK(decode("solid.jpg", &img, &err) == 0);
    CHECK_INT_EQ(img.width, W);
    CHECK_INT_EQ(img.height, H);
    CHECK_MSG(max_error_to_solid(&img, 200, 40, 90) <= 3, "baseline solid colour within 3: %d",
              max_error_to_solid(&img, 200, 40, 90));
    dt_image_free(&img);
    CHECK(img.pixels == NULL);

    /* Grayscale: every pixel comes back with R == G == B, close to the written value. */
    for (int i = 0; i < W * H; i++) gray[i] = (uint8_t)(i % W * 6);
    CHECK(dt_testgen_write_jpeg(path_of("gray.jpg"), gray, W, H, 1, 100, 0, &err) == 0);
    CHECK(decode("gray.jpg", &img, &err) == 0);
    int equal_channels = 1, worst = 0;
    for (int i = 0; i < W * H && img.pixels; i++) {
        uint8_t *p = img.pixels + 3 * i;
        equal_channels &= p[0] == p[1] && p[1] == p[2];
        int d = abs(p[0] - gray[i]);
        if (d > worst) worst = d;
    }
    CHECK(equal_channels);
    CHECK_MSG(worst <= 3, "gray within 3 (%d)", worst);
    dt_image_free(&img);

    /* Progressive and baseline encodings of one image hold the same quantised coefficients,
     * so they decode to the same pixels, close to the source. */
    uint8_t photo[64 * 48 * 3];
    dt_testgen_fill_photo_like(photo, 64, 48, 7);
    CHECK(dt_testgen_write_jpeg(path_of("progressive.jpg"), photo, 64, 48, 3, 95, 1, &err) == 0);
    CHECK(dt_testgen_write_jpeg(path_of("baseline.jpg"), photo, 64, 48, 3, 95, 0, &err) == 0);
    dt_image baseline;
    CHECK(decode("progressive.jpg", &img, &err) == 0);
    CHECK(decode("baseline.jpg", &baseline, &err) == 0);
    CHECK_INT_EQ(img.width, 64);
    if (img.pixels && baseline.pixels) {
        CHECK_MSG(mean_abs_difference(img.pixels, baseline.pixels, sizeof photo) < 0.5,
                  "progressive == baseline (%.3f)",
                  mean_abs_difference(img.pixels, baseline.pixels, sizeof photo));
        CHECK_MSG(mean_abs_difference(img.pixels, photo, sizeof photo) < 10.0,
                  "progressive decode close to source (%.2f)",
                  mean_abs_difference(img.pixels, photo, sizeof photo));
    }
    dt_image_free(&img);
    dt_image_free(&baseline);

    /* CMYK with the Adobe (inverted) convention, as Pillow reads it:
     * R = K' - round((255 - C') * K' / 255) with C', K' the stored samples. */
    for (int i = 0; i < W * H; i++) {
        cmyk[4 * i] = 128;
        cmyk[4 * i + 1] = 255;
        cmyk[4 * i + 2] = 0;
        cmyk[4 * i + 3] = 200;
    }
    /* expected: R = 200 - round(127 * 200 / 255) = 100, G = 200, B = 200 - 200 = 0 */
    CHECK(dt_testgen_write_jpeg(path_of("cmyk.jpg"), cmyk, W, H, 4, 100, 0, &err) == 0);
    CHECK(decode("cmyk.jpg", &img, &err) == 0);
    if (img.pixels)
        CHECK_MSG(max_error_to_solid(&img, 100, 200, 0) <= 3, "CMYK -> RGB within 3 (%d)",
                  max_error_to_solid(&img, 100, 200, 0));
    dt_image_free(&img);
    CHECK(dt_testgen_write_jpeg_ycck(path_of("ycck.jpg"), cmyk, W, H, 100, &err) == 0);
    CHECK(decode("ycck.jpg", &img, &err) == 0);
    if (img.pixels)
        CHECK_MSG(max_error_to_solid(&img, 100, 200, 0) <= 3, "YCCK -> RGB within 3 (%d)",
                  max_error_to_solid(&img, 100, 200, 0));
    dt_image_free(&img);
}

static int write_png(const char *name, int w, int h, int color_type, int depth,
                     const uint16_t *samples, const uint8_t *palette, int palette_size,
                     int interlaced) {
    dt_testgen_png png = {w, h, color_type, depth, samples, palette, palette_size, interlaced};
    dt_error err;
    int rc = dt_testgen_write_png(path_of(name), &png, &err);
    if (rc) fprintf(stderr, "%s\n", err.message);
    return rc;
}

/* Every PNG variant decodes to exactly the RGB that Pillow's convert("RGB") gives. */
static void test_png_variants(void) {
    enum { W = 13, H = 7, N = W * H };
    uint16_t samples[N * 4];
    uint8_t expected[N * 3];
    dt_image img;
    dt_error err = {{0}, 0};

    /* RGB 8-bit, plain and interlaced. */
    for (int i = 0; i < N * 3; i++) samples[i] = expected[i] = (uint8_t)(i * 7 + 3);
    CHECK(write_png("rgb.png", W, H, 2, 8, samples, NULL, 0, 0) == 0);
    CHECK(write_png("rgb_interlaced.png", W, H, 2, 8, samples, NULL, 0, 1) == 0);
    CHECK(decode("rgb.png", &img, &err) == 0);
    CHECK(img.width == W && img.height == H && memcmp(img.pixels, expected, N * 3) == 0);
    dt_image_free(&img);
    CHECK(decode("rgb_interlaced.png", &img, &err) == 0);
    CHECK(img.pixels && memcmp(img.pixels, expected, N * 3) == 0);
    dt_image_free(&img);

    /* RGBA: alpha dropped (not composited), even where it is 0. */
    for (int i = 0; i < N; i++) {
        for (int c = 0; c < 3; c++)
            samples[4 * i + c] = expected[3 * i + c] = (uint8_t)(i + 60 * c);
        samples[4 * i + 3] = (uint16_t)(i % 3 == 0 ? 0 : 128);
    }
    CHECK(write_png("rgba.png", W, H, 6, 8, samples, NULL, 0, 0) == 0);
    CHECK(decode("rgba.png", &img, &err) == 0);
    CHECK(img.pixels && memcmp(img.pixels, expected, N * 3) == 0);
    dt_image_free(&img);

    /* 16-bit RGB and RGBA: the high byte. */
    for (int i = 0; i < N * 3; i++) {
        samples[i] = (uint16_t)(i * 613 + 255);
        expected[i] = (uint8_t)(samples[i] >> 8);
    }
    CHECK(write_png("rgb16.png", W, H, 2, 16, samples, NULL, 0, 0) == 0);
    CHECK(decode("rgb16.png", &img, &err) == 0);
    CHECK(img.pixels && memcmp(img.pixels, expected, N * 3) == 0);
    dt_image_free(&img);

    /* Gray at 8, 16 and low bit depths (scaled to 0..255: x255/(2^d - 1)), gray + alpha. */
    static const int depths[] = {1, 2, 4, 8, 16};
    for (size_t d = 0; d < sizeof depths / sizeof depths[0]; d++) {
        int depth = depths[d];
        int max_value = (1 << depth) - 1;
        for (int i = 0; i < N; i++) {
            samples[i] = (uint16_t)((i * 37 + 5) % (max_value + 1));
            uint8_t v =
                depth == 16 ? (uint8_t)(samples[i] >> 8) : (uint8_t)(samples[i] * 255 / max_value);
            expected[3 * i] = expected[3 * i + 1] = expected[3 * i + 2] = v;
        }
        char name[64];
        snprintf(name, sizeof name, "gray%d.png", depth);
        CHECK(write_png(name, W, H, 0, depth, samples, NULL, 0, depth == 4) == 0);
        CHECK(decode(name, &img, &err) == 0);
        CHECK_MSG(img.pixels && memcmp(img.pixels, expected, N * 3) == 0, "gray %d-bit exact",
                  depth);
        dt_image_free(&img);
    }
    for (int i = 0; i < N; i++) {
        samples[2 * i] = (uint16_t)(i * 3);
        samples[2 * i + 1] = (uint16_t)(255 - i);
        expected[3 * i] = expected[3 * i + 1] = expected[3 * i + 2] = (uint8_t)(i * 3);
    }
    CHECK(write_png("gray_alpha.png", W, H, 4, 8, samples, NULL, 0, 0) == 0);
    CHECK(decode("gray_alpha.png", &img, &err) == 0);
    CHECK(img.pixels && memcmp(img.pixels, expected, N * 3) == 0);
    dt_image_free(&img);

    /* Palette, 8-bit and 4-bit indices. */
    uint8_t palette[16 * 3];
    for (int i = 0; i < 16 * 3; i++) palette[i] = (uint8_t)(i * 17 + 1);
    for (int depth = 4; depth <= 8; depth += 4) {
        for (int i = 0; i < N; i++) {
            samples[i] = (uint16_t)((i * 5) % 16);
            memcpy(expected + 3 * i, palette + 3 * samples[i], 3);
        }
        char name[64];
        snprintf(name, sizeof name, "palette%d.png", depth);
        CHECK(write_png(name, W, H, 3, depth, samples, palette, 16, 0) == 0);
        CHECK(decode(name, &img, &err) == 0);
        CHECK_MSG(img.pixels && memcmp(img.pixels, expected, N * 3) == 0, "palette %d-bit exact",
                  depth);
        dt_image_free(&img);
    }
}

static int truncate_half(const char *source, const char *target) {
    uint8_t *bytes;
    size_t size;
    dt_error err;
    if (dt_testgen_read_file(path_of(source), &bytes, &size, &err) != 0) return -1;
    free(bytes);
    char target_path[2048];
    snprintf(target_path, sizeof target_path, "%s", path_of(target));
    return dt_testgen_truncated_copy(path_of(source), target_path, size / 2, &err);
}

static void test_sniffing_and_broken_files(void) {
    dt_error err = {{0}, 0};
    dt_image img;
    uint8_t *bytes;
    size_t size;

    /* Names do not matter: a PNG named .jpg and a JPEG named .png decode. */
    CHECK(dt_testgen_read_file(path_of("rgb.png"), &bytes, &size, &err) == 0);
    CHECK(dt_testgen_write_bytes(path_of("png_named.jpg"), bytes, size, &err) == 0);
    free(bytes);
    CHECK(decode("png_named.jpg", &img, &err) == 0);
    CHECK_INT_EQ(img.width, 13);
    dt_image_free(&img);
    CHECK(dt_testgen_read_file(path_of("solid.jpg"), &bytes, &size, &err) == 0);
    CHECK(dt_testgen_write_bytes(path_of("jpeg_named.png"), bytes, size, &err) == 0);
    CHECK(decode("jpeg_named.png", &img, &err) == 0);
    CHECK_INT_EQ(img.width, 40);
    dt_image_free(&img);

    /* The same bytes from memory, with the given name in messages. */
    CHECK(dt_image_decode_memory(bytes, size, "in-memory.jpg", &img, &err) == 0);
    CHECK_INT_EQ(img.height, 24);
    dt_image_free(&img);

    /* Truncated JPEG: libjpeg's "premature end" warning makes it fail. */
    CHECK(truncate_half("progressive.jpg", "truncated.jpg") == 0);
    CHECK(decode("truncated.jpg", &img, &err) == -1);
    CHECK_MSG(strstr(err.message, path_of("truncated.jpg")) && strstr(err.message, "Premature end"),
              "%s", err.message);
    CHECK(img.pixels == NULL);

    /* Garbage before the EOI marker: "Corrupt JPEG data: N extraneous bytes" (a warning). */
    uint8_t *corrupt = malloc(size + 100);
    memcpy(corrupt, bytes, size - 2);
    for (int i = 0; i < 100; i++) corrupt[size - 2 + i] = (uint8_t)(0x11 + i % 50);
    corrupt[size + 98] = 0xff;
    corrupt[size + 99] = 0xd9;
    CHECK(dt_image_decode_memory(corrupt, size + 100, "extraneous.jpg", &img, &err) == -1);
    CHECK_MSG(strstr(err.message, "extraneous.jpg: JPEG: corrupt data: Corrupt JPEG data"), "%s",
              err.message);
    free(corrupt);

    /* Header claiming 20000 x 20000 (> 178956970 pixels): refused from the header. */
    for (size_t i = 0; i + 9 < size; i++) {
        if (bytes[i] == 0xff && (bytes[i + 1] == 0xc0 || bytes[i + 1] == 0xc2)) {
            bytes[i + 5] = 20000 >> 8, bytes[i + 6] = 20000 & 0xff; /* height */
            bytes[i + 7] = 20000 >> 8, bytes[i + 8] = 20000 & 0xff; /* width */
            break;
        }
    }
    CHECK(dt_image_decode_memory(bytes, size, "huge.jpg", &img, &err) == -1);
    CHECK_MSG(strstr(err.message, "huge.jpg") && strstr(err.message, "limit"), "%s", err.message);
    free(bytes);

    CHECK(dt_testgen_read_file(path_of("rgb.png"), &bytes, &size, &err) == 0);
    /* IHDR data starts at byte 16: width, height (big-endian); its CRC covers bytes 12..28. */
    const uint32_t huge = 20000;
    for (int k = 0; k < 2; k++) {
        bytes[16 + 4 * k] = 0, bytes[17 + 4 * k] = 0;
        bytes[18 + 4 * k] = (uint8_t)(huge >> 8), bytes[19 + 4 * k] = (uint8_t)huge;
    }
    uLong crc = crc32(crc32(0L, Z_NULL, 0), bytes + 12, 17);
    for (int k = 0; k < 4; k++) bytes[29 + k] = (uint8_t)(crc >> (24 - 8 * k));
    CHECK(dt_image_decode_memory(bytes, size, "huge.png", &img, &err) == -1);
    CHECK_MSG(strstr(err.message, "huge.png: PNG") && strstr(err.message, "limit"), "%s",
              err.message);
    free(bytes);

    CHECK(truncate_half("rgb16.png", "truncated.png") == 0);
    CHECK(decode("truncated.png", &img, &err) == -1);
    CHECK_MSG(strstr(err.message, "truncated.png: PNG: truncated"), "%s", err.message);

    CHECK(dt_testgen_write_bytes(path_of("empty.jpg"), "", 0, &err) == 0);
    CHECK(decode("empty.jpg", &img, &err) == -1);
    CHECK_MSG(strstr(err.message, "empty.jpg: empty file"), "%s", err.message);

    const char text[] = "<!DOCTYPE html><html>not really a picture</html>\n";
    CHECK(dt_testgen_write_bytes(path_of("text.jpg"), text, sizeof text - 1, &err) == 0);
    CHECK(decode("text.jpg", &img, &err) == -1);
    CHECK_MSG(strstr(err.message, "text.jpg: not an image (looks like text"), "%s", err.message);

    const uint8_t gif[] = {'G', 'I', 'F', '8', '9', 'a', 1, 0, 1, 0};
    CHECK(dt_image_decode_memory(gif, sizeof gif, "anim.jpg", &img, &err) == -1);
    CHECK_MSG(strstr(err.message, "anim.jpg: a GIF image"), "%s", err.message);

    CHECK(decode("does-not-exist.jpg", &img, &err) == -1);
    CHECK_MSG(strstr(err.message, "does-not-exist.jpg: cannot open"), "%s", err.message);
}

static void test_dct_scaling(void) {
    dt_error err = {{0}, 0};
    enum { W = 200, H = 160 };
    uint8_t *photo = malloc(W * H * 3);
    dt_testgen_fill_photo_like(photo, W, H, 3);
    CHECK(dt_testgen_write_jpeg(path_of("big.jpg"), photo, W, H, 3, 95, 0, &err) == 0);
    free(photo);
    dt_image full, half, none;
    CHECK(dt_image_decode_file_scaled(path_of("big.jpg"), 50, 50, &half, &err) == 0);
    CHECK_INT_EQ(half.width, 100); /* 1/4 would give 50x40 < 50: 1/2 is the smallest */
    CHECK_INT_EQ(half.height, 80);
    CHECK(dt_image_decode_file_scaled(path_of("big.jpg"), 25, 20, &none, &err) == 0);
    CHECK_INT_EQ(none.width, 25); /* 1/8 */
    CHECK_INT_EQ(none.height, 20);
    dt_image_free(&none);
    CHECK(dt_image_decode_file_scaled(path_of("big.jpg"), 150, 10, &none, &err) == 0);
    CHECK_INT_EQ(none.width, W); /* not twice as large: full size */
    dt_image_free(&none);
    CHECK(dt_image_decode_file(path_of("big.jpg"), &full, &err) == 0);
    CHECK_INT_EQ(full.width, W);
    /* The reduced decode is close to the full one resized to the same size. */
    uint8_t *resized = malloc(100 * 80 * 3);
    CHECK(dt_image_resize_region(&full, 0, 0, W, H, 100, 80, resized, &err) == 0);
    if (half.pixels)
        CHECK_MSG(mean_abs_difference(resized, half.pixels, 100 * 80 * 3) < 4.0,
                  "scaled decode close to full decode + resize (%.2f)",
                  mean_abs_difference(resized, half.pixels, 100 * 80 * 3));
    free(resized);
    dt_image_free(&half);
    dt_image_free(&full);
    /* PNGs ignore the scaling request. */
    CHECK(dt_image_decode_file_scaled(path_of("rgb.png"), 2, 2, &full, &err) == 0);
    CHECK_INT_EQ(full.width, 13);
    dt_image_free(&full);
}

/* Mutated and cut copies of valid files: every decode either succeeds with a sane image or
 * fails with a message naming the input; none crashes (run under ASan/UBSan in CI). */
static void test_mutation_fuzz(void) {
    const char *sources[] = {"progressive.jpg", "gray.jpg", "cmyk.jpg", "rgb_interlaced.png",
                             "palette4.png"};
    dt_rng rng = dt_rng_seeded(12345);
    int failures_named = 1, successes_sane = 1, n_ok = 0, n_failed = 0;
    for (size_t s = 0; s < sizeof sources / sizeof sources[0]; s++) {
        uint8_t *bytes;
        size_t size;
        dt_error err;
        if (dt_testgen_read_file(path_of(sources[s]), &bytes, &size, &err) != 0) continue;
        uint8_t *mutant = malloc(size);
        for (int round = 0; round < 60; round++) {
            memcpy(mutant, bytes, size);
            size_t used = size;
            int flips = 1 + (int)dt_rng_below(&rng, 4);
            for (int f = 0; f < flips; f++)
                mutant[dt_rng_below(&rng, (uint32_t)size)] = (uint8_t)dt_rng_next(&rng);
            if (round % 3 == 0) used = 1 + dt_rng_below(&rng, (uint32_t)size);
            dt_image img;
            if (dt_image_decode_memory(mutant, used, "mutant", &img, &err) == 0) {
                successes_sane &= img.width > 0 && img.height > 0 && img.pixels != NULL;
                n_ok++;
                dt_image_free(&img);
            } else {
                failures_named &= strncmp(err.message, "mutant: ", 8) == 0;
                n_failed++;
            }
        }
        free(mutant);
        free(bytes);
    }
    CHECK(failures_named);
    CHECK(successes_sane);
    CHECK_MSG(n_failed > 0 && n_ok + n_failed == 300, "fuzz: %d decoded, %d refused", n_ok,
              n_failed);
}

int main(void) {
    dt_error err;
    if (dt_testgen_make_temp_dir("dtrain-decode", dir, sizeof dir, &err) != 0) {
        fprintf(stderr, "%s\n", err.message);
        return 1;
    }
    test_jpeg_variants();
    test_png_variants();
    test_sniffing_and_broken_files();
    test_dct_scaling();
    test_mutation_fuzz();
    dt_testgen_remove_tree(dir);
    return dt_test_summary("data_decode");
}
