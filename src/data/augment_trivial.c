/* TrivialAugmentWide (torchvision.transforms.TrivialAugmentWide, 31 magnitude bins) on uint8
 * images: the op list and magnitude tables of its _augmentation_space, and _apply_op with the
 * tensor ops of transforms/_functional_tensor.py (nearest interpolation, zeros outside: the
 * default fill=None samples with padding_mode="zeros"). */
#include "augment_ops.h"

#include <math.h>
#include <stddef.h>
#include <string.h>

/* torch.linspace(start, end, steps) in float32: the first half counted up from start, the second
 * half down from end, with the float32 step. PyTorch's CPU kernel is compiled with fused
 * multiply-adds on x86-64 (AVX2 and AVX-512 builds), so start + step * index is rounded once; in
 * double the product and the sum are exact for these tables, which gives that one rounding. */
static float linspace_value(float start, float end, int steps, int index) {
    float step = (end - start) / (float)(steps - 1);
    if (index < steps / 2) return (float)((double)start + (double)step * index);
    return (float)((double)end - (double)step * (steps - index - 1));
}

double dt_trivial_magnitude(dt_trivial_op op, int bin, int *has_bins, int *is_signed) {
    *has_bins = 1;
    *is_signed = 1;
    switch (op) {
    case DT_TRIVIAL_SHEAR_X:
    case DT_TRIVIAL_SHEAR_Y:
    case DT_TRIVIAL_BRIGHTNESS:
    case DT_TRIVIAL_COLOR:
    case DT_TRIVIAL_CONTRAST:
    case DT_TRIVIAL_SHARPNESS:
        return linspace_value(0.0f, 0.99f, DT_TRIVIAL_BINS, bin);
    case DT_TRIVIAL_TRANSLATE_X:
    case DT_TRIVIAL_TRANSLATE_Y:
        return linspace_value(0.0f, 32.0f, DT_TRIVIAL_BINS, bin);
    case DT_TRIVIAL_ROTATE:
        return linspace_value(0.0f, 135.0f, DT_TRIVIAL_BINS, bin);
    case DT_TRIVIAL_POSTERIZE:
        *is_signed = 0; /* 8 - round(bin / 5): 8 .. 2 bits (bin / 5 is never a tie) */
        return 8 - (int)nearbyintf((float)bin / 5.0f);
    case DT_TRIVIAL_SOLARIZE:
        *is_signed = 0;
        return linspace_value(255.0f, 0.0f, DT_TRIVIAL_BINS, bin);
    default: /* Identity, AutoContrast, Equalize: a 0-d magnitude, no bin drawn */
        *has_bins = 0;
        *is_signed = 0;
        return 0.0;
    }
}

void dt_aug_posterize(uint8_t *img, int size, int bits) {
    uint8_t mask = (uint8_t)(0xff << (8 - bits));
    size_t n = (size_t)size * size * 3;
    for (size_t i = 0; i < n; i++) img[i] &= mask;
}

/* torch.where(img >= threshold, 255 - img, img), the comparison in float32. */
void dt_aug_solarize(uint8_t *img, int size, float threshold) {
    size_t n = (size_t)size * size * 3;
    for (size_t i = 0; i < n; i++)
        if ((float)img[i] >= threshold) img[i] = (uint8_t)(255 - img[i]);
}

/* Per channel: (img - min) * (255 / (max - min)) in float32, truncated; a flat channel stays. */
void dt_aug_autocontrast(uint8_t *img, int size) {
    size_t pixels = (size_t)size * size;
    for (int c = 0; c < 3; c++) {
        uint8_t lo = 255, hi = 0;
        for (size_t i = 0; i < pixels; i++) {
            uint8_t v = img[3 * i + c];
            if (v < lo) lo = v;
            if (v > hi) hi = v;
        }
        if (lo == hi) continue; /* scale inf: minimum 0, scale 1, the identity */
        float minimum = (float)lo, scale = 255.0f / ((float)hi - minimum);
        for (size_t i = 0; i < pixels; i++) {
            float v = ((float)img[3 * i + c] - minimum) * scale;
            if (v > 255.0f) v = 255.0f;
            img[3 * i + c] = (uint8_t)v;
        }
    }
}

