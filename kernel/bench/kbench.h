/* The in-kernel benchmark: the host bench's workloads (bench/, issue 5) run on
 * the booted kernel, cycles per operation from the TSC. Called by the
 * monitor's `bench` command and, headless, by the `bench` command-line word. */
#pragma once

/* Runs every workload once and prints one `kbench: ...` line each, then
 * `kbench: done`. Leaves the heap and the frame allocator as it found them
 * (except heap caches; the frame workload fills memory to 95% for a while,
 * and says so if the free-frame count does not come back). */
void kbench_run(void);
/* The SMP rows (kbench_smp.c): frame and heap pairs on 1, 2 and 4 CPUs (as
 * many as are online), remote frees, and the unmap cost with the other CPUs
 * online (TLB shootdown); one `kbench: s-...` line each. */
void kbench_smp(void);
/* The user-address-space rows (kbench_vm.c): one `kbench: v-...` line each. */
void kbench_vm(void);
/* The process rows (kbench_proc.c): user/ubench.c run as processes; its
 * `kbench: pr-...` lines. */
void kbench_proc(void);
