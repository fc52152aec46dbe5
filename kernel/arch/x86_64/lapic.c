/* The local APIC, as far as a kernel on the 8259 PICs needs it. This kernel
 * takes its interrupts from the PICs, which reach the CPU through the local
 * APIC's LINT0 pin programmed as ExtINT ("virtual wire", as firmware leaves
 * it). From base revision 5 Limine masks every LVT entry, so no IRQ would
 * arrive; lapic_restore_virtual_wire puts the entries back as firmware has
 * them. (Kernel only: it maps the register page on the live tables.) */
#include "arch/x86_64/lapic.h"

#include "arch/x86_64/cpu.h"
#include "lib/printf.h"
#include "mm/mm.h"
#include "mm/paging.h"

#define MSR_APIC_BASE        0x1b
#define APIC_BASE_X2APIC     (1ULL << 10)
#define APIC_BASE_ENABLED    (1ULL << 11)
#define APIC_BASE_ADDR_MASK  0x000ffffffffff000ULL
#define LAPIC_LVT_LINT0      0x350 /* xAPIC register offsets; x2APIC MSR 0x800 + off/16 */
#define LAPIC_LVT_LINT1      0x360
#define LVT_MASKED           (1U << 16)
#define LVT_MODE_MASK        (7U << 8)
#define LVT_MODE_NMI         (4U << 8)
#define LVT_MODE_EXTINT      (7U << 8)

/* LINT0 as ExtINT, edge, unmasked; LINT1 unmasked when it carries NMI. */
static void virtual_wire(volatile uint32_t *lint0, volatile uint32_t *lint1, uint32_t *was)
{
    *was = *lint0;
    *lint0 = LVT_MODE_EXTINT;
    if ((*lint1 & LVT_MODE_MASK) == LVT_MODE_NMI)
        *lint1 &= ~LVT_MASKED;
}

const char *lapic_restore_virtual_wire(void)
{
    static char note[96];
    uint64_t base = rdmsr(MSR_APIC_BASE);
    uint32_t was;
    if (!(base & APIC_BASE_ENABLED))
        return NULL; /* no local APIC in the way: the PIC drives INTR itself */
    if (base & APIC_BASE_X2APIC) {
        uint32_t l0 = (uint32_t)rdmsr(0x800 + LAPIC_LVT_LINT0 / 16);
        uint32_t l1 = (uint32_t)rdmsr(0x800 + LAPIC_LVT_LINT1 / 16);
        virtual_wire(&l0, &l1, &was);
        wrmsr(0x800 + LAPIC_LVT_LINT0 / 16, l0);
        wrmsr(0x800 + LAPIC_LVT_LINT1 / 16, l1);
    } else {
        /* The kernel's HHDM leaves MMIO out: map the register page at its
         * HHDM address, uncached, for these accesses only. */
        paddr_t pa = base & APIC_BASE_ADDR_MASK;
        vaddr_t va = hhdm_offset + pa;
        int err = paging_map_in(&kernel_as, pa, va, PAGE_SIZE, PAGE_WRITABLE | PAGE_NX, CACHE_UC, 0);
        if (err && err != -PAGING_EEXIST) {
            ksnprintf(note, sizeof(note), "LAPIC at %#llx not mappable (%s): no IRQs",
                      (unsigned long long)pa, paging_strerror(err));
            return note;
        }
        volatile uint32_t *regs = (volatile uint32_t *)va;
        virtual_wire(&regs[LAPIC_LVT_LINT0 / 4], &regs[LAPIC_LVT_LINT1 / 4], &was);
        if (!err)
            paging_unmap_in(&kernel_as, va, PAGE_SIZE);
    }
    ksnprintf(note, sizeof(note), "LAPIC LINT0 %#x -> ExtINT (virtual wire for the 8259 PIC)",
              was);
    return note;
}
