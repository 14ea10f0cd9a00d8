// bias_activation.cu: the elementwise ops around every Linear layer.
//   bias_activation_forward: y = act(y + bias), in place (one pass after the GEMM)
//   activation_backward:     dy *= act'(.) written through the output y, in place
//   bias_grad:               dbias = column sums of dy, in a fixed order
// Activations (config.h): none, relu, tanh, leaky_relu (slope 0.01), sigmoid; the
// math is layer_math.h's. Also the layer graph's standalone activation ops:
//   activation_forward:  y = act(x) with any leaky_relu slope (out of place)
//   activation_gradient: dx = dy act'(.) through the output y
//   multiply, add:       y = a * b, y = a + b (masked weights, residual connections)
// bias_grad is deterministic without float atomics: one block owns 32 columns;
// thread (tx, ty) sums rows ty, ty + 16, ty + 32, ... of column tx in order,
// then the 16 partial sums of a column are added by a fixed shared-memory tree.
#include <cuda_runtime.h>
#include "cuvae/kernels.h"
#include "cuvae/config.h"
#include "cuvae/cuda_check.h"
#include "cuvae/layer_math.h"
#include "cuvae/kernel_grid.h"

static __device__ float activation_forward(float v, int act) {
    return activation_value(v, act, LEAKY_RELU_SLOPE);
}

static __device__ float activation_backward_one(float dy, float y, int act) {
    return activation_gradient(dy, y, act, LEAKY_RELU_SLOPE);
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

__global__ void activation_forward_kernel(float *y, const float *x, size_t n, int act, float slope) {
    size_t stride = (size_t)gridDim.x * blockDim.x;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride)
        y[i] = activation_value(x[i], act, slope);
}

__global__ void activation_gradient_kernel(float *dx, const float *dy, const float *y, size_t n,
                                           int act, float slope) {
    size_t stride = (size_t)gridDim.x * blockDim.x;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride)
        dx[i] = activation_gradient(dy[i], y[i], act, slope);
}

__global__ void multiply_kernel(float *y, const float *a, const float *b, size_t n) {
    size_t stride = (size_t)gridDim.x * blockDim.x;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride)
        y[i] = a[i] * b[i];
}

__global__ void add_kernel(float *y, const float *a, const float *b, size_t n) {
    size_t stride = (size_t)gridDim.x * blockDim.x;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride)
        y[i] = a[i] + b[i];
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

extern "C" void launch_bias_activation_forward(float *y, const float *bias, int B, int N,
                                               int act, cudaStream_t stream) {
    if (B <= 0 || N <= 0) return;
    const int block_size = 256;
    size_t total = (size_t)B * N;
    bias_activation_forward_kernel<<<grid_for(total, block_size), block_size, 0,
                                     stream>>>(y, bias, B, N, act);
    CUDA_CHECK(cudaGetLastError());
}

extern "C" void launch_activation_backward(float *dy, const float *y, int B, int N, int act,
                                           cudaStream_t stream) {
    if (B <= 0 || N <= 0) return;
    const int block_size = 256;
    size_t total = (size_t)B * N;
    activation_backward_kernel<<<grid_for(total, block_size), block_size, 0,
                                 stream>>>(dy, y, B, N, act);
    CUDA_CHECK(cudaGetLastError());
}

extern "C" void launch_bias_grad(float *dbias, const float *dy, int B, int N,
                                 cudaStream_t stream) {
    if (N <= 0) return;
    const unsigned n_chunks = grid_for(N, BIAS_GRAD_COLS);   // (at most kernel_grid_max_blocks: the chunk loop covers the rest)
    dim3 block(BIAS_GRAD_COLS, BIAS_GRAD_ROWS);
    bias_grad_kernel<<<n_chunks, block, 0, stream>>>(dbias, dy, B < 0 ? 0 : B, N);
    CUDA_CHECK(cudaGetLastError());
}

extern "C" void launch_activation_forward(float *y, const float *x, size_t n, int act, float slope,
                                          cudaStream_t stream) {
    if (n == 0) return;
    const int block_size = 256;
    activation_forward_kernel<<<grid_for(n, block_size), block_size, 0, stream>>>(
        y, x, n, act, slope);
    CUDA_CHECK(cudaGetLastError());
}

extern "C" void launch_activation_gradient(float *dx, const float *dy, const float *y, size_t n,
                                           int act, float slope, cudaStream_t stream) {
    if (n == 0) return;
    const int block_size = 256;
    activation_gradient_kernel<<<grid_for(n, block_size), block_size, 0, stream>>>(
        dx, dy, y, n, act, slope);
    CUDA_CHECK(cudaGetLastError());
}

extern "C" void launch_multiply(float *y, const float *a, const float *b, size_t n, cudaStream_t stream) {
    if (n == 0) return;
    const int block_size = 256;
    multiply_kernel<<<grid_for(n, block_size), block_size, 0, stream>>>(y, a, b, n);
    CUDA_CHECK(cudaGetLastError());
}

extern "C" void launch_add(float *y, const float *a, const float *b, size_t n, cudaStream_t stream) {
    if (n == 0) return;
    const int block_size = 256;
    add_kernel<<<grid_for(n, block_size), block_size, 0, stream>>>(y, a, b, n);
    CUDA_CHECK(cudaGetLastError());
}
