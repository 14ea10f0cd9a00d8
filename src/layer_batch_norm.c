// layer_batch_norm.c: {"batch_norm": {"momentum": 0.1, "eps": 1e-5}} --
// torch.nn.BatchNorm1d over a flat input (C) or BatchNorm2d over an image
// (C, H, W), chosen by the input's rank: batch statistics in training (running
// statistics updated with momentum, the unbiased variance), running ones in eval.
// Parameters weight = 1, bias = 0 (C); buffers running_mean = 0, running_var = 1.
#include "cuvae/layer_kind.h"

#include <stdio.h>
#include <string.h>

static const OptionRule batch_norm_rules[] = {
    {"momentum", false, 0.1, 0, 1, false},
    {"eps", false, 1e-5, 1e-12, 1, false},
};

static int batch_norm_check(LayerSpec *spec, char *key, size_t keylen, char *msg, size_t msglen) {
    if (layer_check_args(spec, 0, 0, false, 0, 0, "", msg, msglen)) return -1;
    return layer_apply_options(spec, batch_norm_rules, 2, key, keylen, msg, msglen);
}

static int batch_norm_build(NetLayer *layer, const LayerSpec *spec, char *msg, size_t msglen) {
    (void)msg;
    (void)msglen;
    BatchNormConf *c = &layer->conf.batch_norm;
    c->channels = layer->in.dim[0];
    c->spatial = layer->in.rank == 3 ? layer->in.dim[1] * layer->in.dim[2] : 1;
    layer->batch_statistics_span = c->spatial;
    c->momentum = (float)layer_spec_option(spec, "momentum", 0.1);
    c->eps = (float)layer_spec_option(spec, "eps", 1e-5);
    layer->out = layer->in;
    int64_t channels[1] = {c->channels};
    layer_add_tensor(layer, "weight", false, 1, channels);
    layer_add_tensor(layer, "bias", false, 1, channels);
    layer_add_tensor(layer, "running_mean", true, 1, channels);
    layer_add_tensor(layer, "running_var", true, 1, channels);
    layer->state_floats = 2 * (size_t)c->channels;   // mean, invstd of the last forward
    layer->swap_floats = (size_t)c->channels * c->spatial;   // the backward's dx when nobody wants it
    return 0;
}

static void batch_norm_init(const NetLayer *layer, float *params, float *buffers, Rng *rng) {
    (void)rng;
    int C = layer->conf.batch_norm.channels;
    for (int c = 0; c < C; c++) {
        params[c] = 1.0f;       // weight
        params[C + c] = 0.0f;   // bias
        buffers[c] = 0.0f;      // running_mean
        buffers[C + c] = 1.0f;  // running_var
    }
}

static void batch_norm_layer_forward(NetLayer *layer, const NetRun *run, const float *x, float *y) {
    const BatchNormConf *c = &layer->conf.batch_norm;
    const float *gamma = run->params + layer->param_offset, *beta = gamma + c->channels;
    float *running_mean = run->buffers + layer->buffer_offset, *running_var = running_mean + c->channels;
    run->be->batch_norm_forward(run->be, y, layer->state, layer->state + c->channels, running_mean,
                                running_var, x, gamma, beta, run->B, c->channels, c->spatial, run->training,
                                c->momentum, c->eps);
}

static void batch_norm_layer_backward(NetLayer *layer, const NetRun *run, const float *x, const float *y,
                                      const float *dy, float *dx) {
    (void)y;
    const BatchNormConf *c = &layer->conf.batch_norm;
    const float *gamma = run->params + layer->param_offset;
    float *dgamma = run->grads + layer->param_offset, *dbeta = dgamma + c->channels;
    // the input gradient is always computed (the op fuses it); without dx it goes to the workspace
    float *target = dx ? dx : run->swap;
    run->be->batch_norm_backward(run->be, target, dgamma, dbeta, dy, x, gamma, layer->state,
                                 layer->state + c->channels, run->B, c->channels, c->spatial);
}

// A loaded running variance below 0 would make 1 / sqrt(var + eps) a NaN at evaluation (which a
// following ReLU turns into 0 on the CPU): refused by name. The running mean may be anything finite.
static int batch_norm_check_loaded(const NetLayer *layer, const float *buffers, const float *fresh, char *msg,
                                   size_t msglen) {
    (void)fresh;
    for (int t = 0; t < layer->n_tensors; t++) {
        const LayerTensor *tensor = &layer->tensors[t];
        if (!tensor->buffer || strcmp(tensor->name, "running_var") != 0) continue;
        const float *var = buffers + layer->buffer_offset + tensor->offset;
        for (int64_t c = 0; c < tensor->shape[0]; c++)
            if (!(var[c] >= 0.0f)) {
                snprintf(msg, msglen, "running_var, element %lld is %g: a variance is never negative (the file "
                         "was edited?)", (long long)c, (double)var[c]);
                return -1;
            }
    }
    return 0;
}

const LayerKind layer_batch_norm = {"batch_norm", false, batch_norm_check, batch_norm_build, batch_norm_init,
                                    batch_norm_layer_forward, batch_norm_layer_backward, false, true,
                                    batch_norm_check_loaded};

bool layer_kind_is_batch_norm(const LayerKind *kind) { return kind == &layer_batch_norm; }
