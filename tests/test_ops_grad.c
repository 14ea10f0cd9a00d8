// test_ops_grad.c: every CPU backend op against a double-precision reference
// written here, and every op's gradient against central finite differences of
// that reference.
#include "cuvae/backend.h"
#include "cuvae/common.h"
#include "cuvae/cpu_bce.h"
#include "cuvae/philox.h"
#include "cuvae/cpu_vector_math.h"
#include "cuvae/rng.h"
#include "cuvae/step_state.h"
#include "test.h"

#include <cblas.h>
#include <omp.h>
#include <stdlib.h>

static Backend *cpu;
static Rng test_rng;

static float *random_floats(size_t n, float lo, float hi) {
    float *p = xmalloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++) p[i] = rng_uniform_range(&test_rng, lo, hi);
    return p;
}

// ---- reference formulas in double ------------------------------------------

static double ref_act(double v, Activation act) {
    switch (act) {
    case ACT_RELU: return v > 0 ? v : 0;
    case ACT_TANH: return tanh(v);
    case ACT_LEAKY_RELU: return v > 0 ? v : 0.01 * v;
    default: return v;
    }
}

static double ref_rec_pixel(double a, double x, RecLoss kind) {
    switch (kind) {
    case RECLOSS_BCE_LOGITS: {
        double s = 1.0 / (1.0 + exp(-a));
        return -(x * log(s) + (1 - x) * log(1 - s));   // textbook form, fine for |a| < 10
    }
    case RECLOSS_MSE_SIGMOID: {
        double s = 1.0 / (1.0 + exp(-a));
        return (s - x) * (s - x);
    }
    default:
        return (a - x) * (a - x);
    }
}

// ---- tests -----------------------------------------------------------------

static void test_gemm_all_transposes(void) {
    const int M = 7, N = 5, K = 6;
    for (int ta = 0; ta < 2; ta++) {
        for (int tb = 0; tb < 2; tb++) {
            int lda = (ta ? M : K) + 2, ldb = (tb ? K : N) + 1, ldc = N + 3;
            float *A = random_floats((size_t)(ta ? K : M) * lda, -1, 1);
            float *B = random_floats((size_t)(tb ? N : K) * ldb, -1, 1);
            float *C = random_floats((size_t)M * ldc, -1, 1);
            float *C0 = xmalloc((size_t)M * ldc * sizeof(float));
            memcpy(C0, C, (size_t)M * ldc * sizeof(float));
            float alpha = 0.7f, beta = 0.3f;
            cpu->gemm(cpu, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
            for (int i = 0; i < M; i++) {
                for (int j = 0; j < N; j++) {
                    double s = 0;
                    for (int k = 0; k < K; k++) {
                        double a = ta ? A[k * lda + i] : A[i * lda + k];
                        double b = tb ? B[j * ldb + k] : B[k * ldb + j];
                        s += a * b;
                    }
                    double want = alpha * s + beta * C0[i * ldc + j];
                    CHECK(test_close(C[i * ldc + j], want, 1e-5, 1e-6), "gemm ta=%d tb=%d C[%d,%d]=%g want %g",
                          ta, tb, i, j, C[i * ldc + j], want);
                }
            }
            free(A); free(B); free(C); free(C0);
        }
    }
}

// cpu_gemm splits a large GEMM over the OpenMP threads (one 4-row or 4-column slice
// range each), each slice a single-threaded sgemm. Against one single-threaded sgemm call
// of the whole product, for 1, 2, 3 and 8 threads, all transposes, leading dimensions
// and beta; shapes cover the split along rows (M >= N), along columns, extents that are
// not multiples of 4, and slices around OpenBLAS's small-matrix and direct kernels.
// bitwise: the same bits (OpenBLAS's SkylakeX-family kernels: every element is one dot
// product over K whatever the slice); else within rounding (Haswell / Zen kernels handle
// a slice's tail rows with other kernels that round differently).
static int gemm_split_mismatches(bool bitwise) {
    const int shapes[][3] = {{128, 400, 784}, {400, 784, 128}, {784, 400, 128}, {128, 20, 400},
                             {37, 300, 500}, {300, 37, 500}, {129, 65, 333}, {17, 900, 400},
                             {1000, 33, 150}, {48, 48, 2000},
                             // around OpenBLAS's direct NN kernel (177,147 < M N K < 7,340,032, N % 4 == 0)
                             // and its small-matrix kernels (M N K <= 10^6)
                             {128, 400, 200}, {64, 512, 230}, {128, 400, 40}, {128, 40, 400}, {40, 400, 128},
                             {128, 400, 20}, {400, 20, 128}};
    const int max_threads = omp_get_max_threads();
    int mismatches = 0;
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        const int M = shapes[s][0], N = shapes[s][1], K = shapes[s][2];
        for (int variant = 0; variant < 8; variant++) {
            const bool ta = variant & 1, tb = variant & 2;
            const float beta = (variant & 4) ? 0.5f : 0.0f;
            const int lda = (ta ? M : K) + (int)s % 3, ldb = (tb ? K : N) + 1, ldc = N + 2;
            float *A = random_floats((size_t)(ta ? K : M) * lda, -1, 1);
            float *B = random_floats((size_t)(tb ? N : K) * ldb, -1, 1);
            float *C0 = random_floats((size_t)M * ldc, -1, 1);
            float *want = xmalloc((size_t)M * ldc * sizeof(float));
            float *got = xmalloc((size_t)M * ldc * sizeof(float));
            memcpy(want, C0, (size_t)M * ldc * sizeof(float));
            omp_set_num_threads(1);   // (OpenBLAS's OpenMP build would otherwise use the pool)
            cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, M, N,
                        K, 1.0f, A, lda, B, ldb, beta, want, ldc);
            const int thread_counts[] = {1, 2, 3, 8};
            for (int c = 0; c < 4; c++) {
                omp_set_num_threads(thread_counts[c]);
                memcpy(got, C0, (size_t)M * ldc * sizeof(float));
                cpu->gemm(cpu, ta, tb, M, N, K, 1.0f, A, lda, B, ldb, beta, got, ldc);
                bool same = true;
                for (int i = 0; i < M && same; i++)
                    for (int j = 0; j < N && same; j++) {
                        float x = got[(size_t)i * ldc + j], y = want[(size_t)i * ldc + j];
                        // |a|, |b| <= 1: two fp32 sums of K products differ by at most ~2 K u
                        same = bitwise ? memcmp(&x, &y, sizeof x) == 0 : test_close(x, y, 0.0, 2.0 * K * 6e-8);
                    }
                if (!same) mismatches++;
                CHECK(same, "gemm %dx%dx%d ta=%d tb=%d beta=%g on %d threads differs from one sgemm call%s", M,
                      N, K, ta, tb, beta, thread_counts[c], bitwise ? "" : " beyond rounding");
            }
            omp_set_num_threads(max_threads);
            free(A); free(B); free(C0); free(want); free(got);
        }
    }
    return mismatches;
}

static void test_gemm_split_within_rounding(void) { gemm_split_mismatches(false); }

static void test_gemm_split_is_thread_independent(void) {
    const char *core = openblas_get_corename();
    if (!backend_cpu_blas_splits_exact(core)) {
        char why[160];
        snprintf(why, sizeof why, "OpenBLAS %s kernels round a slice's tail rows differently; the bits are "
                 "checked with SkylakeX-family kernels only", core ? core : "(unknown)");
        test_skip("gemm_split_is_thread_independent", why);
        return;
    }
    gemm_split_mismatches(true);
}

// bias_grad sums each block of 32 rows in order, then the blocks in order: on 1, 2, 3 and 4
// threads (whole blocks to each thread, or column ranges when there are fewer blocks than
// threads; the blocks added by the caller or, past 32,768 block sums, by the threads) the bits of
// that order written out in float.
static void test_bias_grad_blocks(void) {
    // (1024 x 1100: 35,200 block sums, added by the threads after a barrier; fewer, by the caller)
    const int batches[] = {1, 20, 32, 33, 64, 100, 128, 257, 1024};
    const int widths[] = {1, 33, 400, 784, 1100};
    const int max_threads = omp_get_max_threads();
    int differ = 0, cases = 0;
    for (int i = 0; i < 9; i++)
        for (int j = 0; j < 5; j++) {
            const int B = batches[i], N = widths[j];
            float *dy = random_floats((size_t)B * N, -3, 3);
            float *want = xmalloc((size_t)N * sizeof(float)), *got = xmalloc((size_t)N * sizeof(float));
            for (int n = 0; n < N; n++) {
                float total = 0.0f;
                for (int b0 = 0; b0 < B; b0 += 32) {
                    float block = 0.0f;
                    for (int b = b0; b < B && b < b0 + 32; b++) block += dy[(size_t)b * N + n];
                    total = b0 == 0 ? block : total + block;
                }
                want[n] = total;
            }
            for (int threads = 1; threads <= 4; threads++) {
                omp_set_num_threads(threads);
                cpu->bias_grad(cpu, got, dy, B, N);
                differ += memcmp(got, want, (size_t)N * sizeof(float)) != 0;
                cases++;
            }
            free(dy);
            free(want);
            free(got);
        }
    omp_set_num_threads(max_threads);
    CHECK(differ == 0, "bias_grad: %d of %d (B, N, threads) cases differ from the blocked order's bits", differ, cases);
}

// activation_backward_bias_grad: the bits of activation_backward then bias_grad, dy and dbias,
// for every activation, on 1-4 threads (whole row blocks or column ranges).
static void test_activation_backward_bias_grad_fused(void) {
    const Activation acts[] = {ACT_NONE, ACT_RELU, ACT_TANH, ACT_LEAKY_RELU, ACT_SIGMOID};
    const int batches[] = {1, 20, 33, 64, 128, 257};   // 64 x 784: 2 blocks, fewer than 3 or 4 threads
    const int widths[] = {1, 40, 400, 784};
    const int max_threads = omp_get_max_threads();
    int differ = 0, cases = 0;
    for (int a = 0; a < 5; a++)
        for (int i = 0; i < 6; i++)
            for (int j = 0; j < 4; j++) {
                const int B = batches[i], N = widths[j];
                const size_t n = (size_t)B * N;
                float *y = random_floats(n, -1, 1), *dy = random_floats(n, -2, 2);
                for (size_t e = 0; e < n; e += 7) y[e] = 0.0f;   // ReLU's kink
                float *dy_sep = xmalloc(n * sizeof(float)), *dy_fused = xmalloc(n * sizeof(float));
                float *db_sep = xmalloc((size_t)N * sizeof(float)), *db_fused = xmalloc((size_t)N * sizeof(float));
                for (int threads = 1; threads <= 4; threads++) {
                    omp_set_num_threads(threads);
                    memcpy(dy_sep, dy, n * sizeof(float));
                    memcpy(dy_fused, dy, n * sizeof(float));
                    cpu->activation_backward(cpu, dy_sep, y, B, N, acts[a]);
                    cpu->bias_grad(cpu, db_sep, dy_sep, B, N);
                    cpu->activation_backward_bias_grad(cpu, dy_fused, db_fused, y, B, N, acts[a]);
                    differ += memcmp(dy_sep, dy_fused, n * sizeof(float)) != 0 ||
                              memcmp(db_sep, db_fused, (size_t)N * sizeof(float)) != 0;
                    cases++;
                }
                free(y); free(dy); free(dy_sep); free(dy_fused); free(db_sep); free(db_fused);
            }
    omp_set_num_threads(max_threads);
    CHECK(differ == 0, "activation_backward_bias_grad: %d of %d (activation, B, N, threads) cases differ from the "
          "two ops", differ, cases);
}

