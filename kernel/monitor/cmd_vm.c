/* Monitor commands about virtual memory: walk and vmmap. vmmap without an
 * argument visits the kernel's page tables (mm/pagewalk.h) and coalesces
 * leaves that continue each other into ranges; `vmmap <id>` shows the
 * regions of user address space id (cmd_as.c), `vmmap pid <n>` those of
 * process n's space (cmd_proc.c). */
#include "lib/printf.h"
#include "lib/string.h"
#include "mm/mapper.h"
#include "mm/mm.h"
#include "mm/pagewalk.h"
#include "mm/paging.h"
#include "monitor/commands.h"
#include "monitor/parse.h"

extern char __text_start[], __text_end[], __rodata_start[], __rodata_end[];
extern char __data_start[], __data_end[];

void cmd_walk(int argc, char **argv)
{
    (void)argc;
    uint64_t va;
    if (!parse_u64(argv[1], &va)) {
        monitor_error("walk", "'%s' is not an address", argv[1]);
        return;
    }
    paging_walk_print(va);
}

/* A run of mapped pages with the same effective attributes. */
struct vm_range {
    vaddr_t start, end; /* end exclusive; start == end: none yet */
    paddr_t phys;
    uint64_t flags;     /* effective PAGE_WRITABLE | PAGE_USER | PAGE_NX | PAGE_GLOBAL */
    unsigned cache;
    uint64_t pages[3];  /* leaves by size: 4K, 2M, 1G */
};

struct vm_walk {
    struct vm_range cur;
    uint64_t ranges, mapped;
};

static const char *region_name(vaddr_t va)
{
    if (va >= (vaddr_t)__text_start && va < (vaddr_t)__text_end)
        return "kernel text";
    if (va >= (vaddr_t)__rodata_start && va < (vaddr_t)__rodata_end)
        return "kernel rodata";
    if (va >= (vaddr_t)__data_start && va < (vaddr_t)__data_end)
        return "kernel data+bss";
    if (va >= MAPPER_STACK_BASE && va < MAPPER_STACK_END)
        return "kernel stacks";
    if (va >= MAPPER_FB_BASE && va < MAPPER_STACK_BASE)
        return "framebuffer";
    if (va >= hhdm_offset && va - hhdm_offset < hhdm_size)
        return "direct map (HHDM)";
    return "";
}

static void range_print(struct vm_walk *w)
{
    struct vm_range *r = &w->cur;
    if (r->start == r->end)
        return;
    char size[24], pages[48];
    monitor_size_str(size, sizeof(size), r->end - r->start);
    int n = 0;
    static const char *const pnames[3] = {"4K", "2M", "1G"};
    pages[0] = '\0';
    for (int i = 2; i >= 0; i--)
        if (r->pages[i] && n < (int)sizeof(pages))
            n += ksnprintf(pages + n, sizeof(pages) - (size_t)n, "%s%llux%s", n ? "+" : "",
                           (unsigned long long)r->pages[i], pnames[i]);
    kprintf("  %016llx-%016llx %10s -> 0x%010llx %s%s%s%s %-3s %-14s %s\n",
            (unsigned long long)r->start, (unsigned long long)r->end, size,
            (unsigned long long)r->phys, (r->flags & PAGE_WRITABLE) ? "w" : "r",
            (r->flags & PAGE_NX) ? "-" : "x", (r->flags & PAGE_USER) ? "u" : "s",
            (r->flags & PAGE_GLOBAL) ? "g" : "-",
            paging_cache_name((enum cache_mode)r->cache), pages, region_name(r->start));
    w->ranges++;
}

/* Joins a leaf to the current range, or prints that range and starts anew. */
static void leaf(void *ctx, const struct pagewalk_leaf *l)
{
    struct vm_walk *w = ctx;
    struct vm_range *r = &w->cur;
    bool continues = r->start != r->end && r->end == l->virt && r->flags == l->flags &&
                     r->cache == l->cache && r->phys + (r->end - r->start) == l->phys &&
                     region_name(r->start) == region_name(l->virt);
    if (!continues) {
        range_print(w);
        *r = (struct vm_range){.start = l->virt, .end = l->virt, .phys = l->phys, .flags = l->flags,
                               .cache = l->cache};
    }
    r->end = l->virt + l->size;
    r->pages[l->level - 1]++;
    w->mapped += l->size;
}

void cmd_vmmap(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "pid") == 0) {
        cmd_vmmap_pid(argv[2]); /* a process's address space (cmd_proc.c) */
        return;
    }
    if (argc == 3) {
        kprintf("vmmap: usage: vmmap [id | pid <n>]\n");
        return;
    }
    if (argc == 2) {
        cmd_vmmap_space(argv[1]); /* a user address space by its id (cmd_as.c) */
        return;
    }
    static struct vm_walk w;
    w = (struct vm_walk){0};
    kprintf("kernel address space (PML4 at %#llx); flags r/w, x/-, s/u, g/-:\n",
            (unsigned long long)kernel_as.pml4);
    kprintf("  %-33s %10s    %-11s %-4s %-3s %-14s %s\n", "virtual range", "size", "phys", "flgs",
            "mem", "pages", "what");
    pagewalk_leaves(&kernel_as, leaf, &w);
    range_print(&w);
    char total[24];
    kprintf("  %llu ranges, %s mapped\n", (unsigned long long)w.ranges,
            monitor_size_str(total, sizeof(total), w.mapped));
}
