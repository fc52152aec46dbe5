/* Thin wrappers around single x86_64 instructions (port I/O, control
 * registers, MSRs, CPUID, TSC) and the architectural bit numbers they need.
 * Everything here is a static inline; the kernel's only other CPU code is in
 * mmu_ops.c, gdt.c, idt.c and the assembly stubs. */
#pragma once

#include "arch/x86_64/cpu_local.h" /* cpu_irq_save/restore, cpu_index */
#include "lib/types.h"

/* ---- control-register bits (Intel SDM vol. 3, 2.5) ---- */
#define CR0_PE (1ULL << 0)  /* protected mode */
#define CR0_MP (1ULL << 1)
#define CR0_EM (1ULL << 2)
#define CR0_TS (1ULL << 3)
#define CR0_NE (1ULL << 5)
#define CR0_WP (1ULL << 16) /* supervisor writes honour read-only pages */
#define CR0_AM (1ULL << 18)
#define CR0_NW (1ULL << 29)
#define CR0_CD (1ULL << 30) /* cache disable */
#define CR0_PG (1ULL << 31)

#define CR4_PAE  (1ULL << 5)
#define CR4_PGE  (1ULL << 7)  /* global pages */
#define CR4_OSFXSR (1ULL << 9)
#define CR4_OSXMMEXCPT (1ULL << 10) /* SIMD floating-point exceptions as #XM */
#define CR4_UMIP (1ULL << 11) /* sgdt/sidt/sldt/smsw/str faulting in user mode */
#define CR4_LA57 (1ULL << 12) /* 5-level paging */
#define CR4_FSGSBASE (1ULL << 16)
#define CR4_SMEP (1ULL << 20) /* no kernel execution of user pages */
#define CR4_SMAP (1ULL << 21) /* no kernel access to user pages */

/* ---- RFLAGS ---- */
#define RFLAGS_CF (1ULL << 0)
#define RFLAGS_TF (1ULL << 8)
#define RFLAGS_IF (1ULL << 9)
#define RFLAGS_DF (1ULL << 10)
#define RFLAGS_AC (1ULL << 18)
#define RFLAGS_NT (1ULL << 14)

/* ---- MSRs ---- */
#define MSR_PAT            0x277
#define MSR_EFER           0xC0000080
#define MSR_STAR           0xC0000081
#define MSR_LSTAR          0xC0000082
#define MSR_FMASK          0xC0000084
#define MSR_FS_BASE        0xC0000100
#define MSR_GS_BASE        0xC0000101
#define MSR_KERNEL_GS_BASE 0xC0000102

#define EFER_SCE (1ULL << 0)  /* syscall/sysret */
#define EFER_LME (1ULL << 8)  /* long mode enable */
#define EFER_LMA (1ULL << 10) /* long mode active */
#define EFER_NXE (1ULL << 11) /* the XD/NX page bit is honoured */

/* PAT memory types (the values one PAT byte can hold). */
#define PAT_TYPE_UC       0x00
#define PAT_TYPE_WC       0x01
#define PAT_TYPE_WT       0x04
#define PAT_TYPE_WP       0x05
#define PAT_TYPE_WB       0x06
#define PAT_TYPE_UC_MINUS 0x07

/* ---- CPUID feature bits ---- */
#define CPUID_EXT_EDX_NX      (1U << 20) /* leaf 0x80000001 */
#define CPUID_EXT_EDX_PDPE1GB (1U << 26)
#define CPUID_EXT_EDX_LM      (1U << 29)
#define CPUID_7_EBX_SMEP      (1U << 7)  /* leaf 7, subleaf 0 */
#define CPUID_7_EBX_SMAP      (1U << 20)
#define CPUID_7_ECX_UMIP      (1U << 2)
#define CPUID_7_EBX_RDSEED    (1U << 18)
#define CPUID_1_ECX_RDRAND    (1U << 30) /* leaf 1 */

/* ---- port I/O ---- */
static inline void outb(uint16_t port, uint8_t v) { __asm__ volatile("outb %0, %1" ::"a"(v), "Nd"(port)); }
static inline void outw(uint16_t port, uint16_t v) { __asm__ volatile("outw %0, %1" ::"a"(v), "Nd"(port)); }
static inline void outl(uint16_t port, uint32_t v) { __asm__ volatile("outl %0, %1" ::"a"(v), "Nd"(port)); }

