/* `dtrain eval CONFIG.yaml [--model FILE] [--data DIR] [--out DIR] [overrides]`: evaluates a model
 * on a whole folder (--data, or data.val_fraction=1: the "test" split), on data.val_root, or on
 * the config's held-out split, prints the classification report and writes the results files
 * into a folder of their own (default output.dir/eval/<data folder name>/), never over a training
 * run's files. With several ranks each evaluates a contiguous share; rank 0 gathers every
 * sample's logits in split order, so the numbers equal one rank's. */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli/cli.h"
#include "dtrain/classify.h"
#include "dtrain/comm.h"
#include "dtrain/data.h"
#include "dtrain/log.h"
#include "dtrain/model.h"
#include "dtrain/platform.h"
#include "dtrain/results.h"
#include "dtrain/safetensors.h"
#include "dtrain/text_escape.h"
#include "train/session.h"

typedef struct eval_state {
    const dt_config *cfg;
    dt_comm *comm;
    const char *model_path;
    const char *data_option; /* --data DIR, or NULL */
    const char *out_option;  /* --out DIR, or NULL */
    const char *data_path;   /* the folder evaluated */
    const char *split_name;  /* "test", "validation" */
    char out_dir[4200];
    char model_hash[40]; /* the model's config_hash metadata, "" when absent */
    /* data, split, display names, threads, device, backend, model, loader: training's rules */
    dt_session session;
    dt_progress log; /* the start-up details of DTRAIN_VERBOSE, on stderr */
    uint32_t *all;   /* val_fraction = 1: every file */
    const uint32_t *indices;
    size_t n;
    double *gathered; /* n x (classes + 1): logits, then 1 where the sample decoded */
    double *bad;      /* per dataset file */
} eval_state;

/* A file a training run writes in output.dir: the evaluation's folder must hold none. */
static int holds_training_run(const char *dir) {
    static const char *const names[] = {"config.yaml",      "metrics.jsonl",   "model.safetensors",
                                        "best.safetensors", "ema.safetensors", "checkpoints",
                                        ".dtrain.lock"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        char path[4400];
        struct stat st;
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        if (lstat(path, &st) == 0) return 1;
    }
    return 0;
}

/* --out DIR, else output.dir/eval/<name of the evaluated folder>; refused when it holds a
 * training run's files. */
static int choose_out_dir(eval_state *s, dt_error *err) {
    if (s->out_option) {
        snprintf(s->out_dir, sizeof s->out_dir, "%s", s->out_option);
    } else {
        char resolved[PATH_MAX];
        const char *name = realpath(s->data_path, resolved) ? resolved : s->data_path;
        size_t len = strlen(name);
        while (len > 1 && name[len - 1] == '/') len--;
        const char *base = name + len;
        while (base > name && base[-1] != '/') base--;
        int base_len = (int)(name + len - base);
        if (base_len == 0) base = "data", base_len = 4; /* "/" */
        snprintf(s->out_dir, sizeof s->out_dir, "%s/eval/%.*s", s->cfg->output.dir, base_len, base);
    }
    if (holds_training_run(s->out_dir))
        return dt_fail_usage(err,
                             "%s holds a training run's files: dtrain eval writes into a folder "
                             "of its own (leave out --out for output.dir/eval/<data folder>/)",
                             s->out_dir);
    return 0;
}

/* The evaluated folder's classes, as display names, against the model's "classes" metadata
 * (written by training, one name per line): the same names in the same order, or an error. */
static int check_model_classes(const eval_state *s, const char *stored, dt_error *err) {
    char got[2048] = "";
    int k = s->session.ds.n_classes, same = 1;
    const char *p = stored;
    for (int i = 0; i < k; i++) {
        const char *name = dt_config_display_name(s->cfg, s->session.ds.class_names[i]);
        size_t len = strlen(name), used = strlen(got);
        snprintf(got + used, sizeof got - used, "%s%s", i ? ", " : "", name);
        same = same && p && strncmp(p, name, len) == 0 && (p[len] == '\n' || p[len] == '\0');
        p = p && p[len] == '\n' ? p + len + 1 : NULL;
        if (p && !*p) p = NULL;
    }
    if (same && !p) return 0;
    char want[2048];
    snprintf(want, sizeof want, "%s", stored);
    for (char *c = want; *c; c++)
        if (*c == '\n') *c = ',';
    /* names come from folders and model metadata: escaped before they reach a terminal */
    char got_shown[2048], want_shown[2048];
    return dt_fail_usage(err,
                         "%s: its class folders (%s) are not the classes of %s (%s): evaluate on "
                         "folders named as the training data's",
                         s->data_path, dt_escape_text(got, got_shown, sizeof got_shown),
                         s->model_path, dt_escape_text(want, want_shown, sizeof want_shown));
}

