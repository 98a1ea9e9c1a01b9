/* Reads safetensors files and validates them as the reference implementation does: the 8-byte
 * little-endian header length (at most 100,000,000 and inside the file), a UTF-8 JSON header,
 * and tensor data that, sorted by offset, tiles the data section exactly (no holes, no overlaps,
 * no trailing bytes), each tensor spanning product(shape) * dtype size bytes; then converts the
 * tensors it holds to float. In the order the reader needs them: a small strict JSON scanner,
 * the header's entries, the file's layout, the conversion to float. */

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "dtrain/bytes.h"
#include "dtrain/platform.h"
#include "dtrain/safetensors.h"
#include "io/safetensors_internal.h"

/* ---- JSON scanner ----
 * A small strict pull-style JSON scanner (RFC 8259), just enough to walk a safetensors header:
 * objects, arrays, strings (escapes decoded, lone surrogates refused), numbers (integers read
 * exactly as uint64), literals. The caller drives it value by value; the first error stops it and
 * leaves a message with the byte offset where the text went wrong. The text must already be valid
 * UTF-8 (checked separately by dt_utf8_validate). */

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

static void dt_json_scan_init(dt_json_scan *s, const char *text, size_t length);

/* Kind of the next value, after skipping whitespace; consumes nothing. */
static dt_json_scan_kind dt_json_scan_peek(dt_json_scan *s);
const char *dt_json_scan_kind_name(dt_json_scan_kind kind);

/* Objects: dt_json_scan_begin_object, then dt_json_scan_next_member until it returns 0 (the closing
 * brace was consumed). next_member returns 1 with a malloc'd key (the ':' consumed, the value
 * next), 0 at the end, -1 on error. *first must start at 1. */
static int dt_json_scan_begin_object(dt_json_scan *s);
static int dt_json_scan_next_member(dt_json_scan *s, int *first, char **key, size_t *key_length);

/* Arrays: the same shape; next_element returns 1 when a value follows. */
static int dt_json_scan_begin_array(dt_json_scan *s);
static int dt_json_scan_next_element(dt_json_scan *s, int *first);

/* Reads a string value into a malloc'd, NUL-terminated buffer (it may hold \u0000 inside, hence
 * the length). */
static int dt_json_scan_read_string(dt_json_scan *s, char **out, size_t *out_length);
static int dt_json_scan_read_number(dt_json_scan *s, dt_json_scan_number *out);
/* Skips one value of any kind (nested ones included). */
static int dt_json_scan_skip_value(dt_json_scan *s);
/* Succeeds when only whitespace is left. */
static int dt_json_scan_expect_end(dt_json_scan *s);

static void dt_json_scan_init(dt_json_scan *s, const char *text, size_t length) {
    s->text = text;
    s->length = length;
    s->pos = 0;
    s->depth = 0;
    s->error[0] = '\0';
}

static int scan_fail(dt_json_scan *s, const char *what) {
    if (!s->error[0]) snprintf(s->error, sizeof s->error, "%s at byte %zu", what, s->pos);
    return -1;
}

static void skip_whitespace(dt_json_scan *s) {
    while (s->pos < s->length) {
        char c = s->text[s->pos];
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r') break;
        s->pos++;
    }
}

static dt_json_scan_kind dt_json_scan_peek(dt_json_scan *s) {
    skip_whitespace(s);
    if (s->pos >= s->length) return DT_JSON_SCAN_END;
    switch (s->text[s->pos]) {
    case '{':
        return DT_JSON_SCAN_OBJECT;
    case '[':
        return DT_JSON_SCAN_ARRAY;
    case '"':
        return DT_JSON_SCAN_STRING;
    case 't':
        return DT_JSON_SCAN_TRUE;
    case 'f':
        return DT_JSON_SCAN_FALSE;
    case 'n':
        return DT_JSON_SCAN_NULL;
    case '-':
    case '0':
    case '1':
    case '2':
    case '3':
    case '4':
    case '5':
    case '6':
    case '7':
    case '8':
    case '9':
        return DT_JSON_SCAN_NUMBER;
    default:
        return DT_JSON_SCAN_INVALID;
    }
}

const char *dt_json_scan_kind_name(dt_json_scan_kind kind) {
    switch (kind) {
    case DT_JSON_SCAN_OBJECT:
        return "an object";
    case DT_JSON_SCAN_ARRAY:
        return "an array";
    case DT_JSON_SCAN_STRING:
        return "a string";
    case DT_JSON_SCAN_NUMBER:
        return "a number";
    case DT_JSON_SCAN_TRUE:
    case DT_JSON_SCAN_FALSE:
        return "a boolean";
    case DT_JSON_SCAN_NULL:
        return "null";
    case DT_JSON_SCAN_END:
        return "the end of the text";
    case DT_JSON_SCAN_INVALID:
        break;
    }
    return "not a JSON value";
}

static int open_container(dt_json_scan *s, dt_json_scan_kind kind, const char *expected) {
    if (s->error[0]) return -1;
    if (dt_json_scan_peek(s) != kind) return scan_fail(s, expected);
    if (s->depth >= DT_JSON_SCAN_MAX_DEPTH) return scan_fail(s, "nesting too deep");
    s->pos++;
    s->depth++;
    return 0;
}

