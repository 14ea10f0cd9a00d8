// model.c: what every model kind shares, on top of the backend interface: the model's creation
// (its kind's ModelOps build the networks: model_latent.c, model_vq.c, model_made.c,
// model_gan.c, model_aae.c), the flat parameter arena [params | grads | adam m | adam v] and the
// buffer region, the encoder / decoder layer lists' checks, the output's fused loss + gradient
// before the kind's backward, the loss accumulator, the optimizer and the host copies.
// Knows nothing about the hardware.
#include "cuvae/model.h"
#include "cuvae/common.h"
#include "cuvae/rng.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RNG_STREAM_INIT 7
#define BINARIZE_SEED_SALT 0xD1CEull

static RecLoss choose_rec_loss(const Config *cfg) {
    if (cfg->loss.reconstruction == REC_BCE) return RECLOSS_BCE_LOGITS;
    return cfg->model.output == OUTPUT_BERNOULLI ? RECLOSS_MSE_SIGMOID : RECLOSS_MSE_IDENTITY;
}

TensorShape model_input_shape(const Config *cfg) {
    TensorShape shape;
    memset(&shape, 0, sizeof shape);
    if (cfg->model.input_shape[0]) {   // model.input_shape (C, H, W)
        shape.rank = 3;
        for (int k = 0; k < 3; k++) shape.dim[k] = cfg->model.input_shape[k];
        return shape;
    }
    const int input_dim = cfg->model.input_dim;
    int side = 1;
    while ((long)side * side < input_dim) side++;
    if ((long)side * side == input_dim) {   // a square grey image
        shape.rank = 3;
        shape.dim[0] = 1;
        shape.dim[1] = side;
        shape.dim[2] = side;
    } else {
        shape.rank = 1;
        shape.dim[0] = input_dim;
    }
    return shape;
}

bool model_image_shape(const Model *m, int *channels, int *rows, int *cols) {
    const TensorShape s = m->input_shape;
    if (s.rank != 3 || (s.dim[0] != 1 && s.dim[0] != 3)) return false;
    *channels = s.dim[0];
    *rows = s.dim[1];
    *cols = s.dim[2];
    return true;
}

void model_not_image_reason(const Model *m, char *out, size_t n) {
    const TensorShape s = m->input_shape;
    if (s.rank == 3)
        snprintf(out, n, "the model's input is %d x %d x %d (model.input_shape): an image needs 1 (grey) or 3 (RGB) "
                 "channels", s.dim[0], s.dim[1], s.dim[2]);
    else
        snprintf(out, n, "the model's input (%d values, no model.input_shape) is not an image", m->input_dim);
}

int model_build_encoder_network(Network *net, const Config *cfg, int code_channels, char *err, size_t errlen) {
    if (network_build(net, "encoder", cfg->model.encoder_layers, cfg->model.n_encoder_layers,
                      model_input_shape(cfg), 0, 0, err, errlen) != 0)
        return -1;
    if (code_channels > 0) {
        if (net->out.dim[0] == code_channels) return 0;
        char out[48];
        tensor_shape_format(net->out, out, sizeof out);
        return set_error(err, errlen, "model.encoder: ends in %s, but the codes have model.latent_dim = %d values: "
                         "its output must be (%d, H, W) or (%d)", out, code_channels, code_channels, code_channels);
    }
    if (net->out.rank != 1) {
        char out[48];
        tensor_shape_format(net->out, out, sizeof out);
        return set_error(err, errlen, "model.encoder: ends in %s; end it with {\"flatten\": {}} (or a linear "
                         "layer) so the mu / logvar heads read a flat vector", out);
    }
    return 0;
}

