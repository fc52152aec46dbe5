/* Fuzz target: the kernel heap (kernel/mm/heap.c) with random kmalloc /
 * kcalloc / krealloc / kmalloc_aligned / kfree sequences across every tier.
 *
 * Input: u8 memory (physical memory of 4, 8, 16 or 48 MiB, the first MiB
 * reserved), then operations: u8 opcode, u8 slot, u32 size, u8 extra (see
 * run_op). Sizes: opcode bits 5-6 pick the tier (small <= 4 KiB, medium <=
 * 64 KiB, large <= 4 MiB with a span picked by the size's top bits, or edge
 * values: 0, class edges, HEAP_MAX_ALLOC + 1, SIZE_MAX).
 *
 * Checked: NULL exactly for what heap.h refuses (size 0, too large, bad
 * alignment) or when memory is short; pointers 16-byte aligned (aligned
 * requests: the physical address), inside the direct map, not overlapping
 * any live block, with usable size >= the request; kcalloc zeroes; contents
 * (a pattern per block) intact until freed and across krealloc (the common
 * prefix; the old block intact when krealloc fails); heap_validate_ptr NULL
 * exactly for live block starts, and kfree of any other address (freed,
 * interior, foreign) panics and leaves the statistics as they were;
 * statistics count the live blocks (at
 * every check operation); at the end heap_check passes on the final state,
 * every block is freed, heap_trim gives everything back, heap_check passes
 * again and the frame allocator is back to its count before heap_init.
 *
 * Several CPUs: each operation runs as CPU 0, 1, 2 or CPU_MAX - 1 (opcode
 * bits 3-4; cpu_index() is the host's host_cpu_index), so blocks are freed
 * on other CPUs than the ones that allocated them (into the freeing CPU's
 * magazines), a CPU's magazine set is made on its first use, and a burst
 * (check opcode, extra bits 1-2 = 2) allocates up to 512 objects of one size
 * on one CPU and frees them on another (or on all four in turn), so
 * magazines overflow into the depot and the slabs while other CPUs hold
 * objects of the same slabs. Checked besides: a power of two up to 4 KiB
 * from kmalloc is aligned to itself; at every check operation each CPU's
 * heap_cpu_cached is 0 for a CPU that never ran an operation, the cached
 * bytes of all CPUs are free bytes, only CPUs that ran have a magazine set
 * (each its own, all of one size), and the frames the frame allocator lacks
 * since heap_init are exactly the heap's pages_held plus the sets made
 * since; heap_drain_cpu_caches (extra bits 1-2 = 1) leaves every CPU's
 * magazines empty and changes no statistic (no frame released); at the end,
 * blocks are freed across the CPUs and after heap_trim every CPU's
 * magazines are empty and the frames are back but for the sets.
 *
 * Speed (issue 17; docs/testing.md has the numbers): heap_check only at the
 * end, block contents by memcpy/memcmp from a pattern table, live blocks
 * kept sorted by address (an overlap is looked for beside the new block),
 * the harness's own loops without coverage hooks (FUZZ_NOCOV), and the
 * heap's sources and this file without comparison hooks (mk/fuzz.mk,
 * FUZZ_NO_CMP_SRC). */
#include "fuzz.h"

#include "mm/frame.h"
#include "mm/heap.h"
#include "mm/heap_internal.h" /* cache_of: which CPUs have a magazine set, its frames */
#include "mm/mm.h"

#define SLOTS 256
/* Bytes of an input read, so at most about 290 operations (run.sh passes it
 * to libFuzzer as -max_len, so no mutation lands past it). The longest kept
 * input is 163 operations; without a bound inputs grew to several KiB in
 * 30-minute runs, and the executions a second fell as they grew. */
#define FUZZ_MAX_LEN 2048
#define ARENA MiB(48)

struct block {
    unsigned char *p;
    size_t size;
    uint64_t id;
};

static struct block slots[SLOTS];
static uint64_t next_id;
static bool arena_ready;

/* The CPUs operations run as: three low indices and the last one (the end
 * of the heap's per-CPU arrays). */
