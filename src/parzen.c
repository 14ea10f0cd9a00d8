// parzen.c: the Parzen-window log-likelihood (parzen.h): squared distances by GEMM on the
// backend, a log-sum-exp in double per example and bandwidth on the host.
#include "cuvae/parzen.h"
#include "cuvae/common.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define PARZEN_CHUNK 256   // data rows per GEMM

double parzen_sigma_candidate(int i) { return pow(10.0, -1.0 + (double)i / (PARZEN_N_SIGMAS - 1)); }

static double squared_norm(const float *v, int D) {
    double s = 0.0;
    for (int d = 0; d < D; d++) s += (double)v[d] * v[d];
    return s;
}

void parzen_log_likelihood(Backend *be, const float *samples, int N, const float *x, int M, int D,
                           const double *sigmas, int n_sigmas, double *ll) {
    float *samples_dev = be->alloc(be, (size_t)N * D * sizeof(float));
    float *x_dev = be->alloc(be, (size_t)PARZEN_CHUNK * D * sizeof(float));
    float *dots_dev = be->alloc(be, (size_t)PARZEN_CHUNK * N * sizeof(float));
    float *dots = xmalloc((size_t)PARZEN_CHUNK * N * sizeof(float));      // (chunk, N) x . g
    double *sample_norms = xmalloc((size_t)N * sizeof(double));           // (N) ||g||^2
    double *distances = xmalloc((size_t)N * sizeof(double));              // (N) one row's ||x - g||^2
    be->upload(be, samples_dev, samples, (size_t)N * D * sizeof(float));
    for (int i = 0; i < N; i++) sample_norms[i] = squared_norm(samples + (size_t)i * D, D);
    for (int start = 0; start < M; start += PARZEN_CHUNK) {
        const int rows = M - start < PARZEN_CHUNK ? M - start : PARZEN_CHUNK;
        be->upload(be, x_dev, x + (size_t)start * D, (size_t)rows * D * sizeof(float));
        // dots (rows, N) = x (rows, D) samples (N, D)^T
        be->gemm(be, false, true, rows, N, D, 1.0f, x_dev, D, samples_dev, D, 0.0f, dots_dev, N);
        be->download(be, dots, dots_dev, (size_t)rows * N * sizeof(float));
        for (int r = 0; r < rows; r++) {
            const double x_norm = squared_norm(x + (size_t)(start + r) * D, D);
            double nearest = INFINITY;
            for (int i = 0; i < N; i++) {
                double d2 = x_norm + sample_norms[i] - 2.0 * (double)dots[(size_t)r * N + i];
                distances[i] = d2 > 0.0 ? d2 : 0.0;   // rounding can take an exact match below 0
                if (distances[i] < nearest) nearest = distances[i];
            }
            for (int s = 0; s < n_sigmas; s++) {
                const double inv = 1.0 / (2.0 * sigmas[s] * sigmas[s]);
                double sum = 0.0;   // relative to the nearest sample's term: no underflow to 0
                for (int i = 0; i < N; i++) sum += exp(-(distances[i] - nearest) * inv);
                ll[(size_t)s * M + start + r] = -nearest * inv + log(sum) - log((double)N) -
                                                0.5 * D * log(2.0 * M_PI * sigmas[s] * sigmas[s]);
            }
        }
    }
    free(distances);
    free(sample_norms);
    free(dots);
    be->free(be, dots_dev);
    be->free(be, x_dev);
    be->free(be, samples_dev);
}

void parzen_evaluate(Backend *be, const float *samples, int N, const float *val, int V, const float *test, int M,
                     int D, ParzenResult *out) {
    memset(out, 0, sizeof *out);
    double sigmas[PARZEN_N_SIGMAS];
    for (int s = 0; s < PARZEN_N_SIGMAS; s++) sigmas[s] = parzen_sigma_candidate(s);
    double *ll = xmalloc((size_t)PARZEN_N_SIGMAS * (V > M ? V : M) * sizeof(double));
    parzen_log_likelihood(be, samples, N, val, V, D, sigmas, PARZEN_N_SIGMAS, ll);
    int best = 0;
    for (int s = 0; s < PARZEN_N_SIGMAS; s++) {
        double sum = 0.0;
        for (int v = 0; v < V; v++) sum += ll[(size_t)s * V + v];
        out->sigma_ll[s] = V > 0 ? sum / V : 0.0;
        if (out->sigma_ll[s] > out->sigma_ll[best]) best = s;
    }
    out->sigma = sigmas[best];
    out->validation_examples = V;
    parzen_log_likelihood(be, samples, N, test, M, D, &out->sigma, 1, ll);
    double sum = 0.0, sum_sq = 0.0;
    for (int i = 0; i < M; i++) {
        sum += ll[i];
        sum_sq += ll[i] * ll[i];
    }
    out->mean_ll = M > 0 ? sum / M : 0.0;
    double variance = M > 1 ? (sum_sq - sum * out->mean_ll) / (M - 1) : 0.0;
    out->std_error = M > 1 ? (variance > 0 ? sqrt(variance / M) : 0.0) : NAN;   // one example: undefined
    out->test_examples = M;
    out->samples = N;
    free(ll);
}
