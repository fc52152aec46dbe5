/* The kernel heap's public calls (mm/heap.h): kmalloc, kfree, krealloc,
 * kcalloc, kmalloc_aligned, kmalloc_usable_size, heap_init, heap_trim,
 * heap_get_stats. This file only dispatches to the tiers:
 *
 *   heap_slab.c     1..HEAP_SMALL_MAX bytes: size-class slabs and magazines
 *   heap_segment.c  up to HEAP_MEDIUM_MAX: boundary-tag segments in chunks
 *   heap_large.c    the rest, and alignments above PAGE_SIZE: frame runs
 *   heap_runs.c     where every run's frames come from; which run owns a pointer
 *   heap_redzone.c  redzones around every block (HEAP_REDZONES builds)
 *   heap_check.c    heap_validate_ptr and heap_check
 *   heap_internal.h what they share, with the slab fast paths inline
 *
 * Dispatch in kfree (the invariant it relies on, heap_internal.h): the
 * pointer's granule must lie in the granule table (which also refuses NULL
 * and anything outside the direct map); if its entry names a slab and the
 * pointer is inside it, it is a slab object (boundary and carved count from
 * the entry and the class); otherwise its frame must be one a heap run owns
 * and the 16 bytes before it must be a segment or large header whose magic
 * checksums its address and fields.
 * Every misuse (double or invalid free, an overwritten header, a damaged
 * redzone) panics naming the caller's pointer before anything changes.
 * docs/memory.md (heap section) has the design, docs/performance.md the costs.
 *
 * Locking (docs/memory.md): the small tier behind per-CPU magazines (a
 * byte lock per CPU, a lock per class: heap_slab.c), one lock for the medium
 * tier (seg_lock), one for the large tier (large_lock), one for the runs
 * (runs_lock), in the order of enum lock_rank. Out of memory, every tier
 * gives back what every CPU caches (heap_trim) and tries once more. */
#include "mm/heap_internal.h"

/* Medium or large; the pointer plus `prefix` is aligned to `align`. */
static void *big_alloc_once(size_t size, size_t align, uint32_t prefix)
{
    if (size <= HEAP_MEDIUM_MAX && align <= PAGE_SIZE) {
        heap_lock(&seg_lock);
        void *p = medium_alloc(size, align, prefix);
        heap_unlock(&seg_lock);
        return p;
    }
    heap_lock(&large_lock);
    void *p = large_alloc(size, align, prefix);
    heap_unlock(&large_lock);
    return p;
}

/* The same; out of memory, gives back every cache and tries once more. */
static void *big_alloc(size_t size, size_t align, uint32_t prefix)
{
    if (size > HEAP_MAX_ALLOC)
        return NULL;
    void *p = big_alloc_once(size, align, prefix);
    if (unlikely(!p) && heap_trim() > 0)
        p = big_alloc_once(size, align, prefix);
    return p;
}

/* The tiers' allocation: at least `size` bytes, 16-byte aligned (an inner block). */
static ALWAYS_INLINE void *heap_alloc(size_t size)
{
    if (likely(size - 1 < HEAP_SMALL_MAX))
        return cache_alloc(heap_fast.moff[(size - 1) >> 4]);
    if (size == 0)
        return NULL;
    return big_alloc(size, 16, 0);
}

/* A segment's header changes when a neighbour is freed, so it is read under
 * seg_lock; a large block's header only changes when it is freed. */
static void big_free(void *ptr)
{
    heap_lock(&seg_lock);
    struct seg *h = big_header(ptr, "kfree");
    if (h->flags & SEG_LARGE) {
        heap_unlock(&seg_lock);
        heap_lock(&large_lock);
        struct large *l = large_of(h, ptr, "kfree");
        rz_check(ptr, large_usable(l), "kfree");
        large_free(l);
        heap_unlock(&large_lock);
    } else {
        medium_free(h, ptr);
        heap_unlock(&seg_lock);
    }
}

/* Everything kfree's fast path does not handle: NULL and pointers outside
 * the direct map (heap_init makes sure NULL is one of those). */
static SLOW void kfree_slow(void *ptr)
{
    if (!USER(ptr))
        return;
    if ((uintptr_t)ptr - hhdm_offset >= hhdm_size)
        outside_panic("kfree", ptr);
    not_held_panic("kfree", ptr);
}

SLOW void kfree_not_slab(void *ptr)
{
    uintptr_t phys = (uintptr_t)ptr - hhdm_offset;
    if (phys >= hhdm_size) {
        kfree_slow(ptr);
        return;
    }
    if (unlikely(!frame_owned(phys)))
        not_held_panic("kfree", ptr);
    big_free(ptr);
}

