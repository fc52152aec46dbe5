/* The region set of a user address space (mm/vm_region.h): an AVL tree of
 * disjoint page-aligned regions in address order.
 *
 * Tree. Every node has parent links, so vmr_next/vmr_prev need no stack and
 * every structural change is followed by one walk from the changed node up
 * to the root (retrace): it recomputes height and augmentation and rotates
 * where a node's children differ in height by two. Insertion and erasure
 * both end with one retrace, so each is O(log n).
 *
 * Augmentation. Each node keeps, for its subtree, the lowest start
 * (t_sub_start), the highest end (t_sub_end) and the largest gap between two
 * consecutive regions of the subtree (t_sub_gap). All three are functions of
 * the subtree's contents only (not of its neighbours), so a rotation only has
 * to recompute the two nodes it moves, and changing a region's start or end in
 * place (merge, split, grow) only needs a retrace from that node. The gaps
 * around a subtree (from its predecessor's end, to its successor's start) are
 * passed down by vmr_find_gap, which knows them on the way down.
 *
 * Memory. New nodes come only from the caller's spares; nodes are freed only
 * when a merge absorbs a region or vmr_remove/vmr_clear drops one. Every
 * call checks that the spares it needs are there before it changes
 * anything, so a refusal leaves the set as it was. */
#include "mm/vm_region.h"

#include "lib/errno.h"
#include "lib/printf.h"
#include "mm/heap.h"

/* ---- tree helpers ---------------------------------------------------------- */

static int height(const struct vm_region *n)
{
    return n ? n->t_height : 0;
}

/* Recomputes n's height and augmentation from its children's. */
static void update(struct vm_region *n)
{
    struct vm_region *l = n->t_left, *r = n->t_right;
    int hl = height(l), hr = height(r);
    n->t_height = 1 + (hl > hr ? hl : hr);
    n->t_sub_start = l ? l->t_sub_start : n->start;
    n->t_sub_end = r ? r->t_sub_end : n->end;
    uint64_t gap = 0;
    if (l) {
        gap = MAX(gap, l->t_sub_gap);
        gap = MAX(gap, n->start - l->t_sub_end);
    }
    if (r) {
        gap = MAX(gap, r->t_sub_gap);
        gap = MAX(gap, r->t_sub_start - n->end);
    }
    n->t_sub_gap = gap;
}

/* Puts `to` where `from` hangs under parent (or at the root). */
static void replace_child(struct vm_regions *s, struct vm_region *parent, struct vm_region *from,
                          struct vm_region *to)
{
    if (!parent)
        s->root = to;
    else if (parent->t_left == from)
        parent->t_left = to;
    else
        parent->t_right = to;
    if (to)
        to->t_parent = parent;
}

/* Rotates x's right child up into x's place; returns it. */
static struct vm_region *rotate_left(struct vm_regions *s, struct vm_region *x)
{
    struct vm_region *y = x->t_right;
    replace_child(s, x->t_parent, x, y);
    x->t_right = y->t_left;
    if (y->t_left)
        y->t_left->t_parent = x;
    y->t_left = x;
    x->t_parent = y;
    update(x);
    update(y);
    return y;
}

/* Rotates x's left child up into x's place; returns it. */
static struct vm_region *rotate_right(struct vm_regions *s, struct vm_region *x)
{
    struct vm_region *y = x->t_left;
    replace_child(s, x->t_parent, x, y);
    x->t_left = y->t_right;
    if (y->t_right)
        y->t_right->t_parent = x;
    y->t_right = x;
    x->t_parent = y;
    update(x);
    update(y);
    return y;
}

/* From n up to the root: recomputes every node and restores the AVL balance.
 * Below n everything must already be correct. */
static void retrace(struct vm_regions *s, struct vm_region *n)
{
    while (n) {
        update(n);
        int bf = height(n->t_left) - height(n->t_right);
        if (bf > 1) {
            if (height(n->t_left->t_left) < height(n->t_left->t_right))
                rotate_left(s, n->t_left);
            n = rotate_right(s, n);
        } else if (bf < -1) {
            if (height(n->t_right->t_right) < height(n->t_right->t_left))
                rotate_right(s, n->t_right);
            n = rotate_left(s, n);
        }
        n = n->t_parent;
    }
}

