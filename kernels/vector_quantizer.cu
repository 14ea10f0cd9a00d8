// vector_quantizer.cu: the VQ-VAE's quantiser (backend.h), code vectors as the
// columns of zt (D, N), the codebook (K, D):
//   code_norms:  ||e_k||^2, one thread per code (double sum)
//   argmin:      one thread per column over the GEMM's scores (layer_math.h vq_nearest_code)
//   quantize:    zqt = the chosen codes (elementwise), then one block per example for
//                its squared distance (double, a fixed tree)
//   backward:    dzt elementwise (straight-through + commitment); dcodebook one thread
//                per (k, d) summing its columns in order n = 0..N-1 (no atomics)
//   ema_update:  one thread per (k, d) for its sum (and count; n in order), then one
//                thread per (k, d) for the Laplace-smoothed code (layer_math.h)
//   restart_dead: codes whose EMA count fell below a threshold take a batch column
//                chosen by Philox at the device's step counter
#include <cuda_runtime.h>
#include "cuvae/kernels.h"
#include "cuvae/cuda_check.h"
#include "cuvae/layer_math.h"
#include "cuvae/kernel_grid.h"

#define VQ_THREADS 256

__global__ void vq_code_norms_kernel(float *norms, const float *codebook, int K, int D) {
    for (int k = blockIdx.x * blockDim.x + threadIdx.x; k < K; k += gridDim.x * blockDim.x) {
        double sum = 0.0;
        for (int d = 0; d < D; d++) sum += (double)codebook[(size_t)k * D + d] * codebook[(size_t)k * D + d];
        norms[k] = (float)sum;
    }
}

__global__ void vq_argmin_kernel(int32_t *codes, const float *scores, const float *norms, int N, int K) {
    // (size_t: N = B S may be within a grid's stride of INT_MAX)
    for (size_t n = (size_t)blockIdx.x * blockDim.x + threadIdx.x; n < (size_t)N; n += (size_t)gridDim.x * blockDim.x)
        codes[n] = vq_nearest_code(scores + n * K, norms, K);
}

__global__ void vq_gather_kernel(float *zqt, const float *codebook, const int32_t *codes, int N, int D) {
    const size_t total = (size_t)N * D;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += (size_t)gridDim.x * blockDim.x) {
        int n = (int)(i % N), d = (int)(i / N);
        zqt[i] = codebook[(size_t)codes[n] * D + d];
    }
}

__global__ void vq_distance_kernel(float *loss_row, const float *zt, const float *zqt, int B, int S, int D,
                                   float weight) {
    __shared__ double partial[VQ_THREADS];
    const size_t N = (size_t)B * S;
    for (int b = blockIdx.x; b < B; b += gridDim.x) {
        double sum = 0.0;
        for (int k = threadIdx.x; k < D * S; k += VQ_THREADS) {
            size_t i = (size_t)(k / S) * N + (size_t)b * S + k % S;
            double diff = (double)zt[i] - (double)zqt[i];
            sum += diff * diff;
        }
        partial[threadIdx.x] = sum;
        __syncthreads();
        for (int half = VQ_THREADS / 2; half > 0; half /= 2) {
            if ((int)threadIdx.x < half) partial[threadIdx.x] += partial[threadIdx.x + half];
            __syncthreads();
        }
        if (threadIdx.x == 0) loss_row[b] = (float)(weight * partial[0]);
        __syncthreads();
    }
}

__global__ void vq_input_grad_kernel(float *dzt, const float *dzqt, const float *zt, const float *codebook,
                                     const int32_t *codes, int N, int D, float commit_coef) {
    const size_t total = (size_t)N * D;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += (size_t)gridDim.x * blockDim.x) {
        int n = (int)(i % N), d = (int)(i / N);
        dzt[i] = dzqt[i] + commit_coef * 2.0f * (zt[i] - codebook[(size_t)codes[n] * D + d]);
    }
}

__global__ void vq_codebook_grad_kernel(float *dcodebook, const float *zt, const float *codebook,
                                        const int32_t *codes, int N, int K, int D, float codebook_coef) {
    const size_t total = (size_t)K * D;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += (size_t)gridDim.x * blockDim.x) {
        int k = (int)(i / D), d = (int)(i % D);
        float e = codebook[i], sum = 0.0f;
        for (int n = 0; n < N; n++)
            if (codes[n] == k) sum += 2.0f * (e - zt[(size_t)d * N + n]);
        dcodebook[i] = codebook_coef * sum;
    }
}

__global__ void vq_ema_accumulate_kernel(float *counts, float *sums, const float *zt, const int32_t *codes,
                                         int N, int K, int D, float decay) {
    const size_t total = (size_t)K * D;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += (size_t)gridDim.x * blockDim.x) {
        int k = (int)(i / D), d = (int)(i % D);
        float used = 0.0f, sum = 0.0f;
        for (int n = 0; n < N; n++)
            if (codes[n] == k) {
                used += 1.0f;
                sum += zt[(size_t)d * N + n];
            }
        sums[i] = vq_ema_step(decay, sums[i], sum);
        if (d == 0) counts[k] = vq_ema_step(decay, counts[k], used);
    }
}

