/* In-kernel self-tests of mm/heap: a long random stress with patterned blocks,
 * baselines restored afterwards, the NULL / frame-return contract, natural
 * alignment, every CPU at once with cross-CPU frees. Misuse and its reports:
 * test_heap_misuse.c. */
#include "arch/x86_64/cpu_local.h"
#include "arch/x86_64/smp.h"
#include "lib/printf.h"
#include "lib/spinlock.h"
#include "lib/string.h"
#include "lib/types.h"
#include "mm/frame.h"
#include "mm/heap.h"
#include "mm/mm.h"
#include "mm/paging.h"
#include "test/ktest.h"

static uint64_t heap_pages(void)
{
    struct heap_stats st;
    heap_get_stats(&st);
    return st.pages_held;
}

static uint64_t xs_state;
static uint64_t xorshift(void)
{
    uint64_t x = xs_state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return xs_state = x;
}

static uint64_t pattern_word(uint64_t id, size_t i)
{
    return (id * 0x9E3779B97F4A7C15ull) ^ (i * 0xBF58476D1CE4E5B9ull);
}

/* Byte i of a block's pattern: byte i % 8 of pattern_word(id, i / 8), so the
 * pattern of n bytes is a prefix of the pattern of any longer block and
 * verify(q, MIN(new, old)) after krealloc is meaningful. */
static uint8_t pattern_byte(uint64_t id, size_t i)
{
    return (uint8_t)(pattern_word(id, i / 8) >> (8 * (i % 8)));
}

/* Pattern in whole words, then the tail bytes (cheap enough under TCG). */
static void fill(void *p, size_t n, uint64_t id)
{
    uint64_t *w = p;
    size_t words = n / 8;
    for (size_t i = 0; i < words; i++)
        w[i] = pattern_word(id, i);
    for (size_t i = words * 8; i < n; i++)
        ((uint8_t *)p)[i] = pattern_byte(id, i);
}

static bool verify(const void *p, size_t n, uint64_t id)
{
    const uint64_t *w = p;
    size_t words = n / 8;
    for (size_t i = 0; i < words; i++)
        if (w[i] != pattern_word(id, i))
            return false;
    for (size_t i = words * 8; i < n; i++)
        if (((const uint8_t *)p)[i] != pattern_byte(id, i))
            return false;
    return true;
}

static size_t random_size(void)
{
    uint64_t r = xorshift() % 100;
    if (r < 70)
        return 1 + xorshift() % 256;
    if (r < 90) /* the same mix as when slabs ended at 1 KiB: it must fit in 9 MiB of RAM */
        return 257 + xorshift() % (1024 - 256);
    if (r < 98)
        return 1024 + 1 + xorshift() % KiB(15);
    return HEAP_MEDIUM_MAX + 1 + xorshift() % KiB(64);
}

#define STRESS_SLOTS 1024
#define STRESS_OPS 100000

static struct {
    uint8_t *p;
    size_t size;
    uint64_t id;
} slots[STRESS_SLOTS];

