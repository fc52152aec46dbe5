/* The frame allocator's peers in the benchmark (not kernel code):
 *   nextfit  a byte per frame (1 = used) and a cursor; alloc scans forward
 *            from the cursor (the baseline the SlayerOS docs describe)
 *   stack    a stack of free frame numbers: O(1) pop and push, 8 bytes per
 *            frame (2 MiB per GiB), no double-free check (the speed limit) */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Sets up both peers over `frames` frames, all used. */
void peers_init(uint64_t frames);
/* Releases the peers' memory. */
void peers_fini(void);
/* Marks frame f free in both peers (setup only, not timed). */
void peers_seed_free(uint64_t f);

/* Next-fit: a free frame number, or 0 when none. */
uint64_t nextfit_alloc(void);
/* Next-fit: frees frame f (aborts on a double free). */
void nextfit_free(uint64_t f);
/* Next-fit: first run of `count` free frames starting at a multiple of
 * `align` frames, or 0. */
uint64_t nextfit_alloc_contig(uint64_t count, uint64_t align);
/* Next-fit: frees a run. */
void nextfit_free_contig(uint64_t f, uint64_t count);

/* Stack: a free frame number, or 0 when none. */
uint64_t stack_alloc(void);
/* Stack: pushes frame f. */
void stack_free(uint64_t f);
