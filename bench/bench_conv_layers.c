/* Times each convolution shape of ResNet-18 at one image size through the CPU backend's two
 * implementations, interleaved in one process: oneDNN's direct convolution and the per-tap
 * matrix products (src/backend/cpu/cpu_conv_gemm.c), each pass on its own (forward,
 * backward-data, backward-weights), and prints which passes the shape rule gives the per-tap
 * products (cpu_conv_per_tap_rule, set from these figures); bench_conv_layers.sh runs this
 * uncapped and under ONEDNN_MAX_CPU_ISA=AVX2. Best of the rounds in milliseconds, the weights
 * reordered every round as after an optimizer step. The per-tap backward-weights here reuses
 * the forward's HWNC copy of x; where only that pass is per-tap, the layer makes the copy in
 * the backward (an activation reorder, included in the training step's figures). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../src/backend/cpu/cpu_internal.h"
#include "dtrain/platform.h"

typedef struct layer_shape {
    const char *name;
    int in_channels, out_channels, in_size, kernel, stride;
} layer_shape;

/* Best forward, backward-data and backward-weights seconds of both variants over rounds,
 * alternating. */
static int time_shape(cpu_ctx *ctx, const dt_conv_desc *d, int rounds, double best[2][3],
                      dt_error *err) {
    dt_layer *layers[2] = {
        cpu_conv_create_variant(ctx, d, (cpu_conv_variant){dnnl_convolution_direct, 0, 0}, err),
        cpu_conv_create_variant(
            ctx, d, (cpu_conv_variant){dnnl_convolution_direct, 0, CPU_PER_TAP_ALL}, err)};
    cpu_conv_timing_inputs in;
    int rc = -1;
    if (cpu_conv_timing_inputs_make(ctx, d, &in, err) || !layers[0] || !layers[1]) goto done;
    for (int v = 0; v < 2; v++) best[v][0] = best[v][1] = best[v][2] = 1e30;
    for (int round = 0; round < rounds + 2; round++)
        for (int v = 0; v < 2; v++) {
            ctx->params_version++;
            double t[4];
            t[0] = dt_monotonic_seconds();
            if (cpu_conv_forward(ctx, layers[v], in.weight, in.x, in.y, err)) goto done;
            t[1] = dt_monotonic_seconds();
            /* the stem (no_input_grad) computes no dx, as in the network */
            if (!d->no_input_grad &&
                cpu_conv_backward(ctx, layers[v], in.weight, in.x, in.dy, in.dx, NULL, 0, err))
                goto done;
            t[2] = dt_monotonic_seconds();
            if (cpu_conv_backward(ctx, layers[v], in.weight, in.x, in.dy, NULL, in.grad, 0, err))
                goto done;
            t[3] = dt_monotonic_seconds();
            if (round < 2) continue; /* warm-up: page faults, caches */
            for (int p = 0; p < 3; p++)
                if (t[p + 1] - t[p] < best[v][p]) best[v][p] = t[p + 1] - t[p];
        }
    rc = 0;
done:
    for (int v = 0; v < 2; v++)
        if (layers[v]) layers[v]->destroy(layers[v]);
    cpu_conv_timing_inputs_free(ctx, &in);
    return rc;
}

int main(int argc, char **argv) {
    int size = 64, batch = 64, threads = 2, rounds = 10;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--size"))
            size = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--batch"))
            batch = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--threads"))
            threads = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--rounds"))
            rounds = atoi(argv[i + 1]);
        else {
            fprintf(stderr, "usage: bench_conv_layers [--size N] [--batch N] [--threads N] "
                            "[--rounds N]\n");
            return 2;
        }
    }
    if ((argc - 1) % 2 || size < 32 || batch < 1 || threads < 1 || rounds < 1) {
        fprintf(stderr, "bench_conv_layers: --size needs at least 32, the others at least 1\n");
        return 2;
    }
    dt_backend_options options = {threads, 0, DT_PRECISION_FP32, 0};
    dt_backend backend;
    dt_error err = {{0}, 0};
    if (dt_backend_cpu_create(&options, &backend, &err)) {
        fprintf(stderr, "bench_conv_layers: %s\n", err.message);
        return 1;
    }
    char line[256];
    dt_backend_cpu_describe(&backend, line, sizeof line);
    printf("%s\nResNet-18 convolutions at %d px, batch %d, %d threads, best of %d rounds, ms\n",
           line, size, batch, threads, rounds);
    const int s1 = size / 4, s2 = size / 8, s3 = size / 16, s4 = size / 32;
    const layer_shape shapes[] = {
        {"stem 7x7 s2", 3, 64, size, 7, 2},        {"layer1 3x3", 64, 64, s1, 3, 1},
        {"layer2 entry s2", 64, 128, s1, 3, 2},    {"layer2 downsample", 64, 128, s1, 1, 2},
        {"layer2 3x3", 128, 128, s2, 3, 1},        {"layer3 entry s2", 128, 256, s2, 3, 2},
        {"layer3 downsample", 128, 256, s2, 1, 2}, {"layer3 3x3", 256, 256, s3, 3, 1},
        {"layer4 entry s2", 256, 512, s3, 3, 2},   {"layer4 downsample", 256, 512, s3, 1, 2},
        {"layer4 3x3", 512, 512, s4, 3, 1},
    };
    static const char *const rule_names[] = {"direct", "gemm weights", "gemm"};
    printf("%-18s %-14s %7s %7s %7s %7s %7s %7s %7s %7s %6s  %s\n", "layer", "map", "dnn_fwd",
           "dnn_bwd", "dnn_wgt", "dnn", "gem_fwd", "gem_bwd", "gem_wgt", "gemm", "ratio",
           "rule picks");
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        const layer_shape *s = &shapes[i];
        const int padding = s->kernel / 2;
        dt_conv_desc d = {batch,     s->in_channels, s->out_channels, s->in_size, s->in_size,
                          s->kernel, s->stride,      padding,         i == 0,     0,
                          0};
        const int out = (s->in_size + 2 * padding - s->kernel) / s->stride + 1;
        double best[2][3];
        if (time_shape(backend.ctx, &d, rounds, best, &err)) {
            fprintf(stderr, "bench_conv_layers: %s: %s\n", s->name, err.message);
            dt_backend_free(&backend);
            return 1;
        }
        char map[32];
        snprintf(map, sizeof map, "%d->%d %dx%d", s->in_channels, s->out_channels, out, out);
        const double direct = best[0][0] + best[0][1] + best[0][2];
        const double gemm = best[1][0] + best[1][1] + best[1][2];
        printf("%-18s %-14s %7.2f %7.2f %7.2f %7.2f %7.2f %7.2f %7.2f %7.2f %6.2f  %s\n", s->name,
               map, best[0][0] * 1e3, best[0][1] * 1e3, best[0][2] * 1e3, direct * 1e3,
               best[1][0] * 1e3, best[1][1] * 1e3, best[1][2] * 1e3, gemm * 1e3, direct / gemm,
               rule_names[cpu_conv_per_tap_rule(backend.ctx, &d)]);
    }
    dt_backend_free(&backend);
    return 0;
}
