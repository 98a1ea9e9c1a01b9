/* Convolution over small feature maps (the last stages of a network at small image sizes) as
 * one matrix product per kernel tap, in fp32. oneDNN 2.6's direct kernels parallelise over the
 * output map, and over a 2x2 map most of each 3x3 window is padding; these layers
 * instead keep their activations in HWNC order (position-major, then the image, then the
 * channel), where for one tap every valid output position pairs with one input position and the
 * rows of a position run over the whole batch. Each tap then is a product over only its valid
 * rows, with K (backward-weights) or M (forward, backward-data) as large as the batch times the
 * valid positions of one row, and no arithmetic on padding:
 *   forward          y[rows of (oh, ow)]  += x[rows of (ih, iw)] . W_tap^T
 *   backward-data    dx[rows of (ih, iw)] += dy[rows of (oh, ow)] . W_tap
 *   backward-weights dW_tap               += dy[rows of (oh, ow)]^T . x[rows of (ih, iw)]
 * with (ih, iw) = (oh * stride + kh - padding, ow * stride + kw - padding) and W_tap the O x I
 * matrix of one tap, read from and written to tap-major weights ([kh][kw][O][I]). The
 * products are oneDNN's sgemm; the activations move between the backend's layout and HWNC by
 * oneDNN reorders. The weights and their gradient are handed in the layer's weight layout: when
 * that is tap-major, the products read and write them where they are; otherwise reorders move
 * them, and one copy of the weights per parameter version serves the forward and backward-data
 * (the forward reads it transposed, which costs that product less than a second copy costs). The
 * taps and rows are summed in a fixed order, so a layer repeats bit for bit for a given thread
 * count. A layer may use the products for backward-weights alone (CPU_PER_TAP_WEIGHTS), its forward
 * and backward-data being oneDNN's primitives (cpu_conv.c). */
#include "cpu_internal.h"

#include <omp.h>
#include <stdlib.h>
#include <string.h>

/* A run of output positions whose input positions are equally far apart for one tap: rows
 * `positions * batch` long from output position `out` and input position `in`. */
typedef struct gemm_span {
    int tap; /* kh * kernel + kw */
    int out, in, positions;
} gemm_span;

/* A private buffer and the one reorder that fills it or empties it: an activation in HWNC (from
 * the backend's layout for inputs, to it for outputs), the weights or their gradient
 * tap-major (from or to OIHW). */
typedef struct reordered {
    float *data;
    dnnl_memory_t memory; /* over data */
    cpu_primitive reorder;
} reordered;

/* The weights tap-major, made from OIHW when the buffer or the parameter version changed. */
typedef struct tap_weights {
    reordered copy;
    const float *source; /* NULL: not made yet */
    uint64_t version;
} tap_weights;

struct cpu_conv_gemm {
    cpu_ctx *ctx;
    int taps_in_place;        /* the caller's weights and gradient are tap-major: no copies */
    const float *weights_now; /* the tap-major weights of the current pass */
    float *grad_now;          /* where the current backward-weights pass writes */
    dt_conv_desc d;
    int out_height, out_width;
    gemm_span *spans; /* grouped by tap, taps in order */
    int span_count;
    int weights_only;       /* CPU_PER_TAP_WEIGHTS: no y, dx or weight copy */
    reordered x, y, dy, dx; /* HWNC */
    const float *x_of;      /* x->data whose HWNC copy x holds (NULL: none) */
    /* the weights tap-major, from the OIHW buffer (user_weights) at a parameter version, for the
     * forward and backward-data */
    tap_weights taps;
    dnnl_memory_t user_weights;
    /* the weight gradient tap-major, reordered into the OIHW buffer (user_grad) */
    reordered grad;
    dnnl_memory_t user_grad;
};

/* The first and last output index along one axis whose input index is inside the map, for
 * kernel offset k; -1 in *first when there is none. */
static void valid_range(int out_size, int in_size, int stride, int padding, int k, int *first,
                        int *last) {
    *first = -1;
    *last = -2;
    for (int o = 0; o < out_size; o++) {
        int i = o * stride + k - padding;
        if (i < 0 || i >= in_size) continue;
        if (*first < 0) *first = o;
        *last = o;
    }
}

