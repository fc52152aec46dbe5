/* Over 600 lines on purpose: the operation/TLB/count helpers, the tree surgery
 * and the 4 KiB fast paths share static inline helpers the fast paths need
 * inlined; split, they would become calls on the hot path.
 *
 * Changing four-level page tables. The entry encoding is mm/pte.h; every walk
 * goes through the walker of mm/pagewalk.h (a cursor for one address, a range
 * walk with callbacks).
 *
 * Every public operation runs as one `struct op`: it knows whether the address
 * space is live (then changed entries are invalidated with invlpg, or by one
 * CR3 reload after many), and it collects page tables that left the tree so
 * they go back to the frame allocator only at the end, once no TLB or
 * paging-structure cache can still point into them: this CPU's (invlpg) and
 * every other CPU's (one arch_tlb_shootdown with the op's range).
 *
 * Locking: every public function takes as->lock (plain, rank paging) around
 * its whole operation, fast paths included; everything static below runs
 * under it. table_pages_total is shared by all address spaces: atomic. */
#include "mm/paging.h"

#include "arch/x86_64/cpu_local.h"
#include "arch/x86_64/mmu_ops.h"
#include "lib/printf.h"
#include "mm/frame.h"
#include "mm/mm.h"
#include "mm/pagewalk.h"

struct addrspace kernel_as;
static uint64_t table_pages_total; /* page-table pages handed out by table_alloc (atomic) */

/* More invalidations than this in one operation become one CR3 reload. */
#define INVLPG_BATCH 64

struct op {
    struct addrspace *as;
    bool active;       /* some CPU may cache as's entries: collect the range that changes */
    bool local;        /* this CPU may (as is in CR3, or it is kernel_as): flush here too */
    unsigned invlpgs;  /* invlpg issued so far */
    bool reload;       /* a CR3 reload is owed (too many invlpgs) */
    bool shoot_global; /* a global entry was invalidated */
    vaddr_t shoot_lo;  /* lowest and highest page invalidated (lo > hi: none) */
    vaddr_t shoot_hi;
    paddr_t released;  /* detached tables, linked through their first entry */
};

static void op_begin(struct op *op, struct addrspace *as)
{
    op->as = as;
    op->local = as == &kernel_as || paging_is_active(as);
    op->active = op->local || as->user;
    op->invlpgs = 0;
    op->reload = false;
    op->shoot_global = false;
    op->shoot_lo = ~0ULL;
    op->shoot_hi = 0;
    op->released = 0;
}

/* Invalidates the translation of va, which was `old`. Global entries survive a
 * CR3 reload, so they always get their own invlpg. */
static void tlb_flush(struct op *op, vaddr_t va, pte_t old)
{
    if (!op->active)
        return;
    va = ALIGN_DOWN(va, PAGE_SIZE);
    op->shoot_lo = MIN(op->shoot_lo, va);
    op->shoot_hi = MAX(op->shoot_hi, va);
    op->shoot_global |= (old & PTE_GLOBAL) != 0;
    if (!op->local)
        return;
    if (op->invlpgs < INVLPG_BATCH || (old & PTE_GLOBAL)) {
        arch_invlpg(va);
        op->invlpgs++;
    } else {
        op->reload = true;
    }
}

/* Invalidates [lo, hi) on the other CPUs that may cache as's entries: every
 * one for kernel_as and tables in CR3 here (kernel tables), the CPUs that
 * have it loaded for a user space. `local`: as is in this CPU's CR3 or is
 * kernel_as. A CPU that loads a user space sets its bit before its CR3 write
 * (paging_activate, a locked instruction): it either is in the set read
 * after the entries changed, or it walks the changed tables afresh. */
static void shoot(const struct addrspace *as, bool local, vaddr_t lo, vaddr_t hi, bool global)
{
    if (as->user) {
        /* a locked read: the entry stores are ordered before it (a fence
         * would do the same; ThreadSanitizer does not model fences) */
        uint32_t cpus = __atomic_fetch_or((uint32_t *)&as->cpus, 0, __ATOMIC_SEQ_CST);
        if (cpus & ~(1u << cpu_index()))
            arch_tlb_shootdown_cpus(cpus, lo, hi, global);
    } else if (local) {
        arch_tlb_shootdown(lo, hi, global);
    }
}

/* Finishes the operation: owed flush first, here and (one shootdown for the
 * whole range) on the other CPUs, then the detached tables are freed. */
static void op_end(struct op *op)
{
    if (op->reload)
        arch_write_cr3(op->as->pml4);
    if (op->shoot_lo <= op->shoot_hi)
        shoot(op->as, op->local, op->shoot_lo, op->shoot_hi + PAGE_SIZE, op->shoot_global);
    while (op->released) {
        paddr_t t = op->released;
        op->released = *(paddr_t *)PHYS2VIRT(t);
        frame_free(t);
        op->as->table_pages--;
        __atomic_fetch_sub(&table_pages_total, 1, __ATOMIC_RELAXED);
    }
}

/* ---- walk cache (struct walk_cache, as->wc) --------------------------------------
 * The 4 KiB fast paths remember the last PT they reached, the PD entry above
 * it and what the levels above withhold. Invariant: it stays right while no
 * table of the address space leaves the tree, because tables are otherwise
 * only ever added and intermediate entries only widened (which at worst makes
 * upper_denies refuse a leaf that a fresh walk then accepts). So every detach
 * (table_release, which every path that unlinks or frees a table goes
 * through) and every split empties it. The walk_cache_* host tests break if
 * a path detaches a table without emptying it. */

static inline void wc_drop(struct addrspace *as)
{
    as->wc.region_last = 0;
}

/* Caches the PT that the PD entry *pde points to for virt's 2 MiB region;
 * pml4e, pdpte and pdev are the values of the three entries down to it. */
