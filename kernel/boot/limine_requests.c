/* The Limine requests themselves (kernel only). The linker script keeps
 * .limine_requests_start, .limine_requests and .limine_requests_end in that
 * order at the start of .data; Limine scans only between the two markers, so
 * the base-revision tag lives there too. Everything is volatile: the
 * bootloader writes these words before we run, behind the compiler's back. */
#include "boot/limine.h"

#include "arch/x86_64/cpu.h"
#include "lib/printf.h"
#include "mm/mm.h"
#include "mm/paging.h"

/* Where every request and the base-revision tag go (between the markers). */
#define LIMINE_REQUEST_AREA __attribute__((used, section(".limine_requests")))
/* The request variable <name>_request: its ID, then any fields beyond the
 * header (revision 0 and a NULL response unless given). */
#define LIMINE_REQUEST(name, request_id, ...)            \
    LIMINE_REQUEST_AREA static volatile struct           \
        limine_##name##_request name##_request = { .id = request_id, __VA_ARGS__ }

__attribute__((used, section(".limine_requests_start"), aligned(8))) static volatile uint64_t
    limine_requests_start[4] = { LIMINE_REQUESTS_START_MARKER_WORDS };

LIMINE_REQUEST_AREA static volatile uint64_t limine_base_revision[3] = {
    LIMINE_BASE_REVISION_MAGIC0, LIMINE_BASE_REVISION_MAGIC1, LIMINE_REQUESTED_BASE_REVISION
};

LIMINE_REQUEST(memmap, LIMINE_ID_MEMMAP);
LIMINE_REQUEST(hhdm, LIMINE_ID_HHDM);
LIMINE_REQUEST(framebuffer, LIMINE_ID_FRAMEBUFFER);
LIMINE_REQUEST(executable_file, LIMINE_ID_EXECUTABLE_FILE);
LIMINE_REQUEST(executable_address, LIMINE_ID_EXECUTABLE_ADDRESS);
LIMINE_REQUEST(rsdp, LIMINE_ID_RSDP);
LIMINE_REQUEST(firmware_type, LIMINE_ID_FIRMWARE_TYPE);
LIMINE_REQUEST(bootloader_info, LIMINE_ID_BOOTLOADER_INFO);
LIMINE_REQUEST(stack_size, LIMINE_ID_STACK_SIZE, .stack_size = KiB(64));
/* Revision 1: the bootloader refuses to boot unless 4-level paging is possible. */
LIMINE_REQUEST(paging_mode, LIMINE_ID_PAGING_MODE, .revision = 1,
               .mode = LIMINE_PAGING_MODE_X86_64_4LVL, .max_mode = LIMINE_PAGING_MODE_X86_64_4LVL,
               .min_mode = LIMINE_PAGING_MODE_X86_64_4LVL);

__attribute__((used, section(".limine_requests_end"), aligned(8))) static volatile uint64_t
    limine_requests_end[2] = { LIMINE_REQUESTS_END_MARKER_WORDS };

const char *boot_limine_collect(struct boot_info *out)
{
    struct limine_answers a = {
        .base_revision_tag = {limine_base_revision[0], limine_base_revision[1],
                              limine_base_revision[2]},
        .requested_revision = LIMINE_REQUESTED_BASE_REVISION,
#define LIMINE_ANSWER(name) .name = name##_request.response,
        LIMINE_REQUESTS(LIMINE_ANSWER)
#undef LIMINE_ANSWER
    };
    return boot_from_limine(out, &a);
}

/* ---- the local APIC after base revision 5 ------------------------------------
 * This kernel takes its interrupts from the 8259 PICs, which reach the CPU
 * through the local APIC's LINT0 pin programmed as ExtINT ("virtual wire", as
 * firmware leaves it). From base revision 5 Limine masks every LVT entry, so
 * no IRQ would arrive; the entries are put back as firmware has them. */
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

const char *boot_limine_restore_virtual_wire(void)
{
    static char note[96];
    if (boot_ctx.protocol != BOOT_PROTO_LIMINE || boot_ctx.base_revision < 5)
        return NULL;
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
