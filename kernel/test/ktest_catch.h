/* The fault catcher behind ktest_expect_fault(), as seen by the exception
 * handler (arch/x86_64/exceptions.c). */
#pragma once

#include "arch/x86_64/idt.h"
#include "lib/types.h"

/* What the last caught fault looked like. */
struct ktest_fault_info {
    uint64_t vector;     /* UINT64_MAX when nothing was caught */
    uint64_t error_code;
    uint64_t cr2;        /* CR2 when the exception was taken */
    uint64_t rip;        /* where it happened */
    uint64_t cs;         /* the code segment then: (cs & 3) == 3 for ring 3 */
    uint64_t frame;      /* address of the interrupt frame: shows which stack */
};

/* When a catch is armed and f comes from kernel mode (or from ring 3, for
 * ktest_expect_user_fault): records the fault,
 * disarms, rewrites f so that iretq resumes at the catch point (callee-saved
 * registers, RSP, RIP and RFLAGS as saved there, RAX = 1) and returns true.
 * Otherwise returns false and leaves f alone. */
bool ktest_catch_fault(struct interrupt_frame *f, uint64_t cr2);
/* The fault recorded by the latest ktest_expect_fault() call. */
const struct ktest_fault_info *ktest_last_fault(void);
