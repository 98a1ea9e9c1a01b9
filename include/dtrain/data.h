/* Data: ImageFolder scan, seeded train/val split, per-epoch sharding, image decode and the
 * threaded batch loader that feeds the model uint8 NHWC batches. */
#ifndef DTRAIN_DATA_H
#define DTRAIN_DATA_H

#include <stddef.h>
#include <stdint.h>

#include "dtrain/config.h"
#include "dtrain/error.h"
#include "dtrain/rng.h"

/* ---- ImageFolder scan ------------------------------------------------------------------ */

typedef struct dt_image_file {
    char *path; /* full path: root/class/.../file; for a tar shard sample "SHARD:KEY" */
    int label;  /* index into class_names */
    /* Only for a dataset of tar shards (n_shards > 0): the shard (index into shard_paths) and
     * where the image member's bytes lie in it. */
    int shard;
    uint64_t offset, size;
} dt_image_file;

typedef struct dt_shard_handles dt_shard_handles; /* open shard files, shared by the threads */

typedef struct dt_dataset {
    char *root;
    char **class_names; /* sub-folder names (or classes.txt lines), in label order */
    int n_classes;
    dt_image_file *files; /* sorted like torchvision ImageFolder: by class, then by path; for
                             shards in shard order, then member order */
    size_t n_files;
    char **shard_paths; /* tar shards (NULL for an ImageFolder) */
    int n_shards;
    size_t n_skipped_members; /* shard members skipped while indexing (named in the log) */
    char **skipped_members;   /* each as "SHARD:NAME: why", for the report */
    dt_shard_handles *handles;
} dt_dataset;

/* Scans root as torchvision's ImageFolder does: classes = sorted sub-folders, files found
 * recursively under each, extensions .jpg .jpeg .png (any case), names starting with '.'
 * ignored. Errors (missing root, no classes, a class without images) name the path. A class
 * folder whose name is not UTF-8 or holds control characters is refused (exit code 2). */
int dt_dataset_scan(const char *root, dt_dataset *ds, dt_error *err);
void dt_dataset_free(dt_dataset *ds);

/* Reads data.root as either source: tar shards (see dt_shards_detect) or an ImageFolder
 * (dt_dataset_scan). The one entry point of training, eval and pack. */
int dt_dataset_open(const char *root, dt_dataset *ds, dt_error *err);

/* The bytes of sample index (a whole file, or its member of a shard), malloc'd into *bytes. */
int dt_dataset_read_sample(const dt_dataset *ds, uint32_t index, uint8_t **bytes, size_t *size,
                           dt_error *err);

/* A dataset as one byte string (class names, files, shards), so that one rank scans and the
 * others receive it; dt_dataset_unpack checks every length and index before using it. */
int dt_dataset_pack_bytes(const dt_dataset *ds, uint8_t **out, size_t *size, dt_error *err);
int dt_dataset_unpack_bytes(const uint8_t *bytes, size_t size, dt_dataset *ds, dt_error *err);

/* ---- tar shards (WebDataset layout) ------------------------------------------------------ */

/* 1 when root names tar shards: a .tar file, a brace pattern such as
 * train-{000000..000127}.tar, or a folder holding .tar files and a classes.txt; 0 otherwise. */
int dt_shards_detect(const char *root);

/* Expands the brace groups of pattern ({A..B} numeric ranges, zero-padded to A's width, and
 * {x,y,z} lists) into *out (caller frees each string and the array). */
int dt_expand_braces(const char *pattern, char ***out, size_t *n_out, dt_error *err);

/* Opens shards as a dataset: class names from classes.txt beside them, samples KEY.jpg|jpeg|png
 * with KEY.cls (decimal class index). Each shard's member index is read from SHARD.idx when it
 * matches the shard's size and modification time, else rebuilt (and written there when
 * possible). Bad members are skipped, counted and named once; a truncated or non-tar shard is
 * an error naming it. */
int dt_shards_scan(const char *root, dt_dataset *ds, dt_error *err);