static inline uint8_t inb(uint16_t port)
{
    uint8_t v;
    __asm__ volatile("inb %1, %0" : "=a"(v) : "Nd"(port));
    return v;
}

static inline uint16_t inw(uint16_t port)
{
    uint16_t v;
    __asm__ volatile("inw %1, %0" : "=a"(v) : "Nd"(port));
    return v;
}

static inline uint32_t inl(uint16_t port)
{
    uint32_t v;
    __asm__ volatile("inl %1, %0" : "=a"(v) : "Nd"(port));
    return v;
}

/* About a microsecond of delay: a write to the unused POST port 0x80. */
static inline void io_wait(void) { outb(0x80, 0); }

/* ---- control registers ---- */
#define CPU_DEFINE_CR(n)                                                        \
    static inline uint64_t read_cr##n(void)                                     \
    {                                                                           \
        uint64_t v;                                                             \
        __asm__ volatile("mov %%cr" #n ", %0" : "=r"(v));                       \
        return v;                                                               \
    }                                                                           \
    static inline void write_cr##n(uint64_t v)                                  \
    {                                                                           \
        __asm__ volatile("mov %0, %%cr" #n ::"r"(v) : "memory");                \
    }
CPU_DEFINE_CR(0)
CPU_DEFINE_CR(2)
CPU_DEFINE_CR(3)
CPU_DEFINE_CR(4)
#undef CPU_DEFINE_CR

/* ---- MSRs and CPUID ---- */
static inline uint64_t rdmsr(uint32_t msr)
{
    uint32_t lo, hi;
    __asm__ volatile("rdmsr" : "=a"(lo), "=d"(hi) : "c"(msr));
    return ((uint64_t)hi << 32) | lo;
}

static inline void wrmsr(uint32_t msr, uint64_t v)
{
    __asm__ volatile("wrmsr" ::"c"(msr), "a"((uint32_t)v), "d"((uint32_t)(v >> 32)) : "memory");
}

struct cpuid_regs {
    uint32_t eax, ebx, ecx, edx;
};

/* Executes CPUID with EAX = leaf, ECX = subleaf. */
static inline struct cpuid_regs cpuid(uint32_t leaf, uint32_t subleaf)
{
    struct cpuid_regs r;
    __asm__ volatile("cpuid" : "=a"(r.eax), "=b"(r.ebx), "=c"(r.ecx), "=d"(r.edx)
                     : "a"(leaf), "c"(subleaf));
    return r;
}

/* ---- flags, interrupts, halting ---- */
static inline uint64_t read_rflags(void)
{
    uint64_t f;
    __asm__ volatile("pushfq; popq %0" : "=r"(f));
    return f;
}

static inline void cpu_cli(void) { __asm__ volatile("cli" ::: "memory"); }
static inline void cpu_sti(void) { __asm__ volatile("sti" ::: "memory"); }
static inline void cpu_hlt(void) { __asm__ volatile("hlt" ::: "memory"); }
/* Spin-loop hint. */
static inline void cpu_pause(void) { __asm__ volatile("pause" ::: "memory"); }

/* Stops this CPU for good: interrupts off, hlt in a loop (an NMI only
 * wakes it into the next hlt). */
static inline NORETURN void cpu_halt_forever(void)
{
    for (;;)
        __asm__ volatile("cli; hlt" ::: "memory");
}

static inline uint64_t rdtsc(void)
{
    uint32_t lo, hi;
    __asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
    return ((uint64_t)hi << 32) | lo;
}

/* Turns on the CPU's protection features the kernel relies on: EFER.NXE
 * (when NX exists), CR0.WP, and CR4.SMEP, CR4.SMAP and CR4.UMIP (when
 * present). Logs what it enabled. (mmu_ops.c) */
void cpu_enable_protections(void);
/* Opens a window in which kernel code may read and write user pages (STAC
 * when SMAP is on; nothing otherwise). Pair with user_access_end(). */
void user_access_begin(void);
/* Closes the window user_access_begin() opened (CLAC when SMAP is on). */
void user_access_end(void);
/* True when CR4.SMAP was turned on by cpu_enable_protections(). */
bool cpu_smap_enabled(void);
