// tsne.h: t-SNE (van der Maaten & Hinton 2008) of N points in D dims to 2-D,
// used to lay out latent codes for a scatter plot. Exact gradient: O(N^2) time
// per iteration and N (N - 1) / 2 doubles for the joint P (N = 5000: 100 MB).
#ifndef CUVAE_TSNE_H
#define CUVAE_TSNE_H

#include <stddef.h>
#include <stdint.h>

enum { TSNE_MIN_POINTS = 5 };   // tsne_embed refuses fewer points

typedef struct {
    double perplexity;     // effective number of neighbours; needs N - 1 > 3 * perplexity
    int iterations;        // gradient-descent steps (0 returns the random initial layout)
    uint64_t seed;         // the initial layout comes from Rng stream (seed, 31)
    double learning_rate;  // <= 0 selects the automatic max(N / 12 / 4, 50)
} TsneOptions;

// perplexity 30, 1000 iterations, seed 1, learning rate 0 (automatic).
// The learning rate multiplies the true gradient of KL(P || Q), which carries the
// factor 4 (scikit-learn's convention); so the automatic max(N / 48, 50) equals
// the classic step of 200 on the factor-free gradient (bhtsne) for N <= 2400 and
// grows with N beyond that (Belkina et al. 2019).
void tsne_default_options(TsneOptions *o);

// x (N, D) row-major float; out (N, 2) row-major. o may be NULL for the
// defaults. Schedule: early exaggeration 12 and momentum 0.5 for iterations
// 0..249, then no exaggeration and momentum 0.8; the schedule does not depend
// on o->iterations, so a run of k iterations equals the first k of a longer one.
// Deterministic for a given seed. Returns 0, or -1 with err (N < 5, D < 1,
// perplexity <= 0 or too large for N (needs N - 1 > 3 * perplexity),
// non-finite input, negative iterations).
int tsne_embed(const float *x, int N, int D, const TsneOptions *o, float *out, char *err,
               size_t errlen);

// Perplexity calibration, exposed for tests. dist2 (N, N) holds squared
// distances (the diagonal is ignored). Row i of P (N, N) gets the conditional
// p_j|i = exp(-beta_i dist2[i][j]) / sum_k exp(-beta_i dist2[i][k]), k != i, with
// P[i][i] = 0 and beta_i found by binary search so that the row's entropy is
// log(perplexity) within 1e-5 nats (at most 100 steps). Returns how many rows
// stopped at the step limit without reaching the tolerance (normally 0), or -1
// when N < 2 or perplexity is not in (0, N - 1).
int tsne_conditional_p(const double *dist2, int N, double perplexity, double *P);

// KL(P || Q) in nats of the layout y (N, 2) for the points x (N, D): P is the
// symmetrized joint built from x at this perplexity (no exaggeration), Q the
// Student-t similarities of y. Returns 0 with *kl_out, or -1 with err on the
// same input errors as tsne_embed (or a non-finite y).
int tsne_kl_divergence(const float *x, int N, int D, double perplexity, const float *y,
                       double *kl_out, char *err, size_t errlen);

#endif
