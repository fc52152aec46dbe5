/* Host tests of mm/mapper: mapper_build over a fake kernel layout and memory
 * map, checked through paging_query; mapper_alloc_stack's guard pages. */
#include <criterion/criterion.h>

#include "mm/frame.h"
#include "mm/mapper.h"
#include "mm/mm.h"
#include "mm/paging.h"
#include "support.h"

#define KVIRT   0xffffffff80200000ULL
#define KPHYS   0x0000000001000000ULL /* 16 MiB: Limine puts the kernel anywhere */
#define HHDM    0xffff800000000000ULL
#define FB_PHYS 0x00000000fd000000ULL
#define FB_SIZE (1280ULL * 4 * 800)

/* Physical memory as QEMU -m 4G with -M pc reports it (the part that matters). */
static const struct mem_region map_4g[] = {
    {0x0, 0x9f000, MEM_USABLE},
    {0x9f000, 0x61000, MEM_RESERVED},
    {0x100000, 0xf00000, MEM_USABLE},
    {KPHYS, 0x40000, MEM_KERNEL},
    {KPHYS + 0x40000, 0xbefc0000 - KPHYS - 0x40000, MEM_USABLE},
    {0xbefc0000, 0x20000, MEM_BOOTLOADER_RECLAIMABLE},
    {0xbefe0000, 0x20000, MEM_ACPI_RECLAIMABLE},
    {0xbf000000, 0x1000000, MEM_RESERVED},
    {FB_PHYS, 0x3e8000, MEM_FRAMEBUFFER},
    {0xfffc0000, 0x40000, MEM_RESERVED},
    {0x100000000, 0x40000000, MEM_USABLE},
};

static struct mapper_layout layout;
static struct addrspace as;
static struct mapper_result res;

static void setup(void)
{
    /* The arena stands for the first 64 MiB; page tables come from there. */
    host_arena_init(MiB(64));
    struct mem_region fmap[] = {
        {0, MiB(1), MEM_RESERVED},
        {MiB(1), MiB(63), MEM_USABLE},
    };
    frame_init(fmap, 2);
    host_cpu_1g_pages = true;
    layout = (struct mapper_layout){
        .kernel_phys = KPHYS,
        .kernel_virt = KVIRT,
        .text_start = KVIRT,
        .text_end = KVIRT + 0x18000,
        .rodata_start = KVIRT + 0x18000,
        .rodata_end = KVIRT + 0x20000,
        .data_start = KVIRT + 0x20000,
        .data_end = KVIRT + 0x40000,
        .map = map_4g,
        .map_count = ARRAY_SIZE(map_4g),
        .hhdm_offset = HHDM,
        .fb_phys = FB_PHYS,
        .fb_size = FB_SIZE,
    };
}

static void teardown(void)
{
    host_arena_free();
}

TestSuite(mapper, .init = setup, .fini = teardown);

static struct paging_mapping q(vaddr_t va)
{
    struct paging_mapping m = {0};
    cr_assert(paging_query(&as, va, &m), "nothing mapped at %#llx", (unsigned long long)va);
    return m;
}

static bool mapped(vaddr_t va)
{
    return paging_query(&as, va, NULL);
}

Test(mapper, kernel_sections_w_xor_x)
{
    cr_assert_eq(mapper_build(&as, &layout, &res), 0);
    struct paging_mapping m;
    for (vaddr_t va = layout.text_start; va < layout.text_end; va += PAGE_SIZE) {
        m = q(va);
        cr_assert_eq(m.phys, KPHYS + (va - KVIRT));
        cr_assert(!(m.flags & PAGE_WRITABLE), "text writable");
        cr_assert(!(m.flags & PAGE_NX), "text not executable");
    }
    for (vaddr_t va = layout.rodata_start; va < layout.rodata_end; va += PAGE_SIZE) {
        m = q(va);
        cr_assert_eq(m.phys, KPHYS + (va - KVIRT));
        cr_assert_eq(m.flags & (PAGE_WRITABLE | PAGE_NX), PAGE_NX, "rodata R+NX");
    }
    for (vaddr_t va = layout.data_start; va < layout.data_end; va += PAGE_SIZE) {
        m = q(va);
        cr_assert_eq(m.phys, KPHYS + (va - KVIRT));
        cr_assert_eq(m.flags & (PAGE_WRITABLE | PAGE_NX), PAGE_WRITABLE | PAGE_NX, "data RW+NX");
        cr_assert_eq(m.cache, CACHE_WB);
    }
    cr_assert(!mapped(layout.text_start - PAGE_SIZE));
    cr_assert(!mapped(layout.data_end));
}

