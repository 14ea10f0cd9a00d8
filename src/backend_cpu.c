// backend_cpu.c: the CPU backend: OpenBLAS sgemm plus C loops (and whole convolutions
// through oneDNN, conv_onednn.c, where the build has it), each Backend op as cpu_<op>. It is
// the reference the CUDA backend's ops are tested against (tests/test_cuda_parity.c: the same
// op on both backends); its per-element arithmetic is the kernels' own (layer_math.h,
// optimizer_math.h), in loops written for the CPU's speed (vectorised rows, cache-sized
// chunks, the strided im2col).
#include "cuvae/backend.h"
#include "cuvae/cpu_bce.h"
#include "cuvae/cpu_vector_math.h"
#include "cuvae/optimizer_math.h"
#include "cuvae/layer_math.h"
#include "cuvae/common.h"
#include "cuvae/distributed.h"
#include "cuvae/philox.h"
#include "cuvae/rng.h"
#include "cuvae/step_state.h"
#include "cuvae/conv_onednn.h"

#include <cblas.h>
#ifdef _OPENMP
#include <omp.h>
#else   // built without OpenMP (the clang fuzzers): a pool of one thread
static inline int omp_get_max_threads(void) { return 1; }
static inline void omp_set_num_threads(int threads) { (void)threads; }
static inline int omp_get_thread_num(void) { return 0; }
static inline int omp_get_num_threads(void) { return 1; }
static inline int omp_in_parallel(void) { return 0; }
static inline int omp_get_thread_limit(void) { return 1; }
#endif
#include <unistd.h>
#include <sys/resource.h>
#include <stdatomic.h>
#include <xmmintrin.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// Optimizer updates queued during a backward (queue_update): the ranges are cut into
// chunks of UPDATE_CHUNK elements, numbered in queue order, and taken in that order.
enum { UPDATE_CHUNK = 4096 };
typedef struct {
    UpdateRange range;
    size_t first_chunk;          // the number of the range's first chunk
} QueuedUpdate;

typedef struct {
    QueuedUpdate ranges[UPDATE_QUEUE_RANGES];
    int count;
    size_t chunks;                   // chunks of all queued ranges
    atomic_size_t next_chunk;        // chunks below it are taken (it may run past chunks)
    atomic_size_t beside_gemms;      // chunks run beside GEMMs (unsplit, or a split one's last
                                     // slices), ever (for tests)
    size_t ranges_queued;            // ranges queue_update took, ever (for tests)
    size_t chunks_weighed;           // chunks a split GEMM has already cut its slices for
    size_t gemms_cut;                // split GEMMs cut unevenly for them, ever (for tests)
} UpdateQueue;

// The stacked im2col / col2im tap masks of a geometry and block of images (stacked_tap_masks),
// kept: a network's conv layers take turns, each with its own.
enum { TAP_MASK_CACHE = 16 };
typedef struct {
    ConvGeometry g;
    int block;
    int *keep;   // (k k, block OH OW)
} TapMasks;

typedef struct {
    UpdateQueue updates;
    ConvLibrary *conv_library;   // oneDNN's convolutions (NULL: built without it)
    TapMasks tap_masks[TAP_MASK_CACHE];
    size_t chunk_column_floats;      // col2im_chunks: a chunk's columns at most this many floats
    int tap_masks_next;      // the entry the next new masks replace once all are taken
    size_t current_bytes;
    size_t peak_bytes;
    float *scratch;          // host scratch of ops that need one (EMA codebook update, per-plane sums,
                             // im2col / col2im phase planes), kept
    size_t scratch_floats;   // between calls so a training step allocates only on its first run
    // The epsilon the last reparam_forward drew (B, L), kept so kl_reparam_backward reads it
    // where it would draw the same numbers again (eps_kept_matches); allocated on the first draw.
    float *eps_kept;
    size_t eps_kept_floats;
    EpsSource eps_kept_source;   // its seed and base; offset NULL, base + *offset folded in
    int eps_kept_B, eps_kept_L;  // 0: nothing kept
    // A draw announced by draw_eps_ahead and not made yet (draw false: none), its offset
    // folded in: the next GEMM too small to split draws it into eps_kept on a waiting thread.
    EpsSource eps_ahead;
    int eps_ahead_B, eps_ahead_L;
    size_t eps_draws_beside_gemms;   // announced draws made by a waiting thread, ever (for tests)
    float *bias_partials;        // bias_grad's per-block column sums (blocks, N), kept
    size_t bias_partials_floats;
} CpuState;

// Each allocation carries its size in a 64-byte header so free() can account
// for it and the payload stays 64-byte aligned.
#define CPU_ALLOC_HEADER 64

// The host memory available when the backend first allocates (host_memory_read), read
// once; .available 0 if unknown. Linux overcommits: malloc of more than this succeeds and
// the process is killed later, so allocations are checked against it.
static const HostMemory *host_memory_at_start(void) {
    static HostMemory at_start;
    static bool read;
    if (!read) at_start = host_memory_read();
    read = true;
    return &at_start;
}

// Every host byte the backend holds (tensors, kept scratch, tap masks) is counted here before it
// is allocated: more than the memory available at the start ends the run in one line (exit 2)
// rather than in the kernel's kill at the first touch. Returns after counting them.
static void cpu_count_bytes(CpuState *st, size_t bytes) {
    const HostMemory *hm = host_memory_at_start();
    const size_t available = hm->available;
    if (available > 0 && (bytes > available || st->current_bytes > available - bytes)) {
        char source[4600];
        fprintf(stderr, "cuvae: out of host memory: %zu more bytes (%zu in use) exceed the %zu bytes %s; use a "
                "smaller model (model.encoder / decoder / latent_dim) or batch (train.batch_size, eval.iw_batch)\n",
                bytes, st->current_bytes, available, host_memory_source(hm, source, sizeof source));
        exit(CUVAE_EXIT_BAD_INPUT);
    }
    st->current_bytes += bytes;
    if (st->current_bytes > st->peak_bytes) st->peak_bytes = st->current_bytes;
}

// A kept host buffer (*buffer, *floats long) grown to at least n floats, contents undefined;
// counted in the backend's memory use.
static float *cpu_kept_buffer(CpuState *st, float **buffer, size_t *floats, size_t n) {
    if (*floats < n) {
        free(*buffer);
        st->current_bytes -= *floats * sizeof(float);
        *buffer = NULL;
        *floats = 0;
        cpu_count_bytes(st, n * sizeof(float));
        *buffer = xmalloc(n * sizeof(float));
        *floats = n;
    }
    return *buffer;
}

// At least n floats of scratch, contents undefined; counted in the backend's memory use.
static float *cpu_scratch_raw(Backend *be, size_t n) {
    CpuState *st = be->impl;
    return cpu_kept_buffer(st, &st->scratch, &st->scratch_floats, n);
}

// At least n floats of scratch, zeroed.
static float *cpu_scratch(Backend *be, size_t n) {
    float *scratch = cpu_scratch_raw(be, n);
    memset(scratch, 0, n * sizeof(float));
    return scratch;
}

static void *cpu_alloc(Backend *be, size_t bytes) {
    CpuState *st = be->impl;
    cpu_count_bytes(st, bytes);
    void *raw = NULL;
    if (posix_memalign(&raw, 64, CPU_ALLOC_HEADER + (bytes ? bytes : 1)) != 0) {
        fprintf(stderr, "cuvae: out of host memory allocating %zu bytes for the CPU backend\n", bytes);
        exit(CUVAE_EXIT_BAD_INPUT);
    }
    memset(raw, 0, CPU_ALLOC_HEADER + bytes);
    *(size_t *)raw = bytes;
    return (char *)raw + CPU_ALLOC_HEADER;
}

static void cpu_free(Backend *be, void *ptr) {
    if (!ptr) return;
    CpuState *st = be->impl;
    char *raw = (char *)ptr - CPU_ALLOC_HEADER;
    st->current_bytes -= *(size_t *)raw;
    free(raw);
}

static void cpu_upload(Backend *be, void *dst, const void *src, size_t bytes) {
    (void)be;
    if (bytes) memcpy(dst, src, bytes);
}
static void cpu_download(Backend *be, void *dst, const void *src, size_t bytes) {
    (void)be;
    if (bytes) memcpy(dst, src, bytes);
}
static void cpu_copy(Backend *be, void *dst, const void *src, size_t bytes) {
    (void)be;
    if (bytes) memmove(dst, src, bytes);
}
static void cpu_zero(Backend *be, void *ptr, size_t bytes) {
    (void)be;
    if (bytes) memset(ptr, 0, bytes);
}
static void cpu_synchronize(Backend *be) { (void)be; }
// cuvae's own allocations at their peak plus the convolution library's peak (its blocked
// copies and scratchpads, kept from the first step on): a bound of the two together
static size_t cpu_peak_memory(Backend *be) {
    const CpuState *st = be->impl;
    return st->peak_bytes + conv_library_peak_bytes(st->conv_library);
}

static void cpu_destroy(Backend *be) {
    conv_library_destroy(((CpuState *)be->impl)->conv_library);
    for (int e = 0; e < TAP_MASK_CACHE; e++) free(((CpuState *)be->impl)->tap_masks[e].keep);
    free(((CpuState *)be->impl)->scratch);
    free(((CpuState *)be->impl)->eps_kept);
    free(((CpuState *)be->impl)->bias_partials);
    free(be->impl);
    free(be);
}

