// test_cuemu.cpp: the emulated CUDA device tests itself. A correct kernel must
// give the right answer in every mode; each class of bug planted in a toy
// kernel (tests/cuemu/toy_kernels.cu) or in a runtime / cuBLAS call must be
// caught with a clear message naming the kernel and block: a barrier in
// divergent code, a shuffle reading a missing or returned lane, a deadlock, an
// out-of-bounds write (near, far, before the start, all-ones bits), use after
// free, a missing barrier between warps (visible as NaN), an invalid launch,
// synchronising or allocating during stream capture, a wrong leading
// dimension or transposition in a GEMM, and a kernel that never ends.
// Correct uses CUDA allows (collectives after lanes returned, __syncwarp at two
// places, shared arrays on one line) must pass. Bugs that end the process
// (faults, hangs) run in a forked child whose stderr is checked.
#include "test.h"
#include "cuemu.h"
#include "cuemu_fiber.h"

#include <cublas_v2.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdlib>
#include <string>
#include <vector>

extern "C" {
void toy_launch_block_sum(float *out, const float *in, int blocks, cudaStream_t s);
void toy_launch_read_uninitialised_shared(float *out, cudaStream_t s);
void toy_launch_barrier_after_return(float *out, cudaStream_t s);
void toy_launch_barrier_two_sites(float *out, cudaStream_t s);
void toy_launch_shuffle_missing_lane(float *out, cudaStream_t s);
void toy_launch_shuffle_returned_lane(float *out, cudaStream_t s);
void toy_launch_deadlock(float *out, cudaStream_t s);
void toy_launch_out_of_bounds_write(float *out, int n, int stride, cudaStream_t s);
void toy_launch_spin(int *flags, cudaStream_t s);
void toy_launch_increment(float *data, int n, cudaStream_t s);
void toy_launch_increment_config(float *data, int n, dim3 grid, dim3 block, cudaStream_t s);
void toy_launch_collectives_ok(float *out, cudaStream_t s);
void toy_launch_scale_by_3(float *x, int n, cudaStream_t s);
void toy_launch_missing_barrier(float *out, cudaStream_t s);
void toy_launch_shared_declarations(float *out, cudaStream_t s);
void toy_launch_underflow_write(float *out, int offset, cudaStream_t s);
void toy_launch_write_minus_one_past_end(int *out, int n, cudaStream_t s);
}

#if defined(__SANITIZE_ADDRESS__)
static const bool under_asan = true;
#else
static const bool under_asan = false;
#endif

static cudaStream_t stream;

static float *device_floats(size_t n) {
    void *p = NULL;
    cudaError_t e = cudaMalloc(&p, n * sizeof(float));
    if (e != cudaSuccess) {
        fprintf(stderr, "cudaMalloc failed: %s\n", cudaGetErrorString(e));
        exit(1);
    }
    return (float *)p;
}

static bool diagnostic_has(const char *a, const char *b = NULL, const char *c = NULL) {
    std::string d = cuemu_last_diagnostic();
    return d.find(a) != std::string::npos && (!b || d.find(b) != std::string::npos) &&
           (!c || d.find(c) != std::string::npos);
}

// Copies n floats back after the work queued on `stream` (a copy on the legacy
// stream would not wait for it: the stream is non-blocking).
static cudaError_t download(float *host, const float *dev, size_t n) {
    return cudaMemcpyAsync(host, dev, n * sizeof(float), cudaMemcpyDeviceToHost, stream);
}

// Runs a kernel that must be diagnosed: the sync returns `want`, the message has the parts.
static void expect_kernel_error(void (*launch)(float *, cudaStream_t), cudaError_t want,
                                const char *part1, const char *part2, const char *part3) {
    float *buf = device_floats(256);
    cuemu_clear_diagnostic();
    launch(buf, stream);
    CHECK(cudaGetLastError() == cudaSuccess, "the launch itself should succeed");
    cudaError_t e = cudaStreamSynchronize(stream);
    CHECK(e == want, "synchronize returned %s, want %s", cudaGetErrorName(e), cudaGetErrorName(want));
    CHECK(diagnostic_has(part1, part2, part3), "diagnostic lacks '%s' / '%s' / '%s': %s", part1,
          part2 ? part2 : "", part3 ? part3 : "", cuemu_last_diagnostic());
    CHECK(cudaStreamSynchronize(stream) == want, "the error is not sticky");
    cuemu_reset_sticky_error();
    cudaFree(buf);
}

