/* libFuzzer harness for the safetensors reader: any input is either rejected with a message that
 * names the file, or yields tensors that lie inside the file, convert to float, and survive a
 * write/read round trip unchanged. Each input is tried as a whole file and, to reach the JSON and
 * layout checks more often, as a header behind a correct length field (the first byte gives the
 * size of the data section). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dtrain/safetensors.h"

static void fail_property(const char *what, const char *detail) {
    fprintf(stderr, "fuzz_safetensors: property violated: %s (%s)\n", what, detail);
    abort();
}

static int is_float_dtype(dt_st_dtype dtype) {
    return dtype == DT_ST_F32 || dtype == DT_ST_F16 || dtype == DT_ST_BF16 || dtype == DT_ST_F64;
}

static void check_tensor(const dt_safetensors *st, const dt_st_tensor *t) {
    uint64_t header_length = 0;
    for (int i = 7; i >= 0; i--) header_length = (header_length << 8) | st->file_bytes[i];
    const uint8_t *data_section = st->file_bytes + 8 + header_length;
    const uint8_t *file_end = st->file_bytes + st->file_size;
    if (t->end < t->begin || t->data != data_section + t->begin ||
        t->end > (size_t)(file_end - data_section))
        fail_property("tensor data inside the data section", t->name);
    size_t count = dt_st_tensor_element_count(t);
    if (count * dt_st_dtype_size(t->dtype) != t->end - t->begin)
        fail_property("span equals elements times dtype size", t->name);
    if (dt_safetensors_find(st, t->name) == NULL) fail_property("find by name", t->name);
    if (!is_float_dtype(t->dtype)) return;
    float *values = malloc((count ? count : 1) * sizeof *values);
    dt_error err = {0};
    if (values && dt_st_tensor_to_float(t, values, count, &err) != 0)
        fail_property("float conversion of a valid tensor", err.message);
    free(values);
}

/* Writes the parsed file again and checks that reading it back gives the same tensors. */
static void check_round_trip(const dt_safetensors *st) {
    dt_error err = {0};
    dt_st_writer *w = dt_st_writer_create();
    for (size_t i = 0; i < st->n_tensors; i++) {
        const dt_st_tensor *t = &st->tensors[i];
        if (dt_st_writer_add(w, t->name, t->dtype, t->ndim, t->shape, t->data, &err) != 0)
            fail_property("writer accepts what the reader accepted", err.message);
    }
    for (size_t i = 0; i < st->n_metadata; i++)
        if (dt_st_writer_add_metadata(w, st->metadata[i].key, st->metadata[i].value, &err) != 0)
            fail_property("writer accepts the metadata", err.message);
    uint8_t *bytes;
    size_t size;
    if (dt_st_writer_serialize(w, &bytes, &size, &err) != 0)
        fail_property("serialize", err.message);
    dt_st_writer_destroy(w);
    dt_safetensors again;
    if (dt_safetensors_parse(bytes, size, "rewritten", &again, &err) != 0)
        fail_property("rewritten file reads back", err.message);
    if (again.n_tensors != st->n_tensors || again.n_metadata != st->n_metadata)
        fail_property("same entry counts after a round trip", "");
    for (size_t i = 0; i < st->n_tensors; i++) {
        const dt_st_tensor *t = &st->tensors[i];
        const dt_st_tensor *u = dt_safetensors_find(&again, t->name);
        size_t span = t->end - t->begin;
        if (!u || u->dtype != t->dtype || u->ndim != t->ndim ||
            memcmp(u->shape, t->shape, sizeof t->shape[0] * (size_t)t->ndim) != 0 ||
            u->end - u->begin != span || (span && memcmp(u->data, t->data, span) != 0))
            fail_property("tensor unchanged by a round trip", t->name);
    }
    for (size_t i = 0; i < st->n_metadata; i++) {
        const char *value = dt_safetensors_metadata_value(&again, st->metadata[i].key);
        if (!value || strcmp(value, st->metadata[i].value) != 0)
            fail_property("metadata unchanged by a round trip", st->metadata[i].key);
    }
    dt_safetensors_free(&again);
    free(bytes);
}

static void exercise(const uint8_t *bytes, size_t size) {
    dt_safetensors st;
    dt_error err = {0};
    if (dt_safetensors_parse(bytes, size, "fuzz", &st, &err) != 0) {
        if (strncmp(err.message, "fuzz: ", 6) != 0)
            fail_property("rejections name the file", err.message);
        return;
    }
    for (size_t i = 0; i < st.n_tensors; i++) check_tensor(&st, &st.tensors[i]);
    check_round_trip(&st);
    dt_safetensors_free(&st);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    exercise(data, size);
    if (size == 0) return 0;
    size_t header_length = size - 1, data_size = data[0];
    uint8_t *file = malloc(8 + header_length + data_size);
    if (!file) return 0;
    for (int i = 0; i < 8; i++) file[i] = (uint8_t)((uint64_t)header_length >> (8 * i));
    memcpy(file + 8, data + 1, header_length);
    for (size_t i = 0; i < data_size; i++) file[8 + header_length + i] = (uint8_t)(i * 37u + 11u);
    exercise(file, 8 + header_length + data_size);
    free(file);
    return 0;
}
