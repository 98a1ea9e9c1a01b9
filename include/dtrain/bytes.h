/* Byte and text helpers shared by the config, io and data modules: a growable NUL-terminated
 * text buffer, strict UTF-8 checking and decoding, and the 64-bit FNV-1a hash. */
#ifndef DTRAIN_BYTES_H
#define DTRAIN_BYTES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A growable text buffer; start from {0} and free data when done. data is NUL-terminated after
 * the first append. A failed allocation sticks (later appends do nothing), so callers check
 * failed once at the end. */
typedef struct dt_text {
    char *data;
    size_t length, capacity;
    bool failed;
} dt_text;

void dt_text_append(dt_text *t, const char *bytes, size_t n);
void dt_text_printf(dt_text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Appends one CSV field, quoted when it holds a comma, quote or line break (RFC 4180). */
void dt_text_append_csv_field(dt_text *t, const char *field);

/* Length (1 to 4) of the well-formed UTF-8 sequence at bytes[0..available), with its code point
 * in *code (if not NULL); 0 when it is not well formed (a stray continuation byte, cut short, an
 * overlong form, a surrogate, or above U+10FFFF). */
size_t dt_utf8_decode(const uint8_t *bytes, size_t available, uint32_t *code);

/* 0 when bytes[0..length) is well-formed UTF-8; otherwise -1 and (if bad_offset is not NULL)
 * the offset of the first byte of the first bad sequence. */
int dt_utf8_validate(const uint8_t *bytes, size_t length, size_t *bad_offset);

/* 64-bit FNV-1a: start from DT_FNV1A64_INIT and feed the bytes in one or several calls. */
#define DT_FNV1A64_INIT 0xcbf29ce484222325ULL
uint64_t dt_fnv1a64(uint64_t hash, const void *data, size_t size);

#endif
