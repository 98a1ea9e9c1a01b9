/* The instruction set oneDNN dispatches to on this CPU (after any ONEDNN_MAX_CPU_ISA cap) and the
 * choices that follow from it at start-up: the channel block of activations and whether bf16
 * convolutions exist. Decided at run time, so one binary suits every x86 CPU it lands on. */
#include "cpu_internal.h"

#include <stdio.h>

#include "dtrain/config.h"

/* An ISA value includes every narrower one's bits (dnnl_types.h), except avx2_vnni, which is
 * AVX2 plus VNNI and not AVX-512: "isa has all of wanted's bits" is "isa is at least wanted". */
static int isa_at_least(dnnl_cpu_isa_t isa, dnnl_cpu_isa_t wanted) {
    return ((unsigned)isa & (unsigned)wanted) == (unsigned)wanted;
}

void cpu_isa_choose(cpu_ctx *ctx) {
    ctx->isa = dnnl_get_effective_cpu_isa();
    ctx->block = isa_at_least(ctx->isa, dnnl_cpu_isa_avx512_core) ? 16 : 8;
}

int cpu_isa_has_bf16(dnnl_cpu_isa_t isa) {
    return isa_at_least(isa, dnnl_cpu_isa_avx512_core_bf16);
}

const char *cpu_isa_name(dnnl_cpu_isa_t isa) {
    switch (isa) {
    case dnnl_cpu_isa_sse41:
        return "sse41";
    case dnnl_cpu_isa_avx:
        return "avx";
    case dnnl_cpu_isa_avx2:
        return "avx2";
    case dnnl_cpu_isa_avx2_vnni:
        return "avx2_vnni";
    case dnnl_cpu_isa_avx512_mic:
        return "avx512_mic";
    case dnnl_cpu_isa_avx512_mic_4ops:
        return "avx512_mic_4ops";
    case dnnl_cpu_isa_avx512_core:
        return "avx512_core";
    case dnnl_cpu_isa_avx512_core_vnni:
        return "avx512_core_vnni";
    case dnnl_cpu_isa_avx512_core_bf16:
        return "avx512_core_bf16";
    case dnnl_cpu_isa_avx512_core_amx:
        return "avx512_core_amx";
    default:
        return "isa_all"; /* no JIT ISA beyond baseline x86-64 */
    }
}

int dt_backend_cpu_describe(const dt_backend *backend, char *text, size_t size) {
    const cpu_ctx *ctx = backend->ctx;
    return snprintf(text, size,
                    "CPU backend: oneDNN dispatches to %s; activations in nChw%dc "
                    "(%d-channel blocks), precision %s",
                    cpu_isa_name(ctx->isa), ctx->block, ctx->block,
                    dt_precision_name((dt_precision_kind)ctx->precision));
}