__global__ void vq_ema_codebook_kernel(float *codebook, const float *counts, const float *sums, int K, int D,
                                       float eps) {
    __shared__ double total_shared[1];
    if (threadIdx.x == 0) {   // every block sums the counts the same way, in order
        double total = 0.0;
        for (int k = 0; k < K; k++) total += counts[k];
        total_shared[0] = total;
    }
    __syncthreads();
    const float total = (float)total_shared[0];
    const size_t n = (size_t)K * D;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        codebook[i] = sums[i] / vq_smoothed_count(counts[i / D], total, K, eps);
}

// dead-code restart: one thread per (k, d) copies the chosen column; the counts are
// reset by a second kernel, so every thread of a code decides on the same old count.
__global__ void vq_restart_copy_kernel(float *codebook, float *sums, const float *counts, const float *zt, int N,
                                       int K, int D, float threshold, uint64_t seed, const StepState *state) {
    const size_t total = (size_t)K * D;
    const int64_t step = state->step;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += (size_t)gridDim.x * blockDim.x) {
        int k = (int)(i / D), d = (int)(i % D);
        if (!(counts[k] < threshold)) continue;
        int n = vq_restart_column(seed, step, K, k, N);
        codebook[i] = zt[(size_t)d * N + n];
        sums[i] = zt[(size_t)d * N + n];
    }
}

__global__ void vq_restart_counts_kernel(float *counts, int K, float threshold) {
    for (int k = blockIdx.x * blockDim.x + threadIdx.x; k < K; k += gridDim.x * blockDim.x)
        if (counts[k] < threshold) counts[k] = 1.0f;
}

extern "C" void launch_vq_restart_dead(float *codebook, float *counts, float *sums, const float *zt, int N, int K,
                                       int D, float threshold, uint64_t seed, const StepState *state,
                                       cudaStream_t stream) {
    if (K <= 0 || N <= 0) return;
    vq_restart_copy_kernel<<<grid_for((size_t)K * D, 128), 128, 0, stream>>>(codebook, sums, counts, zt, N, K, D,
                                                                              threshold, seed, state);
    CUDA_CHECK(cudaGetLastError());
    vq_restart_counts_kernel<<<grid_for((size_t)K, 128), 128, 0, stream>>>(counts, K, threshold);
    CUDA_CHECK(cudaGetLastError());
}

extern "C" void launch_vq_code_norms(float *norms, const float *codebook, int K, int D, cudaStream_t stream) {
    if (K <= 0) return;
    vq_code_norms_kernel<<<grid_for((size_t)K, 128), 128, 0, stream>>>(norms, codebook, K, D);
    CUDA_CHECK(cudaGetLastError());
}

extern "C" void launch_vq_argmin(int32_t *codes, const float *scores, const float *norms, int N, int K,
                                 cudaStream_t stream) {
    if (N <= 0) return;
    vq_argmin_kernel<<<grid_for((size_t)N, 128), 128, 0, stream>>>(codes, scores, norms, N, K);
    CUDA_CHECK(cudaGetLastError());
}

extern "C" void launch_vq_quantize(float *zqt, float *loss_row, const float *zt, const float *codebook,
                                   const int32_t *codes, int B, int S, int D, float weight, cudaStream_t stream) {
    const int N = B * S;
    if (N <= 0) return;
    vq_gather_kernel<<<grid_for((size_t)N * D, 256), 256, 0, stream>>>(zqt, codebook, codes, N, D);
    CUDA_CHECK(cudaGetLastError());
    vq_distance_kernel<<<grid_for((size_t)B, 1), VQ_THREADS, 0, stream>>>(loss_row, zt, zqt, B, S, D, weight);
    CUDA_CHECK(cudaGetLastError());
}

extern "C" void launch_vq_backward(float *dzt, float *dcodebook, const float *dzqt, const float *zt,
                                   const float *codebook, const int32_t *codes, int N, int K, int D,
                                   float commit_coef, float codebook_coef, cudaStream_t stream) {
    if (N <= 0) return;
    vq_input_grad_kernel<<<grid_for((size_t)N * D, 256), 256, 0, stream>>>(dzt, dzqt, zt, codebook, codes, N, D,
                                                                            commit_coef);
    CUDA_CHECK(cudaGetLastError());
    if (!dcodebook) return;
    vq_codebook_grad_kernel<<<grid_for((size_t)K * D, 128), 128, 0, stream>>>(dcodebook, zt, codebook, codes, N,
                                                                               K, D, codebook_coef);
    CUDA_CHECK(cudaGetLastError());
}

extern "C" void launch_vq_ema_update(float *codebook, float *counts, float *sums, const float *zt,
                                     const int32_t *codes, int N, int K, int D, float decay, float eps,
                                     cudaStream_t stream) {
    if (K <= 0) return;
    vq_ema_accumulate_kernel<<<grid_for((size_t)K * D, 128), 128, 0, stream>>>(counts, sums, zt, codes, N, K, D,
                                                                                decay);
    CUDA_CHECK(cudaGetLastError());
    vq_ema_codebook_kernel<<<grid_for((size_t)K * D, 128), 128, 0, stream>>>(codebook, counts, sums, K, D, eps);
    CUDA_CHECK(cudaGetLastError());
}
