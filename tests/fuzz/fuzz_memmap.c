/* Fuzz target: the memory-map sanitizer (kernel/mm/memmap.c).
 *
 * Input: u8 phys_bits (passed as is), u8 out_max selector (0 = MEMMAP_MAX,
 * else 1 + v % 64), then up to MAX_IN entries of { u64 base, u64 length,
 * u8 type } (types 0..8 as enum mem_type, 9..255 unknown).
 *
 * Checked against the rules in memmap.h, with a reference written here from
 * those rules alone (per 4 KiB page: the strongest entry covering it, usable
 * kinds only where they cover the whole page): sorted, disjoint, aligned, no
 * empty entry, nothing at or above 2^bits, neighbours of one type merged, the
 * type of every elementary interval equal to the reference, truncation only
 * when `out` is full (with its warning), a warning for each dropped entry,
 * the input untouched, and sanitizing the output again changes nothing. */
#include "fuzz.h"

#include "boot/boot_info.h"
#include "mm/memmap.h"

#define MAX_IN 128

/* Overlap precedence from memmap.h: bad > reserved > reserved (mapped) > NVS >
 * framebuffer > kernel > ACPI reclaimable > bootloader reclaimable > usable. */
static int ref_rank(uint32_t type)
{
    switch (type) {
    case MEM_USABLE: return 0;
    case MEM_BOOTLOADER_RECLAIMABLE: return 1;
    case MEM_ACPI_RECLAIMABLE: return 2;
    case MEM_KERNEL: return 3;
    case MEM_FRAMEBUFFER: return 4;
    case MEM_ACPI_NVS: return 5;
    case MEM_RESERVED_MAPPED: return 6;
    case MEM_BAD: return 8;
    default: return 7; /* reserved and unknown types */
    }
}

static uint32_t ref_type_of_rank(int rank)
{
    static const uint32_t t[] = {MEM_USABLE, MEM_BOOTLOADER_RECLAIMABLE, MEM_ACPI_RECLAIMABLE,
                                 MEM_KERNEL, MEM_FRAMEBUFFER, MEM_ACPI_NVS, MEM_RESERVED_MAPPED,
                                 MEM_RESERVED, MEM_BAD};
    return t[rank];
}

struct ref_entry {
    bool ok;
    uint64_t b, e; /* [b, e), page aligned */
    int rank;
};

/* One entry as the rules say: clipped to 2^bits, usable kinds shrunk to whole
 * pages, the rest grown to whole pages. 128-bit arithmetic: no wrap to reason about. */
static struct ref_entry ref_normalize(const struct mem_region *r, unsigned bits)
{
    struct ref_entry x = {0};
    unsigned __int128 limit = (unsigned __int128)1 << bits;
    unsigned __int128 base = r->base, end = (unsigned __int128)r->base + r->length;
    if (r->length == 0 || base >= limit)
        return x;
    if (end > limit)
        end = limit;
    bool shrink = r->type == MEM_USABLE || r->type == MEM_BOOTLOADER_RECLAIMABLE;
    unsigned __int128 b, e;
    if (shrink) {
        b = (base + 4095) / 4096 * 4096;
        e = end / 4096 * 4096;
    } else {
        b = base / 4096 * 4096;
        e = (end + 4095) / 4096 * 4096;
    }
    if (e <= b)
        return x;
    x.ok = true;
    x.b = (uint64_t)b;
    x.e = (uint64_t)e; /* e <= 2^52 */
    x.rank = ref_rank(r->type);
    return x;
}

/* Type the reference gives address a, or -1 for a hole. */
static int ref_type_at(const struct ref_entry *ref, size_t n, uint64_t a)
{
    int best = -1;
    for (size_t i = 0; i < n; i++)
        if (ref[i].ok && ref[i].b <= a && a < ref[i].e && ref[i].rank > best)
            best = ref[i].rank;
    return best < 0 ? -1 : (int)ref_type_of_rank(best);
}

/* Type the sanitized map gives a, or -1. */
static int out_type_at(const struct mem_region *out, size_t n, uint64_t a)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (out[mid].base <= a)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo && a - out[lo - 1].base < out[lo - 1].length)
        return (int)out[lo - 1].type;
    return -1;
}

