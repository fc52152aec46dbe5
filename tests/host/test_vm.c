/* Host tests of mm/vm (user address spaces and the fault logic) on a
 * simulated physical memory. There is no CPU to fault on the host, so the
 * tests stand in for it: an access goes through the page tables
 * (host_would_fault in support.c, paging_query on vs->pt) and calls
 * vm_fault exactly when the CPU would fault (nothing mapped; a write to a
 * non-writable leaf; an execute of an NX leaf; any access to a leaf without
 * PAGE_USER), then reads or writes the frame through the HHDM. vm_check runs after every step.
 *
 * kernel_as is a fresh address space here whose kernel half is fixed by
 * paging_kernel_half_prepare (one 512 GiB slot), which is what
 * paging_as_create_user needs. Threads are not needed for the shootdown
 * tests: host_cpu_index is per thread, and setting it to 1 around
 * paging_activate loads a space "on CPU 1". */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "lib/errno.h"
#include "mm/frame.h"
#include "mm/frameref.h"
#include "mm/heap.h"
#include "mm/mm.h"
#include "mm/paging.h"
#include "mm/vm.h"
#include "support.h"

#define BASE 0x400000ull
/* The address of page p of the test window. */
#define P(p) (BASE + (uint64_t)(p) * PAGE_SIZE)
#define RW (VM_READ | VM_WRITE)
#define RX (VM_READ | VM_EXEC)
/* A fault result meaning "the CPU would not have faulted". */
#define NO_FAULT ((enum vm_fault_result)-1)

/* The image: byte i is a function of i, so every offset's bytes are known. */
#define IMG_LEN (2 * PAGE_SIZE + PAGE_SIZE / 2)
static uint8_t img_bytes[IMG_LEN];
static const struct vm_image img = {img_bytes, IMG_LEN};

static uint8_t img_byte(uint64_t i)
{
    return (uint8_t)(i * 7 + (i >> 8) + 1);
}

static uint64_t free_frames(void)
{
    struct frame_stats s;
    frame_get_stats(&s);
    return s.free_frames;
}

static uint64_t live_blocks(void)
{
    struct heap_stats st;
    heap_get_stats(&st);
    return st.live_blocks;
}

/* What must come back after every space is destroyed. */
struct counts {
    uint64_t free;   /* free frames once the heap gave its empty pages back */
    uint64_t tables; /* paging_table_pages */
    uint64_t live;   /* heap blocks */
    uint64_t shared; /* frameref_shared_frames */
    uint64_t meta;   /* frameref_metadata_bytes */
};

static struct counts counts_now(void)
{
    heap_trim();
    return (struct counts){free_frames(), paging_table_pages(), live_blocks(),
                           frameref_shared_frames(), frameref_metadata_bytes()};
}

static void expect_counts(const struct counts *a, const char *when)
{
    struct counts b = counts_now();
    cr_assert_eq(b.free, a->free, "%s: %llu free frames, %llu before", when,
                 (unsigned long long)b.free, (unsigned long long)a->free);
    cr_assert_eq(b.tables, a->tables, "%s: %llu page tables, %llu before", when,
                 (unsigned long long)b.tables, (unsigned long long)a->tables);
    cr_assert_eq(b.live, a->live, "%s: %llu heap blocks, %llu before", when,
                 (unsigned long long)b.live, (unsigned long long)a->live);
    cr_assert_eq(b.shared, a->shared, "%s: %llu shared frames, %llu before", when,
                 (unsigned long long)b.shared, (unsigned long long)a->shared);
    cr_assert_eq(b.meta, a->meta, "%s: frameref holds %llu bytes, %llu before", when,
                 (unsigned long long)b.meta, (unsigned long long)a->meta);
}

static uint64_t dir_bytes; /* frameref's directory */

static void setup(void)
{
    host_arena_init(MiB(64));
    host_log_clear();
    host_cpu_index = 0;
    struct mem_region map[] = {{0, MiB(1), MEM_RESERVED}, {MiB(1), MiB(63), MEM_USABLE}};
    frame_init(map, 2);
    heap_init();
    frameref_init();
    cr_assert_eq(paging_as_create(&kernel_as), 0);
    cr_assert_eq(paging_kernel_half_prepare(&kernel_as, PAGING_KERNEL_HALF,
                                            PAGING_KERNEL_HALF + GiB(512)), 0);
    for (uint64_t i = 0; i < IMG_LEN; i++)
        img_bytes[i] = img_byte(i);
    /* the frameref directory, made by the first share, stays for good: make
     * it now, so that every baseline includes it */
    paddr_t f = frame_alloc();
    cr_assert(frameref_share(f));
    cr_assert(!frameref_put(f) && frameref_put(f));
    frame_free(f);
    dir_bytes = frameref_metadata_bytes();
    host_shootdown_count = 0;
}

static void teardown(void)
{
    host_arena_free();
}

TestSuite(vm, .init = setup, .fini = teardown);

/* ---- the CPU model ---------------------------------------------------------------- */

#define CHECK(vs) cr_assert(vm_check(vs), "vm_check: %s", host_log)

static struct vm_space *space(const char *name)
{
    struct vm_space *vs = NULL;
    cr_assert_eq(vm_space_create(name, &vs), 0);
    cr_assert_not_null(vs);
    CHECK(vs);
    return vs;
}

/* One access at va: NO_FAULT when the tables allow it, else vm_fault's
 * answer; after RESOLVED the access must be allowed. */
static enum vm_fault_result access_at(struct vm_space *vs, vaddr_t va, uint32_t access)
{
    if (!host_would_fault(vs, va, access))
        return NO_FAULT;
    enum vm_fault_result r = vm_fault(vs, va, access);
    CHECK(vs);
    if (r == VM_FAULT_RESOLVED)
        cr_assert(!host_would_fault(vs, va, access), "resolved, but %#llx still faults",
                  (unsigned long long)va);
    return r;
}

static bool ok(enum vm_fault_result r)
{
    return r == NO_FAULT || r == VM_FAULT_RESOLVED;
}

/* The u64 a program reads at va (the access must succeed). */
static uint64_t rd(struct vm_space *vs, vaddr_t va)
{
    enum vm_fault_result r = access_at(vs, va, VM_READ);
    cr_assert(ok(r), "read at %#llx: %s", (unsigned long long)va, vm_fault_name(r));
    uint64_t v;
    memcpy(&v, PHYS2VIRT(paging_translate_in(&vs->pt, va)), sizeof(v));
    return v;
}

