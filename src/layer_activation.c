// layer_activation.c: the activation layers {"relu": {}}, {"leaky_relu": 0.2}
// (negative slope, default 0.01 as torch.nn.LeakyReLU), {"tanh": {}},
// {"sigmoid": {}}: elementwise, no parameters; the backward reads the output.
#include "cuvae/layer_kind.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int plain_check(LayerSpec *spec, char *key, size_t keylen, char *msg, size_t msglen) {
    if (layer_check_args(spec, 0, 0, false, 0, 0, "", msg, msglen)) return -1;
    return layer_apply_options(spec, NULL, 0, key, keylen, msg, msglen);
}

static int leaky_check(LayerSpec *spec, char *key, size_t keylen, char *msg, size_t msglen) {
    if (spec->n_args == 0) {   // {"leaky_relu": {}} or "leaky_relu": PyTorch's default slope
        spec->n_args = 1;
        spec->args[0] = 0.01;
    }
    if (layer_check_args(spec, 1, 1, false, 0, 1, "the negative slope", msg, msglen)) return -1;
    return layer_apply_options(spec, NULL, 0, key, keylen, msg, msglen);
}

// Each activation layer kind and the Activation it runs (defined below).
static const struct {
    const LayerKind *kind;
    Activation act;
} ACTIVATION_KINDS[] = {
    {&layer_relu, ACT_RELU},
    {&layer_leaky_relu, ACT_LEAKY_RELU},
    {&layer_tanh, ACT_TANH},
    {&layer_sigmoid, ACT_SIGMOID},
};
#define N_ACTIVATION_KINDS (sizeof ACTIVATION_KINDS / sizeof ACTIVATION_KINDS[0])

bool layer_kind_is_activation(const LayerKind *kind) {
    for (size_t i = 0; i < N_ACTIVATION_KINDS; i++)
        if (ACTIVATION_KINDS[i].kind == kind) return true;
    return false;
}

static Activation activation_of(const char *name) {
    for (size_t i = 0; i < N_ACTIVATION_KINDS; i++)
        if (strcmp(ACTIVATION_KINDS[i].kind->name, name) == 0) return ACTIVATION_KINDS[i].act;
    fprintf(stderr, "cuvae: internal error: %s is not an activation layer (%s:%d)\n", name, __FILE__, __LINE__);
    abort();
}

static int activation_build(NetLayer *layer, const LayerSpec *spec, char *msg, size_t msglen) {
    (void)msg;
    (void)msglen;
    layer->out = layer->in;
    layer->conf.activation.act = activation_of(spec->kind);
    layer->conf.activation.slope = spec->n_args ? (float)spec->args[0] : 0.0f;
    return 0;
}

static void activation_init(const NetLayer *layer, float *params, float *buffers, Rng *rng) {
    (void)layer;
    (void)params;
    (void)buffers;
    (void)rng;
}

static void activation_layer_forward(NetLayer *layer, const NetRun *run, const float *x, float *y) {
    const ActivationConf *c = &layer->conf.activation;
    run->be->activation_forward(run->be, y, x, (size_t)run->B * tensor_shape_size(layer->out), c->act,
                                c->slope);
}

static void activation_layer_backward(NetLayer *layer, const NetRun *run, const float *x, const float *y,
                                      const float *dy, float *dx) {
    (void)x;
    if (!dx) return;
    const ActivationConf *c = &layer->conf.activation;
    run->be->activation_gradient(run->be, dx, dy, y, (size_t)run->B * tensor_shape_size(layer->out), c->act,
                                 c->slope);
}

const LayerKind layer_relu = {"relu", false, plain_check, activation_build, activation_init,
                              activation_layer_forward, activation_layer_backward, false, false, NULL};
const LayerKind layer_leaky_relu = {"leaky_relu", false, leaky_check, activation_build, activation_init,
                                    activation_layer_forward, activation_layer_backward, false, false, NULL};
const LayerKind layer_tanh = {"tanh", false, plain_check, activation_build, activation_init,
                              activation_layer_forward, activation_layer_backward, false, false, NULL};
const LayerKind layer_sigmoid = {"sigmoid", false, plain_check, activation_build, activation_init,
                                 activation_layer_forward, activation_layer_backward, false, false, NULL};
