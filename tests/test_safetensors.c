/* Tests of the safetensors reader and writer: byte images from the reference implementation's own
 * tests, round trips, every rejection with the message it must give, f16/bf16 conversions, and
 * unaligned data. `test_safetensors --write-sample PATH` writes the file that
 * tests/safetensors_interop.py loads with the Python safetensors library. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "dtrain/safetensors.h"

#define FILE_NAME "model.safetensors"

/* A file image: 8-byte little-endian header length, the header, then data_size bytes of data
 * (byte i is i % 251). header_length_override replaces the length field when nonzero. */
static uint8_t *make_image(const char *header, size_t data_size, uint64_t header_length_override,
                           size_t *size) {
    size_t header_length = strlen(header);
    uint64_t length_field = header_length_override ? header_length_override : header_length;
    *size = 8 + header_length + data_size;
    uint8_t *image = malloc(*size);
    for (int i = 0; i < 8; i++) image[i] = (uint8_t)(length_field >> (8 * i));
    memcpy(image + 8, header, header_length);
    for (size_t i = 0; i < data_size; i++) image[8 + header_length + i] = (uint8_t)(i % 251);
    return image;
}

/* Parses header + data and checks that it is refused with a message containing expected. */
static void expect_rejected_image(const uint8_t *image, size_t size, const char *expected,
                                  int line) {
    dt_safetensors st;
    dt_error err = {0};
    int rc = dt_safetensors_parse(image, size, FILE_NAME, &st, &err);
    dt_check_report(rc == -1, __FILE__, line, "rejected (expected \"%s\")", expected);
    dt_check_report(strstr(err.message, expected) != NULL, __FILE__, line,
                    "message \"%s\" contains \"%s\"", err.message, expected);
    dt_check_report(strncmp(err.message, FILE_NAME ": ", strlen(FILE_NAME) + 2) == 0, __FILE__,
                    line, "message \"%s\" names the file", err.message);
    dt_check_report(st.tensors == NULL && st.file_bytes == NULL, __FILE__, line,
                    "nothing left allocated after a rejection");
    if (rc == 0) dt_safetensors_free(&st);
}

static void expect_rejected(const char *header, size_t data_size, const char *expected, int line) {
    size_t size;
    uint8_t *image = make_image(header, data_size, 0, &size);
    expect_rejected_image(image, size, expected, line);
    free(image);
}
#define EXPECT_REJECTED(header, data_size, expected)                                               \
    expect_rejected(header, data_size, expected, __LINE__)

static int parse_ok(const char *header, size_t data_size, dt_safetensors *st) {
    size_t size;
    uint8_t *image = make_image(header, data_size, 0, &size);
    dt_error err = {0};
    int rc = dt_safetensors_parse(image, size, FILE_NAME, st, &err);
    CHECK_MSG(rc == 0, "parse of %s failed: %s", header, err.message);
    free(image);
    return rc;
}

/* The byte image of the reference implementation's test_serialization: tensor "attn.0", F32,
 * shape [1, 2, 3], values 0..5. */
static const uint8_t reference_attn[] = {
    64,  0,   0,   0,   0,   0,  0,  0,  123, 34, 97,  116, 116, 110, 46,  48,  34,  58,  123, 34,
    100, 116, 121, 112, 101, 34, 58, 34, 70,  51, 50,  34,  44,  34,  115, 104, 97,  112, 101, 34,
    58,  91,  49,  44,  50,  44, 51, 93, 44,  34, 100, 97,  116, 97,  95,  111, 102, 102, 115, 101,
    116, 115, 34,  58,  91,  48, 44, 50, 52,  93, 125, 125, 0,   0,   0,   0,   0,   0,   128, 63,
    0,   0,   0,   64,  0,   0,  64, 64, 0,   0,  128, 64,  0,   0,   160, 64};
/* test_empty of the reference: no tensors, without and with {"framework": "pt"} metadata. */
static const uint8_t reference_empty[] = {8,   0,   0,   0,   0,   0,   0,   0,
                                          '{', '}', ' ', ' ', ' ', ' ', ' ', ' '};
static const char reference_framework_header[] = "{\"__metadata__\":{\"framework\":\"pt\"}}     ";

