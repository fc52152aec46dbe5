/* The ACPI tables on the running kernel (arch/x86_64/acpi_map.c): the
 * acpi_map_fn that reaches firmware tables through the HHDM, and the one call
 * SMP bring-up makes to list the CPUs. Kernel only. */
#pragma once

#include "boot/acpi.h"

/* Runs of contiguous pages one parse mapped itself (at most this many; a map
 * call that would need more is refused, which the parser reports as "not
 * mappable"). Firmware keeps its tables in a few regions, so a parse needs a
 * handful; the room is for a table list scattered page by page. */
#define ACPI_MAP_RUNS 64

struct acpi_map_ctx {
    uint32_t runs;
    struct {
        vaddr_t va;
        uint32_t pages;
    } run[ACPI_MAP_RUNS];
};

/* acpi_map_fn for kernel_as (ctx: a zeroed struct acpi_map_ctx): returns the
 * HHDM address of phys. Pages the HHDM already maps (ACPI reclaimable and NVS
 * memory, RAM) are used as they are; others (reserved memory, which the HHDM
 * leaves out) are mapped read-only, NX, write-back at their HHDM address and
 * recorded in ctx. NULL when the range wraps, lies beyond the physical
 * address width or the HHDM, meets a page mapped elsewhere, or mapping fails. */
const void *acpi_map_kernel(paddr_t phys, size_t len, void *ctx);

/* Unmaps every page acpi_map_kernel mapped for ctx and empties it. Pages that
 * were mapped before are left alone. */
void acpi_unmap_kernel(struct acpi_map_ctx *ctx);

/* acpi_madt_cpus on boot_ctx through acpi_map_kernel, the temporary mappings
 * removed again before it returns. NULL and *out filled, or the "acpi: ..."
 * line (the caller goes on with one CPU). One caller at a time. */
const char *acpi_boot_cpus(struct acpi_cpus *out);
