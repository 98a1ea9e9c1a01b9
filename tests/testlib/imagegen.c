/* Test image writers: JPEG/PNG variants, broken files, folder helpers and the learnable
 * synthetic ImageFolder (see imagegen.h). */
#include "imagegen.h"

#include "dtrain/platform.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jpeglib.h>
#include <png.h>
#include <setjmp.h>

#include "check.h" /* dt_test_failed */
#include "dtrain/data.h"
#include "dtrain/rng.h"

int dt_testgen_remove_tree(const char *path) {
    struct stat info;
    if (lstat(path, &info) != 0) return errno == ENOENT ? 0 : -1;
    if (!S_ISDIR(info.st_mode)) return unlink(path);
    DIR *dir = opendir(path);
    if (!dir) return -1;
    int rc = 0;
    struct dirent *entry;
    while ((entry = readdir(dir)) != NULL) {
        if (strcmp(entry->d_name, ".") == 0 || strcmp(entry->d_name, "..") == 0) continue;
        char child[4096];
        snprintf(child, sizeof child, "%s/%s", path, entry->d_name);
        if (dt_testgen_remove_tree(child) != 0) rc = -1;
    }
    closedir(dir);
    if (rmdir(path) != 0) rc = -1;
    return rc;
}

int dt_testgen_make_temp_dir(const char *prefix, char *out, size_t out_size, dt_error *err) {
    const char *base = getenv("TMPDIR");
    if (!base || !*base) base = "/tmp";
    int n = snprintf(out, out_size, "%s/%s-XXXXXX", base, prefix);
    if (n < 0 || (size_t)n >= out_size) return dt_fail(err, "temp dir path too long");
    if (!mkdtemp(out)) return dt_fail(err, "mkdtemp %s: %s", out, strerror(errno));
    return 0;
}

void dt_testgen_finish_temp_dir(const char *dir) {
    if (!dir || !dir[0]) return;
    if (dt_test_failed == 0 && dt_testgen_remove_tree(dir) == 0) return;
    fprintf(stderr, "kept %s for inspection\n", dir);
}

int dt_testgen_write_jpeg(const char *path, const uint8_t *samples, int width, int height,
                          int components, int quality, int progressive, dt_error *err) {
    return dt_jpeg_write_file(path, samples, width, height, components, quality, progressive, err);
}

typedef struct ycck_write_job {
    struct jpeg_compress_struct cinfo;
    struct jpeg_error_mgr manager;
    jmp_buf jump;
    int created;
    FILE *file;
} ycck_write_job;

static void on_ycck_error(j_common_ptr cinfo) {
    ycck_write_job *job = (ycck_write_job *)cinfo->client_data;
    longjmp(job->jump, 1);
}

static int run_ycck_write(ycck_write_job *job, const uint8_t *cmyk, int width, int height,
                          int quality) {
    job->cinfo.err = jpeg_std_error(&job->manager);
    job->manager.error_exit = on_ycck_error;
    job->cinfo.client_data = job;
    if (setjmp(job->jump)) return -1;
    jpeg_create_compress(&job->cinfo);
    job->created = 1;
    jpeg_stdio_dest(&job->cinfo, job->file);
    job->cinfo.image_width = (JDIMENSION)width;
    job->cinfo.image_height = (JDIMENSION)height;
    job->cinfo.input_components = 4;
    job->cinfo.in_color_space = JCS_CMYK;
    jpeg_set_defaults(&job->cinfo);
    jpeg_set_colorspace(&job->cinfo, JCS_YCCK);
    jpeg_set_quality(&job->cinfo, quality, TRUE);
    jpeg_start_compress(&job->cinfo, TRUE);
    while (job->cinfo.next_scanline < job->cinfo.image_height) {
        JSAMPROW row = (JSAMPROW)(cmyk + (size_t)job->cinfo.next_scanline * width * 4);
        jpeg_write_scanlines(&job->cinfo, &row, 1);
    }
    jpeg_finish_compress(&job->cinfo);
    return 0;
}

