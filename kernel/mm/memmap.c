/* Memory-map sanitizer (see memmap.h for the rules).
 *
 * Method: normalize each entry on its own (clip to the physical address
 * space, align), then sweep the address line from boundary to boundary; on
 * each elementary interval the covering entry of highest rank decides the
 * type. No scratch memory is needed, so it runs before any allocator exists;
 * the cost is O(n^2) for n input entries (n <= MEMMAP_MAX in practice,
 * a few dozen on real firmware). */
#include "mm/memmap.h"

#include "lib/printf.h"

#define MAX_PHYS_BITS 52

/* Overlap precedence: the higher rank wins. */
static const uint8_t rank_of[MEM_TYPE_COUNT] = {
    [MEM_USABLE] = 0,
    [MEM_BOOTLOADER_RECLAIMABLE] = 1,
    [MEM_ACPI_RECLAIMABLE] = 2, /* becomes usable once ACPI is parsed */
    [MEM_KERNEL] = 3,
    [MEM_FRAMEBUFFER] = 4,
    [MEM_ACPI_NVS] = 5,         /* firmware keeps state here across sleep */
    [MEM_RESERVED_MAPPED] = 6,  /* readable firmware tables; plain reserved (MMIO?) wins */
    [MEM_RESERVED] = 7,
    [MEM_BAD] = 8,
};
static const uint8_t type_of_rank[MEM_TYPE_COUNT] = {
    MEM_USABLE, MEM_BOOTLOADER_RECLAIMABLE, MEM_ACPI_RECLAIMABLE, MEM_KERNEL,
    MEM_FRAMEBUFFER, MEM_ACPI_NVS, MEM_RESERVED_MAPPED, MEM_RESERVED, MEM_BAD,
};

#define WARN_ENTRY(r, why, ...)                                                    \
    kwarn("mm", "memmap: " why " entry base=%#llx len=%#llx: " __VA_ARGS__)

/* Normalizes one entry into [*b, *e) with rank *rank. Returns false when
 * nothing of it is left. With warn set, says why an entry is dropped or cut. */
static bool normalize(const struct mem_region *r, unsigned bits, bool warn, uint64_t *b,
                      uint64_t *e, unsigned *rank)
{
    unsigned long long rb = r->base, rl = r->length;
    uint64_t limit = 1ULL << bits;
    uint32_t type = r->type;

    if (type >= MEM_TYPE_COUNT) {
        if (warn)
            WARN_ENTRY(r, "treating", "unknown type %u as reserved", rb, rl, type);
        type = MEM_RESERVED;
    }
    if (rl == 0) {
        if (warn)
            WARN_ENTRY(r, "dropping", "empty", rb, rl);
        return false;
    }
    uint64_t base = rb, end = rb + rl;
    if (end < base) { /* base + length wrapped past 2^64 */
        if (warn)
            WARN_ENTRY(r, "clipping", "end overflows 2^64", rb, rl);
        end = UINT64_MAX;
    }
    if (base >= limit) {
        if (warn)
            WARN_ENTRY(r, "dropping", "beyond %u-bit physical address space", rb, rl, bits);
        return false;
    }
    if (end > limit) {
        if (warn)
            WARN_ENTRY(r, "clipping", "end beyond %u-bit physical address space", rb, rl, bits);
        end = limit;
    }
    if (type == MEM_USABLE || type == MEM_BOOTLOADER_RECLAIMABLE) {
        base = ALIGN_UP(base, PAGE_SIZE);
        end = ALIGN_DOWN(end, PAGE_SIZE);
        if (end <= base) {
            if (warn)
                WARN_ENTRY(r, "dropping", "no whole 4 KiB page inside", rb, rl);
            return false;
        }
    } else {
        base = ALIGN_DOWN(base, PAGE_SIZE);
        end = ALIGN_UP(end, PAGE_SIZE); /* end <= limit, a page multiple: no overflow */
    }
    *b = base;
    *e = end;
    *rank = rank_of[type];
    return true;
}

size_t memmap_sanitize(const struct mem_region *in, size_t n, struct mem_region *out,
                       size_t out_max, unsigned phys_bits)
{
    unsigned bits = (phys_bits < 12 || phys_bits > MAX_PHYS_BITS) ? MAX_PHYS_BITS : phys_bits;
    uint64_t b, e;
    unsigned rank;

    for (size_t i = 0; i < n; i++) /* once, for the warnings */
        normalize(&in[i], bits, true, &b, &e, &rank);

    size_t count = 0;
    uint64_t cur = 0;
    for (;;) {
        /* Next boundary after cur, and the strongest entry covering [cur, next). */
        uint64_t next = UINT64_MAX;
        int best = -1;
        for (size_t i = 0; i < n; i++) {
            if (!normalize(&in[i], bits, false, &b, &e, &rank))
                continue;
            if (b > cur && b < next)
                next = b;
            if (e > cur && e < next)
                next = e;
            if (b <= cur && cur < e && (int)rank > best)
                best = (int)rank;
        }
        if (next == UINT64_MAX)
            break;
        if (best >= 0) {
            uint32_t type = type_of_rank[best];
            if (count > 0 && out[count - 1].type == type &&
                out[count - 1].base + out[count - 1].length == cur) {
                out[count - 1].length += next - cur;
            } else if (count == out_max) {
                kwarn("mm", "memmap: output full at %zu entries: ignoring everything from %#llx",
                      out_max, (unsigned long long)cur);
                break;
            } else {
                out[count++] = (struct mem_region){.base = cur, .length = next - cur, .type = type};
            }
        }
        cur = next;
    }
    return count;
}

/* Prints a size with the largest unit that keeps it exact-ish (at least 1). */
static void size_str(char *buf, size_t len, uint64_t bytes)
{
    if (bytes >= GiB(16))
        ksnprintf(buf, len, "%llu GiB", (unsigned long long)(bytes >> 30));
    else if (bytes >= MiB(16))
        ksnprintf(buf, len, "%llu MiB", (unsigned long long)(bytes >> 20));
    else
        ksnprintf(buf, len, "%llu KiB", (unsigned long long)(bytes >> 10));
}

void memmap_print(const struct mem_region *m, size_t n)
{
    klog("mm", "memory map: %zu entries", n);
    klog("mm", "  %-18s %-18s %10s  %s", "base", "end", "size", "type");
    for (size_t i = 0; i < n; i++) {
        char sz[24];
        size_str(sz, sizeof(sz), m[i].length);
        klog("mm", "  0x%016llx 0x%016llx %10s  %s", (unsigned long long)m[i].base,
             (unsigned long long)(m[i].base + m[i].length), sz, mem_type_name(m[i].type));
    }
}

const char *mem_type_name(uint32_t type)
{
    static const char *const names[MEM_TYPE_COUNT] = {
        [MEM_USABLE] = "usable",
        [MEM_RESERVED] = "reserved",
        [MEM_ACPI_RECLAIMABLE] = "ACPI reclaimable",
        [MEM_ACPI_NVS] = "ACPI NVS",
        [MEM_BAD] = "bad",
        [MEM_BOOTLOADER_RECLAIMABLE] = "bootloader reclaimable",
        [MEM_KERNEL] = "kernel/modules",
        [MEM_FRAMEBUFFER] = "framebuffer",
        [MEM_RESERVED_MAPPED] = "reserved (mapped)",
    };
    return type < MEM_TYPE_COUNT ? names[type] : "unknown";
}
