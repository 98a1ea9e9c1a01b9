/* 8-bit RGB images to PNG in memory with libpng (TensorBoard image summaries). */
#include <png.h>
#include <setjmp.h>
#include <stdlib.h>
#include <string.h>

#include "dtrain/bytes.h"
#include "dtrain/tensorboard.h"

static void append_to_text(png_structp png, png_bytep data, png_size_t length) {
    dt_text_append((dt_text *)png_get_io_ptr(png), (const char *)data, length);
}

static void no_flush(png_structp png) {
    (void)png;
}

int dt_png_encode_rgb(const uint8_t *rgb, int width, int height, uint8_t **out, size_t *size,
                      dt_error *err) {
    *out = NULL;
    *size = 0;
    if (width <= 0 || height <= 0) return dt_fail(err, "PNG of %dx%d pixels", width, height);
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    if (!info) {
        png_destroy_write_struct(&png, NULL);
        return dt_fail(err, "out of memory encoding a PNG");
    }
    dt_text buffer = {0};
    png_bytep *rows = malloc((size_t)height * sizeof *rows);
    if (!rows || setjmp(png_jmpbuf(png))) {
        png_destroy_write_struct(&png, &info);
        free(rows);
        free(buffer.data);
        return dt_fail(err, "encoding a %dx%d PNG failed", width, height);
    }
    png_set_write_fn(png, &buffer, append_to_text, no_flush);
    png_set_IHDR(png, info, (png_uint_32)width, (png_uint_32)height, 8, PNG_COLOR_TYPE_RGB,
                 PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_set_compression_level(png, 6);
    for (int y = 0; y < height; y++) rows[y] = (png_bytep)(rgb + (size_t)y * (size_t)width * 3);
    png_write_info(png, info);
    png_write_image(png, rows);
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    free(rows);
    if (buffer.failed) {
        free(buffer.data);
        return dt_fail(err, "out of memory encoding a PNG");
    }
    *out = (uint8_t *)buffer.data;
    *size = buffer.length;
    return 0;
}