/* Links node (start, end and attributes set, disjoint from every region) into
 * the tree. */
static void link_node(struct vm_regions *s, struct vm_region *node)
{
    struct vm_region *parent = NULL, **link = &s->root;
    while (*link) {
        parent = *link;
        link = node->start < parent->start ? &parent->t_left : &parent->t_right;
    }
    node->t_left = node->t_right = NULL;
    node->t_parent = parent;
    *link = node;
    s->count++;
    retrace(s, node);
}

/* Takes n out of the tree (not freed). */
static void unlink_node(struct vm_regions *s, struct vm_region *n)
{
    struct vm_region *from; /* the lowest node whose subtree changed */
    if (!n->t_left || !n->t_right) {
        from = n->t_parent;
        replace_child(s, n->t_parent, n, n->t_left ? n->t_left : n->t_right);
    } else {
        /* The successor y (leftmost of the right subtree) takes n's place. */
        struct vm_region *y = n->t_right;
        while (y->t_left)
            y = y->t_left;
        if (y->t_parent == n) {
            from = y;
        } else {
            from = y->t_parent;
            from->t_left = y->t_right;
            if (y->t_right)
                y->t_right->t_parent = from;
            y->t_right = n->t_right;
            n->t_right->t_parent = y;
        }
        y->t_left = n->t_left;
        n->t_left->t_parent = y;
        replace_child(s, n->t_parent, n, y);
    }
    s->count--;
    retrace(s, from);
}

/* Takes a node from the spares, or NULL when none is left. */
static struct vm_region *take_spare(struct vmr_spare *sp)
{
    if (!sp)
        return NULL;
    for (int i = 0; i < 2; i++) {
        struct vm_region *n = sp->n[i];
        if (n) {
            sp->n[i] = NULL;
            return n;
        }
    }
    return NULL;
}

static int spares_left(const struct vmr_spare *sp)
{
    return sp ? (sp->n[0] != NULL) + (sp->n[1] != NULL) : 0;
}

/* Copies the attributes (range included) of src into dst, not the links. */
static void copy_attrs(struct vm_region *dst, const struct vm_region *src)
{
    dst->start = src->start;
    dst->end = src->end;
    dst->prot = src->prot;
    dst->kind = src->kind;
    dst->image = src->image;
    dst->image_off = src->image_off;
    dst->grow_floor = src->grow_floor;
}

/* Moves r's start up to new_start (inside r), keeping its image bytes where
 * they were. The tree order is unchanged; the caller retraces. */
static void advance_start(struct vm_region *r, vaddr_t new_start)
{
    if (r->kind == VMR_IMAGE)
        r->image_off += new_start - r->start;
    r->start = new_start;
}

/* Splits r at addr (r->start < addr < r->end) using node `hi`: r keeps
 * [start, addr), hi gets [addr, end) with the same attributes. */
static void split(struct vm_regions *s, struct vm_region *r, vaddr_t addr, struct vm_region *hi)
{
    copy_attrs(hi, r);
    advance_start(hi, addr);
    r->end = addr;
    retrace(s, r);
    link_node(s, hi);
}

/* Merges r's successor into r while the two are touching and compatible. */
static void absorb_next(struct vm_regions *s, struct vm_region *r)
{
    for (;;) {
        struct vm_region *n = vmr_next(s, r);
        if (!n || n->start != r->end || !vmr_compatible(r, n))
            return;
        unlink_node(s, n);
        r->end = n->end;
        retrace(s, r);
        kfree(n);
    }
}

/* ---- queries ----------------------------------------------------------------- */

void vmr_init(struct vm_regions *s)
{
    s->root = NULL;
    s->count = 0;
}

struct vm_region *vmr_lookup_from(const struct vm_regions *s, vaddr_t addr)
{
    /* Regions are disjoint and ordered, so their ends are ordered too. */
    struct vm_region *n = s->root, *best = NULL;
    while (n) {
        if (n->end > addr) {
            best = n;
            n = n->t_left;
        } else {
            n = n->t_right;
        }
    }
    return best;
}

struct vm_region *vmr_find(const struct vm_regions *s, vaddr_t addr)
{
    struct vm_region *r = vmr_lookup_from(s, addr);
    return r && r->start <= addr ? r : NULL;
}

