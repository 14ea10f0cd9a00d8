// model_gan.c: kind "gan" (Goodfellow et al. 2014, with the DCGAN practice of Radford et al.
// 2015): the generator (model.generator: z (L) -> an image in the data's shape, ending in sigmoid
// or tanh) and the discriminator (model.discriminator: an image -> one logit), two parameter
// regions [generator | discriminator] updated by two Adam calls, the non-saturating losses as
// binary cross-entropies from logits, the whole alternating step as backend ops (no host sync),
// DCGAN init, and the evaluation pieces (the discriminator's losses on held-out images). Kind gan's
// ModelOps (model_gan_ops, at the end).
#include "cuvae/model.h"
#include "cuvae/common.h"
#include "cuvae/rng.h"

#include <stdlib.h>
#include <string.h>

#define LABEL_SMOOTHING_SEED_SALT 0x50F7ull   // the randomly smoothed real targets' stream: seed ^ salt

static size_t round_up4(size_t n) { return (n + 3) & ~(size_t)3; }

int model_gan_build(Network *generator, Network *discriminator, const Config *cfg, char *err, size_t errlen) {
    TensorShape data = model_input_shape(cfg);
    TensorShape z = {1, {cfg->model.latent_dim, 0, 0}};
    if (network_build(generator, "generator", cfg->model.decoder_layers, cfg->model.n_decoder_layers, z, 0, 0,
                      err, errlen) != 0)
        return -1;
    bool fits = tensor_shape_size(generator->out) == (size_t)cfg->model.input_dim &&
                (generator->out.rank == 1 || memcmp(&generator->out, &data, sizeof data) == 0);
    if (!fits) {
        char got[48], want[48];
        tensor_shape_format(generator->out, got, sizeof got);
        tensor_shape_format(data, want, sizeof want);
        return set_error(err, errlen, "model.generator: its output %s is not the data's shape %s (or %d values)",
                         got, want, cfg->model.input_dim);
    }
    const int last = cfg->model.n_decoder_layers - 1;
    const char *end = cfg->model.decoder_layers[last].kind;
    if (strcmp(end, "sigmoid") != 0 && strcmp(end, "tanh") != 0)
        return set_error(err, errlen, "model.generator[%d] (%s): a generator ends in \"sigmoid\" (images in [0, 1]) "
                         "or \"tanh\" (in [-1, 1]), the range the discriminator sees the real images in", last, end);
    const size_t disc_params = round_up4(generator->n_params);
    if (network_build(discriminator, "discriminator", cfg->model.encoder_layers, cfg->model.n_encoder_layers, data,
                      disc_params, generator->n_buffers, err, errlen) != 0)
        return -1;
    return network_check_discriminator_output(discriminator, "{\"flatten\": {}}, {\"linear\": 1}", err, errlen);
}

static int gan_build(Model *m, char *err, size_t errlen) {
    m->gan = true;
    m->head = -1;
    m->input_shape = model_input_shape(&m->cfg);
    m->decoder_net = xcalloc(1, sizeof *m->decoder_net);
    m->encoder_net = xcalloc(1, sizeof *m->encoder_net);
    if (model_gan_build(m->decoder_net, m->encoder_net, &m->cfg, err, errlen) != 0) {
        free(m->decoder_net);
        free(m->encoder_net);
        m->decoder_net = m->encoder_net = NULL;
        return -1;
    }
    const Config *cfg = &m->cfg;
    m->gan_tanh = strcmp(cfg->model.decoder_layers[cfg->model.n_decoder_layers - 1].kind, "tanh") == 0;
    m->gan_disc_offset = round_up4(m->decoder_net->n_params);
    m->n_params = m->gan_disc_offset + m->encoder_net->n_params;
    m->n_buffers = m->decoder_net->n_buffers + m->encoder_net->n_buffers;
    return 0;
}

