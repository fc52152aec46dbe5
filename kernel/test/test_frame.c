/* In-kernel self-tests of the frame allocator on the machine's real memory map.
 * Misuse panics before anything changes, so the bad frame_free_contig calls
 * run under ktest_expect_panic and the state is compared afterwards. The
 * per-CPU caches are tested on this CPU and, through smp_run_on_all, on
 * every CPU at once (a storm with cross-CPU frees, out of memory on all). */
#include "arch/x86_64/cpu_local.h"
#include "arch/x86_64/smp.h"
#include "lib/printf.h"
#include "lib/spinlock.h"
#include "lib/string.h"
#include "mm/frame.h"
#include "mm/heap.h"
#include "mm/mm.h"
#include "test/ktest.h"

/* A run of consecutive allocated frames, recorded inside its own first frame
 * so that exhausting memory writes to one frame per run, not to every frame
 * (a 256 GiB guest stays cheap). */
struct run_rec {
    paddr_t next; /* first frame of the previous run, 0 at the end */
    uint64_t count;
};

KTEST(frame_alloc_all_then_free_all)
{
    uint64_t before = ktest_free_frames(), n = 0, runs = 0;
    paddr_t head = 0, start = 0, f;
    uint64_t count = 0, bad = 0;
    while ((f = frame_alloc()) != 0) {
        bad += !IS_ALIGNED(f, PAGE_SIZE); /* no early return: memory must go back */
        n++;
        if (start && f == start + count * PAGE_SIZE) {
            count++;
            continue;
        }
        if (start) {
            *(struct run_rec *)PHYS2VIRT(start) = (struct run_rec){head, count};
            head = start;
            runs++;
        }
        start = f;
        count = 1;
    }
    if (start) {
        *(struct run_rec *)PHYS2VIRT(start) = (struct run_rec){head, count};
        head = start;
        runs++;
    }
    KT_EXPECT(n == before, "allocated %llu of %llu free frames", (unsigned long long)n,
              (unsigned long long)before);
    KT_EXPECT(bad == 0, "%llu unaligned frames", (unsigned long long)bad);
    KT_EXPECT(ktest_free_frames() == 0);
    KT_EXPECT(frame_alloc() == 0);
    KT_EXPECT(frame_alloc_contig(1, PAGE_SIZE) == 0);

    while (head) {
        struct run_rec r = *(struct run_rec *)PHYS2VIRT(head);
        frame_free_contig(head, r.count);
        head = r.next;
    }
    KT_EXPECT(ktest_free_frames() == before, "free %llu, want %llu (%llu runs)",
              (unsigned long long)ktest_free_frames(), (unsigned long long)before,
              (unsigned long long)runs);
    KT_EXPECT(frame_check());
}

KTEST(frame_alloc_never_returns_zero_and_frees_back)
{
    uint64_t before = ktest_free_frames();
    paddr_t a = frame_alloc(), b = frame_alloc();
    KT_ASSERT(a && b && a != b);
    KT_EXPECT(frame_is_used(a) && frame_is_used(b));
    frame_free(a);
    KT_EXPECT(!frame_is_used(a));
    frame_free(b);
    KT_EXPECT(ktest_free_frames() == before);
    KT_EXPECT(frame_is_used(0));
}

KTEST(frame_alloc_zeroed_is_zero)
{
    paddr_t f = frame_alloc();
    KT_ASSERT(f);
    memset(PHYS2VIRT(f), 0x5a, PAGE_SIZE);
    frame_free(f);
    paddr_t z = frame_alloc_zeroed();
    KT_ASSERT(z);
    const uint64_t *p = PHYS2VIRT(z);
    bool zero = true;
    for (size_t k = 0; k < PAGE_SIZE / 8; k++)
        zero &= p[k] == 0;
    KT_EXPECT(zero);
    frame_free(z);
}

static void check_run(size_t count, uint64_t align)
{
    uint64_t before = ktest_free_frames();
    paddr_t b = frame_alloc_contig(count, align);
    KT_ASSERT(b != 0, "no run of %zu frames aligned to %#llx", count, (unsigned long long)align);
    KT_EXPECT(IS_ALIGNED(b, align), "%#llx not aligned to %#llx", (unsigned long long)b,
              (unsigned long long)align);
    bool all_used = true;
    for (size_t k = 0; k < count; k++)
        all_used &= frame_is_used(b + k * PAGE_SIZE);
    KT_EXPECT(all_used);
    KT_EXPECT(ktest_free_frames() == before - count);
    frame_free_contig(b, count);
    KT_EXPECT(ktest_free_frames() == before);
}

