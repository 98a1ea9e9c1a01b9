/* Tests of the strict config reader: the documented defaults, good and bad YAML files and overrides
 * with their exact "FILE:LINE:COL: key.path: message" errors and exit code 2, and the round trip of
 * dt_config_write_yaml through dt_config_load. */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "dtrain/config.h"

/* Every case file is written here; "FILE" in an expected message stands for its path. */
static char case_dir[256];
static char case_path[300];

static int write_text(const char *path, const char *text, size_t length) {
    /* A new file each time: rewriting one in place makes ext4 flush it to disk (slow). */
    unlink(path);
    FILE *file = fopen(path, "wb");
    if (!file) return -1;
    size_t written = fwrite(text, 1, length, file);
    return fclose(file) == 0 && written == length ? 0 : -1;
}

/* Replaces every "FILE" in pattern with the case file's path. */
static void expand_expected(const char *pattern, char *out, size_t size) {
    size_t used = 0;
    out[0] = '\0';
    while (*pattern && used + 1 < size) {
        if (strncmp(pattern, "FILE", 4) == 0) {
            used += (size_t)snprintf(out + used, size - used, "%s", case_path);
            pattern += 4;
        } else {
            out[used++] = *pattern++;
            out[used] = '\0';
        }
    }
}

static int count_overrides(const char *const *overrides) {
    int n = 0;
    while (n < 8 && overrides[n]) n++;
    return n;
}

/* Loads yaml (written to the case file) with overrides; returns dt_config_load's result. */
static int load_text(const char *yaml, const char *const *overrides, dt_config *cfg,
                     dt_error *err) {
    memset(err, 0, sizeof *err);
    if (write_text(case_path, yaml, strlen(yaml))) {
        fprintf(stderr, "cannot write %s\n", case_path);
        return -2;
    }
    return dt_config_load(case_path, count_overrides(overrides), (char *const *)overrides, cfg,
                          err);
}

/* ---- bad configs: the exact message and exit code 2 ---- */

typedef struct bad_case {
    const char *yaml;
    const char *overrides[4];
    const char *expected; /* "FILE" stands for the case file's path */
} bad_case;

#define ROOT "data:\n  root: /data/pets\n" /* lines 1-2 of most cases */

