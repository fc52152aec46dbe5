/* TLB shootdown, proven on every CPU at once: the other CPUs keep reading a
 * page of the kernel's address space while CPU 0 unmaps it and reuses its
 * frame with a new pattern. Once paging_unmap_in has returned, no CPU may
 * still translate the old address to that frame, so no reader ever sees the
 * new pattern through the old mapping: it sees the old pattern (before the
 * unmap reached it) or a page fault (after). Without a shootdown the
 * readers' TLBs keep the translation they are using and the new pattern
 * shows through (the test fails that way when arch_tlb_shootdown does
 * nothing). The readers' loads are exception-table reads (extable.h), so a
 * fault on the unmapped page is expected and counted, not fatal.
 *
 * The same for a 64-page range (one batched shootdown: the readers spread
 * over the range), for the last page of the address space (its shootdown's
 * end is 2^64, passed as 0) and for a downgrade (writable -> read-only: a CPU that
 * keeps writing must fault once paging_protect has returned). On one CPU
 * there is nobody to shoot down: the tests check the local invalidation
 * only. */
#include "arch/x86_64/cpu.h"
#include "arch/x86_64/extable.h"
#include "arch/x86_64/smp.h"
#include "lib/string.h"
#include "mm/frame.h"
#include "mm/mapper.h"
#include "mm/mm.h"
#include "mm/paging.h"
#include "test/ktest.h"

#define TLB_VA (MAPPER_WINDOWS_BASE + GiB(8)) /* the self-tests' scratch window */
#define OLD_PATTERN 0x01d01d01d01d01d0ull
#define NEW_PATTERN 0x4e4e4e4e4e4e4e4eull
#define ROUNDS 10
#define RANGE_PAGES 64

struct shoot {
    vaddr_t base;          /* the mapping's first address */
    unsigned pages;        /* pages in the mapping (1 or RANGE_PAGES) */
    paddr_t frames[RANGE_PAGES];
    uint32_t round;        /* written by CPU 0: the round readers should read in */
    uint32_t phase;        /* 1: mapped, read it; 2: unmapped and reused: keep reading */
    uint32_t done;         /* CPU 0 finished */
    uint64_t reads[CPU_MAX][3]; /* per reader: [phase] loads that returned a value */
    uint64_t faults[CPU_MAX];   /* loads that faulted (after the unmap) */
    uint64_t stale[CPU_MAX];    /* loads that returned NEW_PATTERN: the failure */
    uint64_t seen[CPU_MAX];     /* per reader: phase-1 reads in the current round */
    uint64_t after[CPU_MAX];    /* per reader: loads after the reuse, this round */
    int err;                    /* CPU 0's first mapping error */
};
static struct shoot sh;

static void fill(paddr_t f, uint64_t pattern)
{
    uint64_t *p = PHYS2VIRT(f);
    for (size_t i = 0; i < PAGE_SIZE / 8; i++)
        p[i] = pattern;
}

/* Waits until every reader has counted `want` in counter[] (or gives up
 * after a generous bound, which the checks then report). */
static void wait_readers(uint64_t *counter, uint64_t want)
{
    for (uint64_t spins = 0; spins < 200000000ull; spins++) {
        bool all = true;
        for (unsigned c = 1; c < smp_cpu_count(); c++)
            if (__atomic_load_n(&counter[c], __ATOMIC_ACQUIRE) < want)
                all = false;
        if (all)
            return;
        cpu_pause();
    }
}

