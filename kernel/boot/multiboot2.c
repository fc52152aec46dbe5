/* Multiboot2 boot information -> struct boot_info. Portable: the kernel runs it
 * on what GRUB left in memory, the host tests on synthetic blocks. The block
 * is walked once with every size checked against total_size; tags are then
 * read in a fixed order. Where a tag type repeats, the first one counts.
 * Fields are read with memcpy: nothing assumes more alignment than the
 * 8-byte tag boundaries. */
#include "boot/multiboot2.h"

#include "lib/printf.h"
#include "lib/string.h"

/* The section headers of the ELF sections tag, compacted to 64 bytes each. */
static struct mb2_elf64_shdr mb2_shdrs[MB2_MAX_SECTION_HEADERS];

/* A tag found during the walk: where it starts and how long it says it is. */
struct found {
    const uint8_t *p;
    uint32_t size;
};

struct tags {
    struct found cmdline, name, mmap, fb, elf, acpi_old, acpi_new, load_base;
    bool efi32, efi64;
    struct found modules[BOOT_MODULES_MAX];
    uint32_t module_tags; /* every module tag seen, those beyond the array too */
};

static void remember(struct found *f, const uint8_t *p, uint32_t size)
{
    if (!f->p)
        *f = (struct found){ p, size };
}

static const char *walk(const uint8_t *base, uint32_t total, struct tags *t)
{
    uint64_t off = sizeof(struct mb2_info_header);
    unsigned n = 0;

    while (off + sizeof(struct mb2_tag) <= total) {
        struct mb2_tag tag;
        memcpy(&tag, base + off, sizeof(tag));
        if (tag.size < sizeof(struct mb2_tag))
            return boot_error("multiboot2: tag %u (type %u) size %u < 8", n, tag.type, tag.size);
        if (tag.size > total - off)
            return boot_error("multiboot2: tag %u (type %u) size %u overruns total_size %u", n,
                              tag.type, tag.size, total);
        const uint8_t *p = base + off;
        switch (tag.type) {
        case MB2_TAG_END: return NULL;
        case MB2_TAG_CMDLINE: remember(&t->cmdline, p, tag.size); break;
        case MB2_TAG_BOOTLOADER_NAME: remember(&t->name, p, tag.size); break;
        case MB2_TAG_MMAP: remember(&t->mmap, p, tag.size); break;
        case MB2_TAG_FRAMEBUFFER: remember(&t->fb, p, tag.size); break;
        case MB2_TAG_ELF_SECTIONS: remember(&t->elf, p, tag.size); break;
        case MB2_TAG_ACPI_OLD: remember(&t->acpi_old, p, tag.size); break;
        case MB2_TAG_ACPI_NEW: remember(&t->acpi_new, p, tag.size); break;
        case MB2_TAG_LOAD_BASE_ADDR: remember(&t->load_base, p, tag.size); break;
        case MB2_TAG_EFI32: t->efi32 = true; break;
        case MB2_TAG_EFI64: t->efi64 = true; break;
        case MB2_TAG_MODULE:
            if (t->module_tags < BOOT_MODULES_MAX)
                t->modules[t->module_tags] = (struct found){ p, tag.size };
            t->module_tags++;
            break;
        default: break; /* EFI memory map, ...: not needed here */
        }
        off += ALIGN_UP((uint64_t)tag.size, 8);
        n++;
    }
    return boot_error("multiboot2: no end tag within total_size %u", total);
}

static uint32_t convert_type(uint32_t t)
{
    switch (t) {
    case MB2_MEMORY_AVAILABLE: return MEM_USABLE;
    case MB2_MEMORY_ACPI_RECLAIMABLE: return MEM_ACPI_RECLAIMABLE;
    case MB2_MEMORY_NVS: return MEM_ACPI_NVS;
    case MB2_MEMORY_BADRAM: return MEM_BAD;
    default: return MEM_RESERVED;
    }
}