static inline void wc_fill(struct addrspace *as, vaddr_t virt, pte_t *pde, pte_t pml4e,
                           pte_t pdpte, pte_t pdev)
{
    pte_t allow = pml4e & pdpte & pdev & (PTE_WRITABLE | PTE_USER);
    as->wc.pt = pt_table(pdev & PTE_ADDR_MASK);
    as->wc.pde = pde;
    as->wc.upper_denies = ((PTE_WRITABLE | PTE_USER) & ~allow) | ((pml4e | pdpte | pdev) & PTE_NX);
    as->wc.region_last = virt | (PAGE_SIZE_2M - 1);
}

/* A zeroed page table, or 0 when memory is exhausted. */
static paddr_t table_alloc(struct op *op)
{
    paddr_t t = frame_alloc_zeroed();
    if (t) {
        op->as->table_pages++;
        __atomic_fetch_add(&table_pages_total, 1, __ATOMIC_RELAXED);
    }
    return t;
}

/* Queues a table that is no longer referenced for freeing at op_end. The link
 * is a page-aligned address, so the entry it overwrites reads as not present. */
static void table_release(struct op *op, paddr_t t)
{
    wc_drop(op->as); /* detached even when borrowed (kept, but no longer in the tree) */
    if (op->as->borrowed)
        return;
    *(paddr_t *)PHYS2VIRT(t) = op->released;
    op->released = t;
}

/* Writes an entry; a change to a present entry is flushed for va. */
static void set_entry(struct op *op, pte_t *slot, pte_t val, vaddr_t va)
{
    pte_t old = *slot;
    *slot = val;
    if (pte_present(old) && old != val)
        tlb_flush(op, va, old);
}

/* ---- present-entry counts (mm/pte.h PTE_CNT_*) --------------------------------
 * The pointer entry *pslot counts the present entries of the table it points
 * to. Count bits are invisible to the CPU, so they are written directly (no
 * set_entry, no flush). pslot is NULL for the PML4, which has no pointer. A
 * pointer without PTE_CNT_VALID (the bootloader's) is left alone until
 * child_empty learns its count by a scan. */

static inline void cnt_inc(pte_t *pslot)
{
    if (pslot && (*pslot & PTE_CNT_VALID))
        *pslot += PTE_CNT_ONE;
}

static inline void cnt_dec(pte_t *pslot)
{
    if (pslot && (*pslot & PTE_CNT_VALID))
        *pslot -= PTE_CNT_ONE;
}

/* True when the table the present pointer *pslot points to has no present entry. */
static bool child_empty(pte_t *pslot)
{
    pte_t p = *pslot;
    if (p & PTE_CNT_VALID)
        return (p & PTE_CNT_MASK) == 0;
    const pte_t *t = pt_table(p & PTE_ADDR_MASK);
    uint64_t n = 0;
    for (unsigned i = 0; i < PT_ENTRIES; i++)
        n += t[i] & PTE_PRESENT;
    *pslot = (p & ~PTE_CNT_MASK) | PTE_CNT_VALID | (n << PTE_CNT_SHIFT);
    return n == 0;
}

/* True for a kernel-half PML4 entry (level is the entry's table level) of an
 * address space whose kernel half is fixed: its PDPT is shared with every
 * address space and is never detached by an unmap. */
static inline bool kernel_half_top(const struct addrspace *as, int level, vaddr_t va)
{
    return as->kernel_half_fixed && level == PT_LEVEL_PML4 && va >= PAGING_KERNEL_HALF;
}

/* ---- addresses and argument checks -------------------------------------------- */

static int size_level(uint64_t size)
{
    if (size == PAGE_SIZE_4K)
        return PT_LEVEL_PT;
    if (size == PAGE_SIZE_2M)
        return PT_LEVEL_PD;
    if (size == PAGE_SIZE_1G)
        return arch_has_1g_pages() ? PT_LEVEL_PDPT : -PAGING_ENOTSUP;
    return -PAGING_EINVAL;
}

/* [virt, virt+len): non-empty, 4 KiB aligned, canonical, within one half. */
/* False when `as` is a user space and [virt, virt+len) reaches into the
 * kernel half (its tables there are kernel_as's, never changed through it). */
static inline bool half_ok(const struct addrspace *as, vaddr_t virt, uint64_t len)
{
    return !as->user || (virt < PAGING_USER_TOP && len <= PAGING_USER_TOP - virt);
}

static bool virt_range_ok(vaddr_t virt, uint64_t len)
{
    vaddr_t last = virt + len - 1;
    return len && IS_ALIGNED(virt | len, PAGE_SIZE) && last > virt && pt_va_canonical(virt) &&
           pt_va_canonical(last) && (virt >> 47) == (last >> 47);
}

/* CPUID answers, asked once: they never change, and every map checks them
 * (CPUID is slow, a VM exit under a hypervisor). */
static unsigned cpu_phys_bits; /* MAXPHYADDR, 32..52; 0 until asked */
static pte_t cpu_nx_mask;      /* PTE_NX when the CPU has NX, else 0 */

/* Any CPU may ask first (they all get the same answers): the mask is stored
 * before the bits are published (release), and read after them (acquire). */
static __attribute__((noinline, cold)) void cpu_ask(void)
{
    unsigned bits = arch_phys_addr_bits();
    if (bits < 32 || bits > 52)
        bits = 52;
    __atomic_store_n(&cpu_nx_mask, arch_has_nx() ? PTE_NX : 0, __ATOMIC_RELAXED);
    __atomic_store_n(&cpu_phys_bits, bits, __ATOMIC_RELEASE);
}

/* cpu_phys_bits once asked (0 until then). */
static inline unsigned phys_bits_known(void)
{
    return __atomic_load_n(&cpu_phys_bits, __ATOMIC_ACQUIRE);
}

static inline unsigned phys_bits(void)
{
    if (__builtin_expect(!phys_bits_known(), 0))
        cpu_ask();
    return phys_bits_known();
}

static inline pte_t nx_mask(void)
{
    if (__builtin_expect(!phys_bits_known(), 0))
        cpu_ask();
    return __atomic_load_n(&cpu_nx_mask, __ATOMIC_RELAXED);
}

