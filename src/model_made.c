// model_made.c: the autoregressive kinds, made and pixelcnn: no latent, one network over the
// pixels whose output at position d is the logit of p(x_d = 1 | x_<d), so that
// -log p(x) = sum_d BCE(logit_d, x_d) exactly (the reconstruction loss of model.c, in nats);
// sampling is ancestral, D forward passes, one pixel each (a prior over VQ codes: one code
// from its softmax each, prior.c decodes them).
//
// "made" (Germain et al. 2015, deck 004): masked_linear layers and activations. The masks come
// from the ordering (input degree = 1 + position) and per-unit degrees drawn uniformly from
// [min degree below, D - 1] (seeded by train.seed): a hidden unit k of degree m(k) sees the units
// below of degree <= m(k); output d sees the last hidden units of degree < degree(d).
// model.masks > 1 (connectivity-agnostic training, Germain et al. section 3.4): a bank of mask
// sets (new hidden degrees, and with ordering "random" a new ordering, per set) is drawn at
// creation; each training step copies set (step mod masks) into the layers' masks on the
// device, and evaluation averages the sets' probabilities: -log p(x) = -log (1/N sum_k p_k(x)).
// Samples use set 0.
//
// "pixelcnn" (van den Oord et al. 2016): masked convolutions (layer_conv.c), 1x1 convolutions,
// residual connections and activations in raster order; its masks are its layers' own, so only
// the checks below are its.
//
// Kinds made and pixelcnn: ModelOps model_made_ops and model_pixelcnn_ops (at the end).
#include "cuvae/model.h"
#include "cuvae/common.h"
#include "cuvae/rng.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define MADE_ORDER_STREAM 41
#define MADE_DEGREE_STREAM 43

// A PixelCNN's network: masked convolutions (the first one type A), 1x1 stride-1 convolutions,
// residual connections and activations -- every layer that mixes positions is masked -- ending
// in one channel of logits over the image.
static int check_pixelcnn(const Network *net, const Config *cfg, char *err, size_t errlen) {
    const LayerKind *a = layer_kind_find("masked_conv2d_a"), *b = layer_kind_find("masked_conv2d_b");
    const LayerKind *conv = layer_kind_find("conv2d"), *residual = layer_kind_find("residual");
    bool seen_mask = false;
    int first_a = -1;   // the type-A layer: every tensor before its output still holds each pixel itself
    for (int i = 0; i < net->n_layers; i++) {
        const NetLayer *layer = &net->layers[i];
        const ConvGeometry *g = &layer->conf.conv.geometry;
        if (layer->kind == residual && (first_a < 0 || layer->skip_from < first_a)) {
            // its source is the network's input or a tensor before the type-A output: adding it
            // back would hand every pixel to its own logit
            return set_error(err, errlen, "model.network[%d] (residual): adds the input of layer %d, which comes "
                             "before the type-A convolution's output: each pixel would reach its own logit; "
                             "span only layers after the first masked_conv2d_a", i, layer->skip_from + 1);
        }
        if (layer->kind == a || layer->kind == b) {
            if (!seen_mask && layer->kind == b)
                return set_error(err, errlen, "model.network[%d] (masked_conv2d_b): the first masked convolution "
                                 "must be type A (masked_conv2d_a), which hides each pixel from its own output",
                                 i);
            if (!seen_mask) first_a = i;
            seen_mask = true;
        } else if (layer->kind == conv) {
            if (g->kernel != 1 || g->stride != 1 || g->padding != 0)
                return set_error(err, errlen, "model.network[%d] (conv2d): a PixelCNN's plain convolutions must be "
                                 "1x1 (kernel 1, stride 1, padding 0): a wider one sees later pixels; use "
                                 "masked_conv2d_b", i);
        } else if (layer->kind != residual && !layer_kind_is_activation(layer->kind)) {
            return set_error(err, errlen, "model.network[%d] (%s): a PixelCNN is masked convolutions, 1x1 "
                             "convolutions, residual connections and activations only", i, layer->kind->name);
        }
    }
    if (!seen_mask)
        return set_error(err, errlen, "model.network: needs a masked convolution (masked_conv2d_a first)");
    TensorShape want = cfg->model.prior_classes > 0 ? net->in : model_input_shape(cfg);
    const NetLayer *last = &net->layers[net->n_layers - 1];
    if (memcmp(&net->out, &want, sizeof want) != 0 || layer_kind_is_activation(last->kind)) {
        char got[48];
        tensor_shape_format(net->out, got, sizeof got);
        if (memcmp(&net->out, &want, sizeof want) == 0)   // the right shape, after an activation
            return set_error(err, errlen, "model.network: ends in %s, an activation: the loss takes the raw logits "
                             "(it applies the sigmoid / softmax itself); remove the last layer", last->kind->name);
        return set_error(err, errlen, "model.network: must end in %d channel%s of logits (%d, %d, %d) (%s), e.g. "
                         "{\"conv2d\": %d, \"kernel\": 1}; it ends in %s (%s)", want.dim[0], want.dim[0] > 1 ? "s" : "",
                         want.dim[0], want.dim[1], want.dim[2],
                         cfg->model.prior_classes > 0 ? "one per code of the VQ-VAE, per position" : "one per pixel",
                         want.dim[0], got, last->kind->name);
    }
    return 0;
}

