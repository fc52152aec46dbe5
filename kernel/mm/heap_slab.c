/* The slab tier (1..HEAP_SMALL_MAX bytes) and its magazines.
 *
 * A slab is a run of 16 frames (or 8: a half slab, for classes above 128 B
 * while it still holds SLAB_HALF_MIN_OBJS objects) starting 64 KiB-aligned,
 * a 64-byte header, then equal objects of one size class. Invariants:
 *   - header magic == SLAB_MAGIC + the header's address (zero once released),
 *     so kfree finds a slab by aligning a pointer down to its granule and
 *     compares one word;
 *   - objects [0, carved) were handed out at least once; the rest were never
 *     touched (carved lazily, in order) and still hold poison;
 *   - a free object's word 1 is FREE_TAG ^ its address (kmalloc clears it);
 *     the tag alone is a hint: a double free is confirmed by finding the
 *     object on its slab's free list or in its class's magazine;
 *   - used == objects carved minus those on the free list: objects in the
 *     magazine count as used in their slab;
 *   - each slab is in exactly one state (where): the class's current slab,
 *     on its partial list, full (in no list; counted in nfull), or its spare;
 *     an empty slab is the current slab, the spare, or released;
 *   - a magazine holds at most MAG_MAX objects and MAG_BYTES of them, each
 *     tagged and poisoned like a free-list object, each once.
 * The fast paths (mag_pop, slab_pop, mag_push) are inline in heap_internal.h;
 * this file holds what they call when a slab changes state. */
#include "mm/heap_internal.h"

static const uint16_t class_sizes[HEAP_SMALL_CLASSES] = {
    16,   32,   48,   64,   80,   96,   112,  128,  144,  160,  176,  192,  208,  224,  240,  256,
    288,  320,  352,  384,  416,  448,  480,  512,  576,  640,  704,  768,  832,  896,  960,  1024,
    1152, 1280, 1408, 1536, 1664, 1792, 1920, 2048, 2304, 2560, 2816, 3072, 3328, 3584, 3840, 4096,
};

struct heap_class classes[HEAP_SMALL_CLASSES];
void *mag_slots[HEAP_SMALL_CLASSES][MAG_MAX];
uint8_t class_of[HEAP_SMALL_MAX / 16 + 1];
struct heap_class *class_for[HEAP_SMALL_MAX / 16];
struct slab dummy_slab;

static struct slab *slab_new(struct heap_class *c)
{
    paddr_t phys = heap_frames(c->frames, SLAB_SIZE);
    if (!phys)
        return NULL;
    struct slab *s = PHYS2VIRT(phys);
    memset(s, 0, SLAB_HDR);
    s->magic = (uintptr_t)s + SLAB_MAGIC;
    s->base = (char *)s + c->base_off;
    s->inv = c->inv;
    s->shift = c->shift;
    s->size = (uint16_t)c->size;
    s->nobj = c->nobj;
    s->cls = (uint8_t)(c - classes);
    poison(s->base, (size_t)c->nobj * c->size);
    /* No free list yet: objects are carved in order as they are first needed
     * (slab_carve), so a new slab costs the same for every class and touches
     * one cache line, not the whole 64 KiB. */
    c->nslabs++;
    return s;
}

static void slab_release(struct heap_class *c, struct slab *s)
{
    released_note(s, (size_t)c->frames * PAGE_SIZE, NULL);
    s->magic = 0;
    c->nslabs--;
    heap_frames_free(VIRT2PHYS(s), c->frames);
}

SLOW NORETURN void slab_panic(const char *what, const struct slab *s, const void *obj)
{
    panic("heap: %s %p (in slab %p of %u-byte objects)", what, USER(obj), (const void *)s, s->size);
}

