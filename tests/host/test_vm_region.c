/* Host tests of mm/vm_region: lookups at region edges, the insert/remove/
 * protect/grow rules with their merges and splits, the spares each call takes
 * (counted), find_gap, vmr_check after every step (and that it sees broken
 * invariants), the tree height with 10,000 regions, and the heap back to its
 * baseline after vmr_clear. A random sequence is compared with a page model. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "lib/errno.h"
#include "mm/frame.h"
#include "mm/heap.h"
#include "mm/vm_region.h"
#include "support.h"

#define BASE 0x400000ull
/* The address of page p of the test window. */
#define P(p) (BASE + (uint64_t)(p) * PAGE_SIZE)
#define RW (VM_READ | VM_WRITE)
#define RX (VM_READ | VM_EXEC)

static struct vm_regions set;
static uint64_t live0;

static uint64_t live_blocks(void)
{
    struct heap_stats st;
    heap_get_stats(&st);
    return st.live_blocks;
}

static void setup(void)
{
    host_arena_init(MiB(64));
    struct mem_region map[] = {{0, MiB(1), MEM_RESERVED}, {MiB(1), MiB(63), MEM_USABLE}};
    frame_init(map, 2);
    heap_init();
    live0 = live_blocks();
    vmr_init(&set);
}

/* Every test ends with a consistent set; clearing it gives every node back. */
static void teardown(void)
{
    cr_assert(vmr_check(&set), "%s", host_log);
    vmr_clear(&set);
    cr_assert_eq(set.count, 0);
    cr_assert_null(set.root);
    cr_assert_eq(live_blocks(), live0, "heap blocks %llu, %llu before",
                 (unsigned long long)live_blocks(), (unsigned long long)live0);
    host_arena_free();
}

TestSuite(vm_region, .init = setup, .fini = teardown);

/* ---- helpers ------------------------------------------------------------------ */

/* A spare set of n nodes (0..2). */
static struct vmr_spare spares(int n)
{
    struct vmr_spare sp = {{NULL, NULL}};
    for (int i = 0; i < n; i++) {
        sp.n[i] = kmalloc(sizeof(struct vm_region));
        cr_assert_not_null(sp.n[i]);
    }
    return sp;
}

/* Frees what the call left of sp; returns how many nodes it took of `had`. */
static int spares_done(struct vmr_spare *sp, int had)
{
    int left = 0;
    for (int i = 0; i < 2; i++)
        if (sp->n[i]) {
            kfree(sp->n[i]);
            sp->n[i] = NULL;
            left++;
        }
    return had - left;
}

static int taken; /* spares the last helper call took */

static struct vm_region tmpl(uint64_t p0, uint64_t p1, uint32_t prot, enum vm_kind kind)
{
    struct vm_region t;
    memset(&t, 0, sizeof(t));
    t.start = P(p0), t.end = P(p1), t.prot = prot, t.kind = kind;
    return t;
}

/* Inserts t with two spares offered; checks the set afterwards. */
static int ins_t(const struct vm_region *t)
{
    struct vmr_spare sp = spares(2);
    int rc = vmr_insert(&set, t, &sp);
    taken = spares_done(&sp, 2);
    cr_assert(vmr_check(&set), "%s", host_log);
    return rc;
}

static int ins(uint64_t p0, uint64_t p1, uint32_t prot)
{
    struct vm_region t = tmpl(p0, p1, prot, VMR_ANON);
    return ins_t(&t);
}

static int rem(uint64_t p0, uint64_t p1)
{
    struct vmr_spare sp = spares(2);
    int rc = vmr_remove(&set, P(p0), P(p1), &sp);
    taken = spares_done(&sp, 2);
    cr_assert(vmr_check(&set), "%s", host_log);
    return rc;
}

static int prot(uint64_t p0, uint64_t p1, uint32_t pr)
{
    struct vmr_spare sp = spares(2);
    int rc = vmr_protect(&set, P(p0), P(p1), pr, &sp);
    taken = spares_done(&sp, 2);
    cr_assert(vmr_check(&set), "%s", host_log);
    return rc;
}

