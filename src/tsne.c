// tsne.c: exact t-SNE (van der Maaten & Hinton 2008) in double precision.
// Per-point binary search of the Gaussian precision for the requested
// perplexity, a symmetrized joint P kept as a packed upper triangle, and
// gradient descent on KL(P || Q) with a Student-t Q, early exaggeration,
// momentum and per-coordinate adaptive gains. Every pair is visited once per
// iteration; the attractive and repulsive sums are accumulated separately so
// one pass suffices (the normalizer Z is only needed at the end).
#include "cuvae/tsne.h"
#include "cuvae/common.h"
#include "cuvae/rng.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define TSNE_EXAGGERATION 12.0
#define TSNE_EXAGGERATION_ITERATIONS 250   // exaggerate P for iterations 0..249
#define TSNE_MOMENTUM_SWITCH_ITERATION 250
#define TSNE_INITIAL_MOMENTUM 0.5
#define TSNE_FINAL_MOMENTUM 0.8
#define TSNE_GAIN_INCREASE 0.2
#define TSNE_GAIN_DECAY 0.8
#define TSNE_MIN_GAIN 0.01
#define TSNE_ENTROPY_TOLERANCE 1e-5
#define TSNE_MAX_SEARCH_STEPS 100
#define TSNE_INITIAL_SD 1e-4               // initial layout ~ N(0, (1e-4)^2) per coordinate
#define TSNE_RNG_STREAM 31

void tsne_default_options(TsneOptions *o) {
    o->perplexity = 30.0;
    o->iterations = 1000;
    o->seed = 1;
    o->learning_rate = 0.0;  // automatic: max(N / 12 / 4, 50)
}

// ----------------------------------------------------------------------------
// packed upper triangle: pairs (i, j), i < j, stored row by row, row i holding
// j = i + 1 .. N - 1.

static size_t packed_row_start(int i, int N) {
    // sum over rows r < i of (N - 1 - r); i * (2N - 1 - i) is always even
    return (size_t)i * (size_t)(2 * N - 1 - i) / 2;
}

static size_t packed_size(int N) { return (size_t)N * (size_t)(N - 1) / 2; }

static size_t packed_index(int i, int j, int N) {  // requires i < j
    return packed_row_start(i, N) + (size_t)(j - i - 1);
}

// ----------------------------------------------------------------------------
// perplexity calibration

// The conditional distribution of one point: p_j = exp(-beta (d_j - min_dist) - log_norm).
typedef struct {
    double beta;
    double min_dist;
    double log_norm;
    int converged;
} RowCalibration;

// Finds beta so that p_j ∝ exp(-beta dist[j]) over j != self has entropy
// log(perplexity). Writes the normalized row into p (p[self] = 0). Distances are
// shifted by their minimum so the nearest neighbour always has weight 1 and the
// sum never underflows; the entropy is H = log(sum) + beta * E[d - min].
static RowCalibration calibrate_row(const double *dist, int n, int self, double perplexity,
                                    double *p) {
    double target_entropy = log(perplexity);
    double min_dist = INFINITY;
    for (int j = 0; j < n; j++) {
        if (j != self && dist[j] < min_dist) min_dist = dist[j];
    }

    double beta = 1.0;
    double beta_low = 0.0;        // largest beta known to give too much entropy
    double beta_high = INFINITY;  // smallest beta known to give too little
    double sum = 0.0;
    int converged = 0;
    for (int step = 0; step < TSNE_MAX_SEARCH_STEPS; step++) {
        sum = 0.0;
        double weighted_dist = 0.0;
        for (int j = 0; j < n; j++) {
            if (j == self) {
                p[j] = 0.0;
                continue;
            }
            double shifted = dist[j] - min_dist;
            double weight = exp(-beta * shifted);
            p[j] = weight;
            sum += weight;
            weighted_dist += weight * shifted;
        }
        double entropy = log(sum) + beta * weighted_dist / sum;
        double entropy_error = entropy - target_entropy;
        if (fabs(entropy_error) < TSNE_ENTROPY_TOLERANCE) {
            converged = 1;
            break;
        }
        if (step == TSNE_MAX_SEARCH_STEPS - 1) break;  // keep the beta that p was computed with
        if (entropy_error > 0) {
            // too flat: sharpen
            beta_low = beta;
            beta = isinf(beta_high) ? beta * 2.0 : (beta + beta_high) / 2.0;
        } else {
            // too peaked: widen
            beta_high = beta;
            beta = (beta + beta_low) / 2.0;
        }
    }
    for (int j = 0; j < n; j++) p[j] /= sum;

    RowCalibration row = {beta, min_dist, log(sum), converged};
    return row;
}

