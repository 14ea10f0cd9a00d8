// backend_cuda.c: the CUDA backend. Every op is enqueued on one non-default
// stream: GEMMs go to cuBLAS (true fp32, no TF32), random numbers to a cuRAND
// Philox generator, the fused ops to the kernels in kernels/*.cu (through the
// launchers declared in cuvae/kernels.h). Only download() and synchronize()
// wait for the device; a CUDA error anywhere aborts with file:line and the
// error string (cuvae/cuda_check.h).
#include "cuvae/backend.h"
#include "cuvae/common.h"
#include "cuvae/cuda_check.h"
#include "cuvae/kernels.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cuda_runtime_api.h>
#include <cublas_v2.h>
#include <curand.h>

// cuBLAS workspace set explicitly so that no GEMM allocates memory behind our
// back (which also keeps a training step capturable in a CUDA graph).
#define CUBLAS_WORKSPACE_BYTES ((size_t)32 << 20)

typedef struct {
    void *ptr;
    size_t bytes;
} Allocation;

typedef struct {
    int device;
    cudaStream_t stream;
    cublasHandle_t cublas;
    void *cublas_workspace;
    curandGenerator_t curand;
    float *normal_scratch;     // (2) for the last draw of an odd-length fill_normal

    // allocations made through alloc(), for peak_memory and destroy
    Allocation *allocations;
    size_t n_allocations, cap_allocations;
    size_t current_bytes, peak_bytes;
} CudaImpl;

static CudaImpl *impl_of(Backend *be) { return (CudaImpl *)be->impl; }

bool backend_cuda_compiled(void) { return true; }

// ---- memory ---------------------------------------------------------------

static void *cuda_alloc(Backend *be, size_t bytes) {
    CudaImpl *impl = impl_of(be);
    void *ptr = NULL;
    cudaError_t status = cudaMalloc(&ptr, bytes ? bytes : 1);
    if (status != cudaSuccess) {
        fprintf(stderr, "cuvae: out of GPU memory allocating %zu bytes (%zu in use): %s\n",
                bytes, impl->current_bytes, cudaGetErrorString(status));
        exit(1);
    }
    CUDA_CHECK(cudaMemsetAsync(ptr, 0, bytes ? bytes : 1, impl->stream));
    if (impl->n_allocations == impl->cap_allocations) {
        impl->cap_allocations = impl->cap_allocations ? 2 * impl->cap_allocations : 64;
        impl->allocations = realloc(impl->allocations,
                                    impl->cap_allocations * sizeof(Allocation));
        if (!impl->allocations) {
            fprintf(stderr, "cuvae: out of host memory (allocation table)\n");
            exit(1);
        }
    }
    impl->allocations[impl->n_allocations].ptr = ptr;
    impl->allocations[impl->n_allocations].bytes = bytes;
    impl->n_allocations++;
    impl->current_bytes += bytes;
    if (impl->current_bytes > impl->peak_bytes) impl->peak_bytes = impl->current_bytes;
    return ptr;
}

static void cuda_free(Backend *be, void *ptr) {
    if (!ptr) return;
    CudaImpl *impl = impl_of(be);
    for (size_t i = 0; i < impl->n_allocations; i++) {
        if (impl->allocations[i].ptr == ptr) {
            impl->current_bytes -= impl->allocations[i].bytes;
            impl->allocations[i] = impl->allocations[impl->n_allocations - 1];
            impl->n_allocations--;
            CUDA_CHECK(cudaFree(ptr));   // cudaFree waits for the device
            return;
        }
    }
    fprintf(stderr, "cuvae: cuda free of a pointer not from alloc (%p)\n", ptr);
    exit(1);
}

// From pageable host memory: the runtime stages the bytes before returning,
// so the host buffer may be reused at once.
static void cuda_upload(Backend *be, void *dst, const void *src_host, size_t bytes) {
    if (bytes == 0) return;
    CUDA_CHECK(cudaMemcpyAsync(dst, src_host, bytes, cudaMemcpyHostToDevice,
                               impl_of(be)->stream));
}

