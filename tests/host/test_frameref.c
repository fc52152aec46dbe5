/* Frame reference counts (mm/frameref.c) on a 3 GiB host arena (lazily
 * backed): share/put counts, saturation at 255 refused with nothing changed,
 * a GiB's array allocated on its first shared frame and freed with its last
 * (the frame allocator's free count back to its baseline), frames in
 * different GiBs, misuse panics, allocation failure on a small full arena,
 * and threads standing for CPUs sharing and putting at once with exact counts
 * afterwards (including GiBs whose array comes and goes under them). */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdlib.h>

#include "arch/x86_64/cpu_local.h"
#include "lib/string.h"
#include "mm/frame.h"
#include "mm/frameref.h"
#include "mm/memmap.h"
#include "mm/mm.h"
#include "support.h"

#define ARENA GiB(3)

static const struct mem_region big_map[] = {
    {0x0, 0x9f000, MEM_USABLE},
    {0x100000, GiB(3) - 0x100000, MEM_USABLE},
};

static uint64_t free_frames(void)
{
    struct frame_stats s;
    frame_get_stats(&s);
    return s.free_frames;
}

static void setup(void)
{
    host_arena_init(ARENA);
    host_log_clear();
    host_cpu_index = 0;
    frame_init(big_map, ARRAY_SIZE(big_map));
    frameref_init();
}

static void teardown(void)
{
    host_arena_free();
}

TestSuite(frameref, .init = setup, .fini = teardown);

/* The directory's bytes: 3 GiB -> 3 entries of 16 bytes, one page. */
#define DIR_BYTES PAGE_SIZE

Test(frameref, nothing_allocated_before_the_first_share)
{
    uint64_t f0 = free_frames();
    paddr_t f = frame_alloc();
    cr_assert(f);
    cr_expect_eq(frameref_metadata_bytes(), 0);
    cr_expect_eq(frameref_extra(f), 0);
    cr_expect(frameref_put(f), "an unshared frame's put must say 'last reference'");
    cr_expect_eq(frameref_metadata_bytes(), 0);
    cr_expect_eq(free_frames(), f0 - 1);
    cr_expect(frameref_check());
    frame_free(f);
}

Test(frameref, share_and_put_counts)
{
    uint64_t f0 = free_frames();
    paddr_t f = frame_alloc();
    cr_assert(f);
    for (unsigned i = 1; i <= 3; i++) {
        cr_assert(frameref_share(f));
        cr_expect_eq(frameref_extra(f), i);
    }
    cr_expect_eq(frameref_shared_frames(), 1);
    cr_expect_eq(frameref_metadata_bytes(), DIR_BYTES + FRAMEREF_ARRAY_BYTES);
    cr_expect_eq(free_frames(), f0 - 1 - DIR_BYTES / PAGE_SIZE - FRAMEREF_ARRAY_BYTES / PAGE_SIZE);
    cr_expect(frameref_check());
    for (unsigned i = 3; i >= 1; i--) {
        cr_expect(!frameref_put(f), "others still hold it (extra %u)", i);
        cr_expect_eq(frameref_extra(f), i - 1);
    }
    cr_expect_eq(frameref_shared_frames(), 0);
    cr_expect_eq(frameref_metadata_bytes(), DIR_BYTES, "the array outlived the GiB's last shared frame");
    cr_expect(frameref_put(f), "the last reference");
    cr_expect_eq(frameref_extra(f), 0);
    cr_expect(frameref_check());
    frame_free(f);
    /* only the directory stays */
    cr_expect_eq(free_frames(), f0 - DIR_BYTES / PAGE_SIZE);
    cr_expect(frame_check());
}

Test(frameref, saturation_refused_with_nothing_changed)
{
    paddr_t f = frame_alloc(), g = frame_alloc();
    cr_assert(f && g);
    for (unsigned i = 0; i < FRAMEREF_MAX; i++)
        cr_assert(frameref_share(f), "share %u", i);
    cr_assert(frameref_share(g));
    uint64_t digest = frame_state_digest(), meta = frameref_metadata_bytes();
    cr_expect(!frameref_share(f), "a 256th extra reference");
    cr_expect_eq(frameref_extra(f), FRAMEREF_MAX);
    cr_expect_eq(frameref_extra(g), 1, "a neighbour changed");
    cr_expect_eq(frameref_shared_frames(), 2);
    cr_expect_eq(frame_state_digest(), digest);
    cr_expect_eq(frameref_metadata_bytes(), meta);
    cr_expect(frameref_check());
    for (unsigned i = 0; i < FRAMEREF_MAX; i++)
        cr_assert(!frameref_put(f));
    cr_expect(frameref_put(f));
    cr_expect(!frameref_put(g));
    cr_expect(frameref_put(g));
    cr_expect_eq(frameref_metadata_bytes(), DIR_BYTES);
    cr_expect(frameref_check());
    frame_free(f);
    frame_free(g);
}

