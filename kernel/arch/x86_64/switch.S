/* Thread switching (proc/sched.c) and the first return of a new user thread.
 *
 * arch_switch(prev, next): saves the callee-saved registers on prev's kernel
 * stack and its RSP in prev->rsp (offset 0 of struct thread), loads next's
 * RSP and pops next's registers; returns prev (in RAX) on next's stack, to
 * whatever next was doing when it switched out: a call of arch_switch in
 * schedule(), or, for a thread that never ran, arch_thread_entry (its stack
 * was laid out by sched.c with that as the return address). The caller-saved
 * registers need no saving: arch_switch is a call. */
#include "arch/x86_64/frame_regs.h"

    .section .text
    .globl arch_switch
    .type arch_switch, @function
arch_switch:
    pushq %rbp
    pushq %rbx
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    movq %rsp, 0(%rdi)
    movq 0(%rsi), %rsp
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbx
    popq %rbp
    movq %rdi, %rax
    ret
    .size arch_switch, . - arch_switch

/* A new thread's first instructions: RAX = the thread switched away from.
 * sched_thread_start(prev) finishes the switch and runs the thread; it does
 * not return. */
    .globl arch_thread_entry
    .type arch_thread_entry, @function
arch_thread_entry:
    movq %rax, %rdi
    xorl %ebp, %ebp                     /* the outermost frame: backtraces stop here */
    call sched_thread_start
    ud2
    .size arch_thread_entry, . - arch_thread_entry

/* arch_enter_user(frame): goes to ring 3 with the registers of *frame (a
 * struct interrupt_frame on the thread's kernel stack, ring-3 CS and SS).
 * Interrupts must be off: nothing may run between swapgs and iretq. */
    .globl arch_enter_user
    .type arch_enter_user, @function
arch_enter_user:
    movq %rdi, %rsp
    POP_FRAME_REGS
    addq $16, %rsp                      /* vector and error code */
    swapgs
    iretq
    .size arch_enter_user, . - arch_enter_user

    .section .note.GNU-stack, "", @progbits
