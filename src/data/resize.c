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
 * This file holds the public entry points, the square modes' geometry and the runner that puts a
 * request's plans and passes together; the coefficient plans and their per-thread cache are in
 * resize_plan.c, the passes (the scalar reference and AVX2) in resize_passes.c. */
#include "resize_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

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

/* ---- the runner ----
 * Runs one resize request: fetches the two axis plans, picks the passes (AVX2 or the scalar
 * reference), skips a pass whose axis is the identity (in size == out size: Pillow's weights
 * are then exactly {1, 0}, so the pass copies), and keeps the SIMD passes' over-reads inside
 * the source buffer. Horizontal pass first, on the rows the vertical pass needs, then vertical:
 * Pillow's order, whose 8-bit rounding in between the result depends on. */

int dt_resize_simd_available(void) {
#if DT_RESIZE_HAVE_AVX2
    return __builtin_cpu_supports("avx2") != 0;
#else
    return 0;
#endif
}

typedef enum horizontal_kind {
    HORIZONTAL_SCALAR,
    HORIZONTAL_UPSCALE,
    HORIZONTAL_REDUCE,
    HORIZONTAL_BLOCKS,
    HORIZONTAL_PIXELS
} horizontal_kind;

static void run_horizontal(horizontal_kind kind, const uint8_t *src, size_t src_pitch, int rows,
                           const dt_resize_axis *axis, uint8_t *dst, size_t dst_pitch) {
#if DT_RESIZE_HAVE_AVX2
    if (kind == HORIZONTAL_UPSCALE) {
        dt_resize_horizontal_upscale_avx2(src, src_pitch, rows, axis, dst, dst_pitch);
        return;
    }
    if (kind == HORIZONTAL_REDUCE) {
        dt_resize_horizontal_reduce_avx2(src, src_pitch, rows, axis, dst, dst_pitch);
        return;
    }
    if (kind == HORIZONTAL_BLOCKS) {
        dt_resize_horizontal_blocks_avx2(src, src_pitch, rows, axis, dst, dst_pitch);
        return;
    }
    if (kind == HORIZONTAL_PIXELS) {
        dt_resize_horizontal_pixels_avx2(src, src_pitch, rows, axis, dst, dst_pitch);
        return;
    }
#else
    (void)kind;
#endif
    dt_resize_horizontal_scalar(src, src_pitch, rows, axis, dst, dst_pitch);
}

/* Horizontal pass over rows [first_row, first_row + rows) of the region. Rows whose SIMD
 * over-read would leave the source buffer (the last ones; such a row is shorter than the reach)
 * are first copied into padded_row, horizontal_reach bytes, zeroed past the row. */
static void horizontal_pass(horizontal_kind kind, const dt_image *src, const uint8_t *region,
                            int region_width, int first_row, int rows, const dt_resize_axis *axis,
                            uint8_t *dst, size_t dst_pitch, uint8_t *padded_row) {
    size_t src_pitch = (size_t)src->width * 3;
    const uint8_t *buffer_end = src->pixels + src_pitch * (size_t)src->height;
    const uint8_t *first = region + (size_t)first_row * src_pitch;
    int direct = rows;
    if (kind != HORIZONTAL_SCALAR) {
        direct = 0;
        while (direct < rows && (size_t)(buffer_end - (first + (size_t)direct * src_pitch)) >=
                                    axis->horizontal_reach)
            direct++;
    }
    run_horizontal(kind, first, src_pitch, direct, axis, dst, dst_pitch);
    size_t row_bytes = (size_t)region_width * 3;
    if (row_bytes > axis->horizontal_reach) row_bytes = axis->horizontal_reach;
    for (int y = direct; y < rows; y++) {
        memset(padded_row, 0, axis->horizontal_reach);
        memcpy(padded_row, first + (size_t)y * src_pitch, row_bytes);
        run_horizontal(kind, padded_row, 0, 1, axis, dst + (size_t)y * dst_pitch, dst_pitch);
    }
}

