/* The heap's private header: what its tiers share (kernel/mm/heap*.c only;
 * callers use mm/heap.h). docs/memory.md (heap section) has the design.
 *
 * Invariants every tier relies on:
 *   - every heap run of frames (a slab, a medium chunk, a large block's run)
 *     starts SLAB_SIZE-aligned in physical memory, so a granule (a 64 KiB
 *     aligned block) overlaps at most one run, and a pointer aligned down to
 *     its granule lands on that run's first byte (a slab's header);
 *   - granule_map says which granules some run overlaps, granule_extent how
 *     much of each the run owns: nothing in front of a pointer is read
 *     before heap_owns() says the heap owns it (heap_runs.c);
 *   - the HHDM maps RAM with pages of at least SLAB_SIZE, so reading a held
 *     granule's first bytes never faults;
 *   - with HEAP_REDZONES the tiers work on inner blocks (USER/INNER convert),
 *     without it both are the identity and rz_check() compiles to nothing.
 * The fast paths (kmalloc/kfree of slab objects) are static inline here so
 * that heap.c compiles them into kmalloc and kfree without a call. */
#pragma once

#include "lib/list.h"
#include "lib/printf.h"
#include "lib/string.h"
#include "mm/frame.h"
#include "mm/heap.h"
#include "mm/mm.h"

#define likely(x) __builtin_expect(!!(x), 1)
#define unlikely(x) __builtin_expect(!!(x), 0)
#define SLOW __attribute__((noinline, cold)) /* keeps the fast paths small */
#define ALWAYS_INLINE inline __attribute__((always_inline))

#define POISON_FREE 0x6b

/* ---- small tier: slabs ------------------------------------------------- */

#define SLAB_SIZE KiB(64)
#define SLAB_FRAMES (SLAB_SIZE / PAGE_SIZE)
/* Half slabs (see the top): the upper 32 KiB of their 64 KiB-aligned block
 * stay with the frame allocator for single-frame users; a stray pointer there
 * aligns down to the half slab's header and fails its boundary check. */
#define SLAB_HALF_MIN_OBJS 32
/* A slab header's magic is its own address plus this (one lea + cmp in kfree);
 * a released slab's magic is zeroed. */
#define SLAB_MAGIC 0x51AB5EEDu

enum slab_where { SLAB_CURRENT = 1, SLAB_PARTIAL = 2, SLAB_FULL = 3, SLAB_SPARE = 4 };

/* Object index without division: size = odd * 2^shift, inv = odd^-1 mod 2^64.
 * For any 64-bit off, ror(off * inv, shift) equals off / size when size
 * divides off and exceeds (2^64 - 1) / size otherwise, so one compare with
 * nobj checks both "inside the slab" and "at an object boundary". */
struct slab {
    uint64_t magic;           /* SLAB_MAGIC + address of this header */
    void *free;               /* singly linked free objects (link in the first word) */
    char *base;               /* first object */
    uint64_t inv;             /* inverse of the odd part of size, mod 2^64 */
    uint32_t nobj;            /* objects in this slab */
    uint32_t carved;          /* objects [0, carved) were ever handed out (lazy carving) */
    uint16_t size;            /* object size */
    uint16_t used;            /* objects handed out */
    uint8_t shift;            /* size = odd part << shift */
    uint8_t cls;              /* index into classes[] */
    uint8_t where;            /* enum slab_where */
    struct list_node link;    /* on the class's partial list (unlinked otherwise) */
};
#define SLAB_HDR sizeof(struct slab)
#define FREE_TAG 0xF4EEB10C6B6B6B6Bull /* word 1 of a free object is FREE_TAG ^ address */
_Static_assert(sizeof(struct slab) == 64, "slab header layout");
_Static_assert((SLAB_SIZE - SLAB_HDR) / 16 < 65536, "object count fits a u16");

/* Magazines: a class keeps up to MAG_MAX recently freed objects (at most
 * MAG_BYTES of them) as a stack of pointers; kmalloc takes from it first. */
#define MAG_MAX 128
#define MAG_BYTES KiB(32)
struct magazine {
    void **top;   /* the next free slot: slot[0..top) hold objects, newest last */
    void **limit; /* slot + capacity (MAG_BYTES of objects, at most MAG_MAX) */
    void **slot;  /* mag_slots[class] */
};
#define MAG_N(m) ((uint32_t)((m)->top - (m)->slot))
#define MAG_CAP(m) ((uint32_t)((m)->limit - (m)->slot))

