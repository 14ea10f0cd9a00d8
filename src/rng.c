// rng.c: Philox4x32-10 (Salmon et al. 2011) on the host: seeded streams for
// init, shuffling and binarization, and the CPU backend's epsilon.
#include "cuvae/rng.h"
#include "cuvae/philox.h"

#include <math.h>

#define PHILOX_M0 0xD2511F53u
#define PHILOX_M1 0xCD9E8D57u
#define PHILOX_W0 0x9E3779B9u
#define PHILOX_W1 0xBB67AE85u

static void mul_hi_lo(uint32_t a, uint32_t b, uint32_t *hi, uint32_t *lo) {
    uint64_t product = (uint64_t)a * (uint64_t)b;
    *hi = (uint32_t)(product >> 32);
    *lo = (uint32_t)product;
}

void philox4x32_10(const uint32_t counter[4], const uint32_t key[2], uint32_t out[4]) {
    uint32_t c0 = counter[0], c1 = counter[1], c2 = counter[2], c3 = counter[3];
    uint32_t k0 = key[0], k1 = key[1];
    for (int round = 0; round < 10; round++) {
        uint32_t hi0, lo0, hi1, lo1;
        mul_hi_lo(PHILOX_M0, c0, &hi0, &lo0);
        mul_hi_lo(PHILOX_M1, c2, &hi1, &lo1);
        uint32_t n0 = hi1 ^ c1 ^ k0;
        uint32_t n1 = lo1;
        uint32_t n2 = hi0 ^ c3 ^ k1;
        uint32_t n3 = lo0;
        c0 = n0; c1 = n1; c2 = n2; c3 = n3;
        k0 += PHILOX_W0;
        k1 += PHILOX_W1;
    }
    out[0] = c0; out[1] = c1; out[2] = c2; out[3] = c3;
}

static void sequential_block(const uint32_t key[2], uint64_t block, uint64_t stream, uint32_t out[4]) {
    uint32_t counter[4] = {(uint32_t)block, (uint32_t)(block >> 32), (uint32_t)stream,
                           (uint32_t)(stream >> 32)};
    philox4x32_10(counter, key, out);
}

void rng_init(Rng *rng, uint64_t seed, uint64_t stream) {
    // the stream id goes in the key's mix so distinct streams never overlap
    uint64_t mixed = seed ^ (stream * 0x9E3779B97F4A7C15ull);
    rng->key[0] = (uint32_t)mixed;
    rng->key[1] = (uint32_t)(mixed >> 32);
    rng->counter = 0;
    rng->used = 4;
}

uint32_t rng_u32(Rng *rng) {
    if (rng->used == 4) {
        sequential_block(rng->key, rng->counter++, 0, rng->buffer);
        rng->used = 0;
    }
    return rng->buffer[rng->used++];
}

float rng_uniform(Rng *rng) { return philox_unit_interval(rng_u32(rng)); }

float rng_uniform_range(Rng *rng, float lo, float hi) {
    // [lo, hi): uniform in [0, 1) scaled
    float u = (float)(rng_u32(rng) >> 8) * (1.0f / 16777216.0f);
    return lo + (hi - lo) * u;
}

float rng_normal(Rng *rng) {
    float u1 = rng_uniform(rng);
    float u2 = rng_uniform(rng);
    return sqrtf(-2.0f * logf(u1)) * cosf(6.28318530717958647692f * u2);
}

void rng_permutation(Rng *rng, int32_t *perm, int n) {
    for (int i = 0; i < n; i++) perm[i] = i;
    for (int i = n - 1; i > 0; i--) {
        int j = (int)(((uint64_t)rng_u32(rng) * (uint64_t)(i + 1)) >> 32);
        int32_t t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
}

// Element i of the stateless streams of philox.h (the same numbers the CUDA
// kernels draw).
// philox_normal_at(seed, first + i) for i < n, each Philox block drawn once for its two normals
void rng_fill_normal_serial(float *out, size_t n, uint64_t seed, uint64_t first) {
    size_t i = 0;
    while (i < n) {
        const uint64_t index = first + i;
        uint32_t r[4];
        philox_block(seed, index / 2, PHILOX_STREAM_NORMAL, r);
        if ((index & 1) == 0) {
            out[i++] = philox_box_muller(r[0], r[1]);
            if (i == n) break;
        }
        out[i++] = philox_box_muller(r[2], r[3]);
    }
}

void rng_fill_normal(float *out, size_t n, uint64_t seed, uint64_t offset) {
    const size_t chunk = 4096;
    #pragma omp parallel for schedule(static) if (n >= 16384)
    for (size_t start = 0; start < n; start += chunk)
        rng_fill_normal_serial(out + start, n - start < chunk ? n - start : chunk, seed, offset + start);
}

void rng_fill_uniform(float *out, size_t n, uint64_t seed, uint64_t offset) {
    #pragma omp parallel for schedule(static) if (n >= 16384)
    for (size_t i = 0; i < n; i++) out[i] = philox_uniform_at(seed, offset + i);
}

void rng_fill_uniform_between(float *out, size_t n, uint64_t seed, uint64_t offset, float lo, float hi) {
    #pragma omp parallel for schedule(static) if (n >= 16384)
    for (size_t i = 0; i < n; i++) out[i] = philox_uniform_between(seed, offset + i, lo, hi);
}
