/* Frame reference counts: one byte of extra references per frame, in per-GiB
 * arrays that exist only while their GiB has a shared frame (frameref.h).
 *
 * Keeping an array alive without a lock on the fast path: a GiB's entry
 * counts `refs` = (frames of the GiB with a nonzero byte) + (operations in
 * flight on the GiB). An operation "pins" the entry (refs + 1) before it
 * loads the array pointer and "unpins" it (refs - 1) when done with the
 * array; a byte going 0 -> 1 keeps its share's pin as the frame's count, a
 * byte going 1 -> 0 drops it with the put's own pin. The array may go only
 * when refs is 0: then every byte is 0 and nobody holds the pointer.
 *
 * Freeing is a Dekker handshake with the pinners, all in sequentially
 * consistent atomics: under the lock the freer sees refs == 0, stores NULL
 * to the pointer, then loads refs again. A pinner increments refs, then loads
 * the pointer. Either the freer's second load sees the pin (it puts the
 * pointer back and frees nothing; a pinner that saw NULL meanwhile takes the
 * lock to allocate and finds the pointer restored), or the pin comes later
 * in the total order, and the pinner's load sees NULL (it allocates a fresh,
 * zeroed array under the lock). Allocation happens under the same lock, so a
 * GiB never has two arrays.
 *
 * Locking: frameref_lock (rank LOCK_RANK_FRAMEREF, plain) serializes the
 * allocation and freeing of arrays and of the directory, and the counters
 * `arrays` and `dir_pages` (read lock-free). Everything else is atomic. */
#include "mm/frameref.h"

#include "lib/panic.h"
#include "lib/printf.h"
#include "lib/spinlock.h"
#include "lib/string.h"
#include "mm/frame.h"
#include "mm/mm.h"

#define GIB_SHIFT 30

struct frameref_gib {
    uint8_t *arr;  /* the GiB's count bytes (HHDM address), or NULL; atomic */
    uint64_t refs; /* shared frames of the GiB + pins in flight; atomic */
};

static struct spinlock frameref_lock = SPINLOCK_INIT("frameref", LOCK_RANK_FRAMEREF);
static uint64_t managed_frames;        /* frames the directory covers; 0: not sized yet (release/acquire: ngib before it) */
static uint64_t ngib;                  /* directory entries */
static struct frameref_gib *dir;       /* NULL until the first share; atomic pointer */
static uint64_t dir_pages;             /* the directory's frames (frameref_lock) */
static uint64_t arrays;                /* arrays allocated now (frameref_lock) */
static uint64_t shared_frames;         /* frames with a nonzero byte; atomic */

void frameref_init(void)
{
    struct frame_stats s;
    frame_get_stats(&s);
    spin_init(&frameref_lock, "frameref", LOCK_RANK_FRAMEREF);
    __atomic_store_n(&dir, NULL, __ATOMIC_RELEASE);
    dir_pages = 0;
    arrays = 0;
    __atomic_store_n(&shared_frames, 0, __ATOMIC_RELAXED);
    ngib = (s.total_frames + FRAMEREF_GIB_FRAMES - 1) / FRAMEREF_GIB_FRAMES;
    __atomic_store_n(&managed_frames, s.total_frames, __ATOMIC_RELEASE);
}

/* Sizes the directory when frameref_init was not called (once, under the lock). */
static void size_lazily(void)
{
    spin_lock(&frameref_lock);
    if (!__atomic_load_n(&managed_frames, __ATOMIC_ACQUIRE)) {
        struct frame_stats s;
        frame_get_stats(&s);
        ngib = (s.total_frames + FRAMEREF_GIB_FRAMES - 1) / FRAMEREF_GIB_FRAMES;
        __atomic_store_n(&managed_frames, s.total_frames, __ATOMIC_RELEASE);
    }
    spin_unlock(&frameref_lock);
}

/* frame_number's slow path: sizes the directory when nobody did, then
 * panics when frame is unaligned or outside the memory frame_init manages (a
 * caller's bug: only RAM pages are shared). Out of line and cold, so that the
 * check inlines into every call as two compares. */
__attribute__((noinline, cold)) static uint64_t frame_number_slow(paddr_t frame, const char *who)
{
    if (!__atomic_load_n(&managed_frames, __ATOMIC_ACQUIRE))
        size_lazily();
    uint64_t n = frame / PAGE_SIZE, managed = __atomic_load_n(&managed_frames, __ATOMIC_ACQUIRE);
    if (!IS_ALIGNED(frame, PAGE_SIZE) || n >= managed)
        panic("%s: frame %#llx is unaligned or outside managed memory (%llu frames)", who,
              (unsigned long long)frame, (unsigned long long)managed);
    return n;
}

/* The frame number of frame (checked: frame_number_slow). */
static inline uint64_t frame_number(paddr_t frame, const char *who)
{
    uint64_t n = frame / PAGE_SIZE;
    if (__builtin_expect(IS_ALIGNED(frame, PAGE_SIZE) &&
                             n < __atomic_load_n(&managed_frames, __ATOMIC_ACQUIRE), 1))
        return n;
    return frame_number_slow(frame, who);
}

