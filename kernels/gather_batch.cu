// gather_batch.cu: builds the input batch on the device. Each element is one
// uint8 pixel of the resident data set, picked through the epoch permutation,
// scaled to [0, 1] by /255, and optionally binarized against a uniform draw
// made in place (philox.h). The batch's first row and draw index come from the
// device-resident step state, so a captured graph walks the epoch by itself.
// gather_onehot does the same for the labels (the CVAE condition): one-hot rows.
#include <cuda_runtime.h>
#include "cuvae/kernels.h"
#include "cuvae/cuda_check.h"
#include "cuvae/kernel_grid.h"
#include "cuvae/philox.h"

__global__ void gather_batch_kernel(float *x,                 // (B, D)
                                    const uint8_t *data,      // (N, D)
                                    const int32_t *perm,      // (N) or NULL
                                    int start,
                                    const StepState *state,   // (1) or NULL
                                    int B, int D, int binarize, uint64_t binarize_seed) {
    const int base = start + (state ? state->batch_start : 0);
    // with the step state, row b of the batch is row start + b of the step's (global) batch
    const uint64_t draw_base = state ? state->uniform_offset + (uint64_t)start * (uint64_t)D : 0;
    size_t total = (size_t)B * D;
    size_t stride = (size_t)gridDim.x * blockDim.x;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += stride) {
        int b = (int)(i / D);
        int d = (int)(i % D);
        int row = perm ? perm[base + b] : base + b;
        float p = (float)data[(size_t)row * D + d] / 255.0f;
        if (binarize) p = (philox_uniform_at(binarize_seed, draw_base + i) < p) ? 1.0f : 0.0f;
        x[i] = p;
    }
}

__global__ void gather_onehot_kernel(float *onehot,            // (B, C)
                                     const uint8_t *labels,    // (N)
                                     const int32_t *perm,      // (N) or NULL
                                     int start,
                                     const StepState *state,   // (1) or NULL
                                     int B, int C) {
    const int base = start + (state ? state->batch_start : 0);
    size_t total = (size_t)B * C;
    size_t stride = (size_t)gridDim.x * blockDim.x;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += stride) {
        int b = (int)(i / C);
        int c = (int)(i % C);
        int row = perm ? perm[base + b] : base + b;
        onehot[i] = labels[row] == c ? 1.0f : 0.0f;
    }
}

extern "C" void launch_gather_batch(float *x, const uint8_t *data, const int32_t *perm,
                                    int start, const StepState *state, int B, int D,
                                    int binarize, uint64_t binarize_seed, cudaStream_t stream) {
    size_t total = (size_t)B * D;
    if (B <= 0 || D <= 0) return;
    const int block_size = 256;
    const unsigned blocks = grid_for(total, block_size);   // (at most kernel_grid_max_blocks: the grid-stride loop covers the rest)
    gather_batch_kernel<<<(unsigned)blocks, block_size, 0, stream>>>(x, data, perm, start, state,
                                                                     B, D, binarize,
                                                                     binarize_seed);
    CUDA_CHECK(cudaGetLastError());
}

extern "C" void launch_gather_onehot(float *onehot, const uint8_t *labels, const int32_t *perm,
                                     int start, const StepState *state, int B, int C,
                                     cudaStream_t stream) {
    if (B <= 0 || C <= 0) return;
    size_t total = (size_t)B * C;
    const int block_size = 256;
    const unsigned blocks = grid_for(total, block_size);   // (at most kernel_grid_max_blocks: the grid-stride loop covers the rest)
    gather_onehot_kernel<<<(unsigned)blocks, block_size, 0, stream>>>(onehot, labels, perm, start,
                                                                      state, B, C);
    CUDA_CHECK(cudaGetLastError());
}
