/* `dtrain pack`: an ImageFolder written as tar shards in WebDataset's layout. Samples go in the
 * ImageFolder's order (so training from the shards sees the same list), each as KEY.EXT (the
 * original bytes, or a JPEG re-encoded after resizing the shorter side to N) and KEY.cls (the
 * class index as decimal text); classes.txt and each shard's index go beside the shards. Each
 * shard is written under a temporary name and renamed when complete. */
#include "dtrain/data.h"
#include "dtrain/log.h"
#include "dtrain/platform.h"
#include "shard_internal.h"
#include "tar_internal.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_SOURCE_FILE_BYTES ((size_t)1 << 30)

typedef struct pack_state {
    const dt_pack_options *opt;
    const char *out_dir;
    FILE *shard;
    char shard_temp[4096], shard_final[4096];
    int n_shards;
    uint64_t shard_bytes, total_bytes;
    char previous_key[DT_TAR_NAME_MAX + 1];
    size_t written, skipped;
} pack_state;

static int write_member(pack_state *s, const char *name, const uint8_t *data, size_t size,
                        dt_error *err) {
    uint8_t header[DT_TAR_BLOCK];
    if (dt_tar_make_header(name, size, header) != 0)
        return dt_fail(err, "%s: member name '%s' does not fit a ustar header", s->shard_temp,
                       name);
    static const uint8_t zeros[DT_TAR_BLOCK];
    size_t padding = (size_t)(dt_tar_padded(size) - size);
    if (fwrite(header, 1, sizeof header, s->shard) != sizeof header ||
        (size && fwrite(data, 1, size, s->shard) != size) ||
        (padding && fwrite(zeros, 1, padding, s->shard) != padding))
        return dt_fail(err, "%s: write failed: %s", s->shard_temp, strerror(errno));
    s->shard_bytes += DT_TAR_BLOCK + dt_tar_padded(size);
    return 0;
}

static int close_shard(pack_state *s, dt_error *err) {
    if (!s->shard) return 0;
    /* end of archive: two zero blocks, then zeros to a whole 10240-byte record as tar does */
    static const uint8_t zeros[DT_TAR_BLOCK];
    uint64_t end = s->shard_bytes + 2 * DT_TAR_BLOCK;
    uint64_t record = (end + 10239) / 10240 * 10240;
    int rc = 0;
    for (uint64_t at = s->shard_bytes; at < record; at += DT_TAR_BLOCK)
        if (fwrite(zeros, 1, DT_TAR_BLOCK, s->shard) != DT_TAR_BLOCK) rc = -1;
    if (fflush(s->shard) != 0 || fsync(fileno(s->shard)) != 0) rc = -1;
    if (fclose(s->shard) != 0) rc = -1;
    s->shard = NULL;
    if (rc) return dt_fail(err, "%s: write failed: %s", s->shard_temp, strerror(errno));
    if (rename(s->shard_temp, s->shard_final) != 0)
        return dt_fail(err, "%s: %s", s->shard_final, strerror(errno));
    s->total_bytes += record;
    dt_shard_index index;
    if (dt_shard_index_build(s->shard_final, &index, err)) return -1;
    rc = dt_shard_index_save(s->shard_final, &index, err);
    dt_shard_index_free(&index);
    return rc;
}

static int open_shard(pack_state *s, dt_error *err) {
    snprintf(s->shard_final, sizeof s->shard_final, "%s/shard-%06d.tar", s->out_dir, s->n_shards);
    snprintf(s->shard_temp, sizeof s->shard_temp, "%s.tmp", s->shard_final);
    s->shard = fopen(s->shard_temp, "wb");
    if (!s->shard) return dt_fail(err, "%s: %s", s->shard_temp, strerror(errno));
    s->n_shards++;
    s->shard_bytes = 0;
    return 0;
}

/* The sample key: the path below the ImageFolder root without its extension, dots made '_'
 * (WebDataset's key ends at the first dot of the last component); the sample number instead
 * when that does not fit a ustar name or repeats the previous key. */
