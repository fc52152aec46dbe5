/* Frame allocator on a 64 MiB host arena with a crafted memory map: stats,
 * exhaustion, a long random run against a model, stale summary bits,
 * contiguous runs (the O(1) small-run path: cursor word, wholly free words,
 * the first-fit fallback), misuse panics, reclaim, metadata size at 4 GiB and
 * 256 GiB. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>

#include "arch/x86_64/cpu_local.h"
#include "lib/string.h"
#include "mm/frame.h"
#include "mm/memmap.h"
#include "mm/mm.h"
#include "support.h"

#define ARENA   MiB(64)
#define NFRAMES (ARENA / PAGE_SIZE)

static const struct mem_region test_map[] = {
    {0x0, 0x9f000, MEM_USABLE}, /* frame 0 lies here: never handed out */
    {0x9f000, 0x61000, MEM_RESERVED},
    {0x100000, 0x700000, MEM_USABLE},
    {0x800000, 0x200000, MEM_KERNEL},
    {0xa00000, 0x100000, MEM_BOOTLOADER_RECLAIMABLE},
    {0xb00000, 0x2f00000, MEM_USABLE}, /* largest: the metadata goes at its top */
    {0x3a00000, 0x10000, MEM_ACPI_RECLAIMABLE},
    {0x3a10000, 0x10000, MEM_ACPI_NVS},
    {0x3a20000, 0x1000, MEM_BAD},
    {0x3a21000, 0x5df000, MEM_USABLE},
    {0xfd000000, 0x300000, MEM_FRAMEBUFFER}, /* outside the arena: never touched */
};

static uint64_t map_usable_frames;

static void setup(void)
{
    host_arena_init(ARENA);
    host_log_clear();
    frame_cache_limit = FRAME_CACHE_MAX;
    map_usable_frames = 0;
    for (size_t i = 0; i < ARRAY_SIZE(test_map); i++)
        if (test_map[i].type == MEM_USABLE)
            map_usable_frames += test_map[i].length / PAGE_SIZE;
    frame_init(test_map, ARRAY_SIZE(test_map));
}

static void teardown(void)
{
    host_arena_free();
}

static int map_type(paddr_t a)
{
    for (size_t i = 0; i < ARRAY_SIZE(test_map); i++)
        if (a >= test_map[i].base && a - test_map[i].base < test_map[i].length)
            return (int)test_map[i].type;
    return -1;
}

static struct frame_stats stats(void)
{
    struct frame_stats s;
    frame_get_stats(&s);
    return s;
}

/* A frame the allocator may hand out: aligned, not 0, usable in the map. */
static void expect_valid(paddr_t f)
{
    cr_assert(f != 0 && IS_ALIGNED(f, PAGE_SIZE) && f < ARENA, "bad frame %#llx",
              (unsigned long long)f);
    cr_assert_eq(map_type(f), MEM_USABLE, "frame %#llx is not usable memory",
                 (unsigned long long)f);
    cr_assert(frame_is_used(f));
}

TestSuite(frame, .init = setup, .fini = teardown);

Test(frame, init_stats_and_log)
{
    struct frame_stats s = stats();
    uint64_t meta_frames = s.metadata_bytes / PAGE_SIZE;
    cr_expect_eq(s.total_frames, NFRAMES);
    cr_expect_eq(s.usable_frames, map_usable_frames - 1 - meta_frames);
    cr_expect_eq(s.free_frames, s.usable_frames);
    cr_expect_eq(s.reclaimable_frames, 0x100);
    cr_expect_eq(s.reclaimed_frames, 0);
    /* frame 0 + reserved + kernel + ACPI x2 + bad; the framebuffer lies above
     * the top managed frame and is not counted as reserved memory */
    cr_expect_eq(s.reserved_frames, 1 + 0x61 + 0x200 + 0x10 + 0x10 + 1);
    /* 16384 bitmap bits = 256 words, + 3 x (4 + 1 + 1 + sentinel), + 256 words
     * of held bits -> two pages */
    cr_expect_eq(s.metadata_bytes, 2 * PAGE_SIZE);
    char line[160];
    snprintf(line, sizeof(line), "[mm] frames: usable=%lluKiB free=%lluKiB metadata=8KiB",
             (unsigned long long)s.usable_frames * 4, (unsigned long long)s.free_frames * 4);
    cr_expect(host_log_contains(line), "want \"%s\" in:\n%s", line, host_log);
    cr_expect(frame_check());
    cr_expect(frame_is_used(0));
    cr_expect(frame_is_used(0x9f000));
    cr_expect(frame_is_used(0x800000));
    cr_expect(frame_is_used(0xa00000)); /* reclaimable, not yet reclaimed */
    cr_expect(frame_is_used(ARENA));    /* beyond the last frame */
    cr_expect(!frame_is_used(0x1000));
}

static paddr_t held[NFRAMES];
static bool is_held[NFRAMES];

Test(frame, alloc_all_then_free_all_restores_free_count)
{
    struct frame_stats s0 = stats();
    size_t n = 0;
    paddr_t f;
    while ((f = frame_alloc()) != 0) {
        expect_valid(f);
        cr_assert(!is_held[f / PAGE_SIZE], "frame %#llx handed out twice", (unsigned long long)f);
        is_held[f / PAGE_SIZE] = true;
        cr_assert(n < NFRAMES);
        held[n++] = f;
    }
    cr_expect_eq(n, s0.free_frames);
    cr_expect_eq(stats().free_frames, 0);
    cr_expect_eq(frame_alloc(), 0);
    cr_expect_eq(frame_alloc_zeroed(), 0);
    cr_expect_eq(frame_alloc_contig(1, PAGE_SIZE), 0);
    cr_expect(frame_check());

    /* The usable frames never handed out are frame 0 and the metadata: one
     * run, which frame_free refuses. */
    uint64_t missing = 0;
    paddr_t first = 0, last = 0;
    for (paddr_t a = PAGE_SIZE; a < ARENA; a += PAGE_SIZE) {
        if (map_type(a) != MEM_USABLE || is_held[a / PAGE_SIZE])
            continue;
        if (!missing)
            first = a;
        last = a;
        missing++;
        cr_expect(HOST_EXPECT_PANIC(frame_free(a)), "metadata frame %#llx freed",
                  (unsigned long long)a);
        cr_expect(strstr(host_panic_msg, "frame-allocator metadata"), "%s", host_panic_msg);
    }
    cr_expect_eq(missing * PAGE_SIZE, s0.metadata_bytes);
    cr_expect_eq(last - first, (missing - 1) * PAGE_SIZE);

    /* Free in a shuffled order. */
    srand(7);
    for (size_t i = n - 1; i > 0; i--) {
        size_t j = (size_t)rand() % (i + 1);
        paddr_t t = held[i];
        held[i] = held[j];
        held[j] = t;
    }
    for (size_t i = 0; i < n; i++)
        frame_free(held[i]);
    cr_expect_eq(stats().free_frames, s0.free_frames);
    cr_expect(frame_check());
    /* Lowest first again, once this CPU's cache (the last frames freed) is
     * back in the bitmap. */
    cr_expect_gt(frame_drain_cpu_caches(), 0);
    cr_expect_eq(frame_cache_count(0), 0);
    cr_expect_eq(frame_alloc(), 0x1000);
}