/* The model's config_hash metadata (the config it was trained with), when recorded, and its
 * classes against the evaluated folder's. */
static int read_model_metadata(eval_state *s, dt_error *err) {
    dt_safetensors st;
    if (dt_safetensors_read(s->model_path, &st, err)) {
        err->exit_code = DT_EXIT_USAGE;
        return -1;
    }
    const char *hash = dt_safetensors_metadata_value(&st, "config_hash");
    const char *classes = dt_safetensors_metadata_value(&st, "classes");
    snprintf(s->model_hash, sizeof s->model_hash, "%s", hash ? hash : "");
    int rc = classes ? check_model_classes(s, classes, err) : 0;
    dt_safetensors_free(&st);
    return rc;
}

static int prepare(eval_state *s, dt_error *err) {
    const dt_config *cfg = s->cfg;
    dt_session *ses = &s->session;
    dt_progress_init(&s->log, stderr, 1);
    dt_session_init(ses, s->comm, dt_progress_verbose() ? &s->log : NULL);
    /* training's device and thread rules; inference runs in fp32 */
    dt_session_request request = {.device = cfg->runtime.device,
                                  .precision = DT_PRECISION_FP32,
                                  .threads = cfg->runtime.threads,
                                  .workers = cfg->data.workers};
    if (dt_session_plan_threads(ses, &request, err)) return -1;
    int whole = s->data_option || cfg->data.val_fraction >= 1.0;
    s->data_path = s->data_option ? s->data_option : cfg->data.root;
    if (dt_session_open_data(ses, s->data_option ? "--data" : "data.root", s->data_path, err))
        return -1;
    if (whole) {
        if (!(s->all = malloc((ses->ds.n_files ? ses->ds.n_files : 1) * sizeof *s->all)))
            return dt_fail(err, "out of memory");
        for (size_t i = 0; i < ses->ds.n_files; i++) s->all[i] = (uint32_t)i;
        s->indices = s->all;
        s->n = ses->ds.n_files;
        s->split_name = "test";
    } else {
        /* data.val_root's folder, or the part held out of data.root */
        if (dt_session_split(ses, cfg, err)) return -1;
        if (cfg->data.val_root) s->data_path = cfg->data.val_root;
        s->indices = ses->split.val;
        s->n = ses->split.n_val;
        s->split_name = "validation";
    }
    if (s->comm->rank == 0 && choose_out_dir(s, err)) return -1;
    if (read_model_metadata(s, err)) return -1;
    int k = ses->ds.n_classes;
    if (dt_session_display_names(ses, cfg, 0, err) || dt_session_create_backend(ses, &request, err))
        return -1;
    dt_model_options mo = {.arch = cfg->model.arch,
                           .batch = cfg->train.batch_size,
                           .image_size = cfg->data.image_size,
                           .n_classes = k};
    if (dt_session_create_model(ses, &mo, err) ||
        dt_model_load_safetensors(ses->model, s->model_path, 0, NULL, err))
        return -1;
    dt_loader_options lo = {.batch_size = cfg->train.batch_size,
                            .image_size = cfg->data.image_size,
                            .resize = cfg->data.resize,
                            .augment = DT_AUGMENT_NONE,
                            .cache = cfg->data.cache,
                            .prefetch_batches = 3};
    if (dt_session_create_loader(ses, &lo, err)) return -1;
    s->gathered = calloc(s->n * (size_t)(k + 1) + 1, sizeof *s->gathered);
    s->bad = calloc(ses->ds.n_files + 1, sizeof *s->bad);
    if (!s->gathered || !s->bad) return dt_fail(err, "out of memory for %zu samples", s->n);
    return 0;
}

/* This rank's contiguous share [begin, end) of the evaluated samples: logits into gathered. */
static int evaluate_share(eval_state *s, dt_error *err) {
    size_t size = (size_t)s->comm->size, rank = (size_t)s->comm->rank;
    size_t begin = s->n * rank / size, end = s->n * (rank + 1) / size;
    int k = s->session.ds.n_classes, b = s->cfg->train.batch_size;
    float *logits = malloc((size_t)b * (size_t)k * sizeof *logits);
    if (!logits) return dt_fail(err, "out of memory");
    int rc = 0;
    size_t position = begin; /* the loader keeps the order of the indices it is given */
    if (end > begin)
        rc = dt_loader_start(s->session.loader, s->indices + begin, end - begin, 0, 0, err);
    while (!rc && end > begin) {
        const dt_batch *batch = NULL;
        if ((rc = dt_loader_next(s->session.loader, &batch, err)) || !batch) break;
        rc = dt_model_forward(s->session.model, batch->pixels, s->cfg->data.mean, s->cfg->data.std,
                              0, err) ||
             dt_model_logits(s->session.model, logits, err);
        for (int i = 0; !rc && i < b && position < end; i++, position++) {
            /* undecodable: named by the loader, not counted (its slot holds another image) */
            if (!batch->counts[i]) continue;
            if (batch->file_index[i] != s->indices[position]) {
                rc = dt_fail(err, "internal: evaluation batch out of order");
                break;
            }
            double *row = s->gathered + position * (size_t)(k + 1);
            for (int c = 0; c < k; c++) row[c] = logits[(size_t)i * (size_t)k + (size_t)c];
            row[k] = 1;
        }
        dt_loader_release(s->session.loader, batch);
    }
    free(logits);
    if (rc) return dt_error_prefix(err, "evaluation");
    const uint8_t *flags = dt_loader_bad_files(s->session.loader);
    for (size_t i = 0; i < s->session.ds.n_files; i++) s->bad[i] = flags[i];
    return 0;
}

