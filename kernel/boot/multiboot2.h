/* Multiboot2 boot information: our own definitions, written from the
 * Multiboot2 specification (and GRUB's behaviour where they differ: the ELF
 * sections tag uses 32-bit num/entsize/shndx).
 *
 * The information block: u32 total_size, u32 reserved, then tags, each 8-byte
 * aligned, each starting with u32 type, u32 size (size counts the header but
 * not the padding to the next 8-byte boundary); a tag of type 0, size 8, ends
 * the list. */
#pragma once

#include "boot/boot_info.h"
#include "lib/types.h"

/* EAX at the 32-bit entry when a Multiboot2 loader started us. */
#define MB2_BOOTLOADER_MAGIC 0x36d76289u

enum mb2_tag_type {
    MB2_TAG_END = 0,
    MB2_TAG_CMDLINE = 1,
    MB2_TAG_BOOTLOADER_NAME = 2,
    MB2_TAG_MODULE = 3,
    MB2_TAG_BASIC_MEMINFO = 4,
    MB2_TAG_BOOTDEV = 5,
    MB2_TAG_MMAP = 6,
    MB2_TAG_VBE = 7,
    MB2_TAG_FRAMEBUFFER = 8,
    MB2_TAG_ELF_SECTIONS = 9,
    MB2_TAG_APM = 10,
    MB2_TAG_EFI32 = 11,
    MB2_TAG_EFI64 = 12,
    MB2_TAG_SMBIOS = 13,
    MB2_TAG_ACPI_OLD = 14,
    MB2_TAG_ACPI_NEW = 15,
    MB2_TAG_NETWORK = 16,
    MB2_TAG_EFI_MMAP = 17,
    MB2_TAG_EFI_BS = 18,
    MB2_TAG_EFI32_IH = 19,
    MB2_TAG_EFI64_IH = 20,
    MB2_TAG_LOAD_BASE_ADDR = 21,
};

struct mb2_info_header {
    uint32_t total_size; /* bytes, this header included */
    uint32_t reserved;
};

struct mb2_tag {
    uint32_t type;
    uint32_t size;
};

/* Types 1 (command line) and 2 (bootloader name): a NUL-terminated string. */
struct mb2_tag_string {
    uint32_t type;
    uint32_t size;
    char string[];
};

/* Memory map (type 6). */
#define MB2_MEMORY_AVAILABLE        1
#define MB2_MEMORY_RESERVED         2
#define MB2_MEMORY_ACPI_RECLAIMABLE 3
#define MB2_MEMORY_NVS              4
#define MB2_MEMORY_BADRAM           5

struct mb2_mmap_entry {
    uint64_t base;
    uint64_t length;
    uint32_t type;
    uint32_t reserved;
};

struct mb2_tag_mmap {
    uint32_t type;
    uint32_t size;
    uint32_t entry_size;    /* at least sizeof(struct mb2_mmap_entry) */
    uint32_t entry_version; /* 0 */
    /* entries follow, entry_size bytes apart */
};

/* Framebuffer (type 8): a common part, then colour information by type. */
#define MB2_FRAMEBUFFER_TYPE_INDEXED  0
#define MB2_FRAMEBUFFER_TYPE_RGB      1
#define MB2_FRAMEBUFFER_TYPE_EGA_TEXT 2

struct mb2_tag_framebuffer {
    uint32_t type;
    uint32_t size;
    uint64_t addr; /* physical */
    uint32_t pitch;
    uint32_t width;
    uint32_t height;
    uint8_t bpp;
    uint8_t fb_type;
    uint16_t reserved;
    /* for MB2_FRAMEBUFFER_TYPE_RGB: */
    uint8_t red_field_position;
    uint8_t red_mask_size;
    uint8_t green_field_position;
    uint8_t green_mask_size;
    uint8_t blue_field_position;
    uint8_t blue_mask_size;
};
#define MB2_FRAMEBUFFER_COMMON_SIZE 32u /* bytes before the colour information */
#define MB2_FRAMEBUFFER_RGB_SIZE    38u /* common part + six RGB bytes */

/* ELF sections (type 9): copies of the kernel's section headers. */
struct mb2_tag_elf_sections {
    uint32_t type;
    uint32_t size;
    uint32_t num;
    uint32_t entsize;
    uint32_t shndx; /* index of the section-name string table */
    /* section headers follow */
};
#define MB2_ELF_SECTIONS_HEADER_SIZE 20u

/* EFI system table pointers (types 11 and 12). */
struct mb2_tag_efi32 {
    uint32_t type;
    uint32_t size;
    uint32_t pointer;
};

struct mb2_tag_efi64 {
    uint32_t type;
    uint32_t size;
    uint64_t pointer;
};

