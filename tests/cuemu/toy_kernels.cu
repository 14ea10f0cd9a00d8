// toy_kernels.cu: small kernels for the emulator's self-test
// (tests/cuemu/test_cuemu.cpp): one correct block reduction as a positive
// control, and one kernel per class of bug the emulator must catch. Plain
// CUDA: it compiles with nvcc too; launchers are extern "C" for the test.
#include <cuda_runtime.h>
#include <stdint.h>

#define TOY_BLOCK 128

// out[blockIdx.x] = sum of in[blockIdx.x * 128 ...] (128 values): a shared-memory
// step then warp shuffles, as the real kernels reduce.
__global__ void toy_block_sum(float *out, const float *in) {
    __shared__ float partial[TOY_BLOCK / 32];
    int t = threadIdx.x;
    float v = in[blockIdx.x * TOY_BLOCK + t];
    for (int offset = 16; offset > 0; offset /= 2) v += __shfl_xor_sync(0xffffffffu, v, offset);
    if (t % 32 == 0) partial[t / 32] = v;
    __syncthreads();
    if (t < 32) {
        float w = t < TOY_BLOCK / 32 ? partial[t] : 0.0f;
        for (int offset = 16; offset > 0; offset /= 2) w += __shfl_down_sync(0xffffffffu, w, offset);
        if (t == 0) out[blockIdx.x] = w;
    }
}

// Reads shared memory nobody wrote: must see NaN (new shared memory is NaN).
__global__ void toy_read_uninitialised_shared(float *out) {
    __shared__ float never_written[64];
    out[threadIdx.x] = never_written[threadIdx.x];
}

// Bug: a barrier in divergent code (half the block returns first).
__global__ void toy_barrier_after_return(float *out) {
    if (threadIdx.x >= 16) return;
    __syncthreads();
    out[threadIdx.x] = 1.0f;
}

// Bug: two different barriers for odd and even threads.
__global__ void toy_barrier_two_sites(float *out) {
    if (threadIdx.x % 2) {
        __syncthreads();
    } else {
        __syncthreads();
    }
    out[threadIdx.x] = 1.0f;
}

// Bug: a full-warp shuffle in a block of 48 threads (warp 1 has 16 lanes).
__global__ void toy_shuffle_missing_lane(float *out) {
    float v = (float)threadIdx.x;
    v += __shfl_xor_sync(0xffffffffu, v, 16);
    out[threadIdx.x] = v;
}

// Bug: lanes 8..31 return, then lanes 0..7 read lanes 16..23 (returned: undefined values).
__global__ void toy_shuffle_returned_lane(float *out) {
    int lane = threadIdx.x % 32;
    if (lane >= 8) return;
    float v = __shfl_xor_sync(0xffffffffu, (float)lane, 16);
    out[threadIdx.x] = v;
}

// Correct CUDA the emulator must accept: a half-warp collective before a
// whole-warp one, __syncwarp at two places and without arguments, votes and a
// shuffle after some lanes returned (returned lanes are inactive, not errors).
// out (96): [0, 32) shuffled sums, [32, 64) ballot counts, [64, 96) after the return.
__global__ void toy_collectives_ok(float *out) {
    int lane = threadIdx.x;
    float v = (float)lane;
    if (lane >= 16) v += __shfl_xor_sync(0xffff0000u, v, 1);
    v += __shfl_xor_sync(0xffffffffu, v, 2);
    if (lane % 2) {
        __syncwarp();
    } else {
        __syncwarp(0xffffffffu);
    }
    unsigned ballot = __ballot_sync(0xffffffffu, lane < 5);
    out[lane] = v;
    out[32 + lane] = (float)__popc(ballot) + (__all_sync(0xffffffffu, lane < 32) ? 100.0f : 0.0f);
    if (lane >= 20) return;
    unsigned alive = __ballot_sync(0xffffffffu, 1);
    float from0 = __shfl_sync(0xffffffffu, v, 0);
    out[64 + lane] = (float)__popc(alive) + 1000.0f * from0;
}

// Bug: warp 0 reads what warp 1 wrote to shared memory with no __syncthreads
// between (64 threads). On the emulator one of the warps reads NaN.
__global__ void toy_missing_barrier(float *out) {
    __shared__ float s[64];
    int t = threadIdx.x;
    s[t] = (float)t;
    float x = __shfl_xor_sync(0xffffffffu, 1.0f, 1);   // a warp collective is not a block barrier
    out[t] = s[t ^ 32] * x;
}

// Two shared arrays declared on one line, a static one, and one in a template
// helper instantiated twice: each its own storage.
template <int N> __device__ float shared_sum_of_first(int t) {
    __shared__ float s[N];
    if (t < N) s[t] = (float)(t + 1);
    __syncthreads();
    float sum = 0.0f;
    for (int i = 0; i < N; i++) sum += s[i];
    __syncthreads();
    return sum;
}

