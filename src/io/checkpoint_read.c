/* Finding and verifying checkpoints for a resume (include/dtrain/checkpoint.h): state.json's own
 * checksum, then every file's size and checksum; `latest` first, then older complete ones. */
#define _XOPEN_SOURCE 700
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dtrain/bytes.h"
#include "dtrain/checkpoint.h"
#include "dtrain/log.h"
#include "dtrain/platform.h"

#define MAX_MEMBER_BYTES ((size_t)1 << 36)

/* The value after "\n  \"key\": " in state.json, or NULL. */
static const char *field(const char *text, const char *key) {
    char pattern[96];
    snprintf(pattern, sizeof pattern, "\n  \"%s\": ", key);
    const char *at = strstr(text, pattern);
    return at ? at + strlen(pattern) : NULL;
}

static int read_long(const char *text, const char *key, long *out) {
    const char *v = field(text, key);
    if (!v) return -1;
    char *end = NULL;
    errno = 0;
    *out = strtol(v, &end, 10);
    return errno || end == v ? -1 : 0;
}

static int read_double(const char *text, const char *key, double *out) {
    const char *v = field(text, key);
    if (!v) return -1;
    char *end = NULL;
    *out = strtod(v, &end);
    return end == v ? -1 : 0;
}

static int read_hex(const char *text, const char *key, uint64_t *out) {
    const char *v = field(text, key);
    unsigned long long x;
    if (!v || sscanf(v, "\"%16llx\"", &x) != 1) return -1;
    *out = x;
    return 0;
}

/* Every field in range and consistent with the others: a hand-edited or forged state.json must
 * not overflow a counter or repeat steps (step = done epochs x steps per epoch + step in epoch). */
static int parse_state(const char *text, dt_ckpt_state *s) {
    long epoch, evaluated, tracked, ranks, seed;
    if (read_long(text, "epoch", &epoch) || read_long(text, "step", &s->step) ||
        read_long(text, "step_in_epoch", &s->step_in_epoch) ||
        read_long(text, "steps_per_epoch", &s->steps_per_epoch) ||
        read_long(text, "evaluated", &evaluated) ||
        read_double(text, "best_val_acc", &s->best_val_acc) ||
        read_double(text, "last_val_acc", &s->last_val_acc) ||
        read_long(text, "batches_tracked", &tracked) ||
        read_long(text, "skipped_in_row", &s->skipped_in_row) ||
        read_long(text, "skipped_total", &s->skipped_total) ||
        read_long(text, "train_seed", &seed) || read_hex(text, "config_hash", &s->config_hash) ||
        read_hex(text, "file_list_hash", &s->file_list_hash) || read_long(text, "ranks", &ranks) ||
        read_long(text, "global_batch", &s->global_batch))
        return -1;
    /* bounds far above any real run that keep every product below LONG_MAX */
    const long max_epochs = 1000000, max_steps_per_epoch = 1000000000L;
    if (epoch < 1 || epoch > max_epochs || s->steps_per_epoch < 1 ||
        s->steps_per_epoch > max_steps_per_epoch || s->step_in_epoch < 0 ||
        s->step_in_epoch > s->steps_per_epoch || evaluated < 0 || evaluated > 1 ||
        (evaluated && s->step_in_epoch != s->steps_per_epoch) || ranks < 1 || ranks > 1 << 20 ||
        s->global_batch < 1 || s->global_batch > 1L << 40 || tracked < 0 || s->skipped_in_row < 0 ||
        s->skipped_total < s->skipped_in_row ||
        s->step != (epoch - 1) * s->steps_per_epoch + s->step_in_epoch)
        return -1;
    /* accuracies: -1 before the first evaluation, else a fraction */
    if (!(s->best_val_acc == -1 || (s->best_val_acc >= 0 && s->best_val_acc <= 1)) ||
        !(s->last_val_acc == -1 || (s->last_val_acc >= 0 && s->last_val_acc <= 1)))
        return -1;
    s->epoch = (int)epoch;
    s->evaluated = (int)evaluated;
    s->batches_tracked = tracked;
    s->ranks = (int)ranks;
    s->train_seed = (uint64_t)seed;
    /* early stopping's state; absent from checkpoints written before it existed */
    long best_epoch = 0;
    s->early_stop_best = -1;
    s->early_stop_wait = 0;
    if (field(text, "early_stop_best") &&
        (read_double(text, "early_stop_best", &s->early_stop_best) ||
         read_long(text, "early_stop_best_epoch", &best_epoch) ||
         read_long(text, "early_stop_wait", &s->early_stop_wait)))
        return -1;
    if (!(s->early_stop_best == -1 || (s->early_stop_best >= 0 && s->early_stop_best <= 1)) ||
        best_epoch < 0 || best_epoch > epoch || s->early_stop_wait < 0 ||
        s->early_stop_wait > epoch)
        return -1;
    s->early_stop_best_epoch = (int)best_epoch;
    return 0;
}

