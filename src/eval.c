// eval.c: the dataset upload and every evaluation number: the ELBO (test loss,
// rec, KL in nats per example) used after each epoch and by `cuvae eval`, active
// units, KL per dimension, reconstruction errors, and the importance-weighted
// -log p(x) (Burda et al. 2015).
#include "cuvae/eval.h"
#include "cuvae/distributed.h"
#include "cuvae/common.h"
#include "cuvae/rng.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EVAL_SEED_SALT 0x5EEDE7A1ull
#define EVAL_IW_SEED_SALT 0x1A7E5EEDull
#define EVAL_PARZEN_SEED_SALT 0x9A125E4Dull

void device_dataset_upload(Backend *be, const Dataset *host, DeviceDataset *out) {
    out->n = host->n;
    out->dim = host->dim;
    size_t image_bytes = (size_t)host->n * host->dim;
    out->images = be->alloc(be, image_bytes ? image_bytes : 1);
    out->labels = be->alloc(be, host->n ? (size_t)host->n : 1);
    be->upload(be, out->images, host->images, image_bytes);
    be->upload(be, out->labels, host->labels, (size_t)host->n);
    out->binary = image_bytes > 0;
    for (size_t i = 0; i < image_bytes && out->binary; i++)
        out->binary = host->images[i] == 0 || host->images[i] == 255;
}

int device_datasets_fit(Backend *be, const Dataset *const *sets, int n_sets, char *err, size_t errlen) {
    size_t need = 0;
    for (int i = 0; i < n_sets; i++)
        if (sets[i]) need += (size_t)sets[i]->n * ((size_t)sets[i]->dim + 1);
    char source[HOST_MEMORY_FILE_MAX + 400] = "";
    size_t available = be->memory_available ? be->memory_available(be, source, sizeof source) : 0;
    if (available == 0 || need <= available) return 0;
    return set_error(err, errlen, "data: the images need %.1f MiB on the %s device (%s), more than the %.1f MiB %s: "
                     "the whole data set lives there as uint8; use data.train_limit, smaller images or a larger device",
                     need / 1048576.0, be->name, be->device_name, available / 1048576.0, source);
}

void device_dataset_free(Backend *be, DeviceDataset *d) {
    be->free(be, d->images);
    be->free(be, d->labels);
    memset(d, 0, sizeof *d);
}

void eval_prepare_test_set(const Config *cfg, Dataset *test) {
    if (cfg->data.binarize == BINARIZE_DYNAMIC)
        dataset_binarize_static(test, cfg->train.seed ^ TEST_SET_BINARIZE_SALT, TEST_SET_BINARIZE_STREAM);
}

// Loads rows [start, start + B) of data (through perm if given) into m->x and the condition.
static void load_batch(Model *m, const DeviceDataset *data, const int32_t *perm, int start, int B) {
    Backend *be = m->be;
    be->gather_batch(be, m->x, data->images, perm, start, NULL, B, data->dim, false, 0);
    if (m->onehot) be->gather_onehot(be, m->onehot, data->labels, perm, start, NULL, B, m->n_classes);
}

// The examples a test-set pass takes at a time (EVAL_PASS_ROWS, fewer in a smaller model).
static int pass_rows(const Model *m) { return m->max_batch < EVAL_PASS_ROWS ? m->max_batch : EVAL_PASS_ROWS; }

// The sums over the batches first_batch, first_batch + batch_step, ... of data.
static void elbo_sums(Model *m, const DeviceDataset *data, EpsMode eps_mode, int first_batch, int batch_step,
                      double sums[3]) {
    uint64_t saved_seed = m->rng_seed, saved_offset = m->rng_offset;
    m->rng_seed = m->cfg.train.seed ^ EVAL_SEED_SALT;
    m->rng_offset = 0;
    const int rows = pass_rows(m);
    for (int start = first_batch * rows; start < data->n; start += batch_step * rows) {
        int B = data->n - start < rows ? data->n - start : rows;
        load_batch(m, data, NULL, start, B);
        // example i always gets draws i*L .. i*L + L - 1, whatever the batch size
        m->rng_offset = (uint64_t)start * (uint64_t)m->latent_dim;
        if (m->autoregressive) {   // made: the exact -log p(x) (of the mask ensemble)
            model_made_ensemble_loss(m, B);
        } else {
            model_forward(m, B, eps_mode == EPS_SAMPLE ? EPS_DRAW : eps_mode);
            model_loss(m, B);
        }
        model_accumulate_loss(m, B);
    }
    model_read_loss(m, &sums[0], &sums[1], &sums[2]);
    m->rng_seed = saved_seed;
    m->rng_offset = saved_offset;
}

