/* SMP bring-up: every online CPU, asked through smp_run_on_all, reports who
 * it is and what it runs on; IPIs are counted on both ends; work runs
 * outside interrupt context on the CPU asked; the LAPIC timer fires at the
 * calibrated rate on every CPU. Meaningful on one CPU too (self-IPIs, the
 * BSP's own tables), and on N CPUs it checks that no two share anything. */
#include "arch/x86_64/cpu.h"
#include "arch/x86_64/gdt.h"
#include "arch/x86_64/lapic.h"
#include "arch/x86_64/pit.h"
#include "arch/x86_64/smp.h"
#include "boot/boot_info.h"
#include "lib/backtrace.h"
#include "lib/string.h"
#include "mm/mm.h"
#include "proc/sched.h"
#include "test/ktest.h"

struct gdtr {
    uint16_t limit;
    uint64_t base;
} PACKED;

/* What one CPU saw of itself. */
struct cpu_report {
    bool ran;
    unsigned index;
    uint32_t apic_id, block_apic_id;
    uint64_t gs_base;
    uint64_t gdt_base, tss_base;
    uint64_t ist_lo[IST_COUNT], ist_hi[IST_COUNT], tss_ist[IST_COUNT];
    uint64_t rsp0, rsp;
    bool in_irq, irq_on;
};
static struct cpu_report reports[CPU_MAX];
static unsigned reporters;

static uint64_t tss_base_of(uint64_t gdt_base, uint16_t tr)
{
    const uint64_t *desc = (const uint64_t *)(uintptr_t)(gdt_base + (tr & ~7u));
    return ((desc[0] >> 16) & 0xffffff) | (((desc[0] >> 56) & 0xff) << 24) |
           ((desc[1] & 0xffffffffULL) << 32);
}

static void report_self(void *arg)
{
    (void)arg;
    uint64_t rsp;
    __asm__ volatile("movq %%rsp, %0" : "=r"(rsp));
    struct cpu_report *r = &reports[cpu_index()];
    struct gdtr g;
    uint16_t tr;
    __asm__ volatile("sgdt %0; str %1" : "=m"(g), "=r"(tr));
    r->index = cpu_index();
    r->apic_id = lapic_id();
    r->block_apic_id = this_cpu()->apic_id;
    r->gs_base = rdmsr(MSR_GS_BASE);
    r->gdt_base = g.base;
    r->tss_base = tss_base_of(g.base, tr);
    const struct tss *tss = (const struct tss *)(uintptr_t)r->tss_base;
    for (unsigned i = 0; i < IST_COUNT; i++) {
        gdt_ist_range(i + 1, &r->ist_lo[i], &r->ist_hi[i]);
        r->tss_ist[i] = tss->ist[i];
    }
    r->rsp0 = gdt_kernel_stack();
    r->rsp = rsp;
    r->in_irq = cpu_in_irq();
    r->irq_on = (read_rflags() & RFLAGS_IF) != 0;
    __atomic_store_n(&r->ran, true, __ATOMIC_RELEASE);
    __atomic_fetch_add(&reporters, 1, __ATOMIC_RELAXED);
}

/* [lo, hi) mapped and the page below it not: a guarded stack. */
static bool guarded(uint64_t lo, uint64_t hi)
{
    for (uint64_t p = lo; p < hi; p += PAGE_SIZE)
        if (!backtrace_readable(p))
            return false;
    return !backtrace_readable(lo - PAGE_SIZE);
}

static bool overlap(uint64_t a_lo, uint64_t a_hi, uint64_t b_lo, uint64_t b_hi)
{
    return a_lo < b_hi && b_lo < a_hi;
}