/* Hands out s's next never-used object (s->carved < s->nobj). */
static void *slab_carve(struct heap_class *c, struct slab *s)
{
    void **obj = (void **)(s->base + (uint64_t)s->carved * s->size);
#if HEAP_POISON
    size_t bad = poison_scan(obj, s->size);
    if (unlikely(bad != s->size))
        panic("heap: write to memory never allocated: object %p (size %u) modified at offset %zu",
              USER(obj), s->size, bad - RZ_LEAD);
#endif
    s->carved++;
    obj[1] = NULL; /* not tagged free, whatever the memory held before */
    s->used++;
    c->allocs++;
    return obj;
}

/* The current slab's free list is empty: carve from it while it has
 * never-used objects; else it is full (and leaves every list: a full slab is
 * found again by kfree through its address, so it needs no links), and the
 * class continues with a partial slab, its spare, or a new slab. */
SLOW void *slab_alloc_slow(struct heap_class *c)
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

/* Index of ptr in slab s; panics when it is not an object start. */
static inline uint64_t slab_index(struct slab *s, const void *ptr, const char *op)
{
    uint64_t idx = slab_obj_index(s, ptr);
    if (unlikely(idx >= s->carved))
        slab_panic(op, s, ptr);
    return idx;
}

static bool mag_holds(const struct slab *s, const void *obj);

/* True when obj (an object start of s) is free. O(1) unless it carries the
 * free tag; then the free list and the class's magazine are searched to be
 * sure. */
bool slab_obj_free(const struct slab *s, void *const *obj)
{
    if (likely((uintptr_t)obj[1] != (FREE_TAG ^ (uintptr_t)obj)))
        return false;
    uint64_t n = 0;
    for (void *const *o = s->free; o && n <= s->nobj; o = *o, n++)
        if (o == obj)
            return true;
    return mag_holds(s, obj);
}

/* Links a checked, already poisoned object start into its slab's free list. */
static ALWAYS_INLINE void slab_link(struct slab *s, void *ptr)
{
    void **obj = ptr;
    void *head = s->free;
    obj[0] = head;
    s->free = obj; /* between the two object stores: keeps gcc from pairing them via SSE */
    obj[1] = (void *)(FREE_TAG ^ (uintptr_t)obj);
    if (unlikely(!head)) { /* the slab was full (or is the current one) */
        s->used--;
        slab_free_slow(s);
    } else if (unlikely(--s->used == 0)) {
        slab_free_slow(s);
    }
}

/* Pushes a checked object start onto its slab's free list. */
static ALWAYS_INLINE void slab_push(struct slab *s, void *ptr)
{
    poison(ptr, s->size);
    slab_link(s, ptr);
}

/* Gives the newest `n` objects of magazine m back to their slabs (which may
 * then become partial, or empty and be released). */
static SLOW void mag_flush(struct magazine *m, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++) {
        void **obj = *--m->top;
        obj[1] = (void *)(FREE_TAG ^ (uintptr_t)obj); /* the poison may have covered word 1 */
        slab_link(slab_of_obj(obj), obj);
    }
}

/* mag_push on a full magazine: the object goes to its slab's free list
 * directly (poisoned and tagged already), so a kfree costs at most one slab
 * push and its consequences, as without magazines. */
SLOW void mag_push_full(void *obj)
{
    slab_link(slab_of_obj(obj), obj);
}

/* True when obj (tagged free) is in its class's magazine. */
static bool mag_holds(const struct slab *s, const void *obj)
{
    const struct magazine *m = &classes[s->cls].mag;
    for (void *const *p = m->slot; p < m->top; p++)
        if (*p == obj)
            return true;
    return false;
}

/* kfree of a slab pointer that failed a fast check: not an object start, or
 * it carries the free tag (a double free, or user data equal to the tag). */
SLOW void slab_free_checked(struct slab *s, void *ptr)
{
    slab_index(s, ptr, "kfree of a pointer that is not a block start:");
    if (slab_obj_free(s, ptr))
        slab_panic("double free of", s, ptr);
    rz_check(ptr, s->size, "kfree");
    slab_push(s, ptr);
}

