/* torchvision's colour adjustments on uint8 images (transforms/_functional_tensor.py):
 * brightness, contrast and saturation are _blend(img, other, ratio) =
 * (ratio * img + (1 - ratio) * other) in float32, clamped to [0, 255] and truncated; hue converts
 * to HSV and back in float32 and returns (x * 255.999) truncated. Each float32 step here is the
 * one torchvision's tensor expression takes, in the same order, so the bytes are the same. */
#include "augment_ops.h"

#include <math.h>
#include <stddef.h>

static inline uint8_t blend(uint8_t value, float other_term, float ratio) {
    float v = ratio * (float)value + other_term;
    if (v < 0.0f) v = 0.0f;
    if (v > 255.0f) v = 255.0f;
    return (uint8_t)v;
}

/* A blend whose other term is the same for every pixel is a function of the byte alone. */
static void blend_through_table(uint8_t *img, size_t n, float other_term, float ratio) {
    uint8_t table[256];
    for (int v = 0; v < 256; v++) table[v] = blend((uint8_t)v, other_term, ratio);
    for (size_t i = 0; i < n; i++) img[i] = table[img[i]];
}

void dt_aug_brightness(uint8_t *img, int size, double factor) {
    blend_through_table(img, (size_t)size * size * 3, 0.0f, (float)factor);
}

/* rgb_to_grayscale for uint8: (0.2989 r + 0.587 g) + 0.114 b in float32, truncated; the
 * products per byte value are looked up (the same float32 values). */
typedef struct gray_tables {
    float r[256], g[256], b[256];
} gray_tables;

static void make_gray_tables(gray_tables *t) {
    for (int v = 0; v < 256; v++) {
        t->r[v] = 0.2989f * (float)v;
        t->g[v] = 0.587f * (float)v;
        t->b[v] = 0.114f * (float)v;
    }
}

static inline uint8_t gray_from_tables(const gray_tables *t, const uint8_t *rgb) {
    float l = t->r[rgb[0]] + t->g[rgb[1]];
    l = l + t->b[rgb[2]];
    return (uint8_t)l;
}

void dt_aug_contrast(uint8_t *img, int size, double factor) {
    size_t pixels = (size_t)size * size;
    gray_tables tables;
    make_gray_tables(&tables);
    uint64_t sum = 0;
    for (size_t i = 0; i < pixels; i++) sum += gray_from_tables(&tables, img + 3 * i);
    /* torch.mean on CPU: the float32 sum (exact below 2^24) divided by the count */
    float mean = (float)sum / (float)pixels;
    blend_through_table(img, 3 * pixels, (float)(1.0 - factor) * mean, (float)factor);
}

void dt_aug_saturation(uint8_t *img, int size, double factor) {
    size_t pixels = (size_t)size * size;
    float ratio = (float)factor, other_ratio = (float)(1.0 - factor);
    gray_tables tables;
    make_gray_tables(&tables);
    float scaled[256], other[256]; /* ratio * value and (1 - ratio) * gray, per byte value */
    for (int v = 0; v < 256; v++) {
        scaled[v] = ratio * (float)v;
        other[v] = other_ratio * (float)v;
    }
    for (size_t i = 0; i < pixels; i++) {
        uint8_t *p = img + 3 * i;
        float o = other[gray_from_tables(&tables, p)];
        for (int c = 0; c < 3; c++) {
            float v = scaled[p[c]] + o;
            v = v < 0.0f ? 0.0f : v > 255.0f ? 255.0f : v;
            p[c] = (uint8_t)v;
        }
    }
}

static inline float clamp01(float v) {
    return v < 0.0f ? 0.0f : v > 1.0f ? 1.0f : v;
}

/* _rgb2hsv, the hue shift with torch.remainder, _hsv2rgb and the conversion back to uint8. */
static void hue_shift_pixel(uint8_t *p, float shift, const float *unit) {
    float r = unit[p[0]], g = unit[p[1]], b = unit[p[2]];
    float maxc = fmaxf(r, fmaxf(g, b)), minc = fminf(r, fminf(g, b));
    int eqc = maxc == minc;
    float cr = maxc - minc;
    float s = cr / (eqc ? 1.0f : maxc);
    float divisor = eqc ? 1.0f : cr;
    /* torchvision computes all three terms and keeps one (the others are 0): only that one here */
    float h;
    if (maxc == r)
        h = (maxc - b) / divisor - (maxc - g) / divisor;
    else if (maxc == g)
        h = (2.0f + (maxc - r) / divisor) - (maxc - b) / divisor;
    else
        h = (4.0f + (maxc - g) / divisor) - (maxc - r) / divisor;
    /* fmod(h / 6 + 1, 1) with h / 6 + 1 in [0.8, 2), then torch.remainder(h + shift, 1) with
     * h + shift in [-0.5, 1.5): a subtraction of 1 where fmod would, exact by Sterbenz's lemma */
    h = h / 6.0f + 1.0f;
    if (h >= 1.0f) h -= 1.0f;
    h = h + shift;
    if (h >= 1.0f) h -= 1.0f;
    if (h < 0.0f) h += 1.0f;
    float v = maxc;
    float i = floorf(h * 6.0f);
    float f = h * 6.0f - i;
    int sector = ((int)i % 6 + 6) % 6;
    float pp = clamp01(v * (1.0f - s));
    float q = clamp01(v * (1.0f - s * f));
    float t = clamp01(v * (1.0f - s * (1.0f - f)));
    float out[3];
    switch (sector) {
    case 0:
        out[0] = v, out[1] = t, out[2] = pp;
        break;
    case 1:
        out[0] = q, out[1] = v, out[2] = pp;
        break;
    case 2:
        out[0] = pp, out[1] = v, out[2] = t;
        break;
    case 3:
        out[0] = pp, out[1] = q, out[2] = v;
        break;
    case 4:
        out[0] = t, out[1] = pp, out[2] = v;
        break;
    default:
        out[0] = v, out[1] = pp, out[2] = q;
        break;
    }
    for (int c = 0; c < 3; c++) p[c] = (uint8_t)(out[c] * 255.999f);
}

void dt_aug_hue(uint8_t *img, int size, double hue_factor) {
    size_t pixels = (size_t)size * size;
    float shift = (float)hue_factor, unit[256]; /* convert_image_dtype: value / 255 in float32 */
    for (int v = 0; v < 256; v++) unit[v] = (float)v / 255.0f;
    for (size_t i = 0; i < pixels; i++) hue_shift_pixel(img + 3 * i, shift, unit);
}