KTEST(heap_stress_100k)
{
    /* the pattern must be prefix-stable, or shrinking krealloc looks lossy */
    uint64_t buf[4];
    fill(buf, sizeof(buf), 7);
    for (size_t n = 0; n <= sizeof(buf); n++)
        KT_ASSERT(verify(buf, n, 7), "pattern of %zu bytes is not a prefix of a longer one", n);
    heap_trim();
    uint64_t frames0 = ktest_free_frames(), pages0 = heap_pages();
    struct heap_stats st0;
    heap_get_stats(&st0);
    xs_state = 0x2545F4914F6CDD1Dull;
    uint64_t next_id = 1;
    for (size_t i = 0; i < STRESS_SLOTS; i++)
        slots[i].p = NULL;
    for (int op = 0; op < STRESS_OPS; op++) {
        size_t i = xorshift() % STRESS_SLOTS;
        uint64_t kind = xorshift() % 10;
        if (!slots[i].p) {
            size_t size = random_size(), align = 16;
            uint8_t *p;
            if (kind == 0) {
                align = (size_t)1 << (xorshift() % 13);
                p = kmalloc_aligned(size, align);
            } else {
                p = kmalloc(size);
            }
            KT_ASSERT(p != NULL, "op %d: kmalloc(%zu) failed", op, size);
            KT_ASSERT(((uintptr_t)p & (MAX(align, 16) - 1)) == 0, "op %d: %p not %zu-aligned", op,
                      (void *)p, align);
            KT_ASSERT(kmalloc_usable_size(p) >= size, "op %d: usable size too small", op);
            slots[i].p = p;
            slots[i].size = size;
            slots[i].id = next_id++;
            fill(p, size, slots[i].id);
        } else if (kind < 3) {
            KT_ASSERT(verify(slots[i].p, slots[i].size, slots[i].id), "op %d: block %p corrupted",
                      op, (void *)slots[i].p);
            size_t size = random_size();
            uint8_t *q = krealloc(slots[i].p, size);
            KT_ASSERT(q != NULL, "op %d: krealloc(%zu) failed", op, size);
            KT_ASSERT(verify(q, MIN(size, slots[i].size), slots[i].id), "op %d: krealloc lost data",
                      op);
            slots[i].p = q;
            slots[i].size = size;
            slots[i].id = next_id++;
            fill(q, size, slots[i].id);
        } else {
            KT_ASSERT(verify(slots[i].p, slots[i].size, slots[i].id), "op %d: block %p corrupted",
                      op, (void *)slots[i].p);
            kfree(slots[i].p);
            slots[i].p = NULL;
        }
        if (op % 10000 == 0)
            KT_ASSERT(heap_check(), "op %d: heap_check failed", op);
    }
    KT_ASSERT(heap_check());
    for (size_t i = 0; i < STRESS_SLOTS; i++) {
        if (slots[i].p) {
            KT_ASSERT(verify(slots[i].p, slots[i].size, slots[i].id), "final: block %p corrupted",
                      (void *)slots[i].p);
            kfree(slots[i].p);
            slots[i].p = NULL;
        }
    }
    KT_ASSERT(heap_check());
    heap_trim();
    struct heap_stats st;
    heap_get_stats(&st);
    KT_EXPECT(st.live_blocks == st0.live_blocks, "%llu live blocks, baseline %llu",
              (unsigned long long)st.live_blocks, (unsigned long long)st0.live_blocks);
    KT_EXPECT(st.pages_held == pages0, "heap holds %llu pages, baseline %llu",
              (unsigned long long)st.pages_held, (unsigned long long)pages0);
    KT_EXPECT(ktest_free_frames() == frames0, "%llu free frames, baseline %llu",
              (unsigned long long)ktest_free_frames(), (unsigned long long)frames0);
}

KTEST(heap_null_cases)
{
    KT_EXPECT(kmalloc(0) == NULL);
    KT_EXPECT(kmalloc(SIZE_MAX) == NULL);
    KT_EXPECT(kmalloc(HEAP_MAX_ALLOC + 1) == NULL);
    KT_EXPECT(kcalloc(SIZE_MAX / 2, 3) == NULL);
    KT_EXPECT(kmalloc_aligned(64, 3) == NULL);
    KT_EXPECT(krealloc(NULL, 0) == NULL);
    kfree(NULL);
    void *p = kmalloc(10);
    KT_ASSERT(p != NULL);
    KT_EXPECT(krealloc(p, SIZE_MAX) == NULL, "failed krealloc returns NULL");
    KT_EXPECT(heap_validate_ptr(p) == NULL, "block survives a failed krealloc");
    KT_EXPECT(krealloc(p, 0) == NULL, "krealloc(p, 0) frees");
    KT_EXPECT(heap_validate_ptr(p) != NULL, "freed block is no longer valid");
    KT_EXPECT(heap_check());
}