void model_adversarial_targets(Model *m, float smoothing) {
    Backend *be = m->be;
    const size_t B = (size_t)m->max_batch;
    float *targets = xmalloc(ADV_N_TARGETS * B * sizeof(float));
    for (size_t b = 0; b < B; b++) {
        targets[ADV_TARGET_REAL * B + b] = 1.0f - smoothing;
        targets[ADV_TARGET_FAKE * B + b] = 0.0f;
        targets[ADV_TARGET_ONE * B + b] = 1.0f;
    }
    m->gan_targets = be->alloc(be, ADV_N_TARGETS * B * sizeof(float));
    be->upload(be, m->gan_targets, targets, ADV_N_TARGETS * B * sizeof(float));
    free(targets);
}

static void gan_alloc(Model *m) {
    Backend *be = m->be;
    const size_t B = (size_t)m->max_batch, D = (size_t)m->input_dim;
    model_adversarial_targets(m, (float)m->cfg.model.gan.label_smoothing);
    m->gan_saved_grads = be->alloc(be, (m->encoder_net->n_params ? m->encoder_net->n_params : 1) * sizeof(float));
    if (m->gan_tanh) {   // the real images seen in [-1, 1]: 2 x - 1 as x + x, then + (-1)
        m->gan_real = be->alloc(be, B * D * sizeof(float));
        float *minus_one = xmalloc(B * D * sizeof(float));
        for (size_t i = 0; i < B * D; i++) minus_one[i] = -1.0f;
        m->gan_minus_one = be->alloc(be, B * D * sizeof(float));
        be->upload(be, m->gan_minus_one, minus_one, B * D * sizeof(float));
        free(minus_one);
    }
}

static void gan_release(Model *m) {
    Backend *be = m->be;
    be->free(be, m->gan_targets);
    be->free(be, m->gan_saved_grads);
    if (m->gan_tanh) {
        be->free(be, m->gan_real);
        be->free(be, m->gan_minus_one);
    }
}

// DCGAN init (Radford et al. 2015: "all weights initialized from N(0, 0.02)"; the PyTorch DCGAN
// example's batch norm N(1, 0.02)): linear and (transposed) convolution weights N(0, 0.02), batch
// norm weights N(1, 0.02), every bias 0 (the example's convolutions have none; its linear-free
// networks leave no rule for a linear layer's, so 0 here too).
static void dcgan_init(const Network *net, float *params, Rng *rng) {
    for (int i = 0; i < net->n_layers; i++) {
        const NetLayer *layer = &net->layers[i];
        const bool norm = layer_kind_is_batch_norm(layer->kind);
        for (int t = 0; t < layer->n_tensors; t++) {
            const LayerTensor *tensor = &layer->tensors[t];
            if (tensor->buffer) continue;
            size_t count = 1;
            for (int d = 0; d < tensor->rank; d++) count *= (size_t)tensor->shape[d];
            float *values = params + layer->param_offset + tensor->offset;
            const bool weight = strcmp(tensor->name, "weight") == 0;
            for (size_t k = 0; k < count; k++)
                values[k] = weight ? (norm ? 1.0f : 0.0f) + 0.02f * rng_normal(rng) : 0.0f;
        }
    }
}

static void gan_init(Model *m, float *params, float *buffers, Rng *rng) {
    network_init(m->decoder_net, params, buffers, rng);
    network_init(m->encoder_net, params, buffers, rng);
    if (!m->cfg.model.gan.dcgan_init) return;
    dcgan_init(m->decoder_net, params, rng);
    dcgan_init(m->encoder_net, params, rng);
}

// The real batch m->x (B, D) as the discriminator sees it: itself (sigmoid generator) or 2 x - 1.
static const float *real_images(Model *m, int B) {
    if (!m->gan_tanh) return m->x;
    Backend *be = m->be;
    const size_t n = (size_t)B * m->input_dim;
    be->add(be, m->gan_real, m->x, m->x, n);
    be->add(be, m->gan_real, m->gan_real, m->gan_minus_one, n);
    return m->gan_real;
}

const float *model_discriminate(Model *m, Network *discriminator, const NetRun *run, const float *input,
                               int target, float *rows, float *d_logits) {
    const float *logits = network_forward(discriminator, run, input);
    const float *targets = m->gan_targets + (size_t)target * m->max_batch;
    m->be->reconstruction_loss(m->be, d_logits, rows, logits, targets, run->B, 1, RECLOSS_BCE_LOGITS, 1.0f,
                               d_logits ? 1.0f / (float)run->B : 0.0f);
    return logits;
}