static const bad_case bad_cases[] = {
    /* unknown keys and did-you-mean */
    {ROOT "train:\n  epoch: 3\n",
     {0},
     "FILE:4:3: train.epoch: unknown key, did you mean 'epochs'?"},
    {ROOT "train:\n  banana: 3\n",
     {0},
     "FILE:4:3: train.banana: unknown key (train keys: epochs, batch_size, accumulate, lr, "
     "momentum, nesterov, weight_decay, optimizer, betas, eps, no_weight_decay, clip_grad_norm, "
     "schedule, step_size, gamma, warmup_epochs, label_smoothing, mixup_alpha, cutmix_alpha, "
     "mix_prob, mix_switch_prob, shuffle, seed, nonfinite, max_skipped_steps, ema_decay, "
     "early_stop_patience)"},
    {ROOT "train:\n  device: cpu\n",
     {0},
     "FILE:4:3: train.device: unknown key, did you mean 'runtime.device'?"},
    {ROOT "  val: 0.1\n", {0}, "FILE:3:3: data.val: unknown key, did you mean 'val_root'?"},
    {ROOT "  val_fractoin: 0.1\n",
     {0},
     "FILE:3:3: data.val_fractoin: unknown key, did you mean 'val_fraction'?"},
    {ROOT "  Root: /x\n", {0}, "FILE:3:3: data.Root: unknown key, did you mean 'root'?"},
    {ROOT "train:\n  momentun: 0.9\n",
     {0},
     "FILE:4:3: train.momentun: unknown key, did you mean 'momentum'?"},
    {ROOT "trian:\n  epochs: 3\n", {0}, "FILE:3:1: trian: unknown section, did you mean 'train'?"},
    {ROOT "epochs: 3\n", {0}, "FILE:3:1: epochs: unknown section, did you mean 'train.epochs'?"},
    {"data.root: /x\n",
     {0},
     "FILE:1:1: data.root: unknown section; in a file keys are nested: write 'root:' under "
     "'data:'"},
    {"zzz: 1\n",
     {0},
     "FILE:1:1: zzz: unknown section (sections: data, model, train, runtime, output)"},

    /* integers */
    {ROOT "train:\n  epochs: five\n",
     {0},
     "FILE:4:11: train.epochs: expected an integer, got 'five'"},
    {ROOT "train:\n  epochs: 1.5\n",
     {0},
     "FILE:4:11: train.epochs: expected an integer, got '1.5'"},
    {ROOT "train:\n  batch_size: 1e3\n",
     {0},
     "FILE:4:15: train.batch_size: expected an integer, got '1e3'"},
    {ROOT "train:\n  epochs: \"64\"\n",
     {0},
     "FILE:4:11: train.epochs: expected an integer, got the quoted string \"64\""},
    {ROOT "train:\n  epochs: 0\n", {0}, "FILE:4:11: train.epochs: must be in [1, 1000000], got 0"},
    {ROOT "train:\n  epochs: 99999999999\n",
     {0},
     "FILE:4:11: train.epochs: must be in [1, 1000000], got 99999999999"},
    {ROOT "  image_size: 8\n", {0}, "FILE:3:15: data.image_size: must be in [16, 1024], got 8"},
    {ROOT "  image_size: 1025\n",
     {0},
     "FILE:3:15: data.image_size: must be in [16, 1024], got 1025"},
    {ROOT "train:\n  batch_size: -4\n",
     {0},
     "FILE:4:15: train.batch_size: must be in [1, 65536], got -4"},
    {ROOT "train:\n  accumulate: 0\n",
     {0},
     "FILE:4:15: train.accumulate: must be in [1, 1024], got 0"},
    {ROOT "train:\n  step_size: 0\n", {0}, "FILE:4:14: train.step_size: must be >= 1, got 0"},
    {ROOT "output:\n  log_every: 0\n", {0}, "FILE:4:14: output.log_every: must be >= 1, got 0"},
    {ROOT "output:\n  checkpoint_every: -1\n",
     {0},
     "FILE:4:21: output.checkpoint_every: must be >= 0, got -1"},
    {ROOT "output:\n  keep_checkpoints: 0\n",
     {0},
     "FILE:4:21: output.keep_checkpoints: must be in [1, 1000000], got 0"},
    {ROOT "runtime:\n  timeout_s: 0\n",
     {0},
     "FILE:4:14: runtime.timeout_s: must be in [1, 604800], got 0"},
    {ROOT "train:\n  max_skipped_steps: 0\n",
     {0},
     "FILE:4:22: train.max_skipped_steps: must be in [1, 1000000], got 0"},
    {ROOT "train:\n  nonfinite: ignore\n",
     {0},
     "FILE:4:14: train.nonfinite: must be one of stop, skip; got 'ignore'"},
    {ROOT "  workers: -1\n", {0}, "FILE:3:12: data.workers: must be in [0, 1024], got -1"},
    {ROOT "runtime:\n  threads: -2\n",
     {0},
     "FILE:4:12: runtime.threads: must be in [0, 1024], got -2"},
    {ROOT "runtime:\n  bucket_mb: -1\n",
     {0},
     "FILE:4:14: runtime.bucket_mb: must be in [0, 1024], got -1"},
    {ROOT "runtime:\n  bucket_mb: 2048\n",
     {0},
     "FILE:4:14: runtime.bucket_mb: must be in [0, 1024], got 2048"},

    /* seeds */
    {ROOT "  split_seed: -1\n",
     {0},
     "FILE:3:15: data.split_seed: must be in [0, 18446744073709551615], got -1"},
    {ROOT "train:\n  seed: 18446744073709551616\n",
     {0},
     "FILE:4:9: train.seed: must be in [0, 18446744073709551615], got 18446744073709551616"},
    {ROOT "train:\n  seed: 1.0\n",
     {0},
     "FILE:4:9: train.seed: expected a non-negative integer, got '1.0'"},

    /* numbers */
    {ROOT "  val_fraction: 1.5\n", {0}, "FILE:3:17: data.val_fraction: must be in (0, 1], got 1.5"},
    {ROOT "  val_fraction: 0.0\n", {0}, "FILE:3:17: data.val_fraction: must be in (0, 1], got 0.0"},
    {ROOT "train:\n  lr: 0\n", {0}, "FILE:4:7: train.lr: must be > 0, got 0"},
    {ROOT "train:\n  lr: -1e-3\n", {0}, "FILE:4:7: train.lr: must be > 0, got -1e-3"},
    {ROOT "train:\n  lr: 0x10\n", {0}, "FILE:4:7: train.lr: expected a number, got '0x10'"},
    {ROOT "train:\n  lr: .inf\n", {0}, "FILE:4:7: train.lr: expected a number, got '.inf'"},
    {ROOT "train:\n  lr: 1e999\n", {0}, "FILE:4:7: train.lr: number out of range, got 1e999"},
    {ROOT "train:\n  lr: \"0.1\"\n",
     {0},
     "FILE:4:7: train.lr: expected a number, got the quoted string \"0.1\""},
    {ROOT "train:\n  momentum: 1\n", {0}, "FILE:4:13: train.momentum: must be in [0, 1), got 1"},
    {ROOT "train:\n  ema_decay: 1\n", {0}, "FILE:4:14: train.ema_decay: must be in [0, 1), got 1"},
    {ROOT "train:\n  ema_decay: -0.5\n",
     {0},
     "FILE:4:14: train.ema_decay: must be in [0, 1), got -0.5"},
    {ROOT "train:\n  early_stop_patience: -1\n",
     {0},
     "FILE:4:24: train.early_stop_patience: must be in [0, 1000000], got -1"},
    {ROOT "train:\n  weight_decay: -0.1\n",
     {0},
     "FILE:4:17: train.weight_decay: must be >= 0, got -0.1"},
    /* optimizer keys */
    {ROOT "train:\n  optimizer: adam\n",
     {0},
     "FILE:4:14: train.optimizer: must be one of sgd, adamw; got 'adam'"},
    {ROOT "train:\n  optimizer: adamw\n  betas: [0.9, 1]\n",
     {0},
     "FILE:5:16: train.betas[1]: must be in [0, 1), got 1"},
    {ROOT "train:\n  optimizer: adamw\n  betas: [0.9]\n",
     {0},
     "FILE:5:10: train.betas: expected a list of 2 numbers (beta1, beta2), got 1 item"},
    {ROOT "train:\n  optimizer: adamw\n  betas: [-0.1, 0.9]\n",
     {0},
     "FILE:5:11: train.betas[0]: must be in [0, 1), got -0.1"},
    {ROOT "train:\n  optimizer: adamw\n  eps: 0\n", {0}, "FILE:5:8: train.eps: must be > 0, got 0"},
    {ROOT "train:\n  betas: [0.9, 0.99]\n",
     {0},
     "FILE:4:10: train.betas: is used by train.optimizer adamw only (this config trains with "
     "sgd)"},
    {ROOT "train:\n  eps: 1e-6\n",
     {0},
     "FILE:4:8: train.eps: is used by train.optimizer adamw only (this config trains with sgd)"},
    {ROOT "train:\n  optimizer: adamw\n  momentum: 0.9\n",
     {0},
     "FILE:5:13: train.momentum: is SGD's: train.optimizer adamw takes train.betas instead"},
    {ROOT "train:\n  no_weight_decay: bn\n",
     {0},
     "FILE:4:20: train.no_weight_decay: must be one of none, norm_and_bias; got 'bn'"},
    {ROOT "train:\n  clip_grad_norm: -1\n",
     {0},
     "FILE:4:19: train.clip_grad_norm: must be >= 0, got -1"},
    {ROOT "train:\n  gamma: 0\n", {0}, "FILE:4:10: train.gamma: must be in (0, 1], got 0"},
    {ROOT "train:\n  gamma: 1.5\n", {0}, "FILE:4:10: train.gamma: must be in (0, 1], got 1.5"},
    {ROOT "train:\n  label_smoothing: 1.5\n",
     {0},
     "FILE:4:20: train.label_smoothing: must be in [0, 1], got 1.5"},
    {ROOT "train:\n  label_smoothing: -0.1\n",
     {0},
     "FILE:4:20: train.label_smoothing: must be in [0, 1], got -0.1"},
    {ROOT "train:\n  mixup_alpha: -1\n", {0}, "FILE:4:16: train.mixup_alpha: must be >= 0, got -1"},
    {ROOT "train:\n  cutmix_alpha: 1e300\n",
     {0},
     "FILE:4:17: train.cutmix_alpha: out of range for a 32-bit float, got 1e300"},
    {ROOT "train:\n  mix_prob: 1.01\n",
     {0},
     "FILE:4:13: train.mix_prob: must be in [0, 1], got 1.01"},
    {ROOT "train:\n  mix_switch_prob: nan\n",
     {0},
     "FILE:4:20: train.mix_switch_prob: expected a number, got 'nan'"},
    {ROOT "train:\n  warmup_epochs: -1\n",
     {0},
     "FILE:4:18: train.warmup_epochs: must be >= 0, got -1"},
    {ROOT "train:\n  epochs: 3\n  warmup_epochs: 3\n",
     {0},
     "FILE:5:18: train.warmup_epochs: must be less than train.epochs (3), got 3"},

    /* booleans */
    {ROOT "train:\n  nesterov: true\n",
     {0},
     "FILE:4:13: train.nesterov: true requires train.momentum > 0 (as torch.optim.SGD)"},
    {ROOT "train:\n  nesterov: yes\n",
     {0},
     "FILE:4:13: train.nesterov: expected true or false, got 'yes'"},
    {ROOT "train:\n  shuffle: 1\n",
     {0},
     "FILE:4:12: train.shuffle: expected true or false, got '1'"},
    {ROOT "runtime:\n  deterministic: on\n",
     {0},
     "FILE:4:18: runtime.deterministic: expected true or false, got 'on'"},
    {ROOT "train:\n  shuffle: \"true\"\n",
     {0},
     "FILE:4:12: train.shuffle: expected true or false, got the quoted string \"true\""},

    /* enums and fixed strings */
    {ROOT "  resize: Squash\n",
     {0},
     "FILE:3:11: data.resize: must be one of squash, center; got 'Squash'"},
    {ROOT "  augment: null\n",
     {0},
     "FILE:3:12: data.augment: must be one of none, flip, crop_flip; got null"},
    {ROOT "model:\n  freeze: all\n",
     {0},
     "FILE:4:11: model.freeze: must be one of none, backbone; got 'all'"},
    {ROOT "train:\n  schedule: linear\n",
     {0},
     "FILE:4:13: train.schedule: must be one of constant, step, cosine; got 'linear'"},
    {ROOT "runtime:\n  device: gpu\n",
     {0},
     "FILE:4:11: runtime.device: must be one of auto, cpu, cuda; got 'gpu'"},
    {ROOT "runtime:\n  precision: fp16\n",
     {0},
     "FILE:4:14: runtime.precision: must be one of fp32, tf32, bf16, auto, winograd; got 'fp16'"},
    {ROOT "model:\n  arch: resnet51\n",
     {0},
     "FILE:4:9: model.arch: must be one of resnet18, resnet34, resnet50, resnet101, resnet152; "
     "got 'resnet51'"},
    {ROOT "model:\n  zero_init_residual: yes\n",
     {0},
     "FILE:4:23: model.zero_init_residual: expected true or false, got 'yes'"},

    /* strings and null */
    {ROOT "model:\n  pretrained: [a]\n",
     {0},
     "FILE:4:15: model.pretrained: expected a string, got a sequence"},
    {"data:\n  root: null\n", {0}, "FILE:2:9: data.root: expected a string, got null"},
    {"data:\n  root: ~\n", {0}, "FILE:2:9: data.root: expected a string, got null"},
    {"data:\n  root:\n", {0}, "FILE:2:8: data.root: expected a string, got null"},
    {"data:\n  root: \"\"\n", {0}, "FILE:2:9: data.root: must not be an empty string"},
    {ROOT "output:\n  dir: {a: b}\n",
     {0},
     "FILE:4:8: output.dir: expected a string, got a mapping"},

    /* mean and std */
    {ROOT "  mean: [0.5, 0.5]\n",
     {0},
     "FILE:3:9: data.mean: expected a list of 3 numbers (R, G, B), got 2 items"},
    {ROOT "  mean: 0.5\n", {0}, "FILE:3:9: data.mean: expected a list of 3 numbers, got '0.5'"},
    {ROOT "  std: [0.2, 0, 0.2]\n", {0}, "FILE:3:14: data.std[1]: must be > 0, got 0"},
    {ROOT "  std: [0.2, 0.2, -1]\n", {0}, "FILE:3:19: data.std[2]: must be > 0, got -1"},
    {ROOT "  mean: [a, 0, 0]\n", {0}, "FILE:3:10: data.mean[0]: expected a number, got 'a'"},
    {ROOT "  mean: [1e39, 0, 0]\n",
     {0},
     "FILE:3:10: data.mean[0]: out of range for a 32-bit float, got 1e39"},

    /* the pixel augmentations */
    {ROOT "  color_jitter: [0.4, 0.4, 0.4]\n",
     {0},
     "FILE:3:17: data.color_jitter: expected a list of 4 numbers (brightness, contrast, "
     "saturation, hue), got 3 items"},
    {ROOT "  color_jitter: 0.4\n",
     {0},
     "FILE:3:17: data.color_jitter: expected a list of 4 numbers, got '0.4'"},
    {ROOT "  color_jitter: [0.4, -0.1, 0.4, 0.1]\n",
     {0},
     "FILE:3:23: data.color_jitter[1]: must be >= 0, got -0.1"},
    {ROOT "  color_jitter: [0.4, 0.4, 0.4, 0.6]\n",
     {0},
     "FILE:3:17: data.color_jitter: the hue jitter data.color_jitter[3] must be in [0, 0.5], "
     "got 0.6"},
    {ROOT "  random_erasing: 1.5\n",
     {0},
     "FILE:3:19: data.random_erasing: must be in [0, 1], got 1.5"},
    {ROOT "  random_erasing: -0.25\n",
     {0},
     "FILE:3:19: data.random_erasing: must be in [0, 1], got -0.25"},
    {ROOT "  trivial_augment: 1\n",
     {0},
     "FILE:3:20: data.trivial_augment: expected true or false, got '1'"},
    {ROOT,
     {"data.color_jitter=[0,0,0,-1]"},
     "override 'data.color_jitter=[0,0,0,-1]': data.color_jitter[3]: must be >= 0, got -1"},

    /* class_names */
    {ROOT "  class_names: [a, b]\n",
     {0},
     "FILE:3:16: data.class_names: expected a mapping of class folder names to display names, "
     "got a sequence"},
    {ROOT "  class_names:\n    cane: dog\n    cane: cat\n",
     {0},
     "FILE:5:5: data.class_names.cane: duplicate key (first given at line 4)"},
    {ROOT "  class_names:\n    cane:\n",
     {0},
     "FILE:4:10: data.class_names.cane: expected a string, got null"},
    {ROOT "  class_names:\n",
     {0},
     "FILE:3:15: data.class_names: expected a mapping of class folder names to display names, "
     "got null"},

    /* structure */
    {"data:\n  root: /a\n  root: /b\n",
     {0},
     "FILE:3:3: data.root: duplicate key (first given at line 2)"},
    {ROOT "train:\n  epochs: 2\ntrain:\n  lr: 0.1\n",
     {0},
     "FILE:5:1: train: duplicate key (first given at line 3)"},
    {"- a\n- b\n",
     {0},
     "FILE:1:1: the top level must be a mapping of sections (data, model, train, runtime, "
     "output), got a sequence"},
    {"hello\n",
     {0},
     "FILE:1:1: the top level must be a mapping of sections (data, model, train, runtime, "
     "output), got 'hello'"},
    {ROOT "train: 5\n", {0}, "FILE:3:8: train: expected a mapping of train keys, got '5'"},
    {ROOT "model:\n", {0}, "FILE:3:7: model: expected a mapping of model keys, got null"},
    {"data:\n  - root\n", {0}, "FILE:2:3: data: expected a mapping of data keys, got a sequence"},
    {"? [a]\n: b\n", {0}, "FILE:1:3: keys must be plain names, got a sequence"},
    {ROOT "---\ntrain: {}\n",
     {0},
     "FILE:3:1: only one YAML document is allowed (found a second one)"},
    {"data: &d\n  root: /x\n", {0}, "FILE:1:7: YAML anchors and aliases are not supported (&d)"},
    {"output:\n  dir: *r\n", {0}, "FILE:2:8: YAML anchors and aliases are not supported (*r)"},
    {ROOT "train:\n  epochs: !!int 5\n",
     {0},
     "FILE:4:11: YAML tags are not supported (!!int); values are typed by their key"},
    {"data:\n  root: \"a\\0b\"\n", {0}, "FILE:2:9: a value contains a NUL character"},

    /* YAML syntax: the libyaml problem position */
    {"data:\n  root: [x\n",
     {0},
     "FILE:3:1: invalid YAML: did not find expected ',' or ']' (while parsing a flow sequence at "
     "line 2, column 9)"},
    {"data:\n\troot: x\n",
     {0},
     "FILE:2:1: invalid YAML: found character that cannot start any token (while scanning for "
     "the next token at line 2, column 1)"},
    {"data: x: y\n", {0}, "FILE:1:8: invalid YAML: mapping values are not allowed in this context"},
    {"data: {root: \xff}\n", {0}, "FILE:1:14: invalid YAML: invalid leading UTF-8 octet"},

    /* data.root is required after overrides */
    {"",
     {0},
     "FILE:1:1: data.root: required: the ImageFolder directory (one sub-folder per class); set it "
     "in the file or override data.root=PATH"},
    {"# only a comment\n",
     {0},
     "FILE:1:1: data.root: required: the ImageFolder directory (one sub-folder per class); set it "
     "in the file or override data.root=PATH"},
    {"train:\n  epochs: 2\ndata:\n  workers: 1\n",
     {0},
     "FILE:3:1: data.root: required: the ImageFolder directory (one sub-folder per class); set it "
     "in the file or override data.root=PATH"},

    /* overrides */
    {ROOT,
     {"train.epochs=x"},
     "override 'train.epochs=x': train.epochs: expected an integer, got 'x'"},
    {ROOT,
     {"train.epoch=3"},
     "override 'train.epoch=3': train.epoch: unknown key, did you mean 'train.epochs'?"},
    {ROOT,
     {"trian.epochs=3"},
     "override 'trian.epochs=3': trian: unknown section, did you mean 'train'?"},
    {ROOT,
     {"epochs=3"},
     "override 'epochs=3': epochs: expected section.key=value, did you mean 'train.epochs'?"},
    {ROOT, {"train.epochs"}, "override 'train.epochs': expected key.path=value"},
    {ROOT,
     {"data.class_names.cane=dog"},
     "override 'data.class_names.cane=dog': data.class_names.cane: unknown key, did you mean "
     "'data.class_names'?"},
    {ROOT,
     {"data.mean=[0.5,0.5"},
     "override 'data.mean=[0.5,0.5': data.mean: invalid YAML value: did not find expected ',' or "
     "']' while parsing a flow sequence (at the end)"},
    {ROOT,
     {"data.mean=[0.5] x"},
     "override 'data.mean=[0.5] x': data.mean: invalid YAML value: unexpected text after the value "
     "(at column 7)"},
    {ROOT, {"data.std=[1,0,1]"}, "override 'data.std=[1,0,1]': data.std[1]: must be > 0, got 0"},
    {ROOT,
     {"train.seed=\"5\""},
     "override 'train.seed=\"5\"': train.seed: expected a non-negative integer, got the quoted "
     "string \"5\""},
    {ROOT, {"train.lr=fast"}, "override 'train.lr=fast': train.lr: expected a number, got 'fast'"},
    {ROOT,
     {"train.shuffle=no"},
     "override 'train.shuffle=no': train.shuffle: expected true or false, got 'no'"},
    {ROOT,
     {"runtime.device=gpu"},
     "override 'runtime.device=gpu': runtime.device: must be one of auto, cpu, cuda; got 'gpu'"},
    {ROOT, {"data.root="}, "override 'data.root=': data.root: expected a string, got null"},
    {ROOT,
     {"data.root=[a]"},
     "override 'data.root=[a]': data.root: expected a string, got a sequence"},
    {ROOT, {"data.root=\xff"}, "override 'data.root=\xff': data.root: value is not valid UTF-8"},
    {ROOT,
     {"data.class_names={a: b, a: c}"},
     "override 'data.class_names={a: b, a: c}': data.class_names.a: duplicate key"},
    {ROOT,
     {"train.warmup_epochs=9"},
     "override 'train.warmup_epochs=9': train.warmup_epochs: must be less than train.epochs (5), "
     "got 9"},
    {ROOT,
     {"train.nesterov=true"},
     "override 'train.nesterov=true': train.nesterov: true requires train.momentum > 0 (as "
     "torch.optim.SGD)"},
    /* the file is checked before the overrides, and cross-key errors point where a key was set */
    {ROOT "train:\n  epochs: 0\n",
     {"train.epochs=3"},
     "FILE:4:11: train.epochs: must be in [1, 1000000], got 0"},
    {ROOT "train:\n  warmup_epochs: 2\n",
     {"train.epochs=2"},
     "FILE:4:18: train.warmup_epochs: must be less than train.epochs (2), got 2"},
    {"",
     {"train.epochs=2"},
     "FILE:1:1: data.root: required: the ImageFolder directory (one "
     "sub-folder per class); set it in the file or override data.root=PATH"},
};

