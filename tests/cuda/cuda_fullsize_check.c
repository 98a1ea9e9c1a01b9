/* One full-size ResNet-18 training step (224 px, batch 32 by default) on a device backend against
 * its CPU twin from the same weights and batch: the loss, every parameter's gradient (each tensor
 * by name, relative to its own largest value) and the parameters after one SGD step (momentum,
 * weight decay), at fp32, tf32 and bf16, each error printed beside its tolerance.
 *
 *   cuda_fullsize_check [BACKEND [SIZE BATCH]]
 *
 * BACKEND cuda (the default) is the GPU check; without a usable GPU it reports SKIPPED (exit 77),
 * never passed. BACKEND cpu compares the CPU backend with its twin (fp32 and tf32; bf16 is the
 * CUDA backend's only): the same harness without a GPU, at a small size in the CPU suite. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backends.h"
#include "check.h"
#include "dtrain/backend.h"
#include "dtrain/config.h"
#include "dtrain/model.h"

enum { CLASSES = 10 };

/* One step's results, in host memory. */
typedef struct step_result {
    double loss; /* mean cross-entropy of the batch */
    float *grads, *params;
} step_result;

static int one_step(const dt_backend *backend, const dt_model_options *mopt,
                    const float *init_params, const float *init_stats, const uint8_t *pixels,
                    const int32_t *labels, step_result *out, dt_error *err) {
    const float mean[3] = {0.485f, 0.456f, 0.406f}, std[3] = {0.229f, 0.224f, 0.225f};
    float *weights = malloc((size_t)mopt->batch * sizeof *weights);
    dt_model *model = NULL;
    int rc = -1;
    if (!weights) return dt_fail(err, "out of memory");
    for (int i = 0; i < mopt->batch; i++) weights[i] = 1.0f;
    double stats[DT_LOSS_STATS];
    size_t offset, count;
    if (dt_model_create(backend, mopt, &model, err) ||
        dt_model_upload_state(model, init_params, init_stats, err) ||
        dt_backend_loss_stats_read(backend, stats, 1, err) ||
        dt_model_forward(model, pixels, mean, std, 1, err) ||
        dt_model_loss(model, labels, weights, 1.0f / (float)mopt->batch, NULL, err) ||
        dt_model_backward(model, 0, 1, err) || dt_backend_input_wait(backend, err))
        goto done;
    dt_model_trainable_span(model, &offset, &count);
    /* OIHW host copies (the CPU keeps its own weight layouts); untrained gradients stay 0 */
    if (dt_model_param_buffer_download(model, out->grads, dt_model_grads(model), err) ||
        dt_backend_loss_stats_read(backend, stats, 1, err))
        goto done;
    out->loss = stats[DT_LOSS_SUM] / stats[DT_LOSS_COUNT];
    const dt_sgd_params p = {
        .lr = 0.05f, .momentum = 0.9f, .weight_decay = 5e-4f, .grad_scale = 1.0f, .first_step = 1};
    if (dt_backend_sgd_step(backend, &p, dt_model_params(model) + offset,
                            dt_model_grads(model) + offset, dt_model_momentum(model) + offset,
                            count, err) ||
        dt_model_param_buffer_download(model, out->params, dt_model_params(model), err))
        goto done;
    rc = 0;
done:
    if (model) dt_model_destroy(model);
    free(weights);
    return rc;
}

static void compare(const char *precision, const char *what, double error, double tolerance) {
    printf("  full-size %-4s %-44s error %.3g  tolerance %.3g%s\n", precision, what, error,
           tolerance, error <= tolerance ? "" : "  FAIL");
    CHECK_MSG(error <= tolerance, "%s %s: error %.3g above %.3g", precision, what, error,
              tolerance);
}

