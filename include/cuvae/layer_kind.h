// layer_kind.h: what the layer kinds (src/layer_*.c) share and register with
// src/layers.c: checking a spec's value and options against a small rule table,
// and each kind's LayerKind table.
#ifndef CUVAE_LAYER_KIND_H
#define CUVAE_LAYER_KIND_H

#include "cuvae/network.h"

// An option of a layer kind: its key, default (ignored when required), range and type.
typedef struct {
    const char *key;
    bool required;
    double fallback;
    double lo, hi;
    bool integer;
} OptionRule;

// Checks spec's options against rules (unknown keys, range, integer) and rewrites
// them in the rules' order with defaults filled in. 0, or -1 with key and msg.
int layer_apply_options(LayerSpec *spec, const OptionRule *rules, int n_rules, char *key, size_t keylen,
                        char *msg, size_t msglen);
// The kind's own value: between min_args and max_args numbers, each an integer in
// [lo, hi] when integer. `what` names it in the message ("the output width").
// check_loaded_buffers of a layer whose buffers only init and its model write (masks): each
// must come back as fresh has it, element for element.
int layer_buffers_as_fresh(const NetLayer *layer, const float *buffers, const float *fresh, char *msg,
                           size_t msglen);
int layer_check_args(const LayerSpec *spec, int min_args, int max_args, bool integer, double lo,
                     double hi, const char *what, char *msg, size_t msglen);

// Adds a tensor to a layer (offset from the current n_params / n_buffers, which it grows).
void layer_add_tensor(NetLayer *layer, const char *name, bool buffer, int rank, const int64_t *shape);

extern const LayerKind layer_linear;
extern const LayerKind layer_masked_linear;
extern const LayerKind layer_residual;
extern const LayerKind layer_masked_conv2d_a;
extern const LayerKind layer_masked_conv2d_b;
extern const LayerKind layer_conv2d;
extern const LayerKind layer_conv_transpose2d;
extern const LayerKind layer_batch_norm;
extern const LayerKind layer_relu;
extern const LayerKind layer_leaky_relu;
extern const LayerKind layer_tanh;
extern const LayerKind layer_sigmoid;
extern const LayerKind layer_flatten;
extern const LayerKind layer_reshape;

#endif