/* The directory, allocating it (zeroed) on first use; NULL when no memory. */
static struct frameref_gib *dir_get(void)
{
    struct frameref_gib *d = __atomic_load_n(&dir, __ATOMIC_ACQUIRE);
    if (d)
        return d;
    spin_lock(&frameref_lock);
    d = __atomic_load_n(&dir, __ATOMIC_ACQUIRE);
    if (!d) {
        uint64_t pages = (ngib * sizeof(struct frameref_gib) + PAGE_SIZE - 1) / PAGE_SIZE;
        paddr_t p = frame_alloc_contig(pages, PAGE_SIZE);
        if (p) {
            d = PHYS2VIRT(p);
            memset(d, 0, pages * PAGE_SIZE);
            dir_pages = pages;
            __atomic_store_n(&dir, d, __ATOMIC_RELEASE);
        }
    }
    spin_unlock(&frameref_lock);
    return d;
}

static inline void pin(struct frameref_gib *g)
{
    __atomic_fetch_add(&g->refs, 1, __ATOMIC_SEQ_CST);
}

/* Frees g's array if refs is still 0 and nobody pinned it meanwhile (the
 * handshake in the header comment). */
static void array_try_free(struct frameref_gib *g)
{
    spin_lock(&frameref_lock);
    uint8_t *arr = __atomic_load_n(&g->arr, __ATOMIC_SEQ_CST);
    if (arr && __atomic_load_n(&g->refs, __ATOMIC_SEQ_CST) == 0) {
        __atomic_store_n(&g->arr, NULL, __ATOMIC_SEQ_CST);
        if (__atomic_load_n(&g->refs, __ATOMIC_SEQ_CST) == 0) {
            frame_free_contig((paddr_t)((uintptr_t)arr - hhdm_offset),
                              FRAMEREF_ARRAY_BYTES / PAGE_SIZE);
            arrays--;
        } else {
            __atomic_store_n(&g->arr, arr, __ATOMIC_SEQ_CST); /* a pinner may hold it */
        }
    }
    spin_unlock(&frameref_lock);
}

/* Takes n off g's count; the operation that brings it to 0 frees the array. */
static inline void unpin(struct frameref_gib *g, uint64_t n)
{
    if (__atomic_sub_fetch(&g->refs, n, __ATOMIC_SEQ_CST) == 0 &&
        __atomic_load_n(&g->arr, __ATOMIC_SEQ_CST))
        array_try_free(g);
}

/* g's array (pinned by the caller), allocating a zeroed one when it has
 * none; NULL when no 256 KiB run is free. */
static uint8_t *array_get(struct frameref_gib *g)
{
    uint8_t *arr = __atomic_load_n(&g->arr, __ATOMIC_SEQ_CST);
    if (arr)
        return arr;
    spin_lock(&frameref_lock);
    arr = __atomic_load_n(&g->arr, __ATOMIC_SEQ_CST);
    if (!arr) {
        paddr_t p = frame_alloc_contig(FRAMEREF_ARRAY_BYTES / PAGE_SIZE, FRAMEREF_ARRAY_BYTES);
        if (p) {
            arr = PHYS2VIRT(p);
            memset(arr, 0, FRAMEREF_ARRAY_BYTES);
            arrays++;
            __atomic_store_n(&g->arr, arr, __ATOMIC_SEQ_CST);
        }
    }
    spin_unlock(&frameref_lock);
    return arr;
}

bool frameref_share(paddr_t frame)
{
    uint64_t n = frame_number(frame, "frameref_share");
    struct frameref_gib *d = dir_get();
    if (!d)
        return false;
    struct frameref_gib *g = &d[n >> (GIB_SHIFT - PAGE_SHIFT)];
    pin(g);
    uint8_t *arr = array_get(g);
    if (!arr) {
        unpin(g, 1);
        return false;
    }
    uint8_t *b = &arr[n & (FRAMEREF_GIB_FRAMES - 1)];
    uint8_t old = __atomic_load_n(b, __ATOMIC_RELAXED);
    do {
        if (old == FRAMEREF_MAX) {
            unpin(g, 1);
            return false;
        }
    } while (!__atomic_compare_exchange_n(b, &old, (uint8_t)(old + 1), false, __ATOMIC_ACQ_REL,
                                          __ATOMIC_RELAXED));
    if (old == 0)
        __atomic_fetch_add(&shared_frames, 1, __ATOMIC_RELAXED); /* the pin stays: the frame's count */
    else
        unpin(g, 1);
    return true;
}

/* The GiB entry of frame number n when its array exists now, else NULL.
 * With no array, every frame of the GiB has one owner; and a frame's count
 * only rises through a holder of one of its references, so a caller that
 * holds the frame's only reference may trust that answer after the fact. */
