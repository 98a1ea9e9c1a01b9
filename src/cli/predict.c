/* `dtrain predict MODEL.safetensors PATH...`: top-k classes with probabilities per image, the
 * preprocessing taken from the model file's metadata unless flags say otherwise. */
#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "dtrain/bytes.h"
#include "dtrain/classify.h"
#include "dtrain/data.h"
#include "dtrain/model.h"
#include "dtrain/platform.h"
#include "dtrain/safetensors.h"
#include "dtrain/text_escape.h"

typedef struct predict_options {
    const char *model_path, *classes_path;
    char **paths;
    int n_paths;
    int top_k, json, batch_size, image_size;
    int resize; /* -1 = from the model */
    int have_mean, have_std;
    float mean[3], std[3];
    dt_device_kind device;
} predict_options;

static const char usage[] = "usage: dtrain predict MODEL.safetensors PATH... [--top-k 5] [--json]\n"
                            "           [--classes FILE] [--batch-size N] [--image-size S]\n"
                            "           [--resize squash|center] [--mean a,b,c] [--std a,b,c]\n"
                            "           [--device auto|cpu|cuda]\n";

static const char help_text[] =
    "\n"
    "Classifies images with a trained model, one line per image:\n"
    "PATH<TAB>class p<TAB>... PATH is a file or a folder (walked recursively:\n"
    ".jpg .jpeg .png, hidden names skipped). A file that cannot be decoded\n"
    "prints PATH<TAB>error: <why>; the others go on (exit code 1).\n"
    "\n"
    "  --top-k K         the K most probable classes (default 5)\n"
    "  --json            one JSON object per line: {\"path\":...,\"top\":\n"
    "                    [{\"class\":...,\"index\":...,\"p\":...}]} (\"error\" for\n"
    "                    a bad file)\n"
    "  --classes FILE    class names, one per line in label order (default:\n"
    "                    the names stored in the model)\n"
    "  --batch-size N    images per forward pass (default 32; 1 to 4096)\n"
    "  --image-size S    network input side (default: the model's image_size\n"
    "                    metadata)\n"
    "  --resize MODE     squash or center (default: the model's resize\n"
    "                    metadata)\n"
    "  --mean a,b,c      normalisation mean (default: the model's mean)\n"
    "  --std a,b,c       normalisation std (default: the model's std)\n"
    "  --device D        auto (a GPU when usable, else the CPU), cpu or cuda\n"
    "                    (default auto)\n"
    "  -h, --help        this text\n"
    "\n"
    "Models written by dtrain carry the preprocessing they were trained with;\n"
    "a model without it (e.g. from torchvision) needs --classes, --image-size,\n"
    "--mean and --std.\n";

static int parse_int(const char *flag, const char *text, int min, int max, int *out,
                     dt_error *err) {
    char *end;
    errno = 0;
    long v = text ? strtol(text, &end, 10) : 0;
    if (!text || errno || *end || end == text || v < min || v > max)
        return dt_fail_usage(err, "%s: expected an integer in [%d, %d], got '%s'", flag, min, max,
                             text ? text : "");
    *out = (int)v;
    return 0;
}

static int parse_triple(const char *flag, const char *text, float out[3], int positive,
                        dt_error *err) {
    const char *p = text ? text : "";
    for (int i = 0; i < 3; i++) {
        char *end;
        errno = 0;
        double v = strtod(p, &end);
        /* the training config's rule: finite 32-bit floats (std above 0 as such a float) */
        if (errno || end == p || !isfinite(v) || fabs(v) > FLT_MAX ||
            (positive && !((float)v > 0)) || *end != (i < 2 ? ',' : '\0')) {
            char shown[200];
            return dt_fail_usage(err, "%s: expected three finite %s32-bit numbers a,b,c, got '%s'",
                                 flag, positive ? "positive " : "",
                                 dt_escape_text(text ? text : "", shown, sizeof shown));
        }
        out[i] = (float)v;
        p = end + 1;
    }
    return 0;
}

