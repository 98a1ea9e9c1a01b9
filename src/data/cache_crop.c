/* Random crops from the decoded-sample cache: the crop of a cached square, scaled to the
 * network's input size and mirrored for a flip, written straight into the batch slot in one
 * pass. The cached square is already resized (round(image_size * 8 / 7) for image_size), so a
 * crop is scaled down by at most 8/7 or up: a two-tap bilinear filter with 6-bit weights
 * (1/64 pixel) is enough here, and it is what makes the per-sample work a few vector
 * instructions per output byte instead of an antialiased resize. The source rows a crop needs
 * are resampled horizontally once each into a two-row ring, and each output row is blended from
 * two of them directly into dst.
 *
 * The AVX2 and AVX-512 paths compute exactly the scalar path's integers (vpmaddubsw sums two
 * products of a pixel byte and a 6-bit weight, at most 255 * 64, without saturation), so all
 * three are bit-identical and the test compares them. The AVX-512 one (with VBMI's byte
 * permute, which gathers a block's 64 tap bytes from one 64-byte window in one instruction where
 * AVX2 needs four loads and two in-lane shuffles) is taken when the CPU has it. */
#include "sample_cache_internal.h"

#include "resize_internal.h"

#include <string.h>

#define WEIGHT_BITS 6
#define WEIGHT_ONE (1 << WEIGHT_BITS)

/* Where each output of an in_size -> out_size scaling samples: input first[i] and first[i] + 1
 * (both inside 0..in_size - 1) with weights WEIGHT_ONE - frac[i] and frac[i]. Pixel centres
 * are aligned as in every resize here: input position (i + 0.5) * in / out - 0.5, clamped to
 * the edges, in 1/WEIGHT_ONE pixel, stepped without a division per output. */
static void axis_taps(int in_size, int out_size, int *first, int *frac) {
    const int64_t denominator = 2 * (int64_t)out_size, step = 2 * (int64_t)in_size * WEIGHT_ONE;
    const int64_t last = (int64_t)(in_size - 1) * WEIGHT_ONE;
    int64_t numerator = ((int64_t)in_size - out_size) * WEIGHT_ONE; /* output 0 */
    int64_t quotient = 0, remainder = 0;
    int exact = 0; /* quotient and remainder follow numerator once it is >= 0 */
    for (int i = 0; i < out_size; i++, numerator += step) {
        int64_t position = 0;
        if (numerator >= 0) {
            if (!exact) {
                quotient = numerator / denominator;
                remainder = numerator % denominator;
                exact = 1;
            }
            position = quotient;
            quotient += step / denominator;
            remainder += step % denominator;
            if (remainder >= denominator) {
                remainder -= denominator;
                quotient++;
            }
        }
        if (position > last) position = last;
        int index = (int)(position >> WEIGHT_BITS), fraction = (int)(position & (WEIGHT_ONE - 1));
        if (index >= in_size - 1) { /* the last input: its right neighbour gets no weight */
            index = in_size > 1 ? in_size - 2 : 0;
            fraction = in_size > 1 ? WEIGHT_ONE : 0;
        }
        if (fraction == WEIGHT_ONE) { /* weights (0, 64): a 64 does not fit vpmaddubsw's int8 */
            index++;
            fraction = 0;
        }
        first[i] = index;
        frac[i] = fraction;
    }
}

/* The horizontal taps of one output value: source bytes (in the square's row) and weights. */
typedef struct value_taps {
    int32_t byte0, byte1;
    int8_t weight0, weight1;
} value_taps;

/* The region pixels output pixel x blends (first[] and frac[] from axis_taps over the width). */
static inline int tap_from(const dt_cache_crop *c, int x) {
    return c->mirror ? c->out_size - 1 - x : x;
}
static inline int tap_next(const dt_cache_crop *c, const int *first, int from) {
    return first[from] + 1 < c->region_width ? first[from] + 1 : first[from];
}