// Runs fn in a forked child; returns its stderr; *status its wait status.
static std::string in_child(void (*fn)(void), int *status) {
    int fds[2];
    if (pipe(fds) != 0) return "";
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid == 0) {
        close(fds[0]);
        dup2(fds[1], 2);
        fn();
        fflush(stderr);
        _exit(0);
    }
    close(fds[1]);
    std::string out;
    char buf[4096];
    ssize_t n;
    while ((n = read(fds[0], buf, sizeof buf)) > 0) out.append(buf, (size_t)n);
    close(fds[0]);
    waitpid(pid, status, 0);
    return out;
}

static bool has(const std::string &s, const char *part) { return s.find(part) != std::string::npos; }

// ---- positive controls ---------------------------------------------------------

static void test_correct_reduction(void) {
    const int blocks = 5, n = blocks * 128;
    std::vector<float> host(n), sums(blocks);
    for (int i = 0; i < n; i++) host[i] = (float)(i % 7) - 2.5f;
    float *in = device_floats(n), *out = device_floats(blocks);
    cudaMemcpyAsync(in, host.data(), n * sizeof(float), cudaMemcpyHostToDevice, stream);
    toy_launch_block_sum(out, in, blocks, stream);
    CHECK(cudaGetLastError() == cudaSuccess, "launch failed");
    cudaMemcpyAsync(sums.data(), out, blocks * sizeof(float), cudaMemcpyDeviceToHost, stream);
    CHECK(cudaStreamSynchronize(stream) == cudaSuccess, "sync failed: %s", cuemu_last_diagnostic());
    for (int b = 0; b < blocks; b++) {
        double want = 0;
        for (int i = 0; i < 128; i++) want += host[b * 128 + i];
        CHECK(fabs(sums[b] - want) < 1e-3, "block %d: sum %g, want %g", b, sums[b], want);
    }
    cudaFree(in);
    cudaFree(out);
}

static void test_new_memory_is_nan(void) {
    float *buf = device_floats(64);
    std::vector<float> host(64, 0.0f);
    cudaMemcpy(host.data(), buf, 64 * sizeof(float), cudaMemcpyDeviceToHost);
    CHECK(std::isnan(host[0]) && std::isnan(host[63]), "cudaMalloc memory is not NaN-filled");
    toy_launch_read_uninitialised_shared(buf, stream);
    download(host.data(), buf, 64);
    CHECK(std::isnan(host[5]), "uninitialised __shared__ read %g, not NaN", host[5]);
    cudaFree(buf);
}

// Deferred mode: nothing runs before a synchronisation point.
static void test_deferred_until_sync(void) {
    if (!cuemu::settings().deferred) {
        test_skip("deferred_until_sync", "CUEMU_MODE=eager");
        return;
    }
    float *buf = device_floats(16);
    cudaMemsetAsync(buf, 0, 16 * sizeof(float), stream);
    toy_launch_increment(buf, 16, stream);
    CHECK(std::isnan(buf[3]), "work ran before synchronisation (read %g through the host view)", buf[3]);
    cudaStreamSynchronize(stream);
    CHECK(buf[3] == 1.0f, "after sync: %g, want 1", buf[3]);
    cudaFree(buf);
}

