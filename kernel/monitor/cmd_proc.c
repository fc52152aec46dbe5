/* Monitor commands about processes (proc/proc.h): ps, run, kill, and the
 * process form of vmmap (`vmmap pid <n>`).
 *
 * proc_for_each runs its callback under proc_lock, so ps copies the
 * snapshots into a table first and prints afterwards (printing takes the
 * print lock and may be slow).
 *
 * A process's address space is destroyed only after proc.c has taken it
 * out of the process (p->vs = NULL under proc_lock: exit, execve's swap),
 * so while proc_lock is held the space a proc_info names stays alive. The
 * monitor therefore reads a process's regions from inside proc_for_each's
 * callback: it looks the space up (vm_list_lock, rank none, a leaf) and
 * walks its regions (vs->lock, rank VM, then paging's lock) while
 * proc_lock (rank PROC, the outermost) is held. That follows the lock
 * order, and nothing takes proc_lock while holding those locks; the rows
 * are copied into a static table and printed after proc_lock is released
 * (proc.h's contract for proc_for_each allows exactly these locks). */
#include "arch/x86_64/cpu.h"
#include "arch/x86_64/pit.h"
#include "dev/input.h"
#include "lib/printf.h"
#include "lib/string.h"
#include "mm/vm.h"
#include "monitor/commands.h"
#include "monitor/parse.h"
#include "proc/proc.h"
#include "proc/sched.h"
#include "uapi/abi.h"

#define RUN_POLL_MS 20      /* how often a foreground `run` looks for Ctrl-C */
#define KILL_WAIT_MS 1000   /* how long `kill` waits to see the process gone */
#define RUN_ARGS_MAX 16     /* a command line has at most 16 words */

/* ---- helpers ----------------------------------------------------------------------------- */

/* Sleeps this kernel thread for about ms milliseconds (other threads run). */
static void sleep_ms(uint64_t ms)
{
    uint64_t deadline = rdtsc() + ms * 1000 * tsc_per_us();
    while (rdtsc() < deadline)
        thread_sleep_on(thread_current(), NULL, deadline);
}

/* ---- ps ---------------------------------------------------------------------------------- */

struct ps_table {
    struct proc_info p[SLAYER_PROC_MAX];
    unsigned n, more;
};

/* Under proc_lock: copies, takes no lock. */
static void ps_collect(void *ctx, const struct proc_info *pi)
{
    struct ps_table *t = ctx;
    if (t->n < SLAYER_PROC_MAX)
        t->p[t->n++] = *pi;
    else
        t->more++;
}

void cmd_ps(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    static struct ps_table t;
    t.n = t.more = 0;
    proc_for_each(ps_collect, &t);
    struct sched_stats ss;
    sched_get_stats(&ss);
    kprintf("  %5s %5s %-6s %3s %3s %10s %8s %s\n", "pid", "ppid", "state", "thr", "cpu",
            "resident", "ticks", "name");
    for (unsigned i = 0; i < t.n; i++) {
        const struct proc_info *pi = &t.p[i];
        char cpu[8], res[24];
        if (pi->cpu >= 0)
            ksnprintf(cpu, sizeof(cpu), "%d", pi->cpu);
        else
            ksnprintf(cpu, sizeof(cpu), "-");
        ksnprintf(res, sizeof(res), "%llu KiB", (unsigned long long)pi->resident * 4);
        kprintf("  %5d %5d %-6s %3u %3s %10s %8llu %s\n", pi->pid, pi->ppid,
                pi->state == PROC_ALIVE ? "alive" : "zombie", pi->threads, cpu, res,
                (unsigned long long)pi->ticks, pi->name);
    }
    if (t.more)
        kprintf("  ... and %u more\n", t.more);
    kprintf("%u processes; %u threads (%u runnable), %llu switches, %llu preemptions\n",
            t.n + t.more, ss.threads, ss.runnable, (unsigned long long)ss.switches,
            (unsigned long long)ss.preemptions);
}

/* ---- run --------------------------------------------------------------------------------- */

/* True when Ctrl-C (0x03) was typed. Every other byte waiting in the input
 * queue is put back, in its order, for the program's read(): the queue is
 * drained and refilled with interrupts off, so no byte from the keyboard
 * or serial handlers (which run on this CPU) slips in between. */
static bool ctrl_c_typed(void)
{
    static uint8_t keep[INPUT_QUEUE_SIZE];
    bool seen = false;
    size_t n = 0;
    uint64_t flags = cpu_irq_save();
    for (int c; (c = input_trygetc()) >= 0;) {
        if (c == 0x03)
            seen = true;
        else if (n < sizeof(keep))
            keep[n++] = (uint8_t)c;
    }
    for (size_t i = 0; i < n; i++)
        input_push(keep[i]);
    cpu_irq_restore(flags);
    return seen;
}

/* The program's status as one line. */
static void report_status(int pid, int status)
{
    if (WIFEXITED(status))
        kprintf("[run] pid %d exited with status %d\n", pid, WEXITSTATUS(status));
    else
        kprintf("[run] pid %d killed by %s\n", pid, proc_signal_name(WTERMSIG(status)));
}

