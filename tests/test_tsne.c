// test_tsne.c: tests for the exact t-SNE (src/tsne.c): perplexity calibration,
// separation of well-separated Gaussian clusters, determinism, the KL
// divergence falling after early exaggeration, and the input errors.
#include "test.h"
#include "cuvae/common.h"
#include "cuvae/rng.h"
#include "cuvae/tsne.h"

#include <stdlib.h>

// ----------------------------------------------------------------------------
// fixtures

// n points in dim dims, each coordinate N(0, 1).
static float *random_points(int n, int dim, uint64_t seed) {
    float *x = xmalloc((size_t)n * dim * sizeof(float));
    Rng rng;
    rng_init(&rng, seed, 0);
    for (size_t k = 0; k < (size_t)n * dim; k++) x[k] = rng_normal(&rng);
    return x;
}

// clusters * per_cluster points in dim dims (dim >= clusters): cluster c is
// N(center_c, I) with center_c = (separation / sqrt 2) e_c, so any two centers
// are `separation` apart. Point i belongs to cluster i / per_cluster.
static float *cluster_points(int clusters, int per_cluster, int dim, double separation,
                             uint64_t seed, int *labels) {
    int n = clusters * per_cluster;
    float *x = random_points(n, dim, seed);
    for (int i = 0; i < n; i++) {
        int c = i / per_cluster;
        labels[i] = c;
        x[(size_t)i * dim + c] += (float)(separation / sqrt(2.0));
    }
    return x;
}

static double squared_distance_2d(const float *y, int i, int j) {
    double d0 = (double)y[2 * i] - y[2 * j];
    double d1 = (double)y[2 * i + 1] - y[2 * j + 1];
    return d0 * d0 + d1 * d1;
}

// Mean over points of the fraction of their k nearest 2-D neighbours (self
// excluded) that share their label.
static double knn_label_agreement(const float *y, const int *labels, int n, int k) {
    double *best_dist = xmalloc((size_t)k * sizeof(double));
    int *best_index = xmalloc((size_t)k * sizeof(int));
    double total = 0.0;
    for (int i = 0; i < n; i++) {
        int found = 0;
        for (int j = 0; j < n; j++) {
            if (j == i) continue;
            double d = squared_distance_2d(y, i, j);
            if (found == k && d >= best_dist[k - 1]) continue;
            // insertion into the sorted list of the k best so far
            int pos = found < k ? found++ : k - 1;
            while (pos > 0 && best_dist[pos - 1] > d) {
                best_dist[pos] = best_dist[pos - 1];
                best_index[pos] = best_index[pos - 1];
                pos--;
            }
            best_dist[pos] = d;
            best_index[pos] = j;
        }
        int same = 0;
        for (int m = 0; m < k; m++) same += labels[best_index[m]] == labels[i];
        total += (double)same / k;
    }
    free(best_index);
    free(best_dist);
    return total / n;
}

static double kl_of(const float *x, int n, int dim, double perplexity, const float *y) {
    char err[256] = "";
    double kl = NAN;
    int rc = tsne_kl_divergence(x, n, dim, perplexity, y, &kl, err, sizeof err);
    CHECK(rc == 0, "tsne_kl_divergence failed: %s", err);
    return kl;
}

// ----------------------------------------------------------------------------
// tests

static void test_default_options(void) {
    TsneOptions o;
    memset(&o, 0xff, sizeof o);
    tsne_default_options(&o);
    CHECK(o.perplexity == 30.0, "perplexity %g", o.perplexity);
    CHECK(o.iterations == 1000, "iterations %d", o.iterations);
    CHECK(o.seed == 1, "seed %llu", (unsigned long long)o.seed);
    CHECK(o.learning_rate <= 0.0, "learning rate %g (expected automatic)", o.learning_rate);
}

