/* The heap's private header: what its tiers share (kernel/mm/heap*.c only;
 * callers use mm/heap.h). docs/memory.md (heap section) has the design.
 *
 * Invariants every tier relies on:
 *   - slabs and medium chunks start SLAB_SIZE-aligned in physical memory, a
 *     slab at the start of its granule (a 64 KiB aligned block), its objects
 *     from that first byte, its header in its last 64 bytes; large runs
 *     start on any frame (aligned only as their block needs);
 *   - the granule table (one 32-bit entry per granule) says which frames a
 *     heap run owns and which granules start a slab, with the slab's class
 *     and carved count: kfree's fast path needs nothing else to check a
 *     slab pointer, and nothing in front of a pointer is read before
 *     heap_owns() says the heap owns it (heap_runs.c);
 *   - with HEAP_REDZONES the tiers work on inner blocks (USER/INNER convert),
 *     without it both are the identity and rz_check() compiles to nothing.
 * The fast paths (kmalloc/kfree of slab objects) are static inline here so
 * that heap.c compiles them into kmalloc and kfree without a call. */
#pragma once

#include "arch/x86_64/cpu_local.h"
#include "lib/list.h"
#include "lib/panic.h"
#include "lib/printf.h"
#include "lib/spinlock.h"
#include "lib/string.h"
#include "mm/frame.h"
#include "mm/heap.h"
#include "mm/mm.h"

#define likely(x) __builtin_expect(!!(x), 1)
#define unlikely(x) __builtin_expect(!!(x), 0)
#define SLOW __attribute__((noinline, cold)) /* keeps the fast paths small */
#define ALWAYS_INLINE inline __attribute__((always_inline))

#define POISON_FREE 0x6b
#define POISON_WORD 0x6b6b6b6b6b6b6b6bull /* a word of POISON_FREE bytes */

struct cpu_mag;

/* ---- locks ------------------------------------------------------------------ */

/* Every heap lock a CPU takes goes through heap_lock/heap_unlock, which keep
 * a per-CPU stack of them, so that a misuse report can release them before
 * it panics: a test that catches the panic (ktest_expect_panic,
 * HOST_EXPECT_PANIC) finds the heap usable. */
void heap_lock(struct spinlock *l);
void heap_unlock(struct spinlock *l);
/* Releases every heap lock (and cache lock) this CPU holds, newest first. */
void heap_unlock_all(void);
/* Notes that this CPU now holds (or no longer holds) the lock of cpu_mag m
 * in a slow path. */
void heap_note_mag(struct cpu_mag *m);
void heap_forget_mag(void);
#undef panic
#define panic(...) (heap_unlock_all(), panic_at(__FILE__, __LINE__, __VA_ARGS__))

/* The locks of the medium tier, the large tier and the runs (heap_segment.c,
 * heap_large.c, heap_runs.c); every class has its own (struct heap_class). */
extern struct spinlock seg_lock, large_lock, runs_lock;

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
    uint16_t nobj;            /* objects in this slab */
    uint16_t moff;            /* CPU_MAG_OFF(cls): kfree's way to its class's cpu_mag */
    uint32_t carved;          /* objects [0, carved) were ever handed out (lazy carving) */
    uint16_t size;            /* object size */
    uint16_t used;            /* objects handed out */
    uint8_t shift;            /* size = odd part << shift */
    uint8_t cls;              /* index into classes[] */
    uint8_t where;            /* enum slab_where */
    struct list_node link;    /* on the class's partial list (unlinked otherwise) */
};
#define SLAB_HDR sizeof(struct slab)
/* Word 1 of a free object (kmalloc clears it). A hint only (user data may
 * equal it; kfree confirms in its slow path), so one constant: no per-address
 * mix to compute on the fast paths. */
#define FREE_TAG 0xF4EEB10C6B6B6B6Bull
_Static_assert(sizeof(struct slab) == 64, "slab header layout");
_Static_assert((SLAB_SIZE - SLAB_HDR) / 16 < 65536, "object count fits a u16");

