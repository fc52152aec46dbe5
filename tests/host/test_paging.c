/* Host tests of mm/paging (and the entry encoding in mm/pte.h) on a simulated
 * physical memory: the page tables live in the host arena, frames come from
 * the real frame allocator. Mapped physical addresses need not exist: only
 * the tables are ever touched. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "arch/x86_64/mmu_ops.h"
#include "mm/frame.h"
#include "mm/mm.h"
#include "mm/pagewalk.h"
#include "mm/paging.h"
#include "mm/pte.h"
#include "support.h"

static struct addrspace as;

static uint64_t free_frames(void)
{
    struct frame_stats fs;
    frame_get_stats(&fs);
    return fs.free_frames;
}

static void setup(void)
{
    host_arena_init(MiB(64));
    struct mem_region map[] = {
        {0, MiB(1), MEM_RESERVED},
        {MiB(1), MiB(63), MEM_USABLE},
    };
    frame_init(map, 2);
    host_cpu_1g_pages = true;
    cr_assert_eq(paging_as_create(&as), 0);
}

static void teardown(void)
{
    host_arena_free();
}

TestSuite(paging, .init = setup, .fini = teardown);

#define VA_LOW  0x0000400000000000ULL /* 64 TiB: 1 GiB aligned, lower half */
#define VA_HIGH 0xffffc00000000000ULL /* upper half */
#define PA      0x0000000123400000ULL /* 2 MiB aligned */
#define PA_1G   0x0000000840000000ULL /* 1 GiB aligned */
#define RW_NX   (PAGE_WRITABLE | PAGE_NX)

static struct paging_mapping query(vaddr_t va)
{
    struct paging_mapping m = {0};
    cr_assert(paging_query(&as, va, &m), "no mapping at %#llx", (unsigned long long)va);
    return m;
}

/* ---- entry encoding -------------------------------------------------------------- */

Test(paging, pte_encoding_round_trip)
{
    for (unsigned idx = 0; idx < 8; idx++) {
        for (int level = PT_LEVEL_PT; level <= PT_LEVEL_PDPT; level++) {
            paddr_t pa = PA_1G;
            pte_t e = pte_make_leaf(pa, PTE_WRITABLE | PTE_NX, idx, level);
            cr_assert(pte_present(e));
            cr_assert(pte_is_leaf(e, level));
            cr_assert_eq(pte_addr(e, level), pa);
            cr_assert_eq(pte_cache_index(e, level), idx);
            pte_t pat = level == PT_LEVEL_PT ? (1ULL << 7) : (1ULL << 12);
            cr_assert_eq((e & pat) != 0, (idx & 4) != 0, "PAT bit position at level %d", level);
            cr_assert_eq((e & (1ULL << 3)) != 0, (idx & 1) != 0);
            cr_assert_eq((e & (1ULL << 4)) != 0, (idx & 2) != 0);
            cr_assert_eq((e & PTE_PS) != 0, level != PT_LEVEL_PT || (idx & 4));
        }
    }
    pte_t t = pte_make_table(0x5000, PTE_WRITABLE | PTE_NX | PTE_USER);
    cr_assert_eq(t, 0x5000 | PTE_PRESENT | PTE_WRITABLE | PTE_USER, "tables never NX");
    cr_assert(!pte_is_leaf(t, PT_LEVEL_PD));
}

Test(paging, pte_split_child_moves_pat_bit)
{
    pte_t big = pte_make_leaf(PA_1G, PTE_WRITABLE | PTE_NX | PTE_GLOBAL, CACHE_WC, PT_LEVEL_PDPT);
    for (unsigned i = 0; i < PT_ENTRIES; i += 97) {
        pte_t c = pte_split_child(big, PT_LEVEL_PDPT, i);
        cr_assert(pte_is_leaf(c, PT_LEVEL_PD));
        cr_assert_eq(pte_addr(c, PT_LEVEL_PD), PA_1G + i * MiB(2));
        cr_assert_eq(pte_cache_index(c, PT_LEVEL_PD), CACHE_WC);
        pte_t g = pte_split_child(c, PT_LEVEL_PD, i);
        cr_assert_eq(pte_addr(g, PT_LEVEL_PT), PA_1G + i * MiB(2) + i * PAGE_SIZE);
        cr_assert_eq(pte_cache_index(g, PT_LEVEL_PT), CACHE_WC);
        cr_assert(g & PTE_PAT_4K, "WC keeps its PAT bit, now at bit 7");
        cr_assert_eq(g & (PTE_WRITABLE | PTE_NX | PTE_GLOBAL), PTE_WRITABLE | PTE_NX | PTE_GLOBAL);
    }
}

/* ---- map / translate / unmap ------------------------------------------------------ */

static void map_translate_unmap(vaddr_t va, paddr_t pa, uint64_t size)
{
    uint64_t base_tables = paging_table_pages(), base_free = free_frames();
    cr_assert_eq(paging_map_in(&as, pa, va, size, RW_NX, CACHE_WB, 0), 0);
    cr_assert_gt(paging_table_pages(), base_tables);
    uint64_t offs[] = {0, 0x123, size / 2 + 8, size - 1};
    for (size_t k = 0; k < ARRAY_SIZE(offs); k++)
        cr_assert_eq(paging_translate_in(&as, va + offs[k]), pa + offs[k]);
    cr_assert_eq(paging_translate_in(&as, va + size), PAGING_NO_MAPPING);
    cr_assert_eq(paging_translate_in(&as, va - 1), PAGING_NO_MAPPING);
    struct paging_mapping m = query(va);
    cr_assert_eq(m.page_size, size);
    cr_assert_eq(m.flags, PAGE_PRESENT | PAGE_WRITABLE | PAGE_NX);
    cr_assert_eq(m.cache, CACHE_WB);

    cr_assert_eq(paging_unmap_in(&as, va, size), 0);
    cr_assert_eq(paging_translate_in(&as, va), PAGING_NO_MAPPING);
    cr_assert_eq(paging_unmap_in(&as, va, size), -PAGING_ENOENT);
    cr_assert_eq(paging_table_pages(), base_tables, "tables reclaimed");
    cr_assert_eq(free_frames(), base_free);
    cr_assert_eq(as.table_pages, 1);
}

Test(paging, map_4k) { map_translate_unmap(VA_LOW + 0x7000, PA + 0x3000, PAGE_SIZE_4K); }
Test(paging, map_2m) { map_translate_unmap(VA_LOW + MiB(6), PA, PAGE_SIZE_2M); }
Test(paging, map_1g) { map_translate_unmap(VA_HIGH + GiB(3), PA_1G, PAGE_SIZE_1G); }
Test(paging, map_top_page) { map_translate_unmap(0xfffffffffffff000ULL, PA, PAGE_SIZE_4K); }

Test(paging, one_gig_needs_cpu_support)
{
    host_cpu_1g_pages = false;
    cr_assert_eq(paging_map_in(&as, PA_1G, VA_LOW, PAGE_SIZE_1G, 0, CACHE_WB, 0), -PAGING_ENOTSUP);
    cr_assert_eq(as.table_pages, 1);
    /* map_range with PAGING_LARGE falls back to 2 MiB pages. */
    cr_assert_eq(paging_map_range(&as, PA_1G, VA_LOW, GiB(1), 0, CACHE_WB, PAGING_LARGE), 0);
    cr_assert_eq(query(VA_LOW + MiB(100)).page_size, PAGE_SIZE_2M);
}

Test(paging, seed_wrappers_use_kernel_as)
{
    kernel_as = as;
    cr_assert_eq(paging_map(PA, VA_HIGH, PAGE_WRITABLE), 0);
    cr_assert_eq(paging_translate(VA_HIGH + 5), PA + 5);
    cr_assert_eq(paging_map(PA, VA_HIGH, PAGE_WRITABLE), -PAGING_EEXIST);
    host_log_clear();
    paging_walk_print(VA_HIGH + 5);
    cr_assert(host_log_contains("PML4"), "%s", host_log);
    cr_assert(host_log_contains("PT  ["), "%s", host_log);
    cr_assert(host_log_contains("4 KiB page"), "%s", host_log);
    cr_assert_eq(paging_unmap(VA_HIGH + 5), 0, "unaligned address: its page");
    cr_assert_eq(paging_translate(VA_HIGH), PAGING_NO_MAPPING);
    host_log_clear();
    paging_walk_print(VA_HIGH);
    cr_assert(host_log_contains("not present: stops here"), "%s", host_log);
}