static int parse_args(int argc, char **argv, predict_options *o, dt_error *err) {
    memset(o, 0, sizeof *o);
    o->top_k = 5;
    o->batch_size = 32;
    o->resize = -1;
    o->device = DT_DEVICE_AUTO;
    if (!(o->paths = calloc((size_t)argc, sizeof *o->paths))) return dt_fail(err, "out of memory");
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int rc = 0, takes_value = 1;
        if (strcmp(a, "--top-k") == 0)
            rc = parse_int(a, v, 1, 1 << 20, &o->top_k, err);
        else if (strcmp(a, "--batch-size") == 0)
            rc = parse_int(a, v, 1, 4096, &o->batch_size, err);
        else if (strcmp(a, "--image-size") == 0)
            rc = parse_int(a, v, 16, 1024, &o->image_size, err);
        else if (strcmp(a, "--classes") == 0)
            rc = v ? (o->classes_path = v, 0) : dt_fail_usage(err, "--classes: expected a file");
        else if (strcmp(a, "--mean") == 0)
            rc = parse_triple(a, v, o->mean, 0, err), o->have_mean = 1;
        else if (strcmp(a, "--std") == 0)
            rc = parse_triple(a, v, o->std, 1, err), o->have_std = 1;
        else if (strcmp(a, "--resize") == 0) {
            if (v && strcmp(v, "squash") == 0)
                o->resize = DT_RESIZE_SQUASH;
            else if (v && strcmp(v, "center") == 0)
                o->resize = DT_RESIZE_CENTER;
            else
                rc =
                    dt_fail_usage(err, "--resize: expected squash or center, got '%s'", v ? v : "");
        } else if (strcmp(a, "--device") == 0) {
            if (v && strcmp(v, "auto") == 0)
                o->device = DT_DEVICE_AUTO;
            else if (v && strcmp(v, "cpu") == 0)
                o->device = DT_DEVICE_CPU;
            else if (v && strcmp(v, "cuda") == 0)
                o->device = DT_DEVICE_CUDA;
            else
                rc = dt_fail_usage(err, "--device: expected auto, cpu or cuda, got '%s'",
                                   v ? v : "");
        } else {
            takes_value = 0;
            if (strcmp(a, "--json") == 0)
                o->json = 1;
            else if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0)
                return fputs(usage, stdout), fputs(help_text, stdout), 1;
            else if (a[0] == '-' && a[1] == '-')
                rc = dt_fail_usage(err, "predict: unknown option '%s'", a);
            else if (!o->model_path)
                o->model_path = a;
            else
                o->paths[o->n_paths++] = argv[i];
        }
        if (rc) return -1;
        i += takes_value;
    }
    if (!o->model_path || o->n_paths == 0)
        return dt_fail_usage(err, "predict: give a model file and at least one image or folder");
    return 0;
}

/* Splits text at newlines into names (empty lines and a trailing '\r' dropped). */
static int split_names(const char *text, const char *source, int expected, char ***out,
                       dt_error *err) {
    char **names = calloc((size_t)expected + 1, sizeof *names);
    if (!names) return dt_fail(err, "out of memory");
    int n = 0;
    for (const char *p = text; *p;) {
        const char *end = strchr(p, '\n');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        size_t keep = len && p[len - 1] == '\r' ? len - 1 : len;
        if (keep) {
            if (n == expected) {
                n++;
                break;
            }
            names[n++] = strndup(p, keep);
        }
        p += len + (end ? 1 : 0);
    }
    if (n != expected) {
        for (int i = 0; i < expected; i++) free(names[i]);
        free(names);
        return dt_fail_usage(err, "%s: %s%d class names for a model with %d classes", source,
                             n > expected ? "more than " : "", n > expected ? expected : n,
                             expected);
    }
    *out = names;
    return 0;
}

