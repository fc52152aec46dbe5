/* The medium (segment) tier: HEAP_SMALL_MAX < size <= HEAP_MEDIUM_MAX with
 * alignment up to PAGE_SIZE.
 *
 * Segments live in 256 KiB chunks (runs from heap_runs.c, SLAB_SIZE-aligned).
 * A segment is a 16-byte header {size, prev_size, magic, flags} and its
 * payload. Invariants:
 *   - the segments of a chunk tile it exactly, from the SEG_FIRST one after
 *     the chunk header to the SEG_END sentinel; each header's prev_size is
 *     its predecessor's size (boundary tags), so both neighbours are found
 *     in O(1);
 *   - a header's magic checksums its address and its other three fields
 *     (seg_magic), so an overflow that rewrites any part of it is noticed;
 *   - no two free segments are adjacent (a freed segment merges with both
 *     neighbours at once); an absorbed header becomes a tombstone so that a
 *     second kfree of it still says "double free";
 *   - every free segment is on exactly the free list seg_list_index(size)
 *     names (8 lists per power of two), and bit (f, s) of fl_map/sl_map is
 *     set exactly when list f * SL_N + s is not empty: finding a fit is a few
 *     bit scans, O(1);
 *   - at most one wholly free chunk is kept (m_empty_chunks <= 1).
 * Free payload holds poison (HEAP_POISON) except the list links.
 * Locking: seg_lock (rank LOCK_RANK_HEAP_SEGMENT) protects everything here:
 * the free lists and their bitmaps, the chunk list, the counters, and every
 * segment header (a free changes its neighbours' headers); heap.c takes it
 * around each call into this file. */
#include "mm/heap_internal.h"

struct spinlock seg_lock = SPINLOCK_INIT("heap-segment", LOCK_RANK_HEAP_SEGMENT);
struct list_node mfree[FL_N * SL_N];
uint32_t fl_map;
uint8_t sl_map[FL_N];
struct list_node mchunks;
uint64_t m_nchunks, m_empty_chunks;
uint64_t m_used_bytes;
uint64_t m_free_bytes;
uint64_t m_allocs, m_frees;

unsigned seg_list_index(uint32_t size)
{
    unsigned fl = 31 - (unsigned)__builtin_clz(size);
    unsigned sl = (size >> (fl - SL_BITS)) & (SL_N - 1);
    return (fl - FL_MIN) * SL_N + sl;
}

static void seg_insert(struct seg *h)
{
    struct free_seg *f = (struct free_seg *)h;
    unsigned idx = seg_list_index(h->size);
    list_push(&mfree[idx], &f->link);
    sl_map[idx / SL_N] |= (uint8_t)(1u << (idx % SL_N));
    fl_map |= 1u << (idx / SL_N);
    m_free_bytes += h->size;
}

static void seg_remove(struct seg *h)
{
    struct free_seg *f = (struct free_seg *)h;
    unsigned idx = seg_list_index(h->size);
    list_remove(&f->link);
    if (list_empty(&mfree[idx])) {
        sl_map[idx / SL_N] &= (uint8_t) ~(1u << (idx % SL_N));
        if (!sl_map[idx / SL_N])
            fl_map &= ~(1u << (idx / SL_N));
    }
    m_free_bytes -= h->size;
    if ((h->flags & SEG_FIRST) && h->size == MCHUNK_SPACE)
        m_empty_chunks--;
}

/* A free segment of at least `need` bytes, or NULL. */
static struct seg *seg_find(uint32_t need)
{
    /* the head of need's own list often fits: a closer fit than the next list */
    const struct list_node *own = &mfree[seg_list_index(need)];
    if (!list_empty(own)) {
        struct free_seg *head = list_entry(own->next, struct free_seg, link);
        if (head->h.size >= need)
            return &head->h;
    }
    unsigned fl = 31 - (unsigned)__builtin_clz(need);
    uint32_t r = need + (1u << (fl - SL_BITS)) - 1; /* every segment in r's list fits */
    unsigned idx = seg_list_index(r);
    unsigned f = idx / SL_N;
    if (f >= FL_N)
        return NULL;
    uint32_t m = sl_map[f] & (0xffu << (idx % SL_N));
    if (!m) {
        uint32_t fm = fl_map & (~0u << (f + 1));
        if (!fm)
            return NULL;
        f = (unsigned)__builtin_ctz(fm);
        m = sl_map[f];
    }
    return &list_entry(mfree[f * SL_N + (unsigned)__builtin_ctz(m)].next, struct free_seg, link)->h;
}