Test(mapper, hhdm_translations)
{
    cr_assert_eq(mapper_build(&as, &layout, &res), 0);
    paddr_t probes[] = {0x0, 0x1234, 0x9e000, 0x100000, 0x7ffff8,
                        0x40000000, 0xbefc0000, 0xbefe0fff, 0x100000000, 0x13fffffff};
    for (size_t k = 0; k < ARRAY_SIZE(probes); k++) {
        struct paging_mapping m = q(HHDM + probes[k]);
        cr_assert_eq(m.phys, probes[k]);
        cr_assert_eq(m.flags & (PAGE_WRITABLE | PAGE_NX | PAGE_USER), PAGE_WRITABLE | PAGE_NX);
        cr_assert_eq(m.cache, CACHE_WB);
    }
    /* The kernel image's HHDM alias is read-only and NX: W^X for every alias. */
    struct paging_mapping km = q(HHDM + KPHYS + 0x1000);
    cr_assert_eq(km.phys, KPHYS + 0x1000);
    cr_assert_eq(km.flags & (PAGE_WRITABLE | PAGE_NX | PAGE_USER), PAGE_NX);
    /* Reserved ranges and holes stay out (no MMIO mapped write-back). */
    paddr_t holes[] = {0x9f000, 0xfffff, 0xbf000000, 0xc0000000, 0xfee00000, 0xfffc0000,
                       0x140000000};
    for (size_t k = 0; k < ARRAY_SIZE(holes); k++)
        cr_assert(!mapped(HHDM + holes[k]), "hole %#llx mapped", (unsigned long long)holes[k]);
    /* The framebuffer range is in the HHDM too, write-combining like its window. */
    cr_assert_eq(q(HHDM + FB_PHYS + 0x1000).cache, CACHE_WC);
    cr_assert_eq(res.hhdm_size, 0x140000000ULL);
    /* Large pages where aligned: 1 GiB for [1G, 2G) and [4G, 5G), 2 MiB in between. */
    cr_assert_eq(q(HHDM + GiB(1) + 0x5000).page_size, PAGE_SIZE_1G);
    cr_assert_eq(q(HHDM + GiB(4)).page_size, PAGE_SIZE_1G);
    cr_assert_eq(q(HHDM + MiB(32)).page_size, PAGE_SIZE_2M);
    cr_assert_eq(q(HHDM + 0x1000).page_size, PAGE_SIZE_4K);
}

Test(mapper, hhdm_without_1g_pages)
{
    host_cpu_1g_pages = false;
    cr_assert_eq(mapper_build(&as, &layout, &res), 0);
    cr_assert_eq(q(HHDM + GiB(1) + 0x5000).page_size, PAGE_SIZE_2M);
    cr_assert_eq(q(HHDM + GiB(4) + 0x12345).phys, GiB(4) + 0x12345);
    /* ~3 GiB of 2 MiB pages: a few page directories, still cheap. */
    cr_assert_lt(res.table_pages, 20 + 8, "%llu tables (8 are the windows' PDPTs)",
                 (unsigned long long)res.table_pages);
}

/* The kernel half's top level is fixed once the kernel's tables are built:
 * the HHDM's PML4 slots and the windows' (504..511) point to PDPTs, no other
 * slot does, a mapping elsewhere in the kernel half is refused, and unmapping
 * the last page below a slot (by range or page by page) leaves that entry as
 * it was, so address spaces that copy the kernel half stay valid. */
Test(mapper, kernel_half_top_level_fixed)
{
    cr_assert_eq(mapper_build(&as, &layout, &res), 0);
    const pte_t *pml4 = (const pte_t *)PHYS2VIRT(as.pml4);
    unsigned hhdm_slot = pt_index(HHDM, PT_LEVEL_PML4);
    pte_t before[PT_ENTRIES];
    for (unsigned i = 0; i < PT_ENTRIES; i++) {
        before[i] = pml4[i] & PTE_ADDR_MASK;
        bool want = i == hhdm_slot || i >= pt_index(MAPPER_WINDOWS_BASE, PT_LEVEL_PML4);
        cr_assert_eq(!!(pml4[i] & PTE_PRESENT), want, "PML4[%u]", i);
    }
    cr_assert_eq(res.table_pages, as.table_pages);
    /* One page alone in a slot of its own (the stack window's last 512 GiB). */
    vaddr_t va = MAPPER_STACK_END - GiB(512) + MiB(6);
    uint64_t tables = paging_table_pages();
    cr_assert_eq(paging_map_in(&as, 0x200000, va, PAGE_SIZE_4K, PAGE_WRITABLE, CACHE_WB, 0), 0);
    cr_assert_eq(paging_unmap_in(&as, va, PAGE_SIZE_4K), 0);
    cr_assert_eq(paging_map_range(&as, 0x200000, va, MiB(4), PAGE_WRITABLE, CACHE_WB, 0), 0);
    cr_assert_eq(paging_unmap_range(&as, va, MiB(4)), 0);
    cr_assert_eq(paging_table_pages(), tables, "the PD and PTs went back, nothing more");
    /* A kernel-half slot without a PDPT stays without: refused. */
    vaddr_t stray = HHDM + GiB(512) * 3;
    cr_assert_eq(paging_map_in(&as, 0x200000, stray, PAGE_SIZE_4K, PAGE_WRITABLE, CACHE_WB, 0),
                 -PAGING_EINVAL);
    cr_assert_eq(paging_map_range(&as, 0x200000, stray, MiB(4), PAGE_WRITABLE, CACHE_WB,
                                  PAGING_LARGE), -PAGING_EINVAL);
    for (unsigned i = 0; i < PT_ENTRIES; i++)
        cr_assert_eq(pml4[i] & PTE_ADDR_MASK, before[i], "PML4[%u] changed", i);
    cr_assert_eq(paging_table_pages(), tables);
    /* The user half still gives its tables back entirely. */
    cr_assert_eq(paging_map_in(&as, 0x200000, 0x400000, PAGE_SIZE_4K, PAGE_WRITABLE, CACHE_WB, 0),
                 0);
    cr_assert_eq(paging_unmap_in(&as, 0x400000, PAGE_SIZE_4K), 0);
    cr_assert(!(pml4[0] & PTE_PRESENT));
    cr_assert_eq(paging_table_pages(), tables);
}

