/* Fuzz target: the frame allocator (kernel/mm/frame.c) over random memory
 * maps, checked against a model.
 *
 * Input: u8 phys_bits, u8 entry count (1 + v % 32), entries, then operations.
 *   entry: u8 code, u32 base (pages), u32 length (pages), u16 jitter.
 *     type = code & 7 (code & 8: an unknown type); code & 0x10 / 0x20 add
 *     jitter & 0xfff to base / length (unaligned entries); usable and
 *     bootloader-reclaimable entries are kept below 8 GiB (the host arena
 *     stands for physical memory up to the top one), others may lie anywhere
 *     (code & 0x40 scales their base by 2^20 pages); without code & 0x80
 *     base and length are first cut below 256 and 64 MiB (a small machine).
 *   The raw map goes through memmap_sanitize, then frame_init, as in main.
 *   operation: u8 opcode, then its arguments (see run_op).
 *
 * The model: a bitmap of the frames that may be handed out (usable memory,
 * not frame 0, not the allocator's metadata; reclaimed memory once
 * reclaimed) and a bitmap of frames held. Checked: every frame handed out is
 * aligned, available and not held (so never outside usable memory and never
 * twice); a run from frame_alloc_contig is aligned and wholly available;
 * frame_alloc fails only when the model has no free frame, frame_alloc_contig
 * only when the model has no such run (frames in the CPU's frame cache are
 * free to the model: a failing call must drain the caches first); the
 * statistics agree with the model after every check operation and every
 * refused free, frame_check passes on the final state (it walks all the
 * metadata: once per input, issue 17); freeing any address the model does
 * not hold panics and changes nothing; a frame_free_contig of a run the model
 * does not wholly hold (stretched or shifted held runs, unaligned, empty,
 * wrapping, anywhere) panics and leaves the allocator's whole state digest
 * unchanged (the first four of an input; the model and frame_check see
 * what later ones change); frame_alloc_zeroed gives zeroes; at
 * the end everything is freed and the counts are back where they started.
 * frame_alloc_below gives a model-free frame under its limit and fails only
 * when there is none; after frame_drain_cpu_caches no cache holds a frame.
 * frame_init may panic only when no usable region can hold the metadata.
 *
 * Several CPUs: each operation runs as CPU 0, 1, 2 or CPU_MAX - 1 (opcode / 10
 * % 4; cpu_index() is the host's host_cpu_index), and the model keeps every
 * CPU's frame cache as frame.c describes it: a stack of at most
 * FRAME_CACHE_MAX frames, refilled when empty with the REFILL lowest frames
 * free in the bitmap (the lowest on top), its REFILL oldest frames given back
 * when a free finds it full, a frame freed on any CPU landing on that CPU's
 * stack; every cache drained into the bitmap when a frame_alloc,
 * frame_alloc_below or frame_alloc_contig finds nothing in the bitmap (and
 * only then). So frame_alloc must return exactly the model's frame, each
 * CPU's frame_cache_count must equal the model's after every single-frame
 * call and at every check, frame_drain_cpu_caches must return the frames the
 * model's caches hold, and frame_alloc_below returns exactly the lowest
 * frame free in the bitmap (after a drain when there is none under the
 * limit). A contiguous run never takes a cached frame without a drain, and a
 * drain happens only when the bitmap alone had no such run. At the end,
 * every run is freed across the CPUs, every cache drained: the counts are
 * back at their values after frame_init.
 *
 * Speed (issue 17; docs/testing.md has the numbers): one arena for the run,
 * static model bitmaps cleared only as far as the input's map reaches, the
 * model's loops without coverage hooks (FUZZ_NOCOV), frame.c without
 * comparison hooks (mk/fuzz.mk), frame_is_used sampled along long runs. */
#include "fuzz.h"

#include "boot/boot_info.h"
#include "mm/frame.h"
#include "mm/memmap.h"
#include "mm/mm.h"

#include <sys/mman.h>

#define CAP GiB(8)
#define MAX_RAW 32
/* Bytes of an input read: the memory map (at most 354 bytes), then at least
 * 210 operations (run.sh passes it to libFuzzer as -max_len). The longest
 * kept input is 156 bytes. */
#define FUZZ_MAX_LEN 2048
/* The arena (CAP bytes, lazily backed) is mapped once for the whole run;
 * frame_init rewrites all of its metadata, so nothing needs clearing between
 * inputs (stale bytes stand for the garbage of real RAM). Only the frames the
 * allocator writes are backed: its metadata and the zeroed frames. Once
 * inputs have written this much, the arena is dropped (MADV_DONTNEED) to
 * keep a long run's memory bounded. */
#define TOUCH_LIMIT MiB(256)

struct run {
    paddr_t base;
    uint64_t count;
};

