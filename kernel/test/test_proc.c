/* Processes and the scheduler (proc/): programs from boot modules run as
 * processes on every CPU, end, are waited for, and give everything back. */
#include "arch/x86_64/cpu.h"
#include "arch/x86_64/pit.h"
#include "arch/x86_64/smp.h"
#include "lib/errno.h"
#include "lib/printf.h"
#include "proc/proc.h"
#include "proc/sched.h"
#include "test/ktest.h"
#include "test/uprog.h"
#include "uapi/abi.h"

/* Runs module `name` to its end: its wait status, or -1 (the test failed). */
static int run_to_end(const char *name)
{
    const char *argv[] = {name};
    char why[96] = "";
    int pid, status = -1;
    int err = proc_spawn(name, 1, argv, true, &pid, why, sizeof(why));
    if (err) {
        ktest_fail_at(__FILE__, __LINE__, "proc_spawn", "%s: error %d %s", name, err, why);
        return -1;
    }
    err = proc_wait_kernel_timeout(pid, &status, 20000);
    if (err) {
        ktest_fail_at(__FILE__, __LINE__, "proc_wait_kernel", "%s: error %d", name, err);
        return -1;
    }
    return status;
}

/* Runs n copies of hello at once and waits for them: what the kernel keeps
 * for good after a first run (hello's parsed segments, the stack window's
 * page tables for n more thread stacks) is then made before a baseline. */
static void warm_up(int n)
{
    int pids[32];
    const char *argv[] = {"hello"};
    char why[96];
    for (int i = 0; i < n && i < 32; i++)
        if (proc_spawn("hello", 1, argv, true, &pids[i], why, sizeof(why)))
            pids[i] = -1;
    for (int i = 0; i < n && i < 32; i++)
        if (pids[i] > 0)
            proc_wait_kernel(pids[i], NULL);
}

KTEST(proc_hello_exits_zero)
{
    warm_up(1);
    struct uprog_baseline b;
    uprog_baseline_take(&b);
    unsigned procs = proc_count();
    int status = run_to_end("hello");
    KT_EXPECT(WIFEXITED(status) && WEXITSTATUS(status) == 0, "hello's status %#x", status);
    KT_EXPECT(proc_count() == procs, "processes %u, were %u", proc_count(), procs);
    uprog_baseline_expect(&b);
}

KTEST(proc_spawn_refuses_a_missing_module)
{
    struct uprog_baseline b;
    uprog_baseline_take(&b);
    unsigned procs = proc_count();
    const char *argv[] = {"nosuch"};
    char why[96] = "";
    int pid = -1;
    KT_EXPECT(proc_spawn("nosuch", 1, argv, true, &pid, why, sizeof(why)) == -ENOENT, "%s", why);
    KT_EXPECT(pid == -1);
    KT_EXPECT(proc_count() == procs);
    KT_EXPECT(proc_wait_kernel(123456, NULL) == -ECHILD);
    KT_EXPECT(proc_kill(123456, SIGKILL) == -ESRCH);
    uprog_baseline_expect(&b);
}

/* Many processes at once, on every CPU: all end, all are reaped. */
KTEST(proc_many_at_once)
{
    enum { N = 24 };
    warm_up(N);
    struct uprog_baseline b;
    uprog_baseline_take(&b);
    int pids[N];
    const char *argv[] = {"hello"};
    char why[96];
    for (int i = 0; i < N; i++)
        KT_ASSERT(proc_spawn("hello", 1, argv, true, &pids[i], why, sizeof(why)) == 0, "%s", why);
    for (int i = 0; i < N; i++) {
        int status = -1;
        KT_EXPECT(proc_wait_kernel_timeout(pids[i], &status, 20000) == 0, "pid %d", pids[i]);
        KT_EXPECT(WIFEXITED(status) && WEXITSTATUS(status) == 0, "pid %d status %#x", pids[i],
                  status);
    }
    thread_reap_settled();
    struct sched_stats s;
    sched_get_stats(&s);
    KT_EXPECT(s.dead == 0 && s.runnable == 0, "dead %u runnable %u", s.dead, s.runnable);
    uprog_baseline_expect(&b);
}


/* ---- kernel threads and the scheduler ---- */

struct kt_shared {
    struct spinlock lock; /* protects go, done, cpus */
    int go;
    unsigned done;
    uint32_t cpus;        /* bit i: a thread ran on CPU i */
    uint64_t spins;
};

static void kt_body(void *arg)
{
    struct kt_shared *s = arg;
    spin_lock(&s->lock);
    while (!s->go) /* sleeps until the test says go: wakeup with the lock held */
        thread_sleep_on(s, &s->lock, 0);
    spin_unlock(&s->lock);
    for (int i = 0; i < 50; i++) {
        __atomic_fetch_or(&s->cpus, 1u << cpu_index(), __ATOMIC_RELAXED);
        for (int j = 0; j < 20000; j++)
            __atomic_fetch_add(&s->spins, 1, __ATOMIC_RELAXED);
        thread_yield();
    }
    spin_lock(&s->lock);
    s->done++;
    thread_wakeup(&s->done);
    spin_unlock(&s->lock);
}

/* Threads sleep until woken, run on every CPU, yield, end, and are reaped:
 * the thread count and memory come back. */
