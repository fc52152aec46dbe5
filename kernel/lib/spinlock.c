/* Spinlock debug checks (lib/spinlock.h): a per-CPU stack of held locks. */
#include "lib/spinlock.h"

#include "lib/panic.h"

#define HELD_MAX 8

struct held_stack {
    const struct spinlock *lock[HELD_MAX];
    unsigned n;
};
/* Written by its own CPU only (indexed by cpu_index()). */
static struct held_stack held[CPU_MAX];

UNUSED static const char *rank_name(unsigned r)
{
    static const char *const names[LOCK_RANK_COUNT] = {
        [LOCK_RANK_NONE] = "none",
        [LOCK_RANK_VM] = "vm",
        [LOCK_RANK_MAPPER] = "mapper",
        [LOCK_RANK_PAGING] = "paging",
        [LOCK_RANK_HEAP_DEPOT] = "heap-depot",
        [LOCK_RANK_HEAP_SEGMENT] = "heap-segment",
        [LOCK_RANK_HEAP_LARGE] = "heap-large",
        [LOCK_RANK_HEAP_RUNS] = "heap-runs",
        [LOCK_RANK_FRAMEREF] = "frameref",
        [LOCK_RANK_FRAME] = "frame",
        [LOCK_RANK_TLB] = "tlb",
        [LOCK_RANK_PRINT] = "print",
    };
    return r < LOCK_RANK_COUNT ? names[r] : "?";
}

void spin_init(struct spinlock *l, const char *name, enum lock_rank rank)
{
    *l = (struct spinlock)SPINLOCK_INIT(name, rank);
}

void spin_init_irq(struct spinlock *l, const char *name, enum lock_rank rank)
{
    *l = (struct spinlock)SPINLOCK_IRQ_INIT(name, rank);
}

#if LOCK_DEBUG
/* Drops l from CPU cpu's held list, wherever it sits in it. */
static void held_forget(unsigned cpu, const struct spinlock *l)
{
    struct held_stack *h = &held[cpu];
    unsigned k = 0;
    for (unsigned i = 0; i < h->n; i++)
        if (h->lock[i] != l)
            h->lock[k++] = h->lock[i];
    h->n = k;
}
#endif

void spin_force_unlock(struct spinlock *l)
{
#if LOCK_DEBUG
    unsigned owner = __atomic_load_n(&l->owner, __ATOMIC_RELAXED);
    if (owner && owner <= CPU_MAX)
        held_forget(owner - 1, l);
    held_forget(cpu_index(), l);
#endif
    __atomic_store_n(&l->owner, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&l->serving, __atomic_load_n(&l->next, __ATOMIC_RELAXED), __ATOMIC_RELEASE);
}

bool spin_lock_for_panic(struct spinlock *l, unsigned long spins)
{
    for (unsigned long i = 0;; i++) {
        uint16_t s = __atomic_load_n(&l->serving, __ATOMIC_ACQUIRE);
        uint16_t want = s;
        if (__atomic_compare_exchange_n(&l->next, &want, (uint16_t)(s + 1), false,
                                        __ATOMIC_ACQUIRE, __ATOMIC_RELAXED)) {
            __atomic_store_n(&l->owner, (uint16_t)(cpu_index() + 1), __ATOMIC_RELAXED);
            return true;
        }
        if (i == spins)
            break;
        cpu_relax();
    }
    /* The holder is presumed stopped: serve our own ticket at once, skipping
     * everyone queued before it (spin_force_unlock's rule). */
    uint16_t me = __atomic_fetch_add(&l->next, 1, __ATOMIC_RELAXED);
    __atomic_store_n(&l->serving, me, __ATOMIC_RELEASE);
    __atomic_store_n(&l->owner, (uint16_t)(cpu_index() + 1), __ATOMIC_RELAXED);
    return false;
}

#if LOCK_DEBUG
void spin_debug_acquire(const struct spinlock *l)
{
    struct held_stack *h = &held[cpu_index()];
    if (!l->irqsave && cpu_in_irq())
        panic("spinlock: %s taken in an interrupt handler on CPU %u (not an interrupt-saving "
              "lock)", l->name, cpu_index());
    if (spin_held(l))
        panic("spinlock: recursive acquire of %s on CPU %u", l->name, cpu_index());
    for (unsigned i = 0; i < h->n; i++) {
        const struct spinlock *o = h->lock[i];
        if (o == l)
            panic("spinlock: recursive acquire of %s on CPU %u", l->name, cpu_index());
        if (l->rank != LOCK_RANK_NONE && o->rank != LOCK_RANK_NONE && o->rank >= l->rank)
            panic("spinlock: order inversion on CPU %u: %s (rank %s) taken while holding %s "
                  "(rank %s)",
                  cpu_index(), l->name, rank_name(l->rank), o->name, rank_name(o->rank));
    }
    if (h->n == HELD_MAX)
        panic("spinlock: CPU %u holds %u locks taking %s", cpu_index(), h->n, l->name);
}

void spin_debug_try(const struct spinlock *l)
{
    if (!l->irqsave && cpu_in_irq())
        panic("spinlock: %s taken in an interrupt handler on CPU %u (not an interrupt-saving "
              "lock)", l->name, cpu_index());
    if (held[cpu_index()].n == HELD_MAX)
        panic("spinlock: CPU %u holds %u locks taking %s", cpu_index(), HELD_MAX, l->name);
}

void spin_debug_acquired(const struct spinlock *l)
{
    struct held_stack *h = &held[cpu_index()];
    h->lock[h->n++] = l;
}

void spin_debug_release(const struct spinlock *l)
{
    struct held_stack *h = &held[cpu_index()];
    unsigned owner = __atomic_load_n(&l->owner, __ATOMIC_RELAXED);
    if (owner != cpu_index() + 1 || !spin_is_locked(l))
        panic("spinlock: CPU %u releases %s, held by %s", cpu_index(), l->name,
              owner ? "another CPU" : "no CPU");
    if (h->n == 0 || h->lock[h->n - 1] != l)
        panic("spinlock: CPU %u releases %s out of order (last taken: %s)", cpu_index(), l->name,
              h->n ? h->lock[h->n - 1]->name : "none");
    h->n--;
}
#endif

unsigned spin_held_count(void)
{
    return held[cpu_index()].n;
}
