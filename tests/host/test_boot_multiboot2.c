/* boot_from_multiboot2: synthetic boot information blocks, good and
 * malformed; each malformed block must produce its exact error line. */
#include <criterion/criterion.h>
#include <stdio.h>

#include "boot/boot_info.h"
#include "boot/multiboot2.h"
#include "lib/string.h"
#include "mm/memmap.h"

#define P2V 0xffff800000000000ULL

/* ---- a tiny builder for information blocks ------------------------------------ */

static _Alignas(8) uint8_t buf[32768];
static size_t len;
static struct boot_info bi;

static void mb_begin(void)
{
    memset(buf, 0xcc, sizeof(buf)); /* garbage past the end must never be read as valid */
    len = sizeof(struct mb2_info_header);
}

/* Appends a tag whose size field says `size` (normally 8 + payload length). */
static uint8_t *mb_tag_sized(uint32_t type, uint32_t size, const void *payload, size_t plen)
{
    uint8_t *t = buf + len;
    struct mb2_tag h = { type, size };
    memcpy(t, &h, sizeof(h));
    if (plen)
        memcpy(t + sizeof(h), payload, plen);
    len += ALIGN_UP(sizeof(h) + plen, 8);
    cr_assert(len < sizeof(buf));
    return t;
}

static uint8_t *mb_tag(uint32_t type, const void *payload, size_t plen)
{
    return mb_tag_sized(type, (uint32_t)(sizeof(struct mb2_tag) + plen), payload, plen);
}

static void mb_set_total(uint32_t total)
{
    struct mb2_info_header h = { total, 0 };
    memcpy(buf, &h, sizeof(h));
}

static void mb_end(void)
{
    mb_tag(MB2_TAG_END, NULL, 0);
    mb_set_total((uint32_t)len);
}

static void mb_string(uint32_t type, const char *s)
{
    mb_tag(type, s, strlen(s) + 1);
}

/* Memory map tag with entry_size `esz` (>= 24: extra bytes are padding). */
static void mb_mmap(uint32_t esz, const struct mb2_mmap_entry *e, size_t n)
{
    static uint8_t payload[16384];
    struct { uint32_t entry_size, entry_version; } h = { esz, 0 };
    memset(payload, 0xee, sizeof(payload));
    memcpy(payload, &h, sizeof(h));
    for (size_t i = 0; i < n; i++)
        memcpy(payload + 8 + i * esz, &e[i], sizeof(e[i]));
    cr_assert(8 + n * esz <= sizeof(payload));
    mb_tag(MB2_TAG_MMAP, payload, 8 + n * esz);
}

static const struct mb2_mmap_entry good_map[] = {
    { 0x0, 0x9fc00, 1, 0 },
    { 0x9fc00, 0x400, 2, 0 },
    { 0xf0000, 0x10000, 2, 0 },
    { 0x100000, 0x7ee0000, 1, 0 },
    { 0x7fe0000, 0x20000, 3, 0 },
    { 0x8000000, 0x1000, 4, 0 },
    { 0x8001000, 0x1000, 5, 0 },
    { 0xfffc0000, 0x40000, 7, 0 },   /* unknown type: reserved */
    { 0x200000000, 0, 1, 0 },        /* empty: skipped */
};
static const struct mem_region good_regions[] = {
    { 0x0, 0x9fc00, MEM_USABLE },
    { 0x9fc00, 0x400, MEM_RESERVED },
    { 0xf0000, 0x10000, MEM_RESERVED },
    { 0x100000, 0x7ee0000, MEM_USABLE },
    { 0x7fe0000, 0x20000, MEM_ACPI_RECLAIMABLE },
    { 0x8000000, 0x1000, MEM_ACPI_NVS },
    { 0x8001000, 0x1000, MEM_BAD },
    { 0xfffc0000, 0x40000, MEM_RESERVED },
};

/* Framebuffer tag: common part + (for RGB) positions and sizes. */
static void mb_framebuffer(uint64_t addr, uint32_t pitch, uint32_t w, uint32_t h, uint8_t bpp,
                           uint8_t type, size_t payload_len)
{
    struct mb2_tag_framebuffer fb = {
        .addr = addr, .pitch = pitch, .width = w, .height = h, .bpp = bpp, .fb_type = type,
        .red_field_position = 16, .red_mask_size = 8,
        .green_field_position = 8, .green_mask_size = 8,
        .blue_field_position = 0, .blue_mask_size = 8,
    };
    mb_tag(MB2_TAG_FRAMEBUFFER, (const uint8_t *)&fb + sizeof(struct mb2_tag), payload_len);
}
#define FB_RGB_PAYLOAD (MB2_FRAMEBUFFER_RGB_SIZE - 8)

static struct mb2_elf64_shdr shdrs[4];

