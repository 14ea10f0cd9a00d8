// cuemu_device.h: force-included (g++ -include) before every kernels/*.cu when
// it is compiled as host C++ for the emulated CUDA device. It gives the CUDA
// C++ dialect the kernels use a host meaning:
//   __global__ / __device__ / __host__  ordinary functions
//   threadIdx, blockIdx, blockDim, gridDim, warpSize  the running fiber's values
//   __syncthreads, __syncwarp, __shfl*_sync, votes    collectives of the scheduler
//   CUEMU_LAUNCH / CUEMU_SHARED  what cuemu_rewrite.py turns <<<...>>> launches and
//                                __shared__ declarations into
// The CUDA headers themselves are the real ones (cuda_runtime.h as a host
// compiler sees it), so every runtime call's signature is checked.
#ifndef CUEMU_DEVICE_H
#define CUEMU_DEVICE_H

#define CUEMU_DEVICE_CODE 1

// defined before cuda_runtime.h so that crt/host_defines.h keeps them empty
#define __global__
#define __device__
#define __host__
#define __constant__
#define __launch_bounds__(...)
// a __shared__ the rewrite script did not turn into CUEMU_SHARED fails to compile
#define __shared__ CUEMU_SHARED_DECLARATION_NOT_REWRITTEN_BY_cuemu_rewrite_py

#include <cuda_runtime.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>

#include "cuemu.h"

// ---- builtin variables ---------------------------------------------------------
#define threadIdx (::cuemu::current_thread_idx)
#define blockIdx (::cuemu::current_block_idx)
#define blockDim (::cuemu::current_block_dim)
#define gridDim (::cuemu::current_grid_dim)
#define warpSize 32

// ---- barriers and warp collectives -----------------------------------------------
#define __syncthreads() ::cuemu::syncthreads(__FILE__, __LINE__)
#define __threadfence() ((void)0)
#define __threadfence_block() ((void)0)

namespace cuemu {

template <typename T>
inline T warp_exchange(WarpOpKind kind, unsigned mask, T var, int arg, int width,
                       const char *file, int line) {
    static_assert(sizeof(T) <= 8 && std::is_trivially_copyable<T>::value,
                  "cuemu: shuffles move values of at most 8 bytes");
    uint64_t bits = 0;
    std::memcpy(&bits, &var, sizeof(T));
    uint64_t out = warp_op(kind, mask, bits, arg, width, file, line);
    T result;
    std::memcpy(&result, &out, sizeof(T));
    return result;
}

template <typename T>
inline T shfl(const char *file, int line, unsigned mask, T var, int src_lane, int width = 32) {
    return warp_exchange(WARP_SHFL_IDX, mask, var, src_lane, width, file, line);
}
template <typename T>
inline T shfl_up(const char *file, int line, unsigned mask, T var, unsigned delta, int width = 32) {
    return warp_exchange(WARP_SHFL_UP, mask, var, (int)delta, width, file, line);
}
template <typename T>
inline T shfl_down(const char *file, int line, unsigned mask, T var, unsigned delta,
                   int width = 32) {
    return warp_exchange(WARP_SHFL_DOWN, mask, var, (int)delta, width, file, line);
}
template <typename T>
inline T shfl_xor(const char *file, int line, unsigned mask, T var, int lane_mask,
                  int width = 32) {
    return warp_exchange(WARP_SHFL_XOR, mask, var, lane_mask, width, file, line);
}
// __syncwarp() and __syncwarp(mask): a call site object whose call takes the optional mask
struct SyncwarpAt {
    const char *file;
    int line;
    void operator()(unsigned mask = 0xffffffffu) const { warp_op(WARP_SYNC, mask, 0, 0, 32, file, line); }
};
inline unsigned ballot(const char *file, int line, unsigned mask, int predicate) {
    return (unsigned)warp_op(WARP_BALLOT, mask, predicate != 0, 0, 32, file, line);
}
inline int any(const char *file, int line, unsigned mask, int predicate) {
    return (int)warp_op(WARP_ANY, mask, predicate != 0, 0, 32, file, line);
}
inline int all(const char *file, int line, unsigned mask, int predicate) {
    return (int)warp_op(WARP_ALL, mask, predicate != 0, 0, 32, file, line);
}

}   // namespace cuemu

#define __shfl_sync(...) ::cuemu::shfl(__FILE__, __LINE__, __VA_ARGS__)
#define __shfl_up_sync(...) ::cuemu::shfl_up(__FILE__, __LINE__, __VA_ARGS__)
#define __shfl_down_sync(...) ::cuemu::shfl_down(__FILE__, __LINE__, __VA_ARGS__)
#define __shfl_xor_sync(...) ::cuemu::shfl_xor(__FILE__, __LINE__, __VA_ARGS__)
#define __syncwarp ::cuemu::SyncwarpAt{__FILE__, __LINE__}
#define __ballot_sync(...) ::cuemu::ballot(__FILE__, __LINE__, __VA_ARGS__)
#define __any_sync(...) ::cuemu::any(__FILE__, __LINE__, __VA_ARGS__)
#define __all_sync(...) ::cuemu::all(__FILE__, __LINE__, __VA_ARGS__)

