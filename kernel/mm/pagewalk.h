/* The one page-table walker: every walk of four-level tables in the kernel goes
 * through it (the entry encoding is mm/pte.h). Two forms, both reading the
 * tables through the HHDM and changing nothing themselves:
 *
 * - A cursor for one address (struct pt_cursor; pt_walk_start, pt_walk_down,
 *   pt_walk): a descent from the PML4 that knows va's entry at the current
 *   level and the pointer to its table, so a caller can change an entry,
 *   create or split a table and go on down. Inline and kept in registers,
 *   because the 4 KiB map/unmap fast paths are built on it. Used by paging's
 *   map, unmap, boundary splits, query, its walk cache, the monitor's `walk`
 *   (pagewalk_print_in) and backtrace's readable check (pagewalk_readable).
 * - A range walk with per-entry callbacks (pagewalk_range, struct
 *   pagewalk_ops, in the manner of Linux's pagewalk ops): every present entry
 *   that maps part of a range, in address order. Used by paging's range unmap
 *   and protect, subtree release and emptiness checks, the monitor's `vmmap`
 *   and the W^X self-test (pagewalk_leaves). */
#pragma once

#include "mm/mm.h"
#include "mm/paging.h"
#include "mm/pte.h"

/* ---- the cursor ------------------------------------------------------------------ */

/* A walk of one virtual address, stopped at va's entry at `level`. Small on
 * purpose (the compiler keeps it in registers): a caller that needs entries
 * further up keeps them itself, as unmap_4k_reclaim does. */
struct pt_cursor {
    vaddr_t va;
    int level;     /* the current entry's level: 4 (PML4) .. 1 (PT) */
    pte_t *slot;   /* va's entry in its level-`level` table */
    pte_t *parent; /* the entry pointing to that table; NULL at the PML4 */
};

/* The table at physical address t, through the HHDM. */
static inline pte_t *pt_table(paddr_t t)
{
    return (pte_t *)PHYS2VIRT(t);
}

/* True when va is canonical (bits 63..48 copy bit 47). */
static inline bool pt_va_canonical(vaddr_t va)
{
    return (vaddr_t)((int64_t)(va << 16) >> 16) == va;
}

/* Starts a walk of va in the tables rooted at pml4; returns va's PML4 entry. */
static inline pte_t *pt_walk_start(struct pt_cursor *c, paddr_t pml4, vaddr_t va)
{
    c->va = va;
    c->level = PT_LEVEL_PML4;
    c->parent = NULL;
    return c->slot = &pt_table(pml4)[pt_index(va, PT_LEVEL_PML4)];
}

/* Goes one level down through e, the current entry's value, which must be a
 * present table pointer (not a leaf). Returns va's entry in that table. */
static inline pte_t *pt_walk_into(struct pt_cursor *c, pte_t e)
{
    c->parent = c->slot;
    c->level--;
    return c->slot = &pt_table(e & PTE_ADDR_MASK)[pt_index(c->va, c->level)];
}

/* pt_walk_into the current entry. */
static inline pte_t *pt_walk_down(struct pt_cursor *c)
{
    return pt_walk_into(c, *c->slot);
}

/* Walks va from the PML4 down and stops at the first entry that is not
 * present, is a leaf, or is at level `stop`; returns it (c->level is its level). */
static inline pte_t *pt_walk(struct pt_cursor *c, paddr_t pml4, vaddr_t va, int stop)
{
    pte_t *s = pt_walk_start(c, pml4, va);
    while (c->level > stop && pte_present(*s) && !pte_is_leaf(*s, c->level))
        s = pt_walk_down(c);
    return s;
}

/* ---- the range walk -------------------------------------------------------------- */

/* A present entry met by pagewalk_range. */
struct pagewalk_entry {
    pte_t *slot;   /* the entry, in its table */
    pte_t *parent; /* the pointer entry to that table; NULL in the walk's top table */
    int level;
    vaddr_t va;    /* the first (canonical) address the entry maps */
    pte_t rights;  /* WRITABLE/USER when this entry and every one above grant them, NX when one sets it */
};

/* Callbacks of a range walk; any may be NULL. A non-zero return ends the walk
 * and becomes its result. `table_pre` may widen the pointer (its address must
 * stay); `table_post` may detach it (the walk reads it no more). */
struct pagewalk_ops {
    int (*leaf)(void *ctx, const struct pagewalk_entry *e);       /* a present leaf */
    int (*table_pre)(void *ctx, const struct pagewalk_entry *e);  /* a pointer, before its table */
    int (*table_post)(void *ctx, const struct pagewalk_entry *e); /* the same, after its table */
};

/* Visits, in increasing address order, every present entry of the level-`level`
 * table `table` (first address tbase, pointed to by `parent`, NULL for a PML4)
 * that maps part of [start, last] (both inside the table's range), and the
 * tables below them. `rights` is what the levels above grant (WRITABLE | USER
 * for a PML4). Returns 0, or the first non-zero callback result. */
int pagewalk_range(pte_t *table, pte_t *parent, int level, vaddr_t tbase, vaddr_t start,
                   vaddr_t last, pte_t rights, const struct pagewalk_ops *ops, void *ctx);

/* ---- decoded walks -------------------------------------------------------------- */

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
/* A leaf visitor that may end the walk: a non-zero return does. */
typedef int (*pagewalk_until_fn)(void *ctx, const struct pagewalk_leaf *leaf);

/* Calls fn(ctx, leaf) for every present leaf of `as`, in increasing virtual
 * address order (lower half first). Returns the number of leaves visited. */
uint64_t pagewalk_leaves(const struct addrspace *as, pagewalk_fn fn, void *ctx);

/* Calls fn(ctx, leaf) for every present leaf of `as` that maps part of
 * [start, last] (one half of the address space), in increasing address
 * order, under as->lock, until fn returns non-zero; returns that value, or 0.
 * A leaf is reported whole even when it straddles start or last. */
int pagewalk_leaves_in(const struct addrspace *as, vaddr_t start, vaddr_t last,
                       pagewalk_until_fn fn, void *ctx);
/* True when va is mapped present in the active tables (CR3), so a read of it
 * does not fault; false before the HHDM is known. Registered with
 * backtrace_set_readable, so lib/ checks pointers without knowing page tables. */
bool pagewalk_readable(vaddr_t va);

/* Prints the walk of virt in `as`: every level's index, raw entry, decoded
 * bits, and where it stops (the monitor's `walk`). */
void paging_walk_print_in(const struct addrspace *as, vaddr_t virt);
/* paging_walk_print_in over kernel_as. */
void paging_walk_print(vaddr_t virt);
