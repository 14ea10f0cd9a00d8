// test_eval.c: the evaluation numbers against exact answers: the
// importance-weighted -log p(x) of a VAE with a linear Gaussian decoder
// (p(x) = N(b, W W^T + I) in closed form), the ELBO bound, active units,
// KL per dimension, and eval_elbo's reproducibility.
#include "cuvae/backend.h"
#include "cuvae/common.h"
#include "cuvae/eval.h"
#include "cuvae/model.h"
#include "cuvae/rng.h"
#include "test.h"

#include <stdlib.h>

static Backend *cpu;

#define D 5
#define L 2
#define N_EXAMPLES 6

static Config linear_gaussian_config(void) {
    Config c;
    memset(&c, 0, sizeof c);
    snprintf(c.name, sizeof c.name, "linear-gaussian");
    c.model.kind = MODEL_VAE;
    c.model.input_dim = D;
    c.model.n_encoder = 1;
    c.model.encoder[0] = 4;
    c.model.latent_dim = L;
    c.model.n_decoder = 0;          // decoder: x = W z + b, unit-variance Gaussian
    c.model.activation = ACT_TANH;
    c.model.output = OUTPUT_GAUSSIAN;
    c.loss.reconstruction = REC_MSE;
    c.loss.reduction = REDUCTION_SUM;
    c.loss.w_rec = 1;
    c.loss.w_kl = 1;
    c.train.batch_size = 64;
    c.train.seed = 3;
    c.eval.iw_batch = 4096;
    return c;
}

// log N(x; b, W W^T + I) by Cholesky, in double
static double exact_log_px(const double *x, const double *W /* (D, L) */, const double *b) {
    double S[D][D], Lc[D][D] = {{0}};
    for (int i = 0; i < D; i++)
        for (int j = 0; j < D; j++) {
            double s = i == j ? 1.0 : 0.0;
            for (int k = 0; k < L; k++) s += W[i * L + k] * W[j * L + k];
            S[i][j] = s;
        }
    for (int i = 0; i < D; i++)
        for (int j = 0; j <= i; j++) {
            double s = S[i][j];
            for (int k = 0; k < j; k++) s -= Lc[i][k] * Lc[j][k];
            Lc[i][j] = i == j ? sqrt(s) : s / Lc[j][j];
        }
    double y[D], logdet = 0, quad = 0;
    for (int i = 0; i < D; i++) {
        double s = x[i] - b[i];
        for (int k = 0; k < i; k++) s -= Lc[i][k] * y[k];
        y[i] = s / Lc[i][i];
        quad += y[i] * y[i];
        logdet += 2 * log(Lc[i][i]);
    }
    return -0.5 * (quad + logdet + D * log(2 * M_PI));
}

static void make_data(DeviceDataset *dev, uint8_t *images) {
    Rng rng;
    rng_init(&rng, 5, 5);
    for (int i = 0; i < N_EXAMPLES * D; i++) images[i] = (uint8_t)(rng_u32(&rng) & 255);
    uint8_t labels[N_EXAMPLES] = {0};
    Dataset host = {.n = N_EXAMPLES, .channels = 1, .rows = 1, .cols = D, .dim = D, .images = images, .labels = labels,
                    .n_classes = 10};
    device_dataset_upload(cpu, &host, dev);
}