static void elbo_result(const double sums[3], ElboResult *out) {
    const double rec = sums[0], kl = sums[1], count = sums[2];
    out->examples = (long)count;
    out->rec = count > 0 ? rec / count : 0.0;
    out->kl = count > 0 ? kl / count : 0.0;
    out->loss = out->rec + out->kl;
}

void eval_elbo(Model *m, const DeviceDataset *data, EpsMode eps_mode, ElboResult *out) {
    double sums[3];
    elbo_sums(m, data, eps_mode, 0, 1, sums);
    elbo_result(sums, out);
}

void eval_elbo_ranks(Model *m, const DeviceDataset *data, EpsMode eps_mode, ElboResult *out) {
    double sums[3];
    elbo_sums(m, data, eps_mode, dist_rank(), dist_size(), sums);
    dist_sum_doubles(sums, 3, "evaluation sums");
    elbo_result(sums, out);
}

void eval_encode(Model *m, const DeviceDataset *data, int n, float *mu) {
    Backend *be = m->be;
    const int L = m->latent_dim;
    if (m->vq) {   // the quantized latents z_q (n, D S)
        if (n > data->n) n = data->n;
        for (int start = 0; start < n; start += pass_rows(m)) {
            int B = n - start < pass_rows(m) ? n - start : pass_rows(m);
            load_batch(m, data, NULL, start, B);
            model_forward(m, B, EPS_ZERO);
            be->download(be, mu + (size_t)start * L, m->z, (size_t)B * L * sizeof(float));
        }
        return;
    }
    const int head_width = m->layers[m->head].out;   // 2L (vae) or L (ae)
    float *head = xmalloc((size_t)m->max_batch * head_width * sizeof(float));
    if (n > data->n) n = data->n;
    for (int start = 0; start < n; start += pass_rows(m)) {
        int B = n - start < pass_rows(m) ? n - start : pass_rows(m);
        load_batch(m, data, NULL, start, B);
        model_forward(m, B, EPS_ZERO);
        be->download(be, head, model_head(m), (size_t)B * head_width * sizeof(float));
        for (int b = 0; b < B; b++)
            memcpy(mu + (size_t)(start + b) * L, head + (size_t)b * head_width, L * sizeof(float));
    }
    free(head);
}

void eval_encode_draws(Model *m, const DeviceDataset *data, int n, float *z) {
    Backend *be = m->be;
    const int L = m->latent_dim;
    const uint64_t saved_seed = m->rng_seed, saved_offset = m->rng_offset;
    m->rng_seed = m->cfg.train.seed ^ EVAL_SEED_SALT;   // elbo_sums' stream: example i, draws i*L ..
    if (n > data->n) n = data->n;
    for (int start = 0; start < n; start += pass_rows(m)) {
        int B = n - start < pass_rows(m) ? n - start : pass_rows(m);
        load_batch(m, data, NULL, start, B);
        m->rng_offset = (uint64_t)start * (uint64_t)L;
        model_forward(m, B, EPS_DRAW);
        be->download(be, z + (size_t)start * L, m->z, (size_t)B * L * sizeof(float));   // (B, L)
    }
    m->rng_seed = saved_seed;
    m->rng_offset = saved_offset;
}

// log p(x|z) = rec_scale * rec_row + rec_const, or -1 when the decoder has no likelihood.
static int likelihood_form(const Model *m, float *rec_scale, float *rec_const) {
    if (m->rec_loss == RECLOSS_BCE_LOGITS) {
        *rec_scale = -1.0f / m->pixel_weight;
        *rec_const = 0.0f;
        return 0;
    }
    if (m->rec_loss == RECLOSS_MSE_IDENTITY) {   // unit-variance Gaussian; rec_row = pw * sum (x-g)^2
        *rec_scale = -0.5f / m->pixel_weight;
        *rec_const = (float)(-0.5 * m->input_dim * log(2.0 * M_PI));
        return 0;
    }
    return -1;
}

