/* Over 600 lines on purpose: the bitmap, its summary trees and the run search
 * share static inline helpers that frame_alloc/frame_free need inlined.
 *
 * Physical frame allocator.
 *
 * The bitmap holds one bit per 4 KiB frame, 1 = used, from frame 0 up to the
 * highest usable or bootloader-reclaimable frame. Above it sit three summary
 * trees of three levels, each one bit per word of the level below:
 *
 *   sum3    1 bit per 64 GiB   empty3  group3  (scanned linearly; one word per 4 TiB)
 *   sum2    1 bit per 1 GiB    empty2  group2
 *   sum1    1 bit per 256 KiB  empty1  group1  (= per bitmap word)
 *   bitmap  1 bit per 4 KiB
 *
 * sum* lead to words with a free frame, empty* to wholly free words (all 64
 * frames free: a free, 256 KiB-aligned 256 KiB block), group* to words that
 * hold a free group (16 frames at a multiple of 16 in the word: a free,
 * 64 KiB-aligned 64 KiB block; a wholly free word holds four).
 *
 * Invariants (frame_check verifies them):
 *   - sum1 is lazy in one direction: a 0 bit guarantees that its bitmap word
 *     is full; a 1 bit means "maybe free". A descent that lands on a full
 *     word (a stale bit) clears it then and retries; a cache refill clears
 *     the bit of a word it fills (it knows the word).
 *   - empty1 is lazy the same way: a 0 bit guarantees that its word is not
 *     wholly free; a 1 bit means "maybe". A cache refill never touches it (a
 *     frame taken from a wholly free word leaves the bit stale); a drain,
 *     frame_free_contig and the bulk paths set it when a word becomes 0; a
 *     contig descent that lands on a non-zero word clears it and retries.
 *   - group1 likewise: a 0 bit guarantees that its word holds no free group;
 *     a refill leaves it stale, the free paths set it when a group becomes
 *     free, the contig paths clear it when they take a word's last free group
 *     (they know the word) and when a descent lands on a stale bit. A set
 *     empty1 bit implies a set group1 bit (mark_empty sets both,
 *     mark_not_group clears both).
 *   - sum2/sum3, empty2/empty3 and group2/group3 are exact: a bit is 1 exactly
 *     when the word below it is non-zero. Hence a 1 bit at the lowest level
 *     implies its upper bits are 1, and a frame given back to the bitmap only
 *     has to look at sum1 (group1, empty1) when it frees into a full word.
 *
 * A cache refill walks down sum* with one count-trailing-zeros per level and
 * takes the lowest free frames: the cost does not depend on how full memory
 * is, and on RAM size only through the sum3 scan (one word per 4 TiB). Each
 * stale sum1 bit costs one extra descent once, paid by the refill that finds
 * it.
 *
 * frame_alloc_contig(count, align) with count <= 64 and align <= 256 KiB
 * (one word) is O(1) when it succeeds from an index: it tries the free
 * aligned slots of the cursor word (the word the last small run came from or
 * went back to; one mask test), else takes the lowest word holding a free
 * group through group* (count <= 16, align <= 64 KiB: the lowest fitting slot
 * of that word) or the lowest wholly free word through empty* (larger runs);
 * each stale bit costs one extra descent once. It is not first-fit: holes in
 * partly used words are left to frame_alloc. When the index it needs is empty
 * the request fails at once if every such run must contain what the index
 * finds: a free group (count >= 16 and align >= 64 KiB, or count >= 31) or a
 * wholly free word (count >= 128, or count >= 64 and align >= 256 KiB); so a
 * slab (16 frames at 64 KiB) and a 64-frame run at 256 KiB are found or
 * refused in O(1) however fragmented memory is. Otherwise (e.g. 8 frames at
 * 64 KiB with no free 64 KiB block left) it falls back to a first-fit scan,
 * which starts at the lowest free group or wholly free word when the run must
 * contain one, else at the lowest free frame.
 *
 * The summaries cost 3 x (1/64 + 1/4096 + ...) of the bitmap: 65.5 KiB per
 * GiB in all (bitmap 32 KiB, held bits 32 KiB).
 *
 * The metadata is bump-allocated from the top of the largest usable region
 * (inside the HHDM) and is not managed memory afterwards. A private copy of
 * the memory map (with frame 0 and the metadata split out) answers "is this
 * frame managed?" for frame_free's checks by binary search; the largest
 * usable region is checked first without a search.
 *
 * Per-CPU caches and locking. One plain spinlock, frame_lock (rank
 * LOCK_RANK_FRAME), protects the bitmap, every summary tree, free_frames, the
 * cursor and the private map's types (reclaim). In front of it each CPU has
 * a frame cache (after Linux's per-CPU page lists): a stack of up to
 * CACHE_MAX free single frames that frame_alloc pops and frame_free pushes
 * without the frame lock. An empty cache is refilled with CACHE_BATCH frames
 * in one bitmap pass (lowest frames, the lowest on top); a full one gives
 * its CACHE_BATCH oldest frames back in one pass. A frame freed on another
 * CPU than the one that took it lands in the freeing CPU's cache. Runs
 * (frame_alloc_contig, frame_free_contig, frame_alloc_below) go to the
 * bitmap under the lock.
 *
 * Each cache has its own byte lock (an xchg), taken by its CPU on every
 * cache operation and by any CPU that drains it: when the bitmap cannot
 * satisfy a request, every CPU's cache is drained back to the bitmap and
 * the request retried before it fails. Lock order: a cache lock, then
 * frame_lock; never two cache locks except in frame_check and
 * frame_state_digest, which take all of them in index order first.
 *
 * A frame's three states are told apart by two bits: the bitmap bit and a
 * `held` bit (one per frame, in the metadata), set exactly while a caller
 * holds the frame:
 *   free in the bitmap       bitmap 0, held 0
 *   in some CPU's cache      bitmap 1, held 0  (usable memory)
 *   held by a caller         bitmap 1, held 1
 * (frames outside usable memory: bitmap 1, held 0.) frame_free clears the
 * held bit with one atomic test-and-reset under its cache lock: a clear bit
 * is a double free, whether the frame sits in the bitmap or in any CPU's
 * cache. Held bits change atomically (CPUs share their words): under a cache
 * lock for that cache's frames, under frame_lock for runs. */
#include "mm/frame.h"

#include "arch/x86_64/cpu_local.h"
#include "lib/panic.h"
#include "lib/printf.h"
#include "lib/spinlock.h"
#include "lib/string.h"
#include "mm/memmap.h"
#include "mm/mm.h"

/* MM_POISON fills freed frames with 0x99 so that use-after-free shows itself.
 * On by default in SLAYER_DEBUG builds (MM_NO_POISON turns it off). */
#if defined(SLAYER_DEBUG) && !defined(MM_NO_POISON) && !defined(MM_POISON)
#define MM_POISON 1
#endif
#define FRAME_POISON 0x99

#define FULL        (~0ULL)
#define likely(x)   __builtin_expect(!!(x), 1)
#define unlikely(x) __builtin_expect(!!(x), 0)
#define BIT(i)      (1ULL << ((i) % 64))
/* Trailing zeros of a non-zero x, as a 64-bit value. GCC's builtin returns an
 * int and sign-extends it at every use (one instruction per level of the
 * descent); tzcnt writes all 64 bits. Without BMI1 the CPU runs tzcnt as bsf,
 * which gives the same result for x != 0. */
#if defined(__x86_64__)
static inline uint64_t CTZ(uint64_t x)
{
    uint64_t r;
    __asm__("tzcnt %1, %0" : "=r"(r) : "rm"(x) : "cc");
    return r;
}
#else
#define CTZ(x) ((uint64_t)__builtin_ctzll(x))
#endif

/* Region types of our own, beyond enum mem_type: never freeable. */
#define REGION_FRAME0   (MEM_TYPE_COUNT + 0)
#define REGION_METADATA (MEM_TYPE_COUNT + 1)

struct region {
    paddr_t base, end;
    uint32_t type; /* enum mem_type or REGION_*; reclaim turns RECLAIMABLE into USABLE */
};

