/* Validation and the consistency checker: heap_validate_ptr (the monitor's
 * `free <addr>`: never panics, never faults) and heap_check (every structure
 * of every tier against its invariants, stated at the top of heap_slab.c,
 * heap_segment.c, heap_large.c and heap_runs.c). Both only read, with every
 * tier frozen meanwhile (every CPU's magazine locks, then the segment, large
 * and runs locks), so they may run while other CPUs allocate; their cost
 * grows with the heap's size, so no fast path calls them. */
#include "mm/heap_internal.h"

static const char *validate_inner(const void *ptr);
static const char *validate_locked(const void *ptr);

const char *heap_validate_ptr(const void *ptr)
{
    if (!ptr)
        return "null pointer";
    const char *why = validate_inner(INNER(ptr));
#if HEAP_REDZONES
    static char rz_why[200]; /* the monitor prints it before the next call */
    if (!why) {
        void *inner = INNER(ptr);
        size_t cap;
        const struct slab *s = slab_of(inner, "heap_validate_ptr");
        if (s)
            cap = s->size;
        else if (((struct seg *)inner - 1)->flags & SEG_LARGE)
            cap = large_usable((struct large *)inner - 1);
        else
            cap = ((struct seg *)inner - 1)->size - SEG_HDR;
        if (!rz_intact(inner, cap, "heap_validate_ptr", rz_why, sizeof(rz_why)))
            return rz_why;
    }
#endif
    return why;
}

/* heap_validate_ptr on an inner pointer, redzones aside: with every tier
 * frozen, so that no header changes under the walk. */
static const char *validate_inner(const void *ptr)
{
    caches_lock_all();
    heap_lock(&seg_lock);
    heap_lock(&large_lock);
    const char *why = validate_locked(ptr);
    heap_unlock(&large_lock);
    heap_unlock(&seg_lock);
    caches_unlock_all();
    return why;
}

static const char *validate_locked(const void *ptr)
{
    uintptr_t v = (uintptr_t)ptr, phys = v - hhdm_offset;
    if (phys >= hhdm_size)
        return "not a heap address (outside the direct map)";
    if (!frame_owned(phys))
        return "not an address the heap gave (no heap memory there)";
    uint32_t e = granule_entry(phys / SLAB_SIZE);
    const struct slab *s = slab_hdr_at(v - (phys & (SLAB_SIZE - 1)), e);
    if (granule_cls(e) < HEAP_SMALL_CLASSES && granule_in_slab(e, phys) && slab_class(s)) {
        uint64_t idx = slab_obj_index(s, ptr);
        if (idx >= s->nobj)
            return "inside a slab but not the start of an object";
        if (idx >= s->carved)
            return "a slab object the heap never handed out";
        return slab_obj_free_locked(s, (void *const *)ptr) ? "already free" : NULL;
    }
    const struct mchunk *ch;
    list_for_each_entry(ch, &mchunks, link) {
        if (v < (uintptr_t)ch || v >= (uintptr_t)ch + MCHUNK_SIZE)
            continue;
        for (const struct seg *h = (const struct seg *)(ch + 1); !(h->flags & SEG_END);
             h = (const struct seg *)((const char *)h + h->size)) {
            if (h->magic != seg_magic(h) || h->size < SEG_MIN)
                return "heap segment chain corrupted";
            if (v == (uintptr_t)(h + 1))
                return (h->flags & SEG_USED) ? NULL : "already free";
            if (v < (uintptr_t)h + h->size)
                return (h->flags & SEG_USED) ? "inside a block, not its start"
                                             : "inside free heap memory";
        }
        return "inside a heap chunk header";
    }
    const struct large *l;
    list_for_each_entry(l, &larges, link) {
        uintptr_t start = (uintptr_t)PHYS2VIRT(l->base);
        if (v == (uintptr_t)(l + 1))
            return NULL;
        if (v >= start && v < start + l->pages * PAGE_SIZE)
            return "inside a large block, not its start";
    }
    return "not an address the heap gave";
}

#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            kerr("heap", "heap_check: " __VA_ARGS__);                                              \
            return false;                                                                          \
        }                                                                                          \
    } while (0)

#if HEAP_REDZONES
/* The loaded and previous magazines of class cls on every CPU that has a
 * set, with how many objects each holds; returns how many. */
