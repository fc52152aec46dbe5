/* Fuzz target: paging (kernel/mm/paging.c) with random map / unmap /
 * protect / query sequences over 4 KiB, 2 MiB and 1 GiB pages, checked
 * against a model of what every address translates to.
 *
 * Physical memory is a 16 MiB host arena (the first MiB reserved); page
 * tables come from the real frame allocator. Mapped physical addresses need
 * not exist: only tables are touched.
 *
 * Input: u8 setup (bit 0: the CPU has 1 GiB pages; bit 1: the address space
 * is active, so changes are flushed), then operations (see run_op): u8
 * opcode, u8 region, u32 page offset, u32 length or physical page, u8
 * flags, u8 cache mode and options.
 *
 * The model is a sorted list of extents {virt, len, phys, flags, cache}.
 * Checked: every call returns what the rules in paging.h say (EINVAL for bad
 * arguments, ENOTSUP for 1 GiB pages without the CPU feature, EEXIST when
 * something is mapped and PAGING_REPLACE is absent, ENOENT when nothing is
 * mapped, ENOMEM only when frames are short, and then nothing changed);
 * queries around each operation and around every extent agree with the
 * model; every few operations and at the end a walk of the real tables
 * (written here) finds exactly the model's mappings, no empty table below
 * the PML4, present-entry counts that agree with the tables, and as many
 * tables as table_pages says; at the end unmapping everything leaves only the
 * PML4, destroying returns every frame and paging_table_pages() is back to
 * its value before the run. The kernel's own walkers (mm/pagewalk.h) are
 * checked against that walk: pagewalk_leaves at the end of every input finds
 * the same leaves; pagewalk_leaves_in over a range (an operation) reports,
 * in order, exactly the leaves touching it, stops where its callback says,
 * refuses a range that is empty, not canonical or in both halves; and
 * paging_walk_print_in names the model's translation of the range's start. */
#include "fuzz.h"

#include "arch/x86_64/mmu_ops.h"
#include "lib/printf.h"
#include "mm/frame.h"
#include "mm/mm.h"
#include "mm/pagewalk.h"
#include "mm/paging.h"
#include "mm/pte.h"

#define ARENA MiB(16)
/* Bytes of an input read: at most 170 operations (run.sh passes it to
 * libFuzzer as -max_len). The longest kept input is 34 operations; without
 * a bound inputs grew past 10 KiB in 30-minute runs, most of it beyond the
 * 600 operations then read. */
#define FUZZ_MAX_LEN 2048
#define MAX_EXT 8192
/* Fewer free frames than this before an operation make ENOMEM acceptable
 * (no operation here needs more tables than that). */
#define LOW_FRAMES 256

struct ext {
    vaddr_t va;
    uint64_t len;
    paddr_t pa;
    uint64_t flags; /* PAGE_WRITABLE | PAGE_USER | PAGE_GLOBAL | PAGE_NX as granted */
    unsigned cm;    /* PAT index */
};

static struct ext ext[MAX_EXT], tmp[MAX_EXT];
static size_t next;
static struct addrspace as;
static paddr_t hog[ARENA / PAGE_SIZE];
static size_t nhog;
static bool arena_ready;

/* ---- the model ----------------------------------------------------------------- */

static uint64_t ext_last(const struct ext *e) { return e->va + e->len - 1; }

/* Appends the part of e inside [lo, hi] (inclusive) to tmp. */
static size_t clip(size_t n, const struct ext *e, uint64_t lo, uint64_t hi)
{
    uint64_t a = MAX(e->va, lo), b = MIN(ext_last(e), hi);
    if (a > b)
        return n;
    FUZZ_CHECK(n < MAX_EXT, "model full");
    tmp[n] = *e;
    tmp[n].va = a;
    tmp[n].len = b - a + 1;
    tmp[n].pa = e->pa + (a - e->va);
    return n + 1;
}

/* Makes [va, va+len) unmapped (val NULL) or mapped as *val: the pieces left
 * of the range (in order), val, then the pieces right of it. */
static void model_set(vaddr_t va, uint64_t len, const struct ext *val)
{
    uint64_t last = va + len - 1;
    size_t n = 0;
    for (size_t i = 0; i < next && va > 0; i++)
        n = clip(n, &ext[i], 0, va - 1);
    if (val) {
        FUZZ_CHECK(n < MAX_EXT, "model full");
        tmp[n++] = *val;
    }
    for (size_t i = 0; i < next && last < UINT64_MAX; i++)
        n = clip(n, &ext[i], last + 1, UINT64_MAX);
    memcpy(ext, tmp, n * sizeof(ext[0]));
    next = n;
}

/* Gives every mapped page in [va, va+len) new flags and cache mode. */
static void model_protect(vaddr_t va, uint64_t len, uint64_t flags, unsigned cm)
{
    uint64_t last = va + len - 1;
    size_t n = 0;
    for (size_t i = 0; i < next; i++) {
        const struct ext *e = &ext[i];
        if (va > 0)
            n = clip(n, e, 0, va - 1);
        size_t m = clip(n, e, va, last);
        if (m > n) {
            tmp[n].flags = flags;
            tmp[n].cm = cm;
        }
        n = m;
        if (last < UINT64_MAX)
            n = clip(n, e, last + 1, UINT64_MAX);
    }
    memcpy(ext, tmp, n * sizeof(ext[0]));
    next = n;
}

