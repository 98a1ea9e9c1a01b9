/* The image files named on a command line: files as given, folders walked recursively. */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "cli/cli.h"

typedef struct path_list {
    char **items;
    size_t n, capacity;
} path_list;

static int push(path_list *l, const char *path, dt_error *err) {
    if (l->n == l->capacity) {
        size_t cap = l->capacity ? 2 * l->capacity : 64;
        char **items = realloc(l->items, cap * sizeof *items);
        if (!items) return dt_fail(err, "out of memory listing images");
        l->items = items;
        l->capacity = cap;
    }
    if (!(l->items[l->n] = strdup(path))) return dt_fail(err, "out of memory listing images");
    l->n++;
    return 0;
}

static int is_image_name(const char *name) {
    const char *dot = strrchr(name, '.');
    return dot && (strcasecmp(dot, ".jpg") == 0 || strcasecmp(dot, ".jpeg") == 0 ||
                   strcasecmp(dot, ".png") == 0);
}

static int compare_paths(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int walk(const char *dir, path_list *l, int depth, dt_error *err) {
    if (depth > 64) return dt_fail(err, "%s: folders nested too deep (a link loop?)", dir);
    DIR *d = opendir(dir);
    if (!d) return dt_fail(err, "%s: %s", dir, strerror(errno));
    struct dirent *e;
    int rc = 0;
    while (!rc && (e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        struct stat sb;
        if (stat(path, &sb) != 0) continue; /* a dangling link: not an image file */
        if (S_ISDIR(sb.st_mode))
            rc = walk(path, l, depth + 1, err);
        else if (S_ISREG(sb.st_mode) && is_image_name(e->d_name))
            rc = push(l, path, err);
    }
    closedir(d);
    return rc;
}

int dt_cli_image_paths(char *const *paths, int n_paths, char ***out, size_t *n_out, dt_error *err) {
    path_list l = {0};
    int rc = 0;
    for (int i = 0; !rc && i < n_paths; i++) {
        struct stat sb;
        if (stat(paths[i], &sb) == 0 && S_ISDIR(sb.st_mode)) {
            size_t first = l.n;
            rc = walk(paths[i], &l, 0, err);
            if (!rc) qsort(l.items + first, l.n - first, sizeof *l.items, compare_paths);
        } else {
            rc = push(&l, paths[i], err); /* a missing file is reported as that file's error */
        }
    }
    if (rc) {
        for (size_t i = 0; i < l.n; i++) free(l.items[i]);
        free(l.items);
        return -1;
    }
    *out = l.items;
    *n_out = l.n;
    return 0;
}
