/* Fuzz target: the region set of a user address space (kernel/mm/vm_region.c)
 * with insert / remove / protect / grow_down / lookup / find_gap sequences in
 * a window of 256 pages, checked after every operation against a model.
 *
 * Input: operations of 4 bytes each: u8 op, u8 a, u8 b, u8 c (run_op).
 * op bits 0-3 pick the operation, bits 4-7 the spares offered (0: none, 1:
 * one, otherwise two); a is a page of the window, b a length in pages (bits
 * 0-5) or a second page, c the attributes (prot bits 0-2, kind bits 3-4,
 * image bit 5, image offset delta or stack floor distance bits 6-7).
 *
 * Model: per page of the window, free or its attributes (prot, kind, image,
 * the image byte offset the page shows, stack floor, and for stacks a region
 * id, renumbered where a split cuts one: stacks never merge, so their
 * boundaries are not a function of the other attributes). The set must hold
 * exactly the maximal runs of pages that belong together (same prot and
 * kind; images: same image and continuing offsets; stacks: same id).
 *
 * Checked: every return code (-EINVAL, -EEXIST, -ENOENT, -EFAULT, -ENOMEM
 * exactly when the model says, and then nothing changed); the spares each
 * call takes, exactly as vm_region.h documents; after every operation
 * vmr_check and the whole set against the model (forward walk; a backward
 * walk on its own operation); vmr_find / vmr_lookup_from / vmr_find_gap
 * answers equal to the model's; at the end vmr_clear gives every node back
 * (heap live blocks at their baseline). */
#include "fuzz.h"

#include "lib/errno.h"
#include "mm/frame.h"
#include "mm/heap.h"
#include "mm/mm.h"
#include "mm/vm_region.h"

#define PAGES 256
#define BASE 0x10000000ull
#define P(p) (BASE + (uint64_t)(p) * PAGE_SIZE)
#define MAX_OPS 1024

struct page {
    bool used;
    uint8_t prot;
    uint8_t kind;
    uint8_t img;        /* VMR_IMAGE: which of images[] */
    uint64_t ioff;      /* VMR_IMAGE: the image byte offset this page starts at */
    uint64_t floor;     /* VMR_STACK: grow_floor */
    uint32_t sid;       /* VMR_STACK: region id */
};

static struct page model[PAGES];
static uint32_t next_sid;
static struct vm_regions set;
static uint64_t live0;
static bool ready;
static const uint8_t image_bytes[2][64];
static const struct vm_image images[2] = {{image_bytes[0], 64}, {image_bytes[1], 64}};

static uint64_t live_blocks(void)
{
    struct heap_stats st;
    heap_get_stats(&st);
    return st.live_blocks;
}

/* Per page, a key equal for two touching pages exactly when they belong to
 * one region (0: free; key[PAGES] stays 0): the attributes, a stack's id, and
 * for images the image page minus the window page (constant along a region
 * whose offsets continue). Recomputed by rekey wherever pages change, so the
 * region walks compare one word per page. */
static uint64_t key[PAGES + 1];
/* True while runs[] (below) may not match key[]: set by every rekey. */
static bool keys_changed;

static void rekey(unsigned p0, unsigned p1)
{
    keys_changed = true;
    for (unsigned p = p0; p < p1 && p < PAGES; p++) {
        const struct page *m = &model[p];
        uint64_t k = 0;
        if (m->used) {
            k = 1u | (uint64_t)m->prot << 1 | (uint64_t)m->kind << 4;
            if (m->kind == VMR_STACK)
                k |= (uint64_t)m->sid << 8;
            if (m->kind == VMR_IMAGE)
                k |= (uint64_t)m->img << 6 | ((m->ioff >> PAGE_SHIFT) - p) << 32;
        }
        key[p] = k;
    }
}

/* True when pages p and p + 1 belong to one region. */
static inline bool joined(unsigned p)
{
    return key[p] && key[p] == key[p + 1];
}

/* The model's region holding used page p: [*p0, *p1). */
FUZZ_NOCOV static void run_of(unsigned p, unsigned *p0, unsigned *p1)
{
    unsigned s = p, e = p + 1;
    while (s > 0 && joined(s - 1))
        s--;
    while (e < PAGES && joined(e - 1))
        e++;
    *p0 = s, *p1 = e;
}

