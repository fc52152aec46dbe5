/* 8259A PIC pair: remap, masks, EOI and the spurious-IRQ check.
 *
 * Initialisation is the ICW1..ICW4 sequence (8259A data sheet): ICW1 starts it
 * and says ICW4 follows; ICW2 is the vector base; ICW3 wires the cascade (the
 * slave sits on the master's IRQ 2); ICW4 selects 8086 mode. A spurious IRQ 7
 * (or 15) is one whose in-service bit is clear when its handler runs: the line
 * dropped before the CPU acknowledged it. It gets no EOI from its own PIC, but
 * a spurious IRQ 15 still needs one on the master for the cascade. */
#include "arch/x86_64/pic.h"

#include "arch/x86_64/cpu.h"
#include "arch/x86_64/idt.h"

#define PIC1_CMD  0x20
#define PIC1_DATA 0x21
#define PIC2_CMD  0xa0
#define PIC2_DATA 0xa1

#define ICW1_INIT 0x10
#define ICW1_ICW4 0x01
#define ICW4_8086 0x01
#define OCW2_EOI  0x20
#define OCW3_READ_ISR 0x0b

static irq_handler_fn irq_handlers[PIC_IRQ_COUNT];
static uint16_t irq_mask = 0xffff; /* bit n set: IRQ n masked */
static uint64_t spurious;

static void write_masks(void)
{
    outb(PIC1_DATA, (uint8_t)irq_mask);
    outb(PIC2_DATA, (uint8_t)(irq_mask >> 8));
}

/* In-service register of both PICs: master in bits 0..7, slave in 8..15. */
static uint16_t read_isr(void)
{
    outb(PIC1_CMD, OCW3_READ_ISR);
    outb(PIC2_CMD, OCW3_READ_ISR);
    return (uint16_t)(inb(PIC1_CMD) | (inb(PIC2_CMD) << 8));
}

static void pic_dispatch(struct interrupt_frame *f)
{
    unsigned irq = (unsigned)f->vector - PIC_VECTOR_BASE;
    if (irq == IRQ_SPURIOUS_MASTER || irq == IRQ_SPURIOUS_SLAVE) {
        if (!(read_isr() & (1u << irq))) {
            spurious++;
            if (irq == IRQ_SPURIOUS_SLAVE)
                outb(PIC1_CMD, OCW2_EOI); /* the master did see the cascade */
            return;
        }
    }
    irq_handler_fn h = irq_handlers[irq];
    if (h)
        h();
    pic_eoi(irq);
}

void pic_init(void)
{
    outb(PIC1_DATA, 0xff); /* mask everything while reprogramming */
    outb(PIC2_DATA, 0xff);
    outb(PIC1_CMD, ICW1_INIT | ICW1_ICW4);
    io_wait();
    outb(PIC2_CMD, ICW1_INIT | ICW1_ICW4);
    io_wait();
    outb(PIC1_DATA, PIC_VECTOR_BASE);
    io_wait();
    outb(PIC2_DATA, PIC_VECTOR_BASE + 8);
    io_wait();
    outb(PIC1_DATA, 1u << IRQ_CASCADE); /* master: a slave on IRQ 2 */
    io_wait();
    outb(PIC2_DATA, IRQ_CASCADE);       /* slave: its cascade identity */
    io_wait();
    outb(PIC1_DATA, ICW4_8086);
    io_wait();
    outb(PIC2_DATA, ICW4_8086);
    io_wait();
    irq_mask = 0xffff;
    write_masks();
    for (unsigned irq = 0; irq < PIC_IRQ_COUNT; irq++)
        idt_set_handler((uint8_t)(PIC_VECTOR_BASE + irq), pic_dispatch);
}

void pic_set_handler(unsigned irq, irq_handler_fn fn)
{
    if (irq < PIC_IRQ_COUNT)
        __atomic_store_n(&irq_handlers[irq], fn, __ATOMIC_RELEASE);
}

void pic_unmask(unsigned irq)
{
    if (irq >= PIC_IRQ_COUNT)
        return;
    uint64_t flags = cpu_irq_save();
    irq_mask &= (uint16_t)~(1u << irq);
    if (irq >= 8)
        irq_mask &= (uint16_t)~(1u << IRQ_CASCADE);
    write_masks();
    cpu_irq_restore(flags);
}

void pic_mask(unsigned irq)
{
    if (irq >= PIC_IRQ_COUNT)
        return;
    uint64_t flags = cpu_irq_save();
    irq_mask |= (uint16_t)(1u << irq);
    write_masks();
    cpu_irq_restore(flags);
}

void pic_eoi(unsigned irq)
{
    if (irq >= 8)
        outb(PIC2_CMD, OCW2_EOI);
    outb(PIC1_CMD, OCW2_EOI);
}

uint64_t pic_spurious_count(void)
{
    return spurious;
}