static void make_key(pack_state *s, const char *relative, size_t number, char *key, size_t size) {
    snprintf(key, size, "%s", relative);
    char *base = strrchr(key, '/');
    base = base ? base + 1 : key;
    char *ext = strrchr(base, '.');
    if (ext) *ext = '\0';
    for (char *c = base; *c; c++)
        if (*c == '.') *c = '_';
    uint8_t probe[DT_TAR_BLOCK];
    char longest[DT_TAR_NAME_MAX + 16];
    snprintf(longest, sizeof longest, "%s.jpeg", key);
    if (!*base || strcmp(key, s->previous_key) == 0 || dt_tar_make_header(longest, 0, probe) != 0)
        snprintf(key, size, "sample-%09zu", number);
    snprintf(s->previous_key, sizeof s->previous_key, "%s", key);
}

static const char *lower_extension(const char *path, char *out, size_t size) {
    const char *dot = strrchr(path, '.');
    snprintf(out, size, "%s", dot ? dot + 1 : "jpg");
    for (char *c = out; *c; c++)
        if (*c >= 'A' && *c <= 'Z') *c = (char)(*c - 'A' + 'a');
    return out;
}

/* The JPEG of img with its shorter side resized to short_side (torchvision's Resize(N): the
 * longer side int(N * long / short)), PIL's antialiased bilinear filter. */
static int resize_encode(const dt_image *img, int short_side, int quality, uint8_t **out,
                         size_t *size, dt_error *err) {
    int w = img->width, h = img->height, out_w, out_h;
    if (w <= h) {
        out_w = short_side;
        out_h = (int)((long long)short_side * h / w);
    } else {
        out_h = short_side;
        out_w = (int)((long long)short_side * w / h);
    }
    uint8_t *pixels = malloc((size_t)out_w * (size_t)out_h * 3);
    if (!pixels) return dt_fail(err, "out of memory");
    int rc = dt_image_resize_region(img, 0, 0, w, h, out_w, out_h, pixels, err);
    if (rc == 0) rc = dt_jpeg_encode_memory(pixels, out_w, out_h, quality, out, size, err);
    free(pixels);
    return rc;
}

static void show_progress(const pack_state *s, size_t done, size_t total, int final) {
    if (!s->opt->progress) return;
    int width = 30, filled = total ? (int)((double)done / (double)total * width) : width;
    char bar[64];
    for (int i = 0; i < width; i++) bar[i] = i < filled ? '#' : '.';
    bar[width] = '\0';
    fprintf(stderr, "\rpack [%s] %zu/%zu images, %d shard%s, %.1f MB", bar, done, total,
            s->n_shards, s->n_shards == 1 ? "" : "s",
            (double)(s->total_bytes + s->shard_bytes) / 1e6);
    if (final) fputc('\n', stderr);
    fflush(stderr);
}

static int pack_one(pack_state *s, const dt_dataset *ds, size_t i, dt_error *err) {
    const dt_image_file *file = &ds->files[i];
    const char *relative = file->path + strlen(ds->root) + 1;
    uint8_t *bytes = NULL, *encoded = NULL;
    size_t size = 0;
    char ext[16];
    lower_extension(file->path, ext, sizeof ext);
    if (dt_read_file(file->path, MAX_SOURCE_FILE_BYTES, &bytes, &size, err)) return -1;
    if (s->opt->resize > 0) {
        dt_image img;
        dt_error why = {{0}, 0};
        int rc = dt_image_decode_memory(bytes, size, file->path, &img, &why);
        if (rc == 0) {
            rc = resize_encode(&img, s->opt->resize, s->opt->quality, &encoded, &size, &why);
            dt_image_free(&img);
        }
        free(bytes);
        bytes = NULL;
        if (rc) {
            dt_warn("skipping %s", why.message); /* undecodable: nothing to resize */
            s->skipped++;
            return 0;
        }
        snprintf(ext, sizeof ext, "jpg");
    }
    const uint8_t *data = encoded ? encoded : bytes;
    if (s->shard && s->shard_bytes > 0 &&
        s->shard_bytes + size + 3 * DT_TAR_BLOCK > s->opt->shard_bytes) {
        if (close_shard(s, err)) goto fail;
    }
    if (!s->shard && open_shard(s, err)) goto fail;
    char key[DT_TAR_NAME_MAX + 1], name[DT_TAR_NAME_MAX + 16], label[16];
    make_key(s, relative, i, key, sizeof key);
    snprintf(name, sizeof name, "%s.%s", key, ext);
    int label_length = snprintf(label, sizeof label, "%d", file->label);
    if (write_member(s, name, data, size, err)) goto fail;
    snprintf(name, sizeof name, "%s.cls", key);
    if (write_member(s, name, (const uint8_t *)label, (size_t)label_length, err)) goto fail;
    s->written++;
    free(bytes);
    free(encoded);
    return 0;
fail:
    free(bytes);
    free(encoded);
    return -1;
}