struct vm_region *vmr_first(const struct vm_regions *s)
{
    struct vm_region *n = s->root;
    while (n && n->t_left)
        n = n->t_left;
    return n;
}

struct vm_region *vmr_last(const struct vm_regions *s)
{
    struct vm_region *n = s->root;
    while (n && n->t_right)
        n = n->t_right;
    return n;
}

struct vm_region *vmr_next(const struct vm_regions *s, const struct vm_region *r)
{
    (void)s;
    if (r->t_right) {
        struct vm_region *n = r->t_right;
        while (n->t_left)
            n = n->t_left;
        return n;
    }
    while (r->t_parent && r->t_parent->t_right == r)
        r = r->t_parent;
    return r->t_parent;
}

struct vm_region *vmr_prev(const struct vm_regions *s, const struct vm_region *r)
{
    (void)s;
    if (r->t_left) {
        struct vm_region *n = r->t_left;
        while (n->t_right)
            n = n->t_right;
        return n;
    }
    while (r->t_parent && r->t_parent->t_left == r)
        r = r->t_parent;
    return r->t_parent;
}

bool vmr_compatible(const struct vm_region *a, const struct vm_region *b)
{
    if (a->prot != b->prot || a->kind != b->kind || a->kind == VMR_STACK)
        return false;
    if (a->kind == VMR_IMAGE)
        return a->image == b->image && a->image_off + (a->end - a->start) == b->image_off;
    return true;
}

int vmr_height(const struct vm_regions *s)
{
    return height(s->root);
}

/* ---- changes ----------------------------------------------------------------- */

static bool range_ok(vaddr_t start, vaddr_t end)
{
    return start < end && IS_ALIGNED(start, PAGE_SIZE) && IS_ALIGNED(end, PAGE_SIZE);
}

int vmr_insert(struct vm_regions *s, const struct vm_region *tmpl, struct vmr_spare *sp)
{
    vaddr_t start = tmpl->start, end = tmpl->end;
    if (!range_ok(start, end) || (tmpl->prot & ~VM_PROT_MASK))
        return -EINVAL;
    if (tmpl->kind != VMR_ANON && tmpl->kind != VMR_IMAGE && tmpl->kind != VMR_STACK)
        return -EINVAL;
    if (tmpl->kind == VMR_IMAGE && !tmpl->image)
        return -EINVAL;
    if (tmpl->kind == VMR_STACK &&
        (!IS_ALIGNED(tmpl->grow_floor, PAGE_SIZE) || tmpl->grow_floor > start))
        return -EINVAL;

    struct vm_region *next = vmr_lookup_from(s, start);
    if (next && next->start < end)
        return -EEXIST;
    struct vm_region *prev = next ? vmr_prev(s, next) : vmr_last(s);

    /* The new region as it will be stored (unused fields normalized, so
     * compatibility and vmr_check see one form). */
    struct vm_region r;
    copy_attrs(&r, tmpl);
    if (r.kind != VMR_IMAGE)
        r.image = NULL, r.image_off = 0;
    if (r.kind != VMR_STACK)
        r.grow_floor = 0;

    bool with_prev = prev && prev->end == start && vmr_compatible(prev, &r);
    bool with_next = next && next->start == end && vmr_compatible(&r, next);
    if (with_prev && with_next) {
        unlink_node(s, next);
        prev->end = next->end;
        retrace(s, prev);
        kfree(next);
    } else if (with_prev) {
        prev->end = end;
        retrace(s, prev);
    } else if (with_next) {
        next->start = start;
        next->image_off = r.image_off;
        retrace(s, next);
    } else {
        struct vm_region *node = take_spare(sp);
        if (!node)
            return -ENOMEM;
        copy_attrs(node, &r);
        link_node(s, node);
    }
    return 0;
}

