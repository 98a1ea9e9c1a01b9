/* Loading torchvision ResNet-18 weights (dt_model_load_safetensors and model.pretrained): F32,
 * F16 and BF16 files with and without num_batches_tracked load exactly; a 1000-class classifier
 * is replaced while the backbone loads; and every bad file (truncated, oversized header,
 * overlapping offsets, wrong dtype, NaN or infinite values, another architecture, missing or
 * misshaped tensors) is refused with a usage error naming the file and the tensors, leaving the
 * model untouched. The dtrain binary maps the same failures to exit code 2. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "dtrain/backend.h"
#include "dtrain/model.h"
#include "dtrain/rng.h"
#include "dtrain/safetensors.h"
#include "imagegen.h"
#include "process.h"

enum { CLASSES = 10 };

static char workdir[512];
static dt_backend backend;
static dt_model *model;
/* the weights the test files hold (a model initialised with another seed, random statistics) */
static float *source_params, *source_stats;
static size_t n_params, n_stats;

/* How a test file departs from torchvision's resnet18(num_classes=10).state_dict(). */
typedef struct variant {
    dt_st_dtype dtype;         /* of the float tensors: F32, F16 or BF16 */
    int with_tracked;          /* write the num_batches_tracked scalars (I64) */
    int64_t tracked;           /* their value */
    int fc_classes;            /* classifier size written (0: CLASSES) */
    const char *omit_prefix;   /* leave out the tensors whose names start with this */
    const char *i32_key;       /* write this tensor as I32 */
    const char *bad_value_key; /* put bad_value into element 7 of this tensor */
    float bad_value;           /* NaN or infinity */
    const char *misshaped_key; /* write this tensor with its first dimension halved */
    int resnet34_extra;        /* add a third block to layer1, as resnet34 has */
    const char *name_prefix;   /* prepended to every name (e.g. "module.") */
} variant;

static void path_in_workdir(char *out, size_t size, const char *name) {
    snprintf(out, size, "%s/%s", workdir, name);
}

/* Adds one tensor of `count` floats in v->dtype (or I32 for v->i32_key). */
static int add_float_tensor(dt_st_writer *w, const variant *v, const char *name, int ndim,
                            const int64_t *shape, const float *values, size_t count,
                            dt_error *err) {
    char full[160];
    snprintf(full, sizeof full, "%s%s", v->name_prefix ? v->name_prefix : "", name);
    void *data = malloc(count * 4 + 4);
    if (!data) return dt_fail(err, "out of memory");
    dt_st_dtype dtype = v->dtype;
    if (v->i32_key && strcmp(name, v->i32_key) == 0) {
        dtype = DT_ST_I32;
        for (size_t i = 0; i < count; i++) ((int32_t *)data)[i] = (int32_t)(values[i] * 1000);
    } else if (dtype == DT_ST_F16 || dtype == DT_ST_BF16) {
        for (size_t i = 0; i < count; i++)
            ((uint16_t *)data)[i] =
                dtype == DT_ST_F16 ? dt_float_to_f16(values[i]) : dt_float_to_bf16(values[i]);
    } else {
        memcpy(data, values, count * sizeof *values);
    }
    int rc = dt_st_writer_add(w, full, dtype, ndim, shape, data, err);
    free(data);
    return rc;
}