/* A program writes v at va (the access must succeed). */
static void wr(struct vm_space *vs, vaddr_t va, uint64_t v)
{
    enum vm_fault_result r = access_at(vs, va, VM_WRITE);
    cr_assert(ok(r), "write at %#llx: %s", (unsigned long long)va, vm_fault_name(r));
    memcpy(PHYS2VIRT(paging_translate_in(&vs->pt, va)), &v, sizeof(v));
}

static paddr_t frame_of(struct vm_space *vs, vaddr_t va)
{
    paddr_t p = paging_translate_in(&vs->pt, va);
    cr_assert_neq(p, PAGING_NO_MAPPING, "%#llx not mapped", (unsigned long long)va);
    return p & ~(paddr_t)(PAGE_SIZE - 1);
}

static uint64_t leaf_flags(struct vm_space *vs, vaddr_t va)
{
    struct paging_mapping m;
    cr_assert(paging_query(&vs->pt, va, &m), "%#llx not mapped", (unsigned long long)va);
    return m.flags & (PAGE_USER | PAGE_WRITABLE | PAGE_NX);
}

static bool mapped(struct vm_space *vs, vaddr_t va)
{
    return paging_query(&vs->pt, va, NULL);
}

static vaddr_t map_ok(struct vm_space *vs, vaddr_t at, uint64_t pages, uint32_t prot,
                      enum vm_kind kind, const struct vm_image *im, uint64_t off, vaddr_t floor,
                      unsigned flags)
{
    vaddr_t a = at;
    int r = vm_map(vs, &a, pages * PAGE_SIZE, prot, kind, im, off, floor, flags);
    cr_assert_eq(r, 0, "vm_map(%#llx, %llu pages) = %d", (unsigned long long)at,
                 (unsigned long long)pages, r);
    CHECK(vs);
    return a;
}

static struct vm_region region(struct vm_space *vs, vaddr_t va)
{
    struct vm_region r;
    cr_assert(vm_region_at(vs, va, &r), "no region at %#llx", (unsigned long long)va);
    return r;
}

/* ---- spaces ------------------------------------------------------------------------- */

Test(vm, create_destroy_back_to_baseline)
{
    struct counts c0 = counts_now();
    cr_assert_gt(dir_bytes, 0);
    cr_assert_eq(dir_bytes % PAGE_SIZE, 0);
    cr_assert_eq(c0.meta, dir_bytes, "only the directory");
    struct vm_space *vs = space("empty");
    cr_assert_eq(vs->resident, 0);
    cr_assert_eq(vs->regions.count, 0);
    vm_space_destroy(vs);
    expect_counts(&c0, "empty space");

    /* A space with resident pages and a fork: every frame, share and
     * frameref array goes back. */
    for (int round = 0; round < 2; round++) {
        vs = space("full");
        vaddr_t a = map_ok(vs, P(0), 8, RW, VMR_ANON, NULL, 0, 0, VM_MAP_FIXED);
        for (int i = 0; i < 8; i++)
            wr(vs, a + i * PAGE_SIZE, 100 + i);
        map_ok(vs, P(32), 3, VM_READ, VMR_IMAGE, &img, 0, 0, VM_MAP_FIXED);
        cr_assert_eq(rd(vs, P(33)), rd(vs, P(33)));
        struct vm_space *child;
        cr_assert_eq(vm_fork(vs, "child", &child), 0);
        CHECK(child);
        wr(child, a, 1);
        cr_assert_eq(frameref_shared_frames(), 8, "8 of the 9 resident pages still shared");
        cr_assert_gt(frameref_metadata_bytes(), dir_bytes, "an array while frames are shared");
        vm_space_destroy(child);
        vm_space_destroy(vs);
        expect_counts(&c0, "space with pages and a fork");
    }
    struct vm_stats st;
    vm_get_stats(&st);
    cr_assert_eq(st.spaces, 0);
}

/* ---- vm_map --------------------------------------------------------------------------- */

