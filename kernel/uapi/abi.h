/* The system-call interface between SlayerOS and its programs: numbers,
 * flags, structures and status encodings. Included by the kernel
 * (arch/x86_64/syscall.c, proc/) and by user/lib, so both sides agree by
 * construction; nothing here depends on either side's headers.
 *
 * Calling convention (Linux's x86_64 one, so the numbers and registers are
 * familiar): SYSCALL with the number in RAX, arguments in RDI, RSI, RDX,
 * R10, R8, R9; the result in RAX, an error as -errno (the E* values below,
 * Linux's). RCX and R11 are clobbered; every other register is kept.
 * Numbers are Linux's where Linux has the call; SlayerOS's own calls start
 * at 0x1000. Every pointer argument is checked: a bad one gives -EFAULT,
 * never a kernel fault; an unknown number gives -ENOSYS. */
#pragma once

/* ---- call numbers ---- */
#define SYS_READ        0   /* read(fd 0, buf, len): bytes typed at the console or serial
                             * port; blocks until at least one byte; returns the count */
#define SYS_WRITE       1   /* write(fd 1 or 2, buf, len): console and serial; returns len */
#define SYS_MMAP        9   /* mmap(addr, len, prot, flags, fd -1, off 0): anonymous private
                             * memory, demand-zero; returns the address */
#define SYS_MPROTECT    10  /* mprotect(addr, len, prot): 0; effective on every CPU at return */
#define SYS_MUNMAP      11  /* munmap(addr, len): 0; effective on every CPU at return */
#define SYS_SCHED_YIELD 24  /* sched_yield(): 0, after other runnable threads had their turn */
#define SYS_NANOSLEEP   35  /* nanosleep(const struct timespec *req, struct timespec *rem
                             * (ignored, may be 0)): 0 after at least req */
#define SYS_GETPID      39  /* getpid(): the process's id (1, 2, ...) */
#define SYS_FORK        57  /* fork(): the child's pid in the parent, 0 in the child; the
                             * child gets a copy-on-write copy of the space and only the
                             * calling thread */
#define SYS_EXECVE      59  /* execve(name, argv, envp (ignored)): runs boot module `name`
                             * (a leading '/' is ignored) in a new space replacing the
                             * caller's; does not return on success. -EBUSY when the
                             * process has other threads, -ENOENT / -ENOEXEC / -E2BIG */
#define SYS_EXIT        60  /* exit(code): ends the calling thread; the last thread to end
                             * ends the process with exit status code & 0xff */
#define SYS_WAIT4       61  /* wait4(pid or -1, int *status or 0, options 0 or WNOHANG,
                             * rusage 0): a child's pid once it ended (its status stored),
                             * 0 with WNOHANG when none ended yet, -ECHILD when there is no
                             * such child */
#define SYS_KILL        62  /* kill(pid, SIGKILL): ends that process (any process but the
                             * kernel's); -ESRCH when there is none, -EINVAL for another signal */
#define SYS_GETPPID     110 /* getppid(): the parent's pid, 0 when the kernel started it */
#define SYS_EXIT_GROUP  231 /* exit_group(code): ends every thread of the process */

#define SYS_THREAD_CREATE 0x1000 /* thread_create(rip, rsp, arg): a new thread of this
                                  * process starting at rip with RSP = rsp and RDI = arg
                                  * (RSP as at a function's entry: rsp + 8 16-aligned);
                                  * returns its thread id; -EAGAIN at the thread limit */
#define SYS_MEMSTAT       0x1001 /* memstat(struct slayer_memstat *): the kernel's counts,
                                  * settled first (ended threads freed, per-CPU caches
                                  * given back), so two calls around an operation that
                                  * left nothing behind agree exactly */
#define SYS_GETTID        0x1002 /* gettid(): the calling thread's id */
#define SYS_CPU           0x1003 /* cpu(): the index of the CPU the caller runs on (0, 1, ...) */

/* ---- mmap / mprotect ---- */
#define PROT_NONE  0x0
#define PROT_READ  0x1
#define PROT_WRITE 0x2
#define PROT_EXEC  0x4
#define MAP_PRIVATE   0x02 /* required */
#define MAP_FIXED     0x10 /* at addr exactly, replacing what was mapped there */
#define MAP_ANONYMOUS 0x20 /* required (there are no files) */
#define MAP_FAILED ((void *)-1)

/* ---- wait4 ---- */
#define WNOHANG 1
/* A status is Linux's encoding: exit(code) gives code << 8; a process ended
 * by the kernel gives the signal number (below) in the low 7 bits. */
#define WIFEXITED(s)   (((s) & 0x7f) == 0)
#define WEXITSTATUS(s) (((s) >> 8) & 0xff)
#define WIFSIGNALED(s) (((s) & 0x7f) != 0)
#define WTERMSIG(s)    ((s) & 0x7f)

/* Why the kernel ended a process (the low 7 bits of its status). */
#define SIGILL  4  /* an invalid instruction (#UD) */
#define SIGFPE  8  /* a divide error */
#define SIGKILL 9  /* kill(), the monitor's `kill`, or out of memory */
#define SIGSEGV 11 /* a page fault the memory manager could not resolve, or a general
                   * protection fault (a privileged instruction, a bad selector) */

/* ---- nanosleep ---- */
struct timespec {
    long tv_sec;
    long tv_nsec; /* 0 .. 999,999,999, else -EINVAL */
};

/* ---- memstat ---- */
struct slayer_memstat {
    unsigned long free_frames;   /* free 4 KiB frames */
    unsigned long total_frames;  /* usable 4 KiB frames */
    unsigned long heap_bytes;    /* bytes the kernel heap holds for live allocations */
    unsigned long spaces;        /* live user address spaces */
    unsigned long procs;         /* live processes (zombies included) */
    unsigned long threads;       /* live threads, kernel threads included */
    unsigned long resident;      /* this process's resident pages */
    unsigned long cpus;          /* online CPUs */
    unsigned long syscalls;      /* system calls dispatched so far, every CPU */
};

/* ---- errors (negated in RAX) ---- */
#define EPERM   1
#define ENOENT  2
#define ESRCH   3
#define EINTR   4
#define E2BIG   7
#define ENOEXEC 8
#define EBADF   9
#define ECHILD  10
#define EAGAIN  11
#define ENOMEM  12
#define EFAULT  14
#define EBUSY   16
#define EEXIST  17
#define EINVAL  22
#define ERANGE  34
#define ENAMETOOLONG 36
#define ENOSYS  38

/* ---- limits ---- */
#define SLAYER_PROC_MAX    64  /* live processes at once (zombies count): fork gives -EAGAIN */
#define SLAYER_THREADS_MAX 16  /* threads per process: thread_create gives -EAGAIN */
#define SLAYER_ARG_MAX     4096 /* execve: bytes of argv strings */
