/* Threads and the scheduler (sched.h has the model).
 *
 * rq_lock (plain, LOCK_RANK_SCHED) protects: the run queue, the blocked and
 * dead lists, the list of every thread, each thread's state, chan,
 * wake_tsc, on_cpu and run_node, and the counts below. A switch takes it in
 * schedule() on the old thread's stack and the new thread releases it
 * (finish_switch), so a thread is never seen half switched. Interrupts are
 * off from before the lock is taken until the new thread let it go.
 *
 * A thread may become RUNNABLE while it is still on its CPU: a waker ran
 * between thread_sleep_on's marking it BLOCKED and its switch. It is then
 * queued with on_cpu set; other CPUs skip it until its switch-out finished,
 * and its own schedule() may simply pick it again. */
#include "proc/sched.h"

#include "arch/x86_64/cpu.h"
#include "arch/x86_64/gdt.h"
#include "arch/x86_64/lapic.h"
#include "arch/x86_64/percpu.h"
#include "arch/x86_64/pit.h"
#include "arch/x86_64/smp.h"
#include "lib/panic.h"
#include "lib/printf.h"
#include "lib/string.h"
#include "mm/heap.h"
#include "mm/mapper.h"
#include "mm/vm.h"
#include "proc/proc.h"

_Static_assert(__builtin_offsetof(struct thread, rsp) == 0, "switch.S reads thread->rsp at 0");

struct thread *arch_switch(struct thread *prev, struct thread *next);
extern char arch_thread_entry[];
NORETURN void arch_enter_user(struct interrupt_frame *f);
void sched_thread_start(struct thread *prev);

static struct spinlock rq_lock = SPINLOCK_INIT("sched", LOCK_RANK_SCHED);
static struct list_node runq = LIST_INIT(runq);       /* RUNNABLE threads, oldest first */
static struct list_node blocked = LIST_INIT(blocked); /* BLOCKED threads */
static struct list_node dead = LIST_INIT(dead);       /* DEAD threads, switched out for good */
static struct list_node all = LIST_INIT(all);         /* every thread not yet reaped */
static unsigned nthreads, ndead;                      /* rq_lock */
/* Threads marked dead by thread_exit that have not switched out yet (not on
 * `dead`): rq_lock for writes; thread_reap_settled reads it unlocked. */
static unsigned nexiting;
static unsigned nrunnable;                            /* rq_lock to change; read atomically */
static uint64_t earliest_wake = UINT64_MAX;           /* rq_lock to change; read atomically */
static uint64_t nswitches, npreempt;                  /* rq_lock */
static uint32_t idle_cpus;                            /* bit i: CPU i halts in its idle loop (atomic) */
static uint32_t next_tid = 1;                         /* atomic */
static bool ready;                                    /* set once by sched_init (release) */

/* The FXSAVE image of a fresh FPU: FCW 0x37f (all exceptions masked,
 * double-extended precision), MXCSR 0x1f80 (all masked, round to nearest). */
static uint8_t fpu_initial[512] __attribute__((aligned(16)));

static inline uint8_t *fpu_of(struct thread *t)
{
    return (uint8_t *)(((uintptr_t)t->fpu_area + 15) & ~(uintptr_t)15);
}

static inline struct cpu *me(void)
{
    return this_cpu_block();
}

bool sched_ready(void)
{
    return __atomic_load_n(&ready, __ATOMIC_ACQUIRE);
}

struct thread *thread_current(void)
{
    return sched_ready() ? me()->current : NULL;
}

/* A zeroed thread with a tid and a name, on the all list; NULL without memory. */
static struct thread *thread_alloc(const char *name, bool stack)
{
    struct thread *t = kcalloc(1, sizeof(*t));
    if (!t)
        return NULL;
    if (stack) {
        t->kstack_top = mapper_alloc_thread_stack(THREAD_STACK_PAGES);
        if (!t->kstack_top) {
            kfree(t);
            return NULL;
        }
    }
    t->tid = __atomic_fetch_add(&next_tid, 1, __ATOMIC_RELAXED);
    t->pinned = THREAD_ANY_CPU;
    kstrlcpy(t->name, name, sizeof(t->name));
    list_init(&t->run_node);
    list_init(&t->proc_node);
    memcpy(fpu_of(t), fpu_initial, sizeof(fpu_initial));
    spin_lock(&rq_lock);
    list_push_back(&all, &t->all_node);
    nthreads++;
    spin_unlock(&rq_lock);
    return t;
}

