/* Seeded train/val split and the per-epoch sample order; both identical on every machine.
 *
 * Shuffles use the Fisher-Yates algorithm driven by dtrain's SplitMix64 generator (rng.h):
 *     for i = n-1 down to 1: j = dt_rng_below(rng, i + 1); swap(a[i], a[j])
 * Split: a = [0, 1, ..., n-1] shuffled with the stream dt_rng_seeded(dt_rng_mix(seed,
 * DT_SPLIT_STREAM_TAG)); the first n_val entries of a are the val part, the rest the train
 * part, each then sorted ascending. n_val = floor(n * val_fraction + 0.5), clamped to
 * [1, n - 1] when n >= 2 (so both parts are non-empty), and 0 when n == 1.
 * Epoch order: with shuffle, a copy of split->train shuffled with the stream
 * dt_rng_seeded(dt_rng_mix(dt_rng_mix(seed, DT_EPOCH_STREAM_TAG), epoch)); without, the train
 * indices in ascending order. It is then padded to a multiple of global_batch by wrapping
 * around: out[i] = order[i % n_train]. */
#include "dtrain/data.h"
#include "dtrain/rng.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Stream tags keep the split and the epoch orders independent even for equal seeds. */
#define DT_SPLIT_STREAM_TAG 0x53504c4954ull /* "SPLIT" */
#define DT_EPOCH_STREAM_TAG 0x45504f4348ull /* "EPOCH" */

static void fisher_yates_shuffle(uint32_t *items, size_t count, dt_rng *rng) {
    for (size_t i = count; i > 1; i--) {
        uint32_t j = dt_rng_below(rng, (uint32_t)i);
        uint32_t held = items[i - 1];
        items[i - 1] = items[j];
        items[j] = held;
    }
}

static int compare_u32(const void *a, const void *b) {
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}

int dt_split_make(size_t n_files, double val_fraction, uint64_t seed, dt_split *split,
                  dt_error *err) {
    memset(split, 0, sizeof *split);
    if (!(val_fraction > 0.0 && val_fraction < 1.0))
        return dt_fail_usage(err, "data.val_fraction must be in (0, 1), got %g", val_fraction);
    if (n_files == 0) return dt_fail(err, "cannot split an empty dataset");
    if (n_files > UINT32_MAX) return dt_fail(err, "too many files to split (%zu)", n_files);

    size_t n_val = (size_t)floor((double)n_files * val_fraction + 0.5);
    if (n_files >= 2) {
        if (n_val < 1) n_val = 1;
        if (n_val > n_files - 1) n_val = n_files - 1;
    } else {
        n_val = 0;
    }

    uint32_t *order = malloc(n_files * sizeof *order);
    split->val = malloc((n_val ? n_val : 1) * sizeof *split->val);
    split->train = malloc((n_files - n_val) * sizeof *split->train);
    if (!order || !split->val || !split->train) {
        free(order);
        dt_split_free(split);
        return dt_fail(err, "out of memory splitting %zu files", n_files);
    }
    for (size_t i = 0; i < n_files; i++) order[i] = (uint32_t)i;
    dt_rng rng = dt_rng_seeded(dt_rng_mix(seed, DT_SPLIT_STREAM_TAG));
    fisher_yates_shuffle(order, n_files, &rng);

    memcpy(split->val, order, n_val * sizeof *order);
    memcpy(split->train, order + n_val, (n_files - n_val) * sizeof *order);
    split->n_val = n_val;
    split->n_train = n_files - n_val;
    qsort(split->val, split->n_val, sizeof *split->val, compare_u32);
    qsort(split->train, split->n_train, sizeof *split->train, compare_u32);
    free(order);
    return 0;
}

void dt_split_free(dt_split *split) {
    if (!split) return;
    free(split->train);
    free(split->val);
    memset(split, 0, sizeof *split);
}

int dt_epoch_order(const dt_split *split, uint64_t seed, int epoch, int shuffle,
                   size_t global_batch, uint32_t **out, size_t *out_n, dt_error *err) {
    *out = NULL;
    *out_n = 0;
    if (global_batch == 0) return dt_fail(err, "epoch order: global batch size is 0");
    if (split->n_train == 0) return dt_fail(err, "epoch order: the training part is empty");

    size_t n_train = split->n_train;
    size_t n_batches = (n_train + global_batch - 1) / global_batch;
    if (n_batches > SIZE_MAX / global_batch / sizeof(uint32_t))
        return dt_fail(err, "epoch order: %zu batches of %zu is too large", n_batches,
                       global_batch);
    size_t padded = n_batches * global_batch;
    uint32_t *order = malloc(padded * sizeof *order);
    if (!order) return dt_fail(err, "out of memory for the epoch order (%zu samples)", padded);
    memcpy(order, split->train, n_train * sizeof *order);
    if (shuffle) {
        uint64_t epoch_seed = dt_rng_mix(dt_rng_mix(seed, DT_EPOCH_STREAM_TAG), (uint64_t)epoch);
        dt_rng rng = dt_rng_seeded(epoch_seed);
        fisher_yates_shuffle(order, n_train, &rng);
    }
    for (size_t i = n_train; i < padded; i++) order[i] = order[i % n_train];
    *out = order;
    *out_n = padded;
    return 0;
}
