/* Same numbers as PyTorch: rebuilds the seeded ResNets and inputs of the fixtures written by
 * tests/reference/make_fixtures.py (torchvision resnet18 ... resnet152, torch.optim.SGD; the
 * fixture's "arch" metadata, resnet18 when absent; the "optimizer", "no_weight_decay" and
 * "clip_grad_norm" metadata of the optimizer cases: torch.optim.AdamW, timm's weight-decay
 * exclusion and clip_grad_norm_, run through the trainer's optimizer step), runs the training
 * forward/backward and optimizer steps on a backend (the program's argument, as the backend tests:
 * cpu by default, cuda; testlib/backends.h), and compares logits, losses, every
 * gradient's norm and samples, parameters, BatchNorm running statistics and eval-mode logits
 * with float64 references, within fixed tolerances or PyTorch float32's own measured noise (see
 * tests/reference/README.md); the SGD arithmetic is checked exactly on dtrain's own gradients.
 * The EMA case adds the weights' moving average (dt_model_ema, timm's ModelEmaV2) after the
 * steps. A third fixture checks the loader: torchvision's state-dict layout, written as
 * safetensors, loaded by dt_model_load_safetensors, must give torchvision's eval-mode logits.
 * Tolerances are widened per backend as the op tests' (dt_test_tolerance).
 * `test_reference [BACKEND] --export DIR` writes DIR/model.safetensors (dt_model_save_safetensors)
 * and DIR/logits.safetensors for `make_fixtures.py --check-export DIR`. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backends.h"
#include "check.h"
#include "dtrain/backend.h"
#include "dtrain/config.h"
#include "dtrain/model.h"
#include "dtrain/model_ema.h"
#include "dtrain/optimizer.h"
#include "dtrain/rng.h"
#include "dtrain/safetensors.h"
#include "imagegen.h"
#include "process.h"
#include "test_backend_common.h" /* test_max_abs */

enum { SAMPLES = 16 };

/* The backend the fixtures run on (argv[1]) and the factor its tolerances get. */
static int backend_argc = 1;
static char **backend_argv;
static double backend_tolerance_factor = 1.0;

/* ---- the fixtures' generator (make_fixtures.py's docstring) --------------------------------- */

static double next_uniform(dt_rng *rng) {
    return (double)(dt_rng_next(rng) >> 40) * (1.0 / 16777216.0);
}

/* Values of state-dict tensor `index`, rounded once to float as numpy's astype(float32). */
static void seeded_tensor(const char *name, const int64_t *shape, int ndim, size_t count,
                          uint64_t seed, size_t index, int random_stats, int fc_in, float *out) {
    dt_rng rng = dt_rng_seeded(dt_rng_mix(seed, index));
    size_t len = strlen(name);
#define ENDS_WITH(suffix)                                                                          \
    (len >= strlen(suffix) && strcmp(name + len - strlen(suffix), suffix) == 0)
    for (size_t i = 0; i < count; i++) {
        double u = next_uniform(&rng), v;
        if (ENDS_WITH("running_mean"))
            v = random_stats ? 0.2 * (2.0 * u - 1.0) : 0.0;
        else if (ENDS_WITH("running_var"))
            v = random_stats ? 0.5 + u : 1.0;
        else if (strncmp(name, "fc.", 3) == 0)
            v = (2.0 * u - 1.0) * sqrt(1.0 / (double)fc_in);
        else if (ndim == 4)
            v = (2.0 * u - 1.0) * sqrt(6.0 / (double)(shape[0] * shape[2] * shape[3]));
        else if (ENDS_WITH(".weight"))
            v = 1.0 + 0.1 * (2.0 * u - 1.0);
        else
            v = 0.1 * (2.0 * u - 1.0);
        out[i] = (float)v;
    }
#undef ENDS_WITH
}

/* Host parameter and statistics buffers of the seeded model, in dtrain's layout. */
static void seeded_state(const dt_model *m, uint64_t seed, int random_stats, float *params,
                         float *stats) {
    size_t n;
    const dt_state_entry *e = dt_model_state(m, &n);
    int fc_in = (int)dt_model_find(m, "fc.weight")->shape[1];
    for (size_t i = 0; i < n; i++) {
        if (e[i].role == DT_TENSOR_BATCHES_TRACKED) continue;
        float *dst = (e[i].role == DT_TENSOR_PARAMETER ? params : stats) + e[i].offset;
        seeded_tensor(e[i].name, e[i].shape, e[i].ndim, e[i].count, seed, i, random_stats, fc_in,
                      dst);
    }
}

static void seeded_input(uint64_t seed, int batch, int size, int classes, uint8_t *pixels,
                         int32_t *labels) {
    dt_rng rng = dt_rng_seeded(dt_rng_mix(seed, 1000));
    size_t n = (size_t)batch * size * size * 3;
    for (size_t i = 0; i < n; i++) pixels[i] = (uint8_t)(dt_rng_next(&rng) >> 56);
    rng = dt_rng_seeded(dt_rng_mix(seed, 1001));
    for (int i = 0; i < batch; i++) labels[i] = (int32_t)dt_rng_below(&rng, (uint32_t)classes);
}

/* ---- fixture access ------------------------------------------------------------------------- */

typedef struct fixture {
    dt_safetensors st;
    int loaded;
    uint64_t seed;
    int batch, image_size, classes;
    char arch[32]; /* "resnet18" when the fixture does not say */
    int fc_in;     /* the classifier's input width */
    float mean[3], std[3];
} fixture;

static int fixture_open(const char *name, fixture *f) {
    memset(f, 0, sizeof *f);
    const char *src = getenv("DTRAIN_SOURCE_DIR");
    char path[1024];
    snprintf(path, sizeof path, "%s/tests/reference/%s.safetensors", src ? src : ".", name);
    dt_error err = {{0}, 0};
    int rc = dt_safetensors_read(path, &f->st, &err);
    CHECK_MSG(rc == 0, "fixture: %s (is DTRAIN_SOURCE_DIR set?)", err.message);
    if (rc) return -1;
    f->loaded = 1;
    const char *keys[] = {"seed", "batch", "image_size", "classes", "mean", "std"};
    const char *v[6];
    for (int i = 0; i < 6; i++) {
        v[i] = dt_safetensors_metadata_value(&f->st, keys[i]);
        CHECK_MSG(v[i] != NULL, "%s: metadata '%s' missing", path, keys[i]);
        if (!v[i]) return -1;
    }
    f->seed = strtoull(v[0], NULL, 10);
    f->batch = atoi(v[1]);
    f->image_size = atoi(v[2]);
    f->classes = atoi(v[3]);
    const char *arch = dt_safetensors_metadata_value(&f->st, "arch");
    snprintf(f->arch, sizeof f->arch, "%s", arch ? arch : "resnet18");
    CHECK_MSG(dt_model_arch_known(f->arch), "%s: arch '%s' unknown", path, f->arch);
    dt_model_options described = {.arch = f->arch, .batch = 1, .image_size = 64, .n_classes = 2};
    dt_model *m = NULL;
    if (!dt_model_arch_known(f->arch) || dt_model_describe(&described, &m, &err)) return -1;
    f->fc_in = (int)dt_model_find(m, "fc.weight")->shape[1];
    dt_model_destroy(m);
    int sane = f->batch >= 1 && f->batch <= 64 && f->image_size >= 32 && f->image_size <= 512 &&
               f->classes >= 2 && f->classes <= 64;
    CHECK_MSG(sane, "%s: batch %d, image_size %d, classes %d out of range", path, f->batch,
              f->image_size, f->classes);
    /* as PyTorch: decimal -> double -> float */
    double mean[3], std[3];
    int parsed = sscanf(v[4], "%lf,%lf,%lf", &mean[0], &mean[1], &mean[2]) == 3 &&
                 sscanf(v[5], "%lf,%lf,%lf", &std[0], &std[1], &std[2]) == 3;
    CHECK_MSG(parsed, "%s: mean/std metadata unreadable", path);
    for (int c = 0; c < 3 && parsed; c++) {
        f->mean[c] = (float)mean[c];
        f->std[c] = (float)std[c];
    }
    return sane && parsed ? 0 : -1;
}

