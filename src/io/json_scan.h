/* A small strict pull-style JSON scanner (RFC 8259), just enough to walk a safetensors header:
 * objects, arrays, strings (escapes decoded, lone surrogates refused), numbers (integers read
 * exactly as uint64), literals. The caller drives it value by value; the first error stops it and
 * leaves a message with the byte offset where the text went wrong. The text must already be valid
 * UTF-8 (checked separately by dt_utf8_validate). */
#ifndef DTRAIN_IO_JSON_SCAN_H
#define DTRAIN_IO_JSON_SCAN_H

#include <stddef.h>
#include <stdint.h>

#define DT_JSON_SCAN_MAX_DEPTH 128 /* nesting limit, as serde_json's default */

typedef enum {
    DT_JSON_SCAN_OBJECT,
    DT_JSON_SCAN_ARRAY,
    DT_JSON_SCAN_STRING,
    DT_JSON_SCAN_NUMBER,
    DT_JSON_SCAN_TRUE,
    DT_JSON_SCAN_FALSE,
    DT_JSON_SCAN_NULL,
    DT_JSON_SCAN_END,    /* only whitespace is left */
    DT_JSON_SCAN_INVALID /* the next character cannot start a value */
} dt_json_scan_kind;

typedef struct dt_json_scan {
    const char *text;
    size_t length;
    size_t pos;
    int depth;
    char error[160]; /* first error, "" while none */
} dt_json_scan;

typedef struct dt_json_scan_number {
    int is_integer;      /* no fraction and no exponent */
    int is_negative;     /* written with a leading '-' */
    int overflows;       /* an integer whose magnitude does not fit in uint64 */
    uint64_t magnitude;  /* absolute value when is_integer && !overflows */
    const char *literal; /* the number as written (not NUL-terminated) */
    size_t literal_length;
} dt_json_scan_number;

void dt_json_scan_init(dt_json_scan *s, const char *text, size_t length);

/* Kind of the next value, after skipping whitespace; consumes nothing. */
dt_json_scan_kind dt_json_scan_peek(dt_json_scan *s);
const char *dt_json_scan_kind_name(dt_json_scan_kind kind);

/* Objects: dt_json_scan_begin_object, then dt_json_scan_next_member until it returns 0 (the closing
 * brace was consumed). next_member returns 1 with a malloc'd key (the ':' consumed, the value
 * next), 0 at the end, -1 on error. *first must start at 1. */
int dt_json_scan_begin_object(dt_json_scan *s);
int dt_json_scan_next_member(dt_json_scan *s, int *first, char **key, size_t *key_length);

/* Arrays: the same shape; next_element returns 1 when a value follows. */
int dt_json_scan_begin_array(dt_json_scan *s);
int dt_json_scan_next_element(dt_json_scan *s, int *first);

/* Reads a string value into a malloc'd, NUL-terminated buffer (it may hold \u0000 inside, hence
 * the length). */
int dt_json_scan_read_string(dt_json_scan *s, char **out, size_t *out_length);
int dt_json_scan_read_number(dt_json_scan *s, dt_json_scan_number *out);
/* Skips one value of any kind (nested ones included). */
int dt_json_scan_skip_value(dt_json_scan *s);
/* Succeeds when only whitespace is left. */
int dt_json_scan_expect_end(dt_json_scan *s);

#endif
