/* Heap workloads (issue 5, workloads 1-4 and fragmentation), compiled once
 * per allocator: HEAP_ADAPTER names the adapter file (bench/alloc_NAME.c) that
 * defines alloc_name, alloc_setup, alloc_malloc/free/realloc and alloc_held.
 *
 *   w1-<size>      alloc+free of one size, LIFO: batches of 64 allocations
 *                  freed in reverse order; cost per alloc+free pair
 *   w2p-<live>     <live> objects of Pareto-like sizes (16 B..1 KiB), then
 *                  churn: free a random one, allocate a new random size in its
 *                  place; cost per pair
 *   w2m-<live>     the same with the mixed distribution up to 64 KiB
 *   w3-fifo        producer-consumer queue of 1000 objects (16..512 B): alloc
 *                  at the tail, free at the head; cost per pair
 *   w4-realloc     16 buffers grown by x1.5 from 16 B to 64 KiB and shrunk
 *                  back, round-robin; cost per realloc
 *   larson         (`count larson` only, and smoke) larson-like churn for the
 *                  cache simulation: 10,000 slots, each step frees a random
 *                  slot and puts a new block of 8..1000 bytes (uniform) in
 *                  it; 1,000,000 steps, fixed seed, one thread. run.py runs
 *                  it under callgrind --cache-sim=yes collecting only in
 *                  bop_free: L1 misses per free
 * Latency lines (lat=...) are per single operation, over the whole life of
 * the workload: filling (heap growth), churn, and freeing everything (page
 * return). */
#include "bench.h"

#include HEAP_ADAPTER

static BOP void *bop_alloc(size_t n)
{
    return alloc_malloc(n);
}
static BOP void bop_free(void *p)
{
    alloc_free(p);
}
static BOP void *bop_realloc(void *p, size_t n)
{
    return alloc_realloc(p, n);
}

static int reps(void)
{
    return bench_mode == MODE_TIME ? 5 : 1;
}

/* Touches the first bytes so that an allocator cannot get away with never
 * backing an object (and the work stays the same for every allocator). */
static inline void touch(void *p)
{
    *(volatile char *)p = 1;
}

/* ---- workload 1 ------------------------------------------------------------ */

static void w1(size_t size)
{
    enum { BATCH = 64 };
    void *ptr[BATCH];
    size_t pairs = bench_mode == MODE_TIME ? 2000000 : bench_mode == MODE_COUNT ? 64000 : 6400;
    char wl[32];
    snprintf(wl, sizeof(wl), "w1-%zu", size);
    double ns[8];
    for (int r = 0; r < reps(); r++) {
        count_begin();
        uint64_t t0 = now_ns();
        for (size_t k = 0; k < pairs; k += BATCH) {
            for (int i = 0; i < BATCH; i++)
                touch(ptr[i] = bop_alloc(size));
            for (int i = BATCH - 1; i >= 0; i--)
                bop_free(ptr[i]);
        }
        ns[r] = (double)(now_ns() - t0) / (double)pairs;
        count_end(wl, alloc_name);
    }
    struct lat lat;
    char lb[128];
    lat_init(&lat, 2 * 64000);
    for (size_t k = 0; k < 64000; k += BATCH) {
        for (int i = 0; i < BATCH; i++) {
            uint64_t t0 = tsc();
            ptr[i] = bop_alloc(size);
            lat_add(&lat, tsc() - t0);
            touch(ptr[i]);
        }
        for (int i = BATCH - 1; i >= 0; i--) {
            uint64_t t0 = tsc();
            bop_free(ptr[i]);
            lat_add(&lat, tsc() - t0);
        }
    }
    lat_format(&lat, lb, sizeof(lb));
    lat_free(&lat);
    result("heap", wl, alloc_name, "ops=%zu ns=%.3f%s", pairs, median(ns, (size_t)reps()), lb);
}

/* ---- workload 2 ------------------------------------------------------------ */

struct w2 {
    void **p;
    size_t *sz;
    size_t live;
    uint64_t live_bytes, peak_live, peak_held;
    bool mixed;
    uint64_t rng;
};

static size_t w2_size(struct w2 *w)
{
    return w->mixed ? size_mixed(&w->rng) : size_pareto(&w->rng, 1024);
}

/* In frag mode: fill objects wholly (so RSS sees them) and track the peaks. */
static inline void w2_note(struct w2 *w, void *p, size_t n, uint64_t k)
{
    if (bench_mode != MODE_FRAG)
        return;
    memset(p, 0x5a, n);
    if (w->live_bytes > w->peak_live)
        w->peak_live = w->live_bytes;
    if (alloc_held_known && (k & 255) == 0) {
        uint64_t h = alloc_held();
        if (h > w->peak_held)
            w->peak_held = h;
    }
}

static void w2_fill(struct w2 *w, struct lat *lat)
{
    for (size_t i = 0; i < w->live; i++) {
        size_t n = w2_size(w);
        uint64_t t0 = lat ? tsc() : 0;
        w->p[i] = bop_alloc(n);
        if (lat)
            lat_add(lat, tsc() - t0);
        touch(w->p[i]);
        w->sz[i] = n;
        w->live_bytes += n;
        w2_note(w, w->p[i], n, i);
    }
}

