/* The slab tier (1..HEAP_SMALL_MAX bytes), its per-CPU magazines and depots.
 *
 * A slab is a run of 16 frames (or 8: a half slab, for classes above 128 B
 * while it still holds SLAB_HALF_MIN_OBJS objects) starting 64 KiB-aligned,
 * equal objects of one size class from its first byte, and a 64-byte header
 * in its last 64 bytes (so kfree's boundary check needs no first-object
 * offset, and an aligned class wastes nothing in front). Invariants:
 *   - the granule table's entry of the slab's granule names its class and
 *     holds its carved count (heap_internal.h): kfree's fast path reads that
 *     entry, never the header, which only the slow paths use;
 *   - header magic == SLAB_MAGIC + the header's address (zero once released)
 *     and its class agrees with the table; every slow path that reaches the
 *     slab through a pointer checks both (slab_of, mag_flush), so an
 *     overwritten header is reported before anything changes;
 *   - objects [0, carved) were handed out or stocked into a magazine at
 *     least once; the rest were never touched (carved lazily, in order, up
 *     to CARVE_BATCH at a time into the magazine that asked) and still hold
 *     poison;
 *   - a free object's word 1 is FREE_TAG (kmalloc clears it);
 *     the tag alone is a hint: a double free is confirmed by finding the
 *     object on its slab's free list, in some CPU's magazine or in the
 *     class's depot (slab_obj_free_locked, with every cache lock held);
 *   - used == objects carved minus those on the free list: objects in
 *     magazines count as used in their slab;
 *   - each slab is in exactly one state (where): the class's current slab,
 *     on its partial list, full (in no list; counted in nfull), or its spare;
 *     an empty slab is the current slab, the spare, or released;
 *   - magazines (heap_internal.h): two per class per CPU (loaded, prev) plus
 *     what the depot holds, each holding at most its cap objects of its
 *     class, tagged and poisoned like free-list objects, each object in at
 *     most one place; prev and every depot magazine are full or empty.
 * Locking: a CPU's cache lock covers its magazine set; the class lock (taken
 * under a cache lock) covers the class's slabs and depot. Changes to
 * anything here happen under some CPU's cache lock, so caches_lock_all
 * freezes the tier for drains, statistics and checks.
 * The fast paths (cache_alloc, cache_free) are inline in heap_internal.h;
 * this file holds what they call when a magazine runs empty or full. */
#include "mm/heap_internal.h"

static const uint16_t class_sizes[HEAP_SMALL_CLASSES] = {
    16,   32,   48,   64,   80,   96,   112,  128,  144,  160,  176,  192,  208,  224,  240,  256,
    288,  320,  352,  384,  416,  448,  480,  512,  576,  640,  704,  768,  832,  896,  960,  1024,
    1152, 1280, 1408, 1536, 1664, 1792, 1920, 2048, 2304, 2560, 2816, 3072, 3328, 3584, 3840, 4096,
};

struct heap_class classes[HEAP_SMALL_CLASSES];
uint8_t class_of[HEAP_SMALL_MAX / 16 + 1];
struct slab dummy_slab;
struct heap_fast heap_fast;
struct cpu_cache cache_none;
/* Taken (rank none: no heap lock is held around it) to install a CPU's set,
 * and by caches_lock_all so that no set appears while the tier is frozen. */
static struct spinlock caches_install = SPINLOCK_INIT("heap-caches", LOCK_RANK_NONE);

/* ---- lock bookkeeping (heap_internal.h) -------------------------------------------------- */

/* Per CPU (written by that CPU only): the ranked heap locks it holds, the
 * cpu_mag it holds locked in a slow path, and whether it holds all of them. */
#define HEAP_HELD_MAX 6
static struct {
    struct spinlock *held[HEAP_HELD_MAX];
    unsigned n;
    struct cpu_mag *mag;
    bool all;
} heap_held[CPU_MAX];

void heap_lock(struct spinlock *l)
{
    spin_lock(l);
    unsigned me = cpu_index();
    kassert(heap_held[me].n < HEAP_HELD_MAX, "heap: CPU %u holds too many heap locks", me);
    heap_held[me].held[heap_held[me].n++] = l;
}

