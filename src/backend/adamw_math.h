/* The AdamW update (dt_adamw_params in backend.h) written once for the CPU backend's loop and the
 * CUDA kernel (host and device code): the per-step scalars in double, rounded to float where
 * torch.optim.AdamW rounds its Python floats, and the per-element update in float, in one
 * operation order, so that the backends agree bit for bit without contracted multiply-adds. */
#ifndef DTRAIN_ADAMW_MATH_H
#define DTRAIN_ADAMW_MATH_H

#include <math.h>
#include <stdint.h>

#include "dtrain/backend.h"

#if defined(__CUDACC__)
#define DT_ADAMW_HD __host__ __device__
#else
#define DT_ADAMW_HD
#endif

typedef struct dt_adamw_scalars {
    float grad_scale;
    float decay;       /* 1 - lr * weight_decay */
    float lerp_weight; /* 1 - beta1 */
    float beta2, one_minus_beta2;
    float step_size;  /* lr / (1 - beta1^t) */
    float bias2_sqrt; /* sqrt(1 - beta2^t) */
    float eps;
} dt_adamw_scalars;

/* The scalars of update number t (>= 1, the skipped steps already left out). */
DT_ADAMW_HD static inline dt_adamw_scalars dt_adamw_scalars_at(const dt_adamw_params *p,
                                                               int64_t t) {
    dt_adamw_scalars s;
    double bias1 = 1.0 - pow(p->beta1, (double)t), bias2 = 1.0 - pow(p->beta2, (double)t);
    s.grad_scale = p->grad_scale;
    s.decay = (float)(1.0 - p->lr * p->weight_decay);
    s.lerp_weight = (float)(1.0 - p->beta1);
    s.beta2 = (float)p->beta2;
    s.one_minus_beta2 = (float)(1.0 - p->beta2);
    s.step_size = (float)(p->lr / bias1);
    s.bias2_sqrt = (float)sqrt(bias2);
    s.eps = (float)p->eps;
    return s;
}

/* The new parameter value; *exp_avg and *exp_avg_sq are read and updated (torch's lerp for
 * a weight below 0.5, then addcmul, then addcdiv). */
DT_ADAMW_HD static inline float dt_adamw_element(float param, float grad, float *exp_avg,
                                                 float *exp_avg_sq, const dt_adamw_scalars *s) {
    float g = s->grad_scale * grad;
    float m = *exp_avg + s->lerp_weight * (g - *exp_avg);
    float v = s->beta2 * *exp_avg_sq + s->one_minus_beta2 * (g * g);
    *exp_avg = m;
    *exp_avg_sq = v;
    float denom = sqrtf(v) / s->bias2_sqrt + s->eps;
    return param * s->decay - s->step_size * m / denom;
}

#endif
