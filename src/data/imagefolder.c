/* ImageFolder scan: finds the class folders and image files under data.root in exactly the
 * order torchvision's ImageFolder uses, and hashes the resulting file list and the files' sizes.
 *
 * torchvision (datasets/folder.py) does, per class in sorted order:
 *     for root, _, fnames in sorted(os.walk(class_dir, followlinks=True)):
 *         for fname in sorted(fnames): ...
 * so the directories of one class are visited sorted by their full path (a plain sort of the
 * path strings, not a depth-first walk: "c/a-b" comes before "c/a/x" because '-' < '/'), and
 * the files of each directory sorted by name. Python compares str by code point, which for
 * UTF-8 names is the byte order strcmp gives. Differences from torchvision (README "Config
 * reference", data.root): names starting with '.' (files and folders) are ignored, and only regular
 * files (or links to them, or dangling links, which then fail to decode and are skipped) are
 * listed, so a FIFO cannot block the loader. A directory reached twice through links is visited
 * once. */
#include "dtrain/bytes.h"
#include "dtrain/data.h"
#include "dtrain/text_escape.h"
#include "shard_internal.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

typedef struct string_list {
    char **items;
    size_t count, capacity;
} string_list;

/* One directory of a class tree, with the image file names found directly in it. */
typedef struct scanned_dir {
    char *path;
    string_list file_names;
} scanned_dir;

typedef struct dir_identity {
    dev_t device;
    ino_t inode;
} dir_identity;

static int string_list_push(string_list *list, char *owned, dt_error *err) {
    if (list->count == list->capacity) {
        size_t capacity = list->capacity ? list->capacity * 2 : 16;
        char **items = realloc(list->items, capacity * sizeof *items);
        if (!items) {
            free(owned);
            return dt_fail(err, "out of memory while scanning the data folder");
        }
        list->items = items;
        list->capacity = capacity;
    }
    list->items[list->count++] = owned;
    return 0;
}

static void string_list_free(string_list *list) {
    for (size_t i = 0; i < list->count; i++) free(list->items[i]);
    free(list->items);
    memset(list, 0, sizeof *list);
}

