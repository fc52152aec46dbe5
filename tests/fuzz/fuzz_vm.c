/* Fuzz target: user address spaces and the fault logic (kernel/mm/vm.c)
 * with map (anonymous, image, stack) / unmap / protect / access / fork /
 * destroy sequences over up to three spaces (a parent and its forks) in a
 * window of 64 pages, checked after every operation against a model.
 *
 * There is no CPU to fault on the host: an access goes through the page
 * tables (host_would_fault) and calls vm_fault exactly when the CPU would fault
 * (nothing mapped; a write to a non-writable leaf; an execute of an NX leaf;
 * any access to a leaf without PAGE_USER), then reads or writes the frame.
 *
 * Input: operations of 4 bytes: u8 op, u8 a, u8 b, u8 c (run_op). op bits
 * 0-3 pick the operation, bits 4-5 the space slot; a is a window page; b a
 * length in pages (bits 0-3, plus one), FIXED (bit 4) and a stack's floor
 * distance (bits 5-7, 8 pages each); c the protection (bits 0-2), the image
 * (bit 3) and its page offset (bits 4-7).
 *
 * Model: per space, per window page: free or its region's attributes (prot,
 * kind, image and the image byte offset the page shows, stack floor and a
 * stack id: stacks never merge, so their boundaries are not a function of
 * the other attributes), and what a program reads there: zeros or image
 * bytes from the page's offset, except the word at offset 0 once written
 * (inherited at fork, independent afterwards). Residency is not modelled:
 * it is checked against the frame counts instead.
 *
 * Checked: every vm_map/vm_unmap/vm_protect/vm_fork return code; every
 * access's outcome (no fault, resolved, no region, guard gap, refused) as
 * the model says, and the bytes read; after every operation vm_check and
 * the operated space's regions and resident pages against the model; every
 * 8 operations and at the end, every space, and the frames: each frame
 * mapped k times has frameref_extra k - 1, and free + held back + heap +
 * page tables + frameref's bytes + distinct user frames is constant. A
 * check is skipped only when nothing it reads can have changed since it
 * last ran (no kernel call since: `epoch`); after an access that did not
 * fault, the accessed page's words are checked instead.
 * "Out of memory" (-ENOMEM, VM_FAULT_OOM) is accepted only while the
 * harness holds frames back, and then nothing may have changed. At the end
 * every space is destroyed: frames, tables, heap blocks and frameref counts
 * back to the start. */
#include "fuzz.h"

#include "lib/errno.h"
#include "mm/frame.h"
#include "mm/frameref.h"
#include "mm/heap.h"
#include "mm/mm.h"
#include "mm/pagewalk.h"
#include "mm/paging.h"
#include "mm/vm.h"

#define ARENA MiB(16)
#define W 64                /* window pages */
#define BASE 0x400000ull    /* window start */
#define P(p) (BASE + (uint64_t)(p) * PAGE_SIZE)
#define SLOTS 3
#define MAX_OPS 128 /* bounds an input's time: deep states need forks, not long runs */
#define GAP_PAGES (VM_STACK_GAP / PAGE_SIZE)

struct page {
    bool used;
    bool written;    /* word 0 holds wv */
    uint8_t prot;
    uint8_t kind;
    uint8_t img;     /* VMR_IMAGE: which image */
    uint64_t ioff;   /* VMR_IMAGE: image byte offset of the page's first byte */
    uint64_t floor;  /* VMR_STACK: grow_floor */
    uint32_t sid;    /* VMR_STACK: region id */
    uint64_t wv;
    /* content source: 0 zeros, 1 + image: that image from cioff (fixed when
     * the region was made: splits and protects never change it) */
    uint8_t csrc;
    uint64_t cioff;
};

static struct vm_space *sp[SLOTS];
static struct page model[SLOTS][W];
static uint32_t next_sid;
static uint64_t counter;
static bool ready;
/* Frames held back (op_hog), as runs: hog[i] holds hog_len[i] frames from
 * hog[i]; nhog counts the frames, nruns the runs. */
static paddr_t hog[ARENA / PAGE_SIZE];
static uint8_t hog_len[ARENA / PAGE_SIZE];
static size_t nhog, nruns;
static uint64_t total0, live0, meta0;