/* fa: the frame allocator, its one instance (bitmap, summary trees, counts).
 * Hot fields first: the cache fast paths touch only the first cache line.
 * Locking: `held` words change atomically (see above); fast_base,
 * fast_frames, the array pointers and n* change only in frame_init/reclaim
 * (reclaim: under frame_lock, while the other CPUs are idle); everything
 * else is under frame_lock. */
static struct {
    uint64_t *held;     /* nbm words, 1 bit per frame: 1 = held by a caller (atomic) */
    paddr_t fast_base;  /* largest usable region: frame_free checks it first */
    uint64_t fast_frames;
    uint64_t *bitmap;   /* nbm words, 1 bit per frame, 1 = used (or cached) */
    uint64_t *sum1;     /* n1 words, 1 bit per bitmap word: 0 = full, 1 = maybe free */
    uint64_t *sum2;     /* n2 words, 1 bit per sum1 word: it is non-zero (exact) */
    uint64_t *sum3;     /* n3 words + one non-zero sentinel, 1 bit per sum2 word */
    uint64_t free_frames; /* free in the bitmap (cached frames not counted) */

    uint64_t *empty1;   /* n1 words, 1 bit per bitmap word: 0 = not wholly free, 1 = maybe */
    uint64_t *empty2;   /* n2 words, 1 bit per empty1 word: it is non-zero (exact) */
    uint64_t *empty3;   /* n3 words + one non-zero sentinel, 1 bit per empty2 word */
    uint64_t *group1;   /* n1 words, 1 bit per bitmap word: 0 = no free group, 1 = maybe */
    uint64_t *group2;   /* n2 words, 1 bit per group1 word: it is non-zero (exact) */
    uint64_t *group3;   /* n3 words + one non-zero sentinel, 1 bit per group2 word */
    uint64_t cursor;    /* bitmap word of the last small contig run (a hint) */
    size_t n3, nbm, n1, n2;
    uint64_t total_frames;
    uint64_t usable_frames, reserved_frames, reclaimable_frames, reclaimed_frames;
    paddr_t meta_base;
    uint64_t meta_bytes;
} fa;

/* Guards the bitmap, the summaries, free_frames, cursor, the counts and the
 * region types (see the comment at the top). */
static struct spinlock frame_lock = SPINLOCK_INIT("frame", LOCK_RANK_FRAME);

#define CACHE_MAX   FRAME_CACHE_MAX /* 63: the cache is 512 bytes */
#define CACHE_BATCH 32 /* frames one refill takes, one drain of a full cache gives back */

/* One CPU's frame cache. `lock` guards count and frames; count is also read
 * without it (atomically) for statistics and to skip empty caches. Every
 * cached frame is used in the bitmap, not held, in usable memory and in one
 * cache only (frame_check). Its own cache line: CPUs do not share it but to
 * drain it. */
struct frame_cache {
    uint8_t lock;                /* 1 while a CPU works on this cache (xchg) */
    uint32_t count;              /* frames[0 .. count): the top is frames[count - 1] */
    paddr_t frames[CACHE_MAX];
} __attribute__((aligned(64)));
static struct frame_cache caches[CPU_MAX];

#ifdef SLAYER_HOST
/* Host tests of the bitmap layer set 0: single frames then bypass the caches. */
unsigned frame_cache_limit = CACHE_MAX;
#define CACHE_LIMIT frame_cache_limit
#else
#define CACHE_LIMIT CACHE_MAX
#endif

static struct region regions[MEMMAP_MAX + 3]; /* + frame 0 + metadata splits */
static size_t nregions;

static inline uint64_t div_up(uint64_t a, uint64_t b)
{
    return (a + b - 1) / b;
}

/* The three summary trees share one shape: t1 has a bit per bitmap word, t2
 * a bit per t1 word, t3 a bit per t2 word. */

/* Sets bitmap word w's bit at every level of a tree. */
static inline void tree_set(uint64_t *t1, uint64_t *t2, uint64_t *t3, uint64_t w)
{
    t1[w / 64] |= BIT(w);
    t2[w / 4096] |= BIT(w / 64);
    t3[w / 262144] |= BIT(w / 4096);
}

/* Clears bitmap word w's t1 bit, and upwards while words become 0 (t2 and t3
 * stay exact). */
static inline void tree_clear(uint64_t *t1, uint64_t *t2, uint64_t *t3, uint64_t w)
{
    if ((t1[w / 64] &= ~BIT(w)) == 0)
        if ((t2[w / 4096] &= ~BIT(w / 64)) == 0)
            t3[w / 262144] &= ~BIT(w / 4096);
}

/* Bitmap word w gained a free frame: set its bit at every level. (Out of line
 * so that the fast paths stay short; they reach it by a tail call.) */
static void __attribute__((noinline)) mark_has_free(uint64_t w)
{
    tree_set(fa.sum1, fa.sum2, fa.sum3, w);
}

/* Bitmap word w is full: clear its bit, and upwards while words empty. (Also
 * how a stale sum1 bit is cleared: the upper levels stay exact.) */
static void __attribute__((noinline)) mark_full(uint64_t w)
{
    tree_clear(fa.sum1, fa.sum2, fa.sum3, w);
}

static void mark_group(uint64_t w);

/* Bitmap word w became 0 (wholly free): set its bit at every empty level,
 * and its group bits (a set empty1 bit implies a set group1 bit). */
static void __attribute__((noinline)) mark_empty(uint64_t w)
{
    tree_set(fa.empty1, fa.empty2, fa.empty3, w);
    mark_group(w);
}

/* Bitmap word w is not wholly free: clear its empty1 bit, and upwards while
 * words empty (also how a stale empty1 bit is cleared). */
static void mark_not_empty(uint64_t w)
{
    tree_clear(fa.empty1, fa.empty2, fa.empty3, w);
}

/* Bitmap word w holds a free group now: set its bit at every group level. */
static void __attribute__((noinline)) mark_group(uint64_t w)
{
    tree_set(fa.group1, fa.group2, fa.group3, w);
}

/* Bitmap word w holds no free group: clear its group1 bit, and upwards while
 * words empty (also how a stale group1 bit is cleared), and its empty bit
 * (the word is not wholly free either). */
static void mark_not_group(uint64_t w)
{
    mark_not_empty(w);
    tree_clear(fa.group1, fa.group2, fa.group3, w);
}

/* Bit 16g set for each group g (frames 16g..16g+15) of bitmap word x that is
 * wholly free; 0 when the word holds no free group. */
static inline uint64_t free_groups(uint64_t x)
{
    x |= x >> 8;
    x |= x >> 4;
    x |= x >> 2;
    x |= x >> 1; /* bit 16g = OR of bits 16g..16g+15 */
    return ~x & 0x0001000100010001ULL;
}

/* Bitmap word w changed from old to now by taking frames: clear the index
 * bits of what it no longer holds (exact here: the word is known). */
static inline void note_taken(uint64_t w, uint64_t old, uint64_t now)
{
    if (old == 0)
        mark_not_empty(w);
    if (free_groups(old) && !free_groups(now))
        mark_not_group(w);
    if (now == FULL)
        mark_full(w);
}

/* Bitmap word w changed to now by freeing frames: set the index bits of what
 * it holds now (bits already set are left as they are). */
static inline void note_freed(uint64_t w, uint64_t now)
{
    if (!(fa.sum1[w / 64] & BIT(w)))
        mark_has_free(w);
    if (free_groups(now) && !(fa.group1[w / 64] & BIT(w)))
        mark_group(w);
    if (now == 0 && !(fa.empty1[w / 64] & BIT(w)))
        mark_empty(w);
}

/* Sets frames [f0, f1) used or free, keeping the summaries right. A word
 * that loses its last free group or stops being wholly free loses the index
 * bit at once (not lazily). */
