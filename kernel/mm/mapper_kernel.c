/* mapper_full_map: the kernel-only half of the mapper. It reads the linker
 * symbols, adds what main passes from the boot information, hands them to
 * the portable mapper_build, and loads the result. (Listed in the
 * Makefile's KERNEL_ONLY: the host has no kernel image to describe; the
 * #ifndef keeps the host build linking either way.) */
#ifndef SLAYER_HOST
#include "arch/x86_64/mmu_ops.h"
#include "lib/printf.h"
#include "mm/mapper.h"
#include "mm/mm.h"

extern char __kernel_start[], __text_start[], __text_end[], __rodata_start[], __rodata_end[],
    __data_start[], __data_end[];

void mapper_full_map(paddr_t kernel_phys, paddr_t fb_phys, uint64_t fb_size)
{
    struct mapper_layout l = {
        .kernel_phys = kernel_phys,
        .kernel_virt = (vaddr_t)__kernel_start,
        .text_start = (vaddr_t)__text_start,
        .text_end = (vaddr_t)__text_end,
        .rodata_start = (vaddr_t)__rodata_start,
        .rodata_end = (vaddr_t)__rodata_end,
        .data_start = (vaddr_t)__data_start,
        .data_end = (vaddr_t)__data_end,
        .map = mm_memmap,
        .map_count = mm_memmap_count,
        .hhdm_offset = hhdm_offset,
        .fb_phys = fb_size ? fb_phys : 0,
        .fb_size = fb_size,
    };
    klog("mm", "mapper: building the kernel address space (%s pages for the HHDM)",
         arch_has_1g_pages() ? "1 GiB" : "2 MiB");

    struct addrspace as;
    struct mapper_result r;
    int err = mapper_build(&as, &l, &r);
    if (err)
        panic("mapper: cannot build the kernel address space: %s", paging_strerror(err));
    mapper_install(&as, &r);
    klog("mm", "mapper: CR3 = %#llx loaded; framebuffer at %p; %llu page-table pages in use",
         (unsigned long long)as.pml4, mapper_framebuffer(),
         (unsigned long long)paging_table_pages());
}
#endif /* !SLAYER_HOST */