/* The set is exactly these regions (pages and prot), in order. */
struct want {
    uint64_t p0, p1;
    uint32_t prot;
};
static void expect(const struct want *w, size_t n)
{
    struct vm_region *r = vmr_first(&set);
    for (size_t i = 0; i < n; i++, r = vmr_next(&set, r)) {
        cr_assert_not_null(r, "region %zu missing", i);
        cr_assert(r->start == P(w[i].p0) && r->end == P(w[i].p1) && r->prot == w[i].prot,
                  "region %zu is [%#llx, %#llx) prot %u, want [%#llx, %#llx) prot %u", i,
                  (unsigned long long)r->start, (unsigned long long)r->end, r->prot,
                  (unsigned long long)P(w[i].p0), (unsigned long long)P(w[i].p1), w[i].prot);
    }
    cr_assert_null(r, "more regions than expected");
    cr_assert_eq(set.count, n);
}
#define EXPECT(...)                                                                     \
    do {                                                                                \
        static const struct want w_[] = {__VA_ARGS__};                                  \
        expect(w_, ARRAY_SIZE(w_));                                                     \
    } while (0)
#define EXPECT_EMPTY() expect(NULL, 0)

/* ---- lookups ---------------------------------------------------------------- */

Test(vm_region, empty_set)
{
    cr_assert_null(vmr_first(&set));
    cr_assert_null(vmr_last(&set));
    cr_assert_null(vmr_find(&set, P(0)));
    cr_assert_null(vmr_lookup_from(&set, 0));
    cr_assert_eq(vmr_height(&set), 0);
    vaddr_t a;
    cr_assert(vmr_find_gap(&set, PAGE_SIZE, P(3), P(4), &a));
    cr_assert_eq(a, P(3));
}

Test(vm_region, find_and_lookup_at_edges)
{
    cr_assert_eq(ins(10, 20, RW), 0);
    cr_assert_eq(ins(30, 31, VM_READ), 0);
    struct vm_region *a = vmr_find(&set, P(10)), *b = vmr_find(&set, P(30));
    cr_assert_not_null(a);
    cr_assert_not_null(b);
    cr_assert_eq(vmr_find(&set, P(20) - 1), a);
    cr_assert_null(vmr_find(&set, P(10) - 1));
    cr_assert_null(vmr_find(&set, P(20)));
    cr_assert_null(vmr_find(&set, P(29) + 5));
    cr_assert_eq(vmr_find(&set, P(31) - 1), b);
    cr_assert_null(vmr_find(&set, P(31)));
    /* lookup_from: the first region ending above the address */
    cr_assert_eq(vmr_lookup_from(&set, 0), a);
    cr_assert_eq(vmr_lookup_from(&set, P(19)), a);
    cr_assert_eq(vmr_lookup_from(&set, P(20)), b);
    cr_assert_eq(vmr_lookup_from(&set, P(31) - 1), b);
    cr_assert_null(vmr_lookup_from(&set, P(31)));
    cr_assert_eq(vmr_first(&set), a);
    cr_assert_eq(vmr_last(&set), b);
    cr_assert_eq(vmr_next(&set, a), b);
    cr_assert_null(vmr_next(&set, b));
    cr_assert_eq(vmr_prev(&set, b), a);
    cr_assert_null(vmr_prev(&set, a));
}

/* ---- insert ------------------------------------------------------------------ */

Test(vm_region, insert_refuses_overlap_and_bad_ranges)
{
    cr_assert_eq(ins(10, 20, RW), 0);
    cr_assert_eq(taken, 1);
    cr_assert_eq(ins(5, 11, RX), -EEXIST);
    cr_assert_eq(ins(19, 25, RX), -EEXIST);
    cr_assert_eq(ins(12, 13, RX), -EEXIST);
    cr_assert_eq(ins(0, 100, RX), -EEXIST);
    cr_assert_eq(ins(10, 20, RW), -EEXIST);
    cr_assert_eq(taken, 0);
    cr_assert_eq(ins(7, 7, RW), -EINVAL);
    cr_assert_eq(ins(8, 7, RW), -EINVAL);
    struct vm_region t = tmpl(1, 2, RW, VMR_ANON);
    t.start += 1;
    cr_assert_eq(ins_t(&t), -EINVAL);
    t = tmpl(1, 2, RW, VMR_ANON);
    t.end -= 8;
    cr_assert_eq(ins_t(&t), -EINVAL);
    t = tmpl(1, 2, 0x8, VMR_ANON);
    cr_assert_eq(ins_t(&t), -EINVAL);
    t = tmpl(1, 2, RW, VMR_IMAGE); /* no image */
    cr_assert_eq(ins_t(&t), -EINVAL);
    t = tmpl(1, 2, RW, VMR_STACK);
    t.grow_floor = P(3); /* above start */
    cr_assert_eq(ins_t(&t), -EINVAL);
    t = tmpl(1, 2, RW, (enum vm_kind)7);
    cr_assert_eq(ins_t(&t), -EINVAL);
    cr_assert_eq(taken, 0);
    EXPECT({10, 20, RW});
}

