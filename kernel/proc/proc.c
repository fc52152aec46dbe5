/* Processes (proc.h has the model and the lock's rules). */
#include "proc/proc.h"

#include "arch/x86_64/cpu.h"
#include "arch/x86_64/gdt.h"
#include "arch/x86_64/pit.h"
#include "arch/x86_64/usercopy.h"
#include "exec/exec.h"
#include "lib/panic.h"
#include "lib/printf.h"
#include "lib/string.h"
#include "mm/frame.h"
#include "mm/heap.h"
#include "mm/paging.h"
#include "uapi/abi.h"

static struct spinlock proc_lock = SPINLOCK_INIT("proc", LOCK_RANK_PROC);
static struct list_node procs = LIST_INIT(procs); /* every process, pid order */
static unsigned nprocs;
static int next_pid = 1;

#define USER_RFLAGS 0x202 /* IF, and the bit that is always 1 */
#define EXEC_ARGS_MAX 64

struct proc *proc_current(void)
{
    struct thread *t = thread_current();
    return t ? t->proc : NULL;
}

bool proc_dying(const struct proc *p)
{
    return __atomic_load_n(&p->dying, __ATOMIC_ACQUIRE);
}

/* The frame a thread's first return to ring 3 loads. */
static void user_frame(struct interrupt_frame *f, uint64_t rip, uint64_t rsp, uint64_t rdi)
{
    memset(f, 0, sizeof(*f));
    f->rip = rip;
    f->rsp = rsp;
    f->rdi = rdi;
    f->cs = GDT_USER_CODE | 3;
    f->ss = GDT_USER_DATA | 3;
    f->rflags = USER_RFLAGS;
}

/* A new ALIVE process with no threads yet, in the table; -EAGAIN at the
 * limit, -ENOMEM. */
static int proc_alloc(const char *name, struct proc *parent, struct proc **out)
{
    struct proc *p = kcalloc(1, sizeof(*p));
    if (!p)
        return -ENOMEM;
    kstrlcpy(p->name, name, sizeof(p->name));
    list_init(&p->threads);
    list_init(&p->children);
    p->start_tsc = rdtsc();
    spin_lock(&proc_lock);
    if (nprocs >= SLAYER_PROC_MAX) {
        spin_unlock(&proc_lock);
        kfree(p);
        return -EAGAIN;
    }
    p->pid = next_pid++;
    p->parent = parent;
    if (parent)
        list_push_back(&parent->children, &p->sibling);
    list_push_back(&procs, &p->all_node);
    nprocs++;
    spin_unlock(&proc_lock);
    *out = p;
    return 0;
}

/* Takes p (no threads, no space) out of the table and frees it (proc_lock held). */
static void proc_free_locked(struct proc *p)
{
    if (p->parent)
        list_remove(&p->sibling);
    list_remove(&p->all_node);
    nprocs--;
    kfree(p);
}

/* Undoes a proc_alloc whose process never ran: out of the table first, so
 * that no reader of the table (proc_for_each) meets its space being freed. */
static void proc_discard(struct proc *p)
{
    spin_lock(&proc_lock);
    struct vm_space *vs = p->vs;
    proc_free_locked(p);
    spin_unlock(&proc_lock);
    if (vs)
        vm_space_destroy(vs);
}

/* Gives p its first thread, starting at *f with FPU state fpu; -ENOMEM. */
static int proc_first_thread(struct proc *p, const struct interrupt_frame *f, const void *fpu)
{
    struct thread *t = thread_create_user(p, p->name, f, fpu);
    if (!t)
        return -ENOMEM;
    spin_lock(&proc_lock);
    list_push_back(&p->threads, &t->proc_node);
    p->live_threads = 1;
    spin_unlock(&proc_lock);
    thread_start(t);
    return 0;
}

/* exec_module's errors as execve reports them. */
static int exec_error(int err)
{
    return err == -EINVAL ? -ENOEXEC : err;
}

int proc_spawn(const char *module, int argc, const char *const *argv, bool kernel_waits, int *pid,
               char *why, size_t whylen)
{
    thread_reap_dead();
    struct proc *p;
    int err = proc_alloc(module, NULL, &p);
    if (err)
        return err;
    p->kernel_waits = kernel_waits;
    err = vm_space_create(module, &p->vs);
    struct elf_start st;
    if (!err)
        err = exec_error(exec_module(p->vs, module, argc, argv, &st, why, whylen));
    struct interrupt_frame f;
    if (!err) {
        user_frame(&f, st.entry, st.rsp, 0);
        err = proc_first_thread(p, &f, NULL);
    }
    if (err) {
        proc_discard(p);
        return err;
    }
    *pid = p->pid;
    return 0;
}