/* Fills the preprocessing options not given on the command line from the model's metadata. */
static int preprocessing_from_model(const dt_safetensors *st, predict_options *o, dt_error *err) {
    const char *size = dt_safetensors_metadata_value(st, "image_size");
    const char *resize = dt_safetensors_metadata_value(st, "resize");
    const char *mean = dt_safetensors_metadata_value(st, "mean");
    const char *std = dt_safetensors_metadata_value(st, "std");
    if (!o->image_size && size &&
        parse_int("metadata image_size", size, 16, 1024, &o->image_size, err))
        return dt_error_prefix(err, "%s", o->model_path);
    if (o->resize < 0 && resize) {
        if (strcmp(resize, "center") == 0)
            o->resize = DT_RESIZE_CENTER;
        else if (strcmp(resize, "squash") == 0)
            o->resize = DT_RESIZE_SQUASH;
        else {
            char shown[200];
            return dt_fail_usage(err,
                                 "%s: metadata resize: expected squash or center, got '%s' (or "
                                 "give --resize)",
                                 o->model_path, dt_escape_text(resize, shown, sizeof shown));
        }
    }
    if (o->resize < 0) o->resize = DT_RESIZE_SQUASH; /* models that record none */
    int mean_from_model = 0, std_from_model = 0;
    if (!o->have_mean && mean) {
        if (parse_triple("metadata mean", mean, o->mean, 0, err))
            return dt_error_prefix(err, "%s", o->model_path);
        o->have_mean = mean_from_model = 1;
    }
    if (!o->have_std && std) {
        if (parse_triple("metadata std", std, o->std, 1, err))
            return dt_error_prefix(err, "%s", o->model_path);
        o->have_std = std_from_model = 1;
    }
    if (!o->image_size || !o->have_mean || !o->have_std)
        return dt_fail_usage(err,
                             "%s records no preprocessing (not written by dtrain training): give "
                             "--image-size, --mean and --std (and --resize if not squash)",
                             o->model_path);
    /* as data.std/data.mean in training: (x - mean) / std for x in [0, 1] stays a finite float */
    for (int c = 0; c < 3; c++) {
        double sd = o->std[c], largest = (fabs((double)o->mean[c]) + 1.0) / sd;
        if (sd >= FLT_MIN && largest <= FLT_MAX) continue;
        /* named where the user gave one of the two, else the model's std */
        const char *named = !std_from_model    ? "--std"
                            : !mean_from_model ? "--mean"
                                               : "metadata std";
        return dt_fail_usage(err,
                             "%s: %s: std[%d] = %g with mean[%d] = %g makes the normalised pixels "
                             "(x - mean) / std overflow a 32-bit float (up to %g)",
                             named[0] == '-' ? "predict" : o->model_path, named, c, sd, c,
                             (double)o->mean[c], largest);
    }
    return 0;
}

/* A JSON string that is valid UTF-8 whatever the name holds: control characters (C0, DEL and
 * C1) as \u escapes, and a byte that is not UTF-8 as the text \xHH (its backslash escaped), as
 * the console output writes it. */
static void print_json_string(const char *s) {
    putchar('"');
    const uint8_t *p = (const uint8_t *)s;
    size_t left = strlen(s);
    while (left > 0) {
        uint32_t code = 0;
        size_t n = dt_utf8_decode(p, left, &code);
        if (n == 0) {
            printf("\\\\x%02X", p[0]);
            n = 1;
        } else if (code == '"' || code == '\\') {
            printf("\\%c", (char)code);
        } else if (code < 0x20 || (code >= 0x7F && code <= 0x9F)) {
            printf("\\u%04x", (unsigned)code);
        } else {
            fwrite(p, 1, n, stdout);
        }
        p += n;
        left -= n;
    }
    putchar('"');
}

/* The console form of a name: escapes for tabs, newlines, ESC and other controls, so that a
 * file or class name can neither forge a record nor reach the terminal as a command. */
static void print_text(const char *s) {
    size_t size = strlen(s) * 6 + 4;
    char stack[1024], *out = size <= sizeof stack ? stack : malloc(size);
    if (!out) return;
    fputs(dt_escape_text(s, out, size), stdout);
    if (out != stack) free(out);
}

