/* Ring-3 programs of the address-space self-tests (test_vm.c). They are data
 * here: test_vm.c maps their bytes into a user space as an image region at
 * UPROG_VA and runs them with ktest_expect_user_fault. Each reads its
 * parameters from the read-only page at UPARAM_VA (struct uparams in
 * test/uprog.h: base, count, stride, value) and ends with ud2, which is how a
 * run ends normally; a page fault the address space cannot resolve ends it
 * too, as a kill. Position independent; absolute addresses only for the
 * parameter page (below 2 GiB, so a 32-bit displacement holds them). */
#define UPARAM_VA 0x500000

    .section .rodata
    .balign 16

/* Writes the byte `value` at base, base + stride, ... (count times). */
    .globl uprog_touch, uprog_touch_end
uprog_touch:
    movq UPARAM_VA + 0, %rdi
    movq UPARAM_VA + 8, %rcx
    movq UPARAM_VA + 16, %rdx
    movq UPARAM_VA + 24, %rax
1:  movb %al, (%rdi)
    addq %rdx, %rdi
    decq %rcx
    jnz 1b
    ud2
uprog_touch_end:

/* Reads the bytes at base, base + stride, ... (count times). */
    .globl uprog_read, uprog_read_end
uprog_read:
    movq UPARAM_VA + 0, %rdi
    movq UPARAM_VA + 8, %rcx
    movq UPARAM_VA + 16, %rdx
1:  movb (%rdi), %al
    addq %rdx, %rdi
    decq %rcx
    jnz 1b
    ud2
uprog_read_end:

/* Jumps to base (an execute there). */
    .globl uprog_exec, uprog_exec_end
uprog_exec:
    jmpq *UPARAM_VA + 0
uprog_exec_end:

/* Moves the stack pointer down one page at a time, count times, writing
 * the byte at each new top: a stack growing into untouched pages. */
    .globl uprog_stack, uprog_stack_end
uprog_stack:
    movq UPARAM_VA + 8, %rcx
1:  subq $4096, %rsp
    movb $1, (%rsp)
    decq %rcx
    jnz 1b
    ud2
uprog_stack_end:

/* Loads ring 3's data selector into GS (which sets GS base to 0), then
 * faults: the kernel must still find its per-CPU block (isr.S swapgs). */
    .globl uprog_gs, uprog_gs_end
uprog_gs:
    movw $0x1b, %ax
    movw %ax, %gs
    movw %ax, %fs
    movq UPARAM_VA + 0, %rdi
    movb (%rdi), %al
    ud2
uprog_gs_end:

/* System calls: write of a message of its own, write from an unmapped and
 * from a kernel address, an unknown number, getpid with every register it
 * may not clobber set beforehand; each result, then those registers, RSP
 * and RFLAGS, stored at base (a writable page). Parameters: base, count =
 * the unmapped address, value = the kernel address. */
    .globl uprog_syscall, uprog_syscall_end
uprog_syscall:
    movq UPARAM_VA + 0, %rbx
    movl $1, %eax
    movl $1, %edi
    leaq 9f(%rip), %rsi
    movl $13, %edx
    syscall
    movq %rax, 0(%rbx)
    movl $1, %eax
    movl $1, %edi
    movq UPARAM_VA + 8, %rsi
    movl $5, %edx
    syscall
    movq %rax, 8(%rbx)
    movl $1, %eax
    movl $1, %edi
    movq UPARAM_VA + 24, %rsi
    movl $5, %edx
    syscall
    movq %rax, 16(%rbx)
    movl $9999, %eax
    syscall
    movq %rax, 24(%rbx)
    movq $0x1111, %r12
    movq $0x2222, %r13
    movq $0x3333, %r14
    movq $0x4444, %r15
    movq $0x5555, %rbp
    movq $0x6666, %r8
    movq $0x7777, %r9
    movq $0x8888, %r10
    movq $0x9999, %rdi
    movq $0xaaaa, %rsi
    movq $0xbbbb, %rdx
    movl $39, %eax
    syscall
    movq %rax, 32(%rbx)
    movq %r12, 40(%rbx)
    movq %r13, 48(%rbx)
    movq %r14, 56(%rbx)
    movq %r15, 64(%rbx)
    movq %rbp, 72(%rbx)
    movq %r8, 80(%rbx)
    movq %r9, 88(%rbx)
    movq %r10, 96(%rbx)
    movq %rdi, 104(%rbx)
    movq %rsi, 112(%rbx)
    movq %rdx, 120(%rbx)
    movq %rsp, 128(%rbx)
    pushfq
    popq %rax
    movq %rax, 136(%rbx)
    ud2
9:  .ascii "hello, ring 3"
uprog_syscall_end:
