/* In-kernel self-tests of the MADT path (boot/acpi.c through
 * arch/x86_64/acpi_map.c) on the firmware's real tables: the CPUs QEMU's -smp
 * gives are listed, every online CPU among them, the temporary mappings are gone
 * afterwards, and a corrupted copy of the real MADT is refused with its line.
 * The host tests (tests/host/test_acpi.c) cover every malformed case. */
#include "arch/x86_64/acpi_map.h"
#include "arch/x86_64/cpu_local.h"
#include "arch/x86_64/lapic.h"
#include "arch/x86_64/mmu_ops.h"
#include "arch/x86_64/smp.h"
#include "boot/acpi.h"
#include "boot/boot_info.h"
#include "lib/printf.h"
#include "lib/string.h"
#include "mm/mapper.h"
#include "mm/memregion.h"
#include "mm/mm.h"
#include "mm/paging.h"
#include "test/ktest.h"

/* True when the bootloader gave an RSDP. Every GRUB boot must: QEMU's
 * firmware always has ACPI and GRUB passes it on. */
static bool have_rsdp(void)
{
    if (boot_ctx.rsdp || boot_ctx.rsdp_is_copy)
        return true;
    KT_EXPECT(boot_ctx.protocol != BOOT_PROTO_MULTIBOOT2, "GRUB gave no ACPI RSDP");
    kprintf("acpi: no RSDP from the bootloader: nothing to parse\n");
    return false;
}

KTEST(acpi_madt_lists_this_cpu)
{
    if (!have_rsdp())
        return;
    uint64_t tables = paging_table_pages();
    struct acpi_cpus c;
    memset(&c, 0, sizeof(c));
    struct acpi_map_ctx mc = {0}, mapped;
    const char *err = acpi_madt_cpus(&boot_ctx, acpi_map_kernel, &mc, &c);
    mapped = mc;
    uint32_t runs = mc.runs, pages = 0;
    for (uint32_t i = 0; i < mc.runs; i++)
        pages += mc.run[i].pages;
    acpi_unmap_kernel(&mc);
    KT_ASSERT(err == NULL, "%s", err);
    memset(&c, 0, sizeof(c));
    err = acpi_boot_cpus(&c);
    KT_ASSERT(err == NULL, "%s", err);
    /* The pages the parse mapped for itself (the same in both parses) are
     * unmapped again, and no page-table page is left behind. */
    for (uint32_t i = 0; i < mapped.runs; i++)
        for (uint32_t k = 0; k < mapped.run[i].pages; k++)
            KT_EXPECT(paging_translate_in(&kernel_as, mapped.run[i].va + k * PAGE_SIZE) ==
                          PAGING_NO_MAPPING, "%#llx still mapped after the parse",
                      (unsigned long long)(mapped.run[i].va + k * PAGE_SIZE));
    KT_EXPECT(paging_table_pages() == tables, "page-table pages %llu -> %llu",
              (unsigned long long)tables, (unsigned long long)paging_table_pages());
    uint32_t me = lapic_id();
    kprintf("acpi: MADT lists %u CPUs (%u kept), local APIC at %#llx, 8259 PICs %s, "
            "this CPU has APIC ID %u; %u pages in %u runs mapped for the parse\n", c.listed,
            c.count, (unsigned long long)c.lapic_phys, c.pcat_compat ? "present" : "absent", me,
            pages, runs);
    KT_EXPECT(c.count >= 1 && c.count <= CPU_MAX && c.count <= c.listed, "count %u listed %u",
              c.count, c.listed);
    bool found = false;
    for (uint32_t i = 0; i < c.count; i++)
        found |= c.apic_id[i] == me;
    KT_EXPECT(found, "this CPU's APIC ID %u is not in the MADT", me);
    KT_EXPECT(c.lapic_phys && IS_ALIGNED(c.lapic_phys, PAGE_SIZE), "lapic_phys %#llx",
              (unsigned long long)c.lapic_phys);
}

/* Each online CPU's APIC ID, by CPU index (filled by smp_run_on_all). */
static uint32_t online_ids[CPU_MAX];

static void record_apic_id(void *arg)
{
    (void)arg;
    online_ids[cpu_index()] = lapic_id();
}

KTEST(acpi_madt_lists_every_online_cpu)
{
    if (!have_rsdp())
        return;
    struct acpi_cpus c;
    const char *err = acpi_boot_cpus(&c);
    KT_ASSERT(err == NULL, "%s", err);
    memset(online_ids, 0xff, sizeof(online_ids));
    smp_run_on_all(record_apic_id, NULL);
    unsigned online = 0;
    for (unsigned i = 0; i < CPU_MAX; i++) {
        if (!smp_cpu_online(i))
            continue;
        online++;
        bool found = false;
        for (uint32_t k = 0; k < c.count; k++)
            found |= c.apic_id[k] == online_ids[i];
        /* Beyond CPU_MAX the kept list is a prefix: Limine may have started
         * a CPU the MADT lists further on. */
        KT_EXPECT(found || c.listed > CPU_MAX, "CPU %u (APIC ID %u) is not in the MADT", i,
                  online_ids[i]);
    }
    KT_EXPECT(online >= 1 && online <= c.count, "%u CPUs online, the MADT keeps %u", online,
              c.count);
    kprintf("acpi: all %u online CPUs are in the MADT's list of %u\n", online, c.count);
}

