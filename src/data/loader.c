/* The batch loader: a pool of decode threads fills a ring of prefetch_batches batch buffers
 * ahead of the consumer. Work is handed out one image at a time, in order (image j of the
 * epoch belongs to batch j / batch_size, which lives in ring buffer (j / batch_size) % ring),
 * so every worker helps with the batch the consumer needs next. A worker only takes an image
 * whose batch owns its ring buffer, i.e. the batch ring_size earlier has been released. The
 * worker that writes a batch's last slot completes the batch (fillers, mixup/cutmix) before
 * counting it done, so the consumer only ever sees complete batches.
 *
 * No lock per image: a worker claims its image with a compare-and-swap on the next job (taken
 * only while the job's ring buffer belongs to its batch), writes the slot's pixels, label and
 * file index, and counts the slot written with an atomic add; the consumer reads a buffer
 * only after its done count says the batch is complete. The mutex is taken once per batch (by the
 * worker that finishes it, to wake the consumer), by the consumer and by idle workers, and it
 * guards the hand-out state: a buffer's ring position and done count change under it, and an
 * idle worker re-checks for work under it, so no wake-up is lost. dt_loader_start closes the
 * hand-out (next job CLOSED) and drains the workers that are inside a claim or an image before
 * resetting, so no worker ever writes into a buffer that belongs to a new epoch. */
#include "dtrain/data.h"
#include "dtrain/limits.h"
#include "dtrain/log.h"
#include "dtrain/platform.h"
#include "sample_cache_internal.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { SLOT_PENDING, SLOT_DECODED, SLOT_UNDECODABLE, SLOT_FILLER };

typedef struct ring_buffer {
    dt_batch batch;
    uint8_t *slot_state;         /* SLOT_* per slot */
    _Atomic size_t batch_number; /* the batch this buffer is filled with (or holds) */
    atomic_int filled;           /* slots written for batch_number */
    atomic_int done;             /* batch_size once the batch is complete (fillers, mixing) */
    int32_t *mix_labels;         /* the batch's mix_labels when it is mixed */
    int held;                    /* handed to the consumer and not yet released (lock) */
} ring_buffer;

struct dt_loader {
    const dt_dataset *ds;
    dt_loader_options opt;
    size_t slot_bytes;

    pthread_mutex_t lock;
    pthread_cond_t work_available; /* workers wait on it */
    pthread_cond_t batch_ready;    /* the consumer waits on it */
    pthread_cond_t workers_idle;   /* dt_loader_start waits on it */
    pthread_t *threads;
    int n_threads;
    int shutting_down;

    ring_buffer *ring;
    int ring_size;

    /* The epoch being delivered (changed only while no image is in flight). */
    uint32_t *indices;
    size_t n_indices;
    int epoch, training, started;
    size_t n_batches, delivered; /* jobs: n_batches * batch_size images */
    size_t first_batch;          /* the epoch's batch number of indices[0] */
    _Atomic size_t next_job;     /* the next image to claim; JOBS_CLOSED while none may be */
    atomic_int in_flight;        /* workers inside a claim or an image */
    atomic_int draining;         /* dt_loader_start waits for in_flight to reach 0 */
    double wait_seconds;

    /* data.cache: slots for evaluation (and training without random crops), and for training
     * with crop_flip a second cache of larger, uncropped images */
    dt_sample_cache *eval_cache, *crop_cache;

    pthread_mutex_t report_lock; /* guards reported */
    uint8_t *reported;           /* per file: already named as undecodable */
};

static void report_undecodable(dt_loader *loader, uint32_t file_index, const char *message) {
    pthread_mutex_lock(&loader->report_lock);
    if (!loader->reported[file_index]) {
        loader->reported[file_index] = 1;
        /* message starts with the file's path: "PATH: what went wrong" */
        dt_warn("skipping %s", message);
    }
    pthread_mutex_unlock(&loader->report_lock);
}

