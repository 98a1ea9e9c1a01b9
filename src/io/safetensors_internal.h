/* Internal to the safetensors reader and writer (safetensors_read.c, safetensors_write.c): the
 * dtype facts both use. */
#ifndef DTRAIN_IO_SAFETENSORS_INTERNAL_H
#define DTRAIN_IO_SAFETENSORS_INTERNAL_H

#include "dtrain/safetensors.h"

/* Position in the reference implementation's Dtype enum (declared in increasing alignment order);
 * the writer orders tensors by it, largest first, as the Python library does. */
int dt_st_dtype_alignment_rank(dt_st_dtype dtype);

/* 1 when name is a dtype of the format that dtrain cannot hold (sub-byte: F4, F6_E2M3, F6_E3M2). */
int dt_st_dtype_is_unsupported_name(const char *name);

#endif
