// reparam.cu: the VAE latent layer.
//   reparam_forward:       z = mu + exp(0.5 logvar) * eps, elementwise
//   kl_reparam_backward:   per-row KL(q(z|x) || N(0, I)) fused with its gradient (one
//                          coefficient per latent dimension) and the gradient flowing
//                          back through z into [mu | logvar]
//   kl_statistics:         per-dimension batch sums of the KL (free bits, capacity)
//   kl_coefficients:       d(loss)/d(KL_bj) per dimension from those sums and the schedule
//   importance_log_weight: per-row log p(x|z) + log p(z) - log q(z|x)
// Row reductions: one warp per row; each lane walks columns lane, lane + 32, ... in
// order and the 32 partial sums (in double) meet in a fixed butterfly
// (__shfl_xor_sync), so the result is deterministic and does not depend on the grid
// size. Column reductions (kl_statistics) use the fixed tree of bias_grad.
#include <cuda_runtime.h>
#include "cuvae/kernels.h"
#include "cuvae/cuda_check.h"
#include "cuvae/layer_math.h"
#include "cuvae/kernel_grid.h"
#include "cuvae/philox.h"

#define WARP_SIZE 32
#define KL_WARPS_PER_BLOCK 8

// eps from its source (philox.h): a stored (B, L) buffer, or drawn right here.
__global__ void reparam_forward_kernel(float *z,            // (B, L)
                                       const float *h,      // (B, 2L) = [mu | logvar]
                                       EpsSource eps,
                                       int B, int L) {
    size_t total = (size_t)B * L;
    size_t stride = (size_t)gridDim.x * blockDim.x;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += stride) {
        size_t b = i / L;
        size_t j = i % L;
        float mu = h[b * 2 * L + j];
        float logvar = h[b * 2 * L + L + j];
        z[i] = reparam_z(mu, logvar, eps_source_at(eps, i));
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
                                           EpsSource eps,      // regenerated when drawn
                                           const float *dz,    // (B, L) or NULL
                                           int B, int L,
                                           const float *kl_coef) {   // (L); read if dh
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
            sum += (double)kl_twice(mu, logvar, var);
            if (dh) {
                float dz_j = dz ? dz[(size_t)b * L + j] : 0.0f;
                float eps_j = eps_source_at(eps, (uint64_t)b * L + j);
                float std_dev = expf(0.5f * logvar);
                float coef = kl_coef[j];
                float *dh_row = dh + (size_t)b * 2 * L;
                dh_row[j] = dz_j + coef * mu;
                dh_row[L + j] = reparam_dlogvar(dz_j, eps_j, std_dev, coef, var);
            }
        }
        sum = warp_sum(sum);
        if (lane == 0) kl_row[b] = (float)(0.5 * sum);
    }
}

#define KL_STAT_COLS 32   // latent dimensions per block (one warp wide: coalesced reads)
#define KL_STAT_ROWS 16   // row lanes per block (the tree below assumes a power of 2)

// kl_dim_sum[j] = sum_b 0.5 * (mu^2 + exp(lv) - 1 - lv), in float like backend_cpu.c:
// thread (tx, ty) sums rows ty, ty + 16, ... of dimension tx in order, then a fixed
// shared-memory tree adds the 16 partial sums.
__global__ void kl_statistics_kernel(float *kl_dim_sum,   // (L)
                                     const float *h,      // (B, 2L) = [mu | logvar]
                                     int B, int L) {
    __shared__ float partial[KL_STAT_ROWS][KL_STAT_COLS];
    int tx = threadIdx.x;
    int ty = threadIdx.y;
    int n_chunks = (L + KL_STAT_COLS - 1) / KL_STAT_COLS;
    for (int chunk = blockIdx.x; chunk < n_chunks; chunk += gridDim.x) {
        int j = chunk * KL_STAT_COLS + tx;
        float sum = 0.0f;
        if (j < L) {
            for (int b = ty; b < B; b += KL_STAT_ROWS) {
                float mu = h[(size_t)b * 2 * L + j];
                float logvar = h[(size_t)b * 2 * L + L + j];
                sum += 0.5f * kl_twice(mu, logvar, expf(logvar));
            }
        }
        partial[ty][tx] = sum;
        __syncthreads();
        for (int half = KL_STAT_ROWS / 2; half > 0; half /= 2) {
            if (ty < half) partial[ty][tx] += partial[ty + half][tx];
            __syncthreads();
        }
        if (ty == 0 && j < L) kl_dim_sum[j] = partial[0][tx];
        __syncthreads();   // partial[] is reused by the next chunk
    }
}

#define KL_COEF_BLOCK_SIZE 256   // a power of 2 (the tree below halves it)