/* [phys, phys+len): 4 KiB aligned and below 2^MAXPHYADDR. */
static bool phys_range_ok(paddr_t phys, uint64_t len)
{
    paddr_t last = phys + len - 1;
    unsigned bits = phys_bits();
    return IS_ALIGNED(phys, PAGE_SIZE) && last >= phys && (last >> bits) == 0;
}

/* Turns flags + cache mode into leaf bits and a PAT index. The seed's
 * PAGE_WRITETHROUGH / PAGE_NOCACHE select PAT entries 1..3 (WT, UC-, UC), which
 * is what those bits mean with the PAT bit clear; mixing them with another
 * explicit cache mode is refused. NX is dropped on CPUs without it (the bit
 * would be reserved there). */
static int decode_flags(uint64_t flags, enum cache_mode cm, pte_t *bits, unsigned *cache_index)
{
    if ((flags & ~PAGE_FLAGS_ALLOWED) || (unsigned)cm > CACHE_WC)
        return -PAGING_EINVAL;
    unsigned idx = (unsigned)cm;
    if (flags & (PAGE_WRITETHROUGH | PAGE_NOCACHE)) {
        if (cm != CACHE_WB)
            return -PAGING_EINVAL;
        idx = ((flags & PAGE_WRITETHROUGH) ? 1u : 0u) | ((flags & PAGE_NOCACHE) ? 2u : 0u);
    }
    *bits = flags & (PAGE_WRITABLE | PAGE_USER | PAGE_GLOBAL | nx_mask());
    *cache_index = idx;
    return 0;
}

/* ---- tree surgery --------------------------------------------------------------- */

/* Range-walk callbacks of release_subtree: flush every leaf, queue every
 * table below once it was walked. */
static int release_leaf(void *ctx, const struct pagewalk_entry *e)
{
    tlb_flush(ctx, e->va, *e->slot);
    return 0;
}

static int release_table(void *ctx, const struct pagewalk_entry *e)
{
    table_release(ctx, pte_addr(*e->slot, e->level));
    return 0;
}

/* Flushes every leaf of the detached table at `level` (covering from tbase, a
 * canonical address) and queues it and all tables below it for release. */
static void release_subtree(struct op *op, paddr_t table, int level, vaddr_t tbase)
{
    static const struct pagewalk_ops ops = {.leaf = release_leaf, .table_post = release_table};
    vaddr_t last = level == PT_LEVEL_PML4 ? ~0ULL : tbase + pt_level_size(level + 1) - 1;
    pagewalk_range(pt_table(table), NULL, level, tbase, tbase, last, PTE_WRITABLE | PTE_USER, &ops,
                   op);
    table_release(op, table);
}

static int found_leaf(void *ctx, const struct pagewalk_entry *e)
{
    (void)ctx;
    (void)e;
    return 1;
}

/* True when the table at `level` (covering from tbase) maps anything. */
static bool subtree_has_leaf(paddr_t table, int level, vaddr_t tbase)
{
    static const struct pagewalk_ops ops = {.leaf = found_leaf};
    return pagewalk_range(pt_table(table), NULL, level, tbase, tbase,
                          tbase + pt_level_size(level + 1) - 1, 0, &ops, NULL) != 0;
}

/* Replaces the large leaf in *slot (at `level`, mapping va) by a table of 512
 * smaller pages with the same attributes. Returns 0 or -PAGING_ENOMEM. */
static int split_large(struct op *op, pte_t *slot, int level, vaddr_t va)
{
    pte_t e = *slot;
    wc_drop(op->as); /* nothing cached lies below a leaf; dropped all the same */
    paddr_t t = table_alloc(op);
    if (!t)
        return -PAGING_ENOMEM;
    pte_t *child = pt_table(t);
    for (unsigned i = 0; i < PT_ENTRIES; i++)
        child[i] = pte_split_child(e, level, i);
    set_entry(op, slot,
              pte_make_table(t, e & (PTE_WRITABLE | PTE_USER)) | PTE_CNT_VALID |
                  (uint64_t)PT_ENTRIES << PTE_CNT_SHIFT,
              va);
    return 0;
}

/* Widens an intermediate entry for a leaf with `bits` below it: WRITABLE/USER
 * are added when the leaf has them; NX is cleared when the leaf is executable. */
static void widen_intermediate(struct op *op, pte_t *slot, pte_t bits, vaddr_t va)
{
    pte_t e = *slot | (bits & (PTE_WRITABLE | PTE_USER));
    if (!(bits & PTE_NX))
        e &= ~PTE_NX;
    set_entry(op, slot, e, va);
}

/* Maps one page at `level`; on success *cur is left at its entry. On failure
 * nothing is left behind: tables created here are detached again (a split of
 * a larger page may remain; it changes no translation). */
static int map_one(struct op *op, paddr_t phys, vaddr_t virt, int level, pte_t bits,
                   unsigned cache_index, unsigned opts, struct pt_cursor *cur)
{
    struct pt_cursor c;
    pte_t *slot = pt_walk_start(&c, op->as->pml4, virt);
    pte_t *first_new = NULL; /* the slot where this call began adding tables */
    pte_t *first_new_parent = NULL;
    int first_new_level = 0;
    int err = 0;

    for (; c.level > level; slot = pt_walk_down(&c)) {
        int l = c.level;
        if (!pte_present(*slot)) {
            if (kernel_half_top(op->as, l, virt)) { /* not a prepared slot */
                err = -PAGING_EINVAL;
                goto undo;
            }
            paddr_t t = table_alloc(op);
            if (!t) {
                err = -PAGING_ENOMEM;
                goto undo;
            }
            *slot = pte_make_table(t, bits) | PTE_CNT_VALID; /* empty so far */
            cnt_inc(c.parent);
            if (!first_new) {
                first_new = slot;
                first_new_parent = c.parent;
                first_new_level = l;
            }
        } else if (pte_is_leaf(*slot, l)) {
            /* A larger page already covers virt (no table was created above it). */
            if (!(opts & PAGING_REPLACE))
                return -PAGING_EEXIST;
            err = split_large(op, slot, l, virt);
            if (err)
                return err;
        }
        widen_intermediate(op, slot, bits, virt);
    }

    pte_t old = *slot;
    pte_t leaf = pte_make_leaf(phys, bits, cache_index, level);
    if (pte_present(old) && !pte_is_leaf(old, level)) {
        /* A table of smaller pages where this large page goes. */
        if (!(opts & PAGING_REPLACE) && subtree_has_leaf(pte_addr(old, level), level - 1, virt))
            return -PAGING_EEXIST;
        set_entry(op, slot, leaf, virt);
        release_subtree(op, pte_addr(old, level), level - 1, virt);
        *cur = c;
        return 0;
    }
    if (pte_present(old) && !(opts & PAGING_REPLACE))
        return -PAGING_EEXIST;
    set_entry(op, slot, leaf, virt);
    if (!pte_present(old))
        cnt_inc(c.parent);
    *cur = c;
    return 0;

undo:
    if (first_new) {
        pte_t e = *first_new;
        set_entry(op, first_new, 0, virt);
        cnt_dec(first_new_parent);
        release_subtree(op, pte_addr(e, first_new_level), first_new_level - 1,
                        ALIGN_DOWN(virt, pt_level_size(first_new_level)));
    }
    return err;
}