KTEST(frame_contiguous_aligned_runs)
{
    check_run(512, MiB(2)); /* a 2 MiB huge page */
    check_run(16, KiB(64));
    check_run(3, PAGE_SIZE);
    check_run(1, PAGE_SIZE);
    KT_EXPECT(frame_alloc_contig(0, PAGE_SIZE) == 0);
    KT_EXPECT(frame_alloc_contig(ktest_free_frames() + 1, PAGE_SIZE) == 0);
    /* Two runs do not overlap. */
    paddr_t a = frame_alloc_contig(512, MiB(2)), b = frame_alloc_contig(512, MiB(2));
    KT_ASSERT(a && b);
    KT_EXPECT(a + MiB(2) <= b || b + MiB(2) <= a);
    frame_free_contig(a, 512);
    frame_free_contig(b, 512);
    KT_EXPECT(frame_check());
}

/* The heap's slab pattern: 16 frames aligned to 64 KiB with the upper 8
 * given back (half slabs), then more runs over those holes. Every run is
 * aligned and wholly used, no two overlap, and everything goes back. As many
 * rounds as memory allows comfortably (up to HALF_SLABS; a round takes at
 * most about 100 frames); a failed run gives back what the test took. */
#define HALF_SLABS 256
static paddr_t half_slab[HALF_SLABS], extra_run[HALF_SLABS];

static void half_slab_undo(size_t halves, size_t extras)
{
    for (size_t k = 0; k < halves; k++)
        frame_free_contig(half_slab[k], 8);
    for (size_t k = 0; k < extras; k++)
        frame_free_contig(extra_run[k], k % 2 ? 8 : 64);
}

KTEST(frame_contig_half_slab_holes)
{
    uint64_t before = ktest_free_frames();
    size_t n = (size_t)MIN((uint64_t)HALF_SLABS, before / 256), bad = 0;
    if (n < 8) {
        kprintf("ktest: (%llu free frames: too few for the pattern; the host tests cover it)\n",
                (unsigned long long)before);
        return;
    }
    for (size_t k = 0; k < n; k++) {
        paddr_t b = half_slab[k] = frame_alloc_contig(16, KiB(64));
        if (!b)
            half_slab_undo(k, 0);
        KT_ASSERT(b, "half slab %zu of %zu failed (%llu frames were free)", k, n,
                  (unsigned long long)before);
        bad += !IS_ALIGNED(b, KiB(64));
        frame_free_contig(b + 8 * PAGE_SIZE, 8);
    }
    for (size_t k = 0; k < n; k++) {
        paddr_t b = extra_run[k] = frame_alloc_contig(k % 2 ? 8 : 64, KiB(64));
        if (!b)
            half_slab_undo(n, k);
        KT_ASSERT(b, "run %zu of %zu failed (%llu frames were free)", k, n,
                  (unsigned long long)before);
        bad += !IS_ALIGNED(b, KiB(64));
    }
    KT_EXPECT(bad == 0, "%zu unaligned runs", bad);
    /* Each half slab still holds its 8 frames, and its upper 8 are free
     * unless another run took them (never one of the 64 KiB-aligned ones). */
    size_t lost = 0, overlap = 0;
    for (size_t k = 0; k < n; k++) {
        for (size_t i = 0; i < 8; i++)
            lost += !frame_is_used(half_slab[k] + i * PAGE_SIZE);
        for (size_t j = 0; j < n; j++) {
            uint64_t len = j % 2 ? 8 : 64;
            overlap += extra_run[j] < half_slab[k] + 8 * PAGE_SIZE &&
                       half_slab[k] < extra_run[j] + len * PAGE_SIZE;
        }
    }
    KT_EXPECT(lost == 0 && overlap == 0, "%zu frames lost, %zu overlaps", lost, overlap);
    KT_EXPECT(ktest_free_frames() == before - n * 8 - (n + 1) / 2 * 64 - n / 2 * 8);
    KT_EXPECT(frame_check());
    half_slab_undo(n, n);
    KT_EXPECT(ktest_free_frames() == before, "free %llu, want %llu",
              (unsigned long long)ktest_free_frames(), (unsigned long long)before);
    KT_EXPECT(frame_check());
}