/* ELF sections tag: n headers of esz bytes each (extra bytes are padding). */
static void mb_elf(uint32_t n, uint32_t esz, uint32_t shndx)
{
    static uint8_t payload[8192];
    struct { uint32_t num, entsize, shndx; } h = { n, esz, shndx };
    memset(payload, 0x77, sizeof(payload));
    memcpy(payload, &h, sizeof(h));
    for (uint32_t i = 0; i < n && i < ARRAY_SIZE(shdrs); i++)
        memcpy(payload + 12 + i * esz, &shdrs[i], sizeof(shdrs[i]));
    cr_assert(12 + (size_t)n * esz <= sizeof(payload));
    mb_tag(MB2_TAG_ELF_SECTIONS, payload, 12 + (size_t)n * esz);
}

static uint8_t rsdp_v1[20], rsdp_v2[36];

static void fill_shdrs_and_rsdp(void)
{
    for (unsigned i = 0; i < ARRAY_SIZE(shdrs); i++)
        shdrs[i] = (struct mb2_elf64_shdr){ .sh_name = i * 10, .sh_type = i,
                                        .sh_addr = 0x300000 + i * 0x1000, .sh_size = 0x100 + i };
    memcpy(rsdp_v1, "RSD PTR ", 8);
    rsdp_v1[15] = 0; /* revision 0 */
    rsdp_v1[16] = 0xaa;
    memcpy(rsdp_v2, "RSD PTR ", 8);
    rsdp_v2[15] = 2;
    rsdp_v2[35] = 0xbb;
}

/* A block like GRUB's on UEFI: every tag we read, plus some we do not. */
static void build_good(void)
{
    fill_shdrs_and_rsdp();
    mb_begin();
    mb_string(MB2_TAG_CMDLINE, "ktest quiet");
    mb_string(MB2_TAG_BOOTLOADER_NAME, "GRUB 2.12");
    uint32_t meminfo[2] = { 639, 130048 };
    mb_tag(MB2_TAG_BASIC_MEMINFO, meminfo, sizeof(meminfo));
    mb_mmap(24, good_map, ARRAY_SIZE(good_map));
    mb_framebuffer(0xfd000000, 4096, 1024, 768, 32, MB2_FRAMEBUFFER_TYPE_RGB, FB_RGB_PAYLOAD);
    mb_elf(3, 64, 2);
    mb_tag(MB2_TAG_ACPI_OLD, rsdp_v1, sizeof(rsdp_v1));
    mb_tag(MB2_TAG_ACPI_NEW, rsdp_v2, sizeof(rsdp_v2));
    uint64_t efi64[2] = { 0x7fbee018, 0 };
    mb_tag(MB2_TAG_EFI64, efi64, 8);
    uint32_t load_base = 0x200000;
    mb_tag(MB2_TAG_LOAD_BASE_ADDR, &load_base, 4);
    mb_end();
}

/* The minimum: a memory map and the end tag. */
static void build_minimal(void)
{
    fill_shdrs_and_rsdp();
    mb_begin();
    mb_mmap(24, good_map, ARRAY_SIZE(good_map));
    mb_end();
}

static const char *run(void)
{
    memset(&bi, 0xa5, sizeof(bi)); /* boot_from_multiboot2 must overwrite everything */
    return boot_from_multiboot2(&bi, MB2_BOOTLOADER_MAGIC, buf, P2V);
}

static void expect_error(const char *want)
{
    const char *err = run();
    cr_assert_not_null(err, "expected \"%s\", got success", want);
    cr_expect_str_eq(err, want);
}

static void expect_ok(void)
{
    const char *err = run();
    cr_assert_null(err, "unexpected error: %s", err);
}

/* ---- good blocks ---------------------------------------------------------------- */

Test(boot_mb2, good_block_converts_every_field)
{
    build_good();
    expect_ok();
    cr_expect_eq(bi.protocol, BOOT_PROTO_MULTIBOOT2);
    cr_expect_eq(bi.base_revision, 0);
    cr_expect_eq(bi.hhdm_offset, 0, "the caller sets the HHDM offset");
    cr_assert_eq(bi.memmap_count, ARRAY_SIZE(good_regions) + 1);
    struct mem_region fbr = bi.memmap[ARRAY_SIZE(good_regions)];
    cr_expect(fbr.base == 0xfd000000 && fbr.length == 4096 * 768 && fbr.type == MEM_FRAMEBUFFER,
              "framebuffer region %#llx %#llx %u", (unsigned long long)fbr.base,
              (unsigned long long)fbr.length, fbr.type);
    for (size_t i = 0; i < ARRAY_SIZE(good_regions); i++)
        cr_expect(bi.memmap[i].base == good_regions[i].base &&
                      bi.memmap[i].length == good_regions[i].length &&
                      bi.memmap[i].type == good_regions[i].type,
                  "entry %zu: %#llx %#llx %u", i, (unsigned long long)bi.memmap[i].base,
                  (unsigned long long)bi.memmap[i].length, bi.memmap[i].type);
    cr_expect_str_eq(bi.cmdline, "ktest quiet");
    cr_expect_str_eq(bi.bootloader_name, "GRUB");
    cr_expect_str_eq(bi.bootloader_version, "2.12");
    cr_expect(bi.fb.present);
    cr_expect_eq(bi.fb.phys, 0xfd000000);
    cr_expect_eq(bi.fb.width, 1024);
    cr_expect_eq(bi.fb.height, 768);
    cr_expect_eq(bi.fb.pitch, 4096);
    cr_expect_eq(bi.fb.bpp, 32);
    cr_expect(bi.fb.red_size == 8 && bi.fb.red_shift == 16);
    cr_expect(bi.fb.green_size == 8 && bi.fb.green_shift == 8);
    cr_expect(bi.fb.blue_size == 8 && bi.fb.blue_shift == 0);

    cr_assert_not_null(bi.symbols.shdrs);
    cr_expect_eq(bi.symbols.shnum, 3);
    cr_expect_eq(bi.symbols.shentsize, 64);
    cr_expect_eq(bi.symbols.shstrndx, 2);
    cr_expect_eq(bi.symbols.sh_addr_to_virt, P2V);
    cr_expect_null(bi.symbols.elf_file);
    const struct mb2_elf64_shdr *sh = bi.symbols.shdrs;
    for (unsigned i = 0; i < 3; i++)
        cr_expect(memcmp(&sh[i], &shdrs[i], sizeof(sh[i])) == 0, "section header %u", i);
    cr_expect((const uint8_t *)sh < buf || (const uint8_t *)sh >= buf + sizeof(buf),
              "section headers must be copied out of the information block");

    cr_expect(bi.rsdp_is_copy);
    cr_expect_eq(bi.rsdp, 0);
    cr_expect(memcmp(bi.rsdp_copy, rsdp_v2, 36) == 0, "the new RSDP is preferred");
    cr_expect_eq(bi.firmware, FW_UEFI64);
    cr_expect_eq(bi.kernel_phys_base, 0x200000);
    cr_expect_eq(bi.kernel_virt_base, 0);
}

