/* Odd and hostile inputs given to the dtrain binary, each made by the test itself: FIFOs where
 * files are expected, closed standard descriptors, counts past their limits, class folders with
 * names that are not UTF-8 or hold newlines, control characters in printed names, data that never
 * decodes, float values that vanish in float32, over-long output paths, one class, batches that
 * cannot train. Every refusal must come with exit code 2, a message naming the key or the file,
 * and nothing written; every run must end (each command runs under timeout). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "dtrain/safetensors.h"
#include "imagegen.h"
#include "process.h"

static char workdir[256];
static const char *dtrain_bin;

/* A two-class ImageFolder of small JPEGs at root (class00, class01). */
static void make_data(const char *root, int per_class) {
    dt_error err = {{0}, 0};
    CHECK_MSG(dt_testgen_learnable_imagefolder(root, 2, per_class, 20, 20, 3, &err) == 0, "%s",
              err.message);
}

/* Writes NAME.yaml in workdir: a small CPU run on data into out, plus extra lines (YAML, may be
 * empty) appended to the train section. */
static void write_config(const char *name, const char *data, const char *out, const char *extra) {
    char cfg[8192], path[512];
    snprintf(cfg, sizeof cfg,
             "data:\n  root: %s\n  val_fraction: 0.25\n  image_size: 16\n  workers: 1\n"
             "train:\n  epochs: 1\n  batch_size: 4\n  lr: 0.01\n%s"
             "runtime:\n  device: cpu\n  threads: 1\noutput:\n  dir: %s\n  log_every: 1\n",
             data, extra ? extra : "", out);
    snprintf(path, sizeof path, "%s/%s.yaml", workdir, name);
    CHECK(dt_test_write_text(path, cfg) == 0);
}

/* Runs dtrain on workdir/NAME.yaml with overrides (shell words), output in workdir/NAME.log;
 * returns the exit code (124 when it had to be killed after 300 s) and the log (caller frees). */
static int run_dtrain(const char *name, const char *overrides, const char *redirect, char **log) {
    char cmd[8192], path[512];
    snprintf(path, sizeof path, "%s/%s.log", workdir, name);
    snprintf(cmd, sizeof cmd, "timeout 300 %s %s/%s.yaml %s %s", dtrain_bin, workdir, name,
             overrides ? overrides : "", redirect ? redirect : "");
    if (!redirect) {
        size_t used = strlen(cmd);
        snprintf(cmd + used, sizeof cmd - used, " > %s 2>&1", path);
    }
    int rc = dt_test_run(cmd);
    *log = dt_test_read_text(path);
    if (!*log) *log = calloc(1, 1);
    return rc;
}

static int exists(const char *path) {
    struct stat info;
    return lstat(path, &info) == 0;
}

/* Exit 2, the log names what, and the output folder was not created. */
static void check_refused(const char *name, const char *overrides, const char *out,
                          const char *what) {
    char *log = NULL;
    int rc = run_dtrain(name, overrides, NULL, &log);
    CHECK_MSG(rc == 2, "%s: exit code %d, expected 2; output:\n%s", name, rc, log);
    CHECK_MSG(strstr(log, what) != NULL, "%s: '%s' not in the output:\n%s", name, what, log);
    CHECK_MSG(!exists(out), "%s: %s was created", name, out);
    free(log);
}

/* Row 1: model.pretrained names a FIFO with no writer: refused at once, exit 2, naming it. */
static void test_fifo_pretrained(void) {
    char data[512], out[512], fifo[512], overrides[700];
    snprintf(data, sizeof data, "%s/data", workdir);
    snprintf(out, sizeof out, "%s/out-fifo", workdir);
    snprintf(fifo, sizeof fifo, "%s/weights.safetensors", workdir);
    CHECK(mkfifo(fifo, 0600) == 0);
    write_config("fifo", data, out, NULL);
    snprintf(overrides, sizeof overrides, "model.pretrained=%s", fifo);
    char *log = NULL;
    int rc = run_dtrain("fifo", overrides, NULL, &log);
    CHECK_MSG(rc == 2, "FIFO pretrained: exit code %d (124: it hung), expected 2:\n%s", rc, log);
    CHECK_MSG(strstr(log, "model.pretrained") && strstr(log, fifo) && strstr(log, "FIFO"), "%s",
              log);
    free(log);
}