/* Splits whatever large page straddles addr, so that addr is a page boundary. */
static int ensure_boundary(struct op *op, vaddr_t addr)
{
    if (!pt_va_canonical(addr) || IS_ALIGNED(addr, PAGE_SIZE_1G))
        return 0; /* a 1 GiB-aligned address (or the end of a half) cuts no page */
    struct pt_cursor c;
    for (pte_t *slot = pt_walk_start(&c, op->as->pml4, addr); c.level > PT_LEVEL_PT;
         slot = pt_walk_down(&c)) {
        if (!pte_present(*slot))
            return 0;
        if (pte_is_leaf(*slot, c.level)) {
            if (IS_ALIGNED(addr, pt_level_size(c.level)))
                return 0;
            int err = split_large(op, slot, c.level, addr);
            if (err)
                return err;
        }
    }
    return 0;
}

/* A range unmap or protect (range_ops below) over the range walker. */
struct range_op {
    struct op *op;
    vaddr_t first;        /* the walk's first address */
    pte_t bits;           /* protect: the leaves' new bits */
    unsigned cache_index; /* protect: their new PAT index */
    uint64_t count;       /* leaves cleared or rewritten */
};

/* Unmap: clears a leaf; the walk lies on page boundaries (ensure_boundary ran). */
static int unmap_leaf(void *ctx, const struct pagewalk_entry *e)
{
    struct range_op *r = ctx;
    set_entry(r->op, e->slot, 0, e->va);
    cnt_dec(e->parent);
    r->count++;
    return 0;
}

/* Unmap: after a table was walked, detaches it when it became empty (never a
 * fixed kernel-half PDPT). The flush names an address of the walked range
 * the table maps (any address flushes the paging-structure caches; one
 * inside the range keeps the shootdown's range to what was unmapped). */
static int unmap_table_post(void *ctx, const struct pagewalk_entry *e)
{
    struct range_op *r = ctx;
    if (!child_empty(e->slot) || kernel_half_top(r->op->as, e->level, e->va))
        return 0;
    paddr_t t = pte_addr(*e->slot, e->level);
    set_entry(r->op, e->slot, 0, MAX(e->va, r->first));
    cnt_dec(e->parent);
    table_release(r->op, t);
    return 0;
}

/* Protect: rewrites a leaf with the new bits, keeping its address, A and D. */
static int protect_leaf(void *ctx, const struct pagewalk_entry *e)
{
    struct range_op *r = ctx;
    pte_t v = *e->slot;
    set_entry(r->op, e->slot,
              pte_make_leaf(pte_addr(v, e->level), r->bits, r->cache_index, e->level) |
                  (v & (PTE_ACCESSED | PTE_DIRTY)),
              e->va);
    r->count++;
    return 0;
}

/* Protect: widens a pointer for the leaves below before they are rewritten. */
static int protect_table_pre(void *ctx, const struct pagewalk_entry *e)
{
    struct range_op *r = ctx;
    widen_intermediate(r->op, e->slot, r->bits, e->va);
    return 0;
}

static const struct pagewalk_ops unmap_ops = {.leaf = unmap_leaf, .table_post = unmap_table_post};
static const struct pagewalk_ops protect_ops = {.leaf = protect_leaf,
                                                .table_pre = protect_table_pre};

/* Runs r over [start, last] of the whole address space. */
static void walk_range(struct range_op *r, const struct pagewalk_ops *ops, vaddr_t start,
                       vaddr_t last)
{
    pagewalk_range(pt_table(r->op->as->pml4), NULL, PT_LEVEL_PML4, 0, start, last,
                   PTE_WRITABLE | PTE_USER, ops, r);
}

/* Unmaps [virt, virt+len) (checked by the caller); *count gets the leaves removed. */
static int unmap_range(struct addrspace *as, vaddr_t virt, uint64_t len, uint64_t *count)
{
    struct op op;
    op_begin(&op, as);
    struct range_op r = {.op = &op, .first = virt};
    int err = ensure_boundary(&op, virt);
    if (!err)
        err = ensure_boundary(&op, virt + len);
    if (!err)
        walk_range(&r, &unmap_ops, virt, virt + len - 1);
    op_end(&op);
    *count = r.count;
    return err;
}
/* ---- public interface ------------------------------------------------------------ */

void paging_init(void)
{
    spin_init(&kernel_as.lock, "kernel_as", LOCK_RANK_PAGING);
    kernel_as.pml4 = arch_read_cr3();
    kernel_as.table_pages = 0;
    kernel_as.borrowed = true;
    kernel_as.kernel_half_fixed = false;
    kernel_as.user = false;
    wc_drop(&kernel_as);
    klog("mm", "paging: adopted the bootloader's tables (PML4 at %#llx), 1 GiB pages: %s",
         (unsigned long long)kernel_as.pml4, arch_has_1g_pages() ? "yes" : "no");
}

