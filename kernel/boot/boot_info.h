/* struct boot_info: the one seam between bootloaders and the rest of the kernel.
 * Both the Limine and the Multiboot2 paths fill it (boot/limine.c,
 * boot/multiboot2.c); nothing after boot_info_validate() knows which ran.
 * Everything here is a copy owned by the kernel, except the pointers whose
 * comment says otherwise. */
#pragma once

#include "arch/x86_64/cpu_local.h" /* CPU_MAX (portable) */
#include "lib/symbols.h"
#include "lib/types.h"
#include "mm/memregion.h"

#define BOOT_CMDLINE_MAX  256
#define BOOT_NAME_MAX     64
/* Boot modules (programs the bootloader loaded next to the kernel): at most
 * this many, each named by a string of at most BOOT_MODULE_NAME_MAX - 1 bytes. */
#define BOOT_MODULES_MAX     16
#define BOOT_MODULE_NAME_MAX 64

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

/* One CPU the bootloader or firmware listed. */
struct boot_cpu {
    uint32_t lapic_id;     /* its local APIC ID */
    uint32_t processor_id; /* its ACPI processor UID */
    void *start_handle;    /* Limine: its struct limine_mp_info (bootloader-reclaimable
                              memory, HHDM) for limine_mp_goto; NULL otherwise */
};

/* The CPUs the bootloader started parked for us (Limine's MP response). The
 * Multiboot2 path leaves count 0: the kernel finds its CPUs in the ACPI MADT
 * instead (boot/acpi.h). */
struct boot_cpus {
    uint32_t count;        /* entries in cpu[], the BSP's included; 0: no usable list */
    uint32_t reported;     /* CPUs the bootloader listed, before the CPU_MAX cap */
    uint32_t bsp_lapic_id; /* the bootstrap CPU's APIC ID */
    bool x2apic;           /* the bootloader put every APIC in x2APIC mode */
    struct boot_cpu cpu[CPU_MAX];
    /* Limine: every CPU of a usable list, those beyond CPU_MAX too (its
     * struct limine_mp_info array, bootloader-reclaimable memory): the
     * kernel parks every AP it does not start. NULL/0 otherwise. */
    void *const *all_handles;
    uint64_t all_count;
    char note[112];        /* a line on a capped or unusable list, "" when none */
};

/* One file the bootloader loaded for us (Limine module, Multiboot2 module
 * tag). Its bytes stay where the bootloader put them for the kernel's whole
 * life: the memory map calls them MEM_KERNEL, so no frame of theirs is ever
 * handed out, and the HHDM maps them (read-only). */
struct boot_module {
    paddr_t phys;   /* first byte, 4 KiB aligned */
    uint64_t size;  /* bytes, > 0 */
    char name[BOOT_MODULE_NAME_MAX]; /* the string the configuration gave it, or
                                        else the last part of its path */
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
    struct mem_region memmap[MEMMAP_MAX];
    size_t memmap_count;

    struct boot_framebuffer fb;

    paddr_t kernel_phys_base;     /* physical address of the first loaded byte */
    vaddr_t kernel_virt_base;     /* its virtual address (link address) */
    uint64_t kernel_size;         /* bytes from base to the end of .bss, page rounded */

    paddr_t rsdp;                 /* physical address of the ACPI RSDP, 0 if none */
    uint8_t rsdp_copy[36];        /* Multiboot2 hands the RSDP inside its tags: a copy */
    bool rsdp_is_copy;

    struct symbols_source symbols; /* valid until the frame allocator starts */

    struct boot_cpus cpus;         /* Limine: the CPUs to start; valid until bootloader
                                      memory is reclaimed */

    struct boot_module modules[BOOT_MODULES_MAX]; /* in the order the bootloader gave them */
    size_t module_count;
};

/* The kernel's boot information, filled once during boot. */
extern struct boot_info boot_ctx;

/* Checks what every protocol must provide: a non-empty memory map with at
 * least 512 KiB of usable memory besides the kernel image (kernel_phys_base
 * and kernel_size must be set), a 4 KiB-aligned non-zero HHDM offset in the
 * higher half, a sane framebuffer (when present), a kernel base, and modules
 * that are each non-empty, 4 KiB aligned, without wrapping, wholly inside
 * MEM_KERNEL entries of the map, clear of the kernel image and of each other
 * (page-rounded), with distinct non-empty names. Returns NULL
 * when fine, otherwise one line naming what is wrong (the caller prints it
 * and stops). */
const char *boot_info_validate(const struct boot_info *bi);

/* Appends one region to bi's memory map (used by the Multiboot2 path to add
 * the kernel image as MEM_KERNEL). A zero length is ignored; a full map or a
 * region that wraps past 2^64 panics (the parsers leave room for this). */
void boot_add_region(struct boot_info *bi, paddr_t base, uint64_t len, uint32_t type);

/* Formats one error line (at most 159 bytes) for the boot parsers and
 * boot_info_validate and returns it. The line lives in one static buffer,
 * valid until the next call. */
__attribute__((format(printf, 1, 2))) const char *boot_error(const char *fmt, ...);

/* Checks entry i of a bootloader's memory map: not empty, not wrapping past
 * 2^64. Returns NULL, or the line "<who>: memory map entry <i> ..." (from
 * boot_error). */
const char *boot_check_region(const char *who, size_t i, paddr_t base, uint64_t length);
/* Checks an HHDM offset: non-zero, 4 KiB aligned, in the higher half. Returns
 * NULL, or the line "<who>: HHDM offset ..." (from boot_error). */
const char *boot_check_hhdm(const char *who, uint64_t offset);

/* True when every byte of [base, base + len) lies in some entry of bi's
 * memory map whose type bit (1u << type) is in type_mask (entries may be
 * adjacent or overlap). len 0 or a wrapping range: false. */
bool boot_range_in_map(const struct boot_info *bi, paddr_t base, uint64_t len, uint32_t type_mask);

/* Copies the name of a module into dst (BOOT_MODULE_NAME_MAX bytes): the
 * string when it is non-empty, else the last part of path ("/boot/hello.elf"
 * -> "hello.elf"). Reads neither past a NUL nor past 4096 bytes. Returns
 * false (dst then holds a truncated copy) when the name does not fit, is
 * empty or has a byte outside printable ASCII (0x20-0x7e: a name is typed
 * at the monitor and printed in messages). Either pointer may be NULL (= ""). */
bool boot_module_name(char *dst, const char *string, const char *path);

/* The module called `name` in bi, or NULL. */
const struct boot_module *boot_find_module(const struct boot_info *bi, const char *name);

/* Human-readable names. */
const char *firmware_name(enum firmware_type fw);
const char *boot_protocol_name(enum boot_protocol p);
