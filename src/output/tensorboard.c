/* TensorBoard event files: TFRecord framing and hand-encoded protocol buffers (tensorflow's
 * event.proto and summary.proto: Event{wall_time=1, step=2, file_version=3, summary=5},
 * Summary{value=1}, Summary.Value{tag=1, simple_value=2, image=4},
 * Summary.Image{height=1, width=2, colorspace=3, encoded_image_string=4}). */
#include "dtrain/tensorboard.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include "dtrain/bytes.h"
#include "dtrain/classify.h"
#include "dtrain/output_files.h"
#include "dtrain/platform.h"

struct dt_tensorboard {
    FILE *file;
    char path[4096];
};

/* ---- CRC-32C (Castagnoli, reflected polynomial 0x82F63B78) ------------------------------- */

uint32_t dt_crc32c(const void *data, size_t size) {
    static uint32_t table[256];
    static int ready;
    if (!ready) { /* idempotent: concurrent first calls write the same values */
        for (uint32_t i = 0; i < 256; i++) {
            uint32_t c = i;
            for (int k = 0; k < 8; k++) c = (c >> 1) ^ (c & 1 ? 0x82F63B78u : 0);
            table[i] = c;
        }
        ready = 1;
    }
    const uint8_t *p = data;
    uint32_t crc = 0xFFFFFFFFu;
    for (size_t i = 0; i < size; i++) crc = table[(crc ^ p[i]) & 0xFF] ^ (crc >> 8);
    return crc ^ 0xFFFFFFFFu;
}

uint32_t dt_tfrecord_masked_crc(const void *data, size_t size) {
    uint32_t crc = dt_crc32c(data, size);
    return ((crc >> 15) | (crc << 17)) + 0xa282ead8u;
}

/* ---- protocol buffer encoding ------------------------------------------------------------ */

static void put_varint(dt_text *b, uint64_t v) {
    char bytes[10];
    size_t n = 0;
    do {
        bytes[n++] = (char)((v & 0x7F) | (v > 0x7F ? 0x80 : 0));
        v >>= 7;
    } while (v);
    dt_text_append(b, bytes, n);
}

static void put_key(dt_text *b, int field, int wire_type) {
    put_varint(b, ((uint64_t)field << 3) | (uint64_t)wire_type);
}

static void put_bytes(dt_text *b, int field, const void *data, size_t size) {
    put_key(b, field, 2);
    put_varint(b, size);
    dt_text_append(b, data, size);
}

static void put_fixed(dt_text *b, const void *le_bytes, size_t size) {
    dt_text_append(b, le_bytes, size); /* x86-64 and aarch64 Linux are little-endian */
}

static double wall_time(void) {
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (double)tv.tv_sec + tv.tv_usec * 1e-6;
}

/* Event{wall_time, step, <payload>} where payload is an already-encoded field. */
static void encode_event(dt_text *event, long step, const dt_text *payload) {
    double now = wall_time();
    put_key(event, 1, 1);
    put_fixed(event, &now, 8);
    put_key(event, 2, 0);
    put_varint(event, (uint64_t)(int64_t)step);
    dt_text_append(event, payload->data, payload->length);
}

static int write_record(dt_tensorboard *tb, const void *data, size_t size, dt_error *err) {
    uint64_t length = size;
    uint32_t length_crc = dt_tfrecord_masked_crc(&length, 8);
    uint32_t data_crc = dt_tfrecord_masked_crc(data, size);
    if (fwrite(&length, 8, 1, tb->file) != 1 || fwrite(&length_crc, 4, 1, tb->file) != 1 ||
        (size && fwrite(data, size, 1, tb->file) != 1) || fwrite(&data_crc, 4, 1, tb->file) != 1)
        return dt_fail(err, "writing %s: %s", tb->path, strerror(errno));
    return 0;
}

/* Encodes Event{step, summary=Summary{value=[value]}} and writes it as one record. */
static int write_summary_value(dt_tensorboard *tb, long step, const dt_text *value, dt_error *err) {
    dt_text summary = {0}, payload = {0}, event = {0};
    put_bytes(&summary, 1, value->data, value->length);
    put_bytes(&payload, 5, summary.data, summary.length);
    encode_event(&event, step, &payload);
    int rc = summary.failed || payload.failed || event.failed
                 ? dt_fail(err, "%s: out of memory encoding an event", tb->path)
                 : write_record(tb, event.data, event.length, err);
    free(summary.data);
    free(payload.data);
    free(event.data);
    return rc;
}

int dt_tensorboard_scalar(dt_tensorboard *tb, const char *tag, long step, float value,
                          dt_error *err) {
    dt_text v = {0};
    put_bytes(&v, 1, tag, strlen(tag));
    put_key(&v, 2, 5);
    put_fixed(&v, &value, 4);
    int rc = v.failed ? dt_fail(err, "out of memory") : write_summary_value(tb, step, &v, err);
    free(v.data);
    return rc;
}

int dt_tensorboard_image(dt_tensorboard *tb, const char *tag, long step, const uint8_t *rgb,
                         int width, int height, dt_error *err) {
    uint8_t *png = NULL;
    size_t png_size = 0;
    if (dt_png_encode_rgb(rgb, width, height, &png, &png_size, err))
        return dt_error_prefix(err, "TensorBoard image %s", tag);
    dt_text image = {0}, v = {0};
    put_key(&image, 1, 0);
    put_varint(&image, (uint64_t)height);
    put_key(&image, 2, 0);
    put_varint(&image, (uint64_t)width);
    put_key(&image, 3, 0);
    put_varint(&image, 3); /* RGB */
    put_bytes(&image, 4, png, png_size);
    free(png);
    put_bytes(&v, 1, tag, strlen(tag));
    put_bytes(&v, 4, image.data, image.length);
    int rc = image.failed || v.failed ? dt_fail(err, "out of memory")
                                      : write_summary_value(tb, step, &v, err);
    free(image.data);
    free(v.data);
    return rc;
}