static struct mem_region raw[MAX_RAW], map[MEMMAP_MAX];
static size_t nmap;
static uint64_t total;      /* frames from 0 to the top managed frame */
static uint64_t avail[CAP / PAGE_SIZE / 64 + 1]; /* model: may be handed out */
static uint64_t held[CAP / PAGE_SIZE / 64 + 1];  /* model: handed out and not yet freed */
static uint64_t nwords; /* words of avail and held in use (cleared per input) */
static uint64_t touched; /* bytes of the arena written since it was last dropped */
static bool arena_ready;
static uint64_t model_free; /* popcount(avail & ~held) */
static uint64_t model_usable, model_reclaimable, model_reserved;
static paddr_t meta_base;
static uint64_t meta_bytes;
static bool reclaimed;
static struct run *runs;
static size_t nruns, runs_cap;
static unsigned digests_compared; /* refused frame_free_contig calls digested this input */

/* The CPUs operations run as: three low indices and the last one, so that
 * the end of frame.c's cache array is used too. */
#define NCPU 4
static const unsigned cpu_ids[NCPU] = {0, 1, 2, CPU_MAX - 1};
/* frame.c's CACHE_BATCH: the frames a refill of an empty cache takes and a
 * free into a full cache gives back (the model's caches follow them). */
#define REFILL 32u
static unsigned cur;                           /* index into cpu_ids: the running CPU */
static uint64_t cached[CAP / PAGE_SIZE / 64 + 1]; /* model: in some CPU's cache */
static paddr_t mcache[NCPU][FRAME_CACHE_MAX];   /* each CPU's stack, top at [mcount - 1] */
static unsigned mcount[NCPU];
static uint64_t model_cached;                  /* frames in all the model's caches */
static uint64_t low_hint; /* no frame below this is free in the bitmap (not cached, not held) */

static bool bit(const uint64_t *b, uint64_t f) { return (b[f / 64] >> (f % 64)) & 1; }
static void bit_set(uint64_t *b, uint64_t f) { b[f / 64] |= 1ULL << (f % 64); }
static void bit_clear(uint64_t *b, uint64_t f) { b[f / 64] &= ~(1ULL << (f % 64)); }
static bool model_is_free(uint64_t f) { return f < total && bit(avail, f) && !bit(held, f); }

static FUZZ_NOCOV void range_set(uint64_t *b, uint64_t f0, uint64_t f1, bool on)
{
    for (uint64_t f = f0; f < f1;) {
        if (f % 64 == 0 && f + 64 <= f1) {
            b[f / 64] = on ? ~0ULL : 0;
            f += 64;
        } else {
            if (on)
                bit_set(b, f);
            else
                bit_clear(b, f);
            f++;
        }
    }
}

static FUZZ_NOCOV uint64_t popcount_all(const uint64_t *b)
{
    uint64_t n = 0;
    for (uint64_t w = 0; w < nwords; w++)
        n += (uint64_t)__builtin_popcountll(b[w]);
    return n;
}

/* The frames free to the model in word w: not held; with `bitmap`, not
 * cached either (free in the allocator's bitmap). */
static inline uint64_t free_word(uint64_t w, bool bitmap)
{
    return avail[w] & ~held[w] & (bitmap ? ~cached[w] : ~0ULL);
}

/* First model-free frame at or after f (total when none); with `bitmap`,
 * the first one free in the bitmap. */
static FUZZ_NOCOV uint64_t model_next_free_in(uint64_t f, bool bitmap)
{
    while (f < total) {
        uint64_t v = free_word(f / 64, bitmap) & (~0ULL << (f % 64));
        if (v) {
            uint64_t r = f / 64 * 64 + (uint64_t)__builtin_ctzll(v);
            return r < total ? r : total;
        }
        f = (f / 64 + 1) * 64;
    }
    return total;
}

/* First frame in [f, end) that is not model-free (end when none); with
 * `bitmap`, not free in the bitmap. */
static FUZZ_NOCOV uint64_t model_next_busy(uint64_t f, uint64_t end, bool bitmap)
{
    while (f < end) {
        uint64_t v = ~free_word(f / 64, bitmap) & (~0ULL << (f % 64));
        if (v) {
            uint64_t r = f / 64 * 64 + (uint64_t)__builtin_ctzll(v);
            return r < end ? r : end;
        }
        f = (f / 64 + 1) * 64;
    }
    return end;
}

/* True when `count` model-free frames (with `bitmap`: free in the bitmap)
 * start at a multiple of `step` frames. */
