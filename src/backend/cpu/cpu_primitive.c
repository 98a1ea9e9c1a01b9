/* oneDNN plumbing for the CPU backend: primitive creation with the backend's attributes, the
 * one shared user-mode scratchpad, reorders, memory objects, aligned buffers and status text. */
#include "cpu_internal.h"

#include <stdlib.h>
#include <string.h>

#include <oneapi/dnnl/dnnl_debug.h>

enum { CPU_ALIGNMENT = 64, CPU_MAX_ARGS = 16 };

int cpu_check(dnnl_status_t status, dt_error *err, const char *what) {
    if (status == dnnl_success) return 0;
    return dt_fail(err, "oneDNN %s: %s", what, dnnl_status2str(status));
}

static int make_attributes(cpu_ctx *ctx, dnnl_primitive_attr_t *attr, dt_error *err) {
    if (cpu_check(dnnl_primitive_attr_create(attr), err, "creating primitive attributes") != 0)
        return -1;
    (void)ctx;
    /* bf16 is explicit in the data types of the convolutions (cpu_conv.c), not an fpmath mode:
     * oneDNN 2.6 does not down-convert fp32 convolutions to bf16 on the CPU. */
    dnnl_status_t status =
        dnnl_primitive_attr_set_scratchpad_mode(*attr, dnnl_scratchpad_mode_user);
    if (status != dnnl_success) {
        dnnl_primitive_attr_destroy(*attr);
        return cpu_check(status, err, "setting primitive attributes");
    }
    return 0;
}

int cpu_primitive_desc_create(cpu_ctx *ctx, const_dnnl_op_desc_t op_desc,
                              const_dnnl_primitive_desc_t hint, dnnl_primitive_desc_t *pd,
                              dt_error *err, const char *what) {
    dnnl_primitive_attr_t attr;
    if (make_attributes(ctx, &attr, err) != 0) return -1;
    dnnl_status_t status = dnnl_primitive_desc_create(pd, op_desc, attr, ctx->engine, hint);
    dnnl_primitive_attr_destroy(attr);
    return cpu_check(status, err, what);
}

static int grow_scratchpad(cpu_ctx *ctx, size_t bytes, dt_error *err) {
    if (bytes <= ctx->scratchpad_size) return 0;
    void *bigger = cpu_aligned_alloc(bytes, 0);
    if (!bigger) return dt_fail(err, "out of memory for a %zu-byte oneDNN scratchpad", bytes);
    cpu_aligned_free(ctx->scratchpad);
    ctx->scratchpad = bigger;
    ctx->scratchpad_size = bytes;
    return 0;
}

int cpu_primitive_create(cpu_ctx *ctx, const_dnnl_primitive_desc_t pd, cpu_primitive *out,
                         dt_error *err, const char *what) {
    memset(out, 0, sizeof *out);
    if (cpu_check(dnnl_primitive_create(&out->primitive, pd), err, what) != 0) return -1;
    const dnnl_memory_desc_t *scratch_md =
        dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0);
    size_t bytes = scratch_md ? dnnl_memory_desc_get_size(scratch_md) : 0;
    if (bytes == 0) return 0;
    if (grow_scratchpad(ctx, bytes, err) != 0 ||
        cpu_memory_create(ctx, scratch_md, NULL, &out->scratchpad, err) != 0) {
        cpu_primitive_destroy(out);
        return dt_error_prefix(err, "%s", what);
    }
    return 0;
}