static void test_bad_cases(void) {
    int n = (int)(sizeof bad_cases / sizeof bad_cases[0]);
    for (int i = 0; i < n; i++) {
        const bad_case *c = &bad_cases[i];
        dt_config cfg;
        dt_error err;
        char expected[1024];
        expand_expected(c->expected, expected, sizeof expected);
        int rc = load_text(c->yaml, c->overrides, &cfg, &err);
        CHECK_MSG(rc == -1, "bad case %d must fail (rc %d), expected: %s", i, rc, expected);
        CHECK_MSG(err.exit_code == 2, "bad case %d: exit code %d, want 2", i, err.exit_code);
        CHECK_MSG(strcmp(err.message, expected) == 0, "bad case %d:\n  got:  %s\n  want: %s", i,
                  err.message, expected);
        /* a failed load leaves nothing allocated */
        CHECK(cfg.data.root == NULL && cfg.model.arch == NULL && cfg.output.dir == NULL);
        dt_config_free(&cfg);
    }
    printf("test_config: %d bad cases\n", n);
}

static void test_missing_file(void) {
    dt_config cfg;
    dt_error err = {0};
    char path[400];
    snprintf(path, sizeof path, "%s/absent.yaml", case_dir);
    CHECK(dt_config_load(path, 0, NULL, &cfg, &err) == -1);
    CHECK_INT_EQ(err.exit_code, 2);
    char expected[600];
    snprintf(expected, sizeof expected, "cannot open config '%s': No such file or directory", path);
    CHECK_STR_EQ(err.message, expected);
}

