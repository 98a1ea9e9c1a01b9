/* The pixel augmentations of training samples, as torchvision's functional tensor ops compute
 * them on uint8 images, here on one square RGB image (size x size x 3, HWC) in place: colour
 * jitter (augment_color.c), TrivialAugmentWide's ops (augment_trivial.c) and random erasing
 * (augment_erase.c). The random parameters of a sample are drawn by augment_pixels.c. The float
 * arithmetic follows torchvision's float32 steps one for one (no fused multiply-adds), so the
 * results equal torchvision's bytes; tests/test_data_augment.c says where they may not. */
#ifndef DTRAIN_AUGMENT_OPS_H
#define DTRAIN_AUGMENT_OPS_H

#include <stdint.h>

/* adjust_brightness / adjust_contrast / adjust_saturation (blends with zeros, the mean of
 * rgb_to_grayscale, rgb_to_grayscale) and adjust_hue (an HSV round trip in float32). */
void dt_aug_brightness(uint8_t *img, int size, double factor);
void dt_aug_contrast(uint8_t *img, int size, double factor);
void dt_aug_saturation(uint8_t *img, int size, double factor);
void dt_aug_hue(uint8_t *img, int size, double hue_factor);

/* adjust_sharpness: blend with the 3x3 smoothed image (centre weight 5, border pixels kept). */
void dt_aug_sharpness(uint8_t *img, int size, double factor, uint8_t *scratch);
void dt_aug_posterize(uint8_t *img, int size, int bits);
void dt_aug_solarize(uint8_t *img, int size, float threshold);
void dt_aug_autocontrast(uint8_t *img, int size);
void dt_aug_equalize(uint8_t *img, int size);

/* affine / rotate with nearest interpolation and zeros outside, as torchvision's tensor path:
 * the inverse matrix of _get_inverse_affine_matrix (double), then the float32 sampling grid of
 * _gen_affine_grid and grid_sample(align_corners=False). center_x/y are in pixels from the image
 * centre (torchvision's center_f). scratch: size * size * 3 bytes. */
void dt_aug_affine(uint8_t *img, int size, double angle, double translate_x, double translate_y,
                   double shear_x, double shear_y, double center_x, double center_y,
                   uint8_t *scratch);

/* Fills the box (x, y, width, height) with one pixel. */
void dt_aug_erase(uint8_t *img, int size, int x, int y, int width, int height,
                  const uint8_t fill[3]);

/* TrivialAugmentWide's operations, in torchvision's order, and their magnitude tables. */
typedef enum {
    DT_TRIVIAL_IDENTITY,
    DT_TRIVIAL_SHEAR_X,
    DT_TRIVIAL_SHEAR_Y,
    DT_TRIVIAL_TRANSLATE_X,
    DT_TRIVIAL_TRANSLATE_Y,
    DT_TRIVIAL_ROTATE,
    DT_TRIVIAL_BRIGHTNESS,
    DT_TRIVIAL_COLOR,
    DT_TRIVIAL_CONTRAST,
    DT_TRIVIAL_SHARPNESS,
    DT_TRIVIAL_POSTERIZE,
    DT_TRIVIAL_SOLARIZE,
    DT_TRIVIAL_AUTOCONTRAST,
    DT_TRIVIAL_EQUALIZE,
    DT_TRIVIAL_OPS
} dt_trivial_op;

#define DT_TRIVIAL_BINS 31

/* The magnitude of bin (0 .. 30) of op, as torchvision's float32 table gives it (0 for the ops
 * without magnitudes); *has_bins and *is_signed as the op's entry says. */
double dt_trivial_magnitude(dt_trivial_op op, int bin, int *has_bins, int *is_signed);

/* torchvision's _apply_op for a square image with the signed magnitude. scratch: size * size * 3
 * bytes. */
void dt_trivial_apply(uint8_t *img, int size, dt_trivial_op op, double magnitude, uint8_t *scratch);

#endif
