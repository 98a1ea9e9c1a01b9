/* One training or evaluation sample: decode, augment, resize into the batch slot. This is the
 * per-image work of the loader's threads. */
#include "dtrain/data.h"

#include <string.h>

static void mirror_rows(uint8_t *pixels, int size) {
    for (int y = 0; y < size; y++) {
        uint8_t *row = pixels + (size_t)y * size * 3;
        for (int left = 0, right = size - 1; left < right; left++, right--) {
            for (int c = 0; c < 3; c++) {
                uint8_t held = row[3 * left + c];
                row[3 * left + c] = row[3 * right + c];
                row[3 * right + c] = held;
            }
        }
    }
}

int dt_sample_load(const char *path, const dt_loader_options *opt, int training, int epoch,
                   uint32_t file_index, uint8_t *dst, dt_error *err) {
    dt_augment_mode augment = training ? opt->augment : DT_AUGMENT_NONE;
    int size = opt->image_size;
    /* A reduced DCT scale is only safe when the whole image is resized: a random crop may
     * need the full resolution of a small region. */
    int min_side = 0;
    if (opt->jpeg_dct_scaling && augment != DT_AUGMENT_CROP_FLIP)
        min_side = opt->resize == DT_RESIZE_CENTER ? dt_center_resize_short_side(size) : size;
    dt_image img;
    if (dt_image_decode_file_scaled(path, min_side, min_side, &img, err) != 0) return -1;
    dt_augment_draw draw;
    dt_augment_draw_for(augment, img.width, img.height, opt->seed, epoch, file_index, &draw);
    int rc;
    if (augment == DT_AUGMENT_CROP_FLIP)
        rc = dt_image_resize_region(&img, draw.crop_x, draw.crop_y, draw.crop_width,
                                    draw.crop_height, size, size, dst, err);
    else
        rc = dt_image_resize_to_square(&img, opt->resize, size, dst, err);
    dt_image_free(&img);
    if (rc != 0) return dt_error_prefix(err, "%s", path);
    if (draw.flip) mirror_rows(dst, size);
    return 0;
}
