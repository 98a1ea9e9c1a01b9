/* The data source behind a dataset, an ImageFolder or tar shards: opening data.root as the
 * right one, reading a sample's bytes (a whole file, or a shard member by offset, through shard
 * files opened once and shared by the loader's threads), and the dataset as one byte string
 * that rank 0 sends to the other ranks instead of each rank scanning the folder. */
#include "dtrain/data.h"
#include "dtrain/platform.h"
#include "shard_internal.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_SAMPLE_BYTES ((size_t)1 << 30)

struct dt_shard_handles {
    pthread_mutex_t lock;
    int *fds; /* per shard, -1 until first read */
    int count;
};

int dt_dataset_open(const char *root, dt_dataset *ds, dt_error *err) {
    if (dt_shards_detect(root)) return dt_shards_scan(root, ds, err);
    return dt_dataset_scan(root, ds, err);
}

void dt_shard_handles_free(dt_shard_handles *handles) {
    if (!handles) return;
    for (int i = 0; i < handles->count; i++)
        if (handles->fds[i] >= 0) close(handles->fds[i]);
    free(handles->fds);
    pthread_mutex_destroy(&handles->lock);
    free(handles);
}

/* The shard's descriptor, opening it on first use. The handle table is created by the first
 * caller; the dataset is otherwise read-only, so the table is the one shared mutable part. */
static pthread_mutex_t handles_create_lock = PTHREAD_MUTEX_INITIALIZER;

static int shard_fd(const dt_dataset *ds, int shard, int *fd, dt_error *err) {
    dt_dataset *mutable_ds = (dt_dataset *)ds;
    pthread_mutex_lock(&handles_create_lock);
    if (!mutable_ds->handles) {
        dt_shard_handles *h = calloc(1, sizeof *h);
        if (h && (h->fds = malloc((size_t)ds->n_shards * sizeof *h->fds))) {
            for (int i = 0; i < ds->n_shards; i++) h->fds[i] = -1;
            h->count = ds->n_shards;
            pthread_mutex_init(&h->lock, NULL);
            mutable_ds->handles = h;
        } else {
            free(h);
        }
    }
    pthread_mutex_unlock(&handles_create_lock);
    dt_shard_handles *h = ds->handles;
    if (!h) return dt_fail(err, "out of memory");
    pthread_mutex_lock(&h->lock);
    int rc = 0;
    if (h->fds[shard] < 0) {
        uint64_t size;
        rc = dt_open_regular_file(ds->shard_paths[shard], &h->fds[shard], &size, err);
    }
    *fd = h->fds[shard];
    pthread_mutex_unlock(&h->lock);
    return rc;
}

int dt_dataset_read_sample(const dt_dataset *ds, uint32_t index, uint8_t **bytes, size_t *size,
                           dt_error *err) {
    *bytes = NULL;
    *size = 0;
    if (index >= ds->n_files) return dt_fail(err, "sample %u out of range", index);
    const dt_image_file *file = &ds->files[index];
    if (ds->n_shards == 0) return dt_read_file(file->path, MAX_SAMPLE_BYTES, bytes, size, err);
    if (file->shard < 0 || file->shard >= ds->n_shards || file->size > MAX_SAMPLE_BYTES)
        return dt_fail(err, "%s: bad sample entry", file->path);
    int fd = -1;
    if (shard_fd(ds, file->shard, &fd, err)) return -1;
    uint8_t *buffer = malloc(file->size ? (size_t)file->size : 1);
    if (!buffer) return dt_fail(err, "%s: out of memory", file->path);
    size_t done = 0;
    while (done < file->size) {
        ssize_t n =
            pread(fd, buffer + done, (size_t)file->size - done, (off_t)(file->offset + done));
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            free(buffer);
            return dt_fail(err, "%s: %s", file->path,
                           n < 0 ? strerror(errno)
                                 : "the shard is shorter than its index says "
                                   "(changed since it was indexed?)");
        }
        done += (size_t)n;
    }
    *bytes = buffer;
    *size = done;
    return 0;
}