static int importance_weighted(Model *m, const DeviceDataset *data, int K, int n_examples,
                               EvalReport *r, char *err, size_t errlen) {
    Backend *be = m->be;
    float rec_scale, rec_const;
    if (!m->variational)
        return set_error(err, errlen, "the importance-weighted bound (eval --iw, eval.iw_samples) needs a variational "
                         "model (kind vae or cvae), got kind \"%s\"", model_kind_name(m->cfg.model.kind));
    if (likelihood_form(m, &rec_scale, &rec_const) != 0)
        return set_error(err, errlen, "the importance-weighted bound (eval --iw, eval.iw_samples) needs a decoder "
                         "likelihood: loss.reconstruction \"bce\", or \"mse\" with model.output \"gaussian\"");
    double start_time = wall_seconds();
    long N = n_examples > 0 && n_examples < data->n ? n_examples : data->n;
    if (n_examples > data->n)   // said, not clamped silently
        fprintf(stderr, "cuvae: importance sampling: %d examples asked for, the test set has %d: using %d\n",
                n_examples, data->n, data->n);
    long total_rows = N * (long)K;
    // eval.iw_batch rows at a time (the model holds at least a test pass's EVAL_PASS_ROWS)
    int rows_per_batch = m->max_batch < m->cfg.eval.iw_batch ? m->max_batch : m->cfg.eval.iw_batch;
    int32_t *perm_host = xmalloc((size_t)rows_per_batch * sizeof(int32_t));
    int32_t *perm_dev = be->alloc(be, (size_t)rows_per_batch * sizeof(int32_t));
    float *logw_dev = be->alloc(be, (size_t)rows_per_batch * sizeof(float));
    float *logw = xmalloc((size_t)rows_per_batch * sizeof(float));
    double *lse_max = xmalloc((size_t)N * sizeof(double));
    double *lse_sum = xcalloc((size_t)N, sizeof(double));
    for (long i = 0; i < N; i++) lse_max[i] = -INFINITY;

    uint64_t saved_seed = m->rng_seed, saved_offset = m->rng_offset;
    m->rng_seed = m->cfg.train.seed ^ EVAL_IW_SEED_SALT;
    m->rng_offset = 0;
    Progress progress;
    progress_begin(&progress, "importance-weighted -log p(x), samples");
    for (long row0 = 0; row0 < total_rows; row0 += rows_per_batch) {
        progress_update(&progress, row0, total_rows);
        int B = total_rows - row0 < rows_per_batch ? (int)(total_rows - row0) : rows_per_batch;
        for (int b = 0; b < B; b++) perm_host[b] = (int32_t)((row0 + b) / K);
        be->upload(be, perm_dev, perm_host, (size_t)B * sizeof(int32_t));
        load_batch(m, data, perm_dev, 0, B);
        // the draws are stored: the importance weight reads them again
        be->fill_normal(be, model_eps_buffer(m), (size_t)B * m->latent_dim, m->rng_seed,
                        m->rng_offset, NULL);
        m->rng_offset += (uint64_t)B * (uint64_t)m->latent_dim;
        model_forward(m, B, EPS_GIVEN);
        model_loss(m, B);
        be->importance_log_weight(be, logw_dev, m->rec_row, model_head(m), m->eps, B,
                                  m->latent_dim, rec_scale, rec_const);
        be->download(be, logw, logw_dev, (size_t)B * sizeof(float));
        // streaming log-sum-exp per example, in double
        for (int b = 0; b < B; b++) {
            long ex = (row0 + b) / K;
            double v = logw[b];
            if (v == -INFINITY) continue;             // a zero weight adds nothing
            if (v > lse_max[ex]) {
                lse_sum[ex] = lse_sum[ex] * exp(lse_max[ex] - v) + 1.0;
                lse_max[ex] = v;
            } else {
                lse_sum[ex] += exp(v - lse_max[ex]);
            }
        }
    }
    progress_end(&progress);
    m->rng_seed = saved_seed;
    m->rng_offset = saved_offset;
    double total = 0.0;
    for (long i = 0; i < N; i++) total += lse_max[i] + log(lse_sum[i]) - log((double)K);
    r->iw_k = K;
    r->iw_examples = N;
    r->iw_nll = -total / (double)N;
    r->iw_bits_per_dim = r->iw_nll / (m->input_dim * log(2.0));
    r->iw_is_nll = r->binarized && m->rec_loss == RECLOSS_BCE_LOGITS;
    r->iw_seconds = wall_seconds() - start_time;
    free(perm_host);
    free(logw);
    free(lse_max);
    free(lse_sum);
    be->free(be, perm_dev);
    be->free(be, logw_dev);
    return 0;
}