int tsne_conditional_p(const double *dist2, int N, double perplexity, double *P) {
    if (!dist2 || !P || N < 2 || !(perplexity > 0.0) || !(perplexity < (double)(N - 1))) return -1;
    int not_converged = 0;
    for (int i = 0; i < N; i++) {
        RowCalibration row =
            calibrate_row(dist2 + (size_t)i * N, N, i, perplexity, P + (size_t)i * N);
        if (!row.converged) not_converged++;
    }
    return not_converged;
}

// Builds the symmetrized joint P_ij = (p_j|i + p_i|j) / 2N into P (packed).
// The packed array first holds the squared distances (each pair computed once);
// after every row is calibrated the distances are replaced in place by P.
static void joint_probabilities(const double *x, int N, int D, double perplexity, double *P) {
    for (int i = 0; i < N; i++) {
        const double *xi = x + (size_t)i * D;
        double *row = P + packed_row_start(i, N);
        for (int j = i + 1; j < N; j++) {
            const double *xj = x + (size_t)j * D;
            double d2 = 0.0;
            for (int k = 0; k < D; k++) {
                double diff = xi[k] - xj[k];
                d2 += diff * diff;
            }
            row[j - i - 1] = d2;
        }
    }

    RowCalibration *rows = xmalloc((size_t)N * sizeof(RowCalibration));
    double *dist_row = xmalloc((size_t)N * sizeof(double));
    double *p_row = xmalloc((size_t)N * sizeof(double));
    for (int i = 0; i < N; i++) {
        for (int j = 0; j < i; j++) dist_row[j] = P[packed_index(j, i, N)];
        dist_row[i] = 0.0;
        if (i + 1 < N) {
            memcpy(dist_row + i + 1, P + packed_row_start(i, N), (size_t)(N - i - 1) * sizeof(double));
        }
        rows[i] = calibrate_row(dist_row, N, i, perplexity, p_row);
    }

    double scale = 1.0 / (2.0 * N);
    for (int i = 0; i < N; i++) {
        RowCalibration ri = rows[i];
        double *row = P + packed_row_start(i, N);
        for (int j = i + 1; j < N; j++) {
            RowCalibration rj = rows[j];
            double d2 = row[j - i - 1];
            double p_j_given_i = exp(-ri.beta * (d2 - ri.min_dist) - ri.log_norm);
            double p_i_given_j = exp(-rj.beta * (d2 - rj.min_dist) - rj.log_norm);
            row[j - i - 1] = (p_j_given_i + p_i_given_j) * scale;
        }
    }
    free(p_row);
    free(dist_row);
    free(rows);
}

// ----------------------------------------------------------------------------
// gradient and objective

// Gradient of KL(P || Q) with respect to y (N, 2), P multiplied by exaggeration:
//   dC/dy_i = 4 sum_j (exaggeration p_ij - q_ij) w_ij (y_i - y_j),
//   w_ij = 1 / (1 + |y_i - y_j|^2), q_ij = w_ij / Z, Z = sum_{k != l} w_kl.
// Split as 4 (exaggeration * attract_i - repel_i / Z) with attract_i =
// sum_j p_ij w_ij (y_i - y_j) and repel_i = sum_j w_ij^2 (y_i - y_j), so one pass
// over the pairs gives both sums and Z. attract and repel are (N, 2) scratch.
static void kl_gradient(const double *P, const double *y, int N, double exaggeration,
                        double *attract, double *repel, double *grad) {
    memset(attract, 0, (size_t)N * 2 * sizeof(double));
    memset(repel, 0, (size_t)N * 2 * sizeof(double));
    double half_z = 0.0;  // sum over i < j of w_ij
    for (int i = 0; i < N; i++) {
        const double *p_row = P + packed_row_start(i, N);
        double yi0 = y[2 * i], yi1 = y[2 * i + 1];
        double attract_i0 = 0.0, attract_i1 = 0.0, repel_i0 = 0.0, repel_i1 = 0.0;
        double row_z = 0.0;
        for (int j = i + 1; j < N; j++) {
            double dy0 = yi0 - y[2 * j];
            double dy1 = yi1 - y[2 * j + 1];
            double w = 1.0 / (1.0 + dy0 * dy0 + dy1 * dy1);
            double a = p_row[j - i - 1] * w;
            double r = w * w;
            row_z += w;
            attract_i0 += a * dy0;
            attract_i1 += a * dy1;
            repel_i0 += r * dy0;
            repel_i1 += r * dy1;
            attract[2 * j] -= a * dy0;
            attract[2 * j + 1] -= a * dy1;
            repel[2 * j] -= r * dy0;
            repel[2 * j + 1] -= r * dy1;
        }
        attract[2 * i] += attract_i0;
        attract[2 * i + 1] += attract_i1;
        repel[2 * i] += repel_i0;
        repel[2 * i + 1] += repel_i1;
        half_z += row_z;
    }
    double inv_z = 1.0 / (2.0 * half_z);
    for (int k = 0; k < 2 * N; k++) {
        grad[k] = 4.0 * (exaggeration * attract[k] - repel[k] * inv_z);
    }
}