static void cuda_download(Backend *be, void *dst_host, const void *src, size_t bytes) {
    CudaImpl *impl = impl_of(be);
    if (bytes > 0) {
        CUDA_CHECK(cudaMemcpyAsync(dst_host, src, bytes, cudaMemcpyDeviceToHost, impl->stream));
    }
    CUDA_CHECK(cudaStreamSynchronize(impl->stream));
}

static void cuda_copy(Backend *be, void *dst, const void *src, size_t bytes) {
    if (bytes == 0) return;
    CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, impl_of(be)->stream));
}

static void cuda_zero(Backend *be, void *ptr, size_t bytes) {
    if (bytes == 0) return;
    CUDA_CHECK(cudaMemsetAsync(ptr, 0, bytes, impl_of(be)->stream));
}

static void cuda_synchronize(Backend *be) {
    CUDA_CHECK(cudaStreamSynchronize(impl_of(be)->stream));
}

static size_t cuda_peak_memory(Backend *be) { return impl_of(be)->peak_bytes; }

static void cuda_destroy(Backend *be) {
    if (!be) return;
    CudaImpl *impl = impl_of(be);
    if (impl) {
        if (impl->stream) CUDA_CHECK(cudaStreamSynchronize(impl->stream));
        for (size_t i = 0; i < impl->n_allocations; i++) {
            CUDA_CHECK(cudaFree(impl->allocations[i].ptr));
        }
        free(impl->allocations);
        if (impl->normal_scratch) CUDA_CHECK(cudaFree(impl->normal_scratch));
        if (impl->curand) CURAND_CHECK(curandDestroyGenerator(impl->curand));
        if (impl->cublas) CUBLAS_CHECK(cublasDestroy(impl->cublas));
        if (impl->cublas_workspace) CUDA_CHECK(cudaFree(impl->cublas_workspace));
        if (impl->stream) CUDA_CHECK(cudaStreamDestroy(impl->stream));
        free(impl);
    }
    free(be);
}

// ---- GEMM -----------------------------------------------------------------

// Row-major C (M, N) = alpha op(A) op(B) + beta C. cuBLAS is column-major, and a
// row-major matrix with leading dim ld is its transpose in column-major with the
// same ld. So we ask cuBLAS for C^T (N, M) = op(B)^T (N, K) op(A)^T (K, M):
// operands swapped, M and N swapped, the transpose flags kept.
static void cuda_gemm(Backend *be, bool trans_a, bool trans_b, int M, int N, int K,
                      float alpha, const float *A, int lda, const float *B, int ldb,
                      float beta, float *C, int ldc) {
    if (M <= 0 || N <= 0) return;
    cublasOperation_t op_a = trans_a ? CUBLAS_OP_T : CUBLAS_OP_N;
    cublasOperation_t op_b = trans_b ? CUBLAS_OP_T : CUBLAS_OP_N;
    CUBLAS_CHECK(cublasSgemm(impl_of(be)->cublas, op_b, op_a, N, M, K, &alpha, B, ldb, A, lda,
                             &beta, C, ldc));
}

// ---- random numbers -------------------------------------------------------

// curandGenerateNormal needs an even count from a pseudo-random generator. For
// odd n, the first n - 1 draws come straight into out and the last one is drawn
// (as the first of a pair, starting at offset + n - 1) into a 2-float scratch
// buffer and copied over, so nothing past out[n - 1] is written.
static void cuda_fill_normal(Backend *be, float *out, size_t n, uint64_t seed, uint64_t offset) {
    if (n == 0) return;
    CudaImpl *impl = impl_of(be);
    CURAND_CHECK(curandSetPseudoRandomGeneratorSeed(impl->curand, seed));
    size_t n_even = n - n % 2;
    if (n_even > 0) {
        CURAND_CHECK(curandSetGeneratorOffset(impl->curand, offset));
        CURAND_CHECK(curandGenerateNormal(impl->curand, out, n_even, 0.0f, 1.0f));
    }
    if (n_even < n) {
        CURAND_CHECK(curandSetGeneratorOffset(impl->curand, offset + n_even));
        CURAND_CHECK(curandGenerateNormal(impl->curand, impl->normal_scratch, 2, 0.0f, 1.0f));
        CUDA_CHECK(cudaMemcpyAsync(out + n_even, impl->normal_scratch, sizeof(float),
                                   cudaMemcpyDeviceToDevice, impl->stream));
    }
}