/* Frames in GiB 0, 1 and 2 (frameref counts any managed frame; these need
 * not be allocated). */
Test(frameref, arrays_per_gib)
{
    uint64_t f0 = free_frames();
    const paddr_t fr[] = {0x200000, GiB(1) + 0x5000, GiB(1) + GiB(1) / 2, GiB(2) + GiB(1) - PAGE_SIZE};
    for (unsigned i = 0; i < ARRAY_SIZE(fr); i++)
        cr_assert(frameref_share(fr[i]));
    cr_expect_eq(frameref_metadata_bytes(), DIR_BYTES + 3 * FRAMEREF_ARRAY_BYTES);
    cr_expect_eq(frameref_shared_frames(), 4);
    cr_expect_eq(free_frames(), f0 - (DIR_BYTES + 3 * FRAMEREF_ARRAY_BYTES) / PAGE_SIZE);
    cr_expect(frameref_check());
    /* GiB 1 has two shared frames: its array stays until both are back */
    cr_expect(!frameref_put(fr[1]));
    cr_expect_eq(frameref_metadata_bytes(), DIR_BYTES + 3 * FRAMEREF_ARRAY_BYTES);
    cr_expect(!frameref_put(fr[2]));
    cr_expect_eq(frameref_metadata_bytes(), DIR_BYTES + 2 * FRAMEREF_ARRAY_BYTES);
    cr_expect_eq(frameref_extra(fr[0]), 1);
    cr_expect_eq(frameref_extra(fr[3]), 1);
    cr_expect(frameref_check());
    /* sharing in GiB 1 again allocates a fresh, zeroed array */
    cr_assert(frameref_share(fr[1]));
    cr_expect_eq(frameref_extra(fr[1]), 1);
    cr_expect_eq(frameref_extra(fr[2]), 0);
    cr_expect(!frameref_put(fr[1]));
    cr_expect(!frameref_put(fr[0]));
    cr_expect(!frameref_put(fr[3]));
    cr_expect_eq(frameref_shared_frames(), 0);
    cr_expect_eq(frameref_metadata_bytes(), DIR_BYTES);
    cr_expect_eq(free_frames(), f0 - DIR_BYTES / PAGE_SIZE);
    cr_expect(frameref_check());
    cr_expect(frame_check());
}

Test(frameref, misuse_panics)
{
    cr_expect(HOST_EXPECT_PANIC(frameref_share(0x200010)));
    cr_expect(strstr(host_panic_msg, "frameref_share"), "%s", host_panic_msg);
    cr_expect(HOST_EXPECT_PANIC(frameref_put(ARENA)));
    cr_expect(HOST_EXPECT_PANIC(frameref_extra(GiB(64))));
    cr_expect_eq(frameref_metadata_bytes(), 0);
    cr_expect(frameref_check());
}

/* A frame allocator without a free 256 KiB run: share refuses, nothing changes. */
Test(frameref, no_memory_for_an_array)
{
    paddr_t f = 0x300000;
    cr_assert(frameref_share(f)); /* the directory and GiB 0's array exist */
    /* take every free frame */
    uint64_t taken = 0;
    paddr_t head = 0;
    for (paddr_t p; (p = frame_alloc_contig(64, FRAMEREF_ARRAY_BYTES)) != 0; taken++) {
        *(paddr_t *)PHYS2VIRT(p) = head;
        head = p;
    }
    cr_expect_eq(frameref_metadata_bytes(), DIR_BYTES + FRAMEREF_ARRAY_BYTES);
    uint64_t digest = frame_state_digest();
    cr_expect(!frameref_share(GiB(2)), "no 256 KiB run for GiB 2's array");
    cr_expect_eq(frameref_extra(GiB(2)), 0);
    cr_expect_eq(frameref_shared_frames(), 1);
    cr_expect_eq(frameref_metadata_bytes(), DIR_BYTES + FRAMEREF_ARRAY_BYTES);
    cr_expect_eq(frame_state_digest(), digest);
    /* GiB 0's array exists: more shares there still work */
    cr_expect(frameref_share(f + PAGE_SIZE));
    cr_expect(!frameref_put(f + PAGE_SIZE));
    cr_expect(frameref_check());
    while (head) {
        paddr_t next = *(paddr_t *)PHYS2VIRT(head);
        frame_free_contig(head, 64);
        head = next;
    }
    cr_expect(!frameref_put(f));
    cr_expect_eq(frameref_metadata_bytes(), DIR_BYTES);
    cr_expect(taken > 0);
}