/* The extent covering va, or NULL. */
static const struct ext *model_find(vaddr_t va)
{
    size_t lo = 0, hi = next;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (ext[mid].va <= va)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo && va <= ext_last(&ext[lo - 1]) ? &ext[lo - 1] : NULL;
}

/* True when anything in [va, va+len) is mapped. */
static bool model_busy(vaddr_t va, uint64_t len)
{
    uint64_t last = va + len - 1;
    for (size_t i = 0; i < next; i++)
        if (ext[i].va <= last && ext_last(&ext[i]) >= va)
            return true;
    return false;
}

/* ---- checks against the real tables ------------------------------------------------ */

static bool canonical(vaddr_t va) { return (vaddr_t)((int64_t)(va << 16) >> 16) == va; }

/* ---- the TLBs: no stale translation survives an operation --------------------- */

/* Two CPUs' TLBs at leaf granularity while the space is active: this CPU's,
 * which the paging code flushes itself (invlpg, CR3 loads: the support
 * layer's hooks report them), and another CPU's with the same tables loaded,
 * flushed only by shootdowns, as tlb.c's handler does (page by page, or all
 * but global entries, or all when the shootdown says global, above 32
 * pages). Every query that finds a mapping caches it in both. After every
 * operation each cached translation must still be one the model allows:
 * the same physical page and cache mode, no right the model withdrew (fewer
 * rights only cost a spurious fault, so adding rights needs no flush). */
#define TLB_SLOTS 32
#define TLB_FULL_PAGES 32 /* tlb.c's SHOOTDOWN_FULL_PAGES */
#define RIGHTS (PAGE_WRITABLE | PAGE_USER | PAGE_NX)

struct tlb_entry {
    vaddr_t va;
    uint64_t size;
    paddr_t pa;
    uint64_t flags; /* RIGHTS as the walk granted them */
    unsigned cm;
    bool global, valid;
};

static struct tlb_entry tlb[2][TLB_SLOTS]; /* [0]: this CPU, [1]: another */
static uint32_t tlb_live[2]; /* bit i: tlb[c][i].valid (drops visit only these) */
_Static_assert(TLB_SLOTS <= 32, "tlb_live has a bit per slot");
static unsigned tlb_next;
static bool active; /* `as` is in CR3 */

static FUZZ_NOCOV void tlb_fill(vaddr_t va, const struct paging_mapping *m)
{
    vaddr_t base = ALIGN_DOWN(va, m->page_size);
    struct tlb_entry e = {base, m->page_size, m->phys - (va - base), m->flags & RIGHTS,
                          (unsigned)m->cache, (m->entry & PTE_GLOBAL) != 0, true};
    unsigned slot = tlb_next;
    for (unsigned i = 0; i < TLB_SLOTS; i++)
        if (tlb[0][i].valid && tlb[0][i].va == base)
            slot = i;
    if (slot == tlb_next)
        tlb_next = (tlb_next + 1) % TLB_SLOTS;
    tlb[0][slot] = tlb[1][slot] = e;
    tlb_live[0] |= 1u << slot;
    tlb_live[1] |= 1u << slot;
}

/* Drops cpu's entries that meet [lo, last] (all: every one, global ones too
 * only when `global`). */
static FUZZ_NOCOV void tlb_drop(int cpu, vaddr_t lo, vaddr_t last, bool all, bool global)
{
    for (uint32_t live = tlb_live[cpu]; live; live &= live - 1) {
        unsigned i = (unsigned)__builtin_ctz(live);
        struct tlb_entry *e = &tlb[cpu][i];
        if (all ? (global || !e->global) : (e->va <= last && e->va + (e->size - 1) >= lo)) {
            e->valid = false;
            tlb_live[cpu] &= ~(1u << i);
        }
    }
}

static void tlb_invlpg(vaddr_t va)
{
    tlb_drop(0, ALIGN_DOWN(va, PAGE_SIZE), ALIGN_DOWN(va, PAGE_SIZE) + (PAGE_SIZE - 1), false,
             false);
}

static void tlb_cr3(paddr_t pml4)
{
    (void)pml4;
    tlb_drop(0, 0, 0, true, false);
}

/* [start, end) as mmu_ops.h defines it: end 0 is 2^64. */
static void tlb_shootdown(vaddr_t start, vaddr_t end, bool global)
{
    FUZZ_CHECK(end - start >= PAGE_SIZE && start % PAGE_SIZE == 0 && end % PAGE_SIZE == 0,
               "shootdown of [%#llx, %#llx)", (unsigned long long)start, (unsigned long long)end);
    if ((end - start) / PAGE_SIZE > TLB_FULL_PAGES)
        tlb_drop(1, 0, 0, true, global);
    else
        tlb_drop(1, start, end - 1, false, false);
}

