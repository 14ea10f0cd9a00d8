// test_eval.c: the evaluation numbers against exact answers: the
// importance-weighted -log p(x) of a VAE with a linear Gaussian decoder
// (p(x) = N(b, W W^T + I) in closed form) and of a one-latent Bernoulli VAE (by
// quadrature), the ELBO bound, active units, KL per dimension, mu's variance, a
// VQ-VAE's code usage, and eval_elbo's reproducibility.
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

// The importance-weighted -log p(x) of the linear Gaussian VAE against its closed form, under
// reduction `reduction`: "mean" scales the rows the loss gives (rec_row = SSE / D), not the
// likelihood, so the exact -log p(x) and the estimate of it stay the same.
static void check_iw_matches_exact_log_likelihood(Reduction reduction) {
    Config cfg = linear_gaussian_config();
    cfg.loss.reduction = reduction;
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
    CHECK(r1.iw_nll > exact_nll, "K=1 is an upper bound on -log p(x)");
    // (the ELBO is one in nats only when summed: "mean" reports rec in MSE per pixel)
    CHECK(reduction == REDUCTION_MEAN || rk.elbo.loss > exact_nll, "the ELBO is an upper bound on -log p(x)");
    CHECK(rk.iw_k == 20000 && rk.iw_examples == N_EXAMPLES, "iw counts");
    CHECK(!rk.iw_is_nll, "gaussian decoder on non-binary data is not reported as an NLL of binary data");
    CHECK(test_close(rk.iw_bits_per_dim, rk.iw_nll / (D * log(2.0)), 1e-12, 0), "bits/dim");
    eval_report_free(&r1);
    eval_report_free(&rk);
    free(p);
    device_dataset_free(cpu, &dev);
    model_destroy(&m);
}

static void test_iw_matches_exact_log_likelihood(void) { check_iw_matches_exact_log_likelihood(REDUCTION_SUM); }