/* ACPI (types 14 and 15): a copy of the RSDP follows the header. */
#define MB2_RSDP_V1_SIZE 20u
#define MB2_RSDP_V2_SIZE 36u

/* Image load base (type 21): where a relocatable image was placed. */
/* Module (type 3): the physical range the loader put the file in, then the
 * NUL-terminated string given with it (GRUB: the rest of the module2 line). */
struct mb2_tag_module {
    uint32_t type;
    uint32_t size;
    uint32_t mod_start; /* first byte */
    uint32_t mod_end;   /* one past the last byte */
    /* char string[] follows */
};

struct mb2_tag_load_base_addr {
    uint32_t type;
    uint32_t size;
    uint32_t load_base_addr;
};

/* A 64-bit ELF section header, as the ELF sections tag carries it. */
struct mb2_elf64_shdr {
    uint32_t sh_name;
    uint32_t sh_type;
    uint64_t sh_flags;
    uint64_t sh_addr;
    uint64_t sh_offset;
    uint64_t sh_size;
    uint32_t sh_link;
    uint32_t sh_info;
    uint64_t sh_addralign;
    uint64_t sh_entsize;
};

_Static_assert(sizeof(struct mb2_info_header) == 8, "multiboot2 info header layout");
_Static_assert(sizeof(struct mb2_tag) == 8, "multiboot2 tag header layout");
_Static_assert(sizeof(struct mb2_mmap_entry) == 24, "multiboot2 memory map entry layout");
_Static_assert(sizeof(struct mb2_tag_mmap) == 16, "multiboot2 memory map tag layout");
_Static_assert(offsetof(struct mb2_tag_framebuffer, bpp) == 28, "multiboot2 framebuffer layout");
_Static_assert(offsetof(struct mb2_tag_framebuffer, red_field_position) ==
                   MB2_FRAMEBUFFER_COMMON_SIZE, "multiboot2 framebuffer layout");
_Static_assert(offsetof(struct mb2_tag_framebuffer, blue_mask_size) + 1 == MB2_FRAMEBUFFER_RGB_SIZE,
               "multiboot2 framebuffer layout");
_Static_assert(sizeof(struct mb2_tag_elf_sections) == MB2_ELF_SECTIONS_HEADER_SIZE,
               "multiboot2 ELF sections tag layout");
_Static_assert(offsetof(struct mb2_tag_efi64, pointer) == 8, "multiboot2 EFI64 tag layout");
_Static_assert(sizeof(struct mb2_tag_module) == 16, "multiboot2 module tag layout");
_Static_assert(sizeof(struct mb2_tag_load_base_addr) == 12, "multiboot2 load base tag layout");
_Static_assert(sizeof(struct mb2_elf64_shdr) == 64, "ELF64 section header layout");

/* Most section headers the ELF sections tag may carry (we copy them). */
#define MB2_MAX_SECTION_HEADERS 64
/* Memory map entries the parser accepts: MEMMAP_MAX minus room for the
 * regions appended afterwards with boot_add_region() (the framebuffer, one
 * per module, the caller's kernel image). */
#define MB2_MEMMAP_MAX (MEMMAP_MAX - 8 - BOOT_MODULES_MAX)
/* Largest information block we agree to walk. */
#define MB2_INFO_MAX_SIZE MiB(1)

/* Validates the Multiboot2 boot information at `info` (a readable pointer) and
 * fills *out from scratch: protocol, memory map (types 1..5 -> usable,
 * reserved, ACPI reclaimable, ACPI NVS, bad; others reserved), RGB framebuffer
 * (none for EGA text, indexed or depths other than 16/24/32), command line,
 * bootloader name and version (split at the first space), ELF section headers
 * (copied into a static buffer of this module), ACPI RSDP (copied, the new one
 * preferred), firmware (EFI64 tag -> UEFI64, EFI32 -> UEFI32, else BIOS) and
 * the image load base (tag 21) as kernel_phys_base when present, and the
 * modules (type 3 tags, in order, at most BOOT_MODULES_MAX; each named by its
 * string, mod_end >= mod_start, wholly inside usable memory of the map; each
 * is added to the map as MEM_KERNEL, page-rounded, so that its frames are
 * never handed out; boot_info_validate checks the rest).
 * phys_to_virt is the offset that turns a physical address from a tag into a
 * readable pointer; it is recorded as symbols.sh_addr_to_virt. hhdm_offset and
 * the kernel_* fields are left for the caller. Returns NULL on success, else
 * one line naming what is wrong (a static string). */
const char *boot_from_multiboot2(struct boot_info *out, uint32_t magic, const void *info,
                                 uint64_t phys_to_virt);