Test(vm, map_argument_errors)
{
    struct vm_space *vs = space("einval");
    struct counts c0 = counts_now();
    vaddr_t a;
#define EINVAL_CASE(at, len, prot, kind, im, off, floor, flags)                                 \
    do {                                                                                    \
        a = (at);                                                                           \
        cr_assert_eq(vm_map(vs, &a, (len), (prot), (kind), (im), (off), (floor), (flags)),  \
                     -EINVAL, "vm_map(" #at ", " #len ", " #prot ", " #kind ", " #im ", "   \
                     #floor ", " #flags ") accepted");                                      \
        cr_assert_eq(a, (at), "*addr changed on a refusal");                                \
        cr_assert_eq(vs->regions.count, 0);                                                 \
        CHECK(vs);                                                                          \
    } while (0)
    EINVAL_CASE(P(0), 0, RW, VMR_ANON, NULL, 0, 0, 0);                        /* empty */
    EINVAL_CASE(P(0), PAGE_SIZE + 1, RW, VMR_ANON, NULL, 0, 0, 0);            /* unaligned length */
    EINVAL_CASE(0, VM_USER_MAX, RW, VMR_ANON, NULL, 0, 0, 0);                 /* longer than the half */
    EINVAL_CASE(P(0), PAGE_SIZE, 0x8, VMR_ANON, NULL, 0, 0, 0);               /* bad prot */
    EINVAL_CASE(P(0), PAGE_SIZE, RW, VMR_ANON, NULL, 0, 0, 0x2);              /* bad flag */
    EINVAL_CASE(P(0), PAGE_SIZE, RW, (enum vm_kind)3, NULL, 0, 0, 0);         /* bad kind */
    EINVAL_CASE(P(0), PAGE_SIZE, RW, VMR_IMAGE, NULL, 0, 0, 0);               /* image without one */
    EINVAL_CASE(P(0), PAGE_SIZE, RW, VMR_ANON, &img, 0, 0, 0);                /* anon with one */
    EINVAL_CASE(P(0), PAGE_SIZE, RW, VMR_ANON, NULL, 0, PAGE_SIZE * 20, 0);   /* floor, not a stack */
    EINVAL_CASE(P(0) + 1, PAGE_SIZE, RW, VMR_ANON, NULL, 0, 0, VM_MAP_FIXED); /* unaligned fixed */
    EINVAL_CASE(P(0) + 1, PAGE_SIZE, RW, VMR_ANON, NULL, 0, 0, 0);            /* unaligned hint */
    EINVAL_CASE(0, PAGE_SIZE, RW, VMR_ANON, NULL, 0, 0, VM_MAP_FIXED);        /* fixed at page 0 */
    EINVAL_CASE(VM_USER_MIN - PAGE_SIZE, PAGE_SIZE, RW, VMR_ANON, NULL, 0, 0, VM_MAP_FIXED);
    EINVAL_CASE(VM_USER_MAX, PAGE_SIZE, RW, VMR_ANON, NULL, 0, 0, VM_MAP_FIXED); /* at the top */
    EINVAL_CASE(VM_USER_MAX - PAGE_SIZE, 2 * PAGE_SIZE, RW, VMR_ANON, NULL, 0, 0,
                VM_MAP_FIXED);                                                /* across the top */
    EINVAL_CASE(P(8), PAGE_SIZE, RW, VMR_STACK, NULL, 0, P(8), VM_MAP_FIXED); /* floor not below */
    EINVAL_CASE(P(8), PAGE_SIZE, RW, VMR_STACK, NULL, 0, P(2) + 8, VM_MAP_FIXED); /* unaligned floor */
    EINVAL_CASE(P(8), PAGE_SIZE, RW, VMR_STACK, NULL, 0, PAGE_SIZE, VM_MAP_FIXED); /* below USER_MIN */
#undef EINVAL_CASE
    expect_counts(&c0, "after the refusals");
    vm_space_destroy(vs);
}

/* A refused FIXED map must not have removed what was there (vm.h: a
 * refusal changes nothing). */
Test(vm, fixed_map_refused_keeps_the_old_region)
{
    struct vm_space *vs = space("fixed-refused");
    map_ok(vs, P(0), 16, RW, VMR_ANON, NULL, 0, 0, VM_MAP_FIXED);
    wr(vs, P(8), 42);
    vaddr_t a = P(8);
    /* a stack whose floor is not below it */
    cr_assert_eq(vm_map(vs, &a, PAGE_SIZE, RW, VMR_STACK, NULL, 0, P(9), VM_MAP_FIXED), -EINVAL);
    CHECK(vs);
    cr_assert_eq(vs->regions.count, 1);
    cr_assert_eq(region(vs, P(8)).kind, VMR_ANON);
    cr_assert_eq(rd(vs, P(8)), 42, "the refused map dropped the page");
    vm_space_destroy(vs);
}

Test(vm, placement_lowest_gap_and_hint)
{
    struct vm_space *vs = space("placement");
    vaddr_t a = map_ok(vs, 0, 4, RW, VMR_ANON, NULL, 0, 0, 0);
    cr_assert_eq(a, VM_USER_MIN, "no hint: the lowest address (%#llx)", (unsigned long long)a);
    /* an image after it (not mergeable with the anon region) */
    vaddr_t b = map_ok(vs, 0, 2, VM_READ, VMR_IMAGE, &img, 0, 0, 0);
    cr_assert_eq(b, VM_USER_MIN + 4 * PAGE_SIZE);
    /* a hole: unmap the anon region's pages 1..2; a 2-page map fits there, 3 pages does not */
    cr_assert_eq(vm_unmap(vs, VM_USER_MIN + PAGE_SIZE, 2 * PAGE_SIZE), 0);
    CHECK(vs);
    vaddr_t c = map_ok(vs, 0, 3, VM_READ, VMR_ANON, NULL, 0, 0, 0);
    cr_assert_eq(c, VM_USER_MIN + 6 * PAGE_SIZE, "3 pages: after the image (%#llx)",
                 (unsigned long long)c);
    vaddr_t d = map_ok(vs, 0, 2, VM_EXEC, VMR_ANON, NULL, 0, 0, 0);
    cr_assert_eq(d, VM_USER_MIN + PAGE_SIZE, "2 pages: the hole (%#llx)", (unsigned long long)d);
    /* a hint: the lowest gap at or above it */
    vaddr_t e = map_ok(vs, P(100), 1, VM_READ, VMR_ANON, NULL, 0, 0, 0);
    cr_assert_eq(e, P(100));
    vaddr_t f = map_ok(vs, P(100), 1, VM_EXEC, VMR_ANON, NULL, 0, 0, 0);
    cr_assert_eq(f, P(101), "hint inside a region: just after it (%#llx)", (unsigned long long)f);
    /* a hint whose gap is too small for the length: the next one that fits */
    vaddr_t g = map_ok(vs, VM_USER_MIN + 3 * PAGE_SIZE, 2, VM_READ, VMR_ANON, NULL, 0, 0, 0);
    cr_assert_eq(g, VM_USER_MIN + 9 * PAGE_SIZE, "(%#llx)", (unsigned long long)g);
    vm_space_destroy(vs);
}

Test(vm, fixed_replaces_resident_pages)
{
    struct counts c0 = counts_now();
    struct vm_space *vs = space("fixed");
    map_ok(vs, P(0), 4, RW, VMR_ANON, NULL, 0, 0, VM_MAP_FIXED);
    for (int i = 0; i < 4; i++)
        wr(vs, P(i), 0x1000 + i);
    cr_assert_eq(vs->resident, 4);
    paddr_t old1 = frame_of(vs, P(1));
    uint64_t free0 = free_frames();
    map_ok(vs, P(1), 2, VM_READ, VMR_IMAGE, &img, 0, 0, VM_MAP_FIXED);
    cr_assert_eq(free_frames(), free0 + 2, "the two replaced pages' frames are back");
    cr_assert_eq(vs->resident, 2);
    cr_assert(!mapped(vs, P(1)) && !mapped(vs, P(2)));
    cr_assert_eq(vs->regions.count, 3);
    cr_assert_eq(region(vs, P(1)).kind, VMR_IMAGE);
    /* the new pages show the image, the others kept their data */
    uint64_t want;
    memcpy(&want, img_bytes, sizeof(want));
    cr_assert_eq(rd(vs, P(1)), want);
    cr_assert_eq(rd(vs, P(0)), 0x1000);
    cr_assert_eq(rd(vs, P(3)), 0x1003);
    cr_assert_eq(access_at(vs, P(1), VM_WRITE), VM_FAULT_ACCESS, "read-only image written");
    (void)old1;
    vm_space_destroy(vs);
    expect_counts(&c0, "destroy");
}

/* ---- filling pages -------------------------------------------------------------------- */

Test(vm, demand_zero)
{
    struct vm_space *vs = space("zero");
    /* dirty frames first: the fault must zero whatever it gets */
    paddr_t dirty[64];
    for (int i = 0; i < 64; i++) {
        dirty[i] = frame_alloc();
        memset(PHYS2VIRT(dirty[i]), 0xa5, PAGE_SIZE);
    }
    for (int i = 0; i < 64; i++)
        frame_free(dirty[i]);
    map_ok(vs, P(0), 3, RW, VMR_ANON, NULL, 0, 0, VM_MAP_FIXED);
    map_ok(vs, P(3), 1, VM_READ, VMR_ANON, NULL, 0, 0, VM_MAP_FIXED);
    map_ok(vs, P(4), 1, RX, VMR_ANON, NULL, 0, 0, VM_MAP_FIXED);
    cr_assert_eq(vs->resident, 0, "no page mapped before the first touch");
    cr_assert(!mapped(vs, P(0)));
    cr_assert_eq(access_at(vs, P(0) + 17, VM_READ), VM_FAULT_RESOLVED);
    cr_assert_eq(vs->zero_faults, 1);
    cr_assert_eq(vs->resident, 1);
    const uint8_t *p = PHYS2VIRT(frame_of(vs, P(0)));
    for (int i = 0; i < (int)PAGE_SIZE; i++)
        cr_assert_eq(p[i], 0, "byte %d of a demand-zero page is %#x", i, p[i]);
    cr_assert_eq(leaf_flags(vs, P(0)), PAGE_USER | PAGE_WRITABLE | PAGE_NX);
    cr_assert_eq(access_at(vs, P(0), VM_WRITE), NO_FAULT, "rw- page filled writable");
    cr_assert_eq(access_at(vs, P(0), VM_EXEC), VM_FAULT_ACCESS);
    /* a write as the first touch */
    wr(vs, P(1), 7);
    cr_assert_eq(rd(vs, P(1)), 7);
    cr_assert_eq(vs->zero_faults, 2);
    /* r-- and r-x */
    cr_assert_eq(access_at(vs, P(3), VM_WRITE), VM_FAULT_ACCESS);
    cr_assert(!mapped(vs, P(3)), "a refused fault mapped the page");
    cr_assert_eq(rd(vs, P(3)), 0);
    cr_assert_eq(leaf_flags(vs, P(3)), PAGE_USER | PAGE_NX);
    cr_assert_eq(access_at(vs, P(4), VM_EXEC), VM_FAULT_RESOLVED);
    cr_assert_eq(leaf_flags(vs, P(4)), PAGE_USER);
    /* a page already filled: another CPU's fault, or a stale TLB entry */
    cr_assert_eq(vm_fault(vs, P(0), VM_WRITE), VM_FAULT_RESOLVED);
    cr_assert_eq(vs->resident, 4);
    /* nothing there; outside the user range */
    cr_assert_eq(access_at(vs, P(5), VM_READ), VM_FAULT_NOREGION);
    cr_assert_eq(vm_fault(vs, 0, VM_READ), VM_FAULT_NOREGION);
    cr_assert_eq(vm_fault(vs, VM_USER_MAX, VM_READ), VM_FAULT_NOREGION);
    cr_assert_eq(vm_fault(vs, PAGING_KERNEL_HALF, VM_READ), VM_FAULT_NOREGION);
    CHECK(vs);
    vm_space_destroy(vs);
}

/* The u64 a page of an image region shows at byte 0: image bytes from the
 * offset, zeros past the image's end. */
static uint64_t img_word(uint64_t off)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        if (off + i < IMG_LEN)
            v |= (uint64_t)img_byte(off + i) << (8 * i);
    return v;
}