// curandGenerateUniform takes any count; its values lie in (0, 1] as backend.h asks.
static void cuda_fill_uniform(Backend *be, float *out, size_t n, uint64_t seed, uint64_t offset) {
    if (n == 0) return;
    CudaImpl *impl = impl_of(be);
    CURAND_CHECK(curandSetPseudoRandomGeneratorSeed(impl->curand, seed));
    CURAND_CHECK(curandSetGeneratorOffset(impl->curand, offset));
    CURAND_CHECK(curandGenerateUniform(impl->curand, out, n));
}

// ---- fused ops --------------------------------------------------------------

static void cuda_gather_batch(Backend *be, float *x, const uint8_t *data, const int32_t *perm,
                              int start, int B, int D, const float *uniform) {
    launch_gather_batch(x, data, perm, start, B, D, uniform, impl_of(be)->stream);
}

static void cuda_bias_activation_forward(Backend *be, float *y, const float *bias, int B, int N,
                                         Activation act) {
    launch_bias_activation_forward(y, bias, B, N, (int)act, impl_of(be)->stream);
}

static void cuda_activation_backward(Backend *be, float *dy, const float *y, int B, int N,
                                     Activation act) {
    launch_activation_backward(dy, y, B, N, (int)act, impl_of(be)->stream);
}

static void cuda_bias_grad(Backend *be, float *dbias, const float *dy, int B, int N) {
    launch_bias_grad(dbias, dy, B, N, impl_of(be)->stream);
}

static void cuda_reparam_forward(Backend *be, float *z, const float *h, const float *eps, int B,
                                 int L) {
    launch_reparam_forward(z, h, eps, B, L, impl_of(be)->stream);
}

static void cuda_kl_reparam_backward(Backend *be, float *dh, float *kl_row, const float *h,
                                     const float *eps, const float *dz, int B, int L,
                                     const float *kl_coef) {
    launch_kl_reparam_backward(dh, kl_row, h, eps, dz, B, L, kl_coef, impl_of(be)->stream);
}

static void cuda_kl_statistics(Backend *be, float *kl_dim_sum, const float *h, int B, int L) {
    launch_kl_statistics(kl_dim_sum, h, B, L, impl_of(be)->stream);
}

static void cuda_kl_coefficients(Backend *be, float *kl_coef, const float *kl_dim_sum, int B,
                                 int L, KlSchedule schedule) {
    launch_kl_coefficients(kl_coef, kl_dim_sum, B, L, schedule.weight, schedule.free_bits,
                           schedule.capacity, schedule.capacity_target, schedule.capacity_gamma,
                           impl_of(be)->stream);
}

static void cuda_gather_onehot(Backend *be, float *onehot, const uint8_t *labels,
                               const int32_t *perm, int start, int B, int C) {
    launch_gather_onehot(onehot, labels, perm, start, B, C, impl_of(be)->stream);
}

static void cuda_importance_log_weight(Backend *be, float *logw, const float *rec_row,
                                       const float *h, const float *eps, int B, int L,
                                       float rec_scale, float rec_const) {
    launch_importance_log_weight(logw, rec_row, h, eps, B, L, rec_scale, rec_const,
                                 impl_of(be)->stream);
}

