/* Reads a safetensors file and validates it as the reference implementation does: the 8-byte
 * little-endian header length (at most 100,000,000 and inside the file), a UTF-8 JSON header,
 * and tensor data that, sorted by offset, tiles the data section exactly (no holes, no overlaps,
 * no trailing bytes), each tensor spanning product(shape) * dtype size bytes. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "dtrain/bytes.h"
#include "dtrain/platform.h"
#include "dtrain/safetensors.h"
#include "io/safetensors_header.h"

void dt_safetensors_free(dt_safetensors *st) {
    if (!st) return;
    for (size_t i = 0; i < st->n_tensors; i++) free(st->tensors[i].name);
    for (size_t i = 0; i < st->n_metadata; i++) {
        free(st->metadata[i].key);
        free(st->metadata[i].value);
    }
    free(st->tensors);
    free(st->metadata);
    if (st->file_mapped)
        munmap(st->file_bytes, st->file_size);
    else
        free(st->file_bytes);
    free(st->path);
    memset(st, 0, sizeof *st);
}

const dt_st_tensor *dt_safetensors_find(const dt_safetensors *st, const char *name) {
    for (size_t i = 0; i < st->n_tensors; i++)
        if (strcmp(st->tensors[i].name, name) == 0) return &st->tensors[i];
    return NULL;
}

const char *dt_safetensors_metadata_value(const dt_safetensors *st, const char *key) {
    for (size_t i = 0; i < st->n_metadata; i++)
        if (strcmp(st->metadata[i].key, key) == 0) return st->metadata[i].value;
    return NULL;
}

void dt_st_format_shape(const dt_st_tensor *t, char *out, size_t size) {
    size_t used = (size_t)snprintf(out, size, "[");
    for (int i = 0; i < t->ndim && used < size; i++)
        used += (size_t)snprintf(out + used, size - used, "%s%lld", i ? ", " : "",
                                 (long long)t->shape[i]);
    if (used < size) snprintf(out + used, size - used, "]");
}

/* Checks that the tensor's byte span matches its shape and dtype (with overflow checks). */
static int check_tensor_span(const char *name, const dt_st_tensor *t, dt_error *err) {
    /* As the reference: the element count (folded in shape order), then times the dtype size,
     * each step checked for overflow. */
    size_t elements = 1, bytes = 0, dtype_size = dt_st_dtype_size(t->dtype);
    int overflow = 0;
    for (int i = 0; i < t->ndim && !overflow; i++) {
        size_t dim = (size_t)t->shape[i];
        if (dim != 0 && elements > SIZE_MAX / dim)
            overflow = 1;
        else
            elements *= dim;
    }
    if (!overflow && elements > SIZE_MAX / dtype_size)
        overflow = 1;
    else
        bytes = elements * dtype_size;
    char shape[200];
    dt_st_format_shape(t, shape, sizeof shape);
    if (overflow)
        return dt_fail(err,
                       "%s: tensor '%s': shape %s of %s is too large (its byte count overflows)",
                       name, t->name, shape, dt_st_dtype_name(t->dtype));
    if (bytes != t->end - t->begin)
        return dt_fail(
            err,
            "%s: tensor '%s': data_offsets [%zu, %zu] span %zu bytes but shape %s of %s needs %zu",
            name, t->name, t->begin, t->end, t->end - t->begin, shape, dt_st_dtype_name(t->dtype),
            bytes);
    return 0;
}

static int compare_offsets(const void *a, const void *b) {
    const dt_st_tensor *ta = *(const dt_st_tensor *const *)a, *tb = *(const dt_st_tensor *const *)b;
    if (ta->begin != tb->begin) return ta->begin < tb->begin ? -1 : 1;
    if (ta->end != tb->end) return ta->end < tb->end ? -1 : 1;
    return ta < tb ? -1 : ta > tb; /* header order breaks ties */
}

/* Validates the data layout: sorted by (begin, end), the tensors must cover [0, data_size)
 * exactly, each with the right span. */