/* Every cached translation is still allowed by the model. */
static FUZZ_NOCOV void tlb_check(void)
{
    for (int c = 0; c < 2; c++) {
        for (unsigned i = 0; i < TLB_SLOTS; i++) {
            const struct tlb_entry *e = &tlb[c][i];
            if (!e->valid)
                continue;
            const char *who = c ? "another CPU" : "this CPU";
            for (vaddr_t p = e->va, last = e->va + e->size - 1;;) {
                const struct ext *x = model_find(p);
                FUZZ_CHECK(x, "%s's TLB still maps %#llx (a %#llx page at %#llx): not flushed",
                           who, (unsigned long long)p, (unsigned long long)e->size,
                           (unsigned long long)e->va);
                FUZZ_CHECK(x->pa - x->va == e->pa - e->va && x->cm == e->cm &&
                               !(e->flags & ~x->flags & (PAGE_WRITABLE | PAGE_USER)) &&
                               !(x->flags & ~e->flags & PAGE_NX),
                           "%s's TLB maps %#llx to %#llx (rights %#llx, cache %u), the tables to "
                           "%#llx (rights %#llx, cache %u): not flushed", who,
                           (unsigned long long)p, (unsigned long long)(e->pa + (p - e->va)),
                           (unsigned long long)e->flags, e->cm,
                           (unsigned long long)(x->pa + (p - x->va)),
                           (unsigned long long)(x->flags & RIGHTS), x->cm);
                if (ext_last(x) >= last)
                    break;
                p = ext_last(x) + 1;
            }
        }
    }
}

/* paging_query at va agrees with the model. */
static void check_at(vaddr_t va)
{
    if (!canonical(va))
        return;
    struct paging_mapping m;
    bool got = paging_query(&as, va, &m);
    const struct ext *e = model_find(va);
    FUZZ_CHECK(got == (e != NULL), "query %#llx: %s, the model says %s", (unsigned long long)va,
               got ? "mapped" : "unmapped", e ? "mapped" : "unmapped");
    if (!e)
        return;
    FUZZ_CHECK(m.phys == e->pa + (va - e->va), "query %#llx: phys %#llx, want %#llx",
               (unsigned long long)va, (unsigned long long)m.phys,
               (unsigned long long)(e->pa + (va - e->va)));
    FUZZ_CHECK(m.flags == (PAGE_PRESENT | e->flags), "query %#llx: flags %#llx, want %#llx",
               (unsigned long long)va, (unsigned long long)m.flags,
               (unsigned long long)(PAGE_PRESENT | e->flags));
    FUZZ_CHECK((unsigned)m.cache == e->cm, "query %#llx: cache %u, want %u",
               (unsigned long long)va, (unsigned)m.cache, e->cm);
    FUZZ_CHECK(paging_translate_in(&as, va) == m.phys, "translate and query disagree");
    if (active)
        tlb_fill(va, &m);
}

/* Queries both ends of a range and just outside it. */
static void check_around(vaddr_t va, uint64_t len)
{
    check_at(va);
    check_at(va - PAGE_SIZE);
    check_at(va + len - PAGE_SIZE + 0x123);
    check_at(va + len);
    check_at(va + len / 2);
}

/* What the walk found: leaves merged into runs like the model's extents. */
static struct ext found[MAX_EXT];
static size_t nfound;
static uint64_t tables_seen, leaves_seen;
/* Leaves touching [touch_lo, touch_hi] the walk saw (touch_on: counted). */
static bool touch_on;
static vaddr_t touch_lo, touch_hi;
static uint64_t leaves_touching;

static void found_leaf(vaddr_t va, uint64_t size, paddr_t pa, uint64_t flags, unsigned cm)
{
    if (nfound) {
        struct ext *l = &found[nfound - 1];
        if (l->va + l->len == va && l->pa + l->len == pa && l->flags == flags && l->cm == cm) {
            l->len += size;
            return;
        }
    }
    FUZZ_CHECK(nfound < MAX_EXT, "walk found too many runs");
    found[nfound++] = (struct ext){va, size, pa, flags, cm};
}

/* Present entries of a table (the count the table's pointer carries). */
/* Walks a table at `level` covering from base; allow/deny as the CPU combines
 * them. Returns its present entries (its pointer's count is checked against
 * them). No coverage hooks: it visits 512 entries per table, and a hook per
 * entry was most of the target's time. */
static FUZZ_NOCOV unsigned walk(paddr_t table, int level, vaddr_t base, uint64_t allow,
                                uint64_t deny)
{
    const pte_t *t = PHYS2VIRT(table);
    unsigned present = 0;
    tables_seen++;
    for (unsigned i = 0; i < PT_ENTRIES; i++) {
        pte_t e = t[i];
        if (!(e & PTE_PRESENT))
            continue;
        present++;
        uint64_t size = 1ULL << (12 + 9 * (level - 1));
        vaddr_t va = base + i * size;
        va = (vaddr_t)((int64_t)(va << 16) >> 16);
        uint64_t a = allow & e & (PTE_WRITABLE | PTE_USER), d = deny | (e & PTE_NX);
        bool leaf = level == 1 || (e & PTE_PS);
        if (leaf) {
            uint64_t pat = level == 1 ? PTE_PAT_4K : PTE_PAT_LARGE;
            uint64_t mask = level == 1 ? PTE_ADDR_MASK : level == 2 ? PTE_ADDR_MASK_2M
                                                                   : PTE_ADDR_MASK_1G;
            unsigned cm = ((e & PTE_PWT) ? 1 : 0) | ((e & PTE_PCD) ? 2 : 0) | ((e & pat) ? 4 : 0);
            FUZZ_CHECK(level < 4, "PS set in a PML4 entry");
            FUZZ_CHECK(!(e & (PTE_CNT_MASK | PTE_CNT_VALID)) || level == 1,
                       "count bits in a large leaf");
            leaves_seen++;
            if (touch_on && va <= touch_hi && va + size - 1 >= touch_lo)
                leaves_touching++;
            found_leaf(va, size, e & mask, a | d | (e & PTE_GLOBAL), cm);
        } else {
            uint64_t n = walk(e & PTE_ADDR_MASK, level - 1, va, a, d);
            FUZZ_CHECK(!(e & PTE_CNT_VALID) || ((e & PTE_CNT_MASK) >> PTE_CNT_SHIFT) == n,
                       "table at %#llx: count %llu in its pointer, %llu present",
                       (unsigned long long)va, (unsigned long long)((e & PTE_CNT_MASK) >>
                                                                     PTE_CNT_SHIFT),
                       (unsigned long long)n);
        }
    }
    FUZZ_CHECK(present || level == 4, "an empty table at level %d below %#llx was kept", level,
               (unsigned long long)base);
    return present;
}

