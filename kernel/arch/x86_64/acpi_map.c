/* Reaching the firmware's ACPI tables from the running kernel. The HHDM maps
 * usable, ACPI reclaimable and ACPI NVS memory; tables in reserved memory (the
 * RSDP in the BIOS area, SeaBIOS's tables, the XSDT of some UEFI firmware)
 * are not mapped. acpi_map_kernel maps such pages at their HHDM address,
 * read-only and NX, for one parse only: acpi_unmap_kernel removes them again,
 * so no write-back alias of firmware memory (which might turn out to be MMIO
 * when a table pointer is bogus) outlives the parse, and a later uncached
 * mapping of the same page (the local APIC's, say) never finds one in its way.
 *
 * Concurrency: one parse at a time (boot/acpi.c keeps its error line in one
 * static buffer), never from an interrupt handler. Bring-up parses on the
 * bootstrap CPU before the others start; a later parse (the self-tests) may
 * run with them online: they never touch the pages it maps, so no other CPU
 * can hold a TLB entry for them and the unmapping needs no shootdown. */
#include "arch/x86_64/acpi_map.h"

#include "arch/x86_64/mmu_ops.h"
#include "boot/boot_info.h"
#include "mm/mapper.h"
#include "mm/mm.h"
#include "mm/paging.h"

/* Records that the page at va is mapped here: it extends a run it touches at
 * either end, or starts a new one. False when the run table is full. */
static bool record(struct acpi_map_ctx *c, vaddr_t va)
{
    for (uint32_t i = 0; i < c->runs; i++) {
        if (c->run[i].va + c->run[i].pages * PAGE_SIZE == va) {
            c->run[i].pages++;
            return true;
        }
        if (va + PAGE_SIZE == c->run[i].va) {
            c->run[i].va = va;
            c->run[i].pages++;
            return true;
        }
    }
    if (c->runs == ACPI_MAP_RUNS)
        return false;
    c->run[c->runs].va = va;
    c->run[c->runs].pages = 1;
    c->runs++;
    return true;
}

const void *acpi_map_kernel(paddr_t phys, size_t len, void *ctx)
{
    struct acpi_map_ctx *c = ctx;
    if (!len || phys > UINT64_MAX - len)
        return NULL;
    paddr_t end = phys + len;
    if (arch_phys_addr_bits() < 64 && end > (1ULL << arch_phys_addr_bits()))
        return NULL;
    if (hhdm_offset + end < hhdm_offset || hhdm_offset + end > MAPPER_HHDM_LIMIT)
        return NULL;
    for (paddr_t pa = ALIGN_DOWN(phys, PAGE_SIZE); pa < end; pa += PAGE_SIZE) {
        vaddr_t va = hhdm_offset + pa;
        paddr_t have = paging_translate_in(&kernel_as, va);
        if (have == pa)
            continue;
        if (have != PAGING_NO_MAPPING)
            return NULL; /* the HHDM slot maps something else: never read through it */
        /* Recorded first, so a page is never mapped without being
         * remembered; a page recorded but then not mapped is harmless
         * (unmapping it finds nothing). */
        if (!record(c, va) || paging_map_in(&kernel_as, pa, va, PAGE_SIZE, PAGE_NX, CACHE_WB, 0))
            return NULL;
    }
    return (const void *)(uintptr_t)(hhdm_offset + phys);
}

void acpi_unmap_kernel(struct acpi_map_ctx *c)
{
    for (uint32_t i = 0; i < c->runs; i++)
        for (uint32_t k = 0; k < c->run[i].pages; k++)
            paging_unmap_in(&kernel_as, c->run[i].va + k * PAGE_SIZE, PAGE_SIZE);
    c->runs = 0;
}

const char *acpi_boot_cpus(struct acpi_cpus *out)
{
    struct acpi_map_ctx c = {0};
    const char *err = acpi_madt_cpus(&boot_ctx, acpi_map_kernel, &c, out);
    acpi_unmap_kernel(&c);
    return err;
}