// A captured graph replays the launches with the arguments copied at capture.
static void test_graph_replay(void) {
    float *buf = device_floats(300);
    cudaMemsetAsync(buf, 0, 300 * sizeof(float), stream);
    int n = 300;
    CHECK(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal) == cudaSuccess, "begin capture");
    toy_launch_increment(buf, n, stream);
    n = 10;   // changed after the launch: the graph keeps 300
    cudaGraph_t graph = NULL;
    CHECK(cudaStreamEndCapture(stream, &graph) == cudaSuccess, "end capture");
    cudaGraphExec_t exec = NULL;
    CHECK(cudaGraphInstantiate(&exec, graph, 0) == cudaSuccess, "instantiate");
    std::vector<float> host(300);
    cudaMemcpyAsync(host.data(), buf, 300 * sizeof(float), cudaMemcpyDeviceToHost, stream);
    CHECK(host[299] == 0.0f, "capture ran the work (%g)", host[299]);
    for (int i = 0; i < 3; i++) cudaGraphLaunch(exec, stream);
    cudaMemcpyAsync(host.data(), buf, 300 * sizeof(float), cudaMemcpyDeviceToHost, stream);
    CHECK(host[0] == 3.0f && host[299] == 3.0f, "3 replays gave %g, %g", host[0], host[299]);
    cudaGraphExecDestroy(exec);
    cudaGraphDestroy(graph);
    cudaFree(buf);
    (void)n;
}

// Informational: what a thread costs (started and finished; and crossing 5
// shuffles and a barrier, each a switch out and back).
static void test_fiber_speed(void) {
    const int n = 64 * 1024;
    float *buf = device_floats(n), *sums = device_floats(n / 128);
    cudaMemsetAsync(buf, 0, n * sizeof(float), stream);
    cudaStreamSynchronize(stream);
    auto start = std::chrono::steady_clock::now();
    toy_launch_increment_config(buf, n, dim3(64), dim3(1024), stream);
    cudaStreamSynchronize(stream);
    double plain = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    start = std::chrono::steady_clock::now();
    toy_launch_block_sum(sums, buf, n / 128, stream);
    cudaStreamSynchronize(stream);
    double synced = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    fprintf(stderr, "  info: fibers (%s): %.0f ns per thread; %.0f ns per thread crossing 5 shuffles "
            "and a barrier\n", cuemu_fiber_kind(), 1e9 * plain / n, 1e9 * synced / n);
    CHECK(plain + synced < 20.0, "%d threads took %.1f s", n, plain + synced);
    cudaFree(buf);
    cudaFree(sums);
}

// Correct uses of warp collectives (CUDA's rules, not stricter ones).
static void test_collectives_accepted(void) {
    float *buf = device_floats(96);
    std::vector<float> out(96);
    cuemu_clear_diagnostic();
    toy_launch_collectives_ok(buf, stream);
    cudaError_t e = download(out.data(), buf, 96);
    CHECK(e == cudaSuccess, "correct collectives rejected: %s", cuemu_last_diagnostic());
    if (e != cudaSuccess) {
        cuemu_reset_sticky_error();
        cudaFree(buf);
        return;
    }
    float v1[32], v2[32];
    for (int l = 0; l < 32; l++) v1[l] = l >= 16 ? (float)(l + (l ^ 1)) : (float)l;
    for (int l = 0; l < 32; l++) v2[l] = v1[l] + v1[l ^ 2];
    int bad = 0;
    for (int l = 0; l < 32 && bad < 3; l++) {
        bool ok = out[l] == v2[l] && out[32 + l] == 105.0f && (l >= 20 || out[64 + l] == 20.0f + 1000.0f * v2[0]);
        CHECK(ok, "lane %d: shuffled %g (want %g), votes %g (want 105), after the return %g (want %g)", l,
              out[l], v2[l], out[32 + l], out[64 + l], 20.0f + 1000.0f * v2[0]);
        bad += !ok;
    }
    cuemu_reset_sticky_error();
    cudaFree(buf);
}

// Shared storage: per declaration (two on one line, static, template instances).
static void test_shared_declarations(void) {
    float *buf = device_floats(64);
    std::vector<float> out(64);
    toy_launch_shared_declarations(buf, stream);
    CHECK(download(out.data(), buf, 64) == cudaSuccess, "%s", cuemu_last_diagnostic());
    int bad = 0;
    for (int i = 0; i < 64 && bad < 3; i++) {
        int t = i % 32;
        float want = 21.0f + 100.0f * (31 - t) + 10.0f * 1e4f + 136.0f * 1e5f;
        CHECK(out[i] == want, "[%d] %.1f, want %.1f", i, out[i], want);
        bad += out[i] != want;
    }
    cudaFree(buf);
}

