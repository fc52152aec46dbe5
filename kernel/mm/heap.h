/* The kernel heap: kmalloc/kfree and friends over frames from mm/frame.
 *
 * Three tiers, chosen by size (docs/memory.md; heap.c lists the file of each):
 *   small  (1..4096 B)    slabs: 64 KiB (or 32 KiB) chunks split into equal
 *                         objects of one of HEAP_SMALL_CLASSES size classes;
 *                         O(1) alloc/free.
 *   medium (4097..64 KiB) segments with boundary tags inside 256 KiB chunks,
 *                         segregated free lists with a bitmap (O(1)), free
 *                         neighbours coalesced in both directions.
 *   large  (> 64 KiB)     a run of frames per allocation, returned on free.
 * Every pointer is 16-byte aligned at least; kmalloc of a power of two up to
 * 4096 is aligned to that size. Misuse (double free, foreign or
 * interior pointer, overwritten header) panics naming the address.
 *
 * HEAP_REDZONES (default: on when SLAYER_DEBUG is set, off otherwise): every
 * block of every tier gets 16 bytes before it (the requested size, encoded
 * twice under address-dependent keys) and at least 16 bytes after it (0xfd),
 * checked by kfree, krealloc, kmalloc_usable_size and heap_check; a modified
 * byte panics "heap: overflow past the end of block <p> (size N): byte at +M
 * modified" (or "underflow before the start ... byte at -M"). The redzones
 * are not usable: kmalloc_usable_size returns exactly the size asked for.
 * Off, none of this code is compiled.
 *
 * HEAP_POISON (default 1; build with -DHEAP_POISON=0 for benchmarks): freed
 * and fresh heap memory is filled with 0x6b, and checked when handed out
 * again (and by heap_check), so writes after free are reported.
 *
 * Every call may be made on any CPU at the same time as on others, never
 * from an interrupt handler. Small blocks go through per-CPU magazines (a
 * block freed on another CPU than the one that allocated it simply goes
 * into the freeing CPU's); a lock per size class, per tier and for the runs
 * does the rest (docs/memory.md). Magazine objects are free in every
 * statistic and check. */
#pragma once

#include "lib/types.h"

#ifndef HEAP_POISON
#define HEAP_POISON 1
#endif

#ifndef HEAP_REDZONES
#if defined(SLAYER_DEBUG) && SLAYER_DEBUG
#define HEAP_REDZONES 1
#else
#define HEAP_REDZONES 0
#endif
#endif
/* Redzone bytes before each block, and the least a block costs in redzones
 * (before + after); 0 without HEAP_REDZONES. For tests that place blocks. */
#define HEAP_REDZONE_LEAD (HEAP_REDZONES ? 16u : 0u)
#define HEAP_REDZONE_OVERHEAD (HEAP_REDZONES ? 32u : 0u)

#define HEAP_SMALL_CLASSES 48
#define HEAP_SMALL_MAX 4096u
/* Up to 64 KiB in segments: a frame run per block this small costs far more
 * (a contiguous-run search and a frame-by-frame free; docs/performance.md). */
#define HEAP_MEDIUM_MAX KiB(64)
/* Requests above this are refused outright (NULL). */
#define HEAP_MAX_ALLOC GiB(1024)

struct heap_stats {
    uint64_t bytes_in_use;  /* usable bytes of live blocks (with HEAP_REDZONES:
                               including their redzones) */
    uint64_t bytes_free;    /* bytes the heap holds but has not handed out
                               (free slab objects, free segments) */
    uint64_t pages_held;    /* 4 KiB frames taken from the frame allocator */
    uint64_t alloc_count;   /* successful allocations since heap_init */
    uint64_t free_count;    /* frees since heap_init */
    uint64_t live_blocks;   /* alloc_count - free_count */
    uint64_t small_slabs;   /* slab chunks held (incl. cached empty ones) */
    uint64_t medium_chunks; /* medium chunks held */
    uint64_t large_blocks;  /* live large allocations */
    uint64_t large_pages;   /* frames their runs hold */
    uint64_t large_span;    /* bytes of address range their runs span (sum of end - start):
                               large_pages * PAGE_SIZE, as runs are aligned only as needed */
    struct {
        uint32_t size;   /* object size of the class */
        uint64_t live;   /* live objects */
        uint64_t allocs; /* allocations from this class since heap_init */
        uint64_t slabs;  /* slabs held by the class */
    } cls[HEAP_SMALL_CLASSES];
};

/* Sets up the (empty) heap; takes no memory yet. Call once, after frame_init. */
void heap_init(void);
/* At least `size` bytes, 16-byte aligned (a power of two up to HEAP_SMALL_MAX:
 * aligned to itself, in every build); NULL for size 0, size > HEAP_MAX_ALLOC,
 * or when memory is exhausted (the heap stays usable). */
void *kmalloc(size_t size);
/* Returns a block from kmalloc/kcalloc/krealloc/kmalloc_aligned; kfree(NULL) is a
 * no-op. Panics ("heap: ...0x<addr>...") before changing anything on a double
 * free, a pointer the heap never gave (outside the direct map, inside a block,
 * inside free memory), a corrupted header, or (HEAP_REDZONES) a damaged redzone. */
void kfree(void *ptr);
/* n * size zeroed bytes; NULL when the product overflows or as kmalloc. */
void *kcalloc(size_t n, size_t size);
/* Resizes ptr to `size` bytes keeping min(old, new) bytes of content.
 * krealloc(NULL, s) == kmalloc(s); krealloc(p, 0) frees p and returns NULL.
 * On failure returns NULL and leaves the old block intact and allocated. */
void *krealloc(void *ptr, size_t size);
/* `size` bytes at a multiple of `align` (a power of two; any value up to
 * 1 GiB, values below 16 mean 16). Freed with kfree. NULL for a bad align,
 * size 0, or no memory. */
void *kmalloc_aligned(size_t size, size_t align);
/* Bytes usable at ptr (>= the size asked for; exactly it with HEAP_REDZONES).
 * Panics like kfree on a bad ptr (and on a damaged redzone). */
size_t kmalloc_usable_size(void *ptr);
/* NULL when ptr is the start of a live heap block, otherwise a short reason
 * ("not a heap address", "already free", ...). Never panics, never faults:
 * for the monitor's `free <addr>`. Cost grows with the heap's size. */
const char *heap_validate_ptr(const void *ptr);
/* Empties every CPU's magazines and the depots, then gives every empty slab
 * and free medium chunk back to the frame allocator; returns the number of
 * frames released. */
size_t heap_trim(void);
/* Gives every object held in any CPU's magazines or the depots back to its
 * slab. A slab that becomes empty is released as kfree would release it
 * (when its class has a current slab and a spare already); heap_trim
 * releases the rest. */
void heap_drain_cpu_caches(void);
/* Objects held in CPU cpu's magazines right now (0 for a CPU that never
 * allocated); their bytes in *bytes when bytes is not NULL. */
uint64_t heap_cpu_cached(unsigned cpu, uint64_t *bytes);
/* Fills *out with the current statistics (exact: objects in magazines are free). */
void heap_get_stats(struct heap_stats *out);
/* Walks every heap structure and verifies its invariants (magics, bitmaps vs
 * free lists, counters, segment chains, no two adjacent free segments, free
 * lists vs segments, poison). Logs the first problem and returns false. */
bool heap_check(void);
