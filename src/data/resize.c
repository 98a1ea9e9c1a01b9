/* Antialiased bilinear resize, bit-identical with Pillow's Image.resize(size, BILINEAR) (the
 * path torchvision's Resize takes on PIL images), plus the two square modes of data.resize.
 *
 * Pillow's algorithm (libImaging/Resample.c), reproduced exactly:
 *  - per axis, scale = in / out and filterscale = max(scale, 1); the triangle filter
 *    f(x) = max(0, 1 - |x|) is stretched to support = filterscale (so downscaling averages
 *    over all covered input pixels instead of aliasing);
 *  - output pixel i has center = (i + 0.5) * scale, inputs xmin = (int)(center - support + 0.5)
 *    (clamped to 0) up to (int)(center + support + 0.5) (clamped to in), weights
 *    f((x - center + 0.5) / filterscale) normalised to sum 1, then converted to fixed point
 *    with 22 fractional bits, rounding half away from zero;
 *  - the horizontal pass runs first and rounds to 8 bits ((sum + 2^21) >> 22, clamped to
 *    0..255), then the vertical pass does the same on its output.
 * Only the output window that is kept is computed (the center crop of resize=center), which
 * gives exactly the pixels a full resize followed by the crop would. */
#include "dtrain/data.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define PRECISION_BITS 22

typedef struct resample_axis {
    int *first;    /* per output index: first input index used */
    int *count;    /* per output index: number of inputs used */
    int32_t *taps; /* per output index: `stride` fixed-point weights */
    int stride;    /* max inputs per output */
} resample_axis;

static void resample_axis_free(resample_axis *axis) {
    free(axis->first);
    free(axis->count);
    free(axis->taps);
    memset(axis, 0, sizeof *axis);
}

static double triangle(double x) {
    if (x < 0.0) x = -x;
    return x < 1.0 ? 1.0 - x : 0.0;
}

/* Weights for outputs [window_start, window_start + window_size) of an in_size -> out_size
 * resize along one axis. */
static int resample_axis_make(int in_size, int out_size, int window_start, int window_size,
                              resample_axis *axis) {
    memset(axis, 0, sizeof *axis);
    double scale = (double)in_size / out_size;
    double filterscale = scale < 1.0 ? 1.0 : scale;
    double support = 1.0 * filterscale;
    int stride = (int)ceil(support) * 2 + 1;
    axis->stride = stride;
    axis->first = malloc(sizeof(int) * window_size);
    axis->count = malloc(sizeof(int) * window_size);
    axis->taps = malloc(sizeof(int32_t) * window_size * stride);
    double *weights = malloc(sizeof(double) * stride);
    if (!axis->first || !axis->count || !axis->taps || !weights) {
        free(weights);
        resample_axis_free(axis);
        return -1;
    }
    for (int w = 0; w < window_size; w++) {
        int i = window_start + w;
        double center = (i + 0.5) * scale;
        double inverse = 1.0 / filterscale;
        int xmin = (int)(center - support + 0.5);
        if (xmin < 0) xmin = 0;
        int xmax = (int)(center + support + 0.5);
        if (xmax > in_size) xmax = in_size;
        int n = xmax - xmin;
        if (n > stride) n = stride; /* cannot happen; keeps the buffer safe regardless */
        double total = 0.0;
        for (int x = 0; x < n; x++) {
            weights[x] = triangle((x + xmin - center + 0.5) * inverse);
            total += weights[x];
        }
        int32_t *taps = axis->taps + (size_t)w * stride;
        for (int x = 0; x < n; x++) {
            double k = total != 0.0 ? weights[x] / total : weights[x];
            double fixed = k * (1 << PRECISION_BITS);
            taps[x] = (int32_t)(k < 0 ? -0.5 + fixed : 0.5 + fixed);
        }
        for (int x = n; x < stride; x++) taps[x] = 0;
        axis->first[w] = xmin;
        axis->count[w] = n;
    }
    free(weights);
    return 0;
}

