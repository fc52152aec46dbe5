/* ubench: the process rows of the in-kernel bench (kernel/bench/kbench_proc.c
 * starts it once per row; docs/performance.md, "Processes").
 *
 *   ubench getpid N  N getpid system calls
 *   ubench fork N    N times: fork, the child exits at once, the parent's wait4
 *   ubench exec N    N times: fork, the child execs "ubench nop", which exits
 *                    at once, the parent's wait4
 *   ubench yield N   a forked child yields forever; the parent times N of its
 *                    own sched_yield calls, each a round trip through the child
 *                    (two switches), then kills the child and waits for it
 *   ubench nop       exits 0 at once (what `exec` runs)
 *
 * Each operation is timed on its own with rdtsc (lfence on both sides); the
 * median cost of an empty rdtsc pair is taken off every sample. Under QEMU's
 * `-icount shift=0` the TSC advances one tick per guest instruction, the
 * kernel's included, so a sample is the instructions the whole operation took.
 * One line per row, the format of kbench_vm.c's rows:
 *   kbench: pr-<row> ops=<n> cyc=<mean> p50=<median> min=<min> max=<max>
 * (pr-switch: half a yield round trip, i.e. one sched_yield that switches to
 * the other process).
 *
 * No libc: raw SYSCALL (uapi/abi.h's convention) and a decimal printer of its
 * own, so it depends on nothing but crt0; it never returns from main (it
 * calls exit), whatever crt0 does after main. */
#include <stdbool.h>

#include "../kernel/uapi/abi.h"

#define MAX_SAMPLES 4096

typedef unsigned long u64;

static u64 samples[MAX_SAMPLES];

static inline long sys3(long n, long a, long b, long c)
{
    long r;
    __asm__ volatile("syscall" : "=a"(r) : "a"(n), "D"(a), "S"(b), "d"(c) : "rcx", "r11", "memory");
    return r;
}

static inline long sys4(long n, long a, long b, long c, long d)
{
    long r;
    register long r10 __asm__("r10") = d;
    __asm__ volatile("syscall"
                     : "=a"(r)
                     : "a"(n), "D"(a), "S"(b), "d"(c), "r"(r10)
                     : "rcx", "r11", "memory");
    return r;
}

static inline u64 tsc(void)
{
    unsigned lo, hi;
    __asm__ volatile("lfence; rdtsc; lfence" : "=a"(lo), "=d"(hi)::"memory");
    return ((u64)hi << 32) | lo;
}

static __attribute__((noreturn)) void ub_exit(int code)
{
    for (;;)
        sys3(SYS_EXIT, code, 0, 0);
}

static unsigned long ub_strlen(const char *s)
{
    unsigned long n = 0;
    while (s[n])
        n++;
    return n;
}

static bool ub_streq(const char *a, const char *b)
{
    while (*a && *a == *b) {
        a++;
        b++;
    }
    return *a == *b;
}

/* A line assembled piecewise, written with one call. */
static char line[256];
static unsigned line_len;

static void put(const char *s)
{
    while (*s && line_len + 1 < sizeof(line))
        line[line_len++] = *s++;
}

