/* The heap's runs of frames and what owns an address.
 *
 * Every tier takes its memory here (heap_frames, heap_slab_frames) and gives
 * it back here. Slabs and medium chunks start SLAB_SIZE-aligned; large runs
 * start on any frame (aligned only as their block needs). Invariants:
 *   - pages_held is the sum of the frames of every run held;
 *   - a frame's bit in the granule table (heap_internal.h) is set exactly
 *     while a heap run owns that frame; a granule's entry names a slab
 *     exactly while a slab starts there, with its class and carved count;
 *   - nothing in front of a non-slab pointer is read before heap_owns() says
 *     the heap owns it (big_header), so a pointer the heap never gave gets a
 *     misuse report, never a page fault;
 *   - the released ring remembers the last RELEASED_RING runs given back, so
 *     a kfree into one says "double free" (believed only when the heap does
 *     not own that memory again).
 * Locking: runs_lock (rank LOCK_RANK_HEAP_RUNS, taken inside any class,
 * segment or large lock) protects pages_held, the frame bits and slab kinds
 * of the table (read without it: heap_internal.h) and the released ring.
 * Everything here but slab_of/big_header runs off the fast paths. */
#include "mm/heap_internal.h"

struct spinlock runs_lock = SPINLOCK_INIT("heap-runs", LOCK_RANK_HEAP_RUNS);
uint64_t pages_held;
uint32_t *granule_tab;
uint64_t granule_count;

/* Sets (held) or clears the owned bits of the frames [p, p + count frames)
 * (runs_lock held). In a slab's granule they are its upper half's frames
 * that belong to other runs. Atomic: the carved count shares the word. */
static void granule_mark(paddr_t p, size_t count, bool held)
{
    paddr_t end = p + count * PAGE_SIZE;
    for (uint64_t g = p / SLAB_SIZE; g <= (end - 1) / SLAB_SIZE; g++) {
        uint64_t lo = MAX(p, g * SLAB_SIZE) / PAGE_SIZE % SLAB_FRAMES;
        uint64_t hi = (MIN(end, (g + 1) * SLAB_SIZE) - 1) / PAGE_SIZE % SLAB_FRAMES;
        uint32_t m = (uint32_t)(((2u << hi) - 1) & ~((1u << lo) - 1)), bits;
        uint32_t e = __atomic_load_n(&granule_tab[g], __ATOMIC_RELAXED);
        if (e & GT_CLS) {
            kassert((e & GT_HALF) && !(m & 0xffu), "heap: run %#llx overlaps a slab",
                    (unsigned long long)p);
            bits = (m >> 8) << GT_UPPER_SHIFT;
        } else {
            bits = m << GT_FRAMES_SHIFT;
        }
        if (held)
            __atomic_fetch_or(&granule_tab[g], bits, __ATOMIC_RELEASE);
        else
            __atomic_fetch_and(&granule_tab[g], ~bits, __ATOMIC_RELEASE);
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

/* Frames for the heap. */
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

/* Gives frames back; they are no longer marked owned. */
void heap_frames_free(paddr_t p, size_t count)
{
    heap_lock(&runs_lock);
    granule_mark(p, count, false);
    frame_free_contig(p, count);
    pages_held -= count;
    heap_unlock(&runs_lock);
}

paddr_t heap_slab_frames(size_t frames)
{
    return heap_frames(frames, SLAB_SIZE);
}

/* The granule's frame bits become a slab entry: its own frames implied by
 * the kind, the upper half's frames of other runs kept. */
void slab_publish(paddr_t p, unsigned cls, bool half)
{
    heap_lock(&runs_lock);
    uint32_t e = __atomic_load_n(&granule_tab[p / SLAB_SIZE], __ATOMIC_RELAXED);
    kassert(!(e & GT_CLS), "heap: granule %#llx is a slab already", (unsigned long long)p);
    uint32_t upper = (e >> (GT_FRAMES_SHIFT + 8)) & 0xffu; /* other runs' frames 8..15 */
    __atomic_store_n(&granule_tab[p / SLAB_SIZE],
                     (cls + 1) | (half ? GT_HALF | (upper << GT_UPPER_SHIFT) : 0),
                     __ATOMIC_RELEASE);
    heap_unlock(&runs_lock);
}

/* The slab entry becomes plain frame bits again (the other runs' upper
 * frames kept), then the slab's frames go back. */
void slab_frames_free(paddr_t p, size_t frames)
{
    heap_lock(&runs_lock);
    uint32_t e = __atomic_load_n(&granule_tab[p / SLAB_SIZE], __ATOMIC_RELAXED);
    __atomic_store_n(&granule_tab[p / SLAB_SIZE], granule_frames(e) << GT_FRAMES_SHIFT,
                     __ATOMIC_RELEASE);
    granule_mark(p, frames, false);
    frame_free_contig(p, frames);
    pages_held -= frames;
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

/* ptr lies in a slab whose header does not match the granule table. */
static SLOW NORETURN void slab_header_panic(const char *op, const void *ptr, const void *s)
{
    panic("heap: %s(%p): not a pointer the heap gave, or its header was overwritten (slab %p: "
          "bad header)",
          op, USER(ptr), s);
}

struct slab *slab_of(void *ptr, const char *op)
{
    uintptr_t phys = (uintptr_t)ptr - hhdm_offset;
    if (unlikely(phys >= hhdm_size))
        outside_panic(op, ptr);
    if (unlikely(!frame_owned(phys)))
        not_held_panic(op, ptr);
    uint32_t e = granule_entry(phys / SLAB_SIZE);
    if (granule_cls(e) >= HEAP_SMALL_CLASSES || !granule_in_slab(e, phys))
        return NULL;
    struct slab *s = slab_hdr_at((uintptr_t)ptr - (phys & (SLAB_SIZE - 1)), e);
    if (unlikely(s->magic != (uintptr_t)s + SLAB_MAGIC || s->cls != granule_cls(e)))
        slab_header_panic(op, ptr, s);
    return s;
}

/* Exact per frame, thanks to the table's frame bits. */
bool heap_holds(uintptr_t v)
{
    uintptr_t phys = v - hhdm_offset;
    return phys < hhdm_size && frame_owned(phys);
}

void runs_init(void)
{
    struct frame_stats fs;
    frame_get_stats(&fs);
    granule_count = (fs.total_frames + SLAB_FRAMES - 1) / SLAB_FRAMES;
    size_t map_frames = (granule_count * sizeof(uint32_t) + PAGE_SIZE - 1) / PAGE_SIZE;
    paddr_t map = frame_alloc_contig(map_frames, PAGE_SIZE);
    kassert(map, "no memory for the heap's granule table (%zu frames)", map_frames);
    granule_tab = PHYS2VIRT(map);
    memset(granule_tab, 0, map_frames * PAGE_SIZE);
    pages_held = 0;
    spin_init(&runs_lock, "heap-runs", LOCK_RANK_HEAP_RUNS);
    memset(released, 0, sizeof(released));
    released_next = 0;
}
