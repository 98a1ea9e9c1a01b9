/* The decoded-sample cache (data.cache): with augment none and flip the loader's batches are
 * bitwise those made without it, epoch after epoch, and after the first epoch nothing is
 * decoded (the source files can be gone); crop_flip crops the pre-resized image, close to the
 * uncached result; a folder cache is reused by a later loader with the same files and
 * settings, rebuilt when damaged, not used for other settings; `memory` leaves nothing behind,
 * and what a killed run left in /dev/shm is removed by the next run (a live run's is kept);
 * a cache that does not fit is refused before anything is written, saying what it needs. */
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../src/data/sample_cache_internal.h"
#include "check.h"
#include "dtrain/data.h"
#include "imagegen.h"

#define N_FILES 30
#define SIZE 16
#define BATCH 8

static char workdir[1024];

/* Every batch of `epochs` epochs (a fixed shuffled order each), concatenated: 0 on success. */
static int run_epochs(const dt_dataset *ds, const char *cache, dt_augment_mode augment, int first,
                      int epochs, int training, uint8_t *out) {
    dt_loader_options lo = {.batch_size = BATCH,
                            .image_size = SIZE,
                            .resize = DT_RESIZE_CENTER,
                            .augment = augment,
                            .workers = 2,
                            .prefetch_batches = 2,
                            .seed = 11,
                            .cache = cache};
    dt_loader *loader;
    dt_error err = {{0}, 0};
    if (dt_loader_create(ds, &lo, &loader, &err)) {
        fprintf(stderr, "loader: %s\n", err.message);
        return -1;
    }
    size_t slot = (size_t)SIZE * SIZE * 3, at = 0;
    int bad = 0;
    for (int e = first; e < first + epochs; e++) {
        uint32_t order[N_FILES];
        for (uint32_t i = 0; i < N_FILES; i++) order[i] = (i * 7u + (uint32_t)e) % N_FILES;
        if (dt_loader_start(loader, order, N_FILES, e, training, &err)) bad = 1;
        const dt_batch *b;
        int counted = 0;
        while (!bad && dt_loader_next(loader, &b, &err) == 0 && b) {
            memcpy(out + at, b->pixels, slot * BATCH);
            at += slot * BATCH;
            counted += b->n_counted;
            dt_loader_release(loader, b);
        }
        bad |= counted != N_FILES; /* an undecodable sample */
    }
    dt_loader_destroy(loader);
    return bad ? -1 : 0;
}

static size_t epoch_bytes(void) {
    return (size_t)((N_FILES + BATCH - 1) / BATCH) * BATCH * SIZE * SIZE * 3;
}

static int count_cache_files(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (strncmp(e->d_name, "dtrain-cache-", 13) == 0) n++;
    closedir(d);
    return n;
}

