/* What dtrain keeps as a state and what it prints from untrusted names:
 *   - no checkpoint holds NaN/Inf (train.lr=3e38 overflows the weights in the first update; the
 *     error says so), and --resume refuses a checkpoint whose momentum is not finite;
 *   - `dtrain predict` escapes file and class names (tab, newline, ESC, bytes that are not
 *     UTF-8) in its text output and keeps --json valid UTF-8 JSON, one record per line;
 *   - `dtrain predict` checks preprocessing like the training config (--mean nan, --std 1e-45,
 *     metadata std inf, metadata resize bogus: exit 2 naming the flag or metadata key);
 *   - `dtrain eval` refuses a folder whose class names are not the model's.
 * usage: state_and_names_check DTRAIN */
#define _GNU_SOURCE
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "dtrain/bytes.h"
#include "dtrain/checkpoint.h"
#include "dtrain/safetensors.h"
#include "imagegen.h"
#include "process.h"

static char workdir[256];
static const char *dtrain_bin;

/* `dtrain ARGS` in workdir, stdout to NAME.out and stderr to NAME.err; the exit code. */
static int run(const char *name, const char *args) {
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "cd %s && %s %s > %s.out 2> %s.err", workdir, dtrain_bin, args, name,
             name);
    return dt_test_run(cmd);
}

static char *output(const char *name, const char *ext) {
    char path[600];
    snprintf(path, sizeof path, "%s/%s.%s", workdir, name, ext);
    char *text = dt_test_read_text(path);
    return text ? text : strdup("");
}

static int err_has(const char *name, const char *needle) {
    char *text = output(name, "err");
    int found = strstr(text, needle) != NULL;
    if (!found) fprintf(stderr, "---- %s.err lacks \"%s\" ----\n%s\n", name, needle, text);
    free(text);
    return found;
}

static int read_all(const char *path, uint8_t **bytes, size_t *size) {
    dt_error err = {{0}, 0};
    return dt_testgen_read_file(path, bytes, size, &err);
}

static int write_all(const char *path, const void *bytes, size_t size) {
    dt_error err = {{0}, 0};
    return dt_testgen_write_bytes(path, bytes, size, &err);
}

/* Every F32 tensor of a safetensors file finite (and the file readable). */
static int all_finite(const char *path) {
    dt_safetensors st;
    dt_error err = {{0}, 0};
    if (dt_safetensors_read(path, &st, &err)) return 0;
    int ok = 1;
    for (size_t i = 0; i < st.n_tensors && ok; i++) {
        const dt_st_tensor *t = &st.tensors[i];
        if (t->dtype != DT_ST_F32) continue;
        size_t n = (t->end - t->begin) / 4;
        float *v = malloc(n * sizeof *v + 4);
        ok = v && dt_st_tensor_to_float(t, v, n, &err) == 0;
        for (size_t k = 0; ok && k < n; k++) ok = isfinite(v[k]);
        free(v);
    }
    dt_safetensors_free(&st);
    return ok;
}

/* A copy of a safetensors file with `from` replaced by `to` in its JSON header. */
static int edit_header(const char *src, const char *dst, const char *from, const char *to) {
    uint8_t *bytes;
    size_t size;
    if (read_all(src, &bytes, &size)) return -1;
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--) n = n << 8 | bytes[i];
    char *header = strndup((const char *)bytes + 8, (size_t)n);
    char *at = header ? strstr(header, from) : NULL;
    int rc = -1;
    if (at) {
        size_t before = (size_t)(at - header), flen = strlen(from), tlen = strlen(to);
        uint64_t text = n - flen + tlen, m = (text + 7) / 8 * 8; /* padded with spaces */
        size_t out_size = size - n + m;
        uint8_t *out = malloc(out_size);
        for (int i = 0; out && i < 8; i++) out[i] = (uint8_t)(m >> (8 * i));
        if (out) {
            memcpy(out + 8, header, before);
            memcpy(out + 8 + before, to, tlen);
            memcpy(out + 8 + before + tlen, at + flen, n - before - flen);
            memset(out + 8 + text, ' ', m - text);
            memcpy(out + 8 + m, bytes + 8 + n, size - 8 - n);
            rc = write_all(dst, out, out_size);
        }
        free(out);
    }
    free(header);
    free(bytes);
    return rc;
}

/* ---- non-finite states ---- */

static const char *base = "base.yaml";

