/* Fuzz target: the MADT path (kernel/boot/acpi.c), from the RSDP to the
 * list of CPUs.
 *
 * Input: u8 mode, u32 rsdp, then a "physical memory" image: the input's
 * remaining bytes are physical [0, n).
 *   mode bit 0: the RSDP comes as the bootloader's 36-byte copy, taken from
 *               the image at rsdp (zeros past its end), as Multiboot2 gives it
 *   mode bit 1: (bit 0 clear) no RSDP at all
 *   otherwise bi.rsdp = rsdp, a physical address.
 * The map function refuses any range not inside the image and hands out a
 * heap copy of exactly the bytes asked for, so ASan reports any read past
 * what the parser mapped.
 *
 * Checked: no read outside a mapping (ASan); errors are one "acpi: ..." line
 * and leave the result untouched; a success is consistent (1 <= count <=
 * CPU_MAX, count <= listed, IDs distinct, never a broadcast ID) and equals
 * what a reference walk written here from the specification finds (accepted
 * exactly when it accepts; count, listed, IDs, LAPIC address, PCAT_COMPAT). */
#include "fuzz.h"

#include "boot/acpi.h"
#include "boot/boot_info.h"

static struct boot_info bi;
static const uint8_t *img;
static size_t img_len;
static void *copies[4096];
static size_t ncopies;

static const void *map_image(paddr_t phys, size_t len, void *ctx)
{
    (void)ctx;
    if (phys > img_len || len > img_len - phys || ncopies == sizeof(copies) / sizeof(copies[0]))
        return NULL;
    void *c = malloc(len ? len : 1);
    FUZZ_CHECK(c, "malloc");
    memcpy(c, img + phys, len);
    copies[ncopies++] = c;
    return c;
}

/* ---- the reference: the specification's walk over the image ------------------- */

static bool in_img(uint64_t phys, uint64_t len)
{
    return phys <= img_len && len <= img_len - phys;
}

