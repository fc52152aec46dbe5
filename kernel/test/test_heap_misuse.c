/* In-kernel self-tests of mm/heap's misuse reports: double free, invalid and
 * foreign pointers, overwritten headers, redzones in debug builds, pointers
 * next to memory the heap does not own; each caught by ktest_expect_panic
 * (or ktest_expect_panic_not_fault) with its report checked and the heap
 * left as it was. */
#include <stdarg.h>

#include "lib/printf.h"
#include "lib/string.h"
#include "lib/types.h"
#include "mm/frame.h"
#include "mm/heap.h"
#include "mm/mm.h"
#include "mm/paging.h"
#include "test/ktest.h"

static void call_kfree(void *p) { kfree(p); }
static void call_usable_size(void *p) { (void)kmalloc_usable_size(p); }
static void call_krealloc_grow(void *p) { (void)krealloc(p, 5000); }

static char want_buf[160];
__attribute__((format(printf, 1, 2))) static const char *want(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    kvsnprintf(want_buf, sizeof(want_buf), fmt, ap);
    va_end(ap);
    return want_buf;
}

/* kfree(p) must panic with `text` in the message and leave heap_check happy. */
#define EXPECT_KFREE_PANIC(p, ...)                                                                  \
    do {                                                                                           \
        KT_EXPECT(ktest_expect_panic(call_kfree, (void *)(p), want(__VA_ARGS__)), "got: %s",        \
                  ktest_last_panic());                                                             \
    } while (0)

/* Fills out[0..n) with medium blocks of `size` bytes that are neighbours in
 * memory, in address order, whatever the heap held before (the monitor's
 * blocks may have left holes that the first allocations fill): blocks that
 * do not continue the run are chained through their first word on *spares,
 * for spares_free(). False when no such run came within 64 allocations. */
static bool alloc_neighbours(size_t size, void **out, size_t n, void **spares)
{
    size_t stride = ALIGN_UP(size + HEAP_REDZONE_OVERHEAD + 16, 16); /* segment header: 16 */
    size_t have = 0;
    for (int tries = 0; tries < 64; tries++) {
        char *p = kmalloc(size);
        if (!p)
            break;
        if (have > 0 && p != (char *)out[have - 1] + stride) {
            for (size_t i = 0; i < have; i++) {
                *(void **)out[i] = *spares;
                *spares = out[i];
            }
            have = 0;
        }
        out[have++] = p;
        if (have == n)
            return true;
    }
    for (size_t i = 0; i < have; i++) {
        *(void **)out[i] = *spares;
        *spares = out[i];
    }
    return false;
}

static void spares_free(void *spares)
{
    while (spares) {
        void *next = *(void **)spares;
        kfree(spares);
        spares = next;
    }
}

KTEST(heap_misuse_double_free_every_tier)
{
    heap_trim();
    struct heap_stats st0;
    heap_get_stats(&st0);
    void *mm[3], *spares = NULL;
    bool neighbours = alloc_neighbours(9000, mm, 3, &spares);
    if (!neighbours)
        spares_free(spares);
    KT_ASSERT(neighbours, "no three neighbouring 9000-byte blocks");
    void *s = kmalloc(48), *m1 = mm[0], *m2 = mm[1], *guard = mm[2];
    void *l = kmalloc(KiB(200));
    KT_ASSERT(s && l);
    kfree(s);
    EXPECT_KFREE_PANIC(s, "double free of %p", s); /* slab: free tag + free list */
    kfree(m2);                                     /* merges with nothing: m1, guard are used */
    EXPECT_KFREE_PANIC(m2, "double free of %p", m2);
    kfree(m1); /* merges m2 into m1: m2's header is a tombstone now */
    EXPECT_KFREE_PANIC(m2, "double free of %p (block already merged", m2);
    EXPECT_KFREE_PANIC(m1, "double free of %p", m1);
    kfree(l); /* its frames went back: the ring of released runs knows it */
    EXPECT_KFREE_PANIC(l, "double free of %p", l);
    KT_EXPECT(heap_check(), "the double frees changed the heap");
    kfree(guard);
    spares_free(spares);
    void *again = kmalloc(9000); /* the heap is usable */
    KT_EXPECT(again != NULL);
    kfree(again);
    heap_trim();
    struct heap_stats st;
    heap_get_stats(&st);
    KT_EXPECT(st.live_blocks == st0.live_blocks && st.pages_held == st0.pages_held);
    KT_EXPECT(heap_check());
}

