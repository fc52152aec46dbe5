/* User address spaces (mm/vm.h): regions over a user page-table tree, and
 * the page-fault logic that fills them.
 *
 * The page tables only ever hold 4 KiB leaves, always with PAGE_USER, and
 * with the region's rights except one: a page whose frame is shared
 * copy-on-write (frameref_extra > 0) is never writable, and a page that was
 * shared is mapped read-only until its next write fault decides (copy, or
 * reuse when no one shares it any more). So "writable in the tables" implies
 * "this space's own frame", which is what the fault handler and vm_check
 * rely on.
 *
 * Frames leave a space in batches (struct batch): the pages are unmapped
 * first, with one shootdown for the batch, and only then are the frames
 * (or their shares) given back, so no CPU can still write to a frame through
 * a stale TLB entry once someone else owns it. */
#include "mm/vm.h"

#include "arch/x86_64/cpu_local.h"
#include "lib/errno.h"
#include "lib/panic.h"
#include "lib/printf.h"
#include "lib/string.h"
#include "mm/frame.h"
#include "mm/frameref.h"
#include "mm/heap.h"
#include "mm/mm.h"
#include "mm/pagewalk.h"

static struct spinlock vm_list_lock = SPINLOCK_INIT("vm-list", LOCK_RANK_NONE);
static struct list_node vm_list = {&vm_list, &vm_list}; /* vm_list_lock */
static uint64_t vm_spaces;                              /* vm_list_lock */
static uint32_t vm_next_id = 1;                         /* vm_list_lock */
static uint64_t vm_faults, vm_resolved;                 /* atomic */
static struct vm_space *vm_cur[CPU_MAX];                /* each CPU writes its own */

/* ---- helpers ----------------------------------------------------------------------- */

/* The leaf flags for a page of a region with rights prot; `own`: the frame
 * is this space's alone (may be writable). */
static uint64_t leaf_flags(uint32_t prot, bool own)
{
    uint64_t f = PAGE_USER;
    if ((prot & VM_WRITE) && own)
        f |= PAGE_WRITABLE;
    if (!(prot & VM_EXEC))
        f |= PAGE_NX;
    /* no rights at all: a supervisor page, so every ring-3 access faults
     * (its contents stay for a later vm_protect) */
    if (!(prot & VM_PROT_MASK))
        f &= ~PAGE_USER;
    return f;
}

static bool prot_ok(uint32_t prot)
{
    return !(prot & ~VM_PROT_MASK);
}

/* True when [addr, addr+len) is page aligned, not empty and inside the part
 * of the user half a space may map. */
static bool user_range_valid(vaddr_t addr, uint64_t len)
{
    return len && IS_ALIGNED(addr | len, PAGE_SIZE) && addr >= VM_USER_MIN && addr < VM_USER_MAX &&
           len <= VM_USER_MAX - addr;
}

/* Frames whose pages were unmapped, to give back once the unmap's shootdown
 * is done. */
#define BATCH_MAX 64
struct batch {
    vaddr_t first, next; /* the batch covers [first, next) */
    unsigned n;
    paddr_t frame[BATCH_MAX];
    vaddr_t va[BATCH_MAX]; /* the page each frame is mapped at */
};

static int batch_leaf(void *ctx, const struct pagewalk_leaf *leaf)
{
    struct batch *b = ctx;
    kassert(leaf->size == PAGE_SIZE, "vm: a large page in a user space at %#llx",
            (unsigned long long)leaf->virt);
    if (b->n == BATCH_MAX)
        return 1; /* full: b->next stays at the end of the last page taken */
    b->va[b->n] = leaf->virt;
    b->frame[b->n++] = leaf->phys;
    b->next = leaf->virt + PAGE_SIZE;
    return 0;
}

/* Gives back one frame of a page that left a space: its share, or the
 * frame itself when this was the last reference. */
static void frame_put(paddr_t f)
{
    if (frameref_put(f))
        frame_free(f);
}

/* Unmaps every page of [start, end) in vs (lock held) and gives their frames
 * back, a batch at a time (never fails: vm maps 4 KiB pages only, so no
 * split is needed). `loaded`: the space may be in some CPU's TLB (false only
 * while it is being destroyed: then the tables are left for
 * paging_as_destroy). */
