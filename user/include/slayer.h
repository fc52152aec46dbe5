/* SlayerOS's own part of the user library: the raw system calls and the
 * calls Linux does not have (memstat, threads, cpu).
 *
 * Two layers. The raw layer (sys_*, syscall6) returns exactly what the
 * kernel put in RAX: a result >= 0 or -errno (kernel/uapi/abi.h); it never
 * touches errno, which is what the tests and the fuzzer want. The POSIX
 * layer (write, mmap, fork, ... in unistd.h, sys/mman.h, ...) is built on it
 * and does what a C program expects: -1 (MAP_FAILED for mmap) with errno
 * set on an error. */
#pragma once

#include <stddef.h>
#include <abi.h>

/* One SYSCALL with number n and six arguments: the kernel's RAX, unchanged.
 * RCX and R11 are clobbered by the instruction, memory by the kernel. */
static inline long syscall6(long n, long a1, long a2, long a3, long a4, long a5, long a6)
{
    register long r10 __asm__("r10") = a4;
    register long r8 __asm__("r8") = a5;
    register long r9 __asm__("r9") = a6;
    long ret;
    __asm__ volatile("syscall"
                     : "=a"(ret)
                     : "a"(n), "D"(a1), "S"(a2), "d"(a3), "r"(r10), "r"(r8), "r"(r9)
                     : "rcx", "r11", "memory");
    return ret;
}

/* The raw calls: each returns the kernel's result or -errno (abi.h). */
long sys_read(int fd, void *buf, size_t len);
long sys_write(int fd, const void *buf, size_t len);
long sys_mmap(void *addr, size_t len, int prot, int flags, int fd, long off);
long sys_mprotect(void *addr, size_t len, int prot);
long sys_munmap(void *addr, size_t len);
long sys_sched_yield(void);
long sys_nanosleep(const struct timespec *req, struct timespec *rem);
long sys_getpid(void);
long sys_fork(void);
long sys_execve(const char *name, char *const argv[], char *const envp[]);
long sys_exit(int code);
long sys_wait4(int pid, int *status, int options, void *rusage);
long sys_kill(int pid, int sig);
long sys_getppid(void);
long sys_exit_group(int code);
long sys_thread_create(void *rip, void *rsp, void *arg);
long sys_memstat(struct slayer_memstat *st);
long sys_gettid(void);
long sys_cpu(void);

/* memstat: fills *st with the kernel's counts; 0, or -1 with errno set. */
int memstat(struct slayer_memstat *st);
/* gettid: the calling thread's id (never fails). */
int gettid(void);
/* cpu: the index of the CPU the caller ran on at the call (never fails). */
int cpu(void);

/* thread_start: runs fn(arg) in a new thread of this process on the stack
 * [stack, stack + size) (16-byte aligned top); when fn returns the thread
 * ends (SYS_EXIT with 0), the process lives on while other threads do.
 * Returns the thread's id, or -1 with errno set (EAGAIN at the limit).
 * The library's malloc is thread-safe; errno is one per process. */
int thread_start(void (*fn)(void *), void *arg, void *stack, size_t size);
/* thread_exit: ends the calling thread only. */
__attribute__((noreturn)) void thread_exit(int code);