static void test_bias_activation_gradients(void) {
    const int B = 4, N = 9;
    Activation acts[4] = {ACT_NONE, ACT_RELU, ACT_TANH, ACT_LEAKY_RELU};
    for (int a = 0; a < 4; a++) {
        Activation act = acts[a];
        float *pre = random_floats((size_t)B * N, -2, 2);
        float *bias = random_floats(N, -1, 1);
        float *G = random_floats((size_t)B * N, -1, 1);     // upstream gradient
        // keep relu / leaky inputs away from the kink so differences are clean
        for (int i = 0; i < B * N; i++)
            if (fabsf(pre[i] + bias[i % N]) < 0.05f) pre[i] += 0.2f;
        float *y = xmalloc((size_t)B * N * sizeof(float));
        memcpy(y, pre, (size_t)B * N * sizeof(float));
        cpu->bias_activation_forward(cpu, y, bias, B, N, act);
        for (int i = 0; i < B * N; i++) {
            double want = ref_act((double)pre[i] + bias[i % N], act);
            CHECK(test_close(y[i], want, 1e-6, 1e-7), "act %d forward [%d]: %g vs %g", act, i, y[i], want);
        }
        // F = sum G * act(pre + bias): dF/dpre = activation_backward(G), dF/dbias = bias_grad
        float *dpre = xmalloc((size_t)B * N * sizeof(float));
        memcpy(dpre, G, (size_t)B * N * sizeof(float));
        cpu->activation_backward(cpu, dpre, y, B, N, act);
        float dbias[9];
        cpu->bias_grad(cpu, dbias, dpre, B, N);
        const double h = 1e-6;
        for (int i = 0; i < B * N; i++) {
            double v = (double)pre[i] + bias[i % N];
            double fd = G[i] * (ref_act(v + h, act) - ref_act(v - h, act)) / (2 * h);
            CHECK(test_close(dpre[i], fd, 1e-5, 1e-6), "act %d backward [%d]: %g vs fd %g", act, i, dpre[i], fd);
        }
        for (int n = 0; n < N; n++) {
            double fd = 0;
            for (int b = 0; b < B; b++) {
                double v = (double)pre[b * N + n] + bias[n];
                fd += G[b * N + n] * (ref_act(v + h, act) - ref_act(v - h, act)) / (2 * h);
            }
            CHECK(test_close(dbias[n], fd, 1e-5, 1e-6), "act %d bias grad [%d]: %g vs fd %g", act, n, dbias[n], fd);
        }
        free(pre); free(bias); free(G); free(y); free(dpre);
    }
}

// F(h) = sum_bj dz[b,j] * z[b,j](h) + kl_scale * sum_b KL_b(h)
static double reparam_kl_objective(const double *h, const float *eps, const float *dz, int B, int L,
                                   double kl_scale, double *kl_rows) {
    double F = 0;
    for (int b = 0; b < B; b++) {
        double kl = 0;
        for (int j = 0; j < L; j++) {
            double mu = h[b * 2 * L + j], lv = h[b * 2 * L + L + j];
            double z = mu + exp(0.5 * lv) * eps[b * L + j];
            F += dz[b * L + j] * z;
            kl += 0.5 * (mu * mu + exp(lv) - 1 - lv);
        }
        if (kl_rows) kl_rows[b] = kl;
        F += kl_scale * kl;
    }
    return F;
}

static EpsSource eps_from(const float *buffer) {
    EpsSource e;
    memset(&e, 0, sizeof e);
    e.buffer = buffer;
    return e;
}

// A source that draws: Philox from `seed`, element i at base + *offset + i.
static EpsSource eps_drawn(uint64_t seed, uint64_t base, uint64_t *offset) {
    EpsSource eps;
    memset(&eps, 0, sizeof eps);
    eps.draw = true;
    eps.seed = seed;
    eps.base = base;
    eps.offset = offset;
    return eps;
}

static void test_reparam_and_kl_gradients(void) {
    const int B = 3, L = 5;
    float *h = random_floats((size_t)B * 2 * L, -1.5f, 1.5f);
    float *eps = random_floats((size_t)B * L, -2, 2);
    float *dz = random_floats((size_t)B * L, -1, 1);
    float z[15], dh[30], kl_row[3];
    cpu->reparam_forward(cpu, z, h, eps_from(eps), B, L);
    for (int b = 0; b < B; b++)
        for (int j = 0; j < L; j++) {
            double want = h[b * 2 * L + j] + exp(0.5 * h[b * 2 * L + L + j]) * eps[b * L + j];
            CHECK(test_close(z[b * L + j], want, 1e-6, 1e-6), "reparam z[%d,%d]", b, j);
        }
    const float kl_scale = 0.37f;
    float kl_coef[5], ones[5];
    for (int j = 0; j < L; j++) { kl_coef[j] = kl_scale; ones[j] = 1.0f; }
    cpu->kl_reparam_backward(cpu, dh, kl_row, h, eps_from(eps), dz, B, L, kl_coef);
    double hd[30], kl_ref[3];
    for (int i = 0; i < B * 2 * L; i++) hd[i] = h[i];
    reparam_kl_objective(hd, eps, dz, B, L, kl_scale, kl_ref);
    for (int b = 0; b < B; b++)
        CHECK(test_close(kl_row[b], kl_ref[b], 1e-5, 1e-6), "kl_row[%d] %g vs %g", b, kl_row[b], kl_ref[b]);
    for (int i = 0; i < B * 2 * L; i++) {
        const double step = 1e-6;
        double saved = hd[i];
        hd[i] = saved + step;
        double fp = reparam_kl_objective(hd, eps, dz, B, L, kl_scale, NULL);
        hd[i] = saved - step;
        double fm = reparam_kl_objective(hd, eps, dz, B, L, kl_scale, NULL);
        hd[i] = saved;
        double fd = (fp - fm) / (2 * step);
        CHECK(test_close(dh[i], fd, 1e-4, 1e-6), "dh[%d] %g vs fd %g", i, dh[i], fd);
    }
    // KL-only (dz, eps NULL) and forward-only (dh NULL) forms
    float dh2[30], kl2[3];
    cpu->kl_reparam_backward(cpu, dh2, kl2, h, eps_from(NULL), NULL, B, L, ones);
    for (int b = 0; b < B; b++)
        for (int j = 0; j < L; j++) {
            double mu = h[b * 2 * L + j], lv = h[b * 2 * L + L + j];
            CHECK(test_close(dh2[b * 2 * L + j], mu, 1e-6, 1e-7), "KL-only dmu");
            CHECK(test_close(dh2[b * 2 * L + L + j], 0.5 * (exp(lv) - 1), 1e-5, 1e-7), "KL-only dlogvar");
        }
    cpu->kl_reparam_backward(cpu, NULL, kl2, h, eps_from(NULL), NULL, B, L, NULL);
    for (int b = 0; b < B; b++) CHECK(test_close(kl2[b], kl_ref[b], 1e-5, 1e-6), "forward-only kl");
    // per-dimension statistics add up to the per-row KL
    float dim_sum[5];
    cpu->kl_statistics(cpu, dim_sum, h, B, L);
    double total_dims = 0, total_rows = 0;
    for (int j = 0; j < L; j++) {
        double want = 0;
        for (int b = 0; b < B; b++) {
            double mu = h[b * 2 * L + j], lv = h[b * 2 * L + L + j];
            want += 0.5 * (mu * mu + exp(lv) - 1 - lv);
        }
        CHECK(test_close(dim_sum[j], want, 1e-5, 1e-6), "kl_statistics[%d] %g vs %g", j, dim_sum[j], want);
        total_dims += dim_sum[j];
    }
    for (int b = 0; b < B; b++) total_rows += kl_ref[b];
    CHECK(test_close(total_dims, total_rows, 1e-5, 1e-6), "dims and rows agree");
    free(h); free(eps); free(dz);
}

static void test_reconstruction_loss_gradients(void) {
    const int B = 3, D = 11;
    RecLoss kinds[3] = {RECLOSS_BCE_LOGITS, RECLOSS_MSE_SIGMOID, RECLOSS_MSE_IDENTITY};
    float pixel_weights[2] = {1.0f, 1.0f / D};
    for (int k = 0; k < 3; k++) {
        for (int p = 0; p < 2; p++) {
            float *out = random_floats((size_t)B * D, -4, 4);
            float *x = random_floats((size_t)B * D, 0, 1);
            x[0] = 0.0f; x[1] = 1.0f;   // binary targets too
            float d_out[33], rec_row[3];
            const float grad_scale = 0.25f;
            cpu->reconstruction_loss(cpu, d_out, rec_row, out, x, B, D, kinds[k], pixel_weights[p], grad_scale);
            for (int b = 0; b < B; b++) {
                double want = 0;
                for (int d = 0; d < D; d++) want += ref_rec_pixel(out[b * D + d], x[b * D + d], kinds[k]);
                want *= pixel_weights[p];
                CHECK(test_close(rec_row[b], want, 1e-5, 1e-6), "kind %d pw %d rec_row[%d] %g vs %g", k, p, b, rec_row[b], want);
            }
            for (int i = 0; i < B * D; i++) {
                const double step = 1e-6;
                double fd = pixel_weights[p] * grad_scale *
                            (ref_rec_pixel((double)out[i] + step, x[i], kinds[k]) -
                             ref_rec_pixel((double)out[i] - step, x[i], kinds[k])) / (2 * step);
                CHECK(test_close(d_out[i], fd, 1e-4, 1e-7), "kind %d d_out[%d] %g vs fd %g", k, i, d_out[i], fd);
            }
            // loss only: same rows, no gradient written
            float rec2[3];
            cpu->reconstruction_loss(cpu, NULL, rec2, out, x, B, D, kinds[k], pixel_weights[p], 0.0f);
            for (int b = 0; b < B; b++) CHECK(rec2[b] == rec_row[b], "loss-only rows differ");
            free(out); free(x);
        }
    }
    // extreme logits stay finite (stable BCE form)
    float big[2] = {80.0f, -80.0f}, tgt[2] = {0.0f, 1.0f}, g[2], r[1];
    cpu->reconstruction_loss(cpu, g, r, big, tgt, 1, 2, RECLOSS_BCE_LOGITS, 1.0f, 1.0f);
    CHECK(isfinite(r[0]) && test_close(r[0], 160.0, 1e-5, 0), "BCE at |a| = 80: %g", r[0]);
    CHECK(test_close(g[0], 1.0, 1e-6, 0) && test_close(g[1], -1.0, 1e-6, 0), "BCE grad at extremes");
}