static int verify_member(const char *dir, const char *state, const char *name, dt_error *err) {
    char pattern[128], path[4300];
    snprintf(pattern, sizeof pattern, "\"%s\": {\"bytes\": ", name);
    snprintf(path, sizeof path, "%s/%s", dir, name);
    const char *at = strstr(state, pattern);
    size_t bytes;
    unsigned long long want;
    if (!at || sscanf(at + strlen(pattern), "%zu, \"fnv1a64\": \"%16llx\"", &bytes, &want) != 2)
        return dt_fail_usage(err, "%s/state.json: no entry for %s", dir, name);
    struct stat st;
    if (stat(path, &st) != 0)
        return dt_fail_usage(err, "%s: missing (incomplete checkpoint): %s", path, strerror(errno));
    if ((size_t)st.st_size != bytes)
        return dt_fail_usage(err, "%s: %lld bytes, state.json says %zu (truncated or replaced)",
                             path, (long long)st.st_size, bytes);
    uint8_t *data = NULL;
    size_t size = 0;
    if (dt_read_file(path, MAX_MEMBER_BYTES, &data, &size, err)) {
        err->exit_code = DT_EXIT_USAGE;
        return -1;
    }
    uint64_t sum = dt_fnv1a64(DT_FNV1A64_INIT, data, size);
    free(data);
    if (size != bytes || sum != want)
        return dt_fail_usage(err,
                             "%s: checksum mismatch (FNV-1a %016llx, state.json says %016llx): "
                             "the file is damaged",
                             path, (unsigned long long)sum, want);
    return 0;
}

int dt_checkpoint_verify(const char *dir, dt_ckpt_state *state, dt_error *err) {
    char path[4300];
    snprintf(path, sizeof path, "%s/state.json", dir);
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
        return dt_fail_usage(err, "%s: not a checkpoint folder: %s", dir,
                             errno ? strerror(errno) : "not a folder");
    uint8_t *bytes = NULL;
    size_t size = 0;
    if (stat(path, &st) != 0)
        return dt_fail_usage(err, "%s: missing (incomplete checkpoint)", path);
    if (dt_read_file(path, 1 << 20, &bytes, &size, err)) {
        err->exit_code = DT_EXIT_USAGE;
        return -1;
    }
    const char *text = (const char *)bytes;
    const char *mark = strstr(text, "  \"checksum\": \"");
    unsigned long long want;
    int rc = 0;
    if (!mark || sscanf(mark, "  \"checksum\": \"%16llx\"", &want) != 1)
        rc =
            dt_fail_usage(err, "%s: no checksum line (truncated or not a dtrain checkpoint)", path);
    else if (dt_fnv1a64(DT_FNV1A64_INIT, text, (size_t)(mark - text)) != want)
        rc = dt_fail_usage(err, "%s: checksum mismatch: the file is damaged", path);
    else if (parse_state(text, state))
        rc = dt_fail_usage(err, "%s: unreadable or out-of-range values", path);
    else if (verify_member(dir, text, "model.safetensors", err) ||
             verify_member(dir, text, "optimizer.safetensors", err) ||
             verify_member(dir, text, "config.yaml", err) ||
             /* with train.ema_decay only: then state.json lists it */
             (strstr(text, "\"ema.safetensors\": ") &&
              verify_member(dir, text, "ema.safetensors", err)))
        rc = -1;
    free(bytes);
    return rc;
}

