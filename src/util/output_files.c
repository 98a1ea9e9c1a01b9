/* Creating files without following planted links, the pinned output.dir and its manifest
 * (include/dtrain/output_files.h). */
#define _GNU_SOURCE
#include "dtrain/output_files.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dtrain/platform.h"

/* The pinned folder; the checkpoint writer thread creates files too, hence the lock. */
static pthread_mutex_t pin_lock = PTHREAD_MUTEX_INITIALIZER;
static char *pinned_dir;
static dev_t pinned_dev;
static ino_t pinned_ino;
static char **manifest;
static size_t manifest_n, manifest_cap;

static void manifest_clear(void) {
    for (size_t i = 0; i < manifest_n; i++) free(manifest[i]);
    free(manifest);
    manifest = NULL;
    manifest_n = manifest_cap = 0;
}

static int manifest_find(const char *name) {
    for (size_t i = 0; i < manifest_n; i++)
        if (strcmp(manifest[i], name) == 0) return 1;
    return 0;
}

static int manifest_add(const char *name) {
    if (manifest_n == manifest_cap) {
        size_t cap = manifest_cap ? 2 * manifest_cap : 32;
        char **grown = realloc(manifest, cap * sizeof *grown);
        if (!grown) return -1;
        manifest = grown;
        manifest_cap = cap;
    }
    if (!(manifest[manifest_n] = strdup(name))) return -1;
    manifest_n++;
    return 0;
}

/* The part of path after the pinned folder and its slashes, or NULL when path is outside it. */
static const char *relative_to_pin(const char *path) {
    if (!pinned_dir) return NULL;
    size_t n = strlen(pinned_dir);
    while (n > 1 && pinned_dir[n - 1] == '/') n--;
    if (strncmp(path, pinned_dir, n) != 0 || path[n] != '/') return NULL;
    path += n;
    while (*path == '/') path++;
    return *path ? path : NULL;
}

/* The manifest entry of a relative name: checkpoints/... is one entry (its names are dtrain's
 * own patterns), a temporary "X.tmp" is recorded as the X it becomes. */
static void manifest_name(const char *relative, char *out, size_t size) {
    const char *slash = strchr(relative, '/');
    if (slash && strncmp(relative, "tensorboard/", 12) != 0)
        snprintf(out, size, "%.*s", (int)(slash - relative), relative);
    else
        snprintf(out, size, "%s", relative);
    size_t n = strlen(out);
    if (n > 4 && strcmp(out + n - 4, ".tmp") == 0) out[n - 4] = '\0';
}

static int check_locked(dt_error *err) {
    if (!pinned_dir) return 0;
    struct stat st;
    if (stat(pinned_dir, &st) != 0)
        return dt_fail(err,
                       "output.dir %s was deleted or moved during the run (%s): stopping rather "
                       "than writing the outputs somewhere else",
                       pinned_dir, strerror(errno));
    if (st.st_dev != pinned_dev || st.st_ino != pinned_ino)
        return dt_fail(err,
                       "output.dir %s was replaced during the run (moved or deleted and created "
                       "again): stopping rather than splitting the outputs between two folders",
                       pinned_dir);
    return 0;
}

/* Appends name to the manifest (fsynced) unless it is there already. */
static int note_locked(const char *relative, dt_error *err) {
    char name[1024];
    manifest_name(relative, name, sizeof name);
    if (!name[0] || strcmp(name, DT_OUTPUT_MANIFEST) == 0 || strcmp(name, ".dtrain.lock") == 0 ||
        manifest_find(name))
        return 0;
    char path[4400];
    snprintf(path, sizeof path, "%s/%s", pinned_dir, DT_OUTPUT_MANIFEST);
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC, 0644);
    if (fd < 0) return dt_fail(err, "opening %s: %s", path, strerror(errno));
    struct stat st;
    size_t n = strlen(name);
    name[n] = '\n';
    int ok = fstat(fd, &st) == 0 && S_ISREG(st.st_mode) &&
             write(fd, name, n + 1) == (ssize_t)(n + 1) && fsync(fd) == 0;
    int saved = errno;
    close(fd);
    name[n] = '\0';
    if (!ok) return dt_fail(err, "writing %s: %s", path, saved ? strerror(saved) : "not a file");
    if (manifest_add(name)) return dt_fail(err, "%s: out of memory", path);
    return 0;
}