/* Switching to the kernel's tables flushes global TLB entries too: a CR3 load
 * alone keeps the bootloader's global translations (CR4.PGE). */
Test(mapper, install_flushes_global_tlb_entries)
{
    cr_assert_eq(mapper_build(&as, &layout, &res), 0);
    host_tlb_global_entries = 3; /* cached from the bootloader's tables */
    mapper_install(&as, &res);
    cr_assert_eq(host_tlb_global_entries, 0, "global TLB entries survived the switch");
}

Test(mapper, framebuffer_window_wc)
{
    cr_assert_eq(mapper_build(&as, &layout, &res), 0);
    cr_assert_geq(res.fb_virt, MAPPER_FB_BASE);
    cr_assert_lt(res.fb_virt, MAPPER_STACK_BASE);
    for (uint64_t off = 0; off < FB_SIZE; off += 0x10000) {
        struct paging_mapping m = q(res.fb_virt + off);
        cr_assert_eq(m.phys, FB_PHYS + off);
        cr_assert_eq(m.cache, CACHE_WC);
        cr_assert_eq(m.flags & (PAGE_WRITABLE | PAGE_NX | PAGE_USER), PAGE_WRITABLE | PAGE_NX);
    }
    cr_assert_eq(q(res.fb_virt).page_size, PAGE_SIZE_2M, "0xfd000000 is 2 MiB aligned");
    mapper_install(&as, &res);
    cr_assert_eq((vaddr_t)mapper_framebuffer(), res.fb_virt);
    cr_assert(paging_is_active(&kernel_as));
    cr_assert_eq(hhdm_size, res.hhdm_size);
}

Test(mapper, unaligned_framebuffer_and_none)
{
    layout.fb_phys = 0x80000123; /* inside usable RAM, odd offset */
    cr_assert_eq(mapper_build(&as, &layout, &res), 0);
    cr_assert_eq(paging_translate_in(&as, res.fb_virt), 0x80000123);
    cr_assert_eq(paging_translate_in(&as, res.fb_virt + FB_SIZE - 1), 0x80000123 + FB_SIZE - 1);
    paging_as_destroy(&as);
    layout.fb_size = 0;
    cr_assert_eq(mapper_build(&as, &layout, &res), 0);
    cr_assert_eq(res.fb_virt, 0);
}

Test(mapper, nothing_user_nothing_low)
{
    cr_assert_eq(mapper_build(&as, &layout, &res), 0);
    cr_assert(!mapped(0), "virtual 0");
    cr_assert(!mapped(0x1000));
    cr_assert(!mapped(KPHYS), "no identity map of the kernel");
    const pte_t *pml4 = PHYS2VIRT(as.pml4);
    for (unsigned i = 0; i < 256; i++)
        cr_assert_eq(pml4[i], 0, "lower-half PML4 entry %u", i);
    /* No entry at any level carries USER. */
    for (unsigned i = 256; i < 512; i++) {
        cr_assert_eq(pml4[i] & PTE_USER, 0);
        if (!pte_present(pml4[i]))
            continue;
        const pte_t *pdpt = PHYS2VIRT(pte_addr(pml4[i], 4));
        for (unsigned j = 0; j < 512; j++) {
            cr_assert_eq(pdpt[j] & PTE_USER, 0);
            if (!pte_present(pdpt[j]) || pte_is_leaf(pdpt[j], 3))
                continue;
            const pte_t *pd = PHYS2VIRT(pte_addr(pdpt[j], 3));
            for (unsigned k = 0; k < 512; k++) {
                cr_assert_eq(pd[k] & PTE_USER, 0);
                if (!pte_present(pd[k]) || pte_is_leaf(pd[k], 2))
                    continue;
                const pte_t *pt = PHYS2VIRT(pte_addr(pd[k], 2));
                for (unsigned m = 0; m < 512; m++)
                    cr_assert_eq(pt[m] & PTE_USER, 0);
            }
        }
    }
}

