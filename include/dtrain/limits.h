/* Upper limits of the config's counts, shared by the config check (which refuses larger values
 * with exit code 2, naming the key) and the modules that size buffers and threads from them. */
#ifndef DTRAIN_LIMITS_H
#define DTRAIN_LIMITS_H

#define DT_MAX_THREADS 1024     /* runtime.threads: compute threads per rank */
#define DT_MAX_WORKERS 1024     /* data.workers: decode threads per rank */
#define DT_MAX_BATCH_SIZE 65536 /* train.batch_size: images per micro-batch and rank */
#define DT_MAX_ACCUMULATE 1024  /* train.accumulate: micro-batches per optimizer step */
#define DT_MAX_EPOCHS 1000000   /* train.epochs (steps are counted in 64 bits) */

/* Room kept for the longest file path dtrain builds under output.dir:
 * "/checkpoints/step-00000000/optimizer.safetensors.tmp" is 52 bytes. */
#define DT_OUTPUT_NAME_RESERVE 64

/* Batches the loader decodes ahead at most; each holds batch_size images. */
#define DT_MAX_PREFETCH_BATCHES 1024

#endif