static void cuda_reconstruction_loss(Backend *be, float *d_out, float *rec_row, const float *out,
                                     const float *x, int B, int D, RecLoss kind,
                                     float pixel_weight, float grad_scale) {
    launch_reconstruction_loss(d_out, rec_row, out, x, B, D, (int)kind, pixel_weight, grad_scale,
                               impl_of(be)->stream);
}

static void cuda_accumulate_loss(Backend *be, double *acc, const float *rec_row,
                                 const float *kl_row, int B) {
    launch_accumulate_loss(acc, rec_row, kl_row, B, impl_of(be)->stream);
}

// The bias corrections are computed here in double and folded into two floats;
// backend_cpu.c does the same (see kernels/adam.cu for the per-element order).
static void cuda_adam_update(Backend *be, float *params, const float *grads, float *m, float *v,
                             size_t n, float lr, float beta1, float beta2, float eps, int step) {
    double bias_correction1 = 1.0 - pow((double)beta1, (double)step);
    double bias_correction2 = 1.0 - pow((double)beta2, (double)step);
    float step_size = (float)((double)lr / bias_correction1);
    float sqrt_bc2 = (float)sqrt(bias_correction2);
    launch_adam_update(params, grads, m, v, n, beta1, beta2, eps, step_size, sqrt_bc2,
                       impl_of(be)->stream);
}

// ---- creation -------------------------------------------------------------

// Undoes a partly built backend and reports why; returns NULL for the caller.
static Backend *creation_failed(Backend *be, char *err, size_t errlen, const char *what,
                                const char *why) {
    set_error(err, errlen, "no usable CUDA device: %s: %s", what, why);
    CudaImpl *impl = impl_of(be);
    if (impl->normal_scratch) cudaFree(impl->normal_scratch);
    if (impl->curand) curandDestroyGenerator(impl->curand);
    if (impl->cublas) cublasDestroy(impl->cublas);
    if (impl->cublas_workspace) cudaFree(impl->cublas_workspace);
    if (impl->stream) cudaStreamDestroy(impl->stream);
    free(impl);
    free(be);
    return NULL;
}

static const char *curand_status_name(curandStatus_t status) {
    static char text[64];
    snprintf(text, sizeof text, "curand error %d", (int)status);
    return text;
}

