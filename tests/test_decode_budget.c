/* The decode memory budget: four large images (PNG RGBA, then baseline JPEG) decoded at once by
 * four threads, in a child process whose budget fits one of them (DTRAIN_DECODE_BUDGET_MB): the
 * child's peak resident memory grows by about one image's decode, not four, and the pixels equal
 * those of one-at-a-time decodes. */
#define _GNU_SOURCE
#include <malloc.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "dtrain/bytes.h"
#include "dtrain/data.h"
#include "imagegen.h"

enum { IMAGES = 4 };

static char paths[IMAGES][600];
static pthread_barrier_t start_together;
static uint64_t concurrent_sums[IMAGES];

static uint64_t decode_sum(const char *path) {
    dt_image img;
    dt_error err = {{0}, 0};
    if (dt_image_decode_file(path, &img, &err)) {
        fprintf(stderr, "%s\n", err.message);
        return 0;
    }
    uint64_t sum =
        dt_fnv1a64(DT_FNV1A64_INIT, img.pixels, (size_t)img.width * (size_t)img.height * 3);
    dt_image_free(&img);
    return sum;
}

static void *decode_thread(void *arg) {
    size_t i = (size_t)arg;
    pthread_barrier_wait(&start_together);
    concurrent_sums[i] = decode_sum(paths[i]);
    return NULL;
}

static long peak_kb(void) {
    struct rusage usage;
    getrusage(RUSAGE_SELF, &usage);
    return usage.ru_maxrss;
}

/* In a child with the given budget: the growth of its peak memory (KB) over the concurrent
 * decodes, or -1 when a decode failed or the pixels differ from serial decodes. */
static long child_growth(int budget_mb) {
    int pipe_fds[2];
    if (pipe(pipe_fds)) return -1;
    pid_t pid = fork();
    if (pid == 0) {
        char value[32];
        snprintf(value, sizeof value, "%d", budget_mb);
        setenv("DTRAIN_DECODE_BUDGET_MB", value, 1);
        /* large buffers from mmap, returned to the system when freed: the peak then follows the
         * bytes in use instead of what the threads' malloc arenas keep for reuse */
        mallopt(M_MMAP_THRESHOLD, 1 << 20);
        long before = peak_kb();
        pthread_t threads[IMAGES];
        pthread_barrier_init(&start_together, NULL, IMAGES);
        for (size_t i = 0; i < IMAGES; i++)
            pthread_create(&threads[i], NULL, decode_thread, (void *)i);
        for (size_t i = 0; i < IMAGES; i++) pthread_join(threads[i], NULL);
        long growth = peak_kb() - before;
        for (size_t i = 0; i < IMAGES; i++)
            if (!concurrent_sums[i] || decode_sum(paths[i]) != concurrent_sums[i]) growth = -1;
        ssize_t ignored = write(pipe_fds[1], &growth, sizeof growth);
        (void)ignored;
        _exit(0);
    }
    close(pipe_fds[1]);
    long growth = -1;
    if (read(pipe_fds[0], &growth, sizeof growth) != (ssize_t)sizeof growth) growth = -1;
    close(pipe_fds[0]);
    waitpid(pid, NULL, 0);
    return growth;
}

/* One decode needs need_mb; the budget (just above it) lets one run at a time. */
static void check_bounded(const char *kind, double need_mb) {
    int budget_mb = (int)(need_mb * 1.1) + 1;
    long growth = child_growth(budget_mb);
    CHECK_MSG(growth >= 0, "%s: a decode failed or its pixels differ from a serial decode", kind);
    long unlimited = child_growth(1 << 20);
    printf("%s: 4 concurrent decodes of %.0f MB each: peak grew %.0f MB with a %d MB budget, "
           "%.0f MB without\n",
           kind, need_mb, growth / 1024.0, budget_mb, unlimited / 1024.0);
#if defined(__SANITIZE_ADDRESS__)
    printf("%s: AddressSanitizer keeps freed memory in quarantine: the peak is not checked\n",
           kind);
#else
    CHECK_MSG(growth / 1024.0 < need_mb * 1.6,
              "%s: the peak grew %.0f MB for decodes of %.0f MB each under a %d MB budget", kind,
              growth / 1024.0, need_mb, budget_mb);
#endif
}

int main(void) {
    char dir[256];
    dt_error err = {{0}, 0};
    if (dt_testgen_make_temp_dir("dtrain-decode-budget", dir, sizeof dir, &err)) {
        fprintf(stderr, "%s\n", err.message);
        return 1;
    }
    /* PNG RGBA: libpng's rows (4 bytes a pixel) plus the RGB result (3) */
    int side = 3000;
    size_t n = (size_t)side * side;
    uint16_t *samples = malloc(n * 4 * sizeof *samples);
    CHECK(samples != NULL);
    /* smooth gradients: small files, so that the encoded bytes read do not blur the peak */
    for (size_t i = 0; samples && i < n * 4; i++)
        samples[i] = (uint16_t)((i / 4 % (size_t)side + i / 4 / (size_t)side * (i % 4)) & 255);
    for (int k = 0; samples && k < IMAGES; k++) {
        samples[k] = (uint16_t)k; /* each file its own pixels */
        snprintf(paths[k], sizeof paths[k], "%s/big%d.png", dir, k);
        dt_testgen_png png = {
            .width = side, .height = side, .color_type = 6, .bit_depth = 8, .samples = samples};
        CHECK(dt_testgen_write_png(paths[k], &png, &err) == 0);
    }
    free(samples);
    check_bounded("PNG", (double)n * 7 / (1 << 20));

    /* baseline JPEG: the RGB result only */
    int width = 4000, height = 3000;
    uint8_t *rgb = malloc((size_t)width * height * 3);
    CHECK(rgb != NULL);
    for (int k = 0; rgb && k < IMAGES; k++) {
        dt_testgen_fill_photo_like(rgb, width, height, (uint64_t)k + 1);
        snprintf(paths[k], sizeof paths[k], "%s/big%d.jpg", dir, k);
        CHECK(dt_testgen_write_jpeg(paths[k], rgb, width, height, 3, 80, 0, &err) == 0);
    }
    free(rgb);
    check_bounded("JPEG", (double)width * height * 3 / (1 << 20));
    dt_testgen_finish_temp_dir(dir);
    return dt_test_summary("decode_budget");
}
