// backend_cuda.c: the CUDA backend. Every op is enqueued on one non-default
// stream: GEMMs go to cuBLAS (true fp32 by default, TF32 tensor cores with
// train.precision "tf32"), random numbers and the fused ops to the kernels in
// kernels/*.cu (through the launchers declared in cuvae/kernels.h; the draws
// use cuRAND's device-API Philox). With train.cuda_graph a training step is
// captured once per (context, batch size) into a CUDA graph and replayed.
// Only download() and synchronize() wait for the device; a CUDA error
// anywhere aborts with file:line and the error string (cuvae/cuda_check.h).
// Data parallel (distributed.h): one GPU per rank, chosen from the local rank,
// and an NCCL communicator (its id bootstrapped over MPI) whose all-reduce
// runs on the same stream, so a captured step holds it.
#include "cuvae/backend.h"
#include "cuvae/common.h"
#include "cuvae/cuda_check.h"
#include "cuvae/distributed.h"
#include "cuvae/kernels.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cuda_runtime_api.h>
#include <cublas_v2.h>
#ifdef CUVAE_WITH_NCCL
#include <nccl.h>
#endif

// cuBLAS workspace set explicitly so that no GEMM allocates memory behind our
// back (which also keeps a training step capturable in a CUDA graph).
#define CUBLAS_WORKSPACE_BYTES ((size_t)32 << 20)

typedef struct {
    void *ptr;
    size_t bytes;
} Allocation;

// A captured training step: replayed for the same (ctx, key). exec is NULL
// after the first (eager, warm-up) call until the second call captures it.
typedef struct {
    const void *ctx;
    int key;
    cudaGraphExec_t exec;
} CapturedStep;

typedef struct {
    int device;
    cudaStream_t stream;
    cublasHandle_t cublas;
    void *cublas_workspace;
    BackendOptions options;

    CapturedStep *steps;
    size_t n_steps, cap_steps;

    // optimizer updates queued during a backward (queue_update), launched at finish_updates
    UpdateRange updates[UPDATE_QUEUE_RANGES];
    int n_updates;

    // allocations made through alloc(), for peak_memory and destroy
    Allocation *allocations;
    size_t n_allocations, cap_allocations;
    size_t current_bytes, peak_bytes;
#ifdef CUVAE_WITH_NCCL
    ncclComm_t nccl;    // the ranks of a data-parallel run (NULL: not launched as ranks)
    void *nccl_scratch; // (NCCL_SCRATCH_BYTES) the host collectives of a run without MPI, staged here
#endif
} CudaImpl;

static CudaImpl *impl_of(Backend *be) { return (CudaImpl *)be->impl; }

bool backend_cuda_compiled(void) { return true; }

bool backend_nccl_compiled(void) {
#ifdef CUVAE_WITH_NCCL
    return true;
#else
    return false;
#endif
}

// ---- memory ---------------------------------------------------------------

