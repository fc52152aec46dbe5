/* In-kernel checks that bad bootloader answers give the clear one-line error
 * the boot would print, and that the running kernel's boot information is
 * sane, that the Limine base revision in force is known and logged, and that
 * PIC interrupts get through whatever state the bootloader left the local
 * APIC in. (The host tests in tests/host/test_boot_*.c cover every case; these
 * prove the same code behaves the same on the real CPU.) */
#include "arch/x86_64/cpu.h"
#include "arch/x86_64/pic.h"
#include "boot/boot_info.h"
#include "boot/limine.h"
#include "boot/multiboot2.h"
#include "lib/string.h"
#include "test/ktest.h"

static struct boot_info scratch;

/* A Multiboot2 information block: header, optional memory map, end tag. */
static uint64_t mb2_block[64];

static uint32_t build_mb2(bool with_mmap, uint32_t entry_size)
{
    uint32_t *w = (uint32_t *)mb2_block;
    memset(mb2_block, 0, sizeof(mb2_block));
    uint32_t off = 2; /* total_size, reserved */
    if (with_mmap) {
        w[off + 0] = MB2_TAG_MMAP;
        w[off + 1] = 16 + 2 * 24;
        w[off + 2] = entry_size;
        w[off + 3] = 0;
        uint64_t *e = (uint64_t *)&w[off + 4];
        e[0] = 0x100000;            /* base */
        e[1] = 0x1000000;           /* length: 16 MiB usable */
        ((uint32_t *)&e[2])[0] = MB2_MEMORY_AVAILABLE;
        e[3] = 0xfee00000;
        e[4] = 0x1000;
        ((uint32_t *)&e[5])[0] = MB2_MEMORY_RESERVED;
        off += (16 + 2 * 24) / 4;
    }
    w[off + 0] = MB2_TAG_END;
    w[off + 1] = 8;
    off += 2;
    w[0] = off * 4;
    return off * 4;
}

KTEST(boot_mb2_good_block_parses)
{
    build_mb2(true, 24);
    const char *err = boot_from_multiboot2(&scratch, MB2_BOOTLOADER_MAGIC, mb2_block, 0);
    KT_ASSERT(err == NULL, "unexpected error: %s", err);
    KT_EXPECT(scratch.memmap_count == 2, "%zu entries", scratch.memmap_count);
    KT_EXPECT(scratch.memmap[0].type == MEM_USABLE && scratch.memmap[1].type == MEM_RESERVED);
}

KTEST(boot_mb2_malformed_blocks_give_one_line)
{
    build_mb2(false, 24);
    const char *err = boot_from_multiboot2(&scratch, MB2_BOOTLOADER_MAGIC, mb2_block, 0);
    KT_EXPECT(err && strcmp(err, "multiboot2: no memory map tag") == 0, "got: %s", err);

    build_mb2(true, 8);
    err = boot_from_multiboot2(&scratch, MB2_BOOTLOADER_MAGIC, mb2_block, 0);
    KT_EXPECT(err && strstr(err, "entry_size 8 <"), "got: %s", err);

    build_mb2(true, 24);
    err = boot_from_multiboot2(&scratch, 0x2badb002, mb2_block, 0);
    KT_EXPECT(err && strstr(err, "bad magic 0x2badb002"), "got: %s", err);

    build_mb2(true, 24);
    ((uint32_t *)mb2_block)[0] = 4096; /* total_size past the end tag's block */
    ((uint32_t *)mb2_block)[2 + (16 + 2 * 24) / 4 + 1] = 4; /* end tag size 4 */
    err = boot_from_multiboot2(&scratch, MB2_BOOTLOADER_MAGIC, mb2_block, 0);
    KT_EXPECT(err && strstr(err, "size 4 < 8"), "got: %s", err);
}

KTEST(boot_limine_missing_answers_give_one_line)
{
    struct limine_answers a;
    memset(&a, 0, sizeof(a));
    a.requested_revision = 2;
    const char *err = boot_from_limine(&scratch, &a);
    KT_EXPECT(err != NULL && strstr(err, "limine:"), "got: %s", err);
}

KTEST(boot_validate_rejects_bad_hhdm_and_framebuffer)
{
    scratch = boot_ctx;
    KT_ASSERT(boot_info_validate(&scratch) == NULL, "the running kernel's boot info is invalid");
    scratch.hhdm_offset = boot_ctx.hhdm_offset + 0x10;
    const char *err = boot_info_validate(&scratch);
    KT_EXPECT(err && strstr(err, "not 4 KiB aligned"), "got: %s", err);
    scratch = boot_ctx;
    scratch.fb.present = true;
    scratch.fb.phys = 0xfd000000;
    scratch.fb.width = 0;
    scratch.fb.height = 800;
    scratch.fb.pitch = 5120;
    scratch.fb.bpp = 32;
    err = boot_info_validate(&scratch);
    KT_EXPECT(err && strstr(err, "framebuffer size 0x800"), "got: %s", err);
    scratch = boot_ctx;
    scratch.memmap_count = 0;
    err = boot_info_validate(&scratch);
    KT_EXPECT(err != NULL, "an empty memory map was accepted");
}

