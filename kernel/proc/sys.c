/* The system calls (uapi/abi.h is the contract): each checks every
 * argument before it acts. A pointer is checked against the user half
 * before any access and copied with the fault-tolerant copies of
 * arch/x86_64/usercopy.h, so a bad one is -EFAULT and never a kernel
 * fault; a bad number or flag is -EINVAL, an unknown call -ENOSYS.
 * write and getpid also serve the self-tests' ring-3 runs, which have no
 * process; every other call needs one (-ENOSYS without). */
#include "proc/sys.h"

#include "arch/x86_64/cpu.h"
#include "arch/x86_64/pit.h"
#include "arch/x86_64/smp.h"
#include "arch/x86_64/syscall.h"
#include "arch/x86_64/usercopy.h"
#include "dev/input.h"
#include "lib/printf.h"
#include "mm/vm.h"
#include "proc/proc.h"
#include "uapi/abi.h"

#include "lib/errno.h"
_Static_assert(ENOENT == 2 && EBADF == 9 && ENOMEM == 12 && EFAULT == 14 && EEXIST == 17 &&
                   EINVAL == 22 && ERANGE == 34 && ENOSYS == 38,
               "lib/errno.h and uapi/abi.h agree");
_Static_assert(PROT_READ == VM_READ && PROT_WRITE == VM_WRITE && PROT_EXEC == VM_EXEC,
               "abi.h's PROT_* are vm.h's rights");

/* Where mmap places memory when the program names no address: above the
 * image and its stack's reach, below nothing in particular. */
#define MMAP_BASE 0x0000100000000000ULL

/* write(fd, buf, len): fd 1 and 2 go to the kernel's console and serial
 * sinks; the bytes are copied in pieces, so len is not bounded by a buffer. */
static long sys_write(uint64_t fd, uint64_t buf, uint64_t len)
{
    if (fd != 1 && fd != 2)
        return -EBADF;
    if (!user_range_ok(buf, len))
        return -EFAULT;
    char chunk[128];
    for (uint64_t done = 0; done < len;) {
        uint64_t n = len - done < sizeof(chunk) ? len - done : sizeof(chunk);
        if (copy_from_user(chunk, buf + done, n))
            return done ? (long)done : -EFAULT;
        kprintf("%.*s", (int)n, chunk);
        done += n;
    }
    return (long)len;
}

/* read(0, buf, len): waits for the first byte (polling the input queue
 * every tick: it is filled by interrupt handlers, which cannot wake a
 * thread), then takes what is there up to len or a newline. */
static long sys_read(struct proc *p, uint64_t fd, uint64_t buf, uint64_t len)
{
    if (fd != 0)
        return -EBADF;
    if (!user_range_ok(buf, len))
        return -EFAULT;
    if (!len)
        return 0;
    char chunk[128];
    uint64_t n = 0;
    for (;;) {
        int c = input_trygetc();
        if (c >= 0) {
            chunk[n++] = (char)c;
            if (c == '\n' || c == '\r' || n == len || n == sizeof(chunk))
                break;
            continue;
        }
        if (n)
            break;
        if (proc_dying(p))
            return -EINTR;
        thread_sleep_on(thread_current(), NULL, rdtsc() + SCHED_TICK_MS * 1000 * tsc_per_us());
    }
    if (copy_to_user(buf, chunk, n))
        return -EFAULT; /* the bytes are lost: the program gave a buffer it cannot take */
    return (long)n;
}

static long sys_mmap(struct proc *p, uint64_t addr, uint64_t len, uint64_t prot, uint64_t flags,
                     uint64_t fd, uint64_t off)
{
    if (!len || (prot & ~(uint64_t)VM_PROT_MASK) ||
        (flags & ~(uint64_t)(MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED)) ||
        !(flags & MAP_PRIVATE) || !(flags & MAP_ANONYMOUS) || (int)fd != -1 || off)
        return -EINVAL;
    if (len > USER_TOP)
        return -ENOMEM;
    uint64_t size = (len + PAGE_SIZE - 1) & ~(uint64_t)(PAGE_SIZE - 1);
    bool fixed = flags & MAP_FIXED;
    if (fixed && ((addr & (PAGE_SIZE - 1)) || !addr || !user_range_ok(addr, size)))
        return -EINVAL;
    vaddr_t a = addr;
    if (!fixed && (!a || (a & (PAGE_SIZE - 1)) || !user_range_ok(a, size)))
        a = MMAP_BASE; /* a hint it cannot use: placed as if there were none */
    int err = vm_map(p->vs, &a, size, (uint32_t)prot, VMR_ANON, NULL, 0, 0, fixed ? VM_MAP_FIXED : 0);
    return err ? err : (long)a;
}

/* The [addr, addr + len) of munmap and mprotect: page-aligned start, in the
 * user half; len rounded up. */