static void fixture_close(fixture *f) {
    if (f->loaded) dt_safetensors_free(&f->st);
}

/* The fixture tensor "prefix" + name as doubles (count elements; F64 or F32), or NULL. */
static double *fixture_doubles(const fixture *f, const char *prefix, const char *name,
                               size_t count) {
    char key[160];
    snprintf(key, sizeof key, "%s%s", prefix, name);
    const dt_st_tensor *t = dt_safetensors_find(&f->st, key);
    int ok = t && (t->dtype == DT_ST_F64 || t->dtype == DT_ST_F32) &&
             dt_st_tensor_element_count(t) == count;
    CHECK_MSG(ok, "fixture tensor '%s' missing or not F64/F32[%zu]", key, count);
    double *out = ok ? malloc((count ? count : 1) * sizeof *out) : NULL;
    if (!out) return NULL;
    for (size_t i = 0; i < count; i++) {
        if (t->dtype == DT_ST_F64) {
            memcpy(&out[i], t->data + 8 * i, 8);
        } else {
            float v;
            memcpy(&v, t->data + 4 * i, 4);
            out[i] = v;
        }
    }
    return out;
}

static int fixture_i64(const fixture *f, const char *key, int64_t *out, size_t count) {
    const dt_st_tensor *t = dt_safetensors_find(&f->st, key);
    int ok = t && t->dtype == DT_ST_I64 && dt_st_tensor_element_count(t) == count;
    CHECK_MSG(ok, "fixture tensor '%s' missing or not I64[%zu]", key, count);
    if (!ok) return -1;
    memcpy(out, t->data, count * sizeof *out);
    return 0;
}

/* The sampled element indices of a tensor of `count` elements. */
static int sample_indices(const fixture *f, const char *name, size_t count, int64_t *index) {
    char key[160];
    snprintf(key, sizeof key, "index.%s", name);
    if (fixture_i64(f, key, index, SAMPLES)) return -1;
    for (int k = 0; k < SAMPLES; k++)
        if (index[k] < 0 || (size_t)index[k] >= count) {
            CHECK_MSG(0, "fixture tensor '%s': index %lld outside [0, %zu)", key,
                      (long long)index[k], count);
            return -1;
        }
    return 0;
}

/* ---- comparison bookkeeping ----------------------------------------------------------------- */

/* The quantities compared, with their fixed tolerances (relative to the quantity's scale). */
typedef enum {
    Q_LOGITS,
    Q_LOSS,
    Q_GRAD_NORM,
    Q_GRAD,
    Q_PARAMS,
    Q_UPDATES,
    Q_STATS,
    Q_EVAL_LOGITS,
    Q_COUNT
} quantity;
static const char *const quantity_names[Q_COUNT] = {
    "logits",       "loss",          "grad norms",          "grad samples",
    "params after", "param updates", "running stats after", "eval logits"};
static const double quantity_tolerance[Q_COUNT] = {1e-4, 1e-4, 1e-3, 1e-3, 1e-4, 1e-3, 1e-4, 1e-4};
/* Where float32 rounding decides on which side of a ReLU or max-pool kink a value falls,
 * PyTorch's own float32 runs are further from the exact answer than the fixed tolerances; dtrain
 * may then be as far as this many times PyTorch's worst float32 error (torch_err.* in the
 * fixture: six runs, five of them from weights one ulp away). */
#define TORCH_ERROR_FACTOR 4.0

/* Worst errors against the float64 reference, dtrain's and PyTorch float32's. */
typedef struct worst {
    double dtrain[Q_COUNT], torch[Q_COUNT];
} worst;

/* Compares n values with the exact reference, relative to scale: the error must be within the
 * quantity's tolerance or TORCH_ERROR_FACTOR times PyTorch's float32 error ("torch_err." + key
 * in the fixture); a NaN counts as an infinite error. Records the worst errors; returns
 * dtrain's. */
static double compare(const fixture *f, worst *w, quantity q, const char *key, const double *got,
                      const double *want, size_t n, double scale) {
    double *torch_err = fixture_doubles(f, "torch_err.", key, 1);
    double torch = torch_err ? torch_err[0] : 0;
    free(torch_err);
    double err = 0;
    size_t at = 0;
    if (scale <= 0) scale = 1e-30;
    for (size_t i = 0; i < n; i++) {
        double e = fabs(got[i] - want[i]) / scale;
        if (isnan(e)) e = INFINITY;
        if (e > err) {
            err = e;
            at = i;
        }
    }
    double tol = backend_tolerance_factor * fmax(quantity_tolerance[q], TORCH_ERROR_FACTOR * torch);
    CHECK_MSG(err <= tol,
              "%s %s: element %zu is %.9g, exact %.9g (error %.3g of scale %.3g; tolerance %.3g, "
              "PyTorch float32's error %.3g)",
              quantity_names[q], key, at, got[at], want[at], err, scale, tol, torch);
    if (getenv("DTRAIN_REFERENCE_VERBOSE"))
        printf("    %-50s dtrain %.3g  PyTorch float32 %.3g\n", key, err, torch);
    if (err > w->dtrain[q]) w->dtrain[q] = err;
    if (torch > w->torch[q]) w->torch[q] = torch;
    return err;
}

/* ---- the training cases --------------------------------------------------------------------- */

typedef struct run {
    dt_backend be;
    dt_model *model;
    float *params, *stats, *grads;
    uint8_t *pixels;
    int32_t *labels;
    float *weights;
    int32_t *pred;
    dt_model_ema ema; /* the fixture's ema_decay: the weights' moving average, updated per step */
} run;

