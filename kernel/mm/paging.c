/* Walking and changing four-level page tables (entry encoding: mm/pte.h).
 *
 * Every public operation runs as one `struct op`: it knows whether the address
 * space is live (then changed entries are invalidated with invlpg, or by one
 * CR3 reload after many), and it collects page tables that left the tree so
 * they go back to the frame allocator only at the end, once no TLB or
 * paging-structure cache can still point into them. */
#include "mm/paging.h"

#include "arch/x86_64/mmu_ops.h"
#include "lib/printf.h"
#include "mm/frame.h"
#include "mm/mm.h"

struct addrspace kernel_as;
static uint64_t table_pages_total; /* page-table pages handed out by table_alloc */

/* More invalidations than this in one operation become one CR3 reload. */
#define INVLPG_BATCH 64

struct op {
    struct addrspace *as;
    bool active;       /* as is in CR3: flush what changes */
    unsigned invlpgs;  /* invlpg issued so far */
    bool reload;       /* a CR3 reload is owed (too many invlpgs) */
    paddr_t released;  /* detached tables, linked through their first entry */
};

static void op_begin(struct op *op, struct addrspace *as)
{
    op->as = as;
    op->active = paging_is_active(as);
    op->invlpgs = 0;
    op->reload = false;
    op->released = 0;
}

/* Invalidates the translation of va, which was `old`. Global entries survive a
 * CR3 reload, so they always get their own invlpg. */
static void tlb_flush(struct op *op, vaddr_t va, pte_t old)
{
    if (!op->active)
        return;
    if (op->invlpgs < INVLPG_BATCH || (old & PTE_GLOBAL)) {
        arch_invlpg(va);
        op->invlpgs++;
    } else {
        op->reload = true;
    }
}

/* Finishes the operation: owed flush first, then the detached tables are freed. */
static void op_end(struct op *op)
{
    if (op->reload)
        arch_write_cr3(op->as->pml4);
    while (op->released) {
        paddr_t t = op->released;
        op->released = *(paddr_t *)PHYS2VIRT(t);
        frame_free(t);
        op->as->table_pages--;
        table_pages_total--;
    }
}

static pte_t *table_ptr(paddr_t t)
{
    return (pte_t *)PHYS2VIRT(t);
}

/* ---- walk cache (struct addrspace wc_*) -----------------------------------------
 * The 4 KiB fast paths remember the last PT they reached, the PD entry above
 * it and what the levels above grant. It stays right while no table of the
 * address space leaves the tree: tables are only ever added, and intermediate
 * entries only widened (which at worst makes wc_deny refuse a leaf that a
 * fresh walk then accepts). So every detach (table_release, which every path
 * that unlinks or frees a table goes through) and every split empties it. */

static inline void wc_drop(struct addrspace *as)
{
    as->wc_tag = 0;
}

static inline void wc_fill(struct addrspace *as, vaddr_t virt, pte_t *pt, pte_t *pde, pte_t v4,
                           pte_t v3, pte_t v2)
{
    pte_t allow = v4 & v3 & v2 & (PTE_WRITABLE | PTE_USER);
    as->wc_pt = pt;
    as->wc_pde = pde;
    as->wc_deny = ((PTE_WRITABLE | PTE_USER) & ~allow) | ((v4 | v3 | v2) & PTE_NX);
    as->wc_tag = virt | (PAGE_SIZE_2M - 1);
}

