/* In-kernel out-of-memory tests: take every frame, then (separately) every
 * byte the heap can get, check that each caller sees NULL or an error and
 * that nothing changed state on the way, give everything back and check that
 * free frames, heap statistics and page-table pages are exactly at their
 * baseline.
 *
 * Scaling: frames are taken in the largest pieces first (1 GiB, 2 MiB runs,
 * then 64 KiB runs, then single frames: ktest_grab_frames), so a 256 GiB
 * guest costs a few hundred contiguous grabs, not 64 million calls; each run
 * records itself in its own first frame (one write per run). Giving a run
 * back is frame_free_contig, one frame at a time: that loop dominates at
 * high RAM.
 *
 * Both tests hold in any heap state (the monitor's `ktest` runs them after
 * its own `alloc`s): they compare with a baseline taken at their start and
 * never assume the heap had no room of some kind before they filled it.
 *
 * Nothing the console, serial port or the test runner do allocates memory
 * (the framebuffer shadow is taken once at boot), so printing a failure while
 * memory is exhausted is safe. */
#include "arch/x86_64/cpu_local.h"
#include "arch/x86_64/smp.h"
#include "lib/printf.h"
#include "lib/string.h"
#include "mm/frame.h"
#include "mm/heap.h"
#include "mm/mm.h"
#include "mm/paging.h"
#include "test/ktest.h"

/* A 1 GiB slot of the paging ktests' scratch window that nothing maps, so a
 * mapping there needs at least a new page directory and page table. */
#define OOM_VA 0xfffffc7fc0000000ULL

struct baseline {
    uint64_t frames, tables, kernel_tables;
    struct heap_stats heap;
};

static void take_baseline(struct baseline *b)
{
    heap_trim(); /* no cached slabs: exhaustion would trim them */
    b->frames = ktest_free_frames();
    b->tables = paging_table_pages();
    b->kernel_tables = kernel_as.table_pages;
    heap_get_stats(&b->heap);
}

/* Everything back where it was: frames, tables, heap. */
static void expect_baseline(const struct baseline *b)
{
    heap_trim();
    struct heap_stats st;
    heap_get_stats(&st);
    KT_EXPECT(ktest_free_frames() == b->frames, "%llu free frames, baseline %llu",
              (unsigned long long)ktest_free_frames(), (unsigned long long)b->frames);
    KT_EXPECT(paging_table_pages() == b->tables, "%llu page-table pages, baseline %llu",
              (unsigned long long)paging_table_pages(), (unsigned long long)b->tables);
    KT_EXPECT(kernel_as.table_pages == b->kernel_tables);
    KT_EXPECT(st.pages_held == b->heap.pages_held, "heap holds %llu pages, baseline %llu",
              (unsigned long long)st.pages_held, (unsigned long long)b->heap.pages_held);
    KT_EXPECT(st.live_blocks == b->heap.live_blocks, "%llu live blocks, baseline %llu",
              (unsigned long long)st.live_blocks, (unsigned long long)b->heap.live_blocks);
    KT_EXPECT(st.bytes_in_use == b->heap.bytes_in_use);
    KT_EXPECT(frame_check(), "frame allocator invariants");
    KT_EXPECT(heap_check(), "heap invariants");
}

/* Paging calls that need a table page while no frame is free: -ENOMEM, and
 * nothing mapped, nothing counted, no table leaked. */
