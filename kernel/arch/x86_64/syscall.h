/* System calls from ring 3: the SYSCALL entry (syscall_entry.S) and the
 * dispatcher (syscall.c).
 *
 * ABI (Linux's, so the numbers and registers are familiar): the number in
 * RAX, arguments in RDI, RSI, RDX, R10, R8, R9; the result in RAX, an error
 * as -errno (lib/errno.h). RCX and R11 are clobbered (SYSCALL keeps the
 * return address and RFLAGS there); every other register is kept.
 *
 * The entry swaps GS (isr.S explains the convention), switches to this
 * CPU's ring-0 stack (cpu_local.syscall_rsp, TSS.RSP0's copy) and builds a
 * struct interrupt_frame there (vector SYSCALL_VECTOR), so everything that
 * reads a ring-3 frame reads this one the same way. The dispatcher runs
 * with interrupts on. The return is SYSRET, or IRETQ when the return
 * address would not be a canonical user address (SYSRET would then fault
 * in ring 0 on the user's stack). */
#pragma once
#include "arch/x86_64/idt.h"
#include "lib/types.h"

/* The frame's vector for a system call (no CPU vector has it). */
#define SYSCALL_VECTOR 0x100

/* System-call numbers, flags and structures: uapi/abi.h. */
#include "uapi/abi.h"

/* Sets this CPU's SYSCALL MSRs: EFER.SCE, STAR (the GDT's selectors), LSTAR
 * (syscall_entry) and FMASK (IF, TF, DF, AC, NT cleared on entry: SMAP binds
 * the kernel from the first instruction). Call on every CPU. */
void syscall_init_cpu(void);
/* Runs the system call in f (from syscall_entry): f->rax gets the result;
 * returns with interrupts off, after any switch or kill that was due. */
void syscall_dispatch(struct interrupt_frame *f);
/* System calls dispatched so far (all CPUs). */
uint64_t syscall_count(void);