static void set_range(uint64_t f0, uint64_t f1, bool used)
{
    while (f0 < f1) {
        uint64_t w = f0 / 64, n = MIN(f1 - f0, 64 - f0 % 64);
        uint64_t mask = (n == 64 ? FULL : (BIT(n) - 1)) << (f0 % 64), old = fa.bitmap[w];
        if (used) {
            fa.bitmap[w] = old | mask;
            note_taken(w, old, old | mask);
        } else {
            fa.bitmap[w] = old & ~mask;
            note_freed(w, old & ~mask);
        }
        f0 += n;
    }
}

/* Sets (ones) or clears bits [b0, b1) of a: masks for the end words, whole
 * words (memset: rep stosq) between. Bits outside [b0, b1) are kept. */
static void bits_assign(uint64_t *a, uint64_t b0, uint64_t b1, bool ones)
{
    if (b0 >= b1)
        return;
    uint64_t w0 = b0 / 64, w1 = (b1 - 1) / 64; /* first and last word */
    uint64_t m0 = FULL << (b0 % 64), m1 = FULL >> (63 - (b1 - 1) % 64);
    if (w0 == w1)
        m0 &= m1;
    a[w0] = ones ? a[w0] | m0 : a[w0] & ~m0;
    if (w0 == w1)
        return;
    memset(a + w0 + 1, ones ? 0xff : 0, (w1 - w0 - 1) * 8);
    a[w1] = ones ? a[w1] | m1 : a[w1] & ~m1;
}

/* Sets the bits of bitmap words [a, b) (a < b) at every level of a tree. */
static void tree_set_bulk(uint64_t *t1, uint64_t *t2, uint64_t *t3, uint64_t a, uint64_t b)
{
    bits_assign(t1, a, b, true);
    bits_assign(t2, a / 64, (b - 1) / 64 + 1, true);
    bits_assign(t3, a / 4096, (b - 1) / 4096 + 1, true);
}

/* Frames [f0, f1) become free: the bitmap, then every summary level, in bulk.
 * The words wholly inside get their empty bits in bulk; the two end words
 * when they are now 0. (In frame_init a later gap may still set bits of an
 * end word: its empty1 bit is then stale, which is allowed.) */
static void set_free_bulk(uint64_t f0, uint64_t f1)
{
    if (f0 >= f1)
        return;
    uint64_t w0 = f0 / 64, w1 = (f1 - 1) / 64 + 1; /* bitmap words [w0, w1) */
    bits_assign(fa.bitmap, f0, f1, false);
    tree_set_bulk(fa.sum1, fa.sum2, fa.sum3, w0, w1);
    uint64_t a = div_up(f0, 64), b = f1 / 64; /* whole words [a, b) */
    if (a < b) {
        tree_set_bulk(fa.empty1, fa.empty2, fa.empty3, a, b);
        tree_set_bulk(fa.group1, fa.group2, fa.group3, a, b);
    }
    note_freed(w0, fa.bitmap[w0]);
    note_freed(w1 - 1, fa.bitmap[w1 - 1]);
}

/* The region holding physical address a, or NULL when the map has a hole there. */
static const struct region *region_find(paddr_t a)
{
    size_t lo = 0, hi = nregions; /* find the last region with base <= a */
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (regions[mid].base <= a)
            lo = mid + 1;
        else
            hi = mid;
    }
    return (lo > 0 && a < regions[lo - 1].end) ? &regions[lo - 1] : NULL;
}

static const char *region_type_name(uint32_t type)
{
    if (type == REGION_FRAME0)
        return "frame 0";
    if (type == REGION_METADATA)
        return "frame-allocator metadata";
    return mem_type_name(type);
}

/* frame_free's slow check, for addresses outside the largest usable region. */
static void __attribute__((noinline)) check_managed(paddr_t f, void *caller)
{
    unsigned long long a = f;
    if (f >> PAGE_SHIFT >= fa.total_frames)
        panic("frame_free(0x%llx): beyond managed memory (which ends at %#llx); caller %p", a,
              (unsigned long long)(fa.total_frames << PAGE_SHIFT), caller);
    const struct region *r = region_find(f);
    if (!r)
        panic("frame_free(0x%llx): not in the memory map; caller %p", a, caller);
    if (r->type != MEM_USABLE)
        panic("frame_free(0x%llx): not usable memory (%s [%#llx-%#llx)); caller %p", a,
              region_type_name(r->type), (unsigned long long)r->base,
              (unsigned long long)r->end, caller);
}

#if defined(__x86_64__) && !defined(__SANITIZE_THREAD__)
/* Sets frame i's held bit (atomic: CPUs share the words of held bits). One
 * locked bts on the bit string: the CPU finds the word from i. */
static inline void held_set(uint64_t i)
{
    __asm__ volatile("lock btsq %1, (%0)" ::"r"(fa.held), "r"(i) : "memory", "cc");
}

/* Clears frame i's held bit; true when it was set (one locked btr). */
static inline bool held_test_clear(uint64_t i)
{
    bool was;
    __asm__ volatile("lock btrq %2, (%1)" : "=@ccc"(was) : "r"(fa.held), "r"(i) : "memory");
    return was;
}
#else /* the same with the compiler's atomics (ThreadSanitizer sees these) */
static inline void held_set(uint64_t i)
{
    __atomic_fetch_or(&fa.held[i / 64], BIT(i), __ATOMIC_RELAXED);
}

static inline bool held_test_clear(uint64_t i)
{
    return (__atomic_fetch_and(&fa.held[i / 64], ~BIT(i), __ATOMIC_RELAXED) & BIT(i)) != 0;
}
#endif

/* Frame i's held bit. */
static inline bool held_test(uint64_t i)
{
    return (__atomic_load_n(&fa.held[i / 64], __ATOMIC_RELAXED) & BIT(i)) != 0;
}

/* Sets (set) or clears the held bits of frames [f0, f1), a word at a time.
 * (Inlined: `set` is a constant at each call, and most runs are one word.) */
static inline __attribute__((always_inline)) void held_assign(uint64_t f0, uint64_t f1, bool set)
{
    while (f0 < f1) {
        uint64_t w = f0 / 64, n = MIN(f1 - f0, 64 - f0 % 64);
        uint64_t mask = (n == 64 ? FULL : (BIT(n) - 1)) << (f0 % 64);
        if (set)
            __atomic_fetch_or(&fa.held[w], mask, __ATOMIC_RELAXED);
        else
            __atomic_fetch_and(&fa.held[w], ~mask, __ATOMIC_RELAXED);
        f0 += n;
    }
}

/* The first frame of [f0, f1) that is not held (f1 when every one is). */
static uint64_t first_not_held(uint64_t f0, uint64_t f1)
{
    while (f0 < f1) {
        uint64_t w = f0 / 64, n = MIN(f1 - f0, 64 - f0 % 64);
        uint64_t mask = (n == 64 ? FULL : (BIT(n) - 1)) << (f0 % 64);
        uint64_t v = ~__atomic_load_n(&fa.held[w], __ATOMIC_RELAXED) & mask;
        if (v)
            return w * 64 + CTZ(v);
        f0 += n;
    }
    return f1;
}

/* Waits for a cache lock some other CPU holds (a drain or a check). */
static void __attribute__((noinline)) cache_lock_wait(struct frame_cache *c)
{
    do
        cpu_relax();
    while (__atomic_load_n(&c->lock, __ATOMIC_RELAXED) ||
           __atomic_exchange_n(&c->lock, 1, __ATOMIC_ACQUIRE));
}

/* Takes cache c's byte lock if it is free (one xchg); true when taken. */
static inline bool cache_trylock(struct frame_cache *c)
{
    return !__atomic_exchange_n(&c->lock, 1, __ATOMIC_ACQUIRE);
}

/* Takes cache c's byte lock (one xchg when free). */
static inline void cache_lock(struct frame_cache *c)
{
    if (unlikely(!cache_trylock(c)))
        cache_lock_wait(c);
}

/* Releases cache c's byte lock. */
static inline void cache_unlock(struct frame_cache *c)
{
    __atomic_store_n(&c->lock, 0, __ATOMIC_RELEASE);
}