Test(vm_region, insert_without_spare_is_enomem_and_changes_nothing)
{
    cr_assert_eq(ins(10, 20, RW), 0);
    struct vm_region t = tmpl(30, 40, RW, VMR_ANON);
    struct vmr_spare none = {{NULL, NULL}};
    cr_assert_eq(vmr_insert(&set, &t, &none), -ENOMEM);
    cr_assert_eq(vmr_insert(&set, &t, NULL), -ENOMEM);
    /* a merge needs no node */
    t = tmpl(20, 25, RW, VMR_ANON);
    cr_assert_eq(vmr_insert(&set, &t, NULL), 0);
    cr_assert(vmr_check(&set));
    EXPECT({10, 25, RW});
}

Test(vm_region, insert_merges_only_compatible_neighbours)
{
    cr_assert_eq(ins(10, 20, RW), 0);
    cr_assert_eq(ins(20, 30, RW), 0); /* same prot, touching: merged, no node */
    cr_assert_eq(taken, 0);
    EXPECT({10, 30, RW});
    cr_assert_eq(ins(5, 10, RW), 0); /* merged in front */
    cr_assert_eq(taken, 0);
    EXPECT({5, 30, RW});
    cr_assert_eq(ins(30, 31, VM_READ), 0); /* prot differs: its own region */
    cr_assert_eq(taken, 1);
    EXPECT({5, 30, RW}, {30, 31, VM_READ});
    cr_assert_eq(ins(40, 50, RW), 0);
    cr_assert_eq(ins(32, 40, RW), 0); /* merges with the next only (a hole before) */
    cr_assert_eq(taken, 0);
    EXPECT({5, 30, RW}, {30, 31, VM_READ}, {32, 50, RW});
    cr_assert_eq(ins(31, 32, VM_READ), 0); /* with the previous only: prot differs from the next */
    EXPECT({5, 30, RW}, {30, 32, VM_READ}, {32, 50, RW});
    cr_assert_eq(ins(60, 70, RW), 0);
    cr_assert_eq(ins(80, 90, RW), 0);
    uint64_t live = live_blocks();
    cr_assert_eq(ins(70, 80, RW), 0); /* joins both: one node freed */
    cr_assert_eq(taken, 0);
    cr_assert_eq(live_blocks(), live - 1);
    EXPECT({5, 30, RW}, {30, 32, VM_READ}, {32, 50, RW}, {60, 90, RW});
    /* a different kind never merges */
    struct vm_region t = tmpl(90, 95, RW, VMR_STACK);
    t.grow_floor = P(90);
    cr_assert_eq(ins_t(&t), 0);
    cr_assert_eq(taken, 1);
    EXPECT({5, 30, RW}, {30, 32, VM_READ}, {32, 50, RW}, {60, 90, RW}, {90, 95, RW});
}

Test(vm_region, image_regions_merge_when_offsets_continue)
{
    static const uint8_t bytes[64];
    struct vm_image img = {bytes, sizeof(bytes)}, other = {bytes, 10};
    struct vm_region t = tmpl(10, 12, RX, VMR_IMAGE);
    t.image = &img, t.image_off = 0x1000;
    cr_assert_eq(ins_t(&t), 0);
    t = tmpl(12, 13, RX, VMR_IMAGE);
    t.image = &img, t.image_off = 0x3000; /* continues 0x1000 + 2 pages */
    cr_assert_eq(ins_t(&t), 0);
    cr_assert_eq(taken, 0);
    EXPECT({10, 13, RX});
    cr_assert_eq(vmr_first(&set)->image_off, 0x1000);
    t = tmpl(13, 14, RX, VMR_IMAGE);
    t.image = &img, t.image_off = 0x5000; /* a jump: not merged */
    cr_assert_eq(ins_t(&t), 0);
    cr_assert_eq(taken, 1);
    t = tmpl(9, 10, RX, VMR_IMAGE);
    t.image = &other, t.image_off = 0; /* another image: not merged */
    cr_assert_eq(ins_t(&t), 0);
    cr_assert_eq(taken, 1);
    t = tmpl(8, 9, RX, VMR_ANON); /* anonymous next to an image: not merged */
    cr_assert_eq(ins_t(&t), 0);
    cr_assert_eq(taken, 1);
    EXPECT({8, 9, RX}, {9, 10, RX}, {10, 13, RX}, {13, 14, RX});
    /* merged in front: the surviving node takes the new (lower) offset */
    cr_assert_eq(rem(9, 10), 0);
    t = tmpl(9, 10, RX, VMR_IMAGE);
    t.image = &img, t.image_off = 0;
    cr_assert_eq(ins_t(&t), 0);
    cr_assert_eq(taken, 0);
    EXPECT({8, 9, RX}, {9, 13, RX}, {13, 14, RX});
    cr_assert_eq(vmr_find(&set, P(9))->image_off, 0);
    /* anonymous regions drop image fields given to them */
    t = tmpl(20, 21, RW, VMR_ANON);
    t.image = &img, t.image_off = 0x7000, t.grow_floor = P(3);
    cr_assert_eq(ins_t(&t), 0);
    struct vm_region *r = vmr_find(&set, P(20));
    cr_assert(r->image == NULL && r->image_off == 0 && r->grow_floor == 0);
}

