// accumulate_loss.cu: adds a batch's per-row losses into the device accumulator
// acc (3) double = [sum rec, sum kl, examples], so that a log interval needs one
// device-to-host read. A single block: thread t sums rows t, t + 256, ... in
// double, in order, then a fixed shared-memory tree adds the 256 partial sums:
// deterministic, no atomics.
#include <cuda_runtime.h>
#include "cuvae/kernels.h"
#include "cuvae/cuda_check.h"

#define ACC_BLOCK_SIZE 256   // a power of 2 (the tree below halves it)

__global__ void accumulate_loss_kernel(double *acc,            // (3)
                                       const float *rec_row,   // (B)
                                       const float *kl_row,    // (B) or NULL
                                       int B) {
    __shared__ double rec_partial[ACC_BLOCK_SIZE];
    __shared__ double kl_partial[ACC_BLOCK_SIZE];
    int t = threadIdx.x;
    double rec_sum = 0.0, kl_sum = 0.0;
    for (int b = t; b < B; b += ACC_BLOCK_SIZE) {
        rec_sum += (double)rec_row[b];
        if (kl_row) kl_sum += (double)kl_row[b];
    }
    rec_partial[t] = rec_sum;
    kl_partial[t] = kl_sum;
    __syncthreads();
    for (int half = ACC_BLOCK_SIZE / 2; half > 0; half /= 2) {
        if (t < half) {
            rec_partial[t] += rec_partial[t + half];
            kl_partial[t] += kl_partial[t + half];
        }
        __syncthreads();
    }
    if (t == 0) {
        acc[0] += rec_partial[0];
        if (kl_row) acc[1] += kl_partial[0];
        acc[2] += (double)B;
    }
}

extern "C" void launch_accumulate_loss(double *acc, const float *rec_row, const float *kl_row,
                                       int B, cudaStream_t stream) {
    accumulate_loss_kernel<<<1, ACC_BLOCK_SIZE, 0, stream>>>(acc, rec_row, kl_row,
                                                             B < 0 ? 0 : B);
    CUDA_CHECK(cudaGetLastError());
}
