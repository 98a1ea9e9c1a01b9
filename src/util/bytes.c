/* Byte and text helpers: the growable text buffer, UTF-8 checking and decoding, FNV-1a 64. */
#include "dtrain/bytes.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Makes room for n more bytes and the terminating NUL; false (and failed set) if it cannot. */
static bool reserve(dt_text *t, size_t n) {
    if (t->failed) return false;
    if (n > SIZE_MAX / 2 - t->length) {
        t->failed = true;
        return false;
    }
    size_t needed = t->length + n + 1;
    if (needed <= t->capacity) return true;
    size_t capacity = t->capacity ? t->capacity : 256;
    while (capacity < needed) capacity *= 2;
    char *grown = realloc(t->data, capacity);
    if (!grown) {
        t->failed = true;
        return false;
    }
    t->data = grown;
    t->capacity = capacity;
    return true;
}

void dt_text_append(dt_text *t, const char *bytes, size_t n) {
    if (!reserve(t, n)) return;
    memcpy(t->data + t->length, bytes, n);
    t->length += n;
    t->data[t->length] = '\0';
}

void dt_text_printf(dt_text *t, const char *fmt, ...) {
    if (t->failed) return;
    va_list args;
    va_start(args, fmt);
    int n = vsnprintf(NULL, 0, fmt, args);
    va_end(args);
    if (n < 0) {
        t->failed = true;
        return;
    }
    if (!reserve(t, (size_t)n)) return;
    va_start(args, fmt);
    vsnprintf(t->data + t->length, (size_t)n + 1, fmt, args);
    va_end(args);
    t->length += (size_t)n;
}

void dt_text_append_csv_field(dt_text *t, const char *field) {
    if (!strpbrk(field, ",\"\r\n")) {
        dt_text_append(t, field, strlen(field));
        return;
    }
    dt_text_append(t, "\"", 1);
    for (; *field; field++)
        dt_text_append(t, *field == '"' ? "\"\"" : field, *field == '"' ? 2 : 1);
    dt_text_append(t, "\"", 1);
}

size_t dt_utf8_decode(const uint8_t *bytes, size_t available, uint32_t *code) {
    if (available == 0) return 0;
    uint8_t b0 = bytes[0];
    if (b0 < 0x80) {
        if (code) *code = b0;
        return 1;
    }
    size_t need;
    uint32_t value;
    uint8_t low = 0x80, high = 0xBF; /* allowed range of the second byte */
    if (b0 >= 0xC2 && b0 <= 0xDF) {
        need = 2;
        value = b0 & 0x1Fu;
    } else if (b0 >= 0xE0 && b0 <= 0xEF) {
        need = 3;
        value = b0 & 0x0Fu;
        if (b0 == 0xE0) low = 0xA0;  /* overlong */
        if (b0 == 0xED) high = 0x9F; /* surrogates */
    } else if (b0 >= 0xF0 && b0 <= 0xF4) {
        need = 4;
        value = b0 & 0x07u;
        if (b0 == 0xF0) low = 0x90;  /* overlong */
        if (b0 == 0xF4) high = 0x8F; /* above U+10FFFF */
    } else {
        return 0; /* a continuation byte, an overlong C0/C1 lead, or F5..FF */
    }
    if (available < need || bytes[1] < low || bytes[1] > high) return 0;
    for (size_t i = 1; i < need; i++) {
        if (bytes[i] < 0x80 || bytes[i] > 0xBF) return 0;
        value = (value << 6) | (bytes[i] & 0x3Fu);
    }
    if (code) *code = value;
    return need;
}

int dt_utf8_validate(const uint8_t *bytes, size_t length, size_t *bad_offset) {
    size_t pos = 0;
    while (pos < length) {
        size_t n = dt_utf8_decode(bytes + pos, length - pos, NULL);
        if (n == 0) {
            if (bad_offset) *bad_offset = pos;
            return -1;
        }
        pos += n;
    }
    return 0;
}

uint64_t dt_fnv1a64(uint64_t hash, const void *data, size_t size) {
    const uint8_t *bytes = data;
    for (size_t i = 0; i < size; i++) {
        hash ^= bytes[i];
        hash *= 0x100000001b3ULL; /* the FNV-1a 64 prime */
    }
    return hash;
}