/* Writes the state dict described by v to path. */
static int write_state_dict(const char *path, const variant *v) {
    dt_error err = {{0}, 0};
    dt_st_writer *w = dt_st_writer_create();
    size_t n;
    const dt_state_entry *e = dt_model_state(model, &n);
    int fc_classes = v->fc_classes ? v->fc_classes : CLASSES;
    float *scratch = malloc((size_t)fc_classes * 512 * sizeof *scratch);
    int rc = w && scratch ? 0 : -1;
    for (size_t i = 0; i < n && rc == 0; i++) {
        if (v->omit_prefix && strncmp(e[i].name, v->omit_prefix, strlen(v->omit_prefix)) == 0)
            continue;
        int64_t shape[4];
        memcpy(shape, e[i].shape, sizeof shape);
        if (e[i].role == DT_TENSOR_BATCHES_TRACKED) {
            if (v->with_tracked)
                rc = dt_st_writer_add(w, e[i].name, DT_ST_I64, 0, shape, &v->tracked, &err);
            continue;
        }
        const float *values =
            (e[i].role == DT_TENSOR_PARAMETER ? source_params : source_stats) + e[i].offset;
        size_t count = e[i].count;
        if (e[i].in_classifier && fc_classes != CLASSES) {
            shape[0] = fc_classes;
            count = (size_t)fc_classes * (e[i].ndim == 2 ? 512 : 1);
            for (size_t k = 0; k < count; k++) scratch[k] = 0.01f * (float)(k % 97) - 0.4f;
            values = scratch;
        }
        float *copy = NULL;
        if (v->bad_value_key && strcmp(e[i].name, v->bad_value_key) == 0) {
            copy = malloc(count * sizeof *copy);
            if (!copy) rc = -1;
            if (copy) {
                memcpy(copy, values, count * sizeof *copy);
                copy[7] = v->bad_value;
                values = copy;
            }
        }
        if (v->misshaped_key && strcmp(e[i].name, v->misshaped_key) == 0) {
            count /= 2;
            shape[0] /= 2;
        }
        if (rc == 0) rc = add_float_tensor(w, v, e[i].name, e[i].ndim, shape, values, count, &err);
        free(copy);
    }
    if (v->resnet34_extra && rc == 0) {
        /* resnet34's layer1 has three blocks: layer1.2.* has layer1.1.*'s shapes */
        static const char *const suffixes[] = {"conv1.weight", "bn1.weight", "bn1.bias",
                                               "bn1.running_mean", "bn1.running_var"};
        for (size_t s = 0; s < 5 && rc == 0; s++) {
            char from[96], to[96];
            snprintf(from, sizeof from, "layer1.1.%s", suffixes[s]);
            snprintf(to, sizeof to, "layer1.2.%s", suffixes[s]);
            const dt_state_entry *src = dt_model_find(model, from);
            const float *values =
                (src->role == DT_TENSOR_PARAMETER ? source_params : source_stats) + src->offset;
            rc = add_float_tensor(w, v, to, src->ndim, src->shape, values, src->count, &err);
        }
    }
    if (rc == 0) rc = dt_st_writer_write(w, path, &err);
    CHECK_MSG(rc == 0, "writing %s: %s", path, err.message);
    if (w) dt_st_writer_destroy(w);
    free(scratch);
    return rc;
}

/* ---- model state helpers -------------------------------------------------------------------- */

static float *params_now(void) {
    float *p = malloc(n_params * sizeof *p), *s = malloc(n_stats * sizeof *s);
    dt_error err = {{0}, 0};
    if (p && s && dt_model_download_state(model, p, s, &err) == 0) {
        free(s);
        return p;
    }
    free(p);
    free(s);
    return NULL;
}

/* Gives the model fresh weights (seed 1) and returns a copy of its parameters. */
static float *reset_model(void) {
    dt_error err = {{0}, 0};
    CHECK(dt_model_init_weights(model, 1, &err) == 0);
    return params_now();
}

static int same_floats(const float *a, const float *b, size_t n) {
    return memcmp(a, b, n * sizeof *a) == 0;
}

/* Loads path; it must fail with a usage error whose message holds every string of `needles`
 * (NULL-terminated), and leave the model's parameters as they were. */
static void expect_refusal(const char *what, const char *path, int allow_mismatch,
                           const char *const *needles) {
    float *before = reset_model();
    dt_error err = {{0}, 0};
    int replaced = -1;
    int rc = dt_model_load_safetensors(model, path, allow_mismatch, &replaced, &err);
    CHECK_MSG(rc == -1, "%s: loaded although it should not", what);
    if (getenv("DTRAIN_TEST_VERBOSE")) printf("%s: %s\n", what, err.message);
    CHECK_MSG(err.exit_code == DT_EXIT_USAGE, "%s: exit code %d, expected usage (2)", what,
              err.exit_code);
    CHECK_MSG(strstr(err.message, path) != NULL, "%s: message does not name the file: %s", what,
              err.message);
    for (const char *const *n = needles; n && *n; n++)
        CHECK_MSG(strstr(err.message, *n) != NULL, "%s: message lacks \"%s\": %s", what, *n,
                  err.message);
    float *after = params_now();
    CHECK_MSG(before && after && same_floats(before, after, n_params),
              "%s: the model changed although loading failed", what);
    free(before);
    free(after);
}

/* ---- files that load ------------------------------------------------------------------------ */

