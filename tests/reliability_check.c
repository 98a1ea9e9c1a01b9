/* Long-run reliability checks of the dtrain binary: checkpoints, exact resume, fault injection
 * inside the checkpoint writer, damaged checkpoints, a full disk, signals, the output.dir lock and
 * earlier-run rule, the non-finite guard and (with mpirun) the same on 2 ranks plus the watchdog.
 * "features": exact resume with one training feature at a time (mixing, EMA, AdamW with a
 * skipped step); "single" resumes with all of them at once, which covers the same code, so the
 * sanitizer builds register only "single" and "mpi" (tests/CMakeLists.txt).
 * usage: reliability_check single|features DTRAIN_BIN
 *        reliability_check mpi DTRAIN_BIN MPIRUN [MPIRUN_FLAGS...] */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "dtrain/checkpoint.h"
#include "dtrain/platform.h"
#include "dtrain/safetensors.h"
#include "imagegen.h"
#include "process.h"

static char workdir[256], mpirun_prefix[2048];
#define MIX_SETTINGS                                                                               \
    "train.label_smoothing=0.1 train.mixup_alpha=0.4 train.cutmix_alpha=1.0 train.mix_prob=0.9"
/* every training feature at once: the mixing above, AdamW with the norm/bias exclusion and
 * clipping that clips, the weights' average, early stopping that does not trigger, and the
 * pixel augmentations after random crops */
#define ALL_SETTINGS                                                                               \
    MIX_SETTINGS " train.optimizer=adamw train.momentum=0 train.lr=0.001 train.weight_decay=0.05 " \
                 "train.no_weight_decay=norm_and_bias train.clip_grad_norm=0.5 "                   \
                 "train.ema_decay=0.9 train.early_stop_patience=5 data.augment=crop_flip "         \
                 "data.trivial_augment=true data.color_jitter=[0.4,0.4,0.4,0.1] "                  \
                 "data.random_erasing=0.25"

static const char *dtrain_bin;

/* dtrain on `ranks` ranks (1: no launcher) with the test config, output.dir workdir/dir, extra
 * arguments, log in workdir/log.log. env: variables put before the command. background: returns
 * at once; the exit code lands in workdir/log.rc. */
static int dtrain(const char *dir, const char *log, int ranks, const char *env, const char *args,
                  int background) {
    char launch[2200] = "", cmd[8192];
    if (ranks > 1) snprintf(launch, sizeof launch, "%s -np %d ", mpirun_prefix, ranks);
    snprintf(cmd, sizeof cmd,
             "cd %s && %s %s%s %s/base.yaml output.dir=%s/%s %s > %s/%s.log 2>&1; echo $? > "
             "%s/%s.rc",
             workdir, env ? env : "", launch, dtrain_bin, workdir, workdir, dir, args ? args : "",
             workdir, log, workdir, log);
    if (background) {
        char bg[8400];
        snprintf(bg, sizeof bg, "(%s) > /dev/null 2>&1 &", cmd);
        return dt_test_run(bg);
    }
    dt_test_run(cmd);
    char path[600];
    snprintf(path, sizeof path, "%s/%s.rc", workdir, log);
    char *rc = dt_test_read_text(path);
    int code = rc ? atoi(rc) : -1;
    free(rc);
    return code;
}

static int log_has(const char *log, const char *needle) {
    char *text = dt_test_read_log(workdir, log);
    int found = strstr(text, needle) != NULL;
    if (!found) fprintf(stderr, "%s.log lacks \"%s\":\n%s\n", log, needle, text);
    free(text);
    return found;
}

static int exists(const char *fmt, const char *a, const char *b) {
    char path[900];
    snprintf(path, sizeof path, fmt, workdir, a, b);
    return access(path, F_OK) == 0;
}

/* Waits until workdir/rel exists; 0 when it did within seconds. */
static int wait_for(const char *rel, double seconds) {
    char path[900];
    snprintf(path, sizeof path, "%s/%s", workdir, rel);
    double t0 = dt_monotonic_seconds();
    while (dt_monotonic_seconds() - t0 < seconds) {
        if (access(path, F_OK) == 0) return 0;
        usleep(50 * 1000);
    }
    return -1;
}

static int model_files_equal(const char *pa, const char *pb, const char *run_a, const char *run_b);

/* Every tensor of the two model files bitwise equal (weights, running statistics, counters). */
static int models_equal(const char *run_a, const char *run_b) {
    char pa[600], pb[600];
    snprintf(pa, sizeof pa, "%s/%s/model.safetensors", workdir, run_a);
    snprintf(pb, sizeof pb, "%s/%s/model.safetensors", workdir, run_b);
    return model_files_equal(pa, pb, run_a, run_b);
}

/* The same for the models of two checkpoints (checkpoints/step-%08ld). */
static int checkpoints_equal(const char *run_a, long step_a, const char *run_b, long step_b) {
    char pa[600], pb[600];
    snprintf(pa, sizeof pa, "%s/%s/checkpoints/step-%08ld/model.safetensors", workdir, run_a,
             step_a);
    snprintf(pb, sizeof pb, "%s/%s/checkpoints/step-%08ld/model.safetensors", workdir, run_b,
             step_b);
    return model_files_equal(pa, pb, run_a, run_b);
}

