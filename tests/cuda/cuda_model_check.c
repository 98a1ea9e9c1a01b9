/* The whole ResNet-18 on the GPU against the CPU backend: the same initial weights and the same
 * batches, 3 SGD steps (momentum, weight decay, nesterov off) with training forward, loss and
 * backward; parameters, running statistics and the accumulated loss statistics compared at
 * fp32, tf32 and bf16 (each error printed beside its tolerance). Without a GPU (or without the
 * CUDA backend) it reports SKIPPED (exit 77), never passed. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backends.h"
#include "check.h"
#include "dtrain/backend.h"
#include "dtrain/config.h"
#include "dtrain/model.h"

enum { BATCH = 8, SIZE = 32, CLASSES = 10, STEPS = 3 };

typedef struct run {
    dt_backend backend;
    dt_model *model;
    double stats[DT_LOSS_STATS];
} run;

static int train(run *r, const uint8_t *pixels, const int32_t *labels, dt_error *err) {
    const float mean[3] = {0.485f, 0.456f, 0.406f}, std[3] = {0.229f, 0.224f, 0.225f};
    float weights[BATCH];
    for (int i = 0; i < BATCH; i++) weights[i] = 1.0f;
    if (dt_backend_loss_stats_read(&r->backend, r->stats, 1, err)) return -1;
    for (int step = 0; step < STEPS; step++) {
        const uint8_t *batch = pixels + (size_t)step * BATCH * SIZE * SIZE * 3;
        const int32_t *batch_labels = labels + step * BATCH;
        if (dt_model_forward(r->model, batch, mean, std, 1, err) ||
            dt_model_loss(r->model, batch_labels, weights, 1.0f / BATCH, NULL, err) ||
            dt_model_backward(r->model, 0, 1, err) || dt_backend_input_wait(&r->backend, err))
            return -1;
        size_t offset, count;
        dt_model_trainable_span(r->model, &offset, &count);
        const dt_sgd_params p = {.lr = 0.05f,
                                 .momentum = 0.9f,
                                 .weight_decay = 5e-4f,
                                 .grad_scale = 1.0f,
                                 .first_step = step == 0};
        if (dt_backend_sgd_step(&r->backend, &p, dt_model_params(r->model) + offset,
                                dt_model_grads(r->model) + offset,
                                dt_model_momentum(r->model) + offset, count, err))
            return -1;
    }
    return dt_backend_loss_stats_read(&r->backend, r->stats, 1, err);
}

static void compare(int precision, const char *what, double error, double tolerance) {
    printf("  %-4s %-36s error %.3g  tolerance %.3g\n", dt_precision_name(precision), what, error,
           tolerance);
    CHECK_MSG(error <= tolerance, "%s %s: error %.3g above %.3g", dt_precision_name(precision),
              what, error, tolerance);
}

int main(void) {
    char reason[256];
    if (dt_test_backend_unusable("cuda", reason, sizeof reason)) {
        printf("SKIPPED: %s\n", reason);
        return DT_TEST_SKIP;
    }
    const size_t pixel_count = (size_t)STEPS * BATCH * SIZE * SIZE * 3;
    uint8_t *pixels = malloc(pixel_count);
    int32_t labels[STEPS * BATCH];
    if (!pixels) return 1;
    uint64_t state = 0x12345u;
    for (size_t i = 0; i < pixel_count; i++) {
        state ^= state << 13, state ^= state >> 7, state ^= state << 17;
        pixels[i] = (uint8_t)(state >> 24);
    }
    for (int i = 0; i < STEPS * BATCH; i++) labels[i] = (i * 3) % CLASSES;
    const dt_model_options mopt = {.batch = BATCH, .image_size = SIZE, .n_classes = CLASSES};
    dt_error err = {0};

    run cpu = {0};
    dt_backend_options copt = {.threads = 2, .precision = DT_PRECISION_FP32};
    if (dt_backend_cpu_create(&copt, &cpu.backend, &err) ||
        dt_model_create(&cpu.backend, &mopt, &cpu.model, &err) ||
        dt_model_init_weights(cpu.model, 7, &err)) {
        fprintf(stderr, "CPU model: %s\n", err.message);
        return 1;
    }
    const size_t n_params = dt_model_param_count(cpu.model),
                 n_stats = dt_model_stats_count(cpu.model);
    float *init_params = malloc(n_params * sizeof(float)),
          *init_stats = malloc(n_stats * sizeof(float));
    float *cpu_params = malloc(n_params * sizeof(float)),
          *cpu_stats = malloc(n_stats * sizeof(float));
    float *gpu_params = malloc(n_params * sizeof(float)),
          *gpu_stats = malloc(n_stats * sizeof(float));
    if (!init_params || !init_stats || !cpu_params || !cpu_stats || !gpu_params || !gpu_stats)
        return 1;
    CHECK(dt_model_download_state(cpu.model, init_params, init_stats, &err) == 0);
    CHECK_MSG(train(&cpu, pixels, labels, &err) == 0, "CPU training: %s", err.message);
    CHECK(dt_model_download_state(cpu.model, cpu_params, cpu_stats, &err) == 0);

    const int precisions[] = {DT_PRECISION_FP32, DT_PRECISION_TF32, DT_PRECISION_BF16};
    const double param_tol[] = {1e-4, 2e-2, 5e-2}, stats_tol[] = {1e-4, 2e-2, 5e-2};
    const double loss_tol[] = {1e-5, 1e-2, 5e-2};
    for (int i = 0; i < 3; i++) {
        const int precision = precisions[i];
        run gpu = {0};
        dt_backend_options gopt = {.device = 0, .precision = precision};
        if (dt_backend_cuda_create(&gopt, &gpu.backend, &err) ||
            dt_model_create(&gpu.backend, &mopt, &gpu.model, &err) ||
            dt_model_upload_state(gpu.model, init_params, init_stats, &err)) {
            CHECK_MSG(0, "%s GPU model: %s", dt_precision_name(precision), err.message);
            continue;
        }
        CHECK_MSG(train(&gpu, pixels, labels, &err) == 0, "%s GPU training: %s",
                  dt_precision_name(precision), err.message);
        CHECK(dt_model_download_state(gpu.model, gpu_params, gpu_stats, &err) == 0);
        compare(precision, "parameters after 3 steps",
                dt_test_relative_error(gpu_params, cpu_params, n_params, NULL), param_tol[i]);
        compare(precision, "running statistics after 3 steps",
                dt_test_relative_error(gpu_stats, cpu_stats, n_stats, NULL), stats_tol[i]);
        compare(precision, "loss sum over the 3 steps",
                fabs(gpu.stats[DT_LOSS_SUM] - cpu.stats[DT_LOSS_SUM]) /
                    fabs(cpu.stats[DT_LOSS_SUM]),
                loss_tol[i]);
        CHECK(gpu.stats[DT_LOSS_COUNT] == cpu.stats[DT_LOSS_COUNT]);
        CHECK(gpu.stats[DT_LOSS_NONFINITE] == 0.0);
        dt_model_destroy(gpu.model);
        dt_backend_free(&gpu.backend);
    }
    dt_model_destroy(cpu.model);
    dt_backend_free(&cpu.backend);
    free(pixels), free(init_params), free(init_stats), free(cpu_params), free(cpu_stats),
        free(gpu_params), free(gpu_stats);
    return dt_test_summary("cuda_model");
}
