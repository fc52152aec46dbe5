/* Limine answers -> struct boot_info. Portable: the kernel runs it on the real
 * responses, the host tests on synthetic ones. Nothing here trusts the
 * bootloader: every count, address and revision is checked before use. */
#include "boot/limine.h"

#include "lib/printf.h"
#include "lib/string.h"

/* Copies at most size-1 bytes of a bootloader string (never reads past its NUL
 * or past size-1 bytes); returns false when it did not fit. */
static bool copy_str(char *dst, size_t size, const char *src)
{
    size_t i = 0;
    for (; i + 1 < size && src[i]; i++)
        dst[i] = src[i];
    dst[i] = 0;
    return src[i] == 0;
}

/* Reads the base-revision tag: fills out->base_revision (the revision in
 * force) and the asked/accepted/named fields, or returns an error line.
 * Word [2] is 0 when the bootloader granted the revision asked for, else left
 * as we wrote it; word [1] holds the revision used when the bootloader is
 * recent enough to say (revision 3+), else still the magic. */
static const char *check_base_revision(struct boot_info *out, const struct limine_answers *a)
{
    const uint64_t *tag = a->base_revision_tag;
    uint64_t asked = a->requested_revision;
    bool named = tag[1] != LIMINE_BASE_REVISION_MAGIC1;
    bool accepted = tag[2] == 0;

    if (tag[0] != LIMINE_BASE_REVISION_MAGIC0)
        return boot_error("limine: base revision tag corrupted (word 0 = 0x%llx)",
                          (unsigned long long)tag[0]);
    if (!accepted && tag[2] != asked)
        return boot_error("limine: base revision tag corrupted (word 2 = 0x%llx, asked %llu)",
                          (unsigned long long)tag[2], (unsigned long long)asked);
    uint64_t rev;
    if (named)
        rev = tag[1];
    else if (accepted)
        rev = asked;
    else /* before revision 3, and less than asked (so asked > 0: word 2 == asked) */
        rev = MIN(asked - 1, (uint64_t)LIMINE_UNNAMED_FALLBACK_REVISION);
    if (rev > LIMINE_NEWEST_KNOWN_BASE_REVISION)
        return boot_error("limine: the bootloader used base revision %llu, newer than the %d "
                          "this kernel knows",
                          (unsigned long long)rev, LIMINE_NEWEST_KNOWN_BASE_REVISION);
    out->base_revision = rev;
    out->base_revision_asked = asked;
    out->base_revision_accepted = accepted;
    out->base_revision_named = named;
    return NULL;
}

const char *limine_revision_line(const struct boot_info *bi, char *buf, size_t size)
{
    unsigned long long rev = bi->base_revision, asked = bi->base_revision_asked;
    const char *how;
    if (bi->base_revision_accepted && rev == asked)
        how = bi->base_revision_named ? "" : "; the bootloader did not name the revision used";
    else if (bi->base_revision_accepted)
        how = ": granted, yet the bootloader names another";
    else if (bi->base_revision_named)
        how = ": the bootloader supports less";
    else
        how = ": the bootloader supports less; it does not name its revision, 0-2 read "
              "alike here";
    ksnprintf(buf, size, "limine: base revision %llu in force (asked %llu%s)", rev, asked, how);
    return buf;
}

static uint32_t convert_type(uint64_t t)
{
    switch (t) {
    case LIMINE_MEMMAP_USABLE: return MEM_USABLE;
    case LIMINE_MEMMAP_RESERVED: return MEM_RESERVED;
    case LIMINE_MEMMAP_ACPI_RECLAIMABLE: return MEM_ACPI_RECLAIMABLE;
    case LIMINE_MEMMAP_ACPI_NVS: return MEM_ACPI_NVS;
    case LIMINE_MEMMAP_BAD_MEMORY: return MEM_BAD;
    case LIMINE_MEMMAP_BOOTLOADER_RECLAIMABLE: return MEM_BOOTLOADER_RECLAIMABLE;
    case LIMINE_MEMMAP_EXECUTABLE_AND_MODULES: return MEM_KERNEL;
    case LIMINE_MEMMAP_FRAMEBUFFER: return MEM_FRAMEBUFFER;
    case LIMINE_MEMMAP_RESERVED_MAPPED: return MEM_RESERVED_MAPPED;
    default: return MEM_RESERVED; /* anything newer: keep out of it */
    }
}

