/* In-kernel self-tests of mm/paging and mm/mapper on the live tables (after
 * mapper_full_map): TLB invalidation, W^X of the kernel image, NX on data,
 * the unmapped null page and stack guard pages, splitting a live HHDM page,
 * and TLB shootdown: no CPU reads through a mapping another CPU replaced. */
#include "arch/x86_64/mmu_ops.h"
#include "arch/x86_64/smp.h"
#include "lib/backtrace.h"
#include "boot/boot_info.h"
#include "lib/printf.h"
#include "lib/types.h"
#include "mm/frame.h"
#include "mm/mapper.h"
#include "mm/mm.h"
#include "mm/pagewalk.h"
#include "mm/paging.h"
#include "test/ktest.h"

#define VEC_PF     14
#define PF_PRESENT (1u << 0) /* the page was present: a protection violation */
#define PF_WRITE   (1u << 1)

/* A virtual window no mapper region uses (PML4 slot 504). */
#define TEST_VA 0xfffffc0000000000ULL

static const uint64_t ro_value = 0x5a5a5a5a5a5a5a5aULL;
static volatile uintptr_t null_addr; /* stays 0: hides the null from the compiler */

static void write_u64(void *p) { *(volatile uint64_t *)p = 0x1234; }
static void read_u64(void *p) { (void)*(volatile uint64_t *)p; }

static volatile uint64_t *at(vaddr_t va) { return (volatile uint64_t *)va; }

KTEST(paging_live_tables_are_ours)
{
    KT_ASSERT(!kernel_as.borrowed, "mapper_full_map has not run");
    KT_EXPECT(paging_is_active(&kernel_as));
    KT_EXPECT(!paging_query(&kernel_as, 0, NULL), "virtual 0 is mapped");
    paging_walk_print((vaddr_t)write_u64);
}

/* The kernel half's top level is fixed: the HHDM's and the windows' PML4
 * slots have their PDPTs, and unmapping the last page of a slot leaves the
 * entry as it was (an address space sharing the kernel half would lose its
 * PDPT otherwise). */
KTEST(paging_kernel_half_top_level_fixed)
{
    const pte_t *pml4 = (const pte_t *)PHYS2VIRT(kernel_as.pml4);
    KT_EXPECT(kernel_as.kernel_half_fixed);
    unsigned missing = 0;
    for (unsigned i = pt_index(MAPPER_WINDOWS_BASE, PT_LEVEL_PML4); i < PT_ENTRIES; i++)
        missing += !(pml4[i] & PTE_PRESENT);
    KT_EXPECT(missing == 0, "%u window PML4 slots without a PDPT", missing);
    KT_EXPECT(pml4[pt_index(hhdm_offset, PT_LEVEL_PML4)] & PTE_PRESENT, "HHDM slot empty");
    unsigned slot = pt_index(TEST_VA, PT_LEVEL_PML4);
    pte_t before = pml4[slot] & PTE_ADDR_MASK;
    uint64_t tables = paging_table_pages();
    paddr_t f = frame_alloc();
    KT_ASSERT(f);
    KT_ASSERT(paging_map(f, TEST_VA, PAGE_WRITABLE | PAGE_NX) == 0);
    *at(TEST_VA) = 1;
    KT_ASSERT(paging_unmap(TEST_VA) == 0);
    frame_free(f);
    KT_EXPECT((pml4[slot] & PTE_PRESENT) && (pml4[slot] & PTE_ADDR_MASK) == before,
              "PML4[%u] was %#llx, now %#llx", slot, (unsigned long long)before,
              (unsigned long long)pml4[slot]);
    KT_EXPECT(paging_table_pages() == tables, "%llu page tables, was %llu",
              (unsigned long long)paging_table_pages(), (unsigned long long)tables);
}