static unsigned cpu_magazines(unsigned cls, const struct magazine **mags, uint32_t *counts)
{
    unsigned n = 0;
    for (unsigned i = 0; i < CPU_MAX; i++) {
        const struct cpu_cache *pc = cache_of(i);
        if (!pc)
            continue;
        const struct cpu_mag *m = &pc->m[cls];
        mags[n] = m->loaded;
        counts[n++] = mag_loaded_n(m);
        mags[n] = m->prev;
        counts[n++] = m->prev->n;
    }
    return n;
}

/* The redzones of every live object of s (its free list is known good). */
static bool check_slab_redzones(const struct slab *s)
{
    uint64_t is_free[(SLAB_SIZE / 16 + 63) / 64] = {0};
    for (const void *const *o = s->free; o; o = *o) {
        uint64_t i = slab_obj_index(s, o);
        is_free[i / 64] |= 1ull << (i % 64);
    }
    const struct magazine *mags[2 * CPU_MAX];
    uint32_t counts[2 * CPU_MAX];
    unsigned nm = cpu_magazines(s->cls, mags, counts);
    const struct heap_class *c = &classes[s->cls];
    for (const struct magazine *d = c->depot_full; d; d = d->next) /* magazine objects are free too */
        for (uint32_t k = 0; k < d->n; k++)
            if (slab_of_obj(d->obj[k]) == s)
                is_free[slab_obj_index(s, d->obj[k]) / 64] |= 1ull << (slab_obj_index(s, d->obj[k]) % 64);
    for (unsigned j = 0; j < nm; j++)
        for (uint32_t k = 0; k < counts[j]; k++)
            if (slab_of_obj(mags[j]->obj[k]) == s) {
                uint64_t i = slab_obj_index(s, mags[j]->obj[k]);
                is_free[i / 64] |= 1ull << (i % 64);
            }
    char why[200];
    for (uint64_t i = 0; i < s->carved; i++) {
        if (is_free[i / 64] & (1ull << (i % 64)))
            continue;
        CHECK(rz_intact(s->base + i * s->size, s->size, "heap_check", why, sizeof(why)), "%s", why);
    }
    return true;
}
#endif

static bool check_slab(const struct heap_class *c, const struct slab *s, uint8_t where)
{
    CHECK(s->magic == (uintptr_t)s + SLAB_MAGIC, "slab %p: bad magic", (const void *)s);
    CHECK(s->where == where, "slab %p: on list %d, marked %d", (const void *)s, where, s->where);
    CHECK(&classes[s->cls] == c && s->size == c->size && s->nobj == c->nobj && s->inv == c->inv &&
              s->shift == c->shift && s == slab_of_obj(s->base),
          "slab %p: wrong class", (const void *)s);
    CHECK(IS_ALIGNED(VIRT2PHYS(s->base), SLAB_SIZE), "slab %p: misaligned", (const void *)s);
    CHECK(s->carved <= s->nobj, "slab %p: %u objects carved of %u", (const void *)s, s->carved,
          s->nobj);
    uint64_t nfree = 0;
    for (const void *const *o = s->free; o; o = *o) {
        CHECK(slab_obj_index(s, o) < s->carved, "slab %p: free entry %p off-boundary",
              (const void *)s, (const void *)o);
        CHECK((uintptr_t)o[1] == FREE_TAG, "slab %p: free entry %p lost its tag",
              (const void *)s, (const void *)o);
        CHECK(++nfree <= s->nobj, "slab %p: free list loops", (const void *)s);
#if HEAP_POISON
        CHECK(poison_scan(o + 2, s->size - 2 * sizeof(void *)) == s->size - 2 * sizeof(void *),
              "slab %p: free object %p modified after free", (const void *)s, (const void *)o);
#endif
    }
    CHECK(nfree + s->used == s->carved, "slab %p: %llu free + %u used != %u carved",
          (const void *)s, (unsigned long long)nfree, s->used, s->carved);
#if HEAP_POISON
    /* the never-carved objects follow each other: one scan */
    const char *uncarved = s->base + (uint64_t)s->carved * s->size;
    size_t rest = (size_t)(s->nobj - s->carved) * s->size, bad = poison_scan(uncarved, rest);
    CHECK(bad == rest, "slab %p: object %p never allocated but modified", (const void *)s,
          (const void *)(uncarved + bad - bad % s->size));
#endif
#if HEAP_REDZONES
    if (!check_slab_redzones(s))
        return false;
#endif
    if (where == SLAB_PARTIAL)
        CHECK(s->used > 0 && nfree > 0, "partial slab %p is empty or full", (const void *)s);
    if (where == SLAB_FULL)
        CHECK(nfree == 0 && s->carved == s->nobj, "full slab %p has free objects",
              (const void *)s);
    if (where == SLAB_SPARE)
        CHECK(s->used == 0, "spare slab %p is not empty", (const void *)s);
    return true;
}

