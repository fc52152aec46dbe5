/* Monitor commands about physical memory and the heap: mem, memmap, frames,
 * heap, alloc, free. */
#include "lib/printf.h"
#include "mm/frame.h"
#include "mm/heap.h"
#include "mm/memmap.h"
#include "mm/mm.h"
#include "mm/paging.h"
#include "monitor/commands.h"
#include "monitor/parse.h"

/* One "name  N KiB  (human)" line. */
static void mem_line(const char *name, uint64_t bytes, const char *note)
{
    char h[24];
    kprintf("  %-12s %12llu KiB  %10s%s%s\n", name, (unsigned long long)(bytes / 1024),
            monitor_size_str(h, sizeof(h), bytes), note[0] ? "  " : "", note);
}

void cmd_mem(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    struct frame_stats fs;
    frame_get_stats(&fs);
    uint64_t used = fs.usable_frames - fs.free_frames;
    kprintf("memory (4 KiB frames):\n");
    mem_line("usable", fs.usable_frames * PAGE_SIZE, "managed by the frame allocator");
    mem_line("free", fs.free_frames * PAGE_SIZE, "");
    mem_line("used", used * PAGE_SIZE, "kernel data, page tables, heap, stacks");
    mem_line("reserved", fs.reserved_frames * PAGE_SIZE, "firmware, ACPI, kernel image, framebuffer");
    mem_line("reclaimable", fs.reclaimable_frames * PAGE_SIZE, "bootloader memory not yet given back");
    mem_line("reclaimed", fs.reclaimed_frames * PAGE_SIZE, "bootloader memory given back");
    mem_line("page-tables", paging_table_pages() * PAGE_SIZE, "");
    mem_line("bitmap", fs.metadata_bytes, "frame bitmap and summary");
}

void cmd_memmap(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    /* mm_memmap is the sanitized copy the allocators were built from. */
    memmap_print(mm_memmap, mm_memmap_count);
}

/* Frames from `base` on: runs of used and free ones. */
static void frames_range(paddr_t base, uint64_t count)
{
    kprintf("frames 0x%llx..0x%llx (%llu frames):\n", (unsigned long long)base,
            (unsigned long long)(base + count * PAGE_SIZE - 1), (unsigned long long)count);
    uint64_t i = 0, used_total = 0;
    while (i < count) {
        bool used = frame_is_used(base + i * PAGE_SIZE);
        uint64_t j = i + 1;
        while (j < count && frame_is_used(base + j * PAGE_SIZE) == used)
            j++;
        kprintf("  0x%016llx..0x%016llx %8llu %s\n", (unsigned long long)(base + i * PAGE_SIZE),
                (unsigned long long)(base + j * PAGE_SIZE - 1), (unsigned long long)(j - i),
                used ? "used" : "free");
        if (used)
            used_total += j - i;
        i = j;
    }
    kprintf("  %llu used, %llu free\n", (unsigned long long)used_total,
            (unsigned long long)(count - used_total));
}

#define FRAMES_MAX_COUNT (1ULL << 24) /* 64 GiB worth: keeps one command short */

void cmd_frames(int argc, char **argv)
{
    if (argc == 1) {
        struct frame_stats fs;
        frame_get_stats(&fs);
        kprintf("frame allocator:\n");
        kprintf("  total        %12llu frames (physical 0 to the last usable frame)\n",
                (unsigned long long)fs.total_frames);
        kprintf("  usable       %12llu\n", (unsigned long long)fs.usable_frames);
        kprintf("  free         %12llu\n", (unsigned long long)fs.free_frames);
        kprintf("  used         %12llu\n", (unsigned long long)(fs.usable_frames - fs.free_frames));
        kprintf("  reserved     %12llu\n", (unsigned long long)fs.reserved_frames);
        kprintf("  reclaimable  %12llu\n", (unsigned long long)fs.reclaimable_frames);
        kprintf("  reclaimed    %12llu\n", (unsigned long long)fs.reclaimed_frames);
        kprintf("  metadata     %12llu bytes\n", (unsigned long long)fs.metadata_bytes);
        kprintf("  consistent   %12s\n", frame_check() ? "yes" : "NO");
        return;
    }
    uint64_t phys, count = 1;
    if (!parse_u64(argv[1], &phys)) {
        monitor_error("frames", "'%s' is not a number", argv[1]);
        return;
    }
    if (argc == 3 && (!parse_u64(argv[2], &count) || count == 0 || count > FRAMES_MAX_COUNT)) {
        monitor_error("frames", "count must be 1..%llu", (unsigned long long)FRAMES_MAX_COUNT);
        return;
    }
    paddr_t base = ALIGN_DOWN(phys, PAGE_SIZE);
    if (base > (1ULL << 52) || count > ((1ULL << 52) - base) / PAGE_SIZE) {
        monitor_error("frames", "range beyond the 52-bit physical address space");
        return;
    }
    frames_range(base, count);
}