/* Rows 2 and 3: counts past their limits, refused by the config check, naming the key. */
static void test_count_limits(void) {
    char data[512], out[512];
    snprintf(data, sizeof data, "%s/data", workdir);
    snprintf(out, sizeof out, "%s/out-limits", workdir);
    write_config("limits", data, out, NULL);
    check_refused("limits", "runtime.threads=100000", out, "runtime.threads: must be in [0, 1024]");
    check_refused("limits", "runtime.threads=60000", out, "runtime.threads");
    check_refused("limits", "train.accumulate=1073741824", out,
                  "train.accumulate: must be in [1, 1024]");
    check_refused("limits", "data.workers=2000", out, "data.workers: must be in [0, 1024]");
    check_refused("limits", "train.batch_size=2147483647", out, "train.batch_size");
    check_refused("limits", "train.epochs=2147483647", out, "train.epochs");
    /* the largest values are accepted */
    char *log = NULL;
    int rc = run_dtrain("limits",
                        "train.accumulate=1024 runtime.threads=1024 data.workers=1024 "
                        "train.batch_size=65536 train.epochs=1000000 --print-config",
                        NULL, &log);
    CHECK_MSG(rc == 0 && strstr(log, "  accumulate: 1024\n"), "exit %d:\n%s", rc, log);
    free(log);
}

/* Rows 4 and 5: class folders named with bytes that are not UTF-8, or with a newline; a display
 * name with a newline. */
static void test_class_names(void) {
    char data[512], out[512], from[600], to[600];
    snprintf(out, sizeof out, "%s/out-names", workdir);
    const char *bad_names[] = {"caf\xff", "two\nlines", "bell\a"};
    const char *shown[] = {"caf\\xFF", "two\\nlines", "bell\\x07"};
    for (int i = 0; i < 3; i++) {
        snprintf(data, sizeof data, "%s/data-names%d", workdir, i);
        make_data(data, 6);
        snprintf(from, sizeof from, "%s/class01", data);
        snprintf(to, sizeof to, "%s/%s", data, bad_names[i]);
        CHECK(rename(from, to) == 0);
        write_config("names", data, out, NULL);
        char expected[200];
        snprintf(expected, sizeof expected, "class folder '%s'", shown[i]);
        check_refused("names", NULL, out, expected);
    }
    snprintf(data, sizeof data, "%s/data", workdir);
    write_config("display", data, out, NULL);
    char cfg_path[512], cfg[4096];
    snprintf(cfg_path, sizeof cfg_path, "%s/display.yaml", workdir);
    char *text = dt_test_read_text(cfg_path);
    snprintf(cfg, sizeof cfg, "%s", text ? text : "");
    free(text);
    char *data_line = strstr(cfg, "data:\n");
    CHECK(data_line != NULL);
    if (data_line) {
        char with_names[4200];
        snprintf(with_names, sizeof with_names, "data:\n  class_names: {class00: \"a\\nb\"}\n%s",
                 data_line + 6);
        CHECK(dt_test_write_text(cfg_path, with_names) == 0);
        check_refused("display", NULL, out, "data.class_names.class00");
    }
}

/* Row 5 (the other side): odd but valid class names read back from classes.txt and the model's
 * "classes" metadata exactly as they were written. Row 6: a file name with ESC, BEL and a newline
 * in it (an undecodable file, so it is named in a warning) is printed escaped: no raw control
 * byte reaches the terminal, no forged line. One run for both. */
