/* Writes safetensors files laid out byte for byte as the Python safetensors library writes them:
 * compact JSON header with "__metadata__" first (keys sorted here; Python's order is a hash
 * order), then tensors sorted by dtype alignment (largest first) and name, data in that order,
 * header padded with spaces to a multiple of 8 bytes. Files appear atomically (PATH.tmp, fsync,
 * rename, fsync of the folder).
 * Also the dtype table (header spellings, element sizes, writer order) the reader shares, and
 * the float <-> F16/BF16 conversions (exact widening, round-to-nearest-even narrowing).
 */

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dtrain/bytes.h"
#include "dtrain/durable.h"
#include "dtrain/safetensors.h"
#include "io/safetensors_internal.h"

typedef struct pending_tensor {
    char *name;
    dt_st_dtype dtype;
    int ndim;
    int64_t shape[DT_ST_MAX_DIMS];
    size_t byte_count;
    uint8_t *data; /* a copy of the caller's bytes */
} pending_tensor;

struct dt_st_writer {
    pending_tensor *tensors;
    size_t n_tensors, tensor_capacity;
    dt_st_metadata_entry *metadata;
    size_t n_metadata, metadata_capacity;
};

dt_st_writer *dt_st_writer_create(void) {
    return calloc(1, sizeof(dt_st_writer));
}

void dt_st_writer_destroy(dt_st_writer *w) {
    if (!w) return;
    for (size_t i = 0; i < w->n_tensors; i++) {
        free(w->tensors[i].name);
        free(w->tensors[i].data);
    }
    for (size_t i = 0; i < w->n_metadata; i++) {
        free(w->metadata[i].key);
        free(w->metadata[i].value);
    }
    free(w->tensors);
    free(w->metadata);
    free(w);
}

static int grow(void **array, size_t *capacity, size_t needed, size_t element_size) {
    if (needed <= *capacity) return 0;
    size_t capacity_new = *capacity ? 2 * *capacity : 16;
    void *grown = realloc(*array, capacity_new * element_size);
    if (!grown) return -1;
    *array = grown;
    *capacity = capacity_new;
    return 0;
}

int dt_st_writer_add(dt_st_writer *w, const char *name, dt_st_dtype dtype, int ndim,
                     const int64_t *shape, const void *data, dt_error *err) {
    if (!w || !name) return dt_fail(err, "safetensors writer: no writer or no tensor name");
    if (strcmp(name, "__metadata__") == 0)
        return dt_fail(err, "safetensors writer: '__metadata__' cannot name a tensor");
    if (dt_utf8_validate((const uint8_t *)name, strlen(name), NULL) != 0)
        return dt_fail(err, "safetensors writer: a tensor name is not valid UTF-8 (the header is "
                            "UTF-8 JSON)");
    if ((int)dtype < 0 || dtype >= DT_ST_DTYPE_COUNT)
        return dt_fail(err, "safetensors writer: tensor '%s': invalid dtype %d", name, (int)dtype);
    if (ndim < 0 || ndim > DT_ST_MAX_DIMS || (ndim > 0 && !shape))
        return dt_fail(err, "safetensors writer: tensor '%s': %d dimensions (0 to %d allowed)",
                       name, ndim, DT_ST_MAX_DIMS);
    size_t byte_count = dt_st_dtype_size(dtype);
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0)
            return dt_fail(err, "safetensors writer: tensor '%s': shape[%d] is %lld, must be >= 0",
                           name, i, (long long)shape[i]);
        size_t dim = (size_t)shape[i];
        if (dim != 0 && byte_count > SIZE_MAX / dim)
            return dt_fail(err, "safetensors writer: tensor '%s': too large", name);
        byte_count *= dim;
    }
    if (byte_count > 0 && !data)
        return dt_fail(err, "safetensors writer: tensor '%s': no data", name);
    for (size_t i = 0; i < w->n_tensors; i++)
        if (strcmp(w->tensors[i].name, name) == 0)
            return dt_fail(err, "safetensors writer: tensor '%s' added twice", name);
    if (grow((void **)&w->tensors, &w->tensor_capacity, w->n_tensors + 1, sizeof *w->tensors) < 0)
        return dt_fail(err, "safetensors writer: out of memory");
    pending_tensor t = {.dtype = dtype, .ndim = ndim, .byte_count = byte_count};
    for (int i = 0; i < ndim; i++) t.shape[i] = shape[i];
    t.name = strdup(name);
    t.data = malloc(byte_count ? byte_count : 1);
    if (!t.name || !t.data) {
        free(t.name);
        free(t.data);
        return dt_fail(err, "safetensors writer: tensor '%s': out of memory (%zu bytes)", name,
                       byte_count);
    }
    if (byte_count) memcpy(t.data, data, byte_count);
    w->tensors[w->n_tensors++] = t;
    return 0;
}