static int validate_layout(const char *name, const dt_safetensors *st, size_t data_size,
                           dt_error *err) {
    const dt_st_tensor **order = malloc((st->n_tensors ? st->n_tensors : 1) * sizeof *order);
    if (!order) return dt_fail(err, "%s: out of memory validating the header", name);
    for (size_t i = 0; i < st->n_tensors; i++) order[i] = &st->tensors[i];
    qsort(order, st->n_tensors, sizeof *order, compare_offsets);
    size_t expected_begin = 0;
    const dt_st_tensor *previous = NULL;
    int result = 0;
    for (size_t i = 0; i < st->n_tensors && result == 0; i++) {
        const dt_st_tensor *t = order[i];
        if (t->end < t->begin) {
            result = dt_fail(err, "%s: tensor '%s': data_offsets [%zu, %zu] end before they begin",
                             name, t->name, t->begin, t->end);
        } else if (t->begin > expected_begin && !previous) {
            result = dt_fail(err,
                             "%s: tensor '%s': data_offsets [%zu, %zu] leave a hole of %zu bytes "
                             "at the start of the data",
                             name, t->name, t->begin, t->end, t->begin);
        } else if (t->begin > expected_begin) {
            result = dt_fail(err,
                             "%s: tensor '%s': data_offsets [%zu, %zu] leave a hole of %zu bytes "
                             "after tensor '%s' (which ends at %zu)",
                             name, t->name, t->begin, t->end, t->begin - expected_begin,
                             previous->name, expected_begin);
        } else if (t->begin < expected_begin) {
            result = dt_fail(err,
                             "%s: tensor '%s': data_offsets [%zu, %zu] overlap tensor '%s' "
                             "(data_offsets [%zu, %zu])",
                             name, t->name, t->begin, t->end, previous->name, previous->begin,
                             previous->end);
        } else {
            result = check_tensor_span(name, t, err);
        }
        expected_begin = t->end;
        previous = t;
    }
    free(order);
    if (result < 0) return -1;
    if (expected_begin < data_size)
        return dt_fail(err,
                       "%s: %zu trailing bytes after the tensor data (the data section is %zu "
                       "bytes but the tensors end at %zu)",
                       name, data_size - expected_begin, data_size, expected_begin);
    if (expected_begin > data_size)
        return dt_fail(
            err,
            "%s: truncated file: the tensors need %zu bytes of data but only %zu follow the header",
            name, expected_begin, data_size);
    return 0;
}

static uint64_t read_le64(const uint8_t *bytes) {
    uint64_t value = 0;
    for (int i = 7; i >= 0; i--) value = (value << 8) | bytes[i];
    return value;
}

/* The 8-byte header length of a file of file_size bytes: within the reference limit and the
 * file. */
static int check_header_length(const uint8_t first8[8], uint64_t file_size, const char *name,
                               uint64_t *header_length, dt_error *err) {
    if (file_size < 8)
        return dt_fail(err, "%s: file is %llu bytes, too short for the 8-byte header length", name,
                       (unsigned long long)file_size);
    *header_length = read_le64(first8);
    if (*header_length > DT_ST_MAX_HEADER_SIZE)
        return dt_fail(
            err, "%s: header length %llu exceeds the limit of %u bytes (not a safetensors file?)",
            name, (unsigned long long)*header_length, DT_ST_MAX_HEADER_SIZE);
    if (*header_length > file_size - 8)
        return dt_fail(
            err, "%s: truncated file: header length %llu needs %llu bytes but the file has %llu",
            name, (unsigned long long)*header_length, (unsigned long long)*header_length + 8,
            (unsigned long long)file_size);
    return 0;
}

/* The header text (UTF-8 JSON) into st's tensors and metadata, checked against a data section of
 * data_size bytes. */
static int parse_header_text(const uint8_t *header, size_t header_length, uint64_t data_size,
                             const char *name, dt_safetensors *st, dt_error *err) {
    size_t bad_offset = 0;
    if (dt_utf8_validate(header, header_length, &bad_offset) < 0)
        return dt_fail(err, "%s: header is not valid UTF-8 (byte 0x%02X at header byte %zu)", name,
                       header[bad_offset], bad_offset);
    if (data_size > SIZE_MAX)
        return dt_fail(err, "%s: %llu bytes of tensor data do not fit in memory", name,
                       (unsigned long long)data_size);
    if (dt_st_parse_header((const char *)header, header_length, name, st, err) < 0 ||
        validate_layout(name, st, (size_t)data_size, err) < 0)
        return -1;
    return 0;
}

