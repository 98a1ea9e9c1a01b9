/* TensorBoard event files as bytes: CRC-32C and TFRecord framing, the protobuf fields of a scalar
 * event, the PNG of an image summary (decoded again), and dropping the events after a step for a
 * resumed run. TensorBoard's own reader is run on a training run's files by tests/CMakeLists.txt,
 * section results. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "dtrain/data.h"
#include "dtrain/tensorboard.h"
#include "imagegen.h"

static const uint8_t *find_bytes(const uint8_t *hay, size_t size, const void *needle, size_t n) {
    for (size_t i = 0; hay && i + n <= size; i++)
        if (memcmp(hay + i, needle, n) == 0) return hay + i;
    return NULL;
}

/* The single event file in dir, read whole. */
static uint8_t *read_event_file(const char *dir, size_t *size) {
    DIR *d = opendir(dir);
    struct dirent *e;
    char path[1024] = "";
    int files = 0;
    while (d && (e = readdir(d)))
        if (strncmp(e->d_name, "events.out.tfevents.", 20) == 0) {
            snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
            files++;
        }
    if (d) closedir(d);
    CHECK_INT_EQ(files, 1);
    uint8_t *bytes = NULL;
    dt_error err = {{0}, 0};
    if (!path[0] || dt_testgen_read_file(path, &bytes, size, &err)) return NULL;
    return bytes;
}

/* Walks the records, checking both CRCs of each; returns their count and the step varints. */
static int walk_records(const uint8_t *bytes, size_t size, long *steps, int max) {
    size_t at = 0;
    int n = 0;
    while (at + 16 <= size && n < max) {
        uint64_t length;
        uint32_t length_crc, data_crc;
        memcpy(&length, bytes + at, 8);
        memcpy(&length_crc, bytes + at + 8, 4);
        if (length > size - at - 16) break;
        memcpy(&data_crc, bytes + at + 12 + length, 4);
        CHECK(length_crc == dt_tfrecord_masked_crc(bytes + at, 8));
        CHECK(data_crc == dt_tfrecord_masked_crc(bytes + at + 12, (size_t)length));
        const uint8_t *event = bytes + at + 12;
        /* Event: 0x09 + 8-byte wall_time, then 0x10 + step varint */
        CHECK(event[0] == 0x09 && event[9] == 0x10);
        long step = 0;
        for (int i = 10, shift = 0; i < 20; i++, shift += 7) {
            step |= (long)(event[i] & 0x7F) << shift;
            if (!(event[i] & 0x80)) break;
        }
        steps[n++] = step;
        at += (size_t)length + 16;
    }
    CHECK_INT_EQ(at, size);
    return n;
}

static void test_crc(void) {
    CHECK_INT_EQ(dt_crc32c("123456789", 9), 0xE3069283u); /* the CRC-32C check value */
    CHECK_INT_EQ(dt_crc32c("", 0), 0);
    uint32_t crc = dt_crc32c("a", 1);
    CHECK_INT_EQ(dt_tfrecord_masked_crc("a", 1), ((crc >> 15) | (crc << 17)) + 0xa282ead8u);
}

static void test_event_file(const char *dir) {
    dt_tensorboard *tb = NULL;
    dt_error err = {{0}, 0};
    CHECK_MSG(dt_tensorboard_open(dir, &tb, &err) == 0, "%s", err.message);
    if (!tb) return;
    for (long step = 1; step <= 5; step++)
        CHECK(dt_tensorboard_scalar(tb, "train/loss", step * 10, 1.5f / (float)step, &err) == 0);
    uint8_t rgb[6 * 4 * 3];
    for (int i = 0; i < (int)sizeof rgb; i++) rgb[i] = (uint8_t)(i * 7);
    CHECK(dt_tensorboard_image(tb, "eval/predictions", 50, rgb, 6, 4, &err) == 0);
    dt_tensorboard_close(tb);

    size_t size = 0;
    uint8_t *bytes = read_event_file(dir, &size);
    long steps[16];
    int n = bytes ? walk_records(bytes, size, steps, 16) : 0;
    CHECK_INT_EQ(n, 7); /* file_version, 5 scalars, 1 image */
    if (n == 7) {
        CHECK_INT_EQ(steps[1], 10);
        CHECK_INT_EQ(steps[6], 50);
    }
    /* the version record and the scalar's tag and value, as protobuf bytes */
    CHECK(bytes && find_bytes(bytes, size,
                              "\x1a\x0d"
                              "brain.Event:2",
                              15));
    float value = 1.5f;
    uint8_t scalar[16] = {0x0a, 10, 't', 'r', 'a', 'i', 'n', '/', 'l', 'o', 's', 's', 0x15};
    memcpy(scalar + 13, &value, 3); /* the first 3 bytes of the float suffice to locate it */
    CHECK(bytes && find_bytes(bytes, size, scalar, 16) != NULL);
    /* the PNG inside decodes to the pixels */
    const uint8_t *png = bytes ? find_bytes(bytes, size, "\x89PNG", 4) : NULL;
    CHECK(png != NULL);
    if (png) {
        dt_image img;
        CHECK_MSG(dt_image_decode_memory(png, size - (size_t)(png - bytes), "summary.png", &img,
                                         &err) == 0,
                  "%s", err.message);
        CHECK(img.width == 6 && img.height == 4 && memcmp(img.pixels, rgb, sizeof rgb) == 0);
        dt_image_free(&img);
    }
    free(bytes);

    /* a resume from step 30 drops the events of steps 40, 50 and keeps the rest */
    CHECK_MSG(dt_tensorboard_drop_after(dir, 30, &err) == 0, "%s", err.message);
    bytes = read_event_file(dir, &size);
    n = bytes ? walk_records(bytes, size, steps, 16) : 0;
    CHECK_INT_EQ(n, 4);
    if (n == 4) CHECK_INT_EQ(steps[3], 30);
    free(bytes);

    /* a new run in the same folder drops everything (as metrics.jsonl is truncated) */
    CHECK_MSG(dt_tensorboard_drop_after(dir, -1, &err) == 0, "%s", err.message);
    bytes = read_event_file(dir, &size);
    CHECK_INT_EQ(size, 0);
    free(bytes);
}

int main(void) {
    test_crc();
    char dir[512];
    dt_error err = {{0}, 0};
    if (dt_testgen_make_temp_dir("dtrain-tensorboard", dir, sizeof dir, &err) == 0) {
        test_event_file(dir);
        dt_testgen_finish_temp_dir(dir);
    } else {
        CHECK_MSG(0, "%s", err.message);
    }
    return dt_test_summary("tensorboard");
}
