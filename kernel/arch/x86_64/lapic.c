/* The local APIC: one accessor for xAPIC (MMIO) and x2APIC (MSRs), IPIs,
 * the spurious vector, EOI and the timer (lapic.h).
 *
 * The mode is decided once, by the BSP's lapic_init: x2APIC when the BSP's
 * APIC already runs in it (Limine's MP request asks for x2APIC when the CPU
 * has it; firmware may have switched too), xAPIC otherwise. Every AP then
 * puts its own APIC in that mode (an AP started by INIT-SIPI-SIPI comes up
 * in xAPIC mode, a Limine AP in whatever Limine chose, which is the BSP's).
 *
 * The xAPIC register page is mapped once, uncached, at its HHDM address on
 * kernel_as (the HHDM itself leaves MMIO out) and stays mapped: every CPU
 * sees its own APIC at the same physical address.
 *
 * Also: the 8259 PICs reach the BSP through LINT0 programmed as ExtINT
 * ("virtual wire", as firmware leaves it); from base revision 5 Limine masks
 * every LVT entry, so lapic_restore_virtual_wire puts them back. */
#include "arch/x86_64/lapic.h"

#include "arch/x86_64/cpu.h"
#include "arch/x86_64/pit.h"
#include "lib/panic.h"
#include "lib/printf.h"
#include "mm/mm.h"
#include "mm/paging.h"

#define MSR_APIC_BASE        0x1b
#define MSR_X2APIC_BASE      0x800
#define MSR_X2APIC_ICR       0x830
#define APIC_BASE_X2APIC     (1ULL << 10)
#define APIC_BASE_ENABLED    (1ULL << 11)
#define APIC_BASE_ADDR_MASK  0x000ffffffffff000ULL
#define LVT_MODE_MASK        (7U << 8)
#define LVT_MODE_NMI         (4U << 8)
#define LVT_MODE_EXTINT      (7U << 8)
#define SVR_ENABLE           (1U << 8)
#define SPURIOUS_VECTOR      0xff
#define TIMER_DIV_16         0x3

/* Set by the BSP's lapic_init before any AP starts; read-only afterwards. */
static bool x2apic;
static volatile uint32_t *mmio; /* xAPIC register page (HHDM address), NULL in x2APIC mode */
static bool ready;
static uint32_t ticks_per_ms;   /* timer rate at divide-by-16, from lapic_timer_calibrate */

uint32_t lapic_read(uint32_t reg)
{
    if (x2apic)
        return (uint32_t)rdmsr(MSR_X2APIC_BASE + reg / 16);
    return mmio[reg / 4];
}

void lapic_write(uint32_t reg, uint32_t v)
{
    if (x2apic)
        wrmsr(MSR_X2APIC_BASE + reg / 16, v);
    else
        mmio[reg / 4] = v;
}

bool lapic_ready(void)
{
    return ready;
}

bool lapic_x2apic(void)
{
    return x2apic;
}

uint32_t lapic_id(void)
{
    uint32_t v = lapic_read(LAPIC_REG_ID);
    return x2apic ? v : v >> 24;
}

void lapic_eoi(void)
{
    lapic_write(LAPIC_REG_EOI, 0);
}

void lapic_send_ipi(uint32_t apic_id, uint32_t icr_low)
{
    if (x2apic) {
        /* One MSR write sends; x2APIC has no delivery-status bit. */
        wrmsr(MSR_X2APIC_ICR, ((uint64_t)apic_id << 32) | icr_low);
        return;
    }
    /* The two ICR writes must not be split by an interrupt handler that
     * sends an IPI of its own on this CPU. */
    uint64_t flags = cpu_irq_save();
    while (mmio[LAPIC_REG_ICR_LOW / 4] & LAPIC_ICR_DELIVS)
        cpu_relax();
    mmio[LAPIC_REG_ICR_HIGH / 4] = apic_id << 24;
    mmio[LAPIC_REG_ICR_LOW / 4] = icr_low;
    while (mmio[LAPIC_REG_ICR_LOW / 4] & LAPIC_ICR_DELIVS)
        cpu_relax();
    cpu_irq_restore(flags);
}

/* The BSP's half: decide the mode and map the xAPIC page. */
static void lapic_setup_bsp(uint64_t base)
{
    x2apic = (base & APIC_BASE_X2APIC) != 0;
    if (x2apic)
        return;
    paddr_t pa = base & APIC_BASE_ADDR_MASK;
    vaddr_t va = hhdm_offset + pa;
    int err = paging_map_in(&kernel_as, pa, va, PAGE_SIZE, PAGE_WRITABLE | PAGE_NX, CACHE_UC, 0);
    if (err && err != -PAGING_EEXIST)
        panic("LAPIC registers at %#llx not mappable: %s", (unsigned long long)pa,
              paging_strerror(err));
    mmio = (volatile uint32_t *)va;
}

