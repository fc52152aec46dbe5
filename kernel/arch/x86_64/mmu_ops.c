/* The CPU operations mm/ needs (mmu_ops.h), and the protection bits the
 * kernel turns on once it has its own GDT and IDT. */
#include "arch/x86_64/mmu_ops.h"

#include "arch/x86_64/cpu.h"
#include "lib/printf.h"

/* The kernel's PAT layout. A page's PAT index is (PAT << 2) | (PCD << 1) | PWT.
 *   index 0 WB   (PWT=0 PCD=0)      index 4 WP   (PAT=1)
 *   index 1 WT   (PWT=1)            index 5 WC   (PAT=1 PWT=1)
 *   index 2 UC-  (PCD=1)            index 6 UC-  (PAT=1 PCD=1)
 *   index 3 UC   (PCD=1 PWT=1)      index 7 UC   (all three)
 * Indices 0-3 equal the power-on default, so entries that do not use the PAT
 * bit mean the same before and after; 4 and 5 match what Limine leaves
 * (the framebuffer it maps WC stays WC). */
#define PAT_ENTRY(i, type) ((uint64_t)(type) << ((i) * 8))
#define KERNEL_PAT                                                                       \
    (PAT_ENTRY(0, PAT_TYPE_WB) | PAT_ENTRY(1, PAT_TYPE_WT) | PAT_ENTRY(2, PAT_TYPE_UC_MINUS) | \
     PAT_ENTRY(3, PAT_TYPE_UC) | PAT_ENTRY(4, PAT_TYPE_WP) | PAT_ENTRY(5, PAT_TYPE_WC) |   \
     PAT_ENTRY(6, PAT_TYPE_UC_MINUS) | PAT_ENTRY(7, PAT_TYPE_UC))
_Static_assert(KERNEL_PAT == 0x0007010500070406ULL, "PAT layout");

void arch_invlpg(vaddr_t va)
{
    __asm__ volatile("invlpg (%0)" ::"r"(va) : "memory");
}

paddr_t arch_read_cr3(void)
{
    return read_cr3() & 0x000ffffffffff000ULL;
}

void arch_write_cr3(paddr_t pml4)
{
    write_cr3(pml4);
}

/* Highest extended CPUID leaf (0 when the CPU reports none). */
static uint32_t max_ext_leaf(void)
{
    uint32_t max = cpuid(0x80000000, 0).eax;
    return (max & 0xffff0000U) == 0x80000000U ? max : 0;
}

static uint32_t ext_features_edx(void)
{
    return max_ext_leaf() >= 0x80000001 ? cpuid(0x80000001, 0).edx : 0;
}

unsigned arch_phys_addr_bits(void)
{
    if (max_ext_leaf() < 0x80000008)
        return 36;
    unsigned bits = cpuid(0x80000008, 0).eax & 0xff;
    return bits ? bits : 36;
}

bool arch_has_1g_pages(void)
{
    return ext_features_edx() & CPUID_EXT_EDX_PDPE1GB;
}

bool arch_has_nx(void)
{
    return ext_features_edx() & CPUID_EXT_EDX_NX;
}

/* Toggling CR4.PGE flushes global entries too; without PGE a CR3 load is all. */
void arch_flush_tlb_all(void)
{
    uint64_t cr4 = read_cr4();
    if (cr4 & CR4_PGE) {
        write_cr4(cr4 & ~CR4_PGE);
        write_cr4(cr4);
    } else {
        write_cr3(read_cr3());
    }
}

/* Programs KERNEL_PAT (layout above). Caches and TLBs are flushed around the
 * write so no line or translation keeps a stale memory type. Idempotent. */
void arch_pat_init(void)
{
    uint64_t flags = cpu_irq_save();
    __asm__ volatile("wbinvd" ::: "memory");
    arch_flush_tlb_all();
    wrmsr(MSR_PAT, KERNEL_PAT);
    __asm__ volatile("wbinvd" ::: "memory");
    arch_flush_tlb_all();
    cpu_irq_restore(flags);
}

uint64_t arch_rdtsc(void)
{
    return rdtsc();
}

static bool smap_on;

void cpu_enable_protections(void)
{
    bool nx = arch_has_nx();
    if (nx)
        wrmsr(MSR_EFER, rdmsr(MSR_EFER) | EFER_NXE);
    /* WP; and x87/SSE usable by programs (MP set, EM and TS clear; with
     * OSFXSR and OSXMMEXCPT below): the kernel itself never touches them, the
     * scheduler saves a program's state with FXSAVE (proc/sched.c) */
    write_cr0((read_cr0() | CR0_WP | CR0_MP) & ~(CR0_EM | CR0_TS));

    uint32_t ebx7 = 0, ecx7 = 0;
    if (cpuid(0, 0).eax >= 7) {
        struct cpuid_regs r = cpuid(7, 0);
        ebx7 = r.ebx;
        ecx7 = r.ecx;
    }
    uint64_t cr4 = read_cr4() | CR4_OSFXSR | CR4_OSXMMEXCPT;
    if (ebx7 & CPUID_7_EBX_SMEP)
        cr4 |= CR4_SMEP;
    if (ebx7 & CPUID_7_EBX_SMAP)
        cr4 |= CR4_SMAP;
    if (ecx7 & CPUID_7_ECX_UMIP)
        cr4 |= CR4_UMIP;
    write_cr4(cr4);
    smap_on = (cr4 & CR4_SMAP) != 0;

    kprintf("[cpu] protections: WP%s%s%s%s\n", nx ? " NX" : " (no NX)",
            (cr4 & CR4_SMEP) ? " SMEP" : "", (cr4 & CR4_SMAP) ? " SMAP" : "",
            (cr4 & CR4_UMIP) ? " UMIP" : "");
}

bool cpu_smap_enabled(void)
{
    return smap_on;
}

void user_access_begin(void)
{
    if (smap_on)
        __asm__ volatile("stac" ::: "memory", "cc");
}

void user_access_end(void)
{
    if (smap_on)
        __asm__ volatile("clac" ::: "memory", "cc");
}