static const char *convert_memmap(struct boot_info *out, const struct limine_memmap_response *m)
{
    if (!m)
        return "limine: no memory map response";
    if (m->entry_count == 0)
        return "limine: memory map is empty";
    if (m->entry_count > MEMMAP_MAX)
        return boot_error("limine: too many memory map entries (%llu > %d)",
                          (unsigned long long)m->entry_count, MEMMAP_MAX);
    if (!m->entries)
        return "limine: memory map entry array is NULL";
    for (size_t i = 0; i < m->entry_count; i++) {
        const struct limine_memmap_entry *e = m->entries[i];
        if (!e)
            return boot_error("limine: memory map entry %zu is NULL", i);
        const char *err = boot_check_region("limine", i, e->base, e->length);
        if (err)
            return err;
        out->memmap[i] = (struct mem_region){ e->base, e->length, convert_type(e->type) };
    }
    out->memmap_count = m->entry_count;
    return NULL;
}

static const char *convert_hhdm(struct boot_info *out, const struct limine_hhdm_response *h)
{
    if (!h)
        return "limine: no HHDM response";
    const char *err = boot_check_hhdm("limine", h->offset);
    if (err)
        return err;
    out->hhdm_offset = h->offset;
    return NULL;
}

/* Takes the first RGB framebuffer with a depth we can draw (16/24/32 bpp);
 * none at all is fine (fb.present stays false). */
static const char *convert_framebuffer(struct boot_info *out,
                                       const struct limine_framebuffer_response *r)
{
    if (!r || r->framebuffer_count == 0)
        return NULL;
    if (!r->framebuffers)
        return "limine: framebuffer array is NULL";
    for (size_t i = 0; i < r->framebuffer_count; i++) {
        const struct limine_framebuffer *f = r->framebuffers[i];
        if (!f)
            return boot_error("limine: framebuffer %zu is NULL", i);
        if (f->memory_model != LIMINE_FRAMEBUFFER_RGB ||
            (f->bpp != 16 && f->bpp != 24 && f->bpp != 32))
            continue;
        uint64_t va = (uint64_t)(uintptr_t)f->address;
        if (va < out->hhdm_offset)
            return boot_error("limine: framebuffer %zu address 0x%llx below the HHDM", i,
                              (unsigned long long)va);
        if (f->width > UINT32_MAX || f->height > UINT32_MAX || f->pitch > UINT32_MAX)
            return boot_error("limine: framebuffer %zu geometry %llux%llu pitch %llu out of range",
                              i, (unsigned long long)f->width, (unsigned long long)f->height,
                              (unsigned long long)f->pitch);
        out->fb = (struct boot_framebuffer){
            .present = true,
            .phys = va - out->hhdm_offset,
            .width = (uint32_t)f->width,
            .height = (uint32_t)f->height,
            .pitch = (uint32_t)f->pitch,
            .bpp = f->bpp,
            .red_size = f->red_mask_size,
            .red_shift = f->red_mask_shift,
            .green_size = f->green_mask_size,
            .green_shift = f->green_mask_shift,
            .blue_size = f->blue_mask_size,
            .blue_shift = f->blue_mask_shift,
        };
        return NULL;
    }
    return NULL;
}

/* The kernel ELF (for symbols) and the command line that came with it. */
static const char *convert_executable_file(struct boot_info *out,
                                           const struct limine_executable_file_response *r)
{
    if (!r)
        return NULL;
    const struct limine_file *f = r->executable_file;
    if (!f)
        return "limine: executable file response without a file";
    if (f->address && f->size) {
        out->symbols.elf_file = f->address;
        out->symbols.elf_file_size = f->size;
    }
    if (f->cmdline && !copy_str(out->cmdline, sizeof(out->cmdline), f->cmdline))
        return boot_error("limine: command line longer than %d bytes", BOOT_CMDLINE_MAX - 1);
    return NULL;
}