int dt_checkpoint_folder_step(const char *name, long *step) {
    if (strncmp(name, "step-", 5) != 0) return 0;
    char *end = NULL;
    long v = strtol(name + 5, &end, 10);
    if (!end || *end || end == name + 5 || v < 0) return 0;
    *step = v;
    return 1;
}

static int compare_desc(const void *a, const void *b) {
    long x = *(const long *)a, y = *(const long *)b;
    return x < y ? 1 : x > y ? -1 : 0;
}

int dt_checkpoint_list_steps(DIR *d, const char *skip_name, long *steps, int max) {
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) && n < max) {
        long s;
        if (dt_checkpoint_folder_step(e->d_name, &s) &&
            (!skip_name || strcmp(e->d_name, skip_name) != 0))
            steps[n++] = s;
    }
    closedir(d);
    qsort(steps, (size_t)n, sizeof steps[0], compare_desc);
    return n;
}

int dt_checkpoint_find(const char *output_dir, const char *explicit_dir, char *out, size_t size,
                       dt_ckpt_state *state, dt_error *err) {
    if (explicit_dir) {
        snprintf(out, size, "%s", explicit_dir);
        if (dt_checkpoint_verify(explicit_dir, state, err))
            return dt_error_prefix(err, "--resume: checkpoint refused");
        return 0;
    }
    char root[4200], latest_path[4300], latest_name[256] = "";
    snprintf(root, sizeof root, "%s/checkpoints", output_dir);
    snprintf(latest_path, sizeof latest_path, "%s/latest", root);
    /* dt_read_file never waits on a FIFO and says why it cannot read (a link loop, a folder) */
    uint8_t *pointer = NULL;
    size_t pointer_size = 0;
    dt_error latest_error = {{0}, 0};
    int latest_read = dt_read_file(latest_path, 4096, &pointer, &pointer_size, &latest_error);
    int latest_missing = latest_read != 0 && errno == ENOENT;
    if (latest_read == 0) {
        snprintf(latest_name, sizeof latest_name, "%.*s", (int)pointer_size, (char *)pointer);
        latest_name[strcspn(latest_name, "\r\n")] = '\0';
        free(pointer);
    }
    dt_error first = {{0}, 0};
    int tried = 0;
    if (latest_name[0] && !strchr(latest_name, '/')) {
        snprintf(out, size, "%s/%s", root, latest_name);
        if (dt_checkpoint_verify(out, state, &first) == 0) return 0;
        tried = 1;
        dt_warn("the latest checkpoint is refused: %s; trying the previous complete one",
                first.message);
    } else if (latest_missing) {
        if (access(root, F_OK) == 0) {
            snprintf(first.message, sizeof first.message, "%s: missing", latest_path);
            dt_warn("%s; trying the newest complete checkpoint", first.message);
            tried = 1;
        }
    } else {
        if (latest_read != 0)
            snprintf(first.message, sizeof first.message, "%s", latest_error.message);
        else
            snprintf(first.message, sizeof first.message, "%s: empty or not a checkpoint name",
                     latest_path);
        dt_warn("%s; trying the newest complete checkpoint", first.message);
        tried = 1;
    }
    DIR *d = opendir(root);
    if (!d) {
        if (errno != ENOENT && errno != ENOTDIR)
            return dt_fail_usage(err, "--resume: %s: %s", root, strerror(errno));
        snprintf(err->message, sizeof err->message, "no checkpoint in %s", output_dir);
        return 1;
    }
    long steps[4096];
    int n = dt_checkpoint_list_steps(d, latest_name, steps, 4096);
    for (int i = 0; i < n; i++) {
        snprintf(out, size, "%s/step-%08ld", root, steps[i]);
        dt_error e2 = {{0}, 0};
        if (dt_checkpoint_verify(out, state, &e2) == 0) {
            if (tried) dt_warn("resuming from the previous complete checkpoint %s", out);
            return 0;
        }
        dt_warn("checkpoint refused: %s", e2.message);
        if (!tried) first = e2;
        tried = 1;
    }
    if (tried)
        snprintf(err->message, sizeof err->message,
                 "no complete checkpoint in %s (first problem: %s)", root, first.message);
    else
        snprintf(err->message, sizeof err->message, "no checkpoint in %s", root);
    return 1;
}
