/* Data-parallel training checks, run by ctest with the path of mpirun and its flags:
 *  - 2 ranks x batch b equal 1 rank x batch b x accumulate 2 (weights within 1e-5 relative),
 *    also with mixup/cutmix and label smoothing on, and 3 ranks equal 1 rank with accumulate 3;
 *  - a data set that does not divide by ranks x batch: every rank runs the same steps, the job
 *    ends by itself;
 *  - a rank failing mid-training ends the whole job quickly with a non-zero code, no process left;
 *  - ranks resolving different configs abort with a message naming the differing rank;
 *  - early stopping ends every rank after the same step, with exit code 0.
 * usage: mpi_train_check DTRAIN_BIN MPIRUN [MPIRUN_FLAGS...] */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "dtrain/platform.h"
#include "dtrain/safetensors.h"
#include "imagegen.h"
#include "process.h"

static char workdir[256], data_dir[512], mpirun_prefix[2048];
static const char *dtrain_bin;

/* Runs dtrain on `ranks` ranks (1 = no launcher) with common settings plus extra overrides,
 * writing into workdir/name; returns the exit code. */
static int train(const char *name, int ranks, const char *env, const char *overrides) {
    char cmd[4096];
    const char *launcher = "";
    char launch[2600];
    if (ranks > 1) {
        snprintf(launch, sizeof launch, "%s -np %d ", mpirun_prefix, ranks);
        launcher = launch;
    }
    snprintf(cmd, sizeof cmd, "cd %s && %s %s%s %s/base.yaml output.dir=%s/%s %s > %s/%s.log 2>&1",
             workdir, env ? env : "", launcher, dtrain_bin, workdir, workdir, name,
             overrides ? overrides : "", workdir, name);
    return dt_test_run(cmd);
}

typedef struct model_file {
    dt_safetensors st;
    int ok;
} model_file;

static model_file load_model(const char *run) {
    model_file m;
    char path[600];
    dt_error err = {{0}, 0};
    snprintf(path, sizeof path, "%s/%s/model.safetensors", workdir, run);
    m.ok = dt_safetensors_read(path, &m.st, &err) == 0;
    if (!m.ok) fprintf(stderr, "%s\n", err.message);
    return m;
}

static float value_at(const dt_st_tensor *t, size_t k) {
    float v;
    memcpy(&v, t->data + 4 * k, 4);
    return v;
}

/* Over the trainable tensors (BatchNorm running statistics are per rank by design and are not
 * compared): ||a - b|| / ||a|| over all of them ("weights"), and ||a - b|| / ||a - init|| (the
 * difference measured against the size of the training update itself). */
static int compare_models(const char *run_a, const char *run_b, const char *run_init,
                          double *weight_rel, double *update_rel) {
    model_file a = load_model(run_a), b = load_model(run_b), init = load_model(run_init);
    int compared = 0;
    double diff = 0, norm = 0, update = 0;
    if (a.ok && b.ok && init.ok) {
        for (size_t i = 0; i < a.st.n_tensors; i++) {
            const dt_st_tensor *ta = &a.st.tensors[i];
            if (strstr(ta->name, "running_") || strstr(ta->name, "num_batches")) continue;
            const dt_st_tensor *tb = dt_safetensors_find(&b.st, ta->name);
            const dt_st_tensor *t0 = dt_safetensors_find(&init.st, ta->name);
            size_t bytes = ta->end - ta->begin;
            if (!tb || !t0 || tb->end - tb->begin != bytes || t0->end - t0->begin != bytes) break;
            for (size_t k = 0; k < bytes / 4; k++) {
                double x = value_at(ta, k), y = value_at(tb, k), x0 = value_at(t0, k);
                diff += (x - y) * (x - y);
                norm += x * x;
                update += (x - x0) * (x - x0);
            }
            compared++;
        }
    }
    if (a.ok) dt_safetensors_free(&a.st);
    if (b.ok) dt_safetensors_free(&b.st);
    if (init.ok) dt_safetensors_free(&init.st);
    if (compared != 62 || update == 0) return -1;
    *weight_rel = sqrt(diff / norm);
    *update_rel = sqrt(diff / update);
    return 0;
}

