/* Training augmentation draws (torchvision RandomResizedCrop + RandomHorizontalFlip semantics)
 * from a per-sample generator, so results never depend on which thread decoded the sample. */
#include "dtrain/data.h"
#include "dtrain/rng.h"

#include <math.h>

#define DT_AUGMENT_STREAM_TAG 0x4155474d454e54ull /* "AUGMENT" */

/* torchvision.transforms.RandomResizedCrop defaults. */
static const double crop_scale_min = 0.08, crop_scale_max = 1.0;
static const double crop_ratio_min = 3.0 / 4.0, crop_ratio_max = 4.0 / 3.0;

/* Python's int(round(v)) for v >= 0: ties go to the even integer (nearbyint's default mode). */
static int round_half_even(double v) {
    return (int)nearbyint(v);
}

static void random_resized_crop(int width, int height, dt_rng *rng, dt_augment_draw *draw) {
    double area = (double)width * height;
    double log_min = log(crop_ratio_min), log_max = log(crop_ratio_max);
    for (int attempt = 0; attempt < 10; attempt++) {
        double target_area = area * (crop_scale_min + (crop_scale_max - crop_scale_min) *
                                                          dt_rng_uniform_double(rng));
        double aspect = exp(log_min + (log_max - log_min) * dt_rng_uniform_double(rng));
        int w = round_half_even(sqrt(target_area * aspect));
        int h = round_half_even(sqrt(target_area / aspect));
        if (w > 0 && w <= width && h > 0 && h <= height) {
            draw->crop_y = (int)dt_rng_below(rng, (uint32_t)(height - h + 1));
            draw->crop_x = (int)dt_rng_below(rng, (uint32_t)(width - w + 1));
            draw->crop_width = w;
            draw->crop_height = h;
            return;
        }
    }
    /* Fallback: central crop with the aspect ratio clamped into the allowed range. */
    double in_ratio = (double)width / height;
    int w = width, h = height;
    if (in_ratio < crop_ratio_min) {
        h = round_half_even(w / crop_ratio_min);
    } else if (in_ratio > crop_ratio_max) {
        w = round_half_even(h * crop_ratio_max);
    }
    if (h > height) h = height;
    if (w > width) w = width;
    if (h < 1) h = 1;
    if (w < 1) w = 1;
    draw->crop_width = w;
    draw->crop_height = h;
    draw->crop_y = (height - h) / 2;
    draw->crop_x = (width - w) / 2;
}

void dt_augment_draw_for(dt_augment_mode mode, int width, int height, uint64_t seed, int epoch,
                         uint32_t file_index, dt_augment_draw *draw) {
    draw->crop_x = draw->crop_y = 0;
    draw->crop_width = width;
    draw->crop_height = height;
    draw->flip = 0;
    if (mode == DT_AUGMENT_NONE) return;
    uint64_t stream = dt_rng_mix(
        dt_rng_mix(dt_rng_mix(seed, DT_AUGMENT_STREAM_TAG), (uint64_t)(int64_t)epoch), file_index);
    dt_rng rng = dt_rng_seeded(stream);
    if (mode == DT_AUGMENT_CROP_FLIP) random_resized_crop(width, height, &rng, draw);
    draw->flip = dt_rng_uniform_double(&rng) < 0.5;
}