/* The tiers' free of an inner pointer. The fast path is a leaf: every unusual
 * case leaves it by a tail call. It reads the granule table's entry (hot:
 * 16 entries per line), this CPU's cpu_mag of the entry's class (written
 * anyway by the push) and the object's free-tag word (the object's line,
 * written anyway), never the slab header. The checks: a granule inside the
 * table (which also rejects NULL and most of what lies outside the direct
 * map), a slab there, object boundary below the entry's carved count
 * (which also refuses a pointer past a half slab's end), and the free tag
 * (a double free is confirmed in slab_free_checked); then the redzones, if
 * any. */
static ALWAYS_INLINE void heap_free(void *ptr)
{
    uintptr_t phys = (uintptr_t)ptr - hhdm_offset;
    uint64_t g = phys / SLAB_SIZE;
    if (unlikely(g >= granule_count)) {
        kfree_slow(ptr);
        return;
    }
    uint32_t e = __atomic_load_n(&granule_tab[g], __ATOMIC_ACQUIRE);
    uint32_t c1 = e & GT_CLS; /* a slab's class + 1: its cpu_mag is at 64 * c1 */
    if (unlikely(!c1)) {
        kfree_not_slab(ptr);
        return;
    }
    struct cpu_mag *m = cpu_mag_at(heap_fast.cpu[cpu_index()], 64 * c1);
    uint64_t x = obj_index(phys & (SLAB_SIZE - 1), m->inv, m->shift); /* objects start at the granule */
    void **obj = ptr;
    if (unlikely(x >= granule_carved(e) ||
                 (uintptr_t)obj[1] == FREE_TAG)) {
        slab_free_checked(ptr);
        return;
    }
    rz_check(ptr, m->size, "kfree");
    cache_free(ptr, m);
}

/* Capacity of the inner block at ptr; panics (naming the caller's pointer)
 * when ptr is not a live block. */
static size_t block_cap(void *ptr, const char *op)
{
    struct slab *s = slab_of(ptr, op);
    if (s) {
        if (unlikely(slab_obj_index(s, ptr) >= slab_carved(s)))
            panic("heap: %s(%p): not a block start (in slab %p of %u-byte objects)", op, USER(ptr),
                  (void *)s, s->size);
        if (slab_obj_free(s, ptr))
            panic("heap: %s(%p): block is free", op, USER(ptr));
        return s->size;
    }
    heap_lock(&seg_lock);
    struct seg *h = big_header(ptr, op);
    size_t cap = (h->flags & SEG_LARGE) ? large_usable(large_of(h, ptr, op)) : h->size - SEG_HDR;
    heap_unlock(&seg_lock);
    return cap;
}

/* The tiers' resize of a live inner block (size in (0, HEAP_MAX_ALLOC]). */
static void *heap_realloc(void *ptr, size_t size)
{
    size_t old = block_cap(ptr, "krealloc"); /* validates ptr */
    struct slab *s = slab_of(ptr, "krealloc");
    if (s) {
        if (size <= old && size > old / 2)
            return ptr;
    } else {
        struct seg *h = (struct seg *)ptr - 1;
        heap_lock(&seg_lock);
        bool large = h->flags & SEG_LARGE;
        bool done = !large && size <= HEAP_MEDIUM_MAX && medium_resize(h, ptr, size);
        heap_unlock(&seg_lock);
        if (done || (large && size <= old && size > old / 2))
            return ptr;
    }
    void *n = heap_alloc(size);
    if (!n)
        return size <= old ? ptr : NULL; /* shrinking in place is still correct */
    memcpy(n, ptr, MIN(size, old));
    heap_free(ptr);
    return n;
}

#if HEAP_REDZONES
/* A block of `size` bytes with its redzones; align > 16 goes to the medium
 * or large tier, which can put inner + RZ_LEAD on the boundary. A power of
 * two up to HEAP_SMALL_MAX is aligned to itself, as its slab class is
 * without redzones (kmalloc(4096) is page-aligned in every build): no slab
 * object can hold the redzones around an aligned pointer, so such blocks
 * come from the medium tier here. */
static void *rz_alloc(size_t size, size_t align)
{
    if (size == 0 || size > HEAP_MAX_ALLOC)
        return NULL;
    if (align < size && size <= HEAP_SMALL_MAX && !(size & (size - 1)))
        align = size;
    size_t need = size + RZ_LEAD + RZ_TAIL;
    void *p = align <= 16 ? heap_alloc(need) : big_alloc(need, align, RZ_LEAD);
    if (!p)
        return NULL;
    rz_arm(p, size, block_cap(p, "kmalloc"));
    return USER(p);
}
#endif

void *kmalloc(size_t size)
{
#if HEAP_REDZONES
    return rz_alloc(size, 16);
#else
    return heap_alloc(size);
#endif
}

void kfree(void *ptr)
{
    heap_free(INNER(ptr));
}

void *kcalloc(size_t n, size_t size)
{
    size_t total;
    if (__builtin_mul_overflow(n, size, &total))
        return NULL;
    void *p = kmalloc(total);
    if (p)
        memset(p, 0, total);
    return p;
}