struct heap_class {
    struct slab *current; /* allocations come from here; &dummy_slab when none */
    struct list_node partial; /* slabs with free objects (not current), by link */
    uint64_t nfull;       /* slabs without free objects (not current; in no list) */
    struct slab *spare;   /* one empty slab kept back (hysteresis), or NULL */
    uint64_t allocs;      /* frees = allocs - live, counted in heap_get_stats */
    uint32_t size, align, base_off, nobj;
    uint32_t frames; /* slab size in frames: SLAB_FRAMES or SLAB_FRAMES / 2 */
    uint64_t inv;
    uint8_t shift;
    uint64_t nslabs;
    struct magazine mag; /* recently freed objects (see the top) */
    uint64_t pad;
};
/* 128 bytes, so that kfree finds a slab's class (and its magazine) with a shift */
_Static_assert(sizeof(struct heap_class) == 128, "class layout");


extern struct heap_class classes[HEAP_SMALL_CLASSES];
extern void *mag_slots[HEAP_SMALL_CLASSES][MAG_MAX];
/* class_of[(size + 15) / 16] for 1 <= size <= HEAP_SMALL_MAX */
extern uint8_t class_of[HEAP_SMALL_MAX / 16 + 1];
/* class_for[(size - 1) / 16] == &classes[class_of[(size + 15) / 16]]: kmalloc's lookup */
extern struct heap_class *class_for[HEAP_SMALL_MAX / 16];
/* Has no free objects: a class without a slab points here so that the fast
 * path needs no NULL test. Never in any list, never freed into. */
extern struct slab dummy_slab;

/* ---- medium tier: segments ----------------------------------------------- */

#define MCHUNK_SIZE KiB(256)
#define MCHUNK_FRAMES (MCHUNK_SIZE / PAGE_SIZE)
#define MCHUNK_MAGIC 0x3ED1C4C4A5EC0DE5ull
#define SEG_MAGIC 0x5E67A11Cu
#define TOMB_MAGIC 0xDEADF4EEu
#define SEG_USED 1u
#define SEG_FIRST 2u /* first segment of its chunk (no predecessor) */
#define SEG_END 4u   /* the sentinel closing a chunk */
#define SEG_LARGE 8u /* header of a large block */
#define SEG_HDR 16u
#define SEG_MIN 32u /* header + the two free-list links */

struct seg {
    uint32_t size;      /* whole segment, header included; multiple of 16 */
    uint32_t prev_size; /* size of the previous segment (0 when SEG_FIRST) */
    uint32_t magic;     /* SEG_MAGIC ^ mix(address) */
    uint32_t flags;
};
struct free_seg {
    struct seg h;
    struct list_node link; /* on mfree[seg_list_index(h.size)] */
};

struct mchunk {
    uint64_t magic;        /* MCHUNK_MAGIC ^ address */
    struct list_node link; /* on mchunks */
    uint64_t pad[3];
};
#define MCHUNK_HDR sizeof(struct mchunk)
#define MCHUNK_SPACE (MCHUNK_SIZE - MCHUNK_HDR - SEG_HDR) /* one free segment filling it */
_Static_assert(MCHUNK_HDR % 16 == 0 && MCHUNK_HDR == 48, "chunk header keeps payloads 16-aligned");

#define FL_MIN 5  /* 2^5 = SEG_MIN */
#define FL_MAX 17 /* MCHUNK_SPACE < 2^18 */
#define FL_N (FL_MAX - FL_MIN + 1)
#define SL_BITS 3
#define SL_N (1u << SL_BITS)
_Static_assert(MCHUNK_SPACE < (1u << (FL_MAX + 1)), "segment sizes fit the lists");

extern struct list_node mfree[FL_N * SL_N]; /* free segments by size (seg_list_index) */
extern uint32_t fl_map;                      /* bit f: some list of first level f is not empty */
extern uint8_t sl_map[FL_N];                 /* bit s of [f]: list f * SL_N + s is not empty */
extern struct list_node mchunks;             /* every medium chunk held */
extern uint64_t m_nchunks, m_empty_chunks;
extern uint64_t m_used_bytes; /* sum of used segment sizes (headers included) */
extern uint64_t m_free_bytes; /* sum of free segment sizes */
extern uint64_t m_allocs, m_frees;

/* ---- large tier ------------------------------------------------------------ */

#define LARGE_MAGIC 0x1A26EB10CC0FFEE5ull

