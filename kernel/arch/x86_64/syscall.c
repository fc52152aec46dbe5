/* The system-call dispatcher (syscall.h). Each call checks every argument:
 * a bad pointer is -EFAULT (arch/x86_64/usercopy.c checks the range before
 * any access), an unknown number -ENOSYS; nothing a program passes can make
 * the kernel fault. */
#include "arch/x86_64/syscall.h"

#include "arch/x86_64/cpu.h"
#include "arch/x86_64/cpu_local.h"
#include "arch/x86_64/gdt.h"
#include "arch/x86_64/usercopy.h"
#include "lib/errno.h"
#include "lib/printf.h"

extern char syscall_entry[];
_Static_assert(__builtin_offsetof(struct cpu_local, syscall_rsp) == CPU_LOCAL_SYSCALL_RSP &&
                   CPU_LOCAL_SYSCALL_RSP == 24,
               "syscall_entry.S: CPU_LOCAL_SYSCALL_RSP");
_Static_assert(__builtin_offsetof(struct cpu_local, user_rsp) == CPU_LOCAL_USER_RSP &&
                   CPU_LOCAL_USER_RSP == 32,
               "syscall_entry.S: CPU_LOCAL_USER_RSP");
static uint64_t calls; /* atomic */

void syscall_init_cpu(void)
{
    wrmsr(MSR_EFER, rdmsr(MSR_EFER) | EFER_SCE);
    /* SYSCALL: CS = STAR[47:32], SS = +8; SYSRET (64-bit): CS = STAR[63:48] + 16,
     * SS = + 8, both with RPL 3: the GDT's user data then user code */
    wrmsr(MSR_STAR, ((uint64_t)(GDT_USER_DATA - 8) << 48) | ((uint64_t)GDT_KERNEL_CODE << 32));
    wrmsr(MSR_LSTAR, (uint64_t)(uintptr_t)syscall_entry);
    wrmsr(MSR_FMASK, RFLAGS_IF | RFLAGS_TF | RFLAGS_DF | RFLAGS_AC | RFLAGS_NT);
}

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

void syscall_dispatch(struct interrupt_frame *f)
{
    cpu_sti(); /* FMASK cleared IF; a call may wait for other CPUs */
    __atomic_fetch_add(&calls, 1, __ATOMIC_RELAXED);
    long r;
    switch (f->rax) {
    case SYS_WRITE: r = sys_write(f->rdi, f->rsi, f->rdx); break;
    case SYS_GETPID: r = 0; break; /* no processes yet: the self-tests' runs are pid 0 */
    default: r = -ENOSYS; break;
    }
    f->rax = (uint64_t)r;
}

uint64_t syscall_count(void)
{
    return __atomic_load_n(&calls, __ATOMIC_RELAXED);
}
