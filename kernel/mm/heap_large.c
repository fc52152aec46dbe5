/* The large tier: size > HEAP_MEDIUM_MAX, or alignment > PAGE_SIZE.
 *
 * Each block is a run of frames of its own (from heap_runs.c) with a 64-byte
 * header right before the pointer. Invariants:
 *   - the header's magic is LARGE_MAGIC ^ its address, and its last 16 bytes
 *     are a sealed segment header flagged SEG_USED | SEG_LARGE with size 0,
 *     so kfree tells a large block from a segment by the same 16 bytes;
 *   - the whole header lies in the run (large_of checks heap_owns first);
 *   - the run is aligned only as the block needs: page-aligned, exactly
 *     ceil((header + size) / PAGE_SIZE) frames for alignments up to
 *     PAGE_SIZE; for a larger alignment the frames in front of the header's
 *     frame are given back, so the run is one frame more than that. The
 *     granule table's per-frame bits say which frames are whose, so a run
 *     may share a granule with other runs or lie in a half slab's upper half;
 *   - every live block is on `larges`; l_count, l_pages and l_bytes are
 *     their count, frames and usable bytes.
 * Alignments above PAGE_SIZE are of the physical address (equal to the
 * virtual one when the HHDM offset is at least that aligned).
 * Locking: large_lock (rank LOCK_RANK_HEAP_LARGE) protects `larges` and the
 * counters; heap.c takes it around each call into this file. A block's
 * header is written once, when the block is made, and read by kfree. */
#include "mm/heap_internal.h"

struct spinlock large_lock = SPINLOCK_INIT("heap-large", LOCK_RANK_HEAP_LARGE);
struct list_node larges;
uint64_t l_count, l_pages, l_bytes, l_allocs, l_frees;

/* A large block of `size` bytes whose pointer plus `prefix` is aligned to
 * `align` (prefix < 4096 - 64). */
void *large_alloc(size_t size, size_t align, uint32_t prefix)
{
    uint64_t off, pages, lead = 0;
    if (!HEAP_REDZONES)
        prefix = 0;
    if (align <= PAGE_SIZE) { /* header and pointer in the first frame */
        off = ALIGN_UP(sizeof(struct large) + prefix, align) - prefix;
    } else { /* pointer + prefix at base + align; the frames before its header's go back */
        lead = align / PAGE_SIZE - 1;
        off = PAGE_SIZE - prefix;
    }
    pages = lead + ALIGN_UP(off + size, PAGE_SIZE) / PAGE_SIZE;
    paddr_t base = heap_frames(pages, MAX(align, (uint64_t)PAGE_SIZE));
    if (!base)
        return NULL;
    if (lead) {
        heap_frames_free(base, lead);
        base += lead * PAGE_SIZE;
        pages -= lead;
    }
    char *p = (char *)PHYS2VIRT(base) + off;
    struct large *l = (struct large *)p - 1;
    l->magic = LARGE_MAGIC ^ (uintptr_t)l;
    l->base = base;
    l->pages = pages;
    seg_write(&l->tag, 0, 0, SEG_USED | SEG_LARGE);
    list_push(&larges, &l->link);
    l_count++;
    l_pages += pages;
    l_bytes += pages * PAGE_SIZE - off;
    l_allocs++;
    return p;
}

uint64_t large_usable(const struct large *l)
{
    return l->pages * PAGE_SIZE - (uint64_t)((const char *)(l + 1) - (const char *)PHYS2VIRT(l->base));
}

struct large *large_of(struct seg *tag, const void *ptr, const char *op)
{
    struct large *l = (struct large *)ptr - 1;
    /* a tag that claims a large block has its whole header in the same run */
    if (unlikely(!heap_owns((uintptr_t)l - hhdm_offset, sizeof(*l))))
        panic("heap: %s(%p): not a pointer the heap gave, or its header was overwritten", op,
              USER(ptr));
    if (unlikely(l->magic != (LARGE_MAGIC ^ (uintptr_t)l) || tag->size != 0))
        panic("heap: %s(%p): corrupted large-block header", op, USER(ptr));
    return l;
}

void large_free(struct large *l)
{
    list_remove(&l->link);
    l_count--;
    l_pages -= l->pages;
    l_bytes -= large_usable(l);
    l_frees++;
    released_note(PHYS2VIRT(l->base), l->pages * PAGE_SIZE, l + 1);
    l->magic = 0;
    l->tag.magic = 0;
    heap_frames_free(l->base, l->pages);
}

void large_init(void)
{
    spin_init(&large_lock, "heap-large", LOCK_RANK_HEAP_LARGE);
    list_init(&larges);
    l_count = l_pages = l_bytes = l_allocs = l_frees = 0;
}
