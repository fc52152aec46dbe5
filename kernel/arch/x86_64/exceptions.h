/* CPU exceptions (vectors 0..31): names, error-code bits, the fatal report. */
#pragma once

#include "arch/x86_64/idt.h"
#include "lib/types.h"

enum exception_vector {
    EXC_DE = 0,  EXC_DB = 1,  EXC_NMI = 2, EXC_BP = 3,  EXC_OF = 4,  EXC_BR = 5,
    EXC_UD = 6,  EXC_NM = 7,  EXC_DF = 8,  EXC_CSO = 9, EXC_TS = 10, EXC_NP = 11,
    EXC_SS = 12, EXC_GP = 13, EXC_PF = 14, EXC_MF = 16, EXC_AC = 17, EXC_MC = 18,
    EXC_XM = 19, EXC_VE = 20, EXC_CP = 21, EXC_HV = 28, EXC_VC = 29, EXC_SX = 30,
};

/* Page-fault error code bits (Intel SDM vol. 3, 4.7). */
#define PF_ERR_PRESENT (1U << 0) /* 0: page not present; 1: protection violation */
#define PF_ERR_WRITE   (1U << 1)
#define PF_ERR_USER    (1U << 2)
#define PF_ERR_RSVD    (1U << 3) /* a reserved bit was set in a paging entry */
#define PF_ERR_FETCH   (1U << 4) /* instruction fetch */
#define PF_ERR_PK      (1U << 5) /* protection key */
#define PF_ERR_SS      (1U << 6) /* shadow stack */

/* "#PF page fault" style name for vectors 0..31, "interrupt" otherwise. */
const char *exception_name(unsigned vector);
/* Default handling of an exception: a fault inside ktest_expect_fault() is
 * caught and execution resumes at its catch point (#MC, NMI and #DF never
 * are, except a #DF from a kernel stack overflow); #BP logs and resumes
 * after the int3; an NMI is logged; anything else prints the full report
 * (registers, decoded error code, CR2/CR3, symbolized backtrace, and
 * "kernel stack overflow" when a guard page was hit), calls panic_hook()
 * and halts this CPU for good. A #DF from a stack overflow logs its
 * diagnosis line first, caught or not, and reports in full even when the
 * report or panic it interrupted ran out of stack. */
void exception_handle(struct interrupt_frame *f);
/* The guard page (its address) below a guarded kernel stack (mm/mapper.h)
 * that a fault at cr2 hit with the stack pointer at rsp, i.e. a stack
 * overflow; 0 when cr2 is not in such a guard page or rsp is more than a
 * page away from it. Reads page tables only; never faults. */
uint64_t exception_stack_guard_hit(uint64_t rsp, uint64_t cr2);
/* Breakpoints (#BP) seen and resumed from so far. */
unsigned long exception_breakpoint_count(void);
