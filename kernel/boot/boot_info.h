/* struct boot_info: the one seam between bootloaders and the rest of the kernel.
 * Both the Limine and the Multiboot2 paths fill it (boot/limine.c,
 * boot/multiboot2.c); nothing after boot_info_validate() knows which ran.
 * Everything here is a copy owned by the kernel, except the pointers whose
 * comment says otherwise. */
#pragma once

#include "lib/types.h"

/* Internal memory-map types (numbering follows Limine's, which is a superset). */
enum mem_type {
    MEM_USABLE = 0,
    MEM_RESERVED = 1,
    MEM_ACPI_RECLAIMABLE = 2,
    MEM_ACPI_NVS = 3,
    MEM_BAD = 4,
    MEM_BOOTLOADER_RECLAIMABLE = 5,
    MEM_KERNEL = 6, /* kernel image and modules */
    MEM_FRAMEBUFFER = 7,
    /* Reserved, but the bootloader maps it in its HHDM because firmware data
     * the kernel may read lives there: ACPI tables (Limine base revision 4+),
     * SMBIOS tables and EFI runtime memory (5+). Never allocated. */
    MEM_RESERVED_MAPPED = 8,
    MEM_TYPE_COUNT
};

struct mem_region {
    paddr_t base;
    uint64_t length;
    uint32_t type; /* enum mem_type */
};

#define BOOT_MEMMAP_MAX   512
#define BOOT_CMDLINE_MAX  256
#define BOOT_NAME_MAX     64

enum boot_protocol { BOOT_PROTO_NONE = 0, BOOT_PROTO_LIMINE = 1, BOOT_PROTO_MULTIBOOT2 = 2 };
enum firmware_type { FW_UNKNOWN = 0, FW_BIOS = 1, FW_UEFI32 = 2, FW_UEFI64 = 3 };

struct boot_framebuffer {
    bool present;
    paddr_t phys;         /* physical address of pixel (0,0) */
    uint32_t width, height;
    uint32_t pitch;       /* bytes per row */
    uint16_t bpp;         /* 16, 24 or 32 */
    uint8_t red_size, red_shift;
    uint8_t green_size, green_shift;
    uint8_t blue_size, blue_shift;
};

/* Where the kernel's own ELF symbols can be read (for backtraces). Valid only
 * until the frame allocator starts: symbols_init() copies what it needs. */
struct boot_symbols {
    /* Limine: the whole kernel ELF file, mapped (virtual address). */
    const void *elf_file;
    uint64_t elf_file_size;
    /* Multiboot2: the ELF section headers (virtual address of a copy) and the
     * offset to add to a section's sh_addr (physical) to reach it. */
    const void *shdrs;
    uint32_t shnum, shentsize, shstrndx;
    uint64_t sh_addr_to_virt;
};

struct boot_info {
    enum boot_protocol protocol;
    enum firmware_type firmware;
    char bootloader_name[BOOT_NAME_MAX];
    char bootloader_version[BOOT_NAME_MAX];
    char cmdline[BOOT_CMDLINE_MAX];

    uint64_t base_revision;       /* Limine base revision in effect (0 for Multiboot2) */
    uint64_t base_revision_asked; /* Limine: the base revision the kernel asked for */
    bool base_revision_accepted;  /* Limine: the bootloader granted the one asked for */
    bool base_revision_named;     /* Limine: it named the revision used (revision 3+ loaders) */
    uint64_t hhdm_offset;         /* virtual = physical + hhdm_offset */

    /* The bootloader's memory map converted to enum mem_type; not yet sanitized.
     * On Multiboot2 the kernel image is added as MEM_KERNEL. */
    struct mem_region memmap[BOOT_MEMMAP_MAX];
    size_t memmap_count;

    struct boot_framebuffer fb;

    paddr_t kernel_phys_base;     /* physical address of the first loaded byte */
    vaddr_t kernel_virt_base;     /* its virtual address (link address) */
    uint64_t kernel_size;         /* bytes from base to the end of .bss, page rounded */

    paddr_t rsdp;                 /* physical address of the ACPI RSDP, 0 if none */
    uint8_t rsdp_copy[36];        /* Multiboot2 hands the RSDP inside its tags: a copy */
    bool rsdp_is_copy;

    struct boot_symbols symbols;
};

/* The kernel's boot information, filled once during boot. */
extern struct boot_info boot_ctx;

/* Checks what every protocol must provide: a non-empty memory map with at
 * least 512 KiB of usable memory besides the kernel image (kernel_phys_base
 * and kernel_size must be set), a 4 KiB-aligned non-zero HHDM offset in the
 * higher half, a sane framebuffer (when present), a kernel base. Returns NULL
 * when fine, otherwise one line naming what is wrong (the caller prints it
 * and stops). */
const char *boot_info_validate(const struct boot_info *bi);

/* Appends one region to bi's memory map (used by the Multiboot2 path to add
 * the kernel image as MEM_KERNEL). A zero length is ignored; a full map or a
 * region that wraps past 2^64 panics (the parsers leave room for this). */
void boot_add_region(struct boot_info *bi, paddr_t base, uint64_t len, uint32_t type);

/* Human-readable names. */
const char *mem_type_name(uint32_t type);
const char *firmware_name(enum firmware_type fw);
const char *boot_protocol_name(enum boot_protocol p);
