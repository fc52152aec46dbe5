/* Fuzz target: Multiboot2 boot information (kernel/boot/multiboot2.c), then
 * what main does with the result: boot_add_region for the kernel image,
 * boot_info_validate (kernel/boot/boot_info.c) and the memory-map sanitizer.
 *
 * Input: u8 mode, u64 phys_to_virt, then the information block itself.
 *   mode bit 0: wrong magic (the next u32 is passed instead)
 *   mode bit 1: pass the block 4 bytes off 8-byte alignment
 *   mode bit 2: pass NULL
 * The block's total_size is trusted by the parser (it has nothing else to go
 * by), so a total_size beyond the bytes we have is cut to them; the block
 * then sits in a heap buffer of exactly total_size bytes, so ASan reports any
 * read past it.
 *
 * Checked: errors are one "multiboot2: ..." line; on success the memory map,
 * command line, RSDP and load base equal what an independent walk of the tags
 * written here finds (the first tag of each type counts), every module tag
 * gives a module (start, size, name) and a MEM_KERNEL region over its pages
 * after the framebuffer's, strings are terminated, a block the walk finds
 * malformed is never accepted. */
#include "fuzz.h"

#include "boot/boot_info.h"
#include "boot/multiboot2.h"
#include "mm/memmap.h"

/* What the reference walk found; p == NULL when the type is absent. */
struct ref_tag {
    const uint8_t *p;
    uint32_t size;
};

struct ref {
    bool well_formed;
    struct ref_tag first[32];
    struct ref_tag modules[BOOT_MODULES_MAX + 1]; /* every module tag, in order (capped) */
    uint32_t module_tags;
};

/* Walks the tags as the specification lays them out. */
static struct ref ref_walk(const uint8_t *b, uint32_t total)
{
    struct ref r;
    memset(&r, 0, sizeof(r));
    uint64_t off = 8;
    while (off + 8 <= total) {
        uint32_t type, size;
        memcpy(&type, b + off, 4);
        memcpy(&size, b + off + 4, 4);
        if (size < 8 || size > total - off)
            return r;
        if (type == 0) {
            r.well_formed = true;
            return r;
        }
        if (type < 32 && !r.first[type].p)
            r.first[type] = (struct ref_tag){b + off, size};
        if (type == MB2_TAG_MODULE && r.module_tags <= BOOT_MODULES_MAX)
            r.modules[r.module_tags++] = (struct ref_tag){b + off, size};
        off += ((uint64_t)size + 7) / 8 * 8;
    }
    return r;
}

static uint32_t ref_mem_type(uint32_t mb2_type)
{
    switch (mb2_type) {
    case 1: return MEM_USABLE;
    case 3: return MEM_ACPI_RECLAIMABLE;
    case 4: return MEM_ACPI_NVS;
    case 5: return MEM_BAD;
    default: return MEM_RESERVED;
    }
}

static void check_terminated(const char *s, size_t size, const char *what)
{
    FUZZ_CHECK(strnlen(s, size) < size, "%s not NUL-terminated", what);
}

