/* Image normalisation kernels (see cpu_normalize.h): the scalar table, and AVX2 / AVX-512
 * kernels that deinterleave RGB bytes with byte shuffles and compute
 *     q = x / 255 and (q - mean) / std
 * as y = a * r, y += fma(-y, b, a) * r with r = 1 / b rounded: the correctly rounded quotient
 * for these operands, which init confirms on all 256 byte values before a kernel is used. The
 * SIMD kernels carry target attributes; the rest of the backend needs no special flags. */
#include "cpu_normalize.h"

#include <math.h>
#include <string.h>

#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
#define CPU_NORMALIZE_HAVE_X86 1
#include <immintrin.h>
#else
#define CPU_NORMALIZE_HAVE_X86 0
#endif

const char *cpu_normalize_kernel_name(cpu_normalize_kernel kernel) {
    switch (kernel) {
    case CPU_NORMALIZE_AUTO:
        return "auto";
    case CPU_NORMALIZE_TABLE:
        return "table";
    case CPU_NORMALIZE_AVX2:
        return "avx2";
    case CPU_NORMALIZE_AVX512:
        return "avx512";
    }
    return "unknown";
}

static void normalize_row_table(const cpu_normalizer *nz, const uint8_t *rgb, int x, int width,
                                float *red, float *green, float *blue) {
    for (; x < width; x++) {
        red[x] = nz->table[0][rgb[3 * x]];
        green[x] = nz->table[1][rgb[3 * x + 1]];
        blue[x] = nz->table[2][rgb[3 * x + 2]];
    }
}

#if CPU_NORMALIZE_HAVE_X86

#define AVX2_INLINE __attribute__((target("avx2,fma"), always_inline))
#define AVX512_INLINE __attribute__((target("avx512f,avx512bw,avx512vbmi"), always_inline))

/* a / b as the quotient estimate a * r plus one FMA correction (r = 1 / b rounded). */
AVX2_INLINE static inline __m256 divide_avx2(__m256 a, __m256 b, __m256 r) {
    __m256 q = _mm256_mul_ps(a, r);
    return _mm256_fmadd_ps(_mm256_fnmadd_ps(q, b, a), r, q);
}

AVX2_INLINE static inline __m256 normalize_avx2(__m128i bytes, __m256 mean, __m256 std,
                                                __m256 inv_std) {
    const __m256 v255 = _mm256_set1_ps(255.0f), inv255 = _mm256_set1_ps(1.0f / 255.0f);
    __m256 x = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(bytes));
    return divide_avx2(_mm256_sub_ps(divide_avx2(x, v255, inv255), mean), std, inv_std);
}

__attribute__((target("avx2,fma"))) static void normalize_row_avx2(const cpu_normalizer *nz,
                                                                   const uint8_t *rgb, int width,
                                                                   float *red, float *green,
                                                                   float *blue) {
    /* 8 pixels = 24 bytes: bytes 0..15 in low, 16..23 in high; -1 selects zero */
    const __m128i red_low =
                      _mm_setr_epi8(0, 3, 6, 9, 12, 15, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1),
                  red_high =
                      _mm_setr_epi8(-1, -1, -1, -1, -1, -1, 2, 5, -1, -1, -1, -1, -1, -1, -1, -1),
                  green_low =
                      _mm_setr_epi8(1, 4, 7, 10, 13, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1),
                  green_high =
                      _mm_setr_epi8(-1, -1, -1, -1, -1, 0, 3, 6, -1, -1, -1, -1, -1, -1, -1, -1),
                  blue_low =
                      _mm_setr_epi8(2, 5, 8, 11, 14, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1),
                  blue_high =
                      _mm_setr_epi8(-1, -1, -1, -1, -1, 1, 4, 7, -1, -1, -1, -1, -1, -1, -1, -1);
    __m256 mean[3], std[3], inv_std[3];
    for (int c = 0; c < 3; c++) {
        mean[c] = _mm256_set1_ps(nz->mean[c]);
        std[c] = _mm256_set1_ps(nz->std[c]);
        inv_std[c] = _mm256_set1_ps(nz->inv_std[c]);
    }
    int x = 0;
    for (; x + 8 <= width; x += 8) {
        const uint8_t *p = rgb + 3 * x;
        __m128i low = _mm_loadu_si128((const __m128i *)p);
        __m128i high = _mm_loadl_epi64((const __m128i *)(p + 16));
        __m128i r = _mm_or_si128(_mm_shuffle_epi8(low, red_low), _mm_shuffle_epi8(high, red_high));
        __m128i g =
            _mm_or_si128(_mm_shuffle_epi8(low, green_low), _mm_shuffle_epi8(high, green_high));
        __m128i b =
            _mm_or_si128(_mm_shuffle_epi8(low, blue_low), _mm_shuffle_epi8(high, blue_high));
        _mm256_storeu_ps(red + x, normalize_avx2(r, mean[0], std[0], inv_std[0]));
        _mm256_storeu_ps(green + x, normalize_avx2(g, mean[1], std[1], inv_std[1]));
        _mm256_storeu_ps(blue + x, normalize_avx2(b, mean[2], std[2], inv_std[2]));
    }
    normalize_row_table(nz, rgb, x, width, red, green, blue);
}

