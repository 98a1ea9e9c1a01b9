/* Private parts of the config reader shared by the src/config files: the key table (one row per
 * key: name, type, default, limits, field, help), a small YAML node tree that keeps source
 * positions, and errors located at FILE:LINE:COL or at an override.
 *
 *   config_table.c   the rows, lookups over them (find, list, did-you-mean), defaults, free
 *   config_yaml.c    libyaml events -> node tree with positions
 *   config_load.c    file and overrides -> keys, with located errors
 *   config_values.c  one value -> its field (type, range, choices), and the cross-key rules
 *   config_write.c   values -> YAML text: config.yaml, the hash, the resume comparison */
#ifndef DTRAIN_CONFIG_INTERNAL_H
#define DTRAIN_CONFIG_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>

#include "dtrain/config.h"
#include "dtrain/error.h"

/* dt_config_load on text already in memory (name stands for the file in messages); the config
 * fuzz target's entry point. */
int dt_config_load_text(const char *name, const char *text, size_t length, int n_overrides,
                        char *const *overrides, dt_config *cfg, dt_error *err);

/* ---- where a value came from ---- */

/* Exactly one of file and override_arg is set. */
typedef struct dt_config_origin {
    const char *file;         /* the config file's path */
    const char *override_arg; /* the whole "key.path=value" command-line argument */
} dt_config_origin;

/* Fails with exit code 2 and "FILE:LINE:COL: key_path: message" (file origin) or
 * "override 'ARG': key_path: message" (override origin). key_path may be NULL. Returns -1. */
int dt_config_fail_at(dt_error *err, const dt_config_origin *origin, int line, int column,
                      const char *key_path, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));

/* Where a key's current value (or a section) was given: set is false for a default. */
typedef struct dt_config_place {
    bool set;
    dt_config_origin origin;
    int line, column;
} dt_config_place;

/* ---- YAML node tree ---- */

typedef enum { DT_YAML_SCALAR, DT_YAML_SEQUENCE, DT_YAML_MAPPING } dt_yaml_kind;

typedef struct dt_yaml_node {
    dt_yaml_kind kind;
    int line, column; /* 1-based position where the node starts */
    char *text;       /* scalars: the value, NUL-terminated (values holding NUL are refused) */
    bool quoted;      /* scalars: quoted or block (| >) style, so always a string */
    struct dt_yaml_node *children; /* sequence: items; mapping: key, value, key, value, ... */
    int n_children;
} dt_yaml_node;

/* Parses one YAML document from text[0..length). *root is NULL when the text holds no document
 * (empty, or only comments). Anchors, aliases, tags and a second document are refused. For an
 * override, key_path names the key being set and prefixes syntax errors. */
int dt_yaml_parse(const char *text, size_t length, const dt_config_origin *origin,
                  const char *key_path, dt_yaml_node **root, dt_error *err);

/* Frees a tree from dt_yaml_parse or dt_yaml_new_plain_scalar (NULL is fine). */
void dt_yaml_free(dt_yaml_node *root);

/* A one-node tree holding a plain scalar (an override's unquoted value), or NULL if out of
 * memory. */
dt_yaml_node *dt_yaml_new_plain_scalar(const char *text);

/* True for the plain scalars that mean null: empty, ~, null, Null, NULL. */
bool dt_yaml_is_null(const dt_yaml_node *node);

/* Describes a node for "got ..." in messages: null, a sequence, a mapping, 'text' or the quoted
 * string "text". Writes into buffer (truncating long text) and returns it. */
const char *dt_yaml_describe(const dt_yaml_node *node, char *buffer, size_t size);

/* Fails when key i of mapping (a scalar, as are the keys before it) repeats an earlier key:
 * "duplicate key (first given at line N)" at the key in a file, "duplicate key" in an override.
 * key_path names the key in the message. Returns 0 when the key is new. */
int dt_config_check_duplicate_key(dt_error *err, const dt_config_origin *origin,
                                  const dt_yaml_node *mapping, int i, const char *key_path);

/* ---- the key table ---- */

