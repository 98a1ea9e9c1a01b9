/* One training or evaluation sample: decode, augment, resize into the batch slot. This is the
 * per-image work of the loader's threads. A horizontal flip is folded into the resize (its
 * horizontal pass writes the output pixels in mirrored order), which gives the same bytes as
 * mirroring the resized image and costs nothing. */
#include "dtrain/data.h"
#include "resize_internal.h"

#include <stdlib.h>

/* The smallest decoded side a reduced DCT scale may give. It is only safe when the whole image is
 * resized: a random crop may need the full resolution of a small region. */
static int minimum_decoded_side(const dt_loader_options *opt, dt_augment_mode augment) {
    if (!opt->jpeg_dct_scaling || augment == DT_AUGMENT_CROP_FLIP) return 0;
    return opt->resize == DT_RESIZE_CENTER ? dt_center_resize_short_side(opt->image_size)
                                           : opt->image_size;
}

/* Augments and resizes a decoded image into dst; frees img. */
static int sample_from_image(dt_image *decoded, const char *name, const dt_loader_options *opt,
                             dt_augment_mode augment, int epoch, uint32_t file_index, uint8_t *dst,
                             dt_error *err) {
    dt_image img = *decoded;
    int size = opt->image_size;
    dt_augment_draw draw;
    dt_augment_draw_for(augment, img.width, img.height, opt->seed, epoch, file_index, &draw);
    dt_resize_request req;
    int rc = 0;
    if (augment == DT_AUGMENT_CROP_FLIP)
        req = (dt_resize_request){
            .region_x = draw.crop_x,
            .region_y = draw.crop_y,
            .region_width = draw.crop_width,
            .region_height = draw.crop_height,
            .out_width = size,
            .out_height = size,
            .window_width = size,
            .window_height = size,
            .kernels = DT_RESIZE_KERNELS_AUTO,
        };
    else
        rc = dt_resize_square_request(&img, opt->resize, size, &req, err);
    req.mirror = draw.flip;
    if (rc == 0) rc = dt_resize_run(&img, &req, dst, err);
    dt_image_free(&img);
    if (rc != 0) return dt_error_prefix(err, "%s", name);
    return 0;
}

int dt_sample_load(const char *path, const dt_loader_options *opt, int training, int epoch,
                   uint32_t file_index, uint8_t *dst, dt_error *err) {
    dt_augment_mode augment = training ? opt->augment : DT_AUGMENT_NONE;
    int min_side = minimum_decoded_side(opt, augment);
    dt_image img;
    if (dt_image_decode_file_scaled(path, min_side, min_side, &img, err) != 0) return -1;
    return sample_from_image(&img, path, opt, augment, epoch, file_index, dst, err);
}

int dt_sample_load_from(const dt_dataset *ds, uint32_t file_index, const dt_loader_options *opt,
                        int training, int epoch, uint8_t *dst, dt_error *err) {
    if (ds->n_shards == 0)
        return dt_sample_load(ds->files[file_index].path, opt, training, epoch, file_index, dst,
                              err);
    dt_augment_mode augment = training ? opt->augment : DT_AUGMENT_NONE;
    int min_side = minimum_decoded_side(opt, augment);
    const char *name = ds->files[file_index].path;
    uint8_t *bytes;
    size_t size;
    if (dt_dataset_read_sample(ds, file_index, &bytes, &size, err)) return -1;
    dt_image img;
    int rc = dt_image_decode_memory_scaled(bytes, size, name, min_side, min_side, &img, err);
    free(bytes);
    if (rc) return -1;
    return sample_from_image(&img, name, opt, augment, epoch, file_index, dst, err);
}
