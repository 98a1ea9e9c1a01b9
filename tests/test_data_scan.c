/* Tests the ImageFolder scan (torchvision order, hidden files, extensions, errors), the dataset
 * hash, the seeded split and the per-epoch order against the documented algorithms. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "dtrain/data.h"
#include "imagegen.h"

static char root[1024];

static void touch(const char *relative) {
    char path[2048];
    snprintf(path, sizeof path, "%s/%s", root, relative);
    char dir[2048];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    *slash = '\0';
    dt_error err;
    if (dt_make_directories(dir, &err) != 0 || dt_testgen_write_bytes(path, "x", 1, &err) != 0)
        fprintf(stderr, "setup: %s\n", err.message);
}

static void make_dir(const char *relative) {
    char path[2048];
    snprintf(path, sizeof path, "%s/%s", root, relative);
    dt_error err;
    if (dt_make_directories(path, &err) != 0) fprintf(stderr, "setup: %s\n", err.message);
}

static void link_to(const char *target, const char *relative) {
    char path[2048];
    snprintf(path, sizeof path, "%s/%s", root, relative);
    if (symlink(target, path) != 0) perror(path);
}

/* The tree mixes everything the order depends on: upper-case class and extension names,
 * nested folders whose full-path order differs from a depth-first walk, a folder named like an
 * image, hidden files and folders, files at the root, links, and a FIFO. */
static void build_tree(void) {
    touch("notes.txt");
    touch("stray.jpg"); /* a file at the root is not a class */
    touch(".hidden_class/a.jpg");
    touch("Zebra/z1.JPG");
    touch("Zebra/z0.jpeg");
    touch("ant/b.png");
    touch("ant/a.jpg");
    touch("ant/a.jpg.txt");
    touch("ant/.hidden.jpg");
    touch("ant/.cache/x.jpg");
    touch("ant/sub/c.jpg");
    touch("ant/sub-a/d.jpg");
    touch("ant/sub/deeper/e.jpg");
    touch("ant/sub.jpg");
    touch("ant/dir.jpg/f.jpg");
    touch("ant/noext");
    make_dir("ant/empty");
    touch("bee/B.PNG");
    touch("bee/a.Jpg");
    touch("bee/c.JPEG");
    link_to("../ant/a.jpg", "bee/link.jpg");
    link_to("does-not-exist.jpg", "bee/dangling.jpg");
    link_to("../ant/sub", "bee/linked_dir");
    /* neither a folder nor a regular file: not listed (reading it could block the loader) */
    char fifo[2048];
    snprintf(fifo, sizeof fifo, "%s/ant/pipe.jpg", root);
    if (mkfifo(fifo, 0600) != 0) perror(fifo);
    link_to("../ant/pipe.jpg", "bee/pipe_link.jpg");
}

/* torchvision.datasets.ImageFolder gives exactly this order (checked with torchvision 0.14 on
 * the same tree minus the hidden entries, which torchvision would include). */
static const char *const expected_files[] = {
    "Zebra/z0.jpeg",
    "Zebra/z1.JPG",
    "ant/a.jpg",
    "ant/b.png",
    "ant/sub.jpg",
    "ant/dir.jpg/f.jpg",
    "ant/sub/c.jpg",
    "ant/sub-a/d.jpg",
    "ant/sub/deeper/e.jpg",
    "bee/B.PNG",
    "bee/a.Jpg",
    "bee/c.JPEG",
    "bee/dangling.jpg",
    "bee/link.jpg",
    "bee/linked_dir/c.jpg",
    "bee/linked_dir/deeper/e.jpg",
};
static const int expected_labels[] = {0, 0, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2};

