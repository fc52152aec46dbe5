/* Host tests of mm/pagewalk: every leaf visited once, in address order, with
 * the effective attributes of all levels combined. */
#include <criterion/criterion.h>

#include "mm/frame.h"
#include "mm/mm.h"
#include "mm/pagewalk.h"
#include "mm/paging.h"
#include "mm/pte.h"
#include "support.h"

static struct addrspace as;

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

static void teardown(void) { host_arena_free(); }

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