// After a deterministic forward of B examples: adds their reconstruction errors, each summed
// over the pixels, to *bce (a Bernoulli decoder's; left alone otherwise) and *sse.
// rows: (B) host scratch.
static void add_reconstruction_errors(Model *m, int B, float *rows, double *bce, double *sse) {
    Backend *be = m->be;
    const bool bernoulli = m->cfg.model.output == OUTPUT_BERNOULLI;
    if (bernoulli) {
        be->reconstruction_loss(be, NULL, m->rec_row, model_output(m), m->x, B, m->input_dim, RECLOSS_BCE_LOGITS,
                                1.0f, 0.0f);
        be->download(be, rows, m->rec_row, (size_t)B * sizeof(float));
        for (int b = 0; b < B; b++) *bce += rows[b];
    }
    be->reconstruction_loss(be, NULL, m->rec_row, model_output(m), m->x, B, m->input_dim,
                            bernoulli ? RECLOSS_MSE_SIGMOID : RECLOSS_MSE_IDENTITY, 1.0f, 0.0f);
    be->download(be, rows, m->rec_row, (size_t)B * sizeof(float));
    for (int b = 0; b < B; b++) *sse += rows[b];
}

// Whether the sums add_reconstruction_errors gave overflowed (EvalReport.outputs_overflow).
static bool reconstruction_overflows(const Model *m, double bce, double sse) {
    return !isfinite(sse) || (m->cfg.model.output == OUTPUT_BERNOULLI && !isfinite(bce));
}

// A VQ-VAE's report beyond the losses: which codes the evaluation set uses, the
// reconstruction errors at the codes (its forward is deterministic), and the mean squared
// error per pixel over the data's variance.
static void vq_report(Model *m, const DeviceDataset *data, EvalReport *r) {
    Backend *be = m->be;
    const int K = m->vq_size, S = m->vq_positions, D = m->input_dim;
    r->vq_size = K;
    r->code_counts = xcalloc((size_t)K, sizeof(long));
    int32_t *codes = xmalloc((size_t)m->max_batch * S * sizeof(int32_t));
    float *x = xmalloc((size_t)m->max_batch * D * sizeof(float)), *rows = xmalloc((size_t)m->max_batch * sizeof(float));
    double sum = 0.0, sum_sq = 0.0, sse = 0.0, bce = 0.0;
    for (int start = 0; start < data->n; start += pass_rows(m)) {
        int B = data->n - start < pass_rows(m) ? data->n - start : pass_rows(m);
        load_batch(m, data, NULL, start, B);
        model_forward(m, B, EPS_ZERO);
        model_vq_read_codes(m, B, codes);
        for (long i = 0; i < (long)B * S; i++) r->code_counts[codes[i]]++;
        be->download(be, x, m->x, (size_t)B * D * sizeof(float));
        for (size_t i = 0; i < (size_t)B * D; i++) {
            sum += x[i];
            sum_sq += (double)x[i] * x[i];
        }
        add_reconstruction_errors(m, B, rows, &bce, &sse);
    }
    double total = 0.0, entropy = 0.0, pixels = (double)data->n * D;
    for (int k = 0; k < K; k++) total += (double)r->code_counts[k];
    for (int k = 0; k < K; k++) {
        if (r->code_counts[k] == 0) continue;
        r->codes_used++;
        double p = (double)r->code_counts[k] / total;
        entropy -= p * log(p);
    }
    r->perplexity = exp(entropy);
    double mean = pixels > 0 ? sum / pixels : 0.0;
    r->data_variance = pixels > 0 ? sum_sq / pixels - mean * mean : 0.0;
    r->rec_mse = data->n > 0 ? sse / data->n : 0.0;
    r->rec_mse_normalized = r->data_variance > 0 ? (sse / pixels) / r->data_variance : NAN;
    r->rec_bce = m->cfg.model.output == OUTPUT_BERNOULLI && data->n > 0 ? bce / data->n : NAN;
    r->outputs_overflow = reconstruction_overflows(m, bce, sse);
    free(codes);
    free(x);
    free(rows);
}

int eval_check_finite(double test_loss, bool outputs_overflow, bool at_codes, const char *who, char *err,
                      size_t errlen) {
    if (!isfinite(test_loss))
        return set_error(err, errlen, "%s: the test loss is not finite (%g): the model has diverged (its weights are "
                         "finite, its outputs overflow)", who, nan_unsigned(test_loss));
    if (outputs_overflow)   // (float row sums: logits of 1e36 overflow them as well as infinite ones)
        return set_error(err, errlen, "%s: the reconstruction error at %s is not finite though the test loss is (the "
                         "decoder's outputs overflow): the model has diverged (its weights are finite)", who,
                         at_codes ? "the codes" : "z = μ");
    return 0;
}