static void *cuda_alloc(Backend *be, size_t bytes) {
    CudaImpl *impl = impl_of(be);
    void *ptr = NULL;
    cudaError_t status = cudaMalloc(&ptr, bytes ? bytes : 1);
    if (status == cudaErrorMemoryAllocation) {
        fprintf(stderr, "cuvae: out of GPU memory allocating %zu bytes (%zu in use): %s\n",
                bytes, impl->current_bytes, cudaGetErrorString(status));
        exit(CUVAE_EXIT_BAD_INPUT);
    }
    // any other failure is an earlier error surfacing here (a kernel's fault is sticky): not
    // the user's input, and not memory
    if (status != cudaSuccess) {
        fprintf(stderr, "%s:%d: cudaMalloc(%zu bytes): %s (an earlier kernel or copy may have failed)\n", __FILE__,
                __LINE__, bytes, cudaGetErrorString(status));
        exit(1);
    }
    CUDA_CHECK(cudaMemsetAsync(ptr, 0, bytes ? bytes : 1, impl->stream));
    if (impl->n_allocations == impl->cap_allocations) {
        impl->cap_allocations = impl->cap_allocations ? 2 * impl->cap_allocations : 64;
        impl->allocations = realloc(impl->allocations,
                                    impl->cap_allocations * sizeof(Allocation));
        if (!impl->allocations) {
            fprintf(stderr, "cuvae: out of host memory (allocation table)\n");
            exit(CUVAE_EXIT_BAD_INPUT);
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

static size_t cuda_memory_available(Backend *be, char *source, size_t source_size) {
    (void)be;
    size_t free_bytes = 0, total_bytes = 0;
    if (source) snprintf(source, source_size, "the GPU has free (cudaMemGetInfo)");
    return cudaMemGetInfo(&free_bytes, &total_bytes) == cudaSuccess ? free_bytes : 0;
}

static void cuda_destroy(Backend *be) {
    if (!be) return;
    CudaImpl *impl = impl_of(be);
    if (impl) {
        if (impl->stream) CUDA_CHECK(cudaStreamSynchronize(impl->stream));
        for (size_t i = 0; i < impl->n_allocations; i++) {
            CUDA_CHECK(cudaFree(impl->allocations[i].ptr));
        }
        free(impl->allocations);
        for (size_t i = 0; i < impl->n_steps; i++)
            if (impl->steps[i].exec) CUDA_CHECK(cudaGraphExecDestroy(impl->steps[i].exec));
        free(impl->steps);
        if (impl->cublas) CUBLAS_CHECK(cublasDestroy(impl->cublas));
        if (impl->cublas_workspace) CUDA_CHECK(cudaFree(impl->cublas_workspace));
#ifdef CUVAE_WITH_NCCL
        if (impl->nccl_scratch) {
            dist_set_transport(NULL);
            CUDA_CHECK(cudaFree(impl->nccl_scratch));
        }
        if (impl->nccl) ncclCommDestroy(impl->nccl);
#endif
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

// ---- settings and the training step ------------------------------------------

static void cuda_drop_steps(Backend *be, const void *ctx);

// fp32: cuBLAS's default math, which never uses TF32 unless asked (true fp32
// GEMMs, comparable with the CPU). tf32: tensor-core TF32 for fp32 GEMMs.
// Captured graphs froze the old math mode: they go.
static void cuda_configure(Backend *be, const BackendOptions *options) {
    CudaImpl *impl = impl_of(be);
    cuda_drop_steps(be, NULL);
    impl->options = *options;
    cublasMath_t mode = options->precision == PRECISION_TF32 ? CUBLAS_TF32_TENSOR_OP_MATH
                                                             : CUBLAS_DEFAULT_MATH;
    CUBLAS_CHECK(cublasSetMathMode(impl->cublas, mode));
}

static void cuda_step_begin(Backend *be, StepState *state, StepPlan plan) {
    launch_step_begin(state, plan, impl_of(be)->stream);
}

static void cuda_step_end(Backend *be, StepState *state, StepPlan plan, int rows) {
    if (impl_of(be)->n_updates) {   // a caller's bug: the updates would never run
        fprintf(stderr, "cuvae: internal error: step_end with optimizer updates queued (no finish_updates)\n");
        abort();
    }
    launch_step_end(state, plan, rows, impl_of(be)->stream);
}

// First call for (ctx, key): run enqueue eagerly (warm-up) and remember the
// key. Second call: capture what enqueue issues on our stream into a graph
// (nothing runs while capturing), instantiate it, keep it, launch it; later
// calls launch it. Every value that changes between steps is read by the
// kernels from device memory (StepState), so a replay is an eager step.
static void cuda_run_step(Backend *be, int key, void (*enqueue)(void *ctx), void *ctx) {
    CudaImpl *impl = impl_of(be);
    if (!impl->options.cuda_graphs) {
        enqueue(ctx);
        return;
    }
    CapturedStep *found = NULL;
    for (size_t i = 0; i < impl->n_steps; i++)
        if (impl->steps[i].ctx == ctx && impl->steps[i].key == key) found = &impl->steps[i];
    if (!found) {
        if (impl->n_steps == impl->cap_steps) {
            impl->cap_steps = impl->cap_steps ? 2 * impl->cap_steps : 4;
            impl->steps = realloc(impl->steps, impl->cap_steps * sizeof(CapturedStep));
            if (!impl->steps) {
                fprintf(stderr, "cuvae: out of host memory (captured steps)\n");
                exit(CUVAE_EXIT_BAD_INPUT);
            }
        }
        found = &impl->steps[impl->n_steps++];
        found->ctx = ctx;
        found->key = key;
        found->exec = NULL;
        enqueue(ctx);
        return;
    }
    if (!found->exec) {
        cudaGraph_t graph;
        CUDA_CHECK(cudaStreamBeginCapture(impl->stream, cudaStreamCaptureModeThreadLocal));
        enqueue(ctx);
        CUDA_CHECK(cudaStreamEndCapture(impl->stream, &graph));
        CUDA_CHECK(cudaGraphInstantiate(&found->exec, graph, 0));
        CUDA_CHECK(cudaGraphDestroy(graph));
    }
    CUDA_CHECK(cudaGraphLaunch(found->exec, impl->stream));
}

static int cuda_graph_count(Backend *be) {
    CudaImpl *impl = impl_of(be);
    int count = 0;
    for (size_t i = 0; i < impl->n_steps; i++) count += impl->steps[i].exec != NULL;
    return count;
}

static void cuda_drop_steps(Backend *be, const void *ctx) {
    CudaImpl *impl = impl_of(be);
    size_t kept = 0;
    for (size_t i = 0; i < impl->n_steps; i++) {
        if (ctx == NULL || impl->steps[i].ctx == ctx) {
            CUDA_CHECK(cudaStreamSynchronize(impl->stream));   // it may still be running
            if (impl->steps[i].exec) CUDA_CHECK(cudaGraphExecDestroy(impl->steps[i].exec));
        } else {
            impl->steps[kept++] = impl->steps[i];
        }
    }
    impl->n_steps = kept;
}

// ---- random numbers -------------------------------------------------------

static void cuda_fill_normal(Backend *be, float *out, size_t n, uint64_t seed, uint64_t offset,
                             const uint64_t *device_offset) {
    launch_fill_normal(out, n, seed, offset, device_offset, impl_of(be)->stream);
}

static void cuda_fill_uniform(Backend *be, float *out, size_t n, uint64_t seed, uint64_t offset,
                              const uint64_t *device_offset, float lo, float hi) {
    launch_fill_uniform(out, n, seed, offset, device_offset, lo, hi, impl_of(be)->stream);
}

// ---- fused ops --------------------------------------------------------------

static void cuda_gather_batch(Backend *be, float *x, const uint8_t *data, const int32_t *perm,
                              int start, const StepState *state, int B, int D, bool binarize,
                              uint64_t binarize_seed) {
    launch_gather_batch(x, data, perm, start, state, B, D, binarize ? 1 : 0, binarize_seed,
                        impl_of(be)->stream);
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

static void cuda_activation_backward_bias_grad(Backend *be, float *dy, float *dbias, const float *y, int B,
                                               int N, Activation act) {
    cuda_activation_backward(be, dy, y, B, N, act);
    cuda_bias_grad(be, dbias, dy, B, N);
}

static void cuda_activation_forward(Backend *be, float *y, const float *x, size_t n,
                                    Activation act, float slope) {
    launch_activation_forward(y, x, n, (int)act, slope, impl_of(be)->stream);
}

static void cuda_activation_gradient(Backend *be, float *dx, const float *dy, const float *y,
                                     size_t n, Activation act, float slope) {
    launch_activation_gradient(dx, dy, y, n, (int)act, slope, impl_of(be)->stream);
}

static void cuda_categorical_loss(Backend *be, float *d_out, float *rec_row, const float *logits,
                                  const float *x, int B, int K, int S, float grad_scale) {
    launch_categorical_loss(d_out, rec_row, logits, x, B, K, S, grad_scale, impl_of(be)->stream);
}

static void cuda_codes_onehot(Backend *be, float *out, const float *x, int B, int K, int S) {
    launch_codes_onehot(out, x, B, K, S, impl_of(be)->stream);
}

static void cuda_add(Backend *be, float *y, const float *a, const float *b, size_t n) {
    launch_add(y, a, b, n, impl_of(be)->stream);
}

static void cuda_mixture_prior(Backend *be, float *z, int B, int components) {
    launch_mixture_prior(z, B, components, impl_of(be)->stream);
}

static void cuda_select_slice(Backend *be, float *dst, const float *bank, size_t n, int n_slices,
                              const StepState *state) {
    launch_select_slice(dst, bank, n, n_slices, state, impl_of(be)->stream);
}

static void cuda_multiply(Backend *be, float *y, const float *a, const float *b, size_t n) {
    launch_multiply(y, a, b, n, impl_of(be)->stream);
}

static void cuda_im2col(Backend *be, float *col, const float *x, ConvGeometry g, int B) {
    launch_im2col(col, x, g, B, impl_of(be)->stream);
}

static void cuda_col2im(Backend *be, float *x, const float *col, ConvGeometry g, int B) {
    launch_col2im(x, col, g, B, impl_of(be)->stream);
}

// The whole batch in one GEMM and one col2im launch (chunks would be more, smaller launches;
// whether they would pay on a GPU has not been measured).
static int cuda_col2im_chunks(Backend *be, size_t floats_per_image, int inner, int B) {
    (void)be;
    (void)floats_per_image;
    (void)inner;
    (void)B;
    return 1;
}

static void cuda_swap_leading_axes(Backend *be, float *out, const float *in, int N0, int N1, int S) {
    launch_swap_leading_axes(out, in, N0, N1, S, impl_of(be)->stream);
}

static void cuda_channel_bias_forward(Backend *be, float *y, const float *bias, int B, int C, int S) {
    launch_channel_bias_forward(y, bias, B, C, S, impl_of(be)->stream);
}

static void cuda_channel_bias_grad(Backend *be, float *dbias, const float *dy, int B, int C, int S) {
    launch_channel_bias_grad(dbias, dy, B, C, S, impl_of(be)->stream);
}

static void cuda_batch_norm_forward(Backend *be, float *y, float *mean, float *invstd,
                                    float *running_mean, float *running_var, const float *x,
                                    const float *gamma, const float *beta, int B, int C, int S,
                                    bool training, float momentum, float eps) {
    launch_batch_norm_forward(y, mean, invstd, running_mean, running_var, x, gamma, beta, B, C, S,
                              training ? 1 : 0, momentum, eps, impl_of(be)->stream);
}

static void cuda_batch_norm_backward(Backend *be, float *dx, float *dgamma, float *dbeta,
                                     const float *dy, const float *x, const float *gamma,
                                     const float *mean, const float *invstd, int B, int C, int S) {
    launch_batch_norm_backward(dx, dgamma, dbeta, dy, x, gamma, mean, invstd, B, C, S,
                               impl_of(be)->stream);
}

static void cuda_vq_code_norms(Backend *be, float *norms, const float *codebook, int K, int D) {
    launch_vq_code_norms(norms, codebook, K, D, impl_of(be)->stream);
}

static void cuda_vq_argmin(Backend *be, int32_t *codes, const float *scores, const float *norms, int N, int K) {
    launch_vq_argmin(codes, scores, norms, N, K, impl_of(be)->stream);
}

static void cuda_vq_quantize(Backend *be, float *zqt, float *loss_row, const float *zt, const float *codebook,
                             const int32_t *codes, int B, int S, int D, float weight) {
    launch_vq_quantize(zqt, loss_row, zt, codebook, codes, B, S, D, weight, impl_of(be)->stream);
}

static void cuda_vq_backward(Backend *be, float *dzt, float *dcodebook, const float *dzqt, const float *zt,
                             const float *codebook, const int32_t *codes, int N, int K, int D,
                             float commit_coef, float codebook_coef) {
    launch_vq_backward(dzt, dcodebook, dzqt, zt, codebook, codes, N, K, D, commit_coef, codebook_coef,
                       impl_of(be)->stream);
}

static void cuda_vq_restart_dead(Backend *be, float *codebook, float *counts, float *sums, const float *zt,
                                 int N, int K, int D, float threshold, uint64_t seed, const StepState *state) {
    launch_vq_restart_dead(codebook, counts, sums, zt, N, K, D, threshold, seed, state, impl_of(be)->stream);
}

static void cuda_vq_ema_update(Backend *be, float *codebook, float *counts, float *sums, const float *zt,
                               const int32_t *codes, int N, int K, int D, float decay, float eps) {
    launch_vq_ema_update(codebook, counts, sums, zt, codes, N, K, D, decay, eps, impl_of(be)->stream);
}

static void cuda_reparam_forward(Backend *be, float *z, const float *h, EpsSource eps, int B,
                                 int L) {
    launch_reparam_forward(z, h, eps, B, L, impl_of(be)->stream);
}

// The reparam kernel draws each epsilon in the thread that uses it: nothing to do ahead.
static void cuda_draw_eps_ahead(Backend *be, EpsSource eps, int B, int L) {
    (void)be;
    (void)eps;
    (void)B;
    (void)L;
}

static void cuda_kl_reparam_backward(Backend *be, float *dh, float *kl_row, const float *h,
                                     EpsSource eps, const float *dz, int B, int L,
                                     const float *kl_coef) {
    launch_kl_reparam_backward(dh, kl_row, h, eps, dz, B, L, kl_coef, impl_of(be)->stream);
}

static void cuda_kl_statistics(Backend *be, float *kl_dim_sum, const float *h, int B, int L) {
    launch_kl_statistics(kl_dim_sum, h, B, L, impl_of(be)->stream);
}

static void cuda_kl_coefficients(Backend *be, float *kl_coef, const float *kl_dim_sum, int B,
                                 int L, const StepState *state) {
    launch_kl_coefficients(kl_coef, kl_dim_sum, B, L, state, impl_of(be)->stream);
}

static void cuda_gather_onehot(Backend *be, float *onehot, const uint8_t *labels,
                               const int32_t *perm, int start, const StepState *state, int B,
                               int C) {
    launch_gather_onehot(onehot, labels, perm, start, state, B, C, impl_of(be)->stream);
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

static void cuda_finish_updates(Backend *be);

static void cuda_adam_update(Backend *be, float *params, float *grads, float *m, float *v,
                             size_t n, const StepState *state, OptimizerParams o) {
    cuda_finish_updates(be);   // what is queued first, as on the CPU
    launch_adam_update(params, grads, m, v, n, o, state, impl_of(be)->stream);
}

static void cuda_grad_clip(Backend *be, float *grads, size_t n, float max_norm, double *scratch) {
    launch_grad_clip(grads, n, max_norm, scratch, impl_of(be)->stream);
}

#ifdef CUVAE_WITH_NCCL
#define NCCL_SCRATCH_BYTES 256

static void nccl_check(ncclResult_t r, const char *file, int line) {
    if (r == ncclSuccess) return;
    fprintf(dist_error_stream(), "cuvae: rank %d: NCCL failed (%s:%d): %s\n", dist_rank(), file, line,
            ncclGetErrorString(r));
    dist_abort(CUVAE_EXIT_BAD_INPUT);
    exit(CUVAE_EXIT_BAD_INPUT);
}

// A host collective of a run without MPI (distributed.h DistTransport): staged
// through a small device buffer, reduced over the communicator, read back.
static void nccl_host_reduce(CudaImpl *impl, void *buf, size_t n, ncclDataType_t type, size_t elem_bytes,
                             ncclRedOp_t op) {
    if (n * elem_bytes > NCCL_SCRATCH_BYTES) {
        fprintf(dist_error_stream(), "cuvae: a host collective of %zu bytes is larger than its %d-byte buffer\n",
                n * elem_bytes, NCCL_SCRATCH_BYTES);
        exit(CUVAE_EXIT_BAD_INPUT);
    }
    CUDA_CHECK(cudaMemcpyAsync(impl->nccl_scratch, buf, n * elem_bytes, cudaMemcpyHostToDevice, impl->stream));
    nccl_check(ncclAllReduce(impl->nccl_scratch, impl->nccl_scratch, n, type, op, impl->nccl, impl->stream),
               __FILE__, __LINE__);
    CUDA_CHECK(cudaMemcpyAsync(buf, impl->nccl_scratch, n * elem_bytes, cudaMemcpyDeviceToHost, impl->stream));
    CUDA_CHECK(cudaStreamSynchronize(impl->stream));
}

static void nccl_sum_doubles(void *ctx, double *buf, size_t n) {
    nccl_host_reduce(ctx, buf, n, ncclFloat64, sizeof(double), ncclSum);
}

static void nccl_max_int(void *ctx, int *value) {
    int32_t v = *value;
    nccl_host_reduce(ctx, &v, 1, ncclInt32, sizeof v, ncclMax);
    *value = v;
}
#endif

// Sums buf over the ranks on the training stream (NCCL); without a communicator
// (one process, or one rank of a build without NCCL) the sum is buf itself.
static void cuda_all_reduce_sum(Backend *be, float *buf, size_t n) {
#ifdef CUVAE_WITH_NCCL
    CudaImpl *impl = impl_of(be);
    if (!impl->nccl) return;
    nccl_check(ncclAllReduce(buf, buf, n, ncclFloat32, ncclSum, impl->nccl, impl->stream), __FILE__, __LINE__);
#else
    (void)be;
    (void)buf;
    (void)n;
#endif
}

static void cuda_sgd_update(Backend *be, float *params, float *grads, float *buf, size_t n,
                            const StepState *state, OptimizerParams o) {
    cuda_finish_updates(be);   // what is queued first, as on the CPU
    launch_sgd_update(params, grads, buf, n, o, state, impl_of(be)->stream);
}

// Queued updates run at finish_updates, in stream order with everything else; a range that
// ends where the last queued one starts (a model queues its layers last first) joins it, so a
// whole arena queued in pieces is one launch, as adam_update makes it.
static bool same_update(const UpdateRange *a, const UpdateRange *b) {
    return a->state == b->state && a->sgd == b->sgd && memcmp(&a->o, &b->o, sizeof a->o) == 0;
}

static void cuda_finish_updates(Backend *be) {
    CudaImpl *impl = impl_of(be);
    for (int i = 0; i < impl->n_updates; i++) {
        const UpdateRange *u = &impl->updates[i];
        if (u->sgd) launch_sgd_update(u->params, u->grads, u->m, u->n, u->o, u->state, impl->stream);
        else launch_adam_update(u->params, u->grads, u->m, u->v, u->n, u->o, u->state, impl->stream);
    }
    impl->n_updates = 0;
}

static void cuda_queue_update(Backend *be, float *params, float *grads, float *m, float *v, size_t n,
                              const StepState *state, OptimizerParams o, bool sgd) {
    CudaImpl *impl = impl_of(be);
    if (n == 0) return;
    UpdateRange next = {params, grads, m, v, n, state, o, sgd};
    if (impl->n_updates > 0) {
        UpdateRange *last = &impl->updates[impl->n_updates - 1];
        if (same_update(last, &next) && params + n == last->params && grads + n == last->grads &&
            m + n == last->m && (sgd || v + n == last->v)) {
            next.n += last->n;
            *last = next;
            return;
        }
    }
    if (impl->n_updates == UPDATE_QUEUE_RANGES) cuda_finish_updates(be);
    impl->updates[impl->n_updates++] = next;
}

// ---- creation -------------------------------------------------------------

// Undoes a partly built backend and reports why; returns NULL for the caller.
static Backend *creation_failed(Backend *be, char *err, size_t errlen, const char *what,
                                const char *why) {
    set_error(err, errlen, "no usable CUDA device: %s: %s", what, why);
    CudaImpl *impl = impl_of(be);
    if (impl->cublas) cublasDestroy(impl->cublas);
    if (impl->cublas_workspace) cudaFree(impl->cublas_workspace);
    if (impl->stream) cudaStreamDestroy(impl->stream);
    free(impl);
    free(be);
    return NULL;
}

// The device of this process (CUVAE_CUDA_DEVICE, or the local rank's), its stream and cuBLAS:
// the backend before any data-parallel setup. NULL with err.
static Backend *cuda_setup_device(char *err, size_t errlen, int *device_out, struct cudaDeviceProp *props_out) {
    int device_count = 0;
    cudaError_t status = cudaGetDeviceCount(&device_count);
    int driver = 0;   // 0: no driver installed (the runtime says "insufficient driver" then too)
    int runtime = 0;
    if (status == cudaErrorInsufficientDriver && cudaDriverGetVersion(&driver) == cudaSuccess && driver > 0 &&
        cudaRuntimeGetVersion(&runtime) == cudaSuccess && driver < runtime) {
        // a GPU may well be there: its driver is older than the CUDA this binary was built with
        set_error(err, errlen, "the NVIDIA driver supports CUDA up to %d.%d, and this build needs %d.%d (its "
                  "runtime): update the driver, or build with the toolkit the driver supports (make CUDA_HOME=...)",
                  driver / 1000, driver % 1000 / 10, runtime / 1000, runtime % 1000 / 10);
        return NULL;
    }
    if (status == cudaErrorNoDevice || (status == cudaErrorInsufficientDriver && driver == 0) ||
        (status == cudaSuccess && device_count == 0)) {
        // the common case on a machine without a GPU: say that, not the runtime's words
        set_error(err, errlen, "no NVIDIA GPU/driver found");
        return NULL;
    }
    if (status != cudaSuccess) {
        set_error(err, errlen, "no usable CUDA device: %s", cudaGetErrorString(status));
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
    } else if (dist_launched()) {   // data parallel: one GPU per rank of this machine
        // (modulo: where each rank sees its own GPU alone, CUDA_VISIBLE_DEVICES set per task, every
        // local rank takes device 0; two ranks on one GPU are found by ranks_agree_on_gpus)
        device = dist_local_rank() % device_count;
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
    status = cudaMalloc(&impl->cublas_workspace, CUBLAS_WORKSPACE_BYTES);
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
    // default math: true fp32 (no TF32) until configure() says otherwise
    if (blas_status == CUBLAS_STATUS_SUCCESS) {
        blas_status = cublasSetMathMode(impl->cublas, CUBLAS_DEFAULT_MATH);
    }
    if (blas_status != CUBLAS_STATUS_SUCCESS) {
        return creation_failed(be, err, errlen, "cublas setup",
                               cublasGetStatusString(blas_status));
    }
    *device_out = device;
    *props_out = props;
    return be;
}

static bool refusal_for_all_ranks = false;   // backend_cuda_refused_for_all_ranks

bool backend_cuda_refused_for_all_ranks(void) { return refusal_for_all_ranks; }

// Data parallel under MPI, before NCCL starts: every rank has its GPU, or none has (each then
// says why; device auto trains every rank on the CPU), and no two ranks hold the same GPU
// (NCCL's "invalid usage" otherwise, and only after every rank's setup). A mixed outcome, or a
// shared GPU, fails every rank (*be freed), for device auto too. 0, or -1 with err.
static int ranks_agree_on_gpus(Backend **be, const struct cudaDeviceProp *props, int device, char *err,
                               size_t errlen) {
    typedef struct {
        int32_t usable;   // 1: this rank's setup succeeded
        int32_t device;
        unsigned char uuid[16];
    } RankGpu;
    const int ranks = dist_size();
    RankGpu mine;
    memset(&mine, 0, sizeof mine);
    mine.usable = *be != NULL;
    mine.device = device;
    if (*be) memcpy(mine.uuid, props->uuid.bytes, sizeof mine.uuid);
    RankGpu *all = xcalloc((size_t)ranks, sizeof *all);
    dist_allgather_bytes(&mine, all, sizeof mine, "GPU check of the ranks");
    int usable = 0, unusable_rank = -1, first = -1, second = -1;
    for (int r = 0; r < ranks; r++) {
        usable += all[r].usable;
        if (!all[r].usable && unusable_rank < 0) unusable_rank = r;
        for (int q = 0; q < r && first < 0; q++)
            if (all[r].usable && all[q].usable && memcmp(all[r].uuid, all[q].uuid, sizeof all[r].uuid) == 0) {
                first = q;
                second = r;
            }
    }
    int rc = 0;
    if (usable == 0) {
        rc = -1;   // (err: this rank's own reason)
    } else if (usable < ranks) {
        if (*be) {
            set_error(err, errlen, "no usable CUDA device on rank %d of %d (it says why): every rank of a data-parallel "
                      "run trains on its own GPU, or all on the CPU (device \"cpu\")", unusable_rank, ranks);
        } else {
            char why[512];
            snprintf(why, sizeof why, "%s", err);
            set_error(err, errlen, "%s (other ranks have their GPUs: every rank of a data-parallel run trains on "
                      "its own GPU, or all on the CPU with device \"cpu\")", why);
        }
        rc = -1;
        refusal_for_all_ranks = true;
    } else if (first >= 0) {
        set_error(err, errlen, "data parallel: ranks %d and %d are on the same GPU (device %d of rank %d, %d of rank "
                  "%d): one GPU a rank — more ranks on a machine than its GPUs, or CUDA_VISIBLE_DEVICES / "
                  "CUVAE_CUDA_DEVICE giving two ranks one", first, second, all[first].device, first,
                  all[second].device, second);
        rc = -1;
        refusal_for_all_ranks = true;
    }
    free(all);
    if (rc != 0 && *be) {
        char kept[1024];
        snprintf(kept, sizeof kept, "%s", err);
        creation_failed(*be, err, errlen, "", "");   // (frees the backend)
        set_error(err, errlen, "%s", kept);
        *be = NULL;
    }
    return rc;
}

Backend *backend_cuda_create(char *err, size_t errlen) {
    refusal_for_all_ranks = false;
    int device = 0;
    struct cudaDeviceProp props;
    memset(&props, 0, sizeof props);
    Backend *be = cuda_setup_device(err, errlen, &device, &props);
    if (dist_launched() && !dist_without_mpi() && dist_size() > 1 &&
        ranks_agree_on_gpus(&be, &props, device, err, errlen) != 0)
        return NULL;
    if (!be) return NULL;
    CudaImpl *impl = impl_of(be);
    cudaError_t status = cudaSuccess;

    // data parallel: the NCCL communicator of the ranks, its id sent from rank 0 over
    // MPI, or (launched without MPI) through a shared file
    if (dist_launched()) {
#ifdef CUVAE_WITH_NCCL
        // Over MPI a failure is every rank's (refusal_for_all_ranks: device auto trains no rank on the
        // CPU beside ranks waiting for NCCL): rank 0's id comes with its status; a rank whose
        // communicator fails says why and ends the job (the others may wait inside NCCL's own setup,
        // where no MPI collective would reach them).
        const bool over_mpi = !dist_without_mpi();
        struct {
            int32_t status;   // rank 0's ncclGetUniqueId
            ncclUniqueId id;
        } id0;
        memset(&id0, 0, sizeof id0);
        ncclResult_t r = dist_rank() == 0 ? ncclGetUniqueId(&id0.id) : ncclSuccess;
        id0.status = (int32_t)r;
        if (r == ncclSuccess && !over_mpi) {
            if (dist_share_id_by_file(&id0.id, sizeof id0.id, err, errlen) != 0) {   // (the device is fine: said as it is)
                char why[512];
                snprintf(why, sizeof why, "%s", err);
                creation_failed(be, err, errlen, "NCCL id", why);
                set_error(err, errlen, "%s", why);
                return NULL;
            }
        } else if (over_mpi) {
            dist_broadcast_bytes(&id0, sizeof id0, "NCCL id broadcast");
            if (id0.status != (int32_t)ncclSuccess) {
                refusal_for_all_ranks = true;
                char why[200];
                snprintf(why, sizeof why, "ncclGetUniqueId failed on rank 0: %s",
                         ncclGetErrorString((ncclResult_t)id0.status));
                return creation_failed(be, err, errlen, "data parallel: NCCL id", why);
            }
        }
        dist_wait_begin("NCCL communicator setup");
        if (r == ncclSuccess) r = ncclCommInitRank(&impl->nccl, dist_size(), id0.id, dist_rank());
        dist_wait_end();
        if (r != ncclSuccess) {
            impl->nccl = NULL;
            if (over_mpi) refusal_for_all_ranks = true;
            char what[200];   // (which rank and GPU: "invalid usage" is NCCL's word for two ranks on one GPU)
            snprintf(what, sizeof what, "data parallel: NCCL communicator (rank %d of %d, local rank %d, on GPU %d)",
                     dist_rank(), dist_size(), dist_local_rank(), device);
            return creation_failed(be, err, errlen, what, ncclGetErrorString(r));
        }
        dist_remove_id_file();   // (every rank has joined: the id was read)
        if (dist_without_mpi()) {   // the host collectives go through the communicator too
            status = cudaMalloc(&impl->nccl_scratch, NCCL_SCRATCH_BYTES);
            if (status != cudaSuccess) {
                ncclCommDestroy(impl->nccl);
                impl->nccl = NULL;
                impl->nccl_scratch = NULL;
                return creation_failed(be, err, errlen, "cudaMalloc", cudaGetErrorString(status));
            }
            DistTransport transport = {impl, nccl_sum_doubles, nccl_max_int};
            dist_set_transport(&transport);
        }
        int version = 0;
        ncclGetVersion(&version);
        fprintf(stderr, "cuvae: data parallel: NCCL %d communicator of %d rank%s, rank %d on GPU %d (%s)\n", version,
                dist_size(), dist_size() == 1 ? "" : "s", dist_rank(), device,
                dist_without_mpi() ? "no MPI: the id through CUVAE_NCCL_ID_FILE" : "the id over MPI");
#else
        if (dist_size() > 1 || dist_without_mpi()) {
            refusal_for_all_ranks = true;   // (device auto: the GPUs are there; device "cpu" trains on the CPU)
            return creation_failed(be, err, errlen, "data parallel",
                                   "this build has no NCCL (the CUDA toolkit's nccl.h and libnccl were not found): "
                                   "rebuild with it, or train the ranks on the CPU with device \"cpu\"");
        }
#endif
    }

    impl->options.precision = PRECISION_FP32;
    impl->options.cuda_graphs = false;   // eager until configure() (tests, eval)

    be->name = "cuda";
    be->updates_clear_gradients = false;   // (see Backend)
    be->collectives_without_mpi = true;      // NCCL
    snprintf(be->device_name, sizeof be->device_name, "%s", props.name);

    be->alloc = cuda_alloc;
    be->free = cuda_free;
    be->upload = cuda_upload;
    be->download = cuda_download;
    be->copy = cuda_copy;
    be->zero = cuda_zero;
    be->synchronize = cuda_synchronize;
    be->peak_memory = cuda_peak_memory;
    be->memory_available = cuda_memory_available;
    be->destroy = cuda_destroy;

    be->gemm = cuda_gemm;
    be->configure = cuda_configure;
    be->step_begin = cuda_step_begin;
    be->step_end = cuda_step_end;
    be->run_step = cuda_run_step;
    be->drop_steps = cuda_drop_steps;
    be->graph_count = cuda_graph_count;
    be->fill_normal = cuda_fill_normal;
    be->fill_uniform = cuda_fill_uniform;

    be->gather_batch = cuda_gather_batch;
    be->bias_activation_forward = cuda_bias_activation_forward;
    be->activation_backward = cuda_activation_backward;
    be->bias_grad = cuda_bias_grad;
    be->activation_backward_bias_grad = cuda_activation_backward_bias_grad;
    be->reparam_forward = cuda_reparam_forward;
    be->draw_eps_ahead = cuda_draw_eps_ahead;
    be->kl_reparam_backward = cuda_kl_reparam_backward;
    be->kl_statistics = cuda_kl_statistics;
    be->kl_coefficients = cuda_kl_coefficients;
    be->gather_onehot = cuda_gather_onehot;
    be->importance_log_weight = cuda_importance_log_weight;
    be->reconstruction_loss = cuda_reconstruction_loss;
    be->accumulate_loss = cuda_accumulate_loss;
    be->adam_update = cuda_adam_update;
    be->sgd_update = cuda_sgd_update;
    be->queue_update = cuda_queue_update;
    be->finish_updates = cuda_finish_updates;
    be->all_reduce_sum = cuda_all_reduce_sum;
    be->grad_clip = cuda_grad_clip;
    be->activation_forward = cuda_activation_forward;
    be->activation_gradient = cuda_activation_gradient;
    be->multiply = cuda_multiply;
    be->add = cuda_add;
    be->categorical_loss = cuda_categorical_loss;
    be->codes_onehot = cuda_codes_onehot;
    be->select_slice = cuda_select_slice;
    be->mixture_prior = cuda_mixture_prior;
    be->im2col = cuda_im2col;
    be->col2im = cuda_col2im;
    be->col2im_chunks = cuda_col2im_chunks;
    be->swap_leading_axes = cuda_swap_leading_axes;
    be->channel_bias_forward = cuda_channel_bias_forward;
    be->channel_bias_grad = cuda_channel_bias_grad;
    be->batch_norm_forward = cuda_batch_norm_forward;
    be->batch_norm_backward = cuda_batch_norm_backward;
    be->vq_code_norms = cuda_vq_code_norms;
    be->vq_argmin = cuda_vq_argmin;
    be->vq_quantize = cuda_vq_quantize;
    be->vq_backward = cuda_vq_backward;
    be->vq_ema_update = cuda_vq_ema_update;
    be->vq_restart_dead = cuda_vq_restart_dead;
    return be;
}