// Each row of the conditional P sums to 1, is 0 on the diagonal and has
// entropy log(perplexity), also for distances scaled far from 1.
static void test_perplexity_calibration(void) {
    int n = 60, dim = 8;
    float *x = random_points(n, dim, 11);
    double *dist2 = xmalloc((size_t)n * n * sizeof(double));
    double *scaled = xmalloc((size_t)n * n * sizeof(double));
    double *P = xmalloc((size_t)n * n * sizeof(double));
    for (int i = 0; i < n; i++) {
        for (int j = 0; j < n; j++) {
            double d2 = 0.0;
            for (int k = 0; k < dim; k++) {
                double diff = (double)x[i * dim + k] - x[j * dim + k];
                d2 += diff * diff;
            }
            dist2[i * n + j] = d2;
        }
    }
    const double perplexities[] = {2.0, 5.0, 15.0, 30.0, 50.0};
    const double scales[] = {1.0, 1e-4, 1e4};
    for (size_t s = 0; s < sizeof scales / sizeof scales[0]; s++) {
        for (int k = 0; k < n * n; k++) scaled[k] = dist2[k] * scales[s];
        for (size_t t = 0; t < sizeof perplexities / sizeof perplexities[0]; t++) {
            double perplexity = perplexities[t];
            int not_converged = tsne_conditional_p(scaled, n, perplexity, P);
            CHECK(not_converged == 0, "scale %g perplexity %g: %d rows did not converge", scales[s],
                  perplexity, not_converged);
            double worst_entropy_error = 0.0, worst_sum_error = 0.0;
            for (int i = 0; i < n; i++) {
                const double *row = P + (size_t)i * n;
                CHECK(row[i] == 0.0, "P[%d][%d] = %g, want 0", i, i, row[i]);
                double sum = 0.0, entropy = 0.0;
                for (int j = 0; j < n; j++) {
                    CHECK(row[j] >= 0.0 && row[j] <= 1.0, "P[%d][%d] = %g", i, j, row[j]);
                    sum += row[j];
                    if (row[j] > 0.0) entropy -= row[j] * log(row[j]);
                }
                worst_sum_error = fmax(worst_sum_error, fabs(sum - 1.0));
                worst_entropy_error = fmax(worst_entropy_error, fabs(entropy - log(perplexity)));
            }
            CHECK(worst_sum_error < 1e-12, "scale %g perplexity %g: row sum off by %g", scales[s],
                  perplexity, worst_sum_error);
            CHECK(worst_entropy_error < 1e-4, "scale %g perplexity %g: entropy off by %g", scales[s],
                  perplexity, worst_entropy_error);
        }
    }
    CHECK(tsne_conditional_p(dist2, 1, 0.5, P) == -1, "N = 1 accepted");
    CHECK(tsne_conditional_p(dist2, n, n - 1.0, P) == -1, "perplexity N - 1 accepted");
    CHECK(tsne_conditional_p(dist2, n, 0.0, P) == -1, "perplexity 0 accepted");
    free(P);
    free(scaled);
    free(dist2);
    free(x);
}

// 4 clusters x 100 points in 10-D, centers 10 apart, sd 1: in 2-D the 5 nearest
// neighbours share the label, and the clusters are far apart compared to
// their own spread.
static void test_clusters_stay_separated(void) {
    int clusters = 4, per_cluster = 100, dim = 10, n = clusters * per_cluster;
    int *labels = xmalloc((size_t)n * sizeof(int));
    float *x = cluster_points(clusters, per_cluster, dim, 10.0, 5, labels);
    float *y = xmalloc((size_t)n * 2 * sizeof(float));
    TsneOptions o;
    tsne_default_options(&o);
    char err[256] = "";
    int rc = tsne_embed(x, n, dim, &o, y, err, sizeof err);
    CHECK(rc == 0, "tsne_embed failed: %s", err);
    if (rc == 0) {
        double agreement = knn_label_agreement(y, labels, n, 5);
        CHECK(agreement >= 0.95, "5-NN label agreement %.4f < 0.95", agreement);

        double centroid[4][2] = {{0}};
        for (int i = 0; i < n; i++) {
            centroid[labels[i]][0] += y[2 * i] / per_cluster;
            centroid[labels[i]][1] += y[2 * i + 1] / per_cluster;
        }
        // spread: root-mean-square distance of a cluster's points to its centroid
        double max_spread = 0.0;
        for (int c = 0; c < clusters; c++) {
            double sum2 = 0.0;
            for (int i = c * per_cluster; i < (c + 1) * per_cluster; i++) {
                double d0 = y[2 * i] - centroid[c][0], d1 = y[2 * i + 1] - centroid[c][1];
                sum2 += d0 * d0 + d1 * d1;
            }
            max_spread = fmax(max_spread, sqrt(sum2 / per_cluster));
        }
        double min_between = INFINITY;
        for (int a = 0; a < clusters; a++) {
            for (int b = a + 1; b < clusters; b++) {
                double d0 = centroid[a][0] - centroid[b][0], d1 = centroid[a][1] - centroid[b][1];
                min_between = fmin(min_between, sqrt(d0 * d0 + d1 * d1));
            }
        }
        // two discs of radius max_spread around the centroids do not overlap
        CHECK(min_between > 2.0 * max_spread,
              "closest centroids %.3f apart, within-cluster RMS spread up to %.3f", min_between,
              max_spread);
    }
    free(y);
    free(x);
    free(labels);
}