/* Gives the stack region starting at page p (if any) a fresh id: a split
 * made it a region of its own. */
FUZZ_NOCOV static void renumber_from(unsigned p)
{
    if (p >= PAGES || !model[p].used || model[p].kind != VMR_STACK)
        return;
    uint32_t old = model[p].sid, sid = ++next_sid;
    unsigned q = p;
    for (; q < PAGES && model[q].used && model[q].kind == VMR_STACK && model[q].sid == old; q++)
        model[q].sid = sid;
    rekey(p, q);
}

/* The region r must be the model's region [p0, p1). */
FUZZ_NOCOV static void check_region(const struct vm_region *r, unsigned p0, unsigned p1, const char *when)
{
    const struct page *m = &model[p0];
    FUZZ_CHECK(r != NULL, "%s: no region for pages [%u, %u)", when, p0, p1);
    FUZZ_CHECK(r->start == P(p0) && r->end == P(p1), "%s: region [%#llx, %#llx), model pages [%u, %u)",
               when, (unsigned long long)r->start, (unsigned long long)r->end, p0, p1);
    FUZZ_CHECK(r->prot == m->prot && r->kind == m->kind, "%s: page %u prot %u kind %u, model %u %u",
               when, p0, r->prot, r->kind, m->prot, m->kind);
    if (m->kind == VMR_IMAGE)
        FUZZ_CHECK(r->image == &images[m->img] && r->image_off == m->ioff,
                   "%s: page %u image offset %#llx, model %#llx", when, p0,
                   (unsigned long long)r->image_off, (unsigned long long)m->ioff);
    else
        FUZZ_CHECK(r->image == NULL && r->image_off == 0, "%s: page %u has an image", when, p0);
    FUZZ_CHECK(r->grow_floor == (m->kind == VMR_STACK ? m->floor : 0),
               "%s: page %u grow floor %#llx", when, p0, (unsigned long long)r->grow_floor);
}

/* The model's regions, in order: runs[i] = [start page, end page); nruns
 * of them. */
static uint16_t runs[PAGES][2];
static unsigned nruns;

/* Cuts the model into its regions (one pass over the keys, joined() written
 * out: a call from here would keep its comparison hooks) when a key changed
 * since the last cut; returns how many. */
FUZZ_NOCOV static unsigned model_runs(void)
{
    if (!keys_changed)
        return nruns;
    keys_changed = false;
    unsigned n = 0;
    for (unsigned p = 0; p < PAGES;) {
        uint64_t k = key[p];
        if (!k) {
            p++;
            continue;
        }
        unsigned p0 = p;
        while (key[p + 1] == k)
            p++;
        p++;
        runs[n][0] = (uint16_t)p0, runs[n][1] = (uint16_t)p;
        n++;
    }
    return nruns = n;
}

/* The whole set against the model, walking forward (or backward). */
FUZZ_NOCOV static void compare(bool backward, const char *when)
{
    FUZZ_CHECK(vmr_check(&set), "%s: vmr_check failed: %s", when, host_log);
    unsigned n = model_runs();
    FUZZ_CHECK(set.count == n, "%s: count %llu, model %u", when, (unsigned long long)set.count, n);
    if (!backward) {
        const struct vm_region *r = vmr_first(&set);
        for (unsigned i = 0; i < n; i++, r = vmr_next(&set, r))
            check_region(r, runs[i][0], runs[i][1], when);
        FUZZ_CHECK(r == NULL, "%s: a region past the model's last", when);
    } else {
        const struct vm_region *r = vmr_last(&set);
        for (unsigned i = n; i-- > 0; r = vmr_prev(&set, r))
            check_region(r, runs[i][0], runs[i][1], when);
        FUZZ_CHECK(r == NULL, "%s: a region before the model's first", when);
    }
}

/* The harness's spare nodes: kept between operations (a node a call takes
 * is replaced from kmalloc before the next one), all kfree'd at the end of
 * an input, so the heap is used as little as the set itself needs. */
static struct vm_region *pool[2];

