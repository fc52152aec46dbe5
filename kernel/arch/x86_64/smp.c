/* Every CPU at work: per-CPU blocks for the APs, the AP's first C, the
 * Limine door, and the cross-CPU API (smp.h; docs/smp.md).
 *
 * Who writes what: the BSP alone prepares blocks and starts APs (during
 * init, one AP at a time); an AP writes only its own block (online, its
 * counters, work_done); a caller of smp_call_on / smp_run_on_all writes a
 * target's work_fn / work_arg / work_posted while holding call_lock. */
#include "arch/x86_64/smp.h"
#include "arch/x86_64/syscall.h"

#include "arch/x86_64/cpu.h"
#include "arch/x86_64/gdt.h"
#include "arch/x86_64/idt.h"
#include "arch/x86_64/lapic.h"
#include "arch/x86_64/pit.h"
#include "boot/boot_info.h"
#include "boot/limine.h"
#include "lib/panic.h"
#include "lib/printf.h"
#include "lib/spinlock.h"
#include "mm/frame.h"
#include "mm/mapper.h"
#include "mm/mm.h"
#include "mm/paging.h"
#include "proc/sched.h"

#define AP_KERNEL_STACK_PAGES 16
#define AP_RING0_STACK_PAGES  4
#define AP_ONLINE_TIMEOUT_US  2000000 /* generous: TCG may run an AP late */

/* entry.S reads these two fields of the block an AP starts with. */
_Static_assert(offsetof(struct cpu, stack_top) == 40, "entry.S: CPU_STACK_TOP");
_Static_assert(offsetof(struct cpu, cr3) == 48, "entry.S: CPU_CR3");
_Static_assert(sizeof(struct cpu) <= PAGE_SIZE, "a per-CPU block is one frame");

/* entry.S: where a Limine AP jumps (RDI = its limine_mp_info) to start, or
 * to be parked for good. */
extern void limine_ap_entry(struct limine_mp_info *info);
extern void limine_ap_park(struct limine_mp_info *info);
/* The page tables a parked Limine AP loads (entry.S reads it). */
uint64_t smp_park_cr3;
static unsigned parked; /* Limine APs sent to limine_ap_park */

/* The BSP's control registers, copied into every AP (written by
 * smp_init_bsp before any AP starts, read-only afterwards). */
static struct {
    uint64_t cr0, cr4, efer, pat;
} bsp_regs;

static unsigned next_index = 1; /* BSP only: the index the next prepared AP gets */
static unsigned online = 1;     /* CPUs online (atomic) */
static unsigned reported = 1;   /* CPUs the bootloader / MADT listed */

/* Serializes smp_call_on and smp_run_on_all: one caller owns every
 * mailbox at a time (protects each block's work_fn, work_arg, work_posted). */
static struct spinlock call_lock = SPINLOCK_INIT("smp-call", LOCK_RANK_NONE);

/* ---- interrupt handlers: interrupts off, no allocation, no locks ---- */

static void count_ipi(struct interrupt_frame *f)
{
    (void)f;
    __atomic_fetch_add(&this_cpu_block()->ipi_received, 1, __ATOMIC_RELAXED);
    lapic_eoi();
}

/* Work in the mailbox: the idle thread runs it, so the running thread
 * gives way at its next return to ring 3. */
static void call_ipi(struct interrupt_frame *f)
{
    this_cpu_block()->need_resched = 1;
    count_ipi(f);
}

static void resched_ipi(struct interrupt_frame *f)
{
    this_cpu_block()->need_resched = 1;
    count_ipi(f);
}

static void count_timer(struct interrupt_frame *f)
{
    (void)f;
    __atomic_fetch_add(&this_cpu_block()->timer_ticks, 1, __ATOMIC_RELAXED);
    lapic_eoi();
    sched_tick();
}

static void spurious(struct interrupt_frame *f)
{
    (void)f; /* a spurious interrupt takes no EOI */
}

/* ---- bring-up ---- */

