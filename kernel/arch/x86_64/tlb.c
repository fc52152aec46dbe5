/* TLB shootdown (arch_tlb_shootdown, mmu_ops.h): a mapping that stopped
 * being valid on a live address space is invalidated on every other online
 * CPU that may cache it (all of them for the kernel half, the CPUs that have
 * a user space loaded for its lower half) by an IPI (SMP_VEC_TLB) before the
 * change's caller goes on.
 *
 * One shootdown at a time: tlb_lock (plain, rank LOCK_RANK_TLB, taken by
 * paging's op_end under an address-space lock) protects `req`'s range and
 * flag; `pending` is atomic, counted down by each handler. The requester
 * waits for it with interrupts as they were (on, outside early boot: rule 3
 * of docs/locking.md), so a CPU that spins on tlb_lock or on an mm lock while
 * another CPU's shootdown waits for it still takes the IPI and answers. The
 * handler takes no lock and allocates nothing. The requester flushes its own
 * TLB itself (paging's invlpg); a CPU that is not online yet loaded its CR3
 * after every change that could concern it was made, and is not asked. */
#include "arch/x86_64/cpu.h"
#include "arch/x86_64/idt.h"
#include "arch/x86_64/lapic.h"
#include "arch/x86_64/mmu_ops.h"
#include "arch/x86_64/percpu.h"
#include "arch/x86_64/smp.h"
#include "lib/panic.h"
#include "lib/spinlock.h"

/* More pages than this in one shootdown become a full flush on each CPU. */
#define SHOOTDOWN_FULL_PAGES 32

static struct spinlock tlb_lock = SPINLOCK_INIT("tlb", LOCK_RANK_TLB);
static struct {
    vaddr_t start, end; /* tlb_lock; published to the handlers by `pending` */
    bool global;        /* tlb_lock: a global entry is among them */
    unsigned pending;   /* atomic: CPUs asked that have not flushed yet */
} req;
static bool handler_set; /* tlb_lock */
static uint64_t shootdowns, pages_flushed, full_flushes; /* atomic: for the monitor and bench */

/* Invalidates [start, end) in this CPU's TLB: page by page, or all of it
 * (global entries too when `global`) above SHOOTDOWN_FULL_PAGES. end 0 is
 * 2^64: the page count and the loop are modulo 2^64. */
static void flush_local(vaddr_t start, vaddr_t end, bool global)
{
    if ((end - start) / PAGE_SIZE > SHOOTDOWN_FULL_PAGES) {
        if (global)
            arch_flush_tlb_all();
        else
            arch_write_cr3(arch_read_cr3());
        __atomic_fetch_add(&full_flushes, 1, __ATOMIC_RELAXED);
        return;
    }
    for (vaddr_t va = start; va != end; va += PAGE_SIZE)
        arch_invlpg(va);
    __atomic_fetch_add(&pages_flushed, (end - start) / PAGE_SIZE, __ATOMIC_RELAXED);
}

/* The IPI: flush what the request names, then count down. Interrupts off. */
static void tlb_ipi(struct interrupt_frame *f)
{
    (void)f;
    vaddr_t start = __atomic_load_n(&req.start, __ATOMIC_RELAXED);
    vaddr_t end = __atomic_load_n(&req.end, __ATOMIC_RELAXED);
    bool global = __atomic_load_n(&req.global, __ATOMIC_RELAXED);
    flush_local(start, end, global);
    __atomic_fetch_add(&this_cpu_block()->ipi_received, 1, __ATOMIC_RELAXED);
    __atomic_fetch_sub(&req.pending, 1, __ATOMIC_RELEASE);
    lapic_eoi();
}

void arch_tlb_shootdown(vaddr_t start, vaddr_t end, bool global)
{
    arch_tlb_shootdown_cpus(~0u, start, end, global);
}

void arch_tlb_shootdown_cpus(uint32_t cpus, vaddr_t start, vaddr_t end, bool global)
{
    unsigned me = cpu_index();
    cpus &= ~(1u << me);
    if (smp_cpu_count() <= 1 || (end && end <= start) || !cpus)
        return; /* end 0: up to the top of the address space */
    kassert(!cpu_in_irq(), "TLB shootdown from an interrupt handler");
    spin_lock(&tlb_lock);
    if (!handler_set) { /* the IDT is shared: set once, before the first IPI */
        idt_set_handler(SMP_VEC_TLB, tlb_ipi);
        handler_set = true;
    }
    bool asked[CPU_MAX] = {false};
    unsigned n = 0;
    for (unsigned i = 0; i < CPU_MAX; i++)
        if ((cpus >> i & 1) && smp_cpu_online(i))
            asked[i] = true, n++;
    if (n) {
        __atomic_store_n(&req.start, start, __ATOMIC_RELAXED);
        __atomic_store_n(&req.end, end, __ATOMIC_RELAXED);
        __atomic_store_n(&req.global, global, __ATOMIC_RELAXED);
        __atomic_store_n(&req.pending, n, __ATOMIC_RELEASE);
        /* the request is visible before any IPI (an x2APIC ICR write is not
         * ordered after earlier stores by itself) */
        __atomic_thread_fence(__ATOMIC_SEQ_CST);
        for (unsigned i = 0; i < CPU_MAX; i++)
            if (asked[i])
                smp_send_ipi(i, SMP_VEC_TLB);
        while (__atomic_load_n(&req.pending, __ATOMIC_ACQUIRE))
            cpu_relax();
        __atomic_fetch_add(&shootdowns, 1, __ATOMIC_RELAXED);
    }
    spin_unlock(&tlb_lock);
}

void arch_tlb_stats(uint64_t *count, uint64_t *pages, uint64_t *full)
{
    *count = __atomic_load_n(&shootdowns, __ATOMIC_RELAXED);
    *pages = __atomic_load_n(&pages_flushed, __ATOMIC_RELAXED);
    *full = __atomic_load_n(&full_flushes, __ATOMIC_RELAXED);
}
