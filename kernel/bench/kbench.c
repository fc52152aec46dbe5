/* kbench: the workloads of bench/heap.c and bench/mm.c, small enough for TCG.
 *
 * Each line reads
 *   kbench: <workload> ops=<n> cyc=<mean cycles per op> p50=.. p99=.. p999=.. max=..
 * where cyc is the sum of the measured operations' cycles divided by ops (an
 * op is a pair where the host tables count pairs) and the percentiles are per
 * single operation; the rdtsc cost is taken off every sample. Under TCG all of it is emulated time. */
#include "bench/kbench.h"

#include "arch/x86_64/mmu_ops.h"
#include "lib/printf.h"
#include "lib/string.h"
#include "mm/frame.h"
#include "mm/heap.h"
#include "mm/mapper.h"
#include "mm/paging.h"

#define MAX_SAMPLES 64000
#define KB_VA (MAPPER_STACK_END - GiB(1)) /* far above any kernel stack */

static uint32_t samples[MAX_SAMPLES];
static size_t nsamples;
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
    if (nsamples < MAX_SAMPLES)
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

/* Shell sort: no recursion, no heap. */
static void sort_samples(void)
{
    static const size_t gaps[] = {13121, 4373, 1457, 485, 161, 53, 17, 5, 1};
    for (size_t g = 0; g < ARRAY_SIZE(gaps); g++)
        for (size_t i = gaps[g]; i < nsamples; i++) {
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

/* Workload 2: `live` objects, then churn (free a random one, allocate anew). */
static void w2(bool mixed, size_t live, size_t churn)
{
    char name[24];
    ksnprintf(name, sizeof(name), "w2%c-%zu", mixed ? 'm' : 'p', live);
    void **p = kmalloc(live * sizeof(void *));
    if (!p) {
        kprintf("kbench: %s skipped (no memory)\n", name);
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

/* Workload 5: single frames, then contiguous aligned runs. */
static void frames(void)
{
    enum { OPS = 20000 };
    begin();
    for (size_t k = 0; k < OPS; k++) {
        uint64_t t0 = tsc();
        paddr_t f = frame_alloc();
        uint64_t t1 = tsc();
        if (f)
            frame_free(f);
        uint64_t t2 = tsc();
        sample(t1 - t0);
        sample(t2 - t1);
    }
    report("f-single", OPS, sample_sum);

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
    kprintf("kbench: start (rdtsc cost %llu cycles, heap poison %s)\n", (unsigned long long)best,
            HEAP_POISON ? "on" : "off");
    static const size_t sizes[] = {16, 32, 64, 128, 256, 512, 1024, 2048, 4096};
    for (size_t i = 0; i < ARRAY_SIZE(sizes); i++)
        w1(sizes[i]);
    w2(false, 1000, 20000);
    w2(false, 10000, 20000);
    w2(true, 1000, 20000);
    w3();
    w4();
    frames();
    paging();
    kprintf("kbench: done\n");
}