KTEST(heap_large_returns_frames)
{
    uint64_t frames0 = ktest_free_frames(), held0 = heap_pages();
    uint8_t *p = kmalloc(MiB(1));
    KT_ASSERT(p != NULL);
    KT_EXPECT(frames0 - ktest_free_frames() >= MiB(1) / PAGE_SIZE,
              "a 1 MiB block takes its frames");
    p[0] = 1;
    p[MiB(1) - 1] = 2;
    /* runs are aligned only as needed: ceil((size + 64-byte header) / 4096)
     * frames, and `heap` reports the frames and the range they span */
    static struct heap_stats st;
    heap_get_stats(&st);
    uint64_t lp = st.large_pages, ls = st.large_span;
    uint8_t *q65 = kmalloc(KiB(65));
    KT_ASSERT(q65 != NULL);
    heap_get_stats(&st);
    KT_EXPECT(st.large_pages - lp == 17 && st.large_span - ls == 17 * PAGE_SIZE,
              "65 KiB: %llu frames, %llu bytes spanned", (unsigned long long)(st.large_pages - lp),
              (unsigned long long)(st.large_span - ls));
    kfree(q65);
    heap_get_stats(&st);
    KT_EXPECT(st.large_pages == lp && lp >= 257, "1 MiB and 65 KiB freed: %llu frames",
              (unsigned long long)st.large_pages);
    kfree(p);
    heap_get_stats(&st);
    KT_EXPECT(lp - st.large_pages == 257 && ls - st.large_span == 257 * PAGE_SIZE,
              "1 MiB: %llu frames, %llu bytes spanned", (unsigned long long)(lp - st.large_pages),
              (unsigned long long)(ls - st.large_span));
    KT_EXPECT(ktest_free_frames() == frames0, "kfree gave the frames back");
    void *q = kmalloc_aligned(KiB(100), MiB(2));
    KT_ASSERT(q != NULL);
    KT_EXPECT((VIRT2PHYS(q) & (MiB(2) - 1)) == 0, "2 MiB alignment");
    kfree(q);
    /* Finding a 2 MiB-aligned run in little RAM may make the heap give back
     * memory it had cached (a spare slab): then more frames are free than
     * before, and the heap holds that much less; nothing is lost. */
    KT_EXPECT(ktest_free_frames() >= frames0 &&
                  ktest_free_frames() + heap_pages() == frames0 + held0,
              "free %llu (was %llu), heap holds %llu (was %llu)",
              (unsigned long long)ktest_free_frames(), (unsigned long long)frames0,
              (unsigned long long)heap_pages(), (unsigned long long)held0);
}

KTEST(heap_validate_ptr_rejects)
{
    int local;
    uint8_t *s = kmalloc(40), *m = kmalloc(12000);
    KT_ASSERT(s && m);
    KT_EXPECT(heap_validate_ptr(s) == NULL);
    KT_EXPECT(heap_validate_ptr(m) == NULL);
    KT_EXPECT(heap_validate_ptr(&local) != NULL);
    KT_EXPECT(heap_validate_ptr(s + 16) != NULL);
    KT_EXPECT(heap_validate_ptr(m + 32) != NULL);
    kfree(s);
    kfree(m);
    KT_EXPECT(heap_validate_ptr(s) != NULL);
    KT_EXPECT(heap_check());
}

/* ---- misuse: each panics before the heap changes, and the heap stays usable ---- */

KTEST(heap_power_of_two_sizes_are_naturally_aligned)
{
    enum { N = 24, K = 13 };
    static void *v[K][N];
    for (int round = 0; round < 2; round++) {
        for (size_t k = 0, n = 1; k < K; k++, n <<= 1) {
            for (size_t i = (size_t)round; i < N; i += 1 + (size_t)round) {
                v[k][i] = i % 3 == 2 ? kcalloc(1, n) : kmalloc(n);
                KT_ASSERT(v[k][i], "kmalloc(%zu)", n);
                KT_EXPECT((uintptr_t)v[k][i] % MAX(n, 16) == 0 &&
                              VIRT2PHYS(v[k][i]) % MAX(n, 16) == 0,
                          "kmalloc(%zu) = %p", n, v[k][i]);
                memset(v[k][i], 0x33, n);
            }
            if (round == 0) /* every other one back: round 1 reuses them */
                for (size_t i = 1; i < N; i += 2)
                    kfree(v[k][i]);
        }
    }
    KT_EXPECT(heap_check());
    for (size_t k = 0; k < K; k++)
        for (size_t i = 0; i < N; i++)
            kfree(v[k][i]);
    KT_EXPECT(heap_check());
}

/* ---- every CPU at once (issue 13) ------------------------------------------------------- */

#define SMP_LOCAL 24 /* blocks each CPU keeps */
#define SMP_RING 64  /* blocks in flight from one CPU to another */
struct smp_block {
    void *p;
    size_t size;
    uint64_t id;
};
static struct spinlock smp_ring_lock = SPINLOCK_INIT("ktest-heap-ring", LOCK_RANK_NONE);
static struct smp_block smp_ring[SMP_RING]; /* smp_ring_lock */
static unsigned smp_ring_n;                 /* smp_ring_lock */
static uint64_t smp_damaged, smp_refused, smp_cross; /* atomic */

