/* Image normalisation on the CPU: uint8 RGB rows (HWC) to float planes holding exactly
 * (p / 255 - mean) / std, the values torchvision's ToTensor + Normalize produce. A per-channel
 * table is the reference; the AVX2 and AVX-512 kernels compute the same two divisions with a
 * reciprocal and one FMA correction each, and are used only after they reproduced the table
 * bit for bit on every byte value for the given mean and std. */
#ifndef DTRAIN_CPU_NORMALIZE_H
#define DTRAIN_CPU_NORMALIZE_H

#include <stdint.h>

#include "dtrain/error.h"

typedef enum cpu_normalize_kernel {
    CPU_NORMALIZE_AUTO,   /* the fastest kernel this CPU has that passed the check */
    CPU_NORMALIZE_TABLE,  /* scalar table lookup: the reference, always available */
    CPU_NORMALIZE_AVX2,   /* 8 pixels a step */
    CPU_NORMALIZE_AVX512, /* 16 pixels a step (AVX-512 F, BW and VBMI) */
} cpu_normalize_kernel;

typedef struct cpu_normalizer {
    float table[3][256];
    float mean[3], std[3], inv_std[3];
    cpu_normalize_kernel kernel; /* never AUTO after init */
} cpu_normalizer;

/* Builds the tables and picks the kernel. A kernel asked for by name that this CPU lacks, or
 * that does not reproduce the table exactly for this mean and std, is an error; AUTO falls
 * back to the next one instead. std must be finite and non-zero. */
int cpu_normalizer_init(cpu_normalizer *normalizer, const float mean[3], const float std[3],
                        cpu_normalize_kernel wanted, dt_error *err);

/* One row of width pixels, rgb[3 * x + c], to red[x], green[x], blue[x]. */
void cpu_normalize_row(const cpu_normalizer *normalizer, const uint8_t *rgb, int width, float *red,
                       float *green, float *blue);

const char *cpu_normalize_kernel_name(cpu_normalize_kernel kernel);

#endif