// KL(P || Q) = sum_{i != j} p_ij log(p_ij / q_ij); each packed pair stands for
// both (i, j) and (j, i).
static double kl_divergence_packed(const double *P, const double *y, int N) {
    double half_z = 0.0;
    for (int i = 0; i < N; i++) {
        for (int j = i + 1; j < N; j++) {
            double dy0 = y[2 * i] - y[2 * j];
            double dy1 = y[2 * i + 1] - y[2 * j + 1];
            half_z += 1.0 / (1.0 + dy0 * dy0 + dy1 * dy1);
        }
    }
    double log_z = log(2.0 * half_z);
    double kl = 0.0;
    for (int i = 0; i < N; i++) {
        const double *p_row = P + packed_row_start(i, N);
        for (int j = i + 1; j < N; j++) {
            double p = p_row[j - i - 1];
            if (p <= 0.0) continue;
            double dy0 = y[2 * i] - y[2 * j];
            double dy1 = y[2 * i + 1] - y[2 * j + 1];
            double log_q = -log1p(dy0 * dy0 + dy1 * dy1) - log_z;
            kl += 2.0 * p * (log(p) - log_q);
        }
    }
    return kl;
}

// ----------------------------------------------------------------------------
// public entry points

static int check_points(const float *x, int N, int D, double perplexity, char *err, size_t errlen) {
    if (!x) return set_error(err, errlen, "t-SNE: no input points");
    if (N < TSNE_MIN_POINTS) return set_error(err, errlen, "t-SNE needs at least %d points, got %d", TSNE_MIN_POINTS, N);
    if (D < 1) return set_error(err, errlen, "t-SNE: input dimension must be >= 1, got %d", D);
    if (!(perplexity > 0.0) || !isfinite(perplexity)) {
        return set_error(err, errlen, "t-SNE: perplexity must be a positive number, got %g", perplexity);
    }
    if (!((double)(N - 1) > 3.0 * perplexity)) {
        return set_error(err, errlen,
                         "t-SNE: perplexity %g too large for %d points (needs N - 1 > 3 * perplexity, "
                         "so perplexity < %g)",
                         perplexity, N, (double)(N - 1) / 3.0);
    }
    for (int i = 0; i < N; i++) {
        for (int k = 0; k < D; k++) {
            float v = x[(size_t)i * D + k];
            if (!isfinite(v)) {
                return set_error(err, errlen, "t-SNE: non-finite input at point %d, dim %d (%g)", i, k,
                                 (double)v);
            }
        }
    }
    return 0;
}

// The packed joint P for float points x (N, D); caller frees.
static double *build_joint_p(const float *x, int N, int D, double perplexity) {
    double *x_double = xmalloc((size_t)N * D * sizeof(double));
    for (size_t k = 0; k < (size_t)N * D; k++) x_double[k] = x[k];
    double *P = xmalloc(packed_size(N) * sizeof(double));
    joint_probabilities(x_double, N, D, perplexity, P);
    free(x_double);
    return P;
}

static void center_layout(double *y, int N) {
    double mean0 = 0.0, mean1 = 0.0;
    for (int i = 0; i < N; i++) {
        mean0 += y[2 * i];
        mean1 += y[2 * i + 1];
    }
    mean0 /= N;
    mean1 /= N;
    for (int i = 0; i < N; i++) {
        y[2 * i] -= mean0;
        y[2 * i + 1] -= mean1;
    }
}