static int check_request(const dt_image *src, const dt_resize_request *r, dt_error *err) {
    if (!src || !src->pixels || src->width <= 0 || src->height <= 0)
        return dt_fail(err, "resize: empty source image");
    if (r->region_x < 0 || r->region_y < 0 || r->region_width <= 0 || r->region_height <= 0 ||
        r->region_x > src->width - r->region_width || r->region_y > src->height - r->region_height)
        return dt_fail(err, "resize: region %dx%d at (%d, %d) outside the %dx%d image",
                       r->region_width, r->region_height, r->region_x, r->region_y, src->width,
                       src->height);
    if (r->out_width <= 0 || r->out_height <= 0)
        return dt_fail(err, "resize: bad output size %dx%d", r->out_width, r->out_height);
    if (r->window_x < 0 || r->window_y < 0 || r->window_width <= 0 || r->window_height <= 0 ||
        r->window_width > 65536 || r->window_height > 65536 ||
        r->window_x > r->out_width - r->window_width ||
        r->window_y > r->out_height - r->window_height)
        return dt_fail(err, "resize: window %dx%d at (%d, %d) outside the %dx%d output",
                       r->window_width, r->window_height, r->window_x, r->window_y, r->out_width,
                       r->out_height);
    return 0;
}

/* The fastest SIMD horizontal kernel the axis allows (or the one the tests force), its tables
 * built; HORIZONTAL_SCALAR when out of memory. */
static horizontal_kind choose_horizontal(dt_resize_axis *axis, dt_resize_kernels kernels) {
    int status = 1; /* 0 built, 1 not applicable, -1 out of memory */
    if (kernels == DT_RESIZE_KERNELS_AUTO) status = dt_resize_axis_add_upscale(axis);
    if (status == 0) return HORIZONTAL_UPSCALE;
    if (status > 0 &&
        (kernels == DT_RESIZE_KERNELS_AUTO || kernels == DT_RESIZE_KERNELS_SIMD_REDUCE))
        status = dt_resize_axis_add_reduce(axis);
    if (status == 0) return HORIZONTAL_REDUCE;
    if (status > 0 && kernels != DT_RESIZE_KERNELS_SIMD_PIXELS)
        status = dt_resize_axis_add_blocks(axis);
    if (status == 0) return HORIZONTAL_BLOCKS;
    if (status > 0 && dt_resize_axis_add_groups(axis) == 0) return HORIZONTAL_PIXELS;
    return HORIZONTAL_SCALAR;
}

#if DT_RESIZE_HAVE_AVX2
/* The tests' kernel sets that also force the wide split in the vertical pass. */
static int vertical_wide(dt_resize_kernels kernels) {
    return kernels == DT_RESIZE_KERNELS_SIMD_BLOCKS || kernels == DT_RESIZE_KERNELS_SIMD_PIXELS;
}
#endif