int vmr_remove(struct vm_regions *s, vaddr_t start, vaddr_t end, struct vmr_spare *sp)
{
    if (!range_ok(start, end))
        return -EINVAL;
    struct vm_region *r = vmr_lookup_from(s, start);
    if (r && r->start < start && r->end > end) {
        /* One region straddles both edges: it keeps [r->start, start) and
         * a new node gets [end, r->end). */
        struct vm_region *hi = take_spare(sp);
        if (!hi)
            return -ENOMEM;
        split(s, r, end, hi);
        r->end = start;
        retrace(s, r);
        return 0;
    }
    while (r && r->start < end) {
        struct vm_region *n = vmr_next(s, r);
        if (r->start < start) {
            r->end = start; /* straddles the low edge */
            retrace(s, r);
        } else if (r->end > end) {
            advance_start(r, end); /* straddles the high edge */
            retrace(s, r);
            break;
        } else {
            unlink_node(s, r);
            kfree(r);
        }
        r = n;
    }
    return 0;
}

int vmr_protect(struct vm_regions *s, vaddr_t start, vaddr_t end, uint32_t prot,
                struct vmr_spare *sp)
{
    if (!range_ok(start, end) || (prot & ~VM_PROT_MASK))
        return -EINVAL;
    /* Every page of [start, end) must be in a region. */
    struct vm_region *first = vmr_lookup_from(s, start), *last = NULL;
    vaddr_t covered = start;
    for (struct vm_region *r = first; covered < end; r = vmr_next(s, r)) {
        if (!r || r->start > covered)
            return -ENOENT;
        covered = r->end;
        last = r;
    }
    bool split_lo = first->start < start && first->prot != prot;
    bool split_hi = last->end > end && last->prot != prot;
    if (spares_left(sp) < split_lo + split_hi)
        return -ENOMEM;

    if (split_lo) {
        struct vm_region *hi = take_spare(sp);
        split(s, first, start, hi);
        if (last == first)
            last = hi;
        first = hi;
    }
    if (split_hi)
        split(s, last, end, take_spare(sp));
    for (struct vm_region *r = first; r && r->start < end; r = vmr_next(s, r))
        r->prot = prot;

    /* Merge from the region before the range to the one after it: only
     * pairs touching [start, end) can have become compatible. */
    struct vm_region *r = vmr_prev(s, first);
    if (!r)
        r = first;
    for (;;) {
        absorb_next(s, r);
        if (r->end >= end)
            break;
        r = vmr_next(s, r);
    }
    return 0;
}

int vmr_grow_down(struct vm_regions *s, struct vm_region *r, vaddr_t new_start)
{
    if (r->kind != VMR_STACK || !IS_ALIGNED(new_start, PAGE_SIZE) || new_start >= r->start)
        return -EINVAL;
    if (new_start < r->grow_floor)
        return -EFAULT;
    struct vm_region *prev = vmr_prev(s, r);
    if (prev && prev->end > new_start)
        return -EFAULT;
    r->start = new_start;
    retrace(s, r);
    return 0;
}

void vmr_clear(struct vm_regions *s)
{
    /* Post-order without a stack: descend to a leaf, free it, cut it from its
     * parent, continue from the parent. */
    struct vm_region *n = s->root;
    while (n) {
        if (n->t_left) {
            n = n->t_left;
        } else if (n->t_right) {
            n = n->t_right;
        } else {
            struct vm_region *p = n->t_parent;
            if (p) {
                if (p->t_left == n)
                    p->t_left = NULL;
                else
                    p->t_right = NULL;
            }
            kfree(n);
            n = p;
        }
    }
    vmr_init(s);
}

/* ---- gap search -------------------------------------------------------------- */

/* The lowest fit in the gaps of the range [pred_end, succ_start), which holds
 * exactly the regions of subtree n (NULL: the range is one gap), clipped to
 * [lo, hi) with lo page aligned. */
static bool gap_search(const struct vm_region *n, vaddr_t pred_end, vaddr_t succ_start,
                       uint64_t len, vaddr_t lo, vaddr_t hi, vaddr_t *out)
{
    if (succ_start <= lo || pred_end >= hi)
        return false;
    if (!n) {
        vaddr_t a = MAX(pred_end, lo), b = MIN(succ_start, hi);
        if (b - a < len)
            return false;
        *out = a;
        return true;
    }
    /* Inside [lo, hi) this test is exact, so a subtree entirely inside that
     * passes it holds a fit, and one that fails is skipped whole: only the
     * subtrees straddling lo or hi are searched on both sides. */
    uint64_t widest = MAX(n->t_sub_gap, MAX(n->t_sub_start - pred_end, succ_start - n->t_sub_end));
    if (widest < len)
        return false;
    return gap_search(n->t_left, pred_end, n->start, len, lo, hi, out) ||
           gap_search(n->t_right, n->end, succ_start, len, lo, hi, out);
}