/* ---- ending ---- */

NORETURN void proc_thread_exit(int exit_code)
{
    struct thread *t = thread_current();
    struct proc *p = t->proc;
    vm_activate(NULL); /* off the space before its last thread may destroy it */
    t->space = NULL;
    spin_lock(&proc_lock);
    list_remove(&t->proc_node);
    if (--p->live_threads) {
        spin_unlock(&proc_lock);
        t->proc = NULL;
        thread_exit();
    }
    int status = p->dying ? p->dying_status : (exit_code & 0xff) << 8;
    struct vm_space *vs = p->vs;
    p->vs = NULL;
    spin_unlock(&proc_lock);

    vm_space_destroy(vs); /* every frame and table back, before the parent hears of it */

    spin_lock(&proc_lock);
    struct proc *c, *tmp;
    list_for_each_entry_safe(c, tmp, &p->children, sibling) {
        bool zombie = c->state == PROC_ZOMBIE;
        list_remove(&c->sibling);
        c->parent = NULL; /* an orphan: freed when it ends */
        if (zombie)
            proc_free_locked(c);
    }
    p->status = status;
    p->state = PROC_ZOMBIE;
    if (p->parent)
        thread_wakeup(p->parent);
    else if (p->kernel_waits)
        thread_wakeup(p);
    else
        proc_free_locked(p);
    spin_unlock(&proc_lock);
    t->proc = NULL;
    thread_exit();
}

/* Marks p dying with status (first cause wins) and kicks its threads
 * (proc_lock held). */
static void proc_doom_locked(struct proc *p, int status)
{
    if (!p->dying) {
        p->dying_status = status;
        __atomic_store_n(&p->dying, true, __ATOMIC_RELEASE);
    }
    struct thread *t;
    list_for_each_entry(t, &p->threads, proc_node)
        if (t != thread_current())
            thread_kick(t);
}

NORETURN void proc_sys_exit_group(int code)
{
    struct proc *p = proc_current();
    spin_lock(&proc_lock);
    proc_doom_locked(p, (code & 0xff) << 8);
    spin_unlock(&proc_lock);
    proc_thread_exit(code);
}

const char *proc_signal_name(int sig)
{
    switch (sig) {
    case SIGILL: return "SIGILL";
    case SIGFPE: return "SIGFPE";
    case SIGKILL: return "SIGKILL";
    case SIGSEGV: return "SIGSEGV";
    default: return "an unknown signal";
    }
}

void proc_settled_counts(struct proc_counts *c)
{
    thread_reap_settled();
    heap_drain_cpu_caches();
    heap_trim();
    frame_drain_cpu_caches();
    struct frame_stats fs;
    struct heap_stats hs;
    struct vm_stats vs;
    struct sched_stats ss;
    frame_get_stats(&fs);
    heap_get_stats(&hs);
    vm_get_stats(&vs);
    sched_get_stats(&ss);
    *c = (struct proc_counts){
        .free_frames = fs.free_frames,
        .page_tables = paging_table_pages(),
        .heap_bytes = hs.bytes_in_use,
        .spaces = vs.spaces,
        .procs = proc_count(),
        .threads = ss.threads,
        .heap_pages = hs.pages_held,
        .kernel_tables = kernel_as.table_pages,
        .usable_frames = fs.usable_frames,
    };
}

NORETURN void proc_fault_kill(struct interrupt_frame *f, int sig, const char *what)
{
    struct thread *t = thread_current();
    struct proc *p = t->proc;
    if (what)
        kprintf("[proc] pid %d (%s) thread %u: %s at rip 0x%llx; killed (%s)\n", p->pid, p->name,
                t->tid, what, (unsigned long long)f->rip, proc_signal_name(sig));
    else
        kprintf("[proc] pid %d (%s) thread %u: killed (%s)\n", p->pid, p->name, t->tid,
                proc_signal_name(sig));
    cpu_sti();
    spin_lock(&proc_lock);
    proc_doom_locked(p, sig);
    spin_unlock(&proc_lock);
    proc_thread_exit(0);
}

/* The live process with that pid (proc_lock held), or NULL. */
static struct proc *find_locked(int pid)
{
    struct proc *p;
    list_for_each_entry(p, &procs, all_node)
        if (p->pid == pid)
            return p;
    return NULL;
}