static FUZZ_NOCOV bool model_has_run(uint64_t count, uint64_t step, bool bitmap)
{
    uint64_t f = model_next_free_in(bitmap ? low_hint : 1, bitmap);
    while (f < total) {
        uint64_t s = (f + step - 1) / step * step;
        if (s >= total || count > total - s)
            return false;
        uint64_t u = model_next_busy(s, s + count, bitmap);
        if (u == s + count)
            return true;
        f = model_next_free_in(u + 1, bitmap);
    }
    return false;
}

/* ---- the model's per-CPU caches ---- */

static void take_frames(paddr_t base, uint64_t count, const char *how);

/* Every CPU's frame_cache_count against the model (0 for CPUs it never ran). */
static FUZZ_NOCOV void check_cache_counts(const char *when)
{
    for (unsigned k = 0, j = 0; k < CPU_MAX; k++) {
        unsigned want = 0;
        if (j < NCPU && cpu_ids[j] == k)
            want = mcount[j++];
        FUZZ_CHECK(frame_cache_count(k) == want, "%s: CPU %u's cache holds %u frames, model %u",
                   when, k, frame_cache_count(k), want);
    }
}

/* Frame f leaves a model cache for the bitmap. */
static void uncache(paddr_t f)
{
    bit_clear(cached, f / PAGE_SIZE);
    model_cached--;
    low_hint = MIN(low_hint, f / PAGE_SIZE);
}

/* Every model cache goes back to the bitmap (frame.c's drain_all). */
static FUZZ_NOCOV void model_drain(void)
{
    for (unsigned j = 0; j < NCPU; j++) {
        for (unsigned k = 0; k < mcount[j]; k++)
            uncache(mcache[j][k]);
        mcount[j] = 0;
    }
}

/* The lowest frame free in the bitmap (total when none); moves low_hint up. */
static uint64_t lowest_bitmap_free(void)
{
    low_hint = model_next_free_in(MAX(low_hint, 1), true);
    return low_hint;
}

/* What frame_alloc on the running CPU must return (0: it must fail), the
 * model's caches updated as frame.c does it; `refilled` is set when the
 * cache was empty (its new count is then checked by the caller). */
static paddr_t model_alloc(bool *refilled)
{
    unsigned *n = &mcount[cur];
    *refilled = false;
    if (*n) {
        paddr_t f = mcache[cur][--*n];
        bit_clear(cached, f / PAGE_SIZE);
        model_cached--;
        return f;
    }
    *refilled = true;
    if (model_free == model_cached) { /* nothing in the bitmap: drain, then refill */
        if (!model_cached)
            return 0;
        model_drain();
    }
    /* the REFILL lowest bitmap-free frames: the lowest handed out, the rest
     * stacked with the lowest on top */
    uint64_t take = MIN(model_free - model_cached, REFILL), got[REFILL];
    for (uint64_t k = 0; k < take; k++) {
        got[k] = lowest_bitmap_free();
        FUZZ_CHECK(got[k] < total, "model: %llu bitmap-free frames counted, %llu found",
                   (unsigned long long)take, (unsigned long long)k);
        low_hint = got[k] + 1;
        if (k)
            bit_set(cached, got[k]);
    }
    *n = (unsigned)take - 1;
    for (unsigned k = 0; k < *n; k++)
        mcache[cur][k] = got[take - 1 - k] * PAGE_SIZE;
    model_cached += *n;
    return got[0] * PAGE_SIZE;
}

/* A frame_alloc or frame_alloc_zeroed on the running CPU returned f: exactly
 * the model's frame, and the CPU's cache count as the model's. */
static void alloc_one_check(paddr_t f, const char *how)
{
    bool refilled;
    paddr_t want = model_alloc(&refilled);
    if (!want) {
        FUZZ_CHECK(!f && model_free == 0, "%s gave %#llx with %llu frames free (model: none)",
                   how, (unsigned long long)f, (unsigned long long)model_free);
        return;
    }
    FUZZ_CHECK(f, "%s failed with %llu frames free", how, (unsigned long long)model_free);
    FUZZ_CHECK(f == want, "%s on CPU %u gave %#llx, the model's %s gives %#llx", how,
               cpu_ids[cur], (unsigned long long)f, refilled ? "refill" : "cache top",
               (unsigned long long)want);
    FUZZ_CHECK(frame_cache_count(cpu_ids[cur]) == mcount[cur],
               "%s on CPU %u: its cache holds %u frames, model %u", how, cpu_ids[cur],
               frame_cache_count(cpu_ids[cur]), mcount[cur]);
    take_frames(f, 1, how);
}

/* frame_free(f) of a held frame on the running CPU, model and all: f goes on
 * the CPU's cache; a full cache first gives its REFILL oldest frames back. */
