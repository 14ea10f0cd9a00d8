// mixture_prior.cu: an adversarial autoencoder's 2-D mixture prior: z (B, 2) of N(0, 1) draws
// becomes, row by row, a point of component (row mod components) -- mixture_point of
// layer_math.h, the CPU backend's arithmetic too. One thread per row.
#include <cuda_runtime.h>
#include "cuvae/kernels.h"
#include "cuvae/cuda_check.h"
#include "cuvae/kernel_grid.h"
#include "cuvae/layer_math.h"

__global__ void mixture_prior_kernel(float *z,   // (B, 2)
                                     int B, int components) {
    const int b = blockIdx.x * blockDim.x + threadIdx.x;
    if (b >= B) return;
    mixture_point(b % components, components, &z[2 * b], &z[2 * b + 1]);
}

extern "C" void launch_mixture_prior(float *z, int B, int components, cudaStream_t stream) {
    if (B <= 0) return;
    const int block_size = 256;
    mixture_prior_kernel<<<grid_for((size_t)B, block_size), block_size, 0, stream>>>(z, B, components);
    CUDA_CHECK(cudaGetLastError());
}