static void test_identical_and_persistent(void) {
    char src[1200], cache_dir[1200], cmd[3000];
    snprintf(src, sizeof src, "%s/folder", workdir);
    snprintf(cache_dir, sizeof cache_dir, "%s/cache", workdir);
    dt_error err = {{0}, 0};
    CHECK(dt_testgen_learnable_imagefolder(src, 3, N_FILES / 3, 40, 28, 3, &err) == 0);
    CHECK(dt_make_directories(cache_dir, &err) == 0);
    dt_dataset ds;
    CHECK(dt_dataset_open(src, &ds, &err) == 0);
    size_t bytes = epoch_bytes() * 3;
    uint8_t *plain = malloc(bytes), *cached = malloc(bytes), *memory = malloc(bytes);
    int before = count_cache_files("/dev/shm");
    dt_augment_mode modes[] = {DT_AUGMENT_NONE, DT_AUGMENT_FLIP};
    for (int m = 0; m < 2; m++) {
        CHECK(run_epochs(&ds, NULL, modes[m], 1, 3, 1, plain) == 0);
        CHECK(run_epochs(&ds, cache_dir, modes[m], 1, 3, 1, cached) == 0);
        CHECK_MSG(memcmp(plain, cached, bytes) == 0, "folder cache, augment %d: batches differ", m);
        CHECK(run_epochs(&ds, "memory", modes[m], 1, 3, 1, memory) == 0);
        CHECK_MSG(memcmp(plain, memory, bytes) == 0, "memory cache, augment %d: batches differ", m);
    }
    /* evaluation batches share the training cache when no random crop is drawn */
    CHECK_INT_EQ(count_cache_files(cache_dir), 1);
    CHECK_INT_EQ(count_cache_files("/dev/shm"), before);

    /* crop_flip: a second cache of larger squashed images, crops close to the uncached ones */
    CHECK(run_epochs(&ds, NULL, DT_AUGMENT_CROP_FLIP, 1, 2, 1, plain) == 0);
    CHECK(run_epochs(&ds, cache_dir, DT_AUGMENT_CROP_FLIP, 1, 2, 1, cached) == 0);
    double diff = 0;
    for (size_t i = 0; i < epoch_bytes() * 2; i++) diff += abs((int)plain[i] - (int)cached[i]);
    diff /= (double)(epoch_bytes() * 2);
    CHECK_MSG(diff > 0 && diff < 12, "crop_flip from the cache: mean difference %.2f", diff);
    CHECK_INT_EQ(count_cache_files(cache_dir), 2);

    /* the sources gone: a new loader on the same files and settings reads only the cache */
    CHECK(run_epochs(&ds, NULL, DT_AUGMENT_FLIP, 4, 1, 1, plain) == 0);
    snprintf(cmd, sizeof cmd, "mv %s %s.away", src, src);
    CHECK(system(cmd) == 0);
    CHECK(run_epochs(&ds, cache_dir, DT_AUGMENT_FLIP, 4, 1, 1, cached) == 0);
    CHECK(memcmp(plain, cached, epoch_bytes()) == 0);
    CHECK(run_epochs(&ds, cache_dir, DT_AUGMENT_NONE, 4, 1, 0, cached) == 0); /* evaluation */
    /* ... and a cache made with other settings is not used: without sources, nothing decodes */
    CHECK(run_epochs(&ds, "memory", DT_AUGMENT_NONE, 1, 1, 1, cached) != 0);
    /* a damaged cache file is rebuilt (so, without the sources, fails to fill) */
    DIR *d = opendir(cache_dir);
    struct dirent *e;
    char victim[2400] = "";
    while (d && (e = readdir(d)))
        if (strstr(e->d_name, ".bin") && !victim[0]) {
            char candidate[2400];
            snprintf(candidate, sizeof candidate, "%s/%s", cache_dir, e->d_name);
            struct stat info;
            /* the eval-sized one: the smaller of the two */
            if (stat(candidate, &info) == 0 &&
                (uint64_t)info.st_size == dt_sample_cache_bytes(N_FILES, SIZE))
                snprintf(victim, sizeof victim, "%s", candidate);
        }
    if (d) closedir(d);
    CHECK(victim[0] != 0);
    int fd = open(victim, O_WRONLY);
    CHECK(fd >= 0 && pwrite(fd, "X", 1, 0) == 1);
    if (fd >= 0) close(fd);
    CHECK(run_epochs(&ds, cache_dir, DT_AUGMENT_NONE, 4, 1, 1, cached) != 0);
    snprintf(cmd, sizeof cmd, "mv %s.away %s", src, src);
    CHECK(system(cmd) == 0);
    CHECK(run_epochs(&ds, cache_dir, DT_AUGMENT_FLIP, 4, 1, 1, cached) == 0);
    CHECK(memcmp(plain, cached, epoch_bytes()) == 0);
    dt_dataset_free(&ds);
    free(plain);
    free(cached);
    free(memory);
}

/* A shard index claiming 100,000 samples of a sparse shard: a cache of 1024 px samples would
 * need ~300 GB, refused before anything is allocated. */
static void test_size_refused(void) {
    char dir[1200], path[1400];
    snprintf(dir, sizeof dir, "%s/huge", workdir);
    dt_error err = {{0}, 0};
    CHECK(dt_make_directories(dir, &err) == 0);
    snprintf(path, sizeof path, "%s/classes.txt", dir);
    CHECK(dt_testgen_write_bytes(path, "a\n", 2, &err) == 0);
    snprintf(path, sizeof path, "%s/s.tar", dir);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    CHECK(fd >= 0 && ftruncate(fd, 200 << 20) == 0);
    if (fd >= 0) close(fd);
    struct stat info;
    CHECK(stat(path, &info) == 0);
    long long mtime = (long long)info.st_mtim.tv_sec * 1000000000 + info.st_mtim.tv_nsec;
    snprintf(path, sizeof path, "%s/s.tar.idx", dir);
    FILE *f = fopen(path, "w");
    CHECK(f != NULL);
    if (!f) return;
    fprintf(f, "dtrain-shard-index 1\nshard %lld %lld 100000 0\n", (long long)info.st_size, mtime);
    for (int i = 0; i < 100000; i++) fprintf(f, "s %d 100 0 k%06d\n", i * 1024, i);
    fclose(f);
    dt_dataset ds;
    CHECK_MSG(dt_dataset_open(dir, &ds, &err) == 0, "%s", err.message);
    CHECK_INT_EQ((long)ds.n_files, 100000);
    const char *places[] = {"memory", workdir};
    for (int p = 0; p < 2; p++) {
        dt_loader_options lo = {.batch_size = 4,
                                .image_size = 1024,
                                .workers = 1,
                                .prefetch_batches = 2,
                                .cache = places[p]};
        dt_loader *loader = NULL;
        CHECK(dt_loader_create(&ds, &lo, &loader, &err) != 0);
        CHECK_MSG(strstr(err.message, "needs 314.57 GB") && strstr(err.message, "free") &&
                      err.exit_code == 2,
                  "%s", err.message);
    }
    CHECK_INT_EQ(count_cache_files(workdir), 0);
    /* no such folder */
    dt_loader_options lo = {.batch_size = 4,
                            .image_size = 16,
                            .workers = 1,
                            .prefetch_batches = 2,
                            .cache = "/nonexistent/folder"};
    dt_loader *loader = NULL;
    CHECK(dt_loader_create(&ds, &lo, &loader, &err) != 0 && strstr(err.message, "not a folder"));
    /* the reservation itself failing (a file size limit here) is the same kind of error */
    signal(SIGXFSZ, SIG_IGN);
    struct rlimit old, small = {1 << 20, 1 << 20};
    getrlimit(RLIMIT_FSIZE, &old);
    small.rlim_max = old.rlim_max;
    setrlimit(RLIMIT_FSIZE, &small);
    lo.cache = workdir;
    CHECK(dt_loader_create(&ds, &lo, &loader, &err) != 0 && strstr(err.message, "reserving"));
    setrlimit(RLIMIT_FSIZE, &old);
    CHECK_INT_EQ(count_cache_files(workdir), 0);
    dt_dataset_free(&ds);
}