Test(boot_mb2, minimal_block_and_caller_completes_it)
{
    build_minimal();
    expect_ok();
    cr_expect_str_eq(bi.cmdline, "");
    cr_expect_str_eq(bi.bootloader_name, "unknown");
    cr_expect(!bi.fb.present);
    cr_expect_null(bi.symbols.shdrs);
    cr_expect(!bi.rsdp_is_copy);
    cr_expect_eq(bi.firmware, FW_BIOS);
    cr_expect_eq(bi.kernel_phys_base, 0);

    /* What main.c does afterwards. */
    bi.hhdm_offset = P2V;
    bi.kernel_virt_base = 0xffffffff80200000ULL;
    bi.kernel_phys_base = 0x200000;
    bi.kernel_size = 0x80000;
    size_t n = bi.memmap_count;
    boot_add_region(&bi, bi.kernel_phys_base, bi.kernel_size, MEM_KERNEL);
    cr_assert_eq(bi.memmap_count, n + 1);
    cr_expect(bi.memmap[n].base == 0x200000 && bi.memmap[n].length == 0x80000 &&
              bi.memmap[n].type == MEM_KERNEL);
    cr_expect_null(boot_info_validate(&bi));
}

Test(boot_mb2, tags_in_any_order_first_one_counts)
{
    fill_shdrs_and_rsdp();
    mb_begin();
    uint32_t efi32 = 0x7fbee018;
    mb_tag(MB2_TAG_EFI32, &efi32, 4);
    mb_tag(MB2_TAG_ACPI_OLD, rsdp_v1, sizeof(rsdp_v1));
    mb_string(MB2_TAG_BOOTLOADER_NAME, "GRUB");
    mb_string(MB2_TAG_CMDLINE, "first");
    mb_mmap(24, good_map, 2);
    mb_string(MB2_TAG_CMDLINE, "second");
    mb_mmap(24, good_map, ARRAY_SIZE(good_map));
    mb_end();
    expect_ok();
    cr_expect_str_eq(bi.cmdline, "first");
    cr_expect_eq(bi.memmap_count, 2);
    cr_expect_str_eq(bi.bootloader_name, "GRUB");
    cr_expect_str_eq(bi.bootloader_version, "");
    cr_expect_eq(bi.firmware, FW_UEFI32);
    cr_expect(bi.rsdp_is_copy);
    cr_expect(memcmp(bi.rsdp_copy, rsdp_v1, 20) == 0);
}

Test(boot_mb2, larger_memory_map_entries)
{
    fill_shdrs_and_rsdp();
    mb_begin();
    mb_mmap(32, good_map, ARRAY_SIZE(good_map));
    mb_end();
    expect_ok();
    cr_assert_eq(bi.memmap_count, ARRAY_SIZE(good_regions));
    cr_expect_eq(bi.memmap[3].base, 0x100000);
    cr_expect_eq(bi.memmap[7].type, MEM_RESERVED);
}

Test(boot_mb2, info_only_as_large_as_total_size_says)
{
    build_minimal();
    memset(buf + len, 0, 64); /* zeros after the end tag must not matter */
    expect_ok();
}

/* ---- header and walk -------------------------------------------------------------- */

Test(boot_mb2, bad_magic)
{
    build_good();
    memset(&bi, 0, sizeof(bi));
    cr_expect_str_eq(boot_from_multiboot2(&bi, 0x2badb002, buf, P2V),
                     "multiboot2: bad magic 0x2badb002 (expected 0x36d76289)");
}

