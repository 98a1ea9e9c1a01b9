/* A small stand-in for libFuzzer, so every build (gcc included, sanitizers or not) runs the fuzz
 * targets for a bounded time in ctest: each seed of the corpus once, then seeded random mutations
 * of them (bit flips, byte changes, cut, deleted, repeated and inserted ranges, dictionary tokens,
 * splices of two seeds) until -runs or -max_total_time is reached. Accepts libFuzzer's flags
 * -runs= -max_total_time= -seed= -max_len= -dict=, and corpus folders or files. A property
 * violation aborts (the targets call abort), which fails the test; the input is written to
 * fuzz-crash-input first. */
#include <dirent.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct blob {
    uint8_t *bytes;
    size_t size;
} blob;

typedef struct blob_list {
    blob *items;
    size_t count, capacity;
} blob_list;

static const uint8_t *current_input;
static size_t current_size;

static void push(blob_list *list, const uint8_t *bytes, size_t size) {
    if (list->count == list->capacity) {
        list->capacity = list->capacity ? 2 * list->capacity : 16;
        list->items = realloc(list->items, list->capacity * sizeof *list->items);
        if (!list->items) exit(2);
    }
    blob *b = &list->items[list->count++];
    b->bytes = malloc(size ? size : 1);
    if (!b->bytes) exit(2);
    memcpy(b->bytes, bytes, size);
    b->size = size;
}

static void load_file(blob_list *list, const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return;
    uint8_t buffer[1 << 16];
    size_t n = fread(buffer, 1, sizeof buffer, f);
    fclose(f);
    push(list, buffer, n);
}

static void load_corpus(blob_list *list, const char *path) {
    DIR *dir = opendir(path);
    if (!dir) {
        load_file(list, path);
        return;
    }
    struct dirent *entry;
    while ((entry = readdir(dir))) {
        if (entry->d_name[0] == '.') continue;
        char child[4096];
        snprintf(child, sizeof child, "%s/%s", path, entry->d_name);
        load_file(list, child);
    }
    closedir(dir);
}

static int hex_value(int c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* libFuzzer dictionary lines: [name=]"token" with \\ \" and \xHH escapes; # comments. */
static void load_dict(blob_list *list, const char *path) {
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "cannot open dictionary %s\n", path);
        exit(2);
    }
    char line[1024];
    while (fgets(line, sizeof line, f)) {
        char *open = strchr(line, '"'), *close = strrchr(line, '"');
        if (line[0] == '#' || !open || close == open) continue;
        uint8_t token[1024];
        size_t n = 0;
        for (char *p = open + 1; p < close; p++) {
            if (*p == '\\' && p + 1 < close && p[1] == 'x' && p + 3 < close &&
                hex_value(p[2]) >= 0 && hex_value(p[3]) >= 0) {
                token[n++] = (uint8_t)(hex_value(p[2]) * 16 + hex_value(p[3]));
                p += 3;
            } else if (*p == '\\' && p + 1 < close) {
                token[n++] = (uint8_t) * ++p;
            } else {
                token[n++] = (uint8_t)*p;
            }
        }
        push(list, token, n);
    }
    fclose(f);
}

