/* memmap_sanitize: crafted maps (overlaps, order, alignment, limits, overflow)
 * and a property test against a per-address reference. */
#include <criterion/criterion.h>
#include <stdlib.h>

#include "lib/string.h"
/* mm owns its types and lib never reaches into boot/: every mm header and the
 * lib headers boot/ uses compile without boot/boot_info.h (whose
 * BOOT_CMDLINE_MAX would show it came in through one of them). */
#include "lib/panic.h"
#include "lib/symbols.h"
#include "mm/frame.h"
#include "mm/mapper.h"
#include "mm/memmap.h"
#include "mm/memregion.h"
#include "mm/mm.h"
#ifdef BOOT_CMDLINE_MAX
#error "an mm/ or lib/ header includes boot/boot_info.h: mm must not depend on boot"
#endif
#include "support.h"

#define U MEM_USABLE
#define R MEM_RESERVED
#define A MEM_ACPI_RECLAIMABLE
#define N MEM_ACPI_NVS
#define B MEM_BAD
#define L MEM_BOOTLOADER_RECLAIMABLE
#define K MEM_KERNEL
#define F MEM_FRAMEBUFFER
#define M MEM_RESERVED_MAPPED

static struct mem_region out[64];

static size_t run(const struct mem_region *in, size_t n, unsigned bits)
{
    struct mem_region copy[64];
    cr_assert(n <= 64);
    memcpy(copy, in, n * sizeof(*in));
    size_t k = memmap_sanitize(in, n, out, ARRAY_SIZE(out), bits);
    cr_expect(memcmp(copy, in, n * sizeof(*in)) == 0, "input was modified");
    return k;
}

static void expect_entry(size_t i, uint64_t base, uint64_t len, uint32_t type)
{
    cr_expect(out[i].base == base && out[i].length == len && out[i].type == type,
              "entry %zu: got base=%#llx len=%#llx type=%u, want base=%#llx len=%#llx type=%u", i,
              (unsigned long long)out[i].base, (unsigned long long)out[i].length, out[i].type,
              (unsigned long long)base, (unsigned long long)len, type);
}

#define MAP(...) ((const struct mem_region[]){__VA_ARGS__})
#define RUN(bits, ...)                                                                       \
    run(MAP(__VA_ARGS__), sizeof(MAP(__VA_ARGS__)) / sizeof(struct mem_region), bits)

Test(memmap, empty_input)
{
    cr_expect_eq(memmap_sanitize(NULL, 0, out, ARRAY_SIZE(out), 46), 0);
}

Test(memmap, sorted_clean_map_is_kept)
{
    size_t n = RUN(46, {0, 0x9f000, U}, {0x9f000, 0x61000, R}, {0x100000, 0x7f00000, U},
                   {0xfd000000, 0x300000, F});
    cr_assert_eq(n, 4);
    expect_entry(0, 0, 0x9f000, U);
    expect_entry(1, 0x9f000, 0x61000, R);
    expect_entry(2, 0x100000, 0x7f00000, U);
    expect_entry(3, 0xfd000000, 0x300000, F);
}

Test(memmap, unsorted_input_is_sorted)
{
    size_t n = RUN(46, {0x200000, 0x1000, R}, {0x100000, 0x1000, U}, {0x0, 0x1000, K});
    cr_assert_eq(n, 3);
    expect_entry(0, 0, 0x1000, K);
    expect_entry(1, 0x100000, 0x1000, U);
    expect_entry(2, 0x200000, 0x1000, R);
}

Test(memmap, adjacent_same_type_merge_but_not_across_gaps_or_types)
{
    size_t n = RUN(46, {0x1000, 0x1000, U}, {0x2000, 0x3000, U}, {0x5000, 0x1000, L},
                   {0x7000, 0x1000, U}, {0x8000, 0x1000, U});
    cr_assert_eq(n, 3);
    expect_entry(0, 0x1000, 0x4000, U);
    expect_entry(1, 0x5000, 0x1000, L);
    expect_entry(2, 0x7000, 0x2000, U);
}