static void sgemm(bool trans_a, bool trans_b, int M, int N, int K, float alpha, const float *A, int lda,
                  const float *B, int ldb, float beta, float *C, int ldc) {
    cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans,
                trans_b ? CblasTrans : CblasNoTrans, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

// One thread pool for everything: OpenBLAS runs single-threaded (backend_cpu_create)
// and each GEMM is split here over the OpenMP threads that also run the elementwise
// loops. Two pools (OpenBLAS's pthreads and OpenMP's) took turns on the same cores and
// spent a quarter of a CPU step in sched_yield. C (M, N) is cut along its longer side
// into slices of whole 4-row/column blocks; every element is still one sgemm's dot
// product over all of K. No slice is small enough for OpenBLAS's small-matrix kernels
// (M N K <= 100^3 in 0.3.21), which sum in another order: every slice keeps
// M N K >= 2^21, which also keeps the split worth its cost. With OpenBLAS's
// SkylakeX-family kernels the result is then the same for any thread count; its Haswell /
// Zen kernels round a slice's tail rows differently, within rounding (test_ops_grad).
enum { GEMM_SLICE_QUANTUM = 4 };
static const double GEMM_SLICE_MIN_MNK = 2097152.0;

// Debian's OpenMP build of OpenBLAS (libopenblas0-openmp) takes OpenMP's thread count
// at every call made outside a parallel region, whatever openblas_set_num_threads said:
// there a GEMM cpu_gemm does not split is run with the pool set to one thread.
static bool blas_is_openmp;

// backend_cpu_blas_splits_exact of the kernels in use: then a split GEMM may cut its slices
// unevenly (gemm_first_share); with the others the slices stay even, and a GEMM's bits do not
// depend on what is queued beside it.
static bool blas_splits_exact;

static void sgemm_one_thread(bool trans_a, bool trans_b, int M, int N, int K, float alpha, const float *A,
                             int lda, const float *B, int ldb, float beta, float *C, int ldc) {
    if (!blas_is_openmp || omp_in_parallel()) {
        sgemm(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
        return;
    }
    const int threads = omp_get_max_threads();
    omp_set_num_threads(1);
    sgemm(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    omp_set_num_threads(threads);
}

// Slice t of parts: rows (or columns) [*begin, *end) of an extent of `blocks` blocks.
static void gemm_slice(int t, int parts, int blocks, int extent, int *begin, int *end) {
    *begin = (int)((long)blocks * t / parts) * GEMM_SLICE_QUANTUM;
    *end = (int)((long)blocks * (t + 1) / parts) * GEMM_SLICE_QUANTUM;
    if (*end > extent) *end = extent;
}

// The fewest rows (or columns) a slice gets when the extent is cut in parts.
static int gemm_smallest_slice(int parts, int blocks, int extent) {
    int smallest = extent;
    for (int t = 0; t < parts; t++) {
        int begin, end;
        gemm_slice(t, parts, blocks, extent, &begin, &end);
        if (end - begin < smallest) smallest = end - begin;
    }
    return smallest;
}

static bool run_next_update_chunk(UpdateQueue *q);

// An Adam element costs a core about as much time as this many of a GEMM's multiply-adds
// (2-core Zen 5 VM, 2026-12-04: Adam alone 0.42 ns an element, the examples GEMMs 130
// GFLOP/s a core). Only the cut of a split GEMM's slices depends on it, never a result.
enum { ADAM_ELEMENT_MULTIPLY_ADDS = 27 };

// Slice t of parts when each slice but the last takes `share` of the blocks (the last the rest,
// maybe none).
static void gemm_slice_weighted(int t, int parts, int blocks, int extent, double share, int *begin, int *end) {
    *begin = t == 0 ? 0 : (int)(blocks * share * t + 0.5) * GEMM_SLICE_QUANTUM;
    *end = t == parts - 1 ? extent : (int)(blocks * share * (t + 1) + 0.5) * GEMM_SLICE_QUANTUM;
    if (*begin > extent) *begin = extent;
    if (*end > extent) *end = extent;
}

// The share of C each slice but the last takes when optimizer updates were queued since the
// last split GEMM (0: even slices). Adam is bound by memory and the GEMM by arithmetic, so
// one thread running the new updates while the others run the GEMM beats both threads
// running each in turn: the last slice is cut short by the updates' estimated time, and its
// thread takes update chunks as soon as it is done (so does any thread that ends first).
// From the queue's sizes alone, never its progress: the same cut at every run of a step.
// A last slice is never left under GEMM_SLICE_MIN_MNK (OpenBLAS's small-matrix kernels, which
// sum in another order, would take it): one that would be is given to the others, whole.
static double gemm_first_share(UpdateQueue *q, int parts, int blocks, int extent, double mnk) {
    if (!blas_splits_exact || q->chunks <= q->chunks_weighed) return 0.0;
    const double fresh = (double)(q->chunks - q->chunks_weighed) * UPDATE_CHUNK;
    q->chunks_weighed = q->chunks;
    q->gemms_cut++;
    double share = (1.0 + fresh * ADAM_ELEMENT_MULTIPLY_ADDS / mnk) / parts;
    if (share * (parts - 1) >= 1.0) return 1.0 / (parts - 1);
    int begin, end;
    gemm_slice_weighted(parts - 1, parts, blocks, extent, share, &begin, &end);
    if (end > begin && (double)(end - begin) / extent * mnk < GEMM_SLICE_MIN_MNK) share = 1.0 / (parts - 1);
    return share;
}

// A GEMM too small to split, on thread 0, while thread 1 makes the epsilon draw announced
// ahead (eps_out: where; NULL: none) and the other threads run chunks of the queued optimizer
// updates until it is done (the threads would otherwise wait). True when thread 1 drew.
static bool gemm_beside_updates(UpdateQueue *q, float *eps_out, EpsSource eps, size_t eps_count, bool trans_a,
                                bool trans_b, int M, int N, int K, float alpha, const float *A, int lda,
                                const float *B, int ldb, float beta, float *C, int ldc) {
    atomic_bool gemm_done = false;
    bool eps_drawn = false;   // by thread 1 (the pool may have had fewer threads than asked)
    #pragma omp parallel
    {
        const int t = omp_get_thread_num();
        if (t == 0) {
            sgemm(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
            atomic_store(&gemm_done, true);
        } else {
            if (t == 1 && eps_out) {
                rng_fill_normal_serial(eps_out, eps_count, eps.seed, eps.base);
                eps_drawn = true;
            }
            while (!atomic_load(&gemm_done) && run_next_update_chunk(q)) atomic_fetch_add(&q->beside_gemms, 1);
        }
    }
    if (eps_out && !eps_drawn) rng_fill_normal_serial(eps_out, eps_count, eps.seed, eps.base);
    return eps_drawn;
}

static float *eps_keep_begin(Backend *be, EpsSource eps, int B, int L);

static void cpu_gemm(Backend *be, bool trans_a, bool trans_b, int M, int N, int K, float alpha,
                     const float *A, int lda, const float *B, int ldb, float beta, float *C,
                     int ldc) {
    if (M == 0 || N == 0) return;
    const bool by_rows = M >= N;
    const int extent = by_rows ? M : N;
    const int blocks = (extent + GEMM_SLICE_QUANTUM - 1) / GEMM_SLICE_QUANTUM;
    const double mnk = (double)M * N * K;
    int parts = omp_get_max_threads();
    if (parts > blocks) parts = blocks;
    while (parts > 1 && (double)gemm_smallest_slice(parts, blocks, extent) / extent * mnk < GEMM_SLICE_MIN_MNK)
        parts--;
    if (parts <= 1 || omp_in_parallel()) {
        CpuState *st = be->impl;
        UpdateQueue *q = &st->updates;
        const bool pool_waits = !omp_in_parallel() && omp_get_max_threads() > 1;
        const bool updates_queued = atomic_load(&q->next_chunk) < q->chunks;
        if (pool_waits && (updates_queued || st->eps_ahead.draw)) {
            const EpsSource eps = st->eps_ahead;   // drawn into eps_kept, under its key, beside the GEMM
            const size_t eps_count = (size_t)st->eps_ahead_B * st->eps_ahead_L;
            float *eps_out = eps.draw ? eps_keep_begin(be, eps, st->eps_ahead_B, st->eps_ahead_L) : NULL;
            st->eps_ahead.draw = false;
            st->eps_draws_beside_gemms += gemm_beside_updates(q, eps_out, eps, eps_count, trans_a, trans_b, M, N, K,
                                                              alpha, A, lda, B, ldb, beta, C, ldc);
        } else {
            sgemm_one_thread(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
        }
        return;
    }
    // With optimizer updates queued, every pool thread joins: the threads beyond the slices,
    // and each slice's thread once its slice is done, run update chunks until all slices are
    // done (they would otherwise wait at the end of the parallel region). The slices are
    // even, or cut for the updates queued since the last split GEMM where the kernels give the
    // same bits for any cut (gemm_first_share).
    UpdateQueue *q = &((CpuState *)be->impl)->updates;
    const bool updates_queued = atomic_load(&q->next_chunk) < q->chunks;
    const double first_share = gemm_first_share(q, parts, blocks, extent, mnk);
    atomic_int slices_done = 0;
    #pragma omp parallel num_threads(updates_queued ? omp_get_max_threads() : parts)
    {
        const int t = omp_get_thread_num(), team = omp_get_num_threads();
        const int slices = parts < team ? parts : team;
        int begin = 0, end = 0;
        if (t < slices && first_share > 0.0 && slices == parts)
            gemm_slice_weighted(t, slices, blocks, extent, first_share, &begin, &end);
        else if (t < slices)
            gemm_slice(t, slices, blocks, extent, &begin, &end);
        if (end > begin && by_rows)        // rows begin..end of op(A) and C
            sgemm(trans_a, trans_b, end - begin, N, K, alpha, trans_a ? A + begin : A + (size_t)begin * lda,
                  lda, B, ldb, beta, C + (size_t)begin * ldc, ldc);
        else if (end > begin)              // columns begin..end of op(B) and C
            sgemm(trans_a, trans_b, M, end - begin, K, alpha, A, lda,
                  trans_b ? B + (size_t)begin * ldb : B + begin, ldb, beta, C + begin, ldc);
        if (updates_queued && (t >= slices || atomic_fetch_add(&slices_done, 1) + 1 < slices))
            while (atomic_load(&slices_done) < slices && run_next_update_chunk(q))
                atomic_fetch_add(&q->beside_gemms, 1);
    }
}

// ---- settings and the training step ------------------------------------------

// The CPU computes in fp32 whatever the precision (the config loader only
// accepts fp32 and tf32; TF32 is a GPU tensor-core format). Graphs are a CUDA notion.
static void cpu_configure(Backend *be, const BackendOptions *options) {
    (void)be;
    (void)options;
}

static void cpu_step_begin(Backend *be, StepState *state, StepPlan plan) {
    (void)be;
    step_state_begin(state, plan);
}

static void cpu_step_end(Backend *be, StepState *state, StepPlan plan, int rows) {
    if (((CpuState *)be->impl)->updates.count) {   // a caller's bug: they would read the next step's state
        fprintf(stderr, "cuvae: internal error: step_end with optimizer updates queued (no finish_updates)\n");
        abort();
    }
    step_state_end(state, plan, rows);
}

static void cpu_run_step(Backend *be, int key, void (*enqueue)(void *ctx), void *ctx) {
    (void)be;
    (void)key;
    enqueue(ctx);
}

static void cpu_drop_steps(Backend *be, const void *ctx) {
    (void)be;
    (void)ctx;
}

static int cpu_graph_count(Backend *be) {
    (void)be;
    return 0;
}

static void cpu_fill_normal(Backend *be, float *out, size_t n, uint64_t seed, uint64_t offset,
                            const uint64_t *device_offset) {
    (void)be;
    rng_fill_normal(out, n, seed, offset + (device_offset ? *device_offset : 0));
}

static void cpu_fill_uniform(Backend *be, float *out, size_t n, uint64_t seed, uint64_t offset,
                             const uint64_t *device_offset, float lo, float hi) {
    (void)be;
    rng_fill_uniform_between(out, n, seed, offset + (device_offset ? *device_offset : 0), lo, hi);
}

static void cpu_gather_batch(Backend *be, float *x, const uint8_t *data, const int32_t *perm,
                             int start, const StepState *state, int B, int D, bool binarize,
                             uint64_t binarize_seed) {
    (void)be;
    const int base = start + (state ? state->batch_start : 0);
    // with the step state, row b of the batch is row start + b of the step's (global) batch
    const uint64_t draw_base = state ? state->uniform_offset + (uint64_t)start * (uint64_t)D : 0;
    #pragma omp parallel if ((size_t)B * D >= 32768)
    {
        const int t = omp_get_thread_num(), team = omp_get_num_threads();
        const int b0 = (int)((long)B * t / team), b1 = (int)((long)B * (t + 1) / team);
        // binarized: the rows' uniform draws (consecutive numbers of the stream) first, in place
        if (binarize && b1 > b0)
            rng_fill_uniform_serial(x + (size_t)b0 * D, (size_t)(b1 - b0) * D, binarize_seed,
                                    draw_base + (uint64_t)b0 * (uint64_t)D);
        for (int b = b0; b < b1; b++) {
            if (b + 1 < b1) {   // the next row's bytes requested now: its cache misses overlap this row's work
                const size_t next = perm ? (size_t)perm[base + b + 1] : (size_t)(base + b + 1);
                const char *bytes = (const char *)(data + next * (size_t)D);
                for (int d = 0; d < D; d += 64) __builtin_prefetch(bytes + d, 0, 3);
                __builtin_prefetch(bytes + D - 1, 0, 3);
            }
            size_t row = perm ? (size_t)perm[base + b] : (size_t)(base + b);
            const uint8_t *src = data + row * (size_t)D;
            float *dst = x + (size_t)b * D;
            if (binarize) {
                for (int d = 0; d < D; d++) dst[d] = dst[d] < src[d] / 255.0f ? 1.0f : 0.0f;
            } else {
                for (int d = 0; d < D; d++) dst[d] = src[d] / 255.0f;
            }
        }
    }
}

static void cpu_bias_activation_forward(Backend *be, float *y, const float *bias, int B, int N,
                                        Activation act) {
    (void)be;
    #pragma omp parallel for schedule(static) if ((size_t)B * N >= 32768)
    for (int b = 0; b < B; b++) {
        float *row = y + (size_t)b * N;
        switch (act) {
        case ACT_NONE:
            for (int n = 0; n < N; n++) row[n] += bias[n];
            break;
        case ACT_RELU:
            for (int n = 0; n < N; n++) row[n] = activation_value(row[n] + bias[n], ACT_RELU, 0.0f);
            break;
        case ACT_TANH:
            for (int n = 0; n < N; n++) row[n] += bias[n];
            cpu_tanh(row, row, (size_t)N);
            break;
        case ACT_LEAKY_RELU:
            for (int n = 0; n < N; n++)
                row[n] = activation_value(row[n] + bias[n], ACT_LEAKY_RELU, LEAKY_RELU_SLOPE);
            break;
        case ACT_SIGMOID:
            for (int n = 0; n < N; n++) row[n] = activation_value(row[n] + bias[n], ACT_SIGMOID, 0.0f);
            break;
        }
    }
}

// dy (n) *= act'(.) through the activation's output y (n), in place
static inline void activation_backward_run(float *dy, const float *y, size_t n, Activation act) {
    // (one loop per kind, the kind a constant in each: the compiler vectorises them)
    if (act == ACT_RELU) {
        for (size_t i = 0; i < n; i++) dy[i] = activation_gradient(dy[i], y[i], ACT_RELU, 0.0f);
    } else if (act == ACT_TANH) {
        for (size_t i = 0; i < n; i++) dy[i] = activation_gradient(dy[i], y[i], ACT_TANH, 0.0f);
    } else if (act != ACT_NONE) {
        for (size_t i = 0; i < n; i++) dy[i] = activation_gradient(dy[i], y[i], (int)act, LEAKY_RELU_SLOPE);
    }
}

static void cpu_activation_backward(Backend *be, float *dy, const float *y, int B, int N,
                                    Activation act) {
    (void)be;
    size_t count = (size_t)B * N;
    if (act == ACT_NONE) return;
    #pragma omp parallel if (count >= 32768)
    {
        const int t = omp_get_thread_num(), team = omp_get_num_threads();
        const size_t begin = count * (size_t)t / (size_t)team, end = count * (size_t)(t + 1) / (size_t)team;
        activation_backward_run(dy + begin, y + begin, end - begin, act);
    }
}

// Column sums of dy (B, N) in blocks of BIAS_GRAD_ROWS rows: each block's rows added in order
// from 0, then the blocks' sums in order. The blocks do not depend on the thread count, so neither
// do the bits. With a block for each thread, each thread sums whole rows, the rows the row-split
// passes that wrote dy gave it (the loss, activation gradients): the two cores of a VM share no
// cache, and summing a range of columns over every row read half of them from the other core.
// With fewer blocks than threads, each thread sums a range of columns over every block.
// With y, each row first goes through activation_backward (act, in place): the fused op.
// Whole blocks to each thread and at most BIAS_COMBINE_AFTER_MAX block sums in all: the calling
// thread adds the blocks after the parallel region (a barrier costs about as much as the adds).
enum { BIAS_GRAD_ROWS = 32, BIAS_COMBINE_AFTER_MAX = 32768 };

// dbias[n0, n1) = the blocks' sums (blocks, N) added in order
static void bias_grad_combine(float *dbias, const float *partials, int blocks, int N, int n0, int n1) {
    for (int n = n0; n < n1; n++) dbias[n] = partials[n];
    for (int k = 1; k < blocks; k++)
        for (int n = n0; n < n1; n++) dbias[n] += partials[(size_t)k * N + n];
}

static void bias_grad_blocks(CpuState *st, float *dbias, float *dy_in_place, const float *dy, const float *y,
                             int B, int N, Activation act) {
    const int blocks = (B + BIAS_GRAD_ROWS - 1) / BIAS_GRAD_ROWS;
    float *partials = blocks > 1   // (blocks, N); one block's sums are dbias
        ? cpu_kept_buffer(st, &st->bias_partials, &st->bias_partials_floats, (size_t)blocks * N) : dbias;
    const bool small_combine = (size_t)blocks * N <= BIAS_COMBINE_AFTER_MAX;
    bool combine_after = false;
    #pragma omp parallel if ((size_t)B * N >= 32768)
    {
        const int t = omp_get_thread_num(), team = omp_get_num_threads();
        const bool by_rows = blocks >= team;   // the same for every thread
        if (t == 0) combine_after = blocks > 1 && by_rows && small_combine;
        const int k0 = by_rows ? (int)((long)blocks * t / team) : 0;
        const int k1 = by_rows ? (int)((long)blocks * (t + 1) / team) : blocks;
        const int n0 = (int)((long)N * t / team), n1 = (int)((long)N * (t + 1) / team);
        const int c0 = by_rows ? 0 : n0, c1 = by_rows ? N : n1;
        for (int k = k0; k < k1; k++) {
            float *sum = partials + (size_t)k * N;
            const int b1 = (k + 1) * BIAS_GRAD_ROWS < B ? (k + 1) * BIAS_GRAD_ROWS : B;
            for (int n = c0; n < c1; n++) sum[n] = 0.0f;
            for (int b = k * BIAS_GRAD_ROWS; b < b1; b++) {
                if (y)
                    activation_backward_run(dy_in_place + (size_t)b * N + c0, y + (size_t)b * N + c0,
                                            (size_t)(c1 - c0), act);
                const float *row = dy + (size_t)b * N;
                for (int n = c0; n < c1; n++) sum[n] += row[n];
            }
        }
        if (blocks > 1 && !(by_rows && small_combine)) {
            if (by_rows) {
                #pragma omp barrier
            }
            bias_grad_combine(dbias, partials, blocks, N, n0, n1);
        }
    }
    if (combine_after) bias_grad_combine(dbias, partials, blocks, N, 0, N);
}

static void cpu_bias_grad(Backend *be, float *dbias, const float *dy, int B, int N) {
    bias_grad_blocks(be->impl, dbias, NULL, dy, NULL, B, N, ACT_NONE);
}

static void cpu_activation_backward_bias_grad(Backend *be, float *dy, float *dbias, const float *y, int B,
                                              int N, Activation act) {
    bias_grad_blocks(be->impl, dbias, dy, dy, act == ACT_NONE ? NULL : y, B, N, act);
}

// eps[b, j0 .. j0 + n) of a source into out (n; past the row's end it goes on into the next
// rows): the buffer's values, or the draws of rng_fill_normal_serial (rng_normal_at's values:
// eps_source_at's within a few ulp), each Philox block drawn once for its two normals
static void eps_row_chunk(EpsSource eps, int L, int b, int j0, size_t n, float *out) {
    const uint64_t index = (uint64_t)b * (uint64_t)L + (uint64_t)j0;
    if (eps.buffer) memcpy(out, eps.buffer + index, n * sizeof(float));
    else if (eps.draw) rng_fill_normal_serial(out, n, eps.seed, eps.base + (eps.offset ? *eps.offset : 0) + index);
    else memset(out, 0, n * sizeof(float));
}

// The latent ops cost ~10 ns an element (Philox, log, cos, exp): worth the threads from here;
// z from epsilon already drawn (one exp an element) from Z_PARALLEL_MIN
enum { LATENT_PARALLEL_MIN = 2048, Z_PARALLEL_MIN = 16384, EPS_CHUNK = 256 };

// A drawing source with its offset read now: the numbers it names, whatever the offset does later.
static EpsSource eps_source_fixed(EpsSource eps) {
    if (eps.draw && eps.offset) eps.base += *eps.offset;
    eps.offset = NULL;
    return eps;
}

// The kept epsilon when it holds the numbers `eps` (B, L) draws, else NULL.
static const float *eps_kept_matches(Backend *be, EpsSource eps, int B, int L) {
    const CpuState *st = be->impl;
    if (!eps.draw || st->eps_kept_B != B || st->eps_kept_L != L) return NULL;
    const EpsSource fixed = eps_source_fixed(eps);
    return fixed.seed == st->eps_kept_source.seed && fixed.base == st->eps_kept_source.base ? st->eps_kept : NULL;
}

// Where reparam_forward keeps the epsilon it draws (B, L): the buffer, ready to be filled (the key
// set now), or NULL where the source is not a draw.
static float *eps_keep_begin(Backend *be, EpsSource eps, int B, int L) {
    CpuState *st = be->impl;
    if (!eps.draw) return NULL;
    cpu_kept_buffer(st, &st->eps_kept, &st->eps_kept_floats, (size_t)B * L);
    st->eps_kept_source = eps_source_fixed(eps);
    st->eps_kept_B = B;
    st->eps_kept_L = L;
    return st->eps_kept;
}

// Records a draw for the next GEMM too small to split (cpu_gemm); reparam_forward draws it
// itself where none came.
static void cpu_draw_eps_ahead(Backend *be, EpsSource eps, int B, int L) {
    CpuState *st = be->impl;
    st->eps_ahead = eps_source_fixed(eps);
    st->eps_ahead_B = B;
    st->eps_ahead_L = L;
}

static void cpu_reparam_forward(Backend *be, float *z, const float *h, EpsSource eps, int B,
                                int L) {
    ((CpuState *)be->impl)->eps_ahead.draw = false;   // drawn below if not ahead
    const float *ready = eps_kept_matches(be, eps, B, L);   // drawn ahead (B, L), or NULL
    float *kept = ready ? NULL : eps_keep_begin(be, eps, B, L);   // to draw now (B, L), or NULL
    const float *drawn = ready ? ready : kept;
    #pragma omp parallel if ((size_t)B * L >= (ready ? Z_PARALLEL_MIN : LATENT_PARALLEL_MIN))
    {
        const int t = omp_get_thread_num(), team = omp_get_num_threads();
        const int b0 = (int)((long)B * t / team), b1 = (int)((long)B * (t + 1) / team);
        // a draw: this thread's rows of epsilon first, in one go (consecutive numbers of the stream)
        if (kept && b1 > b0) eps_row_chunk(eps, L, b0, 0, (size_t)(b1 - b0) * L, kept + (size_t)b0 * L);
        for (int b = b0; b < b1; b++) {
            const float *mu = h + (size_t)b * 2 * L;
            const float *logvar = mu + L;
            float *zb = z + (size_t)b * L;
            float chunk[EPS_CHUNK];
            for (int j0 = 0; j0 < L; j0 += EPS_CHUNK) {
                const int n = L - j0 < EPS_CHUNK ? L - j0 : EPS_CHUNK;
                const float *e = drawn ? drawn + (size_t)b * L + j0 : chunk;
                if (!drawn) eps_row_chunk(eps, L, b, j0, n, chunk);
                for (int j = j0; j < j0 + n; j++) zb[j] = reparam_z(mu[j], logvar[j], e[j - j0]);
            }
        }
    }
}

static void cpu_kl_reparam_backward(Backend *be, float *dh, float *kl_row, const float *h,
                                    EpsSource eps, const float *dz, int B, int L,
                                    const float *kl_coef) {
    const float *kept = dh ? eps_kept_matches(be, eps, B, L) : NULL;   // the forward's draws (B, L)
    #pragma omp parallel for schedule(static) if ((size_t)B * L >= LATENT_PARALLEL_MIN)
    for (int b = 0; b < B; b++) {
        const float *mu = h + (size_t)b * 2 * L;
        const float *logvar = mu + L;
        float *dmu = dh ? dh + (size_t)b * 2 * L : NULL;
        float *dlogvar = dh ? dmu + L : NULL;
        double kl = 0.0;
        for (int j0 = 0; j0 < L; j0 += EPS_CHUNK) {   // chunks: each var computed once for both uses
            const int n = L - j0 < EPS_CHUNK ? L - j0 : EPS_CHUNK;
            float var[EPS_CHUNK], chunk[EPS_CHUNK];
            for (int j = j0; j < j0 + n; j++) {
                var[j - j0] = expf(logvar[j]);
                kl += (double)kl_twice(mu[j], logvar[j], var[j - j0]);
            }
            if (!dh) continue;
            const float *e = kept ? kept + (size_t)b * L + j0 : chunk;
            if (!kept) eps_row_chunk(eps, L, b, j0, n, chunk);
            for (int j = j0; j < j0 + n; j++) {
                float sigma = expf(0.5f * logvar[j]);
                float g = dz ? dz[(size_t)b * L + j] : 0.0f;
                dmu[j] = g + kl_coef[j] * mu[j];
                dlogvar[j] = reparam_dlogvar(g, e[j - j0], sigma, kl_coef[j], var[j - j0]);
            }
        }
        kl_row[b] = (float)(0.5 * kl);
    }
}

static void cpu_kl_statistics(Backend *be, float *kl_dim_sum, const float *h, int B, int L) {
    (void)be;
    for (int j = 0; j < L; j++) kl_dim_sum[j] = 0.0f;
    for (int b = 0; b < B; b++) {
        const float *mu = h + (size_t)b * 2 * L;
        const float *logvar = mu + L;
        for (int j = 0; j < L; j++)
            kl_dim_sum[j] += 0.5f * kl_twice(mu[j], logvar[j], expf(logvar[j]));
    }
}

static void cpu_kl_coefficients(Backend *be, float *kl_coef, const float *kl_dim_sum, int B,
                                int L, const StepState *state) {
    (void)be;
    const KlSchedule s = state->kl;
    float inv_batch = 1.0f / (float)B;
    if (s.capacity) {
        double total = 0.0;
        for (int j = 0; j < L; j++) total += kl_dim_sum[j];
        float kl_mean = (float)(total / B);
        float sign = kl_mean > s.capacity_target ? 1.0f : (kl_mean < s.capacity_target ? -1.0f : 0.0f);
        for (int j = 0; j < L; j++) kl_coef[j] = s.capacity_gamma * sign * inv_batch;
        return;
    }
    for (int j = 0; j < L; j++) {
        bool above_floor = s.free_bits <= 0.0f || kl_dim_sum[j] * inv_batch > s.free_bits;
        kl_coef[j] = above_floor ? s.weight * inv_batch : 0.0f;
    }
}

static void cpu_gather_onehot(Backend *be, float *onehot, const uint8_t *labels,
                              const int32_t *perm, int start, const StepState *state, int B, int C) {
    (void)be;
    const int base = start + (state ? state->batch_start : 0);
    for (int b = 0; b < B; b++) {
        size_t row = perm ? (size_t)perm[base + b] : (size_t)(base + b);
        for (int c = 0; c < C; c++) onehot[(size_t)b * C + c] = labels[row] == c ? 1.0f : 0.0f;
    }
}

static void cpu_importance_log_weight(Backend *be, float *logw, const float *rec_row,
                                      const float *h, const float *eps, int B, int L,
                                      float rec_scale, float rec_const) {
    (void)be;
    for (int b = 0; b < B; b++) {
        const float *mu = h + (size_t)b * 2 * L;
        const float *logvar = mu + L;
        const float *e = eps + (size_t)b * L;
        double sum = 0.0;
        for (int j = 0; j < L; j++) {
            float z = reparam_z(mu[j], logvar[j], e[j]);
            sum += -0.5 * (double)z * z + 0.5 * (double)e[j] * e[j] + 0.5 * (double)logvar[j];
        }
        logw[b] = (float)((double)rec_scale * rec_row[b] + rec_const + sum);
    }
}

static void cpu_reconstruction_loss(Backend *be, float *d_out, float *rec_row, const float *out,
                                    const float *x, int B, int D, RecLoss kind,
                                    float pixel_weight, float grad_scale) {
    (void)be;
    float g_scale = grad_scale * pixel_weight;
    const bool avx512 = cpu_bce_avx512_available();   // the same bits, twice the lanes
    // rows are independent: split them over the cores (each row's sum stays in one thread)
    #pragma omp parallel for schedule(static) if ((size_t)B * D >= 32768)
    for (int b = 0; b < B; b++) {
        const float *o = out + (size_t)b * D;
        const float *t = x + (size_t)b * D;
        float *g = d_out ? d_out + (size_t)b * D : NULL;
        if (kind == RECLOSS_BCE_LOGITS) {
            rec_row[b] = (float)(pixel_weight * cpu_bce_logits_row(o, t, g, D, g_scale, avx512));
            continue;
        }
        if (kind == RECLOSS_MSE_SIGMOID) {   // (its exp and sum as the BCE's: 7.5 ns a pixel with libm's expf)
            rec_row[b] = (float)(pixel_weight * cpu_mse_sigmoid_row(o, t, g, D, g_scale, avx512));
            continue;
        }
        double sum = 0.0;   // RECLOSS_MSE_IDENTITY (a Gaussian decoder's mean): (a - t)^2
        for (int d = 0; d < D; d++) {
            const float diff = o[d] - t[d];
            const float loss = diff * diff, grad = 2.0f * diff;
            sum += loss;
            if (g) g[d] = g_scale * grad;
        }
        rec_row[b] = (float)(pixel_weight * sum);
    }
}

static void cpu_accumulate_loss(Backend *be, double *acc, const float *rec_row,
                                const float *kl_row, int B) {
    (void)be;
    double rec = 0.0, kl = 0.0;
    for (int b = 0; b < B; b++) {
        rec += rec_row[b];
        if (kl_row) kl += kl_row[b];
    }
    acc[0] += rec;
    acc[1] += kl;
    acc[2] += B;
}

// ---- optimizers: each update runs as chunks of an UpdateQueue ------------------

static void adam_elements(float *params, float *grads, float *m, float *v, size_t n,
                          const StepState *state, OptimizerParams o) {
    // bias corrections folded by step_state_begin (double); the element's fp32 math is
    // the CUDA kernel's (optimizer_math.h)
    const float step_size = state->adam_step_size, sqrt_bc2 = state->adam_sqrt_bc2;
    const float decay = optimizer_decoupled_decay(o, state->lr_now);
    // the common case (no weight decay) as its own loop: the compiler vectorises it
    if (adam_without_decay(o, decay)) {
        #pragma omp simd
        for (size_t i = 0; i < n; i++) {
            const float ratio = adam_moments(grads[i], &m[i], &v[i], o, sqrt_bc2);
            params[i] = adam_step(params[i], step_size, ratio);
            grads[i] = 0.0f;   // Backend.updates_clear_gradients
        }
        return;
    }
    // with weight decay: adam_element's two cases, each its own vectorised loop (as one loop
    // over adam_element, the branch on o.decoupled kept it scalar: 4 ns an element)
    if (o.decoupled) {   // adamw, decay != 1 here
        #pragma omp simd
        for (size_t i = 0; i < n; i++) {
            const float p = adamw_decayed_param(params[i], decay);
            const float ratio = adam_moments(grads[i], &m[i], &v[i], o, sqrt_bc2);
            params[i] = adam_step(p, step_size, ratio);
            grads[i] = 0.0f;
        }
    } else {   // adam's L2 decay, weight_decay != 0 here
        const float weight_decay = o.weight_decay;
        #pragma omp simd
        for (size_t i = 0; i < n; i++) {
            const float g = adam_l2_gradient(grads[i], params[i], weight_decay);
            const float ratio = adam_moments(g, &m[i], &v[i], o, sqrt_bc2);
            params[i] = adam_step(params[i], step_size, ratio);
            grads[i] = 0.0f;
        }
    }
}

static void sgd_elements(float *params, float *grads, float *buf, size_t n, const StepState *state,
                         OptimizerParams o) {
    const float lr = state->lr_now;
    for (size_t i = 0; i < n; i++) {
        sgd_element(&params[i], grads[i], &buf[i], o, lr);
        grads[i] = 0.0f;   // Backend.updates_clear_gradients
    }
}

static size_t chunks_of(size_t n) { return (n + UPDATE_CHUNK - 1) / UPDATE_CHUNK; }

static void run_update_chunk(const UpdateQueue *q, size_t chunk) {
    int r = 0;
    while (chunk >= q->ranges[r].first_chunk + chunks_of(q->ranges[r].range.n)) r++;
    const UpdateRange *u = &q->ranges[r].range;
    size_t first = (chunk - q->ranges[r].first_chunk) * UPDATE_CHUNK;
    size_t count = u->n - first < UPDATE_CHUNK ? u->n - first : UPDATE_CHUNK;
    if (u->sgd)
        sgd_elements(u->params + first, u->grads + first, u->m + first, count, u->state, u->o);
    else
        adam_elements(u->params + first, u->grads + first, u->m + first, u->v + first, count, u->state, u->o);
}

// Takes the next chunk and runs it; false when none is left.
static bool run_next_update_chunk(UpdateQueue *q) {
    size_t chunk = atomic_fetch_add(&q->next_chunk, 1);
    if (chunk >= q->chunks) return false;
    run_update_chunk(q, chunk);
    return true;
}

// Runs every chunk not taken yet (on the pool when there are 16 or more) and empties the queue.
static void run_update_queue(UpdateQueue *q) {
    const size_t first = atomic_load(&q->next_chunk), chunks = q->chunks;
    #pragma omp parallel for schedule(static) if (first < chunks && chunks - first >= 16)
    for (size_t c = first; c < chunks; c++) run_update_chunk(q, c);
    q->count = 0;
    q->chunks = 0;
    q->chunks_weighed = 0;
    atomic_store(&q->next_chunk, 0);
}

static void cpu_queue_update(Backend *be, float *params, float *grads, float *m, float *v, size_t n,
                             const StepState *state, OptimizerParams o, bool sgd) {
    UpdateQueue *q = &((CpuState *)be->impl)->updates;
    if (n == 0) return;
    if (q->count == UPDATE_QUEUE_RANGES) run_update_queue(q);
    // a thread that found no chunk left moved next_chunk past the end: the new range's chunks
    // start at the end (no thread takes chunks now: queue_update runs outside the pool)
    if (atomic_load(&q->next_chunk) > q->chunks) atomic_store(&q->next_chunk, q->chunks);
    QueuedUpdate *u = &q->ranges[q->count++];
    u->range = (UpdateRange){params, grads, m, v, n, state, o, sgd};
    u->first_chunk = q->chunks;
    q->chunks += chunks_of(n);
}

static void cpu_finish_updates(Backend *be) { run_update_queue(&((CpuState *)be->impl)->updates); }

// queue_update as the backend op (adam_update and sgd_update queue through cpu_queue_update too)
static void cpu_queue_update_op(Backend *be, float *params, float *grads, float *m, float *v, size_t n,
                                const StepState *state, OptimizerParams o, bool sgd) {
    if (n) ((CpuState *)be->impl)->updates.ranges_queued++;
    cpu_queue_update(be, params, grads, m, v, n, state, o, sgd);
}

CpuUpdateCounts backend_cpu_update_counts(Backend *be) {
    const UpdateQueue *q = &((CpuState *)be->impl)->updates;
    CpuUpdateCounts counts = {q->ranges_queued, atomic_load(&q->beside_gemms), q->gemms_cut,
                              ((CpuState *)be->impl)->eps_draws_beside_gemms};
    return counts;
}

static void cpu_adam_update(Backend *be, float *params, float *grads, float *m, float *v,
                            size_t n, const StepState *state, OptimizerParams o) {
    cpu_queue_update(be, params, grads, m, v, n, state, o, false);
    cpu_finish_updates(be);
}

static size_t cpu_memory_available(Backend *be, char *source, size_t source_size) {
    (void)be;
    const HostMemory hm = host_memory_read();
    if (source) host_memory_source(&hm, source, source_size);
    return hm.available;
}

static void cpu_all_reduce_sum(Backend *be, float *buf, size_t n) {
    (void)be;
    dist_sum_floats(buf, n, "gradient all-reduce");
}

// The same partition as kernels/grad_clip.cu: lane l of block b sums elements
// l + 256 b, + 256 GRAD_CLIP_BLOCKS, ... in double; the blocks' sums are added in order.
static void cpu_grad_clip(Backend *be, float *grads, size_t n, float max_norm, double *scratch) {
    (void)be;
    enum { LANES = 256 };
    const size_t stride = (size_t)LANES * GRAD_CLIP_BLOCKS;
    // the kernel's partition: lane l of block b sums elements b * 256 + l + k * stride, k = 0, 1, ...
    // in that order, then each block's 256 lanes meet in its tree. Walked row by row (a row: one
    // stride of elements), each block's lanes a contiguous run, so the memory is read in order
    // (lane by lane down the strides it was 1 ms for 650 k gradients, a cache line per element)
    #pragma omp parallel for schedule(static) if (n >= 1 << 16)
    for (size_t b = 0; b < GRAD_CLIP_BLOCKS; b++) {
        double lane_sums[LANES] = {0};
        for (size_t row = b * LANES; row < n; row += stride) {
            const size_t count = n - row < LANES ? n - row : LANES;
            const float *g = grads + row;
            #pragma omp simd
            for (size_t l = 0; l < count; l++) lane_sums[l] += (double)g[l] * g[l];
        }
        for (size_t half = LANES / 2; half > 0; half /= 2)   // the kernel's tree
            for (size_t l = 0; l < half; l++) lane_sums[l] += lane_sums[l + half];
        scratch[b + 1] = lane_sums[0];
    }
    double total = 0.0;
    for (size_t b = 0; b < GRAD_CLIP_BLOCKS; b++) total += scratch[b + 1];
    double norm = sqrt(total);
    scratch[0] = norm;
    double coef = (double)max_norm / (norm + 1e-6);
    if (coef < 1.0) {
        float c = (float)coef;
        #pragma omp parallel for simd schedule(static) if (n >= 1 << 16)
        for (size_t i = 0; i < n; i++) grads[i] *= c;
    }
}

static void cpu_sgd_update(Backend *be, float *params, float *grads, float *buf, size_t n,
                           const StepState *state, OptimizerParams o) {
    cpu_queue_update(be, params, grads, buf, NULL, n, state, o, true);
    cpu_finish_updates(be);
}

char *openblas_get_corename(void);   // OpenBLAS extension (openblas_config.h)

void backend_cpu_select_blas_kernels(char **argv) {
    bool changed = false;
    const char *core = openblas_get_corename();
    if (!getenv("OPENBLAS_CORETYPE") && core &&
        (strcmp(core, "Prescott") == 0 || strcmp(core, "Core2") == 0)) {
        __builtin_cpu_init();
        const char *better = NULL;
        if (__builtin_cpu_supports("avx512f")) better = "SkylakeX";
        else if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) better = "Haswell";
        if (better) {
            setenv("OPENBLAS_CORETYPE", better, 1);
            changed = true;
        }
    }
    // both are read when the libraries load: start again with them set (once:
    // the variables are set now)
    if (changed) execv("/proc/self/exe", argv);   // returns only on failure: keep going as is
}

// Subnormal floats (below 1.2e-38) are ~100x slower on x86. Training makes
// them: saturated logits give exp(-|a|) < 1e-38, whose tiny gradients flow
// into Adam and the GEMMs and slowed training 2.4x mid-run. Flush-to-zero and
// denormals-are-zero (MXCSR bits 15 and 6) on this thread and every OpenMP
// thread turn them into 0, as GPUs do with -ftz. The register is per thread
// and the OpenMP pool persists, so once is enough.
static void flush_subnormals_to_zero(void) {
    #pragma omp parallel
    _mm_setcsr(_mm_getcsr() | 0x8040);
    _mm_setcsr(_mm_getcsr() | 0x8040);
}

// ---- layer-graph ops ----------------------------------------------------------

// activation_value / activation_gradient (layer_math.h), one loop per kind so the
// compiler vectorises the piecewise-linear ones
static void cpu_activation_forward(Backend *be, float *y, const float *x, size_t n, Activation act,
                                   float slope) {
    (void)be;
    if (act == ACT_RELU) {
        #pragma omp parallel for schedule(static) if (n >= 32768)
        for (size_t i = 0; i < n; i++) y[i] = activation_value(x[i], ACT_RELU, slope);
    } else if (act == ACT_LEAKY_RELU) {
        #pragma omp parallel for schedule(static) if (n >= 32768)
        for (size_t i = 0; i < n; i++) y[i] = activation_value(x[i], ACT_LEAKY_RELU, slope);
    } else if (act == ACT_TANH) {
        const size_t chunk = 4096;
        #pragma omp parallel for schedule(static) if (n >= 32768)
        for (size_t start = 0; start < n; start += chunk)
            cpu_tanh(y + start, x + start, n - start < chunk ? n - start : chunk);
    } else {
        #pragma omp parallel for schedule(static) if (n >= 32768)
        for (size_t i = 0; i < n; i++) y[i] = activation_value(x[i], (int)act, slope);
    }
}

static void cpu_activation_gradient(Backend *be, float *dx, const float *dy, const float *y, size_t n,
                                    Activation act, float slope) {
    (void)be;
    if (act == ACT_RELU) {
        #pragma omp parallel for schedule(static) if (n >= 32768)
        for (size_t i = 0; i < n; i++) dx[i] = activation_gradient(dy[i], y[i], ACT_RELU, slope);
    } else if (act == ACT_LEAKY_RELU) {
        #pragma omp parallel for schedule(static) if (n >= 32768)
        for (size_t i = 0; i < n; i++) dx[i] = activation_gradient(dy[i], y[i], ACT_LEAKY_RELU, slope);
    } else {
        #pragma omp parallel for schedule(static) if (n >= 32768)
        for (size_t i = 0; i < n; i++) dx[i] = activation_gradient(dy[i], y[i], (int)act, slope);
    }
}

static void cpu_categorical_loss(Backend *be, float *d_out, float *rec_row, const float *logits,
                                 const float *x, int B, int K, int S, float grad_scale) {
    (void)be;
    #pragma omp parallel for schedule(static) if ((size_t)B * K * S >= 32768)
    for (int b = 0; b < B; b++) {
        double sum = 0.0;
        for (int s = 0; s < S; s++) {
            const size_t at = (size_t)b * K * S + (size_t)s;
            sum += categorical_position(logits + at, d_out ? d_out + at : NULL, K, S,
                                        code_of_value(x[(size_t)b * S + s]), grad_scale);
        }
        rec_row[b] = (float)sum;
    }
}

static void cpu_codes_onehot(Backend *be, float *out, const float *x, int B, int K, int S) {
    (void)be;
    for (int b = 0; b < B; b++)
        for (int k = 0; k < K; k++)
            for (int s = 0; s < S; s++)
                out[((size_t)b * K + k) * S + s] = code_of_value(x[(size_t)b * S + s]) == k ? 1.0f : 0.0f;
}

static void cpu_add(Backend *be, float *y, const float *a, const float *b, size_t n) {
    (void)be;
    #pragma omp parallel for schedule(static) if (n >= 32768)
    for (size_t i = 0; i < n; i++) y[i] = a[i] + b[i];
}

static void cpu_mixture_prior(Backend *be, float *z, int B, int components) {
    (void)be;
    for (int b = 0; b < B; b++) mixture_point(b % components, components, &z[2 * b], &z[2 * b + 1]);
}

static void cpu_select_slice(Backend *be, float *dst, const float *bank, size_t n, int n_slices,
                             const StepState *state) {
    (void)be;
    memcpy(dst, bank + (size_t)(state->step % n_slices) * n, n * sizeof(float));
}

static void cpu_multiply(Backend *be, float *y, const float *a, const float *b, size_t n) {
    (void)be;
    #pragma omp parallel for schedule(static) if (n >= 32768)
    for (size_t i = 0; i < n; i++) y[i] = a[i] * b[i];
}

// im2col / col2im through stride-phase copies of the image planes. Pixel (h, w) =
// (hs s + ph, ws s + pw) has residues (ph, pw); tap (i, j) at output (oh, ow) reads pixel
// (oh s + i - p, ow s + j - p): residues ((i - p) mod s, (j - p) mod s), at (oh + di, ow + dj)
// among them, di = floor((i - p) / s). So each residue pair the taps read gets a phase
// plane, rows `width` floats long, and a tap reads a shifted window of one with unit stride
// (one run of OH OW floats when width == OW) where a stride-s gather was. Entries outside
// the image read zeros: rows outside the pixels are zero in the copy, and a per-column mask
// (keep) catches the columns that would wrap into the neighbouring row. The taps read
// min(k, s) residues per axis, each a slot (phase_slot). The plain definitions are
// im2col_value / col2im_value (layer_math.h); test_layer_ops checks these loops against
// them bit for bit.
typedef struct {
    int slots;          // phase planes per axis: min(k, s)
    int width;          // floats per phase-plane row: max(OW, ceil(W / s))
    int origin;         // offset of (row 0, column 0) in a phase plane's buffer
    int phase_floats;   // one phase plane's buffer, margins included
    int plane_floats;   // the slots^2 phase planes of one image plane
} PhaseLayout;

static int floor_div(int a, int s) {
    return a >= 0 ? a / s : -((-a + s - 1) / s);
}

// pixels of residue ph along a side of n pixels: those hs with hs s + ph < n
static int phase_count(int n, int ph, int s) {
    return n > ph ? (n - ph + s - 1) / s : 0;
}

static int residue_of_tap(ConvGeometry g, int i) {
    return i - g.padding - floor_div(i - g.padding, g.stride) * g.stride;
}

// The slot of tap offset i, and the residue a slot holds: with k <= s the k taps have k
// distinct residues (slot i), else the slots are the s residues themselves.
static int phase_slot(ConvGeometry g, int i) {
    return g.kernel <= g.stride ? i : residue_of_tap(g, i);
}

static int slot_residue(ConvGeometry g, int slot) {
    return g.kernel <= g.stride ? residue_of_tap(g, slot) : slot;
}

// Tap offset i reads its phase plane shifted by floor((i - p) / s) (di, or dj for a column);
// the shifts run from tap_shift(g, 0) to tap_shift(g, k - 1).
static int tap_shift(ConvGeometry g, int i) {
    return floor_div(i - g.padding, g.stride);
}

static PhaseLayout phase_layout(ConvGeometry g) {
    PhaseLayout L;
    const int s = g.stride, rows = phase_count(g.H, 0, s);
    const int low = tap_shift(g, 0), high = tap_shift(g, g.kernel - 1);   // di, dj
    L.slots = g.kernel < s ? g.kernel : s;
    L.width = g.OW > phase_count(g.W, 0, s) ? g.OW : phase_count(g.W, 0, s);
    // offsets a window reaches: (oh + di) width + ow + dj; the pixels: [0, rows width)
    int first = low * L.width + low, last = (g.OH - 1 + high) * L.width + g.OW - 1 + high;
    if (first > 0) first = 0;
    if (last < rows * L.width - 1) last = rows * L.width - 1;
    L.origin = -first;
    L.phase_floats = last - first + 1;
    L.plane_floats = L.slots * L.slots * L.phase_floats;
    return L;
}

// keep (k, OH OW): keep[j][oh OW + ow] = 1 when tap column j at output column ow reads a
// pixel column inside the image (0 <= ow s + j - p < W)
static void phase_column_masks(int *keep, ConvGeometry g) {
    for (int j = 0; j < g.kernel; j++)
        for (int oh = 0; oh < g.OH; oh++)
            for (int ow = 0; ow < g.OW; ow++) {
                const int w = ow * g.stride + j - g.padding;
                keep[((size_t)j * g.OH + oh) * g.OW + ow] = w >= 0 && w < g.W;
            }
}

// Tap (i, j)'s window into the phase planes: its entry (oh, ow) at oh width + ow.
static float *phase_window(float *phases, PhaseLayout L, ConvGeometry g, int i, int j) {
    const int di = tap_shift(g, i), dj = tap_shift(g, j);
    const int slot = phase_slot(g, i) * L.slots + phase_slot(g, j);
    return phases + (size_t)slot * L.phase_floats + L.origin + di * L.width + dj;
}

// Both layouts keep an image plane's slots as grids at a fixed distance (slot_stride floats
// apart, slot (si, sj) the (si slots + sj)-th), rows `pitch` floats long, pixel (hs s + ph,
// ws s + pw) of the slot's residues (ph, pw) at (hs, ws). split_slots writes the pixels (the
// caller has zeroed the grids), merge_slots writes them back into the plane (H, W), pixels of
// residues no tap reads 0.
static void split_slots(float *grids, size_t slot_stride, int pitch, int slots, const float *plane,
                        ConvGeometry g) {
    const int s = g.stride;
    for (int si = 0; si < slots; si++)
        for (int sj = 0; sj < slots; sj++) {
            const int ph = slot_residue(g, si), pw = slot_residue(g, sj);
            const int rows = phase_count(g.H, ph, s), cols = phase_count(g.W, pw, s);
            float *grid = grids + (size_t)(si * slots + sj) * slot_stride;
            for (int hs = 0; hs < rows; hs++)
                for (int ws = 0; ws < cols; ws++)
                    grid[(size_t)hs * pitch + ws] = plane[(size_t)(hs * s + ph) * g.W + ws * s + pw];
        }
}

static void merge_slots(float *plane, const float *grids, size_t slot_stride, int pitch, int slots,
                        ConvGeometry g) {
    const int s = g.stride;
    if (slots < s) memset(plane, 0, (size_t)g.H * g.W * sizeof(float));
    for (int si = 0; si < slots; si++)
        for (int sj = 0; sj < slots; sj++) {
            const int ph = slot_residue(g, si), pw = slot_residue(g, sj);
            const int rows = phase_count(g.H, ph, s), cols = phase_count(g.W, pw, s);
            const float *grid = grids + (size_t)(si * slots + sj) * slot_stride;
            for (int hs = 0; hs < rows; hs++)
                for (int ws = 0; ws < cols; ws++)
                    plane[(size_t)(hs * s + ph) * g.W + ws * s + pw] = grid[(size_t)hs * pitch + ws];
        }
}

// phases = the plane (H, W)'s pixels of the slots' residues, zeros elsewhere
static void phase_split(float *phases, const float *plane, PhaseLayout L, ConvGeometry g) {
    memset(phases, 0, (size_t)L.plane_floats * sizeof(float));
    split_slots(phases + L.origin, (size_t)L.phase_floats, L.width, L.slots, plane, g);
}

// the plane (H, W) from its phase planes
static void phase_merge(float *plane, const float *phases, PhaseLayout L, ConvGeometry g) {
    merge_slots(plane, phases + L.origin, (size_t)L.phase_floats, L.width, L.slots, g);
}

// Work items of im2col / col2im: a channel c and a block of images. An item walks its
// channel's taps (i, j ascending) and, per tap, its images in order: the col row is read or
// written front to back, the images' phase planes stay in cache. Blocks of up to
// PHASE_BLOCK images, fewer where that would leave under 4 items per thread.
enum { PHASE_BLOCK = 16 };

static int phase_block(int B, int C) {
    long block = (long)B * C / (4L * omp_get_max_threads());   // (B C may pass INT_MAX)
    if (block > PHASE_BLOCK) block = PHASE_BLOCK;
    if (block > B) block = B;
    return block < 1 ? 1 : (int)block;
}

// Scratch: the column masks (k, OH OW), then `block` images' phase planes per thread.
static float *phase_scratch(Backend *be, PhaseLayout L, ConvGeometry g, int block, int **keep) {
    const size_t mask_floats = (size_t)g.kernel * g.OH * g.OW;
    const size_t per_thread = (size_t)block * L.plane_floats;
    float *scratch = cpu_scratch_raw(be, mask_floats + (size_t)omp_get_max_threads() * per_thread);
    *keep = (int *)scratch;
    phase_column_masks(*keep, g);
    return scratch + mask_floats;
}

// What an im2col / col2im work item needs to know.
typedef struct {
    ConvGeometry g;
    PhaseLayout L;
    size_t columns;     // B OH OW: the length of a col row
    const int *keep;    // (k, OH OW) column masks; stacked: (k k, block OH OW) tap masks
    // stacked planes only (stacked_layout): a slot's grids of the block's images back to back
    int margin;                // floats before the first image's grid in a slot, and after the last
    size_t block_columns;      // block OH OW: one slot's grids, a tap mask's length
    size_t slot_floats;        // one slot: margin, block OH OW, margin
} PhaseWalk;

// im2col for one work item (channel c, images [b_first, b_first + images)): the images'
// planes of x split by phase, then each tap's col row segment a masked copy of its window.
static void im2col_item(const PhaseWalk *w, float *phases, int c, int b_first, int images, const float *x,
                        float *col) {
    const ConvGeometry g = w->g;
    const PhaseLayout L = w->L;
    const int S = g.OH * g.OW;
    for (int n = 0; n < images; n++)
        phase_split(phases + (size_t)n * L.plane_floats, x + ((size_t)(b_first + n) * g.C + c) * g.H * g.W, L, g);
    for (int i = 0; i < g.kernel; i++)
        for (int j = 0; j < g.kernel; j++) {
            const int *keep_j = w->keep + (size_t)j * S;
            float *row = col + (((size_t)c * g.kernel + i) * g.kernel + j) * w->columns;
            for (int n = 0; n < images; n++) {
                const float *window = phase_window(phases + (size_t)n * L.plane_floats, L, g, i, j);
                float *out = row + (size_t)(b_first + n) * S;
                if (L.width == g.OW) {
                    for (int k = 0; k < S; k++) out[k] = keep_j[k] ? window[k] : 0.0f;
                } else {
                    for (int oh = 0; oh < g.OH; oh++)
                        for (int ow = 0; ow < g.OW; ow++)
                            out[oh * g.OW + ow] = keep_j[oh * g.OW + ow] ? window[oh * L.width + ow] : 0.0f;
                }
            }
        }
}

// col2im for one work item: each tap's col row segment added into the images' phase planes
// in the order i, j ascending, then the planes merged into x.
static void col2im_item(const PhaseWalk *w, float *phases, int c, int b_first, int images, const float *col,
                        float *x) {
    const ConvGeometry g = w->g;
    const PhaseLayout L = w->L;
    const int S = g.OH * g.OW;
    memset(phases, 0, (size_t)images * L.plane_floats * sizeof(float));
    for (int i = 0; i < g.kernel; i++)
        for (int j = 0; j < g.kernel; j++) {
            const int *keep_j = w->keep + (size_t)j * S;
            const float *row = col + (((size_t)c * g.kernel + i) * g.kernel + j) * w->columns;
            for (int n = 0; n < images; n++) {
                float *window = phase_window(phases + (size_t)n * L.plane_floats, L, g, i, j);
                const float *in = row + (size_t)(b_first + n) * S;
                if (L.width == g.OW) {
                    for (int k = 0; k < S; k++) window[k] += keep_j[k] ? in[k] : 0.0f;
                } else {
                    for (int oh = 0; oh < g.OH; oh++)
                        for (int ow = 0; ow < g.OW; ow++)
                            window[oh * L.width + ow] += keep_j[oh * g.OW + ow] ? in[oh * g.OW + ow] : 0.0f;
                }
            }
        }
    for (int n = 0; n < images; n++)
        phase_merge(x + ((size_t)(b_first + n) * g.C + c) * g.H * g.W, phases + (size_t)n * L.plane_floats, L, g);
}

// Stacked phase planes. When each slot's pixels fit the output grid (at most OH rows of
// residue ph, at most OW columns of residue pw), an image's phase plane is stored as an
// (OH, OW) grid and the block's images' grids of a slot back to back, OH OW floats apart,
// like the images' segments of a col row. A tap's window over the whole block is then one
// run of images OH OW floats (the window moved by di OW + dj) where it was one run per
// image; the entries whose pixel is outside the image -- they read a grid's unused rows or
// columns, a neighbour's grid or the slot's margins -- are masked by a tap mask (k k, block
// OH OW). The same values, and col2im the same sums in the same order.
enum { STACKED_MASK_MAX_BYTES = 1 << 20 };

// ints in the tap masks of geometry g and a block of images: (k k, block OH OW)
static size_t tap_mask_ints(ConvGeometry g, int block) {
    return (size_t)g.kernel * g.kernel * block * g.OH * g.OW;
}

static bool stacked_layout(ConvGeometry g, PhaseLayout L, int block) {
    for (int slot = 0; slot < L.slots; slot++) {
        const int residue = slot_residue(g, slot);
        if (phase_count(g.H, residue, g.stride) > g.OH || phase_count(g.W, residue, g.stride) > g.OW) return false;
    }
    return tap_mask_ints(g, block) * sizeof(int) <= STACKED_MASK_MAX_BYTES;
}

// Floats a window may reach before a slot's first grid and after its last: |di OW + dj|.
static int stacked_margin(ConvGeometry g) {
    const int low = tap_shift(g, 0), high = tap_shift(g, g.kernel - 1);
    const int before = -(low * g.OW + low), after = high * g.OW + high;
    int margin = before > after ? before : after;
    return margin > 0 ? margin : 0;
}

// keep (k k, block OH OW): 1 where tap (i, j) at output (oh, ow) reads a pixel inside the
// image, the same for each image of the block. Computed on a geometry's first call and kept
// (keyed by everything but C, which they do not depend on); with more than TAP_MASK_CACHE
// geometries in turn the oldest are computed again.
static const int *stacked_tap_masks(Backend *be, ConvGeometry g, int block) {
    CpuState *st = be->impl;
    ConvGeometry key = g;
    key.C = 0;
    for (int e = 0; e < TAP_MASK_CACHE; e++) {
        const TapMasks *m = &st->tap_masks[e];
        if (m->keep && m->block == block && memcmp(&m->g, &key, sizeof key) == 0) return m->keep;
    }
    TapMasks *m = &st->tap_masks[st->tap_masks_next];
    st->tap_masks_next = (st->tap_masks_next + 1) % TAP_MASK_CACHE;
    if (m->keep) st->current_bytes -= tap_mask_ints(m->g, m->block) * sizeof(int);
    free(m->keep);
    m->keep = NULL;
    const size_t S = (size_t)g.OH * g.OW, n = tap_mask_ints(g, block);
    cpu_count_bytes(st, n * sizeof(int));
    m->keep = xmalloc(n * sizeof(int));
    m->g = key;
    m->block = block;
    int *keep = m->keep;
    for (int i = 0; i < g.kernel; i++)
        for (int j = 0; j < g.kernel; j++)
            for (int oh = 0; oh < g.OH; oh++)
                for (int ow = 0; ow < g.OW; ow++) {
                    const int h = oh * g.stride + i - g.padding, w = ow * g.stride + j - g.padding;
                    const int inside = h >= 0 && h < g.H && w >= 0 && w < g.W;
                    for (int b = 0; b < block; b++)
                        keep[((size_t)i * g.kernel + j) * block * S + b * S + (size_t)oh * g.OW + ow] = inside;
                }
    return keep;
}

// Image n's grid of slot (0, 0) in a thread's stacked planes (slot t's is t slot_floats further).
static float *stacked_grids(const PhaseWalk *w, float *phases, int n) {
    return phases + w->margin + (size_t)n * w->g.OH * w->g.OW;
}

// Tap (i, j)'s window: its entry for image n, output (oh, ow) at n OH OW + oh OW + ow.
static float *stacked_window(const PhaseWalk *w, float *phases, int i, int j) {
    const ConvGeometry g = w->g;
    const int slot = phase_slot(g, i) * w->L.slots + phase_slot(g, j);
    return stacked_grids(w, phases, 0) + (size_t)slot * w->slot_floats + tap_shift(g, i) * g.OW + tap_shift(g, j);
}

// im2col for one work item (channel c, images [b_first, b_first + images)): the images' planes
// of x split into their grids (the thread's planes were zeroed by phase_walk, and a grid's
// entries outside the pixels stay zero), then each tap's col row segment for the block one
// masked copy of its window.
static void stacked_im2col_item(const PhaseWalk *w, float *phases, int c, int b_first, int images,
                                const float *x, float *col) {
    const ConvGeometry g = w->g;
    const size_t S = (size_t)g.OH * g.OW, run = (size_t)images * S;
    for (int n = 0; n < images; n++)
        split_slots(stacked_grids(w, phases, n), w->slot_floats, g.OW, w->L.slots,
                    x + ((size_t)(b_first + n) * g.C + c) * g.H * g.W, g);
    for (int i = 0; i < g.kernel; i++)
        for (int j = 0; j < g.kernel; j++) {
            const int *keep = w->keep + ((size_t)i * g.kernel + j) * w->block_columns;
            const float *window = stacked_window(w, phases, i, j);
            float *out = col + (((size_t)c * g.kernel + i) * g.kernel + j) * w->columns + (size_t)b_first * S;
            for (size_t e = 0; e < run; e++) out[e] = keep[e] ? window[e] : 0.0f;
        }
}

// col2im for one work item: each tap's col row segment for the block added into its window in
// the order i, j ascending (a masked entry adds +0.0f, wherever its window entry lies), then
// each image's grids merged into x.
static void stacked_col2im_item(const PhaseWalk *w, float *phases, int c, int b_first, int images,
                                const float *col, float *x) {
    const ConvGeometry g = w->g;
    const size_t S = (size_t)g.OH * g.OW, run = (size_t)images * S;
    memset(phases, 0, (size_t)w->L.slots * w->L.slots * w->slot_floats * sizeof(float));
    for (int i = 0; i < g.kernel; i++)
        for (int j = 0; j < g.kernel; j++) {
            const int *keep = w->keep + ((size_t)i * g.kernel + j) * w->block_columns;
            float *window = stacked_window(w, phases, i, j);
            const float *in = col + (((size_t)c * g.kernel + i) * g.kernel + j) * w->columns + (size_t)b_first * S;
            for (size_t e = 0; e < run; e++) window[e] += keep[e] ? in[e] : 0.0f;
        }
    for (int n = 0; n < images; n++)
        merge_slots(x + ((size_t)(b_first + n) * g.C + c) * g.H * g.W, stacked_grids(w, phases, n), w->slot_floats,
                    g.OW, w->L.slots, g);
}

typedef void (*PhaseItem)(const PhaseWalk *w, float *phases, int c, int b_first, int images, const float *in,
                          float *out);

// The walk both directions share: the work items (channel, block of images) over the pool,
// each with its thread's phase planes (stacked where stacked_layout allows).
static void phase_walk(Backend *be, ConvGeometry g, int B, PhaseItem item_fn, PhaseItem stacked_fn,
                       const float *in, float *out) {
    PhaseWalk w;
    w.g = g;
    w.L = phase_layout(g);
    w.columns = (size_t)B * g.OH * g.OW;
    const int block = phase_block(B, g.C), blocks = (B + block - 1) / block;
    float *thread_phases;
    size_t per_thread;
    if (stacked_layout(g, w.L, block)) {
        w.margin = stacked_margin(g);
        w.block_columns = (size_t)block * g.OH * g.OW;
        w.slot_floats = 2 * (size_t)w.margin + w.block_columns;
        per_thread = (size_t)w.L.slots * w.L.slots * w.slot_floats;
        w.keep = stacked_tap_masks(be, g, block);
        thread_phases = cpu_scratch_raw(be, (size_t)omp_get_max_threads() * per_thread);
        // every entry a window reads outside the pixels (all masked) gets a value: zeros in
        // the margins and the grids' spare rows and columns; past the last image of a partial
        // block, zeros or an earlier item's pixels
        memset(thread_phases, 0, (size_t)omp_get_max_threads() * per_thread * sizeof(float));
        item_fn = stacked_fn;
    } else {
        int *keep;
        thread_phases = phase_scratch(be, w.L, g, block, &keep);
        w.keep = keep;
        per_thread = (size_t)block * w.L.plane_floats;
    }
    const long items = (long)g.C * blocks;   // (C B may pass INT_MAX)
    #pragma omp parallel for schedule(static) if (w.columns * g.C * g.kernel * g.kernel >= 32768)
    for (long item = 0; item < items; item++) {
        const int c = (int)(item / blocks), b_first = (int)(item % blocks) * block;
        const int images = B - b_first < block ? B - b_first : block;
        item_fn(&w, thread_phases + (size_t)omp_get_thread_num() * per_thread, c, b_first, images, in, out);
    }
}

bool backend_cpu_im2col_stacked(ConvGeometry g, int B) {
    return stacked_layout(g, phase_layout(g), phase_block(B, g.C));
}

// A 1 x 1 kernel with stride 1 and no padding (a channel-mixing layer) reads each pixel once,
// where it is: im2col is the swap (B, C, S) -> (C, B S), col2im the swap back with each pixel
// +0.0f + its one entry (col2im_value's sum: a -0.0f entry gives +0.0f).
static bool pointwise(ConvGeometry g) { return g.kernel == 1 && g.stride == 1 && g.padding == 0; }

static void cpu_swap_leading_axes(Backend *be, float *out, const float *in, int N0, int N1, int S);

// x (B, C, S) = +0.0f + col (C, B S)
static void pointwise_col2im(float *x, const float *col, int B, int C, size_t S) {
    #pragma omp parallel for schedule(static) if ((size_t)B * C * S >= 32768)
    for (int b = 0; b < B; b++)
        for (int c = 0; c < C; c++) {
            float *out = x + ((size_t)b * C + c) * S;
            const float *in = col + ((size_t)c * B + b) * S;
            for (size_t s = 0; s < S; s++) out[s] = 0.0f + in[s];
        }
}

// im2col_value (layer_math.h) for every entry.
static void cpu_im2col(Backend *be, float *col, const float *x, ConvGeometry g, int B) {
    if (pointwise(g)) {
        cpu_swap_leading_axes(be, col, x, B, g.C, g.H * g.W);
        return;
    }
    phase_walk(be, g, B, im2col_item, stacked_im2col_item, x, col);
}

// col2im_value (layer_math.h) for every pixel: the taps added in its order, i, j ascending,
// so the sums are the CUDA kernel's to the last bit (for a sum with NaNs in it, the NaN that
// comes out may be another of them: the vector add takes its operands in either order). A
// masked entry adds +0.0f (the sums start at +0.0f and are never -0.0f, so it changes
// nothing, also where it lands on another pixel's entry in the stacked layout); window
// entries outside the pixels are never read back.
static void cpu_col2im(Backend *be, float *x, const float *col, ConvGeometry g, int B) {
    if (pointwise(g)) {
        pointwise_col2im(x, col, B, g.C, (size_t)g.H * g.W);
        return;
    }
    phase_walk(be, g, B, col2im_item, stacked_col2im_item, col, x);
}

static void cpu_swap_leading_axes(Backend *be, float *out, const float *in, int N0, int N1, int S) {
    (void)be;
    #pragma omp parallel for schedule(static) if ((size_t)N0 * N1 * S >= 32768)
    for (int i1 = 0; i1 < N1; i1++)
        for (int i0 = 0; i0 < N0; i0++)
            memcpy(out + ((size_t)i1 * N0 + i0) * S, in + ((size_t)i0 * N1 + i1) * S,
                   (size_t)S * sizeof(float));
}

static void cpu_channel_bias_forward(Backend *be, float *y, const float *bias, int B, int C, int S) {
    (void)be;
    const size_t planes = (size_t)B * C;   // (B C may pass INT_MAX: a batch of 32768 x 65536 channels)
    #pragma omp parallel for schedule(static) if (planes * S >= 65536)
    for (size_t p = 0; p < planes; p++) {
        float *plane = y + p * S;   // (S)
        const float value = bias[p % (size_t)C];
        for (int s = 0; s < S; s++) plane[s] += value;
    }
}

// Per-channel sums over (B, C, S) go plane by plane in memory order: each plane's sum
// (simd lanes, then the lanes) into plane_sums (B, C), threads splitting the planes;
// then each channel adds its B planes in b order. The sums are thread-count independent,
// and the tensor is read front to back -- a channel's planes lie C * S floats apart,
// which made the channel-major walk wait on memory (issue 15).
static double plane_sum(const float *plane, int S) {
    double sum = 0.0;
    #pragma omp simd reduction(+ : sum)
    for (int s = 0; s < S; s++) sum += plane[s];
    return sum;
}

static double channel_total(const double *plane_sums, int B, int C, int c) {
    double sum = 0.0;
    for (int b = 0; b < B; b++) sum += plane_sums[(size_t)b * C + c];
    return sum;
}

static void cpu_channel_bias_grad(Backend *be, float *dbias, const float *dy, int B, int C, int S) {
    double *plane_sums = (double *)cpu_scratch(be, 2 * (size_t)B * C);   // (B, C)
    const size_t planes = (size_t)B * C;
    #pragma omp parallel for schedule(static) if (planes * S >= 65536)
    for (size_t p = 0; p < planes; p++) plane_sums[p] = plane_sum(dy + p * S, S);
    for (int c = 0; c < C; c++) dbias[c] = (float)channel_total(plane_sums, B, C, c);
}

static void cpu_batch_norm_forward(Backend *be, float *y, float *mean, float *invstd,
                                   float *running_mean, float *running_var, const float *x,
                                   const float *gamma, const float *beta, int B, int C, int S,
                                   bool training, float momentum, float eps) {
    const double n = (double)B * S;
    const size_t planes = (size_t)B * C;   // (B C may pass INT_MAX)
    const bool parallel = planes * S >= 65536;
    if (training) {
        // two passes as the CUDA kernel: the mean, then the squared deviations from it
        double *plane_sums = (double *)cpu_scratch(be, 2 * ((size_t)B * C + C));   // (B, C)
        double *mu = plane_sums + (size_t)B * C;                                     // (C)
        #pragma omp parallel for schedule(static) if (parallel)
        for (size_t p = 0; p < planes; p++) plane_sums[p] = plane_sum(x + p * S, S);
        for (int c = 0; c < C; c++) mu[c] = channel_total(plane_sums, B, C, c) / n;
        #pragma omp parallel for schedule(static) if (parallel)
        for (size_t p = 0; p < planes; p++) {
            const float *plane = x + p * S;
            const double channel_mu = mu[p % (size_t)C];
            double squares = 0.0;
            #pragma omp simd reduction(+ : squares)
            for (int s = 0; s < S; s++)
                squares += ((double)plane[s] - channel_mu) * ((double)plane[s] - channel_mu);
            plane_sums[p] = squares;
        }
        for (int c = 0; c < C; c++) {
            double squares = channel_total(plane_sums, B, C, c);
            double var = squares / n;
            double unbiased = n > 1.0 ? squares / (n - 1.0) : var;
            mean[c] = (float)mu[c];
            running_mean[c] = (1.0f - momentum) * running_mean[c] + momentum * mean[c];
            running_var[c] = (1.0f - momentum) * running_var[c] + momentum * (float)unbiased;
            invstd[c] = 1.0f / sqrtf((float)var + eps);
        }
    } else {
        for (int c = 0; c < C; c++) {
            mean[c] = running_mean[c];
            invstd[c] = 1.0f / sqrtf(running_var[c] + eps);
        }
    }
    #pragma omp parallel for schedule(static) if (parallel)
    for (size_t p = 0; p < planes; p++) {
        const int c = (int)(p % (size_t)C);
        const float channel_mean = mean[c], istd = invstd[c], scale = gamma[c], shift = beta[c];
        const float *in = x + p * S;
        float *out = y + p * S;
        for (int s = 0; s < S; s++) out[s] = (in[s] - channel_mean) * istd * scale + shift;
    }
}

static void cpu_batch_norm_backward(Backend *be, float *dx, float *dgamma, float *dbeta,
                                    const float *dy, const float *x, const float *gamma,
                                    const float *mean, const float *invstd, int B, int C, int S) {
    const double n = (double)B * S;
    const size_t planes = (size_t)B * C;   // (B C may pass INT_MAX)
    const bool parallel = planes * S >= 65536;
    double *dy_sums = (double *)cpu_scratch(be, 4 * (size_t)B * C);   // (B, C)
    double *dy_xhat_sums = dy_sums + (size_t)B * C;                   // (B, C)
    #pragma omp parallel for schedule(static) if (parallel)
    for (size_t p = 0; p < planes; p++) {
        const int c = (int)(p % (size_t)C);
        const float *d = dy + p * S, *in = x + p * S;
        double sum_dy = 0.0, sum_dy_xhat = 0.0;
        #pragma omp simd reduction(+ : sum_dy, sum_dy_xhat)
        for (int s = 0; s < S; s++) {
            sum_dy += d[s];
            sum_dy_xhat += (double)d[s] * (double)((in[s] - mean[c]) * invstd[c]);
        }
        dy_sums[p] = sum_dy;
        dy_xhat_sums[p] = sum_dy_xhat;
    }
    for (int c = 0; c < C; c++) {
        dbeta[c] = (float)channel_total(dy_sums, B, C, c);
        dgamma[c] = (float)channel_total(dy_xhat_sums, B, C, c);
    }
    #pragma omp parallel for schedule(static) if (parallel)
    for (size_t p = 0; p < planes; p++) {
        const int c = (int)(p % (size_t)C);
        // from the rounded sums, as the CUDA kernel does
        const float mean_dy = (float)((double)dbeta[c] / n), mean_dy_xhat = (float)((double)dgamma[c] / n);
        const float *d = dy + p * S, *in = x + p * S;
        float *out = dx + p * S;
        for (int s = 0; s < S; s++)
            out[s] = batch_norm_input_gradient(d[s], (in[s] - mean[c]) * invstd[c], gamma[c], invstd[c],
                                               mean_dy, mean_dy_xhat);
    }
}

// ---- vector quantiser --------------------------------------------------------

static void cpu_vq_code_norms(Backend *be, float *norms, const float *codebook, int K, int D) {
    (void)be;
    for (int k = 0; k < K; k++) {
        double sum = 0.0;
        for (int d = 0; d < D; d++) sum += (double)codebook[(size_t)k * D + d] * codebook[(size_t)k * D + d];
        norms[k] = (float)sum;
    }
}

// vq_nearest_code (layer_math.h) -- the first k of the smallest norms[k] - 2 scores[k], NaNs
// never chosen after k = 0 -- with VQ_LANES running minima side by side, so the compiler
// vectorises it (the definition's loop carries its minimum from one k to the next). Lane l
// keeps the first k = l (mod VQ_LANES) of its smallest value (strict <, NaNs never taken);
// the smallest value over the lanes, the lowest k among equal ones, is then the first k of
// the smallest value: the definition's answer. The definition keeps k = 0 when its value is
// NaN (nothing compares below a NaN): so does this.
enum { VQ_LANES = 8 };
typedef float LaneFloats __attribute__((vector_size(VQ_LANES * sizeof(float))));   // GCC / Clang vectors
typedef int32_t LaneInts __attribute__((vector_size(VQ_LANES * sizeof(int32_t))));

static int nearest_code_lanes(const float *scores, const float *norms, int K) {
    const float first = norms[0] - 2.0f * scores[0];
    if (K < 2 * VQ_LANES || isnan(first)) return vq_nearest_code(scores, norms, K);
    LaneFloats lane_value;
    LaneInts lane_code, code;
    for (int l = 0; l < VQ_LANES; l++) {
        lane_value[l] = INFINITY;
        lane_code[l] = l;
        code[l] = l;
    }
    const int whole = K - K % VQ_LANES;
    for (int k0 = 0; k0 < whole; k0 += VQ_LANES, code += VQ_LANES) {
        LaneFloats norm, score;
        memcpy(&norm, norms + k0, sizeof norm);
        memcpy(&score, scores + k0, sizeof score);
        const LaneFloats value = norm - 2.0f * score;
        const LaneInts less = value < lane_value;   // all ones where less (false for NaNs)
        lane_value = (LaneFloats)(((LaneInts)value & less) | ((LaneInts)lane_value & ~less));
        lane_code = (code & less) | (lane_code & ~less);
    }
    float values[VQ_LANES];
    int codes[VQ_LANES];
    for (int l = 0; l < VQ_LANES; l++) {
        values[l] = lane_value[l];
        codes[l] = lane_code[l];
    }
    for (int k = whole; k < K; k++) {
        const float value = norms[k] - 2.0f * scores[k];
        const int l = k - whole;
        if (value < values[l]) {
            values[l] = value;
            codes[l] = k;
        }
    }
    // a lane that met only +inf and NaNs reports +inf at its first k: it can win only when
    // every value is +inf or NaN, and then value 0 (not NaN) is +inf and lane 0's code 0 wins
    int best = 0;
    for (int l = 1; l < VQ_LANES; l++)
        if (values[l] < values[best] || (values[l] == values[best] && codes[l] < codes[best])) best = l;
    return codes[best];
}

static void cpu_vq_argmin(Backend *be, int32_t *codes, const float *scores, const float *norms, int N, int K) {
    (void)be;
    #pragma omp parallel for schedule(static) if ((size_t)N * K >= 65536)
    for (int n = 0; n < N; n++) codes[n] = nearest_code_lanes(scores + (size_t)n * K, norms, K);
}

static void cpu_vq_quantize(Backend *be, float *zqt, float *loss_row, const float *zt, const float *codebook,
                            const int32_t *codes, int B, int S, int D, float weight) {
    (void)be;
    const size_t N = (size_t)B * S;
    for (int d = 0; d < D; d++)
        for (size_t n = 0; n < N; n++) zqt[(size_t)d * N + n] = codebook[(size_t)codes[n] * D + d];
    for (int b = 0; b < B; b++) {
        double sum = 0.0;
        for (int d = 0; d < D; d++)
            for (int s = 0; s < S; s++) {
                size_t i = (size_t)d * N + (size_t)b * S + s;
                double diff = (double)zt[i] - (double)zqt[i];
                sum += diff * diff;
            }
        loss_row[b] = (float)(weight * sum);
    }
}

static void cpu_vq_backward(Backend *be, float *dzt, float *dcodebook, const float *dzqt, const float *zt,
                            const float *codebook, const int32_t *codes, int N, int K, int D,
                            float commit_coef, float codebook_coef) {
    (void)be;
    for (int d = 0; d < D; d++)
        for (int n = 0; n < N; n++) {
            size_t i = (size_t)d * N + n;
            dzt[i] = dzqt[i] + commit_coef * 2.0f * (zt[i] - codebook[(size_t)codes[n] * D + d]);
        }
    if (!dcodebook) return;
    // one pass over the columns, summing in dcodebook itself; each code's sum still adds its
    // columns in order n = 0..N-1, as the CUDA kernel's per-code loop does
    memset(dcodebook, 0, (size_t)K * D * sizeof(float));
    for (int d = 0; d < D; d++)
        for (int n = 0; n < N; n++) {
            size_t k = (size_t)codes[n] * D + d;
            dcodebook[k] += 2.0f * (codebook[k] - zt[(size_t)d * N + n]);
        }
    for (size_t i = 0; i < (size_t)K * D; i++) dcodebook[i] *= codebook_coef;
}

static void cpu_vq_ema_update(Backend *be, float *codebook, float *counts, float *sums, const float *zt,
                              const int32_t *codes, int N, int K, int D, float decay, float eps) {
    // one pass over the columns, each code's sums in order n = 0..N-1 (the CUDA kernel's order)
    float *used = cpu_scratch(be, (size_t)K + (size_t)K * D), *batch_sums = used + K;
    for (int n = 0; n < N; n++) used[codes[n]] += 1.0f;
    for (int d = 0; d < D; d++)
        for (int n = 0; n < N; n++) batch_sums[(size_t)codes[n] * D + d] += zt[(size_t)d * N + n];
    for (int k = 0; k < K; k++) {
        counts[k] = vq_ema_step(decay, counts[k], used[k]);
        for (int d = 0; d < D; d++)
            sums[(size_t)k * D + d] = vq_ema_step(decay, sums[(size_t)k * D + d], batch_sums[(size_t)k * D + d]);
    }

    double total = 0.0;
    for (int k = 0; k < K; k++) total += counts[k];
    for (int k = 0; k < K; k++) {
        float smoothed = vq_smoothed_count(counts[k], (float)total, K, eps);
        for (int d = 0; d < D; d++) codebook[(size_t)k * D + d] = sums[(size_t)k * D + d] / smoothed;
    }
}

static void cpu_vq_restart_dead(Backend *be, float *codebook, float *counts, float *sums, const float *zt,
                                int N, int K, int D, float threshold, uint64_t seed, const StepState *state) {
    (void)be;
    for (int k = 0; k < K; k++) {
        if (!(counts[k] < threshold)) continue;
        int n = vq_restart_column(seed, state->step, K, k, N);
        for (int d = 0; d < D; d++) {
            codebook[(size_t)k * D + d] = zt[(size_t)d * N + n];
            sums[(size_t)k * D + d] = zt[(size_t)d * N + n];
        }
        counts[k] = 1.0f;
    }
}

// The pool's size: OMP_NUM_THREADS, else OPENBLAS_NUM_THREADS (what users of OpenBLAS set),
// else every core. OpenBLAS itself then runs single-threaded inside it (cpu_gemm).
// (OpenBLAS's OpenMP build sets OpenMP's thread count in openblas_set_num_threads: the
// pool's size is read first and set again after it.)
// The most threads the pool may have: MAX_THREADS_PER_CORE a core, and never fewer than
// MIN_THREADS_CAP. libgomp crashes or hangs creating tens of thousands of threads (OMP_NUM_THREADS
// 16384 hung, 65536 crashed on a 2-core VM), and a pool far over the cores only waits on itself.
enum { MAX_THREADS_PER_CORE = 8, MIN_THREADS_CAP = 1024 };

// Whether text is a thread count: a positive integer, or with lists allowed, positive integers
// separated by commas (OMP_NUM_THREADS's nesting levels), spaces around each. libgomp ignores
// an OMP_NUM_THREADS it cannot read, and OpenBLAS a thread count below 1, without a word.
static bool thread_count_text(const char *text, bool list) {
    const char *p = text;
    for (;;) {
        while (*p == ' ' || *p == '\t') p++;
        char *end;
        errno = 0;
        long value = strtol(p, &end, 10);
        if (end == p || *p == '-' || *p == '+' || value < 1 || errno == ERANGE) return false;
        p = end;
        while (*p == ' ' || *p == '\t') p++;
        if (*p == '\0') return true;
        if (*p != ',' || !list) return false;
        p++;
    }
}

static void use_one_thread_pool(void) {
    int threads = omp_get_max_threads();
    const char *blas_threads = getenv("OPENBLAS_NUM_THREADS");
    const char *omp_threads = getenv("OMP_NUM_THREADS");
    const bool from_omp = omp_threads != NULL;
    if (from_omp && !thread_count_text(omp_threads, true)) {
        fprintf(stderr, "cuvae: OMP_NUM_THREADS=%s: not a thread count (a positive integer, or a "
                        "comma-separated list of them); OpenMP would ignore it\n", omp_threads);
        exit(2);
    }
    if (!from_omp && blas_threads && !thread_count_text(blas_threads, false)) {
        fprintf(stderr, "cuvae: OPENBLAS_NUM_THREADS=%s: not a thread count (a positive integer); OpenBLAS "
                        "would ignore it\n", blas_threads);
        exit(2);
    }
    const char *thread_limit = getenv("OMP_THREAD_LIMIT");
    if (thread_limit && !thread_count_text(thread_limit, false)) {
        fprintf(stderr, "cuvae: OMP_THREAD_LIMIT=%s: not a thread count (a positive integer); OpenMP would ignore "
                        "it\n", thread_limit);
        exit(2);
    }
    if (!from_omp && blas_threads) threads = atoi(blas_threads);
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    long cap = cores > 0 ? MAX_THREADS_PER_CORE * cores : MIN_THREADS_CAP;
    if (cap < MIN_THREADS_CAP) cap = MIN_THREADS_CAP;
    if (threads > cap) {
        fprintf(stderr, "cuvae: %s=%s: the CPU backend's pool takes at most %ld threads here (%d a core on %ld "
                "cores, and at least %d); set fewer\n", from_omp ? "OMP_NUM_THREADS" : "OPENBLAS_NUM_THREADS",
                from_omp ? getenv("OMP_NUM_THREADS") : blas_threads, cap, MAX_THREADS_PER_CORE, cores,
                MIN_THREADS_CAP);
        exit(2);
    }
    // OMP_THREAD_LIMIT caps every parallel region's team; the pool is sized to it, so the banner,
    // the GEMMs' slices and oneDNN's pools count the threads that run
    if (threads > omp_get_thread_limit()) threads = omp_get_thread_limit();
    openblas_set_num_threads(1);
    omp_set_num_threads(threads);
    blas_is_openmp = openblas_get_parallel() == 2;   // 0 sequential, 1 pthreads, 2 OpenMP
    blas_splits_exact = backend_cpu_blas_splits_exact(openblas_get_corename());
}

// OpenBLAS (0.3.21, its allocator without thread-local storage) gives every GEMM running
// at once a work buffer of BLAS_BUFFER_BYTES and keeps it for later calls (so does its
// pthread build's own thread, at its start, unused by cuvae). When it cannot map one (an
// address-space limit, `ulimit -v`, or strict overcommit) it retries forever: the run spun
// at its first step at 100 % of every core. So the buffers are taken at the start, one for
// each pool thread (each may run a GEMM slice), after checking that the room exists for them
// and for OpenBLAS's own thread's (which may still be retrying): a run too big for its limit
// is refused in one line instead.
enum { BLAS_BUFFER_BYTES = 128 << 20 };   // 0.3.21's x86-64 builds
void *blas_memory_alloc(int procpos);     // exported by OpenBLAS (its common.h)
void blas_memory_free(void *buffer);

// The pool's threads, their stacks and their malloc arenas exist before any room is measured
// (reserve_blas_buffers) and before oneDNN's first parallel region: glibc maps a thread's
// arena at its first malloc (128 MiB of address space for a moment, 64 kept), and oneDNN's
// threads first malloc inside its parallel regions, where a failure ends the process (an
// exception in a worker thread, or a segfault).
static void create_pool_threads_and_arenas(void) {
    #pragma omp parallel num_threads(omp_get_max_threads())
    {
        void *volatile first = malloc(1);
        free(first);
    }
}

static void reserve_blas_buffers(void) {
    const int threads = omp_get_max_threads();
    const size_t bytes = (size_t)(threads + 1) * BLAS_BUFFER_BYTES;
    if (!address_space_free(bytes)) {
        const int why = errno;
        struct rlimit limit;
        if (getrlimit(RLIMIT_AS, &limit) == 0 && limit.rlim_cur != RLIM_INFINITY)
            fprintf(stderr, "cuvae: backend cpu: OpenBLAS needs a %d MiB work buffer for each of the %d threads and "
                    "one for its own (%.0f MiB of address space), and the process's address-space limit "
                    "(ulimit -v %llu) leaves no room for them; raise the limit or set fewer threads "
                    "(OMP_NUM_THREADS)\n", BLAS_BUFFER_BYTES >> 20, threads, bytes / 1048576.0,
                    (unsigned long long)limit.rlim_cur / 1024);
        else
            fprintf(stderr, "cuvae: backend cpu: cannot map OpenBLAS's work buffers (%d threads and its own, %d MiB "
                    "each): %s; set fewer threads (OMP_NUM_THREADS) or free memory\n", threads, BLAS_BUFFER_BYTES >> 20,
                    strerror(why));
        exit(CUVAE_EXIT_BAD_INPUT);
    }
    // every thread holds a buffer until all have one: OpenBLAS then keeps one for each
    #pragma omp parallel num_threads(threads)
    {
        void *buffer = blas_memory_alloc(0);
        #pragma omp barrier
        if (buffer) blas_memory_free(buffer);
    }
}

bool backend_cpu_blas_splits_exact(const char *core) {
    return core && (strcmp(core, "SkylakeX") == 0 || strcmp(core, "Cooperlake") == 0 ||
                    strcmp(core, "SapphireRapids") == 0);
}

int backend_cpu_threads(void) {
    return omp_get_max_threads();
}

// col2im_chunks: a chunk's columns take at most half of each thread's L2 (the other half for
// the GEMM's packed panels and col2im's phase planes), and its GEMM at least
// GEMM_SLICE_MIN_MNK multiply-adds, as a slice of a split GEMM: OpenBLAS's small-matrix
// kernels sum in another order, so with its SkylakeX-family kernels a chunk's GEMM entries
// are the whole batch's to the bit (its Haswell / Zen kernels round some columns
// differently: within rounding, as for the slices). On the 2-core AMD EPYC VM (L2 1 MiB a
// core), of the chunk sizes tried in the conv and VQ benches, 1 MiB of columns in all was
// the fastest, 5 % off the step (2 and 4 MiB no faster than no chunks; 0.5 MiB 4 % and
// 256 KiB 23 % slower than 1 MiB: more, smaller GEMMs).
enum { ASSUMED_L2_BYTES = 1 << 20 };

static size_t chunk_column_floats(void) {
    long l2 = 0;
#ifdef _SC_LEVEL2_CACHE_SIZE
    l2 = sysconf(_SC_LEVEL2_CACHE_SIZE);
#endif
    if (l2 <= 0) l2 = ASSUMED_L2_BYTES;
    return (size_t)l2 / 2 * (size_t)backend_cpu_threads() / sizeof(float);
}

static void cpu_conv_forward(Backend *be, float *y, const float *x, const float *W, const float *bias,
                             ConvGeometry g, int C_out, int B) {
    conv_library_forward(((CpuState *)be->impl)->conv_library, y, x, W, bias, g, C_out, B);
}
static void cpu_conv_backward_data(Backend *be, float *dx, const float *dy, const float *W, ConvGeometry g,
                                   int C_out, int B) {
    conv_library_backward_data(((CpuState *)be->impl)->conv_library, dx, dy, W, g, C_out, B);
}
static void cpu_conv_backward_weights(Backend *be, float *dW, float *dbias, const float *x, const float *dy,
                                      ConvGeometry g, int C_out, int B) {
    conv_library_backward_weights(((CpuState *)be->impl)->conv_library, dW, dbias, x, dy, g, C_out, B);
}

static int cpu_col2im_chunks(Backend *be, size_t floats_per_image, int inner, int B) {
    const size_t limit = ((CpuState *)be->impl)->chunk_column_floats;
    if (floats_per_image == 0 || inner <= 0 || floats_per_image * (size_t)B <= limit) return 1;
    const double image_mnk = (double)floats_per_image * inner;
    const int min_images = (int)ceil(GEMM_SLICE_MIN_MNK / image_mnk);
    size_t images = limit / floats_per_image;
    if (images < (size_t)min_images) images = (size_t)min_images;
    int chunks = (int)(((size_t)B + images - 1) / images);
    while (chunks > 1 && B / chunks < min_images) chunks--;
    return chunks < 1 ? 1 : chunks;
}

Backend *backend_cpu_create(void) {
    use_one_thread_pool();
    create_pool_threads_and_arenas();
    reserve_blas_buffers();
    flush_subnormals_to_zero();   // after the pool's size is set: every thread of it
    cpu_vector_math_init();
    Backend *be = xcalloc(1, sizeof(Backend));
    be->name = "cpu";
    be->updates_clear_gradients = true;
    be->collectives_without_mpi = false;   // (MPI's host collectives)
    be->impl = xcalloc(1, sizeof(CpuState));
    ((CpuState *)be->impl)->chunk_column_floats = chunk_column_floats();
    // the convolutions: oneDNN's where the build has it (the default) or "im2col": the layers'
    // own im2col / GEMM path (the GPU's, and the bits of builds before oneDNN)
    const char *conv_choice = getenv("CUVAE_CPU_CONV");
    if (conv_choice && strcmp(conv_choice, "onednn") != 0 && strcmp(conv_choice, "im2col") != 0) {
        fprintf(stderr, "cuvae: CUVAE_CPU_CONV: '%s' is not one of onednn, im2col\n", conv_choice);
        exit(2);
    }
    if (!conv_choice || strcmp(conv_choice, "onednn") == 0)
        ((CpuState *)be->impl)->conv_library = conv_library_create();
    if (conv_choice && strcmp(conv_choice, "onednn") == 0 && !((CpuState *)be->impl)->conv_library) {
        fprintf(stderr, "cuvae: CUVAE_CPU_CONV=onednn: this build has no oneDNN (built with ONEDNN=0 or "
                        "without libdnnl-dev); unset it, or CUVAE_CPU_CONV=im2col\n");
        exit(2);
    }
    snprintf(be->device_name, sizeof be->device_name, "CPU (OpenBLAS %s kernels, %s, %d thread%s)",
             openblas_get_corename(),
             ((CpuState *)be->impl)->conv_library ? "oneDNN convolutions" : "im2col convolutions",
             backend_cpu_threads(), backend_cpu_threads() == 1 ? "" : "s");
    if (((CpuState *)be->impl)->conv_library) {
        be->conv_forward = cpu_conv_forward;
        be->conv_backward_data = cpu_conv_backward_data;
        be->conv_backward_weights = cpu_conv_backward_weights;
    }
    be->alloc = cpu_alloc;
    be->free = cpu_free;
    be->upload = cpu_upload;
    be->download = cpu_download;
    be->copy = cpu_copy;
    be->zero = cpu_zero;
    be->synchronize = cpu_synchronize;
    be->peak_memory = cpu_peak_memory;
    be->memory_available = cpu_memory_available;
    be->destroy = cpu_destroy;
    be->gemm = cpu_gemm;
    be->configure = cpu_configure;
    be->step_begin = cpu_step_begin;
    be->step_end = cpu_step_end;
    be->run_step = cpu_run_step;
    be->drop_steps = cpu_drop_steps;
    be->graph_count = cpu_graph_count;
    be->fill_normal = cpu_fill_normal;
    be->fill_uniform = cpu_fill_uniform;
    be->gather_batch = cpu_gather_batch;
    be->bias_activation_forward = cpu_bias_activation_forward;
    be->activation_backward = cpu_activation_backward;
    be->bias_grad = cpu_bias_grad;
    be->activation_backward_bias_grad = cpu_activation_backward_bias_grad;
    be->reparam_forward = cpu_reparam_forward;
    be->draw_eps_ahead = cpu_draw_eps_ahead;
    be->kl_reparam_backward = cpu_kl_reparam_backward;
    be->kl_statistics = cpu_kl_statistics;
    be->kl_coefficients = cpu_kl_coefficients;
    be->gather_onehot = cpu_gather_onehot;
    be->importance_log_weight = cpu_importance_log_weight;
    be->reconstruction_loss = cpu_reconstruction_loss;
    be->accumulate_loss = cpu_accumulate_loss;
    be->adam_update = cpu_adam_update;
    be->sgd_update = cpu_sgd_update;
    be->queue_update = cpu_queue_update_op;
    be->finish_updates = cpu_finish_updates;
    be->grad_clip = cpu_grad_clip;
    be->all_reduce_sum = cpu_all_reduce_sum;
    be->activation_forward = cpu_activation_forward;
    be->activation_gradient = cpu_activation_gradient;
    be->multiply = cpu_multiply;
    be->add = cpu_add;
    be->categorical_loss = cpu_categorical_loss;
    be->codes_onehot = cpu_codes_onehot;
    be->select_slice = cpu_select_slice;
    be->mixture_prior = cpu_mixture_prior;
    be->im2col = cpu_im2col;
    be->col2im = cpu_col2im;
    be->col2im_chunks = cpu_col2im_chunks;
    be->swap_leading_axes = cpu_swap_leading_axes;
    be->channel_bias_forward = cpu_channel_bias_forward;
    be->channel_bias_grad = cpu_channel_bias_grad;
    be->batch_norm_forward = cpu_batch_norm_forward;
    be->batch_norm_backward = cpu_batch_norm_backward;
    be->vq_code_norms = cpu_vq_code_norms;
    be->vq_argmin = cpu_vq_argmin;
    be->vq_quantize = cpu_vq_quantize;
    be->vq_backward = cpu_vq_backward;
    be->vq_ema_update = cpu_vq_ema_update;
    be->vq_restart_dead = cpu_vq_restart_dead;
    return be;
}
