/* The memory map as memory management sees it: a region is a physical range
 * with one type. mm owns these types; each boot path (boot/limine.c,
 * boot/multiboot2.c) converts its bootloader's answer into them, so mm never
 * depends on how the kernel was booted. */
#pragma once

#include "lib/types.h"

/* Memory-map types. The numbering follows Limine's (a superset of the
 * Multiboot2 types), so that conversion is a table and a log line can show
 * either number. */
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

/* One range of physical memory; type is an enum mem_type (any other value is
 * read as reserved by the sanitizer and named "unknown"). */
struct mem_region {
    paddr_t base;
    uint64_t length;
    uint32_t type; /* enum mem_type */
};

/* The most entries a memory map may have: the bootloader's map as converted
 * (the parsers refuse more) and the sanitized map alike. */
#define MEMMAP_MAX 512

/* The name of a memory type for log lines and the monitor ("usable",
 * "ACPI NVS", ...); "unknown" for a value outside enum mem_type. */
const char *mem_type_name(uint32_t type);