// One block. capacity: c_j = gamma * sign(sum_j kl_dim_sum_j / B - target) / B, the
// sum in double (thread t adds j = t, t + 256, ... in order, then a fixed tree);
// otherwise free bits / plain weight per dimension. kl_dim_sum is not read when
// neither capacity nor free bits is on (it may be NULL then).
__global__ void kl_coefficients_kernel(float *kl_coef,            // (L)
                                       const float *kl_dim_sum,   // (L) or NULL
                                       int B, int L,
                                       const StepState *state) {  // (1): the schedule state->kl
    __shared__ double partial[KL_COEF_BLOCK_SIZE];
    const KlSchedule schedule = state->kl;
    const float weight = schedule.weight, free_bits = schedule.free_bits;
    const int capacity = schedule.capacity;
    const float capacity_target = schedule.capacity_target, capacity_gamma = schedule.capacity_gamma;
    int t = threadIdx.x;
    float inv_batch = 1.0f / (float)B;
    if (capacity) {   // uniform over the block: the __syncthreads below are safe
        double sum = 0.0;
        for (int j = t; j < L; j += KL_COEF_BLOCK_SIZE) sum += (double)kl_dim_sum[j];
        partial[t] = sum;
        __syncthreads();
        for (int half = KL_COEF_BLOCK_SIZE / 2; half > 0; half /= 2) {
            if (t < half) partial[t] += partial[t + half];
            __syncthreads();
        }
        float kl_mean = (float)(partial[0] / B);
        float sign = kl_mean > capacity_target ? 1.0f : (kl_mean < capacity_target ? -1.0f : 0.0f);
        float coef = capacity_gamma * sign * inv_batch;
        for (int j = t; j < L; j += KL_COEF_BLOCK_SIZE) kl_coef[j] = coef;
        return;
    }
    for (int j = t; j < L; j += KL_COEF_BLOCK_SIZE) {
        bool above_floor = free_bits <= 0.0f || kl_dim_sum[j] * inv_batch > free_bits;
        kl_coef[j] = above_floor ? weight * inv_batch : 0.0f;
    }
}

// logw[b] = rec_scale * rec_row[b] + rec_const + sum_j (-0.5 z^2 + 0.5 eps^2 + 0.5 lv),
// z = mu + exp(0.5 lv) eps; one warp per row, the sum in double like backend_cpu.c.
__global__ void importance_log_weight_kernel(float *logw,            // (B)
                                             const float *rec_row,   // (B)
                                             const float *h,         // (B, 2L)
                                             const float *eps,       // (B, L)
                                             int B, int L, float rec_scale, float rec_const) {
    int lane = threadIdx.x % WARP_SIZE;
    int warp_in_block = threadIdx.x / WARP_SIZE;
    int warps_in_grid = gridDim.x * KL_WARPS_PER_BLOCK;
    // the loop bound is the same for all lanes of a warp, so the shuffle is safe
    for (int b = blockIdx.x * KL_WARPS_PER_BLOCK + warp_in_block; b < B; b += warps_in_grid) {
        const float *mu_row = h + (size_t)b * 2 * L;
        const float *logvar_row = mu_row + L;
        const float *eps_row = eps + (size_t)b * L;
        double sum = 0.0;
        for (int j = lane; j < L; j += WARP_SIZE) {
            float logvar = logvar_row[j];
            float e = eps_row[j];
            float z = reparam_z(mu_row[j], logvar, e);
            sum += -0.5 * (double)z * z + 0.5 * (double)e * e + 0.5 * (double)logvar;
        }
        sum = warp_sum(sum);
        if (lane == 0) logw[b] = (float)((double)rec_scale * rec_row[b] + rec_const + sum);
    }
}

extern "C" void launch_reparam_forward(float *z, const float *h, EpsSource eps, int B,
                                       int L, cudaStream_t stream) {
    if (B <= 0 || L <= 0) return;
    const int block_size = 256;
    size_t total = (size_t)B * L;
    const unsigned blocks = grid_for(total, block_size);   // (at most kernel_grid_max_blocks: the grid-stride loop covers the rest)
    reparam_forward_kernel<<<(unsigned)blocks, block_size, 0, stream>>>(z, h, eps, B, L);
    CUDA_CHECK(cudaGetLastError());
}

extern "C" void launch_kl_reparam_backward(float *dh, float *kl_row, const float *h,
                                           EpsSource eps, const float *dz, int B, int L,
                                           const float *kl_coef, cudaStream_t stream) {
    if (B <= 0) return;
    const unsigned blocks = grid_for(B, KL_WARPS_PER_BLOCK);   // (at most kernel_grid_max_blocks: the row loop covers the rest)
    kl_reparam_backward_kernel<<<blocks, KL_WARPS_PER_BLOCK * WARP_SIZE, 0, stream>>>(
        dh, kl_row, h, eps, dz, B, L, kl_coef);
    CUDA_CHECK(cudaGetLastError());
}

extern "C" void launch_kl_statistics(float *kl_dim_sum, const float *h, int B, int L,
                                     cudaStream_t stream) {
    if (L <= 0) return;
    const unsigned n_chunks = grid_for(L, KL_STAT_COLS);   // (at most kernel_grid_max_blocks: the chunk loop covers the rest)
    dim3 block(KL_STAT_COLS, KL_STAT_ROWS);
    kl_statistics_kernel<<<n_chunks, block, 0, stream>>>(kl_dim_sum, h, B < 0 ? 0 : B, L);
    CUDA_CHECK(cudaGetLastError());
}

extern "C" void launch_kl_coefficients(float *kl_coef, const float *kl_dim_sum, int B, int L,
                                       const StepState *state, cudaStream_t stream) {
    if (L <= 0) return;
    kl_coefficients_kernel<<<1, KL_COEF_BLOCK_SIZE, 0, stream>>>(kl_coef, kl_dim_sum, B, L, state);
    CUDA_CHECK(cudaGetLastError());
}

extern "C" void launch_importance_log_weight(float *logw, const float *rec_row, const float *h,
                                             const float *eps, int B, int L, float rec_scale,
                                             float rec_const, cudaStream_t stream) {
    if (B <= 0) return;
    const unsigned blocks = grid_for(B, KL_WARPS_PER_BLOCK);   // (at most kernel_grid_max_blocks: the row loop covers the rest)
    importance_log_weight_kernel<<<blocks, KL_WARPS_PER_BLOCK * WARP_SIZE, 0, stream>>>(
        logw, rec_row, h, eps, B, L, rec_scale, rec_const);
    CUDA_CHECK(cudaGetLastError());
}