static void put_u64(u64 v)
{
    char buf[24];
    int i = sizeof(buf);
    buf[--i] = 0;
    do {
        buf[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    put(buf + i);
}

static void flush(void)
{
    sys3(SYS_WRITE, 1, (long)line, line_len);
    line_len = 0;
}

static __attribute__((noreturn)) void fail(const char *row, const char *what, long err)
{
    put("kbench: pr-");
    put(row);
    put(" failed: ");
    put(what);
    put(" (");
    if (err < 0) {
        put("-");
        err = -err;
    }
    put_u64((u64)err);
    put(")\n");
    flush();
    ub_exit(1);
}

static u64 parse_u64(const char *s)
{
    u64 v = 0;
    while (*s >= '0' && *s <= '9')
        v = v * 10 + (u64)(*s++ - '0');
    return v;
}

/* Shell sort of samples[0..n). */
static void sort(u64 *s, unsigned n)
{
    static const unsigned gaps[] = {1093, 364, 121, 40, 13, 4, 1};
    for (unsigned g = 0; g < sizeof(gaps) / sizeof(gaps[0]); g++)
        for (unsigned i = gaps[g]; i < n; i++) {
            u64 v = s[i];
            unsigned j = i;
            for (; j >= gaps[g] && s[j - gaps[g]] > v; j -= gaps[g])
                s[j] = s[j - gaps[g]];
            s[j] = v;
        }
}

/* The median cost of an empty timed pair (the rdtsc and lfences). */
static u64 tsc_cost(void)
{
    for (unsigned i = 0; i < 256; i++) {
        u64 t0 = tsc();
        samples[i] = tsc() - t0;
    }
    sort(samples, 256);
    return samples[128];
}

/* Prints the row of n samples (each divided by div), the timing cost taken off. */
static void row(const char *name, unsigned n, u64 cost, u64 div)
{
    u64 sum = 0;
    for (unsigned i = 0; i < n; i++) {
        samples[i] = (samples[i] > cost ? samples[i] - cost : 0) / div;
        sum += samples[i];
    }
    sort(samples, n);
    put("kbench: pr-");
    put(name);
    put(" ops=");
    put_u64(n);
    put(" cyc=");
    put_u64(sum / n);
    put(" p50=");
    put_u64(samples[n / 2]);
    put(" min=");
    put_u64(samples[0]);
    put(" max=");
    put_u64(samples[n - 1]);
    put("\n");
    flush();
}

static void bench_getpid(unsigned n, u64 cost)
{
    long me = sys3(SYS_GETPID, 0, 0, 0);
    for (unsigned i = 0; i < n; i++) {
        u64 t0 = tsc();
        long r = sys3(SYS_GETPID, 0, 0, 0);
        u64 t1 = tsc();
        if (r != me)
            fail("getpid", "getpid changed", r);
        samples[i] = t1 - t0;
    }
    row("getpid", n, cost, 1);
}

/* Waits for child pid; fails unless it exited with status 0. */
static void reap(const char *rowname, long pid)
{
    int status = -1;
    long r = sys4(SYS_WAIT4, pid, (long)&status, 0, 0);
    if (r != pid)
        fail(rowname, "wait4", r);
    if (status != 0)
        fail(rowname, "the child's status", status);
}

static const char *const nop_argv[] = {"ubench", "nop", 0};

static void bench_fork(const char *name, unsigned n, u64 cost, bool exec)
{
    for (unsigned i = 0; i < n; i++) {
        u64 t0 = tsc();
        long pid = sys3(SYS_FORK, 0, 0, 0);
        if (pid == 0) {
            if (exec) {
                long r = sys3(SYS_EXECVE, (long)"ubench", (long)nop_argv, 0);
                fail(name, "execve", r);
            }
            ub_exit(0);
        }
        if (pid < 0)
            fail(name, "fork", pid);
        reap(name, pid);
        samples[i] = tsc() - t0;
    }
    row(name, n, cost, 1);
}

static void bench_yield(unsigned n, u64 cost)
{
    long pid = sys3(SYS_FORK, 0, 0, 0);
    if (pid == 0)
        for (;;)
            sys3(SYS_SCHED_YIELD, 0, 0, 0);
    if (pid < 0)
        fail("switch", "fork", pid);
    for (unsigned i = 0; i < 16; i++) /* the child has run: it is in its loop */
        sys3(SYS_SCHED_YIELD, 0, 0, 0);
    for (unsigned i = 0; i < n; i++) {
        u64 t0 = tsc();
        sys3(SYS_SCHED_YIELD, 0, 0, 0);
        samples[i] = tsc() - t0;
    }
    long r = sys3(SYS_KILL, pid, SIGKILL, 0);
    if (r)
        fail("switch", "kill", r);
    int status = 0;
    r = sys4(SYS_WAIT4, pid, (long)&status, 0, 0);
    if (r != pid || !WIFSIGNALED(status) || WTERMSIG(status) != SIGKILL)
        fail("switch", "wait4 after kill", r);
    row("switch", n, cost, 2);
}

int main(int argc, char **argv, char **envp)
{
    (void)envp;
    if (argc < 2)
        fail("?", "usage: ubench getpid|fork|exec|yield N, or ubench nop", 0);
    const char *what = argv[1];
    if (ub_streq(what, "nop"))
        ub_exit(0);
    u64 n = argc > 2 ? parse_u64(argv[2]) : 0;
    if (n == 0 || n > MAX_SAMPLES || ub_strlen(what) > 16)
        fail(what, "N must be 1..4096", (long)n);
    u64 cost = tsc_cost();
    if (ub_streq(what, "getpid"))
        bench_getpid((unsigned)n, cost);
    else if (ub_streq(what, "fork"))
        bench_fork("forkexit", (unsigned)n, cost, false);
    else if (ub_streq(what, "exec"))
        bench_fork("forkexec", (unsigned)n, cost, true);
    else if (ub_streq(what, "yield"))
        bench_yield((unsigned)n, cost);
    else
        fail(what, "unknown row", 0);
    ub_exit(0);
}
