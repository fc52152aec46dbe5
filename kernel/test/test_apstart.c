/* In-kernel tests of the GRUB path's AP start-up (arch/x86_64/ap_start.c,
 * trampoline.S) and the PIT-calibrated delay (pit.c): the trampoline page
 * is below 1 MiB and stays reserved, its temporary tables and data block
 * match the BSP, the delay agrees with the PIT, and on a GRUB boot every
 * CPU the MADT lists came online. */
#include "arch/x86_64/ap_start.h"
#include "arch/x86_64/cpu.h"
#include "arch/x86_64/lapic.h"
#include "arch/x86_64/pit.h"
#include "arch/x86_64/smp.h"
#include "boot/boot_info.h"
#include "lib/cmdline.h"
#include "lib/printf.h"
#include "lib/string.h"
#include "mm/frame.h"
#include "mm/mm.h"
#include "mm/paging.h"
#include "test/ktest.h"

extern const char trampoline_start[], trampoline_end[];

/* The page was taken at boot (before anything could use up low memory) and
 * nothing gave it back since. */
KTEST(apstart_trampoline_page_below_1mib_and_reserved)
{
    paddr_t p = ap_start_trampoline_page();
    KT_ASSERT(p != 0, "no trampoline page was reserved at boot");
    KT_EXPECT(p < MiB(1) && (p & (PAGE_SIZE - 1)) == 0, "trampoline at %#llx",
              (unsigned long long)p);
    KT_EXPECT(p >> PAGE_SHIFT != 0, "page 0 cannot be a SIPI target here");
    KT_EXPECT(frame_is_used(p), "trampoline page %#llx is free again", (unsigned long long)p);
}

/* After ap_start_all (GRUB path): the code is in place and the block holds
 * the BSP's state; the temporary PML4 maps the page to itself and shares
 * the kernel half with kernel_as. */
KTEST(apstart_trampoline_block_matches_the_bsp)
{
    paddr_t p = ap_start_trampoline_page();
    KT_ASSERT(p != 0);
    const struct ap_tramp_data *d = (const void *)((char *)PHYS2VIRT(p) + TRAMP_DATA);
    if (d->stub == 0) {
        kprintf("apstart: the trampoline was not used on this boot (%s): block not checked\n",
                boot_ctx.protocol == BOOT_PROTO_LIMINE ? "Limine started the CPUs" : "no APs");
        return;
    }
    size_t code = (size_t)(trampoline_end - trampoline_start);
    KT_EXPECT(memcmp(PHYS2VIRT(p), trampoline_start, code) == 0, "trampoline code changed");
    KT_EXPECT(d->kernel_cr3 == kernel_as.pml4);
    KT_EXPECT(d->cr4 == read_cr4(), "block CR4 %#llx, BSP %#llx", (unsigned long long)d->cr4,
              (unsigned long long)read_cr4());
    KT_EXPECT(d->cr0 == read_cr0());
    KT_EXPECT(d->efer == (rdmsr(MSR_EFER) & ~EFER_LMA));
    KT_EXPECT(d->pat == rdmsr(MSR_PAT));
    KT_EXPECT(d->claim == TD_CLAIMED || d->claim == TD_WITHDRAWN, "claim %#x", d->claim);
    KT_EXPECT(d->gdtr_base == p + TRAMP_DATA && d->gdtr_limit == 31);
    KT_EXPECT(d->pm32_off > p && d->pm32_off < p + TRAMP_DATA);
    KT_EXPECT(d->lm64_off > p && d->lm64_off < p + TRAMP_DATA);
    paddr_t t = d->tmp_cr3;
    KT_ASSERT(t != 0 && frame_is_used(t), "temporary PML4 at %#llx", (unsigned long long)t);
    const uint64_t *pml4 = PHYS2VIRT(t), *kernel = PHYS2VIRT(kernel_as.pml4);
    for (int i = 256; i < 512; i++) /* the CPU sets Accessed bits in either copy */
        KT_ASSERT((pml4[i] | PTE_ACCESSED) == (kernel[i] | PTE_ACCESSED),
                  "PML4[%d] %#llx, kernel_as %#llx", i,
                  (unsigned long long)pml4[i], (unsigned long long)kernel[i]);
    for (int i = 1; i < 256; i++)
        KT_ASSERT(pml4[i] == 0, "PML4[%d] = %#llx in the lower half", i,
                  (unsigned long long)pml4[i]);
    /* Walk 0 -> PDPT -> PD -> PT for the page itself: present, writable,
     * executable (no NX anywhere), pointing at the page. */
    uint64_t e = pml4[0];
    for (int level = 0; level < 3; level++) {
        KT_ASSERT((e & 3) == 3 && !(e & PTE_NX) && !(e & PTE_PS), "level %d entry %#llx", level,
                  (unsigned long long)e);
        KT_ASSERT((e & PTE_ADDR_MASK) < GiB(4), "a table above 4 GiB");
        const uint64_t *next = PHYS2VIRT(e & PTE_ADDR_MASK);
        e = next[level == 2 ? (p >> PAGE_SHIFT) & 511 : 0];
    }
    KT_EXPECT((e & PTE_ADDR_MASK) == p && (e & 3) == 3 && !(e & PTE_NX), "PT entry %#llx",
              (unsigned long long)e);
}

