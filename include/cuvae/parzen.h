// parzen.h: the Parzen-window (Gaussian kernel density) log-likelihood of data under samples
// of a generative model, as Goodfellow et al. 2014 and Makhzani et al. 2015 report it for
// GANs and AAEs: log p(x) = logsumexp_i(-||x - g_i||^2 / (2 sigma^2)) - log N - D/2 log(2 pi sigma^2),
// the bandwidth sigma chosen on a validation split. A weak metric (it rewards blur and memorised
// samples, and is far from the true likelihood in 784 dimensions): it is here to compare with
// the papers' numbers, nothing more.
#ifndef CUVAE_PARZEN_H
#define CUVAE_PARZEN_H

#include <stddef.h>
#include "cuvae/backend.h"

// The bandwidths tried on the validation split: 10^(-1 + i / 9), i = 0..9 (the grid of
// Goodfellow et al.'s parzen_ll.py: numpy.logspace(-1, 0, 10)).
#define PARZEN_N_SIGMAS 10
double parzen_sigma_candidate(int i);

// ll (n_sigmas, M): log p(x_m) under the window of the N samples (N, D) with bandwidth sigmas[s],
// nats. samples and x are host arrays of values in the data's range; the squared distances
// ||x||^2 + ||g||^2 - 2 x.g come from GEMMs on the backend (x in chunks), the log-sum-exp
// in double on the host.
void parzen_log_likelihood(Backend *be, const float *samples, int N, const float *x, int M, int D,
                           const double *sigmas, int n_sigmas, double *ll);

typedef struct {
    double sigma;                    // chosen: the best mean log-likelihood on the validation split
    double sigma_ll[PARZEN_N_SIGMAS];   // the validation mean of every candidate
    int validation_examples;
    double mean_ll, std_error;       // on the test examples: mean log p(x), nats, and its standard error
                                     // (NAN with one test example: undefined; null in eval.json)
    int test_examples, samples;
} ParzenResult;

// Chooses sigma on val (V, D) and scores test (M, D) with it.
void parzen_evaluate(Backend *be, const float *samples, int N, const float *val, int V, const float *test, int M,
                     int D, ParzenResult *out);

#endif
