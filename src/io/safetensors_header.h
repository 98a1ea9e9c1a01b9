/* Internal: turns the JSON header of a safetensors file into dt_safetensors tensor and metadata
 * entries (names, dtypes, shapes, data offsets), checking types, fields and duplicate keys. The
 * byte layout (offsets against sizes) is checked afterwards by the reader. */
#ifndef DTRAIN_IO_SAFETENSORS_HEADER_H
#define DTRAIN_IO_SAFETENSORS_HEADER_H

#include <stddef.h>

#include "dtrain/safetensors.h"

/* text must be valid UTF-8. Fills st->tensors/n_tensors and st->metadata/n_metadata (the caller
 * frees them with dt_safetensors_free, also on failure). Messages start with "name: ". */
int dt_st_parse_header(const char *text, size_t length, const char *name, dt_safetensors *st,
                       dt_error *err);

#endif
