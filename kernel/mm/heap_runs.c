/* The heap's runs of frames and what owns an address.
 *
 * Every tier takes its memory here (heap_frames) as runs that start
 * SLAB_SIZE-aligned, and gives it back here (heap_frames_free). Invariants:
 *   - pages_held is the sum of the frames of every run held;
 *   - a granule's bit in granule_map is set exactly while a run overlaps it,
 *     and its granule_extent nibble says how many of its frames the run owns;
 *   - nothing in front of a non-slab pointer is read before heap_owns() says
 *     the heap owns it (big_header), so a pointer the heap never gave gets a
 *     misuse report, never a page fault;
 *   - the released ring remembers the last RELEASED_RING runs given back, so
 *     a kfree into one says "double free" (believed only when the heap does
 *     not hold that memory again).
 * Locking: runs_lock (rank LOCK_RANK_HEAP_RUNS, taken inside any class,
 * segment or large lock) protects pages_held, the writes to granule_map and
 * granule_extent (read without it: heap_internal.h) and the released ring.
 * Everything here but slab_of/big_header runs off the fast paths. */
#include "mm/heap_internal.h"

struct spinlock runs_lock = SPINLOCK_INIT("heap-runs", LOCK_RANK_HEAP_RUNS);
uint64_t pages_held;
uint64_t *granule_map;
uint8_t *granule_extent;
uint64_t granule_count;

/* Sets (held) or clears the bits of every granule [p, p + count frames)
 * overlaps (p is granule-aligned: every heap run is), and records how much
 * of each the run owns. */
static void granule_mark(paddr_t p, size_t count, bool held)
{
    paddr_t end = p + count * PAGE_SIZE;
    for (uint64_t g = p / SLAB_SIZE; g <= (end - 1) / SLAB_SIZE; g++) {
        if (held) {
            uint64_t owned = (MIN(end, (g + 1) * SLAB_SIZE) - g * SLAB_SIZE) / PAGE_SIZE;
            __atomic_store_n(&granule_extent[g / 2],
                             (uint8_t)((granule_extent[g / 2] & (0xf0u >> (4 * (g % 2)))) |
                                       ((owned - 1) << (4 * (g % 2)))),
                             __ATOMIC_RELAXED);
            __atomic_store_n(&granule_map[g / 64], granule_map[g / 64] | (1ULL << (g % 64)),
                             __ATOMIC_RELEASE);
        } else {
            __atomic_store_n(&granule_map[g / 64], granule_map[g / 64] & ~(1ULL << (g % 64)),
                             __ATOMIC_RELAXED);
        }
    }
}

/* ---- released runs: a kfree into memory the heap already gave back ------------------------ */

/* The last runs of frames the heap returned (slabs, chunks, large blocks), so
 * that a kfree of a block whose memory is gone (the header is zeroed, or
 * poisoned by the frame allocator) still says "double free". Written once
 * per release, read only when a pointer has no valid header (and then only
 * believed when the heap does not hold that memory again). */
#define RELEASED_RING 32
static struct {
    uintptr_t start, end; /* virtual range of the run */
    uintptr_t block;      /* the large block's inner pointer, or 0 */
} released[RELEASED_RING];
static unsigned released_next;

void released_note(const void *start, size_t bytes, const void *block)
{
    heap_lock(&runs_lock);
    unsigned i = released_next++ % RELEASED_RING;
    released[i].start = (uintptr_t)start;
    released[i].end = (uintptr_t)start + bytes;
    released[i].block = (uintptr_t)block;
    heap_unlock(&runs_lock);
}


/* Panics when ptr (an inner pointer in the HHDM without a valid header) lies
 * in a run the heap released recently and has not taken again. */
static void released_panic(const void *ptr, const char *op)
{
    uintptr_t v = (uintptr_t)ptr;
    heap_unlock_all(); /* a panic follows: nothing has changed, nothing stays locked */
    if (heap_holds(v))
        return;
    heap_lock(&runs_lock);
    unsigned found = RELEASED_RING;
    for (unsigned n = 1; n <= RELEASED_RING && found == RELEASED_RING; n++) {
        unsigned i = (released_next - n) % RELEASED_RING; /* newest first: runs get reused */
        if (v >= released[i].start && v < released[i].end)
            found = i;
    }
    heap_unlock(&runs_lock);
    if (found < RELEASED_RING) {
        if (v == released[found].block)
            panic("heap: double free of %p (a large block, its frames already returned)", USER(ptr));
        panic("heap: %s(%p): double free or stale pointer (its memory was already returned to the "
              "frame allocator)",
              op, USER(ptr));
    }
}

/* Frames for the heap; on exhaustion give back cached memory and try again. */
paddr_t heap_frames(size_t count, uint64_t align)
{
    heap_lock(&runs_lock);
    paddr_t p = frame_alloc_contig(count, align);
    if (p) {
        pages_held += count;
        granule_mark(p, count, true);
    }
    heap_unlock(&runs_lock);
    return p;
}

/* Gives frames back. The granules they overlap are no longer held: the caller
 * re-marks a granule it still holds part of (large_alloc's leading frames). */
void heap_frames_free(paddr_t p, size_t count)
{
    heap_lock(&runs_lock);
    granule_mark(p, count, false);
    frame_free_contig(p, count);
    pages_held -= count;
    heap_unlock(&runs_lock);
}

/* ptr has no valid header before it: a merged (tombstoned) block, memory the
 * heap released, or not a block at all. */