/* Fills one slot of a batch; returns its SLOT_* state. Runs without the lock. */
static int fill_slot(dt_loader *loader, dt_batch *batch, size_t batch_number, int slot) {
    size_t position = batch_number * (size_t)loader->opt.batch_size + (size_t)slot;
    if (position >= loader->n_indices) {
        /* Filler of a final partial batch: borrows slot 0's identity (always a real sample). */
        uint32_t first = loader->indices[batch_number * (size_t)loader->opt.batch_size];
        batch->file_index[slot] = first;
        batch->labels[slot] = loader->ds->files[first].label;
        return SLOT_FILLER;
    }
    uint32_t file_index = loader->indices[position];
    const dt_image_file *file = &loader->ds->files[file_index];
    batch->file_index[slot] = file_index;
    batch->labels[slot] = file->label;
    uint8_t *dst = batch->pixels + (size_t)slot * loader->slot_bytes;
    dt_error err = {{0}, 0};
    int rc;
    int crops = loader->training && loader->opt.augment == DT_AUGMENT_CROP_FLIP;
    dt_sample_cache *cache = crops ? loader->crop_cache : loader->eval_cache;
    if (cache)
        rc = dt_sample_load_cached(loader->ds, file_index, &loader->opt, loader->training,
                                   loader->epoch, cache,
                                   crops ? DT_CACHE_BEFORE_CROP : DT_CACHE_RESIZED, dst, &err);
    else
        rc = dt_sample_load_from(loader->ds, file_index, &loader->opt, loader->training,
                                 loader->epoch, dst, &err);
    if (rc == 0) return SLOT_DECODED;
    report_undecodable(loader, file_index, err.message);
    return SLOT_UNDECODABLE;
}

#define JOBS_CLOSED SIZE_MAX

/* 1 when job may be claimed now: inside the epoch and its ring buffer belongs to its batch.
 * n_batches is read only inside a claim (in_flight counted) or under the lock: dt_loader_start
 * changes it under the lock, after closing the hand-out and draining the claims. */
static int job_claimable(const dt_loader *loader, size_t job) {
    if (job >= loader->n_batches * (size_t)loader->opt.batch_size) return 0; /* or CLOSED */
    size_t batch_number = job / (size_t)loader->opt.batch_size;
    return atomic_load(&loader->ring[batch_number % (size_t)loader->ring_size].batch_number) ==
           batch_number;
}

/* Claims the next job without the lock; 0 when there is none to take now. */
static int claim_job(dt_loader *loader, size_t *job) {
    size_t next = atomic_load(&loader->next_job);
    while (job_claimable(loader, next))
        if (atomic_compare_exchange_weak(&loader->next_job, &next, next + 1)) {
            *job = next;
            return 1;
        }
    return 0;
}

/* A worker leaves a claim or an image: wakes dt_loader_start when it waits for the last. */
static void leave_flight(dt_loader *loader) {
    if (atomic_fetch_sub(&loader->in_flight, 1) == 1 && atomic_load(&loader->draining)) {
        pthread_mutex_lock(&loader->lock);
        pthread_cond_broadcast(&loader->workers_idle);
        pthread_mutex_unlock(&loader->lock);
    }
}

/* Fillers, then the training batch's mixup/cutmix (below). */
static void complete_batch(dt_loader *loader, ring_buffer *buffer, size_t batch_number);

static void *worker_main(void *arg) {
    dt_loader *loader = arg;
    const int batch_size = loader->opt.batch_size;
    for (;;) {
        atomic_fetch_add(&loader->in_flight, 1); /* before looking at next_job: see above */
        size_t job;
        if (claim_job(loader, &job)) {
            size_t batch_number = job / (size_t)batch_size;
            int slot = (int)(job % (size_t)batch_size);
            ring_buffer *buffer = &loader->ring[batch_number % (size_t)loader->ring_size];
            buffer->slot_state[slot] =
                (uint8_t)fill_slot(loader, &buffer->batch, batch_number, slot);
            if (atomic_fetch_add(&buffer->filled, 1) + 1 == batch_size) {
                /* every other slot is written: this worker alone completes the batch, then
                 * counts it done for the consumer */
                complete_batch(loader, buffer, batch_number);
                atomic_store(&buffer->done, batch_size);
                pthread_mutex_lock(&loader->lock);
                pthread_cond_broadcast(&loader->batch_ready);
                pthread_mutex_unlock(&loader->lock);
            }
            leave_flight(loader);
            continue;
        }
        leave_flight(loader);
        /* nothing to claim: wait for a released buffer or a new epoch (both change under the
         * lock and broadcast, and the check here is under it) */
        pthread_mutex_lock(&loader->lock);
        while (!loader->shutting_down &&
               !(loader->started && job_claimable(loader, atomic_load(&loader->next_job))))
            pthread_cond_wait(&loader->work_available, &loader->lock);
        int stop = loader->shutting_down;
        pthread_mutex_unlock(&loader->lock);
        if (stop) break;
    }
    return NULL;
}

