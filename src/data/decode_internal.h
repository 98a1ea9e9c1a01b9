/* Format-specific decoders behind dt_image_decode_*: each fills an RGB dt_image from bytes in
 * memory or fails with a message that starts with the file's name. */
#ifndef DTRAIN_DATA_DECODE_INTERNAL_H
#define DTRAIN_DATA_DECODE_INTERNAL_H

#include "dtrain/data.h"

/* min_width/min_height > 0 allow a reduced DCT scale that keeps both sides >= the minimum. */
int dt_decode_jpeg(const uint8_t *bytes, size_t size, const char *name, int min_width,
                   int min_height, dt_image *img, dt_error *err);

int dt_decode_png(const uint8_t *bytes, size_t size, const char *name, dt_image *img,
                  dt_error *err);

/* The decode memory budget (DTRAIN_DECODE_BUDGET_MB, default 1024): acquire waits until the
 * bytes fit beside the other decodes' (or none is in flight); release returns them. */
void dt_decode_budget_acquire(size_t bytes);
void dt_decode_budget_release(size_t bytes);

/* The share of a decoded image's pixels stays reserved until dt_image_free releases it. */
void dt_decode_budget_hold(const void *pixels, size_t bytes);
void dt_decode_budget_release_pixels(const void *pixels);

#endif
