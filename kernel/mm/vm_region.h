/* The region set of a user address space: which ranges of a vm_space are
 * mapped, with what protection and what backs them (anonymous zero pages, a
 * read-only image, a stack that grows down).
 *
 * A set is an AVL tree of disjoint regions ordered by address. Each node also
 * holds an augmentation over its subtree: the lowest start, the highest end
 * and the largest gap between two consecutive regions inside it, so that
 * vmr_find_gap finds the lowest free range of a given length in O(log n).
 *
 * Invariants (vmr_check verifies every one): regions are page aligned,
 * non-empty, disjoint and in address order; the tree is an AVL tree (heights
 * of siblings differ by at most one) with correct parent links, heights and
 * augmentation; no two touching regions are compatible (vmr_compatible: they
 * would have been merged); count is the number of nodes.
 *
 * No locks inside: the owning vm_space's lock protects a set. No call
 * allocates: a call that needs a new node takes it from a struct vmr_spare
 * the caller filled (kmalloc) before taking its lock, so no call can fail for
 * lack of memory once its spares are there; nodes that merging or removal
 * drops are kfree'd. Portable: compiled for the host tests and fuzzers too. */
#pragma once

#include "lib/types.h"

#define VM_READ  0x1u
#define VM_WRITE 0x2u
#define VM_EXEC  0x4u
#define VM_PROT_MASK 0x7u

enum vm_kind { VMR_ANON = 0, VMR_IMAGE = 1, VMR_STACK = 2 };

/* Bytes a VMR_IMAGE region shows (an executable's segment, ...); it outlives
 * every region using it. */
struct vm_image {
    const uint8_t *data;
    uint64_t len;
};

struct vm_region {
    /* private: the tree links and the subtree augmentation (vm_region.c) */
    struct vm_region *t_left, *t_right, *t_parent;
    vaddr_t t_sub_start;  /* lowest start in this subtree */
    vaddr_t t_sub_end;    /* highest end in this subtree */
    uint64_t t_sub_gap;   /* largest gap between consecutive regions of this subtree */
    int t_height;         /* AVL height: 1 for a leaf */

    vaddr_t start, end;   /* [start, end), page aligned, start < end */
    uint32_t prot;        /* VM_READ | VM_WRITE | VM_EXEC */
    enum vm_kind kind;
    /* VMR_IMAGE: byte `start` of the region is image byte image_off (bytes past
     * len read as zero). Other kinds: image NULL, image_off 0. */
    const struct vm_image *image;
    uint64_t image_off;
    /* VMR_STACK: lowest address `start` may grow down to (the guard gap lies
     * below). Other kinds: 0. */
    vaddr_t grow_floor;
};

struct vm_regions {
    struct vm_region *root;
    uint64_t count;
};

/* Nodes the caller allocated (kmalloc) before taking its lock; a call takes
 * the ones it needs (sets n[i] = NULL); the caller kfrees the rest. */
struct vmr_spare {
    struct vm_region *n[2];
};

/* Makes s the empty set. */
void vmr_init(struct vm_regions *s);
/* The region containing addr, or NULL; O(log n). */
struct vm_region *vmr_find(const struct vm_regions *s, vaddr_t addr);
/* The first region with end > addr, or NULL; O(log n). */
struct vm_region *vmr_lookup_from(const struct vm_regions *s, vaddr_t addr);
/* The lowest region, or NULL when the set is empty. */
struct vm_region *vmr_first(const struct vm_regions *s);
/* The highest region, or NULL when the set is empty. */
struct vm_region *vmr_last(const struct vm_regions *s);
/* The region after r in address order; NULL at the end. */
struct vm_region *vmr_next(const struct vm_regions *s, const struct vm_region *r);
/* The region before r in address order; NULL at the start. */
struct vm_region *vmr_prev(const struct vm_regions *s, const struct vm_region *r);

/* True when a (ending where b starts) and b would be one region: same prot
 * and kind, not VMR_STACK, and for VMR_IMAGE the same image with b's offset
 * continuing a's. */
bool vmr_compatible(const struct vm_region *a, const struct vm_region *b);

/* Adds [tmpl->start, tmpl->end) with tmpl's attributes: -EEXIST when it
 * overlaps a region, -EINVAL when unaligned/empty or the attributes are bad
 * (prot outside VM_PROT_MASK, unknown kind, VMR_IMAGE without an image,
 * VMR_STACK with an unaligned grow_floor above start); merges with
 * compatible neighbours (same prot, kind, image and contiguous image_off;
 * VMR_STACK never merges). Takes one spare exactly when it merges with
 * neither neighbour (-ENOMEM, nothing changed, when none is left); a merge
 * with both neighbours kfrees one node. O(log n). */
int vmr_insert(struct vm_regions *s, const struct vm_region *tmpl, struct vmr_spare *sp);
/* Removes every page of [start, end) from the set (holes fine), splitting
 * regions that straddle the edges (a split region keeps image_off
 * consistent): 0, or -EINVAL when unaligned/empty. Takes one spare exactly
 * when one region straddles both edges (-ENOMEM, nothing changed, when none
 * is left). kfrees removed nodes. O((k + 1) log n) for k regions touched. */
int vmr_remove(struct vm_regions *s, vaddr_t start, vaddr_t end, struct vmr_spare *sp);
/* Sets prot on [start, end): -ENOENT (nothing changed) unless every page of
 * the range is in some region, -EINVAL when unaligned/empty or prot has bits
 * outside VM_PROT_MASK; splits at the edges, merges compatible neighbours
 * afterwards (kfreeing the nodes merged away). Takes one spare per edge
 * where a region with another prot straddles it (so at most two; -ENOMEM,
 * nothing changed, when they are not there). O((k + 1) log n) for k regions
 * touched. */
int vmr_protect(struct vm_regions *s, vaddr_t start, vaddr_t end, uint32_t prot,
                struct vmr_spare *sp);
/* Grows a VMR_STACK region down so that it starts at new_start: 0; -EINVAL
 * (nothing changed) when r is not a stack or new_start is unaligned or not
 * below r->start; -EFAULT when new_start is below r->grow_floor or the range
 * would overlap the previous region. O(log n). */
int vmr_grow_down(struct vm_regions *s, struct vm_region *r, vaddr_t new_start);
/* The lowest page-aligned address a >= lo with [a, a+len) inside [lo, hi)
 * and free of regions: true and *out, or false (also for len 0). O(log n):
 * the subtree gap augmentation prunes every subtree inside [lo, hi) whose
 * gaps are all too small, so only the two boundary paths are walked. */
bool vmr_find_gap(const struct vm_regions *s, uint64_t len, vaddr_t lo, vaddr_t hi,
                  vaddr_t *out);
/* Checks every invariant (order, disjoint, aligned, attributes, parent links,
 * balanced heights, augmentation, no two touching compatible regions
 * unmerged, count): true when all hold; prints the first broken one
 * (kprintf "vmr_check: ..."). O(n). For tests and fuzzers. */
bool vmr_check(const struct vm_regions *s);
/* The tree's height (0 when empty): at most 1.44 log2(count + 2). For tests. */
int vmr_height(const struct vm_regions *s);
/* Removes and kfrees every region; s is then empty. */
void vmr_clear(struct vm_regions *s);