Test(frame, random_run_against_model)
{
    struct frame_stats s0 = stats();
    size_t n = 0, full_hits = 0, empty_hits = 0;
    srand(42);
    for (int op = 0; op < 200000; op++) {
        int r = rand() % 100;
        /* Drift between mostly allocating and mostly freeing to visit full and empty. */
        int alloc_pct = (op / 40000) % 2 ? 20 : 80;
        empty_hits += n == 0;
        if (r < alloc_pct) {
            paddr_t f = (op % 7) ? frame_alloc() : frame_alloc_zeroed();
            if (!f) {
                cr_assert_eq(n, s0.free_frames, "op %d: alloc failed with %zu of %llu held", op,
                             n, (unsigned long long)s0.free_frames);
                full_hits++;
                continue;
            }
            expect_valid(f);
            cr_assert(!is_held[f / PAGE_SIZE], "op %d: %#llx handed out twice", op,
                      (unsigned long long)f);
            if (op % 7 == 0) {
                const uint8_t *p = PHYS2VIRT(f);
                for (size_t k = 0; k < PAGE_SIZE; k += 64)
                    cr_assert_eq(p[k], 0, "op %d: zeroed frame not zero", op);
            }
            memset(PHYS2VIRT(f), 0xab, 64); /* would corrupt the allocator if f were metadata */
            is_held[f / PAGE_SIZE] = true;
            held[n++] = f;
        } else if (r < 99) {
            if (!n)
                continue;
            size_t i = (size_t)rand() % n;
            paddr_t f = held[i];
            held[i] = held[--n];
            is_held[f / PAGE_SIZE] = false;
            frame_free(f);
            cr_assert(!frame_is_used(f));
        } else {
            size_t count = 1 + (size_t)rand() % 16;
            uint64_t align = PAGE_SIZE << (rand() % 7);
            paddr_t b = frame_alloc_contig(count, align);
            if (!b)
                continue;
            cr_assert(IS_ALIGNED(b, align), "op %d: %#llx not aligned to %#llx", op,
                      (unsigned long long)b, (unsigned long long)align);
            for (size_t k = 0; k < count; k++) {
                paddr_t f = b + k * PAGE_SIZE;
                expect_valid(f);
                cr_assert(!is_held[f / PAGE_SIZE], "op %d: contig frame %#llx already held", op,
                          (unsigned long long)f);
                is_held[f / PAGE_SIZE] = true;
                held[n++] = f;
            }
        }
        if (op % 10000 == 0) {
            cr_assert(frame_check(), "op %d: summaries disagree with the bitmap", op);
            cr_assert_eq(stats().free_frames, s0.free_frames - n, "op %d", op);
        }
    }
    cr_assert(frame_check());
    cr_assert_eq(stats().free_frames, s0.free_frames - n);
    cr_expect(full_hits > 100 && empty_hits > 100, "full %zu times, empty %zu times", full_hits,
              empty_hits);
    while (n)
        frame_free(held[--n]);
    cr_assert_eq(stats().free_frames, s0.free_frames);
    cr_assert(frame_check());
}

/* sum1 is lazy (docs/memory.md): taking a word's last free frame leaves the
 * word's bit set; the next descent that lands on the full word clears it. */
Test(frame, stale_summary_bits)
{
    frame_cache_limit = 0; /* the bitmap layer's own behaviour */
    struct frame_stats s0 = stats();
    /* Word 0 (frames 1..63) fills up: its bit goes stale, the next alloc
     * clears it and goes on to word 1. */
    for (paddr_t a = 0x1000; a < 0x40000; a += PAGE_SIZE) {
        cr_assert_eq(frame_alloc(), a);
        cr_assert(frame_check());
    }
    cr_assert_eq(frame_alloc(), 0x40000);
    cr_assert(frame_check());
    for (paddr_t a = 0x41000; a < 0x80000; a += PAGE_SIZE)
        cr_assert_eq(frame_alloc(), a);
    /* Ping-pong on the only free frame of a word (memory nearly full): the
     * same frame every time, the summaries stay consistent. */
    frame_free(0x23000);
    for (int k = 0; k < 1000; k++) {
        cr_assert_eq(frame_alloc(), 0x23000);
        cr_assert(frame_check());
        frame_free(0x23000);
        cr_assert(frame_check());
    }
    cr_assert_eq(frame_alloc(), 0x23000);
    /* Word 2 holds frames 128..158 (the rest is reserved). */
    for (paddr_t a = 0x80000; a < 0x9f000; a += PAGE_SIZE)
        cr_assert_eq(frame_alloc(), a);
    /* Several stale bits at once: words 2, 1, 0 each get one frame back
     * and lose it again. */
    static const paddr_t ping[] = {0x90000, 0x50000, 0x10000};
    for (size_t k = 0; k < ARRAY_SIZE(ping); k++) {
        frame_free(ping[k]);
        cr_assert(frame_check());
        cr_assert_eq(frame_alloc(), ping[k]);
        cr_assert(frame_check());
    }
    /* Both searches step over the stale bits to the first free frame. */
    cr_assert_eq(frame_alloc_contig(1, PAGE_SIZE), 0x100000);
    cr_assert_eq(frame_alloc(), 0x101000);
    cr_assert(frame_check());
    cr_assert_eq(stats().free_frames, s0.free_frames - 158 - 2);
    for (paddr_t a = 0x1000; a < 0x9f000; a += PAGE_SIZE)
        frame_free(a);
    frame_free(0x100000);
    frame_free(0x101000);
    cr_assert_eq(stats().free_frames, s0.free_frames);
    cr_assert(frame_check());
    /* Exhaustion with stale bits everywhere, then one frame back. */
    size_t n = 0;
    while (frame_alloc())
        n++;
    cr_assert_eq(n, s0.free_frames);
    cr_assert_eq(frame_alloc(), 0);
    cr_assert(frame_check());
    frame_free(0x2345000);
    cr_assert(frame_check());
    cr_assert_eq(frame_alloc(), 0x2345000);
    cr_assert_eq(frame_alloc(), 0);
}

/* frame_check permits a set sum1 bit over a full word (stale) and rejects a
 * clear one over a word with a free frame (that frame would be lost). */
Test(frame, check_accepts_stale_rejects_hidden)
{
    struct frame_stats s = stats();
    paddr_t meta = 0xb00000 + 0x2f00000 - s.metadata_bytes;
    cr_assert(frame_is_used(meta) && !frame_is_used(meta - PAGE_SIZE));
    uint64_t *bitmap = PHYS2VIRT(meta), *sum1 = bitmap + NFRAMES / 64;
    cr_assert(frame_check());
    /* Word 3 (frames 192..255) is reserved: full, bit clear. */
    cr_assert_eq(bitmap[3], ~0ULL);
    cr_assert_eq(sum1[0] & (1ULL << 3), 0);
    sum1[0] |= 1ULL << 3;
    cr_expect(frame_check(), "a stale bit is permitted");
    /* Word 4 (frames 256..319) is free: clearing its bit hides its frames. */
    cr_assert_neq(sum1[0] & (1ULL << 4), 0);
    sum1[0] &= ~(1ULL << 4);
    cr_expect(!frame_check(), "a clear bit over free frames is caught");
    sum1[0] |= 1ULL << 4;
    cr_expect(frame_check());
    /* The stale bit over word 3 costs a descent once and is then cleared. */
    for (paddr_t a = 0x1000; a < 0x9f000; a += PAGE_SIZE)
        cr_assert_eq(frame_alloc(), a);
    cr_assert_eq(frame_alloc(), 0x100000);
    cr_assert_eq(sum1[0] & 0xf, 0);
    cr_expect(frame_check());
}

/* Checks a contiguous run: aligned, every frame usable and now used. */
static void expect_run(paddr_t b, size_t count, uint64_t align)
{
    cr_assert(b != 0, "no run of %zu frames aligned to %#llx", count, (unsigned long long)align);
    cr_assert(IS_ALIGNED(b, align));
    for (size_t k = 0; k < count; k++)
        expect_valid(b + k * PAGE_SIZE);
}

Test(frame, contiguous_aligned_runs)
{
    struct frame_stats s0 = stats();
    paddr_t huge = frame_alloc_contig(512, MiB(2));
    expect_run(huge, 512, MiB(2));
    paddr_t small = frame_alloc_contig(16, KiB(64));
    expect_run(small, 16, KiB(64));
    cr_expect(small + 16 * PAGE_SIZE <= huge || small >= huge + MiB(2));
    paddr_t odd = frame_alloc_contig(3, 0); /* align below a page means a page */
    expect_run(odd, 3, PAGE_SIZE);
    cr_expect_eq(stats().free_frames, s0.free_frames - 512 - 16 - 3);
    /* Single allocations never land inside the runs. */
    for (int i = 0; i < 2000; i++) {
        paddr_t f = held[i] = frame_alloc();
        cr_assert(f < huge || f >= huge + MiB(2));
        cr_assert(f < small || f >= small + KiB(64));
    }
    for (int i = 0; i < 2000; i++)
        frame_free(held[i]);
    /* Impossible requests. */
    cr_expect_eq(frame_alloc_contig(0, PAGE_SIZE), 0);
    cr_expect_eq(frame_alloc_contig(NFRAMES, PAGE_SIZE), 0);
    cr_expect_eq(frame_alloc_contig(1, GiB(1)), 0);                    /* only frame 0 qualifies */
    cr_expect(HOST_EXPECT_PANIC(frame_alloc_contig(1, 3 * PAGE_SIZE)));
    frame_free_contig(huge, 512);
    frame_free_contig(small, 16);
    cr_expect(frame_check());
    /* A run may not cross the kernel or reserved regions: the longest run that
     * fits is the largest usable region minus its metadata. */
    uint64_t big = (0x2f00000 - s0.metadata_bytes) / PAGE_SIZE;
    cr_expect_eq(frame_alloc_contig(big + 1, PAGE_SIZE), 0);
    paddr_t all = frame_alloc_contig(big, PAGE_SIZE);
    cr_expect_eq(all, 0xb00000);
    frame_free_contig(all, big);
    cr_expect(frame_check());
}

