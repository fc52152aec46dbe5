/* The init sequence (docs/design.md, "The boot flow"), and nothing else. */
#include "arch/x86_64/acpi_map.h"
#include "arch/x86_64/ap_start.h"
#include "arch/x86_64/cpu.h"
#include "arch/x86_64/entry.h"
#include "arch/x86_64/gdt.h"
#include "arch/x86_64/idt.h"
#include "arch/x86_64/lapic.h"
#include "arch/x86_64/mmu_ops.h"
#include "arch/x86_64/percpu.h"
#include "arch/x86_64/pic.h"
#include "arch/x86_64/pit.h"
#include "arch/x86_64/smp.h"
#include "arch/x86_64/syscall.h"
#include "bench/kbench.h"
#include "boot/boot_info.h"
#include "boot/limine.h"
#include "boot/multiboot2.h"
#include "dev/console.h"
#include "dev/qemu_exit.h"
#include "dev/serial.h"
#include "lib/backtrace.h"
#include "lib/cmdline.h"
#include "lib/logbuf.h"
#include "lib/panic.h"
#include "lib/printf.h"
#include "lib/stack_protector.h"
#include "lib/symbols.h"
#include "lib/ubsan.h"
#include "mm/frame.h"
#include "mm/frameref.h"
#include "mm/heap.h"
#include "mm/mapper.h"
#include "mm/memmap.h"
#include "mm/mm.h"
#include "mm/pagewalk.h"
#include "mm/paging.h"
#include "monitor/monitor.h"
#include "proc/sched.h"
#include "test/usertests_boot.h"
#include "test/ktest.h"
#include "version.h"


/* Set by entry.S: which protocol entered, and (Multiboot2) the info block. */
enum { ENTRY_LIMINE = 1, ENTRY_MULTIBOOT2 = 2 };

/* The trampoline in entry.S maps the first 4 GiB here on the Multiboot2 path. */
#define MB2_HHDM_OFFSET 0xffff800000000000ULL

extern char __kernel_start[], __kernel_end[];

static uint64_t boot_tsc;

/* Per-step init timing: TSC at the end of each step, printed once at ready. */
enum init_step {
    STEP_EARLY,    /* serial, GDT, IDT, PIC */
    STEP_BOOTINFO, /* collect + validate the bootloader's answers */
    STEP_SYMBOLS,
    STEP_MEMMAP, /* log the boot info, sanitize + print the memory map */
    STEP_FRAMES,
    STEP_PAGING, /* PAT + paging_init */
    STEP_MAPPER,
    STEP_STACK,
    STEP_SMP,     /* the BSP's LAPIC, timer calibration, the APs */
    STEP_RECLAIM,
    STEP_HEAP,
    STEP_CONSOLE,
    STEP_SUMMARY,
    STEP_COUNT
};
static const char *const step_names[STEP_COUNT] = {
    "early", "boot-info", "symbols", "memmap", "frames", "paging",
    "mapper", "stack", "smp", "reclaim", "heap", "console", "summary",
};
static uint64_t step_tsc[STEP_COUNT];

static inline void step_done(enum init_step s)
{
    step_tsc[s] = arch_rdtsc();
}

/* "[kernel] init steps (Mcycles): early=0.1 boot-info=0.4 ..." (one decimal). */
static void log_init_steps(void)
{
    char buf[320];
    size_t n = 0;
    uint64_t prev = boot_tsc;
    for (int s = 0; s < STEP_COUNT && n < sizeof(buf); s++) {
        uint64_t d = (step_tsc[s] - prev + 50000) / 100000; /* tenths of Mcycles */
        prev = step_tsc[s];
        n += ksnprintf(buf + n, sizeof(buf) - n, "%s%s=%llu.%llu", s ? " " : "", step_names[s],
                       (unsigned long long)(d / 10), (unsigned long long)(d % 10));
    }
    klog("kernel", "init steps (Mcycles): %s", buf);
}
static bool nosmp;      /* `nosmp` on the command line: the BSP alone */
static bool ktest_mode; /* "ktest" or "bench" on the command line: headless, exit QEMU */

