/* Operating-system helpers: monotonic clock, core count, mkdir -p, reading a whole file. */
#include "dtrain/platform.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

double dt_monotonic_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int dt_online_cores(void) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

int dt_make_directories(const char *path, dt_error *err) {
    char buf[4096];
    size_t len = strlen(path);
    if (len == 0 || len >= sizeof buf)
        return dt_fail(err, "cannot create folder '%s': empty or too long a path", path);
    memcpy(buf, path, len + 1);
    for (size_t i = 1; i <= len; i++) {
        if (buf[i] != '/' && buf[i] != '\0') continue;
        char saved = buf[i];
        buf[i] = '\0';
        if (mkdir(buf, 0777) != 0 && errno != EEXIST)
            return dt_fail(err, "%s: cannot create folder: %s", buf, strerror(errno));
        buf[i] = saved;
    }
    struct stat st;
    if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode))
        return dt_fail(err, "%s: exists and is not a folder", path);
    return 0;
}

/* Closes fd (if open) after a failure whose message is already in err; leaves cause in errno. */
static int give_up(int fd, int cause) {
    if (fd >= 0) close(fd);
    errno = cause;
    return -1;
}

/* dt_read_file (pipes_too false) and dt_read_file_or_pipe. */
static int read_whole(const char *path, size_t max_bytes, bool pipes_too, uint8_t **bytes,
                      size_t *size, dt_error *err) {
    *bytes = NULL;
    *size = 0;
    struct stat info;
    int fd = -1;
    if (!pipes_too) { /* images and weight files: never wait on a FIFO */
        uint64_t file_size = 0;
        if (dt_open_regular_file(path, &fd, &file_size, err) != 0) return -1;
    } else if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0) {
        int cause = errno;
        dt_fail(err, "%s: cannot open: %s", path, strerror(cause));
        return give_up(-1, cause);
    }
    if (fstat(fd, &info) != 0) {
        int cause = errno;
        dt_fail(err, "%s: cannot stat: %s", path, strerror(cause));
        return give_up(fd, cause);
    }
    bool regular = S_ISREG(info.st_mode);
    if (!regular && (S_ISDIR(info.st_mode) || !pipes_too)) {
        dt_fail(err, "%s: not a regular file", path);
        return give_up(fd, S_ISDIR(info.st_mode) ? EISDIR : EINVAL);
    }
    /* A regular file is read to the size it has now; anything else to its end, in growing
     * steps, until it passes max_bytes. */
    size_t capacity = regular ? (size_t)info.st_size : 4096;
    if (regular && (capacity > max_bytes || capacity == SIZE_MAX)) {
        dt_fail(err, "%s: file too large (%zu bytes)", path, capacity);
        return give_up(fd, EFBIG);
    }
    uint8_t *buffer = malloc(capacity + 1);
    size_t got = 0;
    while (buffer) {
        if (got == capacity) {
            if (regular || capacity > max_bytes) break;
            size_t grown = capacity <= max_bytes / 2 ? 2 * capacity : max_bytes + 1;
            uint8_t *larger =
                grown > capacity && grown < SIZE_MAX ? realloc(buffer, grown + 1) : NULL;
            if (!larger) free(buffer);
            buffer = larger;
            capacity = grown;
            continue;
        }
        ssize_t n = read(fd, buffer + got, capacity - got);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            int cause = errno;
            free(buffer);
            dt_fail(err, "%s: read error: %s", path, strerror(cause));
            return give_up(fd, cause);
        }
        if (n == 0) break; /* the end (or a regular file shrank while being read) */
        got += (size_t)n;
    }
    if (!buffer) {
        dt_fail(err, "%s: out of memory reading %zu bytes", path, capacity);
        return give_up(fd, ENOMEM);
    }
    if (got > max_bytes) {
        free(buffer);
        dt_fail(err, "%s: file too large (over %zu bytes)", path, max_bytes);
        return give_up(fd, EFBIG);
    }
    close(fd);
    buffer[got] = 0;
    *bytes = buffer;
    *size = got;
    return 0;
}

int dt_read_file(const char *path, size_t max_bytes, uint8_t **bytes, size_t *size, dt_error *err) {
    return read_whole(path, max_bytes, false, bytes, size, err);
}

int dt_read_file_or_pipe(const char *path, size_t max_bytes, uint8_t **bytes, size_t *size,
                         dt_error *err) {
    return read_whole(path, max_bytes, true, bytes, size, err);
}
