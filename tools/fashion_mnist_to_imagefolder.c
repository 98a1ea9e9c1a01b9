/* fashion_mnist_to_imagefolder: turns the Fashion-MNIST IDX files (gzip) into ImageFolders of
 * 28x28 grayscale JPEGs (quality 95), one folder per class, for dtrain's end-to-end runs: the
 * training images in one root, the test images (when asked) in another, never mixed.
 *
 *   fashion_mnist_to_imagefolder --out DIR [--test-out DIR] [--source DIR] [--limit N]
 *
 * Files are named train_NNNNN.jpg / test_NNNNN.jpg after their index in the IDX file. Running
 * it again rewrites the folders to exactly what was asked (earlier train_/test_ files in the
 * class folders are removed first; nothing else is touched). */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <zlib.h>

#include "dtrain/data.h"
#include "dtrain/error.h"
#include "dtrain/platform.h"

#define IDX_LABELS_MAGIC 0x00000801u /* unsigned bytes, 1 dimension */
#define IDX_IMAGES_MAGIC 0x00000803u /* unsigned bytes, 3 dimensions */
#define FASHION_SIDE 28
#define FASHION_CLASSES 10
#define JPEG_QUALITY 95

static const char *const class_folders[FASHION_CLASSES] = {
    "t-shirt_top", "trouser", "pullover", "dress", "coat",
    "sandal",      "shirt",   "sneaker",  "bag",   "ankle_boot",
};

typedef struct idx_split {
    uint8_t *pixels; /* count x 28 x 28 */
    uint8_t *labels; /* count */
    size_t count;
} idx_split;

static void usage(FILE *out) {
    fprintf(out,
            "usage: fashion_mnist_to_imagefolder --out DIR [--test-out DIR] [--source DIR] "
            "[--limit N]\n"
            "  --out DIR        where to write DIR/<class>/train_NNNNN.jpg (created if missing)\n"
            "  --test-out DIR   also write the 10000 test images as DIR/<class>/test_NNNNN.jpg,\n"
            "                   a root of their own (for data.val_root or dtrain eval --data)\n"
            "  --source DIR     folder with the IDX .gz files "
            "(default /usr/share/datasets/fashion-mnist)\n"
            "  --limit N        only the first N training images (default and 0: all 60000)\n");
}

static int read_exact(gzFile file, const char *path, void *buffer, size_t size, dt_error *err) {
    uint8_t *out = buffer;
    while (size > 0) {
        unsigned chunk = size > (1u << 30) ? (1u << 30) : (unsigned)size;
        int got = gzread(file, out, chunk);
        if (got < 0) {
            int code;
            const char *message = gzerror(file, &code);
            return dt_fail(err, "%s: read error: %s", path, message);
        }
        if (got == 0) return dt_fail(err, "%s: file ends early (truncated?)", path);
        out += got;
        size -= (size_t)got;
    }
    return 0;
}

static int read_be32(gzFile file, const char *path, uint32_t *value, dt_error *err) {
    uint8_t bytes[4];
    if (read_exact(file, path, bytes, 4, err) != 0) return -1;
    *value =
        (uint32_t)bytes[0] << 24 | (uint32_t)bytes[1] << 16 | (uint32_t)bytes[2] << 8 | bytes[3];
    return 0;
}

