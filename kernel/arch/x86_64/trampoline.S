/* The AP start-up trampoline (ap_start.h describes the page and its data
 * block; docs/smp.md, "Starting APs without Limine").
 *
 * trampoline_start .. trampoline_end is copied to offset 0 of a page below
 * 1 MiB; a start-up IPI with vector = page >> 12 starts the AP there in real
 * mode with CS = page >> 4, IP = 0. The code is position-independent: real
 * mode addresses are offsets from CS, and from protected mode on EBP holds
 * the page's physical address. The data block (TRAMP_DATA) was filled by
 * the BSP. Steps:
 *   real mode      : DS = CS, EBP = page, lgdt of the block's GDT, CR0.PE,
 *                    far jump to 32-bit code;
 *   protected mode : flat data segments; claim the block with a compare-
 *                    exchange of our APIC ID (CPUID) against TD_CLAIM (not
 *                    ours: note it and halt); the BSP's PAT (before paging:
 *                    no translation or cache line has a memory type yet),
 *                    CR4.PAE, the temporary PML4, the BSP's EFER (LME, NXE:
 *                    the kernel's tables use NX), the BSP's CR0 (PG, WP,
 *                    caches on), far jump to 64-bit code;
 *   long mode      : read the rest of the block into registers, mark it
 *                    taken, jump to ap_entry64 in the higher half;
 *   ap_entry64     : kernel_as's CR3 (may lie above 4 GiB), the BSP's CR4
 *                    (PGE, SMEP, SMAP, UMIP, MCE as the BSP has them), the
 *                    AP's own stack, then smp_ap_enter(cpu). */
#include "arch/x86_64/ap_start.h"

#define TD(f) TRAMP_DATA + f

    .section .rodata.trampoline, "a"
    .globl trampoline_start, trampoline_end
    .code16
trampoline_start:
    cli
    cld
    movw %cs, %ax
    movw %ax, %ds
    xorl %ebp, %ebp
    movw %ax, %bp
    shll $4, %ebp                       /* EBP = the page's physical address */
    lgdtl TD(TD_GDTR)
    movl %cr0, %eax
    orl $1, %eax                        /* PE */
    movl %eax, %cr0
    ljmpl *TD(TD_PM32)

    .code32
tramp_pm32:
    movw $TRAMP_SEL_DATA, %ax
    movw %ax, %ds
    movw %ax, %es
    movw %ax, %ss
    movw %ax, %fs
    movw %ax, %gs

    /* Our APIC ID: CPUID leaf 0xB (x2APIC ID, 32 bits) when the CPU has it,
     * else leaf 1 EBX[31:24]. */
    xorl %eax, %eax
    cpuid
    cmpl $0xb, %eax
    jb 1f
    movl $0xb, %eax
    xorl %ecx, %ecx
    cpuid
    testl %ebx, %ebx                    /* leaf 0xB not really implemented */
    jz 1f
    movl %edx, %edi
    jmp 2f
1:  movl $1, %eax
    cpuid
    shrl $24, %ebx
    movl %ebx, %edi
2:  movl %edi, %eax
    movl $TD_CLAIMED, %ecx
    lock cmpxchgl %ecx, TD(TD_CLAIM)(%ebp)
    jne tramp_not_ours

    movl $0x277, %ecx                   /* IA32_PAT */
    movl TD(TD_PAT)(%ebp), %eax
    movl TD(TD_PAT) + 4(%ebp), %edx
    wrmsr
    movl $0x20, %eax                    /* CR4.PAE */
    movl %eax, %cr4
    movl TD(TD_TMP_CR3)(%ebp), %eax
    movl %eax, %cr3
    movl $0xc0000080, %ecx              /* EFER */
    movl TD(TD_EFER)(%ebp), %eax
    movl TD(TD_EFER) + 4(%ebp), %edx
    wrmsr
    movl TD(TD_CR0)(%ebp), %eax         /* PG | PE | WP | NE | MP | ET */
    movl %eax, %cr0
    ljmpl *TD(TD_LM64)(%ebp)

tramp_not_ours:                         /* another CPU's block, or withdrawn */
    incl %edi
    movl %edi, TD(TD_WRONG_ID)(%ebp)
3:  cli
    hlt
    jmp 3b

    .code64
tramp_lm64:
    movl %ebp, %ebp                     /* zero-extend: the page is below 1 MiB */
    movq TD(TD_KERNEL_CR3)(%rbp), %rdx
    movq TD(TD_CR4)(%rbp), %rsi
    movq TD(TD_STACK)(%rbp), %rsp
    movq TD(TD_CPU)(%rbp), %rdi
    movq TD(TD_ENTRY)(%rbp), %rcx
    movq TD(TD_STUB)(%rbp), %rax
    movl $1, TD(TD_TAKEN)(%rbp)         /* the BSP may refill the block now */
    jmpq *%rax
trampoline_end:

    /* The far-jump targets as offsets from the page, for ap_start.c to turn
     * into physical addresses (it also checks that the code stays below
     * TRAMP_DATA). */
    .globl tramp_pm32_offset, tramp_lm64_offset
    .balign 4
tramp_pm32_offset: .long tramp_pm32 - trampoline_start
tramp_lm64_offset: .long tramp_lm64 - trampoline_start

/* In the higher half, on the temporary tables: RDX = kernel_as's CR3,
 * RSI = CR4, RSP = the AP's stack, RDI = its struct cpu, RCX = the C entry
 * (which does not return). */
    .section .text
    .globl ap_entry64
    .type ap_entry64, @function
ap_entry64:
    movq %rdx, %cr3
    movq %rsi, %cr4
    xorl %eax, %eax
    movl %eax, %ds
    movl %eax, %es
    movl %eax, %ss
    movl %eax, %fs
    movl %eax, %gs
    xorl %ebp, %ebp
    pushq $0                            /* fake return address: ends backtraces */
    jmpq *%rcx
    .size ap_entry64, . - ap_entry64