static int load_manifest(const char *dir, dt_error *err) {
    char path[4400];
    snprintf(path, sizeof path, "%s/%s", dir, DT_OUTPUT_MANIFEST);
    struct stat st;
    if (lstat(path, &st) != 0) return 0;
    if (!S_ISREG(st.st_mode))
        return dt_fail_usage(err, "%s: not a regular file (dtrain keeps its list of outputs there)",
                             path);
    uint8_t *bytes = NULL;
    size_t size = 0;
    if (dt_read_file(path, (size_t)1 << 24, &bytes, &size, err)) return -1;
    char *text = (char *)bytes;
    int rc = 0;
    for (char *line = text; rc == 0 && line < text + size;) {
        char *nl = memchr(line, '\n', (size_t)(text + size - line));
        if (!nl) break; /* a torn last line */
        *nl = '\0';
        if (*line && !manifest_find(line) && manifest_add(line))
            rc = dt_fail(err, "%s: out of memory", path);
        line = nl + 1;
    }
    free(bytes);
    return rc;
}

int dt_output_dir_pin(const char *dir, dt_error *err) {
    pthread_mutex_lock(&pin_lock);
    free(pinned_dir);
    pinned_dir = NULL;
    manifest_clear();
    struct stat st;
    int rc = 0;
    if (stat(dir, &st) != 0)
        rc = dt_fail(err, "%s: %s", dir, strerror(errno));
    else if (!(pinned_dir = strdup(dir)))
        rc = dt_fail(err, "out of memory");
    else if (load_manifest(dir, err)) {
        free(pinned_dir);
        pinned_dir = NULL;
        manifest_clear();
        rc = -1;
    } else {
        pinned_dev = st.st_dev;
        pinned_ino = st.st_ino;
    }
    pthread_mutex_unlock(&pin_lock);
    return rc;
}

void dt_output_dir_unpin(void) {
    pthread_mutex_lock(&pin_lock);
    free(pinned_dir);
    pinned_dir = NULL;
    manifest_clear();
    pthread_mutex_unlock(&pin_lock);
}

int dt_output_dir_check(dt_error *err) {
    pthread_mutex_lock(&pin_lock);
    int rc = check_locked(err);
    pthread_mutex_unlock(&pin_lock);
    return rc;
}

int dt_output_manifest_has(const char *name) {
    pthread_mutex_lock(&pin_lock);
    int found = manifest_find(name);
    pthread_mutex_unlock(&pin_lock);
    return found;
}

int dt_output_owned(const char *path) {
    pthread_mutex_lock(&pin_lock);
    const char *relative = relative_to_pin(path);
    int owned = 1;
    if (relative) {
        char name[1024];
        manifest_name(relative, name, sizeof name);
        owned = manifest_find(name);
    }
    pthread_mutex_unlock(&pin_lock);
    return owned;
}

/* Checks the pinned folder and records the name when path is inside it. */
static int before_create(const char *path, dt_error *err) {
    pthread_mutex_lock(&pin_lock);
    const char *relative = relative_to_pin(path);
    int rc = relative ? check_locked(err) || note_locked(relative, err) ? -1 : 0 : 0;
    pthread_mutex_unlock(&pin_lock);
    return rc;
}

int dt_output_create(const char *path, int keep_existing, dt_error *err) {
    if (before_create(path, err)) return -1;
    /* unlink removes a planted symlink itself, never what it points to */
    if (!keep_existing && unlink(path) != 0 && errno != ENOENT)
        return dt_fail(err, "creating %s: cannot remove what is there: %s", path, strerror(errno));
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
    if (fd < 0) return dt_fail(err, "creating %s: %s", path, strerror(errno));
    return fd;
}

FILE *dt_output_fopen(const char *path, const char *how, dt_error *err) {
    int fd;
    if (how[0] == 'a') {
        if (before_create(path, err)) return NULL;
        fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC, 0644);
        if (fd < 0) {
            dt_fail(err, "opening %s: %s", path, strerror(errno));
            return NULL;
        }
        struct stat st;
        if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
            close(fd);
            dt_fail(err, "opening %s: not a regular file", path);
            return NULL;
        }
        lseek(fd, 0, SEEK_END); /* as fopen's "a" does: ftell tells the length */
    } else if ((fd = dt_output_create(path, how[0] == 'x', err)) < 0) {
        return NULL;
    }
    FILE *f = fdopen(fd, how[0] == 'a' ? "a" : "w");
    if (!f) {
        dt_fail(err, "opening %s: %s", path, strerror(errno));
        close(fd);
    }
    return f;
}

int dt_output_refuse_link(const char *path, dt_error *err) {
    struct stat st;
    if (lstat(path, &st) != 0) return 0;
    if (S_ISLNK(st.st_mode))
        return dt_fail_usage(err,
                             "%s is a symbolic link: dtrain writes only inside output.dir and "
                             "does not follow links there; remove it",
                             path);
    if (!S_ISDIR(st.st_mode))
        return dt_fail_usage(err, "%s exists and is not a folder; remove it", path);
    return 0;
}
