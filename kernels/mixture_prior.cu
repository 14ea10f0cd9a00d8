// mixture_prior.cu: an adversarial autoencoder's 2-D mixture prior: z (B, 2) of N(0, 1) draws
// becomes, row by row, a point of component (row mod components) -- mixture_point of
// layer_math.h, the CPU backend's arithmetic too. A thread a row (grid-stride).
#include <cuda_runtime.h>
#include "cuvae/kernels.h"
#include "cuvae/cuda_check.h"
#include "cuvae/kernel_grid.h"
#include "cuvae/layer_math.h"

__global__ void mixture_prior_kernel(float *z,   // (B, 2)
                                     int B, int components) {
    // grid-stride: grid_for caps the grid, so a thread may take several rows
    for (size_t b = blockIdx.x * (size_t)blockDim.x + threadIdx.x; b < (size_t)B; b += (size_t)gridDim.x * blockDim.x)
        mixture_point((int)(b % components), components, &z[2 * b], &z[2 * b + 1]);
}

extern "C" void launch_mixture_prior(float *z, int B, int components, cudaStream_t stream) {
    if (B <= 0) return;
    const int block_size = 256;
    mixture_prior_kernel<<<grid_for((size_t)B, block_size), block_size, 0, stream>>>(z, B, components);
    CUDA_CHECK(cudaGetLastError());
}