static void free_one(paddr_t f)
{
    frame_free(f);
    bit_clear(held, f / PAGE_SIZE);
    model_free++;
    unsigned *n = &mcount[cur];
    if (*n == FRAME_CACHE_MAX) {
        for (unsigned k = 0; k < REFILL; k++)
            uncache(mcache[cur][k]);
        memmove(mcache[cur], mcache[cur] + REFILL, (*n - REFILL) * sizeof(paddr_t));
        *n -= REFILL;
    }
    mcache[cur][(*n)++] = f;
    bit_set(cached, f / PAGE_SIZE);
    model_cached++;
    FUZZ_CHECK(frame_cache_count(cpu_ids[cur]) == *n,
               "frame_free on CPU %u: its cache holds %u frames, model %u", cpu_ids[cur],
               frame_cache_count(cpu_ids[cur]), *n);
}

/* frame_free_contig of the held frames [base, base + n pages), model and all
 * (they go straight to the bitmap). */
static void free_run(paddr_t base, uint64_t n)
{
    frame_free_contig(base, n);
    range_set(held, base / PAGE_SIZE, base / PAGE_SIZE + n, false);
    model_free += n;
    low_hint = MIN(low_hint, base / PAGE_SIZE);
}

static void runs_push(paddr_t base, uint64_t count)
{
    if (nruns == runs_cap) {
        runs_cap = runs_cap ? runs_cap * 2 : 256;
        runs = realloc(runs, runs_cap * sizeof(*runs));
        FUZZ_CHECK(runs, "realloc");
    }
    runs[nruns++] = (struct run){base, count};
}

/* The frame of a run of count after its k-th whose allocator bit
 * take_frames reads: the first 8, the last 8 and every 61st. */
static uint64_t next_sampled(uint64_t k, uint64_t count)
{
    uint64_t n = k + 1;
    if (n < 8 || n + 8 >= count)
        return n;
    return MIN((n + 60) / 61 * 61, count - 8);
}

/* Records frames [f, f+count) as handed out, checking each: a word of the
 * model's bitmaps at a time (a run may be 65536 frames), the first frame
 * that fails named. */
static FUZZ_NOCOV void take_frames(paddr_t base, uint64_t count, const char *how)
{
    FUZZ_CHECK(base % PAGE_SIZE == 0, "%s gave unaligned %#llx", how, (unsigned long long)base);
    uint64_t f0 = base / PAGE_SIZE, end = f0 + count;
    FUZZ_CHECK(end >= f0 && end <= total, "%s gave frames %#llx+%llu: past usable memory", how,
               (unsigned long long)base, (unsigned long long)count);
    for (uint64_t f = f0; f < end;) {
        uint64_t w = f / 64, lo = f % 64, n = MIN(64 - lo, end - f);
        uint64_t mask = (n == 64 ? ~0ULL : ((1ULL << n) - 1)) << lo;
        if ((avail[w] & mask) != mask || (held[w] & mask) || (cached[w] & mask)) {
            uint64_t b = (uint64_t)__builtin_ctzll(((~avail[w] | held[w] | cached[w]) & mask));
            uint64_t g = w * 64 + b;
            FUZZ_CHECK(bit(avail, g), "%s gave frame %#llx: not usable memory", how,
                       (unsigned long long)g * PAGE_SIZE);
            FUZZ_CHECK(!bit(held, g), "%s gave frame %#llx twice", how,
                       (unsigned long long)g * PAGE_SIZE);
            FUZZ_CHECK(false, "%s gave frame %#llx from a CPU's cache", how,
                       (unsigned long long)g * PAGE_SIZE);
        }
        held[w] |= mask;
        f += n;
    }
    /* the allocator's own bit, sampled: a call per frame of a 65536-frame
     * run was a third of the target's time; frame_check at the end sees
     * every bit */
    for (uint64_t k = 0; k < count; k = next_sampled(k, count))
        FUZZ_CHECK(frame_is_used((f0 + k) * PAGE_SIZE), "%s: frame %#llx not marked used", how,
                   (unsigned long long)(f0 + k) * PAGE_SIZE);
    model_free -= count;
    runs_push(base, count);
}

/* Frees run i (the allocator's call and the model) and forgets it. */
static void give_back(size_t i)
{
    struct run r = runs[i];
    if (r.count == 1)
        free_one(r.base);
    else
        free_run(r.base, r.count);
    runs[i] = runs[--nruns];
}

/* The statistics against the model; with `full`, frame_check too (it walks
 * all the metadata: at the end of an input only). */