/* 64-bit hash of the file list (paths relative to root, and labels): ranks compare it. */
uint64_t dt_dataset_hash(const dt_dataset *ds);

/* 64-bit hash of the files' sizes in bytes (of the shards' sizes for tar shards), in file order;
 * a missing root or shard is an error naming it (exit code 2), a listed file that cannot be
 * stat'ed counts as size UINT64_MAX. Ranks on other nodes than
 * rank 0's compare it with rank 0's, so that data missing on a node, or a node-local copy with
 * the same names and other bytes, is caught at start-up. */
int dt_dataset_size_hash(const dt_dataset *ds, uint64_t *hash, dt_error *err);

/* ---- split and sharding ------------------------------------------------------------------ */

typedef struct dt_split {
    uint32_t *train; /* indices into ds->files, ascending */
    size_t n_train;
    uint32_t *val; /* ascending */
    size_t n_val;
} dt_split;

/* Deterministic function of (n_files, val_fraction, seed): a seeded permutation (own PRNG,
 * identical on every machine) whose first round(n*val_fraction) entries form the val part. */
int dt_split_make(size_t n_files, double val_fraction, uint64_t seed, dt_split *split,
                  dt_error *err);
void dt_split_free(dt_split *split);

/* dt_dataset_scan of the folder set by a config key: errors name the key once, exit code 2. */
int dt_dataset_scan_key(const char *key, const char *root, dt_dataset *ds, dt_error *err);

/* data.val_root: scans val_root, whose class folders must be those of ds (an error names the
 * missing and extra ones), appends its files to ds and makes split: every file of ds before the
 * call is training data, every file of val_root validation data. */
int dt_dataset_add_val_root(dt_dataset *ds, const char *val_root, dt_split *split, dt_error *err);

/* The global order of training samples for one epoch: a seeded permutation of split->train
 * (seed mixed with epoch) when shuffle, else split->train in order, padded by wrapping around
 * to a multiple of global_batch. *out_n is the padded length. Caller frees *out. */
int dt_epoch_order(const dt_split *split, uint64_t seed, int epoch, int shuffle,
                   size_t global_batch, uint32_t **out, size_t *out_n, dt_error *err);

/* ---- dtrain pack ------------------------------------------------------------------------- */

typedef struct dt_pack_options {
    uint64_t shard_bytes; /* a new shard is started before one would grow past this */
    int resize;           /* > 0: shorter side to this many pixels, re-encoded as JPEG */
    int quality;          /* JPEG quality of re-encoded samples, 1..100 */
    int progress;         /* 1: a live progress bar on stderr */
} dt_pack_options;

typedef struct dt_pack_result {
    size_t samples, skipped; /* skipped: undecodable files when resizing */
    int shards;
    uint64_t bytes;
} dt_pack_result;

/* Writes the ImageFolder src as OUT/shard-NNNNNN.tar (POSIX ustar, ImageFolder order, members
 * KEY.jpg|jpeg|png and KEY.cls), OUT/classes.txt and each shard's .idx. */
int dt_pack_imagefolder(const char *src, const char *out_dir, const dt_pack_options *opt,
                        dt_pack_result *result, dt_error *err);

/* ---- decode ----------------------------------------------------------------------------- */

/* Largest image accepted, checked from the header before any pixel buffer is allocated. */
#define DT_MAX_IMAGE_PIXELS (178956970u) /* PIL's default decompression-bomb limit */

typedef struct dt_image {
    uint8_t *pixels; /* height x width x 3, RGB */
    int width, height;
} dt_image;

/* Decodes a JPEG or PNG file (sniffed from its bytes, not its name) to RGB. Grayscale, palette,
 * 16-bit, alpha, CMYK/YCCK are converted. Corrupt data, including a libjpeg warning, fails
 * with a message naming the file. */
int dt_image_decode_file(const char *path, dt_image *img, dt_error *err);
int dt_image_decode_memory(const uint8_t *bytes, size_t size, const char *name, dt_image *img,
                           dt_error *err);
void dt_image_free(dt_image *img);