/* One magazine of class c holding n objects: its capacity, and every object
 * an object start of a slab of c, carved, tagged free, poisoned, once. */
static bool check_magazine(const struct heap_class *c, const struct magazine *mag, uint32_t n,
                           const char *what)
{
    CHECK(mag->cap == c->mag_cap && n <= mag->cap, "class %u: %s magazine %p: %u objects, cap %u",
          c->size, what, (const void *)mag, n, mag->cap);
    for (uint32_t k = 0; k < n; k++) {
        void *const *o = mag->obj[k];
        const struct slab *s = slab_of_obj(o);
        CHECK(slab_class(s) == c && slab_obj_index(s, o) < s->carved,
              "class %u: %s magazine entry %p is not an object of the class", c->size, what,
              (const void *)o);
        CHECK((uintptr_t)o[1] == FREE_TAG,
              "class %u: %s magazine entry %p lost its free tag", c->size, what, (const void *)o);
#if HEAP_POISON
        CHECK((uintptr_t)o[0] == POISON_WORD && poison_scan(o + 2, c->size - 2 * sizeof(void *)) ==
                                                    c->size - 2 * sizeof(void *),
              "class %u: free object %p modified after free", c->size, (const void *)o);
#endif
        for (uint32_t j = 0; j < k; j++)
            CHECK(mag->obj[j] != o, "class %u: %p twice in a magazine", c->size, (const void *)o);
    }
    return true;
}

/* Every CPU's magazines of class c (index i) and its depot: shapes, counts,
 * the loaded magazine's pointers, prev and depot magazines full or empty. */
static bool check_magazines(const struct heap_class *c, unsigned i)
{
    for (unsigned k = 0; k < CPU_MAX; k++) {
        const struct cpu_cache *pc = cache_of(k);
        if (!pc)
            continue;
        const struct cpu_mag *m = &pc->m[i];
        CHECK(m->loaded && m->prev && m->loaded != m->prev &&
                  m->base_l == (uintptr_t)m->loaded->obj + 1 &&
                  m->limit_l == m->base_l + m->loaded->cap * sizeof(void *) &&
                  mag_top_l(m) >= m->base_l && mag_top_l(m) <= m->limit_l &&
                  (mag_top_l(m) - m->base_l) % sizeof(void *) == 0 && m->size == c->size &&
                  m->cls == i,
              "class %u: CPU %u's magazine pointers broken", c->size, k);
        CHECK(m->prev->n == 0 || m->prev->n == m->prev->cap,
              "class %u: CPU %u's previous magazine neither full nor empty", c->size, k);
        if (!check_magazine(c, m->loaded, mag_loaded_n(m), "loaded") ||
            !check_magazine(c, m->prev, m->prev->n, "previous"))
            return false;
    }
    uint64_t nf = 0, ne = 0;
    for (const struct magazine *d = c->depot_full; d && nf <= c->ndepot_full; d = d->next, nf++) {
        CHECK(d->n == d->cap, "class %u: depot magazine %p on the full list holds %u of %u",
              c->size, (const void *)d, d->n, d->cap);
        if (!check_magazine(c, d, d->n, "depot"))
            return false;
    }
    for (const struct magazine *d = c->depot_empty; d && ne <= c->ndepot_empty; d = d->next, ne++)
        CHECK(d->n == 0 && d->cap == c->mag_cap, "class %u: depot magazine %p on the empty list "
              "holds %u", c->size, (const void *)d, d->n);
    CHECK(nf == c->ndepot_full && ne == c->ndepot_empty,
          "class %u: depot lists hold %llu full and %llu empty, counters %llu and %llu", c->size,
          (unsigned long long)nf, (unsigned long long)ne, (unsigned long long)c->ndepot_full,
          (unsigned long long)c->ndepot_empty);
    return true;
}