// F(KL) = w * sum_j max(free_bits, mean_b KL_bj)  or  gamma * |mean_b sum_j KL_bj - C|:
// kl_coefficients must be dF/dKL_bj.
static void test_kl_coefficients_are_derivatives(void) {
    const int B = 4, L = 6;
    float dim_sum[6] = {0.4f, 2.0f, 0.05f, 1.2f, 0.0f, 3.0f};   // batch sums
    float coef[6];
    StepState state;
    memset(&state, 0, sizeof state);
    KlSchedule s;
    memset(&s, 0, sizeof s);
    s.weight = 0.8f;
    state.kl = s;
    cpu->kl_coefficients(cpu, coef, NULL, B, L, &state);
    for (int j = 0; j < L; j++) CHECK(coef[j] == 0.8f / B, "plain coefficient");
    s.free_bits = 0.25f;   // per-dim means: .1 .5 .0125 .3 0 .75
    state.kl = s;
    cpu->kl_coefficients(cpu, coef, dim_sum, B, L, &state);
    for (int j = 0; j < L; j++) {
        // d/dKL_bj of w * max(fb, sum_b KL_bj / B), by a one-sided difference into the active side
        double mean = dim_sum[j] / B, step = 1e-4;
        double fd = s.weight * ((fmax(s.free_bits, mean + step / B) - fmax(s.free_bits, mean)) / step);
        CHECK(test_close(coef[j], fd, 1e-3, 1e-6), "free bits coef[%d] %g vs %g", j, coef[j], fd);
    }
    memset(&s, 0, sizeof s);
    s.capacity = 1;
    s.capacity_gamma = 10.0f;
    double total = 0;
    for (int j = 0; j < L; j++) total += dim_sum[j];
    for (int side = 0; side < 2; side++) {
        s.capacity_target = (float)(total / B + (side ? 0.5 : -0.5));
        state.kl = s;
        cpu->kl_coefficients(cpu, coef, dim_sum, B, L, &state);
        double step = 1e-4;
        double f0 = s.capacity_gamma * fabs(total / B - s.capacity_target);
        double f1 = s.capacity_gamma * fabs((total + step) / B - s.capacity_target);
        double fd = (f1 - f0) / step;
        for (int j = 0; j < L; j++)
            CHECK(test_close(coef[j], fd, 1e-3, 1e-6), "capacity coef side %d: %g vs %g", side, coef[j], fd);
    }
}

static void test_gather_onehot(void) {
    uint8_t labels[5] = {3, 0, 9, 1, 3};
    int32_t perm[5] = {2, 4, 0, 1, 3};
    float onehot[30];
    cpu->gather_onehot(cpu, onehot, labels, perm, 1, NULL, 3, 10);
    for (int b = 0; b < 3; b++)
        for (int c = 0; c < 10; c++)
            CHECK(onehot[b * 10 + c] == (labels[perm[1 + b]] == c ? 1.0f : 0.0f), "onehot[%d,%d]", b, c);
    // the step state's batch start adds to start
    StepState state;
    memset(&state, 0, sizeof state);
    state.batch_start = 1;
    cpu->gather_onehot(cpu, onehot, labels, perm, 0, &state, 3, 10);
    for (int b = 0; b < 3; b++)
        CHECK(onehot[b * 10 + labels[perm[1 + b]]] == 1.0f, "onehot with state row %d", b);
}

static void test_importance_log_weight(void) {
    const int B = 3, L = 4;
    float *h = random_floats((size_t)B * 2 * L, -1, 1);
    float *eps = random_floats((size_t)B * L, -2, 2);
    float rec[3] = {100.0f, 50.5f, 3.0f}, logw[3];
    cpu->importance_log_weight(cpu, logw, rec, h, eps, B, L, -1.0f, 0.0f);
    for (int b = 0; b < B; b++) {
        // log p(x|z) + log N(z; 0, I) - log N(z; mu, sigma^2), all terms written out
        double lp = -rec[b], lpz = 0, lq = 0;
        for (int j = 0; j < L; j++) {
            double mu = h[b * 2 * L + j], lv = h[b * 2 * L + L + j], sd = exp(0.5 * lv);
            double z = mu + sd * eps[b * L + j];
            lpz += -0.5 * z * z - 0.5 * log(2 * M_PI);
            lq += -0.5 * ((z - mu) / sd) * ((z - mu) / sd) - log(sd) - 0.5 * log(2 * M_PI);
        }
        double want = lp + lpz - lq;
        CHECK(test_close(logw[b], want, 1e-5, 1e-4), "logw[%d] %g vs %g", b, logw[b], want);
    }
    free(h); free(eps);
}

static void test_gather_batch(void) {
    const int N = 6, D = 5, B = 3;
    uint8_t data[30];
    for (int i = 0; i < N * D; i++) data[i] = (uint8_t)(i * 8);
    int32_t perm[6] = {4, 1, 5, 0, 2, 3};
    float x[15];
    cpu->gather_batch(cpu, x, data, perm, 2, NULL, B, D, false, 0);
    for (int b = 0; b < B; b++)
        for (int d = 0; d < D; d++)
            CHECK(x[b * D + d] == data[perm[2 + b] * D + d] / 255.0f, "gather perm [%d,%d]", b, d);
    cpu->gather_batch(cpu, x, data, NULL, 1, NULL, B, D, false, 0);
    CHECK(x[0] == data[5] / 255.0f, "gather identity");
    // rows from the step state; binarized against uniform draws at its offset
    StepState state;
    memset(&state, 0, sizeof state);
    state.batch_start = 2;
    state.uniform_offset = 1000;
    cpu->gather_batch(cpu, x, data, perm, 0, &state, B, D, true, 99);
    int ones = 0;
    for (int b = 0; b < B; b++)
        for (int d = 0; d < D; d++) {
            float p = data[perm[2 + b] * D + d] / 255.0f;
            float u = philox_uniform_at(99, 1000 + (uint64_t)(b * D + d));
            CHECK(x[b * D + d] == (u < p ? 1.0f : 0.0f), "binarized gather [%d,%d]", b, d);
            ones += x[b * D + d] == 1.0f;
        }
    CHECK(ones > 0 && ones < B * D, "binarization mixes 0 and 1 (%d ones)", ones);

    // a batch large enough for the thread pool, from an offset that starts inside a Philox block:
    // each thread draws its rows' uniforms in one go, the same numbers element by element
    enum { BIG_B = 64, BIG_D = 784, BIG_N = 100 };
    uint8_t *pixels = xmalloc((size_t)BIG_N * BIG_D);
    for (int i = 0; i < BIG_N * BIG_D; i++) pixels[i] = (uint8_t)((i * 37) % 256);
    int32_t big_perm[BIG_N];
    for (int i = 0; i < BIG_N; i++) big_perm[i] = (i * 13) % BIG_N;
    float *big = xmalloc((size_t)BIG_B * BIG_D * sizeof(float));
    state.batch_start = 5;
    state.uniform_offset = ((uint64_t)1 << 34) - 4001;   // the block index crosses 2^32 in the batch
    cpu->gather_batch(cpu, big, pixels, big_perm, 3, &state, BIG_B, BIG_D, true, 12345);
    int mismatches = 0;
    const uint64_t first_draw = state.uniform_offset + (uint64_t)3 * BIG_D;
    for (int b = 0; b < BIG_B; b++)
        for (int d = 0; d < BIG_D; d++) {
            float p = pixels[(size_t)big_perm[5 + 3 + b] * BIG_D + d] / 255.0f;
            float u = philox_uniform_at(12345, first_draw + (uint64_t)b * BIG_D + (uint64_t)d);
            mismatches += big[(size_t)b * BIG_D + d] != (u < p ? 1.0f : 0.0f);
        }
    CHECK(mismatches == 0, "binarized %d x %d batch: %d pixels differ from the definition", BIG_B, BIG_D, mismatches);
    free(pixels);
    free(big);
}

// Random123's known-answer vectors for Philox4x32-10 (kat_vectors): the host
// rounds must be the standard ones, as cuRAND's device rounds are.
static void test_philox_known_answers(void) {
    static const uint32_t cases[3][10] = {
        {0, 0, 0, 0, 0, 0, 0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8},
        {0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff,
         0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd},
        {0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344, 0xa4093822, 0x299f31d0,
         0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1},
    };
    for (int k = 0; k < 3; k++) {
        uint32_t out[4];
        philox4x32_10(cases[k], cases[k] + 4, out);
        for (int i = 0; i < 4; i++)
            CHECK(out[i] == cases[k][6 + i], "case %d word %d: %08x vs %08x", k, i, out[i], cases[k][6 + i]);
    }
}