Test(vm, image_pages)
{
    struct vm_space *vs = space("image");
    /* 4 pages from image offset 4096: page 0 = image page 1, page 1 = the
     * image's last half page then zeros, pages 2 and 3 zeros */
    map_ok(vs, P(0), 4, RW, VMR_IMAGE, &img, PAGE_SIZE, 0, VM_MAP_FIXED);
    cr_assert_eq(access_at(vs, P(1), VM_READ), VM_FAULT_RESOLVED);
    cr_assert_eq(vs->image_faults, 1);
    const uint8_t *p = PHYS2VIRT(frame_of(vs, P(1)));
    for (uint64_t i = 0; i < PAGE_SIZE; i++) {
        uint64_t at = 2 * PAGE_SIZE + i;
        cr_assert_eq(p[i], at < IMG_LEN ? img_byte(at) : 0, "page 1 byte %llu",
                     (unsigned long long)i);
    }
    cr_assert_eq(rd(vs, P(2)), 0);
    cr_assert_eq(rd(vs, P(3) + PAGE_SIZE - 8), 0);
    cr_assert_eq(leaf_flags(vs, P(1)), PAGE_USER | PAGE_WRITABLE | PAGE_NX);
    /* a private copy: writing changes the page, never the image */
    wr(vs, P(1), 0xdead);
    cr_assert_eq(img_bytes[2 * PAGE_SIZE], img_byte(2 * PAGE_SIZE));
    /* unmap the first page: the region starts one page later at offset 8192 */
    cr_assert_eq(vm_unmap(vs, P(0), PAGE_SIZE), 0);
    CHECK(vs);
    struct vm_region r = region(vs, P(1));
    cr_assert_eq(r.start, P(1));
    cr_assert_eq(r.image_off, 2 * PAGE_SIZE);
    cr_assert_eq(rd(vs, P(1)), 0xdead, "the resident page kept its data");
    /* split in the middle, then a page not touched yet shows the right bytes */
    vm_space_destroy(vs);
    vs = space("image2");
    map_ok(vs, P(0), 3, VM_READ, VMR_IMAGE, &img, 0, 0, VM_MAP_FIXED);
    cr_assert_eq(vm_unmap(vs, P(0), PAGE_SIZE), 0);
    CHECK(vs);
    cr_assert_eq(region(vs, P(1)).image_off, PAGE_SIZE);
    cr_assert_eq(rd(vs, P(1)), img_word(PAGE_SIZE));
    cr_assert_eq(rd(vs, P(2) + 8), img_word(2 * PAGE_SIZE + 8));
    cr_assert_eq(rd(vs, P(2) + PAGE_SIZE / 2), 0, "past the image's end");
    cr_assert_eq(access_at(vs, P(0), VM_READ), VM_FAULT_NOREGION);
    cr_assert_eq(vs->image_faults, 2);
    vm_space_destroy(vs);
}

/* ---- copy-on-write -------------------------------------------------------------------- */

