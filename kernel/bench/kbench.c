/* kbench: the workloads of bench/heap.c and bench/mm.c, small enough for TCG.
 *
 * Each line reads
 *   kbench: <workload> ops=<n> cyc=<mean cycles per op> p50=.. p99=.. p999=.. max=..
 * where cyc is the sum of the measured operations' cycles divided by ops (an
 * op is a pair where the host tables count pairs) and the percentiles are per
 * single operation; the rdtsc cost is taken off every sample. Under TCG all of it is emulated time.
 * Workload 5 also prints, per fill level, how full memory was made and how
 * long filling and undoing took ("kbench: f-single-<fill> fill: ...", lines
 * without ops=). */
#include "bench/kbench.h"

#include "arch/x86_64/mmu_ops.h"
#include "lib/printf.h"
#include "lib/string.h"
#include "mm/frame.h"
#include "mm/heap.h"
#include "mm/mapper.h"
#include "mm/mm.h"
#include "mm/paging.h"


#define MAX_SAMPLES 64000
#define KB_VA (MAPPER_STACK_END - GiB(1)) /* far above any kernel stack */

/* MAX_SAMPLES samples in a frame run taken when the bench starts (not .bss:
 * the kernel image stays small enough for GRUB at 5 MiB); a larger run while
 * a big workload runs. */
#define SMALL_SAMPLE_FRAMES ((MAX_SAMPLES * sizeof(uint32_t) + PAGE_SIZE - 1) / PAGE_SIZE)
static uint32_t *small_samples;
static uint32_t *samples;
static size_t sample_cap = MAX_SAMPLES, nsamples;
static uint64_t sample_sum; /* net cycles of every sample() since begin() */
static uint64_t tsc_cost;
static uint64_t rng_state;

static inline uint64_t tsc(void)
{
    return arch_rdtsc();
}

/* Records one operation's cycles (the rdtsc cost taken off) in the sum, and
 * in the percentile samples while there is room. */
static inline void sample(uint64_t c)
{
    c = c > tsc_cost ? c - tsc_cost : 0;
    sample_sum += c;
    if (nsamples < sample_cap)
        samples[nsamples++] = c > 0xffffffffu ? 0xffffffffu : (uint32_t)c;
}

static uint64_t rng(void)
{
    uint64_t x = rng_state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    rng_state = x;
    return x * 0x2545F4914F6CDD1Dull;
}

static uint64_t below(uint64_t n)
{
    return (uint64_t)(((unsigned __int128)rng() * n) >> 64);
}

/* bench.h's Pareto-like size: octave chosen with probability 1/2^(k+1). */
static size_t size_pareto(size_t max)
{
    unsigned e = (unsigned)__builtin_ctzll(rng() | (1ull << 40));
    while (e > 0 && (32ul << e) > max)
        e--;
    size_t lo = 16ul << e, hi = MIN(32ul << e, max);
    return lo + (size_t)below(hi - lo + 1);
}

static size_t size_mixed(void)
{
    uint64_t r = below(100);
    if (r < 90)
        return size_pareto(1024);
    if (r < 98)
        return 1024 + (size_t)below(7 * 1024 + 1);
    return 8192 + (size_t)below(56 * 1024 + 1);
}

/* Room for n samples: frames outside the heap when n is above the static
 * array (so the heap under test holds only the workload's blocks); false
 * when memory is short. samples_release() goes back to the static array. */
static bool samples_reserve(size_t n)
{
    if (n <= MAX_SAMPLES)
        return true;
    size_t frames = (n * sizeof(uint32_t) + PAGE_SIZE - 1) / PAGE_SIZE;
    paddr_t run = frame_alloc_contig(frames, PAGE_SIZE);
    if (!run)
        return false;
    samples = PHYS2VIRT(run);
    sample_cap = frames * PAGE_SIZE / sizeof(uint32_t);
    return true;
}

static void samples_release(void)
{
    if (samples != small_samples)
        frame_free_contig(VIRT2PHYS(samples), sample_cap * sizeof(uint32_t) / PAGE_SIZE);
    samples = small_samples;
    sample_cap = MAX_SAMPLES;
}