/* Why N ranks and accumulation can differ at all: both compute the same micro-batch means on the
 * same samples and the SGD step multiplies their sum by 1/(ranks x accumulate) once. Only the
 * order of the summation can differ: 1 rank adds micro-batch gradients in order, MPI_Allreduce
 * adds the ranks' buffers in the order its algorithm picks (float addition is commutative, so
 * for 2 and for 3 ranks Open MPI's orders give bitwise-equal sums; a ring over more ranks may
 * not). A difference of one rounding (~1e-7 relative) per step is then amplified by training a
 * fresh ResNet on small batches (measured here: a 2e-7 relative change of lr alone moves the
 * weights by 4e-4 relative after 5 steps at lr 1e-3), so any tolerance beyond bitwise equality
 * only holds for a few steps. */
static void test_equivalence(void) {
    /* 120 training images, batch 8: 2 ranks x 8 = 1 rank x 8 x accumulate 2 (global 16) */
    const char *common = "train.epochs=1 train.batch_size=8 train.momentum=0.9 "
                         "train.weight_decay=1e-4 train.lr=0.01";
    char args[512];
    /* the initial weights: a learning rate too small to change any float */
    snprintf(args, sizeof args, "%s train.lr=1e-30", common);
    CHECK_INT_EQ(train("init", 1, NULL, args), 0);
    snprintf(args, sizeof args, "%s train.accumulate=2", common);
    CHECK_INT_EQ(train("accumulate2", 1, NULL, args), 0);
    CHECK_INT_EQ(train("ranks2", 2, NULL, common), 0);
    snprintf(args, sizeof args, "%s train.accumulate=3", common);
    CHECK_INT_EQ(train("accumulate3", 1, NULL, args), 0);
    CHECK_INT_EQ(train("ranks3", 3, NULL, common), 0);
    /* mixup/cutmix and label smoothing: each rank mixes its own micro-batch, seeded by its
     * place in the epoch's global order, so 2 ranks mix as 1 rank with accumulate 2 */
    const char *mix = "train.label_smoothing=0.1 train.mixup_alpha=0.4 train.cutmix_alpha=1.0 "
                      "train.mix_prob=0.8";
    snprintf(args, sizeof args, "%s %s train.accumulate=2", common, mix);
    CHECK_INT_EQ(train("accumulate2mix", 1, NULL, args), 0);
    snprintf(args, sizeof args, "%s %s", common, mix);
    CHECK_INT_EQ(train("ranks2mix", 2, NULL, args), 0);
    /* the same start on other data: what a sharding mistake would look like */
    snprintf(args, sizeof args, "%s train.accumulate=3 data.split_seed=7", common);
    CHECK_INT_EQ(train("accumulate3_other_split", 1, NULL, args), 0);

    double weight_rel = INFINITY, update_rel = INFINITY;
    CHECK(compare_models("accumulate2", "ranks2", "init", &weight_rel, &update_rel) == 0);
    printf("2 ranks vs 1 rank accumulate 2: weights differ by %.3g relative (%.3g of the "
           "update)\n",
           weight_rel, update_rel);
    CHECK_MSG(weight_rel <= 1e-5, "2 ranks vs accumulate 2 differ by %.3g", weight_rel);
    CHECK_MSG(update_rel <= 1e-3, "2 ranks vs accumulate 2: %.3g of the update", update_rel);

    CHECK(compare_models("accumulate2mix", "ranks2mix", "init", &weight_rel, &update_rel) == 0);
    printf("mixed, 2 ranks vs 1 rank accumulate 2: weights differ by %.3g relative (%.3g of the "
           "update)\n",
           weight_rel, update_rel);
    CHECK_MSG(weight_rel <= 1e-5, "mixed: 2 ranks vs accumulate 2 differ by %.3g", weight_rel);
    CHECK_MSG(update_rel <= 1e-3, "mixed: 2 ranks vs accumulate 2: %.3g of the update", update_rel);
    CHECK(compare_models("accumulate2", "accumulate2mix", "init", &weight_rel, &update_rel) == 0);
    printf("mixing, same start: %.3g of the update\n", update_rel);
    CHECK_MSG(update_rel >= 0.1, "mixing changes the update by only %.3g", update_rel);

    CHECK(compare_models("accumulate3", "ranks3", "init", &weight_rel, &update_rel) == 0);
    printf("3 ranks vs 1 rank accumulate 3: weights differ by %.3g relative (%.3g of the "
           "update)\n",
           weight_rel, update_rel);
    CHECK_MSG(weight_rel <= 1e-5, "3 ranks vs accumulate 3 differ by %.3g", weight_rel);
    CHECK_MSG(update_rel <= 1e-3, "3 ranks vs accumulate 3: %.3g of the update", update_rel);

    CHECK(compare_models("accumulate3", "accumulate3_other_split", "init", &weight_rel,
                         &update_rel) == 0);
    printf("other data, same start: %.3g of the update\n", update_rel);
    CHECK_MSG(update_rel >= 0.1, "other data changes the update by only %.3g", update_rel);

    /* only rank 0 prints its lines, once */
    char path[600];
    snprintf(path, sizeof path, "%s/ranks3.log", workdir);
    char *log = dt_test_read_text(path);
    CHECK(log && strstr(log, "3 ranks"));
    CHECK(log && strstr(log, "done: final validation accuracy"));
    CHECK(log && dt_test_count(log, "done: final validation accuracy") == 1);
    free(log);
}

