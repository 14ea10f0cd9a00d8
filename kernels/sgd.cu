// sgd.cu: SGD with momentum (PyTorch semantics: no dampening, not Nesterov)
// over the flat parameter arena, elementwise; the learning rate of the step
// (state->lr_now, after warm-up and cosine decay) is read on the device.
// Each element does, in fp32 and in this order (optimizer_math.h's sgd_element,
// which backend_cpu.c uses too):
//   g += wd * p                       (L2 weight decay, when wd != 0)
//   buf = momentum * buf + g; g = buf  (when momentum != 0; buf starts at 0)
//   p -= lr * g
#include <cuda_runtime.h>
#include "cuvae/kernels.h"
#include "cuvae/cuda_check.h"
#include "cuvae/kernel_grid.h"
#include "cuvae/optimizer_math.h"

__global__ void sgd_update_kernel(float *params,        // (n)
                                  const float *grads,   // (n)
                                  float *buf,           // (n) momentum buffer
                                  size_t n, OptimizerParams o, const StepState *state) {
    const float lr = state->lr_now;
    size_t stride = (size_t)gridDim.x * blockDim.x;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride)
        sgd_element(&params[i], grads[i], &buf[i], o, lr);
}

extern "C" void launch_sgd_update(float *params, const float *grads, float *buf, size_t n,
                                  OptimizerParams o, const StepState *state, cudaStream_t stream) {
    if (n == 0) return;
    const int block_size = 256;
    const unsigned blocks = grid_for(n, block_size);   // (at most kernel_grid_max_blocks: the grid-stride loop covers the rest)
    sgd_update_kernel<<<(unsigned)blocks, block_size, 0, stream>>>(params, grads, buf, n, o, state);
    CUDA_CHECK(cudaGetLastError());
}