bool vmr_find_gap(const struct vm_regions *s, uint64_t len, vaddr_t lo, vaddr_t hi,
                  vaddr_t *out)
{
    vaddr_t a = ALIGN_UP(lo, PAGE_SIZE);
    if (len == 0 || a < lo || a >= hi)
        return false;
    return gap_search(s->root, 0, UINT64_MAX, len, a, hi, out);
}

/* ---- consistency check ------------------------------------------------------- */

struct check_walk {
    const struct vm_region *prev; /* the region before, in address order */
    uint64_t count;
};

/* Checks the subtree at n (whose parent link must be `parent`) in order. */
static bool check_node(const struct vm_region *n, const struct vm_region *parent,
                       struct check_walk *w)
{
    if (!n)
        return true;
    if (n->t_parent != parent) {
        kprintf("vmr_check: region [%#llx, %#llx) has a wrong parent link\n",
                (unsigned long long)n->start, (unsigned long long)n->end);
        return false;
    }
    if (!check_node(n->t_left, n, w))
        return false;

    unsigned long long s = n->start, e = n->end;
    const char *bad = NULL;
    if (!range_ok(n->start, n->end))
        bad = "is empty or unaligned";
    else if (n->prot & ~VM_PROT_MASK)
        bad = "has protection bits outside VM_PROT_MASK";
    else if (n->kind != VMR_ANON && n->kind != VMR_IMAGE && n->kind != VMR_STACK)
        bad = "has an unknown kind";
    else if (n->kind == VMR_IMAGE && !n->image)
        bad = "is an image region without an image";
    else if (n->kind != VMR_IMAGE && (n->image || n->image_off))
        bad = "is not an image region but has an image";
    else if (n->kind == VMR_STACK &&
             (n->grow_floor > n->start || !IS_ALIGNED(n->grow_floor, PAGE_SIZE)))
        bad = "is a stack with a bad grow floor";
    else if (n->kind != VMR_STACK && n->grow_floor)
        bad = "is not a stack but has a grow floor";
    else if (w->prev && w->prev->end > n->start)
        bad = "overlaps or precedes the region before it";
    else if (w->prev && w->prev->end == n->start && vmr_compatible(w->prev, n))
        bad = "is compatible with the region it touches but not merged";
    if (bad) {
        kprintf("vmr_check: region [%#llx, %#llx) %s\n", s, e, bad);
        return false;
    }
    w->prev = n;
    w->count++;

    if (!check_node(n->t_right, n, w))
        return false;

    /* The children are correct now: n's own fields must be what update()
     * would compute from them. */
    const struct vm_region *l = n->t_left, *r = n->t_right;
    int hl = height(l), hr = height(r);
    uint64_t gap = 0;
    if (l)
        gap = MAX(l->t_sub_gap, n->start - l->t_sub_end);
    if (r)
        gap = MAX(gap, MAX(r->t_sub_gap, r->t_sub_start - n->end));
    if (n->t_height != 1 + MAX(hl, hr))
        bad = "has a wrong height";
    else if (hl - hr > 1 || hr - hl > 1)
        bad = "is out of balance";
    else if (n->t_sub_start != (l ? l->t_sub_start : n->start) ||
             n->t_sub_end != (r ? r->t_sub_end : n->end) || n->t_sub_gap != gap)
        bad = "has a wrong subtree augmentation";
    if (bad) {
        kprintf("vmr_check: region [%#llx, %#llx) %s\n", s, e, bad);
        return false;
    }
    return true;
}

bool vmr_check(const struct vm_regions *s)
{
    struct check_walk w = {NULL, 0};
    if (!check_node(s->root, NULL, &w))
        return false;
    if (w.count != s->count) {
        kprintf("vmr_check: count is %llu, the tree holds %llu regions\n",
                (unsigned long long)s->count, (unsigned long long)w.count);
        return false;
    }
    return true;
}
