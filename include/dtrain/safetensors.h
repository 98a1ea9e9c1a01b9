/* safetensors files: a validating reader and a writer (the format of PyTorch's safetensors). */
#ifndef DTRAIN_SAFETENSORS_H
#define DTRAIN_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "dtrain/error.h"

/* Element types of the format. The first ten are the ones dtrain uses; the rest are known so that
 * files holding them can still be read (their bytes are reachable, but dt_st_tensor_to_float
 * refuses them). Sub-byte types (F4, F6_E2M3, F6_E3M2) are recognised and rejected. */
typedef enum {
    DT_ST_F32,
    DT_ST_F16,
    DT_ST_BF16,
    DT_ST_F64,
    DT_ST_I64,
    DT_ST_I32,
    DT_ST_I16,
    DT_ST_I8,
    DT_ST_U8,
    DT_ST_BOOL,
    DT_ST_U16,
    DT_ST_U32,
    DT_ST_U64,
    DT_ST_F8_E5M2,
    DT_ST_F8_E4M3,
    DT_ST_F8_E8M0,
    DT_ST_C64,
    DT_ST_DTYPE_COUNT
} dt_st_dtype;

#define DT_ST_MAX_DIMS 8
#define DT_ST_MAX_HEADER_SIZE 100000000u /* the reference implementation's limit */

typedef struct dt_st_tensor {
    char *name;
    dt_st_dtype dtype;
    int ndim;
    int64_t shape[DT_ST_MAX_DIMS];
    size_t begin, end;   /* byte offsets into the data section */
    const uint8_t *data; /* points into the file's data (may be unaligned) */
} dt_st_tensor;

typedef struct dt_st_metadata_entry {
    char *key;
    char *value;
} dt_st_metadata_entry;

typedef struct dt_safetensors {
    char *path;
    uint8_t *file_bytes; /* the whole file: a copy (parse), or mapped read-only (read) */
    size_t file_size;
    int file_mapped;       /* file_bytes is an mmap of the file (read) rather than heap memory */
    dt_st_tensor *tensors; /* in header order */
    size_t n_tensors;
    dt_st_metadata_entry *metadata;
    size_t n_metadata;
} dt_safetensors;

/* Reads and validates a file: the 8-byte length and the header first (an absurd length, a header
 * that is not UTF-8 JSON, or offsets that do not tile exactly the rest of the file are refused
 * before any tensor byte is read), then maps the file, so only the tensors used are ever read from
 * disk. Never blocks on a FIFO. Errors name the file and the tensor or field at fault. */
int dt_safetensors_read(const char *path, dt_safetensors *st, dt_error *err);
int dt_safetensors_parse(const uint8_t *bytes, size_t size, const char *name, dt_safetensors *st,
                         dt_error *err); /* copies bytes */
void dt_safetensors_free(dt_safetensors *st);
const dt_st_tensor *dt_safetensors_find(const dt_safetensors *st, const char *name);
/* The value of a "__metadata__" key, or NULL. */
const char *dt_safetensors_metadata_value(const dt_safetensors *st, const char *key);
size_t dt_st_dtype_size(dt_st_dtype dtype);
const char *dt_st_dtype_name(dt_st_dtype dtype);
/* Looks up a dtype by its header spelling ("F32", "BF16", ...); returns 0, or -1 if unknown. */
int dt_st_dtype_from_name(const char *name, dt_st_dtype *dtype);
/* Number of elements of a tensor (product of its shape; 1 for a scalar). */
size_t dt_st_tensor_element_count(const dt_st_tensor *t);
/* Writes the shape as "[64, 3, 7, 7]" ("[]" for a scalar) into out, truncating to size. */
void dt_st_format_shape(const dt_st_tensor *t, char *out, size_t size);

/* Converts a tensor of F32/F16/BF16/F64 to float (count = product of shape). */
int dt_st_tensor_to_float(const dt_st_tensor *t, float *out, size_t count, dt_error *err);

/* Scalar conversions between float and the 16-bit formats: exact IEEE widening (subnormals,
 * infinities and NaNs included) and round-to-nearest-even narrowing. */
float dt_f16_to_float(uint16_t bits);
float dt_bf16_to_float(uint16_t bits);
uint16_t dt_float_to_f16(float value);
uint16_t dt_float_to_bf16(float value);

/* Writer: add tensors (their data is copied at once, so the caller's buffer may be reused), then
 * write atomically (PATH.tmp + rename). The header is laid out as the Python safetensors library
 * lays it out: "__metadata__" first, tensors ordered by dtype alignment (largest first) then by
 * name, compact JSON padded with spaces to a multiple of 8 bytes. */
typedef struct dt_st_writer dt_st_writer;
dt_st_writer *dt_st_writer_create(void);
int dt_st_writer_add(dt_st_writer *w, const char *name, dt_st_dtype dtype, int ndim,
                     const int64_t *shape, const void *data, dt_error *err);
int dt_st_writer_add_metadata(dt_st_writer *w, const char *key, const char *value, dt_error *err);
int dt_st_writer_write(dt_st_writer *w, const char *path, dt_error *err);
/* The complete file image in memory (malloc'd; the caller frees *bytes). */
int dt_st_writer_serialize(dt_st_writer *w, uint8_t **bytes, size_t *size, dt_error *err);
void dt_st_writer_destroy(dt_st_writer *w);

#endif
