/* The one seeded random generator of dtrain, identical on every machine and thread count:
 * SplitMix64 (Steele, Lea, Flood 2014). Uniform floats take the top 24 bits; normals use
 * Box-Muller on two uniform doubles (top 53 bits). Weight init, split, shuffle and augmentation
 * all derive their streams from it with dt_rng_mix(seed, tag). */
#ifndef DTRAIN_RNG_H
#define DTRAIN_RNG_H

#include <math.h>
#include <stdint.h>

typedef struct dt_rng {
    uint64_t state;
} dt_rng;

static inline uint64_t dt_rng_next(dt_rng *rng) {
    uint64_t z = (rng->state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static inline dt_rng dt_rng_seeded(uint64_t seed) {
    dt_rng rng = {seed};
    return rng;
}

/* A new seed from a seed and a tag (epoch, file index, tensor index...). */
static inline uint64_t dt_rng_mix(uint64_t seed, uint64_t tag) {
    dt_rng rng = {seed ^ (tag * 0xD1B54A32D192ED03ull)};
    dt_rng_next(&rng);
    return dt_rng_next(&rng);
}

/* Uniform in [0, 1) with 24 bits. */
static inline float dt_rng_uniform_float(dt_rng *rng) {
    return (float)(dt_rng_next(rng) >> 40) * (1.0f / 16777216.0f);
}

/* Uniform in [0, 1) with 53 bits. */
static inline double dt_rng_uniform_double(dt_rng *rng) {
    return (double)(dt_rng_next(rng) >> 11) * (1.0 / 9007199254740992.0);
}

/* Uniform integer in [0, n) (n > 0), by Lemire's multiply-shift (negligible bias for n < 2^32). */
static inline uint32_t dt_rng_below(dt_rng *rng, uint32_t n) {
    return (uint32_t)(((dt_rng_next(rng) >> 32) * (uint64_t)n) >> 32);
}

/* Standard normal by Box-Muller (uses two draws, returns one value). */
static inline double dt_rng_normal(dt_rng *rng) {
    double u1 = dt_rng_uniform_double(rng), u2 = dt_rng_uniform_double(rng);
    if (u1 < 1e-300) u1 = 1e-300;
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

#endif