KTEST(heap_misuse_invalid_free_every_kind)
{
    int local;
    char *s = kmalloc(100), *m = kmalloc(8000), *l = kmalloc(KiB(100));
    char *f1 = kmalloc(9000), *f2 = kmalloc(9000), *f3 = kmalloc(9000);
    KT_ASSERT(s && m && l && f1 && f2 && f3);
    kfree(f2); /* a free segment between two used ones */
    paddr_t frame = frame_alloc_zeroed();
    KT_ASSERT(frame);
    char *foreign = (char *)PHYS2VIRT(frame) + 0x230; /* direct map, never the heap's */
    EXPECT_KFREE_PANIC(&local, "kfree(%p): not a heap address (outside the direct map)",
                       (void *)&local);
    EXPECT_KFREE_PANIC((void *)0x1000, "kfree(%p): not a heap address", (void *)0x1000);
    EXPECT_KFREE_PANIC(s + 16, "%p", s + 16); /* interior, slab */
    KT_EXPECT(strstr(ktest_last_panic(), "not a block start"), "%s", ktest_last_panic());
    EXPECT_KFREE_PANIC(s + 1, "%p", s + 1); /* misaligned */
    EXPECT_KFREE_PANIC(m + 64, "kfree(%p): not a pointer the heap gave", m + 64);
    EXPECT_KFREE_PANIC(l + 4096, "kfree(%p): not a pointer the heap gave", l + 4096);
    EXPECT_KFREE_PANIC(f2 + 512, "kfree(%p): not a pointer the heap gave", f2 + 512); /* free memory */
    /* (a half slab's block may hold this frame: then it is "not a block start") */
    EXPECT_KFREE_PANIC(foreign, "%p", foreign);
    KT_EXPECT(ktest_expect_panic(call_usable_size, s + 32, want("%p", s + 32)), "%s",
              ktest_last_panic());
    KT_EXPECT(ktest_expect_panic(call_krealloc_grow, m + 16, want("krealloc(%p)", m + 16)), "%s",
              ktest_last_panic());
    KT_EXPECT(heap_check(), "an invalid free changed the heap");
    frame_free(frame);
    kfree(s);
    kfree(m);
    kfree(l);
    kfree(f1);
    kfree(f3);
    KT_EXPECT(heap_check());
}

/* An overflow from a medium block into its neighbour's header: both kfrees
 * panic (the neighbour's header checksum; the block's neighbour check, or in
 * debug builds its redzone), the bytes are repaired, and both free normally. */
KTEST(heap_misuse_overflow_into_neighbour_header)
{
    void *ab[2], *spares = NULL;
    bool neighbours = alloc_neighbours(6000, ab, 2, &spares);
    if (!neighbours)
        spares_free(spares);
    KT_ASSERT(neighbours, "no two neighbouring 6000-byte blocks");
    char *a = ab[0], *b = ab[1];
    size_t reach = (size_t)(b - a) - HEAP_REDZONE_LEAD - 8; /* 8 bytes into b's header */
    static uint8_t saved[8192];
    KT_ASSERT(reach <= sizeof(saved));
    memcpy(saved, a, reach);
    memset(a, 'x', reach);
    EXPECT_KFREE_PANIC(b, "kfree(%p): not a pointer the heap gave, or its header was overwritten", b);
    EXPECT_KFREE_PANIC(a, "after block %p (overflow?)", a);
    KT_EXPECT(strstr(ktest_last_panic(), "corrupted segment header"), "%s", ktest_last_panic());
    KT_EXPECT(!heap_check(), "heap_check missed the overwritten header");
    memcpy(a, saved, reach);
    KT_EXPECT(heap_check(), "repaired");
    kfree(b);
    kfree(a);
    spares_free(spares);
    KT_EXPECT(heap_check());
}

static void call_drain(void *p) { (void)p; heap_drain_cpu_caches(); }

/* The slab header is the only header of the small tier, and kfree never reads
 * it (the granule table says what a granule holds): an overwritten magic is
 * reported by every call that reads it (kmalloc_usable_size, krealloc,
 * heap_check) and, for a kfree, when the object goes back to its slab (a
 * drain), before anything changes. */