/* Spares to offer: bits 4-7 of op (0: none, 1: one, else two). */
static struct vmr_spare offer(uint8_t op, int *had)
{
    unsigned k = op >> 4;
    *had = k < 2 ? (int)k : 2;
    struct vmr_spare sp = {{NULL, NULL}};
    for (int i = 0; i < *had; i++) {
        if (!pool[i])
            pool[i] = kmalloc(sizeof(struct vm_region));
        FUZZ_CHECK(pool[i] != NULL, "kmalloc of a spare failed");
        sp.n[i] = pool[i];
    }
    return sp;
}

/* Returns how many spares the call took (they now belong to the set). */
static int taken(struct vmr_spare *sp, int had)
{
    for (int i = 0; i < had; i++)
        if (!sp->n[i])
            pool[i] = NULL;
    return had - (sp->n[0] != NULL) - (sp->n[1] != NULL);
}

/* A page count from b's bits 0-5, clipped to the window from page a. */
static unsigned span(uint8_t a, uint8_t b)
{
    unsigned len = b & 63u;
    return a + len > PAGES ? PAGES - a : len;
}

static void op_insert(uint8_t op, uint8_t a, uint8_t b, uint8_t c, bool bad)
{
    unsigned p0 = a, p1 = a + span(a, b);
    struct vm_region t;
    memset(&t, 0, sizeof(t));
    t.start = P(p0), t.end = P(p1), t.prot = c & 7u;
    unsigned kind = (c >> 3) & 3u;
    t.kind = kind == 3 ? VMR_ANON : (enum vm_kind)kind;
    unsigned img = (c >> 5) & 1u, extra = c >> 6;
    if (t.kind == VMR_IMAGE) {
        t.image = &images[img];
        t.image_off = (uint64_t)(p0 + extra) * PAGE_SIZE;
    }
    if (t.kind == VMR_STACK)
        t.grow_floor = P(p0 - MIN(p0, extra * 8u));
    else if (b & 0x40)
        t.grow_floor = P(1), t.image_off = t.kind == VMR_IMAGE ? t.image_off : 0x5000;
    if (bad) {
        switch (b >> 6) {
        case 0: t.start += 8; break;
        case 1: t.prot |= 8u << (c & 3); break;
        case 2: t.kind = VMR_IMAGE, t.image = NULL; break;
        default: t.kind = VMR_STACK, t.grow_floor = t.start + PAGE_SIZE; break;
        }
    }

    int expect;
    bool need_node = false;
    if (bad || p0 == p1) {
        expect = -EINVAL;
    } else {
        expect = 0;
        for (unsigned p = p0; p < p1; p++)
            if (model[p].used)
                expect = -EEXIST;
        if (expect == 0) {
            /* The new pages as the model holds them: the call must merge
             * exactly where they join a neighbour's. */
            bool image = t.kind == VMR_IMAGE, stack = t.kind == VMR_STACK;
            for (unsigned p = p0; p < p1; p++) {
                model[p] = (struct page){
                    .used = true, .prot = (uint8_t)t.prot, .kind = (uint8_t)t.kind,
                    .img = (uint8_t)img,
                    .ioff = image ? t.image_off + (uint64_t)(p - p0) * PAGE_SIZE : 0,
                    .floor = stack ? t.grow_floor : 0, .sid = stack ? next_sid + 1 : 0};
            }
            if (t.kind == VMR_STACK)
                next_sid++;
            rekey(p0, p1);
            need_node = !(p0 > 0 && joined(p0 - 1)) && !joined(p1 - 1);
        }
    }
    int had;
    struct vmr_spare sp = offer(op, &had);
    if (need_node && had == 0) {
        expect = -ENOMEM;
        for (unsigned p = p0; p < p1; p++)
            model[p].used = false;
        rekey(p0, p1);
    }
    int rc = vmr_insert(&set, &t, &sp);
    int took = taken(&sp, had);
    FUZZ_CHECK(rc == expect, "insert [%u, %u) kind %u prot %u: %d, model %d", p0, p1, t.kind,
               t.prot, rc, expect);
    FUZZ_CHECK(took == (rc == 0 && need_node), "insert [%u, %u): took %d spares", p0, p1, took);
}