#define IMG0_LEN (3 * PAGE_SIZE + 1000)
#define IMG1_LEN (PAGE_SIZE / 2 + 8)
static uint8_t img0[IMG0_LEN], img1[IMG1_LEN];
static const struct vm_image images[2] = {{img0, IMG0_LEN}, {img1, IMG1_LEN}};

static uint8_t img_byte(unsigned id, uint64_t i)
{
    return (uint8_t)(i * 7 + (i >> 8) + 1 + id * 89);
}

/* The offsets checked in every resident page. */
static const uint16_t offs[] = {0, 8, 996, 2052, 4088};

/* The word a program reads at byte o of model page m. */
FUZZ_NOCOV static uint64_t expect_word(const struct page *m, uint64_t o)
{
    if (o == 0 && m->written)
        return m->wv;
    if (!m->csrc)
        return 0;
    unsigned id = m->csrc - 1u;
    uint64_t v = 0;
    for (unsigned i = 0; i < 8; i++) {
        uint64_t at = m->cioff + o + i;
        if (at < images[id].len)
            v |= (uint64_t)img_byte(id, at) << (8 * i);
    }
    return v;
}

static uint32_t allowed(uint32_t prot)
{
    return prot | ((prot & (VM_WRITE | VM_EXEC)) ? VM_READ : 0);
}

/* ---- the model ------------------------------------------------------------------- */

/* Gives the stack region starting at page p of slot s a fresh id when page
 * p - 1 belonged to the same region (a split cut it there). */
FUZZ_NOCOV static void cut(int s, unsigned p)
{
    if (p == 0 || p >= W)
        return;
    struct page *m = model[s];
    if (!m[p].used || m[p].kind != VMR_STACK || !m[p - 1].used || m[p - 1].kind != VMR_STACK ||
        m[p - 1].sid != m[p].sid)
        return;
    uint32_t old = m[p].sid, sid = ++next_sid;
    for (unsigned q = p; q < W && m[q].used && m[q].kind == VMR_STACK && m[q].sid == old; q++)
        m[q].sid = sid;
}

FUZZ_NOCOV static void model_clear(int s, unsigned p0, unsigned p1)
{
    cut(s, p0);
    cut(s, p1);
    memset(&model[s][p0], 0, (p1 - p0) * sizeof(struct page));
}

/* ---- checks --------------------------------------------------------------------------- */

_Static_assert(BASE / MiB(2) == (P(W) - 1) / MiB(2), "the window lies inside one page table");

/* Checks are not repeated on state that has not changed since: `epoch`
 * counts the calls that may change the kernel's state (stale() before each),
 * a slot's full check records the epoch it saw, and so do the frame checks.
 * Between two calls only the harness changes anything: the word a
 * non-faulting write stores, which op_access checks where it wrote it. The
 * counter is never reset, so no input can meet a stale record. */
static uint64_t epoch = 1, checked_at[SLOTS], frames_checked_at;

/* Marks every check made so far stale: the kernel is about to be called. */
static void stale(void)
{
    epoch++;
}

/* The frame each window page of a slot maps (PAGING_NO_MAPPING: none), as
 * the slot's last check_space read its tables. */
static paddr_t mapped[SLOTS][W];

/* Reads the window's entries of slot s's tables into mapped[s] and returns
 * how many are present: one descent to the page table that holds the whole
 * window (with the cursor paging_query walks with), then its W entries,
 * where a paging_query per page would descend W times. */
FUZZ_NOCOV static unsigned read_window(int s, const char *when)
{
    struct pt_cursor c;
    const pte_t *e = pt_walk(&c, sp[s]->pt.pml4, P(0), PT_LEVEL_PT);
    for (unsigned p = 0; p < W; p++)
        mapped[s][p] = PAGING_NO_MAPPING;
    if (c.level != PT_LEVEL_PT) {
        FUZZ_CHECK(!pte_present(*e), "%s: slot %d: a level-%d leaf maps the window", when, s,
                   c.level);
        return 0;
    }
    unsigned n = 0;
    for (unsigned p = 0; p < W; p++) {
        if (pte_present(e[p])) {
            mapped[s][p] = e[p] & PTE_ADDR_MASK;
            n++;
        }
    }
    return n;
}