void heap_unlock(struct spinlock *l)
{
    unsigned me = cpu_index();
    kassert(heap_held[me].n > 0 && heap_held[me].held[heap_held[me].n - 1] == l,
            "heap: %s released out of order", l->name);
    heap_held[me].n--;
    spin_unlock(l);
}

void heap_note_mag(struct cpu_mag *m)
{
    heap_held[cpu_index()].mag = m;
}

void heap_forget_mag(void)
{
    heap_held[cpu_index()].mag = NULL;
}

void heap_unlock_all(void)
{
    unsigned me = cpu_index();
    while (heap_held[me].n > 0)
        heap_unlock(heap_held[me].held[heap_held[me].n - 1]);
    if (heap_held[me].mag) {
        mag_unlock(heap_held[me].mag, mag_top_l(heap_held[me].mag));
        heap_held[me].mag = NULL;
    }
    if (heap_held[me].all)
        caches_unlock_all();
}

void mag_lock(struct cpu_mag *m)
{
    while (!mag_trylock(m))
        while (__atomic_load_n(&m->top, __ATOMIC_RELAXED) & 1)
            cpu_relax();
}

struct cpu_cache *cache_of(unsigned i)
{
    struct cpu_cache *pc = __atomic_load_n(&heap_fast.cpu[i], __ATOMIC_ACQUIRE);
    return pc == &cache_none ? NULL : pc;
}

static void set_lock(struct cpu_cache *pc, bool lock)
{
    for (unsigned k = 0; k < HEAP_SMALL_CLASSES; k++) {
        if (lock)
            mag_lock(&pc->m[k]);
        else
            mag_unlock(&pc->m[k], mag_top_l(&pc->m[k]));
    }
}

void caches_lock_all(void)
{
    spin_lock(&caches_install);
    set_lock(&cache_none, true);
    for (unsigned i = 0; i < CPU_MAX; i++) {
        struct cpu_cache *pc = cache_of(i);
        if (pc)
            set_lock(pc, true);
    }
    heap_held[cpu_index()].all = true;
}

void caches_unlock_all(void)
{
    heap_held[cpu_index()].all = false;
    for (unsigned i = CPU_MAX; i-- > 0;) {
        struct cpu_cache *pc = cache_of(i);
        if (pc)
            set_lock(pc, false);
    }
    set_lock(&cache_none, false);
    spin_unlock(&caches_install);
}

/* ---- slabs ------------------------------------------------------------------------------- */

static struct slab *slab_new(struct heap_class *c)
{
    paddr_t phys = heap_slab_frames(c->frames);
    if (!phys)
        return NULL;
    struct slab *s = (struct slab *)((char *)PHYS2VIRT(phys) + c->frames * PAGE_SIZE - SLAB_HDR);
    memset(s, 0, SLAB_HDR);
    s->base = PHYS2VIRT(phys);
    s->inv = c->inv;
    s->shift = c->shift;
    s->size = (uint16_t)c->size;
    s->nobj = (uint16_t)c->nobj;
    s->cls = (uint8_t)(c - classes);
    s->moff = (uint16_t)CPU_MAG_OFF(s->cls);
    poison(s->base, (size_t)c->nobj * c->size);
    /* No free list yet: objects are carved in order as they are first needed
     * (slab_carve), so a new slab costs the same for every class and touches
     * one cache line, not the whole 64 KiB. */
    __atomic_store_n(&s->magic, (uintptr_t)s + SLAB_MAGIC, __ATOMIC_RELEASE);
    slab_publish(phys, s->cls, c->frames < SLAB_FRAMES); /* kfree sees it from here */
    c->nslabs++;
    return s;
}

static void slab_release(struct heap_class *c, struct slab *s)
{
    released_note(s->base, (size_t)c->frames * PAGE_SIZE, NULL);
    __atomic_store_n(&s->magic, 0, __ATOMIC_RELAXED);
    c->nslabs--;
    slab_frames_free(VIRT2PHYS(s->base), c->frames);
}

SLOW NORETURN void slab_panic(const char *what, const struct slab *s, const void *obj)
{
    panic("heap: %s %p (in slab %p of %u-byte objects)", what, USER(obj), (const void *)s, s->size);
}