int dt_tensorboard_open(const char *dir, dt_tensorboard **out, dt_error *err) {
    *out = NULL;
    if (dt_output_refuse_link(dir, err) || dt_make_directories(dir, err)) return -1;
    dt_tensorboard *tb = calloc(1, sizeof *tb);
    if (!tb) return dt_fail(err, "out of memory");
    char host[256] = "localhost";
    if (gethostname(host, sizeof host - 1) != 0) snprintf(host, sizeof host, "localhost");
    long seconds = (long)wall_time();
    /* a second file within the same second (a quick resume) gets a numeric suffix */
    for (int attempt = 0; attempt < 1000; attempt++) {
        if (attempt == 0)
            snprintf(tb->path, sizeof tb->path, "%s/events.out.tfevents.%ld.%s", dir, seconds,
                     host);
        else
            snprintf(tb->path, sizeof tb->path, "%s/events.out.tfevents.%ld.%s.%d", dir, seconds,
                     host, attempt);
        struct stat sb;
        if (lstat(tb->path, &sb) != 0) break;
    }
    if (!(tb->file = dt_output_fopen(tb->path, "x", err))) {
        free(tb);
        return -1;
    }
    dt_text payload = {0}, event = {0};
    put_bytes(&payload, 3, "brain.Event:2", 13);
    encode_event(&event, 0, &payload);
    int rc = payload.failed || event.failed ? dt_fail(err, "out of memory")
                                            : write_record(tb, event.data, event.length, err);
    free(payload.data);
    free(event.data);
    if (rc || dt_tensorboard_flush(tb, err)) {
        dt_tensorboard_close(tb);
        return -1;
    }
    *out = tb;
    return 0;
}

int dt_tensorboard_flush(dt_tensorboard *tb, dt_error *err) {
    if (fflush(tb->file) != 0) return dt_fail(err, "writing %s: %s", tb->path, strerror(errno));
    return 0;
}

void dt_tensorboard_close(dt_tensorboard *tb) {
    if (!tb) return;
    if (tb->file) fclose(tb->file);
    free(tb);
}

/* ---- resume: drop events after a step ------------------------------------------------------ */

/* The step field of an encoded Event (0 when absent); -1 when the bytes do not parse. */
static long event_step(const uint8_t *p, size_t n) {
    size_t i = 0;
    long step = 0;
    while (i < n) {
        uint64_t key = 0, v = 0;
        for (int shift = 0; i < n; shift += 7) {
            key |= (uint64_t)(p[i] & 0x7F) << shift;
            if (!(p[i++] & 0x80)) break;
            if (shift > 56) return -1;
        }
        int wire = (int)(key & 7);
        if (wire == 0 || wire == 2) {
            for (int shift = 0;; shift += 7) {
                if (i >= n || shift > 63) return -1;
                v |= (uint64_t)(p[i] & 0x7F) << shift;
                if (!(p[i++] & 0x80)) break;
            }
            if (wire == 0 && (key >> 3) == 2) step = (long)(int64_t)v;
            if (wire == 2) {
                if (v > n - i) return -1;
                i += (size_t)v;
            }
        } else if (wire == 1 || wire == 5) {
            size_t width = wire == 1 ? 8 : 4;
            if (width > n - i) return -1;
            i += width;
        } else {
            return -1;
        }
    }
    return step;
}

static int drop_after_in_file(const char *path, long last_step, dt_error *err) {
    uint8_t *bytes = NULL;
    size_t size = 0;
    if (dt_read_file(path, (size_t)1 << 34, &bytes, &size, err)) return -1;
    dt_text kept = {0};
    size_t at = 0;
    int dropped = 0;
    while (size - at >= 16) {
        uint64_t length;
        memcpy(&length, bytes + at, 8);
        if (length > size - at - 16) break; /* a record cut short by a crash: dropped */
        long step = event_step(bytes + at + 12, (size_t)length);
        if (step >= 0 && step <= last_step)
            dt_text_append(&kept, (const char *)bytes + at, (size_t)length + 16);
        else
            dropped = 1;
        at += (size_t)length + 16;
    }
    if (at != size) dropped = 1;
    free(bytes);
    int rc = 0;
    if (kept.failed)
        rc = dt_fail(err, "%s: out of memory", path);
    else if (dropped)
        rc = dt_write_file_atomic(path, kept.data ? kept.data : "", kept.length, err);
    free(kept.data);
    return rc;
}

int dt_tensorboard_drop_after(const char *dir, long last_step, dt_error *err) {
    if (dt_output_refuse_link(dir, err)) return -1;
    DIR *d = opendir(dir);
    if (!d) return errno == ENOENT ? 0 : dt_fail(err, "%s: %s", dir, strerror(errno));
    struct dirent *e;
    int rc = 0;
    while (!rc && (e = readdir(d))) {
        if (strncmp(e->d_name, "events.out.tfevents.", 20) != 0) continue;
        char path[4400];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        /* another program's event files (or an earlier run's not in the manifest) are left */
        if (dt_output_owned(path)) rc = drop_after_in_file(path, last_step, err);
    }
    closedir(d);
    return rc;
}
