/* The named pixel-augmentation settings the benchmarks compare (bench_augment's ops, and
 * bench_loader's load with a setting): off, jitter (colour jitter 0.4/0.4/0.4/0.1), erasing
 * (random erasing 0.25), trivial (TrivialAugmentWide) and all three. */
#ifndef DTRAIN_BENCH_PIXEL_SETTINGS_H
#define DTRAIN_BENCH_PIXEL_SETTINGS_H

#include <string.h>

#include "dtrain/data.h"

/* 0, or -1 for an unknown name. */
static inline int bench_pixel_setting(const char *name, dt_pixel_augment *aug) {
    *aug = (dt_pixel_augment){.erase_fill = {124, 116, 104}};
    int all = strcmp(name, "all") == 0;
    if (all || strcmp(name, "jitter") == 0)
        memcpy(aug->color_jitter, (const float[4]){0.4f, 0.4f, 0.4f, 0.1f}, sizeof(float[4]));
    if (all || strcmp(name, "erasing") == 0) aug->random_erasing = 0.25f;
    if (all || strcmp(name, "trivial") == 0) aug->trivial_augment = 1;
    return all || strcmp(name, "off") == 0 || strcmp(name, "jitter") == 0 ||
                   strcmp(name, "erasing") == 0 || strcmp(name, "trivial") == 0
               ? 0
               : -1;
}

#endif