SLOW NORETURN void mag_poison_panic(struct cpu_mag *m, uintptr_t top_l, const void *obj,
                                    size_t off)
{
    uint32_t size = m->size;
    heap_forget_mag();
    mag_unlock(m, top_l); /* the object stays out of the magazine */
    panic("heap: use after free: object %p (size %u) modified at offset %lld", USER(obj), size,
          (long long)off - (long long)RZ_LEAD);
}

/* Carves s's next k never-used objects (k <= s->nobj - s->carved; class
 * lock held): checks that nothing wrote to them, counts them carved (header
 * and granule table) and used. Returns the first; the rest follow it. */
static void **slab_carve_n(struct slab *s, uint32_t k)
{
    char *first = s->base + (uint64_t)s->carved * s->size;
#if HEAP_POISON
    size_t n = (size_t)k * s->size, bad = poison_scan(first, n); /* the k objects are adjacent */
    if (unlikely(bad != n))
        panic("heap: write to memory never allocated: object %p (size %u) modified at offset "
              "%lld",
              USER(first + bad - bad % s->size), s->size,
              (long long)(bad % s->size) - (long long)RZ_LEAD);
#endif
    __atomic_store_n(&s->carved, s->carved + k, __ATOMIC_RELAXED);
    granule_carve_n(VIRT2PHYS(s), k);
    s->used += k;
    return (void **)first;
}

/* Hands out s's next never-used object (s->carved < s->nobj). */
static void *slab_carve(struct heap_class *c, struct slab *s)
{
    void **obj = slab_carve_n(s, 1);
    obj[1] = NULL; /* not tagged free, whatever the memory held before */
    c->allocs++;
    return obj;
}

static void *slab_alloc_slow(struct heap_class *c);

/* Pops one object from the class's current slab (class lock held). */
static void *slab_pop(struct heap_class *c)
{
    struct slab *s = c->current;
    void **obj = s->free;
    if (!obj)
        return slab_alloc_slow(c);
#if HEAP_POISON
    if (unlikely(slab_obj_index(s, obj) >= s->carved ||
                 (uintptr_t)obj[1] != FREE_TAG))
        slab_panic("free list corrupted (use after free?) at object", s, obj);
    size_t bad = poison_scan(obj + 2, s->size - 2 * sizeof(void *));
    if (unlikely(bad != s->size - 2 * sizeof(void *)))
        panic("heap: use after free: object %p (size %u) modified at offset %zu", USER(obj),
              s->size, bad + 2 * sizeof(void *) - RZ_LEAD);
#endif
    s->free = obj[0];
    obj[1] = NULL; /* no longer tagged free */
    s->used++;
    c->allocs++;
    return obj;
}

/* The current slab's free list is empty: carve from it while it has
 * never-used objects; else it is full (and leaves every list: a full slab is
 * found again by kfree through its address, so it needs no links), and the
 * class continues with a partial slab, its spare, or a new slab. */
static void *slab_alloc_slow(struct heap_class *c)
{
    struct slab *s = c->current;
    if (s->carved < s->nobj)
        return slab_carve(c, s);
    if (s != &dummy_slab) {
        s->where = SLAB_FULL;
        c->nfull++;
    }
    c->current = &dummy_slab;
    if (!list_empty(&c->partial)) {
        s = list_entry(c->partial.next, struct slab, link);
        list_remove(&s->link);
    } else if (c->spare) {
        s = c->spare;
        c->spare = NULL;
    } else {
        s = slab_new(c);
        if (!s)
            return NULL;
    }
    s->where = SLAB_CURRENT;
    c->current = s;
    return s->free ? slab_pop(c) : slab_carve(c, s);
}

/* List changes after a free into a slab that was full or is now empty (its
 * `used` already counts the free): a full slab becomes partial; an empty one
 * becomes the current slab if the class has none, else the class's spare if
 * it has none (so that a working set just above one slab does not return a
 * slab to the frame allocator and take it back on every round), else it is
 * released. */
static SLOW void slab_free_slow(struct slab *s)
{
    struct heap_class *c = &classes[s->cls];
    if (s->where == SLAB_CURRENT)
        return;
    if (s->where == SLAB_FULL)
        c->nfull--;
    else
        list_remove(&s->link);
    if (s->used > 0) {
        s->where = SLAB_PARTIAL;
        list_push(&c->partial, &s->link);
    } else if (c->current == &dummy_slab) {
        s->where = SLAB_CURRENT;
        c->current = s;
    } else if (!c->spare) {
        s->where = SLAB_SPARE;
        c->spare = s;
    } else {
        slab_release(c, s);
    }
}

