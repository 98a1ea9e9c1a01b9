/* "Did you mean ...?" for unknown config keys: the closest known name by edit distance
 * (insertions, deletions, substitutions and swaps of neighbours), or a prefix match. */
#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "config/config_internal.h"

/* Names longer than this are never close to a config key. */
enum { LONGEST_COMPARED = 64 };

/* Optimal-string-alignment distance, ignoring letter case. Both lengths <= LONGEST_COMPARED. */
static int edit_distance(const char *a, const char *b) {
    size_t n = strlen(a), m = strlen(b);
    int before_previous[LONGEST_COMPARED + 1], previous[LONGEST_COMPARED + 1],
        current[LONGEST_COMPARED + 1];
    for (size_t j = 0; j <= m; j++) previous[j] = (int)j;
    for (size_t i = 1; i <= n; i++) {
        current[0] = (int)i;
        for (size_t j = 1; j <= m; j++) {
            int ca = tolower((unsigned char)a[i - 1]), cb = tolower((unsigned char)b[j - 1]);
            int cost = ca != cb;
            int best = previous[j] + 1;
            if (current[j - 1] + 1 < best) best = current[j - 1] + 1;
            if (previous[j - 1] + cost < best) best = previous[j - 1] + cost;
            if (i > 1 && j > 1 && ca == tolower((unsigned char)b[j - 2]) &&
                tolower((unsigned char)a[i - 2]) == cb && before_previous[j - 2] + 1 < best)
                best = before_previous[j - 2] + 1;
            current[j] = best;
        }
        memcpy(before_previous, previous, sizeof previous);
        memcpy(previous, current, sizeof current);
    }
    return previous[m];
}

static int starts_with_ignoring_case(const char *text, const char *prefix) {
    size_t length = strlen(prefix);
    return strlen(text) >= length && strncasecmp(text, prefix, length) == 0;
}

const char *dt_config_suggest(const char *given, const char *const *candidates, int n_candidates) {
    size_t given_length = strlen(given);
    if (given_length == 0 || given_length > LONGEST_COMPARED) return NULL;
    const char *best = NULL;
    int best_distance = 3;
    for (int i = 0; i < n_candidates; i++) {
        size_t length = strlen(candidates[i]);
        if (length > LONGEST_COMPARED) continue;
        /* Short names allow fewer edits, so "xy" does not suggest "lr". */
        int allowed = (int)(length / 2);
        if (allowed < 1) allowed = 1;
        if (allowed > 2) allowed = 2;
        int distance = edit_distance(given, candidates[i]);
        if (distance <= allowed && distance < best_distance) {
            best = candidates[i];
            best_distance = distance;
        }
    }
    if (best) return best;
    for (int i = 0; i < n_candidates; i++) {
        size_t length = strlen(candidates[i]);
        if ((given_length >= 3 && starts_with_ignoring_case(candidates[i], given)) ||
            (length >= 3 && starts_with_ignoring_case(given, candidates[i])))
            return candidates[i];
    }
    return NULL;
}

/* The key of another section named exactly given (ignoring case), or NULL. */
static const dt_config_key *same_name_elsewhere(const char *section, const char *given) {
    int count = 0;
    const dt_config_key *keys = dt_config_keys(&count);
    for (int i = 0; i < count; i++)
        if ((!section || strcmp(keys[i].section, section) != 0) &&
            strcasecmp(keys[i].name, given) == 0)
            return &keys[i];
    return NULL;
}

static void join_names(const char *const *names, int count, char *buffer, size_t size) {
    size_t used = 0;
    buffer[0] = '\0';
    for (int i = 0; i < count && used < size; i++) {
        int n = snprintf(buffer + used, size - used, "%s%s", i ? ", " : "", names[i]);
        if (n < 0) break;
        used += (size_t)n;
    }
}

void dt_config_unknown_key_advice(const char *section, const char *given, bool full_paths,
                                  char *buffer, size_t size) {
    int n_sections = 0;
    const char *const *sections = dt_config_sections(&n_sections);
    const char *names[64];
    int n_names = section ? dt_config_section_key_names(section, names, 64) : 0;
    if (!section) {
        /* "data.root: x" at the top level: a dotted path written where nesting was meant. */
        const char *dot = strchr(given, '.');
        if (dot) {
            char head[64];
            size_t head_length = (size_t)(dot - given);
            if (head_length < sizeof head) {
                memcpy(head, given, head_length);
                head[head_length] = '\0';
                if (dt_config_find_key(head, dot + 1)) {
                    snprintf(buffer, size, "; in a file keys are nested: write '%s:' under '%s:'",
                             dot + 1, head);
                    return;
                }
            }
        }
    }
    const char *close = section ? dt_config_suggest(given, names, n_names)
                                : dt_config_suggest(given, sections, n_sections);
    if (close) {
        if (section && full_paths)
            snprintf(buffer, size, ", did you mean '%s.%s'?", section, close);
        else
            snprintf(buffer, size, ", did you mean '%s'?", close);
        return;
    }
    const dt_config_key *elsewhere = same_name_elsewhere(section, given);
    if (elsewhere) {
        snprintf(buffer, size, ", did you mean '%s'?", elsewhere->path);
        return;
    }
    char list[512];
    if (section) {
        join_names(names, n_names, list, sizeof list);
        snprintf(buffer, size, " (%s keys: %s)", section, list);
    } else {
        join_names(sections, n_sections, list, sizeof list);
        snprintf(buffer, size, " (sections: %s)", list);
    }
}
