/* Fuzz harness for the checkpoint folder a resume reads: state.json, checkpoints/latest and the
 * member files. Every input becomes output.dir/checkpoints/{latest, step-00000001/...}; the
 * checkpoint search must then return at once (never waiting on a FIFO at latest, nor looping on
 * a link loop) either a checkpoint whose state is in range and consistent, or "nothing usable"
 * or an error, each with a message.
 *
 * Input: a flags byte, then up to five parts separated by "\n==\n": the state.json text before
 * its files block, latest, model.safetensors, optimizer.safetensors, config.yaml. Flags: 1 adds
 * the files block with the members' true sizes and checksums, 2 adds state.json's true checksum
 * line (so that the values themselves are reached), 4 makes latest a link to itself, 8 a FIFO. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dtrain/bytes.h"
#include "dtrain/checkpoint.h"
#include "dtrain/durable.h"

static char root[256], out_dir[300], step_dir[400];
static int report_fd = 2;

static void fail_property(const char *what, const char *detail) {
    dprintf(report_fd, "fuzz_checkpoint: property violated: %s (%s)\n", what, detail);
    abort();
}

static void clean_up(void) {
    dt_remove_tree(root);
}

static void set_up(void) {
    snprintf(root, sizeof root, "%s/dtrain-fuzz-ckpt-XXXXXX",
             getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (!mkdtemp(root)) fail_property("a temporary folder", root);
    atexit(clean_up);
    snprintf(out_dir, sizeof out_dir, "%s/out", root);
    snprintf(step_dir, sizeof step_dir, "%s/checkpoints/step-00000001", out_dir);
    /* the search warns on every refused checkpoint: keep stderr for property violations */
    report_fd = dup(2);
    if (!freopen("/dev/null", "w", stderr)) fail_property("silencing warnings", "/dev/null");
}

static void put(const char *dir, const char *name, const uint8_t *data, size_t size) {
    char path[600];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f) fail_property("writing a member", path);
    if (size) fwrite(data, 1, size, f);
    fclose(f);
}

static void check_state(const dt_ckpt_state *s, const char *where) {
    if (s->epoch < 1 || s->steps_per_epoch < 1 || s->step_in_epoch < 0 ||
        s->step_in_epoch > s->steps_per_epoch ||
        s->step != (long)(s->epoch - 1) * s->steps_per_epoch + s->step_in_epoch)
        fail_property("an accepted position is consistent", where);
    if (!isfinite(s->best_val_acc) || s->best_val_acc > 1 || s->best_val_acc < -1 ||
        !isfinite(s->last_val_acc) || s->last_val_acc > 1 || s->last_val_acc < -1)
        fail_property("accepted accuracies are fractions", where);
    if (s->ranks < 1 || s->global_batch < 1 || s->batches_tracked < 0 || s->skipped_in_row < 0 ||
        s->skipped_total < s->skipped_in_row || (s->evaluated != 0 && s->evaluated != 1))
        fail_property("accepted counters are in range", where);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!root[0]) set_up();
    if (size < 1) return 0;
    int flags = data[0];
    const uint8_t *part[5] = {0};
    size_t part_size[5] = {0};
    const uint8_t *at = data + 1, *end = data + size;
    for (int i = 0; i < 5; i++) {
        part[i] = at;
        const uint8_t *sep = i < 4 ? memmem(at, (size_t)(end - at), "\n==\n", 4) : NULL;
        part_size[i] = (size_t)((sep ? sep : end) - at);
        if (!sep) break;
        at = sep + 4;
    }
    dt_remove_tree(out_dir);
    char checkpoints[400];
    snprintf(checkpoints, sizeof checkpoints, "%s/checkpoints", out_dir);
    if (mkdir(out_dir, 0755) || mkdir(checkpoints, 0755) || mkdir(step_dir, 0755))
        fail_property("creating the checkpoint folder", step_dir);
    static const char *const members[] = {"model.safetensors", "optimizer.safetensors",
                                          "config.yaml"};
    for (int i = 0; i < 3; i++) put(step_dir, members[i], part[2 + i], part_size[2 + i]);
    dt_text state = {0};
    dt_text_append(&state, (const char *)part[0], part_size[0]);
    if (flags & 1) {
        dt_text_printf(&state, "  \"files\": {");
        for (int i = 0; i < 3; i++)
            dt_text_printf(
                &state, "%s\n    \"%s\": {\"bytes\": %zu, \"fnv1a64\": \"%016llx\"}", i ? "," : "",
                members[i], part_size[2 + i],
                (unsigned long long)dt_fnv1a64(DT_FNV1A64_INIT, part[2 + i], part_size[2 + i]));
        dt_text_printf(&state, "\n  },\n");
    }
    if (flags & 2) {
        uint64_t sum = dt_fnv1a64(DT_FNV1A64_INIT, state.data ? state.data : "", state.length);
        dt_text_printf(&state, "  \"checksum\": \"%016llx\"\n}\n", (unsigned long long)sum);
    }
    if (state.failed) fail_property("building state.json", "out of memory");
    put(step_dir, "state.json", (const uint8_t *)(state.data ? state.data : ""), state.length);
    free(state.data);
    char latest[500];
    snprintf(latest, sizeof latest, "%s/latest", checkpoints);
    if (flags & 4) {
        if (symlink("latest", latest)) fail_property("a link loop at latest", latest);
    } else if (flags & 8) {
        if (mkfifo(latest, 0644)) fail_property("a FIFO at latest", latest);
    } else {
        put(checkpoints, "latest", part[1], part_size[1]);
    }

    char found[4400];
    dt_ckpt_state s;
    dt_error err = {{0}, 0};
    int rc = dt_checkpoint_find(out_dir, NULL, found, sizeof found, &s, &err);
    if (rc < -1 || rc > 1) fail_property("the search returns -1, 0 or 1", "");
    if (rc != 0 && !err.message[0]) fail_property("a refusal says why", "empty message");
    if (rc == 0) check_state(&s, found);
    dt_error err2 = {{0}, 0};
    rc = dt_checkpoint_verify(step_dir, &s, &err2);
    if (rc != 0 && !err2.message[0]) fail_property("a refused checkpoint says why", "");
    if (rc == 0) check_state(&s, step_dir);
    return 0;
}
