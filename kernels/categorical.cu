// categorical.cu: a PixelCNN prior's loss over K codes per position, and its one-hot input.
//   categorical_loss: one block per example; thread t takes positions t, t + 256, ... (each
//     position's log-softmax and gradient over its K logits, categorical_position of
//     layer_math.h), sums its losses in double in order, then a fixed shared-memory tree adds
//     the 256 partial sums: rec_row[b] without atomics, deterministic.
//   codes_onehot: out (B, K, S) = [code of x (B, S) == k], a grid-stride loop.
#include <cuda_runtime.h>
#include "cuvae/kernels.h"
#include "cuvae/cuda_check.h"
#include "cuvae/layer_math.h"
#include "cuvae/kernel_grid.h"

#define CATEGORICAL_BLOCK 256   // a power of 2 (the tree below halves it)

__global__ void categorical_loss_kernel(float *d_out,          // (B, K, S) or NULL
                                        float *rec_row,        // (B)
                                        const float *logits,   // (B, K, S)
                                        const float *x,        // (B, S) codes / 255
                                        int K, int S, float grad_scale) {
    __shared__ double partial[CATEGORICAL_BLOCK];
    const int b = blockIdx.x, t = threadIdx.x;
    double sum = 0.0;
    for (int s = t; s < S; s += CATEGORICAL_BLOCK) {
        const size_t at = (size_t)b * K * S + (size_t)s;
        sum += categorical_position(logits + at, d_out ? d_out + at : NULL, K, S,
                                    code_of_value(x[(size_t)b * S + s]), grad_scale);
    }
    partial[t] = sum;
    __syncthreads();
    for (int half = CATEGORICAL_BLOCK / 2; half > 0; half /= 2) {
        if (t < half) partial[t] += partial[t + half];
        __syncthreads();
    }
    if (t == 0) rec_row[b] = (float)partial[0];
}

__global__ void codes_onehot_kernel(float *out, const float *x, int B, int K, int S) {
    const size_t total = (size_t)B * K * S, stride = (size_t)gridDim.x * blockDim.x;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += stride) {
        const size_t s = i % (size_t)S, k = (i / (size_t)S) % (size_t)K, b = i / ((size_t)S * K);
        out[i] = code_of_value(x[b * S + s]) == (int)k ? 1.0f : 0.0f;
    }
}

extern "C" void launch_categorical_loss(float *d_out, float *rec_row, const float *logits, const float *x,
                                        int B, int K, int S, float grad_scale, cudaStream_t stream) {
    if (B <= 0) return;
    categorical_loss_kernel<<<B, CATEGORICAL_BLOCK, 0, stream>>>(d_out, rec_row, logits, x, K, S, grad_scale);
    CUDA_CHECK(cudaGetLastError());
}

extern "C" void launch_codes_onehot(float *out, const float *x, int B, int K, int S, cudaStream_t stream) {
    const size_t total = (size_t)B * K * S;
    if (total == 0) return;
    const int block_size = 256;
    codes_onehot_kernel<<<grid_for(total, block_size), block_size, 0, stream>>>(out, x, B, K, S);
    CUDA_CHECK(cudaGetLastError());
}
