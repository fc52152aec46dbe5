/* Monitor commands about the system: version, ktest, bench, panic [cpu],
 * reboot, poweroff. */
#include "arch/x86_64/cpu.h"
#include "arch/x86_64/pic.h"
#include "arch/x86_64/smp.h"
#include "boot/boot_info.h"
#include "dev/input.h"
#include "lib/panic.h"
#include "lib/printf.h"
#include "monitor/commands.h"
#include "monitor/parse.h"
#include "test/ktest.h"
#include "version.h"

#if __has_include("bench/kbench.h")
#include "bench/kbench.h"
#define MONITOR_HAVE_KBENCH 1
#endif

void cmd_version(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    const struct boot_info *b = &boot_ctx;
    kprintf("SlayerOS %s (x86_64, built %s %s)\n", SLAYEROS_VERSION, __DATE__, __TIME__);
    kprintf("  bootloader: %s%s%s via %s\n", b->bootloader_name, b->bootloader_version[0] ? " " : "",
            b->bootloader_version, boot_protocol_name(b->protocol));
    kprintf("  firmware:   %s\n", firmware_name(b->firmware));
    kprintf("  cmdline:    \"%s\"\n", b->cmdline);
    kprintf("  input:      %llu bytes dropped (queue full), %llu spurious IRQs\n",
            (unsigned long long)input_dropped(), (unsigned long long)pic_spurious_count());
}

void cmd_ktest(int argc, char **argv)
{
    /* The self-tests were written for a quiet machine: no interrupts while they run. */
    uint64_t flags = cpu_irq_save();
    int failed = ktest_run_all(argc == 2 ? argv[1] : NULL);
    cpu_irq_restore(flags);
    if (failed)
        kprintf("ktest: %d failed\n", failed);
}

void cmd_bench(int argc, char **argv)
{
    (void)argc;
    (void)argv;
#ifdef MONITOR_HAVE_KBENCH
    uint64_t flags = cpu_irq_save();
    kbench_run();
    cpu_irq_restore(flags);
#else
    kprintf("bench: not available yet\n");
#endif
}

static void panic_here(void *arg)
{
    (void)arg;
    panic("monitor: deliberate panic (the 'panic' command)");
}

void cmd_panic(int argc, char **argv)
{
    uint64_t cpu = cpu_index();
    if (argc > 1 && (!parse_u64(argv[1], &cpu) || cpu >= CPU_MAX || !smp_cpu_online((unsigned)cpu))) {
        monitor_error("panic", "'%s' is not an online CPU (see cpus)", argv[1]);
        return;
    }
    smp_call_on((unsigned)cpu, panic_here, NULL); /* does not return: every CPU stops */
}

/* The i8042's "pulse output line" command 0xFE pulls the CPU's reset line. */
#define KBD_STATUS 0x64
#define KBD_CMD_RESET 0xfe

void cmd_reboot(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    kprintf("reboot: resetting\n");
    cpu_cli();
    for (int i = 0; i < 100000 && (inb(KBD_STATUS) & 0x02); i++)
        cpu_pause();
    outb(KBD_STATUS, KBD_CMD_RESET);
    for (int i = 0; i < 1000000; i++)
        cpu_pause();
    /* Still here: an empty IDT turns the next exception into a triple fault. */
    static const struct {
        uint16_t limit;
        uint64_t base;
    } PACKED empty_idt = {0, 0};
    __asm__ volatile("lidt %0; int3" ::"m"(empty_idt) : "memory");
    cpu_halt_forever();
}

/* ACPI PM1a control: SLP_EN (bit 13) with SLP_TYP 0, which is S5 in the DSDT
 * QEMU generates. The PM I/O base is chosen by the firmware: 0x600 or 0xb000
 * on QEMU, 0x4000 on Bochs and VirtualBox; we try each. A proper driver would
 * read PM1a_CNT_BLK from the FADT and SLP_TYPa from \_S5. */
#define ACPI_SLP_EN (1u << 13)

void cmd_poweroff(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    static const uint16_t pm1a_cnt[] = {0x604, 0xb004, 0x4004};
    kprintf("poweroff: switching off\n");
    cpu_cli();
    for (size_t i = 0; i < ARRAY_SIZE(pm1a_cnt); i++) {
        outw(pm1a_cnt[i], ACPI_SLP_EN);
        for (int spin = 0; spin < 100000; spin++)
            cpu_pause();
    }
    cpu_sti();
    kprintf("poweroff: failed (no ACPI PM1a control port answered); the machine is still on\n");
}
