/* The safetensors dtype table: header spellings, element sizes, writer ordering. */
#include "io/safetensors_dtype.h"

#include <string.h>

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
