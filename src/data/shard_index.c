/* Building a tar shard's member index by walking its headers: WebDataset grouping (members
 * with the same key, the name up to the first '.' of its last path component, form a sample),
 * KEY.jpg|jpeg|png for the image, KEY.cls for the label. A shard may be hostile: every header
 * is checksummed, every declared size is checked against the file before it is used, names
 * with "..", absolute names, control characters and non-UTF-8 are refused, and links, devices
 * and FIFOs are skipped, each skipped member named once. A shard cut short or not a tar at all
 * is an error naming it and the byte offset. */
#include "dtrain/bytes.h"
#include "dtrain/platform.h"
#include "dtrain/text_escape.h"
#include "shard_internal.h"
#include "tar_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_IMAGE_MEMBER_BYTES ((uint64_t)1 << 30) /* as the limit on image files */
#define MAX_LABEL_MEMBER_BYTES 64
#define MAX_PAX_HEADER_BYTES 65536

/* The sample being gathered: consecutive members with one key. */
typedef struct pending_sample {
    char key[DT_TAR_NAME_MAX + 1];
    int active, has_image, has_label;
    uint64_t offset, size;
    int64_t label;
    char label_problem[160]; /* why the .cls member was refused, when it was */
} pending_sample;

static int push_skipped(dt_shard_index *index, const char *path, const char *name,
                        const char *reason, dt_error *err) {
    if (index->n_skipped == index->skipped_capacity) {
        size_t capacity = index->skipped_capacity ? index->skipped_capacity * 2 : 8;
        char **grown = realloc(index->skipped, capacity * sizeof *grown);
        if (!grown) return dt_fail(err, "%s: out of memory", path);
        index->skipped = grown;
        index->skipped_capacity = capacity;
    }
    char shown[600];
    dt_escape_text(name, shown, sizeof shown);
    size_t length = strlen(shown) + strlen(reason) + 8;
    char *text = malloc(length);
    if (!text) return dt_fail(err, "%s: out of memory", path);
    snprintf(text, length, "%s: %s", shown, reason);
    index->skipped[index->n_skipped++] = text;
    return 0;
}

static int push_sample(dt_shard_index *index, const char *path, const pending_sample *p,
                       dt_error *err) {
    if (index->n_samples == index->samples_capacity) {
        size_t capacity = index->samples_capacity ? index->samples_capacity * 2 : 64;
        dt_shard_sample *grown = realloc(index->samples, capacity * sizeof *grown);
        if (!grown) return dt_fail(err, "%s: out of memory", path);
        index->samples = grown;
        index->samples_capacity = capacity;
    }
    char *key = strdup(p->key);
    if (!key) return dt_fail(err, "%s: out of memory", path);
    index->samples[index->n_samples++] =
        (dt_shard_sample){.key = key, .offset = p->offset, .size = p->size, .label = p->label};
    return 0;
}

static int finish_sample(dt_shard_index *index, const char *path, pending_sample *p,
                         dt_error *err) {
    if (!p->active) return 0;
    int rc = 0;
    if (p->has_image && p->has_label)
        rc = push_sample(index, path, p, err);
    else if (p->has_image)
        rc = push_skipped(
            index, path, p->key,
            p->label_problem[0] ? p->label_problem : "no KEY.cls member with its class index", err);
    else if (p->has_label)
        rc = push_skipped(index, path, p->key, "a KEY.cls member without a .jpg, .jpeg or .png",
                          err);
    memset(p, 0, sizeof *p);
    return rc;
}

/* A member name that is safe to show and to use as a key: relative, no ".." component, UTF-8
 * without control characters. */
static const char *unsafe_name_reason(const char *name) {
    if (!*name) return "an empty member name";
    if (name[0] == '/') return "an absolute member name";
    for (const char *part = name; part;) {
        const char *slash = strchr(part, '/');
        size_t length = slash ? (size_t)(slash - part) : strlen(part);
        if (length == 2 && part[0] == '.' && part[1] == '.') return "a member name with '..'";
        part = slash ? slash + 1 : NULL;
    }
    if (!dt_text_is_printable(name))
        return "a member name that is not UTF-8 or holds control characters";
    return NULL;
}

static int extension_is(const char *ext, const char *want) {
    size_t n = strlen(want);
    if (strlen(ext) != n) return 0;
    for (size_t i = 0; i < n; i++) {
        char c = ext[i];
        if (c >= 'A' && c <= 'Z') c = (char)(c - 'A' + 'a');
        if (c != want[i]) return 0;
    }
    return 1;
}

