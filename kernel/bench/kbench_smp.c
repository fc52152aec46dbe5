/* kbench's SMP rows (issue 13): the allocators on 1, 2 and 4 CPUs at once,
 * and the cost of a TLB shootdown.
 *
 *   kbench: s-frames-<n>cpu ops=<pairs> cyc=<c>  n CPUs each doing PAIRS
 *       frame_alloc+frame_free pairs in batches of 16 (LIFO); cyc is the
 *       wall time (first start to last finish, TSC) over all pairs: with
 *       perfect scaling it halves from 1 to 2 CPUs
 *   kbench: s-heap-<n>cpu ops=<pairs> cyc=<c>    the same with kmalloc/kfree
 *       churn: each CPU keeps 256 live objects of Pareto-like sizes (16 B to
 *       1 KiB) and replaces a random one per pair
 *   kbench: s-heap-cross-2cpu ops=<pairs> cyc=<c>  CPU 0 allocates, CPU 1
 *       frees everything it gets (through a ring): every free is remote
 *   kbench: s-unmap-page-<n>cpu ops=<n> cyc=<c>  unmap of one mapped 4 KiB
 *       page of the kernel's address space (map not counted) while the other
 *       n-1 CPUs are online and idle: the shootdown's cost per page
 *   kbench: s-unmap-range64-<n>cpu ...  the same for a 64-page range (one
 *       batched shootdown, a full flush on the others above the threshold)
 * Under TCG all of it is emulated time: compare rows of one run only. */
#include "arch/x86_64/cpu.h"
#include "arch/x86_64/smp.h"
#include "bench/kbench.h"
#include "lib/printf.h"
#include "mm/frame.h"
#include "mm/heap.h"
#include "mm/mapper.h"
#include "mm/paging.h"

#define SMP_PAIRS 20000
#define LIVE 256
#define KB_SMP_VA (MAPPER_STACK_END - GiB(2)) /* kbench.c uses the GiB above */

struct run {
    unsigned ncpu;       /* CPUs 0..ncpu-1 take part */
    unsigned arrived;    /* barrier: CPUs ready */
    uint64_t start;      /* TSC when the barrier opened */
    uint64_t end[CPU_MAX];
    void (*work)(struct run *r);
    /* cross-CPU ring (s-heap-cross) */
    void *ring[256];
    uint64_t head, tail;
};

static void rendezvous(struct run *r)
{
    if (__atomic_add_fetch(&r->arrived, 1, __ATOMIC_ACQ_REL) == r->ncpu)
        __atomic_store_n(&r->start, rdtsc(), __ATOMIC_RELEASE);
    while (!__atomic_load_n(&r->start, __ATOMIC_ACQUIRE))
        cpu_pause();
}

static void on_cpu(void *arg)
{
    struct run *r = arg;
    unsigned me = cpu_index();
    if (me >= r->ncpu)
        return;
    rendezvous(r);
    r->work(r);
    r->end[me] = rdtsc();
}

static void frames_work(struct run *r)
{
    (void)r;
    paddr_t f[16];
    for (unsigned k = 0; k < SMP_PAIRS; k += 16) {
        for (int i = 0; i < 16; i++)
            f[i] = frame_alloc();
        for (int i = 15; i >= 0; i--)
            if (f[i])
                frame_free(f[i]);
    }
}

static uint64_t xorshift(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * 0x2545F4914F6CDD1Dull;
}

/* 16 B..1 KiB, most requests small (the host bench's Pareto-like octaves). */
static size_t pareto(uint64_t *s)
{
    unsigned e = (unsigned)__builtin_ctzll(xorshift(s) | (1ull << 40));
    if (e > 5)
        e = 5;
    size_t lo = 16ul << e;
    return lo + (size_t)(xorshift(s) % lo);
}

static void heap_work(struct run *r)
{
    (void)r;
    void *p[LIVE];
    uint64_t s = 0x9E3779B97F4A7C15ull * (cpu_index() + 1);
    for (int i = 0; i < LIVE; i++)
        p[i] = kmalloc(pareto(&s));
    for (unsigned k = 0; k < SMP_PAIRS; k++) {
        unsigned i = (unsigned)(xorshift(&s) % LIVE);
        kfree(p[i]);
        p[i] = kmalloc(pareto(&s));
    }
    for (int i = 0; i < LIVE; i++)
        kfree(p[i]);
}

