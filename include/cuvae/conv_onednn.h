// conv_onednn.h: whole 2-D convolutions through oneDNN for the CPU backend (conv_onednn.c).
// Shapes as conv2d's (layer_math.h ConvGeometry g, C_out output channels, B images):
//   x (B, g.C, g.H, g.W), y (B, C_out, g.OH, g.OW), W (C_out, g.C, k, k), bias (C_out).
// Built without oneDNN, conv_library_create returns NULL and nothing else is called.
#ifndef CUVAE_CONV_ONEDNN_H
#define CUVAE_CONV_ONEDNN_H

#include "cuvae/layer_math.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct ConvLibrary ConvLibrary;

ConvLibrary *conv_library_create(void);
void conv_library_destroy(ConvLibrary *lib);
// Bytes the library holds now (its blocked copies of the tensors, scratchpads, the weight
// gradient's per-chunk sums), not counting oneDNN's code and caches.
size_t conv_library_bytes(const ConvLibrary *lib);
// The most it has held at once (what a run's peak memory adds).
size_t conv_library_peak_bytes(const ConvLibrary *lib);
// Primitives cached now (for tests: a network needing more than the cache's first places keeps
// them all instead of rebuilding them every step).
int conv_library_cached_primitives(const ConvLibrary *lib);
// Primitives built so far (for tests: a cache hit builds none).
uint64_t conv_library_builds(const ConvLibrary *lib);
// y = conv(x, W) + bias (bias NULL: none). Overwrites y.
void conv_library_forward(ConvLibrary *lib, float *y, const float *x, const float *W, const float *bias,
                          ConvGeometry g, int C_out, int B);
// dx = the gradient of conv(x, W) with respect to x, given dy. Overwrites dx.
void conv_library_backward_data(ConvLibrary *lib, float *dx, const float *dy, const float *W, ConvGeometry g,
                                int C_out, int B);
// dW, and dbias unless NULL, given x and dy. Overwrites them.
void conv_library_backward_weights(ConvLibrary *lib, float *dW, float *dbias, const float *x, const float *dy,
                                   ConvGeometry g, int C_out, int B);

#endif
