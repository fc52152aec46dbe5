/* Heap adapter: SlayerOS's own kmalloc/kfree/krealloc (kernel/mm/heap.c,
 * built for the host with -DHEAP_POISON=0) over frames from kernel/mm/frame.c
 * in a host arena that stands for 2 GiB of physical memory, made resident
 * before measuring (arena_prefault). */
#include "arch/x86_64/cpu_local.h"
#include "mm/frame.h"
#include "mm/heap.h"
#include "support.h"

static const char *alloc_name = "slayer";
static const int alloc_held_known = 1; /* pages taken from the frame allocator */
/* bench/threads.c: each thread stands for a CPU of its own. */
#define ALLOC_THREAD_INIT(t) (host_cpu_index = (unsigned)(t))

static void alloc_setup(void)
{
    uint64_t size = GiB(2); /* w2p-1000000 peaks near 150 MiB, w2m-100000 near 190 MiB */
    void *arena = host_arena_init(size);
    if (bench_mode == MODE_TIME) /* only times see page faults */
        arena_prefault(arena, size);
    struct mem_region map[] = {
        {0, MiB(1), MEM_RESERVED},
        {MiB(1), size - MiB(1), MEM_USABLE},
    };
    frame_init(map, 2);
    heap_init();
}
static inline void *alloc_malloc(size_t n) { return kmalloc(n); }
static inline void alloc_free(void *p) { kfree(p); }
static inline void *alloc_realloc(void *p, size_t n) { return krealloc(p, n); }
static uint64_t alloc_held(void)
{
    struct heap_stats st;
    heap_get_stats(&st);
    return st.pages_held * PAGE_SIZE;
}
