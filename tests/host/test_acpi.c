/* acpi_madt_cpus: RSDP, RSDT/XSDT and MADT built in a small "physical memory"
 * image; good tables list their CPUs, every malformed one gives its exact
 * line. The map function hands out a heap copy of exactly the bytes asked
 * for, so ASan reports any read past what the parser mapped. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>

#include "boot/acpi.h"
#include "lib/string.h"

#define IMG_SIZE  0x20000u
#define RSDP_AT   0x1000u
#define XSDT_AT   0x2000u
#define RSDT_AT   0x3000u
#define FACP_AT   0x4000u
#define MADT_AT   0x5000u
#define MADT2_AT  0x8000u

static uint8_t img[IMG_SIZE];
static struct boot_info bi;
static struct acpi_cpus out;
static void *copies[256];
static unsigned ncopies, map_calls;

/* Serves [phys, phys + len) of img as a fresh heap copy of exactly len bytes. */
static const void *map_img(paddr_t phys, size_t len, void *ctx)
{
    (void)ctx;
    map_calls++;
    if (phys > IMG_SIZE || len > IMG_SIZE - phys || ncopies == 256)
        return NULL;
    void *c = malloc(len ? len : 1);
    cr_assert(c);
    memcpy(c, img + phys, len);
    copies[ncopies++] = c;
    return c;
}

static void setup(void)
{
    memset(img, 0, sizeof(img));
    memset(&bi, 0, sizeof(bi));
    memset(&out, 0xab, sizeof(out));
    ncopies = map_calls = 0;
}

static void teardown(void)
{
    for (unsigned i = 0; i < ncopies; i++)
        free(copies[i]);
}

TestSuite(acpi, .init = setup, .fini = teardown);

/* ---- builders ------------------------------------------------------------------- */

static void w32(uint32_t at, uint32_t v) { memcpy(img + at, &v, 4); }
static void w64(uint32_t at, uint64_t v) { memcpy(img + at, &v, 8); }

static uint8_t sum(const uint8_t *p, size_t n)
{
    uint8_t s = 0;
    while (n--)
        s = (uint8_t)(s + *p++);
    return s;
}

/* An RSDP at `at`: revision 0 (20 bytes) or 2 (36 bytes), both checksums right. */
static void put_rsdp(uint32_t at, uint8_t rev, uint32_t rsdt, uint64_t xsdt)
{
    memcpy(img + at, "RSD PTR ", 8);
    memcpy(img + at + 9, "SLAYER", 6);
    img[at + 15] = rev;
    w32(at + 16, rsdt);
    if (rev >= 2) {
        w32(at + 20, 36);
        w64(at + 24, xsdt);
    }
    img[at + 8] = 0;
    img[at + 8] = (uint8_t)-sum(img + at, 20);
    if (rev >= 2) {
        img[at + 32] = 0;
        img[at + 32] = (uint8_t)-sum(img + at, 36);
    }
    bi.rsdp = at;
}

/* Recomputes the checksum of the table at `at` over the length it says. */
static void fix_sdt(uint32_t at)
{
    uint32_t len;
    memcpy(&len, img + at + 4, 4);
    img[at + 9] = 0;
    img[at + 9] = (uint8_t)-sum(img + at, len);
}

/* A table header at `at` with signature sig and `body` bytes after it. */
static void put_sdt(uint32_t at, const char *sig, uint32_t body)
{
    memcpy(img + at, sig, 4);
    w32(at + 4, 36 + body);
    img[at + 8] = 1;
    memcpy(img + at + 10, "SLAYER", 6);
    memcpy(img + at + 16, "SLAYERTB", 8);
    fix_sdt(at);
}

static void put_rsdt(uint32_t at, const uint32_t *tables, unsigned n)
{
    for (unsigned i = 0; i < n; i++)
        w32(at + 36 + 4 * i, tables[i]);
    put_sdt(at, "RSDT", 4 * n);
}

static void put_xsdt(uint32_t at, const uint64_t *tables, unsigned n)
{
    for (unsigned i = 0; i < n; i++)
        w64(at + 36 + 8 * i, tables[i]);
    put_sdt(at, "XSDT", 8 * n);
}

/* MADT under construction: entries appended at madt_end. */
static uint32_t madt_at, madt_end;

