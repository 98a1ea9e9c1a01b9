/* The decoded-sample cache's storage: a file of fixed-size slots, mapped shared, so that the
 * ranks of a node fill and read one copy. `memory` puts it in /dev/shm (RAM, removed when the
 * run ends); a folder keeps it on disk for later runs. The file name carries a hash of the file
 * list and every setting the pixels depend on, and its header repeats it: a cache made from
 * other files or settings is never used, a new one is built beside it. The space is checked
 * against what the file system has free and then reserved (posix_fallocate), so a full disk or
 * memory is a clear error before training, not a crash in the middle.
 *
 * Layout: a 4 KiB header, one state byte per sample, two uint32 per sample (the decoded image's
 * size, which random crops are drawn from), then the pixel slots; sections 4 KiB aligned. Slot
 * states change with atomic compare-and-swap in the shared mapping: EMPTY -> FILLING (one
 * filler) -> READY, or back to EMPTY when the sample does not decode. A slot left FILLING by a
 * crashed run is simply not used.
 *
 * Every process that maps a cache holds a shared flock on it. A `memory` cache is removed by the
 * last process of a run to close it, and files in /dev/shm that no process holds (left by runs
 * that were killed) are removed by the next run that opens a `memory` cache. */
#include "sample_cache_internal.h"

#include "dtrain/bytes.h"
#include "dtrain/platform.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#define CACHE_MAGIC "dtrain-cache-1"
#define SECTION_ALIGN 4096u

typedef struct cache_header {
    char magic[16];
    uint64_t key;
    uint64_t n_files;
    uint32_t side, layout;
} cache_header;

struct dt_sample_cache {
    uint8_t *map;
    size_t map_bytes;
    uint8_t *states;
    uint32_t *sizes;
    uint8_t *pixels;
    size_t slot_bytes, n_files;
    int side;
    char path[4096];
    int fd; /* held open with a shared flock while mapped: `memory` caches in use are locked */
    int remove_at_close;
};

static uint64_t align_up(uint64_t value) {
    return (value + SECTION_ALIGN - 1) / SECTION_ALIGN * SECTION_ALIGN;
}

uint64_t dt_sample_cache_bytes(size_t n_files, int side) {
    uint64_t slot = (uint64_t)side * (uint64_t)side * 3;
    return SECTION_ALIGN + align_up(n_files) + align_up((uint64_t)n_files * 8) +
           (uint64_t)n_files * slot;
}

/* Everything the slots' pixels depend on. */
static uint64_t cache_key(const dt_dataset *ds, const dt_loader_options *opt,
                          dt_cache_layout layout, int side) {
    uint64_t hash = dt_fnv1a64(DT_FNV1A64_INIT, CACHE_MAGIC, strlen(CACHE_MAGIC));
    uint64_t list = dt_dataset_hash(ds);
    hash = dt_fnv1a64(hash, &list, sizeof list);
    /* shard samples: where their bytes lie (a repacked shard changes these) */
    for (size_t i = 0; ds->n_shards && i < ds->n_files; i++) {
        uint64_t where[2] = {ds->files[i].offset, ds->files[i].size};
        hash = dt_fnv1a64(hash, where, sizeof where);
    }
    int32_t settings[5] = {(int32_t)layout, side, opt->image_size, (int32_t)opt->resize,
                           opt->jpeg_dct_scaling};
    return dt_fnv1a64(hash, settings, sizeof settings);
}

static int free_space(const char *dir, uint64_t *bytes, dt_error *err) {
    struct statvfs info;
    if (statvfs(dir, &info) != 0)
        return dt_fail_usage(err, "data.cache: %s: %s", dir, strerror(errno));
    *bytes = (uint64_t)info.f_bavail * (uint64_t)info.f_frsize;
    return 0;
}

/* MemAvailable of /proc/meminfo, in bytes (UINT64_MAX when unknown). */
static uint64_t memory_available(void) {
    FILE *f = fopen("/proc/meminfo", "r");
    if (!f) return UINT64_MAX;
    char line[256];
    uint64_t kib = UINT64_MAX;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "MemAvailable: %" SCNu64 " kB", &kib) == 1) break;
    fclose(f);
    return kib == UINT64_MAX ? kib : kib * 1024;
}

static int header_matches(const uint8_t *map, uint64_t key, size_t n_files, int side,
                          dt_cache_layout layout) {
    cache_header h;
    memcpy(&h, map, sizeof h);
    return memcmp(h.magic, CACHE_MAGIC, sizeof CACHE_MAGIC) == 0 && h.key == key &&
           h.n_files == n_files && h.side == (uint32_t)side && h.layout == (uint32_t)layout;
}

