/* Ring-3 programs of the address-space self-tests (test_vm.c). They are data
 * here: test_vm.c maps their bytes into a user space as an image region at
 * UPROG_VA and runs them with ktest_expect_user_fault. Each reads its
 * parameters from the read-only page at UPARAM_VA (struct uparams in
 * test_vm.c: base, count, stride, value) and ends with ud2, which is how a
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
