/* Kernel entry points.
 *
 * Limine enters `_start` in 64-bit long mode, already in the higher half.
 * GRUB (Multiboot2) enters `mb2_entry32` in 32-bit protected mode with paging
 * off: we check for CPUID, PAE and long mode (refusing with one line on COM1
 * otherwise), build temporary page tables, enable PAE, LME,
 * NXE and paging, load a 64-bit GDT and jump to the same higher-half C entry.
 *
 * Temporary tables (Multiboot2 path only), all 2 MiB pages:
 *   identity     0 .. 4 GiB      (needed while we run at physical addresses)
 *   HHDM         0xffff800000000000 + 0 .. 4 GiB
 *   kernel       0xffffffff80000000 + 0 .. 1 GiB -> physical 0 .. 1 GiB
 * mapper_full_map() replaces all of this with the kernel's own tables.
 *
 * Everything here lives in the kernel's higher-half segments (Limine refuses
 * lower-half program headers); 32-bit code refers to `sym - KERNEL_VMA`. */

#define KERNEL_VMA     0xffffffff80000000
#define PHYS(sym)      ((sym) - KERNEL_VMA)
#define MB2_MAGIC      0xe85250d6
#define MB2_ARCH_I386  0
#define BOOT_STACK_SIZE 65536

#define MB2_BOOT_MAGIC 0x36d76289          /* EAX at a Multiboot2 entry */
/* isa-debug-exit code for "this CPU cannot run SlayerOS": QEMU exits with
 * (0x13 << 1) | 1 = 39, next to dev/qemu_exit.h's 33/35/37. */
#define QEMU_EXIT_NO_LONG_MODE 0x13

#define PROTO_LIMINE     1
#define PROTO_MULTIBOOT2 2

/* ---------------------------------------------------------------- headers */
    .section .multiboot2, "a"
    .balign 8
mb2_header:
    .long MB2_MAGIC
    .long MB2_ARCH_I386
    .long mb2_header_end - mb2_header
    .long -(MB2_MAGIC + MB2_ARCH_I386 + (mb2_header_end - mb2_header))
    /* entry address tag (type 3): where GRUB jumps, a 32-bit physical address */
    .balign 8
    .short 3, 0
    .long 12
    .long PHYS(mb2_entry32)
    /* framebuffer tag (type 5, optional): no preferred size, 32 bpp */
    .balign 8
    .short 5, 1
    .long 20
    .long 0, 0, 32
    /* end tag */
    .balign 8
    .short 0, 0
    .long 8
mb2_header_end:

/* ----------------------------------------------------------- 64-bit entry */
    .section .text.boot, "ax"
    .code64
    .globl _start
    .type _start, @function
_start:                                 /* Limine: long mode, higher half */
    cli
    cld
    movq $boot_stack_top, %rsp
    xorl %ebp, %ebp
    call cpu_entry_state
    movl $PROTO_LIMINE, %edi
    xorl %esi, %esi
    call kernel_main
1:  hlt
    jmp 1b
    .size _start, . - _start

/* ----------------------------------------------------------- 32-bit entry */
    .code32
    .type mb2_entry32, @function
