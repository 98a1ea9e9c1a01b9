/* state.json of a checkpoint with forged values: every field is range-checked and the position
 * fields must agree (step = done epochs x steps per epoch + step in epoch), so a hand-edited file
 * with intact checksums can neither overflow a counter nor repeat steps. The folders are written
 * here with correct member and state checksums, so only the values decide. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "check.h"
#include "dtrain/bytes.h"
#include "dtrain/checkpoint.h"
#include "dtrain/durable.h"

static char root[256];

typedef struct fields {
    const char *epoch, *step, *step_in_epoch, *steps_per_epoch, *evaluated, *best, *last, *ranks,
        *skipped_in_row, *skipped_total, *batches_tracked;
} fields;

static const fields valid = {"2", "12", "6", "6", "1", "0.75", "0.25", "1", "0", "0", "12"};

static void write_file(const char *dir, const char *name, const char *text) {
    char path[600];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    CHECK(f != NULL);
    if (!f) return;
    fputs(text, f);
    fclose(f);
}

/* A checkpoint folder named name whose state.json holds f; returns its path (static). */
static const char *make_checkpoint(const char *name, const fields *f) {
    static char dir[512];
    snprintf(dir, sizeof dir, "%s/%s", root, name);
    mkdir(dir, 0755);
    static const char *const members[] = {"model.safetensors", "optimizer.safetensors",
                                          "config.yaml"};
    static const char *const contents[] = {"weights", "momentum", "train: {epochs: 2}\n"};
    dt_text t = {0};
    dt_text_printf(&t,
                   "{\n  \"format\": \"dtrain-checkpoint-1\",\n  \"epoch\": %s,\n  \"step\": %s,\n"
                   "  \"step_in_epoch\": %s,\n  \"steps_per_epoch\": %s,\n  \"evaluated\": %s,\n"
                   "  \"best_val_acc\": %s,\n  \"last_val_acc\": %s,\n"
                   "  \"batches_tracked\": %s,\n  \"skipped_in_row\": %s,\n"
                   "  \"skipped_total\": %s,\n  \"train_seed\": 0,\n"
                   "  \"config_hash\": \"0000000000000001\",\n"
                   "  \"file_list_hash\": \"0000000000000002\",\n"
                   "  \"ranks\": %s,\n  \"global_batch\": 2,\n  \"files\": {",
                   f->epoch, f->step, f->step_in_epoch, f->steps_per_epoch, f->evaluated, f->best,
                   f->last, f->batches_tracked, f->skipped_in_row, f->skipped_total, f->ranks);
    for (int i = 0; i < 3; i++) {
        write_file(dir, members[i], contents[i]);
        size_t n = strlen(contents[i]);
        dt_text_printf(&t, "%s\n    \"%s\": {\"bytes\": %zu, \"fnv1a64\": \"%016llx\"}",
                       i ? "," : "", members[i], n,
                       (unsigned long long)dt_fnv1a64(DT_FNV1A64_INIT, contents[i], n));
    }
    dt_text_printf(&t, "\n  },\n");
    uint64_t sum = dt_fnv1a64(DT_FNV1A64_INIT, t.data, t.length);
    dt_text_printf(&t, "  \"checksum\": \"%016llx\"\n}\n", (unsigned long long)sum);
    write_file(dir, "state.json", t.data);
    free(t.data);
    return dir;
}

static void expect_refused(const char *what, fields f) {
    dt_ckpt_state state;
    dt_error err = {{0}, 0};
    const char *dir = make_checkpoint("forged", &f);
    int rc = dt_checkpoint_verify(dir, &state, &err);
    CHECK_MSG(rc != 0, "%s: accepted (epoch %d, step %ld, best %g)", what, state.epoch, state.step,
              state.best_val_acc);
    CHECK_MSG(rc == 0 || strstr(err.message, "out-of-range values"), "%s: %s", what, err.message);
    CHECK_MSG(rc == 0 || err.exit_code == DT_EXIT_USAGE, "%s: exit code %d", what, err.exit_code);
}

int main(void) {
    snprintf(root, sizeof root, "/tmp/dtrain-ckpt-state-XXXXXX");
    CHECK(mkdtemp(root) != NULL);

    dt_ckpt_state state;
    dt_error err = {{0}, 0};
    CHECK_MSG(dt_checkpoint_verify(make_checkpoint("valid", &valid), &state, &err) == 0, "%s",
              err.message);
    CHECK_INT_EQ(state.epoch, 2);
    CHECK_INT_EQ(state.step, 12);

    fields f = valid;
    f.epoch = "2147483647"; /* epoch + 1 overflows an int */
    f.step = "12884901882";
    expect_refused("epoch 2147483647", f);
    f = valid;
    f.epoch = "4294967298"; /* wraps to 2 as an int */
    f.step = "25769803788";
    expect_refused("epoch 4294967298", f);
    f = valid;
    f.step = "999999999999"; /* not the position of epoch 2, step 6 of 6 */
    expect_refused("step 999999999999", f);
    f = valid;
    f.best = "nan";
    expect_refused("best_val_acc nan", f);
    f = valid;
    f.last = "inf";
    expect_refused("last_val_acc inf", f);
    f = valid;
    f.best = "1.5";
    expect_refused("best_val_acc 1.5", f);
    f = valid;
    f.evaluated = "2";
    expect_refused("evaluated 2", f);
    f = valid;
    f.evaluated = "1";
    f.step_in_epoch = "3";
    f.step = "9";
    expect_refused("evaluated before the epoch's end", f);
    f = valid;
    f.ranks = "4294967297"; /* wraps to 1 as an int */
    expect_refused("ranks 4294967297", f);
    f = valid;
    f.skipped_in_row = "3";
    f.skipped_total = "1";
    expect_refused("more skipped in a row than in all", f);
    f = valid;
    f.batches_tracked = "-5";
    expect_refused("batches_tracked -5", f);
    f = valid;
    f.steps_per_epoch = "9223372036854775807";
    expect_refused("steps_per_epoch LONG_MAX", f);

    dt_remove_tree(root);
    return dt_test_summary("test_checkpoint_state");
}