KTEST(smp_every_online_cpu_runs_and_owns_its_block_gdt_tss_and_stacks)
{
    memset(reports, 0, sizeof(reports));
    reporters = 0;
    smp_run_on_all(report_self, NULL);
    unsigned n = smp_cpu_count();
    KT_ASSERT(n >= 1 && n <= CPU_MAX, "smp_cpu_count %u", n);
    KT_EXPECT(reporters == n, "%u CPUs ran the function, %u online", reporters, n);
    unsigned seen = 0;
    for (unsigned i = 0; i < CPU_MAX; i++) {
        struct cpu_report *r = &reports[i];
        KT_EXPECT(r->ran == smp_cpu_online(i), "CPU %u: ran %d, online %d", i, r->ran,
                  smp_cpu_online(i));
        if (!r->ran)
            continue;
        seen++;
        struct cpu *c = percpu_get(i);
        KT_ASSERT(c, "CPU %u ran but has no block", i);
        KT_EXPECT(r->index == i && c->local.index == i, "CPU %u reports index %u", i, r->index);
        KT_EXPECT(r->apic_id == c->local.apic_id && r->block_apic_id == r->apic_id,
                  "CPU %u: LAPIC says %u, its block %u", i, r->apic_id, c->local.apic_id);
        KT_EXPECT(r->gs_base == (uint64_t)(uintptr_t)c, "CPU %u: GS base %#llx, block %p", i,
                  (unsigned long long)r->gs_base, (void *)c);
        KT_EXPECT(r->gdt_base == (uint64_t)(uintptr_t)c->gdt.gdt, "CPU %u: GDT at %#llx", i,
                  (unsigned long long)r->gdt_base);
        KT_EXPECT(r->tss_base == (uint64_t)(uintptr_t)&c->gdt.tss, "CPU %u: TSS at %#llx", i,
                  (unsigned long long)r->tss_base);
        KT_EXPECT(!r->in_irq && r->irq_on, "CPU %u: work ran in_irq=%d, IF=%d", i, r->in_irq,
                  r->irq_on);
        for (unsigned s = 0; s < IST_COUNT; s++) {
            KT_EXPECT(r->tss_ist[s] == r->ist_hi[s], "CPU %u IST%u: TSS %#llx, recorded %#llx",
                      i, s + 1, (unsigned long long)r->tss_ist[s],
                      (unsigned long long)r->ist_hi[s]);
            KT_EXPECT(guarded(r->ist_lo[s], r->ist_hi[s]), "CPU %u IST%u [%#llx, %#llx) not a "
                      "guarded stack", i, s + 1, (unsigned long long)r->ist_lo[s],
                      (unsigned long long)r->ist_hi[s]);
        }
        KT_EXPECT(r->rsp0 && guarded(r->rsp0 - KiB(16), r->rsp0), "CPU %u: RSP0 %#llx", i,
                  (unsigned long long)r->rsp0);
        if (i)
            KT_EXPECT(r->rsp < c->stack_top && r->rsp >= c->stack_top - KiB(64),
                      "CPU %u runs on RSP %#llx, its stack tops at %#llx", i,
                      (unsigned long long)r->rsp, (unsigned long long)c->stack_top);
    }
    KT_EXPECT(seen == n, "%u CPUs reported, %u online", seen, n);
    /* No two CPUs share an APIC ID, a block, a GDT, a TSS or any stack. */
    for (unsigned i = 0; i < CPU_MAX; i++) {
        for (unsigned j = i + 1; j < CPU_MAX && reports[i].ran; j++) {
            const struct cpu_report *a = &reports[i], *b = &reports[j];
            if (!b->ran)
                continue;
            KT_EXPECT(a->apic_id != b->apic_id, "CPUs %u and %u: APIC ID %u", i, j, a->apic_id);
            KT_EXPECT(a->gs_base != b->gs_base && a->gdt_base != b->gdt_base &&
                          a->tss_base != b->tss_base,
                      "CPUs %u and %u share a block, GDT or TSS", i, j);
            KT_EXPECT(a->rsp0 != b->rsp0, "CPUs %u and %u share RSP0", i, j);
            for (unsigned s = 0; s < IST_COUNT; s++)
                for (unsigned t = 0; t < IST_COUNT; t++)
                    KT_EXPECT(!overlap(a->ist_lo[s], a->ist_hi[s], b->ist_lo[t], b->ist_hi[t]),
                              "CPU %u IST%u overlaps CPU %u IST%u", i, s + 1, j, t + 1);
        }
    }
}