Test(vm, fork_shares_then_copies_or_reuses)
{
    struct counts c0 = counts_now();
    struct vm_space *par = space("parent"), *ch = NULL;
    map_ok(par, P(0), 8, RW, VMR_ANON, NULL, 0, 0, VM_MAP_FIXED);
    paddr_t pf[6];
    for (int i = 0; i < 6; i++) {
        wr(par, P(i), 0x100 + i);
        pf[i] = frame_of(par, P(i));
    }
    cr_assert_eq(vm_fork(par, "child", &ch), 0);
    CHECK(par);
    CHECK(ch);
    cr_assert_eq(ch->resident, 6);
    cr_assert_eq(ch->regions.count, 1);
    cr_assert_eq(frameref_shared_frames(), 6);
    for (int i = 0; i < 6; i++) {
        cr_assert_eq(frame_of(ch, P(i)), pf[i], "page %d not shared", i);
        cr_assert_eq(frameref_extra(pf[i]), 1);
        cr_assert_eq(leaf_flags(par, P(i)), PAGE_USER | PAGE_NX, "parent's page %d writable", i);
        cr_assert_eq(leaf_flags(ch, P(i)), PAGE_USER | PAGE_NX, "child's page %d writable", i);
    }
    cr_assert(!mapped(ch, P(6)), "a page the parent never touched is mapped in the child");
    /* reads need no fault */
    cr_assert_eq(access_at(ch, P(2), VM_READ), NO_FAULT);
    cr_assert_eq(rd(ch, P(2)), 0x102);

    /* the child writes page 0: a copy with the same data */
    cr_assert_eq(access_at(ch, P(0), VM_WRITE), VM_FAULT_RESOLVED);
    paddr_t c0f = frame_of(ch, P(0));
    cr_assert_neq(c0f, pf[0], "the child wrote the shared frame");
    cr_assert_eq(memcmp(PHYS2VIRT(c0f), PHYS2VIRT(pf[0]), PAGE_SIZE), 0, "the copy differs");
    cr_assert_eq(ch->cow_copies, 1);
    cr_assert_eq(frameref_extra(pf[0]), 0);
    cr_assert_eq(frameref_shared_frames(), 5);
    wr(ch, P(0), 0xc0);
    cr_assert_eq(rd(par, P(0)), 0x100);
    cr_assert_eq(rd(ch, P(0)), 0xc0);
    /* the parent writes page 0, which no one shares now: its frame, no copy */
    wr(par, P(0), 0xb0);
    cr_assert_eq(frame_of(par, P(0)), pf[0]);
    cr_assert_eq(par->cow_reuses, 1);
    cr_assert_eq(par->cow_copies, 0);
    /* the parent writes page 1: the child still shares it, so a copy */
    wr(par, P(1), 0xb1);
    cr_assert_neq(frame_of(par, P(1)), pf[1]);
    cr_assert_eq(frame_of(ch, P(1)), pf[1]);
    cr_assert_eq(rd(ch, P(1)), 0x101);
    cr_assert_eq(par->cow_copies, 1);
    cr_assert_eq(frameref_shared_frames(), 4);

    /* the child goes: the parent's pages 2..5 are its own again, reused on write */
    vm_space_destroy(ch);
    CHECK(par);
    cr_assert_eq(frameref_shared_frames(), 0);
    for (int i = 2; i < 6; i++) {
        cr_assert_eq(frameref_extra(pf[i]), 0);
        wr(par, P(i), 0xf0 + i);
        cr_assert_eq(frame_of(par, P(i)), pf[i], "page %d copied after the last sharer left", i);
    }
    cr_assert_eq(par->cow_reuses, 5);
    cr_assert_eq(par->cow_copies, 1);
    cr_assert_eq(leaf_flags(par, P(2)), PAGE_USER | PAGE_WRITABLE | PAGE_NX);
    vm_space_destroy(par);
    expect_counts(&c0, "both destroyed");
}

Test(vm, fork_of_a_fork)
{
    struct counts c0 = counts_now();
    struct vm_space *a = space("a"), *b, *c;
    map_ok(a, P(0), 4, RW, VMR_ANON, NULL, 0, 0, VM_MAP_FIXED);
    map_ok(a, P(8), 2, RX, VMR_IMAGE, &img, 0, 0, VM_MAP_FIXED);
    for (int i = 0; i < 4; i++)
        wr(a, P(i), i + 1);
    cr_assert_eq(access_at(a, P(8), VM_EXEC), VM_FAULT_RESOLVED);
    paddr_t f0 = frame_of(a, P(0)), f8 = frame_of(a, P(8));
    cr_assert_eq(vm_fork(a, "b", &b), 0);
    cr_assert_eq(vm_fork(b, "c", &c), 0);
    CHECK(a);
    CHECK(b);
    CHECK(c);
    cr_assert_eq(frameref_extra(f0), 2);
    cr_assert_eq(frameref_extra(f8), 2);
    cr_assert_eq(frameref_shared_frames(), 5);
    cr_assert_eq(frame_of(c, P(0)), f0);
    cr_assert_eq(leaf_flags(c, P(8)), PAGE_USER, "r-x shared page stays executable");
    wr(c, P(0), 99);
    cr_assert_eq(frameref_extra(f0), 1);
    cr_assert_eq(rd(a, P(0)), 1);
    cr_assert_eq(rd(b, P(0)), 1);
    wr(b, P(0), 98);
    cr_assert_eq(frameref_extra(f0), 0, "only a holds it now");
    wr(a, P(0), 97);
    cr_assert_eq(frame_of(a, P(0)), f0);
    cr_assert_eq(rd(c, P(0)), 99);
    cr_assert_eq(rd(b, P(0)), 98);
    vm_space_destroy(b);
    cr_assert_eq(frameref_extra(f8), 1);
    vm_space_destroy(a);
    cr_assert_eq(frameref_extra(f8), 0);
    cr_assert_eq(frame_of(c, P(8)), f8);
    CHECK(c);
    vm_space_destroy(c);
    expect_counts(&c0, "all three destroyed");
}

/* ---- protection ----------------------------------------------------------------------- */

