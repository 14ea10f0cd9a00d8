// cpu_bce.h: the CPU backend's binary cross-entropy from logits, a row at a time (cpu_bce.c),
// and the stable sigmoid it shares with the CPU's other reconstruction losses.
#ifndef CUVAE_CPU_BCE_H
#define CUVAE_CPU_BCE_H

#include <stdbool.h>

// sigmoid(a) given e = exp(-|a|) (one exp per element, stable for any a)
static inline float sigmoid_from_exp(float a, float e) {
    return a >= 0.0f ? 1.0f / (1.0f + e) : e / (1.0f + e);
}

// Whether cpu_bce_logits_row can take its AVX-512 build here: built for it (x86-64 with FMA,
// as the default ARCH=x86-64-v3) and the CPU has AVX-512F.
bool cpu_bce_avx512_available(void);

// One row of BCE from logits a (D) against targets t (D): returns the sum over the row of
// softplus(a) - a t, and writes g = g_scale (sigmoid(a) - t) (D) unless g is NULL. avx512
// takes the AVX-512 build where cpu_bce_avx512_available(); both give the same bits.
double cpu_bce_logits_row(const float *a, const float *t, float *g, int D, float g_scale, bool avx512);

// The same for the squared error of the sigmoid (a Bernoulli decoder trained with MSE): the row's
// sum of (s - t)^2, s = sigmoid(a), and g = g_scale 2 (s - t) s (1 - s) unless g is NULL; the
// same pass, exp and row-sum order as cpu_bce_logits_row (so the two builds give the same bits).
double cpu_mse_sigmoid_row(const float *a, const float *t, float *g, int D, float g_scale, bool avx512);

#endif
