// fill_uniform.cu: a buffer of uniform draws in (lo, hi] from the Philox stream of
// philox.h (a GAN's randomly smoothed real targets), with the index base partly
// read from device memory, so a replayed graph draws fresh numbers every step.
#include <cuda_runtime.h>
#include "cuvae/kernels.h"
#include "cuvae/cuda_check.h"
#include "cuvae/kernel_grid.h"
#include "cuvae/philox.h"

__global__ void fill_uniform_kernel(float *out,                       // (n)
                                    size_t n, uint64_t seed, uint64_t offset,
                                    const uint64_t *device_offset,    // (1) or NULL
                                    float lo, float hi) {
    uint64_t base = offset + (device_offset ? *device_offset : 0);
    size_t stride = (size_t)gridDim.x * blockDim.x;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride)
        out[i] = philox_uniform_between(seed, base + i, lo, hi);
}

extern "C" void launch_fill_uniform(float *out, size_t n, uint64_t seed, uint64_t offset,
                                    const uint64_t *device_offset, float lo, float hi,
                                    cudaStream_t stream) {
    if (n == 0) return;
    const int block_size = 256;
    const unsigned blocks = grid_for(n, block_size);   // (at most kernel_grid_max_blocks: the grid-stride loop covers the rest)
    fill_uniform_kernel<<<(unsigned)blocks, block_size, 0, stream>>>(out, n, seed, offset,
                                                                     device_offset, lo, hi);
    CUDA_CHECK(cudaGetLastError());
}
