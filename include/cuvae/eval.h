// eval.h: a dataset resident on the backend, and evaluation over it: the
// negative ELBO (unweighted rec + KL, nats per example), active units, KL per
// dimension, reconstruction errors, and the importance-weighted estimate of
// -log p(x).
#ifndef CUVAE_EVAL_H
#define CUVAE_EVAL_H

#include <stdbool.h>
#include <stdint.h>
#include "cuvae/common.h"
#include "cuvae/dataset.h"
#include "cuvae/model.h"
#include "cuvae/parzen.h"

typedef struct {
    int n, dim;
    uint8_t *images;    // (n, dim) on the device
    uint8_t *labels;    // (n) on the device
    bool binary;        // every value is 0 or 255: binary data, whatever the config's data.binarize says
} DeviceDataset;

void device_dataset_upload(Backend *be, const Dataset *host, DeviceDataset *out);
// Whether n_sets data sets (NULL entries skipped) fit in what the backend has free:
// 0, or -1 with err naming the bytes needed and free (the whole data set lives
// on the device as uint8).
int device_datasets_fit(Backend *be, const Dataset *const *sets, int n_sets, char *err, size_t errlen);
void device_dataset_free(Backend *be, DeviceDataset *d);

// Evaluation data are fixed: a model trained with dynamic binarization is
// evaluated on a test set binarized once with a fixed seed (static binarization
// already happened at load). Call on the host test set before uploading it.
void eval_prepare_test_set(const Config *cfg, Dataset *test);

typedef struct {
    double loss;        // rec + kl, unweighted, nats per example
    double rec;
    double kl;
    long examples;
} ElboResult;

// Negative ELBO over the whole dataset in batches of m->max_batch. eps_mode:
// EPS_SAMPLE (one z sample per example from a fixed evaluation stream, so
// repeated evaluations use the same draws) or EPS_ZERO (z = mu). Leaves the
// training RNG state untouched; the loss accumulator must be empty on entry.
void eval_elbo(Model *m, const DeviceDataset *data, EpsMode eps_mode, ElboResult *out);
// The same, sharded over the ranks of a data-parallel run (distributed.h): rank
// r evaluates batches r, r + size, ... and the sums are reduced; every rank gets
// the result (equal to eval_elbo's up to summation order). Every rank must call it.
void eval_elbo_ranks(Model *m, const DeviceDataset *data, EpsMode eps_mode, ElboResult *out);

#define ACTIVE_UNIT_THRESHOLD 0.01

typedef struct {
    ElboResult elbo;           // as eval_elbo(EPS_SAMPLE)
    int latent_dim;
    double *kl_per_dim;        // (L) mean over examples of KL_j, nats
    double *mu_variance;       // (L) Var_x(E_q[z_j])
    int active_units;          // dims with mu_variance > ACTIVE_UNIT_THRESHOLD (Burda et al.); -1 (JSON null)
                               // for a test set of one example, whose variance says nothing
    double rec_bce;            // at z = mu, nats per example (NAN for a gaussian decoder)
    double rec_mse;            // at z = mu, sum of squared errors per example
    bool outputs_overflow;     // rec_bce (Bernoulli) or rec_mse is not finite: the decoder's outputs
                               // overflow on finite weights, whatever the test loss (an MSE of
                               // sigmoids stays finite): the model has diverged
    bool binarized;            // evaluation data are binary
    // importance-weighted estimate (iw_k = 0: not computed)
    int iw_k;
    long iw_examples;
    double iw_nll;             // -mean log p(x), nats per example
    double iw_bits_per_dim;
    bool iw_is_nll;            // a likelihood of binary data (bce on binarized data)
    double iw_seconds;
    // vq_vae: code usage over the evaluation set (vq_size 0 otherwise)
    int vq_size;               // K
    long *code_counts;         // (K) how often each code was chosen
    int codes_used;            // codes chosen at least once
    double perplexity;         // exp(entropy of the code frequencies): effective codes in use
    double data_variance;      // of the evaluation pixels
    double rec_mse_normalized; // mean squared error per pixel / data_variance (VQ-VAE papers' metric)
    // made: the test loss is the exact -log p(x) (elbo.rec), also in bits per pixel
    bool exact_nll;
    double bits_per_dim;
    int prior_positions;       // a PixelCNN prior over codes: S (its nll per position = rec / S), else 0
    // gan: elbo.rec / elbo.kl are the discriminator's BCE on the test images / on as many fakes
    // (nats per example); the Parzen-window log-likelihood when eval_parzen ran (parzen.samples > 0)
    bool gan;
    bool aae;                  // an aae: elbo.kl is its discriminator's loss (codes vs prior draws), elbo.loss = rec
    ParzenResult parzen;
    double parzen_seconds;
} EvalReport;

