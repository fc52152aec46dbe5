/* usertests: the memory manager's guarantees, proved from user space (the
 * idea is xv6's usertests; the tests are SlayerOS's own).
 *
 *   usertests            every test, in order
 *   usertests <name>...  those tests only
 *
 * Each test runs in a child of its own (fork), so a test may die, and one
 * that must die (a violation) is expected to end with a given signal. Per
 * test one line: "usertests: <name> ok" or "usertests: <name> FAILED: why";
 * then "usertests: N passed, M failed"; the exit status is 0 only when all
 * passed. Around every test the runner compares the kernel's counts
 * (memstat: free frames, kernel heap bytes, spaces, processes, threads)
 * before the fork and after the wait: a test that leaves anything behind
 * fails, whatever it did itself.
 *
 * A test reports a failure with fail(), which prints the FAILED line and
 * exits 1; a test that returns has passed. Tests must not depend on each
 * other, and keep the whole run short on one emulated CPU. */
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <slayer.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "fuzzgen.h"

#define PAGE 4096ul

/* The initial stack's place and growth limit: kernel/exec/elf.h
 * (ELF_STACK_TOP, ELF_STACK_MAX); below the limit lies the guard gap. */
#define STACK_TOP   0x7ffffff00000ul
#define STACK_MAX   (8ul << 20)
#define STACK_FLOOR (STACK_TOP - STACK_MAX)

/* Addresses a program may never touch. */
#define KERNEL_TEXT  0xffffffff80000000ul /* the kernel image (-2 GiB) */
#define KERNEL_HHDM  0xffff800000000000ul /* the start of the kernel half */
#define NONCANONICAL 0x8000000000000000ul /* #GP, not #PF */
#define UNMAPPED     0x0000600000000000ul /* 96 TiB: mmap places from 16 TiB up */

static const char *current; /* the running test's name */

/* fail: prints the test's FAILED line with the reason and ends the test
 * (its process) with status 1. */
__attribute__((noreturn, format(printf, 1, 2))) static void fail(const char *fmt, ...)
{
    char why[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof(why), fmt, ap);
    va_end(ap);
    printf("usertests: %s FAILED: %s\n", current, why);
    exit(1);
}

#define CHECK(cond, ...)                                                       \
    do {                                                                       \
        if (!(cond))                                                           \
            fail(__VA_ARGS__);                                                 \
    } while (0)

static void settled(struct slayer_memstat *st);

static void stat_now(struct slayer_memstat *st)
{
    CHECK(memstat(st) == 0, "memstat: errno %d", errno);
}