AVX512_INLINE static inline __m512 divide_avx512(__m512 a, __m512 b, __m512 r) {
    __m512 q = _mm512_mul_ps(a, r);
    return _mm512_fmadd_ps(_mm512_fnmadd_ps(q, b, a), r, q);
}

AVX512_INLINE static inline __m512 normalize_avx512(__m128i bytes, __m512 mean, __m512 std,
                                                    __m512 inv_std) {
    const __m512 v255 = _mm512_set1_ps(255.0f), inv255 = _mm512_set1_ps(1.0f / 255.0f);
    __m512 x = _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(bytes));
    return divide_avx512(_mm512_sub_ps(divide_avx512(x, v255, inv255), mean), std, inv_std);
}

__attribute__((target("avx512f,avx512bw,avx512vbmi"))) static void
normalize_row_avx512(const cpu_normalizer *nz, const uint8_t *rgb, int width, float *red,
                     float *green, float *blue) {
    /* 16 pixels = 48 bytes; one byte permute puts red in bytes 0..15, green in 16..31, blue in
     * 32..47. Loads and stores are masked, so the last partial step reads and writes only
     * what belongs to the row. */
    static const uint8_t order[64] = {0, 3, 6, 9,  12, 15, 18, 21, 24, 27, 30, 33, 36, 39, 42, 45,
                                      1, 4, 7, 10, 13, 16, 19, 22, 25, 28, 31, 34, 37, 40, 43, 46,
                                      2, 5, 8, 11, 14, 17, 20, 23, 26, 29, 32, 35, 38, 41, 44, 47,
                                      0, 0, 0, 0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0};
    const __m512i deinterleave = _mm512_loadu_si512(order);
    __m512 mean[3], std[3], inv_std[3];
    for (int c = 0; c < 3; c++) {
        mean[c] = _mm512_set1_ps(nz->mean[c]);
        std[c] = _mm512_set1_ps(nz->std[c]);
        inv_std[c] = _mm512_set1_ps(nz->inv_std[c]);
    }
    for (int x = 0; x < width; x += 16) {
        int count = width - x < 16 ? width - x : 16;
        __mmask64 byte_mask =
            count == 16 ? (__mmask64)0xffffffffffffULL : (((__mmask64)1 << (3 * count)) - 1);
        __mmask16 pixel_mask = (__mmask16)((1u << count) - 1);
        __m512i bytes = _mm512_maskz_loadu_epi8(byte_mask, rgb + 3 * x);
        __m512i planar = _mm512_permutexvar_epi8(deinterleave, bytes);
        __m128i r = _mm512_castsi512_si128(planar);
        __m128i g = _mm512_extracti32x4_epi32(planar, 1);
        __m128i b = _mm512_extracti32x4_epi32(planar, 2);
        _mm512_mask_storeu_ps(red + x, pixel_mask,
                              normalize_avx512(r, mean[0], std[0], inv_std[0]));
        _mm512_mask_storeu_ps(green + x, pixel_mask,
                              normalize_avx512(g, mean[1], std[1], inv_std[1]));
        _mm512_mask_storeu_ps(blue + x, pixel_mask,
                              normalize_avx512(b, mean[2], std[2], inv_std[2]));
    }
}