struct large {
    uint64_t magic;        /* LARGE_MAGIC ^ address */
    struct list_node link; /* on larges */
    paddr_t base;   /* first frame of the run */
    uint64_t pages; /* frames in the run */
    uint64_t pad;
    struct seg tag; /* SEG_USED | SEG_LARGE, right before the pointer */
};
_Static_assert(sizeof(struct large) == 64, "large header layout");

extern struct list_node larges; /* every live large block */
extern uint64_t l_count, l_pages, l_bytes, l_allocs, l_frees;

/* ---- runs of frames and the granule map (heap_runs.c) ------------------------------------ */

extern uint64_t pages_held; /* frames taken from the frame allocator */

/* One bit per SLAB_SIZE granule of physical memory (up to the frame
 * allocator's top frame): set while some heap run overlaps the granule. A
 * granule overlaps at most one run, because runs start SLAB_SIZE-aligned and
 * only whole granules of a run are ever given back early (large_alloc).
 * kfree and friends look at a pointer's granule before reading anything at
 * its start: a pointer the heap never gave may lie in a granule whose first
 * page is not mapped at all (memory below a usable region that does not
 * start on a granule boundary).
 *
 * A held granule's start is always the run's (runs start on a granule), but
 * its end need not be: a half slab owns 8 of its 16 frames, a large run may
 * end anywhere in its last granule, and the frames after the run's end
 * belong to someone else and may be unmapped. granule_extent keeps, per
 * granule, a nibble: the frames the run owns from the granule's start, minus
 * one (meaningful while the granule is held). heap_owns() consults it before
 * the heap reads a header in front of a pointer, so a pointer in (or just
 * after) such a tail is refused without touching memory the heap does not
 * own. Written when a run is taken, read only off the slab fast path. */
extern uint64_t *granule_map;
extern uint8_t *granule_extent;
extern uint64_t granule_count;

static inline bool granule_held(uintptr_t phys)
{
    uint64_t g = phys / SLAB_SIZE;
    return g < granule_count && ((granule_map[g / 64] >> (g % 64)) & 1);
}

/* Bytes of held granule g that its run owns, from the granule's start. */
static inline uint64_t granule_owned_bytes(uint64_t g)
{
    return ((uint64_t)((granule_extent[g / 2] >> (4 * (g % 2))) & 15) + 1) * PAGE_SIZE;
}

/* True when every byte of [phys, phys + len) lies in memory a heap run owns
 * (len <= SLAB_SIZE; the range may span two granules). Reads only the maps. */
static inline bool heap_owns(uintptr_t phys, size_t len)
{
    uintptr_t end = phys + len;
    for (uint64_t g = phys / SLAB_SIZE; g <= (end - 1) / SLAB_SIZE; g++) {
        if (!granule_held(g * SLAB_SIZE) ||
            MIN(end, (g + 1) * SLAB_SIZE) - g * SLAB_SIZE > granule_owned_bytes(g))
            return false;
    }
    return true;
}

/* ---- helpers ----------------------------------------------------------------- */

static inline uint32_t mix32(const void *p)
{
    uint64_t a = (uintptr_t)p;
    return (uint32_t)(a >> 4) ^ (uint32_t)(a >> 36);
}

/* The magic is a checksum of the address and the other three fields, so an
 * overflow that rewrites any part of a header is noticed. */
static inline uint32_t seg_magic(const struct seg *h)
{
    return SEG_MAGIC ^ mix32(h) ^ (h->size * 0x9E3779B1u) ^ (h->prev_size * 0x85EBCA77u) ^
           (h->flags * 0xC2B2AE3Du);
}
static inline void seg_seal(struct seg *h)
{
    h->magic = seg_magic(h);
}
static inline uint32_t tomb_magic(const struct seg *h)
{
    return TOMB_MAGIC ^ mix32(h);
}
static inline struct seg *seg_next(struct seg *h)
{
    return (struct seg *)((char *)h + h->size);
}

static inline void poison(void *p, size_t n)
{
#if HEAP_POISON
    memset(p, POISON_FREE, n);
#else
    (void)p, (void)n;
#endif
}

/* Offset of the first byte that is not POISON_FREE, or n. */
static UNUSED size_t poison_scan(const void *p, size_t n)
{
    const unsigned char *b = p;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) { /* a word at a time while it matches */
        uint64_t w;
        memcpy(&w, b + i, 8);
        if (w != 0x6b6b6b6b6b6b6b6bull)
            break;
    }
    for (; i < n; i++)
        if (b[i] != POISON_FREE)
            return i;
    return n;
}