Test(frame, contiguous_until_exhausted)
{
    struct frame_stats s0 = stats();
    uint64_t got = 0;
    paddr_t b;
    while ((b = frame_alloc_contig(512, MiB(2))) != 0) {
        expect_run(b, 512, MiB(2));
        got += 512;
    }
    /* 2 MiB-aligned free 2 MiB blocks: [12,58) MiB minus metadata at the top
     * -> 12..54 = 22 blocks; [58 MiB + 0x21000, 64) -> 60, 62 = 2 blocks;
     * [1,8) -> 2, 4, 6 = 3 blocks. */
    cr_expect_eq(got, (22 + 2 + 3) * 512);
    cr_expect_eq(stats().free_frames, s0.free_frames - got);
    while ((b = frame_alloc()) != 0)
        got++;
    cr_expect_eq(got, s0.free_frames);
    cr_expect(frame_check());
}

Test(frame, frame0_never_returned_even_if_usable)
{
    paddr_t f;
    while ((f = frame_alloc_contig(1, PAGE_SIZE)) != 0)
        cr_assert_neq(f, 0);
    cr_expect_eq(stats().free_frames, 0);
    cr_expect(frame_is_used(0));
}

#define EXPECT_FREE_PANIC(addr, what)                                                       \
    do {                                                                                   \
        char want_[64];                                                                    \
        snprintf(want_, sizeof(want_), "frame_free(0x%llx)", (unsigned long long)(addr));   \
        cr_expect(HOST_EXPECT_PANIC(frame_free(addr)), "frame_free(0x%llx) did not panic",  \
                  (unsigned long long)(addr));                                             \
        cr_expect(strstr(host_panic_msg, want_), "no address in: %s", host_panic_msg);     \
        cr_expect(strstr(host_panic_msg, what), "want '%s' in: %s", what, host_panic_msg); \
        cr_expect(strstr(host_panic_msg, "caller 0x"), "no caller in: %s", host_panic_msg); \
    } while (0)

Test(frame, free_misuse_panics_with_address)
{
    struct frame_stats s0 = stats();
    paddr_t f = frame_alloc();
    EXPECT_FREE_PANIC(f + 8, "unaligned");
    EXPECT_FREE_PANIC(ARENA, "beyond managed memory");
    EXPECT_FREE_PANIC(GiB(3), "beyond managed memory");
    EXPECT_FREE_PANIC(0x0, "frame 0");
    EXPECT_FREE_PANIC(0x9f000, "not usable memory (reserved");
    EXPECT_FREE_PANIC(0x800000, "kernel");
    EXPECT_FREE_PANIC(0xa00000, "bootloader reclaimable");
    EXPECT_FREE_PANIC(0x3a00000, "ACPI reclaimable");
    EXPECT_FREE_PANIC(0x3a20000, "bad");
    EXPECT_FREE_PANIC(0x2000, "double free"); /* never allocated */
    frame_free(f);
    EXPECT_FREE_PANIC(f, "double free");
    cr_expect_eq(stats().free_frames, s0.free_frames);
    /* A run freed one frame too long: the whole run is checked first, so the
     * panic names the third frame and the first two are still held. */
    paddr_t run = frame_alloc_contig(2, PAGE_SIZE);
    uint64_t digest = frame_state_digest();
    cr_expect(HOST_EXPECT_PANIC(frame_free_contig(run, 3)));
    char want[96];
    snprintf(want, sizeof(want), "frame_free_contig(0x%llx, 3): 0x%llx: double free",
             (unsigned long long)run, (unsigned long long)(run + 2 * PAGE_SIZE));
    cr_expect(strstr(host_panic_msg, want), "%s", host_panic_msg);
    cr_expect(strstr(host_panic_msg, "nothing freed") && strstr(host_panic_msg, "caller 0x"), "%s",
              host_panic_msg);
    cr_expect_eq(stats().free_frames, s0.free_frames - 2);
    cr_expect(frame_is_used(run) && frame_is_used(run + PAGE_SIZE));
    cr_expect_eq(frame_state_digest(), digest);
    frame_free_contig(run, 2);
    cr_expect_eq(stats().free_frames, s0.free_frames);
    cr_expect(frame_check());
}

/* frame_free_contig checks the whole run before it changes anything: every
 * kind of bad call panics, names the first bad address, and leaves the
 * metadata (bitmap and summaries) byte for byte, the free count and the
 * cursor as they were. Memory is wholly allocated first, so each bad run
 * starts with frames that a frame-by-frame free would have given back. */
Test(frame, free_contig_bad_call_changes_nothing)
{
    size_t n = 0;
    paddr_t f;
    while ((f = frame_alloc()) != 0)
        n++;
    frame_free(0x205000); /* a hole: [0x200000, 0x210000) is partly free */
    struct frame_stats s0 = stats();
    paddr_t meta = 0xb00000 + 0x2f00000 - s0.metadata_bytes;
    static uint8_t before[2 * PAGE_SIZE];
    cr_assert_eq(s0.metadata_bytes, sizeof(before));
    memcpy(before, PHYS2VIRT(meta), sizeof(before));
    uint64_t digest = frame_state_digest();
    const struct {
        paddr_t base;
        size_t count;
        paddr_t bad;
        const char *what;
    } bad[] = {
        {0x200000, 16, 0x205000, "double free"},            /* partly free already */
        {0x7fe000, 4, 0x800000, "not usable memory (kernel"}, /* runs into the kernel */
        {0x9d000, 4, 0x9f000, "not usable memory (reserved"},
        {0x3a20000, 2, 0x3a20000, "not usable memory (bad"},
        {0xa00000, 0x200, 0xa00000, "bootloader reclaimable"}, /* not yet reclaimed */
        {0x3a1e000, 4, 0x3a1e000, "ACPI NVS"},
        {meta - 2 * PAGE_SIZE, 3, meta, "frame-allocator metadata"},
        {ARENA - 2 * PAGE_SIZE, 4, ARENA, "beyond managed memory"},
        {0x0, 2, 0x0, "frame 0"},
        {0x200800, 2, 0x200800, "unaligned"},
        {0x200000, 0, 0x200000, "an empty run"},
        {0x200000, (SIZE_MAX >> PAGE_SHIFT) - 0x1ff, 0x200000, "wraps"},
        {0x3a21000, SIZE_MAX, 0x3a21000, "wraps"},
    };
    for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
        char want[96];
        snprintf(want, sizeof(want), "frame_free_contig(0x%llx, %llu)",
                 (unsigned long long)bad[i].base, (unsigned long long)bad[i].count);
        cr_expect(HOST_EXPECT_PANIC(frame_free_contig(bad[i].base, bad[i].count)),
                  "%s did not panic", want);
        cr_expect(strstr(host_panic_msg, want), "want '%s' in: %s", want, host_panic_msg);
        cr_expect(strstr(host_panic_msg, bad[i].what), "want '%s' in: %s", bad[i].what,
                  host_panic_msg);
        if (bad[i].bad != bad[i].base) {
            snprintf(want, sizeof(want), "): 0x%llx: ", (unsigned long long)bad[i].bad);
            cr_expect(strstr(host_panic_msg, want), "want '%s' in: %s", want, host_panic_msg);
        }
        cr_expect(strstr(host_panic_msg, "nothing freed; caller 0x"), "%s", host_panic_msg);
        cr_expect(memcmp(before, PHYS2VIRT(meta), sizeof(before)) == 0,
                  "%s changed the bitmap or the summaries", want);
        cr_expect_eq(frame_state_digest(), digest, "%s changed the allocator's state", want);
        cr_expect_eq(stats().free_frames, s0.free_frames, "%s", want);
    }
    cr_expect(frame_check());
    /* The frames of the refused runs are still held and free normally. */
    frame_free_contig(0x200000, 5);
    frame_free_contig(0x206000, 10);
    frame_free_contig(0x7fe000, 2);
    cr_expect_eq(stats().free_frames, s0.free_frames + 17);
    cr_expect(frame_check());
}

