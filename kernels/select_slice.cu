// select_slice.cu: dst (n) = bank[k] (n) with k = state->step mod n_slices, the step
// count read on the device, so a captured step picks a different slice each replay
// (MADE's connectivity-agnostic training: a new mask set every step, chosen from a
// bank drawn at model creation). A grid-stride copy.
#include <cuda_runtime.h>
#include "cuvae/kernels.h"
#include "cuvae/cuda_check.h"
#include "cuvae/kernel_grid.h"

__global__ void select_slice_kernel(float *dst,                 // (n)
                                    const float *bank,          // (n_slices, n)
                                    size_t n, int n_slices, const StepState *state) {
    const size_t slice = (size_t)(state->step % n_slices);
    const float *src = bank + slice * n;
    size_t stride = (size_t)gridDim.x * blockDim.x;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) dst[i] = src[i];
}

extern "C" void launch_select_slice(float *dst, const float *bank, size_t n, int n_slices,
                                    const StepState *state, cudaStream_t stream) {
    if (n == 0) return;
    const int block_size = 256;
    select_slice_kernel<<<grid_for(n, block_size), block_size, 0, stream>>>(dst, bank, n, n_slices, state);
    CUDA_CHECK(cudaGetLastError());
}