Test(vm_region, stacks_never_merge)
{
    struct vm_region t = tmpl(10, 12, RW, VMR_STACK);
    t.grow_floor = P(2);
    cr_assert_eq(ins_t(&t), 0);
    t = tmpl(12, 14, RW, VMR_STACK);
    t.grow_floor = P(12);
    cr_assert_eq(ins_t(&t), 0);
    cr_assert_eq(taken, 1);
    EXPECT({10, 12, RW}, {12, 14, RW});
    cr_assert_eq(vmr_find(&set, P(10))->grow_floor, P(2));
}

/* ---- remove ------------------------------------------------------------------ */

Test(vm_region, remove_middle_splits_with_one_spare)
{
    static const uint8_t bytes[1];
    struct vm_image img = {bytes, 1};
    struct vm_region t = tmpl(10, 20, RX, VMR_IMAGE);
    t.image = &img, t.image_off = 0x10000;
    cr_assert_eq(ins_t(&t), 0);
    cr_assert_eq(rem(13, 15), 0);
    cr_assert_eq(taken, 1);
    EXPECT({10, 13, RX}, {15, 20, RX});
    cr_assert_eq(vmr_find(&set, P(10))->image_off, 0x10000);
    cr_assert_eq(vmr_find(&set, P(15))->image_off, 0x10000 + 5 * PAGE_SIZE);
    /* without a spare: refused, nothing changed */
    struct vmr_spare none = {{NULL, NULL}};
    cr_assert_eq(vmr_remove(&set, P(16), P(17), &none), -ENOMEM);
    EXPECT({10, 13, RX}, {15, 20, RX});
    /* putting the pages back with the right offset merges all three */
    t = tmpl(13, 15, RX, VMR_IMAGE);
    t.image = &img, t.image_off = 0x10000 + 3 * PAGE_SIZE;
    cr_assert_eq(ins_t(&t), 0);
    EXPECT({10, 20, RX});
}

Test(vm_region, remove_edges_holes_and_several_regions)
{
    cr_assert_eq(ins(10, 20, RW), 0);
    cr_assert_eq(ins(25, 30, VM_READ), 0);
    cr_assert_eq(ins(30, 35, RW), 0);
    cr_assert_eq(ins(40, 50, RX), 0);
    cr_assert_eq(rem(10, 12), 0); /* low edge of a region */
    cr_assert_eq(taken, 0);
    cr_assert_eq(rem(18, 20), 0); /* high edge */
    EXPECT({12, 18, RW}, {25, 30, VM_READ}, {30, 35, RW}, {40, 50, RX});
    uint64_t live = live_blocks();
    cr_assert_eq(rem(15, 45), 0); /* cuts two, drops two, across holes */
    cr_assert_eq(taken, 0);
    cr_assert_eq(live_blocks(), live - 2);
    EXPECT({12, 15, RW}, {45, 50, RX});
    cr_assert_eq(rem(0, 5), 0); /* nothing there */
    cr_assert_eq(rem(20, 40), 0);
    cr_assert_eq(rem(5, 3), -EINVAL);
    cr_assert_eq(vmr_remove(&set, P(1) + 1, P(2), NULL), -EINVAL);
    EXPECT({12, 15, RW}, {45, 50, RX});
    cr_assert_eq(rem(0, 1000), 0);
    EXPECT_EMPTY();
}

/* ---- protect ----------------------------------------------------------------- */