void seg_write(struct seg *h, uint32_t size, uint32_t prev_size, uint32_t flags)
{
    h->size = size;
    h->prev_size = prev_size;
    h->flags = flags;
    h->magic = seg_magic(h);
}

/* Marks an absorbed header so that a later kfree of it reports a double free. */
static void seg_tombstone(struct seg *h)
{
#if HEAP_POISON
    memset(h, POISON_FREE, sizeof(struct free_seg)); /* header and stale links */
#endif
    h->magic = tomb_magic(h);
}

static struct mchunk *mchunk_new(void)
{
    /* SLAB_SIZE-aligned, so that a chunk fills whole granules and never
     * shares one with a slab (the granule table would cope: it tracks frames). */
    paddr_t phys = heap_frames(MCHUNK_FRAMES, SLAB_SIZE);
    if (!phys)
        return NULL;
    struct mchunk *ch = PHYS2VIRT(phys);
    ch->magic = MCHUNK_MAGIC ^ (uintptr_t)ch;
    list_push(&mchunks, &ch->link);
    m_nchunks++;
    struct seg *first = (struct seg *)(ch + 1);
    poison(first, MCHUNK_SPACE);
    seg_write(first, MCHUNK_SPACE, 0, SEG_FIRST);
    seg_write(seg_next(first), 0, MCHUNK_SPACE, SEG_END | SEG_USED);
    seg_insert(first);
    m_empty_chunks++;
    return ch;
}

static void mchunk_release(struct mchunk *ch)
{
    released_note(ch, MCHUNK_SIZE, NULL);
    struct seg *first = (struct seg *)(ch + 1);
    seg_remove(first);
    first->magic = 0;
    list_remove(&ch->link);
    ch->magic = 0;
    m_nchunks--;
    heap_frames_free(VIRT2PHYS(ch), MCHUNK_FRAMES);
}

/* Splits a used segment h so that it keeps `keep` bytes; the rest (if it can
 * form a segment) becomes free, merged with a free successor. `dirty`: the
 * rest held user data (poison it); otherwise it is free memory already. */
static void seg_shrink(struct seg *h, uint32_t keep, bool dirty)
{
    uint32_t rest = h->size - keep;
    if (rest < SEG_MIN)
        return;
    struct seg *next = seg_next(h);
    h->size = keep;
    seg_seal(h);
    m_used_bytes -= rest;
    struct seg *r = seg_next(h);
    if (dirty)
        poison(r, rest);
    if (!(next->flags & SEG_USED)) {
        seg_remove(next);
        rest += next->size;
        seg_tombstone(next);
    }
    seg_write(r, rest, keep, 0);
    seg_next(r)->prev_size = rest;
    seg_seal(seg_next(r));
    seg_insert(r);
}

/* Takes `need` bytes out of free segment h; the payload plus `prefix` bytes
 * is aligned to `align`. */
static void *seg_take(struct seg *h, uint32_t need, uint32_t align, uint32_t prefix)
{
    if (!HEAP_REDZONES)
        prefix = 0; /* a constant for the compiler: only redzones use it */
    seg_remove(h);
    uintptr_t payload = (uintptr_t)(h + 1);
    uintptr_t want = ALIGN_UP(payload + prefix, align) - prefix;
    uint32_t lead = (uint32_t)(want - payload);
    if (lead && lead < SEG_MIN)
        lead += align;
    if (lead) { /* leading fragment stays free; its predecessor is used */
        uint32_t total = h->size;
        uint32_t flags = h->flags & SEG_FIRST;
        h->size = lead;
        h->flags = flags;
        seg_seal(h);
        struct seg *n = seg_next(h);
        seg_write(n, total - lead, lead, 0);
        seg_next(n)->prev_size = total - lead; /* unchanged, but resealed for clarity */
        seg_seal(seg_next(n));
        seg_insert(h);
        h = n;
    }
    h->flags |= SEG_USED;
    seg_seal(h);
    m_used_bytes += h->size;
    seg_shrink(h, need, false);
#if HEAP_POISON
    /* what is handed out must still be poison, except the free-list links
     * (first 16 bytes unless a leading fragment was cut) and tombstones */
    const unsigned char *b = (const unsigned char *)(h + 1);
    size_t end = h->size - SEG_HDR, bad = seg_poison_bad(b, lead ? 0 : 16, end);
    if (bad != end)
        panic("heap: use after free: free memory at %p modified", (const void *)(b + bad));
#endif
    return h + 1;
}