/* The words of window page p of slot s, mapped at frame f, against the model. */
FUZZ_NOCOV static void check_words(int s, unsigned p, paddr_t f, const char *when)
{
    const uint8_t *page = PHYS2VIRT(f);
    for (unsigned i = 0; i < ARRAY_SIZE(offs); i++) {
        uint64_t v;
        memcpy(&v, page + offs[i], 8);
        FUZZ_CHECK(v == expect_word(&model[s][p], offs[i]),
                   "%s: slot %d page %u offset %u: %#llx, model %#llx", when, s, p, offs[i],
                   (unsigned long long)v, (unsigned long long)expect_word(&model[s][p], offs[i]));
    }
}

/* The regions of slot s against its model, vm_check, and every resident
 * window page's contents; nothing when they were checked at this epoch. */
FUZZ_NOCOV static void check_space(int s, const char *when)
{
    if (checked_at[s] == epoch)
        return;
    checked_at[s] = epoch;
    struct vm_space *vs = sp[s];
    const struct page *m = model[s];
    FUZZ_CHECK(vm_check(vs), "%s: vm_check of slot %d: %s", when, s, host_log);
    unsigned used = 0;
    for (const struct vm_region *r = vmr_first(&vs->regions); r; r = vmr_next(&vs->regions, r)) {
        FUZZ_CHECK(r->start >= P(0) && r->end <= P(W), "%s: slot %d: region [%#llx, %#llx) outside the window",
                   when, s, (unsigned long long)r->start, (unsigned long long)r->end);
        unsigned p0 = (unsigned)((r->start - BASE) / PAGE_SIZE), p1 = (unsigned)((r->end - BASE) / PAGE_SIZE);
        for (unsigned p = p0; p < p1; p++) {
            const struct page *q = &m[p];
            FUZZ_CHECK(q->used && q->prot == r->prot && q->kind == r->kind,
                       "%s: slot %d page %u: region prot %u kind %u, model used %d prot %u kind %u", when,
                       s, p, r->prot, r->kind, q->used, q->prot, q->kind);
            if (r->kind == VMR_IMAGE)
                FUZZ_CHECK(r->image == &images[q->img] && r->image_off + (p - p0) * PAGE_SIZE == q->ioff,
                           "%s: slot %d page %u: image offset %#llx, model %#llx", when, s, p,
                           (unsigned long long)(r->image_off + (p - p0) * PAGE_SIZE),
                           (unsigned long long)q->ioff);
            if (r->kind == VMR_STACK)
                FUZZ_CHECK(r->grow_floor == q->floor && q->sid == m[p0].sid,
                           "%s: slot %d page %u: stack floor %#llx (model %#llx) or id differ", when, s, p,
                           (unsigned long long)r->grow_floor, (unsigned long long)q->floor);
        }
        if (r->kind == VMR_STACK) {
            FUZZ_CHECK(p0 == 0 || !m[p0 - 1].used || m[p0 - 1].kind != VMR_STACK || m[p0 - 1].sid != m[p0].sid,
                       "%s: slot %d: stack region starts at page %u inside the model's", when, s, p0);
            FUZZ_CHECK(p1 == W || !m[p1].used || m[p1].kind != VMR_STACK || m[p1].sid != m[p0].sid,
                       "%s: slot %d: stack region ends at page %u inside the model's", when, s, p1);
        }
        used += p1 - p0;
    }
    unsigned want = 0;
    for (unsigned p = 0; p < W; p++)
        want += m[p].used;
    FUZZ_CHECK(used == want, "%s: slot %d: %u pages in regions, model %u", when, s, used, want);
    uint64_t resident = read_window(s, when);
    for (unsigned p = 0; p < W; p++)
        if (mapped[s][p] != PAGING_NO_MAPPING)
            check_words(s, p, mapped[s][p], when);
    FUZZ_CHECK(resident == vs->resident, "%s: slot %d: %llu pages mapped in the window, resident %llu",
               when, s, (unsigned long long)resident, (unsigned long long)vs->resident);
}

static uint16_t refs[ARENA / PAGE_SIZE];
static paddr_t seen[SLOTS * W];
/* The heap's statistics as check_all last read them (at frames_checked_at). */
static struct heap_stats hs;

/* Every space, the CoW counts of every mapped frame, and frame conservation
 * (the counts: nothing when they were checked at this epoch). */