/* ---- defaults and good configs ---- */

static void check_spec_defaults(const dt_config *cfg) {
    CHECK_CLOSE(cfg->data.val_fraction, 0.2, 0, 0);
    CHECK(cfg->data.split_seed == 42);
    CHECK_INT_EQ(cfg->data.image_size, 224);
    CHECK_INT_EQ(cfg->data.resize, DT_RESIZE_SQUASH);
    CHECK(cfg->data.mean[0] == 0.485f && cfg->data.mean[1] == 0.456f &&
          cfg->data.mean[2] == 0.406f);
    CHECK(cfg->data.std[0] == 0.229f && cfg->data.std[1] == 0.224f && cfg->data.std[2] == 0.225f);
    CHECK_INT_EQ(cfg->data.workers, 0);
    CHECK_INT_EQ(cfg->data.augment, DT_AUGMENT_NONE);
    CHECK(!cfg->data.trivial_augment && cfg->data.random_erasing == 0.0);
    for (int i = 0; i < 4; i++) CHECK(cfg->data.color_jitter[i] == 0.0f);
    CHECK_INT_EQ(cfg->data.n_class_names, 0);
    CHECK(cfg->data.class_names == NULL);
    CHECK_STR_EQ(cfg->model.arch, "resnet18");
    CHECK(cfg->model.pretrained == NULL);
    CHECK_INT_EQ(cfg->model.freeze, DT_FREEZE_NONE);
    CHECK_INT_EQ(cfg->train.epochs, 5);
    CHECK_INT_EQ(cfg->train.batch_size, 64);
    CHECK_INT_EQ(cfg->train.accumulate, 1);
    CHECK(cfg->train.lr == 0.01);
    CHECK(cfg->train.momentum == 0.0);
    CHECK(cfg->train.nesterov == false);
    CHECK(cfg->train.weight_decay == 0.0);
    CHECK_INT_EQ(cfg->train.schedule, DT_SCHEDULE_CONSTANT);
    CHECK_INT_EQ(cfg->train.step_size, 2);
    CHECK(cfg->train.gamma == 0.1);
    CHECK(cfg->train.warmup_epochs == 0.0);
    CHECK(cfg->train.label_smoothing == 0.0 && cfg->train.mixup_alpha == 0.0 &&
          cfg->train.cutmix_alpha == 0.0 && cfg->train.mix_prob == 1.0 &&
          cfg->train.mix_switch_prob == 0.5);
    CHECK(cfg->train.shuffle == true);
    CHECK(cfg->train.seed == 0);
    CHECK_INT_EQ(cfg->runtime.device, DT_DEVICE_AUTO);
    CHECK_INT_EQ(cfg->runtime.threads, 0);
    CHECK_INT_EQ(cfg->runtime.precision, DT_PRECISION_AUTO);
    CHECK_INT_EQ(cfg->runtime.bucket_mb, 0);
    CHECK_STR_EQ(cfg->output.dir, "runs/default");
    CHECK_INT_EQ(cfg->output.log_every, 20);
    CHECK(cfg->output.tensorboard);
}