KTEST(paging_map_translate_unmap_tlb)
{
    uint64_t tables = paging_table_pages();
    paddr_t f1 = frame_alloc(), f2 = frame_alloc();
    KT_ASSERT(f1 && f2);
    vaddr_t va1 = TEST_VA, va2 = TEST_VA + MiB(2) + PAGE_SIZE; /* different page tables */
    KT_ASSERT(paging_map(f1, va1, PAGE_WRITABLE | PAGE_NX) == 0);
    KT_ASSERT(paging_map(f1, va2, PAGE_WRITABLE | PAGE_NX) == 0);
    KT_EXPECT(paging_translate(va1 + 0x10) == f1 + 0x10);
    KT_EXPECT(paging_translate(va2) == f1);

    /* Two views of one frame. */
    *at(va1) = 0xaaaa;
    KT_EXPECT(*at(va2) == 0xaaaa, "alias does not see the write");

    /* va2 is in the TLB now; unmap it and map f2 there: a read must see f2. */
    KT_ASSERT(paging_unmap(va2) == 0);
    KT_EXPECT(paging_translate(va2) == PAGING_NO_MAPPING);
    *(volatile uint64_t *)PHYS2VIRT(f2) = 0xbbbb;
    KT_ASSERT(paging_map(f2, va2, PAGE_WRITABLE | PAGE_NX) == 0);
    KT_EXPECT(*at(va2) == 0xbbbb, "stale TLB entry after unmap + map (invlpg missing)");

    /* Replacing a live mapping is flushed too. */
    KT_EXPECT(*at(va1) == 0xaaaa);
    KT_ASSERT(paging_map_in(&kernel_as, f2, va1, PAGE_SIZE_4K, PAGE_WRITABLE | PAGE_NX, CACHE_WB,
                            PAGING_REPLACE) == 0);
    KT_EXPECT(*at(va1) == 0xbbbb, "stale TLB entry after PAGING_REPLACE");

    KT_EXPECT(paging_unmap(va1) == 0);
    KT_EXPECT(paging_unmap(va2) == 0);
    uint64_t cr2 = 0, err = 0;
    KT_EXPECT(ktest_expect_fault(read_u64, (void *)va1, VEC_PF, &cr2, &err), "unmapped read");
    KT_EXPECT(cr2 == va1 && !(err & PF_PRESENT), "cr2=%#llx err=%#llx", (unsigned long long)cr2,
              (unsigned long long)err);
    KT_EXPECT(paging_table_pages() == tables, "page tables not reclaimed: %llu vs %llu",
              (unsigned long long)paging_table_pages(), (unsigned long long)tables);
    frame_free(f1);
    frame_free(f2);
}

KTEST(paging_rodata_write_faults)
{
    uint64_t cr2 = 0, err = 0;
    KT_ASSERT(ktest_expect_fault(write_u64, (void *)&ro_value, VEC_PF, &cr2, &err),
              "write to rodata did not fault");
    KT_EXPECT(cr2 == (uint64_t)&ro_value, "cr2=%#llx", (unsigned long long)cr2);
    KT_EXPECT((err & (PF_PRESENT | PF_WRITE)) == (PF_PRESENT | PF_WRITE), "err=%#llx",
              (unsigned long long)err);
    KT_EXPECT(ro_value == 0x5a5a5a5a5a5a5a5aULL);
}

KTEST(paging_text_walk_rx)
{
    struct paging_mapping m;
    KT_ASSERT(paging_query(&kernel_as, (vaddr_t)write_u64, &m));
    KT_EXPECT(!(m.flags & PAGE_WRITABLE), "text is writable");
    KT_EXPECT(!(m.flags & PAGE_NX), "text is not executable");
    KT_EXPECT(!(m.flags & PAGE_USER));
    KT_ASSERT(paging_query(&kernel_as, (vaddr_t)&ro_value, &m));
    KT_EXPECT((m.flags & (PAGE_WRITABLE | PAGE_NX)) == (arch_has_nx() ? PAGE_NX : 0));
    KT_ASSERT(paging_query(&kernel_as, (vaddr_t)&null_addr, &m));
    KT_EXPECT(m.flags & PAGE_WRITABLE, "data not writable");
    KT_EXPECT((m.flags & PAGE_NX) || !arch_has_nx());
    uint64_t cr2 = 0, err = 0;
    KT_EXPECT(ktest_expect_fault(write_u64, (void *)write_u64, VEC_PF, &cr2, &err),
              "write to text did not fault");
}

/* Unmapping one 4 KiB page of the HHDM splits the large page around it on the
 * live tables; its neighbours keep working, and it comes back as a 4 KiB page. */
KTEST(paging_live_split_of_hhdm)
{
    /* A 2 MiB-aligned frame is most likely inside a large HHDM page. */
    paddr_t f = frame_alloc_contig(1, MiB(2));
    if (!f)
        f = frame_alloc();
    KT_ASSERT(f);
    vaddr_t v = (vaddr_t)PHYS2VIRT(f), n = v ^ PAGE_SIZE;
    struct paging_mapping before, nb;
    KT_ASSERT(paging_query(&kernel_as, v, &before));
    bool neighbour = paging_query(&kernel_as, n, &nb);
    uint64_t nval = neighbour ? *at(n) : 0;

    KT_ASSERT(paging_unmap(v) == 0);
    uint64_t cr2 = 0, err = 0;
    KT_EXPECT(ktest_expect_fault(read_u64, (void *)v, VEC_PF, &cr2, &err), "unmapped HHDM page");
    if (neighbour) {
        KT_EXPECT(paging_translate(n) == nb.phys);
        KT_EXPECT(*at(n) == nval, "neighbour changed");
    }
    KT_ASSERT(paging_map_in(&kernel_as, f, v, PAGE_SIZE_4K, PAGE_WRITABLE | PAGE_NX, CACHE_WB,
                            0) == 0);
    *at(v) = 0x77;
    KT_EXPECT(*at(v) == 0x77);
    KT_EXPECT(paging_translate(v) == f);
    kprintf("  (the page was a %llu KiB page)\n", (unsigned long long)(before.page_size >> 10));
    frame_free_contig(f, 1);
}