static void madt_begin(uint32_t at, uint32_t lapic, uint32_t flags)
{
    madt_at = at;
    w32(at + 36, lapic);
    w32(at + 40, flags);
    madt_end = at + 44;
}

static void madt_lapic(uint8_t uid, uint8_t id, uint32_t flags)
{
    img[madt_end] = 0;
    img[madt_end + 1] = 8;
    img[madt_end + 2] = uid;
    img[madt_end + 3] = id;
    w32(madt_end + 4, flags);
    madt_end += 8;
}

static void madt_x2apic(uint32_t id, uint32_t flags, uint32_t uid)
{
    img[madt_end] = 9;
    img[madt_end + 1] = 16;
    w32(madt_end + 4, id);
    w32(madt_end + 8, flags);
    w32(madt_end + 12, uid);
    madt_end += 16;
}

static void madt_override(uint64_t addr)
{
    img[madt_end] = 5;
    img[madt_end + 1] = 12;
    w64(madt_end + 4, addr);
    madt_end += 12;
}

static void madt_ioapic(uint8_t id, uint32_t addr)
{
    img[madt_end] = 1;
    img[madt_end + 1] = 12;
    img[madt_end + 2] = id;
    w32(madt_end + 4, addr);
    madt_end += 12;
}

/* A raw entry: type and length as given, zero payload (at least its two
 * header bytes are kept, whatever the length says). */
static void madt_raw(uint8_t type, uint8_t len)
{
    img[madt_end] = type;
    img[madt_end + 1] = len;
    madt_end += len < 2 ? 2 : len;
}

static void madt_end_table(void)
{
    put_sdt(madt_at, "APIC", madt_end - madt_at - 36);
}

/* A good machine: RSDP revision 0 -> RSDT (FACP, APIC) -> 4 CPUs, IOAPIC. */
static void good_rev0(void)
{
    put_sdt(FACP_AT, "FACP", 200);
    madt_begin(MADT_AT, 0xfee00000, 1);
    for (uint8_t i = 0; i < 4; i++)
        madt_lapic(i, i, 1);
    madt_ioapic(0, 0xfec00000);
    madt_end_table();
    uint32_t t[] = {FACP_AT, MADT_AT};
    put_rsdt(RSDT_AT, t, 2);
    put_rsdp(RSDP_AT, 0, RSDT_AT, 0);
}

static const char *run(void)
{
    return acpi_madt_cpus(&bi, map_img, NULL, &out);
}

static void expect_line(const char *want)
{
    struct acpi_cpus before;
    memset(&before, 0xab, sizeof(before));
    const char *err = run();
    cr_assert(err, "accepted, expected \"%s\"", want);
    cr_expect_str_eq(err, want);
    cr_expect(memcmp(&out, &before, sizeof(out)) == 0, "*out written on failure");
}

/* ---- good tables ------------------------------------------------------------------ */

Test(acpi, rev0_rsdt_lists_cpus)
{
    good_rev0();
    const char *err = run();
    cr_assert_null(err, "%s", err);
    cr_expect_eq(out.count, 4);
    cr_expect_eq(out.listed, 4);
    for (uint32_t i = 0; i < 4; i++)
        cr_expect_eq(out.apic_id[i], i);
    cr_expect_eq(out.lapic_phys, 0xfee00000);
    cr_expect(out.pcat_compat);
}

Test(acpi, rev2_prefers_xsdt)
{
    good_rev0(); /* the RSDT's MADT lists 4 CPUs */
    madt_begin(MADT2_AT, 0xfee00000, 0);
    madt_lapic(0, 7, 1);
    madt_lapic(1, 9, 1);
    madt_end_table();
    uint64_t t[] = {FACP_AT, MADT2_AT};
    put_xsdt(XSDT_AT, t, 2);
    put_rsdp(RSDP_AT, 2, RSDT_AT, XSDT_AT);
    const char *err = run();
    cr_assert_null(err, "%s", err);
    cr_expect_eq(out.count, 2);
    cr_expect_eq(out.apic_id[0], 7);
    cr_expect_eq(out.apic_id[1], 9);
    cr_expect_not(out.pcat_compat);
}

Test(acpi, rev2_without_xsdt_uses_rsdt)
{
    good_rev0();
    put_rsdp(RSDP_AT, 2, RSDT_AT, 0);
    const char *err = run();
    cr_assert_null(err, "%s", err);
    cr_expect_eq(out.count, 4);
}