/* Reclaimed bootloader memory borders a usable region: a run across the
 * border is good (two regions of the private map), freed exactly once. */
Test(frame, free_contig_across_adjacent_usable_regions)
{
    frame_reclaim_bootloader();
    while (frame_alloc())
        ;
    struct frame_stats s0 = stats();
    frame_free_contig(0xafe000, 4);
    cr_expect_eq(stats().free_frames, s0.free_frames + 4);
    cr_expect(!frame_is_used(0xaff000) && !frame_is_used(0xb00000));
    cr_expect(frame_check());
    uint64_t digest = frame_state_digest();
    cr_expect(HOST_EXPECT_PANIC(frame_free_contig(0xafc000, 4)));
    cr_expect(strstr(host_panic_msg, "0xafe000: double free"), "%s", host_panic_msg);
    cr_expect_eq(frame_state_digest(), digest);
}

Test(frame, free_misuse_in_a_hole_of_the_map)
{
    static const struct mem_region holey[] = {
        {0x100000, 0x100000, MEM_USABLE},
        {0x300000, 0x100000, MEM_USABLE},
    };
    frame_init(holey, ARRAY_SIZE(holey));
    EXPECT_FREE_PANIC(0x200000, "not in the memory map");
    EXPECT_FREE_PANIC(0x1000, "not in the memory map");
}

Test(frame, reclaim_bootloader_memory)
{
    struct frame_stats s0 = stats();
    uint64_t bytes = frame_reclaim_bootloader();
    cr_expect_eq(bytes, 0x100000);
    struct frame_stats s1 = stats();
    cr_expect_eq(s1.free_frames, s0.free_frames + 0x100);
    cr_expect_eq(s1.usable_frames, s0.usable_frames + 0x100);
    cr_expect_eq(s1.reclaimable_frames, 0);
    cr_expect_eq(s1.reclaimed_frames, 0x100);
    cr_expect(!frame_is_used(0xa00000));
    cr_expect(host_log_contains("reclaimed 1024KiB"), "%s", host_log);
    cr_expect_eq(frame_reclaim_bootloader(), 0); /* once only */
    cr_expect(frame_check());
    /* Reclaimed frames are handed out and can be freed. */
    paddr_t f = frame_alloc_contig(0x100, MiB(1));
    cr_expect(f == 0x200000 || f == 0xa00000 || f == 0x100000 || f >= 0xb00000);
    size_t n = 0;
    bool seen = false;
    while ((f = frame_alloc()) != 0) {
        n++;
        seen |= f >= 0xa00000 && f < 0xb00000;
    }
    cr_expect(seen);
    frame_free(0xa00000 + 0x5000);
    cr_expect_eq(frame_alloc(), 0xa05000);
}

Test(frame, metadata_inside_hhdm_and_zeroed_alloc)
{
    /* With an HHDM covering only 16 MiB, the metadata must lie below 16 MiB:
     * right after init the only used usable frames are frame 0 and it. */
    hhdm_size = MiB(16);
    frame_init(test_map, ARRAY_SIZE(test_map));
    hhdm_size = ARENA;
    uint64_t used = 0;
    for (paddr_t a = PAGE_SIZE; a < ARENA; a += PAGE_SIZE) {
        if (map_type(a) == MEM_USABLE && frame_is_used(a)) {
            cr_expect(a < MiB(16), "metadata frame %#llx outside the HHDM", (unsigned long long)a);
            used++;
        }
    }
    cr_expect_eq(used * PAGE_SIZE, stats().metadata_bytes);
    cr_expect(frame_check());

    paddr_t f;
    frame_init(test_map, ARRAY_SIZE(test_map));
    f = frame_alloc();
    memset(PHYS2VIRT(f), 0x5a, PAGE_SIZE);
    frame_free(f);
#ifdef MM_POISON
    cr_expect_eq(((uint8_t *)PHYS2VIRT(f))[100], 0x99);
#endif
    cr_expect_eq(frame_alloc_zeroed(), f); /* lowest first: the same frame */
    for (size_t k = 0; k < PAGE_SIZE; k++)
        cr_assert_eq(((uint8_t *)PHYS2VIRT(f))[k], 0);
}

Test(frame, no_usable_memory_panics)
{
    static const struct mem_region none[] = {{0x0, 0x100000, MEM_RESERVED}};
    cr_expect(HOST_EXPECT_PANIC(frame_init(none, 1)));
    cr_expect(strstr(host_panic_msg, "no usable memory"), "%s", host_panic_msg);
    static const struct mem_region unsorted[] = {{0x200000, 0x1000, MEM_USABLE},
                                                 {0x100000, 0x1000, MEM_USABLE}};
    cr_expect(HOST_EXPECT_PANIC(frame_init(unsorted, 2)));
}

/* Metadata per GiB, with a PC-like map (a 1 GiB hole below 4 GiB). The bitmap
 * covers the hole too, so the budget is per GiB of the covered span; for
 * 256 GiB that is within 68 KiB per GiB of RAM as well (bitmap and held
 * bits 32 KiB each, summaries 1.5 KiB). */
static void metadata_check(uint64_t ram)
{
    host_arena_init(ram + GiB(1));
    struct mem_region raw[] = {
        {0x0, 0x9fc00, MEM_USABLE},
        {0x9fc00, 0x400, MEM_RESERVED},
        {0xf0000, 0x10000, MEM_RESERVED},
        {0x100000, GiB(3) - 0x100000, MEM_USABLE},
        {GiB(3), GiB(1), MEM_RESERVED},
        {GiB(4), ram - GiB(3), MEM_USABLE},
    }, map[8];
    size_t n = memmap_sanitize(raw, ARRAY_SIZE(raw), map, ARRAY_SIZE(map), 46);
    frame_init(map, n);
    struct frame_stats s = stats();
    double per_gib = (double)s.metadata_bytes / ((double)s.total_frames * PAGE_SIZE / GiB(1));
    cr_expect(per_gib <= 68 * 1024, "%.0f bytes of metadata per GiB", per_gib);
    if (ram >= GiB(64))
        cr_expect(s.metadata_bytes <= KiB(68) * (ram / GiB(1)), "%llu bytes for %llu GiB",
                  (unsigned long long)s.metadata_bytes, (unsigned long long)(ram >> 30));
    cr_log_info("%llu GiB RAM: %llu bytes of metadata, %.0f per GiB of span\n",
                (unsigned long long)(ram >> 30), (unsigned long long)s.metadata_bytes, per_gib);
    cr_expect_eq(s.total_frames, (ram + GiB(1)) / PAGE_SIZE);
    cr_expect_eq(s.free_frames, s.usable_frames);
    /* A few operations at the top and bottom of memory. */
    paddr_t a = frame_alloc(), b = frame_alloc_contig(512, MiB(2));
    cr_expect_eq(a, 0x1000);
    cr_expect(b != 0 && IS_ALIGNED(b, MiB(2)));
    frame_free(a);
    frame_free_contig(b, 512);
    cr_expect_eq(stats().free_frames, s.free_frames);
}

Test(frame, metadata_budget_4g)
{
    metadata_check(GiB(4));
}

Test(frame, metadata_budget_256g, .timeout = 60)
{
    metadata_check(GiB(256));
    cr_expect(frame_check());
}

Test(frame, full_size_map_with_frame0_and_metadata_in_one_entry)
{
    /* MEMMAP_MAX entries; the first, largest one holds frame 0 and the
     * metadata, so the private copy grows by three entries. */
    static struct mem_region big[MEMMAP_MAX];
    big[0] = (struct mem_region){0, MiB(32), MEM_USABLE};
    for (size_t i = 1; i < MEMMAP_MAX; i++)
        big[i] = (struct mem_region){MiB(32) + (i - 1) * 0x2000, 0x1000,
                                     i % 2 ? MEM_USABLE : MEM_RESERVED};
    frame_init(big, MEMMAP_MAX);
    cr_expect(frame_check());
    uint64_t n = 0;
    while (frame_alloc())
        n++;
    cr_expect_eq(n, MiB(32) / PAGE_SIZE - 1 - 1 + MEMMAP_MAX / 2);
    EXPECT_FREE_PANIC(MiB(32) - PAGE_SIZE, "frame-allocator metadata");
    EXPECT_FREE_PANIC(MiB(32) + 0x2000, "reserved");
}

