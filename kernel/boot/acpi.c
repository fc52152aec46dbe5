/* The MADT path: RSDP -> RSDT/XSDT -> MADT -> the CPUs' local APIC IDs
 * (boot/acpi.h). Every multi-byte field is read byte by byte: firmware tables
 * need not be aligned, and the parser must not assume the map function's
 * pointers are. Every read is bounded by the length the map function was
 * asked for, which is itself bounded by a length already validated. */
#include "boot/acpi.h"

#include <stdarg.h>

#include "lib/printf.h"
#include "lib/string.h"

/* Layouts (ACPI 6.5, chapter 5.2): offsets of the fields read here. */
#define RSDP_V1_LEN        20u /* signature, checksum, OEM ID, revision, RSDT address */
#define RSDP_V2_LEN        36u /* + length, XSDT address, extended checksum, reserved */
#define RSDP_MAX_LEN       4096u
#define RSDP_REVISION      15u
#define RSDP_RSDT_ADDR     16u
#define RSDP_LENGTH        20u
#define RSDP_XSDT_ADDR     24u
#define SDT_LENGTH         4u
#define SDT_HEADER_LEN     36u /* signature, length, revision, checksum, OEM fields, creator */
#define MADT_LAPIC_ADDR    36u
#define MADT_FLAGS         40u
#define MADT_ENTRIES       44u
#define MADT_PCAT_COMPAT   1u
#define MADT_LAPIC         0u  /* Processor Local APIC: uid u8 @2, APIC ID u8 @3, flags u32 @4 */
#define MADT_LAPIC_LEN     8u
#define MADT_LAPIC_OVR     5u  /* Local APIC Address Override: address u64 @4 */
#define MADT_LAPIC_OVR_LEN 12u
#define MADT_X2APIC        9u  /* Processor Local x2APIC: ID u32 @4, flags u32 @8, uid u32 @12 */
#define MADT_X2APIC_LEN    16u
#define LAPIC_ENABLED      1u  /* flags bit 0 */
#define LAPIC_ONLINE_CAP   2u  /* flags bit 1: may be enabled at run time */

/* The one buffer behind the error lines: parses do not overlap (bring-up
 * parses once on the bootstrap CPU; the self-tests parse on one CPU). */
static char acpi_err[160];

__attribute__((format(printf, 1, 2))) static const char *fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    kvsnprintf(acpi_err, sizeof(acpi_err), fmt, ap);
    va_end(ap);
    return acpi_err;
}

static uint32_t rd32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t rd64(const uint8_t *p)
{
    return (uint64_t)rd32(p) | (uint64_t)rd32(p + 4) << 32;
}

static uint8_t checksum(const uint8_t *p, size_t n)
{
    uint8_t s = 0;
    for (size_t i = 0; i < n; i++)
        s = (uint8_t)(s + p[i]);
    return s;
}

static bool sig_is(const uint8_t *p, const char *sig, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] != (uint8_t)sig[i])
            return false;
    return true;
}

/* map(), refusing ranges that wrap past 2^64 before the map function sees them. */
static const uint8_t *map_range(acpi_map_fn map, void *ctx, paddr_t phys, size_t len)
{
    if (phys > UINT64_MAX - len)
        return NULL;
    return map(phys, len, ctx);
}

/* A table whose signature, length and checksum were checked. */
struct table {
    const uint8_t *p;
    uint32_t len;
};

/* Maps the table at phys, which must carry signature `sig` and be at least
 * `min_len` bytes long (its fixed part), and checks its checksum. Error lines
 * call it `name`. */
