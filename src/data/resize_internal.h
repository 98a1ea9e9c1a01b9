/* Internals of the antialiased resize (resize*.c), shared with the tests: per-axis coefficient
 * plans and their per-thread cache, the scalar reference passes and the AVX2 passes.
 *
 * Every path computes, for each output value, exactly Pillow's 32-bit fixed-point result
 * ((1 << 21) + sum(pixel * tap)) >> 22 clamped to 0..255; the SIMD passes only regroup that
 * integer arithmetic (each tap split in two exact halves, see below, so that pairs of 8- or
 * 16-bit products are summed by one instruction), so every path is bit-identical. */
#ifndef DTRAIN_DATA_RESIZE_INTERNAL_H
#define DTRAIN_DATA_RESIZE_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "dtrain/data.h"

#define DT_RESIZE_PRECISION_BITS 22
#define DT_RESIZE_ROUNDING (1 << (DT_RESIZE_PRECISION_BITS - 1))
#define DT_RESIZE_LOW_BITS 15 /* a tap = (high << 15) + low, both halves fit int16 */

/* Pillow's 8-bit result of a fixed-point sum (rounding term included): sum >> 22 clamped. */
static inline uint8_t dt_resize_clip_fixed(int32_t sum) {
    int32_t v = sum >> DT_RESIZE_PRECISION_BITS;
    return (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
}

/* The AVX2 passes are compiled (with a target attribute) on x86 by GCC and Clang, and run
 * after a runtime check of the CPU. */
#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
#define DT_RESIZE_HAVE_AVX2 1
#else
#define DT_RESIZE_HAVE_AVX2 0
#endif

/* Which code runs the passes. AUTO is what the library uses; the others exist so that the tests
 * can compare every SIMD kernel with the scalar reference on any size. */
typedef enum dt_resize_kernels {
    DT_RESIZE_KERNELS_AUTO,        /* AVX2 when the CPU has it, skipping identity passes */
    DT_RESIZE_KERNELS_SCALAR,      /* the reference: both passes in plain C, always */
    DT_RESIZE_KERNELS_SIMD_REDUCE, /* AVX2, horizontal reduce (else blocks, else pixels) */
    DT_RESIZE_KERNELS_SIMD_BLOCKS, /* AVX2, horizontal blocks (else pixels), vertical wide */
    DT_RESIZE_KERNELS_SIMD_PIXELS, /* AVX2, horizontal per output pixel, vertical wide */
} dt_resize_kernels;

/* Resize the region of the source to out_width x out_height and write the window of that
 * result to dst (window_height rows of window_width RGB pixels), mirrored left-right when
 * mirror is set (the same bytes as mirroring the written window afterwards). */
typedef struct dt_resize_request {
    int region_x, region_y, region_width, region_height;
    int out_width, out_height;
    int window_x, window_y, window_width, window_height;
    int mirror;
    dt_resize_kernels kernels;
} dt_resize_request;

/* Checks the request against src and runs it. */
int dt_resize_run(const dt_image *src, const dt_resize_request *req, uint8_t *dst, dt_error *err);

/* The request dt_image_resize_to_square makes (whole image, kernels AUTO, no mirror). */
int dt_resize_square_request(const dt_image *src, dt_resize_mode mode, int size,
                             dt_resize_request *req, dt_error *err);

/* 1 when this CPU runs the AVX2 passes. */
int dt_resize_simd_available(void);

/* ---- per-axis plans (resize_plan.c) ------------------------------------------------------ */

/* Two exact ways to split a tap so that 16-bit SIMD products sum to pixel * tap:
 *  - wide: tap = (tap >> 15) * 2^15 + (tap & 0x7fff), both halves int16 (vpmaddwd twice);
 *  - short: tap = high * 2^16 + low with high = (tap + 2^15) >> 16 in 0..64 (an int8, for
 *    vpmaddubsw on pixel bytes) and low in -2^15..2^15-1 (int16, vpmaddwd). For a window of at
 *    most DT_RESIZE_SHORT_WINDOW taps, all >= 0 (the triangle filter) and summing to 2^22 give
 *    or take their rounding, sum(pixel * high) stays below 255 * (64 + 16) and
 *    sum(pixel * low) >> 16 within +-4080, so both fit int16, and Pillow's
 *    (2^21 + sum) >> 22 equals ((sum(pixel * low) >> 16) + sum(pixel * high) + 32) >> 6
 *    computed in 16-bit lanes. */
#define DT_RESIZE_SHORT_WINDOW 32

static inline int32_t dt_resize_wide_low(int32_t tap) {
    return tap & 0x7fff;
}
static inline int32_t dt_resize_wide_high(int32_t tap) {
    return tap >> DT_RESIZE_LOW_BITS;
}
static inline int32_t dt_resize_short_high(int32_t tap) {
    return (tap + (1 << 15)) >> 16;
}
static inline int32_t dt_resize_short_low(int32_t tap) {
    return tap - dt_resize_short_high(tap) * 65536;
}

/* One step of the two short-split horizontal kernels (upscale and reduce), over two 128-bit
 * lanes: one byte shuffle of the 16 source bytes loaded at base[lane] makes 8 byte pairs per
 * lane, the short split of their taps weighs them (weight_high per byte, weight_low per pair of
 * bytes, in two groups of four pairs per lane).
 *  - upscale, for axes whose windows have at most two taps: 32 consecutive output values (of
 *    the interleaved RGB row) as two units (halves); lane l of half h holds the 8 values
 *    16l + 8h .. 16l + 8h + 7 (the order in which packing leaves the 32 bytes in place), each
 *    value's pair being {tap 0, tap 1}; weight_low[0] covers values 0-3, [1] values 4-7.
 *  - reduce, for downscaling by less than 2 (windows of at most four taps whose sources lie
 *    within 16 bytes per four values): 32 consecutive values as four units; lane l of unit u
 *    holds the 4 values 16l + 4u .. 16l + 4u + 3, their pairs {tap 0, tap 1} in bytes 0-7 and
 *    {tap 2, tap 3} in bytes 8-15; weight_low[0] covers taps 0-1, [1] taps 2-3. */
typedef struct dt_resize_short_unit {
    uint8_t shuffle[32];       /* source byte (relative to base) of each byte; 0x80: no tap */
    int8_t weight_high[32];    /* short high half of the tap of each byte */
    int16_t weight_low[2][16]; /* short low halves (see above for the two groups) */
    int32_t base[2];           /* byte offset in the source row of each lane's 16 bytes */
    int32_t padding[6];
} dt_resize_short_unit;

/* Horizontal block kernel: 32 consecutive output values (of the interleaved RGB row) as four
 * quads of two 128-bit lanes. Lane 0 of quad q holds values 4q..4q+3 and lane 1 values
 * 16+4q..16+4q+3, the order in which packing the four quads' sums leaves the 32 bytes in place.
 * In each lane one byte shuffle of the 16 source bytes loaded at base[lane] makes, per value,
 * the 16-bit words of its taps 2p and 2p+1 (pair p of the block). */
typedef struct dt_resize_block_quad {
    uint8_t shuffle[32];     /* per lane: source byte (relative to base) of each word's low
                                byte; 0x80 (zero) for the high bytes and missing taps */
    int16_t weight_low[16];  /* tap & 0x7fff, for the same words */
    int16_t weight_high[16]; /* tap >> 15 */
    int32_t base[2];         /* byte offset in the source row of each lane's 16 bytes */
    int32_t padding[6];
} dt_resize_block_quad;

/* Horizontal pixel kernel: one output pixel, four taps (two per 128-bit lane), as 16-bit
 * words {t0, t1} x {R, G, B} then {0, 0}, lane 1 for taps 2 and 3. */
typedef struct dt_resize_pixel_group {
    int16_t weight_low[16];
    int16_t weight_high[16];
} dt_resize_pixel_group;

/* The coefficients of one axis: outputs [window_start, window_start + window_size) of an
 * in_size -> out_size resize, in reverse order when mirror is set. */
typedef struct dt_resize_axis {
    int in_size, out_size, window_start, window_size, mirror; /* the cache key */
    int *first;                                               /* per output: first input used */
    int *count;         /* per output: number of inputs used */
    size_t *tap_offset; /* per output: index of its first tap in taps */
    int32_t *taps;      /* Pillow's fixed-point weights, 22 fractional bits */
    int max_count;
    int is_identity; /* in == out over the whole axis: output i is input i */
    size_t bytes;    /* memory held, tables built on demand included */
    /* vertical pass, built on first use: per output ceil(count / 2) pairs of taps {a, b}, each
     * as two int32: wide split {low a | low b << 16, high a | high b << 16} for every output,
     * and the short split {low a | low b << 16, high a | high b << 8} for outputs with at most
     * DT_RESIZE_SHORT_WINDOW taps */
    int32_t *vertical_wide, *vertical_short;
    size_t *pair_offset;
    /* the SIMD horizontal kernels below work in blocks of 32 output values */
    int horizontal_blocks; /* ceil(3 * window_size / 32) */
    /* horizontal upscale kernel, built on first use when every window has <= 2 taps and every
     * lane's sources lie within 16 bytes */
    dt_resize_short_unit *upscale; /* [block][half] */
    int upscale_impossible;
    /* horizontal reduce kernel, built on first use when every window has <= 4 taps and every
     * lane's sources lie within 16 bytes */
    dt_resize_short_unit *reduce; /* [block][unit] */
    int reduce_impossible;
    /* horizontal block kernel, built on first use unless some block spans > 16 bytes */
    dt_resize_block_quad *blocks; /* [block][quad][pair] */
    int block_pairs;              /* pairs of taps per block */
    int blocks_impossible;
    /* horizontal pixel kernel, built on first use */
    dt_resize_pixel_group *groups;
    size_t *group_offset;    /* per output: index of its first group; it has ceil(count / 4) */
    size_t horizontal_reach; /* bytes the built horizontal kernels may read from a row start */
} dt_resize_axis;

int dt_resize_axis_build(int in_size, int out_size, int window_start, int window_size, int mirror,
                         dt_resize_axis **out);
void dt_resize_axis_free(dt_resize_axis *axis);
int dt_resize_axis_add_vertical_pairs(dt_resize_axis *axis);
/* These three return 0 with the tables built, 1 when the axis cannot use them, -1 when out of
 * memory. */
int dt_resize_axis_add_upscale(dt_resize_axis *axis);
int dt_resize_axis_add_reduce(dt_resize_axis *axis);
int dt_resize_axis_add_blocks(dt_resize_axis *axis);
int dt_resize_axis_add_groups(dt_resize_axis *axis);

/* ---- per-thread cache (resize_plan.c) ------------------------------------------------------ */

/* Plans and a scratch buffer kept by the calling thread between images: photos of a dataset
 * share a few sizes, and the tables cost about as much to build as a small resize. */
typedef struct dt_resize_cache dt_resize_cache;

/* The calling thread's cache (created on first use, freed when the thread exits), or NULL
 * when it cannot be allocated; every function below accepts NULL and then works uncached. */
dt_resize_cache *dt_resize_thread_cache(void);

/* The plan for the key, built on a miss. Release it with dt_resize_cache_release when done:
 * a plan too large to keep is freed then. Plans obtained in one call stay valid together. */
int dt_resize_cache_axis(dt_resize_cache *cache, int in_size, int out_size, int window_start,
                         int window_size, int mirror, dt_resize_axis **out);
void dt_resize_cache_release(dt_resize_cache *cache, dt_resize_axis *axis);

/* A buffer of at least bytes; valid until the next call on this cache. Release with
 * dt_resize_cache_release_scratch. */
uint8_t *dt_resize_cache_scratch(dt_resize_cache *cache, size_t bytes);
void dt_resize_cache_release_scratch(dt_resize_cache *cache, uint8_t *scratch);

/* ---- passes (resize_passes.c) -------------------------------------------------------------- */

/* Horizontal pass: rows of interleaved RGB at src (row pitch src_pitch) to rows of
 * 3 * axis->window_size values at dst (row pitch dst_pitch). */
void dt_resize_horizontal_scalar(const uint8_t *src, size_t src_pitch, int rows,
                                 const dt_resize_axis *axis, uint8_t *dst, size_t dst_pitch);

/* Vertical pass: output row y = taps of axis over src rows first[y] - first_row ... */
void dt_resize_vertical_scalar(const uint8_t *src, size_t src_pitch, int first_row, int values,
                               const dt_resize_axis *axis, uint8_t *dst, size_t dst_pitch);

#if DT_RESIZE_HAVE_AVX2
/* AVX2 passes. The horizontal ones read up to axis->horizontal_reach bytes from each row start
 * and write 3 * window_size values rounded up to a multiple of 32 bytes, plus one, per row
 * (dst_pitch must allow it); the callers make both safe. The vertical one reads and writes
 * only the values asked for. */
void dt_resize_horizontal_upscale_avx2(const uint8_t *src, size_t src_pitch, int rows,
                                       const dt_resize_axis *axis, uint8_t *dst, size_t dst_pitch);
void dt_resize_horizontal_reduce_avx2(const uint8_t *src, size_t src_pitch, int rows,
                                      const dt_resize_axis *axis, uint8_t *dst, size_t dst_pitch);
void dt_resize_horizontal_blocks_avx2(const uint8_t *src, size_t src_pitch, int rows,
                                      const dt_resize_axis *axis, uint8_t *dst, size_t dst_pitch);
void dt_resize_horizontal_pixels_avx2(const uint8_t *src, size_t src_pitch, int rows,
                                      const dt_resize_axis *axis, uint8_t *dst, size_t dst_pitch);
/* wide: only the wide split, as for windows of any size (the tests use it to cover it) */
void dt_resize_vertical_avx2(const uint8_t *src, size_t src_pitch, int first_row, int values,
                             const dt_resize_axis *axis, int wide, uint8_t *dst, size_t dst_pitch);
#endif

#endif