static void test_reference_images(void) {
    dt_safetensors st;
    dt_error err = {0};
    CHECK_INT_EQ(dt_safetensors_parse(reference_attn, sizeof reference_attn, "attn", &st, &err), 0);
    CHECK_INT_EQ(st.n_tensors, 1);
    const dt_st_tensor *t = dt_safetensors_find(&st, "attn.0");
    CHECK(t != NULL);
    if (t) {
        CHECK_INT_EQ(t->dtype, DT_ST_F32);
        CHECK_INT_EQ(t->ndim, 3);
        CHECK_INT_EQ(t->shape[0] * 100 + t->shape[1] * 10 + t->shape[2], 123);
        CHECK_INT_EQ(t->begin, 0);
        CHECK_INT_EQ(t->end, 24);
        float values[6];
        CHECK_INT_EQ(dt_st_tensor_to_float(t, values, 6, &err), 0);
        for (int i = 0; i < 6; i++) CHECK_CLOSE(values[i], (float)i, 0, 0);
    }
    CHECK(dt_safetensors_find(&st, "attn") == NULL);
    dt_safetensors_free(&st);

    /* The writer reproduces the reference bytes exactly. */
    float data[6] = {0, 1, 2, 3, 4, 5};
    int64_t shape[3] = {1, 2, 3};
    dt_st_writer *w = dt_st_writer_create();
    CHECK_INT_EQ(dt_st_writer_add(w, "attn.0", DT_ST_F32, 3, shape, data, &err), 0);
    uint8_t *bytes;
    size_t size;
    CHECK_INT_EQ(dt_st_writer_serialize(w, &bytes, &size, &err), 0);
    CHECK_INT_EQ(size, sizeof reference_attn);
    CHECK(size == sizeof reference_attn && memcmp(bytes, reference_attn, size) == 0);
    free(bytes);
    dt_st_writer_destroy(w);

    /* The forced-alignment case: header "attn0" with shape [1,1,2,3] is padded by 7 spaces. */
    int64_t shape4[4] = {1, 1, 2, 3};
    w = dt_st_writer_create();
    CHECK_INT_EQ(dt_st_writer_add(w, "attn0", DT_ST_F32, 4, shape4, data, &err), 0);
    CHECK_INT_EQ(dt_st_writer_serialize(w, &bytes, &size, &err), 0);
    const char *expected_header =
        "{\"attn0\":{\"dtype\":\"F32\",\"shape\":[1,1,2,3],\"data_offsets\":[0,24]}}       ";
    CHECK_INT_EQ(size, 8 + 72 + 24);
    CHECK_INT_EQ(bytes[0], 72);
    CHECK(memcmp(bytes + 8, expected_header, 72) == 0);
    CHECK(memcmp(bytes + 80, data, 24) == 0);
    free(bytes);
    dt_st_writer_destroy(w);

    w = dt_st_writer_create();
    CHECK_INT_EQ(dt_st_writer_serialize(w, &bytes, &size, &err), 0);
    CHECK(size == sizeof reference_empty && memcmp(bytes, reference_empty, size) == 0);
    free(bytes);
    CHECK_INT_EQ(dt_st_writer_add_metadata(w, "framework", "pt", &err), 0);
    CHECK_INT_EQ(dt_st_writer_serialize(w, &bytes, &size, &err), 0);
    CHECK_INT_EQ(size, 48);
    CHECK(size == 48 && bytes[0] == 40 && memcmp(bytes + 8, reference_framework_header, 40) == 0);
    CHECK_INT_EQ(dt_safetensors_parse(bytes, size, "empty", &st, &err), 0);
    CHECK_INT_EQ(st.n_tensors, 0);
    CHECK_STR_EQ(dt_safetensors_metadata_value(&st, "framework"), "pt");
    dt_safetensors_free(&st);
    free(bytes);
    dt_st_writer_destroy(w);
}