int dt_st_writer_add_metadata(dt_st_writer *w, const char *key, const char *value, dt_error *err) {
    if (!w || !key || !value) return dt_fail(err, "safetensors writer: no writer, key or value");
    if (dt_utf8_validate((const uint8_t *)key, strlen(key), NULL) != 0 ||
        dt_utf8_validate((const uint8_t *)value, strlen(value), NULL) != 0)
        return dt_fail(err,
                       "safetensors writer: metadata '%s' is not valid UTF-8 (the header is "
                       "UTF-8 JSON)",
                       dt_utf8_validate((const uint8_t *)key, strlen(key), NULL) ? "(key)" : key);
    for (size_t i = 0; i < w->n_metadata; i++)
        if (strcmp(w->metadata[i].key, key) == 0)
            return dt_fail(err, "safetensors writer: metadata key '%s' added twice", key);
    if (grow((void **)&w->metadata, &w->metadata_capacity, w->n_metadata + 1, sizeof *w->metadata) <
        0)
        return dt_fail(err, "safetensors writer: out of memory");
    dt_st_metadata_entry entry = {strdup(key), strdup(value)};
    if (!entry.key || !entry.value) {
        free(entry.key);
        free(entry.value);
        return dt_fail(err, "safetensors writer: out of memory");
    }
    w->metadata[w->n_metadata++] = entry;
    return 0;
}

static void append_text(dt_text *b, const char *text) {
    dt_text_append(b, text, strlen(text));
}

/* A JSON string escaped as serde_json escapes it: \" \\ \b \f \n \r \t, other control characters
 * as \u00xx, everything else (UTF-8 included) as is. */
static void append_json_string(dt_text *b, const char *text) {
    dt_text_append(b, "\"", 1);
    for (const unsigned char *c = (const unsigned char *)text; *c; c++) {
        char escape[8];
        switch (*c) {
        case '"':
            dt_text_append(b, "\\\"", 2);
            break;
        case '\\':
            dt_text_append(b, "\\\\", 2);
            break;
        case '\b':
            dt_text_append(b, "\\b", 2);
            break;
        case '\f':
            dt_text_append(b, "\\f", 2);
            break;
        case '\n':
            dt_text_append(b, "\\n", 2);
            break;
        case '\r':
            dt_text_append(b, "\\r", 2);
            break;
        case '\t':
            dt_text_append(b, "\\t", 2);
            break;
        default:
            if (*c < 0x20) {
                snprintf(escape, sizeof escape, "\\u%04x", *c);
                append_text(b, escape);
            } else {
                dt_text_append(b, (const char *)c, 1);
            }
        }
    }
    dt_text_append(b, "\"", 1);
}

static int compare_tensor_order(const void *a, const void *b) {
    const pending_tensor *ta = *(const pending_tensor *const *)a;
    const pending_tensor *tb = *(const pending_tensor *const *)b;
    int rank_a = dt_st_dtype_alignment_rank(ta->dtype),
        rank_b = dt_st_dtype_alignment_rank(tb->dtype);
    if (rank_a != rank_b) return rank_a > rank_b ? -1 : 1;
    return strcmp(ta->name, tb->name);
}

static int compare_metadata_keys(const void *a, const void *b) {
    return strcmp(((const dt_st_metadata_entry *)a)->key, ((const dt_st_metadata_entry *)b)->key);
}

/* Builds the padded header and the order in which tensor data follows it. */
static int build_header(dt_st_writer *w, dt_text *header, pending_tensor ***order,
                        size_t *data_size, dt_error *err) {
    *order = malloc((w->n_tensors ? w->n_tensors : 1) * sizeof **order);
    if (!*order) return dt_fail(err, "safetensors writer: out of memory");
    for (size_t i = 0; i < w->n_tensors; i++) (*order)[i] = &w->tensors[i];
    qsort(*order, w->n_tensors, sizeof **order, compare_tensor_order);
    if (w->n_metadata > 1)
        qsort(w->metadata, w->n_metadata, sizeof *w->metadata, compare_metadata_keys);

    append_text(header, "{");
    if (w->n_metadata > 0) {
        append_text(header, "\"__metadata__\":{");
        for (size_t i = 0; i < w->n_metadata; i++) {
            if (i) append_text(header, ",");
            append_json_string(header, w->metadata[i].key);
            append_text(header, ":");
            append_json_string(header, w->metadata[i].value);
        }
        append_text(header, w->n_tensors ? "}," : "}");
    }
    size_t offset = 0;
    for (size_t i = 0; i < w->n_tensors; i++) {
        const pending_tensor *t = (*order)[i];
        char number[48];
        if (i) append_text(header, ",");
        append_json_string(header, t->name);
        append_text(header, ":{\"dtype\":\"");
        append_text(header, dt_st_dtype_name(t->dtype));
        append_text(header, "\",\"shape\":[");
        for (int d = 0; d < t->ndim; d++) {
            snprintf(number, sizeof number, "%s%lld", d ? "," : "", (long long)t->shape[d]);
            append_text(header, number);
        }
        if (t->byte_count > SIZE_MAX - offset) {
            free(*order);
            return dt_fail(err, "safetensors writer: total tensor size overflows");
        }
        snprintf(number, sizeof number, "],\"data_offsets\":[%zu,%zu]}", offset,
                 offset + t->byte_count);
        append_text(header, number);
        offset += t->byte_count;
    }
    append_text(header, "}");
    while (header->length % 8 != 0) append_text(header, " ");
    if (header->failed) {
        free(*order);
        return dt_fail(err, "safetensors writer: out of memory building the header");
    }
    *data_size = offset;
    return 0;
}