/* Both plans in hand: the passes. Returns -1 only when out of memory. */
static int run_passes(const dt_image *src, const dt_resize_request *req, dt_resize_axis *horizontal,
                      dt_resize_axis *vertical, dt_resize_cache *cache, uint8_t *dst) {
    int simd = req->kernels != DT_RESIZE_KERNELS_SCALAR && dt_resize_simd_available();
    int skip = req->kernels != DT_RESIZE_KERNELS_SCALAR;
    int skip_horizontal = skip && horizontal->is_identity;
    int skip_vertical = skip && vertical->is_identity;
    size_t src_pitch = (size_t)src->width * 3;
    const uint8_t *region =
        src->pixels + (size_t)req->region_y * src_pitch + (size_t)req->region_x * 3;
    int ww = req->window_width, wh = req->window_height, values = 3 * ww;
    size_t dst_pitch = (size_t)values;

    if (skip_horizontal) {
        const uint8_t *columns = region + (size_t)req->window_x * 3;
        if (skip_vertical) {
            for (int y = 0; y < wh; y++)
                memcpy(dst + (size_t)y * dst_pitch,
                       columns + (size_t)(req->window_y + y) * src_pitch, (size_t)values);
            return 0;
        }
#if DT_RESIZE_HAVE_AVX2
        int wide = vertical_wide(req->kernels);
        if (simd) {
            if (dt_resize_axis_add_vertical_pairs(vertical) != 0) return -1;
            dt_resize_vertical_avx2(columns, src_pitch, 0, values, vertical, wide, dst, dst_pitch);
            return 0;
        }
#endif
        dt_resize_vertical_scalar(columns, src_pitch, 0, values, vertical, dst, dst_pitch);
        return 0;
    }

    horizontal_kind kind = HORIZONTAL_SCALAR;
    if (simd) {
        kind = choose_horizontal(horizontal, req->kernels);
        if (kind == HORIZONTAL_SCALAR) return -1; /* out of memory */
        if (!skip_vertical && dt_resize_axis_add_vertical_pairs(vertical) != 0) return -1;
    }

    /* Rows of the region the vertical pass reads: [first_row, last_row). */
    int first_row = req->window_y, last_row = req->window_y + wh;
    if (!skip_vertical) {
        first_row = vertical->first[0];
        last_row = 0;
        for (int y = 0; y < wh; y++) {
            if (vertical->first[y] < first_row) first_row = vertical->first[y];
            if (vertical->first[y] + vertical->count[y] > last_row)
                last_row = vertical->first[y] + vertical->count[y];
        }
        if (last_row < first_row) last_row = first_row;
    }
    int rows = last_row - first_row;
    /* the SIMD horizontal passes write whole 32-byte blocks, or one byte past the values */
    size_t temp_pitch = ((size_t)values + 32) & ~(size_t)31;
    size_t temp_bytes = temp_pitch * (size_t)(rows > 0 ? rows : 1);
    size_t reach = horizontal->horizontal_reach;
    uint8_t *scratch = dt_resize_cache_scratch(cache, temp_bytes + reach);
    if (!scratch) return -1;
    uint8_t *temp = scratch, *padded_row = scratch + temp_bytes;
    horizontal_pass(kind, src, region, req->region_width, first_row, rows, horizontal, temp,
                    temp_pitch, padded_row);
    if (skip_vertical) {
        for (int y = 0; y < wh; y++)
            memcpy(dst + (size_t)y * dst_pitch, temp + (size_t)y * temp_pitch, (size_t)values);
    } else {
#if DT_RESIZE_HAVE_AVX2
        if (simd)
            dt_resize_vertical_avx2(temp, temp_pitch, first_row, values, vertical,
                                    vertical_wide(req->kernels), dst, dst_pitch);
        else
#endif
            dt_resize_vertical_scalar(temp, temp_pitch, first_row, values, vertical, dst,
                                      dst_pitch);
    }
    dt_resize_cache_release_scratch(cache, scratch);
    return 0;
}

int dt_resize_run(const dt_image *src, const dt_resize_request *req, uint8_t *dst, dt_error *err) {
    if (check_request(src, req, err) != 0) return -1;
    dt_resize_cache *cache = dt_resize_thread_cache();
    dt_resize_axis *horizontal = NULL, *vertical = NULL;
    int rc = -1;
    if (dt_resize_cache_axis(cache, req->region_width, req->out_width, req->window_x,
                             req->window_width, req->mirror != 0, &horizontal) == 0 &&
        dt_resize_cache_axis(cache, req->region_height, req->out_height, req->window_y,
                             req->window_height, 0, &vertical) == 0)
        rc = run_passes(src, req, horizontal, vertical, cache, dst);
    if (vertical != horizontal) dt_resize_cache_release(cache, vertical);
    dt_resize_cache_release(cache, horizontal);
    if (rc != 0)
        return dt_fail(err, "resize: out of memory (%dx%d -> %dx%d)", req->region_width,
                       req->region_height, req->out_width, req->out_height);
    return 0;
}
