/* Host tests of lib/spinlock (threads stand for CPUs: each sets its own
 * host_cpu_index) and of the print lock of lib/printf.c. The debug checks
 * are tested in the debug configuration (make host-test-debug), where
 * LOCK_DEBUG is on; a panic they raise leaves the lock as it was, so a test
 * resets it with spin_force_unlock. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <string.h>

#include "lib/printf.h"
#include "lib/spinlock.h"
#include "support.h"

#define THREADS 4
#define ROUNDS  20000

struct counter {
    struct spinlock lock;
    unsigned long value;   /* lock */
    unsigned inside;       /* lock: CPUs inside the critical section, must stay 0 or 1 */
    unsigned violations;   /* lock */
};

struct worker {
    pthread_t thread;
    unsigned cpu;
    struct counter *c;
};

static void *count_up(void *arg)
{
    struct worker *w = arg;
    host_cpu_index = w->cpu;
    for (unsigned i = 0; i < ROUNDS; i++) {
        spin_lock(&w->c->lock);
        if (w->c->inside++ != 0 || !spin_held(&w->c->lock))
            w->c->violations++;
        unsigned long v = w->c->value; /* a read-modify-write the lock must keep whole */
        __asm__ volatile("" ::: "memory");
        w->c->value = v + 1;
        w->c->inside--;
        spin_unlock(&w->c->lock);
    }
    return NULL;
}

static void run_counters(struct counter *c)
{
    struct worker w[THREADS];
    for (unsigned i = 0; i < THREADS; i++) {
        w[i] = (struct worker){.cpu = i, .c = c};
        cr_assert_eq(pthread_create(&w[i].thread, NULL, count_up, &w[i]), 0);
    }
    for (unsigned i = 0; i < THREADS; i++)
        pthread_join(w[i].thread, NULL);
    cr_assert_eq(c->value, (unsigned long)THREADS * ROUNDS, "lost updates: %lu",
                 c->value);
    cr_assert_eq(c->violations, 0);
    cr_assert(!spin_is_locked(&c->lock));
}

Test(spinlock, plain_lock_excludes_other_cpus)
{
    struct counter c = {.lock = SPINLOCK_INIT("counter", LOCK_RANK_NONE)};
    run_counters(&c);
}

Test(spinlock, irq_lock_excludes_other_cpus)
{
    struct counter c = {.lock = SPINLOCK_IRQ_INIT("counter-irq", LOCK_RANK_NONE)};
    run_counters(&c);
}

Test(spinlock, held_and_locked_follow_the_holder)
{
    struct spinlock l;
    spin_init(&l, "l", LOCK_RANK_NONE);
    cr_assert(!spin_is_locked(&l));
    cr_assert(!spin_held(&l));
    spin_lock(&l);
    cr_assert(spin_is_locked(&l));
    cr_assert(spin_held(&l));
    host_cpu_index = 3; /* seen from another CPU */
    cr_assert(!spin_held(&l));
    cr_assert(spin_is_locked(&l));
    host_cpu_index = 0;
    spin_unlock(&l);
    cr_assert(!spin_is_locked(&l));
    cr_assert(!spin_held(&l));
}

struct try_arg {
    struct spinlock *l;
    bool got;
};

static void *try_from_cpu2(void *arg)
{
    struct try_arg *t = arg;
    host_cpu_index = 2;
    t->got = spin_trylock(t->l);
    if (t->got)
        spin_unlock(t->l);
    return NULL;
}

static bool trylock_on_other_cpu(struct spinlock *l)
{
    struct try_arg t = {.l = l};
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, try_from_cpu2, &t), 0);
    pthread_join(th, NULL);
    return t.got;
}

Test(spinlock, trylock_takes_only_a_free_lock)
{
    struct spinlock l = SPINLOCK_INIT("try", LOCK_RANK_PAGING);
    cr_assert(spin_trylock(&l));
    cr_assert(spin_held(&l));
    cr_assert(!trylock_on_other_cpu(&l), "a held lock is refused");
    spin_unlock(&l);
    cr_assert(trylock_on_other_cpu(&l), "a free lock is taken");
    cr_assert(!spin_is_locked(&l), "and given back by that CPU");
    /* the ticket counters stay consistent: a plain lock after a trylock works */
    spin_lock(&l);
    cr_assert(!trylock_on_other_cpu(&l));
    spin_unlock(&l);
}

Test(spinlock, init_functions_match_the_initialisers)
{
    struct spinlock a, b;
    spin_init(&a, "a", LOCK_RANK_FRAME);
    spin_init_irq(&b, "b", LOCK_RANK_PRINT);
    cr_assert_eq(a.irqsave, 0);
    cr_assert_eq(a.rank, LOCK_RANK_FRAME);
    cr_assert_str_eq(a.name, "a");
    cr_assert_eq(b.irqsave, 1);
    cr_assert_eq(b.rank, LOCK_RANK_PRINT);
}

