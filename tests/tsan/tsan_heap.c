/* ThreadSanitizer test of mm/heap (make tsan-test): four threads standing
 * for CPUs (each its own host_cpu_index) allocate and free over every tier
 * (slab classes through the per-CPU magazines, medium segments, large runs)
 * and hand a share of their blocks to each other through a ring, so that
 * many frees happen on another CPU than the allocation. Then the same storm
 * in a small arena, where every CPU runs out of memory over and over and
 * drains the others' magazines. After each phase everything is freed and the
 * heap must be back to its baseline: heap_check passes, no live block, no
 * byte in use, no page held after heap_trim. Every block carries a pattern
 * checked before it is freed. TSan sees every lock's atomics (the cpu_mag
 * bit locks use __atomic_fetch_or under TSan), so an access no lock orders
 * is reported and fails the run. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "arch/x86_64/cpu_local.h"
#include "mm/frame.h"
#include "mm/heap.h"
#include "mm/mm.h"
#include "support.h"

#define CPUS 4
#define LOCAL 64    /* blocks a thread keeps */
#define RING 256    /* blocks in flight between threads */

struct block {
    unsigned char *p;
    size_t size;
    uint32_t seed;
};

/* The ring: blocks one thread allocated and another will free. */
static pthread_mutex_t ring_lock = PTHREAD_MUTEX_INITIALIZER;
static struct block ring[RING];
static unsigned ring_n;

static unsigned failures; /* atomic */
static unsigned long nulls; /* atomic: allocations refused (the OOM phase wants some) */

static void fail(const char *what, const struct block *b)
{
    fprintf(stderr, "tsan_heap: %s (block %p, %zu bytes)\n", what, (void *)b->p, b->size);
    __atomic_fetch_add(&failures, 1, __ATOMIC_RELAXED);
}

static uint32_t rnd(uint32_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 17;
    *s ^= *s << 5;
    return *s;
}

/* A size of every tier: mostly small, some medium, a few large. */
static size_t pick_size(uint32_t *s)
{
    uint32_t r = rnd(s) % 100;
    if (r < 80)
        return 1 + rnd(s) % 4096;
    if (r < 97)
        return 4097 + rnd(s) % (KiB(64) - 4096);
    return KiB(64) + 1 + rnd(s) % KiB(192);
}

static void fill(struct block *b)
{
    size_t n = b->size - 1 < 64 ? b->size - 1 : 64; /* the last byte has its own mark */
    for (size_t i = 0; i < n; i++)
        b->p[i] = (unsigned char)(b->seed + i);
    b->p[b->size - 1] = (unsigned char)(b->seed ^ 0xa5);
}

static void release(struct block *b)
{
    size_t n = b->size - 1 < 64 ? b->size - 1 : 64; /* the last byte has its own mark */
    for (size_t i = 0; i < n; i++)
        if (b->p[i] != (unsigned char)(b->seed + i)) {
            fail("pattern damaged", b);
            break;
        }
    if (b->p[b->size - 1] != (unsigned char)(b->seed ^ 0xa5))
        fail("last byte damaged", b);
    kfree(b->p);
    b->p = NULL;
}

static bool alloc_block(struct block *b, uint32_t *s)
{
    b->size = pick_size(s);
    b->seed = rnd(s);
    b->p = kmalloc(b->size);
    if (!b->p) {
        __atomic_fetch_add(&nulls, 1, __ATOMIC_RELAXED);
        return false;
    }
    fill(b);
    return true;
}

struct storm {
    unsigned cpu;
    unsigned rounds;
};