/* frame_free_contig's word-at-a-time path: runs that start and end inside
 * bitmap words and cross several whole words give back exactly their frames. */
Test(frame, free_contig_across_words_is_exact)
{
    struct frame_stats s0 = stats();
    paddr_t pad = frame_alloc_contig(5, PAGE_SIZE); /* make the next run start mid-word */
    cr_assert(pad);
    paddr_t run = frame_alloc_contig(200, PAGE_SIZE);
    cr_assert(run);
    paddr_t after = frame_alloc_contig(3, PAGE_SIZE);
    cr_assert(after);
    cr_assert_eq(stats().free_frames, s0.free_frames - 208);
    frame_free_contig(run, 200);
    cr_expect_eq(stats().free_frames, s0.free_frames - 8);
    for (size_t k = 0; k < 200; k++)
        cr_expect(!frame_is_used(run + k * PAGE_SIZE), "frame %zu still used", k);
    cr_expect(frame_is_used(pad + 4 * PAGE_SIZE) && frame_is_used(after), "a neighbour was freed");
    cr_expect(frame_check());
    cr_expect_eq(frame_alloc_contig(200, PAGE_SIZE), run, "the run is whole again");
    frame_free_contig(run, 200);
    frame_free_contig(after, 3);
    frame_free_contig(pad, 5);
    cr_expect_eq(stats().free_frames, s0.free_frames);
    cr_expect(frame_check());
}

/* A run in a usable region other than the largest (where the heap's slabs
 * often live) is freed exactly like one in the largest. */
Test(frame, free_contig_outside_the_largest_region_is_exact)
{
    struct frame_stats s0 = stats();
    paddr_t run = frame_alloc_contig(16, KiB(64));
    cr_assert(run && run < 0xb00000, "run %#llx: expected below the largest region",
              (unsigned long long)run);
    for (size_t k = 0; k < 16; k++)
        expect_valid(run + k * PAGE_SIZE);
    frame_free_contig(run, 16);
    for (size_t k = 0; k < 16; k++)
        cr_expect(!frame_is_used(run + k * PAGE_SIZE), "frame %zu still used", k);
    cr_expect_eq(stats().free_frames, s0.free_frames);
    cr_expect(frame_check());
    cr_expect(HOST_EXPECT_PANIC(frame_free_contig(run, 16)), "a second free is caught");
    cr_expect(strstr(host_panic_msg, "double free"), "%s", host_panic_msg);
    cr_expect_eq(stats().free_frames, s0.free_frames);
}

/* ---- frame_alloc_contig's small-run path ---------------------------------- */

/* The empty summary levels sit after sum3's sentinel (see frame.c's layout):
 * for the 64 MiB test map, 256 bitmap words, 4 + 1 + 1 + 1 summary words. */
static uint64_t *test_bitmap(void)
{
    struct frame_stats s = stats();
    return PHYS2VIRT(0xb00000 + 0x2f00000 - s.metadata_bytes);
}

/* Bits set in empty1 over words that are not wholly free (stale bits). */
static uint64_t stale_empty_bits(const uint64_t *bitmap, const uint64_t *empty1, uint64_t nbm)
{
    uint64_t n = 0;
    for (uint64_t w = 0; w < nbm; w++)
        n += (empty1[w / 64] >> (w % 64) & 1) && bitmap[w] != 0;
    return n;
}

/* frame_check permits a set empty1 bit over a word that is not wholly free
 * (stale) and rejects a clear one over a wholly free word; empty2 is exact.
 * Map: word 0 = frames 1..63 free, word 1 free, word 2 = frames 128..158
 * free and the rest reserved, word 3 reserved, words 4.. free. */
Test(frame, check_accepts_stale_empty_rejects_hidden)
{
    frame_cache_limit = 0; /* the bitmap layer's own behaviour */
    uint64_t *bitmap = test_bitmap(), *empty1 = bitmap + 256 + 4 + 1 + 1 + 1, *empty2 = empty1 + 4;
    cr_assert(frame_check());
    /* frame_init set word 2's bit before the reserved part was written: a
     * stale bit, which is allowed (so are those at other region ends). */
    cr_assert_neq(bitmap[2], 0);
    cr_expect_neq(empty1[0] & (1ULL << 2), 0);
    uint64_t stale0 = stale_empty_bits(bitmap, empty1, 256);
    cr_expect_geq(stale0, 1);
    /* Word 3 (frames 192..255) is reserved: not wholly free, bit clear. */
    cr_assert_eq(bitmap[3], ~0ULL);
    cr_assert_eq(empty1[0] & (1ULL << 3), 0);
    empty1[0] |= 1ULL << 3;
    cr_expect(frame_check(), "a stale empty bit is permitted");
    /* Word 5 (frames 320..383) is wholly free: clearing its bit hides it. */
    cr_assert_eq(bitmap[5], 0);
    cr_assert_neq(empty1[0] & (1ULL << 5), 0);
    empty1[0] &= ~(1ULL << 5);
    cr_expect(!frame_check(), "a clear empty bit over a wholly free word is caught");
    empty1[0] |= 1ULL << 5;
    cr_expect(frame_check());
    /* The upper level is exact both ways. */
    cr_assert_eq(empty2[0] & 1, 1);
    empty2[0] &= ~1ULL;
    cr_expect(!frame_check(), "a clear empty2 bit over a non-zero empty1 word is caught");
    empty2[0] |= 1;
    empty2[0] |= 1ULL << 10; /* no such empty1 word */
    cr_expect(!frame_check(), "a set empty2 bit past the end is caught");
    empty2[0] &= ~(1ULL << 10);
    cr_expect(frame_check());
    /* 64 frames aligned to 256 KiB: the cursor (word 0) has no room, word 1
     * is the lowest wholly free word. */
    cr_expect_eq(frame_alloc_contig(64, KiB(256)), 0x40000);
    cr_expect_eq(frame_contig_probes, 2, "cursor, word 1");
    cr_expect_eq(empty1[0] & (1ULL << 1), 0, "word 1 is not wholly free any more");
    /* Next: the stale bits over words 2 and 3 cost one extra descent each,
     * once; word 4 is taken. */
    cr_expect_eq(frame_alloc_contig(64, KiB(256)), 0x100000);
    cr_expect_eq(frame_contig_probes, 4, "cursor, stale 2, stale 3, word 4");
    cr_expect_eq(empty1[0] & 0x1f, 0, "the stale bits were cleared");
    cr_expect_eq(stale_empty_bits(bitmap, empty1, 256), stale0 - 1);
    cr_expect(frame_check());
    cr_expect_eq(frame_alloc_contig(64, KiB(256)), 0x140000);
    cr_expect_eq(frame_contig_probes, 2);
    /* frame_alloc takes a frame from a wholly free word without clearing
     * the bit (stale); frame_free of the frame leaves the word wholly free. */
    frame_free_contig(0x40000, 64);
    cr_expect_neq(empty1[0] & (1ULL << 1), 0, "word 1 wholly free again");
    for (paddr_t a = 0x1000; a < 0x80000; a += PAGE_SIZE)
        cr_assert_eq(frame_alloc(), a);
    cr_expect_neq(empty1[0] & (1ULL << 1), 0, "left stale by frame_alloc");
    cr_expect(frame_check());
    for (paddr_t a = 0x40000; a < 0x80000; a += PAGE_SIZE)
        frame_free(a);
    cr_expect(frame_check());
    frame_free(0x1000);
    cr_expect(frame_check());
    /* The last used frame of a word freed one by one: its bit comes back. */
    paddr_t run = frame_alloc_contig(64, KiB(256));
    cr_expect_eq(empty1[run / PAGE_SIZE / 64 / 64] & (1ULL << (run / PAGE_SIZE / 64 % 64)), 0);
    for (int k = 0; k < 64; k++)
        frame_free(run + (uint64_t)k * PAGE_SIZE);
    cr_expect_neq(empty1[run / PAGE_SIZE / 64 / 64] & (1ULL << (run / PAGE_SIZE / 64 % 64)), 0);
    cr_expect(frame_check());
}

/* Every (count, align) of the small path: aligned, inside usable memory,
 * never a frame handed out before; all of it goes back. */