static void check_paging_enomem(paddr_t some_frame, vaddr_t large_va)
{
    uint64_t tables = paging_table_pages();
    KT_EXPECT(paging_map(some_frame, OOM_VA, PAGE_WRITABLE | PAGE_NX) == -PAGING_ENOMEM);
    KT_EXPECT(paging_map_in(&kernel_as, ALIGN_DOWN(some_frame, MiB(2)), OOM_VA, MiB(2),
                            PAGE_NX, CACHE_WB, 0) == -PAGING_ENOMEM);
    KT_EXPECT(paging_map_range(&kernel_as, some_frame, OOM_VA + MiB(2) - PAGE_SIZE, 2 * PAGE_SIZE,
                               PAGE_NX, CACHE_WB, 0) == -PAGING_ENOMEM);
    KT_EXPECT(paging_translate(OOM_VA) == PAGING_NO_MAPPING);
    KT_EXPECT(paging_translate(OOM_VA + MiB(2)) == PAGING_NO_MAPPING);
    /* a 4 KiB unmap inside one of the HHDM's large pages needs a split:
     * refused, the mapping intact (large_va is 0 when no run lies in one) */
    if (large_va) {
        struct paging_mapping before, after;
        KT_ASSERT(paging_query(&kernel_as, large_va, &before) && before.page_size > PAGE_SIZE);
        int r = paging_unmap(large_va);
        KT_EXPECT(r == -PAGING_ENOMEM, "paging_unmap in a large page with no frame: %s",
                  paging_strerror(r));
        KT_EXPECT(paging_query(&kernel_as, large_va, &after) && after.entry == before.entry &&
                      after.page_size == before.page_size,
                  "the HHDM mapping changed");
    }
    struct addrspace as;
    KT_EXPECT(paging_as_create(&as) == -PAGING_ENOMEM);
    KT_EXPECT(paging_table_pages() == tables, "table pages %llu, before %llu",
              (unsigned long long)paging_table_pages(), (unsigned long long)tables);
}

KTEST(oom_frames_exhausted_every_caller_fails_then_baseline)
{
    struct baseline b;
    take_baseline(&b);
    uint64_t taken;
    paddr_t runs = ktest_grab_frames(0, &taken);
    KT_EXPECT(taken == b.frames, "took %llu of %llu free frames", (unsigned long long)taken,
              (unsigned long long)b.frames);
    KT_EXPECT(ktest_free_frames() == 0);
    KT_EXPECT(frame_alloc() == 0);
    KT_EXPECT(frame_alloc_zeroed() == 0);
    KT_EXPECT(frame_alloc_contig(1, PAGE_SIZE) == 0);
    KT_EXPECT(frame_alloc_contig(16, KiB(64)) == 0);
    /* the heap: nothing that needs a new run can succeed */
    KT_EXPECT(kmalloc(MiB(1)) == NULL);
    KT_EXPECT(kmalloc(HEAP_MEDIUM_MAX + 1) == NULL);
    KT_EXPECT(kmalloc_aligned(100, MiB(2)) == NULL);
    KT_EXPECT(kcalloc(1024, 1024) == NULL);
    struct heap_stats st;
    heap_get_stats(&st);
    KT_EXPECT(st.pages_held == b.heap.pages_held, "the heap grew with no frames");
    /* small blocks come from what the heap holds, until that runs out */
    void *list = NULL, *p;
    uint64_t n = 0;
    while ((p = kmalloc(200)) != NULL && n < 100000) {
        *(void **)p = list;
        list = p;
        n++;
    }
    KT_EXPECT(p == NULL, "kmalloc(200) never failed with no frames");
    heap_get_stats(&st);
    KT_EXPECT(st.pages_held == b.heap.pages_held);
    /* a frame we hold inside an HHDM large page, for the split check */
    vaddr_t large_va = 0;
    for (paddr_t r = runs, next; r && !large_va; r = next) {
        uint64_t count;
        next = ktest_grab_next(r, &count);
        struct paging_mapping m;
        vaddr_t va = (vaddr_t)PHYS2VIRT(r) + PAGE_SIZE;
        if (count > 1 && paging_query(&kernel_as, va, &m) && m.page_size > PAGE_SIZE)
            large_va = va;
    }
    if (runs)
        check_paging_enomem(runs, large_va);
    while (list) {
        void *next = *(void **)list;
        kfree(list);
        list = next;
    }
    ktest_release_frames(runs);
    expect_baseline(&b);
    /* with memory back, the same paging calls work and give their tables back */
    paddr_t f = frame_alloc();
    KT_ASSERT(f);
    KT_EXPECT(paging_map(f, OOM_VA, PAGE_WRITABLE | PAGE_NX) == 0);
    KT_EXPECT(paging_translate(OOM_VA) == f);
    KT_EXPECT(paging_unmap(OOM_VA) == 0);
    frame_free(f);
    expect_baseline(&b);
}