Test(paging, invalid_arguments)
{
    cr_assert_eq(paging_map_in(&as, PA, VA_LOW + 1, PAGE_SIZE_4K, 0, CACHE_WB, 0), -PAGING_EINVAL);
    cr_assert_eq(paging_map_in(&as, PA + 1, VA_LOW, PAGE_SIZE_4K, 0, CACHE_WB, 0), -PAGING_EINVAL);
    cr_assert_eq(paging_map_in(&as, PA + 0x1000, VA_LOW, PAGE_SIZE_2M, 0, CACHE_WB, 0),
                 -PAGING_EINVAL);
    cr_assert_eq(paging_map_in(&as, PA, 0x0000800000000000ULL, PAGE_SIZE_4K, 0, CACHE_WB, 0),
                 -PAGING_EINVAL, "non-canonical");
    cr_assert_eq(paging_map_in(&as, PA, VA_LOW, 8192, 0, CACHE_WB, 0), -PAGING_EINVAL);
    cr_assert_eq(paging_map_in(&as, PA, VA_LOW, PAGE_SIZE_4K, 1ULL << 9, CACHE_WB, 0),
                 -PAGING_EINVAL, "unknown flag");
    cr_assert_eq(paging_map_in(&as, PA, VA_LOW, PAGE_SIZE_4K, 0, (enum cache_mode)6, 0),
                 -PAGING_EINVAL);
    cr_assert_eq(paging_map_in(&as, PA, VA_LOW, PAGE_SIZE_4K, PAGE_NOCACHE, CACHE_WC, 0),
                 -PAGING_EINVAL, "legacy bits with an explicit cache mode");
    cr_assert_eq(paging_map_in(&as, 1ULL << 46, VA_LOW, PAGE_SIZE_4K, 0, CACHE_WB, 0),
                 -PAGING_EINVAL, "beyond MAXPHYADDR");
    cr_assert_eq(paging_map_range(&as, PA, 0x00007ffffffff000ULL, 0x2000, 0, CACHE_WB, 0),
                 -PAGING_EINVAL, "range crosses the canonical hole");
    cr_assert_eq(paging_map_range(&as, PA, VA_LOW, 0, 0, CACHE_WB, 0), -PAGING_EINVAL);
    cr_assert_eq(paging_unmap_range(&as, VA_LOW, 0x1800), -PAGING_EINVAL);
    cr_assert_eq(as.table_pages, 1, "no table created by a refused call");
    cr_assert_str_eq(paging_strerror(-PAGING_EEXIST), "EEXIST");
    cr_assert_str_eq(paging_strerror(-PAGING_ENOMEM), "ENOMEM");
    cr_assert_str_eq(paging_strerror(-99), "unknown");
    cr_assert_str_eq(paging_cache_name(CACHE_WC), "WC");
}

/* ---- cache modes and flags ---------------------------------------------------------- */

Test(paging, cache_mode_round_trip)
{
    uint64_t sizes[] = {PAGE_SIZE_4K, PAGE_SIZE_2M, PAGE_SIZE_1G};
    for (size_t s = 0; s < ARRAY_SIZE(sizes); s++) {
        for (int cm = CACHE_WB; cm <= CACHE_WC; cm++) {
            vaddr_t va = VA_LOW + GiB(1) * (uint64_t)(s * 8 + (size_t)cm);
            cr_assert_eq(paging_map_in(&as, PA_1G, va, sizes[s], PAGE_NX, (enum cache_mode)cm, 0),
                         0);
            struct paging_mapping m = query(va);
            cr_assert_eq(m.cache, (enum cache_mode)cm, "size %llu", (unsigned long long)sizes[s]);
            cr_assert_eq(m.page_size, sizes[s]);
            cr_assert_eq(m.flags, PAGE_PRESENT | PAGE_NX, "read-only, not user");
        }
    }
    /* The seed's spelling: PWT / PCD bits. */
    struct { uint64_t flags; enum cache_mode cm; } legacy[] = {
        {PAGE_WRITETHROUGH, CACHE_WT},
        {PAGE_NOCACHE, CACHE_UCMINUS},
        {PAGE_WRITETHROUGH | PAGE_NOCACHE, CACHE_UC},
    };
    for (size_t k = 0; k < ARRAY_SIZE(legacy); k++) {
        vaddr_t va = VA_HIGH + k * PAGE_SIZE;
        cr_assert_eq(paging_map_in(&as, PA, va, PAGE_SIZE_4K, legacy[k].flags, CACHE_WB, 0), 0);
        cr_assert_eq(query(va).cache, legacy[k].cm);
    }
}

Test(paging, flags_and_intermediates)
{
    cr_assert_eq(paging_map_in(&as, PA, VA_LOW, PAGE_SIZE_4K, 0, CACHE_WB, 0), 0);
    struct paging_mapping m = query(VA_LOW);
    cr_assert_eq(m.flags, PAGE_PRESENT, "read-only, executable, supervisor");
    /* The intermediates got no WRITABLE/USER for a read-only page. */
    pte_t pml4e = ((pte_t *)PHYS2VIRT(as.pml4))[pt_index(VA_LOW, PT_LEVEL_PML4)];
    cr_assert_eq(pml4e & (PTE_WRITABLE | PTE_USER | PTE_NX), 0);
    /* A user, writable neighbour widens them; the first page stays read-only. */
    cr_assert_eq(paging_map_in(&as, PA, VA_LOW + PAGE_SIZE, PAGE_SIZE_4K,
                               PAGE_WRITABLE | PAGE_USER | PAGE_NX, CACHE_WB, 0), 0);
    pml4e = ((pte_t *)PHYS2VIRT(as.pml4))[pt_index(VA_LOW, PT_LEVEL_PML4)];
    cr_assert_eq(pml4e & (PTE_WRITABLE | PTE_USER | PTE_NX), PTE_WRITABLE | PTE_USER);
    cr_assert_eq(query(VA_LOW).flags, PAGE_PRESENT);
    cr_assert_eq(query(VA_LOW + PAGE_SIZE).flags,
                 PAGE_PRESENT | PAGE_WRITABLE | PAGE_USER | PAGE_NX);
    cr_assert_eq(paging_map_in(&as, PA, VA_LOW + 2 * PAGE_SIZE, PAGE_SIZE_4K, PAGE_GLOBAL,
                               CACHE_WB, 0), 0);
    cr_assert_eq(query(VA_LOW + 2 * PAGE_SIZE).flags, PAGE_PRESENT | PAGE_GLOBAL);
}

/* ---- splitting -------------------------------------------------------------------------- */

Test(paging, unmap_4k_splits_2m)
{
    vaddr_t va = VA_LOW + MiB(8);
    cr_assert_eq(paging_map_in(&as, PA, va, PAGE_SIZE_2M, RW_NX, CACHE_WC, 0), 0);
    uint64_t tables = as.table_pages;
    cr_assert_eq(paging_unmap_in(&as, va + 5 * PAGE_SIZE, PAGE_SIZE_4K), 0);
    cr_assert_eq(as.table_pages, tables + 1, "one page table for the split");
    for (unsigned i = 0; i < 512; i++) {
        vaddr_t v = va + i * PAGE_SIZE + 0x10;
        if (i == 5) {
            cr_assert_eq(paging_translate_in(&as, v), PAGING_NO_MAPPING);
            continue;
        }
        struct paging_mapping m = query(v);
        cr_assert_eq(m.phys, PA + i * PAGE_SIZE + 0x10);
        cr_assert_eq(m.page_size, PAGE_SIZE_4K);
        cr_assert_eq(m.cache, CACHE_WC, "PAT bit moved to bit 7");
        cr_assert_eq(m.flags, PAGE_PRESENT | RW_NX);
    }
    cr_assert_eq(paging_translate_in(&as, va + PAGE_SIZE_2M), PAGING_NO_MAPPING);
}

Test(paging, unmap_4k_splits_1g)
{
    vaddr_t va = VA_HIGH;
    cr_assert_eq(paging_map_in(&as, PA_1G, va, PAGE_SIZE_1G, PAGE_WRITABLE, CACHE_WT, 0), 0);
    vaddr_t hole = va + 3 * MiB(2) + 7 * PAGE_SIZE;
    cr_assert_eq(paging_unmap_in(&as, hole, PAGE_SIZE_4K), 0);
    for (unsigned i = 0; i < 512; i++) {
        vaddr_t v = va + i * MiB(2) + MiB(1) + 0x42;
        struct paging_mapping m = query(v);
        cr_assert_eq(m.phys, PA_1G + (v - va));
        cr_assert_eq(m.page_size, i == 3 ? PAGE_SIZE_4K : PAGE_SIZE_2M);
        cr_assert_eq(m.cache, CACHE_WT);
        cr_assert_eq(m.flags, PAGE_PRESENT | PAGE_WRITABLE);
    }
    for (unsigned i = 0; i < 512; i++) {
        vaddr_t v = va + 3 * MiB(2) + i * PAGE_SIZE;
        cr_assert_eq(paging_translate_in(&as, v), i == 7 ? PAGING_NO_MAPPING : PA_1G + (v - va));
    }
}

Test(paging, map_4k_inside_large_needs_replace)
{
    vaddr_t va = VA_LOW;
    cr_assert_eq(paging_map_in(&as, PA, va, PAGE_SIZE_2M, RW_NX, CACHE_WB, 0), 0);
    cr_assert_eq(paging_map_in(&as, 0x5000, va + 0x3000, PAGE_SIZE_4K, 0, CACHE_UC, 0),
                 -PAGING_EEXIST);
    cr_assert_eq(paging_map_in(&as, 0x5000, va + 0x3000, PAGE_SIZE_4K, 0, CACHE_UC,
                               PAGING_REPLACE), 0);
    cr_assert_eq(paging_translate_in(&as, va + 0x3000), 0x5000);
    cr_assert_eq(query(va + 0x3000).cache, CACHE_UC);
    cr_assert_eq(query(va + 0x3000).flags, PAGE_PRESENT);
    cr_assert_eq(paging_translate_in(&as, va + 0x4000), PA + 0x4000);
    cr_assert_eq(query(va + 0x4000).flags, PAGE_PRESENT | RW_NX);
}