static void check_stats(bool full)
{
    struct frame_stats s;
    frame_get_stats(&s);
    FUZZ_CHECK(!full || frame_check(), "frame_check failed");
    FUZZ_CHECK(s.total_frames == total, "total %llu, want %llu", (unsigned long long)s.total_frames,
               (unsigned long long)total);
    FUZZ_CHECK(s.free_frames == model_free, "free %llu, model %llu",
               (unsigned long long)s.free_frames, (unsigned long long)model_free);
    FUZZ_CHECK(s.usable_frames == model_usable, "usable %llu, model %llu",
               (unsigned long long)s.usable_frames, (unsigned long long)model_usable);
    FUZZ_CHECK(s.reclaimable_frames == (reclaimed ? 0 : model_reclaimable) &&
                   s.reclaimed_frames == (reclaimed ? model_reclaimable : 0),
               "reclaimable %llu reclaimed %llu, model %llu",
               (unsigned long long)s.reclaimable_frames, (unsigned long long)s.reclaimed_frames,
               (unsigned long long)model_reclaimable);
    FUZZ_CHECK(s.reserved_frames == model_reserved, "reserved %llu, model %llu",
               (unsigned long long)s.reserved_frames, (unsigned long long)model_reserved);
    FUZZ_CHECK(s.metadata_bytes == meta_bytes, "metadata bytes");
    check_cache_counts("statistics");
}

/* Raw entry -> region, shaped so that managed memory stays below CAP. */
static struct mem_region decode_entry(struct fuzz_in *in)
{
    uint8_t code = fuzz_u8(in);
    uint64_t base = (uint64_t)fuzz_u32(in) * PAGE_SIZE, len = (uint64_t)fuzz_u32(in) * PAGE_SIZE;
    uint16_t jitter = fuzz_u16(in);
    uint32_t type = (code & 8) ? 0x100u + code : code & 7u;
    if (code & 0x10)
        base += jitter & 0xfff;
    if (code & 0x20)
        len += jitter >> 4;
    if (!(code & 0x80)) { /* a small machine: everything below 256 MiB */
        base %= MiB(256);
        len %= MiB(64);
    }
    if (type == MEM_USABLE || type == MEM_BOOTLOADER_RECLAIMABLE) {
        base %= CAP;
        len = MIN(len, CAP - base);
    } else if (code & 0x40) {
        base <<= 20;
    }
    return (struct mem_region){base, len, type};
}

/* The metadata location frame_init logs ("bitmap+summaries at 0x..."). */
static paddr_t logged_meta_base(void)
{
    const char *p = strstr(host_log, "bitmap+summaries at ");
    FUZZ_CHECK(p, "frame_init logged no metadata line");
    return strtoull(p + strlen("bitmap+summaries at "), NULL, 16);
}

/* An upper bound of the metadata for `frames` frames: bitmap, three summary
 * trees of three levels and a sentinel each, each rounded up a word, in
 * whole pages. */
static uint64_t meta_bound(uint64_t frames)
{
    /* bitmap and held bits, one word per 64 frames each; three summary trees */
    return ALIGN_UP((2 * (frames / 64 + 1) + 3 * (frames / 4096 + frames / 262144 + 8)) * 8,
                    PAGE_SIZE) +
           PAGE_SIZE;
}

/* Builds the model from the sanitized map; false when frame_init panicked
 * (allowed only when no usable region can hold the metadata). */
static bool setup(void)
{
    uint64_t top = 0, largest = 0;
    for (size_t i = 0; i < nmap; i++) {
        uint64_t end = map[i].base + map[i].length;
        if (map[i].type == MEM_USABLE || map[i].type == MEM_BOOTLOADER_RECLAIMABLE)
            top = MAX(top, end);
        if (map[i].type == MEM_USABLE)
            largest = MAX(largest, end - MAX(map[i].base, PAGE_SIZE));
    }
    total = top / PAGE_SIZE;
    fuzz_log_reset();
    if (HOST_EXPECT_PANIC(frame_init(map, nmap))) {
        FUZZ_CHECK(strstr(host_panic_msg, "frame_init: no usable") && largest < meta_bound(total),
                   "frame_init panicked with a %llu KiB usable region: %s",
                   (unsigned long long)largest >> 10, host_panic_msg);
        return false;
    }
    FUZZ_CHECK(top, "frame_init accepted a map without usable memory");

    struct frame_stats s;
    frame_get_stats(&s);
    meta_base = logged_meta_base();
    meta_bytes = s.metadata_bytes;
    nwords = total / 64 + 1;
    memset(avail, 0, nwords * 8);
    memset(held, 0, nwords * 8);
    memset(cached, 0, nwords * 8);
    memset(mcount, 0, sizeof(mcount));
    model_cached = 0;
    low_hint = 1;
    touched += meta_bytes;
    model_reclaimable = model_reserved = 0;
    bool meta_inside = false;
    for (size_t i = 0; i < nmap; i++) {
        uint64_t f0 = map[i].base / PAGE_SIZE, f1 = f0 + map[i].length / PAGE_SIZE;
        if (map[i].type == MEM_USABLE) {
            range_set(avail, f0, f1, true);
            meta_inside |= meta_base >= map[i].base &&
                           meta_base + meta_bytes <= map[i].base + map[i].length;
        } else if (map[i].type == MEM_BOOTLOADER_RECLAIMABLE) {
            model_reclaimable += f1 - f0 - (f0 == 0);
        } else if (f0 < total) {
            model_reserved += MIN(f1, total) - f0;
        }
        if (f0 == 0 && (map[i].type == MEM_USABLE || map[i].type == MEM_BOOTLOADER_RECLAIMABLE))
            model_reserved++; /* frame 0 becomes a reserved region of its own */
    }
    FUZZ_CHECK(meta_inside && meta_base >= PAGE_SIZE && meta_base % PAGE_SIZE == 0 &&
                   meta_bytes >= PAGE_SIZE && meta_bytes <= meta_bound(total),
               "metadata at %#llx + %#llx is not inside usable memory",
               (unsigned long long)meta_base, (unsigned long long)meta_bytes);
    bit_clear(avail, 0);
    range_set(avail, meta_base / PAGE_SIZE, (meta_base + meta_bytes) / PAGE_SIZE, false);
    model_usable = model_free = popcount_all(avail);
    reclaimed = false;
    nruns = 0;
    check_stats(false);
    return true;
}

