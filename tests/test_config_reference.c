/* README's "Config reference" table against the config key table (dt_config_write_key_list):
 * every key of the program is documented and every documented key exists, and where a README row
 * gives one default per key, each equals the program's default. Also checks the listing's own
 * shape (five columns, a help text on every line). */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "dtrain/config.h"

enum { MAX_KEYS = 128, FIELD_BYTES = 256 };

typedef struct key_row {
    char path[FIELD_BYTES];
    char fallback[FIELD_BYTES]; /* the default as written ("required" for data.root) */
} key_row;

static int count_keys(const key_row *rows, int n, const char *path) {
    int found = 0;
    for (int i = 0; i < n; i++) found += strcmp(rows[i].path, path) == 0;
    return found;
}

static const key_row *find_row(const key_row *rows, int n, const char *path) {
    for (int i = 0; i < n; i++)
        if (strcmp(rows[i].path, path) == 0) return &rows[i];
    return NULL;
}

static void trim(char *s) {
    size_t n = strlen(s);
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\n')) s[--n] = '\0';
    size_t start = strspn(s, " ");
    memmove(s, s + start, strlen(s + start) + 1);
}

/* Splits "a, b, c" into items (trimmed, backticks removed); returns how many. */
static int split_list(const char *text, char items[][FIELD_BYTES], int max) {
    int n = 0;
    const char *p = text;
    while (*p && n < max) {
        const char *comma = strstr(p, ", ");
        size_t length = comma ? (size_t)(comma - p) : strlen(p);
        char item[FIELD_BYTES];
        size_t used = 0;
        for (size_t i = 0; i < length && used + 1 < sizeof item; i++)
            if (p[i] != '`') item[used++] = p[i];
        item[used] = '\0';
        trim(item);
        snprintf(items[n++], FIELD_BYTES, "%s", item);
        if (!comma) break;
        p = comma + 2;
    }
    return n;
}

/* The program's keys and defaults, from the listing. */
static int program_keys(key_row *rows) {
    char *text = NULL;
    size_t size = 0;
    FILE *out = open_memstream(&text, &size);
    CHECK(out != NULL);
    if (!out) return 0;
    CHECK_INT_EQ(dt_config_write_key_list(out), 0);
    fclose(out);
    int n = 0;
    for (char *line = strtok(text, "\n"); line && n < MAX_KEYS; line = strtok(NULL, "\n")) {
        char *fields[6] = {0};
        int n_fields = 0;
        for (char *p = line; n_fields < 6;) {
            fields[n_fields++] = p;
            char *tab = strchr(p, '\t');
            if (!tab) break;
            *tab = '\0';
            p = tab + 1;
        }
        CHECK_MSG(n_fields == 5, "listing line of %s has %d fields, expected 5", fields[0],
                  n_fields);
        CHECK_MSG(n_fields == 5 && strlen(fields[4]) > 0, "%s has no help text", fields[0]);
        if (n_fields < 4) continue;
        snprintf(rows[n].path, FIELD_BYTES, "%s", fields[0]);
        snprintf(rows[n].fallback, FIELD_BYTES, "%s", fields[3]);
        n++;
    }
    free(text);
    return n;
}

/* The keys of README's table, with the defaults of rows that give one per key ("" otherwise). */
static int readme_keys(const char *readme_path, key_row *rows) {
    FILE *file = fopen(readme_path, "r");
    CHECK_MSG(file != NULL, "cannot open %s (is DTRAIN_SOURCE_DIR set?)", readme_path);
    if (!file) return 0;
    char line[8192];
    bool in_section = false;
    int n = 0;
    while (fgets(line, sizeof line, file) && n < MAX_KEYS) {
        if (strncmp(line, "## ", 3) == 0)
            in_section = strncmp(line, "## Config reference", 19) == 0;
        if (!in_section || strncmp(line, "| `", 3) != 0) continue;
        /* | keys | default | meaning | */
        char *keys = line + 1, *bar = strchr(keys, '|');
        if (!bar) continue;
        *bar = '\0';
        char *defaults = bar + 1, *bar2 = strchr(defaults, '|');
        if (!bar2) continue;
        *bar2 = '\0';
        char key_items[8][FIELD_BYTES], default_items[8][FIELD_BYTES];
        int n_keys = split_list(keys, key_items, 8);
        trim(defaults);
        int n_defaults = split_list(defaults, default_items, 8);
        for (int i = 0; i < n_keys && n < MAX_KEYS; i++) {
            snprintf(rows[n].path, FIELD_BYTES, "%s", key_items[i]);
            snprintf(rows[n].fallback, FIELD_BYTES, "%s",
                     n_defaults == n_keys ? default_items[i] : "");
            n++;
        }
    }
    fclose(file);
    return n;
}

/* README writes 0 for 0.0 and {} or null as config.yaml does. */
static bool same_default(const char *readme, const char *program) {
    if (strcmp(readme, program) == 0) return true;
    char *end_a, *end_b;
    double a = strtod(readme, &end_a), b = strtod(program, &end_b);
    return end_a != readme && *end_a == '\0' && end_b != program && *end_b == '\0' && a == b;
}

int main(void) {
    const char *source = getenv("DTRAIN_SOURCE_DIR");
    char readme_path[4096];
    snprintf(readme_path, sizeof readme_path, "%s/README.md", source && *source ? source : "..");

    static key_row program[MAX_KEYS], readme[MAX_KEYS];
    int n_program = program_keys(program), n_readme = readme_keys(readme_path, readme);
    /* a parse that found nothing must not pass */
    CHECK_MSG(n_program >= 40, "the listing has %d keys", n_program);
    CHECK_MSG(n_readme >= 40, "README's config reference has %d keys", n_readme);

    for (int i = 0; i < n_program; i++)
        CHECK_MSG(count_keys(readme, n_readme, program[i].path) == 1,
                  "%s: in the key table, %d times in README's config reference", program[i].path,
                  count_keys(readme, n_readme, program[i].path));
    int compared = 0;
    for (int i = 0; i < n_readme; i++) {
        const key_row *row = find_row(program, n_program, readme[i].path);
        CHECK_MSG(row != NULL, "%s: in README's config reference, not in the key table",
                  readme[i].path);
        if (!row || !readme[i].fallback[0]) continue;
        compared++;
        CHECK_MSG(same_default(readme[i].fallback, row->fallback),
                  "%s: README's default '%s', the program's '%s'", readme[i].path,
                  readme[i].fallback, row->fallback);
    }
    CHECK_MSG(compared >= 30, "only %d defaults compared", compared);
    return dt_test_summary("test_config_reference");
}
