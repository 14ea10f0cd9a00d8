// network.c: a network = an ordered list of layers (network.h): building it
// from the config's layer specs with shapes inferred and checked, its device
// memory, init, forward (layer by layer) and backward (in reverse order).
#include "cuvae/network.h"
#include "cuvae/layer_kind.h"   // layer_buffers_as_fresh
#include "cuvae/rng.h"
#include "cuvae/common.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int network_build(Network *net, const char *name, const LayerSpec *specs, int n_specs,
                  TensorShape in, size_t param_base, size_t buffer_base, char *err, size_t errlen) {
    memset(net, 0, sizeof *net);
    snprintf(net->name, sizeof net->name, "%s", name);
    if (n_specs < 1 || n_specs > CUVAE_MAX_NET_LAYERS)
        return set_error(err, errlen, "model.%s: needs 1 to %d layers, got %d", name, CUVAE_MAX_NET_LAYERS,
                         n_specs);
    net->in = in;
    net->n_layers = n_specs;
    net->max_size = tensor_shape_size(in);
    TensorShape shape = in;
    size_t params = param_base, buffers = buffer_base;
    for (int i = 0; i < n_specs; i++) {
        NetLayer *layer = &net->layers[i];
        const LayerKind *kind = layer_kind_find(specs[i].kind);
        if (!kind) return set_error(err, errlen, "model.%s[%d]: unknown layer \"%s\"", name, i, specs[i].kind);
        layer->kind = kind;
        layer->index = i;
        layer->in = shape;
        char msg[400] = "";
        if (kind->build(layer, &specs[i], msg, sizeof msg) != 0)
            return set_error(err, errlen, "model.%s[%d] (%s): %s", name, i, kind->name, msg);
        for (int d = 0; d < layer->out.rank; d++)
            if (layer->out.dim[d] < 1) {
                char out[48];
                tensor_shape_format(layer->out, out, sizeof out);
                return set_error(err, errlen, "model.%s[%d] (%s): output %s is empty", name, i, kind->name, out);
            }
        if (tensor_shape_size(layer->out) > (size_t)NETWORK_MAX_EXAMPLE_VALUES) {
            char out[48];
            tensor_shape_format(layer->out, out, sizeof out);
            return set_error(err, errlen, "model.%s[%d] (%s): output %s holds %zu values an example, more than %d",
                             name, i, kind->name, out, tensor_shape_size(layer->out), NETWORK_MAX_EXAMPLE_VALUES);
        }
        if (kind->adds_skip) {   // the tensor it adds must exist and have its input's shape
            const int span = layer->conf.residual.span;
            if (span > i)
                return set_error(err, errlen, "model.%s[%d] (%s): %d reaches before the network's first layer "
                                 "(at most %d here)", name, i, kind->name, span, i);
            layer->skip_from = i - span - 1;
            TensorShape source = layer->skip_from < 0 ? in : net->layers[layer->skip_from].out;
            if (memcmp(&source, &layer->in, sizeof source) != 0) {
                char a[48], b[48];
                tensor_shape_format(source, a, sizeof a);
                tensor_shape_format(layer->in, b, sizeof b);
                return set_error(err, errlen, "model.%s[%d] (%s): adds the input of layer %d, %s, to its own "
                                 "input %s: the shapes must match", name, i, kind->name, i - span, a, b);
            }
        }
        layer->param_offset = params;
        layer->buffer_offset = buffers;
        params += layer->n_params;
        buffers += layer->n_buffers;
        net->n_params += layer->n_params;
        net->n_buffers += layer->n_buffers;
        if (tensor_shape_size(layer->out) > net->max_size) net->max_size = tensor_shape_size(layer->out);
        shape = layer->out;
    }
    net->out = shape;
    return 0;
}

int network_flat_batch_norm(const Network *net) {
    for (int i = 0; i < net->n_layers; i++)
        if (net->layers[i].batch_statistics_span == 1)
            return i;
    return -1;
}

int network_check_batch(const Network *net, int max_batch, const char *batch_origin, const char *advice, char *err,
                        size_t errlen) {
    for (int i = 0; i < net->n_layers; i++) {
        const NetLayer *layer = &net->layers[i];
        // a convolution's GEMM has a column per image position of the batch: B H W (an int)
        size_t positions = 0;
        if (layer->in.rank == 3) positions = (size_t)layer->in.dim[1] * layer->in.dim[2];
        if (layer->out.rank == 3 && (size_t)layer->out.dim[1] * layer->out.dim[2] > positions)
            positions = (size_t)layer->out.dim[1] * layer->out.dim[2];
        if ((double)max_batch * (double)positions > (double)NETWORK_MAX_EXAMPLE_VALUES)
            return set_error(err, errlen, "%s: model.%s[%d] (%s): a batch of %d examples of %zu positions is more "
                             "than %d GEMM columns (32-bit sizes): %s", batch_origin, net->name, i, layer->kind->name,
                             max_batch, positions, NETWORK_MAX_EXAMPLE_VALUES, advice);
    }
    return 0;
}

