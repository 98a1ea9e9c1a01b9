/* A dataset of tar shards in WebDataset's layout: which data.root values name shards, the
 * brace patterns that list them, classes.txt beside them, and the dataset built from the shards'
 * member indexes (shard order, then member order, so that shards packed from an ImageFolder
 * list its files in the same order). */
#include "dtrain/data.h"
#include "dtrain/log.h"
#include "dtrain/platform.h"
#include "dtrain/text_escape.h"
#include "shard_internal.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define MAX_SHARDS 1000000
#define MAX_CLASSES_FILE_BYTES ((size_t)64 << 20)

static int ends_with(const char *text, const char *suffix) {
    size_t n = strlen(text), m = strlen(suffix);
    return n >= m && strcmp(text + n - m, suffix) == 0;
}

static int is_regular_file(const char *path) {
    struct stat info;
    return stat(path, &info) == 0 && S_ISREG(info.st_mode);
}

static char *join(const char *dir, const char *name) {
    size_t length = strlen(dir) + strlen(name) + 2;
    char *path = malloc(length);
    if (path) snprintf(path, length, "%s/%s", dir, name);
    return path;
}

static int visible_tar_name(const char *name) {
    return name[0] != '.' && ends_with(name, ".tar");
}

/* Lists the .tar files directly in dir, sorted by name. */
static int list_tar_files(const char *dir, char ***out, size_t *n_out, dt_error *err) {
    *out = NULL;
    *n_out = 0;
    DIR *handle = opendir(dir);
    if (!handle) return dt_fail(err, "%s: cannot open folder: %s", dir, strerror(errno));
    size_t capacity = 0;
    int rc = 0;
    struct dirent *entry;
    while (rc == 0 && (entry = readdir(handle))) {
        if (!visible_tar_name(entry->d_name)) continue;
        if (*n_out == capacity) {
            capacity = capacity ? capacity * 2 : 16;
            char **grown = realloc(*out, capacity * sizeof *grown);
            if (!grown) {
                rc = dt_fail(err, "out of memory listing %s", dir);
                break;
            }
            *out = grown;
        }
        char *path = join(dir, entry->d_name);
        if (!path)
            rc = dt_fail(err, "out of memory listing %s", dir);
        else
            (*out)[(*n_out)++] = path;
    }
    closedir(handle);
    if (rc == 0 && *n_out > 1) {
        /* full paths share the folder prefix: sorting them sorts the names */
        for (size_t i = 1; i < *n_out; i++)
            for (size_t j = i; j > 0 && strcmp((*out)[j - 1], (*out)[j]) > 0; j--) {
                char *t = (*out)[j];
                (*out)[j] = (*out)[j - 1];
                (*out)[j - 1] = t;
            }
    }
    return rc;
}

static int folder_has_tar(const char *dir) {
    DIR *handle = opendir(dir);
    if (!handle) return 0;
    int found = 0;
    struct dirent *entry;
    while (!found && (entry = readdir(handle))) found = visible_tar_name(entry->d_name);
    closedir(handle);
    return found;
}

int dt_shards_detect(const char *root) {
    if (!root || !*root) return 0;
    if (strchr(root, '{') && ends_with(root, ".tar")) return 1;
    struct stat info;
    if (stat(root, &info) != 0) return 0;
    if (S_ISREG(info.st_mode)) return ends_with(root, ".tar");
    if (!S_ISDIR(info.st_mode)) return 0;
    char *classes = join(root, "classes.txt");
    int shards = classes && is_regular_file(classes) && folder_has_tar(root);
    free(classes);
    return shards;
}

/* ---- brace patterns ----------------------------------------------------------------------- */

typedef struct name_list {
    char **items;
    size_t count, capacity;
} name_list;

static int push_name(name_list *list, const char *text, size_t length, dt_error *err) {
    if (list->count >= MAX_SHARDS)
        return dt_fail_usage(err, "more than %d shard names", MAX_SHARDS);
    if (list->count == list->capacity) {
        size_t capacity = list->capacity ? list->capacity * 2 : 16;
        char **grown = realloc(list->items, capacity * sizeof *grown);
        if (!grown) return dt_fail(err, "out of memory");
        list->items = grown;
        list->capacity = capacity;
    }
    char *copy = malloc(length + 1);
    if (!copy) return dt_fail(err, "out of memory");
    memcpy(copy, text, length);
    copy[length] = '\0';
    list->items[list->count++] = copy;
    return 0;
}

