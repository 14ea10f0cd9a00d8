// cuemu_memory.cpp: the emulated device's memory. Every cudaMalloc is
// recorded in a registry that copies, memsets, frees and cuBLAS operands are
// checked against. New memory is NaN bytes (0xFF), so a read of something
// never written shows up as NaN rather than as a lucky zero.
//   without AddressSanitizer: each allocation has its own mapping
//     [guard page][canary ...][data, 256-aligned][canary to the page end][guard page]
//     so a kernel reading or writing far out of bounds faults at once (the
//     SIGSEGV handler names the kernel, block and thread and the allocation),
//     and a write into the canaries (the bytes A5 A5 A5 7F by address: each
//     aligned float there reads as NaN, unlike the 0xFF of new memory) is
//     reported after the kernel. A freed allocation stays mapped without
//     access for a while (quarantine), so a use after cudaFree faults even
//     when a new cudaMalloc would have reused the address;
//   with AddressSanitizer (SANITIZE=1): an ordinary 256-aligned heap block of
//     exactly the requested size, which ASan watches byte for byte.
#include "cuemu.h"

#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <map>
#include <string>

#ifdef CUEMU_ASAN
#include <sanitizer/common_interface_defs.h>
#endif

namespace cuemu {
namespace {

const size_t kAlignment = 256;        // what cudaMalloc guarantees
const size_t kQuarantineBytes = (size_t)256 << 20;   // freed mappings kept inaccessible

#ifndef CUEMU_ASAN
// the canary byte at address a
unsigned char canary_at(uintptr_t a) { return (a & 3) == 3 ? 0x7F : 0xA5; }

void fill_canary(char *from, char *to) {
    for (char *p = from; p < to; p++) *p = (char)canary_at((uintptr_t)p);
}
#endif

struct Allocation {
    char *ptr;
    size_t bytes;
    size_t span;            // bytes rounded up to kAlignment (canary after the data)
    void *mapping;          // NULL under ASan
    size_t mapping_bytes;
    char *front;            // first canary byte before the data (after the front guard page)
    unsigned long serial;   // the n-th cudaMalloc of the process
};

std::map<uintptr_t, Allocation> live;   // by ptr
std::deque<Allocation> recently_freed;  // for messages about use after free
#ifndef CUEMU_ASAN
std::deque<Allocation> quarantine;      // freed mappings still reserved, without access
size_t quarantine_bytes = 0;
#endif
unsigned long next_serial = 1;
size_t page_bytes() { return (size_t)sysconf(_SC_PAGESIZE); }
size_t round_up(size_t n, size_t to) { return (n + to - 1) / to * to; }

std::string allocation_text(const Allocation &a) {
    char buf[160];
    snprintf(buf, sizeof buf, "cudaMalloc #%lu (%zu bytes at %p)", a.serial, a.bytes, (void *)a.ptr);
    return buf;
}

// The live allocation containing p, or the nearest one below it.
const Allocation *at_or_below(uintptr_t p) {
    auto it = live.upper_bound(p);
    if (it == live.begin()) return NULL;
    --it;
    return &it->second;
}

// false with the offset (from ptr; negative before it) of the first damaged canary byte
bool canaries_ok(const Allocation &a, ptrdiff_t *bad_offset) {
#ifdef CUEMU_ASAN
    (void)a;
    (void)bad_offset;
    return true;
#else
    for (char *p = a.ptr + a.bytes; p < a.ptr + a.span; p++) {
        if ((unsigned char)*p != canary_at((uintptr_t)p)) {
            *bad_offset = p - a.ptr;
            return false;
        }
    }
    // the front region is page- and 256-aligned at both ends: compare 8 bytes at a time
    const uint64_t word = 0x7FA5A5A57FA5A5A5ull;
    for (const uint64_t *w = (const uint64_t *)a.front; w < (const uint64_t *)a.ptr; w++) {
        if (*w != word) {
            for (const char *p = (const char *)w; p < (const char *)(w + 1); p++) {
                if ((unsigned char)*p != canary_at((uintptr_t)p)) {
                    *bad_offset = p - a.ptr;
                    break;
                }
            }
            return false;
        }
    }
    return true;
#endif
}

}   // namespace

void *device_alloc(size_t bytes) {
    Allocation a;
    a.bytes = bytes;
    a.span = round_up(bytes ? bytes : 1, kAlignment);
    a.serial = next_serial++;
#ifdef CUEMU_ASAN
    void *p = NULL;
    if (posix_memalign(&p, kAlignment, bytes ? bytes : 1) != 0) return NULL;
    a.ptr = (char *)p;
    a.mapping = NULL;
    a.mapping_bytes = 0;
    memset(a.ptr, 0xFF, bytes);
#else
    const size_t page = page_bytes();
    const size_t body = round_up(a.span, page);
    a.mapping_bytes = body + 2 * page;
    void *m = mmap(NULL, a.mapping_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED) return NULL;
    a.mapping = m;
    mprotect(m, page, PROT_NONE);
    mprotect((char *)m + page + body, page, PROT_NONE);
    a.ptr = (char *)m + page + body - a.span;
    a.front = (char *)m + page;
    fill_canary(a.front, a.ptr);
    memset(a.ptr, 0xFF, a.bytes);   // NaN
    fill_canary(a.ptr + a.bytes, a.ptr + a.span);
#endif
    live[(uintptr_t)a.ptr] = a;
    return a.ptr;
}

int device_free(void *ptr) {
    auto it = live.find((uintptr_t)ptr);
    if (it == live.end()) return -1;
    Allocation a = it->second;
    live.erase(it);
#ifdef CUEMU_ASAN
    free(a.ptr);
#else
    mprotect(a.mapping, a.mapping_bytes, PROT_NONE);
    quarantine.push_back(a);
    quarantine_bytes += a.mapping_bytes;
    while (quarantine_bytes > kQuarantineBytes || quarantine.size() > 4096) {
        munmap(quarantine.front().mapping, quarantine.front().mapping_bytes);
        quarantine_bytes -= quarantine.front().mapping_bytes;
        quarantine.pop_front();
    }
#endif
    recently_freed.push_back(a);
    if (recently_freed.size() > 4096) recently_freed.pop_front();
    return 0;
}

bool is_device_pointer(const void *ptr) {
    const Allocation *a = at_or_below((uintptr_t)ptr);
    return a && (uintptr_t)ptr < (uintptr_t)a->ptr + (a->bytes ? a->bytes : 1);
}

bool kernel_pointer_ok(const void *ptr, std::string *why) {
    if (ptr == NULL) return true;
    const Allocation *a = at_or_below((uintptr_t)ptr);
    if (a && (uintptr_t)ptr <= (uintptr_t)a->ptr + a->bytes) return true;   // (one past the end: an empty tail)
    for (const Allocation &f : recently_freed)   // freed: left to the quarantine, whose fault names the kernel
        if ((uintptr_t)ptr >= (uintptr_t)f.ptr && (uintptr_t)ptr <= (uintptr_t)f.ptr + f.bytes) return true;
    if (why) *why = describe_address(ptr);
    return false;
}

bool device_range_ok(const void *ptr, size_t bytes, std::string *why) {
    uintptr_t p = (uintptr_t)ptr;
    const Allocation *a = at_or_below(p);
    if (a && p < (uintptr_t)a->ptr + (a->bytes ? a->bytes : 1)) {
        uintptr_t end = (uintptr_t)a->ptr + a->bytes;
        if (bytes <= end - p) return true;   // (p + bytes could wrap around)
        if (why) {
            char buf[320];
            snprintf(buf, sizeof buf, "[%p, +%zu bytes) starts at offset %zu of %s and runs %zu "
                     "bytes past its end", ptr, bytes, (size_t)(p - (uintptr_t)a->ptr),
                     allocation_text(*a).c_str(), bytes - (size_t)(end - p));
            *why = buf;
        }
        return false;
    }
    if (why) *why = describe_address(ptr);
    return false;
}

std::string describe_address(const void *address) {
    uintptr_t p = (uintptr_t)address;
    char buf[320];
    const Allocation *a = at_or_below(p);
    if (a) {
        uintptr_t end = (uintptr_t)a->ptr + a->bytes;
        if (p < end) {
            snprintf(buf, sizeof buf, "%p is at offset %zu of %s", address,
                     (size_t)(p - (uintptr_t)a->ptr), allocation_text(*a).c_str());
            return buf;
        }
        if (p < end + page_bytes()) {
            snprintf(buf, sizeof buf, "%p is %zu bytes past the end of %s", address,
                     (size_t)(p - end), allocation_text(*a).c_str());
            return buf;
        }
    }
    auto above = live.lower_bound(p);
    if (above != live.end() && above->first - p <= page_bytes()) {
        snprintf(buf, sizeof buf, "%p is %zu bytes before the start of %s", address,
                 (size_t)(above->first - p), allocation_text(above->second).c_str());
        return buf;
    }
    for (auto it = recently_freed.rbegin(); it != recently_freed.rend(); ++it) {
        if (p >= (uintptr_t)it->ptr && p < (uintptr_t)it->ptr + (it->bytes ? it->bytes : 1)) {
            snprintf(buf, sizeof buf, "%p is inside %s, which was freed (use after cudaFree)", address,
                     allocation_text(*it).c_str());
            return buf;
        }
    }
    snprintf(buf, sizeof buf, "%p is not in any device allocation (a host pointer, a freed or "
             "never-allocated address)", address);
    return buf;
}

bool device_canaries_ok(const char *culprit) {
    for (auto &entry : live) {
        ptrdiff_t offset = 0;
        if (!canaries_ok(entry.second, &offset)) {
            Allocation &a = entry.second;
            if (offset < 0)
                report("%s wrote %td bytes before the start of %s (out of bounds)", culprit,
                       -offset, allocation_text(a).c_str());
            else
                report("%s wrote at offset %td of %s, %td bytes past its end (out of bounds)",
                       culprit, offset, allocation_text(a).c_str(), offset - (ptrdiff_t)a.bytes);
#ifndef CUEMU_ASAN
            // restore the canaries so that the next check reports something new
            fill_canary(a.front, a.ptr);
            fill_canary(a.ptr + a.bytes, a.ptr + a.span);
#endif
            return false;
        }
    }
    return true;
}

// ---- faults ------------------------------------------------------------------

namespace {

#ifndef CUEMU_ASAN
void on_fault(int sig, siginfo_t *info, void *) {
    std::string where = current_kernel_context();
    if (where.empty() && current_stream_operation())
        where = std::string("stream operation ") + current_stream_operation();
    fprintf(stderr, "cuemu: invalid memory access (%s) in %s: %s\n",
            sig == SIGBUS ? "SIGBUS" : "SIGSEGV",
            where.empty() ? "host code, outside any kernel" : where.c_str(),
            describe_address(info->si_addr).c_str());
    fflush(stderr);
    signal(sig, SIG_DFL);   // returning re-runs the access, which now ends the process
}
#endif

#ifdef CUEMU_ASAN
void on_sanitizer_death() {
    std::string where = current_kernel_context();
    if (!where.empty()) fprintf(stderr, "cuemu: the report above happened in %s\n", where.c_str());
}
#endif

}   // namespace

void install_fault_handler() {
    static bool installed = false;
    if (installed) return;
    installed = true;
#ifdef CUEMU_ASAN
    __sanitizer_set_death_callback(on_sanitizer_death);   // ASan reports faults itself
#else
    static char alternate_stack[64 * 1024];
    stack_t ss;
    memset(&ss, 0, sizeof ss);
    ss.ss_sp = alternate_stack;
    ss.ss_size = sizeof alternate_stack;
    sigaltstack(&ss, NULL);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_fault;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGSEGV, &sa, NULL);
    sigaction(SIGBUS, &sa, NULL);
#endif
}

}   // namespace cuemu