/* The harness's walk of the whole tree into found[]. */
static void walk_all(void)
{
    nfound = 0;
    tables_seen = 0;
    leaves_seen = 0;
    leaves_touching = 0;
    walk(as.pml4, 4, 0, PTE_WRITABLE | PTE_USER, 0);
}

/* ---- the kernel's walkers (mm/pagewalk.h) against the harness's walk ------------ */

/* What a pagewalk visitor was given, merged into runs as found[] is. */
static struct ext pw[MAX_EXT];
static size_t npw;
static uint64_t pw_count, pw_stop_after;
static vaddr_t pw_end; /* one past the last leaf reported (0: none yet) */
static bool pw_range;  /* a pagewalk_leaves_in walk: every leaf must touch pw_lo..pw_hi */
static vaddr_t pw_lo, pw_hi;

static FUZZ_NOCOV void pw_take(const struct pagewalk_leaf *l)
{
    static const uint64_t sizes[] = {0, PAGE_SIZE_4K, PAGE_SIZE_2M, PAGE_SIZE_1G};
    FUZZ_CHECK(l->level >= 1 && l->level <= 3 && l->size == sizes[l->level],
               "pagewalk leaf at %#llx: level %d, size %#llx", (unsigned long long)l->virt,
               l->level, (unsigned long long)l->size);
    FUZZ_CHECK(l->virt % l->size == 0 && l->phys % l->size == 0 && canonical(l->virt),
               "pagewalk leaf %#llx -> %#llx: not aligned to its size %#llx",
               (unsigned long long)l->virt, (unsigned long long)l->phys,
               (unsigned long long)l->size);
    FUZZ_CHECK(!pw_count || l->virt >= pw_end, "pagewalk leaf %#llx after one ending at %#llx",
               (unsigned long long)l->virt, (unsigned long long)pw_end);
    FUZZ_CHECK(!pw_range || (l->virt <= pw_hi && l->virt + l->size - 1 >= pw_lo),
               "pagewalk_leaves_in(%#llx, %#llx) reported %#llx+%#llx", (unsigned long long)pw_lo,
               (unsigned long long)pw_hi, (unsigned long long)l->virt,
               (unsigned long long)l->size);
    pw_count++;
    pw_end = l->virt + l->size;
    if (npw) {
        struct ext *r = &pw[npw - 1];
        if (r->va + r->len == l->virt && r->pa + r->len == l->phys && r->flags == l->flags &&
            r->cm == l->cache) {
            r->len += l->size;
            return;
        }
    }
    FUZZ_CHECK(npw < MAX_EXT, "pagewalk reported too many runs");
    pw[npw++] = (struct ext){l->virt, l->size, l->phys, l->flags, l->cache};
}

static void pw_all(void *ctx, const struct pagewalk_leaf *l)
{
    (void)ctx;
    pw_take(l);
}

static int pw_until(void *ctx, const struct pagewalk_leaf *l)
{
    (void)ctx;
    pw_take(l);
    return pw_count == pw_stop_after ? 7 : 0;
}

static void pw_reset(void)
{
    npw = 0;
    pw_count = 0;
    pw_end = 0;
}

/* Runs a (what: the model or a kernel walker) and b (the tables, as the
 * harness walked them), both clipped to [lo, hi], are the same list. */
static FUZZ_NOCOV void same_runs(const struct ext *a, size_t na, const struct ext *b, size_t nb,
                                 vaddr_t lo, vaddr_t hi, const char *what)
{
    size_t i = 0, j = 0;
    for (;;) {
        while (i < na && (a[i].va + a[i].len - 1 < lo || a[i].va > hi))
            i++;
        while (j < nb && (b[j].va + b[j].len - 1 < lo || b[j].va > hi))
            j++;
        if (i == na || j == nb)
            break;
        vaddr_t alo = MAX(a[i].va, lo), ahi = MIN(a[i].va + a[i].len - 1, hi);
        vaddr_t blo = MAX(b[j].va, lo), bhi = MIN(b[j].va + b[j].len - 1, hi);
        FUZZ_CHECK(alo == blo && ahi == bhi && a[i].pa + (alo - a[i].va) == b[j].pa + (blo - b[j].va) &&
                       a[i].flags == b[j].flags && a[i].cm == b[j].cm,
                   "%s: %#llx-%#llx -> %#llx flags %#llx cache %u; the tables have %#llx-%#llx "
                   "-> %#llx flags %#llx cache %u", what, (unsigned long long)alo,
                   (unsigned long long)ahi, (unsigned long long)(a[i].pa + (alo - a[i].va)),
                   (unsigned long long)a[i].flags, a[i].cm, (unsigned long long)blo,
                   (unsigned long long)bhi, (unsigned long long)(b[j].pa + (blo - b[j].va)),
                   (unsigned long long)b[j].flags, b[j].cm);
        i++;
        j++;
    }
    FUZZ_CHECK(i == na && j == nb, "%s has a run more than %s in %#llx-%#llx",
               i < na ? what : "the tables", i < na ? "the tables" : what,
               (unsigned long long)lo, (unsigned long long)hi);
}