static void free_ring(dt_loader *loader) {
    if (!loader->ring) return;
    for (int k = 0; k < loader->ring_size; k++) {
        ring_buffer *buffer = &loader->ring[k];
        if (loader->opt.pixel_free && buffer->batch.pixels)
            loader->opt.pixel_free(loader->opt.pixel_alloc_user, buffer->batch.pixels);
        else
            free(buffer->batch.pixels);
        free(buffer->batch.labels);
        free(buffer->batch.counts);
        free(buffer->batch.file_index);
        free(buffer->slot_state);
        free(buffer->mix_labels);
    }
    free(loader->ring);
    loader->ring = NULL;
}

static int allocate_ring(dt_loader *loader, dt_error *err) {
    int batch_size = loader->opt.batch_size;
    loader->ring = calloc((size_t)loader->ring_size, sizeof *loader->ring);
    if (!loader->ring) return dt_fail(err, "loader: out of memory");
    size_t pixel_bytes = loader->slot_bytes * (size_t)batch_size;
    for (int k = 0; k < loader->ring_size; k++) {
        ring_buffer *buffer = &loader->ring[k];
        dt_batch *batch = &buffer->batch;
        if (loader->opt.pixel_alloc) {
            if (!(batch->pixels =
                      loader->opt.pixel_alloc(loader->opt.pixel_alloc_user, pixel_bytes, err)))
                return dt_error_prefix(err, "loader: %d batches of %d images of %dx%d",
                                       loader->ring_size, batch_size, loader->opt.image_size,
                                       loader->opt.image_size);
        } else {
            batch->pixels = malloc(pixel_bytes);
        }
        batch->labels = calloc((size_t)batch_size, sizeof *batch->labels);
        batch->counts = calloc((size_t)batch_size, sizeof *batch->counts);
        batch->file_index = calloc((size_t)batch_size, sizeof *batch->file_index);
        buffer->slot_state = calloc((size_t)batch_size, 1);
        buffer->mix_labels = calloc((size_t)batch_size, sizeof *buffer->mix_labels);
        batch->batch_size = batch_size;
        batch->mix_lambda = 1.0f;
        if (!batch->pixels || !batch->labels || !batch->counts || !batch->file_index ||
            !buffer->slot_state || !buffer->mix_labels)
            return dt_fail(err, "loader: out of memory for %d batches of %d images of %dx%d",
                           loader->ring_size, batch_size, loader->opt.image_size,
                           loader->opt.image_size);
        buffer->batch_number = (size_t)k;
    }
    return 0;
}