/* Magazines (Bonwick & Adams, "Magazines and Vmem", USENIX 2001): a
 * magazine is a stack of up to MAG_MAX objects of one class (at most
 * MAG_BYTES of them). Every CPU has, per class, a loaded and a previous
 * magazine (struct cpu_mag); kmalloc pops from the loaded one, kfree pushes
 * onto it, and when it runs empty or full the two are swapped, so alternating
 * alloc/free at a boundary never reaches the class. Only when both are
 * unusable does the CPU take its class's lock and trade with the class's
 * depot: a full magazine for its empty one (alloc) or an empty one for its
 * full one (free). The number of magazines is fixed (two per class per CPU
 * that ever allocated): every trade is one for one, the previous magazine is
 * always full or empty, the depot's full list holds only full magazines and
 * its empty list only empty ones. Objects in magazines are free (tagged and
 * poisoned like free-list objects) but count as used in their slabs. */
#define MAG_MAX 128
#define MAG_BYTES KiB(32)
struct magazine {
    struct magazine *next; /* on the depot's full or empty list (class lock) */
    uint32_t n;            /* objects held; while loaded, the cpu_mag's top says */
    uint32_t cap;          /* capacity: MIN(MAG_MAX, MAG_BYTES / size) */
    void *obj[];           /* obj[0..n): objects, newest last */
};
#define MAG_HDR sizeof(struct magazine)

/* One CPU's magazines of one class, and their lock. The lock is bit 0 of
 * `top` (slot pointers are 8-aligned): one locked bts takes it, and the
 * store of the new top that ends every operation releases it, so the fast
 * paths pay two instructions for it. While it is held, top, base_l and
 * limit_l are all one byte past the slot pointers they stand for, so the
 * empty and full tests and the slot addresses need no masking. Its CPU
 * takes it for every operation on the class; another CPU takes it only to
 * drain or read the magazines (out of memory, heap_check, statistics,
 * double-free checks), so on the fast path it is uncontended. It comes
 * before every ranked lock: a CPU holding it may take class, segment, runs
 * and frame locks; nobody takes it while holding one of those. Every field
 * is written only while the lock is held. */
struct cpu_mag {
    uintptr_t top;            /* next free slot of the loaded magazine; bit 0: locked */
    uintptr_t base_l;         /* loaded->obj + 1: empty when top == base_l (locked) */
    uintptr_t limit_l;        /* loaded->obj + cap + 1: full when top == limit_l (locked) */
    struct magazine *loaded;  /* objects [base, top) */
    struct magazine *prev;    /* full or empty; swapped with loaded */
    uint64_t allocs;          /* allocations this CPU served from this class's magazines */
    /* The class's constants (written once, before the set is published), so
     * that kfree's boundary check reads the line it writes anyway: */
    uint64_t inv;             /* the class's slab_obj_index inverse */
    uint16_t size;            /* object size of the class */
    uint16_t pad0;
    uint8_t shift;            /* size = odd part << shift */
    uint8_t cls;              /* index into classes[] */
    uint16_t pad;
};
_Static_assert(sizeof(struct cpu_mag) == 64, "a class's cpu_mag lies at 64 * (1 + class)");

/* A CPU's magazine set, allocated from frames the first time the CPU
 * allocates (CPU 0's at heap_init). Holding every cpu_mag lock of every set
 * (caches_lock_all) freezes the whole small tier: every change of a slab, a
 * depot or a magazine happens under some cpu_mag lock. */
struct cpu_cache {
    uint32_t cpu;      /* owner's cpu_index() */
    uint32_t frames;   /* frames this set and its magazines occupy */
    uint64_t pad[7];
    struct cpu_mag m[HEAP_SMALL_CLASSES]; /* at 64 * (1 + class index) */
};
_Static_assert(__builtin_offsetof(struct cpu_cache, m) == 64, "cpu_mag offsets");

/* What the fast paths look up, in one object so that one address register
 * reaches both tables: the running CPU's magazine set (cache_none until the
 * CPU first allocates), and per size the offset of its class's cpu_mag in a
 * set. Written at heap_init and when a CPU's set is made (release store). */
struct heap_fast {
    struct cpu_cache *cpu[CPU_MAX];
    uint16_t moff[HEAP_SMALL_MAX / 16]; /* moff[(size - 1) / 16] */
};
extern struct heap_fast heap_fast;
/* The set of a CPU that has none yet (or could not get the memory): every
 * magazine has capacity 0, so both fast paths fall into their slow paths. */
extern struct cpu_cache cache_none;

#define CPU_MAG_OFF(cls) (64u * (1u + (cls)))
static ALWAYS_INLINE struct cpu_mag *cpu_mag_at(struct cpu_cache *pc, uint32_t off)
{
    return (struct cpu_mag *)((char *)pc + off);
}

