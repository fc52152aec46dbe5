/* In-kernel check that the memory the kernel manages is the memory the
 * bootloader handed over, on this machine's real map (every boot of the
 * matrix runs it).
 *
 * The expectation is computed from boot_ctx.memmap (the bootloader's map as
 * converted, before sanitizing) by a method of its own, not by calling the
 * sanitizer: the usable and bootloader-reclaimable entries, each shrunk
 * inward to 4 KiB pages, merged; minus their overlap with every other entry,
 * each grown outward to 4 KiB pages (the kernel image, reserved, ACPI, ...);
 * clipped to the CPU's physical address width. Then
 *
 *   sanitized map:   usable + reclaimable pages            == expected
 *   frame allocator: usable + reclaimable frames
 *                    + frame 0 (when usable) + metadata    == expected
 *
 * Those two trims (frame 0 is never handed out; the allocator's bitmap lives
 * in usable memory) are the only ones the kernel makes (mm/memmap.h and
 * mm/frame.c). The test prints one `memmap-agree:` line with the numbers;
 * tests/qemu/run.sh compares them with the guest RAM it asked QEMU for. */
#include "arch/x86_64/mmu_ops.h"
#include "boot/boot_info.h"
#include "lib/printf.h"
#include "mm/frame.h"
#include "mm/mm.h"
#include "test/ktest.h"

struct span {
    uint64_t base, end; /* [base, end) */
};

/* Scratch lists: one entry per raw map entry at most. */
static struct span good[MEMMAP_MAX], bad[MEMMAP_MAX];

static bool counts_as_ram(uint32_t type)
{
    return type == MEM_USABLE || type == MEM_BOOTLOADER_RECLAIMABLE;
}

/* Sorts s[0..n) by base and merges overlapping or touching spans; returns
 * the new count. Insertion sort: n is a few dozen on real firmware. */
static size_t sort_merge(struct span *s, size_t n)
{
    for (size_t i = 1; i < n; i++) {
        struct span x = s[i];
        size_t j = i;
        for (; j > 0 && s[j - 1].base > x.base; j--)
            s[j] = s[j - 1];
        s[j] = x;
    }
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        if (m > 0 && s[i].base <= s[m - 1].end)
            s[m - 1].end = MAX(s[m - 1].end, s[i].end);
        else
            s[m++] = s[i];
    }
    return m;
}

/* Bytes of the merged lists a[0..na) and b[0..nb) that lie in both. */
static uint64_t overlap(const struct span *a, size_t na, const struct span *b, size_t nb)
{
    uint64_t bytes = 0;
    for (size_t i = 0, j = 0; i < na && j < nb;) {
        uint64_t lo = MAX(a[i].base, b[j].base), hi = MIN(a[i].end, b[j].end);
        if (hi > lo)
            bytes += hi - lo;
        if (a[i].end < b[j].end)
            i++;
        else
            j++;
    }
    return bytes;
}

KTEST(memmap_agrees_with_bootloader_map)
{
    const struct boot_info *bi = &boot_ctx;
    unsigned bits = arch_phys_addr_bits();
    uint64_t limit = (bits >= 12 && bits <= 52) ? 1ULL << bits : 1ULL << 52;
    size_t ng = 0, nb = 0, raw_entries = 0;

    KT_ASSERT(bi->memmap_count > 0 && bi->memmap_count <= MEMMAP_MAX);
    for (size_t i = 0; i < bi->memmap_count; i++) {
        const struct mem_region *r = &bi->memmap[i];
        uint64_t b = r->base, e = r->base + r->length;
        if (r->length == 0 || b >= limit)
            continue;
        if (e < b || e > limit) /* wraps, or reaches past the address width */
            e = limit;
        if (counts_as_ram(r->type)) {
            raw_entries++;
            b = ALIGN_UP(b, PAGE_SIZE);
            e = ALIGN_DOWN(e, PAGE_SIZE);
            if (e > b)
                good[ng++] = (struct span){ b, e };
        } else {
            bad[nb++] = (struct span){ ALIGN_DOWN(b, PAGE_SIZE), ALIGN_UP(e, PAGE_SIZE) };
        }
    }
    ng = sort_merge(good, ng);
    nb = sort_merge(bad, nb);
    uint64_t good_bytes = 0;
    for (size_t i = 0; i < ng; i++)
        good_bytes += good[i].end - good[i].base;
    uint64_t expected = good_bytes - overlap(good, ng, bad, nb);
    KT_ASSERT(expected > 0, "the bootloader's map has no usable page");
    /* Frame 0 is usable when the first good span starts at 0 and no other
     * entry covers it. */
    const struct span zero = { 0, PAGE_SIZE };
    bool frame0_usable = overlap(good, ng, &zero, 1) == PAGE_SIZE &&
                         overlap(bad, nb, &zero, 1) == 0;

    uint64_t sanitized = 0;
    for (size_t i = 0; i < mm_memmap_count; i++)
        if (counts_as_ram(mm_memmap[i].type))
            sanitized += mm_memmap[i].length;

    struct frame_stats fs;
    frame_get_stats(&fs);
    uint64_t managed = (fs.usable_frames + fs.reclaimable_frames) * PAGE_SIZE;
    uint64_t trims = (frame0_usable ? PAGE_SIZE : 0) + ALIGN_UP(fs.metadata_bytes, PAGE_SIZE);

    kprintf("memmap-agree: bootloader usable=%lluKiB in %zu entries, sanitized=%lluKiB, "
            "frames=%lluKiB + frame0=%lluKiB + metadata=%lluKiB\n",
            (unsigned long long)(expected >> 10), raw_entries,
            (unsigned long long)(sanitized >> 10), (unsigned long long)(managed >> 10),
            frame0_usable ? 4ULL : 0ULL,
            (unsigned long long)(ALIGN_UP(fs.metadata_bytes, PAGE_SIZE) >> 10));
    KT_EXPECT(sanitized == expected, "sanitized map %llu KiB, bootloader's map %llu KiB",
              (unsigned long long)(sanitized >> 10), (unsigned long long)(expected >> 10));
    KT_EXPECT(managed + trims == expected,
              "frame allocator %llu KiB + trims %llu KiB != bootloader's %llu KiB",
              (unsigned long long)(managed >> 10), (unsigned long long)(trims >> 10),
              (unsigned long long)(expected >> 10));
    /* The allocator's bitmap ends exactly at the last usable byte. */
    uint64_t top = 0;
    for (size_t i = 0; i < mm_memmap_count; i++)
        if (counts_as_ram(mm_memmap[i].type))
            top = mm_memmap[i].base + mm_memmap[i].length;
    KT_EXPECT(fs.total_frames * PAGE_SIZE == top, "allocator spans %llu frames, usable ends at %#llx",
              (unsigned long long)fs.total_frames, (unsigned long long)top);
}