static int add_span(cpu_conv_gemm *g, int tap, int out, int in, int positions, dt_error *err) {
    gemm_span *grown = realloc(g->spans, (size_t)(g->span_count + 1) * sizeof *grown);
    if (!grown) return dt_fail(err, "out of memory for a convolution's tap plan");
    g->spans = grown;
    g->spans[g->span_count++] = (gemm_span){tap, out, in, positions};
    return 0;
}

/* The spans of every tap: with stride 1 a row of output positions maps onto a row of input
 * positions, and when both rows are whole map rows, consecutive rows join into one span. */
static int plan_spans(cpu_conv_gemm *g, dt_error *err) {
    const dt_conv_desc *d = &g->d;
    const int OH = g->out_height, OW = g->out_width, H = d->in_height, W = d->in_width;
    for (int kh = 0; kh < d->kernel; kh++)
        for (int kw = 0; kw < d->kernel; kw++) {
            const int tap = kh * d->kernel + kw;
            int oh0, oh1, ow0, ow1;
            valid_range(OH, H, d->stride, d->padding, kh, &oh0, &oh1);
            valid_range(OW, W, d->stride, d->padding, kw, &ow0, &ow1);
            if (oh0 < 0 || ow0 < 0) continue;
            const int ih0 = oh0 * d->stride + kh - d->padding;
            const int iw0 = ow0 * d->stride + kw - d->padding;
            if (d->stride == 1 && ow0 == 0 && ow1 == OW - 1 && OW == W) {
                if (add_span(g, tap, oh0 * OW, ih0 * W, (oh1 - oh0 + 1) * OW, err)) return -1;
                continue;
            }
            for (int oh = oh0; oh <= oh1; oh++) {
                const int ih = ih0 + (oh - oh0) * d->stride;
                if (d->stride == 1) {
                    if (add_span(g, tap, oh * OW + ow0, ih * W + iw0, ow1 - ow0 + 1, err))
                        return -1;
                    continue;
                }
                for (int ow = ow0; ow <= ow1; ow++)
                    if (add_span(g, tap, oh * OW + ow, ih * W + iw0 + (ow - ow0) * d->stride, 1,
                                 err))
                        return -1;
            }
        }
    return 0;
}

/* HWNC description of an n x c x h x w activation. */
static int hwnc_md(dnnl_memory_desc_t *md, int n, int c, int h, int w, dt_error *err) {
    const dnnl_dims_t dims = {n, c, h, w};
    const dnnl_dims_t strides = {c, 1, (dnnl_dim_t)w * n * c, (dnnl_dim_t)n * c};
    return cpu_check(dnnl_memory_desc_init_by_strides(md, 4, dims, dnnl_f32, strides), err,
                     "describing an HWNC activation");
}

int cpu_conv_taps_md(dnnl_memory_desc_t *md, const dt_conv_desc *d, dt_error *err) {
    const dnnl_dims_t dims = {d->out_channels, d->in_channels, d->kernel, d->kernel};
    const dnnl_dim_t plane = (dnnl_dim_t)d->out_channels * d->in_channels;
    const dnnl_dims_t strides = {d->in_channels, 1, (dnnl_dim_t)d->kernel * plane, plane};
    return cpu_check(dnnl_memory_desc_init_by_strides(md, 4, dims, dnnl_f32, strides), err,
                     "describing tap-major weights");
}

/* r->data in layout own, with the reorder from `from` to `to` (one of which is own). */
static int reordered_init(cpu_ctx *ctx, reordered *r, const dnnl_memory_desc_t *own,
                          const dnnl_memory_desc_t *from, const dnnl_memory_desc_t *to,
                          dt_error *err) {
    r->data = cpu_aligned_alloc(dnnl_memory_desc_get_size(own), 1);
    if (!r->data) return dt_fail(err, "out of memory for a convolution's private buffer");
    return cpu_memory_create(ctx, own, r->data, &r->memory, err) ||
                   cpu_reorder_create(ctx, from, to, &r->reorder, err,
                                      "creating a per-tap convolution reorder")
               ? -1
               : 0;
}

static void reordered_free(reordered *r) {
    cpu_primitive_destroy(&r->reorder);
    if (r->memory) dnnl_memory_destroy(r->memory);
    cpu_aligned_free(r->data);
}