int dt_loader_create(const dt_dataset *ds, const dt_loader_options *opt, dt_loader **out,
                     dt_error *err) {
    *out = NULL;
    if (!ds || ds->n_files == 0) return dt_fail(err, "loader: empty dataset");
    if (opt->batch_size < 1 || opt->batch_size > DT_MAX_BATCH_SIZE)
        return dt_fail(err, "loader: batch size must be 1..%d, got %d", DT_MAX_BATCH_SIZE,
                       opt->batch_size);
    if (opt->image_size < 1 || opt->image_size > 4096)
        return dt_fail(err, "loader: image size must be 1..4096, got %d", opt->image_size);
    if (opt->workers < 1 || opt->workers > DT_MAX_WORKERS)
        return dt_fail(err, "loader: workers must be 1..%d, got %d", DT_MAX_WORKERS, opt->workers);
    if (opt->prefetch_batches < 2 || opt->prefetch_batches > DT_MAX_PREFETCH_BATCHES)
        return dt_fail(err, "loader: prefetch_batches must be 2..%d, got %d",
                       DT_MAX_PREFETCH_BATCHES, opt->prefetch_batches);

    const dt_mix_params *mix = &opt->mix;
    if (!(mix->mixup_alpha >= 0.0 && mix->cutmix_alpha >= 0.0 && mix->prob >= 0.0 &&
          mix->prob <= 1.0 && mix->switch_prob >= 0.0 && mix->switch_prob <= 1.0 &&
          isfinite(mix->mixup_alpha) && isfinite(mix->cutmix_alpha)))
        return dt_fail(err, "loader: mixup/cutmix settings out of range");
    if (opt->mix_rank < 0 || opt->mix_accumulate < 0 ||
        (opt->mix_ranks > 0 ? opt->mix_rank >= opt->mix_ranks : opt->mix_rank != 0))
        return dt_fail(err, "loader: rank %d of %d ranks", opt->mix_rank, opt->mix_ranks);

    dt_loader *loader = calloc(1, sizeof *loader);
    if (!loader) return dt_fail(err, "loader: out of memory");
    loader->ds = ds;
    loader->opt = *opt;
    loader->slot_bytes = (size_t)opt->image_size * (size_t)opt->image_size * 3;
    loader->ring_size = opt->prefetch_batches;
    loader->reported = calloc(ds->n_files, 1);
    pthread_mutex_init(&loader->lock, NULL);
    pthread_mutex_init(&loader->report_lock, NULL);
    pthread_cond_init(&loader->work_available, NULL);
    pthread_cond_init(&loader->batch_ready, NULL);
    pthread_cond_init(&loader->workers_idle, NULL);
    if (!loader->reported) {
        dt_loader_destroy(loader);
        return dt_fail(err, "loader: out of memory");
    }
    loader->opt.cache = NULL; /* the caller's string need not outlive this call */
    if (opt->cache && strcmp(opt->cache, "none") != 0 &&
        (dt_sample_cache_open(ds, opt, DT_CACHE_RESIZED, opt->cache, &loader->eval_cache, err) ||
         (opt->augment == DT_AUGMENT_CROP_FLIP &&
          dt_sample_cache_open(ds, opt, DT_CACHE_BEFORE_CROP, opt->cache, &loader->crop_cache,
                               err)))) {
        dt_loader_destroy(loader);
        return -1;
    }
    if (allocate_ring(loader, err) != 0) {
        dt_loader_destroy(loader);
        return -1;
    }
    loader->threads = calloc((size_t)opt->workers, sizeof *loader->threads);
    if (!loader->threads) {
        dt_loader_destroy(loader);
        return dt_fail(err, "loader: out of memory");
    }
    for (int t = 0; t < opt->workers; t++) {
        int rc = pthread_create(&loader->threads[t], NULL, worker_main, loader);
        if (rc != 0) {
            dt_loader_destroy(loader);
            return dt_fail(err, "loader: cannot start decode thread %d of %d: %s", t + 1,
                           opt->workers, strerror(rc));
        }
        loader->n_threads++;
    }
    *out = loader;
    return 0;
}

int dt_loader_start(dt_loader *loader, const uint32_t *indices, size_t n_indices, int epoch,
                    int training, dt_error *err) {
    return dt_loader_start_at(loader, indices, n_indices, epoch, training, 0, err);
}