static void test_defaults(void) {
    dt_config cfg;
    dt_config_defaults(&cfg);
    CHECK(cfg.data.root == NULL);
    check_spec_defaults(&cfg);
    dt_config_free(&cfg);

    /* a file with only data.root gives the same defaults */
    dt_error err;
    const char *none[1] = {0};
    CHECK_INT_EQ(load_text("data:\n  root: ./archive/raw-img\n", none, &cfg, &err), 0);
    CHECK_STR_EQ(cfg.data.root, "./archive/raw-img");
    check_spec_defaults(&cfg);
    CHECK(!cfg.model.zero_init_residual);
    dt_config_free(&cfg);

    /* every architecture by name; zero_init_residual from the file and as an override */
    const char *archs[] = {"resnet18", "resnet34", "resnet50", "resnet101", "resnet152"};
    for (int i = 0; i < 5; i++) {
        char text[160], arch_override[40];
        snprintf(text, sizeof text, "data:\n  root: r\nmodel:\n  arch: %s\n", archs[i]);
        snprintf(arch_override, sizeof arch_override, "model.zero_init_residual=%s",
                 i % 2 ? "true" : "false");
        const char *overrides[2] = {arch_override, 0};
        CHECK_INT_EQ(load_text(text, overrides, &cfg, &err), 0);
        CHECK_STR_EQ(cfg.model.arch, archs[i]);
        CHECK_INT_EQ(cfg.model.zero_init_residual, i % 2);
        dt_config_free(&cfg);
    }

    /* an empty file with the root given as an override, and a bare "---" document */
    const char *root_override[2] = {"data.root=/data/pets", 0};
    CHECK_INT_EQ(load_text("", root_override, &cfg, &err), 0);
    CHECK_STR_EQ(cfg.data.root, "/data/pets");
    check_spec_defaults(&cfg);
    dt_config_free(&cfg);
    CHECK_INT_EQ(load_text("---\n# nothing\n", root_override, &cfg, &err), 0);
    check_spec_defaults(&cfg);
    dt_config_free(&cfg);
}

static const char *const full_config =
    "# every key, none at its default\n"
    "data:\n"
    "  root: /srv/animals10\n"
    "  val_fraction: .25\n"
    "  split_seed: 18446744073709551615\n"
    "  image_size: 160\n"
    "  resize: center\n"
    "  mean: [-2, .5, 1e0]\n"
    "  std: [0.5, 1E-1, 2]\n"
    "  workers: 3\n"
    "  augment: crop_flip\n"
    "  trivial_augment: true\n"
    "  color_jitter: [0.4, 0.3, .2, 0.5]\n"
    "  random_erasing: 0.25\n"
    "  class_names:\n"
    "    cane: dog\n"
    "    \"ragno\": 'spider'\n"
    "model:\n"
    "  arch: \"resnet18\"\n"
    "  pretrained: weights/resnet18.safetensors\n"
    "  freeze: backbone\n"
    "train:\n"
    "  epochs: 12\n"
    "  batch_size: +32\n"
    "  accumulate: 4\n"
    "  lr: 1e-3\n"
    "  momentum: 0.9\n"
    "  nesterov: TRUE\n"
    "  weight_decay: 5E-4\n"
    "  schedule: step\n"
    "  step_size: 3\n"
    "  gamma: 1\n"
    "  warmup_epochs: 1.5\n"
    "  shuffle: False\n"
    "  seed: 7\n"
    "runtime: {device: cpu, threads: 6, precision: bf16, bucket_mb: 8}\n"
    "output:\n"
    "  dir: no\n"
    "  log_every: 5\n";

static void check_full_config(const dt_config *cfg) {
    CHECK_STR_EQ(cfg->data.root, "/srv/animals10");
    CHECK(cfg->data.val_fraction == 0.25);
    CHECK(cfg->data.split_seed == UINT64_MAX);
    CHECK_INT_EQ(cfg->data.image_size, 160);
    CHECK_INT_EQ(cfg->data.resize, DT_RESIZE_CENTER);
    CHECK(cfg->data.mean[0] == -2.0f && cfg->data.mean[1] == 0.5f && cfg->data.mean[2] == 1.0f);
    CHECK(cfg->data.std[0] == 0.5f && cfg->data.std[1] == 0.1f && cfg->data.std[2] == 2.0f);
    CHECK_INT_EQ(cfg->data.workers, 3);
    CHECK_INT_EQ(cfg->data.augment, DT_AUGMENT_CROP_FLIP);
    CHECK(cfg->data.trivial_augment);
    CHECK(cfg->data.color_jitter[0] == 0.4f && cfg->data.color_jitter[1] == 0.3f &&
          cfg->data.color_jitter[2] == 0.2f && cfg->data.color_jitter[3] == 0.5f);
    CHECK(cfg->data.random_erasing == 0.25);
    CHECK_INT_EQ(cfg->data.n_class_names, 2);
    if (cfg->data.n_class_names == 2) {
        CHECK_STR_EQ(cfg->data.class_names[0].folder, "cane");
        CHECK_STR_EQ(cfg->data.class_names[0].display, "dog");
        CHECK_STR_EQ(cfg->data.class_names[1].folder, "ragno");
        CHECK_STR_EQ(cfg->data.class_names[1].display, "spider");
    }
    CHECK_STR_EQ(dt_config_display_name(cfg, "ragno"), "spider");
    CHECK_STR_EQ(dt_config_display_name(cfg, "gatto"), "gatto");
    CHECK_STR_EQ(cfg->model.arch, "resnet18");
    CHECK_STR_EQ(cfg->model.pretrained, "weights/resnet18.safetensors");
    CHECK_INT_EQ(cfg->model.freeze, DT_FREEZE_BACKBONE);
    CHECK_INT_EQ(cfg->train.epochs, 12);
    CHECK_INT_EQ(cfg->train.batch_size, 32);
    CHECK_INT_EQ(cfg->train.accumulate, 4);
    CHECK(cfg->train.lr == 1e-3);
    CHECK(cfg->train.momentum == 0.9);
    CHECK(cfg->train.nesterov == true);
    CHECK(cfg->train.weight_decay == 5e-4);
    CHECK_INT_EQ(cfg->train.schedule, DT_SCHEDULE_STEP);
    CHECK_INT_EQ(cfg->train.step_size, 3);
    CHECK(cfg->train.gamma == 1.0);
    CHECK(cfg->train.warmup_epochs == 1.5);
    CHECK(cfg->train.shuffle == false);
    CHECK(cfg->train.seed == 7);
    CHECK_INT_EQ(cfg->runtime.device, DT_DEVICE_CPU);
    CHECK_INT_EQ(cfg->runtime.threads, 6);
    CHECK_INT_EQ(cfg->runtime.precision, DT_PRECISION_BF16);
    CHECK_INT_EQ(cfg->runtime.bucket_mb, 8);
    CHECK_STR_EQ(cfg->output.dir, "no"); /* YAML 1.1 would have made this false */
    CHECK_INT_EQ(cfg->output.log_every, 5);
}

