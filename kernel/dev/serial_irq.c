/* Interrupt-driven receive on COM1; sending stays polled (dev/serial.c). */
#include "dev/serial_irq.h"

#include "arch/x86_64/cpu.h"
#include "arch/x86_64/pic.h"
#include "dev/input.h"

#define COM1 0x3f8
enum { UART_DATA = 0, UART_IER = 1, UART_IIR_FCR = 2, UART_MCR = 4, UART_LSR = 5 };
#define IER_RX_AVAILABLE 0x01
#define FCR_FIFO_ON      0x01 /* trigger level bits 6-7 = 0: one byte */
#define MCR_OUT2         0x08 /* gates the UART's interrupt line on PCs */
#define LSR_DATA_READY   0x01

/* Flow control: when the input queue is full, the receive interrupt is
 * switched off and bytes wait in the UART (which then holds back the sender:
 * QEMU stops feeding a full FIFO); the input queue's space hook switches it
 * back on once the monitor has caught up. Locking: interrupts off. */
static bool rx_paused;

/* Moves waiting bytes into the input queue while it has room (bounded: a
 * stuck LSR cannot keep us here). Reading the data register also clears the
 * interrupt. */
static void drain(void)
{
    for (int i = 0; i < 256 && (inb(COM1 + UART_LSR) & LSR_DATA_READY); i++) {
        if (input_space() == 0) {
            rx_paused = true;
            outb(COM1 + UART_IER, 0);
            return;
        }
        input_push(inb(COM1 + UART_DATA));
    }
}

/* Input-queue space hook: resume receiving (the pending data raises a fresh
 * interrupt as soon as IER allows it). */
static void rx_resume(void)
{
    if (!rx_paused)
        return;
    rx_paused = false;
    outb(COM1 + UART_IER, IER_RX_AVAILABLE);
}

static void serial_irq(void)
{
    (void)inb(COM1 + UART_IIR_FCR); /* identify (and, for THR-empty, clear) */
    drain();
}

bool serial_enable_rx_irq(void)
{
    if (inb(COM1 + UART_LSR) == 0xff) /* floating bus: no UART */
        return false;
    uint64_t flags = cpu_irq_save();
    outb(COM1 + UART_IIR_FCR, FCR_FIFO_ON);
    outb(COM1 + UART_MCR, inb(COM1 + UART_MCR) | MCR_OUT2);
    drain();
    input_set_space_hook(rx_resume);
    pic_set_handler(IRQ_COM1, serial_irq);
    outb(COM1 + UART_IER, IER_RX_AVAILABLE);
    pic_unmask(IRQ_COM1);
    cpu_irq_restore(flags);
    return true;
}