KTEST(heap_misuse_overwritten_slab_header)
{
    char *p = kmalloc(40); /* not a power of two: a slab object with redzones too */
    KT_ASSERT(p);
    /* a full slab (class <= 128 B): its header is its last 64 bytes */
    uint64_t *hdr = (uint64_t *)((char *)PHYS2VIRT(ALIGN_DOWN(VIRT2PHYS(p), KiB(64))) + KiB(64) - 64);
    uint64_t saved = hdr[0];
    hdr[0] = 0;
    KT_EXPECT(ktest_expect_panic(call_usable_size, p,
                                 want("kmalloc_usable_size(%p): not a pointer the heap gave, or "
                                      "its header was overwritten",
                                      p)),
              "got: %s", ktest_last_panic());
    KT_EXPECT(ktest_expect_panic(call_krealloc_grow, p, want("krealloc(%p): not a pointer", p)),
              "got: %s", ktest_last_panic());
    KT_EXPECT(!heap_check());
    kfree(p); /* into this CPU's magazine: the fast path does not read the header */
    KT_EXPECT(ktest_expect_panic(call_drain, NULL,
                                 want("the header of slab %p was overwritten", (void *)hdr)),
              "got: %s", ktest_last_panic());
    hdr[0] = saved;
    KT_EXPECT(heap_check());
    heap_drain_cpu_caches();
    KT_EXPECT(heap_check());
}

#if HEAP_REDZONES
/* Debug builds: one byte past the end or before the start of a block of any
 * tier is reported at kfree (and krealloc, kmalloc_usable_size, heap_check)
 * with the block, the size and the offset; repaired, the block frees. */
static void redzone_case(size_t size, size_t align)
{
    uint8_t *p = align > 16 ? kmalloc_aligned(size, align) : kmalloc(size);
    KT_ASSERT(p, "size %zu", size);
    KT_EXPECT(((uintptr_t)p & (MAX(align, 16) - 1)) == 0, "%p not %zu-aligned", (void *)p, align);
    KT_EXPECT(kmalloc_usable_size(p) == size, "usable %zu, size %zu", kmalloc_usable_size(p), size);
    memset(p, 0x11, size);
    KT_EXPECT(heap_check());
    for (size_t k = 0; k < 16; k += 15) {
        uint8_t saved = p[size + k];
        p[size + k] ^= 0x5a;
        KT_EXPECT(ktest_expect_panic(call_kfree, p,
                                     want("heap: overflow past the end of block %p (size %zu): byte "
                                          "at +%zu modified",
                                          (void *)p, size, size + k)),
                  "got: %s", ktest_last_panic());
        KT_EXPECT(ktest_expect_panic(call_krealloc_grow, p, "overflow past the end"), "%s",
                  ktest_last_panic());
        KT_EXPECT(ktest_expect_panic(call_usable_size, p, "overflow past the end"), "%s",
                  ktest_last_panic());
        KT_EXPECT(!heap_check(), "heap_check missed it");
        KT_EXPECT(heap_validate_ptr(p) != NULL);
        p[size + k] = saved;
    }
    for (size_t k = 1; k <= 16; k += 7) {
        uint8_t saved = p[-(long)k];
        p[-(long)k] ^= 0x01;
        KT_EXPECT(ktest_expect_panic(call_kfree, p,
                                     want("heap: underflow before the start of block %p (size %zu): "
                                          "byte at -%zu modified",
                                          (void *)p, size, k)),
                  "got: %s", ktest_last_panic());
        p[-(long)k] = saved;
    }
    KT_EXPECT(heap_check());
    kfree(p);
}

KTEST(heap_redzones_every_tier)
{
    static const size_t sizes[] = {1, 16, 100, 1000, 3000, 9000, 65536, 200000};
    for (size_t i = 0; i < ARRAY_SIZE(sizes); i++)
        redzone_case(sizes[i], 16);
    redzone_case(100, 64);
    redzone_case(5000, 4096);
    redzone_case(KiB(100), MiB(2));
    KT_EXPECT(heap_check());
}
#endif

/* Lazy carving in the booted kernel: in a slab the class has just started,
 * an object it never handed out is refused by heap_validate_ptr and kfree;
 * and full slabs, which are in no list, are still counted and checked. */
static paddr_t slab_of_ptr(const void *p)
{
    return ALIGN_DOWN(VIRT2PHYS(p), KiB(64));
}