Backend *backend_cuda_create(char *err, size_t errlen) {
    int device_count = 0;
    cudaError_t status = cudaGetDeviceCount(&device_count);
    if (status != cudaSuccess) {
        set_error(err, errlen, "no usable CUDA device: %s", cudaGetErrorString(status));
        return NULL;
    }
    if (device_count == 0) {
        set_error(err, errlen, "no usable CUDA device: cudaGetDeviceCount found none");
        return NULL;
    }
    int device = 0;
    const char *env_device = getenv("CUVAE_CUDA_DEVICE");
    if (env_device && *env_device) {
        char *end = NULL;
        long chosen = strtol(env_device, &end, 10);
        if (*end != '\0' || chosen < 0 || chosen >= device_count) {
            set_error(err, errlen,
                      "no usable CUDA device: CUVAE_CUDA_DEVICE=%s is not a device index "
                      "in [0, %d)", env_device, device_count);
            return NULL;
        }
        device = (int)chosen;
    }

    Backend *be = xcalloc(1, sizeof(Backend));
    CudaImpl *impl = xcalloc(1, sizeof(CudaImpl));
    be->impl = impl;
    impl->device = device;

    status = cudaSetDevice(device);
    if (status != cudaSuccess) {
        return creation_failed(be, err, errlen, "cudaSetDevice", cudaGetErrorString(status));
    }
    struct cudaDeviceProp props;
    status = cudaGetDeviceProperties(&props, device);
    if (status != cudaSuccess) {
        return creation_failed(be, err, errlen, "cudaGetDeviceProperties",
                               cudaGetErrorString(status));
    }
    // kernels/*.cu are built for sm_80, sm_90 and compute_90 PTX (Makefile): on an
    // older GPU every launch would fail with "no kernel image", so device auto
    // must fall back to the CPU here rather than abort at the first op
    if (props.major < 8) {
        char why[384];
        snprintf(why, sizeof why, "%s has compute capability %d.%d; cuvae's kernels need 8.0 or newer",
                 props.name, props.major, props.minor);
        return creation_failed(be, err, errlen, "compute capability", why);
    }
    status = cudaStreamCreateWithFlags(&impl->stream, cudaStreamNonBlocking);
    if (status != cudaSuccess) {
        return creation_failed(be, err, errlen, "cudaStreamCreate", cudaGetErrorString(status));
    }
    status = cudaMalloc((void **)&impl->normal_scratch, 2 * sizeof(float));
    if (status == cudaSuccess) status = cudaMalloc(&impl->cublas_workspace, CUBLAS_WORKSPACE_BYTES);
    if (status != cudaSuccess) {
        return creation_failed(be, err, errlen, "cudaMalloc", cudaGetErrorString(status));
    }

    cublasStatus_t blas_status = cublasCreate(&impl->cublas);
    if (blas_status != CUBLAS_STATUS_SUCCESS) {
        impl->cublas = NULL;
        return creation_failed(be, err, errlen, "cublasCreate",
                               cublasGetStatusString(blas_status));
    }
    blas_status = cublasSetStream(impl->cublas, impl->stream);
    if (blas_status == CUBLAS_STATUS_SUCCESS) {
        blas_status = cublasSetWorkspace(impl->cublas, impl->cublas_workspace,
                                         CUBLAS_WORKSPACE_BYTES);
    }
    // pedantic: plain fp32 everywhere, no TF32 tensor-op shortcuts
    if (blas_status == CUBLAS_STATUS_SUCCESS) {
        blas_status = cublasSetMathMode(impl->cublas, CUBLAS_PEDANTIC_MATH);
    }
    if (blas_status != CUBLAS_STATUS_SUCCESS) {
        return creation_failed(be, err, errlen, "cublas setup",
                               cublasGetStatusString(blas_status));
    }

    curandStatus_t rand_status =
        curandCreateGenerator(&impl->curand, CURAND_RNG_PSEUDO_PHILOX4_32_10);
    if (rand_status != CURAND_STATUS_SUCCESS) {
        impl->curand = NULL;
        return creation_failed(be, err, errlen, "curandCreateGenerator",
                               curand_status_name(rand_status));
    }
    rand_status = curandSetStream(impl->curand, impl->stream);
    if (rand_status != CURAND_STATUS_SUCCESS) {
        return creation_failed(be, err, errlen, "curandSetStream",
                               curand_status_name(rand_status));
    }

    be->name = "cuda";
    snprintf(be->device_name, sizeof be->device_name, "%s", props.name);

    be->alloc = cuda_alloc;
    be->free = cuda_free;
    be->upload = cuda_upload;
    be->download = cuda_download;
    be->copy = cuda_copy;
    be->zero = cuda_zero;
    be->synchronize = cuda_synchronize;
    be->peak_memory = cuda_peak_memory;
    be->destroy = cuda_destroy;

    be->gemm = cuda_gemm;
    be->fill_normal = cuda_fill_normal;
    be->fill_uniform = cuda_fill_uniform;

    be->gather_batch = cuda_gather_batch;
    be->bias_activation_forward = cuda_bias_activation_forward;
    be->activation_backward = cuda_activation_backward;
    be->bias_grad = cuda_bias_grad;
    be->reparam_forward = cuda_reparam_forward;
    be->kl_reparam_backward = cuda_kl_reparam_backward;
    be->kl_statistics = cuda_kl_statistics;
    be->kl_coefficients = cuda_kl_coefficients;
    be->gather_onehot = cuda_gather_onehot;
    be->importance_log_weight = cuda_importance_log_weight;
    be->reconstruction_loss = cuda_reconstruction_loss;
    be->accumulate_loss = cuda_accumulate_loss;
    be->adam_update = cuda_adam_update;
    return be;
}