static void test_round_trip(void) {
    const char *path = "test_safetensors_roundtrip.safetensors";
    float weights[2][3] = {{1.5f, -2.25f, 3.0f}, {0.0f, -0.0f, 1e-8f}};
    uint16_t halves[4], brains[4];
    float half_sources[4] = {1.0f, -65504.0f, 0.333251953125f, 6.103515625e-05f};
    for (int i = 0; i < 4; i++) {
        halves[i] = dt_float_to_f16(half_sources[i]);
        brains[i] = dt_float_to_bf16(half_sources[i] * 3.0f);
    }
    int64_t counts[5] = {-7, 0, 1, INT64_MAX, INT64_MIN};
    int64_t shape_w[2] = {2, 3}, shape_h[1] = {4}, shape_b[2] = {2, 2}, shape_c[1] = {5};
    dt_error err = {0};
    dt_st_writer *w = dt_st_writer_create();
    CHECK_INT_EQ(dt_st_writer_add(w, "layer.weight", DT_ST_F32, 2, shape_w, weights, &err), 0);
    CHECK_INT_EQ(dt_st_writer_add(w, "half", DT_ST_F16, 1, shape_h, halves, &err), 0);
    CHECK_INT_EQ(dt_st_writer_add(w, "brain", DT_ST_BF16, 2, shape_b, brains, &err), 0);
    CHECK_INT_EQ(
        dt_st_writer_add(w, "bn.num_batches_tracked", DT_ST_I64, 0, NULL, &counts[2], &err), 0);
    CHECK_INT_EQ(dt_st_writer_add(w, "counts", DT_ST_I64, 1, shape_c, counts, &err), 0);
    CHECK_INT_EQ(dt_st_writer_add(w, "a \"quoted\\\" name\n", DT_ST_U8, 0, NULL, "z", &err), 0);
    CHECK_INT_EQ(dt_st_writer_add_metadata(w, "format", "pt", &err), 0);
    CHECK_INT_EQ(dt_st_writer_add_metadata(w, "classes", "cane,gatto\tragno", &err), 0);
    /* The data is copied at add time: scribbling over the source afterwards changes nothing. */
    weights[0][0] = 99.0f;
    CHECK_INT_EQ(dt_st_writer_write(w, path, &err), 0);
    dt_st_writer_destroy(w);
    weights[0][0] = 1.5f;
    CHECK(access("test_safetensors_roundtrip.safetensors.tmp", F_OK) != 0);

    dt_safetensors st;
    CHECK_MSG(dt_safetensors_read(path, &st, &err) == 0, "read: %s", err.message);
    CHECK_INT_EQ(st.n_tensors, 6);
    CHECK_INT_EQ(st.n_metadata, 2);
    CHECK_STR_EQ(st.path, path);
    CHECK_STR_EQ(dt_safetensors_metadata_value(&st, "format"), "pt");
    CHECK_STR_EQ(dt_safetensors_metadata_value(&st, "classes"), "cane,gatto\tragno");
    /* Header order: metadata (sorted), then I64 (by name), F32, BF16, F16, U8. */
    static const char *expected_order[6] = {
        "bn.num_batches_tracked", "counts", "layer.weight", "brain", "half",
        "a \"quoted\\\" name\n"};
    size_t expected_begin = 0;
    for (int i = 0; i < 6 && (size_t)i < st.n_tensors; i++) {
        CHECK_STR_EQ(st.tensors[i].name, expected_order[i]);
        CHECK_INT_EQ(st.tensors[i].begin, expected_begin);
        expected_begin = st.tensors[i].end;
    }
    CHECK_STR_EQ(st.metadata[0].key, "classes");
    CHECK_INT_EQ(st.file_size % 8, (8 + expected_begin) % 8); /* header padded to 8 */

    const dt_st_tensor *t = dt_safetensors_find(&st, "layer.weight");
    float floats[6];
    CHECK(t && t->ndim == 2 && t->shape[0] == 2 && t->shape[1] == 3);
    if (t) {
        CHECK_INT_EQ(dt_st_tensor_to_float(t, floats, 6, &err), 0);
        CHECK(memcmp(floats, weights, sizeof floats) == 0);
        CHECK(signbit(floats[4]));
    }
    t = dt_safetensors_find(&st, "half");
    if (CHECK_MSG(t != NULL, "half found"), t) {
        CHECK_INT_EQ(t->dtype, DT_ST_F16);
        CHECK_INT_EQ(dt_st_tensor_to_float(t, floats, 4, &err), 0);
        for (int i = 0; i < 4; i++) CHECK_CLOSE(floats[i], half_sources[i], 0, 0);
    }
    t = dt_safetensors_find(&st, "brain");
    if (CHECK_MSG(t != NULL, "brain found"), t) {
        CHECK_INT_EQ(dt_st_tensor_to_float(t, floats, 4, &err), 0);
        CHECK_CLOSE(floats[0], 3.0f, 0, 0);
        CHECK_CLOSE(floats[1], -196608.0f, 0, 0); /* -65504 * 3 = -196512 rounds to -196608 */
        CHECK_CLOSE(floats[2], 1.0f, 0, 0);       /* 0.99975586 rounds to 1 in bf16 */
        CHECK_CLOSE(floats[3], 1.8310546875e-04f, 1e-7, 0);
    }
    t = dt_safetensors_find(&st, "counts");
    if (CHECK_MSG(t != NULL, "counts found"), t) {
        CHECK_INT_EQ(t->dtype, DT_ST_I64);
        int64_t back[5];
        memcpy(back, t->data, sizeof back);
        CHECK(memcmp(back, counts, sizeof back) == 0);
        CHECK_INT_EQ(dt_st_tensor_to_float(t, floats, 5, &err), -1);
        CHECK(strstr(err.message, "tensor 'counts': dtype I64 cannot be converted to float") !=
              NULL);
    }
    t = dt_safetensors_find(&st, "bn.num_batches_tracked");
    CHECK(t && t->ndim == 0 && t->end - t->begin == 8 && dt_st_tensor_element_count(t) == 1);
    t = dt_safetensors_find(&st, "a \"quoted\\\" name\n");
    CHECK(t && t->dtype == DT_ST_U8 && t->data[0] == 'z');
    dt_safetensors_free(&st);
    CHECK(st.tensors == NULL && st.n_tensors == 0);
    remove(path);
}

static void test_header_reading_rules(void) {
    dt_safetensors st;
    /* Entries in any header order are accepted when their offsets tile the data. */
    if (parse_ok("{\"b\":{\"dtype\":\"F16\",\"shape\":[2],\"data_offsets\":[8,12]},"
                 "\"a\":{\"dtype\":\"F64\",\"shape\":[],\"data_offsets\":[0,8]},"
                 "\"empty\":{\"dtype\":\"I32\",\"shape\":[0,3],\"data_offsets\":[12,12]}}",
                 12, &st) == 0) {
        CHECK_STR_EQ(st.tensors[0].name, "b");
        CHECK(st.tensors[0].data == st.tensors[1].data + 8);
        CHECK_INT_EQ(dt_st_tensor_element_count(&st.tensors[2]), 0);
        dt_safetensors_free(&st);
    }
    /* Unknown fields are ignored (as by the reference), null metadata is none, escapes decode,
     * whitespace (and the space padding) is allowed between tokens. */
    if (parse_ok("{ \"__metadata__\" : null , \"caf\\u00e9\\ud83d\\ude00\\/\\n\" : { \"extra\" : "
                 "{\"x\":[1,2.5e3,true,null,\"s\"]}, \"dtype\":\"BOOL\", \"shape\" : [ 3 ] , "
                 "\"data_offsets\":[0,3]}}\n\t  ",
                 3, &st) == 0) {
        CHECK_INT_EQ(st.n_metadata, 0);
        CHECK_STR_EQ(st.tensors[0].name, "caf\xc3\xa9\xf0\x9f\x98\x80/\n");
        CHECK_INT_EQ(st.tensors[0].dtype, DT_ST_BOOL);
        dt_safetensors_free(&st);
    }
    /* Whitespace may also lead the header (the reference's JSON reader skips it). */
    if (parse_ok(" \n\t{}", 0, &st) == 0) {
        CHECK_INT_EQ(st.n_tensors, 0);
        dt_safetensors_free(&st);
    }
    /* Known dtypes beyond dtrain's own are read (their bytes are reachable). */
    if (parse_ok("{\"q\":{\"dtype\":\"F8_E4M3\",\"shape\":[2,0],\"data_offsets\":[0,0]},"
                 "\"u\":{\"dtype\":\"U16\",\"shape\":[2],\"data_offsets\":[0,4]}}",
                 4, &st) == 0) {
        CHECK_INT_EQ(st.tensors[0].dtype, DT_ST_F8_E4M3);
        CHECK_INT_EQ(st.tensors[1].dtype, DT_ST_U16);
        dt_safetensors_free(&st);
    }
}