static SLOW NORETURN void bad_header_panic(const struct seg *h, const void *ptr, const char *op)
{
    if (h->magic == tomb_magic(h))
        panic("heap: double free of %p (block already merged into free memory)", USER(ptr));
    released_panic(ptr, op);
    panic("heap: %s(%p): not a pointer the heap gave, or its header was overwritten", op,
          USER(ptr));
}

/* ptr is in the direct map but in no granule the heap holds. */
SLOW NORETURN void not_held_panic(const char *op, const void *ptr)
{
    released_panic(ptr, op); /* memory the heap gave back: say "double free" */
    panic("heap: %s(%p): not a pointer the heap gave (no heap memory there)", op, USER(ptr));
}

/* The 16 bytes before ptr are not the heap's: ptr lies outside every run
 * too (in a run's unowned tail), or starts a run, where no block starts. */
static SLOW NORETURN void no_header_panic(const char *op, const void *ptr)
{
    if (!heap_owns((uintptr_t)ptr - hhdm_offset, 1))
        not_held_panic(op, ptr);
    panic("heap: %s(%p): not a pointer the heap gave (no block starts at a run's first byte)", op,
          USER(ptr));
}

/* The segment or large header of a non-slab pointer; panics when there is none. */
struct seg *big_header(void *ptr, const char *op)
{
    uintptr_t phys = (uintptr_t)ptr - hhdm_offset;
    if (unlikely(((uintptr_t)ptr & 15) || phys < PAGE_SIZE))
        panic("heap: %s(%p): not a pointer the heap gave", op, USER(ptr));
    /* The header's page may lie outside the heap's runs (and be unmapped):
     * before a granule the heap does not hold, or in the unowned tail of a
     * held one (a half slab, a large run ending mid-granule), e.g. when ptr
     * is the start of a granule or lies in or just after such a tail. */
    if (unlikely(!heap_owns(phys - sizeof(struct seg), sizeof(struct seg))))
        no_header_panic(op, ptr);
    struct seg *h = (struct seg *)ptr - 1;
    if (unlikely(h->magic != seg_magic(h)))
        bad_header_panic(h, ptr, op);
    if (unlikely(!(h->flags & SEG_USED)))
        panic("heap: double free of %p", USER(ptr));
    if (unlikely(h->flags & SEG_END))
        panic("heap: %s(%p): not a pointer the heap gave", op, USER(ptr));
    return h;
}

SLOW NORETURN void outside_panic(const char *op, const void *ptr)
{
    panic("heap: %s(%p): not a heap address (outside the direct map)", op, USER(ptr));
}

struct slab *slab_of(void *ptr, const char *op)
{
    uintptr_t phys = (uintptr_t)ptr - hhdm_offset;
    if (unlikely(phys >= hhdm_size))
        outside_panic(op, ptr);
    if (unlikely(!granule_held(phys)))
        not_held_panic(op, ptr);
    struct slab *s = (struct slab *)((uintptr_t)ptr - (phys & (SLAB_SIZE - 1)));
    return likely(granule_word(s) == (uintptr_t)s + SLAB_MAGIC) ? s : NULL;
}

/* True when v (in the HHDM) lies in a run the heap holds now: a slab, a
 * medium chunk or a large block. O(chunks + large blocks); panic paths only. */
bool heap_holds(uintptr_t v)
{
    uintptr_t phys = v - hhdm_offset;
    if (phys >= hhdm_size || !granule_held(phys))
        return false;
    const struct slab *s = (const struct slab *)(v - (phys & (SLAB_SIZE - 1)));
    caches_lock_all();
    const struct heap_class *c = slab_class(s);
    caches_unlock_all();
    if (c)
        return v < (uintptr_t)s + (uintptr_t)c->frames * PAGE_SIZE;
    bool in_chunk = false;
    heap_lock(&seg_lock);
    const struct mchunk *ch;
    list_for_each_entry(ch, &mchunks, link)
        if ((uintptr_t)s >= (uintptr_t)ch && (uintptr_t)s < (uintptr_t)ch + MCHUNK_SIZE)
            in_chunk = true;
    heap_unlock(&seg_lock);
    if (in_chunk)
        return true;
    bool held = true; /* a held granule that is no chunk or run: a slab whose header was smashed */
    heap_lock(&large_lock);
    const struct large *l;
    list_for_each_entry(l, &larges, link) {
        uintptr_t start = (uintptr_t)PHYS2VIRT(l->base), end = start + l->pages * PAGE_SIZE;
        if ((uintptr_t)s >= start && (uintptr_t)s < end) { /* the run's granule: v may be past its end */
            held = v < end;
            break;
        }
    }
    heap_unlock(&large_lock);
    return held;
}

/* Medium or large; the pointer plus `prefix` is aligned to `align`. */

void runs_init(void)
{
    struct frame_stats fs;
    frame_get_stats(&fs);
    granule_count = (fs.total_frames + SLAB_FRAMES - 1) / SLAB_FRAMES;
    /* the bitmap (1 bit per granule), then the extents (4 bits per granule) */
    size_t bitmap_bytes = (size_t)(ALIGN_UP(granule_count, 64) / 8);
    size_t map_frames = (bitmap_bytes * 5 + PAGE_SIZE - 1) / PAGE_SIZE;
    paddr_t map = frame_alloc_contig(map_frames, PAGE_SIZE);
    kassert(map, "no memory for the heap's granule map (%zu frames)", map_frames);
    granule_map = PHYS2VIRT(map);
    granule_extent = (uint8_t *)granule_map + bitmap_bytes;
    memset(granule_map, 0, map_frames * PAGE_SIZE);
    pages_held = 0;
    spin_init(&runs_lock, "heap-runs", LOCK_RANK_HEAP_RUNS);
    memset(released, 0, sizeof(released));
    released_next = 0;
}
