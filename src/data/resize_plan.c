/* Per-axis coefficient plans of the antialiased resize: Pillow's fixed-point weights (computed
 * exactly as libImaging/Resample.c does) and, on demand, the layouts the AVX2 passes read; and
 * the per-thread cache that keeps them (second half of this file). */
#include "resize_internal.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

static double triangle(double x) {
    if (x < 0.0) x = -x;
    return x < 1.0 ? 1.0 - x : 0.0;
}

/* Pillow's window of output i: inputs [*xmin, *xmin + return value). */
static int input_window(int i, int in_size, double scale, double support, int *xmin_out) {
    double center = (i + 0.5) * scale;
    int xmin = (int)(center - support + 0.5);
    if (xmin < 0) xmin = 0;
    int xmax = (int)(center + support + 0.5);
    if (xmax > in_size) xmax = in_size;
    *xmin_out = xmin;
    return xmax > xmin ? xmax - xmin : 0;
}

void dt_resize_axis_free(dt_resize_axis *axis) {
    if (!axis) return;
    free(axis->first);
    free(axis->count);
    free(axis->tap_offset);
    free(axis->taps);
    free(axis->vertical_wide);
    free(axis->vertical_short);
    free(axis->pair_offset);
    free(axis->upscale);
    free(axis->reduce);
    free(axis->blocks);
    free(axis->groups);
    free(axis->group_offset);
    free(axis);
}

/* Weights of every output, in the arithmetic (and order of operations) of Pillow's
 * precompute_coeffs and normalize_coeffs_8bpc. */
static void compute_taps(dt_resize_axis *axis, double scale, double *weights) {
    double filterscale = scale < 1.0 ? 1.0 : scale;
    for (int w = 0; w < axis->window_size; w++) {
        int i = axis->window_start + (axis->mirror ? axis->window_size - 1 - w : w);
        double center = (i + 0.5) * scale;
        double inverse = 1.0 / filterscale;
        int xmin = axis->first[w], n = axis->count[w];
        double total = 0.0;
        for (int x = 0; x < n; x++) {
            weights[x] = triangle((x + xmin - center + 0.5) * inverse);
            total += weights[x];
        }
        int32_t *taps = axis->taps + axis->tap_offset[w];
        for (int x = 0; x < n; x++) {
            double k = total != 0.0 ? weights[x] / total : weights[x];
            double fixed = k * (1 << DT_RESIZE_PRECISION_BITS);
            taps[x] = (int32_t)(k < 0 ? -0.5 + fixed : 0.5 + fixed);
        }
    }
}

int dt_resize_axis_build(int in_size, int out_size, int window_start, int window_size, int mirror,
                         dt_resize_axis **out) {
    *out = NULL;
    dt_resize_axis *axis = calloc(1, sizeof *axis);
    if (!axis) return -1;
    axis->in_size = in_size;
    axis->out_size = out_size;
    axis->window_start = window_start;
    axis->window_size = window_size;
    axis->mirror = mirror;
    axis->is_identity = in_size == out_size && !mirror;
    axis->horizontal_blocks = (3 * window_size + 31) / 32;
    double scale = (double)in_size / out_size;
    double filterscale = scale < 1.0 ? 1.0 : scale;
    double support = 1.0 * filterscale;
    axis->first = malloc(sizeof(int) * window_size);
    axis->count = malloc(sizeof(int) * window_size);
    axis->tap_offset = malloc(sizeof(size_t) * window_size);
    if (!axis->first || !axis->count || !axis->tap_offset) goto fail;
    size_t total_taps = 0;
    for (int w = 0; w < window_size; w++) {
        int i = window_start + (mirror ? window_size - 1 - w : w);
        axis->count[w] = input_window(i, in_size, scale, support, &axis->first[w]);
        axis->tap_offset[w] = total_taps;
        total_taps += (size_t)axis->count[w];
        if (axis->count[w] > axis->max_count) axis->max_count = axis->count[w];
    }
    axis->taps = malloc(sizeof(int32_t) * (total_taps ? total_taps : 1));
    double *weights = malloc(sizeof(double) * (axis->max_count ? axis->max_count : 1));
    if (!axis->taps || !weights) {
        free(weights);
        goto fail;
    }
    compute_taps(axis, scale, weights);
    free(weights);
    axis->bytes = sizeof *axis + (sizeof(int) * 2 + sizeof(size_t)) * (size_t)window_size +
                  sizeof(int32_t) * total_taps;
    *out = axis;
    return 0;
fail:
    dt_resize_axis_free(axis);
    return -1;
}

