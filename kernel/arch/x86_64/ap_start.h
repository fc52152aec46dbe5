/* Starting the other CPUs without a bootloader's help (the GRUB/Multiboot2
 * path): INIT-SIPI-SIPI through a real-mode trampoline below 1 MiB
 * (arch/x86_64/ap_start.c, trampoline.S; docs/smp.md, "Starting APs
 * without Limine").
 *
 * The trampoline page holds the code (real mode -> protected mode -> long
 * mode) from offset 0, where the start-up IPI's vector points, and a data
 * block at TRAMP_DATA that the BSP fills before each start: a GDT, the far
 * pointers of the two mode switches, the BSP's EFER, PAT, CR0 and CR4, a
 * temporary PML4 below 4 GiB (the trampoline page identity-mapped, the
 * kernel half copied from kernel_as), kernel_as's CR3, the AP's stack and
 * struct cpu, and the C entry. One AP at a time uses the block: the AP
 * claims it with a compare-exchange of its own APIC ID, so a CPU that wakes
 * late, or one that was not asked, halts instead of taking another CPU's
 * stack. Shared by trampoline.S (offsets) and ap_start.c (the struct). */
#pragma once

/* Offset of the data block in the trampoline page (the code stays below). */
#define TRAMP_DATA 0x800

/* Offsets inside the data block (struct ap_tramp_data). */
#define TD_GDT        0x00 /* 4 descriptors: null, 32-bit code, data, 64-bit code */
#define TD_GDTR       0x22 /* limit (2 bytes) then base (4): lgdtl operand */
#define TD_PM32       0x28 /* far pointer offset:32 selector:16 -> protected mode */
#define TD_LM64       0x30 /* far pointer offset:32 selector:16 -> long mode */
#define TD_TMP_CR3    0x38 /* the temporary PML4 (below 4 GiB) */
#define TD_CLAIM      0x3c /* the APIC ID that may start; the AP swaps in TD_CLAIMED */
#define TD_EFER       0x40
#define TD_PAT        0x48
#define TD_CR0        0x50
#define TD_CR4        0x58
#define TD_KERNEL_CR3 0x60
#define TD_STACK      0x68 /* RSP the AP starts on (struct cpu's stack_top) */
#define TD_CPU        0x70 /* the struct cpu * passed to the entry */
#define TD_ENTRY      0x78 /* the C entry: smp_ap_enter */
#define TD_STUB       0x80 /* ap_entry64, the higher-half stub (trampoline.S) */
#define TD_TAKEN      0x88 /* the AP writes 1 once it has read every field */
#define TD_WRONG_ID   0x8c /* an AP that found another ID in TD_CLAIM writes its own + 1 */
#define TD_SIZE       0x90

#define TRAMP_SEL_CODE32 0x08
#define TRAMP_SEL_DATA   0x10
#define TRAMP_SEL_CODE64 0x18

/* TD_CLAIM once an AP has taken the block, and once the BSP has withdrawn it. */
#define TD_CLAIMED   0xffffffffu
#define TD_WITHDRAWN 0xfffffffeu

#ifndef __ASSEMBLER__
#include "boot/acpi.h"
#include "lib/types.h"

struct ap_tramp_data {
    uint64_t gdt[4];
    uint16_t pad0;
    uint16_t gdtr_limit;
    uint32_t gdtr_base;
    uint32_t pm32_off;
    uint16_t pm32_sel, pad1;
    uint32_t lm64_off;
    uint16_t lm64_sel, pad2;
    uint32_t tmp_cr3;
    uint32_t claim;
    uint64_t efer, pat, cr0, cr4, kernel_cr3, stack, cpu, entry, stub;
    uint32_t taken;
    uint32_t wrong_id;
} __attribute__((packed));

/* Takes the trampoline page (the lowest free frame below 1 MiB) and the four
 * frames of the temporary page tables (below 4 GiB) and keeps them for good
 * (later starts reuse them). Call early, right after frame_init, before
 * page tables, the heap and reclaimed bootloader memory can take every low
 * frame; ap_start_all calls it itself when nothing was kept. Returns NULL,
 * or one line when no frame below 1 MiB (or 4 GiB) was free. Idempotent. */
const char *ap_start_reserve(void);
/* The trampoline page's physical address (0 before ap_start_reserve succeeded). */
paddr_t ap_start_trampoline_page(void);

/* Starts every CPU in cpus but the running one (lapic_id()), one at a time,
 * with Intel's universal start-up algorithm (SDM vol. 3, "MP
 * initialization"): smp_cpu_prepare, INIT, 10 ms, SIPI, 200 us, a second
 * SIPI unless the AP already claimed the trampoline, then up to
 * AP_START_TIMEOUT_US for smp_cpu_wait_online. A CPU that does not come
 * online is logged (`[smp] CPU n (APIC id x) did not start: left out`) and
 * the others go on. *started counts the CPUs that came online. Returns NULL,
 * or one line when the whole path failed (no trampoline page, ...). BSP only,
 * with its local APIC initialised (lapic_init); calibrates the delay
 * (pit_calibrate_tsc) when nothing did yet. */
const char *ap_start_all(const struct acpi_cpus *cpus, unsigned *started);

/* What ap_start_cpu did. */
enum ap_start_result {
    AP_START_ONLINE,   /* the CPU came online */
    AP_START_SELF,     /* the running CPU's own APIC ID: nothing to do */
    AP_START_LEFT_OUT, /* it did not answer (or cannot be addressed): logged, left out */
    AP_START_STOP,     /* nothing more can be started: *why says why */
};
/* Starts the one CPU with this APIC ID as ap_start_all does (prepares its
 * block, INIT-SIPI-SIPI, waits up to timeout_us for it). AP_START_STOP
 * comes with the line *why (no trampoline page, no per-CPU block, or an AP
 * that claimed the trampoline and stopped inside it, which may still read
 * the block). */
enum ap_start_result ap_start_cpu(uint32_t apic_id, uint64_t timeout_us, const char **why);

/* The CPU list the last ap_start_all was given (NULL before any call): for
 * the self-test that checks every listed CPU came online. */
const struct acpi_cpus *ap_start_cpus(void);

/* How long ap_start_all waits for one CPU to come online (TCG is slow). */
#define AP_START_TIMEOUT_US 1000000
#endif
