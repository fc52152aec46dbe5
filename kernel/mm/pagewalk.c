/* pagewalk_leaves: a recursive walk of the four table levels. */
#include "mm/pagewalk.h"

#include "mm/mm.h"
#include "mm/pte.h"

struct walk {
    pagewalk_fn fn;
    void *ctx;
    uint64_t leaves;
};

static vaddr_t canonical(uint64_t va)
{
    return (va & (1ULL << 47)) ? (va | 0xffff000000000000ULL) : va;
}

/* Visits the present entries of the table at `table` (level `level`), which
 * maps addresses from `base` on; `inherited` carries WRITABLE/USER (every
 * level must grant) and NX (any level may set). */
static void walk_table(struct walk *w, paddr_t table, int level, uint64_t base, uint64_t inherited)
{
    const pte_t *t = (const pte_t *)PHYS2VIRT(table);
    for (unsigned i = 0; i < PT_ENTRIES; i++) {
        pte_t e = t[i];
        if (!pte_present(e))
            continue;
        uint64_t va = base + (uint64_t)i * pt_level_size(level);
        uint64_t eff = (inherited & e & (PAGE_WRITABLE | PAGE_USER)) | ((inherited | e) & PAGE_NX);
        if (pte_is_leaf(e, level)) {
            struct pagewalk_leaf leaf = {
                .virt = canonical(va),
                .phys = pte_addr(e, level),
                .size = pt_level_size(level),
                .flags = eff | (e & PAGE_GLOBAL),
                .cache = pte_cache_index(e, level),
                .level = level,
            };
            w->leaves++;
            w->fn(w->ctx, &leaf);
        } else {
            walk_table(w, pte_addr(e, level), level - 1, va, eff);
        }
    }
}

uint64_t pagewalk_leaves(const struct addrspace *as, pagewalk_fn fn, void *ctx)
{
    struct walk w = {.fn = fn, .ctx = ctx};
    walk_table(&w, as->pml4, PT_LEVEL_PML4, 0, PAGE_WRITABLE | PAGE_USER);
    return w.leaves;
}