/* _scale_channel: the histogram's cumulative sum mapped through step = (count of all but the
 * last used level) / 255, all in integers. */
void dt_aug_equalize(uint8_t *img, int size) {
    size_t pixels = (size_t)size * size;
    for (int c = 0; c < 3; c++) {
        int64_t hist[256] = {0};
        for (size_t i = 0; i < pixels; i++) hist[img[3 * i + c]]++;
        int64_t last_used = 0, total = 0;
        for (int v = 0; v < 256; v++) {
            if (hist[v]) last_used = hist[v];
            total += hist[v];
        }
        int64_t step = (total - last_used) / 255;
        if (step == 0) continue;
        uint8_t lut[256];
        int64_t cumulative = 0;
        for (int v = 0; v < 256; v++) { /* lut shifted by one: level v gets cumsum up to v - 1 */
            int64_t mapped = (cumulative + step / 2) / step;
            lut[v] = (uint8_t)(mapped > 255 ? 255 : mapped);
            cumulative += hist[v];
        }
        for (size_t i = 0; i < pixels; i++) img[3 * i + c] = lut[img[3 * i + c]];
    }
}

/* _blurred_degenerate_image: the 3x3 kernel (1 1 1 / 1 5 1 / 1 1 1) / 13 on the inner pixels,
 * rounded. The float32 convolution is within 1e-5 of S / 13 for the integer sum S, and S / 13 is
 * never within 1 / 26 of a half, so the integer rounding below gives torchvision's bytes. */
void dt_aug_sharpness(uint8_t *img, int size, double factor, uint8_t *scratch) {
    if (size <= 2) return;
    size_t row = (size_t)size * 3;
    memcpy(scratch, img, row * (size_t)size);
    float ratio = (float)factor, other_ratio = (float)(1.0 - factor);
    /* the border is blended with itself, which float32 need not leave unchanged */
    for (int y = 0; y < size; y++)
        for (int x = 0; x < size; x++)
            for (int c = 0; c < 3; c++) {
                const uint8_t *centre = scratch + (size_t)y * row + 3 * (size_t)x + c;
                int blurred = centre[0];
                if (y > 0 && y < size - 1 && x > 0 && x < size - 1) {
                    int sum = 4 * centre[0];
                    for (int dy = -1; dy <= 1; dy++)
                        for (int dx = -1; dx <= 1; dx++)
                            sum += centre[dy * (ptrdiff_t)row + 3 * dx];
                    blurred = (2 * sum + 13) / 26; /* round(sum / 13) */
                }
                float v = ratio * (float)centre[0] + other_ratio * (float)blurred;
                if (v < 0.0f) v = 0.0f;
                if (v > 255.0f) v = 255.0f;
                img[(size_t)y * row + 3 * (size_t)x + c] = (uint8_t)v;
            }
}

static double radians(double degrees) {
    return degrees * (M_PI / 180.0);
}

