/* Fuzz target: Limine answers (kernel/boot/limine.c) and the validation of
 * the resulting boot information (kernel/boot/boot_info.c).
 *
 * The input is decoded into real response structures (heap objects of their
 * exact size, so ASan sees any read past one): see decode() for the layout,
 * which seedgen.c writes too. Pointers the bootloader gives are either NULL
 * or point at such objects; strings are NUL-terminated somewhere (a string
 * without an end is not something the kernel could check).
 *
 * Checked against references written here from the rules in limine.h and
 * boot_info.h: boot_from_limine succeeds exactly when the reference accepts,
 * the fields it fills equal the responses (base revision in force from the
 * tag, memory map converted entry by entry, first usable RGB framebuffer,
 * HHDM-relative addresses made physical by the revision's rules, modules
 * with physical addresses and their names, the CPU list of the MP response
 * with its cap and its note), errors are one "limine: ..." line;
 * boot_info_validate accepts exactly what its reference accepts. Then every
 * CPU of a usable list is sent somewhere with limine_mp_goto, which must
 * write its goto_address and extra_argument and nothing else. */
#include "fuzz.h"

#include "boot/boot_info.h"
#include "boot/limine.h"

#define HIGHER_HALF 0xffff800000000000ULL
#define KERNEL_SPACE 0xffffffff80000000ULL
#define MAX_ALLOC_ENTRIES 600 /* counts above this are refused before any entry is read */
/* limine.c refuses a CPU list longer than this before reading it (more is a
 * corrupted response, not a machine); up to it, the array has cpu_count slots. */
#define REF_MP_SANE_MAX 65536
/* CPUs decoded from the input at most; slots past them are NULL pointers (a
 * list the kernel must refuse at the first of them). */
#define MP_DECODE_MAX 256

/* Everything decode() allocates, freed at the end of the run. */
static void *allocs[4096];
static size_t nallocs;

static void *take(size_t size)
{
    FUZZ_CHECK(nallocs < sizeof(allocs) / sizeof(allocs[0]), "too many objects");
    void *p = calloc(1, size ? size : 1);
    FUZZ_CHECK(p, "calloc");
    allocs[nallocs++] = p;
    return p;
}

/* A string of u16 length (at most 600) from the input, NUL-terminated after it. */
static char *take_string(struct fuzz_in *in)
{
    size_t len = fuzz_u16(in) % 601;
    char *s = take(len + 1);
    fuzz_copy(in, s, len);
    return s;
}

static struct limine_answers a;

/* The MP response's CPUs as decoded, and a copy of each taken then: what
 * every limine_mp_info must still hold after boot_from_limine (it only
 * reads them) and, but for the two words it writes, after limine_mp_goto. */
static struct limine_mp_info *mp_info[MP_DECODE_MAX];
static struct limine_mp_info mp_shadow[MP_DECODE_MAX];
static size_t mp_decoded;
static uint64_t mp_goto_arg; /* extra_argument base for the limine_mp_goto check */
static uint64_t kernel_size; /* what the kernel's caller sets before validation */

/* The MP response: u32 flags, u32 BSP APIC ID, u8 shape (bit0: u64 CPU count,
 * else u16 mod 512; bit1: CPU array NULL; bits 4-7: response revision), the
 * count (the short form stays below 512: past MP_DECODE_MAX every slot is
 * NULL anyway, and up to 65535 slots would cost a 512 KiB array per input;
 * the u64 form reaches REF_MP_SANE_MAX and beyond),
 * u64 goto argument (for the limine_mp_goto check), then per CPU (at most
 * MP_DECODE_MAX, none past the input's end) u8 (0xff: a NULL entry), u32
 * processor ID, u32 APIC ID; slots left undecoded are NULL entries. The
 * array has cpu_count slots up to REF_MP_SANE_MAX (none beyond: the kernel
 * must not read it); reserved, goto_address and extra_argument are filled
 * with a pattern per CPU so that any write shows. */
static void decode_mp(struct fuzz_in *in)
{
    struct limine_mp_response *r = take(sizeof(*r));
    r->flags = fuzz_u32(in);
    r->bsp_lapic_id = fuzz_u32(in);
    uint8_t shape = fuzz_u8(in);
    r->revision = shape >> 4;
    r->cpu_count = shape & 1 ? fuzz_u64(in) : fuzz_u16(in) % 512;
    mp_goto_arg = fuzz_u64(in);
    size_t slots = r->cpu_count <= REF_MP_SANE_MAX ? r->cpu_count : 0;
    if (!(shape & 2)) {
        r->cpus = take(sizeof(*r->cpus) * slots); /* no slot at all: 1 byte, ASan-guarded */
        for (size_t i = 0; i < slots && i < MP_DECODE_MAX && !fuzz_done(in); i++) {
            if (fuzz_u8(in) == 0xff)
                continue;
            struct limine_mp_info *m = take(sizeof(*m));
            m->processor_id = fuzz_u32(in);
            m->lapic_id = fuzz_u32(in);
            m->reserved = 0x5e5e000000000000ULL | i;
            m->goto_address = (limine_goto_address)(uintptr_t)(0x607000000000ULL | i);
            m->extra_argument = 0xe8e8000000000000ULL | i;
            r->cpus[i] = m;
            mp_info[mp_decoded] = m;
            mp_shadow[mp_decoded++] = *m;
        }
    }
    a.mp = r;
}