// Epsilon drawn inside the kernels (train.epsilon fused) is the very stream a
// stored buffer holds: forward and backward agree bit for bit, and the device
// offset moves the draws.
static void test_fused_epsilon_equals_stored(void) {
    const int B = 4, L = 7;
    float *h = random_floats((size_t)B * 2 * L, -1.5f, 1.5f);
    float *dz = random_floats((size_t)B * L, -1, 1);
    float coef[7];
    for (int j = 0; j < L; j++) coef[j] = 0.1f * (float)(j + 1);
    uint64_t device_offset = 1234;
    float stored[28];
    cpu->fill_normal(cpu, stored, (size_t)B * L, 77, 10, &device_offset);
    EpsSource fused = eps_drawn(77, 10, &device_offset);
    float z1[28], z2[28], dh1[56], dh2[56], kl1[4], kl2[4];
    cpu->reparam_forward(cpu, z1, h, eps_from(stored), B, L);
    cpu->reparam_forward(cpu, z2, h, fused, B, L);
    CHECK(memcmp(z1, z2, sizeof z1) == 0, "z: fused == stored");
    cpu->kl_reparam_backward(cpu, dh1, kl1, h, eps_from(stored), dz, B, L, coef);
    cpu->kl_reparam_backward(cpu, dh2, kl2, h, fused, dz, B, L, coef);
    CHECK(memcmp(dh1, dh2, sizeof dh1) == 0, "dh: fused == stored");
    CHECK(memcmp(kl1, kl2, sizeof kl1) == 0, "kl_row: fused == stored");
    device_offset += (uint64_t)B * L;
    cpu->reparam_forward(cpu, z2, h, fused, B, L);
    CHECK(memcmp(z1, z2, sizeof z1) != 0, "a new device offset draws new numbers");
    // The CPU backend keeps the forward's draws for the backward: only where they are the
    // numbers the backward's source names (the same seed, base + offset, B and L).
    cpu->reparam_forward(cpu, z2, h, fused, B, L);   // kept: seed 77, base 10 + 1262
    float moved[28], reseeded[28], dh3[56], kl3[4];
    device_offset += (uint64_t)B * L;                // the offset moves after the forward
    cpu->fill_normal(cpu, moved, (size_t)B * L, 77, 10, &device_offset);
    cpu->kl_reparam_backward(cpu, dh1, kl1, h, eps_from(moved), dz, B, L, coef);
    cpu->kl_reparam_backward(cpu, dh2, kl2, h, fused, dz, B, L, coef);
    CHECK(memcmp(dh1, dh2, sizeof dh1) == 0, "dh: a moved offset draws its own numbers, not the kept ones");
    EpsSource other_seed = fused;
    other_seed.seed = 78;
    device_offset -= (uint64_t)B * L;                // back to the kept draws' offset, another seed
    cpu->fill_normal(cpu, reseeded, (size_t)B * L, 78, 10, &device_offset);
    cpu->kl_reparam_backward(cpu, dh1, kl1, h, eps_from(reseeded), dz, B, L, coef);
    cpu->kl_reparam_backward(cpu, dh2, kl2, h, other_seed, dz, B, L, coef);
    CHECK(memcmp(dh1, dh2, sizeof dh1) == 0, "dh: another seed draws its own numbers");
    cpu->fill_normal(cpu, moved, (size_t)B * L, 77, 10, &device_offset);   // the kept numbers
    cpu->kl_reparam_backward(cpu, dh1, kl1, h, eps_from(moved), dz, B, L, coef);
    cpu->kl_reparam_backward(cpu, dh2, kl2, h, fused, dz, B, L, coef);
    CHECK(memcmp(dh1, dh2, sizeof dh1) == 0, "dh: the kept draws are the ones the source names");
    cpu->kl_reparam_backward(cpu, dh1, kl1, h, eps_from(moved), dz, B - 1, L, coef);
    cpu->kl_reparam_backward(cpu, dh3, kl3, h, fused, dz, B - 1, L, coef);   // another B: drawn
    CHECK(memcmp(dh1, dh3, sizeof(float) * (B - 1) * 2 * L) == 0, "dh: another batch size draws its own");
    cpu->kl_reparam_backward(cpu, dh1, kl1, h, eps_from(moved), dz, B, L - 1, coef);
    cpu->kl_reparam_backward(cpu, dh3, kl3, h, fused, dz, B, L - 1, coef);   // another L: drawn
    CHECK(memcmp(dh1, dh3, sizeof(float) * B * 2 * (L - 1)) == 0, "dh: another latent size draws its own");
    // no source: z = mu
    cpu->reparam_forward(cpu, z2, h, eps_from(NULL), B, L);
    for (int b = 0; b < B; b++)
        for (int j = 0; j < L; j++) CHECK(z2[b * L + j] == h[b * 2 * L + j], "z = mu without eps");
    free(h);
    free(dz);
}

// step_begin / step_end: batch rows wrap per epoch, draw offsets advance by the
// rows of each step, the KL schedule is kl_schedule_at of the epoch position,
// and Adam's folded bias corrections match the pow() formula.
// draw_eps_ahead: the CPU backend draws an announced epsilon on a waiting thread beside the
// next GEMM too small to split (the encoder's head in a training step); reparam_forward then
// takes those numbers, the same bits it draws itself. A stale announcement (the offset moved
// since) is never taken: the draws are keyed by seed, base + offset, B and L.
// z (B, L) through reparam_forward from a buffer holding the draws of seed at first + i
static void eps_ahead_reference(float *z, const float *h, uint64_t seed, uint64_t first, int B, int L) {
    float *eps = xmalloc((size_t)B * L * sizeof(float));   // (B, L)
    rng_fill_normal_serial(eps, (size_t)B * L, seed, first);
    cpu->reparam_forward(cpu, z, h, eps_from(eps), B, L);
    free(eps);
}

static void test_eps_drawn_ahead(void) {
    const int B = 64, L = 40;   // 2,560 draws: the threads' share at reparam_forward's threshold
    const int max_threads = omp_get_max_threads();
    float *h = random_floats((size_t)B * 2 * L, -1.5f, 1.5f);   // (B, 2L)
    float *A = random_floats(16 * 64, -1, 1), *Bm = random_floats(64 * 16, -1, 1), *C = xmalloc(16 * 16 * 4);
    float *z = xmalloc((size_t)B * L * sizeof(float)), *want = xmalloc((size_t)B * L * sizeof(float));
    uint64_t offset = 5000;
    EpsSource eps = eps_drawn(91, 7, &offset);
    size_t drawn_beside = 0;
    for (int threads = 1; threads <= 2; threads++) {
        omp_set_num_threads(threads);
        for (int round = 0; round < 3; round++) {   // each round a new offset: nothing kept matches
            offset += (uint64_t)B * L;
            eps_ahead_reference(want, h, 91, 7 + offset, B, L);
            const size_t before = backend_cpu_update_counts(cpu).eps_draws_beside_gemms;
            cpu->draw_eps_ahead(cpu, eps, B, L);
            if (round != 1)   // a 16 x 16 x 64 GEMM: never split; round 1 has none between
                cpu->gemm(cpu, false, false, 16, 16, 64, 1.0f, A, 64, Bm, 16, 0.0f, C, 16);
            const size_t beside = backend_cpu_update_counts(cpu).eps_draws_beside_gemms - before;
            drawn_beside += beside;
            CHECK(beside <= 1, "%d threads, round %d: %zu draws beside one GEMM", threads, round, beside);
            CHECK(threads > 1 || beside == 0, "1 thread: no thread waits, yet a draw was made beside the GEMM");
            CHECK(round != 1 || beside == 0, "%d threads: drawn beside a GEMM with no GEMM run", threads);
            if (round == 2) offset += 1;   // announced at one offset, used at another: stale
            cpu->reparam_forward(cpu, z, h, eps, B, L);
            if (round == 2) eps_ahead_reference(want, h, 91, 7 + offset, B, L);
            CHECK(memcmp(z, want, (size_t)B * L * sizeof(float)) == 0,
                  "%d threads, round %d: z == mu + exp(logvar / 2) eps, eps the source's draws%s", threads, round,
                  round == 2 ? " (the offset moved after the announcement)" : "");
        }
    }
    if (!omp_get_dynamic())   // the pool has the threads asked for: thread 1 always draws
        CHECK(drawn_beside == 2, "%zu of the 2 announced draws with a GEMM after them made beside it on 2 threads",
              drawn_beside);
    omp_set_num_threads(max_threads);
    free(h); free(A); free(Bm); free(C); free(z); free(want);
}

static void test_step_state_evolution(void) {
    StepPlan plan;
    memset(&plan, 0, sizeof plan);
    plan.steps_per_epoch = 3;
    plan.batch = 8;
    plan.latent_dim = 5;
    plan.input_dim = 11;
    plan.beta1 = 0.9;
    plan.beta2 = 0.999;
    plan.kl.w_kl = 2.0;
    plan.kl.warmup_epochs = 2.0;
    StepState s;
    step_state_reset(&s, 0.01f);
    uint64_t eps_drawn = 0, uniforms_drawn = 0;
    for (int t = 1; t <= 10; t++) {
        int rows = (t % 3 == 0) ? 4 : 8;   // the last batch of each epoch is partial
        cpu->step_begin(cpu, &s, plan);
        CHECK(s.batch_start == ((t - 1) % 3) * 8, "step %d batch_start %d", t, s.batch_start);
        CHECK(s.eps_offset == eps_drawn && s.uniform_offset == uniforms_drawn, "step %d offsets", t);
        KlSchedule want = kl_schedule_at(plan.kl, (t - 1) / 3.0);
        CHECK(s.kl.weight == want.weight, "step %d kl weight %g vs %g", t, s.kl.weight, want.weight);
        double step_size = 0.01f / (1.0 - pow(0.9, t));
        double sqrt_bc2 = sqrt(1.0 - pow(0.999, t));
        CHECK(test_close(s.adam_step_size, step_size, 1e-6, 0), "step %d adam step size %g vs %g", t,
              s.adam_step_size, step_size);
        CHECK(test_close(s.adam_sqrt_bc2, sqrt_bc2, 1e-6, 0), "step %d sqrt bc2", t);
        cpu->step_end(cpu, &s, plan, rows);
        eps_drawn += (uint64_t)rows * 5;
        uniforms_drawn += (uint64_t)rows * 11;
        CHECK(s.step == t, "step counter");
    }
    CHECK(kl_schedule_at(plan.kl, 1.0).weight == 1.0f, "warmup half way: %g", kl_schedule_at(plan.kl, 1.0).weight);
    CHECK(kl_schedule_at(plan.kl, 3.0).weight == 2.0f, "warmup done");
}

// The step plan of the optimizer tests: β1 0.9, β2 0.999 (the step state's bias corrections),
// batches of one row, 3 steps an epoch.
static StepPlan optimizer_plan(void) {
    StepPlan plan;
    memset(&plan, 0, sizeof plan);
    plan.steps_per_epoch = 3;
    plan.batch = 1;
    plan.beta1 = 0.9;
    plan.beta2 = 0.999;
    return plan;
}

