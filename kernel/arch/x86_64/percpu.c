/* Per-CPU blocks and the GS base (percpu.h). */
#include "arch/x86_64/percpu.h"

#include "arch/x86_64/cpu.h"

static struct cpu_local bsp_local;

void percpu_load(struct cpu_local *c)
{
    c->self = c;
    wrmsr(MSR_GS_BASE, (uint64_t)(uintptr_t)c);
}

void percpu_init_bsp(void)
{
    bsp_local.index = 0;
    percpu_load(&bsp_local);
}

struct cpu_local *this_cpu(void)
{
    struct cpu_local *c;
    __asm__ volatile("movq %%gs:%c1, %0" : "=r"(c) : "i"(CPU_LOCAL_SELF));
    return c;
}
