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
 * gives exactly the pixels a full resize followed by the crop would.
 *
 * This file holds the public entry points and the square modes' geometry; the coefficient
 * plans are in resize_plan.c (cached per thread by resize_cache.c), the passes in
 * resize_scalar.c (the reference) and resize_avx2.c, and resize_run.c puts them together. */
#include "resize_internal.h"

#include <math.h>

int dt_image_resize_region(const dt_image *src, int x, int y, int width, int height, int out_width,
                           int out_height, uint8_t *dst, dt_error *err) {
    dt_resize_request req = {
        .region_x = x,
        .region_y = y,
        .region_width = width,
        .region_height = height,
        .out_width = out_width,
        .out_height = out_height,
        .window_width = out_width,
        .window_height = out_height,
        .kernels = DT_RESIZE_KERNELS_AUTO,
    };
    return dt_resize_run(src, &req, dst, err);
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

int dt_resize_square_request(const dt_image *src, dt_resize_mode mode, int size,
                             dt_resize_request *req, dt_error *err) {
    if (!src || !src->pixels || src->width <= 0 || src->height <= 0)
        return dt_fail(err, "resize: empty source image");
    if (size <= 0 || size > 16384) return dt_fail(err, "resize: bad output size %d", size);
    *req = (dt_resize_request){
        .region_width = src->width,
        .region_height = src->height,
        .out_width = size,
        .out_height = size,
        .window_width = size,
        .window_height = size,
        .kernels = DT_RESIZE_KERNELS_AUTO,
    };
    if (mode == DT_RESIZE_SQUASH) return 0;
    /* torchvision: Resize(short) keeps the aspect ratio with the long side
     * int(short * long / short_in), then CenterCrop offsets int(round((h - size) / 2.0)). */
    int short_side = dt_center_resize_short_side(size);
    double long_side = src->width <= src->height ? (double)short_side * src->height / src->width
                                                 : (double)short_side * src->width / src->height;
    if (long_side > 1e9)
        return dt_fail(err, "resize: %dx%d image is too elongated for resize=center", src->width,
                       src->height);
    if (src->width <= src->height) {
        req->out_width = short_side;
        req->out_height = (int)long_side;
    } else {
        req->out_height = short_side;
        req->out_width = (int)long_side;
    }
    req->window_x = python_round_half(req->out_width - size);
    req->window_y = python_round_half(req->out_height - size);
    return 0;
}

int dt_image_resize_to_square(const dt_image *src, dt_resize_mode mode, int size, uint8_t *dst,
                              dt_error *err) {
    dt_resize_request req;
    if (dt_resize_square_request(src, mode, size, &req, err) != 0) return -1;
    return dt_resize_run(src, &req, dst, err);
}