int proc_kill(int pid, int sig)
{
    spin_lock(&proc_lock);
    struct proc *p = find_locked(pid);
    if (!p || p->state != PROC_ALIVE) {
        spin_unlock(&proc_lock);
        return -ESRCH;
    }
    proc_doom_locked(p, sig);
    spin_unlock(&proc_lock);
    return 0;
}

long proc_sys_kill(long pid, long sig)
{
    if (sig != SIGKILL)
        return -EINVAL;
    if (pid <= 0 || pid > 0x7fffffff)
        return -ESRCH;
    return proc_kill((int)pid, SIGKILL);
}

/* ---- waiting ---- */

int proc_wait_kernel_timeout(int pid, int *status, uint64_t timeout_ms)
{
    uint64_t deadline = timeout_ms ? rdtsc() + timeout_ms * 1000 * tsc_per_us() : 0;
    thread_reap_dead();
    spin_lock(&proc_lock);
    for (;;) {
        struct proc *p = find_locked(pid);
        if (!p || p->parent || !p->kernel_waits) {
            spin_unlock(&proc_lock);
            return -ECHILD;
        }
        if (p->state == PROC_ZOMBIE) {
            if (status)
                *status = p->status;
            proc_free_locked(p);
            spin_unlock(&proc_lock);
            thread_reap_dead();
            return 0;
        }
        if (deadline && rdtsc() >= deadline) {
            spin_unlock(&proc_lock);
            return -EAGAIN;
        }
        thread_sleep_on(p, &proc_lock, deadline);
    }
}

int proc_wait_kernel(int pid, int *status)
{
    return proc_wait_kernel_timeout(pid, status, 0);
}

long proc_sys_wait4(long pid, uint64_t status, uint64_t options, uint64_t rusage)
{
    struct proc *me = proc_current();
    if ((options & ~(uint64_t)WNOHANG) || rusage || pid == 0 || pid < -1 || pid > 0x7fffffff)
        return -EINVAL;
    int st = 0;
    if (status && copy_to_user(status, &st, sizeof(st))) /* before anything is reaped */
        return -EFAULT;
    thread_reap_dead();
    spin_lock(&proc_lock);
    for (;;) {
        bool have = false;
        struct proc *c, *z = NULL;
        list_for_each_entry(c, &me->children, sibling) {
            if (pid != -1 && c->pid != pid)
                continue;
            have = true;
            if (c->state == PROC_ZOMBIE) {
                z = c;
                break;
            }
        }
        if (!have) {
            spin_unlock(&proc_lock);
            return -ECHILD;
        }
        if (z) {
            int zpid = z->pid;
            st = z->status;
            proc_free_locked(z);
            spin_unlock(&proc_lock);
            if (status && copy_to_user(status, &st, sizeof(st)))
                return -EFAULT; /* only if the program unmapped it meanwhile */
            return zpid;
        }
        if (options & WNOHANG) {
            spin_unlock(&proc_lock);
            return 0;
        }
        if (proc_dying(me)) {
            spin_unlock(&proc_lock);
            return -EINTR;
        }
        thread_sleep_on(me, &proc_lock, 0);
    }
}

/* ---- fork, threads, exec ---- */

long proc_sys_fork(struct interrupt_frame *f)
{
    struct proc *parent = proc_current();
    thread_reap_dead();
    struct proc *c;
    int err = proc_alloc(parent->name, parent, &c);
    if (err)
        return err;
    err = vm_fork(parent->vs, parent->name, &c->vs);
    if (err) {
        proc_discard(c);
        return err;
    }
    struct interrupt_frame cf = *f;
    cf.rax = 0; /* fork returns 0 in the child */
    uint8_t fpu[512] __attribute__((aligned(16)));
    __asm__ volatile("fxsave64 (%0)" ::"r"(fpu) : "memory");
    err = proc_first_thread(c, &cf, fpu);
    if (err) {
        proc_discard(c);
        return err;
    }
    return c->pid;
}

long proc_sys_thread_create(uint64_t rip, uint64_t rsp, uint64_t arg)
{
    struct proc *p = proc_current();
    if (rip >= USER_TOP || rsp >= USER_TOP || rsp < 8)
        return -EINVAL;
    spin_lock(&proc_lock);
    if (p->live_threads >= SLAYER_THREADS_MAX || p->dying) {
        spin_unlock(&proc_lock);
        return -EAGAIN;
    }
    p->live_threads++; /* reserved: the caller is live, so the count cannot reach 0 meanwhile */
    spin_unlock(&proc_lock);
    struct interrupt_frame f;
    user_frame(&f, rip, rsp, arg);
    struct thread *t = thread_create_user(p, p->name, &f, NULL);
    spin_lock(&proc_lock);
    if (!t)
        p->live_threads--;
    else
        list_push_back(&p->threads, &t->proc_node);
    spin_unlock(&proc_lock);
    if (!t)
        return -ENOMEM;
    thread_start(t);
    return t->tid;
}

