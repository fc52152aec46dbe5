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
 * call, as the System V ABI wants.
 *
 * GS: in the kernel, GS base is this CPU's block (cpu_local.h) and
 * IA32_KERNEL_GS_BASE holds ring 3's GS base; in ring 3 the two are
 * swapped. Ring 3 may load any GS selector (a data selector sets the base
 * to 0), so an entry from ring 3 swaps them back (swapgs) before any C code
 * reads GS, and a return to ring 3 swaps them again. Whether the return
 * goes to ring 3 is read from the frame as it is at the end, since a
 * handler may rewrite it (the ktest catcher resumes a ring-3 fault in
 * ring 0). NMI, #DF and #MC can arrive anywhere, also between a swapgs and
 * the iretq that follows it: they ask the CPU instead (GS base is a kernel
 * address in the kernel: bit 63 set), swap when it is not, and swap back
 * on the way out. */

#include "arch/x86_64/frame_regs.h"

#define MSR_GS_BASE 0xc0000101
/* Offsets in the frame once isr_common pushed the 15 registers. */
#define F_VECTOR 120
#define F_CS     144

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
    PUSH_FRAME_REGS
    xorl %ebx, %ebx                     /* rbx (callee-saved): 1 when a paranoid entry swapped */
    movq F_VECTOR(%rsp), %rax
    cmpq $2, %rax                       /* NMI */
    je 3f
    cmpq $8, %rax                       /* #DF */
    je 3f
    cmpq $18, %rax                      /* #MC */
    je 3f
    testb $3, F_CS(%rsp)
    jz 1f
    swapgs                              /* from ring 3 */
    jmp 1f
3:  movl $MSR_GS_BASE, %ecx
    rdmsr
    testl %edx, %edx
    js 1f                               /* GS base is the kernel's already */
    swapgs
    movl $1, %ebx
1:  movq %rsp, %rdi
    call interrupt_dispatch
    movq F_VECTOR(%rsp), %rax
    cmpq $2, %rax
    je 4f
    cmpq $8, %rax
    je 4f
    cmpq $18, %rax
    je 4f
    testb $3, F_CS(%rsp)
    jz 2f
    swapgs                              /* back to ring 3 */
    jmp 2f
4:  testl %ebx, %ebx
    jz 2f
    swapgs                              /* back to what the paranoid entry found */
2:  POP_FRAME_REGS
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