Test(boot_mb2, null_info)
{
    cr_expect_str_eq(boot_from_multiboot2(&bi, MB2_BOOTLOADER_MAGIC, NULL, P2V),
                     "multiboot2: no boot information");
}

Test(boot_mb2, unaligned_info)
{
    build_good();
    const char *err = boot_from_multiboot2(&bi, MB2_BOOTLOADER_MAGIC, buf + 4, P2V);
    cr_assert_not_null(err);
    cr_expect(strncmp(err, "multiboot2: boot information at 0x", 34) == 0, "%s", err);
    cr_expect(strstr(err, " not 8-byte aligned") != NULL, "%s", err);
}

Test(boot_mb2, total_size_too_small)
{
    build_good();
    mb_set_total(8);
    expect_error("multiboot2: total_size 8 too small");
}

Test(boot_mb2, total_size_absurd)
{
    build_good();
    mb_set_total(16u << 20);
    expect_error("multiboot2: total_size 16777216 larger than 1048576");
}

Test(boot_mb2, tag_size_below_8)
{
    mb_begin();
    mb_string(MB2_TAG_CMDLINE, "x");
    mb_tag_sized(MB2_TAG_BOOTLOADER_NAME, 4, NULL, 0);
    mb_end();
    expect_error("multiboot2: tag 1 (type 2) size 4 < 8");
}

Test(boot_mb2, tag_overrunning_total_size)
{
    build_minimal();
    size_t end_tag = len - 8;
    /* Make the memory map claim more bytes than the block holds. */
    struct mb2_tag h;
    memcpy(&h, buf + 8, sizeof(h));
    cr_assert_eq(h.type, MB2_TAG_MMAP);
    h.size = (uint32_t)(end_tag - 8 + 16);
    memcpy(buf + 8, &h, sizeof(h));
    char want[128];
    snprintf(want, sizeof(want), "multiboot2: tag 0 (type 6) size %u overruns total_size %u",
             h.size, (unsigned)len);
    expect_error(want);
}

Test(boot_mb2, truncated_block)
{
    build_good();
    /* total_size ends in the middle of the framebuffer tag. */
    mb_set_total(200);
    const char *err = run();
    cr_assert_not_null(err);
    cr_expect(strstr(err, "overruns total_size 200") != NULL, "%s", err);
}

Test(boot_mb2, missing_end_tag)
{
    mb_begin();
    mb_mmap(24, good_map, ARRAY_SIZE(good_map));
    mb_set_total((uint32_t)len);
    char want[64];
    snprintf(want, sizeof(want), "multiboot2: no end tag within total_size %u", (unsigned)len);
    expect_error(want);
}

Test(boot_mb2, end_tag_header_cut_off)
{
    build_minimal();
    mb_set_total((uint32_t)len - 4);
    char want[64];
    snprintf(want, sizeof(want), "multiboot2: no end tag within total_size %u",
             (unsigned)len - 4);
    expect_error(want);
}

/* ---- memory map ------------------------------------------------------------------ */

Test(boot_mb2, missing_memory_map)
{
    mb_begin();
    mb_string(MB2_TAG_CMDLINE, "x");
    mb_end();
    expect_error("multiboot2: no memory map tag");
}

Test(boot_mb2, memory_map_tag_too_small)
{
    mb_begin();
    uint32_t esz = 24;
    mb_tag(MB2_TAG_MMAP, &esz, 4);
    mb_end();
    expect_error("multiboot2: memory map tag size 12 < 16");
}

Test(boot_mb2, memory_map_entry_size_too_small)
{
    mb_begin();
    mb_mmap(16, good_map, 2);
    mb_end();
    expect_error("multiboot2: memory map entry_size 16 < 24");
}

Test(boot_mb2, memory_map_entry_size_zero)
{
    mb_begin();
    mb_mmap(0, good_map, 0);
    mb_end();
    expect_error("multiboot2: memory map entry_size 0 < 24");
}

Test(boot_mb2, too_many_memory_map_entries)
{
    static struct mb2_mmap_entry many[MB2_MEMMAP_MAX + 1];
    for (size_t i = 0; i < ARRAY_SIZE(many); i++)
        many[i] = (struct mb2_mmap_entry){ i * 0x1000, 0x1000, 1, 0 };
    mb_begin();
    mb_mmap(24, many, ARRAY_SIZE(many));
    mb_end();
    /* MEMMAP_MAX 512 minus room for 8 appended regions and 16 modules */
    expect_error("multiboot2: too many memory map entries (489 > 488)");

    mb_begin();
    mb_mmap(24, many, MB2_MEMMAP_MAX);
    mb_end();
    expect_ok();
    cr_expect_eq(bi.memmap_count, MB2_MEMMAP_MAX);
}

Test(boot_mb2, entries_stay_within_the_tag)
{
    /* Tag size not a multiple of entry_size: the partial trailing entry is ignored. */
    uint8_t payload[8 + 3 * 24 + 16];
    struct { uint32_t entry_size, entry_version; } h = { 24, 0 };
    memcpy(payload, &h, sizeof(h));
    memcpy(payload + 8, good_map, 3 * 24);
    memcpy(payload + 8 + 3 * 24, &good_map[3], 16);
    mb_begin();
    mb_tag(MB2_TAG_MMAP, payload, sizeof(payload));
    mb_end();
    expect_ok();
    cr_expect_eq(bi.memmap_count, 3);
}