static void horizontal_taps(const dt_cache_crop *c, const int *first, const int *frac,
                            value_taps *taps) {
    for (int x = 0; x < c->out_size; x++) {
        int from = tap_from(c, x), next = tap_next(c, first, from);
        for (int channel = 0; channel < 3; channel++) {
            value_taps *t = &taps[3 * x + channel];
            t->byte0 = 3 * (c->region_x + first[from]) + channel;
            t->byte1 = 3 * (c->region_x + next) + channel;
            t->weight0 = (int8_t)(WEIGHT_ONE - frac[from]);
            t->weight1 = (int8_t)frac[from];
        }
    }
}

static inline uint8_t blend(int a, int b, int weight0, int weight1) {
    return (uint8_t)((a * weight0 + b * weight1 + WEIGHT_ONE / 2) >> WEIGHT_BITS);
}

static void horizontal_row_scalar(const uint8_t *row, const value_taps *taps, int values,
                                  uint8_t *out) {
    for (int v = 0; v < values; v++)
        out[v] = blend(row[taps[v].byte0], row[taps[v].byte1], taps[v].weight0, taps[v].weight1);
}

static void vertical_row_scalar(const uint8_t *a, const uint8_t *b, int weight1, int values,
                                uint8_t *out) {
    for (int v = 0; v < values; v++) out[v] = blend(a[v], b[v], WEIGHT_ONE - weight1, weight1);
}

#if DT_RESIZE_HAVE_AVX2
#include <immintrin.h>

#define AVX2 __attribute__((target("avx2")))
#define AVX2_INLINE __attribute__((target("avx2"), always_inline))

/* A block of 32 output values as two halves of two 128-bit lanes: lane l of half h holds the
 * 8 values 16l + 8h .. 16l + 8h + 7 (so that packing the halves leaves the 32 bytes in order);
 * per value, its two source bytes and weights. A lane's bytes come from 32 source bytes at
 * base, as two 16-byte windows (8 values span up to 18 bytes when scaling down by 8/7): one
 * shuffle picks from the first window, one from the second, the other's index is 0x80 (zero). */
typedef struct crop_half {
    uint8_t shuffle[2][32]; /* [window][lane * 16 + byte] */
    int8_t weights[32];
    int32_t base[2];
} crop_half;

/* Fills the tables of every block; 0 when some lane's taps do not fit its 32 bytes (a scale
 * the cache never asks for) or a row is shorter than that, then the scalar path is used. */
static int build_halves(const value_taps *taps, int values, int row_bytes, crop_half *halves) {
    int blocks = (values + 31) / 32;
    for (int b = 0; b < blocks; b++)
        for (int h = 0; h < 2; h++) {
            crop_half *half = &halves[2 * b + h];
            for (int lane = 0; lane < 2; lane++) {
                int first_value = 32 * b + 16 * lane + 8 * h;
                int low = INT32_MAX, high = 0;
                for (int k = 0; k < 8 && first_value + k < values; k++) {
                    const value_taps *t = &taps[first_value + k];
                    if (t->byte0 < low) low = t->byte0;
                    if (t->byte1 > high) high = t->byte1;
                }
                if (low == INT32_MAX) low = high = 0; /* past the row: zero weights */
                int base = low + 32 <= row_bytes ? low : row_bytes - 32;
                if (base < 0 || high - base >= 32) return 0;
                half->base[lane] = base;
                for (int k = 0; k < 8; k++) {
                    int at = 16 * lane + 2 * k;
                    const value_taps *t = first_value + k < values ? &taps[first_value + k] : NULL;
                    int bytes[2] = {t ? t->byte0 - base : -1, t ? t->byte1 - base : -1};
                    for (int j = 0; j < 2; j++) {
                        half->shuffle[0][at + j] =
                            bytes[j] >= 0 && bytes[j] < 16 ? (uint8_t)bytes[j] : 0x80;
                        half->shuffle[1][at + j] = bytes[j] >= 16 ? (uint8_t)(bytes[j] - 16) : 0x80;
                    }
                    half->weights[at] = t ? t->weight0 : 0;
                    half->weights[at + 1] = t ? t->weight1 : 0;
                }
            }
        }
    return 1;
}

