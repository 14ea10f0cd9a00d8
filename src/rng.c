// rng.c: Philox4x32-10 (Salmon et al. 2011) on the host: seeded streams for
// init, shuffling and binarization, and the CPU backend's epsilon.
#include "cuvae/rng.h"
#include "cuvae/cpu_vector_math.h"
#include "cuvae/philox.h"

#include <math.h>
#include <string.h>

#define PHILOX_M0 0xD2511F53u
#define PHILOX_M1 0xCD9E8D57u
#define PHILOX_W0 0x9E3779B9u
#define PHILOX_W1 0xBB67AE85u

static void mul_hi_lo(uint32_t a, uint32_t b, uint32_t *hi, uint32_t *lo) {
    uint64_t product = (uint64_t)a * (uint64_t)b;
    *hi = (uint32_t)(product >> 32);
    *lo = (uint32_t)product;
}

// One Philox round on a counter (c0, c1, c2, c3) with the round's key (k0, k1), in place.
static inline void philox_round(uint32_t *c0, uint32_t *c1, uint32_t *c2, uint32_t *c3, uint32_t k0,
                                uint32_t k1) {
    uint32_t hi0, lo0, hi1, lo1;
    mul_hi_lo(PHILOX_M0, *c0, &hi0, &lo0);
    mul_hi_lo(PHILOX_M1, *c2, &hi1, &lo1);
    *c0 = hi1 ^ *c1 ^ k0;
    *c1 = lo1;
    *c2 = hi0 ^ *c3 ^ k1;
    *c3 = lo0;
}

