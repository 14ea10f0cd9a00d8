// model_latent.c: the kinds vae, ae and cvae (ModelOps model_latent_ops; the aae builds on them):
// an encoder (the shorthand MLP's layers or a layer-list network) into the mu / logvar head (a
// VAE's [mu | logvar], an AE's code), the reparametrization, and a decoder (linear layers or a
// network); their forward, the fused loss + KL backward, and the linear layers' updates queued
// during the backward (model_backward_and_step).
#include "cuvae/model.h"
#include "cuvae/common.h"

#include <math.h>
#include <string.h>

// Appends linear layer (out, in + cond) to the shorthand list; its weights and bias at the
// parameter region's end.
static void add_layer(Model *m, int in, int cond, int out, Activation act) {
    Layer *layer = &m->layers[m->n_layers++];
    layer->in = in;
    layer->cond = cond;
    layer->out = out;
    layer->act = act;
    layer->weight_offset = m->n_params;
    m->n_params += ((size_t)in + (size_t)cond) * (size_t)out;
    layer->bias_offset = m->n_params;
    m->n_params += (size_t)out;
}

static int latent_check_networks(const Config *cfg, char *err, size_t errlen) {
    return model_check_encoder_decoder(cfg, 0, err, errlen);
}

// Encoder (shorthand layers or a network), the head, decoder. -1 with err on a bad graph.
int model_latent_build(Model *m, char *err, size_t errlen) {
    const Config *cfg = &m->cfg;
    if (cfg->model.n_encoder < 1 && cfg->model.n_encoder_layers < 1)
        return set_error(err, errlen, "model.encoder: needs at least one layer");
    const int L = m->latent_dim;
    int width = m->input_dim;
    m->input_shape = model_input_shape(cfg);
    // the condition joins the first encoder layer's input and the first decoder layer's input
    const int C = m->n_classes;
    if (cfg->model.n_encoder_layers > 0) {
        m->encoder_net = xcalloc(1, sizeof *m->encoder_net);
        if (model_build_encoder_network(m->encoder_net, cfg, 0, err, errlen) != 0) return -1;
        m->n_params = m->encoder_net->n_params;
        m->n_buffers = m->encoder_net->n_buffers;
        width = m->encoder_net->out.dim[0];
    } else {
        for (int i = 0; i < cfg->model.n_encoder; i++) {
            add_layer(m, width, i == 0 ? C : 0, cfg->model.encoder[i], cfg->model.activation);
            width = cfg->model.encoder[i];
        }
    }
    m->n_trunk = m->n_layers;
    m->head = m->n_layers;
    add_layer(m, width, 0, m->variational ? 2 * L : L, ACT_NONE);
    width = L;
    if (cfg->model.n_decoder_layers > 0) {
        TensorShape latent = {1, {L, 0, 0}};
        m->decoder_net = xcalloc(1, sizeof *m->decoder_net);
        if (model_build_decoder_network(m->decoder_net, cfg, latent, m->n_params, m->n_buffers, err, errlen) != 0)
            return -1;
        m->n_params += m->decoder_net->n_params;
        m->n_buffers += m->decoder_net->n_buffers;
    } else {
        for (int i = 0; i < cfg->model.n_decoder; i++) {
            add_layer(m, width, i == 0 ? C : 0, cfg->model.decoder[i], cfg->model.activation);
            width = cfg->model.decoder[i];
        }
        add_layer(m, width, cfg->model.n_decoder == 0 ? C : 0, m->input_dim, ACT_NONE);
    }
    return 0;
}

void model_latent_init(Model *m, float *host, float *buffers, Rng *rng) {
    if (m->encoder_net) network_init(m->encoder_net, host, buffers, rng);
    for (int i = 0; i < m->n_layers; i++) {
        const Layer *layer = &m->layers[i];
        // torch.nn.Linear default: kaiming_uniform(a=sqrt(5)) == U(-1/sqrt(in), 1/sqrt(in)),
        // bias U(-1/sqrt(in), 1/sqrt(in))
        float bound = 1.0f / sqrtf((float)(layer->in + layer->cond));
        for (size_t k = 0; k < ((size_t)layer->in + (size_t)layer->cond) * (size_t)layer->out; k++)
            host[layer->weight_offset + k] = rng_uniform_range(rng, -bound, bound);
        for (int k = 0; k < layer->out; k++)
            host[layer->bias_offset + k] = rng_uniform_range(rng, -bound, bound);
    }
    if (m->decoder_net) network_init(m->decoder_net, host, buffers, rng);
}