/* One clear line, then stop: used for every bootloader answer we cannot use. */
static NORETURN void boot_fail(const char *why)
{
    kprintf("boot: FATAL: %s\n", why);
    kprintf("boot: cannot continue; halting.\n");
    /* Under test, tell the harness now instead of letting it time out (the
     * command line may be unknown when the boot information itself is bad). */
    if (cmdline_get(boot_ctx.cmdline, "ktest", NULL, 0))
        qemu_exit(QEMU_EXIT_REFUSED);
    for (;;)
        cpu_halt_forever();
}

/* Called by panic_at() after the report: in test mode, end QEMU with a verdict. */
void panic_hook(void)
{
    if (ktest_mode)
        qemu_exit(QEMU_EXIT_PANIC);
}

static void collect_boot_info(uint32_t protocol, uint64_t info, uint32_t magic)
{
    const char *err;
    if (protocol == ENTRY_LIMINE) {
        err = boot_limine_collect(&boot_ctx);
    } else {
        boot_ctx.hhdm_offset = MB2_HHDM_OFFSET;
        err = boot_from_multiboot2(&boot_ctx, magic, (const void *)(info + MB2_HHDM_OFFSET),
                                   MB2_HHDM_OFFSET);
        if (!err) {
            /* GRUB loads us at the link address's physical alias (the LMA). */
            boot_ctx.hhdm_offset = MB2_HHDM_OFFSET;
            boot_ctx.kernel_virt_base = (vaddr_t)__kernel_start;
            boot_ctx.kernel_phys_base = (vaddr_t)__kernel_start - 0xffffffff80000000ULL;
        }
    }
    if (err)
        boot_fail(err);
    boot_ctx.kernel_size = (uint64_t)(__kernel_end - __kernel_start);
    if (protocol == ENTRY_MULTIBOOT2) /* the map calls our image usable: say what it is */
        boot_add_region(&boot_ctx, boot_ctx.kernel_phys_base, boot_ctx.kernel_size, MEM_KERNEL);
    err = boot_info_validate(&boot_ctx);
    if (err)
        boot_fail(err);
}

static void log_boot_info(void)
{
    const struct boot_info *b = &boot_ctx;
    klog("boot", "protocol=%s bootloader=\"%s%s%s\" firmware=%s", boot_protocol_name(b->protocol),
         b->bootloader_name, b->bootloader_version[0] ? " " : "", b->bootloader_version,
         firmware_name(b->firmware));
    if (b->protocol == BOOT_PROTO_LIMINE) {
        char line[160];
        klog("boot", "%s", limine_revision_line(b, line, sizeof(line)));
    }
    klog("boot", "cmdline=\"%s\"", b->cmdline);
    klog("boot", "kernel: phys=%#llx virt=%#llx size=%lluKiB", (unsigned long long)b->kernel_phys_base,
         (unsigned long long)b->kernel_virt_base, (unsigned long long)b->kernel_size / 1024);
    klog("boot", "hhdm offset=%#llx, memory map: %zu entries", (unsigned long long)b->hhdm_offset,
         b->memmap_count);
    if (b->fb.present)
        klog("boot", "framebuffer: %ux%u %ubpp pitch=%u at phys %#llx", b->fb.width, b->fb.height,
             b->fb.bpp, b->fb.pitch, (unsigned long long)b->fb.phys);
    else
        klog("boot", "framebuffer: none");
    if (b->rsdp)
        klog("boot", "ACPI RSDP at phys %#llx", (unsigned long long)b->rsdp);
    else if (b->rsdp_is_copy)
        klog("boot", "ACPI RSDP: copied from the boot information");
}

#define KERNEL_STACK_PAGES 16
#define RING0_STACK_PAGES  4

static NORETURN void kernel_main_on_own_stack(void *unused);

/* Moves the IST stacks (#DF, NMI, #MC) off the boot-time ones in .bss onto
 * guarded stacks of their own, and gives the CPU a guarded ring-0 entry stack
 * (TSS.RSP0) for interrupts from ring 3. */
static void guard_cpu_stacks(void)
{
    for (unsigned ist = 1; ist <= IST_COUNT; ist++) {
        vaddr_t top = mapper_alloc_stack(IST_STACK_SIZE / PAGE_SIZE);
        kassert(top != 0, "no memory for IST stack %u", ist);
        kassert(gdt_set_ist_stack(ist, top - IST_STACK_SIZE, top));
    }
    vaddr_t top = mapper_alloc_stack(RING0_STACK_PAGES);
    kassert(top != 0, "no memory for the ring-0 entry stack");
    gdt_set_kernel_stack(top);
}