static struct frameref_gib *entry_with_array(uint64_t n)
{
    struct frameref_gib *d = __atomic_load_n(&dir, __ATOMIC_ACQUIRE);
    if (!d)
        return NULL;
    struct frameref_gib *g = &d[n >> (GIB_SHIFT - PAGE_SHIFT)];
    if (__atomic_load_n(&g->arr, __ATOMIC_SEQ_CST))
        return g;
    /* No pointer and nothing counted: no frame of the GiB is shared. No
     * pointer while something is counted or in flight: array_try_free's
     * handshake may have the pointer out for a moment while a frame of the
     * GiB is shared (it stored NULL after seeing refs 0; a share that had
     * loaded the pointer before completed since). The lock waits that out:
     * under it the pointer is restored, or the array is really gone. */
    if (!__atomic_load_n(&g->refs, __ATOMIC_SEQ_CST))
        return NULL;
    spin_lock(&frameref_lock);
    bool has = __atomic_load_n(&g->arr, __ATOMIC_SEQ_CST) != NULL;
    spin_unlock(&frameref_lock);
    return has ? g : NULL;
}

unsigned frameref_extra(paddr_t frame)
{
    uint64_t n = frame_number(frame, "frameref_extra");
    struct frameref_gib *g = entry_with_array(n);
    if (!g)
        return 0;
    pin(g);
    uint8_t *arr = __atomic_load_n(&g->arr, __ATOMIC_SEQ_CST);
    unsigned v = arr ? __atomic_load_n(&arr[n & (FRAMEREF_GIB_FRAMES - 1)], __ATOMIC_ACQUIRE) : 0;
    unpin(g, 1);
    return v;
}

bool frameref_put(paddr_t frame)
{
    uint64_t n = frame_number(frame, "frameref_put");
    struct frameref_gib *g = entry_with_array(n);
    if (!g)
        return true;
    pin(g);
    uint8_t *arr = __atomic_load_n(&g->arr, __ATOMIC_SEQ_CST);
    if (!arr) {
        unpin(g, 1);
        return true;
    }
    uint8_t *b = &arr[n & (FRAMEREF_GIB_FRAMES - 1)];
    uint8_t old = __atomic_load_n(b, __ATOMIC_ACQUIRE);
    do {
        if (old == 0) {
            unpin(g, 1);
            return true;
        }
    } while (!__atomic_compare_exchange_n(b, &old, (uint8_t)(old - 1), false, __ATOMIC_ACQ_REL,
                                          __ATOMIC_ACQUIRE));
    if (old == 1) {
        __atomic_fetch_sub(&shared_frames, 1, __ATOMIC_RELAXED);
        unpin(g, 2); /* the frame's count and this put's pin */
    } else {
        unpin(g, 1);
    }
    return false;
}

uint64_t frameref_shared_frames(void)
{
    return __atomic_load_n(&shared_frames, __ATOMIC_RELAXED);
}

uint64_t frameref_metadata_bytes(void)
{
    spin_lock(&frameref_lock);
    uint64_t b = dir_pages * PAGE_SIZE + arrays * FRAMEREF_ARRAY_BYTES;
    spin_unlock(&frameref_lock);
    return b;
}

bool frameref_check(void)
{
    struct frameref_gib *d = __atomic_load_n(&dir, __ATOMIC_ACQUIRE);
    uint64_t total = 0, narrays = 0;
    for (uint64_t i = 0; d && i < ngib; i++) {
        struct frameref_gib *g = &d[i];
        uint8_t *arr = __atomic_load_n(&g->arr, __ATOMIC_ACQUIRE);
        uint64_t refs = __atomic_load_n(&g->refs, __ATOMIC_ACQUIRE), nz = 0;
        if (arr) {
            narrays++;
            const uint64_t *w = (const uint64_t *)arr;
            for (uint64_t k = 0; k < FRAMEREF_ARRAY_BYTES / 8; k++)
                if (w[k])
                    for (unsigned j = 0; j < 8; j++)
                        nz += ((w[k] >> (8 * j)) & 0xff) != 0;
            if (nz == 0) {
                kprintf("frameref_check: GiB %llu has an array but no shared frame\n",
                        (unsigned long long)i);
                return false;
            }
        }
        if (refs != nz) {
            kprintf("frameref_check: GiB %llu counts %llu, its array holds %llu shared frames\n",
                    (unsigned long long)i, (unsigned long long)refs, (unsigned long long)nz);
            return false;
        }
        total += nz;
    }
    if (total != frameref_shared_frames()) {
        kprintf("frameref_check: %llu shared frames counted, arrays hold %llu\n",
                (unsigned long long)frameref_shared_frames(), (unsigned long long)total);
        return false;
    }
    spin_lock(&frameref_lock);
    uint64_t a = arrays;
    spin_unlock(&frameref_lock);
    if (a != narrays) {
        kprintf("frameref_check: %llu arrays counted, %llu in the directory\n",
                (unsigned long long)a, (unsigned long long)narrays);
        return false;
    }
    return true;
}