mb2_entry32:                            /* GRUB: EAX = magic, EBX = info */
    cli
    cld
    movl $PHYS(boot_stack_top), %esp
    movl %eax, PHYS(mb2_magic)
    movl %ebx, PHYS(mb2_info)

    /* CPUID present? (EFLAGS.ID can be toggled) */
    pushfl
    popl %eax
    movl %eax, %ecx
    xorl $0x200000, %eax
    pushl %eax
    popfl
    pushfl
    popl %eax
    pushl %ecx
    popfl
    movl $PHYS(msg_no_cpuid), %esi
    cmpl %eax, %ecx
    je cpu_refuse
    /* PAE (leaf 1 EDX bit 6): long mode paging is PAE paging. */
    xorl %eax, %eax
    cpuid
    movl $PHYS(msg_no_pae), %esi
    testl %eax, %eax
    jz cpu_refuse
    movl $1, %eax
    cpuid
    testl $(1 << 6), %edx
    jz cpu_refuse
    /* Extended leaf 0x80000001 present, with LM (EDX bit 29)? A CPU without
     * extended leaves may answer 0x80000000 with anything (Intel repeats the
     * highest basic leaf), so the answer must look like 0x8000xxxx. */
    movl $PHYS(msg_no_long_mode), %esi
    movl $0x80000000, %eax
    cpuid
    movl %eax, %ecx
    andl $0xffff0000, %ecx
    cmpl $0x80000000, %ecx
    jne cpu_refuse
    cmpl $0x80000001, %eax
    jb cpu_refuse
    movl $0x80000001, %eax
    cpuid
    testl $(1 << 29), %edx
    jz cpu_refuse
    movl %edx, %ebp                     /* keep the feature bits: NX is bit 20 */

    /* Zero the temporary tables (GRUB zeroes .bss, but do not rely on it). */
    movl $PHYS(boot_pml4), %edi
    movl $((boot_tables_end - boot_pml4) / 4), %ecx
    xorl %eax, %eax
    rep stosl

    /* Four page directories of 512 x 2 MiB pages: physical 0 .. 4 GiB. */
    movl $PHYS(boot_pd), %edi
    movl $0x83, %eax                    /* present | writable | huge */
    xorl %edx, %edx                     /* high half of the physical address */
    movl $2048, %ecx
1:  movl %eax, (%edi)
    movl %edx, 4(%edi)
    addl $0x200000, %eax
    adcl $0, %edx
    addl $8, %edi
    loop 1b

    /* PDPT for the low 4 GiB: entries 0..3 -> the four directories. */
    movl $PHYS(boot_pdpt_low), %edi
    movl $(PHYS(boot_pd) + 0x3), %eax
    movl $4, %ecx
2:  movl %eax, (%edi)
    addl $0x1000, %eax
    addl $8, %edi
    loop 2b

    /* PDPT for the top 512 GiB: entry 510 (0xffffffff80000000) -> first directory. */
    movl $(PHYS(boot_pd) + 0x3), PHYS(boot_pdpt_high) + 510 * 8

    /* PML4: 0 identity, 256 HHDM (0xffff800000000000), 511 kernel. */
    movl $(PHYS(boot_pdpt_low) + 0x3), %eax
    movl %eax, PHYS(boot_pml4)
    movl %eax, PHYS(boot_pml4) + 256 * 8
    movl $(PHYS(boot_pdpt_high) + 0x3), PHYS(boot_pml4) + 511 * 8

    /* CR4.PAE, CR3, EFER.LME (+NXE), CR0.PG|WP|PE. OR bits in: firmware may
     * have left others set. */
    movl %cr4, %eax
    orl $(1 << 5), %eax
    movl %eax, %cr4
    movl $PHYS(boot_pml4), %eax
    movl %eax, %cr3
    movl $0xc0000080, %ecx
    rdmsr
    orl $(1 << 8), %eax
    testl $(1 << 20), %ebp
    jz 3f
    orl $(1 << 11), %eax
3:  wrmsr
    movl %cr0, %eax
    orl $((1 << 31) | (1 << 16) | 1), %eax
    movl %eax, %cr0

    lgdt PHYS(boot_gdt_ptr)
    ljmp $0x08, $PHYS(mb2_entry64)

/* The CPU cannot run this kernel. Prints the line at ESI (physical) and
 * "boot: cannot continue; halting." on COM1 with a polled writer (nothing else
 * is set up yet); when the command line holds the word `ktest` (or
 * `ktest=...`), ends QEMU through isa-debug-exit with QEMU_EXIT_NO_LONG_MODE
 * (status 39), as the test harness expects; then halts for good. */
