/* Per-CPU blocks (percpu.h). */
#include "arch/x86_64/percpu.h"

#include "arch/x86_64/cpu.h"

static struct cpu bsp_cpu __attribute__((aligned(64)));
/* Index -> block. Written by the BSP only (percpu_register, before the AP
 * with that index starts); read by anyone afterwards (acquire/release). */
static struct cpu *cpus[CPU_MAX] = {[0] = &bsp_cpu};

void percpu_load(struct cpu_local *c)
{
    c->self = c;
    wrmsr(MSR_GS_BASE, (uint64_t)(uintptr_t)c);
}

void percpu_init_bsp(void)
{
    bsp_cpu.local.index = 0;
    percpu_load(&bsp_cpu.local);
}

struct cpu_local *this_cpu(void)
{
    struct cpu_local *c;
    __asm__ volatile("movq %%gs:%c1, %0" : "=r"(c) : "i"(CPU_LOCAL_SELF));
    return c;
}

struct cpu *percpu_bsp(void)
{
    return &bsp_cpu;
}

struct cpu *percpu_get(unsigned i)
{
    return i < CPU_MAX ? __atomic_load_n(&cpus[i], __ATOMIC_ACQUIRE) : NULL;
}

void percpu_register(struct cpu *c)
{
    __atomic_store_n(&cpus[c->local.index], c, __ATOMIC_RELEASE);
}
