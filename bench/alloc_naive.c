/* Heap adapter: the naive first-fit segment list (bench/naive_heap.c) over
 * frames from kernel/mm/frame.c, like the slayer adapter. */
#include "mm/frame.h"
#include "naive_heap.h"
#include "support.h"

static const char *alloc_name = "naive";
static const int alloc_held_known = 1;

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
}
static inline void *alloc_malloc(size_t n) { return naive_malloc(n); }
static inline void alloc_free(void *p) { naive_free(p); }
static inline void *alloc_realloc(void *p, size_t n) { return naive_realloc(p, n); }
static uint64_t alloc_held(void) { return naive_held_bytes(); }