static void *map(size_t len, int prot)
{
    void *p = mmap(NULL, len, prot, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    CHECK(p != MAP_FAILED, "mmap(%zu): errno %d", len, errno);
    return p;
}

/* Waits for pid; its status. */
static int reap(int pid)
{
    int st = -1;
    int r = waitpid(pid, &st, 0);
    CHECK(r == pid, "waitpid(%d): %d errno %d", pid, r, errno);
    return st;
}

/* Waits up to ms milliseconds for pid (polling), then kills it and fails:
 * a child stuck in the kernel must not hang the suite. Its status. */
static int reap_within(int pid, unsigned ms)
{
    int st = -1;
    for (unsigned waited = 0;; waited += 5) {
        int r = waitpid(pid, &st, WNOHANG);
        if (r == pid)
            return st;
        CHECK(r == 0, "waitpid(%d, WNOHANG): %d errno %d", pid, r, errno);
        if (waited >= ms) {
            kill(pid, SIGKILL);
            reap(pid);
            fail("child %d still running after %u ms", pid, ms);
        }
        usleep(5000);
    }
}

/* A child that called fail() printed its FAILED line and exited 1 (no other
 * path exits 1): its parent then ends the test quietly, one line per test. */
static void pass_on_failure(int st)
{
    if (WIFEXITED(st) && WEXITSTATUS(st) == 1)
        exit(1);
}

static const char *describe(int st)
{
    static char buf[48];
    if (WIFEXITED(st))
        snprintf(buf, sizeof(buf), "exit %d", WEXITSTATUS(st));
    else
        snprintf(buf, sizeof(buf), "signal %d", WTERMSIG(st));
    return buf;
}

/* Runs fn(arg) in a child and requires that the kernel ends it with sig. */
static void expect_killed(void (*fn)(unsigned long), unsigned long arg, int sig, const char *what)
{
    int pid = fork();
    CHECK(pid >= 0, "fork: errno %d", errno);
    if (pid == 0) {
        fn(arg);
        exit(0); /* survived */
    }
    int st = reap(pid);
    pass_on_failure(st);
    CHECK(WIFSIGNALED(st) && WTERMSIG(st) == sig, "%s: ended by %s, not signal %d", what,
          describe(st), sig);
}

/* ---- demand paging ------------------------------------------------------- */

/* A big mapping costs nothing until touched; each page written adds one
 * resident page; every byte reads zero. (Counted in this process's resident
 * pages: the free-frame count moves with the kernel's own allocations.) */
static void t_demand_paging(void)
{
    const size_t len = 64ul << 20; /* 16384 pages */
    struct slayer_memstat a, b, c;
    stat_now(&a);
    volatile unsigned char *m = map(len, PROT_READ | PROT_WRITE);
    stat_now(&b);
    CHECK(b.resident <= a.resident + 1, "mmap of 64 MiB made %lu pages resident",
          b.resident - a.resident);
    const unsigned touched = 100;
    for (unsigned i = 0; i < touched; i++) {
        size_t off = (size_t)i * (len / touched) & ~(PAGE - 1);
        CHECK(m[off] == 0 && m[off + PAGE - 1] == 0, "page %u does not read zero", i);
        m[off + 7] = (unsigned char)(i + 1);
    }
    stat_now(&c);
    CHECK(c.resident >= b.resident + touched && c.resident <= b.resident + touched + 4,
          "touching %u pages made %lu resident", touched, c.resident - b.resident);
    for (unsigned i = 0; i < touched; i++) {
        size_t off = (size_t)i * (len / touched) & ~(PAGE - 1);
        CHECK(m[off + 7] == (unsigned char)(i + 1) && m[off + 8] == 0, "page %u lost its byte", i);
    }
    CHECK(munmap((void *)m, len) == 0, "munmap: errno %d", errno);
    stat_now(&c);
    CHECK(c.resident <= a.resident + 1, "after munmap %lu pages still resident",
          c.resident - a.resident);
}

/* The stack grows on a touch below it, down to its limit. */
static void t_stack_grows(void)
{
    volatile char *deep = (volatile char *)(STACK_FLOOR + 2 * PAGE);
    deep[0] = 42;
    CHECK(deep[0] == 42 && deep[1] == 0, "the grown stack page does not work");
}

/* ---- copy-on-write fork ---------------------------------------------------- */

static void t_cow_fork(void)
{
    enum { N = 32 };
    unsigned long *m = map(N * PAGE, PROT_READ | PROT_WRITE);
    for (unsigned i = 0; i < N; i++)
        for (unsigned k = 0; k < PAGE / 8; k += 64)
            m[i * PAGE / 8 + k] = 0x1000 + i;
    struct slayer_memstat f0, f1;
    settled(&f0);
    int pid = fork();
    CHECK(pid >= 0, "fork: errno %d", errno);
    if (pid == 0) {
        struct slayer_memstat c0, c1;
        stat_now(&c0);
        for (unsigned i = 0; i < N; i++)
            if (m[i * PAGE / 8] != 0x1000 + i)
                fail("child: page %u holds %#lx, not the parent's", i, m[i * PAGE / 8]);
        for (unsigned i = 0; i < N / 2; i++)
            m[i * PAGE / 8] = 0x2000 + i;
        stat_now(&c1);
        long copies = (long)(c0.free_frames - c1.free_frames);
        if (copies < N / 2 || copies > N / 2 + 8)
            fail("child: writing %d shared pages took %ld frames", N / 2, copies);
        for (unsigned i = 0; i < N; i++) {
            unsigned long want = i < N / 2 ? 0x2000 + i : 0x1000 + i;
            if (m[i * PAGE / 8] != want)
                fail("child: page %u holds %#lx after its writes", i, m[i * PAGE / 8]);
        }
        exit(0);
    }
    int st = reap(pid);
    pass_on_failure(st);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child: %s", describe(st));
    for (unsigned i = 0; i < N; i++)
        CHECK(m[i * PAGE / 8] == 0x1000 + i, "parent: page %u holds %#lx: the child's write leaked",
              i, m[i * PAGE / 8]);
    settled(&f1);
    CHECK(f1.free_frames == f0.free_frames, "free frames %lu before the fork, %lu after the child",
          f0.free_frames, f1.free_frames);
    /* now the only owner: writing must not cost frames for good */
    for (unsigned i = 0; i < N; i++)
        m[i * PAGE / 8] = 0x3000 + i;
    settled(&f1);
    CHECK(f1.free_frames == f0.free_frames, "free frames %lu, %lu after the parent's writes",
          f0.free_frames, f1.free_frames);

    /* both write the same page at once, each reads back its own */
    pid = fork();
    CHECK(pid >= 0, "fork: errno %d", errno);
    unsigned long mine = pid == 0 ? 0xc0ffee : 0xbeef;
    for (unsigned r = 0; r < 200; r++) {
        m[5] = mine + r;
        if (r % 16 == 0)
            sched_yield();
        if (m[5] != mine + r) {
            if (pid == 0)
                exit(2);
            fail("parent sees %#lx, wrote %#lx", m[5], mine + r);
        }
    }
    if (pid == 0)
        exit(0);
    st = reap(pid);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child of the racing writes: %s", describe(st));
}

/* ---- out of resources ------------------------------------------------------ */

/* Every process forks until fork fails; exit 1 when it or a descendant saw
 * EAGAIN/ENOMEM, 2 on another error, 0 when no fork failed below it. */
static int bomb(int depth)
{
    int children = 0, saw = 0;
    for (int i = 0; i < 4; i++) {
        int pid = fork();
        if (pid == 0) {
            if (depth >= 6)
                exit(0);
            exit(bomb(depth + 1));
        }
        if (pid < 0) {
            saw = errno == EAGAIN || errno == ENOMEM ? 1 : 2;
            break;
        }
        children++;
    }
    for (; children > 0; children--) {
        int st;
        if (wait(&st) < 0)
            return 2;
        int code = WIFEXITED(st) ? WEXITSTATUS(st) : 2;
        if (code > saw)
            saw = code;
    }
    return saw;
}

static void t_fork_bomb(void)
{
    int pid = fork();
    CHECK(pid >= 0, "fork: errno %d", errno);
    if (pid == 0)
        exit(bomb(0));
    int st = reap(pid);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 1, "fork bomb: %s (1: fork failed with "
          "EAGAIN/ENOMEM, 0: it never failed, 2: another error)", describe(st));
    CHECK(wait(NULL) == -1 && errno == ECHILD, "children left after the bomb");
    struct slayer_memstat s;
    stat_now(&s);
    CHECK(s.procs < SLAYER_PROC_MAX, "%lu processes still live", s.procs);
}

/* A child touches more pages than there are frames, mapped 16 MiB at a
 * time: the kernel ends it with SIGKILL, and only it. */
static void hog(unsigned long frames)
{
    const size_t chunk = 16ul << 20;
    for (unsigned long touched = 0; touched < frames + 4096;) {
        volatile char *m = mmap(NULL, chunk, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                                -1, 0);
        if (m == MAP_FAILED)
            exit(3);
        for (size_t off = 0; off < chunk; off += PAGE, touched++)
            m[off] = 1;
    }
    exit(4); /* touched more than the machine has */
}

static void t_memory_hog(void)
{
    struct slayer_memstat s;
    stat_now(&s);
    expect_killed(hog, s.total_frames, SIGKILL, "the memory hog (3: mmap failed, 4: it "
                  "touched more pages than there are frames)");
    int pid = fork(); /* the kernel still works */
    CHECK(pid >= 0, "fork after the hog: errno %d", errno);
    if (pid == 0)
        exit(5);
    int st = reap(pid);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 5, "a child after the hog: %s", describe(st));
}

/* ---- violations: each kills the process with its signal -------------------- */

static const int rodata_word = 5;
static unsigned char data_code[16] = {0xc3}; /* ret, in .data */

static void v_rodata_write(void)
{
    *(volatile int *)(uintptr_t)&rodata_word = 6;
}

static void v_text_write(void)
{
    *(volatile unsigned char *)(uintptr_t)&v_text_write = 0xc3;
}

static void v_exec_stack(void)
{
    volatile unsigned char code[16] = {0xc3};
    ((void (*)(void))(uintptr_t)code)();
}

static void v_exec_heap(void)
{
    unsigned char *p = map(PAGE, PROT_READ | PROT_WRITE);
    p[0] = 0xc3;
    ((void (*)(void))(uintptr_t)p)();
}

static void v_exec_data(void)
{
    ((void (*)(void))(uintptr_t)data_code)();
}

static void v_stack_guard(void)
{
    *(volatile char *)(STACK_FLOOR - PAGE) = 1; /* below the growth limit: the guard gap */
}

static void v_null(void)
{
    (void)*(volatile char *)(uintptr_t)0;
}

static void v_unmapped(void)
{
    *(volatile char *)UNMAPPED = 1;
}

static void v_kernel_read(void)
{
    (void)*(volatile unsigned long *)KERNEL_TEXT;
    (void)*(volatile unsigned long *)KERNEL_HHDM;
}