/* frame_free_contig checks the whole run before it changes anything: a bad
 * call panics (caught here) naming the first bad address, and the allocator's
 * whole state (bitmap, summaries, free count, cursor) is as it was. The run
 * held is 4 frames of an 8-frame block whose upper 4 are free again. */
struct bad_free {
    paddr_t base;
    size_t count;
};

static void call_free_contig(void *arg)
{
    const struct bad_free *b = arg;
    frame_free_contig(b->base, b->count);
}

KTEST(frame_free_contig_bad_call_changes_nothing)
{
    uint64_t before = ktest_free_frames();
    paddr_t run = frame_alloc_contig(8, KiB(32));
    KT_ASSERT(run);
    frame_free_contig(run + 4 * PAGE_SIZE, 4);
    const struct {
        struct bad_free call;
        const char *want;
    } bad[] = {
        {{run, 6}, "double free"},                       /* partly free already */
        {{run + 2 * PAGE_SIZE, 4}, "double free"},       /* shifted onto the free half */
        {{run, (size_t)1 << 40}, "nothing freed"},       /* far beyond managed memory */
        {{run + 8, 2}, "unaligned"},
        {{run, 0}, "an empty run"},
        {{run, (size_t)((UINT64_MAX - run) >> PAGE_SHIFT) + 1}, "wraps"},
        {{0, 2}, "(0x0, 2): 0x0: "}, /* frame 0: "not usable" or "not in the map", by loader */
    };
    uint64_t digest = frame_state_digest();
    for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
        bool caught = ktest_expect_panic(call_free_contig, (void *)&bad[i].call, bad[i].want);
        KT_EXPECT(caught, "frame_free_contig(%#llx, %llu): want a panic with '%s', got '%s'",
                  (unsigned long long)bad[i].call.base, (unsigned long long)bad[i].call.count,
                  bad[i].want, caught ? "" : ktest_last_panic());
        KT_EXPECT(frame_state_digest() == digest,
                  "frame_free_contig(%#llx, %llu) changed the state",
                  (unsigned long long)bad[i].call.base, (unsigned long long)bad[i].call.count);
    }
    bool held = true;
    for (size_t k = 0; k < 4; k++)
        held &= frame_is_used(run + k * PAGE_SIZE);
    KT_EXPECT(held, "a frame of the refused runs was freed");
    KT_EXPECT(ktest_free_frames() == before - 4);
    frame_free_contig(run, 4);
    KT_EXPECT(ktest_free_frames() == before);
    KT_EXPECT(frame_check());
}

/* The group index on real memory: with the first frame of every free 64 KiB
 * block taken, no 64 KiB block is wholly free, so a slab (16 frames at 64 KiB)
 * is refused although most memory is free; once one block comes back whole,
 * the slab is exactly that block. The taken frames are remembered in a bitmap
 * of 64 KiB blocks on the heap (512 KiB at 256 GiB), never written through:
 * touching one page per block would make a 256 GiB guest resident. */
KTEST(frame_contig_slab_in_fragmented_memory)
{
    uint64_t blocks = hhdm_size / KiB(64) + 1;
    uint64_t *taken = kmalloc((blocks + 63) / 64 * sizeof(uint64_t));
    KT_ASSERT(taken != NULL);
    memset(taken, 0, (blocks + 63) / 64 * sizeof(uint64_t));
    /* measured with the bitmap held: the heap may keep its slab afterwards */
    uint64_t before = ktest_free_frames(), n = 0;
    paddr_t b;
    while ((b = frame_alloc_contig(1, KiB(64))) != 0) {
        uint64_t k = b / KiB(64);
        KT_ASSERT(k < blocks, "frame %#llx beyond the HHDM", (unsigned long long)b);
        taken[k / 64] |= 1ULL << (k % 64);
        n++;
    }
    KT_EXPECT(ktest_free_frames() == before - n);
    KT_EXPECT(frame_alloc_contig(16, KiB(64)) == 0, "a slab with no 64 KiB block free");
    KT_EXPECT(frame_alloc_contig(64, KiB(64)) == 0);
    KT_EXPECT(frame_check());
    /* A block whose other 15 frames are free: give its first frame back. */
    paddr_t whole = 0;
    for (uint64_t k = 0; k < blocks && !whole; k++) {
        if (!(taken[k / 64] & (1ULL << (k % 64))))
            continue;
        paddr_t p = k * KiB(64);
        bool rest_free = true;
        for (size_t j = 1; j < 16; j++)
            rest_free &= !frame_is_used(p + j * PAGE_SIZE);
        if (rest_free)
            whole = p;
    }
    paddr_t slab = 0;
    if (whole) {
        uint64_t k = whole / KiB(64);
        taken[k / 64] &= ~(1ULL << (k % 64));
        frame_free(whole);
        slab = frame_alloc_contig(16, KiB(64));
        KT_EXPECT(slab == whole, "slab %#llx, the only free block is %#llx",
                  (unsigned long long)slab, (unsigned long long)whole);
        KT_EXPECT(frame_alloc_contig(16, KiB(64)) == 0);
    }
    KT_EXPECT(whole || n < 8, "no block of %llu has 15 free frames", (unsigned long long)n);
    for (uint64_t k = 0; k < blocks; k++)
        if (taken[k / 64] & (1ULL << (k % 64)))
            frame_free(k * KiB(64));
    if (slab)
        frame_free_contig(slab, 16);
    KT_EXPECT(ktest_free_frames() == before, "free %llu, want %llu",
              (unsigned long long)ktest_free_frames(), (unsigned long long)before);
    kfree(taken);
    KT_EXPECT(frame_check());
}