// ---- intrinsics (host math; the GPU's own ulps are not emulated) ---------------------
// Fibers of one block never run at the same time, so plain read-modify-write is atomic.
template <typename T> inline T atomicAdd(T *address, T value) { T old = *address; *address = old + value; return old; }
template <typename T> inline T atomicMax(T *address, T value) { T old = *address; if (value > old) *address = value; return old; }
template <typename T> inline T atomicMin(T *address, T value) { T old = *address; if (value < old) *address = value; return old; }
template <typename T> inline T atomicExch(T *address, T value) { T old = *address; *address = value; return old; }
template <typename T> inline T atomicCAS(T *address, T compare, T value) {
    T old = *address;
    if (old == compare) *address = value;
    return old;
}
template <typename T> inline T __ldg(const T *address) { return *address; }
inline unsigned __umulhi(unsigned a, unsigned b) { return (unsigned)(((uint64_t)a * b) >> 32); }
inline float __expf(float x) { return expf(x); }
inline float __logf(float x) { return logf(x); }
inline float __fdividef(float a, float b) { return a / b; }
inline float __saturatef(float x) { return x > 0.0f ? (x < 1.0f ? x : 1.0f) : 0.0f; }   // NaN, -0 -> +0
inline float rsqrtf(float x) { return 1.0f / sqrtf(x); }
inline int __float_as_int(float x) { int i; std::memcpy(&i, &x, 4); return i; }
inline float __int_as_float(int i) { float x; std::memcpy(&x, &i, 4); return x; }
inline unsigned __float_as_uint(float x) { unsigned i; std::memcpy(&i, &x, 4); return i; }
inline float __uint_as_float(unsigned i) { float x; std::memcpy(&x, &i, 4); return x; }
inline int __popc(unsigned x) { return __builtin_popcount(x); }
inline int __popcll(unsigned long long x) { return __builtin_popcountll(x); }
inline int __ffs(int x) { return __builtin_ffs(x); }
inline int __clz(int x) { return x == 0 ? 32 : __builtin_clz((unsigned)x); }
inline int min(int a, int b) { return a < b ? a : b; }
inline int max(int a, int b) { return a > b ? a : b; }
inline unsigned min(unsigned a, unsigned b) { return a < b ? a : b; }
inline unsigned max(unsigned a, unsigned b) { return a > b ? a : b; }

// ---- launches ------------------------------------------------------------------
// kernel<<<grid, block, smem, stream>>>(args) becomes
// CUEMU_LAUNCH(kernel, grid, block, smem, stream)(args): the arguments are
// converted to the kernel's parameter types and copied at the launch (as CUDA
// does), and every thread of every block calls the kernel with that copy.
namespace cuemu {

template <typename Kernel> class Launcher;

template <typename... Params> class Launcher<void (*)(Params...)> {
public:
    Launcher(void (*kernel)(Params...), const char *name, const char *file, int line, dim3 grid,
             dim3 block, size_t dynamic_shared_bytes = 0, cudaStream_t stream = 0)
        : kernel_(kernel), stream_(stream) {
        launch_.name = name;
        launch_.file = file;
        launch_.line = line;
        launch_.grid = grid;
        launch_.block = block;
        launch_.dynamic_shared_bytes = dynamic_shared_bytes;
    }

    template <typename... Args> void operator()(Args &&...args) {
        static_assert(sizeof...(Args) == sizeof...(Params),
                      "cuemu: a kernel launched with the wrong number of arguments");
        auto copied = std::make_shared<std::tuple<typename std::decay<Params>::type...>>(
            std::forward<Args>(args)...);
        launch_.bad_argument.clear();
        int index = 0;   // every pointer argument must point into device memory, as on a GPU without HMM
        std::apply([&](const auto &...value) { (check_argument(index++, value), ...); }, *copied);
        void (*kernel)(Params...) = kernel_;
        launch_.body = [kernel, copied]() { std::apply(kernel, *copied); };
        launch_kernel(launch_, stream_);
    }

private:
    template <typename T> void check_argument(int index, const T &value) {
        if constexpr (std::is_pointer<T>::value) {
            std::string why;
            if (launch_.bad_argument.empty() && !kernel_pointer_ok((const void *)value, &why))
                launch_.bad_argument = "argument " + std::to_string(index + 1) + " is not device memory: " + why;
        }
    }

    void (*kernel_)(Params...);
    cudaStream_t stream_;
    KernelLaunch launch_;
};

}   // namespace cuemu

#define CUEMU_LAUNCH(kernel, ...) \
    ::cuemu::Launcher<decltype(&kernel)>(&kernel, #kernel, __FILE__, __LINE__, __VA_ARGS__)

// __shared__ T name[dims]; becomes CUEMU_SHARED(T, name, [dims]); the static
// char is the declaration's identity (distinct per declaration and per template
// instance, even two on one line).
#define CUEMU_SHARED(type, name, dims)                                                 \
    static char cuemu_shared_key_##name;                                               \
    type(&name) dims = *reinterpret_cast<type(*) dims>(::cuemu::shared_alloc(           \
        sizeof(type dims), alignof(type), &cuemu_shared_key_##name, __FILE__, __LINE__))
// extern __shared__ T name[]; becomes CUEMU_EXTERN_SHARED(T, name);
#define CUEMU_EXTERN_SHARED(type, name) type *name = reinterpret_cast<type *>(::cuemu::dynamic_shared())

#endif
