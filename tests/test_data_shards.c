/* Tar shards as a data source: `dtrain pack`'s writer against the ImageFolder it packs (order,
 * labels, bytes, SHARD:KEY names), the .idx files (written, reused, rebuilt when stale or
 * damaged), brace patterns, the loader giving the same batches from either source, the file
 * list shared between ranks as bytes, and hostile shards: truncated, not tar, huge declared
 * sizes, "../" and absolute names, link, device and FIFO members, bad labels. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../src/data/tar_internal.h"
#include "check.h"
#include "dtrain/data.h"
#include "imagegen.h"

static char workdir[1024];

/* ---- a tar writer for hand-made (hostile) shards ----------------------------------------- */

typedef struct tar_buffer {
    uint8_t *data;
    size_t length;
} tar_buffer;

static void append(tar_buffer *t, const void *bytes, size_t n) {
    t->data = realloc(t->data, t->length + n);
    memcpy(t->data + t->length, bytes, n);
    t->length += n;
}

static void set_checksum(uint8_t *block) {
    memset(block + 148, ' ', 8);
    unsigned sum = 0;
    for (int i = 0; i < 512; i++) sum += block[i];
    snprintf((char *)block + 148, 8, "%06o", sum);
    block[155] = ' ';
}

/* A member with the given type flag; declared_size overrides the size field when not 0. */
static void add_member(tar_buffer *t, const char *name, char typeflag, const void *data,
                       size_t size, const char *declared_size) {
    uint8_t block[512];
    CHECK(dt_tar_make_header(name, size, block) == 0);
    block[156] = (uint8_t)typeflag;
    if (declared_size) memcpy(block + 124, declared_size, 12);
    set_checksum(block);
    append(t, block, 512);
    if (size) {
        append(t, data, size);
        static const uint8_t zeros[512];
        append(t, zeros, (size_t)(dt_tar_padded(size) - size));
    }
}

static void add_file(tar_buffer *t, const char *name, const void *data, size_t size) {
    add_member(t, name, '0', data, size, NULL);
}

static void end_archive(tar_buffer *t) {
    static const uint8_t zeros[1024];
    append(t, zeros, sizeof zeros);
}

static void write_tar(const char *path, const tar_buffer *t, size_t keep) {
    dt_error err;
    CHECK_MSG(dt_testgen_write_bytes(path, t->data, keep, &err) == 0, "%s", err.message);
}

static void write_text(const char *path, const char *text) {
    dt_error err;
    CHECK(dt_testgen_write_bytes(path, text, strlen(text), &err) == 0);
}

/* ---- pack versus the ImageFolder --------------------------------------------------------- */