static void check_success(const struct boot_info *bi, const uint8_t *block, uint32_t total,
                          uint64_t phys_to_virt)
{
    struct ref r = ref_walk(block, total);
    FUZZ_CHECK(r.well_formed, "a malformed block was accepted");
    FUZZ_CHECK(bi->protocol == BOOT_PROTO_MULTIBOOT2, "protocol %d", bi->protocol);

    /* Memory map: the non-empty entries of the first type-6 tag, in order. */
    const struct ref_tag *m = &r.first[MB2_TAG_MMAP];
    FUZZ_CHECK(m->p && m->size >= 16, "accepted without a usable memory map tag");
    uint32_t esize;
    memcpy(&esize, m->p + 8, 4);
    FUZZ_CHECK(esize >= 24, "accepted entry_size %u", esize);
    size_t k = 0;
    for (uint64_t off = 16; off + esize <= m->size; off += esize) {
        uint64_t base, len;
        uint32_t type;
        memcpy(&base, m->p + off, 8);
        memcpy(&len, m->p + off + 8, 8);
        memcpy(&type, m->p + off + 16, 4);
        if (len == 0)
            continue;
        FUZZ_CHECK(k < bi->memmap_count, "memory map lost entries");
        const struct mem_region *e = &bi->memmap[k++];
        FUZZ_CHECK(e->base == base && e->length == len && e->type == ref_mem_type(type),
                   "memory map entry %zu differs", k - 1);
        FUZZ_CHECK(base + len > base, "accepted a wrapping entry");
    }
    FUZZ_CHECK(k > 0 && k <= MB2_MEMMAP_MAX, "memory map has %zu entries from the tag", k);
    /* Then the framebuffer, page-rounded outward, as MEM_FRAMEBUFFER (when its
     * size is non-zero and neither it nor its rounding wraps). */
    size_t want = k;
    if (bi->fb.present) {
        uint64_t bytes = (uint64_t)bi->fb.pitch * bi->fb.height, fb_end = bi->fb.phys + bytes;
        uint64_t lo = ALIGN_DOWN(bi->fb.phys, PAGE_SIZE), hi = ALIGN_UP(fb_end, PAGE_SIZE);
        if (bytes && fb_end > bi->fb.phys && hi > lo) {
            FUZZ_CHECK(k < bi->memmap_count, "no framebuffer region");
            const struct mem_region *e = &bi->memmap[k];
            FUZZ_CHECK(e->base == lo && e->length == hi - lo && e->type == MEM_FRAMEBUFFER,
                       "framebuffer region %#llx+%#llx type %u", (unsigned long long)e->base,
                       (unsigned long long)e->length, e->type);
            want++;
        }
    }
    /* Then one MEM_KERNEL region per non-empty module, over its pages. */
    FUZZ_CHECK(r.module_tags <= BOOT_MODULES_MAX && bi->module_count == r.module_tags,
               "%zu modules from %u tags", bi->module_count, r.module_tags);
    for (uint32_t i = 0; i < r.module_tags; i++) {
        const struct ref_tag *t = &r.modules[i];
        uint32_t start, end;
        FUZZ_CHECK(t->size >= 17, "accepted a module tag of %u bytes", t->size);
        memcpy(&start, t->p + 8, 4);
        memcpy(&end, t->p + 12, 4);
        const char *name = (const char *)t->p + 16;
        FUZZ_CHECK(strnlen(name, t->size - 16) < t->size - 16, "accepted an unterminated name");
        const struct boot_module *mo = &bi->modules[i];
        bool printable = true;
        for (const unsigned char *c = (const unsigned char *)name; *c; c++)
            printable &= *c >= 0x20 && *c <= 0x7e;
        FUZZ_CHECK(end >= start && mo->phys == start && mo->size == end - start &&
                       strlen(name) > 0 && strlen(name) < BOOT_MODULE_NAME_MAX && printable &&
                       strcmp(mo->name, name) == 0,
                   "module %u", i);
        if (end == start)
            continue;
        uint64_t lo = ALIGN_DOWN((uint64_t)start, PAGE_SIZE), hi = ALIGN_UP((uint64_t)end, PAGE_SIZE);
        FUZZ_CHECK(want < bi->memmap_count, "no region for module %u", i);
        const struct mem_region *e = &bi->memmap[want++];
        FUZZ_CHECK(e->base == lo && e->length == hi - lo && e->type == MEM_KERNEL,
                   "module %u region %#llx+%#llx type %u", i, (unsigned long long)e->base,
                   (unsigned long long)e->length, e->type);
    }
    FUZZ_CHECK(want == bi->memmap_count, "memory map has %zu, want %zu", bi->memmap_count, want);

    /* Strings. */
    check_terminated(bi->cmdline, sizeof(bi->cmdline), "command line");
    check_terminated(bi->bootloader_name, sizeof(bi->bootloader_name), "bootloader name");
    check_terminated(bi->bootloader_version, sizeof(bi->bootloader_version), "version");
    const struct ref_tag *c = &r.first[MB2_TAG_CMDLINE];
    if (c->p)
        FUZZ_CHECK(strcmp(bi->cmdline, (const char *)c->p + 8) == 0, "command line differs");
    else
        FUZZ_CHECK(bi->cmdline[0] == 0, "command line without a tag");

    /* Framebuffer: only RGB with a depth the console draws. */
    if (bi->fb.present) {
        const struct ref_tag *f = &r.first[MB2_TAG_FRAMEBUFFER];
        FUZZ_CHECK(f->p && f->size >= MB2_FRAMEBUFFER_RGB_SIZE && f->p[29] == 1,
                   "framebuffer without an RGB tag");
        FUZZ_CHECK(bi->fb.bpp == 16 || bi->fb.bpp == 24 || bi->fb.bpp == 32, "bpp %u",
                   bi->fb.bpp);
        FUZZ_CHECK(bi->fb.bpp == f->p[28], "bpp differs");
    }

    /* ELF section headers: bounded copies. */
    if (bi->symbols.shdrs) {
        FUZZ_CHECK(bi->symbols.shnum >= 1 && bi->symbols.shnum <= MB2_MAX_SECTION_HEADERS &&
                       bi->symbols.shstrndx < bi->symbols.shnum &&
                       bi->symbols.shentsize == sizeof(struct mb2_elf64_shdr) &&
                       bi->symbols.sh_addr_to_virt == phys_to_virt,
                   "section headers %u/%u", bi->symbols.shnum, bi->symbols.shstrndx);
        const uint8_t *e = r.first[MB2_TAG_ELF_SECTIONS].p;
        uint32_t entsize;
        memcpy(&entsize, e + 12, 4);
        for (uint32_t i = 0; i < bi->symbols.shnum; i++)
            FUZZ_CHECK(memcmp((const uint8_t *)bi->symbols.shdrs + 64 * i, e + 20 + (uint64_t)i *
                              entsize, 64) == 0, "section header %u differs", i);
    }

    /* RSDP: the new tag wins over the old one. */
    const struct ref_tag *a = r.first[MB2_TAG_ACPI_NEW].p ? &r.first[MB2_TAG_ACPI_NEW]
                                                         : &r.first[MB2_TAG_ACPI_OLD];
    if (a->p) {
        size_t need = r.first[MB2_TAG_ACPI_NEW].p ? 36 : 20;
        FUZZ_CHECK(bi->rsdp_is_copy && memcmp(bi->rsdp_copy, a->p + 8, need) == 0,
                   "RSDP copy differs");
    } else {
        FUZZ_CHECK(!bi->rsdp_is_copy, "RSDP without a tag");
    }

    const struct ref_tag *lb = &r.first[MB2_TAG_LOAD_BASE_ADDR];
    uint32_t load = 0;
    if (lb->p)
        memcpy(&load, lb->p + 8, 4);
    FUZZ_CHECK(bi->kernel_phys_base == load, "load base %#llx, want %#x",
               (unsigned long long)bi->kernel_phys_base, load);
    enum firmware_type fw = r.first[MB2_TAG_EFI64].p   ? FW_UEFI64
                            : r.first[MB2_TAG_EFI32].p ? FW_UEFI32
                                                       : FW_BIOS;
    FUZZ_CHECK(bi->firmware == fw, "firmware %d, want %d", bi->firmware, fw);
}

