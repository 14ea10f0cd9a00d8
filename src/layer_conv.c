// layer_conv.c: {"conv2d": C_out, "kernel": k, "stride": s, "padding": p} and
// {"conv_transpose2d": C_out, ..., "output_padding": q} -- torch.nn.Conv2d /
// ConvTranspose2d with square kernels. Where the backend runs whole convolutions (the CPU's
// oneDNN: Backend.conv_forward ...), a conv2d is its three ops and a conv_transpose2d the same
// with the roles swapped (its forward is the input gradient of the conv it transposes, its input
// gradient that conv's forward). Otherwise (CUDA), as im2col / col2im + one backend GEMM
// over the whole batch:
//   conv2d            col (C k k, B S_out) = im2col(x);  y' (C_out, B S_out) = W col;
//                     y (B, C_out, S_out) = swap(y') + bias
//   conv_transpose2d  x' (C_in, B S_in) = swap(x);  col (C_out k k, B S_in) = W^T x';
//                     y (B, C_out, H, W) = col2im(col) + bias
// (the GEMM -> col2im paths, this forward and conv2d's input gradient, a chunk of images
// at a time where the backend asks: Backend.col2im_chunks)
// The backward's weight gradient needs the forward's col (conv2d) or x' (conv_transpose2d)
// again: the layer keeps them (NetLayer.kept) -- x' always, the columns where they are small.
// Weights (C_out, C_in, k, k) and (C_in, C_out, k, k) as PyTorch stores them;
// init U(-1/sqrt(fan_in), 1/sqrt(fan_in)) with PyTorch's fan_in = size(1) k k.
// Also PixelCNN's masked convolutions (van den Oord et al. 2016), {"masked_conv2d_a": C_out,
// "kernel": k} and {"masked_conv2d_b": ...}: a stride-1 conv2d whose weight is multiplied by a
// fixed mask (a saved buffer (C_out, C_in, k, k)) keeping the kernel rows above the centre and
// the centre row left of it -- type A without the centre, type B with it -- so output (i, j)
// sees only pixels before (i, j) in raster order (A) or up to it (B); padding defaults to
// (k - 1) / 2, keeping the image size.
#include "cuvae/layer_kind.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

static const OptionRule conv2d_rules[] = {
    {"kernel", true, 0, 1, 64, true},
    {"stride", false, 1, 1, 64, true},
    {"padding", false, 0, 0, 64, true},
};

static const OptionRule conv_transpose2d_rules[] = {
    {"kernel", true, 0, 1, 64, true},
    {"stride", false, 1, 1, 64, true},
    {"padding", false, 0, 0, 64, true},
    {"output_padding", false, 0, 0, 63, true},
};

static int conv2d_check(LayerSpec *spec, char *key, size_t keylen, char *msg, size_t msglen) {
    if (layer_check_args(spec, 1, 1, true, 1, 1 << 16, "the output channels", msg, msglen)) return -1;
    return layer_apply_options(spec, conv2d_rules, 3, key, keylen, msg, msglen);
}

static int conv_transpose2d_check(LayerSpec *spec, char *key, size_t keylen, char *msg, size_t msglen) {
    if (layer_check_args(spec, 1, 1, true, 1, 1 << 16, "the output channels", msg, msglen)) return -1;
    if (layer_apply_options(spec, conv_transpose2d_rules, 4, key, keylen, msg, msglen)) return -1;
    if (layer_spec_option(spec, "output_padding", 0) >= layer_spec_option(spec, "stride", 1)) {
        snprintf(key, keylen, "output_padding");
        snprintf(msg, msglen, "must be smaller than the stride (%g), as in PyTorch",
                 layer_spec_option(spec, "stride", 1));
        return -1;
    }
    return 0;
}

enum { COLUMNS_KEPT_FACTOR = 4 };

static int needs_image(NetLayer *layer, char *msg, size_t msglen) {
    if (layer->in.rank == 3) return 0;
    snprintf(msg, msglen, "needs an image input (C, H, W), got (%d); put {\"reshape\": [C, H, W]} before it",
             layer->in.dim[0]);
    return -1;
}

