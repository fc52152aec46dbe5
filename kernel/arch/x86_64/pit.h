/* The 8254 programmable interval timer as a reference clock, and the
 * TSC-based delay calibrated against it (arch/x86_64/pit.c).
 *
 * Only channel 2 is used, polled: gated on through bit 0 of port 0x61 and
 * read with latch commands, so no interrupt is involved (the PIC keeps IRQ0
 * masked) and channel 0 stays as the firmware left it. The PIT is one device
 * for the whole machine: the functions that program it are for the
 * bootstrap CPU while no other CPU uses it (boot, and self-tests), and are
 * not locked. Once pit_calibrate_tsc has run, delay_us and
 * counter_hz_by_tsc read only the TSC and may run on any CPU (the TSCs of a
 * machine's CPUs run at one rate: invariant TSC on hardware, the host's
 * clock under QEMU).
 *
 * Measurements are built so that a stall of the CPU (a descheduled vCPU
 * under a busy QEMU host, an SMI) does not bias them: the TSC calibration
 * counts only the stretches between PIT reads that no stall interrupted
 * (pit.c says how), counter_hz_by_tsc reads both clocks together (a TSC
 * read on each side) at the two ends of its window. */
#pragma once

#include "lib/types.h"

/* The PIT's input clock (Hz). */
#define PIT_HZ 1193182u

/* Measures the TSC against the PIT: three windows of 10 ms of undisturbed
 * PIT time each, the median kept; logs `[smp] TSC: N MHz`. Falls back to CPUID's nominal rate (leaf 0x15 or
 * 0x16, else 1 GHz) with a warning when the PIT does not count (or no
 * window completes within seconds). BSP only;
 * a second call measures again. */
void pit_calibrate_tsc(void);
/* TSC ticks per microsecond (at least 1) once calibrated, 0 before. */
uint64_t tsc_per_us(void);
/* Busy-waits at least `us` microseconds: on the TSC once pit_calibrate_tsc
 * ran (any CPU), on the PIT before (BSP only). */
void delay_us(uint64_t us);

/* How many units per second the counter `read(arg)` moves, up or down (a
 * down-counter such as the LAPIC timer's current count works too: keep the
 * window shorter than its wrap), measured against the TSC over `ms`
 * milliseconds (at least 1). Calibrates the TSC first when nothing did.
 * For the LAPIC timer: read = its current-count register. */
uint64_t counter_hz_by_tsc(uint64_t (*read)(void *arg), void *arg, unsigned ms);

/* Busy-waits at least `us` microseconds on the PIT alone (BSP only). */
void pit_wait_us(uint64_t us);
/* A stopwatch on channel 2 for tests: the PIT counts down from 65535
 * (55 ms); pit_stopwatch_ticks() says how many PIT ticks passed since
 * (valid up to 65535: the count wraps after that). BSP only. */
void pit_stopwatch_start(void);
/* PIT ticks since pit_stopwatch_start (a latched read of channel 2). */
uint32_t pit_stopwatch_ticks(void);