/* An n x c x h x w activation in HWNC, reordered from the backend's layout (to_hwnc) or to it. */
static int hwnc_init(cpu_ctx *ctx, reordered *r, int n, int channels, int h, int w, int to_hwnc,
                     dt_error *err) {
    dnnl_memory_desc_t layout, hwnc;
    return cpu_activation_md(ctx, &layout, n, channels, h, w, err) ||
                   hwnc_md(&hwnc, n, channels, h, w, err) ||
                   reordered_init(ctx, r, &hwnc, to_hwnc ? &layout : &hwnc,
                                  to_hwnc ? &hwnc : &layout, err)
               ? -1
               : 0;
}

void cpu_conv_gemm_destroy(cpu_conv_gemm *g) {
    if (!g) return;
    reordered *owned[] = {&g->x, &g->y, &g->dy, &g->dx, &g->taps.copy, &g->grad};
    for (size_t i = 0; i < sizeof owned / sizeof owned[0]; i++) reordered_free(owned[i]);
    if (g->user_weights) dnnl_memory_destroy(g->user_weights);
    if (g->user_grad) dnnl_memory_destroy(g->user_grad);
    free(g->spans);
    free(g);
}

/* Where oneDNN 2.6's direct kernels spend most of a window on padding and parallelise poorly:
 * a kernel wider than 1 (a 1x1 convolution has no padding to skip, and oneDNN's is faster
 * there) over few output positions. All passes up to CPU_CONV_GEMM_MAX_POSITIONS (2x2) with
 * 16-channel blocks (AVX-512), where oneDNN's forward and backward-data over 4x4 maps are as
 * fast as the products and only its backward-weights is slower, so up to
 * CPU_CONV_GEMM_WEIGHTS_MAX_POSITIONS (4x4) that pass alone; with 8-channel blocks (AVX2) all
 * passes up to 4x4. fp32 only: bf16 has its own measured choices. A rule of shape and
 * instruction set, so that fp32 runs repeat bit for bit on one machine. */
cpu_per_tap cpu_conv_per_tap_rule(const cpu_ctx *ctx, const dt_conv_desc *d) {
    int out_height, out_width;
    dt_error unused = {{0}, 0};
    if (dt_conv_desc_check(d, &out_height, &out_width, &unused)) return CPU_PER_TAP_NONE;
    if (ctx->precision == DT_PRECISION_BF16 || d->kernel == 1) return CPU_PER_TAP_NONE;
    const int positions = out_height * out_width;
    const int all_max =
        ctx->block == 16 ? CPU_CONV_GEMM_MAX_POSITIONS : CPU_CONV_GEMM_WEIGHTS_MAX_POSITIONS;
    if (positions <= all_max) return CPU_PER_TAP_ALL;
    if (positions <= CPU_CONV_GEMM_WEIGHTS_MAX_POSITIONS && !d->no_backward)
        return CPU_PER_TAP_WEIGHTS;
    return CPU_PER_TAP_NONE;
}

cpu_conv_gemm *cpu_conv_gemm_create(cpu_ctx *ctx, const dt_conv_desc *d, int out_height,
                                    int out_width, cpu_per_tap passes,
                                    const dnnl_memory_desc_t *weights_md, dt_error *err) {
    cpu_conv_gemm *g = calloc(1, sizeof *g);
    if (!g) {
        dt_fail(err, "out of memory creating a convolution");
        return NULL;
    }
    g->ctx = ctx;
    g->d = *d;
    g->out_height = out_height;
    g->out_width = out_width;
    g->weights_only = passes == CPU_PER_TAP_WEIGHTS;
    dnnl_memory_desc_t taps;
    if (plan_spans(g, err) || cpu_conv_taps_md(&taps, d, err) ||
        hwnc_init(ctx, &g->x, d->batch, d->in_channels, d->in_height, d->in_width, 1, err) ||
        hwnc_init(ctx, &g->dy, d->batch, d->out_channels, out_height, out_width, 1, err)) {
        cpu_conv_gemm_destroy(g);
        return NULL;
    }
    g->taps_in_place = dnnl_memory_desc_equal(weights_md, &taps);
    if ((!g->taps_in_place && (reordered_init(ctx, &g->grad, &taps, &taps, weights_md, err) ||
                               cpu_memory_create(ctx, weights_md, NULL, &g->user_grad, err))) ||
        (!g->weights_only &&
         (hwnc_init(ctx, &g->y, d->batch, d->out_channels, out_height, out_width, 0, err) ||
          hwnc_init(ctx, &g->dx, d->batch, d->in_channels, d->in_height, d->in_width, 0, err) ||
          (!g->taps_in_place &&
           (reordered_init(ctx, &g->taps.copy, &taps, weights_md, &taps, err) ||
            cpu_memory_create(ctx, weights_md, NULL, &g->user_weights, err)))))) {
        cpu_conv_gemm_destroy(g);
        return NULL;
    }
    return g;
}

