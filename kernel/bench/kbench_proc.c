/* kbench's process rows (issue 16, part 7): what a system call, a fork, an
 * exec and a switch between processes cost, measured from ring 3 by
 * user/ubench.c, which this file starts once per row as a process of the
 * kernel's (proc_spawn) and waits for.
 *
 *   kbench: pr-getpid ...    one getpid round trip: SYSCALL, the dispatch,
 *       SYSRET (and the checks on the way back to ring 3)
 *   kbench: pr-forkexit ...  fork, the child's exit at once, the parent's
 *       wait4 that reaps it: a process made (a copy-on-write space, a
 *       thread) and torn down, two switches
 *   kbench: pr-forkexec ...  the same with the child exec'ing "ubench nop"
 *       (a small boot module, which exits at once): the difference with
 *       pr-forkexit is what exec and the new program's first page faults cost
 *   kbench: pr-switch ...    half a sched_yield round trip between two
 *       processes on one CPU: one yield that switches to the other process
 *       (the system call, the scheduler, the CR3 load and the FPU state)
 *
 * ubench times each operation itself with rdtsc around it; under `-icount
 * shift=0` the TSC counts guest instructions (the kernel's included), so
 * the rows are instruction counts, as kbench_vm.c's are. The rows' lines are
 * ubench's own; this side checks that each run ended with status 0 and, for
 * pr-switch, that the scheduler counted at least two switches per round trip
 * (a yield with nothing else runnable would not switch at all: with more
 * than one CPU online the two processes run side by side, so pr-switch is
 * measured only on one CPU). */
#include "arch/x86_64/smp.h"
#include "lib/printf.h"
#include "proc/proc.h"
#include "proc/sched.h"
#include "uapi/abi.h"

struct prow {
    const char *mode, *row, *count; /* ubench's argv[1], its row's name, argv[2] */
    unsigned n;
};

static const struct prow prows[] = {
    {"getpid", "getpid", "1000", 1000},
    {"fork", "forkexit", "200", 200},
    {"exec", "forkexec", "100", 100},
    {"yield", "switch", "1000", 1000},
};

/* Runs ubench for one row; false (said) unless it exited with status 0. */
static bool run_row(const struct prow *r)
{
    const char *argv[3] = {"ubench", r->mode, r->count};
    char why[96] = "";
    int pid, status = 0;
    int err = proc_spawn("ubench", 3, argv, true, &pid, why, sizeof(why));
    if (err) {
        kprintf("kbench: pr-%s failed: cannot start ubench (error %d) %s\n", r->row, err, why);
        return false;
    }
    err = proc_wait_kernel(pid, &status);
    if (err || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        kprintf("kbench: pr-%s failed: ubench (pid %d) ended with status %#x (error %d)\n", r->row,
                pid, status, err);
        return false;
    }
    return true;
}

/* Runs the process rows (kbench_run calls it); every process it starts has
 * ended and been reaped when it returns. */
void kbench_proc(void)
{
    for (unsigned i = 0; i < sizeof(prows) / sizeof(prows[0]); i++) {
        const struct prow *r = &prows[i];
        bool yield = r->mode[0] == 'y';
        if (yield && smp_cpu_count() > 1) {
            kprintf("kbench: pr-%s skipped: %u CPUs online (two processes alternate on one CPU "
                    "only when it is the only one)\n", r->row, smp_cpu_count());
            continue;
        }
        struct sched_stats s0, s1;
        sched_get_stats(&s0);
        bool ok = run_row(r);
        sched_get_stats(&s1);
        if (ok && yield) {
            uint64_t sw = s1.switches - s0.switches;
            kprintf("kbench: pr-%s check: %llu switches for %u timed round trips%s\n", r->row,
                    (unsigned long long)sw, r->n,
                    sw >= 2ull * r->n ? "" : " (FEWER THAN TWO EACH: the row is not a switch)");
        }
    }
}
