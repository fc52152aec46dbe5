/* What happens when the CPU raises an exception nobody handles: a report
 * that says everything the CPU told us, then a halt. */
#include "arch/x86_64/exceptions.h"

#include "arch/x86_64/cpu.h"
#include "arch/x86_64/extable.h"
#include "arch/x86_64/pit.h"
#include "arch/x86_64/smp.h"
#include "lib/backtrace.h"
#include "lib/panic.h"
#include "lib/panic_hook.h"
#include "lib/printf.h"
#include "lib/symbols.h"
#include "mm/mapper.h"
#include "mm/vm.h"
#include "proc/proc.h"
#include "uapi/abi.h"
#include "test/ktest_catch.h"

static const char *const names[32] = {
    [0] = "#DE divide error",
    [1] = "#DB debug",
    [2] = "NMI non-maskable interrupt",
    [3] = "#BP breakpoint",
    [4] = "#OF overflow",
    [5] = "#BR bound range exceeded",
    [6] = "#UD invalid opcode",
    [7] = "#NM device not available",
    [8] = "#DF double fault",
    [9] = "coprocessor segment overrun",
    [10] = "#TS invalid TSS",
    [11] = "#NP segment not present",
    [12] = "#SS stack-segment fault",
    [13] = "#GP general protection fault",
    [14] = "#PF page fault",
    [15] = "reserved exception 15",
    [16] = "#MF x87 floating-point error",
    [17] = "#AC alignment check",
    [18] = "#MC machine check",
    [19] = "#XM SIMD floating-point exception",
    [20] = "#VE virtualization exception",
    [21] = "#CP control protection exception",
    [22] = "reserved exception 22",
    [23] = "reserved exception 23",
    [24] = "reserved exception 24",
    [25] = "reserved exception 25",
    [26] = "reserved exception 26",
    [27] = "reserved exception 27",
    [28] = "#HV hypervisor injection",
    [29] = "#VC VMM communication",
    [30] = "#SX security exception",
    [31] = "reserved exception 31",
};

static unsigned long breakpoints;
static int reporting; /* nesting depth of the fatal report */
static bool overflow_reported; /* a #DF has reported a stack overflow */

const char *exception_name(unsigned vector)
{
    return vector < 32 ? names[vector] : "interrupt";
}

unsigned long exception_breakpoint_count(void)
{
    return breakpoints;
}

uint64_t exception_stack_guard_hit(uint64_t rsp, uint64_t cr2)
{
    /* A guard page is an unmapped page of the mapper's stack window with a
     * mapped stack page right above it (mm/mapper.h). A stack that overflows
     * faults in it with RSP no further than a page from it: a push or a call
     * faults just below RSP, a store to a local faults at or above RSP. A
     * wild pointer into some other stack's guard fails the RSP test. */
    uint64_t guard = ALIGN_DOWN(cr2, PAGE_SIZE);
    if (guard < MAPPER_STACK_BASE || guard + PAGE_SIZE >= MAPPER_STACK_END)
        return 0;
    if (rsp + PAGE_SIZE < guard || rsp >= guard + 2 * PAGE_SIZE)
        return 0;
    if (backtrace_readable(guard) || !backtrace_readable(guard + PAGE_SIZE))
        return 0;
    return guard;
}

/* The guard page a kernel-mode #PF or #DF hit by overflowing its stack, or 0.
 * For a #DF, CR2 is the address the CPU failed to push the #PF frame to, and
 * the saved RIP/RSP are those of the overflowing instruction: the SDM calls
 * a #DF's saved CS:RIP undefined, but Intel, AMD and QEMU save the
 * interrupted context (Linux's overflow report relies on the same). */
static uint64_t overflow_guard(const struct interrupt_frame *f, uint64_t cr2)
{
    unsigned v = (unsigned)f->vector;
    if ((v != EXC_PF && v != EXC_DF) || (f->cs & 3))
        return 0;
    return exception_stack_guard_hit(f->rsp, cr2);
}

static void print_overflow(const char *prefix, const struct interrupt_frame *f, uint64_t guard)
{
    kprintf("%skernel stack overflow: RSP=0x%016llx ran into the guard page at 0x%016llx "
            "(stack bottom 0x%016llx, RIP=0x%016llx)\n",
            prefix, (unsigned long long)f->rsp, (unsigned long long)guard,
            (unsigned long long)(guard + PAGE_SIZE), (unsigned long long)f->rip);
}

/* The control-register line of a panic report (lib/panic.h). */
void panic_print_cpu_state(void)
{
    kprintf("  CR0=0x%llx CR2=0x%llx CR3=0x%llx CR4=0x%llx\n", (unsigned long long)read_cr0(),
            (unsigned long long)read_cr2(), (unsigned long long)read_cr3(),
            (unsigned long long)read_cr4());
}

