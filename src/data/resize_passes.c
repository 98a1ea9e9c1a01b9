/* The passes of the antialiased resize: the scalar reference (Pillow's ImagingResampleHorizontal
 * and ImagingResampleVertical for 8-bit RGB, one output value at a time: used where AVX2 is
 * missing and by the tests as the result every faster pass must reproduce, at the end of this
 * file) and the AVX2 passes. Each AVX2 pass computes exactly the integer sums of the reference,
 * with the taps split as resize_internal.h describes so that vpmaddubsw / vpmaddwd sum pairs of
 * 16-bit products without loss. They run only when the CPU has AVX2 (the functions carry the
 * target attribute; the rest of the library does not need it). */
#include "resize_internal.h"

#if DT_RESIZE_HAVE_AVX2

#include <immintrin.h>
#include <string.h>

#define AVX2 __attribute__((target("avx2")))
/* helpers: inlined into the kernels so that their vectors stay in registers */
#define AVX2_INLINE __attribute__((target("avx2"), always_inline))

/* (high << 15) + low, then Pillow's >> 22 (low already holds the rounding term). */
AVX2_INLINE static inline __m256i combine_halves(__m256i low, __m256i high) {
    return _mm256_srai_epi32(_mm256_add_epi32(_mm256_slli_epi32(high, DT_RESIZE_LOW_BITS), low),
                             DT_RESIZE_PRECISION_BITS);
}

/* Short split: 16 values' byte pairs (tap 0, tap 1), in lanes of 8, to their results as int16:
 * ((sum(pixel * low) >> 16) + sum(pixel * high) + 32) >> 6, the low sums of lane values 0-3
 * and 4-7 in low_first and low_second (int32), the high sums in high (int16). */
AVX2_INLINE static inline __m256i short_result(__m256i low_first, __m256i low_second,
                                               __m256i high) {
    __m256i low =
        _mm256_packs_epi32(_mm256_srai_epi32(low_first, 16), _mm256_srai_epi32(low_second, 16));
    return _mm256_srai_epi16(_mm256_add_epi16(_mm256_add_epi16(low, high), _mm256_set1_epi16(32)),
                             6);
}

AVX2_INLINE static inline __m256i load_lanes(const uint8_t *row, const int32_t *base) {
    __m128i lane0 = _mm_loadu_si128((const __m128i *)(row + base[0]));
    __m128i lane1 = _mm_loadu_si128((const __m128i *)(row + base[1]));
    return _mm256_inserti128_si256(_mm256_castsi128_si256(lane0), lane1, 1);
}

/* One half of an upscale block of one row, its tables already loaded. */
AVX2_INLINE static inline __m256i upscale_half(const uint8_t *row, const int32_t *base,
                                               __m256i shuffle, __m256i weight_high,
                                               __m256i weight_low_first,
                                               __m256i weight_low_second) {
    const __m256i zero = _mm256_setzero_si256();
    __m256i bytes = _mm256_shuffle_epi8(load_lanes(row, base), shuffle);
    __m256i high = _mm256_maddubs_epi16(bytes, weight_high);
    __m256i low_first = _mm256_madd_epi16(_mm256_unpacklo_epi8(bytes, zero), weight_low_first);
    __m256i low_second = _mm256_madd_epi16(_mm256_unpackhi_epi8(bytes, zero), weight_low_second);
    return short_result(low_first, low_second, high);
}

/* Half h of an upscale block for one row, or two rows sharing the table loads (rows 1 or 2). */
AVX2_INLINE static inline void upscale_half_rows(const uint8_t *in0, const uint8_t *in1, int rows,
                                                 const dt_resize_short_unit *half, __m256i *result0,
                                                 __m256i *result1) {
    __m256i shuffle = _mm256_loadu_si256((const __m256i *)half->shuffle);
    __m256i weight_high = _mm256_loadu_si256((const __m256i *)half->weight_high);
    __m256i weight_low_first = _mm256_loadu_si256((const __m256i *)half->weight_low[0]);
    __m256i weight_low_second = _mm256_loadu_si256((const __m256i *)half->weight_low[1]);
    *result0 =
        upscale_half(in0, half->base, shuffle, weight_high, weight_low_first, weight_low_second);
    if (rows == 2)
        *result1 = upscale_half(in1, half->base, shuffle, weight_high, weight_low_first,
                                weight_low_second);
}