KTEST(heap_never_handed_out_object_and_full_slabs)
{
    enum { MAX = 1500 }; /* 200 B: several half slabs of 36 objects */
    static void *v[MAX];
    size_t n = 0;
    char *never = NULL;
    for (; n < MAX && !never; n++) {
        v[n] = kmalloc(200);
        KT_ASSERT(v[n]);
        /* v[n-1] opened a slab and v[n] follows it there: look one further */
        /* (its first allocation carved a batch into the magazine: look past it) */
        if (n >= 2 && slab_of_ptr(v[n - 1]) != slab_of_ptr(v[n - 2]) &&
            slab_of_ptr(v[n]) == slab_of_ptr(v[n - 1])) {
            ptrdiff_t step = (char *)v[n] - (char *)v[n - 1];
            for (int k = 40; k >= 1 && !never; k--) {
                char *cand = (char *)v[n] + k * step;
                const char *why = slab_of_ptr(cand) == slab_of_ptr(v[n]) ? heap_validate_ptr(cand)
                                                                         : NULL;
                if (why && !strcmp(why, "a slab object the heap never handed out"))
                    never = cand;
            }
        }
    }
    KT_ASSERT(never, "no fresh slab among %zu allocations of 200 bytes", n);
    EXPECT_KFREE_PANIC(never, "not a block start: %p", never);
    KT_EXPECT(heap_check());
    /* go on until several slabs of the class have filled up behind us */
    struct heap_stats st0, st;
    heap_get_stats(&st0);
    size_t n0 = n;
    for (; n < MAX; n++) {
        v[n] = kmalloc(200);
        KT_ASSERT(v[n]);
    }
    heap_get_stats(&st);
    KT_EXPECT(st.live_blocks == st0.live_blocks + (MAX - n0), "live %llu, expected %llu",
              (unsigned long long)st.live_blocks, (unsigned long long)(st0.live_blocks + MAX - n0));
    KT_EXPECT(heap_check());
    for (size_t i = 0; i < MAX; i += 2) /* every full slab becomes partial */
        kfree(v[i]);
    KT_EXPECT(heap_check());
    for (size_t i = 1; i < MAX; i += 2)
        kfree(v[i]);
    KT_EXPECT(heap_check());
}

/* Magazines in the booted kernel: a freed object comes back first, a second
 * kfree of it is a double free, and heap_trim returns what magazines held. */
KTEST(heap_magazine_reuse_double_free_and_trim)
{
    heap_trim();
    struct heap_stats st0, st;
    heap_get_stats(&st0);
    char *p = kmalloc(48), *q = kmalloc(48);
    KT_ASSERT(p && q);
    kfree(p);
    KT_EXPECT(heap_validate_ptr(p) && !strcmp(heap_validate_ptr(p), "already free"));
    EXPECT_KFREE_PANIC(p, "double free of %p", p);
    KT_EXPECT(heap_check());
    char *r = kmalloc(48);
    KT_EXPECT(r == p, "the newest freed object comes back first (%p, freed %p)", r, p);
    kfree(q);
    kfree(r);
    enum { N = 200 };
    static void *v[N];
    for (int i = 0; i < N; i++) {
        v[i] = kmalloc(4000);
        KT_ASSERT(v[i]);
    }
    for (int i = 0; i < N; i++) /* far more than a 4 KiB magazine holds */
        kfree(v[i]);
    KT_EXPECT(heap_check());
    heap_trim();
    heap_get_stats(&st);
    KT_EXPECT(st.live_blocks == st0.live_blocks && st.pages_held == st0.pages_held,
              "live %llu pages %llu, before %llu / %llu", (unsigned long long)st.live_blocks,
              (unsigned long long)st.pages_held, (unsigned long long)st0.live_blocks,
              (unsigned long long)st0.pages_held);
}

/* ---- pointers next to memory no heap run owns (issue 11, 3a) ---- */

static void call_krealloc_small(void *p) { (void)krealloc(p, 100); }
static void read_u64(void *p) { (void)*(volatile uint64_t *)p; }

/* kfree, krealloc and kmalloc_usable_size of p each end in the heap's misuse
 * report naming p ("heap: kfree(p): ..."), never in a CPU exception. */
