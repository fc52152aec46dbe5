/* bench/uproc.c: the reference for kernel/bench/kbench_proc.c and
 * user/ubench.c (issue 16, part 7): the same process operations done by
 * Linux on this host, in wall time (ns). callgrind cannot follow a process
 * into the Linux kernel, where this work happens, so there are no
 * instruction counts here.
 *
 *   R uproc u-getpid linux ns=..    one getpid system call (syscall(2), not
 *       a cached value), median over RUNS loops of GETPID_LOOP calls
 *   R uproc u-forkexit linux ns=..  fork(), the child's _exit(0), the
 *       parent's waitpid: median of single operations
 *   R uproc u-forkexec linux ns=..  the same with the child exec'ing this
 *       program (built -static: no dynamic loader) as "uproc nop", which
 *       exits at once
 *   R uproc u-switch linux ns=..    half a sched_yield round trip between
 *       two processes pinned to one CPU (the child yields for ever): median
 *       of single round trips / 2; switched= the fraction of the parent's
 *       yields during which the child ran (1.0: every yield switched)
 * Single operations are timed with clock_gettime on both sides, the median
 * cost of an empty pair taken off. Modes: time, smoke (tiny, for make
 * bench-smoke); count and frag print nothing; `nop` exits 0 at once (what
 * u-forkexec runs). */
#define _GNU_SOURCE
#include <sched.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"

#define MAX_OPS 4096

static unsigned getpid_loop = 100000, runs = 9, fork_ops = 200, exec_ops = 100, yield_ops = 2000;
static double samples[MAX_OPS];
static double empty_cost; /* ns of an empty now_ns() pair */
static char self_path[4096];

static void fail(const char *what)
{
    perror(what);
    exit(1);
}

static void measure_empty(void)
{
    for (unsigned i = 0; i < 1000; i++) {
        uint64_t t0 = now_ns();
        samples[i] = (double)(now_ns() - t0);
    }
    empty_cost = median(samples, 1000);
}

/* The median of n single-operation samples, the timing cost taken off, / div. */
static double op_median(unsigned n, double div)
{
    for (unsigned i = 0; i < n; i++)
        samples[i] = (samples[i] > empty_cost ? samples[i] - empty_cost : 0) / div;
    return median(samples, n);
}

static void u_getpid(void)
{
    double s[64];
    pid_t me = getpid();
    for (unsigned r = 0; r < runs; r++) {
        uint64_t t0 = now_ns();
        for (unsigned i = 0; i < getpid_loop; i++)
            if (syscall(SYS_getpid) != me)
                fail("getpid");
        s[r] = (double)(now_ns() - t0) / getpid_loop;
    }
    result("uproc", "u-getpid", "linux", "ns=%.1f runs=%u calls=%u", median(s, runs), runs,
           getpid_loop);
}

static void reap(pid_t pid)
{
    int st;
    if (waitpid(pid, &st, 0) != pid)
        fail("waitpid");
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        fprintf(stderr, "uproc: child ended with status %#x\n", st);
        exit(1);
    }
}

static void u_fork(const char *name, unsigned n, bool exec)
{
    char *const argv[] = {"uproc", "nop", NULL};
    for (unsigned i = 0; i < n; i++) {
        uint64_t t0 = now_ns();
        pid_t pid = fork();
        if (pid == 0) {
            if (exec) {
                execv(self_path, argv);
                _exit(127);
            }
            _exit(0);
        }
        if (pid < 0)
            fail("fork");
        reap(pid);
        samples[i] = (double)(now_ns() - t0);
    }
    result("uproc", name, "linux", "ns=%.0f ops=%u", op_median(n, 1), n);
}

static void u_switch(void)
{
    cpu_set_t one, old;
    CPU_ZERO(&one);
    if (sched_getaffinity(0, sizeof(old), &old))
        fail("sched_getaffinity");
    int cpu = 0;
    while (cpu < CPU_SETSIZE && !CPU_ISSET(cpu, &old))
        cpu++;
    CPU_SET(cpu, &one);
    if (sched_setaffinity(0, sizeof(one), &one)) /* the child inherits it */
        fail("sched_setaffinity");
    volatile uint64_t *child_yields = mmap(NULL, 4096, PROT_READ | PROT_WRITE,
                                           MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (child_yields == MAP_FAILED)
        fail("mmap");
    pid_t pid = fork();
    if (pid < 0)
        fail("fork");
    if (pid == 0)
        for (;;) {
            (*child_yields)++;
            sched_yield();
        }
    while (*child_yields == 0) /* the child is in its loop */
        sched_yield();
    uint64_t c0 = *child_yields;
    for (unsigned i = 0; i < yield_ops; i++) {
        uint64_t t0 = now_ns();
        sched_yield();
        samples[i] = (double)(now_ns() - t0);
    }
    uint64_t c1 = *child_yields;
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    sched_setaffinity(0, sizeof(old), &old);
    munmap((void *)child_yields, 4096);
    double switched = (double)(c1 - c0) / yield_ops;
    result("uproc", "u-switch", "linux", "ns=%.0f ops=%u switched=%.2f", op_median(yield_ops, 2),
           yield_ops, switched);
}

int main(int argc, char **argv)
{
    if (argc > 1 && !strcmp(argv[1], "nop"))
        _exit(0);
    bench_parse_mode(argc, argv);
    if (bench_mode == MODE_COUNT || bench_mode == MODE_FRAG)
        return 0;
    if (bench_mode == MODE_SMOKE) {
        getpid_loop = 1000;
        runs = 3;
        fork_ops = exec_ops = 5;
        yield_ops = 50;
    }
    ssize_t len = readlink("/proc/self/exe", self_path, sizeof(self_path) - 1);
    if (len <= 0)
        fail("readlink /proc/self/exe");
    self_path[len] = 0;
    measure_empty();
    u_getpid();
    u_fork("u-forkexit", fork_ops, false);
    u_fork("u-forkexec", exec_ops, true);
    u_switch();
    return 0;
}