void *medium_alloc(size_t size, size_t align, uint32_t prefix)
{
    uint32_t need = (uint32_t)ALIGN_UP(size + SEG_HDR, 16);
    if (need < SEG_MIN)
        need = SEG_MIN;
    uint32_t search = align <= 16 ? need : need + (uint32_t)align + SEG_MIN;
    struct seg *h = seg_find(search);
    if (!h) {
        if (!mchunk_new())
            return NULL;
        h = seg_find(search);
        kassert(h != NULL, "heap: fresh chunk does not fit %u bytes", search);
    }
    void *p = seg_take(h, need, align <= 16 ? 16 : (uint32_t)align, prefix);
    m_allocs++;
    return p;
}

/* Checks that h's neighbours are intact segment headers; panics naming ptr. */
static void seg_check_neighbours(struct seg *h, const void *ptr)
{
    struct seg *next = seg_next(h);
    if (unlikely(next->magic != seg_magic(next) ||
                 (!(next->flags & SEG_END) && next->size < SEG_MIN) || next->prev_size != h->size))
        panic("heap: corrupted segment header at %p after block %p (overflow?)", (void *)next,
              USER(ptr));
    if (!(h->flags & SEG_FIRST)) {
        struct seg *prev = (struct seg *)((char *)h - h->prev_size);
        if (unlikely(h->prev_size < SEG_MIN || prev->magic != seg_magic(prev) ||
                     prev->size != h->prev_size))
            panic("heap: corrupted segment header at %p before block %p (overflow?)", (void *)prev,
                  USER(ptr));
    }
}

void medium_free(struct seg *h, void *ptr)
{
    seg_check_neighbours(h, ptr);
    rz_check(ptr, h->size - SEG_HDR, "kfree");
    m_used_bytes -= h->size;
    m_frees++;
    poison(ptr, h->size - SEG_HDR);
    h->flags &= ~SEG_USED;
    seg_seal(h);
    struct seg *next = seg_next(h);
    if (!(next->flags & SEG_USED)) {
        seg_remove(next);
        h->size += next->size;
        seg_seal(h);
        seg_tombstone(next);
    }
    if (!(h->flags & SEG_FIRST)) {
        struct seg *prev = (struct seg *)((char *)h - h->prev_size);
        if (!(prev->flags & SEG_USED)) {
            seg_remove(prev);
            prev->size += h->size;
            seg_seal(prev);
            seg_tombstone(h);
            h = prev;
        }
    }
    seg_next(h)->prev_size = h->size;
    seg_seal(seg_next(h));
    seg_insert(h);
    if ((h->flags & SEG_FIRST) && h->size == MCHUNK_SPACE) {
        if (m_empty_chunks++ > 0) /* one wholly free chunk stays cached */
            mchunk_release((struct mchunk *)h - 1);
    }
}

bool medium_resize(struct seg *h, void *ptr, size_t size)
{
    uint32_t need = (uint32_t)ALIGN_UP(size + SEG_HDR, 16);
    if (need < SEG_MIN)
        need = SEG_MIN;
    if (need <= h->size) {
        seg_check_neighbours(h, ptr);
        seg_shrink(h, need, true);
        return true;
    }
    struct seg *next = seg_next(h);
    if (!(next->flags & SEG_USED) && h->size + next->size >= need) {
        seg_check_neighbours(h, ptr);
        seg_remove(next); /* absorb the free successor, then give back the excess */
        h->size += next->size;
        seg_seal(h);
        m_used_bytes += next->size;
        seg_tombstone(next);
        seg_next(h)->prev_size = h->size;
        seg_seal(seg_next(h));
        seg_shrink(h, need, false);
        return true;
    }
    return false;
}

void medium_init(void)
{
    spin_init(&seg_lock, "heap-segment", LOCK_RANK_HEAP_SEGMENT);
    for (unsigned i = 0; i < FL_N * SL_N; i++)
        list_init(&mfree[i]);
    memset(sl_map, 0, sizeof(sl_map));
    fl_map = 0;
    list_init(&mchunks);
    m_nchunks = m_empty_chunks = m_used_bytes = m_free_bytes = m_allocs = m_frees = 0;
}

void medium_trim(void)
{
    struct mchunk *ch, *next;
    list_for_each_entry_safe(ch, next, &mchunks, link) {
        struct seg *first = (struct seg *)(ch + 1);
        if (!(first->flags & SEG_USED) && first->size == MCHUNK_SPACE)
            mchunk_release(ch);
    }
}
