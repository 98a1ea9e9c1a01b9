/* End to end: the dtrain binary trains on a generated, learnable JPEG ImageFolder to at least
 * 90% validation accuracy, writes every file of README's "Output files" with the right contents,
 * shows a live progress line and data.class_names' display names, and maps bad command lines and
 * configs to exit code 2. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "dtrain/safetensors.h"
#include "imagegen.h"
#include "process.h"

static char workdir[256];
static const char *dtrain_bin;

/* Value of "key": in the last line of text that contains marker. */
static double last_number(const char *text, const char *marker, const char *key) {
    const char *line = NULL;
    for (const char *p = text; (p = strstr(p, marker)); p++) line = p;
    if (!line) return -1;
    const char *end = strchr(line, '\n');
    const char *k = strstr(line, key);
    if (!k || (end && k > end)) return -1;
    return atof(k + strlen(key));
}

static void test_training_run(void) {
    char data[512], cfg_path[512], out[512], cmd[2048], path[1024];
    snprintf(data, sizeof data, "%s/data", workdir);
    snprintf(out, sizeof out, "%s/run", workdir);
    dt_error err = {{0}, 0};
    CHECK_MSG(dt_testgen_learnable_imagefolder(data, 3, 80, 40, 40, 5, &err) == 0, "%s",
              err.message);
    char cfg[2048];
    snprintf(cfg, sizeof cfg,
             "data:\n  root: %s\n  val_fraction: 0.25\n  image_size: 32\n"
             "  mean: [0.5, 0.5, 0.5]\n  std: [0.25, 0.25, 0.25]\n  workers: 2\n"
             "train:\n  epochs: 4\n  batch_size: 16\n  lr: 0.05\n  momentum: 0.9\n"
             "  seed: 1\nruntime:\n  device: cpu\n  threads: 2\n"
             "output:\n  dir: %s\n  log_every: 5\n",
             data, out);
    snprintf(cfg_path, sizeof cfg_path, "%s/cfg.yaml", workdir);
    CHECK(dt_test_write_text(cfg_path, cfg) == 0);
    snprintf(cmd, sizeof cmd, "%s %s > %s/log.txt 2>&1", dtrain_bin, cfg_path, workdir);
    int rc = dt_test_run(cmd);
    CHECK_INT_EQ(rc, 0);
    snprintf(path, sizeof path, "%s/log.txt", workdir);
    char *log = dt_test_read_text(path);
    if (rc != 0 && log) fprintf(stderr, "dtrain output:\n%s\n", log);
    CHECK(log && strstr(log, "done: final validation accuracy"));
    CHECK(log && !strchr(log, '\r')); /* not a terminal: plain lines only */
    /* runtime.precision is auto by default: strict fp32 on the CPU, said in the log, the done
     * row and the report; config.yaml keeps auto, so that it loads back to the same run */
    CHECK(log && strstr(log, " on cpu, precision fp32 (runtime.precision: auto), "));
    free(log);
    snprintf(path, sizeof path, "%s/config.yaml", out);
    char *written = dt_test_read_text(path);
    CHECK(written && strstr(written, "\n  precision: auto\n"));
    free(written);
    snprintf(path, sizeof path, "%s/report.html", out);
    char *report = dt_test_read_text(path);
    CHECK(report && strstr(report, "cpu, precision fp32, "));
    CHECK(report && strstr(report, "<td>sgd, weight decay 0</td>"));
    free(report);

    snprintf(path, sizeof path, "%s/metrics.jsonl", out);
    char *jsonl = dt_test_read_text(path);
    CHECK(jsonl != NULL);
    if (jsonl) {
        CHECK_INT_EQ(dt_test_count(jsonl, "\"event\":\"eval\""), 4);
        CHECK_INT_EQ(dt_test_count(jsonl, "\"event\":\"done\""), 1);
        CHECK(strstr(jsonl,
                     ",\"optimizer\":\"sgd\",\"arch\":\"resnet18\",\"precision\":\"fp32\"}\n") >
              strstr(jsonl, "\"event\":\"done\""));
        CHECK(!strstr(jsonl, "grad_norm")); /* train.clip_grad_norm off */
        CHECK(dt_test_count(jsonl, "\"event\":\"train\"") >= 4);
        double val_acc = last_number(jsonl, "\"event\":\"eval\"", "\"val_acc\":");
        CHECK_MSG(val_acc >= 0.9, "final validation accuracy %.4f < 0.9", val_acc);
        CHECK_INT_EQ((long)last_number(jsonl, "\"event\":\"eval\"", "\"n\":"), 60);
        CHECK_INT_EQ((long)last_number(jsonl, "\"event\":\"done\"", "\"skipped_files\":"), 0);
        double best = last_number(jsonl, "\"event\":\"done\"", "\"best_val_acc\":");
        CHECK(best >= val_acc);
        /* 180 training images, global batch 16 -> 12 steps per epoch, 48 in all */
        CHECK_INT_EQ((long)last_number(jsonl, "\"event\":\"eval\"", "\"step\":"), 48);
        free(jsonl);
    }
    snprintf(path, sizeof path, "%s/metrics.csv", out);
    char *csv = dt_test_read_text(path);
    CHECK(csv && strncmp(csv,
                         "event,epoch,step,loss,acc,lr,img_per_s,val_loss,val_acc,n,"
                         "elapsed_s\n",
                         68) == 0);
    CHECK(csv && dt_test_count(csv, "\neval,") == 4);
    free(csv);
    snprintf(path, sizeof path, "%s/classes.txt", out);
    char *classes = dt_test_read_text(path);
    CHECK_STR_EQ(classes, "class00\nclass01\nclass02\n");
    free(classes);

    snprintf(path, sizeof path, "%s/model.safetensors", out);
    dt_safetensors st;
    int read_rc = dt_safetensors_read(path, &st, &err);
    CHECK_MSG(read_rc == 0, "%s", err.message);
    if (read_rc == 0) {
        CHECK_INT_EQ(st.n_tensors, 122);
        const dt_st_tensor *conv1 = dt_safetensors_find(&st, "conv1.weight");
        CHECK(conv1 && conv1->dtype == DT_ST_F32 && conv1->ndim == 4 && conv1->shape[0] == 64 &&
              conv1->shape[1] == 3 && conv1->shape[2] == 7);
        const dt_st_tensor *fc = dt_safetensors_find(&st, "fc.weight");
        CHECK(fc && fc->ndim == 2 && fc->shape[0] == 3 && fc->shape[1] == 512);
        const dt_st_tensor *tracked = dt_safetensors_find(&st, "layer4.1.bn2.num_batches_tracked");
        CHECK(tracked && tracked->dtype == DT_ST_I64 && tracked->ndim == 0);
        if (tracked) {
            long long v;
            memcpy(&v, tracked->data, sizeof v);
            CHECK_INT_EQ(v, 48);
        }
        dt_safetensors_free(&st);
    }
    snprintf(path, sizeof path, "%s/best.safetensors", out);
    struct stat sb;
    CHECK(stat(path, &sb) == 0 && sb.st_size > 40000000);

    /* on a terminal (forced here): a live line redrawn with \r; NO_COLOR keeps colour out.
     * data.class_names renames class01 in the log and the models' metadata, not in classes.txt;
     * a name for a folder that does not exist is warned about. */
    snprintf(cmd, sizeof cmd,
             "DTRAIN_PROGRESS=live NO_COLOR=1 %s %s train.epochs=1 output.dir=%s/live "
             "'data.class_names={class01: cat, class09: dog}' > %s/live.txt 2>&1",
             dtrain_bin, cfg_path, workdir, workdir);
    CHECK_INT_EQ(dt_test_run(cmd), 0);
    snprintf(path, sizeof path, "%s/live.txt", workdir);
    char *live = dt_test_read_text(path);
    CHECK(live && strchr(live, '\r') && strstr(live, "ETA"));
    CHECK(live && !strstr(live, "\033[1"));
    /* log_every 5 of 12 steps: the live lines before the first log line know the epoch and step
     * totals (no "1/0") and show no loss yet; after it, the last window's loss */
    CHECK_MSG(live && !strstr(live, "/0 "), "%s", live ? live : "");
    CHECK(live && strstr(live, "\r\033[Kepoch 1/1  step 1/12  ETA "));
    CHECK(live && strstr(live, "\r\033[Kepoch 1/1  step 6/12  loss "));
    CHECK(live && strstr(live, "classes: class00, cat (class01), class02\n"));
    CHECK(live && strstr(live, "data.class_names: 'class09' is not a class folder"));
    free(live);
    snprintf(path, sizeof path, "%s/live/classes.txt", workdir);
    classes = dt_test_read_text(path);
    CHECK_STR_EQ(classes, "class00\nclass01\nclass02\n");
    free(classes);
    const char *models[] = {"model", "best"};
    for (int i = 0; i < 2; i++) {
        snprintf(path, sizeof path, "%s/live/%s.safetensors", workdir, models[i]);
        read_rc = dt_safetensors_read(path, &st, &err);
        CHECK_MSG(read_rc == 0, "%s", err.message);
        if (read_rc == 0) {
            CHECK_STR_EQ(dt_safetensors_metadata_value(&st, "classes"), "class00\ncat\nclass02");
            dt_safetensors_free(&st);
        }
    }

    /* the written config.yaml reproduces the run's resolved config */
    snprintf(cmd, sizeof cmd,
             "%s %s --print-config > %s/a.yaml && %s %s/config.yaml "
             "--print-config > %s/b.yaml && cmp -s %s/a.yaml %s/b.yaml",
             dtrain_bin, cfg_path, workdir, dtrain_bin, out, workdir, workdir, workdir);
    CHECK_INT_EQ(dt_test_run(cmd), 0);
}

