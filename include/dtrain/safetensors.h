/* safetensors files: a validating reader and a writer (the format of PyTorch's safetensors). */
#ifndef DTRAIN_SAFETENSORS_H
#define DTRAIN_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "dtrain/error.h"

typedef enum {
    DT_ST_F32, DT_ST_F16, DT_ST_BF16, DT_ST_F64, DT_ST_I64, DT_ST_I32, DT_ST_I16, DT_ST_I8,
    DT_ST_U8, DT_ST_BOOL
} dt_st_dtype;

#define DT_ST_MAX_DIMS 8

typedef struct dt_st_tensor {
    char *name;
    dt_st_dtype dtype;
    int ndim;
    int64_t shape[DT_ST_MAX_DIMS];
    size_t begin, end;  /* byte offsets into the data section */
    const uint8_t *data; /* points into the file's data (may be unaligned) */
} dt_st_tensor;

typedef struct dt_st_metadata_entry {
    char *key;
    char *value;
} dt_st_metadata_entry;

typedef struct dt_safetensors {
    char *path;
    uint8_t *file_bytes;
    size_t file_size;
    dt_st_tensor *tensors; /* in header order */
    size_t n_tensors;
    dt_st_metadata_entry *metadata;
    size_t n_metadata;
} dt_safetensors;

/* Reads and validates the whole file. Errors name the file and the tensor or field at fault. */
int dt_safetensors_read(const char *path, dt_safetensors *st, dt_error *err);
int dt_safetensors_parse(const uint8_t *bytes, size_t size, const char *name, dt_safetensors *st,
                         dt_error *err); /* copies bytes */
void dt_safetensors_free(dt_safetensors *st);
const dt_st_tensor *dt_safetensors_find(const dt_safetensors *st, const char *name);
size_t dt_st_dtype_size(dt_st_dtype dtype);
const char *dt_st_dtype_name(dt_st_dtype dtype);

/* Converts a tensor of F32/F16/BF16/F64 to float (count = product of shape). */
int dt_st_tensor_to_float(const dt_st_tensor *t, float *out, size_t count, dt_error *err);

/* Writer: add tensors (data copied or referenced until write), then write atomically
 * (temporary file + rename). */
typedef struct dt_st_writer dt_st_writer;
dt_st_writer *dt_st_writer_create(void);
int dt_st_writer_add(dt_st_writer *w, const char *name, dt_st_dtype dtype, int ndim,
                     const int64_t *shape, const void *data, dt_error *err);
int dt_st_writer_add_metadata(dt_st_writer *w, const char *key, const char *value, dt_error *err);
int dt_st_writer_write(dt_st_writer *w, const char *path, dt_error *err);
void dt_st_writer_destroy(dt_st_writer *w);

#endif
