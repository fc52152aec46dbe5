/* Every CPU at work (arch/x86_64/smp.c; docs/smp.md).
 *
 * Bring-up: the BSP prepares each AP's per-CPU block (smp_cpu_prepare), then
 * starts it through whichever door the boot path has: Limine's MP response
 * (goto_address, smp_start_limine) or, under GRUB, INIT-SIPI-SIPI through the
 * real-mode trampoline (ap_start.c). Both doors end in smp_ap_enter on the
 * AP's own guarded stack with the kernel's page tables loaded.
 *
 * Rules for the API below: IPI handlers run with interrupts off and never
 * allocate; work given to another CPU (smp_call_on, smp_run_on_all) runs on
 * that CPU outside interrupt context, with interrupts on, so it may use the
 * allocators. Posted work runs in the target CPU's idle thread (proc/
 * sched.h): a CPU running a program switches to it at the program's next
 * return to ring 3 (the call IPI asks for that). */
#pragma once

#include "arch/x86_64/percpu.h"
#include "lib/types.h"

/* IPI and local-interrupt vectors (the 8259 PICs own 0x20-0x2f). */
#define SMP_VEC_TLB      0xf0 /* reserved for TLB shootdown (mm) */
#define SMP_VEC_CALL     0xf1 /* "look in your mailbox": work for this CPU */
#define SMP_VEC_TEST     0xf2 /* counted and ignored: the IPI self-test */
#define SMP_VEC_RESCHED  0xf3 /* "look at your scheduler": a switch or a kill is due */
#define SMP_VEC_TIMER    0xef /* the LAPIC timer */
#define SMP_VEC_SPURIOUS 0xff /* the LAPIC's spurious vector (no EOI) */

/* Allocates and fills the per-CPU block of the next AP, the one with APIC ID
 * apic_id: its index (1, 2, ... in call order), its GDT and TSS, three
 * guarded IST stacks (#DF, NMI, #MC) and a guarded kernel stack whose top is
 * c->stack_top, c->cr3 = kernel_as. NULL (nothing kept) when memory ran out
 * or CPU_MAX blocks exist. BSP only, before the AP is started. */
struct cpu *smp_cpu_prepare(uint32_t apic_id);
/* The first C an AP runs, on c's stack with kernel_as's CR3 loaded and
 * interrupts off: takes the BSP's CR0/CR4/EFER/PAT, loads its GDT, TSS, IDT
 * and GS base (before anything that could lock), enables its local APIC,
 * marks itself online and idles, running the work it is sent. */
NORETURN void smp_ap_enter(struct cpu *c);
/* Waits up to timeout_us microseconds (TSC, calibrated by lapic) for c to
 * mark itself online; true when it did. */
bool smp_cpu_wait_online(struct cpu *c, uint64_t timeout_us);

/* The BSP's half of bring-up: its LAPIC, the IPI and timer vectors, itself
 * online as index 0. BSP only, once, after the guarded stacks and before
 * any AP is started. */
void smp_init_bsp(void);
/* Calibrates the TSC against the PIT (unless ap_start_all did) and the
 * LAPIC timer against the TSC. BSP only, once the APs are started: Limine's
 * parked APs spin on their goto_address, and three vCPUs spinning on a
 * TCG host skew the PIT against the TSC (a 10 ms window read 2.1 to 7 GHz). */
void smp_calibrate_timers(void);
/* Limine path: starts every AP of boot_ctx.cpus (goto_address), one at a
 * time, waiting for each; an AP that does not answer is reported and left
 * out. With start false (nosmp), or once a block cannot be had, the rest
 * are parked instead: moved onto kernel_as and halted for good, so that no
 * CPU runs from the memory reclaimed next. Before frame_reclaim_bootloader
 * (the APs wait in reclaimable memory, on its page tables). */
void smp_start_limine(bool start);
/* Limine APs parked by smp_start_limine (0 on the GRUB path). */
unsigned smp_cpus_parked(void);
/* Records how many CPUs the bootloader or MADT reported (before the CPU_MAX
 * cap) for the summary line. */
void smp_set_reported(unsigned reported);
/* Logs `[smp] N of M CPUs online` (M capped by CPU_MAX, saying so). */
void smp_log_online(void);

/* True when work was posted to this CPU and has not run yet. */
bool smp_work_pending(void);
/* Runs the work posted to this CPU, if any (interrupts on while it runs,
 * off again after): true when it ran some. The idle thread's job. */
bool smp_run_posted_work(void);

/* Online CPUs (the BSP counts; at least 1 once smp_init ran). */
unsigned smp_cpu_count(void);
/* True when CPU index i is online. */
bool smp_cpu_online(unsigned i);
/* Runs fn(arg) on every online CPU at once, the caller's included, and
 * returns when all have returned. BSP only (work reaches the APs through
 * their idle loops; the BSP has none), never from an interrupt handler nor
 * from the work itself; interrupts are on while fn runs and while waiting. */
void smp_run_on_all(smp_fn fn, void *arg);
/* Runs fn(arg) on CPU index cpu (directly when it is the caller's) and
 * waits for it to return. Same rules as smp_run_on_all. */
void smp_call_on(unsigned cpu, smp_fn fn, void *arg);
/* Sends a fixed IPI with `vector` to CPU index cpu (an online one). */
void smp_send_ipi(unsigned cpu, uint8_t vector);
/* Sends a fixed IPI with `vector` to every online CPU but the caller. */
void smp_send_ipi_all_but_self(uint8_t vector);
/* Sends an NMI to every other CPU (the panic path stops them with it). */
void smp_send_nmi_all_but_self(void);
/* IPIs CPU index cpu has sent / its handlers have received so far. */
uint64_t smp_ipi_sent(unsigned cpu);
uint64_t smp_ipi_received(unsigned cpu);
/* LAPIC timer interrupts CPU index cpu has taken. */
uint64_t smp_timer_ticks(unsigned cpu);
/* CPUs the bootloader or MADT reported (before the CPU_MAX cap), 1 before
 * smp_init. */
unsigned smp_cpus_reported(void);