Test(acpi, rsdp_copy_from_the_bootloader)
{
    good_rev0();
    put_rsdp(RSDP_AT, 2, RSDT_AT, 0);
    memcpy(bi.rsdp_copy, img + RSDP_AT, 36);
    memset(img + RSDP_AT, 0, 36); /* only the copy holds it now */
    bi.rsdp = 0;
    bi.rsdp_is_copy = true;
    const char *err = run();
    cr_assert_null(err, "%s", err);
    cr_expect_eq(out.count, 4);
}

Test(acpi, x2apic_entries_and_override)
{
    good_rev0();
    madt_begin(MADT_AT, 0xfee00000, 1);
    madt_lapic(0, 0, 1);
    madt_override(0x1fee00000ULL);
    madt_x2apic(0x100, 1, 1);
    madt_x2apic(0x12345, 1, 2);
    madt_override(0x2fee00000ULL); /* only the first override counts */
    madt_end_table();
    const char *err = run();
    cr_assert_null(err, "%s", err);
    cr_expect_eq(out.count, 3);
    cr_expect_eq(out.apic_id[0], 0);
    cr_expect_eq(out.apic_id[1], 0x100);
    cr_expect_eq(out.apic_id[2], 0x12345);
    cr_expect_eq(out.lapic_phys, 0x1fee00000ULL);
}

Test(acpi, disabled_skipped_online_capable_counted)
{
    good_rev0();
    madt_begin(MADT_AT, 0xfee00000, 1);
    madt_lapic(0, 0, 1);
    madt_lapic(1, 1, 0);      /* disabled, not online-capable: not a CPU to start */
    madt_lapic(2, 2, 2);      /* online-capable */
    madt_x2apic(0x200, 0, 3); /* disabled */
    madt_x2apic(0x201, 2, 4); /* online-capable */
    madt_end_table();
    const char *err = run();
    cr_assert_null(err, "%s", err);
    cr_expect_eq(out.count, 3);
    cr_expect_eq(out.listed, 3);
    cr_expect_eq(out.apic_id[0], 0);
    cr_expect_eq(out.apic_id[1], 2);
    cr_expect_eq(out.apic_id[2], 0x201);
}

Test(acpi, duplicates_and_broadcast_ids_skipped)
{
    good_rev0();
    madt_begin(MADT_AT, 0xfee00000, 1);
    madt_lapic(0, 0, 1);
    madt_lapic(1, 1, 1);
    madt_x2apic(1, 1, 1);          /* the same CPU again as x2APIC */
    madt_lapic(2, 0xff, 1);        /* broadcast */
    madt_x2apic(0xffffffff, 1, 3); /* broadcast */
    madt_end_table();
    const char *err = run();
    cr_assert_null(err, "%s", err);
    cr_expect_eq(out.count, 2);
    cr_expect_eq(out.listed, 2);
}

Test(acpi, more_than_cpu_max_cpus_capped)
{
    good_rev0();
    madt_begin(MADT_AT, 0xfee00000, 1);
    for (uint8_t i = 0; i < CPU_MAX + 4; i++)
        madt_lapic(i, (uint8_t)(2 * i), 1);
    madt_end_table();
    const char *err = run();
    cr_assert_null(err, "%s", err);
    cr_expect_eq(out.count, CPU_MAX);
    cr_expect_eq(out.listed, CPU_MAX + 4);
    for (uint32_t i = 0; i < CPU_MAX; i++)
        cr_expect_eq(out.apic_id[i], 2 * i);
}

Test(acpi, unknown_entries_skipped_by_length)
{
    good_rev0();
    madt_begin(MADT_AT, 0xfee00000, 1);
    madt_raw(0x7f, 2);
    madt_lapic(0, 3, 1);
    madt_raw(4, 6); /* local APIC NMI */
    madt_raw(0xee, 40);
    madt_lapic(1, 5, 1);
    madt_end_table();
    const char *err = run();
    cr_assert_null(err, "%s", err);
    cr_expect_eq(out.count, 2);
    cr_expect_eq(out.apic_id[1], 5);
}