KTEST(paging_kernel_hhdm_alias_is_read_only)
{
    /* The kernel's text seen through the HHDM: readable, never writable. */
    uint8_t *alias = PHYS2VIRT(boot_ctx.kernel_phys_base + PAGE_SIZE);
    uint64_t cr2 = 0, err = 0;
    KT_EXPECT(*(volatile uint8_t *)alias == *(volatile uint8_t *)(boot_ctx.kernel_virt_base + PAGE_SIZE),
              "the alias does not show the kernel image");
    KT_ASSERT(ktest_expect_fault(write_u64, alias, VEC_PF, &cr2, &err),
              "write through the HHDM alias of the kernel did not fault");
    KT_EXPECT(cr2 == (uint64_t)alias, "cr2=%#llx", (unsigned long long)cr2);
    KT_EXPECT((err & (PF_PRESENT | PF_WRITE)) == (PF_PRESENT | PF_WRITE), "err=%#llx",
              (unsigned long long)err);
}

/* backtrace_readable reaches the page tables only through the check mm
 * registered (pagewalk_readable, a walk of CR3): a page mapped a moment ago
 * is readable, the same page after its unmap is not, and a read straddling
 * into an unmapped page is refused. */
static bool say_readable(uint64_t va)
{
    (void)va;
    return true;
}

KTEST(paging_backtrace_readable_walks_live_tables)
{
    paddr_t f = frame_alloc();
    KT_ASSERT(f);
    KT_EXPECT(!backtrace_readable(TEST_VA), "unmapped window reported readable");
    KT_ASSERT(paging_map(f, TEST_VA, PAGE_WRITABLE | PAGE_NX) == 0);
    KT_EXPECT(pagewalk_readable(TEST_VA) && backtrace_readable(TEST_VA));
    KT_EXPECT(backtrace_readable(TEST_VA + PAGE_SIZE - 8));
    KT_EXPECT(!backtrace_readable(TEST_VA + PAGE_SIZE - 4), "read into the unmapped next page");
    KT_ASSERT(paging_unmap(TEST_VA) == 0);
    KT_EXPECT(!pagewalk_readable(TEST_VA) && !backtrace_readable(TEST_VA), "unmapped page readable");
    frame_free(f);
    /* the registered check decides, not a walk of backtrace's own */
    backtrace_set_readable(say_readable);
    bool claimed = backtrace_readable(TEST_VA);
    backtrace_set_readable(NULL);
    bool without = backtrace_readable(TEST_VA) || !backtrace_readable((uint64_t)(uintptr_t)write_u64);
    backtrace_set_readable(pagewalk_readable);
    KT_EXPECT(claimed, "backtrace_readable ignored the registered check");
    KT_EXPECT(!without, "without a check only the kernel image is readable");
}

/* ---- TLB shootdown across CPUs ------------------------------------------------------------
 * One CPU keeps switching a page of the test window between two frames
 * (paging_map_in with PAGING_REPLACE: a present mapping changed, so the other
 * CPUs' TLBs must be flushed before it returns) and, once the switch
 * returned, writes a stale pattern into the frame it left. Every other CPU
 * reads the page all along: reading the stale pattern means it still
 * translated through the old mapping. With one CPU, the writer's own reads
 * check its local invalidation. */

#define SHOOT_VA     (TEST_VA + 0x40000)
#define SHOOT_ROUNDS 100
#define SHOOT_STALE  0xdeadbeefdeadbeefULL

static struct {
    unsigned writer;       /* cpu_index() of the CPU that switches the page */
    paddr_t frame[2];
    unsigned done;         /* atomic: the writer finished */
    unsigned readers;      /* atomic: CPUs reading */
    unsigned round;        /* atomic: set by the writer once a round's stale pattern is in */
    unsigned seen[CPU_MAX]; /* atomic: the last round each reader read the page in */
    uint64_t stale_reads;  /* atomic */
    uint64_t reads;        /* atomic */
    unsigned writer_errors;
} shoot;

