// fill_normal.cu: a buffer of standard normal draws from the Philox stream of
// philox.h (the numbers the reparam kernels draw in place when epsilon is
// fused), with the index base partly read from device memory.
#include <cuda_runtime.h>
#include "cuvae/kernels.h"
#include "cuvae/cuda_check.h"
#include "cuvae/kernel_grid.h"
#include "cuvae/philox.h"

__global__ void fill_normal_kernel(float *out,                       // (n)
                                   size_t n, uint64_t seed, uint64_t offset,
                                   const uint64_t *device_offset) {  // (1) or NULL
    uint64_t base = offset + (device_offset ? *device_offset : 0);
    size_t stride = (size_t)gridDim.x * blockDim.x;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride)
        out[i] = philox_normal_at(seed, base + i);
}

extern "C" void launch_fill_normal(float *out, size_t n, uint64_t seed, uint64_t offset,
                                   const uint64_t *device_offset, cudaStream_t stream) {
    if (n == 0) return;
    const int block_size = 256;
    const unsigned blocks = grid_for(n, block_size);   // (at most kernel_grid_max_blocks: the grid-stride loop covers the rest)
    fill_normal_kernel<<<(unsigned)blocks, block_size, 0, stream>>>(out, n, seed, offset,
                                                                    device_offset);
    CUDA_CHECK(cudaGetLastError());
}