Test(vm, protect_splits_and_changes_leaves_at_once)
{
    struct vm_space *vs = space("protect");
    map_ok(vs, P(0), 8, RW, VMR_ANON, NULL, 0, 0, VM_MAP_FIXED);
    for (int i = 0; i < 8; i++)
        wr(vs, P(i), i);
    cr_assert_eq(vm_protect(vs, P(2), 3 * PAGE_SIZE, VM_READ), 0);
    CHECK(vs);
    cr_assert_eq(vs->regions.count, 3);
    struct vm_region r = region(vs, P(3));
    cr_assert(r.start == P(2) && r.end == P(5) && r.prot == VM_READ);
    for (int i = 0; i < 8; i++) {
        bool ro = i >= 2 && i < 5;
        cr_assert_eq(leaf_flags(vs, P(i)), ro ? PAGE_USER | PAGE_NX : PAGE_USER | PAGE_WRITABLE | PAGE_NX,
                     "page %d", i);
    }
    cr_assert_eq(access_at(vs, P(3), VM_WRITE), VM_FAULT_ACCESS);
    cr_assert_eq(rd(vs, P(3)), 3);
    /* executable: leaves lose NX at once */
    cr_assert_eq(vm_protect(vs, P(4), PAGE_SIZE, RX), 0);
    CHECK(vs);
    cr_assert_eq(leaf_flags(vs, P(4)), PAGE_USER);
    cr_assert_eq(access_at(vs, P(4), VM_EXEC), NO_FAULT);
    /* back to rw-: one region, own pages writable again without a fault */
    cr_assert_eq(vm_protect(vs, P(0), 8 * PAGE_SIZE, RW), 0);
    CHECK(vs);
    cr_assert_eq(vs->regions.count, 1);
    for (int i = 0; i < 8; i++) {
        cr_assert_eq(access_at(vs, P(i), VM_WRITE), NO_FAULT, "page %d", i);
        cr_assert_eq(rd(vs, P(i)), (uint64_t)i);
    }
    /* a shared page stays read-only after protect rw- until its CoW fault */
    struct vm_space *ch;
    cr_assert_eq(vm_fork(vs, "ch", &ch), 0);
    cr_assert_eq(vm_protect(ch, P(0), 8 * PAGE_SIZE, VM_READ), 0);
    cr_assert_eq(vm_protect(ch, P(0), 8 * PAGE_SIZE, RW), 0);
    CHECK(ch);
    cr_assert_eq(leaf_flags(ch, P(0)), PAGE_USER | PAGE_NX, "a shared page became writable");
    wr(ch, P(0), 55);
    cr_assert_eq(rd(vs, P(0)), 0);
    vm_space_destroy(ch);
    vm_space_destroy(vs);
}

Test(vm, protect_with_a_hole_changes_nothing)
{
    struct vm_space *vs = space("hole");
    map_ok(vs, P(0), 2, RW, VMR_ANON, NULL, 0, 0, VM_MAP_FIXED);
    map_ok(vs, P(3), 2, RW, VMR_ANON, NULL, 0, 0, VM_MAP_FIXED);
    wr(vs, P(1), 1);
    wr(vs, P(3), 3);
    cr_assert_eq(vm_protect(vs, P(0), 5 * PAGE_SIZE, VM_READ), -ENOENT);
    CHECK(vs);
    cr_assert_eq(vs->regions.count, 2);
    cr_assert_eq(region(vs, P(0)).prot, RW);
    cr_assert_eq(region(vs, P(4)).prot, RW);
    cr_assert_eq(leaf_flags(vs, P(1)), PAGE_USER | PAGE_WRITABLE | PAGE_NX);
    cr_assert_eq(leaf_flags(vs, P(3)), PAGE_USER | PAGE_WRITABLE | PAGE_NX);
    cr_assert_eq(vm_protect(vs, P(1), 3 * PAGE_SIZE, VM_READ), -ENOENT);
    cr_assert_eq(vm_protect(vs, P(2), PAGE_SIZE, VM_READ), -ENOENT);
    CHECK(vs);
    cr_assert_eq(vs->regions.count, 2);
    cr_assert_eq(vm_protect(vs, P(0), PAGE_SIZE, 0x8), -EINVAL);
    cr_assert_eq(vm_protect(vs, P(0) + 1, PAGE_SIZE, VM_READ), -EINVAL);
    cr_assert_eq(vm_protect(vs, P(0), 0, VM_READ), -EINVAL);
    vm_space_destroy(vs);
}

Test(vm, prot_none_is_supervisor_and_keeps_contents)
{
    struct vm_space *vs = space("none");
    map_ok(vs, P(0), 2, RW, VMR_ANON, NULL, 0, 0, VM_MAP_FIXED);
    wr(vs, P(0), 0x5a5a);
    paddr_t f = frame_of(vs, P(0));
    cr_assert_eq(vm_protect(vs, P(0), 2 * PAGE_SIZE, 0), 0);
    CHECK(vs);
    cr_assert(mapped(vs, P(0)), "PROT_NONE dropped the page");
    cr_assert_eq(leaf_flags(vs, P(0)), PAGE_NX, "a PROT_NONE leaf is supervisor, read-only, NX");
    for (uint32_t acc = VM_READ; acc <= VM_EXEC; acc <<= 1)
        cr_assert_eq(access_at(vs, P(0), acc), VM_FAULT_ACCESS, "access %u", acc);
    cr_assert_eq(access_at(vs, P(1), VM_READ), VM_FAULT_ACCESS);
    cr_assert(!mapped(vs, P(1)), "a refused fault filled a PROT_NONE page");
    cr_assert_eq(vm_protect(vs, P(0), 2 * PAGE_SIZE, VM_READ), 0);
    CHECK(vs);
    cr_assert_eq(frame_of(vs, P(0)), f);
    cr_assert_eq(rd(vs, P(0)), 0x5a5a);
    cr_assert_eq(leaf_flags(vs, P(0)), PAGE_USER | PAGE_NX);
    vm_space_destroy(vs);
}

/* ---- the stack ------------------------------------------------------------------------ */

#define STOP P(512) /* the stack's top */

