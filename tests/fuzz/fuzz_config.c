/* Fuzz target for the config reader (YAML parse, strict schema, overrides, cross-key checks):
 * any input is either refused with a message that starts with the file's name or an override, or
 * yields a config whose written YAML loads back and writes the same text again. The input is the
 * YAML text, then up to four overrides, separated by NUL bytes. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/config_internal.h"

enum { MAX_OVERRIDES = 4 };

static void fail_property(const char *what, const char *detail) {
    fprintf(stderr, "fuzz_config: property violated: %s (%s)\n", what, detail);
    abort();
}

/* The config as written to config.yaml, in a malloc'd string. */
static char *written(const dt_config *cfg, size_t *length) {
    char *text = NULL;
    FILE *out = open_memstream(&text, length);
    if (!out) return NULL;
    if (dt_config_write_yaml(cfg, out) != 0) fail_property("the writer writes", "");
    fclose(out);
    return text;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *copy = malloc(size + 1);
    if (!copy) return 0;
    memcpy(copy, data, size);
    copy[size] = '\0';
    size_t text_length = strlen(copy);
    char *overrides[MAX_OVERRIDES];
    int n_overrides = 0;
    for (size_t at = text_length + 1; at < size && n_overrides < MAX_OVERRIDES;) {
        overrides[n_overrides++] = copy + at;
        at += strlen(copy + at) + 1;
    }
    dt_config cfg;
    dt_error err = {{0}, 0};
    if (dt_config_load_text("fuzz.yaml", copy, text_length, n_overrides, overrides, &cfg, &err)) {
        if (strncmp(err.message, "fuzz.yaml", 9) != 0 && strncmp(err.message, "override '", 10) &&
            strncmp(err.message, "out of memory", 13) != 0)
            fail_property("errors name the file or the override", err.message);
        if (cfg.data.root || cfg.output.dir) fail_property("nothing left after an error", "");
        free(copy);
        return 0;
    }
    size_t first_length = 0, second_length = 0;
    char *first = written(&cfg, &first_length);
    dt_config again;
    if (first && dt_config_load_text("written.yaml", first, first_length, 0, NULL, &again, &err))
        fail_property("the written config loads back", err.message);
    char *second = first ? written(&again, &second_length) : NULL;
    if (first && (!second || second_length != first_length || strcmp(first, second) != 0))
        fail_property("the reloaded config writes the same text", first);
    if (first && dt_config_hash(&cfg) != dt_config_hash(&again))
        fail_property("same hash after a round trip", "");
    if (first) dt_config_free(&again);
    free(first);
    free(second);
    dt_config_free(&cfg);
    free(copy);
    return 0;
}
