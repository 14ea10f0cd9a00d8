// model_aae.c: kind "aae", the adversarial autoencoder of Makhzani et al. 2015 (deck 002): a
// deterministic autoencoder (the AE of model_latent.c: encoder, head z (L), decoder) and a
// discriminator on z (model.discriminator: z -> one logit) that makes the codes q(z) match the
// prior (N(0, I), or 10 Gaussians in 2-D). Each step has the paper's three phases, every one a
// run of backend ops with its own Adam update (no host sync):
//   1. reconstruction: the AE's loss and gradient, Adam on [encoder | decoder];
//   2. regularization, discriminator: prior draws (target 1) against the codes of the updated
//      encoder (target 0), Adam on the discriminator's region;
//   3. regularization, generator: the encoder made to fool the updated discriminator
//      (-log D(z)), Adam on the encoder with its own moments (a second optimizer, as the paper's).
// Kind aae's ModelOps (model_aae_ops, at the end): the AE's (model_latent.c) plus the discriminator.
#include "cuvae/model.h"
#include "cuvae/common.h"
#include "cuvae/layer_math.h"
#include "cuvae/rng.h"

#include <stdlib.h>
#include <string.h>

#define PRIOR_SEED_SALT 0xAAE9819Full

static size_t round_up4(size_t n) { return (n + 3) & ~(size_t)3; }

static int build_discriminator(Network *net, const Config *cfg, size_t param_base, size_t buffer_base, char *err,
                               size_t errlen) {
    TensorShape z = {1, {cfg->model.latent_dim, 0, 0}};
    if (network_build(net, "discriminator", cfg->model.discriminator_layers, cfg->model.n_discriminator_layers, z,
                      param_base, buffer_base, err, errlen) != 0)
        return -1;
    return network_check_discriminator_output(net, "{\"linear\": 1}", err, errlen);
}

int model_aae_check_discriminator(const Config *cfg, char *err, size_t errlen) {
    if (model_refuse_masked_layers("aae", "discriminator", cfg->model.discriminator_layers,
                                   cfg->model.n_discriminator_layers, err, errlen) != 0)
        return -1;
    Network *net = xcalloc(1, sizeof *net);
    int rc = build_discriminator(net, cfg, 0, 0, err, errlen);
    free(net);
    return rc;
}

// The AE (model_latent.c), then the discriminator's region after it.
static int aae_build(Model *m, char *err, size_t errlen) {
    if (model_latent_build(m, err, errlen) != 0) return -1;
    m->aae = true;
    const Layer *head = &m->layers[m->head];
    m->aae_encoder_params = head->bias_offset + (size_t)head->out;   // the encoder network, trunk, head
    m->aae_ae_params = m->n_params;
    m->aae_disc_offset = round_up4(m->n_params);
    m->aae_discriminator = xcalloc(1, sizeof *m->aae_discriminator);
    if (build_discriminator(m->aae_discriminator, &m->cfg, m->aae_disc_offset, m->n_buffers, err, errlen) != 0) {
        free(m->aae_discriminator);
        m->aae_discriminator = NULL;
        return -1;
    }
    m->n_buffers += m->aae_discriminator->n_buffers;
    // the encoder's second optimizer keeps its moments in the arena too (saved with --resume):
    // a block after the discriminator whose own parameters are never used
    m->aae_moments_offset = round_up4(m->aae_disc_offset + m->aae_discriminator->n_params);
    m->n_params = m->aae_moments_offset + round_up4(m->aae_encoder_params);
    return 0;
}

static void aae_alloc(Model *m) {
    Backend *be = m->be;
    const size_t B = (size_t)m->max_batch;
    model_adversarial_targets(m, 0.0f);
    network_alloc(m->aae_discriminator, be, m->max_batch, !m->forward_only);
    m->aae_prior = be->alloc(be, B * (size_t)m->latent_dim * sizeof(float));
    m->aae_g_row = be->alloc(be, B * sizeof(float));
    m->gan_saved_grads = be->alloc(be, (m->aae_discriminator->n_params ? m->aae_discriminator->n_params : 1) *
                                           sizeof(float));
}

static void aae_release(Model *m) {
    Backend *be = m->be;
    be->free(be, m->gan_targets);
    be->free(be, m->aae_prior);
    be->free(be, m->aae_g_row);
    be->free(be, m->gan_saved_grads);
    network_free(m->aae_discriminator, be);
    free(m->aae_discriminator);
}

// Prior draws (B, L) into m->aae_prior: at the step's offset (training) or at rng_offset.
static void draw_prior(Model *m, int B, bool training) {
    Backend *be = m->be;
    const size_t n = (size_t)B * m->latent_dim;
    const uint64_t seed = m->rng_seed ^ PRIOR_SEED_SALT;
    if (training)
        be->fill_normal(be, m->aae_prior, n, seed, 0, &m->state->eps_offset);
    else
        be->fill_normal(be, m->aae_prior, n, seed, m->rng_offset, NULL);
    if (m->cfg.model.prior_mixture) be->mixture_prior(be, m->aae_prior, B, MIXTURE_COMPONENTS);
}

void model_aae_prior_host(const Model *m, float *z, int n, uint64_t seed) {
    rng_fill_normal(z, (size_t)n * m->latent_dim, seed, 0);
    if (m->cfg.model.prior_mixture)
        for (int i = 0; i < n; i++) mixture_point(i % MIXTURE_COMPONENTS, MIXTURE_COMPONENTS, &z[2 * i], &z[2 * i + 1]);
}