KTEST(proc_kthreads_sleep_wake_run_everywhere_and_end)
{
    enum { N = 8 };
    static struct kt_shared s;
    s = (struct kt_shared){.lock = SPINLOCK_INIT("kt-test", LOCK_RANK_NONE)};
    thread_reap_settled();
    struct sched_stats before, after;
    sched_get_stats(&before);
    struct uprog_baseline b;
    uprog_baseline_take(&b);
    for (int i = 0; i < N; i++)
        KT_ASSERT(kthread_create("kt-test", kt_body, &s, THREAD_ANY_CPU), "kthread_create");
    uint64_t t0 = rdtsc(), per_ms = tsc_per_us() * 1000;
    spin_lock(&s.lock);
    s.go = 1;
    thread_wakeup(&s);
    while (s.done < N && rdtsc() - t0 < 20000 * per_ms)
        thread_sleep_on(&s.done, &s.lock, rdtsc() + 100 * per_ms);
    unsigned done = s.done;
    spin_unlock(&s.lock);
    KT_ASSERT(done == N, "%u of %u threads finished", done, N);
    KT_EXPECT(s.spins == (uint64_t)N * 50 * 20000);
    unsigned want = smp_cpu_count() > 1 ? 2 : 1;
    KT_EXPECT((unsigned)__builtin_popcount(s.cpus) >= want, "threads ran on CPUs %#x", s.cpus);
    /* a thread counts itself done before it returns and reaches thread_exit,
     * which thread_reap_settled cannot wait for: try a few times */
    for (int tries = 0; tries < 100; tries++) {
        thread_reap_settled();
        sched_get_stats(&after);
        if (after.threads == before.threads)
            break;
        thread_yield();
    }
    KT_EXPECT(after.threads == before.threads, "threads %u, were %u", after.threads, before.threads);
    uprog_baseline_expect(&b);
}

/* A sleep with a deadline ends by itself, not before the deadline. */
KTEST(proc_sleep_deadline)
{
    static struct spinlock lk = SPINLOCK_INIT("sleep-test", LOCK_RANK_NONE);
    uint64_t per_ms = tsc_per_us() * 1000, t0 = rdtsc();
    spin_lock(&lk);
    while (rdtsc() - t0 < 30 * per_ms)
        thread_sleep_on(&lk, &lk, t0 + 30 * per_ms);
    spin_unlock(&lk);
    uint64_t ms = (rdtsc() - t0) / per_ms;
    KT_EXPECT(ms >= 30 && ms < 2000, "slept %llu ms for 30", (unsigned long long)ms);
}

/* ---- preemption and kill ---- */

struct tick_scan {
    int pids[8];
    uint64_t ticks[8];
    int n;
};

static void collect_ticks(void *ctx, const struct proc_info *pi)
{
    struct tick_scan *s = ctx;
    for (int i = 0; i < s->n; i++)
        if (pi->pid == s->pids[i])
            s->ticks[i] = pi->ticks;
}

/* More spinning programs than CPUs: the tick shares the CPUs among them
 * (each gets time), a sleeping kernel thread still wakes on time, and kill
 * ends each wherever it runs, with nothing left behind. */
KTEST(proc_spinners_share_cpus_and_die_by_kill)
{
    int n = (int)smp_cpu_count() + 1;
    if (n > 8)
        n = 8;
    warm_up(n);
    struct uprog_baseline b;
    uprog_baseline_take(&b);
    struct tick_scan s = {.n = n};
    const char *argv[] = {"spin"};
    char why[96] = "";
    for (int i = 0; i < n; i++)
        KT_ASSERT(proc_spawn("spin", 1, argv, true, &s.pids[i], why, sizeof(why)) == 0, "%s", why);
    uint64_t per_ms = tsc_per_us() * 1000;
    static struct spinlock lk = SPINLOCK_INIT("spin-test", LOCK_RANK_NONE);
    uint64_t t0 = rdtsc();
    spin_lock(&lk);
    while (rdtsc() - t0 < 400 * per_ms)
        thread_sleep_on(&s, &lk, t0 + 400 * per_ms);
    spin_unlock(&lk);
    uint64_t slept = (rdtsc() - t0) / per_ms;
    /* a 400 ms sleep among spinners: late by at most a few slices */
    KT_EXPECT(slept < 1500, "a 400 ms sleep took %llu ms with %d spinners", (unsigned long long)slept, n);
    proc_for_each(collect_ticks, &s);
    for (int i = 0; i < n; i++)
        KT_EXPECT(s.ticks[i] > 0, "spinner pid %d never ran in 400 ms (ticks %llu)", s.pids[i],
                  (unsigned long long)s.ticks[i]);
    for (int i = 0; i < n; i++)
        KT_EXPECT(proc_kill(s.pids[i], SIGKILL) == 0, "kill pid %d", s.pids[i]);
    for (int i = 0; i < n; i++) {
        int status = -1;
        KT_EXPECT(proc_wait_kernel_timeout(s.pids[i], &status, 20000) == 0, "pid %d", s.pids[i]);
        KT_EXPECT(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL, "pid %d status %#x",
                  s.pids[i], status);
    }
    KT_EXPECT(proc_kill(s.pids[0], SIGKILL) == -ESRCH, "a reaped process can still be killed");
    uprog_baseline_expect(&b);
}
