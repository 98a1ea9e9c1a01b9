/* Writes the resolved config as YAML (every key, SPEC.md order) that dt_config_load reads back to
 * the same values, and hashes that text (FNV-1a 64) so ranks can compare configs. */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config/config_internal.h"

typedef struct text_buffer {
    char *data;
    size_t length, capacity;
    bool failed; /* out of memory: the text is incomplete */
} text_buffer;

static void append_bytes(text_buffer *t, const char *bytes, size_t n) {
    if (t->failed) return;
    if (t->length + n + 1 > t->capacity) {
        size_t grown = t->capacity ? t->capacity : 1024;
        while (t->length + n + 1 > grown) grown *= 2;
        char *data = realloc(t->data, grown);
        if (!data) {
            t->failed = true;
            return;
        }
        t->data = data;
        t->capacity = grown;
    }
    memcpy(t->data + t->length, bytes, n);
    t->length += n;
    t->data[t->length] = '\0';
}

static void append(text_buffer *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void append(text_buffer *t, const char *fmt, ...) {
    char small[256];
    va_list args;
    va_start(args, fmt);
    int n = vsnprintf(small, sizeof small, fmt, args);
    va_end(args);
    if (n < 0) {
        t->failed = true;
    } else if ((size_t)n < sizeof small) {
        append_bytes(t, small, (size_t)n);
    } else {
        char *large = malloc((size_t)n + 1);
        if (!large) {
            t->failed = true;
            return;
        }
        va_start(args, fmt);
        vsnprintf(large, (size_t)n + 1, fmt, args);
        va_end(args);
        append_bytes(t, large, (size_t)n);
        free(large);
    }
}

/* Plain only for path-like words that no YAML reader (1.1 or 1.2) takes for a number, boolean or
 * null; everything else is double-quoted. */
static bool can_be_plain(const char *s) {
    bool starts_well = (s[0] >= 'A' && s[0] <= 'Z') || (s[0] >= 'a' && s[0] <= 'z') ||
                       s[0] == '_' || s[0] == '/' || (s[0] == '.' && (s[1] == '/' || s[1] == '.'));
    if (!starts_well) return false;
    for (const char *p = s; *p; p++)
        if (!strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_./+-", *p))
            return false;
    static const char *const special_words[] = {"y",   "n",    "yes",   "no",  "on",
                                                "off", "true", "false", "null"};
    for (size_t i = 0; i < sizeof special_words / sizeof special_words[0]; i++)
        if (strcasecmp(s, special_words[i]) == 0) return false;
    return true;
}

/* Decodes one UTF-8 sequence at s; returns its length, or 0 if it is not valid UTF-8. */
static int decode_utf8(const unsigned char *s, unsigned int *code) {
    int extra;
    if (s[0] < 0x80) {
        *code = s[0];
        return 1;
    } else if ((s[0] & 0xE0) == 0xC0) {
        extra = 1;
        *code = s[0] & 0x1F;
    } else if ((s[0] & 0xF0) == 0xE0) {
        extra = 2;
        *code = s[0] & 0x0F;
    } else if ((s[0] & 0xF8) == 0xF0) {
        extra = 3;
        *code = s[0] & 0x07;
    } else {
        return 0;
    }
    for (int i = 1; i <= extra; i++) {
        if ((s[i] & 0xC0) != 0x80) return 0;
        *code = (*code << 6) | (s[i] & 0x3F);
    }
    return extra + 1;
}

/* Code points a YAML reader keeps as they are inside a double-quoted scalar (printable, and not
 * a line break that would be folded). */
static bool kept_verbatim(unsigned int code) {
    if (code >= 0x20 && code <= 0x7E) return code != '"' && code != '\\';
    return (code >= 0xA0 && code <= 0xD7FF && code != 0x2028 && code != 0x2029) ||
           (code >= 0xE000 && code <= 0xFFFD && code != 0xFEFF) ||
           (code >= 0x10000 && code <= 0x10FFFF);
}

static void append_string(text_buffer *t, const char *s) {
    if (can_be_plain(s)) {
        append_bytes(t, s, strlen(s));
        return;
    }
    append_bytes(t, "\"", 1);
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        unsigned int code;
        int n = decode_utf8(p, &code);
        if (n == 0) {
            append(t, "\\x%02X", *p); /* not UTF-8: cannot come from a YAML or checked override */
            p++;
        } else if (kept_verbatim(code)) {
            append_bytes(t, (const char *)p, (size_t)n);
            p += n;
        } else {
            if (code == '"')
                append_bytes(t, "\\\"", 2);
            else if (code == '\\')
                append_bytes(t, "\\\\", 2);
            else if (code == '\n')
                append_bytes(t, "\\n", 2);
            else if (code == '\t')
                append_bytes(t, "\\t", 2);
            else if (code == '\r')
                append_bytes(t, "\\r", 2);
            else if (code <= 0xFF)
                append(t, "\\x%02X", code);
            else if (code <= 0xFFFF)
                append(t, "\\u%04X", code);
            else
                append(t, "\\U%08X", code);
            p += n;
        }
    }
    append_bytes(t, "\"", 1);
}

/* Makes a %g result read as a float everywhere: "5" -> "5.0", "1e-05" -> "1.0e-05". */
static void append_float_text(text_buffer *t, const char *digits) {
    const char *exponent = strchr(digits, 'e');
    if (strchr(digits, '.')) {
        append(t, "%s", digits);
    } else if (exponent) {
        append(t, "%.*s.0%s", (int)(exponent - digits), digits, exponent);
    } else {
        append(t, "%s.0", digits);
    }
}

/* The shortest decimal that reads back (through strtod) as exactly this double. */
static void append_double(text_buffer *t, double value) {
    char digits[40];
    for (int precision = 1; precision <= 17; precision++) {
        snprintf(digits, sizeof digits, "%.*g", precision, value);
        if (strtod(digits, NULL) == value) break;
    }
    append_float_text(t, digits);
}

/* The shortest decimal that reads back (strtod, then rounded to float) as this float. */
static void append_float(text_buffer *t, float value) {
    char digits[40];
    for (int precision = 1; precision <= 9; precision++) {
        snprintf(digits, sizeof digits, "%.*g", precision, (double)value);
        if ((float)strtod(digits, NULL) == value) break;
    }
    append_float_text(t, digits);
}

static void append_value(text_buffer *t, const dt_config *cfg, const dt_config_key *key) {
    const void *field = (const char *)cfg + key->offset;
    switch (key->type) {
    case DT_KEY_STRING:
    case DT_KEY_OPTIONAL_STRING: {
        const char *s = *(char *const *)field;
        if (s)
            append_string(t, s);
        else
            append(t, "null");
        break;
    }
    case DT_KEY_INT:
        append(t, "%d", *(const int *)field);
        break;
    case DT_KEY_SEED:
        append(t, "%llu", (unsigned long long)*(const uint64_t *)field);
        break;
    case DT_KEY_NUMBER:
        append_double(t, *(const double *)field);
        break;
    case DT_KEY_BOOL:
        append(t, "%s", *(const bool *)field ? "true" : "false");
        break;
    case DT_KEY_ENUM: {
        int value = *(const int *)field;
        append(t, "%s", value >= 0 && value < key->n_choices ? key->choices[value] : "?");
        break;
    }
    case DT_KEY_RGB: {
        const float *rgb = field;
        append(t, "[");
        for (int i = 0; i < 3; i++) {
            if (i) append(t, ", ");
            append_float(t, rgb[i]);
        }
        append(t, "]");
        break;
    }
    case DT_KEY_NAME_MAP:
        if (cfg->data.n_class_names == 0) {
            append(t, "{}");
            break;
        }
        for (int i = 0; i < cfg->data.n_class_names; i++) {
            append(t, "\n    ");
            append_string(t, cfg->data.class_names[i].folder);
            append(t, ": ");
            append_string(t, cfg->data.class_names[i].display);
        }
        break;
    }
}

char *dt_config_render_yaml(const dt_config *cfg, size_t *length) {
    text_buffer t = {0};
    int count = 0;
    const dt_config_key *keys = dt_config_keys(&count);
    for (int i = 0; i < count; i++) {
        if (i == 0 || strcmp(keys[i].section, keys[i - 1].section) != 0)
            append(&t, "%s:\n", keys[i].section);
        bool block_map = keys[i].type == DT_KEY_NAME_MAP && cfg->data.n_class_names > 0;
        append(&t, block_map ? "  %s:" : "  %s: ", keys[i].name);
        append_value(&t, cfg, &keys[i]);
        append(&t, "\n");
    }
    if (t.failed) {
        free(t.data);
        return NULL;
    }
    *length = t.length;
    return t.data;
}

int dt_config_write_yaml(const dt_config *cfg, FILE *out) {
    size_t length = 0;
    char *text = dt_config_render_yaml(cfg, &length);
    if (!text) return -1;
    size_t written = fwrite(text, 1, length, out);
    free(text);
    return written == length && fflush(out) == 0 ? 0 : -1;
}

uint64_t dt_config_hash(const dt_config *cfg) {
    size_t length = 0;
    char *text = dt_config_render_yaml(cfg, &length);
    if (!text) return 0;
    uint64_t hash = 0xcbf29ce484222325ULL; /* FNV-1a 64 offset basis */
    for (size_t i = 0; i < length; i++) {
        hash ^= (unsigned char)text[i];
        hash *= 0x100000001b3ULL; /* FNV-1a 64 prime */
    }
    free(text);
    return hash;
}
