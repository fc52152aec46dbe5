/* ThreadSanitizer test of the frame allocator's per-CPU caches (mm/frame.c):
 * four threads stand for four CPUs (host_cpu_index 0..3).
 *
 *   1. storm: each thread allocates and frees single frames and small
 *      contiguous runs at random, hands some of its frames to the others
 *      through a shared ring and frees what it takes from the ring (frames
 *      freed on another CPU than the one that took them), while it checks
 *      that no frame is ever handed out twice; thread 0 also runs
 *      frame_check, frame_get_stats and frame_is_used in between;
 *   2. out of memory at a small arena: every thread allocates until
 *      frame_alloc says 0; together they must hold every free frame (a 0 only
 *      after every cache was drained), then each frees another's frames.
 * After each: drain, frame_check, and the free count back to its baseline.
 * Returns 0 when all holds (and TSan reported nothing), 1 with a message. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#include "arch/x86_64/cpu_local.h"
#include "lib/string.h"
#include "mm/frame.h"
#include "mm/memmap.h"
#include "mm/mm.h"
#include "support.h"

#define THREADS 4
#define STORM_OPS 100000
#define HOLD_MAX 256
#define RING 512

static int failed;
#define CHECK(cond, ...)                                                                         \
    do {                                                                                         \
        if (!(cond)) {                                                                           \
            fprintf(stderr, "tsan_frame: %s:%d: ", __FILE__, __LINE__);                          \
            fprintf(stderr, __VA_ARGS__);                                                        \
            fprintf(stderr, "\n");                                                               \
            __atomic_store_n(&failed, 1, __ATOMIC_RELAXED);                                      \
        }                                                                                        \
    } while (0)

static uint64_t owned[MiB(64) / PAGE_SIZE / 64]; /* frames handed out, set atomically */

/* Marks frames [f, f + n) handed out; a frame already marked was handed out twice. */
static void own(paddr_t f, uint64_t n)
{
    for (uint64_t i = f / PAGE_SIZE; i < f / PAGE_SIZE + n; i++) {
        uint64_t was = __atomic_fetch_or(&owned[i / 64], 1ULL << (i % 64), __ATOMIC_RELAXED);
        CHECK(!(was & (1ULL << (i % 64))), "frame %#llx handed out twice",
              (unsigned long long)i * PAGE_SIZE);
    }
}

static void disown(paddr_t f, uint64_t n)
{
    for (uint64_t i = f / PAGE_SIZE; i < f / PAGE_SIZE + n; i++)
        __atomic_fetch_and(&owned[i / 64], ~(1ULL << (i % 64)), __ATOMIC_RELAXED);
}

/* The ring frames travel through from one thread to another. */
static pthread_mutex_t ring_lock = PTHREAD_MUTEX_INITIALIZER;
static paddr_t ring[RING];
static unsigned ring_head, ring_n;

static bool ring_put(paddr_t f)
{
    pthread_mutex_lock(&ring_lock);
    bool ok = ring_n < RING;
    if (ok)
        ring[(ring_head + ring_n++) % RING] = f;
    pthread_mutex_unlock(&ring_lock);
    return ok;
}

static paddr_t ring_get(void)
{
    paddr_t f = 0;
    pthread_mutex_lock(&ring_lock);
    if (ring_n) {
        f = ring[ring_head];
        ring_head = (ring_head + 1) % RING;
        ring_n--;
    }
    pthread_mutex_unlock(&ring_lock);
    return f;
}

static pthread_barrier_t barrier;

struct worker {
    unsigned cpu;
    unsigned seed;
    paddr_t hold[HOLD_MAX];
    unsigned n;
    paddr_t *oom;   /* phase 2: what this thread took */
    uint64_t noom;
};
static struct worker workers[THREADS];

static void free_own(struct worker *w, unsigned k)
{
    paddr_t f = w->hold[k];
    w->hold[k] = w->hold[--w->n];
    disown(f, 1);
    frame_free(f);
}

