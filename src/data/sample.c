/* One training or evaluation sample: decode, augment, resize into the batch slot. This is the
 * per-image work of the loader's threads. A horizontal flip is folded into the resize (its
 * horizontal pass writes the output pixels in mirrored order), which gives the same bytes as
 * mirroring the resized image and costs nothing. */
#include "dtrain/data.h"
#include "resize_internal.h"
#include "sample_cache_internal.h"

#include <stdlib.h>
#include <string.h>

/* The smallest decoded side a reduced DCT scale may give. It is only safe when the whole image is
 * resized: a random crop may need the full resolution of a small region. */
static int minimum_decoded_side(const dt_loader_options *opt, dt_augment_mode augment) {
    if (!opt->jpeg_dct_scaling || augment == DT_AUGMENT_CROP_FLIP) return 0;
    return opt->resize == DT_RESIZE_CENTER ? dt_center_resize_short_side(opt->image_size)
                                           : opt->image_size;
}

/* Augments and resizes a decoded image into dst; frees img. */
static int sample_from_image(dt_image *decoded, const char *name, const dt_loader_options *opt,
                             int training, int epoch, uint32_t file_index, uint8_t *dst,
                             dt_error *err) {
    dt_augment_mode augment = training ? opt->augment : DT_AUGMENT_NONE;
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
    if (rc == 0 && training)
        rc = dt_pixel_augment_sample(&opt->pixel_augment, size, opt->seed, epoch, file_index, dst,
                                     err);
    if (rc != 0) return dt_error_prefix(err, "%s", name);
    return 0;
}

int dt_sample_load(const char *path, const dt_loader_options *opt, int training, int epoch,
                   uint32_t file_index, uint8_t *dst, dt_error *err) {
    dt_augment_mode augment = training ? opt->augment : DT_AUGMENT_NONE;
    int min_side = minimum_decoded_side(opt, augment);
    dt_image img;
    if (dt_image_decode_file_scaled(path, min_side, min_side, &img, err) != 0) return -1;
    return sample_from_image(&img, path, opt, training, epoch, file_index, dst, err);
}

int dt_sample_load_named(const char *name, const dt_loader_options *opt, uint8_t *dst,
                         dt_error *err) {
    if (!dt_shard_member_split(name)) return dt_sample_load(name, opt, 0, 0, 0, dst, err);
    int min_side = minimum_decoded_side(opt, DT_AUGMENT_NONE);
    uint8_t *bytes;
    size_t size;
    if (dt_shard_member_read(name, &bytes, &size, err)) return -1;
    dt_image img;
    int rc = dt_image_decode_memory_scaled(bytes, size, name, min_side, min_side, &img, err);
    free(bytes);
    if (rc) return -1;
    return sample_from_image(&img, name, opt, 0, 0, 0, dst, err);
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
    return sample_from_image(&img, name, opt, training, epoch, file_index, dst, err);
}

/* ---- through the decoded-sample cache --------------------------------------------------- */

/* Decodes sample index and resizes it as the cache layout says into slot (side x side x 3):
 * RESIZED as evaluation resizes (opt->resize, no mirror: flips are applied on the way out);
 * BEFORE_CROP the whole image squashed, from a full-size decode so that crops are drawn from
 * the image's real size, as without the cache. */
static int make_cache_entry(const dt_dataset *ds, uint32_t index, const dt_loader_options *opt,
                            dt_cache_layout layout, int side, uint8_t *slot, int *width,
                            int *height, dt_error *err) {
    const char *name = ds->files[index].path;
    uint8_t *bytes;
    size_t size;
    if (dt_dataset_read_sample(ds, index, &bytes, &size, err)) return -1;
    int min_side = layout == DT_CACHE_RESIZED ? minimum_decoded_side(opt, DT_AUGMENT_NONE) : 0;
    dt_image img;
    int rc = dt_image_decode_memory_scaled(bytes, size, name, min_side, min_side, &img, err);
    free(bytes);
    if (rc) return -1;
    dt_resize_request req;
    if (layout == DT_CACHE_RESIZED)
        rc = dt_resize_square_request(&img, opt->resize, side, &req, err);
    else
        req = (dt_resize_request){.region_width = img.width,
                                  .region_height = img.height,
                                  .out_width = side,
                                  .out_height = side,
                                  .window_width = side,
                                  .window_height = side,
                                  .kernels = DT_RESIZE_KERNELS_AUTO};
    if (rc == 0) rc = dt_resize_run(&img, &req, slot, err);
    *width = img.width;
    *height = img.height;
    dt_image_free(&img);
    if (rc) return dt_error_prefix(err, "%s", name);
    return 0;
}

/* Scales a crop edge from the decoded image's coordinates to the cached square's. */
static int scale_edge(int at, int from, int to) {
    return (int)(((int64_t)at * to * 2 + from) / (2 * (int64_t)from));
}