static void store_le64(uint8_t *out, uint64_t value) {
    for (int i = 0; i < 8; i++) out[i] = (uint8_t)(value >> (8 * i));
}

int dt_st_writer_serialize(dt_st_writer *w, uint8_t **bytes, size_t *size, dt_error *err) {
    *bytes = NULL;
    *size = 0;
    if (!w) return dt_fail(err, "safetensors writer: no writer");
    dt_text header = {0};
    pending_tensor **order = NULL;
    size_t data_size = 0;
    if (build_header(w, &header, &order, &data_size, err) < 0) {
        free(header.data);
        return -1;
    }
    size_t total = 8 + header.length + data_size;
    uint8_t *out = malloc(total);
    if (!out) {
        free(header.data);
        free(order);
        return dt_fail(err, "safetensors writer: out of memory (%zu bytes)", total);
    }
    store_le64(out, header.length);
    memcpy(out + 8, header.data, header.length);
    size_t at = 8 + header.length;
    for (size_t i = 0; i < w->n_tensors; i++) {
        if (order[i]->byte_count) memcpy(out + at, order[i]->data, order[i]->byte_count);
        at += order[i]->byte_count;
    }
    free(header.data);
    free(order);
    *bytes = out;
    *size = total;
    return 0;
}

int dt_st_writer_write(dt_st_writer *w, const char *path, dt_error *err) {
    if (!w) return dt_fail(err, "%s: no safetensors writer", path);
    uint8_t *bytes;
    size_t size;
    if (dt_st_writer_serialize(w, &bytes, &size, err) < 0) return dt_error_prefix(err, "%s", path);
    /* durable: the old file or the whole new one, never a torn file under the final name */
    int result = dt_replace_file_durably(path, bytes, size, err);
    free(bytes);
    return result;
}

/* ---- dtype table ----
 * The safetensors dtype table: header spellings, element sizes, writer ordering. */

typedef struct dtype_info {
    const char *name;
    size_t size;
    int alignment_rank; /* index in the reference Dtype enum */
} dtype_info;

/* Indexed by dt_st_dtype. The reference order is BOOL F4 F6_E2M3 F6_E3M2 U8 I8 F8_E5M2 F8_E4M3
 * F8_E8M0 I16 U16 F16 BF16 I32 U32 F32 C64 F64 I64 U64. */
static const dtype_info dtype_table[DT_ST_DTYPE_COUNT] = {
    [DT_ST_F32] = {"F32", 4, 15},        [DT_ST_F16] = {"F16", 2, 11},
    [DT_ST_BF16] = {"BF16", 2, 12},      [DT_ST_F64] = {"F64", 8, 17},
    [DT_ST_I64] = {"I64", 8, 18},        [DT_ST_I32] = {"I32", 4, 13},
    [DT_ST_I16] = {"I16", 2, 9},         [DT_ST_I8] = {"I8", 1, 5},
    [DT_ST_U8] = {"U8", 1, 4},           [DT_ST_BOOL] = {"BOOL", 1, 0},
    [DT_ST_U16] = {"U16", 2, 10},        [DT_ST_U32] = {"U32", 4, 14},
    [DT_ST_U64] = {"U64", 8, 19},        [DT_ST_F8_E5M2] = {"F8_E5M2", 1, 6},
    [DT_ST_F8_E4M3] = {"F8_E4M3", 1, 7}, [DT_ST_F8_E8M0] = {"F8_E8M0", 1, 8},
    [DT_ST_C64] = {"C64", 8, 16},
};

static int dtype_is_valid(dt_st_dtype dtype) {
    return (int)dtype >= 0 && dtype < DT_ST_DTYPE_COUNT;
}

size_t dt_st_dtype_size(dt_st_dtype dtype) {
    return dtype_is_valid(dtype) ? dtype_table[dtype].size : 0;
}

