/* Runs tools/fashion_mnist_to_imagefolder (path in $FASHION_TOOL) on small synthetic IDX gzip
 * files and checks the ImageFolders it writes (training and test images in separate roots,
 * names, classes, pixels, rerun with a smaller limit, --limit 0 = all) and its errors (wrong
 * magic, truncated file, missing --out, the removed --include-test, --test-out = --out). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <zlib.h>

#include "check.h"
#include "dtrain/data.h"
#include "imagegen.h"
#include "process.h"

static char dir[1024];
static const char *tool;

static void put_be32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)(v >> 24), p[1] = (uint8_t)(v >> 16), p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

/* Writes an IDX file, gzip-compressed, keeping only keep_bytes of the payload. */
static void write_idx(const char *path, uint32_t magic, uint32_t count, int image_file,
                      const uint8_t *payload, size_t keep_bytes) {
    uint8_t header[16];
    put_be32(header, magic);
    put_be32(header + 4, count);
    put_be32(header + 8, 28);
    put_be32(header + 12, 28);
    gzFile file = gzopen(path, "wb");
    gzwrite(file, header, image_file ? 16 : 8);
    if (keep_bytes) gzwrite(file, payload, (unsigned)keep_bytes);
    gzclose(file);
}

static uint8_t pixel_of(size_t image, int i) {
    return (uint8_t)(i < 392 ? 20 + image * 5 : 200); /* top half dark, bottom half light */
}

static void write_dataset(const char *source, uint32_t n_train, uint32_t n_test) {
    char path[2048];
    const char *prefixes[2] = {"train", "t10k"};
    uint32_t counts[2] = {n_train, n_test};
    for (int s = 0; s < 2; s++) {
        uint8_t *images = malloc((size_t)counts[s] * 784), *labels = malloc(counts[s]);
        for (size_t n = 0; n < counts[s]; n++) {
            labels[n] = (uint8_t)((n * 3 + (size_t)s) % 10);
            for (int i = 0; i < 784; i++) images[n * 784 + (size_t)i] = pixel_of(n, i);
        }
        snprintf(path, sizeof path, "%s/%s-images-idx3-ubyte.gz", source, prefixes[s]);
        write_idx(path, 0x803, counts[s], 1, images, (size_t)counts[s] * 784);
        snprintf(path, sizeof path, "%s/%s-labels-idx1-ubyte.gz", source, prefixes[s]);
        write_idx(path, 0x801, counts[s], 0, labels, counts[s]);
        free(images);
        free(labels);
    }
}

/* Runs the tool with args; returns its exit code (dt_test_run), output in *log (caller frees;
 * NULL when it cannot be read). */
static int run_tool(const char *args, char **log) {
    char command[4096], log_path[1200];
    snprintf(log_path, sizeof log_path, "%s/tool.log", dir);
    snprintf(command, sizeof command, "'%s' %s > '%s' 2>&1", tool, args, log_path);
    int code = dt_test_run(command);
    *log = dt_test_read_text(log_path);
    return code;
}

/* The tool's output for a check message. */
static const char *shown(const char *log) {
    return log ? log : "(no output file)";
}

