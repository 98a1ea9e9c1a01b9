/* Config values as text, all through one writer of each key's value: config.yaml (every key, in
 * README's "Config reference" order) that dt_config_load reads back to the same values, its hash
 * (FNV-1a 64) that ranks compare, the keys a resume may not change, and the listing of the key
 * table (name, type, limits, default, help). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config/config_internal.h"
#include "dtrain/bytes.h"

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

/* Code points a YAML reader keeps as they are inside a double-quoted scalar (printable, and not
 * a line break that would be folded). */
static bool kept_verbatim(unsigned int code) {
    if (code >= 0x20 && code <= 0x7E) return code != '"' && code != '\\';
    return (code >= 0xA0 && code <= 0xD7FF && code != 0x2028 && code != 0x2029) ||
           (code >= 0xE000 && code <= 0xFFFD && code != 0xFEFF) ||
           (code >= 0x10000 && code <= 0x10FFFF);
}

static void append_string(dt_text *t, const char *s) {
    if (can_be_plain(s)) {
        dt_text_append(t, s, strlen(s));
        return;
    }
    dt_text_append(t, "\"", 1);
    const uint8_t *p = (const uint8_t *)s, *end = p + strlen(s);
    while (p < end) {
        uint32_t code;
        size_t n = dt_utf8_decode(p, (size_t)(end - p), &code);
        if (n == 0) { /* not UTF-8: cannot come from a YAML file or a checked override */
            dt_text_printf(t, "\\x%02X", *p);
            p++;
        } else if (kept_verbatim(code)) {
            dt_text_append(t, (const char *)p, n);
            p += n;
        } else {
            if (code == '"')
                dt_text_append(t, "\\\"", 2);
            else if (code == '\\')
                dt_text_append(t, "\\\\", 2);
            else if (code == '\n')
                dt_text_append(t, "\\n", 2);
            else if (code == '\t')
                dt_text_append(t, "\\t", 2);
            else if (code == '\r')
                dt_text_append(t, "\\r", 2);
            else if (code <= 0xFF)
                dt_text_printf(t, "\\x%02X", code);
            else if (code <= 0xFFFF)
                dt_text_printf(t, "\\u%04X", code);
            else
                dt_text_printf(t, "\\U%08X", code);
            p += n;
        }
    }
    dt_text_append(t, "\"", 1);
}

/* Makes a %g result read as a float everywhere: "5" -> "5.0", "1e-05" -> "1.0e-05". */
static void append_float_text(dt_text *t, const char *digits) {
    const char *exponent = strchr(digits, 'e');
    if (strchr(digits, '.')) {
        dt_text_printf(t, "%s", digits);
    } else if (exponent) {
        dt_text_printf(t, "%.*s.0%s", (int)(exponent - digits), digits, exponent);
    } else {
        dt_text_printf(t, "%s.0", digits);
    }
}

/* The shortest decimal that reads back (through strtod) as exactly this double. */
static void append_double(dt_text *t, double value) {
    char digits[40];
    for (int precision = 1; precision <= 17; precision++) {
        snprintf(digits, sizeof digits, "%.*g", precision, value);
        if (strtod(digits, NULL) == value) break;
    }
    append_float_text(t, digits);
}

/* The shortest decimal that reads back (strtod, then rounded to float) as this float. */
static void append_float(dt_text *t, float value) {
    char digits[40];
    for (int precision = 1; precision <= 9; precision++) {
        snprintf(digits, sizeof digits, "%.*g", precision, (double)value);
        if ((float)strtod(digits, NULL) == value) break;
    }
    append_float_text(t, digits);
}