Test(acpi, null_and_unmappable_root_entries_skipped)
{
    good_rev0();
    uint64_t t[] = {0, 0x7fffffff0000ULL, FACP_AT, MADT_AT};
    put_xsdt(XSDT_AT, t, 4);
    put_rsdp(RSDP_AT, 2, RSDT_AT, XSDT_AT);
    const char *err = run();
    cr_assert_null(err, "%s", err);
    cr_expect_eq(out.count, 4);
}

/* ---- malformed: one line each, *out untouched ----------------------------------- */

Test(acpi, no_rsdp)
{
    expect_line("acpi: the bootloader gave no RSDP");
}

Test(acpi, rsdp_not_mappable)
{
    good_rev0();
    bi.rsdp = IMG_SIZE - 8;
    expect_line("acpi: RSDP at 0x1fff8 not mappable");
}

Test(acpi, rsdp_wrong_signature)
{
    good_rev0();
    img[RSDP_AT + 4] = 'X';
    expect_line("acpi: RSDP without the \"RSD PTR \" signature");
}

Test(acpi, rsdp_bad_checksum)
{
    good_rev0();
    img[RSDP_AT + 9]++; /* an OEM ID byte */
    expect_line("acpi: RSDP checksum bad (its 20 bytes sum to 0x1, not 0)");
}

Test(acpi, rsdp_bad_extended_checksum)
{
    good_rev0();
    put_rsdp(RSDP_AT, 2, RSDT_AT, XSDT_AT);
    img[RSDP_AT + 33]++; /* reserved: only the extended checksum covers it */
    expect_line("acpi: RSDP extended checksum bad (its 36 bytes sum to 0x1, not 0)");
}

Test(acpi, rsdp_bad_length)
{
    good_rev0();
    put_rsdp(RSDP_AT, 2, RSDT_AT, XSDT_AT);
    w32(RSDP_AT + 20, 20);
    expect_line("acpi: RSDP revision 2 length 20 out of range (36..4096)");
    w32(RSDP_AT + 20, 0x10000);
    expect_line("acpi: RSDP revision 2 length 65536 out of range (36..4096)");
}

Test(acpi, rsdp_copy_longer_than_copied)
{
    good_rev0();
    put_rsdp(RSDP_AT, 2, RSDT_AT, 0);
    memcpy(bi.rsdp_copy, img + RSDP_AT, 36);
    w32(RSDP_AT + 20, 40); /* not in the copy */
    bi.rsdp_copy[20] = 40;
    bi.rsdp_is_copy = true;
    expect_line("acpi: RSDP length 40 beyond the 36 bytes the bootloader copied");
}

Test(acpi, rsdp_without_root)
{
    good_rev0();
    put_rsdp(RSDP_AT, 2, 0, 0);
    expect_line("acpi: RSDP gives neither an RSDT nor an XSDT address");
}

Test(acpi, xsdt_not_mappable)
{
    good_rev0();
    put_rsdp(RSDP_AT, 2, RSDT_AT, 0x100000000ULL);
    expect_line("acpi: XSDT at 0x100000000 not mappable");
}

Test(acpi, rsdt_wrong_signature)
{
    good_rev0();
    memcpy(img + RSDT_AT, "XSDT", 4);
    expect_line("acpi: table at 0x3000 is not the RSDT (signature 58 53 44 54)");
}

Test(acpi, root_length_smaller_than_header)
{
    good_rev0();
    w32(RSDT_AT + 4, 20);
    expect_line("acpi: RSDT length 20 smaller than its 36-byte header");
}

Test(acpi, root_length_absurd)
{
    good_rev0();
    uint64_t t[] = {MADT_AT};
    put_xsdt(XSDT_AT, t, 1);
    put_rsdp(RSDP_AT, 2, RSDT_AT, XSDT_AT);
    w32(XSDT_AT + 4, 0x200000);
    expect_line("acpi: XSDT length 2097152 too large (over 1048576)");
}

Test(acpi, root_length_past_memory)
{
    good_rev0();
    w32(RSDT_AT + 4, IMG_SIZE); /* runs past the image: the map function refuses */
    expect_line("acpi: RSDT at 0x3000 (131072 bytes) not mappable");
}

Test(acpi, root_bad_checksum)
{
    good_rev0();
    img[RSDT_AT + 16]++; /* OEM table ID */
    expect_line("acpi: RSDT checksum bad (its 44 bytes sum to 0x1, not 0)");
}