/* A CPU that took l and stopped (the thread ends holding it). */
static void *take_and_die(void *arg)
{
    host_cpu_index = 5;
    spin_lock(arg);
    return NULL;
}

static void hold_on_dead_cpu(struct spinlock *l)
{
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, take_and_die, l), 0);
    pthread_join(th, NULL);
    cr_assert(spin_is_locked(l) && !spin_held(l));
}

Test(spinlock, force_unlock_frees_a_lock_held_by_a_stopped_cpu)
{
    struct spinlock l = SPINLOCK_INIT("stuck", LOCK_RANK_NONE);
    hold_on_dead_cpu(&l);
    spin_force_unlock(&l);
    cr_assert(!spin_is_locked(&l));
    spin_lock(&l); /* would spin for ever if the tickets were left inconsistent */
    spin_unlock(&l);
    cr_assert_eq(spin_held_count(), 0);
}

Test(spinlock, lock_for_panic_waits_then_forces)
{
    struct spinlock l = SPINLOCK_INIT("panic", LOCK_RANK_NONE);
    cr_assert(spin_lock_for_panic(&l, 10), "a free lock is simply taken");
    cr_assert(spin_held(&l));
    spin_force_unlock(&l);
    hold_on_dead_cpu(&l);
    cr_assert(!spin_lock_for_panic(&l, 1000), "a stopped holder's lock is forced");
    cr_assert(spin_held(&l));
    cr_assert(spin_is_locked(&l));
}

/* ---- the print lock (lib/printf.c) ------------------------------------------------ */

#define PRINTERS     4
#define PRINT_ROUNDS 300
#define LINE_BODY    600 /* more than the 256-byte staging buffer: several flushes per call */

static char seen[PRINTERS * PRINT_ROUNDS * (LINE_BODY + 8) + 64];
static size_t seen_len;

/* A sink that appends what it is given; called under the print lock. */
static void collect(const char *s, size_t len)
{
    if (seen_len + len < sizeof(seen)) {
        memcpy(seen + seen_len, s, len);
        seen_len += len;
    }
}

static void *printer(void *arg)
{
    unsigned k = (unsigned)(uintptr_t)arg;
    host_cpu_index = k;
    char body[LINE_BODY + 1];
    memset(body, 'a' + (int)k, LINE_BODY);
    body[LINE_BODY] = 0;
    for (unsigned i = 0; i < PRINT_ROUNDS; i++)
        kprintf("%c:%s\n", 'a' + k, body);
    return NULL;
}

Test(printf_lock, one_call_is_never_interleaved_with_another_cpus)
{
    cr_assert(kprintf_add_sink(collect));
    pthread_t th[PRINTERS];
    for (unsigned k = 0; k < PRINTERS; k++)
        cr_assert_eq(pthread_create(&th[k], NULL, printer, (void *)(uintptr_t)k), 0);
    for (unsigned k = 0; k < PRINTERS; k++)
        pthread_join(th[k], NULL);
    kprintf_remove_sink(collect);
    cr_assert_eq(seen_len, (size_t)PRINTERS * PRINT_ROUNDS * (LINE_BODY + 3));
    /* every line is one CPU's letter throughout */
    for (size_t at = 0; at < seen_len; at += LINE_BODY + 3) {
        char who = seen[at];
        cr_assert_eq(seen[at + 1], ':', "line at %zu", at);
        for (size_t j = 0; j < LINE_BODY; j++)
            cr_assert_eq(seen[at + 2 + j], who, "line at %zu mixes %c and %c", at, who,
                         seen[at + 2 + j]);
        cr_assert_eq(seen[at + 2 + LINE_BODY], '\n');
    }
}

Test(printf_lock, a_cpu_holding_the_lock_prints_through_it)
{
    /* a fault or panic raised while printing: the report must not deadlock */
    spin_lock(&print_lock);
    host_log_clear();
    kprintf("inner %d\n", 42);
    cr_assert(host_log_contains("inner 42"));
    spin_unlock(&print_lock);
    cr_assert(!spin_is_locked(&print_lock));
}

Test(printf_lock, panic_path_prints_when_another_cpu_died_printing)
{
    hold_on_dead_cpu(&print_lock);
    kprintf_panic_lock(); /* returns: a bounded wait, then the lock is forced */
    cr_assert(spin_held(&print_lock));
    host_log_clear();
    kprintf("PANIC report\n");
    cr_assert(host_log_contains("PANIC report"));
    kprintf_panic_lock(); /* again (a panic inside the report): returns at once */
    cr_assert(spin_held(&print_lock));
}

/* ---- the debug checks (LOCK_DEBUG: make host-test-debug) ---------------------------- */

#if LOCK_DEBUG
/* The panic names the check's place (spinlock.c and a line) and the text. */
static void expect_report(const char *want)
{
    cr_assert(strstr(host_panic_msg, "spinlock.c:"), "no file:line in '%s'", host_panic_msg);
    cr_assert(strstr(host_panic_msg, want), "'%s' not in '%s'", want, host_panic_msg);
}