AVX2_INLINE static inline __m128i load16(const uint8_t *at) {
    return _mm_loadu_si128((const __m128i *)at);
}

AVX2_INLINE static inline __m256i half_result(const uint8_t *row, const crop_half *half) {
    const uint8_t *lane0 = row + half->base[0], *lane1 = row + half->base[1];
    __m256i first =
        _mm256_inserti128_si256(_mm256_castsi128_si256(load16(lane0)), load16(lane1), 1);
    __m256i second =
        _mm256_inserti128_si256(_mm256_castsi128_si256(load16(lane0 + 16)), load16(lane1 + 16), 1);
    __m256i bytes = _mm256_or_si256(
        _mm256_shuffle_epi8(first, _mm256_loadu_si256((const __m256i *)half->shuffle[0])),
        _mm256_shuffle_epi8(second, _mm256_loadu_si256((const __m256i *)half->shuffle[1])));
    __m256i sums = _mm256_maddubs_epi16(bytes, _mm256_loadu_si256((const __m256i *)half->weights));
    return _mm256_srli_epi16(_mm256_add_epi16(sums, _mm256_set1_epi16(WEIGHT_ONE / 2)),
                             WEIGHT_BITS);
}

/* out: whole blocks of 32 bytes (the ring rows are padded to them). */
AVX2 static void horizontal_row_avx2(const uint8_t *row, const crop_half *halves, int values,
                                     uint8_t *out) {
    for (int b = 0; 32 * b < values; b++) {
        __m256i packed = _mm256_packus_epi16(half_result(row, &halves[2 * b]),
                                             half_result(row, &halves[2 * b + 1]));
        _mm256_storeu_si256((__m256i *)(out + 32 * b), packed);
    }
}

AVX2 static void vertical_row_avx2(const uint8_t *a, const uint8_t *b, int weight1, int values,
                                   uint8_t *out) {
    const __m256i weights =
        _mm256_set1_epi16((int16_t)((weight1 << 8) | (WEIGHT_ONE - weight1))); /* bytes w0, w1 */
    const __m256i rounding = _mm256_set1_epi16(WEIGHT_ONE / 2);
    int v = 0;
    for (; v + 32 <= values; v += 32) {
        __m256i top = _mm256_loadu_si256((const __m256i *)(a + v));
        __m256i bottom = _mm256_loadu_si256((const __m256i *)(b + v));
        __m256i low = _mm256_maddubs_epi16(_mm256_unpacklo_epi8(top, bottom), weights);
        __m256i high = _mm256_maddubs_epi16(_mm256_unpackhi_epi8(top, bottom), weights);
        low = _mm256_srli_epi16(_mm256_add_epi16(low, rounding), WEIGHT_BITS);
        high = _mm256_srli_epi16(_mm256_add_epi16(high, rounding), WEIGHT_BITS);
        _mm256_storeu_si256((__m256i *)(out + v), _mm256_packus_epi16(low, high));
    }
    vertical_row_scalar(a + v, b + v, weight1, values - v, out + v);
}

#define AVX512 __attribute__((target("avx512f,avx512bw,avx512vbmi")))

int dt_cache_crop_avx512_available(void) {
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512vbmi");
}

/* A block of 32 output values for AVX-512: their 64 tap bytes are picked from the 64 source
 * bytes at base by one byte permute, in output order (value k's two bytes at 2k, 2k + 1). */
typedef struct crop_block {
    uint8_t permute[64];
    int8_t weights[64];
    int32_t base;
} crop_block;

/* Fills every block's table straight from the axis taps (the bytes and weights horizontal_taps
 * gives); 0 when some block's taps do not fit 64 bytes (a scale the cache never asks for) or a
 * row is shorter than that, then a narrower path is used. The region pixels a block reads are
 * monotonic in x (rising, or falling when mirrored), so its first and last pixels bound them. */