Test(boot_mb2, wrapping_memory_map_entry)
{
    struct mb2_mmap_entry e[2] = { { 0x100000, 0x1000000, 1, 0 },
                                   { 0xfffffffffffff000ULL, 0x2000, 2, 0 } };
    mb_begin();
    mb_mmap(24, e, 2);
    mb_end();
    expect_error("multiboot2: memory map entry 1 wraps around (base 0xfffffffffffff000 length "
                 "0x2000)");
}

Test(boot_mb2, memory_map_of_empty_entries)
{
    struct mb2_mmap_entry e[2] = { { 0x100000, 0, 1, 0 }, { 0x200000, 0, 1, 0 } };
    mb_begin();
    mb_mmap(24, e, 2);
    mb_end();
    expect_error("multiboot2: memory map has no entries");
}

/* ---- strings ---------------------------------------------------------------------- */

Test(boot_mb2, cmdline_not_terminated)
{
    build_minimal();
    len -= 8; /* drop the end tag, add an unterminated string, end again */
    mb_tag(MB2_TAG_CMDLINE, "abcdefgh", 8);
    mb_end();
    expect_error("multiboot2: command line not NUL-terminated");
}

Test(boot_mb2, cmdline_too_long)
{
    char s[BOOT_CMDLINE_MAX + 1];
    memset(s, 'c', sizeof(s) - 1);
    s[sizeof(s) - 1] = 0;
    build_minimal();
    len -= 8;
    mb_string(MB2_TAG_CMDLINE, s);
    mb_end();
    expect_error("multiboot2: command line longer than 255 bytes");

    s[BOOT_CMDLINE_MAX - 1] = 0; /* 255 characters fit */
    build_minimal();
    len -= 8;
    mb_string(MB2_TAG_CMDLINE, s);
    mb_end();
    expect_ok();
    cr_expect_eq(strlen(bi.cmdline), BOOT_CMDLINE_MAX - 1);
}

Test(boot_mb2, bootloader_name_not_terminated)
{
    build_minimal();
    len -= 8;
    mb_tag(MB2_TAG_BOOTLOADER_NAME, "GRUB 2.1", 8);
    mb_end();
    expect_error("multiboot2: bootloader name not NUL-terminated");
}

Test(boot_mb2, long_bootloader_name_is_truncated)
{
    char s[200];
    memset(s, 'N', 150);
    s[150] = ' ';
    memset(s + 151, 'V', 48);
    s[199] = 0;
    build_minimal();
    len -= 8;
    mb_string(MB2_TAG_BOOTLOADER_NAME, s);
    mb_end();
    expect_ok();
    cr_expect_eq(strlen(bi.bootloader_name), BOOT_NAME_MAX - 1);
    cr_expect_eq(bi.bootloader_name[0], 'N');
    cr_expect_eq(strlen(bi.bootloader_version), 48);
    cr_expect_eq(bi.bootloader_version[0], 'V');
}

/* ---- framebuffer ---------------------------------------------------------------- */

static void build_with_fb(uint64_t addr, uint32_t pitch, uint32_t w, uint32_t h, uint8_t bpp,
                          uint8_t type, size_t payload_len)
{
    build_minimal();
    len -= 8;
    mb_framebuffer(addr, pitch, w, h, bpp, type, payload_len);
    mb_end();
}

Test(boot_mb2, ega_text_is_no_framebuffer)
{
    build_with_fb(0xb8000, 160, 80, 25, 16, MB2_FRAMEBUFFER_TYPE_EGA_TEXT,
                  MB2_FRAMEBUFFER_COMMON_SIZE - 8);
    expect_ok();
    cr_expect(!bi.fb.present);
}

Test(boot_mb2, indexed_is_no_framebuffer)
{
    build_with_fb(0xa0000, 320, 320, 200, 8, MB2_FRAMEBUFFER_TYPE_INDEXED, FB_RGB_PAYLOAD);
    expect_ok();
    cr_expect(!bi.fb.present);
}

Test(boot_mb2, rgb_depth_we_cannot_draw)
{
    build_with_fb(0xfd000000, 2048, 1024, 768, 15, MB2_FRAMEBUFFER_TYPE_RGB, FB_RGB_PAYLOAD);
    expect_ok();
    cr_expect(!bi.fb.present);
}

Test(boot_mb2, rgb_24bpp)
{
    build_with_fb(0x100000000ULL, 2400, 800, 600, 24, MB2_FRAMEBUFFER_TYPE_RGB, FB_RGB_PAYLOAD);
    expect_ok();
    cr_expect(bi.fb.present);
    cr_expect_eq(bi.fb.phys, 0x100000000ULL, "a framebuffer can sit above 4 GiB");
    cr_expect_eq(bi.fb.bpp, 24);
    cr_expect_eq(bi.fb.pitch, 2400);
}