/* ---- redzones (HEAP_REDZONES) ------------------------------------------------------------- */

#define RZ_LEAD HEAP_REDZONE_LEAD /* 16 before the caller's pointer: keeps 16-byte alignment */
#define RZ_TAIL 16u               /* at least this much after the caller's bytes */
_Static_assert(!HEAP_REDZONES || RZ_LEAD + RZ_TAIL == HEAP_REDZONE_OVERHEAD, "heap.h agrees");
#define RZ_BYTE 0xfdu /* the tail's pattern */

/* The caller's pointer for an inner (tier) pointer, and back. Integer
 * arithmetic, so that INNER(NULL) is well defined (and outside the HHDM). */
#define USER(inner) ((void *)((uintptr_t)(inner) + RZ_LEAD))
#define INNER(user) ((void *)((uintptr_t)(user)-RZ_LEAD))

#if HEAP_REDZONES
/* Arms the redzones of a block of `size` bytes in an inner block of `cap`. */
void rz_arm(void *inner, size_t size, size_t cap);
/* True when the redzones of the block in inner block `inner` (capacity cap)
 * are intact; otherwise writes the report into why (no "heap: " prefix).
 * Never faults: reads only the inner block. */
bool rz_intact(const void *inner, size_t cap, const char *op, char *why, size_t len);
/* Panics with rz_intact's report when the redzones are damaged. */
SLOW void rz_check_slow(const void *inner, size_t cap, const char *op);
/* The size the caller asked for (the redzones were checked). */
size_t rz_size(const void *inner);
#endif

/* Panics when the redzones around the block at `inner` (tier capacity cap)
 * were modified. Empty without HEAP_REDZONES. */
static ALWAYS_INLINE void rz_check(const void *inner, size_t cap, const char *op)
{
#if HEAP_REDZONES
    rz_check_slow(inner, cap, op);
#else
    (void)inner, (void)cap, (void)op;
#endif
}

/* ---- heap_runs.c: frames, granules, released runs, what owns a pointer --------------------- */

/* Frames for the heap (SLAB_SIZE-aligned or more), marked held in the granule
 * map; on exhaustion gives back cached memory and tries again. 0 if none. */
paddr_t heap_frames(size_t count, uint64_t align);
/* Gives frames back; the granules they overlap are no longer held (the
 * caller re-marks a granule it still holds part of). */
void heap_frames_free(paddr_t p, size_t count);
/* Remembers a run the heap gave back, for "double free" reports. */
void released_note(const void *start, size_t bytes, const void *block);
/* True when v (in the HHDM) lies in a run the heap holds now. Slow paths only. */
bool heap_holds(uintptr_t v);
/* The slab holding inner pointer ptr, or NULL when ptr is in a held granule
 * that is no slab. Panics when ptr is outside the direct map or no held granule. */
struct slab *slab_of(void *ptr, const char *op);
/* The segment or large header of a non-slab inner pointer; panics when there is none. */
struct seg *big_header(void *ptr, const char *op);
/* Panics: ptr lies outside the direct map. */
SLOW NORETURN void outside_panic(const char *op, const void *ptr);
/* Panics: ptr lies in the direct map but in no granule the heap holds. */
SLOW NORETURN void not_held_panic(const char *op, const void *ptr);
/* Sets up the granule map (frame_init first) and forgets every run. */
void runs_init(void);

/* ---- heap_slab.c: the slab tier and its magazines ---------------------------------------- */

/* The current slab's free list is empty: carve, or move to another slab. */
SLOW void *slab_alloc_slow(struct heap_class *c);
/* mag_push on a full magazine: the object goes to its slab's free list. */
SLOW void mag_push_full(void *obj);
/* kfree of a slab pointer that failed a fast check (not an object start, or tagged free). */
SLOW void slab_free_checked(struct slab *s, void *ptr);
/* True when obj (an object start of s) is free (its slab's list or its class's magazine). */
bool slab_obj_free(const struct slab *s, void *const *obj);
/* The class of a sound slab header at s (a granule start), or NULL; reads s
 * only when its granule is held. */
const struct heap_class *slab_class(const struct slab *s);
/* Panics naming obj (a caller's pointer: USER) and its slab. */
SLOW NORETURN void slab_panic(const char *what, const struct slab *s, const void *obj);
/* Objects in use in the class. */
uint64_t class_live(const struct heap_class *c);
/* Sets up the size classes and empty magazines. */
void slab_init(void);
/* Empties every magazine and releases every empty slab. */
void slab_trim(void);