static int32_t pack_words(int32_t a, int32_t b) {
    return (int32_t)((uint32_t)(uint16_t)a | (uint32_t)(uint16_t)b << 16);
}

int dt_resize_axis_add_vertical_pairs(dt_resize_axis *axis) {
    if (axis->vertical_wide) return 0;
    size_t total = 0;
    axis->pair_offset = malloc(sizeof(size_t) * axis->window_size);
    if (!axis->pair_offset) return -1;
    for (int w = 0; w < axis->window_size; w++) {
        axis->pair_offset[w] = total;
        total += 2 * (size_t)((axis->count[w] + 1) / 2);
    }
    axis->vertical_wide = malloc(sizeof(int32_t) * (total ? total : 1));
    axis->vertical_short = malloc(sizeof(int32_t) * (total ? total : 1));
    if (!axis->vertical_wide || !axis->vertical_short) {
        free(axis->pair_offset);
        free(axis->vertical_wide);
        free(axis->vertical_short);
        axis->pair_offset = NULL;
        axis->vertical_wide = axis->vertical_short = NULL;
        return -1;
    }
    for (int w = 0; w < axis->window_size; w++) {
        const int32_t *taps = axis->taps + axis->tap_offset[w];
        int32_t *wide = axis->vertical_wide + axis->pair_offset[w];
        int32_t *narrow = axis->vertical_short + axis->pair_offset[w];
        for (int k = 0; k < axis->count[w]; k += 2) {
            int32_t a = taps[k], b = k + 1 < axis->count[w] ? taps[k + 1] : 0;
            *wide++ = pack_words(dt_resize_wide_low(a), dt_resize_wide_low(b));
            *wide++ = pack_words(dt_resize_wide_high(a), dt_resize_wide_high(b));
            *narrow++ = pack_words(dt_resize_short_low(a), dt_resize_short_low(b));
            *narrow++ = (int32_t)((uint32_t)(uint8_t)dt_resize_short_high(a) |
                                  (uint32_t)(uint8_t)dt_resize_short_high(b) << 8);
        }
    }
    axis->bytes += 2 * sizeof(int32_t) * total + sizeof(size_t) * axis->window_size;
    return 0;
}

/* The sources (byte offsets in the source row, -1: none) and weights of taps
 * first_tap .. first_tap + n_taps - 1 of the n_values output values (of the interleaved RGB
 * row) from first_value on, at [value * n_taps + tap - first_tap]; returns the span of the
 * sources (-1 if there are none) and their lowest in *lowest. */
static int lane_taps(const dt_resize_axis *axis, int first_value, int n_values, int first_tap,
                     int n_taps, int *restrict sources, int32_t *restrict weights, int *lowest) {
    const int values = 3 * axis->window_size;
    const int *first = axis->first, *count = axis->count;
    const size_t *tap_offset = axis->tap_offset;
    const int32_t *taps = axis->taps;
    int low = -1, high = -1;
    int pixel = first_value / 3, channel = first_value % 3;
    for (int v = 0; v < n_values; v++) {
        int n = first_value + v < values ? count[pixel] : 0;
        for (int t = first_tap; t < first_tap + n_taps; t++) {
            int i = v * n_taps + t - first_tap;
            if (t >= n) {
                sources[i] = -1;
                weights[i] = 0;
                continue;
            }
            int source = 3 * (first[pixel] + t) + channel;
            sources[i] = source;
            weights[i] = taps[tap_offset[pixel] + (size_t)t];
            if (low < 0 || source < low) low = source;
            if (source > high) high = source;
        }
        if (++channel == 3) {
            channel = 0;
            pixel++;
        }
    }
    *lowest = low;
    return high < 0 ? -1 : high - low;
}

/* Lane `lane` of half h of upscale block b (8 values x taps 0-1, byte 2v + t); returns 1 when
 * its sources span over 16 bytes. */
static int fill_upscale_lane(const dt_resize_axis *axis, int b, int h, int lane,
                             dt_resize_short_unit *half) {
    int sources[16], lowest;
    int32_t weights[16];
    int span = lane_taps(axis, 32 * b + 16 * lane + 8 * h, 8, 0, 2, sources, weights, &lowest);
    if (span >= 16) return 1;
    half->base[lane] = lowest < 0 ? 0 : lowest;
    for (int byte = 0; byte < 16; byte++) {
        half->shuffle[16 * lane + byte] =
            sources[byte] < 0 ? 0x80 : (uint8_t)(sources[byte] - lowest);
        half->weight_high[16 * lane + byte] = (int8_t)dt_resize_short_high(weights[byte]);
        half->weight_low[byte / 8][8 * lane + byte % 8] =
            (int16_t)dt_resize_short_low(weights[byte]);
    }
    return 0;
}