Test(vm, stack_grows_to_its_floor)
{
    struct vm_space *vs = space("stack");
    vaddr_t floor = STOP - 64 * PAGE_SIZE;
    map_ok(vs, STOP - 4 * PAGE_SIZE, 4, RW, VMR_STACK, NULL, 0, floor, VM_MAP_FIXED);
    wr(vs, STOP - 8, 1);
    /* one page below: grows */
    cr_assert_eq(access_at(vs, STOP - 5 * PAGE_SIZE + 100, VM_WRITE), VM_FAULT_RESOLVED);
    cr_assert_eq(region(vs, STOP - PAGE_SIZE).start, STOP - 5 * PAGE_SIZE);
    cr_assert_eq(vs->regions.count, 1);
    /* far below the stack, but above the floor: grows all the way */
    cr_assert_eq(access_at(vs, floor + PAGE_SIZE, VM_READ), VM_FAULT_RESOLVED);
    cr_assert_eq(region(vs, STOP - PAGE_SIZE).start, floor + PAGE_SIZE);
    cr_assert_eq(vs->resident, 3, "growth maps only the page touched");
    cr_assert_eq(rd(vs, floor + 2 * PAGE_SIZE), 0);
    /* the floor itself */
    wr(vs, floor, 2);
    cr_assert_eq(region(vs, STOP - PAGE_SIZE).start, floor);
    /* below the floor: the guard gap */
    cr_assert_eq(access_at(vs, floor - 1, VM_READ), VM_FAULT_GUARD);
    cr_assert_eq(access_at(vs, floor - VM_STACK_GAP, VM_WRITE), VM_FAULT_GUARD);
    /* below the gap: not the stack's */
    cr_assert_eq(access_at(vs, floor - VM_STACK_GAP - PAGE_SIZE, VM_READ), VM_FAULT_NOREGION);
    cr_assert_eq(region(vs, STOP - PAGE_SIZE).start, floor);
    cr_assert_eq(vs->regions.count, 1);
    /* a stack with floor 0 never grows */
    map_ok(vs, P(1000), 1, RW, VMR_STACK, NULL, 0, 0, VM_MAP_FIXED);
    cr_assert_eq(access_at(vs, P(999), VM_WRITE), VM_FAULT_NOREGION);
    vm_space_destroy(vs);
}

Test(vm, stack_keeps_the_gap_above_a_region_below)
{
    struct vm_space *vs = space("stack-gap");
    vaddr_t floor = STOP - 64 * PAGE_SIZE;
    map_ok(vs, STOP - 2 * PAGE_SIZE, 2, RW, VMR_STACK, NULL, 0, floor, VM_MAP_FIXED);
    /* a region between the floor and the stack, ending 30 pages below its top */
    vaddr_t below_end = STOP - 30 * PAGE_SIZE;
    map_ok(vs, below_end - 4 * PAGE_SIZE, 4, RW, VMR_ANON, NULL, 0, 0, VM_MAP_FIXED);
    vaddr_t lowest = below_end + VM_STACK_GAP; /* the lowest page the stack may reach */
    cr_assert_eq(access_at(vs, lowest, VM_WRITE), VM_FAULT_RESOLVED);
    cr_assert_eq(region(vs, STOP - PAGE_SIZE).start, lowest);
    cr_assert_eq(access_at(vs, lowest - PAGE_SIZE, VM_WRITE), VM_FAULT_GUARD);
    cr_assert_eq(access_at(vs, below_end, VM_READ), VM_FAULT_GUARD);
    cr_assert_eq(region(vs, STOP - PAGE_SIZE).start, lowest);
    /* the region below itself is reachable as usual */
    cr_assert_eq(access_at(vs, below_end - PAGE_SIZE, VM_WRITE), VM_FAULT_RESOLVED);
    vm_space_destroy(vs);
}

/* A stack growth refused for its rights must not have grown the stack
 * (vm.h: a fault it cannot resolve changes nothing). */
Test(vm, stack_growth_refused_for_rights_changes_nothing)
{
    struct vm_space *vs = space("stack-ro");
    vaddr_t floor = STOP - 64 * PAGE_SIZE;
    map_ok(vs, STOP - 2 * PAGE_SIZE, 2, VM_READ, VMR_STACK, NULL, 0, floor, VM_MAP_FIXED);
    cr_assert_eq(access_at(vs, STOP - 4 * PAGE_SIZE, VM_WRITE), VM_FAULT_ACCESS);
    cr_assert_eq(region(vs, STOP - PAGE_SIZE).start, STOP - 2 * PAGE_SIZE,
                 "a refused write grew the stack");
    cr_assert_eq(access_at(vs, STOP - 4 * PAGE_SIZE, VM_READ), VM_FAULT_RESOLVED);
    cr_assert_eq(region(vs, STOP - PAGE_SIZE).start, STOP - 4 * PAGE_SIZE);
    vm_space_destroy(vs);
}

/* ---- out of memory -------------------------------------------------------------------- */

/* Takes every free frame but `keep`; returns the array to give back. */
static paddr_t *exhaust(size_t *n, size_t keep)
{
    size_t cap = free_frames();
    paddr_t *v = malloc((cap + 1) * sizeof(*v));
    cr_assert(v);
    *n = 0;
    paddr_t f;
    while ((f = frame_alloc()))
        v[(*n)++] = f;
    cr_assert_eq(free_frames(), 0);
    for (size_t k = 0; k < keep && *n; k++)
        frame_free(v[--(*n)]);
    return v;
}

static void give_back(paddr_t *v, size_t n)
{
    while (n)
        frame_free(v[--n]);
    free(v);
}

Test(vm, fault_out_of_memory_changes_nothing)
{
    struct vm_space *vs = space("oom");
    map_ok(vs, P(0), 2, RW, VMR_ANON, NULL, 0, 0, VM_MAP_FIXED);
    map_ok(vs, P(2), 1, VM_READ, VMR_IMAGE, &img, 0, 0, VM_MAP_FIXED);
    vaddr_t floor = STOP - 64 * PAGE_SIZE;
    map_ok(vs, STOP - PAGE_SIZE, 1, RW, VMR_STACK, NULL, 0, floor, VM_MAP_FIXED);
    size_t n;
    paddr_t *v = exhaust(&n, 0);
    uint64_t tables = vs->pt.table_pages;
    cr_assert_eq(access_at(vs, P(0), VM_WRITE), VM_FAULT_OOM);
    cr_assert_eq(access_at(vs, P(2), VM_READ), VM_FAULT_OOM);
    cr_assert_eq(access_at(vs, STOP - 3 * PAGE_SIZE, VM_WRITE), VM_FAULT_OOM);
    cr_assert_eq(region(vs, STOP - PAGE_SIZE).start, STOP - PAGE_SIZE,
                 "a fault out of memory grew the stack");
    cr_assert_eq(vs->resident, 0);
    cr_assert_eq(vs->pt.table_pages, tables);
    cr_assert_eq(vs->zero_faults + vs->image_faults, 0);
    cr_assert_eq(free_frames(), 0);
    CHECK(vs);
    give_back(v, n);
    /* a CoW copy out of memory: the shared page stays shared and read-only */
    wr(vs, P(0), 77);
    struct vm_space *ch;
    cr_assert_eq(vm_fork(vs, "ch", &ch), 0);
    paddr_t f = frame_of(vs, P(0));
    v = exhaust(&n, 0);
    cr_assert_eq(access_at(ch, P(0), VM_WRITE), VM_FAULT_OOM);
    cr_assert_eq(frame_of(ch, P(0)), f);
    cr_assert_eq(frameref_extra(f), 1);
    cr_assert_eq(leaf_flags(ch, P(0)), PAGE_USER | PAGE_NX);
    CHECK(ch);
    give_back(v, n);
    wr(ch, P(0), 78);
    cr_assert_eq(rd(vs, P(0)), 77);
    vm_space_destroy(ch);
    vm_space_destroy(vs);
}

