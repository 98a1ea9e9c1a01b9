/* Mixup and CutMix of an assembled uint8 batch with timm's Mixup semantics in 'batch' mode (one
 * lambda per batch, correct_lam), done as timm's FastCollateMixup does on uint8 pixels: the draw
 * per batch from its own seeded generator, the cutmix box, and the in-place mixing of each slot
 * with its partner (the batch reversed, over the slots that count). */
#include "dtrain/data.h"

#include <math.h>
#include <string.h>

/* tag of the mixing streams, apart from the augmentation's per-file streams */
#define MIX_STREAM_TAG 0x4D4958ull

/* Uniform in (0, 1): never 0, so that its logarithm is finite. */
static double open_uniform(dt_rng *rng) {
    return ((double)(dt_rng_next(rng) >> 11) + 0.5) * (1.0 / 9007199254740992.0);
}

/* log of a Gamma(alpha, 1) draw: Marsaglia and Tsang (2000) for alpha >= 1; below 1 the boost
 * Gamma(alpha) = Gamma(alpha + 1) * U^(1/alpha), kept in logs so that small alphas do not
 * underflow to 0. */
static double log_gamma_draw(dt_rng *rng, double alpha) {
    double boost = 0.0;
    if (alpha < 1.0) {
        boost = log(open_uniform(rng)) / alpha;
        alpha += 1.0;
    }
    const double d = alpha - 1.0 / 3.0, c = 1.0 / sqrt(9.0 * d);
    for (;;) {
        double x = dt_rng_normal(rng), v = 1.0 + c * x;
        if (v <= 0.0) continue;
        v = v * v * v;
        double u = open_uniform(rng);
        if (u < 1.0 - 0.0331 * x * x * x * x || log(u) < 0.5 * x * x + d * (1.0 - v + log(v)))
            return log(d) + log(v) + boost;
    }
}

double dt_mix_beta(dt_rng *rng, double alpha) {
    double log_x = log_gamma_draw(rng, alpha), log_y = log_gamma_draw(rng, alpha);
    return 1.0 / (1.0 + exp(log_y - log_x)); /* X / (X + Y) */
}

int dt_mix_enabled(const dt_mix_params *params) {
    return params->mixup_alpha > 0.0 || params->cutmix_alpha > 0.0;
}

static int clip(int v, int side) {
    return v < 0 ? 0 : v > side ? side : v;
}

void dt_mix_cutmix_box(double lambda, int height, int width, int cy, int cx, int *y0, int *y1,
                       int *x0, int *x1) {
    const double ratio = sqrt(1.0 - lambda);
    const int cut_h = (int)(height * ratio), cut_w = (int)(width * ratio);
    *y0 = clip(cy - cut_h / 2, height);
    *y1 = clip(cy + cut_h / 2, height);
    *x0 = clip(cx - cut_w / 2, width);
    *x1 = clip(cx + cut_w / 2, width);
}

void dt_mix_draw_for(const dt_mix_params *params, int height, int width, uint64_t seed, int epoch,
                     uint64_t global_batch, dt_mix_draw *draw) {
    memset(draw, 0, sizeof *draw);
    draw->lambda = 1.0;
    if (!dt_mix_enabled(params)) return;
    dt_rng rng = dt_rng_seeded(
        dt_rng_mix(dt_rng_mix(dt_rng_mix(seed, MIX_STREAM_TAG), (uint64_t)epoch), global_batch));
    if (!(dt_rng_uniform_double(&rng) < params->prob)) return;
    double alpha;
    if (params->mixup_alpha > 0.0 && params->cutmix_alpha > 0.0) {
        draw->cutmix = dt_rng_uniform_double(&rng) < params->switch_prob;
        alpha = draw->cutmix ? params->cutmix_alpha : params->mixup_alpha;
    } else {
        draw->cutmix = params->cutmix_alpha > 0.0;
        alpha = draw->cutmix ? params->cutmix_alpha : params->mixup_alpha;
    }
    draw->mixed = 1;
    draw->lambda = dt_mix_beta(&rng, alpha);
    if (!draw->cutmix) return;
    int cy = (int)dt_rng_below(&rng, (uint32_t)height),
        cx = (int)dt_rng_below(&rng, (uint32_t)width);
    dt_mix_cutmix_box(draw->lambda, height, width, cy, cx, &draw->y0, &draw->y1, &draw->x0,
                      &draw->x1);
    draw->lambda = 1.0 - (double)(draw->y1 - draw->y0) * (double)(draw->x1 - draw->x0) /
                             ((double)height * (double)width);
}

/* Mixup of two images, each written from both originals (so no copy is needed). */
static void blend_pair(uint8_t *a, uint8_t *b, size_t bytes, double lambda) {
    const float own = (float)lambda, other = (float)(1.0 - lambda);
    for (size_t i = 0; i < bytes; i++) {
        const float fa = a[i], fb = b[i];
        const float mixed_a = fa * own + fb * other, mixed_b = fb * own + fa * other;
        a[i] = (uint8_t)rintf(mixed_a);
        b[i] = (uint8_t)rintf(mixed_b);
    }
}

/* CutMix of two images: their boxes are exchanged. */
static void swap_boxes(uint8_t *a, uint8_t *b, int side, const dt_mix_draw *draw) {
    const size_t row_bytes = (size_t)(draw->x1 - draw->x0) * 3;
    for (int y = draw->y0; y < draw->y1; y++) {
        const size_t at = ((size_t)y * (size_t)side + (size_t)draw->x0) * 3;
        for (size_t i = 0; i < row_bytes; i++) {
            uint8_t t = a[at + i];
            a[at + i] = b[at + i];
            b[at + i] = t;
        }
    }
}

void dt_mix_batch(const dt_mix_draw *draw, int side, int32_t *storage, dt_batch *batch) {
    batch->mix_labels = NULL;
    batch->mix_lambda = 1.0f;
    if (!draw->mixed) return;
    const int n = batch->batch_size;
    const size_t bytes = (size_t)side * (size_t)side * 3;
    for (int s = 0; s < n; s++) storage[s] = batch->labels[s];
    /* walk the counted slots from both ends: j-th from the front with j-th from the back */
    int front = 0, back = n - 1;
    for (;;) {
        while (front < n && !batch->counts[front]) front++;
        while (back >= 0 && !batch->counts[back]) back--;
        if (front >= back) break; /* the middle slot of an odd count is its own partner */
        uint8_t *a = batch->pixels + (size_t)front * bytes,
                *b = batch->pixels + (size_t)back * bytes;
        if (draw->cutmix)
            swap_boxes(a, b, side, draw);
        else
            blend_pair(a, b, bytes, draw->lambda);
        storage[front] = batch->labels[back];
        storage[back] = batch->labels[front];
        front++, back--;
    }
    batch->mix_labels = storage;
    batch->mix_lambda = (float)draw->lambda;
}