// A missing __syncthreads between warps shows up as NaN (unwritten shared memory).
static void test_missing_barrier_visible(void) {
    float *buf = device_floats(64);
    std::vector<float> out(64);
    toy_launch_missing_barrier(buf, stream);
    download(out.data(), buf, 64);
    int nan = 0;
    for (float v : out) nan += std::isnan(v);
    CHECK(nan == 32, "%d of 64 results NaN, want the 32 of the warp that ran first", nan);
    cudaFree(buf);
}

// Runtime rules: the legacy stream waits for blocking streams; cudaGetLastError
// returns the latest error; overlapping and overflowing ranges are refused.
static void test_runtime_rules(void) {
    cudaStream_t blocking;
    cudaStreamCreate(&blocking);
    float *buf = device_floats(256);
    std::vector<float> host(256);
    cudaMemsetAsync(buf, 0, 256 * sizeof(float), blocking);
    toy_launch_increment(buf, 256, blocking);
    cudaMemcpy(host.data(), buf, 256 * sizeof(float), cudaMemcpyDeviceToHost);   // legacy stream
    CHECK(host[255] == 1.0f, "the legacy stream did not wait for the blocking stream (%g)", host[255]);
    cudaStreamDestroy(blocking);
    toy_launch_scale_by_3(buf, 256, stream);   // a template kernel<float, 3>
    download(host.data(), buf, 256);
    CHECK(host[7] == 3.0f, "template kernel: %g, want 3", host[7]);

    toy_launch_increment_config(buf, 16, dim3(1), dim3(4096), stream);
    CHECK(cudaMemsetAsync(buf + 8, 0, (size_t)-4, stream) == cudaErrorInvalidValue,
          "a memset whose size wraps around accepted");
    CHECK(cudaGetLastError() == cudaErrorInvalidValue, "cudaGetLastError is not the latest error");
    CHECK(cudaMemcpyAsync(buf + 1, buf, 16, cudaMemcpyDeviceToDevice, stream) == cudaErrorInvalidValue,
          "an overlapping device-to-device copy accepted");
    cudaGetLastError();
    CHECK(cudaStreamSynchronize(stream) == cudaSuccess, "refused calls poisoned the stream");
    cudaFree(buf);
}

// ---- planted bugs ------------------------------------------------------------------

static void test_barrier_in_divergent_code(void) {
    expect_kernel_error(toy_launch_barrier_after_return, cudaErrorLaunchFailure,
                        "kernel toy_barrier_after_return", "block (0,0,0)", "has returned");
    expect_kernel_error(toy_launch_barrier_two_sites, cudaErrorLaunchFailure,
                        "kernel toy_barrier_two_sites", "different __syncthreads", "toy_kernels.cu:");
}

static void test_shuffle_missing_lane(void) {
    expect_kernel_error(toy_launch_shuffle_missing_lane, cudaErrorLaunchFailure,
                        "kernel toy_shuffle_missing_lane", "reads lane 16, which does not exist", "block (0,0,0)");
}

static void test_shuffle_returned_lane(void) {
    expect_kernel_error(toy_launch_shuffle_returned_lane, cudaErrorLaunchFailure,
                        "kernel toy_shuffle_returned_lane", "reads lane 16, which has returned", "__shfl_xor_sync");
}

static void test_deadlock(void) {
    expect_kernel_error(toy_launch_deadlock, cudaErrorLaunchFailure, "kernel toy_deadlock",
                        "deadlock", "__syncthreads");
}

static void child_near_out_of_bounds(void) {
    float *buf = device_floats(100);
    toy_launch_out_of_bounds_write(buf, 100, 1, stream);
    cudaError_t e = cudaStreamSynchronize(stream);
    fprintf(stderr, "sync returned %s\n", cudaGetErrorName(e));
}