static void v_kernel_write(void)
{
    *(volatile unsigned long *)KERNEL_TEXT = 0;
}

static void v_kernel_hhdm_write(void)
{
    *(volatile unsigned long *)(KERNEL_HHDM + 0x100000) = 0;
}

static void v_kernel_jump(void)
{
    ((void (*)(void))KERNEL_TEXT)();
}

static void v_noncanonical(void)
{
    (void)*(volatile unsigned long *)NONCANONICAL;
}

static void v_cli(void)
{
    __asm__ volatile("cli");
}

static void v_hlt(void)
{
    __asm__ volatile("hlt");
}

static void v_port_io(void)
{
    __asm__ volatile("outb %%al, $0x80" ::"a"(0));
}

static void v_read_cr3(void)
{
    unsigned long v;
    __asm__ volatile("mov %%cr3, %0" : "=r"(v));
}

static void v_ud2(void)
{
    __asm__ volatile("ud2");
}

static void v_divide_zero(void)
{
    unsigned a = 7, d = 0, q;
    __asm__ volatile("xorl %%edx, %%edx; divl %2" : "=a"(q) : "a"(a), "r"(d) : "rdx");
    (void)q;
}

static void v_divide_overflow(void)
{
    int q;
    __asm__ volatile("cltd; idivl %2" : "=a"(q) : "a"(INT32_MIN), "r"(-1) : "rdx");
    (void)q;
}

/* ---- mprotect and munmap ----------------------------------------------------- */

static void touch_write(unsigned long addr)
{
    *(volatile unsigned long *)addr = 1;
}

static void touch_read(unsigned long addr)
{
    (void)*(volatile unsigned long *)addr;
}

static void t_mprotect(void)
{
    unsigned long *m = map(3 * PAGE, PROT_READ | PROT_WRITE);
    m[0] = 11, m[PAGE / 8] = 22, m[2 * PAGE / 8] = 33;
    CHECK(mprotect(m + PAGE / 8, PAGE, PROT_READ) == 0, "mprotect READ: errno %d", errno);
    CHECK(m[PAGE / 8] == 22, "read-only page lost its data");
    expect_killed(touch_write, (unsigned long)(m + PAGE / 8), SIGSEGV, "write to a read-only page");
    m[0] = 12, m[2 * PAGE / 8] = 34; /* the neighbours stay writable */
    CHECK(mprotect(m + PAGE / 8, PAGE, PROT_NONE) == 0, "mprotect NONE: errno %d", errno);
    expect_killed(touch_read, (unsigned long)(m + PAGE / 8), SIGSEGV, "read of a PROT_NONE page");
    CHECK(mprotect(m, 3 * PAGE, PROT_READ | PROT_WRITE) == 0, "mprotect RW: errno %d", errno);
    CHECK(m[0] == 12 && m[PAGE / 8] == 22 && m[2 * PAGE / 8] == 34, "data lost over mprotect");
    m[PAGE / 8] = 23;
    CHECK(m[PAGE / 8] == 23, "write after mprotect RW");
    CHECK(munmap(m, 3 * PAGE) == 0, "munmap: errno %d", errno);
}

static void t_munmap(void)
{
    unsigned long *m = map(3 * PAGE, PROT_READ | PROT_WRITE);
    m[0] = 1, m[PAGE / 8] = 2, m[2 * PAGE / 8] = 3;
    struct slayer_memstat a, b;
    stat_now(&a);
    CHECK(munmap(m + PAGE / 8, PAGE) == 0, "munmap: errno %d", errno);
    stat_now(&b);
    CHECK(b.resident + 1 == a.resident, "munmap of a page: resident %lu -> %lu", a.resident,
          b.resident);
    CHECK(b.free_frames >= a.free_frames + 1, "munmap of a page freed %ld frames",
          (long)(b.free_frames - a.free_frames));
    expect_killed(touch_read, (unsigned long)(m + PAGE / 8), SIGSEGV, "read of an unmapped page");
    CHECK(m[0] == 1 && m[2 * PAGE / 8] == 3, "the neighbours of the hole lost their data");
    /* MAP_FIXED over the hole: a fresh zero page */
    void *p = mmap(m + PAGE / 8, PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS |
                   MAP_FIXED, -1, 0);
    CHECK(p == m + PAGE / 8 && m[PAGE / 8] == 0, "MAP_FIXED into the hole: %p", p);
    CHECK(munmap(m, 3 * PAGE) == 0, "munmap: errno %d", errno);
}

/* Writer threads on other CPUs increment their counters in a page while the
 * main thread mprotects it read-only (or unmaps it): the call must take
 * effect everywhere before it returns, so no counter may move after it (the
 * main thread reads them twice), and the writers die: SIGSEGV for the whole
 * process. The main thread's verdict on a late write races with that kill,
 * so it prints its FAILED line before anything else; the runner wants the
 * process ended by SIGSEGV. */
enum { WRITERS = 3 };
static volatile unsigned long *race_page;
static volatile int writer_cpu[WRITERS];

static void writer(void *arg)
{
    unsigned i = (unsigned)(uintptr_t)arg;
    for (unsigned long n = 0;; n++) {
        race_page[i * 8]++;
        if ((n & 1023) == 0)
            writer_cpu[i] = cpu();
    }
}

static void race(bool unmap)
{
    race_page = map(PAGE, PROT_READ | PROT_WRITE);
    for (unsigned i = 0; i < WRITERS; i++) {
        writer_cpu[i] = -1;
        void *stack = map(4 * PAGE, PROT_READ | PROT_WRITE);
        CHECK(thread_start(writer, (void *)(uintptr_t)i, stack, 4 * PAGE) > 0,
              "thread_start: errno %d", errno);
    }
    for (unsigned spins = 0;; spins++) { /* every writer running and writing */
        bool all = true;
        for (unsigned i = 0; i < WRITERS; i++)
            all &= writer_cpu[i] >= 0 && race_page[i * 8] > 5000;
        if (all)
            break;
        if (spins > 1000000)
            fail("the writer threads do not run");
        if (spins % 64 == 0)
            sched_yield();
    }
    unsigned long before[WRITERS];
    for (unsigned i = 0; i < WRITERS; i++)
        before[i] = race_page[i * 8];
    int r = unmap ? munmap((void *)race_page, PAGE) : mprotect((void *)race_page, PAGE, PROT_READ);
    if (r != 0)
        fail("%s: errno %d", unmap ? "munmap" : "mprotect", errno);
    if (!unmap) {
        unsigned long v1[WRITERS], v2[WRITERS];
        for (unsigned i = 0; i < WRITERS; i++)
            v1[i] = race_page[i * 8];
        for (volatile unsigned k = 0; k < 200000; k++)
            ;
        for (unsigned i = 0; i < WRITERS; i++)
            v2[i] = race_page[i * 8];
        for (unsigned i = 0; i < WRITERS; i++)
            if (v1[i] != v2[i])
                fail("writer %u (cpu %d) wrote after mprotect returned: %lu then %lu", i,
                     writer_cpu[i], v1[i], v2[i]);
        for (unsigned i = 0; i < WRITERS; i++)
            if (v1[i] < before[i])
                fail("writer %u's counter went back", i);
    }
    /* the writers must die and take the process with them: at once on real
     * CPUs; under emulation a CPU may wait for the host, so give it 3 s */
    for (unsigned naps = 0; naps < 300; naps++)
        usleep(10000);
    fail("the writers survived %s (cpus %d %d %d)", unmap ? "munmap" : "mprotect", writer_cpu[0],
         writer_cpu[1], writer_cpu[2]);
}