Test(memmap, reserved_inside_usable_splits_it)
{
    size_t n = RUN(46, {0x100000, 0x100000, U}, {0x140000, 0x2000, R});
    cr_assert_eq(n, 3);
    expect_entry(0, 0x100000, 0x40000, U);
    expect_entry(1, 0x140000, 0x2000, R);
    expect_entry(2, 0x142000, 0xbe000, U);
}

Test(memmap, precedence_order)
{
    /* Each pair overlaps completely; the stronger type must win. */
    static const uint32_t order[] = {U, L, A, K, F, N, R, B};
    for (size_t lo = 0; lo < ARRAY_SIZE(order); lo++) {
        for (size_t hi = lo + 1; hi < ARRAY_SIZE(order); hi++) {
            size_t n = RUN(46, {0x10000, 0x4000, order[lo]}, {0x10000, 0x4000, order[hi]});
            cr_assert_eq(n, 1);
            expect_entry(0, 0x10000, 0x4000, order[hi]);
            n = RUN(46, {0x10000, 0x4000, order[hi]}, {0x10000, 0x4000, order[lo]});
            cr_assert_eq(n, 1);
            expect_entry(0, 0x10000, 0x4000, order[hi]);
        }
    }
}

Test(memmap, partial_overlaps_clip_usable)
{
    /* usable [0x1000,0x9000) overlapped by ACPI [0x8000,0xa000) and bad [0,0x2000) */
    size_t n = RUN(46, {0x1000, 0x8000, U}, {0x8000, 0x2000, A}, {0, 0x2000, B});
    cr_assert_eq(n, 3);
    expect_entry(0, 0, 0x2000, B);
    expect_entry(1, 0x2000, 0x6000, U);
    expect_entry(2, 0x8000, 0x2000, A);
}

Test(memmap, alignment_exact)
{
    size_t n = RUN(46, {0x1234, 0x5000, U}, {0x9fc00, 0x400, R}, {0x20800, 0x2000, L},
                   {0x40001, 0x1, N});
    cr_assert_eq(n, 4);
    expect_entry(0, 0x2000, 0x4000, U);  /* [0x1234,0x6234) -> [0x2000,0x6000) */
    expect_entry(1, 0x21000, 0x1000, L); /* [0x20800,0x22800) -> [0x21000,0x22000) */
    expect_entry(2, 0x40000, 0x1000, N); /* one byte -> its whole page */
    expect_entry(3, 0x9f000, 0x1000, R); /* [0x9fc00,0xa0000) -> [0x9f000,0xa0000) */
}

Test(memmap, partly_reserved_page_is_not_usable)
{
    size_t n = RUN(46, {0, 0x9fc00, U}, {0x9fc00, 0x400, R});
    cr_assert_eq(n, 2);
    expect_entry(0, 0, 0x9f000, U);
    expect_entry(1, 0x9f000, 0x1000, R);
}

Test(memmap, zero_length_and_subpage_usable_dropped_with_warning)
{
    host_log_clear();
    size_t n = RUN(46, {0x5000, 0, R}, {0x1800, 0x1000, U}, {0x10000, 0x1000, U});
    cr_assert_eq(n, 1);
    expect_entry(0, 0x10000, 0x1000, U);
    cr_expect(host_log_contains("dropping entry base=0x5000 len=0: empty"), "%s", host_log);
    cr_expect(host_log_contains("dropping entry base=0x1800 len=0x1000: no whole 4 KiB page"),
              "%s", host_log);
}

Test(memmap, beyond_physical_address_space_dropped_or_clipped)
{
    host_log_clear();
    size_t n = RUN(46, {0x100000, 0x100000, U}, {1ULL << 46, 0x1000, U},
                   {(1ULL << 46) - 0x2000, 0x4000, U}, {1ULL << 52, 0x1000, R},
                   {0x10000000000000ULL + 0x5000, 0x1000, U});
    cr_assert_eq(n, 2);
    expect_entry(0, 0x100000, 0x100000, U);
    expect_entry(1, (1ULL << 46) - 0x2000, 0x2000, U);
    cr_expect(host_log_contains("[mm] WARN:"), "%s", host_log);
    cr_expect(host_log_contains("memmap: dropping entry base=0x400000000000 len=0x1000: beyond "
                                "46-bit physical address space"),
              "%s", host_log);
    cr_expect(host_log_contains("memmap: dropping entry base=0x10000000000000 len=0x1000"), "%s",
              host_log);
    cr_expect(host_log_contains("clipping entry base=0x3fffffffe000 len=0x4000"), "%s", host_log);
}

