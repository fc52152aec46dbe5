/* Monitor commands about the CPUs: cpus (state, IPIs, and what each CPU's
 * frame cache and heap magazines hold). */
#include "arch/x86_64/smp.h"
#include "lib/printf.h"
#include "mm/frame.h"
#include "mm/heap.h"
#include "monitor/commands.h"

void cmd_cpus(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    kprintf("%u of %u CPUs online (you are on CPU %u)\n", smp_cpu_count(), smp_cpus_reported(),
            cpu_index());
    kprintf("cpu  apic  state    ipi-sent  ipi-recv  timer-ticks  frames-cached  heap-cached\n");
    for (unsigned i = 0; i < CPU_MAX; i++) {
        struct cpu *c = percpu_get(i);
        if (!c)
            continue;
        uint64_t bytes = 0, objects = heap_cpu_cached(i, &bytes);
        char size[24];
        kprintf("%3u  %4u  %-7s  %8llu  %8llu  %11llu  %13u  %llu (%s)\n", i, c->local.apic_id,
                smp_cpu_online(i) ? "online" : "offline", (unsigned long long)smp_ipi_sent(i),
                (unsigned long long)smp_ipi_received(i), (unsigned long long)smp_timer_ticks(i),
                frame_cache_count(i), (unsigned long long)objects,
                monitor_size_str(size, sizeof(size), bytes));
    }
}
