/* In-kernel tests of the frame reference counts (mm/frameref.h): counts,
 * saturation, a GiB's array allocated with its first shared frame and freed
 * with its last (the free frame count back to its baseline), frames of
 * another GiB when the machine has one, and every CPU sharing and putting at
 * once (smp_run_on_all) with exact counts afterwards. Frames shared by
 * nobody else are used: fresh ones from frame_alloc, and for other GiBs
 * frame numbers whose count is 0 (frameref counts any managed frame; no
 * memory is touched through them). */
#include "arch/x86_64/cpu_local.h"
#include "arch/x86_64/smp.h"
#include "lib/printf.h"
#include "lib/string.h"
#include "mm/frame.h"
#include "mm/frameref.h"
#include "test/ktest.h"

static uint64_t total_frames(void)
{
    struct frame_stats s;
    frame_get_stats(&s);
    return s.total_frames;
}

KTEST(frameref_share_put_and_saturation)
{
    paddr_t f = frame_alloc();
    KT_ASSERT(f != 0);
    uint64_t shared0 = frameref_shared_frames();
    KT_EXPECT(frameref_extra(f) == 0);
    for (unsigned i = 1; i <= FRAMEREF_MAX; i++)
        if (!frameref_share(f)) {
            KT_EXPECT(false, "share %u refused", i);
            break;
        }
    KT_EXPECT(frameref_extra(f) == FRAMEREF_MAX, "extra %u", frameref_extra(f));
    uint64_t meta = frameref_metadata_bytes();
    KT_EXPECT(!frameref_share(f), "a 256th extra reference");
    KT_EXPECT(frameref_extra(f) == FRAMEREF_MAX && frameref_metadata_bytes() == meta,
              "a refused share changed something");
    KT_EXPECT(frameref_shared_frames() == shared0 + 1);
    KT_EXPECT(frameref_check());
    unsigned early = 0;
    for (unsigned i = 0; i < FRAMEREF_MAX; i++)
        early += frameref_put(f);
    KT_EXPECT(early == 0, "%u puts said 'last' while others held the frame", early);
    KT_EXPECT(frameref_put(f), "the owner's put is the last");
    KT_EXPECT(frameref_extra(f) == 0 && frameref_shared_frames() == shared0);
    KT_EXPECT(frameref_check());
    frame_free(f);
}

/* The array accounting needs a machine where nothing else is shared, so that
 * the GiBs used here have no array before. */
KTEST(frameref_arrays_come_and_go)
{
    if (frameref_shared_frames() != 0) {
        kprintf("ktest: (%llu frames shared by others: array accounting skipped)\n",
                (unsigned long long)frameref_shared_frames());
        return;
    }
    paddr_t f = frame_alloc();
    KT_ASSERT(f != 0);
    /* the directory exists after the first share ever: make it exist */
    KT_ASSERT(frameref_share(f));
    KT_EXPECT(!frameref_put(f));
    uint64_t meta0 = frameref_metadata_bytes(), free0 = ktest_free_frames();
    KT_EXPECT(meta0 > 0 && meta0 % PAGE_SIZE == 0, "directory %llu bytes", (unsigned long long)meta0);

    paddr_t g = f ^ PAGE_SIZE; /* same GiB (f's 2-frame buddy) */
    KT_ASSERT(frameref_share(f));
    KT_ASSERT(frameref_share(g));
    KT_EXPECT(frameref_metadata_bytes() == meta0 + FRAMEREF_ARRAY_BYTES);
    KT_EXPECT(ktest_free_frames() == free0 - FRAMEREF_ARRAY_BYTES / PAGE_SIZE, "free %llu, before %llu",
              (unsigned long long)ktest_free_frames(), (unsigned long long)free0);
    /* another GiB, when there is one */
    /* another GiB, when there is one: GiB 1 (or GiB 0 when f is above it) */
    paddr_t h = (f < GiB(1) ? GiB(1) : 0) + 0x7000;
    if (h / PAGE_SIZE >= total_frames())
        h = 0;
    if (h) {
        KT_ASSERT(frameref_share(h));
        KT_EXPECT(frameref_metadata_bytes() == meta0 + 2 * FRAMEREF_ARRAY_BYTES);
        KT_EXPECT(frameref_extra(h) == 1 && frameref_extra(f) == 1);
        KT_EXPECT(!frameref_put(h));
        KT_EXPECT(frameref_metadata_bytes() == meta0 + FRAMEREF_ARRAY_BYTES, "GiB %llu's array stayed",
                  (unsigned long long)(h / GiB(1)));
    } else {
        kprintf("ktest: (one GiB of memory: the other-GiB case is left to the host tests)\n");
    }
    KT_EXPECT(frameref_check());
    KT_EXPECT(!frameref_put(f));
    KT_EXPECT(frameref_metadata_bytes() == meta0 + FRAMEREF_ARRAY_BYTES, "array freed with a shared frame left");
    KT_EXPECT(!frameref_put(g));
    KT_EXPECT(frameref_metadata_bytes() == meta0, "array outlived its GiB's last shared frame");
    KT_EXPECT(ktest_free_frames() == free0, "free %llu, before %llu", (unsigned long long)ktest_free_frames(),
              (unsigned long long)free0);
    KT_EXPECT(frameref_shared_frames() == 0);
    KT_EXPECT(frameref_check());
    frame_free(f);
}

