/* The kernel's own GDT and TSS (the bootloader's GDT lives in reclaimable
 * memory and its selectors are not ours to rely on). */
#pragma once

#include "lib/types.h"

/* Selectors. The user pair is ordered data-then-code so that SYSRET (STAR
 * base 0x10 | 3) finds SS = 0x18 and CS = 0x20 later. */
#define GDT_KERNEL_CODE 0x08
#define GDT_KERNEL_DATA 0x10
#define GDT_USER_DATA   0x18
#define GDT_USER_CODE   0x20
#define GDT_TSS         0x28

/* Interrupt stack table slots (IDT entries name them; 0 = no switch).
 *
 * The CPU loads RSP from TSS.IST[n] on every delivery through an IST gate,
 * whatever RSP was: a second exception on the same IST while the first is
 * still running starts again at the top of that stack and overwrites the
 * first one's frame. So an IST may only serve vectors that cannot nest on
 * it, and each such vector gets a stack of its own:
 *   - #DF: a fault while delivering another one; a second #DF inside the
 *     handler is a triple fault (shutdown), so it never nests.
 *   - NMI: blocked by the CPU until the handler's iretq; our handler only
 *     logs and takes no exception before it (one that did would unblock NMIs
 *     at its own iretq and let a second NMI restart this stack).
 *   - #MC: while MCG_STATUS.MCIP is set a second machine check shuts the CPU
 *     down, so it never nests either.
 * NMI and #MC have distinct stacks because either can arrive while the other
 * runs (an NMI in the middle of the #MC handler, a #MC during the NMI one).
 *
 * #PF runs on the stack it interrupts (no IST), as on Linux: the handler may
 * fault again (a bad pointer while reporting, a caught fault inside a test,
 * later demand paging) and each nested #PF must push below the outer one.
 * A kernel stack overflow still gets reported: the #PF cannot push its frame
 * into the guard page, which makes it a #DF, and the #DF handler, on IST1,
 * recognises the guard page (exceptions.c). #DB and #BP stay off IST too:
 * with no SYSCALL entry there is no instruction at which the kernel runs on
 * a stack it does not trust. */
#define IST_DOUBLE_FAULT   1 /* #DF */
#define IST_NMI            2 /* NMI: can arrive at any instruction */
#define IST_MACHINE_CHECK  3 /* #MC: can arrive at any instruction */
#define IST_COUNT          3 /* slots 1..IST_COUNT are in use */
#define IST_STACK_SIZE     KiB(16)

/* The 64-bit task-state segment (Intel SDM vol. 3, 8.7). */
struct tss {
    uint32_t reserved0;
    uint64_t rsp[3];     /* stacks for a change to CPL 0..2 */
    uint64_t reserved1;
    uint64_t ist[7];     /* IST1..IST7 */
    uint64_t reserved2;
    uint16_t reserved3;
    uint16_t iomap_base; /* offset of the I/O bitmap; >= limit means none */
} PACKED;
_Static_assert(sizeof(struct tss) == 104, "TSS layout");

/* One CPU's descriptor tables: every CPU has its own GDT (its TSS descriptor
 * names its own TSS, and a loaded TSS is marked busy, so two CPUs cannot
 * share one) and its own TSS (its own IST and ring-0 stacks). */
struct gdt_block {
    uint64_t gdt[7];
    struct tss tss __attribute__((aligned(16)));
    uint64_t ist_lo[IST_COUNT], ist_hi[IST_COUNT]; /* bounds of each IST stack as last set */
};

/* Loads the bootstrap CPU's GDT (percpu_bsp()->gdt), reloads CS (far
 * return) and the data segment registers, and loads its TSS with the
 * boot-time IST stacks in .bss. Call once, early. */
void gdt_init(void);
/* Fills *g (descriptors; IST slots from g->ist_lo/ist_hi, which the caller
 * set) and loads it on the running CPU as gdt_init does. For the APs. */
void gdt_load(struct gdt_block *g);
/* The functions below act on the running CPU's block (through GS). */
/* Sets the stack the CPU switches to on an interrupt from user mode (TSS.RSP0). */
void gdt_set_kernel_stack(uint64_t rsp0);
/* The stack the CPU switches to on an interrupt from ring 3 (TSS.RSP0). */
uint64_t gdt_kernel_stack(void);
/* Makes [lo, hi) the stack of IST `ist` (1..IST_COUNT) from the next
 * exception on; false (nothing changed) for another number or an
 * empty/misaligned range. */
bool gdt_set_ist_stack(unsigned ist, uint64_t lo, uint64_t hi);
/* Bounds [*lo, *hi) of IST stack `ist` (1..IST_COUNT) as last set; false for
 * another number. */
bool gdt_ist_range(unsigned ist, uint64_t *lo, uint64_t *hi);