int dt_loader_start_at(dt_loader *loader, const uint32_t *indices, size_t n_indices, int epoch,
                       int training, size_t first_batch, dt_error *err) {
    for (size_t i = 0; i < n_indices; i++)
        if (indices[i] >= loader->ds->n_files)
            return dt_fail(err, "loader: sample index %u out of range (%zu files)", indices[i],
                           loader->ds->n_files);
    uint32_t *copy = malloc((n_indices ? n_indices : 1) * sizeof *copy);
    if (!copy) return dt_fail(err, "loader: out of memory for %zu indices", n_indices);
    if (n_indices) memcpy(copy, indices, n_indices * sizeof *copy);

    size_t batch_size = (size_t)loader->opt.batch_size;
    pthread_mutex_lock(&loader->lock);
    /* Stop handing out the old epoch's images and let the claims and images in flight finish. */
    atomic_store(&loader->next_job, JOBS_CLOSED);
    atomic_store(&loader->draining, 1);
    while (atomic_load(&loader->in_flight) > 0)
        pthread_cond_wait(&loader->workers_idle, &loader->lock);
    atomic_store(&loader->draining, 0);

    free(loader->indices);
    loader->indices = copy;
    loader->n_indices = n_indices;
    loader->epoch = epoch;
    loader->training = training;
    loader->first_batch = first_batch;
    loader->n_batches = (n_indices + batch_size - 1) / batch_size;
    loader->delivered = 0;
    for (int k = 0; k < loader->ring_size; k++) {
        atomic_store(&loader->ring[k].done, 0);
        atomic_store(&loader->ring[k].filled, 0);
        atomic_store(&loader->ring[k].batch_number, (size_t)k);
        loader->ring[k].held = 0;
    }
    loader->started = 1;
    atomic_store(&loader->next_job, 0); /* last: opens the new epoch to the workers */
    pthread_cond_broadcast(&loader->work_available);
    pthread_mutex_unlock(&loader->lock);
    return 0;
}

/* Gives every slot that holds no decoded image a copy of the batch's first decoded one. */
static void finish_batch(dt_loader *loader, ring_buffer *buffer) {
    dt_batch *batch = &buffer->batch;
    int first_decoded = -1;
    for (int s = 0; s < batch->batch_size && first_decoded < 0; s++)
        if (buffer->slot_state[s] == SLOT_DECODED) first_decoded = s;
    batch->n_counted = 0;
    for (int s = 0; s < batch->batch_size; s++) {
        if (buffer->slot_state[s] == SLOT_DECODED) {
            batch->counts[s] = 1;
            batch->n_counted++;
            continue;
        }
        batch->counts[s] = 0;
        uint8_t *dst = batch->pixels + (size_t)s * loader->slot_bytes;
        if (first_decoded >= 0) {
            memcpy(dst, batch->pixels + (size_t)first_decoded * loader->slot_bytes,
                   loader->slot_bytes);
            batch->labels[s] = batch->labels[first_decoded];
            batch->file_index[s] = batch->file_index[first_decoded];
        } else {
            memset(dst, 0, loader->slot_bytes);
        }
    }
}

/* The global micro-batch index of this loader's batch batch_number (dt_loader_options). */
static uint64_t global_batch_index(const dt_loader *loader, size_t batch_number) {
    const uint64_t ranks = loader->opt.mix_ranks > 0 ? (uint64_t)loader->opt.mix_ranks : 1;
    const uint64_t accumulate =
        loader->opt.mix_accumulate > 0 ? (uint64_t)loader->opt.mix_accumulate : 1;
    const uint64_t local = (uint64_t)(loader->first_batch + batch_number);
    return local / accumulate * ranks * accumulate + (uint64_t)loader->opt.mix_rank * accumulate +
           local % accumulate;
}

/* Fillers, then the training batch's mixup/cutmix (dt_mix_batch). Runs without the lock, in
 * the worker that wrote the batch's last slot; no other worker touches the buffer then. */
static void complete_batch(dt_loader *loader, ring_buffer *buffer, size_t batch_number) {
    finish_batch(loader, buffer);
    dt_mix_draw draw = {0};
    draw.lambda = 1.0;
    if (loader->training && dt_mix_enabled(&loader->opt.mix))
        dt_mix_draw_for(&loader->opt.mix, loader->opt.image_size, loader->opt.image_size,
                        loader->opt.seed, loader->epoch, global_batch_index(loader, batch_number),
                        &draw);
    dt_mix_batch(&draw, loader->opt.image_size, buffer->mix_labels, &buffer->batch);
}

static int batch_complete(const dt_loader *loader, ring_buffer *buffer, size_t batch_number) {
    return atomic_load(&buffer->batch_number) == batch_number &&
           atomic_load(&buffer->done) == loader->opt.batch_size;
}

