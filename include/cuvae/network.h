// network.h: a network is an ordered list of layers read from the config
// (model.encoder / model.decoder as layer objects), with shapes inferred at
// build time and checked with errors naming the layer index. A layer kind is
// a small table (LayerKind): its option keys and defaults, its shape rule and
// parameter shapes with their PyTorch names, PyTorch-default init, forward and
// backward -- written once as calls on the backend (backend.h). The kinds live
// one per file (src/layer_*.c) and are registered in src/layers.c.
#ifndef CUVAE_NETWORK_H
#define CUVAE_NETWORK_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>
#include "cuvae/backend.h"
#include "cuvae/config.h"   // LayerSpec
#include "cuvae/rng.h"

// The shape of one example: (N) (rank 1) or (C, H, W) (rank 3).
typedef struct {
    int rank;
    int dim[3];
} TensorShape;

size_t tensor_shape_size(TensorShape s);
// The most values one example's tensor may hold (a layer's output: its sizes are ints), and
// the most GEMM columns a convolution's batch may have (network_check_batch).
#define NETWORK_MAX_EXAMPLE_VALUES 2147483647
// "(64, 7, 7)" / "(256)"
void tensor_shape_format(TensorShape s, char *out, size_t outlen);

// One named tensor of a layer, PyTorch's name within the layer ("weight",
// "running_mean"): in the parameter region (trained) or the buffer region.
typedef struct {
    char name[16];
    bool buffer;
    size_t offset;          // floats from the layer's param_offset / buffer_offset
    int rank;
    int64_t shape[4];
} LayerTensor;

typedef struct {
    int in, out;                 // linear: W (out, in), b (out)
} LinearConf;

typedef struct {
    int in_channels, out_channels;
    ConvGeometry geometry;       // conv2d: over its input image; conv_transpose2d: over its output
    int output_padding;          // conv_transpose2d
} ConvConf;

typedef struct {
    int channels, spatial;       // input (C) -> spatial 1, (C, H, W) -> H W
    float momentum, eps;
} BatchNormConf;

typedef struct {
    Activation act;
    float slope;                 // leaky_relu
} ActivationConf;

typedef struct {
    int span;                    // residual: adds the input of the layer `span` positions back
} ResidualConf;

typedef struct LayerKind LayerKind;

typedef struct {
    const LayerKind *kind;
    int index;                   // position in its network: the nn.Sequential index
    TensorShape in, out;
    size_t param_offset, n_params;     // floats into the model's parameter region
    size_t buffer_offset, n_buffers;   // floats into the model's buffer region
    int n_tensors;
    LayerTensor tensors[4];
    size_t col_floats, swap_floats;    // workspace per example (shared across layers)
    size_t state_floats;               // device floats kept from forward to backward (not per example)
    size_t kept_floats;                // per example, device floats the forward keeps for the backward
                                       // (conv2d: its im2col columns), 0 if none
    bool composes_convolution;         // col, swap and kept serve only the im2col / GEMM path: none is
                                       // allocated where the backend runs whole convolutions
    uint64_t gemm_flops;               // per example, the forward GEMM (2 M N K); 0 for non-GEMM layers
    int batch_statistics_span;         // batch norm: values a feature's statistics take from each
                                       // example in training (H W, or 1 on a flat input); 0 for others
    float *state;                      // (state_floats) on the device, NULL if none
    float *kept;                       // (max batch, kept_floats) on the device, NULL if none (or the
                                       // network only runs forwards: the backward computes it again)
    const float *kept_input;           // the input and batch size the forward last filled `kept` from
    int kept_B;                        // (NULL, 0 before any forward)
    int skip_from;                     // residual: the layer whose output it adds (-1: the network's
                                       // input); the network sets skip_source before each forward
    const float *skip_source;
    union {
        LinearConf linear;
        ConvConf conv;
        BatchNormConf batch_norm;
        ActivationConf activation;
        ResidualConf residual;
    } conf;
} NetLayer;

// What a layer's forward / backward run against.
typedef struct {
    Backend *be;
    int B;                       // rows (examples) in this call
    bool training;               // batch norm: batch statistics (and running-stat updates)
    float *params, *grads;       // the model's parameter and gradient regions
    float *buffers;              // the model's buffer region (running statistics)
    float *col, *swap;           // shared workspaces (B * max col_floats, B * max swap_floats)
    bool weight_grads_onto_zeros;  // the gradients are 0 (Model.grads_clear): a linear layer's
                                   // weight gradient is a GEMM with beta = 1 onto them
} NetRun;

struct LayerKind {
    const char *name;            // the config key: "conv2d"
    bool view;                   // flatten / reshape: output aliases the input, gradient passes through
    // Fills defaults and checks the spec's value and option keys without any shape.
    // Returns 0, or -1 with key (the option at fault, "" for the kind's own value) and msg.
    int (*check)(LayerSpec *spec, char *key, size_t keylen, char *msg, size_t msglen);
    // Output shape, parameter / buffer counts, tensors, workspace from the input shape;
    // -1 with msg (the network prefixes "model.encoder[i] (kind)").
    int (*build)(NetLayer *layer, const LayerSpec *spec, char *msg, size_t msglen);
    // PyTorch-default initial values into host copies of the two regions.
    void (*init)(const NetLayer *layer, float *params, float *buffers, Rng *rng);
    // y (B, out) from x (B, in). NULL for views.
    void (*forward)(NetLayer *layer, const NetRun *run, const float *x, float *y);
    // Parameter gradients (overwritten) and, if dx != NULL, dx (B, in), from dy (B, out),
    // the forward's input x and output y. NULL for views.
    void (*backward)(NetLayer *layer, const NetRun *run, const float *x, const float *y,
                     const float *dy, float *dx);
    // residual: the network wires conf.residual.span (skip_from, skip_source, and the
    // gradient it sends back to that tensor).
    bool adds_skip;
    // batch norm: its buffers are running statistics that each training step moves (a masked
    // layer's buffers are its masks, which the model sets)
    bool running_statistics;
    // Checks the layer's buffers as a checkpoint gave them (buffers, the model's buffer region on
    // the host) against fresh ones (fresh: what init and the owning model write there): 0, or -1
    // with msg naming the tensor and element ("running_var, element 5 is -1: ..."). NULL: a
    // buffer needs only finite values (which the reader checks).
    int (*check_loaded_buffers)(const NetLayer *layer, const float *buffers, const float *fresh, char *msg,
                                size_t msglen);
};