void dt_aug_affine(uint8_t *img, int size, double angle, double translate_x, double translate_y,
                   double shear_x, double shear_y, double center_x, double center_y,
                   uint8_t *scratch) {
    /* _get_inverse_affine_matrix with scale 1 */
    double rot = radians(angle), sx = radians(shear_x), sy = radians(shear_y);
    double a = cos(rot - sy) / cos(sy);
    double b = -cos(rot - sy) * tan(sx) / cos(sy) - sin(rot);
    double c = sin(rot - sy) / cos(sy);
    double d = -sin(rot - sy) * tan(sx) / cos(sy) + cos(rot);
    double m[6] = {d, -b, 0.0, -c, a, 0.0};
    m[2] += m[0] * (-center_x - translate_x) + m[1] * (-center_y - translate_y);
    m[5] += m[3] * (-center_x - translate_x) + m[4] * (-center_y - translate_y);
    m[2] += center_x;
    m[5] += center_y;
    /* _gen_affine_grid: theta in float32, divided by (w / 2, h / 2); base grid from linspace */
    float half = (float)(0.5 * size);
    float t[6];
    for (int i = 0; i < 6; i++) t[i] = (float)m[i];
    float ax = t[0] / half, bx = t[1] / half, cx = t[2] / half;
    float ay = t[3] / half, by = t[4] / half, cy = t[5] / half;
    float first = (float)(-size * 0.5 + 0.5), last = (float)(size * 0.5 + 0.5 - 1);
    size_t row = (size_t)size * 3;
    memcpy(scratch, img, row * (size_t)size);
    for (int y = 0; y < size; y++) {
        float gy = linspace_value(first, last, size, y);
        for (int x = 0; x < size; x++) {
            float gx = linspace_value(first, last, size, x);
            float u = gx * ax + gy * bx + cx; /* normalised source coordinates */
            float v = gx * ay + gy * by + cy;
            /* grid_sample, align_corners=False: ((u + 1) * size - 1) / 2, then nearest (even) */
            float sxf = ((u + 1.0f) * (float)size - 1.0f) / 2.0f;
            float syf = ((v + 1.0f) * (float)size - 1.0f) / 2.0f;
            float ix = nearbyintf(sxf), iy = nearbyintf(syf);
            uint8_t *out = img + (size_t)y * row + 3 * (size_t)x;
            if (ix >= 0.0f && ix < (float)size && iy >= 0.0f && iy < (float)size) {
                memcpy(out, scratch + (size_t)iy * row + 3 * (size_t)ix, 3);
            } else {
                out[0] = out[1] = out[2] = 0;
            }
        }
    }
}

void dt_trivial_apply(uint8_t *img, int size, dt_trivial_op op, double magnitude,
                      uint8_t *scratch) {
    double corner = -0.5 * size; /* center=[0, 0] (the top-left corner) in torchvision's center_f */
    switch (op) {
    case DT_TRIVIAL_SHEAR_X:
        dt_aug_affine(img, size, 0.0, 0, 0, atan(magnitude) * (180.0 / M_PI), 0.0, corner, corner,
                      scratch);
        break;
    case DT_TRIVIAL_SHEAR_Y:
        dt_aug_affine(img, size, 0.0, 0, 0, 0.0, atan(magnitude) * (180.0 / M_PI), corner, corner,
                      scratch);
        break;
    case DT_TRIVIAL_TRANSLATE_X:
        dt_aug_affine(img, size, 0.0, (int)magnitude, 0, 0.0, 0.0, 0.0, 0.0, scratch);
        break;
    case DT_TRIVIAL_TRANSLATE_Y:
        dt_aug_affine(img, size, 0.0, 0, (int)magnitude, 0.0, 0.0, 0.0, 0.0, scratch);
        break;
    case DT_TRIVIAL_ROTATE: /* F.rotate inverts with -angle, about the centre */
        dt_aug_affine(img, size, -magnitude, 0, 0, 0.0, 0.0, 0.0, 0.0, scratch);
        break;
    case DT_TRIVIAL_BRIGHTNESS:
        dt_aug_brightness(img, size, 1.0 + magnitude);
        break;
    case DT_TRIVIAL_COLOR:
        dt_aug_saturation(img, size, 1.0 + magnitude);
        break;
    case DT_TRIVIAL_CONTRAST:
        dt_aug_contrast(img, size, 1.0 + magnitude);
        break;
    case DT_TRIVIAL_SHARPNESS:
        dt_aug_sharpness(img, size, 1.0 + magnitude, scratch);
        break;
    case DT_TRIVIAL_POSTERIZE:
        dt_aug_posterize(img, size, (int)magnitude);
        break;
    case DT_TRIVIAL_SOLARIZE:
        dt_aug_solarize(img, size, (float)magnitude);
        break;
    case DT_TRIVIAL_AUTOCONTRAST:
        dt_aug_autocontrast(img, size);
        break;
    case DT_TRIVIAL_EQUALIZE:
        dt_aug_equalize(img, size);
        break;
    default: /* Identity */
        break;
    }
}

void dt_aug_erase(uint8_t *img, int size, int x, int y, int width, int height,
                  const uint8_t fill[3]) {
    for (int row = y; row < y + height; row++)
        for (int col = x; col < x + width; col++)
            memcpy(img + ((size_t)row * size + col) * 3, fill, 3);
}