/* The heap's share of memory is bounded (the rest is taken away first) so
 * that filling it is quick at any RAM size: what matters is the heap running
 * out, not how much it had. */
#define OOM_HEAP_FRAMES (MiB(48) / PAGE_SIZE)

/* What the heap test asks for, largest first: every tier, an aligned block
 * and the small classes it probes. */
static const struct {
    size_t size, align;
    const char *what;
} oom_probes[] = {
    {MiB(4), 16, "large"},   {MiB(1), 16, "large"},   {KiB(100), 16, "large"},
    {HEAP_MEDIUM_MAX, 16, "medium"}, {KiB(20), 16, "medium"}, {9000, 16, "medium"},
    {64, 4096, "aligned"},   {4096, 16, "small (the 4 KiB class)"},
    {3000, 16, "small"},     {1000, 16, "small"},     {200, 16, "small"},
    {64, 16, "small"},       {16, 16, "small"},
};

static void *oom_probe(size_t k)
{
    return oom_probes[k].align > 16 ? kmalloc_aligned(oom_probes[k].size, oom_probes[k].align)
                                    : kmalloc(oom_probes[k].size);
}

/* The heap test's blocks, chained through their first word. */
static void *oom_list;
static size_t oom_head_probe; /* the oom_probes entry that made the head block */

static void oom_push(void *p, size_t probe)
{
    *(void **)p = oom_list;
    oom_list = p;
    oom_head_probe = probe;
}

/* Fills the heap with every probe in turn until each fails, then checks that
 * every one of them still fails. This holds whatever the heap held before:
 * space the heap already had for a probe (a chunk with room for 9000 bytes,
 * a partial slab of some class, ...) is used up by that probe's own fill,
 * never assumed absent. Everything taken is on oom_list. */
KTEST(oom_heap_exhausted_every_tier_fails_then_baseline)
{
    struct baseline b;
    take_baseline(&b);
    uint64_t taken;
    paddr_t runs = ktest_grab_frames(OOM_HEAP_FRAMES, &taken);
    oom_list = NULL;
    void *p;
    uint64_t n = 0;
    for (size_t k = 0; k < ARRAY_SIZE(oom_probes); k++) {
        while ((p = oom_probe(k)) != NULL) {
            oom_push(p, k);
            n++;
        }
    }
    KT_EXPECT(n > 0);
    for (size_t k = 0; k < ARRAY_SIZE(oom_probes); k++) {
        p = oom_probe(k);
        KT_EXPECT(p == NULL, "%s: kmalloc%s(%zu) succeeded with the heap exhausted",
                  oom_probes[k].what, oom_probes[k].align > 16 ? "_aligned" : "",
                  oom_probes[k].size);
        if (p) /* keep it: freed with the others */
            oom_push(p, k);
    }
    p = kcalloc(4, 4); /* the 16-byte class is exhausted */
    KT_EXPECT(p == NULL);
    if (p)
        oom_push(p, ARRAY_SIZE(oom_probes) - 1); /* the 16-byte probe */
    /* a failed krealloc keeps the block and its contents */
    KT_ASSERT(oom_list != NULL);
    KT_EXPECT(krealloc(oom_list, MiB(2)) == NULL);
    KT_EXPECT(heap_validate_ptr(oom_list) == NULL, "the block survived a failed krealloc");
    KT_EXPECT(heap_check(), "heap invariants while exhausted");
    /* one block back: the same request (size and alignment: an aligned
     * 64-byte block comes from the 4 KiB class, not the 64-byte one) is
     * served at once */
    void *first = oom_list;
    size_t k = oom_head_probe;
    oom_list = *(void **)first;
    kfree(first);
    p = oom_probe(k);
    KT_EXPECT(p != NULL, "a freed %s block of %zu bytes (aligned %zu) is usable again",
              oom_probes[k].what, oom_probes[k].size, oom_probes[k].align);
    kfree(p);
    while (oom_list) {
        void *next = *(void **)oom_list;
        kfree(oom_list);
        oom_list = next;
    }
    ktest_release_frames(runs);
    expect_baseline(&b);
}