FUZZ_NOCOV static void check_all(const char *when)
{
    for (int s = 0; s < SLOTS; s++)
        if (sp[s])
            check_space(s, when);
    if (frames_checked_at == epoch)
        return;
    frames_checked_at = epoch;
    unsigned n = 0;
    for (int s = 0; s < SLOTS; s++) {
        if (!sp[s])
            continue;
        for (unsigned p = 0; p < W; p++) {
            paddr_t f = mapped[s][p];
            if (f == PAGING_NO_MAPPING)
                continue;
            if (!refs[f / PAGE_SIZE]++)
                seen[n++] = f;
        }
    }
    for (unsigned i = 0; i < n; i++) {
        unsigned k = refs[seen[i] / PAGE_SIZE];
        refs[seen[i] / PAGE_SIZE] = 0;
        FUZZ_CHECK(frameref_extra(seen[i]) == k - 1, "%s: frame %#llx mapped %u times, extra %u", when,
                   (unsigned long long)seen[i], k, frameref_extra(seen[i]));
    }
    heap_get_stats(&hs);
    uint64_t sum = fuzz_free_frames() + nhog + hs.pages_held + paging_table_pages() +
                   frameref_metadata_bytes() / PAGE_SIZE + n;
    FUZZ_CHECK(sum == total0, "%s: frames: %llu free, %zu held back, %llu heap, %llu tables, "
               "%llu frameref, %u user: %llu, want %llu", when, (unsigned long long)fuzz_free_frames(), nhog,
               (unsigned long long)hs.pages_held, (unsigned long long)paging_table_pages(),
               (unsigned long long)frameref_metadata_bytes() / PAGE_SIZE, n, (unsigned long long)sum,
               (unsigned long long)total0);
}

/* ---- operations ------------------------------------------------------------------------- */

static bool low(void)
{
    return nhog > 0;
}

/* The fault vm_fault must answer at page p of slot s for access acc, with
 * the stack growth it implies (*grow_to: the lowest page a resolved fault
 * leaves in the stack, or W: none). */
FUZZ_NOCOV static enum vm_fault_result expect_fault(int s, unsigned p, uint32_t acc, unsigned *grow_to,
                                                    unsigned *stack_at)
{
    const struct page *m = model[s];
    *grow_to = W;
    if (m[p].used)
        return (allowed(m[p].prot) & acc) ? VM_FAULT_RESOLVED : VM_FAULT_ACCESS;
    unsigned up = p + 1;
    while (up < W && !m[up].used)
        up++;
    if (up == W || m[up].kind != VMR_STACK || !m[up].floor)
        return VM_FAULT_NOREGION;
    uint64_t floor = m[up].floor;
    if (P(p) + VM_STACK_GAP < floor)
        return VM_FAULT_NOREGION;
    if (P(p) < floor)
        return VM_FAULT_GUARD;
    int below = (int)p - 1;
    while (below >= 0 && !m[below].used)
        below--;
    if (below >= 0 && p < (unsigned)below + 1 + GAP_PAGES)
        return VM_FAULT_GUARD;
    if (!(allowed(m[up].prot) & acc))
        return VM_FAULT_ACCESS;
    *grow_to = p;
    *stack_at = up;
    return VM_FAULT_RESOLVED;
}