/* ---- threads standing for CPUs ---- */
#define THREADS 4

struct storm {
    const paddr_t *frames;
    unsigned nframes;
    unsigned max_each; /* references one thread holds on a frame at most */
    unsigned ops;
    unsigned cpu;
    unsigned held[64]; /* this thread's references per frame */
    unsigned bad;      /* answers that contradict the counts */
};

static void *storm_thread(void *arg)
{
    struct storm *s = arg;
    host_cpu_index = s->cpu;
    unsigned seed = 0x9e3779b9u * (s->cpu + 1);
    for (unsigned k = 0; k < s->ops; k++) {
        seed = seed * 1103515245u + 12345u;
        unsigned i = (seed >> 8) % s->nframes;
        bool put = (seed >> 20) & 1;
        if (put && s->held[i]) {
            /* the main thread holds the base reference: never the last one */
            if (frameref_put(s->frames[i]))
                s->bad++;
            s->held[i]--;
        } else if (!put && s->held[i] < s->max_each) {
            if (!frameref_share(s->frames[i]))
                s->bad++; /* totals stay <= 255: a refusal is wrong */
            else
                s->held[i]++;
        }
        if ((k & 255) == 0 && frameref_extra(s->frames[i]) < s->held[i])
            s->bad++;
    }
    return NULL;
}

static void run_storm(const paddr_t *frames, unsigned n, unsigned max_each, unsigned ops)
{
    static struct storm st[THREADS];
    pthread_t t[THREADS];
    cr_assert(n <= 64 && THREADS * max_each <= FRAMEREF_MAX);
    uint64_t f0 = free_frames(), meta0 = frameref_metadata_bytes();
    for (unsigned c = 0; c < THREADS; c++) {
        memset(&st[c], 0, sizeof(st[c]));
        st[c] = (struct storm){.frames = frames, .nframes = n, .max_each = max_each, .ops = ops, .cpu = c};
        cr_assert(pthread_create(&t[c], NULL, storm_thread, &st[c]) == 0);
    }
    for (unsigned c = 0; c < THREADS; c++)
        pthread_join(t[c], NULL);
    uint64_t shared = 0;
    for (unsigned i = 0; i < n; i++) {
        unsigned want = 0;
        for (unsigned c = 0; c < THREADS; c++)
            want += st[c].held[i];
        cr_expect_eq(frameref_extra(frames[i]), want, "frame %u", i);
        shared += want > 0;
    }
    for (unsigned c = 0; c < THREADS; c++)
        cr_expect_eq(st[c].bad, 0, "thread %u saw %u wrong answers", c, st[c].bad);
    cr_expect_eq(frameref_shared_frames(), shared);
    cr_expect(frameref_check());
    /* give everything back, every thread's references on its own CPU */
    for (unsigned c = 0; c < THREADS; c++) {
        host_cpu_index = c;
        for (unsigned i = 0; i < n; i++)
            while (st[c].held[i]--)
                cr_expect(!frameref_put(frames[i]));
    }
    host_cpu_index = 0;
    for (unsigned i = 0; i < n; i++)
        cr_expect(frameref_put(frames[i]), "frame %u: base reference not the last", i);
    cr_expect_eq(frameref_shared_frames(), 0);
    cr_expect(frameref_check());
    uint64_t dir = meta0 ? 0 : DIR_BYTES;
    cr_expect_eq(frameref_metadata_bytes(), meta0 + dir);
    cr_expect_eq(free_frames(), f0 - dir / PAGE_SIZE);
    cr_expect(frame_check());
}

/* Few frames, one reference each at most: every GiB's array comes and goes
 * all the time under the other threads (the pin/free handshake). */
Test(frameref, threads_array_churn)
{
    const paddr_t fr[] = {0x400000, 0x401000, GiB(1) + 0x1000, GiB(2) + 0x2000};
    run_storm(fr, ARRAY_SIZE(fr), 1, 200000);
}

/* Many frames in two GiBs, up to 60 references per thread (240 in all). */
Test(frameref, threads_exact_counts)
{
    paddr_t fr[64];
    for (unsigned i = 0; i < 64; i++)
        fr[i] = (i & 1 ? GiB(1) : 0x100000) + (paddr_t)i * 0x3000;
    run_storm(fr, 64, 60, 200000);
}
