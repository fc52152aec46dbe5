/* Building the kernel's address space (layout: mm/mapper.h). Portable: the
 * inputs come as a struct mapper_layout, so the host tests build the same
 * tables the kernel loads.
 *
 * Locking: mapper_build works on an address space nobody else sees yet;
 * mapper_install runs once, on the bootstrap CPU, before any other CPU
 * starts. The stack window's cursor is shared by every CPU that asks for a
 * stack: stack_lock (plain, rank LOCK_RANK_MAPPER: outermost of the mm locks,
 * since a stack allocation maps pages in kernel_as and takes frames) is held
 * across the whole allocation, so a failed one can give its window back. */
#include "mm/mapper.h"

#include "arch/x86_64/mmu_ops.h"
#include "lib/printf.h"
#include "lib/spinlock.h"
#include "mm/frame.h"
#include "mm/mm.h"

#define KERNEL_SLOT_SIZE GiB(512) /* what one PML4 entry maps */

static void *fb_virt; /* set once by mapper_install */
static struct spinlock stack_lock = SPINLOCK_INIT("mapper-stacks", LOCK_RANK_MAPPER);
static vaddr_t stack_next = MAPPER_STACK_BASE; /* stack_lock: lowest unused stack-window address */
/* stack_lock: window space of freed thread stacks, for reuse (a stack's
 * base, its page count). Full, a freed stack's space is simply not reused. */
#define STACK_SLOTS 512
static struct { vaddr_t base; size_t pages; } stack_slots[STACK_SLOTS];
static unsigned stack_nslots;

/* "R-X" style summary of mapping flags. */
static const char *perm_name(uint64_t flags)
{
    bool w = flags & PAGE_WRITABLE, x = !(flags & PAGE_NX);
    return w ? (x ? "RWX" : "RW-") : (x ? "R-X" : "R--");
}

static void log_range(const char *what, vaddr_t va, uint64_t len, uint64_t flags,
                      enum cache_mode cm, paddr_t pa)
{
    klog("mm", "mapper: %-7s 0x%016llx-0x%016llx %8llu KiB %s %-3s <- phys %#llx", what,
         (unsigned long long)va, (unsigned long long)(va + len), (unsigned long long)(len >> 10),
         perm_name(flags), paging_cache_name(cm), (unsigned long long)pa);
}

/* Maps one piece; logs it when it worked. */
static int map_piece(struct addrspace *as, const char *what, paddr_t pa, vaddr_t va, uint64_t len,
                     uint64_t flags, enum cache_mode cm)
{
    if (len == 0)
        return 0;
    int err = paging_map_range(as, pa, va, len, flags, cm, PAGING_LARGE);
    if (err)
        kerr("mm", "mapper: %s at %#llx (+%#llx): %s", what, (unsigned long long)va,
             (unsigned long long)len, paging_strerror(err));
    else
        log_range(what, va, len, flags, cm, pa);
    return err;
}

/* Memory types the HHDM covers, with which cache mode and flags; false =
 * left out. The kernel image's alias is read-only: W^X holds for every
 * mapping of the kernel, not only at its link address. */
static bool hhdm_type(uint32_t type, enum cache_mode *cm, uint64_t *flags)
{
    *flags = PAGE_WRITABLE | PAGE_NX;
    switch (type) {
    case MEM_KERNEL:
        *flags = PAGE_NX;
        /* fall through */
    case MEM_USABLE:
    case MEM_BOOTLOADER_RECLAIMABLE:
    case MEM_ACPI_RECLAIMABLE:
    case MEM_ACPI_NVS:
        *cm = CACHE_WB;
        return true;
    case MEM_FRAMEBUFFER:
        *cm = CACHE_WC; /* the same memory type as the framebuffer window */
        return true;
    default:
        return false;
    }
}

static bool sections_ok(const struct mapper_layout *l)
{
    vaddr_t b[] = {l->text_start, l->text_end, l->rodata_start, l->rodata_end, l->data_start,
                   l->data_end};
    for (size_t k = 0; k < ARRAY_SIZE(b); k++)
        if (!IS_ALIGNED(b[k], PAGE_SIZE) || (k && b[k] < b[k - 1]))
            return false;
    return l->text_start >= l->kernel_virt && l->kernel_virt >= MAPPER_STACK_END &&
           l->text_end > l->text_start && IS_ALIGNED(l->kernel_phys, PAGE_SIZE);
}