static void print_result(const predict_options *o, const char *path, const float *probs, int k,
                         char *const *names, const char *error) {
    if (o->json) {
        fputs("{\"path\":", stdout);
        print_json_string(path);
        if (error) {
            fputs(",\"error\":", stdout);
            print_json_string(error);
            fputs("}\n", stdout);
            return;
        }
        fputs(",\"top\":[", stdout);
    } else {
        print_text(path);
        if (error) {
            fputs("\terror: ", stdout);
            print_text(error);
            putchar('\n');
            return;
        }
    }
    int top = o->top_k < k ? o->top_k : k;
    unsigned char *used = calloc((size_t)k, 1);
    for (int r = 0; r < top && used; r++) {
        int best = -1;
        for (int c = 0; c < k; c++)
            if (!used[c] && (best < 0 || probs[c] > probs[best])) best = c;
        used[best] = 1;
        if (o->json) {
            printf("%s{\"class\":", r ? "," : "");
            print_json_string(names[best]);
            printf(",\"index\":%d,\"p\":%.9g}", best, probs[best]);
        } else {
            putchar('\t');
            print_text(names[best]);
            printf(" %.4f", probs[best]);
        }
    }
    free(used);
    fputs(o->json ? "]}\n" : "\n", stdout);
}

typedef struct predict_state {
    predict_options opt;
    char **names;
    int n_classes;
    dt_backend backend;
    int have_backend;
    dt_model *model;
    char **files;
    size_t n_files;
    uint8_t *pixels;
    float *logits, *probs;
    char (*errors)[512];
    int *decoded;
} predict_state;

static int run_batch(predict_state *s, size_t first, size_t count, int *any_failed, dt_error *err) {
    const predict_options *o = &s->opt;
    size_t image_bytes = (size_t)o->image_size * (size_t)o->image_size * 3;
    dt_loader_options lo = {.batch_size = o->batch_size,
                            .image_size = o->image_size,
                            .resize = (dt_resize_mode)o->resize,
                            .augment = DT_AUGMENT_NONE,
                            .workers = 1,
                            .prefetch_batches = 2};
    memset(s->pixels, 0, image_bytes * (size_t)o->batch_size);
#pragma omp parallel for schedule(dynamic)
    for (long i = 0; i < (long)count; i++) {
        dt_error e = {{0}, 0};
        s->decoded[i] = dt_sample_load(s->files[first + (size_t)i], &lo, 0, 0, 0,
                                       s->pixels + (size_t)i * image_bytes, &e) == 0;
        if (!s->decoded[i]) snprintf(s->errors[i], sizeof s->errors[i], "%s", e.message);
    }
    int any_decoded = 0;
    for (size_t i = 0; i < count; i++) any_decoded |= s->decoded[i];
    if (any_decoded && (dt_model_forward(s->model, s->pixels, o->mean, o->std, 0, err) ||
                        dt_model_logits(s->model, s->logits, err)))
        return -1;
    for (size_t i = 0; i < count; i++) {
        const char *path = s->files[first + i];
        if (!s->decoded[i]) {
            /* the decoder's message starts with the path; print only the reason */
            const char *why = s->errors[i];
            size_t n = strlen(path);
            if (strncmp(why, path, n) == 0 && why[n] == ':') why += n + 1;
            while (*why == ' ') why++;
            print_result(o, path, NULL, s->n_classes, s->names, why);
            *any_failed = 1;
            continue;
        }
        dt_softmax(s->logits + i * (size_t)s->n_classes, s->n_classes, s->probs);
        print_result(o, path, s->probs, s->n_classes, s->names, NULL);
    }
    fflush(stdout);
    return 0;
}