static int run_create(const fixture *f, run *r) {
    memset(r, 0, sizeof *r);
    dt_error err = {{0}, 0};
    r->be = dt_test_backend_open(backend_argc, backend_argv, 0);
    double atol_unused = 1.0;
    backend_tolerance_factor = 1.0;
    dt_test_tolerance(&r->be, 0, "model", &backend_tolerance_factor, &atol_unused);
    dt_model_options opt = {
        .arch = f->arch, .batch = f->batch, .image_size = f->image_size, .n_classes = f->classes};
    if (dt_model_create(&r->be, &opt, &r->model, &err)) {
        CHECK_MSG(0, "%s", err.message);
        return -1;
    }
    size_t np = dt_model_param_count(r->model), ns = dt_model_stats_count(r->model);
    size_t npix = (size_t)f->batch * f->image_size * f->image_size * 3;
    r->params = malloc(np * sizeof *r->params);
    r->grads = malloc(np * sizeof *r->grads);
    r->stats = malloc(ns * sizeof *r->stats);
    r->pixels = malloc(npix);
    r->labels = malloc((size_t)f->batch * sizeof *r->labels);
    r->pred = malloc((size_t)f->batch * sizeof *r->pred);
    r->weights = malloc((size_t)f->batch * sizeof *r->weights);
    if (!r->params || !r->grads || !r->stats || !r->pixels || !r->labels || !r->pred ||
        !r->weights) {
        CHECK_MSG(0, "out of memory");
        return -1;
    }
    for (int i = 0; i < f->batch; i++) r->weights[i] = 1.0f;
    seeded_input(f->seed, f->batch, f->image_size, f->classes, r->pixels, r->labels);
    return 0;
}

static void run_destroy(run *r) {
    dt_model_ema_free(&r->ema);
    if (r->model) dt_model_destroy(r->model);
    if (r->be.ops) dt_backend_free(&r->be);
    free(r->params);
    free(r->grads);
    free(r->stats);
    free(r->pixels);
    free(r->labels);
    free(r->pred);
    free(r->weights);
}

/* The generated input equals the one PyTorch used (first pixels, all labels). */
static void check_input(const fixture *f, const run *r) {
    const dt_st_tensor *head = dt_safetensors_find(&f->st, "input.pixels_head");
    CHECK(head && head->dtype == DT_ST_U8 && head->end - head->begin == 64);
    if (head && head->end - head->begin == 64)
        CHECK_MSG(memcmp(head->data, r->pixels, 64) == 0, "generated pixels differ");
    int64_t labels[64];
    if (f->batch <= 64 && fixture_i64(f, "input.labels", labels, (size_t)f->batch) == 0)
        for (int i = 0; i < f->batch; i++) CHECK_INT_EQ(r->labels[i], labels[i]);
}

/* Every parameter's sampled initial values are bit-identical to PyTorch's. */
static void check_initial_weights(const fixture *f, const run *r) {
    size_t n, mismatches = 0, compared = 0, tensors = 0;
    const dt_state_entry *e = dt_model_state(r->model, &n);
    for (size_t i = 0; i < n; i++) {
        if (e[i].role != DT_TENSOR_PARAMETER) continue;
        tensors++;
        int64_t index[SAMPLES];
        char key[160];
        snprintf(key, sizeof key, "init.%s", e[i].name);
        const dt_st_tensor *t = dt_safetensors_find(&f->st, key);
        CHECK_MSG(t && t->dtype == DT_ST_F32 && t->end - t->begin == SAMPLES * 4,
                  "fixture tensor '%s' missing or not F32[%d]", key, SAMPLES);
        if (!t || t->end - t->begin != SAMPLES * 4 ||
            sample_indices(f, e[i].name, e[i].count, index))
            continue;
        for (int k = 0; k < SAMPLES; k++, compared++)
            if (memcmp(&r->params[e[i].offset + (size_t)index[k]], t->data + 4 * k, 4))
                mismatches++;
    }
    CHECK_INT_EQ(compared, tensors * SAMPLES); /* resnet18: 62 parameter tensors */
    CHECK_MSG(mismatches == 0, "%zu sampled initial weights differ from PyTorch's bits",
              mismatches);
}

/* Gradient norms and samples of every parameter tensor after the first backward pass. */
static void check_gradients(const fixture *f, const run *r, worst *w) {
    size_t n;
    const dt_state_entry *e = dt_model_state(r->model, &n);
    for (size_t i = 0; i < n; i++) {
        if (e[i].role != DT_TENSOR_PARAMETER) continue;
        const float *g = r->grads + e[i].offset;
        double norm = 0;
        for (size_t k = 0; k < e[i].count; k++) norm += (double)g[k] * g[k];
        norm = sqrt(norm);
        char key[160];
        int64_t index[SAMPLES];
        double *want_norm = fixture_doubles(f, "grad_norm.", e[i].name, 1);
        double *want = fixture_doubles(f, "grad.", e[i].name, SAMPLES);
        if (want_norm && want && sample_indices(f, e[i].name, e[i].count, index) == 0) {
            snprintf(key, sizeof key, "grad_norm.%s", e[i].name);
            compare(f, w, Q_GRAD_NORM, key, &norm, want_norm, 1, want_norm[0]);
            double got[SAMPLES];
            for (int k = 0; k < SAMPLES; k++) got[k] = g[index[k]];
            /* scale: the larger of the sample's largest value and the tensor's RMS */
            double scale =
                fmax(test_max_abs(want, SAMPLES), want_norm[0] / sqrt((double)e[i].count));
            snprintf(key, sizeof key, "grad.%s", e[i].name);
            compare(f, w, Q_GRAD, key, got, want, SAMPLES, scale);
        }
        free(want_norm);
        free(want);
    }
}

/* Parameters (and their change) and running statistics after the SGD steps, at the sampled
 * indices. initial: the parameters before the steps. */
static void check_state_after(const fixture *f, const run *r, const float *initial, worst *w) {
    size_t n;
    const dt_state_entry *e = dt_model_state(r->model, &n);
    for (size_t i = 0; i < n; i++) {
        if (e[i].role == DT_TENSOR_BATCHES_TRACKED) continue;
        int is_param = e[i].role == DT_TENSOR_PARAMETER;
        const float *v = (is_param ? r->params : r->stats) + e[i].offset;
        double *want = fixture_doubles(f, "after.", e[i].name, SAMPLES);
        double *want_delta = is_param ? fixture_doubles(f, "delta.", e[i].name, SAMPLES) : NULL;
        int64_t index[SAMPLES];
        char key[160];
        if (want && sample_indices(f, e[i].name, e[i].count, index) == 0) {
            double got[SAMPLES], delta[SAMPLES];
            for (int k = 0; k < SAMPLES; k++) got[k] = v[index[k]];
            snprintf(key, sizeof key, "after.%s", e[i].name);
            compare(f, w, is_param ? Q_PARAMS : Q_STATS, key, got, want, SAMPLES,
                    test_max_abs(want, SAMPLES));
            if (want_delta) {
                for (int k = 0; k < SAMPLES; k++)
                    delta[k] = got[k] - (double)initial[e[i].offset + (size_t)index[k]];
                snprintf(key, sizeof key, "delta.%s", e[i].name);
                compare(f, w, Q_UPDATES, key, delta, want_delta, SAMPLES,
                        test_max_abs(want_delta, SAMPLES));
            }
        }
        free(want);
        free(want_delta);
    }
}