void lapic_init(void)
{
    uint64_t base = rdmsr(MSR_APIC_BASE);
    if (!ready) {
        lapic_setup_bsp(base);
    } else if (x2apic && !(base & APIC_BASE_X2APIC)) {
        /* xAPIC -> x2APIC needs the global enable first (SDM 11.12.5). */
        base |= APIC_BASE_ENABLED;
        wrmsr(MSR_APIC_BASE, base);
        base |= APIC_BASE_X2APIC;
    }
    wrmsr(MSR_APIC_BASE, base | APIC_BASE_ENABLED);
    lapic_write(LAPIC_REG_TPR, 0);
    lapic_write(LAPIC_REG_SVR, SVR_ENABLE | SPURIOUS_VECTOR);
    lapic_write(LAPIC_REG_ESR, 0); /* clears the error status (write, then read) */
    (void)lapic_read(LAPIC_REG_ESR);
    lapic_write(LAPIC_REG_LVT_TIMER, LAPIC_LVT_MASKED);
    ready = true;
}

/* LINT0 as ExtINT, edge, unmasked; LINT1 unmasked when it carries NMI. */
const char *lapic_restore_virtual_wire(void)
{
    static char note[96];
    uint64_t base = rdmsr(MSR_APIC_BASE);
    if (!(base & APIC_BASE_ENABLED))
        return NULL; /* no local APIC in the way: the PIC drives INTR itself */
    kassert(ready, "lapic_restore_virtual_wire before lapic_init");
    uint32_t was = lapic_read(LAPIC_REG_LVT_LINT0);
    lapic_write(LAPIC_REG_LVT_LINT0, LVT_MODE_EXTINT);
    uint32_t l1 = lapic_read(LAPIC_REG_LVT_LINT1);
    if ((l1 & LVT_MODE_MASK) == LVT_MODE_NMI)
        lapic_write(LAPIC_REG_LVT_LINT1, l1 & ~LAPIC_LVT_MASKED);
    ksnprintf(note, sizeof(note), "LAPIC LINT0 %#x -> ExtINT (virtual wire for the 8259 PIC)",
              was);
    return note;
}

/* ---- the timer ---- */

uint32_t lapic_timer_ticks_per_ms(void)
{
    return ticks_per_ms;
}

/* The timer's current count, for counter_hz_by_tsc. */
static uint64_t timer_count(void *unused)
{
    (void)unused;
    return lapic_read(LAPIC_REG_TIMER_CUR);
}

uint32_t lapic_timer_calibrate(void)
{
    /* One-shot from the top, masked: 2^32 ticks outlast the 10 ms window
     * at any bus clock below 400 GHz. The TSC (calibrated against the PIT,
     * pit.h) times the window. */
    lapic_write(LAPIC_REG_TIMER_DIV, TIMER_DIV_16);
    lapic_write(LAPIC_REG_LVT_TIMER, LAPIC_LVT_MASKED);
    lapic_write(LAPIC_REG_TIMER_INIT, 0xffffffffu);
    uint64_t hz = counter_hz_by_tsc(timer_count, NULL, 10);
    lapic_write(LAPIC_REG_TIMER_INIT, 0);
    ticks_per_ms = (uint32_t)MIN(hz / 1000, (uint64_t)UINT32_MAX);
    klog("smp", "LAPIC timer: %u ticks/ms", ticks_per_ms);
    return ticks_per_ms;
}

void lapic_timer_start_periodic(uint8_t vector, uint32_t ms)
{
    kassert(ticks_per_ms, "LAPIC timer not calibrated");
    lapic_write(LAPIC_REG_TIMER_DIV, TIMER_DIV_16);
    lapic_write(LAPIC_REG_LVT_TIMER, LAPIC_TIMER_PERIODIC | vector);
    lapic_write(LAPIC_REG_TIMER_INIT, ticks_per_ms * ms);
}

void lapic_timer_start_oneshot(uint8_t vector, uint32_t ms)
{
    kassert(ticks_per_ms, "LAPIC timer not calibrated");
    lapic_write(LAPIC_REG_TIMER_DIV, TIMER_DIV_16);
    lapic_write(LAPIC_REG_LVT_TIMER, vector);
    lapic_write(LAPIC_REG_TIMER_INIT, ticks_per_ms * ms);
}

void lapic_timer_stop(void)
{
    lapic_write(LAPIC_REG_LVT_TIMER, LAPIC_LVT_MASKED);
    lapic_write(LAPIC_REG_TIMER_INIT, 0);
}