// Same seed: bit-identical layouts. Another seed: a different layout.
static void test_deterministic(void) {
    int n = 150, dim = 6;
    float *x = random_points(n, dim, 21);
    float *first = xmalloc((size_t)n * 2 * sizeof(float));
    float *second = xmalloc((size_t)n * 2 * sizeof(float));
    TsneOptions o;
    tsne_default_options(&o);
    o.perplexity = 20.0;
    o.iterations = 300;
    o.seed = 42;
    char err[256] = "";
    CHECK(tsne_embed(x, n, dim, &o, first, err, sizeof err) == 0, "first run: %s", err);
    CHECK(tsne_embed(x, n, dim, &o, second, err, sizeof err) == 0, "second run: %s", err);
    CHECK(memcmp(first, second, (size_t)n * 2 * sizeof(float)) == 0, "same seed, different layouts");
    o.seed = 43;
    CHECK(tsne_embed(x, n, dim, &o, second, err, sizeof err) == 0, "third run: %s", err);
    CHECK(memcmp(first, second, (size_t)n * 2 * sizeof(float)) != 0, "seeds 42 and 43 gave one layout");
    // the initial layout: N(0, (1e-4)^2) coordinates
    o.iterations = 0;
    CHECK(tsne_embed(x, n, dim, &o, second, err, sizeof err) == 0, "zero iterations: %s", err);
    double sum2 = 0.0;
    for (int k = 0; k < n * 2; k++) sum2 += (double)second[k] * second[k];
    double sd = sqrt(sum2 / (n * 2));
    CHECK(sd > 0.5e-4 && sd < 2e-4, "initial layout sd %g, want about 1e-4", sd);
    free(second);
    free(first);
    free(x);
}

// The schedule does not depend on the iteration count, so a run of k iterations
// is the state at step k of a longer run: the KL divergence after early
// exaggeration ends (iteration 250) keeps falling to the end.
static void test_kl_decreases(void) {
    int clusters = 3, per_cluster = 80, dim = 12, n = clusters * per_cluster;
    int *labels = xmalloc((size_t)n * sizeof(int));
    float *x = cluster_points(clusters, per_cluster, dim, 6.0, 8, labels);
    float *y = xmalloc((size_t)n * 2 * sizeof(float));
    TsneOptions o;
    tsne_default_options(&o);
    o.perplexity = 25.0;
    const int checkpoints[] = {0, 250, 300, 400, 600, 1000};
    double kl[6];
    char err[256] = "";
    for (int c = 0; c < 6; c++) {
        o.iterations = checkpoints[c];
        CHECK(tsne_embed(x, n, dim, &o, y, err, sizeof err) == 0, "%d iterations: %s", checkpoints[c], err);
        kl[c] = kl_of(x, n, dim, o.perplexity, y);
        CHECK(kl[c] >= 0.0 && isfinite(kl[c]), "KL %g after %d iterations", kl[c], checkpoints[c]);
    }
    CHECK(kl[1] < kl[0], "KL after exaggeration %.5f not below the initial %.5f", kl[1], kl[0]);
    for (int c = 2; c < 6; c++) {
        CHECK(kl[c] < kl[c - 1], "KL rose from %.5f (iteration %d) to %.5f (iteration %d)", kl[c - 1],
              checkpoints[c - 1], kl[c], checkpoints[c]);
    }
    CHECK(kl[5] < 0.8 * kl[1], "KL only fell from %.5f to %.5f after iteration 250", kl[1], kl[5]);
    free(y);
    free(x);
    free(labels);
}