/* Reads an IDX file: magic, dimension sizes, then the bytes; checks it is what we expect. */
static int read_idx(const char *path, uint32_t expected_magic, uint8_t **data, size_t *count,
                    dt_error *err) {
    *data = NULL;
    *count = 0;
    gzFile file = gzopen(path, "rb");
    if (!file) return dt_fail(err, "%s: cannot open: %s", path, strerror(errno));
    uint32_t magic = 0, n = 0, rows = 1, cols = 1;
    int rc = read_be32(file, path, &magic, err);
    if (rc == 0 && magic != expected_magic)
        rc = dt_fail(err, "%s: IDX magic number is 0x%08x, expected 0x%08x (%s)", path, magic,
                     expected_magic,
                     expected_magic == IDX_IMAGES_MAGIC ? "an images file" : "a labels file");
    if (rc == 0) rc = read_be32(file, path, &n, err);
    if (rc == 0 && expected_magic == IDX_IMAGES_MAGIC) {
        rc = read_be32(file, path, &rows, err);
        if (rc == 0) rc = read_be32(file, path, &cols, err);
        if (rc == 0 && (rows != FASHION_SIDE || cols != FASHION_SIDE))
            rc = dt_fail(err, "%s: images are %ux%u, expected %dx%d", path, rows, cols,
                         FASHION_SIDE, FASHION_SIDE);
    }
    if (rc == 0 && (n == 0 || n > 10000000))
        rc = dt_fail(err, "%s: implausible item count %u", path, n);
    size_t size = (size_t)n * rows * cols;
    if (rc == 0) {
        *data = malloc(size);
        if (!*data) rc = dt_fail(err, "%s: out of memory for %zu bytes", path, size);
    }
    if (rc == 0) rc = read_exact(file, path, *data, size, err);
    uint8_t extra;
    if (rc == 0 && gzread(file, &extra, 1) > 0)
        rc = dt_fail(err, "%s: more data than the header announces (%u items)", path, n);
    gzclose(file);
    if (rc != 0) {
        free(*data);
        *data = NULL;
        return -1;
    }
    *count = n;
    return 0;
}

static int load_split(const char *source, const char *prefix, idx_split *split, dt_error *err) {
    char images_path[4096], labels_path[4096];
    snprintf(images_path, sizeof images_path, "%s/%s-images-idx3-ubyte.gz", source, prefix);
    snprintf(labels_path, sizeof labels_path, "%s/%s-labels-idx1-ubyte.gz", source, prefix);
    size_t n_images, n_labels;
    memset(split, 0, sizeof *split);
    if (read_idx(images_path, IDX_IMAGES_MAGIC, &split->pixels, &n_images, err) != 0) return -1;
    if (read_idx(labels_path, IDX_LABELS_MAGIC, &split->labels, &n_labels, err) != 0) {
        free(split->pixels);
        return -1;
    }
    int rc = 0;
    if (n_images != n_labels)
        rc = dt_fail(err, "%s has %zu images but %s has %zu labels", images_path, n_images,
                     labels_path, n_labels);
    for (size_t i = 0; rc == 0 && i < n_labels; i++)
        if (split->labels[i] >= FASHION_CLASSES)
            rc = dt_fail(err, "%s: label %u of item %zu is not a class 0..9", labels_path,
                         split->labels[i], i);
    if (rc != 0) {
        free(split->pixels);
        free(split->labels);
        memset(split, 0, sizeof *split);
        return -1;
    }
    split->count = n_images;
    return 0;
}

/* True for the names this tool writes: train_NNNNN.jpg or test_NNNNN.jpg. */
static int is_our_file_name(const char *name) {
    const char *digits = strncmp(name, "train_", 6) == 0  ? name + 6
                         : strncmp(name, "test_", 5) == 0 ? name + 5
                                                          : NULL;
    if (!digits) return 0;
    size_t n = 0;
    while (digits[n] >= '0' && digits[n] <= '9') n++;
    return n >= 5 && strcmp(digits + n, ".jpg") == 0;
}

static int remove_previous_output(const char *folder, dt_error *err) {
    DIR *dir = opendir(folder);
    if (!dir) return dt_fail(err, "%s: cannot open folder: %s", folder, strerror(errno));
    struct dirent *entry;
    int rc = 0;
    while (rc == 0 && (entry = readdir(dir)) != NULL) {
        if (!is_our_file_name(entry->d_name)) continue;
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", folder, entry->d_name);
        if (unlink(path) != 0) rc = dt_fail(err, "%s: cannot remove: %s", path, strerror(errno));
    }
    closedir(dir);
    return rc;
}

static int write_split(const char *out, const char *prefix, const idx_split *split, size_t count,
                       size_t per_class[FASHION_CLASSES], dt_error *err) {
    char path[4096];
    for (size_t i = 0; i < count; i++) {
        int label = split->labels[i];
        snprintf(path, sizeof path, "%s/%s/%s_%05zu.jpg", out, class_folders[label], prefix, i);
        if (dt_jpeg_write_file(path, split->pixels + i * FASHION_SIDE * FASHION_SIDE, FASHION_SIDE,
                               FASHION_SIDE, 1, JPEG_QUALITY, 0, err) != 0)
            return -1;
        per_class[label]++;
    }
    return 0;
}