const char *dt_st_dtype_name(dt_st_dtype dtype) {
    return dtype_is_valid(dtype) ? dtype_table[dtype].name : "(invalid dtype)";
}

int dt_st_dtype_alignment_rank(dt_st_dtype dtype) {
    return dtype_is_valid(dtype) ? dtype_table[dtype].alignment_rank : -1;
}

int dt_st_dtype_from_name(const char *name, dt_st_dtype *dtype) {
    for (int i = 0; i < DT_ST_DTYPE_COUNT; i++) {
        if (strcmp(dtype_table[i].name, name) == 0) {
            *dtype = (dt_st_dtype)i;
            return 0;
        }
    }
    return -1;
}

int dt_st_dtype_is_unsupported_name(const char *name) {
    return strcmp(name, "F4") == 0 || strcmp(name, "F6_E2M3") == 0 || strcmp(name, "F6_E3M2") == 0;
}

/* ---- 16-bit floats ----
 * Conversions between float and the 16-bit float formats F16 (IEEE binary16) and BF16 (bfloat16):
 * exact widening, round-to-nearest-even narrowing, NaNs kept NaN. */

static float float_from_bits(uint32_t bits) {
    float value;
    memcpy(&value, &bits, sizeof value);
    return value;
}

static uint32_t bits_from_float(float value) {
    uint32_t bits;
    memcpy(&bits, &value, sizeof bits);
    return bits;
}

float dt_f16_to_float(uint16_t half) {
    uint32_t sign = (uint32_t)(half & 0x8000u) << 16;
    uint32_t exponent = (half >> 10) & 0x1Fu;
    uint32_t mantissa = half & 0x3FFu;
    if (exponent == 0x1F) /* infinity or NaN; the payload moves along */
        return float_from_bits(sign | 0x7F800000u | (mantissa << 13));
    if (exponent != 0) /* normal: rebias 15 -> 127 */
        return float_from_bits(sign | ((exponent + 112u) << 23) | (mantissa << 13));
    if (mantissa == 0) return float_from_bits(sign); /* signed zero */
    /* Subnormal: mantissa * 2^-24, normal as a float. Shift until the implicit bit appears. */
    uint32_t shifts = 0;
    while (!(mantissa & 0x400u)) {
        mantissa <<= 1;
        shifts++;
    }
    /* value = 1.m * 2^(-14 - shifts) */
    return float_from_bits(sign | ((113u - shifts) << 23) | ((mantissa & 0x3FFu) << 13));
}

float dt_bf16_to_float(uint16_t bits) {
    return float_from_bits((uint32_t)bits << 16);
}

uint16_t dt_float_to_f16(float value) {
    uint32_t bits = bits_from_float(value);
    uint16_t sign = (uint16_t)((bits >> 16) & 0x8000u);
    uint32_t magnitude = bits & 0x7FFFFFFFu;
    if (magnitude >= 0x7F800000u) { /* infinity, or NaN made quiet with its top payload bits */
        if (magnitude == 0x7F800000u) return sign | 0x7C00u;
        return (uint16_t)(sign | 0x7E00u | ((magnitude >> 13) & 0x3FFu));
    }
    if (magnitude >= 0x477FF000u) return sign | 0x7C00u; /* >= 65520 rounds to infinity */
    if (magnitude >= 0x38800000u) {                      /* >= 2^-14: a normal half */
        uint32_t rebiased = magnitude - 0x38000000u;     /* exponent 127 -> 15 */
        uint32_t round = 0xFFFu + ((rebiased >> 13) & 1u);
        return (uint16_t)(sign | ((rebiased + round) >> 13));
    }
    if (magnitude < 0x33000000u) return sign; /* <= 2^-25 (a tie, to even): zero */
    /* Subnormal half: m * 2^-24 with m = significand >> (126 - exponent), rounded to even. */
    uint32_t exponent = magnitude >> 23;
    uint32_t significand = (magnitude & 0x7FFFFFu) | 0x800000u;
    uint32_t shift = 126u - exponent; /* 14..24 */
    uint32_t m = significand >> shift;
    uint32_t remainder = significand & ((1u << shift) - 1u);
    uint32_t halfway = 1u << (shift - 1u);
    if (remainder > halfway || (remainder == halfway && (m & 1u))) m++;
    return (uint16_t)(sign | m); /* m may reach 0x400, the smallest normal: still correct */
}

uint16_t dt_float_to_bf16(float value) {
    uint32_t bits = bits_from_float(value);
    if ((bits & 0x7FFFFFFFu) > 0x7F800000u) /* NaN: keep the sign and top payload, make quiet */
        return (uint16_t)((bits >> 16) | 0x0040u);
    uint32_t round = 0x7FFFu + ((bits >> 16) & 1u);
    return (uint16_t)((bits + round) >> 16);
}