/* Vectors whose error code is a segment selector (Intel SDM vol. 3, 6.13). */
static bool has_selector_error(unsigned v)
{
    return v == EXC_TS || v == EXC_NP || v == EXC_SS || v == EXC_GP;
}

static void print_error_code(unsigned v, uint64_t err)
{
    kprintf("  error code: %#llx", (unsigned long long)err);
    if (v == EXC_PF) {
        kprintf(" (%s, %s, %s%s%s%s%s)", (err & PF_ERR_PRESENT) ? "protection violation" : "not present",
                (err & PF_ERR_WRITE) ? "write" : "read", (err & PF_ERR_USER) ? "user" : "kernel",
                (err & PF_ERR_RSVD) ? ", reserved bit set" : "",
                (err & PF_ERR_FETCH) ? ", instruction fetch" : "",
                (err & PF_ERR_PK) ? ", protection key" : "", (err & PF_ERR_SS) ? ", shadow stack" : "");
    } else if (has_selector_error(v) && err) {
        static const char *const tables[4] = {"GDT", "IDT", "LDT", "IDT"};
        kprintf(" (%s index %llu%s)", tables[(err >> 1) & 3], (unsigned long long)(err >> 3) & 0x1fff,
                (err & 1) ? ", external" : "");
    }
    kprintf("\n");
}

static void print_symbolized(const char *label, uint64_t addr)
{
    uint64_t off;
    const char *name = symbols_lookup(addr, &off);
    if (name)
        kprintf("  %s=0x%016llx <%s+%#llx>\n", label, (unsigned long long)addr, name,
                (unsigned long long)off);
    else
        kprintf("  %s=0x%016llx\n", label, (unsigned long long)addr);
}

/* ---- a fatal error on one CPU stops them all ----------------------------------
 * The CPU that wins panic_begin (a panic or a fatal exception) records itself
 * in dying_cpu and sends every other online CPU an NMI: an NMI reaches a CPU
 * whatever it is doing, interrupts off or spinning on a lock. Their NMI
 * handler sees panic_in_progress() and halts for good (NMIs stay blocked: it
 * never returns), so nothing changes memory under the report. The report
 * then names the CPU and how many others stopped. */
#define NO_CPU 0xffffffffu
static uint32_t dying_cpu = NO_CPU;
static uint32_t cpus_stopped; /* other CPUs halted by the NMI */

void panic_stop_other_cpus(void)
{
    __atomic_store_n(&dying_cpu, cpu_index(), __ATOMIC_SEQ_CST);
    unsigned others = smp_cpu_count() - 1;
    if (others == 0)
        return;
    smp_send_nmi_all_but_self();
    uint64_t end = rdtsc() + 100000 * tsc_per_us(); /* 100 ms: TCG may be slow to deliver */
    while (__atomic_load_n(&cpus_stopped, __ATOMIC_ACQUIRE) < others && rdtsc() < end)
        cpu_pause();
    kprintf("[smp] CPU %u failed: %u of %u other CPUs stopped\n", cpu_index(),
            __atomic_load_n(&cpus_stopped, __ATOMIC_ACQUIRE), others);
}

/* Other CPUs halted because of a failure on another one (the monitor's test). */
unsigned panic_cpus_stopped(void)
{
    return __atomic_load_n(&cpus_stopped, __ATOMIC_ACQUIRE);
}

static NORETURN void stop_for_panic(void)
{
    __atomic_add_fetch(&cpus_stopped, 1, __ATOMIC_RELEASE);
    cpu_halt_forever();
}

