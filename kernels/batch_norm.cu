// batch_norm.cu: batch normalisation over x (B, C, S) per channel (backend.h):
//   statistics: one block per channel, sums in double by a fixed tree (mean,
//               then squared deviations), the running statistics updated by
//               thread 0 -- or, in eval, mean / invstd from the running ones
//   apply:      y = (x - mean) invstd gamma + beta, elementwise
//   backward:   one block per channel for dbeta = sum dy, dgamma = sum dy xhat,
//               then dx elementwise (batch_norm_input_gradient, layer_math.h)
#include <cuda_runtime.h>
#include "cuvae/kernels.h"
#include "cuvae/cuda_check.h"
#include "cuvae/layer_math.h"
#include "cuvae/kernel_grid.h"

#define BN_THREADS 256

static __device__ void block_tree_sum(double *shared) {
    for (int half = BN_THREADS / 2; half > 0; half /= 2) {
        if ((int)threadIdx.x < half) shared[threadIdx.x] += shared[threadIdx.x + half];
        __syncthreads();
    }
}

// element k of channel c's n = B S values
static __device__ size_t channel_index(size_t k, int c, int C, int S) {
    return ((k / S) * C + c) * S + k % S;
}

__global__ void batch_norm_batch_stats_kernel(float *mean, float *invstd,        // (C)
                                              float *running_mean, float *running_var,   // (C)
                                              const float *x,                    // (B, C, S)
                                              int B, int C, int S, float momentum, float eps) {
    __shared__ double partial[BN_THREADS];
    const size_t n = (size_t)B * S;
    for (int c = blockIdx.x; c < C; c += gridDim.x) {
        double sum = 0.0;
        for (size_t k = threadIdx.x; k < n; k += BN_THREADS) sum += x[channel_index(k, c, C, S)];
        partial[threadIdx.x] = sum;
        __syncthreads();
        block_tree_sum(partial);
        double mu = partial[0] / (double)n;
        __syncthreads();
        double squares = 0.0;
        for (size_t k = threadIdx.x; k < n; k += BN_THREADS) {
            double d = (double)x[channel_index(k, c, C, S)] - mu;
            squares += d * d;
        }
        partial[threadIdx.x] = squares;
        __syncthreads();
        block_tree_sum(partial);
        if (threadIdx.x == 0) {
            double var = partial[0] / (double)n;
            double unbiased = n > 1 ? partial[0] / (double)(n - 1) : var;
            mean[c] = (float)mu;
            invstd[c] = 1.0f / sqrtf((float)var + eps);
            running_mean[c] = (1.0f - momentum) * running_mean[c] + momentum * (float)mu;
            running_var[c] = (1.0f - momentum) * running_var[c] + momentum * (float)unbiased;
        }
        __syncthreads();
    }
}

__global__ void batch_norm_running_stats_kernel(float *mean, float *invstd,
                                                const float *running_mean, const float *running_var,
                                                int C, float eps) {
    for (int c = blockIdx.x * blockDim.x + threadIdx.x; c < C; c += gridDim.x * blockDim.x) {
        mean[c] = running_mean[c];
        invstd[c] = 1.0f / sqrtf(running_var[c] + eps);
    }
}

__global__ void batch_norm_apply_kernel(float *y, const float *x, const float *mean,
                                        const float *invstd, const float *gamma, const float *beta,
                                        int B, int C, int S) {
    const size_t total = (size_t)B * C * S;
    size_t stride = (size_t)gridDim.x * blockDim.x;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += stride) {
        int c = (int)((i / S) % C);
        y[i] = (x[i] - mean[c]) * invstd[c] * gamma[c] + beta[c];
    }
}

