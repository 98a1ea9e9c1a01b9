/* libFuzzer harness for the image path (sniffing, libjpeg and libpng decoding, resize): any
 * input is either refused with a message that starts with the given name, or yields an RGB
 * image within the pixel limit that resizes cleanly in both square modes and through a region.
 * The first byte picks a DCT-scaling minimum so reduced-size JPEG decodes are fuzzed too. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dtrain/data.h"

static void fail_property(const char *what) {
    fprintf(stderr, "fuzz_image_decode: property violated: %s\n", what);
    abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    int min_side = data[0] & 0x3f; /* 0 = full size */
    dt_image img;
    dt_error err = {{0}, 0};
    if (dt_image_decode_memory_scaled(data + 1, size - 1, "input", min_side, min_side, &img,
                                      &err) != 0) {
        if (strncmp(err.message, "input: ", 7) != 0) fail_property("error names the input");
        if (img.pixels) fail_property("no pixels after an error");
        return 0;
    }
    if (!img.pixels || img.width <= 0 || img.height <= 0 ||
        (uint64_t)img.width * (uint64_t)img.height > DT_MAX_IMAGE_PIXELS)
        fail_property("a decoded image has pixels and a sane size");
    uint8_t out[12 * 12 * 3];
    if (dt_image_resize_to_square(&img, DT_RESIZE_SQUASH, 12, out, &err) != 0 ||
        dt_image_resize_to_square(&img, DT_RESIZE_CENTER, 12, out, &err) != 0 ||
        dt_image_resize_region(&img, img.width / 3, img.height / 3, img.width - img.width / 3,
                               img.height - img.height / 3, 7, 12, out, &err) != 0)
        fail_property("resizing a decoded image works");
    dt_image_free(&img);
    return 0;
}