static const char *type_name(char typeflag) {
    switch (typeflag) {
    case '1':
        return "a hard link member";
    case '2':
        return "a symbolic link member";
    case '3':
        return "a character device member";
    case '4':
        return "a block device member";
    case '6':
        return "a FIFO member";
    default:
        return "a member of an unsupported type";
    }
}

static int read_exact(int fd, uint64_t offset, void *buffer, size_t size, const char *path,
                      dt_error *err) {
    size_t done = 0;
    while (done < size) {
        ssize_t n = pread(fd, (char *)buffer + done, size - done, (off_t)(offset + done));
        if (n < 0 && errno == EINTR) continue;
        if (n < 0)
            return dt_fail(err, "%s: read error at byte %llu: %s", path,
                           (unsigned long long)(offset + done), strerror(errno));
        if (n == 0)
            return dt_fail(err, "%s: truncated shard (ends at byte %llu)", path,
                           (unsigned long long)(offset + done));
        done += (size_t)n;
    }
    return 0;
}

/* The label of a .cls member: decimal digits, optional surrounding whitespace. */
static int parse_label(const char *text, size_t length, int64_t *label) {
    size_t i = 0;
    while (i < length && (text[i] == ' ' || text[i] == '\t' || text[i] == '\n' || text[i] == '\r'))
        i++;
    int64_t value = 0;
    size_t digits = 0;
    for (; i < length && text[i] >= '0' && text[i] <= '9'; i++, digits++) {
        if (value > 100000000) return -1;
        value = value * 10 + (text[i] - '0');
    }
    while (i < length && (text[i] == ' ' || text[i] == '\t' || text[i] == '\n' || text[i] == '\r'))
        i++;
    if (digits == 0 || i != length) return -1;
    *label = value;
    return 0;
}

/* One regular member: starts or extends the sample of its key. */
static int add_member(dt_shard_index *index, const char *path, int fd, const char *name,
                      uint64_t data_at, uint64_t size, pending_sample *p, dt_error *err) {
    const char *unsafe = unsafe_name_reason(name);
    if (unsafe) return push_skipped(index, path, name, unsafe, err);
    const char *base = strrchr(name, '/');
    base = base ? base + 1 : name;
    const char *dot = strchr(base, '.');
    if (!dot || dot == base) return 0; /* no key or no extension: not part of a sample */
    size_t key_length = (size_t)(dot - name);
    if (!p->active || strlen(p->key) != key_length || memcmp(p->key, name, key_length) != 0) {
        if (finish_sample(index, path, p, err)) return -1;
        memcpy(p->key, name, key_length);
        p->key[key_length] = '\0';
        p->active = 1;
    }
    const char *ext = dot + 1;
    if (extension_is(ext, "jpg") || extension_is(ext, "jpeg") || extension_is(ext, "png")) {
        if (p->has_image) return push_skipped(index, path, name, "a second image for its key", err);
        if (size > MAX_IMAGE_MEMBER_BYTES)
            return push_skipped(index, path, name, "an image member larger than 1 GiB", err);
        p->has_image = 1;
        p->offset = data_at;
        p->size = size;
    } else if (extension_is(ext, "cls")) {
        char text[MAX_LABEL_MEMBER_BYTES];
        int64_t label;
        if (size > sizeof text) {
            snprintf(p->label_problem, sizeof p->label_problem,
                     "its .cls member has %llu bytes, not a class index", (unsigned long long)size);
            return 0;
        }
        if (read_exact(fd, data_at, text, (size_t)size, path, err)) return -1;
        if (parse_label(text, (size_t)size, &label) != 0) {
            snprintf(p->label_problem, sizeof p->label_problem,
                     "its .cls member is not a decimal class index");
            return 0;
        }
        p->has_label = 1;
        p->label = label;
    }
    return 0; /* other members (.json, .txt...) belong to the sample but are not used */
}