static void *storm(void *arg)
{
    struct worker *w = arg;
    host_cpu_index = w->cpu;
    for (int op = 0; op < STORM_OPS && !__atomic_load_n(&failed, __ATOMIC_RELAXED); op++) {
        unsigned r = (unsigned)rand_r(&w->seed) % 100;
        if (r < 45 && w->n < HOLD_MAX) {
            paddr_t f = frame_alloc();
            CHECK(f, "cpu %u: frame_alloc failed with memory free", w->cpu);
            if (!f)
                break;
            own(f, 1);
            *(volatile uint64_t *)PHYS2VIRT(f) = f; /* the frame is ours to write */
            w->hold[w->n++] = f;
        } else if (r < 75 && w->n) {
            free_own(w, (unsigned)rand_r(&w->seed) % w->n);
        } else if (r < 85 && w->n) {
            unsigned k = (unsigned)rand_r(&w->seed) % w->n;
            paddr_t f = w->hold[k];
            if (ring_put(f)) /* another thread frees it */
                w->hold[k] = w->hold[--w->n];
        } else if (r < 95) {
            paddr_t f = ring_get();
            if (f) {
                CHECK(*(volatile uint64_t *)PHYS2VIRT(f) == f, "a frame in the ring was reused");
                disown(f, 1);
                frame_free(f);
            }
        } else {
            size_t n = 1 + (size_t)rand_r(&w->seed) % 8;
            paddr_t p = frame_alloc_contig(n, PAGE_SIZE << (rand_r(&w->seed) % 5));
            CHECK(p, "cpu %u: frame_alloc_contig(%zu) failed", w->cpu, n);
            if (p) {
                own(p, n);
                disown(p, n);
                frame_free_contig(p, n);
            }
        }
        if (w->cpu == 0 && op % 2000 == 0) {
            CHECK(frame_check(), "frame_check failed during the storm");
            struct frame_stats s;
            frame_get_stats(&s);
            CHECK(s.free_frames <= s.usable_frames, "free %llu > usable %llu",
                  (unsigned long long)s.free_frames, (unsigned long long)s.usable_frames);
            if (w->n)
                CHECK(frame_is_used(w->hold[0]), "a held frame is not used");
        }
    }
    pthread_barrier_wait(&barrier);
    while (w->n)
        free_own(w, w->n - 1);
    for (paddr_t f; (f = ring_get()) != 0;) {
        disown(f, 1);
        frame_free(f);
    }
    return NULL;
}

static void *oom(void *arg)
{
    struct worker *w = arg;
    host_cpu_index = w->cpu;
    pthread_barrier_wait(&barrier);
    for (paddr_t f; (f = frame_alloc()) != 0;) {
        own(f, 1);
        w->oom[w->noom++] = f;
    }
    CHECK(frame_cache_count(w->cpu) == 0, "cpu %u failed with its own cache not empty", w->cpu);
    pthread_barrier_wait(&barrier); /* everyone is out of memory */
    if (w->cpu == 0) {
        struct frame_stats s;
        frame_get_stats(&s);
        CHECK(s.free_frames == 0, "%llu frames free after every CPU failed",
              (unsigned long long)s.free_frames);
    }
    pthread_barrier_wait(&barrier);
    /* free the frames the next thread took: cross-CPU frees, all at once */
    struct worker *o = &workers[(w->cpu + 1) % THREADS];
    for (uint64_t k = 0; k < o->noom; k++) {
        disown(o->oom[k], 1);
        frame_free(o->oom[k]);
    }
    return NULL;
}

static void run(void *(*fn)(void *))
{
    pthread_t t[THREADS];
    for (unsigned k = 0; k < THREADS; k++) {
        workers[k].cpu = k;
        workers[k].seed = 12345 + k;
        workers[k].n = 0;
        pthread_create(&t[k], NULL, fn, &workers[k]);
    }
    for (unsigned k = 0; k < THREADS; k++)
        pthread_join(t[k], NULL);
}

/* A machine of `ram` bytes: frame 0..1 MiB reserved, the rest usable. */
static uint64_t machine(uint64_t ram)
{
    host_arena_init(ram);
    struct mem_region map[] = {{0, MiB(1), MEM_RESERVED}, {MiB(1), ram - MiB(1), MEM_USABLE}};
    frame_init(map, 2);
    struct frame_stats s;
    frame_get_stats(&s);
    return s.free_frames;
}

static void back_to_baseline(const char *phase, uint64_t base)
{
    frame_drain_cpu_caches();
    struct frame_stats s;
    frame_get_stats(&s);
    CHECK(s.free_frames == base, "%s: %llu frames free, %llu at the start", phase,
          (unsigned long long)s.free_frames, (unsigned long long)base);
    for (unsigned k = 0; k < CPU_MAX; k++)
        CHECK(frame_cache_count(k) == 0, "%s: cache %u not empty after a drain", phase, k);
    CHECK(frame_check(), "%s: frame_check failed", phase);
}

int main(void)
{
    pthread_barrier_init(&barrier, NULL, THREADS);

    uint64_t base = machine(MiB(64));
    run(storm);
    back_to_baseline("storm", base);
    host_arena_free();

    base = machine(MiB(3)); /* 512 frames, less the metadata */
    for (unsigned k = 0; k < THREADS; k++) {
        workers[k].oom = calloc(base, sizeof(paddr_t));
        workers[k].noom = 0;
    }
    run(oom);
    uint64_t took = 0;
    for (unsigned k = 0; k < THREADS; k++)
        took += workers[k].noom;
    CHECK(took == base, "out of memory: the threads took %llu of %llu free frames",
          (unsigned long long)took, (unsigned long long)base);
    back_to_baseline("oom", base);
    for (unsigned k = 0; k < THREADS; k++)
        free(workers[k].oom);
    host_arena_free();

    if (failed)
        return 1;
    printf("tsan_frame: storm (%d ops x %d threads) and out-of-memory runs clean\n", STORM_OPS,
           THREADS);
    return 0;
}