static int build_blocks(const dt_cache_crop *c, const int *first, const int *frac, int row_bytes,
                        crop_block *blocks) {
    int values = 3 * c->out_size, n_blocks = (values + 31) / 32;
    for (int b = 0; b < n_blocks; b++) {
        int last_value = 32 * b + 31 < values ? 32 * b + 31 : values - 1;
        int from_low = tap_from(c, 32 * b / 3), from_high = tap_from(c, last_value / 3);
        int low_pixel = first[from_low] < first[from_high] ? first[from_low] : first[from_high];
        int next_low = tap_next(c, first, from_low), next_high = tap_next(c, first, from_high);
        int high_pixel = next_low > next_high ? next_low : next_high;
        int low = 3 * (c->region_x + low_pixel), high = 3 * (c->region_x + high_pixel) + 2;
        int base = low + 64 <= row_bytes ? low : row_bytes - 64;
        if (base < 0 || high - base >= 64) return 0;
        blocks[b].base = base;
    }
    crop_block *last = &blocks[n_blocks - 1]; /* values past the row: zero weights */
    memset(last->permute, 0, sizeof last->permute);
    memset(last->weights, 0, sizeof last->weights);
    for (int x = 0; x < c->out_size; x++) {
        int from = tap_from(c, x);
        int byte0 = 3 * (c->region_x + first[from]),
            byte1 = 3 * (c->region_x + tap_next(c, first, from));
        for (int channel = 0; channel < 3; channel++) {
            int value = 3 * x + channel;
            crop_block *block = &blocks[value / 32];
            int at = 2 * (value % 32);
            block->permute[at] = (uint8_t)(byte0 + channel - block->base);
            block->permute[at + 1] = (uint8_t)(byte1 + channel - block->base);
            block->weights[at] = (int8_t)(WEIGHT_ONE - frac[from]);
            block->weights[at + 1] = (int8_t)frac[from];
        }
    }
    return 1;
}

/* out: whole blocks of 32 bytes (the ring rows are padded to them). */
AVX512 static void horizontal_row_avx512(const uint8_t *row, const crop_block *blocks, int values,
                                         uint8_t *out) {
    const __m512i rounding = _mm512_set1_epi16(WEIGHT_ONE / 2);
    for (int b = 0; 32 * b < values; b++) {
        const crop_block *block = &blocks[b];
        __m512i window = _mm512_loadu_si512((const void *)(row + block->base));
        __m512i bytes =
            _mm512_permutexvar_epi8(_mm512_loadu_si512((const void *)block->permute), window);
        __m512i sums =
            _mm512_maddubs_epi16(bytes, _mm512_loadu_si512((const void *)block->weights));
        sums = _mm512_srli_epi16(_mm512_add_epi16(sums, rounding), WEIGHT_BITS);
        _mm256_storeu_si256((__m256i *)(out + 32 * b), _mm512_cvtepi16_epi8(sums));
    }
}

AVX512 static void vertical_row_avx512(const uint8_t *a, const uint8_t *b, int weight1, int values,
                                       uint8_t *out) {
    const __m512i weights =
        _mm512_set1_epi16((int16_t)((weight1 << 8) | (WEIGHT_ONE - weight1))); /* bytes w0, w1 */
    const __m512i rounding = _mm512_set1_epi16(WEIGHT_ONE / 2);
    int v = 0;
    for (; v + 64 <= values; v += 64) {
        __m512i top = _mm512_loadu_si512((const void *)(a + v));
        __m512i bottom = _mm512_loadu_si512((const void *)(b + v));
        __m512i low = _mm512_maddubs_epi16(_mm512_unpacklo_epi8(top, bottom), weights);
        __m512i high = _mm512_maddubs_epi16(_mm512_unpackhi_epi8(top, bottom), weights);
        low = _mm512_srli_epi16(_mm512_add_epi16(low, rounding), WEIGHT_BITS);
        high = _mm512_srli_epi16(_mm512_add_epi16(high, rounding), WEIGHT_BITS);
        _mm512_storeu_si512((void *)(out + v), _mm512_packus_epi16(low, high));
    }
    vertical_row_avx2(a + v, b + v, weight1, values - v, out + v);
}
#else
int dt_cache_crop_avx512_available(void) {
    return 0;
}
#endif