static size_t smp_size(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    uint64_t r = *s % 100;
    if (r < 85)
        return 1 + (*s >> 8) % HEAP_SMALL_MAX;
    if (r < 98)
        return HEAP_SMALL_MAX + 1 + (*s >> 8) % (HEAP_MEDIUM_MAX - HEAP_SMALL_MAX);
    return HEAP_MEDIUM_MAX + 1 + (*s >> 8) % KiB(128);
}

static void smp_release(struct smp_block *b)
{
    if (!verify(b->p, MIN(b->size, (size_t)256), b->id))
        __atomic_fetch_add(&smp_damaged, 1, __ATOMIC_RELAXED);
    kfree(b->p);
    b->p = NULL;
}

/* One CPU's share: allocate, fill, keep or hand over, free what comes back. */
static void smp_storm(void *arg)
{
    unsigned rounds = *(const unsigned *)arg, me = cpu_index();
    uint64_t s = 0x9E3779B97F4A7C15ull * (me + 1);
    struct smp_block local[SMP_LOCAL];
    memset(local, 0, sizeof(local));
    for (unsigned r = 0; r < rounds; r++) {
        struct smp_block *b = &local[r % SMP_LOCAL];
        if (b->p)
            smp_release(b);
        b->size = smp_size(&s);
        b->id = s ^ me;
        b->p = kmalloc(b->size);
        if (!b->p) {
            __atomic_fetch_add(&smp_refused, 1, __ATOMIC_RELAXED);
            continue;
        }
        fill(b->p, MIN(b->size, (size_t)256), b->id);
        if (s % 3 == 0) {
            struct smp_block out = {0};
            spin_lock(&smp_ring_lock);
            if (smp_ring_n == SMP_RING) {
                unsigned k = (unsigned)(s >> 20) % SMP_RING;
                out = smp_ring[k];
                smp_ring[k] = *b;
            } else {
                smp_ring[smp_ring_n++] = *b;
            }
            spin_unlock(&smp_ring_lock);
            b->p = NULL;
            if (out.p) {
                smp_release(&out); /* most likely allocated on another CPU */
                __atomic_fetch_add(&smp_cross, 1, __ATOMIC_RELAXED);
            }
        }
    }
    for (unsigned i = 0; i < SMP_LOCAL; i++)
        if (local[i].p)
            smp_release(&local[i]);
}

/* Every CPU allocates and frees over every tier at once, a third of its
 * blocks freed by another CPU through a shared ring; no block is damaged,
 * and once everything is freed and the magazines drained, heap_check passes
 * and the counts are back at their baseline with no CPU caching anything. */
KTEST(heap_smp_storm_every_cpu_cross_cpu_frees)
{
    struct heap_stats st0, st;
    heap_get_stats(&st0);
    smp_damaged = smp_refused = smp_cross = 0;
    smp_ring_n = 0;
    unsigned rounds = 1500;
    smp_run_on_all(smp_storm, &rounds);
    for (unsigned i = 0; i < smp_ring_n; i++)
        smp_release(&smp_ring[i]);
    smp_ring_n = 0;
    KT_EXPECT(smp_damaged == 0, "%llu blocks damaged", (unsigned long long)smp_damaged);
    KT_EXPECT(smp_refused == 0, "%llu allocations refused", (unsigned long long)smp_refused);
    KT_EXPECT(smp_cpu_count() == 1 || smp_cross > 0, "no block was handed over");
    heap_get_stats(&st);
    KT_EXPECT(st.live_blocks == st0.live_blocks && st.bytes_in_use == st0.bytes_in_use,
              "%llu live blocks (baseline %llu)", (unsigned long long)st.live_blocks,
              (unsigned long long)st0.live_blocks);
    KT_EXPECT(st.alloc_count - st0.alloc_count == st.free_count - st0.free_count);
    KT_EXPECT(heap_check(), "heap invariants after the storm");
    heap_drain_cpu_caches();
    for (unsigned c = 0; c < CPU_MAX; c++)
        KT_EXPECT(heap_cpu_cached(c, NULL) == 0, "CPU %u still caches objects", c);
    KT_EXPECT(heap_check(), "heap invariants after the drain");
    kprintf("heap-smp: %u CPUs, %u rounds each, %llu cross-CPU frees\n", smp_cpu_count(), rounds,
            (unsigned long long)smp_cross);
}
