/* `SHARD:KEY` names, the names outputs give shard samples (predictions.csv, warnings, the
 * report), resolved back to the sample's image bytes, so that commands taking image paths
 * (`dtrain predict`) accept them. The shard's index (its .idx, or its headers) gives the member;
 * the last shard's index is kept, so that many keys of one shard cost one index read. */
#include "dtrain/data.h"
#include "dtrain/platform.h"
#include "shard_internal.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_MEMBER_BYTES ((size_t)1 << 30)

static int is_regular_file(const char *path) {
    struct stat info;
    return stat(path, &info) == 0 && S_ISREG(info.st_mode);
}

size_t dt_shard_member_split(const char *name) {
    if (is_regular_file(name)) return 0; /* a file of that name wins */
    for (const char *at = strstr(name, ".tar:"); at; at = strstr(at + 1, ".tar:")) {
        size_t length = (size_t)(at - name) + 4;
        char *shard = strndup(name, length);
        int found = shard && name[length + 1] && is_regular_file(shard);
        free(shard);
        if (found) return length;
    }
    return 0;
}

/* The last shard looked up; the index is reused while the shard's size and time match. */
static pthread_mutex_t last_lock = PTHREAD_MUTEX_INITIALIZER;
static char *last_path;
static dt_shard_index last_index;

static int find_member(const char *shard, const char *key, uint64_t *offset, uint64_t *size,
                       dt_error *err) {
    struct stat info;
    if (stat(shard, &info) != 0) return dt_fail(err, "%s: %s", shard, strerror(errno));
    int64_t mtime = (int64_t)info.st_mtim.tv_sec * 1000000000 + info.st_mtim.tv_nsec;
    pthread_mutex_lock(&last_lock);
    int rc = 0;
    if (!last_path || strcmp(last_path, shard) != 0 ||
        last_index.shard_size != (uint64_t)info.st_size || last_index.shard_mtime_ns != mtime) {
        free(last_path);
        last_path = NULL;
        dt_shard_index_free(&last_index);
        rc = dt_shard_index_get(shard, &last_index, err);
        if (rc == 0 && !(last_path = strdup(shard))) rc = dt_fail(err, "out of memory");
        if (rc) dt_shard_index_free(&last_index);
    }
    int found = 0;
    for (size_t i = 0; rc == 0 && i < last_index.n_samples && !found; i++)
        if (strcmp(last_index.samples[i].key, key) == 0) {
            *offset = last_index.samples[i].offset;
            *size = last_index.samples[i].size;
            found = 1;
        }
    pthread_mutex_unlock(&last_lock);
    if (rc) return -1;
    if (!found)
        return dt_fail(err, "no image with key %s in %s (skipped while indexing, or not there)",
                       key, shard);
    return 0;
}

int dt_shard_member_read(const char *name, uint8_t **bytes, size_t *size, dt_error *err) {
    *bytes = NULL;
    *size = 0;
    size_t split = dt_shard_member_split(name);
    if (!split) return dt_fail(err, "%s: not SHARD.tar:KEY", name);
    char *shard = strndup(name, split);
    if (!shard) return dt_fail(err, "out of memory");
    uint64_t offset = 0, length = 0;
    int fd = -1;
    uint64_t shard_size = 0;
    int rc = find_member(shard, name + split + 1, &offset, &length, err);
    if (rc == 0 && length > MAX_MEMBER_BYTES)
        rc = dt_fail(err, "%s: %llu bytes, more than an image may have", name,
                     (unsigned long long)length);
    if (rc == 0) rc = dt_open_regular_file(shard, &fd, &shard_size, err);
    uint8_t *buffer = rc == 0 ? malloc(length ? (size_t)length : 1) : NULL;
    if (rc == 0 && !buffer) rc = dt_fail(err, "%s: out of memory", name);
    size_t done = 0;
    while (rc == 0 && done < length) {
        ssize_t n = pread(fd, buffer + done, (size_t)length - done, (off_t)(offset + done));
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0)
            rc = dt_fail(err, "%s: %s", name,
                         n < 0 ? strerror(errno) : "the shard is shorter than its index says");
        else
            done += (size_t)n;
    }
    if (fd >= 0) close(fd);
    free(shard);
    if (rc) {
        free(buffer);
        return -1;
    }
    *bytes = buffer;
    *size = done;
    return 0;
}
