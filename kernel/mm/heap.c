/* The kernel heap (portable: the host tests and benches build this file).
 *
 * Small (1..4096 B): 48 size classes (16..128 step 16, then 8 classes per
 *   power of two: 144..256 step 16, 288..512 step 32, 576..1024 step 64,
 *   1152..2048 step 128, 2304..4096 step 256), so rounding wastes at most
 *   12.5%. (1..4 KiB was a medium-tier range until the slab path proved 8-10x
 *   cheaper there: ~60 against ~560 instructions per alloc+free pair.) A slab is a 64 KiB chunk of 16 frames,
 *   64 KiB-aligned in physical memory, holding objects of one class after a
 *   64-byte header (magic, free list, counters); classes above 128 B use half
 *   slabs (8 frames, still 64 KiB-aligned) when one holds at least 32 objects,
 *   since their few live objects make a class's partly used slabs its main
 *   waste (Pareto workload: 1.257 -> 1.222 held/live). kfree finds the header by
 *   aligning the pointer down. Each class has a current slab and a list of
 *   partially used slabs; full slabs are in no list (kfree finds them by
 *   address; a counter and the granule map account for them), so a slab that
 *   fills or frees its first object touches no other slab's header. Behind
 *   the class's magazine (below), alloc pops the current slab's free list and
 *   an object leaving the magazine is pushed onto its own slab's free list.
 *   A new slab has no
 *   free list: its objects are carved in order as they are first needed
 *   (`carved` counts them), so growing a class costs the same O(1) for every
 *   object size. kfree checks the object boundary (a
 *   multiply by a modular inverse and a rotate, one compare with `carved`,
 *   which also refuses objects never handed out; no division) and
 *   catches a double free: a free object carries a tag (FREE_TAG ^ its
 *   address) in its second word, cleared by kmalloc; when kfree sees the tag
 *   it confirms by walking the slab's free list on a cold path (so user data
 *   that happens to equal the tag is never misreported). Besides an empty
 *   current slab, each class keeps one more empty slab (its spare) before
 *   releasing any, so a working set just above one slab does not take and
 *   return a slab every round; heap_trim() returns both.
 *   Magazines: in front of its slabs each class keeps a stack of up to 128
 *   pointers (at most 32 KiB of objects) to objects freed recently. kfree
 *   puts a checked object there (poisoned and tagged free like a free-list
 *   object) without touching its slab's header; kmalloc takes the newest
 *   one first, still warm in the cache. A kfree that finds the magazine
 *   full pushes the object onto its slab's free list instead (at most one
 *   slab push per kfree, as without magazines); slabs change state as above; heap_trim empties
 *   every magazine first. So a random free among a million live objects
 *   touches the object (for the tag) and, in the common case, nothing else:
 *   w2 churn at 1,000,000 live costs 60 instructions per pair instead of 106
 *   and about two thirds of the time. Objects in a magazine count as used in
 *   their slab; a double free of one is confirmed by a search of the
 *   magazine, like the slab's free list.
 * Medium (4097 B..64 KiB with alignment up to 4096): segments in
 *   256 KiB chunks. A segment is a 16-byte header {size, prev_size, magic,
 *   flags} followed by the payload; sizes of both neighbours are known
 *   (boundary tags), so a freed segment merges with free neighbours on both
 *   sides at once and no two free segments are ever adjacent. Free segments sit
 *   in 104 segregated lists (8 per power of two) with a two-level bitmap of
 *   non-empty lists: finding a fitting segment is a few bit scans, O(1). A
 *   chunk that becomes wholly free goes back to the frame allocator (one is
 *   kept cached). Absorbed headers become tombstones, so a second kfree of a
 *   merged block still reports a double free.
 * Large (> 64 KiB, or alignment > 4096): a run of frames
 *   from frame_alloc_contig with a 64-byte header just before the pointer;
 *   kfree returns the run. Alignments above 4096 are of the physical address
 *   (equal to the virtual one when the HHDM offset is at least that aligned).
 *
 * Dispatch in kfree: the pointer must lie in the HHDM; if the 64 KiB-aligned
 * (physical) chunk containing it carries the slab magic (which includes its
 * own address) it is a slab object; otherwise the 16 bytes before it must be a
 * segment or large header whose magic checksums its address and fields.
 * Reading that 64 KiB-aligned word assumes the HHDM maps RAM with pages of
 * 64 KiB or more (the mapper uses 2 MiB / 1 GiB pages). Before the 16 bytes
 * (or the large header's 64) in front of a non-slab pointer are read, the
 * granule extent map must say a heap run owns them: at a granule's first
 * byte they lie in the previous granule, whose tail may be no run's memory
 * (after a half slab or a large run ending mid-granule) and unmapped.
 *
 * Redzones (HEAP_REDZONES, on in SLAYER_DEBUG builds; heap.h): the public
 *   calls wrap the tiers. A block of n bytes is an inner block of n + 32 bytes
 *   or more from the tier; the caller's pointer is inner + RZ_LEAD (16). The
 *   16 bytes before it hold n twice, XORed with two keys derived from the
 *   address (a byte changed in either word is found, and which one: the other
 *   word says what it should be); the bytes from n to the inner block's end
 *   (at least 16) hold 0xfd. Aligned blocks keep the lead at 16 bytes: the
 *   medium and large tiers place the payload so that inner + 16 is aligned
 *   (`prefix`). Every tier check runs on the inner pointer and names the
 *   caller's pointer (USER()); the redzones are checked after the tier's own
 *   misuse checks and before anything changes. Without HEAP_REDZONES RZ_LEAD
 *   is 0, USER/INNER are the identity and rz_check is empty: the fast paths
 *   compile to what they were.
 *
 * What is caught where (both configurations unless marked):
 *   double free     slab: the free tag confirmed on the free list; medium:
 *                   the header's USED flag, or a tombstone once merged;
 *                   large, and blocks whose slab or chunk went back to the
 *                   frame allocator: a small ring of the last runs the heap
 *                   released (a pointer in one is a double free or stale).
 *   invalid free    outside the direct map; slab: not an object start (any
 *                   interior pointer); medium/large: no valid header before
 *                   it (interior pointers, free memory, foreign memory).
 *   header overrun  medium: the neighbours' headers are checksummed and
 *                   checked on every kfree/krealloc; large: its header.
 *                   Slabs have no per-object headers: an overflow into the
 *                   next object, or an underflow of the first object into the
 *                   slab header's list links, is only caught with redzones.
 *   redzones        (debug) any modified byte within 16 before or the
 *                   rounding slack (>= 16) after a block of any tier.
 *
 * Costs: small alloc/free O(1), about 14 and 40 instructions without poison
 *   (the magazine paths; kfree's are mostly the misuse checks);
 * medium O(1) plus the split/merge; large = one frame_alloc_contig/free.
 * Overheads: slab header 64 B per slab (up to 4 KiB for the classes whose
 *   objects are aligned to their size: 512, 1024, 2048, 4096), 16 B per
 *   medium segment,
 * 64 B plus the rounding to whole frames per large block.
 *
 * Locking: none yet. Every small-tier field lives in its class (struct
 * heap_class) so a per-class lock can guard it, and the magazines can become
 * per-CPU. */
