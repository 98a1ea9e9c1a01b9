/* Test image writers for dtrain's tests: JPEG and PNG variants (gray, CMYK, progressive,
 * palette, alpha, 16-bit, interlaced), broken files (truncated, empty, misnamed), folder
 * helpers, and a learnable synthetic ImageFolder for end-to-end training tests. */
#ifndef DTRAIN_TEST_IMAGEGEN_H
#define DTRAIN_TEST_IMAGEGEN_H

#include <stddef.h>
#include <stdint.h>

#include "dtrain/error.h"
#include "dtrain/platform.h" /* dt_make_directories for test trees */

/* rm -rf (does not follow links). Returns 0 when the tree is gone. */
int dt_testgen_remove_tree(const char *path);

/* Creates a fresh folder under $TMPDIR (or /tmp) named prefix-XXXXXX; out gets its path. */
int dt_testgen_make_temp_dir(const char *prefix, char *out, size_t out_size, dt_error *err);

/* The end of a test's temp folder: removed when no check has failed (dt_test_failed == 0),
 * else kept with "kept DIR for inspection" on stderr. An empty dir (never made) is ignored. */
void dt_testgen_finish_temp_dir(const char *dir);

/* JPEG with libjpeg: components 1 (gray), 3 (RGB) or 4 (CMYK samples, stored as given with an
 * Adobe marker, i.e. read back as inverted CMYK); quality 1..100. */
int dt_testgen_write_jpeg(const char *path, const uint8_t *samples, int width, int height,
                          int components, int quality, int progressive, dt_error *err);

/* CMYK samples written as a YCCK JPEG (libjpeg converts on the way in; Adobe marker with
 * transform 2), the form Photoshop uses for CMYK photos. */
int dt_testgen_write_jpeg_ycck(const char *path, const uint8_t *cmyk, int width, int height,
                               int quality, dt_error *err);

/* A PNG described sample by sample. */
typedef struct dt_testgen_png {
    int width, height;
    int color_type; /* 0 gray, 2 RGB, 3 palette, 4 gray + alpha, 6 RGBA (PNG's numbering) */
    int bit_depth;  /* 1, 2, 4, 8 or 16, as PNG allows for the colour type */
    const uint16_t *samples; /* height x width x channels values, each < 2^bit_depth */
    const uint8_t *palette;  /* palette_size RGB triples (colour type 3) */
    int palette_size;
    int interlaced; /* Adam7 */
} dt_testgen_png;

int dt_testgen_write_png(const char *path, const dt_testgen_png *png, dt_error *err);

/* Raw files: anything (text named .jpg, an empty file), and a copy cut to keep_bytes. */
int dt_testgen_write_bytes(const char *path, const void *data, size_t size, dt_error *err);
int dt_testgen_truncated_copy(const char *src, const char *dst, size_t keep_bytes, dt_error *err);
/* Reads a whole file into a malloc'ed buffer. */
int dt_testgen_read_file(const char *path, uint8_t **bytes, size_t *size, dt_error *err);
/* The tensor bytes of a safetensors file (what follows its JSON header), malloc'ed, or NULL:
 * two runs' weights compared bitwise. */
uint8_t *dt_testgen_safetensors_data(const char *path, size_t *size);

/* Pixel patterns: a solid colour, and smooth gradients plus seeded noise (photo-like). */
void dt_testgen_fill_solid(uint8_t *rgb, int width, int height, uint8_t r, uint8_t g, uint8_t b);
void dt_testgen_fill_photo_like(uint8_t *rgb, int width, int height, uint64_t seed);

/* Writes root/class00 .. root/classNN, per_class JPEGs each (quality 90, width x height):
 * each class has its own colour and stripe orientation, with random phase, brightness and
 * per-pixel noise, so a small CNN separates the classes easily. Files: imgNNNN.jpg. */
int dt_testgen_learnable_imagefolder(const char *root, int n_classes, int per_class, int width,
                                     int height, uint64_t seed, dt_error *err);

#endif