static const char *load_table(acpi_map_fn map, void *ctx, paddr_t phys, const char *sig,
                              const char *name, uint32_t min_len, struct table *t)
{
    const uint8_t *h = map_range(map, ctx, phys, SDT_HEADER_LEN);
    if (!h)
        return fail("acpi: %s at %#llx not mappable", name, (unsigned long long)phys);
    if (!sig_is(h, sig, 4))
        return fail("acpi: table at %#llx is not the %s (signature %02x %02x %02x %02x)",
                    (unsigned long long)phys, name, h[0], h[1], h[2], h[3]);
    uint32_t len = rd32(h + SDT_LENGTH);
    if (len < min_len)
        return fail("acpi: %s length %u smaller than its %u-byte header", name, len, min_len);
    if (len > ACPI_TABLE_MAX)
        return fail("acpi: %s length %u too large (over %llu)", name, len,
                    (unsigned long long)ACPI_TABLE_MAX);
    const uint8_t *p = map_range(map, ctx, phys, len);
    if (!p)
        return fail("acpi: %s at %#llx (%u bytes) not mappable", name, (unsigned long long)phys,
                    len);
    uint8_t s = checksum(p, len);
    if (s)
        return fail("acpi: %s checksum bad (its %u bytes sum to %#x, not 0)", name, len, s);
    t->p = p;
    t->len = len;
    return NULL;
}

/* The RSDP's root table: the XSDT (64-bit entries) when the RSDP is revision
 * 2+ and gives one, else the RSDT (32-bit entries). */
struct root {
    const char *sig;
    paddr_t phys;
    uint32_t entry_size;
};

static const char *read_rsdp(const struct boot_info *bi, acpi_map_fn map, void *ctx,
                             struct root *root)
{
    const uint8_t *r;
    if (bi->rsdp_is_copy)
        r = bi->rsdp_copy;
    else if (bi->rsdp) {
        r = map_range(map, ctx, bi->rsdp, RSDP_V1_LEN);
        if (!r)
            return fail("acpi: RSDP at %#llx not mappable", (unsigned long long)bi->rsdp);
    } else
        return "acpi: the bootloader gave no RSDP";
    if (!sig_is(r, "RSD PTR ", 8))
        return "acpi: RSDP without the \"RSD PTR \" signature";
    uint8_t s = checksum(r, RSDP_V1_LEN);
    if (s)
        return fail("acpi: RSDP checksum bad (its 20 bytes sum to %#x, not 0)", s);
    uint8_t rev = r[RSDP_REVISION];
    uint64_t xsdt = 0;
    if (rev >= 2) {
        if (!bi->rsdp_is_copy && !(r = map_range(map, ctx, bi->rsdp, RSDP_V2_LEN)))
            return fail("acpi: RSDP at %#llx not mappable", (unsigned long long)bi->rsdp);
        uint32_t len = rd32(r + RSDP_LENGTH);
        if (len < RSDP_V2_LEN || len > RSDP_MAX_LEN)
            return fail("acpi: RSDP revision %u length %u out of range (36..%u)", rev, len,
                        RSDP_MAX_LEN);
        if (bi->rsdp_is_copy && len > sizeof(bi->rsdp_copy))
            return fail("acpi: RSDP length %u beyond the %zu bytes the bootloader copied", len,
                        sizeof(bi->rsdp_copy));
        if (!bi->rsdp_is_copy && !(r = map_range(map, ctx, bi->rsdp, len)))
            return fail("acpi: RSDP at %#llx (%u bytes) not mappable",
                        (unsigned long long)bi->rsdp, len);
        s = checksum(r, len);
        if (s)
            return fail("acpi: RSDP extended checksum bad (its %u bytes sum to %#x, not 0)", len,
                        s);
        xsdt = rd64(r + RSDP_XSDT_ADDR);
    }
    if (xsdt) {
        *root = (struct root){"XSDT", xsdt, 8};
        return NULL;
    }
    uint32_t rsdt = rd32(r + RSDP_RSDT_ADDR);
    if (!rsdt)
        return "acpi: RSDP gives neither an RSDT nor an XSDT address";
    *root = (struct root){"RSDT", rsdt, 4};
    return NULL;
}

/* Finds the first table signed "APIC" among the root table's entries. Null
 * entries and entries whose header cannot be mapped are skipped. */