static void test_uneven(void) {
    /* 120 training images, 3 ranks x batch 7 = 21 per step: 6 steps (126, padded) per epoch */
    CHECK_INT_EQ(train("uneven", 3, NULL, "train.epochs=2 train.batch_size=7"), 0);
    char path[600];
    snprintf(path, sizeof path, "%s/uneven/metrics.jsonl", workdir);
    char *jsonl = dt_test_read_text(path);
    CHECK(jsonl && strstr(jsonl, "\"event\":\"eval\",\"epoch\":2,\"step\":12,"));
    free(jsonl);
    /* too small for the world size: a clear usage error on every rank, exit 2 */
    int rc = train("too_small", 3, NULL, "train.batch_size=50");
    CHECK(rc != 0);
    snprintf(path, sizeof path, "%s/too_small.log", workdir);
    char *log = dt_test_read_text(path);
    CHECK(log && strstr(log, "fewer than one batch per rank"));
    free(log);
}

/* Any dtrain still running on this test's config? ("[b]" keeps the pattern from matching the
 * shell that runs pgrep.) */
static int leftover_processes(const char *dir) {
    char cmd[600];
    snprintf(cmd, sizeof cmd, "pgrep -f '%s/[b]ase.yaml' > /dev/null", dir);
    return dt_test_run(cmd) == 0;
}

/* train.early_stop_patience on 3 ranks, on a plateau (frozen backbone, lr 1e-30) with the EMA
 * kept: rank 0 decides after the third evaluation and every rank stops after the same step (5
 * steps per epoch: 120 images, 3 ranks x batch 8), the job ending with exit code 0. */
static void test_early_stop(void) {
    double t0 = dt_monotonic_seconds();
    int rc = train("early", 3, NULL,
                   "train.epochs=6 train.batch_size=8 model.freeze=backbone train.lr=1e-30 "
                   "train.early_stop_patience=2 train.ema_decay=0.9");
    CHECK_INT_EQ(rc, 0);
    char path[600];
    snprintf(path, sizeof path, "%s/early.log", workdir);
    char *log = dt_test_read_text(path);
    CHECK(log && strstr(log, "early stopping: the validation accuracy of the EMA weights has not "
                             "improved for 2 evaluations"));
    CHECK(log && strstr(log, "stopped early after epoch 3 of 6"));
    CHECK(log && !strstr(log, "rank 1") && !strstr(log, "rank 2")); /* no rank complained */
    free(log);
    snprintf(path, sizeof path, "%s/early/metrics.jsonl", workdir);
    char *jsonl = dt_test_read_text(path);
    CHECK(jsonl && dt_test_count(jsonl, "\"event\":\"eval\"") == 3);
    CHECK(jsonl && strstr(jsonl, "{\"event\":\"early_stop\",\"epoch\":3,\"step\":15,"
                                 "\"monitor\":\"ema_val_acc\","));
    CHECK(jsonl && strstr(jsonl, "\"stopped_early\":true"));
    free(jsonl);
    snprintf(path, sizeof path, "%s/early/ema.safetensors", workdir);
    CHECK(access(path, F_OK) == 0);
    printf("early stopping on 3 ranks: exit %d after %.1f s\n", rc, dt_monotonic_seconds() - t0);
    sleep(1);
    CHECK(!leftover_processes(workdir));
}