/* Links a checked, already poisoned object start into its slab's free list
 * (class lock held). */
static void slab_link(struct slab *s, void *ptr)
{
    void **obj = ptr;
    void *head = s->free;
    obj[0] = head;
    s->free = obj;
    obj[1] = (void *)FREE_TAG;
    if (unlikely(!head)) { /* the slab was full (or is the current one) */
        s->used--;
        slab_free_slow(s);
    } else if (unlikely(--s->used == 0)) {
        slab_free_slow(s);
    }
}

/* The header of slab s was found overwritten when obj went back to it. */
static SLOW NORETURN void slab_header_smashed(const struct slab *s, const void *obj)
{
    panic("heap: the header of slab %p was overwritten (found when %p went back to it)",
          (const void *)s, USER(obj));
}

/* Gives every object of magazine mag (n of them) back to their slabs. kfree
 * never reads a slab header, so an overwritten one is caught here, when its
 * objects go back to it: every header is checked before anything changes. */
static void mag_flush(struct magazine *mag, uint32_t n)
{
    const struct slab *checked = NULL; /* neighbours in a magazine mostly share a slab */
    for (uint32_t i = 0; i < n; i++) {
        const struct slab *s = slab_of_obj(mag->obj[i]);
        if (s == checked)
            continue;
        if (unlikely(s->magic != (uintptr_t)s + SLAB_MAGIC))
            slab_header_smashed(s, mag->obj[i]);
        checked = s;
    }
    for (uint32_t i = n; i-- > 0;) {
        void **obj = mag->obj[i];
        obj[1] = (void *)FREE_TAG; /* the poison may have covered word 1 */
        slab_link(slab_of_obj(obj), obj);
    }
    mag->n = 0;
}

/* ---- magazines --------------------------------------------------------------------------- */

/* Makes mag m's loaded magazine (m locked; it stays locked). */
static void mag_load(struct cpu_mag *m, struct magazine *mag)
{
    m->loaded = mag;
    m->base_l = (uintptr_t)mag->obj + 1;
    m->limit_l = m->base_l + mag->cap * sizeof(void *);
    __atomic_store_n(&m->top, m->base_l + mag->n * sizeof(void *), __ATOMIC_RELAXED);
}

/* Writes the loaded magazine's count into it (m locked). */
static void mag_sync(struct cpu_mag *m)
{
    m->loaded->n = mag_loaded_n(m);
}

/* Swaps the loaded and previous magazines (m locked). */
static void mag_swap(struct cpu_mag *m)
{
    struct magazine *old = m->loaded;
    mag_sync(m);
    mag_load(m, m->prev);
    m->prev = old;
}

/* Writes class i's constants into its cpu_mag m (before m is published). */
static void mag_set_class(struct cpu_mag *m, unsigned i)
{
    const struct heap_class *c = &classes[i];
    m->inv = c->inv;
    m->size = (uint16_t)c->size;
    m->shift = c->shift;
    m->cls = (uint8_t)i;
}

/* Bytes of a CPU's magazine set and its 2 magazines per class. */
static size_t cache_bytes(void)
{
    size_t bytes = sizeof(struct cpu_cache);
    for (unsigned i = 0; i < HEAP_SMALL_CLASSES; i++)
        bytes += 2 * (MAG_HDR + classes[i].mag_cap * sizeof(void *));
    return bytes;
}

/* Makes and installs CPU cpu's magazine set (NULL when no memory). */
static struct cpu_cache *cache_create(unsigned cpu)
{
    size_t frames = (cache_bytes() + PAGE_SIZE - 1) / PAGE_SIZE;
    paddr_t p = frame_alloc_contig(frames, PAGE_SIZE);
    if (!p)
        return NULL;
    struct cpu_cache *pc = PHYS2VIRT(p);
    memset(pc, 0, sizeof(*pc));
    pc->cpu = cpu;
    pc->frames = (uint32_t)frames;
    char *next = (char *)(pc + 1);
    for (unsigned i = 0; i < HEAP_SMALL_CLASSES; i++) {
        struct cpu_mag *m = &pc->m[i];
        struct magazine *mag[2];
        for (int k = 0; k < 2; k++) {
            mag[k] = (struct magazine *)next;
            mag[k]->next = NULL;
            mag[k]->n = 0;
            mag[k]->cap = classes[i].mag_cap;
            next += MAG_HDR + classes[i].mag_cap * sizeof(void *);
        }
        mag_set_class(m, i);
        m->prev = mag[1];
        mag_load(m, mag[0]);
        mag_unlock(m, mag_top_l(m));
    }
    spin_lock(&caches_install);
    __atomic_store_n(&heap_fast.cpu[cpu], pc, __ATOMIC_RELEASE);
    spin_unlock(&caches_install);
    return pc;
}

