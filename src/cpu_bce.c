// cpu_bce.c: the CPU backend's binary cross-entropy from logits over one row — the row's loss
// sum and its gradient in one vectorised pass (exp and log1p as polynomials the compiler can
// vectorise) — and, through the same pass, the squared error of the sigmoid (a Bernoulli
// decoder with loss.reconstruction "mse"). The pass is built twice: for the build's target (x86-64-v3, 8 floats a vector)
// and, on x86-64, for AVX-512 (16), which the CPU backend takes where the CPU has it: about
// twice as fast, and the same bits — each element's arithmetic is the same instructions' worth
// of IEEE operations, and the row sum's order is fixed here, not by the vector width.
#include "cuvae/cpu_bce.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

// exp(x) for x <= 0, written so the compiler can vectorise the loop around it:
// x = n ln2 + r with |r| <= ln2 / 2, exp(r) by its Taylor series to r^7
// (truncation < 1e-8 relative), times 2^n built in the exponent bits. Below
// -87 the result would be subnormal: 0 (the backend flushes subnormals anyway). A NaN
// comes back NaN (clamped first, so the exponent arithmetic stays defined).
static inline float exp_nonpositive(float x) {
    const float log2e = 1.44269504088896341f, ln2_hi = 0.693145751953125f,
                ln2_lo = 1.42860682030941723e-6f;
    float clamped = x >= -87.0f ? x : -87.0f;   // (NaN: -87)
    float n = floorf(clamped * log2e + 0.5f);
    float r = (clamped - n * ln2_hi) - n * ln2_lo;
    float p = 1.0f + r * (1.0f + r * (1.0f / 2 + r * (1.0f / 6 + r * (1.0f / 24 + r * (1.0f / 120 +
              r * (1.0f / 720 + r * (1.0f / 5040)))))));
    int32_t bits = ((int32_t)n + 127) << 23;
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    return x >= -87.0f ? p * scale : (x < -87.0f ? 0.0f : x);
}

// log(1 + e) for e in [0, 1]: with s = e / (2 + e) in [0, 1/3],
// log(1 + e) = 2 atanh(s) = 2 s (1 + s^2/3 + s^4/5 + ... + s^14/15);
// the next term is < 1.4e-8 relative, and it keeps full precision for tiny e.
static inline float log1p_unit(float e) {
    float s = e / (2.0f + e), s2 = s * s;
    float series = 1.0f + s2 * (1.0f / 3 + s2 * (1.0f / 5 + s2 * (1.0f / 7 + s2 * (1.0f / 9 +
                   s2 * (1.0f / 11 + s2 * (1.0f / 13 + s2 * (1.0f / 15)))))));
    return 2.0f * s * series;
}

// Element d: its loss softplus(a) - a t, and (with_gradient) g[d].
static inline __attribute__((always_inline)) float bce_element(const float *restrict a, const float *restrict t,
                                                               float *restrict g, int d, float g_scale,
                                                               bool with_gradient) {
    float e = exp_nonpositive(-fabsf(a[d]));
    float positive_part = a[d] > 0.0f ? a[d] : 0.0f;
    if (with_gradient) g[d] = g_scale * (sigmoid_from_exp(a[d], e) - t[d]);
    return positive_part - a[d] * t[d] + log1p_unit(e);
}

// Element d of the squared error of the sigmoid: its loss (s - t)^2, s = sigmoid(a), and (with_gradient)
// g[d] = g_scale * 2 (s - t) s (1 - s).
static inline __attribute__((always_inline)) float mse_sigmoid_element(const float *restrict a,
                                                                       const float *restrict t, float *restrict g,
                                                                       int d, float g_scale, bool with_gradient) {
    float s = sigmoid_from_exp(a[d], exp_nonpositive(-fabsf(a[d])));
    float diff = s - t[d];
    if (with_gradient) g[d] = g_scale * (2.0f * diff * s * (1.0f - s));
    return diff * diff;
}

// The row sum in double over 8 lanes: lane j adds the losses of elements 8 k + j in order
// of k, the lanes meet in one fixed order and the last D % 8 elements come after them — an
// order that does not depend on how wide the vectors are. The losses go through a chunk of
// BCE_CHUNK floats on the stack, so the element loop vectorises at full width.
enum { BCE_LANES = 8, BCE_CHUNK = 1024 };