/* Input layout: u8 present-mask (memmap, hhdm, framebuffer, executable file,
 * executable address, rsdp, firmware, bootloader info), u8 flags (paging mode
 * present, stack size present, raw base-revision tag, modules, MP, kernel
 * size), the base-revision tag (raw: 3 x u64; else u8 loaded revision (0 =
 * unknown: MAGIC1 stays), u8 "unsupported"), u8 requested revision, then each
 * present response in the order of the mask, then the modules, the MP
 * response (decode_mp) and u64 kernel size as their flags say. */
static void decode(struct fuzz_in *in)
{
    memset(&a, 0, sizeof(a));
    mp_decoded = 0;
    kernel_size = 0;
    uint8_t present = fuzz_u8(in), flags = fuzz_u8(in);
    if (flags & 4) {
        for (int i = 0; i < 3; i++)
            a.base_revision_tag[i] = fuzz_u64(in);
    } else {
        uint8_t loaded = fuzz_u8(in);
        a.base_revision_tag[0] = LIMINE_BASE_REVISION_MAGIC0;
        a.base_revision_tag[1] = loaded ? loaded : LIMINE_BASE_REVISION_MAGIC1;
        a.base_revision_tag[2] = fuzz_u8(in);
    }
    a.requested_revision = fuzz_u8(in);

    if (present & 1) { /* memmap: u16 count, u8 array-is-NULL, entries {u64 base, u64 len, u8 type (0xff: NULL)} */
        struct limine_memmap_response *m = take(sizeof(*m));
        m->entry_count = fuzz_u16(in);
        bool null_array = fuzz_u8(in) == 0xff;
        size_t n = m->entry_count <= MAX_ALLOC_ENTRIES ? m->entry_count : 0;
        if (!null_array) {
            m->entries = take(sizeof(*m->entries) * (n ? n : 1));
            for (size_t i = 0; i < n && m->entry_count <= MEMMAP_MAX; i++) {
                uint64_t base = fuzz_u64(in), len = fuzz_u64(in);
                uint8_t t = fuzz_u8(in);
                if (t == 0xff)
                    continue; /* a NULL entry */
                struct limine_memmap_entry *e = take(sizeof(*e));
                *e = (struct limine_memmap_entry){base, len, t};
                m->entries[i] = e;
            }
        }
        a.memmap = m;
    }
    if (present & 2) { /* hhdm: u64 offset */
        struct limine_hhdm_response *h = take(sizeof(*h));
        h->offset = fuzz_u64(in);
        a.hhdm = h;
    }
    if (present & 4) { /* framebuffers: u8 count, u8 array-is-NULL, each: u8 is-NULL + fields */
        struct limine_framebuffer_response *r = take(sizeof(*r));
        r->framebuffer_count = fuzz_u8(in);
        if (fuzz_u8(in) != 0xff) {
            r->framebuffers = take(sizeof(*r->framebuffers) * (r->framebuffer_count + 1));
            for (size_t i = 0; i < r->framebuffer_count; i++) {
                if (fuzz_u8(in) == 0xff)
                    continue;
                struct limine_framebuffer *f = take(sizeof(*f));
                f->address = (void *)(uintptr_t)fuzz_u64(in);
                f->width = fuzz_u64(in);
                f->height = fuzz_u64(in);
                f->pitch = fuzz_u64(in);
                f->bpp = fuzz_u16(in);
                f->memory_model = fuzz_u8(in);
                f->red_mask_size = fuzz_u8(in);
                f->red_mask_shift = fuzz_u8(in);
                f->green_mask_size = fuzz_u8(in);
                f->green_mask_shift = fuzz_u8(in);
                f->blue_mask_size = fuzz_u8(in);
                f->blue_mask_shift = fuzz_u8(in);
                r->framebuffers[i] = f;
            }
        }
        a.framebuffer = r;
    }
    if (present & 8) { /* executable file: u8 (bit0 file NULL, bit1 cmdline), u64 address, u64 size, string */
        struct limine_executable_file_response *r = take(sizeof(*r));
        uint8_t ff = fuzz_u8(in);
        uint64_t addr = fuzz_u64(in), size = fuzz_u64(in);
        if (!(ff & 1)) {
            struct limine_file *f = take(sizeof(*f));
            f->address = (void *)(uintptr_t)addr;
            f->size = size;
            if (ff & 2)
                f->cmdline = take_string(in);
            r->executable_file = f;
        }
        a.executable_file = r;
    }
    if (present & 16) { /* executable address: u64 physical, u64 virtual */
        struct limine_executable_address_response *r = take(sizeof(*r));
        r->physical_base = fuzz_u64(in);
        r->virtual_base = fuzz_u64(in);
        a.executable_address = r;
    }
    if (present & 32) { /* rsdp: u64 address */
        struct limine_rsdp_response *r = take(sizeof(*r));
        r->address = (void *)(uintptr_t)fuzz_u64(in);
        a.rsdp = r;
    }
    if (present & 64) { /* firmware: u8 type */
        struct limine_firmware_type_response *r = take(sizeof(*r));
        r->firmware_type = fuzz_u8(in);
        a.firmware_type = r;
    }
    if (present & 128) { /* bootloader info: u8 (bit0 name, bit1 version), strings */
        struct limine_bootloader_info_response *r = take(sizeof(*r));
        uint8_t bf = fuzz_u8(in);
        if (bf & 1)
            r->name = take_string(in);
        if (bf & 2)
            r->version = take_string(in);
        a.bootloader_info = r;
    }
    if (flags & 1) { /* paging mode: u8 mode */
        struct limine_paging_mode_response *r = take(sizeof(*r));
        r->mode = fuzz_u8(in);
        a.paging_mode = r;
    }
    if (flags & 2)
        a.stack_size = take(sizeof(struct limine_stack_size_response));
    if (flags & 8) { /* modules: u8 count, u8 array-is-NULL, each: u8 (bit0 NULL, bit1 string,
                        bit2 path), u64 address, u64 size, strings */
        struct limine_module_response *r = take(sizeof(*r));
        r->module_count = fuzz_u8(in);
        if (fuzz_u8(in) != 0xff) {
            r->modules = take(sizeof(*r->modules) * (r->module_count + 1));
            for (size_t i = 0; i < r->module_count; i++) {
                uint8_t mf = fuzz_u8(in);
                uint64_t addr = fuzz_u64(in), size = fuzz_u64(in);
                if (mf & 1)
                    continue;
                struct limine_file *f = take(sizeof(*f));
                f->address = (void *)(uintptr_t)addr;
                f->size = size;
                if (mf & 2)
                    f->cmdline = take_string(in);
                if (mf & 4)
                    f->path = take_string(in);
                r->modules[i] = f;
            }
        }
        a.module = r;
    }
    if (flags & 16)
        decode_mp(in);
    if (flags & 32)
        kernel_size = fuzz_u64(in);
}