static void unmapper(void)
{
    for (uint32_t r = 0; r < ROUNDS && !sh.err; r++) {
        for (unsigned i = 0; i < sh.pages; i++)
            fill(sh.frames[i], OLD_PATTERN);
        for (unsigned i = 0; i < sh.pages && !sh.err; i++)
            sh.err = paging_map_in(&kernel_as, sh.frames[i], sh.base + i * PAGE_SIZE, PAGE_SIZE,
                                   PAGE_WRITABLE | PAGE_NX, CACHE_WB, 0);
        for (unsigned c = 0; c < CPU_MAX; c++)
            __atomic_store_n(&sh.seen[c], 0, __ATOMIC_RELAXED);
        __atomic_store_n(&sh.phase, 1, __ATOMIC_RELEASE);
        /* Every reader has read the mapping: its TLB holds the translation. */
        wait_readers(sh.seen, 16);
        paging_unmap_range(&kernel_as, sh.base, (uint64_t)sh.pages * PAGE_SIZE);
        /* The frames are "reused": a new owner writes a new pattern. */
        for (unsigned i = 0; i < sh.pages; i++)
            fill(sh.frames[i], NEW_PATTERN);
        for (unsigned c = 0; c < CPU_MAX; c++)
            __atomic_store_n(&sh.after[c], 0, __ATOMIC_RELAXED);
        __atomic_store_n(&sh.phase, 2, __ATOMIC_RELEASE);
        wait_readers(sh.after, 64); /* they keep trying the old address */
        __atomic_store_n(&sh.phase, 0, __ATOMIC_RELEASE);
    }
    __atomic_store_n(&sh.done, 1, __ATOMIC_RELEASE);
}

static void reader(unsigned me)
{
    uint64_t k = me;
    while (!__atomic_load_n(&sh.done, __ATOMIC_ACQUIRE)) {
        uint32_t phase = __atomic_load_n(&sh.phase, __ATOMIC_ACQUIRE);
        if (phase == 0) {
            cpu_pause();
            continue;
        }
        k = k * 6364136223846793005ull + 1442695040888963407ull;
        vaddr_t va = sh.base + ((k >> 33) % sh.pages) * PAGE_SIZE + ((k >> 20) & 0x1f8);
        uint64_t v;
        if (read_u64_nofault((const volatile void *)va, &v)) {
            sh.reads[me][phase]++;
            if (v == NEW_PATTERN)
                sh.stale[me]++;
        } else {
            sh.faults[me]++;
        }
        __atomic_add_fetch(phase == 1 ? &sh.seen[me] : &sh.after[me], 1, __ATOMIC_RELEASE);
    }
}

static void shoot_on_cpu(void *arg)
{
    (void)arg;
    if (cpu_index() == 0)
        unmapper();
    else
        reader(cpu_index());
}

/* Runs the unmap-and-reuse rounds over `pages` pages from base; checks the
 * readers. */
static void run_shootdown(vaddr_t base, unsigned pages)
{
    memset(&sh, 0, sizeof(sh));
    sh.base = base;
    sh.pages = pages;
    uint64_t free0 = ktest_free_frames();
    for (unsigned i = 0; i < pages; i++) {
        sh.frames[i] = frame_alloc();
        KT_ASSERT(sh.frames[i], "no frame");
    }
    smp_run_on_all(shoot_on_cpu, NULL);
    KT_EXPECT(sh.err == 0, "map failed: %s", paging_strerror(sh.err));
    KT_EXPECT(!paging_query(&kernel_as, base, NULL), "the test mapping is still there");
    for (unsigned c = 1; c < smp_cpu_count(); c++) {
        KT_EXPECT(sh.stale[c] == 0,
                  "CPU %u read the new pattern through the unmapped address %llu times "
                  "(%llu reads before, %llu after the unmap; %llu faults)",
                  c, (unsigned long long)sh.stale[c], (unsigned long long)sh.reads[c][1],
                  (unsigned long long)sh.reads[c][2], (unsigned long long)sh.faults[c]);
        KT_EXPECT(sh.reads[c][1] >= ROUNDS * 16, "CPU %u read the mapping only %llu times", c,
                  (unsigned long long)sh.reads[c][1]);
        KT_EXPECT(sh.faults[c] > 0, "CPU %u never faulted after the unmaps: it read nothing "
                  "then", c);
    }
    for (unsigned i = 0; i < pages; i++)
        frame_free(sh.frames[i]);
    KT_EXPECT(ktest_free_frames() == free0, "free frames %llu, were %llu",
              (unsigned long long)ktest_free_frames(), (unsigned long long)free0);
}