int tsne_embed(const float *x, int N, int D, const TsneOptions *o, float *out, char *err,
               size_t errlen) {
    TsneOptions options;
    if (o) options = *o;
    else tsne_default_options(&options);
    if (check_points(x, N, D, options.perplexity, err, errlen)) return -1;
    if (!out) return set_error(err, errlen, "t-SNE: no output buffer");
    if (options.iterations < 0) {
        return set_error(err, errlen, "t-SNE: iterations must be >= 0, got %d", options.iterations);
    }
    if (!isfinite(options.learning_rate)) {
        return set_error(err, errlen, "t-SNE: learning rate must be finite, got %g", options.learning_rate);
    }
    double learning_rate = options.learning_rate;
    if (learning_rate <= 0.0) learning_rate = fmax((double)N / TSNE_EXAGGERATION / 4.0, 50.0);

    double *P = build_joint_p(x, N, D, options.perplexity);
    size_t n2 = (size_t)N * 2;
    double *y = xmalloc(n2 * sizeof(double));
    double *velocity = xcalloc(n2, sizeof(double));
    double *gains = xmalloc(n2 * sizeof(double));
    double *grad = xmalloc(n2 * sizeof(double));
    double *attract = xmalloc(n2 * sizeof(double));
    double *repel = xmalloc(n2 * sizeof(double));

    Rng rng;
    rng_init(&rng, options.seed, TSNE_RNG_STREAM);
    for (size_t k = 0; k < n2; k++) {
        y[k] = TSNE_INITIAL_SD * (double)rng_normal(&rng);
        gains[k] = 1.0;
    }

    Progress progress;
    progress_begin(&progress, "t-SNE iterations");
    for (int iter = 0; iter < options.iterations; iter++) {
        progress_update(&progress, iter, options.iterations);
        double exaggeration = iter < TSNE_EXAGGERATION_ITERATIONS ? TSNE_EXAGGERATION : 1.0;
        double momentum =
            iter < TSNE_MOMENTUM_SWITCH_ITERATION ? TSNE_INITIAL_MOMENTUM : TSNE_FINAL_MOMENTUM;
        kl_gradient(P, y, N, exaggeration, attract, repel, grad);
        for (size_t k = 0; k < n2; k++) {
            // delta-bar-delta: grow the gain while the gradient keeps opposing
            // the current velocity (we are still moving downhill), shrink it
            // when they agree (we overshot)
            int same_sign = (grad[k] > 0.0) == (velocity[k] > 0.0);
            gains[k] = same_sign ? gains[k] * TSNE_GAIN_DECAY : gains[k] + TSNE_GAIN_INCREASE;
            if (gains[k] < TSNE_MIN_GAIN) gains[k] = TSNE_MIN_GAIN;
            velocity[k] = momentum * velocity[k] - learning_rate * gains[k] * grad[k];
            y[k] += velocity[k];
        }
        center_layout(y, N);
    }
    progress_end(&progress);

    int status = 0;
    for (size_t k = 0; k < n2; k++) {
        if (!isfinite(y[k])) {
            status = set_error(err, errlen, "t-SNE diverged: non-finite coordinate for point %zu", k / 2);
            break;
        }
    }
    if (status == 0) {
        for (size_t k = 0; k < n2; k++) out[k] = (float)y[k];
    }
    free(repel);
    free(attract);
    free(grad);
    free(gains);
    free(velocity);
    free(y);
    free(P);
    return status;
}

int tsne_kl_divergence(const float *x, int N, int D, double perplexity, const float *y,
                       double *kl_out, char *err, size_t errlen) {
    if (check_points(x, N, D, perplexity, err, errlen)) return -1;
    if (!y || !kl_out) return set_error(err, errlen, "t-SNE: no layout or output for the KL divergence");
    double *y_double = xmalloc((size_t)N * 2 * sizeof(double));
    for (size_t k = 0; k < (size_t)N * 2; k++) {
        if (!isfinite(y[k])) {
            free(y_double);
            return set_error(err, errlen, "t-SNE: non-finite layout coordinate for point %zu", k / 2);
        }
        y_double[k] = y[k];
    }
    double *P = build_joint_p(x, N, D, perplexity);
    *kl_out = kl_divergence_packed(P, y_double, N);
    free(P);
    free(y_double);
    return 0;
}