static void test_full_config(void) {
    dt_config cfg;
    dt_error err;
    const char *none[1] = {0};
    int rc = load_text(full_config, none, &cfg, &err);
    CHECK_MSG(rc == 0, "full config: %s", err.message);
    if (rc) return;
    check_full_config(&cfg);
    dt_config_free(&cfg);
}

static void test_plain_scalars_are_typed_by_key(void) {
    dt_config cfg;
    dt_error err;
    const char *none[1] = {0};
    /* strings that YAML 1.1 would turn into booleans, numbers or null stay strings */
    int rc = load_text("data:\n  root: off\n  class_names: {yes: 1, 'null': ~x}\nmodel:\n"
                       "  pretrained: \"null\"\noutput:\n  dir: 2024\n",
                       none, &cfg, &err);
    CHECK_MSG(rc == 0, "%s", err.message);
    if (rc) return;
    CHECK_STR_EQ(cfg.data.root, "off");
    CHECK_STR_EQ(cfg.model.pretrained, "null");
    CHECK_STR_EQ(cfg.output.dir, "2024");
    CHECK_INT_EQ(cfg.data.n_class_names, 2);
    CHECK_STR_EQ(dt_config_display_name(&cfg, "yes"), "1");
    CHECK_STR_EQ(dt_config_display_name(&cfg, "null"), "~x");
    dt_config_free(&cfg);

    CHECK_INT_EQ(load_text(ROOT "model:\n  pretrained: ~\n", none, &cfg, &err), 0);
    CHECK(cfg.model.pretrained == NULL);
    dt_config_free(&cfg);
}

static void test_good_overrides(void) {
    dt_config cfg;
    dt_error err;
    const char *overrides[] = {
        "data.root=/data/my pets #1",
        "train.epochs=1",
        "data.mean=[0.5,0.5,0.5]",
        "data.class_names={cane: dog, ragno: spider}",
        "model.pretrained=null",
        "runtime.device=cpu",
        "train.lr=1e-3",
        "train.epochs=7", /* the last one wins */
    };
    const char *file = "model:\n  pretrained: /w.safetensors\n";
    CHECK(write_text(case_path, file, strlen(file)) == 0);
    int rc = dt_config_load(case_path, 8, (char *const *)overrides, &cfg, &err);
    CHECK_MSG(rc == 0, "%s", err.message);
    if (rc) return;
    CHECK_STR_EQ(cfg.data.root, "/data/my pets #1");
    CHECK_INT_EQ(cfg.train.epochs, 7);
    CHECK(cfg.data.mean[0] == 0.5f && cfg.data.mean[1] == 0.5f && cfg.data.mean[2] == 0.5f);
    CHECK_INT_EQ(cfg.data.n_class_names, 2);
    CHECK_STR_EQ(dt_config_display_name(&cfg, "cane"), "dog");
    CHECK(cfg.model.pretrained == NULL);
    CHECK_INT_EQ(cfg.runtime.device, DT_DEVICE_CPU);
    CHECK(cfg.train.lr == 1e-3);
    dt_config_free(&cfg);

    /* quoted override values are YAML strings; momentum set by override enables nesterov */
    const char *more[] = {"data.root='quoted # not a comment'", "train.nesterov=true",
                          "train.momentum=0.9", "data.class_names={}", 0};
    CHECK_INT_EQ(load_text("", more, &cfg, &err), 0);
    CHECK_STR_EQ(cfg.data.root, "quoted # not a comment");
    CHECK(cfg.train.nesterov && cfg.train.momentum == 0.9);
    CHECK_INT_EQ(cfg.data.n_class_names, 0);
    dt_config_free(&cfg);
}

/* ---- writing and the round trip ---- */

static const char *const default_yaml = "data:\n"
                                        "  root: ./archive/raw-img\n"
                                        "  val_fraction: 0.2\n"
                                        "  split_seed: 42\n"
                                        "  image_size: 224\n"
                                        "  resize: squash\n"
                                        "  mean: [0.485, 0.456, 0.406]\n"
                                        "  std: [0.229, 0.224, 0.225]\n"
                                        "  workers: 0\n"
                                        "  augment: none\n"
                                        "  trivial_augment: false\n"
                                        "  color_jitter: [0.0, 0.0, 0.0, 0.0]\n"
                                        "  random_erasing: 0.0\n"
                                        "  class_names: {}\n"
                                        "  cache: none\n"
                                        "model:\n"
                                        "  arch: resnet18\n"
                                        "  pretrained: null\n"
                                        "  freeze: none\n"
                                        "  zero_init_residual: false\n"
                                        "train:\n"
                                        "  epochs: 5\n"
                                        "  batch_size: 64\n"
                                        "  accumulate: 1\n"
                                        "  lr: 0.01\n"
                                        "  momentum: 0.0\n"
                                        "  nesterov: false\n"
                                        "  weight_decay: 0.0\n"
                                        "  optimizer: sgd\n"
                                        "  no_weight_decay: none\n"
                                        "  clip_grad_norm: 0.0\n"
                                        "  schedule: constant\n"
                                        "  step_size: 2\n"
                                        "  gamma: 0.1\n"
                                        "  warmup_epochs: 0.0\n"
                                        "  label_smoothing: 0.0\n"
                                        "  mixup_alpha: 0.0\n"
                                        "  cutmix_alpha: 0.0\n"
                                        "  mix_prob: 1.0\n"
                                        "  mix_switch_prob: 0.5\n"
                                        "  shuffle: true\n"
                                        "  seed: 0\n"
                                        "  nonfinite: stop\n"
                                        "  max_skipped_steps: 10\n"
                                        "  ema_decay: 0.0\n"
                                        "  early_stop_patience: 0\n"
                                        "runtime:\n"
                                        "  device: auto\n"
                                        "  threads: 0\n"
                                        "  precision: auto\n"
                                        "  bucket_mb: 0\n"
                                        "  timeout_s: 600\n"
                                        "  deterministic: false\n"
                                        "output:\n"
                                        "  dir: runs/default\n"
                                        "  log_every: 20\n"
                                        "  checkpoint_every: 500\n"
                                        "  keep_checkpoints: 3\n"
                                        "  tensorboard: true\n";

/* Writes cfg with dt_config_write_yaml into a heap string. */
static char *written_yaml(const dt_config *cfg) {
    char *text = NULL;
    size_t length = 0;
    FILE *out = open_memstream(&text, &length);
    if (!out) return NULL;
    int rc = dt_config_write_yaml(cfg, out);
    fclose(out);
    if (rc) {
        free(text);
        return NULL;
    }
    return text;
}