static bool range_ok(uint64_t addr, uint64_t len, uint64_t *size)
{
    if ((addr & (PAGE_SIZE - 1)) || !len || len > USER_TOP)
        return false;
    *size = (len + PAGE_SIZE - 1) & ~(uint64_t)(PAGE_SIZE - 1);
    return user_range_ok(addr, *size);
}

static long sys_munmap(struct proc *p, uint64_t addr, uint64_t len)
{
    uint64_t size;
    if (!range_ok(addr, len, &size))
        return -EINVAL;
    return vm_unmap(p->vs, addr, size);
}

static long sys_mprotect(struct proc *p, uint64_t addr, uint64_t len, uint64_t prot)
{
    uint64_t size;
    if (!range_ok(addr, len, &size) || (prot & ~(uint64_t)VM_PROT_MASK))
        return -EINVAL;
    int err = vm_protect(p->vs, addr, size, (uint32_t)prot);
    return err == -ENOENT ? -ENOMEM : err; /* Linux's answer for a range with holes */
}

static long sys_nanosleep(struct proc *p, uint64_t ureq)
{
    struct timespec ts;
    if (copy_from_user(&ts, ureq, sizeof(ts)))
        return -EFAULT;
    if (ts.tv_sec < 0 || ts.tv_nsec < 0 || ts.tv_nsec > 999999999)
        return -EINVAL;
    uint64_t per_us = tsc_per_us();
    uint64_t us = (uint64_t)ts.tv_nsec / 1000;
    if ((uint64_t)ts.tv_sec > UINT64_MAX / 1000000 / (per_us ? per_us : 1) / 2)
        return -EINVAL; /* longer than the TSC can count */
    us += (uint64_t)ts.tv_sec * 1000000;
    uint64_t deadline = rdtsc() + us * per_us;
    struct thread *t = thread_current();
    while (rdtsc() < deadline) {
        if (proc_dying(p))
            return -EINTR;
        thread_sleep_on(t, NULL, deadline);
    }
    return 0;
}

/* memstat settles the kernel's caches first (ended threads reaped, the
 * heap's and the frame allocator's per-CPU caches given back, empty heap
 * pages released), so that two calls around an operation compare exactly. */
static long sys_memstat(struct proc *p, uint64_t uout)
{
    if (!user_range_ok(uout, sizeof(struct slayer_memstat)))
        return -EFAULT;
    struct proc_counts c;
    proc_settled_counts(&c);
    struct slayer_memstat m = {
        .free_frames = c.free_frames,
        .total_frames = c.usable_frames,
        .heap_bytes = c.heap_bytes,
        .spaces = c.spaces,
        .procs = c.procs,
        .threads = c.threads,
        .resident = __atomic_load_n(&p->vs->resident, __ATOMIC_RELAXED),
        .cpus = smp_cpu_count(),
        .syscalls = syscall_count(),
    };
    return copy_to_user(uout, &m, sizeof(m)) ? -EFAULT : 0;
}

long sys_dispatch(struct interrupt_frame *f)
{
    uint64_t a0 = f->rdi, a1 = f->rsi, a2 = f->rdx, a3 = f->r10, a4 = f->r8, a5 = f->r9;
    struct proc *p = proc_current();
    switch (f->rax) {
    case SYS_WRITE: return sys_write(a0, a1, a2);
    case SYS_GETPID: return p ? p->pid : 0; /* the self-tests' runs are pid 0 */
    }
    if (!p)
        return -ENOSYS;
    switch (f->rax) {
    case SYS_READ: return sys_read(p, a0, a1, a2);
    case SYS_MMAP: return sys_mmap(p, a0, a1, a2, a3, a4, a5);
    case SYS_MPROTECT: return sys_mprotect(p, a0, a1, a2);
    case SYS_MUNMAP: return sys_munmap(p, a0, a1);
    case SYS_SCHED_YIELD: thread_yield(); return 0;
    case SYS_NANOSLEEP: return sys_nanosleep(p, a0);
    case SYS_FORK: return proc_sys_fork(f);
    case SYS_EXECVE: return proc_sys_execve(f, a0, a1);
    case SYS_EXIT: proc_thread_exit((int)a0);
    case SYS_WAIT4: return proc_sys_wait4((long)a0, a1, a2, a3);
    case SYS_KILL: return proc_sys_kill((long)a0, (long)a1);
    case SYS_GETPPID: return proc_ppid(p);
    case SYS_EXIT_GROUP: proc_sys_exit_group((int)a0);
    case SYS_THREAD_CREATE: return proc_sys_thread_create(a0, a1, a2);
    case SYS_MEMSTAT: return sys_memstat(p, a0);
    case SYS_GETTID: return thread_current()->tid;
    case SYS_CPU: return cpu_index();
    default: return -ENOSYS;
    }
}