/* The weights' moving average after the steps (timm's ModelEmaV2 in the fixture): every sampled
 * value, of parameters and running statistics, and the parameters' change from their initial
 * values; num_batches_tracked copied from the model. */
static void check_ema_after(const fixture *f, run *r, const float *initial, worst *w) {
    dt_error err = {{0}, 0};
    size_t n, np = dt_model_param_count(r->model), ns = dt_model_stats_count(r->model);
    float *params = malloc(np * sizeof *params), *stats = malloc(ns * sizeof *stats);
    CHECK_MSG(params && stats && dt_model_ema_download(&r->ema, params, stats, &err) == 0,
              "EMA: %s", err.message[0] ? err.message : "out of memory");
    const dt_state_entry *e = dt_model_state(r->model, &n);
    for (size_t i = 0; params && stats && i < n; i++) {
        if (e[i].role == DT_TENSOR_BATCHES_TRACKED) continue;
        int is_param = e[i].role == DT_TENSOR_PARAMETER;
        const float *v = (is_param ? params : stats) + e[i].offset;
        double *want = fixture_doubles(f, "ema.", e[i].name, SAMPLES);
        double *want_delta = is_param ? fixture_doubles(f, "ema_delta.", e[i].name, SAMPLES) : NULL;
        int64_t index[SAMPLES];
        char key[160];
        CHECK_MSG(want && (!is_param || want_delta), "fixture: no EMA values of %s", e[i].name);
        if (want && sample_indices(f, e[i].name, e[i].count, index) == 0) {
            double got[SAMPLES], delta[SAMPLES];
            for (int k = 0; k < SAMPLES; k++) got[k] = v[index[k]];
            snprintf(key, sizeof key, "ema.%s", e[i].name);
            compare(f, w, is_param ? Q_PARAMS : Q_STATS, key, got, want, SAMPLES,
                    test_max_abs(want, SAMPLES));
            if (want_delta) {
                for (int k = 0; k < SAMPLES; k++)
                    delta[k] = got[k] - (double)initial[e[i].offset + (size_t)index[k]];
                snprintf(key, sizeof key, "ema_delta.%s", e[i].name);
                compare(f, w, Q_UPDATES, key, delta, want_delta, SAMPLES,
                        test_max_abs(want_delta, SAMPLES));
            }
        }
        free(want);
        free(want_delta);
    }
    int64_t tracked = -1;
    CHECK(fixture_i64(f, "ema_num_batches_tracked", &tracked, 1) == 0);
    CHECK_INT_EQ(r->ema.batches_tracked, tracked);
    free(params);
    free(stats);
}

static const char *metadata_or(const fixture *f, const char *key, const char *fallback) {
    const char *v = dt_safetensors_metadata_value(&f->st, key);
    return v ? v : fallback;
}

/* Host logits of the last forward compared with the fixture tensor `key`. */
static void check_logits(const fixture *f, run *r, quantity q, const char *key, worst *w) {
    dt_error err = {{0}, 0};
    size_t nlogits = (size_t)f->batch * f->classes;
    float *logits = malloc(nlogits * sizeof *logits);
    double *got = malloc(nlogits * sizeof *got);
    double *want = fixture_doubles(f, "", key, nlogits);
    int rc = !logits || !got || dt_model_logits(r->model, logits, &err);
    CHECK_MSG(rc == 0, "logits: %s", err.message);
    if (rc == 0 && want) {
        for (size_t i = 0; i < nlogits; i++) got[i] = logits[i];
        compare(f, w, q, key, got, want, nlogits, test_max_abs(want, nlogits));
    }
    free(logits);
    free(got);
    free(want);
}

/* torch.optim.SGD (dampening 0) on dtrain's own gradients (times grad_scale), in double: after
 * each backend->sgd_step every parameter must be where PyTorch's rule puts it (to float
 * rounding). The momentum buffer is kept here as PyTorch keeps it (float). Returns the worst
 * error relative to the largest parameter; a NaN counts as an infinite error. */
static double expected_sgd_error(const dt_sgd_params *p, const float *before, const float *grads,
                                 float *momentum, const float *after, size_t n) {
    double error = 0, largest = 0;
    for (size_t i = 0; i < n; i++) {
        double g = (double)p->grad_scale * grads[i] + (double)p->weight_decay * before[i];
        double buf = p->first_step ? g : (double)p->momentum * momentum[i] + g;
        momentum[i] = (float)buf;
        double step = p->nesterov ? g + (double)p->momentum * buf : buf;
        double expected = (double)before[i] - (double)p->lr * step;
        double e = fabs(after[i] - expected);
        if (!(e <= error)) error = isnan(e) ? INFINITY : e;
        largest = fmax(largest, fabs(expected));
    }
    return error / largest;
}

/* The optimizer of an optimizer case (make_fixtures.py's ADAMW and SGD_CLIP), as the trainer's
 * config keys. */
typedef struct optimizer_rule {
    int adamw, no_weight_decay;
    double lr, momentum, weight_decay, beta1, beta2, eps, clip;
} optimizer_rule;

/* 1 when the fixture is an optimizer case (its metadata names optimizer options). */
static int optimizer_case(const fixture *f, optimizer_rule *u) {
    memset(u, 0, sizeof *u);
    const char *opt = metadata_or(f, "optimizer", "sgd");
    const char *betas = metadata_or(f, "betas", "0.9,0.999");
    u->adamw = strcmp(opt, "adamw") == 0;
    u->no_weight_decay = strcmp(metadata_or(f, "no_weight_decay", "none"), "norm_and_bias") == 0;
    u->lr = atof(metadata_or(f, "lr", "0"));
    u->momentum = atof(metadata_or(f, "momentum", "0"));
    u->weight_decay = atof(metadata_or(f, "weight_decay", "0"));
    u->eps = atof(metadata_or(f, "eps", "1e-8"));
    u->clip = atof(metadata_or(f, "clip_grad_norm", "0"));
    CHECK(sscanf(betas, "%lf,%lf", &u->beta1, &u->beta2) == 2);
    return u->adamw || u->no_weight_decay || u->clip > 0;
}

