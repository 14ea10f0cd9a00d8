// cuemu_runtime.cpp: the CUDA runtime API calls cuvae makes, for the emulated
// device, compiled against the real cuda_runtime_api.h (so every signature is
// the toolkit's). Streams are in-order queues of operations, run at the call
// (CUEMU_MODE=eager) or at the next synchronisation point (deferred, the
// default: work read before it was waited for shows up). Stream capture
// records the operations (kernel arguments copied at the launch) into a graph
// that cudaGraphLaunch replays; what real CUDA forbids while a capture is
// open (synchronising, cudaMalloc/cudaFree, copies to or from pageable host
// memory) fails here with the same error and invalidates the capture.
// Errors follow CUDA's rules: launch-configuration errors are returned once by
// cudaGetLastError; a fault inside a kernel is sticky and every later call
// returns it. The legacy default stream synchronises with the blocking streams
// (those created without cudaStreamNonBlocking), both ways.
#include "cuemu.h"
#include "cuemu_fiber.h"

#include <cmath>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <memory>
#include <set>
#include <string>
#include <vector>

namespace {

struct PendingOp {
    const char *what;
    cuemu::StreamOp run;
};

}   // namespace

struct CUstream_st {
    std::deque<PendingOp> queue;
    unsigned flags;
    bool capturing;
    bool capture_invalidated;
    cudaStreamCaptureMode capture_mode;
    struct CUgraph_st *capture_graph;
};

struct CUgraph_st {
    std::vector<PendingOp> ops;
};

struct CUgraphExec_st {
    std::vector<PendingOp> ops;
};