/* A map function serving the real tables, except that the MADT comes from a
 * copy that `corrupt` changes. */
struct bent {
    struct acpi_map_ctx real;
    void (*corrupt)(uint8_t *madt, uint32_t len);
    uint8_t copy[4096];
    uint32_t copied; /* length of the MADT copy served, 0 before */
};

static const void *map_bent(paddr_t phys, size_t len, void *ctx)
{
    struct bent *b = ctx;
    const uint8_t *p = acpi_map_kernel(phys, len, &b->real);
    if (!p || len <= 36 || memcmp(p, "APIC", 4) != 0 || len > sizeof(b->copy))
        return p;
    memcpy(b->copy, p, len);
    b->corrupt(b->copy, (uint32_t)len);
    b->copied = (uint32_t)len;
    return b->copy;
}

static void flip_oem_byte(uint8_t *madt, uint32_t len)
{
    (void)len;
    madt[10]++; /* the OEM ID: only the checksum notices */
}

/* The first entry's length becomes 0; the checksum is made right again. */
static void zero_first_entry(uint8_t *madt, uint32_t len)
{
    madt[44 + 1] = 0;
    madt[9] = 0;
    uint8_t s = 0;
    for (uint32_t i = 0; i < len; i++)
        s = (uint8_t)(s + madt[i]);
    madt[9] = (uint8_t)-s;
}

static const char *parse_bent(struct bent *b, struct acpi_cpus *c)
{
    const char *err = acpi_madt_cpus(&boot_ctx, map_bent, b, c);
    acpi_unmap_kernel(&b->real);
    return err;
}

KTEST(acpi_corrupted_madt_copy_refused)
{
    if (!have_rsdp())
        return;
    static struct bent b;
    struct acpi_cpus c, before;
    memset(&c, 0x5a, sizeof(c));
    memcpy(&before, &c, sizeof(c));
    char want[160];

    memset(&b, 0, sizeof(b));
    b.corrupt = flip_oem_byte;
    const char *err = parse_bent(&b, &c);
    KT_ASSERT(b.copied > 44, "the MADT was never mapped in full");
    ksnprintf(want, sizeof(want), "acpi: MADT checksum bad (its %u bytes sum to 0x1, not 0)",
              b.copied);
    KT_EXPECT(err && strcmp(err, want) == 0, "got: %s", err ? err : "(accepted)");

    memset(&b, 0, sizeof(b));
    b.corrupt = zero_first_entry;
    err = parse_bent(&b, &c);
    KT_EXPECT(err && strcmp(err, "acpi: MADT entry at offset 44 has length 0 (less than 2)") == 0,
              "got: %s", err ? err : "(accepted)");
    KT_EXPECT(memcmp(&c, &before, sizeof(c)) == 0, "*out written on failure");
}

/* The lowest page of reserved memory the HHDM leaves unmapped, 0 if none. */
static paddr_t unmapped_reserved_page(void)
{
    for (size_t i = 0; i < boot_ctx.memmap_count; i++) {
        const struct mem_region *r = &boot_ctx.memmap[i];
        if (r->type != MEM_RESERVED)
            continue;
        for (paddr_t pa = ALIGN_UP(r->base, PAGE_SIZE); pa + PAGE_SIZE <= r->base + r->length;
             pa += PAGE_SIZE)
            if (pa && paging_translate_in(&kernel_as, hhdm_offset + pa) == PAGING_NO_MAPPING)
                return pa;
    }
    return 0;
}