int eval_model_rows(int cap, int test_examples, int iw_k, int iw_examples, int parzen_samples) {
    long long needed = test_examples;
    if (iw_k > 0) {
        const long long examples = iw_examples > 0 && iw_examples < test_examples ? iw_examples : test_examples;
        if (examples * iw_k > needed) needed = examples * iw_k;
    }
    if (parzen_samples > needed) needed = parzen_samples;
    if (needed < 1) needed = 1;
    const long long pass = test_examples < EVAL_PASS_ROWS ? (test_examples > 0 ? test_examples : 1) : EVAL_PASS_ROWS;
    if (needed > cap) needed = cap;
    return (int)(needed > pass ? needed : pass);
}

int eval_iw_applies(const Config *cfg, int iw_k, char *err, size_t errlen) {
    if (iw_k <= 0) return 0;
    const ModelKindInfo *kind = model_kind_info(cfg->model.kind);
    if (kind->autoregressive)
        return set_error(err, errlen, "eval --iw: kind \"%s\" has an exact -log p(%s), its test loss: nothing to "
                         "estimate", kind->name, cfg->model.prior_of[0] ? "codes" : "x");
    if (kind->iw_refusal) return set_error(err, errlen, "eval --iw: %s", kind->iw_refusal);
    return 0;
}

int eval_report(Model *m, const DeviceDataset *data, int iw_k, int iw_examples,
                EvalReport *r, char *err, size_t errlen) {
    Backend *be = m->be;
    memset(r, 0, sizeof *r);
    if (eval_iw_applies(&m->cfg, iw_k, err, errlen) != 0) return -1;
    if (m->gan) {   // the discriminator's losses; the Parzen estimate is eval_parzen's
        r->gan = true;
        r->binarized = data->binary;
        eval_elbo(m, data, EPS_SAMPLE, &r->elbo);
        r->rec_bce = NAN;
        r->rec_mse = NAN;
        return 0;
    }
    if (m->autoregressive) {   // made, pixelcnn: the test loss is the exact -log p(x); no latent
        r->binarized = m->prior_classes == 0 && data->binary;   // a prior's data are codes
        eval_elbo(m, data, EPS_ZERO, &r->elbo);
        r->exact_nll = true;
        r->rec_bce = r->elbo.rec;
        r->rec_mse = NAN;
        r->bits_per_dim = r->elbo.rec / (m->input_dim * log(2.0));
        r->prior_positions = m->prior_classes ? m->input_dim : 0;
        return 0;
    }
    if (m->vq) {   // no latent distribution: code usage instead of active units
        r->binarized = data->binary;
        eval_elbo(m, data, EPS_ZERO, &r->elbo);
        vq_report(m, data, r);
        return 0;
    }
    const int L = m->latent_dim;
    r->latent_dim = L;
    r->binarized = data->binary;
    eval_elbo(m, data, EPS_SAMPLE, &r->elbo);
    if (m->aae) {   // the test loss is the reconstruction; the second sum its discriminator's loss
        r->aae = true;
        r->elbo.loss = r->elbo.rec;
    }

    // deterministic pass (z = mu): codes, KL per dimension, reconstruction errors
    const int head_width = m->layers[m->head].out;
    float *head = xmalloc((size_t)m->max_batch * head_width * sizeof(float));
    float *rows = xmalloc((size_t)m->max_batch * sizeof(float));
    // the sums of mu - shift and its square, shift the first example's mu: one pass without the
    // cancellation of sum(mu^2)/n - mean^2 when the codes share a large offset (a mean of 1e8, a
    // spread of 1: that form gives a variance of 142)
    double *mu_shift = xcalloc((size_t)L, sizeof(double));
    double *mu_sum = xcalloc((size_t)L, sizeof(double));
    double *mu_sq = xcalloc((size_t)L, sizeof(double));
    r->kl_per_dim = xcalloc((size_t)L, sizeof(double));
    r->mu_variance = xcalloc((size_t)L, sizeof(double));
    double bce = 0.0, mse = 0.0;
    bool bernoulli = m->cfg.model.output == OUTPUT_BERNOULLI;
    for (int start = 0; start < data->n; start += pass_rows(m)) {
        int B = data->n - start < pass_rows(m) ? data->n - start : pass_rows(m);
        load_batch(m, data, NULL, start, B);
        model_forward(m, B, EPS_ZERO);
        be->download(be, head, model_head(m), (size_t)B * head_width * sizeof(float));
        for (int b = 0; b < B; b++) {
            const float *mu = head + (size_t)b * head_width;
            if (start == 0 && b == 0)
                for (int j = 0; j < L; j++) mu_shift[j] = mu[j];
            for (int j = 0; j < L; j++) {
                const double centred = (double)mu[j] - mu_shift[j];
                mu_sum[j] += centred;
                mu_sq[j] += centred * centred;
                if (m->variational) {
                    double lv = mu[L + j];
                    r->kl_per_dim[j] += 0.5 * ((double)mu[j] * mu[j] + exp(lv) - 1.0 - lv);
                }
            }
        }
        add_reconstruction_errors(m, B, rows, &bce, &mse);
    }
    double n = data->n > 0 ? data->n : 1;
    for (int j = 0; j < L; j++) {
        double mean = mu_sum[j] / n;   // (of mu - shift)
        r->mu_variance[j] = mu_sq[j] / n - mean * mean;
        if (r->mu_variance[j] < 0) r->mu_variance[j] = 0;
        r->kl_per_dim[j] /= n;
        if (r->mu_variance[j] > ACTIVE_UNIT_THRESHOLD) r->active_units++;
    }
    if (data->n < 2) r->active_units = -1;   // a variance over one example says nothing: n/a, not 0
    r->rec_bce = bernoulli ? bce / n : NAN;
    r->rec_mse = mse / n;
    r->outputs_overflow = reconstruction_overflows(m, bce, mse);
    free(head);
    free(rows);
    free(mu_shift);
    free(mu_sum);
    free(mu_sq);
    if (iw_k > 0 && importance_weighted(m, data, iw_k, iw_examples, r, err, errlen) != 0) {
        eval_report_free(r);
        return -1;
    }
    return 0;
}