static void test_write_defaults(void) {
    dt_config cfg;
    dt_config_defaults(&cfg);
    cfg.data.root = strdup("./archive/raw-img");
    char *text = written_yaml(&cfg);
    CHECK_STR_EQ(text, default_yaml);
    /* FNV-1a 64 of the text, computed here byte by byte */
    uint64_t hash = 14695981039346656037ULL;
    for (const char *p = text ? text : ""; *p; p++) {
        hash ^= (unsigned char)*p;
        hash *= 1099511628211ULL;
    }
    CHECK(dt_config_hash(&cfg) == hash);
    /* Configs loaded separately from the same text hash alike; one key changed, they differ. */
    dt_config first, second;
    dt_error err;
    const char *none[1] = {0};
    const char *more_epochs[] = {"train.epochs=6", NULL};
    int rc = load_text(default_yaml, none, &first, &err);
    CHECK_MSG(rc == 0, "loading the default text: %s", err.message);
    if (rc == 0) {
        CHECK(dt_config_hash(&first) == hash);
        rc = load_text(default_yaml, none, &second, &err);
        CHECK_MSG(rc == 0, "loading the default text again: %s", err.message);
        if (rc == 0) {
            CHECK(dt_config_hash(&second) == dt_config_hash(&first));
            dt_config_free(&second);
        }
        rc = load_text(default_yaml, more_epochs, &second, &err);
        CHECK_MSG(rc == 0, "loading with train.epochs=6: %s", err.message);
        if (rc == 0) {
            CHECK(dt_config_hash(&second) != dt_config_hash(&first));
            dt_config_free(&second);
        }
        dt_config_free(&first);
    }
    cfg.train.epochs = 6;
    CHECK(dt_config_hash(&cfg) != hash);
    free(text);
    dt_config_free(&cfg);
}

#define SAME_FIELD(field) CHECK_MSG(a->field == b->field, "round trip changed " #field)

static void check_same_config(const dt_config *a, const dt_config *b) {
    CHECK_STR_EQ(a->data.root, b->data.root);
    SAME_FIELD(data.val_fraction);
    SAME_FIELD(data.split_seed);
    SAME_FIELD(data.image_size);
    SAME_FIELD(data.resize);
    for (int i = 0; i < 3; i++) {
        SAME_FIELD(data.mean[i]);
        SAME_FIELD(data.std[i]);
    }
    SAME_FIELD(data.workers);
    SAME_FIELD(data.augment);
    SAME_FIELD(data.trivial_augment);
    for (int i = 0; i < 4; i++) SAME_FIELD(data.color_jitter[i]);
    SAME_FIELD(data.random_erasing);
    CHECK_INT_EQ(a->data.n_class_names, b->data.n_class_names);
    for (int i = 0; i < a->data.n_class_names && i < b->data.n_class_names; i++) {
        CHECK_STR_EQ(a->data.class_names[i].folder, b->data.class_names[i].folder);
        CHECK_STR_EQ(a->data.class_names[i].display, b->data.class_names[i].display);
    }
    CHECK_STR_EQ(a->model.arch, b->model.arch);
    CHECK((a->model.pretrained == NULL) == (b->model.pretrained == NULL));
    if (a->model.pretrained && b->model.pretrained)
        CHECK_STR_EQ(a->model.pretrained, b->model.pretrained);
    SAME_FIELD(model.freeze);
    SAME_FIELD(train.epochs);
    SAME_FIELD(train.batch_size);
    SAME_FIELD(train.accumulate);
    SAME_FIELD(train.lr);
    SAME_FIELD(train.momentum);
    SAME_FIELD(train.nesterov);
    SAME_FIELD(train.weight_decay);
    SAME_FIELD(train.schedule);
    SAME_FIELD(train.step_size);
    SAME_FIELD(train.gamma);
    SAME_FIELD(train.warmup_epochs);
    SAME_FIELD(train.shuffle);
    SAME_FIELD(train.seed);
    SAME_FIELD(runtime.device);
    SAME_FIELD(runtime.threads);
    SAME_FIELD(runtime.precision);
    SAME_FIELD(runtime.bucket_mb);
    CHECK_STR_EQ(a->output.dir, b->output.dir);
    SAME_FIELD(output.log_every);
    SAME_FIELD(output.tensorboard);
}

/* Loads yaml + overrides, writes it, loads what was written: same values, same text, same hash. */
static void check_round_trip(const char *yaml, const char *const *overrides) {
    dt_config first, second;
    dt_error err;
    int rc = load_text(yaml, overrides, &first, &err);
    CHECK_MSG(rc == 0, "round trip load: %s", err.message);
    if (rc) return;
    char *text = written_yaml(&first);
    CHECK(text != NULL);
    const char *none[1] = {0};
    rc = text ? load_text(text, none, &second, &err) : -1;
    CHECK_MSG(rc == 0, "reloading the written config: %s\n%s", err.message, text ? text : "");
    if (rc == 0) {
        check_same_config(&first, &second);
        char *again = written_yaml(&second);
        CHECK_STR_EQ(again, text);
        CHECK(dt_config_hash(&first) == dt_config_hash(&second));
        free(again);
        dt_config_free(&second);
    }
    free(text);
    dt_config_free(&first);
}

static void test_round_trip(void) {
    const char *none[1] = {0};
    check_round_trip(full_config, none);
    check_round_trip(ROOT, none);
    /* strings that need quoting, numbers that need all their digits */
    const char *awkward[] = {
        "data.root=a \"b\" \\ c\td: #e",
        "output.dir=123",
        "model.pretrained=~/weights/r18.safetensors",
        /* one item: the two literals are concatenated on purpose */
        ("data.class_names={\"true\": \"null\", \"\xc3\xa9t\xc3\xa9\": \"\xe6\x97\xa5\", "
         "\"x: y\": \"#z\", \"-x\": \" lead\", \"\\u2028\": \"\\u2029\\uFEFF\"}"),
        "train.lr=0.30000000000000004",
        "train.momentum=0.12345678901234568",
        "data.mean=[0.1, 1e-30, -3.4e30]",
        "train.weight_decay=1e-300",
    };
    check_round_trip("", awkward);
    /* the awkward values really were taken */
    dt_config cfg;
    dt_error err;
    if (load_text("", awkward, &cfg, &err) == 0) {
        CHECK_STR_EQ(cfg.data.root, "a \"b\" \\ c\td: #e");
        CHECK_STR_EQ(cfg.output.dir, "123");
        CHECK_INT_EQ(cfg.data.n_class_names, 5);
        CHECK_STR_EQ(dt_config_display_name(&cfg, "\xe2\x80\xa8"), "\xe2\x80\xa9\xef\xbb\xbf");
        CHECK(cfg.train.lr == 0.30000000000000004);
        CHECK(cfg.data.mean[1] == 1e-30f);
        dt_config_free(&cfg);
    } else {
        CHECK_MSG(0, "awkward overrides: %s", err.message);
    }
}

/* ---- mutated files: never a crash, always a located error or a config that round-trips ---- */

/* True when message is "PATH:LINE:COL: ..." with positive LINE and COL. */
static bool located_in_case_file(const char *message) {
    size_t n = strlen(case_path);
    if (strncmp(message, case_path, n) != 0 || message[n] != ':') return false;
    char *end;
    long line = strtol(message + n + 1, &end, 10);
    if (line < 1 || *end != ':') return false;
    long column = strtol(end + 1, &end, 10);
    return column >= 1 && *end == ':';
}