cpu_refuse:
    /* COM1: 115200 8N1, as serial_init does later */
    movw $0x3f9, %dx; xorb %al, %al; outb %al, %dx      /* no interrupts */
    movw $0x3fb, %dx; movb $0x80, %al; outb %al, %dx    /* DLAB */
    movw $0x3f8, %dx; movb $1, %al; outb %al, %dx       /* divisor 1 */
    movw $0x3f9, %dx; xorb %al, %al; outb %al, %dx
    movw $0x3fb, %dx; movb $0x03, %al; outb %al, %dx    /* 8N1 */
    call serial_puts32
    movl $PHYS(msg_halting), %esi
    call serial_puts32
    call cmdline_has_ktest32
    testl %eax, %eax
    jz 6f
    movw $0xf4, %dx
    movl $QEMU_EXIT_NO_LONG_MODE, %eax
    outl %eax, %dx
6:  cli
    hlt
    jmp 6b

/* serial_puts32: writes the NUL-terminated string at ESI to COM1, waiting
 * for the transmitter before each byte. Clobbers EAX, EBX, EDX, ESI. */
serial_puts32:
4:  lodsb
    testb %al, %al
    jz 7f
    movb %al, %bl
    movw $0x3fd, %dx
5:  inb %dx, %al
    testb $0x20, %al                    /* transmit holding register empty */
    jz 5b
    movw $0x3f8, %dx
    movb %bl, %al
    outb %al, %dx
    jmp 4b
7:  ret

/* cmdline_has_ktest32: EAX = 1 when the Multiboot2 information (mb2_info,
 * physical) has a command-line tag holding the word `ktest` or `ktest=...`
 * (the test of cmdline_get), else 0. Reads no further than total_size; does
 * nothing when the magic is not Multiboot2's. Clobbers EBX, ECX, EDX, ESI, EDI. */
cmdline_has_ktest32:
    cmpl $MB2_BOOT_MAGIC, PHYS(mb2_magic)
    jne 18f
    movl PHYS(mb2_info), %ebx           /* block start */
    movl (%ebx), %edx
    addl %ebx, %edx                     /* EDX = block end */
    jnc 9f
    movl $0xffffffff, %edx
9:  leal 8(%ebx), %esi                  /* first tag */
10: leal 8(%esi), %eax
    cmpl %edx, %eax
    ja 18f                              /* no room for a tag header */
    movl (%esi), %eax                   /* type */
    testl %eax, %eax
    jz 18f                              /* end tag */
    movl 4(%esi), %ecx                  /* size */
    cmpl $8, %ecx
    jb 18f
    movl %edx, %edi
    subl %esi, %edi
    cmpl %edi, %ecx                     /* the tag must fit in the block */
    ja 18f
    cmpl $1, %eax
    je 11f
    addl $7, %ecx                       /* next tag: size rounded up to 8 */
    andl $~7, %ecx
    addl %ecx, %esi
    jmp 10b
11: leal (%esi, %ecx), %edi             /* EDI = tag end: never read past it */
    addl $8, %esi                       /* the string */
    movb $0x20, %bl                     /* previous character: a word starts here */
13: cmpl %edi, %esi
    jae 18f
    movb (%esi), %al
    testb %al, %al
    jz 18f
    cmpb $0x20, %bl                     /* previous character a space? */
    jne 15f
    /* a word starts at ESI: "ktest" then NUL, ' ', '=' or the tag's end? */
    leal 5(%esi), %eax
    cmpl %edi, %eax
    ja 15f
    cmpl $0x7365746b, (%esi)            /* "ktes" */
    jne 15f
    cmpb $0x74, 4(%esi)                 /* "t" */
    jne 15f
    cmpl %edi, %eax
    je 17f
    movb 5(%esi), %cl
    testb %cl, %cl
    jz 17f
    cmpb $0x20, %cl                     /* " " */
    je 17f
    cmpb $0x3d, %cl                     /* "=" */
    je 17f
