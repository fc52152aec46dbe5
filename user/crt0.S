/* The entry point of every user program (user/user.ld: ENTRY(_start)).
 * The kernel starts a program with RSP at argc, argv[] (NULL-ended) above
 * it, then envp[] (NULL-ended), as the System V x86_64 ABI lays out the
 * initial stack; RSP is 16-byte aligned there. There are no system calls
 * yet: a program ends by executing ud2, which the kernel takes as its exit. */
    .section .text.start, "ax"
    .globl _start
    .type _start, @function
_start:
    xorl %ebp, %ebp          /* the outermost frame: backtraces stop here */
    movq (%rsp), %rdi        /* argc */
    leaq 8(%rsp), %rsi       /* argv */
    leaq 16(%rsi,%rdi,8), %rdx /* envp: past argv[argc] (the NULL) */
    call main                /* RSP 16-aligned before the call, as the ABI wants */
    ud2                      /* exit (no system calls yet) */
    .size _start, . - _start

    .section .note.GNU-stack, "", @progbits