/* A firmware map that calls the framebuffer usable RAM (here: inside the
 * 0x100000.. usable range, unaligned, 2400x600 at 24 bpp): the framebuffer's
 * pages become MEM_FRAMEBUFFER after sanitizing, never frames to hand out. */
Test(boot_mb2, framebuffer_inside_usable_ram_is_reserved)
{
    paddr_t fb = 0x4000800;
    uint64_t bytes = 2400 * 600;
    build_with_fb(fb, 2400, 800, 600, 24, MB2_FRAMEBUFFER_TYPE_RGB, FB_RGB_PAYLOAD);
    expect_ok();
    static struct mem_region clean[MEMMAP_MAX * 2 + 1];
    size_t n = memmap_sanitize(bi.memmap, bi.memmap_count, clean, ARRAY_SIZE(clean), 52);
    paddr_t lo = ALIGN_DOWN(fb, PAGE_SIZE), hi = ALIGN_UP(fb + bytes, PAGE_SIZE);
    bool covered = false;
    for (size_t i = 0; i < n; i++) {
        paddr_t b = clean[i].base, e = clean[i].base + clean[i].length;
        if (clean[i].type == MEM_USABLE)
            cr_expect(e <= lo || b >= hi, "usable %#llx..%#llx overlaps the framebuffer",
                      (unsigned long long)b, (unsigned long long)e);
        if (clean[i].type == MEM_FRAMEBUFFER && b <= lo && e >= hi)
            covered = true;
    }
    cr_expect(covered, "no framebuffer region covers %#llx..%#llx", (unsigned long long)lo,
              (unsigned long long)hi);
}

Test(boot_mb2, framebuffer_tag_too_small)
{
    build_with_fb(0xfd000000, 4096, 1024, 768, 32, MB2_FRAMEBUFFER_TYPE_RGB, 16);
    expect_error("multiboot2: framebuffer tag size 24 < 32");
}

Test(boot_mb2, rgb_framebuffer_without_colour_info)
{
    build_with_fb(0xfd000000, 4096, 1024, 768, 32, MB2_FRAMEBUFFER_TYPE_RGB,
                  MB2_FRAMEBUFFER_COMMON_SIZE - 8);
    expect_error("multiboot2: RGB framebuffer tag size 32 < 38");
}

Test(boot_mb2, absurd_framebuffer_fails_validation)
{
    build_with_fb(0xfd000000, 4096, 0, 768, 32, MB2_FRAMEBUFFER_TYPE_RGB, FB_RGB_PAYLOAD);
    expect_ok();
    bi.hhdm_offset = P2V;
    bi.kernel_virt_base = 0xffffffff80200000ULL;
    cr_expect_str_eq(boot_info_validate(&bi),
                     "boot info: framebuffer size 0x768 out of range (1..16384)");
}

/* ---- ELF sections ------------------------------------------------------------------ */

static void build_with_elf(uint32_t n, uint32_t esz, uint32_t shndx)
{
    build_minimal();
    len -= 8;
    mb_elf(n, esz, shndx);
    mb_end();
}

Test(boot_mb2, elf_sections_wide_entries_are_compacted)
{
    build_with_elf(4, 80, 3);
    expect_ok();
    cr_expect_eq(bi.symbols.shnum, 4);
    cr_expect_eq(bi.symbols.shentsize, 64);
    const struct mb2_elf64_shdr *sh = bi.symbols.shdrs;
    cr_expect_eq(sh[3].sh_addr, 0x303000);
    cr_expect_eq(sh[3].sh_size, 0x103);
}

Test(boot_mb2, elf_sections_none)
{
    build_with_elf(0, 64, 0);
    expect_ok();
    cr_expect_null(bi.symbols.shdrs);
    cr_expect_eq(bi.symbols.shnum, 0);
}

Test(boot_mb2, elf_section_entsize_too_small)
{
    build_with_elf(3, 40, 2);
    expect_error("multiboot2: ELF section header size 40 < 64");
}

Test(boot_mb2, too_many_elf_sections)
{
    build_with_elf(MB2_MAX_SECTION_HEADERS + 1, 64, 1);
    expect_error("multiboot2: too many ELF section headers (65 > 64)");
}

Test(boot_mb2, elf_sections_beyond_the_tag)
{
    build_minimal();
    len -= 8;
    struct { uint32_t num, entsize, shndx; } h = { 3, 64, 1 };
    uint8_t payload[12 + 64];
    memcpy(payload, &h, sizeof(h));
    memset(payload + 12, 0, 64);
    mb_tag(MB2_TAG_ELF_SECTIONS, payload, sizeof(payload));
    mb_end();
    expect_error("multiboot2: ELF sections tag size 84 too small for 3 headers of 64 bytes");
}

Test(boot_mb2, elf_sections_tag_too_small)
{
    build_minimal();
    len -= 8;
    uint32_t num = 1;
    mb_tag(MB2_TAG_ELF_SECTIONS, &num, 4);
    mb_end();
    expect_error("multiboot2: ELF sections tag size 12 < 20");
}

Test(boot_mb2, elf_string_table_index_out_of_range)
{
    build_with_elf(3, 64, 3);
    expect_error("multiboot2: ELF string table index 3 >= 3 sections");
}