/* pagewalk_leaves finds what the harness's walk (just done) found. */
static void check_pagewalk_leaves(void)
{
    pw_reset();
    pw_range = false;
    uint64_t n = pagewalk_leaves(&as, pw_all, NULL);
    FUZZ_CHECK(n == leaves_seen && pw_count == leaves_seen,
               "pagewalk_leaves: %llu leaves (%llu visited), the tables have %llu",
               (unsigned long long)n, (unsigned long long)pw_count,
               (unsigned long long)leaves_seen);
    same_runs(pw, npw, found, nfound, 0, UINT64_MAX, "pagewalk_leaves");
}

/* pagewalk_leaves_in(start, last) visiting at most stop_after leaves (0: no
 * limit), and with `print` paging_walk_print_in(start) (its formatting costs
 * as much as the walks), against the harness's walk. */
static void check_leaves_in(vaddr_t start, vaddr_t last, uint64_t stop_after, bool print)
{
    pw_reset();
    pw_range = true;
    pw_lo = start;
    pw_hi = last;
    pw_stop_after = stop_after;
    int r = pagewalk_leaves_in(&as, start, last, pw_until, NULL);
    bool valid = start <= last && (start >> 47) == (last >> 47) && canonical(start) &&
                 canonical(last);
    if (!valid) {
        FUZZ_CHECK(r == 0 && pw_count == 0, "pagewalk_leaves_in(%#llx, %#llx): %d, %llu leaves",
                   (unsigned long long)start, (unsigned long long)last, r,
                   (unsigned long long)pw_count);
    } else {
        touch_on = true;
        touch_lo = start;
        touch_hi = last;
        walk_all();
        touch_on = false;
        bool stops = stop_after && leaves_touching >= stop_after;
        FUZZ_CHECK(r == (stops ? 7 : 0) && pw_count == (stops ? stop_after : leaves_touching),
                   "pagewalk_leaves_in(%#llx, %#llx, stop after %llu): %d after %llu leaves; "
                   "%llu touch the range", (unsigned long long)start, (unsigned long long)last,
                   (unsigned long long)stop_after, r, (unsigned long long)pw_count,
                   (unsigned long long)leaves_touching);
        vaddr_t hi = stops ? MIN(last, pw_end - 1) : last;
        same_runs(pw, npw, found, nfound, start, hi, "pagewalk_leaves_in");
    }

    /* a backtrace would read start exactly when it is mapped (in CR3's
     * tables), and the monitor's `walk` of start ends where the model says */
    char want[64];
    const struct ext *e = canonical(start) ? model_find(start) : NULL;
    if (active)
        FUZZ_CHECK(pagewalk_readable(start) == (e != NULL), "pagewalk_readable(%#llx): %s",
                   (unsigned long long)start, e ? "false, but it is mapped" : "true, unmapped");
    if (!print)
        return;
    if (!canonical(start))
        ksnprintf(want, sizeof(want), "not canonical: stops here");
    else if (e)
        ksnprintf(want, sizeof(want), ": phys %#llx\n",
                  (unsigned long long)(e->pa + (start - e->va)));
    else
        ksnprintf(want, sizeof(want), "not present: stops here");
    fuzz_log_reset();
    paging_walk_print_in(&as, start);
    FUZZ_CHECK(host_log_contains(want), "walk %#llx: no '%s' in:\n%s", (unsigned long long)start,
               want, host_log);
}

/* The whole tree against the model (and pagewalk_leaves when `kernel_walk`). */
static void check_tree(bool kernel_walk)
{
    walk_all();
    FUZZ_CHECK(tables_seen == as.table_pages, "walk found %llu tables, table_pages says %llu",
               (unsigned long long)tables_seen, (unsigned long long)as.table_pages);
    /* the model, merged the same way, must be the same list of runs */
    size_t k = 0;
    for (size_t i = 0; i < next; i++) {
        const struct ext *e = &ext[i];
        if (k && tmp[k - 1].va + tmp[k - 1].len == e->va && tmp[k - 1].pa + tmp[k - 1].len == e->pa &&
            tmp[k - 1].flags == e->flags && tmp[k - 1].cm == e->cm) {
            tmp[k - 1].len += e->len;
            continue;
        }
        tmp[k++] = *e;
    }
    same_runs(tmp, k, found, nfound, 0, UINT64_MAX, "the model");
    if (kernel_walk)
        check_pagewalk_leaves();
}

/* After a failed map_range with PAGING_REPLACE: every page of [va, va+len)
 * must be as the model had it or unmapped; the model takes the tables' word
 * for which. */
