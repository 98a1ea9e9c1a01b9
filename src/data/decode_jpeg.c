/* JPEG decoding with libjpeg(-turbo) into RGB: errors and corrupt-data warnings both end the
 * decode with a message, the pixel limit is checked from the header before any allocation,
 * grayscale and CMYK/YCCK become RGB as Pillow's convert("RGB") does, and big images can be
 * decoded at a reduced DCT scale. */
#include "decode_internal.h"

#include <setjmp.h>
#include <stdio.h> /* jpeglib.h needs FILE and size_t first */
#include <stdlib.h>
#include <string.h>

#include <jpeglib.h>

/* A progressive JPEG with more scans than this is refused: such files are crafted to make
 * decoding take minutes (libjpeg-turbo's tjbench -limitscans uses the same bound). */
#define DT_MAX_PROGRESSIVE_SCANS 500

typedef struct jpeg_failure {
    struct jpeg_error_mgr manager; /* first member: libjpeg hands us a pointer to it */
    jmp_buf jump;
    char message[JMSG_LENGTH_MAX + 32];
} jpeg_failure;

/* Everything the decode allocates lives here, outside the function that calls setjmp, so it
 * keeps its value when libjpeg longjmps out. */
typedef struct jpeg_job {
    struct jpeg_decompress_struct cinfo;
    struct jpeg_progress_mgr progress;
    jpeg_failure failure;
    int created;
    uint8_t *pixels;
    uint8_t *rows_buffer; /* rec_outbuf_height rows of native samples (gray or CMYK) */
    size_t reserved;      /* of the decode budget */
} jpeg_job;

static void on_jpeg_error(j_common_ptr cinfo) {
    jpeg_failure *failure = (jpeg_failure *)cinfo->err;
    (*cinfo->err->format_message)(cinfo, failure->message);
    longjmp(failure->jump, 1);
}

/* msg_level -1 is a warning, which libjpeg emits for corrupt data it can skip over
 * ("Premature end of JPEG file", "Corrupt JPEG data: ..."): the file counts as bad. Trace
 * messages (msg_level >= 0) are ignored. */
static void on_jpeg_message(j_common_ptr cinfo, int msg_level) {
    if (msg_level >= 0) return;
    jpeg_failure *failure = (jpeg_failure *)cinfo->err;
    char text[JMSG_LENGTH_MAX];
    (*cinfo->err->format_message)(cinfo, text);
    snprintf(failure->message, sizeof failure->message, "corrupt data: %s", text);
    longjmp(failure->jump, 1);
}

static void on_jpeg_progress(j_common_ptr cinfo) {
    if (!cinfo->is_decompressor) return;
    j_decompress_ptr dinfo = (j_decompress_ptr)cinfo;
    if (dinfo->input_scan_number > DT_MAX_PROGRESSIVE_SCANS) {
        jpeg_failure *failure = (jpeg_failure *)cinfo->err;
        snprintf(failure->message, sizeof failure->message,
                 "more than %d progressive scans (refused)", DT_MAX_PROGRESSIVE_SCANS);
        longjmp(failure->jump, 1);
    }
}

static uint8_t muldiv255(int a, int b) {
    int t = a * b + 128; /* Pillow's MULDIV255: round(a * b / 255) */
    return (uint8_t)(((t >> 8) + t) >> 8);
}