Test(paging, protect_splits_and_changes_one_page)
{
    vaddr_t va = VA_LOW + GiB(2);
    cr_assert_eq(paging_map_in(&as, PA_1G, va, PAGE_SIZE_1G, RW_NX, CACHE_WB, 0), 0);
    cr_assert_eq(paging_protect(&as, va + MiB(4) + PAGE_SIZE, PAGE_SIZE, 0, CACHE_WC), 0);
    struct paging_mapping m = query(va + MiB(4) + PAGE_SIZE);
    cr_assert_eq(m.flags, PAGE_PRESENT);
    cr_assert_eq(m.cache, CACHE_WC);
    cr_assert_eq(m.phys, PA_1G + MiB(4) + PAGE_SIZE);
    cr_assert_eq(query(va + MiB(4)).flags, PAGE_PRESENT | RW_NX);
    cr_assert_eq(query(va + MiB(4) + 2 * PAGE_SIZE).cache, CACHE_WB);
    cr_assert_eq(query(va + MiB(100)).page_size, PAGE_SIZE_2M);
    /* Protect a whole 2 MiB page: no split, it stays large. */
    cr_assert_eq(paging_protect(&as, va + MiB(10), MiB(2), PAGE_NX, CACHE_WB), 0);
    cr_assert_eq(query(va + MiB(11)).page_size, PAGE_SIZE_2M);
    cr_assert_eq(query(va + MiB(11)).flags, PAGE_PRESENT | PAGE_NX);
}

/* ---- ranges ---------------------------------------------------------------------------- */

Test(paging, map_range_picks_largest_pages)
{
    /* 4K head up to a 2M boundary, 2M pages up to 1G, one 1G, 2M tail, 4K tail. */
    vaddr_t va = VA_LOW + GiB(1) - MiB(2) - 3 * PAGE_SIZE;
    paddr_t pa = PA_1G - MiB(2) - 3 * PAGE_SIZE;
    uint64_t len = 3 * PAGE_SIZE + MiB(2) + GiB(1) + MiB(4) + 2 * PAGE_SIZE;
    cr_assert_eq(paging_map_range(&as, pa, va, len, RW_NX, CACHE_WB, PAGING_LARGE), 0);
    cr_assert_eq(query(va).page_size, PAGE_SIZE_4K);
    cr_assert_eq(query(va + 3 * PAGE_SIZE).page_size, PAGE_SIZE_2M);
    cr_assert_eq(query(VA_LOW + GiB(1)).page_size, PAGE_SIZE_1G);
    cr_assert_eq(query(VA_LOW + GiB(2) + MiB(3)).page_size, PAGE_SIZE_2M);
    cr_assert_eq(query(VA_LOW + GiB(2) + MiB(4)).page_size, PAGE_SIZE_4K);
    for (uint64_t off = 0; off < len; off += MiB(1) - 0x1234)
        cr_assert_eq(paging_translate_in(&as, va + off), pa + off);
    cr_assert_eq(paging_translate_in(&as, va + len - 1), pa + len - 1);
    cr_assert_eq(paging_translate_in(&as, va + len), PAGING_NO_MAPPING);

    /* Without PAGING_LARGE: only 4 KiB pages. */
    cr_assert_eq(paging_map_range(&as, PA, VA_HIGH, MiB(2), 0, CACHE_WB, 0), 0);
    cr_assert_eq(query(VA_HIGH + MiB(1)).page_size, PAGE_SIZE_4K);

    /* Unmapping a range cut inside large pages at both ends splits them. */
    uint64_t t0 = paging_table_pages();
    cr_assert_eq(paging_unmap_range(&as, VA_LOW + GiB(1) + MiB(1), GiB(1)), 0);
    cr_assert_eq(paging_translate_in(&as, VA_LOW + GiB(1) + MiB(1) - 1),
                 PA_1G + MiB(1) - 1);
    cr_assert_eq(paging_translate_in(&as, VA_LOW + GiB(1) + MiB(1)), PAGING_NO_MAPPING);
    cr_assert_eq(paging_translate_in(&as, VA_LOW + GiB(2) + MiB(1) - 1), PAGING_NO_MAPPING);
    cr_assert_eq(paging_translate_in(&as, VA_LOW + GiB(2) + MiB(1)), PA_1G + GiB(1) + MiB(1));
    cr_assert_gt(paging_table_pages(), t0, "splits took tables");
}

Test(paging, reclamation_returns_to_baseline)
{
    uint64_t base_free = free_frames(), base_tables = paging_table_pages();
    vaddr_t vas[] = {VA_LOW, VA_LOW + GiB(7) + MiB(2) * 5, VA_HIGH + 0x1000,
                     0xffffffff80200000ULL, 0x1000, 0x00007fffffd00000ULL};
    for (size_t k = 0; k < ARRAY_SIZE(vas); k++)
        cr_assert_eq(paging_map_range(&as, PA, vas[k], MiB(3) - PAGE_SIZE * (k % 2), RW_NX,
                                      CACHE_WB, PAGING_LARGE),
                     0, "k=%zu", k);
    cr_assert_eq(paging_map_in(&as, PA_1G, VA_HIGH + GiB(5), PAGE_SIZE_1G, 0, CACHE_WB, 0), 0);
    cr_assert_eq(paging_unmap_in(&as, VA_HIGH + GiB(5) + MiB(6), PAGE_SIZE_4K), 0);
    cr_assert_gt(paging_table_pages(), base_tables + 10);
    cr_assert_eq(paging_table_pages() - base_tables, base_free - free_frames());

    /* Unmap everything: the lower half, then the upper half. */
    cr_assert_eq(paging_unmap_range(&as, 0, 0x0000800000000000ULL), 0);
    cr_assert_eq(paging_unmap_range(&as, 0xffff800000000000ULL, 0x0000800000000000ULL), 0);
    cr_assert_eq(free_frames(), base_free);
    cr_assert_eq(paging_table_pages(), base_tables);
    cr_assert_eq(as.table_pages, 1);
    const pte_t *pml4 = PHYS2VIRT(as.pml4);
    for (unsigned i = 0; i < PT_ENTRIES; i++)
        cr_assert_eq(pml4[i], 0);
}

Test(paging, destroy_frees_every_table)
{
    uint64_t base_free = free_frames() + 1; /* the PML4 goes too */
    cr_assert_eq(paging_map_range(&as, PA, VA_LOW, MiB(5), RW_NX, CACHE_WB, 0), 0);
    cr_assert_eq(paging_map_range(&as, PA, VA_HIGH, MiB(5), RW_NX, CACHE_WB, PAGING_LARGE), 0);
    paging_as_destroy(&as);
    cr_assert_eq(as.pml4, 0);
    cr_assert_eq(free_frames(), base_free);
    cr_assert_eq(paging_table_pages(), 0);
}

/* ---- EEXIST and REPLACE ------------------------------------------------------------------- */

Test(paging, eexist_without_replace)
{
    cr_assert_eq(paging_map_in(&as, PA, VA_LOW, PAGE_SIZE_4K, 0, CACHE_WB, 0), 0);
    cr_assert_eq(paging_map_in(&as, PA + PAGE_SIZE, VA_LOW, PAGE_SIZE_4K, 0, CACHE_WB, 0),
                 -PAGING_EEXIST);
    cr_assert_eq(paging_translate_in(&as, VA_LOW), PA, "unchanged");
    cr_assert_eq(paging_map_in(&as, PA + PAGE_SIZE, VA_LOW, PAGE_SIZE_4K, 0, CACHE_WB,
                               PAGING_REPLACE), 0);
    cr_assert_eq(paging_translate_in(&as, VA_LOW), PA + PAGE_SIZE);

    /* A 2 MiB page over a table holding a 4 KiB page. */
    uint64_t tables = as.table_pages;
    cr_assert_eq(paging_map_in(&as, PA, VA_LOW, PAGE_SIZE_2M, 0, CACHE_WB, 0), -PAGING_EEXIST);
    cr_assert_eq(paging_map_range(&as, PA, VA_LOW, MiB(2), 0, CACHE_WB, PAGING_LARGE),
                 -PAGING_EEXIST);
    cr_assert_eq(paging_map_in(&as, PA, VA_LOW, PAGE_SIZE_2M, 0, CACHE_WB, PAGING_REPLACE), 0);
    cr_assert_eq(as.table_pages, tables - 1, "the page table under it was freed");
    cr_assert_eq(query(VA_LOW + 0x1000).page_size, PAGE_SIZE_2M);
    cr_assert_eq(paging_translate_in(&as, VA_LOW + 0x1000), PA + 0x1000);

    /* A failed range leaves nothing of itself behind. */
    cr_assert_eq(paging_map_range(&as, PA, VA_LOW - MiB(1), MiB(2), 0, CACHE_WB, 0),
                 -PAGING_EEXIST);
    cr_assert_eq(paging_translate_in(&as, VA_LOW - MiB(1)), PAGING_NO_MAPPING);
    cr_assert_eq(paging_translate_in(&as, VA_LOW - PAGE_SIZE), PAGING_NO_MAPPING);
    cr_assert_eq(as.table_pages, tables - 1);
}

/* ---- out of memory ----------------------------------------------------------------------- */