/* ---- ACPI, firmware, load base ------------------------------------------------------ */

Test(boot_mb2, rsdp_bad_signature)
{
    fill_shdrs_and_rsdp();
    rsdp_v2[0] = 'X';
    mb_begin();
    mb_mmap(24, good_map, ARRAY_SIZE(good_map));
    mb_tag(MB2_TAG_ACPI_NEW, rsdp_v2, sizeof(rsdp_v2));
    mb_end();
    expect_error("multiboot2: ACPI RSDP tag without the \"RSD PTR \" signature");
}

Test(boot_mb2, new_rsdp_tag_too_small)
{
    fill_shdrs_and_rsdp();
    mb_begin();
    mb_mmap(24, good_map, ARRAY_SIZE(good_map));
    mb_tag(MB2_TAG_ACPI_NEW, rsdp_v2, 20);
    mb_end();
    expect_error("multiboot2: ACPI new RSDP tag size 28 too small");
}

Test(boot_mb2, old_rsdp_only)
{
    fill_shdrs_and_rsdp();
    mb_begin();
    mb_mmap(24, good_map, ARRAY_SIZE(good_map));
    mb_tag(MB2_TAG_ACPI_OLD, rsdp_v1, sizeof(rsdp_v1));
    mb_end();
    expect_ok();
    cr_expect(bi.rsdp_is_copy);
    cr_expect(memcmp(bi.rsdp_copy, rsdp_v1, 20) == 0);
    cr_expect_eq(bi.rsdp_copy[20], 0, "nothing beyond the 20-byte RSDP copied");
}

Test(boot_mb2, load_base_tag_too_small)
{
    build_minimal();
    len -= 8;
    mb_tag(MB2_TAG_LOAD_BASE_ADDR, NULL, 0);
    mb_end();
    expect_error("multiboot2: image load base tag size 8 < 12");
}

/* ---- modules (type 3 tags) ---------------------------------------------------------- */

/* A module tag: [start, end) and its string. */
static void mb_module(uint32_t start, uint32_t end, const char *s)
{
    uint8_t payload[128];
    struct { uint32_t mod_start, mod_end; } h = { start, end };
    memcpy(payload, &h, sizeof(h));
    size_t n = strlen(s) + 1;
    cr_assert(8 + n <= sizeof(payload));
    memcpy(payload + 8, s, n);
    mb_tag(MB2_TAG_MODULE, payload, 8 + n);
}

/* The minimal block with the modules build_mods() adds before the end tag. */
static void build_with_modules(void (*build_mods)(void))
{
    fill_shdrs_and_rsdp();
    mb_begin();
    mb_mmap(24, good_map, ARRAY_SIZE(good_map));
    build_mods();
    mb_end();
}

static void two_modules(void)
{
    mb_module(0x1000000, 0x1002345, "hello");
    mb_module(0x1003000, 0x1004000, "other");
}

Test(boot_mb2, modules_are_read_and_reserved_as_kernel_memory)
{
    build_with_modules(two_modules);
    expect_ok();
    cr_assert_eq(bi.module_count, 2);
    cr_expect_eq(bi.modules[0].phys, 0x1000000);
    cr_expect_eq(bi.modules[0].size, 0x2345);
    cr_expect_str_eq(bi.modules[0].name, "hello");
    cr_expect_eq(bi.modules[1].phys, 0x1003000);
    cr_expect_eq(bi.modules[1].size, 0x1000);
    cr_expect_str_eq(bi.modules[1].name, "other");
    /* each module's pages are added to the map as kernel memory */
    cr_assert_eq(bi.memmap_count, ARRAY_SIZE(good_regions) + 2);
    struct mem_region m0 = bi.memmap[ARRAY_SIZE(good_regions)];
    struct mem_region m1 = bi.memmap[ARRAY_SIZE(good_regions) + 1];
    cr_expect(m0.base == 0x1000000 && m0.length == 0x3000 && m0.type == MEM_KERNEL);
    cr_expect(m1.base == 0x1003000 && m1.length == 0x1000 && m1.type == MEM_KERNEL);
    /* the sanitized map hands none of it out */
    struct mem_region out[MEMMAP_MAX];
    size_t n = memmap_sanitize(bi.memmap, bi.memmap_count, out, MEMMAP_MAX, 46);
    bool found = false;
    for (size_t i = 0; i < n; i++) {
        cr_expect(!(out[i].type == MEM_USABLE && out[i].base < 0x1004000 &&
                    out[i].base + out[i].length > 0x1000000),
                  "usable entry %#llx+%#llx covers a module", (unsigned long long)out[i].base,
                  (unsigned long long)out[i].length);
        found |= out[i].type == MEM_KERNEL && out[i].base <= 0x1000000 &&
                 out[i].base + out[i].length >= 0x1004000;
    }
    cr_expect(found, "no kernel/modules entry covers the modules");
    /* and boot_info_validate accepts them beside a kernel image */
    bi.kernel_phys_base = 0x200000;
    bi.kernel_size = 0x100000;
    bi.hhdm_offset = P2V;
    bi.kernel_virt_base = 0xffffffff80200000ULL;
    boot_add_region(&bi, bi.kernel_phys_base, bi.kernel_size, MEM_KERNEL);
    cr_expect_null(boot_info_validate(&bi));
}