static void w2_churn(struct w2 *w, size_t ops, struct lat *lat)
{
    for (size_t k = 0; k < ops; k++) {
        size_t i = (size_t)rng_below(&w->rng, w->live), n = w2_size(w);
        uint64_t t0 = lat ? tsc() : 0;
        bop_free(w->p[i]);
        uint64_t t1 = lat ? tsc() : 0;
        w->p[i] = bop_alloc(n);
        if (lat) {
            uint64_t t2 = tsc();
            lat_add(lat, t1 - t0);
            lat_add(lat, t2 - t1);
        }
        touch(w->p[i]);
        w->live_bytes += n - w->sz[i];
        w->sz[i] = n;
        w2_note(w, w->p[i], n, k);
    }
}

static void w2_empty(struct w2 *w, struct lat *lat)
{
    for (size_t i = 0; i < w->live; i++) {
        uint64_t t0 = lat ? tsc() : 0;
        bop_free(w->p[i]);
        if (lat)
            lat_add(lat, tsc() - t0);
    }
    w->live_bytes = 0;
}

static void w2(bool mixed, size_t live, size_t churn)
{
    struct w2 w = {.live = live, .mixed = mixed, .rng = 0x1234567 + live};
    w.p = calloc(live, sizeof(void *));
    w.sz = calloc(live, sizeof(size_t));
    char wl[32];
    snprintf(wl, sizeof(wl), "w2%c-%zu", mixed ? 'm' : 'p', live);

    if (bench_mode == MODE_FRAG) {
        memset(w.p, 0, live * sizeof(void *)); /* the harness's own pages count in the baseline */
        memset(w.sz, 0, live * sizeof(size_t));
        rss_reset();
        uint64_t base = rss_now();
        w2_fill(&w, NULL);
        w2_churn(&w, churn, NULL);
        uint64_t held = alloc_held_known ? MAX_U64(w.peak_held, alloc_held()) : rss_peak() - base;
        result("frag", wl, alloc_name, "peak_live=%llu peak_held=%llu ratio=%.3f",
               (unsigned long long)w.peak_live, (unsigned long long)held,
               (double)held / (double)w.peak_live);
        w2_empty(&w, NULL);
        free(w.p);
        free(w.sz);
        return;
    }

    w2_fill(&w, NULL);
    double ns[8];
    for (int r = 0; r < reps(); r++) {
        count_begin();
        uint64_t t0 = now_ns();
        w2_churn(&w, churn, NULL);
        ns[r] = (double)(now_ns() - t0) / (double)churn;
        count_end(wl, alloc_name);
    }
    w2_empty(&w, NULL);

    /* Latency over a whole life: fill, churn, free everything. */
    struct lat lat;
    char lb[128];
    size_t lchurn = MIN_SZ(churn, (size_t)200000);
    lat_init(&lat, 2 * live + 2 * lchurn);
    w.live_bytes = 0;
    w2_fill(&w, &lat);
    w2_churn(&w, lchurn, &lat);
    w2_empty(&w, &lat);
    lat_format(&lat, lb, sizeof(lb));
    lat_free(&lat);
    result("heap", wl, alloc_name, "ops=%zu ns=%.3f%s", churn, median(ns, (size_t)reps()), lb);
    free(w.p);
    free(w.sz);
}

/* ---- workloads 3 and 4 ------------------------------------------------------- */

static void w3(void)
{
    enum { Q = 1000 };
    static void *q[Q];
    uint64_t rng = 42;
    size_t ops = bench_mode == MODE_TIME ? 2000000 : bench_mode == MODE_COUNT ? 50000 : 5000;
    for (int i = 0; i < Q; i++)
        q[i] = bop_alloc(16 + rng_below(&rng, 497));
    double ns[8];
    struct lat lat;
    lat_init(&lat, 2 * 200000);
    for (int r = 0; r <= reps(); r++) { /* the last round records latencies */
        bool last = r == reps();
        size_t n = last ? MIN_SZ(ops, (size_t)200000) : ops;
        if (!last)
            count_begin();
        uint64_t t0 = now_ns();
        for (size_t k = 0; k < n; k++) {
            size_t head = k % Q, sz = 16 + (size_t)rng_below(&rng, 497);
            uint64_t a = last ? tsc() : 0;
            bop_free(q[head]); /* the consumer takes the oldest */
            uint64_t b = last ? tsc() : 0;
            q[head] = bop_alloc(sz); /* the producer appends a new one */
            if (last) {
                uint64_t c = tsc();
                lat_add(&lat, b - a);
                lat_add(&lat, c - b);
            }
            touch(q[head]);
        }
        if (!last) {
            ns[r] = (double)(now_ns() - t0) / (double)n;
            count_end("w3-fifo", alloc_name);
        }
    }
    for (int i = 0; i < Q; i++)
        bop_free(q[i]);
    char lb[128];
    lat_format(&lat, lb, sizeof(lb));
    lat_free(&lat);
    result("heap", "w3-fifo", alloc_name, "ops=%zu ns=%.3f%s", ops, median(ns, (size_t)reps()), lb);
}