15: movb (%esi), %bl                    /* EAX may hold an address by now */
    incl %esi
    jmp 13b
17: movl $1, %eax
    ret
18: xorl %eax, %eax
    ret
    .size mb2_entry32, . - mb2_entry32

    .code64
mb2_entry64:                            /* long mode, still at the physical alias */
    movabsq $mb2_higher_half, %rax
    jmp *%rax
mb2_higher_half:
    xorl %eax, %eax
    movl %eax, %ds
    movl %eax, %es
    movl %eax, %ss
    movl %eax, %fs
    movl %eax, %gs
    movq $boot_stack_top, %rsp
    xorl %ebp, %ebp
    call cpu_entry_state
    movl $PROTO_MULTIBOOT2, %edi
    movl mb2_info, %esi                 /* physical address of the boot information */
    movl mb2_magic, %edx
    call kernel_main
7:  hlt
    jmp 7b

/* cpu_entry_state: gives CR0, CR4, EFER and RFLAGS the kernel's own values
 * whatever the bootloader and firmware left in them. Bootloaders differ: Limine
 * base revision 5+ clears every bit beyond PE/ET/WP/PG, PAE, LME/LMA/NXE;
 * earlier revisions, GRUB and firmware leave whatever they had (Limine 8.2.0
 * on OVMF: CR0 without MP and NE, CR4 without MCE). Kept: what long mode and the paging in force need
 * (CR0.PE/PG, CR4.PAE/LA57/PCIDE, EFER.LME/LMA/NXE). Set: CR0.MP/NE/WP
 * (x87 errors as #MF, supervisor writes honour read-only pages) and CR4.MCE
 * when the CPU has machine checks (the kernel has an #MC handler; without MCE
 * a machine check shuts the CPU down). Cleared: everything else, notably
 * CR0.CD/NW (caches on), TS/EM/AM, CR4.TSD/PGE/OSFXSR/OSXSAVE/PKE, EFER.SCE.
 * cpu_enable_protections() adds NXE, SMEP, SMAP and UMIP later, and gdt_init
 * and idt_init load the kernel's own GDT, TSS and IDT (revision 5 leaves TR
 * and IDTR null; others leave them undefined). Clobbers RAX, RCX, RDX. */
#define CR0_KEEP    0x80000011          /* PG, ET, PE */
#define CR0_SET     0x00010022          /* WP, NE, MP */
#define CR4_KEEP    0x00021020          /* PCIDE, LA57, PAE */
#define CR4_MCE     0x40
#define EFER_KEEP   0xd00               /* NXE, LMA, LME */
    .type cpu_entry_state, @function
cpu_entry_state:
    pushq $2                            /* RFLAGS: IF, DF, AC, NT, TF all clear */
    popfq
    movq %cr0, %rax
    movl $CR0_KEEP, %ecx                /* zero-extended: bits 63..32 clear */
    andq %rcx, %rax
    orq $CR0_SET, %rax
    movq %rax, %cr0
    pushq %rbx
    movl $1, %eax
    cpuid                               /* EDX bit 7: machine-check exception */
    popq %rbx
    movq %cr4, %rax
    andq $CR4_KEEP, %rax
    testl $0x80, %edx
    jz 1f
    orq $CR4_MCE, %rax
1:  movq %rax, %cr4
    movl $0xc0000080, %ecx              /* EFER */
    rdmsr
    andl $EFER_KEEP, %eax
    xorl %edx, %edx
    wrmsr
    ret
    .size cpu_entry_state, . - cpu_entry_state

/* limine_ap_entry(info): where Limine sends an AP (goto_address), on
 * Limine's page tables, GDT and stack, interrupts off, RDI = its
 * limine_mp_info whose extra_argument is the AP's struct cpu (smp.c). Loads
 * the kernel's page tables at once (Limine's live in memory the kernel
 * reclaims), moves to the AP's own guarded stack, gives CR0/CR4/EFER the
 * kernel's base values and enters smp_ap_enter(cpu), which never returns.
 * Limine turns EFER.NXE on before handing over, so the kernel's NX entries
 * are valid at the CR3 load. */
