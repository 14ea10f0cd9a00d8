// model_vq.c: the VQ-VAE's vector quantiser (van den Oord et al. 2017) between a
// layer-list encoder and decoder. Per example the encoder emits S code vectors
// of D values (an image (D, H, W): one per position); each is replaced by its
// nearest codebook entry (squared distance as ||e||^2 - 2 z.e from one GEMM and
// an argmin kernel); the decoder reads the quantized vectors. Loss per example:
// rec + ||sg[z_e] - e||^2 + beta ||z_e - sg[e]||^2 (update "loss": the codebook
// is a trained parameter), or rec + beta ||z_e - sg[e]||^2 with the codebook
// following exponential moving averages of its assigned vectors (update "ema").
// The gradient passes straight through the quantiser to the encoder. Kind vq_vae's
// ModelOps (model_vq_ops).
#include "cuvae/model.h"
#include "cuvae/common.h"
#include "cuvae/rng.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define VQ_RESTART_SEED_SALT 0x5EEDC0DEull
#define VQ_UNIFORM_CODES_STREAM 41

static int vq_check_networks(const Config *cfg, char *err, size_t errlen) {
    return model_check_encoder_decoder(cfg, cfg->model.latent_dim, err, errlen);
}

// The quantiser after the encoder (out (D, H, W) or (D), checked by model_build_encoder_network):
// params and buffers grow by the codebook.
static void vq_setup(Model *m) {
    const Config *cfg = &m->cfg;
    const TensorShape out = m->encoder_net->out;
    const int D = cfg->model.latent_dim, K = cfg->model.codebook.size;
    m->vq = true;
    m->vq_dim = D;
    m->vq_size = K;
    m->vq_shape = out;
    m->vq_positions = out.rank == 3 ? out.dim[1] * out.dim[2] : 1;
    m->latent_dim = D * m->vq_positions;
    if (cfg->model.codebook.ema) {   // not trained by the optimizer: buffers
        m->codebook_offset = m->n_buffers;
        m->ema_offset = m->n_buffers + (size_t)K * D;
        m->n_buffers += (size_t)K * D + K + (size_t)K * D;
    } else {
        m->codebook_offset = m->n_params;
        m->n_params += (size_t)K * D;
    }
}

// The encoder's layer list, the quantiser (no heads), the decoder's list from the code grid.
static int vq_build(Model *m, char *err, size_t errlen) {
    const Config *cfg = &m->cfg;
    m->input_shape = model_input_shape(cfg);
    m->encoder_net = xcalloc(1, sizeof *m->encoder_net);
    if (model_build_encoder_network(m->encoder_net, cfg, cfg->model.latent_dim, err, errlen) != 0) return -1;
    m->n_params = m->encoder_net->n_params;
    m->n_buffers = m->encoder_net->n_buffers;
    vq_setup(m);
    m->head = -1;
    m->decoder_net = xcalloc(1, sizeof *m->decoder_net);
    if (model_build_decoder_network(m->decoder_net, cfg, m->vq_shape, m->n_params, m->n_buffers, err, errlen) != 0)
        return -1;
    m->n_params += m->decoder_net->n_params;
    m->n_buffers += m->decoder_net->n_buffers;
    return 0;
}

static void vq_alloc(Model *m) {
    Backend *be = m->be;
    const size_t N = (size_t)m->max_batch * m->vq_positions, D = (size_t)m->vq_dim, K = (size_t)m->vq_size;
    m->codebook = (m->cfg.model.codebook.ema ? m->buffers : m->params) + m->codebook_offset;
    m->vq_zt = be->alloc(be, D * N * sizeof(float));
    m->vq_zqt = be->alloc(be, D * N * sizeof(float));
    m->vq_dzt = be->alloc(be, D * N * sizeof(float));
    m->vq_scores = be->alloc(be, N * K * sizeof(float));
    m->vq_norms = be->alloc(be, K * sizeof(float));
    m->vq_codes = be->alloc(be, N * sizeof(int32_t));
}

static void vq_release(Model *m) {
    Backend *be = m->be;
    be->free(be, m->vq_zt);
    be->free(be, m->vq_zqt);
    be->free(be, m->vq_dzt);
    be->free(be, m->vq_scores);
    be->free(be, m->vq_norms);
    be->free(be, m->vq_codes);
}

