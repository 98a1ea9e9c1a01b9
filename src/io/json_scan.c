/* A small strict pull-style JSON scanner for the safetensors header (see json_scan.h). */
#include "io/json_scan.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void dt_json_scan_init(dt_json_scan *s, const char *text, size_t length) {
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

dt_json_scan_kind dt_json_scan_peek(dt_json_scan *s) {
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

int dt_json_scan_begin_object(dt_json_scan *s) {
    return open_container(s, DT_JSON_SCAN_OBJECT, "expected '{'");
}

int dt_json_scan_begin_array(dt_json_scan *s) {
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

int dt_json_scan_next_member(dt_json_scan *s, int *first, char **key, size_t *key_length) {
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

int dt_json_scan_next_element(dt_json_scan *s, int *first) {
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

int dt_json_scan_read_string(dt_json_scan *s, char **out, size_t *out_length) {
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

int dt_json_scan_read_number(dt_json_scan *s, dt_json_scan_number *out) {
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

int dt_json_scan_skip_value(dt_json_scan *s) {
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

int dt_json_scan_expect_end(dt_json_scan *s) {
    if (s->error[0]) return -1;
    skip_whitespace(s);
    if (s->pos != s->length) return scan_fail(s, "unexpected text after the JSON value");
    return 0;
}