static void cross_work(struct run *r)
{
    uint64_t s = 12345;
    if (cpu_index() == 0) {
        for (unsigned k = 0; k < SMP_PAIRS; k++) {
            void *p = kmalloc(16 + xorshift(&s) % 497);
            while (__atomic_load_n(&r->head, __ATOMIC_RELAXED) -
                       __atomic_load_n(&r->tail, __ATOMIC_ACQUIRE) == 256)
                cpu_pause();
            r->ring[r->head % 256] = p;
            __atomic_store_n(&r->head, r->head + 1, __ATOMIC_RELEASE);
        }
    } else {
        for (unsigned k = 0; k < SMP_PAIRS; k++) {
            while (__atomic_load_n(&r->head, __ATOMIC_ACQUIRE) == r->tail)
                cpu_pause();
            void *p = r->ring[r->tail % 256];
            __atomic_store_n(&r->tail, r->tail + 1, __ATOMIC_RELEASE);
            kfree(p);
        }
    }
}

/* Runs work on CPUs 0..ncpu-1 at once; prints the row with cycles of wall
 * time per pair (all CPUs' pairs together). */
static void row(const char *name, unsigned ncpu, void (*work)(struct run *), uint64_t pairs)
{
    static struct run r; /* one run at a time (smp_run_on_all serializes) */
    r = (struct run){.ncpu = ncpu, .work = work};
    smp_run_on_all(on_cpu, &r);
    uint64_t last = 0;
    for (unsigned i = 0; i < ncpu; i++)
        last = r.end[i] > last ? r.end[i] : last;
    uint64_t x10 = (last - r.start) * 10 / pairs;
    kprintf("kbench: %s-%ucpu ops=%llu cyc=%llu.%llu\n", name, ncpu, (unsigned long long)pairs,
            (unsigned long long)x10 / 10, (unsigned long long)x10 % 10);
}

/* Unmap cost of `pages` pages of the kernel's address space, `reps` times. */
static void unmap_row(const char *name, uint64_t pages, unsigned reps)
{
    paddr_t f = frame_alloc();
    if (!f)
        return;
    uint64_t total = 0;
    unsigned done = 0;
    for (unsigned k = 0; k < reps; k++) {
        int err = 0;
        for (uint64_t i = 0; i < pages && !err; i++)
            err = paging_map_in(&kernel_as, f, KB_SMP_VA + i * PAGE_SIZE, PAGE_SIZE,
                                PAGE_WRITABLE | PAGE_NX, CACHE_WB, 0);
        if (err) {
            paging_unmap_range(&kernel_as, KB_SMP_VA, pages * PAGE_SIZE);
            break;
        }
        uint64_t t0 = rdtsc();
        paging_unmap_range(&kernel_as, KB_SMP_VA, pages * PAGE_SIZE);
        total += rdtsc() - t0;
        done++;
    }
    frame_free(f);
    uint64_t x10 = total * 10 / (done ? done : 1);
    kprintf("kbench: %s-%ucpu ops=%u cyc=%llu.%llu\n", name, smp_cpu_count(), done,
            (unsigned long long)x10 / 10, (unsigned long long)x10 % 10);
}

void kbench_smp(void)
{
    unsigned n = smp_cpu_count();
    for (unsigned c = 1; c <= 4 && c <= n; c *= 2) {
        row("s-frames", c, frames_work, (uint64_t)c * SMP_PAIRS);
        row("s-heap", c, heap_work, (uint64_t)c * SMP_PAIRS);
    }
    if (n >= 2)
        row("s-heap-cross", 2, cross_work, SMP_PAIRS);
    /* Keep one page mapped next to the range so its tables stay (the map and
     * unmap then cost the same on every repetition). */
    paddr_t keep = frame_alloc();
    if (keep && !paging_map_in(&kernel_as, keep, KB_SMP_VA - PAGE_SIZE, PAGE_SIZE,
                               PAGE_WRITABLE | PAGE_NX, CACHE_WB, 0)) {
        unmap_row("s-unmap-page", 1, 2000);
        unmap_row("s-unmap-range64", 64, 200);
        paging_unmap_in(&kernel_as, KB_SMP_VA - PAGE_SIZE, PAGE_SIZE);
    }
    if (keep)
        frame_free(keep);
}