/* ---- every CPU at once ---- */
#define SMP_FRAMES 8
#define SMP_OPS 20000
static paddr_t smp_frames[SMP_FRAMES];
static unsigned smp_held[CPU_MAX][SMP_FRAMES];
static unsigned smp_bad[CPU_MAX];
static unsigned smp_max_each;

static void frameref_storm(void *arg)
{
    (void)arg;
    unsigned c = cpu_index();
    unsigned seed = 0x9e3779b9u * (c + 1);
    for (unsigned k = 0; k < SMP_OPS; k++) {
        seed = seed * 1103515245u + 12345u;
        unsigned i = (seed >> 8) % SMP_FRAMES;
        bool put = (seed >> 20) & 1;
        if (put && smp_held[c][i]) {
            if (frameref_put(smp_frames[i]))
                smp_bad[c]++; /* the test holds the base reference */
            smp_held[c][i]--;
        } else if (!put && smp_held[c][i] < smp_max_each) {
            if (frameref_share(smp_frames[i]))
                smp_held[c][i]++;
            else
                smp_bad[c]++;
        }
    }
}

KTEST(frameref_every_cpu_at_once)
{
    unsigned ncpu = smp_cpu_count();
    uint64_t shared0 = frameref_shared_frames();
    for (unsigned i = 0; i < SMP_FRAMES; i++) {
        smp_frames[i] = frame_alloc();
        KT_ASSERT(smp_frames[i] != 0);
    }
    /* a small max makes arrays come and go while the others use them, the
     * larger one builds up real counts */
    static const unsigned maxes[] = {1, 4};
    for (unsigned m = 0; m < ARRAY_SIZE(maxes); m++) {
        smp_max_each = maxes[m];
        if (ncpu * smp_max_each > FRAMEREF_MAX)
            smp_max_each = FRAMEREF_MAX / ncpu;
        memset(smp_held, 0, sizeof(smp_held));
        memset(smp_bad, 0, sizeof(smp_bad));
        smp_run_on_all(frameref_storm, NULL);
        uint64_t shared = 0;
        for (unsigned i = 0; i < SMP_FRAMES; i++) {
            unsigned want = 0;
            for (unsigned c = 0; c < CPU_MAX; c++)
                want += smp_held[c][i];
            KT_EXPECT(frameref_extra(smp_frames[i]) == want, "frame %u: extra %u, held %u", i,
                      frameref_extra(smp_frames[i]), want);
            shared += want > 0;
        }
        for (unsigned c = 0; c < CPU_MAX; c++)
            KT_EXPECT(smp_bad[c] == 0, "cpu %u: %u wrong answers", c, smp_bad[c]);
        KT_EXPECT(frameref_shared_frames() == shared0 + shared);
        KT_EXPECT(frameref_check());
        for (unsigned c = 0; c < CPU_MAX; c++)
            for (unsigned i = 0; i < SMP_FRAMES; i++)
                while (smp_held[c][i]) {
                    KT_EXPECT(!frameref_put(smp_frames[i]));
                    smp_held[c][i]--;
                }
        KT_EXPECT(frameref_shared_frames() == shared0);
    }
    for (unsigned i = 0; i < SMP_FRAMES; i++) {
        KT_EXPECT(frameref_put(smp_frames[i]));
        frame_free(smp_frames[i]);
    }
    KT_EXPECT(frameref_check());
    kprintf("ktest: frameref storm on %u CPUs, %u operations each\n", ncpu, 2 * SMP_OPS);
}