// AdamW (decoupled decay, PyTorch's torch.optim.AdamW) and SGD with momentum
// and L2 decay (torch.optim.SGD), and Adam with L2 decay (torch.optim.Adam(weight_decay)) against
// their formulas in double.
static void test_adamw_and_sgd_match_pytorch_formulas(void) {
    const int n = 9, steps = 6;
    const double lr = 1e-2, b1 = 0.9, b2 = 0.999, eps = 1e-8, wd = 0.1, mom = 0.9;
    StepPlan plan = optimizer_plan();
    const char *names[3] = {"adamw", "sgd", "adam with L2 decay"};
    for (int kind = 0; kind < 3; kind++) {   // 0 adamw, 1 sgd, 2 adam whose decay joins the gradient
        float *p = random_floats(n, -1, 1), *m = xcalloc(n, sizeof(float)), *v = xcalloc(n, sizeof(float));
        double pd[9], md[9] = {0}, vd[9] = {0};
        for (int i = 0; i < n; i++) pd[i] = p[i];
        StepState state;
        step_state_reset(&state, (float)lr);
        OptimizerParams o = {(float)b1, (float)b2, (float)eps, kind == 1 ? (float)mom : 0.0f, (float)wd, kind == 0};
        for (int t = 1; t <= steps; t++) {
            float *g = random_floats(n, -1, 1);
            for (int i = 0; i < n; i++) {   // the reference first: the update clears g
                if (kind == 1) {
                    double gi = g[i] + wd * pd[i];
                    md[i] = mom * md[i] + gi;
                    pd[i] -= (double)(float)lr * md[i];
                } else if (kind == 2) {   // torch.optim.Adam(weight_decay=wd): g + wd p in both moments
                    double gi = g[i] + wd * pd[i];
                    md[i] = b1 * md[i] + (1 - b1) * gi;
                    vd[i] = b2 * vd[i] + (1 - b2) * gi * gi;
                    double denom = sqrt(vd[i]) / sqrt(1 - pow(b2, t)) + eps;
                    pd[i] -= (double)(float)lr / (1 - pow(b1, t)) * md[i] / denom;
                } else {
                    pd[i] *= 1.0 - (double)(float)lr * wd;
                    md[i] = b1 * md[i] + (1 - b1) * g[i];
                    vd[i] = b2 * vd[i] + (1 - b2) * (double)g[i] * g[i];
                    double denom = sqrt(vd[i]) / sqrt(1 - pow(b2, t)) + eps;
                    pd[i] -= (double)(float)lr / (1 - pow(b1, t)) * md[i] / denom;
                }
            }
            cpu->step_begin(cpu, &state, plan);
            if (kind == 1) cpu->sgd_update(cpu, p, g, m, n, &state, o);
            else cpu->adam_update(cpu, p, g, m, v, n, &state, o);
            cpu->step_end(cpu, &state, plan, 1);
            CHECK(cpu->updates_clear_gradients, "the CPU backend's updates clear the gradients");
            for (int i = 0; i < n; i++)
                CHECK(g[i] == 0.0f && !signbit(g[i]), "%s step %d: gradient %d left at %g, not +0",
                      names[kind], t, i, g[i]);
            free(g);
        }
        for (int i = 0; i < n; i++)
            CHECK(test_close(p[i], pd[i], 1e-5, 1e-6), "%s p[%d] %.9g vs %.9g", names[kind], i, p[i], pd[i]);
        free(p);
        free(m);
        free(v);
    }
}

// Gradient-norm clipping: the norm in double against a plain sum, the scale of
// clip_grad_norm_ (max_norm / (norm + 1e-6)), and gradients under the limit untouched.
static void test_grad_clip(void) {
    const size_t n = 70001;   // more than one stride of the partition
    float *g = random_floats(n, -1, 1), *copy = xmalloc(n * sizeof(float));
    memcpy(copy, g, n * sizeof(float));
    double *scratch = cpu->alloc(cpu, GRAD_CLIP_SCRATCH * sizeof(double));
    double sum = 0.0;
    for (size_t i = 0; i < n; i++) sum += (double)g[i] * g[i];
    double norm = sqrt(sum);
    cpu->grad_clip(cpu, g, n, 2.0f, scratch);
    CHECK(test_close(scratch[0], norm, 1e-12, 0), "norm %.17g vs %.17g", scratch[0], norm);
    float c = (float)(2.0 / (norm + 1e-6));
    size_t bad = 0;
    for (size_t i = 0; i < n; i++) bad += g[i] != copy[i] * c;
    CHECK(bad == 0, "%zu of %zu entries not scaled by %g", bad, n, c);
    cpu->grad_clip(cpu, g, n, 1e6f, scratch);   // the norm is now 2: nothing changes
    bad = 0;
    for (size_t i = 0; i < n; i++) bad += g[i] != copy[i] * c;
    CHECK(bad == 0 && test_close(scratch[0], 2.0, 1e-6, 0), "under the limit: %zu changed, norm %g", bad,
          scratch[0]);
    cpu->free(cpu, scratch);
    free(g);
    free(copy);
}

// The per-step learning rate (step_state.h): cosine decay to min_lr over the run and a
// linear warm-up, against the formulas in double with libm's cos; the fma-only
// cos(pi t) against libm; the per-epoch step schedule (config_learning_rate).
static void test_learning_rate_schedules(void) {
    double worst = 0.0;
    for (int i = 0; i <= 1000; i++) {
        double t = i / 1000.0, e = fabs(schedule_cos_pi(t) - cos(M_PI * t));
        if (e > worst) worst = e;
    }
    CHECK(worst < 4e-16, "cos(pi t): worst error %g", worst);
    LrPlan plan = {10, 1, 100, 1e-5};
    StepState s;
    step_state_reset(&s, 1e-3f);
    for (int step = 0; step <= 120; step++) {
        s.step = step;
        double t = step < 100 ? step / 100.0 : 1.0;
        double want = 1e-5 + ((double)1e-3f - 1e-5) * 0.5 * (1.0 + cos(M_PI * t));
        if (step < 10) want *= (step + 1) / 10.0;
        double got = step_learning_rate(&s, plan);
        CHECK(test_close(got, want, 1e-14, 0), "step %d: lr %.17g, want %.17g", step, got, want);
    }
    LrPlan warm_only = {4, 0, 0, 0.0};
    s.step = 1;
    CHECK(step_learning_rate(&s, warm_only) == (double)1e-3f * 0.5, "warm-up alone, step 1");
    s.step = 4;
    CHECK(step_learning_rate(&s, warm_only) == (double)1e-3f, "after the warm-up");
    Config cfg;
    char err[512];
    const char *sets[3] = {"train.lr_schedule=step", "train.lr_step_epochs=3", "train.lr_gamma=0.5"};
    if (config_load(&cfg, "configs/examples_vae.json", sets, 3, err, sizeof err) != 0) {
        CHECK(0, "%s", err);
        return;
    }
    const double want[8] = {0, 1e-3, 1e-3, 1e-3, 5e-4, 5e-4, 5e-4, 2.5e-4};
    for (int epoch = 1; epoch <= 7; epoch++)
        CHECK(test_close(config_learning_rate(&cfg, epoch), want[epoch], 1e-15, 0), "step schedule, epoch %d: %g",
              epoch, config_learning_rate(&cfg, epoch));
}

static void test_accumulate_loss(void) {
    double *acc = cpu->alloc(cpu, 3 * sizeof(double));
    float rec[4] = {1, 2, 3, 4}, kl[4] = {0.5f, 0.5f, 0.5f, 0.5f};
    cpu->accumulate_loss(cpu, acc, rec, kl, 4);
    cpu->accumulate_loss(cpu, acc, rec, NULL, 2);
    CHECK(acc[0] == 13.0 && acc[1] == 2.0 && acc[2] == 6.0, "acc = %g %g %g", acc[0], acc[1], acc[2]);
    cpu->free(cpu, acc);
}

static void test_adam_matches_pytorch_formula(void) {
    const int n = 7, steps = 5;
    float *p = random_floats(n, -1, 1), *m = xcalloc(n, sizeof(float)), *v = xcalloc(n, sizeof(float));
    double pd[7], md[7] = {0}, vd[7] = {0};
    for (int i = 0; i < n; i++) pd[i] = p[i];
    const double lr = 1e-2, b1 = 0.9, b2 = 0.999, eps = 1e-8;
    StepPlan plan = optimizer_plan();   // the bias corrections from the step state, as in training
    StepState state;
    step_state_reset(&state, (float)lr);
    for (int t = 1; t <= steps; t++) {
        float *g = random_floats(n, -1, 1);
        // gradients small enough that eps is half the denominator or all of it (with
        // gradients of order 1 a lost eps went unseen)
        g[0] *= 1e-8f;
        g[1] = 0.0f;
        g[2] *= 1e-7f;
        for (int i = 0; i < n; i++) {   // the reference first: the update clears g
            md[i] = b1 * md[i] + (1 - b1) * g[i];
            vd[i] = b2 * vd[i] + (1 - b2) * (double)g[i] * g[i];
            double denom = sqrt(vd[i]) / sqrt(1 - pow(b2, t)) + eps;
            pd[i] -= lr / (1 - pow(b1, t)) * md[i] / denom;
        }
        cpu->step_begin(cpu, &state, plan);
        OptimizerParams o = {(float)b1, (float)b2, (float)eps, 0.0f, 0.0f, 0};
        cpu->adam_update(cpu, p, g, m, v, n, &state, o);
        cpu->step_end(cpu, &state, plan, 1);
        for (int i = 0; i < n; i++)
            CHECK(g[i] == 0.0f && !signbit(g[i]), "adam step %d: gradient %d left at %g, not +0", t, i, g[i]);
        free(g);
    }
    for (int i = 0; i < n; i++) CHECK(test_close(p[i], pd[i], 1e-5, 1e-6), "adam p[%d] %g vs %g", i, p[i], pd[i]);
    free(p); free(m); free(v);
}