static void test_iw_matches_exact_log_likelihood(void) {
    Config cfg = linear_gaussian_config();
    Model m;
    char err[256];
    CHECK(model_create(&m, &cfg, cpu, 4096, err, sizeof err) == 0, "create: %s", err);
    model_init_params(&m, 9);
    uint8_t images[N_EXAMPLES * D];
    DeviceDataset dev;
    make_data(&dev, images);

    // the decoder's W (D, L) and b (D) straight from the arena
    float *p = xmalloc(m.n_params * sizeof(float));
    model_get_params(&m, p);
    const Layer *out = &m.layers[m.n_layers - 1];
    double W[D * L], b[D];
    for (int i = 0; i < D * L; i++) W[i] = p[out->weight_offset + i];
    for (int i = 0; i < D; i++) b[i] = p[out->bias_offset + i];
    double exact = 0;
    for (int e = 0; e < N_EXAMPLES; e++) {
        double x[D];
        for (int i = 0; i < D; i++) x[i] = images[e * D + i] / 255.0;
        exact += exact_log_px(x, W, b);
    }
    double exact_nll = -exact / N_EXAMPLES;

    EvalReport r1, rk;
    CHECK(eval_report(&m, &dev, 1, 0, &r1, err, sizeof err) == 0, "iw K=1: %s", err);
    CHECK(eval_report(&m, &dev, 20000, 0, &rk, err, sizeof err) == 0, "iw K=20000: %s", err);
    fprintf(stderr, "    exact -log p(x) %.4f | IW K=20000 %.4f | K=1 %.4f | ELBO %.4f\n", exact_nll,
            rk.iw_nll, r1.iw_nll, rk.elbo.loss);
    CHECK(test_close(rk.iw_nll, exact_nll, 0, 0.02), "IW(K=20000) %g vs exact %g", rk.iw_nll, exact_nll);
    CHECK(r1.iw_nll > exact_nll && rk.elbo.loss > exact_nll, "K=1 and ELBO are upper bounds on -log p(x)");
    CHECK(rk.iw_k == 20000 && rk.iw_examples == N_EXAMPLES, "iw counts");
    CHECK(!rk.iw_is_nll, "gaussian decoder on non-binary data is not reported as an NLL of binary data");
    CHECK(test_close(rk.iw_bits_per_dim, rk.iw_nll / (D * log(2.0)), 1e-12, 0), "bits/dim");
    eval_report_free(&r1);
    eval_report_free(&rk);
    free(p);
    device_dataset_free(cpu, &dev);
    model_destroy(&m);
}

static void test_iw_refuses_non_likelihood(void) {
    Config cfg = linear_gaussian_config();
    cfg.model.output = OUTPUT_BERNOULLI;   // mse on sigmoid: no likelihood
    Model m;
    char err[256] = "";
    model_create(&m, &cfg, cpu, 64, err, sizeof err);
    model_init_params(&m, 1);
    uint8_t images[N_EXAMPLES * D];
    DeviceDataset dev;
    make_data(&dev, images);
    EvalReport r;
    CHECK(eval_report(&m, &dev, 10, 0, &r, err, sizeof err) == -1, "refused");
    CHECK(strstr(err, "eval.iw_samples") != NULL, "error names the key: %s", err);
    eval_report_free(&r);
    device_dataset_free(cpu, &dev);
    model_destroy(&m);
}

// The model's parameters (returned, malloc'd) with latent dimension 1 dead -- the rows of the mu
// head that produce it zeroed, its bias set to dead_mu -- and dimension 0's rows scaled by 20.
static float *with_dead_dimension_one(Model *m, float dead_mu) {
    float *p = xmalloc(m->n_params * sizeof(float));
    model_get_params(m, p);
    const Layer *head = &m->layers[m->head];
    for (int k = 0; k < head->in; k++) p[head->weight_offset + 1 * head->in + k] = 0.0f;
    for (int k = 0; k < head->in; k++) p[head->weight_offset + 0 * head->in + k] *= 20.0f;
    if (dead_mu != 0.0f) p[head->bias_offset + 1] = dead_mu;
    model_set_params(m, p);
    return p;
}