/* This CPU's cpu_mag at moff, locked (its set made first if the CPU has none
 * and memory allows; else cache_none's, whose magazines hold nothing). */
static struct cpu_mag *mag_get_locked(uint32_t moff)
{
    unsigned me = cpu_index();
    struct cpu_cache *pc = heap_fast.cpu[me];
    if (pc == &cache_none) {
        struct cpu_cache *made = cache_create(me);
        if (made)
            pc = made;
    }
    struct cpu_mag *m = cpu_mag_at(pc, moff);
    mag_lock(m);
    heap_note_mag(m);
    return m;
}

static void mag_release(struct cpu_mag *m)
{
    heap_forget_mag();
    mag_unlock(m, mag_top_l(m));
}

/* Stocks m's empty loaded magazine (m and the class lock held) with up to
 * its capacity of objects from the class's current slab, so that the next
 * allocations take no lock: first its free list, then up to CARVE_BATCH
 * never-used objects carved at once (one table update for all of them)
 * and tagged free, stacked so that they are handed out in address order.
 * No slab changes state for it. */
#define CARVE_BATCH 32u
static void mag_stock(struct heap_class *c, struct cpu_mag *m)
{
    struct slab *s = c->current;
    uint32_t n = 0, want = m->loaded->cap;
    void **slot = (void **)(mag_top_l(m) - 1);
    while (n < want && s->free) {
        void **obj = s->free;
        if (unlikely(slab_obj_index(s, obj) >= s->carved ||
                     (uintptr_t)obj[1] != FREE_TAG))
            slab_panic("free list corrupted (use after free?) at object", s, obj);
        s->free = obj[0];
#if HEAP_POISON
        obj[0] = (void *)POISON_WORD; /* the link is gone: word 0 is poison again */
#endif
        s->used++; /* magazine objects count as used in their slab */
        slot[n++] = obj; /* still tagged free and poisoned: mag_take checks them */
    }
    uint32_t k = MIN(MIN(want - n, CARVE_BATCH), (uint32_t)(s->nobj - s->carved));
    if (s != &dummy_slab && k > 0) {
        char *first = (char *)slab_carve_n(s, k);
        for (uint32_t i = 0; i < k; i++) {
            void **obj = (void **)(first + (uint64_t)i * s->size);
            obj[1] = (void *)FREE_TAG; /* a free object in a magazine, like any other */
            slot[n + k - 1 - i] = obj; /* the lowest address on top: popped first */
        }
        n += k;
    }
    __atomic_store_n(&m->top, mag_top_l(m) + n * sizeof(void *), __ATOMIC_RELAXED);
}

/* True when m belongs to cache_none. */
static bool mag_is_none(const struct cpu_mag *m)
{
    return (const char *)m >= (const char *)&cache_none &&
           (const char *)m < (const char *)(&cache_none + 1);
}

/* One allocation from m's class with m locked (and still locked after): the
 * loaded magazine, the previous one, a full magazine from the depot, or the
 * slabs. */
static void *cache_alloc_locked(struct cpu_mag *m)
{
    struct heap_class *c = &classes[m->cls];
    if (mag_loaded_n(m) == 0) {
        if (mag_is_none(m)) { /* no magazines: straight from the slabs */
            heap_lock(&c->lock);
            void *obj = slab_pop(c);
            heap_unlock(&c->lock);
            return obj;
        }
        if (m->prev->n > 0) {
            mag_swap(m);
        } else {
            heap_lock(&c->lock);
            if (!c->depot_full) {
                void *obj = slab_pop(c);
                if (obj)
                    mag_stock(c, m);
                heap_unlock(&c->lock);
                return obj;
            }
            /* trade the empty previous magazine for a full one */
            struct magazine *full = c->depot_full;
            c->depot_full = full->next;
            c->ndepot_full--;
            m->prev->next = c->depot_empty;
            c->depot_empty = m->prev;
            c->ndepot_empty++;
            m->loaded->n = 0;
            m->prev = m->loaded;
            mag_load(m, full);
            heap_unlock(&c->lock);
        }
    }
    uintptr_t top_l = mag_top_l(m) - sizeof(void *);
    void *obj = mag_take(m, top_l);
    __atomic_store_n(&m->top, top_l, __ATOMIC_RELAXED); /* still locked */
    return obj;
}