// The same under reduction "mean": the Gaussian log-likelihood is -0.5 SSE whatever the
// loss's pixel weight, so the estimate must undo the 1/D the rows carry (-0.5 / pixel_weight),
// else it would estimate a likelihood D times flatter and miss the exact value by nats.
static void test_iw_matches_exact_log_likelihood_mean_reduction(void) {
    check_iw_matches_exact_log_likelihood(REDUCTION_MEAN);
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
// backend says is free, refused with a line naming both and where the free bytes were read;
// unknown (0) is not refused.
static size_t fake_free_bytes;
static size_t fake_memory_available(Backend *be, char *source, size_t source_size) {
    (void)be;
    if (source) snprintf(source, source_size, "its cgroup's memory limit leaves (/fake/memory.max says 5389 bytes)");
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
    CHECK(strstr(err, "data: the images need 0.0 MiB on the cpu device") &&
          strstr(err, "more than the 0.0 MiB its cgroup's memory limit leaves (/fake/memory.max says 5389 bytes): "
                 "the whole data set lives there"),
          "the refusal names the sizes and where the free bytes were read: %s", err);
    fake_free_bytes = 0;
    CHECK(device_datasets_fit(&fake, sets, 3, err, sizeof err) == 0, "unknown free memory is not a refusal");
    // the CPU backend's number and its source are host_memory_read's (the cgroup's limit file where one binds)
    char source[HOST_MEMORY_FILE_MAX + 400] = "";
    CHECK(cpu->memory_available(cpu, NULL, 0) > 0, "the CPU backend reads the host's available memory");
    CHECK(cpu->memory_available(cpu, source, sizeof source) > 0, "... with a source asked for too");
    // (the usage in the text moves between two reads: the limit file named is what must agree)
    const HostMemory hm = host_memory_read();
    CHECK(hm.cgroup_bound ? strncmp(source, "its cgroup's memory limit leaves (", 34) == 0 && strstr(source, hm.limit_file)
                          : strcmp(source, "the machine has available") == 0,
          "the CPU backend says where its number comes from (%s): %s", hm.cgroup_bound ? hm.limit_file : "the machine",
          source);
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

// mu_variance against its definition: the means eval_encode gives of every example, their
// variance per dimension in double by two passes (1/N, as the report's). The report's one pass
// sums mu minus the first example's mu; without its "- mean^2" it would give the mean square
// about that first example instead, larger by (mean - mu_0)^2, which the counts of active units
// and a variance compared with itself do not see.
static void test_mu_variance_matches_two_pass(void) {
    Config cfg = linear_gaussian_config();
    Model m;
    char err[256];
    CHECK(model_create(&m, &cfg, cpu, 4, err, sizeof err) == 0, "create: %s", err);   // several batches
    model_init_params(&m, 4);
    uint8_t images[N_EXAMPLES * D];
    DeviceDataset dev;
    make_data(&dev, images);
    float mu[N_EXAMPLES * L];
    eval_encode(&m, &dev, N_EXAMPLES, mu);
    EvalReport r;
    CHECK(eval_report(&m, &dev, 0, 0, &r, err, sizeof err) == 0, "report: %s", err);
    for (int j = 0; j < L; j++) {
        double mean = 0, var = 0;
        for (int e = 0; e < N_EXAMPLES; e++) mean += mu[e * L + j];
        mean /= N_EXAMPLES;
        for (int e = 0; e < N_EXAMPLES; e++) var += (mu[e * L + j] - mean) * (mu[e * L + j] - mean);
        var /= N_EXAMPLES;
        const double off = (mu[j] - mean) * (mu[j] - mean);   // what a missing "- mean^2" would add
        CHECK(var > 1e-6 && off > 1e-3 * var, "dimension %d: variance %g, first mean's offset^2 %g (a weak case)",
              j, var, off);
        CHECK(test_close(r.mu_variance[j], var, 1e-6, 0), "dimension %d: mu_variance %.9g, two-pass variance %.9g",
              j, r.mu_variance[j], var);
    }
    eval_report_free(&r);
    device_dataset_free(cpu, &dev);
    model_destroy(&m);
}

// The test loss is the negative ELBO: rec + KL, the KL a VAE's positive second term, in
// eval_report's ELBO (sampled z) and eval_elbo's at z = mu alike; a loss of rec alone would
// report the reconstruction as the bound.
static void test_elbo_loss_is_rec_plus_kl(void) {
    Config cfg = linear_gaussian_config();
    Model m;
    char err[256];
    CHECK(model_create(&m, &cfg, cpu, 4, err, sizeof err) == 0, "create: %s", err);
    model_init_params(&m, 6);
    uint8_t images[N_EXAMPLES * D];
    DeviceDataset dev;
    make_data(&dev, images);
    EvalReport r;
    CHECK(eval_report(&m, &dev, 0, 0, &r, err, sizeof err) == 0, "report: %s", err);
    CHECK(r.elbo.kl > 1e-3 && r.elbo.rec > 0, "a VAE's KL %g and rec %g are positive", r.elbo.kl, r.elbo.rec);
    CHECK(test_close(r.elbo.loss, r.elbo.rec + r.elbo.kl, 1e-12, 0), "report: loss %.17g, rec + kl %.17g",
          r.elbo.loss, r.elbo.rec + r.elbo.kl);
    ElboResult zero;
    eval_elbo(&m, &dev, EPS_ZERO, &zero);
    CHECK(zero.kl > 1e-3 && test_close(zero.loss, zero.rec + zero.kl, 1e-12, 0), "z = mu: loss %.17g, rec %g + kl %g",
          zero.loss, zero.rec, zero.kl);
    CHECK(zero.examples == N_EXAMPLES && r.elbo.examples == N_EXAMPLES, "examples %ld %ld", zero.examples,
          r.elbo.examples);
    eval_report_free(&r);
    device_dataset_free(cpu, &dev);
    model_destroy(&m);
}

// EPS_SAMPLE gives example i the draws i*L .. i*L + L - 1 of the evaluation stream whatever the
// batches: a model of 4 rows (batches of 4 and 2) and one of 64 (one batch of 6) with the same
// parameters give the same sampled ELBO. A batch that restarted the stream would give examples 4
// and 5 the draws of 0 and 1, and the test loss would change with the evaluation model's rows.
static void test_sampled_elbo_independent_of_batch(void) {
    Config cfg = linear_gaussian_config();
    Model small, large;
    char err[256];
    CHECK(model_create(&small, &cfg, cpu, 4, err, sizeof err) == 0, "create: %s", err);
    CHECK(model_create(&large, &cfg, cpu, 64, err, sizeof err) == 0, "create: %s", err);
    model_init_params(&small, 8);
    float *p = xmalloc(small.n_params * sizeof(float));
    model_get_params(&small, p);
    model_set_params(&large, p);
    uint8_t images[N_EXAMPLES * D];
    DeviceDataset dev;
    make_data(&dev, images);
    ElboResult a, b, at_mu;
    eval_elbo(&small, &dev, EPS_SAMPLE, &a);
    eval_elbo(&large, &dev, EPS_SAMPLE, &b);
    eval_elbo(&large, &dev, EPS_ZERO, &at_mu);
    CHECK(fabs(a.rec - at_mu.rec) > 1e-3, "the draws matter: sampled rec %g, at z = mu %g", a.rec, at_mu.rec);
    CHECK(test_close(a.loss, b.loss, 1e-5, 0) && test_close(a.rec, b.rec, 1e-5, 0),
          "4-row batches: loss %.9g (rec %.9g); one batch: %.9g (rec %.9g)", a.loss, a.rec, b.loss, b.rec);
    free(p);
    device_dataset_free(cpu, &dev);
    model_destroy(&small);
    model_destroy(&large);
}

// log sigmoid(t) without overflow
static double log_sigmoid(double t) { return t >= 0 ? -log1p(exp(-t)) : t - log1p(exp(t)); }

// log p(x) of a decoder of one latent and Bernoulli pixels with logits w z + b:
// log of the integral over z of N(z; 0, 1) prod_d sigmoid(+-(w_d z + b_d)) (+ for a pixel of 1),
// by the trapezoid rule on [-12, 12] in steps of 1e-3 (the integrand is smooth and below
// N(12; 0, 1) ~ 1e-32 outside: the rule's error is far below the checks' tolerances).
static double bernoulli_log_px(const int *x, const double *w, const double *b, int dim) {
    const double h = 1e-3;
    double sum = 0;
    for (int i = -12000; i <= 12000; i++) {
        const double z = i * h;
        double log_f = -0.5 * z * z - 0.5 * log(2 * M_PI);
        for (int d = 0; d < dim; d++) log_f += log_sigmoid((x[d] ? 1 : -1) * (w[d] * z + b[d]));
        sum += (i == -12000 || i == 12000 ? 0.5 : 1.0) * exp(log_f);
    }
    return log(sum * h);
}

// The importance-weighted -log p(x) of a Bernoulli VAE against the exact one: three pixels, one
// latent, a linear decoder (logits w z + b), all 8 binary images, so log p(x) is a 1-D integral
// done by quadrature (its p(x) sum to 1 over the 8 images: checked). The estimate uses
// log p(x|z) = -BCE (rec_scale -1 / pixel_weight, under either reduction); at K = 20000 its
// Monte Carlo error is the relative spread of the weights p(x,z)/q(z|x) over sqrt(K), a few 1e-3
// nats for a 1-D posterior whose weights vary by a factor of a few (0.004 here), so 0.02 nats;
// a likelihood of -BCE/2 is about 1 nat off. The
// estimate is an NLL of binary data on 0/255 images only: on grey ones (a Bernoulli "likelihood"
// of soft targets) iw_is_nll is false.
static void test_bernoulli_iw_matches_quadrature(void) {
    enum { DIM = 3, N = 8, K = 20000 };
    const double w[DIM] = {2.0, -1.5, 1.0}, b[DIM] = {0.5, -0.3, 0.2};
    uint8_t images[N * DIM], grey[N * DIM], labels[N] = {0};
    double exact = 0, total_p = 0;
    for (int e = 0; e < N; e++) {
        int x[DIM];
        for (int d = 0; d < DIM; d++) {
            x[d] = (e >> d) & 1;
            images[e * DIM + d] = x[d] ? 255 : 0;
            grey[e * DIM + d] = (uint8_t)(40 + 25 * e + 30 * d);
        }
        const double lp = bernoulli_log_px(x, w, b, DIM);
        exact += lp;
        total_p += exp(lp);
    }
    const double exact_nll = -exact / N;
    CHECK(test_close(total_p, 1.0, 0, 1e-9), "the quadrature's p(x) sum to %.12g over the 8 images", total_p);
    const Reduction reductions[2] = {REDUCTION_SUM, REDUCTION_MEAN};
    for (int red = 0; red < 2; red++) {
        Config cfg = linear_gaussian_config();
        cfg.model.input_dim = DIM;
        cfg.model.latent_dim = 1;
        cfg.model.output = OUTPUT_BERNOULLI;
        cfg.loss.reconstruction = REC_BCE;
        cfg.loss.reduction = reductions[red];
        Model m;
        char err[256];
        CHECK(model_create(&m, &cfg, cpu, 4096, err, sizeof err) == 0, "create: %s", err);
        model_init_params(&m, 3);
        float *p = xmalloc(m.n_params * sizeof(float));
        model_get_params(&m, p);
        const Layer *out = &m.layers[m.n_layers - 1];   // the decoder: (DIM, 1) weights and DIM biases
        for (int d = 0; d < DIM; d++) {
            p[out->weight_offset + d] = (float)w[d];
            p[out->bias_offset + d] = (float)b[d];
        }
        model_set_params(&m, p);
        Dataset host = {.n = N, .channels = 1, .rows = 1, .cols = DIM, .dim = DIM, .images = images,
                        .labels = labels, .n_classes = 10};
        DeviceDataset dev;
        device_dataset_upload(cpu, &host, &dev);
        EvalReport r;
        CHECK(eval_report(&m, &dev, K, 0, &r, err, sizeof err) == 0, "iw: %s", err);
        fprintf(stderr, "    bernoulli (%s): exact -log p(x) %.5f | IW K=%d %.5f\n", red ? "mean" : "sum", exact_nll,
                K, r.iw_nll);
        CHECK(test_close(r.iw_nll, exact_nll, 0, 0.02), "%s: IW(K=%d) %.6f vs exact %.6f", red ? "mean" : "sum", K,
              r.iw_nll, exact_nll);
        CHECK(r.binarized && r.iw_is_nll, "0/255 images: binarized %d, an NLL of binary data %d", r.binarized,
              r.iw_is_nll);
        eval_report_free(&r);
        device_dataset_free(cpu, &dev);
        host.images = grey;
        device_dataset_upload(cpu, &host, &dev);
        CHECK(eval_report(&m, &dev, 2, 0, &r, err, sizeof err) == 0, "iw on grey images: %s", err);
        CHECK(!r.binarized && !r.iw_is_nll, "grey images: binarized %d, an NLL of binary data %d", r.binarized,
              r.iw_is_nll);
        eval_report_free(&r);
        device_dataset_free(cpu, &dev);
        free(p);
        model_destroy(&m);
    }
}

// A VQ-VAE's code usage against its definition: each example's quantized latents (eval_encode,
// (n, D, S)) matched to the codebook row they copy give the counts; codes_used is the number of
// nonzero counts and the perplexity exp(-sum p log p) of their frequencies -- a sum of -log p
// would give another number whenever two or more codes are used (checked here: a weak case
// otherwise).
static void test_vq_code_usage(void) {
    enum { N = 12 };
    const char *json =
        "{\"name\": \"vq\", \"data\": {\"dataset\": \"mnist\", \"dir\": \"unused\"}, \"model\": {"
        "\"kind\": \"vq_vae\", \"input_dim\": 64, \"latent_dim\": 3, \"encoder\": [{\"conv2d\": 3, \"kernel\": 4,"
        " \"stride\": 2, \"padding\": 1}], \"codebook\": {\"size\": 5}, \"decoder\": [{\"conv_transpose2d\": 1,"
        " \"kernel\": 4, \"stride\": 2, \"padding\": 1}]}, \"train\": {\"epochs\": 1, \"batch_size\": 3, \"lr\": 0.01}}";
    Config cfg;
    char err[1024];
    CHECK(config_from_string(&cfg, json, "vq test", NULL, 0, err, sizeof err) == 0, "config: %s", err);
    Model m;
    CHECK(model_create(&m, &cfg, cpu, 5, err, sizeof err) == 0, "create: %s", err);   // batches of 5, 5, 2
    model_init_params(&m, 2);
    const int K = m.vq_size, DQ = m.vq_dim, S = m.vq_positions;
    CHECK(K == 5 && DQ == 3 && S == 16, "K %d, D %d, S %d", K, DQ, S);
    uint8_t *images = xmalloc((size_t)N * 64), labels[N] = {0};
    Rng rng;
    rng_init(&rng, 7, 7);
    for (int i = 0; i < N * 64; i++) images[i] = (uint8_t)(rng_u32(&rng) & 255);
    Dataset host = {.n = N, .channels = 1, .rows = 8, .cols = 8, .dim = 64, .images = images, .labels = labels,
                    .n_classes = 10};
    DeviceDataset dev;
    device_dataset_upload(cpu, &host, &dev);
    EvalReport r;
    CHECK(eval_report(&m, &dev, 0, 0, &r, err, sizeof err) == 0, "report: %s", err);
    float *p = xmalloc(m.n_params * sizeof(float));
    model_get_params(&m, p);
    const float *codebook = p + m.codebook_offset;   // (K, D): update "loss" keeps it in the params
    float *zq = xmalloc((size_t)N * DQ * S * sizeof(float));
    eval_encode(&m, &dev, N, zq);
    long counts[5] = {0};
    int unmatched = 0;
    for (int e = 0; e < N; e++)
        for (int s = 0; s < S; s++) {
            int match = -1;
            for (int k = 0; k < K && match < 0; k++) {
                bool same = true;
                for (int d = 0; d < DQ; d++) same = same && zq[((size_t)e * DQ + d) * S + s] == codebook[k * DQ + d];
                if (same) match = k;
            }
            if (match < 0) unmatched++;
            else counts[match]++;
        }
    CHECK(unmatched == 0, "%d quantized latents are no codebook row", unmatched);
    CHECK(r.vq_size == K, "vq_size %d", r.vq_size);
    int used = 0;
    double entropy = 0;
    for (int k = 0; k < K; k++) {
        CHECK(r.code_counts[k] == counts[k], "code %d: counted %ld, the latents say %ld", k, r.code_counts[k],
              counts[k]);
        if (counts[k] == 0) continue;
        used++;
        const double q = (double)counts[k] / (N * S);
        entropy -= q * log(q);
    }
    CHECK(used >= 2, "only %d code(s) used: a weak case", used);
    CHECK(r.codes_used == used, "codes_used %d, nonzero counts %d", r.codes_used, used);
    CHECK(test_close(r.perplexity, exp(entropy), 1e-12, 0) && r.perplexity <= used,
          "perplexity %.17g, exp(entropy) %.17g", r.perplexity, exp(entropy));
    // data_variance: the variance of every pixel the model reads (x = pixel / 255, these grey
    // images not binarized), about its mean, by two passes in double (rec_mse_normalized's scale)
    double pixel_mean = 0.0, pixel_variance = 0.0;
    for (int i = 0; i < N * 64; i++) pixel_mean += images[i] / 255.0;
    pixel_mean /= N * 64;
    for (int i = 0; i < N * 64; i++) pixel_variance += (images[i] / 255.0 - pixel_mean) * (images[i] / 255.0 - pixel_mean);
    pixel_variance /= N * 64;
    CHECK(test_close(r.data_variance, pixel_variance, 1e-6, 0), "data_variance %.9g, the pixels' variance %.9g",
          r.data_variance, pixel_variance);
    eval_report_free(&r);
    free(zq);
    free(p);
    free(images);
    device_dataset_free(cpu, &dev);
    model_destroy(&m);
}

int main(void) {
    cpu = backend_cpu_create();
    test_run("eval_model_rows", test_eval_model_rows);
    test_run("datasets_fit", test_datasets_fit);
    test_run("iw_matches_exact_log_likelihood", test_iw_matches_exact_log_likelihood);
    test_run("iw_matches_exact_log_likelihood_mean_reduction", test_iw_matches_exact_log_likelihood_mean_reduction);
    test_run("iw_refuses_non_likelihood", test_iw_refuses_non_likelihood);
    test_run("active_units_and_kl_per_dim", test_active_units_and_kl_per_dim);
    test_run("mu_variance_with_offset", test_mu_variance_with_offset);
    test_run("mu_variance_matches_two_pass", test_mu_variance_matches_two_pass);
    test_run("elbo_loss_is_rec_plus_kl", test_elbo_loss_is_rec_plus_kl);
    test_run("sampled_elbo_independent_of_batch", test_sampled_elbo_independent_of_batch);
    test_run("bernoulli_iw_matches_quadrature", test_bernoulli_iw_matches_quadrature);
    test_run("vq_code_usage", test_vq_code_usage);
    cpu->destroy(cpu);
    return test_finish("test_eval");
}