static void report(const struct interrupt_frame *f, uint64_t cr2, uint64_t guard)
{
    unsigned v = (unsigned)f->vector;
    kprintf("\n!!! CPU EXCEPTION %u: %s, in %s mode, on CPU %u\n", v, exception_name(v),
            (f->cs & 3) ? "user" : "kernel", cpu_index());
    if (guard && v != EXC_DF) /* a #DF said it first thing */
        print_overflow("  ", f, guard);
    print_error_code(v, f->error_code);
    if (v == EXC_PF || guard)
        kprintf("  CR2=0x%016llx (faulting address)\n", (unsigned long long)cr2);
    else
        kprintf("  CR2=0x%016llx\n", (unsigned long long)cr2);
    kprintf("  CR0=0x%llx CR3=0x%llx CR4=0x%llx\n", (unsigned long long)read_cr0(),
            (unsigned long long)read_cr3(), (unsigned long long)read_cr4());
    print_symbolized("RIP", f->rip);
    kprintf("  RSP=0x%016llx RBP=0x%016llx RFLAGS=0x%llx\n", (unsigned long long)f->rsp,
            (unsigned long long)f->rbp, (unsigned long long)f->rflags);
    kprintf("  CS=0x%llx SS=0x%llx frame at %p\n", (unsigned long long)f->cs,
            (unsigned long long)f->ss, (const void *)f);
    kprintf("  RAX=0x%016llx RBX=0x%016llx RCX=0x%016llx\n", (unsigned long long)f->rax,
            (unsigned long long)f->rbx, (unsigned long long)f->rcx);
    kprintf("  RDX=0x%016llx RSI=0x%016llx RDI=0x%016llx\n", (unsigned long long)f->rdx,
            (unsigned long long)f->rsi, (unsigned long long)f->rdi);
    kprintf("  R8 =0x%016llx R9 =0x%016llx R10=0x%016llx\n", (unsigned long long)f->r8,
            (unsigned long long)f->r9, (unsigned long long)f->r10);
    kprintf("  R11=0x%016llx R12=0x%016llx R13=0x%016llx\n", (unsigned long long)f->r11,
            (unsigned long long)f->r12, (unsigned long long)f->r13);
    kprintf("  R14=0x%016llx R15=0x%016llx\n", (unsigned long long)f->r14,
            (unsigned long long)f->r15);
    backtrace_print_fault(f->rip, f->rsp, f->rbp);
}

extern const struct extable_entry __extable_start[], __extable_end[];

/* The exception-table entry of the instruction at rip, or NULL. */
static const struct extable_entry *extable_find(uint64_t rip)
{
    for (const struct extable_entry *e = __extable_start; e < __extable_end; e++)
        if (e->insn == rip)
            return e;
    return NULL;
}

bool extable_fixup(struct interrupt_frame *f)
{
    const struct extable_entry *e = extable_find(f->rip);
    if (e)
        f->rip = e->fixup;
    return e != NULL;
}

/* Prints the page fault that ends a ring-3 excursion or program: the
 * address and access, the region there, the instruction, why. One line. */
static void report_user_fault(struct interrupt_frame *f, uint64_t cr2, struct vm_space *vs,
                              enum vm_fault_result why)
{
    uint64_t err = f->error_code;
    struct vm_region r;
    char region[64] = "no region";
    if (vs && vm_region_at(vs, cr2, &r))
        ksnprintf(region, sizeof(region), "region [0x%llx, 0x%llx) %c%c%c", (unsigned long long)r.start,
                  (unsigned long long)r.end, (r.prot & VM_READ) ? 'r' : '-',
                  (r.prot & VM_WRITE) ? 'w' : '-', (r.prot & VM_EXEC) ? 'x' : '-');
    kprintf("[vm] space %u (%s): page fault at 0x%llx (%s, %s), %s, rip 0x%llx: %s; killed\n",
            vs ? vs->id : 0, vs ? vs->name : "none", (unsigned long long)cr2,
            (err & PF_ERR_FETCH) ? "execute" : (err & PF_ERR_WRITE) ? "write" : "read",
            (err & PF_ERR_PRESENT) ? "protection" : "not present", region, (unsigned long long)f->rip,
            vs ? vm_fault_name(why) : "no address space");
}

/* A #PF from ring 3, or at a user-half address from a kernel instruction
 * allowed to fault (a user copy): for a user-half address the loaded space's
 * vm_fault may resolve it (first touch, copy-on-write, stack growth). True
 * when it did; then the instruction is retried. A ring-3 fault that stays
 * unresolved (a kernel-half address included) is reported. */
static bool user_page_fault(struct interrupt_frame *f, uint64_t cr2, enum vm_fault_result *whyp)
{
    bool user = (f->cs & 3) != 0, user_half = cr2 < PAGING_USER_TOP;
    if (!user && (!user_half || !extable_find(f->rip)))
        return false;
    struct vm_space *vs = vm_current();
    enum vm_fault_result why = VM_FAULT_NOREGION; /* a kernel-half address: no region either */
    /* With interrupts as the faulting code had them, the fault and its
     * report both: they take the space's lock, whose holder may be waiting
     * for this CPU's answer to a shootdown (another thread of the space,
     * faulting or changing it on another CPU). */
    bool irq = (f->rflags & RFLAGS_IF) != 0;
    if (irq)
        cpu_sti();
    if (vs && user_half && !(f->error_code & PF_ERR_RSVD)) {
        uint64_t err = f->error_code;
        uint32_t access = (err & PF_ERR_FETCH) ? VM_EXEC : (err & PF_ERR_WRITE) ? VM_WRITE : VM_READ;
        why = vm_fault(vs, cr2, access);
    }
    if (why != VM_FAULT_RESOLVED && user)
        report_user_fault(f, cr2, vs, why);
    if (irq)
        cpu_cli();
    *whyp = why;
    return why == VM_FAULT_RESOLVED;
}

