// cuemu_fiber.h: the fibers the emulated CUDA threads run on. A fiber is a
// stack and a saved context; cuemu_fiber_switch saves the running context
// and resumes another. On x86-64 the switch is a dozen instructions of our
// own (callee-saved registers, MXCSR and the x87 control word, stack
// pointer); elsewhere, or with -DCUEMU_UCONTEXT, it is ucontext's
// swapcontext (portable, but a system call per switch).
#ifndef CUEMU_FIBER_H
#define CUEMU_FIBER_H

#include <stddef.h>

#if !defined(__x86_64__) && !defined(CUEMU_UCONTEXT)
#define CUEMU_UCONTEXT 1
#endif

#include <ucontext.h>

#ifdef __cplusplus
extern "C" {
#endif

// The same layout whichever switch a build uses (the scheduler may be compiled
// without -DCUEMU_UCONTEXT and linked with a ucontext cuemu_fiber.o).
typedef struct {
    void *stack_pointer;   // x86-64 switch: saved rsp while the fiber is not running
    ucontext_t context;    // ucontext switch
} CuemuFiber;

// Prepares `fiber` to run entry() on [stack, stack + stack_bytes) the first
// time it is switched to. entry must never return: its last act is a switch
// away, after which the fiber is not resumed (it may be prepared anew).
void cuemu_fiber_prepare(CuemuFiber *fiber, void *stack, size_t stack_bytes, void (*entry)(void));

// Saves the running context into `from` and resumes `to`.
void cuemu_fiber_switch(CuemuFiber *from, CuemuFiber *to);

// Which implementation this build uses: "x86-64 assembly" or "ucontext".
const char *cuemu_fiber_kind(void);

#ifdef __cplusplus
}
#endif

#endif