/* |a - b|. */
static uint64_t dist(uint64_t a, uint64_t b)
{
    return a > b ? a - b : b - a;
}

/* The TSC rate is measured and plausible (50 MHz .. 20 GHz). */
KTEST(apstart_tsc_calibrated_at_boot)
{
    uint64_t r = tsc_per_us();
    KT_ASSERT(r != 0, "nothing ran pit_calibrate_tsc at boot");
    KT_EXPECT(r >= 50 && r <= 20000, "TSC %llu MHz", (unsigned long long)r);
}

/* delay_us(10000) against the PIT, a clock it does not read: within a
 * factor of 2 (short) and 3 (long: the host may stall the vCPU), best of
 * three tries. */
KTEST(apstart_delay_us_agrees_with_the_pit)
{
    KT_ASSERT(tsc_per_us() != 0);
    const uint32_t want = PIT_HZ / 100; /* 10 ms of PIT ticks */
    uint32_t best = 0;
    for (int k = 0; k < 3; k++) {
        uint64_t flags = cpu_irq_save();
        pit_stopwatch_start();
        delay_us(10000);
        uint32_t got = pit_stopwatch_ticks();
        cpu_irq_restore(flags);
        if (k == 0 || dist(got, want) < dist(best, want))
            best = got;
    }
    KT_EXPECT(best >= want / 2 && best <= want * 3, "delay_us(10000) took %u PIT ticks, want ~%u",
              best, want);
}

/* The PIT wait alone, against the calibrated TSC: the other direction. */
KTEST(apstart_pit_wait_agrees_with_the_tsc)
{
    uint64_t r = tsc_per_us();
    KT_ASSERT(r != 0);
    uint64_t best = 0;
    for (int k = 0; k < 3; k++) {
        uint64_t t0 = rdtsc();
        pit_wait_us(10000);
        uint64_t us = (rdtsc() - t0) / r;
        if (k == 0 || dist(us, 10000) < dist(best, 10000))
            best = us;
    }
    KT_EXPECT(best >= 5000 && best <= 30000, "pit_wait_us(10000) took %llu us of TSC",
              (unsigned long long)best);
}

static uint64_t read_stopwatch(void *arg)
{
    (void)arg;
    return pit_stopwatch_ticks();
}

/* The calibration is right: the PIT itself, measured through the TSC with
 * counter_hz_by_tsc, runs at PIT_HZ within 2% (paired samples make host
 * stalls harmless, so the bound can be tight), over 20 ms (the stopwatch
 * wraps at 55), the closest of three tries. */