/* The HHDM: ranges merged while adjacent and of the same cache mode. */
static int map_hhdm(struct addrspace *as, const struct mapper_layout *l, struct mapper_result *r)
{
    paddr_t start = 0, end = 0;
    enum cache_mode cur = CACHE_WB;
    uint64_t cur_flags = 0;
    for (size_t k = 0; k <= l->map_count; k++) {
        enum cache_mode cm = CACHE_WB;
        uint64_t flags = 0;
        bool want = k < l->map_count && hhdm_type(l->map[k].type, &cm, &flags);
        if (want && l->map[k].length == 0)
            continue;
        if (want && end > start && cm == cur && flags == cur_flags && l->map[k].base == end) {
            end += l->map[k].length;
            continue;
        }
        if (end > start) { /* flush the pending segment */
            if (l->hhdm_offset + end > MAPPER_HHDM_LIMIT || l->hhdm_offset + end < end) {
                kerr("mm", "mapper: HHDM would reach %#llx, past the limit",
                     (unsigned long long)(l->hhdm_offset + end));
                return -PAGING_EINVAL;
            }
            /* the HHDM's PML4 slots get their PDPTs once, like the windows */
            int err = paging_kernel_half_prepare(
                as, ALIGN_DOWN(l->hhdm_offset + start, KERNEL_SLOT_SIZE),
                ALIGN_UP(l->hhdm_offset + end, KERNEL_SLOT_SIZE));
            if (!err)
                err = map_piece(as, "hhdm", start, l->hhdm_offset + start, end - start,
                                cur_flags, cur);
            if (err)
                return err;
            r->hhdm_mapped += end - start;
            r->hhdm_size = end;
        }
        start = end = 0;
        if (want) {
            const struct mem_region *m = &l->map[k];
            if (!IS_ALIGNED(m->base | m->length, PAGE_SIZE) ||
                (k && m->base < l->map[k - 1].base + l->map[k - 1].length))
                return -PAGING_EINVAL; /* not sanitized */
            start = m->base;
            end = m->base + m->length;
            cur = cm;
            cur_flags = flags;
        }
    }
    return 0;
}

int mapper_build(struct addrspace *as, const struct mapper_layout *l, struct mapper_result *out)
{
    struct mapper_result r = {0};
    if (!sections_ok(l) || !IS_ALIGNED(l->hhdm_offset, PAGE_SIZE) ||
        l->hhdm_offset < 0xffff800000000000ULL || l->hhdm_offset >= MAPPER_HHDM_LIMIT) {
        kerr("mm", "mapper: inconsistent layout");
        return -PAGING_EINVAL;
    }
    int err = paging_as_create(as);
    if (err)
        return err;
    err = paging_kernel_half_prepare(as, MAPPER_WINDOWS_BASE, 0);
    if (err) {
        paging_as_destroy(as);
        return err;
    }

    paddr_t kp = l->kernel_phys;
    vaddr_t kv = l->kernel_virt;
    err = map_piece(as, "text", kp + (l->text_start - kv), l->text_start,
                    l->text_end - l->text_start, 0, CACHE_WB);
    if (!err)
        err = map_piece(as, "rodata", kp + (l->rodata_start - kv), l->rodata_start,
                        l->rodata_end - l->rodata_start, PAGE_NX, CACHE_WB);
    if (!err)
        err = map_piece(as, "data", kp + (l->data_start - kv), l->data_start,
                        l->data_end - l->data_start, PAGE_WRITABLE | PAGE_NX, CACHE_WB);
    if (!err)
        err = map_hhdm(as, l, &r);
    if (!err && l->fb_size) {
        paddr_t base = ALIGN_DOWN(l->fb_phys, PAGE_SIZE);
        paddr_t end = ALIGN_UP(l->fb_phys + l->fb_size, PAGE_SIZE);
        /* Same offset within 1 GiB as the physical address: large pages fit. */
        vaddr_t va = MAPPER_FB_BASE + (base & (GiB(1) - 1));
        if (end - base > MAPPER_STACK_BASE - va)
            err = -PAGING_EINVAL;
        else
            err = map_piece(as, "fb", base, va, end - base, PAGE_WRITABLE | PAGE_NX, CACHE_WC);
        r.fb_virt = va + (l->fb_phys - base);
    }
    if (err) {
        paging_as_destroy(as);
        return err;
    }
    r.table_pages = as->table_pages;
    klog("mm", "mapper: HHDM %llu MiB mapped of [0, %#llx); page tables: %llu pages (%llu KiB)",
         (unsigned long long)(r.hhdm_mapped >> 20), (unsigned long long)r.hhdm_size,
         (unsigned long long)r.table_pages, (unsigned long long)r.table_pages * 4);
    if (out)
        *out = r;
    return 0;
}