void smp_init_bsp(void)
{
    struct cpu *bsp = percpu_bsp();
    lapic_init();
    bsp->local.apic_id = lapic_id();
    bsp->cr3 = read_cr3();
    bsp_regs.cr0 = read_cr0();
    bsp_regs.cr4 = read_cr4();
    bsp_regs.efer = rdmsr(MSR_EFER);
    bsp_regs.pat = rdmsr(MSR_PAT);
    idt_set_handler(SMP_VEC_CALL, call_ipi);
    idt_set_handler(SMP_VEC_RESCHED, resched_ipi);
    idt_set_handler(SMP_VEC_TEST, count_ipi);
    idt_set_handler(SMP_VEC_TIMER, count_timer);
    idt_set_handler(SMP_VEC_SPURIOUS, spurious);
    __atomic_store_n(&bsp->online, 1, __ATOMIC_RELEASE);
    klog("smp", "BSP: APIC ID %u, %s mode", bsp->local.apic_id,
         lapic_x2apic() ? "x2APIC" : "xAPIC");
}

void smp_calibrate_timers(void)
{
    if (!tsc_per_us())
        pit_calibrate_tsc();
    lapic_timer_calibrate();
}

/* A guarded stack of `pages` pages; its bounds in *lo / the return value. */
static vaddr_t guarded_stack(size_t pages, vaddr_t *lo)
{
    vaddr_t top = mapper_alloc_stack(pages);
    if (lo)
        *lo = top ? top - pages * PAGE_SIZE : 0;
    return top;
}

struct cpu *smp_cpu_prepare(uint32_t apic_id)
{
    if (next_index >= CPU_MAX)
        return NULL;
    paddr_t frame = frame_alloc_zeroed();
    if (!frame)
        return NULL;
    struct cpu *c = (struct cpu *)(uintptr_t)(hhdm_offset + frame);
    /* Stacks taken before a failure stay allocated (the mapper has no free
     * for stacks): a few pages, once, on a machine already out of memory. */
    for (unsigned i = 0; i < IST_COUNT; i++) {
        c->gdt.ist_hi[i] = guarded_stack(IST_STACK_SIZE / PAGE_SIZE, &c->gdt.ist_lo[i]);
        if (!c->gdt.ist_hi[i])
            goto fail;
    }
    c->gdt.tss.rsp[0] = guarded_stack(AP_RING0_STACK_PAGES, NULL);
    c->stack_top = guarded_stack(AP_KERNEL_STACK_PAGES, NULL);
    if (!c->gdt.tss.rsp[0] || !c->stack_top)
        goto fail;
    c->local.self = &c->local;
    c->local.syscall_rsp = c->gdt.tss.rsp[0]; /* SYSCALL enters where interrupts do */
    c->local.index = next_index++;
    c->local.apic_id = apic_id;
    c->cr3 = kernel_as.pml4;
    percpu_register(c);
    return c;
fail:
    frame_free(frame);
    return NULL;
}

NORETURN void smp_ap_enter(struct cpu *c)
{
    /* The BSP's CPU state first: paging features, protections, PAT (the
     * HHDM and the framebuffer's cache modes index PAT entries). */
    write_cr0(bsp_regs.cr0);
    write_cr4(bsp_regs.cr4);
    wrmsr(MSR_EFER, bsp_regs.efer);
    wrmsr(MSR_PAT, bsp_regs.pat);
    gdt_load(&c->gdt);       /* clears the GS base: percpu_load after it */
    percpu_load(&c->local);  /* cpu_index() and locks work from here */
    idt_load();
    syscall_init_cpu();
    lapic_init();
    __atomic_store_n(&c->online, 1, __ATOMIC_RELEASE);
    __atomic_fetch_add(&online, 1, __ATOMIC_RELEASE);

    /* Idle: run posted work with interrupts on, else sleep until an IPI.
     * `sti; hlt` cannot lose a wake-up: STI takes effect after HLT starts.
     * Once the scheduler runs, this context is the CPU's idle thread. */
    for (;;) {
        if (sched_ready())
            sched_idle_loop();
        cpu_cli();
        if (smp_run_posted_work())
            continue;
        __asm__ volatile("sti; hlt" ::: "memory");
    }
}

bool smp_work_pending(void)
{
    struct cpu *c = this_cpu_block();
    return __atomic_load_n(&c->work_posted, __ATOMIC_ACQUIRE) != c->work_done;
}

