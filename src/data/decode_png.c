/* PNG decoding with libpng into 8-bit RGB as Pillow's Image.open(...).convert("RGB") gives:
 * palette expanded, gray replicated, low bit depths scaled to 0..255, 16-bit samples reduced
 * to their high byte, alpha dropped (not composited), interlaced images de-interlaced. The
 * pixel limit is checked from IHDR before allocating. (One deliberate difference: Pillow turns
 * a 16-bit grayscale PNG into clipped 32-bit integers, so almost everything becomes white;
 * here it keeps the high byte like every other 16-bit PNG.) */
#include "decode_internal.h"

#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <png.h>

typedef struct png_memory_reader {
    const uint8_t *bytes;
    size_t size, offset;
} png_memory_reader;

/* Everything allocated during the decode, kept outside the function that calls setjmp. */
typedef struct png_job {
    png_structp png;
    png_infop info;
    png_memory_reader reader;
    char message[256];
    uint8_t *raw; /* decoded rows as libpng delivers them (1 to 4 channels) */
    png_bytep *row_ptrs;
    uint8_t *pixels; /* RGB result */
    size_t reserved; /* of the decode budget */
} png_job;

static void on_png_error(png_structp png, png_const_charp message) {
    png_job *job = png_get_error_ptr(png);
    snprintf(job->message, sizeof job->message, "%s", message);
    png_longjmp(png, 1);
}

/* Warnings (e.g. an odd ICC profile) do not make an image unusable; Pillow ignores them too. */
static void on_png_warning(png_structp png, png_const_charp message) {
    (void)png;
    (void)message;
}

static void read_from_memory(png_structp png, png_bytep out, png_size_t length) {
    png_memory_reader *reader = png_get_io_ptr(png);
    if (length > reader->size - reader->offset) png_error(png, "truncated file");
    memcpy(out, reader->bytes + reader->offset, length);
    reader->offset += length;
}

static void raw_to_rgb(const uint8_t *raw, size_t n_pixels, int channels, uint8_t *rgb) {
    for (size_t i = 0; i < n_pixels; i++, rgb += 3) {
        const uint8_t *p = raw + i * (size_t)channels;
        if (channels <= 2) {
            rgb[0] = rgb[1] = rgb[2] = p[0]; /* gray, or gray + alpha */
        } else {
            rgb[0] = p[0]; /* RGB, or RGBA */
            rgb[1] = p[1];
            rgb[2] = p[2];
        }
    }
}

static int run_png_decode(png_job *job, int *out_width, int *out_height) {
    if (setjmp(png_jmpbuf(job->png))) return -1;
    png_set_read_fn(job->png, &job->reader, read_from_memory);
    png_read_info(job->png, job->info);

    png_uint_32 width, height;
    int bit_depth, color_type, interlace;
    png_get_IHDR(job->png, job->info, &width, &height, &bit_depth, &color_type, &interlace, NULL,
                 NULL);
    uint64_t pixel_count = (uint64_t)width * height;
    if (width == 0 || height == 0 || pixel_count > DT_MAX_IMAGE_PIXELS) {
        snprintf(job->message, sizeof job->message,
                 "image is %ux%u = %llu pixels, outside the limit of 1 to %u", (unsigned)width,
                 (unsigned)height, (unsigned long long)pixel_count, DT_MAX_IMAGE_PIXELS);
        return -1;
    }
    if (bit_depth == 16) png_set_strip_16(job->png);
    if (color_type == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(job->png);
    if (color_type == PNG_COLOR_TYPE_GRAY && bit_depth < 8)
        png_set_expand_gray_1_2_4_to_8(job->png);
    png_set_interlace_handling(job->png);
    png_read_update_info(job->png, job->info);

    int channels = png_get_channels(job->png, job->info);
    size_t row_bytes = png_get_rowbytes(job->png, job->info);
    if (png_get_bit_depth(job->png, job->info) != 8 || channels < 1 || channels > 4 ||
        row_bytes != (size_t)width * channels) {
        snprintf(job->message, sizeof job->message,
                 "unsupported layout (bit depth %d, colour type %d)", bit_depth, color_type);
        return -1;
    }
    job->reserved = row_bytes * height + (size_t)pixel_count * 3 + sizeof(png_bytep) * height;
    dt_decode_budget_acquire(job->reserved);
    job->raw = malloc(row_bytes * height);
    job->row_ptrs = malloc(sizeof(png_bytep) * height);
    job->pixels = malloc((size_t)pixel_count * 3);
    if (!job->raw || !job->row_ptrs || !job->pixels) {
        snprintf(job->message, sizeof job->message, "out of memory for %ux%u pixels",
                 (unsigned)width, (unsigned)height);
        return -1;
    }
    for (png_uint_32 y = 0; y < height; y++) job->row_ptrs[y] = job->raw + (size_t)y * row_bytes;
    png_read_image(job->png, job->row_ptrs);
    raw_to_rgb(job->raw, (size_t)pixel_count, channels, job->pixels);
    *out_width = (int)width;
    *out_height = (int)height;
    return 0;
}

int dt_decode_png(const uint8_t *bytes, size_t size, const char *name, dt_image *img,
                  dt_error *err) {
    png_job *job = calloc(1, sizeof *job);
    if (!job) return dt_fail(err, "%s: out of memory", name);
    job->reader.bytes = bytes;
    job->reader.size = size;
    job->png = png_create_read_struct(PNG_LIBPNG_VER_STRING, job, on_png_error, on_png_warning);
    if (job->png) job->info = png_create_info_struct(job->png);
    int width = 0, height = 0;
    int rc = -1;
    if (!job->png || !job->info)
        snprintf(job->message, sizeof job->message, "out of memory");
    else
        rc = run_png_decode(job, &width, &height);
    if (job->png) png_destroy_read_struct(&job->png, job->info ? &job->info : NULL, NULL);
    free(job->raw);
    free(job->row_ptrs);
    /* only the pixels stay reserved */
    size_t kept = rc == 0 ? (size_t)width * (size_t)height * 3 : 0;
    dt_decode_budget_release(job->reserved - kept);
    if (rc != 0) {
        free(job->pixels);
        dt_fail(err, "%s: PNG: %s", name, job->message);
        free(job);
        return -1;
    }
    img->pixels = job->pixels;
    img->width = width;
    img->height = height;
    dt_decode_budget_hold(img->pixels, kept);
    free(job);
    return 0;
}