float *model_head(Model *m) { return m->acts[m->head]; }

// Y (B, out) = act(X (B, in) W[:, :in]^T + onehot (B, C) W[:, in:]^T + b)
static void linear_forward(Model *m, int i, const float *X, int B) {
    Backend *be = m->be;
    const Layer *layer = &m->layers[i];
    const int row = layer->in + layer->cond;             // W is (out, in + cond)
    const float *W = m->params + layer->weight_offset;
    be->gemm(be, false, true, B, layer->out, layer->in, 1.0f, X, layer->in, W, row, 0.0f,
             m->acts[i], layer->out);
    if (layer->cond)
        be->gemm(be, false, true, B, layer->out, layer->cond, 1.0f, m->onehot, layer->cond,
                 W + layer->in, row, 1.0f, m->acts[i], layer->out);
    be->bias_activation_forward(be, m->acts[i], m->params + layer->bias_offset, B, layer->out,
                                layer->act);
}

// Given dY (B, out) (already through this layer's activation): dW, db (unless bias_grad_done:
// activation_backward_bias_grad made it with dY), and, if dX != NULL, dX (B, in) = dY W[:, :in].
static void linear_backward(Model *m, int i, const float *X, const float *dY, float *dX, int B,
                            bool bias_grad_done) {
    Backend *be = m->be;
    const Layer *layer = &m->layers[i];
    const int row = layer->in + layer->cond;
    const float *W = m->params + layer->weight_offset;
    float *dW = m->grads + layer->weight_offset;             // (out, in + cond)
    const float dW_beta = m->weight_grads_onto_zeros ? 1.0f : 0.0f;   // dW is 0 already: the same values
    be->gemm(be, true, false, layer->out, layer->in, B, 1.0f, dY, layer->out, X, layer->in, dW_beta,
             dW, row);
    if (layer->cond)
        be->gemm(be, true, false, layer->out, layer->cond, B, 1.0f, dY, layer->out, m->onehot,
                 layer->cond, dW_beta, dW + layer->in, row);
    if (!bias_grad_done) be->bias_grad(be, m->grads + layer->bias_offset, dY, B, layer->out);
    if (dX)
        be->gemm(be, false, false, B, layer->in, layer->out, 1.0f, dY, layer->out, W, row, 0.0f,
                 dX, layer->in);
}

void model_decode(Model *m, int B) {
    if (m->decoder_net) {
        NetRun run = model_net_run(m, B);
        network_forward(m->decoder_net, &run, m->z);
        return;
    }
    const float *X = m->z;
    for (int i = m->head + 1; i < m->n_layers; i++) {
        linear_forward(m, i, X, B);
        X = m->acts[i];
    }
}

// The trunk's linear layers and the head from the encoder's features X (B, features).
static void heads_forward(Model *m, const float *X, int B) {
    for (int i = 0; i <= m->head; i++) {
        linear_forward(m, i, X, B);
        X = m->acts[i];
    }
}

void model_encode(Model *m, int B) {
    const float *X = m->x;
    if (m->encoder_net) {
        NetRun run = model_net_run(m, B);
        X = network_forward(m->encoder_net, &run, m->x);
    }
    heads_forward(m, X, B);
}

// The epsilon of this forward (B, L): stored draws filled now, the fused draw's source (told to
// the backend, which may draw it ahead), the given buffer, or none (EPS_ZERO: z = mu).
static EpsSource eps_source_of(Model *m, int B, EpsMode eps_mode) {
    Backend *be = m->be;
    const int L = m->latent_dim;
    EpsSource eps;
    memset(&eps, 0, sizeof eps);
    eps.seed = m->rng_seed;
    if (eps_mode == EPS_SAMPLE && m->cfg.train.epsilon == EPSILON_STORED) {
        // the draw index base is read on the device: graph-capturable
        // (a rank's shard draws the rows of the global batch it holds)
        be->fill_normal(be, model_eps_buffer(m), (size_t)B * L, m->rng_seed,
                        (uint64_t)m->shard_start * (uint64_t)L, &m->state->eps_offset);
        eps.buffer = m->eps;
    } else if (eps_mode == EPS_SAMPLE) {
        eps.draw = true;
        eps.base = (uint64_t)m->shard_start * (uint64_t)L;
        eps.offset = &m->state->eps_offset;
    } else if (eps_mode == EPS_DRAW) {
        eps.draw = true;
        eps.base = m->rng_offset;
    } else if (eps_mode == EPS_GIVEN) {
        eps.buffer = model_eps_buffer(m);
    }
    if (eps.draw) be->draw_eps_ahead(be, eps, B, L);
    return eps;
}

