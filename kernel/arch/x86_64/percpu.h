/* Per-CPU blocks: each CPU's GS base points at its own struct cpu, whose
 * first member is the struct cpu_local head portable code reads
 * (arch/x86_64/cpu_local.h). Index 0 is the bootstrap CPU (a static block);
 * the APs' blocks come from smp_cpu_prepare (one zeroed frame each, in the
 * HHDM), indices 1..n-1 in start order. Nothing is ever freed: a CPU that
 * was prepared but did not come online keeps its block, marked offline.
 * docs/smp.md draws the layout. */
#pragma once

#include "arch/x86_64/cpu_local.h"
#include "arch/x86_64/gdt.h"

/* What runs on a CPU at another's request (smp_call_on, smp_run_on_all). */
typedef void (*smp_fn)(void *arg);

struct thread;

struct cpu {
    struct cpu_local local; /* first: GS base == &local == this block */
    /* Fixed at preparation, read-only afterwards. */
    uint64_t stack_top;     /* top of the guarded kernel stack the CPU starts on */
    uint64_t cr3;           /* page tables the CPU loads first (kernel_as) */
    struct gdt_block gdt;   /* this CPU's GDT, TSS and IST bounds */
    /* Written by the CPU itself once it runs; read by anyone. */
    uint32_t online;        /* 1 once smp_ap_enter finished (release store) */
    /* IPI counters: sent counts IPIs this CPU sent (itself only writes it);
     * received counts IPIs its handlers took (itself only, in the handler). */
    uint64_t ipi_sent;
    uint64_t ipi_received;
    uint64_t timer_ticks;   /* LAPIC timer interrupts taken on this CPU */
    /* The work mailbox: a caller holding smp.c's call lock writes fn/arg,
     * then bumps work_posted (release); the CPU runs fn(arg) outside
     * interrupt context and bumps work_done (release). */
    smp_fn work_fn;
    void *work_arg;
    uint64_t work_posted;
    uint64_t work_done;
    /* The scheduler's (proc/sched.c), written by the CPU itself. */
    struct thread *current; /* the thread running here (NULL before sched_init) */
    struct thread *idle;    /* the one that runs when nothing else may */
    uint32_t need_resched;  /* switch at the next return to ring 3 (set by the tick, IPIs) */
    uint64_t boot_rsp0;     /* TSS.RSP0 for kernel threads: the CPU's own ring-0 entry stack */
};

/* Points this CPU's GS base at the bootstrap CPU's block (index 0). Call
 * first in kernel_main, before anything that takes a lock. */
void percpu_init_bsp(void);
/* Points this CPU's GS base at *c (whose head the caller filled). */
void percpu_load(struct cpu_local *c);
/* The running CPU's block head. */
struct cpu_local *this_cpu(void);
/* The running CPU's whole block. */
static inline struct cpu *this_cpu_block(void) { return (struct cpu *)this_cpu(); }
/* The bootstrap CPU's block (static storage: valid before GS is loaded). */
struct cpu *percpu_bsp(void);
/* The block of CPU index i, or NULL when no CPU has that index (yet). */
struct cpu *percpu_get(unsigned i);
/* Records c as the block of index c->local.index (smp.c, while starting APs). */
void percpu_register(struct cpu *c);