void philox4x32_10(const uint32_t counter[4], const uint32_t key[2], uint32_t out[4]) {
    uint32_t c0 = counter[0], c1 = counter[1], c2 = counter[2], c3 = counter[3];
    uint32_t k0 = key[0], k1 = key[1];
    for (int round = 0; round < 10; round++) {
        philox_round(&c0, &c1, &c2, &c3, k0, k1);
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
    return box_muller(u1, u2);
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

// Philox4x32-10 on PHILOX_LANES consecutive blocks side by side, one round (philox_round) of all
// of them at a time, so the compiler runs the lanes in vector registers (about 4 ns a block
// against 9 for one block at a time, AVX2). Word w of block first_block + l of a stream into
// words[w][l].
enum { PHILOX_LANES = 32 };
static void philox_lanes(uint64_t seed, uint64_t first_block, uint32_t stream,
                         uint32_t words[4][PHILOX_LANES]) {
    uint32_t c0[PHILOX_LANES], c1[PHILOX_LANES], c2[PHILOX_LANES], c3[PHILOX_LANES];
    for (int l = 0; l < PHILOX_LANES; l++) {   // philox_block's counter
        const uint64_t block = first_block + (uint64_t)l;
        c0[l] = (uint32_t)block;
        c1[l] = (uint32_t)(block >> 32);
        c2[l] = stream;
        c3[l] = 0u;
    }
    uint32_t k0 = (uint32_t)seed, k1 = (uint32_t)(seed >> 32);
    #pragma GCC unroll 10
    for (int round = 0; round < 10; round++) {
        for (int l = 0; l < PHILOX_LANES; l++) philox_round(&c0[l], &c1[l], &c2[l], &c3[l], k0, k1);
        k0 += PHILOX_W0;
        k1 += PHILOX_W1;
    }
    memcpy(words[0], c0, sizeof c0);
    memcpy(words[1], c1, sizeof c1);
    memcpy(words[2], c2, sizeof c2);
    memcpy(words[3], c3, sizeof c3);
}

// Blocks first_block .. first_block + min(blocks, PHILOX_LANES) into words[w][l] as philox_lanes
// does: all lanes at once when they are all needed, else block by block.
static void philox_words(uint64_t seed, uint64_t first_block, uint64_t blocks, uint32_t stream,
                         uint32_t words[4][PHILOX_LANES]) {
    if (blocks >= PHILOX_LANES) {
        philox_lanes(seed, first_block, stream, words);
        return;
    }
    for (int l = 0; l < (int)blocks; l++) {
        uint32_t r[4];
        philox_block(seed, first_block + (uint64_t)l, stream, r);
        for (int w = 0; w < 4; w++) words[w][l] = r[w];
    }
}

// Element i of the stateless streams of philox.h, each Philox block drawn once for all the
// numbers it serves: the uniforms are the CUDA kernels' to the bit, the normals within a few
// ulp (cpu_box_muller's logf / cosf against CUDA's).
// Normal first + i for i < n: block k serves normals 2k (words 0, 1) and 2k + 1 (2, 3),
// through cpu_box_muller (rng_normal_at is one of them alone)
void rng_fill_normal_serial(float *out, size_t n, uint64_t seed, uint64_t first) {
    uint32_t words[4][PHILOX_LANES];
    float u1[2 * PHILOX_LANES], u2[2 * PHILOX_LANES];   // the uniforms of the lanes' normals, in stream order
    size_t i = 0;
    while (i < n) {
        const uint64_t first_block = (first + i) / 2;
        const uint64_t blocks = (first + n - 1) / 2 - first_block + 1;
        philox_words(seed, first_block, blocks, PHILOX_STREAM_NORMAL, words);
        const int lanes = blocks < PHILOX_LANES ? (int)blocks : PHILOX_LANES;
        for (int l = 0; l < lanes; l++) {
            u1[2 * l] = philox_unit_interval(words[0][l]);
            u2[2 * l] = philox_unit_interval(words[1][l]);
            u1[2 * l + 1] = philox_unit_interval(words[2][l]);
            u2[2 * l + 1] = philox_unit_interval(words[3][l]);
        }
        const size_t skip = (size_t)((first + i) & 1);   // the first block's first normal lies before
        size_t count = 2 * (size_t)lanes - skip;
        if (count > n - i) count = n - i;
        cpu_box_muller(out + i, u1 + skip, u2 + skip, count);
        i += count;
    }
}

float rng_normal_at(uint64_t seed, uint64_t index) {
    float normal;
    rng_fill_normal_serial(&normal, 1, seed, index);
    return normal;
}

// philox_uniform_at(seed, first + i) for i < n: block k serves uniforms 4k .. 4k + 3
void rng_fill_uniform_serial(float *out, size_t n, uint64_t seed, uint64_t first) {
    uint32_t words[4][PHILOX_LANES];
    size_t i = 0;
    while (i < n) {
        const uint64_t first_block = (first + i) / 4;
        philox_words(seed, first_block, (first + n - 1) / 4 - first_block + 1, PHILOX_STREAM_UNIFORM, words);
        if (((first + i) & 3) == 0 && n - i >= 4 * PHILOX_LANES) {   // whole blocks: word w of lane l to 4 l + w
            for (int l = 0; l < PHILOX_LANES; l++)
                for (int w = 0; w < 4; w++) out[i + 4 * (size_t)l + (size_t)w] = philox_unit_interval(words[w][l]);
            i += 4 * PHILOX_LANES;
            continue;
        }
        for (int l = 0; l < PHILOX_LANES && i < n; l++)
            for (unsigned w = (unsigned)((first + i) & 3); w < 4 && i < n; w++)
                out[i++] = philox_unit_interval(words[w][l]);
    }
}

// Chunks of 4096 numbers, each on one thread: the same numbers for any split of the work.
enum { FILL_CHUNK = 4096 };

void rng_fill_normal(float *out, size_t n, uint64_t seed, uint64_t offset) {
    #pragma omp parallel for schedule(static) if (n >= 16384)
    for (size_t start = 0; start < n; start += FILL_CHUNK)
        rng_fill_normal_serial(out + start, n - start < FILL_CHUNK ? n - start : FILL_CHUNK, seed, offset + start);
}

void rng_fill_uniform(float *out, size_t n, uint64_t seed, uint64_t offset) {
    #pragma omp parallel for schedule(static) if (n >= 16384)
    for (size_t start = 0; start < n; start += FILL_CHUNK)
        rng_fill_uniform_serial(out + start, n - start < FILL_CHUNK ? n - start : FILL_CHUNK, seed, offset + start);
}

void rng_fill_uniform_between(float *out, size_t n, uint64_t seed, uint64_t offset, float lo, float hi) {
    #pragma omp parallel for schedule(static) if (n >= 16384)
    for (size_t start = 0; start < n; start += FILL_CHUNK) {
        const size_t count = n - start < FILL_CHUNK ? n - start : FILL_CHUNK;
        rng_fill_uniform_serial(out + start, count, seed, offset + start);
        for (size_t i = start; i < start + count; i++) out[i] = philox_scaled_uniform(out[i], lo, hi);
    }
}