void *kmalloc_aligned(size_t size, size_t align)
{
    if (align == 0 || (align & (align - 1)) || align > GiB(1) || size == 0)
        return NULL;
#if HEAP_REDZONES
    return rz_alloc(size, align);
#else
    if (align <= 16)
        return kmalloc(size);
    if (size <= HEAP_SMALL_MAX && align <= HEAP_SMALL_MAX) {
        for (unsigned i = class_of[(size + 15) >> 4]; i < HEAP_SMALL_CLASSES; i++)
            if (classes[i].align >= align)
                return cache_alloc(CPU_MAG_OFF(i));
    }
    return big_alloc(size, align, 0);
#endif
}

size_t kmalloc_usable_size(void *ptr)
{
    void *inner = INNER(ptr);
    size_t cap = block_cap(inner, "kmalloc_usable_size");
#if HEAP_REDZONES
    rz_check(inner, cap, "kmalloc_usable_size");
    return rz_size(inner);
#else
    return cap;
#endif
}

void *krealloc(void *ptr, size_t size)
{
    if (!ptr)
        return kmalloc(size);
    if (size == 0) {
        kfree(ptr);
        return NULL;
    }
    if (size > HEAP_MAX_ALLOC)
        return NULL;
#if HEAP_REDZONES
    void *inner = INNER(ptr);
    rz_check(inner, block_cap(inner, "krealloc"), "krealloc");
    void *n = heap_realloc(inner, size + RZ_LEAD + RZ_TAIL);
    if (!n)
        return NULL;
    rz_arm(n, size, block_cap(n, "krealloc"));
    return USER(n);
#else
    return heap_realloc(ptr, size);
#endif
}

void heap_init(void)
{
    runs_init();
    slab_init();
    /* kfree sends NULL down its "outside the direct map" path */
    kassert(0 - hhdm_offset >= hhdm_size, "heap: NULL lies inside the direct map");
    medium_init();
    large_init();
}

size_t heap_trim(void)
{
    caches_lock_all();
    heap_lock(&runs_lock);
    uint64_t before = pages_held;
    heap_unlock(&runs_lock);
    slab_drain_locked();
    slab_release_empty_locked();
    caches_unlock_all();
    heap_lock(&seg_lock);
    medium_trim();
    heap_unlock(&seg_lock);
    heap_lock(&runs_lock);
    uint64_t after = pages_held;
    heap_unlock(&runs_lock);
    return before > after ? (size_t)(before - after) : 0;
}

void heap_drain_cpu_caches(void)
{
    caches_lock_all();
    slab_drain_locked();
    caches_unlock_all();
}

uint64_t heap_cpu_cached(unsigned cpu, uint64_t *bytes)
{
    uint64_t n = 0, b = 0;
    struct cpu_cache *pc = cpu < CPU_MAX ? cache_of(cpu) : NULL;
    for (unsigned i = 0; pc && i < HEAP_SMALL_CLASSES; i++) {
        struct cpu_mag *m = &pc->m[i];
        mag_lock(m);
        uint64_t k = (uint64_t)mag_loaded_n(m) + m->prev->n;
        mag_unlock(m, mag_top_l(m));
        n += k;
        b += k * m->size;
    }
    if (bytes)
        *bytes = b;
    return n;
}

void heap_get_stats(struct heap_stats *out)
{
    memset(out, 0, sizeof(*out));
    struct class_total t[HEAP_SMALL_CLASSES];
    caches_lock_all(); /* the small tier frozen: its numbers agree with each other */
    class_totals(t);
    for (unsigned i = 0; i < HEAP_SMALL_CLASSES; i++) {
        const struct heap_class *c = &classes[i];
        uint64_t live = class_used(c) - t[i].cached, allocs = t[i].allocs;
        out->cls[i].size = c->size;
        out->cls[i].live = live;
        out->cls[i].allocs = allocs;
        out->cls[i].slabs = c->nslabs;
        out->bytes_in_use += live * c->size;
        out->bytes_free += (c->nslabs * c->nobj - live) * c->size;
        out->alloc_count += allocs;
        out->free_count += allocs - live;
        out->small_slabs += c->nslabs;
    }
    caches_unlock_all();
    heap_lock(&seg_lock);
    heap_lock(&large_lock);
    heap_lock(&runs_lock);
    /* medium payloads: used segment bytes minus one header per live segment */
    out->bytes_in_use += m_used_bytes - (m_allocs - m_frees) * SEG_HDR + l_bytes;
    out->bytes_free += m_free_bytes;
    out->alloc_count += m_allocs + l_allocs;
    out->free_count += m_frees + l_frees;
    out->live_blocks = out->alloc_count - out->free_count;
    out->pages_held = pages_held;
    out->medium_chunks = m_nchunks;
    out->large_blocks = l_count;
    out->large_pages = l_pages;
    out->large_span = l_pages * PAGE_SIZE; /* each run is one contiguous range of its frames */
    heap_unlock(&runs_lock);
    heap_unlock(&large_lock);
    heap_unlock(&seg_lock);
}