static struct boot_info bi;
static struct mem_region sanitized[MEMMAP_MAX];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fuzz_in fi = {data, size};
    uint8_t mode = fuzz_u8(&fi);
    uint32_t magic = (mode & 1) ? fuzz_u32(&fi) : MB2_BOOTLOADER_MAGIC;
    uint64_t phys_to_virt = fuzz_u64(&fi);

    /* The block: total_size cut to the bytes present, in a buffer of that size. */
    uint32_t total = 0;
    if (fi.n >= 4)
        memcpy(&total, fi.p, 4);
    if (total > fi.n)
        total = (uint32_t)fi.n;
    size_t bufsize = total < 8 ? 8 : total;
    uint8_t *buf = malloc(bufsize + 4);
    FUZZ_CHECK(buf, "malloc");
    uint8_t *block = (mode & 2) ? buf + 4 : buf;
    fuzz_copy(&fi, block, bufsize);
    memcpy(block, &total, 4); /* blocks under 8 bytes: the header stays readable */

    fuzz_log_reset();
    const void *info = (mode & 4) ? NULL : block;
    const char *err = boot_from_multiboot2(&bi, magic, info, phys_to_virt);
    if (err) {
        FUZZ_CHECK(strncmp(err, "multiboot2: ", 12) == 0 && strlen(err) < 160 && !strchr(err, '\n'),
                   "error line \"%s\"", err);
    } else {
        FUZZ_CHECK(magic == MB2_BOOTLOADER_MAGIC && info && !(mode & 2), "accepted a bad call");
        check_success(&bi, block, total, phys_to_virt);
        /* What main does next: add the kernel image, validate, sanitize. */
        boot_add_region(&bi, MiB(2), MiB(1), MEM_KERNEL);
        bi.hhdm_offset = 0xffff800000000000ULL;
        bi.kernel_virt_base = 0xffffffff80000000ULL;
        const char *verr = boot_info_validate(&bi);
        FUZZ_CHECK(!verr || strncmp(verr, "boot info: ", 11) == 0, "validate said \"%s\"", verr);
        size_t n = memmap_sanitize(bi.memmap, bi.memmap_count, sanitized, MEMMAP_MAX, 46);
        FUZZ_CHECK(n <= MEMMAP_MAX, "sanitize returned %zu", n);
    }
    free(buf);
    return 0;
}