// The gan's discriminator (encoder_net) on images (B, D).
static const float *discriminate(Model *m, const NetRun *run, const float *images, int target, float *rows,
                                 float *d_logits) {
    return model_discriminate(m, m->encoder_net, run, images, target, rows, d_logits);
}

// z (B, L) into m->z: drawn at the step's device offset (training) or at rng_offset (evaluation).
static void draw_z(Model *m, int B, bool training) {
    const size_t n = (size_t)B * m->latent_dim;
    if (training)
        m->be->fill_normal(m->be, m->z, n, m->rng_seed, 0, &m->state->eps_offset);
    else
        m->be->fill_normal(m->be, m->z, n, m->rng_seed, m->rng_offset, NULL);
}

// The generator's output from m->z (B rows), z first drawn at rng_offset unless EPS_GIVEN; no encoder.
static void gan_forward(Model *m, int B, EpsMode eps_mode) {
    if (eps_mode != EPS_GIVEN) draw_z(m, B, false);
    NetRun run = model_net_run(m, B);
    network_forward(m->decoder_net, &run, m->z);
}

// With model.label_smoothing [min, max]: each real image's target (B) drawn uniformly in
// (1 - max, 1 - min] for this step: global row r's is draw uniform_offset + r of the seed ^ salt
// stream (the offset the step advances, so every step draws new targets, a resumed run the same).
static void draw_real_targets(Model *m, int B) {
    const double lo = m->cfg.model.gan.label_smoothing, hi = m->cfg.model.gan.label_smoothing_max;
    if (!(hi > lo)) return;   // one number: the fixed targets of model_adversarial_targets
    m->be->fill_uniform(m->be, m->gan_targets + (size_t)ADV_TARGET_REAL * m->max_batch, (size_t)B,
                        m->cfg.train.seed ^ LABEL_SMOOTHING_SEED_SALT, (uint64_t)m->shard_start,
                        &m->state->uniform_offset, (float)(1.0 - hi), (float)(1.0 - lo));
}

// Fakes G(z) of z drawn at the step's offset (batch norm as m->training_mode says), then the
// discriminator's loss on the reals m->x (target 1 - smoothing, or drawn: draw_real_targets) and on
// the fakes (target 0, no gradient into G): rec_row = the sum per example, the discriminator's
// gradient region = the gradient of mean_b rec_row (the two halves' gradients summed).
void model_gan_discriminator_gradient(Model *m, int B) {
    model_forget_clear_gradients(m);   // it writes gradients
    Backend *be = m->be;
    NetRun run = model_net_run(m, B);
    Network *generator = m->decoder_net, *discriminator = m->encoder_net;
    const size_t disc_n = discriminator->n_params;
    float *d_grads = m->grads + m->gan_disc_offset;
    float *d_logits = m->grad_a;   // (B, 1)

    draw_z(m, B, true);
    draw_real_targets(m, B);
    const float *fake = network_forward(generator, &run, m->z);
    const float *real = real_images(m, B);

    discriminate(m, &run, real, ADV_TARGET_REAL, m->rec_row, d_logits);
    network_backward(discriminator, &run, real, d_logits, NULL);
    be->copy(be, m->gan_saved_grads, d_grads, disc_n * sizeof(float));
    discriminate(m, &run, fake, ADV_TARGET_FAKE, m->kl_row, d_logits);
    network_backward(discriminator, &run, fake, d_logits, NULL);
    be->add(be, d_grads, d_grads, m->gan_saved_grads, disc_n);
    be->add(be, m->rec_row, m->rec_row, m->kl_row, (size_t)B);
}