#define CPU_STACK_TOP  40                /* offsetof(struct cpu, stack_top): smp.c asserts */
#define CPU_CR3        48                /* offsetof(struct cpu, cr3) */
#define MP_INFO_EXTRA  24                /* offsetof(struct limine_mp_info, extra_argument) */
    .globl limine_ap_entry
    .type limine_ap_entry, @function
limine_ap_entry:
    cli
    cld
    movq MP_INFO_EXTRA(%rdi), %rbx
    movq CPU_CR3(%rbx), %rax
    movq %rax, %cr3
    movq CPU_STACK_TOP(%rbx), %rsp
    xorl %ebp, %ebp
    call cpu_entry_state                /* keeps RBX */
    movq %rbx, %rdi
    pushq $0                            /* fake return address: ends backtraces */
    jmp smp_ap_enter
    .size limine_ap_entry, . - limine_ap_entry

/* limine_ap_park(info): where Limine sends an AP the kernel does not start
 * (nosmp, no memory for its block): off Limine's page tables (onto
 * kernel_as, smp_park_cr3), then halted for good with interrupts off. Left
 * in Limine's poll loop, it would run from memory the kernel reclaims. */
    .globl limine_ap_park
    .type limine_ap_park, @function
limine_ap_park:
    cli
    movq smp_park_cr3(%rip), %rax
    movq %rax, %cr3
1:  hlt
    jmp 1b
    .size limine_ap_park, . - limine_ap_park

/* arch_switch_stack(top, fn, arg): runs fn(arg) on the stack ending at top;
 * fn must not return. */
    .globl arch_switch_stack
    .type arch_switch_stack, @function
arch_switch_stack:
    movq %rdi, %rsp
    xorl %ebp, %ebp
    movq %rdx, %rdi
    pushq $0                            /* fake return address: ends backtraces */
    jmp *%rsi
    .size arch_switch_stack, . - arch_switch_stack

/* ------------------------------------------------------------------- data */
    .section .rodata
/* The three refusals of the 32-bit entry, in boot_fail's words. */
msg_no_cpuid:
    .asciz "\r\nboot: FATAL: this CPU has no CPUID instruction, so no x86_64 long mode; SlayerOS needs a 64-bit CPU\r\n"
msg_no_pae:
    .asciz "\r\nboot: FATAL: this CPU has no PAE (CPUID 1 EDX bit 6), so no x86_64 long mode; SlayerOS needs a 64-bit CPU\r\n"
msg_no_long_mode:
    .asciz "\r\nboot: FATAL: this CPU has no x86_64 long mode (CPUID 0x80000001 EDX bit 29); SlayerOS needs a 64-bit CPU\r\n"
msg_halting:
    .asciz "boot: cannot continue; halting.\r\n"

    .section .data
    .balign 16
boot_gdt:
    .quad 0
    .quad 0x00af9a000000ffff            /* 0x08: 64-bit code, DPL 0 */
    .quad 0x00cf92000000ffff            /* 0x10: data */
boot_gdt_end:
boot_gdt_ptr:
    .short boot_gdt_end - boot_gdt - 1
    .long PHYS(boot_gdt)
    .globl mb2_magic, mb2_info
mb2_magic: .long 0
mb2_info:  .long 0

    .section .bss
    .balign 4096
    .globl boot_stack_bottom, boot_stack_top
boot_stack_bottom:
    .skip BOOT_STACK_SIZE
boot_stack_top:
boot_pml4:      .skip 4096
boot_pdpt_low:  .skip 4096
boot_pdpt_high: .skip 4096
boot_pd:        .skip 4096 * 4
boot_tables_end:
