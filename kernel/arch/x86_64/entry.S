/* Kernel entry points.
 *
 * Limine enters `_start` in 64-bit long mode, already in the higher half.
 * GRUB (Multiboot2) enters `mb2_entry32` in 32-bit protected mode with paging
 * off: we check for long mode, build temporary page tables, enable PAE, LME,
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
    cmpl %eax, %ecx
    je no_long_mode
    /* Extended leaf 0x80000001 present, with LM (EDX bit 29)? */
    movl $0x80000000, %eax
    cpuid
    cmpl $0x80000001, %eax
    jb no_long_mode
    movl $0x80000001, %eax
    cpuid
    testl $(1 << 29), %edx
    jz no_long_mode
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

/* Prints a NUL-terminated string (ESI, physical) on COM1 and halts. */
no_long_mode:
    movl $PHYS(msg_no_long_mode), %esi
    /* COM1: 115200 8N1, as serial_init does later */
    movw $0x3f9, %dx; xorb %al, %al; outb %al, %dx      /* no interrupts */
    movw $0x3fb, %dx; movb $0x80, %al; outb %al, %dx    /* DLAB */
    movw $0x3f8, %dx; movb $1, %al; outb %al, %dx       /* divisor 1 */
    movw $0x3f9, %dx; xorb %al, %al; outb %al, %dx
    movw $0x3fb, %dx; movb $0x03, %al; outb %al, %dx    /* 8N1 */
4:  lodsb
    testb %al, %al
    jz 6f
    movb %al, %bl
    movw $0x3fd, %dx
5:  inb %dx, %al
    testb $0x20, %al
    jz 5b
    movw $0x3f8, %dx
    movb %bl, %al
    outb %al, %dx
    jmp 4b
6:  hlt
    jmp 6b
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
    movl $PROTO_MULTIBOOT2, %edi
    movl mb2_info, %esi                 /* physical address of the boot information */
    movl mb2_magic, %edx
    call kernel_main
7:  hlt
    jmp 7b

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
msg_no_long_mode:
    .asciz "SlayerOS: this CPU does not support x86_64 long mode; cannot boot.\r\n"

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