static void add_conv_tensors(NetLayer *layer, int dim0, int dim1, int k, int out_channels) {
    int64_t weight[4] = {dim0, dim1, k, k}, bias[1] = {out_channels};
    layer_add_tensor(layer, "weight", false, 4, weight);
    layer_add_tensor(layer, "bias", false, 1, bias);
}

static int conv2d_build(NetLayer *layer, const LayerSpec *spec, char *msg, size_t msglen) {
    if (needs_image(layer, msg, msglen)) return -1;
    ConvConf *c = &layer->conf.conv;
    ConvGeometry *g = &c->geometry;
    c->in_channels = layer->in.dim[0];
    c->out_channels = (int)spec->args[0];
    g->C = layer->in.dim[0];
    g->H = layer->in.dim[1];
    g->W = layer->in.dim[2];
    g->kernel = (int)layer_spec_option(spec, "kernel", 1);
    g->stride = (int)layer_spec_option(spec, "stride", 1);
    g->padding = (int)layer_spec_option(spec, "padding", 0);
    if (g->kernel > (long long)g->H + 2 * g->padding || g->kernel > (long long)g->W + 2 * g->padding) {
        snprintf(msg, msglen, "kernel %d is larger than its input (%d, %d, %d) with padding %d", g->kernel,
                 g->C, g->H, g->W, g->padding);
        return -1;
    }
    g->OH = (int)(((long long)g->H + 2 * g->padding - g->kernel) / g->stride + 1);   // (64 bits: H may be
    g->OW = (int)(((long long)g->W + 2 * g->padding - g->kernel) / g->stride + 1);   // near INT_MAX)
    layer->out.rank = 3;
    layer->out.dim[0] = c->out_channels;
    layer->out.dim[1] = g->OH;
    layer->out.dim[2] = g->OW;
    add_conv_tensors(layer, c->out_channels, c->in_channels, g->kernel, c->out_channels);
    size_t grid = (size_t)g->OH * g->OW;
    layer->col_floats = (size_t)g->C * g->kernel * g->kernel * grid;
    layer->swap_floats = (size_t)c->out_channels * grid;
    layer->gemm_flops = 2ull * c->out_channels * layer->col_floats;   // (C_out, C k k) x (C k k, S)
    layer->composes_convolution = true;
    // The forward's columns kept for the weight gradient (no second im2col of x in the backward)
    // where they are at most COLUMNS_KEPT_FACTOR times the layer's input and output together:
    // the memory a network keeps for its backward grows by a small multiple at most (a 3 x 3
    // 32 -> 32 PixelCNN layer's columns are 4.5 times its activations: not kept).
    if (layer->col_floats <= COLUMNS_KEPT_FACTOR * (tensor_shape_size(layer->in) + tensor_shape_size(layer->out)))
        layer->kept_floats = layer->col_floats;
    return 0;
}