/* Lane `lane` of unit u of reduce block b (4 values x taps 0-3, byte 8 (t / 2) + 2v + t % 2);
 * returns 1 when its sources span over 16 bytes. */
static int fill_reduce_lane(const dt_resize_axis *axis, int b, int u, int lane,
                            dt_resize_short_unit *unit) {
    int sources[16], lowest;
    int32_t weights[16];
    int span = lane_taps(axis, 32 * b + 16 * lane + 4 * u, 4, 0, 4, sources, weights, &lowest);
    if (span >= 16) return 1;
    unit->base[lane] = lowest < 0 ? 0 : lowest;
    for (int v = 0; v < 4; v++) {
        for (int t = 0; t < 4; t++) {
            int byte = 8 * (t / 2) + 2 * v + t % 2, i = 4 * v + t;
            unit->shuffle[16 * lane + byte] =
                sources[i] < 0 ? 0x80 : (uint8_t)(sources[i] - lowest);
            unit->weight_high[16 * lane + byte] = (int8_t)dt_resize_short_high(weights[i]);
            unit->weight_low[t / 2][8 * lane + 2 * v + t % 2] =
                (int16_t)dt_resize_short_low(weights[i]);
        }
    }
    return 0;
}

typedef int (*fill_short_lane)(const dt_resize_axis *axis, int b, int u, int lane,
                               dt_resize_short_unit *unit);

/* Builds the units_per_block units of every block of a short-split kernel into *units, unless
 * *impossible is already set or some window has more than max_taps taps; returns 0 built (or
 * already there), 1 not applicable (*impossible set when a lane spans over 16 bytes), -1 out of
 * memory. */
static int add_short_units(dt_resize_axis *axis, int max_taps, int units_per_block,
                           fill_short_lane fill, dt_resize_short_unit **units, int *impossible) {
    if (*units) return 0;
    if (*impossible || axis->max_count > max_taps) return 1;
    size_t n_units = (size_t)axis->horizontal_blocks * (size_t)units_per_block;
    dt_resize_short_unit *built = calloc(n_units, sizeof *built);
    if (!built) return -1;
    size_t reach = 0;
    for (int b = 0; b < axis->horizontal_blocks; b++) {
        for (int u = 0; u < units_per_block; u++) {
            dt_resize_short_unit *unit = &built[(size_t)b * units_per_block + u];
            for (int lane = 0; lane < 2; lane++) {
                if (fill(axis, b, u, lane, unit) != 0) {
                    free(built);
                    *impossible = 1;
                    return 1;
                }
                if ((size_t)unit->base[lane] + 16 > reach) reach = (size_t)unit->base[lane] + 16;
            }
        }
    }
    *units = built;
    if (reach > axis->horizontal_reach) axis->horizontal_reach = reach;
    axis->bytes += sizeof *built * n_units;
    return 0;
}

int dt_resize_axis_add_upscale(dt_resize_axis *axis) {
    return add_short_units(axis, 2, 2, fill_upscale_lane, &axis->upscale,
                           &axis->upscale_impossible);
}

int dt_resize_axis_add_reduce(dt_resize_axis *axis) {
    return add_short_units(axis, 4, 4, fill_reduce_lane, &axis->reduce, &axis->reduce_impossible);
}

/* Fills pair p of quad q of block b; returns 0, or 1 when a lane's sources span more than the
 * 16 bytes one shuffle can reach. */
static int fill_block_quad(const dt_resize_axis *axis, int b, int q, int p,
                           dt_resize_block_quad *quad) {
    memset(quad, 0, sizeof *quad);
    for (int lane = 0; lane < 2; lane++) {
        int sources[8], lowest;
        int32_t weights[8];
        int span =
            lane_taps(axis, 32 * b + 16 * lane + 4 * q, 4, 2 * p, 2, sources, weights, &lowest);
        if (span >= 16) return 1;
        quad->base[lane] = lowest < 0 ? 0 : lowest;
        for (int word = 0; word < 8; word++) {
            uint8_t *shuffle = quad->shuffle + 16 * lane + 2 * word;
            shuffle[0] = sources[word] < 0 ? 0x80 : (uint8_t)(sources[word] - lowest);
            shuffle[1] = 0x80;
            quad->weight_low[8 * lane + word] = (int16_t)dt_resize_wide_low(weights[word]);
            quad->weight_high[8 * lane + word] = (int16_t)dt_resize_wide_high(weights[word]);
        }
    }
    return 0;
}