bool smp_run_posted_work(void)
{
    struct cpu *c = this_cpu_block();
    uint64_t posted = __atomic_load_n(&c->work_posted, __ATOMIC_ACQUIRE);
    if (posted == c->work_done)
        return false;
    cpu_sti();
    c->work_fn(c->work_arg);
    __atomic_store_n(&c->work_done, posted, __ATOMIC_RELEASE);
    cpu_cli();
    return true;
}

bool smp_cpu_wait_online(struct cpu *c, uint64_t timeout_us)
{
    uint64_t per_us = tsc_per_us();
    uint64_t start = rdtsc(), spins = 0;
    while (!__atomic_load_n(&c->online, __ATOMIC_ACQUIRE)) {
        /* Before the TSC is calibrated: about a microsecond per port write. */
        if (per_us ? rdtsc() - start > timeout_us * per_us : spins++ > timeout_us)
            return false;
        if (!per_us)
            io_wait();
        cpu_relax();
    }
    return true;
}

/* The CPUs the list kept no slot for (more than CPU_MAX): parked too. */
static void park_beyond_the_cap(const struct boot_cpus *bc)
{
    for (uint64_t i = 0; i < bc->all_count; i++) {
        struct limine_mp_info *m = bc->all_handles[i];
        bool kept = m->lapic_id == bc->bsp_lapic_id;
        for (uint32_t j = 0; j < bc->count && !kept; j++)
            kept = bc->cpu[j].start_handle == m;
        if (!kept) {
            limine_mp_goto(m, limine_ap_park, 0);
            parked++;
        }
    }
}

void smp_start_limine(bool start)
{
    const struct boot_cpus *bc = &boot_ctx.cpus;
    if (bc->note[0])
        kwarn("smp", "%s", bc->note);
    if (bc->count == 0)
        return;
    smp_set_reported(bc->reported);
    smp_park_cr3 = kernel_as.pml4;
    if (bc->bsp_lapic_id != percpu_bsp()->local.apic_id)
        kwarn("smp", "limine names APIC ID %u as the BSP, this CPU is %u", bc->bsp_lapic_id,
              percpu_bsp()->local.apic_id);
    for (uint32_t i = 0; i < bc->count; i++) {
        const struct boot_cpu *b = &bc->cpu[i];
        if (b->lapic_id == bc->bsp_lapic_id)
            continue;
        struct cpu *c = start ? smp_cpu_prepare(b->lapic_id) : NULL;
        if (!c) {
            if (start)
                kwarn("smp", "no memory for CPU with APIC ID %u: it and the rest parked",
                      b->lapic_id);
            start = false;
            limine_mp_goto(b->start_handle, limine_ap_park, 0);
            parked++;
            continue;
        }
        limine_mp_goto(b->start_handle, limine_ap_entry, (uint64_t)(uintptr_t)c);
        if (!smp_cpu_wait_online(c, AP_ONLINE_TIMEOUT_US))
            kwarn("smp", "CPU %u (APIC ID %u) did not come online: left out", c->local.index,
                  b->lapic_id);
    }
    park_beyond_the_cap(bc);
}

unsigned smp_cpus_parked(void)
{
    return parked;
}

void smp_set_reported(unsigned n)
{
    reported = n ? n : 1;
}

unsigned smp_cpus_reported(void)
{
    return reported;
}

void smp_log_online(void)
{
    unsigned m = reported > CPU_MAX ? CPU_MAX : reported;
    if (reported > CPU_MAX)
        klog("smp", "%u of %u CPUs online (%u reported, capped at CPU_MAX)", smp_cpu_count(), m,
             reported);
    else
        klog("smp", "%u of %u CPUs online", smp_cpu_count(), m);
}

/* ---- the API ---- */

unsigned smp_cpu_count(void)
{
    return __atomic_load_n(&online, __ATOMIC_ACQUIRE);
}

bool smp_cpu_online(unsigned i)
{
    struct cpu *c = percpu_get(i);
    return c && __atomic_load_n(&c->online, __ATOMIC_ACQUIRE);
}

void smp_send_ipi(unsigned cpu, uint8_t vector)
{
    struct cpu *c = percpu_get(cpu);
    kassert(c && c->online, "IPI to CPU %u, which is not online", cpu);
    __atomic_fetch_add(&this_cpu_block()->ipi_sent, 1, __ATOMIC_RELAXED);
    lapic_send_ipi(c->local.apic_id, LAPIC_ICR_FIXED | LAPIC_ICR_ASSERT | vector);
}