static const char *read_mmap(struct boot_info *out, const struct found *f)
{
    struct mb2_tag_mmap h;
    if (!f->p)
        return "multiboot2: no memory map tag";
    if (f->size < sizeof(h))
        return boot_error("multiboot2: memory map tag size %u < %zu", f->size, sizeof(h));
    memcpy(&h, f->p, sizeof(h));
    if (h.entry_size < sizeof(struct mb2_mmap_entry))
        return boot_error("multiboot2: memory map entry_size %u < %zu", h.entry_size,
                          sizeof(struct mb2_mmap_entry));
    uint32_t count = (f->size - (uint32_t)sizeof(h)) / h.entry_size;
    if (count > MB2_MEMMAP_MAX)
        return boot_error("multiboot2: too many memory map entries (%u > %d)", count,
                          MB2_MEMMAP_MAX);

    for (uint32_t i = 0; i < count; i++) {
        struct mb2_mmap_entry e;
        memcpy(&e, f->p + sizeof(h) + (uint64_t)i * h.entry_size, sizeof(e));
        if (e.length == 0)
            continue; /* some firmware lists empty ranges: harmless */
        const char *err = boot_check_region("multiboot2", i, e.base, e.length);
        if (err)
            return err;
        out->memmap[out->memmap_count++] =
            (struct mem_region){ e.base, e.length, convert_type(e.type) };
    }
    if (out->memmap_count == 0)
        return "multiboot2: memory map has no entries";
    return NULL;
}

/* The string in a type 1 or 2 tag, or NULL when it has no NUL inside the tag. */
static const char *tag_string(const struct found *f)
{
    const char *s = (const char *)f->p + sizeof(struct mb2_tag);
    for (uint32_t i = 0; i < f->size - sizeof(struct mb2_tag); i++)
        if (s[i] == 0)
            return s;
    return NULL;
}

static const char *read_cmdline(struct boot_info *out, const struct found *f)
{
    if (!f->p)
        return NULL;
    const char *s = tag_string(f);
    if (!s)
        return "multiboot2: command line not NUL-terminated";
    size_t len = strlen(s);
    if (len >= sizeof(out->cmdline))
        return boot_error("multiboot2: command line longer than %d bytes", BOOT_CMDLINE_MAX - 1);
    memcpy(out->cmdline, s, len + 1);
    return NULL;
}

/* Copies up to size-1 bytes of s (stopping at stop or NUL); returns where it stopped. */
static const char *copy_until(char *dst, size_t size, const char *s, char stop)
{
    size_t i = 0;
    for (; *s && *s != stop; s++)
        if (i + 1 < size)
            dst[i++] = *s;
    dst[i] = 0;
    return s;
}

/* "GRUB 2.12" -> name "GRUB", version "2.12" (truncated to fit: labels only). */
static const char *read_name(struct boot_info *out, const struct found *f)
{
    const char *s = "unknown";
    if (f->p && !(s = tag_string(f)))
        return "multiboot2: bootloader name not NUL-terminated";
    const char *rest = copy_until(out->bootloader_name, sizeof(out->bootloader_name), s, ' ');
    while (*rest == ' ')
        rest++;
    copy_until(out->bootloader_version, sizeof(out->bootloader_version), rest, 0);
    return NULL;
}

static const char *read_framebuffer(struct boot_info *out, const struct found *f)
{
    struct mb2_tag_framebuffer fb;
    if (!f->p)
        return NULL;
    if (f->size < MB2_FRAMEBUFFER_COMMON_SIZE)
        return boot_error("multiboot2: framebuffer tag size %u < %u", f->size,
                          MB2_FRAMEBUFFER_COMMON_SIZE);
    memset(&fb, 0, sizeof(fb));
    memcpy(&fb, f->p, MB2_FRAMEBUFFER_COMMON_SIZE);
    if (fb.fb_type != MB2_FRAMEBUFFER_TYPE_RGB)
        return NULL; /* EGA text or indexed colour: no pixels for us */
    if (f->size < MB2_FRAMEBUFFER_RGB_SIZE)
        return boot_error("multiboot2: RGB framebuffer tag size %u < %u", f->size,
                          MB2_FRAMEBUFFER_RGB_SIZE);
    memcpy(&fb, f->p, MB2_FRAMEBUFFER_RGB_SIZE);
    if (fb.bpp != 16 && fb.bpp != 24 && fb.bpp != 32)
        return NULL; /* a depth we cannot draw: run without a screen */
    out->fb = (struct boot_framebuffer){
        .present = true,
        .phys = fb.addr,
        .width = fb.width,
        .height = fb.height,
        .pitch = fb.pitch,
        .bpp = fb.bpp,
        .red_size = fb.red_mask_size,
        .red_shift = fb.red_field_position,
        .green_size = fb.green_mask_size,
        .green_shift = fb.green_field_position,
        .blue_size = fb.blue_mask_size,
        .blue_shift = fb.blue_field_position,
    };
    /* Firmware maps may call the framebuffer RAM (or leave it out): say what
     * it is, so its frames are never handed out. (Limine's map says it
     * itself.) A size that wraps is left to boot_info_validate to report. */
    uint64_t bytes = (uint64_t)fb.pitch * fb.height;
    paddr_t base = ALIGN_DOWN(fb.addr, PAGE_SIZE);
    if (bytes && fb.addr + bytes > fb.addr && ALIGN_UP(fb.addr + bytes, PAGE_SIZE) > base)
        boot_add_region(out, base, ALIGN_UP(fb.addr + bytes, PAGE_SIZE) - base, MEM_FRAMEBUFFER);
    return NULL;
}

