/* A dataset as one byte string: rank 0 scans data.root and broadcasts this to the other ranks,
 * so that a job of N ranks lists a folder of 100,000 files (or reads the shards' indexes) once
 * instead of N times. Little-endian, length-prefixed; the reader checks every length, count and
 * index against the bytes it has before using it. */
#include "dtrain/data.h"

#include <stdlib.h>
#include <string.h>

#define SHARE_MAGIC "dtrain-dataset-1"

typedef struct writer {
    uint8_t *data;
    size_t length, capacity;
    int failed;
} writer;

static void put(writer *w, const void *bytes, size_t n) {
    if (w->failed) return;
    if (w->length + n > w->capacity) {
        size_t capacity = w->capacity ? w->capacity : 4096;
        while (capacity < w->length + n) capacity *= 2;
        uint8_t *grown = realloc(w->data, capacity);
        if (!grown) {
            w->failed = 1;
            return;
        }
        w->data = grown;
        w->capacity = capacity;
    }
    memcpy(w->data + w->length, bytes, n);
    w->length += n;
}

static void put_u64(writer *w, uint64_t value) {
    uint8_t b[8];
    for (int i = 0; i < 8; i++) b[i] = (uint8_t)(value >> (8 * i));
    put(w, b, 8);
}

static void put_string(writer *w, const char *text) {
    size_t n = text ? strlen(text) : 0;
    put_u64(w, n);
    put(w, text, n);
}

int dt_dataset_pack_bytes(const dt_dataset *ds, uint8_t **out, size_t *size, dt_error *err) {
    writer w = {0};
    put(&w, SHARE_MAGIC, strlen(SHARE_MAGIC));
    put_string(&w, ds->root);
    put_u64(&w, (uint64_t)ds->n_classes);
    for (int i = 0; i < ds->n_classes; i++) put_string(&w, ds->class_names[i]);
    put_u64(&w, (uint64_t)ds->n_shards);
    for (int i = 0; i < ds->n_shards; i++) put_string(&w, ds->shard_paths[i]);
    put_u64(&w, ds->n_skipped_members);
    for (size_t i = 0; i < ds->n_skipped_members; i++)
        put_string(&w, ds->skipped_members ? ds->skipped_members[i] : NULL);
    put_u64(&w, ds->n_files);
    for (size_t i = 0; i < ds->n_files; i++) {
        const dt_image_file *f = &ds->files[i];
        put_string(&w, f->path);
        put_u64(&w, (uint64_t)(uint32_t)f->label);
        put_u64(&w, (uint64_t)(uint32_t)f->shard);
        put_u64(&w, f->offset);
        put_u64(&w, f->size);
    }
    if (w.failed) {
        free(w.data);
        return dt_fail(err, "out of memory packing the file list");
    }
    *out = w.data;
    *size = w.length;
    return 0;
}

typedef struct reader {
    const uint8_t *data;
    size_t length, at;
    int failed;
} reader;

static uint64_t get_u64(reader *r) {
    if (r->failed || r->length - r->at < 8) {
        r->failed = 1;
        return 0;
    }
    uint64_t value = 0;
    for (int i = 0; i < 8; i++) value |= (uint64_t)r->data[r->at + i] << (8 * i);
    r->at += 8;
    return value;
}

static char *get_string(reader *r) {
    uint64_t n = get_u64(r);
    if (r->failed || n > r->length - r->at || memchr(r->data + r->at, '\0', (size_t)n)) {
        r->failed = 1;
        return NULL;
    }
    char *text = malloc((size_t)n + 1);
    if (!text) {
        r->failed = 1;
        return NULL;
    }
    memcpy(text, r->data + r->at, (size_t)n);
    text[n] = '\0';
    r->at += (size_t)n;
    return text;
}

int dt_dataset_unpack_bytes(const uint8_t *bytes, size_t size, dt_dataset *ds, dt_error *err) {
    memset(ds, 0, sizeof *ds);
    reader r = {.data = bytes, .length = size};
    size_t magic = strlen(SHARE_MAGIC);
    if (size < magic || memcmp(bytes, SHARE_MAGIC, magic) != 0)
        return dt_fail(err, "received file list: not a dataset");
    r.at = magic;
    ds->root = get_string(&r);
    uint64_t n_classes = get_u64(&r);
    /* every count is bounded by what the remaining bytes could hold (8 bytes an entry at least) */
    if (!r.failed && n_classes <= (r.length - r.at) / 8 && n_classes > 0) {
        ds->class_names = calloc((size_t)n_classes, sizeof *ds->class_names);
        if (!ds->class_names) r.failed = 1;
        for (uint64_t i = 0; !r.failed && i < n_classes; i++) {
            ds->class_names[i] = get_string(&r);
            ds->n_classes = (int)i + 1;
        }
    } else {
        r.failed = 1;
    }
    uint64_t n_shards = get_u64(&r);
    if (!r.failed && n_shards <= (r.length - r.at) / 8) {
        if (n_shards) {
            ds->shard_paths = calloc((size_t)n_shards, sizeof *ds->shard_paths);
            if (!ds->shard_paths) r.failed = 1;
        }
        for (uint64_t i = 0; !r.failed && i < n_shards; i++) {
            ds->shard_paths[i] = get_string(&r);
            ds->n_shards = (int)i + 1;
        }
    } else {
        r.failed = 1;
    }
    uint64_t n_skipped = get_u64(&r);
    if (!r.failed && n_skipped <= (r.length - r.at) / 8) {
        if (n_skipped && !(ds->skipped_members = calloc((size_t)n_skipped, sizeof(char *))))
            r.failed = 1;
        for (uint64_t i = 0; !r.failed && i < n_skipped; i++) {
            ds->skipped_members[i] = get_string(&r);
            ds->n_skipped_members = (size_t)i + 1;
        }
    } else {
        r.failed = 1;
    }
    uint64_t n_files = get_u64(&r);
    if (!r.failed && n_files > 0 && n_files <= (r.length - r.at) / 40 && n_files <= UINT32_MAX) {
        ds->files = calloc((size_t)n_files, sizeof *ds->files);
        if (!ds->files) r.failed = 1;
        for (uint64_t i = 0; !r.failed && i < n_files; i++) {
            dt_image_file *f = &ds->files[i];
            f->path = get_string(&r);
            ds->n_files = (size_t)i + 1;
            uint64_t label = get_u64(&r), shard = get_u64(&r);
            f->offset = get_u64(&r);
            f->size = get_u64(&r);
            if (label >= n_classes || (n_shards ? shard >= n_shards : shard != 0)) r.failed = 1;
            f->label = (int)label;
            f->shard = (int)shard;
        }
    } else {
        r.failed = 1;
    }
    if (r.failed || r.at != r.length) {
        dt_dataset_free(ds);
        return dt_fail(err, "received file list: malformed or cut short");
    }
    return 0;
}