void smp_send_ipi_all_but_self(uint8_t vector)
{
    unsigned me = cpu_index();
    for (unsigned i = 0; i < CPU_MAX; i++)
        if (i != me && smp_cpu_online(i))
            smp_send_ipi(i, vector);
}

void smp_send_nmi_all_but_self(void)
{
    unsigned me = cpu_index();
    for (unsigned i = 0; i < CPU_MAX; i++) {
        struct cpu *c = percpu_get(i);
        if (i == me || !c || !__atomic_load_n(&c->online, __ATOMIC_ACQUIRE))
            continue;
        __atomic_fetch_add(&this_cpu_block()->ipi_sent, 1, __ATOMIC_RELAXED);
        lapic_send_ipi(c->local.apic_id, LAPIC_ICR_NMI | LAPIC_ICR_ASSERT);
    }
}

uint64_t smp_ipi_sent(unsigned cpu)
{
    struct cpu *c = percpu_get(cpu);
    return c ? __atomic_load_n(&c->ipi_sent, __ATOMIC_RELAXED) : 0;
}

uint64_t smp_ipi_received(unsigned cpu)
{
    struct cpu *c = percpu_get(cpu);
    return c ? __atomic_load_n(&c->ipi_received, __ATOMIC_RELAXED) : 0;
}

uint64_t smp_timer_ticks(unsigned cpu)
{
    struct cpu *c = percpu_get(cpu);
    return c ? __atomic_load_n(&c->timer_ticks, __ATOMIC_RELAXED) : 0;
}

/* Posts fn(arg) in CPU i's mailbox (call_lock held); returns its sequence. */
static uint64_t post(struct cpu *c, smp_fn fn, void *arg)
{
    c->work_fn = fn;
    c->work_arg = arg;
    uint64_t seq = c->work_posted + 1;
    __atomic_store_n(&c->work_posted, seq, __ATOMIC_RELEASE);
    return seq;
}

static void wait_done(struct cpu *c, uint64_t seq)
{
    while (__atomic_load_n(&c->work_done, __ATOMIC_ACQUIRE) != seq)
        cpu_relax();
}

/* Interrupts on while work runs and while waiting: another CPU's work may
 * send this CPU an IPI (a TLB shootdown) and wait for it. */
static uint64_t call_begin(void)
{
    kassert(!cpu_in_irq(), "smp call from an interrupt handler");
    kassert(cpu_index() == 0, "smp call from CPU %u: only the BSP sends work (the BSP has no "
            "idle loop to run work sent to it)", cpu_index());
    spin_lock(&call_lock);
    uint64_t flags = read_rflags();
    cpu_sti();
    return flags;
}

static void call_end(uint64_t flags)
{
    if (!(flags & RFLAGS_IF))
        cpu_cli();
    spin_unlock(&call_lock);
}

void smp_call_on(unsigned cpu, smp_fn fn, void *arg)
{
    if (cpu == cpu_index()) {
        fn(arg);
        return;
    }
    struct cpu *c = percpu_get(cpu);
    kassert(c && c->online, "smp_call_on: CPU %u is not online", cpu);
    uint64_t flags = call_begin();
    uint64_t seq = post(c, fn, arg);
    smp_send_ipi(cpu, SMP_VEC_CALL);
    wait_done(c, seq);
    call_end(flags);
}

void smp_run_on_all(smp_fn fn, void *arg)
{
    uint64_t seqs[CPU_MAX] = {0};
    unsigned me = cpu_index();
    uint64_t flags = call_begin();
    for (unsigned i = 0; i < CPU_MAX; i++)
        if (i != me && smp_cpu_online(i))
            seqs[i] = post(percpu_get(i), fn, arg);
    for (unsigned i = 0; i < CPU_MAX; i++)
        if (seqs[i])
            smp_send_ipi(i, SMP_VEC_CALL);
    fn(arg);
    for (unsigned i = 0; i < CPU_MAX; i++)
        if (seqs[i])
            wait_done(percpu_get(i), seqs[i]);
    call_end(flags);
}