static void expect_report_everywhere(void *p)
{
    static void (*const calls[])(void *) = {call_kfree, call_krealloc_small, call_usable_size};
    static const char *const names[] = {"kfree", "krealloc", "kmalloc_usable_size"};
    for (size_t i = 0; i < ARRAY_SIZE(calls); i++)
        KT_EXPECT(ktest_expect_panic_not_fault(calls[i], p, want("heap: %s(%p): ", names[i], p)),
                  "%s(%p): %s", names[i], p, ktest_last_panic());
}

/* A large run of 17 frames at X owns one frame of the granule at X + 64 KiB;
 * a second run starts at X + 128 KiB. The page just before it is not the
 * heap's, and is unmapped here (as RAM next to a reserved hole is). A
 * pointer at the second run's first byte (the 16 bytes before it are in that
 * page), in the page, or just past the first run's end is refused with the
 * misuse report, without a page fault; both blocks stay intact. */
KTEST(heap_pointer_next_to_unmapped_tail_is_refused)
{
    paddr_t X = frame_alloc_contig(64, KiB(256)); /* 4 granules, held by the test */
    KT_ASSERT(X);
    uint64_t taken;
    paddr_t runs = ktest_grab_frames(0, &taken); /* the heap's runs must go where we say */
    const size_t size = KiB(64) + 100;           /* 17 frames with header (and redzones) */
    frame_free_contig(X, 17);
    char *r1 = kmalloc(size);
    frame_free_contig(X + KiB(128), 17);
    char *r2 = kmalloc(size);
    ktest_release_frames(runs);
    vaddr_t tail = (vaddr_t)PHYS2VIRT(X + KiB(124));
    bool placed = r1 && r2 && ALIGN_DOWN(VIRT2PHYS(r1), PAGE_SIZE) == X &&
                  ALIGN_DOWN(VIRT2PHYS(r2), PAGE_SIZE) == X + KiB(128);
    KT_EXPECT(placed, "runs at %p and %p, wanted %#llx and %#llx", (void *)r1, (void *)r2,
              (unsigned long long)X, (unsigned long long)(X + KiB(128)));
    int unmapped = placed ? paging_unmap(tail) : -1;
    KT_EXPECT(!placed || unmapped == 0, "unmapping the tail page: %s", paging_strerror(unmapped));
    if (placed && unmapped == 0) {
        memset(r1, 0x11, size);
        memset(r2, 0x22, size);
        KT_EXPECT(ktest_expect_fault(read_u64, (void *)tail, 14, NULL, NULL), "the page is unmapped");
        char *g = PHYS2VIRT(X + KiB(128));
        expect_report_everywhere(g);                          /* header place in the page */
        expect_report_everywhere(g + 16);                     /* (redzones: the same) */
        expect_report_everywhere((char *)tail + 0x100);       /* in the page */
        expect_report_everywhere((char *)tail);
        expect_report_everywhere(PHYS2VIRT(X + KiB(72)));     /* past the first run */
        expect_report_everywhere(PHYS2VIRT(X + KiB(68) + 16)); /* right after its end */
        KT_EXPECT(heap_validate_ptr(g) != NULL && heap_validate_ptr((char *)tail + 0x100) != NULL);
        KT_EXPECT(heap_check(), "the refused calls changed the heap");
        KT_EXPECT(kmalloc_usable_size(r1) >= size && (uint8_t)r1[size - 1] == 0x11 &&
                  (uint8_t)r2[0] == 0x22 && (uint8_t)r2[size - 1] == 0x22,
                  "a block was damaged");
        kfree(r1); /* valid blocks free normally, the page still unmapped */
        kfree(r2);
        r1 = r2 = NULL;
        KT_EXPECT(paging_map_in(&kernel_as, X + KiB(124), tail, PAGE_SIZE, PAGE_WRITABLE | PAGE_NX,
                                CACHE_WB, 0) == 0);
    }
    kfree(r1);
    kfree(r2);
    /* the frames the heap never had: X + 17 .. X + 32 and X + 32 + 17 .. X + 64 */
    frame_free_contig(X + 17 * PAGE_SIZE, 15);
    frame_free_contig(X + KiB(128) + 17 * PAGE_SIZE, 15);
    KT_EXPECT(heap_check());
}

/* ---- natural alignment of power-of-two sizes (issue 11, 4) ---- */

/* kmalloc(n) and kcalloc(1, n) for a power of two n up to 4096 are aligned to
 * n (16 at least) in every build, redzones or not: fresh, reused and across
 * slabs (docs/memory.md: kmalloc(4096) is page-aligned). */
