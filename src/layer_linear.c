// layer_linear.c: {"linear": N} -- torch.nn.Linear: y (B, N) = x (B, in) W^T + b,
// W (N, in), b (N); init U(-1/sqrt(in), 1/sqrt(in)) for both (PyTorch's default). And its
// masked twin {"masked_linear": N} (MADE), below.
#include "cuvae/layer_kind.h"

#include <math.h>
#include <stdio.h>

static int linear_check(LayerSpec *spec, char *key, size_t keylen, char *msg, size_t msglen) {
    if (layer_check_args(spec, 1, 1, true, 1, 1 << 20, "the output width", msg, msglen)) return -1;
    return layer_apply_options(spec, NULL, 0, key, keylen, msg, msglen);
}

static int linear_build(NetLayer *layer, const LayerSpec *spec, char *msg, size_t msglen) {
    if (layer->in.rank != 1) {
        char shape[48];
        tensor_shape_format(layer->in, shape, sizeof shape);
        snprintf(msg, msglen, "needs a flat input, got %s; put {\"flatten\": {}} before it", shape);
        return -1;
    }
    LinearConf *c = &layer->conf.linear;
    c->in = layer->in.dim[0];
    c->out = (int)spec->args[0];
    layer->out.rank = 1;
    layer->out.dim[0] = c->out;
    int64_t weight[2] = {c->out, c->in}, bias[1] = {c->out};
    layer_add_tensor(layer, "weight", false, 2, weight);
    layer_add_tensor(layer, "bias", false, 1, bias);
    layer->gemm_flops = 2ull * (uint64_t)c->in * (uint64_t)c->out;
    return 0;
}

static void linear_init(const NetLayer *layer, float *params, float *buffers, Rng *rng) {
    (void)buffers;
    const LinearConf *c = &layer->conf.linear;
    float bound = 1.0f / sqrtf((float)c->in);
    for (size_t k = 0; k < layer->n_params; k++) params[k] = rng_uniform_range(rng, -bound, bound);
}

static void linear_forward(NetLayer *layer, const NetRun *run, const float *x, float *y) {
    Backend *be = run->be;
    const LinearConf *c = &layer->conf.linear;
    const float *W = run->params + layer->param_offset;   // (out, in)
    const float *b = W + (size_t)c->out * c->in;          // (out)
    be->gemm(be, false, true, run->B, c->out, c->in, 1.0f, x, c->in, W, c->in, 0.0f, y, c->out);
    be->bias_activation_forward(be, y, b, run->B, c->out, ACT_NONE);
}

static void linear_backward(NetLayer *layer, const NetRun *run, const float *x, const float *y,
                            const float *dy, float *dx) {
    (void)y;
    Backend *be = run->be;
    const LinearConf *c = &layer->conf.linear;
    const float *W = run->params + layer->param_offset;
    float *dW = run->grads + layer->param_offset;          // (out, in)
    float *db = dW + (size_t)c->out * c->in;               // (out)
    const float dW_beta = run->weight_grads_onto_zeros ? 1.0f : 0.0f;   // dW is 0 already: the same values
    be->gemm(be, true, false, c->out, c->in, run->B, 1.0f, dy, c->out, x, c->in, dW_beta, dW, c->in);
    be->bias_grad(be, db, dy, run->B, c->out);
    if (dx) be->gemm(be, false, false, run->B, c->in, c->out, 1.0f, dy, c->out, W, c->in, 0.0f, dx, c->in);
}

const LayerKind layer_linear = {"linear", false, linear_check, linear_build, linear_init, linear_forward,
                                linear_backward, false, false, NULL};

// ---- masked_linear ---------------------------------------------------------------
// {"masked_linear": N} -- MADE's masked layer (Germain et al. 2015; torch: F.linear(x, W * mask, b)
// with the mask a registered buffer): y (B, N) = x (B, in) (W * M)^T + b, W, M (N, in), b (N).
// The mask is a buffer (saved with the model, not trained), all ones until the model kind that
// owns the network writes its connectivity (model_made.c). The masked weight W * M is kept
// from forward to backward (layer state); dW = (dy^T x) * M, so masked weights get no gradient.

static int masked_linear_build(NetLayer *layer, const LayerSpec *spec, char *msg, size_t msglen) {
    if (linear_build(layer, spec, msg, msglen) != 0) return -1;
    const LinearConf *c = &layer->conf.linear;
    int64_t mask[2] = {c->out, c->in};
    layer_add_tensor(layer, "mask", true, 2, mask);
    layer->state_floats = (size_t)c->out * c->in;   // W * M of the last forward
    return 0;
}

static void masked_linear_init(const NetLayer *layer, float *params, float *buffers, Rng *rng) {
    linear_init(layer, params, buffers, rng);
    for (size_t k = 0; k < layer->n_buffers; k++) buffers[k] = 1.0f;
}

static void masked_linear_forward(NetLayer *layer, const NetRun *run, const float *x, float *y) {
    Backend *be = run->be;
    const LinearConf *c = &layer->conf.linear;
    const size_t n = (size_t)c->out * c->in;
    const float *W = run->params + layer->param_offset;    // (out, in)
    const float *b = W + n;                                  // (out)
    const float *mask = run->buffers + layer->buffer_offset; // (out, in)
    be->multiply(be, layer->state, W, mask, n);              // W * M (out, in)
    be->gemm(be, false, true, run->B, c->out, c->in, 1.0f, x, c->in, layer->state, c->in, 0.0f, y, c->out);
    be->bias_activation_forward(be, y, b, run->B, c->out, ACT_NONE);
}

static void masked_linear_backward(NetLayer *layer, const NetRun *run, const float *x, const float *y,
                                   const float *dy, float *dx) {
    (void)y;
    Backend *be = run->be;
    const LinearConf *c = &layer->conf.linear;
    const size_t n = (size_t)c->out * c->in;
    float *dW = run->grads + layer->param_offset;            // (out, in)
    float *db = dW + n;                                      // (out)
    const float *mask = run->buffers + layer->buffer_offset;
    const float dW_beta = run->weight_grads_onto_zeros ? 1.0f : 0.0f;   // (linear_backward)
    be->gemm(be, true, false, c->out, c->in, run->B, 1.0f, dy, c->out, x, c->in, dW_beta, dW, c->in);
    be->multiply(be, dW, dW, mask, n);
    be->bias_grad(be, db, dy, run->B, c->out);
    if (dx)
        be->gemm(be, false, false, run->B, c->in, c->out, 1.0f, dy, c->out, layer->state, c->in, 0.0f, dx, c->in);
}

const LayerKind layer_masked_linear = {"masked_linear", false, linear_check, masked_linear_build,
                                       masked_linear_init, masked_linear_forward, masked_linear_backward,
                                       false, false, layer_buffers_as_fresh};
