// reconstruction_loss.cu: per-row reconstruction loss and its gradient in one pass.
//   BCE_LOGITS:   l = max(a, 0) - a x + log1p(exp(-|a|)),  dl/da = sigmoid(a) - x
//   MSE_SIGMOID:  s = sigmoid(a), l = (s - x)^2,          dl/da = 2 (s - x) s (1 - s)
//   MSE_IDENTITY: l = (y - x)^2,                          dl/dy = 2 (y - x)
// rec_row[b] = pixel_weight * sum_d l;  d_out = (grad_scale * pixel_weight) * dl.
// One block per row: thread t walks columns t, t + 128, ... in order, summing in
// double; the partial sums meet in a fixed warp butterfly and then a fixed sum
// over the 4 warps, so the result is deterministic.
// sigmoid is the two-branch stable form, the same expression as backend_cpu.c.
#include <cuda_runtime.h>
#include "cuvae/kernels.h"
#include "cuvae/backend.h"
#include "cuvae/cuda_check.h"
#include "cuvae/kernel_grid.h"

#define WARP_SIZE 32
#define REC_BLOCK_SIZE 128
#define REC_WARPS (REC_BLOCK_SIZE / WARP_SIZE)

static __device__ double warp_sum(double value) {
    for (int offset = WARP_SIZE / 2; offset > 0; offset /= 2) {
        value += __shfl_xor_sync(0xffffffffu, value, offset);
    }
    return value;
}

static __device__ float sigmoid(float a) {
    if (a >= 0.0f) return 1.0f / (1.0f + expf(-a));
    float e = expf(a);
    return e / (1.0f + e);
}

__global__ void reconstruction_loss_kernel(float *d_out,        // (B, D) or NULL
                                           float *rec_row,      // (B)
                                           const float *out,    // (B, D) logits or values
                                           const float *x,      // (B, D) targets
                                           int B, int D, int kind,
                                           float pixel_weight, float grad_scale) {
    __shared__ double warp_sums[REC_WARPS];
    int lane = threadIdx.x % WARP_SIZE;
    int warp = threadIdx.x / WARP_SIZE;
    float scale = grad_scale * pixel_weight;
    for (int b = blockIdx.x; b < B; b += gridDim.x) {
        const float *out_row = out + (size_t)b * D;
        const float *x_row = x + (size_t)b * D;
        double sum = 0.0;   // in double, like backend_cpu.c
        for (int d = threadIdx.x; d < D; d += REC_BLOCK_SIZE) {
            float a = out_row[d];
            float target = x_row[d];
            float loss, grad;
            if (kind == RECLOSS_BCE_LOGITS) {
                loss = fmaxf(a, 0.0f) - a * target + log1pf(expf(-fabsf(a)));
                grad = sigmoid(a) - target;
            } else if (kind == RECLOSS_MSE_SIGMOID) {
                float s = sigmoid(a);
                float diff = s - target;
                loss = diff * diff;
                grad = 2.0f * diff * s * (1.0f - s);
            } else {   // RECLOSS_MSE_IDENTITY
                float diff = a - target;
                loss = diff * diff;
                grad = 2.0f * diff;
            }
            sum += (double)loss;
            if (d_out) d_out[(size_t)b * D + d] = scale * grad;
        }
        sum = warp_sum(sum);
        if (lane == 0) warp_sums[warp] = sum;
        __syncthreads();
        if (warp == 0) {
            double total = lane < REC_WARPS ? warp_sums[lane] : 0.0;
            total = warp_sum(total);
            if (lane == 0) rec_row[b] = (float)((double)pixel_weight * total);
        }
        __syncthreads();   // warp_sums[] is reused by the next row
    }
}

extern "C" void launch_reconstruction_loss(float *d_out, float *rec_row, const float *out,
                                           const float *x, int B, int D, int kind,
                                           float pixel_weight, float grad_scale,
                                           cudaStream_t stream) {
    if (B <= 0) return;
    const unsigned blocks = grid_for((size_t)B, 1);   // one row a block, the row loop covers the rest
    reconstruction_loss_kernel<<<blocks, REC_BLOCK_SIZE, 0, stream>>>(
        d_out, rec_row, out, x, B, D, kind, pixel_weight, grad_scale);
    CUDA_CHECK(cudaGetLastError());
}