/* Shell sort: no recursion, no heap (gaps (3^k - 1) / 2, enough for millions). */
static void sort_samples(void)
{
    static const size_t gaps[] = {1743392200, 581130733, 193710244, 64570081, 21523360,
                                  7174453,    2391484,   797161,    265720,   88573,
                                  29524,      9841,      3280,      1093,     364,
                                  121,        40,        13,        4,        1};
    for (size_t g = 0; g < ARRAY_SIZE(gaps); g++)
        for (size_t i = gaps[g]; i < nsamples; i++) { /* gaps >= nsamples do nothing */
            uint32_t v = samples[i];
            size_t j = i;
            for (; j >= gaps[g] && samples[j - gaps[g]] > v; j -= gaps[g])
                samples[j] = samples[j - gaps[g]];
            samples[j] = v;
        }
}

static uint64_t pct(unsigned permille)
{
    return samples[(nsamples - 1) * permille / 1000];
}

static void begin(void)
{
    nsamples = 0;
    sample_sum = 0;
    rng_state = 0x9E3779B97F4A7C15ull;
}

/* Prints the line for a loop of `ops` operations that took `cycles`. */
static void report(const char *name, size_t ops, uint64_t cycles)
{
    uint64_t x10 = cycles * 10 / (ops ? ops : 1);
    if (!nsamples) {
        kprintf("kbench: %s ops=%zu cyc=%llu.%llu\n", name, ops, (unsigned long long)x10 / 10,
                (unsigned long long)x10 % 10);
        return;
    }
    sort_samples();
    uint64_t mx = samples[nsamples - 1];
    kprintf("kbench: %s ops=%zu cyc=%llu.%llu p50=%llu p99=%llu p999=%llu max=%llu\n", name, ops,
            (unsigned long long)x10 / 10, (unsigned long long)x10 % 10,
            (unsigned long long)pct(500), (unsigned long long)pct(990),
            (unsigned long long)pct(999), (unsigned long long)mx);
}

/* Workload 1: batches of 64 allocations of one size, freed LIFO. */
static void w1(size_t size)
{
    enum { BATCH = 64, PAIRS = 6400 };
    void *p[BATCH];
    char name[24];
    ksnprintf(name, sizeof(name), "w1-%zu", size);
    begin();
    for (size_t k = 0; k < PAIRS; k += BATCH) {
        for (int i = 0; i < BATCH; i++) {
            uint64_t t0 = tsc();
            p[i] = kmalloc(size);
            sample(tsc() - t0);
        }
        for (int i = BATCH - 1; i >= 0; i--) {
            uint64_t t0 = tsc();
            kfree(p[i]);
            sample(tsc() - t0);
        }
    }
    report(name, PAIRS, sample_sum);
}

/* Workload 2: `live` objects, then churn (free a random one, allocate anew).
 * Skipped, with a line that says so, when free memory is below what the
 * objects (`need` bytes at most), the pointer array and the samples take. */
static void w2(bool mixed, size_t live, size_t churn, uint64_t need)
{
    char name[24];
    ksnprintf(name, sizeof(name), "w2%c-%zu", mixed ? 'm' : 'p', live);
    struct frame_stats fs;
    frame_get_stats(&fs);
    uint64_t extra = live * (sizeof(void *) + 2 * sizeof(uint32_t)) + 2 * churn * sizeof(uint32_t);
    if (fs.free_frames * PAGE_SIZE / 2 < need + extra) {
        kprintf("kbench: %s skipped (needs %llu MiB free, has %llu)\n", name,
                (unsigned long long)((need + extra) * 2 >> 20),
                (unsigned long long)(fs.free_frames * PAGE_SIZE >> 20));
        return;
    }
    void **p = kmalloc(live * sizeof(void *));
    if (!p || !samples_reserve(2 * live + 2 * churn)) {
        kprintf("kbench: %s skipped (no memory)\n", name);
        kfree(p);
        return;
    }
    begin();
    for (size_t i = 0; i < live; i++) {
        size_t n = mixed ? size_mixed() : size_pareto(1024);
        uint64_t t0 = tsc();
        p[i] = kmalloc(n);
        sample(tsc() - t0);
    }
    uint64_t before = sample_sum;
    for (size_t k = 0; k < churn; k++) {
        size_t i = (size_t)below(live), n = mixed ? size_mixed() : size_pareto(1024);
        uint64_t t0 = tsc();
        kfree(p[i]);
        uint64_t t1 = tsc();
        p[i] = kmalloc(n);
        uint64_t t2 = tsc();
        sample(t1 - t0);
        sample(t2 - t1);
    }
    uint64_t churn_cycles = sample_sum - before;
    for (size_t i = 0; i < live; i++) {
        uint64_t t0 = tsc();
        kfree(p[i]);
        sample(tsc() - t0);
    }
    kfree(p);
    report(name, churn, churn_cycles);
    samples_release();
}