/* Parses a file image it takes ownership of (freed with st, also on failure). */
static int parse_owned(uint8_t *bytes, size_t size, const char *name, dt_safetensors *st,
                       dt_error *err) {
    memset(st, 0, sizeof *st);
    st->file_bytes = bytes;
    st->file_size = size;
    st->path = strdup(name);
    if (!st->path) {
        dt_safetensors_free(st);
        return dt_fail(err, "%s: out of memory", name);
    }
    uint64_t header_length = 0;
    if (check_header_length(bytes, size, name, &header_length, err) < 0 ||
        parse_header_text(bytes + 8, (size_t)header_length, size - 8 - header_length, name, st,
                          err) < 0) {
        dt_safetensors_free(st);
        return -1;
    }
    const uint8_t *data = bytes + 8 + header_length;
    for (size_t i = 0; i < st->n_tensors; i++) st->tensors[i].data = data + st->tensors[i].begin;
    return 0;
}

/* Reads exactly size bytes at offset; fails naming the file. */
static int read_exactly(int fd, void *buffer, size_t size, uint64_t offset, const char *name,
                        dt_error *err) {
    size_t got = 0;
    while (got < size) {
        ssize_t n = pread(fd, (uint8_t *)buffer + got, size - got, (off_t)(offset + got));
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return dt_fail(err, "%s: read error: %s", name, strerror(errno));
        if (n == 0) return dt_fail(err, "%s: the file shrank while being read", name);
        got += (size_t)n;
    }
    return 0;
}

int dt_safetensors_parse(const uint8_t *bytes, size_t size, const char *name, dt_safetensors *st,
                         dt_error *err) {
    if (!name) name = "(memory)";
    memset(st, 0, sizeof *st);
    uint8_t *copy = malloc(size ? size : 1);
    if (!copy) return dt_fail(err, "%s: out of memory (%zu bytes)", name, size);
    if (size) memcpy(copy, bytes, size);
    return parse_owned(copy, size, name, st, err);
}

int dt_safetensors_read(const char *path, dt_safetensors *st, dt_error *err) {
    memset(st, 0, sizeof *st);
    int fd = -1;
    uint64_t file_size = 0, header_length = 0;
    if (dt_open_regular_file(path, &fd, &file_size, err) != 0) return -1;
    uint8_t first8[8] = {0}, *header = NULL;
    int rc = -1;
    if (!(st->path = strdup(path))) {
        dt_fail(err, "%s: out of memory", path);
        goto done;
    }
    /* the length and the header, and nothing else, before anything is trusted */
    if (read_exactly(fd, first8, file_size < 8 ? 0 : 8, 0, path, err) < 0 ||
        check_header_length(first8, file_size, path, &header_length, err) < 0)
        goto done;
    if (!(header = malloc(header_length ? (size_t)header_length : 1))) {
        dt_fail(err, "%s: out of memory for a header of %llu bytes", path,
                (unsigned long long)header_length);
        goto done;
    }
    if (read_exactly(fd, header, (size_t)header_length, 8, path, err) < 0 ||
        parse_header_text(header, (size_t)header_length, file_size - 8 - header_length, path, st,
                          err) < 0)
        goto done;
    /* The layout matched the file's size: map it, so that only the pages of the tensors the
     * caller reads are ever loaded. */
    void *mapped = mmap(NULL, (size_t)file_size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (mapped == MAP_FAILED) {
        dt_fail(err, "%s: cannot map %llu bytes: %s", path, (unsigned long long)file_size,
                strerror(errno));
        goto done;
    }
    st->file_bytes = mapped;
    st->file_size = (size_t)file_size;
    st->file_mapped = 1;
    const uint8_t *data = st->file_bytes + 8 + header_length;
    for (size_t i = 0; i < st->n_tensors; i++) st->tensors[i].data = data + st->tensors[i].begin;
    rc = 0;
done:
    free(header);
    close(fd);
    if (rc) dt_safetensors_free(st);
    return rc;
}