__global__ void toy_shared_declarations(float *out) {
    __shared__ float a[32]; __shared__ float b[32];
    static __shared__ float c[32];
    int t = threadIdx.x;
    a[t] = 1.0f;
    b[t] = 2.0f;
    c[t] = (float)t;
    __syncthreads();
    out[blockIdx.x * 32 + t] = a[t] + 10.0f * b[t] + 100.0f * c[31 - t] +
                              shared_sum_of_first<4>(t) * 1e4f + shared_sum_of_first<16>(t) * 1e5f;
}

// Bug: thread 0 writes `offset` floats before the start of out.
__global__ void toy_underflow_write(float *out, int offset) {
    if (threadIdx.x == 0) out[-offset] = 3.0f;
}

// Bug: writes -1 (all bits set) one int past the end of out (n ints).
__global__ void toy_write_minus_one_past_end(int *out, int n) {
    if (threadIdx.x == 0) out[n] = -1;
}

// Bug: lane 0 waits at a barrier while the rest of its warp waits for it at a shuffle.
__global__ void toy_deadlock(float *out) {
    float v = 1.0f;
    if (threadIdx.x == 0) {
        __syncthreads();
    } else {
        v = __shfl_xor_sync(0xffffffffu, v, 1);
    }
    out[threadIdx.x] = v;
}

// Bug: writes out[n] (one float past the end) -- or much further with `stride`.
__global__ void toy_out_of_bounds_write(float *out, int n, int stride) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i <= n) out[(size_t)i * stride] = 2.0f;
}

// Bug: each of two threads raises its flag and spins until the other's is up
// (a hang under the emulator, whose threads take turns without preemption).
__global__ void toy_spin(volatile int *flags) {
    flags[threadIdx.x] = 1;
    while (flags[1 - threadIdx.x] == 0) {
    }
}

// data[i] += 1 for i < n
__global__ void toy_increment(float *data, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) data[i] += 1.0f;
}

// A template kernel launched with explicit template arguments (a comma inside).
template <typename T, int K> __global__ void toy_scale(T *x, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) x[i] *= (T)K;
}

extern "C" {
void toy_launch_scale_by_3(float *x, int n, cudaStream_t s) { toy_scale<float, 3><<<(n + 31) / 32, 32, 0, s>>>(x, n); }
void toy_launch_block_sum(float *out, const float *in, int blocks, cudaStream_t s) {
    toy_block_sum<<<blocks, TOY_BLOCK, 0, s>>>(out, in);
}
void toy_launch_read_uninitialised_shared(float *out, cudaStream_t s) {
    toy_read_uninitialised_shared<<<1, 64, 0, s>>>(out);
}
void toy_launch_barrier_after_return(float *out, cudaStream_t s) { toy_barrier_after_return<<<2, 64, 0, s>>>(out); }
void toy_launch_barrier_two_sites(float *out, cudaStream_t s) { toy_barrier_two_sites<<<1, 64, 0, s>>>(out); }
void toy_launch_shuffle_missing_lane(float *out, cudaStream_t s) { toy_shuffle_missing_lane<<<1, 48, 0, s>>>(out); }
void toy_launch_shuffle_returned_lane(float *out, cudaStream_t s) { toy_shuffle_returned_lane<<<1, 32, 0, s>>>(out); }
void toy_launch_deadlock(float *out, cudaStream_t s) { toy_deadlock<<<1, 32, 0, s>>>(out); }
void toy_launch_out_of_bounds_write(float *out, int n, int stride, cudaStream_t s) {
    toy_out_of_bounds_write<<<(n + 1 + 63) / 64, 64, 0, s>>>(out, n, stride);
}
void toy_launch_spin(int *flag, cudaStream_t s) { toy_spin<<<1, 2, 0, s>>>(flag); }
void toy_launch_collectives_ok(float *out, cudaStream_t s) { toy_collectives_ok<<<1, 32, 0, s>>>(out); }
void toy_launch_missing_barrier(float *out, cudaStream_t s) { toy_missing_barrier<<<1, 64, 0, s>>>(out); }
void toy_launch_shared_declarations(float *out, cudaStream_t s) { toy_shared_declarations<<<2, 32, 0, s>>>(out); }
void toy_launch_underflow_write(float *out, int offset, cudaStream_t s) {
    toy_underflow_write<<<1, 32, 0, s>>>(out, offset);
}
void toy_launch_write_minus_one_past_end(int *out, int n, cudaStream_t s) {
    toy_write_minus_one_past_end<<<1, 32, 0, s>>>(out, n);
}
void toy_launch_increment(float *data, int n, cudaStream_t s) {
    toy_increment<<<(n + 255) / 256, 256, 0, s>>>(data, n);
}
void toy_launch_increment_config(float *data, int n, dim3 grid, dim3 block, cudaStream_t s) {
    toy_increment<<<grid, block, 0, s>>>(data, n);
}
}