int model_made_build(Network *net, const Config *cfg, size_t buffer_base, char *err, size_t errlen) {
    const bool pixelcnn = cfg->model.kind == MODEL_PIXELCNN;
    TensorShape in = {1, {cfg->model.input_dim, 0, 0}};
    if (pixelcnn && cfg->model.prior_classes > 0) {   // a prior: the one-hot codes (K, h, w)
        in.rank = 3;
        in.dim[0] = cfg->model.prior_classes;
        in.dim[1] = cfg->model.prior_h;
        in.dim[2] = cfg->model.prior_w;
    } else if (pixelcnn) {
        in = model_input_shape(cfg);
        if (in.rank != 3)
            return set_error(err, errlen, "model.input_dim: %d is not a square image; a PixelCNN needs one",
                             cfg->model.input_dim);
    }
    if (network_build(net, "network", cfg->model.decoder_layers, cfg->model.n_decoder_layers, in, 0, buffer_base,
                      err, errlen) != 0)
        return -1;
    if (pixelcnn) return check_pixelcnn(net, cfg, err, errlen);
    const LayerKind *masked = layer_kind_find("masked_linear");
    for (int i = 0; i < net->n_layers; i++) {
        const LayerKind *kind = net->layers[i].kind;
        if (kind != masked && !layer_kind_is_activation(kind))
            return set_error(err, errlen, "model.network[%d] (%s): a MADE is masked_linear layers and "
                             "activations only (any other layer would connect pixels the masks keep apart)",
                             i, kind->name);
    }
    if (net->layers[net->n_layers - 1].kind != masked || net->out.dim[0] != cfg->model.input_dim)
        return set_error(err, errlen, "model.network: must end in {\"masked_linear\": %d}, the logit of every "
                         "pixel", cfg->model.input_dim);
    return 0;
}

bool model_made_mask_sets_alike(const Model *m) {
    if (m->cfg.model.kind != MODEL_MADE || m->cfg.model.masks <= 1 || m->cfg.model.ordering != ORDERING_NATURAL)
        return false;
    const LayerKind *masked = layer_kind_find("masked_linear");
    int masked_layers = 0;
    for (int i = 0; i < m->decoder_net->n_layers; i++) masked_layers += m->decoder_net->layers[i].kind == masked;
    return masked_layers == 1;
}

// Random streams of mask set k: set 0 keeps the streams of a single-mask MADE.
static uint64_t order_stream(int set) { return MADE_ORDER_STREAM + 1000ull * (uint64_t)set; }
static uint64_t degree_stream(int set) { return MADE_DEGREE_STREAM + 1000ull * (uint64_t)set; }