static void free_frame(void *arg)
{
    frame_free((paddr_t)(uintptr_t)arg);
}

/* This CPU's cache: a frame freed lands there and is free (stats, is_used),
 * the next frame_alloc takes it back; freeing it again panics with the
 * double-free message and changes nothing; a drain empties every cache
 * without changing the free count. */
KTEST(frame_cache_on_this_cpu)
{
    frame_drain_cpu_caches();
    uint64_t before = ktest_free_frames();
    unsigned me = cpu_index();
    paddr_t f = frame_alloc();
    KT_ASSERT(f);
    KT_EXPECT(frame_cache_count(me) == 31, "a refill of 32, one taken: %u",
              frame_cache_count(me));
    KT_EXPECT(ktest_free_frames() == before - 1);
    frame_free(f);
    KT_EXPECT(frame_cache_count(me) == 32);
    KT_EXPECT(!frame_is_used(f), "a cached frame is free");
    KT_EXPECT(ktest_free_frames() == before);
    uint64_t digest = frame_state_digest();
    char want[80];
    ksnprintf(want, sizeof(want), "frame_free(0x%llx): double free", (unsigned long long)f);
    KT_EXPECT(ktest_expect_panic(free_frame, (void *)(uintptr_t)f, want));
    KT_EXPECT(frame_state_digest() == digest, "a refused free changed the allocator");
    KT_EXPECT(frame_alloc() == f, "the cache is a stack");
    frame_free(f);
    KT_EXPECT(frame_check());
    KT_EXPECT(frame_drain_cpu_caches() == 32);
    KT_EXPECT(frame_cache_count(me) == 0);
    KT_EXPECT(ktest_free_frames() == before);
    KT_EXPECT(ktest_expect_panic(free_frame, (void *)(uintptr_t)f, want));
    KT_EXPECT(frame_check());
}

/* Out of memory with frames in this CPU's cache: a contiguous request (which
 * the bitmap answers) drains the cache and succeeds. */
KTEST(frame_cache_drained_before_contig_fails)
{
    uint64_t before = ktest_free_frames(), taken;
    paddr_t grabbed = ktest_grab_frames(4, &taken);
    paddr_t f[4];
    for (int k = 0; k < 4; k++)
        f[k] = frame_alloc();
    KT_EXPECT(f[3] != 0 && ktest_free_frames() == 0, "%llu frames left after the grab",
              (unsigned long long)ktest_free_frames());
    for (int k = 0; k < 4; k++)
        if (f[k])
            frame_free(f[k]); /* into this CPU's cache */
    KT_EXPECT(frame_cache_count(cpu_index()) == 4);
    paddr_t one = frame_alloc_contig(1, PAGE_SIZE);
    KT_EXPECT(one != 0, "the cached frames were not found");
    KT_EXPECT(frame_cache_count(cpu_index()) == 0, "drained");
    if (one)
        frame_free_contig(one, 1);
    ktest_release_frames(grabbed);
    frame_drain_cpu_caches();
    KT_EXPECT(ktest_free_frames() == before, "free %llu, want %llu",
              (unsigned long long)ktest_free_frames(), (unsigned long long)before);
    KT_EXPECT(frame_check());
}

