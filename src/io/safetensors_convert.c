/* Converts tensors read from a safetensors file (little-endian, possibly unaligned bytes) to float:
 * F32 copied, F16/BF16 widened exactly, F64 rounded to nearest. */
#include <string.h>

#include "dtrain/safetensors.h"

size_t dt_st_tensor_element_count(const dt_st_tensor *t) {
    size_t count = 1;
    for (int i = 0; i < t->ndim; i++) count *= (size_t)t->shape[i];
    return count;
}

static int host_is_little_endian(void) {
    const uint16_t probe = 1;
    uint8_t first;
    memcpy(&first, &probe, 1);
    return first == 1;
}

/* Loads element i of a little-endian array of width-byte values (memcpy: no alignment needed). */
static uint64_t load_le(const uint8_t *data, size_t i, size_t width, int little_endian) {
    const uint8_t *at = data + i * width;
    if (!little_endian) {
        uint64_t value = 0;
        for (size_t b = width; b-- > 0;) value = (value << 8) | at[b];
        return value;
    }
    switch (width) {
    case 2: {
        uint16_t v;
        memcpy(&v, at, 2);
        return v;
    }
    case 4: {
        uint32_t v;
        memcpy(&v, at, 4);
        return v;
    }
    default: {
        uint64_t v;
        memcpy(&v, at, 8);
        return v;
    }
    }
}

int dt_st_tensor_to_float(const dt_st_tensor *t, float *out, size_t count, dt_error *err) {
    size_t elements = dt_st_tensor_element_count(t);
    if (count != elements)
        return dt_fail(err, "tensor '%s' has %zu elements but %zu were asked for", t->name,
                       elements, count);
    size_t width = dt_st_dtype_size(t->dtype);
    if (t->dtype != DT_ST_F32 && t->dtype != DT_ST_F16 && t->dtype != DT_ST_BF16 &&
        t->dtype != DT_ST_F64)
        return dt_fail(
            err,
            "tensor '%s': dtype %s cannot be converted to float (F32, F16, BF16 or F64 expected)",
            t->name, dt_st_dtype_name(t->dtype));
    if (t->end - t->begin != count * width || (count && !t->data))
        return dt_fail(err, "tensor '%s': %zu data bytes do not hold %zu %s elements", t->name,
                       t->end - t->begin, count, dt_st_dtype_name(t->dtype));
    int little_endian = host_is_little_endian();
    if (t->dtype == DT_ST_F32 && little_endian) {
        if (count) memcpy(out, t->data, count * sizeof *out);
        return 0;
    }
    for (size_t i = 0; i < count; i++) {
        uint64_t bits = load_le(t->data, i, width, little_endian);
        switch (t->dtype) {
        case DT_ST_F16:
            out[i] = dt_f16_to_float((uint16_t)bits);
            break;
        case DT_ST_BF16:
            out[i] = dt_bf16_to_float((uint16_t)bits);
            break;
        case DT_ST_F32: {
            uint32_t narrow = (uint32_t)bits;
            memcpy(&out[i], &narrow, sizeof narrow);
            break;
        }
        default: {
            double wide;
            memcpy(&wide, &bits, sizeof wide);
            out[i] = (float)wide;
            break;
        }
        }
    }
    return 0;
}