/* Same, but a JPEG at least twice as large as min_width x min_height is decoded at a reduced
 * DCT scale (1/8, 1/4 or 1/2: the strongest that keeps both sides >= the minimum): much faster
 * for big photos, close to but not bit-identical with a full decode followed by the resize.
 * min_width or min_height <= 0 means full size. PNGs are always decoded at full size. */
int dt_image_decode_file_scaled(const char *path, int min_width, int min_height, dt_image *img,
                                dt_error *err);
int dt_image_decode_memory_scaled(const uint8_t *bytes, size_t size, const char *name,
                                  int min_width, int min_height, dt_image *img, dt_error *err);

/* Antialiased resize (as PIL/torchvision bilinear with antialias) of src to a size x size RGB
 * output. squash: whole image to size x size; center: shorter side to size*8/7 then center crop.
 * Bit-identical with torchvision on PIL images: squash = Resize((size, size)); center =
 * Resize(dt_center_resize_short_side(size)) (long side int(short * long / short_in)) then
 * CenterCrop(size) (offsets int(round((h - size) / 2.0)), halves to even). */
int dt_image_resize_to_square(const dt_image *src, dt_resize_mode mode, int size, uint8_t *dst,
                              dt_error *err);

/* PIL's img.crop((x, y, x + width, y + height)).resize((out_width, out_height), BILINEAR):
 * the region is resampled with PIL's antialiased bilinear filter and 8-bit fixed-point
 * arithmetic (horizontal pass, rounded to 8 bits, then vertical pass), bit-identical with
 * Pillow. dst receives out_height x out_width x 3 bytes. */
int dt_image_resize_region(const dt_image *src, int x, int y, int width, int height, int out_width,
                           int out_height, uint8_t *dst, dt_error *err);

/* Shorter side used by resize=center before the crop: round(size * 8 / 7) (256 for 224). */
int dt_center_resize_short_side(int size);

/* ---- encode (tools, tests, benchmarks) --------------------------------------------------- */

/* Writes a baseline (or progressive) JPEG with libjpeg. components: 1 = grayscale samples,
 * 3 = RGB, 4 = CMYK samples written as they are (with libjpeg's Adobe marker, so readers that
 * follow the Adobe convention, PIL and dtrain included, take them as inverted CMYK). */
int dt_jpeg_write_file(const char *path, const uint8_t *samples, int width, int height,
                       int components, int quality, int progressive, dt_error *err);
/* The same for RGB samples, into a malloc'd buffer (*out, *size) that the caller frees. */
int dt_jpeg_encode_memory(const uint8_t *rgb, int width, int height, int quality, uint8_t **out,
                          size_t *size, dt_error *err);

/* ---- augmentation ------------------------------------------------------------------------ */

/* The random choices for one training sample, drawn from a generator seeded with
 * (seed, epoch, file_index) only. crop_flip follows torchvision's RandomResizedCrop.get_params
 * (scale (0.08, 1), ratio (3/4, 4/3): 10 tries of area fraction U(0.08, 1) and aspect
 * exp(U(ln 3/4, ln 4/3)), sides rounded half-to-even, position uniform; else the central crop
 * clamped to the ratio range), then a flip with p = 0.5; flip draws the flip only; none draws
 * nothing (whole image, no flip). */
typedef struct dt_augment_draw {
    int crop_x, crop_y, crop_width, crop_height; /* region of the decoded image to use */
    int flip;                                    /* 1: mirror horizontally after the resize */
} dt_augment_draw;

void dt_augment_draw_for(dt_augment_mode mode, int width, int height, uint64_t seed, int epoch,
                         uint32_t file_index, dt_augment_draw *draw);

/* Pixel augmentations of training samples after the crop/flip, in torchvision's recipe order
 * RandomResizedCrop, RandomHorizontalFlip, TrivialAugmentWide, ColorJitter, ToTensor, Normalize,
 * RandomErasing. All zero: none. Drawn from their own stream of (seed, epoch, file_index). */