/* True when frame_free_contig(base, count) is a good call: aligned, not
 * empty, not wrapping, every frame held. */
static FUZZ_NOCOV bool model_run_held(paddr_t base, uint64_t count)
{
    if (base % PAGE_SIZE || count == 0 || count > (UINT64_MAX - base) / PAGE_SIZE)
        return false;
    uint64_t f0 = base / PAGE_SIZE;
    if (f0 >= total || count > total - f0)
        return false;
    for (uint64_t f = f0; f < f0 + count; f++)
        if (!bit(held, f))
            return false;
    return true;
}

/* A frame_free_contig that the model says is bad: u16, u8 (op & 0x40: an
 * arbitrary place, u32 more). It must panic and change nothing at all. */
static void bad_contig_free(struct fuzz_in *in, uint8_t op)
{
    uint16_t v = fuzz_u16(in);
    uint8_t k = fuzz_u8(in);
    paddr_t base;
    uint64_t count;
    if (nruns && !(op & 0x40)) { /* a held run, stretched or shifted */
        struct run r = runs[v % nruns];
        uint64_t d = 1 + (uint64_t)(k / 8) % 32;
        base = r.base;
        count = r.count;
        switch (k % 8) {
        case 0: count += d; break;                           /* past its end */
        case 1: base -= d * PAGE_SIZE; count += d; break;    /* before its start */
        case 2: base += d * PAGE_SIZE; break;                /* shifted up */
        case 3: base += 1 + k; break;                        /* unaligned */
        case 4: count = 0; break;                            /* empty */
        case 5: count = UINT64_MAX / PAGE_SIZE - k; break;   /* wraps */
        case 6: count += (uint64_t)v * 64; break;            /* far past its end */
        default: base -= d * PAGE_SIZE; break;               /* shifted down */
        }
    } else {
        base = (uint64_t)(fuzz_u32(in) % (total + 64)) * PAGE_SIZE;
        count = 1 + v % 1024;
    }
    if (model_run_held(base, count))
        return; /* a good call after all (held runs may touch) */
    /* The digest hashes all the metadata (a sixth of the target's time when
     * every refusal took two): the first few refusals of an input compare
     * it; later ones rely on the model, the statistics and frame_check at
     * the end, which see any lasting change. */
    bool compare = digests_compared < 4;
    uint64_t digest = 0;
    if (compare) {
        digests_compared++;
        digest = frame_state_digest();
    }
    FUZZ_CHECK(HOST_EXPECT_PANIC(frame_free_contig(base, count)),
               "frame_free_contig(%#llx, %llu) of frames not all held did not panic",
               (unsigned long long)base, (unsigned long long)count);
    FUZZ_CHECK(!compare || frame_state_digest() == digest,
               "a refused frame_free_contig(%#llx, %llu) changed the allocator: %s",
               (unsigned long long)base, (unsigned long long)count, host_panic_msg);
    check_stats(false);
}

/* frame_alloc_below(limit pages) on the running CPU: the lowest frame free
 * in the bitmap when it lies below the limit; else, when some cache holds
 * frames, every cache is drained and the lowest model-free frame is taken if
 * it lies below; else 0. */