/* Steps 3-5: frames, our own page tables, then a guarded stack of our own. */
static NORETURN void mm_bringup(void)
{
    mm_memmap_count = memmap_sanitize(boot_ctx.memmap, boot_ctx.memmap_count, mm_memmap,
                                      ARRAY_SIZE(mm_memmap), arch_phys_addr_bits());
    memmap_print(mm_memmap, mm_memmap_count);
    step_done(STEP_MEMMAP);
    hhdm_offset = boot_ctx.hhdm_offset;
    /* What the bootloader's HHDM surely covers until mapper_full_map: the
     * trampoline maps 4 GiB; Limine maps at least every usable region. */
    hhdm_size = boot_ctx.protocol == BOOT_PROTO_MULTIBOOT2 ? GiB(4) : 0;
    frame_init(mm_memmap, mm_memmap_count);
    frameref_init();
    nosmp = cmdline_get(boot_ctx.cmdline, "nosmp", NULL, 0);
    const char *low = ap_start_reserve(); /* before anything else takes low memory */
    if (low)
        kwarn("smp", "%s", low);
    step_done(STEP_FRAMES);
    arch_pat_init(); /* before any WC mapping: GRUB leaves PAT index 5 = WT */
    paging_init();
    backtrace_set_readable(pagewalk_readable); /* backtraces check pointers by walking CR3 */
    step_done(STEP_PAGING);
    const struct boot_framebuffer *fb = &boot_ctx.fb;
    mapper_full_map(boot_ctx.kernel_phys_base, fb->phys,
                    fb->present ? (uint64_t)fb->pitch * fb->height : 0);
    step_done(STEP_MAPPER);
    vaddr_t top = mapper_alloc_stack(KERNEL_STACK_PAGES);
    kassert(top != 0, "no memory for the kernel stack");
    guard_cpu_stacks();
    step_done(STEP_STACK);
    arch_switch_stack(top, kernel_main_on_own_stack, NULL);
}

static void log_mem_summary(void)
{
    struct frame_stats fs;
    frame_get_stats(&fs);
    klog("mm", "mem: usable=%lluKiB free=%lluKiB reserved=%lluKiB reclaimed=%lluKiB "
         "page-tables=%lluKiB bitmap=%lluKiB",
         (unsigned long long)fs.usable_frames * 4, (unsigned long long)fs.free_frames * 4,
         (unsigned long long)fs.reserved_frames * 4, (unsigned long long)fs.reclaimed_frames * 4,
         (unsigned long long)paging_table_pages() * 4, (unsigned long long)fs.metadata_bytes / 1024);
}

/* The C entry point, from entry.S. protocol: 1 Limine, 2 Multiboot2; for
 * Multiboot2, info is the physical address of the boot information and
 * magic what EAX held. */
__attribute__((no_stack_protector)) void kernel_main(uint32_t protocol, uint64_t info, uint32_t magic)
{
    stack_protector_init(); /* before any protected frame that returns */
    gdt_init();             /* loading the GS selector clears its base: before percpu */
    percpu_init_bsp();      /* cpu_index() and locks work from here */
    boot_tsc = arch_rdtsc();
    serial_init();
    kprintf_add_sink(serial_write);
    kprintf_add_sink(logbuf_sink); /* replayed on the screen once it exists */
    kprintf("\n");
    klog("kernel", "SlayerOS " SLAYEROS_VERSION " starting (%s entry)",
         protocol == ENTRY_LIMINE ? "Limine" : "Multiboot2");

    idt_init();
    pic_init(); /* every IRQ masked; only the monitor turns interrupts on */
    step_done(STEP_EARLY);
    collect_boot_info(protocol, info, magic);
    ubsan_configure(boot_ctx.cmdline);
    step_done(STEP_BOOTINFO);
    if (!symbols_init(&boot_ctx.symbols))
        kwarn("boot", "no kernel symbols: backtraces will show addresses only");
    else
        klog("boot", "%zu kernel symbols loaded", symbols_count());
    step_done(STEP_SYMBOLS);
    cpu_enable_protections();
    syscall_init_cpu();
    klog("cpu", "stack protector: canary from %s", stack_protector_source());
    log_boot_info();
    mm_bringup();
}

