/* The reference passes of the antialiased resize in plain C: Pillow's ImagingResampleHorizontal
 * and ImagingResampleVertical for 8-bit RGB, one output value at a time. Used where AVX2 is
 * missing and by the tests as the result every faster pass must reproduce. */
#include "resize_internal.h"

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