static void test_scan_order(void) {
    dt_dataset ds;
    dt_error err = {{0}, 0};
    int rc = dt_dataset_scan(root, &ds, &err);
    CHECK_MSG(rc == 0, "scan failed: %s", err.message);
    if (rc != 0) return;
    CHECK_INT_EQ(ds.n_classes, 3);
    CHECK_STR_EQ(ds.class_names[0], "Zebra");
    CHECK_STR_EQ(ds.class_names[1], "ant");
    CHECK_STR_EQ(ds.class_names[2], "bee");
    size_t n_expected = sizeof expected_files / sizeof expected_files[0];
    CHECK_INT_EQ(ds.n_files, n_expected);
    for (size_t i = 0; i < ds.n_files && i < n_expected; i++) {
        char want[2048];
        snprintf(want, sizeof want, "%s/%s", root, expected_files[i]);
        CHECK_STR_EQ(ds.files[i].path, want);
        CHECK_INT_EQ(ds.files[i].label, expected_labels[i]);
    }

    /* A trailing slash on the root changes nothing, the hash included. */
    char slashed[1100];
    snprintf(slashed, sizeof slashed, "%s//", root);
    dt_dataset again;
    CHECK(dt_dataset_scan(slashed, &again, &err) == 0);
    CHECK_INT_EQ(again.n_files, ds.n_files);
    if (again.n_files == ds.n_files) {
        CHECK_STR_EQ(again.files[0].path, ds.files[0].path);
        CHECK(dt_dataset_hash(&again) == dt_dataset_hash(&ds));
    }
    dt_dataset_free(&again);

    /* Adding a file changes the hash. */
    uint64_t before = dt_dataset_hash(&ds);
    touch("bee/new.jpg");
    CHECK(dt_dataset_scan(root, &again, &err) == 0);
    CHECK_INT_EQ(again.n_files, ds.n_files + 1);
    CHECK(dt_dataset_hash(&again) != before);
    dt_dataset_free(&again);
    char path[2048];
    snprintf(path, sizeof path, "%s/bee/new.jpg", root);
    unlink(path);

    /* Same names, other bytes: the list hash stays, the size hash changes (the ranks compare
     * both, so a node-local copy that differs in any size is refused). */
    uint64_t sizes_before = 0, sizes = 0;
    CHECK(dt_dataset_size_hash(&ds, &sizes_before, &err) == 0);
    CHECK(dt_dataset_size_hash(&ds, &sizes, &err) == 0 && sizes == sizes_before);
    dt_error write_err;
    CHECK(dt_testgen_write_bytes(ds.files[0].path, "longer", 6, &write_err) == 0);
    CHECK(dt_dataset_scan(root, &again, &err) == 0);
    CHECK(dt_dataset_hash(&again) == before);
    CHECK(dt_dataset_size_hash(&again, &sizes, &err) == 0 && sizes != sizes_before);
    dt_dataset_free(&again);
    CHECK(dt_testgen_write_bytes(ds.files[0].path, "x", 1, &write_err) == 0);
    CHECK(dt_dataset_size_hash(&ds, &sizes, &err) == 0 && sizes == sizes_before);
    /* a file that is gone changes the hash; a root that is gone is named */
    char moved[2100];
    snprintf(moved, sizeof moved, "%s.moved", ds.files[0].path);
    CHECK(rename(ds.files[0].path, moved) == 0);
    CHECK(dt_dataset_size_hash(&ds, &sizes, &err) == 0 && sizes != sizes_before);
    CHECK(rename(moved, ds.files[0].path) == 0);
    snprintf(moved, sizeof moved, "%s.moved", root);
    CHECK(rename(root, moved) == 0);
    CHECK(dt_dataset_size_hash(&ds, &sizes, &err) != 0);
    CHECK(strstr(err.message, root) != NULL && err.exit_code == 2);
    CHECK(rename(moved, root) == 0);
    dt_dataset_free(&ds);
    CHECK(ds.files == NULL && ds.n_files == 0);
}

static void test_scan_errors(void) {
    dt_dataset ds;
    dt_error err = {{0}, 0};
    char missing[1100];
    snprintf(missing, sizeof missing, "%s/no-such-folder", root);
    CHECK(dt_dataset_scan(missing, &ds, &err) == -1);
    CHECK_MSG(strstr(err.message, missing) != NULL, "message names the path: %s", err.message);

    char empty_root[1100];
    snprintf(empty_root, sizeof empty_root, "%s/ant/empty", root);
    CHECK(dt_dataset_scan(empty_root, &ds, &err) == -1);
    CHECK_MSG(strstr(err.message, "no class folders") != NULL, "%s", err.message);

    /* A class folder whose only entries are not images. */
    touch("second/good/a.png");
    touch("second/bad/readme.txt");
    touch("second/bad/.hidden.jpg");
    char second[1100];
    snprintf(second, sizeof second, "%s/second", root);
    CHECK(dt_dataset_scan(second, &ds, &err) == -1);
    char bad_class[1200];
    snprintf(bad_class, sizeof bad_class, "%s/bad", second);
    CHECK_MSG(strstr(err.message, bad_class) != NULL && strstr(err.message, "no .jpg") != NULL,
              "names the empty class: %s", err.message);
    CHECK(ds.files == NULL && ds.class_names == NULL);

    char file_root[1100];
    snprintf(file_root, sizeof file_root, "%s/notes.txt", root);
    CHECK(dt_dataset_scan(file_root, &ds, &err) == -1);
    CHECK_MSG(strstr(err.message, "not a folder") != NULL, "%s", err.message);
}

