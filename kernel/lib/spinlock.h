/* Spinlocks: ticket locks, of two kinds fixed when the lock is made.
 *   - Plain (SPINLOCK_INIT): interrupts stay as they are. For locks no
 *     interrupt handler ever takes: all the mm locks (the allocators and page
 *     tables are not used from interrupt handlers). A CPU waiting for one, or
 *     holding one, still takes IPIs, so a CPU that waits for a TLB
 *     shootdown's acknowledgements while holding an mm lock cannot deadlock
 *     against a CPU spinning on that lock.
 *   - Interrupt-saving (SPINLOCK_IRQ_INIT): interrupts off while held, put
 *     back as they were on release (the saved flag lives in the lock: only
 *     its holder writes it, and locks are released in the reverse order of
 *     taking). For locks an interrupt handler may take (printing).
 *
 * The debug build (LOCK_DEBUG, on with SLAYER_DEBUG) checks every acquire
 * and release against a per-CPU stack of held locks and panics naming both
 * locks on:
 *   - recursion: taking a lock this CPU already holds (a sure deadlock);
 *   - a release by a CPU that does not hold the lock, or out of order;
 *   - order inversion: taking a ranked lock while holding one of the same or
 *     a later rank (spin_lock only: a spin_trylock never waits, so it cannot
 *     close a deadlock cycle, and it is not checked for order);
 *   - a plain lock taken inside an interrupt handler.
 * The mm locks' order is written down once, in enum lock_rank below; a lock
 * of rank LOCK_RANK_NONE is not ordered. docs/locking.md lists every lock.
 * Portable: the host builds run it with threads standing for CPUs. */
#pragma once

#include "arch/x86_64/cpu_local.h"
#include "lib/types.h"

#ifndef LOCK_DEBUG
#if defined(SLAYER_DEBUG) && SLAYER_DEBUG
#define LOCK_DEBUG 1
#else
#define LOCK_DEBUG 0
#endif
#endif

/* The order of the mm locks: a CPU holding a lock may only take locks of a
 * later (greater) rank. Outermost first. */
enum lock_rank {
    LOCK_RANK_NONE = 0,   /* unordered (leaf locks outside mm) */
    LOCK_RANK_PROC,       /* proc/proc.c: the process table */
    LOCK_RANK_SCHED,      /* proc/sched.c: the run queue and every thread's state */
    LOCK_RANK_VM,         /* vm.c: one per user address space (its regions, its counts) */
    LOCK_RANK_MAPPER,     /* mapper.c: the stack window's cursor */
    LOCK_RANK_PAGING,     /* paging.c: one per address space (its tables, walk cache) */
    LOCK_RANK_HEAP_DEPOT, /* heap_slab.c: one per class (depot, slabs, lists) */
    LOCK_RANK_HEAP_SEGMENT, /* heap_segment.c: the medium tier */
    LOCK_RANK_HEAP_LARGE, /* heap_large.c: the large tier */
    LOCK_RANK_HEAP_RUNS,  /* heap_runs.c: granule table, pages held */
    LOCK_RANK_FRAMEREF,   /* frameref.c: allocating/freeing a GiB's count array */
    LOCK_RANK_FRAME,      /* frame.c: the bitmap and its summaries */
    LOCK_RANK_TLB,        /* smp: one shootdown at a time */
    LOCK_RANK_PRINT,      /* printf.c: one line at a time on the sinks */
    LOCK_RANK_COUNT
};

struct spinlock {
    uint16_t next;     /* the next ticket to hand out */
    uint16_t serving;  /* the ticket allowed in */
    uint8_t rank;      /* enum lock_rank */
    uint8_t irqsave;   /* interrupt-saving kind: interrupts off while held */
    uint8_t irq_on;    /* (irqsave) the holder's interrupt flag before it took the lock */
    uint16_t owner;    /* holder's cpu_index() + 1, 0 when free (kept in every build) */
    const char *name;  /* for reports */
};

#define SPINLOCK_INIT(nm, rk) \
    {.next = 0, .serving = 0, .rank = (rk), .irqsave = 0, .irq_on = 0, .owner = 0, .name = (nm)}
#define SPINLOCK_IRQ_INIT(nm, rk) \
    {.next = 0, .serving = 0, .rank = (rk), .irqsave = 1, .irq_on = 0, .owner = 0, .name = (nm)}