size_t dt_cache_crop_scratch_bytes(int out_size, int side) {
    size_t values = (size_t)out_size * 3, padded = (values + 31) / 32 * 32;
    size_t taps = values * sizeof(value_taps) + 4 * (size_t)out_size * sizeof(int);
#if DT_RESIZE_HAVE_AVX2
    taps += padded / 16 * sizeof(crop_half) + padded / 32 * sizeof(crop_block) + 128;
#endif
    return taps + 2 * padded + (size_t)side * 3;
}

/* simd: the DT_CACHE_CROP_* path whose tables were built (tables: its crop_half or crop_block). */
static void horizontal_row(int simd, const uint8_t *row, const value_taps *taps, const void *tables,
                           int values, uint8_t *out) {
#if DT_RESIZE_HAVE_AVX2
    if (simd == DT_CACHE_CROP_AVX512) {
        horizontal_row_avx512(row, tables, values, out);
        return;
    }
    if (simd == DT_CACHE_CROP_AVX2) {
        horizontal_row_avx2(row, tables, values, out);
        return;
    }
#else
    (void)simd;
    (void)tables;
#endif
    horizontal_row_scalar(row, taps, values, out);
}

static void vertical_row(int simd, const uint8_t *a, const uint8_t *b, int weight1, int values,
                         uint8_t *out) {
#if DT_RESIZE_HAVE_AVX2
    if (simd == DT_CACHE_CROP_AVX512) {
        vertical_row_avx512(a, b, weight1, values, out);
        return;
    }
    if (simd == DT_CACHE_CROP_AVX2) {
        vertical_row_avx2(a, b, weight1, values, out);
        return;
    }
#else
    (void)simd;
#endif
    vertical_row_scalar(a, b, weight1, values, out);
}

/* The cached squares are far larger than the CPU's caches, so a crop's rows come from memory:
 * asking for a row a few rows ahead lets the loads of the rows in between overlap its fetch. */
#define PREFETCH_ROWS_AHEAD 4

static void prefetch_region_row(const uint8_t *square, int row_bytes, const dt_cache_crop *c,
                                int row) {
    if (row >= c->region_height) return;
    const uint8_t *start = square + (size_t)(c->region_y + row) * row_bytes + 3 * c->region_x;
    for (int at = 0; at < 3 * c->region_width + 63; at += 64) __builtin_prefetch(start + at, 0, 3);
}

/* Source rows the horizontal-first order resamples (each once: the rows needed only grow). */
static int rows_needed(const int *row_first, const int *row_frac, int out_size) {
    int count = 0, last = -1;
    for (int y = 0; y < out_size; y++)
        for (int k = 0; k < (row_frac[y] ? 2 : 1); k++)
            if (row_first[y] + k > last) {
                last = row_first[y] + k;
                count++;
            }
    return count;
}