FUZZ_NOCOV static void op_access(int s, unsigned p, uint32_t acc, unsigned word)
{
    struct vm_space *vs = sp[s];
    vaddr_t va = P(p) + (uint64_t)word * 8;
    unsigned grow_to, stack_at = 0;
    enum vm_fault_result want = expect_fault(s, p, acc, &grow_to, &stack_at);
    if (!host_would_fault(vs, va, acc)) {
        FUZZ_CHECK(want == VM_FAULT_RESOLVED && grow_to == W,
                   "slot %d page %u access %u allowed by the tables, model says %s", s, p, acc,
                   vm_fault_name(want));
    } else {
        stale();
        enum vm_fault_result r = vm_fault(vs, va, acc);
        if (r == VM_FAULT_OOM && low() && want == VM_FAULT_RESOLVED) {
            check_space(s, "after a fault out of memory");
            return;
        }
        FUZZ_CHECK(r == want, "slot %d page %u access %u: %s, model %s", s, p, acc, vm_fault_name(r),
                   vm_fault_name(want));
        if (r != VM_FAULT_RESOLVED) {
            check_space(s, "after a refused fault");
            return;
        }
        FUZZ_CHECK(!host_would_fault(vs, va, acc), "slot %d page %u access %u resolved but faults again", s, p, acc);
        if (grow_to < W) {
            struct page *m = model[s];
            for (unsigned q = grow_to; q < stack_at; q++) {
                m[q] = m[stack_at];
                m[q].written = false;
                m[q].wv = 0;
                m[q].csrc = 0;
                m[q].cioff = 0;
            }
        }
    }
    paddr_t f = paging_translate_in(&vs->pt, va);
    uint64_t *w = PHYS2VIRT(f);
    if (acc == VM_READ) {
        FUZZ_CHECK(*w == expect_word(&model[s][p], (uint64_t)word * 8),
                   "slot %d page %u word %u reads %#llx, model %#llx", s, p, word, (unsigned long long)*w,
                   (unsigned long long)expect_word(&model[s][p], (uint64_t)word * 8));
    } else if (acc == VM_WRITE) {
        uint64_t *w0 = PHYS2VIRT(f & ~(paddr_t)(PAGE_SIZE - 1));
        *w0 = ++counter;
        model[s][p].written = true;
        model[s][p].wv = counter;
    }
    /* after a fault: everything; else only the page's words changed (a
     * writable page is mapped once: vm_check and the counts saw to that) */
    check_space(s, "after an access");
    check_words(s, p, f & ~(paddr_t)(PAGE_SIZE - 1), "after an access");
}

static int free_slot(void)
{
    for (int s = 0; s < SLOTS; s++)
        if (!sp[s])
            return s;
    return -1;
}

FUZZ_NOCOV static void op_map(int s, unsigned kind, unsigned a, uint8_t b, uint8_t c)
{
    struct vm_space *vs = sp[s];
    struct page *m = model[s];
    unsigned len = 1 + (b & 15);
    bool fixed = b & 16;
    uint32_t prot = c & 7;
    unsigned img = (c >> 3) & 1;
    uint64_t ioff = (uint64_t)(c >> 4) * PAGE_SIZE;
    unsigned dist = (b >> 5) * 8;
    vaddr_t floor = 0;
    if (kind == VMR_STACK && dist)
        floor = P(a >= dist ? a - dist : 0);
    if (fixed && a + len > W)
        len = W - a;
    /* where it goes: a, or the model's lowest gap from a (pages past the
     * window are free) */
    unsigned at = a;
    if (!fixed) {
        for (at = a; at < W; at++) {
            unsigned k = 0;
            while (k < len && at + k < W && !m[at + k].used)
                k++;
            if (k == len || at + k == W)
                break;
        }
    }
    int want = (floor && floor >= P(at)) ? -EINVAL : 0;
    vaddr_t addr = P(a);
    stale();
    int r = vm_map(vs, &addr, (uint64_t)len * PAGE_SIZE, prot, (enum vm_kind)kind,
                   kind == VMR_IMAGE ? &images[img] : NULL, ioff, floor, fixed ? VM_MAP_FIXED : 0);
    if (r == -ENOMEM && low() && want == 0) {
        check_space(s, "after a map out of memory");
        return;
    }
    FUZZ_CHECK(r == want, "slot %d map(page %u, %u pages, prot %u, kind %u, floor %#llx, fixed %d) = %d, "
               "model %d", s, a, len, prot, kind, (unsigned long long)floor, fixed, r, want);
    if (r) {
        check_space(s, "after a refused map");
        return;
    }
    FUZZ_CHECK(addr == P(at), "slot %d map placed at %#llx, model page %u", s, (unsigned long long)addr, at);
    if (at + len > W) { /* past the window: out of the model's reach, so gone again */
        FUZZ_CHECK(vm_unmap(vs, addr, (uint64_t)len * PAGE_SIZE) == 0, "unmap past the window");
        check_space(s, "after a map past the window");
        return;
    }
    model_clear(s, at, at + len);
    uint32_t sid = ++next_sid;
    for (unsigned k = 0; k < len; k++) {
        struct page *q = &m[at + k];
        q->used = true;
        q->prot = (uint8_t)prot;
        q->kind = (uint8_t)kind;
        if (kind == VMR_IMAGE) {
            q->img = (uint8_t)img;
            q->ioff = q->cioff = ioff + (uint64_t)k * PAGE_SIZE;
            q->csrc = (uint8_t)(1 + img);
        }
        if (kind == VMR_STACK) {
            q->floor = floor;
            q->sid = sid;
        }
    }
    check_space(s, "after a map");
}