AVX2_INLINE static inline void upscale_rows(const uint8_t *in0, const uint8_t *in1, int rows,
                                            const dt_resize_axis *axis, uint8_t *out0,
                                            uint8_t *out1) {
    const dt_resize_short_unit *half = axis->upscale;
    for (int b = 0; b < axis->horizontal_blocks; b++, half += 2) {
        __m256i first0, first1 = _mm256_setzero_si256(), second0, second1 = first1;
        upscale_half_rows(in0, in1, rows, &half[0], &first0, &first1);
        upscale_half_rows(in0, in1, rows, &half[1], &second0, &second1);
        _mm256_storeu_si256((__m256i *)(out0 + 32 * (size_t)b),
                            _mm256_packus_epi16(first0, second0));
        if (rows == 2)
            _mm256_storeu_si256((__m256i *)(out1 + 32 * (size_t)b),
                                _mm256_packus_epi16(first1, second1));
    }
}

AVX2 void dt_resize_horizontal_upscale_avx2(const uint8_t *src, size_t src_pitch, int rows,
                                            const dt_resize_axis *axis, uint8_t *dst,
                                            size_t dst_pitch) {
    int y = 0;
    for (; y + 2 <= rows; y += 2)
        upscale_rows(src + (size_t)y * src_pitch, src + (size_t)(y + 1) * src_pitch, 2, axis,
                     dst + (size_t)y * dst_pitch, dst + (size_t)(y + 1) * dst_pitch);
    if (y < rows)
        upscale_rows(src + (size_t)y * src_pitch, NULL, 1, axis, dst + (size_t)y * dst_pitch, NULL);
}

/* One unit of a reduce block of one row, its tables already loaded: the high sums (int16, per
 * lane taps 0-1 of the 4 values then taps 2-3) and the low sums >> 16 (int32). */
AVX2_INLINE static inline void reduce_unit(const uint8_t *row, const int32_t *base, __m256i shuffle,
                                           __m256i weight_high, __m256i weight_low_first,
                                           __m256i weight_low_second, __m256i *high, __m256i *low) {
    const __m256i zero = _mm256_setzero_si256();
    __m256i bytes = _mm256_shuffle_epi8(load_lanes(row, base), shuffle);
    *high = _mm256_maddubs_epi16(bytes, weight_high);
    *low = _mm256_srai_epi32(
        _mm256_add_epi32(_mm256_madd_epi16(_mm256_unpacklo_epi8(bytes, zero), weight_low_first),
                         _mm256_madd_epi16(_mm256_unpackhi_epi8(bytes, zero), weight_low_second)),
        16);
}

/* Units u and u + 1 to 16 results (int16, lane: the 4 values of unit u, then of unit u + 1). */
AVX2_INLINE static inline __m256i reduce_result(__m256i high0, __m256i low0, __m256i high1,
                                                __m256i low1) {
    __m256i high =
        _mm256_add_epi16(_mm256_unpacklo_epi64(high0, high1), _mm256_unpackhi_epi64(high0, high1));
    __m256i sum = _mm256_add_epi16(_mm256_packs_epi32(low0, low1), high);
    return _mm256_srai_epi16(_mm256_add_epi16(sum, _mm256_set1_epi16(32)), 6);
}

/* Unit u of a reduce block for one row, or two rows sharing the table loads (rows 1 or 2). */
AVX2_INLINE static inline void reduce_unit_rows(const uint8_t *in0, const uint8_t *in1, int rows,
                                                const dt_resize_short_unit *unit, __m256i *high0,
                                                __m256i *low0, __m256i *high1, __m256i *low1) {
    __m256i shuffle = _mm256_loadu_si256((const __m256i *)unit->shuffle);
    __m256i weight_high = _mm256_loadu_si256((const __m256i *)unit->weight_high);
    __m256i weight_low_first = _mm256_loadu_si256((const __m256i *)unit->weight_low[0]);
    __m256i weight_low_second = _mm256_loadu_si256((const __m256i *)unit->weight_low[1]);
    reduce_unit(in0, unit->base, shuffle, weight_high, weight_low_first, weight_low_second, high0,
                low0);
    if (rows == 2)
        reduce_unit(in1, unit->base, shuffle, weight_high, weight_low_first, weight_low_second,
                    high1, low1);
}

