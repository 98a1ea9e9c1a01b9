/* Parses the JSON header of a safetensors file into tensor and metadata entries, with the rules
 * of the reference implementation: each entry but "__metadata__" is an object with "dtype" (a
 * known name), "shape" (non-negative integers) and "data_offsets" ([begin, end]); other fields
 * are ignored; "__metadata__" maps strings to strings (or is null); no key appears twice. */
#include "io/safetensors_header.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/json_scan.h"
#include "io/safetensors_dtype.h"

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

int dt_st_parse_header(const char *text, size_t length, const char *name, dt_safetensors *st,
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