static void test_pack_matches_folder(void) {
    char src[1200], out[1200], pattern[1300], path[1400];
    snprintf(src, sizeof src, "%s/folder", workdir);
    snprintf(out, sizeof out, "%s/packed", workdir);
    dt_error err = {{0}, 0};
    CHECK_MSG(dt_testgen_learnable_imagefolder(src, 3, 20, 24, 20, 7, &err) == 0, "%s",
              err.message);
    /* ~700-byte JPEGs: a 8 KiB shard size gives several shards */
    dt_pack_options opt = {.shard_bytes = 8192, .quality = 90};
    dt_pack_result result;
    CHECK_MSG(dt_pack_imagefolder(src, out, &opt, &result, &err) == 0, "%s", err.message);
    CHECK_INT_EQ((long)result.samples, 60);
    CHECK(result.shards > 2);
    CHECK(dt_shards_detect(out) == 1);
    CHECK(dt_shards_detect(src) == 0);
    int n_shards = result.shards;
    /* packing into a folder that already holds shards is refused */
    CHECK(dt_pack_imagefolder(src, out, &opt, &result, &err) != 0 && err.exit_code == 2);

    dt_dataset folder, shards;
    CHECK(dt_dataset_open(src, &folder, &err) == 0);
    CHECK_MSG(dt_dataset_open(out, &shards, &err) == 0, "%s", err.message);
    CHECK_INT_EQ((long)shards.n_files, (long)folder.n_files);
    CHECK_INT_EQ(shards.n_classes, folder.n_classes);
    CHECK_INT_EQ((long)shards.n_skipped_members, 0);
    for (int c = 0; c < folder.n_classes && c < shards.n_classes; c++)
        CHECK_STR_EQ(shards.class_names[c], folder.class_names[c]);
    for (size_t i = 0; i < folder.n_files && i < shards.n_files; i++) {
        CHECK_INT_EQ(shards.files[i].label, folder.files[i].label);
        uint8_t *a, *b;
        size_t na, nb;
        CHECK(dt_dataset_read_sample(&folder, (uint32_t)i, &a, &na, &err) == 0);
        CHECK_MSG(dt_dataset_read_sample(&shards, (uint32_t)i, &b, &nb, &err) == 0, "%s",
                  err.message);
        CHECK(na == nb && memcmp(a, b, na) == 0);
        free(a);
        free(b);
    }
    /* SHARD:KEY, the key being the path below the root without its extension */
    snprintf(path, sizeof path, "%s/shard-000000.tar:class00/img0000", out);
    CHECK_STR_EQ(shards.files[0].path, path);

    /* the same shards named by a brace pattern */
    snprintf(pattern, sizeof pattern, "%s/shard-{000000..%06d}.tar", out, n_shards - 1);
    CHECK(dt_shards_detect(pattern) == 1);
    dt_dataset braced;
    CHECK_MSG(dt_dataset_open(pattern, &braced, &err) == 0, "%s", err.message);
    CHECK_INT_EQ((long)braced.n_files, (long)shards.n_files);
    for (size_t i = 0; i < braced.n_files && i < shards.n_files; i++)
        CHECK_STR_EQ(braced.files[i].path, shards.files[i].path);
    dt_dataset_free(&braced);
    /* a pattern naming a shard that is not there fails, naming it */
    snprintf(pattern, sizeof pattern, "%s/shard-{000000..%06d}.tar", out, n_shards);
    CHECK(dt_dataset_open(pattern, &braced, &err) != 0 && strstr(err.message, ".tar"));

    /* the loader gives bitwise the same batches from both sources */
    dt_loader_options lo = {.batch_size = 8,
                            .image_size = 16,
                            .resize = DT_RESIZE_SQUASH,
                            .augment = DT_AUGMENT_CROP_FLIP,
                            .workers = 2,
                            .prefetch_batches = 2,
                            .seed = 3};
    dt_loader *la, *lb;
    CHECK(dt_loader_create(&folder, &lo, &la, &err) == 0);
    CHECK(dt_loader_create(&shards, &lo, &lb, &err) == 0);
    uint32_t order[60];
    for (uint32_t i = 0; i < 60; i++) order[i] = (i * 37u) % 60u;
    CHECK(dt_loader_start(la, order, 60, 1, 1, &err) == 0);
    CHECK(dt_loader_start(lb, order, 60, 1, 1, &err) == 0);
    for (;;) {
        const dt_batch *ba, *bb;
        CHECK(dt_loader_next(la, &ba, &err) == 0);
        CHECK(dt_loader_next(lb, &bb, &err) == 0);
        if (!ba || !bb) {
            CHECK(!ba && !bb);
            break;
        }
        CHECK(memcmp(ba->pixels, bb->pixels, 8u * 16 * 16 * 3) == 0);
        CHECK(memcmp(ba->labels, bb->labels, 8 * sizeof *ba->labels) == 0);
        CHECK_INT_EQ(ba->n_counted, bb->n_counted);
        dt_loader_release(la, ba);
        dt_loader_release(lb, bb);
    }
    dt_loader_destroy(la);
    dt_loader_destroy(lb);

    /* the file list as bytes (rank 0 to the others): a round trip, and every cut refused */
    uint8_t *bytes;
    size_t size;
    CHECK(dt_dataset_pack_bytes(&shards, &bytes, &size, &err) == 0);
    dt_dataset copy;
    CHECK_MSG(dt_dataset_unpack_bytes(bytes, size, &copy, &err) == 0, "%s", err.message);
    CHECK_INT_EQ((long)copy.n_files, (long)shards.n_files);
    CHECK_INT_EQ(copy.n_shards, shards.n_shards);
    for (size_t i = 0; i < copy.n_files && i < shards.n_files; i++) {
        CHECK_STR_EQ(copy.files[i].path, shards.files[i].path);
        CHECK(copy.files[i].offset == shards.files[i].offset &&
              copy.files[i].size == shards.files[i].size &&
              copy.files[i].shard == shards.files[i].shard);
    }
    CHECK(dt_dataset_hash(&copy) == dt_dataset_hash(&shards));
    uint8_t *sample;
    size_t sample_size;
    CHECK(dt_dataset_read_sample(&copy, 59, &sample, &sample_size, &err) == 0);
    free(sample);
    dt_dataset_free(&copy);
    int all_cuts_refused = 1;
    for (size_t cut = 0; cut < size; cut += 7)
        if (dt_dataset_unpack_bytes(bytes, cut, &copy, &err) == 0) {
            all_cuts_refused = 0;
            dt_dataset_free(&copy);
        }
    CHECK(all_cuts_refused);
    bytes[size - 24] ^= 0x40; /* the last sample's shard index out of range */
    CHECK(dt_dataset_unpack_bytes(bytes, size, &copy, &err) != 0);
    free(bytes);

    /* the index: written beside the shard, used while current, rebuilt when damaged or stale */
    snprintf(path, sizeof path, "%s/shard-000000.tar.idx", out);
    char *index_text = NULL;
    uint8_t *raw;
    size_t raw_size;
    CHECK(dt_testgen_read_file(path, &raw, &raw_size, &err) == 0);
    index_text = (char *)raw;
    char *first_sample = strstr(index_text, "\ns ");
    CHECK(first_sample != NULL);
    /* a current index is trusted: a key changed in it shows up in the dataset */
    char *key = first_sample ? strstr(first_sample, "class00/img0000") : NULL;
    if (key) key[14] = '9';
    dt_testgen_write_bytes(path, raw, raw_size, &err);
    dt_dataset again;
    CHECK(dt_dataset_open(out, &again, &err) == 0);
    CHECK(strstr(again.files[0].path, "class00/img0009") != NULL);
    dt_dataset_free(&again);
    /* damaged (cut short): rebuilt from the shard, and rewritten */
    dt_testgen_write_bytes(path, raw, raw_size / 2, &err);
    CHECK(dt_dataset_open(out, &again, &err) == 0);
    CHECK_STR_EQ(again.files[0].path, shards.files[0].path);
    dt_dataset_free(&again);
    free(raw);
    CHECK(dt_testgen_read_file(path, &raw, &raw_size, &err) == 0 && raw_size > 100);
    /* stale: the shard's modification time changed, so the (edited) index is ignored */
    if (key) {
        key = strstr((char *)raw, "class00/img0000");
        if (key) key[14] = '9';
        dt_testgen_write_bytes(path, raw, raw_size, &err);
        char shard[1300];
        snprintf(shard, sizeof shard, "%s/shard-000000.tar", out);
        struct stat info;
        stat(shard, &info);
        struct timespec times[2] = {info.st_atim, info.st_mtim};
        times[1].tv_sec -= 10;
        CHECK(utimensat(AT_FDCWD, shard, times, 0) == 0);
        CHECK(dt_dataset_open(out, &again, &err) == 0);
        CHECK_STR_EQ(again.files[0].path, shards.files[0].path);
        dt_dataset_free(&again);
    }
    free(raw);
    dt_dataset_free(&folder);
    dt_dataset_free(&shards);
}

