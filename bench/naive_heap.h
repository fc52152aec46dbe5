/* The baseline a kernel developer writes first (the heap the SlayerOS docs
 * describe): pages divided into segments on one address-ordered list,
 * first-fit search, split on alloc, coalescing of free neighbours on free.
 * Pages come from frame_alloc_contig and are never returned. */
#pragma once

#include <stddef.h>
#include <stdint.h>

/* First free segment that fits, split; NULL when no frames are left. */
void *naive_malloc(size_t n);
/* Marks the segment free and merges it with free neighbours. */
void naive_free(void *p);
/* malloc + copy + free, or in place when the segment is already big enough. */
void *naive_realloc(void *p, size_t n);
/* Bytes taken from the frame allocator so far. */
uint64_t naive_held_bytes(void);