static void test_odd_names(void) {
    char data[512], out[512], from[600], to[600], path[700];
    snprintf(data, sizeof data, "%s/data-odd", workdir);
    snprintf(out, sizeof out, "%s/out-odd", workdir);
    make_data(data, 8);
    const char *names[2] = {"a \"quoted\" \\ name", "\xc3\xa9t\xc3\xa9 \xf0\x9f\x90\x88"};
    snprintf(from, sizeof from, "%s/class00", data);
    snprintf(to, sizeof to, "%s/%s", data, names[0]);
    CHECK(rename(from, to) == 0);
    snprintf(from, sizeof from, "%s/class01", data);
    snprintf(to, sizeof to, "%s/%s", data, names[1]);
    CHECK(rename(from, to) == 0);
    snprintf(path, sizeof path, "%s/%s/x\033[2J\a\ndone: forged.jpg", data, names[1]);
    CHECK(dt_test_write_text(path, "not an image") == 0);
    write_config("odd", data, out, NULL);
    char *log = NULL;
    int rc = run_dtrain("odd", NULL, NULL, &log);
    CHECK_MSG(rc == 0, "odd names: exit %d:\n%s", rc, log);
    CHECK_MSG(!strchr(log, '\033') && !strchr(log, '\a'), "raw control bytes in:\n%s", log);
    CHECK_MSG(strstr(log, "x\\e[2J\\x07\\ndone: forged.jpg"), "escaped name not in:\n%s", log);
    CHECK_INT_EQ(dt_test_count(log, "\ndone:"), 1);
    free(log);
    snprintf(path, sizeof path, "%s/classes.txt", out);
    char *classes = dt_test_read_text(path);
    char expected[256];
    snprintf(expected, sizeof expected, "%s\n%s\n", names[0], names[1]);
    CHECK_STR_EQ(classes, expected);
    free(classes);
    dt_safetensors st;
    dt_error err = {{0}, 0};
    snprintf(path, sizeof path, "%s/model.safetensors", out);
    CHECK_MSG(dt_safetensors_read(path, &st, &err) == 0, "%s", err.message);
    snprintf(expected, sizeof expected, "%s\n%s", names[0], names[1]);
    CHECK_STR_EQ(dt_safetensors_metadata_value(&st, "classes"), expected);
    dt_safetensors_free(&st);
}

/* Row 7: no image of the data decodes: the log says so per window, and training stops naming a
 * class without a decodable image instead of reporting a NaN loss. */
static void test_undecodable_data(void) {
    char data[512], out[512], path[700];
    snprintf(data, sizeof data, "%s/data-bad", workdir);
    snprintf(out, sizeof out, "%s/out-bad", workdir);
    for (int c = 0; c < 2; c++)
        for (int i = 0; i < 8; i++) {
            snprintf(path, sizeof path, "%s/c%d", data, c);
            dt_make_directories(path, NULL);
            snprintf(path, sizeof path, "%s/c%d/%d.jpg", data, c, i);
            CHECK(dt_test_write_text(path, "truncated") == 0);
        }
    write_config("bad", data, out, NULL);
    char *log = NULL;
    int rc = run_dtrain("bad", NULL, NULL, &log);
    CHECK_MSG(rc == 1, "exit %d:\n%s", rc, log);
    CHECK_MSG(strstr(log, "no decodable image in the last 1 step"), "%s", log);
    CHECK_MSG(strstr(log, "class 'c0'") && strstr(log, "has no decodable image"), "%s", log);
    CHECK_MSG(!strstr(log, "NaN"), "%s", log);
    free(log);
}

/* Row 8: values checked as the float32 the program uses; the written config reloads. */
static void test_float_values(void) {
    char data[512], out[512];
    snprintf(data, sizeof data, "%s/data", workdir);
    snprintf(out, sizeof out, "%s/out-float", workdir);
    write_config("float", data, out, NULL);
    check_refused("float", "'data.std=[1e-50,1,1]'", out, "data.std[0]: must be > 0");
    check_refused("float", "'data.std=[1e-37,1,1]' 'data.mean=[100,0,0]'", out, "data.std");
    check_refused("float", "train.lr=1e300", out, "train.lr: out of range for a 32-bit float");
    check_refused("float", "train.momentum=0.99999999999", out, "train.momentum: must be in");
    /* an accepted odd config prints, and its printout loads back to the same printout */
    char cmd[2048], first[600], second[600];
    snprintf(first, sizeof first, "%s/printed1.yaml", workdir);
    snprintf(second, sizeof second, "%s/printed2.yaml", workdir);
    snprintf(cmd, sizeof cmd,
             "timeout 60 %s %s/float.yaml --print-config 'data.std=[1.5e-38,3e38,0.1]' "
             "train.lr=1e-40 'data.class_names={\"x: y\": \"caf\xc3\xa9 \\\\ \\\"q\\\"\"}' > %s",
             dtrain_bin, workdir, first);
    CHECK_INT_EQ(dt_test_run(cmd), 0);
    snprintf(cmd, sizeof cmd, "timeout 60 %s %s --print-config > %s", dtrain_bin, first, second);
    CHECK_INT_EQ(dt_test_run(cmd), 0);
    char *a = dt_test_read_text(first), *b = dt_test_read_text(second);
    CHECK(a && b && a[0] && strcmp(a, b) == 0);
    free(a);
    free(b);
}

