/* Helpers for tests that run the dtrain binary and read what it wrote. */
#include "process.h"

#include "imagegen.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

int dt_test_run(const char *cmd) {
    int status = system(cmd);
    if (status == -1 || !WIFEXITED(status)) return -1;
    return WEXITSTATUS(status);
}

char *dt_test_read_text(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    char *text = NULL;
    long size = -1;
    if (fseek(f, 0, SEEK_END) == 0) size = ftell(f);
    if (size >= 0 && fseek(f, 0, SEEK_SET) == 0 && (text = calloc((size_t)size + 1, 1)) &&
        fread(text, 1, (size_t)size, f) != (size_t)size)
        text[0] = '\0';
    fclose(f);
    return text;
}

int dt_test_write_text(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    if (!f) return -1;
    int wrote = fputs(text, f) >= 0;
    return fclose(f) == 0 && wrote ? 0 : -1;
}

int dt_test_count(const char *text, const char *needle) {
    int n = 0;
    for (const char *p = text; (p = strstr(p, needle)); p++) n++;
    return n;
}

int dt_test_dtrain_setup(const char *prefix, const char **dtrain_bin, char *workdir,
                         size_t workdir_size) {
    *dtrain_bin = getenv("DTRAIN_BIN");
    if (!*dtrain_bin) {
        fprintf(stderr, "DTRAIN_BIN is not set (run through ctest)\n");
        return 1;
    }
    dt_error err = {{0}, 0};
    if (dt_testgen_make_temp_dir(prefix, workdir, workdir_size, &err)) {
        fprintf(stderr, "%s\n", err.message);
        return 1;
    }
    return 0;
}

char *dt_test_read_log(const char *workdir, const char *name) {
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/%s.log", workdir, name);
    char *text = dt_test_read_text(path);
    return text ? text : strdup("");
}

int dt_test_small_run_setup(const char *prefix, int epochs, int batch_size, int keep_checkpoints,
                            char *workdir, size_t workdir_size) {
    dt_error err = {{0}, 0};
    if (dt_testgen_make_temp_dir(prefix, workdir, workdir_size, &err)) {
        fprintf(stderr, "%s\n", err.message);
        return 1;
    }
    char data[PATH_MAX], cfg[PATH_MAX + 512], path[PATH_MAX];
    snprintf(data, sizeof data, "%s/data", workdir);
    if (dt_testgen_learnable_imagefolder(data, 4, 4, 20, 20, 5, &err)) {
        fprintf(stderr, "%s\n", err.message);
        return 1;
    }
    snprintf(cfg, sizeof cfg,
             "data:\n  root: %s\n  image_size: 16\n  val_fraction: 0.25\n  workers: 1\n"
             "train:\n  epochs: %d\n  batch_size: %d\n  lr: 0.02\n  momentum: 0.9\n"
             "runtime:\n  device: cpu\n  threads: 1\n"
             "output:\n  log_every: 1\n  checkpoint_every: 2\n  keep_checkpoints: %d\n",
             data, epochs, batch_size, keep_checkpoints);
    snprintf(path, sizeof path, "%s/base.yaml", workdir);
    return dt_test_write_text(path, cfg) ? 1 : 0;
}

int dt_test_program_path(const char *arg, char *out, size_t size) {
    char resolved[PATH_MAX];
    if (!realpath(arg, resolved)) {
        fprintf(stderr, "%s: %s\n", arg, strerror(errno));
        return 2;
    }
    snprintf(out, size, "%s", resolved);
    return 0;
}