/* Expands the first group of prefix+rest, recursing on the rest. */
static int expand(const char *done, size_t done_length, const char *rest, name_list *out,
                  dt_error *err) {
    const char *open = strchr(rest, '{');
    if (!open) {
        size_t length = done_length + strlen(rest);
        char *whole = malloc(length + 1);
        if (!whole) return dt_fail(err, "out of memory");
        memcpy(whole, done, done_length);
        strcpy(whole + done_length, rest);
        int rc = push_name(out, whole, length, err);
        free(whole);
        return rc;
    }
    const char *close = strchr(open, '}');
    if (!close) return dt_fail_usage(err, "'{' without '}'");
    size_t lead = (size_t)(open - rest), inner_length = (size_t)(close - open - 1);
    char inner[128];
    if (inner_length >= sizeof inner) return dt_fail_usage(err, "brace group too long");
    memcpy(inner, open + 1, inner_length);
    inner[inner_length] = '\0';
    size_t base_length = done_length + lead;
    char *base = malloc(base_length + 32 + inner_length);
    if (!base) return dt_fail(err, "out of memory");
    memcpy(base, done, done_length);
    memcpy(base + done_length, rest, lead);
    int rc = 0;
    char *dots = strstr(inner, "..");
    if (dots) {
        char *end_a, *end_b;
        errno = 0;
        unsigned long long a = strtoull(inner, &end_a, 10), b = strtoull(dots + 2, &end_b, 10);
        int width = (int)(dots - inner);
        if (errno || end_a != dots || *end_b || end_b == dots + 2 || width == 0 || a > b ||
            b - a >= MAX_SHARDS || width > 20)
            rc = dt_fail_usage(err, "'{%s}': expected a numeric range {FIRST..LAST}", inner);
        for (unsigned long long v = a; rc == 0 && v <= b; v++) {
            int n = snprintf(base + base_length, 32, "%0*llu", width, v);
            rc = expand(base, base_length + (size_t)n, close + 1, out, err);
        }
    } else {
        for (char *item = inner; rc == 0 && item;) {
            char *comma = strchr(item, ',');
            size_t n = comma ? (size_t)(comma - item) : strlen(item);
            memcpy(base + base_length, item, n);
            rc = expand(base, base_length + n, close + 1, out, err);
            item = comma ? comma + 1 : NULL;
        }
    }
    free(base);
    return rc;
}

int dt_expand_braces(const char *pattern, char ***out, size_t *n_out, dt_error *err) {
    name_list list = {0};
    int rc = expand("", 0, pattern, &list, err);
    if (rc) {
        for (size_t i = 0; i < list.count; i++) free(list.items[i]);
        free(list.items);
        *out = NULL;
        *n_out = 0;
        return dt_error_prefix(err, "data.root %s", pattern);
    }
    *out = list.items;
    *n_out = list.count;
    return 0;
}

/* ---- classes.txt -------------------------------------------------------------------------- */

static int read_classes(const char *path, dt_dataset *ds, dt_error *err) {
    uint8_t *bytes;
    size_t size;
    if (dt_read_file(path, MAX_CLASSES_FILE_BYTES, &bytes, &size, err))
        return dt_error_prefix(err, "class names of the shards (one per line, label order)");
    int rc = 0, line_number = 0;
    size_t capacity = 0;
    for (size_t at = 0; rc == 0 && at < size;) {
        uint8_t *newline = memchr(bytes + at, '\n', size - at);
        size_t length = newline ? (size_t)(newline - (bytes + at)) : size - at;
        line_number++;
        if (length && bytes[at + length - 1] == '\r') length--;
        char *name = malloc(length + 1);
        if (!name) {
            rc = dt_fail(err, "out of memory");
            break;
        }
        memcpy(name, bytes + at, length);
        name[length] = '\0';
        if (length == 0 || !dt_text_is_printable(name)) {
            free(name);
            rc = dt_fail_usage(err, "%s:%d: %s", path, line_number,
                               length == 0 ? "an empty class name"
                                           : "a class name that is not UTF-8 or holds control "
                                             "characters");
            break;
        }
        if (ds->n_classes == (int)capacity) {
            capacity = capacity ? capacity * 2 : 16;
            char **grown = realloc(ds->class_names, capacity * sizeof *grown);
            if (!grown) {
                free(name);
                rc = dt_fail(err, "out of memory");
                break;
            }
            ds->class_names = grown;
        }
        ds->class_names[ds->n_classes++] = name;
        if (!newline) break;
        at = (size_t)(newline - bytes) + 1;
    }
    free(bytes);
    if (rc == 0 && ds->n_classes == 0) rc = dt_fail_usage(err, "%s: no class names", path);
    return rc;
}

/* ---- the dataset --------------------------------------------------------------------------- */