KTEST(tlb_unmapped_page_never_shows_its_reused_frame_on_any_cpu)
{
    run_shootdown(TLB_VA, 1);
}

KTEST(tlb_unmapped_range_never_shows_its_reused_frames_on_any_cpu)
{
    run_shootdown(TLB_VA, RANGE_PAGES);
}

/* The top page (slot 511, beside the kernel image, unused): the shootdown's
 * range ends at 2^64, which arch_tlb_shootdown is given as 0. */
KTEST(tlb_unmapped_last_page_of_the_address_space_is_shot_down)
{
    run_shootdown(0xfffffffffffff000ULL, 1);
}

/* ---- downgrade: writable -> read-only ------------------------------------- */

static uint32_t wr_phase; /* 1: writable, write; 2: read-only, writes must fault */
static uint32_t wr_done;
static uint64_t wr_ok[CPU_MAX][3], wr_faults[CPU_MAX], wr_count[CPU_MAX];
static int wr_err;

static void protect_on_cpu(void *arg)
{
    paddr_t f = *(paddr_t *)arg;
    unsigned me = cpu_index();
    if (me == 0) {
        for (int r = 0; r < ROUNDS && !wr_err; r++) {
            wr_err = paging_map_in(&kernel_as, f, TLB_VA, PAGE_SIZE, PAGE_WRITABLE | PAGE_NX,
                                   CACHE_WB, 0);
            for (unsigned c = 0; c < CPU_MAX; c++)
                __atomic_store_n(&wr_count[c], 0, __ATOMIC_RELAXED);
            __atomic_store_n(&wr_phase, 1, __ATOMIC_RELEASE);
            wait_readers(wr_count, 16);
            if (!wr_err)
                wr_err = paging_protect(&kernel_as, TLB_VA, PAGE_SIZE, PAGE_NX, CACHE_WB);
            for (unsigned c = 0; c < CPU_MAX; c++)
                __atomic_store_n(&wr_count[c], 0, __ATOMIC_RELAXED);
            __atomic_store_n(&wr_phase, 2, __ATOMIC_RELEASE);
            wait_readers(wr_count, 32);
            __atomic_store_n(&wr_phase, 0, __ATOMIC_RELEASE);
            paging_unmap_in(&kernel_as, TLB_VA, PAGE_SIZE);
        }
        __atomic_store_n(&wr_done, 1, __ATOMIC_RELEASE);
        return;
    }
    while (!__atomic_load_n(&wr_done, __ATOMIC_ACQUIRE)) {
        uint32_t phase = __atomic_load_n(&wr_phase, __ATOMIC_ACQUIRE);
        if (phase == 0) {
            cpu_pause();
            continue;
        }
        if (write_u64_nofault((volatile uint64_t *)TLB_VA + me, me))
            wr_ok[me][phase]++;
        else
            wr_faults[me]++;
        __atomic_add_fetch(&wr_count[me], 1, __ATOMIC_RELEASE);
    }
}

KTEST(tlb_downgraded_page_refuses_writes_on_every_cpu)
{
    wr_phase = wr_done = 0;
    wr_err = 0;
    memset(wr_ok, 0, sizeof(wr_ok));
    memset(wr_faults, 0, sizeof(wr_faults));
    paddr_t f = frame_alloc_zeroed();
    KT_ASSERT(f, "no frame");
    smp_run_on_all(protect_on_cpu, &f);
    KT_EXPECT(wr_err == 0, "map/protect failed: %s", paging_strerror(wr_err));
    for (unsigned c = 1; c < smp_cpu_count(); c++) {
        KT_EXPECT(wr_ok[c][2] == 0, "CPU %u wrote %llu times through a read-only mapping", c,
                  (unsigned long long)wr_ok[c][2]);
        KT_EXPECT(wr_ok[c][1] > 0 && wr_faults[c] > 0, "CPU %u: %llu writes, %llu faults", c,
                  (unsigned long long)wr_ok[c][1], (unsigned long long)wr_faults[c]);
    }
    frame_free(f);
}