static void op_remove(uint8_t op, uint8_t a, uint8_t b)
{
    unsigned p0 = a, p1 = a + span(a, b);
    int expect = p0 == p1 ? -EINVAL : 0;
    /* One spare when one region straddles both edges. */
    bool need = expect == 0 && p0 > 0 && p1 < PAGES && joined(p0 - 1);
    for (unsigned p = p0; need && p < p1; p++)
        need = joined(p);
    int had;
    struct vmr_spare sp = offer(op, &had);
    if (need && had == 0)
        expect = -ENOMEM;
    int rc = vmr_remove(&set, P(p0), P(p1), &sp);
    int took = taken(&sp, had);
    FUZZ_CHECK(rc == expect, "remove [%u, %u): %d, model %d", p0, p1, rc, expect);
    FUZZ_CHECK(took == (rc == 0 && need), "remove [%u, %u): took %d spares", p0, p1, took);
    if (rc == 0) {
        for (unsigned p = p0; p < p1; p++)
            model[p].used = false;
        rekey(p0, p1);
        renumber_from(p1);
    }
}

static void op_protect(uint8_t op, uint8_t a, uint8_t b, uint8_t c)
{
    unsigned p0 = a, p1 = a + span(a, b);
    uint32_t prot = c & 7u;
    if ((c & 0xf8) == 0xf8)
        prot |= 0x10; /* outside VM_PROT_MASK */
    int expect = 0, need = 0;
    bool split_lo = false, split_hi = false;
    if (p0 == p1 || prot > VM_PROT_MASK) {
        expect = -EINVAL;
    } else {
        for (unsigned p = p0; p < p1; p++)
            if (!model[p].used)
                expect = -ENOENT;
        if (expect == 0) {
            split_lo = p0 > 0 && joined(p0 - 1) && model[p0].prot != prot;
            split_hi = p1 < PAGES && joined(p1 - 1) && model[p1 - 1].prot != prot;
            need = split_lo + split_hi;
        }
    }
    int had;
    struct vmr_spare sp = offer(op, &had);
    if (expect == 0 && had < need)
        expect = -ENOMEM;
    int rc = vmr_protect(&set, P(p0), P(p1), prot, &sp);
    int took = taken(&sp, had);
    FUZZ_CHECK(rc == expect, "protect [%u, %u) to %u: %d, model %d", p0, p1, prot, rc, expect);
    FUZZ_CHECK(took == (rc == 0 ? need : 0), "protect [%u, %u): took %d spares, model %d", p0, p1,
               took, need);
    if (rc == 0) {
        if (split_lo)
            renumber_from(p0);
        if (split_hi)
            renumber_from(p1);
        for (unsigned p = p0; p < p1; p++)
            model[p].prot = (uint8_t)prot;
        rekey(p0, p1);
    }
}

static void op_grow(uint8_t a, uint8_t b, uint8_t c)
{
    struct vm_region *r = vmr_find(&set, P(a));
    FUZZ_CHECK((r != NULL) == model[a].used, "find page %u: %p", a, (void *)r);
    if (!r)
        return;
    unsigned s0, s1;
    run_of(a, &s0, &s1);
    unsigned k = b & 31u; /* pages to grow by; 0 is refused */
    vaddr_t ns = r->start - (uint64_t)k * PAGE_SIZE;
    if (c & 0x80)
        ns += 16; /* unaligned */
    int expect = 0;
    if (model[a].kind != VMR_STACK || (c & 0x80) || k == 0) {
        expect = -EINVAL;
    } else if (k > s0 || ns < model[a].floor) {
        expect = -EFAULT;
    } else {
        for (unsigned p = s0 - k; p < s0; p++)
            if (model[p].used)
                expect = -EFAULT;
    }
    int rc = vmr_grow_down(&set, r, ns);
    FUZZ_CHECK(rc == expect, "grow_down page %u by %u: %d, model %d", a, k, rc, expect);
    if (rc == 0) {
        for (unsigned p = s0 - k; p < s0; p++)
            model[p] = model[s0];
        rekey(s0 - k, s0);
    }
}