/* Creates the cache file under a temporary name, reserves its space, writes the header and
 * links it to its final name; when another rank got there first, its file is used. The temporary
 * file is share-locked from its creation, so that no other run takes it for a leftover. */
static int create_file(const char *path, uint64_t total, uint64_t key, size_t n_files, int side,
                       dt_cache_layout layout, int *fd_out, dt_error *err) {
    *fd_out = -1;
    char temp[4200];
    snprintf(temp, sizeof temp, "%s.%ld.tmp", path, (long)getpid());
    int fd = open(temp, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) return dt_fail_usage(err, "data.cache: %s: %s", temp, strerror(errno));
    flock(fd, LOCK_SH);
    int rc = posix_fallocate(fd, 0, (off_t)total);
    if (rc != 0) {
        close(fd);
        unlink(temp);
        return dt_fail_usage(err, "data.cache: reserving %.2f GB for %zu samples in %s: %s",
                             (double)total / 1e9, n_files, path, strerror(rc));
    }
    cache_header h = {
        .key = key, .n_files = n_files, .side = (uint32_t)side, .layout = (uint32_t)layout};
    memcpy(h.magic, CACHE_MAGIC, sizeof CACHE_MAGIC);
    uint8_t block[SECTION_ALIGN] = {0};
    memcpy(block, &h, sizeof h);
    int wrote = pwrite(fd, block, sizeof block, 0) == (ssize_t)sizeof block;
    if (!wrote) {
        int cause = errno;
        close(fd);
        unlink(temp);
        return dt_fail_usage(err, "data.cache: writing %s: %s", temp, strerror(cause));
    }
    int linked = link(temp, path) == 0, cause = errno;
    unlink(temp);
    if (linked) {
        *fd_out = fd; /* still locked: never unlocked under its final name */
        return 0;
    }
    close(fd);
    if (cause != EEXIST) return dt_fail_usage(err, "data.cache: %s: %s", path, strerror(cause));
    return 0; /* another rank's file: the caller opens it */
}

/* Removes the `memory` cache files of this user that no live process holds: those of runs that
 * were killed (a process's flock goes with it). A file being opened by another run right now
 * is at worst unlinked before that run locks it; that run then keeps a private copy. */
static void remove_leftovers(const char *dir, const char *own_name) {
    DIR *d = opendir(dir);
    if (!d) return;
    char prefix[64];
    snprintf(prefix, sizeof prefix, "dtrain-cache-%u-", (unsigned)getuid());
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t length = strlen(e->d_name);
        const char *suffix = length > 4 ? e->d_name + length - 4 : "";
        if (strncmp(e->d_name, prefix, strlen(prefix)) != 0 ||
            (strcmp(suffix, ".bin") != 0 && strcmp(suffix, ".tmp") != 0) ||
            strcmp(e->d_name, own_name) == 0) /* a killed run's cache of these samples: reused */
            continue;
        char path[4400];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
        if (fd < 0) continue;
        struct stat info;
        if (fstat(fd, &info) == 0 && S_ISREG(info.st_mode) && info.st_uid == getuid() &&
            flock(fd, LOCK_EX | LOCK_NB) == 0)
            unlink(path);
        close(fd);
    }
    closedir(d);
}