static uint64_t rng_state;
static uint64_t next_random(void) { /* SplitMix64 */
    uint64_t z = (rng_state += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}
static size_t below(size_t n) {
    return n ? (size_t)(next_random() % n) : 0;
}

/* Inserts bytes at position at of buffer (size *size, room max_len). */
static void insert(uint8_t *buffer, size_t *size, size_t max_len, size_t at, const uint8_t *bytes,
                   size_t n) {
    if (*size + n > max_len) n = max_len - *size;
    memmove(buffer + at + n, buffer + at, *size - at);
    memcpy(buffer + at, bytes, n);
    *size += n;
}

static void mutate(uint8_t *buffer, size_t *size, size_t max_len, const blob_list *corpus,
                   const blob_list *dict) {
    static const uint8_t interesting[] = {0,   1,   0x7f, 0x80, 0xff, '\n', ' ', '"', ':',  ',',
                                          '[', ']', '{',  '}',  '-',  '.',  'e', '9', '\\', 0x1b};
    int steps = 1 + (int)below(4);
    for (int s = 0; s < steps; s++) {
        size_t at = below(*size + 1);
        switch (below(8)) {
        case 0: /* flip a bit */
            if (*size) buffer[below(*size)] ^= (uint8_t)(1u << below(8));
            break;
        case 1: /* an interesting byte */
            if (*size) buffer[below(*size)] = interesting[below(sizeof interesting)];
            break;
        case 2: /* cut */
            *size = below(*size + 1);
            break;
        case 3: { /* delete a range */
            size_t n = below(*size - (at < *size ? at : *size) + 1);
            if (at < *size) {
                memmove(buffer + at, buffer + at + n, *size - at - n);
                *size -= n;
            }
            break;
        }
        case 4: { /* repeat a range */
            if (!*size) break;
            size_t from = below(*size), n = 1 + below(*size - from);
            uint8_t copy[256];
            if (n > sizeof copy) n = sizeof copy;
            memcpy(copy, buffer + from, n);
            insert(buffer, size, max_len, at, copy, n);
            break;
        }
        case 5: { /* random bytes */
            uint8_t bytes[8];
            size_t n = 1 + below(sizeof bytes);
            for (size_t i = 0; i < n; i++) bytes[i] = (uint8_t)next_random();
            insert(buffer, size, max_len, at, bytes, n);
            break;
        }
        case 6: /* a dictionary token */
            if (dict->count) {
                const blob *token = &dict->items[below(dict->count)];
                insert(buffer, size, max_len, at, token->bytes, token->size);
            }
            break;
        default: { /* splice: the tail of another seed */
            const blob *other = &corpus->items[below(corpus->count)];
            size_t from = below(other->size + 1);
            *size = at < *size ? at : *size;
            insert(buffer, size, max_len, *size, other->bytes + from, other->size - from);
            break;
        }
        }
    }
}

static void save_crash(int signal_number) {
    FILE *f = fopen("fuzz-crash-input", "wb");
    if (f && current_input) fwrite(current_input, 1, current_size, f);
    if (f) fclose(f);
    fprintf(stderr,
            "fuzz driver: crash (signal %d) on a %zu-byte input, saved to "
            "fuzz-crash-input\n",
            signal_number, current_size);
    signal(signal_number, SIG_DFL);
    raise(signal_number);
}

static void run_one(const uint8_t *bytes, size_t size) {
    current_input = bytes;
    current_size = size;
    LLVMFuzzerTestOneInput(bytes, size);
}

int main(int argc, char **argv) {
    long runs = 10000;
    double max_seconds = 10;
    size_t max_len = 4096;
    rng_state = 1;
    blob_list corpus = {0}, dict = {0};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strncmp(a, "-runs=", 6) == 0)
            runs = atol(a + 6);
        else if (strncmp(a, "-max_total_time=", 16) == 0)
            max_seconds = atof(a + 16);
        else if (strncmp(a, "-seed=", 6) == 0)
            rng_state = strtoull(a + 6, NULL, 10);
        else if (strncmp(a, "-max_len=", 9) == 0)
            max_len = (size_t)atol(a + 9);
        else if (strncmp(a, "-dict=", 6) == 0)
            load_dict(&dict, a + 6);
        else if (a[0] == '-')
            fprintf(stderr, "fuzz driver: ignoring %s\n", a);
        else
            load_corpus(&corpus, a);
    }
    if (max_len < 16) max_len = 16;
    signal(SIGABRT, save_crash);
    signal(SIGSEGV, save_crash);
    if (corpus.count == 0) push(&corpus, (const uint8_t *)"", 0);
    for (size_t i = 0; i < corpus.count; i++) run_one(corpus.items[i].bytes, corpus.items[i].size);
    uint8_t *buffer = malloc(max_len);
    if (!buffer) return 2;
    struct timespec start, now;
    clock_gettime(CLOCK_MONOTONIC, &start);
    long done = 0;
    for (; done < runs; done++) {
        if (done % 64 == 0) {
            clock_gettime(CLOCK_MONOTONIC, &now);
            double elapsed =
                (double)(now.tv_sec - start.tv_sec) + 1e-9 * (double)(now.tv_nsec - start.tv_nsec);
            if (elapsed > max_seconds) break;
        }
        const blob *seed = &corpus.items[below(corpus.count)];
        size_t size = seed->size < max_len ? seed->size : max_len;
        memcpy(buffer, seed->bytes, size);
        mutate(buffer, &size, max_len, &corpus, &dict);
        run_one(buffer, size);
    }
    printf("fuzz driver: %zu seeds and %ld mutated inputs, no property violated\n", corpus.count,
           done);
    free(buffer);
    for (size_t i = 0; i < corpus.count; i++) free(corpus.items[i].bytes);
    for (size_t i = 0; i < dict.count; i++) free(dict.items[i].bytes);
    free(corpus.items);
    free(dict.items);
    return 0;
}
