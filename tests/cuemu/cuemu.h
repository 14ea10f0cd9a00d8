// cuemu.h: the emulated CUDA device's internal interface, between the
// device-side header force-included into kernels (cuemu_device.h), the kernel
// scheduler (cuemu_scheduler.cpp), device memory (cuemu_memory.cpp), the
// runtime API (cuemu_runtime.cpp) and cuBLAS (cuemu_cublas.cpp). C++ only.
// Nothing here is part of the shipped cuvae binary: the emulator exists so
// that `make test` runs the real kernels/*.cu and src/backend_cuda.c on a
// machine without a GPU (README, "Testing without a GPU").
#ifndef CUEMU_H
#define CUEMU_H

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>

// CUEMU_ASAN: built with AddressSanitizer (SANITIZE=1)
#if defined(__SANITIZE_ADDRESS__)
#define CUEMU_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define CUEMU_ASAN 1
#endif
#endif

namespace cuemu {

// ---- settings (environment, read once) -----------------------------------
// CUEMU_MODE=deferred (default) | eager: stream work runs at the next
//   synchronisation point, or at the call.
// CUEMU_ORDER=forward (default) | reverse: the order blocks (and the threads
//   of a block) are run in.
// CUEMU_TIMEOUT=seconds (default 120): a kernel launch running longer is
//   reported as a hang and the process ends.
struct Settings {
    bool deferred;
    bool reverse_order;
};
const Settings &settings();
// CUEMU_TIMEOUT, read when a process starts its watchdog (a forked child may set its own); a value
// that is not a number of seconds above 0 is said and 120 used.
double timeout_seconds_from_env();

// ---- diagnostics ------------------------------------------------------------
// Prints "cuemu: <message>" on stderr as one line and remembers it
// (last_diagnostic) for the emulator's self-test.
void report(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
const std::string &last_diagnostic();

// Where the running kernel is, for messages printed from signal handlers and
// sanitizer callbacks: "kernel K (file:line) block (x,y,z) thread (x,y,z)",
// or "" outside kernels.
std::string current_kernel_context();

// ---- kernels -------------------------------------------------------------
// One CUDA thread of a launch: the kernel called with the launch's arguments.
using KernelBody = std::function<void()>;

struct KernelLaunch {
    const char *name;   // the kernel's name as written at the launch
    const char *file;   // where the launch is (kernels/X.cu through #line)
    int line;
    dim3 grid, block;
    size_t dynamic_shared_bytes;
    KernelBody body;
    std::string bad_argument;   // a pointer argument outside device memory (faults when the kernel runs)
};

// Validates the configuration like the hardware (cudaErrorInvalidConfiguration,
// cudaErrorInvalidValue for shared memory) and enqueues the launch on the stream.
// Returns the error cudaGetLastError will report.
cudaError_t launch_kernel(const KernelLaunch &launch, cudaStream_t stream);

// Runs every block of a launch now. On a diagnosed bug: report(), then returns
// the sticky error the runtime must adopt (cudaErrorLaunchFailure).
cudaError_t run_kernel(const KernelLaunch &launch);

// Device-side operations, called from kernel code on a fiber.
void syncthreads(const char *file, int line);

enum WarpOpKind { WARP_SHFL_IDX, WARP_SHFL_UP, WARP_SHFL_DOWN, WARP_SHFL_XOR, WARP_SYNC,
                  WARP_BALLOT, WARP_ANY, WARP_ALL };
// Collective over the lanes in `mask`: every lane of the mask must arrive at
// the same call with the same mask. Returns the lane's result (the value
// read from the source lane for shuffles; the vote for ballot/any/all).
uint64_t warp_op(WarpOpKind kind, unsigned mask, uint64_t value, int arg, int width,
                 const char *file, int line);

// The block's storage for the __shared__ declaration identified by `key` (the
// address of a static of its own, so each declaration and each template
// instance has its storage): the first thread to reach it allocates it,
// NaN-filled; it is freed when the block ends. file:line name it in messages.
void *shared_alloc(size_t bytes, size_t align, const void *key, const char *file, int line);
void *dynamic_shared();   // extern __shared__ storage: the launch's dynamic bytes

// The builtin variables of the running thread (set by the scheduler before it
// resumes a thread).
extern thread_local uint3 current_thread_idx;
extern thread_local uint3 current_block_idx;
extern thread_local dim3 current_block_dim;
extern thread_local dim3 current_grid_dim;

// ---- device memory (cuemu_memory.cpp) ---------------------------------------
// cudaMalloc'd memory: 256-byte aligned, NaN bytes (0xFF) when new. Without
// AddressSanitizer each allocation ends just before an inaccessible page and
// the few bytes between its end and that page hold a canary checked after
// every kernel; with it, it is an ordinary heap block ASan watches.
void *device_alloc(size_t bytes);
// 0 on success; -1 if ptr is not the start of a live allocation.
int device_free(void *ptr);
// True if [ptr, ptr + bytes) lies inside one live allocation. Otherwise false,
// with a description of what it overlaps in `why`.
bool device_range_ok(const void *ptr, size_t bytes, std::string *why);
bool is_device_pointer(const void *ptr);
// A kernel's pointer argument: NULL, or inside (or one past the end of) a live allocation.
// Otherwise false, with what the address is in `why` (a host pointer, freed memory, ...).
bool kernel_pointer_ok(const void *ptr, std::string *why);
// Checks every allocation's canary; reports the first damaged one (naming
// `culprit`) and returns false.
bool device_canaries_ok(const char *culprit);
// Describes an address for a fault message: inside, past the end of, or
// freed from which allocation.
std::string describe_address(const void *address);
// Installs the SIGSEGV/SIGBUS handler that names the kernel, block and thread.
void install_fault_handler();

// ---- streams (cuemu_runtime.cpp) ----------------------------------------------
// An operation on a stream: run later (deferred), at once (eager), or recorded
// into a graph while the stream captures. Returns cudaSuccess or a sticky error.
using StreamOp = std::function<cudaError_t()>;
cudaError_t stream_enqueue(cudaStream_t stream, const char *what, StreamOp op);
// cudaErrorStreamCaptureUnsupported (and invalidates the capture) if the
// stream, or with a global-mode capture any stream, is capturing.
cudaError_t forbid_during_capture(cudaStream_t stream, const char *what);
// The stream operation being run now ("cudaMemsetAsync", a kernel's name), or NULL.
const char *current_stream_operation();

}   // namespace cuemu

extern "C" {
// For the self-test (tests/cuemu/test_cuemu.cpp) and the banner.
const char *cuemu_last_diagnostic(void);
void cuemu_clear_diagnostic(void);
// Clears a sticky error so the self-test can continue after a planted bug.
void cuemu_reset_sticky_error(void);
}

#endif