/* The update rule of torch.optim.SGD / AdamW with timm's exclusion and clip_grad_norm_, in
 * double, on dtrain's own gradients of step `step` (from 0): every parameter must be where it
 * puts it (to float rounding). The optimizer state is kept here as PyTorch keeps it (float).
 * Returns the worst error relative to the largest parameter (NaN: infinite); *norm: the
 * gradients' total norm. */
static double expected_rule_error(const optimizer_rule *u, const dt_model *m, int step,
                                  const float *before, const float *grads, float *state1,
                                  float *state2, const float *after, double *norm) {
    size_t n;
    const dt_state_entry *e = dt_model_state(m, &n);
    double squares = 0, error = 0, largest = 0;
    for (size_t i = 0; i < dt_model_param_count(m); i++) squares += (double)grads[i] * grads[i];
    *norm = sqrt(squares);
    double coef = u->clip > 0 ? fmin(1.0, u->clip / (*norm + 1e-6)) : 1.0;
    double t = step + 1, bias1 = 1 - pow(u->beta1, t), bias2 = 1 - pow(u->beta2, t);
    for (size_t k = 0; k < n; k++) {
        if (e[k].role != DT_TENSOR_PARAMETER) continue;
        double wd = u->no_weight_decay && e[k].ndim <= 1 ? 0.0 : u->weight_decay;
        for (size_t j = 0; j < e[k].count; j++) {
            size_t i = e[k].offset + j;
            double g = coef * grads[i], expected;
            if (u->adamw) {
                double m1 = u->beta1 * state1[i] + (1 - u->beta1) * g;
                double m2 = u->beta2 * state2[i] + (1 - u->beta2) * g * g;
                state1[i] = (float)m1;
                state2[i] = (float)m2;
                expected = before[i] * (1 - u->lr * wd) -
                           u->lr / bias1 * m1 / (sqrt(m2) / sqrt(bias2) + u->eps);
            } else {
                g += wd * before[i];
                double buf = step == 0 ? g : u->momentum * state1[i] + g;
                state1[i] = (float)buf;
                expected = before[i] - u->lr * buf;
            }
            double d = fabs(after[i] - expected);
            if (!(d <= error)) error = isnan(d) ? INFINITY : d;
            largest = fmax(largest, fabs(expected));
        }
    }
    return error / largest;
}

/* The steps of an optimizer case through the trainer's optimizer step (src/nn/optimizer.c)
 * with the config keys set as the fixture says; checks each step against expected_rule_error and
 * the pre-clip norm against clip_grad_norm_'s total norm. As train_steps otherwise. */
static int train_steps_optimizer(const fixture *f, run *r, const optimizer_rule *u, int steps,
                                 double *losses, worst *w, double *rule_error) {
    dt_error err = {{0}, 0};
    dt_model *m = r->model;
    size_t np = dt_model_param_count(m);
    dt_config cfg;
    dt_config_defaults(&cfg);
    cfg.train.optimizer = u->adamw ? DT_OPTIMIZER_ADAMW : DT_OPTIMIZER_SGD;
    cfg.train.momentum = u->momentum;
    cfg.train.weight_decay = u->weight_decay;
    cfg.train.betas[0] = (float)u->beta1;
    cfg.train.betas[1] = (float)u->beta2;
    cfg.train.eps = u->eps;
    cfg.train.no_weight_decay =
        u->no_weight_decay ? DT_NO_WEIGHT_DECAY_NORM_AND_BIAS : DT_NO_WEIGHT_DECAY_NONE;
    cfg.train.clip_grad_norm = u->clip;
    dt_optimizer opt;
    float *state1 = calloc(np, sizeof *state1), *state2 = calloc(np, sizeof *state2);
    float *after = malloc(np * sizeof *after);
    double *want_norms = u->clip > 0 ? fixture_doubles(f, "", "total_norm", (size_t)steps) : NULL;
    double *torch_norms =
        u->clip > 0 ? fixture_doubles(f, "torch_err.", "total_norm", (size_t)steps) : NULL;
    int rc = -1, have_opt = 0;
    if (!state1 || !state2 || !after || (u->clip > 0 && (!want_norms || !torch_norms))) goto done;
    if (dt_optimizer_init(&opt, &cfg, m, &err)) goto done;
    have_opt = 1;
    for (int step = 0; step < steps; step++) {
        double stats[DT_LOSS_STATS], norm, want_norm;
        if (dt_backend_loss_stats_read(&r->be, stats, 1, &err) ||
            dt_model_forward(m, r->pixels, f->mean, f->std, 1, &err) ||
            dt_model_loss(m, r->labels, r->weights, 1.0f / (float)f->batch, r->pred, &err) ||
            dt_model_backward(m, 0, 0, &err) || dt_backend_loss_stats_read(&r->be, stats, 1, &err))
            goto done;
        losses[step] = stats[DT_LOSS_SUM] / f->batch;
        if (dt_model_param_buffer_download(m, r->grads, dt_model_grads(m), &err)) goto done;
        if (step == 0) {
            check_logits(f, r, Q_LOGITS, "logits", w);
            check_gradients(f, r, w);
        }
        if (dt_optimizer_step(&opt, step, u->lr, 1.0f, dt_model_grads(m), &norm, &err) ||
            dt_model_param_buffer_download(m, after, dt_model_params(m), &err))
            goto done;
        double e =
            expected_rule_error(u, m, step, r->params, r->grads, state1, state2, after, &want_norm);
        CHECK_MSG(e <= 1e-6, "%s step %d: parameters off the optimizer's rule by %.3g",
                  u->adamw ? "AdamW" : "SGD", step, e);
        *rule_error = fmax(*rule_error, e);
        if (u->clip > 0) {
            CHECK_MSG(fabs(norm - want_norm) <= 1e-6 * want_norm,
                      "step %d: pre-clip norm %.9g, of dtrain's gradients %.9g", step, norm,
                      want_norm);
            double err_norm = fabs(norm - want_norms[step]) / want_norms[step];
            double tol = backend_tolerance_factor * fmax(quantity_tolerance[Q_GRAD_NORM],
                                                         TORCH_ERROR_FACTOR * torch_norms[step]);
            CHECK_MSG(err_norm <= tol && norm > u->clip,
                      "step %d: pre-clip norm %.9g, clip_grad_norm_'s %.9g (error %.3g, "
                      "tolerance %.3g; max_norm %g)",
                      step, norm, want_norms[step], err_norm, tol, u->clip);
            w->dtrain[Q_GRAD_NORM] = fmax(w->dtrain[Q_GRAD_NORM], err_norm);
            w->torch[Q_GRAD_NORM] = fmax(w->torch[Q_GRAD_NORM], torch_norms[step]);
        } else {
            CHECK(norm == -1.0);
        }
        memcpy(r->params, after, np * sizeof *after);
    }
    rc = 0;
done:
    if (rc) CHECK_MSG(0, "optimizer steps: %s", err.message[0] ? err.message : "out of memory");
    if (have_opt) dt_optimizer_free(&opt);
    dt_config_free(&cfg);
    free(state1), free(state2), free(after), free(want_norms), free(torch_norms);
    return rc;
}

