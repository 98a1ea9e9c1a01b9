/* The per-sample draws of the pixel augmentations (TrivialAugmentWide, ColorJitter,
 * RandomErasing) and their application in the decode threads. The draws come from a stream of
 * (seed, epoch, file index) of their own, separate from the crop/flip stream, so turning them on
 * leaves every crop where it was, and a sample's pixels depend on nothing but those three numbers
 * (not on the thread, the number of threads or where a resumed run restarted). */
#include "augment_ops.h"
#include "dtrain/data.h"
#include "dtrain/rng.h"
#include "resize_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#define DT_PIXEL_AUGMENT_STREAM_TAG 0x504958454c4155ull /* "PIXELAU" */

/* torchvision.transforms.RandomErasing defaults. */
static const double erase_scale_min = 0.02, erase_scale_max = 0.33;
static const double erase_ratio_min = 0.3, erase_ratio_max = 3.3;

void dt_pixel_augment_from_config(const dt_config *cfg, dt_pixel_augment *aug) {
    *aug = (dt_pixel_augment){.random_erasing = (float)cfg->data.random_erasing,
                              .trivial_augment = cfg->data.trivial_augment};
    for (int i = 0; i < 4; i++) aug->color_jitter[i] = cfg->data.color_jitter[i];
    for (int c = 0; c < 3; c++) {
        double v = nearbyint(255.0 * cfg->data.mean[c]);
        aug->erase_fill[c] = (uint8_t)(v < 0.0 ? 0.0 : v > 255.0 ? 255.0 : v);
    }
}

void dt_augment_describe(const dt_config *cfg, char *out, size_t size) {
    size_t used = 0;
    out[0] = '\0';
#define APPEND(...)                                                                                \
    do {                                                                                           \
        if (used < size) used += (size_t)snprintf(out + used, size - used, __VA_ARGS__);           \
    } while (0)
    if (cfg->data.augment == DT_AUGMENT_CROP_FLIP) APPEND("RandomResizedCrop, ");
    if (cfg->data.augment != DT_AUGMENT_NONE) APPEND("RandomHorizontalFlip, ");
    if (cfg->data.trivial_augment) APPEND("TrivialAugmentWide, ");
    const float *j = cfg->data.color_jitter;
    if (j[0] > 0.0f || j[1] > 0.0f || j[2] > 0.0f || j[3] > 0.0f)
        APPEND("ColorJitter(%g, %g, %g, %g), ", (double)j[0], (double)j[1], (double)j[2],
               (double)j[3]);
    if (cfg->data.random_erasing > 0.0) APPEND("RandomErasing(p=%g), ", cfg->data.random_erasing);
#undef APPEND
    if (used == 0)
        snprintf(out, size, "none");
    else if (used < size)
        out[used - 2] = '\0'; /* the last ", " (a truncated text is left as it is) */
}

int dt_pixel_augment_enabled(const dt_pixel_augment *aug) {
    for (int i = 0; i < 4; i++)
        if (aug->color_jitter[i] > 0.0f) return 1;
    return aug->random_erasing > 0.0f || aug->trivial_augment;
}

static double uniform(dt_rng *rng, double lo, double hi) {
    return lo + (hi - lo) * dt_rng_uniform_double(rng);
}

static void draw_trivial(dt_rng *rng, dt_pixel_augment_draw *draw) {
    draw->trivial_op = (int)dt_rng_below(rng, DT_TRIVIAL_OPS);
    int has_bins = 0, is_signed = 0;
    dt_trivial_magnitude((dt_trivial_op)draw->trivial_op, 0, &has_bins, &is_signed);
    draw->trivial_magnitude = 0.0;
    if (!has_bins) return;
    int bin = (int)dt_rng_below(rng, DT_TRIVIAL_BINS);
    draw->trivial_magnitude =
        dt_trivial_magnitude((dt_trivial_op)draw->trivial_op, bin, &has_bins, &is_signed);
    if (is_signed && dt_rng_below(rng, 2)) draw->trivial_magnitude = -draw->trivial_magnitude;
}

static void draw_jitter(const dt_pixel_augment *aug, dt_rng *rng, dt_pixel_augment_draw *draw) {
    for (int i = 0; i < 4; i++) draw->jitter_order[i] = i;
    for (int i = 3; i > 0; i--) { /* Fisher-Yates: a uniform permutation, as torch.randperm(4) */
        int j = (int)dt_rng_below(rng, (uint32_t)i + 1);
        int t = draw->jitter_order[i];
        draw->jitter_order[i] = draw->jitter_order[j];
        draw->jitter_order[j] = t;
    }
    for (int i = 0; i < 4; i++) {
        double v = aug->color_jitter[i];
        draw->jitter_factor[i] = i == 3 ? 0.0 : 1.0;
        if (!(v > 0.0)) continue;
        /* ColorJitter draws its factors as float32 (torch.empty(1).uniform_) */
        draw->jitter_factor[i] =
            (float)(i == 3 ? uniform(rng, -v, v) : uniform(rng, v < 1.0 ? 1.0 - v : 0.0, 1.0 + v));
    }
}

