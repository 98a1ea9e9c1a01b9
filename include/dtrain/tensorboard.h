/* TensorBoard event files written in C: TFRecord framing (masked CRC-32C) around hand-encoded
 * Event/Summary protocol buffers with scalar (simple_value) and PNG image values, in a file named
 * events.out.tfevents.<seconds>.<hostname> as TensorBoard's own writers name theirs. */
#ifndef DTRAIN_TENSORBOARD_H
#define DTRAIN_TENSORBOARD_H

#include <stddef.h>
#include <stdint.h>

#include "dtrain/error.h"

typedef struct dt_tensorboard dt_tensorboard;

/* Creates dir (mkdir -p) and a new event file in it, starting with the file_version record. */
int dt_tensorboard_open(const char *dir, dt_tensorboard **out, dt_error *err);
int dt_tensorboard_scalar(dt_tensorboard *tb, const char *tag, long step, float value,
                          dt_error *err);
/* An RGB image (height x width x 3), PNG-encoded. */
int dt_tensorboard_image(dt_tensorboard *tb, const char *tag, long step, const uint8_t *rgb,
                         int width, int height, dt_error *err);
/* Flushes to the file (readers see every record written so far). */
int dt_tensorboard_flush(dt_tensorboard *tb, dt_error *err);
void dt_tensorboard_close(dt_tensorboard *tb);

/* Resuming: rewrites every event file in dir that dtrain wrote (dt_output_owned) without the
 * events of steps after last_step, so a run continued from a checkpoint at last_step shows no
 * step twice; other programs' event files are never touched. Refuses a symlinked dir. */
int dt_tensorboard_drop_after(const char *dir, long last_step, dt_error *err);

/* TensorFlow's masked CRC-32C of a TFRecord: rotate right by 15, add 0xa282ead8. */
uint32_t dt_crc32c(const void *data, size_t size);
uint32_t dt_tfrecord_masked_crc(const void *data, size_t size);

/* PNG (8-bit RGB) in memory, encoded with libpng; the caller frees *png. */
int dt_png_encode_rgb(const uint8_t *rgb, int width, int height, uint8_t **png, size_t *size,
                      dt_error *err);

#endif