void cmd_heap(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    static struct heap_stats hs; /* large: keep it off the stack */
    heap_get_stats(&hs);
    char h[24];
    kprintf("heap:\n");
    kprintf("  in use       %12llu bytes  %s\n", (unsigned long long)hs.bytes_in_use,
            monitor_size_str(h, sizeof(h), hs.bytes_in_use));
    kprintf("  free         %12llu bytes  %s\n", (unsigned long long)hs.bytes_free,
            monitor_size_str(h, sizeof(h), hs.bytes_free));
    kprintf("  pages        %12llu        %s\n", (unsigned long long)hs.pages_held,
            monitor_size_str(h, sizeof(h), hs.pages_held * PAGE_SIZE));
    kprintf("  live blocks  %12llu (%llu allocs, %llu frees)\n", (unsigned long long)hs.live_blocks,
            (unsigned long long)hs.alloc_count, (unsigned long long)hs.free_count);
    kprintf("  slabs %llu, medium chunks %llu, large blocks %llu\n",
            (unsigned long long)hs.small_slabs, (unsigned long long)hs.medium_chunks,
            (unsigned long long)hs.large_blocks);
    kprintf("  large blocks: %llu frames held, address range spanned %s\n",
            (unsigned long long)hs.large_pages, monitor_size_str(h, sizeof(h), hs.large_span));
    kprintf("  size classes in use (size: live / allocs, slabs):\n");
    int shown = 0;
    for (int i = 0; i < HEAP_SMALL_CLASSES; i++) {
        if (!hs.cls[i].allocs && !hs.cls[i].slabs)
            continue;
        kprintf("    %5u B: %llu / %llu, %llu\n", hs.cls[i].size, (unsigned long long)hs.cls[i].live,
                (unsigned long long)hs.cls[i].allocs, (unsigned long long)hs.cls[i].slabs);
        shown++;
    }
    if (!shown)
        kprintf("    (none used yet)\n");
}

void cmd_alloc(int argc, char **argv)
{
    (void)argc;
    uint64_t size;
    if (!parse_size(argv[1], &size) || size == 0) {
        monitor_error("alloc", "'%s' is not a size > 0 (e.g. 100, 0x40, 4K, 2M)", argv[1]);
        return;
    }
    if (size > HEAP_MAX_ALLOC) {
        monitor_error("alloc", "%llu bytes is above the heap's limit", (unsigned long long)size);
        return;
    }
    void *p = kmalloc((size_t)size);
    if (!p) {
        monitor_error("alloc", "kmalloc(%llu) failed: out of memory", (unsigned long long)size);
        return;
    }
    kprintf("alloc: %llu bytes at %p (usable %zu)\n", (unsigned long long)size, p,
            kmalloc_usable_size(p));
}

void cmd_free(int argc, char **argv)
{
    (void)argc;
    uint64_t addr;
    if (!parse_u64(argv[1], &addr)) {
        monitor_error("free", "'%s' is not an address", argv[1]);
        return;
    }
    const void *p = (const void *)(uintptr_t)addr;
    const char *why = heap_validate_ptr(p);
    if (why) {
        monitor_error("free", "%p: %s; not freed", p, why);
        return;
    }
    kfree((void *)(uintptr_t)addr);
    kprintf("free: %p freed\n", p);
}