Test(spinlock_debug, recursion_panics)
{
    struct spinlock l = SPINLOCK_INIT("rec", LOCK_RANK_PAGING);
    spin_lock(&l);
    cr_assert(HOST_EXPECT_PANIC(spin_lock(&l)));
    expect_report("recursive acquire of rec on CPU 0");
    spin_unlock(&l); /* the check fired before the second ticket: still consistent */
    cr_assert(!spin_is_locked(&l));
    cr_assert_eq(spin_held_count(), 0);
}

Test(spinlock_debug, release_by_a_non_holder_panics)
{
    struct spinlock l = SPINLOCK_INIT("foreign", LOCK_RANK_NONE);
    cr_assert(HOST_EXPECT_PANIC(spin_unlock(&l)));
    expect_report("releases foreign, held by no CPU");
    hold_on_dead_cpu(&l);
    cr_assert(HOST_EXPECT_PANIC(spin_unlock(&l)));
    expect_report("CPU 0 releases foreign, held by another CPU");
    cr_assert(spin_is_locked(&l), "the refused release changed nothing");
    spin_force_unlock(&l);
    cr_assert_eq(spin_held_count(), 0);
}

Test(spinlock_debug, out_of_order_release_panics)
{
    struct spinlock a = SPINLOCK_INIT("outer", LOCK_RANK_PAGING);
    struct spinlock b = SPINLOCK_INIT("inner", LOCK_RANK_FRAME);
    spin_lock(&a);
    spin_lock(&b);
    cr_assert(HOST_EXPECT_PANIC(spin_unlock(&a)));
    expect_report("releases outer out of order (last taken: inner)");
    spin_unlock(&b);
    spin_unlock(&a);
    cr_assert_eq(spin_held_count(), 0);
}

Test(spinlock_debug, rank_inversion_names_both_locks)
{
    struct spinlock frame = SPINLOCK_INIT("frame-lock", LOCK_RANK_FRAME);
    struct spinlock as = SPINLOCK_INIT("as-lock", LOCK_RANK_PAGING);
    spin_lock(&frame);
    cr_assert(HOST_EXPECT_PANIC(spin_lock(&as)));
    expect_report("order inversion on CPU 0: as-lock (rank paging) taken while holding "
                  "frame-lock (rank frame)");
    cr_assert(!spin_is_locked(&as), "refused before taking a ticket");
    spin_unlock(&frame);
    /* the right order is fine */
    spin_lock(&as);
    spin_lock(&frame);
    spin_unlock(&frame);
    spin_unlock(&as);
}

Test(spinlock_debug, same_rank_twice_is_an_inversion)
{
    struct spinlock a = SPINLOCK_INIT("as-a", LOCK_RANK_PAGING);
    struct spinlock b = SPINLOCK_INIT("as-b", LOCK_RANK_PAGING);
    spin_lock(&a);
    cr_assert(HOST_EXPECT_PANIC(spin_lock(&b)));
    expect_report("as-b (rank paging) taken while holding as-a (rank paging)");
    spin_unlock(&a);
}

Test(spinlock_debug, unranked_locks_are_not_ordered)
{
    struct spinlock a = SPINLOCK_INIT("free-a", LOCK_RANK_NONE);
    struct spinlock f = SPINLOCK_INIT("frame-lock", LOCK_RANK_FRAME);
    spin_lock(&f);
    spin_lock(&a);
    spin_unlock(&a);
    spin_unlock(&f);
}

Test(spinlock_debug, trylock_is_not_checked_for_order)
{
    /* a trylock never waits, so it closes no deadlock cycle (the panic path
     * may try a lock in any state) */
    struct spinlock frame = SPINLOCK_INIT("frame-lock", LOCK_RANK_FRAME);
    struct spinlock as = SPINLOCK_INIT("as-lock", LOCK_RANK_PAGING);
    spin_lock(&frame);
    cr_assert(spin_trylock(&as));
    cr_assert_eq(spin_held_count(), 2);
    spin_unlock(&as);
    spin_unlock(&frame);
}

Test(spinlock_debug, force_unlock_clears_the_held_list)
{
    struct spinlock a = SPINLOCK_INIT("a", LOCK_RANK_PAGING);
    struct spinlock b = SPINLOCK_INIT("b", LOCK_RANK_FRAME);
    spin_lock(&a);
    spin_lock(&b);
    cr_assert_eq(spin_held_count(), 2);
    spin_force_unlock(&a); /* not the last taken: removed from the middle */
    cr_assert_eq(spin_held_count(), 1);
    spin_unlock(&b); /* b is still the last taken: no out-of-order report */
    cr_assert_eq(spin_held_count(), 0);
    spin_lock(&a); /* and a can be taken again: no recursion report */
    spin_unlock(&a);
}
#else
Test(spinlock, release_build_keeps_no_held_list)
{
    struct spinlock l = SPINLOCK_INIT("l", LOCK_RANK_PAGING);
    spin_lock(&l);
    cr_assert_eq(spin_held_count(), 0);
    spin_unlock(&l);
}
#endif