#define NCPU 4
static const unsigned cpu_ids[NCPU] = {0, 1, 2, CPU_MAX - 1};
static unsigned cur;      /* index into cpu_ids: the running CPU */
static uint32_t cpus_ran; /* bit k: CPU k ran an operation in this input */
static uint64_t frames0;  /* free frames right after heap_init (CPU 0's set made) */
static uint32_t set_frames; /* frames of CPU 0's magazine set (every set is alike) */

/* Runs what follows as CPU cpu_ids[i]. */
static void run_as(unsigned i)
{
    cur = i;
    host_cpu_index = cpu_ids[i];
    cpus_ran |= 1u << cpu_ids[i];
}

/* Block contents: block id's byte i is pat[id % PAT_SHIFTS + i % PAT_PERIOD],
 * a fixed pseudo-random table, so filling and checking are memcpy and memcmp
 * (ASan checks those per range, not per byte) and neighbouring blocks differ. */
#define PAT_PERIOD 8192
#define PAT_SHIFTS 251
static unsigned char pat[PAT_PERIOD + PAT_SHIFTS];

static void pat_init(void)
{
    uint64_t x = 0x9e3779b97f4a7c15ULL;
    for (size_t i = 0; i < sizeof(pat); i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        pat[i] = (unsigned char)(x >> 32);
    }
    /* One block in 16 (id % PAT_SHIFTS a multiple of 16) holds the slab
     * free tag in its word 1, as any data may: kfree's slow path must see
     * that such an object is not free and free it all the same
     * (heap_internal.h). */
    const uint64_t tag = FREE_TAG;
    for (size_t s = 0; s < PAT_SHIFTS; s += 16)
        memcpy(&pat[s + 8], &tag, 8);
}

/* Where a block's pattern byte i is; the following bytes up to the next
 * multiple of PAT_PERIOD in i follow it in the table (callers split there). */
static const unsigned char *pat_at(uint64_t id, size_t i)
{
    return &pat[id % PAT_SHIFTS + i % PAT_PERIOD];
}

/* The parts of a block of `size` bytes that carry the pattern: all of it up
 * to 8 KiB, else the first and the last 4 KiB (the cost stays bounded). */
static size_t pat_parts(size_t size, size_t part[2][2])
{
    if (size <= 8192) {
        part[0][0] = 0, part[0][1] = size;
        return 1;
    }
    part[0][0] = 0, part[0][1] = 4096;
    part[1][0] = size - 4096, part[1][1] = size;
    return 2;
}

/* Writes the pattern over the block's parts. */
static void fill(struct block *b)
{
    size_t part[2][2], np = pat_parts(b->size, part);
    for (size_t k = 0; k < np; k++)
        for (size_t i = part[k][0]; i < part[k][1];) {
            size_t n = MIN(part[k][1] - i, PAT_PERIOD - i % PAT_PERIOD);
            memcpy(b->p + i, pat_at(b->id, i), n);
            i += n;
        }
}

/* Checks the pattern over [0, n) as fill wrote it for a block of b->size. */
static void verify(const struct block *b, size_t n, const char *when)
{
    size_t part[2][2], np = pat_parts(b->size, part);
    for (size_t k = 0; k < np; k++)
        for (size_t i = part[k][0]; i < MIN(part[k][1], n);) {
            size_t m = MIN(MIN(part[k][1], n) - i, PAT_PERIOD - i % PAT_PERIOD);
            if (memcmp(b->p + i, pat_at(b->id, i), m) != 0) {
                size_t j = 0;
                while (b->p[i + j] == pat_at(b->id, i)[j])
                    j++;
                FUZZ_CHECK(false, "%s: block %p (size %zu) byte %zu overwritten", when,
                           (void *)b->p, b->size, i + j);
            }
            i += m;
        }
}

static size_t pick_size(uint8_t op, uint32_t raw)
{
    switch ((op >> 5) & 3) {
    case 0: return 1 + raw % HEAP_SMALL_MAX;
    case 1: return HEAP_SMALL_MAX + 1 + raw % (HEAP_MEDIUM_MAX - HEAP_SMALL_MAX);
    case 2: /* up to 4 MiB, the span halved by each of raw's top three bits'
             * worth (4 MiB .. 32 KiB): the heap fills (and kcalloc zeroes)
             * every byte, so uniform sizes made large blocks most of the
             * input's time; small large blocks are as interesting */
        return HEAP_MEDIUM_MAX + 1 + (raw & 0x1fffffffu) % (MiB(4) >> (raw >> 29));
    default: {
        static const size_t edges[] = {0, 1, 16, 17, 1024, 1025, 4096, 65536, 65537,
                                       (size_t)HEAP_MAX_ALLOC + 1, SIZE_MAX, MiB(64)};
        return edges[raw % ARRAY_SIZE(edges)];
    }
    }
}

