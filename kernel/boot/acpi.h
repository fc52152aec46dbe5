/* The ACPI tables as far as SMP bring-up needs them: from the RSDP the
 * bootloader gave, through the RSDT or XSDT, to the MADT ("APIC"), which
 * lists the processors' local APIC IDs. Written from the ACPI specification
 * (6.5: 5.2.5 RSDP, 5.2.6 SDT header, 5.2.7 RSDT, 5.2.8 XSDT, 5.2.12 MADT).
 *
 * Portable: the tables are reached only through a caller-supplied map
 * function (the kernel's maps physical memory, arch/x86_64/acpi_map.c; the
 * host tests' and the fuzzer's serve a buffer). The parser never reads a byte
 * outside what the map function returned, validates the signature, length and
 * checksum of every table it reads (the RSDP, the RSDT/XSDT, the MADT; of the
 * other tables only their header is mapped and only the signature read), and
 * refuses anything malformed with one line. */
#pragma once

#include "arch/x86_64/cpu_local.h"
#include "boot/boot_info.h"
#include "lib/types.h"

/* The largest table the parser accepts (a larger length is taken as garbage). */
#define ACPI_TABLE_MAX MiB(1)

/* Maps [phys, phys + len) readable and returns a pointer to it, or NULL. The
 * pointer must stay valid until acpi_madt_cpus returns (the parser holds the
 * root table while it maps the others). */
typedef const void *(*acpi_map_fn)(paddr_t phys, size_t len, void *ctx);

struct acpi_cpus {
    uint32_t count;            /* usable CPUs kept in apic_id (at most CPU_MAX) */
    uint32_t apic_id[CPU_MAX]; /* in table order, each ID once */
    uint32_t listed;           /* all usable CPU entries, also those beyond CPU_MAX */
    paddr_t lapic_phys;        /* from the MADT, or its type-5 override (0: none given) */
    bool pcat_compat;          /* MADT flag PCAT_COMPAT: the 8259 PICs are present */
};

/* Finds the MADT from the RSDP in bi (bi->rsdp_copy when bi->rsdp_is_copy,
 * else the physical bi->rsdp), validates every table it reads and lists the
 * usable CPUs: type-0 (local APIC) and type-9 (local x2APIC) entries that are
 * enabled or online-capable, an APIC ID already kept or the broadcast ID
 * skipped. Returns NULL and fills *out, or one line "acpi: ..." naming what is
 * wrong and leaves *out untouched (the caller goes on with one CPU). The line
 * lives in a static buffer, valid until the next call: one caller at a time. */
const char *acpi_madt_cpus(const struct boot_info *bi, acpi_map_fn map, void *ctx,
                           struct acpi_cpus *out);
