/* The legacy 8259A interrupt controllers (master + slave), remapped so that
 * IRQ 0..15 arrive on vectors 32..47, clear of the CPU exceptions. Every IRQ
 * starts masked; a driver registers a handler and unmasks its line. */
#pragma once

#include "lib/types.h"

#define PIC_VECTOR_BASE 32 /* IRQ n arrives on vector PIC_VECTOR_BASE + n */
#define PIC_IRQ_COUNT   16

enum { IRQ_TIMER = 0, IRQ_KEYBOARD = 1, IRQ_CASCADE = 2, IRQ_COM1 = 4, IRQ_SPURIOUS_MASTER = 7,
       IRQ_SPURIOUS_SLAVE = 15 };

/* Called in interrupt context (interrupts off) for its IRQ; the PIC code sends
 * the end-of-interrupt afterwards. */
typedef void (*irq_handler_fn)(void);

/* Remaps both PICs to vectors 32..47, masks every line and routes all 16
 * vectors through the PIC dispatcher (spurious IRQ 7/15 are recognised and
 * dropped without handler or wrong EOI). Does not enable interrupts. */
void pic_init(void);
/* Routes `irq` (0..15) to fn (NULL: none). Does not unmask it. */
void pic_set_handler(unsigned irq, irq_handler_fn fn);
/* Lets `irq` through (and the cascade line when irq >= 8). Ignores irq > 15. */
void pic_unmask(unsigned irq);
/* Blocks `irq` again. Ignores irq > 15. */
void pic_mask(unsigned irq);
/* Acknowledges `irq`: the slave too for irq >= 8. Handlers registered with
 * pic_set_handler need not call it. */
void pic_eoi(unsigned irq);
/* Spurious interrupts seen on IRQ 7 / IRQ 15 since pic_init. */
uint64_t pic_spurious_count(void);
