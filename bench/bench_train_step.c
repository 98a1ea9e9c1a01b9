/* bench_train_step: images/s of dtrain's ResNet training step (forward, softmax
 * cross-entropy, backward, SGD with momentum) on a fixed random uint8 batch, compute only, on the
 * CPU or CUDA backend: the peer of bench/pytorch_gpu_train_step.py and pytorch_train_step.py.
 *
 *   bench_train_step [--device cpu|cuda] [--precision fp32|tf32|bf16] [--size 224]
 *                    [--batch 64] [--steps 20] [--warmup 3] [--classes 10] [--threads 0]
 *                    [--arch resnet18]
 *
 * Prints one line: "dtrain device=... precision=... size=... batch=... img_per_s=... step_s=...
 * cpu_s=... arch=... conv_gflop=... conv_gflops=...", cpu_s being the process's CPU seconds per
 * measured step (all threads), a figure that a machine shared with other work disturbs less than
 * the wall-clock rate; conv_gflop the floating-point operations of the step's convolutions
 * (forward, backward-weights, backward-data but the first layer's), counting only the taps inside
 * the input (dt_conv_desc_macs), and conv_gflops that over step_s: the figure
 * bench_headroom.sh sets against the CPU's multiply-add peak.
 * The clock stops after a parameter download, which waits for the queued steps. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dtrain/backend.h"
#include "dtrain/config.h"
#include "dtrain/model.h"
#include "dtrain/rng.h"

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static double cpu_seconds(void) {
    struct timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static int usage(const char *what) {
    fprintf(stderr,
            "bench_train_step: %s\nusage: bench_train_step [--device cpu|cuda] "
            "[--precision fp32|tf32|bf16] [--size N] [--batch N] [--steps N] [--warmup N] "
            "[--classes N] [--threads N] [--arch resnet18|resnet34|resnet50|...]\n",
            what);
    return 2;
}

typedef struct bench {
    dt_backend backend;
    dt_model *model;
    uint8_t *pixels;
    int32_t *labels;
    float *weights;
    int batch;
} bench;

/* GFLOP of one training step's convolutions (see the top of this file); -1 if unknown. */
static double conv_gflop(const dt_model_options *mo) {
    int n = dt_model_conv_descs(mo, NULL, 0);
    dt_conv_desc *convs = n > 0 ? malloc((size_t)n * sizeof *convs) : NULL;
    if (!convs || dt_model_conv_descs(mo, convs, n) != n) {
        free(convs);
        return -1;
    }
    double flop = 0;
    for (int i = 0; i < n; i++) {
        const dt_conv_desc *d = &convs[i];
        const int passes = d->no_backward ? 1 : d->no_input_grad ? 2 : 3;
        flop += 2.0 * passes * dt_conv_desc_macs(d, 0);
    }
    free(convs);
    return flop / 1e9;
}

static int train_step(bench *b, int first, dt_error *err) {
    static const float mean[3] = {0.485f, 0.456f, 0.406f}, stdev[3] = {0.229f, 0.224f, 0.225f};
    if (dt_model_forward(b->model, b->pixels, mean, stdev, 1, err) ||
        dt_model_loss(b->model, b->labels, b->weights, 1.0f / (float)b->batch, NULL, err) ||
        dt_model_backward(b->model, 0, 0, err))
        return -1;
    dt_sgd_params p = {.lr = 0.01f,
                       .momentum = 0.9f,
                       .weight_decay = 1e-4f,
                       .grad_scale = 1.0f,
                       .first_step = first};
    return dt_backend_sgd_step(&b->backend, &p, dt_model_params(b->model), dt_model_grads(b->model),
                               dt_model_momentum(b->model), dt_model_param_count(b->model), err);
}