int paging_as_create(struct addrspace *as)
{
    paddr_t t = frame_alloc_zeroed();
    if (!t)
        return -PAGING_ENOMEM;
    spin_init(&as->lock, "addrspace", LOCK_RANK_PAGING);
    as->pml4 = t;
    as->table_pages = 1;
    as->borrowed = false;
    as->kernel_half_fixed = false;
    as->user = false;
    as->cpus = 0;
    wc_drop(as);
    __atomic_fetch_add(&table_pages_total, 1, __ATOMIC_RELAXED);
    return 0;
}

int paging_kernel_half_prepare(struct addrspace *as, vaddr_t start, vaddr_t end)
{
    uint64_t slot_size = pt_level_size(PT_LEVEL_PML4);
    if (start < PAGING_KERNEL_HALF || (end != 0 && end <= start) || !IS_ALIGNED(start, slot_size) ||
        !IS_ALIGNED(end, slot_size))
        return -PAGING_EINVAL;
    spin_lock(&as->lock);
    struct op op;
    op_begin(&op, as);
    pte_t *pml4 = pt_table(as->pml4);
    unsigned last = end ? pt_index(end - 1, PT_LEVEL_PML4) : PT_ENTRIES - 1;
    int err = 0;
    for (unsigned i = pt_index(start, PT_LEVEL_PML4); i <= last && !err; i++) {
        if (pte_present(pml4[i]))
            continue;
        paddr_t t = table_alloc(&op);
        if (t)
            pml4[i] = pte_make_table(t, PTE_WRITABLE) | PTE_CNT_VALID; /* empty so far */
        else
            err = -PAGING_ENOMEM;
    }
    op_end(&op);
    as->kernel_half_fixed = true;
    spin_unlock(&as->lock);
    return err;
}

int paging_as_create_user(struct addrspace *as)
{
    kassert(kernel_as.kernel_half_fixed, "a user address space before the kernel half is fixed");
    int err = paging_as_create(as);
    if (err)
        return err;
    const pte_t *k = pt_table(kernel_as.pml4);
    pte_t *u = pt_table(as->pml4);
    /* kernel_as's lock: a slot being prepared is not copied half-written */
    spin_lock(&kernel_as.lock);
    for (unsigned i = PT_ENTRIES / 2; i < PT_ENTRIES; i++)
        u[i] = k[i];
    spin_unlock(&kernel_as.lock);
    as->user = true;
    return 0;
}

void paging_as_destroy(struct addrspace *as)
{
    if (as->borrowed || !as->pml4)
        return;
    kassert(!paging_is_active(as) && !__atomic_load_n(&as->cpus, __ATOMIC_ACQUIRE),
            "destroying an address space that a CPU has loaded");
    spin_lock(&as->lock);
    if (as->user) /* the kernel half is kernel_as's: forget the copies, free the rest */
        for (unsigned i = PT_ENTRIES / 2; i < PT_ENTRIES; i++)
            pt_table(as->pml4)[i] = 0;
    struct op op;
    op_begin(&op, as);
    release_subtree(&op, as->pml4, PT_LEVEL_PML4, 0);
    op_end(&op);
    as->pml4 = 0;
    wc_drop(as);
    spin_unlock(&as->lock);
}

/* What each CPU last loaded through paging_activate (NULL: kernel tables
 * from boot). Each entry is written by its own CPU only. */
static struct addrspace *loaded[CPU_MAX];

void paging_activate(struct addrspace *as)
{
    unsigned me = cpu_index();
    struct addrspace *prev = loaded[me];
    if (as->user)
        __atomic_fetch_or(&as->cpus, 1u << me, __ATOMIC_SEQ_CST); /* before the CR3 write */
    arch_write_cr3(as->pml4);
    if (prev && prev != as && prev->user)
        __atomic_fetch_and(&prev->cpus, ~(1u << me), __ATOMIC_RELEASE);
    loaded[me] = as;
}

bool paging_is_active(const struct addrspace *as)
{
    return as->pml4 != 0 && (arch_read_cr3() & PTE_ADDR_MASK) == as->pml4;
}

/* ---- 4 KiB fast paths --------------------------------------------------------------
 * One 4 KiB page where the tables exist: a straight walk and one entry write,
 * no struct op. Anything unusual (a missing table, a large page in the way, an
 * intermediate entry to widen, a present entry to replace, a table to reclaim)
 * goes to the general code. */

/* map_one for the 4 KiB leaf `leaf` at virt, as its own operation (the fast
 * path's fallback: tables to create or widen, a large page, REPLACE). */
static __attribute__((noinline)) int map_4k_slow(struct addrspace *as, vaddr_t virt, pte_t leaf,
                                                 unsigned opts)
{
    struct op op;
    struct pt_cursor c;
    op_begin(&op, as);
    int err = map_one(&op, leaf & PTE_ADDR_MASK, virt, PT_LEVEL_PT,
                      leaf & (PTE_WRITABLE | PTE_USER | PTE_GLOBAL | PTE_NX),
                      pte_cache_index(leaf, PT_LEVEL_PT), opts, &c);
    op_end(&op);
    return err;
}

/* The walk cache's miss: walks to virt's PT and fills the cache with it when
 * every level above is a present table whose bits under `mask` are `want`
 * (PS clear, plus what a map needs granted). False (cache untouched) otherwise. */
static __attribute__((noinline)) bool wc_walk(struct addrspace *as, vaddr_t virt, pte_t mask,
                                              pte_t want)
{
    /* the cursor's steps written out, one test per level: no loop on the miss path */
    struct pt_cursor c;
    pte_t pml4e = *pt_walk_start(&c, as->pml4, virt);
    if ((pml4e & mask) != want)
        return false;
    pte_t pdpte = *pt_walk_down(&c);
    if ((pdpte & mask) != want)
        return false;
    pte_t *pde = pt_walk_down(&c);
    pte_t pdev = *pde;
    if ((pdev & mask) != want)
        return false;
    wc_fill(as, virt, pde, pml4e, pdpte, pdev);
    return true;
}

/* Maps the 4 KiB leaf `leaf` (checked) at virt, whose PT the walk cache holds
 * with the levels above granting the leaf: one entry write when the slot is
 * free; else -PAGING_EEXIST, or map_4k_slow for PAGING_REPLACE. */