/* Every slab: the ones the class points at (current, spare, partial list)
 * and, through the granule table, every slab the heap holds, full ones
 * included (they are in no list). *granules counts the held granules that
 * start a slab. */
static bool check_slabs(uint64_t *pages, uint64_t *granules)
{
    uint64_t partial[HEAP_SMALL_CLASSES] = {0};
    for (unsigned i = 0; i < HEAP_SMALL_CLASSES; i++) {
        const struct heap_class *c = &classes[i];
        CHECK(dummy_slab.free == NULL && dummy_slab.used == 0 && dummy_slab.carved == 0 &&
                  dummy_slab.nobj == 0,
              "dummy slab modified");
        if (c->current != &dummy_slab && !check_slab(c, c->current, SLAB_CURRENT))
            return false;
        if (c->spare) {
            CHECK(c->spare != c->current, "class %u: spare slab is also current", c->size);
            if (!check_slab(c, c->spare, SLAB_SPARE))
                return false;
        }
        if (!check_magazines(c, i))
            return false;
        CHECK(list_valid(&c->partial, c->nslabs), "class %u: partial list broken or loops",
              c->size);
        const struct slab *s;
        list_for_each_entry(s, &c->partial, link) {
            partial[i]++;
            if (!check_slab(c, s, SLAB_PARTIAL))
                return false;
        }
    }
    uint64_t n[HEAP_SMALL_CLASSES] = {0}, full[HEAP_SMALL_CLASSES] = {0},
             part[HEAP_SMALL_CLASSES] = {0}, used[HEAP_SMALL_CLASSES] = {0};
    for (uint64_t g = 0; g < granule_count; g++) {
        uint32_t e = granule_entry(g);
        if (granule_cls(e) >= HEAP_SMALL_CLASSES) {
            CHECK(!(e & GT_CLS) && !(e & 0xffffu), "granule %llu: bad table entry %#x",
                  (unsigned long long)g, e);
            continue; /* no slab: frames of medium chunks or large runs (their checks) */
        }
        {
            const struct slab *s = slab_hdr_at((uintptr_t)PHYS2VIRT(g * SLAB_SIZE), e);
            CHECK(s->magic == (uintptr_t)s + SLAB_MAGIC, "slab %p: header overwritten (bad magic)",
                  (const void *)s);
            CHECK(s->cls == granule_cls(e), "slab %p: class %u, the granule table says %u",
                  (const void *)s, s->cls, granule_cls(e));
            const struct heap_class *c = &classes[s->cls];
            CHECK(!!(e & GT_HALF) == (c->frames < SLAB_FRAMES) && !(e & 0xe0000u) &&
                      ((e & GT_HALF) || !(e & 0xff00u)),
                  "slab %p: bad table entry %#x", (const void *)s, e);
            CHECK(slab_carved(s) == granule_carved(e),
                  "slab %p: %u carved, the granule table says %u", (const void *)s, slab_carved(s),
                  granule_carved(e));
            CHECK(s->where >= SLAB_CURRENT && s->where <= SLAB_SPARE, "slab %p: bad state %u",
                  (const void *)s, s->where);
            CHECK(s->where != SLAB_CURRENT || c->current == s, "slab %p: marked current, is not",
                  (const void *)s);
            CHECK(s->where != SLAB_SPARE || c->spare == s, "slab %p: marked spare, is not",
                  (const void *)s);
            if (s->where == SLAB_FULL && !check_slab(c, s, SLAB_FULL))
                return false;
            n[s->cls]++;
            full[s->cls] += s->where == SLAB_FULL;
            part[s->cls] += s->where == SLAB_PARTIAL;
            used[s->cls] += s->used;
        }
    }
    struct class_total t[HEAP_SMALL_CLASSES];
    class_totals(t);
    for (unsigned i = 0; i < HEAP_SMALL_CLASSES; i++) {
        const struct heap_class *c = &classes[i];
        CHECK(n[i] == c->nslabs, "class %u: %llu slabs found, %llu counted", c->size,
              (unsigned long long)n[i], (unsigned long long)c->nslabs);
        CHECK(full[i] == c->nfull, "class %u: %llu full slabs found, %llu counted", c->size,
              (unsigned long long)full[i], (unsigned long long)c->nfull);
        CHECK(part[i] == partial[i], "class %u: %llu partial slabs found, %llu listed", c->size,
              (unsigned long long)part[i], (unsigned long long)partial[i]);
        /* magazine objects count as used; a batch carved into a magazine
         * was never allocated, so only the live ones are bounded by allocs */
        CHECK(used[i] - MIN(used[i], t[i].cached) <= t[i].allocs,
              "class %u: %llu used objects (%llu of them cached), only %llu allocations", c->size,
              (unsigned long long)used[i], (unsigned long long)t[i].cached,
              (unsigned long long)t[i].allocs);
        CHECK(t[i].cached <= used[i], "class %u: %llu objects in magazines, %llu used in slabs",
              c->size, (unsigned long long)t[i].cached, (unsigned long long)used[i]);
        *pages += n[i] * c->frames;
        *granules += n[i];
    }
    return true;
}

