// grad_clip.cu: gradient-norm clipping over the flat gradient arena, like
// torch.nn.utils.clip_grad_norm_ (max_norm / (norm + 1e-6)), with nothing read
// by the host: the norm stays in device scratch and the scale kernel reads it.
// Deterministic: a fixed grid of GRAD_CLIP_BLOCKS blocks; lane l of block b
// sums elements l + 256 b, l + 256 b + 256 GRAD_CLIP_BLOCKS, ... in double in
// order, a fixed shared-memory tree adds a block's 256 lanes, and one thread
// adds the blocks' sums in order (backend_cpu.c uses the same partition).
#include <cuda_runtime.h>
#include "cuvae/kernels.h"
#include "cuvae/cuda_check.h"
#include "cuvae/kernel_grid.h"

#define GRAD_CLIP_LANES 256   // a power of 2 (the tree halves it)

__global__ void grad_square_sums_kernel(const float *grads,   // (n)
                                        size_t n, double *scratch) {   // (GRAD_CLIP_SCRATCH)
    __shared__ double lane_sums[GRAD_CLIP_LANES];
    const int t = threadIdx.x;
    const size_t stride = (size_t)GRAD_CLIP_LANES * GRAD_CLIP_BLOCKS;
    double sum = 0.0;
    for (size_t i = (size_t)blockIdx.x * GRAD_CLIP_LANES + t; i < n; i += stride)
        sum += (double)grads[i] * grads[i];
    lane_sums[t] = sum;
    __syncthreads();
    for (int half = GRAD_CLIP_LANES / 2; half > 0; half /= 2) {
        if (t < half) lane_sums[t] += lane_sums[t + half];
        __syncthreads();
    }
    if (t == 0) scratch[1 + blockIdx.x] = lane_sums[0];
}

__global__ void grad_norm_kernel(double *scratch) {
    double total = 0.0;
    for (int b = 0; b < GRAD_CLIP_BLOCKS; b++) total += scratch[1 + b];
    scratch[0] = sqrt(total);
}

__global__ void grad_scale_kernel(float *grads, size_t n, float max_norm, const double *scratch) {
    const double coef = (double)max_norm / (scratch[0] + 1e-6);
    if (coef >= 1.0) return;
    const float c = (float)coef;
    size_t stride = (size_t)gridDim.x * blockDim.x;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) grads[i] *= c;
}

extern "C" void launch_grad_clip(float *grads, size_t n, float max_norm, double *scratch,
                                 cudaStream_t stream) {
    if (n == 0) return;
    grad_square_sums_kernel<<<GRAD_CLIP_BLOCKS, GRAD_CLIP_LANES, 0, stream>>>(grads, n, scratch);
    CUDA_CHECK(cudaGetLastError());
    grad_norm_kernel<<<1, 1, 0, stream>>>(scratch);
    CUDA_CHECK(cudaGetLastError());
    const unsigned blocks = grid_for(n, 256);
    grad_scale_kernel<<<(unsigned)blocks, 256, 0, stream>>>(grads, n, max_norm, scratch);
    CUDA_CHECK(cudaGetLastError());
}