static void test_mutated_configs(void) {
    static const char alphabet[] = "[]{}:,-?&*!|>'\"#% \n\tab0.eE+~\\\xff\xc3\xa9";
    uint32_t state = 12345; /* a fixed LCG: the same cases every run */
    char text[2048];
    int n_loaded = 0, n_refused = 0, n_unlocated = 0, n_unstable = 0;
    for (int iteration = 0; iteration < 1500; iteration++) {
        size_t n = strlen(full_config);
        memcpy(text, full_config, n);
        int edits = 1 + iteration % 4;
        for (int e = 0; e < edits; e++) {
            state = state * 1664525u + 1013904223u;
            size_t at = (state >> 8) % n;
            char c = alphabet[(state >> 20) % (sizeof alphabet - 1)];
            if (e % 2 == 0) {
                text[at] = c;
            } else {
                memmove(text + at, text + at + 1, n - at - 1);
                n--;
            }
        }
        text[n] = '\0';
        dt_config cfg;
        dt_error err;
        const char *none[1] = {0};
        if (load_text(text, none, &cfg, &err) == 0) {
            n_loaded++;
            uint64_t hash = dt_config_hash(&cfg);
            char *written = written_yaml(&cfg);
            dt_config_free(&cfg);
            if (!written || load_text(written, none, &cfg, &err) != 0) {
                n_unstable++;
            } else {
                if (dt_config_hash(&cfg) != hash) n_unstable++;
                dt_config_free(&cfg);
            }
            free(written);
        } else {
            n_refused++;
            if (err.exit_code != 2 || !located_in_case_file(err.message)) {
                if (n_unlocated++ == 0) fprintf(stderr, "unlocated error: %s\n", err.message);
            }
        }
    }
    printf("test_config: mutated files: %d loaded, %d refused\n", n_loaded, n_refused);
    CHECK_INT_EQ(n_loaded + n_refused, 1500);
    CHECK(n_loaded > 0 && n_refused > 0);
    CHECK_INT_EQ(n_unlocated, 0);
    CHECK_INT_EQ(n_unstable, 0);
}

/* Each enum value is written under its YAML name. */
static void test_enum_names(void) {
    dt_config cfg;
    dt_config_defaults(&cfg);
    cfg.data.root = strdup("/data/pets");
    cfg.data.resize = DT_RESIZE_CENTER;
    cfg.data.augment = DT_AUGMENT_CROP_FLIP;
    cfg.model.freeze = DT_FREEZE_BACKBONE;
    cfg.train.schedule = DT_SCHEDULE_COSINE;
    cfg.runtime.device = DT_DEVICE_CUDA;
    cfg.runtime.precision = DT_PRECISION_TF32;
    char *text = written_yaml(&cfg);
    CHECK(text != NULL);
    const char *const expected[] = {"\n  resize: center\n",   "\n  augment: crop_flip\n",
                                    "\n  freeze: backbone\n", "\n  schedule: cosine\n",
                                    "\n  device: cuda\n",     "\n  precision: tf32\n"};
    for (size_t i = 0; i < sizeof expected / sizeof expected[0]; i++)
        CHECK_MSG(text && strstr(text, expected[i]), "written YAML lacks '%s'", expected[i]);
    free(text);
    dt_config_free(&cfg);
}

/* runtime.precision auto resolves per device; the others are kept; names for the log. */
static void test_precision_resolve(void) {
    CHECK_INT_EQ(dt_precision_resolve(DT_PRECISION_AUTO, 1), DT_PRECISION_TF32);
    CHECK_INT_EQ(dt_precision_resolve(DT_PRECISION_AUTO, 0), DT_PRECISION_FP32);
    const dt_precision_kind kept[] = {DT_PRECISION_FP32, DT_PRECISION_TF32, DT_PRECISION_BF16};
    for (int i = 0; i < 3; i++) {
        CHECK_INT_EQ(dt_precision_resolve(kept[i], 1), kept[i]);
        CHECK_INT_EQ(dt_precision_resolve(kept[i], 0), kept[i]);
    }
    CHECK_STR_EQ(dt_precision_name(DT_PRECISION_FP32), "fp32");
    CHECK_STR_EQ(dt_precision_name(DT_PRECISION_TF32), "tf32");
    CHECK_STR_EQ(dt_precision_name(DT_PRECISION_WINOGRAD), "winograd");
    CHECK_STR_EQ(dt_precision_name(DT_PRECISION_BF16), "bf16");
    CHECK_STR_EQ(dt_precision_name(DT_PRECISION_AUTO), "auto");
}

/* train.optimizer adamw: its keys read, and written to config.yaml (with sgd they are left out,
 * see default_yaml) */
static void test_adamw_keys(void) {
    dt_config cfg;
    dt_error err;
    const char *overrides[] = {"train.clip_grad_norm=2.5", NULL};
    int rc = load_text(ROOT "train:\n  optimizer: adamw\n  betas: [0.8, 0.99]\n  eps: 1e-6\n"
                            "  weight_decay: 0.05\n  no_weight_decay: norm_and_bias\n",
                       overrides, &cfg, &err);
    CHECK_MSG(rc == 0, "%s", err.message);
    if (rc) return;
    CHECK(cfg.train.optimizer == DT_OPTIMIZER_ADAMW);
    CHECK(cfg.train.betas[0] == 0.8f && cfg.train.betas[1] == 0.99f);
    CHECK(cfg.train.eps == 1e-6 && cfg.train.clip_grad_norm == 2.5);
    CHECK(cfg.train.no_weight_decay == DT_NO_WEIGHT_DECAY_NORM_AND_BIAS);
    char *text = written_yaml(&cfg);
    CHECK(text && strstr(text, "  optimizer: adamw\n  betas: [0.8, 0.99]\n  eps: 1.0e-06\n"
                               "  no_weight_decay: norm_and_bias\n  clip_grad_norm: 2.5\n"));
    free(text);
    dt_config_free(&cfg);
}

/* The keys --resume lets change, as its refusal lists them: the table's resumable rows. */
static void test_resumable_keys(void) {
    char keys[1024];
    dt_config_resumable_keys(keys, sizeof keys);
    CHECK(strstr(keys, "train.epochs") != NULL);
    CHECK(strstr(keys, "train.nonfinite") != NULL);
    CHECK(strstr(keys, "train.early_stop_patience") != NULL);
    CHECK(strstr(keys, "output.dir") != NULL);
    CHECK(strstr(keys, "runtime.threads") != NULL);
    CHECK_MSG(strstr(keys, "train.lr") == NULL && strstr(keys, "data.root") == NULL &&
                  strstr(keys, "train.optimizer") == NULL,
              "%s", keys);
}

int main(void) {
    test_precision_resolve();
    test_resumable_keys();
    const char *tmp = getenv("TMPDIR");
    snprintf(case_dir, sizeof case_dir, "%s/dtrain_test_config_XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(case_dir)) {
        perror("mkdtemp");
        return 1;
    }
    snprintf(case_path, sizeof case_path, "%s/config.yaml", case_dir);

    test_defaults();
    test_full_config();
    test_plain_scalars_are_typed_by_key();
    test_good_overrides();
    test_write_defaults();
    test_adamw_keys();
    test_round_trip();
    test_enum_names();
    test_bad_cases();
    test_missing_file();
    test_mutated_configs();

    unlink(case_path);
    rmdir(case_dir);
    return dt_test_summary("test_config");
}
