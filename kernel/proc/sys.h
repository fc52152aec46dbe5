/* The system-call dispatcher's portable half (proc/sys.c): the calls of
 * uapi/abi.h on the running thread's process. arch/x86_64/syscall.c enters
 * it from SYSCALL. */
#pragma once

#include "arch/x86_64/idt.h"

/* Runs the call in f (number in rax, arguments in rdi, rsi, rdx, r10, r8,
 * r9) with interrupts on; returns its result (-errno on failure). execve
 * rewrites f; exit and exit_group do not return. */
long sys_dispatch(struct interrupt_frame *f);