typedef struct dt_pixel_augment {
    float color_jitter[4]; /* ColorJitter brightness, contrast, saturation, hue; 0: off */
    float random_erasing;  /* RandomErasing probability; 0: off */
    int trivial_augment;   /* 1: TrivialAugmentWide */
    /* The pixel an erased box gets: round(255 * data.mean), the uint8 pixel whose normalised
     * value is nearest torchvision's value 0 (the batch stays uint8 until the device). */
    uint8_t erase_fill[3];
} dt_pixel_augment;

/* From data.trivial_augment, data.color_jitter, data.random_erasing and data.mean. */
void dt_pixel_augment_from_config(const dt_config *cfg, dt_pixel_augment *aug);

/* The training augmentations of cfg in torchvision's terms, e.g. "RandomResizedCrop,
 * RandomHorizontalFlip, TrivialAugmentWide, ColorJitter(0.4, 0.4, 0.4, 0.1), RandomErasing(p=0.25)"
 * in pipeline order, or "none". */
void dt_augment_describe(const dt_config *cfg, char *out, size_t size);

/* 1 when any of them is on. */
int dt_pixel_augment_enabled(const dt_pixel_augment *aug);

/* The random parameters of one sample, drawn in this order: TrivialAugmentWide's op, bin and sign;
 * ColorJitter's order (a uniform permutation of the four) and factors (brightness, contrast,
 * saturation in [max(0, 1 - v), 1 + v], hue in [-v, v]; an adjustment set to 0 is skipped); then
 * RandomErasing's coin (p) and box (10 tries of area fraction U(0.02, 0.33) and aspect
 * exp(U(ln 0.3, ln 3.3)), h = round(sqrt(area * aspect)), w = round(sqrt(area / aspect)), kept
 * when h < size and w < size, position uniform; none kept: no erasing). */
typedef struct dt_pixel_augment_draw {
    int trivial_op;           /* dt_trivial_op (augment_ops.h); -1: TrivialAugmentWide off */
    double trivial_magnitude; /* signed, as _apply_op receives it */
    int jitter_order[4];      /* 0 brightness, 1 contrast, 2 saturation, 3 hue */
    double jitter_factor[4];  /* per adjustment; used only when its config value is > 0 */
    int erase;                /* 1: the box below is erased */
    int erase_x, erase_y, erase_width, erase_height;
} dt_pixel_augment_draw;

void dt_pixel_augment_draw_for(const dt_pixel_augment *aug, int size, uint64_t seed, int epoch,
                               uint32_t file_index, dt_pixel_augment_draw *draw);

/* Applies the draws to one size x size x 3 uint8 image in place. scratch: size * size * 3 bytes
 * (NULL: allocated here). Returns 0, or -1 when scratch could not be allocated. */
int dt_pixel_augment_apply(const dt_pixel_augment *aug, const dt_pixel_augment_draw *draw,
                           uint8_t *img, int size, uint8_t *scratch, dt_error *err);

/* Both for sample file_index of epoch; a no-op when none is enabled. */
int dt_pixel_augment_sample(const dt_pixel_augment *aug, int size, uint64_t seed, int epoch,
                            uint32_t file_index, uint8_t *img, dt_error *err);

/* ---- loader ------------------------------------------------------------------------------ */

typedef struct dt_batch {
    uint8_t *pixels;      /* batch_size x image_size x image_size x 3, uint8 RGB (NHWC) */
    int32_t *labels;      /* batch_size */
    uint8_t *counts;      /* batch_size: 1 = sample counts in loss/accuracy, 0 = filler */
    uint32_t *file_index; /* batch_size: index into ds->files of the image in that slot */
    int n_counted;        /* number of slots with counts[i] == 1 */
    int batch_size;
    /* Mixup/CutMix (dt_mix_batch): NULL when the batch is not mixed, else per slot the label
     * of the partner mixed into it; mix_lambda is the weight of labels (1 when not mixed). */
    int32_t *mix_labels;
    float mix_lambda;
} dt_batch;

/* ---- mixup and cutmix (timm's Mixup, mode 'batch', correct_lam) --------------------------- */