/* Takes every free frame but `keep`; returns the array to give back. */
static paddr_t *exhaust(size_t *n, size_t keep)
{
    size_t cap = free_frames();
    paddr_t *v = malloc(cap * sizeof(*v));
    cr_assert(v);
    *n = 0;
    paddr_t f;
    while ((f = frame_alloc()))
        v[(*n)++] = f;
    cr_assert_eq(free_frames(), 0);
    for (size_t k = 0; k < keep; k++)
        frame_free(v[--(*n)]);
    return v;
}

static void give_back(paddr_t *v, size_t n)
{
    while (n)
        frame_free(v[--n]);
    free(v);
}

Test(paging, enomem_leaks_nothing)
{
    for (size_t keep = 0; keep < 3; keep++) {
        size_t n;
        paddr_t *v = exhaust(&n, keep);
        uint64_t tables = paging_table_pages();
        /* A fresh PML4 slot needs a PDPT, a PD and a PT: 3 frames. */
        cr_assert_eq(paging_map_in(&as, PA, VA_HIGH, PAGE_SIZE_4K, 0, CACHE_WB, 0),
                     -PAGING_ENOMEM, "keep=%zu", keep);
        cr_assert_eq(free_frames(), keep, "tables created then given back (keep=%zu)", keep);
        cr_assert_eq(paging_table_pages(), tables);
        cr_assert_eq(paging_translate_in(&as, VA_HIGH), PAGING_NO_MAPPING);
        const pte_t *pml4 = PHYS2VIRT(as.pml4);
        cr_assert_eq(pml4[pt_index(VA_HIGH, PT_LEVEL_PML4)], 0);
        give_back(v, n);
    }
    /* With 3 frames it works. */
    size_t n;
    paddr_t *v = exhaust(&n, 3);
    cr_assert_eq(paging_map_in(&as, PA, VA_HIGH, PAGE_SIZE_4K, 0, CACHE_WB, 0), 0);
    cr_assert_eq(free_frames(), 0);
    /* A split needs a frame: unmapping part of a large page fails cleanly. */
    cr_assert_eq(paging_map_in(&as, PA, VA_HIGH + MiB(2), PAGE_SIZE_2M, 0, CACHE_WB, 0), 0);
    cr_assert_eq(paging_unmap_in(&as, VA_HIGH + MiB(2), PAGE_SIZE_4K), -PAGING_ENOMEM);
    cr_assert_eq(paging_translate_in(&as, VA_HIGH + MiB(2)), PA);
    cr_assert_eq(paging_unmap_range(&as, VA_HIGH + MiB(3), MiB(2)), -PAGING_ENOMEM);
    cr_assert_eq(paging_translate_in(&as, VA_HIGH + MiB(3)), PA + MiB(1), "nothing unmapped");
    give_back(v, n);
}

Test(paging, enomem_in_range_rolls_back)
{
    size_t n;
    paddr_t *v = exhaust(&n, 5);
    /* 4 KiB pages across three page tables: PDPT + PD + 3 PTs = 5; ask for 4 PTs. */
    uint64_t len = MiB(6) + PAGE_SIZE;
    cr_assert_eq(paging_map_range(&as, PA, VA_LOW, len, 0, CACHE_WB, 0), -PAGING_ENOMEM);
    cr_assert_eq(free_frames(), 5);
    cr_assert_eq(as.table_pages, 1);
    for (uint64_t off = 0; off < len; off += MiB(1))
        cr_assert_eq(paging_translate_in(&as, VA_LOW + off), PAGING_NO_MAPPING);
    cr_assert_eq(paging_map_range(&as, PA, VA_LOW, MiB(6), 0, CACHE_WB, 0), 0);
    cr_assert_eq(free_frames(), 0);
    give_back(v, n);
}

/* ---- present-entry counts (the 4 KiB fast paths) ----------------------------------------- */

static pte_t pd_entry(vaddr_t va)
{
    const pte_t *t = PHYS2VIRT(as.pml4);
    t = PHYS2VIRT(t[pt_index(va, PT_LEVEL_PML4)] & PTE_ADDR_MASK);
    t = PHYS2VIRT(t[pt_index(va, PT_LEVEL_PDPT)] & PTE_ADDR_MASK);
    return t[pt_index(va, PT_LEVEL_PD)];
}

static uint64_t pt_count(vaddr_t va)
{
    pte_t e = pd_entry(va);
    cr_assert(e & PTE_CNT_VALID, "the PT's count is kept");
    return (e & PTE_CNT_MASK) >> PTE_CNT_SHIFT;
}

Test(paging, counts_follow_every_path)
{
    uint64_t base_free = free_frames(), base_tables = paging_table_pages();
    /* range map (general path), single maps (fast path), EEXIST (no change) */
    cr_assert_eq(paging_map_range(&as, PA, VA_LOW, 3 * PAGE_SIZE, RW_NX, CACHE_WB, 0), 0);
    cr_assert_eq(pt_count(VA_LOW), 3);
    cr_assert_eq(paging_map_in(&as, PA, VA_LOW + 5 * PAGE_SIZE, PAGE_SIZE_4K, RW_NX, CACHE_WB, 0), 0);
    cr_assert_eq(paging_map_in(&as, PA, VA_LOW, PAGE_SIZE_4K, RW_NX, CACHE_WB, 0), -PAGING_EEXIST);
    cr_assert_eq(paging_map_in(&as, PA, VA_LOW, PAGE_SIZE_4K, 0, CACHE_WB, PAGING_REPLACE), 0);
    cr_assert_eq(pt_count(VA_LOW), 4);
    /* a page that needs wider intermediates takes the general path */
    cr_assert_eq(paging_map_in(&as, PA, VA_LOW + 6 * PAGE_SIZE, PAGE_SIZE_4K,
                               PAGE_WRITABLE | PAGE_USER, CACHE_WC, 0), 0);
    cr_assert_eq(pt_count(VA_LOW), 5);
    cr_assert_eq(query(VA_LOW + 6 * PAGE_SIZE).cache, CACHE_WC);
    cr_assert_eq(query(VA_LOW + 6 * PAGE_SIZE).flags, PAGE_PRESENT | PAGE_WRITABLE | PAGE_USER);
    /* unmap one by one (fast path), a range, a hole */
    cr_assert_eq(paging_unmap_in(&as, VA_LOW + PAGE_SIZE, PAGE_SIZE_4K), 0);
    cr_assert_eq(paging_unmap_in(&as, VA_LOW + PAGE_SIZE, PAGE_SIZE_4K), -PAGING_ENOENT);
    cr_assert_eq(pt_count(VA_LOW), 4);
    cr_assert_eq(paging_unmap_range(&as, VA_LOW + 5 * PAGE_SIZE, 2 * PAGE_SIZE), 0);
    cr_assert_eq(pt_count(VA_LOW), 2);
    cr_assert_eq(paging_unmap_in(&as, VA_LOW, PAGE_SIZE_4K), 0);
    cr_assert_eq(paging_table_pages(), base_tables + 3, "the PT still holds one page");
    cr_assert_eq(paging_unmap_in(&as, VA_LOW + 2 * PAGE_SIZE, PAGE_SIZE_4K), 0);
    cr_assert_eq(free_frames(), base_free, "the last unmap gave PT, PD and PDPT back");
    cr_assert_eq(paging_table_pages(), base_tables);
    cr_assert_eq(((const pte_t *)PHYS2VIRT(as.pml4))[pt_index(VA_LOW, PT_LEVEL_PML4)], 0);
}

Test(paging, counts_after_split_and_unknown)
{
    uint64_t base_free = free_frames();
    /* A split makes a full PT; unmapping its 512 pages singly reclaims it. */
    cr_assert_eq(paging_map_in(&as, PA, VA_HIGH, PAGE_SIZE_2M, RW_NX, CACHE_WB, 0), 0);
    cr_assert_eq(paging_unmap_in(&as, VA_HIGH + PAGE_SIZE, PAGE_SIZE_4K), 0);
    cr_assert_eq(pt_count(VA_HIGH), 511);
    for (unsigned i = 0; i < PT_ENTRIES; i++)
        if (i != 1)
            cr_assert_eq(paging_unmap_in(&as, VA_HIGH + i * PAGE_SIZE, PAGE_SIZE_4K), 0);
    cr_assert_eq(free_frames(), base_free);
    /* A pointer without a kept count (as the bootloader writes them) is counted once. */
    cr_assert_eq(paging_map_range(&as, PA, VA_LOW, 4 * PAGE_SIZE, RW_NX, CACHE_WB, 0), 0);
    pte_t *t = PHYS2VIRT(as.pml4);
    t = PHYS2VIRT(t[pt_index(VA_LOW, PT_LEVEL_PML4)] & PTE_ADDR_MASK);
    t = PHYS2VIRT(t[pt_index(VA_LOW, PT_LEVEL_PDPT)] & PTE_ADDR_MASK);
    t[pt_index(VA_LOW, PT_LEVEL_PD)] &= ~(PTE_CNT_MASK | PTE_CNT_VALID);
    cr_assert_eq(paging_map_in(&as, PA, VA_LOW + 4 * PAGE_SIZE, PAGE_SIZE_4K, RW_NX, CACHE_WB, 0), 0);
    cr_assert_eq(pd_entry(VA_LOW) & PTE_CNT_VALID, 0, "not counted yet");
    cr_assert_eq(paging_unmap_in(&as, VA_LOW, PAGE_SIZE_4K), 0);
    cr_assert_eq(pt_count(VA_LOW), 4, "learned by one scan");
    cr_assert_eq(paging_unmap_range(&as, VA_LOW, 5 * PAGE_SIZE), 0);
    cr_assert_eq(free_frames(), base_free);
}