/* The allocation with m (this CPU's, moff) locked, then released; out of
 * memory, every cache is drained and the allocation tried once more. */
static void *cache_alloc_retry(struct cpu_mag *m)
{
    uint32_t moff = CPU_MAG_OFF(m->cls);
    void *obj = cache_alloc_locked(m);
    mag_release(m);
    if (likely(obj))
        return obj;
    heap_trim();
    m = mag_get_locked(moff);
    obj = cache_alloc_locked(m);
    mag_release(m);
    return obj;
}

SLOW void *cache_alloc_busy(struct cpu_mag *m)
{
    return cache_alloc_retry(mag_get_locked(CPU_MAG_OFF(m->cls)));
}

SLOW void *cache_alloc_refill(struct cpu_mag *m)
{
    heap_note_mag(m);
    if (mag_is_none(m)) { /* this CPU's first allocation: make its own set */
        mag_release(m);
        m = mag_get_locked(CPU_MAG_OFF(m->cls));
    }
    return cache_alloc_retry(m);
}

/* One free into m's class with m locked (and still locked after): the loaded
 * magazine, the previous one, an empty magazine from the depot, or (no empty
 * magazine anywhere) the previous magazine emptied into its slabs. */
static void cache_free_locked(struct cpu_mag *m, void *obj)
{
    struct heap_class *c = &classes[m->cls];
    if (mag_top_l(m) == m->limit_l) {
        if (mag_is_none(m)) {
            heap_lock(&c->lock);
            slab_link(slab_of_obj(obj), obj);
            heap_unlock(&c->lock);
            return;
        }
        if (m->prev->n == 0) {
            mag_swap(m);
        } else {
            heap_lock(&c->lock);
            mag_sync(m);
            if (c->depot_empty) { /* trade the full previous magazine for an empty one */
                struct magazine *empty = c->depot_empty;
                c->depot_empty = empty->next;
                c->ndepot_empty--;
                m->prev->next = c->depot_full;
                c->depot_full = m->prev;
                c->ndepot_full++;
                m->prev = m->loaded;
                mag_load(m, empty);
            } else {
                mag_flush(m->prev, m->prev->n);
                mag_swap(m);
            }
            heap_unlock(&c->lock);
        }
    }
    uintptr_t top_l = mag_top_l(m);
    *(void **)(top_l - 1) = obj;
    __atomic_store_n(&m->top, top_l + sizeof(void *), __ATOMIC_RELAXED);
}

SLOW void cache_free_busy(struct cpu_mag *m, void *obj)
{
    m = mag_get_locked(CPU_MAG_OFF(m->cls));
    cache_free_locked(m, obj);
    mag_release(m);
}

SLOW void cache_free_full(struct cpu_mag *m, void *obj)
{
    heap_note_mag(m);
    if (mag_is_none(m)) { /* this CPU's first free: make its own set */
        mag_release(m);
        m = mag_get_locked(CPU_MAG_OFF(m->cls));
    }
    cache_free_locked(m, obj);
    mag_release(m);
}

/* ---- misuse ------------------------------------------------------------------------------ */

/* True when obj is in magazine mag's first n slots. */
static bool mag_has(const struct magazine *mag, uint32_t n, const void *obj)
{
    for (uint32_t i = 0; i < n; i++)
        if (mag->obj[i] == obj)
            return true;
    return false;
}

/* True when obj (tagged free) is in a magazine of its class: some CPU's
 * loaded or previous one, or the depot's. */