static void test_overflowing_lr(void) {
    char args[600];
    snprintf(args, sizeof args, "%s output.dir=%s/huge train.lr=3e38 output.checkpoint_every=1",
             base, workdir);
    CHECK_INT_EQ(run("huge", args), 1);
    CHECK(err_has("huge", "not finite"));
    CHECK(err_has("huge", "train.lr"));
    /* nothing called a good state holds NaN or Inf */
    char cmd[800], path[900];
    snprintf(cmd, sizeof cmd, "ls %s/huge/checkpoints 2>/dev/null | grep '^step-' > %s/huge.list",
             workdir, workdir);
    dt_test_run(cmd);
    snprintf(path, sizeof path, "%s/huge.list", workdir);
    char *list = dt_test_read_text(path);
    for (char *save = NULL, *step = list ? strtok_r(list, "\n", &save) : NULL; step;
         step = strtok_r(NULL, "\n", &save)) {
        snprintf(path, sizeof path, "%s/huge/checkpoints/%s/model.safetensors", workdir, step);
        CHECK_MSG(all_finite(path), "%s holds NaN or Inf", path);
        snprintf(path, sizeof path, "%s/huge/checkpoints/%s/optimizer.safetensors", workdir, step);
        CHECK_MSG(all_finite(path), "%s holds NaN or Inf", path);
    }
    free(list);
    snprintf(path, sizeof path, "%s/huge/model.safetensors", workdir);
    CHECK(access(path, F_OK) != 0);
}

/* A complete checkpoint whose momentum holds a NaN (its checksums made to match): --resume
 * refuses it, naming the file. */
static void test_nan_momentum(void) {
    char args[600], dir[600], path[700];
    snprintf(args, sizeof args, "%s output.dir=%s/mom", base, workdir);
    CHECK_INT_EQ(run("mom", args), 0);
    snprintf(dir, sizeof dir, "%s/mom/checkpoints/step-00000003", workdir);
    snprintf(path, sizeof path, "%s/optimizer.safetensors", dir);
    uint8_t *bytes;
    size_t size;
    CHECK(read_all(path, &bytes, &size) == 0);
    if (!bytes) return;
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--) n = n << 8 | bytes[i];
    uint64_t before_sum = dt_fnv1a64(DT_FNV1A64_INIT, bytes, size);
    const float nan_value = NAN;
    memcpy(bytes + 8 + n + 16, &nan_value, 4);
    uint64_t after_sum = dt_fnv1a64(DT_FNV1A64_INIT, bytes, size);
    CHECK(write_all(path, bytes, size) == 0);
    free(bytes);
    char state_path[800], old_hex[20], new_hex[20];
    snprintf(state_path, sizeof state_path, "%s/state.json", dir);
    char *state = dt_test_read_text(state_path);
    snprintf(old_hex, sizeof old_hex, "%016llx", (unsigned long long)before_sum);
    snprintf(new_hex, sizeof new_hex, "%016llx", (unsigned long long)after_sum);
    char *at = state ? strstr(state, old_hex) : NULL;
    CHECK(at != NULL);
    if (!at) return free(state);
    memcpy(at, new_hex, 16);
    char *mark = strstr(state, "  \"checksum\": \"");
    CHECK(mark != NULL);
    if (!mark) return free(state);
    snprintf(new_hex, sizeof new_hex, "%016llx",
             (unsigned long long)dt_fnv1a64(DT_FNV1A64_INIT, state, (size_t)(mark - state)));
    memcpy(mark + 15, new_hex, 16);
    CHECK(dt_test_write_text(state_path, state) == 0);
    free(state);
    dt_ckpt_state st;
    dt_error err = {{0}, 0};
    CHECK_MSG(dt_checkpoint_verify(dir, &st, &err) == 0, "the edited checkpoint: %s", err.message);
    snprintf(args, sizeof args, "%s output.dir=%s/mom --resume %s train.epochs=3", base, workdir,
             dir);
    CHECK_INT_EQ(run("mom-resume", args), 2);
    CHECK(err_has("mom-resume", "optimizer.safetensors"));
    CHECK(err_has("mom-resume", "NaN or infinite"));
}

/* ---- predict and eval ---- */

/* Valid UTF-8 with no raw control character but the line ends (and tabs, the text output's
 * field separator, where allowed). */
static int clean_utf8(const char *text, int tabs) {
    const uint8_t *p = (const uint8_t *)text;
    size_t left = strlen(text);
    while (left > 0) {
        uint32_t code = 0;
        size_t n = dt_utf8_decode(p, left, &code);
        if (n == 0 || (code < 0x20 && code != '\n' && !(tabs && code == '\t')) || code == 0x7F)
            return 0;
        p += n;
        left -= n;
    }
    return 1;
}

static int lines(const char *text) {
    return dt_test_count(text, "\n");
}