void eval_report_free(EvalReport *r) {
    free(r->code_counts);
    free(r->kl_per_dim);
    free(r->mu_variance);
    memset(r, 0, sizeof *r);
}

static void json_number(TextBuffer *j, double v) {
    if (isfinite(v)) text_appendf(j, "%.6f", v);
    else text_appendf(j, "null");
}

// A per-dimension diagnostic (kl_per_dim, mu_variance) to 9 significant digits: at a large latent
// dimension each is tiny (1e-6 nats), and 6 decimals left a few distinct values and exact zeros.
static void json_significant(TextBuffer *j, double v) {
    if (isfinite(v)) text_appendf(j, "%.9g", v);
    else text_appendf(j, "null");
}

LossUnits loss_units(const Config *cfg) {
    LossUnits u;
    const bool mean = cfg->loss.reduction == REDUCTION_MEAN;
    if (cfg->loss.reconstruction == REC_BCE) {
        u.nats = !mean;
        u.rec = mean ? "nats/pixel" : "nats";
        u.rec_long = mean ? "Bernoulli negative log-likelihood averaged over pixels (nats per pixel)"
                          : "Bernoulli negative log-likelihood summed over pixels (nats)";
    } else {
        u.nats = false;
        u.rec = mean ? "MSE/pixel" : "SSE";
        u.rec_long = mean ? "mean squared error per pixel (not nats: a Gaussian likelihood needs its sigma)"
                          : "squared error summed over pixels (not nats: a Gaussian likelihood needs its sigma)";
    }
    const ModelKindInfo *kind = model_kind_info(cfg->model.kind);
    u.exact_nll = kind->autoregressive;
    u.has_kl = kind->second && !kind->adversarial;   // KL, or a vq_vae's VQ term: test_loss is rec + it
    if (u.exact_nll)
        u.rec_long = cfg->model.prior_of[0]
            ? "exact -log p(codes) of the VQ-VAE's code grid: the autoregressive categorical terms summed over "
              "positions (nats)"
            : "exact -log p(x): the autoregressive Bernoulli terms summed over pixels (nats)";
    const bool second_in_nats = !kind->second || strcmp(kind->second_unit, "nats") == 0;
    if (!second_in_nats) u.nats = false;   // rec may be nats; rec + VQ is not
    u.second = kind->second;
    u.second_unit = kind->second ? kind->second_unit : "nats";
    if (u.exact_nll)
        u.total = "nats/example (exact -log p(x))";
    else if (!u.has_kl)
        u.total = u.nats ? "nats/example" : mean ? (cfg->loss.reconstruction == REC_BCE ? "nats/pixel" : "MSE/pixel")
                                                 : "SSE (the reconstruction alone)";
    else if (!second_in_nats)   // a vq_vae
        u.total = "rec + VQ term (a training objective, not a log-likelihood)";
    else
        u.total = u.nats ? "nats/example" : "rec + KL in different units (not a log-likelihood)";
    return u;
}

void loss_units_append_json(TextBuffer *t, const Config *cfg) {
    LossUnits units = loss_units(cfg);
    if (units.nats) {
        text_appendf(t, "\"nats/example\"");
        return;
    }
    text_appendf(t, "{\"rec\": ");
    text_append_json_string(t, units.rec_long);
    const char *second = model_kind_info(cfg->model.kind)->second_units;   // NULL: rec alone
    text_appendf(t, ", %s, \"test_loss\": ", second ? second : "\"kl\": \"nats/example\"");
    text_append_json_string(t, units.total);
    text_appendf(t, "}");
}