/* Workload 3: a FIFO of 1000 objects, alloc at the tail, free at the head. */
static void w3(void)
{
    enum { Q = 1000, OPS = 20000 };
    void **q = kmalloc(Q * sizeof(void *));
    if (!q)
        return;
    begin();
    for (int i = 0; i < Q; i++)
        q[i] = kmalloc(16 + below(497));
    for (size_t k = 0; k < OPS; k++) {
        size_t h = k % Q, sz = 16 + (size_t)below(497);
        uint64_t t0 = tsc();
        kfree(q[h]);
        uint64_t t1 = tsc();
        q[h] = kmalloc(sz);
        uint64_t t2 = tsc();
        sample(t1 - t0);
        sample(t2 - t1);
    }
    for (int i = 0; i < Q; i++)
        kfree(q[i]);
    kfree(q);
    report("w3-fifo", OPS, sample_sum);
}

/* Workload 4: 16 buffers grown x1.5 up to 64 KiB and shrunk back. */
static void w4(void)
{
    enum { NBUF = 16, OPS = 20000, MAXSZ = 65536 };
    void *b[NBUF];
    size_t sz[NBUF];
    bool up[NBUF];
    begin();
    for (int i = 0; i < NBUF; i++) {
        sz[i] = 16 + 97 * (size_t)i;
        b[i] = kmalloc(sz[i]);
        up[i] = true;
    }
    for (size_t k = 0; k < OPS; k++) {
        int i = (int)(k % NBUF);
        size_t s = up[i] ? sz[i] + sz[i] / 2 : sz[i] * 2 / 3;
        if (s >= MAXSZ)
            up[i] = false, s = MAXSZ;
        if (s <= 16)
            up[i] = true, s = 16;
        uint64_t t0 = tsc();
        void *n = krealloc(b[i], s);
        uint64_t t1 = tsc();
        if (n) {
            b[i] = n;
            sz[i] = s;
        }
        sample(t1 - t0);
    }
    for (int i = 0; i < NBUF; i++)
        kfree(b[i]);
    report("w4-realloc", OPS, sample_sum);
}

/* Memory made FILL% full for workload 5, like the host bench (random frames
 * taken, the free ones scattered) but in bulk: every free aligned 1 GiB and
 * then 2 MiB run is taken, single frames too if the kernel's own leftovers
 * exceed the target, and then random single frames inside the runs are given
 * back until exactly the target is free.
 *
 * The runs are recorded in directory pages that live in the runs themselves:
 * when a directory is full, the first frame of the next run taken becomes the
 * next one (that frame is never given back as a hole and is freed last). So
 * the bookkeeping needs no heap, never lives in free memory, and writes one
 * page per DIR_SLOTS runs: under QEMU the first write to a guest page costs
 * milliseconds and host memory, so nothing else in the runs is touched. */
/* A directory entry: the run's base address (4 KiB aligned) with these bits. */
#define RUN_ORDER 0x1f /* log2 of the frames in the run */
#define RUN_DIR 0x20   /* the run's first frame is the directory page */
#define RUN_HOLES 0x40 /* some of its frames were given back */
#define DIR_SLOTS ((PAGE_SIZE - 16) / 8)