/* Lays out t's stack for its first switch-in: arch_switch pops six
 * registers (zero) and returns to arch_thread_entry with RSP 16-aligned.
 * base: 16-aligned, the highest address the layout may use. */
static void thread_prepare_stack(struct thread *t, uint64_t base)
{
    uint64_t x = base - 16; /* RSP after the return: 16-aligned */
    uint64_t *sp = (uint64_t *)(x - 56);
    for (int i = 0; i < 6; i++)
        sp[i] = 0;
    sp[6] = (uint64_t)(uintptr_t)arch_thread_entry;
    t->rsp = (uint64_t)(uintptr_t)sp;
}

/* ---- the run queue (rq_lock held) ---- */

/* Sends a wake-up to one halted CPU other than this one that may run t. */
static void kick_idle_cpu(const struct thread *t)
{
    uint32_t idle = __atomic_load_n(&idle_cpus, __ATOMIC_ACQUIRE) & ~(1u << cpu_index());
    if (t->pinned != THREAD_ANY_CPU)
        idle &= 1u << t->pinned;
    if (idle)
        smp_send_ipi((unsigned)__builtin_ctz(idle), SMP_VEC_RESCHED);
}

static void enqueue(struct thread *t)
{
    t->state = THREAD_RUNNABLE;
    list_push_back(&runq, &t->run_node);
    __atomic_store_n(&nrunnable, nrunnable + 1, __ATOMIC_RELAXED);
    kick_idle_cpu(t);
}

/* BLOCKED -> RUNNABLE. */
static void make_runnable(struct thread *t)
{
    list_remove(&t->run_node);
    t->chan = NULL;
    t->wake_tsc = 0;
    enqueue(t);
}

static void wake_due_sleepers(uint64_t now)
{
    if (__atomic_load_n(&earliest_wake, __ATOMIC_RELAXED) > now)
        return;
    uint64_t earliest = UINT64_MAX;
    struct thread *t, *tmp;
    list_for_each_entry_safe(t, tmp, &blocked, run_node) {
        if (!t->wake_tsc)
            continue;
        if (t->wake_tsc <= now)
            make_runnable(t);
        else if (t->wake_tsc < earliest)
            earliest = t->wake_tsc;
    }
    __atomic_store_n(&earliest_wake, earliest, __ATOMIC_RELAXED);
}

/* The next thread for CPU c: posted work first (the idle thread runs it),
 * then the oldest runnable thread allowed here, else the idle thread. */
static struct thread *pick_next(struct cpu *c, struct thread *prev)
{
    if (smp_work_pending())
        return c->idle;
    struct thread *t;
    list_for_each_entry(t, &runq, run_node) {
        if (t->on_cpu && t != prev)
            continue; /* still switching out elsewhere */
        if (t->pinned != THREAD_ANY_CPU && (unsigned)t->pinned != c->local.index)
            continue;
        list_remove(&t->run_node);
        __atomic_store_n(&nrunnable, nrunnable - 1, __ATOMIC_RELAXED);
        return t;
    }
    return c->idle;
}

/* The new thread's half of a switch: prev is off this CPU now. */
static void finish_switch(struct thread *prev)
{
    __atomic_store_n(&prev->on_cpu, 0, __ATOMIC_RELEASE);
    if (prev->state == THREAD_DEAD) {
        list_push_back(&dead, &prev->run_node);
        ndead++;
        __atomic_store_n(&nexiting, nexiting - 1, __ATOMIC_RELEASE);
    }
    spin_unlock(&rq_lock);
}

/* Gives the CPU to the next thread (maybe the same one). Any context but an
 * interrupt handler's, holding no lock. True when another thread ran (the
 * caller has been switched out and back). */