// The encoder's init, the codebook U(-1/K, 1/K) as the VQ-VAE reference implementations (EMA: sums
// start at the codebook and counts at 0), the decoder's.
static void vq_init(Model *m, float *params, float *buffers, Rng *rng) {
    network_init(m->encoder_net, params, buffers, rng);
    const size_t K = (size_t)m->vq_size, D = (size_t)m->vq_dim;
    float *codebook = (m->cfg.model.codebook.ema ? buffers : params) + m->codebook_offset;
    const float bound = 1.0f / (float)K;
    for (size_t i = 0; i < K * D; i++) codebook[i] = rng_uniform_range(rng, -bound, bound);
    if (m->cfg.model.codebook.ema) {
        float *counts = buffers + m->ema_offset, *sums = counts + K;
        memset(counts, 0, K * sizeof(float));
        memcpy(sums, codebook, K * D * sizeof(float));
    }
    network_init(m->decoder_net, params, buffers, rng);
}

// From the encoder's output z_e (B, D, S): m->z = z_q (B, D, S), kl_row = the VQ term.
static void quantize(Model *m, const float *z_e, int B) {
    Backend *be = m->be;
    const int D = m->vq_dim, K = m->vq_size, S = m->vq_positions, N = B * S;
    const float beta = (float)m->cfg.model.codebook.beta;
    be->swap_leading_axes(be, m->vq_zt, z_e, B, D, S);             // (D, B S)
    be->vq_code_norms(be, m->vq_norms, m->codebook, K, D);
    be->gemm(be, true, true, N, K, D, 1.0f, m->vq_zt, N, m->codebook, D, 0.0f, m->vq_scores, K);
    be->vq_argmin(be, m->vq_codes, m->vq_scores, m->vq_norms, N, K);
    // the VQ term's value: codebook + commitment ((1 + beta) ||z - e||^2), or commitment alone (EMA)
    const float weight = m->cfg.model.codebook.ema ? beta : 1.0f + beta;
    be->vq_quantize(be, m->vq_zqt, m->kl_row, m->vq_zt, m->codebook, m->vq_codes, B, S, D, weight);
    be->swap_leading_axes(be, m->z, m->vq_zqt, D, B, S);           // z_q (B, D, S)
}

// From dz_q (B, D, S): dz_e (B, D, S) straight through, the codebook's gradient (update "loss") or its
// EMA update (training).
static void quantize_backward(Model *m, const float *dz, float *dz_e, int B) {
    Backend *be = m->be;
    const int D = m->vq_dim, K = m->vq_size, S = m->vq_positions, N = B * S;
    const float inv_batch = 1.0f / (float)B, beta = (float)m->cfg.model.codebook.beta;
    const bool ema = m->cfg.model.codebook.ema;
    be->swap_leading_axes(be, m->vq_zqt, dz, B, D, S);             // dz_q as columns (reuses zqt)
    be->vq_backward(be, m->vq_dzt, ema ? NULL : m->grads + m->codebook_offset, m->vq_zqt, m->vq_zt,
                    m->codebook, m->vq_codes, N, K, D, beta * inv_batch, inv_batch);
    be->swap_leading_axes(be, dz_e, m->vq_dzt, D, B, S);           // (B, D, S)
    if (ema && m->training_mode) {
        float *counts = m->buffers + m->ema_offset, *sums = counts + K;
        be->vq_ema_update(be, m->codebook, counts, sums, m->vq_zt, m->vq_codes, N, K, D,
                          (float)m->cfg.model.codebook.decay, (float)m->cfg.model.codebook.eps);
        // codes (almost) never chosen restart at a vector of this batch; at the first step
        // that is every code: the codebook starts from the data
        if (m->cfg.model.codebook.restart_dead > 0)
            be->vq_restart_dead(be, m->codebook, counts, sums, m->vq_zt, N, K, D,
                                (float)(m->cfg.model.codebook.restart_dead * N / K),
                                m->cfg.train.seed ^ VQ_RESTART_SEED_SALT, m->state);
    }
}

static void vq_forward(Model *m, int B, EpsMode eps_mode) {
    (void)eps_mode;   // nothing drawn: the codes are the nearest ones
    NetRun run = model_net_run(m, B);
    quantize(m, network_forward(m->encoder_net, &run, m->x), B);
    model_decode(m, B);
}

