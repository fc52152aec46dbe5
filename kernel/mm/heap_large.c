/* The large tier: size > HEAP_MEDIUM_MAX, or alignment > PAGE_SIZE.
 *
 * Each block is a run of frames of its own (from heap_runs.c) with a 64-byte
 * header right before the pointer. Invariants:
 *   - the header's magic is LARGE_MAGIC ^ its address, and its last 16 bytes
 *     are a sealed segment header flagged SEG_USED | SEG_LARGE with size 0,
 *     so kfree tells a large block from a segment by the same 16 bytes;
 *   - the whole header lies in the run (large_of checks heap_owns first);
 *   - the run starts SLAB_SIZE-aligned even when the block is aligned more:
 *     only whole leading granules are given back, up to 15 frames stay;
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
    /* Runs start SLAB_SIZE-aligned so that slab_of() on the pointer reads
     * memory of this run (mapped), never whatever lies below it. */
    uint64_t off, pages, run_align = SLAB_SIZE, lead = 0;
    if (!HEAP_REDZONES)
        prefix = 0;
    if (align <= PAGE_SIZE) { /* header and pointer in the first frame */
        off = ALIGN_UP(sizeof(struct large) + prefix, align) - prefix;
    } else { /* pointer + prefix at base + align; the frames before it are mostly given back */
        run_align = MAX(align, SLAB_SIZE);
        lead = align / PAGE_SIZE - 1;
        off = PAGE_SIZE - prefix;
    }
    pages = lead + ALIGN_UP(off + size, PAGE_SIZE) / PAGE_SIZE;
    paddr_t base = heap_frames(pages, run_align);
    if (!base)
        return NULL;
    if (lead) {
        /* Give back the leading frames, but only whole granules: the run must
         * still start SLAB_SIZE-aligned (no other run may share a granule with
         * it, see granule_map), so up to 15 frames before the header stay. */
        paddr_t keep = ALIGN_DOWN(base + lead * PAGE_SIZE, SLAB_SIZE);
        uint64_t drop = (keep - base) / PAGE_SIZE;
        if (drop) {
            heap_frames_free(base, drop);
            base = keep;
            pages -= drop;
        }
        off += (lead - drop) * PAGE_SIZE;
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