static void unmap_pages(struct vm_space *vs, vaddr_t start, vaddr_t end, bool loaded)
{
    vaddr_t at = start;
    while (at < end) {
        struct batch b = {.first = at, .next = end, .n = 0};
        int full = pagewalk_leaves_in(&vs->pt, at, end - 1, batch_leaf, &b);
        if (!full)
            b.next = end;
        if (b.n && loaded) {
            int err = paging_unmap_range(&vs->pt, b.first, b.next - b.first);
            kassert(!err, "vm: unmap of [%#llx, %#llx) failed: %s", (unsigned long long)b.first,
                    (unsigned long long)b.next, paging_strerror(err));
        }
        for (unsigned i = 0; i < b.n; i++)
            frame_put(b.frame[i]);
        vs->resident -= b.n;
        at = b.next;
    }
}

/* Two region nodes for a call that may split (the spares of vm_region.h),
 * allocated before the lock: false when memory is out. */
static bool spares_get(struct vmr_spare *sp)
{
    sp->n[0] = kmalloc(sizeof(struct vm_region));
    sp->n[1] = kmalloc(sizeof(struct vm_region));
    if (sp->n[0] && sp->n[1])
        return true;
    kfree(sp->n[0]);
    kfree(sp->n[1]);
    return false;
}

static void spares_put(struct vmr_spare *sp)
{
    kfree(sp->n[0]);
    kfree(sp->n[1]);
}

/* ---- spaces ------------------------------------------------------------------------ */

int vm_space_create(const char *name, struct vm_space **out)
{
    struct vm_space *vs = kcalloc(1, sizeof(*vs));
    if (!vs)
        return -ENOMEM;
    if (paging_as_create_user(&vs->pt)) {
        kfree(vs);
        return -ENOMEM;
    }
    vmr_init(&vs->regions);
    spin_init(&vs->lock, "vm-space", LOCK_RANK_VM);
    kstrlcpy(vs->name, name ? name : "?", sizeof(vs->name));
    spin_lock(&vm_list_lock);
    vs->id = vm_next_id++;
    list_push_back(&vm_list, &vs->link);
    vm_spaces++;
    spin_unlock(&vm_list_lock);
    *out = vs;
    return 0;
}

void vm_space_destroy(struct vm_space *vs)
{
    kassert(!__atomic_load_n(&vs->pt.cpus, __ATOMIC_ACQUIRE),
            "vm: destroying space %u (%s) while a CPU has it loaded", vs->id, vs->name);
    spin_lock(&vm_list_lock);
    list_remove(&vs->link);
    vm_spaces--;
    spin_unlock(&vm_list_lock);
    spin_lock(&vs->lock);
    /* loaded nowhere: the frames can go back before the tables do */
    unmap_pages(vs, 0, PAGING_USER_TOP, false);
    vmr_clear(&vs->regions);
    spin_unlock(&vs->lock);
    paging_as_destroy(&vs->pt);
    kfree(vs);
}

/* ---- regions ----------------------------------------------------------------------- */

int vm_map(struct vm_space *vs, vaddr_t *addr, uint64_t len, uint32_t prot, enum vm_kind kind,
           const struct vm_image *image, uint64_t off, vaddr_t stack_floor, unsigned flags)
{
    if (!len || !IS_ALIGNED(len, PAGE_SIZE) || len > VM_USER_MAX - VM_USER_MIN || !prot_ok(prot) ||
        (flags & ~VM_MAP_FIXED) || kind > VMR_STACK || (kind == VMR_IMAGE) != (image != NULL) ||
        (kind != VMR_STACK && stack_floor))
        return -EINVAL;
    vaddr_t want = *addr;
    if ((flags & VM_MAP_FIXED) && !user_range_valid(want, len))
        return -EINVAL;
    if (want && !IS_ALIGNED(want, PAGE_SIZE))
        return -EINVAL;
    struct vmr_spare sp;
    if (!spares_get(&sp))
        return -ENOMEM;
    spin_lock(&vs->lock);
    int err = 0;
    vaddr_t at = want;
    if (flags & VM_MAP_FIXED) {
        unmap_pages(vs, at, at + len, true);
        err = vmr_remove(&vs->regions, at, at + len, &sp);
    } else if (!vmr_find_gap(&vs->regions, len, MAX(want, VM_USER_MIN), VM_USER_MAX, &at)) {
        err = -ENOMEM;
    }
    if (!err && kind == VMR_STACK && stack_floor && (stack_floor >= at || stack_floor < VM_USER_MIN ||
                                                     !IS_ALIGNED(stack_floor, PAGE_SIZE)))
        err = -EINVAL;
    if (!err) {
        struct vm_region t = {.start = at, .end = at + len, .prot = prot, .kind = kind,
                              .image = image, .image_off = off, .grow_floor = stack_floor};
        err = vmr_insert(&vs->regions, &t, &sp);
    }
    spin_unlock(&vs->lock);
    spares_put(&sp);
    if (!err)
        *addr = at;
    return err;
}