static const char *find_madt(acpi_map_fn map, void *ctx, const struct root *root, paddr_t *madt)
{
    struct table t;
    const char *err = load_table(map, ctx, root->phys, root->sig, root->sig, SDT_HEADER_LEN, &t);
    if (err)
        return err;
    uint32_t n = (t.len - SDT_HEADER_LEN) / root->entry_size, unmappable = 0;
    for (uint32_t i = 0; i < n; i++) {
        const uint8_t *e = t.p + SDT_HEADER_LEN + (size_t)i * root->entry_size;
        paddr_t phys = root->entry_size == 8 ? rd64(e) : rd32(e);
        if (!phys)
            continue;
        const uint8_t *h = map_range(map, ctx, phys, SDT_HEADER_LEN);
        if (!h) {
            unmappable++;
            continue;
        }
        if (sig_is(h, "APIC", 4)) {
            *madt = phys;
            return NULL;
        }
    }
    if (unmappable)
        return fail("acpi: no MADT (\"APIC\") among the %u tables of the %s (%u not mappable)",
                    n, root->sig, unmappable);
    return fail("acpi: no MADT (\"APIC\") among the %u tables of the %s", n, root->sig);
}

/* Adds one processor entry's APIC ID when the entry is usable. */
static void add_cpu(struct acpi_cpus *c, uint32_t apic_id, uint32_t flags)
{
    if (!(flags & (LAPIC_ENABLED | LAPIC_ONLINE_CAP)))
        return;
    for (uint32_t i = 0; i < c->count; i++)
        if (c->apic_id[i] == apic_id)
            return; /* listed twice (e.g. as local APIC and as x2APIC): start it once */
    c->listed++;
    if (c->count < CPU_MAX)
        c->apic_id[c->count++] = apic_id;
}

/* Walks the MADT's entries (types 0, 5 and 9 read; others skipped by length). */
static const char *walk_madt(const struct table *t, struct acpi_cpus *c)
{
    bool overridden = false;
    c->lapic_phys = rd32(t->p + MADT_LAPIC_ADDR);
    c->pcat_compat = (rd32(t->p + MADT_FLAGS) & MADT_PCAT_COMPAT) != 0;
    uint32_t off = MADT_ENTRIES;
    while (off < t->len) {
        if (t->len - off < 2)
            return fail("acpi: MADT entry at offset %u runs past the table's end (%u bytes)", off,
                        t->len);
        const uint8_t *e = t->p + off;
        uint8_t type = e[0], len = e[1];
        if (len < 2)
            return fail("acpi: MADT entry at offset %u has length %u (less than 2)", off, len);
        if (len > t->len - off)
            return fail("acpi: MADT entry at offset %u (type %u, %u bytes) runs past the "
                        "table's end (%u bytes)", off, type, len, t->len);
        uint8_t need = type == MADT_LAPIC ? MADT_LAPIC_LEN
                     : type == MADT_X2APIC ? MADT_X2APIC_LEN
                     : type == MADT_LAPIC_OVR ? MADT_LAPIC_OVR_LEN : 2;
        if (len < need)
            return fail("acpi: MADT type %u entry at offset %u has length %u (needs %u)", type,
                        off, len, need);
        if (type == MADT_LAPIC && e[3] != 0xff) /* 0xff: the broadcast ID, no CPU */
            add_cpu(c, e[3], rd32(e + 4));
        else if (type == MADT_X2APIC && rd32(e + 4) != 0xffffffffu)
            add_cpu(c, rd32(e + 4), rd32(e + 8));
        else if (type == MADT_LAPIC_OVR && !overridden) {
            c->lapic_phys = rd64(e + 4);
            overridden = true;
        }
        off += len;
    }
    if (!c->count)
        return "acpi: MADT lists no usable CPU";
    return NULL;
}

const char *acpi_madt_cpus(const struct boot_info *bi, acpi_map_fn map, void *ctx,
                           struct acpi_cpus *out)
{
    struct root root = {0};
    paddr_t madt_phys = 0;
    struct table madt = {0};
    struct acpi_cpus c;
    const char *err;
    memset(&c, 0, sizeof(c));
    if ((err = read_rsdp(bi, map, ctx, &root)) || (err = find_madt(map, ctx, &root, &madt_phys)) ||
        (err = load_table(map, ctx, madt_phys, "APIC", "MADT", MADT_ENTRIES, &madt)) ||
        (err = walk_madt(&madt, &c)))
        return err;
    *out = c;
    return NULL;
}