#include "mm/heap.h"

#include "lib/list.h"
#include "lib/printf.h"
#include "lib/string.h"
#include "mm/frame.h"
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

static const uint16_t class_sizes[HEAP_SMALL_CLASSES] = {
    16,   32,   48,   64,   80,   96,   112,  128,  144,  160,  176,  192,  208,  224,  240,  256,
    288,  320,  352,  384,  416,  448,  480,  512,  576,  640,  704,  768,  832,  896,  960,  1024,
    1152, 1280, 1408, 1536, 1664, 1792, 1920, 2048, 2304, 2560, 2816, 3072, 3328, 3584, 3840, 4096,
};

static struct heap_class classes[HEAP_SMALL_CLASSES];
static void *mag_slots[HEAP_SMALL_CLASSES][MAG_MAX];
/* class_of[(size + 15) / 16] for 1 <= size <= HEAP_SMALL_MAX */
static uint8_t class_of[HEAP_SMALL_MAX / 16 + 1];
/* class_for[(size - 1) / 16] == &classes[class_of[(size + 15) / 16]]: kmalloc's lookup */
static struct heap_class *class_for[HEAP_SMALL_MAX / 16];
/* Has no free objects: a class without a slab points here so that the fast
 * path needs no NULL test. Never in any list, never freed into. */
static struct slab dummy_slab;

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

static struct list_node mfree[FL_N * SL_N]; /* free segments by size (seg_list_index) */
static uint32_t fl_map;
static uint8_t sl_map[FL_N];
static struct list_node mchunks; /* every medium chunk held */
static uint64_t m_nchunks, m_empty_chunks;
static uint64_t m_used_bytes; /* sum of used segment sizes (headers included) */
static uint64_t m_free_bytes; /* sum of free segment sizes */
static uint64_t m_allocs, m_frees;

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