static void race_child(unsigned long unmap)
{
    race(unmap != 0);
}

static void t_mprotect_race(void)
{
    expect_killed(race_child, 0, SIGSEGV, "mprotect under writers");
}

static void t_munmap_race(void)
{
    expect_killed(race_child, 1, SIGSEGV, "munmap under writers");
}

/* ---- threads --------------------------------------------------------------- */

static volatile int thread_tid[SLAYER_THREADS_MAX + 1];
static volatile int hold_threads;
static volatile unsigned long thread_sum;

static void counter_thread(void *arg)
{
    unsigned i = (unsigned)(uintptr_t)arg;
    for (unsigned k = 0; k < 1000; k++)
        __atomic_fetch_add(&thread_sum, 1, __ATOMIC_RELAXED);
    thread_tid[i] = gettid();
    while (hold_threads)
        sched_yield();
}

static void t_threads(void)
{
    int me = gettid();
    hold_threads = 1;
    int started = 0, tid = 0;
    for (unsigned i = 0; i <= SLAYER_THREADS_MAX; i++) {
        void *stack = map(4 * PAGE, PROT_READ | PROT_WRITE);
        tid = thread_start(counter_thread, (void *)(uintptr_t)i, stack, 4 * PAGE);
        if (tid < 0)
            break;
        started++;
    }
    CHECK(tid < 0 && errno == EAGAIN && started == SLAYER_THREADS_MAX - 1,
          "%d threads started beside main (limit %d per process), last: %d errno %d", started,
          SLAYER_THREADS_MAX, tid, errno);
    for (unsigned spins = 0; __atomic_load_n(&thread_sum, __ATOMIC_RELAXED) <
                             1000ul * (unsigned long)started; spins++) {
        CHECK(spins < 10000000, "threads did not finish counting: %lu", thread_sum);
        sched_yield();
    }
    for (int i = 0; i < started; i++) {
        while (thread_tid[i] == 0)
            sched_yield();
        CHECK(thread_tid[i] != me, "thread %d has the main thread's id %d", i, me);
        for (int k = 0; k < i; k++)
            CHECK(thread_tid[i] != thread_tid[k], "threads %d and %d share id %d", k, i,
                  thread_tid[i]);
    }
    char *argv[] = {"hello", NULL};
    long r = sys_execve("hello", argv, NULL);
    CHECK(r == -EBUSY, "execve with other threads alive: %ld, not -EBUSY", r);
    hold_threads = 0; /* they end; returning ends the process with exit_group anyway */
}

/* ---- processes ------------------------------------------------------------- */

static unsigned long work(unsigned long seed, unsigned n)
{
    unsigned long x = seed;
    for (unsigned i = 0; i < n; i++)
        x = x * 6364136223846793005ul + 1442695040888963407ul;
    return x;
}

static void t_many_procs(void)
{
    enum { N = 20 };
    int pids[N];
    for (int i = 0; i < N; i++) {
        pids[i] = fork();
        CHECK(pids[i] >= 0, "fork %d: errno %d", i, errno);
        if (pids[i] == 0) {
            int g = fork();
            if (g < 0)
                exit(100);
            unsigned long v = work((unsigned long)i, 20000);
            if (g == 0)
                exit((int)(v & 0x3f));
            int st;
            if (waitpid(g, &st, 0) != g || !WIFEXITED(st) || WEXITSTATUS(st) != (int)(v & 0x3f))
                exit(101);
            exit(i);
        }
    }
    bool seen[N] = {false};
    for (int k = 0; k < N; k++) {
        int st;
        int pid = wait(&st);
        CHECK(pid > 0, "wait %d: errno %d", k, errno);
        int i = 0;
        while (i < N && pids[i] != pid)
            i++;
        CHECK(i < N && !seen[i], "wait gave pid %d, not a child's (or twice)", pid);
        seen[i] = true;
        CHECK(WIFEXITED(st) && WEXITSTATUS(st) == i, "child %d: %s", i, describe(st));
    }
    CHECK(wait(NULL) == -1 && errno == ECHILD, "wait without children: errno %d", errno);
}

static void t_exit_status(void)
{
    int parent = getpid();
    CHECK(parent > 0, "getpid: %d", parent);
    int pid = fork();
    CHECK(pid >= 0, "fork: errno %d", errno);
    if (pid == 0) {
        if (getppid() != parent)
            exit(1);
        if (getpid() == parent)
            exit(2);
        exit(7);
    }
    CHECK(pid != parent, "the child has the parent's pid");
    int st = reap(pid);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 7, "exit(7) gave %s (1: getppid wrong, 2: getpid "
          "the parent's)", describe(st));
    pid = fork();
    if (pid == 0)
        exit(0x1ff); /* & 0xff */
    st = reap(pid);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0xff, "exit(0x1ff) gave %s", describe(st));
    /* WNOHANG on a running child, then kill */
    pid = fork(); /* spins without a system call: only preemption lets this parent run */
    if (pid == 0)
        for (volatile unsigned long n = 0;; n++)
            ;
    CHECK(waitpid(pid, &st, WNOHANG) == 0, "WNOHANG on a running child");
    CHECK(kill(pid, SIGKILL) == 0, "kill: errno %d", errno);
    st = reap(pid);
    CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL, "killed child: %s", describe(st));
    CHECK(kill(pid, SIGKILL) == -1 && errno == ESRCH, "kill of a reaped pid: errno %d", errno);
}

static void t_exec(void)
{
    int pid = fork();
    CHECK(pid >= 0, "fork: errno %d", errno);
    if (pid == 0) {
        char *argv[] = {"hello", "from-usertests", NULL};
        execv("hello", argv);
        exit(100 + errno);
    }
    int st = reap(pid);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "execve(\"hello\"): %s", describe(st));
    pid = fork();
    if (pid == 0) {
        char *argv[] = {"/hello", NULL}; /* a leading '/' is ignored */
        execv("/hello", argv);
        exit(100 + errno);
    }
    st = reap(pid);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "execve(\"/hello\"): %s", describe(st));
    char *argv[] = {"nosuchprogram", NULL};
    CHECK(sys_execve("nosuchprogram", argv, NULL) == -ENOENT, "execve of a missing module");
    /* more argument bytes than SLAYER_ARG_MAX */
    static char big[5][1000];
    char *many[6];
    for (int i = 0; i < 5; i++) {
        memset(big[i], 'a', sizeof(big[i]) - 1);
        many[i] = big[i];
    }
    many[5] = NULL;
    CHECK(sys_execve("hello", many, NULL) == -E2BIG, "execve with 5000 bytes of argv");
}