/* execve's arguments, copied in: argc strings packed in buf. */
struct exec_args {
    int argc;
    const char *argv[EXEC_ARGS_MAX];
    char buf[SLAYER_ARG_MAX];
};

static long copy_args(struct exec_args *a, const char *name, uint64_t uargv)
{
    a->argc = 0;
    size_t used = 0;
    if (!uargv) { /* no argv: the program gets its name as argv[0] */
        kstrlcpy(a->buf, name, sizeof(a->buf));
        a->argv[a->argc++] = a->buf;
        return 0;
    }
    for (;;) {
        uint64_t ptr;
        if (copy_from_user(&ptr, uargv + (uint64_t)a->argc * 8, 8))
            return -EFAULT;
        if (!ptr)
            return 0;
        if (a->argc == EXEC_ARGS_MAX)
            return -E2BIG;
        long n = strncpy_from_user(a->buf + used, ptr, (long)(sizeof(a->buf) - used));
        if (n == -ERANGE)
            return -E2BIG;
        if (n < 0)
            return n;
        a->argv[a->argc++] = a->buf + used;
        used += (size_t)n + 1;
    }
}

long proc_sys_execve(struct interrupt_frame *f, uint64_t uname, uint64_t uargv)
{
    struct proc *p = proc_current();
    struct thread *t = thread_current();
    char path[64];
    long n = strncpy_from_user(path, uname, sizeof(path));
    if (n == -ERANGE)
        return -ENAMETOOLONG;
    if (n < 0)
        return n;
    const char *name = path[0] == '/' ? path + 1 : path;
    struct exec_args *a = kmalloc(sizeof(*a));
    if (!a)
        return -ENOMEM;
    long err = copy_args(a, name, uargv);
    if (!err) {
        spin_lock(&proc_lock);
        if (p->live_threads > 1)
            err = -EBUSY;
        spin_unlock(&proc_lock);
    }
    struct vm_space *nvs = NULL;
    if (!err)
        err = vm_space_create(name, &nvs);
    struct elf_start st;
    char why[96] = "";
    if (!err) {
        err = exec_error(exec_module(nvs, name, a->argc, a->argv, &st, why, sizeof(why)));
        if (err == -ENOEXEC)
            kprintf("[proc] pid %d (%s): execve \"%s\" refused: %s\n", p->pid, p->name, name, why);
    }
    kfree(a);
    if (err) {
        if (nvs)
            vm_space_destroy(nvs);
        return err;
    }
    spin_lock(&proc_lock);
    struct vm_space *old = p->vs;
    p->vs = nvs;
    kstrlcpy(p->name, name, sizeof(p->name));
    spin_unlock(&proc_lock);
    vm_activate(nvs);
    t->space = nvs;
    vm_space_destroy(old);
    user_frame(f, st.entry, st.rsp, 0);
    thread_fpu_reset();
    return 0;
}

/* ---- the monitor's view ---- */

void proc_for_each(void (*fn)(void *ctx, const struct proc_info *pi), void *ctx)
{
    spin_lock(&proc_lock);
    struct proc *p;
    list_for_each_entry(p, &procs, all_node) {
        struct proc_info pi = {
            .pid = p->pid,
            .ppid = p->parent ? p->parent->pid : 0,
            .state = p->state,
            .threads = p->live_threads,
            .space_id = p->vs ? p->vs->id : 0,
            .resident = p->vs ? __atomic_load_n(&p->vs->resident, __ATOMIC_RELAXED) : 0,
            .cpu = -1,
        };
        struct thread *t;
        list_for_each_entry(t, &p->threads, proc_node) {
            pi.ticks += t->ticks;
            if (__atomic_load_n(&t->state, __ATOMIC_RELAXED) == THREAD_RUNNING)
                pi.cpu = (int)t->cpu;
        }
        kstrlcpy(pi.name, p->name, sizeof(pi.name));
        fn(ctx, &pi);
    }
    spin_unlock(&proc_lock);
}

int proc_ppid(struct proc *p)
{
    spin_lock(&proc_lock);
    int ppid = p->parent ? p->parent->pid : 0;
    spin_unlock(&proc_lock);
    return ppid;
}

unsigned proc_count(void)
{
    return __atomic_load_n(&nprocs, __ATOMIC_RELAXED);
}