int cpu_reorder_create(cpu_ctx *ctx, const dnnl_memory_desc_t *from, const dnnl_memory_desc_t *to,
                       cpu_primitive *out, dt_error *err, const char *what) {
    dnnl_primitive_attr_t attr;
    if (make_attributes(ctx, &attr, err) != 0) return -1;
    const size_t from_bytes = dnnl_memory_desc_get_size(from),
                 to_bytes = dnnl_memory_desc_get_size(to);
    const int one_thread = cpu_one_thread_suits(from_bytes > to_bytes ? from_bytes : to_bytes);
    const int threads = cpu_threads_limit(one_thread);
    dnnl_primitive_desc_t pd;
    dnnl_status_t status =
        dnnl_reorder_primitive_desc_create(&pd, from, ctx->engine, to, ctx->engine, attr);
    dnnl_primitive_attr_destroy(attr);
    int rc = cpu_check(status, err, what);
    if (rc == 0) {
        rc = cpu_primitive_create(ctx, pd, out, err, what);
        dnnl_primitive_desc_destroy(pd);
    }
    cpu_threads_restore(one_thread, threads);
    if (rc == 0) out->one_thread = one_thread;
    return rc;
}

void cpu_primitive_destroy(cpu_primitive *p) {
    if (p->primitive) dnnl_primitive_destroy(p->primitive);
    if (p->scratchpad) dnnl_memory_destroy(p->scratchpad);
    memset(p, 0, sizeof *p);
}

int cpu_primitive_execute(cpu_ctx *ctx, const cpu_primitive *p, int nargs,
                          const dnnl_exec_arg_t *args, dt_error *err, const char *what) {
    dnnl_exec_arg_t all[CPU_MAX_ARGS];
    if (nargs < 0 || nargs >= CPU_MAX_ARGS)
        return dt_fail(err, "%s: %d arguments is too many", what, nargs);
    memcpy(all, args, (size_t)nargs * sizeof *args);
    if (p->scratchpad) {
        if (cpu_memory_point(p->scratchpad, ctx->scratchpad, err) != 0)
            return dt_error_prefix(err, "%s", what);
        all[nargs++] = (dnnl_exec_arg_t){DNNL_ARG_SCRATCHPAD, p->scratchpad};
    }
    const int threads = cpu_threads_limit(p->one_thread);
    dnnl_status_t status = dnnl_primitive_execute(p->primitive, ctx->stream, nargs, all);
    cpu_threads_restore(p->one_thread, threads);
    return cpu_check(status, err, what);
}

int cpu_memory_create(cpu_ctx *ctx, const dnnl_memory_desc_t *md, void *handle, dnnl_memory_t *out,
                      dt_error *err) {
    /* DNNL_MEMORY_NONE: no buffer now; the handle is set before each use */
    void *initial = handle ? handle : DNNL_MEMORY_NONE;
    return cpu_check(dnnl_memory_create(out, md, ctx->engine, initial), err,
                     "creating a memory object");
}

int cpu_memory_point(dnnl_memory_t memory, const void *handle, dt_error *err) {
    return cpu_check(dnnl_memory_set_data_handle(memory, (void *)handle), err,
                     "setting a memory handle");
}

void *cpu_aligned_alloc(size_t bytes, int zero) {
    if (bytes > (size_t)-1 - CPU_ALIGNMENT) return NULL;
    size_t rounded = (bytes + CPU_ALIGNMENT - 1) / CPU_ALIGNMENT * CPU_ALIGNMENT;
    if (rounded == 0) rounded = CPU_ALIGNMENT;
    void *p = aligned_alloc(CPU_ALIGNMENT, rounded);
    if (p && zero) memset(p, 0, rounded);
    return p;
}

void cpu_aligned_free(void *p) {
    free(p);
}

int cpu_grad_scratch_reserve(cpu_ctx *ctx, size_t count, dt_error *err) {
    if (count <= ctx->grad_scratch_count) return 0;
    float *bigger =
        count <= ((size_t)-1) / sizeof(float) ? cpu_aligned_alloc(count * sizeof(float), 1) : NULL;
    if (!bigger) return dt_fail(err, "out of memory for a %zu-float gradient scratch", count);
    cpu_aligned_free(ctx->grad_scratch);
    ctx->grad_scratch = bigger;
    ctx->grad_scratch_count = count;
    return 0;
}

void cpu_add_floats(float *dst, const float *src, size_t count) {
    const long long n = (long long)count;
#pragma omp parallel for simd if (n >= (1 << 15)) schedule(static)
    for (long long i = 0; i < n; i++) dst[i] += src[i];
}