static void child_far_out_of_bounds(void) {
    float *buf = device_floats(100);
    toy_launch_out_of_bounds_write(buf, 100, 4096, stream);
    cudaStreamSynchronize(stream);
}

static void child_use_after_free(void) {
    float *buf = device_floats(1 << 16);
    cudaFree(buf);
    toy_launch_increment(buf, 16, stream);
    cudaStreamSynchronize(stream);
}

// A host pointer handed to a kernel (say the host copy of a struct where the device copy was
// meant): a GPU without HMM faults on it; the emulator's memory is host memory, so it checks
// every pointer argument at the launch.
static void child_host_pointer(void) {
    static float host[16];
    toy_launch_increment(host, 16, stream);
    fprintf(stderr, "sync returned %s, host[3] = %g\n", cudaGetErrorName(cudaStreamSynchronize(stream)), host[3]);
}

static void test_host_pointer_argument(void) {
    int status = 0;
    std::string err = in_child(child_host_pointer, &status);
    CHECK(has(err, "kernel toy_increment") && has(err, "argument 1 is not device memory") &&
          has(err, "sync returned cudaErrorIllegalAddress, host[3] = 0"),
          "a host pointer argument not reported: %s", err.c_str());
}

static void test_out_of_bounds_write(void) {
    int status = 0;
    std::string err = in_child(child_near_out_of_bounds, &status);
    if (under_asan) {
        CHECK(has(err, "AddressSanitizer") && has(err, "heap-buffer-overflow"), "no ASan report: %s", err.c_str());
        CHECK(has(err, "happened in kernel toy_out_of_bounds_write"), "ASan report without the kernel: %s", err.c_str());
    } else {
        CHECK(has(err, "kernel toy_out_of_bounds_write") && has(err, "past its end"),
              "one float past the end not reported: %s", err.c_str());
        CHECK(has(err, "sync returned cudaErrorIllegalAddress"), "sync did not fail: %s", err.c_str());
    }
    err = in_child(child_far_out_of_bounds, &status);
    CHECK(!(WIFEXITED(status) && WEXITSTATUS(status) == 0), "a far out-of-bounds write did not end the process");
    if (under_asan) {
        CHECK(has(err, "AddressSanitizer") && has(err, "happened in kernel toy_out_of_bounds_write"),
              "no ASan report naming the kernel: %s", err.c_str());
    } else {
        CHECK(has(err, "invalid memory access") && has(err, "kernel toy_out_of_bounds_write") &&
              has(err, "block (") && has(err, "thread ("), "fault not reported with kernel, block, thread: %s",
              err.c_str());
    }
}

static void child_underflow(void) {
    float *buf = device_floats(100);
    toy_launch_underflow_write(buf, 100, stream);   // 400 bytes before the start
    fprintf(stderr, "sync returned %s\n", cudaGetErrorName(cudaStreamSynchronize(stream)));
}

static void child_minus_one_past_end(void) {
    int *buf = (int *)device_floats(10);
    toy_launch_write_minus_one_past_end(buf, 10, stream);
    fprintf(stderr, "sync returned %s\n", cudaGetErrorName(cudaStreamSynchronize(stream)));
}

// Without ASan (which watches bounds itself): writes far before the start, and a
// write of all-ones bits past the end, are caught by the canaries.
static void test_canaries(void) {
    if (under_asan) {
        test_skip("canaries", "ASan checks bounds itself (see out_of_bounds_write)");
        return;
    }
    int status = 0;
    std::string err = in_child(child_underflow, &status);
    CHECK(has(err, "kernel toy_underflow_write") && has(err, "400 bytes before the start") &&
          has(err, "sync returned cudaErrorIllegalAddress"), "underflow not reported: %s", err.c_str());
    err = in_child(child_minus_one_past_end, &status);
    CHECK(has(err, "kernel toy_write_minus_one_past_end") && has(err, "past its end") &&
          has(err, "sync returned cudaErrorIllegalAddress"), "-1 past the end not reported: %s", err.c_str());
}

