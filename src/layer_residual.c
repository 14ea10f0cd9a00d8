// layer_residual.c: {"residual": n} -- a skip connection around the n layers before it:
// y (B, S) = x (B, S) + the input of layer (index - n), whose shape must be x's. With the
// layers it spans it forms a residual block, y = h + f(h) (He et al. 2016; PixelCNN's blocks).
// The network wires it (network.c: skip_from, skip_source, and the gradient dy it also sends
// back to h); the layer itself adds on the forward and passes dy through on the backward.
// No parameters. In PyTorch the block is a module adding its input to its output.
#include "cuvae/layer_kind.h"

#include <stdio.h>
#include <string.h>

static int residual_check(LayerSpec *spec, char *key, size_t keylen, char *msg, size_t msglen) {
    if (layer_check_args(spec, 1, 1, true, 1, CUVAE_MAX_NET_LAYERS - 1, "the number of layers it spans", msg,
                         msglen))
        return -1;
    return layer_apply_options(spec, NULL, 0, key, keylen, msg, msglen);
}

static int residual_build(NetLayer *layer, const LayerSpec *spec, char *msg, size_t msglen) {
    (void)msg;
    (void)msglen;
    layer->conf.residual.span = (int)spec->args[0];
    layer->out = layer->in;
    return 0;
}

static void residual_init(const NetLayer *layer, float *params, float *buffers, Rng *rng) {
    (void)layer;
    (void)params;
    (void)buffers;
    (void)rng;
}

static void residual_forward(NetLayer *layer, const NetRun *run, const float *x, float *y) {
    run->be->add(run->be, y, x, layer->skip_source, (size_t)run->B * tensor_shape_size(layer->in));
}

static void residual_backward(NetLayer *layer, const NetRun *run, const float *x, const float *y,
                              const float *dy, float *dx) {
    (void)x;
    (void)y;
    if (dx) run->be->copy(run->be, dx, dy, (size_t)run->B * tensor_shape_size(layer->in) * sizeof(float));
}

const LayerKind layer_residual = {"residual", false, residual_check, residual_build, residual_init,
                                  residual_forward, residual_backward, true, false, NULL};
