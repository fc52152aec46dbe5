/* The range walk and the decoded walks built on the walker (mm/pagewalk.h).
 * Invariant relied on: a present entry at level 1 is a leaf, and one at level
 * 2 or 3 is a leaf exactly when PS is set (mm/pte.h pte_is_leaf), so every
 * descent ends at the PT at the latest. */
#include "mm/pagewalk.h"

#include "arch/x86_64/mmu_ops.h"
#include "lib/printf.h"

/* Sign-extends bit 47: the canonical form of an address computed from indexes. */
static vaddr_t canonical(uint64_t va)
{
    return (vaddr_t)((int64_t)(va << 16) >> 16);
}

int pagewalk_range(pte_t *table, pte_t *parent, int level, vaddr_t tbase, vaddr_t start,
                   vaddr_t last, pte_t rights, const struct pagewalk_ops *ops, void *ctx)
{
    unsigned i0 = pt_index(start, level), i1 = pt_index(last, level);
    for (unsigned i = i0; i <= i1; i++) {
        pte_t e = table[i];
        if (!pte_present(e))
            continue;
        struct pagewalk_entry ent = {
            .slot = &table[i],
            .parent = parent,
            .level = level,
            .va = canonical(tbase + (uint64_t)i * pt_level_size(level)),
            .rights = (rights & e & (PTE_WRITABLE | PTE_USER)) | ((rights | e) & PTE_NX),
        };
        int r;
        if (pte_is_leaf(e, level)) {
            if (ops->leaf && (r = ops->leaf(ctx, &ent)))
                return r;
            continue;
        }
        if (ops->table_pre && (r = ops->table_pre(ctx, &ent)))
            return r;
        vaddr_t end = ent.va + pt_level_size(level) - 1;
        r = pagewalk_range(pt_table(pte_addr(table[i], level)), &table[i], level - 1, ent.va,
                           MAX(start, ent.va), MIN(last, end), ent.rights, ops, ctx);
        if (r)
            return r;
        if (ops->table_post && (r = ops->table_post(ctx, &ent)))
            return r;
    }
    return 0;
}

struct leaves_walk {
    pagewalk_fn fn;
    pagewalk_until_fn until;
    void *ctx;
    uint64_t leaves;
};

static int decode_leaf(void *ctx, const struct pagewalk_entry *e)
{
    struct leaves_walk *w = ctx;
    pte_t v = *e->slot;
    const struct pagewalk_leaf leaf = {
        .virt = e->va,
        .phys = pte_addr(v, e->level),
        .size = pt_level_size(e->level),
        .flags = e->rights | (v & PAGE_GLOBAL),
        .cache = pte_cache_index(v, e->level),
        .level = e->level,
    };
    w->leaves++;
    if (w->until)
        return w->until(w->ctx, &leaf);
    w->fn(w->ctx, &leaf);
    return 0;
}

/* as->lock, taken by readers too: const to the caller only. */
static struct spinlock *as_lock(const struct addrspace *as)
{
    return (struct spinlock *)&as->lock;
}

uint64_t pagewalk_leaves(const struct addrspace *as, pagewalk_fn fn, void *ctx)
{
    static const struct pagewalk_ops ops = {.leaf = decode_leaf};
    struct leaves_walk w = {.fn = fn, .ctx = ctx};
    spin_lock(as_lock(as));
    pagewalk_range(pt_table(as->pml4), NULL, PT_LEVEL_PML4, 0, 0, ~0ULL,
                   PTE_WRITABLE | PTE_USER, &ops, &w);
    spin_unlock(as_lock(as));
    return w.leaves;
}

int pagewalk_leaves_in(const struct addrspace *as, vaddr_t start, vaddr_t last,
                       pagewalk_until_fn fn, void *ctx)
{
    static const struct pagewalk_ops ops = {.leaf = decode_leaf};
    struct leaves_walk w = {.until = fn, .ctx = ctx};
    if (start > last || (start >> 47) != (last >> 47) || !pt_va_canonical(start) ||
        !pt_va_canonical(last))
        return 0;
    spin_lock(as_lock(as));
    int r = pagewalk_range(pt_table(as->pml4), NULL, PT_LEVEL_PML4, 0, start, last,
                           PTE_WRITABLE | PTE_USER, &ops, &w);
    spin_unlock(as_lock(as));
    return r;
}

/* Lock-free on purpose: it runs in backtraces, from panics and from
 * exception handlers, where this CPU may hold kernel_as's lock already (a
 * fault inside a paging operation) or another CPU may have stopped holding
 * it, and where a plain lock may not be taken at all (an exception handler).
 * Safe enough there: it only reads; the tables it can reach are RAM, which the
 * HHDM maps in full, and it refuses a table address beyond the HHDM, so even
 * a table freed and reused under it (another CPU unmapping concurrently)
 * cannot make it fault: the worst is a wrong answer for one pointer of a
 * report that is being printed because the kernel is dying. */
bool pagewalk_readable(vaddr_t va)
{
    if (!hhdm_offset || !pt_va_canonical(va))
        return false;
    struct pt_cursor c;
    paddr_t root = arch_read_cr3() & PTE_ADDR_MASK;
    pte_t *slot = pt_walk_start(&c, root, va);
    for (;;) {
        pte_t e = __atomic_load_n(slot, __ATOMIC_RELAXED);
        if (!pte_present(e))
            return false;
        if (pte_is_leaf(e, c.level))
            return true;
        if (hhdm_size && (e & PTE_ADDR_MASK) >= hhdm_size)
            return false; /* not a table the HHDM maps: garbage in a reused table */
        slot = pt_walk_into(&c, e);
    }
}

static const char *const level_names[] = {"", "PT", "PD", "PDPT", "PML4"};

/* The walk itself, under as->lock. */
static void walk_print_locked(const struct addrspace *as, vaddr_t virt)
{
    kprintf("walk %#llx (PML4 at %#llx):\n", (unsigned long long)virt,
            (unsigned long long)as->pml4);
    if (!pt_va_canonical(virt)) {
        kprintf("  not canonical: stops here\n");
        return;
    }
    struct pt_cursor c;
    for (pte_t *slot = pt_walk_start(&c, as->pml4, virt);; slot = pt_walk_down(&c)) {
        int l = c.level;
        pte_t e = *slot;
        kprintf("  %-4s[%3u] = 0x%016llx", level_names[l], pt_index(virt, l),
                (unsigned long long)e);
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
    }
}

void paging_walk_print_in(const struct addrspace *as, vaddr_t virt)
{
    spin_lock(as_lock(as));
    walk_print_locked(as, virt);
    spin_unlock(as_lock(as));
}

void paging_walk_print(vaddr_t virt)
{
    paging_walk_print_in(&kernel_as, virt);
}