// Everything above. iw_k > 0 runs the importance-weighted bound with K samples
// on the first iw_examples examples (0 = all), in batches of at most
// m->max_batch rows. Fails (with err) when the model has no likelihood for it.
int eval_report(Model *m, const DeviceDataset *data, int iw_k, int iw_examples,
                EvalReport *r, char *err, size_t errlen);
// 0 when eval --iw K (K > 0) applies to cfg's model kind (or K is 0), else -1 with err saying why:
// called before anything is loaded, so the refusal is the command's one line.
int eval_iw_applies(const Config *cfg, int iw_k, char *err, size_t errlen);
// The test set's passes (test loss, codes, reconstructions) go EVAL_PASS_ROWS examples at a time
// (fewer in a model of fewer rows): the same batches, so the same sums, whatever else the model
// was built for (eval.iw_batch rows for the importance-weighted bound).
#define EVAL_PASS_ROWS 1000
// The rows (max_batch) of a model built to evaluate: `cap` (1000, or eval.iw_batch with the
// importance-weighted bound) cut to the most one batch of the evaluation can hold -- the
// test_examples, K rows for each of the first iw_examples of them (0 = all) when iw_k > 0, and
// the parzen_samples a gan / aae decodes (0: none) -- so that a small test set does not
// allocate a thousand rows of a large model; never fewer than a test pass's batch
// (EVAL_PASS_ROWS, or all the test examples where they are fewer). At least 1.
int eval_model_rows(int cap, int test_examples, int iw_k, int iw_examples, int parzen_samples);
void eval_report_free(EvalReport *r);
// 0 when an evaluation's numbers are finite; -1 with err (prefixed by `who`, e.g. "eval: CKPT")
// when its test loss is not, or its reconstruction error at z = mu (at the codes: at_codes) is
// not while the loss is (EvalReport.outputs_overflow): finite weights whose outputs overflow, a
// model that has diverged.
int eval_check_finite(double test_loss, bool outputs_overflow, bool at_codes, const char *who, char *err,
                      size_t errlen);
// A gan's or an aae's Parzen-window log-likelihood (parzen.h) into r->parzen: n_samples samples
// (the generator's, or an aae's decoder on prior draws; eval mode, a fixed seed), sigma chosen on val, scored on the first test_examples (0 = all)
// of test. Host datasets, pixels / 255.
void eval_parzen(Model *m, const Dataset *val, const Dataset *test, int n_samples, int test_examples, EvalReport *r);
// One JSON object (malloc'd, no trailing newline).
char *eval_report_json(const EvalReport *r, const Config *cfg, const char *device);

// What a config's losses are measured in. KL is always nats per example. The
// reconstruction term is nats only for a Bernoulli likelihood summed over the
// pixels (bce, sum); otherwise it is in its own unit, and rec + KL ("test_loss")
// adds different units -- a number to compare with runs of the same config, not
// a negative log-likelihood.
typedef struct {
    bool nats;            // rec (and so rec + KL) in nats per example
    const char *rec;      // short: "nats", "nats/pixel", "SSE", "MSE/pixel"
    const char *rec_long; // a phrase for messages and eval.json
    const char *total;    // "nats/example", or a phrase saying the units are mixed; an AE
                          // (no KL term): the reconstruction's own unit
    bool has_kl;          // false for an AE: its loss is the reconstruction alone
    bool exact_nll;       // made: rec is the exact -log p(x) of the binary pixels
    const char *second;   // the second term's name: "KL", or "VQ" (a VQ-VAE's codebook +
                          // commitment squared distances); NULL for an AE
    const char *second_unit;   // "nats" (KL) or "squared distance" (VQ)
} LossUnits;
LossUnits loss_units(const Config *cfg);
// The "units" value of eval.json: "nats/example", or an object naming each term's unit.
void loss_units_append_json(TextBuffer *t, const Config *cfg);

// Means of q(z|x) (or the AE code; a VQ-VAE's quantized latents) of the first n
// examples: mu (n, L) on the host.
void eval_encode(Model *m, const DeviceDataset *data, int n, float *mu);

// A variational model's z ~ q(z|x) of the first n examples of data (n, L): one draw each, the
// draws of the evaluation's fixed stream (the z the logged test loss used).
void eval_encode_draws(Model *m, const DeviceDataset *data, int n, float *z);

#endif