static int cpu_has_kernel(cpu_normalize_kernel kernel) {
    switch (kernel) {
    case CPU_NORMALIZE_AVX2:
        return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    case CPU_NORMALIZE_AVX512:
        return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
               __builtin_cpu_supports("avx512vbmi");
    default:
        return kernel == CPU_NORMALIZE_TABLE;
    }
}

#else

static int cpu_has_kernel(cpu_normalize_kernel kernel) {
    return kernel == CPU_NORMALIZE_TABLE;
}

#endif

void cpu_normalize_row(const cpu_normalizer *nz, const uint8_t *rgb, int width, float *red,
                       float *green, float *blue) {
#if CPU_NORMALIZE_HAVE_X86
    if (nz->kernel == CPU_NORMALIZE_AVX512) {
        normalize_row_avx512(nz, rgb, width, red, green, blue);
        return;
    }
    if (nz->kernel == CPU_NORMALIZE_AVX2) {
        normalize_row_avx2(nz, rgb, width, red, green, blue);
        return;
    }
#endif
    normalize_row_table(nz, rgb, 0, width, red, green, blue);
}

/* Runs the kernel on a row holding every byte value in every channel and compares the bits
 * with the table: the kernel is then exact for all inputs with this mean and std. */
static int kernel_matches_table(cpu_normalizer *nz, cpu_normalize_kernel kernel) {
    uint8_t probe[256 * 3];
    for (int p = 0; p < 256; p++) probe[3 * p] = probe[3 * p + 1] = probe[3 * p + 2] = (uint8_t)p;
    float planes[3][256];
    cpu_normalize_kernel saved = nz->kernel;
    nz->kernel = kernel;
    cpu_normalize_row(nz, probe, 256, planes[0], planes[1], planes[2]);
    nz->kernel = saved;
    return memcmp(planes, nz->table, sizeof planes) == 0;
}

int cpu_normalizer_init(cpu_normalizer *nz, const float mean[3], const float std[3],
                        cpu_normalize_kernel wanted, dt_error *err) {
    memset(nz, 0, sizeof *nz);
    for (int c = 0; c < 3; c++) {
        if (!(std[c] != 0.0f) || !isfinite(std[c]) || !isfinite(mean[c]))
            return dt_fail(err,
                           "normalise: mean[%d] = %g, std[%d] = %g (std must be finite and "
                           "non-zero)",
                           c, (double)mean[c], c, (double)std[c]);
        nz->mean[c] = mean[c];
        nz->std[c] = std[c];
        nz->inv_std[c] = 1.0f / std[c];
        for (int p = 0; p < 256; p++) nz->table[c][p] = ((float)p / 255.0f - mean[c]) / std[c];
    }
    nz->kernel = CPU_NORMALIZE_TABLE;
    if (wanted == CPU_NORMALIZE_TABLE) return 0;
    if (wanted != CPU_NORMALIZE_AUTO) {
        if (!cpu_has_kernel(wanted))
            return dt_fail(err, "normalise: this CPU cannot run the %s kernel",
                           cpu_normalize_kernel_name(wanted));
        if (!kernel_matches_table(nz, wanted))
            return dt_fail(err, "normalise: the %s kernel is not exact for this mean and std",
                           cpu_normalize_kernel_name(wanted));
        nz->kernel = wanted;
        return 0;
    }
    static const cpu_normalize_kernel fastest_first[] = {CPU_NORMALIZE_AVX512, CPU_NORMALIZE_AVX2};
    for (size_t i = 0; i < sizeof fastest_first / sizeof fastest_first[0]; i++) {
        if (cpu_has_kernel(fastest_first[i]) && kernel_matches_table(nz, fastest_first[i])) {
            nz->kernel = fastest_first[i];
            break;
        }
    }
    return 0;
}