static bool schedule(void)
{
    uint64_t flags = cpu_irq_save();
    struct cpu *c = me();
    struct thread *prev = c->current;
    kassert(!cpu_in_irq(), "schedule() in an interrupt handler");
    spin_lock(&rq_lock);
    c->need_resched = 0;
    wake_due_sleepers(rdtsc());
    if (prev->state == THREAD_RUNNING) {
        if (prev->idle)
            prev->state = THREAD_RUNNABLE; /* never queued: picked when nothing else is */
        else
            enqueue(prev);
    }
    struct thread *next = pick_next(c, prev);
    if (next != c->idle) /* busy from here: no wake-up IPIs needed */
        __atomic_fetch_and(&idle_cpus, ~(1u << c->local.index), __ATOMIC_RELAXED);
    if (next == prev) {
        prev->state = THREAD_RUNNING;
        prev->slice = SCHED_SLICE_TICKS;
        spin_unlock(&rq_lock);
        cpu_irq_restore(flags);
        return false;
    }
    if (prev->state == THREAD_RUNNABLE && prev->slice == 0)
        npreempt++;
    nswitches++;
    next->state = THREAD_RUNNING;
    next->on_cpu = 1;
    next->cpu = c->local.index;
    next->slice = SCHED_SLICE_TICKS;
    next->switches++;
    prev->space = vm_current();
    if (prev->proc)
        __asm__ volatile("fxsave64 (%0)" ::"r"(fpu_of(prev)) : "memory");
    if (next->proc)
        __asm__ volatile("fxrstor64 (%0)" ::"r"(fpu_of(next)) : "memory");
    if (vm_current() != next->space)
        vm_activate(next->space);
    gdt_set_kernel_stack(next->proc ? next->kstack_top : c->boot_rsp0);
    c->current = next;
    prev = arch_switch(prev, next);
    finish_switch(prev);
    cpu_irq_restore(flags);
    return true;
}

void sched_thread_start(struct thread *prev)
{
    finish_switch(prev);
    struct thread *t = me()->current;
    if (t->proc) {
        struct interrupt_frame *f = (struct interrupt_frame *)(t->kstack_top - sizeof(*f));
        sched_return_to_user(f); /* a process killed before its first run ends here */
        arch_enter_user(f);
    }
    cpu_sti();
    t->fn(t->arg);
    thread_exit();
}

/* ---- creation ---- */

static void cpu_adopt(struct cpu *c, struct thread *t)
{
    t->state = THREAD_RUNNING;
    t->on_cpu = 1;
    t->cpu = c->local.index;
    t->pinned = (int)c->local.index;
    c->current = t;
}

void sched_init(void)
{
    *(uint16_t *)&fpu_initial[0] = 0x037f;
    *(uint32_t *)&fpu_initial[24] = 0x1f80;
    struct cpu *bsp = me();
    bsp->boot_rsp0 = gdt_kernel_stack();
    struct thread *main = thread_alloc("main", false);
    struct thread *idle = thread_alloc("idle0", true);
    kassert(main && idle, "no memory for the first threads");
    cpu_adopt(bsp, main);
    idle->idle = true;
    idle->pinned = 0;
    idle->fn = (void (*)(void *))sched_idle_loop;
    thread_prepare_stack(idle, idle->kstack_top);
    bsp->idle = idle;
    /* The APs are in smp.c's idle loop, which enters sched_idle_loop once
     * `ready` is set: their boot contexts become their idle threads. */
    for (unsigned i = 1; i < CPU_MAX; i++) {
        struct cpu *c = percpu_get(i);
        if (!c || !smp_cpu_online(i))
            continue;
        char name[16];
        ksnprintf(name, sizeof(name), "idle%u", i);
        struct thread *t = thread_alloc(name, false);
        kassert(t, "no memory for CPU %u's idle thread", i);
        t->idle = true;
        c->boot_rsp0 = c->gdt.tss.rsp[0];
        c->idle = t;
        cpu_adopt(c, t);
    }
    __atomic_store_n(&ready, true, __ATOMIC_RELEASE);
    klog("sched", "%u CPUs, tick %u ms, slice %u ticks", smp_cpu_count(), SCHED_TICK_MS,
         SCHED_SLICE_TICKS);
}

void sched_timer_start(void)
{
    lapic_timer_start_periodic(SMP_VEC_TIMER, SCHED_TICK_MS);
}