void model_made_input_degrees(const Config *cfg, int set, int32_t *degree) {
    const int D = cfg->model.input_dim;
    int32_t *order = xmalloc((size_t)D * sizeof(int32_t));   // order[i]: the pixel at position i
    if (cfg->model.ordering == ORDERING_RANDOM) {   // each mask set its own ordering
        Rng rng;
        rng_init(&rng, cfg->train.seed, order_stream(set));
        rng_permutation(&rng, order, D);
    } else {
        for (int i = 0; i < D; i++) order[i] = i;
    }
    for (int i = 0; i < D; i++) degree[order[i]] = i + 1;
    free(order);
}

// Mask set `set` of every masked_linear layer, written at the layers' buffer offsets of
// `buffers` (a host image of the buffer region).
static void write_mask_set(const Model *m, int set, float *buffers) {
    const Network *net = m->decoder_net;
    const int D = m->input_dim;
    int32_t *input = xmalloc((size_t)D * sizeof(int32_t));
    model_made_input_degrees(&m->cfg, set, input);
    int last = net->n_layers - 1;
    int32_t *below = xmalloc((size_t)D * sizeof(int32_t));   // degrees of the current layer's inputs
    memcpy(below, input, (size_t)D * sizeof(int32_t));
    int n_below = D;
    Rng rng;
    rng_init(&rng, m->cfg.train.seed, degree_stream(set));
    for (int i = 0; i < net->n_layers; i++) {
        const NetLayer *layer = &net->layers[i];
        if (layer->kind != layer_kind_find("masked_linear")) continue;   // activations keep degrees
        const int out = layer->conf.linear.out, in = layer->conf.linear.in;
        float *mask = buffers + layer->buffer_offset;   // (out, in)
        if (i == last) {   // output d: strictly earlier units only
            for (int o = 0; o < out; o++)
                for (int j = 0; j < in; j++) mask[(size_t)o * in + j] = input[o] > below[j] ? 1.0f : 0.0f;
            break;
        }
        int lowest = D;
        for (int j = 0; j < n_below; j++) lowest = below[j] < lowest ? below[j] : lowest;
        if (lowest > D - 1) lowest = D - 1;
        int32_t *degree = xmalloc((size_t)out * sizeof(int32_t));
        for (int k = 0; k < out; k++)
            degree[k] = lowest + (int32_t)(rng_u32(&rng) % (uint32_t)(D - lowest));   // in [lowest, D - 1]
        for (int k = 0; k < out; k++)
            for (int j = 0; j < in; j++) mask[(size_t)k * in + j] = degree[k] >= below[j] ? 1.0f : 0.0f;
        free(below);
        below = degree;
        n_below = out;
    }
    free(below);
    free(input);
}

static int made_mask_sets(const Model *m) { return m->cfg.model.masks > 1 ? m->cfg.model.masks : 1; }

static void made_alloc(Model *m) {
    m->made_masks = made_mask_sets(m);
    if (m->made_masks == 1) return;
    // the bank: every set as an image of the whole buffer region (a MADE's buffers are its masks)
    Backend *be = m->be;
    const size_t n = m->n_buffers;
    float *host = xcalloc(n * (size_t)m->made_masks, sizeof(float));
    for (int k = 0; k < m->made_masks; k++) write_mask_set(m, k, host + (size_t)k * n);
    m->made_mask_bank = be->alloc(be, n * (size_t)m->made_masks * sizeof(float));
    be->upload(be, m->made_mask_bank, host, n * (size_t)m->made_masks * sizeof(float));
    m->made_saved_masks = be->alloc(be, n * sizeof(float));
    free(host);
}

static void made_release(Model *m) {
    if (m->made_mask_bank) m->be->free(m->be, m->made_mask_bank);
    if (m->made_saved_masks) m->be->free(m->be, m->made_saved_masks);
    m->made_mask_bank = m->made_saved_masks = NULL;
}

// Training (inside the step): the layers' masks = set (state->step mod masks), on the device.
static void select_step_masks(Model *m) {
    if (m->made_masks > 1)
        m->be->select_slice(m->be, m->buffers, m->made_mask_bank, m->n_buffers, m->made_masks, m->state);
}

void model_made_use_set(Model *m, int set) {
    m->be->copy(m->be, m->buffers, m->made_mask_bank + (size_t)set * m->n_buffers, m->n_buffers * sizeof(float));
}