// queue_update: updates started inside a backward. The CPU backend runs their chunks on the
// threads a GEMM too small to split leaves idle or whose slice of a split GEMM is done, and
// the rest at finish_updates. With GEMMs of M x N x K between the pieces. Returns the
// chunks run beside GEMMs; checks that every element got adam_update's / sgd_update's
// arithmetic (the same bits) and every GEMM the bits it has alone.
static size_t queued_updates_run(int GM, int GN, int GK, int threads) {
    const size_t n = 3 * 65536 + 123, cut1 = n / 3 + 5, cut2 = 2 * n / 3 + 1;
    const int max_threads = omp_get_max_threads();
    omp_set_num_threads(threads);
    const size_t before = backend_cpu_update_counts(cpu).chunks_beside_gemms;
    StepPlan plan = optimizer_plan();
    float *A = random_floats((size_t)GM * GK, -1, 1), *Bm = random_floats((size_t)GK * GN, -1, 1);
    const size_t c_bytes = (size_t)GM * GN * sizeof(float);
    float *alone = xmalloc(c_bytes), *beside = xmalloc(c_bytes);
    cpu->gemm(cpu, false, false, GM, GN, GK, 1.0f, A, GK, Bm, GN, 0.0f, alone, GN);
    const OptimizerParams kinds[3] = {
        {0.9f, 0.999f, 1e-8f, 0.0f, 0.0f, 0},    // adam
        {0.9f, 0.999f, 1e-8f, 0.0f, 0.1f, 1},    // adamw (decoupled decay: the scalar loop)
        {0.9f, 0.999f, 1e-8f, 0.9f, 0.01f, 0},   // sgd, momentum and L2 decay
    };
    for (int k = 0; k < 3; k++) {
        const bool sgd = k == 2;
        StepState state;
        step_state_reset(&state, 1e-2f);
        cpu->step_begin(cpu, &state, plan);
        float *p = random_floats(n, -1, 1), *g = random_floats(n, -1, 1);
        float *m = random_floats(n, -0.1f, 0.1f), *v = random_floats(n, 0.0f, 0.01f);
        float *p2 = xmalloc(n * sizeof(float)), *m2 = xmalloc(n * sizeof(float)), *v2 = xmalloc(n * sizeof(float));
        float *g2 = xmalloc(n * sizeof(float));   // the updates clear what they read
        memcpy(g2, g, n * sizeof(float));
        memcpy(p2, p, n * sizeof(float));
        memcpy(m2, m, n * sizeof(float));
        memcpy(v2, v, n * sizeof(float));
        if (sgd) cpu->sgd_update(cpu, p, g, m, n, &state, kinds[k]);
        else cpu->adam_update(cpu, p, g, m, v, n, &state, kinds[k]);
        // three pieces, last first (as a model queues its layers), GEMMs between and after
        const size_t starts[3] = {cut2, cut1, 0}, ends[3] = {n, cut2, cut1};
        int gemm_mismatches = 0;
        for (int r = 0; r < 3; r++) {
            const size_t s0 = starts[r], len = ends[r] - starts[r];
            cpu->queue_update(cpu, p2 + s0, g2 + s0, m2 + s0, v2 + s0, len, &state, kinds[k], sgd);
            cpu->gemm(cpu, false, false, GM, GN, GK, 1.0f, A, GK, Bm, GN, 0.0f, beside, GN);
            gemm_mismatches += memcmp(alone, beside, c_bytes) != 0;
        }
        cpu->gemm(cpu, false, false, GM, GN, GK, 1.0f, A, GK, Bm, GN, 0.0f, beside, GN);
        gemm_mismatches += memcmp(alone, beside, c_bytes) != 0;
        cpu->finish_updates(cpu);
        cpu->step_end(cpu, &state, plan, 1);
        CHECK(memcmp(p, p2, n * sizeof(float)) == 0, "kind %d: queued parameters == one update", k);
        CHECK(memcmp(m, m2, n * sizeof(float)) == 0, "kind %d: queued first moments == one update", k);
        CHECK(sgd || memcmp(v, v2, n * sizeof(float)) == 0, "kind %d: queued second moments == one update", k);
        CHECK(gemm_mismatches == 0, "kind %d: %d GEMMs beside the updates differ from the GEMM alone", k,
              gemm_mismatches);
        size_t left = 0;   // Backend.updates_clear_gradients: every gradient read is +0 after
        for (size_t i = 0; i < n; i++) left += g[i] != 0.0f || signbit(g[i]) || g2[i] != 0.0f || signbit(g2[i]);
        CHECK(left == 0, "kind %d: %zu gradients not cleared to +0 by the update (one, or queued)", k, left);
        free(p); free(g); free(m); free(v); free(p2); free(m2); free(v2); free(g2);
    }
    free(A);
    free(Bm);
    free(alone);
    free(beside);
    omp_set_num_threads(max_threads);
    return backend_cpu_update_counts(cpu).chunks_beside_gemms - before;
}

// GEMMs of the two kinds: one 4-row block (never split: thread 0 runs it, the others take
// chunks), and 256 x 256 x 256 (split in two: the thread whose slice ends first takes chunks
// until the other's ends); the overlap needs a second thread. And 256 x 256 x 64 on 4
// threads: split in two only (a third slice would fall under the split's minimum size), so
// two threads take chunks from the start.
enum { UNSPLIT_M = 4, UNSPLIT_N = 4, UNSPLIT_K = 1 << 18, SPLIT_SIDE = 256, TWO_SLICES_K = 64, QUEUED_TRIES = 20 };

static int two_or_more_threads(void) { return omp_get_max_threads() < 2 ? 2 : omp_get_max_threads(); }

static void test_queued_updates_equal_one_update(void) {
    queued_updates_run(UNSPLIT_M, UNSPLIT_N, UNSPLIT_K, two_or_more_threads());
    queued_updates_run(SPLIT_SIDE, SPLIT_SIDE, SPLIT_SIDE, two_or_more_threads());
    queued_updates_run(SPLIT_SIDE, SPLIT_SIDE, TWO_SLICES_K, 4);
}

// With OpenBLAS kernels that give the same bits however C is cut, a split GEMM right after a
// queue_update cuts its last slice short for the updates (each GEMM still the bits it has
// alone: queued_updates_run checks that); with the others the slices stay even.
static void test_split_gemm_cut_for_queued_updates(void) {
    const size_t before = backend_cpu_update_counts(cpu).gemms_cut_for_updates;
    queued_updates_run(SPLIT_SIDE, SPLIT_SIDE, SPLIT_SIDE, two_or_more_threads());
    const size_t cut = backend_cpu_update_counts(cpu).gemms_cut_for_updates - before;
    if (backend_cpu_blas_splits_exact(openblas_get_corename()))
        CHECK(cut == 9, "%zu of the 9 split GEMMs after a queue_update were cut for it (want all)", cut);
    else
        CHECK(cut == 0, "%zu split GEMMs cut unevenly with OpenBLAS's %s kernels (want none: they round a "
              "cut's tail differently)", cut, openblas_get_corename());
}

// The cut for queued updates never leaves a last slice under the split's minimum size: a small
// NT or NN slice goes to OpenBLAS's small-matrix kernels, which sum in another order. NT 64 x
// 288 x 784 after 400 k to 560 k queued elements at 2 threads (513,424 gave a 4-column last
// slice and 233 of 18,432 elements off before the fix): the GEMM's bits alone, every time.
static void test_cut_keeps_slices_above_minimum(void) {
    const int M = 64, N = 288, K = 784;
    const size_t most = 560000;
    const int max_threads = omp_get_max_threads();
    omp_set_num_threads(2);
    float *A = random_floats((size_t)M * K, -1, 1), *Bt = random_floats((size_t)N * K, -1, 1);
    float *alone = xmalloc((size_t)M * N * sizeof(float)), *cut = xmalloc((size_t)M * N * sizeof(float));
    float *p = random_floats(most, -1, 1), *g = random_floats(most, -1, 1);
    float *m = random_floats(most, -0.1f, 0.1f), *v = random_floats(most, 0.0f, 0.01f);
    const OptimizerParams adam = {0.9f, 0.999f, 1e-8f, 0.0f, 0.0f, 0};
    StepPlan plan = optimizer_plan();
    StepState state;
    step_state_reset(&state, 1e-3f);
    cpu->gemm(cpu, false, true, M, N, K, 1.0f, A, K, Bt, K, 0.0f, alone, N);
    int differ = 0, sizes = 0;
    for (size_t n = 400000; n <= most; n += 8000, sizes++) {
        cpu->step_begin(cpu, &state, plan);
        cpu->queue_update(cpu, p, g, m, v, n - 16 * (size_t)(sizes % 3) - 3, &state, adam, false);   // <= most
        cpu->gemm(cpu, false, true, M, N, K, 1.0f, A, K, Bt, K, 0.0f, cut, N);
        cpu->finish_updates(cpu);
        cpu->step_end(cpu, &state, plan, 1);
        differ += memcmp(alone, cut, (size_t)M * N * sizeof(float)) != 0;
    }
    CHECK(differ == 0, "%d of %d NT %d x %d x %d GEMMs after a queue_update differ from the GEMM alone "
          "(OpenBLAS %s kernels)", differ, sizes, M, N, K, openblas_get_corename());
    omp_set_num_threads(max_threads);
    free(A); free(Bt); free(alone); free(cut); free(p); free(g); free(m); free(v);
}

static void test_queued_updates_run_beside_gemms(void) {
    if (omp_get_num_procs() < 2) {   // the cores this process may use (affinity)
        test_skip("queued_updates_run_beside_gemms", "one core: the second thread only runs when the first waits");
        return;
    }
    // On a loaded machine the second thread may not be scheduled before a GEMM ends, so each
    // case gets up to QUEUED_TRIES runs: it fails only if no chunk ever ran beside a GEMM.
    size_t beside = 0;
    for (int t = 0; t < QUEUED_TRIES && !beside; t++)
        beside = queued_updates_run(UNSPLIT_M, UNSPLIT_N, UNSPLIT_K, two_or_more_threads());
    CHECK(beside > 0, "no chunk of the queued updates ran beside the 12 unsplit GEMMs (%d tries)", QUEUED_TRIES);
    // a slice ends first by a few microseconds at least in some of the 12 split GEMMs
    beside = 0;
    for (int t = 0; t < QUEUED_TRIES && !beside; t++)
        beside = queued_updates_run(SPLIT_SIDE, SPLIT_SIDE, SPLIT_SIDE, two_or_more_threads());
    CHECK(beside > 0, "no chunk of the queued updates ran at the end of 12 split GEMMs' slices (%d tries)",
          QUEUED_TRIES);
    // 4 threads, 2 slices: the other two take chunks while the slices run
    beside = 0;
    for (int t = 0; t < QUEUED_TRIES && !beside; t++) beside = queued_updates_run(SPLIT_SIDE, SPLIT_SIDE, TWO_SLICES_K, 4);
    CHECK(beside > 0, "no chunk ran on the threads beyond 12 two-slice GEMMs' slices (%d tries)", QUEUED_TRIES);
}

