// step_state.cu: the device side of the per-step values (step_state.h): one
// thread runs step_state_begin before a step's ops and step_state_end after
// them, the same functions the CPU backend calls on the host.
#include <cuda_runtime.h>
#include "cuvae/kernels.h"
#include "cuvae/cuda_check.h"
#include "cuvae/step_state.h"

__global__ void step_begin_kernel(StepState *state, StepPlan plan) {
    step_state_begin(state, plan);
}

__global__ void step_end_kernel(StepState *state, StepPlan plan, int rows) {
    step_state_end(state, plan, rows);
}

extern "C" void launch_step_begin(StepState *state, StepPlan plan, cudaStream_t stream) {
    step_begin_kernel<<<1, 1, 0, stream>>>(state, plan);
    CUDA_CHECK(cudaGetLastError());
}

extern "C" void launch_step_end(StepState *state, StepPlan plan, int rows, cudaStream_t stream) {
    step_end_kernel<<<1, 1, 0, stream>>>(state, plan, rows);
    CUDA_CHECK(cudaGetLastError());
}
