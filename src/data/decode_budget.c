/* The memory budget shared by every thread that decodes images: a decode reserves the bytes of
 * its buffers before allocating them and waits while other decodes hold the budget, so a batch of
 * huge images (decompression bombs just under the pixel limit) is decoded a few at a time instead
 * of one per thread at once. An image larger than the whole budget still decodes when it is the
 * only one in flight. The pixels' share stays reserved until dt_image_free (a short table of the
 * images decoded and not yet freed: one or two per decoding thread). */
#include "decode_internal.h"

#include <pthread.h>
#include <stdlib.h>

#define DEFAULT_BUDGET_MB 1024

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t released = PTHREAD_COND_INITIALIZER;
static size_t in_use, budget;

typedef struct held_pixels {
    const void *pixels;
    size_t bytes;
} held_pixels;
static held_pixels *held;
static size_t n_held, held_capacity;

static size_t budget_bytes(void) {
    if (!budget) {
        const char *mb = getenv("DTRAIN_DECODE_BUDGET_MB");
        long value = mb && *mb ? atol(mb) : 0;
        budget = (size_t)(value > 0 ? value : DEFAULT_BUDGET_MB) << 20;
    }
    return budget;
}

void dt_decode_budget_acquire(size_t bytes) {
    pthread_mutex_lock(&lock);
    size_t limit = budget_bytes();
    while (in_use > 0 && in_use + bytes > limit) pthread_cond_wait(&released, &lock);
    in_use += bytes;
    pthread_mutex_unlock(&lock);
}

void dt_decode_budget_release(size_t bytes) {
    if (!bytes) return;
    pthread_mutex_lock(&lock);
    in_use -= bytes < in_use ? bytes : in_use;
    pthread_cond_broadcast(&released);
    pthread_mutex_unlock(&lock);
}

void dt_decode_budget_hold(const void *pixels, size_t bytes) {
    pthread_mutex_lock(&lock);
    if (n_held == held_capacity) {
        size_t capacity = held_capacity ? held_capacity * 2 : 16;
        held_pixels *grown = realloc(held, capacity * sizeof *held);
        if (!grown) { /* not tracked: its share is returned now rather than never */
            in_use -= bytes < in_use ? bytes : in_use;
            pthread_cond_broadcast(&released);
            pthread_mutex_unlock(&lock);
            return;
        }
        held = grown;
        held_capacity = capacity;
    }
    held[n_held++] = (held_pixels){pixels, bytes};
    pthread_mutex_unlock(&lock);
}

void dt_decode_budget_release_pixels(const void *pixels) {
    if (!pixels) return;
    pthread_mutex_lock(&lock);
    for (size_t i = 0; i < n_held; i++)
        if (held[i].pixels == pixels) {
            in_use -= held[i].bytes < in_use ? held[i].bytes : in_use;
            held[i] = held[--n_held];
            pthread_cond_broadcast(&released);
            break;
        }
    pthread_mutex_unlock(&lock);
}