static uint8_t clip8(int v) {
    return (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
}

/* Pillow opens every 4-component JPEG with rawmode "CMYK;I" (Adobe convention: stored
 * samples are inverted ink) and converts CMYK to RGB as
 *     R = (255 - K) - round(C * (255 - K) / 255), likewise G from M and B from Y.
 * With C = 255 - stored_c and 255 - K = stored_k this is done here on the stored samples. */
static void cmyk_row_to_rgb(const uint8_t *cmyk, int width, uint8_t *rgb) {
    for (int x = 0; x < width; x++, cmyk += 4, rgb += 3) {
        int not_k = cmyk[3];
        for (int c = 0; c < 3; c++) rgb[c] = clip8(not_k - muldiv255(255 - cmyk[c], not_k));
    }
}

static void gray_row_to_rgb(const uint8_t *gray, int width, uint8_t *rgb) {
    for (int x = 0; x < width; x++, rgb += 3) rgb[0] = rgb[1] = rgb[2] = gray[x];
}

/* Largest DCT reduction 1/8, 1/4 or 1/2 whose output still covers the minimum size. */
static unsigned choose_scale_denominator(unsigned width, unsigned height, int min_width,
                                         int min_height) {
    if (min_width <= 0 || min_height <= 0) return 1;
    static const unsigned denominators[] = {8, 4, 2};
    for (size_t i = 0; i < sizeof denominators / sizeof denominators[0]; i++) {
        unsigned d = denominators[i];
        unsigned scaled_width = (width + d - 1) / d, scaled_height = (height + d - 1) / d;
        if (scaled_width >= (unsigned)min_width && scaled_height >= (unsigned)min_height) return d;
    }
    return 1;
}

/* Returns 0 with job->pixels filled, or -1 with job->failure.message set. */
static int run_jpeg_decode(jpeg_job *job, const uint8_t *bytes, size_t size, int min_width,
                           int min_height, int *out_width, int *out_height) {
    struct jpeg_decompress_struct *cinfo = &job->cinfo;
    cinfo->err = jpeg_std_error(&job->failure.manager);
    job->failure.manager.error_exit = on_jpeg_error;
    job->failure.manager.emit_message = on_jpeg_message;
    if (setjmp(job->failure.jump)) return -1;

    jpeg_create_decompress(cinfo);
    job->created = 1;
    job->progress.progress_monitor = on_jpeg_progress;
    cinfo->progress = &job->progress;
    jpeg_mem_src(cinfo, bytes, (unsigned long)size);
    if (jpeg_read_header(cinfo, TRUE) != JPEG_HEADER_OK) {
        snprintf(job->failure.message, sizeof job->failure.message, "no image in the stream");
        return -1;
    }
    uint64_t pixel_count = (uint64_t)cinfo->image_width * cinfo->image_height;
    if (pixel_count > DT_MAX_IMAGE_PIXELS) {
        snprintf(job->failure.message, sizeof job->failure.message,
                 "image is %ux%u = %llu pixels, more than the limit of %u", cinfo->image_width,
                 cinfo->image_height, (unsigned long long)pixel_count, DT_MAX_IMAGE_PIXELS);
        return -1;
    }

    int native_components;
    switch (cinfo->jpeg_color_space) {
    case JCS_GRAYSCALE:
        cinfo->out_color_space = JCS_GRAYSCALE;
        native_components = 1;
        break;
    case JCS_YCbCr:
    case JCS_RGB:
        cinfo->out_color_space = JCS_RGB;
        native_components = 3;
        break;
    case JCS_CMYK:
    case JCS_YCCK:
        cinfo->out_color_space = JCS_CMYK;
        native_components = 4;
        break;
    default:
        snprintf(job->failure.message, sizeof job->failure.message,
                 "unsupported JPEG colour space (%d components)", cinfo->num_components);
        return -1;
    }
    unsigned denominator =
        choose_scale_denominator(cinfo->image_width, cinfo->image_height, min_width, min_height);
    cinfo->scale_num = 1;
    cinfo->scale_denom = denominator;
    cinfo->dct_method = JDCT_ISLOW; /* what Pillow uses, so full-size decodes match it */

    /* the output pixels and rows, and for a progressive file libjpeg's whole-image coefficient
     * buffer (2 bytes per coefficient, at most one per sample of every component) */
    jpeg_calc_output_dimensions(cinfo);
    job->reserved = (size_t)cinfo->output_width * cinfo->output_height * 3 +
                    (size_t)cinfo->output_width * 4 * 16;
    if (cinfo->progressive_mode)
        job->reserved += (size_t)pixel_count * (size_t)cinfo->num_components * 2;
    dt_decode_budget_acquire(job->reserved);
    jpeg_start_decompress(cinfo);
    if (cinfo->output_components != native_components) {
        snprintf(job->failure.message, sizeof job->failure.message,
                 "unexpected %d output components", cinfo->output_components);
        return -1;
    }
    int width = (int)cinfo->output_width, height = (int)cinfo->output_height;
    int batch_rows = cinfo->rec_outbuf_height > 0 ? cinfo->rec_outbuf_height : 1;
    if (batch_rows > 16) batch_rows = 16;
    job->pixels = malloc((size_t)width * height * 3);
    if (native_components != 3)
        job->rows_buffer = malloc((size_t)width * native_components * batch_rows);
    if (!job->pixels || (native_components != 3 && !job->rows_buffer)) {
        snprintf(job->failure.message, sizeof job->failure.message,
                 "out of memory for %dx%d pixels", width, height);
        return -1;
    }
    JSAMPROW rows[16];
    while (cinfo->output_scanline < cinfo->output_height) {
        int first = (int)cinfo->output_scanline;
        int wanted = height - first < batch_rows ? height - first : batch_rows;
        for (int r = 0; r < wanted; r++) {
            rows[r] = native_components == 3
                          ? job->pixels + (size_t)(first + r) * width * 3
                          : job->rows_buffer + (size_t)r * width * native_components;
        }
        int got = (int)jpeg_read_scanlines(cinfo, rows, (JDIMENSION)wanted);
        if (got <= 0) {
            snprintf(job->failure.message, sizeof job->failure.message,
                     "decoder returned no rows at row %d", first);
            return -1;
        }
        for (int r = 0; r < got && native_components != 3; r++) {
            uint8_t *dst = job->pixels + (size_t)(first + r) * width * 3;
            if (native_components == 1)
                gray_row_to_rgb(rows[r], width, dst);
            else
                cmyk_row_to_rgb(rows[r], width, dst);
        }
    }
    jpeg_finish_decompress(cinfo);
    *out_width = width;
    *out_height = height;
    return 0;
}

int dt_decode_jpeg(const uint8_t *bytes, size_t size, const char *name, int min_width,
                   int min_height, dt_image *img, dt_error *err) {
    jpeg_job *job = calloc(1, sizeof *job);
    if (!job) return dt_fail(err, "%s: out of memory", name);
    int width = 0, height = 0;
    int rc = run_jpeg_decode(job, bytes, size, min_width, min_height, &width, &height);
    if (job->created) jpeg_destroy_decompress(&job->cinfo);
    free(job->rows_buffer);
    /* only the pixels stay reserved */
    size_t kept = rc == 0 ? (size_t)width * (size_t)height * 3 : 0;
    dt_decode_budget_release(job->reserved - kept);
    if (rc != 0) {
        free(job->pixels);
        dt_fail(err, "%s: JPEG: %s", name, job->failure.message);
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