static void t_sleep_yield(void)
{
    struct timespec bad = {0, 1000000000};
    CHECK(sys_nanosleep(&bad, NULL) == -EINVAL, "nanosleep with tv_nsec 1e9");
    for (int i = 0; i < 100; i++)
        CHECK(sched_yield() == 0, "sched_yield");
    /* a child sleeping 1 s does not hold up a child that computes */
    int sleeper = fork();
    CHECK(sleeper >= 0, "fork: errno %d", errno);
    if (sleeper == 0)
        exit(usleep(1000000) == 0 ? 0 : 1);
    int worker = fork();
    CHECK(worker >= 0, "fork: errno %d", errno);
    if (worker == 0) {
        work(1, 200000);
        exit(0);
    }
    int st;
    int first = wait(&st);
    CHECK(first == worker, "the sleeper (%d) ended before the worker (%d): %d", sleeper, worker,
          first);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "worker: %s", describe(st));
    st = reap(sleeper);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "sleeper: %s", describe(st));
    struct timespec ts = {0, 20000000};
    CHECK(nanosleep(&ts, NULL) == 0, "nanosleep 20 ms: errno %d", errno);
}

/* One child of fpu_switch: its own values in all 16 XMM registers, MXCSR and
 * the x87 control word, then system calls that switch (sched_yield) and a
 * spin the tick may preempt in ring 3, all inside one asm block so that no
 * compiled code touches the registers between the load and the store; the
 * values must come back. Exits 0, or 2 + the round that lost them. */
static void fpu_child(unsigned long k)
{
    unsigned char in[256] __attribute__((aligned(16))), out[256] __attribute__((aligned(16)));
    for (int i = 0; i < 256; i++)
        in[i] = (unsigned char)(k * 37 + (unsigned long)i * 11 + 1);
    unsigned mx_in = 0x1f80u | (unsigned)(k & 3) << 13, mx_out = 0; /* rounding control */
    unsigned short cw_in = (unsigned short)(0x037fu ^ (unsigned)(k & 3) << 10), cw_out = 0;
    for (int round = 0; round < 200; round++) {
        __asm__ volatile("ldmxcsr %2\n\tfldcw %3\n\t"
                         "movdqu 0(%0), %%xmm0\n\tmovdqu 16(%0), %%xmm1\n\t"
                         "movdqu 32(%0), %%xmm2\n\tmovdqu 48(%0), %%xmm3\n\t"
                         "movdqu 64(%0), %%xmm4\n\tmovdqu 80(%0), %%xmm5\n\t"
                         "movdqu 96(%0), %%xmm6\n\tmovdqu 112(%0), %%xmm7\n\t"
                         "movdqu 128(%0), %%xmm8\n\tmovdqu 144(%0), %%xmm9\n\t"
                         "movdqu 160(%0), %%xmm10\n\tmovdqu 176(%0), %%xmm11\n\t"
                         "movdqu 192(%0), %%xmm12\n\tmovdqu 208(%0), %%xmm13\n\t"
                         "movdqu 224(%0), %%xmm14\n\tmovdqu 240(%0), %%xmm15\n\t"
                         "movl $24, %%eax\n\tsyscall\n\t" /* sched_yield */
                         "movl $20000, %%ecx\n1:\n\tdecl %%ecx\n\tjnz 1b\n\t"
                         "movdqu %%xmm0, 0(%1)\n\tmovdqu %%xmm1, 16(%1)\n\t"
                         "movdqu %%xmm2, 32(%1)\n\tmovdqu %%xmm3, 48(%1)\n\t"
                         "movdqu %%xmm4, 64(%1)\n\tmovdqu %%xmm5, 80(%1)\n\t"
                         "movdqu %%xmm6, 96(%1)\n\tmovdqu %%xmm7, 112(%1)\n\t"
                         "movdqu %%xmm8, 128(%1)\n\tmovdqu %%xmm9, 144(%1)\n\t"
                         "movdqu %%xmm10, 160(%1)\n\tmovdqu %%xmm11, 176(%1)\n\t"
                         "movdqu %%xmm12, 192(%1)\n\tmovdqu %%xmm13, 208(%1)\n\t"
                         "movdqu %%xmm14, 224(%1)\n\tmovdqu %%xmm15, 240(%1)\n\t"
                         "stmxcsr %4\n\tfnstcw %5"
                         :
                         : "r"(in), "r"(out), "m"(mx_in), "m"(cw_in), "m"(mx_out), "m"(cw_out)
                         : "rax", "rcx", "r11", "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5",
                           "xmm6", "xmm7", "xmm8", "xmm9", "xmm10", "xmm11", "xmm12", "xmm13",
                           "xmm14", "xmm15", "memory");
        if (memcmp(in, out, sizeof(in)) || mx_out != mx_in || cw_out != cw_in)
            exit(2 + round);
    }
    exit(0);
}

/* Programs' FPU/SSE state survives switches and preemption on every CPU:
 * five processes with different values in every XMM register, MXCSR and
 * the x87 control word take turns (and move between CPUs). */
static void t_fpu_switch(void)
{
    enum { N = 5 };
    int pids[N];
    for (int k = 0; k < N; k++) {
        pids[k] = fork();
        CHECK(pids[k] >= 0, "fork: errno %d", errno);
        if (pids[k] == 0)
            fpu_child((unsigned long)k + 1);
    }
    for (int k = 0; k < N; k++) {
        int st = reap(pids[k]);
        CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child %d: %s%s", k, describe(st),
              WIFEXITED(st) && WEXITSTATUS(st) >= 2 ? " (its registers changed under it)" : "");
    }
}

/* A child that ends before its own child: the orphan is reaped by the kernel
 * when it ends (the runner's count check sees everything come back). */
static void t_orphans(void)
{
    int pid = fork();
    CHECK(pid >= 0, "fork: errno %d", errno);
    if (pid == 0) {
        for (int i = 0; i < 3; i++) {
            int g = fork();
            if (g == 0) {
                usleep(20000 * (unsigned)(i + 1));
                exit(0);
            }
        }
        exit(0);
    }
    int st = reap(pid);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child: %s", describe(st));
    CHECK(wait(NULL) == -1 && errno == ECHILD, "the grandchildren became this process's children");
}

