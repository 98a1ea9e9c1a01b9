/* Reads YAML text with libyaml's event parser into a small node tree that keeps 1-based
 * positions and the quoting of every scalar; refuses what a config never needs (anchors,
 * aliases, tags, a second document) and turns libyaml's errors into located messages. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "config/config_internal.h"
#include "dtrain/text_escape.h"

/* Deeper than any config needs; bounds the recursion on hostile input. */
enum { MAX_NESTING = 32 };

typedef struct tree_builder {
    yaml_parser_t parser;
    const char *text;
    size_t length;
    const dt_config_origin *origin;
    const char *key_path;
    dt_error *err;
} tree_builder;

/* Fails at a 1-based position; for overrides the column goes into the message. */
static int fail_at_position(tree_builder *b, int line, int column, const char *message) {
    if (b->origin->file)
        return dt_config_fail_at(b->err, b->origin, line, column, b->key_path, "%s", message);
    return dt_config_fail_at(b->err, b->origin, line, column, b->key_path, "%s (at column %d)",
                             message, column);
}

/* 1-based line and column (in characters) of a byte offset of the text. */
static void offset_to_position(const char *text, size_t length, size_t offset, int *line,
                               int *column) {
    *line = 1;
    *column = 1;
    for (size_t i = 0; i < offset && i < length; i++) {
        unsigned char byte = (unsigned char)text[i];
        if (byte == '\n') {
            ++*line;
            *column = 1;
        } else if ((byte & 0xC0) != 0x80) {
            ++*column;
        }
    }
}

static int syntax_error(tree_builder *b) {
    yaml_parser_t *p = &b->parser;
    if (p->error == YAML_MEMORY_ERROR) return dt_fail(b->err, "out of memory reading YAML");
    const char *problem = p->problem ? p->problem : "unknown error";
    char message[512];
    int line, column;
    size_t offset = p->error == YAML_READER_ERROR ? p->problem_offset : p->problem_mark.index;
    if (p->error == YAML_READER_ERROR) {
        offset_to_position(b->text, b->length, p->problem_offset, &line, &column);
    } else {
        line = (int)p->problem_mark.line + 1;
        column = (int)p->problem_mark.column + 1;
    }
    if (!b->origin->file) {
        /* An override is one line: the column says it all. */
        if (strcmp(problem, "did not find expected <document start>") == 0)
            problem = "unexpected text after the value";
        char where[32] = "at the end";
        if (offset < b->length) snprintf(where, sizeof where, "at column %d", column);
        return dt_config_fail_at(b->err, b->origin, line, column, b->key_path,
                                 "invalid YAML value: %s%s%s (%s)", problem, p->context ? " " : "",
                                 p->context ? p->context : "", where);
    }
    if (p->context)
        snprintf(message, sizeof message, "invalid YAML: %s (%s at line %d, column %d)", problem,
                 p->context, (int)p->context_mark.line + 1, (int)p->context_mark.column + 1);
    else
        snprintf(message, sizeof message, "invalid YAML: %s", problem);
    return fail_at_position(b, line, column, message);
}

static int next_event(tree_builder *b, yaml_event_t *event) {
    if (!yaml_parser_parse(&b->parser, event)) return syntax_error(b);
    return 0;
}

static int refuse_decorations(tree_builder *b, const yaml_char_t *anchor, const yaml_char_t *tag,
                              const dt_yaml_node *node) {
    char message[256];
    if (anchor) {
        snprintf(message, sizeof message, "YAML anchors and aliases are not supported (&%.64s)",
                 (const char *)anchor);
        return fail_at_position(b, node->line, node->column, message);
    }
    if (tag) {
        /* libyaml expands "!!int" to "tag:yaml.org,2002:int"; show it as written. */
        const char *shown = (const char *)tag, *standard = "tag:yaml.org,2002:";
        bool is_standard = strncmp(shown, standard, strlen(standard)) == 0;
        snprintf(message, sizeof message,
                 "YAML tags are not supported (%s%.64s); values are typed by their key",
                 is_standard ? "!!" : "", is_standard ? shown + strlen(standard) : shown);
        return fail_at_position(b, node->line, node->column, message);
    }
    return 0;
}

static int build_node(tree_builder *b, const yaml_event_t *event, dt_yaml_node *node, int depth);

/* Reads the items (or key/value nodes) of a collection up to its end event. */
static int build_children(tree_builder *b, dt_yaml_node *node, yaml_event_type_t end_type,
                          int depth) {
    int capacity = 0;
    for (;;) {
        yaml_event_t event;
        if (next_event(b, &event)) return -1;
        if (event.type == end_type) {
            yaml_event_delete(&event);
            return 0;
        }
        if (node->n_children == capacity) {
            int grown = capacity ? capacity * 2 : 8;
            dt_yaml_node *children = realloc(node->children, (size_t)grown * sizeof *children);
            if (!children) {
                yaml_event_delete(&event);
                return dt_fail(b->err, "out of memory reading YAML");
            }
            node->children = children;
            capacity = grown;
        }
        dt_yaml_node *child = &node->children[node->n_children++];
        memset(child, 0, sizeof *child);
        int rc = build_node(b, &event, child, depth + 1);
        yaml_event_delete(&event);
        if (rc) return -1;
    }
}