int dt_testgen_write_jpeg_ycck(const char *path, const uint8_t *cmyk, int width, int height,
                               int quality, dt_error *err) {
    ycck_write_job *job = calloc(1, sizeof *job);
    if (!job) return dt_fail(err, "out of memory");
    job->file = fopen(path, "wb");
    if (!job->file) {
        free(job);
        return dt_fail(err, "%s: cannot create: %s", path, strerror(errno));
    }
    int rc = run_ycck_write(job, cmyk, width, height, quality);
    if (job->created) jpeg_destroy_compress(&job->cinfo);
    if (fclose(job->file) != 0) rc = -1;
    free(job);
    if (rc != 0) return dt_fail(err, "%s: YCCK JPEG write failed", path);
    return 0;
}

static int png_channels(int color_type) {
    switch (color_type) {
    case 0:
        return 1;
    case 2:
        return 3;
    case 3:
        return 1;
    case 4:
        return 2;
    case 6:
        return 4;
    default:
        return 0;
    }
}

/* Kept outside the function that calls setjmp, so it survives a libpng longjmp. */
typedef struct png_write_job {
    FILE *file;
    png_structp png;
    png_infop info;
    uint8_t *row;
} png_write_job;

static int run_png_write(png_write_job *job, const dt_testgen_png *spec, int channels) {
    if (setjmp(png_jmpbuf(job->png))) return -1;
    png_init_io(job->png, job->file);
    png_set_IHDR(job->png, job->info, (png_uint_32)spec->width, (png_uint_32)spec->height,
                 spec->bit_depth, spec->color_type,
                 spec->interlaced ? PNG_INTERLACE_ADAM7 : PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    if (spec->color_type == 3) {
        png_color colors[256];
        for (int i = 0; i < spec->palette_size && i < 256; i++) {
            colors[i].red = spec->palette[3 * i];
            colors[i].green = spec->palette[3 * i + 1];
            colors[i].blue = spec->palette[3 * i + 2];
        }
        png_set_PLTE(job->png, job->info, colors, spec->palette_size);
    }
    png_write_info(job->png, job->info);
    if (spec->bit_depth < 8) png_set_packing(job->png); /* rows hold one sample per byte */
    int passes = png_set_interlace_handling(job->png);
    size_t values = (size_t)spec->width * channels;
    for (int pass = 0; pass < passes; pass++) {
        for (int y = 0; y < spec->height; y++) {
            const uint16_t *in = spec->samples + (size_t)y * values;
            for (size_t i = 0; i < values; i++) {
                if (spec->bit_depth == 16) {
                    job->row[2 * i] = (uint8_t)(in[i] >> 8); /* PNG is big-endian */
                    job->row[2 * i + 1] = (uint8_t)(in[i] & 0xff);
                } else {
                    job->row[i] = (uint8_t)in[i];
                }
            }
            png_write_row(job->png, job->row);
        }
    }
    png_write_end(job->png, NULL);
    return 0;
}

int dt_testgen_write_png(const char *path, const dt_testgen_png *spec, dt_error *err) {
    int channels = png_channels(spec->color_type);
    if (!channels || spec->width <= 0 || spec->height <= 0)
        return dt_fail(err, "%s: bad PNG description", path);
    png_write_job job = {0};
    job.file = fopen(path, "wb");
    if (!job.file) return dt_fail(err, "%s: cannot create: %s", path, strerror(errno));
    job.png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    if (job.png) job.info = png_create_info_struct(job.png);
    job.row = malloc((size_t)spec->width * channels * 2);
    int rc = -1;
    if (job.png && job.info && job.row) rc = run_png_write(&job, spec, channels);
    if (job.png) png_destroy_write_struct(&job.png, job.info ? &job.info : NULL);
    free(job.row);
    if (fclose(job.file) != 0) rc = -1;
    if (rc != 0) return dt_fail(err, "%s: PNG write failed", path);
    return 0;
}

int dt_testgen_write_bytes(const char *path, const void *data, size_t size, dt_error *err) {
    FILE *file = fopen(path, "wb");
    if (!file) return dt_fail(err, "%s: cannot create: %s", path, strerror(errno));
    size_t written = size ? fwrite(data, 1, size, file) : 0;
    if (fclose(file) != 0 || written != size) return dt_fail(err, "%s: write failed", path);
    return 0;
}

int dt_testgen_read_file(const char *path, uint8_t **bytes, size_t *size, dt_error *err) {
    *bytes = NULL;
    *size = 0;
    FILE *file = fopen(path, "rb");
    if (!file) return dt_fail(err, "%s: cannot open: %s", path, strerror(errno));
    size_t capacity = 1 << 16, used = 0;
    uint8_t *buffer = malloc(capacity);
    while (buffer) {
        size_t n = fread(buffer + used, 1, capacity - used, file);
        used += n;
        if (used < capacity) break;
        capacity *= 2;
        uint8_t *grown = realloc(buffer, capacity);
        if (!grown) free(buffer);
        buffer = grown;
    }
    fclose(file);
    if (!buffer) return dt_fail(err, "%s: out of memory", path);
    *bytes = buffer;
    *size = used;
    return 0;
}

int dt_testgen_truncated_copy(const char *src, const char *dst, size_t keep_bytes, dt_error *err) {
    uint8_t *bytes;
    size_t size;
    if (dt_testgen_read_file(src, &bytes, &size, err) != 0) return -1;
    if (keep_bytes > size) {
        free(bytes);
        return dt_fail(err, "%s: cannot keep %zu of %zu bytes", src, keep_bytes, size);
    }
    int rc = dt_testgen_write_bytes(dst, bytes, keep_bytes, err);
    free(bytes);
    return rc;
}

void dt_testgen_fill_solid(uint8_t *rgb, int width, int height, uint8_t r, uint8_t g, uint8_t b) {
    for (size_t i = 0; i < (size_t)width * height; i++) {
        rgb[3 * i] = r;
        rgb[3 * i + 1] = g;
        rgb[3 * i + 2] = b;
    }
}

static uint8_t clamp_to_byte(double v) {
    return (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v + 0.5);
}

void dt_testgen_fill_photo_like(uint8_t *rgb, int width, int height, uint64_t seed) {
    dt_rng rng = dt_rng_seeded(seed);
    double base[3], dx[3], dy[3], blob_x, blob_y, blob_r;
    for (int c = 0; c < 3; c++) {
        base[c] = 40 + 170 * dt_rng_uniform_double(&rng);
        dx[c] = (dt_rng_uniform_double(&rng) - 0.5) * 160;
        dy[c] = (dt_rng_uniform_double(&rng) - 0.5) * 160;
    }
    blob_x = dt_rng_uniform_double(&rng) * width;
    blob_y = dt_rng_uniform_double(&rng) * height;
    blob_r = (0.1 + 0.3 * dt_rng_uniform_double(&rng)) * (width < height ? width : height);
    for (int y = 0; y < height; y++) {
        for (int x = 0; x < width; x++) {
            double u = (double)x / width - 0.5, v = (double)y / height - 0.5;
            double ddx = x - blob_x, ddy = y - blob_y;
            double blob = exp(-(ddx * ddx + ddy * ddy) / (2 * blob_r * blob_r + 1));
            for (int c = 0; c < 3; c++) {
                double value = base[c] + dx[c] * u + dy[c] * v + 60 * blob * (c == 1 ? -1 : 1) +
                               12 * dt_rng_normal(&rng);
                rgb[((size_t)y * width + x) * 3 + c] = clamp_to_byte(value);
            }
        }
    }
}

/* HSV (hue in turns, s and v in [0, 1]) to RGB in [0, 255]. */
static void hue_to_rgb(double hue, double s, double v, double out[3]) {
    double h6 = fmod(hue, 1.0) * 6.0;
    int sector = (int)h6;
    double f = h6 - sector, p = v * (1 - s), q = v * (1 - s * f), t = v * (1 - s * (1 - f));
    double r, g, b;
    switch (sector) {
    case 0:
        r = v, g = t, b = p;
        break;
    case 1:
        r = q, g = v, b = p;
        break;
    case 2:
        r = p, g = v, b = t;
        break;
    case 3:
        r = p, g = q, b = v;
        break;
    case 4:
        r = t, g = p, b = v;
        break;
    default:
        r = v, g = p, b = q;
        break;
    }
    out[0] = 255 * r;
    out[1] = 255 * g;
    out[2] = 255 * b;
}

static void draw_learnable_image(uint8_t *rgb, int width, int height, int label, int n_classes,
                                 dt_rng *rng) {
    double colour[3];
    hue_to_rgb((double)label / n_classes, 0.75, 0.85, colour);
    double angle = 3.141592653589793 * label / n_classes;
    double cos_a = cos(angle), sin_a = sin(angle);
    double period = 6.0 + 2.0 * dt_rng_uniform_double(rng);
    double phase = 6.283185307179586 * dt_rng_uniform_double(rng);
    double brightness = 0.85 + 0.3 * dt_rng_uniform_double(rng);
    for (int y = 0; y < height; y++) {
        for (int x = 0; x < width; x++) {
            double along = (x * cos_a + y * sin_a) * 6.283185307179586 / period + phase;
            double stripe = sin(along) > 0 ? 1.0 : 0.45;
            for (int c = 0; c < 3; c++) {
                double value = colour[c] * stripe * brightness + 10 * dt_rng_normal(rng);
                rgb[((size_t)y * width + x) * 3 + c] = clamp_to_byte(value);
            }
        }
    }
}

int dt_testgen_learnable_imagefolder(const char *root, int n_classes, int per_class, int width,
                                     int height, uint64_t seed, dt_error *err) {
    if (n_classes < 1 || n_classes > 100 || per_class < 1 || width < 1 || height < 1)
        return dt_fail(err, "learnable imagefolder: bad arguments");
    uint8_t *rgb = malloc((size_t)width * height * 3);
    if (!rgb) return dt_fail(err, "learnable imagefolder: out of memory");
    int rc = 0;
    for (int label = 0; label < n_classes && rc == 0; label++) {
        char dir[4096];
        snprintf(dir, sizeof dir, "%s/class%02d", root, label);
        rc = dt_make_directories(dir, err);
        for (int i = 0; i < per_class && rc == 0; i++) {
            dt_rng rng = dt_rng_seeded(dt_rng_mix(dt_rng_mix(seed, (uint64_t)label), (uint64_t)i));
            draw_learnable_image(rgb, width, height, label, n_classes, &rng);
            char path[4200];
            snprintf(path, sizeof path, "%s/img%04d.jpg", dir, i);
            rc = dt_testgen_write_jpeg(path, rgb, width, height, 3, 90, 0, err);
        }
    }
    free(rgb);
    return rc;
}

uint8_t *dt_testgen_safetensors_data(const char *path, size_t *size) {
    uint8_t *bytes;
    size_t total;
    dt_error err;
    if (dt_testgen_read_file(path, &bytes, &total, &err) != 0) return NULL;
    if (total < 8) {
        free(bytes);
        return NULL;
    }
    uint64_t header = 0;
    for (int i = 0; i < 8; i++) header |= (uint64_t)bytes[i] << (8 * i);
    if (header > total - 8) {
        free(bytes);
        return NULL;
    }
    *size = total - 8 - (size_t)header;
    memmove(bytes, bytes + 8 + header, *size);
    return bytes;
}
