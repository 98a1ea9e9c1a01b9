/* Image decoding entry points: read the file, sniff the format from its first bytes (never its
 * name) and hand it to the JPEG or PNG decoder. */
#include "decode_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dtrain/platform.h"

/* Larger files are refused before reading: no sane training image comes near this. */
#define DT_MAX_IMAGE_FILE_BYTES ((size_t)1 << 30)

static const uint8_t png_signature[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};

static int looks_like_text(const uint8_t *bytes, size_t size) {
    size_t n = size < 64 ? size : 64;
    for (size_t i = 0; i < n; i++) {
        uint8_t c = bytes[i];
        if (c < 0x09 || (c > 0x0d && c < 0x20) || c == 0x7f) return 0;
    }
    return 1;
}

static int fail_unknown_format(const uint8_t *bytes, size_t size, const char *name, dt_error *err) {
    char hex[3 * 8 + 1] = "";
    size_t n = size < 8 ? size : 8;
    for (size_t i = 0; i < n; i++)
        snprintf(hex + 3 * i, sizeof hex - 3 * i, "%s%02x", i ? " " : "", bytes[i]);
    if (size >= 4 && memcmp(bytes, "GIF8", 4) == 0)
        return dt_fail(err, "%s: a GIF image, only JPEG and PNG are supported", name);
    if (size >= 12 && memcmp(bytes, "RIFF", 4) == 0 && memcmp(bytes + 8, "WEBP", 4) == 0)
        return dt_fail(err, "%s: a WebP image, only JPEG and PNG are supported", name);
    if (size >= 2 && bytes[0] == 'B' && bytes[1] == 'M')
        return dt_fail(err, "%s: a BMP image, only JPEG and PNG are supported", name);
    if (looks_like_text(bytes, size))
        return dt_fail(err, "%s: not an image (looks like text; first bytes %s)", name, hex);
    return dt_fail(err, "%s: not a JPEG or PNG image (first bytes %s)", name, hex);
}

int dt_image_decode_memory_scaled(const uint8_t *bytes, size_t size, const char *name,
                                  int min_width, int min_height, dt_image *img, dt_error *err) {
    memset(img, 0, sizeof *img);
    if (!name) name = "(memory)";
    if (size == 0) return dt_fail(err, "%s: empty file", name);
    if (size >= 3 && bytes[0] == 0xff && bytes[1] == 0xd8 && bytes[2] == 0xff)
        return dt_decode_jpeg(bytes, size, name, min_width, min_height, img, err);
    if (size >= sizeof png_signature && memcmp(bytes, png_signature, sizeof png_signature) == 0)
        return dt_decode_png(bytes, size, name, img, err);
    return fail_unknown_format(bytes, size, name, err);
}

int dt_image_decode_memory(const uint8_t *bytes, size_t size, const char *name, dt_image *img,
                           dt_error *err) {
    return dt_image_decode_memory_scaled(bytes, size, name, 0, 0, img, err);
}

int dt_image_decode_file_scaled(const char *path, int min_width, int min_height, dt_image *img,
                                dt_error *err) {
    memset(img, 0, sizeof *img);
    uint8_t *bytes;
    size_t size;
    if (dt_read_file(path, DT_MAX_IMAGE_FILE_BYTES, &bytes, &size, err) != 0) return -1;
    int rc = dt_image_decode_memory_scaled(bytes, size, path, min_width, min_height, img, err);
    free(bytes);
    return rc;
}

int dt_image_decode_file(const char *path, dt_image *img, dt_error *err) {
    return dt_image_decode_file_scaled(path, 0, 0, img, err);
}

void dt_image_free(dt_image *img) {
    if (!img) return;
    dt_decode_budget_release_pixels(img->pixels); /* before free: the address may be reused */
    free(img->pixels);
    memset(img, 0, sizeof *img);
}