static void alloc_below(uint32_t pages)
{
    paddr_t limit = (paddr_t)pages * PAGE_SIZE, f = frame_alloc_below(limit);
    uint64_t want = lowest_bitmap_free();
    if ((want >= total || want >= limit / PAGE_SIZE) && model_cached) {
        model_drain();
        want = lowest_bitmap_free();
    }
    if (want >= total || want >= limit / PAGE_SIZE) {
        FUZZ_CHECK(!f, "frame_alloc_below(%#llx) gave %#llx; the model has no free frame below",
                   (unsigned long long)limit, (unsigned long long)f);
        check_cache_counts("frame_alloc_below");
        return;
    }
    FUZZ_CHECK(f == want * PAGE_SIZE,
               "frame_alloc_below(%#llx) gave %#llx, the lowest free is %#llx",
               (unsigned long long)limit, (unsigned long long)f,
               (unsigned long long)want * PAGE_SIZE);
    check_cache_counts("frame_alloc_below");
    take_frames(f, 1, "frame_alloc_below");
}

/* frame_alloc_contig(count, asked) on the running CPU, `align` the
 * alignment it means (a page for anything smaller): a run from the bitmap
 * while it has one, the caches untouched; every cache drained first only
 * when it has none; 0 only when the model has no such run at all. */
static void alloc_contig(uint64_t count, uint64_t asked, uint64_t align)
{
    paddr_t b = frame_alloc_contig(count, asked);
    bool drained = false;
    if (model_cached) { /* did it drain? all caches empty, or none changed */
        unsigned left = 0;
        for (unsigned j = 0; j < NCPU; j++)
            left += frame_cache_count(cpu_ids[j]) != 0;
        drained = left == 0;
        FUZZ_CHECK(drained || b, "frame_alloc_contig(%llu, %#llx) failed without a drain",
                   (unsigned long long)count, (unsigned long long)align);
        if (drained) {
            FUZZ_CHECK(!model_has_run(count, align / PAGE_SIZE, true),
                       "frame_alloc_contig(%llu, %#llx) drained the caches with such a run free "
                       "in the bitmap", (unsigned long long)count, (unsigned long long)align);
            model_drain();
        }
    }
    check_cache_counts("frame_alloc_contig");
    if (!b) {
        FUZZ_CHECK(!model_has_run(count, align / PAGE_SIZE, false),
                   "frame_alloc_contig(%llu, %#llx) failed but such a run is free",
                   (unsigned long long)count, (unsigned long long)align);
        return;
    }
    FUZZ_CHECK(b % align == 0, "run %#llx not aligned to %#llx", (unsigned long long)b,
               (unsigned long long)align);
    take_frames(b, count, "frame_alloc_contig");
}

