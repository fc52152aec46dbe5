/* The HHDM offset and the checked VIRT2PHYS conversion. */
#include "mm/mm.h"

uint64_t hhdm_offset;
uint64_t hhdm_size;
struct mem_region mm_memmap[MEMMAP_MAX];
size_t mm_memmap_count;

paddr_t mm_virt2phys_checked(const void *va, const char *file, int line)
{
    uintptr_t v = (uintptr_t)va;
    if (v < hhdm_offset || v - hhdm_offset >= hhdm_size)
        panic_at(file, line, "VIRT2PHYS(%p): address outside the HHDM [%#llx, +%#llx)",
                 va, (unsigned long long)hhdm_offset, (unsigned long long)hhdm_size);
    return v - hhdm_offset;
}