static int predict(predict_state *s, int *any_failed, dt_error *err) {
    predict_options *o = &s->opt;
    dt_safetensors st;
    if (dt_safetensors_read(o->model_path, &st, err)) {
        err->exit_code = DT_EXIT_USAGE;
        return -1;
    }
    const dt_st_tensor *fc = dt_safetensors_find(&st, "fc.weight");
    int rc = -1;
    if (!fc || fc->ndim != 2 || fc->shape[0] < 1 || fc->shape[0] > 1000000) {
        dt_fail_usage(err, "%s: no fc.weight of shape [classes, 512]: not a ResNet-18 classifier",
                      o->model_path);
        goto done;
    }
    s->n_classes = (int)fc->shape[0];
    if (o->classes_path) {
        uint8_t *text = NULL;
        size_t size;
        if (dt_read_file(o->classes_path, 1 << 26, &text, &size, err)) {
            err->exit_code = DT_EXIT_USAGE;
            goto done;
        }
        int names_rc =
            split_names((const char *)text, o->classes_path, s->n_classes, &s->names, err);
        free(text);
        if (names_rc) goto done;
    } else {
        const char *stored = dt_safetensors_metadata_value(&st, "classes");
        if (!stored) {
            dt_fail_usage(err, "%s stores no class names: give --classes classes.txt",
                          o->model_path);
            goto done;
        }
        if (split_names(stored, o->model_path, s->n_classes, &s->names, err)) goto done;
    }
    if (preprocessing_from_model(&st, o, err)) goto done;
    rc = 0;
done:
    dt_safetensors_free(&st);
    if (rc) return -1;

    if (dt_cli_create_backend(o->device, dt_online_cores(), 0, &s->backend, err)) return -1;
    s->have_backend = 1;
    dt_model_options mo = {
        .batch = o->batch_size, .image_size = o->image_size, .n_classes = s->n_classes};
    if (dt_model_create(&s->backend, &mo, &s->model, err) ||
        dt_model_load_safetensors(s->model, o->model_path, 0, NULL, err) ||
        dt_cli_image_paths(o->paths, o->n_paths, &s->files, &s->n_files, err))
        return -1;
    size_t b = (size_t)o->batch_size;
    s->pixels = malloc(b * (size_t)o->image_size * (size_t)o->image_size * 3);
    s->logits = malloc(b * (size_t)s->n_classes * sizeof *s->logits);
    s->probs = malloc((size_t)s->n_classes * sizeof *s->probs);
    s->errors = calloc(b, sizeof *s->errors);
    s->decoded = calloc(b, sizeof *s->decoded);
    if (!s->pixels || !s->logits || !s->probs || !s->errors || !s->decoded)
        return dt_fail(err, "out of memory");
    for (size_t first = 0; first < s->n_files; first += b)
        if (run_batch(s, first, s->n_files - first < b ? s->n_files - first : b, any_failed, err))
            return -1;
    return 0;
}

/* The error for the terminal: it may quote a file or class name. */
static const char *escaped_message(const dt_error *err) {
    static char shown[sizeof err->message * 6 + 4];
    return dt_escape_text(err->message, shown, sizeof shown);
}

int dt_cli_predict(int argc, char **argv) {
    predict_state s;
    memset(&s, 0, sizeof s);
    dt_error err = {{0}, 0};
    int parsed = parse_args(argc, argv, &s.opt, &err), any_failed = 0, code = DT_EXIT_OK;
    if (parsed > 0) {
        free(s.opt.paths);
        return DT_EXIT_OK; /* --help */
    }
    if (parsed < 0) {
        fprintf(stderr, "dtrain: error: %s\n%s", escaped_message(&err), usage);
        free(s.opt.paths);
        return DT_EXIT_USAGE;
    }
    if (predict(&s, &any_failed, &err)) {
        fflush(stdout);
        fprintf(stderr, "dtrain: error: %s\n", escaped_message(&err));
        code = err.exit_code ? err.exit_code : DT_EXIT_RUNTIME;
    } else if (any_failed) {
        code = DT_EXIT_RUNTIME;
    }
    if (s.model) dt_model_destroy(s.model);
    if (s.have_backend) dt_backend_free(&s.backend);
    for (int i = 0; s.names && i < s.n_classes; i++) free(s.names[i]);
    free(s.names);
    for (size_t i = 0; i < s.n_files; i++) free(s.files[i]);
    free(s.files);
    free(s.pixels);
    free(s.logits);
    free(s.probs);
    free(s.errors);
    free(s.decoded);
    free(s.opt.paths);
    return code;
}