Test(frame, contig_small_runs_aligned_and_fresh)
{
    struct frame_stats s0 = stats();
    static struct { paddr_t base; size_t count; } runs[4096];
    size_t nr = 0, frames = 0;
    /* Each call examines the cursor word and maybe one wholly free word;
     * the stale bits frame_init left cost one more examination each, once. */
    uint64_t *bitmap = test_bitmap(), extra = 0;
    uint64_t stale = stale_empty_bits(bitmap, bitmap + 256 + 4 + 1 + 1 + 1, 256);
    for (int round = 0; round < 6; round++) {
        for (size_t count = 1; count <= 64; count += (count < 8 ? 1 : 7)) {
            for (uint64_t align = PAGE_SIZE; align <= KiB(256); align *= 2) {
                if (nr == ARRAY_SIZE(runs))
                    break;
                frame_contig_probes = 99;
                paddr_t b = frame_alloc_contig(count, align);
                cr_assert_leq(frame_contig_probes, 2 + stale,
                              "contig(%zu, %#llx): %llu words examined", count,
                              (unsigned long long)align, (unsigned long long)frame_contig_probes);
                extra += frame_contig_probes > 2 ? frame_contig_probes - 2 : 0;
                expect_run(b, count, align);
                for (size_t k = 0; k < count; k++) {
                    paddr_t f = b + k * PAGE_SIZE;
                    cr_assert(!is_held[f / PAGE_SIZE], "frame %#llx handed out twice",
                              (unsigned long long)f);
                    is_held[f / PAGE_SIZE] = true;
                }
                runs[nr].base = b;
                runs[nr++].count = count;
                frames += count;
            }
        }
        cr_assert(frame_check(), "round %d", round);
        /* Give every third run back: later rounds reuse the slots. */
        for (size_t i = round % 3; i < nr; i += 3) {
            if (!runs[i].count)
                continue;
            frame_free_contig(runs[i].base, runs[i].count);
            for (size_t k = 0; k < runs[i].count; k++)
                is_held[runs[i].base / PAGE_SIZE + k] = false;
            frames -= runs[i].count;
            runs[i].count = 0;
        }
        cr_assert(frame_check(), "round %d", round);
        cr_assert_eq(stats().free_frames, s0.free_frames - frames);
    }
    cr_expect_leq(extra, stale, "%llu extra examinations, %llu stale bits",
                  (unsigned long long)extra, (unsigned long long)stale);
    for (size_t i = 0; i < nr; i++)
        if (runs[i].count)
            frame_free_contig(runs[i].base, runs[i].count);
    cr_expect_eq(stats().free_frames, s0.free_frames);
    cr_expect(frame_check());
}

/* The heap's pattern on 1 GiB: 16 frames aligned to 64 KiB, the upper 8 given
 * back (a half slab), 10,000 times. Each call examines at most two words (the
 * cursor, then the lowest wholly free one) however many holes lie below;
 * when no wholly free word is left, the first-fit fallback still finds the
 * 32 KiB-aligned holes. */
Test(frame, contig_half_slab_holes_cost_o1, .timeout = 60)
{
    uint64_t ram = GiB(1);
    host_arena_init(ram);
    struct mem_region map[] = {{0, MiB(1), MEM_RESERVED}, {MiB(1), ram - MiB(1), MEM_USABLE}};
    frame_init(map, 2);
    struct frame_stats s0 = stats();
    uint64_t max_probes = 0;
    paddr_t prev = 0;
    for (int k = 0; k < 10000; k++) {
        paddr_t b = frame_alloc_contig(16, KiB(64));
        max_probes = MAX(max_probes, frame_contig_probes);
        cr_assert(b && IS_ALIGNED(b, KiB(64)) && b >= MiB(1) && b < ram, "%#llx",
                  (unsigned long long)b);
        cr_assert(b > prev, "run %d at %#llx after %#llx", k, (unsigned long long)b,
                  (unsigned long long)prev);
        prev = b;
        frame_free_contig(b + 8 * PAGE_SIZE, 8);
        /* and a heap-like pair at the growing end: taken and given back */
        paddr_t t = frame_alloc_contig(16, KiB(64));
        max_probes = MAX(max_probes, frame_contig_probes);
        cr_assert(t && t != b);
        frame_free_contig(t, 16);
    }
    cr_expect_leq(max_probes, 2, "%llu words examined with up to 10,000 holes below",
                  (unsigned long long)max_probes);
    cr_assert(frame_check());
    cr_assert_eq(stats().free_frames, s0.free_frames - 10000 * 8);
    /* Half slabs (8 of a 64 KiB block) and medium chunks (64 frames) too. */
    paddr_t h = frame_alloc_contig(8, KiB(64));
    cr_expect_leq(frame_contig_probes, 2);
    paddr_t m = frame_alloc_contig(64, KiB(64));
    cr_expect_leq(frame_contig_probes, 2);
    cr_expect(h && m && IS_ALIGNED(h, KiB(64)) && IS_ALIGNED(m, KiB(256)));
    /* Use up every wholly free word: then only the holes are left, and the
     * first-fit fallback finds them (a scan: more words examined). */
    paddr_t b;
    while ((b = frame_alloc_contig(64, KiB(256))) != 0)
        ;
    cr_expect_leq(frame_contig_probes, 2, "no wholly free word: fails without a scan");
    cr_expect_eq(frame_alloc_contig(16, KiB(64)) & 0xfff, 0);
    uint64_t holes = 0;
    while ((b = frame_alloc_contig(8, KiB(32))) != 0) {
        cr_assert(IS_ALIGNED(b, KiB(32)) && frame_is_used(b) && frame_is_used(b + 7 * PAGE_SIZE));
        holes++;
    }
    cr_expect(holes >= 10000, "the fallback found %llu of the holes", (unsigned long long)holes);
    cr_expect(frame_check());
}

/* Memory 15/16 free but fragmented: the first frame of every 64 KiB block
 * is taken, so no 256 KiB word and no 64 KiB block is wholly free. A slab
 * (16 frames at 64 KiB) and a medium run (64 frames at 64 KiB) are refused,
 * and once two blocks near the top come free, a half slab and a slab are
 * found there, each examining at most two bitmap words whatever the RAM size
 * (a first-fit scan examines one candidate per 64 KiB block below). */
static void fragmented_blocks_o1(uint64_t ram)
{
    host_arena_init(ram);
    struct mem_region map[] = {{0, MiB(1), MEM_RESERVED}, {MiB(1), ram - MiB(1), MEM_USABLE}};
    frame_init(map, 2);
    paddr_t b, top = 0, below = 0;
    uint64_t n = 0, max_probes = 0;
    while ((b = frame_alloc_contig(1, KiB(64))) != 0) {
        cr_assert(IS_ALIGNED(b, KiB(64)), "%#llx", (unsigned long long)b);
        max_probes = MAX(max_probes, frame_contig_probes);
        n++;
        /* the two highest blocks whose other 15 frames are free (not metadata) */
        if (!frame_is_used(b + 15 * PAGE_SIZE) && b > top) {
            below = top;
            top = b;
        }
    }
    /* every 64 KiB block but those whose first frame is metadata */
    uint64_t meta = stats().metadata_bytes;
    cr_assert(n <= (ram - MiB(1)) / KiB(64) && n >= (ram - MiB(1) - meta) / KiB(64),
              "%llu blocks", (unsigned long long)n);
    cr_expect_leq(max_probes, 2, "taking a block's first frame examined %llu words",
                  (unsigned long long)max_probes);
    cr_assert(below && top > below);
    struct frame_stats s = stats();
    cr_assert_geq(s.free_frames, s.usable_frames / 16 * 15 - 256);
    static const struct { size_t count; uint64_t align; } refused[] = {
        {16, KiB(64)}, {64, KiB(64)}, {64, KiB(256)}, {32, PAGE_SIZE}, {17, KiB(64)},
    };
    for (size_t i = 0; i < ARRAY_SIZE(refused); i++) {
        cr_expect_eq(frame_alloc_contig(refused[i].count, refused[i].align), 0, "contig(%zu, %#llx)",
                     refused[i].count, (unsigned long long)refused[i].align);
        cr_expect_leq(frame_contig_probes, 2, "contig(%zu, %#llx) refused after %llu words",
                      refused[i].count, (unsigned long long)refused[i].align,
                      (unsigned long long)frame_contig_probes);
    }
    cr_expect_eq(stats().free_frames, s.free_frames);
    frame_free(below);
    frame_free(top);
    frame_drain_cpu_caches(); /* O(1) in the bitmap (a failed search would drain, then retry) */
    /* A half slab and a slab: the lowest free block, then the other one. */
    cr_expect_eq(frame_alloc_contig(8, KiB(64)), below);
    cr_expect_leq(frame_contig_probes, 2, "half slab after %llu words",
                  (unsigned long long)frame_contig_probes);
    cr_expect_eq(frame_alloc_contig(16, KiB(64)), top);
    cr_expect_leq(frame_contig_probes, 2, "slab after %llu words",
                  (unsigned long long)frame_contig_probes);
    cr_expect_eq(frame_alloc_contig(16, KiB(64)), 0, "no free block is left");
    cr_expect_leq(frame_contig_probes, 2);
    cr_log_info("%llu MiB: %llu blocks, %llu frames free, contig answered after <= 2 words\n",
                (unsigned long long)(ram >> 20), (unsigned long long)n,
                (unsigned long long)s.free_frames);
    cr_expect(frame_check());
}

