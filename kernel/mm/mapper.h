/* The kernel's own address space (the seed's mapper_full_map).
 *
 * Virtual layout (upper half only; nothing below 0xffff800000000000 is mapped,
 * so virtual address 0 faults):
 *
 *   hhdm_offset + phys          the HHDM: every memory-map range of RAM-like
 *                               type (usable, bootloader-reclaimable, ACPI
 *                               reclaimable/NVS, kernel/modules) WB, framebuffer
 *                               ranges WC; RW+NX; 1 GiB pages where the CPU has
 *                               them, else 2 MiB, 4 KiB at unaligned edges.
 *                               Reserved ranges and holes (MMIO) stay unmapped:
 *                               caching MMIO write-back is a hazard.
 *   MAPPER_FB_BASE ...          the framebuffer, WC, RW+NX
 *   MAPPER_STACK_BASE ...       kernel stacks (mapper_alloc_stack), RW+NX, an
 *                               unmapped guard page below each
 *   0xffffffff80200000 ...      the kernel image at its link address:
 *                               text R+X, rodata R+NX, data+bss RW+NX
 *
 * No mapping has PAGE_USER. mapper_build is portable (host-tested);
 * mapper_full_map (mm/mapper_kernel.c) feeds it from the linker symbols,
 * mm_memmap and what main passes from the boot information, and loads the
 * result. */
#pragma once

#include "lib/types.h"
#include "mm/memregion.h"
#include "mm/paging.h"

/* The kernel half's PML4 entries are fixed when the tables are built
 * (paging_kernel_half_prepare): the HHDM's slots and the windows from
 * MAPPER_WINDOWS_BASE up (slots 504..511) get their PDPTs once, for good;
 * kernel mappings anywhere else are refused. Slots 504-505 are a scratch
 * window for the self-tests. */
#define MAPPER_WINDOWS_BASE 0xfffffc0000000000ULL
#define MAPPER_FB_BASE    0xfffffd0000000000ULL /* framebuffer window, 1 TiB */
#define MAPPER_STACK_BASE 0xfffffe0000000000ULL /* kernel stacks, 1 TiB */
#define MAPPER_STACK_END  0xffffff0000000000ULL
#define MAPPER_HHDM_LIMIT MAPPER_FB_BASE        /* the HHDM must end below this */

/* What mapper_build needs to know, all of it plain data (host-testable). */
struct mapper_layout {
    paddr_t kernel_phys;              /* physical address of kernel_virt */
    vaddr_t kernel_virt;              /* link address of the first kernel byte */
    vaddr_t text_start, text_end;     /* page-aligned virtual section bounds */
    vaddr_t rodata_start, rodata_end;
    vaddr_t data_start, data_end;     /* .data and .bss */
    const struct mem_region *map;     /* sanitized: sorted, disjoint, page aligned */
    size_t map_count;
    uint64_t hhdm_offset;             /* virtual = physical + hhdm_offset */
    paddr_t fb_phys;                  /* framebuffer pixel (0,0); fb_size 0 = none */
    uint64_t fb_size;                 /* bytes (pitch * height) */
};

/* What mapper_build produced. */
struct mapper_result {
    uint64_t hhdm_size;   /* the HHDM spans physical [0, hhdm_size) (with holes) */
    uint64_t hhdm_mapped; /* bytes actually mapped in the HHDM */
    vaddr_t fb_virt;      /* virtual address of framebuffer pixel (0,0), 0 if none */
    uint64_t table_pages; /* page-table pages of the new address space */
};

/* Builds a new address space into *as following l (see the layout above),
 * without loading it; fills *out when non-NULL. Logs the layout. Returns 0, or
 * -PAGING_EINVAL for an inconsistent layout / -PAGING_ENOMEM, with nothing left
 * allocated. */
int mapper_build(struct addrspace *as, const struct mapper_layout *l, struct mapper_result *out);
/* Loads *as (from mapper_build) into CR3 and makes it kernel_as; sets hhdm_size
 * and the framebuffer address from *r. Never fails. */
void mapper_install(struct addrspace *as, const struct mapper_result *r);
/* Builds the kernel address space from the linker symbols, mm_memmap and
 * hhdm_offset, with the kernel image loaded at physical kernel_phys and the
 * framebuffer at [fb_phys, fb_phys + fb_size) (fb_size 0: none), and loads it
 * (kernel only: mm/mapper_kernel.c). Panics when that fails. */
void mapper_full_map(paddr_t kernel_phys, paddr_t fb_phys, uint64_t fb_size);
/* Virtual address of framebuffer pixel (0,0) in the kernel address space, or
 * NULL when there is none or mapper_install has not run. */
void *mapper_framebuffer(void);
/* Maps `pages` fresh zeroed frames RW+NX in kernel_as's stack window with an
 * unmapped guard page below; returns the top (one past the highest byte), or 0
 * when pages is 0 or frames / window space ran out (nothing leaked). */
vaddr_t mapper_alloc_stack(size_t pages);
/* mapper_alloc_stack for a thread's kernel stack: no log line, and the
 * window space of a stack freed by mapper_free_thread_stack is reused. */
vaddr_t mapper_alloc_thread_stack(size_t pages);
/* Unmaps a stack from mapper_alloc_thread_stack (top, pages as returned and
 * asked), on every CPU, and frees its frames; its window space is kept for
 * the next thread stack of that size. */
void mapper_free_thread_stack(vaddr_t top, size_t pages);