// The KL divergence matches a direct O(N^2) evaluation from the conditional P.
static void test_kl_matches_definition(void) {
    int n = 40, dim = 5;
    double perplexity = 8.0;
    float *x = random_points(n, dim, 31);
    float *y = random_points(n, 2, 32);
    double *dist2 = xmalloc((size_t)n * n * sizeof(double));
    double *P = xmalloc((size_t)n * n * sizeof(double));
    for (int i = 0; i < n; i++) {
        for (int j = 0; j < n; j++) {
            double d2 = 0.0;
            for (int k = 0; k < dim; k++) {
                double diff = (double)x[i * dim + k] - x[j * dim + k];
                d2 += diff * diff;
            }
            dist2[i * n + j] = d2;
        }
    }
    CHECK(tsne_conditional_p(dist2, n, perplexity, P) == 0, "calibration did not converge");
    double z = 0.0;
    for (int i = 0; i < n; i++) {
        for (int j = 0; j < n; j++) {
            if (i != j) z += 1.0 / (1.0 + squared_distance_2d(y, i, j));
        }
    }
    double expected = 0.0;
    for (int i = 0; i < n; i++) {
        for (int j = 0; j < n; j++) {
            if (i == j) continue;
            double p = (P[i * n + j] + P[j * n + i]) / (2.0 * n);
            double q = 1.0 / (1.0 + squared_distance_2d(y, i, j)) / z;
            if (p > 0.0) expected += p * log(p / q);
        }
    }
    double kl = kl_of(x, n, dim, perplexity, y);
    CHECK(test_close(kl, expected, 1e-9, 1e-12), "KL %.12f, direct %.12f", kl, expected);
    free(P);
    free(dist2);
    free(y);
    free(x);
}

static void expect_embed_error(const float *x, int n, int dim, const TsneOptions *o, const char *needle) {
    char err[256] = "";
    float *y = xmalloc((size_t)(n > 0 ? n : 1) * 2 * sizeof(float));
    int rc = tsne_embed(x, n, dim, o, y, err, sizeof err);
    CHECK(rc == -1, "expected an error mentioning \"%s\", got rc %d", needle, rc);
    CHECK(strstr(err, needle) != NULL, "error \"%s\" does not mention \"%s\"", err, needle);
    free(y);
}