Test(memmap, above_2_pow_52_with_52_bits)
{
    size_t n = RUN(52, {0x1000, 0x1000, U}, {1ULL << 52, 0x1000, U},
                   {(1ULL << 52) - 0x1000, 0x2000, R});
    cr_assert_eq(n, 2);
    expect_entry(0, 0x1000, 0x1000, U);
    expect_entry(1, (1ULL << 52) - 0x1000, 0x1000, R);
    /* Out-of-range phys_bits counts as 52. */
    n = RUN(0, {0x1000, 0x1000, U}, {1ULL << 52, 0x1000, U});
    cr_assert_eq(n, 1);
    n = RUN(64, {0x1000, 0x1000, U}, {1ULL << 52, 0x1000, U});
    cr_assert_eq(n, 1);
}

Test(memmap, overflow_at_2_pow_64)
{
    host_log_clear();
    size_t n = RUN(46, {0x1000, UINT64_MAX, R}, {0x2000, 0x1000, U},
                   {UINT64_MAX - 0xfff, 0x2000, U}, {0, 0, U});
    cr_assert_eq(n, 1);
    expect_entry(0, 0x1000, (1ULL << 46) - 0x1000, R);
    cr_expect(host_log_contains("clipping entry base=0x1000 len=0xffffffffffffffff: end overflows"),
              "%s", host_log);
    cr_expect(host_log_contains("dropping entry base=0xfffffffffffff000"), "%s", host_log);
}

Test(memmap, unknown_type_is_reserved)
{
    host_log_clear();
    size_t n = RUN(46, {0x1000, 0x4000, U}, {0x2000, 0x1000, 99});
    cr_assert_eq(n, 3);
    expect_entry(1, 0x2000, 0x1000, R);
    cr_expect(host_log_contains("unknown type 99"), "%s", host_log);
}

Test(memmap, output_full_truncates_with_warning)
{
    struct mem_region in[10], small[4];
    for (int i = 0; i < 10; i++)
        in[i] = (struct mem_region){0x10000 * (uint64_t)i, 0x1000, (uint32_t)(i % 2 ? R : U)};
    host_log_clear();
    size_t n = memmap_sanitize(in, 10, small, 4, 46);
    cr_assert_eq(n, 4);
    cr_expect_eq(small[3].base, 0x30000);
    cr_expect(host_log_contains("output full at 4 entries"), "%s", host_log);
}

Test(memmap, print_table)
{
    host_log_clear();
    size_t n = RUN(46, {0, 0x9f000, U}, {0x100000, GiB(3), U}, {0xfd000000, 0x300000, F});
    memmap_print(out, n);
    cr_expect(host_log_contains("[mm] memory map: 3 entries"), "%s", host_log);
    cr_expect(host_log_contains("0x0000000000000000 0x000000000009f000    636 KiB  usable"), "%s",
              host_log);
    cr_expect(host_log_contains("framebuffer"), "%s", host_log);
}

/* ---- property test: random maps against a per-address reference ---------------- */

static const int rank_ref[] = {[U] = 0, [L] = 1, [A] = 2, [K] = 3, [F] = 4,
                               [N] = 5, [M] = 6, [R] = 7, [B] = 8};

/* The type the sanitized map must give address a (-1: uncovered). */
static int ref_type(const struct mem_region *in, size_t n, uint64_t a, unsigned bits)
{
    int best = -1, best_type = -1;
    for (size_t i = 0; i < n; i++) {
        uint64_t b = in[i].base, e = in[i].base + in[i].length, lim = 1ULL << bits;
        uint32_t t = in[i].type < MEM_TYPE_COUNT ? in[i].type : R;
        if (in[i].length == 0 || b >= lim)
            continue;
        if (e < b || e > lim)
            e = lim;
        if (t == U || t == L) {
            b = ALIGN_UP(b, 4096);
            e = ALIGN_DOWN(e, 4096);
        } else {
            b = ALIGN_DOWN(b, 4096);
            e = ALIGN_UP(e, 4096);
        }
        if (b <= a && a < e && rank_ref[t] > best) {
            best = rank_ref[t];
            best_type = (int)t;
        }
    }
    return best_type;
}

