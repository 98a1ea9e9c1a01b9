/* The per-thread cache of resize plans and scratch memory. Each loader thread resizes one image
 * after another, mostly between a few recurring sizes; keeping the coefficient tables (keyed by
 * in size, out size, output window and mirror) and the intermediate buffer avoids rebuilding and
 * reallocating them per image. The cache belongs to its thread (a pthread key whose destructor
 * frees it when the thread exits), so it needs no locking. */
#include "resize_internal.h"

#include <pthread.h>
#include <stdlib.h>

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