int vm_unmap(struct vm_space *vs, vaddr_t addr, uint64_t len)
{
    if (!user_range_valid(addr, len))
        return -EINVAL;
    struct vmr_spare sp;
    if (!spares_get(&sp))
        return -ENOMEM;
    spin_lock(&vs->lock);
    unmap_pages(vs, addr, addr + len, true);
    int err = vmr_remove(&vs->regions, addr, addr + len, &sp);
    spin_unlock(&vs->lock);
    spares_put(&sp);
    return err;
}

int vm_protect(struct vm_space *vs, vaddr_t addr, uint64_t len, uint32_t prot)
{
    if (!user_range_valid(addr, len) || !prot_ok(prot))
        return -EINVAL;
    struct vmr_spare sp;
    if (!spares_get(&sp))
        return -ENOMEM;
    spin_lock(&vs->lock);
    int err = vmr_protect(&vs->regions, addr, addr + len, prot, &sp);
    if (!err) {
        /* Everything read-only first (one shootdown): a shared page must never
         * be writable, not even for a moment. */
        err = paging_protect(&vs->pt, addr, len, leaf_flags(prot, false), CACHE_WB);
        kassert(!err, "vm: protect [%#llx, +%#llx) failed: %s", (unsigned long long)addr,
                (unsigned long long)len, paging_strerror(err));
        if (prot & VM_WRITE) {
            /* then the pages this space owns alone become writable: more
             * rights need no shootdown (a stale entry faults, and the fault
             * finds the page writable: resolved) */
            for (vaddr_t va = addr; va < addr + len; va += PAGE_SIZE) {
                struct paging_mapping m;
                if (!paging_query(&vs->pt, va, &m) || frameref_extra(m.phys & ~(paddr_t)(PAGE_SIZE - 1)))
                    continue;
                err = paging_map_in(&vs->pt, m.phys & ~(paddr_t)(PAGE_SIZE - 1), va, PAGE_SIZE,
                                    leaf_flags(prot, true), CACHE_WB, PAGING_REPLACE);
                kassert(!err, "vm: remap of %#llx failed", (unsigned long long)va);
            }
        }
    }
    spin_unlock(&vs->lock);
    spares_put(&sp);
    return err;
}

bool vm_region_at(struct vm_space *vs, vaddr_t addr, struct vm_region *out)
{
    spin_lock(&vs->lock);
    struct vm_region *r = vmr_find(&vs->regions, addr);
    if (r)
        *out = *r;
    spin_unlock(&vs->lock);
    return r != NULL;
}

static int count_leaf(void *ctx, const struct pagewalk_leaf *leaf)
{
    (void)leaf;
    (*(uint64_t *)ctx)++;
    return 0;
}

void vm_for_each_region(struct vm_space *vs,
                        void (*fn)(void *ctx, const struct vm_region *r, uint64_t resident),
                        void *ctx)
{
    spin_lock(&vs->lock);
    for (struct vm_region *r = vmr_first(&vs->regions); r; r = vmr_next(&vs->regions, r)) {
        uint64_t n = 0;
        pagewalk_leaves_in(&vs->pt, r->start, r->end - 1, count_leaf, &n);
        fn(ctx, r, n);
    }
    spin_unlock(&vs->lock);
}

void vm_for_each_space(void (*fn)(void *ctx, struct vm_space *vs), void *ctx)
{
    spin_lock(&vm_list_lock);
    struct list_node *n;
    list_for_each(n, &vm_list)
        fn(ctx, list_entry(n, struct vm_space, link));
    spin_unlock(&vm_list_lock);
}