int dt_cache_crop_run(const uint8_t *square, int side, const dt_cache_crop *c, int kernels,
                      uint8_t *scratch, uint8_t *dst) {
    if (c->region_x < 0 || c->region_y < 0 || c->region_width < 1 || c->region_height < 1 ||
        c->region_x + c->region_width > side || c->region_y + c->region_height > side ||
        c->out_size < 1)
        return -1;
    int values = 3 * c->out_size, row_bytes = 3 * side;
    size_t padded = ((size_t)values + 31) / 32 * 32;
    value_taps *taps = (value_taps *)scratch;
    int *first = (int *)(taps + values), *frac = first + c->out_size;
    int *row_first = frac + c->out_size, *row_frac = row_first + c->out_size;
    uint8_t *after_taps = (uint8_t *)(row_frac + c->out_size);
    axis_taps(c->region_width, c->out_size, first, frac);
    axis_taps(c->region_height, c->out_size, row_first, row_frac);
    void *halves = NULL;
    int simd = DT_CACHE_CROP_SCALAR;
#if DT_RESIZE_HAVE_AVX2
    crop_block *blocks = (crop_block *)(((uintptr_t)after_taps + 63) & ~(uintptr_t)63);
    crop_half *avx2_halves =
        (crop_half *)(((uintptr_t)(blocks + padded / 32) + 63) & ~(uintptr_t)63);
    after_taps = (uint8_t *)(avx2_halves + padded / 16);
    if (kernels >= DT_CACHE_CROP_AVX512 && dt_cache_crop_avx512_available() &&
        build_blocks(c, first, frac, row_bytes, blocks)) {
        simd = DT_CACHE_CROP_AVX512;
        halves = blocks;
    } else {
        horizontal_taps(c, first, frac, taps);
        if (kernels >= DT_CACHE_CROP_AVX2 && dt_resize_simd_available() &&
            build_halves(taps, values, row_bytes, avx2_halves)) {
            simd = DT_CACHE_CROP_AVX2;
            halves = avx2_halves;
        }
    }
#else
    (void)kernels;
    horizontal_taps(c, first, frac, taps);
#endif
    uint8_t *ring[2] = {after_taps, after_taps + padded}, *blended = after_taps + 2 * padded;

    if (rows_needed(row_first, row_frac, c->out_size) > c->out_size) {
        /* scaling down: blending two source rows first, then one horizontal pass per output
         * row, resamples fewer rows; the bytes the AVX2 lanes' 32-byte windows may read are
         * blended (an AVX-512 window's bytes outside the region are read but never picked) */
        int low = 3 * c->region_x - 32, high = 3 * (c->region_x + c->region_width) + 32;
        if (low < 0) low = 0;
        if (high > row_bytes) high = row_bytes;
        int prefetched = -1;
        for (int y = 0; y < c->out_size; y++) {
            for (; prefetched < row_first[y] + 1 + PREFETCH_ROWS_AHEAD; prefetched++)
                prefetch_region_row(square, row_bytes, c, prefetched + 1);
            const uint8_t *top = square + (size_t)(c->region_y + row_first[y]) * row_bytes;
            const uint8_t *row = top;
            if (row_frac[y]) {
                vertical_row(simd, top + low, top + row_bytes + low, row_frac[y], high - low,
                             blended + low);
                row = blended;
            }
            uint8_t *out = dst + (size_t)y * (size_t)values;
            if (values % 32 == 0) { /* whole blocks: straight into the row */
                horizontal_row(simd, row, taps, halves, values, out);
            } else {
                horizontal_row(simd, row, taps, halves, values, ring[0]);
                memcpy(out, ring[0], (size_t)values);
            }
        }
        return 0;
    }

    int ring_row[2] = {-1, -1}, prefetched = -1;
    for (int y = 0; y < c->out_size; y++) {
        int top = row_first[y], weight = row_frac[y];
        for (; prefetched < top + 1 + PREFETCH_ROWS_AHEAD; prefetched++)
            prefetch_region_row(square, row_bytes, c, prefetched + 1);
        int rows[2] = {top, top + 1 < c->region_height ? top + 1 : top};
        const uint8_t *resampled[2];
        for (int k = 0; k < (weight ? 2 : 1); k++) {
            int slot = ring_row[0] == rows[k] ? 0 : ring_row[1] == rows[k] ? 1 : -1;
            if (slot < 0) { /* the slot not holding the other row this output needs */
                slot = k == 1 ? (ring_row[0] == rows[0] ? 1 : 0) : (ring_row[0] == rows[1]);
                const uint8_t *source = square + (size_t)(c->region_y + rows[k]) * row_bytes;
                horizontal_row(simd, source, taps, halves, values, ring[slot]);
                ring_row[slot] = rows[k];
            }
            resampled[k] = ring[slot];
        }
        uint8_t *out = dst + (size_t)y * (size_t)values;
        if (weight)
            vertical_row(simd, resampled[0], resampled[1], weight, values, out);
        else
            memcpy(out, resampled[0], (size_t)values);
    }
    return 0;
}
