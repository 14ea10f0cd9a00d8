// test_parzen.c: the Parzen-window log-likelihood (parzen.h) against a direct double-precision
// sum over the samples, across chunk boundaries and bandwidths, and the choice of sigma on the
// validation set with the standard error of the test mean.
#include "cuvae/backend.h"
#include "cuvae/common.h"
#include "cuvae/parzen.h"
#include "cuvae/rng.h"
#include "test.h"

#include <math.h>
#include <stdlib.h>

static Backend *cpu;

// log (1/N sum_i N(x; g_i, sigma^2 I)), the plain way (long double accumulation)
static double direct_log_likelihood(const float *samples, int N, const float *x, int D, double sigma) {
    long double sum = 0.0L;
    for (int i = 0; i < N; i++) {
        double d2 = 0.0;
        for (int d = 0; d < D; d++) {
            double diff = (double)x[d] - samples[(size_t)i * D + d];
            d2 += diff * diff;
        }
        sum += expl(-(long double)d2 / (2.0L * sigma * sigma));
    }
    return (double)logl(sum / N) - 0.5 * D * log(2.0 * M_PI * sigma * sigma);
}

static void fill(float *v, size_t n, Rng *rng) {
    for (size_t i = 0; i < n; i++) v[i] = rng_uniform(rng);
}

static void test_matches_direct_sum(void) {
    enum { N = 300, M = 300, D = 9 };   // M past one 256-row chunk
    Rng rng;
    rng_init(&rng, 4, 1);
    float *samples = xmalloc(N * D * sizeof(float)), *x = xmalloc(M * D * sizeof(float));
    fill(samples, N * D, &rng);
    fill(x, M * D, &rng);
    const double sigmas[3] = {0.1, 0.3, 1.0};
    double *ll = xmalloc(3 * M * sizeof(double));
    parzen_log_likelihood(cpu, samples, N, x, M, D, sigmas, 3, ll);
    int bad = 0;
    for (int s = 0; s < 3; s++)
        for (int m = 0; m < M; m++) {
            double want = direct_log_likelihood(samples, N, x + (size_t)m * D, D, sigmas[s]);
            // the GEMM's float dot products: |error| ~ 1e-6 * ||x||^2 / sigma^2
            if (!test_close(ll[s * M + m], want, 1e-5, 2e-3) && bad++ < 5)
                CHECK(0, "sigma %g example %d: %.9g vs direct %.9g", sigmas[s], m, ll[s * M + m], want);
        }
    CHECK(bad == 0, "%d of %d log-likelihoods off", bad, 3 * M);
    free(ll);
    free(samples);
    free(x);
}

// Far from every sample (sigma 0.1, distance 5): the terms underflow a plain exp; the
// log-sum-exp relative to the nearest sample keeps the answer
static void test_far_point_no_underflow(void) {
    const int D = 4;
    float samples[2 * 4] = {0, 0, 0, 0, 1, 0, 0, 0};
    float x[4] = {5, 0, 0, 0};
    const double sigma = 0.1;
    double ll;
    parzen_log_likelihood(cpu, samples, 2, x, 1, D, &sigma, 1, &ll);
    // nearest d2 = 16: log(0.5 (e^{-800} + e^{-1250})) ~ -800 - log 2
    double want = -16.0 / (2 * sigma * sigma) + log1p(exp(-(25.0 - 16.0) / (2 * sigma * sigma))) - log(2.0) -
                  0.5 * D * log(2 * M_PI * sigma * sigma);
    CHECK(isfinite(ll) && test_close(ll, want, 1e-6, 1e-6), "far point: %.9g vs %.9g", ll, want);
}

static void test_evaluate_chooses_sigma(void) {
    enum { N = 200, V = 60, M = 80, D = 6 };
    Rng rng;
    rng_init(&rng, 8, 2);
    float *samples = xmalloc(N * D * sizeof(float)), *val = xmalloc(V * D * sizeof(float));
    float *test = xmalloc(M * D * sizeof(float));
    fill(samples, N * D, &rng);
    fill(val, V * D, &rng);
    fill(test, M * D, &rng);
    ParzenResult r;
    parzen_evaluate(cpu, samples, N, val, V, test, M, D, &r);
    int best = 0;
    for (int s = 0; s < PARZEN_N_SIGMAS; s++) {
        double sum = 0;
        for (int v = 0; v < V; v++) sum += direct_log_likelihood(samples, N, val + (size_t)v * D, D, parzen_sigma_candidate(s));
        CHECK(test_close(r.sigma_ll[s], sum / V, 1e-5, 1e-4), "sigma %g: validation mean %.9g vs %.9g",
              parzen_sigma_candidate(s), r.sigma_ll[s], sum / V);
        if (r.sigma_ll[s] > r.sigma_ll[best]) best = s;
    }
    CHECK(r.sigma == parzen_sigma_candidate(best), "chose sigma %g, the best is %g", r.sigma,
          parzen_sigma_candidate(best));
    CHECK(best > 0 && best < PARZEN_N_SIGMAS - 1, "uniform data: the best sigma %g is inside the grid", r.sigma);
    double sum = 0, sum_sq = 0;
    for (int m = 0; m < M; m++) {
        double ll = direct_log_likelihood(samples, N, test + (size_t)m * D, D, r.sigma);
        sum += ll;
        sum_sq += ll * ll;
    }
    double mean = sum / M, se = sqrt((sum_sq - sum * mean) / (M - 1) / M);
    CHECK(test_close(r.mean_ll, mean, 1e-5, 1e-4), "test mean %.9g vs %.9g", r.mean_ll, mean);
    CHECK(test_close(r.std_error, se, 1e-3, 1e-5), "standard error %.9g vs %.9g", r.std_error, se);
    CHECK(r.samples == N && r.test_examples == M && r.validation_examples == V, "counts");
    CHECK(fabs(parzen_sigma_candidate(0) - 0.1) < 1e-15 && fabs(parzen_sigma_candidate(9) - 1.0) < 1e-15,
          "the grid is logspace(-1, 0, 10)");
    // one test example: its mean, and no standard error (undefined, NAN: null in eval.json)
    ParzenResult one;
    parzen_evaluate(cpu, samples, N, val, V, test, 1, D, &one);
    CHECK(test_close(one.mean_ll, direct_log_likelihood(samples, N, test, D, one.sigma), 1e-5, 1e-4) &&
              isnan(one.std_error) && one.test_examples == 1, "one test example: mean %.9g, standard error %g",
          one.mean_ll, one.std_error);
    free(samples);
    free(val);
    free(test);
}

int main(void) {
    cpu = backend_cpu_create();
    test_run("matches_direct_sum", test_matches_direct_sum);
    test_run("far_point_no_underflow", test_far_point_no_underflow);
    test_run("evaluate_chooses_sigma", test_evaluate_chooses_sigma);
    cpu->destroy(cpu);
    return test_finish("test_parzen");
}