static int run_reorder(cpu_ctx *ctx, const cpu_primitive *reorder, dnnl_memory_t from,
                       dnnl_memory_t to, dt_error *err, const char *what) {
    dnnl_exec_arg_t args[] = {{DNNL_ARG_FROM, from}, {DNNL_ARG_TO, to}};
    return cpu_primitive_execute(ctx, reorder, 2, args, err, what);
}

/* weights_now: the caller's weights when they are tap-major, else t's copy, brought up to date
 * for weight at the current parameter version. */
static int load_taps(cpu_conv_gemm *g, tap_weights *t, const float *weight, dt_error *err) {
    g->weights_now = g->taps_in_place ? weight : t->copy.data;
    if (g->taps_in_place) return 0;
    const uint64_t version = g->ctx->params_version;
    if (t->source == weight && t->version == version) return 0;
    t->source = NULL;
    if (cpu_memory_point(g->user_weights, weight, err) ||
        run_reorder(g->ctx, &t->copy.reorder, g->user_weights, t->copy.memory, err,
                    "reordering weights tap-major"))
        return -1;
    t->source = weight;
    t->version = version;
    return 0;
}

typedef enum { PASS_FORWARD, PASS_DATA, PASS_WEIGHTS } gemm_pass;

/* Every span of one pass in one OpenMP region: each thread takes a block of the products'
 * columns (whole 16-column blocks) through all the spans in order, with sgemm on that thread
 * alone (oneDNN runs sgemm single-threaded inside a parallel region), so that a pass wakes the
 * threads once, not once per span. Output columns never cross threads, and each sum runs in
 * the spans' order: the result does not depend on the timing. PASS_WEIGHTS overwrites a tap at
 * its first span and adds the later ones; the other passes add to a zeroed output. */
static int run_pass(cpu_conv_gemm *g, gemm_pass pass, dt_error *err) {
    const dt_conv_desc *d = &g->d;
    const dnnl_dim_t N = d->batch, I = d->in_channels, O = d->out_channels;
    const dnnl_dim_t columns = pass == PASS_FORWARD ? O : I, blocks = (columns + 15) / 16;
    const float *taps = g->weights_now, *x = g->x.data, *dy = g->dy.data;
    float *y = g->y.data, *dx = g->dx.data, *grad = g->grad_now;
    const size_t plane = (size_t)O * I;
    dnnl_status_t status = dnnl_success;
#pragma omp parallel
    {
        const dnnl_dim_t threads = omp_get_num_threads(), t = omp_get_thread_num();
        dnnl_dim_t c0 = blocks * t / threads * 16, c1 = blocks * (t + 1) / threads * 16;
        if (c1 > columns) c1 = columns;
        int last_tap = -1;
        for (int s = 0; s < g->span_count && c0 < c1; s++) {
            const gemm_span *sp = &g->spans[s];
            const dnnl_dim_t rows = sp->positions * N;
            const size_t out = (size_t)sp->out * N * O, in = (size_t)sp->in * N * I;
            const size_t tap = (size_t)sp->tap * plane; /* the tap's O x I matrix */
            dnnl_status_t st;
            if (pass == PASS_FORWARD) /* y[:, c0..c1) += x . W_tap[c0..c1)^T */
                st = dnnl_sgemm('N', 'T', rows, c1 - c0, I, 1.0f, x + in, I, taps + tap + c0 * I, I,
                                1.0f, y + out + c0, O);
            else if (pass == PASS_DATA) /* dx[:, c0..c1) += dy . W_tap[:, c0..c1) */
                st = dnnl_sgemm('N', 'N', rows, c1 - c0, O, 1.0f, dy + out, O, taps + tap + c0, I,
                                1.0f, dx + in + c0, I);
            else /* dW_tap[:, c0..c1) (+)= dy^T . x[:, c0..c1) */
                st = dnnl_sgemm('T', 'N', O, c1 - c0, rows, 1.0f, dy + out, O, x + in + c0, I,
                                last_tap == sp->tap ? 1.0f : 0.0f, grad + tap + c0, I);
            last_tap = sp->tap;
            if (st != dnnl_success) {
#pragma omp atomic write
                status = st;
            }
        }
    }
    return cpu_check(status, err, "convolution sgemm");
}