/* Units u and u + 1 of a reduce block to 16 results per row. */
AVX2_INLINE static inline void reduce_two_units(const uint8_t *in0, const uint8_t *in1, int rows,
                                                const dt_resize_short_unit *unit, __m256i *result0,
                                                __m256i *result1) {
    __m256i high00, low00, high01, low01;
    __m256i high10 = _mm256_setzero_si256(), low10 = high10, high11 = high10, low11 = high10;
    reduce_unit_rows(in0, in1, rows, unit, &high00, &low00, &high10, &low10);
    reduce_unit_rows(in0, in1, rows, unit + 1, &high01, &low01, &high11, &low11);
    *result0 = reduce_result(high00, low00, high01, low01);
    if (rows == 2) *result1 = reduce_result(high10, low10, high11, low11);
}

AVX2_INLINE static inline void reduce_rows(const uint8_t *in0, const uint8_t *in1, int rows,
                                           const dt_resize_axis *axis, uint8_t *out0,
                                           uint8_t *out1) {
    const dt_resize_short_unit *unit = axis->reduce;
    for (int b = 0; b < axis->horizontal_blocks; b++, unit += 4) {
        __m256i first0, first1 = _mm256_setzero_si256(), second0, second1 = first1;
        reduce_two_units(in0, in1, rows, unit, &first0, &first1);
        reduce_two_units(in0, in1, rows, unit + 2, &second0, &second1);
        _mm256_storeu_si256((__m256i *)(out0 + 32 * (size_t)b),
                            _mm256_packus_epi16(first0, second0));
        if (rows == 2)
            _mm256_storeu_si256((__m256i *)(out1 + 32 * (size_t)b),
                                _mm256_packus_epi16(first1, second1));
    }
}

AVX2 void dt_resize_horizontal_reduce_avx2(const uint8_t *src, size_t src_pitch, int rows,
                                           const dt_resize_axis *axis, uint8_t *dst,
                                           size_t dst_pitch) {
    int y = 0;
    for (; y + 2 <= rows; y += 2)
        reduce_rows(src + (size_t)y * src_pitch, src + (size_t)(y + 1) * src_pitch, 2, axis,
                    dst + (size_t)y * dst_pitch, dst + (size_t)(y + 1) * dst_pitch);
    if (y < rows)
        reduce_rows(src + (size_t)y * src_pitch, NULL, 1, axis, dst + (size_t)y * dst_pitch, NULL);
}

/* The 32 bytes of four quads' sums (see dt_resize_block_quad): in-lane packing puts them in
 * order. */
AVX2_INLINE static inline __m256i pack_quads(__m256i q0, __m256i q1, __m256i q2, __m256i q3) {
    return _mm256_packus_epi16(_mm256_packs_epi32(q0, q1), _mm256_packs_epi32(q2, q3));
}

/* One quad of one row: its 8 values' sums over all pairs of taps. */
AVX2_INLINE static inline __m256i quad_sums(const uint8_t *row, const dt_resize_block_quad *quad,
                                            int pairs) {
    __m256i low = _mm256_set1_epi32(DT_RESIZE_ROUNDING), high = _mm256_setzero_si256();
    for (int p = 0; p < pairs; p++, quad++) {
        __m256i words = _mm256_shuffle_epi8(load_lanes(row, quad->base),
                                            _mm256_loadu_si256((const __m256i *)quad->shuffle));
        low = _mm256_add_epi32(
            low, _mm256_madd_epi16(words, _mm256_loadu_si256((const __m256i *)quad->weight_low)));
        high = _mm256_add_epi32(
            high, _mm256_madd_epi16(words, _mm256_loadu_si256((const __m256i *)quad->weight_high)));
    }
    return combine_halves(low, high);
}

AVX2 void dt_resize_horizontal_blocks_avx2(const uint8_t *src, size_t src_pitch, int rows,
                                           const dt_resize_axis *axis, uint8_t *dst,
                                           size_t dst_pitch) {
    const int pairs = axis->block_pairs;
    for (int y = 0; y < rows; y++) {
        const uint8_t *in = src + (size_t)y * src_pitch;
        uint8_t *out = dst + (size_t)y * dst_pitch;
        const dt_resize_block_quad *quad = axis->blocks;
        for (int b = 0; b < axis->horizontal_blocks; b++, quad += 4 * pairs) {
            __m256i q0 = quad_sums(in, quad, pairs), q1 = quad_sums(in, quad + pairs, pairs);
            __m256i q2 = quad_sums(in, quad + 2 * pairs, pairs);
            __m256i q3 = quad_sums(in, quad + 3 * pairs, pairs);
            _mm256_storeu_si256((__m256i *)(out + 32 * (size_t)b), pack_quads(q0, q1, q2, q3));
        }
    }
}