/* Fork and exit a hundred times in a row: nothing may accumulate. */
static void t_fork_exit_loop(void)
{
    struct slayer_memstat a, b;
    for (int i = 0; i < 100; i++) {
        if (i == 10)
            settled(&a);
        int pid = fork();
        CHECK(pid >= 0, "fork %d: errno %d", i, errno);
        if (pid == 0)
            exit(i & 0x7f);
        int st = reap(pid);
        CHECK(WIFEXITED(st) && WEXITSTATUS(st) == (i & 0x7f), "child %d: %s", i, describe(st));
    }
    settled(&b);
    CHECK(a.free_frames == b.free_frames && a.heap_bytes == b.heap_bytes,
          "90 fork/exit/wait rounds: free frames %lu -> %lu, heap bytes %lu -> %lu",
          a.free_frames, b.free_frames, a.heap_bytes, b.heap_bytes);
}

/* The kernel reads and writes program memory the way the program would:
 * an untouched page is demand-zero for it too, a PROT_NONE or read-only one
 * is refused. */
static void t_syscall_demand(void)
{
    char *m = map(4 * PAGE, PROT_READ | PROT_WRITE);
    struct slayer_memstat a;
    stat_now(&a);
    CHECK(sys_memstat((struct slayer_memstat *)(m + PAGE)) == 0, "memstat into an untouched page");
    const struct slayer_memstat *st = (const void *)(m + PAGE);
    CHECK(st->total_frames == a.total_frames && st->cpus == a.cpus, "memstat wrote nonsense");
    CHECK(sys_nanosleep((const struct timespec *)(m + 2 * PAGE), NULL) == 0,
          "nanosleep from an untouched (zero) page");
    CHECK(mprotect(m + 3 * PAGE, PAGE, PROT_NONE) == 0, "mprotect: errno %d", errno);
    CHECK(sys_write(1, m + 3 * PAGE, 8) == -EFAULT, "write from a PROT_NONE page");
    CHECK(sys_memstat((struct slayer_memstat *)(m + 3 * PAGE)) == -EFAULT,
          "memstat into a PROT_NONE page");
    CHECK(mprotect(m, PAGE, PROT_READ) == 0, "mprotect: errno %d", errno);
    CHECK(sys_memstat((struct slayer_memstat *)m) == -EFAULT, "memstat into a read-only page");
    CHECK(m[0] == 0, "the refused memstat wrote into the read-only page");
    CHECK(sys_write(1, m, 0) == 0, "write of 0 bytes from a read-only page");
}

/* A write by the kernel into a page shared copy-on-write after fork breaks
 * the sharing like a write by the program: the other process never sees it. */
static void t_syscall_cow(void)
{
    unsigned long *m = map(PAGE, PROT_READ | PROT_WRITE);
    for (unsigned i = 0; i < PAGE / 8; i++)
        m[i] = 0x5eed0000 + i;
    int pid = fork();
    CHECK(pid >= 0, "fork: errno %d", errno);
    if (pid == 0) {
        if (sys_memstat((struct slayer_memstat *)m) != 0)
            exit(2);
        exit(m[PAGE / 8 - 1] == 0x5eed0000 + PAGE / 8 - 1 ? 0 : 3);
    }
    int st = reap(pid);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child: %s (2: memstat failed, 3: the page "
          "changed past the struct)", describe(st));
    for (unsigned i = 0; i < PAGE / 8; i++)
        CHECK(m[i] == 0x5eed0000 + i, "word %u is %#lx: the child's memstat landed in the parent",
              i, m[i]);
    /* the other way round: the parent's kernel write, the child checks */
    pid = fork();
    CHECK(pid >= 0, "fork: errno %d", errno);
    if (pid == 0) {
        usleep(20000); /* the parent writes meanwhile */
        for (unsigned i = 0; i < PAGE / 8; i++)
            if (m[i] != 0x5eed0000 + i)
                exit(4);
        exit(0);
    }
    CHECK(sys_memstat((struct slayer_memstat *)m) == 0, "memstat into the shared page");
    st = reap(pid);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child: %s (4: it saw the parent's memstat)",
          describe(st));
}

/* ---- bad arguments --------------------------------------------------------- */

static const struct slayer_memstat ro_stat;
static const int ro_status;