/* A module's name by boot_info.h's rule (string, else the path's last
 * part) into out; false when it is empty, does not fit in 63 bytes or has a
 * byte outside 0x20-0x7e. */
static bool ref_module_name(const struct limine_file *f, char *out)
{
    const char *s = f->cmdline && f->cmdline[0] ? f->cmdline : f->path ? f->path : "";
    if (s == f->path && strrchr(s, '/'))
        s = strrchr(s, '/') + 1;
    if (strlen(s) == 0 || strlen(s) >= BOOT_MODULE_NAME_MAX)
        return false;
    for (const unsigned char *c = (const unsigned char *)s; *c; c++)
        if (*c < 0x20 || *c > 0x7e)
            return false;
    strcpy(out, s);
    return true;
}

/* The first framebuffer the kernel can draw on, or NULL; *bad when one before
 * it (or the array) is missing. */
static const struct limine_framebuffer *ref_fb(bool *bad)
{
    const struct limine_framebuffer_response *r = a.framebuffer;
    *bad = false;
    if (!r || r->framebuffer_count == 0)
        return NULL;
    if (!r->framebuffers) {
        *bad = true;
        return NULL;
    }
    for (size_t i = 0; i < r->framebuffer_count; i++) {
        const struct limine_framebuffer *f = r->framebuffers[i];
        if (!f) {
            *bad = true;
            return NULL;
        }
        if (f->memory_model == LIMINE_FRAMEBUFFER_RGB &&
            (f->bpp == 16 || f->bpp == 24 || f->bpp == 32))
            return f;
    }
    return NULL;
}

/* The base revision in force by limine.h's rules, or -1 for a tag the kernel
 * refuses: word 0 the magic, word 2 either 0 (granted) or what was asked;
 * word 1 names the revision used unless it is still the magic; unnamed and
 * refused means a bootloader before revision 3: asked - 1, at most 2; nothing
 * newer than the kernel knows. */