/* Takes m's lock when it is free (true); false when another CPU holds it. */
static ALWAYS_INLINE bool mag_trylock(struct cpu_mag *m)
{
#if defined(__SANITIZE_THREAD__)
    return !(__atomic_fetch_or(&m->top, 1, __ATOMIC_ACQUIRE) & 1);
#else
    bool was;
    __asm__ volatile("lock btsq $0, %0" : "+m"(m->top), "=@ccc"(was)::"memory");
    return !was;
#endif
}
/* m's top while its lock is held: the slot pointer plus 1. */
static ALWAYS_INLINE uintptr_t mag_top_l(const struct cpu_mag *m)
{
    return __atomic_load_n(&m->top, __ATOMIC_RELAXED);
}
/* Releases m's lock, the loaded magazine's next free slot now being `top`
 * (a slot pointer plus 1, as mag_top_l gives). */
static ALWAYS_INLINE void mag_unlock(struct cpu_mag *m, uintptr_t top_l)
{
    __atomic_store_n(&m->top, top_l - 1, __ATOMIC_RELEASE);
}
/* Objects in m's loaded magazine (lock held). */
static ALWAYS_INLINE uint32_t mag_loaded_n(const struct cpu_mag *m)
{
    return (uint32_t)((mag_top_l(m) - m->base_l) / sizeof(void *));
}
/* Spins until m's lock is taken (slow paths, drains). */
void mag_lock(struct cpu_mag *m);

/* The class's shared part. `lock` (rank LOCK_RANK_HEAP_DEPOT) protects every
 * field below it, every slab header's free, used, carved and where, and the
 * depot; it is taken only by a CPU holding its own cache lock (or all of
 * them). size .. shift are written at heap_init only. */
struct heap_class {
    struct spinlock lock;
    struct slab *current; /* allocations come from here; &dummy_slab when none */
    struct list_node partial; /* slabs with free objects (not current), by link */
    uint64_t nfull;       /* slabs without free objects (not current; in no list) */
    struct slab *spare;   /* one empty slab kept back (hysteresis), or NULL */
    uint64_t allocs;      /* objects handed out straight from slabs (magazines count their own) */
    uint64_t nslabs;
    struct magazine *depot_full, *depot_empty; /* the depot (see the top) */
    uint64_t ndepot_full, ndepot_empty;
    uint32_t size, align, nobj; /* objects start at the slab's first byte */
    uint32_t frames; /* slab size in frames: SLAB_FRAMES or SLAB_FRAMES / 2 */
    uint32_t mag_cap; /* capacity of this class's magazines */
    uint64_t inv;
    uint8_t shift;
};

extern struct heap_class classes[HEAP_SMALL_CLASSES];
/* class_of[(size + 15) / 16] for 1 <= size <= HEAP_SMALL_MAX */
extern uint8_t class_of[HEAP_SMALL_MAX / 16 + 1];
/* Has no free objects: a class without a slab points here so that the
 * allocation path needs no NULL test. Never in any list, never freed into. */
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

/* Everything of the medium tier below is protected by seg_lock. */
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

extern struct list_node larges; /* every live large block (large_lock) */
/* large_lock */
extern uint64_t l_count, l_pages, l_bytes, l_allocs, l_frees;

/* ---- runs of frames and the granule table (heap_runs.c) ------------------------------------ */

extern uint64_t pages_held; /* frames taken from the frame allocator (runs_lock) */

/* One 32-bit entry per SLAB_SIZE granule of physical memory (up to the frame
 * allocator's top frame): what the heap holds there. Dense (16 entries per
 * cache line, 64 KiB of table per GiB), so kfree's lookup hits a hot line;
 * it replaces reading a header at the granule's start, which aliased into
 * one L1 set for every slab. Two kinds of entry:
 *   - no slab (bits 0-7 zero): bits 16-31 say which of the granule's 16
 *     frames belong to some heap run (0: not held at all). Runs need not
 *     start on a granule: several large runs may share one.
 *   - a slab starts at the granule (bits 0-7: its class + 1): bits 20-31 are
 *     its carved count (kfree's object-boundary check needs no header),
 *     bit 16 marks a half slab (8 frames), and then bits 8-15 say which of
 *     the upper 8 frames belong to other heap runs (large runs placed at
 *     page alignment in what the half slab left to the frame allocator).
 * Frame bits are written under runs_lock, the slab kind and class when a
 * slab is made or released (runs_lock too), the carved count under the
 * class lock (atomic add: the two writers share the word). Read without a
 * lock: the entry of a block its caller holds cannot lose that block.
 * Nothing in front of a pointer is read before heap_owns() says the heap
 * owns that memory. */