/* Forward (train mode), loss, backward and SGD, `steps` times on the same batch. r->params holds
 * the initial parameters on entry, the final ones on return. */
static int train_steps(const fixture *f, run *r, int steps, double *losses, worst *w,
                       double *sgd_error) {
    dt_error err = {{0}, 0};
    dt_model *m = r->model;
    size_t np = dt_model_param_count(m);
    optimizer_rule rule;
    if (optimizer_case(f, &rule))
        return train_steps_optimizer(f, r, &rule, steps, losses, w, sgd_error);
    dt_sgd_params sgd = {.grad_scale = 1.0f,
                         .lr = (float)atof(metadata_or(f, "lr", "0")),
                         .momentum = (float)atof(metadata_or(f, "momentum", "0")),
                         .weight_decay = (float)atof(metadata_or(f, "weight_decay", "0"))};
    CHECK(sgd.lr > 0 && sgd.momentum > 0 && sgd.weight_decay > 0);
    float *momentum = calloc(np, sizeof *momentum), *after = malloc(np * sizeof *after);
    if (!momentum || !after) goto fail;
    for (int step = 0; step < steps; step++) {
        double stats[DT_LOSS_STATS];
        if (dt_backend_loss_stats_read(&r->be, stats, 1, &err) ||
            dt_model_forward(m, r->pixels, f->mean, f->std, 1, &err) ||
            dt_model_loss(m, r->labels, r->weights, 1.0f / (float)f->batch, r->pred, &err) ||
            dt_model_backward(m, 0, 0, &err) || dt_backend_loss_stats_read(&r->be, stats, 1, &err))
            goto fail;
        losses[step] = stats[DT_LOSS_SUM] / f->batch;
        if (dt_model_param_buffer_download(m, r->grads, dt_model_grads(m), &err)) goto fail;
        if (step == 0) {
            check_logits(f, r, Q_LOGITS, "logits", w);
            check_gradients(f, r, w);
        }
        sgd.first_step = step == 0;
        if (dt_backend_sgd_step(&r->be, &sgd, dt_model_params(m), dt_model_grads(m),
                                dt_model_momentum(m), np, &err) ||
            dt_model_param_buffer_download(m, after, dt_model_params(m), &err))
            goto fail;
        double e = expected_sgd_error(&sgd, r->params, r->grads, momentum, after, np);
        CHECK_MSG(e <= 1e-6, "SGD step %d: parameters off torch.optim.SGD's rule by %.3g", step, e);
        *sgd_error = fmax(*sgd_error, e);
        memcpy(r->params, after, np * sizeof *after);
        if (dt_model_ema_update(&r->ema, 0, &err)) goto fail; /* nothing without an average */
    }
    free(momentum);
    free(after);
    return 0;
fail:
    CHECK_MSG(0, "training steps: %s", err.message[0] ? err.message : "out of memory");
    free(momentum);
    free(after);
    return -1;
}

/* Writes DIR/model.safetensors through the real export and DIR/logits.safetensors (dtrain's
 * eval-mode logits of the trained model) for make_fixtures.py --check-export. */
static int export_for_torch(const fixture *f, run *r, const char *dir) {
    dt_error err = {{0}, 0};
    char path[1024], *names[64], labels[64][8];
    for (int i = 0; i < f->classes && i < 64; i++) {
        snprintf(labels[i], sizeof labels[i], "c%d", i);
        names[i] = labels[i];
    }
    size_t nlogits = (size_t)f->batch * f->classes;
    float *logits = malloc(nlogits * sizeof *logits);
    dt_st_writer *wr = dt_st_writer_create();
    char text[32];
    int64_t shape[2] = {f->batch, f->classes};
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    int rc = !logits || !wr || f->classes > 64 || dt_make_directories(dir, &err) ||
             dt_model_save_safetensors(r->model, path, names, f->classes, 0, NULL, &err) ||
             dt_model_forward(r->model, r->pixels, f->mean, f->std, 0, &err) ||
             dt_model_logits(r->model, logits, &err) ||
             dt_st_writer_add(wr, "eval_logits", DT_ST_F32, 2, shape, logits, &err);
    const char *keys[] = {"seed", "batch", "image_size", "classes"};
    for (int i = 0; i < 4 && !rc; i++)
        rc = dt_st_writer_add_metadata(wr, keys[i], metadata_or(f, keys[i], "0"), &err);
    if (!rc) rc = dt_st_writer_add_metadata(wr, "arch", f->arch, &err);
    snprintf(text, sizeof text, "%lld", (long long)dt_model_batches_tracked(r->model));
    snprintf(path, sizeof path, "%s/logits.safetensors", dir);
    if (!rc)
        rc = dt_st_writer_add_metadata(wr, "batches_tracked", text, &err) ||
             dt_st_writer_write(wr, path, &err);
    if (rc)
        fprintf(stderr, "export: %s\n", err.message);
    else
        printf("wrote %s/model.safetensors and %s\n", dir, path);
    if (wr) dt_st_writer_destroy(wr);
    free(logits);
    return rc ? 1 : 0;
}

static void report(const char *name, const worst *w, const double *losses, int steps,
                   double sgd_error) {
    printf("%s: worst error relative to scale, dtrain (PyTorch float32) against float64:\n", name);
    for (int q = 0; q < Q_COUNT; q++)
        printf("  %-20s %.2g (%.2g)\n", quantity_names[q], w->dtrain[q], w->torch[q]);
    printf("  losses:");
    for (int i = 0; i < steps; i++) printf(" %.6f", losses[i]);
    printf("\n  optimizer steps against torch.optim's rule on the same gradients: %.2g\n",
           sgd_error);
}

