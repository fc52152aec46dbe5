/* Frame reference counts, for copy-on-write (issue 15). A frame mapped by
 * one address space has no count at all ("one owner"); each further sharer
 * adds one "extra reference". Extra references live in one byte per frame
 * (0..255), in per-GiB arrays of 262144 bytes (256 KiB: one
 * frame_alloc_contig(64, 256 KiB) run) that exist only while some frame of
 * their GiB is shared. A directory with one 16-byte entry per managed GiB
 * (the array's address and a count of the GiB's shared frames plus the
 * operations in flight) points at them; it is allocated on the first share.
 *
 * State bytes per GiB of managed memory: 16 (directory entry) while nothing
 * in the GiB is shared, 16 + 262144 while something is (256 KiB per GiB,
 * 1/4096 of it; Linux's 64-byte struct page per 4 KiB costs 16 MiB per GiB).
 * An idle system costs the directory only: one 4 KiB page covers 256 GiB.
 *
 * Concurrency: every function may run on every CPU at once. Counts change
 * with atomic byte compare-and-swap; a GiB's array is allocated and freed
 * under one lock (rank LOCK_RANK_FRAMEREF, before LOCK_RANK_FRAME) and kept
 * alive by the entry's count while any CPU uses it. Never from an interrupt
 * handler (arrays come from the frame allocator). Portable: the host tests
 * run it with threads standing for CPUs. docs/memory.md. */
#pragma once

#include "lib/types.h"

/* Frames one GiB's array counts, and the array's size in bytes. */
#define FRAMEREF_GIB_FRAMES (GiB(1) / PAGE_SIZE)
#define FRAMEREF_ARRAY_BYTES FRAMEREF_GIB_FRAMES
/* The most extra references a frame can have. */
#define FRAMEREF_MAX 255u

/* Sizes the directory to the frames frame_init manages and forgets every
 * count (nothing is allocated until the first share). Call after frame_init;
 * when nobody did, the first call of any other function sizes it itself. */
void frameref_init(void);
/* Adds one reference to frame (page aligned, managed memory; panics
 * otherwise): true, or false with nothing changed when it already has
 * FRAMEREF_MAX extra references or its GiB's array (or the directory)
 * cannot be allocated; the caller then copies the page instead. */
bool frameref_share(paddr_t frame);
/* Extra references frame has now (0: one owner). */
unsigned frameref_extra(paddr_t frame);
/* Drops one reference: true when the caller held the last one (no extra
 * references: the frame is then the caller's to free or reuse, nothing
 * changed), false when others remain (one extra reference fewer). The put
 * that takes a GiB's last shared frame back to one owner frees its array. */
bool frameref_put(paddr_t frame);
/* Frames with extra references > 0 now (a snapshot). */
uint64_t frameref_shared_frames(void);
/* Bytes of memory frameref holds now: the directory's pages and every
 * allocated array. */
uint64_t frameref_metadata_bytes(void);
/* With no frameref call running on any CPU: true when every GiB's count
 * equals its array's nonzero bytes, an array exists exactly when its GiB has
 * a shared frame, and the shared-frame and array totals agree; prints the
 * first broken rule (kprintf) and returns false otherwise. For tests. */
bool frameref_check(void);