static int64_t ref_revision(void)
{
    const uint64_t *tag = a.base_revision_tag;
    uint64_t asked = a.requested_revision, rev;
    if (tag[0] != LIMINE_BASE_REVISION_MAGIC0 || (tag[2] != 0 && tag[2] != asked))
        return -1;
    if (tag[1] != LIMINE_BASE_REVISION_MAGIC1)
        rev = tag[1];
    else if (tag[2] == 0)
        rev = asked;
    else
        rev = asked - 1 < 2 ? asked - 1 : 2;
    return rev <= LIMINE_NEWEST_KNOWN_BASE_REVISION ? (int64_t)rev : -1;
}

/* limine.h's rules: base revision known, 4-level paging, HHDM (non-zero,
 * aligned, higher half), memory map (1..MEMMAP_MAX entries, none NULL,
 * empty or wrapping), executable address (aligned), framebuffer (above the
 * HHDM, 32-bit geometry), file (present; command line under 256 bytes), RSDP
 * (above the HHDM in every revision but 3, where it is physical). */
static bool ref_accepts(void)
{
    int64_t rev = ref_revision();
    if (rev < 0)
        return false;
    if (a.paging_mode && a.paging_mode->mode != LIMINE_PAGING_MODE_X86_64_4LVL)
        return false;
    if (!a.hhdm)
        return false;
    uint64_t h = a.hhdm->offset;
    if (h == 0 || h % 4096 || h < HIGHER_HALF)
        return false;
    const struct limine_memmap_response *m = a.memmap;
    if (!m || m->entry_count == 0 || m->entry_count > MEMMAP_MAX || !m->entries)
        return false;
    for (size_t i = 0; i < m->entry_count; i++) {
        const struct limine_memmap_entry *e = m->entries[i];
        if (!e || e->length == 0 || e->base + e->length < e->base)
            return false;
    }
    if (!a.executable_address || a.executable_address->physical_base % 4096)
        return false;
    bool bad;
    const struct limine_framebuffer *f = ref_fb(&bad);
    if (bad)
        return false;
    if (f && ((uint64_t)(uintptr_t)f->address < h || f->width > UINT32_MAX ||
              f->height > UINT32_MAX || f->pitch > UINT32_MAX))
        return false;
    if (a.executable_file) {
        const struct limine_file *file = a.executable_file->executable_file;
        if (!file || (file->cmdline && strlen(file->cmdline) >= BOOT_CMDLINE_MAX))
            return false;
    }
    if (a.rsdp && a.rsdp->address && rev != 3 && (uint64_t)(uintptr_t)a.rsdp->address < h)
        return false;
    const struct limine_module_response *mr = a.module;
    if (mr && mr->module_count) {
        if (mr->module_count > BOOT_MODULES_MAX || !mr->modules)
            return false;
        for (size_t i = 0; i < mr->module_count; i++) {
            char name[BOOT_MODULE_NAME_MAX];
            const struct limine_file *mf = mr->modules[i];
            if (!mf || (uint64_t)(uintptr_t)mf->address < h || !ref_module_name(mf, name))
                return false;
        }
    }
    return true;
}

static uint32_t ref_type(uint64_t t)
{
    static const uint32_t map[] = {MEM_USABLE, MEM_RESERVED, MEM_ACPI_RECLAIMABLE, MEM_ACPI_NVS,
                                   MEM_BAD, MEM_BOOTLOADER_RECLAIMABLE, MEM_KERNEL,
                                   MEM_FRAMEBUFFER, MEM_RESERVED_MAPPED};
    return t < 9 ? map[t] : MEM_RESERVED;
}

/* A prefix of src of at most size-1 bytes, as the labels are truncated. */
static bool is_label_of(const char *label, size_t size, const char *src)
{
    size_t n = strlen(src) < size - 1 ? strlen(src) : size - 1;
    return strlen(label) == n && memcmp(label, src, n) == 0;
}