static float round_trip(float value, dt_st_dtype dtype) {
    if (dtype == DT_ST_F16) return dt_f16_to_float(dt_float_to_f16(value));
    if (dtype == DT_ST_BF16) return dt_bf16_to_float(dt_float_to_bf16(value));
    return value;
}

static void check_loads(const char *what, const variant *v, int64_t expected_tracked) {
    char path[600];
    path_in_workdir(path, sizeof path, "good.safetensors");
    if (write_state_dict(path, v)) return;
    float *before = reset_model();
    dt_model_set_batches_tracked(model, 0);
    dt_error err = {{0}, 0};
    int replaced = -1;
    int rc = dt_model_load_safetensors(model, path, 1, &replaced, &err);
    CHECK_MSG(rc == 0, "%s: %s", what, err.message);
    float *p = malloc(n_params * sizeof *p), *s = malloc(n_stats * sizeof *s);
    if (rc == 0 && p && s && dt_model_download_state(model, p, s, &err) == 0) {
        int classifier_kept = v->fc_classes && v->fc_classes != CLASSES;
        CHECK_INT_EQ(replaced, classifier_kept);
        size_t n, wrong = 0, classifier_wrong = 0;
        const dt_state_entry *e = dt_model_state(model, &n);
        for (size_t i = 0; i < n; i++) {
            if (e[i].role == DT_TENSOR_BATCHES_TRACKED) continue;
            int is_param = e[i].role == DT_TENSOR_PARAMETER;
            const float *got = (is_param ? p : s) + e[i].offset;
            const float *src = (is_param ? source_params : source_stats) + e[i].offset;
            for (size_t k = 0; k < e[i].count; k++) {
                if (e[i].in_classifier && classifier_kept) {
                    /* the replaced classifier keeps the model's own initialisation */
                    classifier_wrong += got[k] != before[e[i].offset + k];
                } else {
                    float want = round_trip(src[k], v->dtype);
                    wrong += memcmp(&got[k], &want, sizeof want) != 0;
                }
            }
        }
        CHECK_MSG(wrong == 0, "%s: %zu values differ from the file's", what, wrong);
        CHECK_MSG(classifier_wrong == 0, "%s: %zu classifier values changed", what,
                  classifier_wrong);
        CHECK_INT_EQ(dt_model_batches_tracked(model), expected_tracked);
    }
    free(p);
    free(s);
    free(before);
}

static void test_files_that_load(void) {
    check_loads("F32 with num_batches_tracked",
                &(variant){.dtype = DT_ST_F32, .with_tracked = 1, .tracked = 9}, 9);
    check_loads("F32 without num_batches_tracked", &(variant){.dtype = DT_ST_F32}, 0);
    check_loads("F16", &(variant){.dtype = DT_ST_F16, .with_tracked = 1, .tracked = 3}, 3);
    check_loads("BF16", &(variant){.dtype = DT_ST_BF16}, 0);
    check_loads("ImageNet classifier (1000 classes) replaced",
                &(variant){.dtype = DT_ST_F32, .with_tracked = 1, .tracked = 2, .fc_classes = 1000},
                2);
}

/* ---- files that are refused ----------------------------------------------------------------- */

/* The bytes of a valid F32 state dict. */
static uint8_t *valid_file_bytes(size_t *size) {
    char path[600];
    dt_error err = {{0}, 0};
    uint8_t *bytes = NULL;
    path_in_workdir(path, sizeof path, "valid.safetensors");
    if (write_state_dict(path, &(variant){.dtype = DT_ST_F32, .with_tracked = 1}) ||
        dt_testgen_read_file(path, &bytes, size, &err))
        fprintf(stderr, "valid state dict: %s\n", err.message[0] ? err.message : "not written");
    return bytes;
}