void model_made_ensemble_loss(Model *m, int B) {
    Backend *be = m->be;
    const int N = m->made_masks;
    if (N == 1) {
        model_forward(m, B, EPS_ZERO);
        model_loss(m, B);
        return;
    }
    // log p(x) = log (1/N sum_k p_k(x)), per example, in double on the host (outside the step)
    be->copy(be, m->made_saved_masks, m->buffers, m->n_buffers * sizeof(float));
    float *rows = xmalloc((size_t)B * sizeof(float));
    double *log_p = xmalloc((size_t)N * B * sizeof(double));
    for (int k = 0; k < N; k++) {
        model_made_use_set(m, k);
        model_forward(m, B, EPS_ZERO);
        model_loss(m, B);
        be->download(be, rows, m->rec_row, (size_t)B * sizeof(float));
        for (int b = 0; b < B; b++) log_p[(size_t)k * B + b] = -(double)rows[b];
    }
    for (int b = 0; b < B; b++) {
        double top = log_p[b];
        for (int k = 1; k < N; k++) top = fmax(top, log_p[(size_t)k * B + b]);
        double sum = 0.0;
        for (int k = 0; k < N; k++) sum += exp(log_p[(size_t)k * B + b] - top);
        rows[b] = (float)-(top + log(sum) - log((double)N));
    }
    be->upload(be, m->rec_row, rows, (size_t)B * sizeof(float));
    be->copy(be, m->buffers, m->made_saved_masks, m->n_buffers * sizeof(float));
    free(rows);
    free(log_p);
}

bool model_made_sample(Model *m, int n, uint64_t seed, float *pixels) {
    Backend *be = m->be;
    const int D = m->input_dim;
    int32_t *degree = xmalloc((size_t)D * sizeof(int32_t)), *order = xmalloc((size_t)D * sizeof(int32_t));
    model_made_input_degrees(&m->cfg, 0, degree);   // mask set 0 and its ordering
    for (int d = 0; d < D; d++) order[degree[d] - 1] = d;
    if (m->made_masks > 1) {
        be->copy(be, m->made_saved_masks, m->buffers, m->n_buffers * sizeof(float));
        model_made_use_set(m, 0);
    }
    Rng rng;
    rng_init(&rng, seed, 0);
    const bool saved_mode = m->training_mode;
    m->training_mode = false;
    memset(pixels, 0, (size_t)n * D * sizeof(float));
    const int K = m->prior_classes;   // a prior: K logits per position
    const size_t out_width = (size_t)D * (K > 0 ? K : 1);
    float *logits = xmalloc((size_t)m->max_batch * out_width * sizeof(float));
    bool finite = true;
    Progress progress;   // (shown past 2 s: a PixelCNN's 64 samples are 784 forward passes)
    progress_begin(&progress, K > 0 ? "drawing codes position by position" : "drawing pixels one at a time");
    const long passes = (long)((n + m->max_batch - 1) / m->max_batch) * D;
    // (a logit not finite ends the draw: the model has diverged, and the caller refuses it at once)
    for (int start = 0; start < n && finite; start += m->max_batch) {
        const int B = n - start < m->max_batch ? n - start : m->max_batch;
        float *x = pixels + (size_t)start * D;   // (B, D): filled one position at a time
        for (int i = 0; i < D && finite; i++) {
            progress_update(&progress, (long)(start / m->max_batch) * D + i, passes);
            be->upload(be, m->x, x, (size_t)B * D * sizeof(float));
            model_forward(m, B, EPS_ZERO);
            be->download(be, logits, model_output(m), (size_t)B * out_width * sizeof(float));
            const int d = order[i];
            for (int b = 0; b < B; b++) {
                if (K > 0) {   // a prior: code k with probability softmax_k(logits[b, :, d]), as k / 255
                    const float *l = logits + (size_t)b * K * D + d;
                    float top = l[0], total = 0.0f;
                    for (int k = 1; k < K; k++) top = fmaxf(top, l[(size_t)k * D]);
                    for (int k = 0; k < K; k++) total += expf(l[(size_t)k * D] - top);
                    finite = finite && isfinite(total);   // (NaN for a logit inf or NaN)
                    float u = rng_uniform(&rng) * total, run = 0.0f;
                    int code = K - 1;
                    for (int k = 0; k < K; k++) {
                        run += expf(l[(size_t)k * D] - top);
                        if (u <= run) {
                            code = k;
                            break;
                        }
                    }
                    x[(size_t)b * D + d] = (float)code / 255.0f;
                    continue;
                }
                finite = finite && isfinite(logits[(size_t)b * D + d]);
                const float p = 1.0f / (1.0f + expf(-logits[(size_t)b * D + d]));
                x[(size_t)b * D + d] = rng_uniform(&rng) <= p ? 1.0f : 0.0f;
            }
        }
    }
    progress_end(&progress);
    if (m->made_masks > 1) be->copy(be, m->buffers, m->made_saved_masks, m->n_buffers * sizeof(float));
    m->training_mode = saved_mode;
    free(logits);
    free(degree);
    free(order);
    return finite;
}