int dt_sample_cache_open(const dt_dataset *ds, const dt_loader_options *opt, dt_cache_layout layout,
                         const char *where, dt_sample_cache **out, dt_error *err) {
    *out = NULL;
    int memory = strcmp(where, "memory") == 0;
    const char *dir = memory ? "/dev/shm" : where;
    int side = layout == DT_CACHE_BEFORE_CROP ? dt_center_resize_short_side(opt->image_size)
                                              : opt->image_size;
    uint64_t key = cache_key(ds, opt, layout, side);
    uint64_t total = dt_sample_cache_bytes(ds->n_files, side);
    struct stat info;
    if (stat(dir, &info) != 0 || !S_ISDIR(info.st_mode))
        return dt_fail_usage(err,
                             "data.cache: %s is not a folder (give `memory`, `none` or a "
                             "folder on node-local disk)",
                             dir);
    dt_sample_cache *cache = calloc(1, sizeof *cache);
    if (!cache) return dt_fail(err, "out of memory");
    snprintf(cache->path, sizeof cache->path, "%s/dtrain-cache-%u-%016" PRIx64 ".bin", dir,
             (unsigned)getuid(), key);
    cache->remove_at_close = memory;
    cache->fd = -1;
    if (memory) remove_leftovers(dir, strrchr(cache->path, '/') + 1);

    int fd = open(cache->path, O_RDWR | O_CLOEXEC);
    if (fd >= 0) flock(fd, LOCK_SH);
    uint64_t have = 0;
    uint8_t first[sizeof(cache_header)];
    if (fd >= 0 && fstat(fd, &info) == 0 && (uint64_t)info.st_size == total &&
        pread(fd, first, sizeof first, 0) == (ssize_t)sizeof first &&
        header_matches(first, key, ds->n_files, side, layout)) {
        /* made earlier (or by another rank): only blocks not yet allocated still need space */
        have = (uint64_t)info.st_blocks * 512;
    } else if (fd >= 0) {
        close(fd); /* another size or header: damaged, or not ours; rebuilt below */
        fd = -1;
        unlink(cache->path);
    }
    uint64_t needed = total > have ? total - have : 0, free_bytes = 0;
    int rc = free_space(dir, &free_bytes, err);
    uint64_t available = free_bytes;
    if (rc == 0 && memory) {
        uint64_t ram = memory_available();
        if (ram < available) available = ram;
    }
    if (rc == 0 && needed > available)
        rc = dt_fail_usage(err,
                           "data.cache: %s: the cache of %zu samples of %dx%dx3 bytes needs %.2f "
                           "GB more, but only %.2f GB %s free; use another folder, a smaller "
                           "data.image_size, or data.cache=none",
                           cache->path, ds->n_files, side, side, (double)needed / 1e9,
                           (double)available / 1e9, memory ? "of memory is" : "of disk is");
    if (rc == 0 && fd < 0) {
        rc = create_file(cache->path, total, key, ds->n_files, side, layout, &fd, err);
        if (rc == 0 && fd < 0) {
            fd = open(cache->path, O_RDWR | O_CLOEXEC);
            if (fd < 0)
                rc = dt_fail_usage(err, "data.cache: %s: %s", cache->path, strerror(errno));
            else
                flock(fd, LOCK_SH);
        }
    }
    if (rc == 0) {
        cache->map = mmap(NULL, (size_t)total, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        if (cache->map == MAP_FAILED) {
            cache->map = NULL;
            rc = dt_fail(err, "data.cache: mapping %s: %s", cache->path, strerror(errno));
        }
    }
    if (rc == 0 && !header_matches(cache->map, key, ds->n_files, side, layout))
        rc = dt_fail(err, "data.cache: %s changed while it was opened", cache->path);
    if (rc) {
        if (cache->map) munmap(cache->map, (size_t)total);
        if (fd >= 0) close(fd);
        free(cache);
        return -1;
    }
    cache->fd = fd;
    cache->map_bytes = (size_t)total;
    cache->n_files = ds->n_files;
    cache->side = side;
    cache->slot_bytes = (size_t)side * (size_t)side * 3;
    cache->states = cache->map + SECTION_ALIGN;
    cache->sizes = (uint32_t *)(cache->states + align_up(ds->n_files));
    cache->pixels = (uint8_t *)cache->sizes + align_up((uint64_t)ds->n_files * 8);
    *out = cache;
    return 0;
}

void dt_sample_cache_close(dt_sample_cache *cache) {
    if (!cache) return;
    munmap(cache->map, cache->map_bytes);
    /* memory: the name goes with the last process of the run that holds it (its lock turns
     * exclusive only when no other process holds a shared one) */
    if (cache->remove_at_close && flock(cache->fd, LOCK_EX | LOCK_NB) == 0) unlink(cache->path);
    close(cache->fd);
    free(cache);
}

const char *dt_sample_cache_path(const dt_sample_cache *cache) {
    return cache->path;
}

int dt_sample_cache_side(const dt_sample_cache *cache) {
    return cache->side;
}

int dt_sample_cache_get(const dt_sample_cache *cache, uint32_t index, const uint8_t **pixels,
                        int *width, int *height) {
    int state = __atomic_load_n(&cache->states[index], __ATOMIC_ACQUIRE);
    if (state == DT_CACHE_READY) {
        *pixels = cache->pixels + (size_t)index * cache->slot_bytes;
        *width = (int)cache->sizes[2 * (size_t)index];
        *height = (int)cache->sizes[2 * (size_t)index + 1];
    }
    return state;
}

uint8_t *dt_sample_cache_claim(dt_sample_cache *cache, uint32_t index) {
    uint8_t expected = DT_CACHE_EMPTY;
    if (!__atomic_compare_exchange_n(&cache->states[index], &expected, DT_CACHE_FILLING, 0,
                                     __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
        return NULL;
    return cache->pixels + (size_t)index * cache->slot_bytes;
}

void dt_sample_cache_publish(dt_sample_cache *cache, uint32_t index, int state, int width,
                             int height) {
    cache->sizes[2 * (size_t)index] = (uint32_t)width;
    cache->sizes[2 * (size_t)index + 1] = (uint32_t)height;
    __atomic_store_n(&cache->states[index], (uint8_t)state, __ATOMIC_RELEASE);
}