typedef enum {
    DT_KEY_STRING,          /* char *, non-empty; choices (if any) restrict it */
    DT_KEY_OPTIONAL_STRING, /* char *, non-empty string or null (NULL) */
    DT_KEY_INT,             /* int in [int_min, int_max] */
    DT_KEY_SEED,            /* uint64_t, 0 .. 2^64-1 */
    DT_KEY_NUMBER,          /* double, finite, within the number bounds */
    DT_KEY_BOOL,            /* bool: true or false in any letter case */
    DT_KEY_ENUM,            /* one of choices, stored as the enum's int value (choice index) */
    DT_KEY_RGB,             /* float[3]: three numbers, each within the number bounds */
    DT_KEY_FLOAT4,          /* float[4]: four numbers, each within the number bounds */
    DT_KEY_PAIR,            /* float[2]: two numbers, each within the number bounds */
    DT_KEY_NAME_MAP,        /* data.class_names: mapping of strings to strings */
} dt_key_type;

/* Row flags. */
enum {
    DT_KEY_REQUIRED = 1 << 0,        /* no default: the config must set it (a STRING key) */
    DT_KEY_RESUMABLE = 1 << 1,       /* may differ between a checkpoint's config and a resume */
    DT_KEY_WRITTEN_WHEN_SET = 1 << 2 /* left out of config.yaml while null */
};

typedef struct dt_config_key {
    const char *section; /* "data" */
    const char *name;    /* "val_fraction" */
    const char *path;    /* "data.val_fraction" */
    dt_key_type type;
    size_t offset; /* of the field in dt_config */
    /* the default, in the member of the key's type */
    struct {
        long long integer;  /* INT, SEED, BOOL (0/1), ENUM (the enum value) */
        double number;      /* NUMBER */
        const char *string; /* STRING, OPTIONAL_STRING; NULL: null (or required) */
        float rgb[3];       /* RGB */
        float float4[4];    /* FLOAT4 */
        float pair[2];      /* PAIR */
    } fallback;
    long long int_min, int_max; /* INT */
    bool has_min, has_max;      /* number bounds (NUMBER and each RGB or PAIR item) */
    bool min_exclusive, max_exclusive;
    double min, max;
    bool float32; /* NUMBER used as a 32-bit float (RGB always is): bounds hold after conversion */
    const char *const *choices; /* ENUM: names in enum order; STRING: allowed values or NULL */
    int n_choices;
    unsigned flags;   /* DT_KEY_REQUIRED | DT_KEY_RESUMABLE | DT_KEY_WRITTEN_WHEN_SET */
    const char *help; /* one line: what the key does */
} dt_config_key;

/* All keys, in the order of README's "Config reference" table (section by section). */
const dt_config_key *dt_config_keys(int *count);

/* Section names in the same order. */
const char *const *dt_config_sections(int *count);

/* The key section.name, or NULL. */
const dt_config_key *dt_config_find_key(const char *section, const char *name);

/* Index of a key in dt_config_keys(). */
int dt_config_key_index(const dt_config_key *key);

/* The candidate closest to given (edit distance up to 2, fewer for short names; else a prefix
 * either way), or NULL. Letter case is ignored. */
const char *dt_config_suggest(const char *given, const char *const *candidates, int n_candidates);

/* Writes the advice that follows "unknown key"/"unknown section" into buffer: ", did you mean
 * 'x'?" for a close name of that section (section NULL: the top level) or the same name in
 * another section, a nesting hint for "data.root" written at the top level, else the list of
 * valid names in parentheses. full_paths selects 'train.epochs' over 'epochs' (overrides). */
void dt_config_unknown_key_advice(const char *section, const char *given, bool full_paths,
                                  char *buffer, size_t size);

/* ---- values ---- */

/* Checks value against key's type and range and stores it in cfg (replacing what was there).
 * Errors are located at the offending node. */
int dt_config_assign(dt_config *cfg, const dt_config_key *key, const dt_yaml_node *value,
                     const dt_config_origin *origin, dt_error *err);

/* The rules that involve more than one key (and the required keys), once every value is known.
 * places[i] says where key i was set, sections[s] where section s was; errors are located there
 * (file_origin, line 1, for a key never given). */
int dt_config_check_rules(const dt_config *cfg, const dt_config_place *places,
                          const dt_config_place *sections, const dt_config_origin *file_origin,
                          dt_error *err);

/* False for a key whose value another key makes unused (data.val_fraction beside
 * data.val_root); config.yaml leaves such keys out. */
bool dt_config_key_in_use(const dt_config *cfg, const dt_config_key *key);

/* key's value in cfg as the YAML writer writes it (heap string), or NULL if out of memory. */
char *dt_config_key_text(const dt_config *cfg, const dt_config_key *key);

#endif
