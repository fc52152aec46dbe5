/* Interrupt entry stubs for all 256 vectors, and the common path.
 *
 * Each stub makes the stack look the same for every vector: if the CPU does
 * not push an error code (all but 8, 10-14, 17, 21, 29, 30), push a zero;
 * then push the vector number and jump to isr_common, which saves the
 * general-purpose registers to complete a struct interrupt_frame (idt.h),
 * calls interrupt_dispatch(frame) and returns with iretq.
 *
 * Stack alignment: the CPU aligns RSP to 16 before pushing its 5-word frame;
 * with 2 + 15 more words the frame is 176 bytes, so RSP is 16-aligned at the
 * call, as the System V ABI wants. */

.macro ISR_STUB v
    .balign 16
    .type isr_stub_\v, @function
isr_stub_\v:
    .if (\v == 8) || ((\v >= 10) && (\v <= 14)) || (\v == 17) || (\v == 21) || (\v == 29) || (\v == 30)
    .else
    pushq $0
    .endif
    pushq $\v
    jmp isr_common
    .size isr_stub_\v, . - isr_stub_\v
.endm

.macro ISR_TABLE_ENTRY v
    .quad isr_stub_\v
.endm

    .section .text
    .type isr_common, @function
isr_common:
    cld
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
    movq %rsp, %rdi
    call interrupt_dispatch
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
    addq $16, %rsp                      /* vector and error code */
    iretq
    .size isr_common, . - isr_common

    .altmacro
    .set vec, 0
    .rept 256
    ISR_STUB %vec
    .set vec, vec + 1
    .endr

    .section .rodata
    .balign 8
    .globl isr_stub_table
isr_stub_table:                         /* isr_stub_table[v] = entry of vector v */
    .set vec, 0
    .rept 256
    ISR_TABLE_ENTRY %vec
    .set vec, vec + 1
    .endr
    .size isr_stub_table, . - isr_stub_table
    .noaltmacro
