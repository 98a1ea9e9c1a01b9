/* End to end: the dtrain binary trains on a generated, learnable JPEG ImageFolder to at least
 * 90% validation accuracy, writes every file of README's "Output files" with the right contents,
 * shows a live progress line and data.class_names' display names, keeps and evaluates the
 * weights' moving average (train.ema_decay), stops early on a plateau
 * (train.early_stop_patience), and maps bad command lines and configs to exit code 2; with the
 * pixel augmentations on, a resumed run ends as a straight one. */
#define _GNU_SOURCE /* memmem */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "dtrain/platform.h"
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

/* How many event files under dir hold the bytes of tag (a TensorBoard scalar's name). */
static int event_files_with(const char *dir, const char *tag) {
    DIR *d = opendir(dir);
    if (!d) return 0;
    int found = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (strncmp(e->d_name, "events.out.tfevents.", 20) != 0) continue;
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        uint8_t *bytes = NULL;
        size_t size = 0;
        dt_error err = {{0}, 0};
        if (dt_read_file(path, (size_t)1 << 28, &bytes, &size, &err) == 0)
            found += memmem(bytes, size, tag, strlen(tag)) != NULL;
        free(bytes);
    }
    closedir(d);
    return found;
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
    snprintf(path, sizeof path, "%s/tensorboard", out);
    CHECK_INT_EQ(event_files_with(path, "eval/acc"), 1);
    CHECK_INT_EQ(event_files_with(path, "eval/ema_acc"), 0); /* no EMA kept */

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
                         "elapsed_s,ema_val_loss,ema_val_acc\n",
                         93) == 0);
    CHECK(csv && strstr(csv, "\neval,") && !strstr(csv, "ema_val_acc\neval") &&
          strstr(strstr(csv, "\neval,"), ",\n")); /* no EMA: its columns stay empty */
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

/* The last ema_val_acc of metrics.jsonl as report.html and `dtrain eval` print it (%.4f). */
static void four_digits(const char *jsonl, char *out, size_t size) {
    snprintf(out, size, "%.4f", last_number(jsonl, "\"event\":\"eval\"", "\"ema_val_acc\":"));
}

/* train.ema_decay: both accuracies in the log, metrics.jsonl, metrics.csv and report.html;
 * ema.safetensors beside the model, a normal model file for `dtrain eval` and `predict`, which
 * reproduce the run's evaluation of it. */
static void test_ema_run(void) {
    char cmd[4096], path[1024], out[512];
    snprintf(out, sizeof out, "%s/ema", workdir);
    snprintf(cmd, sizeof cmd,
             "%s %s/cfg.yaml train.epochs=2 train.ema_decay=0.9 output.dir=%s > %s/ema.log 2>&1",
             dtrain_bin, workdir, out, workdir);
    CHECK_INT_EQ(dt_test_run(cmd), 0);
    char *log = dt_test_read_log(workdir, "ema");
    CHECK_INT_EQ(dt_test_count(log, "; EMA weights: loss "), 2);
    free(log);
    snprintf(path, sizeof path, "%s/metrics.jsonl", out);
    char *jsonl = dt_test_read_text(path);
    CHECK(jsonl && dt_test_count(jsonl, ",\"ema_val_acc\":") == 2);
    char acc[32] = "";
    if (jsonl) four_digits(jsonl, acc, sizeof acc);
    free(jsonl);
    snprintf(path, sizeof path, "%s/metrics.csv", out);
    char *csv = dt_test_read_text(path);
    /* eval rows end with the two EMA columns filled, train rows with them empty */
    CHECK(csv && strstr(csv, "\ntrain,") && strstr(strstr(csv, "\ntrain,"), ",,\n"));
    const char *eval = csv ? strstr(csv, "\neval,2,") : NULL;
    CHECK(eval && !strstr(eval, ",,\n") && dt_test_count(eval, ",") == 12);
    free(csv);
    snprintf(path, sizeof path, "%s/report.html", out);
    char *report = dt_test_read_text(path);
    char want[96];
    snprintf(want, sizeof want, "EMA weights: accuracy <span id=\"ema-accuracy\">%s</span>", acc);
    CHECK_MSG(report && strstr(report, want), "report.html lacks \"%s\"", want);
    CHECK(report && strstr(report, "validation (EMA)"));
    free(report);
    snprintf(path, sizeof path, "%s/ema.safetensors", out);
    dt_safetensors st;
    dt_error err = {{0}, 0};
    int read_rc = dt_safetensors_read(path, &st, &err);
    CHECK_MSG(read_rc == 0, "%s", err.message);
    if (read_rc == 0) {
        CHECK_INT_EQ(st.n_tensors, 122);
        CHECK_STR_EQ(dt_safetensors_metadata_value(&st, "arch"), "resnet18");
        const dt_st_tensor *tracked = dt_safetensors_find(&st, "bn1.num_batches_tracked");
        long long v = -1;
        if (tracked) memcpy(&v, tracked->data, sizeof v);
        CHECK_INT_EQ(v, 24); /* copied from the model: 2 epochs of 12 steps */
        dt_safetensors_free(&st);
    }
    snprintf(path, sizeof path, "%s/tensorboard", out);
    CHECK_INT_EQ(event_files_with(path, "eval/ema_acc"), 1);
    CHECK_INT_EQ(event_files_with(path, "eval/ema_loss"), 1);
    /* the checkpoints hold it too */
    snprintf(path, sizeof path, "%s/checkpoints/step-00000024/ema.safetensors", out);
    CHECK(access(path, F_OK) == 0);
    /* dtrain eval on it: the run's own evaluation of the average */
    snprintf(cmd, sizeof cmd,
             "%s eval %s/cfg.yaml output.dir=%s --model %s/ema.safetensors --out %s/ema-eval "
             "> %s/ema-eval.log 2>&1",
             dtrain_bin, workdir, out, out, workdir, workdir);
    CHECK_INT_EQ(dt_test_run(cmd), 0);
    char *text = dt_test_read_log(workdir, "ema-eval");
    snprintf(want, sizeof want, "validation accuracy %s, ", acc);
    CHECK_MSG(strstr(text, want), "dtrain eval of ema.safetensors: no \"%s\" in\n%s", want, text);
    free(text);
    snprintf(cmd, sizeof cmd,
             "%s predict %s/ema.safetensors %s/data/class01 --top-k 1 > %s/ema-predict.log 2>&1",
             dtrain_bin, out, workdir, workdir);
    CHECK_INT_EQ(dt_test_run(cmd), 0);
    text = dt_test_read_log(workdir, "ema-predict");
    CHECK(dt_test_count(text, "\n") == 80 && dt_test_count(text, "\tclass0") == 80);
    free(text);
}