static int made_check_networks(const Config *cfg, char *err, size_t errlen) {
    Network *net = xcalloc(1, sizeof *net);
    int rc = model_made_build(net, cfg, 0, err, errlen);
    free(net);
    return rc;
}

// One masked network from the pixels to their logits (m->decoder_net); no latent, no heads.
static int made_build(Model *m, char *err, size_t errlen) {
    m->autoregressive = true;
    m->head = -1;
    m->input_shape = model_input_shape(&m->cfg);
    m->decoder_net = xcalloc(1, sizeof *m->decoder_net);
    if (model_made_build(m->decoder_net, &m->cfg, 0, err, errlen) != 0) return -1;
    m->n_params = m->decoder_net->n_params;
    m->n_buffers = m->decoder_net->n_buffers;
    m->prior_classes = m->cfg.model.prior_classes;
    return 0;
}

static void made_init(Model *m, float *params, float *buffers, Rng *rng) {
    network_init(m->decoder_net, params, buffers, rng);
}

// The pixels (a prior: its codes' one-hot) straight into the masked network.
static void made_forward(Model *m, int B, EpsMode eps_mode) {
    (void)eps_mode;   // nothing drawn
    Backend *be = m->be;
    if (m->training_mode) select_step_masks(m);   // model.masks > 1: this step's set
    NetRun run = model_net_run(m, B);
    if (m->prior_classes) be->codes_onehot(be, m->x_onehot, m->x, B, m->prior_classes, m->input_dim);
    network_forward(m->decoder_net, &run, m->prior_classes ? m->x_onehot : m->x);
}

// The masked network back to its weights; the pixels need no gradient.
static void made_backward(Model *m, int B, float *dY, float *spare) {
    (void)spare;
    NetRun run = model_net_run(m, B);
    network_backward(m->decoder_net, &run, m->prior_classes ? m->x_onehot : m->x, dY, NULL);
}

// The masked network from the data (no input gradient for it).
static uint64_t made_gemm_flops(const Model *m, int B) { return network_gemm_flops(m->decoder_net, B, true); }

// The masked network ("network.<index>.<tensor>", its masks as buffers).
static int made_list_tensors(const Model *m, ModelTensor *out) {
    return model_list_network_tensors(m->decoder_net, out);
}

const ModelOps model_made_ops = {
    .check_networks = made_check_networks,
    .build = made_build,
    .alloc = made_alloc,
    .release = made_release,
    .init = made_init,
    .forward = made_forward,
    .loss = model_output_loss,
    .backward = made_backward,
    .mask_sets = made_mask_sets,
    .write_masks = write_mask_set,
    .gemm_flops = made_gemm_flops,
    .list_tensors = made_list_tensors,
};

// A PixelCNN's masks are its layers' own (layer_conv.c writes and checks them).
const ModelOps model_pixelcnn_ops = {
    .check_networks = made_check_networks,
    .build = made_build,
    .alloc = made_alloc,
    .release = made_release,
    .init = made_init,
    .forward = made_forward,
    .loss = model_output_loss,
    .backward = made_backward,
    .gemm_flops = made_gemm_flops,
    .list_tensors = made_list_tensors,
};
