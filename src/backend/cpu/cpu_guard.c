/* The non-finite guard of the CPU backend (dt_guard_state in backend.h): the same state and
 * update as the CUDA backend's (guard_verdict.h), kept in the context. Ops finish when they
 * return, so guard_read waits for nothing; the trainer still reads the state only at log time,
 * as on the GPU, so that both backends decide at the same step. The weights' moving average is
 * here too: like the SGD step, it reads the guard's verdict. */
#include "cpu_internal.h"

#include <math.h>
#include <string.h>

#include "backend/guard_verdict.h"

void cpu_guard_init(cpu_ctx *ctx) {
    memset(&ctx->guard, 0, sizeof ctx->guard);
    ctx->guard.halted_step = -1;
    ctx->guard_halt_after = INT64_MAX;
}

int cpu_guard_reset(void *opaque, const dt_guard_state *state, int64_t halt_after, dt_error *err) {
    cpu_ctx *ctx = opaque;
    cpu_guard_init(ctx);
    ctx->guard.in_row = state->in_row;
    ctx->guard.total = state->total;
    ctx->guard.halted_step = state->halted_step;
    ctx->guard_halt_after = halt_after;
    return 0;
}

/* The gradients are scanned in blocks with a branch-free test of the exponent bits (all ones:
 * infinity or NaN) that vectorises; only the first block with a hit is searched element by
 * element for the first non-finite index. */
enum { CPU_GUARD_BLOCK = 4096 };

int cpu_guard_check(void *opaque, const float *grads, size_t count, int64_t step, dt_error *err) {
    cpu_ctx *ctx = opaque;
    (void)err;
    const long long n = (long long)count;
    const long long blocks = (n + CPU_GUARD_BLOCK - 1) / CPU_GUARD_BLOCK;
    long long first_block = blocks;
#pragma omp parallel for if (n >= (1 << 15)) schedule(static) reduction(min : first_block)
    for (long long b = 0; b < blocks; b++) {
        const long long lo = b * CPU_GUARD_BLOCK;
        const long long hi = lo + CPU_GUARD_BLOCK < n ? lo + CPU_GUARD_BLOCK : n;
        uint32_t hit = 0;
#pragma omp simd reduction(| : hit)
        for (long long i = lo; i < hi; i++) {
            uint32_t bits;
            memcpy(&bits, &grads[i], sizeof bits);
            hit |= (uint32_t)((bits & 0x7f800000u) == 0x7f800000u);
        }
        if (hit && b < first_block) first_block = b;
    }
    long long first = n;
    for (long long i = first_block * CPU_GUARD_BLOCK; i < n && first == n; i++)
        if (!isfinite(grads[i])) first = i;
    int is_nan = first < n && isnan(grads[first]);
    dt_guard_apply(&ctx->guard, ctx->guard_halt_after, step, first < n ? first : -1, is_nan);
    return 0;
}

int cpu_guard_restore(void *opaque, float *dst, const float *backup, size_t count, dt_error *err) {
    cpu_ctx *ctx = opaque;
    (void)err;
    if (!ctx->guard.step_skipped || !count) return 0;
    ctx->params_version++;
    memmove(dst, backup, count * sizeof *dst);
    return 0;
}

int cpu_guard_read(void *opaque, dt_guard_state *out, dt_error *err) {
    cpu_ctx *ctx = opaque;
    (void)err;
    *out = ctx->guard;
    dt_guard_clear_read(&ctx->guard);
    return 0;
}

/* The weights' moving average (dt_backend_ema_update): two rounded products, then the sum; the
 * build never contracts them into a fused multiply-add (ISO C, -ffp-contract=off). Guarded as
 * the SGD step: a skipped step leaves the average as it is. */
int cpu_ema_update(void *opaque, float *ema, const float *live, float decay, float one_minus_decay,
                   size_t count, int guarded, dt_error *err) {
    cpu_ctx *ctx = opaque;
    (void)err;
    if (guarded && ctx->guard.step_skipped) return 0;
    ctx->params_version++;
    const long long n = (long long)count;
#pragma omp parallel for simd if (n >= (1 << 15)) schedule(static)
    for (long long i = 0; i < n; i++) {
        float kept = decay * ema[i];
        float added = one_minus_decay * live[i];
        ema[i] = kept + added;
    }
    return 0;
}