/* 1 when dir holds a .tar file already: packing there would mix two sets of shards. */
static int holds_tar_files(const char *dir) {
    DIR *handle = opendir(dir);
    if (!handle) return 0;
    int found = 0;
    struct dirent *entry;
    while (!found && (entry = readdir(handle))) {
        size_t n = strlen(entry->d_name);
        found = n > 4 && strcmp(entry->d_name + n - 4, ".tar") == 0;
    }
    closedir(handle);
    return found;
}

static int write_classes(const dt_dataset *ds, const char *out_dir, dt_error *err) {
    char path[4096];
    snprintf(path, sizeof path, "%s/classes.txt", out_dir);
    FILE *out = fopen(path, "wb");
    if (!out) return dt_fail(err, "%s: %s", path, strerror(errno));
    for (int i = 0; i < ds->n_classes; i++) fprintf(out, "%s\n", ds->class_names[i]);
    if (fclose(out) != 0) return dt_fail(err, "%s: write failed", path);
    return 0;
}

int dt_pack_imagefolder(const char *src, const char *out_dir, const dt_pack_options *opt,
                        dt_pack_result *result, dt_error *err) {
    memset(result, 0, sizeof *result);
    if (opt->shard_bytes < 4 * DT_TAR_BLOCK) return dt_fail_usage(err, "shard size too small");
    if (opt->resize < 0 || opt->resize > 8192)
        return dt_fail_usage(err, "--resize must be 1..8192, got %d", opt->resize);
    if (opt->quality < 1 || opt->quality > 100)
        return dt_fail_usage(err, "--quality must be 1..100, got %d", opt->quality);
    if (strlen(out_dir) > 3000) return dt_fail_usage(err, "%s: path too long", out_dir);
    if (mkdir(out_dir, 0777) != 0 && errno != EEXIST)
        return dt_fail(err, "%s: cannot create: %s", out_dir, strerror(errno));
    if (holds_tar_files(out_dir))
        return dt_fail_usage(err, "%s already holds .tar files; pack into a new folder", out_dir);
    dt_dataset ds;
    if (dt_dataset_scan(src, &ds, err)) return dt_error_prefix(err, "pack source");
    pack_state s = {.opt = opt, .out_dir = out_dir};
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < ds.n_files; i++) {
        rc = pack_one(&s, &ds, i, err);
        if (rc == 0 && (i % 64 == 63 || i + 1 == ds.n_files))
            show_progress(&s, i + 1, ds.n_files, 0);
    }
    if (rc == 0) rc = close_shard(&s, err);
    if (rc == 0) rc = write_classes(&ds, out_dir, err);
    if (rc == 0) show_progress(&s, ds.n_files, ds.n_files, 1);
    if (s.shard) {
        fclose(s.shard);
        unlink(s.shard_temp);
    }
    result->samples = s.written;
    result->skipped = s.skipped;
    result->shards = s.n_shards;
    result->bytes = s.total_bytes;
    dt_dataset_free(&ds);
    return rc;
}