static int dt_json_scan_begin_object(dt_json_scan *s) {
    return open_container(s, DT_JSON_SCAN_OBJECT, "expected '{'");
}

static int dt_json_scan_begin_array(dt_json_scan *s) {
    return open_container(s, DT_JSON_SCAN_ARRAY, "expected '['");
}

/* Shared step of objects and arrays: consumes the closing character (returns 0) or the ',' between
 * entries (returns 1; nothing is consumed before the first entry). */
static int next_entry(dt_json_scan *s, int *first, char closing, const char *inside) {
    if (s->error[0]) return -1;
    skip_whitespace(s);
    if (s->pos >= s->length) {
        char what[64];
        snprintf(what, sizeof what, "unexpected end of text inside %s", inside);
        return scan_fail(s, what);
    }
    char c = s->text[s->pos];
    if (c == closing) {
        s->pos++;
        s->depth--;
        return 0;
    }
    if (!*first) {
        if (c != ',') {
            char what[64];
            snprintf(what, sizeof what, "expected ',' or '%c' in %s", closing, inside);
            return scan_fail(s, what);
        }
        s->pos++;
    }
    *first = 0;
    return 1;
}

static int dt_json_scan_next_member(dt_json_scan *s, int *first, char **key, size_t *key_length) {
    *key = NULL;
    int more = next_entry(s, first, '}', "an object");
    if (more <= 0) return more;
    if (dt_json_scan_peek(s) != DT_JSON_SCAN_STRING)
        return scan_fail(s, "expected a string key in an object");
    if (dt_json_scan_read_string(s, key, key_length) < 0) return -1;
    skip_whitespace(s);
    if (s->pos >= s->length || s->text[s->pos] != ':') {
        free(*key);
        *key = NULL;
        return scan_fail(s, "expected ':' after an object key");
    }
    s->pos++;
    return 1;
}

static int dt_json_scan_next_element(dt_json_scan *s, int *first) {
    return next_entry(s, first, ']', "an array");
}