/* ---- split and epoch order, recomputed here from the algorithm documented in split.c ---- */

static uint64_t reference_next(uint64_t *state) {
    uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static uint64_t reference_mix(uint64_t seed, uint64_t tag) {
    uint64_t state = seed ^ (tag * 0xD1B54A32D192ED03ull);
    reference_next(&state);
    return reference_next(&state);
}

static void reference_shuffle(uint32_t *a, size_t n, uint64_t stream) {
    uint64_t state = stream;
    for (size_t i = n; i > 1; i--) {
        uint32_t j = (uint32_t)(((reference_next(&state) >> 32) * (uint64_t)i) >> 32);
        uint32_t t = a[i - 1];
        a[i - 1] = a[j];
        a[j] = t;
    }
}

static int compare_u32(const void *a, const void *b) {
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}

static void check_split_against_reference(size_t n, double fraction, uint64_t seed) {
    dt_split split;
    dt_error err;
    CHECK(dt_split_make(n, fraction, seed, &split, &err) == 0);
    size_t n_val = (size_t)(n * fraction + 0.5);
    if (n_val < 1) n_val = 1;
    if (n_val > n - 1) n_val = n - 1;
    uint32_t *order = malloc(n * sizeof *order);
    for (size_t i = 0; i < n; i++) order[i] = (uint32_t)i;
    reference_shuffle(order, n, reference_mix(seed, 0x53504c4954ull));
    qsort(order, n_val, sizeof *order, compare_u32);
    qsort(order + n_val, n - n_val, sizeof *order, compare_u32);
    CHECK_INT_EQ(split.n_val, n_val);
    CHECK_INT_EQ(split.n_train, n - n_val);
    int same = split.n_val == n_val;
    for (size_t i = 0; same && i < n_val; i++) same = split.val[i] == order[i];
    for (size_t i = 0; same && i < n - n_val; i++) same = split.train[i] == order[n_val + i];
    CHECK_MSG(same, "split(n=%zu, f=%g, seed=%llu) equals the documented algorithm", n, fraction,
              (unsigned long long)seed);
    free(order);
    dt_split_free(&split);
}

static void test_split(void) {
    dt_split split;
    dt_error err;
    /* Pinned values (computed with an independent Python version of the documented
     * algorithm): a change here changes every user's split. */
    CHECK(dt_split_make(10, 0.3, 42, &split, &err) == 0);
    static const uint32_t val_10[] = {5, 6, 8};
    static const uint32_t train_10[] = {0, 1, 2, 3, 4, 7, 9};
    CHECK_INT_EQ(split.n_val, 3);
    CHECK_INT_EQ(split.n_train, 7);
    for (int i = 0; i < 3 && split.n_val == 3; i++) CHECK_INT_EQ(split.val[i], val_10[i]);
    for (int i = 0; i < 7 && split.n_train == 7; i++) CHECK_INT_EQ(split.train[i], train_10[i]);
    dt_split_free(&split);

    check_split_against_reference(10, 0.3, 42);
    check_split_against_reference(1000, 0.2, 42);
    check_split_against_reference(26179, 0.2, 7);
    check_split_against_reference(2, 0.01, 1);
    check_split_against_reference(2, 0.99, 1);
    check_split_against_reference(7, 0.5, 3); /* round(3.5) = 4 */

    /* Same inputs, same split; another seed, another split; parts partition 0..n-1. */
    dt_split a, b, c;
    CHECK(dt_split_make(500, 0.2, 11, &a, &err) == 0);
    CHECK(dt_split_make(500, 0.2, 11, &b, &err) == 0);
    CHECK(dt_split_make(500, 0.2, 12, &c, &err) == 0);
    CHECK_INT_EQ(a.n_val, 100);
    CHECK(memcmp(a.val, b.val, a.n_val * sizeof *a.val) == 0);
    CHECK(memcmp(a.val, c.val, a.n_val * sizeof *a.val) != 0);
    unsigned char seen[500] = {0};
    for (size_t i = 0; i < a.n_val; i++) seen[a.val[i]]++;
    for (size_t i = 0; i < a.n_train; i++) seen[a.train[i]]++;
    int all_once = 1;
    for (int i = 0; i < 500; i++) all_once &= seen[i] == 1;
    CHECK(all_once);
    dt_split_free(&a);
    dt_split_free(&b);
    dt_split_free(&c);

    CHECK(dt_split_make(1, 0.2, 0, &a, &err) == 0);
    CHECK_INT_EQ(a.n_val, 0);
    CHECK_INT_EQ(a.n_train, 1);
    dt_split_free(&a);
    CHECK(dt_split_make(0, 0.2, 0, &a, &err) == -1);
    CHECK(dt_split_make(10, 0.0, 0, &a, &err) == -1);
    CHECK_INT_EQ(err.exit_code, DT_EXIT_USAGE);
    CHECK(dt_split_make(10, 1.0, 0, &a, &err) == -1);
}

static void test_epoch_order(void) {
    dt_split split;
    dt_error err;
    CHECK(dt_split_make(13, 0.25, 5, &split, &err) == 0); /* 3 val, 10 train */
    CHECK_INT_EQ(split.n_train, 10);

    uint32_t *order = NULL;
    size_t n = 0;
    CHECK(dt_epoch_order(&split, 9, 1, 0, 4, &order, &n, &err) == 0);
    CHECK_INT_EQ(n, 12);
    for (size_t i = 0; i < n && order; i++) CHECK_INT_EQ(order[i], split.train[i % 10]);
    free(order);

    uint32_t *e1 = NULL, *e1b = NULL, *e2 = NULL;
    size_t n1, n1b, n2;
    CHECK(dt_epoch_order(&split, 9, 1, 1, 4, &e1, &n1, &err) == 0);
    CHECK(dt_epoch_order(&split, 9, 1, 1, 4, &e1b, &n1b, &err) == 0);
    CHECK(dt_epoch_order(&split, 9, 2, 1, 4, &e2, &n2, &err) == 0);
    CHECK_INT_EQ(n1, 12);
    CHECK(memcmp(e1, e1b, n1 * sizeof *e1) == 0);
    CHECK(memcmp(e1, e2, n1 * sizeof *e1) != 0);
    CHECK_INT_EQ(e1[10], e1[0]);
    CHECK_INT_EQ(e1[11], e1[1]);
    /* Documented stream: mix(mix(seed, "EPOCH"), epoch). */
    uint32_t reference[10];
    memcpy(reference, split.train, sizeof reference);
    reference_shuffle(reference, 10, reference_mix(reference_mix(9, 0x45504f4348ull), 1));
    CHECK(memcmp(reference, e1, sizeof reference) == 0);
    /* The first n_train entries are a permutation of the training part. */
    uint32_t sorted[10];
    memcpy(sorted, e1, sizeof sorted);
    qsort(sorted, 10, sizeof *sorted, compare_u32);
    CHECK(memcmp(sorted, split.train, sizeof sorted) == 0);
    free(e1);
    free(e1b);
    free(e2);

    /* Exact multiple: no padding; a global batch larger than the data: wraps several times. */
    CHECK(dt_epoch_order(&split, 9, 3, 1, 5, &order, &n, &err) == 0);
    CHECK_INT_EQ(n, 10);
    free(order);
    CHECK(dt_epoch_order(&split, 9, 3, 0, 25, &order, &n, &err) == 0);
    CHECK_INT_EQ(n, 25);
    if (order) CHECK_INT_EQ(order[24], split.train[4]);
    free(order);
    CHECK(dt_epoch_order(&split, 9, 3, 0, 0, &order, &n, &err) == -1);
    dt_split_free(&split);
}

int main(void) {
    dt_error err;
    if (dt_testgen_make_temp_dir("dtrain-scan", root, sizeof root, &err) != 0) {
        fprintf(stderr, "%s\n", err.message);
        return 1;
    }
    build_tree();
    test_scan_order();
    test_scan_errors();
    test_split();
    test_epoch_order();
    dt_testgen_remove_tree(root);
    return dt_test_summary("data_scan");
}
