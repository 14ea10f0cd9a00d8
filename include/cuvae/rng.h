// rng.h: host-side counter-based random numbers (Philox4x32-10), seeded and
// reproducible. Used for weight init, shuffling, static binarization and the
// CPU backend's epsilon / uniform draws.
#ifndef CUVAE_RNG_H
#define CUVAE_RNG_H

#include <stdint.h>
#include <stddef.h>

// Philox4x32-10 block: 4 x uint32 outputs from a 128-bit counter and 64-bit key.
void philox4x32_10(const uint32_t counter[4], const uint32_t key[2], uint32_t out[4]);

// Sequential stream over Philox blocks: (seed, stream id) -> numbers.
typedef struct {
    uint32_t key[2];
    uint64_t counter;   // block index
    uint32_t buffer[4];
    int used;           // how many of buffer[] consumed (4 = empty)
} Rng;

void rng_init(Rng *rng, uint64_t seed, uint64_t stream);
uint32_t rng_u32(Rng *rng);
float rng_uniform(Rng *rng);              // in (0, 1]: never 0, safe for log()
float rng_uniform_range(Rng *rng, float lo, float hi);
float rng_normal(Rng *rng);               // N(0, 1) via Box-Muller
void rng_permutation(Rng *rng, int32_t *perm, int n);  // Fisher-Yates of 0..n-1

// Stateless fill used by the CPU backend: element i of the (seed, offset)
// stream. Deterministic for any split of the work. A normal is philox_normal_at's
// (philox.h: the CUDA kernels' draw) with the host's vector logf / cosf (cpu_box_muller):
// within a few ulp of it, not always its bits.
void rng_fill_normal(float *out, size_t n, uint64_t seed, uint64_t offset);
void rng_fill_normal_serial(float *out, size_t n, uint64_t seed, uint64_t offset);   // on this thread
float rng_normal_at(uint64_t seed, uint64_t index);   // element `index` of the fills, alone
void rng_fill_uniform(float *out, size_t n, uint64_t seed, uint64_t offset);
void rng_fill_uniform_serial(float *out, size_t n, uint64_t seed, uint64_t offset);   // on this thread
// out[i] = philox_uniform_between(seed, offset + i, lo, hi): in (lo, hi]
void rng_fill_uniform_between(float *out, size_t n, uint64_t seed, uint64_t offset, float lo, float hi);

#endif