void model_latent_forward(Model *m, int B, EpsMode eps_mode) {
    const float *X = m->x;
    if (m->encoder_net) {
        NetRun run = model_net_run(m, B);
        X = network_forward(m->encoder_net, &run, m->x);
    }
    if (m->variational) m->eps_source = eps_source_of(m, B, eps_mode);   // before the heads: see draw_eps_ahead
    heads_forward(m, X, B);
    if (m->variational) m->be->reparam_forward(m->be, m->z, m->acts[m->head], m->eps_source, B, m->latent_dim);
    model_decode(m, B);
}

void model_latent_loss(Model *m, int B) {
    model_output_loss(m, B);
    if (m->variational) {
        EpsSource none;
        memset(&none, 0, sizeof none);
        m->be->kl_reparam_backward(m->be, NULL, m->kl_row, m->acts[m->head], none, NULL, B, m->latent_dim, NULL);
    }
}

// Layer i's weights and bias, the arena's padding too for the last layer (its end).
static void queue_layer_update(Model *m, int i) {
    const Layer *layer = &m->layers[i];
    size_t end = i == m->n_layers - 1 ? m->arena_stride : layer->bias_offset + (size_t)layer->out;
    model_queue_optimizer_update(m, layer->weight_offset, end - layer->weight_offset);
}

static void encode_backward(Model *m, int B) {
    Backend *be = m->be;
    // head and encoder trunk
    float *dY = m->grad_h;
    float *spare = m->grad_a;
    float *other = m->grad_b;
    const float *features = m->encoder_net
        ? m->encoder_net->outputs[m->encoder_net->n_layers - 1] : m->x;   // the trunk's input to layer 0
    for (int i = m->head; i >= 0; i--) {
        const float *X = (i == 0) ? features : m->acts[i - 1];
        float *dX = (i == 0) ? (m->encoder_net ? spare : NULL) : spare;
        linear_backward(m, i, X, dY, dX, B, i < m->head);   // below the head, the step before made db
        if (i == 0) {
            if (m->encoder_net) {
                NetRun run = model_net_run(m, B);
                network_backward(m->encoder_net, &run, m->x, dX, NULL);
            }
            break;
        }
        be->activation_backward_bias_grad(be, dX, m->grads + m->layers[i - 1].bias_offset, m->acts[i - 1], B,
                                          m->layers[i].in, m->layers[i - 1].act);
        dY = dX;
        float *t = spare;
        spare = other;
        other = t;
    }
}

void model_encode_backward(Model *m, int B) {
    model_forget_clear_gradients(m);   // it writes gradients (the adversarial autoencoder's phases)
    encode_backward(m, B);
}

void model_latent_backward(Model *m, int B, float *dY, float *spare) {
    Backend *be = m->be;
    const int last = m->n_layers - 1;
    const int mean_rows = model_mean_rows(m, B);
    // decoder, last layer first; the first decoder layer's input gradient is dz
    if (m->decoder_net) {
        float *dz = m->variational ? spare : m->grad_h;
        NetRun run = model_net_run(m, B);
        network_backward(m->decoder_net, &run, m->z, dY, dz);
        spare = dY;
        dY = dz;
    }
    for (int i = last; i > m->head; i--) {
        const float *X = (i == m->head + 1) ? m->z : m->acts[i - 1];
        float *dX = (i == m->head + 1 && !m->variational) ? m->grad_h : spare;
        linear_backward(m, i, X, dY, dX, B, i < last);   // below the last, the step before made db
        if (m->queue_updates) queue_layer_update(m, i);
        if (i - 1 > m->head)   // layer i - 1's dY and, in the same pass, its bias gradient
            be->activation_backward_bias_grad(be, dX, m->grads + m->layers[i - 1].bias_offset, m->acts[i - 1], B,
                                              m->layers[i].in, m->layers[i - 1].act);
        spare = (float *)dY;
        dY = dX;
    }

    // reparametrization backward fused with the KL term and its gradient; the
    // per-dimension coefficients come from batch statistics kept on the device
    if (m->variational) {
        // which statistics the schedule needs is fixed for a run (free bits and capacity
        // are on or off), so the op sequence stays the same from step to step
        bool needs_stats = m->kl_needs_stats;
        if (needs_stats) {
            be->kl_statistics(be, m->kl_dim_sum, m->acts[m->head], B, m->latent_dim);
            // the global batch's statistics: the same coefficients on every rank
            if (m->data_parallel) be->all_reduce_sum(be, m->kl_dim_sum, (size_t)m->latent_dim);
        }
        be->kl_coefficients(be, m->kl_coef, needs_stats ? m->kl_dim_sum : NULL, mean_rows, m->latent_dim,
                            m->state);
        be->kl_reparam_backward(be, m->grad_h, m->kl_row, m->acts[m->head], m->eps_source, dY, B,
                                m->latent_dim, m->kl_coef);
    }

    encode_backward(m, B);
}