/* ---- every CPU out of memory at once (issue 13) ------------------------------------------- */

static void *oom_cpu_list[CPU_MAX];           /* each CPU's own blocks, linked through them */
static uint64_t oom_cpu_blocks[CPU_MAX];      /* blocks each CPU got */
static uint64_t oom_cpu_bad;                  /* atomic: blocks whose contents changed */

static void oom_warm(void *arg)
{
    (void)arg;
    kfree(kmalloc(16)); /* the CPU's magazine set exists before any baseline */
}

/* Allocates small and medium blocks until both are refused, twice (the
 * second time after giving half back, which other CPUs may take), then
 * frees everything. Each block holds its owner's index after the link. */
static void oom_every_cpu(void *arg)
{
    (void)arg;
    unsigned me = cpu_index();
    static const size_t sizes[] = {200, 48, 3000, 9000};
    for (int pass = 0; pass < 2; pass++) {
        unsigned refused = 0;
        for (unsigned k = 0; refused < 8; k++) { /* each refusal drained every CPU first */
            uint64_t *p = kmalloc(sizes[k % ARRAY_SIZE(sizes)]);
            if (!p) {
                refused++;
                continue;
            }
            p[0] = (uint64_t)(uintptr_t)oom_cpu_list[me];
            p[1] = me;
            oom_cpu_list[me] = p;
            oom_cpu_blocks[me]++;
        }
        for (uint64_t i = 0; oom_cpu_list[me] && i < oom_cpu_blocks[me] / 2; i++) {
            uint64_t *p = oom_cpu_list[me];
            if (p[1] != me)
                __atomic_fetch_add(&oom_cpu_bad, 1, __ATOMIC_RELAXED);
            oom_cpu_list[me] = (void *)(uintptr_t)p[0];
            kfree(p);
        }
    }
    while (oom_cpu_list[me]) {
        uint64_t *p = oom_cpu_list[me];
        if (p[1] != me)
            __atomic_fetch_add(&oom_cpu_bad, 1, __ATOMIC_RELAXED);
        oom_cpu_list[me] = (void *)(uintptr_t)p[0];
        kfree(p);
    }
}

/* Every CPU exhausts the heap at once with only a few frames left: each sees
 * NULL (never a crash, never a block handed out twice), each OOM drains the
 * other CPUs' magazines, and once everything is freed every count, the free
 * frames and the heap's invariants are back at their baseline. */
KTEST(oom_heap_every_cpu_at_once_then_baseline)
{
    smp_run_on_all(oom_warm, NULL);
    struct baseline b;
    take_baseline(&b);
    uint64_t taken;
    paddr_t runs = ktest_grab_frames(96, &taken); /* about 384 KiB left for the heap */
    memset(oom_cpu_list, 0, sizeof(oom_cpu_list));
    memset(oom_cpu_blocks, 0, sizeof(oom_cpu_blocks));
    oom_cpu_bad = 0;
    smp_run_on_all(oom_every_cpu, NULL);
    KT_EXPECT(oom_cpu_bad == 0, "%llu blocks changed hands while allocated",
              (unsigned long long)oom_cpu_bad);
    for (unsigned c = 0; c < smp_cpu_count() && c < CPU_MAX; c++)
        KT_EXPECT(oom_cpu_blocks[c] > 0, "CPU %u got no block at all", c);
    KT_EXPECT(heap_check(), "heap invariants after every CPU ran out");
    ktest_release_frames(runs);
    expect_baseline(&b);
    kprintf("oom-smp: %u CPUs, %llu blocks on CPU 0 with %llu frames left\n", smp_cpu_count(),
            (unsigned long long)oom_cpu_blocks[0], (unsigned long long)(b.frames - taken));
}