/* Sets c's count (caller holds c's lock; atomic for the lock-free readers). */
static inline void cache_set_count(struct frame_cache *c, uint32_t n)
{
    __atomic_store_n(&c->count, n, __ATOMIC_RELAXED);
}

/* This CPU's cache. (The pointer is made opaque so that the compiler keeps
 * it in a register instead of recomputing the index arithmetic after every
 * atomic operation.) */
static inline struct frame_cache *my_cache(void)
{
    struct frame_cache *c = &caches[cpu_index()];
    __asm__("" : "+r"(c));
    return c;
}

/* Sets *w to the lowest bitmap word that a tree's three levels lead to
 * (top/mid/low: sum3/2/1, empty3/2/1 or group3/2/1); false when they are all
 * 0. The lowest level may be stale. */
static inline bool descend_in(const uint64_t *top_level, const uint64_t *mid_level,
                              const uint64_t *low_level, uint64_t *w)
{
    uint64_t top = top_level[0], i2;
    if (likely(top)) {
        i2 = CTZ(top);
    } else { /* more than 4 TiB of frames, or none left */
        size_t i3 = 0;
        while (!(top = top_level[++i3])) /* the non-zero sentinel ends the scan */
            ;
        if (i3 == fa.n3)
            return false;
        i2 = i3 * 64 + CTZ(top);
    }
    uint64_t i1 = i2 * 64 + CTZ(mid_level[i2]);
    *w = i1 * 64 + CTZ(low_level[i1]);
    return true;
}

/* The word with the lowest free frame (it may be full: a stale sum1 bit). */
static inline bool descend(uint64_t *w)
{
    return descend_in(fa.sum3, fa.sum2, fa.sum1, w);
}

/* Takes up to `want` of the lowest free frames from the bitmap into out[],
 * the lowest last (the top of a cache stack); returns how many. A word it
 * fills loses its sum1 bit at once; a stale sum1 bit it lands on is cleared
 * (each once). empty1/group1 stay stale, as for any allocation. Caller holds
 * frame_lock. */
static uint32_t take_batch(paddr_t *out, uint32_t want)
{
    uint32_t n = 0;
    uint64_t w;
    while (n < want && descend(&w)) {
        uint64_t word = fa.bitmap[w];
        while (n < want && word != FULL) {
            uint64_t b = CTZ(~word);
            word |= BIT(b);
            out[n++] = (w * 64 + b) << PAGE_SHIFT;
        }
        fa.bitmap[w] = word;
        if (word == FULL)
            mark_full(w);
    }
    fa.free_frames -= n;
    for (uint32_t k = 0; k < n / 2; k++) { /* lowest on top */
        paddr_t t = out[k];
        out[k] = out[n - 1 - k];
        out[n - 1 - k] = t;
    }
    return n;
}

/* Gives cached frame f back to the bitmap (caller holds frame_lock). A
 * frame the bitmap already calls free means a cache was corrupted. */
static void bitmap_put(paddr_t f)
{
    uint64_t i = f >> PAGE_SHIFT, w = i / 64, old = fa.bitmap[w];
    if (!(old & BIT(i))) {
        spin_unlock(&frame_lock);
        panic("frame cache: 0x%llx is free in the bitmap (corrupted cache)",
              (unsigned long long)f);
    }
    fa.bitmap[w] = old & ~BIT(i);
    fa.free_frames++;
    note_freed(w, old & ~BIT(i));
}

/* Gives frames[0 .. n) of cache c back to the bitmap in one pass under
 * frame_lock (caller holds c's lock). */
static void cache_give_back(const paddr_t *frames, uint32_t n)
{
    spin_lock(&frame_lock);
    for (uint32_t k = 0; k < n; k++)
        bitmap_put(frames[k]);
    spin_unlock(&frame_lock);
}

/* Empties every CPU's cache into the bitmap, one cache at a time (its lock,
 * then frame_lock); returns the frames moved. Caller holds no cache lock. */
static uint64_t drain_all(void)
{
    uint64_t moved = 0;
    for (unsigned k = 0; k < CPU_MAX; k++) {
        struct frame_cache *c = &caches[k];
        if (!__atomic_load_n(&c->count, __ATOMIC_RELAXED))
            continue;
        cache_lock(c);
        uint32_t n = c->count;
        cache_give_back(c->frames, n);
        cache_set_count(c, 0);
        cache_unlock(c);
        moved += n;
    }
    return moved;
}

uint64_t frame_drain_cpu_caches(void)
{
    return drain_all();
}

unsigned frame_cache_count(unsigned cpu)
{
    return cpu < CPU_MAX ? __atomic_load_n(&caches[cpu].count, __ATOMIC_RELAXED) : 0;
}

/* frame_alloc found its cache (c, locked) empty: refill it from the bitmap;
 * when the bitmap has nothing, drain every cache and try once more. */
static paddr_t __attribute__((noinline)) alloc_refill(struct frame_cache *c)
{
#ifdef SLAYER_DEBUG
    kassert(!cpu_in_irq(), "frame_alloc in an interrupt handler");
#endif
    spin_lock(&frame_lock);
    uint32_t n = take_batch(c->frames, MAX(MIN(CACHE_BATCH, CACHE_LIMIT), 1));
    spin_unlock(&frame_lock);
    if (!n) {
        cache_unlock(c);
        if (!drain_all())
            return 0;
        cache_lock(c);
        if (!(n = c->count)) { /* our own cache was drained too: refill again */
            spin_lock(&frame_lock);
            n = take_batch(c->frames, MAX(MIN(CACHE_BATCH, CACHE_LIMIT), 1));
            spin_unlock(&frame_lock);
        }
        if (!n) {
            cache_unlock(c);
            return 0;
        }
    }
    paddr_t f = c->frames[n - 1];
    cache_set_count(c, n - 1);
    held_set(f >> PAGE_SHIFT);
    cache_unlock(c);
    return f;
}

/* Pops a frame from cache c (locked by the caller), refilling it when
 * empty; releases the lock. */
static inline paddr_t cache_pop(struct frame_cache *c)
{
    uint32_t n = c->count;
    if (unlikely(n == 0))
        return alloc_refill(c);
    paddr_t f = c->frames[n - 1];
    cache_set_count(c, n - 1);
    held_set(f >> PAGE_SHIFT);
    cache_unlock(c);
    return f;
}

/* frame_alloc found its cache locked (a CPU drains or checks it): wait. (Out
 * of line, reached by a tail call, so the fast path saves no register.) */
static paddr_t __attribute__((noinline)) alloc_wait(struct frame_cache *c)
{
    cache_lock_wait(c);
    return cache_pop(c);
}

paddr_t frame_alloc(void)
{
    struct frame_cache *c = my_cache();
    if (unlikely(!cache_trylock(c)))
        return alloc_wait(c);
    return cache_pop(c);
}

paddr_t frame_alloc_zeroed(void)
{
    paddr_t f = frame_alloc();
    if (f)
        memset(PHYS2VIRT(f), 0, PAGE_SIZE);
    return f;
}

/* frame_free found frame f not held (its bit was already clear): a double
 * free, of a frame free in the bitmap or sitting in some CPU's cache.
 * Nothing changed; this CPU's cache (locked) is released before the panic. */
static void __attribute__((noinline, noreturn)) double_free(paddr_t f, void *caller)
{
    cache_unlock(&caches[cpu_index()]);
    panic("frame_free(0x%llx): double free (frame is already free); caller %p",
          (unsigned long long)f, caller);
}

/* frame_free found its cache (c, locked) full: its CACHE_BATCH oldest frames
 * go back to the bitmap, then f goes on top (with no cache at all, f goes
 * to the bitmap). */
static void __attribute__((noinline)) free_drain(struct frame_cache *c, paddr_t f)
{
#ifdef SLAYER_DEBUG
    kassert(!cpu_in_irq(), "frame_free in an interrupt handler");
#endif
    uint32_t n = c->count, out = MIN(n, CACHE_BATCH);
    if (CACHE_LIMIT == 0) {
        cache_give_back(&f, 1);
        cache_unlock(c);
        return;
    }
    cache_give_back(c->frames, out);
    memmove(c->frames, c->frames + out, (n - out) * sizeof(paddr_t));
    c->frames[n - out] = f;
    cache_set_count(c, n - out + 1);
    cache_unlock(c);
}