static void test_use_after_free(void) {
    int status = 0;
    std::string err = in_child(child_use_after_free, &status);
    CHECK(!(WIFEXITED(status) && WEXITSTATUS(status) == 0), "use after free did not end the process");
    if (under_asan)
        CHECK(has(err, "heap-use-after-free") && has(err, "kernel toy_increment"), "%s", err.c_str());
    else
        CHECK(has(err, "kernel toy_increment") && has(err, "freed"), "use after free not named: %s", err.c_str());
}

static void test_invalid_launch(void) {
    float *buf = device_floats(16);
    const dim3 blocks[3] = {dim3(2048), dim3(1, 1, 65), dim3(0)};
    for (int i = 0; i < 3; i++) {
        cuemu_clear_diagnostic();
        toy_launch_increment_config(buf, 16, dim3(1), blocks[i], stream);
        cudaError_t e = cudaGetLastError();
        CHECK(e == cudaErrorInvalidConfiguration, "block (%u,%u,%u): %s", blocks[i].x, blocks[i].y,
              blocks[i].z, cudaGetErrorName(e));
        CHECK(cudaGetLastError() == cudaSuccess, "cudaGetLastError did not reset");
        CHECK(diagnostic_has("kernel toy_increment", "toy_kernels.cu:"), "%s", cuemu_last_diagnostic());
    }
    toy_launch_increment_config(buf, 16, dim3(0), dim3(32), stream);
    CHECK(cudaGetLastError() == cudaErrorInvalidConfiguration, "grid 0 accepted");
    CHECK(cudaStreamSynchronize(stream) == cudaSuccess, "an invalid launch must not poison the stream");
    cudaFree(buf);
}

static void test_capture_rules(void) {
    float *buf = device_floats(16);
    const char *what[3] = {"cudaStreamSynchronize", "cudaMalloc", "pageable"};
    for (int i = 0; i < 3; i++) {
        cuemu_clear_diagnostic();
        CHECK(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal) == cudaSuccess, "begin");
        toy_launch_increment(buf, 16, stream);
        cudaError_t e;
        void *p = NULL;
        float host[4] = {0, 0, 0, 0};
        if (i == 0) e = cudaStreamSynchronize(stream);
        else if (i == 1) e = cudaMalloc(&p, 64);
        else e = cudaMemcpyAsync(buf, host, sizeof host, cudaMemcpyHostToDevice, stream);
        CHECK(e == cudaErrorStreamCaptureUnsupported, "%s during capture: %s", what[i], cudaGetErrorName(e));
        CHECK(diagnostic_has(what[i], "capturing"), "%s", cuemu_last_diagnostic());
        cudaGraph_t graph = NULL;
        e = cudaStreamEndCapture(stream, &graph);
        CHECK(e == cudaErrorStreamCaptureInvalidated && graph == NULL, "end capture after %s: %s",
              what[i], cudaGetErrorName(e));
        cudaGetLastError();
    }
    cudaFree(buf);
}