static bool check_medium(uint64_t *pages)
{
    uint64_t listed = 0, listed_bytes = 0;
    for (unsigned idx = 0; idx < FL_N * SL_N; idx++) {
        bool bit = sl_map[idx / SL_N] & (1u << (idx % SL_N));
        CHECK(bit == !list_empty(&mfree[idx]), "list %u: bitmap disagrees", idx);
        CHECK(!!(fl_map & (1u << (idx / SL_N))) == (sl_map[idx / SL_N] != 0),
              "fl bitmap disagrees");
        CHECK(list_valid(&mfree[idx], MCHUNK_SIZE / SEG_MIN * m_nchunks),
              "free list %u: broken links or a loop", idx);
        const struct free_seg *f;
        list_for_each_entry(f, &mfree[idx], link) {
            CHECK(f->h.magic == seg_magic(&f->h) &&
                      !(f->h.flags & (SEG_USED | SEG_END | SEG_LARGE)),
                  "free list %u holds bad segment %p", idx, (const void *)f);
            CHECK(seg_list_index(f->h.size) == idx, "segment %p (size %u) on list %u",
                  (const void *)f, f->h.size, idx);
            listed++;
            listed_bytes += f->h.size;
            CHECK(listed < (1ull << 40), "free lists loop");
        }
    }
    CHECK(listed_bytes == m_free_bytes, "free bytes %llu, counter %llu",
          (unsigned long long)listed_bytes, (unsigned long long)m_free_bytes);
    uint64_t nfree = 0, used_bytes = 0, nchunks = 0, empty = 0;
    CHECK(list_valid(&mchunks, m_nchunks), "chunk list broken or longer than its counter");
    const struct mchunk *ch;
    list_for_each_entry(ch, &mchunks, link) {
        CHECK(ch->magic == (MCHUNK_MAGIC ^ (uintptr_t)ch), "chunk %p: bad magic", (const void *)ch);
        CHECK(++nchunks <= m_nchunks, "chunk list longer than its counter");
        const struct seg *h = (const struct seg *)(ch + 1);
        uint32_t prev_size = 0;
        bool prev_free = false;
        uint64_t total = 0;
        for (;;) {
            CHECK(h->magic == seg_magic(h), "segment %p: bad magic", (const void *)h);
            CHECK(h->prev_size == prev_size, "segment %p: prev_size %u, expected %u",
                  (const void *)h, h->prev_size, prev_size);
            CHECK(!!(h->flags & SEG_FIRST) == (prev_size == 0), "segment %p: FIRST flag wrong",
                  (const void *)h);
            if (h->flags & SEG_END)
                break;
            CHECK(h->size >= SEG_MIN && h->size % 16 == 0 && !(h->flags & SEG_LARGE),
                  "segment %p: bad size %u", (const void *)h, h->size);
            total += h->size;
            CHECK(total <= MCHUNK_SPACE, "chunk %p: segments overrun", (const void *)ch);
            bool is_free = !(h->flags & SEG_USED);
            CHECK(!(is_free && prev_free), "adjacent free segments at %p", (const void *)h);
            if (is_free) {
                nfree++;
                if (h->size == MCHUNK_SPACE)
                    empty++;
#if HEAP_POISON
                const unsigned char *b = (const unsigned char *)(h + 1);
                size_t end = h->size - SEG_HDR, bad = seg_poison_bad(b, 16, end);
                CHECK(bad == end, "free segment %p modified at %p", (const void *)h,
                      (const void *)(b + bad - bad % 16));
#endif
            } else {
                used_bytes += h->size;
#if HEAP_REDZONES
                char why[200];
                CHECK(rz_intact(h + 1, h->size - SEG_HDR, "heap_check", why, sizeof(why)), "%s",
                      why);
#endif
            }
            prev_free = is_free;
            prev_size = h->size;
            h = (const struct seg *)((const char *)h + h->size);
        }
        CHECK(total == MCHUNK_SPACE && (const char *)h == (const char *)ch + MCHUNK_SIZE - SEG_HDR,
              "chunk %p: segments do not fill it", (const void *)ch);
    }
    CHECK(nchunks == m_nchunks, "chunk count %llu, counter %llu", (unsigned long long)nchunks,
          (unsigned long long)m_nchunks);
    CHECK(nfree == listed, "%llu free segments in chunks, %llu in lists", (unsigned long long)nfree,
          (unsigned long long)listed);
    CHECK(used_bytes == m_used_bytes, "used bytes %llu, counter %llu",
          (unsigned long long)used_bytes, (unsigned long long)m_used_bytes);
    CHECK(empty == m_empty_chunks && empty <= 1, "%llu wholly free chunks, counter %llu",
          (unsigned long long)empty, (unsigned long long)m_empty_chunks);
    *pages += nchunks * MCHUNK_FRAMES;
    return true;
}