struct vm_space *vm_space_by_id(uint32_t id)
{
    struct vm_space *found = NULL;
    spin_lock(&vm_list_lock);
    struct list_node *n;
    list_for_each(n, &vm_list) {
        struct vm_space *vs = list_entry(n, struct vm_space, link);
        if (vs->id == id)
            found = vs;
    }
    spin_unlock(&vm_list_lock);
    return found;
}

void vm_get_stats(struct vm_stats *out)
{
    spin_lock(&vm_list_lock);
    out->spaces = vm_spaces;
    spin_unlock(&vm_list_lock);
    out->faults = __atomic_load_n(&vm_faults, __ATOMIC_RELAXED);
    out->resolved = __atomic_load_n(&vm_resolved, __ATOMIC_RELAXED);
    out->shared_frames = frameref_shared_frames();
    out->ref_bytes = frameref_metadata_bytes();
}

/* ---- fork -------------------------------------------------------------------------- */

/* The parent's page at va (frame f, region rights prot) into the child:
 * shared read-only, or copied when its count is full. 0 or -ENOMEM. */
static int fork_page(struct vm_space *child, vaddr_t va, paddr_t f, uint32_t prot)
{
    paddr_t mine = f;
    bool own = false;
    if (!frameref_share(f)) {
        mine = frame_alloc();
        if (!mine)
            return -ENOMEM;
        memcpy(PHYS2VIRT(mine), PHYS2VIRT(f), PAGE_SIZE);
        own = true;
    }
    if (paging_map_in(&child->pt, mine, va, PAGE_SIZE, leaf_flags(prot, own), CACHE_WB, 0)) {
        frame_put(mine);
        return -ENOMEM;
    }
    child->resident++;
    return 0;
}

/* Every resident page of the parent's region r into the child, a batch at
 * a time (the walk holds the parent's page-table lock; the child's is taken
 * after it, never inside it). 0 or -ENOMEM. */
static int fork_region(struct vm_space *src, struct vm_space *child, const struct vm_region *r)
{
    for (vaddr_t at = r->start; at < r->end;) {
        struct batch b = {.first = at, .next = r->end, .n = 0};
        if (!pagewalk_leaves_in(&src->pt, at, r->end - 1, batch_leaf, &b))
            b.next = r->end;
        for (unsigned i = 0; i < b.n; i++) {
            int err = fork_page(child, b.va[i], b.frame[i], r->prot);
            if (err)
                return err;
        }
        at = b.next;
    }
    return 0;
}

int vm_fork(struct vm_space *src, const char *name, struct vm_space **out)
{
    struct vm_space *child;
    int err = vm_space_create(name, &child);
    if (err)
        return err;
    spin_lock(&src->lock);
    for (struct vm_region *r = vmr_first(&src->regions); r && !err; r = vmr_next(&src->regions, r)) {
        struct vmr_spare sp = {{kmalloc(sizeof(struct vm_region)), NULL}};
        if (!sp.n[0]) {
            err = -ENOMEM;
            break;
        }
        err = vmr_insert(&child->regions, r, &sp);
        kfree(sp.n[0]);
        kassert(!err, "vm: fork: region [%#llx, %#llx) refused: %d", (unsigned long long)r->start,
                (unsigned long long)r->end, err);
        /* the parent's pages read-only first (one shootdown per region):
         * nothing may write to a frame once the child maps it */
        if (r->prot & VM_WRITE) {
            int perr = paging_protect(&src->pt, r->start, r->end - r->start,
                                      leaf_flags(r->prot, false), CACHE_WB);
            kassert(!perr, "vm: fork: protect failed: %s", paging_strerror(perr));
        }
        err = fork_region(src, child, r);
    }
    spin_unlock(&src->lock);
    if (err) {
        vm_space_destroy(child); /* gives the shares back: src as it was */
        return err;
    }
    *out = child;
    return 0;
}

/* ---- the fault handler -------------------------------------------------------------- */

const char *vm_fault_name(enum vm_fault_result r)
{
    switch (r) {
    case VM_FAULT_RESOLVED: return "resolved";
    case VM_FAULT_NOREGION: return "no region";
    case VM_FAULT_GUARD: return "stack guard gap";
    case VM_FAULT_ACCESS: return "access not allowed by the region";
    case VM_FAULT_OOM: return "out of memory";
    }
    return "?";
}

