/* SYSCALL's MSRs and its C entry (syscall.h); the calls themselves are
 * proc/sys.c's. */
#include "arch/x86_64/syscall.h"

#include "arch/x86_64/cpu.h"
#include "arch/x86_64/cpu_local.h"
#include "arch/x86_64/gdt.h"
#include "arch/x86_64/usercopy.h"
#include "lib/errno.h"
#include "lib/printf.h"
#include "proc/sched.h"
#include "proc/sys.h"

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

void syscall_dispatch(struct interrupt_frame *f)
{
    cpu_sti(); /* FMASK cleared IF; a call may wait for other CPUs */
    __atomic_fetch_add(&calls, 1, __ATOMIC_RELAXED);
    f->rax = (uint64_t)sys_dispatch(f);
    cpu_cli();
    sched_return_to_user(f); /* a switch or a kill waits for here */
}

uint64_t syscall_count(void)
{
    return __atomic_load_n(&calls, __ATOMIC_RELAXED);
}