/* A child opens a `memory` cache of ds at image_size size, writes its path to report and then
 * waits for a byte on wait_fd (or forever, to be killed) before closing it. */
static pid_t cache_holder(const dt_dataset *ds, int size, int report, int wait_fd) {
    pid_t pid = fork();
    if (pid != 0) return pid;
    dt_loader_options lo = {.image_size = size, .resize = DT_RESIZE_SQUASH};
    dt_sample_cache *cache;
    dt_error err = {{0}, 0};
    if (dt_sample_cache_open(ds, &lo, DT_CACHE_RESIZED, "memory", &cache, &err)) _exit(1);
    const char *path = dt_sample_cache_path(cache);
    if (write(report, path, strlen(path) + 1) < 0) _exit(1);
    char byte;
    if (wait_fd < 0) pause();
    if (read(wait_fd, &byte, 1) < 0) _exit(1);
    dt_sample_cache_close(cache);
    _exit(0);
}

static int read_path(int fd, char *path, size_t size) {
    size_t n = 0;
    while (n + 1 < size && read(fd, path + n, 1) == 1)
        if (path[n++] == '\0') return 0;
    return -1;
}

static void test_killed_run_cleaned(void) {
    char src[1200];
    snprintf(src, sizeof src, "%s/folder", workdir);
    dt_error err = {{0}, 0};
    dt_dataset ds;
    CHECK(dt_dataset_open(src, &ds, &err) == 0);
    int report[2], hold[2];
    CHECK(pipe(report) == 0 && pipe(hold) == 0);
    char killed_path[4096] = "", live_path[4096] = "";
    pid_t killed = cache_holder(&ds, 12, report[1], -1);
    CHECK(read_path(report[0], killed_path, sizeof killed_path) == 0);
    kill(killed, SIGKILL);
    waitpid(killed, NULL, 0);
    CHECK_MSG(access(killed_path, F_OK) == 0, "the killed run's cache %s", killed_path);
    pid_t live = cache_holder(&ds, 14, report[1], hold[0]);
    CHECK(read_path(report[0], live_path, sizeof live_path) == 0);

    /* the next run: the killed run's file goes, the live run's stays, its own goes at close */
    dt_loader_options lo = {.image_size = SIZE, .resize = DT_RESIZE_SQUASH};
    dt_sample_cache *cache = NULL;
    CHECK(dt_sample_cache_open(&ds, &lo, DT_CACHE_RESIZED, "memory", &cache, &err) == 0);
    CHECK_MSG(access(killed_path, F_OK) != 0, "%s left behind by a killed run", killed_path);
    CHECK_MSG(access(live_path, F_OK) == 0, "%s of a live run removed", live_path);
    char own_path[4096] = "";
    if (cache) snprintf(own_path, sizeof own_path, "%s", dt_sample_cache_path(cache));
    dt_sample_cache_close(cache);
    CHECK(access(own_path, F_OK) != 0);
    CHECK(write(hold[1], "x", 1) == 1);
    int status = -1;
    waitpid(live, &status, 0);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    CHECK_MSG(access(live_path, F_OK) != 0, "%s left by a run that ended", live_path);
    unlink(killed_path); /* without the fix: do not leave it for the next test run */
    close(report[0]);
    close(report[1]);
    close(hold[0]);
    close(hold[1]);
    dt_dataset_free(&ds);
}

int main(void) {
    dt_error err;
    if (dt_testgen_make_temp_dir("dtrain-cache", workdir, sizeof workdir, &err) != 0) {
        fprintf(stderr, "%s\n", err.message);
        return 1;
    }
    test_identical_and_persistent();
    test_killed_run_cleaned();
    test_size_refused();
    dt_testgen_finish_temp_dir(workdir);
    return dt_test_summary("data_cache");
}