static int compare_strings(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int compare_scanned_dirs(const void *a, const void *b) {
    return strcmp(((const scanned_dir *)a)->path, ((const scanned_dir *)b)->path);
}

static char *join_path(const char *dir, const char *name) {
    size_t dir_len = strlen(dir), name_len = strlen(name);
    char *path = malloc(dir_len + 1 + name_len + 1);
    if (!path) return NULL;
    memcpy(path, dir, dir_len);
    path[dir_len] = '/';
    memcpy(path + dir_len + 1, name, name_len + 1);
    return path;
}

static int ends_with_ignoring_case(const char *name, const char *suffix) {
    size_t name_len = strlen(name), suffix_len = strlen(suffix);
    if (name_len < suffix_len) return 0;
    const char *tail = name + name_len - suffix_len;
    for (size_t i = 0; i < suffix_len; i++) {
        char c = tail[i];
        if (c >= 'A' && c <= 'Z') c = (char)(c - 'A' + 'a');
        if (c != suffix[i]) return 0;
    }
    return 1;
}

static int has_image_extension(const char *name) {
    return ends_with_ignoring_case(name, ".jpg") || ends_with_ignoring_case(name, ".jpeg") ||
           ends_with_ignoring_case(name, ".png");
}

/* What an entry is, from the type readdir reports (no system call) when it says directory or
 * regular file; links and file systems that report no type (DT_UNKNOWN) need a stat, which
 * follows links: a link to a folder is a folder, a link to a file or a dangling link is
 * listed as a file. Anything else (FIFO, socket, device) is neither. */
static void classify_entry(const struct dirent *entry, const char *path, int *is_dir,
                           int *is_listable_file) {
    *is_dir = *is_listable_file = 0;
    if (entry->d_type == DT_DIR) {
        *is_dir = 1;
        return;
    }
    if (entry->d_type == DT_REG) {
        *is_listable_file = 1;
        return;
    }
    if (entry->d_type != DT_LNK && entry->d_type != DT_UNKNOWN) return;
    struct stat info;
    if (stat(path, &info) == 0) {
        *is_dir = S_ISDIR(info.st_mode);
        *is_listable_file = S_ISREG(info.st_mode);
    } else if (lstat(path, &info) == 0 && S_ISLNK(info.st_mode)) {
        *is_listable_file = 1; /* dangling link: listed, then skipped as undecodable */
    }
}

/* Lists the non-hidden entries of dir: sub-directories (links followed) into subdirs as full
 * paths, image files into file_names as bare names. */
static int list_directory(const char *dir, string_list *subdirs, string_list *file_names,
                          dt_error *err) {
    DIR *handle = opendir(dir);
    if (!handle) return dt_fail(err, "%s: cannot open folder: %s", dir, strerror(errno));
    int rc = 0;
    for (;;) {
        errno = 0;
        struct dirent *entry = readdir(handle);
        if (!entry) {
            if (errno) rc = dt_fail(err, "%s: cannot read folder: %s", dir, strerror(errno));
            break;
        }
        if (entry->d_name[0] == '.') continue; /* hidden, and "." / ".." */
        char *path = join_path(dir, entry->d_name);
        if (!path) {
            rc = dt_fail(err, "out of memory while scanning %s", dir);
            break;
        }
        int is_dir, is_listable_file;
        classify_entry(entry, path, &is_dir, &is_listable_file);
        if (is_dir && subdirs) {
            rc = string_list_push(subdirs, path, err);
            path = NULL;
        } else if (is_listable_file && file_names && has_image_extension(entry->d_name)) {
            char *name = strdup(entry->d_name);
            rc = name ? string_list_push(file_names, name, err)
                      : dt_fail(err, "out of memory while scanning %s", dir);
        }
        free(path);
        if (rc) break;
    }
    closedir(handle);
    return rc;
}

static int identity_seen(const dir_identity *seen, size_t n_seen, dir_identity id) {
    for (size_t i = 0; i < n_seen; i++)
        if (seen[i].device == id.device && seen[i].inode == id.inode) return 1;
    return 0;
}

static void free_scanned_dirs(scanned_dir *dirs, size_t count) {
    for (size_t i = 0; i < count; i++) {
        free(dirs[i].path);
        string_list_free(&dirs[i].file_names);
    }
    free(dirs);
}

/* Walks class_dir recursively (links followed, each directory once), collecting every
 * directory with its image names; then sorts directories by path and names within each. */
static int walk_class(const char *class_dir, scanned_dir **out_dirs, size_t *out_count,
                      dt_error *err) {
    scanned_dir *dirs = NULL;
    size_t count = 0, capacity = 0;
    dir_identity *seen = NULL;
    size_t n_seen = 0, seen_capacity = 0;
    string_list pending = {0};
    int rc = 0;

    char *first = strdup(class_dir);
    if (!first) return dt_fail(err, "out of memory while scanning %s", class_dir);
    rc = string_list_push(&pending, first, err);
    while (rc == 0 && pending.count > 0) {
        char *dir = pending.items[--pending.count];
        struct stat info;
        if (stat(dir, &info) != 0) {
            rc = dt_fail(err, "%s: %s", dir, strerror(errno));
            free(dir);
            break;
        }
        dir_identity id = {info.st_dev, info.st_ino};
        if (identity_seen(seen, n_seen, id)) {
            free(dir);
            continue;
        }
        if (n_seen == seen_capacity) {
            seen_capacity = seen_capacity ? seen_capacity * 2 : 16;
            dir_identity *grown = realloc(seen, seen_capacity * sizeof *grown);
            if (!grown) {
                free(dir);
                rc = dt_fail(err, "out of memory while scanning %s", class_dir);
                break;
            }
            seen = grown;
        }
        seen[n_seen++] = id;
        if (count == capacity) {
            capacity = capacity ? capacity * 2 : 8;
            scanned_dir *grown = realloc(dirs, capacity * sizeof *grown);
            if (!grown) {
                free(dir);
                rc = dt_fail(err, "out of memory while scanning %s", class_dir);
                break;
            }
            dirs = grown;
        }
        dirs[count].path = dir;
        memset(&dirs[count].file_names, 0, sizeof dirs[count].file_names);
        count++;
        rc = list_directory(dir, &pending, &dirs[count - 1].file_names, err);
    }
    string_list_free(&pending);
    free(seen);
    if (rc) {
        free_scanned_dirs(dirs, count);
        return rc;
    }
    qsort(dirs, count, sizeof *dirs, compare_scanned_dirs);
    for (size_t i = 0; i < count; i++)
        if (dirs[i].file_names.count > 1)
            qsort(dirs[i].file_names.items, dirs[i].file_names.count, sizeof(char *),
                  compare_strings);
    *out_dirs = dirs;
    *out_count = count;
    return 0;
}

static int append_file(dt_dataset *ds, size_t *capacity, char *path, int label, dt_error *err) {
    if (ds->n_files == *capacity) {
        size_t grown_capacity = *capacity ? *capacity * 2 : 256;
        dt_image_file *grown = realloc(ds->files, grown_capacity * sizeof *grown);
        if (!grown) {
            free(path);
            return dt_fail(err, "out of memory while scanning %s", ds->root);
        }
        ds->files = grown;
        *capacity = grown_capacity;
    }
    ds->files[ds->n_files] = (dt_image_file){.path = path, .label = label};
    ds->n_files++;
    return 0;
}

static int scan_class(dt_dataset *ds, int label, size_t *capacity, dt_error *err) {
    char *class_dir = join_path(ds->root, ds->class_names[label]);
    if (!class_dir) return dt_fail(err, "out of memory while scanning %s", ds->root);
    scanned_dir *dirs = NULL;
    size_t n_dirs = 0;
    int rc = walk_class(class_dir, &dirs, &n_dirs, err);
    size_t files_before = ds->n_files;
    for (size_t d = 0; rc == 0 && d < n_dirs; d++) {
        for (size_t f = 0; rc == 0 && f < dirs[d].file_names.count; f++) {
            char *path = join_path(dirs[d].path, dirs[d].file_names.items[f]);
            rc = path ? append_file(ds, capacity, path, label, err)
                      : dt_fail(err, "out of memory while scanning %s", class_dir);
        }
    }
    if (rc == 0 && ds->n_files == files_before)
        rc = dt_fail(err, "%s: class folder has no .jpg, .jpeg or .png images", class_dir);
    free_scanned_dirs(dirs, n_dirs);
    free(class_dir);
    return rc;
}

int dt_dataset_scan(const char *root, dt_dataset *ds, dt_error *err) {
    memset(ds, 0, sizeof *ds);
    if (!root || !*root) return dt_fail_usage(err, "data.root is empty");
    ds->root = strdup(root);
    if (!ds->root) return dt_fail(err, "out of memory");
    size_t root_len = strlen(ds->root);
    while (root_len > 1 && ds->root[root_len - 1] == '/') ds->root[--root_len] = '\0';

    struct stat info;
    if (stat(ds->root, &info) != 0) {
        dt_fail(err, "data.root %s: %s", ds->root, strerror(errno));
        dt_dataset_free(ds);
        return -1;
    }
    if (!S_ISDIR(info.st_mode)) {
        dt_fail(err, "data.root %s: not a folder", ds->root);
        dt_dataset_free(ds);
        return -1;
    }

    string_list classes = {0};
    if (list_directory(ds->root, &classes, NULL, err) != 0) {
        string_list_free(&classes);
        dt_dataset_free(ds);
        return -1;
    }
    if (classes.count == 0) {
        string_list_free(&classes);
        dt_fail(err, "data.root %s: no class folders found (expected one sub-folder per class)",
                ds->root);
        dt_dataset_free(ds);
        return -1;
    }
    qsort(classes.items, classes.count, sizeof(char *), compare_strings);
    /* list_directory returned full paths; keep the folder names only. */
    for (size_t i = 0; i < classes.count; i++) {
        const char *name = classes.items[i] + root_len + 1;
        memmove(classes.items[i], name, strlen(name) + 1);
    }
    ds->class_names = classes.items;
    ds->n_classes = (int)classes.count;
    for (int label = 0; label < ds->n_classes; label++) {
        if (dt_text_is_printable(ds->class_names[label])) continue;
        /* Class names go one per line into classes.txt and into the UTF-8 JSON header of the
         * model files: refuse what would not read back as the same name. */
        char shown[512];
        size_t bad = 0;
        const char *name = ds->class_names[label];
        bool utf8 = dt_utf8_validate((const uint8_t *)name, strlen(name), &bad) == 0;
        dt_fail_usage(err,
                      "data.root %s: class folder '%s' %s; rename the folder (class names are "
                      "written one per line to classes.txt and into the model files' UTF-8 "
                      "header)",
                      ds->root, dt_escape_text(name, shown, sizeof shown),
                      utf8 ? "has control characters (newline, tab, escape...) in its name"
                           : "has a name that is not valid UTF-8");
        dt_dataset_free(ds);
        return -1;
    }

    size_t capacity = 0;
    for (int label = 0; label < ds->n_classes; label++) {
        if (scan_class(ds, label, &capacity, err) != 0) {
            dt_dataset_free(ds);
            return -1;
        }
    }
    if (ds->n_files > UINT32_MAX) {
        dt_fail(err, "data.root %s: too many files (%zu)", ds->root, ds->n_files);
        dt_dataset_free(ds);
        return -1;
    }
    return 0;
}

void dt_dataset_free(dt_dataset *ds) {
    if (!ds) return;
    for (int i = 0; i < ds->n_classes; i++) free(ds->class_names[i]);
    free(ds->class_names);
    for (size_t i = 0; i < ds->n_files; i++) free(ds->files[i].path);
    free(ds->files);
    for (int i = 0; i < ds->n_shards; i++) free(ds->shard_paths[i]);
    free(ds->shard_paths);
    for (size_t i = 0; ds->skipped_members && i < ds->n_skipped_members; i++)
        free(ds->skipped_members[i]);
    free(ds->skipped_members);
    dt_shard_handles_free(ds->handles);
    free(ds->root);
    memset(ds, 0, sizeof *ds);
}

/* 64-bit FNV-1a over: class names, then each file's path relative to root and its label, all
 * separated by zero bytes, so the hash does not depend on where the folder is mounted. */
uint64_t dt_dataset_hash(const dt_dataset *ds) {
    uint64_t hash = DT_FNV1A64_INIT;
    const unsigned char zero = 0;
    for (int i = 0; i < ds->n_classes; i++) {
        hash = dt_fnv1a64(hash, ds->class_names[i], strlen(ds->class_names[i]));
        hash = dt_fnv1a64(hash, &zero, 1);
    }
    size_t root_len = ds->root ? strlen(ds->root) : 0;
    for (size_t i = 0; i < ds->n_files; i++) {
        const char *path = ds->files[i].path;
        const char *relative = strlen(path) > root_len ? path + root_len + 1 : path;
        hash = dt_fnv1a64(hash, relative, strlen(relative));
        hash = dt_fnv1a64(hash, &zero, 1);
        unsigned char label[4];
        uint32_t value = (uint32_t)ds->files[i].label;
        for (int b = 0; b < 4; b++) label[b] = (unsigned char)(value >> (8 * b));
        hash = dt_fnv1a64(hash, label, sizeof label);
    }
    return hash;
}

/* 64-bit FNV-1a over the sizes in bytes of the files (of the shards, for a dataset of shards),
 * in order: one stat per file. A missing root or shard is an error naming it; a file of the list
 * that cannot be stat'ed counts as size UINT64_MAX (a dangling link is listed, as torchvision
 * lists it, and skipped when read). */
int dt_dataset_size_hash(const dt_dataset *ds, uint64_t *out, dt_error *err) {
    uint64_t hash = DT_FNV1A64_INIT;
    int shards = ds->n_shards > 0;
    size_t n = shards ? (size_t)ds->n_shards : ds->n_files;
    struct stat info;
    if (!shards && stat(ds->root, &info) != 0) {
        char shown[512];
        return dt_fail_usage(err, "%s: %s", dt_escape_text(ds->root, shown, sizeof shown),
                             strerror(errno));
    }
    for (size_t i = 0; i < n; i++) {
        const char *path = shards ? ds->shard_paths[i] : ds->files[i].path;
        uint64_t size = UINT64_MAX;
        if (stat(path, &info) == 0) {
            size = (uint64_t)info.st_size;
        } else if (shards) {
            char shown[512];
            return dt_fail_usage(err, "%s: %s", dt_escape_text(path, shown, sizeof shown),
                                 strerror(errno));
        }
        unsigned char bytes[8];
        for (int b = 0; b < 8; b++) bytes[b] = (unsigned char)(size >> (8 * b));
        hash = dt_fnv1a64(hash, bytes, sizeof bytes);
    }
    *out = hash;
    return 0;
}
