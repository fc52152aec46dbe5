/* panic_at: the kernel's last words, then a halt with interrupts off. The
 * panicking CPU keeps the print lock (lib/printf.c) until it halts. */
#include "lib/panic.h"

#include "arch/x86_64/cpu.h"
#include "lib/backtrace.h"
#include "lib/panic_hook.h"
#include "lib/printf.h"

static bool dying;

__attribute__((weak)) void panic_hook(void) {}

__attribute__((weak)) void panic_print_cpu_state(void) {}

__attribute__((weak)) void panic_stop_other_cpus(void) {}

__attribute__((weak)) void panic_catch(const char *file, int line, const char *fmt, va_list ap)
{
    (void)file, (void)line, (void)fmt, (void)ap;
}

bool panic_begin(void)
{
    return !__atomic_exchange_n(&dying, true, __ATOMIC_SEQ_CST);
}

bool panic_in_progress(void)
{
    return __atomic_load_n(&dying, __ATOMIC_SEQ_CST);
}

void panic_at(const char *file, int line, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    panic_catch(file, line, fmt, ap); /* returns only when no test has armed a catch */
    va_end(ap);
    cpu_cli();
    if (!panic_begin()) {
        /* The first panic's CPU holds the print lock for good: this prints
         * when that is this CPU (a panic inside the report); another CPU
         * waits there for ever, which is as good as the halt. */
        kprintf("PANIC (nested) at %s:%d; halting.\n", file, line);
        cpu_halt_forever();
    }
    panic_stop_other_cpus(); /* nothing else runs while we report */
    /* The report is one piece: no other CPU's output in between, and it gets
     * out even when another CPU stopped while printing (kprintf_panic_lock
     * forces the lock after a bounded wait). */
    kprintf_panic_lock();
    kprintf("\nPANIC at %s:%d: ", file, line);
    va_start(ap, fmt);
    kvprintf(fmt, ap);
    va_end(ap);
    kprintf("\n");

    uint64_t rsp;
    __asm__ volatile("movq %%rsp, %0" : "=r"(rsp));
    kprintf("  caller RIP=0x%016llx RSP=0x%016llx RBP=0x%016llx\n",
            (unsigned long long)(uintptr_t)__builtin_return_address(0), (unsigned long long)rsp,
            (unsigned long long)(uintptr_t)__builtin_frame_address(0));
    panic_print_cpu_state();
    backtrace_print_frames((uint64_t)(uintptr_t)__builtin_frame_address(0));
    panic_hook();
    kprintf("halting.\n");
    cpu_halt_forever();
}