// n values (n, D) of a host dataset's first n images, pixels / 255.
static float *dataset_values(const Dataset *d, int n) {
    float *v = xmalloc((size_t)(n > 0 ? n : 1) * d->dim * sizeof(float));
    for (size_t i = 0; i < (size_t)n * d->dim; i++) v[i] = d->images[i] / 255.0f;
    return v;
}

void eval_parzen(Model *m, const Dataset *val, const Dataset *test, int n_samples, int test_examples, EvalReport *r) {
    const double start = wall_seconds();
    const int D = m->input_dim, L = m->latent_dim;
    const int M = test_examples > 0 && test_examples < test->n ? test_examples : test->n;
    if (test_examples > test->n)
        fprintf(stderr, "cuvae: Parzen window: %d test examples asked for, the test set has %d: using %d\n",
                test_examples, test->n, test->n);
    float *z = xmalloc((size_t)n_samples * L * sizeof(float));
    float *samples = xmalloc((size_t)n_samples * D * sizeof(float));
    model_draw_latents(m, z, n_samples, m->cfg.train.seed ^ EVAL_PARZEN_SEED_SALT);   // an aae: its prior
    model_decode_pixels(m, z, NULL, n_samples, samples);   // batch norm in evaluation mode
    float *val_values = dataset_values(val, val->n);
    float *test_values = dataset_values(test, M);
    parzen_evaluate(m->be, samples, n_samples, val_values, val->n, test_values, M, D, &r->parzen);
    r->parzen_seconds = wall_seconds() - start;
    free(test_values);
    free(val_values);
    free(samples);
    free(z);
}

// ", "parzen": {...}" when the Parzen estimate ran (gan, aae).
static void parzen_json(TextBuffer *j, const EvalReport *r) {
    if (r->parzen.samples <= 0) return;
    const ParzenResult *p = &r->parzen;
    text_appendf(j, ", \"parzen\": {\"log_likelihood\": ");
    json_number(j, p->mean_ll);
    text_appendf(j, ", \"std_error\": ");
    json_number(j, p->std_error);
    text_appendf(j, ", \"sigma\": ");
    json_number(j, p->sigma);
    text_appendf(j, ", \"samples\": %d, \"test_examples\": %d, \"validation_examples\": %d, "
                "\"sigma_candidates\": [", p->samples, p->test_examples, p->validation_examples);
    for (int s = 0; s < PARZEN_N_SIGMAS; s++) {
        text_appendf(j, "%s{\"sigma\": ", s ? ", " : "");
        json_number(j, parzen_sigma_candidate(s));
        text_appendf(j, ", \"validation_ll\": ");
        json_number(j, p->sigma_ll[s]);
        text_appendf(j, "}");
    }
    text_appendf(j, "], \"units\": ");
    text_append_json_string(j, "nats per test image (a log density of pixel values in [0, 1]; higher is "
                            "better; a weak metric)");
    text_appendf(j, ", \"seconds\": %.1f}", r->parzen_seconds);
}

// A gan's eval.json: the discriminator's losses and the Parzen-window estimate.
static char *gan_report_json(const EvalReport *r, const Config *cfg, const char *device) {
    TextBuffer j = {0};
    text_appendf(&j, "{\"name\": ");
    text_append_json_string(&j, cfg->name);
    text_appendf(&j, ", \"kind\": \"gan\", \"test_loss\": ");
    json_number(&j, r->elbo.loss);
    text_appendf(&j, ", \"d_loss_real\": ");
    json_number(&j, r->elbo.rec);
    text_appendf(&j, ", \"d_loss_fake\": ");
    json_number(&j, r->elbo.kl);
    text_appendf(&j, ", \"examples\": %ld, \"units\": ", r->elbo.examples);
    text_append_json_string(&j, "test_loss = d_loss_real + d_loss_fake: the discriminator's binary cross-entropy "
                            "(nats per example) on the test images (target 1) and on as many generator samples "
                            "(target 0); not a likelihood");
    parzen_json(&j, r);
    text_appendf(&j, ", \"device\": ");
    text_append_json_string(&j, device);
    text_appendf(&j, "}");
    return j.data;
}