/* Row 9: stdout and stderr closed (and stdin): console lines must not land in the output files. */
static void test_closed_descriptors(void) {
    char data[512], out[512], path[700];
    snprintf(data, sizeof data, "%s/data", workdir);
    snprintf(out, sizeof out, "%s/out-closed", workdir);
    write_config("closed", data, out, NULL);
    char *log = NULL;
    int rc = run_dtrain("closed", NULL, ">&- 2>&-", &log);
    free(log);
    CHECK_INT_EQ(rc, 0);
    snprintf(path, sizeof path, "%s/metrics.jsonl", out);
    char *jsonl = dt_test_read_text(path);
    CHECK(jsonl != NULL && jsonl[0] == '{');
    for (const char *line = jsonl; line && *line; line = strchr(line, '\n') + 1) {
        CHECK_MSG(line[0] == '{', "metrics.jsonl line: %.60s", line);
        if (!strchr(line, '\n')) break;
    }
    free(jsonl);
    snprintf(path, sizeof path, "%s/metrics.csv", out);
    char *csv = dt_test_read_text(path);
    CHECK(csv && strncmp(csv, "event,", 6) == 0);
    for (const char *line = csv ? strchr(csv, '\n') : NULL; line && line[1];
         line = strchr(line + 1, '\n'))
        CHECK_MSG(strncmp(line + 1, "train,", 6) == 0 || strncmp(line + 1, "eval,", 5) == 0,
                  "metrics.csv line: %.60s", line + 1);
    free(csv);
    snprintf(path, sizeof path, "%s/classes.txt", out);
    char *classes = dt_test_read_text(path);
    CHECK_STR_EQ(classes, "class00\nclass01\n");
    free(classes);
    snprintf(path, sizeof path, "%s/config.yaml", out);
    char *config = dt_test_read_text(path);
    CHECK(config && strncmp(config, "data:\n", 6) == 0 && !strstr(config, "epoch 1/1") &&
          !strstr(config, "warning"));
    free(config);
}

/* Row 10: an output.dir so long that its files' paths would not fit: refused up front. */
static void test_long_output_dir(void) {
    char data[512], out[4200];
    snprintf(data, sizeof data, "%s/data", workdir);
    int used = snprintf(out, sizeof out, "%s/long", workdir);
    while (used < 4082 - 200) used += snprintf(out + used, sizeof out - (size_t)used, "/%0199d", 7);
    while (used < 4082) out[used++] = 'd';
    out[used] = '\0';
    write_config("long", data, out, NULL);
    char first[600];
    snprintf(first, sizeof first, "%s/long", workdir);
    check_refused("long", NULL, first, "output.dir: too long (4082 bytes");
}

/* Row 11: one class, or a batch whose batch norm has a single value per channel. */
static void test_untrainable_shapes(void) {
    char data[512], out[512], path[600];
    snprintf(data, sizeof data, "%s/data-one", workdir);
    snprintf(out, sizeof out, "%s/out-one", workdir);
    make_data(data, 6);
    snprintf(path, sizeof path, "rm -rf %s/class01", data);
    CHECK_INT_EQ(dt_test_run(path), 0);
    write_config("one", data, out, NULL);
    check_refused("one", NULL, out, "only one class folder ('class00')");

    snprintf(data, sizeof data, "%s/data", workdir);
    write_config("batch1", data, out, NULL);
    check_refused("batch1", "train.batch_size=1 data.image_size=32", out,
                  "train.batch_size: must be at least 2 with data.image_size 32");
    char *log = NULL;
    CHECK_INT_EQ(
        run_dtrain("batch1", "train.batch_size=1 data.image_size=33 --print-config", NULL, &log),
        0);
    free(log);
}