static void *storm_main(void *arg)
{
    struct storm *st = arg;
    host_cpu_index = st->cpu;
    uint32_t s = 0x9e3779b9u * (st->cpu + 1);
    struct block local[LOCAL];
    memset(local, 0, sizeof(local));
    for (unsigned r = 0; r < st->rounds; r++) {
        struct block *b = &local[rnd(&s) % LOCAL];
        if (b->p)
            release(b);
        if (!alloc_block(b, &s))
            continue;
        if (rnd(&s) % 3 == 0) { /* hand it over; free whatever the ring gives back */
            struct block out = {0};
            pthread_mutex_lock(&ring_lock);
            if (ring_n == RING) {
                unsigned k = rnd(&s) % RING;
                out = ring[k];
                ring[k] = *b;
            } else {
                ring[ring_n++] = *b;
            }
            pthread_mutex_unlock(&ring_lock);
            b->p = NULL;
            if (out.p)
                release(&out);
        }
        if (r % 2048 == 0 && b->p) { /* the readers that freeze the heap, amid the storm */
            const char *why = heap_validate_ptr(b->p);
            if (why)
                fail(why, b);
            struct heap_stats hs;
            heap_get_stats(&hs);
            if (st->cpu == 0 && !heap_check())
                fail("heap_check failed during the storm", b);
        }
    }
    for (unsigned i = 0; i < LOCAL; i++)
        if (local[i].p)
            release(&local[i]);
    return NULL;
}

static void storm(unsigned rounds)
{
    pthread_t th[CPUS];
    struct storm st[CPUS];
    for (unsigned i = 0; i < CPUS; i++) {
        st[i] = (struct storm){i, rounds};
        if (pthread_create(&th[i], NULL, storm_main, &st[i]) != 0) {
            perror("pthread_create");
            exit(2);
        }
    }
    for (unsigned i = 0; i < CPUS; i++)
        pthread_join(th[i], NULL);
    for (unsigned i = 0; i < ring_n; i++) /* on CPU 0: cross-CPU frees again */
        release(&ring[i]);
    ring_n = 0;
}

/* Everything freed: the heap must be back to an empty heap. */
static int check_baseline(const char *phase)
{
    struct heap_stats hs;
    if (!heap_check()) {
        fprintf(stderr, "tsan_heap: %s: heap_check failed\n", phase);
        return 1;
    }
    heap_get_stats(&hs);
    if (hs.live_blocks != 0 || hs.bytes_in_use != 0 || hs.alloc_count != hs.free_count) {
        fprintf(stderr, "tsan_heap: %s: %llu live blocks, %llu bytes in use after freeing all\n",
                phase, (unsigned long long)hs.live_blocks, (unsigned long long)hs.bytes_in_use);
        return 1;
    }
    heap_drain_cpu_caches();
    for (unsigned c = 0; c < CPU_MAX; c++)
        if (heap_cpu_cached(c, NULL) != 0) {
            fprintf(stderr, "tsan_heap: %s: CPU %u still caches objects after the drain\n", phase,
                    c);
            return 1;
        }
    heap_trim();
    heap_get_stats(&hs);
    if (hs.pages_held != 0 || !heap_check()) {
        fprintf(stderr, "tsan_heap: %s: %llu pages held after heap_trim\n", phase,
                (unsigned long long)hs.pages_held);
        return 1;
    }
    return 0;
}

static void setup(uint64_t size)
{
    host_arena_init(size);
    struct mem_region map[] = {
        {0, MiB(1), MEM_RESERVED},
        {MiB(1), size - MiB(1), MEM_USABLE},
    };
    frame_init(map, 2);
    heap_init();
}

int main(void)
{
    setup(MiB(256));
    storm(40000);
    int rc = check_baseline("storm");
    printf("tsan_heap: storm: %s\n", rc ? "FAILED" : "ok");

    setup(MiB(6)); /* small: every CPU runs out of memory again and again */
    unsigned long before = nulls;
    storm(20000);
    if (nulls == before) {
        fprintf(stderr, "tsan_heap: the OOM storm never ran out of memory\n");
        rc = 1;
    }
    rc |= check_baseline("oom storm");
    printf("tsan_heap: oom storm (%lu refusals): %s\n", nulls - before, rc ? "FAILED" : "ok");
    if (failures)
        fprintf(stderr, "tsan_heap: %u block(s) damaged\n", failures);
    return rc || failures ? 1 : 0;
}