int dt_shard_index_build(const char *path, dt_shard_index *index, dt_error *err) {
    memset(index, 0, sizeof *index);
    int fd;
    uint64_t file_size;
    if (dt_open_regular_file(path, &fd, &file_size, err)) return -1;
    struct stat info;
    if (fstat(fd, &info) == 0)
        index->shard_mtime_ns = (int64_t)info.st_mtim.tv_sec * 1000000000 + info.st_mtim.tv_nsec;
    index->shard_size = file_size;

    pending_sample *p = calloc(1, sizeof *p);
    char *long_name = malloc(DT_TAR_NAME_MAX + 1);
    char *records = malloc(MAX_PAX_HEADER_BYTES);
    int rc = (p && long_name && records) ? 0 : dt_fail(err, "%s: out of memory", path);
    int have_long_name = 0;
    uint64_t offset = 0;
    while (rc == 0) {
        if (offset == file_size) break; /* no end-of-archive blocks: accepted, as tar does */
        if (offset == 0 && file_size < DT_TAR_BLOCK) {
            rc = dt_fail(err, "%s: not a tar file (%llu bytes, less than one 512-byte header)",
                         path, (unsigned long long)file_size);
            break;
        }
        if (file_size - offset < DT_TAR_BLOCK) {
            rc = dt_fail(err, "%s: truncated shard (a partial header at byte %llu)", path,
                         (unsigned long long)offset);
            break;
        }
        uint8_t block[DT_TAR_BLOCK];
        if ((rc = read_exact(fd, offset, block, sizeof block, path, err))) break;
        dt_tar_header header;
        int parsed = dt_tar_parse_header(block, &header, err);
        if (parsed == 0) break; /* end of archive */
        if (parsed < 0) {
            rc = offset == 0
                     ? dt_error_prefix(err, "%s: not a tar file", path)
                     : dt_error_prefix(err, "%s: at byte %llu", path, (unsigned long long)offset);
            break;
        }
        uint64_t data_at = offset + DT_TAR_BLOCK;
        if (header.size > file_size - data_at || dt_tar_padded(header.size) > file_size - data_at) {
            char shown[300];
            rc = dt_fail(err,
                         "%s: truncated shard: member '%s' at byte %llu declares %llu bytes, "
                         "past the end of the file (%llu bytes)",
                         path, dt_escape_text(header.name, shown, sizeof shown),
                         (unsigned long long)offset, (unsigned long long)header.size,
                         (unsigned long long)file_size);
            break;
        }
        const char *name = have_long_name ? long_name : header.name;
        switch (header.kind) {
        case DT_TAR_PAX_LOCAL:
        case DT_TAR_GNU_LONGNAME: {
            size_t limit = header.kind == DT_TAR_PAX_LOCAL ? MAX_PAX_HEADER_BYTES : DT_TAR_NAME_MAX;
            if (header.size > limit) {
                rc = dt_fail(err, "%s: a %llu-byte extended header at byte %llu", path,
                             (unsigned long long)header.size, (unsigned long long)offset);
                break;
            }
            if ((rc = read_exact(fd, data_at, records, (size_t)header.size, path, err))) break;
            if (header.kind == DT_TAR_GNU_LONGNAME) {
                memcpy(long_name, records, (size_t)header.size);
                long_name[header.size] = '\0'; /* a NUL inside ends the name early */
                have_long_name = 1;
            } else {
                int found =
                    dt_tar_pax_path(records, (size_t)header.size, long_name, DT_TAR_NAME_MAX + 1);
                if (found < 0) {
                    rc = dt_fail(err, "%s: a malformed pax header at byte %llu", path,
                                 (unsigned long long)offset);
                    break;
                }
                if (found) have_long_name = 1;
            }
            break;
        }
        case DT_TAR_PAX_GLOBAL:
        case DT_TAR_DIRECTORY:
            have_long_name = 0;
            break;
        case DT_TAR_OTHER:
            rc = push_skipped(index, path, name, type_name(header.typeflag), err);
            have_long_name = 0;
            break;
        case DT_TAR_REGULAR:
            rc = add_member(index, path, fd, name, data_at, header.size, p, err);
            have_long_name = 0;
            break;
        }
        offset = data_at + dt_tar_padded(header.size);
    }
    if (rc == 0) rc = finish_sample(index, path, p, err);
    close(fd);
    free(p);
    free(long_name);
    free(records);
    if (rc) dt_shard_index_free(index);
    return rc;
}

void dt_shard_index_free(dt_shard_index *index) {
    if (!index) return;
    for (size_t i = 0; i < index->n_samples; i++) free(index->samples[i].key);
    free(index->samples);
    for (size_t i = 0; i < index->n_skipped; i++) free(index->skipped[i]);
    free(index->skipped);
    memset(index, 0, sizeof *index);
}