/* Row 12: model.pretrained is a 100 GB sparse file: refused (zeros: no header) or, with a valid
 * header over the whole size, read in bounded time, without reading the data. */
static void test_sparse_pretrained(void) {
    char data[512], out[512], sparse[512];
    snprintf(data, sizeof data, "%s/data", workdir);
    snprintf(out, sizeof out, "%s/out-sparse", workdir);
    snprintf(sparse, sizeof sparse, "%s/sparse.safetensors", workdir);
    const long long size = 100LL << 30;
    int fd = open(sparse, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    CHECK(fd >= 0 && ftruncate(fd, (off_t)size) == 0);
    close(fd);
    write_config("sparse", data, out, NULL);
    char overrides[700];
    snprintf(overrides, sizeof overrides, "model.pretrained=%s", sparse);
    double start = dt_monotonic_seconds();
    check_refused("sparse", overrides, out, sparse);
    CHECK_MSG(dt_monotonic_seconds() - start < 30, "took %.1f s", dt_monotonic_seconds() - start);

    /* a header whose one tensor covers the rest of the 100 GB */
    char header[256];
    long long header_length = 88, data_size = size - 8 - header_length;
    int n = snprintf(header, sizeof header,
                     "{\"junk\":{\"dtype\":\"U8\",\"shape\":[%lld],\"data_offsets\":[0,%lld]}}",
                     data_size, data_size);
    while (n < header_length) header[n++] = ' ';
    fd = open(sparse, O_WRONLY);
    unsigned char length_bytes[8];
    for (int i = 0; i < 8; i++) length_bytes[i] = (unsigned char)(header_length >> (8 * i));
    CHECK(fd >= 0 && pwrite(fd, length_bytes, 8, 0) == 8 &&
          pwrite(fd, header, (size_t)header_length, 8) == header_length);
    close(fd);
    dt_safetensors st;
    dt_error err = {{0}, 0};
    start = dt_monotonic_seconds();
    CHECK_MSG(dt_safetensors_read(sparse, &st, &err) == 0, "%s", err.message);
    CHECK(st.n_tensors == 1 && st.tensors[0].end - st.tensors[0].begin == (size_t)data_size);
    dt_safetensors_free(&st);
    CHECK_MSG(dt_monotonic_seconds() - start < 5, "reading the header took %.1f s",
              dt_monotonic_seconds() - start);
    start = dt_monotonic_seconds();
    check_refused("sparse", overrides, out, "is not a torchvision/timm ResNet-18 state dict");
    CHECK_MSG(dt_monotonic_seconds() - start < 60, "took %.1f s", dt_monotonic_seconds() - start);
    struct rusage usage;
    CHECK(getrusage(RUSAGE_CHILDREN, &usage) == 0);
    CHECK_MSG(usage.ru_maxrss < 1024L * 1024, "a run took %ld KiB of memory", usage.ru_maxrss);
    /* one byte more than the header's offsets: refused before any data is read */
    fd = open(sparse, O_WRONLY);
    CHECK(fd >= 0 && ftruncate(fd, (off_t)size + 1) == 0);
    close(fd);
    CHECK_INT_EQ(dt_safetensors_read(sparse, &st, &err), -1);
    CHECK_MSG(strstr(err.message, "1 trailing bytes"), "%s", err.message);
    remove(sparse);
}

int main(void) {
    if (dt_test_dtrain_setup("dtrain-hostile", &dtrain_bin, workdir, sizeof workdir)) return 1;
    char data[512];
    snprintf(data, sizeof data, "%s/data", workdir);
    make_data(data, 8);
    test_fifo_pretrained();
    test_count_limits();
    test_class_names();
    test_odd_names();
    test_undecodable_data();
    test_float_values();
    test_closed_descriptors();
    test_long_output_dir();
    test_untrainable_shapes();
    test_sparse_pretrained();
    dt_testgen_finish_temp_dir(workdir);
    return dt_test_summary("hostile_inputs");
}