static void op_gap(uint8_t a, uint8_t b, uint8_t c)
{
    uint64_t len = (uint64_t)(b & 31u) * PAGE_SIZE + ((b & 0x20) ? 100 : 0);
    vaddr_t lo = P(a) + ((b & 0x40) ? 24 : 0), hi = P(MAX(a, c)) + ((b & 0x80) ? PAGE_SIZE / 2 : 0);
    if (c == 0xff)
        hi = P(PAGES); /* the window's end */
    vaddr_t got = 0;
    bool ok = vmr_find_gap(&set, len, lo, hi, &got);
    /* The model: the lowest aligned a >= lo with a + len <= hi and every page
     * it touches free (pages past the window are free). */
    bool want = false;
    vaddr_t at = 0;
    uint64_t pages = (len + PAGE_SIZE - 1) / PAGE_SIZE;
    for (vaddr_t x = ALIGN_UP(lo, PAGE_SIZE); len && x < hi && hi - x >= len; x += PAGE_SIZE) {
        bool free = true;
        for (uint64_t i = 0; i < pages && free; i++) {
            uint64_t p = (x - BASE) / PAGE_SIZE + i;
            free = p >= PAGES || !model[p].used;
        }
        if (free) {
            want = true, at = x;
            break;
        }
    }
    FUZZ_CHECK(ok == want && (!ok || got == at),
               "find_gap len %#llx [%#llx, %#llx): %d at %#llx, model %d at %#llx",
               (unsigned long long)len, (unsigned long long)lo, (unsigned long long)hi, ok,
               (unsigned long long)got, want, (unsigned long long)at);
}

static void op_lookup(uint8_t a, uint8_t c)
{
    vaddr_t addr = P(a) + (uint64_t)c * 16;
    const struct vm_region *f = vmr_find(&set, addr), *l = vmr_lookup_from(&set, addr);
    unsigned p = a;
    while (p < PAGES && !model[p].used)
        p++;
    if (p == PAGES) {
        FUZZ_CHECK(f == NULL && l == NULL, "lookup %#llx: found a region", (unsigned long long)addr);
        return;
    }
    unsigned p0, p1;
    run_of(p, &p0, &p1);
    check_region(l, p0, p1, "lookup_from");
    FUZZ_CHECK(f == (p == a ? l : NULL), "find %#llx: %p", (unsigned long long)addr, (const void *)f);
}

static void run_op(struct fuzz_in *in)
{
    uint8_t op = fuzz_u8(in), a = fuzz_u8(in), b = fuzz_u8(in), c = fuzz_u8(in);
    switch (op & 15u) {
    case 0: case 1: case 2: case 12:
        op_insert(op, a, b, c, false);
        break;
    case 3: case 4: case 13:
        op_remove(op, a, b);
        break;
    case 5: case 6: case 14:
        op_protect(op, a, b, c);
        break;
    case 7: case 15:
        op_grow(a, b, c);
        break;
    case 8:
        op_gap(a, b, c);
        return;
    case 9:
        op_lookup(a, c);
        return;
    case 10:
        op_insert(op, a, b, c, true);
        break;
    default:
        compare(true, "backward walk");
        return;
    }
    compare(false, "after the operation");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fuzz_in fi = {data, size};
    if (!ready) {
        host_arena_init(MiB(16));
        struct mem_region map[] = {{0, MiB(1), MEM_RESERVED}, {MiB(1), MiB(15), MEM_USABLE}};
        frame_init(map, 2);
        heap_init();
        live0 = live_blocks();
        ready = true;
    }
    fuzz_log_reset();
    memset(model, 0, sizeof(model));
    memset(key, 0, sizeof(key));
    keys_changed = true;
    vmr_init(&set);
    for (unsigned k = 0; k < MAX_OPS && !fuzz_done(&fi); k++)
        run_op(&fi);
    compare(false, "at the end");
    vmr_clear(&set);
    for (int i = 0; i < 2; i++) {
        kfree(pool[i]);
        pool[i] = NULL;
    }
    FUZZ_CHECK(set.count == 0 && set.root == NULL, "vmr_clear left regions");
    FUZZ_CHECK(live_blocks() == live0, "heap: %llu live blocks after vmr_clear, %llu before",
               (unsigned long long)live_blocks(), (unsigned long long)live0);
    return 0;
}