void network_alloc(Network *net, Backend *be, int max_batch, bool keep_for_backward) {
    size_t B = (size_t)max_batch;
    net->max_batch = max_batch;
    size_t max_col = 0, max_swap = 0;   // the workspaces of the layers that use them on this backend
    for (int i = 0; i < net->n_layers; i++) {
        NetLayer *layer = &net->layers[i];
        const bool workspaces = !(layer->composes_convolution && be->conv_forward);
        if (!layer->kind->view) net->outputs[i] = be->alloc(be, B * tensor_shape_size(layer->out) * sizeof(float));
        if (layer->state_floats) layer->state = be->alloc(be, layer->state_floats * sizeof(float));
        if (workspaces && layer->col_floats > max_col) max_col = layer->col_floats;
        if (workspaces && layer->swap_floats > max_swap) max_swap = layer->swap_floats;
        if (workspaces && layer->kept_floats && keep_for_backward)
            layer->kept = be->alloc(be, B * layer->kept_floats * sizeof(float));
        layer->kept_input = NULL;
        layer->kept_B = 0;
        if (layer->kind->adds_skip) net->skip_grad[i] = be->alloc(be, B * tensor_shape_size(layer->in) * sizeof(float));
    }
    net->grad_a = be->alloc(be, B * net->max_size * sizeof(float));
    net->grad_b = be->alloc(be, B * net->max_size * sizeof(float));
    if (max_col) net->col = be->alloc(be, B * max_col * sizeof(float));
    if (max_swap) net->swap = be->alloc(be, B * max_swap * sizeof(float));
}

void network_free(Network *net, Backend *be) {
    for (int i = 0; i < net->n_layers; i++) {
        NetLayer *layer = &net->layers[i];
        if (!layer->kind->view && net->outputs[i]) be->free(be, net->outputs[i]);
        if (layer->state) be->free(be, layer->state);
        if (layer->kept) be->free(be, layer->kept);
        if (net->skip_grad[i]) be->free(be, net->skip_grad[i]);
        net->skip_grad[i] = NULL;
        net->outputs[i] = NULL;
        layer->state = NULL;
        layer->kept = NULL;
        layer->kept_input = NULL;
    }
    if (net->grad_a) be->free(be, net->grad_a);
    if (net->grad_b) be->free(be, net->grad_b);
    if (net->col) be->free(be, net->col);
    if (net->swap) be->free(be, net->swap);
    net->grad_a = net->grad_b = net->col = net->swap = NULL;
}

void network_init(const Network *net, float *params, float *buffers, Rng *rng) {
    for (int i = 0; i < net->n_layers; i++) {
        const NetLayer *layer = &net->layers[i];
        layer->kind->init(layer, params + layer->param_offset, buffers + layer->buffer_offset, rng);
    }
}

// A layer whose buffers only init (and its model) write: a checkpoint's must equal fresh ones.
static bool has_fixed_buffers(const NetLayer *layer) {
    return layer->kind->check_loaded_buffers == layer_buffers_as_fresh;
}

bool network_has_fixed_buffers(const Network *net) {
    for (int i = 0; i < net->n_layers; i++)
        if (has_fixed_buffers(&net->layers[i])) return true;
    return false;
}

void network_init_fixed_buffers(const Network *net, float *buffers) {
    for (int i = 0; i < net->n_layers; i++) {
        const NetLayer *layer = &net->layers[i];
        if (!has_fixed_buffers(layer)) continue;
        float *params = xcalloc(layer->n_params ? layer->n_params : 1, sizeof(float));   // (written, unused)
        Rng rng;
        rng_init(&rng, 0, 0);
        layer->kind->init(layer, params, buffers + layer->buffer_offset, &rng);
        free(params);
    }
}

int network_check_loaded_buffers(const Network *net, const float *buffers, const float *fresh, char *msg,
                                 size_t msglen) {
    for (int i = 0; i < net->n_layers; i++) {
        const NetLayer *layer = &net->layers[i];
        char why[400];
        if (layer->kind->check_loaded_buffers && has_fixed_buffers(layer) == (fresh != NULL) &&
            layer->kind->check_loaded_buffers(layer, buffers, fresh, why, sizeof why) != 0) {
            snprintf(msg, msglen, "%s.%d.%s", net->name, layer->index, why);
            return -1;
        }
    }
    return 0;
}

