// bias_activation.cu: the elementwise ops around every Linear layer.
//   bias_activation_forward: y = act(y + bias), in place (one pass after the GEMM)
//   activation_backward:     dy *= act'(.) written through the output y, in place
//   bias_grad:               dbias = column sums of dy, in a fixed order
// Activations (config.h): none, relu, tanh, leaky_relu (slope 0.01).
// bias_grad is deterministic without float atomics: one block owns 32 columns;
// thread (tx, ty) sums rows ty, ty + 16, ty + 32, ... of column tx in order,
// then the 16 partial sums of a column are added by a fixed shared-memory tree.
#include <cuda_runtime.h>
#include "cuvae/kernels.h"
#include "cuvae/config.h"
#include "cuvae/cuda_check.h"

#define LEAKY_RELU_SLOPE 0.01f

static __device__ float activation_forward(float v, int act) {
    switch (act) {
    case ACT_RELU: return v > 0.0f ? v : 0.0f;
    case ACT_TANH: return tanhf(v);
    case ACT_LEAKY_RELU: return v > 0.0f ? v : LEAKY_RELU_SLOPE * v;
    default: return v;
    }
}

// derivative of the activation expressed through its output y, times dy
static __device__ float activation_backward_one(float dy, float y, int act) {
    switch (act) {
    case ACT_RELU: return y > 0.0f ? dy : 0.0f;
    case ACT_TANH: return dy * (1.0f - y * y);
    case ACT_LEAKY_RELU: return y > 0.0f ? dy : LEAKY_RELU_SLOPE * dy;
    default: return dy;
    }
}

__global__ void bias_activation_forward_kernel(float *y,           // (B, N)
                                               const float *bias,  // (N)
                                               int B, int N, int act) {
    size_t total = (size_t)B * N;
    size_t stride = (size_t)gridDim.x * blockDim.x;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += stride) {
        y[i] = activation_forward(y[i] + bias[i % N], act);
    }
}

__global__ void activation_backward_kernel(float *dy,        // (B, N)
                                           const float *y,   // (B, N)
                                           int B, int N, int act) {
    size_t total = (size_t)B * N;
    size_t stride = (size_t)gridDim.x * blockDim.x;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += stride) {
        dy[i] = activation_backward_one(dy[i], y[i], act);
    }
}

#define BIAS_GRAD_COLS 32   // columns per block (one warp wide: coalesced row reads)
#define BIAS_GRAD_ROWS 16   // row lanes per block (the tree below assumes a power of 2)

__global__ void bias_grad_kernel(float *dbias,      // (N)
                                 const float *dy,   // (B, N)
                                 int B, int N) {
    __shared__ float partial[BIAS_GRAD_ROWS][BIAS_GRAD_COLS];
    int tx = threadIdx.x;   // column within the chunk
    int ty = threadIdx.y;   // row lane
    int n_chunks = (N + BIAS_GRAD_COLS - 1) / BIAS_GRAD_COLS;
    for (int chunk = blockIdx.x; chunk < n_chunks; chunk += gridDim.x) {
        int col = chunk * BIAS_GRAD_COLS + tx;
        float sum = 0.0f;
        if (col < N) {
            for (int b = ty; b < B; b += BIAS_GRAD_ROWS) sum += dy[(size_t)b * N + col];
        }
        partial[ty][tx] = sum;
        __syncthreads();
        for (int half = BIAS_GRAD_ROWS / 2; half > 0; half /= 2) {
            if (ty < half) partial[ty][tx] += partial[ty + half][tx];
            __syncthreads();
        }
        if (ty == 0 && col < N) dbias[col] = partial[0][tx];
        __syncthreads();   // partial[] is reused by the next chunk
    }
}

static unsigned elementwise_blocks(size_t total, int block_size) {
    size_t blocks = (total + block_size - 1) / block_size;
    if (blocks > 65535) blocks = 65535;   // the grid-stride loop covers the rest
    return (unsigned)blocks;
}

extern "C" void launch_bias_activation_forward(float *y, const float *bias, int B, int N,
                                               int act, cudaStream_t stream) {
    if (B <= 0 || N <= 0) return;
    const int block_size = 256;
    size_t total = (size_t)B * N;
    bias_activation_forward_kernel<<<elementwise_blocks(total, block_size), block_size, 0,
                                     stream>>>(y, bias, B, N, act);
    CUDA_CHECK(cudaGetLastError());
}

extern "C" void launch_activation_backward(float *dy, const float *y, int B, int N, int act,
                                           cudaStream_t stream) {
    if (B <= 0 || N <= 0) return;
    const int block_size = 256;
    size_t total = (size_t)B * N;
    activation_backward_kernel<<<elementwise_blocks(total, block_size), block_size, 0,
                                 stream>>>(dy, y, B, N, act);
    CUDA_CHECK(cudaGetLastError());
}

extern "C" void launch_bias_grad(float *dbias, const float *dy, int B, int N,
                                 cudaStream_t stream) {
    if (N <= 0) return;
    int n_chunks = (N + BIAS_GRAD_COLS - 1) / BIAS_GRAD_COLS;
    if (n_chunks > 65535) n_chunks = 65535;   // the chunk loop covers the rest
    dim3 block(BIAS_GRAD_COLS, BIAS_GRAD_ROWS);
    bias_grad_kernel<<<n_chunks, block, 0, stream>>>(dbias, dy, B < 0 ? 0 : B, N);
    CUDA_CHECK(cudaGetLastError());
}
