/* Processes (proc/proc.c; docs/processes.md): a user address space, its
 * threads, a pid, a parent, and an exit status once it ended.
 *
 * Life: proc_spawn (the kernel: the monitor's `run`, the `usertests` boot)
 * or fork makes one; its last thread to end destroys its address space at
 * once and makes it a zombie holding only its status, until its parent's
 * wait4 (or proc_wait_kernel, for those the kernel started and waits for)
 * frees it. A process whose parent ended first, or that the kernel started
 * without waiting, is freed as soon as it ends. A process ends by exit or
 * exit_group, by kill, or when one of its threads does what the kernel
 * cannot let it do (an unresolved page fault, an invalid instruction): the
 * kernel prints one line saying which and why, and only that process ends.
 *
 * proc_lock (plain, LOCK_RANK_PROC, outermost) protects the process table:
 * every process's state, links, thread list and counts, and status. */
#pragma once

#include "arch/x86_64/idt.h"
#include "lib/list.h"
#include "lib/types.h"
#include "mm/vm.h"
#include "proc/sched.h"

enum proc_state {
    PROC_ALIVE,  /* has threads */
    PROC_ZOMBIE, /* ended: only the status is left */
};

struct proc {
    int pid;                   /* 1, 2, ... never reused while the kernel runs */
    enum proc_state state;
    struct proc *parent;       /* NULL: the kernel's */
    bool kernel_waits;         /* parent NULL and proc_wait_kernel will free it */
    struct vm_space *vs;       /* NULL once it ended */
    int status;                /* wait status once a zombie (abi.h's encoding) */
    bool dying;                /* its threads must end (kill, exit_group, a fault); read lock-free */
    int dying_status;          /* the status they end with then */
    unsigned live_threads;     /* threads not yet ended */
    struct list_node threads;  /* struct thread.proc_node */
    struct list_node children; /* struct proc.sibling */
    struct list_node sibling;
    struct list_node all_node;
    uint64_t start_tsc;
    char name[32];
};

/* A snapshot of one process for the monitor (proc_for_each). */
struct proc_info {
    int pid, ppid;
    enum proc_state state;
    unsigned threads;
    uint32_t space_id;         /* its vm_space's id (0 once ended) */
    uint64_t resident;         /* resident pages */
    uint64_t ticks;            /* timer ticks its threads ran */
    int cpu;                   /* a CPU one of its threads runs on now, or -1 */
    char name[32];
};

/* Starts boot module `module` as a new process whose parent is the kernel,
 * with argv (argc strings; argv[0] is the program's name by convention).
 * kernel_waits: the caller will proc_wait_kernel for it; else it is freed
 * when it ends. 0 with *pid set, or -errno (-ENOENT: no such module;
 * -ENOEXEC: not a valid program, the reason in why; -ENOMEM; -EAGAIN: at
 * SLAYER_PROC_MAX). */
int proc_spawn(const char *module, int argc, const char *const *argv, bool kernel_waits, int *pid,
               char *why, size_t whylen);
/* Waits until process pid, started by proc_spawn with kernel_waits, ended;
 * frees it and stores its wait status. 0, or -ECHILD when there is no such
 * process of the kernel's to wait for. From a kernel thread. */
int proc_wait_kernel(int pid, int *status);
/* As proc_wait_kernel, but gives up after timeout_ms (then -EAGAIN; the
 * process is left as it is). */
int proc_wait_kernel_timeout(int pid, int *status, uint64_t timeout_ms);
/* Ends process pid as if by signal sig (SIGKILL): 0, -ESRCH when no live
 * process has that pid. Its threads end at their next return to ring 3 or
 * from any wait. */
int proc_kill(int pid, int sig);
/* Calls fn with a snapshot of every process, in pid order, under
 * proc_lock: fn must not block, print, or take proc_lock or the scheduler's
 * lock; it may take a space's vm and paging locks, which rank after PROC
 * (the monitor reads a process's regions this way: a process's space is
 * destroyed only after it was taken out of the process under proc_lock). */
void proc_for_each(void (*fn)(void *ctx, const struct proc_info *pi), void *ctx);
/* Live processes (zombies included). */
unsigned proc_count(void);
/* The name of a signal that ends a process ("SIGSEGV", ...). */
const char *proc_signal_name(int sig);
/* The kernel's memory and process counts, settled (proc_settled_counts). */
struct proc_counts {
    uint64_t free_frames, page_tables, heap_bytes, spaces, procs, threads, heap_pages,
        kernel_tables, usable_frames;
};
/* Reaps ended threads and gives every per-CPU cache back (heap magazines,
 * empty heap pages, frame caches), then reads the counts: two readings
 * around an operation that left nothing behind agree exactly (memstat, the
 * usertests boot). From a thread that may block. */
void proc_settled_counts(struct proc_counts *c);
/* p's parent's pid, 0 when the kernel is its parent. */
int proc_ppid(struct proc *p);
/* The running thread's process, or NULL (a kernel thread). */
struct proc *proc_current(void);
/* True when p's threads must end (killed, exit_group, a fault). Lock-free. */
bool proc_dying(const struct proc *p);
/* Ends the running thread of a process: exit_code is used when it is the
 * last and the process is not dying already. Interrupts on. */
NORETURN void proc_thread_exit(int exit_code);
/* Ends the running thread's process after a fault in ring 3 the kernel
 * could not resolve: prints "[proc] pid N (name): <what>; killed (SIGx)"
 * unless already said, then as exit_group with status sig. */
NORETURN void proc_fault_kill(struct interrupt_frame *f, int sig, const char *what);

/* The system calls about processes (proc/sys.c dispatches). */
long proc_sys_fork(struct interrupt_frame *f);
long proc_sys_execve(struct interrupt_frame *f, uint64_t name, uint64_t argv);
long proc_sys_wait4(long pid, uint64_t status, uint64_t options, uint64_t rusage);
long proc_sys_kill(long pid, long sig);
long proc_sys_thread_create(uint64_t rip, uint64_t rsp, uint64_t arg);
NORETURN void proc_sys_exit_group(int code);