struct fill_dir {
    paddr_t next;            /* the directory before this one, 0 at the end */
    uint64_t count;          /* entries used */
    uint64_t run[DIR_SLOTS]; /* run base | RUN_* bits; run[0] holds this page */
};
_Static_assert(sizeof(struct fill_dir) == PAGE_SIZE, "a directory is one frame");

struct fill {
    paddr_t dir;           /* newest directory page, 0 when nothing was taken */
    uint64_t base_free;    /* free frames before the fill */
    uint64_t nruns, taken; /* runs and frames taken */
    uint64_t holes;        /* frames given back inside the runs */
};

static inline paddr_t run_base(uint64_t e)
{
    return e & ~(paddr_t)(PAGE_SIZE - 1);
}

/* Records a run of 2^order frames just taken at base. */
static void fill_push(struct fill *fl, paddr_t base, unsigned order)
{
    struct fill_dir *d = fl->dir ? PHYS2VIRT(fl->dir) : NULL;
    uint64_t e = base | order;
    if (!d || d->count == DIR_SLOTS) {
        struct fill_dir *nd = PHYS2VIRT(base);
        nd->next = fl->dir;
        nd->count = 0;
        fl->dir = base;
        d = nd;
        e |= RUN_DIR;
    }
    d->run[d->count++] = e;
    fl->nruns++;
    fl->taken += 1ull << order;
}

/* Gives back k random frames among the n starting at f0 (all still taken). */
static void fill_holes(paddr_t f0, uint64_t n, uint64_t k)
{
    if (2 * k <= n) { /* sparse: random picks, one already given back is drawn again */
        while (k) {
            paddr_t f = f0 + below(n) * PAGE_SIZE;
            if (frame_is_used(f)) {
                frame_free(f);
                k--;
            }
        }
        return;
    }
    for (uint64_t i = 0; k; i++) /* dense: selection sampling, each frame once */
        if (below(n - i) < k) {
            frame_free(f0 + i * PAGE_SIZE);
            k--;
        }
}

/* Makes memory `pct`% full (of the usable frames; the kernel's own use
 * counts). Memory already fuller than that is left as it is. */
static void fill_take(struct fill *fl, unsigned pct)
{
    static const unsigned run_order[] = {18, 9}; /* 1 GiB, 2 MiB */
    struct frame_stats st;
    frame_get_stats(&st);
    *fl = (struct fill){.base_free = st.free_frames};
    uint64_t target = st.usable_frames - st.usable_frames * pct / 100;
    if (st.free_frames <= target)
        return;
    for (size_t i = 0; i < ARRAY_SIZE(run_order); i++) {
        uint64_t n = 1ull << run_order[i];
        paddr_t p;
        while ((p = frame_alloc_contig(n, n * PAGE_SIZE)))
            fill_push(fl, p, run_order[i]);
    }
    frame_get_stats(&st);
    for (uint64_t left = st.free_frames; left > target; left--) { /* the kernel's leftovers */
        paddr_t f = frame_alloc();
        if (!f)
            break;
        fill_push(fl, f, 0);
    }
    frame_get_stats(&st);
    /* Holes: spread over the runs in proportion to their size (exact in
     * total), each run's share at random places inside it. */
    uint64_t need = st.free_frames < target ? target - st.free_frames : 0;
    uint64_t room = fl->taken;
    for (paddr_t b = fl->dir; b; b = ((struct fill_dir *)PHYS2VIRT(b))->next)
        room--; /* directory pages stay */
    /* (need exceeds room by a few only when the fill barely adds anything) */
    need = MIN(need, room);
    rng_state = 0xF111F111ull + pct;
    for (paddr_t b = fl->dir; b && need; b = ((struct fill_dir *)PHYS2VIRT(b))->next) {
        struct fill_dir *d = PHYS2VIRT(b);
        for (uint64_t i = 0; i < d->count && need; i++) {
            uint64_t e = d->run[i], skip = (e & RUN_DIR) ? 1 : 0;
            uint64_t n = (1ull << (e & RUN_ORDER)) - skip;
            uint64_t k = (uint64_t)((unsigned __int128)need * n / room);
            room -= n;
            if (!k)
                continue;
            need -= k;
            fl->holes += k;
            d->run[i] = e | RUN_HOLES;
            fill_holes(run_base(e) + skip * PAGE_SIZE, n, k);
        }
    }
}