int main(void) {
    tool = getenv("FASHION_TOOL");
    dt_error err;
    if (!tool || dt_testgen_make_temp_dir("dtrain-fashion", dir, sizeof dir, &err) != 0) {
        fprintf(stderr, "needs $FASHION_TOOL and a temp dir\n");
        return 1;
    }
    char source[1200], out[1200], test_out[1200], args[4096];
    snprintf(source, sizeof source, "%s/src", dir);
    snprintf(out, sizeof out, "%s/nested/out", dir); /* parents are created */
    snprintf(test_out, sizeof test_out, "%s/nested/test", dir);
    dt_make_directories(source, &err);
    write_dataset(source, 30, 12);

    char *log;
    snprintf(args, sizeof args, "--source '%s' --out '%s' --limit 25 --test-out '%s'", source, out,
             test_out);
    CHECK_INT_EQ(run_tool(args, &log), 0);
    CHECK_MSG(log && strstr(log, "wrote 25 training images in 10 classes to ") &&
                  strstr(log, "wrote 12 test images in 10 classes to "),
              "%s", shown(log));
    free(log);
    dt_dataset ds;
    if (dt_dataset_scan(out, &ds, &err) == 0) {
        CHECK_INT_EQ(ds.n_classes, 10);
        CHECK_STR_EQ(ds.class_names[0], "ankle_boot"); /* folders sort by name */
        CHECK_STR_EQ(ds.class_names[9], "trouser");
        CHECK_INT_EQ(ds.n_files, 25); /* training images only */
        for (size_t i = 0; i < ds.n_files; i++)
            CHECK_MSG(strstr(ds.files[i].path, "/train_"), "%s", ds.files[i].path);
        dt_dataset_free(&ds);
    } else {
        CHECK_MSG(0, "scan: %s", err.message);
    }
    if (dt_dataset_scan(test_out, &ds, &err) == 0) { /* the test images, in a root of their own */
        CHECK_INT_EQ(ds.n_classes, 10);
        CHECK_INT_EQ(ds.n_files, 12);
        for (size_t i = 0; i < ds.n_files; i++)
            CHECK_MSG(strstr(ds.files[i].path, "/test_"), "%s", ds.files[i].path);
        dt_dataset_free(&ds);
    } else {
        CHECK_MSG(0, "scan of the test root: %s", err.message);
    }
    /* train image 7 has label 7 * 3 % 10 = 1 (trouser); test image 4 has label 13 % 10 = 3 */
    char path[2048];
    snprintf(path, sizeof path, "%s/trouser/train_00007.jpg", out);
    dt_image img;
    if (dt_image_decode_file(path, &img, &err) == 0) {
        CHECK(img.width == 28 && img.height == 28);
        int worst = 0;
        for (int i = 0; i < 784; i++) {
            int d = abs(img.pixels[3 * i] - pixel_of(7, i));
            worst = d > worst ? d : worst;
        }
        CHECK_MSG(worst <= 40, "grayscale JPEG close to the IDX pixels (max diff %d)", worst);
        int interior = abs(img.pixels[3 * (5 * 28 + 14)] - pixel_of(7, 5 * 28 + 14));
        CHECK_MSG(interior <= 3, "pixel away from the edge within 3 (%d)", interior);
        dt_image_free(&img);
    } else {
        CHECK_MSG(0, "%s", err.message);
    }
    snprintf(path, sizeof path, "%s/dress/test_00004.jpg", test_out);
    CHECK(dt_image_decode_file(path, &img, &err) == 0);
    dt_image_free(&img);

    /* A rerun with a smaller limit leaves exactly what it was asked for. */
    snprintf(args, sizeof args, "--source '%s' --out '%s' --limit 10", source, out);
    CHECK_INT_EQ(run_tool(args, &log), 0);
    free(log);
    if (dt_dataset_scan(out, &ds, &err) == 0) {
        CHECK_INT_EQ(ds.n_files, 10);
        dt_dataset_free(&ds);
    } else {
        CHECK_MSG(0, "scan after the rerun: %s", err.message);
    }
    /* --limit 0: all of them */
    snprintf(args, sizeof args, "--source '%s' --out '%s' --limit 0", source, out);
    CHECK_INT_EQ(run_tool(args, &log), 0);
    CHECK_MSG(log && strstr(log, "wrote 30 training images"), "%s", shown(log));
    free(log);
    /* the test images never go into the training folder */
    snprintf(args, sizeof args, "--source '%s' --out '%s' --include-test", source, out);
    CHECK_INT_EQ(run_tool(args, &log), 2);
    CHECK_MSG(log && strstr(log, "--test-out DIR"), "%s", shown(log));
    free(log);
    snprintf(args, sizeof args, "--source '%s' --out '%s' --test-out '%s'", source, out, out);
    CHECK_INT_EQ(run_tool(args, &log), 2);
    free(log);

    /* Errors name the file. */
    char images[1400];
    snprintf(images, sizeof images, "%s/train-images-idx3-ubyte.gz", source);
    uint8_t payload[784 * 2] = {0};
    write_idx(images, 0x801, 2, 1, payload, sizeof payload);
    snprintf(args, sizeof args, "--source '%s' --out '%s'", source, out);
    CHECK_INT_EQ(run_tool(args, &log), 1);
    CHECK_MSG(log && strstr(log, images) && strstr(log, "magic"), "%s", shown(log));
    free(log);
    write_idx(images, 0x803, 30, 1, payload, sizeof payload); /* 2 of 30 images */
    CHECK_INT_EQ(run_tool(args, &log), 1);
    CHECK_MSG(log && strstr(log, images) && strstr(log, "ends early"), "%s", shown(log));
    free(log);
    snprintf(args, sizeof args, "--source '%s'", source);
    CHECK_INT_EQ(run_tool(args, &log), 2);
    free(log);

    dt_testgen_finish_temp_dir(dir);
    return dt_test_summary("data_fashion_mnist_tool");
}
