// adam.cu: Adam and AdamW (PyTorch semantics) over the flat parameter arena,
// elementwise. The bias corrections come folded from the device-resident step
// state (step_state_begin computed them in double):
//   step_size = (float)(lr / (1 - beta1^t)),  sqrt_bc2 = (float)sqrt(1 - beta2^t)
// and each element does, in fp32 and in this order:
//   g += wd * p (adam's L2 weight decay)   or   p *= 1 - lr_now * wd (adamw, decoupled)
//   m = beta1 * m + (1.0f - beta1) * g
//   v = beta2 * v + (1.0f - beta2) * g * g
//   p -= step_size * (m / (sqrtf(v) / sqrt_bc2 + eps))
// The element's math is optimizer_math.h's adam_element, which backend_cpu.c uses
// too. When the four arrays are 16-byte aligned, each thread moves 128-bit
// float4s (same arithmetic per element).
#include <cuda_runtime.h>
#include <stdint.h>
#include "cuvae/kernels.h"
#include "cuvae/cuda_check.h"
#include "cuvae/kernel_grid.h"
#include "cuvae/optimizer_math.h"   // adam_element, shared with backend_cpu.c

__global__ void adam_update_kernel(float *params,        // (n)
                                   const float *grads,   // (n)
                                   float *m, float *v,   // (n) first and second moments
                                   size_t n, OptimizerParams o,
                                   const StepState *state) {
    const float step_size = state->adam_step_size;
    const float sqrt_bc2 = state->adam_sqrt_bc2;
    const float decay = optimizer_decoupled_decay(o, state->lr_now);
    size_t stride = (size_t)gridDim.x * blockDim.x;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride)
        adam_element(&params[i], grads[i], &m[i], &v[i], o, decay, step_size, sqrt_bc2);
}

// n4 float4s of the 16-byte aligned arrays, then the n % 4 tail by the first threads.
__global__ void adam_update_vec4_kernel(float4 *params, const float4 *grads, float4 *m,
                                        float4 *v, size_t n4, float *params_tail,
                                        const float *grads_tail, float *m_tail, float *v_tail,
                                        int tail, OptimizerParams o,
                                        const StepState *state) {
    const float step_size = state->adam_step_size;
    const float sqrt_bc2 = state->adam_sqrt_bc2;
    const float decay = optimizer_decoupled_decay(o, state->lr_now);
    size_t first = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    size_t stride = (size_t)gridDim.x * blockDim.x;
    for (size_t i = first; i < n4; i += stride) {
        float4 p4 = params[i], g4 = grads[i], m4 = m[i], v4 = v[i];
        adam_element(&p4.x, g4.x, &m4.x, &v4.x, o, decay, step_size, sqrt_bc2);
        adam_element(&p4.y, g4.y, &m4.y, &v4.y, o, decay, step_size, sqrt_bc2);
        adam_element(&p4.z, g4.z, &m4.z, &v4.z, o, decay, step_size, sqrt_bc2);
        adam_element(&p4.w, g4.w, &m4.w, &v4.w, o, decay, step_size, sqrt_bc2);
        params[i] = p4;
        m[i] = m4;
        v[i] = v4;
    }
    if (first < (size_t)tail)
        adam_element(&params_tail[first], grads_tail[first], &m_tail[first], &v_tail[first],
                     o, decay, step_size, sqrt_bc2);
}

static int aligned16(const void *p) { return ((uintptr_t)p & 15u) == 0; }

extern "C" void launch_adam_update(float *params, const float *grads, float *m, float *v,
                                   size_t n, OptimizerParams o, const StepState *state,
                                   cudaStream_t stream) {
    if (n == 0) return;
    const int block_size = 256;
    if (aligned16(params) && aligned16(grads) && aligned16(m) && aligned16(v)) {
        size_t n4 = n / 4;
        int tail = (int)(n % 4);
        const unsigned blocks = grid_for(n4, block_size);   // (at least 1: the tail alone)
        size_t done = n4 * 4;
        adam_update_vec4_kernel<<<(unsigned)blocks, block_size, 0, stream>>>(
            (float4 *)params, (const float4 *)grads, (float4 *)m, (float4 *)v, n4,
            params + done, grads + done, m + done, v + done, tail, o, state);
    } else {
        const unsigned blocks = grid_for(n, block_size);
        adam_update_kernel<<<(unsigned)blocks, block_size, 0, stream>>>(
            params, grads, m, v, n, o, state);
    }
    CUDA_CHECK(cudaGetLastError());
}