static void w4(void)
{
    enum { NBUF = 16, MAXSZ = 65536 };
    void *b[NBUF];
    size_t sz[NBUF];
    bool up[NBUF];
    size_t ops = bench_mode == MODE_TIME ? 1000000 : bench_mode == MODE_COUNT ? 20000 : 2000;
    for (int i = 0; i < NBUF; i++) {
        sz[i] = 16 + 97 * (size_t)i; /* staggered, so the buffers are out of phase */
        b[i] = bop_alloc(sz[i]);
        up[i] = true;
    }
    double ns[8];
    struct lat lat;
    lat_init(&lat, 200000);
    for (int r = 0; r <= reps(); r++) {
        bool last = r == reps();
        size_t n = last ? MIN_SZ(ops, (size_t)200000) : ops;
        if (!last)
            count_begin();
        uint64_t t0 = now_ns();
        for (size_t k = 0; k < n; k++) {
            int i = (int)(k % NBUF);
            size_t s = up[i] ? sz[i] + sz[i] / 2 : sz[i] * 2 / 3;
            if (s >= MAXSZ)
                up[i] = false, s = MAXSZ;
            if (s <= 16)
                up[i] = true, s = 16;
            uint64_t a = last ? tsc() : 0;
            b[i] = bop_realloc(b[i], s);
            if (last)
                lat_add(&lat, tsc() - a);
            ((volatile char *)b[i])[s - 1] = 1;
            sz[i] = s;
        }
        if (!last) {
            ns[r] = (double)(now_ns() - t0) / (double)n;
            count_end("w4-realloc", alloc_name);
        }
    }
    for (int i = 0; i < NBUF; i++)
        bop_free(b[i]);
    char lb[128];
    lat_format(&lat, lb, sizeof(lb));
    lat_free(&lat);
    result("heap", "w4-realloc", alloc_name, "ops=%zu ns=%.3f%s", ops, median(ns, (size_t)reps()), lb);
}

/* ---- larson-like churn (cache misses of free) -------------------------------- */

static void larson(size_t slots, size_t steps)
{
    void **p = calloc(slots, sizeof(void *));
    uint64_t rng = 0x1a25011ull;
    for (size_t i = 0; i < slots; i++)
        touch(p[i] = bop_alloc(8 + rng_below(&rng, 993)));
    count_begin();
    for (size_t k = 0; k < steps; k++) {
        size_t i = (size_t)rng_below(&rng, slots);
        bop_free(p[i]);
        touch(p[i] = bop_alloc(8 + rng_below(&rng, 993)));
    }
    count_end("larson", alloc_name);
    for (size_t i = 0; i < slots; i++)
        bop_free(p[i]);
    free(p);
    result("heap", "larson", alloc_name, "ops=%zu", steps);
}

/* ---- main ------------------------------------------------------------------ */

int main(int argc, char **argv)
{
    bench_parse_mode(argc, argv);
    alloc_setup();
    if (bench_mode == MODE_COUNT && argc > 2 && !strcmp(argv[2], "larson")) {
        larson(10000, 1000000);
        return 0;
    }
    bool w1_only = argc > 2 && !strcmp(argv[2], "w1"); /* `count w1`: for profiling */
    /* The naive first-fit heap is O(live objects) per operation: it gets
     * fewer live objects and fewer churn operations (run.py says so). */
    bool naive = !strcmp(alloc_name, "naive");
    static const size_t live_p[] = {1000, 10000, 100000, 1000000};
    static const size_t live_m[] = {1000, 10000, 100000};
    if (bench_mode == MODE_FRAG) {
        const char *which = argc > 2 ? argv[2] : "pareto";
        size_t live = naive ? 10000 : 100000;
        w2(!strcmp(which, "mixed"), live, naive ? 20000 : 200000);
        return 0;
    }
    static const size_t sizes[] = {16, 32, 64, 128, 256, 512, 1024, 2048, 4096};
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++)
        w1(sizes[i]);
    if (w1_only)
        return 0;
    size_t churn = bench_mode == MODE_TIME ? 1000000 : bench_mode == MODE_COUNT ? 20000 : 2000;
    size_t maxlive = bench_mode == MODE_TIME ? 1000000 : bench_mode == MODE_COUNT ? 1000000 : 1000;
    if (naive) {
        churn = MIN_SZ(churn, (size_t)20000);
        maxlive = MIN_SZ(maxlive, (size_t)10000);
    }
    for (size_t i = 0; i < 4; i++)
        if (live_p[i] <= maxlive)
            w2(false, live_p[i], churn);
    for (size_t i = 0; i < 3; i++)
        if (live_m[i] <= maxlive)
            w2(true, live_m[i], churn);
    w3();
    w4();
    if (bench_mode == MODE_SMOKE)
        larson(1000, 20000);
    return 0;
}
