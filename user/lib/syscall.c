/* The system calls (slayer.h, unistd.h, sys/mman.h, sys/wait.h, signal.h,
 * time.h, sched.h): the raw sys_* stubs return the kernel's RAX as is; the
 * POSIX-style wrappers turn -errno into -1 and errno. Not portable (inline
 * SYSCALL): the host test of the library leaves this file out and provides
 * the few wrappers the portable files call (write, mmap, munmap). */
#include <slayer.h>
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* crt0.S cannot include abi.h (C declarations) and writes the number itself. */
_Static_assert(SYS_EXIT_GROUP == 231, "crt0.S: exit_group is 231");

#define S0(n)                syscall6((n), 0, 0, 0, 0, 0, 0)
#define S1(n, a)             syscall6((n), (long)(a), 0, 0, 0, 0, 0)
#define S2(n, a, b)          syscall6((n), (long)(a), (long)(b), 0, 0, 0, 0)
#define S3(n, a, b, c)       syscall6((n), (long)(a), (long)(b), (long)(c), 0, 0, 0)
#define S4(n, a, b, c, d)    syscall6((n), (long)(a), (long)(b), (long)(c), (long)(d), 0, 0)

long sys_read(int fd, void *buf, size_t len) { return S3(SYS_READ, fd, buf, len); }
long sys_write(int fd, const void *buf, size_t len) { return S3(SYS_WRITE, fd, buf, len); }
long sys_mmap(void *addr, size_t len, int prot, int flags, int fd, long off)
{
    return syscall6(SYS_MMAP, (long)addr, (long)len, prot, flags, fd, off);
}
long sys_mprotect(void *addr, size_t len, int prot) { return S3(SYS_MPROTECT, addr, len, prot); }
long sys_munmap(void *addr, size_t len) { return S2(SYS_MUNMAP, addr, len); }
long sys_sched_yield(void) { return S0(SYS_SCHED_YIELD); }
long sys_nanosleep(const struct timespec *req, struct timespec *rem)
{
    return S2(SYS_NANOSLEEP, req, rem);
}
long sys_getpid(void) { return S0(SYS_GETPID); }
long sys_fork(void) { return S0(SYS_FORK); }
long sys_execve(const char *name, char *const argv[], char *const envp[])
{
    return S3(SYS_EXECVE, name, argv, envp);
}
long sys_exit(int code) { return S1(SYS_EXIT, code); }
long sys_wait4(int pid, int *status, int options, void *rusage)
{
    return S4(SYS_WAIT4, pid, status, options, rusage);
}
long sys_kill(int pid, int sig) { return S2(SYS_KILL, pid, sig); }
long sys_getppid(void) { return S0(SYS_GETPPID); }
long sys_exit_group(int code) { return S1(SYS_EXIT_GROUP, code); }
long sys_thread_create(void *rip, void *rsp, void *arg)
{
    return S3(SYS_THREAD_CREATE, rip, rsp, arg);
}
long sys_memstat(struct slayer_memstat *st) { return S1(SYS_MEMSTAT, st); }
long sys_gettid(void) { return S0(SYS_GETTID); }
long sys_cpu(void) { return S0(SYS_CPU); }

/* r as a POSIX result: r itself, or -1 with errno = -r for an error. */
static long posix(long r)
{
    if (r < 0 && r >= -4095) {
        errno = (int)-r;
        return -1;
    }
    return r;
}

ssize_t read(int fd, void *buf, size_t len) { return posix(sys_read(fd, buf, len)); }
ssize_t write(int fd, const void *buf, size_t len) { return posix(sys_write(fd, buf, len)); }
void *mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
    long r = posix(sys_mmap(addr, len, prot, flags, fd, off));
    return r == -1 ? MAP_FAILED : (void *)r;
}
int munmap(void *addr, size_t len) { return (int)posix(sys_munmap(addr, len)); }
int mprotect(void *addr, size_t len, int prot) { return (int)posix(sys_mprotect(addr, len, prot)); }
int sched_yield(void) { return (int)posix(sys_sched_yield()); }
int nanosleep(const struct timespec *req, struct timespec *rem)
{
    return (int)posix(sys_nanosleep(req, rem));
}
pid_t getpid(void) { return (pid_t)sys_getpid(); }
pid_t getppid(void) { return (pid_t)sys_getppid(); }
pid_t fork(void) { return (pid_t)posix(sys_fork()); }
int execve(const char *name, char *const argv[], char *const envp[])
{
    return (int)posix(sys_execve(name, argv, envp));
}
int execv(const char *name, char *const argv[])
{
    static char *const no_env[] = {NULL};
    return execve(name, argv, no_env);
}
pid_t wait4(pid_t pid, int *status, int options, void *rusage)
{
    return (pid_t)posix(sys_wait4(pid, status, options, rusage));
}
pid_t waitpid(pid_t pid, int *status, int options) { return wait4(pid, status, options, NULL); }
pid_t wait(int *status) { return wait4(-1, status, 0, NULL); }
int kill(pid_t pid, int sig) { return (int)posix(sys_kill(pid, sig)); }
int memstat(struct slayer_memstat *st) { return (int)posix(sys_memstat(st)); }
int gettid(void) { return (int)sys_gettid(); }
int cpu(void) { return (int)sys_cpu(); }

unsigned sleep(unsigned seconds)
{
    struct timespec t = {(long)seconds, 0};
    return nanosleep(&t, NULL) == 0 ? 0 : seconds;
}

int usleep(unsigned long usec)
{
    struct timespec t = {(long)(usec / 1000000), (long)(usec % 1000000) * 1000};
    return nanosleep(&t, NULL);
}

void _exit(int code)
{
    for (;;) { /* exit_group does not return; if it ever did (no process), end with #UD */
        sys_exit_group(code);
        __builtin_trap();
    }
}

void exit(int code)
{
    _exit(code);
}

void abort(void)
{
    sys_kill((int)sys_getpid(), SIGKILL);
    __builtin_trap(); /* no process to kill: #UD */
}

void thread_exit(int code)
{
    for (;;) {
        sys_exit(code);
        __builtin_trap();
    }
}

/* Where a thread's fn returns to: its first stack slot (see thread_start). */
static void thread_return(void)
{
    thread_exit(0);
}

int thread_start(void (*fn)(void *), void *arg, void *stack, size_t size)
{
    /* The thread enters fn as if called: RSP at a return address (to
     * thread_return), RSP + 8 16-aligned. */
    unsigned long top = ((unsigned long)stack + size) & ~15ul;
    void **rsp = (void **)(top - 16);
    rsp[0] = (void *)thread_return;
    rsp[1] = NULL;
    return (int)posix(sys_thread_create((void *)fn, rsp, arg));
}