// The shorthand layers [first, last] of m: forward, dW and dX (none for the data, layer 0 without
// an encoder network) and a CVAE layer's one-hot columns (one more forward and dW GEMM).
static uint64_t layers_gemm_flops(const Model *m, int B, int first, int last) {
    uint64_t flops = 0;
    for (int i = first; i <= last; i++) {
        const Layer *layer = &m->layers[i];
        uint64_t one = 2ull * (uint64_t)B * (uint64_t)layer->in * (uint64_t)layer->out;
        flops += one;             // forward: Y = X W^T
        flops += one;             // backward: dW = dY^T X
        if (i > 0 || m->encoder_net) flops += one;  // backward: dX = dY W (none for the data)
        flops += 2ull * 2ull * (uint64_t)B * (uint64_t)layer->cond * (uint64_t)layer->out;
    }
    return flops;
}

uint64_t model_latent_encoder_gemm_flops(const Model *m, int B) {
    const uint64_t network = m->encoder_net ? network_gemm_flops(m->encoder_net, B, true) : 0;
    return network + layers_gemm_flops(m, B, 0, m->head);
}

uint64_t model_latent_gemm_flops(const Model *m, int B) {
    const uint64_t decoder = m->decoder_net ? network_gemm_flops(m->decoder_net, B, false)
                                            : layers_gemm_flops(m, B, m->head + 1, m->n_layers - 1);
    return model_latent_encoder_gemm_flops(m, B) + decoder;
}

// The encoder's network, the shorthand layers as nn.Linear (encoder.{i}, mu, logvar, decoder.{i}, i
// counting linears; the VAE head (2L, in) split into mu (rows 0..L-1) and logvar (rows L..2L-1),
// contiguous slices), the decoder's network.
int model_latent_list_tensors(const Model *m, ModelTensor *out) {
    int n = 0;
    if (m->encoder_net) n += model_list_network_tensors(m->encoder_net, out + n);
    for (int i = 0; i < m->n_layers; i++) {
        const Layer *layer = &m->layers[i];
        if (i == m->head) {
            int L = m->latent_dim;
            const char *heads[2] = {"mu", "logvar"};
            int n_heads = m->variational ? 2 : 1;
            for (int h = 0; h < n_heads; h++) {
                snprintf(out[n].name, MODEL_TENSOR_NAME, "%s.weight", heads[h]);
                out[n].offset = layer->weight_offset + (size_t)h * L * layer->in;
                out[n].rank = 2;
                out[n].shape[0] = L;
                out[n].shape[1] = layer->in;
                n++;
                snprintf(out[n].name, MODEL_TENSOR_NAME, "%s.bias", heads[h]);
                out[n].offset = layer->bias_offset + (size_t)h * L;
                out[n].rank = 1;
                out[n].shape[0] = L;
                n++;
            }
            continue;
        }
        const char *part = i < m->head ? "encoder" : "decoder";
        int index = i < m->head ? i : i - m->head - 1;
        snprintf(out[n].name, MODEL_TENSOR_NAME, "%s.%d.weight", part, index);
        out[n].offset = layer->weight_offset;
        out[n].rank = 2;
        out[n].shape[0] = layer->out;
        out[n].shape[1] = layer->in + layer->cond;   // cvae: [input ; one-hot label] columns
        n++;
        snprintf(out[n].name, MODEL_TENSOR_NAME, "%s.%d.bias", part, index);
        out[n].offset = layer->bias_offset;
        out[n].rank = 1;
        out[n].shape[0] = layer->out;
        n++;
    }
    if (m->decoder_net) n += model_list_network_tensors(m->decoder_net, out + n);
    return n;
}

const ModelOps model_latent_ops = {
    .check_networks = latent_check_networks,
    .build = model_latent_build,
    .init = model_latent_init,
    .forward = model_latent_forward,
    .loss = model_latent_loss,
    .backward = model_latent_backward,
    .gemm_flops = model_latent_gemm_flops,
    .list_tensors = model_latent_list_tensors,
};
