/* 16550 UART driver for COM1, polled. */
#include "dev/serial.h"

#include "arch/x86_64/cpu.h"

#define COM1 0x3f8
enum {
    UART_DATA = 0, UART_IER = 1, UART_FCR = 2, UART_LCR = 3, UART_MCR = 4, UART_LSR = 5,
};
#define LSR_DATA_READY 0x01
#define LSR_THR_EMPTY  0x20

static bool serial_ok;

bool serial_init(void)
{
    outb(COM1 + UART_IER, 0x00);          /* no interrupts */
    outb(COM1 + UART_LCR, 0x80);          /* DLAB on: set the divisor */
    outb(COM1 + UART_DATA, 1);            /* 115200 / 1 */
    outb(COM1 + UART_IER, 0);
    outb(COM1 + UART_LCR, 0x03);          /* 8 bits, no parity, 1 stop */
    outb(COM1 + UART_FCR, 0xc7);          /* FIFOs on, cleared, 14-byte threshold */
    outb(COM1 + UART_MCR, 0x1e);          /* loopback to test the chip */
    outb(COM1 + UART_DATA, 0xae);
    serial_ok = inb(COM1 + UART_DATA) == 0xae;
    outb(COM1 + UART_MCR, 0x0f);          /* normal operation: DTR, RTS, OUT1, OUT2 */
    return serial_ok;
}

static void serial_putc(char c)
{
    for (int spins = 0; spins < 100000 && !(inb(COM1 + UART_LSR) & LSR_THR_EMPTY); spins++)
        cpu_pause();
    outb(COM1 + UART_DATA, (uint8_t)c);
}

void serial_write(const char *s, size_t len)
{
    if (!serial_ok)
        return;
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '\n')
            serial_putc('\r');
        serial_putc(s[i]);
    }
}

int serial_read_nonblock(void)
{
    if (!serial_ok || !(inb(COM1 + UART_LSR) & LSR_DATA_READY))
        return -1;
    return inb(COM1 + UART_DATA);
}
