/* The one escaping of names for output: every console and log line passes through it (warnings,
 * errors, progress lines) and the config reader uses it to show values. */
#include "dtrain/text_escape.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "dtrain/bytes.h"

/* The escape for the character at p (n bytes, code point code; n == 0: a byte that is not
 * UTF-8), written into buffer; or NULL when the character is printed as it is. */
static const char *escape_for(const uint8_t *p, size_t n, uint32_t code, char buffer[8]) {
    if (n == 0) {
        snprintf(buffer, 8, "\\x%02X", p[0]);
        return buffer;
    }
    if (code == '\n') return "\\n";
    if (code == '\r') return "\\r";
    if (code == '\t') return "\\t";
    if (code == 0x1B) return "\\e";
    if (code < 0x20 || code == 0x7F) {
        snprintf(buffer, 8, "\\x%02X", code);
        return buffer;
    }
    if (code >= 0x80 && code <= 0x9F) { /* C1 controls, e.g. U+009B (CSI) */
        snprintf(buffer, 8, "\\u%04X", code);
        return buffer;
    }
    return NULL;
}

const char *dt_escape_text(const char *text, char *out, size_t size) {
    if (size == 0) return out;
    const uint8_t *p = (const uint8_t *)(text ? text : "(null)");
    size_t left = strlen((const char *)p), used = 0;
    while (left > 0) {
        uint32_t code = 0;
        size_t n = dt_utf8_decode(p, left, &code);
        char buffer[8];
        const char *escape = escape_for(p, n, code, buffer);
        const char *piece = escape ? escape : (const char *)p;
        size_t piece_length = escape ? strlen(escape) : n;
        /* room for this piece, and for "..." should anything follow it */
        size_t reserve = left > (n ? n : 1) ? 3 : 0;
        if (used + piece_length + reserve + 1 > size) {
            if (used + 4 <= size) {
                memcpy(out + used, "...", 3);
                used += 3;
            }
            break;
        }
        memcpy(out + used, piece, piece_length);
        used += piece_length;
        p += n ? n : 1;
        left -= n ? n : 1;
    }
    out[used] = '\0';
    return out;
}

bool dt_text_is_printable(const char *text) {
    const uint8_t *p = (const uint8_t *)text;
    size_t left = strlen(text);
    while (left > 0) {
        uint32_t code = 0;
        size_t n = dt_utf8_decode(p, left, &code);
        char buffer[8];
        if (escape_for(p, n, code, buffer)) return false;
        p += n;
        left -= n;
    }
    return true;
}