static void test_gemm_arguments(void) {
    cublasHandle_t h;
    cublasCreate(&h);
    cublasSetStream(h, stream);
    const int m = 8, n = 6, k = 5;
    float *A = device_floats(m * k), *B = device_floats(k * n), *C = device_floats(m * n);
    const float alpha = 1.0f, beta = 0.0f;
    // correct: column-major A (m x k, lda m), B (k x n, ldb k), C (m x n, ldc m)
    std::vector<float> a(m * k, 1.0f), b(k * n, 2.0f), c(m * n);
    cudaMemcpyAsync(A, a.data(), a.size() * 4, cudaMemcpyHostToDevice, stream);
    cudaMemcpyAsync(B, b.data(), b.size() * 4, cudaMemcpyHostToDevice, stream);
    CHECK(cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_N, m, n, k, &alpha, A, m, B, k, &beta, C, m) ==
          CUBLAS_STATUS_SUCCESS, "a correct GEMM failed: %s", cuemu_last_diagnostic());
    cudaMemcpyAsync(c.data(), C, c.size() * 4, cudaMemcpyDeviceToHost, stream);
    CHECK(c[0] == 10.0f && c[m * n - 1] == 10.0f, "GEMM result %g (C was NaN, beta 0: C must not be read)", c[0]);
    // leading dimension below the rows: refused like cuBLAS
    cuemu_clear_diagnostic();
    CHECK(cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_N, m, n, k, &alpha, A, m - 1, B, k, &beta, C, m) ==
          CUBLAS_STATUS_INVALID_VALUE, "lda < m accepted");
    CHECK(diagnostic_has("lda 7", "invalid argument"), "%s", cuemu_last_diagnostic());
    // a transposition mistake: A read as (k x m) with lda m runs past its allocation
    cuemu_clear_diagnostic();
    CHECK(cublasSgemm(h, CUBLAS_OP_T, CUBLAS_OP_N, m, n, k + 3, &alpha, A, k + 3, B, k + 3, &beta, C, m) ==
          CUBLAS_STATUS_INVALID_VALUE, "an operand past its allocation accepted");
    CHECK(diagnostic_has("operand A", "past its end"), "%s", cuemu_last_diagnostic());
    cudaStreamSynchronize(stream);
    cudaFree(A);
    cudaFree(B);
    cudaFree(C);
    cublasDestroy(h);
}

static void child_spin(void) {
    setenv("CUEMU_TIMEOUT", "1", 1);
    int *flags = NULL;
    cudaMalloc((void **)&flags, 2 * sizeof(int));
    cudaMemset(flags, 0, 2 * sizeof(int));
    toy_launch_spin(flags, stream);
    cudaStreamSynchronize(stream);
}

static void test_hang_is_reported(void) {
    if (under_asan) {   // the watchdog's timing is the same code; once is enough
        test_skip("hang_is_reported", "run in the build without sanitizers");
        return;
    }
    int status = 0;
    auto start = std::chrono::steady_clock::now();
    std::string err = in_child(child_spin, &status);
    double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    CHECK(has(err, "kernel toy_spin") && has(err, "no thread has made progress"), "no hang report: %s", err.c_str());
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) != 0, "the hung child did not exit non-zero");
    CHECK(s < 30.0, "the hang took %.0f s to report", s);
}

int main(void) {
    test_label = under_asan ? " (emulated CUDA, ASan + UBSan)" : " (emulated CUDA)";
    int devices = 0;
    if (cudaGetDeviceCount(&devices) != cudaSuccess || devices != 1) {
        test_run("emulated_device_present", [] { CHECK(0, "the emulator reports no device"); });
        return test_finish("test_cuemu");
    }
    if (cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking) != cudaSuccess) return 1;
    test_run("correct_reduction", test_correct_reduction);
    test_run("new_memory_is_nan", test_new_memory_is_nan);
    test_run("deferred_until_sync", test_deferred_until_sync);
    test_run("graph_replay", test_graph_replay);
    test_run("fiber_speed", test_fiber_speed);
    test_run("collectives_accepted", test_collectives_accepted);
    test_run("shared_declarations", test_shared_declarations);
    test_run("missing_barrier_visible", test_missing_barrier_visible);
    test_run("runtime_rules", test_runtime_rules);
    test_run("barrier_in_divergent_code", test_barrier_in_divergent_code);
    test_run("shuffle_missing_lane", test_shuffle_missing_lane);
    test_run("shuffle_returned_lane", test_shuffle_returned_lane);
    test_run("deadlock", test_deadlock);
    test_run("out_of_bounds_write", test_out_of_bounds_write);
    test_run("canaries", test_canaries);
    test_run("use_after_free", test_use_after_free);
    test_run("host_pointer_argument", test_host_pointer_argument);
    test_run("invalid_launch", test_invalid_launch);
    test_run("capture_rules", test_capture_rules);
    test_run("gemm_arguments", test_gemm_arguments);
    test_run("hang_is_reported", test_hang_is_reported);
    cudaStreamDestroy(stream);
    return test_finish("test_cuemu");
}