KTEST(smp_every_limine_cpu_is_online_or_parked)
{
    /* A Limine AP left in the bootloader's poll loop would run from memory
     * the kernel has reclaimed since: each one is started or parked. */
    const struct boot_cpus *bc = &boot_ctx.cpus;
    if (boot_ctx.protocol != BOOT_PROTO_LIMINE) {
        KT_EXPECT(smp_cpus_parked() == 0);
        return;
    }
    unsigned listed = bc->count ? bc->reported : 1; /* beyond CPU_MAX: parked too */
    unsigned left_out = 0;
    for (unsigned i = 1; i < CPU_MAX; i++)
        if (percpu_get(i) && !smp_cpu_online(i))
            left_out++;
    KT_EXPECT(smp_cpu_count() + smp_cpus_parked() + left_out == listed,
              "%u listed, %u online, %u parked, %u did not answer", listed, smp_cpu_count(),
              smp_cpus_parked(), left_out);
}

static void note_cpu(void *arg)
{
    struct cpu_report *r = arg;
    r->index = cpu_index();
    r->in_irq = cpu_in_irq();
    r->irq_on = (read_rflags() & RFLAGS_IF) != 0;
    r->ran = true;
}

KTEST(smp_call_on_runs_on_the_cpu_asked_outside_interrupts)
{
    for (unsigned i = 0; i < CPU_MAX; i++) {
        if (!smp_cpu_online(i))
            continue;
        struct cpu_report r = {0};
        smp_call_on(i, note_cpu, &r);
        KT_EXPECT(r.ran && r.index == i, "asked CPU %u, ran %d on CPU %u", i, r.ran, r.index);
        if (i != cpu_index())
            KT_EXPECT(!r.in_irq && r.irq_on, "CPU %u: in_irq=%d IF=%d", i, r.in_irq, r.irq_on);
    }
}

/* Waits up to 1 s of TSC time for *counter to reach want. */
static bool wait_count(unsigned cpu, uint64_t want)
{
    uint64_t end = rdtsc() + 1000000 * tsc_per_us();
    while (smp_ipi_received(cpu) < want)
        if (rdtsc() > end)
            return false;
    return true;
}

KTEST(smp_ipis_are_counted_by_sender_and_receiver)
{
    enum { N = 40 };
    unsigned me = cpu_index();
    uint64_t flags = read_rflags();
    cpu_sti(); /* a self-IPI is taken only with interrupts on */
    for (unsigned i = 0; i < CPU_MAX; i++) {
        if (!smp_cpu_online(i))
            continue;
        uint64_t sent0 = smp_ipi_sent(me), got0 = smp_ipi_received(i);
        /* One at a time: a fixed IPI sent while the same vector is pending
         * merges with it (one IRR bit), so each waits for the last. */
        for (unsigned k = 0; k < N; k++) {
            smp_send_ipi(i, SMP_VEC_TEST);
            if (!wait_count(i, got0 + k + 1))
                break;
        }
        KT_EXPECT(smp_ipi_sent(me) - sent0 == N, "to CPU %u: %llu sent", i,
                  (unsigned long long)(smp_ipi_sent(me) - sent0));
        KT_EXPECT(smp_ipi_received(i) - got0 == N, "CPU %u received %llu of %d", i,
                  (unsigned long long)(smp_ipi_received(i) - got0), N);
    }
    /* The broadcast form reaches every other online CPU once. */
    uint64_t got[CPU_MAX];
    for (unsigned i = 0; i < CPU_MAX; i++)
        got[i] = smp_ipi_received(i);
    smp_send_ipi_all_but_self(SMP_VEC_TEST);
    for (unsigned i = 0; i < CPU_MAX; i++) {
        if (!smp_cpu_online(i) || i == me)
            continue;
        KT_EXPECT(wait_count(i, got[i] + 1), "CPU %u missed the broadcast", i);
    }
    KT_EXPECT(smp_ipi_received(me) == got[me], "the broadcast reached its sender");
    if (!(flags & RFLAGS_IF))
        cpu_cli();
}