/* The CPUs the ACPI MADT lists (GRUB path); false with the line said. */
static bool madt_cpus(struct acpi_cpus *cpus)
{
    const char *err = acpi_boot_cpus(cpus);
    if (err)
        kwarn("smp", "%s: running on the bootstrap CPU only", err);
    else
        smp_set_reported(cpus->listed);
    return !err;
}

/* Every other CPU: before bootloader memory is reclaimed (Limine's APs wait
 * in it, on its page tables). Limine parked them for us (MP response);
 * under GRUB the MADT lists them and ap_start_all wakes them with
 * INIT-SIPI-SIPI through the trampoline reserved after frame_init. */
static void smp_bringup(void)
{
    smp_init_bsp();
    bool limine = boot_ctx.protocol == BOOT_PROTO_LIMINE;
    struct acpi_cpus cpus;
    if (nosmp) {
        klog("smp", "nosmp on the command line: the other CPUs stay parked");
        if (limine)
            smp_start_limine(false); /* off the memory reclaimed next */
        else
            madt_cpus(&cpus);
    } else if (limine) {
        smp_start_limine(true);
    } else if (madt_cpus(&cpus)) {
        unsigned started = 0;
        const char *err = ap_start_all(&cpus, &started);
        if (err)
            kwarn("smp", "%s", err);
    }
    smp_calibrate_timers();
    smp_log_online();
}

/* Every CPU's scheduler tick (smp_run_on_all work). */
static void start_tick(void *unused)
{
    (void)unused;
    sched_timer_start();
}

/* Steps 5-7, on the kernel's own stack and page tables. */
static NORETURN void kernel_main_on_own_stack(void *unused)
{
    (void)unused;
    smp_bringup();
    step_done(STEP_SMP);
    uint64_t reclaimed = frame_reclaim_bootloader();
    klog("mm", "reclaimed %lluKiB of bootloader memory", (unsigned long long)reclaimed / 1024);
    if (boot_ctx.protocol == BOOT_PROTO_LIMINE && boot_ctx.base_revision >= 5) {
        const char *wire = lapic_restore_virtual_wire(); /* LINT0 masked: no PIC IRQ */
        if (wire)
            klog("boot", "%s", wire);
    }
    step_done(STEP_RECLAIM);
    heap_init();
    step_done(STEP_HEAP);
    console_init(); /* every later log line goes to the screen too */
    step_done(STEP_CONSOLE);
    log_mem_summary();
    sched_init(); /* this context becomes the main thread; every CPU gets an idle thread */
    smp_run_on_all(start_tick, NULL);

    char filter[64];
    ktest_mode = cmdline_get(boot_ctx.cmdline, "ktest", filter, sizeof(filter));

    uint64_t ready_tsc = arch_rdtsc();
    step_tsc[STEP_SUMMARY] = ready_tsc;
    klog("kernel", "ready: booted by %s (%s) on %s firmware, init took %llu Mcycles",
         boot_ctx.bootloader_name, boot_protocol_name(boot_ctx.protocol),
         firmware_name(boot_ctx.firmware), (unsigned long long)(ready_tsc - boot_tsc) / 1000000);
    log_init_steps();

    if (cmdline_get(boot_ctx.cmdline, "bench", NULL, 0)) {
        ktest_mode = true; /* a panic during the bench ends QEMU too */
        kbench_run();
        qemu_exit(QEMU_EXIT_SUCCESS);
    }
    char which[64];
    if (cmdline_get(boot_ctx.cmdline, "usertests", which, sizeof(which))) {
        ktest_mode = true; /* a panic ends QEMU too */
        qemu_exit(usertests_boot(which) ? QEMU_EXIT_FAILURE : QEMU_EXIT_SUCCESS);
    }
    if (ktest_mode) {
        int failed = ktest_run_all(filter);
        qemu_exit(failed ? QEMU_EXIT_FAILURE : QEMU_EXIT_SUCCESS);
    }
    monitor_run();
}