static bool mag_holds(const struct slab *s, const void *obj)
{
    const struct heap_class *c = &classes[s->cls];
    for (unsigned i = 0; i < CPU_MAX; i++) {
        const struct cpu_cache *pc = cache_of(i);
        if (!pc)
            continue;
        const struct cpu_mag *m = &pc->m[s->cls];
        if (mag_has(m->loaded, mag_loaded_n(m), obj) ||
            mag_has(m->prev, m->prev->n, obj))
            return true;
    }
    for (const struct magazine *mag = c->depot_full; mag; mag = mag->next)
        if (mag_has(mag, mag->n, obj))
            return true;
    return false;
}

bool slab_obj_free_locked(const struct slab *s, void *const *obj)
{
    if (likely((uintptr_t)obj[1] != FREE_TAG))
        return false;
    uint64_t n = 0;
    for (void *const *o = s->free; o && n <= s->nobj; o = *o, n++)
        if (o == obj)
            return true;
    return mag_holds(s, obj);
}

bool slab_obj_free(const struct slab *s, void *const *obj)
{
    if (likely((uintptr_t)obj[1] != FREE_TAG))
        return false;
    caches_lock_all();
    bool is_free = slab_obj_free_locked(s, obj);
    caches_unlock_all();
    return is_free;
}

/* kfree of a slab pointer that failed a fast check: past its half slab (a
 * frame of another run, or of nobody), not an object start, or it carries
 * the free tag (a double free, or user data equal to the tag). Nothing
 * changes before the verdict. */
SLOW void slab_free_checked(void *ptr)
{
    uintptr_t phys = (uintptr_t)ptr - hhdm_offset;
    if (!granule_in_slab(granule_entry(phys / SLAB_SIZE), phys)) {
        kfree_not_slab(ptr);
        return;
    }
    struct slab *s = slab_of(ptr, "kfree"); /* checks the header */
    if (unlikely(slab_obj_index(s, ptr) >= slab_carved(s)))
        slab_panic("kfree of a pointer that is not a block start:", s, ptr);
    if (slab_obj_free(s, ptr))
        slab_panic("double free of", s, ptr);
    rz_check(ptr, s->size, "kfree");
    cache_free(ptr, cpu_mag_at(heap_fast.cpu[cpu_index()], s->moff));
}

/* The class of the slab whose header would be at s (in the HHDM), when the
 * granule table says a slab of that class has its header there and the
 * header is sound; NULL otherwise. Reads s only in that case. */
const struct heap_class *slab_class(const struct slab *s)
{
    uintptr_t phys = (uintptr_t)s - hhdm_offset;
    if (phys >= hhdm_size)
        return NULL;
    uint32_t e = granule_entry(phys / SLAB_SIZE);
    if (granule_cls(e) >= HEAP_SMALL_CLASSES ||
        s != slab_hdr_at((uintptr_t)s - (phys & (SLAB_SIZE - 1)), e) ||
        s->magic != (uintptr_t)s + SLAB_MAGIC || s->cls != granule_cls(e))
        return NULL;
    const struct heap_class *c = &classes[s->cls];
    if (s->where < SLAB_CURRENT || s->where > SLAB_SPARE || s->size != c->size ||
        s->nobj != c->nobj || slab_carved(s) > s->nobj ||
        slab_carved(s) != granule_carved(e))
        return NULL;
    return c;
}

/* ---- accounting (small tier frozen) ------------------------------------------------------- */

void class_totals(struct class_total t[HEAP_SMALL_CLASSES])
{
    for (unsigned i = 0; i < HEAP_SMALL_CLASSES; i++) {
        t[i].cached = classes[i].ndepot_full * classes[i].mag_cap;
        t[i].allocs = classes[i].allocs;
    }
    for (unsigned k = 0; k < CPU_MAX; k++) { /* CPUs outside: one lookup of each set */
        const struct cpu_cache *pc = cache_of(k);
        if (!pc)
            continue;
        for (unsigned i = 0; i < HEAP_SMALL_CLASSES; i++) {
            t[i].cached += mag_loaded_n(&pc->m[i]) + pc->m[i].prev->n;
            t[i].allocs += pc->m[i].allocs;
        }
    }
}

uint64_t class_used(const struct heap_class *c)
{
    uint64_t used = c->current->used + c->nfull * c->nobj;
    const struct slab *s;
    list_for_each_entry(s, &c->partial, link)
        used += s->used;
    return used;
}

