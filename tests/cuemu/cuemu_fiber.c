// cuemu_fiber.c: the context switch behind cuemu_fiber.h.
//
// ucontext: makecontext on a fresh getcontext, with the same floating-point
// state set in the saved context.
// x86-64 (System V): cuemu_fiber_switch pushes the callee-saved registers
// rbp, rbx, r12-r15 and an 8-byte slot holding MXCSR and the x87 control
// word, stores rsp into from->stack_pointer, loads to->stack_pointer and pops
// the same frame. A new fiber's stack is laid out as if it had switched away:
// its frame pops zeros into the registers, the GPU's default floating-point
// state (MXCSR 0x1F80: round to nearest, no flush-to-zero -- the host may have
// set FTZ/DAZ for the CPU backend, the emulated device must not inherit it)
// and returns into cuemu_fiber_start, which aligns the stack and calls entry.
#include "cuemu_fiber.h"

#include <stdint.h>
#include <string.h>

#ifdef CUEMU_UCONTEXT

void cuemu_fiber_prepare(CuemuFiber *fiber, void *stack, size_t stack_bytes, void (*entry)(void)) {
    memset(fiber, 0, sizeof *fiber);
    getcontext(&fiber->context);
    fiber->context.uc_stack.ss_sp = stack;
    fiber->context.uc_stack.ss_size = stack_bytes;
    fiber->context.uc_link = NULL;
    makecontext(&fiber->context, entry, 0);
#if defined(__x86_64__)
    // the GPU's floating-point state, not the host's (which may flush subnormals)
    fiber->context.uc_mcontext.fpregs->mxcsr = 0x1F80;
    fiber->context.uc_mcontext.fpregs->cwd = 0x037F;
#endif
}

void cuemu_fiber_switch(CuemuFiber *from, CuemuFiber *to) {
    swapcontext(&from->context, &to->context);
}

const char *cuemu_fiber_kind(void) { return "ucontext"; }

#else

void cuemu_fiber_switch_asm(void **save_stack_pointer, void *load_stack_pointer);
void cuemu_fiber_start(void);

__asm__(
    ".text\n"
    ".globl cuemu_fiber_switch_asm\n"
    ".type cuemu_fiber_switch_asm, @function\n"
    "cuemu_fiber_switch_asm:\n"
    "    pushq %rbp\n"
    "    pushq %rbx\n"
    "    pushq %r12\n"
    "    pushq %r13\n"
    "    pushq %r14\n"
    "    pushq %r15\n"
    "    subq $8, %rsp\n"
    "    stmxcsr (%rsp)\n"
    "    fnstcw 4(%rsp)\n"
    "    movq %rsp, (%rdi)\n"
    "    movq %rsi, %rsp\n"
    "    ldmxcsr (%rsp)\n"
    "    fldcw 4(%rsp)\n"
    "    addq $8, %rsp\n"
    "    popq %r15\n"
    "    popq %r14\n"
    "    popq %r13\n"
    "    popq %r12\n"
    "    popq %rbx\n"
    "    popq %rbp\n"
    "    ret\n"
    ".size cuemu_fiber_switch_asm, .-cuemu_fiber_switch_asm\n"
    // entered by the `ret` above with r12 = entry; never returns
    ".globl cuemu_fiber_start\n"
    ".type cuemu_fiber_start, @function\n"
    "cuemu_fiber_start:\n"
    "    andq $-16, %rsp\n"
    "    xorl %ebp, %ebp\n"
    "    callq *%r12\n"
    "    ud2\n"
    ".size cuemu_fiber_start, .-cuemu_fiber_start\n");

void cuemu_fiber_prepare(CuemuFiber *fiber, void *stack, size_t stack_bytes, void (*entry)(void)) {
    uintptr_t top = ((uintptr_t)stack + stack_bytes) & ~(uintptr_t)15;
    uint64_t *sp = (uint64_t *)top;
    *--sp = 0;                               // alignment / fake return address
    *--sp = (uint64_t)(uintptr_t)cuemu_fiber_start;   // `ret` target
    *--sp = 0;                               // rbp
    *--sp = 0;                               // rbx
    *--sp = (uint64_t)(uintptr_t)entry;      // r12
    *--sp = 0;                               // r13
    *--sp = 0;                               // r14
    *--sp = 0;                               // r15
    // MXCSR 0x1F80 (all exceptions masked, round to nearest, FTZ/DAZ off) in the
    // low 4 bytes, x87 control word 0x037F (extended precision, all masked) above
    *--sp = (uint64_t)0x1F80u | ((uint64_t)0x037Fu << 32);
    fiber->stack_pointer = sp;
}

void cuemu_fiber_switch(CuemuFiber *from, CuemuFiber *to) {
    cuemu_fiber_switch_asm(&from->stack_pointer, to->stack_pointer);
}

const char *cuemu_fiber_kind(void) { return "x86-64 assembly"; }

#endif
