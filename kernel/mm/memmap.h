/* Memory-map sanitizer: turns a bootloader's memory map (any order, overlaps,
 * odd alignment) into a sorted, non-overlapping, page-aligned map that the
 * frame allocator and the mapper can trust. The bootloader's map is never
 * edited: the result goes into a separate array.
 *
 * Overlap precedence (where entries overlap, the higher one wins):
 *   bad > reserved > reserved (mapped) > ACPI NVS > framebuffer > kernel/modules
 *       > ACPI reclaimable > bootloader reclaimable > usable
 * Unknown types count as reserved. Usable and bootloader-reclaimable entries
 * shrink inward to 4 KiB boundaries; every other type grows outward, so a
 * partially reserved page is never handed out. */
#pragma once

#include "lib/types.h"
#include "mm/memregion.h"

/* Writes the sanitized form of in[0..n) into out (at most out_max entries) and
 * returns the count. Guarantees: sorted by base, no overlaps, every base and
 * length a multiple of 4 KiB, no empty entries, nothing at or above
 * 2^phys_bits (phys_bits outside [12, 52] counts as 52), adjacent entries of
 * the same type merged. Dropped or clipped input entries and a full `out` each
 * produce a kwarn line. `in` is only read; in and out must not overlap. */
size_t memmap_sanitize(const struct mem_region *in, size_t n, struct mem_region *out,
                       size_t out_max, unsigned phys_bits);

/* Prints m[0..n) as a table (base, end, size, type) through kprintf. */
void memmap_print(const struct mem_region *m, size_t n);