static void test_exit_codes(void) {
    char cmd[2048], cfg_path[512];
    snprintf(cmd, sizeof cmd, "%s %s/missing.yaml 2>/dev/null", dtrain_bin, workdir);
    CHECK_INT_EQ(dt_test_run(cmd), 2);
    snprintf(cmd, sizeof cmd, "%s 2>/dev/null", dtrain_bin);
    CHECK_INT_EQ(dt_test_run(cmd), 2);
    snprintf(cmd, sizeof cmd, "%s --bogus 2>/dev/null", dtrain_bin);
    CHECK_INT_EQ(dt_test_run(cmd), 2);
    snprintf(cmd, sizeof cmd, "%s --version > /dev/null", dtrain_bin);
    CHECK_INT_EQ(dt_test_run(cmd), 0);
    snprintf(cmd, sizeof cmd, "%s --help > /dev/null", dtrain_bin);
    CHECK_INT_EQ(dt_test_run(cmd), 0);

    snprintf(cfg_path, sizeof cfg_path, "%s/nodata.yaml", workdir);
    char cfg[512];
    snprintf(cfg, sizeof cfg, "data:\n  root: %s/does-not-exist\noutput:\n  dir: %s/x\n", workdir,
             workdir);
    CHECK(dt_test_write_text(cfg_path, cfg) == 0);
    snprintf(cmd, sizeof cmd, "%s %s > %s/err.txt 2>&1", dtrain_bin, cfg_path, workdir);
    CHECK_INT_EQ(dt_test_run(cmd), 2);
    char path[600];
    snprintf(path, sizeof path, "%s/err.txt", workdir);
    char *text = dt_test_read_text(path);
    CHECK(text && strstr(text, "does-not-exist"));
    free(text);
    snprintf(cmd, sizeof cmd, "%s %s train.epochs=zero > /dev/null 2>&1", dtrain_bin, cfg_path);
    CHECK_INT_EQ(dt_test_run(cmd), 2);
    /* a data set smaller than one batch is a clear usage error */
    snprintf(cmd, sizeof cmd, "%s %s data.root=%s/data train.batch_size=500 > %s/err.txt 2>&1",
             dtrain_bin, cfg_path, workdir, workdir);
    CHECK_INT_EQ(dt_test_run(cmd), 2);
    text = dt_test_read_text(path);
    CHECK(text && strstr(text, "fewer than one batch per rank"));
    free(text);
}

int main(void) {
    if (dt_test_dtrain_setup("dtrain-e2e", &dtrain_bin, workdir, sizeof workdir)) return 1;
    test_training_run();
    test_exit_codes();
    dt_testgen_finish_temp_dir(workdir);
    return dt_test_summary("train_e2e");
}