static void check_fields(const struct boot_info *bi)
{
    const uint64_t *tag = a.base_revision_tag;
    uint64_t rev = (uint64_t)ref_revision();
    uint64_t h = a.hhdm->offset;
    FUZZ_CHECK(bi->protocol == BOOT_PROTO_LIMINE && bi->base_revision == rev &&
                   bi->hhdm_offset == h,
               "protocol, revision or HHDM");
    FUZZ_CHECK(bi->base_revision_asked == a.requested_revision &&
                   bi->base_revision_accepted == (tag[2] == 0) &&
                   bi->base_revision_named == (tag[1] != LIMINE_BASE_REVISION_MAGIC1),
               "revision asked, granted, named");
    char line[160];
    limine_revision_line(bi, line, sizeof(line));
    char want[64];
    snprintf(want, sizeof(want), "limine: base revision %llu in force (asked %llu",
             (unsigned long long)rev, (unsigned long long)a.requested_revision);
    FUZZ_CHECK(strncmp(line, want, strlen(want)) == 0, "revision line \"%s\"", line);
    FUZZ_CHECK(bi->memmap_count == a.memmap->entry_count, "memory map count");
    for (size_t i = 0; i < bi->memmap_count; i++) {
        const struct limine_memmap_entry *e = a.memmap->entries[i];
        const struct mem_region *r = &bi->memmap[i];
        FUZZ_CHECK(r->base == e->base && r->length == e->length && r->type == ref_type(e->type),
                   "memory map entry %zu", i);
    }
    FUZZ_CHECK(bi->kernel_phys_base == a.executable_address->physical_base &&
                   bi->kernel_virt_base == a.executable_address->virtual_base,
               "kernel base");
    bool bad;
    const struct limine_framebuffer *f = ref_fb(&bad);
    FUZZ_CHECK(bi->fb.present == (f != NULL), "framebuffer presence");
    if (f)
        FUZZ_CHECK(bi->fb.phys == (uint64_t)(uintptr_t)f->address - h &&
                       bi->fb.width == f->width && bi->fb.height == f->height &&
                       bi->fb.pitch == f->pitch && bi->fb.bpp == f->bpp &&
                       bi->fb.red_size == f->red_mask_size &&
                       bi->fb.red_shift == f->red_mask_shift &&
                       bi->fb.green_size == f->green_mask_size &&
                       bi->fb.green_shift == f->green_mask_shift &&
                       bi->fb.blue_size == f->blue_mask_size &&
                       bi->fb.blue_shift == f->blue_mask_shift,
                   "framebuffer fields");
    const struct limine_file *file = a.executable_file ? a.executable_file->executable_file : NULL;
    FUZZ_CHECK(strcmp(bi->cmdline, file && file->cmdline ? file->cmdline : "") == 0, "cmdline");
    bool elf = file && file->address && file->size;
    FUZZ_CHECK(bi->symbols.elf_file == (elf ? file->address : NULL) &&
                   bi->symbols.elf_file_size == (elf ? file->size : 0),
               "kernel file");
    uint64_t rsdp = a.rsdp ? (uint64_t)(uintptr_t)a.rsdp->address : 0;
    if (rsdp && rev != 3)
        rsdp -= h;
    FUZZ_CHECK(bi->rsdp == rsdp, "rsdp %#llx want %#llx", (unsigned long long)bi->rsdp,
               (unsigned long long)rsdp);
    enum firmware_type fw = FW_UNKNOWN;
    if (a.firmware_type && a.firmware_type->firmware_type <= 2)
        fw = (enum firmware_type[]){FW_BIOS, FW_UEFI32, FW_UEFI64}[a.firmware_type->firmware_type];
    FUZZ_CHECK(bi->firmware == fw, "firmware");
    const struct limine_bootloader_info_response *b = a.bootloader_info;
    FUZZ_CHECK(is_label_of(bi->bootloader_name, BOOT_NAME_MAX, b && b->name ? b->name : "unknown"),
               "bootloader name");
    FUZZ_CHECK(is_label_of(bi->bootloader_version, BOOT_NAME_MAX,
                           b && b->version ? b->version : ""),
               "bootloader version");
    size_t nmod = a.module ? a.module->module_count : 0;
    FUZZ_CHECK(bi->module_count == nmod, "module count %zu, want %zu", bi->module_count, nmod);
    for (size_t i = 0; i < nmod; i++) {
        const struct limine_file *mf = a.module->modules[i];
        char name[BOOT_MODULE_NAME_MAX];
        ref_module_name(mf, name);
        FUZZ_CHECK(bi->modules[i].phys == (uint64_t)(uintptr_t)mf->address - h &&
                       bi->modules[i].size == mf->size && strcmp(bi->modules[i].name, name) == 0,
                   "module %zu", i);
    }
}

/* The CPU list boot_info.h and limine.c promise for the MP response. None:
 * all zero. Else reported (capped at UINT32_MAX), BSP APIC ID and x2APIC
 * (response flag bit 0) as given, and the list walked in order: the first
 * NULL entry, or an APIC ID equal to one of a CPU already kept, makes it
 * unusable, and so do no CPUs, more than REF_MP_SANE_MAX, a NULL array, or
 * no entry with the BSP's APIC ID. A usable list keeps the BSP and the first
 * CPU_MAX - 1 others in list order, every handle its limine_mp_info, and
 * all_handles/all_count the whole array; a note says when CPUs were left
 * out, or why the list is unusable (count 0, all_handles NULL).
 * Duplicates only among CPUs beyond the cap are not looked for: limine.c
 * compares each CPU with those it keeps, and smp.c parks each left-out
 * handle whatever its ID. */
