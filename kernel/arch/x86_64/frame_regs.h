/* Assembly macros (isr.S, syscall_entry.S): the 15 general-purpose registers
 * of a struct interrupt_frame (idt.h), pushed in the order that makes r15
 * the lowest address, and popped back. Included by .S files only. */
#pragma once

.macro PUSH_FRAME_REGS
    pushq %rax
    pushq %rbx
    pushq %rcx
    pushq %rdx
    pushq %rsi
    pushq %rdi
    pushq %rbp
    pushq %r8
    pushq %r9
    pushq %r10
    pushq %r11
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
.endm

.macro POP_FRAME_REGS
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %r11
    popq %r10
    popq %r9
    popq %r8
    popq %rbp
    popq %rdi
    popq %rsi
    popq %rdx
    popq %rcx
    popq %rbx
    popq %rax
.endm