Test(frame, contig_o1_fragmented_256m)
{
    fragmented_blocks_o1(MiB(256));
}

Test(frame, contig_o1_fragmented_16g, .timeout = 60)
{
    fragmented_blocks_o1(GiB(16));
}

/* Exhaustion: a failed call returns 0 and changes nothing. */
Test(frame, contig_exhaustion_changes_nothing)
{
    /* Every frame taken, then the odd frames given back: single frames are
     * free, no two adjacent, none 8 KiB-aligned. */
    size_t n = 0;
    paddr_t f;
    while ((f = frame_alloc()) != 0)
        held[n++] = f;
    size_t back = 0;
    for (size_t i = 0; i < n; i++)
        if ((held[i] / PAGE_SIZE) % 2 == 1) {
            frame_free(held[i]);
            back++;
        }
    struct frame_stats s1 = stats();
    cr_assert_eq(s1.free_frames, back);
    static const struct { size_t count; uint64_t align; } asks[] = {
        {2, PAGE_SIZE}, {16, KiB(64)}, {8, KiB(64)}, {64, KiB(64)}, {64, KiB(256)},
        {128, PAGE_SIZE}, {512, MiB(2)}, {1, KiB(8)}, {3, KiB(16)},
    };
    for (size_t i = 0; i < ARRAY_SIZE(asks); i++) {
        cr_expect_eq(frame_alloc_contig(asks[i].count, asks[i].align), 0, "contig(%zu, %#llx)",
                     asks[i].count, (unsigned long long)asks[i].align);
        cr_expect_eq(stats().free_frames, s1.free_frames);
        cr_expect(frame_check());
    }
    /* One frame per request still works. */
    paddr_t one = frame_alloc_contig(1, PAGE_SIZE);
    cr_expect(one && !is_held[0]);
    cr_expect_eq(stats().free_frames, s1.free_frames - 1);
    frame_free(one);
    cr_expect(frame_check());
}

/* Random mixed frame_alloc / frame_free / frame_alloc_contig /
 * frame_free_contig against a model of the free frames; frame_check after
 * every few operations; a failed contig only when the model has no run. */
static bool model_free[NFRAMES];

static bool model_has_run(size_t count, uint64_t step)
{
    for (uint64_t s = step; s + count <= NFRAMES; s += step) {
        size_t k = 0;
        while (k < count && model_free[s + k])
            k++;
        if (k == count)
            return true;
    }
    return false;
}

Test(frame, contig_mixed_random_against_model, .timeout = 60)
{
    struct frame_stats s0 = stats();
    for (paddr_t a = 0; a < ARENA; a += PAGE_SIZE)
        model_free[a / PAGE_SIZE] = !frame_is_used(a);
    static struct { paddr_t base; size_t count; } runs[NFRAMES];
    size_t nr = 0, held_frames = 0, fails = 0;
    uint64_t probes = 0, calls = 0;
    srand(5);
    for (int op = 0; op < 60000; op++) {
        int r = rand() % 100;
        int alloc_pct = (op / 15000) % 2 ? 35 : 65; /* drift: fill up, then drain */
        if (r < alloc_pct / 2) {
            paddr_t f = frame_alloc();
            if (!f) {
                cr_assert_eq(stats().free_frames, 0);
                continue;
            }
            cr_assert(model_free[f / PAGE_SIZE], "op %d: frame %#llx not free", op,
                      (unsigned long long)f);
            model_free[f / PAGE_SIZE] = false;
            runs[nr].base = f;
            runs[nr++].count = 1;
            held_frames++;
        } else if (r < alloc_pct) {
            static const size_t counts[] = {1, 2, 3, 4, 8, 8, 16, 16, 16, 32, 64, 64, 100, 512};
            size_t count = counts[rand() % ARRAY_SIZE(counts)];
            uint64_t align = PAGE_SIZE << (rand() % 10);
            paddr_t b = frame_alloc_contig(count, align);
            calls++;
            probes += frame_contig_probes;
            if (!b) {
                cr_assert(!model_has_run(count, align / PAGE_SIZE),
                          "op %d: contig(%zu, %#llx) failed with such a run free", op, count,
                          (unsigned long long)align);
                fails++;
                continue;
            }
            cr_assert(IS_ALIGNED(b, align));
            for (size_t k = 0; k < count; k++) {
                uint64_t f = b / PAGE_SIZE + k;
                cr_assert(f < NFRAMES && model_free[f], "op %d: contig frame %#llx not free", op,
                          (unsigned long long)f * PAGE_SIZE);
                model_free[f] = false;
            }
            runs[nr].base = b;
            runs[nr++].count = count;
            held_frames += count;
        } else if (nr) {
            size_t i = (size_t)rand() % nr;
            if (runs[i].count == 1 && rand() % 2)
                frame_free(runs[i].base);
            else
                frame_free_contig(runs[i].base, runs[i].count);
            for (size_t k = 0; k < runs[i].count; k++)
                model_free[runs[i].base / PAGE_SIZE + k] = true;
            held_frames -= runs[i].count;
            runs[i] = runs[--nr];
        }
        if (op % 500 == 0) {
            cr_assert(frame_check(), "op %d", op);
            cr_assert_eq(stats().free_frames, s0.free_frames - held_frames, "op %d", op);
        }
    }
    cr_log_info("contig: %llu calls, %zu failed, %.1f words examined on average\n",
                (unsigned long long)calls, fails, (double)probes / (double)calls);
    cr_expect(fails > 10, "memory never ran short (%zu failures)", fails);
    while (nr) {
        nr--;
        frame_free_contig(runs[nr].base, runs[nr].count);
    }
    cr_expect_eq(stats().free_frames, s0.free_frames);
    cr_expect(frame_check());
}

/* frame_alloc_below: the lowest free frames below the limit, each once and
 * marked used; a refusal (nothing free below the limit) changes nothing;
 * a frame freed below the limit is the next one handed out. */
Test(frame, alloc_below_takes_lowest_frames_then_refuses)
{
    struct frame_stats s0 = stats();
    uint64_t low = 0x9f000 / PAGE_SIZE - 1; /* usable frames below 1 MiB, frame 0 excepted */
    paddr_t prev = 0;
    for (uint64_t k = 0; k < low; k++) {
        paddr_t f = frame_alloc_below(MiB(1));
        cr_assert_eq(f, prev + PAGE_SIZE, "frame %llu: got %#llx", (unsigned long long)k,
                     (unsigned long long)f);
        cr_assert(frame_is_used(f));
        prev = f;
    }
    cr_expect_eq(stats().free_frames, s0.free_frames - low);
    uint64_t digest = frame_state_digest();
    cr_expect_eq(frame_alloc_below(MiB(1)), 0, "a frame above the limit was handed out");
    cr_expect_eq(frame_alloc_below(0), 0);
    cr_expect_eq(frame_state_digest(), digest, "a refusal changed the allocator");
    frame_free(0x5000);
    cr_expect_eq(frame_alloc_below(MiB(1)), 0x5000);
    cr_expect_eq(frame_alloc(), 0x100000, "frame_alloc disagrees after alloc_below");
    cr_expect(frame_check());
    for (paddr_t f = PAGE_SIZE; f <= prev; f += PAGE_SIZE)
        frame_free(f);
    frame_free(0x100000);
    cr_expect_eq(stats().free_frames, s0.free_frames);
    cr_expect(frame_check());
}

/* Per-CPU frame caches. The test thread stands for CPU k by setting
 * host_cpu_index (tests/tsan/tsan_frame.c runs real threads at once). */