/* Gives back the frames of one recorded run that are still taken. */
static void fill_free_run(uint64_t e)
{
    paddr_t base = run_base(e);
    uint64_t n = 1ull << (e & RUN_ORDER);
    if (!(e & RUN_HOLES)) {
        frame_free_contig(base, n);
        return;
    }
    for (uint64_t i = 0; i < n; i++)
        if (frame_is_used(base + i * PAGE_SIZE))
            frame_free(base + i * PAGE_SIZE);
}

/* Gives back every frame fill_take took; complains when the free count is
 * not back to what it was before, or the allocator's summaries disagree. */
static void fill_undo(struct fill *fl, const char *name)
{
    for (paddr_t b = fl->dir, next; b; b = next) {
        struct fill_dir *d = PHYS2VIRT(b);
        for (uint64_t i = d->count; i-- > 1;)
            fill_free_run(d->run[i]);
        uint64_t self = d->run[0]; /* the run holding this page: last */
        next = d->next;
        fill_free_run(self);
    }
    fl->dir = 0;
    struct frame_stats st;
    frame_get_stats(&st);
    if (st.free_frames != fl->base_free)
        kprintf("kbench: %s: %llu frames free after the fill was undone, %llu before\n", name,
                (unsigned long long)st.free_frames, (unsigned long long)fl->base_free);
    if (!frame_check())
        kprintf("kbench: %s: frame_check failed after the fill was undone\n", name);
}

/* Workload 5a: frame_alloc + frame_free pairs with memory `pct`% full. */
static void frames_single(unsigned pct)
{
    enum { OPS = 20000 };
    char name[24];
    ksnprintf(name, sizeof(name), "f-single-%u", pct);
    struct frame_stats st;
    frame_get_stats(&st);
#ifdef SLAYER_DEBUG
    /* debug builds poison every freed frame: a fill of a large guest would
     * write (and make QEMU back) most of its memory */
    if (pct && st.usable_frames > GiB(4) / PAGE_SIZE) {
        kprintf("kbench: %s skipped (debug build, more than 4 GiB)\n", name);
        return;
    }
#endif
    struct fill fl;
    uint64_t t0 = tsc();
    fill_take(&fl, pct);
    uint64_t took = tsc() - t0;
    frame_get_stats(&st);
    uint64_t used =
        ((st.usable_frames - st.free_frames) * 1000 + st.usable_frames / 2) / st.usable_frames;
    kprintf("kbench: %s fill: %llu.%llu%% of %llu frames used; took %llu frames in %llu runs, "
            "gave back %llu, in %llu Mcycles\n",
            name, (unsigned long long)used / 10, (unsigned long long)used % 10,
            (unsigned long long)st.usable_frames, (unsigned long long)fl.taken,
            (unsigned long long)fl.nruns, (unsigned long long)fl.holes,
            (unsigned long long)took / 1000000);
    begin();
    for (size_t k = 0; k < OPS; k++) {
        uint64_t t1 = tsc();
        paddr_t f = frame_alloc();
        uint64_t t2 = tsc();
        if (f)
            frame_free(f);
        uint64_t t3 = tsc();
        sample(t2 - t1);
        sample(t3 - t2);
    }
    report(name, OPS, sample_sum);
    t0 = tsc();
    fill_undo(&fl, name);
    if (fl.taken)
        kprintf("kbench: %s fill undone in %llu Mcycles\n", name,
                (unsigned long long)(tsc() - t0) / 1000000);
}

/* Workload 5: single frames with memory 0, 50 and 95% full, then contiguous
 * aligned runs. */