static int model_files_equal(const char *pa, const char *pb, const char *run_a, const char *run_b) {
    dt_safetensors a, b;
    dt_error err = {{0}, 0};
    if (dt_safetensors_read(pa, &a, &err)) {
        fprintf(stderr, "%s\n", err.message);
        return 0;
    }
    if (dt_safetensors_read(pb, &b, &err)) {
        fprintf(stderr, "%s\n", err.message);
        dt_safetensors_free(&a);
        return 0;
    }
    int equal = a.n_tensors == b.n_tensors && a.n_tensors == 122;
    for (size_t i = 0; equal && i < a.n_tensors; i++) {
        const dt_st_tensor *x = &a.tensors[i], *y = dt_safetensors_find(&b, x->name);
        equal = y && x->end - x->begin == y->end - y->begin &&
                memcmp(x->data, y->data, x->end - x->begin) == 0;
        if (!equal) fprintf(stderr, "%s differs between %s and %s\n", x->name, run_a, run_b);
    }
    dt_safetensors_free(&a);
    dt_safetensors_free(&b);
    return equal;
}

/* Every F32 value of a model file finite (and the file readable). */
static int model_finite(const char *run, const char *file) {
    char path[600];
    snprintf(path, sizeof path, "%s/%s/%s", workdir, run, file);
    dt_safetensors st;
    dt_error err = {{0}, 0};
    if (dt_safetensors_read(path, &st, &err)) return 0;
    int finite = 1;
    for (size_t i = 0; i < st.n_tensors; i++) {
        const dt_st_tensor *t = &st.tensors[i];
        if (t->dtype != DT_ST_F32) continue;
        for (size_t k = 0; k < (t->end - t->begin) / 4; k++) {
            float v;
            memcpy(&v, t->data + 4 * k, 4);
            finite &= isfinite(v) != 0;
        }
    }
    dt_safetensors_free(&st);
    return finite;
}

/* "train:1 train:2 eval:3 ... done" from metrics.jsonl: the rows' events and steps in order. */
static char *metrics_sequence(const char *run) {
    char path[600];
    snprintf(path, sizeof path, "%s/%s/metrics.jsonl", workdir, run);
    char *text = dt_test_read_text(path);
    if (!text) return strdup("(missing)");
    size_t cap = strlen(text) + 1;
    char *out = calloc(cap, 1);
    size_t used = 0;
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        char event[16] = "?";
        sscanf(line, "{\"event\":\"%15[a-z]\"", event);
        const char *step = strstr(line, "\"step\":");
        used += (size_t)snprintf(out + used, cap - used, "%s:%ld ", event,
                                 step ? strtol(step + 7, NULL, 10) : -1L);
    }
    free(text);
    return out;
}

static void check_metrics_continued(const char *full, const char *resumed) {
    char *a = metrics_sequence(full), *b = metrics_sequence(resumed);
    CHECK_MSG(strcmp(a, b) == 0, "metrics rows of %s [%s] and %s [%s] differ", full, a, resumed, b);
    free(a);
    free(b);
}

/* Files or folders named *.tmp or .tmp-* anywhere under workdir/run. */
static int temporaries_left(const char *run) {
    char cmd[900];
    snprintf(cmd, sizeof cmd, "find %s/%s -name '*.tmp' -o -name '.tmp-*' | grep -q .", workdir,
             run);
    return dt_test_run(cmd) == 0;
}

/* Which checkpoint a plain --resume would take in workdir/run ("" when none). */
static void resumable(const char *run, char *name, size_t size) {
    char dir[600], out[900];
    snprintf(dir, sizeof dir, "%s/%s", workdir, run);
    dt_ckpt_state st;
    dt_error err = {{0}, 0};
    name[0] = '\0';
    if (dt_checkpoint_find(dir, NULL, out, sizeof out, &st, &err) == 0) {
        const char *slash = strrchr(out, '/');
        snprintf(name, size, "%s", slash ? slash + 1 : out);
    }
}

static void verify_fails(const char *run, const char *step, const char *expected) {
    char dir[600];
    snprintf(dir, sizeof dir, "%s/%s/checkpoints/%s", workdir, run, step);
    dt_ckpt_state st;
    dt_error err = {{0}, 0};
    int rc = dt_checkpoint_verify(dir, &st, &err);
    CHECK_MSG(rc != 0 && strstr(err.message, expected), "%s: expected \"%s\", got rc %d \"%s\"",
              dir, expected, rc, err.message);
}