static struct list_node larges; /* every live large block */
static uint64_t l_count, l_pages, l_bytes, l_allocs, l_frees;

static uint64_t pages_held;

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
static uint64_t *granule_map;
static uint8_t *granule_extent;
static uint64_t granule_count;

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

/* Sets (held) or clears the bits of every granule [p, p + count frames)
 * overlaps (p is granule-aligned: every heap run is), and records how much
 * of each the run owns. */
static void granule_mark(paddr_t p, size_t count, bool held)
{
    paddr_t end = p + count * PAGE_SIZE;
    for (uint64_t g = p / SLAB_SIZE; g <= (end - 1) / SLAB_SIZE; g++) {
        if (held) {
            granule_map[g / 64] |= 1ULL << (g % 64);
            uint64_t owned = (MIN(end, (g + 1) * SLAB_SIZE) - g * SLAB_SIZE) / PAGE_SIZE;
            granule_extent[g / 2] = (uint8_t)((granule_extent[g / 2] & (0xf0u >> (4 * (g % 2)))) |
                                              ((owned - 1) << (4 * (g % 2))));
        } else {
            granule_map[g / 64] &= ~(1ULL << (g % 64));
        }
    }
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
#define RZ_SALT0 0x52ED20E5ull
#define RZ_SALT1 0xB10CC0DEull

/* One header word: the size in the upper 40 bits and a 24-bit check of it
 * and of the address below, XORed with a key from the address: any changed
 * byte makes the word invalid (but for a 2^-24 chance), and a copy of another
 * block's header does not fit this block. */
static inline uint64_t rz_word(uint64_t size, const void *user, uint64_t salt)
{
    uint64_t k = ((uintptr_t)user ^ salt) * 0x9E3779B97F4A7C15ull;
    k ^= k >> 29;
    uint64_t check = ((size ^ k) * 0xBF58476D1CE4E5B9ull) >> 40;
    return ((size << 24) | check) ^ k;
}

/* The size a header word holds, or UINT64_MAX when the word is not valid. */
static inline uint64_t rz_unword(uint64_t w, const void *user, uint64_t salt)
{
    uint64_t k = ((uintptr_t)user ^ salt) * 0x9E3779B97F4A7C15ull;
    k ^= k >> 29;
    uint64_t size = (w ^ k) >> 24;
    return rz_word(size, user, salt) == w ? size : UINT64_MAX;
}

/* Arms the redzones of a block of `size` bytes in an inner block of `cap`. */
static void rz_arm(void *inner, size_t size, size_t cap)
{
    uint64_t *hdr = inner;
    char *user = USER(inner);
    hdr[0] = rz_word(size, user, RZ_SALT0);
    hdr[1] = rz_word(size, user, RZ_SALT1);
    memset(user + size, RZ_BYTE, cap - RZ_LEAD - size);
}

/* The byte of word w (8 bytes at offset `at` from the user pointer) nearest
 * to the block that differs from want, as an offset from the user pointer. */
static long rz_word_diff(uint64_t w, uint64_t want, long at)
{
    for (int b = 7; b >= 0; b--)
        if (((w ^ want) >> (8 * b)) & 0xff)
            return at + b;
    return 0;
}

/* True when the redzones of the block in inner block `inner` (capacity cap)
 * are intact; otherwise writes the report into why (no "heap: " prefix).
 * Never faults: reads only the inner block. */
static bool rz_intact(const void *inner, size_t cap, const char *op, char *why, size_t len)
{
    const uint64_t *hdr = inner;
    const unsigned char *user = USER(inner);
    uint64_t max = cap - RZ_LEAD - RZ_TAIL;
    uint64_t s0 = rz_unword(hdr[0], user, RZ_SALT0), s1 = rz_unword(hdr[1], user, RZ_SALT1);
    if (s0 > max)
        s0 = UINT64_MAX;
    if (s1 > max)
        s1 = UINT64_MAX;
    if (s0 != s1 || s1 == UINT64_MAX) {
        uint64_t size = s1 != UINT64_MAX ? s1 : s0;
        long at;
        if (s0 != UINT64_MAX && s1 != UINT64_MAX) /* both valid, different: a copied header */
            at = -16;
        else if (s1 != UINT64_MAX) /* word 1 (bytes -8..-1) is right: word 0 was changed */
            at = rz_word_diff(hdr[0], rz_word(s1, user, RZ_SALT0), -16);
        else if (s0 != UINT64_MAX)
            at = rz_word_diff(hdr[1], rz_word(s0, user, RZ_SALT1), -8);
        else
            size = UINT64_MAX;
        if (size == UINT64_MAX || (s0 != UINT64_MAX && s1 != UINT64_MAX))
            ksnprintf(why, len,
                      "underflow before the start of block %p: bytes -16..-1 overwritten, size lost (%s)",
                      (const void *)user, op);
        else
            ksnprintf(why, len,
                      "underflow before the start of block %p (size %zu): byte at %ld modified (%s)",
                      (const void *)user, (size_t)size, at, op);
        return false;
    }
    for (size_t i = s1; i < cap - RZ_LEAD; i++) {
        if (user[i] != RZ_BYTE) {
            ksnprintf(why, len,
                      "overflow past the end of block %p (size %zu): byte at +%zu modified (%s)",
                      (const void *)user, (size_t)s1, i, op);
            return false;
        }
    }
    return true;
}

static SLOW void rz_check_slow(const void *inner, size_t cap, const char *op)
{
    char why[200];
    if (!rz_intact(inner, cap, op, why, sizeof(why)))
        panic("heap: %s", why);
}

/* The size the caller asked for (the redzones were checked). */
static size_t rz_size(const void *inner)
{
    return (size_t)rz_unword(((const uint64_t *)inner)[1], USER(inner), RZ_SALT1);
}
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

static void released_note(const void *start, size_t bytes, const void *block)
{
    unsigned i = released_next++ % RELEASED_RING;
    released[i].start = (uintptr_t)start;
    released[i].end = (uintptr_t)start + bytes;
    released[i].block = (uintptr_t)block;
}

static bool heap_holds(uintptr_t v);

/* Panics when ptr (an inner pointer in the HHDM without a valid header) lies
 * in a run the heap released recently and has not taken again. */
static void released_panic(const void *ptr, const char *op)
{
    uintptr_t v = (uintptr_t)ptr;
    if (heap_holds(v))
        return;
    for (unsigned n = 1; n <= RELEASED_RING; n++) { /* newest first: runs get reused */
        unsigned i = (released_next - n) % RELEASED_RING;
        if (v < released[i].start || v >= released[i].end)
            continue;
        if (v == released[i].block)
            panic("heap: double free of %p (a large block, its frames already returned)", USER(ptr));
        panic("heap: %s(%p): double free or stale pointer (its memory was already returned to the "
              "frame allocator)",
              op, USER(ptr));
    }
}

/* Frames for the heap; on exhaustion give back cached memory and try again. */
static paddr_t heap_frames(size_t count, uint64_t align)
{
    paddr_t p = frame_alloc_contig(count, align);
    if (!p && heap_trim() > 0)
        p = frame_alloc_contig(count, align);
    if (p) {
        pages_held += count;
        granule_mark(p, count, true);
    }
    return p;
}

/* Gives frames back. The granules they overlap are no longer held: the caller
 * re-marks a granule it still holds part of (large_alloc's leading frames). */
static void heap_frames_free(paddr_t p, size_t count)
{
    granule_mark(p, count, false);
    frame_free_contig(p, count);
    pages_held -= count;
}

/* ---- slabs --------------------------------------------------------------------- */

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

static SLOW void *slab_alloc_slow(struct heap_class *c);

static SLOW NORETURN void slab_panic(const char *what, const struct slab *s, const void *obj)
{
    panic("heap: %s %p (in slab %p of %u-byte objects)", what, USER(obj), (const void *)s, s->size);
}

/* Object index of p in s (see struct slab): >= s->nobj when p is not the
 * start of one of s's objects (callers compare with s->carved, which also
 * refuses objects never handed out). One subtract, multiply and rotate. */
static ALWAYS_INLINE uint64_t slab_obj_index(const struct slab *s, const void *p)
{
    uint64_t x = ((uintptr_t)p - (uintptr_t)s->base) * s->inv;
    return (x >> s->shift) | (x << ((64 - s->shift) & 63));
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
static SLOW void *slab_alloc_slow(struct heap_class *c)
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
static bool slab_obj_free(const struct slab *s, void *const *obj)
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

/* The slab an object of the heap lies in (its 64 KiB-aligned granule start). */
static inline struct slab *slab_of_obj(const void *obj)
{
    return (struct slab *)((uintptr_t)obj - (((uintptr_t)obj - hhdm_offset) & (SLAB_SIZE - 1)));
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
static SLOW void mag_push_full(void *obj)
{
    slab_link(slab_of_obj(obj), obj);
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
static SLOW void slab_free_checked(struct slab *s, void *ptr)
{
    slab_index(s, ptr, "kfree of a pointer that is not a block start:");
    if (slab_obj_free(s, ptr))
        slab_panic("double free of", s, ptr);
    rz_check(ptr, s->size, "kfree");
    slab_push(s, ptr);
}

/* ---- medium segments ----------------------------------------------------------- */

static inline unsigned seg_list_index(uint32_t size)
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

static void seg_write(struct seg *h, uint32_t size, uint32_t prev_size, uint32_t flags)
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
    /* SLAB_SIZE-aligned, like every heap run, so that slab_of() aligning a
     * pointer down always lands inside heap memory (mapped), never below it. */
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
    for (size_t i = (lead ? 0 : 16); i < h->size - SEG_HDR; i += 16) {
        const struct seg *slot = (const struct seg *)(b + i);
        size_t bad = poison_scan(b + i, 16);
        if (bad != 16 && slot->magic != tomb_magic(slot))
            panic("heap: use after free: free memory at %p modified", (const void *)(b + i + bad));
    }
#endif
    return h + 1;
}

static void *medium_alloc(size_t size, size_t align, uint32_t prefix)
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

static void medium_free(struct seg *h, void *ptr)
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

/* ---- large blocks --------------------------------------------------------------- */

/* A large block of `size` bytes whose pointer plus `prefix` is aligned to
 * `align` (prefix < 4096 - 64). */
static void *large_alloc(size_t size, size_t align, uint32_t prefix)
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

static uint64_t large_usable(struct large *l)
{
    return l->pages * PAGE_SIZE - (uint64_t)((char *)(l + 1) - (char *)PHYS2VIRT(l->base));
}

static struct large *large_of(struct seg *tag, const void *ptr, const char *op)
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

static void large_free(struct large *l)
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

/* ---- dispatch -------------------------------------------------------------------- */

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
static SLOW NORETURN void not_held_panic(const char *op, const void *ptr)
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
static struct seg *big_header(void *ptr, const char *op)
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

/* The slab holding ptr, or NULL when ptr is not in a slab. Panics when ptr is
 * not in the HHDM at all. */
static SLOW NORETURN void outside_panic(const char *op, const void *ptr)
{
    panic("heap: %s(%p): not a heap address (outside the direct map)", op, USER(ptr));
}

static inline struct slab *slab_of(void *ptr, const char *op)
{
    uintptr_t phys = (uintptr_t)ptr - hhdm_offset;
    if (unlikely(phys >= hhdm_size))
        outside_panic(op, ptr);
    if (unlikely(!granule_held(phys)))
        not_held_panic(op, ptr);
    struct slab *s = (struct slab *)((uintptr_t)ptr - (phys & (SLAB_SIZE - 1)));
    return likely(s->magic == (uintptr_t)s + SLAB_MAGIC) ? s : NULL;
}

/* The class of the slab whose header would be at s (a granule start in the
 * HHDM), when the heap holds that granule and the header is a sound slab
 * header; NULL otherwise. Reads s only when the granule is held. */
static const struct heap_class *slab_class(const struct slab *s)
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

/* True when v (in the HHDM) lies in a run the heap holds now: a slab, a
 * medium chunk or a large block. O(chunks + large blocks); panic paths only. */
static bool heap_holds(uintptr_t v)
{
    uintptr_t phys = v - hhdm_offset;
    if (phys >= hhdm_size || !granule_held(phys))
        return false;
    const struct slab *s = (const struct slab *)(v - (phys & (SLAB_SIZE - 1)));
    const struct heap_class *c = slab_class(s);
    if (c)
        return v < (uintptr_t)s + (uintptr_t)c->frames * PAGE_SIZE;
    const struct mchunk *ch;
    list_for_each_entry(ch, &mchunks, link)
        if ((uintptr_t)s >= (uintptr_t)ch && (uintptr_t)s < (uintptr_t)ch + MCHUNK_SIZE)
            return true;
    const struct large *l;
    list_for_each_entry(l, &larges, link) {
        uintptr_t start = (uintptr_t)PHYS2VIRT(l->base), end = start + l->pages * PAGE_SIZE;
        if ((uintptr_t)s >= start && (uintptr_t)s < end) /* the run's granule: v may be past its end */
            return v < end;
    }
    return true; /* a held granule that is no chunk or run: a slab whose header was smashed */
}

/* Medium or large; the pointer plus `prefix` is aligned to `align`. */
static void *big_alloc(size_t size, size_t align, uint32_t prefix)
{
    if (size > HEAP_MAX_ALLOC)
        return NULL;
    if (size <= HEAP_MEDIUM_MAX && align <= PAGE_SIZE)
        return medium_alloc(size, align, prefix);
    return large_alloc(size, align, prefix);
}

/* The tiers' allocation: at least `size` bytes, 16-byte aligned (an inner block). */
static ALWAYS_INLINE void *heap_alloc(size_t size)
{
    if (likely(size - 1 < HEAP_SMALL_MAX)) {
        struct heap_class *c = class_for[(size - 1) >> 4];
        return likely(c->mag.top != c->mag.slot) ? mag_pop(c) : slab_pop(c);
    }
    if (size == 0)
        return NULL;
    return big_alloc(size, 16, 0);
}

static __attribute__((noinline)) void big_free(void *ptr)
{
    struct seg *h = big_header(ptr, "kfree");
    if (h->flags & SEG_LARGE) {
        struct large *l = large_of(h, ptr, "kfree");
        rz_check(ptr, large_usable(l), "kfree");
        large_free(l);
    } else {
        medium_free(h, ptr);
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

/* The tiers' free of an inner pointer. The fast path is a leaf: every unusual
 * case leaves it by a tail call. The checks: in a granule the heap holds
 * (which also rejects NULL and anything outside the direct map), slab magic,
 * object boundary (slab_obj_index), and the free tag (a double free is
 * confirmed in slab_free_checked); then the redzones, if any. */
static ALWAYS_INLINE void heap_free(void *ptr)
{
    uintptr_t v = (uintptr_t)ptr, phys = v - hhdm_offset;
    if (unlikely(!granule_held(phys))) {
        kfree_slow(ptr);
        return;
    }
    struct slab *s = (struct slab *)(v - (phys & (SLAB_SIZE - 1)));
    if (unlikely(s->magic != (uintptr_t)s + SLAB_MAGIC)) {
        big_free(ptr);
        return;
    }
    void **obj = ptr;
    if (unlikely(slab_obj_index(s, ptr) >= s->carved ||
                 (uintptr_t)obj[1] == (FREE_TAG ^ (uintptr_t)obj))) {
        slab_free_checked(s, ptr);
        return;
    }
    rz_check(ptr, s->size, "kfree");
    mag_push(&classes[s->cls].mag, ptr, s->size);
}

/* Capacity of the inner block at ptr; panics (naming the caller's pointer)
 * when ptr is not a live block. */
static size_t block_cap(void *ptr, const char *op)
{
    struct slab *s = slab_of(ptr, op);
    if (s) {
        if (unlikely(slab_obj_index(s, ptr) >= s->carved))
            panic("heap: %s(%p): not a block start (in slab %p of %u-byte objects)", op, USER(ptr),
                  (void *)s, s->size);
        if (slab_obj_free(s, ptr))
            panic("heap: %s(%p): block is free", op, USER(ptr));
        return s->size;
    }
    struct seg *h = big_header(ptr, op);
    if (h->flags & SEG_LARGE)
        return large_usable(large_of(h, ptr, op));
    return h->size - SEG_HDR;
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
        if (!(h->flags & SEG_LARGE) && size <= HEAP_MEDIUM_MAX) {
            uint32_t need = (uint32_t)ALIGN_UP(size + SEG_HDR, 16);
            if (need < SEG_MIN)
                need = SEG_MIN;
            if (need <= h->size) {
                seg_check_neighbours(h, ptr);
                seg_shrink(h, need, true);
                return ptr;
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
                return ptr;
            }
        } else if ((h->flags & SEG_LARGE) && size <= old && size > old / 2) {
            return ptr;
        }
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
                return MAG_N(&classes[i].mag) ? mag_pop(&classes[i]) : slab_pop(&classes[i]);
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

/* ---- init, trim, stats ------------------------------------------------------------ */

void heap_init(void)
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
    /* kfree sends NULL down its "outside the direct map" path */
    kassert(0 - hhdm_offset >= hhdm_size, "heap: NULL lies inside the direct map");
    for (unsigned i = 0; i < FL_N * SL_N; i++)
        list_init(&mfree[i]);
    memset(sl_map, 0, sizeof(sl_map));
    fl_map = 0;
    list_init(&mchunks);
    m_nchunks = m_empty_chunks = m_used_bytes = m_free_bytes = m_allocs = m_frees = 0;
    list_init(&larges);
    l_count = l_pages = l_bytes = l_allocs = l_frees = 0;
    pages_held = 0;
    memset(released, 0, sizeof(released));
    released_next = 0;
}

size_t heap_trim(void)
{
    uint64_t before = pages_held;
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
    struct mchunk *ch, *next;
    list_for_each_entry_safe(ch, next, &mchunks, link) {
        struct seg *first = (struct seg *)(ch + 1);
        if (!(first->flags & SEG_USED) && first->size == MCHUNK_SPACE)
            mchunk_release(ch);
    }
    return (size_t)(before - pages_held);
}

/* Objects in use in the class (O(partial slabs); full slabs are all used). */
static uint64_t class_live(const struct heap_class *c)
{
    uint64_t live = c->current->used + c->nfull * c->nobj;
    const struct slab *s;
    list_for_each_entry(s, &c->partial, link)
        live += s->used;
    return live - MAG_N(&c->mag); /* magazine objects count as used in their slabs */
}

void heap_get_stats(struct heap_stats *out)
{
    memset(out, 0, sizeof(*out));
    for (unsigned i = 0; i < HEAP_SMALL_CLASSES; i++) {
        const struct heap_class *c = &classes[i];
        uint64_t live = class_live(c);
        out->cls[i].size = c->size;
        out->cls[i].live = live;
        out->cls[i].allocs = c->allocs;
        out->cls[i].slabs = c->nslabs;
        out->bytes_in_use += live * c->size;
        out->bytes_free += (c->nslabs * c->nobj - live) * c->size;
        out->alloc_count += c->allocs;
        out->free_count += c->allocs - live;
        out->small_slabs += c->nslabs;
    }
    /* medium payloads: used segment bytes minus one header per live segment */
    out->bytes_in_use += m_used_bytes - (m_allocs - m_frees) * SEG_HDR + l_bytes;
    out->bytes_free += m_free_bytes;
    out->alloc_count += m_allocs + l_allocs;
    out->free_count += m_frees + l_frees;
    out->live_blocks = out->alloc_count - out->free_count;
    out->pages_held = pages_held;
    out->medium_chunks = m_nchunks;
    out->large_blocks = l_count;
}

/* ---- validation ---------------------------------------------------------------------- */

static const char *validate_inner(const void *ptr);

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

/* heap_validate_ptr on an inner pointer, redzones aside. */
static const char *validate_inner(const void *ptr)
{
    uintptr_t v = (uintptr_t)ptr, phys = v - hhdm_offset;
    if (phys >= hhdm_size)
        return "not a heap address (outside the direct map)";
    const struct slab *s = (const struct slab *)(v - (phys & (SLAB_SIZE - 1)));
    if (slab_class(s)) {
        uint64_t idx = slab_obj_index(s, ptr);
        if (idx >= s->nobj)
            return "inside a slab but not the start of an object";
        if (idx >= s->carved)
            return "a slab object the heap never handed out";
        return slab_obj_free(s, (void *const *)ptr) ? "already free" : NULL;
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
/* The redzones of every live object of s (its free list is known good). */
static bool check_slab_redzones(const struct slab *s)
{
    uint64_t is_free[(SLAB_SIZE / 16 + 63) / 64] = {0};
    for (const void *const *o = s->free; o; o = *o) {
        uint64_t i = slab_obj_index(s, o);
        is_free[i / 64] |= 1ull << (i % 64);
    }
    const struct magazine *m = &classes[s->cls].mag;
    for (uint32_t k = 0; k < MAG_N(m); k++) /* magazine objects are free too */
        if (slab_of_obj(m->slot[k]) == s) {
            uint64_t i = slab_obj_index(s, m->slot[k]);
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
              s->shift == c->shift && s->base == (const char *)s + c->base_off,
          "slab %p: wrong class", (const void *)s);
    CHECK(IS_ALIGNED(VIRT2PHYS(s), SLAB_SIZE), "slab %p: misaligned", (const void *)s);
    CHECK(s->carved <= s->nobj, "slab %p: %u objects carved of %u", (const void *)s, s->carved,
          s->nobj);
    uint64_t nfree = 0;
    for (const void *const *o = s->free; o; o = *o) {
        CHECK(slab_obj_index(s, o) < s->carved, "slab %p: free entry %p off-boundary",
              (const void *)s, (const void *)o);
        CHECK((uintptr_t)o[1] == (FREE_TAG ^ (uintptr_t)o), "slab %p: free entry %p lost its tag",
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
    for (uint32_t i = s->carved; i < s->nobj; i++)
        CHECK(poison_scan(s->base + (uint64_t)i * s->size, s->size) == s->size,
              "slab %p: object %p never allocated but modified", (const void *)s,
              (const void *)(s->base + (uint64_t)i * s->size));
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

/* Every slab: the ones the class points at (current, spare, partial list)
 * and, through the granule map, every slab the heap holds, full ones
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
        const struct magazine *m = &c->mag;
        CHECK(m->slot == mag_slots[i] && m->top >= m->slot && m->top <= m->limit && m->limit >= m->slot &&
                  MAG_CAP(m) <= MAG_MAX,
              "class %u: magazine pointers broken", c->size);
        for (uint32_t k = 0; k < MAG_N(m); k++) {
            void *const *o = m->slot[k];
            const struct slab *s = slab_of_obj(o);
            CHECK(slab_class(s) == c && slab_obj_index(s, o) < s->carved,
                  "class %u: magazine entry %p is not an object of the class", c->size,
                  (const void *)o);
            CHECK((uintptr_t)o[1] == (FREE_TAG ^ (uintptr_t)o),
                  "class %u: magazine entry %p lost its free tag", c->size, (const void *)o);
#if HEAP_POISON
            CHECK(poison_scan(o + 2, c->size - 2 * sizeof(void *)) == c->size - 2 * sizeof(void *),
                  "class %u: free object %p modified after free", c->size, (const void *)o);
#endif
            for (uint32_t j = 0; j < k; j++)
                CHECK(m->slot[j] != o, "class %u: %p twice in the magazine", c->size,
                      (const void *)o);
        }
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
    for (uint64_t w = 0; w < (granule_count + 63) / 64; w++) {
        for (uint64_t bits = granule_map[w]; bits; bits &= bits - 1) {
            uint64_t g = w * 64 + (uint64_t)__builtin_ctzll(bits);
            const struct slab *s = PHYS2VIRT(g * SLAB_SIZE);
            if (s->magic != (uintptr_t)s + SLAB_MAGIC)
                continue; /* a medium chunk or a large run (counted by their checks) */
            CHECK(s->cls < HEAP_SMALL_CLASSES, "slab %p: bad class %u", (const void *)s, s->cls);
            const struct heap_class *c = &classes[s->cls];
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
    for (unsigned i = 0; i < HEAP_SMALL_CLASSES; i++) {
        const struct heap_class *c = &classes[i];
        CHECK(n[i] == c->nslabs, "class %u: %llu slabs found, %llu counted", c->size,
              (unsigned long long)n[i], (unsigned long long)c->nslabs);
        CHECK(full[i] == c->nfull, "class %u: %llu full slabs found, %llu counted", c->size,
              (unsigned long long)full[i], (unsigned long long)c->nfull);
        CHECK(part[i] == partial[i], "class %u: %llu partial slabs found, %llu listed", c->size,
              (unsigned long long)part[i], (unsigned long long)partial[i]);
        CHECK(used[i] <= c->allocs, "class %u: %llu used objects, only %llu allocations", c->size,
              (unsigned long long)used[i], (unsigned long long)c->allocs);
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
                for (size_t i = 16; i < h->size - SEG_HDR; i += 16) {
                    const struct seg *slot = (const struct seg *)(b + i);
                    CHECK(poison_scan(b + i, 16) == 16 || slot->magic == tomb_magic(slot),
                          "free segment %p modified at %p", (const void *)h, (const void *)(b + i));
                }
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

bool heap_check(void)
{
    uint64_t pages = 0, granules = 0, held = 0;
    if (!check_slabs(&pages, &granules) || !check_medium(&pages) || !check_large(&pages))
        return false;
    CHECK(pages == pages_held, "structures hold %llu pages, counter %llu",
          (unsigned long long)pages, (unsigned long long)pages_held);
    /* Every held granule belongs to exactly one slab, chunk or large run: a
     * slab whose header was overwritten shows up here. */
    granules += m_nchunks * (MCHUNK_SIZE / SLAB_SIZE);
    const struct large *l;
    list_for_each_entry(l, &larges, link)
        granules += (l->base + l->pages * PAGE_SIZE - 1) / SLAB_SIZE - l->base / SLAB_SIZE + 1;
    for (uint64_t w = 0; w < (granule_count + 63) / 64; w++)
        held += (uint64_t)__builtin_popcountll(granule_map[w]);
    CHECK(held == granules, "%llu granules held, %llu accounted for (a slab header overwritten?)",
          (unsigned long long)held, (unsigned long long)granules);
    return true;
}