static inline int map_4k_cached(struct addrspace *as, vaddr_t virt, pte_t leaf, unsigned opts)
{
    pte_t *pte = &as->wc.pt[pt_index(virt, PT_LEVEL_PT)];
    if (pte_present(*pte)) {
        if (opts & PAGING_REPLACE)
            return map_4k_slow(as, virt, leaf, opts);
        return -PAGING_EEXIST;
    }
    *pte = leaf; /* was not present: no flush */
    pte_t *pde = as->wc.pde;
    pte_t pdev = *pde;
    if (pdev & PTE_CNT_VALID)
        *pde = pdev + PTE_CNT_ONE;
    return 0;
}

/* map_4k when the walk cache does not serve: walks, and when the three tables
 * exist and already grant the leaf (present, no PS; WRITABLE/USER where the
 * leaf has them; NX only if the leaf has it, so widen_intermediate would
 * change nothing) goes on from the refilled cache; else map_4k_slow. */
static __attribute__((noinline)) int map_4k_miss(struct addrspace *as, vaddr_t virt, pte_t leaf,
                                                 unsigned opts)
{
    /* one test per level: the bits of `want` set, PS and (unless the leaf is NX) NX clear */
    pte_t want = PTE_PRESENT | (leaf & (PTE_WRITABLE | PTE_USER));
    if (!wc_walk(as, virt, want | PTE_PS | (PTE_NX & ~leaf), want))
        return map_4k_slow(as, virt, leaf, opts);
    return map_4k_cached(as, virt, leaf, opts);
}

/* Maps the 4 KiB leaf `leaf` (checked) at virt. The hit path makes no call
 * but tail calls, so it needs no saved registers. */
static inline int map_4k(struct addrspace *as, vaddr_t virt, pte_t leaf, unsigned opts)
{
    if ((virt | (PAGE_SIZE_2M - 1)) != as->wc.region_last || ((leaf ^ PTE_NX) & as->wc.upper_denies))
        return map_4k_miss(as, virt, leaf, opts);
    return map_4k_cached(as, virt, leaf, opts);
}

/* After the 4 KiB leaf at virt (which was `old`) was cleared (its PT's count not
 * yet dropped): flushes, and detaches the tables that became empty (PT, then
 * PD, then PDPT), which op_end frees after the flush. Returns 0. */
static __attribute__((noinline)) int unmap_4k_reclaim(struct addrspace *as, vaddr_t virt,
                                                      pte_t old)
{
    /* the PT was reached, so the walk passes present tables down to it;
     * above[l] is virt's entry at level l (2, 3, 4), above[5] none */
    struct pt_cursor c;
    pte_t *above[PT_LEVEL_PML4 + 2];
    above[PT_LEVEL_PML4 + 1] = NULL;
    above[PT_LEVEL_PML4] = pt_walk_start(&c, as->pml4, virt);
    above[PT_LEVEL_PDPT] = pt_walk_down(&c);
    above[PT_LEVEL_PD] = pt_walk_down(&c);
    cnt_dec(above[PT_LEVEL_PD]);
    struct op op;
    op_begin(&op, as);
    tlb_flush(&op, virt, old);
    /* a fixed kernel-half PDPT stays: its PML4 entry is never cleared */
    int top = kernel_half_top(as, PT_LEVEL_PML4, virt) ? PT_LEVEL_PDPT : PT_LEVEL_PML4;
    for (int l = PT_LEVEL_PD; l <= top && child_empty(above[l]); l++) {
        paddr_t t = *above[l] & PTE_ADDR_MASK;
        set_entry(&op, above[l], 0, virt);
        cnt_dec(above[l + 1]); /* NULL above the PML4: cnt_dec ignores it */
        table_release(&op, t);
    }
    op_end(&op);
    return 0;
}

/* paging_map_in for 2 MiB and 1 GiB pages (and sizes that are none of these). */
static __attribute__((noinline)) int map_in_slow(struct addrspace *as, paddr_t phys, vaddr_t virt,
                                                 uint64_t size, uint64_t flags, enum cache_mode cm,
                                                 unsigned opts)
{
    pte_t bits;
    unsigned idx;
    int level = size_level(size);
    if (level < 0)
        return level;
    int err = decode_flags(flags, cm, &bits, &idx);
    if (err)
        return err;
    if ((opts & ~(PAGING_REPLACE | PAGING_LARGE)) || !IS_ALIGNED(virt | phys, size) ||
        !virt_range_ok(virt, size) || !half_ok(as, virt, size) || !phys_range_ok(phys, size))
        return -PAGING_EINVAL;
    spin_lock(&as->lock);
    struct op op;
    struct pt_cursor c;
    op_begin(&op, as);
    err = map_one(&op, phys, virt, level, bits, idx, opts, &c);
    op_end(&op);
    spin_unlock(&as->lock);
    return err;
}

/* pte_cache_bits(cm, PT_LEVEL_PT) for every PAT index. */
static const pte_t cache_bits_4k[8] = {
    0, PTE_PWT, PTE_PCD, PTE_PCD | PTE_PWT, PTE_PAT_4K, PTE_PAT_4K | PTE_PWT,
    PTE_PAT_4K | PTE_PCD, PTE_PAT_4K | PTE_PCD | PTE_PWT,
};