void mapper_install(struct addrspace *as, const struct mapper_result *r)
{
    paging_activate(as);
    /* A CR3 load keeps global TLB entries; the bootloader's may still be
     * cached (Limine enables CR4.PGE), translating through tables that are
     * about to be reclaimed. */
    arch_flush_tlb_all();
    kernel_as = *as;
    spin_init(&kernel_as.lock, "kernel_as", LOCK_RANK_PAGING); /* free: copied from a free lock */
    hhdm_size = r->hhdm_size;
    fb_virt = (void *)r->fb_virt;
}

void *mapper_framebuffer(void)
{
    return fb_virt;
}

/* Unmaps the stack pages [base, base + pages * 4 KiB) and frees their frames. */
static void stack_undo(vaddr_t base, size_t pages)
{
    for (size_t i = 0; i < pages; i++) {
        vaddr_t va = base + i * PAGE_SIZE;
        paddr_t f = paging_translate_in(&kernel_as, va);
        paging_unmap_in(&kernel_as, va, PAGE_SIZE_4K);
        frame_free(f);
    }
}

/* Maps fresh zeroed frames at [base, base + pages * 4 KiB); false (nothing
 * left mapped) when frames or tables ran out. */
static bool stack_map(vaddr_t base, size_t pages)
{
    for (size_t i = 0; i < pages; i++) {
        paddr_t f = frame_alloc_zeroed();
        int err = f ? paging_map_in(&kernel_as, f, base + i * PAGE_SIZE, PAGE_SIZE_4K,
                                    PAGE_WRITABLE | PAGE_NX, CACHE_WB, 0)
                    : -PAGING_ENOMEM;
        if (err) {
            if (f)
                frame_free(f);
            stack_undo(base, i);
            kwarn("mm", "mapper: no kernel stack of %zu pages: %s", pages, paging_strerror(err));
            return false;
        }
    }
    return true;
}

/* mapper_alloc_stack under stack_lock: maps the stack, moves the cursor. */
static vaddr_t mapper_alloc_stack_locked(size_t pages)
{
    vaddr_t base = stack_next + PAGE_SIZE; /* the guard page stays unmapped */
    if (pages == 0 || pages > (MAPPER_STACK_END - base) / PAGE_SIZE || !stack_map(base, pages))
        return 0;
    vaddr_t top = base + pages * PAGE_SIZE;
    stack_next = top; /* the next stack's guard sits right above this top */
    return top;
}

vaddr_t mapper_alloc_thread_stack(size_t pages)
{
    spin_lock(&stack_lock);
    vaddr_t top = 0;
    for (unsigned i = 0; i < stack_nslots; i++) {
        if (stack_slots[i].pages != pages)
            continue;
        vaddr_t base = stack_slots[i].base;
        if (stack_map(base, pages)) {
            stack_slots[i] = stack_slots[--stack_nslots];
            top = base + pages * PAGE_SIZE;
        }
        spin_unlock(&stack_lock);
        return top;
    }
    top = mapper_alloc_stack_locked(pages);
    spin_unlock(&stack_lock);
    return top;
}

void mapper_free_thread_stack(vaddr_t top, size_t pages)
{
    vaddr_t base = top - pages * PAGE_SIZE;
    spin_lock(&stack_lock);
    stack_undo(base, pages); /* kernel_as: the shootdown reaches every CPU */
    if (stack_nslots < STACK_SLOTS)
        stack_slots[stack_nslots++] = (typeof(stack_slots[0])){base, pages};
    spin_unlock(&stack_lock);
}

vaddr_t mapper_alloc_stack(size_t pages)
{
    spin_lock(&stack_lock);
    vaddr_t top = mapper_alloc_stack_locked(pages);
    spin_unlock(&stack_lock);
    if (top)
        klog("mm", "mapper: stack   0x%016llx-0x%016llx %8zu KiB RW- guard at %#llx",
             (unsigned long long)(top - pages * PAGE_SIZE), (unsigned long long)top, pages * 4,
             (unsigned long long)(top - pages * PAGE_SIZE - PAGE_SIZE));
    return top;
}