/* The region for a fault at addr: the one containing it, or a stack above it
 * grown down to addr's page. NULL with *why set when there is none. */
static struct vm_region *fault_region(struct vm_space *vs, vaddr_t addr,
                                      enum vm_fault_result *why)
{
    struct vm_region *r = vmr_find(&vs->regions, addr);
    if (r)
        return r;
    *why = VM_FAULT_NOREGION;
    struct vm_region *s = vmr_lookup_from(&vs->regions, addr);
    if (!s || s->kind != VMR_STACK || !s->grow_floor)
        return NULL;
    vaddr_t page = ALIGN_DOWN(addr, PAGE_SIZE);
    if (page + VM_STACK_GAP < s->grow_floor)
        return NULL; /* far below: not this stack's business */
    *why = VM_FAULT_GUARD;
    if (page < s->grow_floor)
        return NULL; /* in the gap below the floor */
    struct vm_region *prev = vmr_prev(&vs->regions, s);
    if (prev && page < prev->end + VM_STACK_GAP)
        return NULL; /* growing would close the gap above the region below */
    if (vmr_grow_down(&vs->regions, s, page))
        return NULL;
    return s;
}

/* Fills the page at va of region r (not mapped yet) with a fresh frame. */
static enum vm_fault_result fill_page(struct vm_space *vs, struct vm_region *r, vaddr_t va)
{
    paddr_t f;
    if (r->kind == VMR_IMAGE) {
        f = frame_alloc();
        if (!f)
            return VM_FAULT_OOM;
        uint8_t *p = PHYS2VIRT(f);
        uint64_t at = r->image_off + (va - r->start), n = 0;
        if (at < r->image->len)
            n = MIN((uint64_t)PAGE_SIZE, r->image->len - at);
        memcpy(p, r->image->data + at, n);
        memset(p + n, 0, PAGE_SIZE - n);
        vs->image_faults++;
    } else {
        f = frame_alloc_zeroed();
        if (!f)
            return VM_FAULT_OOM;
        vs->zero_faults++;
    }
    if (paging_map_in(&vs->pt, f, va, PAGE_SIZE, leaf_flags(r->prot, true), CACHE_WB, 0)) {
        frame_free(f);
        return VM_FAULT_OOM;
    }
    vs->resident++;
    return VM_FAULT_RESOLVED;
}

/* A write to the present read-only page at va (mapping m) of a writable
 * region: the frame back writable when no one else shares it, else a copy. */
static enum vm_fault_result cow_page(struct vm_space *vs, struct vm_region *r, vaddr_t va,
                                     const struct paging_mapping *m)
{
    paddr_t old = m->phys & ~(paddr_t)(PAGE_SIZE - 1);
    if (!frameref_extra(old)) {
        int err = paging_map_in(&vs->pt, old, va, PAGE_SIZE, leaf_flags(r->prot, true), CACHE_WB,
                                PAGING_REPLACE);
        if (err)
            return VM_FAULT_OOM;
        vs->cow_reuses++;
        return VM_FAULT_RESOLVED;
    }
    paddr_t f = frame_alloc();
    if (!f)
        return VM_FAULT_OOM;
    memcpy(PHYS2VIRT(f), PHYS2VIRT(old), PAGE_SIZE);
    if (paging_map_in(&vs->pt, f, va, PAGE_SIZE, leaf_flags(r->prot, true), CACHE_WB,
                      PAGING_REPLACE)) {
        frame_free(f);
        return VM_FAULT_OOM;
    }
    /* the old page is out of this space's tables (and TLBs): drop its share;
     * when the other sharers went meanwhile, it was the last one */
    frame_put(old);
    vs->cow_copies++;
    return VM_FAULT_RESOLVED;
}

/* A present leaf that denies what its region allows (never left so by vm;
 * a fault there must not repeat for ever): given the region's rights again. */
static enum vm_fault_result refresh_leaf(struct vm_space *vs, struct vm_region *r, vaddr_t va,
                                         const struct paging_mapping *m)
{
    paddr_t f = m->phys & ~(paddr_t)(PAGE_SIZE - 1);
    if (paging_map_in(&vs->pt, f, va, PAGE_SIZE, leaf_flags(r->prot, !frameref_extra(f)), CACHE_WB,
                      PAGING_REPLACE))
        return VM_FAULT_OOM;
    return VM_FAULT_RESOLVED;
}

