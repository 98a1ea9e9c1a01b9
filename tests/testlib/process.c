/* Helpers for tests that run the dtrain binary and read what it wrote. */
#include "process.h"

#include "imagegen.h"

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