static void ref_cpus(struct boot_cpus *w)
{
    const struct limine_mp_response *r = a.mp;
    char why[96] = "";
    memset(w, 0, sizeof(*w));
    if (!r)
        return;
    w->reported = r->cpu_count > UINT32_MAX ? UINT32_MAX : (uint32_t)r->cpu_count;
    w->bsp_lapic_id = r->bsp_lapic_id;
    w->x2apic = r->flags & 1;
    bool bsp_seen = false;
    uint32_t n = 0, others = 0;
    if (r->cpu_count == 0)
        snprintf(why, sizeof(why), "MP response lists no CPUs");
    else if (r->cpu_count > REF_MP_SANE_MAX)
        snprintf(why, sizeof(why), "MP response claims %llu CPUs",
                 (unsigned long long)r->cpu_count);
    else if (!r->cpus)
        snprintf(why, sizeof(why), "MP response CPU array is NULL");
    for (size_t i = 0; !why[0] && r->cpus && i < r->cpu_count; i++) {
        const struct limine_mp_info *m = r->cpus[i];
        if (!m) {
            snprintf(why, sizeof(why), "MP response CPU %zu is NULL", i);
            break;
        }
        for (uint32_t j = 0; j < n && !why[0]; j++)
            if (w->cpu[j].lapic_id == m->lapic_id)
                snprintf(why, sizeof(why), "MP response lists APIC ID %u twice", m->lapic_id);
        if (why[0])
            break;
        bool bsp = m->lapic_id == r->bsp_lapic_id;
        if (bsp || others < CPU_MAX - 1)
            w->cpu[n++] = (struct boot_cpu){m->lapic_id, m->processor_id, (void *)m};
        others += !bsp;
        bsp_seen |= bsp;
    }
    if (!why[0] && !bsp_seen)
        snprintf(why, sizeof(why), "MP response does not list the BSP (APIC ID %u)",
                 r->bsp_lapic_id);
    char note[256] = "";
    if (why[0]) {
        snprintf(note, sizeof(note), "limine: %s; running on the bootstrap CPU only", why);
    } else {
        w->count = n;
        w->all_handles = (void *const *)r->cpus;
        w->all_count = r->cpu_count;
        if (r->cpu_count > n)
            snprintf(note, sizeof(note),
                     "limine: %llu CPUs reported, CPU_MAX is %d: using %u of them (the BSP and "
                     "the first %u others)",
                     (unsigned long long)r->cpu_count, CPU_MAX, n, n - 1);
    }
    /* Every note fits whole: the kernel's must not be cut short either. */
    FUZZ_CHECK(strlen(note) < sizeof(w->note), "reference note \"%s\" too long", note);
    strcpy(w->note, note);
}

/* bi->cpus equal to the reference, field by field (cpu[] up to count: what
 * lies beyond is not promised); every limine_mp_info as decoded. */
static void check_cpus(const struct boot_info *bi)
{
    static struct boot_cpus w;
    const struct boot_cpus *c = &bi->cpus;
    ref_cpus(&w);
    FUZZ_CHECK(c->count == w.count && c->reported == w.reported &&
                   c->bsp_lapic_id == w.bsp_lapic_id && c->x2apic == w.x2apic,
               "cpus: count %u reported %u bsp %u x2apic %d, want %u %u %u %d", c->count,
               c->reported, c->bsp_lapic_id, c->x2apic, w.count, w.reported, w.bsp_lapic_id,
               w.x2apic);
    for (uint32_t i = 0; i < w.count; i++)
        FUZZ_CHECK(c->cpu[i].lapic_id == w.cpu[i].lapic_id &&
                       c->cpu[i].processor_id == w.cpu[i].processor_id &&
                       c->cpu[i].start_handle == w.cpu[i].start_handle,
                   "cpus: cpu[%u] APIC ID %u UID %u, want %u %u", i, c->cpu[i].lapic_id,
                   c->cpu[i].processor_id, w.cpu[i].lapic_id, w.cpu[i].processor_id);
    FUZZ_CHECK(c->all_handles == w.all_handles && c->all_count == w.all_count,
               "cpus: all_handles/all_count");
    FUZZ_CHECK(strcmp(c->note, w.note) == 0, "cpus: note \"%s\", want \"%s\"", c->note, w.note);
    for (size_t i = 0; i < mp_decoded; i++)
        FUZZ_CHECK(memcmp(mp_info[i], &mp_shadow[i], sizeof(mp_shadow[i])) == 0,
                   "limine_mp_info %zu written by boot_from_limine", i);
}

static void mp_entry_a(struct limine_mp_info *m) { (void)m; }
static void mp_entry_b(struct limine_mp_info *m) { (void)m; }