/* A shell command inside workdir. */
static void shell(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void shell(const char *fmt, ...) {
    char cmd[1200];
    int n = snprintf(cmd, sizeof cmd, "cd %s && ", workdir);
    va_list args;
    va_start(args, fmt);
    vsnprintf(cmd + n, sizeof cmd - (size_t)n, fmt, args);
    va_end(args);
    CHECK_MSG(dt_test_run(cmd) == 0, "%s", cmd);
}

/* The pid of the rank's process of a background run whose output.dir is workdir/run (-1). */
static pid_t rank_pid(const char *run, int rank) {
    char want[700], rank_var[64];
    snprintf(want, sizeof want, "output.dir=%s/%s", workdir, run);
    snprintf(rank_var, sizeof rank_var, "OMPI_COMM_WORLD_RANK=%d", rank);
    DIR *d = opendir("/proc");
    pid_t found = -1;
    struct dirent *e;
    while (d && (e = readdir(d)) && found < 0) {
        pid_t pid = (pid_t)atol(e->d_name);
        if (pid <= 0) continue;
        char path[64], buf[65536];
        snprintf(path, sizeof path, "/proc/%d/cmdline", (int)pid);
        FILE *f = fopen(path, "rb");
        if (!f) continue;
        size_t n = fread(buf, 1, sizeof buf - 1, f);
        fclose(f);
        int match = 0, is_dtrain = strstr(buf, "dtrain") != NULL;
        for (size_t i = 0; i < n; i += strlen(buf + i) + 1) match |= strcmp(buf + i, want) == 0;
        if (!match || !is_dtrain) continue;
        snprintf(path, sizeof path, "/proc/%d/environ", (int)pid);
        if (!(f = fopen(path, "rb"))) continue;
        n = fread(buf, 1, sizeof buf - 1, f);
        fclose(f);
        buf[n] = '\0';
        int is_rank = 0, launched = 0;
        for (size_t i = 0; i < n; i += strlen(buf + i) + 1) {
            is_rank |= strcmp(buf + i, rank_var) == 0;
            launched |= strncmp(buf + i, "OMPI_COMM_WORLD_RANK=", 21) == 0;
        }
        if (is_rank || (!launched && rank == 0)) found = pid;
    }
    if (d) closedir(d);
    return found;
}

static int process_gone(pid_t pid) {
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    char *stat = dt_test_read_text(path);
    if (!stat) return 1;
    const char *close = strrchr(stat, ')');
    int zombie = close && close[1] == ' ' && close[2] == 'Z';
    free(stat);
    return zombie;
}

static int wait_rc(const char *log, double seconds) {
    char rel[300];
    snprintf(rel, sizeof rel, "%s.rc", log);
    if (wait_for(rel, seconds)) return -1;
    usleep(100 * 1000);
    char path[600];
    snprintf(path, sizeof path, "%s/%s", workdir, rel);
    char *rc = dt_test_read_text(path);
    int code = rc && *rc ? atoi(rc) : -1;
    free(rc);
    return code;
}

/* ---- one rank ---- */

/* full: an uninterrupted run with the same config overrides (args) and test switches (env). */
static void test_kill_and_resume_with(int ranks, const char *full, const char *tag, const char *env,
                                      const char *args) {
    char run[64], log[64], crash[400], resume[400];
    snprintf(run, sizeof run, "kill%s", tag);
    /* SIGKILL of rank 0 right after the checkpoint of step 2 is complete */
    snprintf(crash, sizeof crash,
             "%s DTRAIN_TEST_CKPT_CRASH=after-latest DTRAIN_TEST_CKPT_CRASH_STEP=2", env);
    CHECK(dtrain(run, run, ranks, crash, args, 0) != 0);
    CHECK(exists("%s/%s/checkpoints/%s", run, "step-00000002"));
    CHECK(!exists("%s/%s/%s", run, "model.safetensors"));
    snprintf(log, sizeof log, "%s-resume", run);
    snprintf(resume, sizeof resume, "--resume %s", args);
    CHECK_INT_EQ(dtrain(run, log, ranks, env, resume, 0), 0);
    CHECK(log_has(log, "resuming from"));
    CHECK_MSG(models_equal(full, run), "%d rank(s): resumed weights differ", ranks);
    check_metrics_continued(full, run);
}

/* train.ema_decay: a run killed after a checkpoint and resumed ends with the weights and their
 * moving average (ema.safetensors, every tensor) bitwise those of the uninterrupted run. */
static void test_ema_kill_and_resume(int ranks, const char *tag) {
    char full[64], run[64], log[64], pa[600], pb[600];
    snprintf(full, sizeof full, "ema-full%s", tag);
    snprintf(run, sizeof run, "ema-kill%s", tag);
    CHECK_INT_EQ(dtrain(full, full, ranks, NULL, "train.ema_decay=0.9", 0), 0);
    CHECK(exists("%s/%s/checkpoints/%s/ema.safetensors", full, "step-00000006"));
    CHECK(dtrain(run, run, ranks,
                 "DTRAIN_TEST_CKPT_CRASH=after-latest DTRAIN_TEST_CKPT_CRASH_STEP=2",
                 "train.ema_decay=0.9", 0) != 0);
    CHECK(exists("%s/%s/checkpoints/%s/ema.safetensors", run, "step-00000002"));
    snprintf(log, sizeof log, "%s-resume", run);
    CHECK_INT_EQ(dtrain(run, log, ranks, NULL, "--resume train.ema_decay=0.9", 0), 0);
    CHECK(log_has(log, "resuming from"));
    CHECK_MSG(models_equal(full, run), "%d rank(s), EMA on: resumed weights differ", ranks);
    snprintf(pa, sizeof pa, "%s/%s/ema.safetensors", workdir, full);
    snprintf(pb, sizeof pb, "%s/%s/ema.safetensors", workdir, run);
    CHECK_MSG(model_files_equal(pa, pb, full, run), "%d rank(s): resumed EMA differs", ranks);
    /* the average is not the model: the test would notice a file of the wrong weights */
    snprintf(pb, sizeof pb, "%s/%s/model.safetensors", workdir, full);
    CHECK(!model_files_equal(pa, pb, "ema.safetensors", "model.safetensors"));
    check_metrics_continued(full, run);
}

/* settings (overrides) that the killed run, its resume and the full run share */
static void test_kill_and_resume(int ranks, const char *full, const char *tag,
                                 const char *settings) {
    test_kill_and_resume_with(ranks, full, tag, "", settings);
}

/* AdamW with weight decay off for norms and biases, gradient clipping that clips, and a step
 * skipped for a NaN before the checkpoint (left out of the bias correction's step count):
 * resumed to the uninterrupted run's weights; optimizer.safetensors holds exp_avg,
 * exp_avg_sq and the step count; a resume with another optimizer is refused naming the file. */
static void test_adamw_resume(void) {
    const char *args = "train.optimizer=adamw train.momentum=0 train.lr=0.001 "
                       "train.weight_decay=0.05 "
                       "train.no_weight_decay=norm_and_bias train.clip_grad_norm=0.5 "
                       "train.nonfinite=skip";
    const char *nan = "DTRAIN_TEST_NAN_RANK=0 DTRAIN_TEST_NAN_STEP=0";
    CHECK_INT_EQ(dtrain("adamw", "adamw", 1, nan, args, 0), 0);
    CHECK(log_has("adamw", "step skipped"));
    char path[700];
    snprintf(path, sizeof path, "%s/adamw/metrics.jsonl", workdir);
    char *metrics = dt_test_read_text(path);
    CHECK(metrics && strstr(metrics, "\"grad_norm\":") &&
          strstr(metrics, "\"optimizer\":\"adamw\""));
    free(metrics);
    snprintf(path, sizeof path, "%s/adamw/checkpoints/step-00000006/optimizer.safetensors",
             workdir);
    dt_safetensors st;
    dt_error err = {{0}, 0};
    int read = dt_safetensors_read(path, &st, &err) == 0;
    CHECK_MSG(read, "%s", err.message);
    if (read) {
        const char *opt = dt_safetensors_metadata_value(&st, "optimizer");
        const char *step = dt_safetensors_metadata_value(&st, "step");
        CHECK(opt && strcmp(opt, "adamw") == 0);
        CHECK_MSG(step && strcmp(step, "5") == 0, "step count %s, want 5 (6 steps, 1 skipped)",
                  step ? step : "missing");
        CHECK(dt_safetensors_find(&st, "conv1.weight.exp_avg") &&
              dt_safetensors_find(&st, "fc.bias.exp_avg_sq") &&
              !dt_safetensors_find(&st, "conv1.weight"));
        dt_safetensors_free(&st);
    }
    test_kill_and_resume_with(1, "adamw", "adamw", nan, args);
    char other[400];
    snprintf(other, sizeof other, "--resume %s train.optimizer=sgd", args);
    CHECK_INT_EQ(dtrain("killadamw", "adamw-as-sgd", 1, NULL, other, 0), 2);
    CHECK(log_has("adamw-as-sgd",
                  "config.yaml was written with other values of train.optimizer; a resume may"));
}

static void test_writer_faults(const char *full) {
    static const char *const points[] = {"model", "optimizer", "state", "before-rename",
                                         "after-rename"};
    for (size_t i = 0; i < sizeof points / sizeof points[0]; i++) {
        char run[64];
        snprintf(run, sizeof run, "fault-%s", points[i]);
        char env[200];
        snprintf(env, sizeof env, "DTRAIN_TEST_CKPT_CRASH=%s DTRAIN_TEST_CKPT_CRASH_STEP=2",
                 points[i]);
        /* checkpoints every step: step 1 is complete when step 2's write is killed */
        CHECK(dtrain(run, run, 1, env, "output.checkpoint_every=1", 0) != 0);
        char name[128];
        resumable(run, name, sizeof name);
        CHECK_MSG(strcmp(name, "step-00000001") == 0, "killed at %s: resume would take '%s'",
                  points[i], name);
        CHECK_MSG(exists("%s/%s/checkpoints/%s", run, "step-00000002") ==
                      (strcmp(points[i], "after-rename") == 0),
                  "killed at %s: step-00000002 presence", points[i]);
    }
    /* and --resume from there reaches the uninterrupted run's weights */
    CHECK_INT_EQ(dtrain("fault-state", "fault-state-resume", 1, NULL, "--resume", 0), 0);
    CHECK(log_has("fault-state-resume", "step-00000001"));
    CHECK(!temporaries_left("fault-state"));
    CHECK(models_equal(full, "fault-state"));
}

static void test_damaged(const char *full) {
    shell("cp -a %s damaged", full);
    /* one flipped byte in the newest checkpoint's weights */
    shell("printf '\\377' | dd of=damaged/checkpoints/step-00000006/model.safetensors bs=1 "
          "seek=4000 conv=notrunc status=none");
    verify_fails("damaged", "step-00000006", "model.safetensors: checksum mismatch");
    char name[128];
    resumable("damaged", name, sizeof name);
    CHECK_STR_EQ(name, "step-00000004");
    /* an explicit path is refused, naming the file */
    char args[700];
    snprintf(args, sizeof args, "--resume %s/damaged/checkpoints/step-00000006", workdir);
    CHECK_INT_EQ(dtrain("damaged", "damaged-explicit", 1, NULL, args, 0), 2);
    CHECK(log_has("damaged-explicit", "model.safetensors: checksum mismatch"));
    /* other damage, checked on the copies' older checkpoints */
    shell("rm damaged/checkpoints/step-00000004/optimizer.safetensors");
    verify_fails("damaged", "step-00000004", "optimizer.safetensors: missing");
    shell("truncate -s 100 damaged/checkpoints/step-00000003/config.yaml");
    verify_fails("damaged", "step-00000003", "config.yaml: 100 bytes, state.json says");
    shell("cp -a %s damaged2", full);
    shell("sed -i 's/\"step\": 6/\"step\": 7/' damaged2/checkpoints/step-00000006/state.json");
    verify_fails("damaged2", "step-00000006", "state.json: checksum mismatch");
    /* the fallback from a damaged latest: warns, resumes step 4, same final weights */
    CHECK_INT_EQ(dtrain("damaged2", "damaged2-resume", 1, NULL, "--resume", 0), 0);
    CHECK(log_has("damaged2-resume", "warning: the latest checkpoint is refused"));
    CHECK(log_has("damaged2-resume", "step-00000004"));
    CHECK(models_equal(full, "damaged2"));
    check_metrics_continued(full, "damaged2");
    /* another config: refused naming the keys; another global batch likewise */
    shell("cp -a %s otherconfig", full);
    CHECK_INT_EQ(
        dtrain("otherconfig", "otherconfig", 1, NULL, "--resume train.lr=0.1 data.split_seed=3", 0),
        2);
    CHECK(log_has("otherconfig", "other values of data.split_seed, train.lr"));
    CHECK_INT_EQ(dtrain("otherconfig", "otherbatch", 1, NULL, "--resume train.batch_size=2", 0), 2);
    CHECK(log_has("otherbatch", "global batch 4"));
    /* longer is allowed: train.epochs may change */
    CHECK_INT_EQ(dtrain("otherconfig", "longer", 1, NULL, "--resume train.epochs=3", 0), 0);
    char *seq = metrics_sequence("otherconfig");
    CHECK_MSG(strstr(seq, "eval:9 done:-1") && dt_test_count(seq, "done:") == 1, "%s", seq);
    free(seq);
}

static void test_full_disk(const char *full) {
    /* a complete step-1 checkpoint, then a run whose files may not exceed 20 MB */
    CHECK(dtrain("disk", "disk", 1, "DTRAIN_TEST_CKPT_CRASH=after-latest",
                 "output.checkpoint_every=1", 0) != 0);
    CHECK_INT_EQ(dtrain("disk", "disk-full", 1, "prlimit --fsize=20000000",
                        "--resume output.checkpoint_every=1", 0),
                 1);
    CHECK(log_has("disk-full", ".tmp-step-00000002/model.safetensors: File too large"));
    CHECK(!temporaries_left("disk"));
    char name[128];
    resumable("disk", name, sizeof name);
    CHECK_STR_EQ(name, "step-00000001");
    CHECK_INT_EQ(dtrain("disk", "disk-resume", 1, NULL, "--resume", 0), 0);
    CHECK(models_equal(full, "disk"));
    /* an unwritable output folder: named with the OS error */
    CHECK_INT_EQ(dtrain("x", "unwritable", 1, NULL, "output.dir=/proc/dtrain-test", 0), 1);
    CHECK(log_has("unwritable", "/proc/dtrain-test"));
}

/* A long run (many epochs) in the background: SIGTERM after its first checkpoint. */
static void test_sigterm_and_lock(void) {
    CHECK_INT_EQ(dtrain("term", "term", 1, "DTRAIN_TEST_STEP_DELAY_MS=300", "train.epochs=100", 1),
                 0);
    CHECK(wait_for("term/checkpoints/latest", 600) == 0);
    /* a second run on the same output.dir: refused while the first holds the lock */
    CHECK_INT_EQ(dtrain("term", "term-second", 1, NULL, "--overwrite", 0), 2);
    CHECK(log_has("term-second", "is in use by another dtrain run (pid"));
    pid_t pid = rank_pid("term", 0);
    CHECK(pid > 0);
    double t0 = dt_monotonic_seconds();
    if (pid > 0) kill(pid, SIGTERM);
    int rc = wait_rc("term", 600);
    double seconds = dt_monotonic_seconds() - t0;
    printf("SIGTERM to exit (1 rank, checkpoint written): %.2f s\n", seconds);
    CHECK_INT_EQ(rc, 75);
    CHECK(log_has("term", "SIGTERM received"));
    CHECK(log_has("term", "stopped by a signal after step"));
    CHECK(exists("%s/%s/%s", "term", "model.safetensors")); /* the weights so far */
    CHECK(!temporaries_left("term"));
    char name[128];
    resumable("term", name, sizeof name);
    CHECK(strncmp(name, "step-", 5) == 0);
    /* a second SIGINT ends at once with 130, leaving no temporary file */
    CHECK_INT_EQ(dtrain("int2", "int2", 1, "DTRAIN_TEST_STEP_DELAY_MS=300", "train.epochs=100", 1),
                 0);
    CHECK(wait_for("int2/checkpoints/latest", 600) == 0);
    pid = rank_pid("int2", 0);
    CHECK(pid > 0);
    if (pid > 0) {
        kill(pid, SIGINT);
        usleep(20 * 1000);
        kill(pid, SIGINT);
    }
    CHECK_INT_EQ(wait_rc("int2", 120), 130);
    CHECK(log_has("int2", "second interrupt"));
    CHECK(!temporaries_left("int2"));
}

static void test_earlier_run(const char *full) {
    char before_path[600];
    snprintf(before_path, sizeof before_path, "%s/%s/metrics.jsonl", workdir, full);
    char *before = dt_test_read_text(before_path);
    CHECK_INT_EQ(dtrain(full, "again", 1, NULL, "", 0), 2);
    CHECK(log_has("again", "holds an earlier run"));
    CHECK(log_has("again", "--overwrite"));
    char *after = dt_test_read_text(before_path);
    CHECK(before && after && strcmp(before, after) == 0);
    free(before);
    free(after);
    CHECK_INT_EQ(dtrain(full, "both", 1, NULL, "--resume --overwrite", 0), 2);
    shell("cp -a %s overwritten", full);
    CHECK_INT_EQ(dtrain("overwritten", "overwritten", 1, NULL, "--overwrite train.epochs=1", 0), 0);
    char *seq = metrics_sequence("overwritten");
    CHECK_MSG(strcmp(seq, "train:1 train:2 train:3 eval:3 done:-1 ") == 0, "%s", seq);
    free(seq);
    CHECK(!exists("%s/%s/checkpoints/%s", "overwritten", "step-00000006"));
}

static void test_nonfinite_single(void) {
    CHECK_INT_EQ(
        dtrain("nanstop", "nanstop", 1, "DTRAIN_TEST_NAN_RANK=0 DTRAIN_TEST_NAN_STEP=1", "", 0), 1);
    CHECK(log_has("nanstop", "step 2 (epoch 1): the gradient of conv1.weight is NaN"));
    CHECK(exists("%s/%s/checkpoints/%s", "nanstop", "step-00000001"));
    CHECK(!exists("%s/%s/%s", "nanstop", "model.safetensors"));
    CHECK_INT_EQ(dtrain("nanskip", "nanskip", 1, "DTRAIN_TEST_NAN_RANK=0 DTRAIN_TEST_NAN_STEP=1",
                        "train.nonfinite=skip", 0),
                 0);
    char *log = dt_test_read_log(workdir, "nanskip");
    CHECK_INT_EQ(dt_test_count(log, "step skipped"), 1);
    CHECK(strstr(log, "step 2 (epoch 1)"));
    free(log);
    CHECK(model_finite("nanskip", "model.safetensors"));
    /* decided late (the state read at a log line two steps on): the steps after the bad one
     * changed nothing, the checkpoint is the same last good state */
    CHECK_INT_EQ(dtrain("nanlate", "nanlate", 1, "DTRAIN_TEST_NAN_RANK=0 DTRAIN_TEST_NAN_STEP=1",
                        "output.log_every=3 output.checkpoint_every=0", 0),
                 1);
    CHECK(log_has("nanlate", "step 2 (epoch 1): the gradient of conv1.weight is NaN"));
    CHECK(checkpoints_equal("nanstop", 1, "nanlate", 1));
    /* skip: max_skipped_steps in a row stop with the state before the first of them */
    CHECK_INT_EQ(dtrain("nanmax", "nanmax", 1,
                        "DTRAIN_TEST_NAN_RANK=0 DTRAIN_TEST_NAN_STEP=1 DTRAIN_TEST_NAN_COUNT=2",
                        "train.nonfinite=skip train.max_skipped_steps=2", 0),
                 1);
    log = dt_test_read_log(workdir, "nanmax");
    CHECK_INT_EQ(dt_test_count(log, "step skipped"), 1);
    CHECK(strstr(log, "step 2 (epoch 1): the gradient of conv1.weight is NaN after the "
                      "all-reduce; step skipped (train.nonfinite: skip; 1 in a row, 1 in all)"));
    CHECK(strstr(log, "step 3 (epoch 1): the gradient of conv1.weight is NaN; 2 non-finite steps "
                      "in a row reached train.max_skipped_steps"));
    free(log);
    CHECK(checkpoints_equal("nanstop", 1, "nanmax", 2));
    CHECK(!exists("%s/%s/%s", "nanmax", "model.safetensors"));
    /* divergence: never written as the result */
    CHECK_INT_EQ(dtrain("diverge", "diverge", 1, NULL, "train.lr=1e6", 0), 1);
    /* the gradients' guard, or the checkpoint's refusal of a state that overflowed */
    CHECK(log_has("diverge", "try a lower train.lr"));
    CHECK(!exists("%s/%s/%s", "diverge", "model.safetensors"));
    CHECK(!exists("%s/%s/%s", "diverge", "best.safetensors") ||
          model_finite("diverge", "best.safetensors"));
}

/* ---- two ranks ---- */

static void test_sigterm_one_rank_mpi(const char *full) {
    /* slow steps so that the signal lands early; train.epochs raised, resumed with 2 */
    CHECK_INT_EQ(
        dtrain("term2", "term2", 2, "DTRAIN_TEST_STEP_DELAY_MS=1000", "train.epochs=20", 1), 0);
    CHECK(wait_for("term2/checkpoints/latest", 600) == 0);
    pid_t pid = rank_pid("term2", 1);
    CHECK(pid > 0);
    double t0 = dt_monotonic_seconds();
    if (pid > 0) kill(pid, SIGTERM);
    int rc = wait_rc("term2", 600);
    printf("SIGTERM to rank 1 to job exit (2 ranks): %.2f s\n", dt_monotonic_seconds() - t0);
    CHECK_INT_EQ(rc, 75);
    char *log = dt_test_read_log(workdir, "term2");
    const char *r0 = strstr(log, "dtrain: stopped by a signal after step ");
    const char *r1 = strstr(log, "dtrain: rank 1: stopped by a signal after step ");
    long s0 = r0 ? atol(r0 + 39) : -1, s1 = r1 ? atol(r1 + 47) : -2;
    CHECK_MSG(s0 == s1 && s0 > 0, "ranks stopped at steps %ld and %ld", s0, s1);
    free(log);
    if (s0 > 0 && s0 < 6) {
        CHECK_INT_EQ(dtrain("term2", "term2-resume", 2, NULL, "--resume train.epochs=2", 0), 0);
        CHECK(models_equal(full, "term2"));
        check_metrics_continued(full, "term2");
    } else {
        CHECK_MSG(0, "the signal landed after step %ld: too late to compare", s0);
    }
}

static void test_watchdog_mpi(void) {
    /* The job must end within timeout_s plus a bounded margin after the stall; timeout_s itself
     * only sets how long the test waits (3x, at least 300 s, covers start-up and checkpoints, so
     * a short one cannot trip on them). */
    enum { TIMEOUT_S = 20, MARGIN_S = 10 };
    char overrides[128];
    snprintf(overrides, sizeof overrides, "train.epochs=100 runtime.timeout_s=%d", TIMEOUT_S);
    CHECK_INT_EQ(dtrain("stall", "stall", 2, "DTRAIN_TEST_STEP_DELAY_MS=200", overrides, 1), 0);
    CHECK(wait_for("stall/checkpoints/latest", 600) == 0);
    pid_t p0 = rank_pid("stall", 0), p1 = rank_pid("stall", 1);
    CHECK(p0 > 0 && p1 > 0);
    double t0 = dt_monotonic_seconds();
    if (p1 > 0) kill(p1, SIGSTOP);
    int rc = wait_rc("stall", 120);
    double seconds = dt_monotonic_seconds() - t0;
    printf("SIGSTOP of rank 1 to job end (timeout_s %d): %.2f s\n", TIMEOUT_S, seconds);
    CHECK(rc != 0 && rc != -1);
    CHECK_MSG(seconds < TIMEOUT_S + MARGIN_S, "the stalled job took %.1f s to end", seconds);
    CHECK(log_has("stall", "rank 0: error: no progress for"));
    /* Open MPI ends the ranks after mpirun's own exit: TERM, then KILL for a stopped one */
    for (int i = 0; i < 100 && !((p0 <= 0 || process_gone(p0)) && (p1 <= 0 || process_gone(p1)));
         i++)
        usleep(100 * 1000);
    CHECK(p0 <= 0 || process_gone(p0));
    CHECK(p1 <= 0 || process_gone(p1));
    if (p1 > 0 && !process_gone(p1)) kill(p1, SIGKILL);
    if (p0 > 0 && !process_gone(p0)) kill(p0, SIGKILL);
}

static void test_nonfinite_mpi(void) {
    int rc =
        dtrain("nanstop2", "nanstop2", 2, "DTRAIN_TEST_NAN_RANK=1 DTRAIN_TEST_NAN_STEP=1", "", 0);
    CHECK(rc != 0);
    /* every rank decides alike; whichever prints first ends the job */
    CHECK(log_has("nanstop2", "error: step 2 (epoch 1): the gradient of conv1.weight is NaN"));
    CHECK(exists("%s/%s/checkpoints/%s", "nanstop2", "step-00000001"));
    CHECK_INT_EQ(dtrain("nanskip2", "nanskip2", 2, "DTRAIN_TEST_NAN_RANK=1 DTRAIN_TEST_NAN_STEP=1",
                        "train.nonfinite=skip", 0),
                 0);
    char *log = dt_test_read_log(workdir, "nanskip2");
    CHECK_INT_EQ(dt_test_count(log, "step skipped"), 1);
    free(log);
    CHECK(model_finite("nanskip2", "model.safetensors"));
}

static void test_rank_change(void) {
    /* a 1-rank checkpoint (batch 4) resumed on 2 ranks of batch 2: same global batch */
    CHECK(dtrain("ranks", "ranks", 1,
                 "DTRAIN_TEST_CKPT_CRASH=after-latest DTRAIN_TEST_CKPT_CRASH_STEP=2",
                 "train.batch_size=4", 0) != 0);
    CHECK_INT_EQ(dtrain("ranks", "ranks-4", 2, NULL, "--resume train.batch_size=4", 0), 2);
    CHECK(log_has("ranks-4", "global batch"));
    CHECK_INT_EQ(dtrain("ranks", "ranks-2", 2, NULL, "--resume train.batch_size=2", 0), 0);
    CHECK(log_has("ranks-2", "resuming on 2 ranks a checkpoint written by 1"));
    CHECK(model_finite("ranks", "model.safetensors"));
}

int main(int argc, char **argv) {
    const int mpi = argc >= 2 && strcmp(argv[1], "mpi") == 0;
    const int features = argc >= 2 && strcmp(argv[1], "features") == 0;
    if (argc < 3 || (mpi && argc < 4) || (!mpi && !features && strcmp(argv[1], "single") != 0)) {
        fprintf(stderr, "usage: %s single|features DTRAIN_BIN | mpi DTRAIN_BIN MPIRUN [FLAGS...]\n",
                argv[0]);
        return 2;
    }
    static char bin[4096];
    if (dt_test_program_path(argv[2], bin, sizeof bin)) return 2;
    dtrain_bin = bin;
    size_t at = 0;
    for (int i = 3; i < argc && at < sizeof mpirun_prefix; i++)
        at += (size_t)snprintf(mpirun_prefix + at, sizeof mpirun_prefix - at, "%s%s",
                               i > 3 ? " " : "", argv[i]);
    if (dt_test_small_run_setup("dtrain-reliab", 2, mpi ? 2 : 4, 3, workdir, sizeof workdir))
        return 1;

    if (features) {
        /* the EMA run's model is the plain run's (the average is a separate file) */
        test_ema_kill_and_resume(1, "1");
        /* label smoothing, mixup and cutmix: the resumed run's batches are mixed as the
         * uninterrupted run's (checkpoint mid-epoch: step 2 of 3) */
        CHECK_INT_EQ(dtrain("fullmix", "fullmix", 1, NULL, MIX_SETTINGS, 0), 0);
        CHECK(!models_equal("ema-full1", "fullmix"));
        test_kill_and_resume(1, "fullmix", "1mix", MIX_SETTINGS);
        test_adamw_resume();
    } else if (!mpi) {
        CHECK_INT_EQ(dtrain("full", "full", 1, NULL, "", 0), 0);
        CHECK(exists("%s/%s/checkpoints/%s", "full", "step-00000006"));
        CHECK(!exists("%s/%s/checkpoints/%s", "full", "step-00000002")); /* keep 3 */
        CHECK(log_has("full", "checkpoint step-00000002 written: 89.5 MB in"));
        test_kill_and_resume(1, "full", "1", "");
        /* every training feature together: weights and their average as the uninterrupted
         * run's */
        CHECK_INT_EQ(dtrain("fullall", "fullall", 1, NULL, ALL_SETTINGS, 0), 0);
        CHECK(!models_equal("full", "fullall"));
        test_kill_and_resume(1, "fullall", "1all", ALL_SETTINGS);
        {
            char pa[600], pb[600];
            snprintf(pa, sizeof pa, "%s/fullall/ema.safetensors", workdir);
            snprintf(pb, sizeof pb, "%s/kill1all/ema.safetensors", workdir);
            CHECK_MSG(model_files_equal(pa, pb, "fullall", "kill1all"),
                      "every feature on: the resumed EMA differs");
        }
        test_writer_faults("full");
        test_damaged("full");
        test_full_disk("full");
        test_earlier_run("full");
        test_nonfinite_single();
        test_sigterm_and_lock();
    } else {
        CHECK_INT_EQ(dtrain("full2", "full2", 2, NULL, "", 0), 0);
        test_kill_and_resume(2, "full2", "2", "");
        CHECK_INT_EQ(dtrain("full2mix", "full2mix", 2, NULL, MIX_SETTINGS, 0), 0);
        test_kill_and_resume(2, "full2mix", "2mix", MIX_SETTINGS);
        test_ema_kill_and_resume(2, "2");
        test_sigterm_one_rank_mpi("full2");
        test_nonfinite_mpi();
        test_watchdog_mpi();
        test_rank_change();
    }
    dt_testgen_finish_temp_dir(workdir);
    return dt_test_summary(mpi        ? "reliability_mpi"
                           : features ? "reliability_features"
                                      : "reliability");
}
