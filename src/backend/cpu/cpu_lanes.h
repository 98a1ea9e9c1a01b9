/* Vectors of one channel block (8 or 16 interleaved channels of nChw8c / nChw16c) for the CPU
 * backend's own per-channel loops, as GCC vector extensions: each lane does exactly the scalar
 * operations of its channel in the same order, so results are those of the scalar loops, while
 * the compiler emits whole-register loads and arithmetic that it does not find by itself at -O2
 * across a stack array of B accumulators. */
#ifndef DTRAIN_CPU_LANES_H
#define DTRAIN_CPU_LANES_H

#include <stdint.h>
#include <string.h>

typedef float cpu_f8 __attribute__((vector_size(32)));
typedef double cpu_d8 __attribute__((vector_size(64)));
typedef int32_t cpu_i8 __attribute__((vector_size(32)));
typedef float cpu_f16 __attribute__((vector_size(64)));
typedef double cpu_d16 __attribute__((vector_size(128)));
typedef int32_t cpu_i16 __attribute__((vector_size(64)));

/* Unaligned load into and store from a vector variable (the memcpy becomes one move
 * instruction); macros rather than functions, which would pass wide vectors by value across the
 * default target's ABI. */
#define CPU_LANES_LOAD(vector, pointer) memcpy(&(vector), (pointer), sizeof(vector))
#define CPU_LANES_STORE(pointer, vector) memcpy((pointer), &(vector), sizeof(vector))

#endif