/* Object index of p in s (see struct slab): >= s->nobj when p is not the
 * start of one of s's objects (callers compare with s->carved, which also
 * refuses objects never handed out). One subtract, multiply and rotate. */
static ALWAYS_INLINE uint64_t slab_obj_index(const struct slab *s, const void *p)
{
    uint64_t x = ((uintptr_t)p - (uintptr_t)s->base) * s->inv;
    return (x >> s->shift) | (x << ((64 - s->shift) & 63));
}

/* The slab an object of the heap lies in (its 64 KiB-aligned granule start). */
static inline struct slab *slab_of_obj(const void *obj)
{
    return (struct slab *)((uintptr_t)obj - (((uintptr_t)obj - hhdm_offset) & (SLAB_SIZE - 1)));
}

/* Takes the newest object of c's magazine (not empty). */
static ALWAYS_INLINE void *mag_pop(struct heap_class *c)
{
    struct magazine *m = &c->mag;
    void **obj = *--m->top;
#if HEAP_POISON
    if (unlikely((uintptr_t)obj[1] != (FREE_TAG ^ (uintptr_t)obj)))
        panic("heap: use after free: object %p (size %u) modified at offset 8", USER(obj),
              c->size);
    size_t bad = poison_scan(obj + 2, c->size - 2 * sizeof(void *));
    if (unlikely(bad != c->size - 2 * sizeof(void *)))
        panic("heap: use after free: object %p (size %u) modified at offset %zu", USER(obj),
              c->size, bad + 2 * sizeof(void *) - RZ_LEAD);
#endif
    obj[1] = NULL; /* no longer tagged free */
    c->allocs++;
    return obj;
}

/* Pops one object from the class's current slab. */
static ALWAYS_INLINE void *slab_pop(struct heap_class *c)
{
    struct slab *s = c->current;
    void **obj = s->free;
    if (unlikely(!obj))
        return slab_alloc_slow(c);
#if HEAP_POISON
    if (unlikely(slab_obj_index(s, obj) >= s->carved ||
                 (uintptr_t)obj[1] != (FREE_TAG ^ (uintptr_t)obj)))
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

/* Puts a checked object start of a class into the class's magazine m:
 * poisoned and tagged free like a free-list object, touching no slab header
 * (a leaf: the full case leaves by a tail call). */
static ALWAYS_INLINE void mag_push(struct magazine *m, void *ptr, uint32_t size)
{
    void **obj = ptr;
    poison(ptr, size);
    obj[1] = (void *)(FREE_TAG ^ (uintptr_t)obj);
    void **top = m->top;
    if (unlikely(top == m->limit)) {
        mag_push_full(obj);
        return;
    }
    *top = obj;
    m->top = top + 1;
}

/* ---- heap_segment.c: the medium tier ------------------------------------------------------ */

/* A used segment of at least size bytes whose payload plus prefix is aligned
 * to align (<= PAGE_SIZE); NULL when no memory. */
void *medium_alloc(size_t size, size_t align, uint32_t prefix);
/* Frees the used segment h (payload ptr), merging free neighbours. */
void medium_free(struct seg *h, void *ptr);
/* Resizes the used segment at ptr in place to hold size bytes (shrinking, or
 * growing into a free successor); false when it cannot. */
bool medium_resize(struct seg *h, void *ptr, size_t size);
/* Writes and seals a segment header. */
void seg_write(struct seg *h, uint32_t size, uint32_t prev_size, uint32_t flags);
/* The free list a segment of `size` bytes lives on. */
unsigned seg_list_index(uint32_t size);
/* Empty free lists, no chunk. */
void medium_init(void);
/* Releases every wholly free chunk. */
void medium_trim(void);

/* ---- heap_large.c: the large tier ---------------------------------------------------------- */

/* A run of frames holding size bytes at a pointer whose address plus prefix is aligned to align. */
void *large_alloc(size_t size, size_t align, uint32_t prefix);
/* The large block whose tag is before ptr; panics when its header is not sound. */
struct large *large_of(struct seg *tag, const void *ptr, const char *op);
/* Bytes usable in a large block. */
uint64_t large_usable(const struct large *l);
/* Returns a large block's frames. */
void large_free(struct large *l);
/* No large block. */
void large_init(void);