/* The SMP storm's shared state: frames handed between CPUs through a ring,
 * a bitmap of frames handed out (a frame handed out twice is an error), and
 * for the out-of-memory run each CPU's list of frames (linked through the
 * frames themselves). */
#define STORM_OPS  4000
#define STORM_HOLD 96
#define RING_SIZE  256
static struct spinlock ring_lock = SPINLOCK_INIT("ktest-ring", LOCK_RANK_NONE);
static paddr_t ring[RING_SIZE]; /* ring_lock */
static unsigned ring_head, ring_n; /* ring_lock */
static uint64_t *owned;         /* a bit per frame, changed atomically */
static uint64_t owned_bits;
static unsigned storm_errors, oom_zero_with_cache;
static paddr_t oom_list[CPU_MAX];
static uint64_t oom_count[CPU_MAX];

static void own(paddr_t f)
{
    uint64_t i = f / PAGE_SIZE;
    if (i >= owned_bits ||
        (__atomic_fetch_or(&owned[i / 64], 1ULL << (i % 64), __ATOMIC_RELAXED) & (1ULL << (i % 64))))
        __atomic_fetch_add(&storm_errors, 1, __ATOMIC_RELAXED);
}

static void disown(paddr_t f)
{
    uint64_t i = f / PAGE_SIZE;
    if (i < owned_bits)
        __atomic_fetch_and(&owned[i / 64], ~(1ULL << (i % 64)), __ATOMIC_RELAXED);
}

static bool ring_put(paddr_t f)
{
    spin_lock(&ring_lock);
    bool ok = ring_n < RING_SIZE;
    if (ok)
        ring[(ring_head + ring_n++) % RING_SIZE] = f;
    spin_unlock(&ring_lock);
    return ok;
}

static paddr_t ring_get(void)
{
    paddr_t f = 0;
    spin_lock(&ring_lock);
    if (ring_n) {
        f = ring[ring_head];
        ring_head = (ring_head + 1) % RING_SIZE;
        ring_n--;
    }
    spin_unlock(&ring_lock);
    return f;
}

static void storm_on_cpu(void *arg)
{
    (void)arg;
    paddr_t hold[STORM_HOLD];
    unsigned n = 0;
    uint64_t x = 0x9e3779b97f4a7c15ULL * (cpu_index() + 1);
    for (int op = 0; op < STORM_OPS; op++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        unsigned r = (unsigned)(x % 100);
        if (r < 45 && n < STORM_HOLD) {
            paddr_t f = frame_alloc();
            if (!f)
                continue; /* the pool may run dry for a moment */
            own(f);
            *(volatile uint64_t *)PHYS2VIRT(f) = f;
            hold[n++] = f;
        } else if (r < 75 && n) {
            unsigned k = (unsigned)((x >> 32) % n);
            paddr_t f = hold[k];
            hold[k] = hold[--n];
            disown(f);
            frame_free(f);
        } else if (r < 87 && n) {
            if (ring_put(hold[n - 1])) /* another CPU frees it */
                n--;
        } else {
            paddr_t f = ring_get();
            if (f) {
                if (*(volatile uint64_t *)PHYS2VIRT(f) != f)
                    __atomic_fetch_add(&storm_errors, 1, __ATOMIC_RELAXED);
                disown(f);
                frame_free(f);
            }
        }
    }
    while (n) {
        disown(hold[--n]);
        frame_free(hold[n]);
    }
}

/* Leaves free frames in this CPU's cache (a refill of 32, 8 taken and
 * given back). */
static void stash_on_cpu(void *arg)
{
    (void)arg;
    paddr_t f[8];
    for (int k = 0; k < 8; k++)
        f[k] = frame_alloc();
    for (int k = 0; k < 8; k++)
        if (f[k])
            frame_free(f[k]);
}

static void oom_on_cpu(void *arg)
{
    (void)arg;
    unsigned me = cpu_index();
    paddr_t f, head = 0;
    uint64_t count = 0;
    while ((f = frame_alloc()) != 0) {
        own(f);
        *(paddr_t *)PHYS2VIRT(f) = head;
        head = f;
        count++;
    }
    if (frame_cache_count(me))
        __atomic_fetch_add(&oom_zero_with_cache, 1, __ATOMIC_RELAXED);
    oom_list[me] = head;
    oom_count[me] = count;
}

