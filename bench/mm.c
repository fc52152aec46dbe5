/* Frame and paging workloads (issue 5, workloads 5 and 6) on the kernel's own
 * mm/frame.c and mm/paging.c built for the host, with the frame peers of
 * bench/frame_peers.h.
 *
 *   f-<ram>-<fill>   one frame_alloc + frame_free pair, memory <fill>% full
 *                    (random frames taken, so free frames are scattered) at
 *                    <ram> of simulated RAM; cost per pair
 *   c-<n>x<align>-<fill>  frame_alloc_contig of n frames aligned to <align>
 *                    bytes + frame_free_contig, at 4 GiB; cost per pair
 *   p-mapunmap       paging_map_in + paging_unmap_in of one 4 KiB page whose
 *                    page tables exist (another page keeps them alive)
 *   p-mapunmap-cold  the same in an empty 1 GiB region: three tables are
 *                    allocated and freed again every time
 *   p-translate      paging_translate_in of random mapped 4 KiB pages
 *   hhdm-<ram>-<pg>  paging_map_range of an HHDM of <ram> with <pg> pages:
 *                    milliseconds and page-table bytes */
#include "bench.h"

#include "frame_peers.h"
#include "mm/frame.h"
#include "mm/paging.h"
#include "support.h"

static BOP paddr_t bop_frame_alloc(void)
{
    return frame_alloc();
}
static BOP void bop_frame_free(paddr_t f)
{
    frame_free(f);
}
static BOP uint64_t bop_nextfit_alloc(void)
{
    return nextfit_alloc();
}
static BOP void bop_nextfit_free(uint64_t f)
{
    nextfit_free(f);
}
static BOP uint64_t bop_stack_alloc(void)
{
    return stack_alloc();
}
static BOP void bop_stack_free(uint64_t f)
{
    stack_free(f);
}
static BOP paddr_t bop_contig_alloc(size_t n, uint64_t align)
{
    return frame_alloc_contig(n, align);
}
static BOP void bop_contig_free(paddr_t p, size_t n)
{
    frame_free_contig(p, n);
}
static BOP uint64_t bop_nf_contig_alloc(uint64_t n, uint64_t align)
{
    return nextfit_alloc_contig(n, align);
}
static BOP void bop_nf_contig_free(uint64_t f, uint64_t n)
{
    nextfit_free_contig(f, n);
}
static BOP int bop_map(struct addrspace *as, paddr_t pa, vaddr_t va)
{
    return paging_map_in(as, pa, va, PAGE_SIZE_4K, PAGE_WRITABLE | PAGE_NX, CACHE_WB, 0);
}
static BOP int bop_unmap(struct addrspace *as, vaddr_t va)
{
    return paging_unmap_in(as, va, PAGE_SIZE_4K);
}
static BOP paddr_t bop_translate(struct addrspace *as, vaddr_t va)
{
    return paging_translate_in(as, va);
}

#define RESERVED_LOW MiB(1)

static int reps(void)
{
    return bench_mode == MODE_TIME ? 5 : 1;
}

static size_t pairs(void)
{
    return bench_mode == MODE_TIME ? 2000000 : bench_mode == MODE_COUNT ? 20000 : 2000;
}

/* Simulated RAM of `ram` bytes: the first MiB reserved, the rest usable. */
static void frames_setup(uint64_t ram)
{
    host_arena_init(ram);
    struct mem_region map[] = {
        {0, RESERVED_LOW, MEM_RESERVED},
        {RESERVED_LOW, ram - RESERVED_LOW, MEM_USABLE},
    };
    frame_init(map, 2);
}

/* Takes every frame, then gives back a random (100 - fill)% of them, in all
 * three allocators (the peers get the same free frames). */
static void frames_fill(uint64_t ram, unsigned fill)
{
    uint64_t nf = ram / PAGE_SIZE;
    peers_init(nf);
    struct frame_stats st;
    frame_get_stats(&st);
    uint64_t first = RESERVED_LOW / PAGE_SIZE, end = nf - st.metadata_bytes / PAGE_SIZE;
    uint64_t rng = 0xfeed + fill;
    if (fill == 0) {
        for (uint64_t f = end; f-- > first;) /* the stack pops low frames first */
            peers_seed_free(f);
        return;
    }
    while (frame_alloc_contig(4096, PAGE_SIZE))
        ;
    while (frame_alloc())
        ;
    uint64_t keep = (uint64_t)fill * 1024 / 100; /* probability of staying used, /1024 */
    for (uint64_t f = end; f-- > first;)
        if (rng_below(&rng, 1024) >= keep) {
            frame_free(f * PAGE_SIZE);
            peers_seed_free(f);
        }
}