/* A ring-3 exception of a process that nothing resolved: the process
 * ends with the signal Linux would send (a page fault was reported by
 * user_page_fault already; out of memory is SIGKILL). Traps (#BP, #DB)
 * continue; NMI, #DF and #MC are not the program's doing. */
static void kill_process(struct interrupt_frame *f, unsigned v, enum vm_fault_result why)
{
    char what[64];
    switch (v) {
    case EXC_BP:
    case EXC_DB:
    case EXC_NMI:
    case EXC_DF:
    case EXC_MC:
        return; /* a trap the program continues from, or the machine's business */
    case EXC_PF:
        proc_fault_kill(f, why == VM_FAULT_OOM ? SIGKILL : SIGSEGV, NULL);
    case EXC_UD:
        proc_fault_kill(f, SIGILL, "invalid opcode (#UD)");
    case EXC_DE:
        proc_fault_kill(f, SIGFPE, "divide error (#DE)");
    case 16: /* #MF */
    case 19: /* #XM */
        ksnprintf(what, sizeof(what), "floating-point exception (%s)", exception_name(v));
        proc_fault_kill(f, SIGFPE, what);
    default:
        ksnprintf(what, sizeof(what), "%s (vector %u, error code %#llx)", exception_name(v), v,
                  (unsigned long long)f->error_code);
        proc_fault_kill(f, SIGSEGV, what);
    }
}

void exception_handle(struct interrupt_frame *f)
{
    uint64_t cr2 = read_cr2(); /* first: a later fault would overwrite it */
    unsigned v = (unsigned)f->vector;

    /* #PF has no IST (gdt.h): an overflowing kernel stack cannot take its
     * frame, and the #PF becomes this #DF, running on IST1. */
    uint64_t guard = overflow_guard(f, cr2);

    /* Machine checks, NMIs and other double faults are never "expected":
     * the state after them is not something a test can resume from. A #DF
     * from a stack overflow is: the catch point abandons the overflowed
     * frames, and the CPU keeps no state of its own for a #DF. */
    enum vm_fault_result why = VM_FAULT_RESOLVED;
    if (v == EXC_PF && user_page_fault(f, cr2, &why))
        return; /* resolved by the address space: retry */
    if ((f->cs & 3) && proc_current())
        kill_process(f, v, why); /* a process's fault ends that process only */
    if (v == EXC_PF && !(f->cs & 3) && extable_fixup(f))
        return; /* an instruction allowed to fault (extable.h) resumes at its fixup */
    if (v == EXC_DF && guard) /* first: whatever happens next, this line is out */
        print_overflow("[cpu] #DF: ", f, guard);
    if (v != EXC_MC && v != EXC_NMI && (v != EXC_DF || guard) && !panic_in_progress() &&
        ktest_catch_fault(f, cr2))
        return;

    if (v == EXC_BP) { /* a trap: RIP is already past the int3 */
        breakpoints++;
        uint64_t off;
        const char *name = symbols_lookup(f->rip - 1, &off);
        kprintf("[cpu] breakpoint at 0x%016llx %s+%#llx; continuing\n", (unsigned long long)(f->rip - 1),
                name ? name : "?", (unsigned long long)(name ? off : 0));
        return;
    }
    if (v == EXC_NMI) {
        if (panic_in_progress() && __atomic_load_n(&dying_cpu, __ATOMIC_SEQ_CST) != cpu_index())
            stop_for_panic(); /* another CPU failed: stay out of its way */
        kprintf("[cpu] NMI at 0x%016llx; ignored\n", (unsigned long long)f->rip);
        return;
    }

    bool nested = ++reporting > 1, first = panic_begin();
    if (nested || !first) {
        /* Faulted while reporting (or panicking): keep it to one line, unless
         * the report (or panic) ran out of stack: the frames it needed are
         * gone, but this #DF has a stack of its own and can say everything,
         * once. */
        bool again = v == EXC_DF && guard && !overflow_reported;
        kprintf("\n!!! exception %u (%s) at 0x%016llx, CR2=0x%llx, while %s%s; %s.\n", v,
                exception_name(v), (unsigned long long)f->rip, (unsigned long long)cr2,
                nested ? "reporting a fault" : "panicking", guard ? ", kernel stack overflow" : "",
                again ? "reporting it from the #DF stack" : "halting");
        if (!again)
            cpu_halt_forever();
    }
    if (v == EXC_DF && guard)
        overflow_reported = true;
    panic_stop_other_cpus();
    kprintf_panic_lock(); /* the report prints even if a stopped CPU held the print lock */
    report(f, cr2, guard);
    panic_hook();
    kprintf("halting.\n");
    cpu_halt_forever();
}