static int build_node(tree_builder *b, const yaml_event_t *event, dt_yaml_node *node, int depth) {
    node->line = (int)event->start_mark.line + 1;
    node->column = (int)event->start_mark.column + 1;
    switch (event->type) {
    case YAML_ALIAS_EVENT: {
        char message[256];
        snprintf(message, sizeof message, "YAML anchors and aliases are not supported (*%.64s)",
                 (const char *)event->data.alias.anchor);
        return fail_at_position(b, node->line, node->column, message);
    }
    case YAML_SCALAR_EVENT: {
        node->kind = DT_YAML_SCALAR;
        if (refuse_decorations(b, event->data.scalar.anchor, event->data.scalar.tag, node))
            return -1;
        size_t length = event->data.scalar.length;
        if (memchr(event->data.scalar.value, '\0', length))
            return fail_at_position(b, node->line, node->column,
                                    "a value contains a NUL character");
        node->text = malloc(length + 1);
        if (!node->text) return dt_fail(b->err, "out of memory reading YAML");
        memcpy(node->text, event->data.scalar.value, length);
        node->text[length] = '\0';
        node->quoted = event->data.scalar.style != YAML_PLAIN_SCALAR_STYLE;
        return 0;
    }
    case YAML_SEQUENCE_START_EVENT:
    case YAML_MAPPING_START_EVENT: {
        bool is_sequence = event->type == YAML_SEQUENCE_START_EVENT;
        node->kind = is_sequence ? DT_YAML_SEQUENCE : DT_YAML_MAPPING;
        const yaml_char_t *anchor =
            is_sequence ? event->data.sequence_start.anchor : event->data.mapping_start.anchor;
        const yaml_char_t *tag =
            is_sequence ? event->data.sequence_start.tag : event->data.mapping_start.tag;
        if (refuse_decorations(b, anchor, tag, node)) return -1;
        if (depth >= MAX_NESTING)
            return fail_at_position(b, node->line, node->column, "YAML nesting is too deep");
        return build_children(
            b, node, is_sequence ? YAML_SEQUENCE_END_EVENT : YAML_MAPPING_END_EVENT, depth);
    }
    default:
        return fail_at_position(b, node->line, node->column, "unexpected YAML event");
    }
}

/* stream-start (document-start node document-end)? stream-end, refusing a second document. */
static int parse_stream(tree_builder *b, dt_yaml_node **root) {
    yaml_event_t event;
    if (next_event(b, &event)) return -1;
    yaml_event_delete(&event); /* stream start */
    if (next_event(b, &event)) return -1;
    if (event.type == YAML_STREAM_END_EVENT) {
        yaml_event_delete(&event);
        return 0;
    }
    yaml_event_delete(&event); /* document start */

    *root = calloc(1, sizeof **root);
    if (!*root) return dt_fail(b->err, "out of memory reading YAML");
    if (next_event(b, &event)) return -1;
    int rc = build_node(b, &event, *root, 0);
    yaml_event_delete(&event);
    if (rc) return -1;

    if (next_event(b, &event)) return -1;
    yaml_event_delete(&event); /* document end */
    if (next_event(b, &event)) return -1;
    if (event.type == YAML_DOCUMENT_START_EVENT) {
        int line = (int)event.start_mark.line + 1, column = (int)event.start_mark.column + 1;
        yaml_event_delete(&event);
        return fail_at_position(b, line, column,
                                "only one YAML document is allowed (found a second one)");
    }
    yaml_event_delete(&event); /* stream end */
    return 0;
}

int dt_yaml_parse(const char *text, size_t length, const dt_config_origin *origin,
                  const char *key_path, dt_yaml_node **root, dt_error *err) {
    *root = NULL;
    tree_builder b = {
        .text = text, .length = length, .origin = origin, .key_path = key_path, .err = err};
    if (!yaml_parser_initialize(&b.parser)) return dt_fail(err, "out of memory reading YAML");
    yaml_parser_set_input_string(&b.parser, (const unsigned char *)text, length);
    int rc = parse_stream(&b, root);
    yaml_parser_delete(&b.parser);
    if (rc) {
        dt_yaml_free(*root);
        *root = NULL;
    }
    return rc;
}

static void free_node_contents(dt_yaml_node *node) {
    for (int i = 0; i < node->n_children; i++) free_node_contents(&node->children[i]);
    free(node->children);
    free(node->text);
}

void dt_yaml_free(dt_yaml_node *root) {
    if (!root) return;
    free_node_contents(root);
    free(root);
}

dt_yaml_node *dt_yaml_new_plain_scalar(const char *text) {
    dt_yaml_node *node = calloc(1, sizeof *node);
    if (!node) return NULL;
    size_t length = strlen(text);
    node->text = malloc(length + 1);
    if (!node->text) {
        free(node);
        return NULL;
    }
    memcpy(node->text, text, length + 1);
    node->kind = DT_YAML_SCALAR;
    node->line = 1;
    node->column = 1;
    return node;
}

bool dt_yaml_is_null(const dt_yaml_node *node) {
    if (node->kind != DT_YAML_SCALAR || node->quoted) return false;
    const char *t = node->text;
    return t[0] == '\0' || strcmp(t, "~") == 0 || strcmp(t, "null") == 0 ||
           strcmp(t, "Null") == 0 || strcmp(t, "NULL") == 0;
}

const char *dt_yaml_describe(const dt_yaml_node *node, char *buffer, size_t size) {
    if (node->kind == DT_YAML_SEQUENCE) {
        snprintf(buffer, size, "a sequence");
    } else if (node->kind == DT_YAML_MAPPING) {
        snprintf(buffer, size, "a mapping");
    } else if (dt_yaml_is_null(node)) {
        snprintf(buffer, size, "null");
    } else {
        /* Long values are cut and control characters escaped, to keep one tidy line. */
        char shown[64];
        dt_escape_text(node->text, shown, sizeof shown);
        if (node->quoted)
            snprintf(buffer, size, "the quoted string \"%s\"", shown);
        else
            snprintf(buffer, size, "'%s'", shown);
    }
    return buffer;
}