/* The batch slot from a cache entry: a copy (mirrored for a flip), or for crop_flip the crop
 * drawn from the decoded size, mapped onto the cached square, scaled to image_size
 * (dt_cache_crop_run: one pass from the slot into dst). */
static int crop_from_entry(const uint8_t *entry, int width, int height, int side,
                           dt_cache_layout layout, const dt_loader_options *opt,
                           dt_augment_mode augment, int epoch, uint32_t index, uint8_t *dst,
                           dt_error *err) {
    dt_augment_draw draw;
    dt_augment_draw_for(augment, width, height, opt->seed, epoch, index, &draw);
    int size = opt->image_size;
    if (layout == DT_CACHE_RESIZED) {
        size_t row = (size_t)size * 3;
        if (!draw.flip) {
            memcpy(dst, entry, row * (size_t)size);
            return 0;
        }
        for (int y = 0; y < size; y++) {
            const uint8_t *in = entry + (size_t)y * row;
            uint8_t *out = dst + (size_t)y * row + row - 3;
            for (int x = 0; x < size; x++, in += 3, out -= 3) {
                out[0] = in[0];
                out[1] = in[1];
                out[2] = in[2];
            }
        }
        return 0;
    }
    int x0 = scale_edge(draw.crop_x, width, side);
    int x1 = scale_edge(draw.crop_x + draw.crop_width, width, side);
    int y0 = scale_edge(draw.crop_y, height, side);
    int y1 = scale_edge(draw.crop_y + draw.crop_height, height, side);
    if (x0 >= side) x0 = side - 1;
    if (y0 >= side) y0 = side - 1;
    if (x1 <= x0) x1 = x0 + 1;
    if (y1 <= y0) y1 = y0 + 1;
    dt_cache_crop crop = {.region_x = x0,
                          .region_y = y0,
                          .region_width = x1 - x0,
                          .region_height = y1 - y0,
                          .out_size = size,
                          .mirror = draw.flip};
    /* the thread's resize scratch: kept between samples, so no allocation per sample */
    dt_resize_cache *thread_cache = dt_resize_thread_cache();
    uint8_t *scratch =
        dt_resize_cache_scratch(thread_cache, dt_cache_crop_scratch_bytes(size, side));
    if (!scratch) return dt_fail(err, "out of memory");
    int rc = dt_cache_crop_run(entry, side, &crop, DT_CACHE_CROP_BEST, scratch, dst);
    dt_resize_cache_release_scratch(thread_cache, scratch);
    if (rc)
        return dt_fail(err, "cache crop %dx%d at (%d, %d) outside the %d px square", x1 - x0,
                       y1 - y0, x0, y0, side);
    return 0;
}

/* The crop/flip from the entry, then the pixel augmentations of a training sample. */
static int sample_from_entry(const uint8_t *entry, int width, int height, int side,
                             dt_cache_layout layout, const dt_loader_options *opt, int training,
                             int epoch, uint32_t index, uint8_t *dst, dt_error *err) {
    dt_augment_mode augment = training ? opt->augment : DT_AUGMENT_NONE;
    if (crop_from_entry(entry, width, height, side, layout, opt, augment, epoch, index, dst, err))
        return -1;
    if (!training) return 0;
    return dt_pixel_augment_sample(&opt->pixel_augment, opt->image_size, opt->seed, epoch, index,
                                   dst, err);
}

int dt_sample_load_cached(const dt_dataset *ds, uint32_t index, const dt_loader_options *opt,
                          int training, int epoch, dt_sample_cache *cache, dt_cache_layout layout,
                          uint8_t *dst, dt_error *err) {
    int side = dt_sample_cache_side(cache), width = 0, height = 0;
    const uint8_t *entry;
    int state = dt_sample_cache_get(cache, index, &entry, &width, &height);
    if (state == DT_CACHE_READY)
        return sample_from_entry(entry, width, height, side, layout, opt, training, epoch, index,
                                 dst, err);
    uint8_t *slot = dt_sample_cache_claim(cache, index);
    uint8_t *scratch = NULL;
    if (!slot) { /* another thread or rank is filling it: do this one without the cache */
        scratch = malloc((size_t)side * (size_t)side * 3);
        if (!scratch) return dt_fail(err, "out of memory");
    }
    int rc =
        make_cache_entry(ds, index, opt, layout, side, slot ? slot : scratch, &width, &height, err);
    /* an undecodable sample leaves its slot empty: a later run (the file fixed, or a passing
     * read error) tries again; this run reports it once and skips it, as without the cache */
    if (slot)
        dt_sample_cache_publish(cache, index, rc == 0 ? DT_CACHE_READY : DT_CACHE_EMPTY, width,
                                height);
    if (rc == 0)
        rc = sample_from_entry(slot ? slot : scratch, width, height, side, layout, opt, training,
                               epoch, index, dst, err);
    free(scratch);
    return rc;
}