static void test_rejections(void) {
    size_t size;
    uint8_t *image;
    const char *good = "{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}";

    /* The 8-byte length and the file size. */
    image = make_image(good, 8, 0, &size);
    expect_rejected_image(image, 5, "file is 5 bytes, too short for the 8-byte header length",
                          __LINE__);
    expect_rejected_image(image, 0, "file is 0 bytes", __LINE__);
    free(image);
    image = make_image(good, 8, 100000001, &size);
    expect_rejected_image(image, size,
                          "header length 100000001 exceeds the limit of 100000000 bytes", __LINE__);
    free(image);
    image = make_image(good, 8, 100000000, &size); /* at the limit: refused only as truncated */
    expect_rejected_image(image, size,
                          "truncated file: header length 100000000 needs 100000008 bytes but the "
                          "file has 70",
                          __LINE__);
    free(image);
    image = make_image(good, 8, UINT64_MAX, &size);
    expect_rejected_image(image, size, "header length 18446744073709551615 exceeds the limit",
                          __LINE__);
    free(image);
    EXPECT_REJECTED(good, 6, "truncated file: the tensors need 8 bytes of data but only 6 follow");
    EXPECT_REJECTED(good, 12,
                    "4 trailing bytes after the tensor data (the data section is 12 bytes but the "
                    "tensors end at 8)");
    EXPECT_REJECTED("{}", 1, "1 trailing bytes after the tensor data");

    /* Not JSON, not UTF-8. */
    EXPECT_REJECTED("", 0, "header is empty (expected a JSON object)");
    EXPECT_REJECTED("   ", 0, "header is empty (expected a JSON object)");
    EXPECT_REJECTED("[{}]", 0, "header is not a JSON object but an array");
    EXPECT_REJECTED("\xef\xbb\xbf{}", 0,
                    "invalid JSON header: expected a value at byte 0"); /* BOM */
    EXPECT_REJECTED("{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},}", 8,
                    "invalid JSON header: expected a string key in an object at byte 54");
    EXPECT_REJECTED("{\"w\":{\"dtype\":\"F32\" \"shape\":[2]}}", 8,
                    "invalid JSON header: expected ',' or '}' in an object at byte 20");
    EXPECT_REJECTED("{\"w\":{\"dtype\":\"F32\",\"shape\":[2,],\"data_offsets\":[0,8]}}", 8,
                    "invalid JSON header: expected a value at byte 31");
    EXPECT_REJECTED("{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}} x", 8,
                    "unexpected text after the JSON value at byte 55");
    EXPECT_REJECTED("{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}", 8,
                    "unexpected end of text inside an object");
    EXPECT_REJECTED("{\"w\":{\"dtype\":\"F32\",\"shape\":[02],\"data_offsets\":[0,8]}}", 8,
                    "leading zero in a number");
    EXPECT_REJECTED("{\"w\x01\":{}}", 0, "unescaped control character in a string");
    EXPECT_REJECTED("{\"w\\x\":{}}", 0, "invalid escape in a string");
    EXPECT_REJECTED("{\"\\ud800x\":{}}", 0, "lone high surrogate");
    EXPECT_REJECTED("{\"\\udc00\":{}}", 0, "lone low surrogate");
    EXPECT_REJECTED("{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8],\"x\":tru}}", 8,
                    "invalid literal");
    char deep[400] = "{\"w\":{\"x\":";
    for (int i = 0; i < 130; i++) strcat(deep, "[");
    EXPECT_REJECTED(deep, 0, "nesting too deep");
    EXPECT_REJECTED("{\"w\xc3\x28\":{}}", 0,
                    "header is not valid UTF-8 (byte 0xC3 at header byte 3)");
    EXPECT_REJECTED("{\"\xc0\xaf\":{}}", 0, "not valid UTF-8 (byte 0xC0 at header byte 2)");
    EXPECT_REJECTED("{\"\xed\xa0\x80\":{}}", 0, "not valid UTF-8 (byte 0xED");     /* surrogate */
    EXPECT_REJECTED("{\"\xf4\x90\x80\x80\":{}}", 0, "not valid UTF-8 (byte 0xF4"); /* > U+10FFFF */
    EXPECT_REJECTED("{\"\xe2\x82\":{}}", 0, "not valid UTF-8 (byte 0xE2");         /* cut short */

    /* Entries. */
    EXPECT_REJECTED("{\"w\":{\"dtype\":\"F33\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8,
                    FILE_NAME ": tensor 'w': unknown dtype \"F33\"");
    EXPECT_REJECTED("{\"w\":{\"dtype\":\"f32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8,
                    "unknown dtype \"f32\"");
    EXPECT_REJECTED("{\"w\":{\"dtype\":\"F4\",\"shape\":[2],\"data_offsets\":[0,1]}}", 1,
                    "tensor 'w': dtype F4 (sub-byte elements) is not supported");
    EXPECT_REJECTED("{\"w\":{\"dtype\":32,\"shape\":[2],\"data_offsets\":[0,8]}}", 8,
                    "tensor 'w': dtype must be a string, found a number");
    EXPECT_REJECTED("{\"w\":{\"dtype\":\"F32\",\"shape\":[2,-3],\"data_offsets\":[0,8]}}", 8,
                    "tensor 'w': shape[1] is -3, must be a non-negative integer");
    EXPECT_REJECTED("{\"w\":{\"dtype\":\"F32\",\"shape\":[2.5],\"data_offsets\":[0,8]}}", 8,
                    "tensor 'w': shape[0] is 2.5, must be a non-negative integer");
    EXPECT_REJECTED("{\"w\":{\"dtype\":\"F32\",\"shape\":[-0,2],\"data_offsets\":[0,8]}}", 8,
                    "tensor 'w': shape[0] is -0, must be a non-negative integer");
    EXPECT_REJECTED("{\"w\":{\"dtype\":\"F32\",\"shape\":[2e0],\"data_offsets\":[0,8]}}", 8,
                    "shape[0] is 2e0, must be a non-negative integer");
    EXPECT_REJECTED("{\"w\":{\"dtype\":\"F32\",\"shape\":[\"2\"],\"data_offsets\":[0,8]}}", 8,
                    "shape[0] must be a non-negative integer, found a string");
    EXPECT_REJECTED("{\"w\":{\"dtype\":\"F32\",\"shape\":2,\"data_offsets\":[0,8]}}", 8,
                    "tensor 'w': shape must be an array, found a number");
    EXPECT_REJECTED(
        "{\"w\":{\"dtype\":\"F32\",\"shape\":[18446744073709551616],\"data_offsets\":[0,8]}}", 8,
        "shape[0] is 18446744073709551616, too large");
    EXPECT_REJECTED(
        "{\"w\":{\"dtype\":\"U8\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,1]}}", 1,
        "tensor 'w': shape has more than 8 dimensions");
    EXPECT_REJECTED("{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8,8]}}", 8,
                    "tensor 'w': data_offsets must have exactly 2 entries");
    EXPECT_REJECTED("{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8]}}", 8,
                    "data_offsets must have exactly 2 entries");
    EXPECT_REJECTED("{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,-8]}}", 8,
                    "tensor 'w': data_offsets[1] is -8, must be a non-negative integer");
    EXPECT_REJECTED("{\"w\":{\"dtype\":\"F32\",\"shape\":[2]}}", 0,
                    "tensor 'w': missing field \"data_offsets\"");
    EXPECT_REJECTED(
        "{\"w\":[1,2]}", 0,
        "tensor 'w': expected an object with dtype, shape and data_offsets, found an array");
    EXPECT_REJECTED(
        "{\"w\":{\"dtype\":\"F32\",\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8,
        "tensor 'w': duplicate field \"dtype\"");
    EXPECT_REJECTED("{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                    "\"v\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]},"
                    "\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]}}",
                    12, FILE_NAME ": duplicate tensor name 'w'");
    EXPECT_REJECTED("{\"w\\u0000x\":{}}", 0, "a header key contains a NUL character");

    /* Metadata. */
    EXPECT_REJECTED("{\"__metadata__\":{\"epochs\":5}}", 0,
                    FILE_NAME ": __metadata__ 'epochs': value must be a string, found a number");
    EXPECT_REJECTED("{\"__metadata__\":[\"a\"]}", 0,
                    "__metadata__ must be an object of strings, found an array");
    EXPECT_REJECTED("{\"__metadata__\":{\"k\":\"a\",\"k\":\"b\"}}", 0,
                    "duplicate __metadata__ key 'k'");
    EXPECT_REJECTED("{\"__metadata__\":{},\"__metadata__\":{}}", 0,
                    "duplicate key \"__metadata__\"");

    /* Layout: after sorting by offset the tensors must tile the data exactly. */
    EXPECT_REJECTED("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                    "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}",
                    12,
                    FILE_NAME ": tensor 'b': data_offsets [4, 12] overlap tensor 'a' "
                              "(data_offsets [0, 8])");
    EXPECT_REJECTED("{\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]},"
                    "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}",
                    12,
                    FILE_NAME ": tensor 'b': data_offsets [8, 12] leave a hole of 4 bytes after "
                              "tensor 'a' (which ends at 4)");
    EXPECT_REJECTED("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8,
                    "tensor 'a': data_offsets [4, 8] leave a hole of 4 bytes at the start");
    EXPECT_REJECTED("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                    "\"b\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[4,0]}}",
                    4, "tensor 'b': data_offsets [4, 0] end before they begin");
    EXPECT_REJECTED("{\"conv1.weight\":{\"dtype\":\"F32\",\"shape\":[64,3,7,7],"
                    "\"data_offsets\":[0,100]}}",
                    100,
                    FILE_NAME ": tensor 'conv1.weight': data_offsets [0, 100] span 100 bytes but "
                              "shape [64, 3, 7, 7] of F32 needs 37632");
    EXPECT_REJECTED("{\"s\":{\"dtype\":\"F64\",\"shape\":[],\"data_offsets\":[0,4]}}", 4,
                    "tensor 's': data_offsets [0, 4] span 4 bytes but shape [] of F64 needs 8");
    EXPECT_REJECTED("{\"big\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,2],"
                    "\"data_offsets\":[0,8]}}",
                    8,
                    "tensor 'big': shape [4294967296, 4294967296, 2] of F32 is too large (its "
                    "byte count overflows)");
    EXPECT_REJECTED("{\"big\":{\"dtype\":\"F32\",\"shape\":[4611686018427387904],"
                    "\"data_offsets\":[0,8]}}",
                    8, "of F32 is too large");
}

