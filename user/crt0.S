/* The entry point of every user program (user/user.ld: ENTRY(_start)).
 * The kernel starts a program with RSP at argc, argv[] (NULL-ended) above
 * it, then envp[] (NULL-ended), as the System V x86_64 ABI lays out the
 * initial stack; RSP is 16-byte aligned there. main's return value ends the
 * process through exit_group (every thread, as C's exit does). When that
 * call returns (a program run outside any process, as the kernel's
 * self-tests run hello: -ENOSYS), ud2 ends the run. */
    .section .text.start, "ax"
    .globl _start
    .type _start, @function
_start:
    xorl %ebp, %ebp          /* the outermost frame: backtraces stop here */
    movq (%rsp), %rdi        /* argc */
    leaq 8(%rsp), %rsi       /* argv */
    leaq 16(%rsi,%rdi,8), %rdx /* envp: past argv[argc] (the NULL) */
    call main                /* RSP 16-aligned before the call, as the ABI wants */
    movl %eax, %edi          /* exit_group(main's return) */
    movl $231, %eax          /* SYS_EXIT_GROUP: abi.h has C in it, so the number is
                              * written here and checked in lib/syscall.c */
    syscall
    ud2                      /* exit_group returned: no process to end */
    .size _start, . - _start

    .section .note.GNU-stack, "", @progbits
