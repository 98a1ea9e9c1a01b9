/* Conversions between float and the 16-bit float formats F16 (IEEE binary16) and BF16 (bfloat16):
 * exact widening, round-to-nearest-even narrowing, NaNs kept NaN. */
#include <stdint.h>
#include <string.h>

#include "dtrain/safetensors.h"

static float float_from_bits(uint32_t bits) {
    float value;
    memcpy(&value, &bits, sizeof value);
    return value;
}

static uint32_t bits_from_float(float value) {
    uint32_t bits;
    memcpy(&bits, &value, sizeof bits);
    return bits;
}

float dt_f16_to_float(uint16_t half) {
    uint32_t sign = (uint32_t)(half & 0x8000u) << 16;
    uint32_t exponent = (half >> 10) & 0x1Fu;
    uint32_t mantissa = half & 0x3FFu;
    if (exponent == 0x1F) /* infinity or NaN; the payload moves along */
        return float_from_bits(sign | 0x7F800000u | (mantissa << 13));
    if (exponent != 0) /* normal: rebias 15 -> 127 */
        return float_from_bits(sign | ((exponent + 112u) << 23) | (mantissa << 13));
    if (mantissa == 0) return float_from_bits(sign); /* signed zero */
    /* Subnormal: mantissa * 2^-24, normal as a float. Shift until the implicit bit appears. */
    uint32_t shifts = 0;
    while (!(mantissa & 0x400u)) {
        mantissa <<= 1;
        shifts++;
    }
    /* value = 1.m * 2^(-14 - shifts) */
    return float_from_bits(sign | ((113u - shifts) << 23) | ((mantissa & 0x3FFu) << 13));
}

float dt_bf16_to_float(uint16_t bits) {
    return float_from_bits((uint32_t)bits << 16);
}

uint16_t dt_float_to_f16(float value) {
    uint32_t bits = bits_from_float(value);
    uint16_t sign = (uint16_t)((bits >> 16) & 0x8000u);
    uint32_t magnitude = bits & 0x7FFFFFFFu;
    if (magnitude >= 0x7F800000u) { /* infinity, or NaN made quiet with its top payload bits */
        if (magnitude == 0x7F800000u) return sign | 0x7C00u;
        return (uint16_t)(sign | 0x7E00u | ((magnitude >> 13) & 0x3FFu));
    }
    if (magnitude >= 0x477FF000u) return sign | 0x7C00u; /* >= 65520 rounds to infinity */
    if (magnitude >= 0x38800000u) {                      /* >= 2^-14: a normal half */
        uint32_t rebiased = magnitude - 0x38000000u;     /* exponent 127 -> 15 */
        uint32_t round = 0xFFFu + ((rebiased >> 13) & 1u);
        return (uint16_t)(sign | ((rebiased + round) >> 13));
    }
    if (magnitude < 0x33000000u) return sign; /* <= 2^-25 (a tie, to even): zero */
    /* Subnormal half: m * 2^-24 with m = significand >> (126 - exponent), rounded to even. */
    uint32_t exponent = magnitude >> 23;
    uint32_t significand = (magnitude & 0x7FFFFFu) | 0x800000u;
    uint32_t shift = 126u - exponent; /* 14..24 */
    uint32_t m = significand >> shift;
    uint32_t remainder = significand & ((1u << shift) - 1u);
    uint32_t halfway = 1u << (shift - 1u);
    if (remainder > halfway || (remainder == halfway && (m & 1u))) m++;
    return (uint16_t)(sign | m); /* m may reach 0x400, the smallest normal: still correct */
}

uint16_t dt_float_to_bf16(float value) {
    uint32_t bits = bits_from_float(value);
    if ((bits & 0x7FFFFFFFu) > 0x7F800000u) /* NaN: keep the sign and top payload, make quiet */
        return (uint16_t)((bits >> 16) | 0x0040u);
    uint32_t round = 0x7FFFu + ((bits >> 16) & 1u);
    return (uint16_t)((bits + round) >> 16);
}