static void resync_range(vaddr_t va, uint64_t len)
{
    uint64_t last = va + len - 1;
    walk_all();
    size_t nkeep = 0;
    static struct ext keep[MAX_EXT];
    for (size_t i = 0; i < nfound; i++) {
        const struct ext *f = &found[i];
        uint64_t a = MAX(f->va, va), b = MIN(f->va + f->len - 1, last);
        if (a > b)
            continue;
        for (uint64_t p = a; p <= b;) {
            const struct ext *e = model_find(p);
            FUZZ_CHECK(e && e->pa + (p - e->va) == f->pa + (p - f->va) && e->flags == f->flags &&
                           e->cm == f->cm,
                       "failed map_range left %#llx mapped differently than before",
                       (unsigned long long)p);
            uint64_t end = MIN(ext_last(e), b);
            if (end == UINT64_MAX)
                break;
            p = end + 1;
        }
        keep[nkeep++] = (struct ext){a, b - a + 1, f->pa + (a - f->va), f->flags, f->cm};
    }
    model_set(va, len, NULL);
    for (size_t i = 0; i < nkeep; i++)
        model_set(keep[i].va, keep[i].len, &keep[i]);
}

/* ---- operations ------------------------------------------------------------------ */

/* Window bases: low, just below the lower half's end, the upper half's start,
 * the very top, address 0. Offsets are taken modulo 4 GiB. */
static const vaddr_t regions[] = {0x0000400000000000ULL, 0x00007fff00000000ULL,
                                  0xffff800000000000ULL, 0xffffffff00000000ULL, 0};

static bool range_ok(vaddr_t va, uint64_t len)
{
    vaddr_t last = va + len - 1;
    return len && va % PAGE_SIZE == 0 && len % PAGE_SIZE == 0 && last > va && canonical(va) &&
           canonical(last) && (va >> 47) == (last >> 47);
}

/* flags and cache mode as paging.h reads them: -1 when invalid, else the
 * PAT index, with *granted the flags a query reports. */
static int decode(uint64_t flags, unsigned cm, uint64_t *granted)
{
    if ((flags & ~PAGE_FLAGS_ALLOWED) || cm > CACHE_WC)
        return -1;
    unsigned idx = cm;
    if (flags & (PAGE_WRITETHROUGH | PAGE_NOCACHE)) {
        if (cm != CACHE_WB)
            return -1;
        idx = ((flags & PAGE_WRITETHROUGH) ? 1 : 0) | ((flags & PAGE_NOCACHE) ? 2 : 0);
    }
    *granted = flags & (PAGE_WRITABLE | PAGE_USER | PAGE_GLOBAL | PAGE_NX);
    return (int)idx;
}

static const uint64_t flag_bits[] = {PAGE_WRITABLE, PAGE_USER, PAGE_WRITETHROUGH, PAGE_NOCACHE,
                                     PAGE_GLOBAL, PAGE_NX, PTE_PS, 1ULL << 9};

static uint64_t decode_flags_byte(uint8_t b)
{
    uint64_t f = 0;
    for (unsigned i = 0; i < 8; i++)
        if (b & (1u << i))
            f |= flag_bits[i];
    /* bits 6 and 7 (PS, an ignored bit) are invalid: only when both say so */
    if ((b & 0xc0) != 0xc0)
        f &= ~(PTE_PS | (1ULL << 9));
    return f;
}

/* ENOMEM is a fair answer only when frames are short. */
static void expect_short(uint64_t free_before, const char *what)
{
    FUZZ_CHECK(free_before < LOW_FRAMES, "%s: ENOMEM with %llu frames free", what,
               (unsigned long long)free_before);
}

/* A physical range the CPU can address (46 bits on the host). */
static bool phys_ok(paddr_t pa, uint64_t len)
{
    paddr_t last = pa + len - 1;
    return pa % PAGE_SIZE == 0 && last >= pa && (last >> 46) == 0;
}

static bool one_gig;
/* Free frames after the last operation (frame_get_stats sums every CPU's
 * cache: one call per operation, not one per use). */
static uint64_t free_now;

