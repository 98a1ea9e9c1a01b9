/* The SHARD.idx file beside a tar shard: its member index as text, so that a later start reads
 * one small file per shard instead of every header. It records the shard's size and modification
 * time and is used only while both match; anything unreadable in it means "rebuild", never an
 * error. Written atomically (temporary file, rename); a read-only folder keeps the index in
 * memory only.
 *
 *   dtrain-shard-index 1
 *   shard <size> <mtime_ns> <samples> <skipped>
 *   s <offset> <size> <label> <key>      one line per sample, in member order
 *   k <name: reason>                     one line per skipped member
 */
#include "dtrain/platform.h"
#include "shard_internal.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define INDEX_MAGIC "dtrain-shard-index 1\n"
#define MAX_INDEX_BYTES ((size_t)1 << 31)

static char *next_line(char **cursor, char *end) {
    char *line = *cursor;
    if (line >= end) return NULL;
    char *newline = memchr(line, '\n', (size_t)(end - line));
    if (!newline) return NULL;
    *newline = '\0';
    *cursor = newline + 1;
    return line;
}

static int parse_u64(const char **text, uint64_t *value) {
    const char *p = *text;
    if (*p < '0' || *p > '9') return -1;
    errno = 0;
    char *end;
    unsigned long long v = strtoull(p, &end, 10);
    if (errno || (*end != ' ' && *end != '\0')) return -1;
    *value = v;
    *text = *end ? end + 1 : end;
    return 0;
}

static int parse_body(char *text, size_t length, uint64_t shard_size, int64_t shard_mtime_ns,
                      dt_shard_index *index) {
    char *cursor = text, *end = text + length;
    if (length < strlen(INDEX_MAGIC) || memcmp(text, INDEX_MAGIC, strlen(INDEX_MAGIC)) != 0)
        return -1;
    cursor += strlen(INDEX_MAGIC);
    char *line = next_line(&cursor, end);
    if (!line || strncmp(line, "shard ", 6) != 0) return -1;
    const char *p = line + 6;
    uint64_t size, mtime, n_samples, n_skipped;
    if (parse_u64(&p, &size) || parse_u64(&p, &mtime) || parse_u64(&p, &n_samples) ||
        parse_u64(&p, &n_skipped) || *p)
        return -1;
    if (size != shard_size || (int64_t)mtime != shard_mtime_ns) return 0; /* stale */
    if (n_samples > shard_size / 1024 + 1 || n_skipped > shard_size / 512 + 1) return -1;
    index->samples = calloc(n_samples ? n_samples : 1, sizeof *index->samples);
    index->skipped = calloc(n_skipped ? n_skipped : 1, sizeof *index->skipped);
    if (!index->samples || !index->skipped) return -1;
    index->samples_capacity = n_samples;
    index->skipped_capacity = n_skipped;
    for (uint64_t i = 0; i < n_samples; i++) {
        if (!(line = next_line(&cursor, end)) || strncmp(line, "s ", 2) != 0) return -1;
        p = line + 2;
        uint64_t offset, bytes, label;
        if (parse_u64(&p, &offset) || parse_u64(&p, &bytes) || parse_u64(&p, &label) || !*p)
            return -1;
        if (offset > shard_size || bytes > shard_size - offset || label > INT32_MAX) return -1;
        char *key = strdup(p);
        if (!key) return -1;
        index->samples[index->n_samples++] =
            (dt_shard_sample){.key = key, .offset = offset, .size = bytes, .label = (int64_t)label};
    }
    for (uint64_t i = 0; i < n_skipped; i++) {
        if (!(line = next_line(&cursor, end)) || strncmp(line, "k ", 2) != 0) return -1;
        if (!(index->skipped[index->n_skipped] = strdup(line + 2))) return -1;
        index->n_skipped++;
    }
    if (cursor != end) return -1;
    index->shard_size = shard_size;
    index->shard_mtime_ns = shard_mtime_ns;
    return 1;
}

int dt_shard_index_load(const char *path, uint64_t shard_size, int64_t shard_mtime_ns,
                        dt_shard_index *index) {
    memset(index, 0, sizeof *index);
    size_t name_length = strlen(path) + 5;
    char *name = malloc(name_length);
    if (!name) return 0;
    snprintf(name, name_length, "%s.idx", path);
    uint8_t *bytes = NULL;
    size_t size = 0;
    dt_error ignored = {{0}, 0};
    int rc = dt_read_file(name, MAX_INDEX_BYTES, &bytes, &size, &ignored);
    free(name);
    if (rc != 0) return 0;
    char *text = realloc(bytes, size + 1);
    if (!text) {
        free(bytes);
        return 0;
    }
    text[size] = '\0';
    int found = parse_body(text, size, shard_size, shard_mtime_ns, index);
    free(text);
    if (found != 1) {
        dt_shard_index_free(index);
        return 0;
    }
    return 1;
}

int dt_shard_index_save(const char *path, const dt_shard_index *index, dt_error *err) {
    size_t length = strlen(path) + 32;
    char *final_name = malloc(length), *temp_name = malloc(length);
    if (!final_name || !temp_name) {
        free(final_name);
        free(temp_name);
        return dt_fail(err, "out of memory");
    }
    snprintf(final_name, length, "%s.idx", path);
    snprintf(temp_name, length, "%s.idx.%ld.tmp", path, (long)getpid());
    FILE *out = fopen(temp_name, "wbx");
    int rc = 0;
    if (!out) {
        rc = dt_fail(err, "%s: %s", temp_name, strerror(errno));
    } else {
        fputs(INDEX_MAGIC, out);
        fprintf(out, "shard %" PRIu64 " %" PRId64 " %zu %zu\n", index->shard_size,
                index->shard_mtime_ns, index->n_samples, index->n_skipped);
        for (size_t i = 0; i < index->n_samples; i++) {
            const dt_shard_sample *s = &index->samples[i];
            fprintf(out, "s %" PRIu64 " %" PRIu64 " %" PRId64 " %s\n", s->offset, s->size, s->label,
                    s->key);
        }
        for (size_t i = 0; i < index->n_skipped; i++) fprintf(out, "k %s\n", index->skipped[i]);
        int failed = ferror(out);
        if (fclose(out) != 0 || failed) rc = dt_fail(err, "%s: write failed", temp_name);
        if (rc == 0 && rename(temp_name, final_name) != 0)
            rc = dt_fail(err, "%s: %s", final_name, strerror(errno));
        if (rc) unlink(temp_name);
    }
    free(final_name);
    free(temp_name);
    return rc;
}

int dt_shard_index_get(const char *path, dt_shard_index *index, dt_error *err) {
    struct stat info;
    if (stat(path, &info) == 0 && S_ISREG(info.st_mode)) {
        int64_t mtime_ns = (int64_t)info.st_mtim.tv_sec * 1000000000 + info.st_mtim.tv_nsec;
        if (dt_shard_index_load(path, (uint64_t)info.st_size, mtime_ns, index)) return 0;
    }
    if (dt_shard_index_build(path, index, err)) return -1;
    dt_error ignored = {{0}, 0};
    (void)dt_shard_index_save(path, index, &ignored); /* read-only folder: in memory only */
    return 0;
}
