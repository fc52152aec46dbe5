/* The exception table: kernel instructions that may fault on purpose, each
 * with the address to resume at instead (the seed of copy_from_user and
 * friends for user address spaces). An entry is emitted by the inline
 * assembly that contains the instruction (section __ex_table, collected by
 * the linker script between __extable_start and __extable_end); when such
 * an instruction raises #PF in kernel mode, exception_handle resumes at its
 * fixup, which reports the failure to the C caller. Nothing else is ever
 * resumed: a fault at any other kernel address is reported and fatal. */
#pragma once

#include "arch/x86_64/idt.h"
#include "lib/types.h"

struct extable_entry {
    uint64_t insn;  /* address of the instruction that may fault */
    uint64_t fixup; /* where to resume when it does */
};

/* When f's RIP is an instruction of the exception table: points f at its
 * fixup and returns true. Otherwise false, f unchanged. */
bool extable_fixup(struct interrupt_frame *f);

/* Assembly that follows an instruction labelled 1: allowed to fault: on a
 * fault it resumes at label 2: (after the instruction) with 1 in operand %0. */
#define EXTABLE_FAULT_TO_OP0                                                    \
    "2:\n"                                                                      \
    ".pushsection __ex_table, \"a\"\n"                                          \
    ".balign 8\n"                                                               \
    ".quad 1b, 3f\n"                                                            \
    ".popsection\n"                                                             \
    ".pushsection .text.fixup, \"ax\"\n"                                        \
    "3: movl $1, %0\n"                                                          \
    "jmp 2b\n"                                                                  \
    ".popsection\n"

/* Reads the 8 bytes at p into *out: true, or false (and *out untouched) when
 * the read page-faulted (not mapped, or not readable). Any CPU, any time. */
static inline bool read_u64_nofault(const volatile void *p, uint64_t *out)
{
    uint32_t failed = 0;
    uint64_t v;
    __asm__ volatile("1: movq (%2), %1\n" EXTABLE_FAULT_TO_OP0
                     : "+r"(failed), "=r"(v)
                     : "r"(p)
                     : "memory");
    if (failed)
        return false;
    *out = v;
    return true;
}

/* Writes v to the 8 bytes at p: true, or false (nothing written) when the
 * write page-faulted (not mapped, or not writable). Any CPU, any time. */
static inline bool write_u64_nofault(volatile void *p, uint64_t v)
{
    uint32_t failed = 0;
    __asm__ volatile("1: movq %2, (%1)\n" EXTABLE_FAULT_TO_OP0
                     : "+r"(failed)
                     : "r"(p), "r"(v)
                     : "memory");
    return !failed;
}