Test(vm_region, protect_splits_both_ends_and_merges_back)
{
    cr_assert_eq(ins(10, 30, RW), 0);
    cr_assert_eq(prot(15, 20, VM_READ), 0);
    cr_assert_eq(taken, 2);
    EXPECT({10, 15, RW}, {15, 20, VM_READ}, {20, 30, RW});
    cr_assert_eq(prot(12, 15, VM_READ), 0); /* one split, then a merge */
    cr_assert_eq(taken, 1);
    EXPECT({10, 12, RW}, {12, 20, VM_READ}, {20, 30, RW});
    uint64_t live = live_blocks();
    cr_assert_eq(prot(12, 20, RW), 0); /* all three are one again */
    cr_assert_eq(taken, 0);
    cr_assert_eq(live_blocks(), live - 2);
    EXPECT({10, 30, RW});
    cr_assert_eq(prot(10, 30, RW), 0); /* no change, no spare */
    cr_assert_eq(taken, 0);
    cr_assert_eq(prot(20, 30, RX), 0); /* the high end: one split */
    cr_assert_eq(taken, 1);
    EXPECT({10, 20, RW}, {20, 30, RX});
}

Test(vm_region, protect_across_several_regions)
{
    cr_assert_eq(ins(10, 20, RW), 0);
    cr_assert_eq(ins(20, 30, VM_READ), 0);
    cr_assert_eq(ins(30, 40, RX), 0);
    cr_assert_eq(prot(15, 35, VM_READ), 0);
    cr_assert_eq(taken, 2);
    EXPECT({10, 15, RW}, {15, 35, VM_READ}, {35, 40, RX});
    /* a stack in the middle keeps its own node */
    struct vm_region t = tmpl(40, 45, RW, VMR_STACK);
    t.grow_floor = P(40);
    cr_assert_eq(ins_t(&t), 0);
    cr_assert_eq(prot(35, 45, VM_READ), 0);
    cr_assert_eq(taken, 0);
    EXPECT({10, 15, RW}, {15, 40, VM_READ}, {40, 45, VM_READ});
}

Test(vm_region, protect_over_a_hole_changes_nothing)
{
    cr_assert_eq(ins(10, 20, RW), 0);
    cr_assert_eq(ins(21, 30, RW), 0);
    uint64_t live = live_blocks();
    cr_assert_eq(prot(15, 25, VM_READ), -ENOENT);
    cr_assert_eq(taken, 0);
    cr_assert_eq(prot(5, 12, VM_READ), -ENOENT);  /* hole before */
    cr_assert_eq(prot(25, 31, VM_READ), -ENOENT); /* hole after */
    cr_assert_eq(prot(40, 41, VM_READ), -ENOENT); /* nothing at all */
    cr_assert_eq(prot(12, 14, 0x10), -EINVAL);
    cr_assert_eq(prot(14, 12, VM_READ), -EINVAL);
    cr_assert_eq(live_blocks(), live);
    EXPECT({10, 20, RW}, {21, 30, RW});
    /* too few spares: refused before anything changed */
    struct vmr_spare one = spares(1);
    cr_assert_eq(vmr_protect(&set, P(12), P(14), VM_READ, &one), -ENOMEM);
    cr_assert_eq(spares_done(&one, 1), 0);
    EXPECT({10, 20, RW}, {21, 30, RW});
    one = spares(1);
    cr_assert_eq(vmr_protect(&set, P(12), P(20), VM_READ, &one), 0);
    cr_assert_eq(spares_done(&one, 1), 1);
    cr_assert(vmr_check(&set));
    EXPECT({10, 12, RW}, {12, 20, VM_READ}, {21, 30, RW});
}

/* ---- grow_down ----------------------------------------------------------------- */

Test(vm_region, grow_down_limits)
{
    cr_assert_eq(ins(10, 20, RW), 0);
    struct vm_region t = tmpl(40, 50, RW, VMR_STACK);
    t.grow_floor = P(25);
    cr_assert_eq(ins_t(&t), 0);
    struct vm_region *st = vmr_find(&set, P(40)), *an = vmr_find(&set, P(10));
    cr_assert_eq(vmr_grow_down(&set, an, P(5)), -EINVAL);     /* not a stack */
    cr_assert_eq(vmr_grow_down(&set, st, P(40)), -EINVAL);    /* not below start */
    cr_assert_eq(vmr_grow_down(&set, st, P(45)), -EINVAL);
    cr_assert_eq(vmr_grow_down(&set, st, P(39) + 8), -EINVAL); /* unaligned */
    cr_assert_eq(vmr_grow_down(&set, st, P(24)), -EFAULT);    /* below the floor */
    EXPECT({10, 20, RW}, {40, 50, RW});
    cr_assert_eq(vmr_grow_down(&set, st, P(30)), 0);
    cr_assert(vmr_check(&set));
    cr_assert_eq(vmr_grow_down(&set, st, P(25)), 0); /* exactly the floor */
    cr_assert(vmr_check(&set));
    EXPECT({10, 20, RW}, {25, 50, RW});
    cr_assert_eq(vmr_find(&set, P(25)), st);
    /* a floor below the previous region: that region limits the growth */
    struct vm_region u = tmpl(70, 80, RW, VMR_STACK);
    u.grow_floor = P(0);
    cr_assert_eq(ins_t(&u), 0);
    struct vm_region *s2 = vmr_find(&set, P(70));
    cr_assert_eq(vmr_grow_down(&set, s2, P(49)), -EFAULT);
    cr_assert_eq(vmr_grow_down(&set, s2, P(50)), 0);
    cr_assert(vmr_check(&set));
    EXPECT({10, 20, RW}, {25, 50, RW}, {50, 80, RW});
}