/* Frame f (aligned, in usable memory) goes on cache c (locked by the
 * caller, this CPU's) when a caller held it; else a double free panics
 * (caller: frame_free's). Releases the lock. */
static inline void cache_push(struct frame_cache *c, paddr_t f, void *caller)
{
    if (unlikely(!held_test_clear(f >> PAGE_SHIFT)))
        double_free(f, caller);
#ifdef MM_POISON
    memset(PHYS2VIRT(f), FRAME_POISON, PAGE_SIZE);
#endif
    uint32_t n = c->count;
    if (unlikely(n >= CACHE_LIMIT))
        return free_drain(c, f);
    c->frames[n] = f;
    cache_set_count(c, n + 1);
    cache_unlock(c);
}

/* frame_free found its cache locked: wait (out of line, as alloc_wait). */
static void __attribute__((noinline)) free_wait(struct frame_cache *c, paddr_t f, void *caller)
{
    cache_lock_wait(c);
    cache_push(c, f, caller);
}

/* Frame f (aligned, in usable memory) goes on this CPU's cache. */
static inline void cache_put(paddr_t f, void *caller)
{
    struct frame_cache *c = my_cache();
    if (unlikely(!cache_trylock(c)))
        return free_wait(c, f, caller);
    cache_push(c, f, caller);
}

/* The whole of frame_free with every check and message; the fast path in
 * frame_free defers here for anything outside the largest usable region. */
static void __attribute__((noinline)) free_one(paddr_t f, void *caller)
{
    if (f & (PAGE_SIZE - 1))
        panic("frame_free(0x%llx): unaligned address; caller %p", (unsigned long long)f, caller);
    if ((f - fa.fast_base) >> PAGE_SHIFT >= fa.fast_frames)
        check_managed(f, caller);
    cache_put(f, caller);
}

void frame_free(paddr_t frame)
{
    /* Fast path: a frame of the largest usable region. Rotating the offset
     * right by 12 moves any unaligned low bits to the top, so one compare
     * checks both alignment and range. */
    uint64_t off = frame - fa.fast_base;
    if (unlikely(((off >> PAGE_SHIFT) | (off << (64 - PAGE_SHIFT))) >= fa.fast_frames))
        return free_one(frame, __builtin_return_address(0));
    cache_put(frame, __builtin_return_address(0));
}

/* First free frame at or after f (fa.total_frames when none); skips full
 * stretches 4096 frames at a time through sum1 (and the full words behind
 * stale sum1 bits one at a time). */
static uint64_t next_free(uint64_t f)
{
    if (f >= fa.total_frames)
        return fa.total_frames;
    uint64_t w = f / 64, v = ~fa.bitmap[w] & (FULL << (f % 64));
    if (v)
        return w * 64 + CTZ(v);
    for (w++;; w++) {
        uint64_t i1 = w / 64;
        if (i1 >= fa.n1)
            return fa.total_frames;
        uint64_t s = fa.sum1[i1] & (FULL << (w % 64));
        while (!s) {
            if (++i1 >= fa.n1)
                return fa.total_frames;
            s = fa.sum1[i1];
        }
        w = i1 * 64 + CTZ(s);
        if (fa.bitmap[w] != FULL) /* else a stale sum1 bit: go on after it */
            return w * 64 + CTZ(~fa.bitmap[w]);
    }
}

/* First used frame in [f, end) (end when all are free). */
static uint64_t next_used(uint64_t f, uint64_t end)
{
    while (f < end) {
        uint64_t v = fa.bitmap[f / 64] & (FULL << (f % 64));
        if (v)
            return MIN(f / 64 * 64 + CTZ(v), end);
        f = (f / 64 + 1) * 64;
    }
    return end;
}

/* frame_alloc_below's search (caller holds frame_lock). */
static paddr_t below_locked(paddr_t limit)
{
    uint64_t f = next_free(0); /* frame 0 is never free */
    if (f >= fa.total_frames || f >= limit >> PAGE_SHIFT)
        return 0;
    set_range(f, f + 1, true);
    fa.free_frames--;
    held_set(f);
    return f << PAGE_SHIFT;
}

paddr_t frame_alloc_below(paddr_t limit)
{
    /* Cached frames are used in the bitmap: when none is free below the
     * limit there, drain the caches and look once more. */
    spin_lock(&frame_lock);
    paddr_t f = below_locked(limit);
    spin_unlock(&frame_lock);
    if (!f && drain_all()) {
        spin_lock(&frame_lock);
        f = below_locked(limit);
        spin_unlock(&frame_lock);
    }
    return f;
}

#ifdef SLAYER_HOST
__thread uint64_t frame_contig_probes; /* per thread: the host tests' CPUs */
#define PROBE() (frame_contig_probes++)
#else
#define PROBE() ((void)0)
#endif

/* Sets *w to the lowest wholly free bitmap word; false when there is none.
 * Clears the stale empty1 bits it lands on (each one once: frame_alloc left
 * them when it took a frame from a wholly free word). */
static bool empty_word(uint64_t *w)
{
    for (;;) {
        if (!descend_in(fa.empty3, fa.empty2, fa.empty1, w))
            return false;
        PROBE();
        if (fa.bitmap[*w] == 0)
            return true;
        mark_not_empty(*w);
    }
}

/* Sets *w to the lowest bitmap word holding a free group; false when there
 * is none. Clears the stale group1 bits it lands on (each one once). */
static bool group_word(uint64_t *w)
{
    for (;;) {
        if (!descend_in(fa.group3, fa.group2, fa.group1, w))
            return false;
        PROBE();
        if (free_groups(fa.bitmap[*w]))
            return true;
        mark_not_group(*w);
    }
}

/* Bits p of `free` such that bits [p, p + count) are all set (1 <= count <=
 * 64): the run doubles in length per step, at most six steps. Zeroes shift in
 * at the top, so no run reaches past bit 63. */
static inline uint64_t run_starts(uint64_t free, uint64_t count)
{
    for (uint64_t len = 1; len < count;) {
        uint64_t s = MIN(len, count - len);
        free &= free >> s;
        len += s;
    }
    return free;
}

/* The bit positions of a word that are multiples of 2^k frames, k = 0..6. */
static const uint64_t slot_masks[7] = {
    FULL, 0x5555555555555555ULL, 0x1111111111111111ULL, 0x0101010101010101ULL,
    0x0001000100010001ULL, 0x0000000100000001ULL, 1,
};

/* A run of count <= 64 frames aligned to step <= 64 frames inside one bitmap
 * word: the cursor word's free slots (one mask test), else the lowest fitting
 * slot of the lowest word holding a free group (count <= 16, step <= 16: the
 * group fits), else the lowest wholly free word. 0 when the index it needs is
 * empty (the caller then refuses or scans). */
static paddr_t contig_small(uint64_t count, uint64_t step)
{
    uint64_t w = fa.cursor, old = fa.bitmap[w], slots = slot_masks[CTZ(step)];
    uint64_t r = run_starts(~old, count) & slots;
    PROBE();
    if (!r) {
        if (count <= 16 && step <= 16) {
            if (!group_word(&w))
                return 0;
            old = fa.bitmap[w];
            r = run_starts(~old, count) & slots; /* not 0: a free group fits */
        } else {
            if (!empty_word(&w))
                return 0;
            old = 0;
            r = 1;
        }
    }
    uint64_t p = CTZ(r), word = old | (FULL >> (64 - count) << p);
    fa.bitmap[w] = word;
    fa.free_frames -= count;
    fa.cursor = w;
    note_taken(w, old, word);
    return (w * 64 + p) << PAGE_SHIFT;
}

/* frame_alloc_contig's search in the bitmap (caller holds frame_lock). The
 * run is marked used; its held bits are the caller's business. */