FUZZ_NOCOV static void op_unmap(int s, unsigned a, uint8_t b)
{
    unsigned len = 1 + (b & 63);
    if (a + len > W)
        len = W - a;
    stale();
    int r = vm_unmap(sp[s], P(a), (uint64_t)len * PAGE_SIZE);
    if (r == -ENOMEM && low()) {
        check_space(s, "after an unmap out of memory");
        return;
    }
    FUZZ_CHECK(r == 0, "slot %d unmap(page %u, %u pages) = %d", s, a, len, r);
    model_clear(s, a, a + len);
    check_space(s, "after an unmap");
}

FUZZ_NOCOV static void op_protect(int s, unsigned a, uint8_t b, uint8_t c)
{
    struct page *m = model[s];
    unsigned len = 1 + (b & 63);
    if (a + len > W)
        len = W - a;
    uint32_t prot = c & 7;
    int want = 0;
    for (unsigned p = a; p < a + len; p++)
        if (!m[p].used)
            want = -ENOENT;
    stale();
    int r = vm_protect(sp[s], P(a), (uint64_t)len * PAGE_SIZE, prot);
    if (r == -ENOMEM && low() && want == 0) {
        check_space(s, "after a protect out of memory");
        return;
    }
    FUZZ_CHECK(r == want, "slot %d protect(page %u, %u pages, %u) = %d, model %d", s, a, len, prot, r, want);
    if (!r) {
        /* a stack splits where its prot changes at an edge */
        if (m[a].prot != prot)
            cut(s, a);
        if (a + len < W && m[a + len].used && m[a + len].prot != prot)
            cut(s, a + len);
        for (unsigned p = a; p < a + len; p++)
            m[p].prot = (uint8_t)prot;
    }
    check_space(s, "after a protect");
}

FUZZ_NOCOV static void op_fork(int s)
{
    int t = free_slot();
    if (t < 0)
        return;
    struct vm_space *child = NULL;
    stale();
    int r = vm_fork(sp[s], "fuzz-child", &child);
    if (r == -ENOMEM && low()) {
        check_all("after a fork out of memory");
        return;
    }
    FUZZ_CHECK(r == 0 && child, "fork of slot %d = %d", s, r);
    sp[t] = child;
    memcpy(model[t], model[s], sizeof(model[t]));
    check_space(s, "fork: the parent");
    check_space(t, "fork: the child");
}

/* Frames are held back HOG_RUN at a time (one frame_alloc_contig and one
 * frame_free_contig where one frame_alloc and one frame_free per frame cost
 * most of an input that holds memory back), the last ones one at a time,
 * the per-CPU cache's included: the vm calls see the same `keep` frames. */
#define HOG_RUN 64

/* Takes free frames until at most `keep` are left. */
FUZZ_NOCOV static void hog_take(unsigned keep)
{
    uint64_t left = fuzz_free_frames();
    while (left >= keep + HOG_RUN) {
        paddr_t f = frame_alloc_contig(HOG_RUN, PAGE_SIZE);
        if (!f)
            break;
        hog[nruns] = f;
        hog_len[nruns++] = HOG_RUN;
        nhog += HOG_RUN;
        left -= HOG_RUN;
    }
    paddr_t f;
    while (left > keep && (f = frame_alloc())) {
        hog[nruns] = f;
        hog_len[nruns++] = 1;
        nhog++;
        left--;
    }
}

/* Gives every held frame back. */
FUZZ_NOCOV static void hog_release(void)
{
    while (nruns) {
        nruns--;
        if (hog_len[nruns] == 1)
            frame_free(hog[nruns]);
        else
            frame_free_contig(hog[nruns], hog_len[nruns]);
    }
    nhog = 0;
}

static void op_hog(uint8_t c)
{
    stale();
    if (c & 0x80)
        hog_release();
    else
        hog_take(c & 0x3f);
}