/* ---- find_gap -------------------------------------------------------------------- */

Test(vm_region, find_gap_edges_and_full)
{
    vaddr_t a = 0;
    cr_assert_eq(ins(10, 20, RW), 0);
    cr_assert_eq(ins(22, 30, VM_READ), 0);
    cr_assert_eq(ins(33, 40, RX), 0);
    /* at the window's low edge */
    cr_assert(vmr_find_gap(&set, 10 * PAGE_SIZE, P(0), P(100), &a));
    cr_assert_eq(a, P(0));
    cr_assert(vmr_find_gap(&set, 10 * PAGE_SIZE, P(0), P(10), &a));
    cr_assert_eq(a, P(0));
    cr_assert_not(vmr_find_gap(&set, 11 * PAGE_SIZE, P(0), P(10), &a));
    /* an unaligned lo is rounded up */
    cr_assert(vmr_find_gap(&set, PAGE_SIZE, P(5) + 1, P(100), &a));
    cr_assert_eq(a, P(6));
    /* the lowest gap that fits */
    cr_assert(vmr_find_gap(&set, 2 * PAGE_SIZE, P(10), P(100), &a));
    cr_assert_eq(a, P(20));
    cr_assert(vmr_find_gap(&set, 3 * PAGE_SIZE, P(10), P(100), &a));
    cr_assert_eq(a, P(30));
    cr_assert(vmr_find_gap(&set, 4 * PAGE_SIZE, P(10), P(100), &a));
    cr_assert_eq(a, P(40));
    /* a partial page counts as a page of room */
    cr_assert(vmr_find_gap(&set, 2 * PAGE_SIZE + 1, P(10), P(100), &a));
    cr_assert_eq(a, P(30));
    /* lo inside a gap */
    cr_assert(vmr_find_gap(&set, PAGE_SIZE, P(21), P(100), &a));
    cr_assert_eq(a, P(21));
    cr_assert(vmr_find_gap(&set, 2 * PAGE_SIZE, P(21), P(100), &a));
    cr_assert_eq(a, P(30));
    /* hi exactly at a gap's end */
    cr_assert(vmr_find_gap(&set, 3 * PAGE_SIZE, P(10), P(33), &a));
    cr_assert_eq(a, P(30));
    cr_assert_not(vmr_find_gap(&set, 3 * PAGE_SIZE, P(10), P(33) - 1, &a));
    /* full: the window holds only regions */
    cr_assert_not(vmr_find_gap(&set, PAGE_SIZE, P(10), P(20), &a));
    cr_assert_not(vmr_find_gap(&set, PAGE_SIZE, P(33), P(40), &a));
    cr_assert_not(vmr_find_gap(&set, 0, P(0), P(100), &a));
    cr_assert_not(vmr_find_gap(&set, PAGE_SIZE, P(50), P(50), &a));
    cr_assert_not(vmr_find_gap(&set, PAGE_SIZE, UINT64_MAX - 10, UINT64_MAX, &a));
    /* the whole space above the last region */
    cr_assert(vmr_find_gap(&set, GiB(1), P(0), UINT64_MAX, &a));
    cr_assert_eq(a, P(40));
}

/* ---- check, scale, clear ------------------------------------------------------- */