// The run a layer sees: the caller's, with this network's workspaces.
static NetRun with_workspaces(const Network *net, const NetRun *run) {
    NetRun r = *run;
    r.col = net->col;
    r.swap = net->swap;
    return r;
}

const float *network_forward(Network *net, const NetRun *caller, const float *x) {
    NetRun run = with_workspaces(net, caller);
    const float *input = x;
    for (int i = 0; i < net->n_layers; i++) {
        NetLayer *layer = &net->layers[i];
        if (layer->kind->adds_skip) layer->skip_source = layer->skip_from < 0 ? x : net->outputs[layer->skip_from];
        if (layer->kind->view) {
            net->outputs[i] = (float *)input;   // the same values, another shape
        } else {
            layer->kind->forward(layer, &run, input, net->outputs[i]);
        }
        input = net->outputs[i];
    }
    return input;
}

// Adds to grad, the gradient of tensor `source` (a layer's output, -1 the network's input), what
// the residual layers that add that tensor owe it.
static void add_skip_gradients(Network *net, const NetRun *run, int source, float *grad) {
    for (int r = source + 1; r < net->n_layers; r++) {
        const NetLayer *layer = &net->layers[r];
        if (layer->kind->adds_skip && layer->skip_from == source)
            run->be->add(run->be, grad, grad, net->skip_grad[r], (size_t)run->B * tensor_shape_size(layer->in));
    }
}

void network_backward(Network *net, const NetRun *caller, const float *x, const float *dy, float *dx) {
    NetRun run = with_workspaces(net, caller);
    const float *grad = dy;
    for (int i = net->n_layers - 1; i >= 0; i--) {
        NetLayer *layer = &net->layers[i];
        const float *input = i == 0 ? x : net->outputs[i - 1];
        // grad is the gradient of this layer's output: a net buffer whenever a residual layer
        // adds that output further on (that layer is not a view, so grad has been written)
        if (i < net->n_layers - 1) add_skip_gradients(net, &run, i, (float *)grad);
        if (layer->kind->adds_skip)   // what the skip source is owed: this output's gradient
            run.be->copy(run.be, net->skip_grad[i], grad, (size_t)run.B * tensor_shape_size(layer->in) * sizeof(float));
        if (layer->kind->view) {
            if (i == 0 && dx) run.be->copy(run.be, dx, grad, (size_t)run.B * tensor_shape_size(layer->in) * sizeof(float));
            continue;   // the gradient passes through unchanged
        }
        float *target;
        if (i == 0) target = dx;
        else target = grad == net->grad_a ? net->grad_b : net->grad_a;
        layer->kind->backward(layer, &run, input, net->outputs[i], grad, target);
        grad = target;
    }
    if (dx) add_skip_gradients(net, &run, -1, dx);
}

int network_check_raw_output(const Network *net, const char *role, const char *advice, char *err, size_t errlen) {
    int last = net->n_layers - 1;
    while (last > 0 && net->layers[last].kind->view) last--;
    const LayerKind *kind = net->n_layers ? net->layers[last].kind : NULL;
    if (kind && (layer_kind_is_activation(kind) || layer_kind_is_batch_norm(kind)))
        return set_error(err, errlen, "model.%s[%d] (%s): %s, so not in an activation or batch norm%s", net->name,
                         last, kind->name, role, advice);
    return 0;
}

int network_check_discriminator_output(const Network *net, const char *example, char *err, size_t errlen) {
    if (tensor_shape_size(net->out) != 1) {
        char got[48];
        tensor_shape_format(net->out, got, sizeof got);
        return set_error(err, errlen, "model.discriminator: ends in %s; it must end in one logit (e.g. %s)", got,
                         example);
    }
    return network_check_raw_output(net, "the discriminator ends in one logit", " (its loss applies the sigmoid); "
                                    "end it with {\"linear\": 1}", err, errlen);
}

bool network_has_running_statistics(const Network *net) {
    for (int i = 0; net && i < net->n_layers; i++)
        if (net->layers[i].kind->running_statistics) return true;
    return false;
}

uint64_t network_gemm_flops(const Network *net, int B, bool first_has_no_dx) {
    uint64_t flops = 0;
    for (int i = 0; i < net->n_layers; i++) {
        uint64_t one = net->layers[i].gemm_flops * (uint64_t)B;
        flops += (i == 0 && first_has_no_dx) ? 2 * one : 3 * one;
    }
    return flops;
}