/* A zeroed page table, or 0 when memory is exhausted. */
static paddr_t table_alloc(struct op *op)
{
    paddr_t t = frame_alloc_zeroed();
    if (t) {
        op->as->table_pages++;
        table_pages_total++;
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
    const pte_t *t = table_ptr(p & PTE_ADDR_MASK);
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

static bool va_canonical(vaddr_t va)
{
    return (vaddr_t)((int64_t)(va << 16) >> 16) == va;
}

/* Virtual address of entry i of a table at `level` whose range starts at tbase. */
static vaddr_t entry_va(vaddr_t tbase, unsigned i, int level)
{
    vaddr_t va = tbase + (uint64_t)i * pt_level_size(level);
    return (vaddr_t)((int64_t)(va << 16) >> 16); /* sign-extend bit 47 */
}

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
static bool virt_range_ok(vaddr_t virt, uint64_t len)
{
    vaddr_t last = virt + len - 1;
    return len && IS_ALIGNED(virt | len, PAGE_SIZE) && last > virt && va_canonical(virt) &&
           va_canonical(last) && (virt >> 47) == (last >> 47);
}

/* CPUID answers, asked once: they never change, and every map checks them
 * (CPUID is slow, a VM exit under a hypervisor). */
static unsigned cpu_phys_bits; /* MAXPHYADDR, 32..52; 0 until asked */
static pte_t cpu_nx_mask;      /* PTE_NX when the CPU has NX, else 0 */

static __attribute__((noinline, cold)) void cpu_ask(void)
{
    unsigned bits = arch_phys_addr_bits();
    if (bits < 32 || bits > 52)
        bits = 52;
    cpu_nx_mask = arch_has_nx() ? PTE_NX : 0;
    cpu_phys_bits = bits;
}

static inline unsigned phys_bits(void)
{
    if (__builtin_expect(!cpu_phys_bits, 0))
        cpu_ask();
    return cpu_phys_bits;
}

static inline pte_t nx_mask(void)
{
    if (__builtin_expect(!cpu_phys_bits, 0))
        cpu_ask();
    return cpu_nx_mask;
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

/* Flushes every leaf of the detached table at `level` (covering from tbase) and
 * queues it and all tables below it for release. */
static void release_subtree(struct op *op, paddr_t table, int level, vaddr_t tbase)
{
    pte_t *t = table_ptr(table);
    for (unsigned i = 0; i < PT_ENTRIES; i++) {
        pte_t e = t[i];
        if (!pte_present(e))
            continue;
        if (pte_is_leaf(e, level))
            tlb_flush(op, entry_va(tbase, i, level), e);
        else
            release_subtree(op, pte_addr(e, level), level - 1, entry_va(tbase, i, level));
    }
    table_release(op, table);
}

/* True when the table at `level` maps anything. */
static bool subtree_has_leaf(paddr_t table, int level)
{
    const pte_t *t = table_ptr(table);
    for (unsigned i = 0; i < PT_ENTRIES; i++) {
        if (!pte_present(t[i]))
            continue;
        if (pte_is_leaf(t[i], level) || subtree_has_leaf(pte_addr(t[i], level), level - 1))
            return true;
    }
    return false;
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
    pte_t *child = table_ptr(t);
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

/* Maps one page at `level`. On failure nothing is left behind: tables created
 * here are detached again (a split of a larger page may remain; it changes no
 * translation). */
static int map_one(struct op *op, paddr_t phys, vaddr_t virt, int level, pte_t bits,
                   unsigned cache_index, unsigned opts)
{
    pte_t *table = table_ptr(op->as->pml4);
    pte_t *parent = NULL;    /* the pointer to `table` (none for the PML4) */
    pte_t *first_new = NULL; /* the slot where this call began adding tables */
    pte_t *first_new_parent = NULL;
    int first_new_level = 0;
    int err = 0;

    for (int l = PT_LEVEL_PML4; l > level; l--) {
        pte_t *slot = &table[pt_index(virt, l)];
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
            cnt_inc(parent);
            if (!first_new) {
                first_new = slot;
                first_new_parent = parent;
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
        table = table_ptr(pte_addr(*slot, l));
        parent = slot;
    }

    pte_t *slot = &table[pt_index(virt, level)];
    pte_t old = *slot;
    pte_t leaf = pte_make_leaf(phys, bits, cache_index, level);
    if (pte_present(old) && !pte_is_leaf(old, level)) {
        /* A table of smaller pages where this large page goes. */
        if (!(opts & PAGING_REPLACE) && subtree_has_leaf(pte_addr(old, level), level - 1))
            return -PAGING_EEXIST;
        set_entry(op, slot, leaf, virt);
        release_subtree(op, pte_addr(old, level), level - 1, virt);
        return 0;
    }
    if (pte_present(old) && !(opts & PAGING_REPLACE))
        return -PAGING_EEXIST;
    set_entry(op, slot, leaf, virt);
    if (!pte_present(old))
        cnt_inc(parent);
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
    if (!va_canonical(addr) || IS_ALIGNED(addr, PAGE_SIZE_1G))
        return 0; /* a 1 GiB-aligned address (or the end of a half) cuts no page */
    pte_t *table = table_ptr(op->as->pml4);
    for (int l = PT_LEVEL_PML4; l > PT_LEVEL_PT; l--) {
        pte_t *slot = &table[pt_index(addr, l)];
        if (!pte_present(*slot))
            return 0;
        if (pte_is_leaf(*slot, l)) {
            if (IS_ALIGNED(addr, pt_level_size(l)))
                return 0;
            int err = split_large(op, slot, l, addr);
            if (err)
                return err;
        }
        table = table_ptr(pte_addr(*slot, l));
    }
    return 0;
}

/* Walks [start, last] in the table at `level` (range from tbase; pointed to by
 * *pslot, NULL for the PML4). Without `protect`, clears every leaf and releases
 * tables that become empty; with it, rewrites every leaf with
 * `bits`/`cache_index`. Leaves are assumed to lie wholly inside the range
 * (ensure_boundary ran). Counts leaves touched. */
static void walk_range(struct op *op, pte_t *pslot, pte_t *table, int level, vaddr_t tbase,
                       vaddr_t start, vaddr_t last, bool protect, pte_t bits,
                       unsigned cache_index, uint64_t *count)
{
    unsigned i0 = pt_index(start, level), i1 = pt_index(last, level);
    for (unsigned i = i0; i <= i1; i++) {
        pte_t *slot = &table[i];
        pte_t e = *slot;
        if (!pte_present(e))
            continue;
        vaddr_t va = entry_va(tbase, i, level);
        if (pte_is_leaf(e, level)) {
            pte_t nv = 0;
            if (protect)
                nv = pte_make_leaf(pte_addr(e, level), bits, cache_index, level) |
                     (e & (PTE_ACCESSED | PTE_DIRTY));
            set_entry(op, slot, nv, va);
            if (!protect)
                cnt_dec(pslot);
            (*count)++;
            continue;
        }
        if (protect)
            widen_intermediate(op, slot, bits, va);
        vaddr_t end = va + pt_level_size(level) - 1;
        pte_t *child = table_ptr(pte_addr(e, level));
        walk_range(op, slot, child, level - 1, va, MAX(start, va), MIN(last, end), protect, bits,
                   cache_index, count);
        if (!protect && child_empty(slot) && !kernel_half_top(op->as, level, va)) {
            set_entry(op, slot, 0, va);
            cnt_dec(pslot);
            table_release(op, pte_addr(e, level));
        }
    }
}

/* Unmaps [virt, virt+len) (checked by the caller); *count gets the leaves removed. */
static int unmap_range(struct addrspace *as, vaddr_t virt, uint64_t len, uint64_t *count)
{
    struct op op;
    op_begin(&op, as);
    int err = ensure_boundary(&op, virt);
    if (!err)
        err = ensure_boundary(&op, virt + len);
    if (!err)
        walk_range(&op, NULL, table_ptr(as->pml4), PT_LEVEL_PML4, 0, virt, virt + len - 1, false,
                   0, 0, count);
    op_end(&op);
    return err;
}

/* ---- public interface ------------------------------------------------------------ */

void paging_init(void)
{
    kernel_as.pml4 = arch_read_cr3();
    kernel_as.table_pages = 0;
    kernel_as.borrowed = true;
    kernel_as.kernel_half_fixed = false;
    wc_drop(&kernel_as);
    klog("mm", "paging: adopted the bootloader's tables (PML4 at %#llx), 1 GiB pages: %s",
         (unsigned long long)kernel_as.pml4, arch_has_1g_pages() ? "yes" : "no");
}

int paging_as_create(struct addrspace *as)
{
    paddr_t t = frame_alloc_zeroed();
    if (!t)
        return -PAGING_ENOMEM;
    as->pml4 = t;
    as->table_pages = 1;
    as->borrowed = false;
    as->kernel_half_fixed = false;
    wc_drop(as);
    table_pages_total++;
    return 0;
}

int paging_kernel_half_prepare(struct addrspace *as, vaddr_t start, vaddr_t end)
{
    uint64_t slot_size = pt_level_size(PT_LEVEL_PML4);
    if (start < PAGING_KERNEL_HALF || (end != 0 && end <= start) || !IS_ALIGNED(start, slot_size) ||
        !IS_ALIGNED(end, slot_size))
        return -PAGING_EINVAL;
    struct op op;
    op_begin(&op, as);
    pte_t *pml4 = table_ptr(as->pml4);
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
    return err;
}

void paging_as_destroy(struct addrspace *as)
{
    if (as->borrowed || !as->pml4)
        return;
    kassert(!paging_is_active(as), "destroying the active address space");
    struct op op;
    op_begin(&op, as);
    release_subtree(&op, as->pml4, PT_LEVEL_PML4, 0);
    op_end(&op);
    as->pml4 = 0;
    wc_drop(as);
}

void paging_activate(struct addrspace *as)
{
    arch_write_cr3(as->pml4);
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
    op_begin(&op, as);
    int err = map_one(&op, leaf & PTE_ADDR_MASK, virt, PT_LEVEL_PT,
                      leaf & (PTE_WRITABLE | PTE_USER | PTE_GLOBAL | PTE_NX),
                      pte_cache_index(leaf, PT_LEVEL_PT), opts);
    op_end(&op);
    return err;
}

/* The walk cache's miss: walks to virt's PT and fills the cache with it when
 * every level above is a present table whose bits under `mask` are `want`
 * (PS clear, plus what a map needs granted). False (cache untouched) otherwise. */
static __attribute__((noinline)) bool wc_walk(struct addrspace *as, vaddr_t virt, pte_t mask,
                                              pte_t want)
{
    pte_t v4 = table_ptr(as->pml4)[pt_index(virt, PT_LEVEL_PML4)];
    if ((v4 & mask) != want)
        return false;
    pte_t v3 = table_ptr(v4 & PTE_ADDR_MASK)[pt_index(virt, PT_LEVEL_PDPT)];
    if ((v3 & mask) != want)
        return false;
    pte_t *e2 = &table_ptr(v3 & PTE_ADDR_MASK)[pt_index(virt, PT_LEVEL_PD)];
    pte_t v2 = *e2;
    if ((v2 & mask) != want)
        return false;
    wc_fill(as, virt, table_ptr(v2 & PTE_ADDR_MASK), e2, v4, v3, v2);
    return true;
}

/* Maps the 4 KiB leaf `leaf` (checked) at virt, whose PT the walk cache holds
 * with the levels above granting the leaf: one entry write when the slot is
 * free; else -PAGING_EEXIST, or map_4k_slow for PAGING_REPLACE. */
static inline int map_4k_cached(struct addrspace *as, vaddr_t virt, pte_t leaf, unsigned opts)
{
    pte_t *e1 = &as->wc_pt[pt_index(virt, PT_LEVEL_PT)];
    if (pte_present(*e1)) {
        if (opts & PAGING_REPLACE)
            return map_4k_slow(as, virt, leaf, opts);
        return -PAGING_EEXIST;
    }
    *e1 = leaf; /* was not present: no flush */
    pte_t *e2 = as->wc_pde;
    pte_t v2 = *e2;
    if (v2 & PTE_CNT_VALID)
        *e2 = v2 + PTE_CNT_ONE;
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
    if ((virt | (PAGE_SIZE_2M - 1)) != as->wc_tag || ((leaf ^ PTE_NX) & as->wc_deny))
        return map_4k_miss(as, virt, leaf, opts);
    return map_4k_cached(as, virt, leaf, opts);
}

/* After the 4 KiB leaf at virt (which was `old`) was cleared (its PT's count not
 * yet dropped): flushes, and detaches the tables that became empty (PT, then
 * PD, then PDPT), which op_end frees after the flush. Returns 0. */
static __attribute__((noinline)) int unmap_4k_reclaim(struct addrspace *as, vaddr_t virt,
                                                      pte_t old)
{
    /* the PT was reached, so the chain above it is present tables */
    pte_t *e4 = &table_ptr(as->pml4)[pt_index(virt, PT_LEVEL_PML4)];
    pte_t *e3 = &table_ptr(*e4 & PTE_ADDR_MASK)[pt_index(virt, PT_LEVEL_PDPT)];
    pte_t *e2 = &table_ptr(*e3 & PTE_ADDR_MASK)[pt_index(virt, PT_LEVEL_PD)];
    cnt_dec(e2);
    struct op op;
    op_begin(&op, as);
    tlb_flush(&op, virt, old);
    pte_t *chain[3] = {e2, e3, e4}; /* chain[i] points to a table, chain[i+1] to chain[i]'s */
    int levels = kernel_half_top(as, PT_LEVEL_PML4, virt) ? 2 : 3; /* a kernel-half PDPT stays */
    for (int i = 0; i < levels && child_empty(chain[i]); i++) {
        paddr_t t = *chain[i] & PTE_ADDR_MASK;
        set_entry(&op, chain[i], 0, virt);
        if (i < 2)
            cnt_dec(chain[i + 1]);
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
        !virt_range_ok(virt, size) || !phys_range_ok(phys, size))
        return -PAGING_EINVAL;
    struct op op;
    op_begin(&op, as);
    err = map_one(&op, phys, virt, level, bits, idx, opts);
    op_end(&op);
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
    if (size == PAGE_SIZE_4K && cpu_phys_bits) {
        /* Every check at once (an aligned canonical page never crosses the hole):
         * unknown flags or opts, unaligned, non-canonical (virt + 2^47 >= 2^48),
         * phys beyond MAXPHYADDR, unknown cache mode, or PWT/PCD with a mode. */
        uint64_t inval = (flags & ~PAGE_FLAGS_ALLOWED) | (opts & ~(PAGING_REPLACE | PAGING_LARGE)) |
                         ((virt | phys) & (PAGE_SIZE - 1)) | ((virt + (1ULL << 47)) >> 48) |
                         (phys >> cpu_phys_bits) |
                         /* cm > CACHE_WC (64-bit: no wrap) */
                         (((uint64_t)(unsigned)cm + (7 - CACHE_WC)) >> 3) |
                         /* PWT/PCD together with a cache mode: both factors non-zero */
                         ((flags & (PAGE_WRITETHROUGH | PAGE_NOCACHE)) * (uint64_t)(unsigned)cm);
        if (inval)
            return -PAGING_EINVAL;
        /* cm is WB when PWT/PCD are given: they are then the cache bits themselves */
        pte_t leaf = phys | PTE_PRESENT |
                     (flags & (PAGE_WRITABLE | PAGE_USER | PAGE_GLOBAL | PAGE_WRITETHROUGH |
                               PAGE_NOCACHE | cpu_nx_mask)) |
                     cache_bits_4k[cm];
        return map_4k(as, virt, leaf, opts);
    }
    return map_in_slow(as, phys, virt, size, flags, cm, opts);
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
        !phys_range_ok(phys, len))
        return -PAGING_EINVAL;
    bool big = (opts & PAGING_LARGE) != 0, huge = big && arch_has_1g_pages();

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
        err = map_one(&op, phys + off, virt + off, level, bits, idx, opts);
        if (err)
            break;
        off += pt_level_size(level);
    }
    if (err && off) {
        uint64_t n = 0; /* our own pages: no split needed at either end */
        walk_range(&op, NULL, table_ptr(as->pml4), PT_LEVEL_PML4, 0, virt, virt + off - 1, false,
                   0, 0, &n);
    }
    op_end(&op);
    return err;
}

/* paging_unmap_in through the range code: any size, large pages split. */
static __attribute__((noinline)) int unmap_in_slow(struct addrspace *as, vaddr_t virt,
                                                   uint64_t size)
{
    int level = size_level(size);
    if (level < 0)
        return level;
    if (!IS_ALIGNED(virt, size) || !virt_range_ok(virt, size))
        return -PAGING_EINVAL;
    uint64_t n = 0;
    int err = unmap_range(as, virt, size, &n);
    if (err)
        return err;
    return n ? 0 : -PAGING_ENOENT;
}

/* The end of a 4 KiB unmap that left its PT non-empty: invlpg when live. */
static __attribute__((noinline)) int unmap_4k_flush(const struct addrspace *as, vaddr_t virt)
{
    if ((arch_read_cr3() & PTE_ADDR_MASK) == as->pml4) /* paging_is_active */
        arch_invlpg(virt);
    return 0;
}

/* Unmaps the 4 KiB page at virt (aligned, canonical) whose PT the walk cache holds. */
static inline int unmap_4k_cached(struct addrspace *as, vaddr_t virt)
{
    pte_t *e1 = &as->wc_pt[pt_index(virt, PT_LEVEL_PT)];
    pte_t old = *e1;
    if (!pte_present(old))
        return -PAGING_ENOENT;
    *e1 = 0;
    pte_t *e2 = as->wc_pde;
    pte_t v2 = *e2;
    if ((v2 & (PTE_CNT_VALID | PTE_CNT_MASK)) > PTE_CNT_VALID + PTE_CNT_ONE) {
        /* the count is kept and the PT still maps something: the common case */
        *e2 = v2 - PTE_CNT_ONE;
        return unmap_4k_flush(as, virt);
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
    /* 4 KiB, aligned and canonical (virt + 2^47 < 2^48): the fast paths */
    if (size == PAGE_SIZE_4K && !((virt & (PAGE_SIZE - 1)) | ((virt + (1ULL << 47)) >> 48))) {
        if ((virt | (PAGE_SIZE_2M - 1)) != as->wc_tag)
            return unmap_4k_miss(as, virt);
        return unmap_4k_cached(as, virt);
    }
    return unmap_in_slow(as, virt, size); /* refuses what is not a 4 KiB page */
}

int paging_unmap_range(struct addrspace *as, vaddr_t virt, uint64_t len)
{
    if (!virt_range_ok(virt, len))
        return -PAGING_EINVAL;
    uint64_t n = 0;
    return unmap_range(as, virt, len, &n);
}

int paging_protect(struct addrspace *as, vaddr_t virt, uint64_t len, uint64_t flags,
                   enum cache_mode cm)
{
    pte_t bits;
    unsigned idx;
    int err = decode_flags(flags, cm, &bits, &idx);
    if (err)
        return err;
    if (!virt_range_ok(virt, len))
        return -PAGING_EINVAL;
    struct op op;
    op_begin(&op, as);
    err = ensure_boundary(&op, virt);
    if (!err)
        err = ensure_boundary(&op, virt + len);
    uint64_t n = 0;
    if (!err)
        walk_range(&op, NULL, table_ptr(as->pml4), PT_LEVEL_PML4, 0, virt, virt + len - 1, true,
                   bits, idx, &n);
    op_end(&op);
    return err;
}

bool paging_query(const struct addrspace *as, vaddr_t virt, struct paging_mapping *out)
{
    if (!as->pml4 || !va_canonical(virt))
        return false;
    const pte_t *table = table_ptr(as->pml4);
    pte_t allow = PTE_WRITABLE | PTE_USER, deny = 0;
    for (int l = PT_LEVEL_PML4; l >= PT_LEVEL_PT; l--) {
        pte_t e = table[pt_index(virt, l)];
        if (!pte_present(e))
            return false;
        allow &= e;
        deny |= e & PTE_NX;
        if (pte_is_leaf(e, l)) {
            if (out) {
                uint64_t size = pt_level_size(l);
                out->phys = pte_addr(e, l) + (virt & (size - 1));
                out->page_size = size;
                out->flags = PAGE_PRESENT | allow | deny | (e & PTE_GLOBAL);
                out->cache = (enum cache_mode)pte_cache_index(e, l);
                out->entry = e;
            }
            return true;
        }
        table = table_ptr(pte_addr(e, l));
    }
    return false; /* not reached: level 1 entries are leaves */
}

paddr_t paging_translate_in(const struct addrspace *as, vaddr_t virt)
{
    struct paging_mapping m;
    return paging_query(as, virt, &m) ? m.phys : PAGING_NO_MAPPING;
}

static const char *const level_names[] = {"", "PT", "PD", "PDPT", "PML4"};

void paging_walk_print_in(const struct addrspace *as, vaddr_t virt)
{
    kprintf("walk %#llx (PML4 at %#llx):\n", (unsigned long long)virt,
            (unsigned long long)as->pml4);
    if (!va_canonical(virt)) {
        kprintf("  not canonical: stops here\n");
        return;
    }
    const pte_t *table = table_ptr(as->pml4);
    for (int l = PT_LEVEL_PML4; l >= PT_LEVEL_PT; l--) {
        unsigned i = pt_index(virt, l);
        pte_t e = table[i];
        kprintf("  %-4s[%3u] = 0x%016llx", level_names[l], i, (unsigned long long)e);
        if (!pte_present(e)) {
            kprintf("  not present: stops here\n");
            return;
        }
        bool leaf = pte_is_leaf(e, l);
        kprintf("  P %s %s%s%s%s%s%s%s%s", (e & PTE_WRITABLE) ? "RW" : "RO",
                (e & PTE_USER) ? "U" : "S", (e & PTE_PWT) ? " PWT" : "", (e & PTE_PCD) ? " PCD" : "",
                (e & PTE_ACCESSED) ? " A" : "", (leaf && (e & PTE_DIRTY)) ? " D" : "",
                (l > PT_LEVEL_PT && (e & PTE_PS)) ? " PS" : "",
                (leaf && (e & PTE_GLOBAL)) ? " G" : "", (e & PTE_NX) ? " NX" : "");
        if (leaf) {
            uint64_t size = pt_level_size(l);
            kprintf(" %s -> %llu KiB page at %#llx: phys %#llx\n",
                    paging_cache_name((enum cache_mode)pte_cache_index(e, l)),
                    (unsigned long long)(size >> 10), (unsigned long long)pte_addr(e, l),
                    (unsigned long long)(pte_addr(e, l) + (virt & (size - 1))));
            return;
        }
        kprintf(" -> table at %#llx", (unsigned long long)pte_addr(e, l));
        if (e & PTE_CNT_VALID) /* software bits 52..62: the table's present entries */
            kprintf(", %llu present", (unsigned long long)((e & PTE_CNT_MASK) >> PTE_CNT_SHIFT));
        kprintf("\n");
        table = table_ptr(pte_addr(e, l));
    }
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

void paging_walk_print(vaddr_t virt)
{
    paging_walk_print_in(&kernel_as, virt);
}

uint64_t paging_table_pages(void)
{
    return table_pages_total;
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