static void frames(void)
{
    static const unsigned fills[] = {0, 50, 95};
    for (size_t j = 0; j < ARRAY_SIZE(fills); j++)
        frames_single(fills[j]);

    begin();
    uint64_t total = 0;
    for (size_t k = 0; k < 2000; k++) {
        uint64_t t0 = tsc();
        paddr_t f = frame_alloc_contig(16, KiB(64));
        if (f)
            frame_free_contig(f, 16);
        total += tsc() - t0;
    }
    nsamples = 0;
    report("c-16x64K", 2000, total);
}

/* Workload 6: map+unmap of one 4 KiB page (tables kept by a neighbour; the
 * kernel's address space is the active one, so each unmap does an invlpg),
 * then translate. */
static void paging(void)
{
    enum { OPS = 20000 };
    paddr_t f = frame_alloc();
    if (!f || paging_query(&kernel_as, KB_VA, NULL)) {
        kprintf("kbench: paging skipped (no frame, or %#llx in use)\n", (unsigned long long)KB_VA);
        if (f)
            frame_free(f);
        return;
    }
    if (paging_map_in(&kernel_as, f, KB_VA, PAGE_SIZE, PAGE_WRITABLE | PAGE_NX, CACHE_WB, 0)) {
        frame_free(f);
        return;
    }
    begin();
    for (size_t k = 0; k < OPS; k++) {
        vaddr_t va = KB_VA + PAGE_SIZE * (1 + k % 511);
        uint64_t t0 = tsc();
        paging_map_in(&kernel_as, f, va, PAGE_SIZE, PAGE_WRITABLE | PAGE_NX, CACHE_WB, 0);
        uint64_t t1 = tsc();
        paging_unmap_in(&kernel_as, va, PAGE_SIZE);
        uint64_t t2 = tsc();
        sample(t1 - t0);
        sample(t2 - t1);
    }
    report("p-mapunmap", OPS, sample_sum);

    begin();
    uint64_t start = tsc(), sum = 0;
    for (size_t k = 0; k < OPS; k++)
        sum += paging_translate_in(&kernel_as, KB_VA + (k & 4095));
    report("p-translate", OPS, tsc() - start);
    if (sum == 1)
        kprintf("\n");
    paging_unmap_in(&kernel_as, KB_VA, PAGE_SIZE);
    frame_free(f);
}

void kbench_run(void)
{
    uint64_t best = ~0ull;
    for (int i = 0; i < 64; i++) {
        uint64_t t0 = tsc();
        uint64_t t1 = tsc();
        if (t1 - t0 < best)
            best = t1 - t0;
    }
    tsc_cost = best;
    paddr_t sample_run = frame_alloc_contig(SMALL_SAMPLE_FRAMES, PAGE_SIZE);
    if (!sample_run) {
        kprintf("kbench: no memory for the samples; not run\n");
        return;
    }
    small_samples = samples = PHYS2VIRT(sample_run);
    kprintf("kbench: start (rdtsc cost %llu cycles, heap poison %s)\n", (unsigned long long)best,
            HEAP_POISON ? "on" : "off");
    static const size_t sizes[] = {16, 32, 64, 128, 256, 512, 1024, 2048, 4096};
    for (size_t i = 0; i < ARRAY_SIZE(sizes); i++)
        w1(sizes[i]);
    /* need: Pareto objects average under 100 B, rounded up to a class
     * (at most 12.5% more); 256 B each leaves a wide margin */
    w2(false, 1000, 20000, 1000 * 256);
    w2(false, 10000, 20000, 10000 * 256);
    w2(false, 100000, 20000, 100000 * 256);
    w2(false, 1000000, 20000, 1000000 * 256);
    w2(true, 1000, 20000, 1000 * 4096);
    w3();
    w4();
    frames();
    paging();
    kbench_vm();
    kbench_proc();
    kbench_smp();
    frame_free_contig(sample_run, SMALL_SAMPLE_FRAMES);
    small_samples = samples = NULL;
    kprintf("kbench: done\n");
}
