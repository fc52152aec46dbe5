/* syscall_entry: where SYSCALL lands (LSTAR). syscall.h has the ABI.
 *
 * On entry: RCX = return RIP, R11 = RFLAGS, RSP = ring 3's, GS = ring 3's,
 * interrupts off (FMASK). No stack is usable until we switch: ring 3's RSP
 * is kept in this CPU's block while the ring-0 stack is loaded. */
#include "arch/x86_64/frame_regs.h"

/* Offsets in struct cpu_local (syscall.c asserts them). */
#define CPU_LOCAL_SYSCALL_RSP 24
#define CPU_LOCAL_USER_RSP    32

#define USER_DS  (0x18 | 3)
#define USER_CS  (0x20 | 3)
#define SYSCALL_VECTOR 0x100
/* The highest return address SYSRET may take: canonical and in the user
 * half (SYSRET to a non-canonical RCX faults in ring 0 on Intel). */
#define USER_RIP_MAX 0x00007fffffffffff

    .section .text
    .globl syscall_entry
    .type syscall_entry, @function
syscall_entry:
    swapgs
    movq %rsp, %gs:CPU_LOCAL_USER_RSP
    movq %gs:CPU_LOCAL_SYSCALL_RSP, %rsp
    /* the frame an interrupt from ring 3 would have left */
    pushq $USER_DS                      /* SS */
    pushq %gs:CPU_LOCAL_USER_RSP        /* RSP */
    pushq %r11                          /* RFLAGS */
    pushq $USER_CS                      /* CS */
    pushq %rcx                          /* RIP */
    pushq $0                            /* error code */
    pushq $SYSCALL_VECTOR
    cld
    PUSH_FRAME_REGS
    movq %rsp, %rdi
    call syscall_dispatch               /* turns interrupts on, and leaves them on */
    cli                                 /* nothing may run between swapgs and the return */
    POP_FRAME_REGS
    addq $16, %rsp                      /* vector and error code */
    /* the iret frame: RIP, CS, RFLAGS, RSP, SS */
    movq 0(%rsp), %rcx
    movabsq $USER_RIP_MAX, %r11
    cmpq %r11, %rcx
    ja 1f                               /* not a user address: the IRETQ path */
    movq 16(%rsp), %r11                 /* RFLAGS for SYSRET */
    movq 24(%rsp), %rsp                 /* ring 3's stack */
    swapgs
    sysretq
1:  swapgs
    iretq
    .size syscall_entry, . - syscall_entry