/* ---- TLB maintenance ---------------------------------------------------------------------- */

Test(paging, invlpg_only_when_active)
{
    host_invlpg_count = 0;
    cr_assert_eq(paging_map_in(&as, PA, VA_LOW, PAGE_SIZE_4K, 0, CACHE_WB, 0), 0);
    cr_assert_eq(paging_unmap_in(&as, VA_LOW, PAGE_SIZE_4K), 0);
    cr_assert_eq(host_invlpg_count, 0, "inactive address space: no invlpg");

    paging_activate(&as);
    cr_assert(paging_is_active(&as));
    cr_assert_eq(paging_map_in(&as, PA, VA_LOW, PAGE_SIZE_4K, 0, CACHE_WB, 0), 0);
    cr_assert_eq(host_invlpg_count, 0, "a new entry needs no flush");
    cr_assert_eq(paging_map_in(&as, PA + PAGE_SIZE, VA_LOW, PAGE_SIZE_4K, 0, CACHE_WB,
                               PAGING_REPLACE), 0);
    cr_assert_gt(host_invlpg_count, 0, "a changed entry is flushed");
    unsigned long before = host_invlpg_count;
    cr_assert_eq(paging_unmap_in(&as, VA_LOW, PAGE_SIZE_4K), 0);
    cr_assert_gt(host_invlpg_count, before);
}

/* ---- TLB shootdown (arch_tlb_shootdown, recorded by tests/host/support.c) --------------- */

static void shootdown_reset(void)
{
    host_shootdown_count = 0;
    host_shootdown_start = host_shootdown_end = 0;
    host_shootdown_global = false;
}

static void expect_one_shootdown(vaddr_t start, vaddr_t end)
{
    cr_assert_eq(host_shootdown_count, 1, "%lu shootdowns", host_shootdown_count);
    cr_assert_eq(host_shootdown_start, start, "start %#llx, want %#llx",
                 (unsigned long long)host_shootdown_start, (unsigned long long)start);
    cr_assert_eq(host_shootdown_end, end, "end %#llx, want %#llx",
                 (unsigned long long)host_shootdown_end, (unsigned long long)end);
}

Test(paging, shootdown_none_for_fresh_mappings)
{
    paging_activate(&as);
    shootdown_reset();
    cr_assert_eq(paging_map_in(&as, PA, VA_LOW, PAGE_SIZE_4K, RW_NX, CACHE_WB, 0), 0);
    cr_assert_eq(paging_map_in(&as, PA, VA_LOW + PAGE_SIZE, PAGE_SIZE_4K, RW_NX, CACHE_WB, 0), 0);
    cr_assert_eq(paging_map_range(&as, PA, VA_LOW + MiB(2), MiB(4), RW_NX, CACHE_WB,
                                  PAGING_LARGE), 0);
    cr_assert_eq(paging_map_in(&as, PA_1G, VA_HIGH, PAGE_SIZE_1G, RW_NX, CACHE_WB, 0), 0);
    cr_assert_eq(host_shootdown_count, 0, "new mappings need no shootdown");
}

Test(paging, shootdown_only_when_live)
{
    /* not in CR3: no CPU can cache its translations */
    cr_assert_eq(paging_map_in(&as, PA, VA_LOW, PAGE_SIZE_4K, RW_NX, CACHE_WB, 0), 0);
    shootdown_reset();
    cr_assert_eq(paging_unmap_in(&as, VA_LOW, PAGE_SIZE_4K), 0);
    cr_assert_eq(host_shootdown_count, 0);
}

Test(paging, shootdown_unmap_one_page_covers_it)
{
    paging_activate(&as);
    /* two pages in one PT: the fast path's unmap that keeps the PT */
    cr_assert_eq(paging_map_in(&as, PA, VA_LOW, PAGE_SIZE_4K, RW_NX, CACHE_WB, 0), 0);
    cr_assert_eq(paging_map_in(&as, PA, VA_LOW + 0x5000, PAGE_SIZE_4K, RW_NX, CACHE_WB, 0), 0);
    shootdown_reset();
    cr_assert_eq(paging_unmap_in(&as, VA_LOW + 0x5000, PAGE_SIZE_4K), 0);
    expect_one_shootdown(VA_LOW + 0x5000, VA_LOW + 0x6000);
    cr_assert(!host_shootdown_global);
    /* the last page of its PT: the reclaiming path */
    shootdown_reset();
    cr_assert_eq(paging_unmap_in(&as, VA_LOW, PAGE_SIZE_4K), 0);
    expect_one_shootdown(VA_LOW, VA_LOW + PAGE_SIZE);
    /* the seed's wrapper over kernel_as goes the same way */
    kernel_as = as;
    cr_assert_eq(paging_map(PA, VA_LOW + 0x9000, PAGE_WRITABLE | PAGE_GLOBAL), 0);
    shootdown_reset();
    cr_assert_eq(paging_unmap(VA_LOW + 0x9123), 0);
    expect_one_shootdown(VA_LOW + 0x9000, VA_LOW + 0xa000);
    cr_assert(host_shootdown_global, "a global entry needs a global flush on the others");
    as = kernel_as;
}

Test(paging, shootdown_unmap_range_is_one_call_for_the_range)
{
    paging_activate(&as);
    /* 4 KiB pages across a PT boundary, then a 2 MiB page: one call for all */
    vaddr_t va = VA_LOW + MiB(2) - 8 * PAGE_SIZE;
    cr_assert_eq(paging_map_range(&as, PA, va, 16 * PAGE_SIZE, RW_NX, CACHE_WB, 0), 0);
    cr_assert_eq(paging_map_in(&as, PA, VA_LOW + MiB(4), PAGE_SIZE_2M, RW_NX, CACHE_WB, 0), 0);
    unsigned long invlpgs = host_invlpg_count;
    shootdown_reset();
    cr_assert_eq(paging_unmap_range(&as, va, VA_LOW + MiB(6) - va), 0);
    expect_one_shootdown(va, VA_LOW + MiB(4) + PAGE_SIZE); /* the 2 MiB page by its first 4 KiB */
    cr_assert_gt(host_invlpg_count, invlpgs, "this CPU flushed too");
}

Test(paging, shootdown_on_downgrades)
{
    paging_activate(&as);
    cr_assert_eq(paging_map_range(&as, PA, VA_LOW, 4 * PAGE_SIZE, PAGE_WRITABLE, CACHE_WB, 0), 0);
    shootdown_reset();
    /* writable -> read-only */
    cr_assert_eq(paging_protect(&as, VA_LOW + PAGE_SIZE, 2 * PAGE_SIZE, 0, CACHE_WB), 0);
    expect_one_shootdown(VA_LOW + PAGE_SIZE, VA_LOW + 3 * PAGE_SIZE);
    /* NX added */
    shootdown_reset();
    cr_assert_eq(paging_protect(&as, VA_LOW, PAGE_SIZE, PAGE_NX, CACHE_WB), 0);
    expect_one_shootdown(VA_LOW, VA_LOW + PAGE_SIZE);
    /* another cache mode */
    shootdown_reset();
    cr_assert_eq(paging_protect(&as, VA_LOW + 3 * PAGE_SIZE, PAGE_SIZE, PAGE_WRITABLE, CACHE_UC),
                 0);
    expect_one_shootdown(VA_LOW + 3 * PAGE_SIZE, VA_LOW + 4 * PAGE_SIZE);
    /* another frame */
    shootdown_reset();
    cr_assert_eq(paging_map_in(&as, PA + MiB(2), VA_LOW, PAGE_SIZE_4K, 0, CACHE_WB,
                               PAGING_REPLACE), 0);
    expect_one_shootdown(VA_LOW, VA_LOW + PAGE_SIZE);
}

/* What the shootdown hook saw of the PT about to be released. */
static paddr_t watched_table;
static bool table_in_use_at_shootdown;

static void snapshot_table(uint64_t start, uint64_t end, bool global)
{
    (void)start, (void)end, (void)global;
    table_in_use_at_shootdown = frame_is_used(watched_table);
}

/* The PT that maps va (which must be mapped by a 4 KiB page). */
static paddr_t pt_of(vaddr_t va)
{
    struct pt_cursor c;
    pte_t *slot = pt_walk(&c, as.pml4, va, PT_LEVEL_PT);
    cr_assert_eq(c.level, PT_LEVEL_PT);
    cr_assert(pte_present(*slot));
    return *c.parent & PTE_ADDR_MASK;
}