typedef struct dt_mix_params {
    double mixup_alpha, cutmix_alpha; /* Beta(alpha, alpha); both 0: off */
    double prob;                      /* share of batches mixed */
    double switch_prob;               /* both alphas > 0: share of mixed batches using cutmix */
} dt_mix_params;

/* One batch's draw, timm's _params_per_batch then rand_bbox: u < prob decides mixing; with both
 * alphas, u < switch_prob picks cutmix; lambda ~ Beta(alpha, alpha); for cutmix a box of sides
 * int(side * sqrt(1 - lambda)) centred at uniform integers (cy, cx), clipped to the image, and
 * lambda corrected to 1 - box area / image area. Draws from a generator seeded with (seed,
 * epoch, global_batch) only. */
typedef struct dt_mix_draw {
    int mixed;          /* 0: the batch stays as it is */
    int cutmix;         /* 1: box copy, 0: pixel blend */
    double lambda;      /* weight of each slot's own image and label */
    int y0, y1, x0, x1; /* cutmix: rows [y0, y1) and columns [x0, x1) */
} dt_mix_draw;

int dt_mix_enabled(const dt_mix_params *params);
void dt_mix_draw_for(const dt_mix_params *params, int height, int width, uint64_t seed, int epoch,
                     uint64_t global_batch, dt_mix_draw *draw);
/* timm's rand_bbox for a given lambda and centre: cut = int(side * sqrt(1 - lambda)),
 * [c - cut / 2, c + cut / 2) clipped to [0, side), per axis. */
void dt_mix_cutmix_box(double lambda, int height, int width, int cy, int cx, int *y0, int *y1,
                       int *x0, int *x1);
/* Beta(alpha, alpha) from the generator (alpha > 0), via two Gamma(alpha) draws. */
double dt_mix_beta(dt_rng *rng, double alpha);

/* Applies a draw to a batch of side x side images in place, as timm's FastCollateMixup on
 * uint8: the partner of the j-th of the r counted slots is the (r-1-j)-th (x.flip(0) on a full
 * batch); mixup writes rint(lambda * own + (1 - lambda) * partner) in float32, cutmix copies the
 * partner's box. Slots that do not count (fillers, undecodable files) are neither mixed nor
 * partners; their mix label is their own. Sets mix_labels (from storage, batch_size entries)
 * and mix_lambda; a draw that does not mix leaves the batch unmixed (mix_labels NULL). */
void dt_mix_batch(const dt_mix_draw *draw, int side, int32_t *storage, dt_batch *batch);

typedef struct dt_loader_options {
    int batch_size;
    int image_size;
    dt_resize_mode resize;
    dt_augment_mode augment; /* applied only when the epoch is started with training = 1 */
    int workers;             /* decode threads (>= 1) */
    int prefetch_batches;    /* ring depth (>= 2) */
    uint64_t seed;           /* augmentation seed */
    /* The pixel augmentations after augment, for training samples only; zero: none. */
    dt_pixel_augment pixel_augment;
    /* Optional, zero = off/default: */
    const char *cache;    /* data.cache: NULL or "none", "memory" (shared by the node's ranks),
                             or a folder for memory-mapped cache files */
    int jpeg_dct_scaling; /* 1: decode big JPEGs at a reduced DCT scale (dt_image_decode_*_scaled)
                             when no random crop follows; faster, not bit-identical with PIL */
    /* Mixup/CutMix of training batches (off when both alphas are 0), seeded with (seed, epoch,
     * global micro-batch index): this loader's batch L (counted from the epoch's start, see
     * dt_loader_start_at) is micro-batch L % mix_accumulate of step L / mix_accumulate, which is
     * global micro-batch step * mix_ranks * mix_accumulate + mix_rank * mix_accumulate +
     * L % mix_accumulate of the epoch (the trainer's layout); 0 ranks/accumulate count as 1. */
    dt_mix_params mix;
    int mix_ranks, mix_rank, mix_accumulate;
    /* Allocator of the batches' pixel buffers, e.g. the backend's host_alloc/host_free (pinned
     * memory for asynchronous copies); NULL: malloc/free. */
    void *(*pixel_alloc)(void *user, size_t bytes, dt_error *err);
    void (*pixel_free)(void *user, void *p);
    void *pixel_alloc_user;
} dt_loader_options;