static int conv_transpose2d_build(NetLayer *layer, const LayerSpec *spec, char *msg, size_t msglen) {
    if (needs_image(layer, msg, msglen)) return -1;
    ConvConf *c = &layer->conf.conv;
    ConvGeometry *g = &c->geometry;
    c->in_channels = layer->in.dim[0];
    c->out_channels = (int)spec->args[0];
    c->output_padding = (int)layer_spec_option(spec, "output_padding", 0);
    g->C = c->out_channels;
    g->kernel = (int)layer_spec_option(spec, "kernel", 1);
    g->stride = (int)layer_spec_option(spec, "stride", 1);
    g->padding = (int)layer_spec_option(spec, "padding", 0);
    g->OH = layer->in.dim[1];   // the convolution this transposes runs over the output
    g->OW = layer->in.dim[2];
    // in 64 bits: an input up to 2^31 - 1 positions wide times a stride up to 64 overflows an int
    const long long H = (long long)(g->OH - 1) * g->stride - 2 * g->padding + g->kernel + c->output_padding;
    const long long W = (long long)(g->OW - 1) * g->stride - 2 * g->padding + g->kernel + c->output_padding;
    if (H > NETWORK_MAX_EXAMPLE_VALUES || W > NETWORK_MAX_EXAMPLE_VALUES) {
        snprintf(msg, msglen, "output (%d, %lld, %lld) from input (%d, %d, %d) is more than %d values an example",
                 g->C, H, W, c->in_channels, g->OH, g->OW, NETWORK_MAX_EXAMPLE_VALUES);
        return -1;
    }
    g->H = (int)H;
    g->W = (int)W;
    if (g->H < 1 || g->W < 1) {
        snprintf(msg, msglen, "output (%d, %d, %d) from input (%d, %d, %d) is empty: padding %d is too large",
                 g->C, g->H, g->W, c->in_channels, g->OH, g->OW, g->padding);
        return -1;
    }
    layer->out.rank = 3;
    layer->out.dim[0] = g->C;
    layer->out.dim[1] = g->H;
    layer->out.dim[2] = g->W;
    add_conv_tensors(layer, c->in_channels, c->out_channels, g->kernel, c->out_channels);
    size_t grid = (size_t)g->OH * g->OW;
    layer->col_floats = (size_t)g->C * g->kernel * g->kernel * grid;
    layer->swap_floats = (size_t)c->in_channels * grid;
    layer->gemm_flops = 2ull * c->in_channels * layer->col_floats;    // (C_out k k, C_in) x (C_in, S_in)
    layer->kept_floats = layer->swap_floats;   // x' kept for the weight gradient: the input's size
    layer->composes_convolution = true;
    return 0;
}

static void conv_init(const NetLayer *layer, float *params, float *buffers, Rng *rng) {
    (void)buffers;
    const LayerTensor *weight = &layer->tensors[0];
    float fan_in = (float)(weight->shape[1] * weight->shape[2] * weight->shape[3]);
    float bound = 1.0f / sqrtf(fan_in);
    for (size_t k = 0; k < layer->n_params; k++) params[k] = rng_uniform_range(rng, -bound, bound);
}

// Whether the backend runs whole convolutions (the CPU's oneDNN): else the layers compose them
// of im2col / GEMM / col2im below. (A transposed conv runs as the conv it transposes with the
// roles swapped: its C_in channels are that conv's output channels, its geometry that conv's.)
static bool library_runs(const Backend *be) { return be->conv_forward != NULL; }

// Chunk i of `chunks` over B images (Backend.col2im_chunks): its first image and count.
static int chunk_images(int B, int chunks, int i, int *first) {
    const int base = B / chunks, extra = B % chunks;
    *first = i * base + (i < extra ? i : extra);
    return base + (i < extra ? 1 : 0);
}

// y = conv(x) with weights W (C_out, C k k), the bias from the parameters.
static void conv2d_forward_with(NetLayer *layer, const NetRun *run, const float *W, const float *x, float *y) {
    Backend *be = run->be;
    const ConvConf *c = &layer->conf.conv;
    const ConvGeometry g = c->geometry;
    const int B = run->B, S = g.OH * g.OW, rows = g.C * g.kernel * g.kernel, columns = B * S;
    const float *bias = run->params + layer->param_offset + (size_t)c->out_channels * rows;   // (C_out)
    if (library_runs(be)) {
        be->conv_forward(be, y, x, W, bias, g, c->out_channels, B);
        return;
    }
    float *col = layer->kept ? layer->kept : run->col;                 // (C k k, B S)
    be->im2col(be, col, x, g, B);
    if (layer->kept) {
        layer->kept_input = x;
        layer->kept_B = B;
    }
    be->gemm(be, false, false, c->out_channels, columns, rows, 1.0f, W, rows, col, columns, 0.0f,
             run->swap, columns);                                       // (C_out, B S)
    be->swap_leading_axes(be, y, run->swap, c->out_channels, B, S);    // (B, C_out, S)
    be->channel_bias_forward(be, y, bias, B, c->out_channels, S);
}

static void conv2d_forward(NetLayer *layer, const NetRun *run, const float *x, float *y) {
    conv2d_forward_with(layer, run, run->params + layer->param_offset, x, y);
}

