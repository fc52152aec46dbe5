/* The CPU operations the portable mm/ code needs, as plain functions so that
 * host builds can replace them (tests/host/support.c). Kernel versions live in
 * arch/x86_64/mmu_ops.c. */
#pragma once

#include "lib/types.h"

/* Invalidates the TLB entry for one virtual address. */
void arch_invlpg(vaddr_t va);
/* Returns the physical address of the active PML4 (CR3 without flag bits). */
paddr_t arch_read_cr3(void);
/* Loads a new PML4 (flushes non-global TLB entries). */
void arch_write_cr3(paddr_t pml4);
/* Flushes every TLB entry of this CPU, global ones included. */
void arch_flush_tlb_all(void);
/* Invalidates [start, end) on every other online CPU (the kernel half is in
 * every CR3) and returns when each has; end 0 stands for 2^64, so a range can
 * end with the last page of the address space. A range above a threshold is a full
 * flush there (global entries included when `global`). Waits with interrupts
 * on; never called from an interrupt handler. The caller invalidates its own
 * TLB itself. */
void arch_tlb_shootdown(vaddr_t start, vaddr_t end, bool global);
/* arch_tlb_shootdown on the online CPUs of `cpus` (bit i: CPU index i) other
 * than the caller's only: for a user address space, the CPUs that have it
 * loaded. Nothing is sent when that set is empty. */
void arch_tlb_shootdown_cpus(uint32_t cpus, vaddr_t start, vaddr_t end, bool global);
/* Shootdowns that sent IPIs so far, pages the handlers invalidated one by one,
 * and full flushes they did instead (kernel: arch/x86_64/tlb.c). */
void arch_tlb_stats(uint64_t *count, uint64_t *pages, uint64_t *full);
/* MAXPHYADDR from CPUID 0x80000008 (36 when the leaf is missing). */
unsigned arch_phys_addr_bits(void);
/* True when the CPU supports 1 GiB pages (CPUID 0x80000001 EDX bit 26). */
bool arch_has_1g_pages(void);
/* True when the CPU supports the NX bit (CPUID 0x80000001 EDX bit 20). */
bool arch_has_nx(void);
/* Programs the PAT MSR with the kernel's layout (see mm/paging.h cache modes). */
void arch_pat_init(void);
/* Reads the time-stamp counter. */
uint64_t arch_rdtsc(void);