static void expect_table_freed_after_shootdown(int (*unmap)(vaddr_t), vaddr_t va)
{
    paging_activate(&as);
    cr_assert_eq(paging_map_in(&as, PA, va, PAGE_SIZE_4K, RW_NX, CACHE_WB, 0), 0);
    watched_table = pt_of(va);
    cr_assert(frame_is_used(watched_table));
    table_in_use_at_shootdown = false;
    host_shootdown_hook = snapshot_table;
    shootdown_reset();
    cr_assert_eq(unmap(va), 0);
    host_shootdown_hook = NULL;
    cr_assert_eq(host_shootdown_count, 1);
    cr_assert(table_in_use_at_shootdown,
              "the PT went back to the frame allocator before the other CPUs flushed");
    cr_assert(!frame_is_used(watched_table), "the empty PT was not reclaimed");
}

static int unmap_page(vaddr_t va) { return paging_unmap_in(&as, va, PAGE_SIZE_4K); }
static int unmap_as_range(vaddr_t va) { return paging_unmap_range(&as, va, MiB(2)); }

Test(paging, shootdown_before_tables_freed_fast_path)
{
    expect_table_freed_after_shootdown(unmap_page, VA_LOW + 0x3000);
}

Test(paging, shootdown_before_tables_freed_range)
{
    expect_table_freed_after_shootdown(unmap_as_range, VA_LOW);
}

/* ---- the 4 KiB fast paths' walk cache ------------------------------------------------- */

/* Frames just freed are handed out again and scribbled over, so that a write
 * through a stale cached PT would land in memory that is no table any more. */
static void scribble_free_frames(void)
{
    paddr_t got[16];
    for (unsigned i = 0; i < ARRAY_SIZE(got); i++) {
        got[i] = frame_alloc();
        cr_assert(got[i]);
        memset(PHYS2VIRT(got[i]), 0xa5, PAGE_SIZE);
    }
    for (unsigned i = 0; i < ARRAY_SIZE(got); i++)
        frame_free(got[i]);
}

Test(paging, walk_cache_dropped_when_tables_freed)
{
    uint64_t base_free = free_frames();
    vaddr_t a = VA_LOW + MiB(4) + 3 * PAGE_SIZE, b = VA_LOW + MiB(4) + 9 * PAGE_SIZE;
    /* by the fast unmap (reclaim), then by a range unmap */
    for (int way = 0; way < 2; way++) {
        cr_assert_eq(paging_map_in(&as, PA, a, PAGE_SIZE_4K, RW_NX, CACHE_WB, 0), 0);
        cr_assert_eq(paging_map_in(&as, PA + PAGE_SIZE, a + PAGE_SIZE, PAGE_SIZE_4K, RW_NX,
                                   CACHE_WB, 0), 0, "served by the cache");
        cr_assert_eq(paging_unmap_in(&as, a + PAGE_SIZE, PAGE_SIZE_4K), 0);
        if (way == 0)
            cr_assert_eq(paging_unmap_in(&as, a, PAGE_SIZE_4K), 0);
        else
            cr_assert_eq(paging_unmap_range(&as, VA_LOW, GiB(1)), 0);
        cr_assert_eq(as.table_pages, 1, "way %d: PT, PD and PDPT freed", way);
        cr_assert_eq(free_frames(), base_free);
        scribble_free_frames();
        /* same 2 MiB region: fresh tables, not the freed PT */
        cr_assert_eq(paging_map_in(&as, PA + 0x5000, b, PAGE_SIZE_4K, RW_NX, CACHE_WB, 0), 0);
        cr_assert_eq(as.table_pages, 4, "way %d: three new tables", way);
        cr_assert_eq(paging_translate_in(&as, b + 0x10), PA + 0x5010);
        cr_assert_eq(paging_translate_in(&as, a), PAGING_NO_MAPPING);
        cr_assert_eq(paging_unmap_in(&as, a, PAGE_SIZE_4K), -PAGING_ENOENT);
        cr_assert_eq(paging_unmap_in(&as, b, PAGE_SIZE_4K), 0);
        cr_assert_eq(as.table_pages, 1);
        cr_assert_eq(free_frames(), base_free);
    }
}

Test(paging, walk_cache_dropped_when_borrowed_tables_detached)
{
    /* Borrowed tables are detached but never freed: a stale PT would still look like one. */
    vaddr_t a = VA_HIGH + 5 * PAGE_SIZE, b = VA_HIGH + 6 * PAGE_SIZE;
    as.borrowed = true;
    cr_assert_eq(paging_map_in(&as, PA, a, PAGE_SIZE_4K, RW_NX, CACHE_WB, 0), 0);
    cr_assert_eq(paging_unmap_in(&as, a, PAGE_SIZE_4K), 0);
    const pte_t *pml4 = PHYS2VIRT(as.pml4);
    cr_assert_eq(pml4[pt_index(VA_HIGH, PT_LEVEL_PML4)], 0, "the PDPT was detached");
    cr_assert_eq(paging_map_in(&as, PA, b, PAGE_SIZE_4K, RW_NX, CACHE_WB, 0), 0);
    cr_assert_eq(paging_translate_in(&as, b), PA);
    cr_assert_eq(paging_unmap_in(&as, b, PAGE_SIZE_4K), 0);
    cr_assert_eq(paging_translate_in(&as, b), PAGING_NO_MAPPING);
}

Test(paging, walk_cache_and_large_pages)
{
    vaddr_t r = VA_LOW + MiB(10); /* one 2 MiB region */
    /* cached PT replaced by a 2 MiB page */
    cr_assert_eq(paging_map_in(&as, PA, r + PAGE_SIZE, PAGE_SIZE_4K, RW_NX, CACHE_WB, 0), 0);
    cr_assert_eq(paging_map_in(&as, PA, r, PAGE_SIZE_2M, RW_NX, CACHE_WC, PAGING_REPLACE), 0);
    scribble_free_frames();
    cr_assert_eq(paging_map_in(&as, PA, r + 2 * PAGE_SIZE, PAGE_SIZE_4K, RW_NX, CACHE_WB, 0),
                 -PAGING_EEXIST, "the 2 MiB page covers it");
    cr_assert_eq(query(r + 2 * PAGE_SIZE).page_size, PAGE_SIZE_2M);
    /* split by a 4 KiB unmap, then fast maps within the split */
    cr_assert_eq(paging_unmap_in(&as, r + 7 * PAGE_SIZE, PAGE_SIZE_4K), 0);
    cr_assert_eq(paging_map_in(&as, PA_1G, r + 7 * PAGE_SIZE, PAGE_SIZE_4K, PAGE_USER, CACHE_WB,
                               0), 0);
    struct paging_mapping m = query(r + 7 * PAGE_SIZE);
    cr_assert_eq(m.phys, PA_1G);
    cr_assert_eq(m.flags, PAGE_PRESENT | PAGE_USER, "intermediates widened for USER");
    cr_assert_eq(query(r + 8 * PAGE_SIZE).phys, PA + 8 * PAGE_SIZE);
    cr_assert_eq(query(r + 8 * PAGE_SIZE).cache, CACHE_WC);
    cr_assert_eq(paging_unmap_in(&as, r + 8 * PAGE_SIZE, PAGE_SIZE_4K), 0);
    cr_assert_eq(paging_translate_in(&as, r + 8 * PAGE_SIZE), PAGING_NO_MAPPING);
    /* a 1 GiB page replacing the tables, split again by unmaps */
    vaddr_t g = VA_LOW;
    cr_assert_eq(paging_map_in(&as, PA_1G, g, PAGE_SIZE_1G, PAGE_WRITABLE, CACHE_WB,
                               PAGING_REPLACE), 0);
    scribble_free_frames();
    cr_assert_eq(query(r + 7 * PAGE_SIZE).page_size, PAGE_SIZE_1G);
    cr_assert_eq(paging_unmap_in(&as, r + 7 * PAGE_SIZE, PAGE_SIZE_4K), 0);
    cr_assert_eq(paging_translate_in(&as, r + 7 * PAGE_SIZE), PAGING_NO_MAPPING);
    cr_assert_eq(paging_translate_in(&as, r + 6 * PAGE_SIZE), PA_1G + MiB(10) + 6 * PAGE_SIZE);
    cr_assert_eq(paging_map_in(&as, PA, r + 7 * PAGE_SIZE, PAGE_SIZE_4K, PAGE_WRITABLE, CACHE_WB,
                               0), 0);
    cr_assert_eq(paging_translate_in(&as, r + 7 * PAGE_SIZE), PA);
    cr_assert_eq(paging_unmap_range(&as, g, GiB(1)), 0);
    cr_assert_eq(as.table_pages, 1);
}