static void test_predict_names(const char *model) {
    /* image files whose names hold a tab, a newline, ESC and a byte that is not UTF-8 */
    char src[600], cmd[2400];
    snprintf(src, sizeof src, "%s/data/class00", workdir);
    snprintf(cmd, sizeof cmd,
             "cd %s && mkdir -p odd && f=$(ls %s | head -1) && cp %s/$f \"odd/a$(printf '\\t')"
             "b.png\" && cp %s/$f \"odd/c$(printf '\\nzz\\t1.0\\n')d.png\" && cp %s/$f "
             "\"odd/e$(printf '\\033[2J')f.png\" && cp %s/$f \"odd/g$(printf '\\377')h.png\" && "
             "printf 'cat\\tdog\\nbird\\033[31m\\nfish\\n\\377x\\n' > odd-classes.txt",
             workdir, src, src, src, src, src);
    CHECK(dt_test_run(cmd) == 0);
    char args[1200];
    snprintf(args, sizeof args, "predict %s odd --classes odd-classes.txt --top-k 4", model);
    CHECK_INT_EQ(run("names", args), 0);
    char *text = output("names", "out");
    CHECK_MSG(lines(text) == 4, "4 images, %d lines:\n%s", lines(text), text);
    CHECK_MSG(clean_utf8(text, 1) && !strchr(text, '\033'), "raw control characters:\n%s", text);
    /* a record is the name, then a tab and "class p" per class: 4 + 1 fields */
    for (char *save = NULL, *line = strtok_r(text, "\n", &save); line;
         line = strtok_r(NULL, "\n", &save))
        CHECK_MSG(dt_test_count(line, "\t") == 4, "a forged field: %s", line);
    free(text);
    snprintf(args, sizeof args, "predict %s odd --classes odd-classes.txt --top-k 4 --json", model);
    CHECK_INT_EQ(run("names-json", args), 0);
    text = output("names-json", "out");
    CHECK_MSG(lines(text) == 4 && clean_utf8(text, 0), "--json:\n%s", text);
    free(text);
    /* and a JSON reader agrees, where one is installed */
    snprintf(cmd, sizeof cmd,
             "command -v python3 >/dev/null || exit 0; cd %s && python3 -c 'import json,sys\n"
             "rows=[json.loads(l) for l in open(\"names-json.out\",encoding=\"utf-8\")]\n"
             "assert len(rows)==4 and all(len(r[\"top\"])==4 for r in rows)\n"
             "assert any(\"\\t\" in r[\"path\"] for r in rows)'",
             workdir);
    CHECK_MSG(dt_test_run(cmd) == 0, "predict --json is not valid JSON with the names kept");
}

static void test_predict_preprocessing(const char *model) {
    static const struct {
        const char *args, *named;
    } flags[] = {{"--mean nan,0,0", "--mean"},
                 {"--std 1e-45,1,1", "--std"},
                 {"--std inf,1,1", "--std"},
                 {"--mean 1e39,0,0", "--mean"}};
    char args[1200];
    for (size_t i = 0; i < sizeof flags / sizeof flags[0]; i++) {
        snprintf(args, sizeof args, "predict %s data %s", model, flags[i].args);
        CHECK_MSG(run("pre", args) == 2, "%s: not refused", flags[i].args);
        CHECK(err_has("pre", flags[i].named));
    }
    /* "key":"OLD" becomes "key":"NEW","unused":"OLD": still valid JSON with NEW in force */
    static const struct {
        const char *from, *to, *named;
    } meta[] = {{"\"resize\":\"", "\"resize\":\"bogus\",\"unused\":\"", "metadata resize"},
                {"\"std\":\"", "\"std\":\"inf,1,1\",\"unused\":\"", "metadata std"},
                {"\"std\":\"", "\"std\":\"1e-45,1,1\",\"unused\":\"", "metadata std"},
                {"\"mean\":\"", "\"mean\":\"nan,0,0\",\"unused\":\"", "metadata mean"}};
    char edited[700];
    snprintf(edited, sizeof edited, "%s/edited.safetensors", workdir);
    for (size_t i = 0; i < sizeof meta / sizeof meta[0]; i++) {
        CHECK_MSG(edit_header(model, edited, meta[i].from, meta[i].to) == 0, "editing %s",
                  meta[i].from);
        snprintf(args, sizeof args, "predict %s data", edited);
        CHECK_MSG(run("meta", args) == 2, "%s: not refused", meta[i].to);
        CHECK(err_has("meta", meta[i].named));
    }
}

static void test_eval_classes(const char *model) {
    char cmd[1200], args[1200];
    /* the same images and class count, one class folder renamed */
    snprintf(cmd, sizeof cmd, "cd %s && cp -r data swapped && mv swapped/class00 swapped/aardvark",
             workdir);
    CHECK(dt_test_run(cmd) == 0);
    snprintf(args, sizeof args,
             "eval %s --model %s data.root=%s/swapped data.val_fraction=1 output.dir=%s/ev", base,
             model, workdir, workdir);
    CHECK_INT_EQ(run("eval-swapped", args), 2);
    CHECK(err_has("eval-swapped", "are not the classes of"));
    snprintf(args, sizeof args, "eval %s --model %s data.val_fraction=1 output.dir=%s/ev-same",
             base, model, workdir);
    CHECK_INT_EQ(run("eval-same", args), 0);
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s DTRAIN\n", argv[0]);
        return 2;
    }
    static char bin[4096];
    if (dt_test_program_path(argv[1], bin, sizeof bin)) return 2;
    dtrain_bin = bin;
    if (dt_test_small_run_setup("dtrain-state", 1, 4, 3, workdir, sizeof workdir)) return 1;

    test_overflowing_lr();
    test_nan_momentum();
    char model[700];
    snprintf(model, sizeof model, "%s/mom/model.safetensors", workdir);
    test_predict_names(model);
    test_predict_preprocessing(model);
    test_eval_classes(model);
    dt_testgen_finish_temp_dir(workdir);
    return dt_test_summary("state_and_names");
}
