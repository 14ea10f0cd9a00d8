// conv.cu: the convolution building blocks of the layer graph (backend.h):
//   im2col / col2im:     image batch (B, C, H, W) <-> columns (C k k, B OH OW),
//                        the index math of layer_math.h; col2im gathers (one
//                        thread per pixel, fixed order), so no atomics
//   swap_leading_axes:   (N0, N1, S) -> (N1, N0, S), between the GEMM's (C, B S)
//                        layout and the layers' (B, C, S)
//   channel_bias_*:      y (B, C, S) += bias[c] and its gradient, one block per
//                        channel summing in double by a fixed tree
#include <cuda_runtime.h>
#include "cuvae/kernels.h"
#include "cuvae/cuda_check.h"
#include "cuvae/layer_math.h"
#include "cuvae/kernel_grid.h"

#define CHANNEL_SUM_THREADS 256

__global__ void im2col_kernel(float *col,       // (C k k, B OH OW)
                              const float *x,   // (B, C, H, W)
                              ConvGeometry g, int B) {
    const size_t per_image = (size_t)g.OH * g.OW;
    const size_t columns = (size_t)B * per_image;
    const size_t total = (size_t)g.C * g.kernel * g.kernel * columns;
    size_t stride = (size_t)gridDim.x * blockDim.x;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += stride) {
        int r = (int)(i / columns);
        size_t column = i % columns;
        int b = (int)(column / per_image);
        int pixel = (int)(column % per_image);
        col[i] = im2col_value(x + (size_t)b * g.C * g.H * g.W, g, r, pixel / g.OW, pixel % g.OW);
    }
}

__global__ void col2im_kernel(float *x,           // (B, C, H, W)
                              const float *col,   // (C k k, B OH OW)
                              ConvGeometry g, int B) {
    const size_t total = (size_t)B * g.C * g.H * g.W;
    size_t stride = (size_t)gridDim.x * blockDim.x;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += stride) {
        int w = (int)(i % g.W);
        int h = (int)((i / g.W) % g.H);
        int c = (int)((i / ((size_t)g.W * g.H)) % g.C);
        int b = (int)(i / ((size_t)g.W * g.H * g.C));
        x[i] = col2im_value(col, g, B, b, c, h, w);
    }
}

__global__ void swap_leading_axes_kernel(float *out,        // (N1, N0, S)
                                         const float *in,   // (N0, N1, S)
                                         int N0, int N1, int S) {
    const size_t total = (size_t)N0 * N1 * S;
    size_t stride = (size_t)gridDim.x * blockDim.x;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += stride) {
        int s = (int)(i % S);
        int i0 = (int)((i / S) % N0);
        int i1 = (int)(i / ((size_t)S * N0));
        out[i] = in[((size_t)i0 * N1 + i1) * S + s];
    }
}

__global__ void channel_bias_forward_kernel(float *y,            // (B, C, S)
                                            const float *bias,   // (C)
                                            int B, int C, int S) {
    const size_t total = (size_t)B * C * S;
    size_t stride = (size_t)gridDim.x * blockDim.x;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < total; i += stride)
        y[i] += bias[(i / S) % C];
}

// Sum of shared[0 .. CHANNEL_SUM_THREADS) into shared[0], a fixed tree.
static __device__ void block_tree_sum(double *shared) {
    for (int half = CHANNEL_SUM_THREADS / 2; half > 0; half /= 2) {
        if ((int)threadIdx.x < half) shared[threadIdx.x] += shared[threadIdx.x + half];
        __syncthreads();
    }
}

__global__ void channel_bias_grad_kernel(float *dbias,      // (C)
                                         const float *dy,   // (B, C, S)
                                         int B, int C, int S) {
    __shared__ double partial[CHANNEL_SUM_THREADS];
    const size_t n = (size_t)B * S;
    for (int c = blockIdx.x; c < C; c += gridDim.x) {
        double sum = 0.0;
        for (size_t k = threadIdx.x; k < n; k += CHANNEL_SUM_THREADS)
            sum += dy[((k / S) * C + c) * S + k % S];
        partial[threadIdx.x] = sum;
        __syncthreads();
        block_tree_sum(partial);
        if (threadIdx.x == 0) dbias[c] = (float)partial[0];
        __syncthreads();   // partial[] is reused by the next channel
    }
}

extern "C" void launch_im2col(float *col, const float *x, ConvGeometry g, int B, cudaStream_t stream) {
    size_t total = (size_t)g.C * g.kernel * g.kernel * B * g.OH * g.OW;
    if (total == 0) return;
    im2col_kernel<<<grid_for(total, 256), 256, 0, stream>>>(col, x, g, B);
    CUDA_CHECK(cudaGetLastError());
}

extern "C" void launch_col2im(float *x, const float *col, ConvGeometry g, int B, cudaStream_t stream) {
    size_t total = (size_t)B * g.C * g.H * g.W;
    if (total == 0) return;
    col2im_kernel<<<grid_for(total, 256), 256, 0, stream>>>(x, col, g, B);
    CUDA_CHECK(cudaGetLastError());
}

extern "C" void launch_swap_leading_axes(float *out, const float *in, int N0, int N1, int S,
                                         cudaStream_t stream) {
    size_t total = (size_t)N0 * N1 * S;
    if (total == 0) return;
    swap_leading_axes_kernel<<<grid_for(total, 256), 256, 0, stream>>>(out, in, N0, N1, S);
    CUDA_CHECK(cudaGetLastError());
}

extern "C" void launch_channel_bias_forward(float *y, const float *bias, int B, int C, int S,
                                            cudaStream_t stream) {
    size_t total = (size_t)B * C * S;
    if (total == 0) return;
    channel_bias_forward_kernel<<<grid_for(total, 256), 256, 0, stream>>>(y, bias, B, C, S);
    CUDA_CHECK(cudaGetLastError());
}

extern "C" void launch_channel_bias_grad(float *dbias, const float *dy, int B, int C, int S,
                                         cudaStream_t stream) {
    if (C <= 0) return;
    const unsigned blocks = grid_for((size_t)C, 1);   // one channel a block, the loop covers the rest
    channel_bias_grad_kernel<<<blocks, CHANNEL_SUM_THREADS, 0, stream>>>(dbias, dy, B, C, S);
    CUDA_CHECK(cudaGetLastError());
}