static const char *convert_executable_address(struct boot_info *out,
                                              const struct limine_executable_address_response *r)
{
    if (!r)
        return "limine: no executable address response";
    if (!IS_ALIGNED(r->physical_base, PAGE_SIZE))
        return boot_error("limine: kernel physical base 0x%llx not 4 KiB aligned",
                          (unsigned long long)r->physical_base);
    out->kernel_phys_base = r->physical_base;
    out->kernel_virt_base = r->virtual_base;
    return NULL;
}

/* The module response -> out->modules (addresses made physical). A NULL
 * response: no modules. */
static const char *convert_modules(struct boot_info *out, const struct limine_module_response *r)
{
    if (!r || r->module_count == 0)
        return NULL;
    if (r->module_count > BOOT_MODULES_MAX)
        return boot_error("limine: %llu modules, at most %d are supported",
                          (unsigned long long)r->module_count, BOOT_MODULES_MAX);
    if (!r->modules)
        return "limine: module array is NULL";
    for (size_t i = 0; i < r->module_count; i++) {
        const struct limine_file *f = r->modules[i];
        if (!f)
            return boot_error("limine: module %zu is NULL", i);
        uint64_t va = (uint64_t)(uintptr_t)f->address;
        if (va < out->hhdm_offset)
            return boot_error("limine: module %zu address 0x%llx below the HHDM", i,
                              (unsigned long long)va);
        struct boot_module *m = &out->modules[i];
        if (!boot_module_name(m->name, f->cmdline, f->path))
            return boot_error("limine: module %zu name empty, longer than %d bytes or not "
                              "printable ASCII", i, BOOT_MODULE_NAME_MAX - 1);
        m->phys = va - out->hhdm_offset;
        m->size = f->size;
    }
    out->module_count = r->module_count;
    return NULL;
}

/* Base revision 3 gives the RSDP as a physical address, every other one as an
 * HHDM pointer. */
static const char *convert_rsdp(struct boot_info *out, const struct limine_rsdp_response *r)
{
    if (!r || !r->address)
        return NULL;
    uint64_t addr = (uint64_t)(uintptr_t)r->address;
    if (out->base_revision != 3) {
        if (addr < out->hhdm_offset)
            return boot_error("limine: RSDP address 0x%llx below the HHDM",
                              (unsigned long long)addr);
        addr -= out->hhdm_offset;
    }
    out->rsdp = addr;
    return NULL;
}

static void convert_firmware(struct boot_info *out, const struct limine_firmware_type_response *r)
{
    out->firmware = FW_UNKNOWN;
    if (!r)
        return;
    switch (r->firmware_type) {
    case LIMINE_FIRMWARE_TYPE_X86BIOS: out->firmware = FW_BIOS; break;
    case LIMINE_FIRMWARE_TYPE_UEFI32: out->firmware = FW_UEFI32; break;
    case LIMINE_FIRMWARE_TYPE_UEFI64: out->firmware = FW_UEFI64; break;
    default: break;
    }
}

static void convert_bootloader_info(struct boot_info *out,
                                    const struct limine_bootloader_info_response *r)
{
    /* Too-long names are truncated: they only label log lines. */
    copy_str(out->bootloader_name, sizeof(out->bootloader_name),
             r && r->name ? r->name : "unknown");
    if (r && r->version)
        copy_str(out->bootloader_version, sizeof(out->bootloader_version), r->version);
}

/* Bounds the walk of a CPU list whatever cpu_count claims: more entries
 * than this is not a machine, it is a corrupted response. */
#define LIMINE_MP_SANE_MAX 65536

/* A malformed list: no CPU is started, the kernel runs on the BSP alone. */
static void mp_unusable(struct boot_cpus *c, const char *why)
{
    c->count = 0;
    ksnprintf(c->note, sizeof(c->note), "limine: %s; running on the bootstrap CPU only", why);
}

/* The MP response -> out->cpus. Never fatal (one CPU always works): a
 * malformed list leaves count 0 with a note; more than CPU_MAX CPUs keeps
 * the BSP and the first CPU_MAX - 1 others, with a note. */
