/* Physical frame allocator: one bit per 4 KiB frame (1 = used) over the
 * sanitized memory map, plus a summary level so that allocation cost does not
 * depend on RAM size or fullness, and a per-CPU cache of free frames in front
 * of it. Callable on every CPU at once, never from an interrupt handler. See
 * docs/memory.md. */
#pragma once

#include "lib/types.h"
#include "mm/memregion.h"

struct frame_stats {
    uint64_t total_frames;       /* frames from 0 up to the highest usable/reclaimable frame */
    uint64_t usable_frames;      /* frames the allocator manages (usable + reclaimed) */
    uint64_t free_frames;        /* currently free */
    uint64_t reserved_frames;    /* reserved, ACPI, bad, framebuffer, kernel below the top frame */
    uint64_t reclaimable_frames; /* bootloader-reclaimable not yet given back */
    uint64_t reclaimed_frames;   /* bootloader-reclaimable already given back */
    uint64_t metadata_bytes;     /* bitmap + summary */
};

/* Free frames one CPU's cache holds at most. */
#define FRAME_CACHE_MAX 63

/* Builds the allocator from a sanitized memory map (mm/memmap.h). Its metadata
 * is taken from usable memory (through PHYS2VIRT) and marked used. Frame 0 is
 * never handed out. Panics when no usable memory can hold the metadata. */
void frame_init(const struct mem_region *map, size_t count);
/* One free 4 KiB frame, or 0 when memory is exhausted, every CPU's frame
 * cache included (never panics). Usually from this CPU's cache. */
paddr_t frame_alloc(void);
/* Like frame_alloc, with the frame's contents zeroed. */
paddr_t frame_alloc_zeroed(void);
/* The lowest free frame when it lies below `limit` (taken), else 0 with
 * nothing changed: for memory a CPU must reach with a short address (the AP
 * trampoline below 1 MiB). O(1) plus a skip over full words. */
paddr_t frame_alloc_below(paddr_t limit);
/* `count` physically contiguous frames whose first address is a multiple of
 * `align` bytes (a power of two >= 4096), or 0 when no such run is free.
 * O(1), found or refused, for 16 frames at 64 KiB and 64 frames at 256 KiB
 * however fragmented memory is; O(1) for count <= 16 and align <= 64 KiB
 * while a free 64 KiB-aligned 64 KiB block exists, and for count <= 64 and
 * align <= 256 KiB while a free 256 KiB-aligned block exists (not first-fit
 * then); otherwise a first-fit scan (docs/memory.md). */
paddr_t frame_alloc_contig(size_t count, uint64_t align);
#ifdef SLAYER_HOST
/* Bitmap words (candidate runs, in a scan) the last frame_alloc_contig call
 * examined: a cost measure for tests that does not count instructions. */
extern __thread uint64_t frame_contig_probes;
/* Frames a CPU's cache may hold (FRAME_CACHE_MAX, at most); host tests of the bitmap layer set 0,
 * so that single frames go straight to and from the bitmap. */
extern unsigned frame_cache_limit;
#endif
/* Returns one frame (to this CPU's cache). Panics (naming the address and
 * the caller) when it is unaligned, outside managed memory, not usable
 * memory, or already free (in the bitmap or in any CPU's cache). */
void frame_free(paddr_t frame);
/* Gives every CPU's frame cache back to the bitmap; returns the frames moved
 * (for tests that compare the bitmap's state, and for the monitor). */
uint64_t frame_drain_cpu_caches(void);
/* Frames in CPU index cpu's frame cache right now (0 for cpu >= CPU_MAX). */
unsigned frame_cache_count(unsigned cpu);
/* Returns a run of `count` frames from base (from frame_alloc_contig, or a
 * part of one), a bitmap word at a time. Checks the whole run first: when it
 * is unaligned, empty, wraps, leaves usable memory or holds a free frame it
 * panics (naming the first bad address and the caller) with nothing changed. */
void frame_free_contig(paddr_t base, size_t count);
/* Gives every MEM_BOOTLOADER_RECLAIMABLE region of the map passed to
 * frame_init to the allocator; returns the bytes reclaimed. Call once, after
 * nothing points into bootloader memory any more. */
uint64_t frame_reclaim_bootloader(void);
/* True when the frame is currently allocated or reserved (false for a free
 * frame, in the bitmap or in a CPU's cache). */
bool frame_is_used(paddr_t frame);
/* Fills *out with the current statistics (free_frames counts the frames in
 * every CPU's cache; a snapshot while other CPUs allocate). */
void frame_get_stats(struct frame_stats *out);
/* Walks the whole bitmap: true when the summaries keep their invariants over
 * it (a clear sum1 bit means full, a clear empty1 bit means not wholly free,
 * a clear group1 bit means no free 64 KiB-aligned 64 KiB block; the lowest
 * levels may hold stale set bits, the upper ones are exact) and
 * the free count agrees, and every CPU's cache holds only free frames (used
 * in the bitmap, not held, in usable memory, each in one cache) and all of
 * them (for tests and fuzzers; O(frames / 64); stops every CPU's cache). */
bool frame_check(void);
/* A 64-bit digest of the allocator's whole state (bitmap, every summary, held
 * bits, free count, contig cursor, every CPU's cache): equal digests mean unchanged state, for tests that
 * check a refused call changed nothing (O(frames / 64)). */
uint64_t frame_state_digest(void);