static void test_broken_files(void) {
    dt_error err = {{0}, 0};
    char path[600];
    size_t size = 0;
    uint8_t *bytes = valid_file_bytes(&size);
    CHECK(bytes != NULL && size > 40000000);
    if (!bytes) return;

    path_in_workdir(path, sizeof path, "truncated.safetensors");
    CHECK_MSG(dt_testgen_write_bytes(path, bytes, size / 2, &err) == 0, "%s", err.message);
    expect_refusal("truncated", path, 1, (const char *const[]){"truncated", NULL});

    path_in_workdir(path, sizeof path, "oversized_header.safetensors");
    uint8_t *copy = malloc(size);
    memcpy(copy, bytes, size);
    uint64_t huge = 200000000; /* more than the 100 MB limit and than the file */
    for (int i = 0; i < 8; i++) copy[i] = (uint8_t)(huge >> (8 * i));
    CHECK_MSG(dt_testgen_write_bytes(path, copy, size, &err) == 0, "%s", err.message);
    expect_refusal("oversized header", path, 1, NULL);
    uint64_t beyond = size; /* within the limit, beyond the end of the file */
    for (int i = 0; i < 8; i++) copy[i] = (uint8_t)(beyond >> (8 * i));
    CHECK_MSG(dt_testgen_write_bytes(path, copy, size, &err) == 0, "%s", err.message);
    expect_refusal("header longer than the file", path, 1, NULL);
    free(copy);
    free(bytes);

    /* two model tensors whose data overlap */
    const char header[] = "{\"conv1.weight\":{\"dtype\":\"F32\",\"shape\":[64,3,7,7],"
                          "\"data_offsets\":[0,37632]},\"bn1.weight\":{\"dtype\":\"F32\","
                          "\"shape\":[64],\"data_offsets\":[37376,37632]}}";
    size_t header_len = strlen(header), total = 8 + header_len + 37632;
    uint8_t *image = calloc(total, 1);
    for (int i = 0; i < 8; i++) image[i] = (uint8_t)((uint64_t)header_len >> (8 * i));
    memcpy(image + 8, header, header_len);
    path_in_workdir(path, sizeof path, "overlapping.safetensors");
    CHECK_MSG(dt_testgen_write_bytes(path, image, total, &err) == 0, "%s", err.message);
    expect_refusal("overlapping offsets", path, 1,
                   (const char *const[]){"overlap", "bn1.weight", "conv1.weight", NULL});
    free(image);

    path_in_workdir(path, sizeof path, "does-not-exist.safetensors");
    expect_refusal("missing file", path, 1, NULL);
    expect_refusal("a directory", workdir, 1, NULL);
}

static void refuse_variant(const char *what, const char *file, const variant *v, int allow_mismatch,
                           const char *const *needles) {
    char path[600];
    path_in_workdir(path, sizeof path, file);
    if (write_state_dict(path, v) == 0) expect_refusal(what, path, allow_mismatch, needles);
}

static void test_wrong_contents(void) {
    refuse_variant("I32 conv weight", "i32.safetensors",
                   &(variant){.dtype = DT_ST_F32, .i32_key = "layer2.0.conv1.weight"}, 1,
                   (const char *const[]){"layer2.0.conv1.weight", "I32", NULL});
    refuse_variant("NaN running_var", "nan.safetensors",
                   &(variant){.dtype = DT_ST_F32,
                              .bad_value_key = "layer3.1.bn2.running_var",
                              .bad_value = NAN},
                   1, (const char *const[]){"layer3.1.bn2.running_var", "NaN", NULL});
    refuse_variant("infinite F16 weight", "inf.safetensors",
                   &(variant){.dtype = DT_ST_F16,
                              .bad_value_key = "layer1.0.conv2.weight",
                              .bad_value = INFINITY},
                   1, (const char *const[]){"layer1.0.conv2.weight", "infinite", NULL});
    refuse_variant("resnet34-like (extra layer1.2)", "resnet34.safetensors",
                   &(variant){.dtype = DT_ST_F32, .resnet34_extra = 1}, 1,
                   (const char *const[]){"unexpected", "layer1.2.conv1.weight", NULL});
    refuse_variant("no layer4", "no_layer4.safetensors",
                   &(variant){.dtype = DT_ST_F32, .omit_prefix = "layer4."}, 1,
                   (const char *const[]){"missing", "layer4.0.conv1.weight", NULL});
    refuse_variant(
        "misshaped conv", "misshaped.safetensors",
        &(variant){.dtype = DT_ST_F32, .misshaped_key = "layer1.0.conv1.weight"}, 1,
        (const char *const[]){"wrong shape", "layer1.0.conv1.weight [32, 64, 3, 3]", NULL});
    refuse_variant("DataParallel names", "module.safetensors",
                   &(variant){.dtype = DT_ST_F32, .name_prefix = "module."}, 1,
                   (const char *const[]){"DataParallel", "missing: conv1.weight",
                                         "unexpected: module.", NULL});
    refuse_variant("1000-class classifier without allow_classifier_mismatch", "fc1000.safetensors",
                   &(variant){.dtype = DT_ST_F32, .fc_classes = 1000}, 0,
                   (const char *const[]){"wrong shape", "fc.weight [1000, 512]", NULL});
}