/* One training case; with export_dir, exports the model after the steps instead of ending. */
static int training_case(const char *name, const char *export_dir) {
    fixture f;
    run r;
    worst w;
    memset(&r, 0, sizeof r);
    memset(&w, 0, sizeof w);
    int rc = 1;
    double losses[8] = {0};
    float *initial = NULL;
    if (fixture_open(name, &f)) goto done;
    int steps = atoi(metadata_or(&f, "steps", "0"));
    CHECK(steps >= 1 && steps <= 8);
    if (steps < 1 || steps > 8 || run_create(&f, &r)) goto done;
    check_input(&f, &r);
    seeded_state(r.model, f.seed, 0, r.params, r.stats);
    size_t np = dt_model_param_count(r.model);
    if (!(initial = malloc(np * sizeof *initial))) goto done;
    memcpy(initial, r.params, np * sizeof *initial);
    dt_error err = {{0}, 0};
    CHECK(dt_model_upload_state(r.model, r.params, r.stats, &err) == 0);
    dt_model_set_batches_tracked(r.model, 0);
    double ema_decay = atof(metadata_or(&f, "ema_decay", "0"));
    if (ema_decay > 0)
        CHECK_MSG(dt_model_ema_init(&r.ema, r.model, ema_decay, &err) == 0, "%s", err.message);
    check_initial_weights(&f, &r);
    double sgd_error = 0;
    if (train_steps(&f, &r, steps, losses, &w, &sgd_error)) goto done;
    double *want_losses = fixture_doubles(&f, "", "loss", (size_t)steps);
    double *torch_losses = fixture_doubles(&f, "torch_err.", "loss", (size_t)steps);
    for (int i = 0; i < steps && want_losses && torch_losses; i++) {
        double err_i = fabs(losses[i] - want_losses[i]) / fabs(want_losses[i]);
        double tol = backend_tolerance_factor *
                     fmax(quantity_tolerance[Q_LOSS], TORCH_ERROR_FACTOR * torch_losses[i]);
        CHECK_MSG(err_i <= tol, "loss at step %d: %.9g, exact %.9g (error %.3g, tolerance %.3g)", i,
                  losses[i], want_losses[i], err_i, tol);
        w.dtrain[Q_LOSS] = fmax(w.dtrain[Q_LOSS], err_i);
        w.torch[Q_LOSS] = fmax(w.torch[Q_LOSS], torch_losses[i]);
    }
    free(want_losses);
    free(torch_losses);
    CHECK(dt_model_download_state(r.model, r.params, r.stats, &err) == 0);
    check_state_after(&f, &r, initial, &w);
    if (ema_decay > 0) check_ema_after(&f, &r, initial, &w);
    int64_t tracked = -1;
    if (fixture_i64(&f, "num_batches_tracked", &tracked, 1) == 0)
        CHECK_INT_EQ(dt_model_batches_tracked(r.model), tracked);
    if (export_dir) {
        rc = export_for_torch(&f, &r, export_dir);
        goto done;
    }
    CHECK(dt_model_forward(r.model, r.pixels, f.mean, f.std, 0, &err) == 0);
    check_logits(&f, &r, Q_EVAL_LOGITS, "eval_logits", &w);
    report(name, &w, losses, steps, sgd_error);
    rc = 0;
done:
    free(initial);
    run_destroy(&r);
    fixture_close(&f);
    return rc;
}

/* ---- the loading round trip ----------------------------------------------------------------- */

/* Writes torchvision's state dict (names, dtypes and shapes from the fixture's "state_dict"
 * metadata, in torchvision's order) with the seeded values to path. */
static int write_torchvision_state_dict(const fixture *f, const char *path, int64_t tracked,
                                        size_t *n_written) {
    const char *layout = dt_safetensors_metadata_value(&f->st, "state_dict");
    CHECK(layout != NULL);
    if (!layout) return -1;
    dt_st_writer *w = dt_st_writer_create();
    dt_error err = {{0}, 0};
    size_t index = 0;
    int rc = 0;
    float *values = malloc(512 * 512 * 9 * sizeof *values);
    for (const char *line = layout; *line && rc == 0; index++) {
        const char *end = strchr(line, '\n');
        size_t len = end ? (size_t)(end - line) : strlen(line);
        char text[256], name[160], dtype[16], dims[64] = "";
        snprintf(text, sizeof text, "%.*s", (int)len, line);
        int fields = sscanf(text, "%159s %15s %63s", name, dtype, dims);
        int64_t shape[4] = {0};
        int ndim = 0;
        size_t count = 1;
        for (char *p = dims; fields == 3 && *p && ndim < 4; ndim++) {
            shape[ndim] = strtoll(p, &p, 10);
            count *= (size_t)shape[ndim];
            if (*p == ',') p++;
        }
        if (fields < 2 || count > 512 * 512 * 9) {
            CHECK_MSG(0, "bad state_dict line '%s'", text);
            rc = -1;
        } else if (strcmp(dtype, "I64") == 0) {
            rc = dt_st_writer_add(w, name, DT_ST_I64, ndim, shape, &tracked, &err);
        } else {
            seeded_tensor(name, shape, ndim, count, f->seed, index, 1, f->fc_in, values);
            rc = dt_st_writer_add(w, name, DT_ST_F32, ndim, shape, values, &err);
        }
        line = end ? end + 1 : line + len;
    }
    if (rc == 0) rc = dt_st_writer_write(w, path, &err);
    CHECK_MSG(rc == 0, "writing %s: %s", path, err.message);
    dt_st_writer_destroy(w);
    free(values);
    *n_written = index;
    return rc;
}

static void test_load_torchvision_state_dict(const char *name) {
    fixture f;
    if (fixture_open(name, &f)) return;
    char dir[512], path[600];
    dt_error err = {{0}, 0};
    if (dt_testgen_make_temp_dir("dtrain-reference", dir, sizeof dir, &err)) {
        CHECK_MSG(0, "%s", err.message);
        fixture_close(&f);
        return;
    }
    snprintf(path, sizeof path, "%s/torchvision_%s.safetensors", dir, f.arch);
    int64_t tracked = atoll(metadata_or(&f, "batches_tracked", "7"));
    size_t n_written = 0;
    run r;
    memset(&r, 0, sizeof r);
    if (write_torchvision_state_dict(&f, path, tracked, &n_written) == 0 &&
        run_create(&f, &r) == 0) {
        size_t n;
        const dt_state_entry *e = dt_model_state(r.model, &n);
        CHECK_INT_EQ(n_written, n);
        /* torchvision's order is dtrain's order */
        const char *layout = dt_safetensors_metadata_value(&f.st, "state_dict");
        for (size_t i = 0; i < n && layout; i++) {
            CHECK_MSG(strncmp(layout, e[i].name, strlen(e[i].name)) == 0 &&
                          layout[strlen(e[i].name)] == ' ',
                      "state dict entry %zu: dtrain has '%s'", i, e[i].name);
            layout = strchr(layout, '\n');
            if (layout) layout++;
        }
        CHECK(dt_model_init_weights(r.model, 99, &err) == 0); /* the file must replace these */
        int replaced = -1;
        int rc = dt_model_load_safetensors(r.model, path, 0, &replaced, &err);
        CHECK_MSG(rc == 0, "%s", err.message);
        CHECK_INT_EQ(replaced, 0);
        CHECK_INT_EQ(dt_model_batches_tracked(r.model), tracked);
        worst w;
        memset(&w, 0, sizeof w);
        if (rc == 0 && dt_model_forward(r.model, r.pixels, f.mean, f.std, 0, &err) == 0)
            check_logits(&f, &r, Q_EVAL_LOGITS, "eval_logits", &w);
        printf("%s: torchvision's state dict loaded (%zu tensors); eval logits: dtrain %.2g "
               "(PyTorch float32 %.2g) against float64\n",
               name, n, w.dtrain[Q_EVAL_LOGITS], w.torch[Q_EVAL_LOGITS]);
    }
    run_destroy(&r);
    remove(path);
    dt_testgen_remove_tree(dir);
    fixture_close(&f);
}