/* --resize: shorter side to N as torchvision's Resize(N), JPEG; undecodable files skipped */
static void test_pack_resized(void) {
    char src[1200], out[1200], path[1400];
    snprintf(src, sizeof src, "%s/folder", workdir);
    snprintf(out, sizeof out, "%s/resized", workdir);
    dt_error err = {{0}, 0};
    snprintf(path, sizeof path, "%s/class01/zz-broken.jpg", src);
    CHECK(dt_testgen_write_bytes(path, "\xff\xd8\xff not really", 14, &err) == 0);
    dt_pack_options opt = {.shard_bytes = 1 << 20, .resize = 16, .quality = 90};
    dt_pack_result result;
    CHECK_MSG(dt_pack_imagefolder(src, out, &opt, &result, &err) == 0, "%s", err.message);
    CHECK_INT_EQ((long)result.samples, 60);
    CHECK_INT_EQ((long)result.skipped, 1);
    dt_dataset folder, shards;
    CHECK(dt_dataset_open(src, &folder, &err) == 0);
    CHECK(dt_dataset_open(out, &shards, &err) == 0);
    CHECK_INT_EQ((long)shards.n_files, 60);
    for (size_t i = 0, j = 0; i < folder.n_files && j < shards.n_files; i++) {
        if (strstr(folder.files[i].path, "zz-broken")) continue;
        CHECK_INT_EQ(shards.files[j].label, folder.files[i].label);
        CHECK(strstr(shards.files[j].path, ".tar:class") != NULL);
        uint8_t *bytes;
        size_t size;
        dt_image img;
        CHECK(dt_dataset_read_sample(&shards, (uint32_t)j, &bytes, &size, &err) == 0);
        CHECK(dt_image_decode_memory(bytes, size, "x", &img, &err) == 0);
        /* 24 x 20 sources: 20 -> 16, 24 -> int(16 * 24 / 20) = 19 */
        CHECK(img.width == 19 && img.height == 16);
        dt_image_free(&img);
        free(bytes);
        j++;
    }
    dt_dataset_free(&folder);
    dt_dataset_free(&shards);
    /* a folder with .tar files in it is not packed into */
    CHECK(dt_pack_imagefolder(src, out, &opt, &result, &err) != 0 && err.exit_code == 2);
    unlink(path);
}

