/* In-kernel tests of lib/spinlock: what an interrupt-saving lock does to the
 * interrupt flag (every build), the print lock's recursion rule, and in the
 * debug kernel (LOCK_DEBUG) each debug check's panic. A check panics before
 * it changes anything but the held list, so a test cleans up with
 * spin_force_unlock. */
#include "arch/x86_64/cpu.h"
#include "arch/x86_64/percpu.h"
#include "lib/printf.h"
#include "lib/spinlock.h"
#include "lib/string.h"
#include "test/ktest.h"

static bool irq_on(void)
{
    return (read_rflags() & (1ULL << 9)) != 0;
}

KTEST(lock_irq_lock_masks_interrupts_and_restores_them)
{
    struct spinlock a = SPINLOCK_IRQ_INIT("irq-a", LOCK_RANK_NONE);
    struct spinlock b = SPINLOCK_IRQ_INIT("irq-b", LOCK_RANK_NONE);
    uint64_t saved = read_rflags();
    cpu_sti();
    spin_lock(&a);
    bool off_in_a = !irq_on();
    spin_lock(&b); /* taken with interrupts already off */
    bool off_in_b = !irq_on();
    spin_unlock(&b);
    bool off_after_b = !irq_on(); /* b must not turn them on: a still holds */
    spin_unlock(&a);
    bool on_after_a = irq_on();
    /* taken with interrupts off: they stay off */
    cpu_cli();
    spin_lock(&a);
    spin_unlock(&a);
    bool still_off = !irq_on();
    if (saved & (1ULL << 9))
        cpu_sti();
    KT_EXPECT(off_in_a, "interrupts on while holding an interrupt-saving lock");
    KT_EXPECT(off_in_b);
    KT_EXPECT(off_after_b, "the inner release turned interrupts on under the outer lock");
    KT_EXPECT(on_after_a, "the outer release did not restore interrupts");
    KT_EXPECT(still_off, "a release turned on interrupts that were off when it was taken");
}

KTEST(lock_trylock_irq_lock_masks_interrupts)
{
    struct spinlock a = SPINLOCK_IRQ_INIT("irq-try", LOCK_RANK_NONE);
    uint64_t saved = read_rflags();
    cpu_sti();
    bool got = spin_trylock(&a);
    bool off = !irq_on();
    bool again = got && spin_trylock(&a); /* held: refused, interrupts stay off */
    bool off_after_refusal = !irq_on();
    if (got)
        spin_unlock(&a);
    bool on = irq_on();
    if (!(saved & (1ULL << 9)))
        cpu_cli();
    KT_EXPECT(got && !again);
    KT_EXPECT(off && off_after_refusal, "interrupts on while holding an interrupt-saving lock");
    KT_EXPECT(on, "interrupts not restored by the release");
}

KTEST(lock_plain_lock_leaves_interrupts_alone)
{
    struct spinlock a = SPINLOCK_INIT("plain", LOCK_RANK_NONE);
    uint64_t saved = read_rflags();
    cpu_sti();
    spin_lock(&a);
    bool on = irq_on();
    spin_unlock(&a);
    if (!(saved & (1ULL << 9)))
        cpu_cli();
    KT_EXPECT(on, "a plain lock turned interrupts off (IPIs must still come in)");
}

KTEST(lock_print_lock_holder_prints_through_it)
{
    /* what a fault raised inside a sink does: print while holding the lock */
    ktest_capture_start();
    spin_lock(&print_lock);
    kprintf("locks: printed while holding the print lock\n");
    spin_unlock(&print_lock);
    ktest_capture_stop();
    KT_EXPECT(strstr(ktest_captured(), "printed while holding the print lock") != NULL);
    KT_EXPECT(!spin_is_locked(&print_lock));
}

#if LOCK_DEBUG
static struct spinlock outer = SPINLOCK_INIT("kt-outer", LOCK_RANK_PAGING);
static struct spinlock inner = SPINLOCK_INIT("kt-inner", LOCK_RANK_FRAME);

static void take_outer_twice(void *arg)
{
    (void)arg;
    spin_lock(&outer);
    spin_lock(&outer);
}

static void release_free_outer(void *arg)
{
    (void)arg;
    spin_unlock(&outer);
}

static void release_out_of_order(void *arg)
{
    (void)arg;
    spin_lock(&outer);
    spin_lock(&inner);
    spin_unlock(&outer);
}

static void take_inverted(void *arg)
{
    (void)arg;
    spin_lock(&inner);
    spin_lock(&outer);
}

static void take_plain_in_handler(void *arg)
{
    (void)arg;
    this_cpu()->irq_depth++; /* as the interrupt entry does */
    spin_lock(&outer);
}

/* Leaves both locks free and this CPU's held list empty after a caught panic. */
static void reset(void)
{
    spin_force_unlock(&inner);
    spin_force_unlock(&outer);
}

KTEST(lock_debug_recursion_panics)
{
    bool p = ktest_expect_panic(take_outer_twice, NULL, "recursive acquire of kt-outer on CPU");
    reset();
    KT_EXPECT(p, "got '%s'", ktest_last_panic());
    KT_EXPECT(strstr(ktest_last_panic(), "spinlock.c:") != NULL, "no file:line");
    KT_EXPECT(spin_held_count() == 0);
}

KTEST(lock_debug_release_by_non_holder_panics)
{
    bool p = ktest_expect_panic(release_free_outer, NULL, "releases kt-outer, held by no CPU");
    reset();
    KT_EXPECT(p, "got '%s'", ktest_last_panic());
}

KTEST(lock_debug_out_of_order_release_panics)
{
    bool p = ktest_expect_panic(release_out_of_order, NULL,
                                "releases kt-outer out of order (last taken: kt-inner)");
    reset();
    KT_EXPECT(p, "got '%s'", ktest_last_panic());
    KT_EXPECT(spin_held_count() == 0);
}

KTEST(lock_debug_rank_inversion_names_both_locks)
{
    bool p = ktest_expect_panic(take_inverted, NULL,
                                "kt-outer (rank paging) taken while holding kt-inner (rank frame)");
    reset();
    KT_EXPECT(p, "got '%s'", ktest_last_panic());
    KT_EXPECT(!spin_is_locked(&outer) && spin_held_count() == 0);
}

KTEST(lock_debug_plain_lock_in_interrupt_handler_panics)
{
    unsigned depth = this_cpu()->irq_depth;
    bool p = ktest_expect_panic(take_plain_in_handler, NULL,
                                "kt-outer taken in an interrupt handler");
    this_cpu()->irq_depth = depth;
    reset();
    KT_EXPECT(p, "got '%s'", ktest_last_panic());
}
#endif