static const char *read_elf_sections(struct boot_info *out, const struct found *f,
                                     uint64_t phys_to_virt)
{
    struct mb2_tag_elf_sections h;
    if (!f->p)
        return NULL;
    if (f->size < sizeof(h))
        return boot_error("multiboot2: ELF sections tag size %u < %zu", f->size, sizeof(h));
    memcpy(&h, f->p, sizeof(h));
    if (h.num == 0)
        return NULL;
    if (h.entsize < sizeof(struct mb2_elf64_shdr))
        return boot_error("multiboot2: ELF section header size %u < %zu", h.entsize,
                          sizeof(struct mb2_elf64_shdr));
    if (h.num > MB2_MAX_SECTION_HEADERS)
        return boot_error("multiboot2: too many ELF section headers (%u > %d)", h.num,
                          MB2_MAX_SECTION_HEADERS);
    if ((uint64_t)h.num * h.entsize > f->size - sizeof(h))
        return boot_error(
            "multiboot2: ELF sections tag size %u too small for %u headers of %u bytes", f->size,
            h.num, h.entsize);
    if (h.shndx >= h.num)
        return boot_error("multiboot2: ELF string table index %u >= %u sections", h.shndx, h.num);
    for (uint32_t i = 0; i < h.num; i++)
        memcpy(&mb2_shdrs[i], f->p + sizeof(h) + (uint64_t)i * h.entsize,
               sizeof(struct mb2_elf64_shdr));
    out->symbols.shdrs = mb2_shdrs;
    out->symbols.shnum = h.num;
    out->symbols.shentsize = sizeof(struct mb2_elf64_shdr);
    out->symbols.shstrndx = h.shndx;
    out->symbols.sh_addr_to_virt = phys_to_virt;
    return NULL;
}

/* The module tags -> out->modules; each module's pages become MEM_KERNEL. */
static const char *read_modules(struct boot_info *out, const struct tags *t)
{
    if (t->module_tags > BOOT_MODULES_MAX)
        return boot_error("multiboot2: %u modules, at most %d are supported", t->module_tags,
                          BOOT_MODULES_MAX);
    for (uint32_t i = 0; i < t->module_tags; i++) {
        const struct found *f = &t->modules[i];
        struct mb2_tag_module mt;
        if (f->size < sizeof(mt) + 1)
            return boot_error("multiboot2: module tag %u size %u < %zu", i, f->size,
                              sizeof(mt) + 1);
        memcpy(&mt, f->p, sizeof(mt));
        const char *s = (const char *)f->p + sizeof(mt);
        if (strnlen(s, f->size - sizeof(mt)) == f->size - sizeof(mt))
            return boot_error("multiboot2: module %u string not NUL-terminated", i);
        if (mt.mod_end < mt.mod_start)
            return boot_error("multiboot2: module %u ends (0x%x) before it starts (0x%x)", i,
                              mt.mod_end, mt.mod_start);
        struct boot_module *m = &out->modules[i];
        if (!boot_module_name(m->name, s, NULL))
            return boot_error("multiboot2: module %u name empty, longer than %d bytes or not "
                              "printable ASCII", i, BOOT_MODULE_NAME_MAX - 1);
        m->phys = mt.mod_start;
        m->size = (uint64_t)mt.mod_end - mt.mod_start;
        if (!m->size)
            continue; /* no pages of its own, even unaligned (validation refuses it) */
        paddr_t lo = ALIGN_DOWN(m->phys, PAGE_SIZE), hi = ALIGN_UP(m->phys + m->size, PAGE_SIZE);
        if (!boot_range_in_map(out, lo, hi - lo, 1u << MEM_USABLE))
            return boot_error("multiboot2: module %u \"%s\" at 0x%llx + %llu bytes is not in "
                              "usable memory", i, m->name, (unsigned long long)m->phys,
                              (unsigned long long)m->size);
        /* The map calls it usable: say what it is (the kernel image gets the same). */
        boot_add_region(out, lo, hi - lo, MEM_KERNEL);
    }
    out->module_count = t->module_tags;
    return NULL;
}

