/* GDT: null, kernel code/data, user data/code, and one 16-byte TSS descriptor.
 * The TSS holds one IST stack per vector that runs on an IST (#DF, NMI, #MC),
 * never one shared by two vectors: gdt.h explains why, and why #PF has none.
 * Every CPU has its own struct gdt_block inside its per-CPU block; the
 * accessors act on the running CPU's (found through GS). */
#include "arch/x86_64/gdt.h"

#include "arch/x86_64/percpu.h"

/* Access-byte bits of a code/data descriptor. */
#define SEG_ACCESSED (1 << 0)
#define SEG_RW       (1 << 1) /* readable code / writable data */
#define SEG_CODE     (1 << 3)
#define SEG_NOTSYS   (1 << 4) /* code or data, not a system descriptor */
#define SEG_DPL3     (3 << 5)
#define SEG_PRESENT  (1 << 7)
/* Flag nibble (bits 52..55): L = 64-bit code, G = 4 KiB granularity. */
#define SEG_FLAG_L   (1ULL << 53)
#define SEG_FLAG_DB  (1ULL << 54)
#define SEG_FLAG_G   (1ULL << 55)
#define SYS_TSS_AVAILABLE 0x9 /* 64-bit TSS, not busy */

/* In long mode base and limit are ignored for code/data (except FS/GS bases,
 * which come from MSRs): the descriptors carry only access bits and flags. */
#define SEG_DESC(access, flags) (((uint64_t)(access) << 40) | (flags) | 0xffffULL | (0xfULL << 48))

/* The BSP's boot-time IST stacks, one per slot (gdt.h says why they may not
 * be shared): used until main.c moves each IST to a guarded stack of its own
 * (gdt_set_ist_stack), once the kernel's page tables exist. */
static uint8_t ist_stacks[IST_COUNT][IST_STACK_SIZE] __attribute__((aligned(16)));

struct gdt_pointer {
    uint16_t limit;
    uint64_t base;
} PACKED;
_Static_assert(sizeof(struct gdt_pointer) == 10, "lgdt operand layout");

static void set_tss_descriptor(uint64_t *gdt, unsigned idx, uint64_t base, uint32_t limit)
{
    /* The 16-byte system descriptor: the low 8 bytes look like a segment
     * descriptor, the next 4 hold base bits 32..63. */
    uint64_t lo = (limit & 0xffffULL) | ((base & 0xffffffULL) << 16) |
                  ((uint64_t)(SYS_TSS_AVAILABLE | SEG_PRESENT) << 40) |
                  ((uint64_t)((limit >> 16) & 0xf) << 48) | (((base >> 24) & 0xffULL) << 56);
    gdt[idx] = lo;
    gdt[idx + 1] = base >> 32;
}

void gdt_load(struct gdt_block *g)
{
    uint64_t *gdt = g->gdt;
    struct tss *tss = &g->tss;
    gdt[0] = 0;
    gdt[GDT_KERNEL_CODE / 8] = SEG_DESC(SEG_PRESENT | SEG_NOTSYS | SEG_CODE | SEG_RW | SEG_ACCESSED,
                                        SEG_FLAG_L | SEG_FLAG_G);
    gdt[GDT_KERNEL_DATA / 8] = SEG_DESC(SEG_PRESENT | SEG_NOTSYS | SEG_RW | SEG_ACCESSED,
                                        SEG_FLAG_DB | SEG_FLAG_G);
    gdt[GDT_USER_DATA / 8] = SEG_DESC(SEG_PRESENT | SEG_DPL3 | SEG_NOTSYS | SEG_RW | SEG_ACCESSED,
                                      SEG_FLAG_DB | SEG_FLAG_G);
    gdt[GDT_USER_CODE / 8] = SEG_DESC(SEG_PRESENT | SEG_DPL3 | SEG_NOTSYS | SEG_CODE | SEG_RW |
                                          SEG_ACCESSED,
                                      SEG_FLAG_L | SEG_FLAG_G);

    for (unsigned i = 0; i < IST_COUNT; i++)
        tss->ist[i] = g->ist_hi[i];
    tss->iomap_base = sizeof(struct tss); /* no I/O permission bitmap */
    set_tss_descriptor(gdt, GDT_TSS / 8, (uint64_t)(uintptr_t)tss, sizeof(struct tss) - 1);

    struct gdt_pointer ptr = {sizeof(g->gdt) - 1, (uint64_t)(uintptr_t)gdt};
    __asm__ volatile(
        "lgdt %0\n\t"
        "pushq %1\n\t"          /* far return into the new CS */
        "leaq 1f(%%rip), %%rax\n\t"
        "pushq %%rax\n\t"
        "lretq\n"
        "1:\n\t"
        "movw %w2, %%ax\n\t"
        "movw %%ax, %%ds\n\t"
        "movw %%ax, %%es\n\t"
        "movw %%ax, %%ss\n\t"
        "xorl %%eax, %%eax\n\t" /* FS/GS bases come from MSRs; null selectors */
        "movw %%ax, %%fs\n\t"
        "movw %%ax, %%gs\n\t"
        "ltr %w3"
        :
        : "m"(ptr), "i"(GDT_KERNEL_CODE), "r"((uint64_t)GDT_KERNEL_DATA), "r"((uint16_t)GDT_TSS)
        : "rax", "memory");
}

void gdt_init(void)
{
    struct gdt_block *g = &percpu_bsp()->gdt;
    for (unsigned i = 0; i < IST_COUNT; i++) {
        g->ist_lo[i] = (uint64_t)(uintptr_t)ist_stacks[i];
        g->ist_hi[i] = g->ist_lo[i] + IST_STACK_SIZE;
    }
    gdt_load(g);
}

static struct gdt_block *mine(void)
{
    return &this_cpu_block()->gdt;
}

void gdt_set_kernel_stack(uint64_t rsp0)
{
    mine()->tss.rsp[0] = rsp0;
    this_cpu()->syscall_rsp = rsp0; /* SYSCALL enters on the same stack */
}

uint64_t gdt_kernel_stack(void)
{
    return mine()->tss.rsp[0];
}

bool gdt_set_ist_stack(unsigned ist, uint64_t lo, uint64_t hi)
{
    if (ist < 1 || ist > IST_COUNT || hi <= lo || (hi & 15))
        return false;
    struct gdt_block *g = mine();
    g->ist_lo[ist - 1] = lo;
    g->ist_hi[ist - 1] = hi;
    g->tss.ist[ist - 1] = hi; /* read by the CPU at the next exception on that IST */
    return true;
}

bool gdt_ist_range(unsigned ist, uint64_t *lo, uint64_t *hi)
{
    if (ist < 1 || ist > IST_COUNT)
        return false;
    *lo = mine()->ist_lo[ist - 1];
    *hi = mine()->ist_hi[ist - 1];
    return true;
}
