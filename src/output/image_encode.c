/* Image encoders: JPEG with libjpeg (the tools, tests and benchmarks that produce image folders,
 * `dtrain pack --resize`, report.html's tiles) and 8-bit RGB to PNG in memory with libpng
 * (TensorBoard image summaries, at the end of this file). */
#include "dtrain/data.h"

#include <errno.h>
#include <jpeglib.h>
#include <png.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dtrain/bytes.h"
#include "dtrain/tensorboard.h"

typedef struct jpeg_write_failure {
    struct jpeg_error_mgr manager; /* first member: libjpeg hands us a pointer to it */
    jmp_buf jump;
    char message[JMSG_LENGTH_MAX];
} jpeg_write_failure;

typedef struct jpeg_write_job {
    struct jpeg_compress_struct cinfo;
    jpeg_write_failure failure;
    int created;
    FILE *file;
} jpeg_write_job;

static void on_write_error(j_common_ptr cinfo) {
    jpeg_write_failure *failure = (jpeg_write_failure *)cinfo->err;
    (*cinfo->err->format_message)(cinfo, failure->message);
    longjmp(failure->jump, 1);
}

static int run_jpeg_encode(jpeg_write_job *job, const uint8_t *samples, int width, int height,
                           int components, int quality, int progressive) {
    struct jpeg_compress_struct *cinfo = &job->cinfo;
    cinfo->err = jpeg_std_error(&job->failure.manager);
    job->failure.manager.error_exit = on_write_error;
    if (setjmp(job->failure.jump)) return -1;
    jpeg_create_compress(cinfo);
    job->created = 1;
    jpeg_stdio_dest(cinfo, job->file);
    cinfo->image_width = (JDIMENSION)width;
    cinfo->image_height = (JDIMENSION)height;
    cinfo->input_components = components;
    cinfo->in_color_space = components == 1 ? JCS_GRAYSCALE : components == 3 ? JCS_RGB : JCS_CMYK;
    jpeg_set_defaults(cinfo);
    jpeg_set_quality(cinfo, quality, TRUE);
    if (progressive) jpeg_simple_progression(cinfo);
    jpeg_start_compress(cinfo, TRUE);
    while (cinfo->next_scanline < cinfo->image_height) {
        JSAMPROW row =
            (JSAMPROW)(samples + (size_t)cinfo->next_scanline * (size_t)width * components);
        jpeg_write_scanlines(cinfo, &row, 1);
    }
    jpeg_finish_compress(cinfo);
    return 0;
}

int dt_jpeg_write_file(const char *path, const uint8_t *samples, int width, int height,
                       int components, int quality, int progressive, dt_error *err) {
    if (width <= 0 || height <= 0 || width > 65500 || height > 65500)
        return dt_fail(err, "%s: cannot write a %dx%d JPEG", path, width, height);
    if (components != 1 && components != 3 && components != 4)
        return dt_fail(err, "%s: JPEG components must be 1, 3 or 4, got %d", path, components);
    if (quality < 1 || quality > 100)
        return dt_fail(err, "%s: JPEG quality must be 1..100, got %d", path, quality);
    jpeg_write_job *job = calloc(1, sizeof *job);
    if (!job) return dt_fail(err, "%s: out of memory", path);
    job->file = fopen(path, "wb");
    if (!job->file) {
        int saved = errno;
        free(job);
        return dt_fail(err, "%s: cannot create: %s", path, strerror(saved));
    }
    int rc = run_jpeg_encode(job, samples, width, height, components, quality, progressive);
    if (job->created) jpeg_destroy_compress(&job->cinfo);
    int close_failed = fclose(job->file) != 0;
    if (rc != 0)
        dt_fail(err, "%s: JPEG encoder: %s", path, job->failure.message);
    else if (close_failed)
        rc = dt_fail(err, "%s: write error: %s", path, strerror(errno));
    free(job);
    return rc;
}

int dt_jpeg_encode_memory(const uint8_t *rgb, int width, int height, int quality, uint8_t **out,
                          size_t *size, dt_error *err) {
    *out = NULL;
    *size = 0;
    if (width <= 0 || height <= 0 || width > 65500 || height > 65500 || quality < 1 ||
        quality > 100)
        return dt_fail(err, "cannot encode a %dx%d JPEG at quality %d", width, height, quality);
    jpeg_write_job *job = calloc(1, sizeof *job);
    if (!job) return dt_fail(err, "out of memory encoding a JPEG");
    char *buffer = NULL;
    size_t length = 0;
    if (!(job->file = open_memstream(&buffer, &length))) {
        free(job);
        return dt_fail(err, "out of memory encoding a JPEG");
    }
    int rc = run_jpeg_encode(job, rgb, width, height, 3, quality, 0);
    if (job->created) jpeg_destroy_compress(&job->cinfo);
    int close_failed = fclose(job->file) != 0;
    if (rc != 0 || close_failed) {
        rc = dt_fail(err, "JPEG encoder: %s", rc ? job->failure.message : "out of memory");
        free(buffer);
    } else {
        *out = (uint8_t *)buffer;
        *size = length;
    }
    free(job);
    return rc;
}

/* 8-bit RGB images to PNG in memory with libpng (TensorBoard image summaries). */

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