/* ---- hostile shards ------------------------------------------------------------------------ */

static void make_shard_dir(const char *name, char *dir, size_t size) {
    snprintf(dir, size, "%s/%s", workdir, name);
    dt_error err;
    CHECK(dt_make_directories(dir, &err) == 0);
    char path[1400];
    snprintf(path, sizeof path, "%s/classes.txt", dir);
    write_text(path, "cat\ndog\n");
}

static void jpeg_bytes(uint8_t **out, size_t *size) {
    uint8_t rgb[8 * 8 * 3];
    dt_testgen_fill_photo_like(rgb, 8, 8, 1);
    dt_error err;
    CHECK(dt_jpeg_encode_memory(rgb, 8, 8, 90, out, size, &err) == 0);
}

static void test_hostile_members(void) {
    char dir[1200], path[1400];
    make_shard_dir("hostile", dir, sizeof dir);
    uint8_t *jpeg;
    size_t jpeg_size;
    jpeg_bytes(&jpeg, &jpeg_size);
    tar_buffer t = {0};
    add_member(&t, "sub", '5', NULL, 0, NULL);  /* a directory: ignored */
    add_file(&t, "good0.jpg", jpeg, jpeg_size); /* kept */
    add_file(&t, "good0.cls", "1\n", 2);
    add_file(&t, "../evil.jpg", jpeg, jpeg_size);   /* skipped: '..' */
    add_file(&t, "../evil.cls", "0", 1);            /* skipped: '..' */
    add_file(&t, "/abs.jpg", jpeg, jpeg_size);      /* skipped: absolute */
    add_member(&t, "link.jpg", '2', NULL, 0, NULL); /* skipped: symbolic link */
    add_member(&t, "hard.jpg", '1', NULL, 0, NULL); /* skipped: hard link */
    add_member(&t, "dev.jpg", '3', NULL, 0, NULL);  /* skipped: character device */
    add_member(&t, "blk.jpg", '4', NULL, 0, NULL);  /* skipped: block device */
    add_member(&t, "fifo.jpg", '6', NULL, 0, NULL); /* skipped: FIFO */
    add_file(&t, "nolabel.jpg", jpeg, jpeg_size);   /* skipped: no .cls */
    add_file(&t, "badlabel.jpg", jpeg, jpeg_size);  /* skipped: not a number */
    add_file(&t, "badlabel.cls", "one", 3);
    add_file(&t, "range.jpg", jpeg, jpeg_size); /* skipped: label 7 of 2 classes */
    add_file(&t, "range.cls", "7", 1);
    add_file(&t, "nl\nname.jpg", jpeg, jpeg_size); /* skipped: control character */
    add_file(&t, "onlycls.cls", "0", 1);           /* skipped: no image */
    add_file(&t, "sub/good1.png", "not a png", 9); /* kept: undecodable, the loader skips */
    add_file(&t, "sub/good1.cls", "0", 1);
    add_file(&t, "sub/good1.json", "{}", 2); /* other members of a sample: ignored */
    add_file(&t, "README", "x", 1);          /* no extension: ignored */
    end_archive(&t);
    snprintf(path, sizeof path, "%s/a.tar", dir);
    write_tar(path, &t, t.length);
    dt_dataset ds;
    dt_error err = {{0}, 0};
    CHECK_MSG(dt_dataset_open(dir, &ds, &err) == 0, "%s", err.message);
    CHECK_INT_EQ((long)ds.n_files, 2);
    CHECK_INT_EQ((long)ds.n_skipped_members, 13);
    if (ds.n_files == 2) {
        CHECK(strstr(ds.files[0].path, "a.tar:good0") != NULL);
        CHECK_INT_EQ(ds.files[0].label, 1);
        CHECK(strstr(ds.files[1].path, "a.tar:sub/good1") != NULL);
        CHECK_INT_EQ(ds.files[1].label, 0);
        uint8_t *bytes;
        size_t size;
        CHECK(dt_dataset_read_sample(&ds, 0, &bytes, &size, &err) == 0);
        CHECK(size == jpeg_size && memcmp(bytes, jpeg, size) == 0);
        free(bytes);
        /* the second is undecodable: an error naming SHARD:KEY, as a bad file */
        dt_loader_options lo = {
            .batch_size = 2, .image_size = 8, .workers = 1, .prefetch_batches = 2};
        uint8_t pixels[8 * 8 * 3];
        CHECK(dt_sample_load_from(&ds, 1, &lo, 0, 0, pixels, &err) != 0 &&
              strstr(err.message, "a.tar:sub/good1"));
    }
    dt_dataset_free(&ds);
    /* the same answer from the index written by the first open */
    CHECK(dt_dataset_open(dir, &ds, &err) == 0);
    CHECK_INT_EQ((long)ds.n_files, 2);
    CHECK_INT_EQ((long)ds.n_skipped_members, 13);
    dt_dataset_free(&ds);

    /* A shard must be whole: each of these is an error naming the shard. */
    struct {
        const char *what, *expect;
        size_t keep;      /* bytes of t kept (0: all) */
        int hostile_size; /* 1: octal 77777777777, 2: base-256 2^80 */
        int bad_checksum, text;
    } cases[] = {
        {"cut in a member's data", "truncated", 512 + 1024 + 100, 0, 0, 0},
        {"cut in a header", "truncated", 512 + 1024 + 512 + 300, 0, 0, 0},
        {"huge octal size", "past the end", 0, 1, 0, 0},
        {"huge base-256 size", "past the end", 0, 2, 0, 0},
        {"bad checksum", "checksum", 0, 0, 1, 0},
        {"not a tar", "not a tar file", 0, 0, 0, 1},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        char name[64];
        snprintf(name, sizeof name, "broken%zu", c);
        make_shard_dir(name, dir, sizeof dir);
        tar_buffer b = {0};
        add_file(&b, "x0.jpg", jpeg, jpeg_size);
        add_file(&b, "x0.cls", "0", 1);
        if (cases[c].hostile_size == 1)
            add_member(&b, "big.jpg", '0', NULL, 0, "77777777777");
        else if (cases[c].hostile_size == 2) {
            char field[12] = {(char)0x80, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0};
            add_member(&b, "big.jpg", '0', NULL, 0, field);
        } else
            add_file(&b, "x1.jpg", jpeg, jpeg_size);
        if (cases[c].bad_checksum) b.data[b.length - dt_tar_padded(jpeg_size) - 512 + 3] ^= 1;
        end_archive(&b);
        snprintf(path, sizeof path, "%s/bad.tar", dir);
        if (cases[c].text)
            write_text(path, "this is plainly not a tar archive at all\n");
        else
            write_tar(path, &b, cases[c].keep ? cases[c].keep : b.length);
        CHECK(dt_dataset_open(dir, &ds, &err) != 0);
        CHECK_MSG(strstr(err.message, path) && strstr(err.message, cases[c].expect), "%s: %s",
                  cases[c].what, err.message);
        free(b.data);
    }
    /* no classes.txt beside a single shard named directly */
    snprintf(dir, sizeof dir, "%s/lonely", workdir);
    dt_make_directories(dir, &err);
    snprintf(path, sizeof path, "%s/a.tar", dir);
    write_tar(path, &t, t.length);
    CHECK(dt_dataset_open(path, &ds, &err) != 0 && strstr(err.message, "classes.txt"));
    free(t.data);
    free(jpeg);
}

