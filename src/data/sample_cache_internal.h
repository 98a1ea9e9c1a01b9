/* The decoded-sample cache (data.cache): one slot per dataset sample holding its decoded,
 * resized uint8 pixels, in a file that every rank of a node maps (in /dev/shm for `memory`,
 * in the named folder otherwise). */
#ifndef DTRAIN_SAMPLE_CACHE_INTERNAL_H
#define DTRAIN_SAMPLE_CACHE_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "dtrain/data.h"

typedef struct dt_sample_cache dt_sample_cache;

/* What a slot holds: the sample resized as eval does (opt->resize at image_size), or, before
 * random crops, the whole image squashed to a larger square. */
typedef enum { DT_CACHE_RESIZED, DT_CACHE_BEFORE_CROP } dt_cache_layout;

enum { DT_CACHE_EMPTY = 0, DT_CACHE_FILLING = 1, DT_CACHE_READY = 2 };

/* Opens (or creates) the cache of ds for the given layout: where = "memory" or a folder. The
 * space it needs is checked against free memory (or disk) and reserved before any slot is
 * filled; an error says how much it needs and how much there is. For `memory` it first removes
 * this user's cache files in /dev/shm that no live process holds (left by killed runs). */
int dt_sample_cache_open(const dt_dataset *ds, const dt_loader_options *opt, dt_cache_layout layout,
                         const char *where, dt_sample_cache **out, dt_error *err);
void dt_sample_cache_close(dt_sample_cache *cache);

/* The cache file's path. */
const char *dt_sample_cache_path(const dt_sample_cache *cache);

/* Side of the square slots. */
int dt_sample_cache_side(const dt_sample_cache *cache);

/* The slot's state (DT_CACHE_*); when READY, its pixels and the decoded image's size. */
int dt_sample_cache_get(const dt_sample_cache *cache, uint32_t index, const uint8_t **pixels,
                        int *width, int *height);

/* Claims an EMPTY slot for filling: returns its pixel buffer, or NULL when another thread or
 * rank has it (the caller then works without the cache for this sample). */
uint8_t *dt_sample_cache_claim(dt_sample_cache *cache, uint32_t index);

/* Publishes a claimed slot: READY with the decoded size, or EMPTY again (it did not decode). */
void dt_sample_cache_publish(dt_sample_cache *cache, uint32_t index, int state, int width,
                             int height);

/* One sample as dt_sample_load_from makes it, through the cache: from the slot when it is
 * filled, else decoded, stored in the slot and then used. With the RESIZED layout the bytes equal
 * dt_sample_load_from's; BEFORE_CROP crops a pre-resized image (close, not identical). */
int dt_sample_load_cached(const dt_dataset *ds, uint32_t index, const dt_loader_options *opt,
                          int training, int epoch, dt_sample_cache *cache, dt_cache_layout layout,
                          uint8_t *dst, dt_error *err);

/* A crop of a cached square (region in the square's pixels) scaled to out_size x out_size and
 * mirrored left-right when mirror is set (cache_crop.c). */
typedef struct dt_cache_crop {
    int region_x, region_y, region_width, region_height;
    int out_size, mirror;
} dt_cache_crop;

/* Scratch bytes dt_cache_crop_run needs for this output size and square side (tables and
 * three rows). */
size_t dt_cache_crop_scratch_bytes(int out_size, int side);

/* The code dt_cache_crop_run may use: at most the one named, each falling back to the next
 * narrower one when the CPU lacks it. All give the same bytes. */
enum {
    DT_CACHE_CROP_SCALAR = 0,
    DT_CACHE_CROP_AVX2 = 1,
    DT_CACHE_CROP_AVX512 = 2, /* AVX512F, AVX512BW and AVX512VBMI */
    DT_CACHE_CROP_BEST = DT_CACHE_CROP_AVX512
};

/* 1 when this CPU runs the AVX-512 path. */
int dt_cache_crop_avx512_available(void);

/* Writes the crop of square (side x side x 3) to dst (out_size rows of out_size RGB pixels),
 * two-tap bilinear with 6-bit weights, with at most the DT_CACHE_CROP_* path kernels. -1 when
 * the region is outside the square. */
int dt_cache_crop_run(const uint8_t *square, int side, const dt_cache_crop *crop, int kernels,
                      uint8_t *scratch, uint8_t *dst);

/* Bytes the cache of ds needs with these options and layout. */
uint64_t dt_sample_cache_bytes(size_t n_files, int side);

#endif