struct thread *kthread_create(const char *name, void (*fn)(void *), void *arg, int pinned)
{
    struct thread *t = thread_alloc(name, true);
    if (!t)
        return NULL;
    t->fn = fn;
    t->arg = arg;
    t->pinned = pinned;
    thread_prepare_stack(t, t->kstack_top);
    thread_start(t);
    return t;
}

struct thread *thread_create_user(struct proc *p, const char *name,
                                  const struct interrupt_frame *frame, const void *fpu)
{
    struct thread *t = thread_alloc(name, true);
    if (!t)
        return NULL;
    t->proc = p;
    t->space = p->vs;
    struct interrupt_frame *f = (struct interrupt_frame *)(t->kstack_top - sizeof(*f));
    *f = *frame;
    if (fpu)
        memcpy(fpu_of(t), fpu, sizeof(fpu_initial));
    thread_prepare_stack(t, (uint64_t)(uintptr_t)f);
    return t;
}

void thread_start(struct thread *t)
{
    uint64_t flags = cpu_irq_save();
    spin_lock(&rq_lock);
    enqueue(t);
    spin_unlock(&rq_lock);
    cpu_irq_restore(flags);
}

/* ---- blocking ---- */

void thread_fpu_reset(void)
{
    __asm__ volatile("fxrstor64 (%0)" ::"r"(fpu_initial) : "memory");
}

void thread_yield(void)
{
    schedule();
}

void thread_sleep_on(const void *chan, struct spinlock *lk, uint64_t wake_tsc)
{
    struct thread *t = me()->current;
    uint64_t flags = cpu_irq_save();
    spin_lock(&rq_lock);
    t->state = THREAD_BLOCKED;
    t->chan = chan;
    t->wake_tsc = wake_tsc;
    list_push_back(&blocked, &t->run_node);
    if (wake_tsc && wake_tsc < earliest_wake)
        __atomic_store_n(&earliest_wake, wake_tsc, __ATOMIC_RELAXED);
    spin_unlock(&rq_lock);
    if (lk)
        spin_unlock(lk); /* a wake-up from here on finds t BLOCKED or already queued */
    schedule();
    cpu_irq_restore(flags);
    if (lk)
        spin_lock(lk);
}

void thread_wakeup(const void *chan)
{
    uint64_t flags = cpu_irq_save();
    spin_lock(&rq_lock);
    struct thread *t, *tmp;
    list_for_each_entry_safe(t, tmp, &blocked, run_node)
        if (t->chan == chan)
            make_runnable(t);
    spin_unlock(&rq_lock);
    cpu_irq_restore(flags);
}

void thread_kick(struct thread *t)
{
    uint64_t flags = cpu_irq_save();
    spin_lock(&rq_lock);
    if (t->state == THREAD_BLOCKED) {
        make_runnable(t);
    } else if (t->state == THREAD_RUNNING) {
        if (t->cpu == cpu_index())
            me()->need_resched = 1;
        else
            smp_send_ipi(t->cpu, SMP_VEC_RESCHED);
    }
    spin_unlock(&rq_lock);
    cpu_irq_restore(flags);
}

NORETURN void thread_exit(void)
{
    struct thread *t = me()->current;
    kassert(!t->idle && t->kstack_top, "thread_exit of %s", t->name);
    if (vm_current())
        vm_activate(NULL);
    cpu_cli();
    spin_lock(&rq_lock);
    t->state = THREAD_DEAD;
    t->space = NULL;
    __atomic_store_n(&nexiting, nexiting + 1, __ATOMIC_RELAXED);
    spin_unlock(&rq_lock);
    schedule();
    panic("thread %u (%s) ran after its exit", t->tid, t->name);
}

unsigned thread_reap_dead(void)
{
    struct list_node mine = LIST_INIT(mine);
    uint64_t flags = cpu_irq_save();
    spin_lock(&rq_lock);
    unsigned n = 0;
    while (!list_empty(&dead)) {
        struct thread *t = list_entry(list_first(&dead), struct thread, run_node);
        list_remove(&t->run_node);
        list_remove(&t->all_node);
        list_push_back(&mine, &t->run_node);
        n++;
    }
    ndead -= n;
    nthreads -= n;
    spin_unlock(&rq_lock);
    cpu_irq_restore(flags);
    while (!list_empty(&mine)) {
        struct thread *t = list_entry(list_first(&mine), struct thread, run_node);
        list_remove(&t->run_node);
        mapper_free_thread_stack(t->kstack_top, THREAD_STACK_PAGES);
        kfree(t);
    }
    return n;
}