// rng_permutation is a uniform shuffle (Fisher-Yates): over 60,000 shuffles of 3 items each of
// the 6 orders comes up about 10,000 times (chi-square, 5 degrees of freedom, under 40: p < 1e-6
// by chance), the identity among them; and a shuffle of 1,000 holds each index once. (A j drawn
// from 0..i-1, Sattolo's cycles, never leaves an item in place: 2 orders of the 6 only.)
static void test_permutation_uniform(void) {
    enum { SHUFFLES = 60000 };
    Rng rng;
    rng_init(&rng, 1234, 7);
    int counts[3][3][3] = {{{0}}};
    for (int k = 0; k < SHUFFLES; k++) {
        int32_t perm[3];
        rng_permutation(&rng, perm, 3);
        counts[perm[0]][perm[1]][perm[2]]++;
    }
    const int orders[6][3] = {{0, 1, 2}, {0, 2, 1}, {1, 0, 2}, {1, 2, 0}, {2, 0, 1}, {2, 1, 0}};
    double chi2 = 0.0;
    for (int o = 0; o < 6; o++) {
        const double seen = counts[orders[o][0]][orders[o][1]][orders[o][2]], expected = SHUFFLES / 6.0;
        chi2 += (seen - expected) * (seen - expected) / expected;
    }
    CHECK(chi2 < 40.0, "3-item shuffles: chi-square %.1f over the 6 orders (identity %d times of %d)", chi2,
          counts[0][1][2], SHUFFLES);
    enum { N = 1000 };
    int32_t perm[N];
    int seen[N] = {0}, fixed = 0;
    rng_permutation(&rng, perm, N);
    for (int i = 0; i < N; i++) {
        if (perm[i] >= 0 && perm[i] < N) seen[perm[i]]++;
        fixed += perm[i] == i;
    }
    int missing = 0;
    for (int i = 0; i < N; i++) missing += seen[i] != 1;
    CHECK(missing == 0, "a shuffle of %d: %d indices not there exactly once", N, missing);
    CHECK(fixed < 10, "a shuffle of %d left %d items in place (about 1 expected)", N, fixed);
}

// A host normal against philox.h's definition (libm's logf and cosf on the host): its bits
// where cpu_box_muller runs on libm, within a few ulp where it runs libmvec's (at most 3.6e-7
// relative over 4 million draws on the development VM; the bound is 1e-6).
static bool normal_near_definition(float got, float want) {
    if (!cpu_vector_box_muller_available()) return got == want;
    return fabsf(got - want) <= 1e-6f * fabsf(want);
}

static void test_rng_streams(void) {
    float a[1000], b[1000], c[10];
    cpu->fill_normal(cpu, a, 1000, 42, 0, NULL);
    cpu->fill_normal(cpu, b, 1000, 42, 0, NULL);
    cpu->fill_normal(cpu, c, 10, 42, 500, NULL);
    CHECK(memcmp(a, b, sizeof a) == 0, "same seed, same draws");
    CHECK(memcmp(a + 500, c, sizeof c) == 0, "offset continues the stream");
    uint64_t device_offset = 400;   // a "device" offset adds to the host one
    cpu->fill_normal(cpu, c, 10, 42, 100, &device_offset);
    CHECK(memcmp(a + 500, c, sizeof c) == 0, "device offset adds to the host offset");
    for (int i = 0; i < 1000; i++) {
        CHECK(a[i] == rng_normal_at(42, (uint64_t)i), "fill_normal is rng_normal_at");
        CHECK(normal_near_definition(a[i], philox_normal_at(42, (uint64_t)i)),
              "fill_normal near philox_normal_at: %.9g against %.9g", a[i], philox_normal_at(42, (uint64_t)i));
    }
    // each Philox block serves two normals: starts and ends at odd and even indices, and a fill
    // large enough for the thread pool's chunks, are still rng_normal_at element by element
    const int starts[] = {1, 2, 3, 991}, lengths[] = {1, 2, 3, 7};
    for (int s = 0; s < 4; s++)
        for (int l = 0; l < 4; l++) {
            rng_fill_normal_serial(c, (size_t)lengths[l], 42, (uint64_t)starts[s]);
            for (int i = 0; i < lengths[l]; i++)
                CHECK(c[i] == a[starts[s] + i], "fill from %d, %d long: element %d", starts[s], lengths[l], i);
        }
    enum { BIG = 20001 };
    float *big = xmalloc(BIG * sizeof(float));
    rng_fill_normal(big, BIG, 7, 3);
    int mismatches = 0;
    int far = 0;
    for (int i = 0; i < BIG; i++) {
        mismatches += big[i] != rng_normal_at(7, (uint64_t)i + 3);
        far += !normal_near_definition(big[i], philox_normal_at(7, (uint64_t)i + 3));
    }
    CHECK(mismatches == 0, "a %d-long fill from index 3 differs from rng_normal_at at %d places", BIG, mismatches);
    CHECK(far == 0, "a %d-long fill from index 3 is far from philox_normal_at at %d places", BIG, far);
    // the serial fills draw 32 blocks side by side where that many are needed, else block by
    // block: every start within a block, lengths on both sides of 32 blocks, block indices
    // across 2^32
    const uint64_t fill_starts[] = {0, 1, 2, 3, 5, 991, ((uint64_t)1 << 33) - 37, ((uint64_t)1 << 34) - 70};
    const int fill_lengths[] = {1, 2, 5, 63, 64, 65, 127, 128, 129, 130, 131, 300, 1000};
    enum { GUARD = 16 };   // floats on each side of a fill that must stay untouched
    const float sentinel = -1234.5f;
    float *guarded = xmalloc((1000 + 2 * GUARD) * sizeof(float));
    float *fill = guarded + GUARD;
    int normal_bad = 0, uniform_bad = 0, between_bad = 0, guard_bad = 0;
    for (int s = 0; s < 8; s++)
        for (int l = 0; l < 13; l++) {
            const size_t n = (size_t)fill_lengths[l];
            for (int g = 0; g < 1000 + 2 * GUARD; g++) guarded[g] = sentinel;
            rng_fill_normal_serial(fill, n, 42, fill_starts[s]);
            for (int g = 0; g < GUARD; g++) guard_bad += guarded[g] != sentinel || fill[n + (size_t)g] != sentinel;
            for (size_t i = 0; i < n; i++)
                normal_bad += fill[i] != rng_normal_at(42, fill_starts[s] + i) ||
                              !normal_near_definition(fill[i], philox_normal_at(42, fill_starts[s] + i));
            for (int g = 0; g < 1000 + 2 * GUARD; g++) guarded[g] = sentinel;
            rng_fill_uniform_serial(fill, n, 43, fill_starts[s]);
            for (int g = 0; g < GUARD; g++) guard_bad += guarded[g] != sentinel || fill[n + (size_t)g] != sentinel;
            for (size_t i = 0; i < n; i++) uniform_bad += fill[i] != philox_uniform_at(43, fill_starts[s] + i);
            rng_fill_uniform_between(fill, n, 44, fill_starts[s], 0.7f, 1.2f);
            for (size_t i = 0; i < n; i++)
                between_bad += fill[i] != philox_uniform_between(44, fill_starts[s] + i, 0.7f, 1.2f);
        }
    CHECK(normal_bad == 0 && uniform_bad == 0 && between_bad == 0,
          "serial fills against the definitions: %d normals, %d uniforms, %d scaled uniforms differ",
          normal_bad, uniform_bad, between_bad);
    CHECK(guard_bad == 0, "serial fills wrote %d floats outside their range", guard_bad);
    free(guarded);
    // a glibc with the vector tanhf (2.35) has the vector logf / cosf (2.22): then the normals
    // must take them (a failed lookup would otherwise pass every check above on libm's bits)
    CHECK(!cpu_vector_tanh_available() || cpu_vector_box_muller_available(),
          "vector tanhf found but not the vector logf / cosf: cpu_box_muller runs on libm");
    rng_fill_uniform(big, BIG, 9, 2);   // the pool's chunks
    mismatches = 0;
    for (int i = 0; i < BIG; i++) mismatches += big[i] != philox_uniform_at(9, (uint64_t)i + 2);
    CHECK(mismatches == 0, "a %d-long uniform fill from index 2 differs at %d places", BIG, mismatches);
    free(big);
    double mean = 0, var = 0;
    for (int i = 0; i < 1000; i++) mean += a[i];
    mean /= 1000;
    for (int i = 0; i < 1000; i++) var += (a[i] - mean) * (a[i] - mean);
    var /= 999;
    CHECK(fabs(mean) < 0.12 && fabs(var - 1) < 0.15, "normal moments: mean %g var %g", mean, var);
    float u[1000];
    rng_fill_uniform(u, 1000, 7, 0);
    double umin = 1, umax = 0;
    for (int i = 0; i < 1000; i++) { if (u[i] < umin) umin = u[i]; if (u[i] > umax) umax = u[i]; }
    CHECK(umin > 0 && umax <= 1 && umin < 0.01 && umax > 0.99, "uniform range %g..%g", umin, umax);
}

// The BCE loss over the whole useful range of logits, one pixel per row so each
// element is compared on its own, against double precision.
static void test_bce_accuracy_dense(void) {
    const int n = 18001;
    float *a = xmalloc(n * sizeof(float)), *g = xmalloc(n * sizeof(float)), *r = xmalloc(n * sizeof(float));
    float *t = xmalloc(n * sizeof(float));
    const float targets[3] = {0.0f, 0.3f, 1.0f};
    double worst_loss = 0, worst_grad = 0;
    for (int k = 0; k < 3; k++) {
        for (int i = 0; i < n; i++) {
            a[i] = -90.0f + 0.01f * i;
            t[i] = targets[k];
        }
        cpu->reconstruction_loss(cpu, g, r, a, t, n, 1, RECLOSS_BCE_LOGITS, 1.0f, 1.0f);
        for (int i = 0; i < n; i++) {
            double ad = a[i], td = t[i];
            double softplus = log1p(exp(-fabs(ad)));
            double loss = (ad > 0 ? ad : 0) - ad * td + softplus;
            double sig = ad >= 0 ? 1 / (1 + exp(-ad)) : exp(ad) / (1 + exp(ad));
            double grad = sig - td;
            double el = fabs(r[i] - loss) / (fabs(loss) + 1e-30);
            double eg = fabs(g[i] - grad);
            // float resolution: 2 ulp relative on the loss (absolute 1e-38 near 0), 1e-7 on the gradient
            if (fabs(r[i] - loss) > 2.4e-7 * fabs(loss) + 1e-37 && el > worst_loss) worst_loss = el;
            if (eg > worst_grad) worst_grad = eg;
        }
    }
    CHECK(worst_loss == 0, "BCE loss beyond 2 ulp: worst relative error %g", worst_loss);
    CHECK(worst_grad <= 1.2e-7, "BCE gradient: worst absolute error %g", worst_grad);
    free(a); free(g); free(r); free(t);
}

// Two floats that are the same bits, or both NaN (the sign of a NaN is not kept alike).
static int same_float_or_nan(float a, float b) { return (isnan(a) && isnan(b)) || memcmp(&a, &b, sizeof a) == 0; }

