/* bench_decode: single-threaded images/s of dtrain's per-image data path on a folder of
 * JPEG/PNG files: (1) the loader's per-image code (dt_sample_load: decode + resize to
 * SIZE x SIZE, data.resize=squash, PIL-exact, no augmentation) + normalise to float CHW (what
 * torchvision's ToTensor + Normalize produce) with the CPU backend's tensor_from_images on one
 * thread, the step training uses, (2) the same with reduced-scale JPEG decoding (loader option
 * jpeg_dct_scaling), and (3) decode only. Files are read from disk each time (page cache warm
 * after the first pass); names ending in .jpg, .jpeg or .png (any case) are used.
 * Then the parts on their own: decode from memory over the whole set, decode from memory with
 * each file repeated back to back (how tjbench measures: one file, hot in the caches), resize of
 * already decoded images, and normalisation of one SIZE x SIZE image.
 *
 *   bench_decode DIR [SIZE=224] [REPEAT=3]
 *
 * Prints "key=value" lines for bench/bench_decode.sh. */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "dtrain/backend.h"
#include "dtrain/data.h"
#include "dtrain/platform.h"

static int compare_names(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The extensions dt_dataset_scan accepts, in any case. */
static int has_image_extension(const char *name) {
    const char *dot = strrchr(name, '.');
    return dot && (strcasecmp(dot, ".jpg") == 0 || strcasecmp(dot, ".jpeg") == 0 ||
                   strcasecmp(dot, ".png") == 0);
}

static const float mean[3] = {0.485f, 0.456f, 0.406f}, std_dev[3] = {0.229f, 0.224f, 0.225f};

/* The training path's normalisation: uint8 HWC -> float CHW in the backend's tensor. */
static dt_backend backend;
static dt_tensor *input_tensor;

static void normalise(const uint8_t *hwc) {
    dt_error err;
    if (dt_backend_tensor_from_images(&backend, input_tensor, hwc, mean, std_dev, &err)) {
        fprintf(stderr, "bench_decode: %s\n", err.message);
        exit(1);
    }
}

typedef struct file_bytes {
    uint8_t *bytes;
    size_t size;
} file_bytes;

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: bench_decode DIR [SIZE=224] [REPEAT=3]\n");
        return 2;
    }
    const char *dir_path = argv[1];
    int size = argc > 2 ? atoi(argv[2]) : 224, repeat = argc > 3 ? atoi(argv[3]) : 3;
    if (size < 1 || repeat < 1) return 2;
    DIR *dir = opendir(dir_path);
    if (!dir) {
        perror(dir_path);
        return 1;
    }
    char **paths = NULL;
    size_t n = 0, capacity = 0;
    struct dirent *entry;
    while ((entry = readdir(dir)) != NULL) {
        if (entry->d_name[0] == '.' || !has_image_extension(entry->d_name)) continue;
        if (n == capacity) {
            capacity = capacity ? 2 * capacity : 256;
            paths = realloc(paths, capacity * sizeof *paths);
        }
        size_t len = strlen(dir_path) + strlen(entry->d_name) + 2;
        paths[n] = malloc(len);
        snprintf(paths[n], len, "%s/%s", dir_path, entry->d_name);
        n++;
    }
    closedir(dir);
    if (n == 0) {
        fprintf(stderr, "bench_decode: no images in %s\n", dir_path);
        return 1;
    }
    qsort(paths, n, sizeof *paths, compare_names);

    uint8_t *resized = malloc((size_t)size * size * 3);
    double checksum = 0, pixels = 0;
    dt_error err;
    if (dt_backend_cpu_create(&(dt_backend_options){.threads = 1}, &backend, &err) ||
        !(input_tensor = dt_backend_tensor_create(&backend, 1, 3, size, size, &err))) {
        fprintf(stderr, "bench_decode: %s\n", err.message);
        return 1;
    }
    /* one untimed pass: page cache and allocator warm */
    for (size_t i = 0; i < n; i++) {
        dt_image img;
        if (dt_image_decode_file(paths[i], &img, &err) != 0) {
            fprintf(stderr, "bench_decode: %s\n", err.message);
            return 1;
        }
        pixels += (double)img.width * img.height;
        dt_image_free(&img);
    }
    /* the loader's options for an evaluation sample (no augmentation) */
    dt_loader_options sample_options = {
        .image_size = size, .resize = DT_RESIZE_SQUASH, .augment = DT_AUGMENT_NONE};
    double start = dt_monotonic_seconds();
    for (int r = 0; r < repeat; r++) {
        for (size_t i = 0; i < n; i++) {
            if (dt_sample_load(paths[i], &sample_options, 0, 0, (uint32_t)i, resized, &err) != 0) {
                fprintf(stderr, "bench_decode: %s\n", err.message);
                return 1;
            }
            normalise(resized);
            checksum += resized[(size_t)(i % 7)];
        }
    }
    double pipeline_seconds = dt_monotonic_seconds() - start;
    /* the same with loader option jpeg_dct_scaling: JPEGs >= 2x the target decode reduced */
    sample_options.jpeg_dct_scaling = 1;
    start = dt_monotonic_seconds();
    for (int r = 0; r < repeat; r++) {
        for (size_t i = 0; i < n; i++) {
            if (dt_sample_load(paths[i], &sample_options, 0, 0, (uint32_t)i, resized, &err) != 0)
                return 1;
            normalise(resized);
            checksum += resized[(size_t)(i % 5)];
        }
    }
    double scaled_seconds = dt_monotonic_seconds() - start;
    start = dt_monotonic_seconds();
    for (int r = 0; r < repeat; r++) {
        for (size_t i = 0; i < n; i++) {
            dt_image img;
            if (dt_image_decode_file(paths[i], &img, &err) != 0) return 1;
            checksum += img.pixels[0];
            dt_image_free(&img);
        }
    }
    double decode_seconds = dt_monotonic_seconds() - start;
    double images = (double)n * repeat;

    /* the parts on their own, from memory */
    file_bytes *files = calloc(n, sizeof *files);
    dt_image *decoded = calloc(n, sizeof *decoded);
    if (!files || !decoded) return 1;
    for (size_t i = 0; i < n; i++) {
        if (dt_read_file(paths[i], SIZE_MAX, &files[i].bytes, &files[i].size, &err) != 0 ||
            dt_image_decode_memory(files[i].bytes, files[i].size, paths[i], &decoded[i], &err)) {
            fprintf(stderr, "bench_decode: %s\n", err.message);
            return 1;
        }
    }
    start = dt_monotonic_seconds();
    for (int r = 0; r < repeat; r++) {
        for (size_t i = 0; i < n; i++) {
            dt_image img;
            if (dt_image_decode_memory(files[i].bytes, files[i].size, paths[i], &img, &err) != 0)
                return 1;
            checksum += img.pixels[1];
            dt_image_free(&img);
        }
    }
    double memory_seconds = dt_monotonic_seconds() - start;
    /* tjbench's way: per file, warm-up decodes, then the rate of back-to-back decodes; the
     * set's rate is n / sum(1 / rate) */
    enum { HOT_WARMUP = 3, HOT_TIMED = 20 };
    double hot_seconds_per_image_sum = 0;
    for (size_t i = 0; i < n; i++) {
        double file_start = 0;
        for (int k = 0; k < HOT_WARMUP + HOT_TIMED; k++) {
            if (k == HOT_WARMUP) file_start = dt_monotonic_seconds();
            dt_image img;
            if (dt_image_decode_memory(files[i].bytes, files[i].size, paths[i], &img, &err) != 0)
                return 1;
            checksum += img.pixels[2];
            dt_image_free(&img);
        }
        hot_seconds_per_image_sum += (dt_monotonic_seconds() - file_start) / HOT_TIMED;
    }
    start = dt_monotonic_seconds();
    for (int r = 0; r < repeat; r++) {
        for (size_t i = 0; i < n; i++) {
            if (dt_image_resize_to_square(&decoded[i], DT_RESIZE_SQUASH, size, resized, &err))
                return 1;
            checksum += resized[(size_t)(i % 3)];
        }
    }
    double resize_seconds = dt_monotonic_seconds() - start;
    start = dt_monotonic_seconds();
    for (int r = 0; r < repeat; r++)
        for (size_t i = 0; i < n; i++) normalise(resized);
    double normalise_seconds = dt_monotonic_seconds() - start;
    printf("files=%zu\nmean_pixels=%.0f\nsize=%d\nrepeat=%d\n", n, pixels / n, size, repeat);
    printf("dtrain_pipeline_img_per_s=%.1f\n", images / pipeline_seconds);
    printf("dtrain_pipeline_dct_scaled_img_per_s=%.1f\n", images / scaled_seconds);
    printf("dtrain_decode_img_per_s=%.1f\n", images / decode_seconds);
    printf("dtrain_decode_memory_img_per_s=%.1f\n", images / memory_seconds);
    printf("dtrain_decode_memory_hot_img_per_s=%.1f\n", (double)n / hot_seconds_per_image_sum);
    printf("dtrain_resize_us=%.1f\n", 1e6 * resize_seconds / images);
    printf("dtrain_normalise_us=%.1f\n", 1e6 * normalise_seconds / images);
    printf("checksum=%.3f\n", checksum);
    for (size_t i = 0; i < n; i++) {
        free(paths[i]);
        free(files[i].bytes);
        dt_image_free(&decoded[i]);
    }
    free(files);
    free(decoded);
    free(paths);
    free(resized);
    dt_backend_tensor_destroy(&backend, input_tensor);
    dt_backend_free(&backend);
    return 0;
}