/* ---- Limine base revision in force, and what revision 5+ changed ------------- */

KTEST(boot_limine_revision_in_force_is_known)
{
    if (boot_ctx.protocol != BOOT_PROTO_LIMINE)
        return;
    char line[160];
    limine_revision_line(&boot_ctx, line, sizeof(line));
    KT_EXPECT(boot_ctx.base_revision <= LIMINE_NEWEST_KNOWN_BASE_REVISION, "revision %llu",
              (unsigned long long)boot_ctx.base_revision);
    KT_EXPECT(boot_ctx.base_revision_asked == LIMINE_REQUESTED_BASE_REVISION);
    KT_EXPECT(strstr(line, "limine: base revision ") == line, "%s", line);
    /* A bootloader that grants the revision also names it (revision 3+). */
    KT_EXPECT(!boot_ctx.base_revision_accepted || boot_ctx.base_revision_named, "%s", line);
    /* Below 3 it cannot name it: then 2 is assumed (Limine 8.x). */
    KT_EXPECT(boot_ctx.base_revision_named || boot_ctx.base_revision == 2, "%s", line);
}

static volatile uint64_t timer_irqs;

static void count_timer_irq(void)
{
    timer_irqs++;
}

/* An IRQ from the 8259 PIC reaches the CPU whatever the bootloader did to the
 * local APIC (Limine base revision 5+ masks LINT0, the PIC's wire): the PIT
 * fires once and the handler must run within a bounded spin. */
KTEST(boot_pic_irq_reaches_the_cpu)
{
    timer_irqs = 0;
    pic_set_handler(IRQ_TIMER, count_timer_irq);
    outb(0x43, 0x30); /* PIT channel 0, lo/hi byte, mode 0: one interrupt at terminal count */
    outb(0x40, 0x00);
    outb(0x40, 0x10); /* 4096 ticks of 1.19 MHz: about 3.4 ms */
    pic_unmask(IRQ_TIMER);
    uint64_t start = rdtsc();
    cpu_sti();
    while (!timer_irqs && rdtsc() - start < 4000000000ULL)
        cpu_pause();
    cpu_cli();
    pic_mask(IRQ_TIMER);
    pic_set_handler(IRQ_TIMER, NULL);
    KT_EXPECT(timer_irqs > 0, "no timer IRQ arrived (local APIC LINT0 masked?)");
}

/* The CPU state is the kernel's own whatever the bootloader left (entry.S,
 * cpu_entry_state; Limine base revision 5+ clears more than older revisions,
 * GRUB and OVMF set more). */
KTEST(boot_cpu_state_is_the_kernels_own)
{
    uint64_t cr0 = read_cr0(), cr4 = read_cr4(), efer = rdmsr(MSR_EFER);
    bool mce = cpuid(1, 0).edx & (1U << 7);
    KT_EXPECT((cr0 & (CR0_PE | CR0_MP | CR0_NE | CR0_WP | CR0_PG)) ==
                  (CR0_PE | CR0_MP | CR0_NE | CR0_WP | CR0_PG),
              "CR0=%#llx", (unsigned long long)cr0);
    KT_EXPECT(!(cr0 & (CR0_EM | CR0_TS | CR0_AM | CR0_NW | CR0_CD)), "CR0=%#llx",
              (unsigned long long)cr0);
    /* CR4: PAE, MCE (with the CPU's), and what cpu_enable_protections adds
     * (the protections; OSFXSR and OSXMMEXCPT for programs' SSE state). */
    uint64_t allowed = CR4_PAE | CR4_SMEP | CR4_SMAP | CR4_UMIP | CR4_OSFXSR | CR4_OSXMMEXCPT |
                       (mce ? (1ULL << 6) : 0);
    KT_EXPECT((cr4 & (CR4_OSFXSR | CR4_OSXMMEXCPT)) == (CR4_OSFXSR | CR4_OSXMMEXCPT),
              "CR4=%#llx: programs' SSE state would not be saved (OSFXSR, OSXMMEXCPT off)",
              (unsigned long long)cr4);
    KT_EXPECT(!(cr4 & ~allowed), "CR4=%#llx has bits beyond %#llx", (unsigned long long)cr4,
              (unsigned long long)allowed);
    KT_EXPECT(!mce || (cr4 & (1ULL << 6)), "CR4.MCE off on a CPU with machine checks");
    /* EFER: long mode, NX, and SYSCALL (syscall_init_cpu) */
    KT_EXPECT(!(efer & ~(EFER_LME | EFER_LMA | EFER_NXE | EFER_SCE)), "EFER=%#llx",
              (unsigned long long)efer);
    KT_EXPECT(efer & EFER_SCE, "EFER.SCE off: SYSCALL would #UD (EFER=%#llx)", (unsigned long long)efer);
}