extern uint32_t *granule_tab;
extern uint64_t granule_count;

#define GT_CLS 0xffu           /* slab: class + 1 (so 64 * it is the cpu_mag's offset) */
#define GT_UPPER_SHIFT 8       /* half slab: frames 8..15 owned by other heap runs */
#define GT_HALF (1u << 16)     /* half slab */
#define GT_CARVED_SHIFT 20     /* slab: carved objects, the top 12 bits (one shift) */
#define GT_FRAMES_SHIFT 16     /* no slab: frames owned */
_Static_assert((SLAB_SIZE - SLAB_HDR) / 16 < (1u << (32 - GT_CARVED_SHIFT)), "carved fits the entry");

/* Granule g's entry (0 past the table's end). */
static ALWAYS_INLINE uint32_t granule_entry(uint64_t g)
{
    return g < granule_count ? __atomic_load_n(&granule_tab[g], __ATOMIC_ACQUIRE) : 0;
}

/* The frames of a granule with entry e the heap owns, as a 16-bit mask. */
static inline uint32_t granule_frames(uint32_t e)
{
    if (!(e & GT_CLS))
        return e >> GT_FRAMES_SHIFT;
    if (!(e & GT_HALF))
        return 0xffffu;
    return 0xffu | (e & 0xff00u);
}

/* True when some heap run owns the frame at phys. */
static inline bool frame_owned(uintptr_t phys)
{
    return (granule_frames(granule_entry(phys / SLAB_SIZE)) >> ((phys / PAGE_SIZE) % SLAB_FRAMES)) & 1;
}

/* True when every byte of [phys, phys + len) lies in memory a heap run owns
 * (len > 0). Reads only the table. */
static inline bool heap_owns(uintptr_t phys, size_t len)
{
    for (uintptr_t f = phys / PAGE_SIZE; f <= (phys + len - 1) / PAGE_SIZE; f++)
        if (!frame_owned(f * PAGE_SIZE))
            return false;
    return true;
}

/* The class of the slab a granule entry e describes, or >= HEAP_SMALL_CLASSES
 * when e is no slab. */
static ALWAYS_INLINE uint32_t granule_cls(uint32_t e)
{
    return (e & GT_CLS) - 1;
}

/* The carved count of the slab of entry e (a slab entry). */
static ALWAYS_INLINE uint32_t granule_carved(uint32_t e)
{
    return e >> GT_CARVED_SHIFT;
}