/* Field by field: the struct's padding is not part of the map. */
static bool maps_equal(const struct mem_region *a, const struct mem_region *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (a[i].base != b[i].base || a[i].length != b[i].length || a[i].type != b[i].type)
            return false;
    return true;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

static struct mem_region in[MAX_IN], in_copy[MAX_IN];
static struct mem_region out[MEMMAP_MAX], again[MEMMAP_MAX];
static struct ref_entry ref[MAX_IN];
static uint64_t points[4 * MAX_IN + 2 * MEMMAP_MAX + 2];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fuzz_in fi = {data, size};
    unsigned phys_bits = fuzz_u8(&fi);
    uint8_t sel = fuzz_u8(&fi);
    size_t out_max = sel == 0 ? MEMMAP_MAX : 1 + sel % 64u;
    size_t n = 0;
    while (!fuzz_done(&fi) && n < MAX_IN) {
        in[n].base = fuzz_u64(&fi);
        in[n].length = fuzz_u64(&fi);
        uint8_t t = fuzz_u8(&fi);
        in[n].type = t < 9 ? t : (uint32_t)t * 0x01010101u;
        n++;
    }
    memcpy(in_copy, in, sizeof(in[0]) * n);
    unsigned bits = (phys_bits < 12 || phys_bits > 52) ? 52 : phys_bits;

    fuzz_log_reset();
    size_t count = memmap_sanitize(in, n, out, out_max, phys_bits);
    FUZZ_CHECK(maps_equal(in, in_copy, n), "the input map was modified");
    FUZZ_CHECK(count <= out_max, "count %zu > out_max %zu", count, out_max);

    /* Shape: aligned, non-empty, in range, sorted, disjoint, merged. */
    for (size_t i = 0; i < count; i++) {
        const struct mem_region *r = &out[i];
        FUZZ_CHECK(r->length && r->base % 4096 == 0 && r->length % 4096 == 0, "entry %zu shape", i);
        FUZZ_CHECK(r->base + r->length > r->base, "entry %zu wraps", i);
        FUZZ_CHECK(r->base + r->length <= (1ULL << bits), "entry %zu above 2^%u", i,
                   bits);
        FUZZ_CHECK(r->type < MEM_TYPE_COUNT, "entry %zu type %u", i, r->type);
        if (i) {
            const struct mem_region *p = &out[i - 1];
            FUZZ_CHECK(r->base >= p->base + p->length, "entries %zu and %zu overlap or unsorted",
                       i - 1, i);
            FUZZ_CHECK(!(r->base == p->base + p->length && r->type == p->type),
                       "entries %zu and %zu not merged", i - 1, i);
        }
    }

    /* Every elementary interval (between any two boundaries) against the reference. */
    size_t np = 0;
    bool dropped = false;
    for (size_t i = 0; i < n; i++) {
        ref[i] = ref_normalize(&in[i], bits);
        if (!ref[i].ok) {
            dropped = true;
            continue;
        }
        points[np++] = ref[i].b;
        points[np++] = ref[i].e;
    }
    for (size_t i = 0; i < count; i++) {
        points[np++] = out[i].base;
        points[np++] = out[i].base + out[i].length;
    }
    qsort(points, np, sizeof(points[0]), cmp_u64);
    uint64_t out_end = count ? out[count - 1].base + out[count - 1].length : 0;
    bool truncated = false;
    for (size_t k = 0; k + 1 < np; k++) {
        uint64_t x = points[k];
        if (x == points[k + 1])
            continue;
        int want = ref_type_at(ref, n, x);
        if (x >= out_end && count == out_max) {
            truncated |= want >= 0; /* `out` was full: the rest may be cut */
            continue;
        }
        int got = out_type_at(out, count, x);
        FUZZ_CHECK(got == want, "at %#llx the sanitized map says %d, the rules %d",
                   (unsigned long long)x, got, want);
    }
    if (truncated)
        FUZZ_CHECK(host_log_contains("memmap: output full"), "truncated without a warning");
    if (dropped)
        FUZZ_CHECK(host_log_contains("memmap: dropping"), "an entry dropped without a warning");

    /* A sanitized map is its own sanitized form. */
    if (count) {
        size_t c2 = memmap_sanitize(out, count, again, MEMMAP_MAX, phys_bits);
        FUZZ_CHECK(c2 == count && maps_equal(out, again, count),
                   "sanitizing the output changed it (%zu -> %zu entries)", count, c2);
    }
    memmap_print(out, count);
    return 0;
}