static void test_read_errors_name_the_file(void) {
    dt_safetensors st;
    dt_error err = {0};
    CHECK_INT_EQ(dt_safetensors_read("no-such-dir/none.safetensors", &st, &err), -1);
    CHECK(strstr(err.message, "no-such-dir/none.safetensors: cannot open: No such file") != NULL);
    const char *path = "test_safetensors_bad.safetensors";
    size_t size;
    uint8_t *image =
        make_image("{\"w\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", 8, 0, &size);
    FILE *file = fopen(path, "wb");
    CHECK(file != NULL);
    if (file) {
        fwrite(image, 1, size, file);
        fclose(file);
        CHECK_INT_EQ(dt_safetensors_read(path, &st, &err), -1);
        CHECK_STR_EQ(err.message, "test_safetensors_bad.safetensors: tensor 'w': data_offsets "
                                  "[0, 8] span 8 bytes but shape [3] of F32 needs 12");
        remove(path);
    }
    free(image);
}

static void test_writer_errors(void) {
    dt_error err = {0};
    int64_t shape[2] = {2, -1};
    float data[2] = {1, 2};
    dt_st_writer *w = dt_st_writer_create();
    CHECK_INT_EQ(dt_st_writer_add(w, "x", DT_ST_F32, 1, shape, data, &err), 0);
    CHECK_INT_EQ(dt_st_writer_add(w, "x", DT_ST_F32, 1, shape, data, &err), -1);
    CHECK(strstr(err.message, "tensor 'x' added twice") != NULL);
    CHECK_INT_EQ(dt_st_writer_add(w, "y", DT_ST_F32, 2, shape, data, &err), -1);
    CHECK(strstr(err.message, "tensor 'y': shape[1] is -1") != NULL);
    CHECK_INT_EQ(dt_st_writer_add(w, "__metadata__", DT_ST_F32, 1, shape, data, &err), -1);
    CHECK_INT_EQ(dt_st_writer_add(w, "z", DT_ST_F32, 9, shape, data, &err), -1);
    CHECK_INT_EQ(dt_st_writer_add_metadata(w, "k", "v", &err), 0);
    CHECK_INT_EQ(dt_st_writer_add_metadata(w, "k", "w", &err), -1);
    CHECK(strstr(err.message, "metadata key 'k' added twice") != NULL);
    CHECK_INT_EQ(dt_st_writer_write(w, "no-such-dir/out.safetensors", &err), -1);
    CHECK(strstr(err.message, "creating no-such-dir/out.safetensors.tmp: No such file") != NULL);
    dt_st_writer_destroy(w);
}