/* ---- through the dtrain binary ----------------------------------------------------------------
 */

static int run_dtrain(const char *bin, const char *data, const char *pretrained, const char *log) {
    char cmd[4096];
    snprintf(cmd, sizeof cmd,
             "%s %s/cfg.yaml data.root=%s model.pretrained=%s output.dir=%s/run > %s 2>&1", bin,
             workdir, data, pretrained, workdir, log);
    return dt_test_run(cmd);
}

static void test_depth_through_dtrain(const char *bin);

static void test_through_dtrain(void) {
    const char *bin = getenv("DTRAIN_BIN");
    CHECK_MSG(bin != NULL, "DTRAIN_BIN is not set (run through ctest): the dtrain runs cannot run");
    if (!bin) return;
    char data[600], cfg[600], log[600], good[600], bad[600];
    path_in_workdir(data, sizeof data, "data");
    path_in_workdir(cfg, sizeof cfg, "cfg.yaml");
    path_in_workdir(log, sizeof log, "log.txt");
    dt_error err = {{0}, 0};
    CHECK_MSG(dt_testgen_learnable_imagefolder(data, 2, 10, 32, 32, 3, &err) == 0, "%s",
              err.message);
    int written =
        dt_test_write_text(cfg, "data:\n  image_size: 32\n  val_fraction: 0.2\n  workers: 1\n"
                                "train:\n  epochs: 1\n  batch_size: 8\nruntime:\n  device: cpu\n"
                                "  threads: 2\n") == 0;
    path_in_workdir(good, sizeof good, "imagenet.safetensors");
    path_in_workdir(bad, sizeof bad, "nan.safetensors");
    written = written &&
              write_state_dict(good, &(variant){.dtype = DT_ST_BF16, .fc_classes = 1000}) == 0 &&
              write_state_dict(bad, &(variant){.dtype = DT_ST_F32,
                                               .bad_value_key = "layer3.1.bn2.running_var",
                                               .bad_value = NAN}) == 0;
    CHECK_MSG(written, "the config and state dicts for the dtrain runs are written");
    if (!written) return;
    CHECK_INT_EQ(run_dtrain(bin, data, bad, log), 2);
    char *text = dt_test_read_text(log);
    CHECK_MSG(text && strstr(text, "model.pretrained: ") && strstr(text, bad) &&
                  strstr(text, "layer3.1.bn2.running_var"),
              "dtrain's message: %s", text ? text : "(none)");
    free(text);
    /* a 1000-class classifier into a 2-class model: trains with the classifier re-initialised */
    CHECK_INT_EQ(run_dtrain(bin, data, good, log), 0);
    text = dt_test_read_text(log);
    CHECK_MSG(text && strstr(text, "loaded pretrained weights from") &&
                  strstr(text, "classifier re-initialised"),
              "dtrain's output: %s", text ? text : "(none)");
    free(text);
    test_depth_through_dtrain(bin);
}

/* Another depth through dtrain: a ResNet-50 run (model.arch, zero_init_residual) writes a
 * model.safetensors with the architecture in its metadata and torchvision's resnet50 names,
 * which a ResNet-50 loads and a resnet18 run refuses naming the architecture; dtrain predict
 * rebuilds the architecture from the file. */