/* One-shot timer for TIMER_MS by the calibrated rate, timed on the TSC until
 * its interrupt arrives; the shortest of TIMER_TRIES kept. A stalled vCPU
 * (TCG on a busy host) only makes a try longer, so the shortest is the
 * timer's own delay: never early, and not much late unless the calibration
 * is wrong. Each CPU in turn, so they do not compete for host time; each
 * CPU's scheduler tick (the same timer) is paused for its turn. */
#define TIMER_MS    10
#define TIMER_TRIES 5
static uint64_t timer_best_us[CPU_MAX];

static void time_timer(void *arg)
{
    (void)arg;
    unsigned me = cpu_index();
    uint64_t best = UINT64_MAX, per_us = tsc_per_us();
    /* The scheduler's periodic tick runs on this timer. Stop it, and give a
     * tick it raised just before a millisecond to arrive, so that no try
     * counts it as its own one-shot firing early. */
    lapic_timer_stop();
    uint64_t quiet = rdtsc();
    while (rdtsc() - quiet < 1000 * per_us)
        cpu_relax();
    for (unsigned t = 0; t < TIMER_TRIES; t++) {
        uint64_t before = smp_timer_ticks(me);
        uint64_t t0 = rdtsc();
        lapic_timer_start_oneshot(SMP_VEC_TIMER, TIMER_MS);
        while (smp_timer_ticks(me) == before && rdtsc() - t0 < 1000000 * per_us)
            cpu_relax();
        uint64_t us = (rdtsc() - t0) / per_us;
        lapic_timer_stop();
        if (smp_timer_ticks(me) != before && us < best)
            best = us;
    }
    timer_best_us[me] = best;
    sched_timer_start(); /* the tick this CPU had before the test */
}

KTEST(smp_lapic_timer_fires_at_the_calibrated_rate_on_every_cpu)
{
    KT_ASSERT(lapic_timer_ticks_per_ms() > 0, "LAPIC timer not calibrated");
    uint64_t flags = read_rflags();
    cpu_sti(); /* for the caller's own turn */
    for (unsigned i = 0; i < CPU_MAX; i++) {
        if (!smp_cpu_online(i))
            continue;
        timer_best_us[i] = 0;
        smp_call_on(i, time_timer, NULL);
        uint64_t us = timer_best_us[i];
        KT_EXPECT(us != UINT64_MAX, "CPU %u: the timer never fired", i);
        KT_EXPECT(us >= TIMER_MS * 900 && us <= TIMER_MS * 5000,
                  "CPU %u: a %d ms one-shot fired after %llu us at best (%u ticks/ms)", i,
                  TIMER_MS, (unsigned long long)us, lapic_timer_ticks_per_ms());
    }
    /* Every CPU's scheduler tick runs again: each CPU counts a few more. */
    uint64_t ticks[CPU_MAX], end = rdtsc() + 1000000 * tsc_per_us();
    for (unsigned i = 0; i < CPU_MAX; i++)
        ticks[i] = smp_cpu_online(i) ? smp_timer_ticks(i) : 0;
    for (unsigned i = 0; i < CPU_MAX; i++) {
        if (!smp_cpu_online(i))
            continue;
        while (smp_timer_ticks(i) < ticks[i] + 3 && rdtsc() < end)
            cpu_relax();
        KT_EXPECT(smp_timer_ticks(i) >= ticks[i] + 3,
                  "CPU %u: the scheduler tick did not resume after the test", i);
    }
    if (!(flags & RFLAGS_IF))
        cpu_cli();
}