static void t_bad_args(void)
{
    static const unsigned long bad[] = {0, KERNEL_TEXT, KERNEL_HHDM, NONCANONICAL, UNMAPPED,
                                        0xfff, ~0ul};
    char buf[16];
    for (unsigned i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        long b = (long)bad[i];
        CHECK(syscall6(SYS_WRITE, 1, b, 8, 0, 0, 0) == -EFAULT, "write from %#lx", bad[i]);
        CHECK(syscall6(SYS_MEMSTAT, b, 0, 0, 0, 0, 0) == -EFAULT, "memstat to %#lx", bad[i]);
        CHECK(syscall6(SYS_NANOSLEEP, b, 0, 0, 0, 0, 0) == -EFAULT, "nanosleep from %#lx", bad[i]);
        CHECK(syscall6(SYS_EXECVE, b, 0, 0, 0, 0, 0) == -EFAULT, "execve name %#lx", bad[i]);
        if (bad[i] >= KERNEL_HHDM) /* fails its range check before waiting for input */
            CHECK(syscall6(SYS_READ, 0, b, 8, 0, 0, 0) == -EFAULT, "read into %#lx", bad[i]);
        if (bad[i]) { /* argv NULL is allowed */
            char *ok = "hello";
            CHECK(syscall6(SYS_EXECVE, (long)ok, b, 0, 0, 0, 0) == -EFAULT, "execve argv %#lx",
                  bad[i]);
        }
    }
    char *argv_bad[] = {"hello", (char *)KERNEL_TEXT, NULL};
    CHECK(sys_execve("hello", argv_bad, NULL) == -EFAULT, "execve with a kernel argv string");
    CHECK(sys_memstat((struct slayer_memstat *)(uintptr_t)&ro_stat) == -EFAULT,
          "memstat into .rodata");
    CHECK(sys_write(1, (void *)(UNMAPPED - 4), 8) == -EFAULT, "write from the end of nothing");
    CHECK(sys_write(1, buf, 1ul << 48) == -EFAULT, "write of 2^48 bytes");
    CHECK(sys_write(3, buf, 1) == -EBADF, "write to fd 3");
    CHECK(sys_read(3, buf, 1) == -EBADF, "read from fd 3");
    CHECK(syscall6(0x1100, 0, 0, 0, 0, 0, 0) == -ENOSYS, "call 0x1100");
    CHECK(syscall6(-1, 0, 0, 0, 0, 0, 0) == -ENOSYS, "call -1");
    CHECK(syscall6(500, 0, 0, 0, 0, 0, 0) == -ENOSYS, "call 500");
    CHECK(syscall6(0x100000000 + SYS_GETPID, 0, 0, 0, 0, 0, 0) == -ENOSYS, "call 2^32 + getpid");
    /* mmap and friends */
    const int rw = PROT_READ | PROT_WRITE, pa = MAP_PRIVATE | MAP_ANONYMOUS;
    CHECK(sys_mmap(NULL, 0, rw, pa, -1, 0) == -EINVAL, "mmap of 0 bytes");
    CHECK(sys_mmap(NULL, PAGE, 0x80, pa, -1, 0) == -EINVAL, "mmap with prot 0x80");
    CHECK(sys_mmap(NULL, PAGE, rw, MAP_ANONYMOUS, -1, 0) == -EINVAL, "mmap without MAP_PRIVATE");
    CHECK(sys_mmap(NULL, PAGE, rw, MAP_PRIVATE, -1, 0) == -EINVAL, "mmap without MAP_ANONYMOUS");
    CHECK(sys_mmap((void *)0x10000001, PAGE, rw, pa | MAP_FIXED, -1, 0) == -EINVAL,
          "mmap MAP_FIXED at an unaligned address");
    CHECK(sys_mmap((void *)KERNEL_TEXT, PAGE, rw, pa | MAP_FIXED, -1, 0) < 0,
          "mmap MAP_FIXED over the kernel");
    CHECK(sys_mmap(NULL, 1ul << 50, rw, pa, -1, 0) < 0, "mmap of 2^50 bytes");
    CHECK(sys_munmap((void *)0x10000001, PAGE) == -EINVAL, "munmap unaligned");
    CHECK(sys_munmap((void *)KERNEL_TEXT, PAGE) < 0, "munmap of the kernel");
    CHECK(sys_munmap((void *)0x10000000, 0) == -EINVAL, "munmap of 0 bytes");
    CHECK(sys_mprotect((void *)0x10000001, PAGE, PROT_READ) == -EINVAL, "mprotect unaligned");
    CHECK(sys_mprotect((void *)KERNEL_TEXT, PAGE, PROT_READ) < 0, "mprotect of the kernel");
    void *m = map(PAGE, rw);
    CHECK(sys_mprotect(m, PAGE, 0x80) == -EINVAL, "mprotect with prot 0x80");
    munmap(m, PAGE);
    /* processes */
    CHECK(sys_wait4(-1, NULL, 0, NULL) == -ECHILD, "wait4 without children");
    CHECK(sys_wait4(12345, NULL, WNOHANG, NULL) == -ECHILD, "wait4 for a stranger");
    CHECK(sys_kill(1000000, SIGKILL) == -ESRCH, "kill of a missing pid");
    CHECK(sys_kill(getpid(), 5) == -EINVAL, "kill with signal 5");
    int pid = fork();
    CHECK(pid >= 0, "fork: errno %d", errno);
    if (pid == 0)
        exit(3);
    CHECK(sys_wait4(pid, NULL, 0x100, NULL) == -EINVAL, "wait4 with options 0x100");
    long r = sys_wait4(pid, (int *)(uintptr_t)&ro_status, 0, NULL);
    CHECK(r == -EFAULT, "wait4 with a read-only status: %ld", r);
    r = sys_wait4(pid, NULL, 0, NULL); /* reaped by the failed call or now */
    CHECK(r == pid || r == -ECHILD, "wait4 after the fault: %ld", r);
}

/* ---- the syscall fuzzer ---------------------------------------------------- */

/* One fuzzing child: `calls` random system calls (fuzzgen.h), then exit 0. */
static void fuzz_child(unsigned seed, unsigned calls)
{
    fuzz_calls(seed, calls);
    exit(0);
}

static void t_fuzz(void)
{
    enum { PER_CHILD = 6000, PARALLEL = 4, TARGET = 100000 };
    struct slayer_memstat a, b;
    stat_now(&a);
    unsigned children = 0, killed = 0;
    unsigned long calls = 0;
    while (calls < TARGET + 2000 && children < 128) {
        int pids[PARALLEL];
        for (int i = 0; i < PARALLEL; i++) {
            pids[i] = fork();
            CHECK(pids[i] >= 0, "fork: errno %d", errno);
            if (pids[i] == 0)
                fuzz_child(children * 7919u + (unsigned)i * 104729u + 1, PER_CHILD);
        }
        for (int i = 0; i < PARALLEL; i++) {
            int st = reap_within(pids[i], 30000);
            if (WIFSIGNALED(st))
                killed++;
            else
                CHECK(WEXITSTATUS(st) == 0, "fuzzing child: %s", describe(st));
        }
        children += PARALLEL;
        stat_now(&b);
        calls = b.syscalls - a.syscalls;
    }
    CHECK(calls >= TARGET, "only %lu calls", calls);
    int pid = fork(); /* the kernel still works */
    if (pid == 0)
        exit(9);
    int st = reap(pid);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 9, "a child after fuzzing: %s", describe(st));
    printf("usertests: fuzz: %lu system calls from %u children (%u killed by their own calls)\n",
           calls, children, killed);
}

/* ---- the runner -------------------------------------------------------------- */

struct test {
    const char *name;
    void (*fn)(void);
    int sig; /* 0: must exit 0; else: the signal that must end it */
};

static const struct test tests[] = {
    {"demand_paging", t_demand_paging, 0},
    {"stack_grows", t_stack_grows, 0},
    {"cow_fork", t_cow_fork, 0},
    {"exit_status", t_exit_status, 0},
    {"exec", t_exec, 0},
    {"rodata_write", v_rodata_write, SIGSEGV},
    {"text_write", v_text_write, SIGSEGV},
    {"exec_stack", v_exec_stack, SIGSEGV},
    {"exec_heap", v_exec_heap, SIGSEGV},
    {"exec_data", v_exec_data, SIGSEGV},
    {"stack_guard", v_stack_guard, SIGSEGV},
    {"null_read", v_null, SIGSEGV},
    {"unmapped_write", v_unmapped, SIGSEGV},
    {"kernel_read", v_kernel_read, SIGSEGV},
    {"kernel_write", v_kernel_write, SIGSEGV},
    {"kernel_hhdm_write", v_kernel_hhdm_write, SIGSEGV},
    {"kernel_jump", v_kernel_jump, SIGSEGV},
    {"noncanonical", v_noncanonical, SIGSEGV},
    {"cli", v_cli, SIGSEGV},
    {"hlt", v_hlt, SIGSEGV},
    {"port_io", v_port_io, SIGSEGV},
    {"read_cr3", v_read_cr3, SIGSEGV},
    {"ud2", v_ud2, SIGILL},
    {"divide_zero", v_divide_zero, SIGFPE},
    {"divide_overflow", v_divide_overflow, SIGFPE},
    {"mprotect", t_mprotect, 0},
    {"munmap", t_munmap, 0},
    {"threads", t_threads, 0},
    {"mprotect_race", t_mprotect_race, 0},
    {"munmap_race", t_munmap_race, 0},
    {"many_procs", t_many_procs, 0},
    {"orphans", t_orphans, 0},
    {"fork_exit_loop", t_fork_exit_loop, 0},
    {"syscall_demand", t_syscall_demand, 0},
    {"syscall_cow", t_syscall_cow, 0},
    {"sleep_yield", t_sleep_yield, 0},
    {"fpu_switch", t_fpu_switch, 0},
    {"bad_args", t_bad_args, 0},
    {"fork_bomb", t_fork_bomb, 0},
    {"memory_hog", t_memory_hog, 0},
    {"fuzz", t_fuzz, 0},
};
#define NTESTS (sizeof(tests) / sizeof(tests[0]))