void slab_drain_locked(void)
{
    struct cpu_cache *sets[CPU_MAX];
    unsigned nsets = 0;
    for (unsigned k = 0; k < CPU_MAX; k++) /* frozen: the sets stay as they are */
        if ((sets[nsets] = cache_of(k)))
            nsets++;
    for (unsigned i = 0; i < HEAP_SMALL_CLASSES; i++) {
        struct heap_class *c = &classes[i];
        heap_lock(&c->lock);
        for (unsigned k = 0; k < nsets; k++) {
            struct cpu_mag *m = &sets[k]->m[i];
            mag_flush(m->loaded, mag_loaded_n(m));
            __atomic_store_n(&m->top, m->base_l, __ATOMIC_RELAXED); /* still locked */
            mag_flush(m->prev, m->prev->n);
        }
        while (c->depot_full) {
            struct magazine *mag = c->depot_full;
            c->depot_full = mag->next;
            c->ndepot_full--;
            mag_flush(mag, mag->n);
            mag->next = c->depot_empty;
            c->depot_empty = mag;
            c->ndepot_empty++;
        }
        heap_unlock(&c->lock);
    }
}

void slab_release_empty_locked(void)
{
    for (unsigned i = 0; i < HEAP_SMALL_CLASSES; i++) {
        struct heap_class *c = &classes[i];
        heap_lock(&c->lock);
        if (c->current != &dummy_slab && c->current->used == 0) {
            slab_release(c, c->current);
            c->current = &dummy_slab;
        }
        if (c->spare) {
            slab_release(c, c->spare);
            c->spare = NULL;
        }
        heap_unlock(&c->lock);
    }
}

void slab_init(void)
{
    memset(classes, 0, sizeof(classes));
    memset(&dummy_slab, 0, sizeof(dummy_slab));
    memset(&cache_none, 0, sizeof(cache_none));
    memset(heap_held, 0, sizeof(heap_held));
    for (unsigned i = 0; i < HEAP_SMALL_CLASSES; i++) {
        struct heap_class *c = &classes[i];
        spin_init(&c->lock, "heap-class", LOCK_RANK_HEAP_DEPOT);
        c->size = class_sizes[i];
        c->align = (uint32_t)(c->size & -c->size);
        if (c->align > HEAP_SMALL_MAX)
            c->align = HEAP_SMALL_MAX;
        /* Classes above 128 B have few live objects each, so the partly used
         * slabs a class strands dominate its waste: they get half slabs (still
         * SLAB_SIZE-aligned; the table's entry says half) as long as a half
         * slab holds at least SLAB_HALF_MIN_OBJS objects. */
        c->frames = SLAB_FRAMES;
        if (c->size > 128 &&
            (SLAB_SIZE / 2 - SLAB_HDR) / c->size >= SLAB_HALF_MIN_OBJS)
            c->frames = SLAB_FRAMES / 2;
        c->nobj = (uint32_t)((c->frames * PAGE_SIZE - SLAB_HDR) / c->size);
        c->shift = (uint8_t)__builtin_ctz(c->size);
        uint64_t odd = c->size >> c->shift, inv = odd; /* odd * odd == 1 mod 8 */
        for (int k = 0; k < 5; k++)                    /* Newton: 3, 6, ... 96 correct bits */
            inv *= 2 - odd * inv;
        c->inv = inv;
        c->current = &dummy_slab;
        c->spare = NULL;
        list_init(&c->partial);
        c->mag_cap = (uint32_t)MIN((uint64_t)MAG_MAX, MAG_BYTES / c->size);
    }
    for (unsigned q = 0, i = 0; q <= HEAP_SMALL_MAX / 16; q++) {
        while (class_sizes[i] < q * 16)
            i++;
        class_of[q] = (uint8_t)i;
        if (q > 0)
            heap_fast.moff[q - 1] = (uint16_t)CPU_MAG_OFF(i);
    }
    for (unsigned i = 0; i < HEAP_SMALL_CLASSES; i++) { /* capacity 0, at address 0 (+1: locked) */
        mag_set_class(&cache_none.m[i], i);
        cache_none.m[i].base_l = cache_none.m[i].limit_l = 1;
    }
    for (unsigned k = 0; k < CPU_MAX; k++)
        heap_fast.cpu[k] = &cache_none;
    cache_create(cpu_index()); /* the booting CPU's set now; the others' on first use */
}