static void run_op(struct fuzz_in *in)
{
    uint8_t op = fuzz_u8(in);
    cur = (op / 10) % NCPU;
    host_cpu_index = cpu_ids[cur];
    switch (op % 10) {
    case 0:
    case 1: { /* one frame (1: zeroed; 0 with op & 0x80: below a u32 limit in pages) */
        if (op % 10 == 0 && (op & 0x80)) {
            alloc_below(fuzz_u32(in));
            return;
        }
        paddr_t f = op % 10 ? frame_alloc_zeroed() : frame_alloc();
        alloc_one_check(f, op % 10 ? "frame_alloc_zeroed" : "frame_alloc");
        if (f && op % 10) {
            touched += PAGE_SIZE;
            const uint64_t *w = PHYS2VIRT(f);
            for (size_t i = 0; i < PAGE_SIZE / 8; i++)
                FUZZ_CHECK(w[i] == 0, "frame_alloc_zeroed: word %zu not zero", i);
        }
        return;
    }
    case 2: { /* a burst of single frames: u16 */
        unsigned n = fuzz_u16(in) % 2048 + 1;
        for (unsigned k = 0; k < n; k++) {
            paddr_t f = frame_alloc();
            alloc_one_check(f, "frame_alloc");
            if (!f)
                return;
        }
        return;
    }
    case 3: { /* a contiguous aligned run: u16 count, u8 align shift (op & 0x40:
               * an alignment below a page, which means a page) */
        uint64_t count = 1 + fuzz_u16(in) % ((op & 0x80) ? 65536 : 512);
        uint8_t sh = fuzz_u8(in);
        if (op & 0x40) {
            FUZZ_CHECK(!frame_alloc_contig(0, PAGE_SIZE), "frame_alloc_contig of 0 frames");
            alloc_contig(count, PAGE_SIZE >> (sh % 13), PAGE_SIZE);
            return;
        }
        alloc_contig(count, PAGE_SIZE << (sh % 19), PAGE_SIZE << (sh % 19));
        return;
    }
    case 4: { /* free one held run: u16 index (op & 0x80: only its upper part, u8
               * frames, as the heap does with a half slab; the rest stays held) */
        if (!nruns)
            return;
        size_t i = fuzz_u16(in) % nruns;
        if ((op & 0x80) && runs[i].count >= 2) {
            uint64_t keep = 1 + fuzz_u8(in) % (runs[i].count - 1), n = runs[i].count - keep;
            free_run(runs[i].base + keep * PAGE_SIZE, n);
            runs[i].count = keep;
            return;
        }
        give_back(i);
        return;
    }
    case 5: { /* free up to u8 runs from the end */
        unsigned n = fuzz_u8(in);
        while (n-- && nruns)
            give_back(nruns - 1);
        return;
    }
    case 6: { /* reclaim bootloader memory */
        uint64_t bytes = frame_reclaim_bootloader();
        uint64_t want = reclaimed ? 0 : model_reclaimable;
        FUZZ_CHECK(bytes == want * PAGE_SIZE, "reclaimed %#llx bytes, want %llu frames",
                   (unsigned long long)bytes, (unsigned long long)want);
        if (!reclaimed) {
            for (size_t i = 0; i < nmap; i++)
                if (map[i].type == MEM_BOOTLOADER_RECLAIMABLE)
                    range_set(avail, MAX(map[i].base / PAGE_SIZE, 1),
                              (map[i].base + map[i].length) / PAGE_SIZE, true);
            model_usable += model_reclaimable;
            model_free += model_reclaimable;
            reclaimed = true;
            low_hint = 1;
        }
        return;
    }
    case 7: { /* free an address the model does not hold: must panic, change nothing */
        if (op & 0x20) {
            bad_contig_free(in, op);
            return;
        }
        uint64_t f = fuzz_u32(in) % (total + 64);
        uint8_t odd = fuzz_u8(in);
        paddr_t a = f * PAGE_SIZE + ((op & 0x80) ? odd : 0);
        if ((op & 0x40) && nruns) /* just past or before a held run */
            a = runs[odd % nruns].base + ((odd & 1) ? runs[odd % nruns].count * PAGE_SIZE
                                                    : (uint64_t)-PAGE_SIZE);
        if (a % PAGE_SIZE == 0 && a / PAGE_SIZE < total && bit(held, a / PAGE_SIZE))
            return;
        FUZZ_CHECK(HOST_EXPECT_PANIC(frame_free(a)), "frame_free(%#llx) of a frame not held "
                   "did not panic", (unsigned long long)a);
        check_stats(false);
        return;
    }
    case 8: /* the statistics (op & 0x80: after draining every CPU's cache) */
        if (op & 0x80) {
            uint64_t moved = frame_drain_cpu_caches();
            FUZZ_CHECK(moved == model_cached, "frame_drain_cpu_caches moved %llu frames, the "
                       "caches held %llu", (unsigned long long)moved,
                       (unsigned long long)model_cached);
            model_drain();
        }
        check_stats(false); /* every CPU's cache count too */
        return;
    default: { /* frame_is_used on any frame */
        uint64_t f = fuzz_u32(in) % (total + 64);
        FUZZ_CHECK(frame_is_used(f * PAGE_SIZE) == !model_is_free(f),
                   "frame_is_used(%#llx) disagrees with the model", (unsigned long long)f * PAGE_SIZE);
        return;
    }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fuzz_in fi = {data, MIN(size, FUZZ_MAX_LEN)};
    if (!arena_ready) {
        host_arena_init(CAP);
        arena_ready = true;
    }
    unsigned phys_bits = fuzz_u8(&fi);
    size_t n = 1 + fuzz_u8(&fi) % MAX_RAW;
    for (size_t i = 0; i < n; i++)
        raw[i] = decode_entry(&fi);
    fuzz_log_reset();
    nmap = memmap_sanitize(raw, n, map, MEMMAP_MAX, phys_bits);
    if (!setup())
        return 0;
    digests_compared = 0;

    while (!fuzz_done(&fi))
        run_op(&fi);

    check_stats(true);
    /* every run freed, single frames spread over the CPUs' caches */
    while (nruns) {
        cur = nruns % NCPU;
        host_cpu_index = cpu_ids[cur];
        give_back(nruns - 1);
    }
    FUZZ_CHECK(model_free == model_usable, "model lost frames");
    /* frame_check ran on the final state; the frees' counts are checked
     * here (a second walk of all the metadata doubled the input's cost),
     * then every cache is drained: the bitmap alone holds every free frame,
     * as after frame_init */
    check_stats(false);
    uint64_t moved = frame_drain_cpu_caches();
    FUZZ_CHECK(moved == model_cached, "final frame_drain_cpu_caches moved %llu frames, the caches "
               "held %llu", (unsigned long long)moved, (unsigned long long)model_cached);
    model_drain();
    check_stats(false);
    host_cpu_index = 0;
    if (touched > TOUCH_LIMIT) {
        FUZZ_CHECK(madvise((void *)hhdm_offset, CAP, MADV_DONTNEED) == 0, "madvise");
        touched = 0;
    }
    return 0;
}