Test(vm_region, check_reports_broken_invariants)
{
    cr_assert_eq(ins(10, 20, RW), 0);
    cr_assert_eq(ins(30, 40, VM_READ), 0);
    cr_assert_eq(ins(50, 60, RX), 0);
    struct vm_region *r = vmr_find(&set, P(30));
    host_log_clear();
    r->end = P(50) + PAGE_SIZE; /* overlaps the next */
    cr_assert_not(vmr_check(&set));
    cr_assert(host_log_contains("vmr_check:"), "%s", host_log);
    r->end = P(40);
    r->prot = RW;
    r->start = P(20); /* touches the previous with the same prot, unmerged */
    cr_assert_not(vmr_check(&set));
    cr_assert(host_log_contains("not merged"), "%s", host_log);
    r->start = P(30);
    r->prot = VM_READ;
    set.count++;
    cr_assert_not(vmr_check(&set));
    cr_assert(host_log_contains("count"), "%s", host_log);
    set.count--;
    r->t_sub_gap += PAGE_SIZE;
    cr_assert_not(vmr_check(&set));
    r->t_sub_gap -= PAGE_SIZE;
    cr_assert(vmr_check(&set));
}

Test(vm_region, ten_thousand_regions_stay_balanced)
{
    enum { N = 10000 };
    /* in ascending order (the worst case for an unbalanced tree), every
     * other page, alternating prot so that nothing merges */
    for (uint64_t i = 0; i < N; i++) {
        struct vm_region t = tmpl(2 * i, 2 * i + 1, (i & 1) ? RW : VM_READ, VMR_ANON);
        struct vmr_spare sp = spares(1);
        cr_assert_eq(vmr_insert(&set, &t, &sp), 0);
        spares_done(&sp, 1);
    }
    cr_assert(vmr_check(&set), "%s", host_log);
    cr_assert_eq(set.count, N);
    /* AVL: height < 1.4405 log2(n + 2) - 0.3277; log2(10002) = 13.29 */
    int h = vmr_height(&set);
    cr_assert_leq(h, 18, "height %d", h);
    cr_assert_geq(h, 14);
    for (uint64_t i = 0; i < N; i += 97)
        cr_assert_eq(vmr_find(&set, P(2 * i))->start, P(2 * i));
    /* the single 2-page gap is found by the augmentation */
    vaddr_t a;
    cr_assert_not(vmr_find_gap(&set, 2 * PAGE_SIZE, P(0), P(2 * N - 1), &a));
    cr_assert_eq(rem(2 * 7001, 2 * 7001 + 1), 0);
    cr_assert(vmr_find_gap(&set, 2 * PAGE_SIZE, P(0), P(2 * N), &a));
    cr_assert_eq(a, P(2 * 7000 + 1));
    cr_assert_eq(prot(0, 2 * N - 1, RW), -ENOENT); /* holes everywhere */
    /* remove every other region from the top down (no spare needed), check
     * the shape */
    for (uint64_t i = N; i-- > 0;)
        if (i % 2 == 0)
            cr_assert_eq(vmr_remove(&set, P(2 * i), P(2 * i + 1), NULL), 0);
    cr_assert(vmr_check(&set), "%s", host_log);
    cr_assert_eq(set.count, N / 2 - 1); /* 7001 went before */
    cr_assert_leq(vmr_height(&set), 17);
}

static uint64_t xs = 0x9E3779B97F4A7C15ull;
static uint64_t rnd(void)
{
    xs ^= xs << 13, xs ^= xs >> 7, xs ^= xs << 17;
    return xs;
}

/* The lowest fit by a walk over every region: what vmr_find_gap must return. */
static bool gap_by_walk(uint64_t len, vaddr_t lo, vaddr_t hi, vaddr_t *out)
{
    vaddr_t a = ALIGN_UP(lo, PAGE_SIZE);
    if (len == 0 || a >= hi)
        return false;
    for (struct vm_region *r = vmr_first(&set);; r = vmr_next(&set, r)) {
        vaddr_t gap_end = r ? MIN(r->start, hi) : hi;
        if (a < gap_end && gap_end - a >= len) {
            *out = a;
            return true;
        }
        if (!r || r->start >= hi)
            return false;
        a = MAX(a, r->end);
    }
}