static paddr_t contig_locked(size_t count, uint64_t step)
{
    uint64_t w;
    if (count > fa.free_frames)
        return 0;
    uint64_t s = 1; /* where the first-fit scan starts */
    if (count <= 64 && step <= 64) {
        paddr_t p = contig_small(count, step);
        if (p)
            return p;
        /* the index it asked is empty: the run, if any, lies elsewhere */
    }
    if (count >= 128 || (count >= 64 && step >= 64)) {
        /* Every such run holds a wholly free word (with step >= 64 it starts
         * at one), and at most 63 of its frames lie below the lowest one it
         * holds: start there, or fail without a scan. */
        if (!empty_word(&w))
            return 0;
        s = w * 64;
        if (step < 64)
            s -= MIN(s, 63);
    } else if (count >= 31 || (count >= 16 && step >= 16)) {
        /* Every such run holds a free group (with step >= 16 it starts at
         * one), at most 15 of its frames below the lowest one it holds. */
        if (!group_word(&w))
            return 0;
        s = w * 64;
        if (step < 16)
            s -= MIN(s, 15);
    }
    s = ALIGN_UP(next_free(MAX(s, 1)), step);
    while (s < fa.total_frames && count <= fa.total_frames - s) {
        PROBE();
        uint64_t u = next_used(s, s + count);
        if (u == s + count) {
            set_range(s, s + count, true);
            fa.free_frames -= count;
            return s << PAGE_SHIFT;
        }
        s = ALIGN_UP(next_free(u + 1), step);
    }
    return 0;
}

/* One attempt under frame_lock; the run found is held by the caller. */
static paddr_t contig_try(size_t count, uint64_t step)
{
    spin_lock(&frame_lock);
    paddr_t p = contig_locked(count, step);
    if (p)
        held_assign(p >> PAGE_SHIFT, (p >> PAGE_SHIFT) + count, true);
    spin_unlock(&frame_lock);
    return p;
}

paddr_t frame_alloc_contig(size_t count, uint64_t align)
{
    if (align < PAGE_SIZE)
        align = PAGE_SIZE;
    kassert((align & (align - 1)) == 0, "frame_alloc_contig: align %#llx is not a power of two",
            (unsigned long long)align);
#ifdef SLAYER_HOST
    frame_contig_probes = 0;
#endif
    if (count == 0)
        return 0;
    uint64_t step = align >> PAGE_SHIFT;
    paddr_t p = contig_try(count, step);
    /* Cached frames are used in the bitmap: before refusing, give every
     * cache back and search once more (nothing to retry when all are empty). */
    if (!p && drain_all())
        p = contig_try(count, step);
    return p;
}

/* frame_free_contig's checks of the run's shape and place, for anything but
 * a page-aligned run inside the largest usable region: panics naming the
 * first bad address unless the run is page-aligned, not empty, does not wrap
 * and lies in usable memory (one region or several adjacent ones: reclaimed
 * bootloader memory may border a usable region). */
static void __attribute__((noinline)) check_run(paddr_t base, size_t count, void *caller)
{
    unsigned long long b = base, n = count;
    if (base & (PAGE_SIZE - 1))
        panic("frame_free_contig(0x%llx, %llu): unaligned address; nothing freed; caller %p", b, n,
              caller);
    if (count == 0)
        panic("frame_free_contig(0x%llx, 0): an empty run; nothing freed; caller %p", b, caller);
    if (count > (UINT64_MAX - base) >> PAGE_SHIFT)
        panic("frame_free_contig(0x%llx, %llu): the run wraps past the top of the address space; "
              "nothing freed; caller %p", b, n, caller);
    paddr_t a = base, end = base + count * PAGE_SIZE;
    const struct region *r = region_find(a);
    for (;;) {
        unsigned long long x = a;
        if (a >> PAGE_SHIFT >= fa.total_frames)
            panic("frame_free_contig(0x%llx, %llu): 0x%llx: beyond managed memory (which ends at "
                  "%#llx); nothing freed; caller %p", b, n, x,
                  (unsigned long long)(fa.total_frames << PAGE_SHIFT), caller);
        if (!r)
            panic("frame_free_contig(0x%llx, %llu): 0x%llx: not in the memory map; nothing freed; "
                  "caller %p", b, n, x, caller);
        if (r->type != MEM_USABLE)
            panic("frame_free_contig(0x%llx, %llu): 0x%llx: not usable memory (%s [%#llx-%#llx)); "
                  "nothing freed; caller %p", b, n, x, region_type_name(r->type),
                  (unsigned long long)r->base, (unsigned long long)r->end, caller);
        if (end <= r->end)
            return;
        a = r->end;
        r = (r + 1 < regions + nregions && r[1].base == a) ? r + 1 : NULL;
    }
}

void frame_free_contig(paddr_t base, size_t count)
{
    /* The whole run is checked before anything changes: its shape and place
     * (the largest usable region without a search), then that a caller holds
     * every frame (a frame free in the bitmap or in any CPU's cache is not
     * held). A bad call panics naming the first bad address and leaves the
     * bitmap, the summaries, the held bits, the caches, the free count and
     * the cursor as they were. Then a word at a time (the whole words of a
     * long run in bulk); a small run's word becomes the contig cursor. */
    uint64_t off = base - fa.fast_base, f0 = base >> PAGE_SHIFT;
    if (unlikely((base & (PAGE_SIZE - 1)) || count == 0 ||
                 (off >> PAGE_SHIFT) >= fa.fast_frames ||
                 count > fa.fast_frames - (off >> PAGE_SHIFT)))
        check_run(base, count, __builtin_return_address(0));
    spin_lock(&frame_lock);
    uint64_t u = first_not_held(f0, f0 + count);
    if (unlikely(u != f0 + count)) {
        spin_unlock(&frame_lock);
        panic("frame_free_contig(0x%llx, %llu): 0x%llx: double free (frame is already free); "
              "nothing freed; caller %p", (unsigned long long)base, (unsigned long long)count,
              (unsigned long long)u << PAGE_SHIFT, __builtin_return_address(0));
    }
#ifdef MM_POISON
    memset(PHYS2VIRT(base), FRAME_POISON, count * PAGE_SIZE);
#endif
    held_assign(f0, f0 + count, false);
    if (count > 64)
        set_free_bulk(f0, f0 + count); /* memset speed for the whole words */
    else
        set_range(f0, f0 + count, false);
    fa.free_frames += count;
    if (count <= 64 && f0 / 64 == (f0 + count - 1) / 64)
        fa.cursor = f0 / 64; /* the next small run takes the slot again */
    spin_unlock(&frame_lock);
}

/* True when frame i lies in a usable region (reclaimed bootloader memory
 * included) of the private map. */
static bool frame_in_usable(uint64_t i)
{
    const struct region *r = region_find(i << PAGE_SHIFT);
    return r && r->type == MEM_USABLE;
}

bool frame_is_used(paddr_t frame)
{
    /* Used in the bitmap and not held: a cached frame (usable memory, free)
     * or one the allocator never manages (used). */
    uint64_t i = frame >> PAGE_SHIFT;
    if (i >= fa.total_frames)
        return true;
    spin_lock(&frame_lock);
    bool used = (fa.bitmap[i / 64] & BIT(i)) != 0;
    spin_unlock(&frame_lock);
    return used && (held_test(i) || !frame_in_usable(i));
}

/* Appends a region to the private map, merging nothing. */
static void region_add(paddr_t base, paddr_t end, uint32_t type)
{
    if (end > base)
        regions[nregions++] = (struct region){base, end, type};
}