// The BCE row's AVX-512 build (16 floats a vector) gives the bits of the build's own target
// (8): each element's arithmetic is the same, and the row sum's order does not follow the
// vector width. Rows of every length around the vector, lane and chunk sizes; logits from
// tiny to saturated, +-inf and NaN; soft and binary targets; with and without the gradient.
// The CPU's tanh (cpu_tanh: libmvec's 8-lane tanhf where glibc has it) against libm's tanhf
// and tanh in double precision over every 4099th float bit pattern, and the tail of a
// length that is not a multiple of 8 given the same bits as the body.
static int64_t float_order(float f) {
    int32_t i;
    memcpy(&i, &f, sizeof i);
    return i < 0 ? -(int64_t)(i & 0x7fffffff) : (int64_t)i;
}

static void test_vector_tanh(void) {
    if (!cpu_vector_tanh_available()) {
        test_skip("vector_tanh", "this glibc has no vector tanhf (libmvec before 2.35) or the build has no AVX2: "
                                 "cpu_tanh is libm's tanhf");
        return;
    }
    enum { BATCH = 4096 };
    float *x = xmalloc(BATCH * sizeof(float)), *y = xmalloc(BATCH * sizeof(float));
    int64_t worst_libm = 0;
    double worst_rel = 0.0;
    int bad_special = 0, n = 0;
    for (uint64_t bits = 0; bits < ((uint64_t)1 << 32); bits += 4099) {
        uint32_t b = (uint32_t)bits;
        memcpy(&x[n], &b, sizeof b);
        if (isnan(x[n]) || fpclassify(x[n]) == FP_SUBNORMAL) continue;   // (subnormals: the pool flushes them)
        if (++n < BATCH && bits + 4099 < ((uint64_t)1 << 32)) continue;
        cpu_tanh(y, x, (size_t)n);
        for (int i = 0; i < n; i++) {
            int64_t d = llabs(float_order(y[i]) - float_order(tanhf(x[i])));
            if (d > worst_libm) worst_libm = d;
            double t = tanh((double)x[i]);
            double rel = t != 0.0 ? fabs((y[i] - t) / t) : fabs(y[i]);
            if (rel > worst_rel) worst_rel = rel;
        }
        n = 0;
    }
    const float special[] = {0.0f, -0.0f, INFINITY, -INFINITY, 1e-30f, -1e-30f, 9.0f, -9.0f, 1e30f};
    const float want[] = {0.0f, -0.0f, 1.0f, -1.0f, 1e-30f, -1e-30f, tanhf(9.0f), -tanhf(9.0f), 1.0f};
    cpu_tanh(y, special, 9);
    for (int i = 0; i < 9; i++) bad_special += memcmp(&y[i], &want[i], sizeof(float)) != 0;
    float nan_in = NAN, nan_out;
    cpu_tanh(&nan_out, &nan_in, 1);
    CHECK(worst_libm <= 2, "cpu_tanh differs from libm's tanhf by %lld ulp", (long long)worst_libm);
    CHECK(worst_rel < 1.2e-7, "cpu_tanh's largest relative error against double precision %g", worst_rel);
    CHECK(bad_special == 0 && isnan(nan_out), "cpu_tanh of 0, -0, +-inf, +-1e-30, +-9, 1e30: %d wrong, NaN -> %g",
          bad_special, nan_out);
    // a tail (n % 8 elements) has the bits its values get in a full vector
    for (int i = 0; i < 800; i++) x[i] = -4.0f + 0.0101f * (float)i;
    cpu_tanh(y, x, 800);
    int tail_differ = 0;
    for (int len = 1; len < 800; len += len < 64 ? 1 : 37) {
        float *part = xmalloc((size_t)len * sizeof(float));
        cpu_tanh(part, x + 800 - len, (size_t)len);
        tail_differ += memcmp(part, y + 800 - len, (size_t)len * sizeof(float)) != 0;
        free(part);
    }
    CHECK(tail_differ == 0, "%d lengths give their last elements other bits than a full vector", tail_differ);
    free(x);
    free(y);
}

static void test_bce_avx512_same_bits(void) {
    if (!cpu_bce_avx512_available()) {
        test_skip("bce_avx512_same_bits", "no AVX-512F on this CPU (or not an x86-64 build): only the target build runs");
        return;
    }
    const int lengths[] = {1, 2, 7, 8, 9, 15, 16, 17, 31, 33, 100, 784, 1023, 1024, 1025, 2055, 3072};
    const float scales[] = {1e-3f, 1.0f, 20.0f, 100.0f};
    int rows = 0, sums_differ = 0, grads_differ = 0, loss_only_differ = 0;
    for (size_t k = 0; k < sizeof lengths / sizeof *lengths; k++) {
        const int D = lengths[k];
        float *g8 = xmalloc((size_t)D * sizeof(float)), *g16 = xmalloc((size_t)D * sizeof(float));
        for (int rep = 0; rep < 8; rep++) {
            const float scale = scales[rep % 4];
            float *a = random_floats((size_t)D, -scale, scale);
            float *t = random_floats((size_t)D, 0, 1);
            if (rep % 2) for (int d = 0; d < D; d++) t[d] = t[d] < 0.5f ? 0.0f : 1.0f;
            if (rep == 5) { a[0] = INFINITY; a[D / 2] = -INFINITY; a[D - 1] = -88.5f; }
            if (rep == 7) a[D / 3] = NAN;
            for (int mse = 0; mse < 2; mse++) {   // BCE, and the squared error of the sigmoid (the same pass)
                double (*row)(const float *, const float *, float *, int, float, bool) =
                    mse ? cpu_mse_sigmoid_row : cpu_bce_logits_row;
                const double s8 = row(a, t, g8, D, 0.37f, false);
                const double s16 = row(a, t, g16, D, 0.37f, true);
                const double only16 = row(a, t, NULL, D, 0.37f, true);
                rows++;
                if (!((isnan(s8) && isnan(s16)) || memcmp(&s8, &s16, sizeof s8) == 0)) sums_differ++;
                if (!((isnan(s16) && isnan(only16)) || memcmp(&s16, &only16, sizeof s16) == 0)) loss_only_differ++;
                for (int d = 0; d < D; d++)
                    if (!same_float_or_nan(g8[d], g16[d])) { grads_differ++; break; }
            }
            free(a); free(t);
        }
        free(g8); free(g16);
    }
    CHECK(sums_differ == 0, "%d of %d row sums differ between the AVX-512 and the target build", sums_differ, rows);
    CHECK(grads_differ == 0, "%d of %d rows' gradients differ between the AVX-512 and the target build", grads_differ, rows);
    CHECK(loss_only_differ == 0, "%d of %d loss-only row sums differ from the sums with the gradient", loss_only_differ, rows);
}

// backend_cpu_create turns subnormals into zero on every thread doing our loops
static void test_subnormals_flushed(void) {
    volatile float tiny = 1e-20f;
    float product = tiny * tiny;                       // 1e-40: subnormal unless flushed
    CHECK(product == 0.0f, "main thread: 1e-20 * 1e-20 = %g, want 0 (flush-to-zero)", product);
    int flushed_everywhere = 1;
    #pragma omp parallel reduction(&& : flushed_everywhere)
    {
        volatile float t = 1e-20f;
        flushed_everywhere = flushed_everywhere && (t * t == 0.0f);
    }
    CHECK(flushed_everywhere, "an OpenMP thread keeps subnormals");
    // the loss on a saturated logit then gives an exact 0 gradient, not a subnormal
    float a = -95.0f, x = 0.0f, g, r;
    cpu->reconstruction_loss(cpu, &g, &r, &a, &x, 1, 1, RECLOSS_BCE_LOGITS, 1.0f, 1.0f);
    CHECK(g == 0.0f || fabsf(g) >= 1.17549435e-38f, "gradient %g is subnormal", g);
}

int main(int argc, char **argv) {
    (void)argc;
    // the BLAS kernels cuvae itself runs with: on a CPU OpenBLAS does not recognise it falls
    // back to Prescott kernels, and cuvae starts again with SkylakeX / Haswell ones (main.c)
    backend_cpu_select_blas_kernels(argv);
    cpu = backend_cpu_create();
    rng_init(&test_rng, 1234, 99);
    test_run("gemm_all_transposes", test_gemm_all_transposes);
    test_run("gemm_split_within_rounding", test_gemm_split_within_rounding);
    test_run("gemm_split_is_thread_independent", test_gemm_split_is_thread_independent);
    test_run("bias_activation_gradients", test_bias_activation_gradients);
    test_run("bias_grad_blocks", test_bias_grad_blocks);
    test_run("activation_backward_bias_grad_fused", test_activation_backward_bias_grad_fused);
    test_run("reparam_and_kl_gradients", test_reparam_and_kl_gradients);
    test_run("reconstruction_loss_gradients", test_reconstruction_loss_gradients);
    test_run("kl_coefficients_are_derivatives", test_kl_coefficients_are_derivatives);
    test_run("gather_onehot", test_gather_onehot);
    test_run("importance_log_weight", test_importance_log_weight);
    test_run("gather_batch", test_gather_batch);
    test_run("accumulate_loss", test_accumulate_loss);
    test_run("adam_matches_pytorch_formula", test_adam_matches_pytorch_formula);
    test_run("learning_rate_schedules", test_learning_rate_schedules);
    test_run("grad_clip", test_grad_clip);
    test_run("adamw_and_sgd_match_pytorch_formulas", test_adamw_and_sgd_match_pytorch_formulas);
    test_run("queued_updates_equal_one_update", test_queued_updates_equal_one_update);
    test_run("queued_updates_run_beside_gemms", test_queued_updates_run_beside_gemms);
    test_run("split_gemm_cut_for_queued_updates", test_split_gemm_cut_for_queued_updates);
    test_run("cut_keeps_slices_above_minimum", test_cut_keeps_slices_above_minimum);
    test_run("rng_streams", test_rng_streams);
    test_run("permutation_uniform", test_permutation_uniform);
    test_run("philox_known_answers", test_philox_known_answers);
    test_run("fused_epsilon_equals_stored", test_fused_epsilon_equals_stored);
    test_run("eps_drawn_ahead", test_eps_drawn_ahead);
    test_run("step_state_evolution", test_step_state_evolution);
    test_run("subnormals_flushed", test_subnormals_flushed);
    test_run("bce_accuracy_dense", test_bce_accuracy_dense);
    test_run("bce_avx512_same_bits", test_bce_avx512_same_bits);
    test_run("vector_tanh", test_vector_tanh);
    cpu->destroy(cpu);
    return test_finish("test_ops_grad");
}