Test(paging, walk_cache_respects_intermediate_permissions)
{
    vaddr_t r = VA_HIGH + MiB(2);
    cr_assert_eq(paging_map_in(&as, PA, r, PAGE_SIZE_4K, PAGE_NX, CACHE_WB, 0), 0);
    /* a second read-only page walks the new tables and fills the cache */
    cr_assert_eq(paging_map_in(&as, PA, r + 5 * PAGE_SIZE, PAGE_SIZE_4K, PAGE_NX, CACHE_WB, 0), 0);
    /* cached with read-only, supervisor, NX intermediates: writable / user / executable
     * leaves must widen them */
    cr_assert_eq(paging_map_in(&as, PA, r + PAGE_SIZE, PAGE_SIZE_4K, PAGE_WRITABLE | PAGE_NX,
                               CACHE_WB, 0), 0);
    cr_assert_eq(query(r + PAGE_SIZE).flags, PAGE_PRESENT | PAGE_WRITABLE | PAGE_NX);
    cr_assert_eq(paging_map_in(&as, PA, r + 2 * PAGE_SIZE, PAGE_SIZE_4K, PAGE_USER | PAGE_NX,
                               CACHE_WB, 0), 0);
    cr_assert_eq(query(r + 2 * PAGE_SIZE).flags, PAGE_PRESENT | PAGE_USER | PAGE_NX);
    cr_assert_eq(query(r).flags, PAGE_PRESENT | PAGE_NX, "the first page keeps its own bits");
    cr_assert_eq(paging_map_in(&as, PA, r + 3 * PAGE_SIZE, PAGE_SIZE_4K, 0, CACHE_WB, 0), 0);
    cr_assert_eq(query(r + 3 * PAGE_SIZE).flags, PAGE_PRESENT);
    /* EEXIST and REPLACE through the cache */
    cr_assert_eq(paging_map_in(&as, PA, r, PAGE_SIZE_4K, PAGE_NX, CACHE_WB, 0), -PAGING_EEXIST);
    cr_assert_eq(paging_map_in(&as, PA_1G, r, PAGE_SIZE_4K, PAGE_NX, CACHE_UC, PAGING_REPLACE), 0);
    cr_assert_eq(query(r).phys, PA_1G);
    cr_assert_eq(query(r).cache, CACHE_UC);
    cr_assert_eq(query(r + 5 * PAGE_SIZE).flags, PAGE_PRESENT | PAGE_NX);
    cr_assert_eq(paging_unmap_in(&as, r + 4 * PAGE_SIZE, PAGE_SIZE_4K), -PAGING_ENOENT);
    cr_assert_eq(paging_unmap_in(&as, r + 1, PAGE_SIZE_4K), -PAGING_EINVAL, "unaligned, cached region");
    cr_assert_eq(paging_unmap_range(&as, r, PAGE_SIZE_2M), 0);
    cr_assert_eq(as.table_pages, 1);
}

Test(paging, walk_cache_dropped_by_destroy)
{
    vaddr_t a = VA_LOW + 0x3000;
    cr_assert_eq(paging_map_in(&as, PA, a, PAGE_SIZE_4K, RW_NX, CACHE_WB, 0), 0);
    paging_as_destroy(&as);
    cr_assert_eq(paging_as_create(&as), 0);
    scribble_free_frames();
    cr_assert_eq(paging_unmap_in(&as, a, PAGE_SIZE_4K), -PAGING_ENOENT);
    cr_assert_eq(paging_map_in(&as, PA, a + PAGE_SIZE, PAGE_SIZE_4K, RW_NX, CACHE_WB, 0), 0);
    cr_assert_eq(as.table_pages, 4);
    cr_assert_eq(paging_translate_in(&as, a + PAGE_SIZE), PA);
}

/* ---- random operations against a model ------------------------------------------------- */

/* The model: one record per 4 KiB page of a 4 GiB window. */
#define WIN_PAGES (GiB(4) / PAGE_SIZE)
struct model_page {
    paddr_t phys; /* 0 = unmapped (phys 0 is never used below) */
    uint64_t flags;
    enum cache_mode cm;
};

static uint64_t rs = 0x2545F4914F6CDD1Dull;
static uint64_t rnd(uint64_t n)
{
    rs ^= rs << 13;
    rs ^= rs >> 7;
    rs ^= rs << 17;
    return rs % n;
}

static void model_check(const struct model_page *mp, uint64_t page)
{
    struct paging_mapping m;
    vaddr_t va = VA_LOW + page * PAGE_SIZE;
    bool present = paging_query(&as, va + 0x18, &m);
    cr_assert_eq(present, mp[page].phys != 0, "page %llu", (unsigned long long)page);
    if (!present)
        return;
    cr_assert_eq(m.phys, mp[page].phys + 0x18, "page %llu", (unsigned long long)page);
    cr_assert_eq(m.flags, PAGE_PRESENT | mp[page].flags, "page %llu", (unsigned long long)page);
    cr_assert_eq(m.cache, mp[page].cm, "page %llu", (unsigned long long)page);
}

Test(paging, random_operations_match_model)
{
    struct model_page *mp = calloc(WIN_PAGES, sizeof(*mp));
    cr_assert(mp);
    uint64_t base_tables = paging_table_pages(), base_free = free_frames();
    static const uint64_t sizes[] = {PAGE_SIZE_4K, PAGE_SIZE_2M, PAGE_SIZE_1G};
    static const uint64_t flag_set[] = {0, PAGE_WRITABLE, PAGE_NX, PAGE_WRITABLE | PAGE_NX,
                                        PAGE_USER | PAGE_NX};
    for (int op = 0; op < 3000; op++) {
        unsigned kind = (unsigned)rnd(10);
        uint64_t size = sizes[rnd(op % 7 == 0 ? 3 : 2)];
        uint64_t page = ALIGN_DOWN(rnd(WIN_PAGES), size / PAGE_SIZE);
        uint64_t n = size / PAGE_SIZE;
        uint64_t flags = flag_set[rnd(ARRAY_SIZE(flag_set))];
        enum cache_mode cm = (enum cache_mode)rnd(CACHE_WC + 1);
        vaddr_t va = VA_LOW + page * PAGE_SIZE;
        if (kind < 5) { /* map one page, sometimes replacing */
            unsigned opts = rnd(2) ? PAGING_REPLACE : 0;
            paddr_t pa = GiB(1) * (1 + rnd(64)) + page * PAGE_SIZE % GiB(1);
            bool busy = false;
            for (uint64_t i = 0; i < n && !busy; i++)
                busy = mp[page + i].phys != 0;
            int r = paging_map_in(&as, pa, va, size, flags, cm, opts);
            cr_assert_eq(r, busy && !opts ? -PAGING_EEXIST : 0, "op %d", op);
            if (r == 0)
                for (uint64_t i = 0; i < n; i++)
                    mp[page + i] = (struct model_page){pa + i * PAGE_SIZE, flags, cm};
        } else if (kind == 5 && size == PAGE_SIZE_4K) { /* the 4 KiB fast unmap */
            int r = paging_unmap_in(&as, va, PAGE_SIZE_4K);
            cr_assert_eq(r, mp[page].phys ? 0 : -PAGING_ENOENT, "op %d", op);
            mp[page].phys = 0;
        } else if (kind < 8) { /* unmap a random range */
            uint64_t len = 1 + rnd(kind == 7 ? 4096 : 8);
            len = MIN(len, WIN_PAGES - page);
            cr_assert_eq(paging_unmap_range(&as, va, len * PAGE_SIZE), 0, "op %d", op);
            for (uint64_t i = 0; i < len; i++)
                mp[page + i].phys = 0;
        } else { /* protect a random range */
            uint64_t len = MIN(1 + rnd(1024), WIN_PAGES - page);
            cr_assert_eq(paging_protect(&as, va, len * PAGE_SIZE, flags, cm), 0, "op %d", op);
            for (uint64_t i = 0; i < len; i++)
                if (mp[page + i].phys) {
                    mp[page + i].flags = flags;
                    mp[page + i].cm = cm;
                }
        }
        for (int k = 0; k < 64; k++)
            model_check(mp, rnd(WIN_PAGES));
        for (uint64_t i = 0; i < MIN(n, 64); i++)
            model_check(mp, page + i);
    }
    for (uint64_t p = 0; p < WIN_PAGES; p += 7)
        model_check(mp, p);
    cr_assert_eq(paging_table_pages() - base_tables, base_free - free_frames());
    cr_assert_eq(paging_unmap_range(&as, VA_LOW, GiB(4)), 0);
    cr_assert_eq(paging_table_pages(), base_tables);
    cr_assert_eq(free_frames(), base_free);
    free(mp);
}

/* ---- mm/pagewalk: every leaf once, in address order, with the effective
 * attributes of all levels combined ------------------------------------------ */

TestSuite(pagewalk, .init = setup, .fini = teardown);

struct seen {
    struct pagewalk_leaf leaf[16];
    int n;
};

static void record(void *ctx, const struct pagewalk_leaf *l)
{
    struct seen *s = ctx;
    cr_assert_lt(s->n, 16);
    s->leaf[s->n++] = *l;
}

Test(pagewalk, empty_space_has_no_leaves)
{
    struct seen s = {0};
    cr_assert_eq(pagewalk_leaves(&as, record, &s), 0);
    cr_assert_eq(s.n, 0);
}