KTEST(apstart_tsc_rate_measures_the_pit_at_its_rate)
{
    KT_ASSERT(tsc_per_us() != 0);
    uint64_t hz = 0;
    for (int k = 0; k < 3; k++) { /* a stall past the stopwatch's wrap spoils one try */
        pit_stopwatch_start();
        uint64_t h = counter_hz_by_tsc(read_stopwatch, NULL, 20);
        if (k == 0 || dist(h, PIT_HZ) < dist(hz, PIT_HZ))
            hz = h;
    }
    KT_EXPECT(hz >= PIT_HZ / 100 * 98 && hz <= PIT_HZ / 100 * 102,
              "the PIT measured at %llu Hz through a %llu MHz TSC, want %u", (unsigned long long)hz,
              (unsigned long long)tsc_per_us(), PIT_HZ);
}

/* On a GRUB boot that started CPUs through the trampoline: every CPU of the
 * MADT's list (as ap_start_all was given it, CPU_MAX at most) is online,
 * once, with its APIC ID, and the online count matches the list. */
KTEST(apstart_every_madt_cpu_came_online)
{
    const struct acpi_cpus *list = ap_start_cpus();
    if (!list) {
        kprintf("apstart: ap_start_all did not run on this boot (%s): nothing to compare\n",
                boot_ctx.protocol == BOOT_PROTO_LIMINE ? "Limine started the CPUs"
                                                       : "nosmp or no MADT");
        return;
    }
    uint32_t online_ids[CPU_MAX];
    unsigned n = 0;
    for (unsigned i = 0; i < CPU_MAX; i++) {
        struct cpu *c = percpu_get(i);
        if (c && smp_cpu_online(i))
            online_ids[n++] = c->local.apic_id;
    }
    KT_EXPECT(n == smp_cpu_count(), "%u online blocks, smp_cpu_count %u", n, smp_cpu_count());
    KT_EXPECT(n == list->count, "%u of the MADT's %u CPUs online", n, list->count);
    for (uint32_t k = 0; k < list->count; k++) {
        unsigned found = 0;
        for (unsigned i = 0; i < n; i++)
            found += online_ids[i] == list->apic_id[k];
        KT_EXPECT(found == 1, "APIC id %u of the MADT: %u online CPUs have it", list->apic_id[k],
                  found);
    }
    kprintf("apstart: %u of the MADT's %u CPUs online\n", n, list->count);
}

/* What each CPU found in its control registers and MSRs. */
struct cpu_state {
    uint64_t cr0, cr4, efer, pat;
    bool seen;
};
static struct cpu_state states[CPU_MAX];

static void record_state(void *arg)
{
    (void)arg;
    struct cpu_state *s = &states[cpu_index()];
    s->cr0 = read_cr0();
    s->cr4 = read_cr4();
    s->efer = rdmsr(MSR_EFER);
    s->pat = rdmsr(MSR_PAT);
    __atomic_store_n(&s->seen, true, __ATOMIC_RELEASE);
}

/* Every online CPU runs with the BSP's CR0, CR4 (PAE, PGE, SMEP, SMAP,
 * UMIP, MCE as the BSP has them), EFER (LME/LMA, NXE, SCE) and PAT: the
 * trampoline (and smp_ap_enter) copied them. */
KTEST(apstart_every_cpu_has_the_bsps_control_state)
{
    memset(states, 0, sizeof(states));
    smp_run_on_all(record_state, NULL);
    const struct cpu_state *bsp = &states[cpu_index()];
    KT_ASSERT(bsp->seen);
    unsigned seen = 0;
    for (unsigned i = 0; i < CPU_MAX; i++) {
        const struct cpu_state *s = &states[i];
        if (!s->seen)
            continue;
        seen++;
        KT_EXPECT(s->cr0 == bsp->cr0, "CPU %u CR0 %#llx, BSP %#llx", i,
                  (unsigned long long)s->cr0, (unsigned long long)bsp->cr0);
        KT_EXPECT(s->cr4 == bsp->cr4, "CPU %u CR4 %#llx, BSP %#llx", i,
                  (unsigned long long)s->cr4, (unsigned long long)bsp->cr4);
        KT_EXPECT(s->efer == bsp->efer, "CPU %u EFER %#llx, BSP %#llx", i,
                  (unsigned long long)s->efer, (unsigned long long)bsp->efer);
        KT_EXPECT(s->pat == bsp->pat, "CPU %u PAT %#llx, BSP %#llx", i,
                  (unsigned long long)s->pat, (unsigned long long)bsp->pat);
    }
    KT_EXPECT(seen == smp_cpu_count(), "%u CPUs answered, %u online", seen, smp_cpu_count());
}