__global__ void batch_norm_backward_sums_kernel(float *dgamma, float *dbeta,           // (C)
                                                const float *dy, const float *x,       // (B, C, S)
                                                const float *mean, const float *invstd,
                                                int B, int C, int S) {
    __shared__ double partial[BN_THREADS];
    const size_t n = (size_t)B * S;
    for (int c = blockIdx.x; c < C; c += gridDim.x) {
        double sum = 0.0;
        for (size_t k = threadIdx.x; k < n; k += BN_THREADS) sum += dy[channel_index(k, c, C, S)];
        partial[threadIdx.x] = sum;
        __syncthreads();
        block_tree_sum(partial);
        if (threadIdx.x == 0) dbeta[c] = (float)partial[0];
        __syncthreads();
        double weighted = 0.0;
        for (size_t k = threadIdx.x; k < n; k += BN_THREADS) {
            size_t i = channel_index(k, c, C, S);
            weighted += (double)dy[i] * (double)((x[i] - mean[c]) * invstd[c]);
        }
        partial[threadIdx.x] = weighted;
        __syncthreads();
        block_tree_sum(partial);
        if (threadIdx.x == 0) dgamma[c] = (float)partial[0];
        __syncthreads();
    }
}

__global__ void batch_norm_backward_input_kernel(float *dx, const float *dy, const float *x,
                                                 const float *gamma, const float *mean,
                                                 const float *invstd, const float *dgamma,
                                                 const float *dbeta, int B, int C, int S) {
    const size_t total = (size_t)B * C * S;
    const double n = (double)B * S;
    size_t stride = (size_t)gridDim.x * blockDim.x;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += stride) {
        int c = (int)((i / S) % C);
        float mean_dy = (float)((double)dbeta[c] / n);
        float mean_dy_xhat = (float)((double)dgamma[c] / n);
        dx[i] = batch_norm_input_gradient(dy[i], (x[i] - mean[c]) * invstd[c], gamma[c], invstd[c],
                                          mean_dy, mean_dy_xhat);
    }
}

extern "C" void launch_batch_norm_forward(float *y, float *mean, float *invstd, float *running_mean,
                                          float *running_var, const float *x, const float *gamma,
                                          const float *beta, int B, int C, int S, int training,
                                          float momentum, float eps, cudaStream_t stream) {
    if (C <= 0) return;
    if (training) {
        const unsigned blocks = grid_for((size_t)C, 1);   // one channel a block, the loop covers the rest
        batch_norm_batch_stats_kernel<<<blocks, BN_THREADS, 0, stream>>>(
            mean, invstd, running_mean, running_var, x, B, C, S, momentum, eps);
    } else {
        batch_norm_running_stats_kernel<<<grid_for((size_t)C, 256), 256, 0, stream>>>(
            mean, invstd, running_mean, running_var, C, eps);
    }
    CUDA_CHECK(cudaGetLastError());
    size_t total = (size_t)B * C * S;
    if (total == 0) return;
    batch_norm_apply_kernel<<<grid_for(total, 256), 256, 0, stream>>>(y, x, mean, invstd, gamma,
                                                                      beta, B, C, S);
    CUDA_CHECK(cudaGetLastError());
}

extern "C" void launch_batch_norm_backward(float *dx, float *dgamma, float *dbeta, const float *dy,
                                           const float *x, const float *gamma, const float *mean,
                                           const float *invstd, int B, int C, int S,
                                           cudaStream_t stream) {
    if (C <= 0) return;
    const unsigned blocks = grid_for((size_t)C, 1);   // one channel a block, the loop covers the rest
    batch_norm_backward_sums_kernel<<<blocks, BN_THREADS, 0, stream>>>(dgamma, dbeta, dy, x, mean,
                                                                       invstd, B, C, S);
    CUDA_CHECK(cudaGetLastError());
    size_t total = (size_t)B * C * S;
    if (total == 0) return;
    batch_norm_backward_input_kernel<<<grid_for(total, 256), 256, 0, stream>>>(
        dx, dy, x, gamma, mean, invstd, dgamma, dbeta, B, C, S);
    CUDA_CHECK(cudaGetLastError());
}
