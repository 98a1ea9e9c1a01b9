/* Training from tar shards made by `dtrain pack` gives bitwise the same weights as training from
 * the ImageFolder they were packed from (same files, same seed), with each augmentation; a run
 * from shards resumed after one epoch ends with the same weights as one that ran through;
 * predictions.csv names samples SHARD:KEY, which `dtrain predict` reads back; shard members
 * skipped while indexing are counted in skipped_files and listed in report.html; and `dtrain
 * pack`'s command line refuses bad arguments with exit code 2. The decoded-sample cache (data.cache
 * memory or a folder) gives the same weights with augment none and flip, resumed or not. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "imagegen.h"
#include "process.h"

static char workdir[512];
static const char *dtrain_bin;

static int same_weights(const char *run_a, const char *run_b) {
    char a[1024], b[1024];
    snprintf(a, sizeof a, "%s/%s/model.safetensors", workdir, run_a);
    snprintf(b, sizeof b, "%s/%s/model.safetensors", workdir, run_b);
    size_t na = 0, nb = 0;
    uint8_t *wa = dt_testgen_safetensors_data(a, &na), *wb = dt_testgen_safetensors_data(b, &nb);
    int same = wa && wb && na == nb && na > 0 && memcmp(wa, wb, na) == 0;
    free(wa);
    free(wb);
    return same;
}

static int train(const char *root, const char *run, const char *augment, const char *extra) {
    char cmd[4096];
    snprintf(cmd, sizeof cmd,
             "%s %s/cfg.yaml data.root=%s/%s output.dir=%s/%s data.augment=%s %s "
             "> %s/%s.log 2>&1",
             dtrain_bin, workdir, workdir, root, workdir, run, augment, extra, workdir, run);
    int rc = dt_test_run(cmd);
    if (rc != 0) {
        char path[1024];
        snprintf(path, sizeof path, "%s/%s.log", workdir, run);
        char *log = dt_test_read_text(path);
        fprintf(stderr, "%s exited %d:\n%s\n", cmd, rc, log ? log : "");
        free(log);
    }
    return rc;
}

int main(void) {
    if (dt_test_dtrain_setup("dtrain-shards-train", &dtrain_bin, workdir, sizeof workdir)) return 1;
    char path[1024], cmd[2048];
    dt_error err = {{0}, 0};
    snprintf(path, sizeof path, "%s/folder", workdir);
    CHECK_MSG(dt_testgen_learnable_imagefolder(path, 3, 16, 30, 24, 9, &err) == 0, "%s",
              err.message);
    /* a 10 KiB shard size: several shards */
    snprintf(cmd, sizeof cmd, "%s pack %s/folder %s/shards --shard-size 0.01 > %s/pack.log 2>&1",
             dtrain_bin, workdir, workdir, workdir);
    CHECK_INT_EQ(dt_test_run(cmd), 0);
    snprintf(path, sizeof path, "%s/pack.log", workdir);
    char *log = dt_test_read_text(path);
    CHECK(log && strstr(log, "packed 48 images into "));
    CHECK(log && !strchr(log, '\r')); /* no progress bar when stderr is not a terminal */
    free(log);

    snprintf(path, sizeof path, "%s/cfg.yaml", workdir);
    CHECK(dt_test_write_text(path, "data:\n  root: unused\n  val_fraction: 0.25\n"
                                   "  image_size: 16\n  workers: 2\n"
                                   "train:\n  epochs: 2\n  batch_size: 9\n  lr: 0.05\n"
                                   "  momentum: 0.9\n  seed: 4\n"
                                   "runtime:\n  device: cpu\n  threads: 2\n"
                                   "output:\n  log_every: 5\n  tensorboard: false\n") == 0);
    const char *augments[] = {"none", "flip", "crop_flip"};
    for (int a = 0; a < 3; a++) {
        char folder_run[64], shard_run[64];
        snprintf(folder_run, sizeof folder_run, "folder-%s", augments[a]);
        snprintf(shard_run, sizeof shard_run, "shards-%s", augments[a]);
        CHECK_INT_EQ(train("folder", folder_run, augments[a], ""), 0);
        CHECK_INT_EQ(train("shards", shard_run, augments[a], ""), 0);
        CHECK_MSG(same_weights(folder_run, shard_run), "augment %s: weights differ", augments[a]);
    }
    /* resume from shards after the first epoch: the same end as the straight run */
    CHECK_INT_EQ(train("shards", "resumed", "crop_flip", "train.epochs=1"), 0);
    CHECK_INT_EQ(train("shards", "resumed", "crop_flip", "--resume train.epochs=2"), 0);
    CHECK_MSG(same_weights("shards-crop_flip", "resumed"), "resumed run differs");
    /* the decoded-sample cache, in memory and in a folder, changes nothing with none and flip,
     * also across a resume; with crop_flip it crops pre-resized images and still trains */
    snprintf(cmd, sizeof cmd, "mkdir -p %s/cache", workdir);
    CHECK_INT_EQ(dt_test_run(cmd), 0);
    char cache_dir[600];
    snprintf(cache_dir, sizeof cache_dir, "data.cache=%s/cache", workdir);
    CHECK_INT_EQ(train("shards", "cache-memory-flip", "flip", "data.cache=memory"), 0);
    CHECK_MSG(same_weights("folder-flip", "cache-memory-flip"), "memory cache, flip: differs");
    CHECK_INT_EQ(train("folder", "cache-dir-none", "none", cache_dir), 0);
    CHECK_MSG(same_weights("folder-none", "cache-dir-none"), "folder cache, none: differs");
    snprintf(cmd, sizeof cmd, "%s train.epochs=1", cache_dir);
    CHECK_INT_EQ(train("shards", "cache-resumed", "flip", cmd), 0);
    snprintf(cmd, sizeof cmd, "--resume %s train.epochs=2", cache_dir);
    CHECK_INT_EQ(train("shards", "cache-resumed", "flip", cmd), 0);
    CHECK_MSG(same_weights("folder-flip", "cache-resumed"), "cache, resumed: differs");
    CHECK_INT_EQ(train("shards", "cache-crop", "crop_flip", cache_dir), 0);
    CHECK(!same_weights("shards-crop_flip", "cache-crop"));

    /* the control: a different seed does change the weights */
    CHECK_INT_EQ(train("shards", "other-seed", "crop_flip", "train.seed=5"), 0);
    CHECK(!same_weights("shards-crop_flip", "other-seed"));

    snprintf(path, sizeof path, "%s/shards-none/predictions.csv", workdir);
    char *csv = dt_test_read_text(path);
    char expected[1024];
    snprintf(expected, sizeof expected, "\n%s/shards/shard-0000", workdir);
    CHECK_MSG(csv && dt_test_count(csv, expected) == 12 && dt_test_count(csv, ".tar:class0") == 12,
              "predictions.csv:\n%s", csv ? csv : "");
    /* dtrain predict takes those names: the first sample of predictions.csv, and a missing key */
    char sample[600] = "";
    const char *row = csv ? strchr(csv, '\n') : NULL;
    if (row) sscanf(row + 1, "%599[^,]", sample);
    CHECK(strstr(sample, ".tar:") != NULL);
    snprintf(
        cmd, sizeof cmd,
        "%s predict %s/shards-none/model.safetensors '%s' '%s/shards/shard-000000.tar:no/such' "
        "--device cpu > %s/predict.out 2>&1",
        dtrain_bin, workdir, sample, workdir, workdir);
    CHECK_INT_EQ(dt_test_run(cmd), 1); /* the missing key */
    snprintf(path, sizeof path, "%s/predict.out", workdir);
    char *predicted = dt_test_read_text(path);
    char good[700];
    snprintf(good, sizeof good, "%s\tclass", sample);
    CHECK_MSG(predicted && strstr(predicted, good) &&
                  strstr(predicted, "shard-000000.tar:no/such\terror: no image with key no/such"),
              "dtrain predict on SHARD:KEY names:\n%s", predicted ? predicted : "");
    free(predicted);
    free(csv);

    /* a symbolic link member in an extra shard: skipped, named, counted in skipped_files */
    snprintf(cmd, sizeof cmd,
             "cd %s && mkdir -p evil/x && ln -s /etc/passwd evil/x/link.jpg && "
             "tar --format=ustar -cf shards/shard-zz-evil.tar -C evil x/link.jpg",
             workdir);
    CHECK_INT_EQ(dt_test_run(cmd), 0);
    CHECK_INT_EQ(train("shards", "with-evil", "none", "train.epochs=1"), 0);
    snprintf(path, sizeof path, "%s/with-evil.log", workdir);
    log = dt_test_read_text(path);
    CHECK(log && strstr(log, "shard-zz-evil.tar:x/link.jpg: a symbolic link member"));
    free(log);
    snprintf(path, sizeof path, "%s/with-evil/metrics.jsonl", workdir);
    char *jsonl = dt_test_read_text(path);
    CHECK(jsonl && strstr(jsonl, "\"skipped_files\":1"));
    free(jsonl);
    snprintf(path, sizeof path, "%s/with-evil/report.html", workdir);
    char *report = dt_test_read_text(path);
    CHECK_MSG(report && strstr(report, "Skipped files (1)") &&
                  strstr(report, "shard-zz-evil.tar:x/link.jpg: a symbolic link member"),
              "report.html does not list the skipped member");
    free(report);

    /* a truncated shard: a clear error naming it, exit code 2 */
    snprintf(cmd, sizeof cmd,
             "cd %s && head -c 3000 shards/shard-000000.tar > shards/shard-zz-cut.tar", workdir);
    CHECK_INT_EQ(dt_test_run(cmd), 0);
    CHECK_INT_EQ(train("shards", "cut", "none", "train.epochs=1"), 2);
    snprintf(path, sizeof path, "%s/cut.log", workdir);
    log = dt_test_read_text(path);
    CHECK(log && strstr(log, "shard-zz-cut.tar: truncated shard"));
    free(log);

    /* the command line */
    const char *bad[] = {"",
                         "only-one",
                         "a b c",
                         "a b --resize 0",
                         "a b --quality 101",
                         "a b --shard-size x",
                         "a b --bogus",
                         "a b --resize"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        snprintf(cmd, sizeof cmd, "%s pack %s > /dev/null 2>&1", dtrain_bin, bad[i]);
        CHECK_MSG(dt_test_run(cmd) == 2, "dtrain pack %s", bad[i]);
    }
    snprintf(cmd, sizeof cmd, "%s pack %s/nowhere %s/out2 > /dev/null 2>&1", dtrain_bin, workdir,
             workdir);
    CHECK(dt_test_run(cmd) != 0);
    dt_testgen_finish_temp_dir(workdir);
    return dt_test_summary("shards_train");
}