/* Makes *l a free plain lock called `name` of rank `rank`. */
void spin_init(struct spinlock *l, const char *name, enum lock_rank rank);
/* Makes *l a free interrupt-saving lock called `name` of rank `rank`. */
void spin_init_irq(struct spinlock *l, const char *name, enum lock_rank rank);

#if LOCK_DEBUG
/* Debug checks (lib/spinlock.c); each panics naming the locks involved. */
void spin_debug_acquire(const struct spinlock *l);
void spin_debug_try(const struct spinlock *l);
void spin_debug_acquired(const struct spinlock *l);
void spin_debug_release(const struct spinlock *l);
#endif

/* Takes *l, spinning until it is free (an interrupt-saving lock: with
 * interrupts off until spin_unlock). */
static inline void spin_lock(struct spinlock *l)
{
    uint64_t flags = l->irqsave ? cpu_irq_save() : 0;
#if LOCK_DEBUG
    spin_debug_acquire(l);
#endif
    uint16_t me = __atomic_fetch_add(&l->next, 1, __ATOMIC_RELAXED);
    while (__atomic_load_n(&l->serving, __ATOMIC_ACQUIRE) != me)
        cpu_relax();
    __atomic_store_n(&l->owner, (uint16_t)(cpu_index() + 1), __ATOMIC_RELAXED);
    l->irq_on = (flags & (1ULL << 9)) != 0;
#if LOCK_DEBUG
    spin_debug_acquired(l);
#endif
}

/* Takes *l if it is free right now (true), else changes nothing (false). */
static inline bool spin_trylock(struct spinlock *l)
{
    uint64_t flags = l->irqsave ? cpu_irq_save() : 0;
    /* acquire: pairs with the last holder's release of `serving` (the CAS on
     * `next` alone would not order this CPU after that holder's writes) */
    uint16_t s = __atomic_load_n(&l->serving, __ATOMIC_ACQUIRE);
    uint16_t want = s;
    if (!__atomic_compare_exchange_n(&l->next, &want, (uint16_t)(s + 1), false, __ATOMIC_ACQUIRE,
                                     __ATOMIC_RELAXED)) {
        if (l->irqsave)
            cpu_irq_restore(flags);
        return false;
    }
#if LOCK_DEBUG
    spin_debug_try(l);
#endif
    __atomic_store_n(&l->owner, (uint16_t)(cpu_index() + 1), __ATOMIC_RELAXED);
    l->irq_on = (flags & (1ULL << 9)) != 0;
#if LOCK_DEBUG
    spin_debug_acquired(l);
#endif
    return true;
}

/* Releases *l (held by this CPU); an interrupt-saving lock puts interrupts
 * back as they were when it was taken. */
static inline void spin_unlock(struct spinlock *l)
{
#if LOCK_DEBUG
    spin_debug_release(l);
#endif
    bool restore = l->irqsave && l->irq_on;
    __atomic_store_n(&l->owner, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&l->serving,
                     (uint16_t)(__atomic_load_n(&l->serving, __ATOMIC_RELAXED) + 1),
                     __ATOMIC_RELEASE);
    if (restore)
        cpu_irq_restore(1ULL << 9);
}

/* True when this CPU holds *l. */
static inline bool spin_held(const struct spinlock *l)
{
    return __atomic_load_n(&l->owner, __ATOMIC_RELAXED) == cpu_index() + 1;
}

/* True when some CPU holds *l (a snapshot). */
static inline bool spin_is_locked(const struct spinlock *l)
{
    return __atomic_load_n(&l->next, __ATOMIC_RELAXED) !=
           __atomic_load_n(&l->serving, __ATOMIC_RELAXED);
}

/* For the panic path (and tests that leave a lock dirty) only: makes *l free
 * whoever holds it, so that the reporting CPU can print after another CPU
 * stopped inside a lock. CPUs already queued for it are skipped (they wait
 * until the ticket counter wraps): a CPU that stopped while waiting must not
 * hold up the one that forces. The debug build forgets *l in the held list of
 * its holder and of this CPU. */
void spin_force_unlock(struct spinlock *l);
/* For the panic path only: takes *l, waiting at most `spins` rounds for its
 * holder, then forcing it (spin_force_unlock) and taking it. No debug checks
 * and no entry in the held list (the panic path must not panic again).
 * Returns true when it came free in time, false when it was forced. */
bool spin_lock_for_panic(struct spinlock *l, unsigned long spins);

/* Locks the debug build has seen this CPU hold right now (0 otherwise). */
unsigned spin_held_count(void);