static void test_braces(void) {
    char **names;
    size_t n;
    dt_error err;
    CHECK(dt_expand_braces("d/s-{08..11}-{a,b}.tar", &names, &n, &err) == 0);
    const char *want[] = {"d/s-08-a.tar", "d/s-08-b.tar", "d/s-09-a.tar", "d/s-09-b.tar",
                          "d/s-10-a.tar", "d/s-10-b.tar", "d/s-11-a.tar", "d/s-11-b.tar"};
    CHECK_INT_EQ((long)n, 8);
    for (size_t i = 0; i < n && i < 8; i++) CHECK_STR_EQ(names[i], want[i]);
    for (size_t i = 0; i < n; i++) free(names[i]);
    free(names);
    CHECK(dt_expand_braces("s-{5..2}.tar", &names, &n, &err) != 0 && err.exit_code == 2);
    CHECK(dt_expand_braces("s-{0..x}.tar", &names, &n, &err) != 0);
    CHECK(dt_expand_braces("s-{0..3.tar", &names, &n, &err) != 0);
}

int main(void) {
    dt_error err;
    if (dt_testgen_make_temp_dir("dtrain-shards", workdir, sizeof workdir, &err) != 0) {
        fprintf(stderr, "%s\n", err.message);
        return 1;
    }
    test_braces();
    test_pack_matches_folder();
    test_pack_resized();
    test_hostile_members();
    dt_testgen_finish_temp_dir(workdir);
    return dt_test_summary("data_shards");
}