int cpu_conv_gemm_forward(cpu_conv_gemm *g, const float *weight, const dt_tensor *x, dt_tensor *y,
                          dt_error *err) {
    if (g->weights_only)
        return dt_fail(err, "conv_forward: this layer's products are weights only");
    g->x_of = NULL;
    if (load_taps(g, &g->taps, weight, err) ||
        run_reorder(g->ctx, &g->x.reorder, x->memory, g->x.memory, err, "reordering x to HWNC"))
        return -1;
    g->x_of = x->data;
    memset(g->y.data, 0, y->count * sizeof(float));
    if (run_pass(g, PASS_FORWARD, err)) return -1;
    return run_reorder(g->ctx, &g->y.reorder, g->y.memory, y->memory, err,
                       "reordering y from HWNC");
}

/* dW (tap-major) into grad_now from the HWNC x and dy; a tap without valid positions gets
 * zeros. */
static int weights_grad_taps(cpu_conv_gemm *g, dt_error *err) {
    const dt_conv_desc *d = &g->d;
    const size_t plane = (size_t)d->out_channels * d->in_channels;
    for (int tap = 0, s = 0; tap < d->kernel * d->kernel; tap++) {
        if (s < g->span_count && g->spans[s].tap == tap)
            while (s < g->span_count && g->spans[s].tap == tap) s++;
        else
            memset(g->grad_now + (size_t)tap * plane, 0, plane * sizeof(float));
    }
    return run_pass(g, PASS_WEIGHTS, err);
}

int cpu_conv_gemm_backward(cpu_conv_gemm *g, const float *weight, const dt_tensor *x,
                           const dt_tensor *dy, dt_tensor *dx, float *weight_grad, int accumulate,
                           dt_error *err) {
    const dt_conv_desc *d = &g->d;
    const size_t I = (size_t)d->in_channels, O = (size_t)d->out_channels;
    if (dx && g->weights_only)
        return dt_fail(err, "conv_backward: this layer's products are weights only");
    if (run_reorder(g->ctx, &g->dy.reorder, dy->memory, g->dy.memory, err, "reordering dy to HWNC"))
        return -1;
    if (weight_grad) {
        /* the forward's HWNC x when it was made from this x (the saved-tensor contract), else
         * a copy made here and not recorded: only a forward knows that x's values are new (a
         * layer whose forward is oneDNN's sees the same tensor with new values every step) */
        if (g->x_of != x->data) {
            g->x_of = NULL;
            if (run_reorder(g->ctx, &g->x.reorder, x->memory, g->x.memory, err,
                            "reordering x to HWNC"))
                return -1;
        }
        float *target = accumulate ? g->ctx->grad_scratch : weight_grad;
        g->grad_now = g->taps_in_place ? target : g->grad.data;
        if (weights_grad_taps(g, err) ||
            (!g->taps_in_place &&
             (cpu_memory_point(g->user_grad, target, err) ||
              run_reorder(g->ctx, &g->grad.reorder, g->grad.memory, g->user_grad, err,
                          "reordering the weight gradient"))))
            return -1;
        if (accumulate)
            cpu_add_floats(weight_grad, target, O * I * (size_t)d->kernel * (size_t)d->kernel);
    }
    if (!dx) return 0;
    if (load_taps(g, &g->taps, weight, err)) return -1;
    memset(g->dx.data, 0, dx->count * sizeof(float));
    if (run_pass(g, PASS_DATA, err)) return -1;
    return run_reorder(g->ctx, &g->dx.reorder, g->dx.memory, dx->memory, err,
                       "reordering dx from HWNC");
}