#define PAIR_LOOP(name, alloc, free_, wl)                                              \
    do {                                                                              \
        double ns[8];                                                                 \
        size_t n = pairs();                                                           \
        for (int r = 0; r < reps(); r++) {                                            \
            count_begin();                                                            \
            uint64_t t0 = now_ns();                                                   \
            for (size_t k = 0; k < n; k++)                                            \
                free_(alloc());                                                       \
            ns[r] = (double)(now_ns() - t0) / (double)n;                              \
            count_end(wl, name);                                                      \
        }                                                                             \
        struct lat lat;                                                               \
        char lb[128];                                                                 \
        lat_init(&lat, 200000);                                                       \
        for (size_t k = 0; k < 100000; k++) {                                         \
            uint64_t t0 = tsc();                                                      \
            uint64_t f = alloc();                                                     \
            uint64_t t1 = tsc();                                                      \
            free_(f);                                                                 \
            uint64_t t2 = tsc();                                                      \
            lat_add(&lat, t1 - t0);                                                   \
            lat_add(&lat, t2 - t1);                                                   \
        }                                                                             \
        lat_format(&lat, lb, sizeof(lb));                                             \
        lat_free(&lat);                                                               \
        result("frame", wl, name, "ops=%zu ns=%.3f%s meta_per_gib=%llu", n,             \
               median(ns, (size_t)reps()), lb, (unsigned long long)meta_per_gib);       \
    } while (0)

static void frames_single(uint64_t ram, const char *ramname, unsigned fill)
{
    char wl[48];
    snprintf(wl, sizeof(wl), "f-%s-%u", ramname, fill);
    frames_setup(ram);
    frames_fill(ram, fill);
    struct frame_stats st;
    frame_get_stats(&st);
    uint64_t meta_per_gib = st.metadata_bytes * GiB(1) / ram;
    PAIR_LOOP("slayer", bop_frame_alloc, bop_frame_free, wl);
    meta_per_gib = GiB(1) / PAGE_SIZE;
    PAIR_LOOP("nextfit", bop_nextfit_alloc, bop_nextfit_free, wl);
    meta_per_gib = GiB(1) / PAGE_SIZE * 8;
    PAIR_LOOP("stack", bop_stack_alloc, bop_stack_free, wl);
    peers_fini();
    host_arena_free();
}

static void frames_contig(unsigned fill, uint64_t count, uint64_t align)
{
    char wl[48];
    snprintf(wl, sizeof(wl), "c-%llux%lluK-%u", (unsigned long long)count,
             (unsigned long long)(align >> 10), fill);
    uint64_t ram = GiB(4);
    frames_setup(ram);
    frames_fill(ram, fill);
    size_t n = bench_mode == MODE_TIME ? 200000 : 2000;
    for (int who = 0; who < 2; who++) {
        const char *name = who ? "nextfit" : "slayer";
        double ns[8];
        bool failed = false;
        for (int r = 0; r < reps(); r++) {
            count_begin();
            uint64_t t0 = now_ns();
            for (size_t k = 0; k < n; k++) {
                if (who == 0) {
                    paddr_t p = bop_contig_alloc(count, align);
                    if (!p)
                        failed = true;
                    else
                        bop_contig_free(p, count);
                } else {
                    uint64_t f = bop_nf_contig_alloc(count, align / PAGE_SIZE);
                    if (!f)
                        failed = true;
                    else
                        bop_nf_contig_free(f, count);
                }
            }
            ns[r] = (double)(now_ns() - t0) / (double)n;
            count_end(wl, name);
        }
        result("frame", wl, name, "ops=%zu ns=%.3f failed=%d", n, median(ns, (size_t)reps()),
               failed);
    }
    peers_fini();
    host_arena_free();
}

/* ---- paging ------------------------------------------------------------------ */

#define VA_BASE 0xffffc00000000000ULL
#define PA_ANY  0x0000000200000000ULL /* never touched: only tables are */

