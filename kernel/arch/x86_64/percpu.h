/* Per-CPU blocks: each CPU's GS base points at its own struct cpu_local
 * (arch/x86_64/cpu_local.h has the fixed head portable code reads). */
#pragma once

#include "arch/x86_64/cpu_local.h"

/* Points this CPU's GS base at the bootstrap CPU's block (index 0). Call
 * first in kernel_main, before anything that takes a lock. */
void percpu_init_bsp(void);
/* Points this CPU's GS base at *c (whose head the caller filled). */
void percpu_load(struct cpu_local *c);
/* The running CPU's block. */
struct cpu_local *this_cpu(void);