static int report_on_root(eval_state *s, double seconds, dt_error *err) {
    int k = s->session.ds.n_classes;
    dt_predictions p;
    if (dt_predictions_init(&p, k, s->n, err)) return -1;
    float *logits = malloc((size_t)k * sizeof *logits);
    uint8_t *bad = calloc(s->session.ds.n_files + 1, 1);
    int rc = logits && bad ? 0 : dt_fail(err, "out of memory");
    size_t n_bad = 0;
    for (size_t i = 0; bad && i < s->session.ds.n_files; i++) n_bad += (bad[i] = s->bad[i] > 0);
    for (size_t i = 0; !rc && i < s->n; i++) {
        const double *row = s->gathered + i * (size_t)(k + 1);
        if (row[k] == 0) continue;
        for (int c = 0; c < k; c++) logits[c] = (float)row[c];
        rc = dt_predictions_add(&p, s->indices[i], s->session.ds.files[s->indices[i]].label, logits,
                                err);
    }
    dt_text report = {0};
    char device[256];
    snprintf(device, sizeof device, "%s, %d compute threads per rank",
             dt_session_backend_name(&s->session), s->session.threads);
    dt_results_context c = {.cfg = s->cfg,
                            .ds = &s->session.ds,
                            .names = s->session.display_names,
                            .bad_files = bad,
                            .device = device,
                            .ranks = s->comm->size,
                            .elapsed_s = seconds,
                            .out_dir = s->out_dir,
                            .model_path = s->model_path,
                            .model_config_hash = s->model_hash[0] ? s->model_hash : NULL,
                            .data_path = s->data_path,
                            .split = s->split_name};
    if (!rc && (rc = dt_make_directories(s->out_dir, err)) == 0)
        rc = dt_results_write(&c, &p, &report, err);
    if (!rc) {
        double loss = 0;
        long correct = 0;
        for (size_t i = 0; i < p.n; i++) {
            loss += p.loss[i];
            correct += p.label[i] == p.predicted[i];
        }
        char head[9000], shown[4 * sizeof head];
        snprintf(head, sizeof head,
                 "dtrain eval: %s (config hash %s) on %zu images of %s (split: %s%s)",
                 s->model_path, s->model_hash[0] ? s->model_hash : "not recorded", p.n,
                 s->data_path, s->split_name,
                 strcmp(s->split_name, "test") == 0 ? ", the whole folder"
                 : s->cfg->data.val_root            ? ", data.val_root"
                                                    : ", held out of data.root");
        printf("%s\n\n%s\n", dt_escape_text(head, shown, sizeof shown),
               report.data ? report.data : "");
        snprintf(head, sizeof head,
                 "%s accuracy %.4f, loss %.4f, %zu image%s skipped; wrote "
                 "classification_report.txt, confusion_matrix.csv, predictions.csv and "
                 "report.html to %s/",
                 s->split_name, p.n ? (double)correct / (double)p.n : 0.0,
                 p.n ? loss / (double)p.n : 0.0, n_bad, n_bad == 1 ? "" : "s", s->out_dir);
        printf("%s\n", dt_escape_text(head, shown, sizeof shown));
    }
    free(report.data);
    free(logits);
    free(bad);
    dt_predictions_free(&p);
    return rc;
}

static int run(eval_state *s, dt_error *err) {
    double start = dt_monotonic_seconds();
    if (prepare(s, err) || evaluate_share(s, err)) return -1;
    int k = s->session.ds.n_classes;
    dt_comm *comm = s->comm;
    if (comm->size > 1 &&
        (comm->ops->allreduce_double(comm->ctx, s->gathered, s->n * (size_t)(k + 1), DT_REDUCE_SUM,
                                     err) ||
         comm->ops->allreduce_double(comm->ctx, s->bad, s->session.ds.n_files, DT_REDUCE_SUM, err)))
        return dt_error_prefix(err, "gathering the evaluation");
    if (comm->rank == 0 && report_on_root(s, dt_monotonic_seconds() - start, err)) return -1;
    return comm->size > 1 ? comm->ops->barrier(comm->ctx, err) : 0;
}