/* A listed CPU that does not answer (an APIC ID no CPU has) is reported and
 * left out after the timeout, and the trampoline block is withdrawn so that
 * a late waker would halt. Runs last in this file: it leaves a prepared,
 * offline per-CPU block behind (as a real absent CPU does). */
KTEST(apstart_zz_absent_cpu_is_reported_and_left_out)
{
    const struct acpi_cpus *list = ap_start_cpus();
    if (!list) {
        kprintf("apstart: ap_start_all did not run on this boot: not exercised\n");
        return;
    }
    uint32_t ghost = 1;
    for (bool used = true; used && ghost < 0xfe;) {
        used = false;
        for (uint32_t k = 0; k < list->count; k++)
            used |= list->apic_id[k] == ghost;
        if (used)
            ghost++;
    }
    unsigned before = smp_cpu_count();
    char want[80];
    ksnprintf(want, sizeof(want), "(APIC id %u) did not start: left out", ghost);
    const char *why = "unset";
    ktest_capture_start();
    enum ap_start_result r = ap_start_cpu(ghost, 50000, &why); /* nobody will answer */
    ktest_capture_stop();
    if (r == AP_START_STOP && why && strstr(why, "no per-CPU block")) {
        kprintf("apstart: all %u per-CPU blocks in use: not exercised\n", CPU_MAX);
        return;
    }
    KT_EXPECT(r == AP_START_LEFT_OUT, "result %d (%s)", r, why ? why : "");
    KT_EXPECT(why == NULL, "why: %s", why);
    KT_EXPECT(strstr(ktest_captured(), want) != NULL, "no '%s' in: %s", want, ktest_captured());
    KT_EXPECT(smp_cpu_count() == before);
    const struct ap_tramp_data *d =
        (const void *)((char *)PHYS2VIRT(ap_start_trampoline_page()) + TRAMP_DATA);
    KT_EXPECT(d->claim == TD_WITHDRAWN,
              "claim %#x after a CPU did not come (taken %u, wrong_id %u, page %#llx used %d)",
              d->claim, d->taken, d->wrong_id,
              (unsigned long long)ap_start_trampoline_page(),
              frame_is_used(ap_start_trampoline_page()));
    KT_EXPECT(ap_start_cpu(lapic_id(), 50000, &why) == AP_START_SELF, "the BSP was started again");
}

static volatile bool spin_stop;
static volatile uint64_t rate_while_spinning;

/* On the BSP: calibrate again; on every other CPU: spin until it is done. */
static void calibrate_among_spinners(void *arg)
{
    (void)arg;
    if (cpu_index() != 0) {
        while (!spin_stop)
            cpu_relax();
        return;
    }
    pit_calibrate_tsc();
    rate_while_spinning = tsc_per_us();
    spin_stop = true;
}

/* The calibration is not biased by other CPUs spinning meanwhile (under
 * multi-threaded TCG they compete with the BSP's port I/O for the host):
 * measured again while every other CPU spins, the rate stays within 2% of
 * the boot's. */
KTEST(apstart_tsc_calibration_holds_while_other_cpus_spin)
{
    uint64_t boot = tsc_per_us();
    KT_ASSERT(boot != 0);
    spin_stop = false;
    rate_while_spinning = 0;
    smp_run_on_all(calibrate_among_spinners, NULL);
    uint64_t r = rate_while_spinning;
    KT_EXPECT(r >= boot * 98 / 100 && r <= boot * 102 / 100,
              "%llu MHz with %u CPUs spinning, %llu MHz at boot", (unsigned long long)r,
              smp_cpu_count() - 1, (unsigned long long)boot);
}