static void spawn_error(const char *prog, int err, const char *why)
{
    switch (err) {
    case -ENOENT:
        monitor_error("run", "no program '%s' (no boot module of that name)", prog);
        break;
    case -ENOEXEC:
        monitor_error("run", "'%s' is not a valid program: %s", prog, why);
        break;
    case -ENOMEM:
        monitor_error("run", "out of memory starting '%s'", prog);
        break;
    case -EAGAIN:
        monitor_error("run", "too many processes (at most %d)", SLAYER_PROC_MAX);
        break;
    default:
        monitor_error("run", "cannot start '%s' (error %d)", prog, err);
        break;
    }
}

void cmd_run(int argc, char **argv)
{
    bool background = strcmp(argv[argc - 1], "&") == 0;
    if (background)
        argc--;
    if (argc < 2) {
        monitor_error("run", "which program? (usage: run <program> [args...] [&])");
        return;
    }
    const char *args[RUN_ARGS_MAX];
    int n = 0;
    for (int i = 1; i < argc && n < RUN_ARGS_MAX; i++)
        args[n++] = argv[i];
    char why[96] = "";
    int pid = 0;
    int err = proc_spawn(argv[1], n, args, !background, &pid, why, sizeof(why));
    if (err) {
        spawn_error(argv[1], err, why);
        return;
    }
    if (background) {
        kprintf("[run] pid %d started in the background (%s)\n", pid, argv[1]);
        return;
    }
    bool killed = false;
    int status = 0;
    for (;;) {
        err = proc_wait_kernel_timeout(pid, &status, RUN_POLL_MS);
        if (err != -EAGAIN)
            break;
        if (!killed && ctrl_c_typed()) {
            kprintf("^C\n");
            killed = proc_kill(pid, SIGKILL) == 0; /* then still wait for it and reap it */
        }
    }
    if (err) {
        monitor_error("run", "lost pid %d (error %d)", pid, err); /* cannot happen: we own it */
        return;
    }
    report_status(pid, status);
}

/* ---- kill -------------------------------------------------------------------------------- */

struct find_pid {
    int pid;
    bool found, alive;
};

static void find_collect(void *ctx, const struct proc_info *pi)
{
    struct find_pid *f = ctx;
    if (pi->pid == f->pid) {
        f->found = true;
        f->alive = pi->state == PROC_ALIVE;
    }
}

void cmd_kill(int argc, char **argv)
{
    (void)argc;
    uint64_t v;
    if (!parse_u64(argv[1], &v) || v == 0 || v > 0x7fffffff) {
        monitor_error("kill", "'%s' is not a process id", argv[1]);
        return;
    }
    int pid = (int)v;
    int err = proc_kill(pid, SIGKILL);
    if (err == -ESRCH) {
        monitor_error("kill", "no such process %d", pid);
        return;
    }
    if (err) {
        monitor_error("kill", "pid %d: error %d", pid, err);
        return;
    }
    /* its threads end at their next return to ring 3 (a kick gets them
     * there at once); wait a little to say that it is gone */
    struct find_pid f = {.pid = pid, .found = true, .alive = true};
    uint64_t deadline = rdtsc() + KILL_WAIT_MS * 1000 * tsc_per_us();
    while (f.alive && rdtsc() < deadline) {
        sleep_ms(5);
        f.found = f.alive = false;
        proc_for_each(find_collect, &f);
    }
    if (f.alive)
        kprintf("kill: pid %d told to end (SIGKILL), still running after %d ms\n", pid,
                KILL_WAIT_MS);
    else
        kprintf("kill: pid %d killed (SIGKILL)%s\n", pid,
                f.found ? "; a zombie until its parent waits for it" : "");
}

/* ---- the regions of a process's space ---------------------------------------------------- */

struct space_query {
    int pid;                /* match this process, or */
    uint32_t space_id;      /* the process owning this space (when pid is 0) */
    void (*fn)(struct vm_space *vs, void *ctx);
    void *ctx;
    bool found;             /* a process matched */
    bool had_space;         /* ... and had a space (not a zombie) */
    int match_pid;
};

/* Under proc_lock: the matching process's space cannot be destroyed meanwhile
 * (see the top of this file), so fn may read it, taking its lock. */
static void space_visit(void *ctx, const struct proc_info *pi)
{
    struct space_query *q = ctx;
    if (q->found)
        return;
    if (q->pid ? pi->pid != q->pid : (!q->space_id || pi->space_id != q->space_id))
        return;
    q->found = true;
    q->match_pid = pi->pid;
    if (!pi->space_id)
        return;
    struct vm_space *vs = vm_space_by_id(pi->space_id);
    if (!vs)
        return;
    q->had_space = true;
    q->fn(vs, q->ctx);
}

int monitor_with_proc_space(int pid, uint32_t space_id, void (*fn)(struct vm_space *vs, void *ctx),
                            void *ctx, int *owner)
{
    struct space_query q = {.pid = pid, .space_id = space_id, .fn = fn, .ctx = ctx};
    proc_for_each(space_visit, &q);
    if (owner)
        *owner = q.match_pid;
    if (!q.found)
        return -ESRCH;
    return q.had_space ? 0 : -ENOENT;
}

void cmd_vmmap_pid(const char *arg)
{
    uint64_t v;
    if (!parse_u64(arg, &v) || v == 0 || v > 0x7fffffff) {
        monitor_error("vmmap", "'%s' is not a process id", arg);
        return;
    }
    int err = monitor_vmmap_of_proc((int)v);
    if (err == -ESRCH)
        monitor_error("vmmap", "no such process %llu (see 'ps')", (unsigned long long)v);
    else if (err == -ENOENT)
        monitor_error("vmmap", "process %llu has ended: no address space left", (unsigned long long)v);
}