static int hex_value(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Reads the four hex digits after "\u" at s->pos. */
static int read_hex4(dt_json_scan *s, unsigned *code) {
    if (s->length - s->pos < 4) return scan_fail(s, "truncated \\u escape");
    unsigned value = 0;
    for (int i = 0; i < 4; i++) {
        int digit = hex_value(s->text[s->pos + (size_t)i]);
        if (digit < 0) return scan_fail(s, "invalid hex digit in a \\u escape");
        value = value * 16 + (unsigned)digit;
    }
    s->pos += 4;
    *code = value;
    return 0;
}

static size_t encode_utf8(unsigned code, char *out) {
    if (code < 0x80) {
        out[0] = (char)code;
        return 1;
    }
    if (code < 0x800) {
        out[0] = (char)(0xC0 | (code >> 6));
        out[1] = (char)(0x80 | (code & 0x3F));
        return 2;
    }
    if (code < 0x10000) {
        out[0] = (char)(0xE0 | (code >> 12));
        out[1] = (char)(0x80 | ((code >> 6) & 0x3F));
        out[2] = (char)(0x80 | (code & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | (code >> 18));
    out[1] = (char)(0x80 | ((code >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((code >> 6) & 0x3F));
    out[3] = (char)(0x80 | (code & 0x3F));
    return 4;
}

/* Decodes the escape after a backslash (s->pos is just past the backslash). */
static int decode_escape(dt_json_scan *s, char *out, size_t *written) {
    if (s->pos >= s->length) return scan_fail(s, "unterminated string");
    char c = s->text[s->pos++];
    char simple = 0;
    switch (c) {
    case '"':
        simple = '"';
        break;
    case '\\':
        simple = '\\';
        break;
    case '/':
        simple = '/';
        break;
    case 'b':
        simple = '\b';
        break;
    case 'f':
        simple = '\f';
        break;
    case 'n':
        simple = '\n';
        break;
    case 'r':
        simple = '\r';
        break;
    case 't':
        simple = '\t';
        break;
    case 'u':
        break;
    default:
        s->pos--;
        return scan_fail(s, "invalid escape in a string");
    }
    if (c != 'u') {
        out[0] = simple;
        *written = 1;
        return 0;
    }
    unsigned code;
    if (read_hex4(s, &code) < 0) return -1;
    if (code >= 0xDC00 && code <= 0xDFFF) return scan_fail(s, "lone low surrogate in a \\u escape");
    if (code >= 0xD800 && code <= 0xDBFF) {
        if (s->length - s->pos < 2 || s->text[s->pos] != '\\' || s->text[s->pos + 1] != 'u')
            return scan_fail(s, "lone high surrogate in a \\u escape");
        s->pos += 2;
        unsigned low;
        if (read_hex4(s, &low) < 0) return -1;
        if (low < 0xDC00 || low > 0xDFFF)
            return scan_fail(s, "high surrogate not followed by a low one");
        code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00);
    }
    *written = encode_utf8(code, out);
    return 0;
}

static int dt_json_scan_read_string(dt_json_scan *s, char **out, size_t *out_length) {
    *out = NULL;
    if (s->error[0]) return -1;
    if (dt_json_scan_peek(s) != DT_JSON_SCAN_STRING) return scan_fail(s, "expected a string");
    /* First pass: find the closing quote, so the buffer can be sized (decoding never grows). */
    size_t raw_start = s->pos + 1, raw_end = raw_start;
    while (raw_end < s->length && s->text[raw_end] != '"')
        raw_end += s->text[raw_end] == '\\' ? 2 : 1;
    if (raw_end >= s->length) return scan_fail(s, "unterminated string");
    char *buffer = malloc(raw_end - raw_start + 8); /* decoding never grows; slack for safety */
    if (!buffer) return scan_fail(s, "out of memory reading a string");
    size_t used = 0;
    s->pos = raw_start;
    while (s->pos < raw_end) {
        unsigned char c = (unsigned char)s->text[s->pos];
        if (c < 0x20) {
            free(buffer);
            return scan_fail(s, "unescaped control character in a string");
        }
        if (c != '\\') {
            buffer[used++] = (char)c;
            s->pos++;
            continue;
        }
        s->pos++;
        size_t written = 0;
        if (decode_escape(s, buffer + used, &written) < 0) {
            free(buffer);
            return -1;
        }
        used += written;
    }
    if (s->pos != raw_end) { /* an escape ran over the quote found by the first pass */
        free(buffer);
        return scan_fail(s, "unterminated string");
    }
    s->pos = raw_end + 1;
    buffer[used] = '\0';
    *out = buffer;
    if (out_length) *out_length = used;
    return 0;
}

static int is_digit(dt_json_scan *s) {
    return s->pos < s->length && s->text[s->pos] >= '0' && s->text[s->pos] <= '9';
}

static int dt_json_scan_read_number(dt_json_scan *s, dt_json_scan_number *out) {
    memset(out, 0, sizeof *out);
    if (s->error[0]) return -1;
    if (dt_json_scan_peek(s) != DT_JSON_SCAN_NUMBER) return scan_fail(s, "expected a number");
    size_t start = s->pos;
    out->is_integer = 1;
    if (s->text[s->pos] == '-') {
        out->is_negative = 1;
        s->pos++;
    }
    if (!is_digit(s)) return scan_fail(s, "expected a digit");
    if (s->text[s->pos] == '0') {
        s->pos++;
        if (is_digit(s)) return scan_fail(s, "leading zero in a number");
    } else {
        while (is_digit(s)) {
            uint64_t digit = (uint64_t)(s->text[s->pos] - '0');
            if (out->magnitude > (UINT64_MAX - digit) / 10)
                out->overflows = 1;
            else
                out->magnitude = out->magnitude * 10 + digit;
            s->pos++;
        }
    }
    if (s->pos < s->length && s->text[s->pos] == '.') {
        out->is_integer = 0;
        s->pos++;
        if (!is_digit(s)) return scan_fail(s, "expected a digit after '.'");
        while (is_digit(s)) s->pos++;
    }
    if (s->pos < s->length && (s->text[s->pos] == 'e' || s->text[s->pos] == 'E')) {
        out->is_integer = 0;
        s->pos++;
        if (s->pos < s->length && (s->text[s->pos] == '+' || s->text[s->pos] == '-')) s->pos++;
        if (!is_digit(s)) return scan_fail(s, "expected a digit in an exponent");
        while (is_digit(s)) s->pos++;
    }
    if (!out->is_integer) out->overflows = 0;
    out->literal = s->text + start;
    out->literal_length = s->pos - start;
    return 0;
}

static int expect_literal(dt_json_scan *s, const char *word) {
    size_t n = strlen(word);
    if (s->length - s->pos < n || memcmp(s->text + s->pos, word, n) != 0)
        return scan_fail(s, "invalid literal");
    s->pos += n;
    return 0;
}

static int dt_json_scan_skip_value(dt_json_scan *s) {
    if (s->error[0]) return -1;
    int first = 1, more;
    switch (dt_json_scan_peek(s)) {
    case DT_JSON_SCAN_OBJECT: {
        if (dt_json_scan_begin_object(s) < 0) return -1;
        char *key;
        size_t key_length;
        while ((more = dt_json_scan_next_member(s, &first, &key, &key_length)) > 0) {
            free(key);
            if (dt_json_scan_skip_value(s) < 0) return -1;
        }
        return more;
    }
    case DT_JSON_SCAN_ARRAY:
        if (dt_json_scan_begin_array(s) < 0) return -1;
        while ((more = dt_json_scan_next_element(s, &first)) > 0)
            if (dt_json_scan_skip_value(s) < 0) return -1;
        return more;
    case DT_JSON_SCAN_STRING: {
        char *text;
        if (dt_json_scan_read_string(s, &text, NULL) < 0) return -1;
        free(text);
        return 0;
    }
    case DT_JSON_SCAN_NUMBER: {
        dt_json_scan_number number;
        return dt_json_scan_read_number(s, &number);
    }
    case DT_JSON_SCAN_TRUE:
        return expect_literal(s, "true");
    case DT_JSON_SCAN_FALSE:
        return expect_literal(s, "false");
    case DT_JSON_SCAN_NULL:
        return expect_literal(s, "null");
    case DT_JSON_SCAN_END:
        return scan_fail(s, "unexpected end of text, expected a value");
    case DT_JSON_SCAN_INVALID:
        break;
    }
    return scan_fail(s, "expected a value");
}

static int dt_json_scan_expect_end(dt_json_scan *s) {
    if (s->error[0]) return -1;
    skip_whitespace(s);
    if (s->pos != s->length) return scan_fail(s, "unexpected text after the JSON value");
    return 0;
}

/* ---- header entries ----
 * Parses the JSON header of a safetensors file into tensor and metadata entries, with the rules
 * of the reference implementation: each entry but "__metadata__" is an object with "dtype" (a
 * known name), "shape" (non-negative integers) and "data_offsets" ([begin, end]); other fields
 * are ignored; "__metadata__" maps strings to strings (or is null); no key appears twice. */

typedef struct header_parser {
    dt_json_scan scan;
    const char *name; /* the file, for messages */
    dt_safetensors *st;
    size_t tensor_capacity;
    size_t metadata_capacity;
    int seen_metadata;
    dt_error *err;
} header_parser;

/* Reports the scanner's syntax error. */
static int json_syntax_error(header_parser *p) {
    return dt_fail(p->err, "%s: invalid JSON header: %s", p->name, p->scan.error);
}

/* Names the kind of the next value for a wrong-type message, after skipping it; a value that is
 * not even well-formed is reported as the syntax error it is (then NULL is returned). */
static const char *found_kind(header_parser *p) {
    const char *name = dt_json_scan_kind_name(dt_json_scan_peek(&p->scan));
    if (dt_json_scan_skip_value(&p->scan) < 0) {
        json_syntax_error(p);
        return NULL;
    }
    return name;
}

/* Reads a non-negative integer (the reference's usize) for the field called label. */
static int read_size(header_parser *p, const char *tensor, const char *label, uint64_t limit,
                     uint64_t *out) {
    if (dt_json_scan_peek(&p->scan) != DT_JSON_SCAN_NUMBER) {
        const char *found = found_kind(p);
        if (!found) return -1;
        return dt_fail(p->err, "%s: tensor '%s': %s must be a non-negative integer, found %s",
                       p->name, tensor, label, found);
    }
    dt_json_scan_number number;
    if (dt_json_scan_read_number(&p->scan, &number) < 0) return json_syntax_error(p);
    int shown = number.literal_length > 40 ? 40 : (int)number.literal_length;
    const char *ellipsis = number.literal_length > 40 ? "..." : "";
    /* Any '-' is refused: the reference's JSON reader takes even "-0" for a float. */
    if (!number.is_integer || number.is_negative)
        return dt_fail(p->err, "%s: tensor '%s': %s is %.*s%s, must be a non-negative integer",
                       p->name, tensor, label, shown, number.literal, ellipsis);
    if (number.overflows || number.magnitude > limit)
        return dt_fail(p->err, "%s: tensor '%s': %s is %.*s%s, too large", p->name, tensor, label,
                       shown, number.literal, ellipsis);
    *out = number.magnitude;
    return 0;
}

static int parse_dtype(header_parser *p, dt_st_tensor *t) {
    if (dt_json_scan_peek(&p->scan) != DT_JSON_SCAN_STRING) {
        const char *found = found_kind(p);
        if (!found) return -1;
        return dt_fail(p->err, "%s: tensor '%s': dtype must be a string, found %s", p->name,
                       t->name, found);
    }
    char *text;
    size_t length;
    if (dt_json_scan_read_string(&p->scan, &text, &length) < 0) return json_syntax_error(p);
    int result = 0;
    if (strlen(text) == length && dt_st_dtype_from_name(text, &t->dtype) == 0) {
        result = 0;
    } else if (dt_st_dtype_is_unsupported_name(text)) {
        result = dt_fail(p->err, "%s: tensor '%s': dtype %s (sub-byte elements) is not supported",
                         p->name, t->name, text);
    } else {
        result =
            dt_fail(p->err, "%s: tensor '%s': unknown dtype \"%.40s\"", p->name, t->name, text);
    }
    free(text);
    return result;
}

static int parse_shape(header_parser *p, dt_st_tensor *t) {
    if (dt_json_scan_peek(&p->scan) != DT_JSON_SCAN_ARRAY) {
        const char *found = found_kind(p);
        if (!found) return -1;
        return dt_fail(p->err, "%s: tensor '%s': shape must be an array, found %s", p->name,
                       t->name, found);
    }
    if (dt_json_scan_begin_array(&p->scan) < 0) return json_syntax_error(p);
    int first = 1, more;
    t->ndim = 0;
    while ((more = dt_json_scan_next_element(&p->scan, &first)) > 0) {
        if (t->ndim == DT_ST_MAX_DIMS)
            return dt_fail(p->err, "%s: tensor '%s': shape has more than %d dimensions", p->name,
                           t->name, DT_ST_MAX_DIMS);
        char label[32];
        snprintf(label, sizeof label, "shape[%d]", t->ndim);
        uint64_t dim;
        if (read_size(p, t->name, label, (uint64_t)INT64_MAX, &dim) < 0) return -1;
        t->shape[t->ndim++] = (int64_t)dim;
    }
    return more < 0 ? json_syntax_error(p) : 0;
}

static int parse_data_offsets(header_parser *p, dt_st_tensor *t) {
    if (dt_json_scan_peek(&p->scan) != DT_JSON_SCAN_ARRAY) {
        const char *found = found_kind(p);
        if (!found) return -1;
        return dt_fail(p->err,
                       "%s: tensor '%s': data_offsets must be an array [begin, end], found %s",
                       p->name, t->name, found);
    }
    if (dt_json_scan_begin_array(&p->scan) < 0) return json_syntax_error(p);
    int first = 1, more, count = 0;
    uint64_t offsets[2] = {0, 0};
    while ((more = dt_json_scan_next_element(&p->scan, &first)) > 0) {
        if (count == 2) break;
        const char *label = count == 0 ? "data_offsets[0]" : "data_offsets[1]";
        if (read_size(p, t->name, label, (uint64_t)SIZE_MAX, &offsets[count]) < 0) return -1;
        count++;
    }
    if (more < 0) return json_syntax_error(p);
    if (count != 2 || more > 0)
        return dt_fail(p->err,
                       "%s: tensor '%s': data_offsets must have exactly 2 entries [begin, end]",
                       p->name, t->name);
    t->begin = (size_t)offsets[0];
    t->end = (size_t)offsets[1];
    return 0;
}

static int duplicate_field(header_parser *p, const char *tensor, const char *field) {
    return dt_fail(p->err, "%s: tensor '%s': duplicate field \"%s\"", p->name, tensor, field);
}

/* Parses the object of one tensor; takes ownership of name. */
static int parse_tensor(header_parser *p, char *name) {
    dt_safetensors *st = p->st;
    if (st->n_tensors == p->tensor_capacity) {
        size_t capacity = p->tensor_capacity ? 2 * p->tensor_capacity : 64;
        dt_st_tensor *grown = realloc(st->tensors, capacity * sizeof *grown);
        if (!grown) {
            free(name);
            return dt_fail(p->err, "%s: out of memory reading the header", p->name);
        }
        st->tensors = grown;
        p->tensor_capacity = capacity;
    }
    dt_st_tensor *t = &st->tensors[st->n_tensors++];
    memset(t, 0, sizeof *t);
    t->name = name;
    if (dt_json_scan_peek(&p->scan) != DT_JSON_SCAN_OBJECT) {
        const char *found = found_kind(p);
        if (!found) return -1;
        return dt_fail(p->err,
                       "%s: tensor '%s': expected an object with dtype, shape and data_offsets, "
                       "found %s",
                       p->name, name, found);
    }
    if (dt_json_scan_begin_object(&p->scan) < 0) return json_syntax_error(p);
    int first = 1, more, has_dtype = 0, has_shape = 0, has_offsets = 0;
    char *field;
    size_t field_length;
    while ((more = dt_json_scan_next_member(&p->scan, &first, &field, &field_length)) > 0) {
        int result;
        if (strcmp(field, "dtype") == 0) {
            result = has_dtype++ ? duplicate_field(p, name, field) : parse_dtype(p, t);
        } else if (strcmp(field, "shape") == 0) {
            result = has_shape++ ? duplicate_field(p, name, field) : parse_shape(p, t);
        } else if (strcmp(field, "data_offsets") == 0) {
            result = has_offsets++ ? duplicate_field(p, name, field) : parse_data_offsets(p, t);
        } else { /* unknown fields are ignored, as by the reference implementation */
            result = dt_json_scan_skip_value(&p->scan) < 0 ? json_syntax_error(p) : 0;
        }
        free(field);
        if (result < 0) return -1;
    }
    if (more < 0) return json_syntax_error(p);
    const char *missing = !has_dtype     ? "dtype"
                          : !has_shape   ? "shape"
                          : !has_offsets ? "data_offsets"
                                         : NULL;
    if (missing)
        return dt_fail(p->err, "%s: tensor '%s': missing field \"%s\"", p->name, name, missing);
    return 0;
}

static int add_metadata_entry(header_parser *p, char *key, char *value) {
    dt_safetensors *st = p->st;
    if (st->n_metadata == p->metadata_capacity) {
        size_t capacity = p->metadata_capacity ? 2 * p->metadata_capacity : 8;
        dt_st_metadata_entry *grown = realloc(st->metadata, capacity * sizeof *grown);
        if (!grown) {
            free(key);
            free(value);
            return dt_fail(p->err, "%s: out of memory reading the header", p->name);
        }
        st->metadata = grown;
        p->metadata_capacity = capacity;
    }
    st->metadata[st->n_metadata].key = key;
    st->metadata[st->n_metadata].value = value;
    st->n_metadata++;
    return 0;
}

/* Reads one "key": "value" entry of __metadata__ (the key already read and owned here). */
static int parse_metadata_entry(header_parser *p, char *key, size_t key_length) {
    if (dt_json_scan_peek(&p->scan) != DT_JSON_SCAN_STRING) {
        const char *found = found_kind(p);
        int result =
            found ? dt_fail(p->err, "%s: __metadata__ '%s': value must be a string, found %s",
                            p->name, key, found)
                  : -1;
        free(key);
        return result;
    }
    char *value;
    size_t value_length;
    if (dt_json_scan_read_string(&p->scan, &value, &value_length) < 0) {
        free(key);
        return json_syntax_error(p);
    }
    if (strlen(key) != key_length || strlen(value) != value_length) {
        int result = dt_fail(p->err, "%s: __metadata__ '%s': NUL characters are not supported",
                             p->name, key);
        free(key);
        free(value);
        return result;
    }
    return add_metadata_entry(p, key, value);
}

static int parse_metadata(header_parser *p) {
    if (p->seen_metadata++) return dt_fail(p->err, "%s: duplicate key \"__metadata__\"", p->name);
    dt_json_scan_kind kind = dt_json_scan_peek(&p->scan);
    if (kind == DT_JSON_SCAN_NULL) /* an absent map, as the reference reads it */
        return dt_json_scan_skip_value(&p->scan) < 0 ? json_syntax_error(p) : 0;
    if (kind != DT_JSON_SCAN_OBJECT) {
        const char *found = found_kind(p);
        if (!found) return -1;
        return dt_fail(p->err, "%s: __metadata__ must be an object of strings, found %s", p->name,
                       found);
    }
    if (dt_json_scan_begin_object(&p->scan) < 0) return json_syntax_error(p);
    int first = 1, more;
    char *key;
    size_t key_length;
    while ((more = dt_json_scan_next_member(&p->scan, &first, &key, &key_length)) > 0)
        if (parse_metadata_entry(p, key, key_length) < 0) return -1;
    return more < 0 ? json_syntax_error(p) : 0;
}

static int compare_strings(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Finds a string present twice (sorting copies of the pointers); NULL if all differ. */
static const char *find_duplicate(const char **names, size_t count) {
    qsort(names, count, sizeof *names, compare_strings);
    for (size_t i = 1; i < count; i++)
        if (strcmp(names[i - 1], names[i]) == 0) return names[i];
    return NULL;
}

static int check_duplicate_keys(header_parser *p) {
    dt_safetensors *st = p->st;
    size_t most = st->n_tensors > st->n_metadata ? st->n_tensors : st->n_metadata;
    const char **names = malloc((most ? most : 1) * sizeof *names);
    if (!names) return dt_fail(p->err, "%s: out of memory reading the header", p->name);
    for (size_t i = 0; i < st->n_tensors; i++) names[i] = st->tensors[i].name;
    const char *duplicate = find_duplicate(names, st->n_tensors);
    int result = 0;
    if (duplicate) {
        result = dt_fail(p->err, "%s: duplicate tensor name '%s'", p->name, duplicate);
    } else {
        for (size_t i = 0; i < st->n_metadata; i++) names[i] = st->metadata[i].key;
        duplicate = find_duplicate(names, st->n_metadata);
        if (duplicate)
            result = dt_fail(p->err, "%s: duplicate __metadata__ key '%s'", p->name, duplicate);
    }
    free(names);
    return result;
}

static int dt_st_parse_header(const char *text, size_t length, const char *name, dt_safetensors *st,
                              dt_error *err) {
    header_parser p = {.name = name, .st = st, .err = err};
    dt_json_scan_init(&p.scan, text, length);
    dt_json_scan_kind kind = dt_json_scan_peek(&p.scan); /* leading whitespace is allowed */
    if (kind == DT_JSON_SCAN_END)
        return dt_fail(err, "%s: header is empty (expected a JSON object)", name);
    if (kind != DT_JSON_SCAN_OBJECT) {
        const char *found = found_kind(&p);
        if (!found) return -1;
        return dt_fail(err, "%s: header is not a JSON object but %s (not a safetensors file?)",
                       name, found);
    }
    if (dt_json_scan_begin_object(&p.scan) < 0) return json_syntax_error(&p);
    int first = 1, more;
    char *key;
    size_t key_length;
    while ((more = dt_json_scan_next_member(&p.scan, &first, &key, &key_length)) > 0) {
        if (strlen(key) != key_length) {
            free(key);
            return dt_fail(err, "%s: a header key contains a NUL character", name);
        }
        int result;
        if (strcmp(key, "__metadata__") == 0) {
            free(key);
            result = parse_metadata(&p);
        } else {
            result = parse_tensor(&p, key);
        }
        if (result < 0) return -1;
    }
    if (more < 0 || dt_json_scan_expect_end(&p.scan) < 0) return json_syntax_error(&p);
    return check_duplicate_keys(&p);
}

/* ---- file layout ---- */

void dt_safetensors_free(dt_safetensors *st) {
    if (!st) return;
    for (size_t i = 0; i < st->n_tensors; i++) free(st->tensors[i].name);
    for (size_t i = 0; i < st->n_metadata; i++) {
        free(st->metadata[i].key);
        free(st->metadata[i].value);
    }
    free(st->tensors);
    free(st->metadata);
    if (st->file_mapped)
        munmap(st->file_bytes, st->file_size);
    else
        free(st->file_bytes);
    free(st->path);
    memset(st, 0, sizeof *st);
}

const dt_st_tensor *dt_safetensors_find(const dt_safetensors *st, const char *name) {
    for (size_t i = 0; i < st->n_tensors; i++)
        if (strcmp(st->tensors[i].name, name) == 0) return &st->tensors[i];
    return NULL;
}

const char *dt_safetensors_metadata_value(const dt_safetensors *st, const char *key) {
    for (size_t i = 0; i < st->n_metadata; i++)
        if (strcmp(st->metadata[i].key, key) == 0) return st->metadata[i].value;
    return NULL;
}

void dt_st_format_shape(const dt_st_tensor *t, char *out, size_t size) {
    size_t used = (size_t)snprintf(out, size, "[");
    for (int i = 0; i < t->ndim && used < size; i++)
        used += (size_t)snprintf(out + used, size - used, "%s%lld", i ? ", " : "",
                                 (long long)t->shape[i]);
    if (used < size) snprintf(out + used, size - used, "]");
}

/* Checks that the tensor's byte span matches its shape and dtype (with overflow checks). */
static int check_tensor_span(const char *name, const dt_st_tensor *t, dt_error *err) {
    /* As the reference: the element count (folded in shape order), then times the dtype size,
     * each step checked for overflow. */
    size_t elements = 1, bytes = 0, dtype_size = dt_st_dtype_size(t->dtype);
    int overflow = 0;
    for (int i = 0; i < t->ndim && !overflow; i++) {
        size_t dim = (size_t)t->shape[i];
        if (dim != 0 && elements > SIZE_MAX / dim)
            overflow = 1;
        else
            elements *= dim;
    }
    if (!overflow && elements > SIZE_MAX / dtype_size)
        overflow = 1;
    else
        bytes = elements * dtype_size;
    char shape[200];
    dt_st_format_shape(t, shape, sizeof shape);
    if (overflow)
        return dt_fail(err,
                       "%s: tensor '%s': shape %s of %s is too large (its byte count overflows)",
                       name, t->name, shape, dt_st_dtype_name(t->dtype));
    if (bytes != t->end - t->begin)
        return dt_fail(
            err,
            "%s: tensor '%s': data_offsets [%zu, %zu] span %zu bytes but shape %s of %s needs %zu",
            name, t->name, t->begin, t->end, t->end - t->begin, shape, dt_st_dtype_name(t->dtype),
            bytes);
    return 0;
}

static int compare_offsets(const void *a, const void *b) {
    const dt_st_tensor *ta = *(const dt_st_tensor *const *)a, *tb = *(const dt_st_tensor *const *)b;
    if (ta->begin != tb->begin) return ta->begin < tb->begin ? -1 : 1;
    if (ta->end != tb->end) return ta->end < tb->end ? -1 : 1;
    return ta < tb ? -1 : ta > tb; /* header order breaks ties */
}

/* Validates the data layout: sorted by (begin, end), the tensors must cover [0, data_size)
 * exactly, each with the right span. */
static int validate_layout(const char *name, const dt_safetensors *st, size_t data_size,
                           dt_error *err) {
    const dt_st_tensor **order = malloc((st->n_tensors ? st->n_tensors : 1) * sizeof *order);
    if (!order) return dt_fail(err, "%s: out of memory validating the header", name);
    for (size_t i = 0; i < st->n_tensors; i++) order[i] = &st->tensors[i];
    qsort(order, st->n_tensors, sizeof *order, compare_offsets);
    size_t expected_begin = 0;
    const dt_st_tensor *previous = NULL;
    int result = 0;
    for (size_t i = 0; i < st->n_tensors && result == 0; i++) {
        const dt_st_tensor *t = order[i];
        if (t->end < t->begin) {
            result = dt_fail(err, "%s: tensor '%s': data_offsets [%zu, %zu] end before they begin",
                             name, t->name, t->begin, t->end);
        } else if (t->begin > expected_begin && !previous) {
            result = dt_fail(err,
                             "%s: tensor '%s': data_offsets [%zu, %zu] leave a hole of %zu bytes "
                             "at the start of the data",
                             name, t->name, t->begin, t->end, t->begin);
        } else if (t->begin > expected_begin) {
            result = dt_fail(err,
                             "%s: tensor '%s': data_offsets [%zu, %zu] leave a hole of %zu bytes "
                             "after tensor '%s' (which ends at %zu)",
                             name, t->name, t->begin, t->end, t->begin - expected_begin,
                             previous->name, expected_begin);
        } else if (t->begin < expected_begin) {
            result = dt_fail(err,
                             "%s: tensor '%s': data_offsets [%zu, %zu] overlap tensor '%s' "
                             "(data_offsets [%zu, %zu])",
                             name, t->name, t->begin, t->end, previous->name, previous->begin,
                             previous->end);
        } else {
            result = check_tensor_span(name, t, err);
        }
        expected_begin = t->end;
        previous = t;
    }
    free(order);
    if (result < 0) return -1;
    if (expected_begin < data_size)
        return dt_fail(err,
                       "%s: %zu trailing bytes after the tensor data (the data section is %zu "
                       "bytes but the tensors end at %zu)",
                       name, data_size - expected_begin, data_size, expected_begin);
    if (expected_begin > data_size)
        return dt_fail(
            err,
            "%s: truncated file: the tensors need %zu bytes of data but only %zu follow the header",
            name, expected_begin, data_size);
    return 0;
}

static uint64_t read_le64(const uint8_t *bytes) {
    uint64_t value = 0;
    for (int i = 7; i >= 0; i--) value = (value << 8) | bytes[i];
    return value;
}

/* The 8-byte header length of a file of file_size bytes: within the reference limit and the
 * file. */
static int check_header_length(const uint8_t first8[8], uint64_t file_size, const char *name,
                               uint64_t *header_length, dt_error *err) {
    if (file_size < 8)
        return dt_fail(err, "%s: file is %llu bytes, too short for the 8-byte header length", name,
                       (unsigned long long)file_size);
    *header_length = read_le64(first8);
    if (*header_length > DT_ST_MAX_HEADER_SIZE)
        return dt_fail(
            err, "%s: header length %llu exceeds the limit of %u bytes (not a safetensors file?)",
            name, (unsigned long long)*header_length, DT_ST_MAX_HEADER_SIZE);
    if (*header_length > file_size - 8)
        return dt_fail(
            err, "%s: truncated file: header length %llu needs %llu bytes but the file has %llu",
            name, (unsigned long long)*header_length, (unsigned long long)*header_length + 8,
            (unsigned long long)file_size);
    return 0;
}

/* The header text (UTF-8 JSON) into st's tensors and metadata, checked against a data section of
 * data_size bytes. */
static int parse_header_text(const uint8_t *header, size_t header_length, uint64_t data_size,
                             const char *name, dt_safetensors *st, dt_error *err) {
    size_t bad_offset = 0;
    if (dt_utf8_validate(header, header_length, &bad_offset) < 0)
        return dt_fail(err, "%s: header is not valid UTF-8 (byte 0x%02X at header byte %zu)", name,
                       header[bad_offset], bad_offset);
    if (data_size > SIZE_MAX)
        return dt_fail(err, "%s: %llu bytes of tensor data do not fit in memory", name,
                       (unsigned long long)data_size);
    if (dt_st_parse_header((const char *)header, header_length, name, st, err) < 0 ||
        validate_layout(name, st, (size_t)data_size, err) < 0)
        return -1;
    return 0;
}

/* Parses a file image it takes ownership of (freed with st, also on failure). */
static int parse_owned(uint8_t *bytes, size_t size, const char *name, dt_safetensors *st,
                       dt_error *err) {
    memset(st, 0, sizeof *st);
    st->file_bytes = bytes;
    st->file_size = size;
    st->path = strdup(name);
    if (!st->path) {
        dt_safetensors_free(st);
        return dt_fail(err, "%s: out of memory", name);
    }
    uint64_t header_length = 0;
    if (check_header_length(bytes, size, name, &header_length, err) < 0 ||
        parse_header_text(bytes + 8, (size_t)header_length, size - 8 - header_length, name, st,
                          err) < 0) {
        dt_safetensors_free(st);
        return -1;
    }
    const uint8_t *data = bytes + 8 + header_length;
    for (size_t i = 0; i < st->n_tensors; i++) st->tensors[i].data = data + st->tensors[i].begin;
    return 0;
}

/* Reads exactly size bytes at offset; fails naming the file. */
static int read_exactly(int fd, void *buffer, size_t size, uint64_t offset, const char *name,
                        dt_error *err) {
    size_t got = 0;
    while (got < size) {
        ssize_t n = pread(fd, (uint8_t *)buffer + got, size - got, (off_t)(offset + got));
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return dt_fail(err, "%s: read error: %s", name, strerror(errno));
        if (n == 0) return dt_fail(err, "%s: the file shrank while being read", name);
        got += (size_t)n;
    }
    return 0;
}

int dt_safetensors_parse(const uint8_t *bytes, size_t size, const char *name, dt_safetensors *st,
                         dt_error *err) {
    if (!name) name = "(memory)";
    memset(st, 0, sizeof *st);
    uint8_t *copy = malloc(size ? size : 1);
    if (!copy) return dt_fail(err, "%s: out of memory (%zu bytes)", name, size);
    if (size) memcpy(copy, bytes, size);
    return parse_owned(copy, size, name, st, err);
}

int dt_safetensors_read(const char *path, dt_safetensors *st, dt_error *err) {
    memset(st, 0, sizeof *st);
    int fd = -1;
    uint64_t file_size = 0, header_length = 0;
    if (dt_open_regular_file(path, &fd, &file_size, err) != 0) return -1;
    uint8_t first8[8] = {0}, *header = NULL;
    int rc = -1;
    if (!(st->path = strdup(path))) {
        dt_fail(err, "%s: out of memory", path);
        goto done;
    }
    /* the length and the header, and nothing else, before anything is trusted */
    if (read_exactly(fd, first8, file_size < 8 ? 0 : 8, 0, path, err) < 0 ||
        check_header_length(first8, file_size, path, &header_length, err) < 0)
        goto done;
    if (!(header = malloc(header_length ? (size_t)header_length : 1))) {
        dt_fail(err, "%s: out of memory for a header of %llu bytes", path,
                (unsigned long long)header_length);
        goto done;
    }
    if (read_exactly(fd, header, (size_t)header_length, 8, path, err) < 0 ||
        parse_header_text(header, (size_t)header_length, file_size - 8 - header_length, path, st,
                          err) < 0)
        goto done;
    /* The layout matched the file's size: map it, so that only the pages of the tensors the
     * caller reads are ever loaded. */
    void *mapped = mmap(NULL, (size_t)file_size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (mapped == MAP_FAILED) {
        dt_fail(err, "%s: cannot map %llu bytes: %s", path, (unsigned long long)file_size,
                strerror(errno));
        goto done;
    }
    st->file_bytes = mapped;
    st->file_size = (size_t)file_size;
    st->file_mapped = 1;
    const uint8_t *data = st->file_bytes + 8 + header_length;
    for (size_t i = 0; i < st->n_tensors; i++) st->tensors[i].data = data + st->tensors[i].begin;
    rc = 0;
done:
    free(header);
    close(fd);
    if (rc) dt_safetensors_free(st);
    return rc;
}

/* ---- conversion to float ----
 * Converts tensors read from a safetensors file (little-endian, possibly unaligned bytes) to float:
 * F32 copied, F16/BF16 widened exactly, F64 rounded to nearest. */

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