int model_build_decoder_network(Network *net, const Config *cfg, TensorShape latent, size_t param_base,
                                 size_t buffer_base, char *err, size_t errlen) {
    if (network_build(net, "decoder", cfg->model.decoder_layers, cfg->model.n_decoder_layers, latent,
                      param_base, buffer_base, err, errlen) != 0)
        return -1;
    TensorShape input = model_input_shape(cfg);
    bool fits = tensor_shape_size(net->out) == (size_t)cfg->model.input_dim &&
                (net->out.rank == 1 || memcmp(&net->out, &input, sizeof input) == 0);
    if (!fits) {
        char got[48], want[48];
        tensor_shape_format(net->out, got, sizeof got);
        tensor_shape_format(input, want, sizeof want);
        return set_error(err, errlen, "model.decoder: its output %s is not the data's shape %s (or %d values)",
                         got, want, cfg->model.input_dim);
    }
    // the last layer that computes gives the logits (bernoulli) or the values (gaussian)
    const bool bernoulli = cfg->model.output == OUTPUT_BERNOULLI;
    return network_check_raw_output(net, bernoulli ? "the decoder ends in the output's logits"
                                                   : "the decoder ends in the output's values",
                                    bernoulli ? " (model.output \"bernoulli\" applies the sigmoid inside the loss); "
                                                "end it with a linear or convolution layer"
                                              : " (model.output \"gaussian\": the decoder's last layer gives the "
                                                "mean itself, any real value); end it with a linear or convolution layer",
                                    err, errlen);
}

// masked_linear / masked_conv2d_* belong to made / pixelcnn (whose kinds write or check their
// masks); elsewhere (vae, ae, cvae, vq_vae, gan, aae: every layer list) they are refused.
int model_refuse_masked_layers(const char *kind, const char *key, const LayerSpec *specs, int n, char *err,
                               size_t errlen) {
    for (int i = 0; i < n; i++)
        if (strncmp(specs[i].kind, "masked_", 7) == 0)
            return set_error(err, errlen, "model.%s[%d] (%s): a masked layer belongs to kind \"made\" or "
                             "\"pixelcnn\" (kind \"%s\" has no use for its mask)", key, i, specs[i].kind, kind);
    return 0;
}


int model_check_networks(const Config *cfg, char *err, size_t errlen) {
    const ModelOps *ops = model_kind_info(cfg->model.kind)->ops;
    if (!ops) return set_error(err, errlen, "model.kind: %d is not a model kind", (int)cfg->model.kind);
    return ops->check_networks(cfg, err, errlen);
}

int model_check_encoder_decoder(const Config *cfg, int code_channels, char *err, size_t errlen) {
    const char *kind = model_kind_name(cfg->model.kind);
    Network *net = xcalloc(1, sizeof *net);
    int rc = 0;
    if (model_refuse_masked_layers(kind, "encoder", cfg->model.encoder_layers, cfg->model.n_encoder_layers, err,
                                   errlen) ||
        model_refuse_masked_layers(kind, "decoder", cfg->model.decoder_layers, cfg->model.n_decoder_layers, err,
                                   errlen)) {
        free(net);
        return -1;
    }
    TensorShape latent = {1, {cfg->model.latent_dim, 0, 0}};
    if (cfg->model.n_encoder_layers > 0) rc = model_build_encoder_network(net, cfg, code_channels, err, errlen);
    if (code_channels > 0) latent = net->out;   // the decoder reads the code grid
    if (rc == 0 && cfg->model.n_decoder_layers > 0)
        rc = model_build_decoder_network(net, cfg, latent, 0, 0, err, errlen);
    free(net);
    return rc;
}

// z (B, L) is a buffer of its own where it is drawn (vae, cvae, a gan's generator input) or where
// no head computes it (a VQ-VAE's quantised codes); an AE's (and an aae's) z is its head.
static bool owns_z(const Model *m) { return m->latent_dim > 0 && (m->variational || m->head < 0); }