static void test_fault(void) {
    double t0 = dt_monotonic_seconds();
    int rc = train("fault", 2, "DTRAIN_TEST_FAIL_RANK=1 DTRAIN_TEST_FAIL_STEP=3",
                   "train.epochs=3 train.batch_size=8");
    double seconds = dt_monotonic_seconds() - t0;
    CHECK(rc != 0);
    CHECK_MSG(seconds < 60, "the failing job took %.1f s to end", seconds);
    printf("rank 1 failing at step 3: job ended with code %d after %.1f s\n", rc, seconds);
    char path[600];
    snprintf(path, sizeof path, "%s/fault.log", workdir);
    char *log = dt_test_read_text(path);
    CHECK(log && strstr(log, "rank 1: error: test fault injected at step 3"));
    free(log);
    sleep(1);
    CHECK(!leftover_processes(workdir));
}

static void test_config_mismatch(void) {
    int rc = train("mismatch", 3, "DTRAIN_TEST_HASH_SALT_RANK=2", "train.batch_size=8");
    CHECK(rc != 0);
    char path[600];
    snprintf(path, sizeof path, "%s/mismatch.log", workdir);
    char *log = dt_test_read_text(path);
    CHECK(log && strstr(log, "rank 2 resolved a different config than rank 0"));
    free(log);
    sleep(1);
    CHECK(!leftover_processes(workdir));
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: %s DTRAIN_BIN MPIRUN [MPIRUN_FLAGS...]\n", argv[0]);
        return 2;
    }
    dtrain_bin = argv[1];
    size_t at = 0;
    for (int i = 2; i < argc && at < sizeof mpirun_prefix; i++)
        at += (size_t)snprintf(mpirun_prefix + at, sizeof mpirun_prefix - at, "%s%s",
                               i > 2 ? " " : "", argv[i]);
    dt_error err = {{0}, 0};
    if (dt_testgen_make_temp_dir("dtrain-mpi", workdir, sizeof workdir, &err)) {
        fprintf(stderr, "%s\n", err.message);
        return 1;
    }
    snprintf(data_dir, sizeof data_dir, "%s/data", workdir);
    /* 3 classes x 50 = 150 images; val 0.2 -> 30, train 120 */
    if (dt_testgen_learnable_imagefolder(data_dir, 3, 50, 36, 36, 9, &err)) {
        fprintf(stderr, "%s\n", err.message);
        return 1;
    }
    char cfg[1024], path[600];
    snprintf(cfg, sizeof cfg,
             "data:\n  root: %s\n  image_size: 32\n  mean: [0.5, 0.5, 0.5]\n"
             "  std: [0.25, 0.25, 0.25]\n  workers: 1\nruntime:\n  device: cpu\n  threads: 1\n"
             "train:\n  lr: 0.02\noutput:\n  log_every: 2\n",
             data_dir);
    snprintf(path, sizeof path, "%s/base.yaml", workdir);
    if (dt_test_write_text(path, cfg)) {
        fprintf(stderr, "cannot write %s\n", path);
        return 1;
    }

    test_equivalence();
    test_uneven();
    test_fault();
    test_config_mismatch();
    test_early_stop();
    dt_testgen_finish_temp_dir(workdir);
    return dt_test_summary("mpi_train");
}