static void convert_mp(struct boot_info *out, const struct limine_mp_response *r)
{
    struct boot_cpus *c = &out->cpus;
    char why[80];
    if (!r)
        return; /* no MP support in the loader: one CPU, nothing to say */
    c->reported = r->cpu_count > UINT32_MAX ? UINT32_MAX : (uint32_t)r->cpu_count;
    c->bsp_lapic_id = r->bsp_lapic_id;
    c->x2apic = (r->flags & LIMINE_MP_X2APIC) != 0;
    if (r->cpu_count == 0) {
        mp_unusable(c, "MP response lists no CPUs");
        return;
    }
    if (r->cpu_count > LIMINE_MP_SANE_MAX) {
        ksnprintf(why, sizeof(why), "MP response claims %llu CPUs",
                  (unsigned long long)r->cpu_count);
        mp_unusable(c, why);
        return;
    }
    if (!r->cpus) {
        mp_unusable(c, "MP response CPU array is NULL");
        return;
    }
    bool bsp_seen = false;
    uint32_t n = 0;
    for (size_t i = 0; i < r->cpu_count; i++) {
        struct limine_mp_info *m = r->cpus[i];
        if (!m) {
            ksnprintf(why, sizeof(why), "MP response CPU %zu is NULL", i);
            mp_unusable(c, why);
            return;
        }
        bool bsp = m->lapic_id == r->bsp_lapic_id;
        for (uint32_t j = 0; j < n; j++) {
            if (c->cpu[j].lapic_id == m->lapic_id) {
                ksnprintf(why, sizeof(why), "MP response lists APIC ID %u twice", m->lapic_id);
                mp_unusable(c, why);
                return;
            }
        }
        /* Room for an AP only while a slot stays free for the BSP. */
        if (bsp || n + (bsp_seen ? 0 : 1) < CPU_MAX)
            c->cpu[n++] = (struct boot_cpu){m->lapic_id, m->processor_id, m};
        bsp_seen |= bsp;
    }
    if (!bsp_seen) {
        ksnprintf(why, sizeof(why), "MP response does not list the BSP (APIC ID %u)",
                  r->bsp_lapic_id);
        mp_unusable(c, why);
        return;
    }
    c->count = n;
    c->all_handles = (void *const *)r->cpus;
    c->all_count = r->cpu_count;
    if (r->cpu_count > n)
        ksnprintf(c->note, sizeof(c->note),
                  "limine: %llu CPUs reported, CPU_MAX is %d: using %u of them (the BSP and "
                  "the first %u others)",
                  (unsigned long long)r->cpu_count, CPU_MAX, n, n - 1);
}

void limine_mp_goto(void *handle, limine_goto_address entry, uint64_t arg)
{
    struct limine_mp_info *m = handle;
    __atomic_store_n(&m->extra_argument, arg, __ATOMIC_RELAXED);
    __atomic_store_n(&m->goto_address, entry, __ATOMIC_RELEASE);
}

const char *boot_from_limine(struct boot_info *out, const struct limine_answers *a)
{
    const char *err;

    memset(out, 0, sizeof(*out));
    out->protocol = BOOT_PROTO_LIMINE;
    if (!a)
        return "limine: no answers";
    if ((err = check_base_revision(out, a)))
        return err;

    /* We ask for 4-level paging; everything after us assumes it. */
    if (a->paging_mode && a->paging_mode->mode != LIMINE_PAGING_MODE_X86_64_4LVL)
        return boot_error("limine: paging mode %llu enabled, only 4-level paging is supported",
                          (unsigned long long)a->paging_mode->mode);

    if ((err = convert_hhdm(out, a->hhdm)))
        return err;
    if ((err = convert_memmap(out, a->memmap)))
        return err;
    if ((err = convert_executable_address(out, a->executable_address)))
        return err;
    if ((err = convert_framebuffer(out, a->framebuffer)))
        return err;
    if ((err = convert_executable_file(out, a->executable_file)))
        return err;
    if ((err = convert_rsdp(out, a->rsdp)))
        return err;
    if ((err = convert_modules(out, a->module)))
        return err;
    convert_firmware(out, a->firmware_type);
    convert_bootloader_info(out, a->bootloader_info);
    convert_mp(out, a->mp);
    return NULL;
}