int main(int argc, char **argv) {
    const char *device = argc > 1 ? argv[1] : "cuda";
    const int size = argc > 3 ? atoi(argv[2]) : 224, batch = argc > 3 ? atoi(argv[3]) : 32;
    char reason[256];
    if (size < 32 || batch < 1 || (strcmp(device, "cuda") != 0 && strcmp(device, "cpu") != 0)) {
        fprintf(stderr, "usage: cuda_fullsize_check [cuda|cpu [SIZE>=32 BATCH>=1]]\n");
        return 2;
    }
    if (dt_test_backend_unusable(device, reason, sizeof reason)) {
        printf("SKIPPED: %s\n", reason);
        return DT_TEST_SKIP;
    }
    printf("one training step at %d px, batch %d: %s against the CPU backend\n", size, batch,
           device);
    const size_t pixel_count = (size_t)batch * size * size * 3;
    uint8_t *pixels = malloc(pixel_count);
    int32_t *labels = malloc((size_t)batch * sizeof *labels);
    if (!pixels || !labels) return 1;
    uint64_t state = 0x9e3779b97f4a7c15u;
    for (size_t i = 0; i < pixel_count; i++) {
        state ^= state << 13, state ^= state >> 7, state ^= state << 17;
        pixels[i] = (uint8_t)(state >> 24);
    }
    for (int i = 0; i < batch; i++) labels[i] = (i * 7) % CLASSES;
    const dt_model_options mopt = {.batch = batch, .image_size = size, .n_classes = CLASSES};
    dt_error err = {0};

    dt_backend cpu;
    dt_model *init = NULL;
    dt_backend_options copt = {.threads = 0, .precision = DT_PRECISION_FP32};
    if (dt_backend_cpu_create(&copt, &cpu, &err) || dt_model_create(&cpu, &mopt, &init, &err) ||
        dt_model_init_weights(init, 11, &err)) {
        fprintf(stderr, "CPU model: %s\n", err.message);
        return 1;
    }
    const size_t n_params = dt_model_param_count(init), n_stats = dt_model_stats_count(init);
    size_t n_entries;
    const dt_state_entry *entries = dt_model_state(init, &n_entries);
    float *init_params = malloc(n_params * sizeof(float)),
          *init_stats = malloc(n_stats * sizeof(float));
    step_result ref = {0, malloc(n_params * sizeof(float)), malloc(n_params * sizeof(float))};
    step_result dev = {0, malloc(n_params * sizeof(float)), malloc(n_params * sizeof(float))};
    if (!init_params || !init_stats || !ref.grads || !ref.params || !dev.grads || !dev.params)
        return 1;
    if (dt_model_download_state(init, init_params, init_stats, &err) ||
        one_step(&cpu, &mopt, init_params, init_stats, pixels, labels, &ref, &err)) {
        fprintf(stderr, "CPU step: %s\n", err.message);
        return 1;
    }
    printf("  CPU twin (fp32): loss %.6f\n", ref.loss);
    /* the reference itself: every gradient tensor is nonzero and the step moved the weights,
     * so that a comparison of zeros cannot pass for one of results */
    for (size_t e = 0; e < n_entries; e++) {
        if (entries[e].role != DT_TENSOR_PARAMETER) continue;
        double largest = 0.0;
        for (size_t i = 0; i < entries[e].count; i++)
            if (fabs(ref.grads[entries[e].offset + i]) > largest)
                largest = fabs(ref.grads[entries[e].offset + i]);
        CHECK_MSG(largest > 0.0, "CPU twin: gradient of %s is all zeros", entries[e].name);
    }
    CHECK(dt_test_relative_error(ref.params, init_params, n_params, NULL) > 0.0);

    const int precisions[] = {DT_PRECISION_FP32, DT_PRECISION_TF32, DT_PRECISION_BF16};
    /* relative to each tensor's largest value; the parameters relative to their largest */
    const double loss_tol[] = {1e-5, 1e-2, 5e-2}, grad_tol[] = {2e-3, 5e-2, 1.5e-1},
                 param_tol[] = {1e-5, 1e-3, 5e-3};
    const int n_precisions = strcmp(device, "cpu") == 0 ? 2 : 3;
    for (int k = 0; k < n_precisions; k++) {
        const char *name = dt_precision_name((dt_precision_kind)precisions[k]);
        dt_backend backend;
        dt_backend_options opt = {.threads = 0, .device = 0, .precision = precisions[k]};
        int rc = strcmp(device, "cuda") == 0 ? dt_backend_cuda_create(&opt, &backend, &err)
                                             : dt_backend_cpu_create(&opt, &backend, &err);
        if (rc || one_step(&backend, &mopt, init_params, init_stats, pixels, labels, &dev, &err)) {
            CHECK_MSG(0, "%s %s step: %s", device, name, err.message);
            if (!rc) dt_backend_free(&backend);
            continue;
        }
        compare(name, "loss", fabs(dev.loss - ref.loss) / fabs(ref.loss), loss_tol[k]);
        double worst = -1.0;
        const char *worst_name = "";
        int n_grads = 0, over = 0;
        for (size_t e = 0; e < n_entries; e++) {
            if (entries[e].role != DT_TENSOR_PARAMETER) continue;
            double error =
                dt_test_relative_error(dev.grads + entries[e].offset, ref.grads + entries[e].offset,
                                       entries[e].count, NULL);
            n_grads++;
            over += !(error <= grad_tol[k]);
            printf("    %-4s gradient %-40s error %.3g\n", name, entries[e].name, error);
            if (!(error <= worst)) worst = error, worst_name = entries[e].name;
        }
        char what[128];
        snprintf(what, sizeof what, "gradients (%d tensors; worst %s)", n_grads, worst_name);
        compare(name, what, worst, grad_tol[k]);
        CHECK_INT_EQ(over, 0);
        compare(name, "parameters after one SGD step",
                dt_test_relative_error(dev.params, ref.params, n_params, NULL), param_tol[k]);
        dt_backend_free(&backend);
    }
    dt_model_destroy(init);
    dt_backend_free(&cpu);
    free(pixels), free(labels), free(init_params), free(init_stats);
    free(ref.grads), free(ref.params), free(dev.grads), free(dev.params);
    return dt_test_summary("cuda_fullsize");
}