static int model_create_with(Model *m, const Config *cfg, Backend *be, int max_batch, bool forward_only,
                             char *err, size_t errlen) {
    memset(m, 0, sizeof *m);
    m->forward_only = forward_only;
    m->cfg = *cfg;
    m->be = be;
    m->max_batch = max_batch;
    m->latent_dim = cfg->model.latent_dim;
    m->input_dim = cfg->model.input_dim;
    m->variational = model_kind_info(cfg->model.kind)->draws_z;
    m->n_classes = cfg->model.condition == CONDITION_LABEL ? cfg->model.n_classes : 0;
    m->rec_loss = choose_rec_loss(cfg);
    m->pixel_weight = cfg->loss.reduction == REDUCTION_MEAN ? 1.0f / (float)m->input_dim : 1.0f;
    m->ops = model_kind_info(cfg->model.kind)->ops;
    if (max_batch < 1 || !m->ops) {   // (nothing allocated: m zeroed, as model_destroy expects of a failed create)
        memset(m, 0, sizeof *m);
        if (max_batch < 1) return set_error(err, errlen, "model: batch size must be >= 1");
        return set_error(err, errlen, "model.kind: %d is not a model kind", (int)cfg->model.kind);
    }
    if (m->ops->build(m, err, errlen) != 0) {
        free(m->encoder_net);
        free(m->decoder_net);
        memset(m, 0, sizeof *m);
        return -1;
    }
    // a training model's batch is train.batch_size's (or the training set's size); a forward-only
    // model's is the evaluation's (eval_model_rows: up to 1000 test examples, or eval.iw_batch rows)
    char batch_origin[1800];
    if (forward_only)
        snprintf(batch_origin, sizeof batch_origin, "%s", cfg->source);
    else
        config_key_origin(cfg, "train.batch_size", batch_origin, sizeof batch_origin);
    const char *advice = forward_only
        ? "the evaluation takes up to 1000 test examples at a time (eval.iw_batch rows with eval.iw_samples, "
          "where more): lower data.test_limit (or an eval.iw_batch over 1000), or use a smaller image"
        : "lower train.batch_size or use a smaller image";
    Network *const nets[] = {m->encoder_net, m->decoder_net, m->aae_discriminator};
    for (size_t k = 0; k < sizeof nets / sizeof nets[0]; k++)
        if (nets[k] && network_check_batch(nets[k], max_batch, batch_origin, advice, err, errlen) != 0) {   // (nothing allocated yet)
            for (size_t j = 0; j < sizeof nets / sizeof nets[0]; j++) free(nets[j]);
            memset(m, 0, sizeof *m);
            return -1;
        }
    const int C = m->n_classes;

    size_t max_width = (size_t)m->input_dim;
    // a backward into a z no head computes (a VQ-VAE's dz_q, dz_e) passes through these buffers
    const bool dz_without_head = m->head < 0 && m->ops->backward && m->latent_dim > 0;
    if (dz_without_head && (size_t)m->latent_dim > max_width) max_width = (size_t)m->latent_dim;
    if (m->decoder_net && tensor_shape_size(m->decoder_net->out) > max_width)   // a prior: K logits a position
        max_width = tensor_shape_size(m->decoder_net->out);
    for (int i = 0; i < m->n_layers; i++) {
        if ((size_t)m->layers[i].out > max_width) max_width = m->layers[i].out;
        if ((size_t)m->layers[i].in > max_width) max_width = m->layers[i].in;
    }

    // parameter arena: one allocation, so Adam is one launch and zeroing one memset;
    // each region padded to a multiple of 4 floats so every view is 16-byte aligned
    // (Adam moves float4s); the padding stays 0 (zero gradient, zero moments)
    // (a forward-only model holds the parameters alone: no gradients, no optimizer moments; it
    // took 4x its weights' memory until 2026-12-06)
    size_t P = m->n_params;
    m->arena_stride = (P + 3) & ~(size_t)3;
    m->arena = be->alloc(be, (forward_only ? 1 : 4) * m->arena_stride * sizeof(float));
    m->params = m->arena;
    m->grads = forward_only ? NULL : m->arena + m->arena_stride;
    m->adam_m = forward_only ? NULL : m->arena + 2 * m->arena_stride;
    m->adam_v = forward_only ? NULL : m->arena + 3 * m->arena_stride;
    m->grads_clear = be->updates_clear_gradients;   // alloc zero-filled them (see Model.grads_clear)

    size_t B = (size_t)max_batch;
    m->x = be->alloc(be, B * m->input_dim * sizeof(float));
    if (m->encoder_net) network_alloc(m->encoder_net, be, max_batch, !forward_only);
    if (m->decoder_net) network_alloc(m->decoder_net, be, max_batch, !forward_only);
    m->buffers = be->alloc(be, (m->n_buffers ? m->n_buffers : 1) * sizeof(float));
    for (int i = 0; i < m->n_layers; i++)
        m->acts[i] = be->alloc(be, B * m->layers[i].out * sizeof(float));
    if (owns_z(m))
        m->z = be->alloc(be, B * (size_t)m->latent_dim * sizeof(float));
    else if (m->head >= 0)
        m->z = m->acts[m->head];   // AE: the code is the mu head itself
    if (m->ops->alloc) m->ops->alloc(m);
    if (m->prior_classes) m->x_onehot = be->alloc(be, B * (size_t)m->prior_classes * m->input_dim * sizeof(float));
    m->eps = NULL;                 // model_eps_buffer
    m->binarize = cfg->data.binarize == BINARIZE_DYNAMIC;
    m->binarize_seed = cfg->train.seed ^ BINARIZE_SEED_SALT;
    m->grad_a = be->alloc(be, B * max_width * sizeof(float));
    m->grad_b = be->alloc(be, B * max_width * sizeof(float));
    const size_t head_width = m->head >= 0 ? (size_t)m->layers[m->head].out
                            : dz_without_head ? (size_t)m->latent_dim : 0;
    m->grad_h = be->alloc(be, B * head_width * sizeof(float));
    if (C > 0) m->onehot = be->alloc(be, B * C * sizeof(float));
    m->kl_coef = be->alloc(be, (size_t)m->latent_dim * sizeof(float));
    m->kl_dim_sum = be->alloc(be, (size_t)m->latent_dim * sizeof(float));
    m->rec_row = be->alloc(be, B * sizeof(float));
    m->kl_row = be->alloc(be, B * sizeof(float));
    m->loss_acc = be->alloc(be, 3 * sizeof(double));
    m->grad_clip_scratch = cfg->train.grad_clip > 0.0 ? be->alloc(be, GRAD_CLIP_SCRATCH * sizeof(double)) : NULL;
    m->rng_seed = cfg->train.seed * 1000003ull + 11;
    m->rng_offset = 0;
    m->state = be->alloc(be, sizeof(StepState));
    model_begin_training(m, 1, (float)cfg->train.lr);
    return 0;
}