static void teardown(eval_state *s) {
    dt_session_close(&s->session);
    free(s->all);
    free(s->gathered);
    free(s->bad);
}

static const char eval_usage[] =
    "usage: dtrain eval CONFIG.yaml [--model FILE] [--data DIR] [--out DIR]\n"
    "                   [key.path=value ...]\n";

static void print_eval_help(void) {
    fputs(eval_usage, stdout);
    fputs("\n"
          "Evaluates a trained model and writes classification_report.txt,\n"
          "confusion_matrix.csv, predictions.csv and report.html into a folder of\n"
          "its own, never over the training run's files.\n"
          "\n"
          "  --model FILE  the model (default: output.dir/best.safetensors)\n"
          "  --data DIR    every image of the ImageFolder DIR (split \"test\");\n"
          "                its class folders must be the model's classes\n"
          "  --out DIR     the results folder (default: output.dir/eval/<name of\n"
          "                the evaluated folder>/); one holding a run is refused\n"
          "  -h, --help    this text\n"
          "\n"
          "Without --data: data.val_root when the config sets it (split\n"
          "\"validation\"), else the held-out part of data.root (data.val_fraction,\n"
          "data.split_seed; split \"validation\"), or all of data.root with\n"
          "data.val_fraction=1 (split \"test\"). Overrides change config keys as in\n"
          "training, e.g. runtime.device=cpu.\n",
          stdout);
}

int dt_cli_eval(int argc, char **argv) {
    const char *config_path = NULL, *model = NULL, *data = NULL, *out = NULL;
    int n_overrides = 0;
    char **overrides = calloc((size_t)argc + 1, sizeof *overrides);
    if (!overrides) return DT_EXIT_RUNTIME;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char **value = strcmp(a, "--model") == 0  ? &model
                             : strcmp(a, "--data") == 0 ? &data
                             : strcmp(a, "--out") == 0  ? &out
                                                        : NULL;
        char shown[512];
        if (value && i + 1 < argc) {
            *value = argv[++i];
        } else if (value) {
            fprintf(stderr, "dtrain: error: eval: %s needs a value (see dtrain eval --help)\n", a);
            free(overrides);
            return DT_EXIT_USAGE;
        } else if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            print_eval_help();
            free(overrides);
            return DT_EXIT_OK;
        } else if (strchr(a, '=') && a[0] != '-') {
            overrides[n_overrides++] = argv[i];
        } else if (!config_path && a[0] != '-') {
            config_path = a;
        } else {
            fprintf(stderr, "dtrain: error: eval: %s '%s' (see dtrain eval --help)\n",
                    a[0] == '-' ? "unknown option" : "unexpected argument",
                    dt_escape_text(a, shown, sizeof shown));
            free(overrides);
            return DT_EXIT_USAGE;
        }
    }
    if (!config_path) {
        fputs(eval_usage, stderr);
        free(overrides);
        return DT_EXIT_USAGE;
    }
    int env_rank = dt_comm_env_rank();
    dt_config cfg;
    dt_error err = {{0}, 0};
    int loaded = dt_config_load(config_path, n_overrides, overrides, &cfg, &err);
    free(overrides);
    if (loaded) {
        if (env_rank == 0) fprintf(stderr, "dtrain: error: %s\n", err.message);
        return err.exit_code ? err.exit_code : DT_EXIT_USAGE;
    }
    char default_model[4200];
    snprintf(default_model, sizeof default_model, "%s/best.safetensors", cfg.output.dir);
    dt_comm comm;
    if (dt_comm_init(&argc, &argv, &comm, &err)) {
        fprintf(stderr, "dtrain: error: %s\n", err.message);
        dt_config_free(&cfg);
        return err.exit_code ? err.exit_code : DT_EXIT_RUNTIME;
    }
    dt_log_set_rank(comm.rank, comm.size);
    eval_state s;
    memset(&s, 0, sizeof s);
    s.cfg = &cfg;
    s.comm = &comm;
    s.model_path = model ? model : default_model;
    s.data_option = data;
    s.out_option = out;
    int rc = run(&s, &err);
    teardown(&s);
    int code = DT_EXIT_OK;
    if (rc) {
        code = err.exit_code ? err.exit_code : DT_EXIT_RUNTIME;
        if (comm.size > 1)
            fprintf(stderr, "dtrain: rank %d: error: %s\n", comm.rank, err.message);
        else
            fprintf(stderr, "dtrain: error: %s\n", err.message);
        fflush(stdout);
        fflush(stderr);
        if (comm.size > 1) comm.ops->abort(comm.ctx, code);
    }
    comm.ops->finalize(comm.ctx);
    dt_config_free(&cfg);
    return code;
}