static void on_cpu(unsigned k)
{
    host_cpu_index = k;
}

/* The held bits (one per frame, after the bitmap and the three summary
 * trees of 4 + 1 + 1 + sentinel words each, for this map). */
static uint64_t *test_held(void)
{
    return test_bitmap() + NFRAMES / 64 + 3 * (4 + 1 + 1 + 1);
}

/* A frame sitting in another CPU's cache is free: freeing it again on this
 * CPU panics with today's double-free message and changes nothing, for
 * frame_free and for frame_free_contig. */
Test(frame, cache_double_free_of_frame_in_another_cpus_cache_panics)
{
    on_cpu(1);
    paddr_t f = frame_alloc();
    cr_assert(f);
    frame_free(f); /* now in CPU 1's cache */
    cr_assert_eq(frame_cache_count(1), 32, "a refill of 32, one taken and given back");
    on_cpu(0);
    uint64_t digest = frame_state_digest();
    struct frame_stats s0 = stats();
    char want[96];
    snprintf(want, sizeof(want), "frame_free(0x%llx): double free (frame is already free); caller",
             (unsigned long long)f);
    cr_expect(HOST_EXPECT_PANIC(frame_free(f)), "double free of a frame in CPU 1's cache");
    cr_expect(strstr(host_panic_msg, want), "want '%s' in: %s", want, host_panic_msg);
    cr_expect(HOST_EXPECT_PANIC(frame_free_contig(f, 1)));
    cr_expect(strstr(host_panic_msg, "double free"), "%s", host_panic_msg);
    cr_expect_eq(frame_state_digest(), digest, "a refused free changed the allocator");
    cr_expect_eq(stats().free_frames, s0.free_frames);
    cr_expect_eq(frame_cache_count(0), 0);
    cr_expect_eq(frame_cache_count(1), 32);
    /* And on its own CPU, and after the frame went back to the bitmap. */
    on_cpu(1);
    cr_expect(HOST_EXPECT_PANIC(frame_free(f)));
    cr_expect(strstr(host_panic_msg, want), "%s", host_panic_msg);
    cr_expect_eq(frame_drain_cpu_caches(), 32);
    cr_expect(HOST_EXPECT_PANIC(frame_free(f)));
    cr_expect(strstr(host_panic_msg, want), "%s", host_panic_msg);
    cr_expect(frame_check());
    on_cpu(0);
}

/* Memory is exhausted on CPU 0 while CPUs 1 and 2 hold free frames in their
 * caches: frame_alloc and frame_alloc_contig drain those caches and succeed;
 * only when every cache is empty do they fail. */
Test(frame, cache_oom_finds_frames_in_other_cpus_caches)
{
    struct frame_stats s0 = stats();
    size_t n = 0;
    paddr_t f;
    while ((f = frame_alloc()) != 0)
        held[n++] = f;
    cr_assert_eq(n, s0.free_frames);
    cr_assert_eq(stats().free_frames, 0);
    on_cpu(1);
    for (size_t k = 0; k < 5; k++)
        frame_free(held[--n]);
    /* a 64 KiB-aligned block of 16 frames, freed one by one on CPU 2 */
    size_t blk = 0;
    while (held[blk] % KiB(64) || held[blk + 15] != held[blk] + 15 * PAGE_SIZE)
        blk++;
    on_cpu(2);
    for (size_t k = blk; k < blk + 16; k++)
        frame_free(held[k]);
    cr_expect_eq(frame_cache_count(1), 5);
    cr_expect_eq(frame_cache_count(2), 16);
    cr_expect_eq(stats().free_frames, 21);
    on_cpu(0);
    paddr_t run = frame_alloc_contig(16, KiB(64));
    cr_expect_eq(run, held[blk], "the block in CPU 2's cache");
    cr_expect_eq(frame_cache_count(1), 0, "drained");
    cr_expect_eq(frame_cache_count(2), 0, "drained");
    paddr_t got[5];
    for (size_t k = 0; k < 5; k++) {
        got[k] = frame_alloc();
        cr_expect(got[k], "frame %zu of CPU 1's cache", k);
    }
    cr_expect_eq(frame_alloc(), 0, "nothing is left anywhere");
    cr_expect_eq(frame_alloc_contig(1, PAGE_SIZE), 0);
    cr_expect(frame_check());
    for (size_t k = 0; k < 5; k++)
        frame_free(got[k]);
    frame_free_contig(run, 16);
    for (size_t k = 0; k < n; k++)
        if (k < blk || k >= blk + 16)
            frame_free(held[k]);
    cr_expect_eq(stats().free_frames, s0.free_frames);
    cr_expect(frame_check());
}

/* Statistics count cached frames as free, frame_is_used calls them free,
 * a frame freed on another CPU lands in that CPU's cache, and draining
 * gives every cache back without changing the free count. */
Test(frame, cache_counts_with_caches)
{
    struct frame_stats s0 = stats();
    paddr_t f[4][8];
    for (unsigned c = 0; c < 4; c++) {
        on_cpu(c);
        for (int k = 0; k < 8; k++)
            f[c][k] = frame_alloc();
    }
    cr_expect_eq(stats().free_frames, s0.free_frames - 32);
    for (unsigned c = 0; c < 4; c++)
        cr_expect_eq(frame_cache_count(c), 24, "cache %u: 32 refilled, 8 taken", c);
    /* CPU 3 frees what CPU 0 took: it lands in CPU 3's cache */
    on_cpu(3);
    for (int k = 0; k < 8; k++) {
        cr_expect(frame_is_used(f[0][k]));
        frame_free(f[0][k]);
        cr_expect(!frame_is_used(f[0][k]), "a cached frame is free");
    }
    cr_expect_eq(frame_cache_count(3), 32);
    cr_expect_eq(frame_cache_count(0), 24);
    cr_expect_eq(stats().free_frames, s0.free_frames - 24);
    cr_expect(frame_check());
    on_cpu(0);
    cr_expect_eq(frame_alloc(), f[0][0] + 8 * PAGE_SIZE, "CPU 0 takes from its own cache");
    frame_free(f[0][0] + 8 * PAGE_SIZE);
    cr_expect_eq(frame_drain_cpu_caches(), 24 + 24 + 24 + 32);
    for (unsigned c = 0; c < CPU_MAX; c++)
        cr_expect_eq(frame_cache_count(c), 0);
    cr_expect_eq(stats().free_frames, s0.free_frames - 24);
    cr_expect(!frame_is_used(f[0][3]));
    for (unsigned c = 1; c < 4; c++)
        for (int k = 0; k < 8; k++)
            frame_free(f[c][k]);
    frame_drain_cpu_caches();
    cr_expect_eq(stats().free_frames, s0.free_frames);
    cr_expect(frame_check());
    /* with every cache empty, the lowest frames come first again */
    cr_expect_eq(frame_alloc(), 0x1000);
}

/* frame_check catches a corrupted cache: a cached frame marked held, a
 * cached frame free in the bitmap, a frame neither held, free nor cached
 * (lost), and an impossible count. */
Test(frame, cache_check_catches_corruption)
{
    uint64_t *bitmap = test_bitmap(), *heldb = test_held();
    on_cpu(1);
    paddr_t a = frame_alloc(), b = frame_alloc();
    frame_free(a); /* a is cached, b held */
    on_cpu(0);
    uint64_t ia = a / PAGE_SIZE, ib = b / PAGE_SIZE;
    cr_assert(frame_check());
    cr_assert_eq(heldb[ia / 64] & (1ULL << (ia % 64)), 0, "a cached frame is not held");
    cr_assert_neq(heldb[ib / 64] & (1ULL << (ib % 64)), 0, "a held frame is held");
    heldb[ia / 64] |= 1ULL << (ia % 64);
    cr_expect(!frame_check(), "a cached frame marked held");
    heldb[ia / 64] &= ~(1ULL << (ia % 64));
    cr_assert(frame_check());
    bitmap[ia / 64] &= ~(1ULL << (ia % 64));
    cr_expect(!frame_check(), "a cached frame free in the bitmap");
    bitmap[ia / 64] |= 1ULL << (ia % 64);
    cr_assert(frame_check());
    heldb[ib / 64] &= ~(1ULL << (ib % 64));
    cr_expect(!frame_check(), "a used frame neither held nor cached");
    heldb[ib / 64] |= 1ULL << (ib % 64);
    cr_assert(frame_check());
    frame_free(b);
    cr_expect(frame_check());
}