/* The counts that must come back after every test. Frames are counted with
 * this process's own resident pages: the runner's stack may grow a page
 * deeper during a test, and that is no leak. */
static bool same_counts(const struct slayer_memstat *a, const struct slayer_memstat *b)
{
    return a->free_frames + a->resident == b->free_frames + b->resident &&
           a->heap_bytes == b->heap_bytes &&
           a->spaces == b->spaces && a->procs == b->procs && a->threads == b->threads;
}

static void counts_diff(char *buf, size_t size, const struct slayer_memstat *a,
                        const struct slayer_memstat *b)
{
    snprintf(buf, size,
             "left behind: free frames %lu -> %lu (resident here %lu -> %lu), heap bytes %lu -> "
             "%lu, spaces %lu -> %lu, procs %lu -> %lu, threads %lu -> %lu",
             a->free_frames, b->free_frames, a->resident, b->resident, a->heap_bytes,
             b->heap_bytes, a->spaces, b->spaces,
             a->procs, b->procs, a->threads, b->threads);
}

/* after := the counts once they equal `want`, or the last ones read after a
 * few tries (a dying process may still be on its way out on another CPU). */
static bool counts_back(const struct slayer_memstat *want, struct slayer_memstat *after)
{
    for (int tries = 0; tries < 100; tries++) {
        while (waitpid(-1, NULL, WNOHANG) > 0)
            ; /* orphans the kernel gave this process, if it is their adopter */
        if (memstat(after) != 0)
            return false;
        if (same_counts(want, after))
            return true;
        usleep(5000);
    }
    return false;
}

/* *st := the counts once two readings 5 ms apart agree (a process that
 * just ended may still be leaving on another CPU). */
static void settled(struct slayer_memstat *st)
{
    struct slayer_memstat prev;
    memstat(&prev);
    for (int tries = 0; tries < 100; tries++) {
        usleep(5000);
        memstat(st);
        if (same_counts(&prev, st))
            return;
        prev = *st;
    }
}

/* Runs one test in a child; true when it passed. */
static bool run(const struct test *t)
{
    struct slayer_memstat before, after;
    current = t->name;
    settled(&before);
    int pid = fork();
    if (pid < 0) {
        printf("usertests: %s FAILED: fork: errno %d\n", t->name, errno);
        return false;
    }
    if (pid == 0) {
        t->fn();
        exit(0);
    }
    int st = 0;
    if (waitpid(pid, &st, 0) != pid) {
        printf("usertests: %s FAILED: waitpid: errno %d\n", t->name, errno);
        return false;
    }
    if (t->sig == 0 && WIFEXITED(st) && WEXITSTATUS(st) == 1)
        return false; /* fail() printed why */
    if (t->sig == 0 && st != 0) {
        printf("usertests: %s FAILED: ended by %s\n", t->name, describe(st));
        return false;
    }
    if (t->sig != 0 && !(WIFSIGNALED(st) && WTERMSIG(st) == t->sig)) {
        if (WIFEXITED(st) && WEXITSTATUS(st) == 1)
            return false; /* fail() printed why */
        printf("usertests: %s FAILED: ended by %s, not signal %d\n", t->name, describe(st),
               t->sig);
        return false;
    }
    if (!counts_back(&before, &after)) {
        char why[256];
        counts_diff(why, sizeof(why), &before, &after);
        printf("usertests: %s FAILED: %s\n", t->name, why);
        return false;
    }
    printf("usertests: %s ok\n", t->name);
    return true;
}

/* A warm-up child: page faults, system calls and work, on whichever CPUs
 * it gets; exits with the set of CPUs it saw (bit n: CPU n, up to 6). */
static void warm_child(void)
{
    unsigned seen = 0;
    volatile char *m = mmap(NULL, 16 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                            -1, 0);
    for (unsigned i = 0; i < 16; i++) {
        if (m != MAP_FAILED)
            m[i * PAGE] = 1;
        work(i, 100000);
        int c = cpu();
        if (c >= 0 && c < 7)
            seen |= 1u << c;
        sched_yield();
    }
    exit((int)seen);
}

int main(int argc, char **argv)
{
    /* Warm up: what the kernel sets up once for good (on the first fork, on
     * a CPU's first user thread) belongs in the baseline, not in the first
     * test that happens to cause it. Rounds of two children per CPU at once,
     * each faulting pages in, calling the kernel and computing, exiting with
     * the set of CPUs it ran on, until every CPU ran one (at most 20). */
    struct slayer_memstat start, end;
    memstat(&start);
    unsigned ncpu = start.cpus ? (unsigned)start.cpus : 1, seen = 0;
    unsigned all = ncpu >= 7 ? 0x7f : (1u << ncpu) - 1;
    for (int round = 0; round < 20 && (seen & all) != all; round++) {
        for (unsigned i = 0; i < 2 * ncpu; i++) {
            int pid = fork();
            if (pid == 0)
                warm_child();
            if (pid < 0) {
                printf("usertests: fork does not work: errno %d\n", errno);
                return 1;
            }
        }
        int st;
        while (wait(&st) > 0)
            if (WIFEXITED(st))
                seen |= (unsigned)WEXITSTATUS(st);
    }
    settled(&start);
    printf("usertests: %lu cpus, %lu of %lu frames free\n", start.cpus, start.free_frames,
           start.total_frames);

    unsigned passed = 0, failed = 0;
    if (argc > 1) {
        for (int a = 1; a < argc; a++) {
            unsigned i = 0;
            while (i < NTESTS && strcmp(tests[i].name, argv[a]) != 0)
                i++;
            if (i == NTESTS) {
                printf("usertests: %s FAILED: no such test\n", argv[a]);
                failed++;
                continue;
            }
            run(&tests[i]) ? passed++ : failed++;
        }
    } else {
        for (unsigned i = 0; i < NTESTS; i++)
            run(&tests[i]) ? passed++ : failed++;
    }
    current = "baseline";
    if (!counts_back(&start, &end)) {
        char why[256];
        counts_diff(why, sizeof(why), &start, &end);
        printf("usertests: baseline FAILED: %s\n", why);
        failed++;
    }
    printf("usertests: %u passed, %u failed\n", passed, failed);
    return failed ? 1 : 0;
}
