/* Heap workloads with threads (issue 13), compiled once per allocator like
 * bench/heap.c (HEAP_ADAPTER names bench/alloc_NAME.c). For SlayerOS's heap
 * each thread stands for a CPU (the adapter's ALLOC_THREAD_INIT gives it its
 * own cpu_index), so its per-CPU magazines are exercised as in the kernel.
 *
 *   t-private-<T>  T threads, each churning its own 512 live objects of
 *                  Pareto-like sizes (16 B..1 KiB): free a random one,
 *                  allocate a new one in its place; aggregate pairs per second
 *   t-cross-2      a producer thread allocates (16..512 B) into a ring, a
 *                  consumer thread frees: every free is on the other thread;
 *                  pairs per second
 * Time mode prints the median of 5 runs of each; run.py derives the scaling
 * of t-private (T threads' rate over one thread's) and compares allocators
 * within the same run. Only wall time is meaningful here: the machine's other
 * load shows up, so compare ratios measured together, never across runs. */
#include <pthread.h>

#include "bench.h"

#include HEAP_ADAPTER

#ifndef ALLOC_THREAD_INIT
#define ALLOC_THREAD_INIT(t) ((void)(t))
#endif

#define LIVE 512
#define THREADS_MAX 4

static size_t private_pairs(void)
{
    return bench_mode == MODE_TIME ? 2000000 : bench_mode == MODE_COUNT ? 20000 : 2000;
}

struct worker {
    pthread_t th;
    int index;
    size_t pairs;
    pthread_barrier_t *start;
    uint64_t ns; /* this thread's time for its pairs */
};

static void *private_worker(void *arg)
{
    struct worker *w = arg;
    ALLOC_THREAD_INIT(w->index);
    void *p[LIVE];
    uint64_t rng = 0x9E3779B97F4A7C15ull * (uint64_t)(w->index + 1);
    for (int i = 0; i < LIVE; i++) {
        p[i] = alloc_malloc(size_pareto(&rng, 1024));
        *(volatile char *)p[i] = 1;
    }
    pthread_barrier_wait(w->start);
    uint64_t t0 = now_ns();
    for (size_t k = 0; k < w->pairs; k++) {
        size_t i = (size_t)rng_below(&rng, LIVE);
        alloc_free(p[i]);
        p[i] = alloc_malloc(size_pareto(&rng, 1024));
        *(volatile char *)p[i] = 1;
    }
    w->ns = now_ns() - t0;
    for (int i = 0; i < LIVE; i++)
        alloc_free(p[i]);
    return NULL;
}

/* Aggregate million pairs per second of T threads churning privately. */
static double run_private(int nthreads)
{
    struct worker w[THREADS_MAX];
    pthread_barrier_t start;
    pthread_barrier_init(&start, NULL, (unsigned)nthreads);
    for (int t = 0; t < nthreads; t++) {
        w[t] = (struct worker){.index = t, .pairs = private_pairs(), .start = &start};
        pthread_create(&w[t].th, NULL, private_worker, &w[t]);
    }
    uint64_t slowest = 0;
    for (int t = 0; t < nthreads; t++) {
        pthread_join(w[t].th, NULL);
        slowest = MAX_U64(slowest, w[t].ns);
    }
    pthread_barrier_destroy(&start);
    return (double)private_pairs() * nthreads / ((double)slowest / 1e3);
}

/* ---- producer/consumer: every object freed on the other thread ------------- */

#define RING 1024
static void *ring[RING];
static size_t ring_head, ring_tail; /* head: next to fill (producer); tail: next to take */

struct cross {
    size_t pairs;
    pthread_barrier_t start;
    uint64_t ns;
};

static void *producer(void *arg)
{
    struct cross *c = arg;
    ALLOC_THREAD_INIT(0);
    uint64_t rng = 12345;
    pthread_barrier_wait(&c->start);
    uint64_t t0 = now_ns();
    for (size_t k = 0; k < c->pairs; k++) {
        void *p = alloc_malloc(16 + rng_below(&rng, 497));
        *(volatile char *)p = 1;
        while (__atomic_load_n(&ring_head, __ATOMIC_RELAXED) -
                   __atomic_load_n(&ring_tail, __ATOMIC_ACQUIRE) == RING)
            __builtin_ia32_pause();
        ring[ring_head % RING] = p;
        __atomic_store_n(&ring_head, ring_head + 1, __ATOMIC_RELEASE);
    }
    c->ns = now_ns() - t0;
    return NULL;
}

static void *consumer(void *arg)
{
    struct cross *c = arg;
    ALLOC_THREAD_INIT(1);
    pthread_barrier_wait(&c->start);
    for (size_t k = 0; k < c->pairs; k++) {
        while (__atomic_load_n(&ring_head, __ATOMIC_ACQUIRE) == ring_tail)
            __builtin_ia32_pause();
        void *p = ring[ring_tail % RING];
        __atomic_store_n(&ring_tail, ring_tail + 1, __ATOMIC_RELEASE);
        alloc_free(p);
    }
    return NULL;
}

/* Million pairs per second with every free on the other thread. */
static double run_cross(void)
{
    struct cross c = {.pairs = private_pairs()};
    ring_head = ring_tail = 0;
    pthread_barrier_init(&c.start, NULL, 2);
    pthread_t a, b;
    pthread_create(&b, NULL, consumer, &c);
    pthread_create(&a, NULL, producer, &c);
    pthread_join(a, NULL);
    pthread_join(b, NULL);
    pthread_barrier_destroy(&c.start);
    return (double)c.pairs / ((double)c.ns / 1e3);
}

int main(int argc, char **argv)
{
    bench_parse_mode(argc, argv);
    (void)alloc_held, (void)alloc_held_known, (void)alloc_realloc; /* heap.c's, unused here */
    alloc_setup();
    int reps = bench_mode == MODE_TIME ? 5 : 1;
    static const int counts[] = {1, 2, 4};
    for (size_t i = 0; i < sizeof(counts) / sizeof(counts[0]); i++) {
        double r[5];
        for (int k = 0; k < reps; k++)
            r[k] = run_private(counts[i]);
        char wl[32];
        snprintf(wl, sizeof(wl), "t-private-%d", counts[i]);
        result("threads", wl, alloc_name, "threads=%d mpairs=%.2f", counts[i],
               median(r, (size_t)reps));
    }
    double r[5];
    for (int k = 0; k < reps; k++)
        r[k] = run_cross();
    result("threads", "t-cross-2", alloc_name, "threads=2 mpairs=%.2f", median(r, (size_t)reps));
    return 0;
}