KTEST(acpi_map_kernel_maps_reserved_read_only_for_one_parse)
{
    struct acpi_map_ctx mc = {0};
    KT_EXPECT(acpi_map_kernel(UINT64_MAX - 8, 16, &mc) == NULL, "a wrapping range was mapped");
    KT_EXPECT(acpi_map_kernel(1ULL << 52, 16, &mc) == NULL, "beyond the physical width");
    KT_EXPECT(mc.runs == 0);
    paddr_t pa = unmapped_reserved_page();
    if (!pa) {
        kprintf("acpi: no unmapped reserved page in this machine's map: mapping not tested\n");
        return;
    }
    uint64_t tables = paging_table_pages();
    const void *p = acpi_map_kernel(pa + 16, 32, &mc);
    KT_ASSERT(p == (const void *)(uintptr_t)(hhdm_offset + pa + 16), "pointer %p for %#llx", p,
              (unsigned long long)pa);
    struct paging_mapping m;
    KT_ASSERT(paging_query(&kernel_as, hhdm_offset + pa, &m));
    KT_EXPECT(m.phys == pa && !(m.flags & PAGE_WRITABLE) && (m.flags & PAGE_NX) &&
                  m.cache == CACHE_WB, "phys %#llx flags %#llx cache %d",
              (unsigned long long)m.phys, (unsigned long long)m.flags, m.cache);
    KT_EXPECT(mc.runs == 1 && mc.run[0].pages == 1, "%u runs", mc.runs);
    /* Asked again (as the parser does: header, then the whole table): nothing new. */
    KT_EXPECT(acpi_map_kernel(pa, PAGE_SIZE, &mc) == p - 16);
    KT_EXPECT(mc.runs == 1 && mc.run[0].pages == 1, "%u runs", mc.runs);
    acpi_unmap_kernel(&mc);
    KT_EXPECT(mc.runs == 0);
    KT_EXPECT(paging_translate_in(&kernel_as, hhdm_offset + pa) == PAGING_NO_MAPPING,
              "still mapped after acpi_unmap_kernel");
    KT_EXPECT(paging_table_pages() == tables, "page-table pages %llu -> %llu",
              (unsigned long long)tables, (unsigned long long)paging_table_pages());
}

/* A physical window of `len` bytes from 4 GiB up (1 GiB steps) that no memory
 * map entry touches and the HHDM does not map, inside the physical address
 * width: nothing lives there, so mapping it (without ever reading it) only
 * exercises the bookkeeping. 0 if none. */
static paddr_t free_window(uint64_t len)
{
    for (paddr_t base = GiB(4); base + len <= (1ULL << arch_phys_addr_bits()) &&
                                hhdm_offset + base + len <= MAPPER_HHDM_LIMIT;
         base += GiB(1)) {
        bool clear = true;
        for (size_t i = 0; i < boot_ctx.memmap_count && clear; i++) {
            const struct mem_region *r = &boot_ctx.memmap[i];
            clear = r->base >= base + len || r->base + r->length <= base;
        }
        for (paddr_t pa = base; pa < base + len && clear; pa += PAGE_SIZE)
            clear = paging_translate_in(&kernel_as, hhdm_offset + pa) == PAGING_NO_MAPPING;
        if (clear)
            return base;
    }
    return 0;
}

KTEST(acpi_map_kernel_remembers_every_page_it_maps)
{
    static struct acpi_map_ctx mc;
    paddr_t base = free_window(MiB(1));
    if (!base) {
        kprintf("acpi: no free physical window for the bookkeeping test\n");
        return;
    }
    uint64_t tables = paging_table_pages();
    memset(&mc, 0, sizeof(mc));
    /* A page either side of a gap: a run each, until the table is full. */
    for (uint32_t i = 0; i < ACPI_MAP_RUNS; i++)
        KT_ASSERT(acpi_map_kernel(base + 2 * i * PAGE_SIZE, 8, &mc), "page %u refused", i);
    KT_EXPECT(mc.runs == ACPI_MAP_RUNS, "%u runs", mc.runs);
    /* One more run does not fit: refused, and not mapped behind our back. */
    paddr_t extra = base + (2 * ACPI_MAP_RUNS + 1) * PAGE_SIZE;
    KT_EXPECT(acpi_map_kernel(extra, 8, &mc) == NULL, "a run beyond the table was accepted");
    KT_EXPECT(paging_translate_in(&kernel_as, hhdm_offset + extra) == PAGING_NO_MAPPING);
    /* A page next to a run extends it, at its end or its start. */
    KT_EXPECT(acpi_map_kernel(base + PAGE_SIZE, 8, &mc) != NULL);
    KT_EXPECT(mc.runs == ACPI_MAP_RUNS && mc.run[0].pages == 2, "%u runs, %u pages", mc.runs,
              mc.run[0].pages);
    acpi_unmap_kernel(&mc);
    KT_EXPECT(acpi_map_kernel(base + 5 * PAGE_SIZE, 8, &mc) != NULL);
    KT_EXPECT(acpi_map_kernel(base + 4 * PAGE_SIZE, 8, &mc) != NULL);
    KT_EXPECT(mc.runs == 1 && mc.run[0].va == hhdm_offset + base + 4 * PAGE_SIZE &&
                  mc.run[0].pages == 2, "%u runs", mc.runs);
    acpi_unmap_kernel(&mc);
    for (paddr_t pa = base; pa < base + MiB(1); pa += PAGE_SIZE)
        KT_EXPECT(paging_translate_in(&kernel_as, hhdm_offset + pa) == PAGING_NO_MAPPING,
                  "%#llx still mapped", (unsigned long long)pa);
    KT_EXPECT(paging_table_pages() == tables, "page-table pages %llu -> %llu",
              (unsigned long long)tables, (unsigned long long)paging_table_pages());
}
