/* Visiting every mapping of an address space, with the effective attributes
 * the CPU applies (all levels combined). Used by the monitor's vmmap and by
 * the W^X self-test. Reads the tables through the HHDM; changes nothing. */
#pragma once

#include "mm/paging.h"

/* One leaf: virt (canonical) maps [phys, phys + size); flags are the
 * effective PAGE_WRITABLE and PAGE_USER (granted only when every level grants
 * them), PAGE_NX (set when any level sets it) and the leaf's PAGE_GLOBAL;
 * cache is the leaf's PAT index; level is 1 (4 KiB), 2 (2 MiB) or 3 (1 GiB). */
struct pagewalk_leaf {
    vaddr_t virt;
    paddr_t phys;
    uint64_t size;
    uint64_t flags;
    unsigned cache;
    int level;
};

typedef void (*pagewalk_fn)(void *ctx, const struct pagewalk_leaf *leaf);

/* Calls fn(ctx, leaf) for every present leaf of `as`, in increasing virtual
 * address order (lower half first). Returns the number of leaves visited. */
uint64_t pagewalk_leaves(const struct addrspace *as, pagewalk_fn fn, void *ctx);
