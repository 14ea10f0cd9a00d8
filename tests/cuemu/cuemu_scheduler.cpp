// cuemu_scheduler.cpp: runs one kernel launch on the emulated device. The
// blocks of the grid run one after another (forward, or reversed with
// CUEMU_ORDER=reverse); every CUDA thread of a block is a fiber
// (cuemu_fiber.h) that runs until it finishes or waits at a collective:
//   __syncthreads   a counting barrier over the whole block
//   warp collectives (__shfl*_sync, __syncwarp, votes)  over the lanes of a mask,
//                   exchanging values through per-lane slots
// When no thread can run, the collectives whose participants have all
// arrived are completed; if none can be, the block is stuck, and the reason
// (a thread that returned before a barrier, a lane that does not exist or has
// returned, lanes waiting at different places) is reported naming the
// kernel, the launch site and the block. Nothing hangs: a kernel that runs
// past CUEMU_TIMEOUT seconds is reported by a watchdog thread.
// __shared__ storage is allocated per block, NaN-filled, with the heap
// allocator (AddressSanitizer sees its bounds) and freed when the block ends.
#include "cuemu.h"
#include "cuemu_fiber.h"

#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#ifdef CUEMU_ASAN
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#endif

namespace cuemu {

thread_local uint3 current_thread_idx;
thread_local uint3 current_block_idx;
thread_local dim3 current_block_dim;
thread_local dim3 current_grid_dim;

namespace {

const size_t kStackBytes = 256 * 1024;   // per fiber, committed lazily
const size_t kSharedLimit = 48 * 1024;   // static + dynamic, per block, without opt-in
const int kWarpSize = 32;

enum ThreadStatus { THREAD_READY, THREAD_AT_BARRIER, THREAD_AT_WARP_OP, THREAD_FINISHED };

struct WarpRequest {
    WarpOpKind kind;
    unsigned mask;
    uint64_t value;
    int arg;
    int width;
    uint64_t result;
};

struct Stack {
    void *mapping;     // guard page + stack
    void *base;        // lowest usable byte
    size_t bytes;
    bool abandoned;    // a fiber was dropped mid-kernel on it (ASan: unpoison before reuse)
};

struct Thread {
    uint3 idx;
    int linear;
    ThreadStatus status;
    bool started;
    const char *wait_file;   // where it waits
    int wait_line;
    WarpRequest warp;
    CuemuFiber fiber;
    Stack *stack;
#ifdef CUEMU_ASAN
    void *fake_stack;
#endif
};

struct SharedDeclaration {
    const void *key;   // the declaration's own static (one per declaration and template instance)
    void *ptr;
};

struct Block {
    const KernelLaunch *launch;
    uint3 idx;
    int n_threads;
    std::vector<Thread> threads;
    std::vector<SharedDeclaration> shared;
    size_t shared_bytes;
    void *dynamic_shared;
    bool failed;
};

// The running launch, block and thread (one OS thread runs kernels at a time).
thread_local Block *running_block;
thread_local Thread *running_thread;
thread_local CuemuFiber scheduler_fiber;
#ifdef CUEMU_ASAN
thread_local void *scheduler_fake_stack;
thread_local const void *scheduler_stack_bottom;
thread_local size_t scheduler_stack_size;
#endif

// the pool lives as long as the process (reachable, so LeakSanitizer is quiet)
std::vector<Stack *> &free_stacks = *new std::vector<Stack *>();

Stack *take_stack() {
    if (!free_stacks.empty()) {
        Stack *s = free_stacks.back();
        free_stacks.pop_back();
#ifdef CUEMU_ASAN
        if (s->abandoned) __asan_unpoison_memory_region(s->base, s->bytes);
#endif
        s->abandoned = false;
        return s;
    }
    long page = sysconf(_SC_PAGESIZE);
    size_t total = kStackBytes + (size_t)page;
    void *mapping = mmap(NULL, total, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (mapping == MAP_FAILED) {
        report("out of host memory for fiber stacks");
        abort();
    }
    mprotect(mapping, (size_t)page, PROT_NONE);   // a stack overflow faults
    Stack *s = new Stack;
    s->mapping = mapping;
    s->base = (char *)mapping + page;
    s->bytes = kStackBytes;
    s->abandoned = false;
    return s;
}

void give_back_stack(Stack *s) { free_stacks.push_back(s); }

std::string dim_text(uint3 d) {
    char buf[64];
    snprintf(buf, sizeof buf, "(%u,%u,%u)", d.x, d.y, d.z);
    return buf;
}

bool same_site(const char *file_a, int line_a, const char *file_b, int line_b) {
    if (line_a != line_b) return false;
    if (file_a == file_b) return true;
    return file_a && file_b && strcmp(file_a, file_b) == 0;
}

std::string where_text(const char *file, int line) {
    char buf[512];
    snprintf(buf, sizeof buf, "%s:%d", file ? file : "?", line);
    return buf;
}

const char *warp_op_name(WarpOpKind kind) {
    switch (kind) {
    case WARP_SHFL_IDX: return "__shfl_sync";
    case WARP_SHFL_UP: return "__shfl_up_sync";
    case WARP_SHFL_DOWN: return "__shfl_down_sync";
    case WARP_SHFL_XOR: return "__shfl_xor_sync";
    case WARP_SYNC: return "__syncwarp";
    case WARP_BALLOT: return "__ballot_sync";
    case WARP_ANY: return "__any_sync";
    case WARP_ALL: return "__all_sync";
    }
    return "?";
}

// "kernel K (launched at F:L) block (x,y,z): " + message, reported once per block.
void block_error(Block &block, const std::string &message) {
    if (block.failed) return;
    block.failed = true;
    const KernelLaunch &l = *block.launch;
    report("kernel %s (launched at %s:%d) block %s: %s", l.name, l.file, l.line,
           dim_text(block.idx).c_str(), message.c_str());
}

std::string thread_text(const Thread &t) {
    char buf[96];
    snprintf(buf, sizeof buf, "thread %s (warp %d lane %d)", dim_text(t.idx).c_str(),
             t.linear / kWarpSize, t.linear % kWarpSize);
    return buf;
}

std::string waiting_text(const Thread &t) {
    switch (t.status) {
    case THREAD_AT_BARRIER: return "waits at __syncthreads (" + where_text(t.wait_file, t.wait_line) + ")";
    case THREAD_AT_WARP_OP: {
        char mask[32];
        snprintf(mask, sizeof mask, "0x%08x", t.warp.mask);
        return std::string("waits at ") + warp_op_name(t.warp.kind) + " (" +
               where_text(t.wait_file, t.wait_line) + ", mask " + mask + ")";
    }
    case THREAD_FINISHED: return "has returned";
    case THREAD_READY: return "is running";
    }
    return "?";
}

// ---- fibers ---------------------------------------------------------------

void switch_to_scheduler(Thread &t) {
#ifdef CUEMU_ASAN
    __sanitizer_start_switch_fiber(t.status == THREAD_FINISHED ? NULL : &t.fake_stack,
                                   scheduler_stack_bottom, scheduler_stack_size);
#endif
    cuemu_fiber_switch(&t.fiber, &scheduler_fiber);
#ifdef CUEMU_ASAN
    __sanitizer_finish_switch_fiber(t.fake_stack, NULL, NULL);
#endif
}

void fiber_entry(void) {
    Thread &t = *running_thread;
#ifdef CUEMU_ASAN
    __sanitizer_finish_switch_fiber(NULL, &scheduler_stack_bottom, &scheduler_stack_size);
#endif
    running_block->launch->body();
    t.status = THREAD_FINISHED;
    switch_to_scheduler(t);
    abort();   // a finished fiber is never resumed
}

std::atomic<uint64_t> resumes{0};   // progress, for the watchdog

void resume(Block &block, Thread &t) {
    resumes.fetch_add(1, std::memory_order_relaxed);
    running_thread = &t;
    current_thread_idx = t.idx;
    if (!t.started) {
        t.started = true;
        t.stack = take_stack();
        cuemu_fiber_prepare(&t.fiber, t.stack->base, t.stack->bytes, fiber_entry);
#ifdef CUEMU_ASAN
        t.fake_stack = NULL;
#endif
    }
#ifdef CUEMU_ASAN
    __sanitizer_start_switch_fiber(&scheduler_fake_stack, t.stack->base, t.stack->bytes);
#endif
    cuemu_fiber_switch(&scheduler_fiber, &t.fiber);
#ifdef CUEMU_ASAN
    __sanitizer_finish_switch_fiber(scheduler_fake_stack, NULL, NULL);
#endif
    running_thread = NULL;
    if (t.status == THREAD_FINISHED) {
        give_back_stack(t.stack);
        t.stack = NULL;
    }
    (void)block;
}

// ---- completing collectives -----------------------------------------------------
// CUDA's rule (Programming Guide, warp shuffle and sync functions): the
// non-exited lanes named in a mask must all execute the same kind of
// collective with the same mask (on sm_70+ not necessarily at the same line).
// Lanes that returned, or that do not exist in a partial last warp, are
// inactive and ignored -- but a shuffle that READS such a lane gets an
// undefined value, which is reported.

bool lane_exists(const Block &block, int warp, int lane) {
    return warp * kWarpSize + lane < block.n_threads;
}

bool lane_active(const Block &block, int warp, int lane) {
    return lane_exists(block, warp, lane) &&
           block.threads[warp * kWarpSize + lane].status != THREAD_FINISHED;
}

// Lane t's result of the collective the active lanes of `mask` wait at.
// Returns false (after block_error) if a shuffle reads a lane it may not.
bool warp_result(Block &block, int warp, unsigned mask, Thread &t, uint64_t *result) {
    const WarpRequest &r = t.warp;
    int lane = t.linear % kWarpSize;
    int width = r.width;
    int segment = lane & ~(width - 1);
    int src = lane;
    switch (r.kind) {
    case WARP_SHFL_IDX: src = segment + (r.arg & (width - 1)); break;
    case WARP_SHFL_UP: src = lane - r.arg < segment ? lane : lane - r.arg; break;
    case WARP_SHFL_DOWN: src = lane + r.arg >= segment + width ? lane : lane + r.arg; break;
    case WARP_SHFL_XOR: src = (lane ^ r.arg) >= segment + width ? lane : (lane ^ r.arg); break;
    case WARP_SYNC: *result = 0; return true;
    case WARP_BALLOT:
    case WARP_ANY:
    case WARP_ALL: {
        unsigned ballot = 0, active = 0;
        for (int l = 0; l < kWarpSize; l++) {
            if (!((mask >> l) & 1u) || !lane_active(block, warp, l)) continue;
            active |= 1u << l;
            ballot |= (block.threads[warp * kWarpSize + l].warp.value ? 1u : 0u) << l;
        }
        if (r.kind == WARP_BALLOT) *result = ballot;
        else if (r.kind == WARP_ANY) *result = ballot != 0;
        else *result = ballot == active;
        return true;
    }
    }
    const char *why = NULL;
    if (src < 0 || src >= kWarpSize || !((mask >> src) & 1u)) why = "is not in the mask";
    else if (!lane_exists(block, warp, src)) why = "does not exist (a partial last warp)";
    else if (block.threads[warp * kWarpSize + src].status == THREAD_FINISHED) why = "has returned";
    if (why) {
        char buf[512];
        snprintf(buf, sizeof buf, "%s (%s) in warp %d, mask 0x%08x: lane %d reads lane %d, which %s "
                 "(an undefined value)", warp_op_name(r.kind), where_text(t.wait_file, t.wait_line).c_str(),
                 warp, mask, lane, src, why);
        block_error(block, buf);
        return false;
    }
    *result = block.threads[warp * kWarpSize + src].warp.value;
    return true;
}

// The collective lane `first` of `warp` waits at: 1 completed (its lanes
// released), 0 not every active lane of the mask is there yet, -1 error
// (reported). With `stuck` the block cannot move any more: the reason it
// cannot complete is reported (and -1 returned).
int complete_warp_op(Block &block, int warp, Thread &first, bool stuck) {
    const unsigned mask = first.warp.mask;
    const std::string op = std::string(warp_op_name(first.warp.kind)) + " (" +
                           where_text(first.wait_file, first.wait_line) + ")";
    for (int l = 0; l < kWarpSize; l++) {
        if (!((mask >> l) & 1u) || !lane_active(block, warp, l)) continue;
        Thread &other = block.threads[warp * kWarpSize + l];
        bool same = other.status == THREAD_AT_WARP_OP && other.warp.kind == first.warp.kind &&
                    other.warp.mask == mask && other.warp.width == first.warp.width;
        if (same) continue;
        if (!stuck) return 0;
        char buf[768];
        if (other.status == THREAD_AT_BARRIER)
            snprintf(buf, sizeof buf, "deadlock: %s in warp %d (mask 0x%08x) waits for lane %d, which %s",
                     op.c_str(), warp, mask, l, waiting_text(other).c_str());
        else
            snprintf(buf, sizeof buf, "the lanes of warp %d disagree: lane %d waits at %s with mask "
                     "0x%08x, lane %d %s (every active lane of a mask must execute the same collective "
                     "with the same mask)", warp, first.linear % kWarpSize, op.c_str(), mask, l,
                     waiting_text(other).c_str());
        block_error(block, buf);
        return -1;
    }
    for (int l = 0; l < kWarpSize; l++) {
        if (!((mask >> l) & 1u) || !lane_active(block, warp, l)) continue;
        Thread &t = block.threads[warp * kWarpSize + l];
        if (!warp_result(block, warp, mask, t, &t.warp.result)) return -1;
    }
    for (int l = 0; l < kWarpSize; l++)
        if (((mask >> l) & 1u) && lane_active(block, warp, l))
            block.threads[warp * kWarpSize + l].status = THREAD_READY;
    return 1;
}

// The whole block waits at __syncthreads (or has finished): release it, or
// report why the barrier cannot be passed. Returns false when stuck.
bool complete_barrier(Block &block) {
    const Thread *first = NULL;
    for (const Thread &t : block.threads) {
        if (t.status == THREAD_AT_BARRIER) { first = &t; break; }
    }
    if (!first) {
        block_error(block, "no thread can run and none waits at a barrier (emulator bug)");
        return false;
    }
    for (const Thread &t : block.threads) {
        if (t.status == THREAD_FINISHED) {
            block_error(block, "__syncthreads (" + where_text(first->wait_file, first->wait_line) +
                               ") is not reached by every thread of the block: " + thread_text(t) +
                               " has returned (a barrier in divergent code)");
            return false;
        }
        if (!same_site(t.wait_file, t.wait_line, first->wait_file, first->wait_line)) {
            block_error(block, "threads wait at different __syncthreads (divergent code): " +
                               thread_text(*first) + " at " + where_text(first->wait_file, first->wait_line) +
                               ", " + thread_text(t) + " at " + where_text(t.wait_file, t.wait_line));
            return false;
        }
    }
    for (Thread &t : block.threads) t.status = THREAD_READY;
    return true;
}

// ---- blocks -------------------------------------------------------------------

void free_block_memory(Block &block) {
    for (SharedDeclaration &s : block.shared) free(s.ptr);
    block.shared.clear();
    free(block.dynamic_shared);
    block.dynamic_shared = NULL;
}

// Runs warp `warp` until each of its threads has finished or waits at
// __syncthreads, completing its warp collectives on the way. Warps advance
// one after another between barriers, so a warp reading shared memory that
// another warp writes without a __syncthreads between them reads NaN (not yet
// written) in one of the two orders the tests use, forward and reverse.
// Returns false when the block failed.
bool run_warp(Block &block, int warp, bool reverse) {
    const int first = warp * kWarpSize;
    const int lanes = block.n_threads - first < kWarpSize ? block.n_threads - first : kWarpSize;
    for (;;) {
        for (int k = 0; k < lanes && !block.failed; k++) {
            Thread &t = block.threads[first + (reverse ? lanes - 1 - k : k)];
            if (t.status == THREAD_READY) resume(block, t);
        }
        if (block.failed) return false;
        bool waiting = false, released = false;
        for (int k = 0; k < lanes; k++) {
            Thread &t = block.threads[first + k];
            if (t.status != THREAD_AT_WARP_OP) continue;
            waiting = true;
            int r = complete_warp_op(block, warp, t, false);
            if (r < 0) return false;
            if (r > 0) released = true;
        }
        if (released) continue;
        if (!waiting) return true;
        // lanes wait at a collective that cannot complete: say why
        for (int k = 0; k < lanes; k++) {
            Thread &t = block.threads[first + k];
            if (t.status == THREAD_AT_WARP_OP) {
                complete_warp_op(block, warp, t, true);
                return false;
            }
        }
    }
}

bool run_block(Block &block) {
    const KernelLaunch &l = *block.launch;
    block.n_threads = (int)(l.block.x * l.block.y * l.block.z);
    block.threads.resize(block.n_threads);
    block.failed = false;
    block.shared_bytes = l.dynamic_shared_bytes;
    if (l.dynamic_shared_bytes) {
        block.dynamic_shared = malloc(l.dynamic_shared_bytes);
        memset(block.dynamic_shared, 0xFF, l.dynamic_shared_bytes);
    }
    for (int i = 0; i < block.n_threads; i++) {
        Thread &t = block.threads[i];
        t.linear = i;
        t.idx.x = (unsigned)i % l.block.x;
        t.idx.y = ((unsigned)i / l.block.x) % l.block.y;
        t.idx.z = (unsigned)i / (l.block.x * l.block.y);
        t.status = THREAD_READY;
        t.started = false;
        t.stack = NULL;
        t.wait_file = NULL;
        t.wait_line = 0;
    }
    current_block_idx = block.idx;
    running_block = &block;
    const bool reverse = settings().reverse_order;
    const int n_warps = (block.n_threads + kWarpSize - 1) / kWarpSize;
    for (;;) {
        for (int k = 0; k < n_warps; k++)
            if (!run_warp(block, reverse ? n_warps - 1 - k : k, reverse)) break;
        if (block.failed) break;
        bool all_finished = true;
        for (const Thread &t : block.threads) all_finished = all_finished && t.status == THREAD_FINISHED;
        if (all_finished) break;
        if (!complete_barrier(block)) break;
    }
    if (block.failed) {   // drop the fibers that still wait
        for (Thread &t : block.threads) {
            if (t.stack) {
                t.stack->abandoned = true;
                give_back_stack(t.stack);
                t.stack = NULL;
            }
        }
    }
    running_block = NULL;
    free_block_memory(block);
    return !block.failed;
}

// ---- watchdog -----------------------------------------------------------------

std::atomic<const KernelLaunch *> watched_launch{nullptr};

// A launch is hung when no thread has been resumed for the timeout: a thread
// that spins never gives the others a turn. (A long kernel that makes progress
// is not one.)
void watchdog_loop(double timeout_seconds) {
    uint64_t seen = 0;
    double still_for = 0.0;
    for (;;) {
        std::this_thread::sleep_for(std::chrono::milliseconds(250));
        const KernelLaunch *l = watched_launch.load();
        uint64_t now = resumes.load(std::memory_order_relaxed);
        if (l == nullptr || now != seen) {
            seen = now;
            still_for = 0.0;
            continue;
        }
        still_for += 0.25;
        if (still_for >= timeout_seconds) {
            fprintf(stderr, "cuemu: kernel %s (launched at %s:%d): no thread has made progress for "
                    "%.0f s (CUEMU_TIMEOUT): a hang -- the emulated threads of a block take turns, "
                    "so a thread spinning on another thread's write never ends\n",
                    l->name, l->file, l->line, still_for);
            fflush(stderr);
            _exit(1);
        }
    }
}

// Once per process (a forked child has no copy of its parent's threads).
void start_watchdog_once() {
    static pid_t started_in = 0;
    if (started_in == getpid()) return;
    started_in = getpid();
    // (read here, once per process: a forked child may set its own CUEMU_TIMEOUT)
    std::thread(watchdog_loop, timeout_seconds_from_env()).detach();
}

}   // namespace

// ---- the interface of cuemu.h -------------------------------------------------------

cudaError_t run_kernel(const KernelLaunch &launch) {
    if (!launch.bad_argument.empty()) {   // the first thread to dereference it faults on a GPU
        report("kernel %s (launched at %s:%d): %s (cudaErrorIllegalAddress)", launch.name, launch.file,
               launch.line, launch.bad_argument.c_str());
        return cudaErrorIllegalAddress;
    }
    start_watchdog_once();
    install_fault_handler();
    watched_launch.store(&launch);
    current_block_dim = launch.block;
    current_grid_dim = launch.grid;
    Block block;
    block.launch = &launch;
    block.dynamic_shared = NULL;
    const uint64_t n_blocks = (uint64_t)launch.grid.x * launch.grid.y * launch.grid.z;
    const bool reverse = settings().reverse_order;
    bool ok = true;
    for (uint64_t k = 0; k < n_blocks && ok; k++) {
        uint64_t b = reverse ? n_blocks - 1 - k : k;
        block.idx.x = (unsigned)(b % launch.grid.x);
        block.idx.y = (unsigned)((b / launch.grid.x) % launch.grid.y);
        block.idx.z = (unsigned)(b / ((uint64_t)launch.grid.x * launch.grid.y));
        ok = run_block(block);
    }
    watched_launch.store(nullptr);
    if (!ok) return cudaErrorLaunchFailure;
    char culprit[512];
    snprintf(culprit, sizeof culprit, "kernel %s (launched at %s:%d)", launch.name, launch.file,
             launch.line);
    if (!device_canaries_ok(culprit)) return cudaErrorIllegalAddress;
    return cudaSuccess;
}

void syncthreads(const char *file, int line) {
    Thread &t = *running_thread;
    t.status = THREAD_AT_BARRIER;
    t.wait_file = file;
    t.wait_line = line;
    switch_to_scheduler(t);
    current_thread_idx = t.idx;
}

uint64_t warp_op(WarpOpKind kind, unsigned mask, uint64_t value, int arg, int width,
                 const char *file, int line) {
    Thread &t = *running_thread;
    Block &block = *running_block;
    int lane = t.linear % kWarpSize;
    if (!((mask >> lane) & 1u)) {
        char buf[256];
        snprintf(buf, sizeof buf, "%s (%s): %s calls it with mask 0x%08x, which does not include "
                 "its own lane", warp_op_name(kind), where_text(file, line).c_str(),
                 thread_text(t).c_str(), mask);
        block_error(block, buf);
    }
    if (width < 1 || width > kWarpSize || (width & (width - 1)) != 0) {
        char buf[256];
        snprintf(buf, sizeof buf, "%s (%s): width %d is not a power of 2 in [1, 32]",
                 warp_op_name(kind), where_text(file, line).c_str(), width);
        block_error(block, buf);
    }
    t.status = THREAD_AT_WARP_OP;
    t.wait_file = file;
    t.wait_line = line;
    t.warp.kind = kind;
    t.warp.mask = mask;
    t.warp.value = value;
    t.warp.arg = arg;
    t.warp.width = width;
    t.warp.result = 0;
    switch_to_scheduler(t);
    current_thread_idx = t.idx;
    return t.warp.result;
}

void *shared_alloc(size_t bytes, size_t align, const void *key, const char *file, int line) {
    Block &block = *running_block;
    for (const SharedDeclaration &s : block.shared)
        if (s.key == key) return s.ptr;
    block.shared_bytes += bytes;
    if (block.shared_bytes > kSharedLimit) {
        char buf[256];
        snprintf(buf, sizeof buf, "__shared__ at %s: the block uses %zu bytes of shared memory, "
                 "more than the %zu a block may use without opting in",
                 where_text(file, line).c_str(), block.shared_bytes, kSharedLimit);
        block_error(block, buf);
    }
    void *ptr = NULL;
    if (align < 16) align = 16;   // what __align__ and vector types may ask for
    if (posix_memalign(&ptr, align, bytes ? bytes : 1) != 0) {
        report("out of host memory for __shared__ storage");
        abort();
    }
    memset(ptr, 0xFF, bytes);   // NaN: shared memory starts uninitialised
    SharedDeclaration s = {key, ptr};
    block.shared.push_back(s);
    return ptr;
}

void *dynamic_shared() { return running_block->dynamic_shared; }

std::string current_kernel_context() {
    if (!running_block) return "";
    const KernelLaunch &l = *running_block->launch;
    char buf[768];
    snprintf(buf, sizeof buf, "kernel %s (launched at %s:%d) block %s", l.name, l.file, l.line,
             dim_text(running_block->idx).c_str());
    std::string s = buf;
    if (running_thread) s += " " + thread_text(*running_thread);
    return s;
}

}   // namespace cuemu