static void append_value(dt_text *t, const dt_config *cfg, const dt_config_key *key) {
    const void *field = (const char *)cfg + key->offset;
    switch (key->type) {
    case DT_KEY_STRING:
    case DT_KEY_OPTIONAL_STRING: {
        const char *s = *(char *const *)field;
        if (s)
            append_string(t, s);
        else
            dt_text_printf(t, "null");
        break;
    }
    case DT_KEY_INT:
        dt_text_printf(t, "%d", *(const int *)field);
        break;
    case DT_KEY_SEED:
        dt_text_printf(t, "%llu", (unsigned long long)*(const uint64_t *)field);
        break;
    case DT_KEY_NUMBER:
        append_double(t, *(const double *)field);
        break;
    case DT_KEY_BOOL:
        dt_text_printf(t, "%s", *(const bool *)field ? "true" : "false");
        break;
    case DT_KEY_ENUM: {
        int value = *(const int *)field;
        dt_text_printf(t, "%s", value >= 0 && value < key->n_choices ? key->choices[value] : "?");
        break;
    }
    case DT_KEY_RGB:
    case DT_KEY_PAIR:
    case DT_KEY_FLOAT4: {
        const float *values = field;
        int count = key->type == DT_KEY_RGB ? 3 : key->type == DT_KEY_PAIR ? 2 : 4;
        dt_text_printf(t, "[");
        for (int i = 0; i < count; i++) {
            if (i) dt_text_printf(t, ", ");
            append_float(t, values[i]);
        }
        dt_text_printf(t, "]");
        break;
    }
    case DT_KEY_NAME_MAP:
        if (cfg->data.n_class_names == 0) {
            dt_text_printf(t, "{}");
            break;
        }
        for (int i = 0; i < cfg->data.n_class_names; i++) {
            dt_text_printf(t, "\n    ");
            append_string(t, cfg->data.class_names[i].folder);
            dt_text_printf(t, ": ");
            append_string(t, cfg->data.class_names[i].display);
        }
        break;
    }
}

char *dt_config_key_text(const dt_config *cfg, const dt_config_key *key) {
    dt_text t = {0};
    append_value(&t, cfg, key);
    if (t.failed) {
        free(t.data);
        return NULL;
    }
    return t.data;
}

/* The resolved config as YAML in a heap string (*length bytes, NUL-terminated), or NULL if out of
 * memory. */