// x's columns (C k k, B S): the ones the forward kept when its last run was on this x and batch
// (a network's backward follows its own forward), else im2col(x) into the workspace.
static const float *conv2d_columns(const NetLayer *layer, const NetRun *run, const float *x) {
    if (layer->kept && layer->kept_input == x && layer->kept_B == run->B) return layer->kept;
    run->be->im2col(run->be, run->col, x, layer->conf.conv.geometry, run->B);
    return run->col;
}

// dW, dbias (overwritten) and, if dx != NULL, dx through weights W (C_out, C k k).
static void conv2d_backward_with(NetLayer *layer, const NetRun *run, const float *W, const float *x,
                                 const float *dy, float *dx) {
    Backend *be = run->be;
    const ConvConf *c = &layer->conf.conv;
    const ConvGeometry g = c->geometry;
    const int B = run->B, S = g.OH * g.OW, rows = g.C * g.kernel * g.kernel, columns = B * S;
    float *dW = run->grads + layer->param_offset;                       // (C_out, C k k)
    float *dbias = dW + (size_t)c->out_channels * rows;
    if (library_runs(be)) {
        be->conv_backward_weights(be, dW, dbias, x, dy, g, c->out_channels, B);
        if (dx) be->conv_backward_data(be, dx, dy, W, g, c->out_channels, B);
        return;
    }
    be->swap_leading_axes(be, run->swap, dy, B, c->out_channels, S);   // dy' (C_out, B S)
    const float *col = conv2d_columns(layer, run, x);                  // (C k k, B S)
    be->gemm(be, false, true, c->out_channels, rows, columns, 1.0f, run->swap, columns, col, columns,
             0.0f, dW, rows);
    be->channel_bias_grad(be, dbias, dy, B, c->out_channels, S);
    if (!dx) return;
    const int chunks = be->col2im_chunks(be, (size_t)rows * S, c->out_channels, B);
    for (int i = 0; i < chunks; i++) {
        int b0;
        const int n = chunk_images(B, chunks, i, &b0);
        be->gemm(be, true, false, rows, n * S, c->out_channels, 1.0f, W, rows, run->swap + (size_t)b0 * S, columns,
                 0.0f, run->col, n * S);                                // dcol (C k k, n S) of images b0..
        be->col2im(be, dx + (size_t)b0 * g.C * g.H * g.W, run->col, g, n);
    }
}

static void conv2d_backward(NetLayer *layer, const NetRun *run, const float *x, const float *y,
                            const float *dy, float *dx) {
    (void)y;
    conv2d_backward_with(layer, run, run->params + layer->param_offset, x, dy, dx);
}

static void conv_transpose2d_forward(NetLayer *layer, const NetRun *run, const float *x, float *y) {
    Backend *be = run->be;
    const ConvConf *c = &layer->conf.conv;
    const ConvGeometry g = c->geometry;
    const int B = run->B, S_in = g.OH * g.OW, rows = g.C * g.kernel * g.kernel, columns = B * S_in;
    const float *W = run->params + layer->param_offset;                // (C_in, C_out k k)
    const float *bias = W + (size_t)c->in_channels * rows;              // (C_out)
    if (library_runs(be)) {   // the transpose of a conv (C_out, H, W) -> (C_in, OH, OW)
        be->conv_backward_data(be, y, x, W, g, c->in_channels, B);
        be->channel_bias_forward(be, y, bias, B, g.C, g.H * g.W);
        return;
    }
    float *x_swapped = layer->kept ? layer->kept : run->swap;          // x' (C_in, B S_in)
    be->swap_leading_axes(be, x_swapped, x, B, c->in_channels, S_in);
    if (layer->kept) {
        layer->kept_input = x;
        layer->kept_B = B;
    }
    const int chunks = be->col2im_chunks(be, (size_t)rows * S_in, c->in_channels, B);
    for (int i = 0; i < chunks; i++) {
        int b0;
        const int n = chunk_images(B, chunks, i, &b0);
        be->gemm(be, true, false, rows, n * S_in, c->in_channels, 1.0f, W, rows, x_swapped + (size_t)b0 * S_in,
                 columns, 0.0f, run->col, n * S_in);                    // (C_out k k, n S_in) of images b0..
        be->col2im(be, y + (size_t)b0 * g.C * g.H * g.W, run->col, g, n);   // (n, C_out, H, W)
    }
    be->channel_bias_forward(be, y, bias, B, g.C, g.H * g.W);
}

