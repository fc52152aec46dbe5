/* Common memory-management definitions: the HHDM and address conversion. */
#pragma once

#include "lib/panic.h"
#include "lib/types.h"
#include "mm/memregion.h"

/* Offset of the higher-half direct map: virtual = physical + hhdm_offset.
 * Set once by main from the boot information before any mm code runs (on the
 * host: to an arena). */
extern uint64_t hhdm_offset;
/* Size of the physical range the HHDM covers (bytes from physical 0). */
extern uint64_t hhdm_size;

/* The sanitized memory map of this boot (mm/memmap.c's output for the
 * bootloader's map as boot/ converted it), made once by main before
 * frame_init and read by the mapper and the monitor. */
extern struct mem_region mm_memmap[MEMMAP_MAX];
extern size_t mm_memmap_count;

/* Physical address -> pointer through the HHDM. */
#define PHYS2VIRT(addr) ((void *)((uintptr_t)(addr) + hhdm_offset))
/* HHDM pointer -> physical address; panics for an address outside the HHDM
 * (other kernel addresses go through paging_translate). */
#define VIRT2PHYS(addr) mm_virt2phys_checked((const void *)(addr), __FILE__, __LINE__)

/* Implementation of VIRT2PHYS (mm/mm.c). */
paddr_t mm_virt2phys_checked(const void *va, const char *file, int line);
