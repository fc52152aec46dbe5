/* Which CPU is running: the one thing portable code (mm/, lib/) needs to know
 * about SMP. Every CPU's GS base points at its struct cpu_local (set by
 * percpu_init_bsp for the bootstrap CPU before any other C code that could
 * take a lock, and by the AP entry for every other CPU), so cpu_index() is
 * one instruction. On the host (SLAYER_HOST) each thread stands for a CPU:
 * host_cpu_index is thread-local and a test gives each thread its own. */
#pragma once

#include "lib/types.h"

/* CPUs the kernel manages at most; CPUs beyond are reported and left out. */
#define CPU_MAX 16

/* The fixed head of every CPU's per-CPU block. Kernel code reaches its own
 * with %gs-relative loads; the layout up to `irq_depth` is read by assembly
 * (isr.S) and by the inline functions below, so its offsets are fixed. */
struct cpu_local {
    struct cpu_local *self; /* offset 0: this block's own address */
    uint32_t index;         /* offset 8: 0 for the bootstrap CPU, then 1, 2, ... */
    uint32_t apic_id;       /* offset 12: the local APIC's ID */
    uint32_t irq_depth;     /* offset 16: interrupts/exceptions being handled on this CPU */
    uint32_t reserved;
    uint64_t syscall_rsp;   /* offset 24: the stack SYSCALL switches to (TSS.RSP0's copy) */
    uint64_t user_rsp;      /* offset 32: ring 3's RSP while syscall_entry switches stacks */
};
#define CPU_LOCAL_SELF      0
#define CPU_LOCAL_INDEX     8
#define CPU_LOCAL_IRQ_DEPTH 16
#define CPU_LOCAL_SYSCALL_RSP 24
#define CPU_LOCAL_USER_RSP  32

#ifdef SLAYER_HOST
extern __thread unsigned host_cpu_index;
/* The running CPU's index, 0 .. CPU_MAX - 1 (host: the thread's). */
static inline unsigned cpu_index(void) { return host_cpu_index; }
/* True while an interrupt or exception handler runs on this CPU (host: never). */
static inline bool cpu_in_irq(void) { return false; }
/* Interrupts off, returning whether they were on (host: nothing to do). */
static inline uint64_t cpu_irq_save(void) { return 0; }
/* Interrupts back to what cpu_irq_save returned (host: nothing to do). */
static inline void cpu_irq_restore(uint64_t flags) { (void)flags; }
/* A spin-wait hint (host: a yield, since the host may run more threads than
 * it has cores, and a ticket lock's next holder must get to run). */
int sched_yield(void);
static inline void cpu_relax(void) { sched_yield(); }
#else
static inline unsigned cpu_index(void)
{
    uint32_t v;
    __asm__ volatile("movl %%gs:%c1, %0" : "=r"(v) : "i"(CPU_LOCAL_INDEX));
    return v;
}
static inline bool cpu_in_irq(void)
{
    uint32_t v;
    __asm__ volatile("movl %%gs:%c1, %0" : "=r"(v) : "i"(CPU_LOCAL_IRQ_DEPTH));
    return v != 0;
}
static inline uint64_t cpu_irq_save(void)
{
    uint64_t f;
    __asm__ volatile("pushfq; popq %0; cli" : "=r"(f)::"memory");
    return f;
}
static inline void cpu_irq_restore(uint64_t flags)
{
    if (flags & (1ULL << 9)) /* RFLAGS.IF */
        __asm__ volatile("sti" ::: "memory");
}
static inline void cpu_relax(void) { __asm__ volatile("pause" ::: "memory"); }
#endif