/* Copies the RSDP out of tag 15 (ACPI 2.0+) or else tag 14 (ACPI 1.0). */
static const char *read_rsdp(struct boot_info *out, const struct found *new_tag,
                             const struct found *old_tag)
{
    const struct found *f = new_tag->p ? new_tag : old_tag;
    uint32_t need = new_tag->p ? MB2_RSDP_V2_SIZE : MB2_RSDP_V1_SIZE;
    if (!f->p)
        return NULL;
    if (f->size - sizeof(struct mb2_tag) < need)
        return boot_error("multiboot2: ACPI %s RSDP tag size %u too small",
                          new_tag->p ? "new" : "old", f->size);
    if (memcmp(f->p + sizeof(struct mb2_tag), "RSD PTR ", 8) != 0)
        return "multiboot2: ACPI RSDP tag without the \"RSD PTR \" signature";
    memcpy(out->rsdp_copy, f->p + sizeof(struct mb2_tag), need);
    out->rsdp_is_copy = true;
    return NULL;
}

const char *boot_from_multiboot2(struct boot_info *out, uint32_t magic, const void *info,
                                 uint64_t phys_to_virt)
{
    struct mb2_info_header h;
    struct tags t;
    const char *err;

    memset(out, 0, sizeof(*out));
    memset(&t, 0, sizeof(t));
    out->protocol = BOOT_PROTO_MULTIBOOT2;
    if (magic != MB2_BOOTLOADER_MAGIC)
        return boot_error("multiboot2: bad magic 0x%08x (expected 0x%08x)", magic,
                          MB2_BOOTLOADER_MAGIC);
    if (!info)
        return "multiboot2: no boot information";
    if (!IS_ALIGNED((uintptr_t)info, 8))
        return boot_error("multiboot2: boot information at %p not 8-byte aligned", info);
    memcpy(&h, info, sizeof(h));
    if (h.total_size < sizeof(h) + sizeof(struct mb2_tag))
        return boot_error("multiboot2: total_size %u too small", h.total_size);
    if (h.total_size > MB2_INFO_MAX_SIZE)
        return boot_error("multiboot2: total_size %u larger than %llu", h.total_size,
                          (unsigned long long)MB2_INFO_MAX_SIZE);

    if ((err = walk(info, h.total_size, &t)))
        return err;
    if ((err = read_mmap(out, &t.mmap)))
        return err;
    if ((err = read_cmdline(out, &t.cmdline)))
        return err;
    if ((err = read_name(out, &t.name)))
        return err;
    if ((err = read_framebuffer(out, &t.fb)))
        return err;
    if ((err = read_elf_sections(out, &t.elf, phys_to_virt)))
        return err;
    if ((err = read_rsdp(out, &t.acpi_new, &t.acpi_old)))
        return err;
    if ((err = read_modules(out, &t)))
        return err;
    if (t.load_base.p) {
        struct mb2_tag_load_base_addr lb;
        if (t.load_base.size < sizeof(lb))
            return boot_error("multiboot2: image load base tag size %u < %zu", t.load_base.size,
                              sizeof(lb));
        memcpy(&lb, t.load_base.p, sizeof(lb));
        out->kernel_phys_base = lb.load_base_addr;
    }
    out->firmware = t.efi64 ? FW_UEFI64 : t.efi32 ? FW_UEFI32 : FW_BIOS;
    return NULL;
}