static void run_op(struct fuzz_in *in, unsigned k)
{
    uint8_t op = fuzz_u8(in), a = fuzz_u8(in), b = fuzz_u8(in), c = fuzz_u8(in);
    int s = (op >> 4) & 3;
    if (s == 3)
        s = 0;
    unsigned page = a % W;
    unsigned code = op & 15;
    if (code == 10) { /* create in an empty slot */
        if (!sp[s]) {
            stale();
            int r = vm_space_create("fuzz", &sp[s]);
            if (r == -ENOMEM && low())
                return;
            FUZZ_CHECK(r == 0, "vm_space_create = %d", r);
            memset(model[s], 0, sizeof(model[s]));
        }
        return;
    }
    if (code == 11) {
        op_hog(c);
        return;
    }
    if (!sp[s])
        return;
    switch (code) {
    case 0: case 1: case 2: op_map(s, code, page, b, c); break;
    case 3: op_unmap(s, page, b); break;
    case 4: op_protect(s, page, b, c); break;
    case 5: case 12: op_access(s, page, VM_READ, b & 511); break;
    case 6: case 13: op_access(s, page, VM_WRITE, b); break;
    case 7: op_access(s, page, VM_EXEC, b); break;
    case 8: op_fork(s); break;
    case 9:
        stale();
        vm_space_destroy(sp[s]);
        sp[s] = NULL;
        memset(model[s], 0, sizeof(model[s]));
        break;
    default: check_all("check"); break;
    }
    if (k % 8 == 7)
        check_all("every 8 operations");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fuzz_in fi = {data, size};
    if (!ready) {
        host_arena_init(ARENA);
        struct mem_region map[] = {{0, MiB(1), MEM_RESERVED}, {MiB(1), ARENA - MiB(1), MEM_USABLE}};
        frame_init(map, 2);
        heap_init();
        frameref_init();
        FUZZ_CHECK(paging_as_create(&kernel_as) == 0, "kernel_as");
        FUZZ_CHECK(paging_kernel_half_prepare(&kernel_as, PAGING_KERNEL_HALF,
                                              PAGING_KERNEL_HALF + GiB(512)) == 0, "kernel half");
        for (uint64_t i = 0; i < IMG0_LEN; i++)
            img0[i] = img_byte(0, i);
        for (uint64_t i = 0; i < IMG1_LEN; i++)
            img1[i] = img_byte(1, i);
        /* frameref's directory stays from the first share on: make it now */
        paddr_t f = frame_alloc();
        FUZZ_CHECK(frameref_share(f) && !frameref_put(f) && frameref_put(f), "frameref");
        frame_free(f);
        heap_get_stats(&hs);
        live0 = hs.live_blocks;
        meta0 = frameref_metadata_bytes();
        total0 = fuzz_free_frames() + hs.pages_held + paging_table_pages() + meta0 / PAGE_SIZE;
        ready = true;
    }
    fuzz_log_reset();
    memset(model, 0, sizeof(model));
    next_sid = 0;
    stale();
    FUZZ_CHECK(vm_space_create("fuzz", &sp[0]) == 0, "vm_space_create");
    for (unsigned k = 0; k < MAX_OPS && !fuzz_done(&fi); k++)
        run_op(&fi, k);
    check_all("at the end");
    FUZZ_CHECK(frameref_check(), "frameref_check at the end (the log says which rule)");
    stale();
    hog_release();
    for (int s = 0; s < SLOTS; s++) {
        if (sp[s])
            vm_space_destroy(sp[s]);
        sp[s] = NULL;
    }
    check_all("after destroying every space"); /* hs: the heap now */
    FUZZ_CHECK(frameref_check(), "frameref_check after destroying every space");
    FUZZ_CHECK(hs.live_blocks == live0, "heap: %llu live blocks, %llu at the start",
               (unsigned long long)hs.live_blocks, (unsigned long long)live0);
    FUZZ_CHECK(frameref_shared_frames() == 0 && frameref_metadata_bytes() == meta0,
               "frameref: %llu shared frames, %llu bytes (%llu at the start)",
               (unsigned long long)frameref_shared_frames(), (unsigned long long)frameref_metadata_bytes(),
               (unsigned long long)meta0);
    struct vm_stats vst;
    vm_get_stats(&vst);
    FUZZ_CHECK(vst.spaces == 0, "%llu spaces alive", (unsigned long long)vst.spaces);
    return 0;
}