/* The class of the slab whose header would be at s (a granule start in the
 * HHDM), when the heap holds that granule and the header is a sound slab
 * header; NULL otherwise. Reads s only when the granule is held. */
const struct heap_class *slab_class(const struct slab *s)
{
    uintptr_t phys = (uintptr_t)s - hhdm_offset;
    if (phys >= hhdm_size || !granule_held(phys) || s->magic != (uintptr_t)s + SLAB_MAGIC ||
        s->cls >= HEAP_SMALL_CLASSES)
        return NULL;
    const struct heap_class *c = &classes[s->cls];
    if (s->where < SLAB_CURRENT || s->where > SLAB_SPARE || s->size != c->size ||
        s->nobj != c->nobj || s->carved > s->nobj)
        return NULL;
    return c;
}

/* Objects in use in the class (O(partial slabs); full slabs are all used). */
uint64_t class_live(const struct heap_class *c)
{
    uint64_t live = c->current->used + c->nfull * c->nobj;
    const struct slab *s;
    list_for_each_entry(s, &c->partial, link)
        live += s->used;
    return live - MAG_N(&c->mag); /* magazine objects count as used in their slabs */
}

void slab_init(void)
{
    memset(classes, 0, sizeof(classes));
    memset(&dummy_slab, 0, sizeof(dummy_slab));
    for (unsigned i = 0; i < HEAP_SMALL_CLASSES; i++) {
        struct heap_class *c = &classes[i];
        c->size = class_sizes[i];
        c->align = (uint32_t)(c->size & -c->size);
        if (c->align > HEAP_SMALL_MAX)
            c->align = HEAP_SMALL_MAX;
        c->base_off = (uint32_t)ALIGN_UP(SLAB_HDR, c->align);
        /* Classes above 128 B have few live objects each, so the partly used
         * slabs a class strands dominate its waste: they get half slabs (still
         * SLAB_SIZE-aligned, so kfree finds the header the same way) as long
         * as a half slab holds at least SLAB_HALF_MIN_OBJS objects. */
        c->frames = SLAB_FRAMES;
        if (c->size > 128 &&
            (SLAB_SIZE / 2 - c->base_off) / c->size >= SLAB_HALF_MIN_OBJS)
            c->frames = SLAB_FRAMES / 2;
        c->nobj = (uint32_t)((c->frames * PAGE_SIZE - c->base_off) / c->size);
        c->shift = (uint8_t)__builtin_ctz(c->size);
        uint64_t odd = c->size >> c->shift, inv = odd; /* odd * odd == 1 mod 8 */
        for (int k = 0; k < 5; k++)                    /* Newton: 3, 6, ... 96 correct bits */
            inv *= 2 - odd * inv;
        c->inv = inv;
        c->current = &dummy_slab;
        c->spare = NULL;
        list_init(&c->partial);
        c->mag.slot = mag_slots[i];
        c->mag.top = c->mag.slot;
        c->mag.limit = c->mag.slot + MIN((uint64_t)MAG_MAX, MAG_BYTES / c->size);
    }
    for (unsigned q = 0, i = 0; q <= HEAP_SMALL_MAX / 16; q++) {
        while (class_sizes[i] < q * 16)
            i++;
        class_of[q] = (uint8_t)i;
        if (q > 0)
            class_for[q - 1] = &classes[i];
    }
}

void slab_trim(void)
{
    for (unsigned i = 0; i < HEAP_SMALL_CLASSES; i++) {
        struct heap_class *c = &classes[i];
        if (MAG_N(&c->mag))
            mag_flush(&c->mag, MAG_N(&c->mag));
        if (c->current != &dummy_slab && c->current->used == 0) {
            slab_release(c, c->current);
            c->current = &dummy_slab;
        }
        if (c->spare) {
            slab_release(c, c->spare);
            c->spare = NULL;
        }
    }
}