static float bits_to_float(uint32_t bits) {
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

static void test_half_conversions(void) {
    /* Known F16 values: zero, subnormals, the normal range, infinities, NaN. */
    CHECK_CLOSE(dt_f16_to_float(0x0000), 0.0f, 0, 0);
    CHECK(signbit(dt_f16_to_float(0x8000)) && dt_f16_to_float(0x8000) == 0.0f);
    CHECK_CLOSE(dt_f16_to_float(0x0001), 5.9604644775390625e-08, 0, 0); /* 2^-24 */
    CHECK_CLOSE(dt_f16_to_float(0x03FF), 6.097555160522461e-05, 0, 0);  /* largest subnormal */
    CHECK_CLOSE(dt_f16_to_float(0x0400), 6.103515625e-05, 0, 0);        /* smallest normal */
    CHECK_CLOSE(dt_f16_to_float(0x8001), -5.9604644775390625e-08, 0, 0);
    CHECK_CLOSE(dt_f16_to_float(0x3C00), 1.0, 0, 0);
    CHECK_CLOSE(dt_f16_to_float(0xC000), -2.0, 0, 0);
    CHECK_CLOSE(dt_f16_to_float(0x3555), 0.333251953125, 0, 0);
    CHECK_CLOSE(dt_f16_to_float(0x7BFF), 65504.0, 0, 0);
    CHECK(isinf(dt_f16_to_float(0x7C00)) && dt_f16_to_float(0x7C00) > 0);
    CHECK(isinf(dt_f16_to_float(0xFC00)) && dt_f16_to_float(0xFC00) < 0);
    CHECK(isnan(dt_f16_to_float(0x7E00)) && isnan(dt_f16_to_float(0x7C01)) &&
          isnan(dt_f16_to_float(0xFFFF)));
    /* Rounding to F16: ties to even, overflow to infinity, underflow to (signed) zero. */
    CHECK_INT_EQ(dt_float_to_f16(1.0f + 0x1p-11f), 0x3C00);     /* tie, even stays */
    CHECK_INT_EQ(dt_float_to_f16(1.0f + 3 * 0x1p-11f), 0x3C02); /* tie, rounds up to even */
    CHECK_INT_EQ(dt_float_to_f16(1.0f + 0x1p-11f + 0x1p-20f), 0x3C01);
    CHECK_INT_EQ(dt_float_to_f16(65504.0f), 0x7BFF);
    CHECK_INT_EQ(dt_float_to_f16(65519.996f), 0x7BFF);
    CHECK_INT_EQ(dt_float_to_f16(65520.0f), 0x7C00);
    CHECK_INT_EQ(dt_float_to_f16(-1e10f), 0xFC00);
    CHECK_INT_EQ(dt_float_to_f16(0x1p-24f), 0x0001);
    CHECK_INT_EQ(dt_float_to_f16(0x1p-25f), 0x0000); /* tie to even: zero */
    CHECK_INT_EQ(dt_float_to_f16(0x1.8p-25f), 0x0001);
    CHECK_INT_EQ(dt_float_to_f16(0x1.8p-24f), 0x0002); /* 1.5 ulp: tie to even 2 */
    CHECK_INT_EQ(dt_float_to_f16(-0x1p-30f), 0x8000);
    CHECK_INT_EQ(dt_float_to_f16(0x1.ffcp-15f), 0x0400); /* rounds up into the normals */
    CHECK_INT_EQ(dt_float_to_f16(INFINITY), 0x7C00);
    CHECK_INT_EQ(dt_float_to_f16(NAN) & 0x7E00, 0x7E00);
    /* Every F16 value survives float and back; NaNs stay NaN. */
    int exact = 0, nan_kept = 0;
    for (uint32_t h = 0; h < 0x10000; h++) {
        float f = dt_f16_to_float((uint16_t)h);
        uint16_t back = dt_float_to_f16(f);
        if (isnan(f))
            nan_kept += (back & 0x7C00) == 0x7C00 && (back & 0x3FF) != 0;
        else
            exact += back == h;
    }
    CHECK_INT_EQ(exact, 65536 - 2046);
    CHECK_INT_EQ(nan_kept, 2046);
    /* Widening agrees with the arithmetic definition for every finite F16 value. */
    int agree = 0;
    for (uint32_t h = 0; h < 0x10000; h++) {
        int exponent = (h >> 10) & 0x1F, mantissa = h & 0x3FF;
        if (exponent == 0x1F) continue;
        double value = exponent ? ldexp(1.0 + mantissa / 1024.0, exponent - 15)
                                : ldexp(mantissa / 1024.0, -14);
        if (h & 0x8000) value = -value;
        agree += (double)dt_f16_to_float((uint16_t)h) == value;
    }
    CHECK_INT_EQ(agree, 65536 - 2048);

    /* BF16. */
    CHECK_CLOSE(dt_bf16_to_float(0x3F80), 1.0, 0, 0);
    CHECK_CLOSE(dt_bf16_to_float(0x4049), 3.140625, 0, 0);
    CHECK_CLOSE(dt_bf16_to_float(0x0001), 9.183549615799121e-41, 0, 0); /* float subnormal */
    CHECK(isinf(dt_bf16_to_float(0xFF80)) && dt_bf16_to_float(0xFF80) < 0);
    CHECK(isnan(dt_bf16_to_float(0x7FC0)) && isnan(dt_bf16_to_float(0x7F81)));
    CHECK_INT_EQ(dt_float_to_bf16(3.14159265f), 0x4049);
    CHECK_INT_EQ(dt_float_to_bf16(bits_to_float(0x3F808000)), 0x3F80); /* tie, even stays */
    CHECK_INT_EQ(dt_float_to_bf16(bits_to_float(0x3F818000)), 0x3F82); /* tie, up to even */
    CHECK_INT_EQ(dt_float_to_bf16(bits_to_float(0x3F808001)), 0x3F81);
    CHECK_INT_EQ(dt_float_to_bf16(bits_to_float(0x7F7FFFFF)), 0x7F80);          /* FLT_MAX -> inf */
    CHECK_INT_EQ(dt_float_to_bf16(bits_to_float(0x7F800001)) & 0x7FC0, 0x7FC0); /* sNaN quiet */
    int bf_exact = 0;
    for (uint32_t h = 0; h < 0x10000; h++) {
        float f = dt_bf16_to_float((uint16_t)h);
        bf_exact +=
            isnan(f) ? isnan(dt_bf16_to_float(dt_float_to_bf16(f))) : dt_float_to_bf16(f) == h;
    }
    CHECK_INT_EQ(bf_exact, 65536);
}

/* Tensors whose data starts at odd addresses convert correctly (read with memcpy). */
static void test_unaligned_data(void) {
    /* A 5-byte header pad makes the data section start at file offset 8 + N with N odd. */
    const char *header = "{\"b\":{\"dtype\":\"F16\",\"shape\":[2],\"data_offsets\":[12,16]},"
                         "\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,12]},"
                         "\"c\":{\"dtype\":\"F64\",\"shape\":[1],\"data_offsets\":[16,24]},"
                         "\"d\":{\"dtype\":\"BF16\",\"shape\":[1],\"data_offsets\":[24,26]}}  ";
    size_t header_length = strlen(header);
    CHECK(header_length % 2 == 1);
    size_t size = 8 + header_length + 26;
    uint8_t *image = malloc(size);
    for (int i = 0; i < 8; i++) image[i] = (uint8_t)((uint64_t)header_length >> (8 * i));
    memcpy(image + 8, header, header_length);
    uint8_t *data = image + 8 + header_length;
    float a[3] = {1.25f, -7.5f, 1e30f};
    uint16_t b[2] = {0x3C00, 0x0001};
    double c = 3.141592653589793;
    uint16_t d = 0xC0A0; /* -5.0 */
    memcpy(data, a, 12);
    memcpy(data + 12, b, 4);
    memcpy(data + 16, &c, 8);
    memcpy(data + 24, &d, 2);
    dt_safetensors st;
    dt_error err = {0};
    CHECK_MSG(dt_safetensors_parse(image, size, "unaligned", &st, &err) == 0, "%s", err.message);
    free(image);
    if (st.n_tensors != 4) return;
    const dt_st_tensor *ta = dt_safetensors_find(&st, "a");
    CHECK((uintptr_t)ta->data % 2 == 1);
    float out[3];
    CHECK_INT_EQ(dt_st_tensor_to_float(ta, out, 3, &err), 0);
    CHECK(memcmp(out, a, sizeof a) == 0);
    CHECK_INT_EQ(dt_st_tensor_to_float(dt_safetensors_find(&st, "b"), out, 2, &err), 0);
    CHECK_CLOSE(out[0], 1.0, 0, 0);
    CHECK_CLOSE(out[1], 5.9604644775390625e-08, 0, 0);
    CHECK_INT_EQ(dt_st_tensor_to_float(dt_safetensors_find(&st, "c"), out, 1, &err), 0);
    CHECK_CLOSE(out[0], 3.1415927f, 0, 0);
    CHECK_INT_EQ(dt_st_tensor_to_float(dt_safetensors_find(&st, "d"), out, 1, &err), 0);
    CHECK_CLOSE(out[0], -5.0, 0, 0);
    CHECK_INT_EQ(dt_st_tensor_to_float(ta, out, 2, &err), -1);
    CHECK_STR_EQ(err.message, "tensor 'a' has 3 elements but 2 were asked for");
    dt_safetensors_free(&st);
}

/* The file that tests/safetensors_interop.py compares with Python's own output. */
static int write_sample(const char *path) {
    dt_error err = {0};
    dt_st_writer *w = dt_st_writer_create();
    float weights[24];
    for (int i = 0; i < 24; i++) weights[i] = (float)i * 0.5f - 3.0f;
    uint16_t halves[3] = {dt_float_to_f16(1.0f), dt_float_to_f16(-0.5f), dt_float_to_f16(65504.0f)};
    double doubles[2] = {1.0 / 3.0, -2.5e300};
    int64_t tracked = 42;
    int32_t labels[4] = {0, -1, 2, 2147483647};
    uint8_t mask[3] = {1, 0, 1};
    int64_t shape_w[4] = {2, 3, 2, 2}, shape_3[1] = {3}, shape_2[1] = {2}, shape_4[1] = {4};
    int rc = dt_st_writer_add(w, "layer1.0.conv1.weight", DT_ST_F32, 4, shape_w, weights, &err);
    rc = rc || dt_st_writer_add(w, "fc.bias", DT_ST_F32, 1, shape_4, weights, &err);
    rc = rc || dt_st_writer_add(w, "half", DT_ST_F16, 1, shape_3, halves, &err);
    rc = rc || dt_st_writer_add(w, "doubles", DT_ST_F64, 1, shape_2, doubles, &err);
    rc = rc || dt_st_writer_add(w, "bn1.num_batches_tracked", DT_ST_I64, 0, NULL, &tracked, &err);
    rc = rc || dt_st_writer_add(w, "labels", DT_ST_I32, 1, shape_4, labels, &err);
    rc = rc || dt_st_writer_add(w, "mask", DT_ST_BOOL, 1, shape_3, mask, &err);
    rc = rc || dt_st_writer_add(w, "name \"with\" quotes\\", DT_ST_U8, 1, shape_3, mask, &err);
    rc = rc || dt_st_writer_add_metadata(w, "format", "pt", &err);
    rc = rc || dt_st_writer_write(w, path, &err);
    dt_st_writer_destroy(w);
    if (rc) fprintf(stderr, "%s\n", err.message);
    return rc ? 1 : 0;
}

int main(int argc, char **argv) {
    if (argc == 3 && strcmp(argv[1], "--write-sample") == 0) return write_sample(argv[2]);
    test_reference_images();
    test_round_trip();
    test_header_reading_rules();
    test_rejections();
    test_read_errors_name_the_file();
    test_writer_errors();
    test_half_conversions();
    test_unaligned_data();
    return dt_test_summary("safetensors");
}