static void conv_transpose2d_backward(NetLayer *layer, const NetRun *run, const float *x, const float *y,
                                      const float *dy, float *dx) {
    (void)y;
    Backend *be = run->be;
    const ConvConf *c = &layer->conf.conv;
    const ConvGeometry g = c->geometry;
    const int B = run->B, S_in = g.OH * g.OW, rows = g.C * g.kernel * g.kernel, columns = B * S_in;
    const float *W = run->params + layer->param_offset;
    float *dW = run->grads + layer->param_offset;                       // (C_in, C_out k k)
    float *dbias = dW + (size_t)c->in_channels * rows;
    if (library_runs(be)) {   // dy plays the conv's input, x its output gradient
        be->conv_backward_weights(be, dW, NULL, dy, x, g, c->in_channels, B);
        be->channel_bias_grad(be, dbias, dy, B, g.C, g.H * g.W);
        if (dx) be->conv_forward(be, dx, dy, W, NULL, g, c->in_channels, B);
        return;
    }
    be->im2col(be, run->col, dy, g, B);                                 // dcol (C_out k k, B S_in)
    const float *x_swapped = layer->kept;                               // x' (C_in, B S_in): the forward's
    if (!layer->kept || layer->kept_input != x || layer->kept_B != B) { // unless none, or another x
        be->swap_leading_axes(be, run->swap, x, B, c->in_channels, S_in);
        x_swapped = run->swap;
    }
    be->gemm(be, false, true, c->in_channels, rows, columns, 1.0f, x_swapped, columns, run->col, columns,
             0.0f, dW, rows);
    be->channel_bias_grad(be, dbias, dy, B, g.C, g.H * g.W);
    if (!dx) return;
    be->gemm(be, false, false, c->in_channels, columns, rows, 1.0f, W, rows, run->col, columns, 0.0f,
             run->swap, columns);                                       // dx' (C_in, B S_in)
    be->swap_leading_axes(be, dx, run->swap, c->in_channels, B, S_in);
}

const LayerKind layer_conv2d = {"conv2d", false, conv2d_check, conv2d_build, conv_init, conv2d_forward,
                                conv2d_backward, false, false, NULL};
const LayerKind layer_conv_transpose2d = {"conv_transpose2d", false, conv_transpose2d_check,
                                          conv_transpose2d_build, conv_init, conv_transpose2d_forward,
                                          conv_transpose2d_backward, false, false, NULL};

// ---- masked convolutions (PixelCNN) --------------------------------------------

static const OptionRule masked_conv2d_rules[] = {
    {"kernel", true, 0, 1, 63, true},
    {"padding", false, 0, 0, 31, true},   // default (kernel - 1) / 2, the same size (set below)
};

static int masked_conv2d_check(LayerSpec *spec, char *key, size_t keylen, char *msg, size_t msglen) {
    if (layer_check_args(spec, 1, 1, true, 1, 1 << 16, "the output channels", msg, msglen)) return -1;
    const double k_given = layer_spec_option(spec, "kernel", 0);
    if (isnan(layer_spec_option(spec, "padding", NAN)) && k_given >= 1 && k_given == floor(k_given) &&
        spec->n_options < LAYER_MAX_OPTIONS) {   // the default padding, written out in the effective config
        snprintf(spec->option_keys[spec->n_options], sizeof spec->option_keys[0], "padding");
        spec->option_values[spec->n_options++] = floor((k_given - 1) / 2);
    }
    if (layer_apply_options(spec, masked_conv2d_rules, 2, key, keylen, msg, msglen)) return -1;
    const int k = (int)layer_spec_option(spec, "kernel", 1);
    if (k % 2 == 0) {
        snprintf(key, keylen, "kernel");
        snprintf(msg, msglen, "must be odd (the mask is centred on a pixel), got %d", k);
        return -1;
    }
    if (k == 1 && strcmp(spec->kind, "masked_conv2d_a") == 0) {   // type A hides the centre: nothing is left
        snprintf(key, keylen, "kernel");
        snprintf(msg, msglen, "1 leaves a type-A mask nothing (it hides the centre pixel): the layer would see no "
                 "input; use 3 or more");
        return -1;
    }
    return 0;
}