void model_aae_discriminator_gradient(Model *m, int B) {
    model_forget_clear_gradients(m);   // it writes gradients
    Backend *be = m->be;
    NetRun run = model_net_run(m, B);
    Network *disc = m->aae_discriminator;
    float *d_grads = m->grads + m->aae_disc_offset;
    float *d_logits = m->grad_a;   // (B, 1)
    draw_prior(m, B, true);
    model_discriminate(m, disc, &run, m->aae_prior, ADV_TARGET_ONE, m->kl_row, d_logits);
    network_backward(disc, &run, m->aae_prior, d_logits, NULL);
    be->copy(be, m->gan_saved_grads, d_grads, disc->n_params * sizeof(float));
    model_discriminate(m, disc, &run, m->z, ADV_TARGET_FAKE, m->aae_g_row, d_logits);
    network_backward(disc, &run, m->z, d_logits, NULL);
    be->add(be, d_grads, d_grads, m->gan_saved_grads, disc->n_params);
    be->add(be, m->kl_row, m->kl_row, m->aae_g_row, (size_t)B);
}

void model_aae_regularization_gradient(Model *m, int B) {
    model_forget_clear_gradients(m);   // it writes gradients
    NetRun run = model_net_run(m, B);
    float *d_logits = m->grad_a;   // (B, 1)
    // the discriminator's input gradient is dz, where the encoder's backward reads it
    model_discriminate(m, m->aae_discriminator, &run, m->z, ADV_TARGET_ONE, m->aae_g_row, d_logits);
    network_backward(m->aae_discriminator, &run, m->z, d_logits, m->grad_h);
    model_encode_backward(m, B);
}

// The three phases of one step on m->x: reconstruction, discriminator, regularization (the
// encoder made to fool the discriminator). rec_row = the reconstruction, kl_row = the
// discriminator's loss (nats per example).
static void aae_train_step(Model *m, int B, float w_rec) {
    // 1. reconstruction: the AE's forward, loss and backward (rec_row); Adam on encoder + decoder
    model_forward(m, B, EPS_SAMPLE);
    model_backward_scheduled(m, B, w_rec);
    model_optimizer_step_range(m, 0, m->aae_ae_params, 0);
    // 2. the discriminator: prior draws against the codes of the updated encoder (kl_row)
    model_encode(m, B);
    model_aae_discriminator_gradient(m, B);
    model_optimizer_step_range(m, m->aae_disc_offset, round_up4(m->aae_discriminator->n_params), m->aae_disc_offset);
    // 3. the encoder against the updated discriminator, with its own Adam moments
    model_aae_regularization_gradient(m, B);
    model_optimizer_step_range(m, 0, m->aae_encoder_params, m->aae_moments_offset);
}

// Evaluation, after model_forward: kl_row = the discriminator's BCE on the codes m->z (target 0)
// plus on as many prior draws at rng_offset (target 1); rec_row the reconstruction.
static void aae_loss(Model *m, int B) {
    NetRun run = model_net_run(m, B);
    draw_prior(m, B, false);
    model_discriminate(m, m->aae_discriminator, &run, m->z, ADV_TARGET_FAKE, m->kl_row, NULL);
    model_discriminate(m, m->aae_discriminator, &run, m->aae_prior, ADV_TARGET_ONE, m->aae_g_row, NULL);
    m->be->add(m->be, m->kl_row, m->kl_row, m->aae_g_row, (size_t)B);
    model_latent_loss(m, B);
}

static int aae_check_networks(const Config *cfg, char *err, size_t errlen) {
    if (model_aae_check_discriminator(cfg, err, errlen) != 0) return -1;
    return model_check_encoder_decoder(cfg, 0, err, errlen);
}

// The AE's, then the discriminator's.
static void aae_init(Model *m, float *params, float *buffers, Rng *rng) {
    model_latent_init(m, params, buffers, rng);
    network_init(m->aae_discriminator, params, buffers, rng);
}

// The AE's and the discriminator's (not its padding, nor the encoder's second moments).
static size_t aae_parameter_count(const Model *m) { return m->aae_ae_params + m->aae_discriminator->n_params; }

static void aae_draw_latents(Model *m, float *z, int n, uint64_t seed) { model_aae_prior_host(m, z, n, seed); }

// The AE's step, the encoder again (phase 2's forward, phase 3's backward), the discriminator on z.
static uint64_t aae_gemm_flops(const Model *m, int B) {
    return model_latent_gemm_flops(m, B) + model_latent_encoder_gemm_flops(m, B) +
           model_discriminator_gemm_flops(m->aae_discriminator, B);
}

// The AE's, then the discriminator's (not the encoder's second Adam moments: resume's).
static int aae_list_tensors(const Model *m, ModelTensor *out) {
    const int n = model_latent_list_tensors(m, out);
    return n + model_list_network_tensors(m->aae_discriminator, out + n);
}

const ModelOps model_aae_ops = {
    .check_networks = aae_check_networks,
    .build = aae_build,
    .alloc = aae_alloc,
    .release = aae_release,
    .init = aae_init,
    .parameter_count = aae_parameter_count,
    .forward = model_latent_forward,
    .loss = aae_loss,
    .backward = model_latent_backward,   // the reconstruction phase (model_backward_scheduled)
    .train_step = aae_train_step,
    .draw_latents = aae_draw_latents,
    .gemm_flops = aae_gemm_flops,
    .list_tensors = aae_list_tensors,
};