/* train.early_stop_patience on a plateau (frozen backbone, lr 1e-30: the weights cannot move):
 * the first evaluation sets the best, the next 2 do not improve it, the run stops after epoch 3
 * of 6 with exit code 0 and says why in the log, metrics.jsonl and report.html. */
static void test_early_stop(void) {
    char cmd[4096], path[1024];
    snprintf(cmd, sizeof cmd,
             "%s %s/cfg.yaml train.epochs=6 model.freeze=backbone train.lr=1e-30 "
             "train.early_stop_patience=2 output.dir=%s/stop > %s/stop.log 2>&1",
             dtrain_bin, workdir, workdir, workdir);
    CHECK_INT_EQ(dt_test_run(cmd), 0);
    char *log = dt_test_read_log(workdir, "stop");
    CHECK(strstr(log, "early stopping: the validation accuracy has not improved for 2 "
                      "evaluations (best "));
    CHECK(strstr(log, "stopped early after epoch 3 of 6 (train.early_stop_patience 2)"));
    CHECK_INT_EQ(dt_test_count(log, ": validation loss "), 3);
    free(log);
    snprintf(path, sizeof path, "%s/stop/metrics.jsonl", workdir);
    char *jsonl = dt_test_read_text(path);
    CHECK(jsonl && dt_test_count(jsonl, "\"event\":\"eval\"") == 3);
    CHECK(jsonl && strstr(jsonl, "{\"event\":\"early_stop\",\"epoch\":3,\"step\":36,"
                                 "\"monitor\":\"val_acc\",\"best\":"));
    CHECK(jsonl && strstr(jsonl, ",\"best_epoch\":1,\"wait\":2,\"patience\":2}\n"));
    CHECK(jsonl && strstr(jsonl, ",\"stopped_early\":true,\"elapsed_s\":"));
    free(jsonl);
    snprintf(path, sizeof path, "%s/stop/report.html", workdir);
    char *report = dt_test_read_text(path);
    CHECK(report && strstr(report, "<p id=\"early-stop\">Stopped early after epoch 3 (step 36): "
                                   "the validation accuracy did not improve for 2 evaluations"));
    free(report);
    /* a resume of the ended run does not train on; a larger patience goes on to its own end */
    snprintf(cmd, sizeof cmd,
             "%s %s/cfg.yaml train.epochs=6 model.freeze=backbone train.lr=1e-30 "
             "train.early_stop_patience=2 output.dir=%s/stop --resume > %s/stop2.log 2>&1",
             dtrain_bin, workdir, workdir, workdir);
    CHECK_INT_EQ(dt_test_run(cmd), 0);
    log = dt_test_read_log(workdir, "stop2");
    CHECK(strstr(log,
                 "early stopping: the checkpoint's count has reached "
                 "train.early_stop_patience 2 (2 evaluations without a better accuracy than "));
    CHECK(strstr(log, "stopped early after epoch 3 of 6"));
    CHECK_INT_EQ(dt_test_count(log, ": validation loss "), 0);
    free(log);
    snprintf(cmd, sizeof cmd,
             "%s %s/cfg.yaml train.epochs=6 model.freeze=backbone train.lr=1e-30 "
             "train.early_stop_patience=3 output.dir=%s/stop --resume > %s/stop3.log 2>&1",
             dtrain_bin, workdir, workdir, workdir);
    CHECK_INT_EQ(dt_test_run(cmd), 0);
    log = dt_test_read_log(workdir, "stop3");
    CHECK_INT_EQ(dt_test_count(log, ": validation loss "), 1);
    CHECK(strstr(log, "stopped early after epoch 4 of 6 (train.early_stop_patience 3)"));
    free(log);
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

/* The tensor bytes of a run's model.safetensors (after its JSON header), or NULL. */
static uint8_t *model_tensor_bytes(const char *run, size_t *size) {
    char path[1024];
    snprintf(path, sizeof path, "%s/%s/model.safetensors", workdir, run);
    return dt_testgen_safetensors_data(path, size);
}

/* data.trivial_augment, data.color_jitter and data.random_erasing together with crop_flip: the
 * run finishes, config.yaml keeps them, and a run resumed after its first epoch ends with the
 * weights of the run that went straight through (bitwise); without them the weights differ. */
static void test_pixel_augmentations_resume(void) {
    char data[512], cfg_path[512], cmd[2048], path[1024];
    snprintf(data, sizeof data, "%s/augdata", workdir);
    dt_error err = {{0}, 0};
    CHECK_MSG(dt_testgen_learnable_imagefolder(data, 3, 12, 30, 26, 7, &err) == 0, "%s",
              err.message);
    char cfg[2048];
    snprintf(
        cfg, sizeof cfg,
        "data:\n  root: %s\n  val_fraction: 0.25\n  image_size: 24\n  workers: 2\n"
        "  augment: crop_flip\n  trivial_augment: true\n"
        "  color_jitter: [0.4, 0.4, 0.4, 0.1]\n  random_erasing: 0.5\n"
        "train:\n  epochs: 2\n  batch_size: 9\n  lr: 0.02\n  momentum: 0.9\n  seed: 3\n"
        "runtime:\n  device: cpu\n  threads: 2\noutput:\n  log_every: 2\n  keep_checkpoints: 1\n",
        data);
    snprintf(cfg_path, sizeof cfg_path, "%s/aug.yaml", workdir);
    CHECK(dt_test_write_text(cfg_path, cfg) == 0);
    const char *runs[][2] = {{"aug-straight", ""},
                             {"aug-resumed", "train.epochs=1"},
                             {"aug-resumed", "--resume train.epochs=2"},
                             {"aug-off", "data.trivial_augment=false data.random_erasing=0 "
                                         "data.color_jitter=[0,0,0,0]"}};
    for (int i = 0; i < 4; i++) {
        snprintf(cmd, sizeof cmd, "%s %s output.dir=%s/%s %s >> %s/%s.log 2>&1", dtrain_bin,
                 cfg_path, workdir, runs[i][0], runs[i][1], workdir, runs[i][0]);
        int rc = dt_test_run(cmd);
        CHECK_MSG(rc == 0, "%s exited %d", cmd, rc);
        if (rc != 0) {
            snprintf(path, sizeof path, "%s/%s.log", workdir, runs[i][0]);
            char *log = dt_test_read_text(path);
            fprintf(stderr, "%s\n", log ? log : "");
            free(log);
        }
    }
    snprintf(path, sizeof path, "%s/aug-straight/config.yaml", workdir);
    char *written = dt_test_read_text(path);
    CHECK(written && strstr(written, "\n  trivial_augment: true\n") &&
          strstr(written, "\n  color_jitter: [0.4, 0.4, 0.4, 0.1]\n") &&
          strstr(written, "\n  random_erasing: 0.5\n"));
    free(written);
    snprintf(path, sizeof path, "%s/aug-straight/report.html", workdir);
    char *report = dt_test_read_text(path);
    CHECK_MSG(report && strstr(report, "RandomResizedCrop, RandomHorizontalFlip, "
                                       "TrivialAugmentWide, ColorJitter(0.4, 0.4, 0.4, 0.1), "
                                       "RandomErasing(p=0.5)"),
              "report.html lacks the augmentation summary");
    free(report);
    size_t n_straight = 0, n_resumed = 0, n_off = 0;
    uint8_t *straight = model_tensor_bytes("aug-straight", &n_straight);
    uint8_t *resumed = model_tensor_bytes("aug-resumed", &n_resumed);
    uint8_t *off = model_tensor_bytes("aug-off", &n_off);
    CHECK_MSG(straight && resumed && n_straight == n_resumed && n_straight > 0 &&
                  memcmp(straight, resumed, n_straight) == 0,
              "resumed run's weights differ from the straight run's");
    CHECK_MSG(straight && off && n_straight == n_off && memcmp(straight, off, n_straight) != 0,
              "the augmentations changed nothing");
    free(straight);
    free(resumed);
    free(off);
}

int main(void) {
    if (dt_test_dtrain_setup("dtrain-e2e", &dtrain_bin, workdir, sizeof workdir)) return 1;
    test_training_run();
    test_ema_run();
    test_early_stop();
    test_pixel_augmentations_resume();
    test_exit_codes();
    dt_testgen_finish_temp_dir(workdir);
    return dt_test_summary("train_e2e");
}
