/* torchvision's colour adjustments on uint8 images (transforms/_functional_tensor.py):
 * brightness, contrast and saturation are _blend(img, other, ratio) =
 * (ratio * img + (1 - ratio) * other) in float32, clamped to [0, 255] and truncated; hue converts
 * to HSV and back in float32 and returns (x * 255.999) truncated. Each float32 step here is the
 * one torchvision's tensor expression takes, in the same order, so the bytes are the same. */
#include "augment_ops.h"

#include <math.h>
#include <stddef.h>

uint8_t dt_aug_gray(const uint8_t *rgb) {
    float l = 0.2989f * (float)rgb[0] + 0.587f * (float)rgb[1];
    l = l + 0.114f * (float)rgb[2];
    return (uint8_t)l;
}

static inline uint8_t blend(uint8_t value, float other_term, float ratio) {
    float v = ratio * (float)value + other_term;
    if (v < 0.0f) v = 0.0f;
    if (v > 255.0f) v = 255.0f;
    return (uint8_t)v;
}

void dt_aug_brightness(uint8_t *img, int size, double factor) {
    size_t n = (size_t)size * size * 3;
    float ratio = (float)factor;
    for (size_t i = 0; i < n; i++) img[i] = blend(img[i], 0.0f, ratio);
}

void dt_aug_contrast(uint8_t *img, int size, double factor) {
    size_t pixels = (size_t)size * size;
    uint64_t sum = 0;
    for (size_t i = 0; i < pixels; i++) sum += dt_aug_gray(img + 3 * i);
    /* torch.mean on CPU: the float32 sum (exact below 2^24) divided by the count */
    float mean = (float)sum / (float)pixels;
    float ratio = (float)factor, other = (float)(1.0 - factor) * mean;
    for (size_t i = 0; i < 3 * pixels; i++) img[i] = blend(img[i], other, ratio);
}

void dt_aug_saturation(uint8_t *img, int size, double factor) {
    size_t pixels = (size_t)size * size;
    float ratio = (float)factor, other_ratio = (float)(1.0 - factor);
    for (size_t i = 0; i < pixels; i++) {
        uint8_t *p = img + 3 * i;
        float other = other_ratio * (float)dt_aug_gray(p);
        for (int c = 0; c < 3; c++) p[c] = blend(p[c], other, ratio);
    }
}

static inline float clamp01(float v) {
    return v < 0.0f ? 0.0f : v > 1.0f ? 1.0f : v;
}

/* _rgb2hsv, the hue shift with torch.remainder, _hsv2rgb and the conversion back to uint8. */
static void hue_shift_pixel(uint8_t *p, float shift) {
    float r = (float)p[0] / 255.0f, g = (float)p[1] / 255.0f, b = (float)p[2] / 255.0f;
    float maxc = fmaxf(r, fmaxf(g, b)), minc = fminf(r, fminf(g, b));
    int eqc = maxc == minc;
    float cr = maxc - minc;
    float s = cr / (eqc ? 1.0f : maxc);
    float divisor = eqc ? 1.0f : cr;
    float rc = (maxc - r) / divisor, gc = (maxc - g) / divisor, bc = (maxc - b) / divisor;
    float hr = maxc == r ? bc - gc : 0.0f;
    float hg = (maxc == g && maxc != r) ? (2.0f + rc) - bc : 0.0f;
    float hb = (maxc != g && maxc != r) ? (4.0f + gc) - rc : 0.0f;
    float h = (hr + hg) + hb;
    h = fmodf(h / 6.0f + 1.0f, 1.0f);
    float shifted = fmodf(h + shift, 1.0f);
    if (shifted != 0.0f && shifted < 0.0f) shifted += 1.0f;
    h = shifted;
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
    float shift = (float)hue_factor;
    for (size_t i = 0; i < pixels; i++) hue_shift_pixel(img + 3 * i, shift);
}
