/* bench_fma_peak: the CPU's fp32 multiply-add peak in GFLOP/s over N OpenMP threads, from
 * independent chains of fused multiply-adds in the widest vectors the CPU has (AVX-512F, else
 * AVX2 with FMA, else whatever the compiler makes of plain C): the ceiling bench_headroom.sh
 * sets dtrain's and PyTorch's convolution throughput against. Twelve chains per thread hide the
 * FMA latency of the x86 cores seen so far (4 cycles, 2 FMA pipes).
 *
 *   bench_fma_peak [--threads N] [--seconds S] [--isa avx512f|avx2|generic]
 *
 * --isa caps the vectors (as ONEDNN_MAX_CPU_ISA=AVX2 caps oneDNN's); one the CPU lacks is an
 * error (exit 2).
 * Prints one line: "fma_peak isa=avx512f|avx2|generic threads=N gflops=<best of 5 rounds>". */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHAINS 12

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>

/* A function that runs `rounds` x 256 iterations of CHAINS multiply-adds on LANES lanes, built
 * for one instruction set; it returns a sum that keeps the compiler from dropping the work. */
#define FMA_CHAINS(name, isa, vec, lanes, set1, fmadd, storeu)                                     \
    __attribute__((target(isa))) static float name(long rounds) {                                  \
        vec acc[CHAINS];                                                                           \
        for (int k = 0; k < CHAINS; k++) acc[k] = set1(1e-3f * (float)k);                          \
        const vec scale = set1(0.999f), add = set1(1e-4f);                                         \
        for (long r = 0; r < rounds * 256; r++)                                                    \
            _Pragma("GCC unroll 12") /* unrolled, so that the chains stay in registers */          \
                for (int k = 0; k < CHAINS; k++) acc[k] = fmadd(acc[k], scale, add);               \
        float values[lanes], sum = 0;                                                              \
        for (int k = 0; k < CHAINS; k++) {                                                         \
            storeu(values, acc[k]);                                                                \
            for (int l = 0; l < lanes; l++) sum += values[l];                                      \
        }                                                                                          \
        return sum;                                                                                \
    }

FMA_CHAINS(chains_avx512, "avx512f", __m512, 16, _mm512_set1_ps, _mm512_fmadd_ps, _mm512_storeu_ps)
FMA_CHAINS(chains_avx2, "avx2,fma", __m256, 8, _mm256_set1_ps, _mm256_fmadd_ps, _mm256_storeu_ps)
#endif

/* Plain C: 16 lanes of CHAINS multiply-adds, vectorised as the compiler sees fit. */
static float chains_generic(long rounds) {
    float acc[CHAINS][16];
    for (int k = 0; k < CHAINS; k++)
        for (int l = 0; l < 16; l++) acc[k][l] = 1e-3f * (float)k;
    /* unrolled, so that the chains stay in registers */
    for (long r = 0; r < rounds * 256; r++)
#pragma GCC unroll 12
        for (int k = 0; k < CHAINS; k++)
            for (int l = 0; l < 16; l++) acc[k][l] = acc[k][l] * 0.999f + 1e-4f;
    float sum = 0;
    for (int k = 0; k < CHAINS; k++)
        for (int l = 0; l < 16; l++) sum += acc[k][l];
    return sum;
}

typedef float (*chains_fn)(long rounds);

/* Where the chains' sums go, so that the compiler keeps the work. */
static volatile float sink;

int main(int argc, char **argv) {
    int threads = omp_get_max_threads();
    double seconds = 0.3;
    const char *cap = NULL;
    for (int i = 1; i < argc; i++) {
        if (i + 1 < argc && !strcmp(argv[i], "--threads"))
            threads = atoi(argv[++i]);
        else if (i + 1 < argc && !strcmp(argv[i], "--seconds"))
            seconds = atof(argv[++i]);
        else if (i + 1 < argc && !strcmp(argv[i], "--isa"))
            cap = argv[++i];
        else {
            fprintf(
                stderr,
                "usage: bench_fma_peak [--threads N] [--seconds S] [--isa avx512f|avx2|generic]\n");
            return 2;
        }
    }
    /* how wide --isa allows: 2 AVX-512F, 1 AVX2, 0 plain C */
    const int allowed = !cap || !strcmp(cap, "avx512f") ? 2 : !strcmp(cap, "avx2") ? 1 : 0;
    if (cap && allowed == 0 && strcmp(cap, "generic")) {
        fprintf(stderr, "bench_fma_peak: --isa is avx512f, avx2 or generic, not %s\n", cap);
        return 2;
    }
    if (threads < 1 || !(seconds > 0)) {
        fprintf(stderr, "bench_fma_peak: --threads and --seconds must be positive\n");
        return 2;
    }
    const char *isa = "generic";
    chains_fn run = chains_generic;
    int lanes = 16;
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
    if (allowed >= 2 && __builtin_cpu_supports("avx512f")) {
        isa = "avx512f", run = chains_avx512, lanes = 16;
    } else if (allowed >= 1 && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
        isa = "avx2", run = chains_avx2, lanes = 8;
    }
#endif
    if (cap && strcmp(cap, isa) != 0) {
        fprintf(stderr, "bench_fma_peak: this CPU has no %s (widest here: %s)\n", cap, isa);
        return 2;
    }
    /* rounds per call for about a hundredth of the time asked, from a single-thread trial */
    long rounds = 64;
    for (;;) {
        double start = omp_get_wtime();
        sink = run(rounds);
        if (omp_get_wtime() - start > seconds / 100 || rounds > (1L << 40)) break;
        rounds *= 2;
    }
    double best = 0;
    for (int round = 0; round < 5; round++) {
        long calls_done = 0;
        double sums = 0, start = omp_get_wtime();
#pragma omp parallel num_threads(threads) reduction(+ : calls_done, sums)
        {
            while (omp_get_wtime() - start < seconds) {
                sums += run(rounds);
                calls_done++;
            }
        }
        double elapsed = omp_get_wtime() - start;
        sink = (float)sums;
        double gflops =
            2.0 * CHAINS * lanes * 256.0 * (double)rounds * (double)calls_done / elapsed / 1e9;
        if (gflops > best) best = gflops;
    }
    printf("fma_peak isa=%s threads=%d gflops=%.1f\n", isa, threads, best);
    return 0;
}