static void test_errors(void) {
    int dim = 3;
    float *x = random_points(200, dim, 41);
    TsneOptions o;
    tsne_default_options(&o);
    o.iterations = 5;

    // too few points
    o.perplexity = 1.0;
    expect_embed_error(x, 4, dim, &o, "at least 5 points");
    expect_embed_error(x, 0, dim, &o, "at least 5 points");
    expect_embed_error(x, -3, dim, &o, "at least 5 points");
    expect_embed_error(NULL, 10, dim, &o, "no input");
    expect_embed_error(x, 10, 0, &o, "dimension");

    // perplexity: N - 1 > 3 * perplexity, so 30 needs N >= 92
    o.perplexity = 30.0;
    expect_embed_error(x, 91, dim, &o, "perplexity 30 too large for 91 points");
    expect_embed_error(x, 50, dim, &o, "too large");
    char err[256] = "";
    float *y = xmalloc(200 * 2 * sizeof(float));
    CHECK(tsne_embed(x, 92, dim, &o, y, err, sizeof err) == 0, "92 points, perplexity 30: %s", err);
    o.perplexity = 0.0;
    expect_embed_error(x, 100, dim, &o, "perplexity");
    o.perplexity = -5.0;
    expect_embed_error(x, 100, dim, &o, "perplexity");
    o.perplexity = NAN;
    expect_embed_error(x, 100, dim, &o, "perplexity");
    o.perplexity = 10.0;

    // options
    o.iterations = -1;
    expect_embed_error(x, 100, dim, &o, "iterations");
    o.iterations = 5;
    o.learning_rate = INFINITY;
    expect_embed_error(x, 100, dim, &o, "learning rate");
    o.learning_rate = 0.0;

    // non-finite input
    float saved = x[7 * dim + 2];
    x[7 * dim + 2] = NAN;
    expect_embed_error(x, 100, dim, &o, "non-finite input at point 7, dim 2");
    x[7 * dim + 2] = INFINITY;
    expect_embed_error(x, 100, dim, &o, "non-finite");
    x[7 * dim + 2] = -INFINITY;
    expect_embed_error(x, 100, dim, &o, "non-finite");
    x[7 * dim + 2] = saved;

    // NULL options mean the defaults (perplexity 30, 1000 iterations)
    CHECK(tsne_embed(x, 100, dim, NULL, y, err, sizeof err) == 0, "default options: %s", err);
    for (int k = 0; k < 200; k++) CHECK(isfinite(y[k]), "y[%d] = %g", k, (double)y[k]);

    // the KL divergence checks the same things, and the layout
    double kl = 0.0;
    CHECK(tsne_kl_divergence(x, 4, dim, 1.0, y, &kl, err, sizeof err) == -1, "KL accepted 4 points");
    CHECK(tsne_kl_divergence(x, 50, dim, 30.0, y, &kl, err, sizeof err) == -1, "KL accepted perplexity 30");
    y[3] = NAN;
    CHECK(tsne_kl_divergence(x, 100, dim, 10.0, y, &kl, err, sizeof err) == -1, "KL accepted a NaN layout");
    CHECK(strstr(err, "non-finite") != NULL, "KL error \"%s\"", err);

    // a NULL or zero-length error buffer is fine
    CHECK(tsne_embed(x, 3, dim, &o, y, NULL, 0) == -1, "NULL err buffer");
    free(y);
    free(x);
}

// The layout overflowing (src/tsne.c, the check after the iterations): not reachable from `cuvae plot`,
// whose learning rate is the automatic one and whose --tsne-iterations is at most 100000 (the steps are
// bounded: |grad| <= ~26, gains grow by 0.2 an iteration), so only through the option a caller sets: a
// finite learning rate of 1e300 throws the points ~1e300 apart in the first iteration, the next one's
// squared distances are inf (w = 0, Z = 0, 0 * inf = NaN). Refused as t-SNE diverged, naming a point,
// and the caller's output buffer left as it was (no NaN handed on to the scatter).
static void test_divergence(void) {
    const int n = 100, dim = 3;
    float *x = random_points(n, dim, 43);
    TsneOptions o;
    tsne_default_options(&o);
    o.perplexity = 10.0;
    o.iterations = 5;
    o.learning_rate = 1e300;
    char err[256] = "";
    float *y = xmalloc((size_t)n * 2 * sizeof(float));
    for (int k = 0; k < 2 * n; k++) y[k] = 7.0f;
    CHECK(tsne_embed(x, n, dim, &o, y, err, sizeof err) == -1, "learning rate 1e300: accepted");
    CHECK(strncmp(err, "t-SNE diverged: non-finite coordinate for point ", 48) == 0, "error \"%s\"", err);
    int untouched = 1;
    for (int k = 0; k < 2 * n; k++) untouched &= y[k] == 7.0f;
    CHECK(untouched, "a diverged layout was written to the output");
    o.learning_rate = 200.0;   // the same points at an ordinary rate: a finite layout
    CHECK(tsne_embed(x, n, dim, &o, y, err, sizeof err) == 0, "learning rate 200: %s", err);
    for (int k = 0; k < 2 * n; k++) CHECK(isfinite(y[k]), "y[%d] = %g", k, (double)y[k]);
    free(y);
    free(x);
}

int main(void) {
    test_run("tsne_default_options", test_default_options);
    test_run("tsne_perplexity_calibration", test_perplexity_calibration);
    test_run("tsne_clusters_stay_separated", test_clusters_stay_separated);
    test_run("tsne_deterministic", test_deterministic);
    test_run("tsne_kl_decreases", test_kl_decreases);
    test_run("tsne_kl_matches_definition", test_kl_matches_definition);
    test_run("tsne_errors", test_errors);
    test_run("tsne_divergence", test_divergence);
    return test_finish("test_tsne");
}