static void run_op(struct fuzz_in *in)
{
    uint8_t op = fuzz_u8(in), reg = fuzz_u8(in);
    uint32_t off = fuzz_u32(in), arg = fuzz_u32(in);
    uint8_t fl = fuzz_u8(in), cmo = fuzz_u8(in);
    vaddr_t va = regions[reg % ARRAY_SIZE(regions)] + (uint64_t)off * PAGE_SIZE % GiB(4);
    if (reg & 0x80)
        va += (reg & 0x70) << 4; /* sometimes unaligned */
    uint64_t flags = decode_flags_byte(fl);
    unsigned cm = cmo % 8;
    unsigned opts = ((cmo >> 3) & 1 ? PAGING_REPLACE : 0) | ((cmo >> 4) & 1 ? PAGING_LARGE : 0) |
                    ((cmo & 0xe0) == 0xe0 ? 0x4 : 0);
    uint64_t granted = 0;
    int idx = decode(flags, cm, &granted);
    uint64_t free_before = free_now;
    int r;

    switch (op % 9) {
    case 0:
    case 1:
    case 2: { /* paging_map_in of one 4K / 2M / 1G page (op % 3), or an odd size */
        static const uint64_t sizes[] = {PAGE_SIZE_4K, PAGE_SIZE_2M, PAGE_SIZE_1G};
        uint64_t size = (op & 0x80) ? (uint64_t)arg << 12 : sizes[op % 9];
        if (!(reg & 0x80) && size <= PAGE_SIZE_1G && size)
            va = ALIGN_DOWN(va, size);
        paddr_t pa = ((uint64_t)arg << 12) & ((op & 0x40) ? ~0ULL : (1ULL << 46) - 1);
        if (!(op & 0x20) && size && (size & (size - 1)) == 0)
            pa = ALIGN_DOWN(pa, size);
        r = paging_map_in(&as, pa, va, size, flags, (enum cache_mode)cm, opts);
        bool size_ok = size == PAGE_SIZE_4K || size == PAGE_SIZE_2M || size == PAGE_SIZE_1G;
        bool inval = !size_ok || idx < 0 || (opts & ~3u) || va % size || pa % size ||
                     !range_ok(va, size) || !phys_ok(pa, size);
        bool notsup = size == PAGE_SIZE_1G && !one_gig;
        if (inval || notsup) {
            FUZZ_CHECK((inval && r == -PAGING_EINVAL) || (notsup && r == -PAGING_ENOTSUP),
                       "map_in(%#llx, %#llx, size %#llx, flags %#llx, cm %u, opts %u) = %d",
                       (unsigned long long)pa, (unsigned long long)va, (unsigned long long)size,
                       (unsigned long long)flags, cm, opts, r);
            return;
        }
        bool busy = model_busy(va, size);
        if (r == -PAGING_ENOMEM) {
            expect_short(free_before, "map_in");
        } else if (busy && !(opts & PAGING_REPLACE)) {
            FUZZ_CHECK(r == -PAGING_EEXIST, "map_in over a mapping without REPLACE = %d", r);
        } else {
            FUZZ_CHECK(r == 0, "map_in(%#llx, %#llx, %#llx) = %d", (unsigned long long)pa,
                       (unsigned long long)va, (unsigned long long)size, r);
            struct ext e = {va, size, pa, granted, (unsigned)idx};
            model_set(va, size, &e);
        }
        check_around(va, size);
        return;
    }
    case 3: { /* paging_map_range: arg pages; with LARGE and op & 0x40, phys and virt
               * share their alignment and the range goes up to 8 GiB, else 4 MiB */
        bool big = (opts & PAGING_LARGE) && (op & 0x40);
        uint64_t len = (uint64_t)(arg % (big ? 2u * 1024 * 1024 : 1024)) << 12;
        paddr_t pa = (((uint64_t)off * 0x9E3779B1u) << 12) & ((1ULL << 46) - 1);
        if (big)
            pa = ALIGN_DOWN(pa, GiB(1)) + (va & (GiB(1) - 1));
        r = paging_map_range(&as, pa, va, len, flags, (enum cache_mode)cm, opts);
        bool inval = idx < 0 || (opts & ~3u) || !range_ok(va, len) || !phys_ok(pa, len);
        if (inval) {
            FUZZ_CHECK(r == -PAGING_EINVAL, "map_range(len %#llx) = %d", (unsigned long long)len,
                       r);
            return;
        }
        bool busy = model_busy(va, len);
        if (r == -PAGING_ENOMEM) {
            expect_short(free_before, "map_range");
            if (opts & PAGING_REPLACE)
                resync_range(va, len);
        } else if (busy && !(opts & PAGING_REPLACE)) {
            FUZZ_CHECK(r == -PAGING_EEXIST, "map_range over a mapping without REPLACE = %d", r);
        } else {
            FUZZ_CHECK(r == 0, "map_range(%#llx, %#llx, len %#llx) = %d", (unsigned long long)pa,
                       (unsigned long long)va, (unsigned long long)len, r);
            struct ext e = {va, len, pa, granted, (unsigned)idx};
            model_set(va, len, &e);
        }
        check_around(va, len);
        return;
    }
    case 4: { /* paging_unmap_in of one page: 4K / 2M / 1G by arg */
        static const uint64_t sizes[] = {PAGE_SIZE_4K, PAGE_SIZE_2M, PAGE_SIZE_1G, 12345};
        uint64_t size = sizes[arg % 4];
        if (!(reg & 0x80) && size != 12345)
            va = ALIGN_DOWN(va, size);
        r = paging_unmap_in(&as, va, size);
        bool size_ok = size != 12345;
        bool inval = !size_ok || va % size || !range_ok(va, size);
        bool notsup = size == PAGE_SIZE_1G && !one_gig;
        if (inval || notsup) {
            FUZZ_CHECK((inval && r == -PAGING_EINVAL) || (notsup && r == -PAGING_ENOTSUP),
                       "unmap_in(%#llx, %#llx) = %d", (unsigned long long)va,
                       (unsigned long long)size, r);
            return;
        }
        if (!model_busy(va, size)) {
            FUZZ_CHECK(r == -PAGING_ENOENT, "unmap_in of nothing = %d", r);
        } else if (r == -PAGING_ENOMEM) {
            expect_short(free_before, "unmap_in");
        } else {
            FUZZ_CHECK(r == 0, "unmap_in(%#llx, %#llx) = %d", (unsigned long long)va,
                       (unsigned long long)size, r);
            model_set(va, size, NULL);
        }
        check_around(va, size);
        return;
    }
    case 5: { /* paging_unmap_range: arg pages (up to 8 GiB) */
        uint64_t len = (uint64_t)(arg % (2u * 1024 * 1024)) << 12;
        r = paging_unmap_range(&as, va, len);
        if (!range_ok(va, len)) {
            FUZZ_CHECK(r == -PAGING_EINVAL, "unmap_range(len %#llx) = %d", (unsigned long long)len,
                       r);
            return;
        }
        if (r == -PAGING_ENOMEM) {
            expect_short(free_before, "unmap_range");
        } else {
            FUZZ_CHECK(r == 0, "unmap_range(%#llx, %#llx) = %d", (unsigned long long)va,
                       (unsigned long long)len, r);
            model_set(va, len, NULL);
        }
        check_around(va, len);
        return;
    }
    case 6: { /* paging_protect: arg pages (up to 8 GiB) */
        uint64_t len = (uint64_t)(arg % (2u * 1024 * 1024)) << 12;
        r = paging_protect(&as, va, len, flags, (enum cache_mode)cm);
        if (idx < 0 || !range_ok(va, len)) {
            FUZZ_CHECK(r == -PAGING_EINVAL, "protect(len %#llx, flags %#llx, cm %u) = %d",
                       (unsigned long long)len, (unsigned long long)flags, cm, r);
            return;
        }
        if (r == -PAGING_ENOMEM) {
            expect_short(free_before, "protect");
        } else {
            FUZZ_CHECK(r == 0, "protect(%#llx, %#llx) = %d", (unsigned long long)va,
                       (unsigned long long)len, r);
            model_protect(va, len, granted, (unsigned)idx);
        }
        check_around(va, len);
        return;
    }
    case 7: /* hold frames until u8 are left (ENOMEM ahead), or give them all back */
        if (fl & 1) {
            while (nhog) {
                frame_free(hog[--nhog]);
            }
        } else {
            paddr_t f;
            uint64_t left = free_before; /* each frame_alloc takes exactly one */
            while (left > (uint64_t)(cmo % LOW_FRAMES) && (f = frame_alloc())) {
                hog[nhog++] = f;
                left--;
            }
        }
        return;
    default: /* queries anywhere, a walk of the whole tree, the kernel's range walk */
        check_around(va, (uint64_t)(arg % 4096) << 12);
        if (op & 0x80)
            check_tree(false);
        if (op & 0x40) /* up to 16 TiB from va, sometimes ending mid-page or before va */
            check_leaves_in(va, va + ((uint64_t)arg << 12) + cmo - 1, fl % 8, fl & 8);
        return;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fuzz_in fi = {data, MIN(size, FUZZ_MAX_LEN)};
    if (!arena_ready) { /* one arena for the whole run: frame_init resets the allocator */
        host_arena_init(ARENA);
        host_invlpg_hook = tlb_invlpg;
        host_cr3_hook = tlb_cr3;
        host_shootdown_hook = tlb_shootdown;
        arena_ready = true;
    }
    uint8_t setup = fuzz_u8(&fi);
    fuzz_log_reset();
    struct mem_region map[] = {{0, MiB(1), MEM_RESERVED}, {MiB(1), ARENA - MiB(1), MEM_USABLE}};
    frame_init(map, 2);
    host_cpu_1g_pages = one_gig = setup & 1;
    uint64_t frames0 = fuzz_free_frames(), tables0 = paging_table_pages();
    FUZZ_CHECK(paging_as_create(&as) == 0, "paging_as_create");
    memset(tlb, 0, sizeof(tlb));
    tlb_live[0] = tlb_live[1] = 0;
    active = setup & 2;
    if (active)
        paging_activate(&as);
    next = 0;
    nhog = 0;
    free_now = fuzz_free_frames();

    for (unsigned k = 0; !fuzz_done(&fi); k++) {
        run_op(&fi);
        if (active)
            tlb_check();
        free_now = fuzz_free_frames();
        FUZZ_CHECK(free_now + nhog + as.table_pages == frames0, "frames leaked: %llu free, "
                   "%zu held, %llu tables, %llu at the start", (unsigned long long)free_now,
                   nhog, (unsigned long long)as.table_pages, (unsigned long long)frames0);
        if (k % 32 == 31)
            check_tree(false);
    }
    check_tree(true);
    while (nhog)
        frame_free(hog[--nhog]);
    FUZZ_CHECK(paging_unmap_range(&as, 0, 1ULL << 47) == 0, "unmapping the lower half");
    FUZZ_CHECK(paging_unmap_range(&as, 0xffff800000000000ULL, 1ULL << 47) == 0,
               "unmapping the upper half");
    next = 0;
    if (active)
        tlb_check();
    check_tree(true);
    FUZZ_CHECK(as.table_pages == 1, "%llu tables left after unmapping everything",
               (unsigned long long)as.table_pages);
    arch_write_cr3(0);
    paging_as_destroy(&as);
    FUZZ_CHECK(fuzz_free_frames() == frames0 && paging_table_pages() == tables0,
               "destroy: %llu frames free (want %llu), %llu tables (want %llu)",
               (unsigned long long)fuzz_free_frames(), (unsigned long long)frames0,
               (unsigned long long)paging_table_pages(), (unsigned long long)tables0);
    return 0;
}