int dt_resize_axis_add_blocks(dt_resize_axis *axis) {
    if (axis->blocks) return 0;
    if (axis->blocks_impossible) return 1;
    int pairs = (axis->max_count + 1) / 2;
    if (pairs < 1) pairs = 1;
    size_t n_quads = (size_t)axis->horizontal_blocks * 4 * pairs;
    dt_resize_block_quad *blocks = malloc(sizeof *blocks * n_quads);
    if (!blocks) return -1;
    size_t reach = 0;
    dt_resize_block_quad *quad = blocks;
    for (int b = 0; b < axis->horizontal_blocks; b++) {
        for (int q = 0; q < 4; q++) {
            for (int p = 0; p < pairs; p++, quad++) {
                if (fill_block_quad(axis, b, q, p, quad) != 0) {
                    free(blocks);
                    axis->blocks_impossible = 1;
                    return 1;
                }
                for (int lane = 0; lane < 2; lane++)
                    if ((size_t)quad->base[lane] + 16 > reach)
                        reach = (size_t)quad->base[lane] + 16;
            }
        }
    }
    axis->blocks = blocks;
    axis->block_pairs = pairs;
    if (reach > axis->horizontal_reach) axis->horizontal_reach = reach;
    axis->bytes += sizeof *blocks * n_quads;
    return 0;
}

int dt_resize_axis_add_groups(dt_resize_axis *axis) {
    if (axis->groups) return 0;
    size_t total = 0;
    axis->group_offset = malloc(sizeof(size_t) * axis->window_size);
    if (!axis->group_offset) return -1;
    for (int w = 0; w < axis->window_size; w++) {
        axis->group_offset[w] = total;
        total += (size_t)((axis->count[w] + 3) / 4);
    }
    axis->groups = calloc(total ? total : 1, sizeof *axis->groups);
    if (!axis->groups) {
        free(axis->group_offset);
        axis->group_offset = NULL;
        return -1;
    }
    size_t reach = 0;
    for (int w = 0; w < axis->window_size; w++) {
        const int32_t *taps = axis->taps + axis->tap_offset[w];
        for (int k = 0; k < axis->count[w]; k++) {
            dt_resize_pixel_group *group = &axis->groups[axis->group_offset[w] + k / 4];
            int lane = (k % 4) / 2, slot = k % 2;
            for (int channel = 0; channel < 3; channel++) {
                group->weight_low[8 * lane + 2 * channel + slot] =
                    (int16_t)dt_resize_wide_low(taps[k]);
                group->weight_high[8 * lane + 2 * channel + slot] =
                    (int16_t)dt_resize_wide_high(taps[k]);
            }
        }
        int groups = (axis->count[w] + 3) / 4;
        if (groups > 0) {
            size_t last_load = 3 * ((size_t)axis->first[w] + 4 * (size_t)(groups - 1)) + 16;
            if (last_load > reach) reach = last_load;
        }
    }
    if (reach > axis->horizontal_reach) axis->horizontal_reach = reach;
    axis->bytes += sizeof *axis->groups * total + sizeof(size_t) * axis->window_size;
    return 0;
}

/* ---- the per-thread cache ----
 * The per-thread cache of resize plans and scratch memory. Each loader thread resizes one image
 * after another, mostly between a few recurring sizes; keeping the coefficient tables (keyed by
 * in size, out size, output window and mirror) and the intermediate buffer avoids rebuilding and
 * reallocating them per image. The cache belongs to its thread (a pthread key whose destructor
 * frees it when the thread exits), so it needs no locking. */

#define CACHE_SLOTS 256
#define CACHE_BYTES_MAX ((size_t)4 << 20)          /* all plans kept by one thread */
#define CACHE_PLAN_BYTES_MAX ((size_t)256 << 10)   /* larger plans are rebuilt per image */
#define CACHE_SCRATCH_BYTES_MAX ((size_t)16 << 20) /* a larger scratch is freed after use */

struct dt_resize_cache {
    dt_resize_axis *plans[CACHE_SLOTS];
    uint64_t last_use[CACHE_SLOTS];
    uint64_t clock;
    uint8_t *scratch;
    size_t scratch_bytes;
};

