/* Crash-safe writes (include/dtrain/durable.h): write + fsync + rename + fsync of the folder; new
 * files are created through dtrain/output_files.h (never through a planted link). */
#define _XOPEN_SOURCE 700
#include "dtrain/durable.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "dtrain/output_files.h"
#include "dtrain/signals.h"

static long test_delay_ms;

void dt_durable_test_delay_set(long ms) {
    test_delay_ms = ms;
}

void dt_test_write_delay(void) {
    long delay = test_delay_ms;
    if (delay <= 0) return;
    /* the whole delay, even when a signal interrupts the sleep */
    struct timespec left = {delay / 1000, (delay % 1000) * 1000000L};
    while (nanosleep(&left, &left) != 0 && errno == EINTR) {
    }
}

int dt_write_file_synced(const char *path, const void *data, size_t size, dt_error *err) {
    int fd = dt_output_create(path, 0, err);
    if (fd < 0) return -1;
    const char *p = data;
    size_t left = size;
    while (left > 0) {
        ssize_t n = write(fd, p, left);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            int saved = n < 0 ? errno : ENOSPC;
            close(fd);
            return dt_fail(err, "writing %s: %s", path, strerror(saved));
        }
        p += n;
        left -= (size_t)n;
    }
    dt_test_write_delay();
    if (fsync(fd) != 0) {
        int saved = errno;
        close(fd);
        return dt_fail(err, "writing %s: fsync: %s", path, strerror(saved));
    }
    if (close(fd) != 0) return dt_fail(err, "writing %s: %s", path, strerror(errno));
    return 0;
}

void dt_parent_directory(const char *path, char *out, size_t size) {
    const char *slash = strrchr(path, '/');
    if (!slash)
        snprintf(out, size, ".");
    else if (slash == path)
        snprintf(out, size, "/");
    else
        snprintf(out, size, "%.*s", (int)(slash - path), path);
}

int dt_fsync_directory(const char *path, dt_error *err) {
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return dt_fail(err, "opening folder %s: %s", path, strerror(errno));
    /* some file systems cannot fsync a folder (EINVAL): nothing more can be done there */
    if (fsync(fd) != 0 && errno != EINVAL && errno != EROFS) {
        int saved = errno;
        close(fd);
        return dt_fail(err, "fsync of folder %s: %s", path, strerror(saved));
    }
    close(fd);
    return 0;
}

int dt_replace_file_durably(const char *path, const void *data, size_t size, dt_error *err) {
    size_t n = strlen(path);
    char *temporary = malloc(n + 5);
    if (!temporary) return dt_fail(err, "writing %s: out of memory", path);
    memcpy(temporary, path, n);
    memcpy(temporary + n, ".tmp", 5);
    int slot = dt_temp_register(temporary);
    int rc = dt_write_file_synced(temporary, data, size, err);
    if (rc == 0 && rename(temporary, path) != 0)
        rc = dt_fail(err, "renaming %s to %s: %s", temporary, path, strerror(errno));
    if (rc != 0) unlink(temporary);
    dt_temp_forget(slot);
    free(temporary);
    if (rc != 0) return rc;
    char parent[4096];
    dt_parent_directory(path, parent, sizeof parent);
    return dt_fsync_directory(parent, err);
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
    (void)st;
    (void)ftw;
    return (flag == FTW_DP ? rmdir(path) : unlink(path)) == 0 || errno == ENOENT ? 0 : -1;
}

int dt_remove_tree(const char *path) {
    struct stat st;
    if (lstat(path, &st) != 0) return errno == ENOENT ? 0 : -1;
    return nftw(path, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}