unsigned thread_reap_settled(void)
{
    /* A thread past thread_exit's lock is switching out on another CPU with
     * interrupts off (on this CPU it would have finished before we ran): a
     * few hundred instructions, so a spin is enough. */
    while (__atomic_load_n(&nexiting, __ATOMIC_ACQUIRE))
        cpu_pause();
    return thread_reap_dead();
}

/* ---- idle, ticks, returns to ring 3 ---- */

static bool work_waiting(void)
{
    return __atomic_load_n(&nrunnable, __ATOMIC_RELAXED) ||
           __atomic_load_n(&earliest_wake, __ATOMIC_RELAXED) <= rdtsc();
}

/* The idle loop halts whenever a look at the run queue found nothing this
 * CPU may run (a runnable thread may be pinned elsewhere, or still switching
 * out): it must not spin with interrupts off, or it would never answer a
 * TLB shootdown. The idle bit is set before the look, so a thread made
 * runnable after it sends this CPU an IPI, which ends the hlt at once. */
NORETURN void sched_idle_loop(void)
{
    uint32_t bit = 1u << cpu_index();
    for (;;) {
        cpu_cli();
        if (smp_run_posted_work())
            continue;
        __atomic_fetch_or(&idle_cpus, bit, __ATOMIC_SEQ_CST);
        bool ran = (work_waiting() || me()->need_resched) && schedule();
        if (!ran && !smp_work_pending())
            __asm__ volatile("sti; hlt" ::: "memory");
        __atomic_fetch_and(&idle_cpus, ~bit, __ATOMIC_SEQ_CST);
    }
}

void sched_idle_wait(void)
{
    if (!sched_ready()) {
        __asm__ volatile("sti; hlt" ::: "memory");
        return;
    }
    cpu_cli();
    if (work_waiting() && schedule()) {
        cpu_sti();
        return;
    }
    __asm__ volatile("sti; hlt" ::: "memory"); /* nothing this CPU may run: wait for an interrupt */
}

void sched_tick(void)
{
    if (!sched_ready())
        return;
    struct cpu *c = me();
    struct thread *t = c->current;
    t->ticks++;
    if (t->idle) {
        if (work_waiting())
            c->need_resched = 1;
        return;
    }
    if (t->slice)
        t->slice--;
    if ((!t->slice && __atomic_load_n(&nrunnable, __ATOMIC_RELAXED)) ||
        __atomic_load_n(&earliest_wake, __ATOMIC_RELAXED) <= rdtsc())
        c->need_resched = 1;
}

void sched_return_to_user(struct interrupt_frame *f)
{
    (void)f;
    struct thread *t = thread_current();
    if (!t || !t->proc) /* a kernel thread's ring-3 excursion (the self-tests) */
        return;
    for (;;) {
        if (proc_dying(t->proc)) {
            cpu_sti();
            proc_thread_exit(0);
        }
        if (!me()->need_resched)
            return;
        schedule(); /* clears need_resched */
    }
}

/* ---- counts ---- */

void sched_get_stats(struct sched_stats *s)
{
    uint64_t flags = cpu_irq_save();
    spin_lock(&rq_lock);
    s->threads = nthreads;
    s->runnable = nrunnable;
    s->dead = ndead;
    s->switches = nswitches;
    s->preemptions = npreempt;
    spin_unlock(&rq_lock);
    cpu_irq_restore(flags);
}

void sched_for_each_thread(void (*fn)(void *ctx, const struct thread *t), void *ctx)
{
    uint64_t flags = cpu_irq_save();
    spin_lock(&rq_lock);
    struct thread *t;
    list_for_each_entry(t, &all, all_node)
        fn(ctx, t);
    spin_unlock(&rq_lock);
    cpu_irq_restore(flags);
}