static uint8_t clip_fixed(int32_t sum) {
    int32_t v = sum >> PRECISION_BITS;
    return (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
}

/* Horizontal pass over `rows` rows starting at src (row pitch src_pitch bytes). */
static void resample_rows(const uint8_t *src, size_t src_pitch, int rows, const resample_axis *axis,
                          int out_width, uint8_t *dst) {
    for (int y = 0; y < rows; y++) {
        const uint8_t *in = src + (size_t)y * src_pitch;
        uint8_t *out = dst + (size_t)y * out_width * 3;
        for (int x = 0; x < out_width; x++) {
            const int32_t *taps = axis->taps + (size_t)x * axis->stride;
            const uint8_t *p = in + (size_t)axis->first[x] * 3;
            int32_t r = 1 << (PRECISION_BITS - 1), g = r, b = r;
            for (int k = 0; k < axis->count[x]; k++, p += 3) {
                r += p[0] * taps[k];
                g += p[1] * taps[k];
                b += p[2] * taps[k];
            }
            out[3 * x] = clip_fixed(r);
            out[3 * x + 1] = clip_fixed(g);
            out[3 * x + 2] = clip_fixed(b);
        }
    }
}

/* Vertical pass: src rows hold `row_values` bytes each; axis->first is relative to src. The
 * values go in blocks of 16 with a fixed-size accumulator, a loop shape compilers vectorise. */
#define VERTICAL_BLOCK 16
static void resample_columns(const uint8_t *src, size_t src_pitch, int row_values,
                             const resample_axis *axis, int out_height, uint8_t *dst) {
    for (int y = 0; y < out_height; y++) {
        const int32_t *taps = axis->taps + (size_t)y * axis->stride;
        const uint8_t *first_row = src + (size_t)axis->first[y] * src_pitch;
        uint8_t *out = dst + (size_t)y * row_values;
        int i = 0;
        for (; i + VERTICAL_BLOCK <= row_values; i += VERTICAL_BLOCK) {
            int32_t sum[VERTICAL_BLOCK];
            for (int j = 0; j < VERTICAL_BLOCK; j++) sum[j] = 1 << (PRECISION_BITS - 1);
            for (int k = 0; k < axis->count[y]; k++) {
                const uint8_t *in = first_row + (size_t)k * src_pitch + i;
                int32_t tap = taps[k];
                for (int j = 0; j < VERTICAL_BLOCK; j++) sum[j] += in[j] * tap;
            }
            for (int j = 0; j < VERTICAL_BLOCK; j++) out[i + j] = clip_fixed(sum[j]);
        }
        for (; i < row_values; i++) {
            int32_t sum = 1 << (PRECISION_BITS - 1);
            for (int k = 0; k < axis->count[y]; k++)
                sum += first_row[(size_t)k * src_pitch + i] * taps[k];
            out[i] = clip_fixed(sum);
        }
    }
}

/* Resizes the region (rx, ry, rw, rh) of src to out_w x out_h and writes the output window
 * (wx, wy, ww, wh) of that result to dst (wh rows of ww RGB pixels). */
static int resample_window(const dt_image *src, int rx, int ry, int rw, int rh, int out_w,
                           int out_h, int wx, int wy, int ww, int wh, uint8_t *dst, dt_error *err) {
    size_t src_pitch = (size_t)src->width * 3;
    const uint8_t *region = src->pixels + (size_t)ry * src_pitch + (size_t)rx * 3;
    resample_axis horizontal = {0}, vertical = {0};
    uint8_t *temp = NULL;
    int rc = -1;
    if (resample_axis_make(rw, out_w, wx, ww, &horizontal) != 0 ||
        resample_axis_make(rh, out_h, wy, wh, &vertical) != 0)
        goto out_of_memory;

    /* Rows of the region the vertical pass reads: [first_row, last_row). */
    int first_row = vertical.first[0];
    int last_row = vertical.first[wh - 1] + vertical.count[wh - 1];
    for (int y = 0; y < wh; y++) {
        if (vertical.first[y] < first_row) first_row = vertical.first[y];
        if (vertical.first[y] + vertical.count[y] > last_row)
            last_row = vertical.first[y] + vertical.count[y];
    }
    for (int y = 0; y < wh; y++) vertical.first[y] -= first_row;
    int temp_rows = last_row - first_row;

    temp = malloc((size_t)temp_rows * ww * 3);
    if (!temp) goto out_of_memory;
    resample_rows(region + (size_t)first_row * src_pitch, src_pitch, temp_rows, &horizontal, ww,
                  temp);
    resample_columns(temp, (size_t)ww * 3, ww * 3, &vertical, wh, dst);
    rc = 0;
    goto done;
out_of_memory:
    dt_fail(err, "resize: out of memory (%dx%d -> %dx%d)", rw, rh, out_w, out_h);
done:
    free(temp);
    resample_axis_free(&horizontal);
    resample_axis_free(&vertical);
    return rc;
}

int dt_image_resize_region(const dt_image *src, int x, int y, int width, int height, int out_width,
                           int out_height, uint8_t *dst, dt_error *err) {
    if (!src || !src->pixels || src->width <= 0 || src->height <= 0)
        return dt_fail(err, "resize: empty source image");
    if (x < 0 || y < 0 || width <= 0 || height <= 0 || x > src->width - width ||
        y > src->height - height)
        return dt_fail(err, "resize: region %dx%d at (%d, %d) outside the %dx%d image", width,
                       height, x, y, src->width, src->height);
    if (out_width <= 0 || out_height <= 0 || out_width > 65536 || out_height > 65536)
        return dt_fail(err, "resize: bad output size %dx%d", out_width, out_height);
    return resample_window(src, x, y, width, height, out_width, out_height, 0, 0, out_width,
                           out_height, dst, err);
}

int dt_center_resize_short_side(int size) {
    return (int)floor(size * 8.0 / 7.0 + 0.5);
}

/* Python's round(d / 2.0) for an integer d >= 0: halves go to the even neighbour. */
static int python_round_half(int d) {
    int half = d / 2;
    if (d % 2 == 0) return half;
    return half % 2 == 0 ? half : half + 1;
}

int dt_image_resize_to_square(const dt_image *src, dt_resize_mode mode, int size, uint8_t *dst,
                              dt_error *err) {
    if (!src || !src->pixels || src->width <= 0 || src->height <= 0)
        return dt_fail(err, "resize: empty source image");
    if (size <= 0 || size > 16384) return dt_fail(err, "resize: bad output size %d", size);
    if (mode == DT_RESIZE_SQUASH)
        return resample_window(src, 0, 0, src->width, src->height, size, size, 0, 0, size, size,
                               dst, err);
    /* torchvision: Resize(short) keeps the aspect ratio with the long side
     * int(short * long / short_in), then CenterCrop offsets int(round((h - size) / 2.0)). */
    int short_side = dt_center_resize_short_side(size);
    int out_w, out_h;
    double long_side = src->width <= src->height ? (double)short_side * src->height / src->width
                                                 : (double)short_side * src->width / src->height;
    if (long_side > 1e9)
        return dt_fail(err, "resize: %dx%d image is too elongated for resize=center", src->width,
                       src->height);
    if (src->width <= src->height) {
        out_w = short_side;
        out_h = (int)long_side;
    } else {
        out_h = short_side;
        out_w = (int)long_side;
    }
    int crop_y = python_round_half(out_h - size), crop_x = python_round_half(out_w - size);
    return resample_window(src, 0, 0, src->width, src->height, out_w, out_h, crop_x, crop_y, size,
                           size, dst, err);
}