/* Sends every CPU of a usable list somewhere, as smp.c does (kept ones to
 * an entry, the rest parked), each with its own argument: afterwards each
 * limine_mp_info holds exactly its own goto_address and extra_argument and
 * is otherwise as decoded. */
static void check_mp_goto(const struct boot_info *bi)
{
    const struct boot_cpus *c = &bi->cpus;
    if (c->count == 0)
        return;
    /* A usable list has no NULL entry: every one was decoded, in order. */
    FUZZ_CHECK(mp_decoded == c->all_count, "usable list of %llu CPUs, %zu decoded",
               (unsigned long long)c->all_count, mp_decoded);
    for (uint64_t i = 0; i < c->all_count; i++) {
        limine_goto_address entry = i % 2 ? mp_entry_b : mp_entry_a;
        limine_mp_goto(c->all_handles[i], entry, mp_goto_arg + i);
    }
    for (size_t i = 0; i < mp_decoded; i++) {
        struct limine_mp_info want = mp_shadow[i];
        want.goto_address = i % 2 ? mp_entry_b : mp_entry_a;
        want.extra_argument = mp_goto_arg + i;
        FUZZ_CHECK(memcmp(mp_info[i], &want, sizeof(want)) == 0,
                   "limine_mp_goto: CPU %zu holds goto %p arg %#llx, want %p %#llx", i,
                   (void *)(uintptr_t)mp_info[i]->goto_address,
                   (unsigned long long)mp_info[i]->extra_argument,
                   (void *)(uintptr_t)want.goto_address, (unsigned long long)want.extra_argument);
    }
}

static int cmp_region(const void *x, const void *y)
{
    const struct mem_region *p = x, *q = y;
    return p->base < q->base ? -1 : p->base > q->base;
}

/* [lo, hi) inside the union of bi's MEM_KERNEL entries (sorted and merged here). */
static bool ref_in_kernel_memory(const struct boot_info *bi, unsigned __int128 lo,
                                 unsigned __int128 hi)
{
    static struct mem_region k[MEMMAP_MAX];
    size_t n = 0;
    for (size_t i = 0; i < bi->memmap_count; i++)
        if (bi->memmap[i].type == MEM_KERNEL)
            k[n++] = bi->memmap[i];
    qsort(k, n, sizeof(k[0]), cmp_region);
    unsigned __int128 cur_lo = 0, cur_hi = 0;
    bool have = false;
    for (size_t i = 0; i <= n; i++) {
        if (i < n && have && k[i].base <= cur_hi) {
            unsigned __int128 e = (unsigned __int128)k[i].base + k[i].length;
            cur_hi = e > cur_hi ? e : cur_hi;
            continue;
        }
        if (have && lo >= cur_lo && hi <= cur_hi)
            return true;
        if (i < n) {
            cur_lo = k[i].base;
            cur_hi = (unsigned __int128)k[i].base + k[i].length;
            have = true;
        }
    }
    return false;
}

/* boot_info.h's module rules. */
static bool ref_modules_valid(const struct boot_info *bi)
{
    const unsigned __int128 top = (unsigned __int128)UINT64_MAX + 1;
    unsigned __int128 kb = bi->kernel_phys_base / 4096 * 4096;
    unsigned __int128 ke = ((unsigned __int128)bi->kernel_phys_base + bi->kernel_size + 4095) / 4096 * 4096;
    if (ke >= top - 4096) /* a wrapping kernel span is taken to reach the top */
        ke = top;
    for (size_t i = 0; i < bi->module_count; i++) {
        const struct boot_module *m = &bi->modules[i];
        unsigned __int128 lo = m->phys, hi = ((unsigned __int128)m->phys + m->size + 4095) / 4096 * 4096;
        if (m->size == 0 || m->phys % 4096 || hi >= top - 4096 + 1 ||
            (unsigned __int128)m->phys + m->size > UINT64_MAX - 4096)
            return false;
        if (!ref_in_kernel_memory(bi, lo, hi) || (lo < ke && kb < hi))
            return false;
        for (size_t j = 0; j < i; j++) {
            const struct boot_module *o = &bi->modules[j];
            unsigned __int128 olo = o->phys, ohi = ((unsigned __int128)o->phys + o->size + 4095) / 4096 * 4096;
            if ((lo < ohi && olo < hi) || strcmp(m->name, o->name) == 0)
                return false;
        }
    }
    return true;
}