static void fill_frame(paddr_t f, uint64_t v)
{
    volatile uint64_t *p = PHYS2VIRT(f);
    for (unsigned i = 0; i < PAGE_SIZE / 8; i++)
        p[i] = v;
}

static void shoot_work(void *arg)
{
    (void)arg;
    if (cpu_index() != shoot.writer) {
        __atomic_fetch_add(&shoot.readers, 1, __ATOMIC_RELAXED);
        uint64_t reads = 0, stale = 0;
        while (!__atomic_load_n(&shoot.done, __ATOMIC_ACQUIRE)) {
            unsigned r = __atomic_load_n(&shoot.round, __ATOMIC_ACQUIRE);
            uint64_t v = *at(SHOOT_VA + (reads % 512) * 8);
            stale += v == SHOOT_STALE;
            reads++;
            __atomic_store_n(&shoot.seen[cpu_index()], r, __ATOMIC_RELEASE);
        }
        __atomic_fetch_add(&shoot.reads, reads, __ATOMIC_RELAXED);
        __atomic_fetch_add(&shoot.stale_reads, stale, __ATOMIC_RELAXED);
        return;
    }
    unsigned others = smp_cpu_count() - 1;
    while (__atomic_load_n(&shoot.readers, __ATOMIC_ACQUIRE) < others)
        cpu_relax(); /* every reader is reading (and caching the translation) */
    for (unsigned r = 1; r <= SHOOT_ROUNDS; r++) {
        paddr_t next = shoot.frame[r & 1], old = shoot.frame[(r - 1) & 1];
        fill_frame(next, r + 1);
        if (paging_map_in(&kernel_as, next, SHOOT_VA, PAGE_SIZE_4K, PAGE_WRITABLE | PAGE_NX,
                          CACHE_WB, PAGING_REPLACE) != 0)
            shoot.writer_errors++;
        fill_frame(old, SHOOT_STALE);
        if (*at(SHOOT_VA) != r + 1)
            shoot.writer_errors++; /* this CPU's own TLB kept the old page */
        /* every reader reads the page at least once after the stale pattern is in */
        __atomic_store_n(&shoot.round, r, __ATOMIC_RELEASE);
        for (unsigned i = 0; i < CPU_MAX; i++)
            while (i != shoot.writer && smp_cpu_online(i) &&
                   __atomic_load_n(&shoot.seen[i], __ATOMIC_ACQUIRE) < r)
                cpu_relax();
    }
    __atomic_store_n(&shoot.done, 1, __ATOMIC_RELEASE);
}

KTEST(paging_shootdown_no_cpu_reads_through_a_replaced_mapping)
{
    uint64_t tables = paging_table_pages();
    shoot.frame[0] = frame_alloc();
    shoot.frame[1] = frame_alloc();
    KT_ASSERT(shoot.frame[0] && shoot.frame[1]);
    fill_frame(shoot.frame[0], 1);
    KT_ASSERT(paging_map_in(&kernel_as, shoot.frame[0], SHOOT_VA, PAGE_SIZE_4K,
                            PAGE_WRITABLE | PAGE_NX, CACHE_WB, 0) == 0);
    uint64_t sd0, pages0, full0, sd1, pages1, full1;
    arch_tlb_stats(&sd0, &pages0, &full0);
    shoot.writer = cpu_index();
    shoot.done = shoot.readers = shoot.writer_errors = 0;
    shoot.stale_reads = shoot.reads = 0;
    shoot.round = 0;
    for (unsigned i = 0; i < CPU_MAX; i++)
        shoot.seen[i] = 0;
    smp_run_on_all(shoot_work, NULL);
    arch_tlb_stats(&sd1, &pages1, &full1);
    KT_EXPECT(paging_unmap_in(&kernel_as, SHOOT_VA, PAGE_SIZE_4K) == 0);
    frame_free(shoot.frame[0]);
    frame_free(shoot.frame[1]);
    KT_EXPECT(paging_table_pages() == tables, "page tables left behind");
    kprintf("paging: shootdown test: %u readers, %llu reads, %llu stale, %llu shootdowns\n",
            shoot.readers, (unsigned long long)shoot.reads,
            (unsigned long long)shoot.stale_reads, (unsigned long long)(sd1 - sd0));
    KT_EXPECT(shoot.writer_errors == 0, "the writer's own reads saw the old page");
    KT_EXPECT(shoot.stale_reads == 0, "%llu reads through a replaced mapping",
              (unsigned long long)shoot.stale_reads);
    KT_EXPECT(shoot.readers == smp_cpu_count() - 1);
    if (shoot.readers)
        KT_EXPECT(sd1 - sd0 >= SHOOT_ROUNDS, "only %llu shootdowns sent",
                  (unsigned long long)(sd1 - sd0));
}