int model_create(Model *m, const Config *cfg, Backend *be, int max_batch, char *err, size_t errlen) {
    return model_create_with(m, cfg, be, max_batch, false, err, errlen);
}

int model_create_forward_only(Model *m, const Config *cfg, Backend *be, int max_batch, char *err,
                              size_t errlen) {
    return model_create_with(m, cfg, be, max_batch, true, err, errlen);
}

float *model_eps_buffer(Model *m) {
    if (!m->eps) m->eps = m->be->alloc(m->be, (size_t)m->max_batch * m->latent_dim * sizeof(float));
    return m->eps;
}

void model_begin_training(Model *m, long steps_per_epoch, float lr) {
    const Config *cfg = &m->cfg;
    StepPlan plan;
    memset(&plan, 0, sizeof plan);
    plan.steps_per_epoch = steps_per_epoch > 0 ? steps_per_epoch : 1;
    plan.batch = m->max_batch;
    plan.latent_dim = m->latent_dim;
    plan.input_dim = m->input_dim;
    plan.beta1 = cfg->train.beta1;
    plan.beta2 = cfg->train.beta2;
    plan.kl = model_kl_plan(cfg);
    plan.lr.warmup_steps = cfg->train.warmup_steps;
    plan.lr.cosine = cfg->train.lr_schedule == LR_COSINE;
    plan.lr.total_steps = (int64_t)cfg->train.epochs * plan.steps_per_epoch;
    plan.lr.min_lr = cfg->train.lr_min;
    m->plan = plan;
    m->be->drop_steps(m->be, NULL);   // captured steps froze the old plan
    // allocated now, not inside a captured step
    if (m->variational && cfg->train.epsilon == EPSILON_STORED) model_eps_buffer(m);
    m->kl_needs_stats = plan.kl.capacity || plan.kl.free_bits > 0.0;
    StepState state;
    memset(&state, 0, sizeof state);
    step_state_reset(&state, lr);
    state.kl = kl_schedule_at(plan.kl, 0.0);
    m->be->upload(m->be, m->state, &state, sizeof state);
}

void model_set_learning_rate(Model *m, float lr) {
    m->be->upload(m->be, &m->state->lr, &lr, sizeof lr);
}

void model_read_step_state(Model *m, StepState *out) {
    m->be->download(m->be, out, m->state, sizeof *out);
}

void model_set_kl_schedule(Model *m, KlSchedule kl) {
    if ((kl.capacity || kl.free_bits > 0.0f) && !m->kl_needs_stats) {
        m->kl_needs_stats = true;
        m->be->drop_steps(m->be, NULL);   // captured steps skip the statistics
    }
    m->be->upload(m->be, &m->state->kl, &kl, sizeof kl);
}