void frame_init(const struct mem_region *map, size_t count)
{
    kassert(count <= MEMMAP_MAX, "frame_init: %zu map entries", count);
    uint64_t top = 0;
    for (size_t k = 0; k < count; k++) {
        const struct mem_region *r = &map[k];
        bool managed = r->type == MEM_USABLE || r->type == MEM_BOOTLOADER_RECLAIMABLE;
        kassert(k == 0 || r->base >= map[k - 1].base + map[k - 1].length,
                "frame_init: map not sorted/disjoint at entry %zu", k);
        kassert(!managed || (IS_ALIGNED(r->base, PAGE_SIZE) && IS_ALIGNED(r->length, PAGE_SIZE)),
                "frame_init: unaligned usable entry %zu (sanitize the map first)", k);
        if (managed && r->length)
            top = MAX(top, r->base + r->length);
    }
    if (top == 0)
        panic("frame_init: no usable memory in the map");

    fa.total_frames = top >> PAGE_SHIFT;
    fa.nbm = div_up(fa.total_frames, 64);
    fa.n1 = div_up(fa.nbm, 64);
    fa.n2 = div_up(fa.n1, 64);
    fa.n3 = div_up(fa.n2, 64);
    fa.meta_bytes = ALIGN_UP((2 * fa.nbm + 3 * (fa.n1 + fa.n2 + fa.n3 + 1)) * 8, PAGE_SIZE);

    /* Bump-allocate the metadata: top of the largest usable region, within
     * the HHDM (hhdm_size 0 = not known, no limit), never frame 0. */
    uint64_t reach = hhdm_size ? hhdm_size : UINT64_MAX, best_len = 0;
    fa.meta_base = 0;
    for (size_t k = 0; k < count; k++) {
        if (map[k].type != MEM_USABLE)
            continue;
        uint64_t b = MAX(map[k].base, PAGE_SIZE), e = MIN(map[k].base + map[k].length, reach);
        if (e > b && e - b >= fa.meta_bytes && e - b > best_len) {
            best_len = e - b;
            fa.meta_base = e - fa.meta_bytes;
        }
    }
    if (!fa.meta_base)
        panic("frame_init: no usable region can hold %llu KiB of frame metadata",
              (unsigned long long)(fa.meta_bytes >> 10));

    /* The private map: frame 0 and the metadata become regions of their own. */
    nregions = 0;
    paddr_t mb = fa.meta_base, me = mb + fa.meta_bytes;
    for (size_t k = 0; k < count; k++) {
        paddr_t b = map[k].base, e = b + map[k].length;
        uint32_t t = map[k].type;
        if (b == 0 && e > 0 && (t == MEM_USABLE || t == MEM_BOOTLOADER_RECLAIMABLE)) {
            region_add(0, PAGE_SIZE, REGION_FRAME0);
            b = PAGE_SIZE;
        }
        if (t == MEM_USABLE && b <= mb && me <= e) {
            region_add(b, mb, t);
            region_add(mb, me, REGION_METADATA);
            b = me;
        }
        region_add(b, e, t);
    }

    uint64_t *meta = PHYS2VIRT(fa.meta_base);
    fa.bitmap = meta;
    fa.sum1 = fa.bitmap + fa.nbm;
    fa.sum2 = fa.sum1 + fa.n1;
    fa.sum3 = fa.sum2 + fa.n2;
    fa.empty1 = fa.sum3 + fa.n3 + 1;
    fa.empty2 = fa.empty1 + fa.n1;
    fa.empty3 = fa.empty2 + fa.n2;
    fa.group1 = fa.empty3 + fa.n3 + 1;
    fa.group2 = fa.group1 + fa.n1;
    fa.group3 = fa.group2 + fa.n2;
    fa.held = fa.group3 + fa.n3 + 1;
    fa.cursor = 0;
    memset(fa.held, 0, fa.nbm * 8);
    memset(caches, 0, sizeof(caches));
    spin_init(&frame_lock, "frame", LOCK_RANK_FRAME);
    /* Summaries start empty; the bitmap is written once, in frame order:
     * used bits for every gap between usable regions, free ones for the
     * regions (no 0xff fill of the whole bitmap first). */
    memset(fa.sum1, 0, 3 * (fa.n1 + fa.n2 + fa.n3 + 1) * 8);
    fa.sum3[fa.n3] = 1;   /* sentinels: the descents' scans stop here */
    fa.empty3[fa.n3] = 1;
    fa.group3[fa.n3] = 1;

    fa.usable_frames = fa.reserved_frames = fa.reclaimable_frames = fa.reclaimed_frames = 0;
    fa.fast_base = fa.fast_frames = 0;
    uint64_t filled = 0; /* bitmap bits below this are written */
    for (size_t k = 0; k < nregions; k++) {
        const struct region *r = &regions[k];
        uint64_t frames = (r->end - r->base) >> PAGE_SHIFT;
        if (r->type == MEM_USABLE) {
            bits_assign(fa.bitmap, filled, r->base >> PAGE_SHIFT, true);
            set_free_bulk(r->base >> PAGE_SHIFT, r->end >> PAGE_SHIFT);
            filled = r->end >> PAGE_SHIFT;
            fa.usable_frames += frames;
            if (frames > fa.fast_frames) {
                fa.fast_base = r->base;
                fa.fast_frames = frames;
            }
        } else if (r->type == MEM_BOOTLOADER_RECLAIMABLE) {
            fa.reclaimable_frames += frames;
        } else if (r->type != REGION_METADATA && r->base < fa.total_frames << PAGE_SHIFT) {
            /* only what lies among the managed frames: a reserved window far
             * above RAM (q35 reports 12 GiB at 0xfd00000000) is not memory */
            uint64_t end = MIN(r->end, fa.total_frames << PAGE_SHIFT);
            fa.reserved_frames += div_up(end - r->base, PAGE_SIZE);
        }
    }
    bits_assign(fa.bitmap, filled, fa.nbm * 64, true);
    fa.free_frames = fa.usable_frames;

    klog("mm", "frames: usable=%lluKiB free=%lluKiB metadata=%lluKiB reserved=%lluKiB "
         "reclaimable=%lluKiB",
         (unsigned long long)fa.usable_frames * 4, (unsigned long long)fa.free_frames * 4,
         (unsigned long long)fa.meta_bytes >> 10, (unsigned long long)fa.reserved_frames * 4,
         (unsigned long long)fa.reclaimable_frames * 4);
    klog("mm", "frames: %llu frames (to %#llx), bitmap+summaries at %#llx",
         (unsigned long long)fa.total_frames, (unsigned long long)top,
         (unsigned long long)fa.meta_base);
}

uint64_t frame_reclaim_bootloader(void)
{
    uint64_t frames = 0;
    spin_lock(&frame_lock);
    for (size_t k = 0; k < nregions; k++) {
        struct region *r = &regions[k];
        if (r->type != MEM_BOOTLOADER_RECLAIMABLE)
            continue;
        r->type = MEM_USABLE;
        set_free_bulk(r->base >> PAGE_SHIFT, r->end >> PAGE_SHIFT);
        uint64_t n = (r->end - r->base) >> PAGE_SHIFT;
        frames += n;
        if (n > fa.fast_frames) {
            fa.fast_base = r->base;
            fa.fast_frames = n;
        }
    }
    fa.usable_frames += frames;
    fa.free_frames += frames;
    fa.reclaimable_frames -= frames;
    fa.reclaimed_frames += frames;
    uint64_t free_now = fa.free_frames;
    spin_unlock(&frame_lock);
    if (frames)
        klog("mm", "frames: reclaimed %lluKiB of bootloader memory, free=%lluKiB",
             (unsigned long long)frames * 4, (unsigned long long)free_now * 4);
    return frames << PAGE_SHIFT;
}

/* Frames in every CPU's cache (a snapshot without their locks). */
static uint64_t cached_frames(void)
{
    uint64_t n = 0;
    for (unsigned k = 0; k < CPU_MAX; k++)
        n += __atomic_load_n(&caches[k].count, __ATOMIC_RELAXED);
    return n;
}

void frame_get_stats(struct frame_stats *out)
{
    spin_lock(&frame_lock);
    *out = (struct frame_stats){
        .total_frames = fa.total_frames,
        .usable_frames = fa.usable_frames,
        .free_frames = fa.free_frames,
        .reserved_frames = fa.reserved_frames,
        .reclaimable_frames = fa.reclaimable_frames,
        .reclaimed_frames = fa.reclaimed_frames,
        .metadata_bytes = fa.meta_bytes,
    };
    spin_unlock(&frame_lock);
    out->free_frames += cached_frames();
}

