/* Threads and the scheduler (proc/sched.c; docs/processes.md).
 *
 * A thread is a kernel stack, the registers saved on it, and (for a thread
 * of a process) the FPU/SSE state of its ring-3 side. Every CPU runs one
 * thread at a time: its idle thread when nothing else is runnable. The
 * context each CPU booted on becomes a thread too: the BSP's is the "main"
 * thread (the monitor, the self-tests), pinned to CPU 0; an AP's is its idle
 * thread, which also runs the work other CPUs post to it (smp.h).
 *
 * Scheduling is round-robin over one run queue shared by every CPU, under
 * one lock (sched.c's rq_lock). A CPU's LAPIC timer ticks every
 * SCHED_TICK_MS; a thread of a process that used up its slice is preempted
 * when it is about to return to ring 3 (from the timer's interrupt, any
 * other interrupt, or a system call). Kernel code is never preempted: a
 * kernel thread runs until it blocks, yields or returns to ring 3, so
 * kernel code may rely on staying on its CPU between those points.
 *
 * Blocking is xv6's: thread_sleep_on(chan, lk) with lk protecting the
 * condition, thread_wakeup(chan) by whoever changes it while holding lk. */
#pragma once

#include "arch/x86_64/idt.h"
#include "lib/list.h"
#include "lib/spinlock.h"
#include "lib/types.h"

#define SCHED_TICK_MS     10 /* the LAPIC timer's period on every CPU */
#define SCHED_SLICE_TICKS 2  /* ticks a thread runs before another runnable one gets the CPU */
#define THREAD_STACK_PAGES 4 /* a thread's kernel stack, below a guard page */
#define THREAD_ANY_CPU    (-1)

enum thread_state {
    THREAD_RUNNABLE, /* on the run queue (or about to be, see sched.c) */
    THREAD_RUNNING,  /* some CPU's current thread */
    THREAD_BLOCKED,  /* sleeping on chan or until wake_tsc */
    THREAD_DEAD,     /* finished: its stack is freed by thread_reap_dead */
};

struct proc;

struct thread {
    uint64_t rsp;              /* offset 0 (switch.S): saved kernel RSP while switched out */
    uint32_t tid;              /* 1, 2, ... never reused while the kernel runs */
    enum thread_state state;   /* rq_lock */
    struct proc *proc;         /* NULL for a kernel thread; fixed until the thread exits */
    vaddr_t kstack_top;        /* its kernel stack (0: a CPU's boot stack, never freed) */
    int pinned;                /* the only CPU it runs on, or THREAD_ANY_CPU */
    bool idle;                 /* a CPU's idle thread: never on the run queue */
    uint32_t on_cpu;           /* 1 from its switch-in until its switch-out completed (rq_lock) */
    unsigned cpu;              /* the CPU it runs or last ran on */
    unsigned slice;            /* ticks left in its slice (its CPU's timer) */
    const void *chan;          /* what it sleeps on while BLOCKED (rq_lock) */
    uint64_t wake_tsc;         /* BLOCKED until this TSC value too (0: no deadline) */
    struct vm_space *space;    /* the space its CPU has loaded while it runs (NULL: kernel_as) */
    uint64_t ticks;            /* timer ticks taken while it ran */
    uint64_t switches;         /* times it was switched in */
    struct list_node run_node; /* the run queue, the blocked list or the dead list (rq_lock) */
    struct list_node all_node; /* every thread (rq_lock) */
    struct list_node proc_node;/* its process's threads (proc.c's lock) */
    void (*fn)(void *);        /* a kernel thread's body */
    void *arg;
    char name[24];
    uint8_t fpu_area[512 + 16];/* FXSAVE image of a process thread's FPU/SSE state (16-aligned inside) */
};

/* Makes the running boot context the main thread (pinned to CPU 0) and
 * creates CPU 0's idle thread. BSP only, once, after the heap. */
void sched_init(void);
/* Makes the running AP's boot context its idle thread; then the AP runs
 * sched_idle_loop. Called by the AP itself, before it marks itself online. */