Test(pagewalk, leaves_in_order_with_sizes_and_flags)
{
    /* mapped out of order on purpose; upper half before lower half */
    cr_assert_eq(paging_map_in(&as, GiB(8), 0xffffc00040000000ULL, PAGE_SIZE_1G, PAGE_WRITABLE | PAGE_NX,
                               CACHE_WB, 0), 0);
    cr_assert_eq(paging_map_in(&as, MiB(4), 0x0000000000600000ULL, PAGE_SIZE_2M, PAGE_USER, CACHE_WC, 0), 0);
    cr_assert_eq(paging_map_in(&as, 0x5000, 0x0000000000401000ULL, PAGE_SIZE_4K,
                               PAGE_WRITABLE | PAGE_GLOBAL, CACHE_UC, 0), 0);
    struct seen s = {0};
    cr_assert_eq(pagewalk_leaves(&as, record, &s), 3);

    cr_expect_eq(s.leaf[0].virt, 0x401000);
    cr_expect_eq(s.leaf[0].phys, 0x5000);
    cr_expect_eq(s.leaf[0].size, PAGE_SIZE_4K);
    cr_expect_eq(s.leaf[0].level, 1);
    cr_expect_eq(s.leaf[0].flags, PAGE_WRITABLE | PAGE_GLOBAL);
    cr_expect_eq(s.leaf[0].cache, CACHE_UC);

    cr_expect_eq(s.leaf[1].virt, 0x600000);
    cr_expect_eq(s.leaf[1].size, PAGE_SIZE_2M);
    cr_expect_eq(s.leaf[1].level, 2);
    cr_expect_eq(s.leaf[1].flags, PAGE_USER);
    cr_expect_eq(s.leaf[1].cache, CACHE_WC);

    cr_expect_eq(s.leaf[2].virt, 0xffffc00040000000ULL, "upper-half address made canonical");
    cr_expect_eq(s.leaf[2].phys, GiB(8));
    cr_expect_eq(s.leaf[2].level, 3);
    cr_expect_eq(s.leaf[2].flags, PAGE_WRITABLE | PAGE_NX);
}

Test(pagewalk, effective_flags_combine_levels)
{
    cr_assert_eq(paging_map_in(&as, 0x7000, 0x1000, PAGE_SIZE_4K, PAGE_WRITABLE | PAGE_USER, CACHE_WB, 0), 0);
    /* take WRITABLE and USER away at the PML4 level and add NX at the PD
     * level: the leaf keeps its bits, the walk must report what the CPU does */
    pte_t *pml4 = PHYS2VIRT(as.pml4);
    pml4[0] &= ~(PTE_WRITABLE | PTE_USER);
    pte_t *pdpt = PHYS2VIRT(pte_addr(pml4[0], PT_LEVEL_PML4));
    pte_t *pd = PHYS2VIRT(pte_addr(pdpt[0], PT_LEVEL_PDPT));
    pd[0] |= PTE_NX;
    struct seen s = {0};
    cr_assert_eq(pagewalk_leaves(&as, record, &s), 1);
    cr_expect_eq(s.leaf[0].flags, PAGE_NX, "flags %#llx", (unsigned long long)s.leaf[0].flags);
    pml4[0] |= PTE_WRITABLE | PTE_USER;
    pd[0] &= ~PTE_NX;
    s.n = 0;
    pagewalk_leaves(&as, record, &s);
    cr_expect_eq(s.leaf[0].flags, PAGE_WRITABLE | PAGE_USER);
}

/* ---- the walker itself: the cursor and the range walk (mm/pagewalk.h) ---------- */

Test(pagewalk, cursor_stops_at_leaf_absent_or_level)
{
    cr_assert_eq(paging_map_in(&as, PA, VA_LOW + MiB(2), PAGE_SIZE_2M, RW_NX, CACHE_WB, 0), 0);
    cr_assert_eq(paging_map_in(&as, PA, VA_LOW + 0x5000, PAGE_SIZE_4K, RW_NX, CACHE_WB, 0), 0);
    struct pt_cursor c;
    /* a 2 MiB leaf stops the walk at the PD, whatever level was asked for */
    pte_t *s = pt_walk(&c, as.pml4, VA_LOW + MiB(3), PT_LEVEL_PT);
    cr_assert_eq(c.level, PT_LEVEL_PD);
    cr_assert(pte_is_leaf(*s, PT_LEVEL_PD));
    cr_assert_eq(pte_addr(*s, PT_LEVEL_PD), PA);
    cr_assert_not_null(c.parent);
    /* a 4 KiB page: down to the PT, parent is the PD entry that counts it */
    s = pt_walk(&c, as.pml4, VA_LOW + 0x5000, PT_LEVEL_PT);
    cr_assert_eq(c.level, PT_LEVEL_PT);
    cr_assert_eq(*s & PTE_ADDR_MASK, PA);
    cr_assert_eq((*c.parent & PTE_CNT_MASK) >> PTE_CNT_SHIFT, 1);
    /* stopping early leaves the cursor on the pointer */
    s = pt_walk(&c, as.pml4, VA_LOW + 0x5000, PT_LEVEL_PDPT);
    cr_assert_eq(c.level, PT_LEVEL_PDPT);
    cr_assert(pte_present(*s) && !pte_is_leaf(*s, PT_LEVEL_PDPT));
    /* nothing mapped: the first absent entry */
    s = pt_walk(&c, as.pml4, VA_HIGH, PT_LEVEL_PT);
    cr_assert_eq(c.level, PT_LEVEL_PML4);
    cr_assert(!pte_present(*s));
    cr_assert_null(c.parent);
}

struct range_seen {
    unsigned leaves, pre, post;
    vaddr_t va[8];
    int stop_after; /* leaf callback returns 7 at this leaf (1-based), 0: never */
};

static int rs_leaf(void *ctx, const struct pagewalk_entry *e)
{
    struct range_seen *r = ctx;
    if (r->leaves < 8)
        r->va[r->leaves] = e->va;
    r->leaves++;
    return (int)r->leaves == r->stop_after ? 7 : 0;
}
static int rs_pre(void *ctx, const struct pagewalk_entry *e)
{
    (void)e;
    ((struct range_seen *)ctx)->pre++;
    return 0;
}
static int rs_post(void *ctx, const struct pagewalk_entry *e)
{
    (void)e;
    ((struct range_seen *)ctx)->post++;
    return 0;
}

Test(pagewalk, range_visits_only_the_range_in_order_and_stops)
{
    static const struct pagewalk_ops ops = {.leaf = rs_leaf, .table_pre = rs_pre, .table_post = rs_post};
    for (unsigned i = 0; i < 6; i++)
        cr_assert_eq(paging_map_in(&as, PA, VA_HIGH + i * PAGE_SIZE, PAGE_SIZE_4K, RW_NX, CACHE_WB, 0), 0);
    cr_assert_eq(paging_map_in(&as, PA, VA_LOW, PAGE_SIZE_4K, RW_NX, CACHE_WB, 0), 0);
    struct range_seen r = {0};
    /* pages 2..4 of the upper-half run: the canonical addresses, in order */
    cr_assert_eq(pagewalk_range(PHYS2VIRT(as.pml4), NULL, PT_LEVEL_PML4, 0, VA_HIGH + 2 * PAGE_SIZE,
                                VA_HIGH + 5 * PAGE_SIZE - 1, PTE_WRITABLE | PTE_USER, &ops, &r), 0);
    cr_assert_eq(r.leaves, 3);
    for (unsigned i = 0; i < 3; i++)
        cr_assert_eq(r.va[i], VA_HIGH + (2 + i) * PAGE_SIZE);
    cr_assert_eq(r.pre, 3, "PML4, PDPT and PD entries entered");
    cr_assert_eq(r.post, 3);
    /* the whole space: the lower half first; a non-zero return ends the walk */
    r = (struct range_seen){.stop_after = 2};
    cr_assert_eq(pagewalk_range(PHYS2VIRT(as.pml4), NULL, PT_LEVEL_PML4, 0, 0, ~0ULL,
                                PTE_WRITABLE | PTE_USER, &ops, &r), 7);
    cr_assert_eq(r.leaves, 2);
    cr_assert_eq(r.va[0], VA_LOW);
    cr_assert_eq(r.va[1], VA_HIGH);
    cr_assert_eq(r.post, 3, "only the lower half's tables were left before the stop");
}

Test(pagewalk, readable_walks_the_active_tables)
{
    cr_assert_eq(paging_map_in(&as, PA, VA_HIGH + PAGE_SIZE, PAGE_SIZE_4K, RW_NX, CACHE_WB, 0), 0);
    paging_activate(&as);
    cr_assert(pagewalk_readable(VA_HIGH + PAGE_SIZE + 0x10));
    cr_assert(!pagewalk_readable(VA_HIGH), "the page below is not mapped");
    cr_assert(!pagewalk_readable(0x0000800000000000ULL), "not canonical");
    cr_assert_eq(paging_unmap_in(&as, VA_HIGH + PAGE_SIZE, PAGE_SIZE_4K), 0);
    cr_assert(!pagewalk_readable(VA_HIGH + PAGE_SIZE));
    arch_write_cr3(0);
}

Test(pagewalk, readable_refuses_a_table_beyond_the_hhdm)
{
    /* a table freed and reused under the lock-free walk (another CPU
     * unmapping while a backtrace runs) may hold any bits: a "table" address
     * past the direct map must end the walk, not fault the reporting CPU */
    cr_assert_eq(paging_map_in(&as, PA, VA_HIGH + PAGE_SIZE, PAGE_SIZE_4K, RW_NX, CACHE_WB, 0), 0);
    paging_activate(&as);
    struct pt_cursor c;
    pt_walk(&c, as.pml4, VA_HIGH + PAGE_SIZE, PT_LEVEL_PT);
    pte_t *pde = c.parent, saved = *pde;
    *pde = pte_make_table(hhdm_size + GiB(64), PTE_WRITABLE); /* nothing is mapped there */
    cr_assert(!pagewalk_readable(VA_HIGH + PAGE_SIZE));
    *pde = saved;
    cr_assert(pagewalk_readable(VA_HIGH + PAGE_SIZE));
    arch_write_cr3(0);
}
