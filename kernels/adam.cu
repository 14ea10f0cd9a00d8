// adam.cu: Adam (PyTorch semantics, no weight decay) over the flat parameter
// arena, elementwise. The bias corrections are folded on the host in double:
//   step_size = (float)(lr / (1 - beta1^step)),  sqrt_bc2 = (float)sqrt(1 - beta2^step)
// and each element does, in fp32 and in this order:
//   m = beta1 * m + (1.0f - beta1) * g
//   v = beta2 * v + (1.0f - beta2) * g * g
//   p -= step_size * (m / (sqrtf(v) / sqrt_bc2 + eps))
// backend_cpu.c uses the same expression so the two backends agree closely.
#include <cuda_runtime.h>
#include "cuvae/kernels.h"
#include "cuvae/cuda_check.h"

__global__ void adam_update_kernel(float *params,        // (n)
                                   const float *grads,   // (n)
                                   float *m, float *v,   // (n) first and second moments
                                   size_t n, float beta1, float beta2, float eps,
                                   float step_size, float sqrt_bc2) {
    size_t stride = (size_t)gridDim.x * blockDim.x;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) {
        float g = grads[i];
        float m_new = beta1 * m[i] + (1.0f - beta1) * g;
        float v_new = beta2 * v[i] + (1.0f - beta2) * g * g;
        m[i] = m_new;
        v[i] = v_new;
        float denom = sqrtf(v_new) / sqrt_bc2 + eps;
        params[i] -= step_size * (m_new / denom);
    }
}

extern "C" void launch_adam_update(float *params, const float *grads, float *m, float *v,
                                   size_t n, float beta1, float beta2, float eps,
                                   float step_size, float sqrt_bc2, cudaStream_t stream) {
    if (n == 0) return;
    const int block_size = 256;
    size_t blocks = (n + block_size - 1) / block_size;
    if (blocks > 65535) blocks = 65535;   // the grid-stride loop covers the rest
    adam_update_kernel<<<(unsigned)blocks, block_size, 0, stream>>>(
        params, grads, m, v, n, beta1, beta2, eps, step_size, sqrt_bc2);
    CUDA_CHECK(cudaGetLastError());
}