char *eval_report_json(const EvalReport *r, const Config *cfg, const char *device) {
    if (r->gan) return gan_report_json(r, cfg, device);
    TextBuffer j = {0};
    text_appendf(&j, "{\"name\": ");
    text_append_json_string(&j, cfg->name);
    text_appendf(&j, ", \"test_loss\": ");
    json_number(&j, r->elbo.loss);
    text_appendf(&j, ", \"rec\": ");
    json_number(&j, r->elbo.rec);
    text_appendf(&j, r->vq_size ? ", \"vq\": " : r->aae ? ", \"d_loss\": " : ", \"kl\": ");   // the second term
    json_number(&j, r->elbo.kl);
    text_appendf(&j, ", \"examples\": %ld, \"units\": ", r->elbo.examples);
    loss_units_append_json(&j, cfg);
    text_appendf(&j, ", \"binarized\": %s", r->binarized ? "true" : "false");
    if (r->exact_nll) {   // made: the test loss is -log p(x) itself
        text_appendf(&j, ", \"exact_nll\": ");
        json_number(&j, r->elbo.rec);
        text_appendf(&j, ", \"bits_per_dim\": ");
        json_number(&j, r->bits_per_dim);
        if (r->prior_positions) {   // a prior over codes: the cross-entropy per code position
            text_appendf(&j, ", \"nll_per_position\": ");
            json_number(&j, r->elbo.rec / r->prior_positions);
        }
    }
    text_appendf(&j, ", \"rec_bce_at_mean\": ");
    json_number(&j, r->rec_bce);
    text_appendf(&j, ", \"rec_mse_at_mean\": ");
    json_number(&j, r->rec_mse);
    // whatever the loss's reduction, these two are sums over the pixels of one example
    // (a prior over a VQ-VAE's codes: the cross-entropy is categorical, over the code positions)
    text_appendf(&j, ", \"at_mean_units\": {\"rec_bce_at_mean\": \"%s\", \"rec_mse_at_mean\": \"squared error summed "
                 "over pixels, per example\"}", r->prior_positions ? "nats/example (categorical cross-entropy summed "
                 "over the code positions)" : "nats/example (binary cross-entropy summed over pixels)");
    if (r->vq_size) {   // code usage in place of the latent statistics
        text_appendf(&j, ", \"rec_mse_over_variance\": ");
        json_number(&j, r->rec_mse_normalized);
        text_appendf(&j, ", \"data_variance\": ");
        json_number(&j, r->data_variance);
        text_appendf(&j, ", \"codebook_size\": %d, \"codes_used\": %d, \"perplexity\": ", r->vq_size, r->codes_used);
        json_number(&j, r->perplexity);
        text_appendf(&j, ", \"code_counts\": [");
        for (int k = 0; k < r->vq_size; k++) text_appendf(&j, "%s%ld", k ? ", " : "", r->code_counts[k]);
        text_appendf(&j, "], \"device\": ");
        text_append_json_string(&j, device);
        text_appendf(&j, "}");
        return j.data;
    }
    if (!r->exact_nll) {   // an encoder's latent (a made or pixelcnn has none; a gan returned above)
        text_appendf(&j, ", \"latent_dim\": %d, \"active_units\": ", r->latent_dim);
        if (r->active_units >= 0) text_appendf(&j, "%d", r->active_units);
        else text_appendf(&j, "null");
        text_appendf(&j, ", \"active_threshold\": %g", ACTIVE_UNIT_THRESHOLD);
        text_appendf(&j, ", \"kl_per_dim\": [");
        for (int d = 0; d < r->latent_dim; d++) {
            if (d) text_appendf(&j, ", ");
            json_significant(&j, r->kl_per_dim[d]);
        }
        text_appendf(&j, "], \"mu_variance\": [");
        for (int d = 0; d < r->latent_dim; d++) {
            if (d) text_appendf(&j, ", ");
            json_significant(&j, r->mu_variance[d]);
        }
        text_appendf(&j, "]");
    }
    parzen_json(&j, r);
    if (r->iw_k > 0) {
        text_appendf(&j, ", \"iw\": {\"k\": %d, \"examples\": %ld, \"neg_log_px\": ", r->iw_k, r->iw_examples);
        json_number(&j, r->iw_nll);
        text_appendf(&j, ", \"bits_per_dim\": ");
        json_number(&j, r->iw_bits_per_dim);
        text_appendf(&j, ", \"is_nll_of_binary_data\": %s, \"conditional_on_label\": %s, \"seconds\": %.1f}",
                    r->iw_is_nll ? "true" : "false", cfg->model.condition == CONDITION_LABEL ? "true" : "false",
                    r->iw_seconds);
    }
    text_appendf(&j, ", \"device\": ");
    text_append_json_string(&j, device);
    text_appendf(&j, "}");
    return j.data;
}