/* Bits set in x (by hand: without POPCNT the builtin would call libgcc). */
static unsigned popcount64(uint64_t x)
{
    x = x - ((x >> 1) & 0x5555555555555555ULL);
    x = (x & 0x3333333333333333ULL) + ((x >> 2) & 0x3333333333333333ULL);
    x = (x + (x >> 4)) & 0x0f0f0f0f0f0f0f0fULL;
    return (unsigned)((x * 0x0101010101010101ULL) >> 56);
}

/* True when a tree's upper levels are exact (a t2/t3 bit is 1 exactly when the
 * word below is non-zero), its bits past the end are 0 and its t3 sentinel
 * is in place. (t1 against the bitmap is frame_check's own loop.) */
static bool tree_check(const uint64_t *t1, const uint64_t *t2, const uint64_t *t3)
{
    for (uint64_t i = 0; i < fa.n1; i++)
        if (((t2[i / 64] & BIT(i)) != 0) != (t1[i] != 0))
            return false;
    for (uint64_t i = 0; i < fa.n2; i++)
        if (((t3[i / 64] & BIT(i)) != 0) != (t2[i] != 0))
            return false;
    return !(fa.nbm % 64 && t1[fa.n1 - 1] >> (fa.nbm % 64)) &&
           !(fa.n1 % 64 && t2[fa.n2 - 1] >> (fa.n1 % 64)) &&
           !(fa.n2 % 64 && t3[fa.n3 - 1] >> (fa.n2 % 64)) && t3[fa.n3] == 1;
}

/* Takes every cache lock in index order, then frame_lock: the whole state
 * holds still (frame_check, frame_state_digest). */
static void lock_everything(void)
{
    for (unsigned k = 0; k < CPU_MAX; k++)
        cache_lock(&caches[k]);
    spin_lock(&frame_lock);
}

/* Releases what lock_everything took. */
static void unlock_everything(void)
{
    spin_unlock(&frame_lock);
    for (unsigned k = CPU_MAX; k-- > 0;)
        cache_unlock(&caches[k]);
}

/* The bitmap and summaries' invariants and the free count (under
 * lock_everything). */
static bool bitmap_check(void)
{
    uint64_t free = 0;
    for (uint64_t w = 0; w < fa.nbm; w++) {
        free += popcount64(~fa.bitmap[w]);
        if (!(fa.sum1[w / 64] & BIT(w)) && fa.bitmap[w] != FULL)
            return false; /* sum1 0 must mean full; 1 may be stale */
        if (!(fa.empty1[w / 64] & BIT(w)) && fa.bitmap[w] == 0)
            return false; /* empty1 0 must mean not wholly free; 1 may be stale */
        if (!(fa.group1[w / 64] & BIT(w)) && free_groups(fa.bitmap[w]))
            return false; /* group1 0 must mean no free group; 1 may be stale */
        if (fa.held[w] & ~fa.bitmap[w])
            return false; /* a held frame is used in the bitmap */
    }
    if (!tree_check(fa.sum1, fa.sum2, fa.sum3) || !tree_check(fa.empty1, fa.empty2, fa.empty3) ||
        !tree_check(fa.group1, fa.group2, fa.group3))
        return false;
    if (fa.cursor >= fa.nbm)
        return false;
    /* Padding bits past the last frame stay used. */
    if (fa.total_frames % 64 && (fa.bitmap[fa.nbm - 1] >> (fa.total_frames % 64)) !=
                                    (FULL >> (fa.total_frames % 64)))
        return false;
    return free == fa.free_frames;
}

/* Frames of usable memory that are used in the bitmap and not held: the
 * frames that must be in some cache (under lock_everything). */
static uint64_t count_unheld_used(void)
{
    uint64_t n = 0;
    for (size_t k = 0; k < nregions; k++) {
        if (regions[k].type != MEM_USABLE)
            continue;
        uint64_t f0 = regions[k].base >> PAGE_SHIFT, f1 = regions[k].end >> PAGE_SHIFT;
        while (f0 < f1) {
            uint64_t w = f0 / 64, m = MIN(f1 - f0, 64 - f0 % 64);
            uint64_t mask = (m == 64 ? FULL : (BIT(m) - 1)) << (f0 % 64);
            n += popcount64(fa.bitmap[w] & ~fa.held[w] & mask);
            f0 += m;
        }
    }
    return n;
}

/* Every cached frame is aligned, in usable memory, used in the bitmap, not
 * held and in one cache only, and the caches hold every frame in that state
 * (under lock_everything). Duplicates are found by setting the held bit of
 * each frame seen (a second sighting finds it set), undone afterwards. */
static bool caches_check(void)
{
    bool ok = true;
    uint64_t total = 0;
    unsigned k, j = 0;
    for (k = 0; k < CPU_MAX && ok; k++) {
        const struct frame_cache *c = &caches[k];
        if (c->count > CACHE_MAX) {
            ok = false;
            j = 0;
            continue; /* nothing of this cache marked */
        }
        for (j = 0; j < c->count; j++) {
            paddr_t f = c->frames[j];
            uint64_t i = f >> PAGE_SHIFT;
            if ((f & (PAGE_SIZE - 1)) || i >= fa.total_frames || !frame_in_usable(i) ||
                !(fa.bitmap[i / 64] & BIT(i)) || held_test(i)) {
                ok = false;
                break;
            }
            held_set(i); /* seen */
        }
        total += c->count;
    }
    /* undo the marks: caches 0 .. k-1 whole, then cache k-1 up to j when it stopped early */
    for (unsigned a = 0; a < k; a++) {
        const struct frame_cache *c = &caches[a];
        uint32_t upto = (!ok && a == k - 1) ? j : c->count;
        for (uint32_t b = 0; b < upto; b++)
            held_test_clear(c->frames[b] >> PAGE_SHIFT);
    }
    return ok && count_unheld_used() == total;
}

bool frame_check(void)
{
    lock_everything();
    bool ok = bitmap_check() && caches_check();
    unlock_everything();
    return ok;
}

uint64_t frame_state_digest(void)
{
    /* A multiply-xorshift mix of every metadata word, in order, then the
     * counters and the cursor: any changed bit changes the result (but for
     * a collision, about 2^-64). The metadata goes through four chains, word
     * k into chain k % 4, so that four multiplies are in flight at once (the
     * chain is latency-bound); the chains are then mixed in order. The
     * metadata is whole pages, so whole groups of four words. */
    lock_everything();
    const uint64_t *m = PHYS2VIRT(fa.meta_base);
    uint64_t lane[4] = {0x9e3779b97f4a7c15ULL, 1, 2, 3}, words = fa.meta_bytes / 8;
    kassert((words & 3) == 0, "frame metadata of %llu bytes", (unsigned long long)fa.meta_bytes);
    for (uint64_t k = 0; k < words; k += 4)
        for (unsigned j = 0; j < 4; j++) {
            lane[j] = (lane[j] ^ m[k + j]) * 0xff51afd7ed558ccdULL;
            lane[j] ^= lane[j] >> 32;
        }
    uint64_t h = lane[0];
    for (unsigned j = 1; j < 4; j++) {
        h = (h ^ lane[j]) * 0xff51afd7ed558ccdULL;
        h ^= h >> 32;
    }
    const uint64_t tail[] = {fa.free_frames, fa.cursor, fa.usable_frames, fa.reclaimed_frames};
    for (size_t k = 0; k < ARRAY_SIZE(tail); k++) {
        h = (h ^ tail[k]) * 0xff51afd7ed558ccdULL;
        h ^= h >> 32;
    }
    for (unsigned k = 0; k < CPU_MAX; k++) { /* each cache: its count, then its frames */
        const struct frame_cache *c = &caches[k];
        h = (h ^ c->count) * 0xff51afd7ed558ccdULL;
        h ^= h >> 32;
        for (uint32_t j = 0; j < c->count && j < CACHE_MAX; j++) {
            h = (h ^ c->frames[j]) * 0xff51afd7ed558ccdULL;
            h ^= h >> 32;
        }
    }
    unlock_everything();
    return h;
}
