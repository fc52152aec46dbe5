/* IDT setup and the first C step of every interrupt. */
#include "arch/x86_64/idt.h"

#include "arch/x86_64/exceptions.h"
#include "arch/x86_64/gdt.h"
#include "arch/x86_64/percpu.h"
#include "lib/printf.h"
#include "proc/sched.h"

#define GATE_INTERRUPT 0x8E /* present, DPL 0, 64-bit interrupt gate (clears IF) */

extern const uint64_t isr_stub_table[IDT_VECTORS]; /* isr.S */

static struct idt_gate idt[IDT_VECTORS] __attribute__((aligned(16)));
static interrupt_handler_fn handlers[IDT_VECTORS];

struct idt_pointer {
    uint16_t limit;
    uint64_t base;
} PACKED;
_Static_assert(sizeof(struct idt_pointer) == 10, "lidt operand layout");

static void set_gate(unsigned v, uint64_t entry, uint8_t ist)
{
    idt[v] = (struct idt_gate){
        .offset_low = entry & 0xffff,
        .selector = GDT_KERNEL_CODE,
        .ist = ist,
        .type_attr = GATE_INTERRUPT,
        .offset_mid = (entry >> 16) & 0xffff,
        .offset_high = entry >> 32,
        .reserved = 0,
    };
}

void idt_init(void)
{
    for (unsigned v = 0; v < IDT_VECTORS; v++)
        set_gate(v, isr_stub_table[v], 0);
    /* One IST per vector that needs one, never shared (gdt.h: a second
     * delivery on the same IST overwrites the first frame). #PF stays on the
     * interrupted stack so that a #PF in a #PF handler nests below it; an
     * overflowed stack turns its #PF into a #DF, which IST1 reports. */
    set_gate(EXC_DF, isr_stub_table[EXC_DF], IST_DOUBLE_FAULT);
    set_gate(EXC_NMI, isr_stub_table[EXC_NMI], IST_NMI);
    set_gate(EXC_MC, isr_stub_table[EXC_MC], IST_MACHINE_CHECK);
    idt_load();
}

void idt_load(void)
{
    struct idt_pointer ptr = {sizeof(idt) - 1, (uint64_t)(uintptr_t)idt};
    __asm__ volatile("lidt %0" ::"m"(ptr) : "memory");
}

void idt_set_handler(uint8_t vector, interrupt_handler_fn h)
{
    __atomic_store_n(&handlers[vector], h, __ATOMIC_RELEASE);
}

void interrupt_dispatch(struct interrupt_frame *f)
{
    uint8_t v = (uint8_t)f->vector;
    interrupt_handler_fn h = __atomic_load_n(&handlers[v], __ATOMIC_ACQUIRE);
    if (v < IDT_FIRST_IRQ_VECTOR) { /* exceptions run in the context they interrupt */
        if (h)
            h(f);
        else
            exception_handle(f);
        return;
    }
    struct cpu_local *c = this_cpu();
    c->irq_depth++; /* cpu_in_irq(): true while a device or IPI handler runs */
    if (h)
        h(f);
    else
        kprintf("unexpected interrupt %u\n", v);
    c->irq_depth--;
    if (f->cs & 3) /* back to ring 3: where a process is preempted or ended */
        sched_return_to_user(f);
}