bool model_flat_batch_norm(const Model *m, char *where, size_t wherelen) {
    const Network *const nets[] = {m->encoder_net, m->decoder_net, m->aae_discriminator};
    for (size_t k = 0; k < sizeof nets / sizeof nets[0]; k++) {
        const int i = nets[k] ? network_flat_batch_norm(nets[k]) : -1;
        if (i >= 0) {
            snprintf(where, wherelen, "model.%s[%d] (batch_norm)", nets[k]->name, i);
            return true;
        }
    }
    return false;
}

size_t model_parameter_count(const Model *m) {
    return m->ops->parameter_count ? m->ops->parameter_count(m) : m->n_params;
}

void model_destroy(Model *m) {
    Backend *be = m->be;
    if (!be) return;
    be->free(be, m->arena);
    be->free(be, m->x);
    for (int i = 0; i < m->n_layers; i++) be->free(be, m->acts[i]);
    if (owns_z(m)) be->free(be, m->z);
    if (m->ops->release) m->ops->release(m);
    if (m->x_onehot) be->free(be, m->x_onehot);
    be->free(be, m->eps);
    be->free(be, m->state);
    be->free(be, m->grad_a);
    be->free(be, m->grad_b);
    be->free(be, m->grad_h);
    be->free(be, m->onehot);
    be->free(be, m->kl_coef);
    be->free(be, m->kl_dim_sum);
    be->free(be, m->rec_row);
    be->free(be, m->kl_row);
    be->free(be, m->loss_acc);
    if (m->grad_clip_scratch) be->free(be, m->grad_clip_scratch);
    be->free(be, m->buffers);
    if (m->encoder_net) network_free(m->encoder_net, be);
    if (m->decoder_net) network_free(m->decoder_net, be);
    free(m->encoder_net);
    free(m->decoder_net);
    memset(m, 0, sizeof *m);
}

void model_init_params(Model *m, uint64_t seed) {
    float *host = xcalloc(m->n_params, sizeof(float));   // a gan's padding between its regions stays 0
    float *buffers = xcalloc(m->n_buffers ? m->n_buffers : 1, sizeof(float));
    Rng rng;
    rng_init(&rng, seed, RNG_STREAM_INIT);
    m->ops->init(m, host, buffers, &rng);
    if (m->ops->write_masks) m->ops->write_masks(m, 0, buffers);   // mask set 0 (a PixelCNN's are its layers')
    model_set_params(m, host);
    model_set_buffers(m, buffers);
    free(host);
    free(buffers);
    if (m->adam_m) m->be->zero(m->be, m->adam_m, 2 * m->arena_stride * sizeof(float));   // m and v
}

int model_check_loaded_buffers(Model *m, const float *buffers, char *what, size_t whatlen) {
    if (m->n_buffers == 0) return 0;
    Network *const nets[] = {m->encoder_net, m->decoder_net, m->aae_discriminator};
    const int n_nets = (int)(sizeof nets / sizeof nets[0]);
    int rc = 0;
    bool fixed = false;   // masks: compared with the model's own (below)
    for (int k = 0; k < n_nets && rc == 0; k++) {
        if (!nets[k]) continue;
        rc = network_check_loaded_buffers(nets[k], buffers, NULL, what, whatlen);
        fixed = fixed || network_has_fixed_buffers(nets[k]);
    }
    if (rc == 0 && fixed) {
        const int sets = m->ops->mask_sets ? m->ops->mask_sets(m) : 1;   // (the file holds the last used)
        float *fresh = xcalloc(m->n_buffers, sizeof(float));
        char first[512] = "";
        for (int set = 0; set < sets; set++) {
            for (int k = 0; k < n_nets; k++)
                if (nets[k]) network_init_fixed_buffers(nets[k], fresh);
            if (m->ops->write_masks) m->ops->write_masks(m, set, fresh);
            rc = 0;
            for (int k = 0; k < n_nets && rc == 0; k++)
                if (nets[k]) rc = network_check_loaded_buffers(nets[k], buffers, fresh, set ? what : first,
                                                               set ? whatlen : sizeof first);
            if (rc == 0) break;
        }
        if (rc != 0) snprintf(what, whatlen, "%s%s", first, sets > 1 ? " (nor is it any other of its mask sets)" : "");
        free(fresh);
    }
    if (rc == 0 && m->ops->check_loaded_buffers) rc = m->ops->check_loaded_buffers(m, buffers, what, whatlen);
    return rc;
}

float *model_output(Model *m) {
    if (m->decoder_net) return m->decoder_net->outputs[m->decoder_net->n_layers - 1];
    return m->acts[m->n_layers - 1];
}