static void test_active_units_and_kl_per_dim(void) {
    Config cfg = linear_gaussian_config();
    Model m;
    char err[256];
    model_create(&m, &cfg, cpu, 4, err, sizeof err);   // several batches
    model_init_params(&m, 2);
    float *p = with_dead_dimension_one(&m, 0.0f);
    uint8_t images[N_EXAMPLES * D];
    DeviceDataset dev;
    make_data(&dev, images);
    EvalReport r;
    CHECK(eval_report(&m, &dev, 0, 0, &r, err, sizeof err) == 0, "report: %s", err);
    CHECK(r.mu_variance[1] < 1e-10 && r.mu_variance[0] > ACTIVE_UNIT_THRESHOLD, "variances %g %g",
          r.mu_variance[0], r.mu_variance[1]);
    CHECK(r.active_units == 1, "one active unit, got %d", r.active_units);
    double kl_sum = r.kl_per_dim[0] + r.kl_per_dim[1];
    CHECK(test_close(kl_sum, r.elbo.kl, 1e-4, 1e-6), "KL per dim sums to the KL: %g vs %g", kl_sum, r.elbo.kl);
    CHECK(isnan(r.rec_bce) && r.rec_mse > 0, "gaussian decoder: no BCE, some MSE");
    // the same numbers twice (fixed evaluation stream)
    ElboResult a, b2;
    eval_elbo(&m, &dev, EPS_SAMPLE, &a);
    eval_elbo(&m, &dev, EPS_SAMPLE, &b2);
    CHECK(a.loss == b2.loss && a.loss == r.elbo.loss, "eval_elbo is reproducible");
    char *json = eval_report_json(&r, &cfg, "cpu");
    CHECK(strstr(json, "\"active_units\": 1") && strstr(json, "\"kl_per_dim\": [") &&
          strstr(json, "\"rec_bce_at_mean\": null"), "json: %s", json);
    // the per-dimension numbers to 9 significant digits (6 decimals made a dead dimension's 1e-8
    // variance, and a large latent's 1e-6 nats, zeros)
    const char *lists[2] = {"\"kl_per_dim\": [", "\"mu_variance\": ["};
    const double *values[2] = {r.kl_per_dim, r.mu_variance};
    for (int l = 0; l < 2; l++) {
        const char *at = strstr(json, lists[l]);
        CHECK(at != NULL, "no %s in the JSON", lists[l]);
        for (int d = 0; at && d < 2; d++) {
            char *end;
            const double v = strtod(at + (d == 0 ? strlen(lists[l]) : 1), &end);
            CHECK(fabs(v - values[l][d]) <= 1e-8 * fabs(values[l][d]), "%s%d: %.17g in the JSON, %.17g", lists[l],
                  d, v, values[l][d]);
            at = end;
        }
    }
    free(json);
    // one test example: a variance over it says nothing, so active units are n/a (JSON null), not 0
    const int n_all = dev.n;
    dev.n = 1;
    EvalReport one;
    CHECK(eval_report(&m, &dev, 0, 0, &one, err, sizeof err) == 0, "report of one example: %s", err);
    CHECK(one.active_units == -1, "one example: active units n/a (-1), got %d", one.active_units);
    char *json_one = eval_report_json(&one, &cfg, "cpu");
    CHECK(strstr(json_one, "\"active_units\": null, \"active_threshold\""), "json of one example: %s", json_one);
    free(json_one);
    eval_report_free(&one);
    dev.n = n_all;
    eval_report_free(&r);
    free(p);
    device_dataset_free(cpu, &dev);
    model_destroy(&m);
}

// device_datasets_fit: the bytes of every set (images + labels) against what the
// backend says is free, refused with a line naming both; unknown (0) is not refused.
static size_t fake_free_bytes;
static size_t fake_memory_available(Backend *be) {
    (void)be;
    return fake_free_bytes;
}

static void test_datasets_fit(void) {
    Backend fake = *cpu;
    fake.memory_available = fake_memory_available;
    Dataset a = {.n = 100, .channels = 3, .rows = 4, .cols = 4, .dim = 48};
    Dataset b = {.n = 10, .channels = 3, .rows = 4, .cols = 4, .dim = 48};
    const Dataset *sets[3] = {&a, NULL, &b};   // need (100 + 10) x 49 = 5,390 bytes
    char err[512] = "";
    fake_free_bytes = 5390;
    CHECK(device_datasets_fit(&fake, sets, 3, err, sizeof err) == 0, "exactly enough fits: %s", err);
    fake_free_bytes = 5389;
    CHECK(device_datasets_fit(&fake, sets, 3, err, sizeof err) == -1, "one byte short is refused");
    CHECK(strstr(err, "data: the images need 0.0 MiB on the cpu device") && strstr(err, "are free"),
          "the refusal names the sizes: %s", err);
    fake_free_bytes = 0;
    CHECK(device_datasets_fit(&fake, sets, 3, err, sizeof err) == 0, "unknown free memory is not a refusal");
    CHECK(cpu->memory_available(cpu) > 0, "the CPU backend reads the host's available memory");
}