AVX2 void dt_resize_horizontal_pixels_avx2(const uint8_t *src, size_t src_pitch, int rows,
                                           const dt_resize_axis *axis, uint8_t *dst,
                                           size_t dst_pitch) {
    /* 16 bytes from the first of four input pixels, to words {p0, p1} x {R, G, B}, 0, 0 in
     * lane 0 and {p2, p3} x {R, G, B}, 0, 0 in lane 1 */
    const __m256i spread = _mm256_setr_epi8(0, -128, 3, -128, 1, -128, 4, -128, 2, -128, 5, -128,
                                            -128, -128, -128, -128, 6, -128, 9, -128, 7, -128, 10,
                                            -128, 8, -128, 11, -128, -128, -128, -128, -128);
    const __m128i rounding = _mm_set1_epi32(DT_RESIZE_ROUNDING);
    for (int y = 0; y < rows; y++) {
        const uint8_t *in = src + (size_t)y * src_pitch;
        uint8_t *out = dst + (size_t)y * dst_pitch;
        for (int x = 0; x < axis->window_size; x++) {
            const dt_resize_pixel_group *group = axis->groups + axis->group_offset[x];
            const uint8_t *p = in + 3 * (size_t)axis->first[x];
            __m256i low = _mm256_setzero_si256(), high = _mm256_setzero_si256();
            for (int k = 0; k < axis->count[x]; k += 4, group++, p += 12) {
                __m256i bytes = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)p));
                __m256i words = _mm256_shuffle_epi8(bytes, spread);
                low = _mm256_add_epi32(
                    low, _mm256_madd_epi16(words,
                                           _mm256_loadu_si256((const __m256i *)group->weight_low)));
                high = _mm256_add_epi32(
                    high, _mm256_madd_epi16(
                              words, _mm256_loadu_si256((const __m256i *)group->weight_high)));
            }
            __m128i low4 = _mm_add_epi32(
                _mm_add_epi32(_mm256_castsi256_si128(low), _mm256_extracti128_si256(low, 1)),
                rounding);
            __m128i high4 =
                _mm_add_epi32(_mm256_castsi256_si128(high), _mm256_extracti128_si256(high, 1));
            __m128i sum =
                _mm_srai_epi32(_mm_add_epi32(_mm_slli_epi32(high4, DT_RESIZE_LOW_BITS), low4),
                               DT_RESIZE_PRECISION_BITS);
            __m128i packed = _mm_packs_epi32(sum, sum);
            int32_t rgbx = _mm_cvtsi128_si32(_mm_packus_epi16(packed, packed));
            memcpy(out + 3 * (size_t)x, &rgbx, 4); /* the 4th byte is overwritten next */
        }
    }
}

/* Bytes a and b of 32 values to the {a, b} word pairs of values 0-3|16-19, 4-7|20-23,
 * 8-11|24-27 and 12-15|28-31 (the quad order of pack_quads), times the pair's weights. */
typedef struct vertical_sums {
    __m256i low0, low1, low2, low3, high0, high1, high2, high3;
} vertical_sums;

AVX2_INLINE static inline void vertical_add_pair(__m256i a, __m256i b, __m256i weight_low,
                                                 __m256i weight_high, vertical_sums *s) {
    const __m256i zero = _mm256_setzero_si256();
    __m256i low = _mm256_unpacklo_epi8(a, b), high = _mm256_unpackhi_epi8(a, b);
    __m256i w0 = _mm256_unpacklo_epi8(low, zero), w1 = _mm256_unpackhi_epi8(low, zero);
    __m256i w2 = _mm256_unpacklo_epi8(high, zero), w3 = _mm256_unpackhi_epi8(high, zero);
    s->low0 = _mm256_add_epi32(s->low0, _mm256_madd_epi16(w0, weight_low));
    s->low1 = _mm256_add_epi32(s->low1, _mm256_madd_epi16(w1, weight_low));
    s->low2 = _mm256_add_epi32(s->low2, _mm256_madd_epi16(w2, weight_low));
    s->low3 = _mm256_add_epi32(s->low3, _mm256_madd_epi16(w3, weight_low));
    s->high0 = _mm256_add_epi32(s->high0, _mm256_madd_epi16(w0, weight_high));
    s->high1 = _mm256_add_epi32(s->high1, _mm256_madd_epi16(w1, weight_high));
    s->high2 = _mm256_add_epi32(s->high2, _mm256_madd_epi16(w2, weight_high));
    s->high3 = _mm256_add_epi32(s->high3, _mm256_madd_epi16(w3, weight_high));
}