NetRun model_net_run(Model *m, int B) {
    NetRun run;
    memset(&run, 0, sizeof run);
    run.be = m->be;
    run.B = B;
    run.training = m->training_mode;
    run.params = m->params;
    run.grads = m->grads;
    run.buffers = m->buffers;
    run.weight_grads_onto_zeros = m->weight_grads_onto_zeros;
    return run;
}
int model_list_network_tensors(const Network *net, ModelTensor *out) {
    int n = 0;
    for (int i = 0; i < net->n_layers; i++) {
        const NetLayer *layer = &net->layers[i];
        for (int k = 0; k < layer->n_tensors; k++) {
            const LayerTensor *t = &layer->tensors[k];
            snprintf(out[n].name, MODEL_TENSOR_NAME, "%s.%d.%s", net->name, layer->index, t->name);
            out[n].buffer = t->buffer;
            out[n].offset = (t->buffer ? layer->buffer_offset : layer->param_offset) + t->offset;
            out[n].rank = t->rank;
            for (int d = 0; d < t->rank; d++) out[n].shape[d] = t->shape[d];
            n++;
        }
    }
    return n;
}

int model_list_tensors(const Model *m, ModelTensor *out) {
    memset(out, 0, MODEL_MAX_TENSORS * sizeof *out);
    return m->ops->list_tensors(m, out);
}

void model_forward(Model *m, int B, EpsMode eps_mode) { m->ops->forward(m, B, eps_mode); }

void model_loss(Model *m, int B) { m->ops->loss(m, B); }

void model_output_loss(Model *m, int B) {
    Backend *be = m->be;
    if (m->prior_classes)   // a prior: -log p(codes), K classes per position
        be->categorical_loss(be, NULL, m->rec_row, model_output(m), m->x, B, m->prior_classes, m->input_dim, 0.0f);
    else
        be->reconstruction_loss(be, NULL, m->rec_row, model_output(m), m->x, B, m->input_dim, m->rec_loss,
                                m->pixel_weight, 0.0f);
}

KlPlan model_kl_plan(const Config *cfg) {
    KlPlan plan;
    memset(&plan, 0, sizeof plan);
    plan.w_kl = cfg->loss.w_kl;
    plan.warmup_epochs = cfg->loss.kl_warmup_epochs;
    plan.free_bits = cfg->loss.free_bits;
    plan.capacity = cfg->loss.has_capacity ? 1 : 0;
    plan.capacity_max_nats = cfg->loss.capacity_max_nats;
    plan.capacity_epochs = cfg->loss.capacity_epochs;
    plan.capacity_gamma = cfg->loss.capacity_gamma;
    return plan;
}

KlSchedule model_kl_schedule(const Config *cfg, double epoch_position) {
    return kl_schedule_at(model_kl_plan(cfg), epoch_position);
}

int model_batch_of_one_error(const char *origin, const char *flat_norm, const char *detail, char *err,
                             size_t errlen) {
    return set_error(err, errlen, "%s: %s normalises each feature over the batch: a batch of one example has no "
                     "statistics (%s); use 2 or more", origin, flat_norm, detail);
}

double model_weighted_loss_sum(const Config *cfg, double w_rec, double rec, double kl_sum, double count,
                               double epoch_position) {
    const KlSchedule kl = model_kl_schedule(cfg, epoch_position);
    if (kl.capacity && count > 0) return w_rec * rec + kl.capacity_gamma * fabs(kl_sum / count - kl.capacity_target) * count;
    return w_rec * rec + kl.weight * kl_sum;
}

void model_backward(Model *m, int B, float w_rec, float w_kl) {
    KlSchedule s;
    memset(&s, 0, sizeof s);
    s.weight = w_kl;
    model_set_kl_schedule(m, s);
    model_backward_scheduled(m, B, w_rec);
}

static void backward_scheduled(Model *m, int B, float w_rec);

void model_backward_scheduled(Model *m, int B, float w_rec) {
    m->weight_grads_onto_zeros = m->grads_clear;   // see Model.grads_clear
    m->grads_clear = false;
    backward_scheduled(m, B, w_rec);
    m->weight_grads_onto_zeros = false;
}

void model_forget_clear_gradients(Model *m) { m->grads_clear = false; }