static void draw_erase(const dt_pixel_augment *aug, int size, dt_rng *rng,
                       dt_pixel_augment_draw *draw) {
    draw->erase = 0;
    if (!(dt_rng_uniform_double(rng) < aug->random_erasing)) return;
    double area = (double)size * size;
    double log_min = log(erase_ratio_min), log_max = log(erase_ratio_max);
    for (int attempt = 0; attempt < 10; attempt++) {
        double erase_area = area * uniform(rng, erase_scale_min, erase_scale_max);
        double aspect = exp(uniform(rng, log_min, log_max));
        int h = (int)nearbyint(sqrt(erase_area * aspect)); /* Python's round: half to even */
        int w = (int)nearbyint(sqrt(erase_area / aspect));
        if (!(h < size && w < size)) continue;
        draw->erase = 1;
        draw->erase_y = (int)dt_rng_below(rng, (uint32_t)(size - h + 1));
        draw->erase_x = (int)dt_rng_below(rng, (uint32_t)(size - w + 1));
        draw->erase_height = h;
        draw->erase_width = w;
        return;
    }
}

void dt_pixel_augment_draw_for(const dt_pixel_augment *aug, int size, uint64_t seed, int epoch,
                               uint32_t file_index, dt_pixel_augment_draw *draw) {
    *draw = (dt_pixel_augment_draw){.trivial_op = -1, .jitter_order = {0, 1, 2, 3}};
    uint64_t stream = dt_rng_mix(
        dt_rng_mix(dt_rng_mix(seed, DT_PIXEL_AUGMENT_STREAM_TAG), (uint64_t)(int64_t)epoch),
        file_index);
    dt_rng rng = dt_rng_seeded(stream);
    if (aug->trivial_augment) draw_trivial(&rng, draw);
    draw_jitter(aug, &rng, draw);
    if (aug->random_erasing > 0.0f) draw_erase(aug, size, &rng, draw);
}

int dt_pixel_augment_apply(const dt_pixel_augment *aug, const dt_pixel_augment_draw *draw,
                           uint8_t *img, int size, uint8_t *scratch, dt_error *err) {
    uint8_t *owned = NULL;
    if (draw->trivial_op >= 0 && !scratch) {
        owned = scratch = malloc((size_t)size * size * 3);
        if (!scratch) return dt_fail(err, "out of memory for a %d px augmentation", size);
    }
    if (draw->trivial_op >= 0)
        dt_trivial_apply(img, size, (dt_trivial_op)draw->trivial_op, draw->trivial_magnitude,
                         scratch);
    for (int k = 0; k < 4; k++) {
        int which = draw->jitter_order[k];
        if (!(aug->color_jitter[which] > 0.0f)) continue;
        double factor = draw->jitter_factor[which];
        if (which == 0) dt_aug_brightness(img, size, factor);
        if (which == 1) dt_aug_contrast(img, size, factor);
        if (which == 2) dt_aug_saturation(img, size, factor);
        if (which == 3) dt_aug_hue(img, size, factor);
    }
    if (draw->erase)
        dt_aug_erase(img, size, draw->erase_x, draw->erase_y, draw->erase_width, draw->erase_height,
                     aug->erase_fill);
    free(owned);
    return 0;
}

int dt_pixel_augment_sample(const dt_pixel_augment *aug, int size, uint64_t seed, int epoch,
                            uint32_t file_index, uint8_t *img, dt_error *err) {
    if (!dt_pixel_augment_enabled(aug)) return 0;
    dt_pixel_augment_draw draw;
    dt_pixel_augment_draw_for(aug, size, seed, epoch, file_index, &draw);
    if (draw.trivial_op < 0) return dt_pixel_augment_apply(aug, &draw, img, size, NULL, err);
    /* the thread's resize scratch: kept between samples, so no allocation per sample */
    dt_resize_cache *thread_cache = dt_resize_thread_cache();
    uint8_t *scratch = dt_resize_cache_scratch(thread_cache, (size_t)size * size * 3);
    if (!scratch) return dt_fail(err, "out of memory for a %d px augmentation", size);
    int rc = dt_pixel_augment_apply(aug, &draw, img, size, scratch, err);
    dt_resize_cache_release_scratch(thread_cache, scratch);
    return rc;
}