/* True when the frame at phys lies in the slab of entry e (a slab entry). */
static inline bool granule_in_slab(uint32_t e, uintptr_t phys)
{
    return !(e & GT_HALF) || (phys & (SLAB_SIZE - 1)) < SLAB_SIZE / 2;
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
static inline size_t poison_scan(const void *p, size_t n)
{
    return memspn(p, POISON_FREE, n);
}

/* Free medium memory b[from, end) (offsets multiples of 16): the first byte
 * of a 16-byte slot that is neither all poison nor a tombstone (a merged
 * segment's header, heap_segment.c), or end. Poisoned runs are scanned
 * whole, not a slot at a time. */
static inline size_t seg_poison_bad(const unsigned char *b, size_t from, size_t end)
{
    for (size_t i = from; i < end;) {
        size_t at = i + poison_scan(b + i, end - i);
        if (at == end)
            break;
        size_t slot = at - at % 16;
        const struct seg *h = (const struct seg *)(b + slot);
        if (h->magic != tomb_magic(h))
            return at;
        i = slot + 16;
    }
    return end;
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

/* Frames for the heap (align: a power of two, at least PAGE_SIZE), marked
 * owned in the granule table. 0 if none. */
paddr_t heap_frames(size_t count, uint64_t align);
/* Gives frames back; they are no longer marked owned. */
void heap_frames_free(paddr_t p, size_t count);
/* Frames for a slab of class cls (SLAB_SIZE-aligned, `frames` of them); the
 * granule is still marked plain owned frames until slab_publish. 0 if none. */
paddr_t heap_slab_frames(size_t frames);
/* Marks the granule at p a slab of class cls (its header written first). */
void slab_publish(paddr_t p, unsigned cls, bool half);
/* Gives a slab's frames back; its granule is no slab any more. */
void slab_frames_free(paddr_t p, size_t frames);
/* n more objects of the slab at p are carved (class lock held). */
static ALWAYS_INLINE void granule_carve_n(paddr_t p, uint32_t n)
{
    __atomic_fetch_add(&granule_tab[p / SLAB_SIZE], n << GT_CARVED_SHIFT, __ATOMIC_RELAXED);
}
/* Remembers a run the heap gave back, for "double free" reports. */
void released_note(const void *start, size_t bytes, const void *block);
/* True when v (in the HHDM) lies in a frame some heap run owns now. */
bool heap_holds(uintptr_t v);
/* The slab holding inner pointer ptr, or NULL when ptr is in a frame of some
 * other heap run. Panics when ptr is outside the direct map, in no frame the
 * heap owns, or in a slab whose header was overwritten. */
struct slab *slab_of(void *ptr, const char *op);
/* kfree of an inner pointer whose granule entry e is no slab, or whose
 * frame lies past its half slab: a medium or large block, or a misuse. */
SLOW void kfree_not_slab(void *ptr);
/* The segment or large header of a non-slab inner pointer; panics when there is none. */
struct seg *big_header(void *ptr, const char *op);
/* Panics: ptr lies outside the direct map. */
SLOW NORETURN void outside_panic(const char *op, const void *ptr);
/* Panics: ptr lies in the direct map but in no granule the heap holds. */
SLOW NORETURN void not_held_panic(const char *op, const void *ptr);
/* Sets up the granule table (frame_init first) and forgets every run. */
void runs_init(void);

/* ---- heap_slab.c: the slab tier and its magazines ---------------------------------------- */

/* kmalloc of a small size whose fast path found its cpu_mag m locked. NULL only when memory is out even after
 * every cache was drained. */
SLOW void *cache_alloc_busy(struct cpu_mag *m);
/* The same when the lock was taken and m's loaded magazine is empty. */
SLOW void *cache_alloc_refill(struct cpu_mag *m);
/* kfree of a checked, tagged small object whose fast path found m locked. */
SLOW void cache_free_busy(struct cpu_mag *m, void *obj);
/* The same when the lock was taken and m's loaded magazine is full. */
SLOW void cache_free_full(struct cpu_mag *m, void *obj);
/* A magazine object failed its poison check: releases m's lock, panics. */
SLOW NORETURN void mag_poison_panic(struct cpu_mag *m, uintptr_t top_l, const void *obj,
                                    size_t off);
/* kfree of a slab pointer that failed a fast check (past its half slab, not
 * an object start, or tagged free). */
SLOW void slab_free_checked(void *ptr);
/* True when obj (an object start of s) is free: on its slab's list, in some
 * CPU's magazine or in the depot. Takes every cache lock when obj carries the
 * free tag: call with no heap lock held. */
bool slab_obj_free(const struct slab *s, void *const *obj);
/* The same with the small tier frozen (caches_lock_all held). */
bool slab_obj_free_locked(const struct slab *s, void *const *obj);
/* The class of a sound slab header at s (where the granule table puts its
 * slab's header: the slab's last 64 bytes), or NULL; reads s only then. */
const struct heap_class *slab_class(const struct slab *s);
/* Panics naming obj (a caller's pointer: USER) and its slab. */
SLOW NORETURN void slab_panic(const char *what, const struct slab *s, const void *obj);
/* A class's objects in magazines (every CPU's and the depot's) and its
 * allocations since heap_init (the class's and every CPU's counters). */
struct class_total {
    uint64_t cached, allocs;
};
/* Every class's totals, in one pass over the CPUs (small tier frozen). */
void class_totals(struct class_total t[HEAP_SMALL_CLASSES]);
/* Objects counted used in the class's slabs, magazine objects included, so
 * that the live ones are this less the cached ones (small tier frozen;
 * O(partial slabs)). */
uint64_t class_used(const struct heap_class *c);
/* Sets up the size classes, the depots and this CPU's magazine set. */
void slab_init(void);
/* Empties every magazine and depot into the slabs (frozen). */
void slab_drain_locked(void);
/* Releases every empty slab (frozen, after slab_drain_locked). */
void slab_release_empty_locked(void);
/* Takes every cpu_mag lock of every CPU, in order: the small tier is frozen
 * until caches_unlock_all. Call with no heap lock held. */
void caches_lock_all(void);
void caches_unlock_all(void);
/* The magazine set of CPU i, or NULL when it has none. */
struct cpu_cache *cache_of(unsigned i);

/* Object index of byte offset off in a slab of the class with inverse inv
 * and shift (see struct slab); slab_obj_index for p in s: >= s->nobj when p
 * is not the start of one of s's objects (callers compare with s->carved, which also
 * refuses objects never handed out). One subtract, multiply and rotate. */
static ALWAYS_INLINE uint64_t obj_index(uint64_t off, uint64_t inv, uint8_t shift)
{
    uint64_t x = off * inv;
    return (x >> shift) | (x << ((64 - shift) & 63));
}
static ALWAYS_INLINE uint64_t slab_obj_index(const struct slab *s, const void *p)
{
    return obj_index((uintptr_t)p - (uintptr_t)s->base, s->inv, s->shift);
}

/* Objects of s ever handed out; read without the class lock by kfree (an
 * object the caller holds is below it whatever other CPUs carve meanwhile). */
static ALWAYS_INLINE uint32_t slab_carved(const struct slab *s)
{
    return __atomic_load_n(&s->carved, __ATOMIC_RELAXED);
}

/* The header of the slab whose granule starts at virtual address g (entry e
 * a slab's): the last SLAB_HDR bytes of the slab, so that objects start at
 * the granule's first byte. */
static inline struct slab *slab_hdr_at(uintptr_t g, uint32_t e)
{
    return (struct slab *)(g + ((e & GT_HALF) ? SLAB_SIZE / 2 : SLAB_SIZE) - SLAB_HDR);
}

/* The slab an object of the heap lies in (through the granule table). */
static inline struct slab *slab_of_obj(const void *obj)
{
    uintptr_t phys = (uintptr_t)obj - hhdm_offset;
    return slab_hdr_at((uintptr_t)obj - (phys & (SLAB_SIZE - 1)), granule_entry(phys / SLAB_SIZE));
}

/* The object in the loaded magazine's slot top_l (the newest one: m locked,
 * its top to become top_l), checked and no longer tagged free. */
static ALWAYS_INLINE void *mag_take(struct cpu_mag *m, uintptr_t top_l)
{
    void **obj = *(void ***)(top_l - 1);
#if HEAP_POISON
    if (unlikely((uintptr_t)obj[0] != POISON_WORD))
        mag_poison_panic(m, top_l, obj, 0);
    if (unlikely((uintptr_t)obj[1] != FREE_TAG))
        mag_poison_panic(m, top_l, obj, 8);
    size_t bad = poison_scan(obj + 2, m->size - 2 * sizeof(void *));
    if (unlikely(bad != m->size - 2 * sizeof(void *)))
        mag_poison_panic(m, top_l, obj, bad + 2 * sizeof(void *));
#endif
    obj[1] = NULL; /* no longer tagged free */
    m->allocs++;
    return obj;
}

/* A small object (1 <= size <= HEAP_SMALL_MAX) of the class whose cpu_mag
 * is at moff: from this CPU's loaded magazine, else through a slow path. */
static ALWAYS_INLINE void *cache_alloc(uint32_t moff)
{
    struct cpu_mag *m = cpu_mag_at(heap_fast.cpu[cpu_index()], moff);
    if (unlikely(!mag_trylock(m)))
        return cache_alloc_busy(m);
    uintptr_t top_l = mag_top_l(m);
    if (unlikely(top_l == m->base_l))
        return cache_alloc_refill(m);
    top_l -= sizeof(void *);
    void *obj = mag_take(m, top_l);
    mag_unlock(m, top_l);
    return obj;
}

/* Puts a checked object start of m's class (m: this CPU's) into its loaded
 * magazine: poisoned and tagged free like a free-list
 * object, touching no slab header (a leaf: the slow cases leave by a tail
 * call). */
static ALWAYS_INLINE void cache_free(void *ptr, struct cpu_mag *m)
{
    void **obj = ptr;
    poison(ptr, m->size);
    obj[1] = (void *)FREE_TAG;
    if (unlikely(!mag_trylock(m))) {
        cache_free_busy(m, obj);
        return;
    }
    uintptr_t top_l = mag_top_l(m);
    if (unlikely(top_l == m->limit_l)) {
        cache_free_full(m, obj);
        return;
    }
    *(void **)(top_l - 1) = obj;
    mag_unlock(m, top_l + sizeof(void *));
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