void model_clear_gradients(Model *m) {
    m->be->zero(m->be, m->grads, m->arena_stride * sizeof(float));
    m->grads_clear = m->be->updates_clear_gradients;
}

int model_mean_rows(const Model *m, int B) { return m->global_rows > 0 ? m->global_rows : B; }

static void backward_scheduled(Model *m, int B, float w_rec) {
    Backend *be = m->be;
    if (!m->ops->backward) {   // a caller's bug: the kind trains by its own step
        fprintf(stderr, "cuvae: internal error: a backward through a model of kind %s\n",
                model_kind_name(m->cfg.model.kind));
        abort();
    }
    const float inv_batch = 1.0f / (float)model_mean_rows(m, B);

    // fused reconstruction loss + d(loss)/d(output), already scaled by w_rec / B
    float *dY = m->grad_a;
    if (m->prior_classes)   // a prior: the categorical loss over the codes
        be->categorical_loss(be, dY, m->rec_row, model_output(m), m->x, B, m->prior_classes, m->input_dim,
                             w_rec * inv_batch);
    else
        be->reconstruction_loss(be, dY, m->rec_row, model_output(m), m->x, B, m->input_dim,
                                m->rec_loss, m->pixel_weight, w_rec * inv_batch);
    m->ops->backward(m, B, dY, m->grad_b);
}

void model_accumulate_loss(Model *m, int B) {
    // the second term: the KL of a VAE, the VQ term of a VQ-VAE; an AE has none
    // a gan: the discriminator's loss and the generator's (training), or its two terms (evaluation)
    // an aae: the discriminator's loss (on z against the prior's draws)
    const float *second = model_kind_info(m->cfg.model.kind)->second ? m->kl_row : NULL;
    m->be->accumulate_loss(m->be, m->loss_acc, m->rec_row, second, B);
}

void model_peek_loss_accumulator(Model *m, double acc[3]) {
    m->be->download(m->be, acc, m->loss_acc, 3 * sizeof(double));
}

void model_set_loss_accumulator(Model *m, const double acc[3]) {
    m->be->upload(m->be, m->loss_acc, acc, 3 * sizeof(double));
}

void model_read_loss(Model *m, double *rec_sum, double *kl_sum, double *count) {
    double acc[3];
    m->be->download(m->be, acc, m->loss_acc, sizeof acc);
    m->be->zero(m->be, m->loss_acc, sizeof acc);
    *rec_sum = acc[0];
    *kl_sum = acc[1];
    *count = acc[2];
}

void model_clip_gradients(Model *m) {
    if (!m->grad_clip_scratch) return;
    m->be->grad_clip(m->be, m->grads, m->arena_stride, (float)m->cfg.train.grad_clip, m->grad_clip_scratch);
}

void model_optimizer_step(Model *m) {
    model_optimizer_step_range(m, 0, m->arena_stride, 0);
    m->grads_clear = m->be->updates_clear_gradients;   // the whole arena was updated
}

static OptimizerParams optimizer_params(const Config *cfg) {
    OptimizerParams o;
    memset(&o, 0, sizeof o);
    o.beta1 = (float)cfg->train.beta1;
    o.beta2 = (float)cfg->train.beta2;
    o.eps = (float)cfg->train.adam_eps;
    o.momentum = (float)cfg->train.momentum;
    o.weight_decay = (float)cfg->train.weight_decay;
    o.decoupled = strcmp(cfg->train.optimizer, "adamw") == 0;
    return o;
}

void model_optimizer_step_range(Model *m, size_t offset, size_t n, size_t moment_offset) {
    const OptimizerParams o = optimizer_params(&m->cfg);
    if (strcmp(m->cfg.train.optimizer, "sgd") == 0)   // the momentum buffer is the arena's first-moment region
        m->be->sgd_update(m->be, m->params + offset, m->grads + offset, m->adam_m + moment_offset, n, m->state, o);
    else
        m->be->adam_update(m->be, m->params + offset, m->grads + offset, m->adam_m + moment_offset,
                           m->adam_v + moment_offset, n, m->state, o);
}

void model_queue_optimizer_update(Model *m, size_t offset, size_t n) {
    m->be->queue_update(m->be, m->params + offset, m->grads + offset, m->adam_m + offset, m->adam_v + offset, n,
                        m->state, optimizer_params(&m->cfg), strcmp(m->cfg.train.optimizer, "sgd") == 0);
}