AVX2_INLINE static inline void vertical_start(vertical_sums *s) {
    s->low0 = s->low1 = s->low2 = s->low3 = _mm256_set1_epi32(DT_RESIZE_ROUNDING);
    s->high0 = s->high1 = s->high2 = s->high3 = _mm256_setzero_si256();
}

AVX2_INLINE static inline void vertical_store(const vertical_sums *s, uint8_t *out) {
    _mm256_storeu_si256((__m256i *)out, pack_quads(combine_halves(s->low0, s->high0),
                                                   combine_halves(s->low1, s->high1),
                                                   combine_halves(s->low2, s->high2),
                                                   combine_halves(s->low3, s->high3)));
}

/* Vertical, short split: rows a and b (byte pairs interleaved in-lane) into the sums of 32
 * values: values 0-7|16-23 in the "first" sums, 8-15|24-31 in the "second". */
typedef struct vertical_short_sums {
    __m256i high_first, high_second;     /* int16 */
    __m256i low_first[2], low_second[2]; /* int32, lane values 0-3 and 4-7 */
} vertical_short_sums;

AVX2_INLINE static inline void vertical_short_add(__m256i a, __m256i b, __m256i weight_high,
                                                  __m256i weight_low, vertical_short_sums *s) {
    const __m256i zero = _mm256_setzero_si256();
    __m256i first = _mm256_unpacklo_epi8(a, b), second = _mm256_unpackhi_epi8(a, b);
    s->high_first = _mm256_add_epi16(s->high_first, _mm256_maddubs_epi16(first, weight_high));
    s->high_second = _mm256_add_epi16(s->high_second, _mm256_maddubs_epi16(second, weight_high));
    s->low_first[0] = _mm256_add_epi32(
        s->low_first[0], _mm256_madd_epi16(_mm256_unpacklo_epi8(first, zero), weight_low));
    s->low_first[1] = _mm256_add_epi32(
        s->low_first[1], _mm256_madd_epi16(_mm256_unpackhi_epi8(first, zero), weight_low));
    s->low_second[0] = _mm256_add_epi32(
        s->low_second[0], _mm256_madd_epi16(_mm256_unpacklo_epi8(second, zero), weight_low));
    s->low_second[1] = _mm256_add_epi32(
        s->low_second[1], _mm256_madd_epi16(_mm256_unpackhi_epi8(second, zero), weight_low));
}

AVX2_INLINE static inline void vertical_short_store(const vertical_short_sums *s, uint8_t *out) {
    __m256i first = short_result(s->low_first[0], s->low_first[1], s->high_first);
    __m256i second = short_result(s->low_second[0], s->low_second[1], s->high_second);
    _mm256_storeu_si256((__m256i *)out, _mm256_packus_epi16(first, second));
}

AVX2_INLINE static inline void vertical_short_start(vertical_short_sums *s) {
    s->high_first = s->high_second = _mm256_setzero_si256();
    s->low_first[0] = s->low_first[1] = s->low_second[0] = s->low_second[1] =
        _mm256_setzero_si256();
}

/* 32 values of one output row, any window of up to DT_RESIZE_SHORT_WINDOW taps. */
AVX2_INLINE static inline void vertical_short_values(const uint8_t *top, size_t src_pitch,
                                                     int count, const int32_t *pairs,
                                                     uint8_t *out) {
    vertical_short_sums sums;
    vertical_short_start(&sums);
    for (int k = 0; k < count; k += 2) {
        const uint8_t *row = top + (size_t)k * src_pitch;
        __m256i b = k + 1 < count ? _mm256_loadu_si256((const __m256i *)(row + src_pitch))
                                  : _mm256_setzero_si256();
        vertical_short_add(_mm256_loadu_si256((const __m256i *)row), b,
                           _mm256_set1_epi16((int16_t)pairs[k + 1]), _mm256_set1_epi32(pairs[k]),
                           &sums);
    }
    vertical_short_store(&sums, out);
}