int paging_map_in(struct addrspace *as, paddr_t phys, vaddr_t virt, uint64_t size, uint64_t flags,
                  enum cache_mode cm, unsigned opts)
{
    /* 4 KiB: checks and decoding inline; map_in_slow asks CPUID the first time. */
    unsigned bits = phys_bits_known();
    if (size == PAGE_SIZE_4K && bits) {
        /* Every check at once (an aligned canonical page never crosses the hole):
         * unknown flags or opts, unaligned, non-canonical (virt + 2^47 >= 2^48),
         * phys beyond MAXPHYADDR, unknown cache mode, or PWT/PCD with a mode. */
        uint64_t inval = (flags & ~PAGE_FLAGS_ALLOWED) | (opts & ~(PAGING_REPLACE | PAGING_LARGE)) |
                         ((virt | phys) & (PAGE_SIZE - 1)) | ((virt + (1ULL << 47)) >> 48) |
                         /* a kernel-half page in a user space */
                         ((virt >> 63) & (uint64_t)as->user) |
                         (phys >> bits) |
                         /* cm > CACHE_WC (64-bit: no wrap) */
                         (((uint64_t)(unsigned)cm + (7 - CACHE_WC)) >> 3) |
                         /* PWT/PCD together with a cache mode: both factors non-zero */
                         ((flags & (PAGE_WRITETHROUGH | PAGE_NOCACHE)) * (uint64_t)(unsigned)cm);
        if (inval)
            return -PAGING_EINVAL;
        /* cm is WB when PWT/PCD are given: they are then the cache bits themselves */
        pte_t leaf = phys | PTE_PRESENT |
                     (flags & (PAGE_WRITABLE | PAGE_USER | PAGE_GLOBAL | PAGE_WRITETHROUGH |
                               PAGE_NOCACHE | __atomic_load_n(&cpu_nx_mask, __ATOMIC_RELAXED))) |
                     cache_bits_4k[cm];
        spin_lock(&as->lock);
        int err = map_4k(as, virt, leaf, opts);
        spin_unlock(&as->lock);
        return err;
    }
    return map_in_slow(as, phys, virt, size, flags, cm, opts);
}

/* After map_one mapped a 4 KiB page (c at its PT entry), the following pages
 * of the range in the same PT, entry by entry: the walk above them and the
 * widening of its pointers are the same as that page's. Advances *off past
 * every page mapped; -PAGING_EEXIST at a present one without PAGING_REPLACE,
 * as map_one. */
static int map_pt_rest(struct op *op, const struct pt_cursor *c, paddr_t phys, vaddr_t virt,
                       uint64_t len, uint64_t *off, pte_t bits, unsigned idx, unsigned opts)
{
    pte_t *slot = c->slot;
    for (uint64_t o = *off; o < len && (virt + o) % PAGE_SIZE_2M; o += PAGE_SIZE) {
        slot++;
        pte_t old = *slot;
        if (pte_present(old) && !(opts & PAGING_REPLACE))
            return -PAGING_EEXIST;
        set_entry(op, slot, pte_make_leaf(phys + o, bits, idx, PT_LEVEL_PT), virt + o);
        if (!pte_present(old))
            cnt_inc(c->parent);
        *off = o + PAGE_SIZE;
    }
    return 0;
}

int paging_map_range(struct addrspace *as, paddr_t phys, vaddr_t virt, uint64_t len,
                     uint64_t flags, enum cache_mode cm, unsigned opts)
{
    pte_t bits;
    unsigned idx;
    int err = decode_flags(flags, cm, &bits, &idx);
    if (err)
        return err;
    if ((opts & ~(PAGING_REPLACE | PAGING_LARGE)) || !virt_range_ok(virt, len) ||
        !half_ok(as, virt, len) || !phys_range_ok(phys, len))
        return -PAGING_EINVAL;
    bool big = (opts & PAGING_LARGE) != 0, huge = big && arch_has_1g_pages();

    spin_lock(&as->lock);
    struct op op;
    op_begin(&op, as);
    uint64_t off = 0;
    while (off < len) {
        uint64_t left = len - off, both = (virt + off) | (phys + off);
        int level = PT_LEVEL_PT;
        if (huge && left >= PAGE_SIZE_1G && IS_ALIGNED(both, PAGE_SIZE_1G))
            level = PT_LEVEL_PDPT;
        else if (big && left >= PAGE_SIZE_2M && IS_ALIGNED(both, PAGE_SIZE_2M))
            level = PT_LEVEL_PD;
        struct pt_cursor c;
        err = map_one(&op, phys + off, virt + off, level, bits, idx, opts, &c);
        if (err)
            break;
        off += pt_level_size(level);
        if (level == PT_LEVEL_PT)
            err = map_pt_rest(&op, &c, phys, virt, len, &off, bits, idx, opts);
        if (err)
            break;
    }
    if (err && off) {
        struct range_op r = {.op = &op, .first = virt}; /* our own pages: no split at either end */
        walk_range(&r, &unmap_ops, virt, virt + off - 1);
    }
    op_end(&op);
    spin_unlock(&as->lock);
    return err;
}

/* paging_unmap_in through the range code: any size, large pages split. */
static __attribute__((noinline)) int unmap_in_slow(struct addrspace *as, vaddr_t virt,
                                                   uint64_t size)
{
    int level = size_level(size);
    if (level < 0)
        return level;
    if (!IS_ALIGNED(virt, size) || !virt_range_ok(virt, size) || !half_ok(as, virt, size))
        return -PAGING_EINVAL;
    uint64_t n = 0;
    int err = unmap_range(as, virt, size, &n);
    if (err)
        return err;
    return n ? 0 : -PAGING_ENOENT;
}

/* The end of a 4 KiB unmap that left its PT non-empty (the leaf was `old`):
 * invlpg and a shootdown of that page when live. */
static __attribute__((noinline)) int unmap_4k_flush(const struct addrspace *as, vaddr_t virt,
                                                    pte_t old)
{
    bool local = as == &kernel_as || (arch_read_cr3() & PTE_ADDR_MASK) == as->pml4;
    if (local)
        arch_invlpg(virt);
    shoot(as, local, virt, virt + PAGE_SIZE, (old & PTE_GLOBAL) != 0);
    return 0;
}

/* Unmaps the 4 KiB page at virt (aligned, canonical) whose PT the walk cache holds. */
static inline int unmap_4k_cached(struct addrspace *as, vaddr_t virt)
{
    pte_t *pte = &as->wc.pt[pt_index(virt, PT_LEVEL_PT)];
    pte_t old = *pte;
    if (!pte_present(old))
        return -PAGING_ENOENT;
    *pte = 0;
    pte_t *pde = as->wc.pde;
    pte_t pdev = *pde;
    if ((pdev & (PTE_CNT_VALID | PTE_CNT_MASK)) > PTE_CNT_VALID + PTE_CNT_ONE) {
        /* the count is kept and the PT still maps something: the common case */
        *pde = pdev - PTE_CNT_ONE;
        return unmap_4k_flush(as, virt, old);
    }
    return unmap_4k_reclaim(as, virt, old);
}