static uint64_t le(const uint8_t *p, unsigned size)
{
    uint64_t v = 0;
    for (unsigned i = 0; i < size; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

static bool sums_to_zero(const uint8_t *p, uint64_t len)
{
    unsigned s = 0;
    for (uint64_t i = 0; i < len; i++)
        s += p[i];
    return (s & 0xff) == 0;
}

/* The table at phys when it is whole, signed sig, at least min long, at most
 * ACPI_TABLE_MAX, checksum right; NULL otherwise. */
static const uint8_t *ref_table(uint64_t phys, const char *sig, uint32_t min, uint32_t *len)
{
    if (!in_img(phys, 36) || memcmp(img + phys, sig, 4) != 0)
        return NULL;
    *len = (uint32_t)le(img + phys + 4, 4);
    if (*len < min || *len > ACPI_TABLE_MAX || !in_img(phys, *len) ||
        !sums_to_zero(img + phys, *len))
        return NULL;
    return img + phys;
}

static bool ref_walk(uint8_t mode, uint32_t rsdp, struct acpi_cpus *r)
{
    memset(r, 0, sizeof(*r));
    uint8_t copy[36];
    const uint8_t *p;
    if (mode & 1) {
        memset(copy, 0, sizeof(copy));
        for (unsigned i = 0; i < 36; i++)
            if (in_img((uint64_t)rsdp + i, 1))
                copy[i] = img[rsdp + i];
        p = copy;
    } else {
        if ((mode & 2) || !rsdp || !in_img(rsdp, 20))
            return false;
        p = img + rsdp;
    }
    if (memcmp(p, "RSD PTR ", 8) != 0 || !sums_to_zero(p, 20))
        return false;
    uint64_t root = le(p + 16, 4);
    unsigned esz = 4;
    const char *sig = "RSDT";
    if (p[15] >= 2) {
        if (!(mode & 1) && !in_img(rsdp, 36))
            return false;
        uint32_t len = (uint32_t)le(p + 20, 4);
        if (len < 36 || len > 4096 || ((mode & 1) ? len > 36 : !in_img(rsdp, len)) ||
            !sums_to_zero(p, len))
            return false;
        uint64_t x = le(p + 24, 8);
        if (x) {
            root = x;
            esz = 8;
            sig = "XSDT";
        }
    }
    if (!root)
        return false;
    uint32_t rlen, mlen;
    const uint8_t *rt = ref_table(root, sig, 36, &rlen);
    if (!rt)
        return false;
    uint64_t madt = 0;
    for (uint32_t off = 36; off + esz <= rlen && !madt; off += esz) {
        uint64_t t = le(rt + off, esz);
        if (t && in_img(t, 36) && memcmp(img + t, "APIC", 4) == 0)
            madt = t;
    }
    const uint8_t *m = madt ? ref_table(madt, "APIC", 44, &mlen) : NULL;
    if (!m)
        return false;
    r->lapic_phys = le(m + 36, 4);
    r->pcat_compat = le(m + 40, 4) & 1;
    bool overridden = false;
    for (uint32_t off = 44; off < mlen;) {
        if (mlen - off < 2 || m[off + 1] < 2 || m[off + 1] > mlen - off)
            return false;
        uint8_t type = m[off], len = m[off + 1];
        uint64_t id = UINT64_MAX, flags = 0;
        if (type == 0) {
            if (len < 8)
                return false;
            if (m[off + 3] != 0xff)
                id = m[off + 3], flags = le(m + off + 4, 4);
        } else if (type == 9) {
            if (len < 16)
                return false;
            if (le(m + off + 4, 4) != 0xffffffffu)
                id = le(m + off + 4, 4), flags = le(m + off + 8, 4);
        } else if (type == 5) {
            if (len < 12)
                return false;
            if (!overridden)
                r->lapic_phys = le(m + off + 4, 8);
            overridden = true;
        }
        bool dup = false;
        for (uint32_t i = 0; i < r->count; i++)
            dup |= r->apic_id[i] == id;
        if (id != UINT64_MAX && (flags & 3) && !dup) {
            r->listed++;
            if (r->count < CPU_MAX)
                r->apic_id[r->count++] = (uint32_t)id;
        }
        off += len;
    }
    return r->count > 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fuzz_in fi = {data, size};
    uint8_t mode = fuzz_u8(&fi);
    uint32_t rsdp = fuzz_u32(&fi);
    /* The image in a buffer of exactly its size. */
    uint8_t *buf = malloc(fi.n ? fi.n : 1);
    FUZZ_CHECK(buf, "malloc");
    img_len = fi.n;
    fuzz_copy(&fi, buf, img_len);
    img = buf;

    memset(&bi, 0, sizeof(bi));
    if (mode & 1) {
        for (unsigned i = 0; i < sizeof(bi.rsdp_copy); i++)
            bi.rsdp_copy[i] = in_img((uint64_t)rsdp + i, 1) ? img[rsdp + i] : 0;
        bi.rsdp_is_copy = true;
    } else if (!(mode & 2))
        bi.rsdp = rsdp;

    struct acpi_cpus out, before, ref;
    memset(&out, 0x5a, sizeof(out));
    memcpy(&before, &out, sizeof(out));
    ncopies = 0;
    const char *err = acpi_madt_cpus(&bi, map_image, NULL, &out);
    bool ref_ok = ref_walk(mode, rsdp, &ref);
    if (err) {
        FUZZ_CHECK(strncmp(err, "acpi: ", 6) == 0 && strlen(err) < 160 && !strchr(err, '\n'),
                   "error line \"%s\"", err);
        FUZZ_CHECK(memcmp(&out, &before, sizeof(out)) == 0, "result written on \"%s\"", err);
        FUZZ_CHECK(!ref_ok, "refused (\"%s\") what the reference accepts", err);
    } else {
        FUZZ_CHECK(out.count >= 1 && out.count <= CPU_MAX && out.count <= out.listed,
                   "count %u listed %u", out.count, out.listed);
        for (uint32_t i = 0; i < out.count; i++) {
            FUZZ_CHECK(out.apic_id[i] != 0xffffffffu, "broadcast ID kept");
            for (uint32_t k = 0; k < i; k++)
                FUZZ_CHECK(out.apic_id[i] != out.apic_id[k], "APIC ID %u twice", out.apic_id[i]);
        }
        FUZZ_CHECK(ref_ok, "accepted what the reference refuses");
        FUZZ_CHECK(out.count == ref.count && out.listed == ref.listed &&
                       memcmp(out.apic_id, ref.apic_id, out.count * sizeof(uint32_t)) == 0,
                   "CPUs differ: %u/%u vs reference %u/%u", out.count, out.listed, ref.count,
                   ref.listed);
        FUZZ_CHECK(out.lapic_phys == ref.lapic_phys && out.pcat_compat == ref.pcat_compat,
                   "LAPIC %#llx/%d vs reference %#llx/%d", (unsigned long long)out.lapic_phys,
                   out.pcat_compat, (unsigned long long)ref.lapic_phys, ref.pcat_compat);
    }
    for (size_t i = 0; i < ncopies; i++)
        free(copies[i]);
    free(buf);
    return 0;
}