Test(vm_region, random_order_stays_balanced_and_gaps_match_a_walk)
{
    enum { N = 10000, SPAN = 40000 };
    /* one-page regions at random pages of [0, SPAN), alternating prot by
     * page parity, so that touching regions may or may not merge */
    uint64_t inserted = 0;
    for (int i = 0; i < N; i++) {
        uint64_t p = rnd() % SPAN;
        struct vm_region t = tmpl(p, p + 1, (p & 1) ? RW : VM_READ, VMR_ANON);
        struct vmr_spare sp = spares(1);
        int rc = vmr_insert(&set, &t, &sp);
        spares_done(&sp, 1);
        cr_assert(rc == 0 || rc == -EEXIST);
        inserted += rc == 0;
    }
    cr_assert(vmr_check(&set), "%s", host_log);
    cr_assert_gt(inserted, 8000);
    /* AVL: height < 1.4405 log2(n + 2) - 0.3277, which is 19 here */
    cr_assert_leq(vmr_height(&set), 19, "height %d for %llu regions", vmr_height(&set),
                  (unsigned long long)set.count);
    for (int q = 0; q < 3000; q++) {
        uint64_t len = (1 + rnd() % 8) * PAGE_SIZE - (rnd() % 2) * 100;
        vaddr_t lo = P(rnd() % SPAN) + rnd() % 3, hi = lo + (rnd() % 2000) * PAGE_SIZE + rnd() % 5;
        vaddr_t a = 0, b = 0;
        bool got = vmr_find_gap(&set, len, lo, hi, &a), want = gap_by_walk(len, lo, hi, &b);
        cr_assert(got == want && (!got || a == b),
                  "find_gap len %#llx [%#llx, %#llx): %d at %#llx, the walk says %d at %#llx",
                  (unsigned long long)len, (unsigned long long)lo, (unsigned long long)hi, got,
                  (unsigned long long)a, want, (unsigned long long)b);
    }
    /* remove random ranges until the set is empty, checking as it shrinks */
    for (int i = 0; set.count; i++) {
        uint64_t p = rnd() % SPAN;
        cr_assert_eq(rem(p, p + 1 + rnd() % 16), 0);
        cr_assert_leq(vmr_height(&set), 19);
        if (i > 200000)
            cr_assert_eq(rem(0, SPAN + 16), 0);
    }
}

Test(vm_region, clear_gives_every_node_back)
{
    for (uint64_t i = 0; i < 500; i++)
        cr_assert_eq(ins(3 * i, 3 * i + 2, (uint32_t)(i % 3)), 0);
    cr_assert_eq(set.count, 500);
    cr_assert_eq(live_blocks(), live0 + 500);
    vmr_clear(&set);
    cr_assert(vmr_check(&set));
    cr_assert_eq(set.count, 0);
    cr_assert_eq(live_blocks(), live0);
    cr_assert_eq(ins(1, 2, RW), 0); /* usable again */
}

/* ---- a random sequence against a page model ---------------------------------------- */

#define MODEL_PAGES 200
/* Per page: 0 free, else 1 + prot. Only anonymous regions here (the fuzz
 * target covers kinds); merges must then give exactly the maximal runs. */
static uint8_t model[MODEL_PAGES];

static void compare_model(void)
{
    /* the set's regions are exactly the maximal runs of equal nonzero pages */
    uint64_t n = 0;
    for (uint64_t p = 0; p < MODEL_PAGES;) {
        if (!model[p]) {
            cr_assert_null(vmr_find(&set, P(p)), "page %llu", (unsigned long long)p);
            p++;
            continue;
        }
        uint64_t q = p;
        while (q < MODEL_PAGES && model[q] == model[p])
            q++;
        struct vm_region *r = vmr_find(&set, P(p));
        cr_assert_not_null(r, "page %llu", (unsigned long long)p);
        cr_assert(r->start == P(p) && r->end == P(q) && r->prot == model[p] - 1u,
                  "run [%llu, %llu)", (unsigned long long)p, (unsigned long long)q);
        n++;
        p = q;
    }
    cr_assert_eq(set.count, n);
}

Test(vm_region, random_sequence_matches_the_model)
{
    uint64_t x = 0x2545F4914F6CDD1Dull;
    memset(model, 0, sizeof(model));
    for (int step = 0; step < 20000; step++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        uint64_t p0 = x % MODEL_PAGES, len = 1 + (x >> 20) % 12;
        uint64_t p1 = MIN(p0 + len, (uint64_t)MODEL_PAGES);
        uint32_t pr = (uint32_t)(x >> 40) % 3;
        bool any = false, all = true;
        for (uint64_t p = p0; p < p1; p++)
            any |= model[p] != 0, all &= model[p] != 0;
        switch ((x >> 50) % 3) {
        case 0:
            cr_assert_eq(ins(p0, p1, pr), any ? -EEXIST : 0);
            if (!any)
                memset(model + p0, (int)(pr + 1), p1 - p0);
            break;
        case 1:
            cr_assert_eq(rem(p0, p1), 0);
            memset(model + p0, 0, p1 - p0);
            break;
        default:
            cr_assert_eq(prot(p0, p1, pr), all ? 0 : -ENOENT);
            if (all)
                memset(model + p0, (int)(pr + 1), p1 - p0);
            break;
        }
        compare_model();
    }
}