// The evaluation model's rows: the cap, cut to what one batch of the evaluation can hold.
static void test_eval_model_rows(void) {
    CHECK(eval_model_rows(1000, 10000, 0, 0, 0) == 1000, "a large test set: the cap");
    CHECK(eval_model_rows(1000, 8, 0, 0, 0) == 8, "8 test images: 8 rows, not 1000");
    CHECK(eval_model_rows(4096, 20, 10, 0, 0) == 200, "K = 10 over 20 images: 200 rows");
    CHECK(eval_model_rows(4096, 20, 10, 5, 0) == 50, "K = 10 over the first 5 of them: 50 rows (the ELBO's 20 fit)");
    CHECK(eval_model_rows(4096, 20, 1, 5, 0) == 20, "K = 1 over 5: the ELBO over all 20 needs 20 rows");
    CHECK(eval_model_rows(4096, 20, 500, 30, 0) == 4096, "K = 500 over 20 (30 asked for): the cap");
    CHECK(eval_model_rows(1000, 8, 0, 0, 300) == 300, "a gan's 300 Parzen samples over 8 test images: 300 rows");
    CHECK(eval_model_rows(1000, 8, 0, 0, 10000) == 1000, "10,000 Parzen samples: the cap");
    CHECK(eval_model_rows(1000, 0, 0, 0, 0) == 1, "at least one row");
}

// Codes with a large common offset: a dead dimension whose mu is 123456792 (a float) for every
// one of 10,000 examples has variance 0 -- sum(mu^2)/n - mean^2 left about 142 of it (cancellation)
// and counted it active -- and a live one keeps its variance when shifted by 1e4.
static void test_mu_variance_with_offset(void) {
    enum { N = 10000 };
    Config cfg = linear_gaussian_config();
    Model m;
    char err[256];
    CHECK(model_create(&m, &cfg, cpu, 512, err, sizeof err) == 0, "create: %s", err);
    model_init_params(&m, 2);
    float *p = with_dead_dimension_one(&m, 1.2345679e8f);
    const Layer *head = &m.layers[m.head];
    uint8_t *images = xmalloc((size_t)N * D);
    uint8_t *labels = xcalloc(N, 1);
    Rng rng;
    rng_init(&rng, 5, 5);
    for (int i = 0; i < N * D; i++) images[i] = (uint8_t)(rng_u32(&rng) & 255);
    Dataset host = {.n = N, .channels = 1, .rows = 1, .cols = D, .dim = D, .images = images, .labels = labels,
                    .n_classes = 10};
    DeviceDataset dev;
    device_dataset_upload(cpu, &host, &dev);
    EvalReport r;
    CHECK(eval_report(&m, &dev, 0, 0, &r, err, sizeof err) == 0, "report: %s", err);
    CHECK(r.mu_variance[1] == 0.0 && r.active_units == 1, "dead dimension at an offset: variance %g, %d active",
          r.mu_variance[1], r.active_units);
    const double live = r.mu_variance[0];
    eval_report_free(&r);
    p[head->bias_offset + 0] += 1e4f;
    model_set_params(&m, p);
    CHECK(eval_report(&m, &dev, 0, 0, &r, err, sizeof err) == 0, "report: %s", err);
    CHECK(live > ACTIVE_UNIT_THRESHOLD && test_close(r.mu_variance[0], live, 1e-3, 0),
          "live dimension shifted by 1e4: variance %g vs %g", r.mu_variance[0], live);
    eval_report_free(&r);
    device_dataset_free(cpu, &dev);
    free(images);
    free(labels);
    free(p);
    model_destroy(&m);
}

int main(void) {
    cpu = backend_cpu_create();
    test_run("eval_model_rows", test_eval_model_rows);
    test_run("datasets_fit", test_datasets_fit);
    test_run("iw_matches_exact_log_likelihood", test_iw_matches_exact_log_likelihood);
    test_run("iw_refuses_non_likelihood", test_iw_refuses_non_likelihood);
    test_run("active_units_and_kl_per_dim", test_active_units_and_kl_per_dim);
    test_run("mu_variance_with_offset", test_mu_variance_with_offset);
    cpu->destroy(cpu);
    return test_finish("test_eval");
}