static void seventeen_modules(void)
{
    for (uint32_t i = 0; i <= BOOT_MODULES_MAX; i++) {
        char name[8];
        snprintf(name, sizeof(name), "m%u", i);
        mb_module(0x1000000 + i * 0x1000, 0x1000000 + i * 0x1000 + 16, name);
    }
}
static void module_backwards(void) { mb_module(0x1002000, 0x1001000, "back"); }
static void module_nameless(void) { mb_module(0x1000000, 0x1001000, ""); }
static void module_control_name(void) { mb_module(0x1000000, 0x1001000, "hel\nlo"); }
static void module_outside_ram(void) { mb_module(0xfffc0000, 0xfffc1000, "rom"); }
static void module_straddles(void) { mb_module(0x9f000, 0xa0000, "edge"); }
static void module_tag_short(void)
{
    uint32_t start = 0x1000000;
    mb_tag(MB2_TAG_MODULE, &start, 4);
}
static void module_no_nul(void)
{
    uint8_t payload[12] = { 0, 0, 0, 1, 0, 16, 0, 1, 'a', 'b', 'c', 'd' };
    mb_tag(MB2_TAG_MODULE, payload, sizeof(payload));
}
static void module_long_name(void)
{
    char name[BOOT_MODULE_NAME_MAX + 1];
    memset(name, 'n', BOOT_MODULE_NAME_MAX);
    name[BOOT_MODULE_NAME_MAX] = 0;
    mb_module(0x1000000, 0x1001000, name);
}

Test(boot_mb2, malformed_module_tags_are_refused)
{
    build_with_modules(seventeen_modules);
    expect_error("multiboot2: 17 modules, at most 16 are supported");
    build_with_modules(module_backwards);
    expect_error("multiboot2: module 0 ends (0x1001000) before it starts (0x1002000)");
    build_with_modules(module_nameless);
    expect_error("multiboot2: module 0 name empty, longer than 63 bytes or not printable ASCII");
    build_with_modules(module_long_name);
    expect_error("multiboot2: module 0 name empty, longer than 63 bytes or not printable ASCII");
    build_with_modules(module_control_name); /* it would break the error line below in two */
    expect_error("multiboot2: module 0 name empty, longer than 63 bytes or not printable ASCII");
    build_with_modules(module_outside_ram);
    expect_error("multiboot2: module 0 \"rom\" at 0xfffc0000 + 4096 bytes is not in usable memory");
    build_with_modules(module_straddles); /* its page runs into the reserved 0x9fc00 */
    expect_error("multiboot2: module 0 \"edge\" at 0x9f000 + 4096 bytes is not in usable memory");
    build_with_modules(module_tag_short);
    expect_error("multiboot2: module tag 0 size 12 < 17");
    build_with_modules(module_no_nul);
    expect_error("multiboot2: module 0 string not NUL-terminated");
}

static void module_unaligned(void) { mb_module(0x1000010, 0x1001000, "odd"); }
static void module_empty(void) { mb_module(0x1000000, 0x1000000, "empty"); }
static void module_empty_odd(void) { mb_module(0x33333333, 0x33333333, "nowhere"); }
static void module_on_kernel(void) { mb_module(0x2ff000, 0x300000, "onk"); }

/* What boot_info_validate says of the block's modules beside a kernel at 2 MiB. */
static const char *validate_with_kernel(void)
{
    const char *err = run();
    if (err)
        return err;
    bi.kernel_phys_base = 0x200000;
    bi.kernel_size = 0x100000;
    bi.hhdm_offset = P2V;
    bi.kernel_virt_base = 0xffffffff80200000ULL;
    boot_add_region(&bi, bi.kernel_phys_base, bi.kernel_size, MEM_KERNEL);
    return boot_info_validate(&bi);
}

Test(boot_mb2, module_placement_is_validated)
{
    build_with_modules(module_unaligned);
    cr_expect_str_eq(validate_with_kernel(),
                     "boot info: module 0 \"odd\" at 0x1000010 not 4 KiB aligned");
    build_with_modules(module_empty);
    cr_expect_str_eq(validate_with_kernel(), "boot info: module 0 \"empty\" is empty");
    /* parsed, but an empty module marks no page as kernel memory (not even
     * the page under an unaligned address, here beyond RAM) */
    build_with_modules(module_empty_odd);
    cr_assert_null(run());
    for (size_t i = 0; i < bi.memmap_count; i++)
        cr_expect_neq(bi.memmap[i].type, MEM_KERNEL, "entry %zu: %#llx + %#llx is MEM_KERNEL", i,
                      (unsigned long long)bi.memmap[i].base,
                      (unsigned long long)bi.memmap[i].length);
    cr_expect_str_eq(validate_with_kernel(), "boot info: module 0 \"nowhere\" is empty");
    build_with_modules(module_on_kernel);
    cr_expect_str_eq(validate_with_kernel(), "boot info: module 0 \"onk\" at 0x2ff000 + 4096 "
                                             "bytes overlaps the kernel image");
}