static void paging_bench(void)
{
    frames_setup(GiB(1));
    struct addrspace as;
    if (paging_as_create(&as) != 0)
        abort();
    size_t n = pairs();
    double ns[8];
    char lb[128];
    struct lat lat;

    /* warm: a neighbour keeps the tables alive */
    bop_map(&as, PA_ANY, VA_BASE);
    for (int r = 0; r < reps(); r++) {
        count_begin();
        uint64_t t0 = now_ns();
        for (size_t k = 0; k < n; k++) {
            vaddr_t va = VA_BASE + PAGE_SIZE * (1 + k % 511);
            bop_map(&as, PA_ANY + PAGE_SIZE * (k % 511), va);
            bop_unmap(&as, va);
        }
        ns[r] = (double)(now_ns() - t0) / (double)n;
        count_end("p-mapunmap", "slayer");
    }
    lat_init(&lat, 200000);
    for (size_t k = 0; k < 100000; k++) {
        vaddr_t va = VA_BASE + PAGE_SIZE * (1 + k % 511);
        uint64_t t0 = tsc();
        bop_map(&as, PA_ANY, va);
        uint64_t t1 = tsc();
        bop_unmap(&as, va);
        uint64_t t2 = tsc();
        lat_add(&lat, t1 - t0);
        lat_add(&lat, t2 - t1);
    }
    lat_format(&lat, lb, sizeof(lb));
    lat_free(&lat);
    result("paging", "p-mapunmap", "slayer", "ops=%zu ns=%.3f%s", n, median(ns, (size_t)reps()), lb);

    /* cold: the tables come and go with the page */
    for (int r = 0; r < reps(); r++) {
        count_begin();
        uint64_t t0 = now_ns();
        for (size_t k = 0; k < n; k++) {
            vaddr_t va = VA_BASE + GiB(512) + PAGE_SIZE * (k % 512);
            bop_map(&as, PA_ANY, va);
            bop_unmap(&as, va);
        }
        ns[r] = (double)(now_ns() - t0) / (double)n;
        count_end("p-mapunmap-cold", "slayer");
    }
    result("paging", "p-mapunmap-cold", "slayer", "ops=%zu ns=%.3f", n, median(ns, (size_t)reps()));

    /* translate: 64 MiB of 4 KiB pages, random lookups */
    enum { TPAGES = 16384 };
    for (size_t i = 0; i < TPAGES; i++)
        bop_map(&as, PA_ANY + i * PAGE_SIZE, VA_BASE + GiB(1) + i * PAGE_SIZE);
    uint64_t rng = 7;
    for (int r = 0; r < reps(); r++) {
        count_begin();
        uint64_t t0 = now_ns(), sum = 0;
        for (size_t k = 0; k < n; k++)
            sum += bop_translate(&as, VA_BASE + GiB(1) + rng_below(&rng, TPAGES) * PAGE_SIZE);
        ns[r] = (double)(now_ns() - t0) / (double)n;
        count_end("p-translate", "slayer");
        if (sum == 42)
            puts("");
    }
    result("paging", "p-translate", "slayer", "ops=%zu ns=%.3f", n, median(ns, (size_t)reps()));
    paging_as_destroy(&as);

    /* HHDM builds (time mode only: these are long loops) */
    if (bench_mode == MODE_COUNT)
        goto out;
    static const struct {
        uint64_t ram;
        const char *name;
    } rams[] = {{GiB(4), "4G"}, {GiB(256), "256G"}};
    static const char *pgname[] = {"4K", "2M", "1G"};
    for (size_t i = 0; i < 2; i++) {
        for (int pg = 0; pg < 3; pg++) {
            if (bench_mode == MODE_SMOKE && (i == 1 || pg == 0))
                continue;
            char wl[48];
            snprintf(wl, sizeof(wl), "hhdm-%s-%s", rams[i].name, pgname[pg]);
            host_cpu_1g_pages = pg == 2;
            int rr = rams[i].ram > GiB(4) && pg == 0 ? 1 : reps();
            uint64_t tables = 0;
            for (int r = 0; r < rr; r++) {
                struct addrspace h;
                if (paging_as_create(&h) != 0)
                    abort();
                uint64_t t0 = now_ns();
                int rc = paging_map_range(&h, 0, 0xffff800000000000ULL, rams[i].ram,
                                          PAGE_WRITABLE | PAGE_NX, CACHE_WB,
                                          pg ? PAGING_LARGE : 0);
                ns[r] = (double)(now_ns() - t0);
                tables = h.table_pages;
                paging_as_destroy(&h);
                if (rc != 0) {
                    fprintf(stderr, "%s: %s\n", wl, paging_strerror(rc));
                    abort();
                }
            }
            result("paging", wl, "slayer", "ms=%.3f table_bytes=%llu", median(ns, (size_t)rr) / 1e6,
                   (unsigned long long)tables * PAGE_SIZE);
        }
    }
    host_cpu_1g_pages = true;
out:
    host_arena_free();
}

int main(int argc, char **argv)
{
    bench_parse_mode(argc, argv);
    static const struct {
        uint64_t ram;
        const char *name;
    } rams[] = {{MiB(128), "128M"}, {GiB(4), "4G"}, {GiB(256), "256G"}, {GiB(16), "16G"}};
    static const unsigned fills[] = {0, 50, 95};
    /* valgrind cannot map a 256 GiB arena (nor 64 GiB: its address space is limited):
     * count mode counts 16 GiB instead. */
    for (size_t i = 0; i < 4; i++) {
        bool counting = bench_mode == MODE_COUNT;
        if ((i == 2 && counting) || (i == 3 && !counting))
            continue;
        if (bench_mode == MODE_SMOKE && i > 0)
            break;
        for (size_t j = 0; j < 3; j++)
            frames_single(rams[i].ram, rams[i].name, fills[j]);
    }
    frames_contig(0, 16, KiB(64));
    frames_contig(0, 512, MiB(2));
    frames_contig(50, 4, KiB(16));
    paging_bench();
    return 0;
}