enum vm_fault_result vm_fault(struct vm_space *vs, vaddr_t addr, uint32_t access)
{
    __atomic_fetch_add(&vm_faults, 1, __ATOMIC_RELAXED);
    if (addr < VM_USER_MIN || addr >= VM_USER_MAX)
        return VM_FAULT_NOREGION;
    vaddr_t va = ALIGN_DOWN(addr, PAGE_SIZE);
    spin_lock(&vs->lock);
    enum vm_fault_result res = VM_FAULT_RESOLVED;
    struct vm_region *r = fault_region(vs, addr, &res);
    if (!r)
        goto out;
    /* a present x86 page is readable: write or execute rights imply read */
    uint32_t allowed = r->prot | ((r->prot & (VM_WRITE | VM_EXEC)) ? VM_READ : 0);
    if (!(allowed & access)) {
        res = VM_FAULT_ACCESS;
        goto out;
    }
    struct paging_mapping m;
    if (!paging_query(&vs->pt, va, &m))
        res = fill_page(vs, r, va);
    else if (access == VM_WRITE && !(m.flags & PAGE_WRITABLE))
        res = cow_page(vs, r, va, &m);
    else if (!(m.flags & PAGE_USER) || (access == VM_EXEC && (m.flags & PAGE_NX)))
        res = refresh_leaf(vs, r, va, &m);
    /* else: present with the rights asked for (another CPU filled it, or
     * this CPU's TLB was stale; the fault dropped that entry): retry */
out:
    spin_unlock(&vs->lock);
    if (res == VM_FAULT_RESOLVED)
        __atomic_fetch_add(&vm_resolved, 1, __ATOMIC_RELAXED);
    return res;
}

/* ---- loading ------------------------------------------------------------------------ */

void vm_activate(struct vm_space *vs)
{
    unsigned me = cpu_index();
    paging_activate(vs ? &vs->pt : &kernel_as);
    vm_cur[me] = vs;
}

struct vm_space *vm_current(void)
{
    return vm_cur[cpu_index()];
}

/* ---- checks ------------------------------------------------------------------------- */

struct check_walk {
    struct vm_space *vs;
    uint64_t leaves;
    bool ok;
};

static int check_leaf(void *ctx, const struct pagewalk_leaf *leaf)
{
    struct check_walk *w = ctx;
    w->leaves++;
    struct vm_region *r = vmr_find(&w->vs->regions, leaf->virt);
    const char *bad = NULL;
    if (!r)
        bad = "outside every region";
    else if (leaf->size != PAGE_SIZE)
        bad = "not a 4 KiB page";
    else if ((leaf->flags & PAGE_WRITABLE) && (!(r->prot & VM_WRITE) || frameref_extra(leaf->phys)))
        bad = "writable beyond its region or while shared";
    else if (!(leaf->flags & PAGE_NX) != !!(r->prot & VM_EXEC))
        bad = "execute right differs from its region";
    else if (!(leaf->flags & PAGE_USER) != !(r->prot & VM_PROT_MASK))
        bad = "user bit differs from its region";
    if (bad) {
        kprintf("vm_check: space %u: page %#llx -> %#llx (flags %#llx) %s\n", w->vs->id,
                (unsigned long long)leaf->virt, (unsigned long long)leaf->phys,
                (unsigned long long)leaf->flags, bad);
        w->ok = false;
        return 1;
    }
    return 0;
}

bool vm_check(struct vm_space *vs)
{
    spin_lock(&vs->lock);
    struct check_walk w = {.vs = vs, .leaves = 0, .ok = vmr_check(&vs->regions)};
    if (w.ok)
        pagewalk_leaves_in(&vs->pt, 0, PAGING_USER_TOP - 1, check_leaf, &w);
    if (w.ok && w.leaves != vs->resident) {
        kprintf("vm_check: space %u: %llu pages mapped, resident count %llu\n", vs->id,
                (unsigned long long)w.leaves, (unsigned long long)vs->resident);
        w.ok = false;
    }
    spin_unlock(&vs->lock);
    return w.ok;
}