static void oom_free_next(void *arg)
{
    (void)arg;
    unsigned me = cpu_index(), other = me; /* the next online CPU's list */
    do
        other = (other + 1) % CPU_MAX;
    while (!smp_cpu_online(other) && other != me);
    for (paddr_t f = oom_list[other], next; f; f = next) {
        next = *(paddr_t *)PHYS2VIRT(f);
        disown(f);
        frame_free(f);
    }
}

/* Every CPU at once (one when only the BSP runs): an alloc/free storm over a
 * pool of 8192 free frames (the rest grabbed first) with frames freed on
 * other CPUs than the one that took them; no frame is handed out twice.
 * Then out of memory on every CPU at once: together they take every free
 * frame (each fails only with its own cache empty, after draining the
 * others), and each frees another CPU's frames. After each, drained: the
 * free count is back and frame_check passes. */
KTEST(frame_smp_storm_and_oom_on_every_cpu)
{
    struct frame_stats fs;
    frame_get_stats(&fs);
    owned_bits = fs.total_frames;
    owned = kmalloc((owned_bits + 63) / 64 * 8);
    KT_ASSERT(owned);
    memset(owned, 0, (owned_bits + 63) / 64 * 8);
    storm_errors = oom_zero_with_cache = 0;
    ring_head = ring_n = 0;
    frame_drain_cpu_caches();
    uint64_t before = ktest_free_frames(), taken;
    paddr_t grabbed = ktest_grab_frames(8192, &taken);
    uint64_t pool = ktest_free_frames();

    smp_run_on_all(storm_on_cpu, NULL);
    for (paddr_t f; (f = ring_get()) != 0;) {
        disown(f);
        frame_free(f);
    }
    KT_EXPECT(storm_errors == 0, "%u frames handed out twice or changed in the ring",
              storm_errors);
    frame_drain_cpu_caches();
    KT_EXPECT(ktest_free_frames() == pool, "after the storm: free %llu, want %llu",
              (unsigned long long)ktest_free_frames(), (unsigned long long)pool);
    KT_EXPECT(frame_check());

    /* Out of memory on this CPU while every CPU's cache holds frames: this
     * CPU must find them all. */
    memset(oom_list, 0, sizeof(oom_list));
    memset(oom_count, 0, sizeof(oom_count));
    smp_run_on_all(stash_on_cpu, NULL);
    oom_on_cpu(NULL);
    unsigned me = cpu_index();
    KT_EXPECT(oom_count[me] == pool, "alone: took %llu of %llu free frames (caches of %u CPUs)",
              (unsigned long long)oom_count[me], (unsigned long long)pool, smp_cpu_count());
    for (paddr_t f = oom_list[me], next; f; f = next) {
        next = *(paddr_t *)PHYS2VIRT(f);
        disown(f);
        frame_free(f);
    }
    oom_list[me] = 0;
    oom_count[me] = 0;
    /* Out of memory on every CPU at once. */
    smp_run_on_all(stash_on_cpu, NULL);
    smp_run_on_all(oom_on_cpu, NULL);
    uint64_t got = 0;
    for (unsigned k = 0; k < CPU_MAX; k++)
        got += oom_count[k];
    KT_EXPECT(got == pool, "out of memory on %u CPUs: they took %llu of %llu free frames",
              smp_cpu_count(), (unsigned long long)got, (unsigned long long)pool);
    KT_EXPECT(ktest_free_frames() == 0);
    KT_EXPECT(oom_zero_with_cache == 0, "a CPU was refused with frames in its own cache");
    KT_EXPECT(storm_errors == 0, "%u frames handed out twice", storm_errors);
    smp_run_on_all(oom_free_next, NULL);
    frame_drain_cpu_caches();
    KT_EXPECT(ktest_free_frames() == pool);
    KT_EXPECT(frame_check());
    ktest_release_frames(grabbed);
    frame_drain_cpu_caches();
    KT_EXPECT(ktest_free_frames() == before, "free %llu, want %llu",
              (unsigned long long)ktest_free_frames(), (unsigned long long)before);
    kfree(owned); /* after the count: the heap may give frames back */
    KT_EXPECT(frame_check());
    kprintf("frame-smp: %u CPUs, pool %llu frames, storm %d ops each, out of memory together\n",
            smp_cpu_count(), (unsigned long long)pool, STORM_OPS);
}