// The registered kinds (src/layers.c); NULL if name is not one.
const LayerKind *layer_kind_find(const char *name);
// relu, leaky_relu, tanh, sigmoid (src/layer_activation.c's list)
bool layer_kind_is_activation(const LayerKind *kind);
// batch_norm (src/layer_batch_norm.c)
bool layer_kind_is_batch_norm(const LayerKind *kind);
// "linear, conv2d, ..." for error messages
const char *layer_kind_names(void);

#define CUVAE_MAX_NET_LAYERS CUVAE_MAX_GRAPH_LAYERS

typedef struct {
    char name[16];               // "encoder" | "decoder" | "network": the config key and state_dict prefix
    int n_layers;
    NetLayer layers[CUVAE_MAX_NET_LAYERS];
    TensorShape in, out;
    size_t n_params, n_buffers;  // totals of its layers
    size_t max_size;             // per-example floats of the widest tensor
    int max_batch;
    float *outputs[CUVAE_MAX_NET_LAYERS];   // (B, layer out) each; views alias their input
    float *grad_a, *grad_b;      // (B, max_size) ping-pong for backward
    float *skip_grad[CUVAE_MAX_NET_LAYERS];   // residual layer i: the gradient it owes its skip source
    float *col, *swap;           // workspaces
} Network;

// The layers' check_loaded_buffers over net (buffers, fresh: the model's buffer regions on the
// host): with fresh NULL the checks that need no fresh values (a batch norm's running_var), with
// fresh those of the layers whose buffers must equal fresh ones (masks). 0, or -1 with msg naming
// "<net>.<index>.<tensor>" and the element.
int network_check_loaded_buffers(const Network *net, const float *buffers, const float *fresh, char *msg,
                                 size_t msglen);
// Whether net has layers whose buffers only init and its model write (masks), and their init
// values into buffers (the model's buffer region, host): what network_check_loaded_buffers
// compares with.
bool network_has_fixed_buffers(const Network *net);
void network_init_fixed_buffers(const Network *net, float *buffers);
// Builds the layers of specs over input shape `in`; parameters from param_base and
// buffers from buffer_base (floats) on. Errors name "model.<name>[i] (kind)" and the shapes.
int network_build(Network *net, const char *name, const LayerSpec *specs, int n_specs,
                  TensorShape in, size_t param_base, size_t buffer_base, char *err, size_t errlen);
// Device memory for up to max_batch rows; network_free releases it.
// -1 with err naming the layer when max_batch examples' image positions (a convolution's
// GEMM columns) would be more than NETWORK_MAX_EXAMPLE_VALUES: "BATCH_ORIGIN: model.decoder[2]
// (conv2d): a batch of ... : ADVICE" (what set the batch, and what would lower it).
int network_check_batch(const Network *net, int max_batch, const char *batch_origin, const char *advice, char *err,
                        size_t errlen);
// The first layer (its index, else -1) that normalises each feature over the batch alone
// (batch_statistics_span 1: batch norm on a flat input): a batch of one gives it no statistics.
int network_flat_batch_norm(const Network *net);
// keep_for_backward: also what the layers keep from a forward for their backward (NetLayer.kept;
// false for a network that only runs forwards).
void network_alloc(Network *net, Backend *be, int max_batch, bool keep_for_backward);
void network_free(Network *net, Backend *be);
// PyTorch-default init of every layer into host copies of the regions.
void network_init(const Network *net, float *params, float *buffers, Rng *rng);
// Forward from x (B, in); returns the output (B, out).
const float *network_forward(Network *net, const NetRun *run, const float *x);
// Backward from dy (B, out): parameter gradients, and dx (B, in) if not NULL.
// x is the input the forward saw.
void network_backward(Network *net, const NetRun *run, const float *x, const float *dy, float *dx);
// -1 with "model.<name>[i] (kind): <role>, so not in an activation or batch norm<advice>" when the
// network's last layer that computes (views after it aside) is one: a network whose output is
// logits (a loss applies the sigmoid) or the values themselves.
int network_check_raw_output(const Network *net, const char *role, const char *advice, char *err, size_t errlen);
// A gan's or an aae's discriminator: one logit out (else "ends in SHAPE; it must end in one logit
// (e.g. EXAMPLE)"), and not out of an activation or batch norm (network_check_raw_output).
int network_check_discriminator_output(const Network *net, const char *example, char *err, size_t errlen);
// GEMM flops of one training step of B rows: forward, weight gradient, and input
// gradient (none for the first layer when first_has_no_dx), as bench counts them.
uint64_t network_gemm_flops(const Network *net, int B, bool first_has_no_dx);
// A layer of net (NULL: none) keeps running statistics (batch norm).
bool network_has_running_statistics(const Network *net);

#endif