// After model_gan_discriminator_gradient: the discriminator (as it is now) on the same fakes,
// target 1 (the non-saturating loss -log D(G(z))): kl_row = it per example, the generator's
// gradient region = the gradient of mean_b kl_row (through D into G; the discriminator's
// region is left holding this loss's gradient, which no update uses).
void model_gan_generator_gradient(Model *m, int B) {
    model_forget_clear_gradients(m);   // it writes gradients
    NetRun run = model_net_run(m, B);
    float *d_logits = m->grad_a;   // (B, 1)
    float *d_fake = m->grad_b;     // (B, D)
    const float *fake = model_output(m);
    discriminate(m, &run, fake, ADV_TARGET_ONE, m->kl_row, d_logits);
    network_backward(m->encoder_net, &run, fake, d_logits, d_fake);
    network_backward(m->decoder_net, &run, m->z, d_fake, NULL);
}

// One training step on the real batch m->x (B rows), DCGAN's order: the discriminator's
// gradient and its Adam update, then the generator's gradient through the updated
// discriminator and its Adam update. rec_row = the discriminator's loss, kl_row the generator's.
static void gan_train_step(Model *m, int B, float w_rec) {
    (void)w_rec;   // no reconstruction
    model_gan_discriminator_gradient(m, B);
    model_optimizer_step_range(m, m->gan_disc_offset, round_up4(m->encoder_net->n_params), m->gan_disc_offset);
    model_gan_generator_gradient(m, B);
    model_optimizer_step_range(m, 0, m->gan_disc_offset, 0);
}

// Evaluation on the held-out images in m->x (B rows): rec_row = the discriminator's loss on them
// (target 1), kl_row = its loss on B fakes of z drawn at rng_offset (target 0). Nats per example.
void model_gan_loss(Model *m, int B) {
    NetRun run = model_net_run(m, B);
    const float *fake = model_output(m);   // model_forward drew them
    discriminate(m, &run, real_images(m, B), ADV_TARGET_ONE, m->rec_row, NULL);
    discriminate(m, &run, fake, ADV_TARGET_FAKE, m->kl_row, NULL);
}

// The generator's values (n) to pixels in [0, 1] (a tanh generator's (v + 1) / 2).
static void gan_to_pixels(const Model *m, float *values, size_t n) {
    if (!m->gan_tanh) return;
    for (size_t i = 0; i < n; i++) values[i] = 0.5f * (values[i] + 1.0f);
}

// The generator's parameters and the discriminator's (not the padding between their regions).
static size_t gan_parameter_count(const Model *m) { return m->decoder_net->n_params + m->encoder_net->n_params; }

static int gan_check_networks(const Config *cfg, char *err, size_t errlen) {
    const char *kind = model_kind_name(cfg->model.kind);
    if (model_refuse_masked_layers(kind, "generator", cfg->model.decoder_layers, cfg->model.n_decoder_layers, err,
                                   errlen) ||
        model_refuse_masked_layers(kind, "discriminator", cfg->model.encoder_layers, cfg->model.n_encoder_layers, err,
                                   errlen))
        return -1;
    Network *generator = xcalloc(1, sizeof *generator), *discriminator = xcalloc(1, sizeof *discriminator);
    int rc = model_gan_build(generator, discriminator, cfg, err, errlen);
    free(generator);
    free(discriminator);
    return rc;
}

uint64_t model_discriminator_gemm_flops(const Network *net, int B) {
    return 2 * network_gemm_flops(net, B, true) + network_gemm_flops(net, B, false);
}

// The generator from z (no dz), the discriminator three times.
static uint64_t gan_gemm_flops(const Model *m, int B) {
    return network_gemm_flops(m->decoder_net, B, true) + model_discriminator_gemm_flops(m->encoder_net, B);
}

// The discriminator's network, then the generator's.
static int gan_list_tensors(const Model *m, ModelTensor *out) {
    const int n = model_list_network_tensors(m->encoder_net, out);
    return n + model_list_network_tensors(m->decoder_net, out + n);
}

const ModelOps model_gan_ops = {
    .check_networks = gan_check_networks,
    .build = gan_build,
    .alloc = gan_alloc,
    .release = gan_release,
    .init = gan_init,
    .parameter_count = gan_parameter_count,
    .forward = gan_forward,
    .loss = model_gan_loss,
    .train_step = gan_train_step,
    .to_pixels = gan_to_pixels,
    .gemm_flops = gan_gemm_flops,
    .list_tensors = gan_list_tensors,
};