// The output's loss (the VQ term is the forward's, in kl_row).
static void vq_loss(Model *m, int B) { model_output_loss(m, B); }

static void vq_backward(Model *m, int B, float *dY, float *spare) {
    (void)spare;
    NetRun run = model_net_run(m, B);
    network_backward(m->decoder_net, &run, m->z, dY, m->grad_h);   // dz_q (B, D, S)
    quantize_backward(m, m->grad_h, dY, B);                          // dz_e into dY's buffer
    network_backward(m->encoder_net, &run, m->x, dY, NULL);
}

static int vq_check_loaded_buffers(const Model *m, const float *buffers, char *what, size_t whatlen) {
    if (!m->cfg.model.codebook.ema) return 0;
    const float *counts = buffers + m->ema_offset;   // (K)
    for (int k = 0; k < m->vq_size; k++)
        if (!(counts[k] >= 0.0f)) {
            snprintf(what, whatlen, "quantizer.ema_counts, element %d is %g: a count is never negative (the file "
                     "was edited?)", k, (double)counts[k]);
            return -1;
        }
    return 0;
}

void model_vq_read_codes(Model *m, int B, int32_t *codes) {
    m->be->download(m->be, codes, m->vq_codes, (size_t)B * m->vq_positions * sizeof(int32_t));
}

void model_vq_uniform_latents(Model *m, float *z, int n, uint64_t seed) {
    const int D = m->vq_dim, K = m->vq_size, S = m->vq_positions;
    float *codebook = xmalloc((size_t)K * D * sizeof(float));
    m->be->download(m->be, codebook, m->codebook, (size_t)K * D * sizeof(float));
    Rng rng;
    rng_init(&rng, seed, VQ_UNIFORM_CODES_STREAM);
    for (int i = 0; i < n; i++)
        for (int s = 0; s < S; s++) {
            int k = (int)(rng_u32(&rng) % (uint32_t)K);
            for (int d = 0; d < D; d++) z[((size_t)i * D + d) * S + s] = codebook[(size_t)k * D + d];   // (D, S)
        }
    free(codebook);
}

// The encoder, the decoder from z_q, the nearest-code search: scores (B S, K) = z_e (B S, D) . codebook^T.
static uint64_t vq_gemm_flops(const Model *m, int B) {
    return network_gemm_flops(m->encoder_net, B, true) + network_gemm_flops(m->decoder_net, B, false) +
           2ull * (uint64_t)B * (uint64_t)m->vq_positions * (uint64_t)m->vq_size * (uint64_t)m->vq_dim;
}

// The encoder's network, the codebook as nn.Embedding's weight (the EMA statistics as buffers), the
// decoder's network.
static int vq_list_tensors(const Model *m, ModelTensor *out) {
    int n = model_list_network_tensors(m->encoder_net, out);
    const bool ema = m->cfg.model.codebook.ema;
    const int64_t K = m->vq_size, D = m->vq_dim;
    snprintf(out[n].name, MODEL_TENSOR_NAME, "quantizer.embedding.weight");
    out[n].buffer = ema;
    out[n].offset = m->codebook_offset;
    out[n].rank = 2;
    out[n].shape[0] = K;
    out[n].shape[1] = D;
    n++;
    if (ema) {
        snprintf(out[n].name, MODEL_TENSOR_NAME, "quantizer.ema_counts");
        out[n].buffer = true;
        out[n].offset = m->ema_offset;
        out[n].rank = 1;
        out[n].shape[0] = K;
        n++;
        snprintf(out[n].name, MODEL_TENSOR_NAME, "quantizer.ema_sums");
        out[n].buffer = true;
        out[n].offset = m->ema_offset + (size_t)K;
        out[n].rank = 2;
        out[n].shape[0] = K;
        out[n].shape[1] = D;
        n++;
    }
    n += model_list_network_tensors(m->decoder_net, out + n);
    return n;
}

const ModelOps model_vq_ops = {
    .check_networks = vq_check_networks,
    .build = vq_build,
    .alloc = vq_alloc,
    .release = vq_release,
    .init = vq_init,
    .forward = vq_forward,
    .loss = vq_loss,
    .backward = vq_backward,
    .draw_latents = model_vq_uniform_latents,
    .check_loaded_buffers = vq_check_loaded_buffers,
    .gemm_flops = vq_gemm_flops,
    .list_tensors = vq_list_tensors,
};
