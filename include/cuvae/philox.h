// philox.h: the random streams drawn inside kernels, written once for both
// backends. Number `index` of the stream `seed` is a pure function of
// (seed, index) (Philox4x32-10, counter-based), so a kernel can draw it
// anywhere, backward can regenerate it instead of storing it, and a captured
// graph draws new numbers on each replay by reading the index base from
// device memory. On the GPU the Philox rounds are cuRAND's device API
// (curand_Philox4x32_10); on the host they are rng.c's, checked against the
// Random123 known-answer vectors (tests/test_ops_grad.c) and against the GPU
// bit for bit (tests/test_cuda_parity.c). The emulated CUDA device
// (tests/cuemu, CUEMU_DEVICE_CODE) runs cuRAND's rounds too, on the host.
//   normal number i:  block i / 2 of counter word 2 = 1; Box-Muller on words (2h, 2h + 1), h = i % 2
//   uniform number i: block i / 4 of counter word 2 = 2; word i % 4
#ifndef CUVAE_PHILOX_H
#define CUVAE_PHILOX_H

#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include "cuvae/host_device.h"

#if defined(__CUDACC__) || defined(CUEMU_DEVICE_CODE)
#include <curand_philox4x32_x.h>   // the Philox rounds only (curand_kernel.h would add MBs of tables)
#endif

#define PHILOX_STREAM_NORMAL 1u
#define PHILOX_STREAM_UNIFORM 2u

// Host Philox4x32-10 (rng.c).
#ifdef __cplusplus
extern "C"
#endif
void philox4x32_10(const uint32_t counter[4], const uint32_t key[2], uint32_t out[4]);

static inline CUVAE_HOST_DEVICE void philox_block(uint64_t seed, uint64_t block, uint32_t stream,
                                                  uint32_t out[4]) {
#if defined(__CUDA_ARCH__) || defined(CUEMU_DEVICE_CODE)
    uint4 counter = make_uint4((uint32_t)block, (uint32_t)(block >> 32), stream, 0u);
    uint2 key = make_uint2((uint32_t)seed, (uint32_t)(seed >> 32));
    uint4 r = curand_Philox4x32_10(counter, key);
    out[0] = r.x;
    out[1] = r.y;
    out[2] = r.z;
    out[3] = r.w;
#else
    uint32_t counter[4] = {(uint32_t)block, (uint32_t)(block >> 32), stream, 0u};
    uint32_t key[2] = {(uint32_t)seed, (uint32_t)(seed >> 32)};
    philox4x32_10(counter, key, out);
#endif
}

// (x + 1) / 2^24 from the top 24 bits: in (0, 1], exact in float, never 0 (safe for log).
static inline CUVAE_HOST_DEVICE float philox_unit_interval(uint32_t x) {
    return ((float)(x >> 8) + 1.0f) * (1.0f / 16777216.0f);
}

// Box-Muller: one normal from two uniforms in (0, 1] (the CPU's 8-lane twin: cpu_box_muller)
#define BOX_MULLER_TWO_PI 6.28318530717958647692f
static inline CUVAE_HOST_DEVICE float box_muller(float u1, float u2) {
    return sqrtf(-2.0f * logf(u1)) * cosf(BOX_MULLER_TWO_PI * u2);
}

// Box-Muller on two words of a block: one normal
static inline CUVAE_HOST_DEVICE float philox_box_muller(uint32_t word1, uint32_t word2) {
    return box_muller(philox_unit_interval(word1), philox_unit_interval(word2));
}

static inline CUVAE_HOST_DEVICE float philox_normal_at(uint64_t seed, uint64_t index) {
    uint32_t r[4];
    philox_block(seed, index / 2, PHILOX_STREAM_NORMAL, r);
    int half = (int)(index & 1);
    return philox_box_muller(r[2 * half], r[2 * half + 1]);
}

static inline CUVAE_HOST_DEVICE float philox_uniform_at(uint64_t seed, uint64_t index) {
    uint32_t r[4];
    philox_block(seed, index / 4, PHILOX_STREAM_UNIFORM, r);
    return philox_unit_interval(r[index & 3]);
}

// A uniform u in (0, 1] moved to (lo, hi]: lo + (hi - lo) u as one fused multiply-add, so both
// backends round it alike (a GAN's randomly smoothed real targets).
static inline CUVAE_HOST_DEVICE float philox_scaled_uniform(float u, float lo, float hi) {
    return fmaf(hi - lo, u, lo);
}

static inline CUVAE_HOST_DEVICE float philox_uniform_between(uint64_t seed, uint64_t index, float lo, float hi) {
    return philox_scaled_uniform(philox_uniform_at(seed, index), lo, hi);
}

// Where a kernel's epsilon (B, L) comes from: a buffer already filled, or
// drawn in the kernel itself, with part of the index base read from device
// memory (StepState.eps_offset) so a replayed graph draws fresh numbers; the
// backward pass regenerates the same draws. Neither buffer nor draw: eps = 0.
typedef struct {
    const float *buffer;      // (B, L) or NULL
    bool draw;                // buffer == NULL: draw in the kernel
    uint64_t seed;
    uint64_t base;            // eps[b, j] = philox_normal_at(seed, base + *offset + b L + j) (the CPU: rng_normal_at),
    const uint64_t *offset;   // offset a device pointer or NULL (then *offset reads as 0)
} EpsSource;

// Element `index` = b L + j of the source.
static inline CUVAE_HOST_DEVICE float eps_source_at(EpsSource eps, uint64_t index) {
    if (eps.buffer) return eps.buffer[index];
    if (eps.draw) return philox_normal_at(eps.seed, eps.base + (eps.offset ? *eps.offset : 0) + index);
    return 0.0f;
}

#endif