/* boot_info.h's rules for boot_info_validate. */
static bool ref_valid(const struct boot_info *bi)
{
    if (bi->memmap_count == 0 || bi->memmap_count > MEMMAP_MAX)
        return false;
    /* usable memory besides the kernel image: at least 512 KiB */
    unsigned __int128 usable = 0;
    unsigned __int128 kb = bi->kernel_phys_base, ke = kb + bi->kernel_size;
    for (size_t i = 0; i < bi->memmap_count; i++) {
        const struct mem_region *r = &bi->memmap[i];
        if (r->length == 0 || r->base + r->length < r->base)
            return false;
        if (r->type == MEM_USABLE) {
            unsigned __int128 lo = r->base, hi = (unsigned __int128)r->base + r->length;
            unsigned __int128 olo = lo > kb ? lo : kb, ohi = hi < ke ? hi : ke;
            usable += (hi - lo) - (ohi > olo ? ohi - olo : 0);
        }
    }
    if (usable < KiB(512))
        return false;
    uint64_t h = bi->hhdm_offset;
    if (h == 0 || h % 4096 || h < HIGHER_HALF)
        return false;
    const struct boot_framebuffer *fb = &bi->fb;
    if (fb->present) {
        if (fb->width == 0 || fb->width > 16384 || fb->height == 0 || fb->height > 16384)
            return false;
        if (fb->bpp != 16 && fb->bpp != 24 && fb->bpp != 32)
            return false;
        if (fb->pitch < (uint64_t)fb->width * fb->bpp / 8 || fb->phys == 0)
            return false;
        if ((unsigned __int128)fb->phys + (uint64_t)fb->pitch * fb->height > UINT64_MAX)
            return false;
        if (fb->red_size + fb->red_shift > fb->bpp || fb->green_size + fb->green_shift > fb->bpp ||
            fb->blue_size + fb->blue_shift > fb->bpp)
            return false;
    }
    return bi->kernel_virt_base >= KERNEL_SPACE && bi->kernel_phys_base % 4096 == 0 &&
           ref_modules_valid(bi);
}

/* boot_find_module finds the first module of each name and nothing for a
 * name no module has; the names of the firmware and protocol are non-empty,
 * the unknown ones' only for unknown values. */
static void check_lookups(const struct boot_info *bi)
{
    for (size_t i = 0; i < bi->module_count; i++) {
        size_t first = 0;
        while (strcmp(bi->modules[first].name, bi->modules[i].name) != 0)
            first++;
        FUZZ_CHECK(boot_find_module(bi, bi->modules[i].name) == &bi->modules[first],
                   "boot_find_module(\"%s\")", bi->modules[i].name);
    }
    FUZZ_CHECK(boot_find_module(bi, "") == NULL, "boot_find_module(\"\") found a module");
    const char *fw = firmware_name(bi->firmware), *unknown = firmware_name(FW_UNKNOWN);
    FUZZ_CHECK(fw[0] && (strcmp(fw, unknown) == 0) == (bi->firmware == FW_UNKNOWN) &&
                   strcmp(firmware_name((enum firmware_type)99), unknown) == 0,
               "firmware_name(%d) \"%s\"", bi->firmware, fw);
    const char *proto = boot_protocol_name(bi->protocol);
    FUZZ_CHECK(proto[0] && strcmp(proto, boot_protocol_name(BOOT_PROTO_NONE)) != 0 &&
                   strcmp(proto, boot_protocol_name(BOOT_PROTO_MULTIBOOT2)) != 0 &&
                   strcmp(boot_protocol_name((enum boot_protocol)99),
                          boot_protocol_name(BOOT_PROTO_NONE)) == 0,
               "boot_protocol_name \"%s\"", proto);
}

static struct boot_info bi;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fuzz_in fi = {data, size};
    nallocs = 0;
    decode(&fi);

    fuzz_log_reset();
    const char *err = boot_from_limine(&bi, &a);
    bool want = ref_accepts();
    FUZZ_CHECK(!err == want, "boot_from_limine said \"%s\", the rules %s", err ? err : "ok",
               want ? "accept" : "refuse");
    if (err) {
        FUZZ_CHECK(strncmp(err, "limine: ", 8) == 0 && strlen(err) < 160 && !strchr(err, '\n'),
                   "error line \"%s\"", err);
    } else {
        check_fields(&bi);
        check_cpus(&bi);
        check_lookups(&bi);
        FUZZ_CHECK(bi.kernel_size == 0, "kernel_size not left to the caller");
        bi.kernel_size = kernel_size; /* as the kernel sets it from its linker symbols */
        const char *verr = boot_info_validate(&bi);
        FUZZ_CHECK(!verr == ref_valid(&bi), "boot_info_validate said \"%s\"", verr ? verr : "ok");
        FUZZ_CHECK(!verr || (strncmp(verr, "boot info: ", 11) == 0 && strlen(verr) < 160),
                   "validate line \"%s\"", verr);
        check_mp_goto(&bi);
    }
    FUZZ_CHECK(boot_from_limine(&bi, NULL) != NULL, "NULL answers accepted");
    for (size_t i = 0; i < nallocs; i++)
        free(allocs[i]);
    return 0;
}
