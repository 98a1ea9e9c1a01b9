/* The scan of a configured folder with errors named by its key (data.root, data.val_root), and
 * data.val_root: a second ImageFolder that is the whole validation set, appended to the training
 * folder's file list so that the rest of the run indexes one dataset as with a random split. */
#include <stdlib.h>
#include <string.h>

#include "dtrain/data.h"

int dt_dataset_scan_key(const char *key, const char *root, dt_dataset *ds, dt_error *err) {
    if (dt_dataset_open(root, ds, err) == 0) return 0;
    /* the scan names the folder as "data.root PATH: why": the key once, the right one */
    static const char scan_key[] = "data.root ";
    if (strncmp(err->message, scan_key, sizeof scan_key - 1) == 0)
        memmove(err->message, err->message + sizeof scan_key - 1,
                strlen(err->message + sizeof scan_key - 1) + 1);
    err->exit_code = DT_EXIT_USAGE;
    return dt_error_prefix(err, "%s", key);
}

/* Appends ", name" (or "name" first) to list, eliding what does not fit. */
static void append_name(char *list, size_t size, const char *name) {
    size_t used = strlen(list);
    if (used + strlen(name) + 8 >= size) {
        if (used + 5 < size && !strstr(list, ", ...")) strcat(list, ", ...");
        return;
    }
    snprintf(list + used, size - used, "%s%s", used ? ", " : "", name);
}

static int has_class(const dt_dataset *ds, const char *name) {
    for (int i = 0; i < ds->n_classes; i++)
        if (strcmp(ds->class_names[i], name) == 0) return 1;
    return 0;
}

/* Both folders must hold the same classes (labels are indices into the sorted names). */
static int check_same_classes(const dt_dataset *train, const dt_dataset *val, dt_error *err) {
    char missing[1024] = "", extra[1024] = "";
    for (int i = 0; i < train->n_classes; i++)
        if (!has_class(val, train->class_names[i]))
            append_name(missing, sizeof missing, train->class_names[i]);
    for (int i = 0; i < val->n_classes; i++)
        if (!has_class(train, val->class_names[i]))
            append_name(extra, sizeof extra, val->class_names[i]);
    if (!missing[0] && !extra[0]) return 0;
    return dt_fail_usage(err,
                         "data.val_root %s: its class folders differ from data.root %s's: "
                         "missing %s; extra %s",
                         val->root, train->root, missing[0] ? missing : "none",
                         extra[0] ? extra : "none");
}

int dt_dataset_add_val_root(dt_dataset *ds, const char *val_root, dt_split *split, dt_error *err) {
    memset(split, 0, sizeof *split);
    dt_dataset val;
    if (dt_dataset_scan_key("data.val_root", val_root, &val, err)) return -1;
    int rc = check_same_classes(ds, &val, err);
    size_t n_train = ds->n_files, n = n_train + val.n_files;
    if (!rc && n > UINT32_MAX) rc = dt_fail(err, "too many files (%zu)", n);
    dt_image_file *files = rc ? NULL : realloc(ds->files, n * sizeof *files);
    if (!rc && !files) rc = dt_fail(err, "out of memory for %zu file names", n);
    if (!rc) {
        ds->files = files;
        /* the paths move over; the labels are the same indices (same sorted class names) */
        memcpy(files + n_train, val.files, val.n_files * sizeof *files);
        ds->n_files = n;
        val.n_files = 0;
        split->train = malloc((n_train ? n_train : 1) * sizeof *split->train);
        split->val = malloc((n - n_train ? n - n_train : 1) * sizeof *split->val);
        if (!split->train || !split->val) rc = dt_fail(err, "out of memory");
    }
    for (size_t i = 0; !rc && i < n; i++) {
        if (i < n_train)
            split->train[i] = (uint32_t)i;
        else
            split->val[i - n_train] = (uint32_t)i;
    }
    if (rc) {
        dt_split_free(split);
    } else {
        split->n_train = n_train;
        split->n_val = n - n_train;
    }
    dt_dataset_free(&val);
    return rc;
}