/* Process-wide only to reach each thread's own cache: created once, never changed after. */
static pthread_once_t cache_key_once = PTHREAD_ONCE_INIT;
static pthread_key_t cache_key;
static int cache_key_ready;

static void cache_destroy(void *pointer) {
    dt_resize_cache *cache = pointer;
    for (int i = 0; i < CACHE_SLOTS; i++) dt_resize_axis_free(cache->plans[i]);
    free(cache->scratch);
    free(cache);
}

static void cache_key_create(void) {
    cache_key_ready = pthread_key_create(&cache_key, cache_destroy) == 0;
}

dt_resize_cache *dt_resize_thread_cache(void) {
    pthread_once(&cache_key_once, cache_key_create);
    if (!cache_key_ready) return NULL;
    dt_resize_cache *cache = pthread_getspecific(cache_key);
    if (cache) return cache;
    cache = calloc(1, sizeof *cache);
    if (!cache) return NULL;
    if (pthread_setspecific(cache_key, cache) != 0) {
        free(cache);
        return NULL;
    }
    return cache;
}

/* Frees least recently used plans until `incoming` more bytes fit the budget and a slot is
 * free; returns that slot. The plan used last (possibly handed out for the current image) is
 * never evicted. */
static int make_room(dt_resize_cache *cache, size_t incoming) {
    for (;;) {
        size_t held = 0;
        int free_slot = -1, oldest = -1;
        for (int i = 0; i < CACHE_SLOTS; i++) {
            if (!cache->plans[i]) {
                if (free_slot < 0) free_slot = i;
                continue;
            }
            held += cache->plans[i]->bytes;
            if (cache->last_use[i] != cache->clock &&
                (oldest < 0 || cache->last_use[i] < cache->last_use[oldest]))
                oldest = i;
        }
        if (free_slot >= 0 && held + incoming <= CACHE_BYTES_MAX) return free_slot;
        if (oldest < 0) return -1;
        dt_resize_axis_free(cache->plans[oldest]);
        cache->plans[oldest] = NULL;
    }
}

int dt_resize_cache_axis(dt_resize_cache *cache, int in_size, int out_size, int window_start,
                         int window_size, int mirror, dt_resize_axis **out) {
    if (!cache)
        return dt_resize_axis_build(in_size, out_size, window_start, window_size, mirror, out);
    for (int i = 0; i < CACHE_SLOTS; i++) {
        dt_resize_axis *plan = cache->plans[i];
        if (plan && plan->in_size == in_size && plan->out_size == out_size &&
            plan->window_start == window_start && plan->window_size == window_size &&
            plan->mirror == mirror) {
            cache->last_use[i] = ++cache->clock;
            *out = plan;
            return 0;
        }
    }
    if (dt_resize_axis_build(in_size, out_size, window_start, window_size, mirror, out) != 0)
        return -1;
    /* room for the plan with the horizontal or vertical tables it is about to get */
    size_t expected = 3 * (*out)->bytes;
    if (expected > CACHE_PLAN_BYTES_MAX) return 0;
    int slot = make_room(cache, expected);
    if (slot >= 0) {
        cache->plans[slot] = *out;
        cache->last_use[slot] = ++cache->clock;
    }
    return 0;
}

void dt_resize_cache_release(dt_resize_cache *cache, dt_resize_axis *axis) {
    if (!axis) return;
    for (int i = 0; cache && i < CACHE_SLOTS; i++) {
        if (cache->plans[i] != axis) continue;
        if (axis->bytes <= CACHE_PLAN_BYTES_MAX) return; /* kept */
        cache->plans[i] = NULL; /* grew too large with its on-demand tables */
        break;
    }
    dt_resize_axis_free(axis);
}

uint8_t *dt_resize_cache_scratch(dt_resize_cache *cache, size_t bytes) {
    if (!cache) return malloc(bytes ? bytes : 1);
    if (cache->scratch_bytes < bytes) {
        free(cache->scratch);
        cache->scratch = malloc(bytes);
        cache->scratch_bytes = cache->scratch ? bytes : 0;
    }
    return cache->scratch;
}

void dt_resize_cache_release_scratch(dt_resize_cache *cache, uint8_t *scratch) {
    if (!cache) {
        free(scratch);
        return;
    }
    if (cache->scratch_bytes > CACHE_SCRATCH_BYTES_MAX) {
        free(cache->scratch);
        cache->scratch = NULL;
        cache->scratch_bytes = 0;
    }
}