Test(acpi, no_madt)
{
    good_rev0();
    uint32_t t[] = {FACP_AT};
    put_rsdt(RSDT_AT, t, 1);
    expect_line("acpi: no MADT (\"APIC\") among the 1 tables of the RSDT");
    uint32_t u[] = {FACP_AT, 0xfffff000};
    put_rsdt(RSDT_AT, u, 2);
    expect_line("acpi: no MADT (\"APIC\") among the 2 tables of the RSDT (1 not mappable)");
}

Test(acpi, madt_bad_checksum)
{
    good_rev0();
    img[MADT_AT + 44 + 3] = 9; /* an APIC ID changed behind the checksum's back */
    expect_line("acpi: MADT checksum bad (its 88 bytes sum to 0x9, not 0)");
}

Test(acpi, madt_shorter_than_its_header)
{
    good_rev0();
    w32(MADT_AT + 4, 40);
    fix_sdt(MADT_AT);
    expect_line("acpi: MADT length 40 smaller than its 44-byte header");
}

Test(acpi, madt_length_absurd)
{
    good_rev0();
    w32(MADT_AT + 4, 0xffffffff);
    expect_line("acpi: MADT length 4294967295 too large (over 1048576)");
}

Test(acpi, madt_entry_length_zero_or_one)
{
    for (uint8_t len = 0; len < 2; len++) {
        good_rev0();
        madt_begin(MADT_AT, 0xfee00000, 1);
        madt_lapic(0, 0, 1);
        madt_raw(0x42, len);
        madt_lapic(1, 1, 1);
        madt_end_table();
        char want[100];
        snprintf(want, sizeof(want), "acpi: MADT entry at offset 52 has length %u (less than 2)",
                 len);
        expect_line(want);
    }
}

Test(acpi, madt_entry_past_the_end)
{
    good_rev0();
    madt_begin(MADT_AT, 0xfee00000, 1);
    madt_lapic(0, 0, 1);
    madt_lapic(1, 1, 1);
    madt_end_table();
    w32(MADT_AT + 4, 44 + 8 + 7); /* the second entry one byte short */
    fix_sdt(MADT_AT);
    expect_line("acpi: MADT entry at offset 52 (type 0, 8 bytes) runs past the table's end "
                "(59 bytes)");
}

Test(acpi, madt_entry_header_past_the_end)
{
    good_rev0();
    madt_begin(MADT_AT, 0xfee00000, 1);
    madt_lapic(0, 0, 1);
    madt_lapic(1, 1, 1);
    madt_end_table();
    w32(MADT_AT + 4, 44 + 8 + 1); /* one byte left: no room for type and length */
    fix_sdt(MADT_AT);
    expect_line("acpi: MADT entry at offset 52 runs past the table's end (53 bytes)");
}

Test(acpi, madt_known_entry_too_short)
{
    good_rev0();
    madt_begin(MADT_AT, 0xfee00000, 1);
    madt_lapic(0, 0, 1);
    madt_raw(9, 12); /* an x2APIC entry needs 16 */
    madt_end_table();
    expect_line("acpi: MADT type 9 entry at offset 52 has length 12 (needs 16)");
}

Test(acpi, madt_without_usable_cpu)
{
    good_rev0();
    madt_begin(MADT_AT, 0xfee00000, 1);
    madt_lapic(0, 0, 0);
    madt_lapic(1, 0xff, 1);
    madt_ioapic(0, 0xfec00000);
    madt_end_table();
    expect_line("acpi: MADT lists no usable CPU");
}

Test(acpi, reads_stay_inside_what_was_mapped)
{
    /* The MADT ends exactly where the image ends: a read one byte further
     * would leave the image (and the copy map_img made: ASan). */
    uint32_t madt = IMG_SIZE - 52;
    madt_begin(madt, 0xfee00000, 1);
    madt_lapic(0, 0, 1);
    madt_end_table();
    uint32_t t[] = {madt};
    put_rsdt(RSDT_AT, t, 1);
    put_rsdp(RSDP_AT, 0, RSDT_AT, 0);
    const char *err = run();
    cr_assert_null(err, "%s", err);
    cr_expect_eq(out.count, 1);
    cr_expect_eq(out.apic_id[0], 0);
}