typedef struct dt_loader dt_loader;

/* One sample exactly as the loader makes it: decode path, apply opt->augment when training
 * (crop_flip: crop then resize to image_size x image_size; flip: resize per opt->resize then
 * mirror; none: opt->resize), writing image_size x image_size x 3 bytes to dst. */
int dt_sample_load(const char *path, const dt_loader_options *opt, int training, int epoch,
                   uint32_t file_index, uint8_t *dst, dt_error *err);

/* An evaluation sample (no augmentation) named as outputs name samples: a file path, or
 * SHARD.tar:KEY for a tar shard's sample (when no file has that name), its image member found
 * through the shard's index. */
int dt_sample_load_named(const char *name, const dt_loader_options *opt, uint8_t *dst,
                         dt_error *err);

/* For a name SHARD.tar:KEY whose shard is a regular file (and no file has the whole name): the
 * length of SHARD.tar; 0 otherwise. */
size_t dt_shard_member_split(const char *name);

/* The image bytes of the shard sample SHARD.tar:KEY (malloc'd). */
int dt_shard_member_read(const char *name, uint8_t **bytes, size_t *size, dt_error *err);

/* The same for sample file_index of ds, read from its file or its shard. */
int dt_sample_load_from(const dt_dataset *ds, uint32_t file_index, const dt_loader_options *opt,
                        int training, int epoch, uint8_t *dst, dt_error *err);

/* ds must outlive the loader. */
int dt_loader_create(const dt_dataset *ds, const dt_loader_options *opt, dt_loader **out,
                     dt_error *err);

/* Starts delivering batches of the given indices, in order, batch_size each. A final partial
 * batch is filled with filler slots (counts 0). Undecodable files: their slot is filled with a
 * copy of a decodable image of the same batch and counts 0; each such file is reported once to
 * stderr as "warning: skipping FILE: reason" and flagged (dt_loader_bad_files). A filler or
 * undecodable slot carries the label and file_index of the image copied into it (zero pixels, its
 * own file_index and label when nothing in the batch decodes). Augmentation draws come from (seed,
 * epoch, file index) only, so batches do not depend on the number of workers or thread timing. May
 * be called mid-epoch: pending work is dropped and batches handed out earlier become invalid. */
int dt_loader_start(dt_loader *loader, const uint32_t *indices, size_t n_indices, int epoch,
                    int training, dt_error *err);
/* The same when indices start at the epoch's batch first_batch (after a resume): the mixing
 * draws are those of the batches' places in the whole epoch. */
int dt_loader_start_at(dt_loader *loader, const uint32_t *indices, size_t n_indices, int epoch,
                       int training, size_t first_batch, dt_error *err);

/* Blocks until the next batch is ready. Sets *batch to NULL after the last one. Fails (rather
 * than waiting forever) when every prefetch buffer is held by the caller, unreleased. */
int dt_loader_next(dt_loader *loader, const dt_batch **batch, dt_error *err);

/* dt_loader_next without waiting: 1 (and *batch NULL, nothing taken) when the next batch is
 * still being decoded; otherwise as dt_loader_next. The next call of either gets that batch. */
int dt_loader_try_next(dt_loader *loader, const dt_batch **batch, dt_error *err);

/* Returns the batch's buffer to the ring; the loader may refill it at once, so a consumer that
 * hands the pixels to an asynchronous copy waits for it first (dt_backend_ops.input_wait). */
void dt_loader_release(dt_loader *loader, const dt_batch *batch);

/* One flag per file of the dataset (ds->n_files): 1 when that file was found undecodable. */
const uint8_t *dt_loader_bad_files(const dt_loader *loader);

/* Seconds the consumer spent blocked in dt_loader_next since creation (data-wait share). */
double dt_loader_wait_seconds(const dt_loader *loader);

void dt_loader_destroy(dt_loader *loader);

#endif