Test(mapper, few_page_tables)
{
    cr_assert_eq(mapper_build(&as, &layout, &res), 0);
    cr_assert_eq(res.table_pages, as.table_pages);
    cr_assert_eq(res.table_pages, paging_table_pages());
    /* PML4; HHDM: PDPT + 2 PDs (first and fourth GiB) + PTs for the 4 KiB
     * edges; the windows' 8 PDPTs (the kernel's and framebuffer's among
     * them); kernel: PD + PT; framebuffer: PD + PT. */
    cr_assert_leq(res.table_pages, 16 + 6, "%llu tables", (unsigned long long)res.table_pages);
    cr_assert(host_log_contains("page tables:"), "%s", host_log);
    cr_assert(host_log_contains("text"), "%s", host_log);
    cr_assert(host_log_contains("R-X"), "%s", host_log);
}

Test(mapper, bad_layouts_leak_nothing)
{
    struct frame_stats before, after;
    frame_get_stats(&before);
    struct mapper_layout bad = layout;
    bad.text_end = bad.text_start + 0x800; /* unaligned */
    cr_assert_eq(mapper_build(&as, &bad, &res), -PAGING_EINVAL);
    bad = layout;
    bad.rodata_start = bad.text_start; /* overlapping sections */
    cr_assert_eq(mapper_build(&as, &bad, &res), -PAGING_EINVAL);
    bad = layout;
    struct mem_region unsorted[] = {{MiB(8), MiB(1), MEM_USABLE}, {MiB(2), MiB(1), MEM_USABLE}};
    bad.map = unsorted;
    bad.map_count = 2;
    cr_assert_eq(mapper_build(&as, &bad, &res), -PAGING_EINVAL);
    bad = layout;
    struct mem_region huge[] = {{0, 0x0000800000000000ULL, MEM_USABLE}}; /* 128 TiB of "RAM" */
    bad.map = huge;
    bad.map_count = 1;
    cr_assert_eq(mapper_build(&as, &bad, &res), -PAGING_EINVAL, "HHDM past its window");
    frame_get_stats(&after);
    cr_assert_eq(after.free_frames, before.free_frames);
    cr_assert_eq(paging_table_pages(), 0);
}

Test(mapper, stacks_have_guard_pages)
{
    cr_assert_eq(mapper_build(&as, &layout, &res), 0);
    mapper_install(&as, &res);
    vaddr_t t1 = mapper_alloc_stack(4);
    vaddr_t t2 = mapper_alloc_stack(2);
    cr_assert_neq(t1, 0);
    cr_assert_neq(t2, 0);
    cr_assert_geq(t1 - 4 * PAGE_SIZE - PAGE_SIZE, MAPPER_STACK_BASE);
    for (unsigned i = 1; i <= 4; i++) {
        struct paging_mapping m;
        cr_assert(paging_query(&kernel_as, t1 - i * PAGE_SIZE, &m));
        cr_assert_eq(m.flags & (PAGE_WRITABLE | PAGE_NX | PAGE_USER), PAGE_WRITABLE | PAGE_NX);
        cr_assert_eq(*(uint64_t *)PHYS2VIRT(m.phys), 0, "zeroed");
    }
    cr_assert(!paging_query(&kernel_as, t1 - 5 * PAGE_SIZE, NULL), "guard below stack 1");
    cr_assert(!paging_query(&kernel_as, t1, NULL), "guard above (below stack 2)");
    cr_assert_eq(t2, t1 + 3 * PAGE_SIZE);
    cr_assert(!paging_query(&kernel_as, t2 - 3 * PAGE_SIZE, NULL), "guard below stack 2");
    cr_assert(paging_query(&kernel_as, t2 - PAGE_SIZE, NULL));
    cr_assert_eq(mapper_alloc_stack(0), 0);
}

Test(mapper, stack_out_of_memory_leaks_nothing)
{
    cr_assert_eq(mapper_build(&as, &layout, &res), 0);
    mapper_install(&as, &res);
    struct frame_stats fs;
    frame_get_stats(&fs);
    uint64_t tables = paging_table_pages();
    cr_assert_eq(mapper_alloc_stack(fs.free_frames + 1), 0);
    struct frame_stats after;
    frame_get_stats(&after);
    cr_assert_eq(after.free_frames, fs.free_frames);
    cr_assert_eq(paging_table_pages(), tables);
}