/* vm_fork with every amount of memory from none up to enough: each refusal
 * leaves the source as it was and every count back. */
Test(vm, fork_out_of_memory_leaves_the_source)
{
    struct vm_space *vs = space("fork-oom");
    map_ok(vs, P(0), 8, RW, VMR_ANON, NULL, 0, 0, VM_MAP_FIXED);
    map_ok(vs, P(600), 4, RX, VMR_IMAGE, &img, 0, 0, VM_MAP_FIXED);
    map_ok(vs, MiB(64), 2, RW, VMR_ANON, NULL, 0, 0, VM_MAP_FIXED); /* another PT */
    for (int i = 0; i < 8; i++)
        wr(vs, P(i), 0x77 + i);
    cr_assert_eq(access_at(vs, P(601), VM_EXEC), VM_FAULT_RESOLVED);
    wr(vs, MiB(64), 0x64);
    paddr_t frames[8];
    for (int i = 0; i < 8; i++)
        frames[i] = frame_of(vs, P(i));
    uint64_t res = vs->resident, regions = vs->regions.count;
    bool forked = false;
    for (size_t keep = 0; keep < 96 && !forked; keep++) {
        struct counts c0 = counts_now();
        size_t n;
        paddr_t *v = exhaust(&n, keep);
        struct vm_space *ch = NULL;
        int r = vm_fork(vs, "ch", &ch);
        if (r == 0) {
            forked = true;
            CHECK(ch);
            cr_assert_eq(ch->resident, res);
            vm_space_destroy(ch);
        } else {
            cr_assert_eq(r, -ENOMEM, "keep %zu: fork = %d", keep, r);
        }
        give_back(v, n);
        CHECK(vs);
        cr_assert_eq(vs->resident, res);
        cr_assert_eq(vs->regions.count, regions);
        for (int i = 0; i < 8; i++) {
            cr_assert_eq(frame_of(vs, P(i)), frames[i], "keep %zu: page %d moved", keep, i);
            cr_assert_eq(frameref_extra(frames[i]), 0, "keep %zu: page %d still shared", keep, i);
        }
        expect_counts(&c0, r ? "after a refused fork" : "after fork and destroy");
    }
    cr_assert(forked, "fork never succeeded");
    for (int i = 0; i < 8; i++) {
        cr_assert_eq(rd(vs, P(i)), 0x77 + (uint64_t)i);
        wr(vs, P(i), i);
        cr_assert_eq(frame_of(vs, P(i)), frames[i], "page %d copied: it is no one else's", i);
    }
    cr_assert_eq(rd(vs, MiB(64)), 0x64);
    vm_space_destroy(vs);
}

/* ---- TLB shootdowns ------------------------------------------------------------------- */

/* Loads (or unloads: kernel_as) as on CPU `cpu`, standing for it. */
static void load_on(unsigned cpu, struct addrspace *as)
{
    host_cpu_index = cpu;
    paging_activate(as);
    host_cpu_index = 0;
}

Test(vm, shootdown_only_where_loaded)
{
    struct vm_space *vs = space("loaded"), *idle = space("idle");
    map_ok(vs, P(0), 8, RW, VMR_ANON, NULL, 0, 0, VM_MAP_FIXED);
    map_ok(idle, P(0), 8, RW, VMR_ANON, NULL, 0, 0, VM_MAP_FIXED);
    load_on(1, &vs->pt);
    cr_assert_eq(vs->pt.cpus, 1u << 1);
    host_shootdown_count = 0;
    for (int i = 0; i < 8; i++) {
        wr(vs, P(i), i);
        wr(idle, P(i), i);
    }
    cr_assert_eq(host_shootdown_count, 0, "new mappings need no shootdown");
    /* unmap: one shootdown, on CPU 1 only */
    cr_assert_eq(vm_unmap(vs, P(2), 2 * PAGE_SIZE), 0);
    CHECK(vs);
    cr_assert_eq(host_shootdown_count, 1);
    cr_assert_eq(host_shootdown_cpus, 1u << 1);
    cr_assert(host_shootdown_start <= P(2) && host_shootdown_end >= P(4));
    /* protect (fewer rights): one */
    host_shootdown_count = 0;
    cr_assert_eq(vm_protect(vs, P(4), 4 * PAGE_SIZE, VM_READ), 0);
    CHECK(vs);
    cr_assert_eq(host_shootdown_count, 1);
    cr_assert_eq(host_shootdown_cpus, 1u << 1);
    cr_assert(host_shootdown_start <= P(4) && host_shootdown_end >= P(8));
    /* the same on the space loaded nowhere: none */
    host_shootdown_count = 0;
    cr_assert_eq(vm_unmap(idle, P(2), 2 * PAGE_SIZE), 0);
    cr_assert_eq(vm_protect(idle, P(4), 4 * PAGE_SIZE, VM_READ), 0);
    struct vm_space *ch;
    cr_assert_eq(vm_fork(idle, "idle-child", &ch), 0);
    wr(ch, P(0), 5);
    CHECK(idle);
    cr_assert_eq(host_shootdown_count, 0, "a space loaded nowhere got %lu shootdowns",
                 host_shootdown_count);
    vm_space_destroy(ch);
    /* fork of the loaded space: its writable pages become read-only on CPU 1 */
    host_shootdown_count = 0;
    cr_assert_eq(vm_fork(vs, "child", &ch), 0);
    cr_assert_eq(host_shootdown_count, 1);
    cr_assert_eq(host_shootdown_cpus, 1u << 1);
    vm_space_destroy(ch);
    /* CPU 1 leaves: no more shootdowns */
    load_on(1, &kernel_as);
    cr_assert_eq(vs->pt.cpus, 0);
    host_shootdown_count = 0;
    cr_assert_eq(vm_unmap(vs, P(0), 8 * PAGE_SIZE), 0);
    cr_assert_eq(host_shootdown_count, 0);
    vm_space_destroy(vs);
    vm_space_destroy(idle);
}
