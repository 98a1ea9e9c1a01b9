/* CPU image normalisation kernels: every kernel this CPU can run gives bit for bit
 * (p / 255 - mean) / std (torchvision's ToTensor + Normalize in float) for the ImageNet and
 * other mean/std values, at row widths around the vector steps, without writing past the row;
 * bad mean/std values are refused with a message. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../src/backend/cpu/cpu_normalize.h"
#include "testlib/check.h"

static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;

static uint32_t next_random(void) {
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return (uint32_t)((rng_state * 2685821657736338717ULL) >> 32);
}

enum { MAX_WIDTH = 300, GUARD = 20 };

/* One random row through the kernel; compares with the formula and checks the floats after
 * the row are untouched. Returns the number of wrong values. */
static int wrong_values(const cpu_normalizer *nz, const float mean[3], const float std[3],
                        int width) {
    uint8_t rgb[3 * MAX_WIDTH];
    float planes[3][MAX_WIDTH + GUARD];
    for (int i = 0; i < 3 * width; i++) rgb[i] = (uint8_t)next_random();
    for (int c = 0; c < 3; c++)
        for (int x = 0; x < MAX_WIDTH + GUARD; x++) planes[c][x] = -1234.5f;
    cpu_normalize_row(nz, rgb, width, planes[0], planes[1], planes[2]);
    int wrong = 0;
    for (int c = 0; c < 3; c++) {
        for (int x = 0; x < width; x++) {
            float want = ((float)rgb[3 * x + c] / 255.0f - mean[c]) / std[c];
            if (memcmp(&want, &planes[c][x], sizeof want) != 0) wrong++;
        }
        for (int x = width; x < MAX_WIDTH + GUARD; x++) wrong += planes[c][x] != -1234.5f;
    }
    return wrong;
}

static void check_kernel(cpu_normalize_kernel kernel, const float mean[3], const float std[3],
                         const char *label) {
    cpu_normalizer nz;
    dt_error err = {0};
    if (cpu_normalizer_init(&nz, mean, std, kernel, &err) != 0) {
        /* only a CPU without the instructions may refuse a SIMD kernel */
        CHECK_MSG(kernel != CPU_NORMALIZE_TABLE && strstr(err.message, "cannot run"), "%s %s: %s",
                  cpu_normalize_kernel_name(kernel), label, err.message);
        return;
    }
    CHECK_MSG(kernel == CPU_NORMALIZE_AUTO ? nz.kernel != CPU_NORMALIZE_AUTO : nz.kernel == kernel,
              "%s kernel chosen (got %s)", cpu_normalize_kernel_name(kernel),
              cpu_normalize_kernel_name(nz.kernel));
    static const int widths[] = {1, 2, 5, 7, 8, 9, 15, 16, 17, 23, 31, 32, 33, 100, 224, 300};
    int wrong = 0;
    for (size_t i = 0; i < sizeof widths / sizeof widths[0]; i++)
        wrong += wrong_values(&nz, mean, std, widths[i]);
    CHECK_MSG(wrong == 0, "%s kernel, %s: %d wrong values", cpu_normalize_kernel_name(kernel),
              label, wrong);
}

static void check_all_kernels(const float mean[3], const float std[3], const char *label) {
    check_kernel(CPU_NORMALIZE_TABLE, mean, std, label);
    check_kernel(CPU_NORMALIZE_AVX2, mean, std, label);
    check_kernel(CPU_NORMALIZE_AVX512, mean, std, label);
    check_kernel(CPU_NORMALIZE_AUTO, mean, std, label);
}

int main(void) {
    const float imagenet_mean[3] = {0.485f, 0.456f, 0.406f};
    const float imagenet_std[3] = {0.229f, 0.224f, 0.225f};
    check_all_kernels(imagenet_mean, imagenet_std, "ImageNet mean/std");
    const float half[3] = {0.5f, 0.5f, 0.5f};
    check_all_kernels(half, half, "0.5/0.5");
    const float zero[3] = {0, 0, 0}, one[3] = {1, 1, 1};
    check_all_kernels(zero, one, "identity");
    const float odd_mean[3] = {-3.0f, 0.2860f, 1e-7f}, odd_std[3] = {-0.3530f, 1e-3f, 250.0f};
    check_all_kernels(odd_mean, odd_std, "negative and extreme std");

    /* AUTO must pick a SIMD kernel when the CPU has one (all of the above were exact) */
    cpu_normalizer nz;
    dt_error err = {0};
    CHECK(cpu_normalizer_init(&nz, imagenet_mean, imagenet_std, CPU_NORMALIZE_AUTO, &err) == 0);
#if defined(__x86_64__)
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        CHECK_MSG(nz.kernel != CPU_NORMALIZE_TABLE, "auto chose %s on an AVX2 CPU",
                  cpu_normalize_kernel_name(nz.kernel));
#endif
    printf("auto kernel on this CPU: %s\n", cpu_normalize_kernel_name(nz.kernel));

    /* 200 random mean/std triples, each kernel over every byte value */
    int refused = 0;
    for (int t = 0; t < 200; t++) {
        float mean[3], std[3];
        for (int c = 0; c < 3; c++) {
            mean[c] = (float)(next_random() % 2000001) / 1e6f - 1.0f;
            std[c] = 0.01f + (float)(next_random() % 1000001) / 1e6f;
        }
        for (int k = CPU_NORMALIZE_AVX2; k <= CPU_NORMALIZE_AVX512; k++) {
            if (cpu_normalizer_init(&nz, mean, std, (cpu_normalize_kernel)k, &err) != 0) {
                refused += strstr(err.message, "not exact") != NULL;
                continue;
            }
            CHECK_MSG(wrong_values(&nz, mean, std, 256) == 0, "random config %d, %s", t,
                      cpu_normalize_kernel_name(nz.kernel));
        }
    }
    printf("random mean/std configurations a SIMD kernel was not exact for: %d of 400\n", refused);

    const float bad_std[3] = {0.2f, 0.0f, 0.2f};
    CHECK(cpu_normalizer_init(&nz, imagenet_mean, bad_std, CPU_NORMALIZE_AUTO, &err) == -1);
    CHECK_MSG(strstr(err.message, "std[1] = 0") != NULL, "message: %s", err.message);
    const float nan_mean[3] = {0.2f, 0.2f, NAN};
    CHECK(cpu_normalizer_init(&nz, nan_mean, imagenet_std, CPU_NORMALIZE_AUTO, &err) == -1);
    CHECK_MSG(strstr(err.message, "mean[2] = nan") != NULL, "message: %s", err.message);
    return dt_test_summary("normalize");
}