void sched_init_ap(void);
/* Starts this CPU's periodic scheduler tick (the LAPIC timer, SCHED_TICK_MS).
 * Every CPU, once sched_init ran; again after a test borrowed the timer. */
void sched_timer_start(void);
/* The idle thread's body on every CPU: runs posted work (smp.h), then
 * runnable threads, else halts until an interrupt. Never returns. */
NORETURN void sched_idle_loop(void);
/* True once sched_init ran (before it there is no current thread). */
bool sched_ready(void);

/* The running thread (NULL before sched_init). */
struct thread *thread_current(void);
/* A new kernel thread running fn(arg) with interrupts on, on any CPU or
 * the one `pinned` names; runnable at once. NULL when memory ran out.
 * When fn returns the thread ends. */
struct thread *kthread_create(const char *name, void (*fn)(void *), void *arg, int pinned);
/* A new thread of process p, not yet runnable, whose first return to ring 3
 * loads the registers in *frame (a copy is kept on its stack) with the FPU
 * state fpu (NULL: the initial state). NULL when memory ran out. */
struct thread *thread_create_user(struct proc *p, const char *name,
                                  const struct interrupt_frame *frame, const void *fpu);
/* Makes a thread made by thread_create_user runnable. */
void thread_start(struct thread *t);
/* Lets every other runnable thread this CPU may run have a turn first. */
void thread_yield(void);
/* Atomically releases lk and sleeps until thread_wakeup(chan), a deadline
 * passed in wake_tsc (0: none) or thread_kick; takes lk again before it
 * returns. The caller loops on its condition (wake-ups may be spurious). */
void thread_sleep_on(const void *chan, struct spinlock *lk, uint64_t wake_tsc);
/* Makes every thread sleeping on chan runnable. */
void thread_wakeup(const void *chan);
/* Wakes t if it sleeps (whatever it sleeps on), and makes the CPU running it
 * look at it at its next return to ring 3 (an IPI when that is another CPU):
 * how a killed process's threads notice at once. */
void thread_kick(struct thread *t);
/* Loads the initial FPU/SSE state (execve: a new program starts clean). */
void thread_fpu_reset(void);
/* Ends the running thread (its process, if any, must be done with it:
 * proc.c). Never returns; the stack is freed by thread_reap_dead. */
NORETURN void thread_exit(void);
/* Frees the stacks and structs of every thread that ended; from a thread
 * that may block (interrupts on). Returns how many. */
unsigned thread_reap_dead(void);
/* As thread_reap_dead, after waiting until every thread that has called
 * thread_exit is off its CPU: afterwards no ended thread holds a stack or
 * a struct (thread_reap_dead misses one still switching out). For counts
 * that must be back at a baseline; interrupts on. Returns how many. */
unsigned thread_reap_settled(void);
/* A kernel thread waiting for an interrupt-driven event: runs another
 * runnable thread if there is one, else halts until the next interrupt. */
void sched_idle_wait(void);

/* From the LAPIC timer's interrupt handler: charges the tick to the running
 * thread and asks for a switch when its slice is over or sleepers are due. */
void sched_tick(void);
/* On every return to ring 3 (interrupts off): ends the thread if its
 * process was killed, switches if a switch was asked for. */
void sched_return_to_user(struct interrupt_frame *f);

/* Counts for the monitor, memstat and the tests. */
struct sched_stats {
    unsigned threads;        /* live threads (not yet reaped), idle and main included */
    unsigned runnable;       /* on the run queue */
    unsigned dead;           /* ended, not yet reaped */
    uint64_t switches;       /* thread switches, every CPU */
    uint64_t preemptions;    /* of them, slices that ran out */
};
void sched_get_stats(struct sched_stats *s);
/* Calls fn for every thread under the scheduler's lock (fn must take no
 * lock and not block: a snapshot). */
void sched_for_each_thread(void (*fn)(void *ctx, const struct thread *t), void *ctx);