static int parse_count(const char *text, long *value) {
    char *end;
    errno = 0;
    long v = strtol(text, &end, 10);
    if (errno || end == text || *end || v < 0) return -1;
    *value = v;
    return 0;
}

/* The class folders of root, created, with this tool's earlier files removed. */
static int prepare_root(const char *root, dt_error *err) {
    int rc = dt_make_directories(root, err);
    for (int c = 0; rc == 0 && c < FASHION_CLASSES; c++) {
        char folder[4096];
        snprintf(folder, sizeof folder, "%s/%s", root, class_folders[c]);
        rc = dt_make_directories(folder, err);
        if (rc == 0) rc = remove_previous_output(folder, err);
    }
    return rc;
}

static void print_counts(const char *what, size_t n, const char *root,
                         const size_t per_class[FASHION_CLASSES]) {
    printf("wrote %zu %s images in %d classes to %s\n", n, what, FASHION_CLASSES, root);
    for (int c = 0; c < FASHION_CLASSES; c++)
        printf("  %-11s %zu\n", class_folders[c], per_class[c]);
    for (int c = 0; c < FASHION_CLASSES; c++)
        if (per_class[c] == 0)
            fprintf(stderr,
                    "warning: class %s got no %s images; an ImageFolder needs at least one "
                    "per class (raise --limit)\n",
                    class_folders[c], what);
}

static int run(const char *source, const char *out, const char *test_out, long limit,
               dt_error *err) {
    idx_split train, test = {0};
    if (load_split(source, "train", &train, err) != 0) return -1;
    if (test_out && load_split(source, "t10k", &test, err) != 0) {
        free(train.pixels);
        free(train.labels);
        return -1;
    }
    size_t n_train = limit > 0 && (size_t)limit < train.count ? (size_t)limit : train.count;
    size_t per_class[FASHION_CLASSES] = {0}, test_per_class[FASHION_CLASSES] = {0};
    int rc = prepare_root(out, err);
    if (rc == 0 && test_out) rc = prepare_root(test_out, err);
    if (rc == 0) rc = write_split(out, "train", &train, n_train, per_class, err);
    if (rc == 0 && test_out)
        rc = write_split(test_out, "test", &test, test.count, test_per_class, err);
    if (rc == 0) print_counts("training", n_train, out, per_class);
    if (rc == 0 && test_out) print_counts("test", test.count, test_out, test_per_class);
    free(train.pixels);
    free(train.labels);
    free(test.pixels);
    free(test.labels);
    return rc;
}

int main(int argc, char **argv) {
    const char *source = "/usr/share/datasets/fashion-mnist", *out = NULL, *test_out = NULL;
    long limit = 0;
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
            usage(stdout);
            return 0;
        } else if (strcmp(arg, "--include-test") == 0) {
            fprintf(stderr, "error: --include-test mixed the test images into the training "
                            "folder; write them to a root of their own with --test-out DIR\n");
            return DT_EXIT_USAGE;
        } else if ((strcmp(arg, "--out") == 0 || strcmp(arg, "--source") == 0 ||
                    strcmp(arg, "--test-out") == 0 || strcmp(arg, "--limit") == 0) &&
                   i + 1 < argc) {
            const char *value = argv[++i];
            if (strcmp(arg, "--out") == 0)
                out = value;
            else if (strcmp(arg, "--test-out") == 0)
                test_out = value;
            else if (strcmp(arg, "--source") == 0)
                source = value;
            else if (parse_count(value, &limit) != 0) {
                fprintf(stderr, "error: --limit needs a whole number (0: all), got '%s'\n", value);
                return DT_EXIT_USAGE;
            }
        } else {
            fprintf(stderr, "error: unknown or incomplete option '%s'\n", arg);
            usage(stderr);
            return DT_EXIT_USAGE;
        }
    }
    if (!out) {
        fprintf(stderr, "error: --out DIR is required\n");
        usage(stderr);
        return DT_EXIT_USAGE;
    }
    dt_error err = {{0}, 0};
    if (test_out && strcmp(test_out, out) == 0) {
        fprintf(stderr, "error: --test-out must be another folder than --out: the test images "
                        "stay out of the training data\n");
        return DT_EXIT_USAGE;
    }
    if (run(source, out, test_out, limit, &err) != 0) {
        fprintf(stderr, "error: %s\n", err.message);
        return DT_EXIT_RUNTIME;
    }
    return DT_EXIT_OK;
}