/* dt_loader_next, or with wait 0 dt_loader_try_next: 1 when the batch is not complete. */
static int next_batch(dt_loader *loader, int wait, const dt_batch **batch, dt_error *err) {
    *batch = NULL;
    pthread_mutex_lock(&loader->lock);
    if (!loader->started) {
        pthread_mutex_unlock(&loader->lock);
        return dt_fail(err, "loader: dt_loader_next called before dt_loader_start");
    }
    if (loader->delivered >= loader->n_batches) {
        pthread_mutex_unlock(&loader->lock);
        return 0;
    }
    size_t wanted = loader->delivered;
    ring_buffer *buffer = &loader->ring[wanted % (size_t)loader->ring_size];
    if (buffer->held) {
        pthread_mutex_unlock(&loader->lock);
        return dt_fail(err,
                       "loader: all %d prefetch buffers are held; release batches with "
                       "dt_loader_release before asking for more",
                       loader->ring_size);
    }
    if (!batch_complete(loader, buffer, wanted)) {
        if (!wait) {
            pthread_mutex_unlock(&loader->lock);
            return 1;
        }
        double start = dt_monotonic_seconds();
        while (!batch_complete(loader, buffer, wanted))
            pthread_cond_wait(&loader->batch_ready, &loader->lock);
        loader->wait_seconds += dt_monotonic_seconds() - start;
    }
    buffer->held = 1;
    loader->delivered++;
    pthread_mutex_unlock(&loader->lock);

    *batch = &buffer->batch;
    return 0;
}

int dt_loader_next(dt_loader *loader, const dt_batch **batch, dt_error *err) {
    return next_batch(loader, 1, batch, err);
}

int dt_loader_try_next(dt_loader *loader, const dt_batch **batch, dt_error *err) {
    return next_batch(loader, 0, batch, err);
}

void dt_loader_release(dt_loader *loader, const dt_batch *batch) {
    if (!loader || !batch) return;
    pthread_mutex_lock(&loader->lock);
    for (int k = 0; k < loader->ring_size; k++) {
        ring_buffer *buffer = &loader->ring[k];
        if (&buffer->batch == batch && buffer->held) {
            buffer->held = 0;
            atomic_store(&buffer->filled, 0);
            atomic_store(&buffer->done, 0); /* before the buffer is open to the next batch */
            atomic_store(&buffer->batch_number,
                         atomic_load(&buffer->batch_number) + (size_t)loader->ring_size);
            pthread_cond_broadcast(&loader->work_available);
            break;
        }
    }
    pthread_mutex_unlock(&loader->lock);
}

/* The flags are written by workers under report_lock; read them between epochs (when every
 * started image is finished, as after the last batch). */
const uint8_t *dt_loader_bad_files(const dt_loader *loader) {
    return loader->reported;
}

double dt_loader_wait_seconds(const dt_loader *loader) {
    dt_loader *mutable_loader = (dt_loader *)loader;
    pthread_mutex_lock(&mutable_loader->lock);
    double seconds = loader->wait_seconds;
    pthread_mutex_unlock(&mutable_loader->lock);
    return seconds;
}

void dt_loader_destroy(dt_loader *loader) {
    if (!loader) return;
    pthread_mutex_lock(&loader->lock);
    loader->shutting_down = 1;
    atomic_store(&loader->next_job, JOBS_CLOSED); /* no new image: the workers leave */
    pthread_cond_broadcast(&loader->work_available);
    pthread_mutex_unlock(&loader->lock);
    for (int t = 0; t < loader->n_threads; t++) pthread_join(loader->threads[t], NULL);
    free(loader->threads);
    free_ring(loader);
    free(loader->indices);
    free(loader->reported);
    dt_sample_cache_close(loader->eval_cache);
    dt_sample_cache_close(loader->crop_cache);
    pthread_cond_destroy(&loader->work_available);
    pthread_cond_destroy(&loader->batch_ready);
    pthread_cond_destroy(&loader->workers_idle);
    pthread_mutex_destroy(&loader->lock);
    pthread_mutex_destroy(&loader->report_lock);
    free(loader);
}