void model_backward_and_step(Model *m, int B, float w_rec) {
    if (m->ops->train_step || m->data_parallel || m->grad_clip_scratch) {   // a caller's bug (step.c decides)
        fprintf(stderr, "cuvae: internal error: model_backward_and_step on a model whose update needs the "
                        "whole gradient first\n");
        abort();
    }
    // the linear decoder's layers (they end the arena) are queued by the backward
    const bool linear_decoder = m->head >= 0 && !m->decoder_net;
    if (linear_decoder && m->layers[m->n_layers - 1].bias_offset + (size_t)m->layers[m->n_layers - 1].out != m->n_params) {
        fprintf(stderr, "cuvae: internal error: the linear decoder does not end the parameter arena\n");
        abort();
    }
    m->queue_updates = linear_decoder;
    model_backward_scheduled(m, B, w_rec);
    m->queue_updates = false;
    model_queue_optimizer_update(m, 0, linear_decoder ? m->layers[m->head + 1].weight_offset : m->arena_stride);
    m->be->finish_updates(m->be);
    m->grads_clear = m->be->updates_clear_gradients;   // the whole arena was updated
}

void model_get_params(Model *m, float *host) {
    m->be->download(m->be, host, m->params, m->n_params * sizeof(float));
}

void model_set_params(Model *m, const float *host) {
    m->be->upload(m->be, m->params, host, m->n_params * sizeof(float));
}

void model_get_buffers(Model *m, float *host) {
    if (m->n_buffers) m->be->download(m->be, host, m->buffers, m->n_buffers * sizeof(float));
}

void model_set_buffers(Model *m, const float *host) {
    if (m->n_buffers) m->be->upload(m->be, m->buffers, host, m->n_buffers * sizeof(float));
}

void model_copy_weights(Model *dst, Model *src) {
    if (dst->be == src->be) {   // the same device: no round trip through the host
        src->be->copy(src->be, dst->params, src->params, src->n_params * sizeof(float));
        if (src->n_buffers) src->be->copy(src->be, dst->buffers, src->buffers, src->n_buffers * sizeof(float));
        return;
    }
    float *params = xmalloc(src->n_params * sizeof(float));
    model_get_params(src, params);
    model_set_params(dst, params);
    free(params);
    if (src->n_buffers) {
        float *buffers = xmalloc(src->n_buffers * sizeof(float));
        model_get_buffers(src, buffers);
        model_set_buffers(dst, buffers);
        free(buffers);
    }
}

bool model_decode_pixels(Model *m, const float *z, const uint8_t *labels, int n, float *pixels) {
    Backend *be = m->be;
    const int L = m->latent_dim, D = m->input_dim;
    uint8_t *labels_dev = m->n_classes ? be->alloc(be, (size_t)m->max_batch) : NULL;
    for (int start = 0; start < n; start += m->max_batch) {
        int B = n - start < m->max_batch ? n - start : m->max_batch;
        be->upload(be, m->z, z + (size_t)start * L, (size_t)B * L * sizeof(float));
        if (m->n_classes) {
            be->upload(be, labels_dev, labels + start, (size_t)B);
            be->gather_onehot(be, m->onehot, labels_dev, NULL, 0, NULL, B, m->n_classes);
        }
        model_decode(m, B);
        be->download(be, pixels + (size_t)start * D, model_output(m), (size_t)B * D * sizeof(float));
    }
    if (labels_dev) be->free(be, labels_dev);
    bool finite = true;
    for (size_t i = 0; i < (size_t)n * D && finite; i++) finite = isfinite(pixels[i]);
    model_outputs_to_pixels(m, pixels, (size_t)n * D);
    return finite;
}

void model_outputs_to_pixels(Model *m, float *pixels, size_t count) {
    if (m->ops->to_pixels)   // a gan's generator range
        m->ops->to_pixels(m, pixels, count);
    else if (m->cfg.model.output == OUTPUT_BERNOULLI)
        for (size_t i = 0; i < count; i++) pixels[i] = 1.0f / (1.0f + expf(-pixels[i]));
}

void model_draw_latents(Model *m, float *z, int n, uint64_t seed) {
    if (m->ops->draw_latents)   // a VQ-VAE's codes, an aae's prior
        m->ops->draw_latents(m, z, n, seed);
    else
        rng_fill_normal(z, (size_t)n * m->latent_dim, seed, 0);
}
