// layer_shape.c: the layers that only relabel the shape of each example --
// {"flatten": {}} (C, H, W) -> (C H W) and {"reshape": [C, H, W]} (or [N]) --
// views: the output is the input's memory and the gradient passes through.
#include "cuvae/layer_kind.h"

#include <stdio.h>

static int flatten_check(LayerSpec *spec, char *key, size_t keylen, char *msg, size_t msglen) {
    if (layer_check_args(spec, 0, 0, false, 0, 0, "", msg, msglen)) return -1;
    return layer_apply_options(spec, NULL, 0, key, keylen, msg, msglen);
}

static int flatten_build(NetLayer *layer, const LayerSpec *spec, char *msg, size_t msglen) {
    (void)spec;
    const size_t values = tensor_shape_size(layer->in);
    if (values > (size_t)NETWORK_MAX_EXAMPLE_VALUES) {
        char in[48];
        tensor_shape_format(layer->in, in, sizeof in);
        snprintf(msg, msglen, "input %s holds %zu values an example, more than %d", in, values,
                 NETWORK_MAX_EXAMPLE_VALUES);
        return -1;
    }
    layer->out.rank = 1;
    layer->out.dim[0] = (int)values;
    return 0;
}

static int reshape_check(LayerSpec *spec, char *key, size_t keylen, char *msg, size_t msglen) {
    if (spec->n_args != 1 && spec->n_args != 3) {
        snprintf(msg, msglen, "needs the shape of one example, [C, H, W] or [N], got %d number%s",
                 spec->n_args, spec->n_args == 1 ? "" : "s");
        return -1;
    }
    if (layer_check_args(spec, 1, 3, true, 1, 1 << 24, "the shape's sizes", msg, msglen)) return -1;
    spec->args_list = true;
    return layer_apply_options(spec, NULL, 0, key, keylen, msg, msglen);
}

static int reshape_build(NetLayer *layer, const LayerSpec *spec, char *msg, size_t msglen) {
    layer->out.rank = spec->n_args;
    for (int d = 0; d < spec->n_args; d++) layer->out.dim[d] = (int)spec->args[d];
    // (each size is at most 2^24: the product of the first two cannot overflow; the third's may)
    const size_t first_two = spec->n_args == 3 ? (size_t)layer->out.dim[0] * (size_t)layer->out.dim[1] : 1;
    if (spec->n_args == 3 && first_two > (size_t)NETWORK_MAX_EXAMPLE_VALUES / (size_t)layer->out.dim[2]) {
        char in[48], out[48];
        tensor_shape_format(layer->in, in, sizeof in);
        tensor_shape_format(layer->out, out, sizeof out);
        snprintf(msg, msglen, "cannot reshape %s (%zu values) to %s (more than %d values an example)", in,
                 tensor_shape_size(layer->in), out, NETWORK_MAX_EXAMPLE_VALUES);
        return -1;
    }
    if (tensor_shape_size(layer->out) != tensor_shape_size(layer->in)) {
        char in[48], out[48];
        tensor_shape_format(layer->in, in, sizeof in);
        tensor_shape_format(layer->out, out, sizeof out);
        snprintf(msg, msglen, "cannot reshape %s (%zu values) to %s (%zu values)", in,
                 tensor_shape_size(layer->in), out, tensor_shape_size(layer->out));
        return -1;
    }
    return 0;
}

static void view_init(const NetLayer *layer, float *params, float *buffers, Rng *rng) {
    (void)layer;
    (void)params;
    (void)buffers;
    (void)rng;
}

const LayerKind layer_flatten = {"flatten", true, flatten_check, flatten_build, view_init, NULL, NULL, false, false, NULL};
const LayerKind layer_reshape = {"reshape", true, reshape_check, reshape_build, view_init, NULL, NULL, false, false, NULL};
