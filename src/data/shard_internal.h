/* The member index of one tar shard: its samples (image member offset and size, label, key)
 * and the members skipped with the reason, built by walking the tar headers or read back from
 * the SHARD.idx file beside it. */
#ifndef DTRAIN_SHARD_INTERNAL_H
#define DTRAIN_SHARD_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "dtrain/data.h"
#include "dtrain/error.h"

typedef struct dt_shard_sample {
    char *key;
    uint64_t offset, size; /* the image member's data */
    int64_t label;         /* from KEY.cls; checked against classes.txt by the caller */
} dt_shard_sample;

typedef struct dt_shard_index {
    dt_shard_sample *samples;
    size_t n_samples, samples_capacity;
    char **skipped; /* "NAME: reason" (printable), one per skipped member or sample */
    size_t n_skipped, skipped_capacity;
    uint64_t shard_size;
    int64_t shard_mtime_ns;
} dt_shard_index;

/* Walks the headers of the shard at path (never reading image data). */
int dt_shard_index_build(const char *path, dt_shard_index *index, dt_error *err);

/* Reads path + ".idx"; returns 1 when it exists, parses and matches the shard's current size
 * and modification time, 0 otherwise (the index is then to be rebuilt). */
int dt_shard_index_load(const char *path, uint64_t shard_size, int64_t shard_mtime_ns,
                        dt_shard_index *index);

/* Writes path + ".idx" atomically; 0 on success, -1 (with err) when the folder is not writable. */
int dt_shard_index_save(const char *path, const dt_shard_index *index, dt_error *err);

void dt_shard_index_free(dt_shard_index *index);

/* Index of a shard: loaded when its file is current, else built and saved (a read-only folder
 * keeps it in memory only). */
int dt_shard_index_get(const char *path, dt_shard_index *index, dt_error *err);

/* Closes the shard files a dataset opened for reading (dt_dataset_free calls it). */
void dt_shard_handles_free(dt_shard_handles *handles);

#endif