static int masked_conv2d_build(NetLayer *layer, const LayerSpec *spec, char *msg, size_t msglen) {
    if (conv2d_build(layer, spec, msg, msglen) != 0) return -1;   // stride 1 (no option), the padding given
    const ConvConf *c = &layer->conf.conv;
    const ConvGeometry *g = &c->geometry;
    if (g->OH != g->H || g->OW != g->W) {
        snprintf(msg, msglen, "kernel %d with padding %d changes the image size (%d, %d) to (%d, %d); a masked "
                 "convolution keeps it (padding (kernel - 1) / 2 = %d)", g->kernel, g->padding, g->H, g->W,
                 g->OH, g->OW, (g->kernel - 1) / 2);
        return -1;
    }
    int64_t mask[4] = {c->out_channels, c->in_channels, g->kernel, g->kernel};
    layer_add_tensor(layer, "mask", true, 4, mask);
    layer->state_floats = (size_t)c->out_channels * c->in_channels * g->kernel * g->kernel;   // W * mask
    return 0;
}

// The weights as conv2d's, the mask: kernel position (i, j) kept when it comes before the
// centre c in raster order (i < c, or i == c and j < c), and the centre itself for type B.
static void masked_conv2d_init(const NetLayer *layer, float *params, float *buffers, Rng *rng, bool type_b) {
    conv_init(layer, params, buffers, rng);
    const int k = layer->conf.conv.geometry.kernel, centre = k / 2;
    const size_t taps = (size_t)k * k;
    for (size_t p = 0; p < layer->n_buffers; p++) {
        const int i = (int)(p % taps) / k, j = (int)(p % taps) % k;
        const bool before = i < centre || (i == centre && j < centre);
        buffers[p] = before || (type_b && i == centre && j == centre) ? 1.0f : 0.0f;
    }
}

static void masked_conv2d_a_init(const NetLayer *layer, float *params, float *buffers, Rng *rng) {
    masked_conv2d_init(layer, params, buffers, rng, false);
}

static void masked_conv2d_b_init(const NetLayer *layer, float *params, float *buffers, Rng *rng) {
    masked_conv2d_init(layer, params, buffers, rng, true);
}

static void masked_conv2d_forward(NetLayer *layer, const NetRun *run, const float *x, float *y) {
    const float *W = run->params + layer->param_offset, *mask = run->buffers + layer->buffer_offset;
    run->be->multiply(run->be, layer->state, W, mask, layer->state_floats);   // W * mask, kept for backward
    conv2d_forward_with(layer, run, layer->state, x, y);
}

static void masked_conv2d_backward(NetLayer *layer, const NetRun *run, const float *x, const float *y,
                                   const float *dy, float *dx) {
    (void)y;
    conv2d_backward_with(layer, run, layer->state, x, dy, dx);
    float *dW = run->grads + layer->param_offset;
    run->be->multiply(run->be, dW, dW, run->buffers + layer->buffer_offset, layer->state_floats);
}

const LayerKind layer_masked_conv2d_a = {"masked_conv2d_a", false, masked_conv2d_check, masked_conv2d_build,
                                         masked_conv2d_a_init, masked_conv2d_forward, masked_conv2d_backward,
                                         false, false, layer_buffers_as_fresh};
const LayerKind layer_masked_conv2d_b = {"masked_conv2d_b", false, masked_conv2d_check, masked_conv2d_build,
                                         masked_conv2d_b_init, masked_conv2d_forward, masked_conv2d_backward,
                                         false, false, layer_buffers_as_fresh};