int main(int argc, char **argv) {
    const char *device = "cpu", *precision = "fp32", *arch = "resnet18";
    int size = 224, batch = 64, steps = 20, warmup = 3, classes = 10, threads = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (i + 1 >= argc) return usage("every option takes a value");
        const char *v = argv[++i];
        if (!strcmp(a, "--device"))
            device = v;
        else if (!strcmp(a, "--precision"))
            precision = v;
        else if (!strcmp(a, "--size"))
            size = atoi(v);
        else if (!strcmp(a, "--batch"))
            batch = atoi(v);
        else if (!strcmp(a, "--steps"))
            steps = atoi(v);
        else if (!strcmp(a, "--warmup"))
            warmup = atoi(v);
        else if (!strcmp(a, "--classes"))
            classes = atoi(v);
        else if (!strcmp(a, "--threads"))
            threads = atoi(v);
        else if (!strcmp(a, "--arch"))
            arch = v;
        else
            return usage("unknown option");
    }
    static const char *precisions[] = {"fp32", "tf32", "bf16"};
    int prec = -1;
    for (int i = 0; i < 3; i++)
        if (!strcmp(precision, precisions[i])) prec = i;
    int cuda = !strcmp(device, "cuda");
    if (prec < 0 || (!cuda && strcmp(device, "cpu")) || size < 32 || batch < 1 || steps < 1 ||
        warmup < 0 || classes < 2 || threads < 0)
        return usage("bad option value");

    bench b = {.batch = batch};
    dt_error err = {{0}, 0};
    dt_backend_options opt = {.threads = threads, .device = 0, .precision = prec};
    if ((cuda ? dt_backend_cuda_create(&opt, &b.backend, &err)
              : dt_backend_cpu_create(&opt, &b.backend, &err))) {
        fprintf(stderr, "bench_train_step: %s\n", err.message);
        return 1;
    }
    dt_model_options mo = {.batch = batch, .image_size = size, .n_classes = classes, .arch = arch};
    size_t n_pixels = (size_t)batch * size * size * 3;
    b.pixels = malloc(n_pixels);
    b.labels = malloc((size_t)batch * sizeof *b.labels);
    b.weights = malloc((size_t)batch * sizeof *b.weights);
    float one_param = 0;
    int rc = 1;
    if (!b.pixels || !b.labels || !b.weights) {
        fprintf(stderr, "bench_train_step: out of memory\n");
        goto done;
    }
    dt_rng rng = dt_rng_seeded(1);
    for (size_t i = 0; i < n_pixels; i++) b.pixels[i] = (uint8_t)(dt_rng_next(&rng) >> 56);
    for (int i = 0; i < batch; i++) {
        b.labels[i] = (int32_t)(dt_rng_next(&rng) % (uint64_t)classes);
        b.weights[i] = 1.0f;
    }
    if (dt_model_create(&b.backend, &mo, &b.model, &err) ||
        dt_model_init_weights(b.model, 1, &err)) {
        fprintf(stderr, "bench_train_step: %s\n", err.message);
        goto done;
    }
    double start = 0, cpu_start = 0;
    for (int s = 0; s < warmup + steps; s++) {
        if (s == warmup) {
            /* a download waits for everything queued so far */
            if (dt_backend_buffer_download(&b.backend, &one_param, dt_model_params(b.model), 1,
                                           &err))
                break;
            start = now();
            cpu_start = cpu_seconds();
        }
        if (train_step(&b, s == 0, &err)) break;
    }
    if (!err.message[0])
        dt_backend_buffer_download(&b.backend, &one_param, dt_model_params(b.model), 1, &err);
    if (err.message[0]) {
        fprintf(stderr, "bench_train_step: %s\n", err.message);
        goto done;
    }
    double step_s = (now() - start) / steps, cpu_s = (cpu_seconds() - cpu_start) / steps;
    double gflop = conv_gflop(&mo);
    printf("dtrain device=%s precision=%s size=%d batch=%d img_per_s=%.2f step_s=%.4f cpu_s=%.4f "
           "arch=%s conv_gflop=%.3f conv_gflops=%.1f\n",
           device, precision, size, batch, batch / step_s, step_s, cpu_s, arch, gflop,
           gflop / step_s);
    rc = 0;
done:
    if (b.model) dt_model_destroy(b.model);
    dt_backend_free(&b.backend);
    free(b.pixels), free(b.labels), free(b.weights);
    return rc;
}