/* paging_unmap_in of an aligned canonical 4 KiB page outside the cached region:
 * walks to its PT (refilling the cache), else the general code. */
static __attribute__((noinline)) int unmap_4k_miss(struct addrspace *as, vaddr_t virt)
{
    /* a pointer is present without PS (a PML4 entry never has PS) */
    if (!wc_walk(as, virt, PTE_PRESENT | PTE_PS, PTE_PRESENT))
        return unmap_in_slow(as, virt, PAGE_SIZE_4K); /* nothing mapped, or a large page */
    return unmap_4k_cached(as, virt);
}

int paging_unmap_in(struct addrspace *as, vaddr_t virt, uint64_t size)
{
    int err;
    spin_lock(&as->lock);
    /* 4 KiB, aligned and canonical (virt + 2^47 < 2^48): the fast paths */
    if (size == PAGE_SIZE_4K &&
        !((virt & (PAGE_SIZE - 1)) | ((virt + (1ULL << 47)) >> 48) | ((virt >> 63) & (uint64_t)as->user))) {
        if ((virt | (PAGE_SIZE_2M - 1)) != as->wc.region_last)
            err = unmap_4k_miss(as, virt);
        else
            err = unmap_4k_cached(as, virt);
    } else {
        err = unmap_in_slow(as, virt, size); /* refuses what is not a 4 KiB page */
    }
    spin_unlock(&as->lock);
    return err;
}

int paging_unmap_range(struct addrspace *as, vaddr_t virt, uint64_t len)
{
    if (!virt_range_ok(virt, len) || !half_ok(as, virt, len))
        return -PAGING_EINVAL;
    uint64_t n = 0;
    spin_lock(&as->lock);
    int err = unmap_range(as, virt, len, &n);
    spin_unlock(&as->lock);
    return err;
}

int paging_protect(struct addrspace *as, vaddr_t virt, uint64_t len, uint64_t flags,
                   enum cache_mode cm)
{
    pte_t bits;
    unsigned idx;
    int err = decode_flags(flags, cm, &bits, &idx);
    if (err)
        return err;
    if (!virt_range_ok(virt, len) || !half_ok(as, virt, len))
        return -PAGING_EINVAL;
    spin_lock(&as->lock);
    struct op op;
    op_begin(&op, as);
    err = ensure_boundary(&op, virt);
    if (!err)
        err = ensure_boundary(&op, virt + len);
    struct range_op r = {.op = &op, .first = virt, .bits = bits, .cache_index = idx};
    if (!err)
        walk_range(&r, &protect_ops, virt, virt + len - 1);
    op_end(&op);
    spin_unlock(&as->lock);
    return err;
}

/* paging_query under as->lock, held by the caller. */
static bool query_locked(const struct addrspace *as, vaddr_t virt, struct paging_mapping *out)
{
    if (!as->pml4 || !pt_va_canonical(virt))
        return false;
    struct pt_cursor c;
    pte_t allow = PTE_WRITABLE | PTE_USER, nx = 0;
    for (pte_t *slot = pt_walk_start(&c, as->pml4, virt);; slot = pt_walk_into(&c, *slot)) {
        pte_t e = *slot;
        if (!pte_present(e))
            return false;
        allow &= e; /* the rights the CPU applies: every level must grant, any may deny */
        nx |= e & PTE_NX;
        if (pte_is_leaf(e, c.level)) { /* always true at the PT */
            if (out) {
                uint64_t size = pt_level_size(c.level);
                out->phys = pte_addr(e, c.level) + (virt & (size - 1));
                out->page_size = size;
                out->flags = PAGE_PRESENT | allow | nx | (e & PTE_GLOBAL);
                out->cache = (enum cache_mode)pte_cache_index(e, c.level);
                out->entry = e;
            }
            return true;
        }
    }
}

/* The lock is taken by readers too, so `as` is const only to the caller:
 * the lock word itself changes. */
bool paging_query(const struct addrspace *as, vaddr_t virt, struct paging_mapping *out)
{
    struct spinlock *l = (struct spinlock *)&as->lock;
    spin_lock(l);
    bool found = query_locked(as, virt, out);
    spin_unlock(l);
    return found;
}

paddr_t paging_translate_in(const struct addrspace *as, vaddr_t virt)
{
    struct paging_mapping m;
    return paging_query(as, virt, &m) ? m.phys : PAGING_NO_MAPPING;
}

int paging_map(paddr_t phys, vaddr_t virt, uint64_t flags)
{
    return paging_map_in(&kernel_as, phys, virt, PAGE_SIZE_4K, flags, CACHE_WB, 0);
}

int paging_unmap(vaddr_t virt)
{
    return paging_unmap_in(&kernel_as, ALIGN_DOWN(virt, PAGE_SIZE), PAGE_SIZE_4K);
}

paddr_t paging_translate(vaddr_t virt)
{
    return paging_translate_in(&kernel_as, virt);
}

uint64_t paging_table_pages(void)
{
    return __atomic_load_n(&table_pages_total, __ATOMIC_RELAXED);
}

const char *paging_strerror(int err)
{
    switch (err < 0 ? -err : err) {
    case PAGING_OK: return "OK";
    case PAGING_ENOMEM: return "ENOMEM";
    case PAGING_EEXIST: return "EEXIST";
    case PAGING_EINVAL: return "EINVAL";
    case PAGING_ENOTSUP: return "ENOTSUP";
    case PAGING_ENOENT: return "ENOENT";
    default: return "unknown";
    }
}

const char *paging_cache_name(enum cache_mode cm)
{
    static const char *const names[8] = {"WB", "WT", "UC-", "UC", "WP", "WC", "UC-", "UC"};
    return (unsigned)cm < 8 ? names[cm] : "?";
}