static void test_depth_through_dtrain(const char *bin) {
    char data[600], log[600], model_path[700], cmd[4096], image[700];
    path_in_workdir(data, sizeof data, "data");
    path_in_workdir(log, sizeof log, "log50.txt");
    snprintf(model_path, sizeof model_path, "%s/run50/model.safetensors", workdir);
    snprintf(cmd, sizeof cmd,
             "%s %s/cfg.yaml data.root=%s model.arch=resnet50 model.zero_init_residual=true "
             "output.dir=%s/run50 > %s 2>&1",
             bin, workdir, data, workdir, log);
    CHECK_INT_EQ(dt_test_run(cmd), 0);
    dt_safetensors st;
    dt_error err = {{0}, 0};
    if (dt_safetensors_read(model_path, &st, &err) == 0) {
        const char *arch = dt_safetensors_metadata_value(&st, "arch");
        CHECK(arch && strcmp(arch, "resnet50") == 0);
        const dt_st_tensor *conv3 = dt_safetensors_find(&st, "layer4.2.conv3.weight");
        CHECK(conv3 && conv3->ndim == 4 && conv3->shape[0] == 2048 && conv3->shape[1] == 512);
        const dt_st_tensor *fc = dt_safetensors_find(&st, "fc.weight");
        CHECK(fc && fc->shape[0] == 2 && fc->shape[1] == 2048);
        CHECK_INT_EQ(st.n_tensors, 320);
        const char *inferred = dt_model_arch_of_state_dict(&st);
        CHECK(inferred && strcmp(inferred, "resnet50") == 0);
        dt_safetensors_free(&st);
    } else {
        CHECK_MSG(0, "%s", err.message);
    }
    snprintf(cmd, sizeof cmd, "%s/run50/metrics.jsonl", workdir);
    char *text = dt_test_read_text(cmd);
    CHECK_MSG(text && strstr(text, "\"arch\":\"resnet50\""), "metrics.jsonl: %s",
              text ? text : "(none)");
    free(text);
    /* loads into a ResNet-50 (what model.pretrained does), and a ResNet-18 run refuses it */
    dt_model *m50 = NULL;
    dt_model_options opt = {.arch = "resnet50", .batch = 1, .image_size = 32, .n_classes = 2};
    int loaded = dt_model_create(&backend, &opt, &m50, &err) == 0 &&
                 dt_model_load_safetensors(m50, model_path, 0, NULL, &err) == 0;
    CHECK_MSG(loaded, "%s", err.message);
    if (m50) dt_model_destroy(m50);
    CHECK_INT_EQ(run_dtrain(bin, data, model_path, log), 2);
    text = dt_test_read_text(log);
    CHECK_MSG(text && strstr(text, "is not a torchvision/timm ResNet-18 state dict") &&
                  strstr(text, "layer1.0.conv1.weight [64, 64, 1, 1]"),
              "dtrain's message: %s", text ? text : "(none)");
    free(text);
    /* dtrain predict builds a ResNet-50 from the file's metadata */
    snprintf(image, sizeof image, "%s/predict.jpg", workdir);
    uint8_t pixels[32 * 32 * 3];
    for (size_t i = 0; i < sizeof pixels; i++) pixels[i] = (uint8_t)(i * 7);
    CHECK(dt_testgen_write_jpeg(image, pixels, 32, 32, 3, 95, 0, &err) == 0);
    snprintf(cmd, sizeof cmd, "%s predict %s %s --device cpu > %s 2>&1", bin, model_path, image,
             log);
    CHECK_INT_EQ(dt_test_run(cmd), 0);
    text = dt_test_read_text(log);
    CHECK_MSG(text && strstr(text, image), "dtrain predict: %s", text ? text : "(none)");
    free(text);
}

/* ---- set-up --------------------------------------------------------------------------------- */

static int set_up(void) {
    dt_error err = {{0}, 0};
    if (dt_testgen_make_temp_dir("dtrain-pretrained", workdir, sizeof workdir, &err) ||
        dt_backend_cpu_create(&(dt_backend_options){.threads = 2}, &backend, &err)) {
        CHECK_MSG(0, "%s", err.message);
        return -1;
    }
    dt_model_options opt = {.batch = 1, .image_size = 32, .n_classes = CLASSES};
    if (dt_model_create(&backend, &opt, &model, &err) || dt_model_init_weights(model, 11, &err)) {
        CHECK_MSG(0, "%s", err.message);
        return -1;
    }
    n_params = dt_model_param_count(model);
    n_stats = dt_model_stats_count(model);
    source_params = malloc(n_params * sizeof *source_params);
    source_stats = malloc(n_stats * sizeof *source_stats);
    if (!source_params || !source_stats ||
        dt_model_download_state(model, source_params, source_stats, &err))
        return -1;
    /* running statistics that are not the initial 0 and 1, so that loading them shows */
    dt_rng rng = dt_rng_seeded(5);
    for (size_t i = 0; i < n_stats; i++) source_stats[i] = 0.5f + dt_rng_uniform_float(&rng);
    return 0;
}

int main(void) {
    if (set_up() == 0) {
        test_files_that_load();
        test_broken_files();
        test_wrong_contents();
        test_through_dtrain();
    }
    if (model) dt_model_destroy(model);
    if (backend.ops) dt_backend_free(&backend);
    free(source_params);
    free(source_stats);
    dt_testgen_finish_temp_dir(workdir);
    return dt_test_summary("pretrained");
}