static bool check_large(uint64_t *pages)
{
    uint64_t n = 0, np = 0;
    CHECK(list_valid(&larges, l_count), "large list broken or longer than its counter");
    const struct large *l;
    list_for_each_entry(l, &larges, link) {
        CHECK(l->magic == (LARGE_MAGIC ^ (uintptr_t)l), "large block %p: bad magic",
              (const void *)(l + 1));
        CHECK(l->tag.magic == seg_magic(&l->tag) && l->tag.flags == (SEG_USED | SEG_LARGE),
              "large block %p: bad tag", (const void *)(l + 1));
        CHECK(++n <= l_count, "large list longer than its counter");
#if HEAP_REDZONES
        char why[200];
        CHECK(rz_intact(l + 1, large_usable((struct large *)l), "heap_check", why, sizeof(why)),
              "%s", why);
#endif
        np += l->pages;
    }
    CHECK(n == l_count && np == l_pages, "large blocks %llu/%llu pages, counters %llu/%llu",
          (unsigned long long)n, (unsigned long long)np, (unsigned long long)l_count,
          (unsigned long long)l_pages);
    *pages += np;
    return true;
}

static bool check_locked(void);

/* Every tier frozen: every cache lock (the small tier), then the segment,
 * large and runs locks. */
bool heap_check(void)
{
    caches_lock_all();
    heap_lock(&seg_lock);
    heap_lock(&large_lock);
    heap_lock(&runs_lock);
    bool ok = check_locked();
    heap_unlock(&runs_lock);
    heap_unlock(&large_lock);
    heap_unlock(&seg_lock);
    caches_unlock_all();
    return ok;
}

static bool check_locked(void)
{
    uint64_t pages = 0, granules = 0, held = 0;
    if (!check_slabs(&pages, &granules) || !check_medium(&pages) || !check_large(&pages))
        return false;
    CHECK(pages == pages_held, "structures hold %llu pages, counter %llu",
          (unsigned long long)pages, (unsigned long long)pages_held);
    /* Every frame the table marks owned belongs to exactly one slab, chunk or
     * large run: every run's frames are marked, and the counts agree. */
    (void)granules;
    const struct mchunk *ch;
    list_for_each_entry(ch, &mchunks, link)
        CHECK(heap_owns(VIRT2PHYS(ch), MCHUNK_SIZE), "chunk %p: frames not marked owned",
              (const void *)ch);
    const struct large *l;
    list_for_each_entry(l, &larges, link)
        CHECK(heap_owns(l->base, l->pages * PAGE_SIZE), "large block %p: frames not marked owned",
              (const void *)(l + 1));
    for (uint64_t g = 0; g < granule_count; g++)
        held += (uint64_t)__builtin_popcount(granule_frames(granule_entry(g)));
    CHECK(held == pages_held, "%llu frames marked owned, %llu held", (unsigned long long)held,
          (unsigned long long)pages_held);
    return true;
}