static int out_type(size_t n, uint64_t a)
{
    for (size_t i = 0; i < n; i++)
        if (out[i].base <= a && a - out[i].base < out[i].length)
            return (int)out[i].type;
    return -1;
}

Test(memmap, property_random_maps)
{
    srand(12345);
    for (int iter = 0; iter < 3000; iter++) {
        struct mem_region in[24];
        size_t n = 1 + (size_t)rand() % 24;
        unsigned bits = iter % 3 ? 46 : 20; /* 1 MiB space: many entries clipped */
        for (size_t i = 0; i < n; i++) {
            uint64_t base = ((uint64_t)rand() % 0x200) * 0x800 + (rand() % 4 ? 0 : rand() % 0x800);
            uint64_t len = ((uint64_t)rand() % 0x40) * 0x800 + (rand() % 4 ? 0 : rand() % 0x800);
            if (rand() % 50 == 0)
                len = UINT64_MAX - (uint64_t)rand();
            in[i] = (struct mem_region){base, len, (uint32_t)(rand() % 10)};
        }
        size_t k = run(in, n, bits);
        for (size_t i = 0; i < k; i++) {
            cr_assert(out[i].length > 0 && IS_ALIGNED(out[i].base, 4096) &&
                          IS_ALIGNED(out[i].length, 4096) && out[i].type < MEM_TYPE_COUNT,
                      "iter %d entry %zu", iter, i);
            cr_assert(out[i].base + out[i].length <= (1ULL << bits));
            if (i > 0) {
                uint64_t prev_end = out[i - 1].base + out[i - 1].length;
                cr_assert(prev_end <= out[i].base, "iter %d: overlap/unsorted at %zu", iter, i);
                cr_assert(prev_end < out[i].base || out[i - 1].type != out[i].type,
                          "iter %d: unmerged neighbours at %zu", iter, i);
            }
        }
        /* Every page (start and last byte) has the reference type. */
        for (uint64_t a = 0; a < 0x110000 && a < (1ULL << bits); a += 0x800) {
            int want = ref_type(in, n, a, bits), got = out_type(k, a);
            cr_assert_eq(got, want, "iter %d addr %#llx: got %d want %d", iter,
                         (unsigned long long)a, got, want);
        }
    }
}

/* The memory types, their names and the map limit come from mm/memregion.h
 * (moved here from test_boot_info.c with mem_type_name). */
Test(memmap, type_names_and_limit_are_mms_own)
{
    cr_expect_str_eq(mem_type_name(MEM_USABLE), "usable");
    cr_expect_str_eq(mem_type_name(MEM_RESERVED), "reserved");
    cr_expect_str_eq(mem_type_name(MEM_ACPI_RECLAIMABLE), "ACPI reclaimable");
    cr_expect_str_eq(mem_type_name(MEM_ACPI_NVS), "ACPI NVS");
    cr_expect_str_eq(mem_type_name(MEM_BAD), "bad");
    cr_expect_str_eq(mem_type_name(MEM_BOOTLOADER_RECLAIMABLE), "bootloader reclaimable");
    cr_expect_str_eq(mem_type_name(MEM_KERNEL), "kernel/modules");
    cr_expect_str_eq(mem_type_name(MEM_FRAMEBUFFER), "framebuffer");
    cr_expect_str_eq(mem_type_name(MEM_RESERVED_MAPPED), "reserved (mapped)");
    cr_expect_str_eq(mem_type_name(MEM_TYPE_COUNT), "unknown");
    cr_expect_str_eq(mem_type_name(0xffffffffu), "unknown");

    cr_expect_eq(MEMMAP_MAX, 512);
}