AVX2 void dt_resize_vertical_avx2(const uint8_t *src, size_t src_pitch, int first_row, int values,
                                  const dt_resize_axis *axis, int wide, uint8_t *dst,
                                  size_t dst_pitch) {
    for (int y = 0; y < axis->window_size; y++) {
        const int count = axis->count[y];
        const uint8_t *top = src + (size_t)(axis->first[y] - first_row) * src_pitch;
        uint8_t *out = dst + (size_t)y * dst_pitch;
        int i = 0;
        if (!wide && count == 2) { /* upscaling: one pair, its weights kept in registers */
            const int32_t *pairs = axis->vertical_short + axis->pair_offset[y];
            const __m256i weight_low = _mm256_set1_epi32(pairs[0]);
            const __m256i weight_high = _mm256_set1_epi16((int16_t)pairs[1]);
            for (; i + 32 <= values; i += 32) {
                vertical_short_sums sums;
                vertical_short_start(&sums);
                vertical_short_add(_mm256_loadu_si256((const __m256i *)(top + i)),
                                   _mm256_loadu_si256((const __m256i *)(top + src_pitch + i)),
                                   weight_high, weight_low, &sums);
                vertical_short_store(&sums, out + i);
            }
        } else if (!wide && count <= DT_RESIZE_SHORT_WINDOW) {
            const int32_t *pairs = axis->vertical_short + axis->pair_offset[y];
            for (; i + 32 <= values; i += 32)
                vertical_short_values(top + i, src_pitch, count, pairs, out + i);
        } else {
            const int32_t *pairs = axis->vertical_wide + axis->pair_offset[y];
            for (; i + 32 <= values; i += 32) {
                vertical_sums sums;
                vertical_start(&sums);
                for (int k = 0; k < count; k += 2) {
                    const uint8_t *row = top + (size_t)k * src_pitch + i;
                    __m256i b = k + 1 < count
                                    ? _mm256_loadu_si256((const __m256i *)(row + src_pitch))
                                    : _mm256_setzero_si256();
                    vertical_add_pair(_mm256_loadu_si256((const __m256i *)row), b,
                                      _mm256_set1_epi32(pairs[k]), _mm256_set1_epi32(pairs[k + 1]),
                                      &sums);
                }
                vertical_store(&sums, out + i);
            }
        }
        const int32_t *taps = axis->taps + axis->tap_offset[y];
        for (; i < values; i++) {
            int32_t sum = DT_RESIZE_ROUNDING;
            for (int k = 0; k < count; k++) sum += top[(size_t)k * src_pitch + i] * taps[k];
            out[i] = dt_resize_clip_fixed(sum);
        }
    }
}

#endif

/* ---- the scalar reference passes ---- */

void dt_resize_horizontal_scalar(const uint8_t *src, size_t src_pitch, int rows,
                                 const dt_resize_axis *axis, uint8_t *dst, size_t dst_pitch) {
    for (int y = 0; y < rows; y++) {
        const uint8_t *in = src + (size_t)y * src_pitch;
        uint8_t *out = dst + (size_t)y * dst_pitch;
        for (int x = 0; x < axis->window_size; x++) {
            const int32_t *taps = axis->taps + axis->tap_offset[x];
            const uint8_t *p = in + (size_t)axis->first[x] * 3;
            int32_t r = DT_RESIZE_ROUNDING, g = r, b = r;
            for (int k = 0; k < axis->count[x]; k++, p += 3) {
                r += p[0] * taps[k];
                g += p[1] * taps[k];
                b += p[2] * taps[k];
            }
            out[3 * x] = dt_resize_clip_fixed(r);
            out[3 * x + 1] = dt_resize_clip_fixed(g);
            out[3 * x + 2] = dt_resize_clip_fixed(b);
        }
    }
}

void dt_resize_vertical_scalar(const uint8_t *src, size_t src_pitch, int first_row, int values,
                               const dt_resize_axis *axis, uint8_t *dst, size_t dst_pitch) {
    for (int y = 0; y < axis->window_size; y++) {
        const int32_t *taps = axis->taps + axis->tap_offset[y];
        const uint8_t *top = src + (size_t)(axis->first[y] - first_row) * src_pitch;
        uint8_t *out = dst + (size_t)y * dst_pitch;
        for (int i = 0; i < values; i++) {
            int32_t sum = DT_RESIZE_ROUNDING;
            for (int k = 0; k < axis->count[y]; k++)
                sum += top[(size_t)k * src_pitch + i] * taps[k];
            out[i] = dt_resize_clip_fixed(sum);
        }
    }
}
