// reparam.cu: the VAE latent layer.
//   reparam_forward:     z = mu + exp(0.5 logvar) * eps, elementwise
//   kl_reparam_backward: per-row KL(q(z|x) || N(0, I)) fused with its gradient and
//                        the gradient flowing back through z into [mu | logvar].
// One warp per row: each lane walks columns lane, lane + 32, ... in order and the
// 32 partial sums (in double) meet in a fixed butterfly (__shfl_xor_sync), so the
// result is deterministic and does not depend on the grid size.
#include <cuda_runtime.h>
#include "cuvae/kernels.h"
#include "cuvae/cuda_check.h"

#define WARP_SIZE 32
#define KL_WARPS_PER_BLOCK 8

__global__ void reparam_forward_kernel(float *z,            // (B, L)
                                       const float *h,      // (B, 2L) = [mu | logvar]
                                       const float *eps,    // (B, L)
                                       int B, int L) {
    size_t total = (size_t)B * L;
    size_t stride = (size_t)gridDim.x * blockDim.x;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += stride) {
        size_t b = i / L;
        size_t j = i % L;
        float mu = h[b * 2 * L + j];
        float logvar = h[b * 2 * L + L + j];
        z[i] = mu + expf(0.5f * logvar) * eps[i];
    }
}

static __device__ double warp_sum(double value) {
    for (int offset = WARP_SIZE / 2; offset > 0; offset /= 2) {
        value += __shfl_xor_sync(0xffffffffu, value, offset);
    }
    return value;
}

__global__ void kl_reparam_backward_kernel(float *dh,          // (B, 2L) or NULL
                                           float *kl_row,      // (B)
                                           const float *h,     // (B, 2L) = [mu | logvar]
                                           const float *eps,   // (B, L) or NULL
                                           const float *dz,    // (B, L) or NULL
                                           int B, int L, float kl_scale) {
    int lane = threadIdx.x % WARP_SIZE;
    int warp_in_block = threadIdx.x / WARP_SIZE;
    int warps_in_grid = gridDim.x * KL_WARPS_PER_BLOCK;
    // the loop bound is the same for all lanes of a warp, so the shuffle is safe
    for (int b = blockIdx.x * KL_WARPS_PER_BLOCK + warp_in_block; b < B; b += warps_in_grid) {
        const float *mu_row = h + (size_t)b * 2 * L;
        const float *logvar_row = mu_row + L;
        double sum = 0.0;   // in double, like backend_cpu.c
        for (int j = lane; j < L; j += WARP_SIZE) {
            float mu = mu_row[j];
            float logvar = logvar_row[j];
            float var = expf(logvar);
            sum += (double)(mu * mu + var - 1.0f - logvar);
            if (dh) {
                float dz_j = dz ? dz[(size_t)b * L + j] : 0.0f;
                float eps_j = eps ? eps[(size_t)b * L + j] : 0.0f;
                float std_dev = expf(0.5f * logvar);
                float *dh_row = dh + (size_t)b * 2 * L;
                dh_row[j] = dz_j + kl_scale * mu;
                dh_row[L + j] = dz_j * eps_j * 0.5f * std_dev + kl_scale * 0.5f * (var - 1.0f);
            }
        }
        sum = warp_sum(sum);
        if (lane == 0) kl_row[b] = (float)(0.5 * sum);
    }
}

extern "C" void launch_reparam_forward(float *z, const float *h, const float *eps, int B,
                                       int L, cudaStream_t stream) {
    if (B <= 0 || L <= 0) return;
    const int block_size = 256;
    size_t total = (size_t)B * L;
    size_t blocks = (total + block_size - 1) / block_size;
    if (blocks > 65535) blocks = 65535;   // the grid-stride loop covers the rest
    reparam_forward_kernel<<<(unsigned)blocks, block_size, 0, stream>>>(z, h, eps, B, L);
    CUDA_CHECK(cudaGetLastError());
}

extern "C" void launch_kl_reparam_backward(float *dh, float *kl_row, const float *h,
                                           const float *eps, const float *dz, int B, int L,
                                           float kl_scale, cudaStream_t stream) {
    if (B <= 0) return;
    int blocks = (B + KL_WARPS_PER_BLOCK - 1) / KL_WARPS_PER_BLOCK;
    if (blocks > 65535) blocks = 65535;   // the row loop covers the rest
    kl_reparam_backward_kernel<<<blocks, KL_WARPS_PER_BLOCK * WARP_SIZE, 0, stream>>>(
        dh, kl_row, h, eps, dz, B, L, kl_scale);
    CUDA_CHECK(cudaGetLastError());
}