/* The live blocks by address (they never overlap: adopt checks), so that a
 * new block is compared with its two neighbours, not with every slot. */
static struct block *byaddr[SLOTS];
static size_t nlive;

/* The first index whose block starts at or after a. */
static FUZZ_NOCOV size_t first_at(uintptr_t a)
{
    size_t lo = 0, hi = nlive;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if ((uintptr_t)byaddr[mid]->p < a)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* Slot s's block (s->p set) is live from here. */
static void index_add(struct block *s)
{
    size_t k = first_at((uintptr_t)s->p);
    memmove(&byaddr[k + 1], &byaddr[k], (nlive - k) * sizeof(byaddr[0]));
    byaddr[k] = s;
    nlive++;
}

/* Slot s's block is gone (freed, or moved by krealloc): s->p is NULL after. */
static void forget(struct block *s)
{
    size_t k = first_at((uintptr_t)s->p);
    FUZZ_CHECK(k < nlive && byaddr[k] == s, "model: block %p not indexed", (void *)s->p);
    memmove(&byaddr[k], &byaddr[k + 1], (nlive - k - 1) * sizeof(byaddr[0]));
    nlive--;
    s->p = NULL;
}

/* The live block that [p, p+size) overlaps, or NULL: only the last one
 * starting below p and the first one starting at or after it can. */
static const struct block *overlapping(const unsigned char *p, size_t size)
{
    size_t k = first_at((uintptr_t)p);
    if (k < nlive && byaddr[k]->p < p + size)
        return byaddr[k];
    if (k > 0 && byaddr[k - 1]->p + byaddr[k - 1]->size > p)
        return byaddr[k - 1];
    return NULL;
}

/* True when a is the start of a live slot's block. */
static bool is_live_start(uintptr_t a)
{
    size_t k = first_at(a);
    return k < nlive && (uintptr_t)byaddr[k]->p == a;
}

/* The first byte of p[0, n) that is not zero (n when all are). */
static size_t first_nonzero(const unsigned char *p, size_t n)
{
    static const unsigned char zero[4096];
    size_t i = 0;
    while (i < n && memcmp(p + i, zero, MIN(n - i, sizeof(zero))) == 0)
        i += MIN(n - i, sizeof(zero));
    while (i < n && !p[i])
        i++;
    return i;
}

/* A fresh block in slot s: shape, overlap and poison-free contents. */
static void adopt(struct block *s, void *p, size_t size, size_t align, const char *how)
{
    FUZZ_CHECK((uintptr_t)p % 16 == 0, "%s(%zu) = %p: not 16-byte aligned", how, size, p);
    uintptr_t v = (uintptr_t)p;
    FUZZ_CHECK(v >= hhdm_offset && v + size <= hhdm_offset + hhdm_size && v + size >= v,
               "%s(%zu) = %p outside the direct map", how, size, p);
    if (align > 16)
        FUZZ_CHECK((v - hhdm_offset) % align == 0, "%s(%zu, align %zu) = %p misaligned", how,
                   size, align, p);
    FUZZ_CHECK(kmalloc_usable_size(p) >= size, "%s(%zu): usable size %zu", how, size,
               kmalloc_usable_size(p));
    const struct block *o = overlapping(p, size);
    FUZZ_CHECK(!o, "%s(%zu) = %p overlaps the live block %p (size %zu)", how, size, p,
               (void *)o->p, o->size);
    s->p = p;
    s->size = size;
    s->id = next_id++;
    index_add(s);
    fill(s);
}

/* Recently freed pointers (for double frees), newest at stale[nstale - 1 % STALE]. */
#define STALE 16
static uintptr_t stale[STALE];
static unsigned nstale;
static unsigned bad_frees_compared; /* refused kfrees whose statistics were compared */

static void release(struct block *s)
{
    verify(s, s->size, "kfree");
    kfree(s->p);
    stale[nstale++ % STALE] = (uintptr_t)s->p;
    forget(s);
}

/* kfree of an address that is no live block's start (a double free, an
 * interior or foreign pointer): it must panic and change nothing. */
static void bad_free(uintptr_t a, const char *why)
{
    /* heap_get_stats sums every CPU's counters (tens of thousands of
     * instructions): the first few refusals of an input compare all of
     * them; later ones rely on the end-of-input checks, which see any change
     * to the live blocks, and heap_check, which sees any inconsistency. */
    bool compare = bad_frees_compared < 4;
    struct heap_stats before, after;
    if (compare) {
        bad_frees_compared++;
        heap_get_stats(&before);
    }
    FUZZ_CHECK(HOST_EXPECT_PANIC(kfree((void *)a)), "kfree(%#lx) of a non-block (%s) did not panic",
               (unsigned long)a, why);
    if (!compare)
        return;
    heap_get_stats(&after);
    FUZZ_CHECK(after.alloc_count == before.alloc_count && after.free_count == before.free_count &&
                   after.bytes_in_use == before.bytes_in_use &&
                   after.bytes_free == before.bytes_free && after.pages_held == before.pages_held,
               "a refused kfree(%#lx) changed the heap: %s", (unsigned long)a, host_panic_msg);
}

/* The frames of the magazine sets made since heap_init (every CPU's but
 * CPU 0's), checking that only CPUs that ran have one, each its own, all of
 * CPU 0's size. */
static FUZZ_NOCOV uint64_t sets_made(void)
{
    uint64_t frames = 0;
    for (unsigned k = 0; k < CPU_MAX; k++) {
        const struct cpu_cache *pc = cache_of(k);
        if (!pc)
            continue;
        FUZZ_CHECK((cpus_ran >> k) & 1, "CPU %u has a magazine set but never ran", k);
        FUZZ_CHECK(pc->cpu == k && pc->frames == set_frames,
                   "CPU %u's magazine set: cpu %u, %u frames (CPU 0's: %u)", k, pc->cpu,
                   pc->frames, set_frames);
        if (k)
            frames += pc->frames;
    }
    return frames;
}

/* Every CPU's magazines against the statistics: empty for CPUs that never
 * ran (every one with `empty`), their bytes free bytes; the frames missing
 * from the frame allocator are the heap's runs and the sets made. */
static FUZZ_NOCOV void check_cpus(const struct heap_stats *st, bool empty, const char *when)
{
    uint64_t bytes = 0;
    for (unsigned k = 0; k < CPU_MAX; k++) {
        uint64_t b, n = heap_cpu_cached(k, &b);
        FUZZ_CHECK(n == 0 || (!empty && ((cpus_ran >> k) & 1)),
                   "%s: CPU %u's magazines hold %llu objects", when, k, (unsigned long long)n);
        FUZZ_CHECK(b >= n * 16 && b <= n * HEAP_SMALL_MAX, "%s: CPU %u: %llu objects of %llu bytes",
                   when, k, (unsigned long long)n, (unsigned long long)b);
        bytes += b;
    }
    FUZZ_CHECK(bytes <= st->bytes_free, "%s: magazines hold %llu bytes, %llu free", when,
               (unsigned long long)bytes, (unsigned long long)st->bytes_free);
    uint64_t sets = sets_made(), gone = frames0 - fuzz_free_frames();
    FUZZ_CHECK(gone == st->pages_held + sets, "%s: %llu frames taken since heap_init, the heap "
               "holds %llu and made sets of %llu", when, (unsigned long long)gone,
               (unsigned long long)st->pages_held, (unsigned long long)sets);
}

/* The live slots: their count, and their usable sizes summed. */
static FUZZ_NOCOV uint64_t live_slots(uint64_t *usable)
{
    uint64_t live = 0;
    *usable = 0;
    for (size_t i = 0; i < SLOTS; i++)
        if (slots[i].p) {
            live++;
            *usable += kmalloc_usable_size(slots[i].p);
        }
    return live;
}

/* The statistics against the live slots; with `full`, heap_check too. */
static void check_stats(bool full)
{
    struct heap_stats st;
    heap_get_stats(&st);
    check_cpus(&st, false, "statistics");
    uint64_t usable, live = live_slots(&usable);
    FUZZ_CHECK(!full || heap_check(), "heap_check failed");
    FUZZ_CHECK(st.live_blocks == live && st.alloc_count - st.free_count == live,
               "stats: %llu live blocks, model %llu", (unsigned long long)st.live_blocks,
               (unsigned long long)live);
    FUZZ_CHECK(st.bytes_in_use == usable, "stats: %llu bytes in use, usable sizes add to %llu",
               (unsigned long long)st.bytes_in_use, (unsigned long long)usable);
}

/* heap_drain_cpu_caches (with `trim`, heap_trim after it): every CPU's
 * magazines empty after it; no block, count or class changes; the only
 * frames it gives back are whole slabs that became empty while the class
 * already had a current slab and a spare (slab_free_slow, as for a kfree
 * into the slabs: heap.h). */
static void drain(bool trim)
{
    struct heap_stats a, b;
    heap_get_stats(&a);
    heap_drain_cpu_caches();
    heap_get_stats(&b);
    FUZZ_CHECK(a.alloc_count == b.alloc_count && a.free_count == b.free_count &&
                   a.live_blocks == b.live_blocks && a.bytes_in_use == b.bytes_in_use &&
                   a.medium_chunks == b.medium_chunks && a.large_pages == b.large_pages,
               "heap_drain_cpu_caches changed the blocks: %llu -> %llu live, %llu -> %llu bytes",
               (unsigned long long)a.live_blocks, (unsigned long long)b.live_blocks,
               (unsigned long long)a.bytes_in_use, (unsigned long long)b.bytes_in_use);
    uint64_t frames = 0, bytes = 0;
    for (unsigned i = 0; i < HEAP_SMALL_CLASSES; i++) {
        FUZZ_CHECK(a.cls[i].live == b.cls[i].live && a.cls[i].allocs == b.cls[i].allocs &&
                       a.cls[i].slabs >= b.cls[i].slabs,
                   "heap_drain_cpu_caches changed class %u's statistics", a.cls[i].size);
        uint64_t gone = a.cls[i].slabs - b.cls[i].slabs;
        frames += gone * classes[i].frames;
        bytes += gone * classes[i].nobj * classes[i].size;
    }
    FUZZ_CHECK(a.pages_held - b.pages_held == frames && a.bytes_free - b.bytes_free == bytes,
               "heap_drain_cpu_caches: %llu -> %llu pages, %llu -> %llu bytes free; the slabs "
               "released had %llu frames, %llu bytes", (unsigned long long)a.pages_held,
               (unsigned long long)b.pages_held, (unsigned long long)a.bytes_free,
               (unsigned long long)b.bytes_free, (unsigned long long)frames,
               (unsigned long long)bytes);
    check_cpus(&b, true, "after heap_drain_cpu_caches");
    if (trim) {
        heap_trim();
        heap_get_stats(&b);
        check_cpus(&b, true, "after heap_trim");
    }
}

/* A burst: n objects of one small size allocated on this CPU, each tagged
 * at both ends, then freed (tags checked) on one other CPU or on every CPU in
 * turn, forwards or backwards. raw: n - 1 (bits 0-8; at most 256 KiB of
 * objects: more magazines than two CPUs hold for every size, at a bounded
 * cost), the size (bits 9-12);
 * extra: the freeing CPU (bits 3-4), every CPU in turn (0x40), backwards
 * (0x80). The blocks live only within the operation. */
static void burst(uint32_t raw, uint8_t extra)
{
    static const uint16_t sizes[16] = {16,  32,   48,   64,   128,  192,  256,  384,
                                       512, 1000, 1024, 2048, 2100, 3072, 4000, 4096};
    static unsigned char *bp[512];
    size_t size = sizes[(raw >> 9) % 16];
    unsigned n = 1 + raw % 512 % MAX(KiB(256) / size, 1), got = 0, from = cur;
    size_t align = size & (size - 1) ? 16 : size;
    for (; got < n; got++) {
        unsigned char *p = kmalloc(size);
        if (!p)
            break; /* memory is short (the statistics check what is held) */
        FUZZ_CHECK((uintptr_t)p % align == 0 && kmalloc_usable_size(p) >= size,
                   "burst kmalloc(%zu) = %p: alignment or usable size %zu", size, (void *)p,
                   kmalloc_usable_size(p));
        uint64_t tag = ((uint64_t)got << 32) ^ next_id;
        memcpy(p, &tag, 8);
        memcpy(p + size - 8, &tag, 8);
        bp[got] = p;
    }
    for (unsigned j = 0; j < got; j++) {
        unsigned k = (extra & 0x80) ? got - 1 - j : j;
        run_as((extra & 0x40) ? (from + j) % NCPU : (unsigned)(extra >> 3) % NCPU);
        uint64_t tag = ((uint64_t)k << 32) ^ next_id, head, tail;
        memcpy(&head, bp[k], 8);
        memcpy(&tail, bp[k] + size - 8, 8);
        FUZZ_CHECK(head == tag && tail == tag, "burst block %u of %zu bytes at %p overwritten", k,
                   size, (void *)bp[k]);
        kfree(bp[k]);
    }
    run_as(from);
}

static void run_op(struct fuzz_in *in)
{
    uint8_t op = fuzz_u8(in), si = fuzz_u8(in);
    uint32_t raw = fuzz_u32(in);
    uint8_t extra = fuzz_u8(in);
    run_as((op >> 3) % NCPU);
    struct block *s = &slots[si % SLOTS];
    size_t size = pick_size(op, raw);
    bool too_big = size == 0 || size > HEAP_MAX_ALLOC;

    switch (op % 8) {
    case 0:
    case 1: { /* kmalloc into an empty slot (a full one is freed first) */
        if (s->p)
            release(s);
        void *p = kmalloc(size);
        if (too_big)
            FUZZ_CHECK(!p, "kmalloc(%zu) did not refuse", size);
        if (p) /* heap.h: a power of two up to HEAP_SMALL_MAX is aligned to itself */
            adopt(s, p, size, size <= HEAP_SMALL_MAX && !(size & (size - 1)) ? size : 16,
                  "kmalloc");
        return;
    }
    case 2: { /* kcalloc(n, size / n) with n = extra % 8 + 1; extra >= 0xf0: overflow */
        if (s->p)
            release(s);
        size_t n = extra % 8 + 1, each = size / n;
        if (extra >= 0xf0) {
            FUZZ_CHECK(!kcalloc(SIZE_MAX / 2, 3), "kcalloc overflow not refused");
            return;
        }
        unsigned char *p = kcalloc(n, each);
        if (n * each == 0 || n * each > HEAP_MAX_ALLOC)
            FUZZ_CHECK(!p, "kcalloc(%zu, %zu) did not refuse", n, each);
        if (!p)
            return;
        size_t nz = first_nonzero(p, n * each);
        FUZZ_CHECK(nz == n * each, "kcalloc(%zu, %zu): byte %zu = %#x", n, each, nz, p[nz]);
        adopt(s, p, n * each, 16, "kcalloc");
        return;
    }
    case 3: { /* krealloc (also of NULL, and to 0) */
        if (s->p)
            verify(s, s->size, "krealloc");
        void *q = krealloc(s->p, size);
        if (size == 0) {
            FUZZ_CHECK(!q, "krealloc(p, 0) returned %p", q);
            if (s->p)
                forget(s);
            return;
        }
        if (!q) {
            if (s->p)
                verify(s, s->size, "failed krealloc"); /* the old block is intact */
            return;
        }
        FUZZ_CHECK(!too_big, "krealloc to %zu did not refuse", size);
        if (s->p) {
            struct block moved = {q, s->size, s->id};
            verify(&moved, MIN(size, s->size), "krealloc's copy");
        }
        if (s->p)
            forget(s); /* the old block is gone (moved or resized) */
        adopt(s, q, size, 16, "krealloc");
        return;
    }
    case 4: { /* kmalloc_aligned: align 2^(extra % 24), or a non-power of two */
        if (s->p)
            release(s);
        size_t align = (extra & 0x80) ? (size_t)(extra | 1) * 3 : (size_t)1 << (extra % 24);
        bool bad_align = align & (align - 1);
        void *p = kmalloc_aligned(size, align);
        if (too_big || bad_align)
            FUZZ_CHECK(!p, "kmalloc_aligned(%zu, %zu) did not refuse", size, align);
        if (p)
            adopt(s, p, size, MAX(align, 16), "kmalloc_aligned");
        return;
    }
    case 5: /* kfree */
        if (s->p)
            release(s);
        else
            kfree(NULL);
        return;
    case 6: { /* heap_validate_ptr: a live start (NULL) or any other address (a reason);
               * op & 0x20: a freed pointer; op & 0x80: kfree it too when it is no
               * live start (must panic, change nothing) */
        uintptr_t a;
        bool live_start = false;
        if ((op & 0x20) && nstale) {
            a = stale[(nstale - 1 - raw % MIN(nstale, STALE)) % STALE];
        } else if (s->p && !(extra & 1)) {
            a = (uintptr_t)s->p + (extra >> 1) % 64 * ((extra & 2) ? 16 : 1);
            live_start = a == (uintptr_t)s->p;
        } else {
            a = hhdm_offset + (uint64_t)raw * 16 % hhdm_size;
        }
        live_start = live_start || is_live_start(a);
        const char *why = heap_validate_ptr((const void *)a);
        FUZZ_CHECK(!why == live_start, "heap_validate_ptr(%#lx) = %s for a %s",
                   (unsigned long)a, why ? why : "NULL", live_start ? "live block" : "non-block");
        if ((op & 0x80) && !live_start)
            bad_free(a, why);
        return;
    }
    default: /* extra bits 1-2: 1 drain, 2 a burst, else trim (extra & 1) and the
              * statistics (heap_check runs at the end of the input) */
        if ((extra >> 1) % 4 == 1)
            drain(extra & 1);
        else if ((extra >> 1) % 4 == 2)
            burst(raw, extra);
        else if (extra & 1)
            heap_trim();
        check_stats(false);
        return;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fuzz_in fi = {data, MIN(size, FUZZ_MAX_LEN)};
    if (!arena_ready) {
        host_arena_init(ARENA);
        pat_init();
        arena_ready = true;
    }
    static const uint64_t mems[] = {MiB(4), MiB(8), MiB(16), MiB(48)};
    uint64_t mem = mems[fuzz_u8(&fi) % 4];
    struct mem_region map[] = {{0, MiB(1), MEM_RESERVED}, {MiB(1), mem - MiB(1), MEM_USABLE}};
    fuzz_log_reset();
    run_as(0); /* CPU 0's set is made by heap_init */
    cpus_ran = 1;
    frame_init(map, 2);
    heap_init(); /* takes its granule table for good: count from here */
    frames0 = fuzz_free_frames();
    FUZZ_CHECK(cache_of(0), "heap_init made no magazine set for CPU 0");
    set_frames = cache_of(0)->frames;
    memset(slots, 0, sizeof(slots));
    nlive = 0;
    next_id = 1;
    nstale = 0;
    bad_frees_compared = 0;

    while (!fuzz_done(&fi))
        run_op(&fi);

    /* heap_check walks every slab, chunk and poisoned byte: once per check
     * operation it was most of the target's time (docs/testing.md), so it
     * runs here, on the final state, and again once everything is freed. */
    check_stats(true);
    for (size_t i = 0; i < SLOTS; i++)
        if (slots[i].p) {
            run_as(i % NCPU); /* spread over the CPUs' magazines */
            release(&slots[i]);
        }
    FUZZ_CHECK(nlive == 0, "model: %zu blocks indexed after freeing every slot", nlive);
    /* Everything free: the statistics and heap_check once the caches and
     * empty slabs are given back (what is left is then small to walk; before
     * the trim the walk would poison-check every freed byte a second time). */
    heap_trim();
    check_stats(true);
    struct heap_stats st;
    heap_get_stats(&st);
    FUZZ_CHECK(st.live_blocks == 0 && st.bytes_in_use == 0 && st.pages_held == 0,
               "after freeing everything and heap_trim: %llu live, %llu bytes, %llu pages",
               (unsigned long long)st.live_blocks, (unsigned long long)st.bytes_in_use,
               (unsigned long long)st.pages_held);
    check_cpus(&st, true, "after freeing everything and heap_trim");
    uint64_t sets = sets_made();
    FUZZ_CHECK(fuzz_free_frames() == frames0 - sets, "frames: %llu free, %llu after heap_init, less "
               "%llu for the magazine sets made since", (unsigned long long)fuzz_free_frames(),
               (unsigned long long)frames0, (unsigned long long)sets);
    host_cpu_index = 0;
    return 0;
}