namespace cuemu {

// ---- settings and diagnostics ---------------------------------------------------

const Settings &settings() {
    static Settings s;
    static bool read = false;
    if (!read) {
        read = true;
        const char *mode = getenv("CUEMU_MODE");
        s.deferred = !(mode && strcmp(mode, "eager") == 0);
        if (mode && strcmp(mode, "eager") != 0 && strcmp(mode, "deferred") != 0)
            fprintf(stderr, "cuemu: CUEMU_MODE=%s is neither eager nor deferred; using deferred\n", mode);
        const char *order = getenv("CUEMU_ORDER");
        s.reverse_order = order && strcmp(order, "reverse") == 0;
        if (order && strcmp(order, "reverse") != 0 && strcmp(order, "forward") != 0)
            fprintf(stderr, "cuemu: CUEMU_ORDER=%s is neither forward nor reverse; using forward\n", order);
    }
    return s;
}

double timeout_seconds_from_env() {
    const char *timeout = getenv("CUEMU_TIMEOUT");
    char *end = nullptr;
    const double seconds = timeout ? strtod(timeout, &end) : 0.0;
    const bool valid = timeout && end != timeout && *end == '\0' && std::isfinite(seconds) && seconds > 0;
    if (timeout && !valid)   // (0 is no "no timeout": a hung kernel would hang the test run)
        fprintf(stderr, "cuemu: CUEMU_TIMEOUT=%s is not a number of seconds above 0; using 120\n", timeout);
    return valid ? seconds : 120.0;
}

namespace {
std::string last_message;
}

void report(const char *fmt, ...) {
    char buf[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    for (char *c = buf; *c; c++)
        if (*c == '\n') *c = ' ';   // one line
    last_message = buf;
    fprintf(stderr, "cuemu: %s\n", buf);
    fflush(stderr);
}

const std::string &last_diagnostic() { return last_message; }

// ---- errors -------------------------------------------------------------------------

namespace {

cudaError_t sticky_error = cudaSuccess;   // a fault in a kernel: every call returns it
const char *running_operation = NULL;     // the stream operation running now (fault messages)
cudaError_t last_error = cudaSuccess;     // what cudaGetLastError returns next

cudaError_t fail(cudaError_t error) {
    if (error != cudaSuccess) last_error = error;
    return error;
}

void become_sticky(cudaError_t error) {
    if (sticky_error == cudaSuccess) sticky_error = error;
    fail(error);
}

// ---- streams ----------------------------------------------------------------------

CUstream_st legacy_stream = {};
std::set<CUstream_st *> live_streams;

CUstream_st *stream_of(cudaStream_t stream) {
    // cudaStreamLegacy (0x1) and cudaStreamPerThread (0x2) are the default stream here
    if (stream == NULL || stream == cudaStreamLegacy || stream == cudaStreamPerThread)
        return &legacy_stream;
    if (!live_streams.count(stream)) return NULL;
    return stream;
}

cudaError_t drain(CUstream_st *s) {
    while (!s->queue.empty()) {
        PendingOp op = std::move(s->queue.front());
        s->queue.pop_front();
        if (sticky_error != cudaSuccess) continue;   // a failed context runs nothing more
        running_operation = op.what;
        cudaError_t e = op.run();
        running_operation = NULL;
        if (e != cudaSuccess) become_sticky(e);
    }
    return sticky_error;
}

bool is_blocking(const CUstream_st *s) { return s != &legacy_stream && !(s->flags & cudaStreamNonBlocking); }

// Work on the legacy default stream waits for the blocking streams, and work on
// a blocking stream waits for the legacy stream: what must run first runs now.
void implicit_synchronisation(CUstream_st *s) {
    if (s == &legacy_stream) {
        for (CUstream_st *other : live_streams)
            if (is_blocking(other)) drain(other);
    } else if (is_blocking(s)) {
        drain(&legacy_stream);
    }
}

cudaError_t drain_all() {
    drain(&legacy_stream);
    for (CUstream_st *s : live_streams) drain(s);
    return sticky_error;
}

CUstream_st *capturing_stream() {
    if (legacy_stream.capturing) return &legacy_stream;
    for (CUstream_st *s : live_streams)
        if (s->capturing) return s;
    return NULL;
}

void invalidate_capture(CUstream_st *s) {
    s->capture_invalidated = true;
}

bool banner_printed = false;

// CUEMU_STATS=1: counts printed at exit (the end-to-end test checks that graphs replayed)
struct Stats {
    unsigned long kernels_run, graphs_captured, graph_launches, ops_replayed;
} stats;

void print_stats() {
    fprintf(stderr, "cuemu: stats: %lu kernels run, %lu graphs captured, %lu graph launches "
            "(%lu operations replayed)\n", stats.kernels_run, stats.graphs_captured,
            stats.graph_launches, stats.ops_replayed);
}

void print_banner() {
    if (banner_printed) return;
    banner_printed = true;
    const Settings &s = settings();
    fprintf(stderr,
            "cuemu: the CUDA device is EMULATED on the CPU (tests/cuemu; streams %s, blocks in %s order, "
            "fibers: %s). Checked: launch limits, __syncthreads and warp collectives, device memory "
            "bounds, stream order, graph capture rules, cuBLAS arguments. Not checked: data races and "
            "the memory model, the GPU's math ulps and FMA contraction, cuBLAS blocking/split-K numerics, "
            "occupancy and speed, host code reading device memory. Real-GPU runs remain the reference.\n",
            s.deferred ? "deferred" : "eager", s.reverse_order ? "reverse" : "forward",
            cuemu_fiber_kind());
}

}   // namespace

const char *current_stream_operation() { return running_operation; }

cudaError_t stream_enqueue(cudaStream_t stream, const char *what, StreamOp op) {
    if (sticky_error != cudaSuccess) return fail(sticky_error);
    CUstream_st *s = stream_of(stream);
    if (!s) {
        report("%s on a stream that does not exist (destroyed?)", what);
        return fail(cudaErrorInvalidResourceHandle);
    }
    if (s->capturing) {
        if (s->capture_invalidated) return fail(cudaErrorStreamCaptureInvalidated);
        s->capture_graph->ops.push_back(PendingOp{what, std::move(op)});
        return cudaSuccess;
    }
    if (s == &legacy_stream) {
        // the legacy stream would wait for a capturing blocking stream: CUDA refuses
        for (CUstream_st *other : live_streams) {
            if (other->capturing && is_blocking(other)) {
                report("%s on the legacy default stream while a blocking stream captures a graph "
                       "(cudaErrorStreamCaptureImplicit; the capture is invalidated)", what);
                invalidate_capture(other);
                return fail(cudaErrorStreamCaptureImplicit);
            }
        }
    }
    implicit_synchronisation(s);
    if (!settings().deferred) {
        cudaError_t e = op();
        if (e != cudaSuccess) become_sticky(e);
        return fail(e);
    }
    s->queue.push_back(PendingOp{what, std::move(op)});
    return cudaSuccess;
}

cudaError_t forbid_during_capture(cudaStream_t stream, const char *what) {
    CUstream_st *own = stream_of(stream);
    CUstream_st *c = capturing_stream();
    bool forbidden = (own && own->capturing) ||
                     (c && c->capture_mode != cudaStreamCaptureModeRelaxed);
    if (!forbidden) return cudaSuccess;
    CUstream_st *victim = own && own->capturing ? own : c;
    report("%s while a stream is capturing a graph: not permitted "
           "(cudaErrorStreamCaptureUnsupported; the capture is invalidated)", what);
    invalidate_capture(victim);
    return fail(cudaErrorStreamCaptureUnsupported);
}

cudaError_t launch_kernel(const KernelLaunch &launch, cudaStream_t stream) {
    const dim3 b = launch.block, g = launch.grid;
    const unsigned long long threads = (unsigned long long)b.x * b.y * b.z;
    const char *bad = NULL;
    if (b.x == 0 || b.y == 0 || b.z == 0) bad = "a block dimension is 0";
    else if (b.x > 1024 || b.y > 1024 || b.z > 64) bad = "a block dimension is above its limit (1024, 1024, 64)";
    else if (threads > 1024) bad = "more than 1024 threads per block";
    else if (g.x == 0 || g.y == 0 || g.z == 0) bad = "a grid dimension is 0";
    else if (g.x > 2147483647u || g.y > 65535 || g.z > 65535) bad = "a grid dimension is above its limit (2^31 - 1, 65535, 65535)";
    if (bad) {
        report("kernel %s (launched at %s:%d) with grid (%u,%u,%u) block (%u,%u,%u): %s "
               "(cudaErrorInvalidConfiguration)", launch.name, launch.file, launch.line, g.x, g.y,
               g.z, b.x, b.y, b.z, bad);
        return fail(cudaErrorInvalidConfiguration);
    }
    if (launch.dynamic_shared_bytes > 48 * 1024) {
        report("kernel %s (launched at %s:%d): %zu bytes of dynamic shared memory, more than 48 KiB "
               "without cudaFuncSetAttribute (cudaErrorInvalidValue)", launch.name, launch.file,
               launch.line, launch.dynamic_shared_bytes);
        return fail(cudaErrorInvalidValue);
    }
    KernelLaunch copy = launch;
    return stream_enqueue(stream, launch.name, [copy]() {
        stats.kernels_run++;
        return run_kernel(copy);
    });
}

}   // namespace cuemu

using namespace cuemu;

extern "C" {

const char *cuemu_last_diagnostic(void) { return last_diagnostic().c_str(); }
void cuemu_clear_diagnostic(void) { const_cast<std::string &>(last_diagnostic()).clear(); }
void cuemu_reset_sticky_error(void) {
    sticky_error = cudaSuccess;
    last_error = cudaSuccess;
    legacy_stream.queue.clear();
    for (CUstream_st *s : live_streams) s->queue.clear();
}

// ---- errors ---------------------------------------------------------------------

const char *cudaGetErrorString(cudaError_t error) {
    switch (error) {
    case cudaSuccess: return "no error";
    case cudaErrorInvalidValue: return "invalid argument";
    case cudaErrorMemoryAllocation: return "out of memory";
    case cudaErrorInvalidConfiguration: return "invalid configuration argument";
    case cudaErrorLaunchFailure: return "unspecified launch failure";
    case cudaErrorIllegalAddress: return "an illegal memory access was encountered";
    case cudaErrorNoDevice: return "no CUDA-capable device is detected";
    case cudaErrorInvalidDevice: return "invalid device ordinal";
    case cudaErrorInvalidResourceHandle: return "invalid resource handle";
    case cudaErrorIllegalState: return "the operation cannot be performed in the present state";
    case cudaErrorStreamCaptureUnsupported: return "operation not permitted when stream is capturing";
    case cudaErrorStreamCaptureInvalidated: return "operation failed due to a previous error during capture";
    case cudaErrorStreamCaptureUnmatched: return "capture was not initiated in this stream";
    case cudaErrorStreamCaptureImplicit: return "operation would make the legacy stream depend on a capturing blocking stream";
    default: return "unknown error (cuemu has no text for this code)";
    }
}

const char *cudaGetErrorName(cudaError_t error) {
    switch (error) {
    case cudaSuccess: return "cudaSuccess";
    case cudaErrorInvalidValue: return "cudaErrorInvalidValue";
    case cudaErrorMemoryAllocation: return "cudaErrorMemoryAllocation";
    case cudaErrorInvalidConfiguration: return "cudaErrorInvalidConfiguration";
    case cudaErrorLaunchFailure: return "cudaErrorLaunchFailure";
    case cudaErrorIllegalAddress: return "cudaErrorIllegalAddress";
    case cudaErrorNoDevice: return "cudaErrorNoDevice";
    case cudaErrorInvalidDevice: return "cudaErrorInvalidDevice";
    case cudaErrorInvalidResourceHandle: return "cudaErrorInvalidResourceHandle";
    case cudaErrorIllegalState: return "cudaErrorIllegalState";
    case cudaErrorStreamCaptureUnsupported: return "cudaErrorStreamCaptureUnsupported";
    case cudaErrorStreamCaptureInvalidated: return "cudaErrorStreamCaptureInvalidated";
    case cudaErrorStreamCaptureUnmatched: return "cudaErrorStreamCaptureUnmatched";
    case cudaErrorStreamCaptureImplicit: return "cudaErrorStreamCaptureImplicit";
    default: return "cudaErrorUnknown";
    }
}

cudaError_t cudaGetLastError(void) {
    if (sticky_error != cudaSuccess) return sticky_error;
    cudaError_t e = last_error;
    last_error = cudaSuccess;
    return e;
}

cudaError_t cudaPeekAtLastError(void) {
    return sticky_error != cudaSuccess ? sticky_error : last_error;
}

// ---- device --------------------------------------------------------------------

// CUEMU_DRIVER_VERSION=N (e.g. 12040): the driver reports CUDA N; below this runtime's
// version, cudaGetDeviceCount fails as with a real driver too old for the toolkit
// (cudaErrorInsufficientDriver), for the tests of that message. 0: no driver installed (the
// real runtime's answer then is cudaErrorInsufficientDriver as well, with version 0).
static int emulated_driver_version(void) {
    const char *text = getenv("CUEMU_DRIVER_VERSION");
    return text && *text ? atoi(text) : CUDART_VERSION;
}

cudaError_t cudaDriverGetVersion(int *version) {
    *version = emulated_driver_version();
    return cudaSuccess;
}

cudaError_t cudaRuntimeGetVersion(int *version) {
    *version = CUDART_VERSION;
    return cudaSuccess;
}

cudaError_t cudaGetDeviceCount(int *count) {
    if (emulated_driver_version() < CUDART_VERSION) {
        *count = 0;
        return fail(cudaErrorInsufficientDriver);
    }
    const char *require = getenv("CUVAE_REQUIRE_CUDA");
    if (require && strcmp(require, "1") == 0) {
        *count = 0;
        if (!banner_printed) {
            banner_printed = true;
            fprintf(stderr, "cuemu: CUVAE_REQUIRE_CUDA=1: the emulated CUDA device does not stand in "
                    "for a GPU; reporting no device\n");
        }
        return fail(cudaErrorNoDevice);
    }
    print_banner();
    install_fault_handler();
    static bool stats_registered = false;
    const char *want_stats = getenv("CUEMU_STATS");
    if (!stats_registered && want_stats && strcmp(want_stats, "1") != 0 && strcmp(want_stats, "0") != 0 &&
        want_stats[0]) {
        stats_registered = true;   // (said once)
        fprintf(stderr, "cuemu: CUEMU_STATS=%s is neither 1 nor 0; no statistics\n", want_stats);
    }
    if (!stats_registered && want_stats && strcmp(want_stats, "1") == 0) {
        stats_registered = true;
        atexit(print_stats);
    }
    *count = 1;
    return cudaSuccess;
}

cudaError_t cudaSetDevice(int device) {
    if (device != 0) return fail(cudaErrorInvalidDevice);
    return cudaSuccess;
}

cudaError_t cudaGetDevice(int *device) {
    *device = 0;
    return cudaSuccess;
}

cudaError_t cudaGetDeviceProperties(struct cudaDeviceProp *prop, int device) {
    if (device != 0) return fail(cudaErrorInvalidDevice);
    memset(prop, 0, sizeof *prop);
    snprintf(prop->name, sizeof prop->name, "cuemu: emulated CUDA device on the CPU");
    prop->major = 9;   // the kernels are built for sm_80 / sm_90
    prop->minor = 0;
    prop->totalGlobalMem = (size_t)16 << 30;
    prop->sharedMemPerBlock = 48 * 1024;
    prop->regsPerBlock = 65536;
    prop->warpSize = 32;
    prop->maxThreadsPerBlock = 1024;
    prop->maxThreadsDim[0] = 1024;
    prop->maxThreadsDim[1] = 1024;
    prop->maxThreadsDim[2] = 64;
    prop->maxGridSize[0] = 2147483647;
    prop->maxGridSize[1] = 65535;
    prop->maxGridSize[2] = 65535;
    prop->multiProcessorCount = 1;
    prop->unifiedAddressing = 1;
    // CUEMU_UUID: the device's UUID (its bytes, up to 16; all zero without it), so that a test can
    // launch ranks that each hold "another" GPU
    const char *uuid = getenv("CUEMU_UUID");
    if (uuid) memcpy(prop->uuid.bytes, uuid, strnlen(uuid, sizeof prop->uuid.bytes));
    return cudaSuccess;
}

cudaError_t cudaDeviceSynchronize(void) {
    cudaError_t e = forbid_during_capture(NULL, "cudaDeviceSynchronize");
    if (e != cudaSuccess) return e;
    return fail(drain_all());
}

// ---- memory ---------------------------------------------------------------------

// The emulated device's memory is the host's: MemAvailable of /proc/meminfo.
cudaError_t cudaMemGetInfo(size_t *free_bytes, size_t *total_bytes) {
    size_t kib = 0;
    if (FILE *f = fopen("/proc/meminfo", "r")) {
        char line[256];
        while (fgets(line, sizeof line, f))
            if (sscanf(line, "MemAvailable: %zu kB", &kib) == 1) break;
        fclose(f);
    }
    *free_bytes = kib * 1024;
    *total_bytes = kib * 1024;
    return cudaSuccess;
}

cudaError_t cudaMalloc(void **ptr, size_t size) {
    if (sticky_error != cudaSuccess) return fail(sticky_error);
    cudaError_t e = forbid_during_capture(NULL, "cudaMalloc");
    if (e != cudaSuccess) return e;
    if (size == 0) {
        *ptr = NULL;
        return cudaSuccess;
    }
    install_fault_handler();
    void *p = device_alloc(size);
    if (!p) {
        *ptr = NULL;
        return fail(cudaErrorMemoryAllocation);
    }
    *ptr = p;
    return cudaSuccess;
}

cudaError_t cudaFree(void *ptr) {
    if (ptr == NULL) return cudaSuccess;
    cudaError_t e = forbid_during_capture(NULL, "cudaFree");
    if (e != cudaSuccess) return e;
    drain_all();   // cudaFree waits for the device
    if (device_free(ptr) != 0) {
        report("cudaFree(%p): not the start of a live cudaMalloc allocation: %s", ptr,
               describe_address(ptr).c_str());
        return fail(cudaErrorInvalidValue);
    }
    return fail(sticky_error);
}

static bool check_device_range(const char *call, const char *which, const void *ptr, size_t bytes) {
    std::string why;
    if (device_range_ok(ptr, bytes, &why)) return true;
    report("%s: the %s range %s", call, which, why.c_str());
    return false;
}

cudaError_t cudaMemsetAsync(void *ptr, int value, size_t count, cudaStream_t stream) {
    if (sticky_error != cudaSuccess) return fail(sticky_error);
    if (count == 0) return cudaSuccess;
    if (!check_device_range("cudaMemsetAsync", "device", ptr, count)) return fail(cudaErrorInvalidValue);
    return stream_enqueue(stream, "cudaMemsetAsync", [ptr, value, count]() {
        memset(ptr, value, count);
        return cudaSuccess;
    });
}

cudaError_t cudaMemset(void *ptr, int value, size_t count) {
    cudaError_t e = forbid_during_capture(NULL, "cudaMemset");
    if (e != cudaSuccess) return e;
    e = cudaMemsetAsync(ptr, value, count, NULL);
    if (e != cudaSuccess) return e;
    return fail(drain_all());
}

static cudaMemcpyKind infer_kind(const void *dst, const void *src) {
    bool d = is_device_pointer(dst), s = is_device_pointer(src);
    if (d && s) return cudaMemcpyDeviceToDevice;
    if (d) return cudaMemcpyHostToDevice;
    if (s) return cudaMemcpyDeviceToHost;
    return cudaMemcpyHostToHost;
}

cudaError_t cudaMemcpyAsync(void *dst, const void *src, size_t count, enum cudaMemcpyKind kind,
                            cudaStream_t stream) {
    if (sticky_error != cudaSuccess) return fail(sticky_error);
    if (count == 0) return cudaSuccess;
    if (kind == cudaMemcpyDefault) kind = infer_kind(dst, src);
    const bool dst_device = kind == cudaMemcpyHostToDevice || kind == cudaMemcpyDeviceToDevice;
    const bool src_device = kind == cudaMemcpyDeviceToHost || kind == cudaMemcpyDeviceToDevice;
    if (dst_device && !check_device_range("cudaMemcpyAsync", "destination", dst, count))
        return fail(cudaErrorInvalidValue);
    if (src_device && !check_device_range("cudaMemcpyAsync", "source", src, count))
        return fail(cudaErrorInvalidValue);
    if ((!dst_device && is_device_pointer(dst)) || (!src_device && is_device_pointer(src))) {
        report("cudaMemcpyAsync: a device pointer given as the host side of a copy of kind %d", (int)kind);
        return fail(cudaErrorInvalidValue);
    }
    if (kind == cudaMemcpyHostToDevice) {
        // pageable source: the bytes are staged now, the host buffer is free at return
        cudaError_t e = forbid_during_capture(stream, "cudaMemcpyAsync from pageable host memory");
        if (e != cudaSuccess) return e;
        auto staged = std::make_shared<std::vector<char>>((const char *)src, (const char *)src + count);
        return stream_enqueue(stream, "cudaMemcpyAsync host to device", [dst, staged]() {
            memcpy(dst, staged->data(), staged->size());
            return cudaSuccess;
        });
    }
    if (kind == cudaMemcpyDeviceToHost) {
        // pageable destination: returns once the copy is done
        cudaError_t e = forbid_during_capture(stream, "cudaMemcpyAsync to pageable host memory");
        if (e != cudaSuccess) return e;
        e = stream_enqueue(stream, "cudaMemcpyAsync device to host", [dst, src, count]() {
            memcpy(dst, src, count);
            return cudaSuccess;
        });
        if (e != cudaSuccess) return e;
        return fail(drain(stream_of(stream)));
    }
    if (kind == cudaMemcpyDeviceToDevice && (const char *)dst < (const char *)src + count &&
        (const char *)src < (const char *)dst + count) {
        report("cudaMemcpyAsync: device-to-device copy of %zu bytes between overlapping ranges "
               "(%p and %p): CUDA requires them not to overlap", count, src, dst);
        return fail(cudaErrorInvalidValue);
    }
    return stream_enqueue(stream, "cudaMemcpyAsync", [dst, src, count]() {
        memcpy(dst, src, count);
        return cudaSuccess;
    });
}

cudaError_t cudaMemcpy(void *dst, const void *src, size_t count, enum cudaMemcpyKind kind) {
    cudaError_t e = forbid_during_capture(NULL, "cudaMemcpy");
    if (e != cudaSuccess) return e;
    e = cudaMemcpyAsync(dst, src, count, kind, NULL);
    if (e != cudaSuccess) return e;
    return fail(drain_all());
}

// ---- streams ------------------------------------------------------------------------

cudaError_t cudaStreamCreateWithFlags(cudaStream_t *stream, unsigned int flags) {
    CUstream_st *s = new CUstream_st();
    s->flags = flags;
    live_streams.insert(s);
    *stream = s;
    return cudaSuccess;
}

cudaError_t cudaStreamCreate(cudaStream_t *stream) { return cudaStreamCreateWithFlags(stream, 0); }

cudaError_t cudaStreamDestroy(cudaStream_t stream) {
    CUstream_st *s = stream_of(stream);
    if (!s || s == &legacy_stream) return fail(cudaErrorInvalidResourceHandle);
    if (s->capturing) {
        report("cudaStreamDestroy of a stream that is capturing");
        return fail(cudaErrorStreamCaptureUnsupported);
    }
    drain(s);   // its pending work still completes
    live_streams.erase(s);
    delete s;
    return cudaSuccess;
}

cudaError_t cudaStreamSynchronize(cudaStream_t stream) {
    CUstream_st *s = stream_of(stream);
    if (!s) return fail(cudaErrorInvalidResourceHandle);
    cudaError_t e = forbid_during_capture(stream, "cudaStreamSynchronize");
    if (e != cudaSuccess) return e;
    return fail(drain(s));
}

cudaError_t cudaStreamBeginCapture(cudaStream_t stream, enum cudaStreamCaptureMode mode) {
    if (sticky_error != cudaSuccess) return fail(sticky_error);
    if (stream == NULL || stream == cudaStreamLegacy) {
        report("cudaStreamBeginCapture on the legacy default stream");
        return fail(cudaErrorStreamCaptureUnsupported);
    }
    CUstream_st *s = stream_of(stream);
    if (!s) return fail(cudaErrorInvalidResourceHandle);
    if (s->capturing) return fail(cudaErrorIllegalState);
    s->capturing = true;
    s->capture_invalidated = false;
    s->capture_mode = mode;
    s->capture_graph = new CUgraph_st();
    return cudaSuccess;
}

cudaError_t cudaStreamEndCapture(cudaStream_t stream, cudaGraph_t *graph) {
    CUstream_st *s = stream_of(stream);
    if (!s) return fail(cudaErrorInvalidResourceHandle);
    if (!s->capturing) return fail(cudaErrorIllegalState);
    s->capturing = false;
    if (s->capture_invalidated) {
        delete s->capture_graph;
        s->capture_graph = NULL;
        *graph = NULL;
        return fail(cudaErrorStreamCaptureInvalidated);
    }
    *graph = s->capture_graph;
    s->capture_graph = NULL;
    stats.graphs_captured++;
    return cudaSuccess;
}

cudaError_t cudaStreamIsCapturing(cudaStream_t stream, enum cudaStreamCaptureStatus *status) {
    CUstream_st *s = stream_of(stream);
    if (!s) return fail(cudaErrorInvalidResourceHandle);
    *status = !s->capturing ? cudaStreamCaptureStatusNone
              : s->capture_invalidated ? cudaStreamCaptureStatusInvalidated
                                       : cudaStreamCaptureStatusActive;
    return cudaSuccess;
}

// ---- graphs --------------------------------------------------------------------------

cudaError_t cudaGraphInstantiate(cudaGraphExec_t *exec, cudaGraph_t graph, unsigned long long flags) {
    (void)flags;
    if (!graph) return fail(cudaErrorInvalidValue);
    CUgraphExec_st *e = new CUgraphExec_st();
    e->ops = graph->ops;   // closures share the arguments copied at capture
    *exec = e;
    return cudaSuccess;
}

cudaError_t cudaGraphLaunch(cudaGraphExec_t exec, cudaStream_t stream) {
    if (!exec) return fail(cudaErrorInvalidValue);
    stats.graph_launches++;
    stats.ops_replayed += exec->ops.size();
    for (const PendingOp &op : exec->ops) {
        cudaError_t e = stream_enqueue(stream, op.what, op.run);
        if (e != cudaSuccess) return e;
    }
    return cudaSuccess;
}

cudaError_t cudaGraphDestroy(cudaGraph_t graph) {
    delete graph;
    return cudaSuccess;
}

cudaError_t cudaGraphExecDestroy(cudaGraphExec_t exec) {
    delete exec;
    return cudaSuccess;
}

}   // extern "C"