/* Names a member skipped while indexing ("NAME: why") in the log and in ds, for the report. */
static int skip_member(dt_dataset *ds, const char *shard_path, const char *what, dt_error *err) {
    dt_warn("skipping %s:%s", shard_path, what);
    char **grown = realloc(ds->skipped_members, (ds->n_skipped_members + 1) * sizeof *grown);
    if (!grown) return dt_fail(err, "out of memory");
    ds->skipped_members = grown;
    size_t length = strlen(shard_path) + strlen(what) + 2;
    char *text = malloc(length);
    if (!text) return dt_fail(err, "out of memory");
    snprintf(text, length, "%s:%s", shard_path, what);
    ds->skipped_members[ds->n_skipped_members++] = text;
    return 0;
}

static int append_shard_samples(dt_dataset *ds, int shard, const dt_shard_index *index,
                                size_t *capacity, dt_error *err) {
    const char *shard_path = ds->shard_paths[shard];
    for (size_t i = 0; i < index->n_skipped; i++)
        if (skip_member(ds, shard_path, index->skipped[i], err)) return -1;
    for (size_t i = 0; i < index->n_samples; i++) {
        const dt_shard_sample *s = &index->samples[i];
        if (s->label >= ds->n_classes) {
            char what[4200];
            snprintf(what, sizeof what, "%s: class index %lld, but classes.txt lists %d classes",
                     s->key, (long long)s->label, ds->n_classes);
            if (skip_member(ds, shard_path, what, err)) return -1;
            continue;
        }
        if (ds->n_files == *capacity) {
            size_t grown_capacity = *capacity ? *capacity * 2 : 256;
            dt_image_file *grown = realloc(ds->files, grown_capacity * sizeof *grown);
            if (!grown) return dt_fail(err, "out of memory");
            ds->files = grown;
            *capacity = grown_capacity;
        }
        size_t length = strlen(shard_path) + strlen(s->key) + 2;
        char *path = malloc(length);
        if (!path) return dt_fail(err, "out of memory");
        snprintf(path, length, "%s:%s", shard_path, s->key);
        ds->files[ds->n_files++] = (dt_image_file){.path = path,
                                                   .label = (int)s->label,
                                                   .shard = shard,
                                                   .offset = s->offset,
                                                   .size = s->size};
    }
    return 0;
}

static char *parent_folder(const char *path) {
    const char *slash = strrchr(path, '/');
    if (!slash) return strdup(".");
    if (slash == path) return strdup("/");
    size_t length = (size_t)(slash - path);
    char *dir = malloc(length + 1);
    if (dir) {
        memcpy(dir, path, length);
        dir[length] = '\0';
    }
    return dir;
}

int dt_shards_scan(const char *root, dt_dataset *ds, dt_error *err) {
    memset(ds, 0, sizeof *ds);
    struct stat info;
    int is_folder = !strchr(root, '{') && stat(root, &info) == 0 && S_ISDIR(info.st_mode);
    char **shards = NULL;
    size_t n_shards = 0;
    int rc;
    if (is_folder) {
        ds->root = strdup(root);
        size_t n = ds->root ? strlen(ds->root) : 0;
        while (n > 1 && ds->root[n - 1] == '/') ds->root[--n] = '\0';
        rc = ds->root ? list_tar_files(ds->root, &shards, &n_shards, err)
                      : dt_fail(err, "out of memory");
    } else if (strchr(root, '{')) {
        ds->root = parent_folder(root);
        rc = ds->root ? dt_expand_braces(root, &shards, &n_shards, err)
                      : dt_fail(err, "out of memory");
    } else {
        ds->root = parent_folder(root);
        shards = malloc(sizeof *shards);
        rc = (ds->root && shards && (shards[0] = strdup(root))) ? 0 : dt_fail(err, "out of memory");
        n_shards = rc == 0 ? 1 : 0;
    }
    ds->shard_paths = shards;
    ds->n_shards = (int)n_shards;
    if (rc == 0 && n_shards == 0) rc = dt_fail_usage(err, "%s: no .tar shards found", root);
    if (rc == 0) {
        char *classes = join(ds->root, "classes.txt");
        rc = classes ? read_classes(classes, ds, err) : dt_fail(err, "out of memory");
        free(classes);
    }
    size_t capacity = 0;
    for (int s = 0; rc == 0 && s < ds->n_shards; s++) {
        dt_shard_index index;
        rc = dt_shard_index_get(ds->shard_paths[s], &index, err);
        if (rc == 0) rc = append_shard_samples(ds, s, &index, &capacity, err);
        dt_shard_index_free(&index);
    }
    if (rc == 0 && ds->n_files == 0)
        rc = dt_fail_usage(err, "%s: the shards hold no samples", root);
    if (rc == 0 && ds->n_files > UINT32_MAX) rc = dt_fail(err, "%s: too many samples", root);
    if (rc) dt_dataset_free(ds);
    return rc;
}