static char *render_yaml(const dt_config *cfg, size_t *length) {
    dt_text t = {0};
    int count = 0;
    const dt_config_key *keys = dt_config_keys(&count);
    for (int i = 0; i < count; i++) {
        /* data.val_root only when set (so the text, and the hash, of a config without it is what
         * it was before the key existed); with it, data.val_fraction is not used and not written
         * (given, it is an error) */
        const void *field = (const char *)cfg + keys[i].offset;
        if ((keys[i].flags & DT_KEY_WRITTEN_WHEN_SET) && !*(char *const *)field) continue;
        if (!dt_config_key_in_use(cfg, &keys[i])) continue;
        if (i == 0 || strcmp(keys[i].section, keys[i - 1].section) != 0)
            dt_text_printf(&t, "%s:\n", keys[i].section);
        bool block_map = keys[i].type == DT_KEY_NAME_MAP && cfg->data.n_class_names > 0;
        dt_text_printf(&t, block_map ? "  %s:" : "  %s: ", keys[i].name);
        append_value(&t, cfg, &keys[i]);
        dt_text_printf(&t, "\n");
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
    char *text = render_yaml(cfg, &length);
    if (!text) return -1;
    size_t written = fwrite(text, 1, length, out);
    free(text);
    return written == length && fflush(out) == 0 ? 0 : -1;
}

uint64_t dt_config_hash(const dt_config *cfg) {
    size_t length = 0;
    char *text = render_yaml(cfg, &length);
    if (!text) return 0;
    uint64_t hash = dt_fnv1a64(DT_FNV1A64_INIT, text, length);
    free(text);
    return hash;
}

int dt_config_resume_differences(const dt_config *saved, const dt_config *now, char *out,
                                 size_t size) {
    int count = 0, differing = 0;
    const dt_config_key *keys = dt_config_keys(&count);
    if (size) out[0] = '\0';
    for (int i = 0; i < count; i++) {
        if (keys[i].flags & DT_KEY_RESUMABLE) continue;
        char *a = dt_config_key_text(saved, &keys[i]), *b = dt_config_key_text(now, &keys[i]);
        int differs = !a || !b || strcmp(a, b) != 0;
        free(a);
        free(b);
        if (!differs) continue;
        differing++;
        size_t used = strlen(out);
        if (size > used) snprintf(out + used, size - used, "%s%s", used ? ", " : "", keys[i].path);
    }
    return differing;
}

void dt_config_resumable_keys(char *out, size_t size) {
    int count = 0;
    const dt_config_key *keys = dt_config_keys(&count);
    if (size) out[0] = '\0';
    for (int i = 0; i < count; i++) {
        if (!(keys[i].flags & DT_KEY_RESUMABLE)) continue;
        size_t used = strlen(out);
        if (size > used) snprintf(out + used, size - used, "%s%s", used ? ", " : "", keys[i].path);
    }
}

/* ---- the key listing ---- */

static void append_bound(dt_text *t, const dt_config_key *k) {
    if (k->has_min && k->has_max)
        dt_text_printf(t, "%c%g, %g%c", k->min_exclusive ? '(' : '[', k->min, k->max,
                       k->max_exclusive ? ')' : ']');
    else if (k->has_min)
        dt_text_printf(t, "%s %g", k->min_exclusive ? ">" : ">=", k->min);
    else if (k->has_max)
        dt_text_printf(t, "%s %g", k->max_exclusive ? "<" : "<=", k->max);
}

static void append_choices(dt_text *t, const dt_config_key *k) {
    for (int i = 0; i < k->n_choices; i++) dt_text_printf(t, "%s%s", i ? ", " : "", k->choices[i]);
}

/* "type<TAB>limits" of a row. */
static void append_type(dt_text *t, const dt_config_key *k) {
    switch (k->type) {
    case DT_KEY_STRING:
        dt_text_printf(t, k->choices ? "one of\t" : "string\t");
        if (k->choices) append_choices(t, k);
        break;
    case DT_KEY_OPTIONAL_STRING:
        dt_text_printf(t, "string or null\t");
        break;
    case DT_KEY_INT:
        dt_text_printf(t, "integer\t[%lld, %lld]", k->int_min, k->int_max);
        break;
    case DT_KEY_SEED:
        dt_text_printf(t, "integer\t[0, %llu]", (unsigned long long)UINT64_MAX);
        break;
    case DT_KEY_NUMBER:
        dt_text_printf(t, "%s\t", k->float32 ? "number (32-bit float)" : "number");
        append_bound(t, k);
        break;
    case DT_KEY_BOOL:
        dt_text_printf(t, "true or false\t");
        break;
    case DT_KEY_ENUM:
        dt_text_printf(t, "one of\t");
        append_choices(t, k);
        break;
    case DT_KEY_RGB:
        dt_text_printf(t, "3 numbers (32-bit floats)\t");
        append_bound(t, k);
        break;
    case DT_KEY_FLOAT4:
        dt_text_printf(t, "4 numbers (32-bit floats)\t");
        append_bound(t, k);
        break;
    case DT_KEY_PAIR:
        dt_text_printf(t, "2 numbers (32-bit floats)\t");
        append_bound(t, k);
        break;
    case DT_KEY_NAME_MAP:
        dt_text_printf(t, "mapping of names\t");
        break;
    }
}

int dt_config_write_key_list(FILE *out) {
    dt_config defaults;
    dt_config_defaults(&defaults);
    dt_text t = {0};
    int count = 0;
    const dt_config_key *keys = dt_config_keys(&count);
    for (int i = 0; i < count; i++) {
        dt_text_printf(&t, "%s\t", keys[i].path);
        append_type(&t, &keys[i]);
        dt_text_printf(&t, "\t");
        if (keys[i].flags & DT_KEY_REQUIRED)
            dt_text_printf(&t, "required");
        else
            append_value(&t, &defaults, &keys[i]);
        dt_text_printf(&t, "\t%s\n", keys[i].help);
    }
    dt_config_free(&defaults);
    int rc = -1;
    if (!t.failed) rc = fwrite(t.data, 1, t.length, out) == t.length && fflush(out) == 0 ? 0 : -1;
    free(t.data);
    return rc;
}