/* `dtrain predict` on a torchvision state dict without metadata (the loading case's seeded
 * weights), on the fixture's two input images written as lossless 64x64 PNGs: the probabilities
 * must be the softmax of PyTorch's float64 eval logits within 1e-4; without --classes the model's
 * missing class names are a usage error. */
static void test_predict_command(const char *dtrain_bin) {
    fixture f;
    if (fixture_open("resnet18_eval_s64", &f)) return;
    char dir[512], model[600], cmd[4096], path[700];
    dt_error err = {{0}, 0};
    if (dt_testgen_make_temp_dir("dtrain-predict", dir, sizeof dir, &err)) {
        CHECK_MSG(0, "%s", err.message);
        fixture_close(&f);
        return;
    }
    snprintf(model, sizeof model, "%s/torchvision_resnet18.safetensors", dir);
    size_t n_written = 0;
    run r;
    memset(&r, 0, sizeof r);
    double *want = fixture_doubles(&f, "", "eval_logits", (size_t)f.batch * f.classes);
    size_t side = (size_t)f.image_size, per_image = side * side * 3;
    uint16_t *samples = malloc(per_image * sizeof *samples);
    if (want && samples && write_torchvision_state_dict(&f, model, 7, &n_written) == 0 &&
        run_create(&f, &r) == 0) {
        for (int b = 0; b < f.batch; b++) {
            for (size_t i = 0; i < per_image; i++) samples[i] = r.pixels[b * per_image + i];
            dt_testgen_png png = {.width = f.image_size,
                                  .height = f.image_size,
                                  .color_type = 2,
                                  .bit_depth = 8,
                                  .samples = samples};
            snprintf(path, sizeof path, "%s/img%d.png", dir, b);
            CHECK_MSG(dt_testgen_write_png(path, &png, &err) == 0, "%s", err.message);
        }
        snprintf(path, sizeof path, "%s/classes.txt", dir);
        CHECK(dt_test_write_text(path, "c0\nc1\nc2\nc3\nc4\nc5\nc6\nc7\nc8\nc9\n") == 0);
        snprintf(cmd, sizeof cmd,
                 "%s predict %s %s/img0.png %s/img1.png --image-size 64 --mean 0,0,0 "
                 "--std 1,1,1 > %s/nonames.txt 2>&1",
                 dtrain_bin, model, dir, dir, dir);
        CHECK_INT_EQ(dt_test_run(cmd), 2);
        snprintf(path, sizeof path, "%s/nonames.txt", dir);
        char *text = dt_test_read_text(path);
        CHECK(text && strstr(text, "stores no class names: give --classes"));
        free(text);
        snprintf(cmd, sizeof cmd,
                 "%s predict %s %s/img0.png %s/img1.png --classes %s/classes.txt --json "
                 "--top-k 10 --batch-size 2 --image-size %d --resize squash "
                 "--mean %.9g,%.9g,%.9g --std %.9g,%.9g,%.9g > %s/out.jsonl",
                 dtrain_bin, model, dir, dir, dir, f.image_size, f.mean[0], f.mean[1], f.mean[2],
                 f.std[0], f.std[1], f.std[2], dir);
        CHECK_INT_EQ(dt_test_run(cmd), 0);
        snprintf(path, sizeof path, "%s/out.jsonl", dir);
        text = dt_test_read_text(path);
        CHECK_INT_EQ(text ? dt_test_count(text, "\"p\":") : 0, 2 * f.classes);
        const char *line = text;
        double largest = 0;
        int compared = 0;
        for (int b = 0; b < f.batch && line; b++) {
            const double *z = want + (size_t)b * f.classes;
            double max = z[0], sum = 0;
            for (int c = 1; c < f.classes; c++) max = z[c] > max ? z[c] : max;
            for (int c = 0; c < f.classes; c++) sum += exp(z[c] - max);
            const char *end = strchr(line, '\n');
            for (const char *p = strstr(line, "\"index\":"); p && (!end || p < end);
                 p = strstr(p + 1, "\"index\":")) {
                int index = atoi(p + 8);
                const char *pv = strstr(p, "\"p\":");
                if (!pv || index < 0 || index >= f.classes) break;
                double diff = fabs(atof(pv + 4) - exp(z[index] - max) / sum);
                largest = diff > largest ? diff : largest;
                compared++;
            }
            line = end ? end + 1 : NULL;
        }
        CHECK_INT_EQ(compared, 2 * f.classes);
        CHECK_MSG(largest <= 1e-4, "predict probabilities differ from PyTorch's by %.3g", largest);
        printf("predict on a torchvision state dict: probabilities within %.2g of PyTorch's\n",
               largest);
        free(text);
    }
    free(samples);
    free(want);
    run_destroy(&r);
    if (!dt_test_failed) dt_testgen_remove_tree(dir);
    fixture_close(&f);
}

int main(int argc, char **argv) {
    /* an optional backend name first */
    backend_argv = argv;
    if (argc > 1 && strncmp(argv[1], "--", 2) != 0) {
        backend_argc = 2;
        argc--, argv++;
    }
    if ((argc == 3 || argc == 4) && strcmp(argv[1], "--export") == 0)
        return training_case(argc == 4 ? argv[3] : "resnet18_b16_s64", argv[2]);
    if (argc == 3 && strcmp(argv[1], "--predict") == 0) { /* the predict check alone */
        test_predict_command(argv[2]);
        return dt_test_summary("reference predict");
    }
    if (argc != 1) {
        fprintf(stderr,
                "usage: test_reference [BACKEND] [--export DIR [FIXTURE] | --predict DTRAIN]\n");
        return 2;
    }
    const char *training[] = {
        "resnet18_b16_s64",    "resnet18_b2_s224",      "resnet34_b4_s64",
        "resnet50_b4_s64",     "resnet101_b2_s64",      "resnet152_b2_s64",
        "resnet18_ema_b4_s64", "resnet18_b4_s64_adamw", "resnet18_b4_s64_clip"};
    for (size_t i = 0; i < sizeof training / sizeof *training; i++)
        training_case(training[i], NULL);
    const char *loading[] = {"resnet18_eval_s64", "resnet34_eval_s64", "resnet50_eval_s64",
                             "resnet101_eval_s64", "resnet152_eval_s64"};
    for (size_t i = 0; i < sizeof loading / sizeof *loading; i++)
        test_load_torchvision_state_dict(loading[i]);
    if (getenv("DTRAIN_BIN")) test_predict_command(getenv("DTRAIN_BIN"));
    return dt_test_summary("reference");
}