static inline __attribute__((always_inline)) double bce_row_pass(const float *restrict a, const float *restrict t,
                                                                 float *restrict g, int D, float g_scale,
                                                                 bool with_gradient, bool mse_sigmoid) {
    float loss[BCE_CHUNK];
    double lane[BCE_LANES] = {0};
    double tail = 0.0;
    for (int c0 = 0; c0 < D; c0 += BCE_CHUNK) {
        const int n = D - c0 < BCE_CHUNK ? D - c0 : BCE_CHUNK;
        const float *ac = a + c0, *tc = t + c0;
        float *gc = with_gradient ? g + c0 : NULL;
        #pragma omp simd
        for (int d = 0; d < n; d++)
            loss[d] = mse_sigmoid ? mse_sigmoid_element(ac, tc, gc, d, g_scale, with_gradient)
                                  : bce_element(ac, tc, gc, d, g_scale, with_gradient);
        int d0 = 0;
        for (; d0 + BCE_LANES <= n; d0 += BCE_LANES)
            for (int j = 0; j < BCE_LANES; j++) lane[j] += (double)loss[d0 + j];
        for (; d0 < n; d0++) tail += (double)loss[d0];   // (the last chunk only: BCE_CHUNK % 8 == 0)
    }
    return (((lane[0] + lane[1]) + (lane[2] + lane[3])) + ((lane[4] + lane[5]) + (lane[6] + lane[7]))) + tail;
}

// Called with constant with_gradient and mse_sigmoid, so each loop has no branch around a store.
static double bce_row_target(const float *a, const float *t, float *g, int D, float g_scale, bool mse_sigmoid) {
    if (mse_sigmoid)
        return g ? bce_row_pass(a, t, g, D, g_scale, true, true) : bce_row_pass(a, t, NULL, D, g_scale, false, true);
    return g ? bce_row_pass(a, t, g, D, g_scale, true, false) : bce_row_pass(a, t, NULL, D, g_scale, false, false);
}

// The AVX-512 build adds AVX-512F to the build's own target; only on top of one with FMA
// (the default x86-64-v3), so both builds fuse the same multiply-adds.
#if defined(__x86_64__) && defined(__FMA__) && defined(__clang__)
#define CPU_BCE_AVX512 1
__attribute__((target("avx512f")))
#elif defined(__x86_64__) && defined(__FMA__) && defined(__GNUC__)
#define CPU_BCE_AVX512 1
__attribute__((target("avx512f,prefer-vector-width=512")))
#endif
#ifdef CPU_BCE_AVX512
static double bce_row_avx512(const float *a, const float *t, float *g, int D, float g_scale, bool mse_sigmoid) {
    if (mse_sigmoid)
        return g ? bce_row_pass(a, t, g, D, g_scale, true, true) : bce_row_pass(a, t, NULL, D, g_scale, false, true);
    return g ? bce_row_pass(a, t, g, D, g_scale, true, false) : bce_row_pass(a, t, NULL, D, g_scale, false, false);
}
#endif

bool cpu_bce_avx512_available(void) {
#ifdef CPU_BCE_AVX512
    return __builtin_cpu_supports("avx512f");
#else
    return false;
#endif
}

static double row_loss(const float *a, const float *t, float *g, int D, float g_scale, bool avx512, bool mse_sigmoid) {
#ifdef CPU_BCE_AVX512
    if (avx512 && cpu_bce_avx512_available()) return bce_row_avx512(a, t, g, D, g_scale, mse_sigmoid);
#else
    (void)avx512;
#endif
    return bce_row_target(a, t, g, D, g_scale, mse_sigmoid);
}

double cpu_bce_logits_row(const float *a, const float *t, float *g, int D, float g_scale, bool avx512) {
    return row_loss(a, t, g, D, g_scale, avx512, false);
}

double cpu_mse_sigmoid_row(const float *a, const float *t, float *g, int D, float g_scale, bool avx512) {
    return row_loss(a, t, g, D, g_scale, avx512, true);
}
