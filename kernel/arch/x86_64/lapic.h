/* The local APIC (arch/x86_64/lapic.c): one accessor for both modes.
 *
 * xAPIC: the registers are a 4 KiB MMIO page (IA32_APIC_BASE), mapped once,
 * uncached, at its HHDM address. x2APIC: the same registers are MSRs
 * 0x800 + offset / 16, and the ICR is one 64-bit MSR. The bootstrap CPU's
 * lapic_init decides the mode for every CPU (x2APIC when the bootloader or
 * firmware left the BSP in it, xAPIC otherwise); each AP's lapic_init then
 * puts its own APIC in the same mode. Register offsets below are the xAPIC
 * ones (Intel SDM vol. 3, 11.4.1 / 11.12.1.2). */
#pragma once

#include "lib/types.h"

#define LAPIC_REG_ID        0x020
#define LAPIC_REG_VERSION   0x030
#define LAPIC_REG_TPR       0x080
#define LAPIC_REG_EOI       0x0b0
#define LAPIC_REG_SVR       0x0f0
#define LAPIC_REG_ESR       0x280
#define LAPIC_REG_ICR_LOW   0x300
#define LAPIC_REG_ICR_HIGH  0x310
#define LAPIC_REG_LVT_TIMER 0x320
#define LAPIC_REG_LVT_LINT0 0x350
#define LAPIC_REG_LVT_LINT1 0x360
#define LAPIC_REG_LVT_ERROR 0x370
#define LAPIC_REG_TIMER_INIT 0x380
#define LAPIC_REG_TIMER_CUR  0x390
#define LAPIC_REG_TIMER_DIV  0x3e0

/* ICR low word: delivery mode, level, trigger, destination shorthand. */
#define LAPIC_ICR_FIXED        (0U << 8)
#define LAPIC_ICR_NMI          (4U << 8)
#define LAPIC_ICR_INIT         (5U << 8)
#define LAPIC_ICR_STARTUP      (6U << 8)
#define LAPIC_ICR_DELIVS       (1U << 12) /* xAPIC: send pending */
#define LAPIC_ICR_ASSERT       (1U << 14)
#define LAPIC_ICR_LEVEL        (1U << 15)
#define LAPIC_ICR_SELF         (1U << 18)
#define LAPIC_ICR_ALL_BUT_SELF (3U << 18)

#define LAPIC_LVT_MASKED   (1U << 16)
#define LAPIC_TIMER_PERIODIC (1U << 17)

/* Turns on this CPU's local APIC: global enable in IA32_APIC_BASE, the mode
 * the BSP found (the BSP's call decides it and maps the xAPIC page), the
 * spurious vector in the SVR with the software-enable bit, task priority 0,
 * the error status cleared. The BSP calls it before any AP; every AP calls it
 * once in smp_ap_enter. Returns nothing: a kernel that reached here has an
 * APIC (x86_64 CPUs all do); a failure to map the page panics. */
void lapic_init(void);
/* True once the BSP's lapic_init ran (the accessors below work). */
bool lapic_ready(void);
/* True when the APICs run in x2APIC mode. */
bool lapic_x2apic(void);
/* This CPU's APIC ID (x2APIC: 32 bits; xAPIC: bits 24..31 of the ID register). */
uint32_t lapic_id(void);
/* Signals end of interrupt for the vector being handled. */
void lapic_eoi(void);
/* Reads the register at xAPIC offset reg (x2APIC: MSR 0x800 + reg / 16). */
uint32_t lapic_read(uint32_t reg);
/* Writes v to the register at xAPIC offset reg (x2APIC: MSR 0x800 + reg / 16). */
void lapic_write(uint32_t reg, uint32_t v);
/* Sends the IPI described by icr_low (vector | delivery mode | level |
 * shorthand) to apic_id (ignored with a shorthand). xAPIC: waits until the
 * previous send left the ICR, writes ICR high then low, and waits for the
 * delivery-status bit to clear; x2APIC: one write of the 64-bit ICR MSR.
 * Safe with interrupts on or off; callers on several CPUs may send at once
 * (each CPU has its own ICR). */
void lapic_send_ipi(uint32_t apic_id, uint32_t icr_low);

/* On the kernel's own page tables: when the local APIC is enabled, makes
 * LINT0 ExtINT again (and unmasks an NMI LINT1) so the 8259 PICs' IRQs reach
 * the CPU (Limine base revision 5+ leaves every LVT entry masked). Returns a
 * line saying what it did, NULL when there is no enabled local APIC. */
const char *lapic_restore_virtual_wire(void);

/* ---- the LAPIC timer ---- */
/* Measures the timer's rate once (BSP, interrupts off) against the TSC,
 * itself calibrated against the PIT (pit.h; calibrates it first when
 * nothing did): divide-by-16 ticks per millisecond, kept for every CPU
 * (they share the bus clock). Logs `[smp] LAPIC timer: N ticks/ms`. Returns
 * the rate (0 if it could not be measured). */
uint32_t lapic_timer_calibrate(void);
/* The calibrated rate (divide-by-16 ticks per millisecond), 0 before. */
uint32_t lapic_timer_ticks_per_ms(void);
/* Starts this CPU's timer: every `ms` milliseconds (periodic) an interrupt
 * on `vector`. Needs the calibration. */
void lapic_timer_start_periodic(uint8_t vector, uint32_t ms);
/* Starts this CPU's timer once: one interrupt on `vector` after `ms`
 * milliseconds. Needs the calibration. */
void lapic_timer_start_oneshot(uint8_t vector, uint32_t ms);
/* Stops this CPU's timer (masked, count 0). */
void lapic_timer_stop(void);
