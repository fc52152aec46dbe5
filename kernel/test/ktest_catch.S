/* ktest_catch_save(ctx): a setjmp for ktest_expect_fault(). Saves the
 * callee-saved registers, the stack pointer and return address as they will
 * be after this call returns, and RFLAGS; returns 0. When a fault is caught,
 * ktest_catch_fault() makes the exception's iretq "return" from this call a
 * second time with RAX = 1. Offsets match struct ktest_catch_ctx (ktest.c). */
    .section .text
    .globl ktest_catch_save
    .type ktest_catch_save, @function
ktest_catch_save:
    movq %rbx, 0(%rdi)
    movq %rbp, 8(%rdi)
    movq %r12, 16(%rdi)
    movq %r13, 24(%rdi)
    movq %r14, 32(%rdi)
    movq %r15, 40(%rdi)
    leaq 8(%rsp), %rax                  /* RSP once we have returned */
    movq %rax, 48(%rdi)
    movq (%rsp), %rax                   /* the return address */
    movq %rax, 56(%rdi)
    pushfq
    popq %rax
    movq %rax, 64(%rdi)
    xorl %eax, %eax
    ret
    .size ktest_catch_save, . - ktest_catch_save

/* ktest_catch_restore(ctx): the longjmp half, for catches that happen outside
 * an exception (a caught panic). Restores what ktest_catch_save stored and
 * returns from that call a second time with RAX = 1. Does not return. */
    .globl ktest_catch_restore
    .type ktest_catch_restore, @function
ktest_catch_restore:
    movq 0(%rdi), %rbx
    movq 8(%rdi), %rbp
    movq 16(%rdi), %r12
    movq 24(%rdi), %r13
    movq 32(%rdi), %r14
    movq 40(%rdi), %r15
    movq 48(%rdi), %rsp
    pushq 64(%rdi)
    popfq
    movl $1, %eax
    jmpq *56(%rdi)
    .size ktest_catch_restore, . - ktest_catch_restore

/* ktest_enter_user(rip, rsp, cs, ss): iretq to ring 3 at rip on stack rsp
 * with RFLAGS = 0x2 (interrupts off). Does not return: the user code's first
 * exception is caught by ktest_catch_fault() (ktest_expect_user_fault). */
    .globl ktest_enter_user
    .type ktest_enter_user, @function
ktest_enter_user:
    cli                                 /* nothing may run between swapgs and iretq */
    swapgs                              /* ring 3's GS base in, the kernel's kept (isr.S) */
    pushq %rcx                          /* SS */
    pushq %rsi                          /* RSP */
    pushq $0x2                          /* RFLAGS: reserved bit 1 only */
    pushq %rdx                          /* CS */
    pushq %rdi                          /* RIP */
    iretq
    .size ktest_enter_user, . - ktest_enter_user
